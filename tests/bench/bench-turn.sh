#!/bin/bash
# tests/bench/bench-turn.sh: TURN relay rate, allocation rate and memory, meetlited vs coturn.
set -u
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"

usage() {
    cat <<EOF
usage: $0 [options]
  --threads N          server threads: meetlited net.workers, coturn --relay-threads (1)
  --servers LIST       which servers, in order (default "meetlited coturn"; a missing one is skipped)
  --parts LIST         what to measure (default "relay alloc idle")
  --step S             seconds per relay step (3)
  --pairs N            relay: client pairs (16)
  --sizes LIST         relay: payload sizes in bytes (default "100 1000")
  --send-indications   relay: Send/Data indications instead of ChannelData
  --start-rate R       relay: first offered rate, packets/s in total (20000)
  --alloc-count N      alloc: sequences per run (4000)
  --concurrency N      alloc: sequences in flight (64)
  --idle-allocs N      idle: allocations held (10000; capped by the open-file limit)
  --gen-threads N      generator threads (1)
  --max-time S         stop relay searches after S seconds overall (300)
  --out FILE           write the results as JSON
  --no-pin             do not pin the server and the generator to separate cores
Environment: MLLOAD, MEETLITED, TURNSERVER (binaries), MEETLITED_ARGS (extra arguments),
BENCH_MAX_LOSS (0.1, percent), BENCH_KEEP=1 keeps the work directory with every run's JSON.
EOF
}

THREADS=1 STEP=3 PAIRS=16 SIZES="100 1000" IND="" START=20000 ALLOC_COUNT=4000 CONC=64
IDLE=10000 GEN_THREADS=1 MAX_TIME=300 OUT="" SERVERS="meetlited coturn" PARTS="relay alloc idle"
while [ $# -gt 0 ]; do
    case $1 in
    --threads) THREADS=$2; shift ;;
    --servers) SERVERS=$2; shift ;;
    --parts) PARTS=$2; shift ;;
    --step) STEP=$2; shift ;;
    --pairs) PAIRS=$2; shift ;;
    --sizes) SIZES=$2; shift ;;
    --send-indications) IND=--send-indications ;;
    --start-rate) START=$2; shift ;;
    --alloc-count) ALLOC_COUNT=$2; shift ;;
    --concurrency) CONC=$2; shift ;;
    --idle-allocs) IDLE=$2; shift ;;
    --gen-threads) GEN_THREADS=$2; shift ;;
    --max-time) MAX_TIME=$2; shift ;;
    --out) OUT=$2; shift ;;
    --no-pin) BENCH_PIN=no ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
    shift
done

bench_init bench-turn
BENCH_MAX_TIME=$MAX_TIME
bench_pin_plan "$THREADS"
BENCH_MAX_STEPS=${BENCH_MAX_STEPS:-7}
SECRET=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
RESULTS="$BENCH_WORK/results.txt" # key=value lines, turned into JSON at the end
: >"$RESULTS"

# Every allocation costs the server a relay socket and the generator a client socket: the
# open-file limit (raised to the hard limit here; each process has its own) bounds the idle
# test. coturn sizes itself at about nofile/2 sessions and says so in its log.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [ "$NOFILE" != unlimited ] && [ $((NOFILE - 512)) -lt "$IDLE" ]; then
    bench_log "open-file limit $NOFILE (hard): idle test capped at $((NOFILE - 512))" \
        "allocations instead of $IDLE"
    IDLE=$((NOFILE - 512))
fi

declare -A PID PORT
ACTIVE=()

