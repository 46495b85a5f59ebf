#!/bin/bash
# tests/bench/bench-turn.sh: TURN relay rate (clients over UDP, TCP and TLS; to each other or to
# external UDP peers), allocation rate and memory, allocations behind one NAT address, and what
# a flood of forged unauthenticated requests sends its victim, meetlited vs coturn.
set -u
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"

usage() {
    cat <<EOF
usage: $0 [options]
  --threads N          server threads: meetlited net.workers, coturn --relay-threads (1)
  --servers LIST       which servers, in order (default "meetlited coturn"; a missing one is skipped;
                       meetlited-shared: meetlited with TLS on a shared:// listener;
                       meetlited-split, coturn-split: two nodes of that server, each pair's
                       clients one on each, its packets relayed from node to node through
                       the kernel: a meeting spread over two nodes; relay, tcp and tls with
                       --peers pairs only, CPU summed over both nodes)
  --net-io LIST        meetlited's UDP data paths to measure, each as a server of its own named
                       meetlited-PATH (e.g. "uring epoll": net.io=uring and net.io=epoll in the
                       same run; uring-ring and uring-loop: net.io=uring with net.uring-wait=ring
                       or loop); default: one meetlited with its default (net.io=auto)
  --parts LIST         what to measure (default "relay tcp tls alloc idle nat flood"): relay =
                       clients over UDP, tcp and tls = clients over TCP and TLS (relayed side
                       UDP); nat = allocation sequences from many addresses and from one (a
                       campus behind one NAT address), default settings; flood = unauthenticated
                       requests naming one victim address, and the answers it gets
  --peers LIST         relay, tcp, tls: "pairs" (clients relay to each other's relayed
                       address), "external" (each client to a UDP peer of mlload's that
                       reflects every packet back) or both (default "pairs external")
  --step S             seconds per relay step (3)
  --pairs N            relay: client pairs (16)
  --sizes LIST         relay: payload sizes in bytes (default "100 1000")
  --send-indications   relay: Send/Data indications instead of ChannelData
  --start-rate R       relay: first offered rate, packets/s in total (20000)
  --fixed-rates LIST   relay, tcp, tls: after each search, runs at these rates (e.g. 40000),
                       --repeats times per server, alternating; medians of server CPU per packet,
                       latency p50/p99 and loss
  --repeats N          runs per server and fixed rate (3)
  --no-search          relay, tcp, tls: only the fixed-rate runs, no loss-free rate search
  --late-ms MS         tcp, tls: a packet later than this counts as lost (100)
  --tls-version V      tls: 1.2 or 1.3 (1.2: coturn 4.6.1 has no TLS 1.3)
  --tls-cipher C       tls: the one cipher offered (mlload's default for the version)
  --alloc-count N      alloc: sequences per run (4000)
  --concurrency N      alloc: sequences in flight (64)
  --alloc-transports L alloc: client transports (default "udp"; "udp tcp tls" for all)
  --idle-allocs N      idle: allocations held (10000); the open-file limits are raised to fit
                       (beyond the hard limit as root), else the count is capped
  --idle-relay-addrs N idle: meetlited relays from N addresses, 127.0.0.1 to 127.0.0.N (1); one
                       address's relay-ports range (11,000 ports here) holds that many allocations
  --idle-lifetime S    idle: LIFETIME the generator asks for; it refreshes every S/2 (600)
  --idle-hold S        idle: seconds held after the ready file; beyond the first 8 s, RSS and CPU
                       are also measured over the whole hold, refreshes included (8)
  --nat-count N        nat: sequences per run, and addresses in the many-address runs (5000)
  --nat-concurrency L  nat: sequences in flight, one set of runs per value (default "64 1000":
                       a steady stream, and a class whose clients start together)
  --nat-rounds N       nat: rounds of "many" then "one" per server (3)
  --flood-rate R       flood: unauthenticated requests per second (20000)
  --flood-time S       flood: seconds (5)
  --idle-procs N       idle: meetlited only, N server processes (each with its own relay
                       addresses) and N generators share the allocations, for more than one
                       process's open-file limit holds; RSS, descriptors and CPU are summed (1)
  --gen-threads N      generator threads (1)
  --burst N            relay, tcp, tls: packets per pacing tick of the generator (mlload's 16);
                       more spends fewer of its system calls per packet (a higher ceiling)
  --max-time S         stop each relay search after S seconds (300)
  --out FILE           write the results as JSON
  --no-pin             do not pin the server and the generator to separate cores
  --rt N               run every server at SCHED_FIFO priority N (root): the host's other
                       tasks (agents, kernel threads) can no longer hold a server off its core,
                       so latency tails compare the servers rather than the host
Environment: MLLOAD, MEETLITED, TURNSERVER (binaries), MEETLITED_ARGS (extra arguments),
BENCH_MAX_LOSS (0.1, percent), BENCH_KEEP=1 keeps the work directory with every run's JSON.
EOF
}

THREADS=1 STEP=3 PAIRS=16 SIZES="100 1000" IND="" START=20000 ALLOC_COUNT=4000 CONC=64
IDLE=10000 GEN_THREADS=1 BURST="" MAX_TIME=300 OUT="" SERVERS="meetlited coturn" NET_IO=""
FIXED_RATES="" REPEATS=3 SEARCH=yes IDLE_ADDRS=1 IDLE_LIFETIME=600 IDLE_HOLD=8 IDLE_PROCS=1
PARTS="relay tcp tls alloc idle nat flood" PEERS="pairs external" LATE_MS=100 TLS_VERSION=1.2
TLS_CIPHER="" ALLOC_TRANSPORTS=udp NAT_COUNT=5000 NAT_CONCS="64 1000" NAT_ROUNDS=3
FLOOD_RATE=20000 FLOOD_TIME=5 RT=()
while [ $# -gt 0 ]; do
    case $1 in
    --threads) THREADS=$2; shift ;;
    --servers) SERVERS=$2; shift ;;
    --net-io) NET_IO=$2; shift ;;
    --fixed-rates) FIXED_RATES=$2; shift ;;
    --repeats) REPEATS=$2; shift ;;
    --rt)
        [[ $2 =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] && [ "$2" -le 99 ] || { echo "--rt: a priority from 1 to 99" >&2; exit 2; }
        RT=(chrt -f "$2"); shift ;;
    --no-search) SEARCH=no ;;
    --idle-relay-addrs) IDLE_ADDRS=$2; shift ;;
    --idle-lifetime) IDLE_LIFETIME=$2; shift ;;
    --idle-hold) IDLE_HOLD=$2; shift ;;
    --idle-procs) IDLE_PROCS=$2; shift ;;
    --parts) PARTS=$2; shift ;;
    --step) STEP=$2; shift ;;
    --pairs) PAIRS=$2; shift ;;
    --sizes) SIZES=$2; shift ;;
    --send-indications) IND=--send-indications ;;
    --start-rate) START=$2; shift ;;
    --peers) PEERS=$2; shift ;;
    --late-ms) LATE_MS=$2; shift ;;
    --tls-version) TLS_VERSION=$2; shift ;;
    --tls-cipher) TLS_CIPHER=$2; shift ;;
    --alloc-count) ALLOC_COUNT=$2; shift ;;
    --concurrency) CONC=$2; shift ;;
    --alloc-transports) ALLOC_TRANSPORTS=$2; shift ;;
    --idle-allocs) IDLE=$2; shift ;;
    --nat-count) NAT_COUNT=$2; shift ;;
    --nat-concurrency) NAT_CONCS=$2; shift ;;
    --nat-rounds) NAT_ROUNDS=$2; shift ;;
    --flood-rate) FLOOD_RATE=$2; shift ;;
    --flood-time) FLOOD_TIME=$2; shift ;;
    --gen-threads) GEN_THREADS=$2; shift ;;
    --burst) BURST=$2; shift ;;
    --max-time) MAX_TIME=$2; shift ;;
    --out) OUT=$2; shift ;;
    --no-pin) BENCH_PIN=no ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
    shift
done

bench_init bench-turn
has_part() { [[ " $PARTS " == *" $1 "* ]]; }
# the relay searches to run: TRANSPORT.PEER
SEARCHES=()
for tr in udp tcp tls; do
    part=$tr
    [ "$tr" = udp ] && part=relay
    has_part "$part" || continue
    for peer in $PEERS; do
        case $peer in pairs | external) ;; *) bench_die "unknown peer mode '$peer'" ;; esac
        SEARCHES+=("$tr.$peer")
    done
