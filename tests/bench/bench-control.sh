#!/bin/sh
# Control-plane benchmark (not a test): joins per second and meeting-status reads per second
# with wrk against meetlited and a private PostgreSQL on this machine, p50/p99 latency from
# wrk --latency. Users and meetings are made directly in SQL and tokens minted here with the
# run's JWT secret, so the figures measure the API, not argon2 at signup.
#
#   tests/bench/bench-control.sh [BUILD_DIR]     (default: build-bench, an optimised build)
#
# Environment: JOINGEN (httpload: the project's own client, tests/bench/httpload.c, for joins
# and status reads, plain HTTP only; wrk: wrk with the Lua scripts, as before), DURATION (10s;
# httpload counts from the start, as wrk does), CONNS (64), THREADS (2: the client's threads), USERS (3000), MEETINGS (300),
# POOL (database.pool-size, 4), ACCESS_LOG (yes|no, yes), STATUS_HOT (200: meetings whose
# status is read, by their participants), STATUS_CACHE_MS (control.status-cache-ms, 1000; 0
# measures every read going to PostgreSQL), PARTS ("joins status": what to measure; "health"
# is GET /api/v1/health, the HTTP layer alone), LISTENER (dedicated: control.listen a port of
# its own, plain HTTP; dedicated-tls: the same with control.tls-cert; shared: control.listen
# the address of a shared:// listener, plain HTTP on it; shared-tls: HTTPS on it; see
# docs/benchmarks.md), LOADGEN (health only; wrk: offers no ALPN, so HTTPS on a shared port
# takes the path where the relay does TLS; h2load: nghttp2's h2load --h1, which offers ALPN
# http/1.1 as browsers do, so HTTPS on a shared port goes to the control plane's own TLS),
# INSTR (no; yes: meetlited runs under valgrind's callgrind and each part reports the
# instructions the server executed per request it logged: a count that does not move with the
# machine's load, unlike CPU time; DURATION is then 20s, and h2load sends REQUESTS requests,
# 3000, instead: its timed mode did not end against a server that slow).
set -eu
cd "$(dirname "$0")/../.."
top=$(pwd)
BUILD=${1:-build-bench}
ML="$top/$BUILD/meetlited"
[ -x "$ML" ] || { echo "bench-control: $ML not built (configure without --enable-devel there)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "bench-control: wrk missing (apt-get install -y wrk)" >&2; exit 1; }
INSTR=${INSTR:-no}; [ "$INSTR" = yes ] && DURATION=${DURATION:-20s}
LOADGEN=${LOADGEN:-wrk}; REQUESTS=${REQUESTS:-3000}
case $LOADGEN in
wrk) ;;
h2load) command -v h2load >/dev/null ||
    { echo "bench-control: h2load missing (apt-get install -y nghttp2-client)" >&2; exit 1; } ;;
*) echo "bench-control: LOADGEN is wrk or h2load" >&2; exit 1 ;;
esac
DURATION=${DURATION:-10s}; CONNS=${CONNS:-64}; THREADS=${THREADS:-2}
USERS=${USERS:-3000}; MEETINGS=${MEETINGS:-300}; POOL=${POOL:-4}; ACCESS_LOG=${ACCESS_LOG:-yes}
STATUS_MEETINGS=${STATUS_MEETINGS:-2000}; STATUS_CACHE_MS=${STATUS_CACHE_MS:-1000}
STATUS_HOT=${STATUS_HOT:-200} # the meetings being read (each by its 8 participants)
PARTS=${PARTS:-joins status}; LISTENER=${LISTENER:-dedicated}
JOINGEN=${JOINGEN:-httpload}; HTTPLOAD="$top/$BUILD/tests/bench/httpload"
case $JOINGEN in
httpload)
    [ -x "$HTTPLOAD" ] || { echo "bench-control: $HTTPLOAD not built (make tests/bench/httpload in $BUILD)" >&2; exit 1; }
    case $LISTENER in dedicated | shared) ;; *)
        echo "bench-control: httpload speaks plain HTTP: JOINGEN=wrk for $LISTENER" >&2; exit 1 ;;
    esac ;;
wrk) ;;
*) echo "bench-control: JOINGEN is httpload or wrk" >&2; exit 1 ;;
esac
WRAP=""
if [ "$INSTR" = yes ]; then
    command -v callgrind_control >/dev/null || { echo "bench-control: valgrind missing" >&2; exit 1; }
    ACCESS_LOG=yes # the requests are counted in the access log
fi