# start_server NAME: starts it on a free port (relay ports: disjoint ranges per server).
# meetlited's limit on unauthenticated requests per source IP (turn.unauth-rate, 20/s) is
# switched off: every generator socket shares one source IP and each sequence starts with a
# 401, and coturn has no such limit by default.
start_server() {
    local s=$1 port
    port=$(bench_free_port) || bench_die "no free port"
    case $s in
    meetlited)
        # shellcheck disable=SC2086
        bench_start meetlited "$SRV_CPUS" "$MEETLITED" --set "turn.listen=udp://127.0.0.1:$port" \
            --set "net.workers=$THREADS" --set "turn.auth-secret=$SECRET" --set turn.realm=bench \
            --set turn.allow-peers=127.0.0.0/8 --set turn.relay-address=127.0.0.1 \
            --set turn.relay-ports=21000-31999 --set turn.unauth-rate=0 ${MEETLITED_ARGS:-}
        ;;
    coturn)
        bench_start coturn "$SRV_CPUS" "$TURNSERVER" -n --no-cli --no-tls --no-dtls --no-tcp \
            --listening-ip=127.0.0.1 "--listening-port=$port" --relay-ip=127.0.0.1 \
            "--relay-threads=$THREADS" --use-auth-secret "--static-auth-secret=$SECRET" \
            --realm=bench --allow-loopback-peers --min-port=10000 --max-port=20999 \
            --log-file=stdout --simple-log "--pidfile=$BENCH_WORK/turnserver.pid"
        ;;
    esac
    PID[$s]=$BENCH_LAST_PID
    PORT[$s]=$port
    local ok=0
    for _ in $(seq 1 20); do
        if ! bench_alive "${PID[$s]}"; then
            tail -20 "$BENCH_WORK/$s.log" | sed 's/^/    /' >&2
            bench_die "$s exited at startup (log above)"
        fi
        if bench_run "$BENCH_WORK/ready-$s.json" "${PID[$s]}" turn-alloc --secret "$SECRET" \
            --server "127.0.0.1:$port" --count 2 --concurrency 2 --duration 5 --quiet &&
            [ "$(bench_json "$BENCH_WORK/ready-$s.json" setup_ok)" = 2 ]; then
            ok=1
            break
        fi
        sleep 0.5
    done
    [ $ok = 1 ] || bench_die "$s does not allocate on 127.0.0.1:$port (see $BENCH_WORK/ready-$s.json.err)"
    bench_log "$s ready on 127.0.0.1:$port (pid ${PID[$s]}, $THREADS thread(s))"
}

for s in $SERVERS; do
    case $s in
    meetlited)
        if ! [ -x "$MEETLITED" ]; then
            bench_log "skipping meetlited: $MEETLITED not found"
            continue
        fi
        ;;
    coturn)
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
bench_wait_quiet || true

mean_per() { # NUM-KEY DEN-KEY SCALE FILE...: sum(NUM)*SCALE/sum(DEN) over runs without loss
    "$PYTHON3" -c '
import json, sys
nk, dk, scale = sys.argv[1], sys.argv[2], float(sys.argv[3])
num = den = 0
for f in sys.argv[4:]:
    try:
        d = json.load(open(f))
    except (OSError, ValueError):
        continue
    if d.get(dk) and d.get("loss_pct", 0) <= 1 and not d.get("setup_failed"):
        num += d.get(nk, 0); den += d[dk]
print("%.2f" % (num * scale / den) if den else "n/a")
' "$@"
}

# ------------------------------------------------------------ relayed packets
relay_args() { # SERVER RATE SIZE
    echo turn-relay --server "127.0.0.1:${PORT[$1]}" --secret "$SECRET" --pairs "$PAIRS" \
        --size "$3" --rate "$2" --duration "$STEP" --drain 500 --setup-timeout 10 \
        --threads "$GEN_THREADS" ${IND:+"$IND"} ${GEN_SPIN:+"$GEN_SPIN"}
}

relay_verdict() { # FILE RATE: a pair that did not come up fails the step (the server's fault)
    if [ "$(bench_json "$1" setup_failed)" != 0 ]; then
        echo fail
    else
        bench_verdict "$1" "$2"
    fi
}

