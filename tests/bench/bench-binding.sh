#!/bin/bash
# tests/bench/bench-binding.sh: loss-free STUN Binding rate and CPU per request, meetlited vs coturn.
set -u
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"

usage() {
    cat <<EOF
usage: $0 [options]
  --threads N        server threads: meetlited net.workers, coturn --relay-threads (1)
  --servers LIST     which servers, in order (default "meetlited coturn reflector"; a missing
                     one is skipped; "reflector" is mlload's own minimal responder, whose
                     result is the generator's ceiling on this machine)
  --step S           seconds per step (3)
  --clients N        generator sockets (32)
  --gen-threads N    generator threads (1)
  --start-rate R     first offered rate, requests/s (20000)
  --max-time S       stop searching after S seconds overall (300)
  --out FILE         write the results as JSON
  --no-pin           do not pin the server and the generator to separate cores
Environment: MLLOAD, MEETLITED, TURNSERVER (binaries), MEETLITED_ARGS (extra arguments),
BENCH_MAX_LOSS (0.1, percent), BENCH_KEEP=1 keeps the work directory with every run's JSON.
EOF
}

THREADS=1 STEP=3 CLIENTS=32 GEN_THREADS=1 START=20000 MAX_TIME=300 OUT=""
SERVERS="meetlited coturn reflector"
while [ $# -gt 0 ]; do
    case $1 in
    --threads) THREADS=$2; shift ;;
    --servers) SERVERS=$2; shift ;;
    --step) STEP=$2; shift ;;
    --clients) CLIENTS=$2; shift ;;
    --gen-threads) GEN_THREADS=$2; shift ;;
    --start-rate) START=$2; shift ;;
    --max-time) MAX_TIME=$2; shift ;;
    --out) OUT=$2; shift ;;
    --no-pin) BENCH_PIN=no ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
    shift
done

bench_init bench-binding
BENCH_MAX_TIME=$MAX_TIME
bench_pin_plan "$THREADS"
BENCH_RUN_LIMIT=$((STEP + 30))

declare -A PID PORT
ACTIVE=()
for s in $SERVERS; do
    port=$(bench_free_port) || bench_die "no free port"
    case $s in
    meetlited)
        if ! [ -x "$MEETLITED" ]; then
            bench_log "skipping meetlited: $MEETLITED not found"
            continue
        fi
        # shellcheck disable=SC2086
        bench_start meetlited "$SRV_CPUS" "$MEETLITED" --set "turn.listen=udp://127.0.0.1:$port" \
            --set "net.workers=$THREADS" ${MEETLITED_ARGS:-}
        ;;
    coturn)
        if [ -z "$TURNSERVER" ]; then
            bench_log "skipping coturn: turnserver not found (apt-get install coturn)"
            continue
        fi
        bench_start coturn "$SRV_CPUS" "$TURNSERVER" -n --no-cli --no-tls --no-dtls --no-tcp \
            --listening-ip=127.0.0.1 "--listening-port=$port" "--relay-threads=$THREADS" \
            --log-file=stdout --simple-log --stun-only "--pidfile=$BENCH_WORK/turnserver.pid"
        ;;
    reflector)
        bench_start reflector "$SRV_CPUS" "$MLLOAD" reflect --listen "127.0.0.1:$port" \
            --threads "$THREADS" --duration 3600 --quiet
        ;;
    *)
        bench_die "unknown server '$s'"
        ;;
    esac
    PID[$s]=$BENCH_LAST_PID
    PORT[$s]=$port
    ACTIVE+=("$s")
