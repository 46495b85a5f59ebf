#!/bin/sh
# Builds meetlite with the sanitizers (--enable-devel: -Werror, ASan, UBSan) in build-test/ and
# runs every test: `make style-check` (clang-format and the banned functions), `make check` (unit
# tests, protocol cases, integration tests against the real daemon, PostgreSQL and third-party
# clients) and a bounded libFuzzer run of every parser (FUZZ_SECONDS in all, shared by the
# targets of tests/fuzz).
# The last line says "N passed, N failed"; the exit status is 0 only when nothing failed.
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
FUZZ_SECONDS=${FUZZ_SECONDS:-60}

scripts/deps.sh || exit 1
[ -x configure ] || ./autogen.sh || exit 1
mkdir -p build-test
cd build-test
if [ ! -f Makefile ]; then
    ../configure --enable-devel >configure.out 2>&1 || { cat configure.out; echo "0 passed, 1 failed"; exit 1; }
fi
make -j"$(nproc)" >build.out 2>&1 || { tail -50 build.out; echo "0 passed, 1 failed"; exit 1; }

# Formatting and banned functions (STYLE.md): a failure, or a missing clang-format, fails the run.
style_pass=0; style_fail=0
if make style-check >style-check.out 2>&1; then
    style_pass=1
else
    style_fail=1
fi
cat style-check.out

make -j"$(nproc)" check
check_rc=$?
[ -f test-suite.log ] && sed -n '1,12p' test-suite.log

fuzz_pass=0; fuzz_fail=0
if make fuzz >fuzz-build.out 2>&1 && make fuzz-run FUZZ_SECONDS="$FUZZ_SECONDS" >fuzz-run.out 2>&1; then
    fuzz_pass=1
    grep -E '^fuzz_[a-z0-9_]+: Done' fuzz-run.out
else
    fuzz_fail=1
    tail -40 fuzz-build.out fuzz-run.out 2>/dev/null
fi

count() { sed -n "s/^# $1: *\([0-9]*\).*/\1/p" test-suite.log 2>/dev/null | head -1; }
pass=$(count PASS); fail=$(count FAIL); err=$(count ERROR); xpass=$(count XPASS); skip=$(count SKIP)
pass=${pass:-0}; fail=${fail:-0}; err=${err:-0}; xpass=${xpass:-0}; skip=${skip:-0}
# A skipped test counts as failed: nothing is skipped in CI.
failed=$((fail + err + xpass + skip + fuzz_fail + style_fail))
passed=$((pass + fuzz_pass + style_pass))
if [ "$check_rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
# Name what failed just above the last line, where a CI log cut to its end still shows it.
if [ -f test-suite.log ]; then
    grep -E '^(FAIL|ERROR|XPASS|SKIP): ' test-suite.log | head -20
fi
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