declare -A RELAY_MAX RELAY_PERMAX RELAY_PERCOM RELAY_WHY RELAY_GENW RELAY_COMMON
if [[ " $PARTS " == *" relay "* ]]; then
    BENCH_RUN_LIMIT=$((STEP + 60))
    for size in $SIZES; do
        for s in "${ACTIVE[@]}"; do
            # shellcheck disable=SC2046
            bench_run "$BENCH_WORK/warmup-$size-$s.json" "${PID[$s]}" $(relay_args "$s" "$START" "$size") || true
            bench_log "$s relay $size B warm-up: $(bench_summary "$BENCH_WORK/warmup-$size-$s.json")"
            bench_search_init "$s" "$START"
        done
        n=0
        while :; do
            pending=0
            for s in "${ACTIVE[@]}"; do
                [ "${S_DONE[$s]}" = 1 ] && continue
                if [ $((SECONDS - BENCH_T0)) -ge "$MAX_TIME" ]; then
                    bench_log "time budget of $MAX_TIME s spent: stopping the search"
                    S_DONE[$s]=1
                    S_BUDGET[$s]=1
                    continue
                fi
                pending=1
                n=$((n + 1))
                rate=${S_NEXT[$s]}
                f="$BENCH_WORK/relay$size-step$n-$s-$rate.json"
                # shellcheck disable=SC2046
                bench_run "$f" "${PID[$s]}" $(relay_args "$s" "$rate" "$size") || true
                v=$(relay_verdict "$f" "$rate")
                bench_log "$s relay $size B $v: $(bench_summary "$f")"
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
        for s in "${ACTIVE[@]}"; do
            lo=${S_LO[$s]}
            if [ "$lo" -gt 0 ] && { [ "$common" -eq 0 ] || [ "$lo" -lt "$common" ]; }; then
                common=$lo
            fi
        done
        common=$((common * 8 / 10))
        RELAY_COMMON[$size]=$common
        if [ "$common" -gt 0 ]; then
            for round in 1 2; do
                for s in "${ACTIVE[@]}"; do
                    bench_alive "${PID[$s]}" || continue
                    f="$BENCH_WORK/relay$size-common$round-$s.json"
                    for _ in 1 2; do
                        # shellcheck disable=SC2046
                        bench_run "$f" "${PID[$s]}" $(relay_args "$s" "$common" "$size") || true
                        bench_log "$s relay $size B at the common rate: $(bench_summary "$f")"
                        { [ "$(bench_perturbed "$f")" = yes ] && bench_wait_quiet; } || break
                    done
                done
            done
        fi
        for s in "${ACTIVE[@]}"; do
            lo=${S_LO[$s]}
            why=$(bench_search_why "$s")
            pm=n/a genw=n/a
            if [ -n "${S_LOFILE[$s]}" ]; then
                pm=$(mean_per srv_cpu_s received 1e6 "${S_LOFILE[$s]}")
                genw=$(bench_json "${S_LOFILE[$s]}" gen_work_max_pct)%
                [ "$GEN_SPIN" ] || genw=$(bench_json "${S_LOFILE[$s]}" gen_busy_max_pct)%
            fi
            RELAY_MAX[$size.$s]=$lo RELAY_WHY[$size.$s]=$why RELAY_PERMAX[$size.$s]=$pm
            RELAY_GENW[$size.$s]=$genw
            RELAY_PERCOM[$size.$s]=$(mean_per srv_cpu_s received 1e6 "$BENCH_WORK"/relay$size-common[12]-"$s".json)
            {
                echo "relay.$size.$s.max_lossfree_pps=$lo"
                echo "relay.$size.$s.generator_limited=${S_GENLIM[$s]}"
                echo "relay.$size.$s.limited_by=$why"
                echo "relay.$size.$s.cpu_us_per_pkt_at_max=$pm"
                echo "relay.$size.$s.cpu_us_per_pkt_at_common=${RELAY_PERCOM[$size.$s]}"
                echo "relay.$size.common_pps=$common"
            } >>"$RESULTS"
        done
    done
fi