work=$(mktemp -d /var/tmp/mlbench-cp.XXXXXX)
chmod 755 "$work"
ML_PID=""
cleanup() {
    [ -n "$ML_PID" ] && kill "$ML_PID" 2>/dev/null && wait "$ML_PID" 2>/dev/null || true
    sh tests/lib/pg.sh stop "$work/pg" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

URL=$(sh tests/lib/pg.sh start "$work/pg")
SECRET=$(openssl rand -hex 32)
PORT=$((20000 + $$ % 20000))
"$ML" --set "database.url=$URL" --set "database.migrations-dir=$top/sql" --migrate >/dev/null 2>&1

echo "bench-control: creating $USERS users and $MEETINGS meetings"
psql "$URL" -Xq <<SQL
INSERT INTO users (id, email, display_name, password_hash, signup_method)
SELECT md5('u' || i)::uuid, 'u' || i || '@bench.test', 'User ' || i, '\$argon2id\$bench', 'password'
FROM generate_series(1, $USERS) i;
INSERT INTO meetings (id, code, title, host_id, expires_at, max_participants)
SELECT md5('m' || i)::uuid,
       translate(substr(md5('c' || i), 1, 3) || '-' || substr(md5('d' || i), 1, 4) || '-' ||
                 substr(md5('e' || i), 1, 3), '0123456789', 'ghijklmnop'),
       'Bench ' || i, md5('u' || (1 + i % $USERS))::uuid, now() + interval '6 hours', 100000
FROM generate_series(1, $MEETINGS) i;
-- meetings for the status reads: 8 participants each, like a typical class group
INSERT INTO meetings (id, code, title, host_id, expires_at, max_participants)
SELECT md5('s' || i)::uuid,
       translate(substr(md5('f' || i), 1, 3) || '-' || substr(md5('g' || i), 1, 4) || '-' ||
                 substr(md5('h' || i), 1, 3), '0123456789', 'ghijklmnop'),
       'Status ' || i, md5('u' || (1 + (i * 8) % $USERS))::uuid, now() + interval '6 hours', 50
FROM generate_series(1, $STATUS_MEETINGS) i;
INSERT INTO participants (meeting_id, user_id, display_name, role)
SELECT md5('s' || i)::uuid, md5('u' || (1 + (i * 8 + k) % $USERS))::uuid, 'User ' || k,
       CASE WHEN k = 0 THEN 'ADMIN'::participant_role ELSE 'PARTICIPANT' END
FROM generate_series(1, $STATUS_MEETINGS) i, generate_series(0, 7) k;
SQL

python3 - "$SECRET" "$USERS" "$MEETINGS" "$work" "$STATUS_MEETINGS" "$STATUS_HOT" <<'PY'
import base64, hashlib, hmac, json, random, sys, time, uuid
secret, users, meetings, work = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def uid(s): return str(uuid.UUID(hashlib.md5(s.encode()).hexdigest()))
now = int(time.time())
def tok(i):
    h = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    p = b64(json.dumps({"iss": "meetlite", "aud": "meetlite-api", "sub": uid("u%d" % i),
                        "name": "User %d" % i, "iat": now, "nbf": now, "exp": now + 7200}).encode())
    return h + "." + p + "." + b64(hmac.new(secret.encode(), (h + "." + p).encode(), hashlib.sha256).digest())
toks = [tok(i) for i in range(1, users + 1)]
pairs = [(u, m) for u in range(users) for m in range(1, meetings + 1)]
random.seed(1)
random.shuffle(pairs)
with open(work + "/joins.txt", "w") as f:
    for u, m in pairs[:400000]:
        f.write("%s %s\n" % (toks[u], uid("m%d" % m)))
smeet = int(sys.argv[5])
with open(work + "/status.txt", "w") as f:
    hot = int(sys.argv[6])
    for _ in range(50000):
        i = random.randrange(1, hot + 1)
        k = random.randrange(8)
        f.write("%s %s\n" % (toks[(i * 8 + k) % users], uid("s%d" % i)))
PY

SCHEME=http
set -- --set "turn.listen=udp://127.0.0.1:$((PORT + 1))"
case $LISTENER in
dedicated) ;;
dedicated-tls | shared | shared-tls)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/key.pem" \
        -out "$work/cert.pem" -days 2 -subj /CN=bench -addext subjectAltName=IP:127.0.0.1 2>/dev/null
    case $LISTENER in
    dedicated-tls) set -- "$@" --set "control.tls-cert=$work/cert.pem" --set "control.tls-key=$work/key.pem" ;;
    *) set -- --set "turn.listen=udp://127.0.0.1:$((PORT + 1)), shared://127.0.0.1:$PORT" \
        --set "turn.tls-cert=$work/cert.pem" --set "turn.tls-key=$work/key.pem" ;;
    esac
    case $LISTENER in *tls) SCHEME=https ;; esac
    ;;
