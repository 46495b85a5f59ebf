"""A full relay port space answers 508 after a bounded number of bind() calls
(turn.relay-port-attempts), not one per (address, port) pair: with 16 relay addresses and a tiny
range every pair is taken by allocations, the next Allocate gets 508 having tried each pair once
(the space, 32 pairs, is below the default 128 attempts, so the last free port is always found),
and after one allocation is freed the next one gets its pair. With the attempts set below the
space and every pair held by other sockets, the 508 comes after exactly that many binds.
The binds are read from the stats (turn.allocations.ports_busy), not timed."""

import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mladmin import AdminDaemon  # noqa: E402
from mltest import SUCCESS, Tap, rest_credential  # noqa: E402
from turnclient import TurnClient  # noqa: E402

SECRET = "port-walk-secret-0123456789"
ADDRS = ["127.0.0.%d" % i for i in range(1, 17)]
t = Tap()


def client(d, ident):
    c = TurnClient(d.server)
    c.login(*rest_credential(SECRET, ident, 3600))
    return c


def busy(d):
    return d.api.stats()["turn"]["allocations"]["ports_busy"]


# 16 addresses x 2 ports: 32 pairs, all tried when needed
d = AdminDaemon(["turn.auth-secret=" + SECRET, "turn.relay-address=" + ", ".join(ADDRS),
                 "turn.relay-ports=38000-38001"])
try:
    clients, relays = [], set()
    for i in range(32):
        c = client(d, "fill%d" % i)
        r = c.allocate(expect_ok=False)
        if r.cls != SUCCESS:
            t.ok(False, "allocation %d of 32 succeeds" % (i + 1), r.error())
            break
        clients.append(c)
        relays.add(tuple(c.relay))
    t.eq(len(relays), 32, "32 allocations take the 32 (address, port) pairs")
    before = busy(d)
    extra = client(d, "extra")
    r = extra.allocate(expect_ok=False)
    t.ok(r.cls != SUCCESS and r.error() == 508, "the 33rd gets 508 Insufficient Capacity", r.error())
    t.eq(busy(d) - before, 32, "it tried each of the 32 pairs once (below relay-port-attempts=128)")
    freed = clients.pop()
    t.ok(freed.refresh(lifetime=0).cls == SUCCESS, "Refresh 0 frees one")
    # The io_uring path used to keep the freed socket's port bound until its receive's
    # cancellation completed, so this Allocate could get 508 (fixed in a89638e).
    r = extra.allocate(expect_ok=False)
    t.ok(r.cls == SUCCESS and tuple(extra.relay) == tuple(freed.relay),
         "the next Allocate gets the freed pair", (r.error() if r.cls != SUCCESS else extra.relay, freed.relay))
    freed.close()
    for c in clients + [extra]:
        c.close()
finally:
    d.stop_checked(t)

# 16 addresses x 16 ports = 256 pairs, at most 8 tried: every pair held by a socket of this test
PORTS = range(38010, 38026)
held = []
try:
    for a in ADDRS:
        for p in PORTS:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((a, p))
            held.append(s)
except OSError as e:
    t.bail("could not hold the relay ports for the test: %s" % e)
d = AdminDaemon(["turn.auth-secret=" + SECRET, "turn.relay-address=" + ", ".join(ADDRS),
                 "turn.relay-ports=%d-%d" % (PORTS[0], PORTS[-1]), "turn.relay-port-attempts=8"])
try:
    before = busy(d)
    c = client(d, "capped")
    r = c.allocate(expect_ok=False)
    t.ok(r.cls != SUCCESS and r.error() == 508, "every pair taken: 508", r.error())
    t.eq(busy(d) - before, 8, "after 8 bind() calls (relay-port-attempts=8), not 256")
    r = c.allocate(expect_ok=False)
    t.eq(busy(d) - before, 16, "a second Allocate: 8 more")
    for s in held:
        s.close()
    held = []
    r = c.allocate(expect_ok=False)
    t.ok(r.cls == SUCCESS and c.relay[0] in ADDRS and c.relay[1] in PORTS,
         "with the ports let go, Allocate succeeds", r.error() if r.cls != SUCCESS else c.relay)
    t.eq(busy(d) - before, 16, "without trying a taken port")
    c.close()
finally:
    for s in held:
        s.close()
    d.stop_checked(t)

sys.exit(t.done())