# ------------------------------------------------------------ allocation sequences
declare -A ALLOC_RATE ALLOC_CPU ALLOC_P50 ALLOC_P99 ALLOC_FAIL
if [[ " $PARTS " == *" alloc "* ]]; then
    BENCH_RUN_LIMIT=120
    for round in 1 2; do
        for s in "${ACTIVE[@]}"; do
            bench_alive "${PID[$s]}" || continue
            f="$BENCH_WORK/alloc$round-$s.json"
            for _ in 1 2; do
                bench_run "$f" "${PID[$s]}" turn-alloc --server "127.0.0.1:${PORT[$s]}" \
                    --secret "$SECRET" --count "$ALLOC_COUNT" --concurrency "$CONC" --duration 60 \
                    --threads "$GEN_THREADS" || true
                bench_log "$s alloc: $(bench_json "$f" alloc_rate | tr '\n' ' ')sequences/s," \
                    "$(bench_json "$f" setup_ok setup_failed retransmits srv_cpu_s other_cpu_s | tr '\n' ' ')" \
                    "(ok failed retransmits server-CPU-s others-CPU-s)"
                { [ "$(bench_perturbed "$f")" = yes ] && bench_wait_quiet; } || break
            done
        done
    done
    for s in "${ACTIVE[@]}"; do
        read -r ALLOC_RATE[$s] ALLOC_P50[$s] ALLOC_P99[$s] ALLOC_FAIL[$s] < <("$PYTHON3" -c '
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
' "$BENCH_WORK"/alloc[12]-"$s".json)
        ALLOC_CPU[$s]=$(mean_per srv_cpu_s setup_ok 1e6 "$BENCH_WORK"/alloc[12]-"$s".json)
        {
            echo "alloc.$s.sequences_per_s=${ALLOC_RATE[$s]}"
            echo "alloc.$s.cpu_us_per_sequence=${ALLOC_CPU[$s]}"
            echo "alloc.$s.failed=${ALLOC_FAIL[$s]}"
        } >>"$RESULTS"
    done
fi

# ------------------------------------------------------------ idle allocations
declare -A IDLE_N IDLE_RSS0 IDLE_RSS1 IDLE_RSS2 IDLE_PER IDLE_FDS IDLE_CPU
if [[ " $PARTS " == *" idle "* ]]; then
    for s in "${ACTIVE[@]}"; do
        # a fresh server: earlier parts leave pools, caches and lingering sessions behind
        bench_stop "${PID[$s]}"
        start_server "$s"
        sleep 2
        rss0=$(bench_rss_kb "${PID[$s]}")
        ready="$BENCH_WORK/idle-$s.ready"
        f="$BENCH_WORK/idle-$s.json"
        rm -f "$ready"
        bench_start "mlload-idle-$s" "" $BENCH_GEN_PIN "$MLLOAD" turn-idle \
            --server "127.0.0.1:${PORT[$s]}" --secret "$SECRET" --count "$IDLE" --concurrency 128 \
            --duration 600 --setup-timeout 120 --ready-file "$ready" --json
        gen=$BENCH_LAST_PID
        for _ in $(seq 1 150); do
            [ -e "$ready" ] && break
            bench_alive "$gen" || break
            sleep 1
        done
        sleep 3 # let the server settle
        c0=$(bench_cpu_ticks "${PID[$s]}")
        sleep 5
        c1=$(bench_cpu_ticks "${PID[$s]}")
        rss1=$(bench_rss_kb "${PID[$s]}")
        fds=$(ls "/proc/${PID[$s]}/fd" 2>/dev/null | wc -l)
        bench_stop "$gen" 30 # SIGTERM: mlload frees every allocation (Refresh 0), then reports
        mv "$BENCH_WORK/mlload-idle-$s.log" "$f"
        sleep 2
        rss2=$(bench_rss_kb "${PID[$s]}")
        up=$("$PYTHON3" -c '
import json, sys
for line in open(sys.argv[1]):
    if line.startswith("{"):
        print(json.loads(line).get("setup_ok", 0)); break
else:
    print(0)
' "$f")
        IDLE_N[$s]=$up IDLE_RSS0[$s]=$rss0 IDLE_RSS1[$s]=$rss1 IDLE_RSS2[$s]=$rss2 IDLE_FDS[$s]=$fds
        IDLE_PER[$s]=$("$PYTHON3" -c "import sys; n=$up; print('%.0f' % (($rss1 - $rss0) * 1024 / n) if n else 'n/a')")
        IDLE_CPU[$s]=$("$PYTHON3" -c "print('%.1f' % (($c1 - $c0) * 100 / $CLK_TCK / 5))")
        bench_log "$s idle: $up allocations, RSS $rss0 -> $rss1 KiB (${IDLE_PER[$s]} B each)," \
            "$rss2 KiB after freeing, $fds descriptors, ${IDLE_CPU[$s]} % CPU while idle"
        {
            echo "idle.$s.allocations=$up"
            echo "idle.$s.rss_before_kib=$rss0"
            echo "idle.$s.rss_with_kib=$rss1"
            echo "idle.$s.rss_after_free_kib=$rss2"
            echo "idle.$s.bytes_per_allocation=${IDLE_PER[$s]}"
            echo "idle.$s.fds=$fds"
            echo "idle.$s.cpu_pct_idle=${IDLE_CPU[$s]}"
        } >>"$RESULTS"
    done
fi

# ------------------------------------------------------------ report
transport=ChannelData
[ -n "$IND" ] && transport="Send/Data indications"
echo
echo "TURN on 127.0.0.1, $THREADS server thread(s); loss <= ${BENCH_MAX_LOSS:-0.1} %"
if [[ " $PARTS " == *" relay "* ]]; then
    echo "Relayed packets ($transport, $PAIRS pairs, steps of $STEP s; pps = packets/s received)"
    printf '%-6s %-10s %12s %-22s %14s %20s %12s\n' size server "max pps" "limited by" \
        "us CPU/pkt@max" "us CPU/pkt@common" "gen work@max"
    for size in $SIZES; do
        for s in "${ACTIVE[@]}"; do
            printf '%-6s %-10s %12s %-22s %14s %20s %12s\n' "$size" "$s" "${RELAY_MAX[$size.$s]}" \
                "${RELAY_WHY[$size.$s]}" "${RELAY_PERMAX[$size.$s]}" \
                "${RELAY_PERCOM[$size.$s]} @${RELAY_COMMON[$size]}" "${RELAY_GENW[$size.$s]}"
        done
    done
fi
if [[ " $PARTS " == *" alloc "* ]]; then
    echo "Allocation sequences (Allocate/401, Allocate, CreatePermission, ChannelBind; $CONC in flight;" \
        "$ALLOC_COUNT per run, mean of 2; server CPU includes the Refresh 0 that frees each)"
    printf '%-10s %12s %14s %10s %10s %8s\n' server "seq/s" "us CPU/seq" "p50 ms" "p99 ms" failed
    for s in "${ACTIVE[@]}"; do
        printf '%-10s %12s %14s %10s %10s %8s\n' "$s" "${ALLOC_RATE[$s]}" "${ALLOC_CPU[$s]}" \
            "${ALLOC_P50[$s]}" "${ALLOC_P99[$s]}" "${ALLOC_FAIL[$s]}"
    done
fi
if [[ " $PARTS " == *" idle "* ]]; then
    echo "Idle allocations (fresh server, each with a permission and a channel, refreshed)"
    printf '%-10s %12s %12s %12s %14s %16s %6s %8s\n' server allocations "RSS0 KiB" "RSS KiB" \
        "bytes/alloc" "RSS freed KiB" fds "idle CPU%"
    for s in "${ACTIVE[@]}"; do
        printf '%-10s %12s %12s %12s %14s %16s %6s %8s\n' "$s" "${IDLE_N[$s]}" "${IDLE_RSS0[$s]}" \
            "${IDLE_RSS1[$s]}" "${IDLE_PER[$s]}" "${IDLE_RSS2[$s]}" "${IDLE_FDS[$s]}" "${IDLE_CPU[$s]}"
    done
fi
if [ -n "${PID[meetlited]:-}" ] && [ -n "${PID[coturn]:-}" ]; then
    echo "Ratios (meetlited/coturn unless said):"
    for size in $SIZES; do
        [ -n "${RELAY_MAX[$size.coturn]:-}" ] || continue
        echo "  relay $size B max loss-free pps:           $(bench_ratio "${RELAY_MAX[$size.meetlited]}" "${RELAY_MAX[$size.coturn]}")$(bench_caveat "${RELAY_WHY[$size.meetlited]}" "${RELAY_GENW[$size.meetlited]%%[.%]*}" "${RELAY_WHY[$size.coturn]}" "${RELAY_GENW[$size.coturn]%%[.%]*}")"
        echo "  relay $size B CPU per packet, coturn/meetlited: $(bench_ratio "${RELAY_PERCOM[$size.coturn]}" "${RELAY_PERCOM[$size.meetlited]}")"
    done
    [ -n "${ALLOC_RATE[coturn]:-}" ] &&
        echo "  allocation sequences/s:                 $(bench_ratio "${ALLOC_RATE[meetlited]}" "${ALLOC_RATE[coturn]}")"
    [ -n "${IDLE_PER[coturn]:-}" ] &&
        echo "  bytes per idle allocation, coturn/meetlited: $(bench_ratio "${IDLE_PER[coturn]}" "${IDLE_PER[meetlited]}")"
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