*) echo "bench-control: LISTENER is dedicated, dedicated-tls, shared or shared-tls" >&2; exit 1 ;;
esac
echo "bench-control: listener $LISTENER ($SCHEME on 127.0.0.1:$PORT), load from $LOADGEN"
[ "$INSTR" = yes ] && WRAP="valgrind --tool=callgrind --callgrind-out-file=$work/cg.out --dump-line=no"
$WRAP "$ML" --set "database.url=$URL" --set "database.pool-size=$POOL" \
    --set "control.listen=127.0.0.1:$PORT" "$@" \
    --set "turn.auth-secret=bench-turn-secret" --set "auth.jwt-secret=$SECRET" \
    --set "control.access-log=$ACCESS_LOG" --set "net.workers=1" --set "control.max-participants=100000" \
    --set "control.status-cache-ms=$STATUS_CACHE_MS" \
    > "$work/meetlited.log" 2>&1 &
ML_PID=$!
i=0
until curl -skf "$SCHEME://127.0.0.1:$PORT/api/v1/health" >/dev/null; do
    i=$((i + 1)); [ $i -lt 1200 ] || { cat "$work/meetlited.log"; exit 1; }; sleep 0.1
done

# meetlited's CPU time so far, in milliseconds (user + system, every thread)
cpu_ms() {
    awk -v hz="$(getconf CLK_TCK)" '{ print int(($14 + $15) * 1000 / hz) }' "/proc/$ML_PID/stat"
}
# INSTR=yes: callgrind's counters zeroed before a load (instr_begin) and dumped after it
# (instr_end, which sets n to the requests the server answered: its access log's lines)
instr_begin() {
    [ "$INSTR" = yes ] || return 0
    callgrind_control -z "$ML_PID" >/dev/null 2>&1
    t0=$(date +%s.%N)
    a0=$(grep -c ' http: [A-Z]* /' "$work/meetlited.log" || true)
}
instr_end() {
    [ "$INSTR" = yes ] || return 0
    sleep 2 # the answers to what the load generator sent last
    rm -f "$work"/cg.out.*
    callgrind_control -d "$ML_PID" >/dev/null 2>&1
    # requests the server answered (wrk stops with some in flight)
    n=$(($(grep -c ' http: [A-Z]* /' "$work/meetlited.log") - a0))
    t1=$(date +%s.%N)
    ir=$(cat "$work"/cg.out.* | awk '/^(summary|totals):/ { print $2; exit }')
    # less what the server does when idle (timers, database health checks) over the time
    echo "server instructions: $ir for $n requests: $(awk -v i="$ir" -v n="$n" \
        -v idle="$IDLE_IPS" -v t="$t0" -v u="$t1" \
        'BEGIN { printf "%.0f, %.0f net of idle", n ? i / n : 0, n ? (i - idle * (u - t)) / n : 0 }') per request"
}
# PostgreSQL's CPU so far, in milliseconds: the postmaster and every backend it started. Read
# with care: in wrk runs it has read more than two cores' worth (docs/benchmarks.md, joins).
pg_cpu_ms() {
    pm=$(head -1 "$work/pg/data/postmaster.pid")
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v pm="$pm" -v hz="$(getconf CLK_TCK)" \
        '$1 == pm || $4 == pm { t += $14 + $15 } END { print int(t * 1000 / hz) }'
}
cpu_report() { # ms requests
    echo "server CPU: $1 ms for $2 requests: $(awk -v c="$1" -v n="$2" \
        'BEGIN { printf "%.1f", n ? c * 1000 / n : 0 }') us/request"
    [ -n "${p0:-}" ] && echo "PostgreSQL CPU: $((p1 - p0)) ms for $2 requests: $(awk -v c="$((p1 - p0))" \
        -v n="$2" 'BEGIN { printf "%.1f", n ? c * 1000 / n : 0 }') us/request"
    p0=""
}
# runs wrk (its arguments), prints its figures and meetlited's CPU per request: on a machine
# shared with other jobs the rate moves with their load, the CPU a request costs much less
wrk_cpu() {
    instr_begin
    c0=$(cpu_ms); p0=$(pg_cpu_ms)
    wrk "$@" > "$work/wrk.out"
    c1=$(cpu_ms); p1=$(pg_cpu_ms)
    grep -E "Requests/sec|Latency|50%|99%|requests in|Non-2xx|Socket errors" "$work/wrk.out"
    n=$(awk '/requests in/ { print $1 }' "$work/wrk.out")
    instr_end
    cpu_report $((c1 - c0)) "$n"
}
# the same with h2load --h1: HTTP/1.1 with keep-alive like wrk, offering ALPN http/1.1
h2load_cpu() {
    instr_begin
    if [ "$INSTR" = yes ]; then span="-n$REQUESTS"; else span="-D$DURATION"; fi
    c0=$(cpu_ms); p0=$(pg_cpu_ms)
    h2load --h1 -t"$THREADS" -c"$CONNS" $span "$@" > "$work/h2load.out" 2>&1
    c1=$(cpu_ms); p1=$(pg_cpu_ms)
    grep -E "finished in|^requests:|status codes:|Application protocol|time for request" "$work/h2load.out"
    n=$(awk '/^requests:/ { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^succeeded/) print $i }' \
        "$work/h2load.out")
    instr_end
    cpu_report $((c1 - c0)) "${n:-0}"
}
# the same with httpload (tests/bench/httpload.c): its requests file from "token id" lines ($3),
# as METHOD ($4) and the path ($5, with ID for the id)
httpload_cpu() {
    awk -v m="$4" -v p="$5" '{ q = p; sub(/ID/, $2, q); print m, q, $1 }' "$3" >"$work/requests.txt"
    instr_begin
    c0=$(cpu_ms); p0=$(pg_cpu_ms)
    "$HTTPLOAD" --server "127.0.0.1:$PORT" --file "$work/requests.txt" --conns "$CONNS" --threads "$THREADS" \
        --duration "${DURATION%s}" --warmup 0 >"$work/httpload.out"
    c1=$(cpu_ms); p1=$(pg_cpu_ms)
    cat "$work/httpload.out"
    n=$(sed 's/.*"answered":\([0-9]*\).*/\1/' "$work/httpload.out")
    instr_end
    cpu_report $((c1 - c0)) "$n"
}
run() { # name, wrk script, "token id" file, method, path
    if [ "$JOINGEN" = httpload ]; then
        echo "== $1: httpload --conns $CONNS --threads $THREADS --duration ${DURATION%s} --warmup 0: $4 $5 ($LISTENER)"
        httpload_cpu "$1" "$2" "$3" "$4" "$5"
        return
    fi
    [ "$LOADGEN" = wrk ] || echo "bench-control: $1 runs with wrk (a Lua script); LOADGEN is for health"
    echo "== $1: wrk -t$THREADS -c$CONNS -d$DURATION --latency -s tests/bench/$2 ($LISTENER)"
    wrk_cpu -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "tests/bench/$2" \
        "$SCHEME://127.0.0.1:$PORT" -- "$3" "$THREADS"
}
IDLE_IPS=0
if [ "$INSTR" = yes ]; then # the instructions per second of an idle server, 5 s
    callgrind_control -z "$ML_PID" >/dev/null 2>&1
    t0=$(date +%s.%N); sleep 5
    rm -f "$work"/cg.out.*
    callgrind_control -d "$ML_PID" >/dev/null 2>&1
    t1=$(date +%s.%N)
    IDLE_IPS=$(cat "$work"/cg.out.* | awk -v t="$t0" -v u="$t1" '/^(summary|totals):/ { printf "%.0f", $2 / (u - t); exit }')
    echo "server instructions when idle: $IDLE_IPS per second"
