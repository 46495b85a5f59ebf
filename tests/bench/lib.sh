# tests/bench/lib.sh: helpers shared by the benchmark scripts (sourced by bash).
# shellcheck shell=bash disable=SC2034,SC2086

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top_srcdir=${top_srcdir:-$(cd "$BENCH_DIR/../.." && pwd)}
# run from the top of a build directory (VPATH builds), the binaries are those of that build
if [ -z "${top_builddir:-}" ] && [ -x "$PWD/tests/bench/mlload" ] && [ -f "$PWD/config.status" ]; then
    top_builddir=$PWD
fi
top_builddir=${top_builddir:-$top_srcdir}
MLLOAD=${MLLOAD:-$top_builddir/tests/bench/mlload}
MEETLITED=${MEETLITED:-$top_builddir/meetlited}
TURNSERVER=${TURNSERVER:-$(command -v turnserver || true)}
PYTHON3=${PYTHON3:-python3}
CLK_TCK=$(getconf CLK_TCK)

BENCH_PIDS=()  # every process we started, stopped by PID on exit
BENCH_WORK=""
BENCH_T0=$SECONDS

bench_log() {
    printf '[%4ds] %s\n' "$((SECONDS - BENCH_T0))" "$*" >&2
}

bench_die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

bench_cleanup() {
    local pid i
    for pid in "${BENCH_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${BENCH_PIDS[@]}"; do
        for i in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    BENCH_PIDS=()
    if [ -n "$BENCH_WORK" ] && [ -z "${BENCH_KEEP:-}" ]; then
        rm -rf "$BENCH_WORK"
    fi
}

# bench_init NAME: work directory, exit trap, checks of the generator and python3.
bench_init() {
    command -v "$PYTHON3" >/dev/null || bench_die "python3 is needed to read mlload's JSON"
    [ -x "$MLLOAD" ] || bench_die "$MLLOAD not found: run 'make bench' (in an optimised build)"
    BENCH_WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
    local b
    for b in "$MLLOAD" "$MEETLITED"; do
        if [ -f "$b" ] && grep -aq __asan_init "$b"; then
            bench_log "WARNING: $b is an ASan (--enable-devel) build: figures are not" \
                "representative; point MLLOAD= and MEETLITED= at an optimised build"
        fi
    done
}

# bench_free_port: a port free for UDP and TCP on 127.0.0.1 (the kernel picks it).
bench_free_port() {
    "$PYTHON3" - <<'EOF'
import socket
for _ in range(50):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    port = u.getsockname()[1]
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        t.bind(("127.0.0.1", port))
    except OSError:
        u.close()
        continue
    t.close()
    u.close()
    print(port)
    break
else:
    raise SystemExit("no free port")
EOF
}

# bench_start NAME CPUS CMD...: starts CMD in the background (pinned to CPUS unless empty),
# output in $BENCH_WORK/NAME.log; sets BENCH_LAST_PID.
bench_start() {
    local name=$1 cpus=$2
    shift 2
    if [ -n "$cpus" ]; then
        taskset -c "$cpus" "$@" >"$BENCH_WORK/$name.log" 2>&1 &
    else
        "$@" >"$BENCH_WORK/$name.log" 2>&1 &
    fi
    BENCH_LAST_PID=$!
    BENCH_PIDS+=("$BENCH_LAST_PID")
}

# bench_stop PID [SECONDS]: stops one process we started (SIGTERM, SIGKILL after SECONDS, 5)
# and forgets it.
bench_stop() {
    local pid=$1 i keep=()
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 $((${2:-5} * 4))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for i in "${BENCH_PIDS[@]}"; do
        [ "$i" = "$pid" ] || keep+=("$i")
    done
    BENCH_PIDS=("${keep[@]}")
}

