#!/bin/sh
# Builds meetlite and starts the whole system on loopback, in the foreground: a private
# PostgreSQL under .run/ in this checkout, migrated, then meetlited with the sample
# configuration: the TURN/STUN relay on 127.0.0.1:3478 and the control plane (REST API) on
# 127.0.0.1:8080. Secrets (the TURN REST secret, the JWT secret) are generated into .run/ on
# the first run (gitignored, mode 600) and reach meetlited through a generated configuration
# file, not the command line (which any local user can read in ps). Ctrl-C stops both.
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

# Secrets made once per checkout, never committed (.run/ is gitignored).
secret() {
    [ -s "$1" ] || (umask 077 && openssl rand -hex 32 > "$1")
}
secret "$top/.run/turn-secret"
secret "$top/.run/jwt-secret"

CONF="$top/etc/meetlite.conf"
[ -f "$top/.run/meetlite.conf" ] && CONF="$top/.run/meetlite.conf"
# The chosen file plus this run's database and secrets: later sections override earlier keys.
RUNCONF="$top/.run/effective.conf"
(umask 077 && {
    cat "$CONF"
    printf '\n[database]\nurl = %s\nmigrations-dir = %s\n' "$DBURL" "$top/sql"
    # the -file forms: meetlited reads the secrets itself (docs/deploy.md, section 5)
    printf '\n[turn]\nauth-secret-file = %s\n' "$top/.run/turn-secret"
    printf '\n[auth]\njwt-secret-file = %s\n' "$top/.run/jwt-secret"
} > "$RUNCONF")
build/meetlited --config "$RUNCONF" --migrate
echo "start.sh: starting meetlited with $CONF (STUN/TURN on 127.0.0.1:3478, API on http://127.0.0.1:8080)"
build/meetlited --config "$RUNCONF" "$@" &
ML_PID=$!
wait "$ML_PID"