fi
for part in $PARTS; do
    case $part in
    joins)
        run joins control-join.lua "$work/joins.txt" POST /api/v1/meetings/ID/join
        # a join's TURN credential is its participant's cred_until, not a row (sql/017)
        echo "participants: $(psql "$URL" -XAtqc 'SELECT count(*) FROM participants')," \
             "handed a TURN credential: $(psql "$URL" -XAtqc \
                 'SELECT count(*) FROM participants WHERE cred_until IS NOT NULL')"
        ;;
    status) # reads (with the 8-person roster) by participants of the status meetings
        run "status reads" control-status.lua "$work/status.txt" GET /api/v1/meetings/ID ;;
    health)
        if [ "$LOADGEN" = h2load ]; then
            echo "== health: h2load --h1 -t$THREADS -c$CONNS $([ "$INSTR" = yes ] && echo "-n$REQUESTS" || echo "-D$DURATION") $SCHEME://127.0.0.1:$PORT/api/v1/health ($LISTENER)"
            h2load_cpu "$SCHEME://127.0.0.1:$PORT/api/v1/health"
        else
            echo "== health: wrk -t$THREADS -c$CONNS -d$DURATION --latency $SCHEME://127.0.0.1:$PORT/api/v1/health ($LISTENER)"
            wrk_cpu -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$SCHEME://127.0.0.1:$PORT/api/v1/health"
        fi ;;
    *) echo "bench-control: unknown part $part" >&2 ;;
    esac
done
echo "server CPU: $(ps -o cputime= -p "$ML_PID") meetlited; see also perf record -g -p $ML_PID"