# bench_alive PID[,PID...]: every one of them runs (a server of several processes, e.g. two
# relay nodes measured as one, is a comma-separated list)
bench_alive() {
    local pid
    for pid in ${1//,/ }; do
        kill -0 "$pid" 2>/dev/null || return 1
    done
}

# bench_cpu_ticks PID[,PID...]: utime + stime of every thread, in clock ticks (fields 14 and 15
# of /proc/PID/stat, counted after the command name, which may hold spaces), summed over the
# processes of a comma-separated list; a process that is gone counts 0.
bench_cpu_ticks() {
    local stat pid sum=0
    for pid in ${1//,/ }; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        stat=${stat##*) }
        set -- $stat
        sum=$((sum + ${12} + ${13}))
    done
    echo "$sum"
}

# bench_rss_kb PID: VmRSS in KiB.
bench_rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# bench_udp_rcvbuf_errors: system-wide UDP receive-buffer drops (/proc/net/snmp).
bench_udp_rcvbuf_errors() {
    awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "RcvbufErrors") c = i; h = 1 }
                   else print $c }' /proc/net/snmp
}

# bench_cpu_stat: "busy steal" clock ticks of the whole machine (/proc/stat, first line).
bench_cpu_stat() {
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $9; exit }' /proc/stat
}

# bench_machine_busy_pct: percentage of the machine's CPU time used by anything over 1 s.
bench_machine_busy_pct() {
    local a b
    a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat)
    sleep 1
    b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat)
    set -- $a $b
    echo $(( ($3 - $1) * 100 / ($4 - $2 > 0 ? $4 - $2 : 1) ))
}

# bench_wait_quiet: waits (up to BENCH_QUIET_WAIT s, 60) for the machine to be under 10 % busy,
# since other jobs on the same cores perturb every figure; says so when it does not get quiet.
# Once the script's time budget (BENCH_MAX_TIME s) is spent it no longer waits.
bench_wait_quiet() {
    local busy waited=0
    if [ $((SECONDS - BENCH_T0)) -ge "${BENCH_MAX_TIME:-300}" ]; then
        return 1 # the time budget is spent: no more waiting
    fi
    while :; do
        busy=$(bench_machine_busy_pct)
        [ "$busy" -le 10 ] && return 0
        if [ $waited -ge "${BENCH_QUIET_WAIT:-60}" ]; then
            bench_log "WARNING: the machine stays $busy % busy without us: figures will be perturbed"
            return 1
        fi
        [ $waited = 0 ] && bench_log "the machine is $busy % busy (other jobs): waiting for quiet"
        sleep 4
        waited=$((waited + 5))
    done
}

# bench_json FILE KEY...: prints the values of top-level keys of a JSON object, one per line.
bench_json() {
    local f=$1
    shift
    "$PYTHON3" -c '
import json, sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    v = d.get(k, "")
    print(v if not isinstance(v, float) else ("%.6g" % v))
' "$f" "$@"
}

# bench_json_set FILE KEY VALUE: adds a number to the JSON object in FILE.
bench_json_set() {
    "$PYTHON3" -c '
import json, sys
f, k, v = sys.argv[1:4]
d = json.load(open(f))
d[k] = float(v)
json.dump(d, open(f, "w"))
' "$1" "$2" "$3"
}

# bench_run OUT PID MLLOAD-ARGS...: one generator run against the server PID, bounded in time;
# OUT gets mlload's JSON plus srv_cpu_s (the server's CPU over the run; PID may be a
# comma-separated list, whose CPU is summed), srv_alive (all of them) and udp_rcvbuf_errors.
# Returns mlload's status.
bench_run() {
    local out=$1 pid=$2 rc c0 c1 e0 e1 m0 m1 w0 w1
    shift 2
    c0=$(bench_cpu_ticks "$pid")
    e0=$(bench_udp_rcvbuf_errors)
    m0=$(bench_cpu_stat)
    w0=$(date +%s.%N)
    local limit=$((${BENCH_RUN_LIMIT:-60}))
    # shellcheck disable=SC2086
    timeout -k 5 "$limit" $BENCH_GEN_PIN "$MLLOAD" "$@" --json >"$out" 2>"$out.err"
    rc=$?
    c1=$(bench_cpu_ticks "$pid")
    e1=$(bench_udp_rcvbuf_errors)
    m1=$(bench_cpu_stat)
    w1=$(date +%s.%N)
    if ! [ -s "$out" ]; then
        echo '{}' >"$out"
        [ $rc -ne 0 ] || rc=1
    fi
    local alive=0
    bench_alive "$pid" && alive=1
    # other_cpu_s: machine CPU used by neither the server nor the generator (other jobs);
    # steal_s: time the hypervisor gave to other guests. Both perturb the step.
    "$PYTHON3" -c '
import json, sys
f, c0, c1, e0, e1, m0b, m0s, m1b, m1s, w0, w1, tck, alive = sys.argv[1:14]
tck = float(tck)
d = json.load(open(f))
d["srv_cpu_s"] = (int(c1) - int(c0)) / tck
d["udp_rcvbuf_errors"] = int(e1) - int(e0)
d["srv_alive"] = int(alive)
d["step_wall_s"] = float(w1) - float(w0)
d["other_cpu_s"] = round((int(m1b) - int(m0b)) / tck - d["srv_cpu_s"] - d.get("gen_cpu_s", 0), 3)
d["steal_s"] = (int(m1s) - int(m0s)) / tck
json.dump(d, open(f, "w"))
' "$out" "$c0" "$c1" "$e0" "$e1" $m0 $m1 "$w0" "$w1" "$CLK_TCK" "$alive"
    return $rc
}

