#!/usr/bin/env python3
"""The help assistant through its REST endpoint (benchmark, not a test): meetlited on loopback
with the given database (articles loaded already), one account, and CLIENTS threads each
asking tests/data/kb/questions.tsv in a shuffled loop over a kept-alive connection for
DURATION seconds. Prints p50/p90/p99/max of the answer time as the client sees it (request
written to answer read: HTTP, the database job, ml_kb_answer and its log row).

    tests/bench/kb-http.py URL DURATION CLIENTS [MEETLITED]
"""

import http.client
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
if len(sys.argv) > 4:
    os.environ["MEETLITED"] = sys.argv[4]
from mlcontrol import ControlDaemon  # noqa: E402
import mlkb  # noqa: E402


def pct(xs, p):
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def main():
    url, duration, clients = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    d = ControlDaemon(url, ["assistant.rate-limit=100000", "control.access-log=no"])
    try:
        tok, _ = d.api.user("bench-%d-%d@example.org" % (os.getpid(), clients))
        questions = mlkb.load_questions()
        lat, errors = [], []
        lock = threading.Lock()

        def worker(seed):
            rnd = random.Random(seed)
            qs = list(questions)
            c = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=30)
            mine, bad = [], 0
            end = time.monotonic() + duration
            while time.monotonic() < end:
                rnd.shuffle(qs)
                for q in qs:
                    body = json.dumps({"question": q.text, "context": {"language": q.lang}})
                    t0 = time.perf_counter()
                    c.request("POST", "/api/v1/assistant/ask", body=body,
                              headers={"Authorization": "Bearer " + tok,
                                       "Content-Type": "application/json"})
                    r = c.getresponse()
                    r.read()
                    mine.append(time.perf_counter() - t0)
                    if r.status != 200:
                        bad += 1
                    if time.monotonic() >= end:
                        break
            c.close()
            with lock:
                lat.extend(mine)
                errors.append(bad)

        # warm up: every question once
        worker(0)
        lat.clear()
        errors.clear()
        ts = [threading.Thread(target=worker, args=(i + 1,)) for i in range(clients)]
        t0 = time.monotonic()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        took = time.monotonic() - t0
        lat.sort()
        print("POST /api/v1/assistant/ask, %d client(s), %.0fs: n=%d p50=%.1fms p90=%.1fms "
              "p99=%.1fms max=%.1fms rps=%.0f non-200=%d"
              % (clients, duration, len(lat), 1000 * pct(lat, .5), 1000 * pct(lat, .9),
                 1000 * pct(lat, .99), 1000 * lat[-1], len(lat) / took, sum(errors)))
    finally:
        d.close()


if __name__ == "__main__":
    main()
