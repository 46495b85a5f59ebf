#!/bin/bash
# Signaling benchmark (not a test): messages relayed per second and their latency (p50, p99)
# with 500 meetings of 4 participants, on one node and across two nodes on one PostgreSQL; and
# the memory of 10,000 idle signaling connections. The load client is sigload (tests/bench/
# sigload.c, one thread, epoll); its own CPU is reported beside the server's and PostgreSQL's.
# Participants are made in SQL and their signaling tokens minted here with the run's JWT secret,
# so the figures measure signaling, not signups and joins.
#
#   tests/bench/bench-signaling.sh [BUILD_DIR]     (default: build-sig-opt, an optimised build
#                                                    with `make tests/bench/sigload` done)
#
# Environment: MEETINGS (500), PER (4: participants per meeting), RATES ("5000 10000"),
# DURATION (20 s measured), WARMUP (3 s), IDLE (10000 idle connections; 0 skips), PARTS
# ("idle one two"), POOL (database.pool-size, 4), BENCH_KEEP (keep the work directory), PERF
# (non-empty: `perf record -a -g` over each relay run, kept in the work directory with BENCH_KEEP),
# SQL_DIR (the migrations, default sql/: an older build is measured with the schema it knew),
# NODE_SET (more key=value settings for the nodes, space-separated, e.g.
# signaling.publish-delay-us=2000), HOST_IDLE (part idle-host: this many idle connections on one
# host, 100000) over HOST_PROCS meetlited processes (6) and as many sigload processes: the way
# to hold 100,000 where one process may not open that many descriptors.
set -eu
cd "$(dirname "$0")/../.."
top=$(pwd)
BUILD=${1:-build-sig-opt}
export MEETLITED="$top/$BUILD/meetlited" MLLOAD="$top/$BUILD/tests/bench/sigload"
export TMPDIR=${TMPDIR:-/var/tmp}
# shellcheck source=tests/bench/lib.sh
. tests/bench/lib.sh
MEETINGS=${MEETINGS:-500}; PER=${PER:-4}; RATES=${RATES:-"5000 10000"}
DURATION=${DURATION:-20}; WARMUP=${WARMUP:-3}; IDLE=${IDLE:-10000}; POOL=${POOL:-4}
PARTS=${PARTS:-"idle one two"}
HOST_IDLE=${HOST_IDLE:-100000}; HOST_PROCS=${HOST_PROCS:-6}
case " $PARTS " in *" idle-host "*) ;; *) HOST_IDLE=0 ;; esac
[ -x "$MEETLITED" ] || bench_die "$MEETLITED not built (configure without --enable-devel there)"
[ -x "$MLLOAD" ] || bench_die "$MLLOAD not built: make tests/bench/sigload in $BUILD"
bench_init mlbench-sig
chmod 755 "$BENCH_WORK"
PGDIR="$BENCH_WORK/pg"
cleanup() {
    bench_cleanup_nodes
    sh tests/lib/pg.sh stop "$PGDIR" >/dev/null 2>&1 || true
    bench_cleanup
}
bench_cleanup_nodes() {
    local pid
    for pid in "${BENCH_PIDS[@]}"; do bench_stop "$pid" 10; done
}
trap cleanup EXIT

URL=$(sh tests/lib/pg.sh start "$PGDIR")
PGPID=$(head -n 1 "$PGDIR/data/postmaster.pid")
SECRET=$(openssl rand -hex 32)
"$MEETLITED" --set "database.url=$URL" --set "database.migrations-dir=${SQL_DIR:-$top/sql}" --migrate \
    >/dev/null 2>&1 || bench_die "migration failed"

# One process holds every idle connection: the hard limit of open files bounds it (raising it
# needs CAP_SYS_RESOURCE; a container may not have it).
HARD=$(ulimit -Hn)
if [ "$HARD" != unlimited ] && [ "$IDLE" -gt $((HARD - 200)) ]; then
    bench_log "WARNING: IDLE=$IDLE is above the hard open-file limit ($HARD) less 200: lowered"
    IDLE=$((HARD - 200))
