"""Several relay addresses per family (turn.relay-address, issue #19): each address has the whole
port range, so the capacity is addresses x ports; allocations spread over the addresses, relay
from the address they were given, and 508 comes only when every (address, port) is taken.
turn.external-address maps one public IP to each relay address, in order. Lists that do not fit
(too many, repeated, a public list of the wrong length) are start errors that say why."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import MEETLITED, SUCCESS, Daemon, Tap, free_port, rest_credential  # noqa: E402
from turnclient import Peer, TurnClient  # noqa: E402

SECRET = "relay-addresses-secret-0123"
t = Tap()


def client(port, ident):
    c = TurnClient(("127.0.0.1", port))
    c.login(*rest_credential(SECRET, ident, 3600))
    return c


# two addresses, two ports each: four allocations
port = free_port()
d = Daemon(["turn.listen=udp://127.0.0.1:%d" % port, "turn.auth-secret=%s" % SECRET, "net.workers=2",
            "turn.relay-address=127.0.0.1, 127.0.0.2", "turn.relay-ports=46010-46011",
            "turn.allow-peers=127.0.0.0/8"])
try:
    clients, relays = [], []
    for i in range(4):
        c = client(port, "cap%d" % i)
        r = c.allocate(expect_ok=False)
        t.ok(r.cls == SUCCESS, "allocation %d of 4 succeeds" % (i + 1), r.error() if r.cls != SUCCESS else None)
        clients.append(c)
        relays.append(tuple(c.relay))
    t.eq(sorted(relays), [("127.0.0.1", 46010), ("127.0.0.1", 46011), ("127.0.0.2", 46010), ("127.0.0.2", 46011)],
         "the four allocations take every (address, port) pair")
    extra = client(port, "cap-extra")
    r = extra.allocate(expect_ok=False)
    t.ok(r.cls != SUCCESS and r.error() == 508, "the fifth gets 508 Insufficient Capacity", r.error())
    peer = Peer()
    for c in clients:
        c.create_permission(peer.addr)
        c.send_indication(peer.addr, b"from " + c.relay[0].encode())
        got, src = peer.recv(2.0)
        t.ok(got == b"from " + c.relay[0].encode() and src == tuple(c.relay),
             "relayed from its own address %s:%d" % tuple(c.relay), src)
    freed = clients.pop()
    t.ok(freed.refresh(lifetime=0).cls == SUCCESS, "Refresh 0 frees one")
    freed.close()
    r = extra.allocate(expect_ok=False)
    t.ok(r.cls == SUCCESS and tuple(extra.relay) == relays[-1], "the freed (address, port) serves the next one",
         r.error() if r.cls != SUCCESS else extra.relay)
    # A freed port serves at once, every time: the io_uring path let go of a closed relay
    # socket only once its receive's cancellation completed, a loop turn or more later, so an
    # Allocate right after a Refresh 0 (on the other worker, say) could still find the port
    # bound and get 508: on a loaded machine, about one run of this file in five. Thirty rounds
    # of free-then-allocate give that race thirty chances instead of one.
    clients.append(extra)
    lost = []
    for i in range(30):
        freed = clients.pop(i % len(clients))
        pair = tuple(freed.relay)
        if freed.refresh(lifetime=0).cls != SUCCESS:
            lost.append((i, "refresh"))
        freed.close()
        nxt = client(port, "again%d" % i)
        r = nxt.allocate(expect_ok=False)
        if r.cls != SUCCESS or tuple(nxt.relay) != pair:
            lost.append((i, r.error() if r.cls != SUCCESS else nxt.relay))
        clients.append(nxt)
    t.eq(lost, [], "thirty times, the pair a Refresh 0 freed serves the next Allocate at once")
    for c in clients:
        c.close()
    peer.close()
finally:
    rc, log = d.stop()
    t.ok(d.clean(), "stops cleanly", log[-3000:])
    d.close()

# 1:1 NAT with two addresses: the public IPs follow the relay addresses in order
port = free_port()
d = Daemon(["turn.listen=udp://127.0.0.1:%d" % port, "turn.auth-secret=%s" % SECRET, "net.workers=1",
            "turn.relay-address=127.0.0.1, 127.0.0.2", "turn.external-address=203.0.113.1, 203.0.113.2",
            "turn.relay-ports=46020-46021", "turn.allow-peers=127.0.0.0/8"])
try:
    peer = Peer()
    seen = set()
    held = []
    for i in range(4):  # every (address, port) pair: both addresses are used
        c = client(port, "nat%d" % i)
        c.allocate()
        c.create_permission(peer.addr)
        c.send_indication(peer.addr, b"x")
        got, src = peer.recv(2.0)
        seen.add((c.relay[0], src[0] if src else None, c.relay[1] == (src[1] if src else None)))
        held.append(c)
    t.eq(seen, {("203.0.113.1", "127.0.0.1", True), ("203.0.113.2", "127.0.0.2", True)},
         "XOR-RELAYED-ADDRESS carries the public IP of the address the socket is bound to")
    for c in held:
        c.close()
    peer.close()
finally:
    rc, log = d.stop()
    t.ok(d.clean(), "NAT daemon stops cleanly", log[-3000:])
    d.close()

# lists that do not fit
bad = [
    (["turn.relay-address=127.0.0.1, 127.0.0.2", "turn.external-address=203.0.113.1"],
     "turn.external-address has 1 IPv4 addresses for 2 relay addresses"),
    (["turn.relay-address=127.0.0.1, 127.0.0.1"], "turn.relay-address: 127.0.0.1 is listed twice"),
    (["turn.relay-address=" + ", ".join("127.0.1.%d" % i for i in range(1, 18))],
     "turn.relay-address: at most 16 addresses per family"),
]
for sets, want in bad:
    args = [MEETLITED, "--set", "turn.listen=udp://127.0.0.1:%d" % free_port()]
    for s in sets:
        args += ["--set", s]
    p = subprocess.run(args, capture_output=True, text=True, timeout=30)
    out = p.stdout + p.stderr
    t.ok(p.returncode != 0 and want in out, "start error: %s" % want, "status %d:\n%s" % (p.returncode, out))

sys.exit(t.done())