done
[ ${#ACTIVE[@]} -gt 0 ] || bench_die "no server to measure"

gen_args() { # SERVER RATE
    echo binding --server "127.0.0.1:${PORT[$1]}" --clients "$CLIENTS" --threads "$GEN_THREADS" \
        --duration "$STEP" --drain 500 --rate "$2" ${GEN_SPIN:+"$GEN_SPIN"}
}

# Ready when it answers a few requests (10 s at most).
for s in "${ACTIVE[@]}"; do
    ok=0
    for _ in $(seq 1 20); do
        if ! bench_alive "${PID[$s]}"; then
            sed 's/^/    /' "$BENCH_WORK/$s.log" | tail -20 >&2
            bench_die "$s exited at startup (log above)"
        fi
        if bench_run "$BENCH_WORK/ready-$s.json" "${PID[$s]}" binding --server "127.0.0.1:${PORT[$s]}" \
            --rate 200 --count 20 --duration 1 --drain 300 --quiet &&
            [ "$(bench_json "$BENCH_WORK/ready-$s.json" received)" -gt 0 ]; then
            ok=1
            break
        fi
        sleep 0.5
    done
    [ $ok = 1 ] || bench_die "$s does not answer Binding requests on 127.0.0.1:${PORT[$s]}"
    bench_log "$s ready on 127.0.0.1:${PORT[$s]} (pid ${PID[$s]}, $THREADS thread(s))"
done

bench_wait_quiet || true

# Warm-up, discarded: the first run after a start is slower (caches, allocator, sessions).
for s in "${ACTIVE[@]}"; do
    # shellcheck disable=SC2046
    bench_run "$BENCH_WORK/warmup-$s.json" "${PID[$s]}" $(gen_args "$s" "$START") || true
    bench_log "$s warm-up: $(bench_summary "$BENCH_WORK/warmup-$s.json")"
done

# The search: steps alternate between servers so that both see the same machine over time.
for s in "${ACTIVE[@]}"; do
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
        f="$BENCH_WORK/step$n-$s-$rate.json"
        # shellcheck disable=SC2046
        bench_run "$f" "${PID[$s]}" $(gen_args "$s" "$rate") || true
        v=$(bench_verdict "$f" "$rate")
        bench_log "$s $v: $(bench_summary "$f")"
        if ! bench_alive "${PID[$s]}"; then
            bench_log "$s died during the step at $rate/s"
            S_DONE[$s]=1
            continue
        fi
        bench_search_update "$s" "$rate" "$v" "$f"
    done
    [ $pending = 1 ] || break
done

# CPU per request at a common rate that every server answered without loss (80 % of the lowest
# maximum), two rounds alternating; and at each server's own maximum (its last passing step).
common=0
for s in "${ACTIVE[@]}"; do
    lo=${S_LO[$s]}
    if [ "$lo" -gt 0 ] && { [ "$common" -eq 0 ] || [ "$lo" -lt "$common" ]; }; then
        common=$lo
    fi
done
common=$((common * 8 / 10))
if [ "$common" -gt 0 ]; then
    for round in 1 2; do
        for s in "${ACTIVE[@]}"; do
            bench_alive "${PID[$s]}" || continue
            f="$BENCH_WORK/common$round-$s.json"
            for _ in 1 2; do # a perturbed run is repeated once
                # shellcheck disable=SC2046
                bench_run "$f" "${PID[$s]}" $(gen_args "$s" "$common") || true
                bench_log "$s at the common rate: $(bench_summary "$f")"
                { [ "$(bench_perturbed "$f")" = yes ] && bench_wait_quiet; } || break
            done
        done
    done
fi

per_req() { # FILE...: mean server CPU microseconds per answered request over the files
    "$PYTHON3" -c '
import json, sys
cpu = rec = 0
for f in sys.argv[1:]:
    try:
        d = json.load(open(f))
    except (OSError, ValueError):
        continue
    if d.get("received") and d.get("loss_pct", 100) <= 1:
        cpu += d["srv_cpu_s"]; rec += d["received"]
print("%.2f" % (cpu * 1e6 / rec) if rec else "n/a")
' "$@"
}

echo
echo "STUN Binding, 127.0.0.1, $THREADS server thread(s), $CLIENTS client sockets, steps of $STEP s," \
    "loss <= ${BENCH_MAX_LOSS:-0.1} %"
printf '%-10s %14s %-22s %14s %16s %12s\n' server "max rate/s" "limited by" "us CPU/req@max" \
    "us CPU/req@$common" "gen work@max"
declare -A MAXR PERMAX PERCOM WHY GENW
for s in "${ACTIVE[@]}"; do
    lo=${S_LO[$s]}
    why=$(bench_search_why "$s")
    pm=n/a genw=n/a
    if [ -n "${S_LOFILE[$s]}" ]; then
        pm=$(per_req "${S_LOFILE[$s]}")
        genw=$(bench_json "${S_LOFILE[$s]}" gen_work_max_pct)%
        [ "$GEN_SPIN" ] || genw=$(bench_json "${S_LOFILE[$s]}" gen_busy_max_pct)%
    fi
    pc=$(per_req "$BENCH_WORK"/common[12]-"$s".json)
    MAXR[$s]=$lo PERMAX[$s]=$pm PERCOM[$s]=$pc WHY[$s]=$why GENW[$s]=${genw%%[.%]*}
    printf '%-10s %14s %-22s %14s %16s %12s\n' "$s" "$lo" "$why" "$pm" "$pc" "$genw"
done
if [ -n "${MAXR[reflector]:-}" ]; then
    echo "(reflector: mlload's own minimal responder; its maximum is the generator's ceiling on this" \
        "machine, and a server that comes near it was measured at the generator's limit)"
fi
if [ -n "${MAXR[meetlited]:-}" ] && [ -n "${MAXR[coturn]:-}" ]; then
    echo "meetlited/coturn max loss-free rate:        $(bench_ratio "${MAXR[meetlited]}" "${MAXR[coturn]}")$(bench_caveat "${WHY[meetlited]}" "${GENW[meetlited]}" "${WHY[coturn]}" "${GENW[coturn]}")"
    echo "coturn/meetlited CPU per request @$common/s: $(bench_ratio "${PERCOM[coturn]}" "${PERCOM[meetlited]}")" \
        "(above 1: meetlited spends less CPU per request)"
fi
if [ -n "$OUT" ]; then
    "$PYTHON3" - "$OUT" "$THREADS" "$CLIENTS" "$STEP" "$common" "${ACTIVE[@]}" <<EOF
import json, sys
out, threads, clients, step, common = sys.argv[1:6]
servers = sys.argv[6:]
maxr = dict(x.split("=") for x in """$(for s in "${ACTIVE[@]}"; do echo "$s=${MAXR[$s]}"; done)""".split())
permax = dict(x.split("=") for x in """$(for s in "${ACTIVE[@]}"; do echo "$s=${PERMAX[$s]}"; done)""".split())
percom = dict(x.split("=") for x in """$(for s in "${ACTIVE[@]}"; do echo "$s=${PERCOM[$s]}"; done)""".split())
genlim = dict(x.split("=") for x in """$(for s in "${ACTIVE[@]}"; do echo "$s=${S_GENLIM[$s]}"; done)""".split())
why = dict(x.split("=", 1) for x in """$(for s in "${ACTIVE[@]}"; do echo "$s=${WHY[$s]}"; done)""".split("\n") if x)
def num(v):
    try:
        return float(v)
    except ValueError:
        return None
res = {"benchmark": "binding", "threads": int(threads), "clients": int(clients), "step_s": float(step),
       "common_rate": int(common), "servers": {}}
for s in servers:
    res["servers"][s] = {"max_lossfree_rate": int(maxr[s]), "limited_by": why[s],
                         "generator_limited": genlim[s] == "1",
                         "cpu_us_per_req_at_max": num(permax[s]),
                         "cpu_us_per_req_at_common": num(percom[s])}
json.dump(res, open(out, "w"), indent=1)
EOF
fi