fi
if [ "$HOST_IDLE" -gt 0 ] && [ $(( (HOST_IDLE + HOST_PROCS - 1) / HOST_PROCS )) -gt $((HARD - 200)) ]; then
    bench_die "HOST_IDLE=$HOST_IDLE over $HOST_PROCS processes is above the hard open-file limit ($HARD) less 200 a process: raise HOST_PROCS"
fi
NPART=$((MEETINGS * PER))
NIDLE=$(( HOST_IDLE > IDLE ? HOST_IDLE : IDLE ))
[ "$NIDLE" -gt "$NPART" ] && NIDLE_M=$(( (NIDLE + PER - 1) / PER )) || NIDLE_M=$MEETINGS
NM=$(( NIDLE_M > MEETINGS ? NIDLE_M : MEETINGS ))
bench_log "making $NM meetings of $PER participants in SQL"
psql "$URL" -Xq <<SQL
INSERT INTO users (id, email, display_name, password_hash, signup_method)
SELECT md5('u' || i)::uuid, 'u' || i || '@bench.test', 'User ' || i, '\$argon2id\$bench', 'password'
FROM generate_series(0, $((NM * PER - 1))) i;
INSERT INTO meetings (id, code, title, host_id, expires_at, max_participants)
SELECT md5('m' || i)::uuid,
       translate(substr(md5('c' || i), 1, 3) || '-' || substr(md5('d' || i), 1, 4) || '-' ||
                 substr(md5('e' || i), 1, 3), '0123456789', 'ghijklmnop'),
       'Bench ' || i, md5('u' || (i * $PER))::uuid, now() + interval '6 hours', 1000
FROM generate_series(0, $((NM - 1))) i;
INSERT INTO participants (id, meeting_id, user_id, display_name, role)
SELECT md5('p' || (i * $PER + k))::uuid, md5('m' || i)::uuid, md5('u' || (i * $PER + k))::uuid,
       'User ' || (i * $PER + k), CASE WHEN k = 0 THEN 'ADMIN'::participant_role ELSE 'PARTICIPANT' END
FROM generate_series(0, $((NM - 1))) i, generate_series(0, $((PER - 1))) k;
SQL

# One line per participant: meeting, node (0 or 1: two of each meeting on each node), id, token.
"$PYTHON3" - "$SECRET" "$NM" "$PER" "$BENCH_WORK/tokens.txt" <<'PY'
import base64, hashlib, hmac, json, sys, time, uuid
secret, nm, per, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
uid = lambda s: str(uuid.UUID(hashlib.md5(s.encode()).hexdigest()))
now = int(time.time())
h = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
with open(out, "w") as f:
    for i in range(nm):
        for k in range(per):
            n = i * per + k
            c = {"iss": "meetlite", "aud": "meetlite-signaling", "sub": uid("u%d" % n),
                 "mid": uid("m%d" % i), "pid": uid("p%d" % n),
                 "role": "ADMIN" if k == 0 else "PARTICIPANT", "iat": now, "nbf": now,
                 "exp": now + 7200}
            p = b64(json.dumps(c).encode())
            s = b64(hmac.new(secret.encode(), (h + "." + p).encode(), hashlib.sha256).digest())
            f.write("%d %d %s %s.%s.%s\n" % (i, k % 2, uid("p%d" % n), h, p, s))
PY
head -n "$NPART" "$BENCH_WORK/tokens.txt" >"$BENCH_WORK/relay.txt"
head -n "$IDLE" "$BENCH_WORK/tokens.txt" >"$BENCH_WORK/idle.txt"