# bench_verdict FILE RATE: prints "pass", "fail", "genlimit" or "perturbed" for one open-loop
# step. A step passes with at most BENCH_MAX_LOSS % loss, no errors, and the offered rate
# really offered. Loss beyond that is the server's ("fail") unless the generator's own sockets
# dropped most of it; a step without such loss is generator-limited when the generator could
# not send what was asked (over 3 % short) or its busiest thread worked more than 90 % of the
# time. A failed step is "perturbed" when other jobs used over 10 % of a core or the hypervisor
# stole over 5 % of the time.
# Over TCP and TLS the server does not drop what it cannot take: it stops reading. Packets
# that did not fit in a connection's output ("blocked") are the server's loss, not a
# generator that fell behind, and so are packets later than --late-ms ("late", already in
# the loss); a connection the server closed is an error.
bench_verdict() {
    "$PYTHON3" -c '
import json, sys
d = json.load(open(sys.argv[1])); rate = float(sys.argv[2]); maxloss = float(sys.argv[3])
if not d.get("sent") or not d.get("srv_alive", 1):
    print("fail"); sys.exit()
blocked = d.get("blocked", 0)
short = d["send_rate"] + blocked / (d.get("elapsed_s") or 1) < 0.97 * rate
busy = d.get("gen_work_max_pct", 0) > 90 or (not d.get("gen_spin") and d.get("gen_busy_max_pct", 0) > 95)
lossy = d["loss_pct"] > maxloss or blocked * 100 > maxloss * max(1, d["sent"] + blocked)
gen_drops = d.get("gen_rx_drops", 0) > 0.5 * max(1, d.get("lost", 0) + blocked)
bad = d["errors"] != 0 or d.get("misrouted", 0) != 0 or d.get("conn_failed", 0) != 0
wall = d.get("step_wall_s", 1) or 1
perturbed = d.get("other_cpu_s", 0) > 0.10 * wall or d.get("steal_s", 0) > 0.05 * wall
if not lossy and not bad and not short:
    print("pass")
elif perturbed:
    print("perturbed")
elif bad or (lossy and not gen_drops):
    print("fail")
else:
    print("genlimit")
' "$1" "$2" "${BENCH_MAX_LOSS:-0.1}"
}

# bench_perturbed FILE: "yes" when other jobs or the hypervisor took noticeable CPU during
# the run (see bench_verdict).
bench_perturbed() {
    "$PYTHON3" -c '
import json, sys
d = json.load(open(sys.argv[1]))
wall = d.get("step_wall_s", 1) or 1
print("yes" if d.get("other_cpu_s", 0) > 0.10 * wall or d.get("steal_s", 0) > 0.05 * wall else "no")
' "$1"
}

