#!/bin/sh
# A private, throwaway PostgreSQL for tests and local runs: a data directory of its own, a unix
# socket only (no TCP port), started as the postgres user when run as root, stopped by its PID.
#
#   pg.sh start DIR [DBNAME]   initialise DIR if needed, start, create DBNAME (default meetlite),
#                              print the libpq connection string on stdout
#   pg.sh stop DIR             stop the server started in DIR (by the PID in postmaster.pid)
#   pg.sh url DIR [DBNAME]     print the connection string again
#   pg.sh status DIR           exit 0 when it runs
set -eu

die() { echo "pg.sh: $*" >&2; exit 1; }

bindir() {
    for d in "${PG_BINDIR:-}" "$(pg_config --bindir 2>/dev/null || true)" /usr/lib/postgresql/*/bin; do
        [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return; }
    done
    die "PostgreSQL server binaries not found (apt-get install -y postgresql)"
}

# Runs a command as the server's owner: postgres when we are root, ourselves otherwise.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

port_of() { cat "$1/port"; }

# The socket directory: DIR/sock, or a short directory under /tmp when DIR's path is too long
# for a unix socket name (108 bytes).
sockdir_of() {
    if [ -f "$1/sockdir" ]; then cat "$1/sockdir"; else echo "$1/sock"; fi
}

url() {
    echo "host=$(sockdir_of "$1") port=$(port_of "$1") dbname=${2:-meetlite} user=postgres"
}

running() {
    [ -f "$1/data/postmaster.pid" ] || return 1
    pid=$(head -n 1 "$1/data/postmaster.pid")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: pg.sh start|stop|url|status DIR [DBNAME]"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
db=${3:-meetlite}

case "$cmd" in
start)
    bin=$(bindir)
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || die "no postgres user (apt-get install -y postgresql)"
        chown postgres:postgres "$dir"
        chmod 755 "$dir"
        runuser -u postgres -- test -x "$dir" ||
            die "$dir is not reachable by the postgres user: a parent directory is private (chmod o+x it)"
    fi
    if [ ! -f "$dir/port" ]; then
        # A port number only names the socket file; any free-looking number will do.
        port=$(( 40000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 20000 ))
        echo "$port" > "$dir/port"
    fi
    port=$(port_of "$dir")
    sock="$dir/sock"
    if [ ${#sock} -gt 80 ]; then
        sock=$(mktemp -d /tmp/mlpg.XXXXXX)
        echo "$sock" > "$dir/sockdir"
    fi
    mkdir -p "$sock"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$sock" "$dir/port" && { [ ! -f "$dir/sockdir" ] || chown postgres:postgres "$dir/sockdir"; }
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        mkdir -p "$dir/data"
        [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir/data"
        chmod 700 "$dir/data"
        as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
            --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    fi
    if ! running "$dir"; then
        touch "$dir/server.log"
        [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir/server.log"
        as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o \
            "-c listen_addresses='' -p $port -k $sock -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
            start >/dev/null || { tail -20 "$dir/server.log" >&2; die "PostgreSQL did not start"; }
    fi
    if ! psql "$(url "$dir" postgres)" -Atqc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
        psql "$(url "$dir" postgres)" -qc "CREATE DATABASE \"$db\"" >/dev/null
    fi
    url "$dir" "$db"
    ;;
stop)
    running "$dir" || exit 0
    pid=$(head -n 1 "$dir/data/postmaster.pid")
    kill -INT "$pid" 2>/dev/null || true   # fast shutdown
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -0 "$pid" 2>/dev/null && kill -QUIT "$pid" 2>/dev/null || true
    if [ -f "$dir/sockdir" ]; then rm -rf "$(cat "$dir/sockdir")" "$dir/sockdir"; fi
    ;;
url)
    url "$dir" "$db"
    ;;
status)
    running "$dir"
    ;;
*)
    die "unknown command $cmd"
    ;;
esac