# start_node NAME NODE-ID: a meetlited serving signaling; sets NODE_PID and NODE_PORT.
start_node() {
    local port tport
    port=$(bench_free_port)
    tport=$(bench_free_port)
    bench_start "$1" "" "$MEETLITED" --set "database.url=$URL" --set "database.pool-size=$POOL" \
        --set "control.listen=127.0.0.1:$port" --set "turn.listen=udp://127.0.0.1:$tport" \
        --set "turn.auth-secret=bench-turn-secret" --set "auth.jwt-secret=$SECRET" \
        --set "control.access-log=no" --set "log.level=notice" --set "net.workers=1" \
        --set "control.max-connections=$((${NODE_CONNS:-$IDLE} + 2000))" --set "signaling.node-id=$2" \
        --set "control.max-connections-per-address=$((${NODE_CONNS:-$IDLE} + 2000))" \
        --set "daemon.max-open-files=$(( IDLE + 4096 > 65536 ? IDLE + 4096 : 65536 ))" \
        $(for kv in ${NODE_SET:-}; do printf -- '--set %s ' "$kv"; done)
    NODE_PID=$BENCH_LAST_PID
    NODE_PORT=$port
    local i=0
    until grep -q "registered for signaling" "$BENCH_WORK/$1.log"; do
        i=$((i + 1))
        [ $i -lt 200 ] || { cat "$BENCH_WORK/$1.log"; bench_die "$1 did not start"; }
        sleep 0.1
    done
}

pg_commits() { # transactions committed in the database (every backend, ours only)
    psql "$URL" -XAtqc "SELECT pg_stat_force_next_flush(); SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()" 2>/dev/null | tail -1
}

pg_ticks() { # the CPU of our PostgreSQL: the postmaster and its children
    local t=0 p
    for p in $PGPID $(pgrep -P "$PGPID"); do t=$((t + $(bench_cpu_ticks "$p"))); done
    echo $t
}

# relay LABEL SERVERS NODE-PIDS...: one run per rate; prints a line per rate.
relay() {
    local label=$1 servers=$2 rate out s0 s1 p0 p1 m0 m1 pid
    shift 2
    for rate in $RATES; do
        bench_wait_quiet || true
        out="$BENCH_WORK/relay-$label-$rate.json"
        s0=0; for pid in "$@"; do s0=$((s0 + $(bench_cpu_ticks "$pid"))); done
        p0=$(pg_ticks); m0=$(bench_cpu_stat); x0=$(pg_commits)
        local perf=""
        if [ -n "${PERF:-}" ]; then # the whole machine sampled while relaying (perf report --comm)
            perf record -a -g -F "${PERF_FREQ:-499}" -o "$BENCH_WORK/perf-$label-$rate.data" \
                -- sleep $((WARMUP + DURATION + 2)) >/dev/null 2>&1 &
            perf=$!
        fi
        timeout -k 5 $((DURATION + WARMUP + 120)) "$MLLOAD" --mode relay --tokens "$BENCH_WORK/relay.txt" \
            --server "$servers" --rate "$rate" --duration "$DURATION" --warmup "$WARMUP" \
            >"$out" 2>"$out.err" || true
        [ -z "$perf" ] || wait "$perf" || true
        s1=0; for pid in "$@"; do s1=$((s1 + $(bench_cpu_ticks "$pid"))); done
        p1=$(pg_ticks); m1=$(bench_cpu_stat); sleep 3; x1=$(pg_commits) # backends flush their counts at their next transaction (heartbeats: 2 s)
        "$PYTHON3" - "$out" "$label" "$s0" "$s1" "$p0" "$p1" $m0 $m1 "$CLK_TCK" <<'PY'
import json, sys
f, label, s0, s1, p0, p1, m0b, m0s, m1b, m1s, tck = sys.argv[1:12]
tck = float(tck)
try:
    d = json.load(open(f))
except ValueError:
    print("%-9s run failed: %s" % (label, open(f + ".err").read()[-400:])); sys.exit(0)
wall = d["connect_s"] + d["gen_wall_s"]
srv, pg, gen = (int(s1) - int(s0)) / tck, (int(p1) - int(p0)) / tck, d["gen_cpu_s"] + d["connect_cpu_s"]
other = (int(m1b) - int(m0b)) / tck - srv - pg - gen
print("%-9s rate %6.0f/s: relayed %7.0f/s  lost %d  p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  "
      "p99.9 %.2f ms  max %.1f ms | joined %d/%d in %.1fs | cpu over %.0fs: meetlited %.1fs  "
      "postgres %.1fs  sigload %.1fs (%.0f%% of a core while relaying)  other %.1fs"
      % (label, d["rate"], d["received_per_s"], d["lost"], d["p50_us"] / 1e3, d["p90_us"] / 1e3,
         d["p99_us"] / 1e3, d["p999_us"] / 1e3, d["max_us"] / 1e3, d["joined"],
         d["participants"], d["connect_s"], wall, srv, pg, gen, d["gen_cpu_pct"], other))
PY
        echo "          PostgreSQL: $((x1 - x0)) transactions committed over the run (connects" \
             "and heartbeats included), $(( (p1 - p0) * 1000000 / CLK_TCK / ((x1 - x0) > 0 ? x1 - x0 : 1) )) us" \
             "of its CPU each"
        grep -h "messages over" "$out.err" | cut -c1-600 || true
    done
}