# bench_summary FILE: one line about a run, for the log.
bench_summary() {
    "$PYTHON3" -c '
import json, sys
d = json.load(open(sys.argv[1]))
rec = d.get("received", 0) or 0
cpu = d.get("srv_cpu_s", 0)
per = cpu * 1e6 / rec if rec else float("nan")
extra = ""
for k in ("blocked", "late", "conn_failed"):
    if d.get(k):
        extra += " %s %d" % (k, d[k])
print("offered %8.0f/s sent %8.0f/s recv %8.0f/s loss %7.4f %% | server CPU %.2f s, %.2f us/pkt | gen CPU %.2f s, busiest thread CPU %.0f %% work %.0f %% skipped %d%s | p50 %s us p99 %s us | others %.2f s steal %.2f s"
      % (d.get("rate_offered", 0), d.get("send_rate", 0), d.get("recv_rate", 0), d.get("loss_pct", 0),
         cpu, per, d.get("gen_cpu_s", 0), d.get("gen_busy_max_pct", 0), d.get("gen_work_max_pct", 0),
         d.get("skipped", 0), extra, d.get("lat_p50_us", "-"), d.get("lat_p99_us", "-"),
         d.get("other_cpu_s", 0), d.get("steal_s", 0)))
' "$1"
}

# bench_pin_plan N: decides the CPU sets. With at least N+1 cores the server gets cores 1..N
# and the generator the others (core 0 and any above N), busy-polling when it has no more
# threads than cores; otherwise nothing is pinned and the generator sleeps between bursts (a
# spinning generator would steal the server's cores).
bench_pin_plan() {
    local n=$1 ncpu ngen
    ncpu=$(nproc)
    if [ "${BENCH_PIN:-auto}" != no ] && [ "$ncpu" -ge $((n + 1)) ]; then
        SRV_CPUS="1-$n"
        [ "$n" -eq 1 ] && SRV_CPUS=1
        GEN_CPUS=0
        [ "$ncpu" -gt $((n + 1)) ] && GEN_CPUS="0,$((n + 1))-$((ncpu - 1))"
        ngen=$((ncpu - n))
        BENCH_GEN_PIN="taskset -c $GEN_CPUS"
        if [ "${GEN_THREADS:-1}" -gt "$ngen" ]; then
            # threads spinning on fewer cores take turns and offer less than one thread
            GEN_SPIN=""
            bench_log "pinning: server on CPU $SRV_CPUS, generator on CPU $GEN_CPUS (sleeping)"
        else
            GEN_SPIN=${GEN_SPIN:---spin}
            bench_log "pinning: server on CPU $SRV_CPUS, generator on CPU $GEN_CPUS (busy-polling)"
        fi
    else
        SRV_CPUS=""
        BENCH_GEN_PIN=""
        GEN_SPIN=${GEN_SPIN:-}
        bench_log "not pinning ($ncpu CPUs for $n server threads + the generator): the generator" \
            "shares cores with the server; read the generator CPU beside the results"
    fi
}

# Loss-free rate search, one state per server so that steps of different servers alternate.
# bench_search_init NAME START: ramp from START (x2 per passing step), then bisect.
declare -A S_LO S_HI S_NEXT S_STEPS S_DONE S_GENLIM S_LOFILE S_RETRY S_RETRIES S_PERT S_BUDGET
bench_search_init() {
    S_LO[$1]=0
    S_HI[$1]=0
    S_NEXT[$1]=$2
    S_STEPS[$1]=0
    S_DONE[$1]=0
    S_GENLIM[$1]=0
    S_LOFILE[$1]=""
    S_RETRY[$1]=0
    S_RETRIES[$1]=0
    S_PERT[$1]=0
    S_BUDGET[$1]=0
}

# bench_search_why NAME: what bounded the result, for the report.
bench_search_why() {
    local lo=${S_LO[$1]}
    if [ "${S_BUDGET[$1]}" = 1 ]; then
        echo "TIME BUDGET (>= $lo)"
    elif [ "$lo" -eq 0 ]; then
        echo "nothing passed"
    elif [ "${S_PERT[$1]}" -gt 8 ]; then
        echo "PERTURBED (>= $lo)"
    elif [ "${S_HI[$1]}" -eq 0 ]; then
        echo "not reached (>= $lo)"
    elif [ "${S_GENLIM[$1]}" = 1 ]; then
        echo "GENERATOR (>= $lo)"
    else
        echo "server (loss)"
    fi
}