done
# MAX_TIME bounds each search; waiting for a quiet machine stops after all of them could have run
BENCH_MAX_TIME=$((MAX_TIME * (${#SEARCHES[@]} * $(wc -w <<<"$SIZES") + 1) + 600))
bench_pin_plan "$THREADS"
[ ${#RT[@]} -gt 0 ] && bench_log "every server at SCHED_FIFO priority ${RT[2]} (--rt)"
STREAMS=""
for a in $PARTS; do
    case $a in tcp | tls) STREAMS=yes ;; esac
done
if has_part alloc; then
    for a in $ALLOC_TRANSPORTS; do
        case $a in udp) ;; tcp | tls) STREAMS=yes ;; *) bench_die "unknown transport '$a'" ;; esac
    done
fi
if [ -n "$STREAMS" ]; then
    # a self-signed certificate for this run only (in the work directory, removed at exit)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=bench.invalid -keyout "$BENCH_WORK/key.pem" -out "$BENCH_WORK/cert.pem" \
        >/dev/null 2>&1 || bench_die "openssl could not make a certificate"
fi
TLS_ARGS="--tls-version $TLS_VERSION${TLS_CIPHER:+ --tls-cipher $TLS_CIPHER}"
BENCH_MAX_STEPS=${BENCH_MAX_STEPS:-7}
SECRET=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
RESULTS="$BENCH_WORK/results.txt" # key=value lines, turned into JSON at the end
: >"$RESULTS"

# Every allocation costs the server a relay socket and the generator a client socket: the
# open-file limit (raised to the hard limit here; each process has its own) bounds the idle
# test. coturn sizes itself at about nofile/2 sessions and says so in its log.
IDLE_EACH=$(((IDLE + IDLE_PROCS - 1) / IDLE_PROCS)) # allocations per server process
if has_part idle && [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt $((IDLE_EACH + 4096)) ]; then
    ulimit -Hn $((IDLE_EACH + 4096)) 2>/dev/null || true # as root with CAP_SYS_RESOURCE
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [ "$NOFILE" != unlimited ] && [ $((NOFILE - 512)) -lt "$IDLE_EACH" ]; then
    bench_log "open-file limit $NOFILE (hard): idle test capped at $((NOFILE - 512))" \
        "allocations per process instead of $IDLE_EACH (use --idle-procs)"
    IDLE_EACH=$((NOFILE - 512))
fi
IDLE_ONE=$IDLE # a server in one process (coturn)
if [ "$NOFILE" != unlimited ] && [ $((NOFILE - 512)) -lt "$IDLE_ONE" ]; then
    IDLE_ONE=$((NOFILE - 512))
fi

declare -A PID PORT TLSPORT PORT2 TLSPORT2
ACTIVE=()

# start_node NAME KIND RELAY-PORTS [idle [PROC]]: starts one server process of KIND (meetlited,
# meetlited-shared, meetlited-PATH for net.io=PATH, or coturn) on a free port and waits until it
# allocates; sets NODE_PID, NODE_PORT and NODE_TLSPORT. RELAY-PORTS is its relay port range,
# LO-HI: the servers of a run get disjoint ones. For the idle part meetlited relays from
# --idle-relay-addrs addresses; process PROC of several (--idle-procs) gets the next ones.
# Both run with their default limits on unauthenticated requests: every generator socket of a
# run shares one source address and each sequence starts with a 401, which is exactly the case
# meetlited's budget (turn.unauth-answer-rate) must let through; coturn 4.6 has no such limit.
# With the tcp or tls parts both servers also listen on TCP (the UDP port) and TLS (another
# port), with the run's certificate; otherwise on UDP only, as before.
start_node() {
    local name=$1 kind=$2 ports=$3 mode=${4:-} proc=${5:-} port tport=""
    port=$(bench_free_port) || bench_die "no free port"
    [ -n "$STREAMS" ] && { tport=$(bench_free_port) || bench_die "no free port"; }
    case $kind in
    meetlited*)
        local listen="udp://127.0.0.1:$port" tls=() io=() relay=127.0.0.1 i scheme=tls
        case $kind in
        # meetlited-shared: TLS on a shared:// listener (one port for TLS, TURN and HTTP), to
        # compare with the dedicated tls:// one (docs/benchmarks.md)
        meetlited-shared) scheme=shared ;;
        # meetlited-PATH: that UDP data path (net.io)
        # meetlited-uring-ring, -uring-loop: io_uring, the worker sleeping in its ring or in
        # libevent's epoll_wait (net.uring-wait)
        meetlited-uring-*) io=(--set "net.io=uring" --set "net.uring-wait=${kind#meetlited-uring-}") ;;
        meetlited-*) io=(--set "net.io=${kind#meetlited-}") ;;
        esac
        if [ "$mode" = idle ]; then
            local first=$((1 + (${proc:-1} - 1) * IDLE_ADDRS))
            relay=127.0.0.$first
            for i in $(seq 1 $((IDLE_ADDRS - 1))); do relay="$relay, 127.0.0.$((first + i))"; done
        fi
        if [ -n "$STREAMS" ]; then
            listen="$listen, tcp://127.0.0.1:$port, $scheme://127.0.0.1:$tport"
            tls=(--set "turn.tls-cert=$BENCH_WORK/cert.pem" --set "turn.tls-key=$BENCH_WORK/key.pem")
        fi
        # turn.allow-peers=127.0.0.0/8 also lets a node relay to the other node's relayed
        # addresses (127.0.0.1, another port range) when a meeting is spread over two
        # shellcheck disable=SC2086
        bench_start "$name" "$SRV_CPUS" ${RT[@]+"${RT[@]}"} "$MEETLITED" --set "turn.listen=$listen" "${tls[@]}" "${io[@]}" \
            --set "net.workers=$THREADS" --set "turn.auth-secret=$SECRET" --set turn.realm=bench \
            --set turn.allow-peers=127.0.0.0/8 --set "turn.relay-address=$relay" \
            --set "turn.relay-ports=$ports" \
            --set "daemon.max-open-files=$((IDLE_EACH + 4096))" \
            --set "turn.max-allocations=$((IDLE_EACH + 100000))" ${MEETLITED_ARGS:-}
        ;;
    coturn)
        local streams=(--no-tls --no-tcp)
        if [ -n "$STREAMS" ]; then
            streams=("--tls-listening-port=$tport" "--cert=$BENCH_WORK/cert.pem"
                "--pkey=$BENCH_WORK/key.pem")
        fi
        bench_start "$name" "$SRV_CPUS" ${RT[@]+"${RT[@]}"} "$TURNSERVER" -n --no-cli --no-dtls "${streams[@]}" \
            --listening-ip=127.0.0.1 "--listening-port=$port" --relay-ip=127.0.0.1 \
            "--relay-threads=$THREADS" --use-auth-secret "--static-auth-secret=$SECRET" \
            --realm=bench --allow-loopback-peers "--min-port=${ports%-*}" "--max-port=${ports#*-}" \
            --log-file=stdout --simple-log "--pidfile=$BENCH_WORK/$name.pid"
        ;;
    esac
    NODE_PID=$BENCH_LAST_PID
    NODE_PORT=$port
    NODE_TLSPORT=$tport
    local ok=0
    for _ in $(seq 1 20); do
        if ! bench_alive "$NODE_PID"; then
            tail -20 "$BENCH_WORK/$name.log" | sed 's/^/    /' >&2
            bench_die "$name exited at startup (log above)"
        fi
        if bench_run "$BENCH_WORK/ready-$name.json" "$NODE_PID" turn-alloc --secret "$SECRET" \
            --server "127.0.0.1:$port" --count 2 --concurrency 2 --duration 5 --quiet &&
            [ "$(bench_json "$BENCH_WORK/ready-$name.json" setup_ok)" = 2 ]; then
            ok=1
            break
        fi
        sleep 0.5
    done
    [ $ok = 1 ] || bench_die "$name does not allocate on 127.0.0.1:$port (see $BENCH_WORK/ready-$name.json.err)"
    if [ -n "$STREAMS" ]; then
        local tr p
        for tr in tcp tls; do
            p=$port
            [ "$tr" = tls ] && p=$tport
            # shellcheck disable=SC2086
            bench_run "$BENCH_WORK/ready-$tr-$name.json" "$NODE_PID" turn-alloc --secret "$SECRET" \
                --server "127.0.0.1:$p" --transport "$tr" $TLS_ARGS --count 2 \
                --concurrency 2 --duration 5 --quiet || true
            if [ "$(bench_json "$BENCH_WORK/ready-$tr-$name.json" setup_ok)" != 2 ]; then
                bench_die "$name does not allocate over $tr (see $BENCH_WORK/ready-$tr-$name.json.err)"
            fi
        done
    fi
    local io_line=""
    case $kind in meetlited*) io_line=$(grep -m1 -o 'UDP data path: .*' "$BENCH_WORK/$name.log" || true) ;; esac
    bench_log "$name ready on 127.0.0.1:$port${tport:+ (TLS $tport)} (pid $NODE_PID, $THREADS thread(s))${io_line:+; $io_line}"
}