for part in $PARTS; do
    case $part in
    idle)
        [ "$IDLE" -gt 0 ] || continue
        start_node idle node-idle
        sleep 1
        rss0=$(bench_rss_kb "$NODE_PID")
        bench_log "idle: $IDLE connections to one node (RSS before: $((rss0 / 1024)) MiB)"
        rm -f "$BENCH_WORK/idle.ready"
        "$MLLOAD" --mode idle --tokens "$BENCH_WORK/idle.txt" --server "127.0.0.1:$NODE_PORT" \
            --duration 900 --concurrency 256 --ready-file "$BENCH_WORK/idle.ready" \
            --sources $(( IDLE / 25000 + 1 )) --connect-timeout 600 \
            >"$BENCH_WORK/idle.json" 2>"$BENCH_WORK/idle.err" &
        gen=$!
        i=0
        until [ -f "$BENCH_WORK/idle.ready" ] || ! kill -0 $gen 2>/dev/null; do
            i=$((i + 1)); [ $i -lt 6000 ] || break; sleep 0.1
        done
        sleep 3
        rss1=$(bench_rss_kb "$NODE_PID")
        hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$NODE_PID/status")
        open=$(psql "$URL" -XAtqc "SELECT count(*) FROM sig_connections WHERE node_id = 'node-idle'")
        kill -TERM $gen 2>/dev/null || true
        wait $gen || true
        echo "idle      $IDLE connections: $open sessions recorded; meetlited RSS $((rss0 / 1024)) MiB" \
             "before, $((rss1 / 1024)) MiB with them open (peak $((hwm / 1024)) MiB):" \
             "$(( (rss1 - rss0) * 1024 / (open > 0 ? open : 1) )) bytes a connection;" \
             "$(tail -1 "$BENCH_WORK/idle.err")"
        bench_stop "$NODE_PID" 10
        ;;
    idle-host) # HOST_IDLE connections held on one host by HOST_PROCS nodes, each its own share
        [ "$HOST_IDLE" -gt 0 ] || continue
        # sigload spreads each share over source addresses (127.0.0.1 to .N, the port chosen at
        # connect time): one address's ephemeral ports ran out at ~14,500 a node with six nodes
        share=$(( (HOST_IDLE + HOST_PROCS - 1) / HOST_PROCS ))
        NODE_CONNS=$share
        pids=(); gens=(); ports=(); rss0=0
        for k in $(seq 1 "$HOST_PROCS"); do
            start_node "idle-h$k" "node-h$k"
            pids+=("$NODE_PID")
            sed -n "$(( (k - 1) * share + 1 )),$(( k * share > HOST_IDLE ? HOST_IDLE : k * share ))p" \
                "$BENCH_WORK/tokens.txt" >"$BENCH_WORK/idle-h$k.txt"
            ports+=("$NODE_PORT")
        done
        sleep 1
        for pid in "${pids[@]}"; do rss0=$((rss0 + $(bench_rss_kb "$pid"))); done
        bench_log "idle-host: $HOST_IDLE connections to $HOST_PROCS nodes on this host, $share each (RSS before: $((rss0 / 1024)) MiB in all)"
        t0=$(date +%s)
        for k in $(seq 1 "$HOST_PROCS"); do
            port=${ports[$((k - 1))]}
            rm -f "$BENCH_WORK/idle-h$k.ready"
            "$MLLOAD" --mode idle --tokens "$BENCH_WORK/idle-h$k.txt" --server "127.0.0.1:$port" \
                --duration 1500 --concurrency 128 --ready-file "$BENCH_WORK/idle-h$k.ready" \
                --sources $(( share / 5000 + 1 )) --connect-timeout 600 \
                >"$BENCH_WORK/idle-h$k.json" 2>"$BENCH_WORK/idle-h$k.err" &
            gens+=($!)
        done
        for k in $(seq 1 "$HOST_PROCS"); do
            i=0
            until [ -f "$BENCH_WORK/idle-h$k.ready" ] || ! kill -0 "${gens[$((k - 1))]}" 2>/dev/null; do
                i=$((i + 1)); [ $i -lt 12000 ] || break; sleep 0.1
            done
        done
        t1=$(date +%s)
        sleep 3
        rss1=0; hwm=0
        for pid in "${pids[@]}"; do
            rss1=$((rss1 + $(bench_rss_kb "$pid")))
            hwm=$((hwm + $(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")))
        done
        open=$(psql "$URL" -XAtqc "SELECT count(*) FROM sig_connections WHERE node_id LIKE 'node-h%'")
        # the nodes' CPU while the connections idle (signaling's pings and their pongs included)
        c0=0; for pid in "${pids[@]}"; do c0=$((c0 + $(bench_cpu_ticks "$pid"))); done
        sleep 20
        c1=0; for pid in "${pids[@]}"; do c1=$((c1 + $(bench_cpu_ticks "$pid"))); done
        for g in "${gens[@]}"; do kill -TERM "$g" 2>/dev/null || true; done
        for g in "${gens[@]}"; do wait "$g" || true; done
        echo "idle-host $HOST_IDLE connections to $HOST_PROCS processes on one host, connected in" \
             "$((t1 - t0)) s: $open sessions recorded; meetlited RSS $((rss0 / 1024)) MiB before," \
             "$((rss1 / 1024)) MiB with them open (peaks summed: $((hwm / 1024)) MiB):" \
             "$(( (rss1 - rss0) * 1024 / (open > 0 ? open : 1) )) bytes a connection;" \
             "idle, the nodes used $(( (c1 - c0) * 1000 / CLK_TCK / 20 ))/1000 of a core in all over 20 s"
        for k in $(seq 1 "$HOST_PROCS"); do echo "          h$k: $(tail -1 "$BENCH_WORK/idle-h$k.err")"; done
        for pid in "${pids[@]}"; do bench_stop "$pid" 10; done
        NODE_CONNS=""
        ;;
    one)
        start_node one node-one
        relay one "127.0.0.1:$NODE_PORT" "$NODE_PID"
        bench_stop "$NODE_PID" 10
        ;;
    two)
        start_node two-a node-a
        pa=$NODE_PID; porta=$NODE_PORT
        start_node two-b node-b
        pb=$NODE_PID; portb=$NODE_PORT
        sleep 1
        relay two "127.0.0.1:$porta,127.0.0.1:$portb" "$pa" "$pb"
        bench_stop "$pa" 10
        bench_stop "$pb" 10
        ;;
    esac
done
