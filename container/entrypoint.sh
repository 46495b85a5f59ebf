#!/bin/sh
# The container's entrypoint: builds meetlited's configuration from the image's (or a mounted)
# /etc/meetlite/meetlite.conf plus the database URL and the secrets, then runs meetlited in the
# foreground as PID 1 (exec), so that the runtime's signals reach it.
#
# Secrets come from files: NAME_FILE names one (compose/Podman secrets under /run/secrets), and
# meetlited is given its path through the key's -file form (turn.auth-secret-file, ...), so it
# reads the file itself, checks it and reads it again on every reload (a rotated secret needs
# no new container). NAME, the value itself in the environment, is still accepted for old
# setups but not recommended (docs/deploy.md): the entrypoint moves it into a file of mode 0600
# under $MEETLITE_RUNTIME_DIR and out of the environment. Never both. No secret is ever put on
# meetlited's command line (ps shows that to everyone).
#   MEETLITE_DATABASE_URL       database.url (libpq connection string; not secret without a
#                               password in it; _FILE: its content is taken)
#   MEETLITE_DATABASE_PASSWORD  database.password-file (the role's password)
#   MEETLITE_TURN_SECRET        turn.auth-secret-file
#   MEETLITE_JWT_SECRET         auth.jwt-secret-file
#   MEETLITE_ADMIN_TOKEN        admin.token-file; without one a random token is made, so that
#                               the admin listener answers the HEALTHCHECK on /healthz
#   MEETLITE_MIGRATE        yes (default): apply the schema migrations at start
#   MEETLITE_CONFIG         the base file (default /etc/meetlite/meetlite.conf)
#   MEETLITE_RUNTIME_DIR    where the effective file goes (default /run/meetlite)
# Arguments starting with '-' go to meetlited (e.g. --set turn.listen=...); any other command
# runs instead of meetlited (e.g. sh).
set -eu

die() {
    echo "meetlite-entrypoint: $*" >&2
    exit 1
}

case "${1:-}" in
"" | -*) ;;
*) exec "$@" ;;
esac

# value NAME: prints $NAME or the content of $NAME_FILE (one line; a trailing newline is
# dropped), or nothing.
value() {
    eval "v=\${$1:-}; f=\${$1_FILE:-}"
    if [ -n "$v" ] && [ -n "$f" ]; then
        die "set $1 or $1_FILE, not both"
    fi
    if [ -n "$f" ]; then
        [ -r "$f" ] || die "$1_FILE: cannot read $f"
        v=$(cat "$f") || die "$1_FILE: cannot read $f"
    fi
    case "$v" in
    *"
"*) die "$1 must be one line" ;;
    esac
    printf '%s' "$v"
}

# secret NAME KEY: prints the line "KEY-file = PATH" for $NAME_FILE, or "KEY = VALUE" for
# $NAME (one line), or nothing.
secret() {
    eval "v=\${$1:-}; f=\${$1_FILE:-}"
    if [ -n "$v" ] && [ -n "$f" ]; then
        die "set $1 or $1_FILE, not both"
    fi
    if [ -n "$f" ]; then
        case "$f" in
        *"
"*) die "$1_FILE must be one line" ;;
        esac
        [ -r "$f" ] || die "$1_FILE: cannot read $f"
        printf '%s-file = %s\n' "$2" "$f"
    elif [ -n "$v" ]; then
        case "$v" in
        *"
"*) die "$1 must be one line" ;;
        esac
        printf '%s = %s\n' "$2" "$v"
    fi
}

CONF=${MEETLITE_CONFIG:-/etc/meetlite/meetlite.conf}
RUNDIR=${MEETLITE_RUNTIME_DIR:-/run/meetlite}
[ -r "$CONF" ] || die "cannot read $CONF"
DB_URL=$(value MEETLITE_DATABASE_URL)
DB_PASSWORD=$(secret MEETLITE_DATABASE_PASSWORD password)
TURN_SECRET=$(secret MEETLITE_TURN_SECRET auth-secret)
JWT_SECRET=$(secret MEETLITE_JWT_SECRET jwt-secret)
ADMIN_TOKEN=$(secret MEETLITE_ADMIN_TOKEN token)
if [ -z "$ADMIN_TOKEN" ]; then
    ADMIN_TOKEN="token = $(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
fi
case "${MEETLITE_MIGRATE:-yes}" in
yes | no) MIGRATE=${MEETLITE_MIGRATE:-yes} ;;
*) die "MEETLITE_MIGRATE must be yes or no" ;;
esac
unset MEETLITE_DATABASE_URL MEETLITE_DATABASE_URL_FILE MEETLITE_DATABASE_PASSWORD \
    MEETLITE_DATABASE_PASSWORD_FILE MEETLITE_TURN_SECRET \
    MEETLITE_TURN_SECRET_FILE MEETLITE_JWT_SECRET MEETLITE_JWT_SECRET_FILE \
    MEETLITE_ADMIN_TOKEN MEETLITE_ADMIN_TOKEN_FILE

# Later sections override earlier keys: the base file, then what the environment gives.
# /run may be a fresh tmpfs owned by root: fall back to a private directory under /tmp
if ! mkdir -p "$RUNDIR" 2>/dev/null || [ ! -w "$RUNDIR" ]; then
    RUNDIR=$(mktemp -d "${TMPDIR:-/tmp}/meetlite.XXXXXX") || die "no writable runtime directory"
fi
EFFECTIVE="$RUNDIR/meetlite.conf"
(
    umask 077
    {
        cat "$CONF"
        printf '\n; --- added by meetlite-entrypoint\n'
        if [ -n "$DB_URL" ]; then
            printf '[database]\nurl = %s\nmigrate-on-start = %s\n' "$DB_URL" "$MIGRATE"
            [ -z "$DB_PASSWORD" ] || printf '%s\n' "$DB_PASSWORD"
        fi
        [ -z "$TURN_SECRET" ] || printf '[turn]\n%s\n' "$TURN_SECRET"
        [ -z "$JWT_SECRET" ] || printf '[auth]\n%s\n' "$JWT_SECRET"
        printf '[admin]\n%s\n' "$ADMIN_TOKEN"
    } >"$EFFECTIVE.tmp"
    mv "$EFFECTIVE.tmp" "$EFFECTIVE"
)
exec meetlited --config "$EFFECTIVE" "$@"