is_split() { [[ $1 == *-split ]]; }

# start_server NAME [idle [PROC]]: starts it (a -split server: its two nodes, node a and node
# b). PID[NAME] is the process, or "a,b" for two nodes (bench_run sums their CPU); PORT2 and
# TLSPORT2 are node b's. With PROC (--idle-procs) the process is known as NAME/PROC. Relay port ranges are disjoint per process; those of the two-node servers lie in
# the kernel's ephemeral range, where a port some socket holds is skipped by both servers (the
# relay part needs a few dozen).
start_server() {
    local s=$1 key=$1
    [ -n "${3:-}" ] && key="$1/$3"
    case $s in
    meetlited-split | coturn-split)
        local kind=${s%-split} base=40000 pa
        [ "$kind" = coturn ] && base=48000
        start_node "$s-a" "$kind" "$base-$((base + 3999))"
        pa=$NODE_PID PORT[$s]=$NODE_PORT TLSPORT[$s]=$NODE_TLSPORT
        start_node "$s-b" "$kind" "$((base + 4000))-$((base + 7999))"
        PID[$s]="$pa,$NODE_PID" PORT2[$s]=$NODE_PORT TLSPORT2[$s]=$NODE_TLSPORT
        return
        ;;
    meetlited*)
        start_node "${key//\//-}" "$s" 21000-31999 "${2:-}" "${3:-}"
        ;;
    coturn)
        start_node "$s" coturn 10000-20999
        ;;
    esac
    PID[$key]=$NODE_PID
    PORT[$key]=$NODE_PORT
    TLSPORT[$key]=$NODE_TLSPORT
}

# stop_server NAME: stops its process(es).
stop_server() {
    local pid
    for pid in ${PID[$1]//,/ }; do
        bench_stop "$pid"
    done
}

srv_port() { # SERVER TRANSPORT
    if [ "$2" = tls ]; then echo "${TLSPORT[$1]}"; else echo "${PORT[$1]}"; fi
}

srv_port2() { # SERVER TRANSPORT: node b of a two-node server
    if [ "$2" = tls ]; then echo "${TLSPORT2[$1]}"; else echo "${PORT2[$1]}"; fi
}

EXPANDED=""
for s in $SERVERS; do
    if [ "$s" = meetlited ] && [ -n "$NET_IO" ]; then
        for io in $NET_IO; do
            case $io in
            uring | epoll | auto | uring-ring | uring-loop) EXPANDED="$EXPANDED meetlited-$io" ;;
            *) bench_die "unknown net.io '$io' (uring, uring-ring, uring-loop, epoll or auto)" ;;
            esac
        done
    else
        EXPANDED="$EXPANDED $s"
    fi
done
for s in $EXPANDED; do
    case $s in
    meetlited*)
        if ! [ -x "$MEETLITED" ]; then
            bench_log "skipping $s: $MEETLITED not found"
            continue
        fi
        ;;
    coturn | coturn-split)
        if [ -z "$TURNSERVER" ]; then
            bench_log "skipping coturn: turnserver not found (apt-get install coturn)"
            continue
        fi
        ;;
    *) bench_die "unknown server '$s'" ;;
    esac
    start_server "$s"
    ACTIVE+=("$s")
