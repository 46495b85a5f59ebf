#!/bin/sh
# Builds meetlite and starts the whole system on loopback, in the foreground: a private
# PostgreSQL under .run/ in this checkout, then meetlited (TURN/STUN relay) with the sample
# configuration. Ctrl-C stops both.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)

scripts/deps.sh
[ -x configure ] || ./autogen.sh
mkdir -p build
(cd build && { [ -f Makefile ] || ../configure; } && make -j"$(nproc)")

mkdir -p .run
PGDIR="$top/.run/pg"
DBURL=$(tests/lib/pg.sh start "$PGDIR")
echo "start.sh: PostgreSQL running: $DBURL"

cleanup() {
    [ -n "${ML_PID:-}" ] && kill "$ML_PID" 2>/dev/null && wait "$ML_PID" 2>/dev/null || true
    tests/lib/pg.sh stop "$PGDIR" || true
}
trap cleanup EXIT INT TERM

CONF="$top/etc/meetlite.conf"
[ -f "$top/.run/meetlite.conf" ] && CONF="$top/.run/meetlite.conf"
echo "start.sh: starting meetlited with $CONF (STUN/TURN on 127.0.0.1:3478)"
build/meetlited --config "$CONF" "$@" &
ML_PID=$!
wait "$ML_PID"