# bench_search_update NAME RATE VERDICT FILE: records a step and picks the next rate; the
# search ends after BENCH_MAX_STEPS steps, or when the bracket is within BENCH_PRECISION %.
# A step that did not pass is repeated once before it counts (four repeats per search at most):
# on a virtual machine, a pause of the guest of a few tens of milliseconds overflows socket
# buffers at these rates, and that is not the server's doing. A perturbed step (other jobs,
# stolen time) is repeated after waiting for the machine to be quiet, up to 8 times per search;
# after that it counts as a failure and S_PERT marks the result.
bench_search_update() {
    local name=$1 rate=$2 verdict=$3 file=$4
    if [ "$verdict" = perturbed ]; then
        S_PERT[$name]=$((S_PERT[$name] + 1))
        if [ "${S_PERT[$name]}" -le 8 ]; then
            bench_wait_quiet || true
            S_NEXT[$name]=$rate
            return
        fi
        verdict=fail
    fi
    if [ "$verdict" != pass ]; then
        if [ "${S_RETRY[$name]:-0}" = 0 ] && [ "${S_RETRIES[$name]:-0}" -lt "${BENCH_RETRIES:-4}" ]; then
            S_RETRY[$name]=1
            S_RETRIES[$name]=$((${S_RETRIES[$name]:-0} + 1))
            S_NEXT[$name]=$rate
            return
        fi
    fi
    S_RETRY[$name]=0
    S_STEPS[$name]=$((S_STEPS[$name] + 1))
    case $verdict in
    pass)
        S_LO[$name]=$rate
        S_LOFILE[$name]=$file
        ;;
    *)
        # S_GENLIM says whether the lowest failing rate failed for the generator's sake
        if [ "${S_HI[$name]}" -eq 0 ] || [ "$rate" -lt "${S_HI[$name]}" ]; then
            S_HI[$name]=$rate
            S_GENLIM[$name]=0
            [ "$verdict" = genlimit ] && S_GENLIM[$name]=1
        fi
        ;;
    esac
    local lo=${S_LO[$name]} hi=${S_HI[$name]} next
    if [ "$hi" -eq 0 ]; then
        next=$((lo * 2))
        if [ "$next" -gt "${BENCH_RATE_MAX:-2000000}" ]; then
            S_DONE[$name]=1
            return
        fi
    elif [ "$lo" -eq 0 ]; then
        next=$((hi / 2))
        if [ "$next" -lt "${BENCH_RATE_MIN:-500}" ]; then
            S_DONE[$name]=1
            return
        fi
    else
        next=$(((lo + hi) / 2))
        if [ $(((hi - lo) * 100)) -le $((lo * ${BENCH_PRECISION:-5})) ]; then
            S_DONE[$name]=1
            return
        fi
    fi
    S_NEXT[$name]=$next
    if [ "${S_STEPS[$name]}" -ge "${BENCH_MAX_STEPS:-9}" ]; then
        S_DONE[$name]=1
    fi
}

# bench_caveat WHY-A GENWORK-A WHY-B GENWORK-B: why a ratio of maximum rates is not final
# (a search that did not end on the server's own loss, or a generator near its ceiling).
bench_caveat() {
    local out="" w
    for w in "$1|$2" "$3|$4"; do
        case ${w%%|*} in
        "server (loss)") ;;
        *) out="$out; a maximum is only a lower bound (${w%%|*})" ;;
        esac
        case ${w##*|} in
        n/a | "") ;;
        *) [ "${w##*|}" -gt 85 ] 2>/dev/null && out="$out; the generator worked ${w##*|} % at a maximum" ;;
        esac
    done
    [ -n "$out" ] && echo " (NOT FINAL${out})"
}

# bench_ratio A B: A / B with two decimals, or "n/a".
bench_ratio() {
    "$PYTHON3" -c '
import sys
try:
    a, b = float(sys.argv[1]), float(sys.argv[2])
    print("%.2f" % (a / b) if a > 0 and b > 0 else "n/a")
except ValueError:
    print("n/a")
' "$1" "$2"
}
