#!/usr/bin/env python3
"""How long a full relay answers 508 (benchmark, not a test): this script holds every (address,
port) pair of 16 loopback relay addresses x 1,024 ports (16,384 UDP sockets), then sends 50
Allocates to meetlited with turn.relay-port-attempts at its default (128) and at the whole space
(16,384: one bind() per pair, which is what every Allocate of a full server did before the key
existed) and prints the median, min and max time to the 508 as the client sees it. coturn is
not run: the figure is meetlited against its own former walk.

    MEETLITED=build-opt/meetlited flock /work/bench.lock tests/bench/bench-port-walk.py
"""

import os
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import SUCCESS, Daemon, free_port, rest_credential  # noqa: E402
from turnclient import TurnClient  # noqa: E402

SECRET = "walk-bench-secret-0123456"
ADDRS = ["127.0.0.%d" % i for i in range(1, 17)]
LO, HI = 37000, 37000 + 1023
ROUNDS = 50

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
need = len(ADDRS) * (HI - LO + 1) + 200
if hard != resource.RLIM_INFINITY and hard < need:
    sys.exit("bench-port-walk: %d open files needed, the hard limit is %d" % (need, hard))
resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
held = []
for a in ADDRS:
    for p in range(LO, HI + 1):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((a, p))
        held.append(s)
for attempts in (128, len(held)):
    port = free_port()
    d = Daemon(["turn.listen=udp://127.0.0.1:%d" % port, "turn.auth-secret=" + SECRET,
                "turn.relay-address=" + ", ".join(ADDRS), "turn.relay-ports=%d-%d" % (LO, HI),
                "turn.relay-port-attempts=%d" % attempts, "net.workers=1", "log.level=notice"])
    try:
        c = TurnClient(("127.0.0.1", port))
        c.login(*rest_credential(SECRET, "bench", 3600))
        c.allocate(expect_ok=False)  # the 401 round, then a first 508
        times = []
        for i in range(ROUNDS):
            t0 = time.perf_counter()
            r = c.allocate(expect_ok=False)
            times.append(time.perf_counter() - t0)
            if r.cls == SUCCESS or r.error() != 508:
                sys.exit("bench-port-walk: Allocate answered %r, not 508" % r.error())
        times.sort()
        print("relay-port-attempts=%d: %d Allocates answered 508, median %.3f ms, min %.3f ms, "
              "max %.3f ms" % (attempts, ROUNDS, times[ROUNDS // 2] * 1e3, times[0] * 1e3,
                               times[-1] * 1e3))
        c.close()
    finally:
        d.stop()
        d.close()
for s in held:
    s.close()
