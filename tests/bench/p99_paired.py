#!/usr/bin/python3
"""tests/bench/p99_paired.py: two servers' latency tails at one fixed rate, compared run by run.

bench-turn.sh runs each server at a fixed rate in rounds, alternating (round 1: A then B, round
2: A then B, ...), so a round's two runs meet much the same machine. On a host whose p99 moves
several-fold from one 3-second run to the next, a median of each server's runs hides how often
one beat the other. This reads the runs' JSON (mlload's, with its latency histogram) and prints:

  - each server's pooled p99: the 99th percentile of every packet of its runs together;
  - the ratio of the two pooled p99s, A/B, with a 95 % bootstrap interval: the rounds resampled
    with replacement (a round keeps both its runs), the pooled ratio recomputed each time;
  - the rounds in which A's p99 was at most B's, and the two-sided sign-test p-value of that
    count (no difference: each server wins a round with probability 1/2).

usage: p99_paired.py [--fields] A_FILES... -- B_FILES...
Files pair by the round number in their names (relay-KEY-fixedRATE-ROUND-SERVER.json); a round
missing either run is left out. Prints one JSON object, or with --fields one line: rounds,
pooled ratio, its interval's two ends, rounds A won, sign-test p (n/a where there is none).
bench-turn.sh also imports pooled_pct() for each server's pooled p99.
"""
import json
import math
import random
import re
import statistics
import sys


def load(files):
    runs = {}
    for f in files:
        m = re.search(r"-fixed\d+-(\d+)-[^/]*\.json$", f)
        if not m:
            continue
        try:
            d = json.load(open(f))
        except (OSError, ValueError):
            continue
        if not d.get("received") or "lat_hist" not in d:
            continue
        runs[int(m.group(1))] = (run_hist(d), d.get("lat_p99_us", 0))
    return runs


def run_hist(d):
    """A run's latency histogram from mlload's JSON: {bucket value: count}, and its largest
    latency (under key None), which bounds the last bucket as mlload's own percentiles do."""
    h = {int(v): int(c) for v, c in d.get("lat_hist", [])}
    if h:
        h[None] = int(d.get("lat_max_us", max(h)))
    return h


def pooled_pct(hists, pct):
    """The nearest-rank percentile of several runs' histograms together, as mlload takes a
    run's: the middle of the bucket that holds it, at most the largest latency seen."""
    total, top = {}, 0
    for h in hists:
        for v, c in h.items():
            if v is None:
                top = max(top, c)
            else:
                total[v] = total.get(v, 0) + c
    n = sum(total.values())
    if not n:
        return 0
    rank = max(1, math.ceil(pct / 100.0 * n))
    seen = 0
    for v in sorted(total):
        seen += total[v]
        if seen >= rank:
            return min(v, top) if top else v
    return top or max(total)


def sign_test(k, n):
    """Two-sided binomial p-value of k successes in n at probability 1/2."""
    if n == 0:
        return 1.0
    tail = min(k, n - k)
    p = sum(math.comb(n, i) for i in range(0, tail + 1)) / 2.0 ** n
    return min(1.0, 2 * p)


def main(argv):
    fields = argv[:1] == ["--fields"]
    if fields:
        argv = argv[1:]
    if "--" not in argv:
        sys.exit(__doc__)
    cut = argv.index("--")
    a, b = load(argv[:cut]), load(argv[cut + 1:])
    rounds = sorted(set(a) & set(b))
    out = {"rounds": len(rounds)}
    if not rounds:
        print("0 n/a n/a n/a n/a n/a" if fields else json.dumps(out))
        return
    pa = pooled_pct([a[r][0] for r in rounds], 99)
    pb = pooled_pct([b[r][0] for r in rounds], 99)
    wins = sum(1 for r in rounds if a[r][1] <= b[r][1])
    ratios = [a[r][1] / b[r][1] for r in rounds if b[r][1]]
    rng = random.Random(19)  # a fixed seed: the same runs give the same interval
    boot = []
    for _ in range(2000):
        pick = [rng.choice(rounds) for _ in rounds]
        qb = pooled_pct([b[r][0] for r in pick], 99)
        if qb:
            boot.append(pooled_pct([a[r][0] for r in pick], 99) / qb)
    boot.sort()
    out.update({
        "a_pooled_p99_us": pa,
        "b_pooled_p99_us": pb,
        "pooled_ratio": round(pa / pb, 3) if pb else None,
        "pooled_ratio_ci95": [round(boot[int(0.025 * len(boot))], 3),
                              round(boot[int(0.975 * len(boot)) - 1], 3)] if boot else None,
        "round_ratio_median": round(statistics.median(ratios), 3) if ratios else None,
        "a_at_most_b_rounds": wins,
        "sign_test_p": round(sign_test(wins, len(rounds)), 4),
    })
    if fields:
        ci = out["pooled_ratio_ci95"] or ["n/a", "n/a"]
        print(out["rounds"], out["pooled_ratio"] or "n/a", ci[0], ci[1], wins, out["sign_test_p"])
    else:
        print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