done
[ ${#ACTIVE[@]} -gt 0 ] || bench_die "no server to measure"
RELAY_ACTIVE=("${ACTIVE[@]}")
bench_wait_quiet || true

# mean_per NUM-KEY DEN-KEY SCALE FILE...: sum(NUM)*SCALE/sum(DEN) over runs without loss that
# offered the rate they were asked for (a generator starved by other jobs sends less, and its
# CPU per packet then belongs to another rate)
mean_per() {
    "$PYTHON3" -c '
import json, sys
nk, dk, scale = sys.argv[1], sys.argv[2], float(sys.argv[3])
num = den = 0
for f in sys.argv[4:]:
    try:
        d = json.load(open(f))
    except (OSError, ValueError):
        continue
    offered = d.get("send_rate", 0) >= 0.97 * d.get("rate_offered", 0)
    if d.get(dk) and d.get("loss_pct", 0) <= 1 and not d.get("setup_failed") and offered:
        num += d.get(nk, 0); den += d[dk]
print("%.2f" % (num * scale / den) if den else "n/a")
' "$@"
}

# ------------------------------------------------------------ relayed packets
# One search per transport (udp, tcp, tls), peer mode (pairs, external) and size. "pairs": the
# clients relay to each other's relayed address (meetlited hands such packets over in process
# when both allocations are on one worker); "external": each client relays to a UDP peer of
# mlload's own that reflects every packet back, so each counted packet crosses the server
# twice (client to peer, peer to client) and no in-process path applies. Over TCP and TLS a
# packet later than LATE_MS counts as lost: a stream queues what a server cannot keep up with.
# shellcheck disable=SC2086
relay_args() { # SERVER RATE SIZE TRANSPORT PEER
    local extra=""
    [ "$4" != udp ] && extra="--late-ms $LATE_MS"
    [ "$4" = tls ] && extra="$extra $TLS_ARGS"
    # a meeting spread over two nodes: each pair's second client allocates on node b
    is_split "$1" && extra="$extra --server2 127.0.0.1:$(srv_port2 "$1" "$4")"
    echo turn-relay --server "127.0.0.1:$(srv_port "$1" "$4")" --secret "$SECRET" --pairs "$PAIRS" \
        --size "$3" --rate "$2" --duration "$STEP" --drain 500 --setup-timeout 10 \
        --threads "$GEN_THREADS" --transport "$4" --peer "$5" $extra ${IND:+"$IND"} ${GEN_SPIN:+"$GEN_SPIN"} \
        ${BURST:+--burst "$BURST"}
}

relay_verdict() { # FILE RATE: a pair that did not come up fails the step (the server's fault)
    if [ "$(bench_json "$1" setup_failed)" != 0 ]; then
        echo fail
    else
        bench_verdict "$1" "$2"
    fi
}

# search_servers PEER: SRVS, the servers of a search. A two-node server has no part in the
# external mode: there each client's packets go to a peer of its own and back, through one node.
search_servers() {
    local s
    SRVS=()
    for s in "${RELAY_ACTIVE[@]}"; do
        [ "$1" = external ] && is_split "$s" && continue
        SRVS+=("$s")
    done
}
# fixed_medians FILE...: medians over runs of server CPU per received packet (us), latency p50
# and p99 (us), loss (%), the number of runs, other jobs' CPU (s) during them, and the p99 of
# all the runs' packets pooled (us).
fixed_medians() {
    "$PYTHON3" -c '
import json, statistics, sys
sys.path.insert(0, sys.argv[1])
from p99_paired import pooled_pct, run_hist
cpu, p50, p99, loss, oth, hists = [], [], [], [], [], []
for f in sys.argv[2:]:
    try:
        d = json.load(open(f))
    except (OSError, ValueError):
        continue
    if not d.get("received"):
        continue
    cpu.append(d["srv_cpu_s"] * 1e6 / d["received"]); p50.append(d.get("lat_p50_us", 0))
    p99.append(d.get("lat_p99_us", 0)); loss.append(d.get("loss_pct", 0)); oth.append(d.get("other_cpu_s", 0))
    hists.append(run_hist(d))
m = lambda v, fmt: (fmt % statistics.median(v)) if v else "n/a"
print(m(cpu, "%.2f"), m(p50, "%.0f"), m(p99, "%.0f"), m(loss, "%.3f"), len(cpu), m(oth, "%.2f"),
      pooled_pct(hists, 99) or "n/a")
' "$BENCH_DIR" "$@"
}

declare -A RELAY_MAX RELAY_PERMAX RELAY_PERCOM RELAY_WHY RELAY_GENW RELAY_COMMON RELAY_GENCPU FIXED
if [ ${#SEARCHES[@]} -gt 0 ]; then
    BENCH_RUN_LIMIT=$((STEP + 60))
    for search in "${SEARCHES[@]}"; do
        tr=${search%%.*} peer=${search#*.}
        search_servers "$peer"
        for size in $SIZES; do
            key="$tr.$peer.$size" search_t0=$SECONDS
            for s in "${SRVS[@]}"; do
                # shellcheck disable=SC2046
                bench_run "$BENCH_WORK/warmup-$key-$s.json" "${PID[$s]}" $(relay_args "$s" "$START" "$size" "$tr" "$peer") || true
                bench_log "$s $key warm-up: $(bench_summary "$BENCH_WORK/warmup-$key-$s.json")"
                bench_search_init "$s" "$START"
                [ "$SEARCH" = yes ] || S_DONE[$s]=1
            done
            n=0
            while :; do
                pending=0
                for s in "${SRVS[@]}"; do
                    [ "${S_DONE[$s]}" = 1 ] && continue
                    if [ $((SECONDS - search_t0)) -ge "$MAX_TIME" ]; then
                        bench_log "time budget of $MAX_TIME s spent: stopping the $key search"
                        S_DONE[$s]=1
                        S_BUDGET[$s]=1
                        continue
                    fi
                    pending=1
                    n=$((n + 1))
                    rate=${S_NEXT[$s]}
                    f="$BENCH_WORK/relay-$key-step$n-$s-$rate.json"
                    # shellcheck disable=SC2046
                    bench_run "$f" "${PID[$s]}" $(relay_args "$s" "$rate" "$size" "$tr" "$peer") || true
                    v=$(relay_verdict "$f" "$rate")
                    bench_log "$s $key $v: $(bench_summary "$f")"
                    if ! bench_alive "${PID[$s]}"; then
                        bench_log "$s died during the step at $rate/s"
                        S_DONE[$s]=1
                        continue
                    fi
                    bench_search_update "$s" "$rate" "$v" "$f"
                done
                [ $pending = 1 ] || break
            done
            common=0
            for s in "${SRVS[@]}"; do
                lo=${S_LO[$s]}
                if [ "$lo" -gt 0 ] && { [ "$common" -eq 0 ] || [ "$lo" -lt "$common" ]; }; then
                    common=$lo
                fi
            done
            common=$((common * 8 / 10))
            RELAY_COMMON[$key]=$common
            if [ "$common" -gt 0 ]; then
                for round in 1 2; do
                    for s in "${SRVS[@]}"; do
                        bench_alive "${PID[$s]}" || continue
                        f="$BENCH_WORK/relay-$key-common$round-$s.json"
                        for _ in 1 2; do
                            # shellcheck disable=SC2046
                            bench_run "$f" "${PID[$s]}" $(relay_args "$s" "$common" "$size" "$tr" "$peer") || true
                            bench_log "$s $key at the common rate: $(bench_summary "$f")"
                            { [ "$(bench_perturbed "$f")" = yes ] && bench_wait_quiet; } || break
                        done
                    done
                done
            fi
            # fixed rates: REPEATS runs per server, alternating; medians
            for rate in $FIXED_RATES; do
                for round in $(seq 1 "$REPEATS"); do
                    for s in "${SRVS[@]}"; do
                        bench_alive "${PID[$s]}" || continue
                        f="$BENCH_WORK/relay-$key-fixed$rate-$round-$s.json"
                        for _ in 1 2; do
                            # shellcheck disable=SC2046
                            bench_run "$f" "${PID[$s]}" $(relay_args "$s" "$rate" "$size" "$tr" "$peer") || true
                            bench_log "$s $key at $rate/s, run $round: $(bench_summary "$f")"
                            { [ "$(bench_perturbed "$f")" = yes ] && bench_wait_quiet; } || break
                        done
                    done
                done
                for s in "${SRVS[@]}"; do
                    read -r m_cpu m_p50 m_p99 m_loss m_n m_others m_pool < <(fixed_medians "$BENCH_WORK"/relay-"$key"-fixed"$rate"-*-"$s".json)
                    FIXED[$key.$rate.$s]="$m_cpu $m_p50 $m_p99 $m_loss $m_n $m_others $m_pool"
                    {
                        echo "relay.$key.$s.at_$rate.cpu_us_per_pkt_median=$m_cpu"
                        echo "relay.$key.$s.at_$rate.lat_p50_us_median=$m_p50"
                        echo "relay.$key.$s.at_$rate.lat_p99_us_median=$m_p99"
                        echo "relay.$key.$s.at_$rate.lat_p99_us_pooled=$m_pool"
                        echo "relay.$key.$s.at_$rate.loss_pct_median=$m_loss"
                        echo "relay.$key.$s.at_$rate.runs=$m_n"
                        echo "relay.$key.$s.at_$rate.others_cpu_s_median=$m_others"
                    } >>"$RESULTS"
                done
            done
            for s in "${SRVS[@]}"; do
                lo=${S_LO[$s]}
                why=$(bench_search_why "$s")
                pm=n/a genw=n/a gencpu=n/a
                if [ -n "${S_LOFILE[$s]}" ]; then
                    pm=$(mean_per srv_cpu_s received 1e6 "${S_LOFILE[$s]}")
                    genw=$(bench_json "${S_LOFILE[$s]}" gen_work_max_pct)%
                    [ "$GEN_SPIN" ] || genw=$(bench_json "${S_LOFILE[$s]}" gen_busy_max_pct)%
                    # the generator's own cost per counted packet at that maximum: its CPU, or
                    # when it busy-polls (CPU always 100 %) its time sending and receiving
                    if [ "$GEN_SPIN" ]; then
                        gencpu=$(mean_per gen_run_work_s received 1e6 "${S_LOFILE[$s]}")
                    else
                        gencpu=$(mean_per gen_run_cpu_s received 1e6 "${S_LOFILE[$s]}")
                    fi
                fi
                RELAY_MAX[$key.$s]=$lo RELAY_WHY[$key.$s]=$why RELAY_PERMAX[$key.$s]=$pm
                RELAY_GENW[$key.$s]=$genw RELAY_GENCPU[$key.$s]=$gencpu
                RELAY_PERCOM[$key.$s]=$(mean_per srv_cpu_s received 1e6 "$BENCH_WORK"/relay-"$key"-common[12]-"$s".json)
                {
                    echo "relay.$key.$s.max_lossfree_pps=$lo"
                    echo "relay.$key.$s.generator_limited=${S_GENLIM[$s]}"
                    echo "relay.$key.$s.limited_by=$why"
                    echo "relay.$key.$s.cpu_us_per_pkt_at_max=$pm"
                    echo "relay.$key.$s.cpu_us_per_pkt_at_common=${RELAY_PERCOM[$key.$s]}"
                    echo "relay.$key.$s.gen_work_at_max=$genw"
                    echo "relay.$key.$s.gen_cpu_us_per_pkt_at_max=$gencpu"
                    echo "relay.$key.common_pps=$common"
                } >>"$RESULTS"
            done
        done
    done
fi

# The two-node servers are for the relay searches only: stop them before the other parts, which
# restart and measure the rest.
KEEP=()
for s in "${ACTIVE[@]}"; do
    if is_split "$s"; then
        stop_server "$s"
    else
        KEEP+=("$s")
    fi
done
ACTIVE=("${KEEP[@]}")

# ------------------------------------------------------------ allocation sequences
# Fresh servers first: the relay parts leave sessions and pools behind (coturn keeps per-5-tuple
# state for a while after Refresh 0), and the sequences should not pay for them. Over TCP and
# TLS a sequence also opens its connection (and does the TLS handshake) and closes it.
declare -A ALLOC_RATE ALLOC_CPU ALLOC_P50 ALLOC_P99 ALLOC_FAIL ALLOC_GENCPU
if has_part alloc; then
    BENCH_RUN_LIMIT=120
    for s in "${ACTIVE[@]}"; do
        bench_stop "${PID[$s]}"
        start_server "$s"
    done
    bench_wait_quiet || true
    for tr in $ALLOC_TRANSPORTS; do
        targs=""
        [ "$tr" = tls ] && targs=$TLS_ARGS
        for round in 1 2; do
            for s in "${ACTIVE[@]}"; do
                bench_alive "${PID[$s]}" || continue
                f="$BENCH_WORK/alloc-$tr-$round-$s.json"
                for _ in 1 2; do
                    # shellcheck disable=SC2086
                    bench_run "$f" "${PID[$s]}" turn-alloc --server "127.0.0.1:$(srv_port "$s" "$tr")" \
                        --secret "$SECRET" --count "$ALLOC_COUNT" --concurrency "$CONC" --duration 60 \
                        --threads "$GEN_THREADS" --transport "$tr" $targs || true
                    bench_log "$s alloc over $tr: $(bench_json "$f" alloc_rate | tr '\n' ' ')sequences/s," \
                        "$(bench_json "$f" setup_ok setup_failed retransmits srv_cpu_s gen_cpu_s other_cpu_s | tr '\n' ' ')" \
                        "(ok failed retransmits server-CPU-s generator-CPU-s others-CPU-s)"
                    { [ "$(bench_perturbed "$f")" = yes ] && bench_wait_quiet; } || break
                done
            done
        done
        for s in "${ACTIVE[@]}"; do
            k="$tr.$s"
            read -r "ALLOC_RATE[$k]" "ALLOC_P50[$k]" "ALLOC_P99[$k]" "ALLOC_FAIL[$k]" < <("$PYTHON3" -c '
import json, sys
rates, p50, p99, failed = [], [], [], 0
for f in sys.argv[1:]:
    try:
        d = json.load(open(f))
    except (OSError, ValueError):
        continue
    if d.get("setup_ok"):
        rates.append(d["alloc_rate"]); p50.append(d["lat_p50_us"]); p99.append(d["lat_p99_us"])
    failed += d.get("setup_failed", 0)
if rates:
    print("%.0f %.1f %.1f %d" % (sum(rates) / len(rates), sum(p50) / len(p50) / 1e3, max(p99) / 1e3, failed))
else:
    print("0 n/a n/a %d" % failed)
' "$BENCH_WORK"/alloc-"$tr"-[12]-"$s".json)
            ALLOC_CPU[$k]=$(mean_per srv_cpu_s setup_ok 1e6 "$BENCH_WORK"/alloc-"$tr"-[12]-"$s".json)
            ALLOC_GENCPU[$k]=$(mean_per gen_cpu_s setup_ok 1e6 "$BENCH_WORK"/alloc-"$tr"-[12]-"$s".json)
            {
                echo "alloc.$tr.$s.sequences_per_s=${ALLOC_RATE[$k]}"
                echo "alloc.$tr.$s.cpu_us_per_sequence=${ALLOC_CPU[$k]}"
                echo "alloc.$tr.$s.gen_cpu_us_per_sequence=${ALLOC_GENCPU[$k]}"
                echo "alloc.$tr.$s.failed=${ALLOC_FAIL[$k]}"
            } >>"$RESULTS"
        done
    done
fi

# ------------------------------------------------------------ a campus behind one address
# The same allocation sequences, NAT_COUNT of them per run, each on a socket of its own: from
# NAT_COUNT different source addresses (127.x.y.z, one per sequence), and from one address (a
# campus or a CGNAT behind one public address). Fresh servers, default settings (no limit is
# switched off for meetlited). Each concurrency in NAT_CONCS is a set of runs: 64 in flight is
# a steady stream of arrivals, 1000 a class whose clients all start at the same moment. A round
# runs "many" and "one" back to back for a server, and is repeated (up to 3 times) until neither
# run was perturbed by other jobs: the ratio one/many is taken per round, where both saw the
# same machine, and the median of the rounds is reported.
declare -A NAT_RATE NAT_RETX NAT_FAIL NAT_CPU NAT_RATIO NAT_PERT
if has_part nat; then
    BENCH_RUN_LIMIT=180
    for s in "${ACTIVE[@]}"; do
        bench_stop "${PID[$s]}"
        start_server "$s"
    done
    bench_wait_quiet || true
    for conc in $NAT_CONCS; do
        for round in $(seq 1 "$NAT_ROUNDS"); do
            for s in "${ACTIVE[@]}"; do
                for attempt in 1 2 3; do
                    pert=no
                    for src in many one; do
                        bench_alive "${PID[$s]}" || continue
                        f="$BENCH_WORK/nat-$conc-$src-$round-$s.json"
                        sargs=""
                        [ "$src" = many ] && sargs="--sources $NAT_COUNT"
                        # shellcheck disable=SC2086
                        bench_run "$f" "${PID[$s]}" turn-alloc --server "127.0.0.1:${PORT[$s]}" \
                            --secret "$SECRET" --count "$NAT_COUNT" --concurrency "$conc" \
                            --duration 120 --threads "$GEN_THREADS" $sargs || true
                        bench_log "$s nat $conc in flight, round $round, $src address(es): $(bench_json "$f" alloc_rate | tr '\n' ' ')sequences/s," \
                            "$(bench_json "$f" setup_ok setup_failed retransmits srv_cpu_s gen_cpu_s other_cpu_s | tr '\n' ' ')" \
                            "(ok failed retransmits server-CPU-s generator-CPU-s others-CPU-s)"
                        [ "$(bench_perturbed "$f")" = yes ] && pert=yes
                    done
                    [ $pert = no ] && break
                    [ $attempt -lt 3 ] && { bench_wait_quiet || true; }
                done
            done
        done
        for s in "${ACTIVE[@]}"; do
            k="$conc.$s"
            read -r "NAT_RATE[$k.many]" "NAT_RATE[$k.one]" "NAT_RATIO[$k]" "NAT_CPU[$k.many]" \
                "NAT_CPU[$k.one]" "NAT_RETX[$k]" "NAT_FAIL[$k]" "NAT_PERT[$k]" < <("$PYTHON3" - "$BENCH_WORK" "$conc" "$s" "$NAT_ROUNDS" <<'PY'
import json, sys
work, conc, srv, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def load(src, r):
    try:
        return json.load(open("%s/nat-%s-%s-%d-%s.json" % (work, conc, src, r, srv)))
    except (OSError, ValueError):
        return {}
rate = {"many": [], "one": []}
cpu = {"many": [0.0, 0], "one": [0.0, 0]}
retx = {"many": 0, "one": 0}
failed = {"many": 0, "one": 0}
ratios, pert = [], 0
for r in range(1, rounds + 1):
    got = {}
    for src in ("many", "one"):
        d = load(src, r)
        got[src] = d
        if d.get("setup_ok"):
            rate[src].append(d["alloc_rate"])
            cpu[src][0] += d.get("srv_cpu_s", 0)
            cpu[src][1] += d["setup_ok"]
        retx[src] += d.get("retransmits", 0)
        failed[src] += d.get("setup_failed", 0)
        wall = d.get("step_wall_s", 1) or 1
        if d.get("other_cpu_s", 0) > 0.10 * wall or d.get("steal_s", 0) > 0.05 * wall:
            pert += 1
    if got["many"].get("alloc_rate") and got["one"].get("alloc_rate"):
        ratios.append(got["one"]["alloc_rate"] / got["many"]["alloc_rate"])
ratios.sort()
med = ratios[len(ratios) // 2] if len(ratios) % 2 else (ratios[len(ratios) // 2 - 1] + ratios[len(ratios) // 2]) / 2 if ratios else 0
mean = lambda v: sum(v) / len(v) if v else 0
per = lambda c: "%.0f" % (c[0] * 1e6 / c[1]) if c[1] else "n/a"
print("%.0f %.0f %.2f %s %s %d/%d %d/%d %d" % (mean(rate["many"]), mean(rate["one"]), med, per(cpu["many"]),
      per(cpu["one"]), retx["many"], retx["one"], failed["many"], failed["one"], pert))
PY
)
                {
                    echo "nat.c$conc.$s.many_sequences_per_s=${NAT_RATE[$k.many]}"
                    echo "nat.c$conc.$s.one_sequences_per_s=${NAT_RATE[$k.one]}"
                    echo "nat.c$conc.$s.one_over_many_median=${NAT_RATIO[$k]}"
                    echo "nat.c$conc.$s.many_cpu_us_per_sequence=${NAT_CPU[$k.many]}"
                    echo "nat.c$conc.$s.one_cpu_us_per_sequence=${NAT_CPU[$k.one]}"
                    echo "nat.c$conc.$s.retransmits_many_one=${NAT_RETX[$k]}"
                    echo "nat.c$conc.$s.failed_many_one=${NAT_FAIL[$k]}"
                    echo "nat.c$conc.$s.perturbed_runs=${NAT_PERT[$k]}"
                } >>"$RESULTS"
        done
    done
fi

# ------------------------------------------------------------ a flood naming one victim
# Unauthenticated Allocates (the bare 20-byte header: the smallest request a TURN server
# answers) at FLOOD_RATE/s for FLOOD_TIME s from 64 sockets of one address, as a flood of
# forged requests naming that address as its source would arrive; mlload counts the answers
# that come back, i.e. what the victim of the reflection receives.
declare -A FLOOD_SENT FLOOD_BPS FLOOD_BPS1 FLOOD_BYTES FLOOD_AMP FLOOD_CODES
if has_part flood; then
    BENCH_RUN_LIMIT=$((FLOOD_TIME + 60))
    bench_wait_quiet || true
    for s in "${ACTIVE[@]}"; do
        bench_alive "${PID[$s]}" || continue
        f="$BENCH_WORK/flood-$s.json"
        bench_run "$f" "${PID[$s]}" turn-flood --server "127.0.0.1:${PORT[$s]}" --clients 64 \
            --rate "$FLOOD_RATE" --duration "$FLOOD_TIME" --drain 500 || true
        FLOOD_SENT[$s]=$(bench_json "$f" send_rate)
        FLOOD_BYTES[$s]=$(bench_json "$f" answer_bytes)
        FLOOD_BPS[$s]=$(bench_json "$f" answer_bytes_per_s)
        FLOOD_BPS1[$s]=$(bench_json "$f" answer_bytes_per_s_after_1s)
        FLOOD_AMP[$s]=$(bench_json "$f" amplification)
        FLOOD_CODES[$s]=$("$PYTHON3" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(" ".join("%s:%s" % kv for kv in sorted(d.get("error_codes", {}).items())) or "-")' "$f")
        bench_log "$s flood: ${FLOOD_SENT[$s]} requests/s; answers ${FLOOD_BYTES[$s]} bytes," \
            "${FLOOD_BPS[$s]} B/s, ${FLOOD_BPS1[$s]} B/s after the first second," \
            "amplification ${FLOOD_AMP[$s]} (${FLOOD_CODES[$s]})"
        {
            echo "flood.$s.requests_per_s=${FLOOD_SENT[$s]}"
            echo "flood.$s.answer_bytes=${FLOOD_BYTES[$s]}"
            echo "flood.$s.answer_bytes_per_s=${FLOOD_BPS[$s]}"
            echo "flood.$s.answer_bytes_per_s_after_1s=${FLOOD_BPS1[$s]}"
            echo "flood.$s.amplification=${FLOOD_AMP[$s]}"
        } >>"$RESULTS"
    done
fi

# ------------------------------------------------------------ idle allocations
declare -A IDLE_N IDLE_RSS0 IDLE_RSS1 IDLE_RSS2 IDLE_PER IDLE_FDS IDLE_CPU IDLE_SETUP IDLE_RSSH IDLE_CPUH IDLE_REFR
# idle_sum WHAT KEY...: the sum over server processes of RSS (KiB), CPU ticks or descriptors.
idle_sum() {
    local what=$1 k total=0 v
    shift
    for k in "$@"; do
        case $what in
        rss) v=$(bench_rss_kb "${PID[$k]}") ;;
        cpu) v=$(bench_cpu_ticks "${PID[$k]}") ;;
        fds) v=$(ls "/proc/${PID[$k]}/fd" 2>/dev/null | wc -l) ;;
        esac
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
if has_part idle; then
    for s in "${ACTIVE[@]}"; do
        procs=1 each=$IDLE_ONE
        case $s in meetlited*) procs=$IDLE_PROCS each=$IDLE_EACH ;; esac
        # fresh servers: earlier parts leave pools, caches and lingering sessions behind
        bench_stop "${PID[$s]}"
        keys=()
        if [ "$procs" -gt 1 ]; then
            for p in $(seq 1 "$procs"); do
                start_server "$s" idle "$p"
                keys+=("$s/$p")
            done
        else
            start_server "$s" idle
            keys=("$s")
        fi
        sleep 2
        rss0=$(idle_sum rss "${keys[@]}")
        gens=() readies=()
        setup_cap=$((120 + each / 100))
        hold_cap=$((IDLE_HOLD + 600))
        for k in "${keys[@]}"; do
            kk=${k//\//-}
            rm -f "$BENCH_WORK/idle-$kk.ready"
            bench_start "mlload-idle-$kk" "" $BENCH_GEN_PIN "$MLLOAD" turn-idle \
                --server "127.0.0.1:${PORT[$k]}" --secret "$SECRET" --count "$each" \
                --concurrency $((128 / procs > 16 ? 128 / procs : 16)) --lifetime "$IDLE_LIFETIME" \
                --duration "$hold_cap" --setup-timeout "$setup_cap" \
                --ready-file "$BENCH_WORK/idle-$kk.ready" --json
            gens+=("$BENCH_LAST_PID")
            readies+=("$BENCH_WORK/idle-$kk.ready")
        done
        t_start=$SECONDS
        for _ in $(seq 1 $((setup_cap + 10))); do
            all=1
            for r in "${readies[@]}"; do [ -e "$r" ] || all=0; done
            [ $all = 1 ] && break
            alive=0
            for g in "${gens[@]}"; do bench_alive "$g" && alive=1; done
            [ $alive = 1 ] || break
            sleep 1
        done
        t_ready=$SECONDS
        sleep 3 # let the servers settle
        c0=$(idle_sum cpu "${keys[@]}")
        sleep 5
        c1=$(idle_sum cpu "${keys[@]}")
        rss1=$(idle_sum rss "${keys[@]}")
        fds=$(idle_sum fds "${keys[@]}")
        rssh=$rss1 cpuh=n/a
        if [ "$IDLE_HOLD" -gt 8 ]; then
            # the whole hold: the generators refresh every lifetime/2 (permission and channel too)
            left=$((t_ready + IDLE_HOLD - SECONDS))
            [ "$left" -gt 0 ] && sleep "$left"
            c2=$(idle_sum cpu "${keys[@]}")
            rssh=$(idle_sum rss "${keys[@]}")
            cpuh=$("$PYTHON3" -c "print('%.1f' % (($c2 - $c0) * 100 / $CLK_TCK / max(1, $SECONDS - $t_ready - 3)))")
        fi
        # SIGTERM, once: mlload frees every allocation (Refresh 0), then reports
        for g in "${gens[@]}"; do bench_stop "$g" 30; done
        sleep 2
        rss2=$(idle_sum rss "${keys[@]}")
        logs=()
        for k in "${keys[@]}"; do logs+=("$BENCH_WORK/mlload-idle-${k//\//-}.log"); done
        read -r up refreshed refresh_failed < <("$PYTHON3" -c '
import json, sys
up = ref = fail = 0
for f in sys.argv[1:]:
    for line in open(f):
        if line.startswith("{"):
            d = json.loads(line)
            up += d.get("setup_ok", 0); ref += d.get("refreshed", 0); fail += d.get("refresh_failed", 0)
            break
print(up, ref, fail)
' "${logs[@]}")
        IDLE_N[$s]=$up IDLE_RSS0[$s]=$rss0 IDLE_RSS1[$s]=$rss1 IDLE_RSS2[$s]=$rss2 IDLE_FDS[$s]=$fds
        IDLE_SETUP[$s]=$((t_ready - t_start)) IDLE_RSSH[$s]=$rssh IDLE_CPUH[$s]=$cpuh
        IDLE_REFR[$s]="$refreshed/$refresh_failed"
        IDLE_PER[$s]=$("$PYTHON3" -c "import sys; n=$up; print('%.0f' % (($rss1 - $rss0) * 1024 / n) if n else 'n/a')")
        IDLE_CPU[$s]=$("$PYTHON3" -c "print('%.1f' % (($c1 - $c0) * 100 / $CLK_TCK / 5))")
        bench_log "$s idle ($procs process(es)): $up allocations up in ${IDLE_SETUP[$s]} s, RSS $rss0 ->" \
            "$rss1 KiB (${IDLE_PER[$s]} B each), $rss2 KiB after freeing, $fds descriptors," \
            "${IDLE_CPU[$s]} % CPU while idle; over the ${IDLE_HOLD} s hold: RSS $rssh KiB, $cpuh % CPU," \
            "refreshed/failed ${IDLE_REFR[$s]}"
        {
            echo "idle.$s.processes=$procs"
            echo "idle.$s.allocations=$up"
            echo "idle.$s.setup_s=${IDLE_SETUP[$s]}"
            echo "idle.$s.rss_before_kib=$rss0"
            echo "idle.$s.rss_with_kib=$rss1"
            echo "idle.$s.rss_after_free_kib=$rss2"
            echo "idle.$s.bytes_per_allocation=${IDLE_PER[$s]}"
            echo "idle.$s.fds=$fds"
            echo "idle.$s.cpu_pct_idle=${IDLE_CPU[$s]}"
            echo "idle.$s.hold_s=$IDLE_HOLD"
            echo "idle.$s.rss_end_of_hold_kib=$rssh"
            echo "idle.$s.cpu_pct_over_hold=$cpuh"
            echo "idle.$s.refreshed=$refreshed"
            echo "idle.$s.refresh_failed=$refresh_failed"
        } >>"$RESULTS"
        # the next parts (and the report) use the first process under the plain name
        for k in "${keys[@]}"; do [ "$k" != "$s" ] && bench_stop "${PID[$k]}"; done
    done
fi

# ------------------------------------------------------------ report
transport=ChannelData
[ -n "$IND" ] && transport="Send/Data indications"
echo
echo "TURN on 127.0.0.1, $THREADS server thread(s); loss <= ${BENCH_MAX_LOSS:-0.1} %"
if [ ${#SEARCHES[@]} -gt 0 ] && [ "$SEARCH" = yes ]; then
    echo "Relayed packets ($transport, $PAIRS pairs, steps of $STEP s; pps = packets/s received;" \
        "external: each packet crosses the server twice, to the peer and back; tcp/tls: later" \
        "than $LATE_MS ms = lost; tls: TLS $TLS_VERSION)"
    printf '%-20s %-16s %10s %-22s %10s %18s %9s %9s\n' "client.peer.size" server "max pps" \
        "limited by" "us/pkt@max" "us/pkt@common" "gen work" "gen us/pkt"
    for search in "${SEARCHES[@]}"; do
        search_servers "${search#*.}"
        for size in $SIZES; do
            key="$search.$size"
            for s in "${SRVS[@]}"; do
                printf '%-20s %-16s %10s %-22s %10s %18s %9s %9s\n' "$key" "$s" "${RELAY_MAX[$key.$s]}" \
                    "${RELAY_WHY[$key.$s]}" "${RELAY_PERMAX[$key.$s]}" \
                    "${RELAY_PERCOM[$key.$s]} @${RELAY_COMMON[$key]}" "${RELAY_GENW[$key.$s]}" \
                    "${RELAY_GENCPU[$key.$s]}"
            done
        done
    done
fi
if [ -n "$FIXED_RATES" ] && [ ${#SEARCHES[@]} -gt 0 ]; then
    echo "Fixed rates ($REPEATS runs per server, alternating; medians): server CPU per relayed packet," \
        "latency (one way, client to client) p50 and p99, loss, other jobs' CPU per run"
    printf '%-20s %-16s %8s %10s %10s %10s %8s %5s %8s %10s\n' "client.peer.size" server rate "us/pkt" \
        "p50 us" "p99 us" "loss %" runs "others s" "pooled p99"
    for search in "${SEARCHES[@]}"; do
        for size in $SIZES; do
            for rate in $FIXED_RATES; do
                for s in "${ACTIVE[@]}"; do
                    # shellcheck disable=SC2086
                    set -- ${FIXED[$search.$size.$rate.$s]:-n/a n/a n/a n/a 0 n/a n/a}
                    printf '%-20s %-16s %8s %10s %10s %10s %8s %5s %8s %10s\n' "$search.$size" "$s" "$rate" \
                        "$1" "$2" "$3" "$4" "$5" "$6" "$7"
                done
            done
        done
    done
fi
if has_part alloc; then
    echo "Allocation sequences (Allocate/401, Allocate, CreatePermission, ChannelBind; $CONC in flight;" \
        "$ALLOC_COUNT per run, mean of 2, fresh servers; server CPU includes the Refresh 0 that frees each)"
    printf '%-5s %-10s %10s %12s %8s %8s %7s %12s\n' client server "seq/s" "us CPU/seq" "p50 ms" \
        "p99 ms" failed "gen us/seq"
    for tr in $ALLOC_TRANSPORTS; do
        for s in "${ACTIVE[@]}"; do
            k="$tr.$s"
            printf '%-5s %-10s %10s %12s %8s %8s %7s %12s\n' "$tr" "$s" "${ALLOC_RATE[$k]}" \
                "${ALLOC_CPU[$k]}" "${ALLOC_P50[$k]}" "${ALLOC_P99[$k]}" "${ALLOC_FAIL[$k]}" \
                "${ALLOC_GENCPU[$k]}"
        done
    done
fi
if has_part nat; then
    echo "Behind one address (Allocate/401, Allocate, CreatePermission, ChannelBind; $NAT_COUNT per run;" \
        "default settings): from $NAT_COUNT addresses (many) and from one; rates are means of" \
        "$NAT_ROUNDS rounds, one/many the median of the rounds' ratios"
    printf '%-9s %-10s %10s %10s %9s %14s %13s %7s %9s\n' "in flight" server "many seq/s" "one seq/s" \
        "one/many" "us CPU/seq m/o" "retransmits" failed perturbed
    for conc in $NAT_CONCS; do
        for s in "${ACTIVE[@]}"; do
            k="$conc.$s"
            printf '%-9s %-10s %10s %10s %9s %14s %13s %7s %9s\n' "$conc" "$s" "${NAT_RATE[$k.many]}" \
                "${NAT_RATE[$k.one]}" "${NAT_RATIO[$k]}" "${NAT_CPU[$k.many]}/${NAT_CPU[$k.one]}" \
                "${NAT_RETX[$k]}" "${NAT_FAIL[$k]}" "${NAT_PERT[$k]}"
        done
    done
fi
if has_part flood; then
    echo "Flood naming one victim address ($FLOOD_RATE bare unauthenticated Allocates/s, 20 bytes each," \
        "for $FLOOD_TIME s; answers received at that address)"
    printf '%-10s %12s %14s %14s %16s %10s  %s\n' server "requests/s" "answer bytes" "bytes/s" \
        "bytes/s after 1s" "amplif." codes
    for s in "${ACTIVE[@]}"; do
        printf '%-10s %12s %14s %14s %16s %10s  %s\n' "$s" "${FLOOD_SENT[$s]}" "${FLOOD_BYTES[$s]}" \
            "${FLOOD_BPS[$s]}" "${FLOOD_BPS1[$s]}" "${FLOOD_AMP[$s]}" "${FLOOD_CODES[$s]}"
    done
fi
if has_part idle; then
    echo "Idle allocations (fresh server, each with a permission and a channel, refreshed every" \
        "$((IDLE_LIFETIME / 2)) s; held $IDLE_HOLD s)"
    printf '%-16s %11s %7s %10s %10s %11s %13s %7s %8s %10s %9s %10s\n' server allocations "setup s" \
        "RSS0 KiB" "RSS KiB" "bytes/alloc" "RSS freed KiB" fds "idle CPU%" "RSS end KiB" \
        "hold CPU%" "refreshed"
    for s in "${ACTIVE[@]}"; do
        printf '%-16s %11s %7s %10s %10s %11s %13s %7s %8s %10s %9s %10s\n' "$s" "${IDLE_N[$s]}" \
            "${IDLE_SETUP[$s]}" "${IDLE_RSS0[$s]}" "${IDLE_RSS1[$s]}" "${IDLE_PER[$s]}" "${IDLE_RSS2[$s]}" \
            "${IDLE_FDS[$s]}" "${IDLE_CPU[$s]}" "${IDLE_RSSH[$s]}" "${IDLE_CPUH[$s]}" "${IDLE_REFR[$s]}"
    done
fi
# ratios: each meetlited (one per net.io path) against coturn, and io_uring against epoll
ratio_lines() { # A B: A against B
    local a=$1 b=$2 search size key rate
    echo "Ratios, $a against $b:"
    for search in "${SEARCHES[@]}"; do
        for size in $SIZES; do
            key="$search.$size"
            if [ -n "${RELAY_MAX[$key.$b]:-}" ] && [ "$SEARCH" = yes ]; then
                printf '  %-20s max loss-free pps %s/%s %s%s; CPU per packet at the common rate %s/%s %s\n' \
                    "$key" "$a" "$b" "$(bench_ratio "${RELAY_MAX[$key.$a]}" "${RELAY_MAX[$key.$b]}")" \
                    "$(bench_caveat "${RELAY_WHY[$key.$a]}" "${RELAY_GENW[$key.$a]%%[.%]*}" "${RELAY_WHY[$key.$b]}" "${RELAY_GENW[$key.$b]%%[.%]*}")" \
                    "$a" "$b" "$(bench_ratio "${RELAY_PERCOM[$key.$a]}" "${RELAY_PERCOM[$key.$b]}")"
            fi
            for rate in $FIXED_RATES; do
                # shellcheck disable=SC2086
                set -- ${FIXED[$key.$rate.$a]:-n/a n/a n/a n/a 0 n/a n/a} ${FIXED[$key.$rate.$b]:-n/a n/a n/a n/a 0 n/a n/a}
                printf '  %-20s at %s/s: CPU per packet %s/%s %s, p99 %s/%s %s\n' "$key" "$rate" "$a" "$b" \
                    "$(bench_ratio "$1" "$8")" "$a" "$b" "$(bench_ratio "$3" "${10}")"
                # the tails round by round (the runs alternate): pooled p99 ratio with its
                # bootstrap interval, and how many rounds each won
                read -r p_n p_ratio p_lo p_hi p_wins p_sign < <("$PYTHON3" "$BENCH_DIR/p99_paired.py" --fields \
                    "$BENCH_WORK"/relay-"$key"-fixed"$rate"-*-"$a".json \
                    -- "$BENCH_WORK"/relay-"$key"-fixed"$rate"-*-"$b".json 2>/dev/null || echo 0)
                if [ "${p_n:-0}" -ge 3 ]; then
                    printf '  %-20s at %s/s: pooled p99 %s/%s %s (95 %% interval %s-%s), %s p99 <= %s in %s of %s rounds (sign test p %s)\n' \
                        "$key" "$rate" "$a" "$b" "$p_ratio" "$p_lo" "$p_hi" "$a" "$b" "$p_wins" "$p_n" "$p_sign"
                    {
                        echo "relay.$key.$a.over.$b.at_$rate.p99_pooled_ratio=$p_ratio"
                        echo "relay.$key.$a.over.$b.at_$rate.p99_pooled_ratio_ci95=$p_lo-$p_hi"
                        echo "relay.$key.$a.over.$b.at_$rate.p99_at_most_rounds=$p_wins/$p_n"
                        echo "relay.$key.$a.over.$b.at_$rate.p99_sign_test_p=$p_sign"
                    } >>"$RESULTS"
                fi
            done
        done
    done
    if has_part alloc; then
        for tr in $ALLOC_TRANSPORTS; do
            echo "  allocation sequences/s over $tr, $a/$b: $(bench_ratio "${ALLOC_RATE[$tr.$a]:-}" "${ALLOC_RATE[$tr.$b]:-}")"
        done
    fi
    if [ -n "${IDLE_PER[$b]:-}" ]; then
        echo "  bytes per idle allocation, $a/$b: $(bench_ratio "${IDLE_PER[$a]:-}" "${IDLE_PER[$b]}")"
    fi
}
for m in "${ACTIVE[@]}"; do
    case $m in meetlited*) [ -n "${PID[coturn]:-}" ] && ratio_lines "$m" coturn ;; esac
done
if [ -n "${PID[meetlited-epoll]:-}" ]; then
    for m in "${ACTIVE[@]}"; do
        case $m in meetlited-uring*) ratio_lines "$m" meetlited-epoll ;; esac
    done
fi
# A meeting spread over two nodes against the same meeting on one: the loss-free rate (both
# nodes share the server's cores, so it is the capacity of the same CPU) and the CPU per packet
# delivered end to end (both nodes' CPU summed), at the common rate of the search.
SPLIT_SHOWN=""
for s in "${RELAY_ACTIVE[@]}"; do
    is_split "$s" || continue
    one=${s%-split}
    [ -n "${PID[$one]:-}" ] || continue
    if [ -z "$SPLIT_SHOWN" ]; then
        echo "A meeting spread over two nodes against the same meeting on one node (two-node/one-node;" \
            "CPU of both nodes summed per packet delivered end to end, at the common rate):"
        SPLIT_SHOWN=yes
    fi
    for search in "${SEARCHES[@]}"; do
        [ "${search#*.}" = pairs ] || continue
        for size in $SIZES; do
            key="$search.$size"
            printf '  %-15s %-20s max loss-free pps %s%s; CPU per packet %s (%s against %s us)\n' "$one" "$key" \
                "$(bench_ratio "${RELAY_MAX[$key.$s]}" "${RELAY_MAX[$key.$one]}")" \
                "$(bench_caveat "${RELAY_WHY[$key.$s]}" "${RELAY_GENW[$key.$s]%%[.%]*}" "${RELAY_WHY[$key.$one]}" "${RELAY_GENW[$key.$one]%%[.%]*}")" \
                "$(bench_ratio "${RELAY_PERCOM[$key.$s]}" "${RELAY_PERCOM[$key.$one]}")" \
                "${RELAY_PERCOM[$key.$s]}" "${RELAY_PERCOM[$key.$one]}"
            echo "relay.$key.$s.over_one_node_cpu_per_pkt=$(bench_ratio "${RELAY_PERCOM[$key.$s]}" "${RELAY_PERCOM[$key.$one]}")" >>"$RESULTS"
            echo "relay.$key.$s.over_one_node_max_pps=$(bench_ratio "${RELAY_MAX[$key.$s]}" "${RELAY_MAX[$key.$one]}")" >>"$RESULTS"
        done
    done
done
if [ -n "${PID[meetlited-split]:-}" ] && [ -n "${PID[coturn-split]:-}" ]; then
    echo "Two nodes of each (meetlited-split/coturn-split for rates, coturn-split/meetlited-split for CPU):"
    for search in "${SEARCHES[@]}"; do
        [ "${search#*.}" = pairs ] || continue
        for size in $SIZES; do
            key="$search.$size"
            printf '  %-20s max loss-free pps %s; CPU per packet %s\n' "$key" \
                "$(bench_ratio "${RELAY_MAX[$key.meetlited-split]}" "${RELAY_MAX[$key.coturn-split]}")" \
                "$(bench_ratio "${RELAY_PERCOM[$key.coturn-split]}" "${RELAY_PERCOM[$key.meetlited-split]}")"
        done
    done
fi
if [ -n "$OUT" ]; then
    "$PYTHON3" - "$RESULTS" "$OUT" "$THREADS" "$PAIRS" "$STEP" "$transport" <<'EOF'
import json, sys
src, out, threads, pairs, step, transport = sys.argv[1:7]
res = {"benchmark": "turn", "threads": int(threads), "pairs": int(pairs), "step_s": float(step),
       "transport": transport}
for line in open(src):
    key, _, val = line.strip().partition("=")
    node = res
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    try:
        node[parts[-1]] = float(val) if "." in val else int(val)
    except ValueError:
        node[parts[-1]] = val
json.dump(res, open(out, "w"), indent=1)
EOF
fi
