"""TURN timers, nonces, quotas and budgets with short settings: permissions, channels and
allocations expire on time; a stale NONCE gets 438 and the retry succeeds; strict-expiry refuses
a Refresh after the credential's expiry; per-user and total quotas (486, 508), an exhausted port
range (508), limits reloaded by SIGHUP, and the unauthenticated budget per source."""

import os
import signal
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import ALLOCATE, ERROR, REQUEST, SUCCESS, Daemon, Msg, Tap, free_port, rest_credential  # noqa: E402
from turnclient import UDP_PROTO, Peer, TurnClient  # noqa: E402

SECRET = "limits-secret-0123456789"
t = Tap()


def client(server, ident, ttl=3600):
    c = TurnClient(server)
    c.login(*rest_credential(SECRET, ident, ttl))
    return c


# ---------------------------------------------------------------- timers
port = free_port()
d = Daemon(["turn.listen=udp://127.0.0.1:%d" % port, "turn.auth-secret=" + SECRET,
            "turn.allow-peers=127.0.0.0/8", "turn.default-lifetime=3", "turn.max-lifetime=6",
            "turn.permission-lifetime=2", "turn.channel-lifetime=4", "turn.nonce-lifetime=10",
            "turn.strict-expiry=yes", "net.workers=1"])
srv = ("127.0.0.1", port)
try:
    peer = Peer()
    c = client(srv, "timers")
    r = c.allocate(lifetime=1)
    t.eq(struct.unpack("!I", r.get("LIFETIME"))[0], 3, "a LIFETIME below the default gets the default")
    c.create_permission(peer.addr)
    c.channel_bind(0x4100, peer.addr)
    t0 = time.time()
    # keep the allocation alive (6 s) but let the permission (2 s) and then the channel (4 s) lapse
    c.refresh(6)
    time.sleep(2.3)
    peer.send(c.relay, b"after-permission-expiry")
    got = c.recv_data(0.5)
    t.eq(got, None, "after permission-lifetime the peer is no longer relayed")
    c.send_channel(0x4100, b"x")
    t.eq(peer.recv(0.3)[0], None, "ChannelData needs the permission too")
    c.create_permission(peer.addr)
    peer.send(c.relay, b"again")
    t.eq(c.recv_data(), ("channel", 0x4100, b"again"), "a new permission revives the still-bound channel")
    time.sleep(max(0, 4.4 - (time.time() - t0)))
    c.create_permission(peer.addr)
    peer.send(c.relay, b"no-channel")
    got = c.recv_data()
    t.ok(got is not None and got[0] == "data", "after channel-lifetime data comes as Data indications", got)
    # the allocation itself (6 s from the refresh)
    time.sleep(max(0, 6.5 - (time.time() - t0)))
    r = c.create_permission(peer.addr, expect_ok=False)
    t.eq(r.error(), 437, "after its lifetime the allocation is gone (437)")
    c.close()

    # nonce staleness: refreshing with one nonce works until it is nonce-lifetime old, then 438
    # with a fresh NONCE, and the retry with the fresh one succeeds
    c = client(srv, "nonce")
    c.allocate(lifetime=6)
    old_nonce, start, stale_at = c.nonce, time.time(), None
    while time.time() - start < 14:
        time.sleep(1.5)
        r = c.transact(Msg(0x004, REQUEST).add("LIFETIME", struct.pack("!I", 6)))
        if r is None or r.cls != SUCCESS:
            stale_at = time.time() - start
            break
    t.ok(stale_at is not None and 9 <= stale_at <= 12.5 and r.error() == 438 and r.get("NONCE") not in (None, old_nonce),
         "a nonce past nonce-lifetime gets 438 with a fresh NONCE (after %s s)" % (stale_at and round(stale_at, 1)))
    r = c.refresh(6, expect_ok=False)
    t.ok(r.cls == SUCCESS, "the retry with the fresh nonce succeeds")
    c.close()

    # strict-expiry: the credential lapses 2 s after Allocate; Refresh is then refused
    c = client(srv, "strict", ttl=2)
    c.allocate()
    time.sleep(3.6)  # an expiry is valid through its own second
    r = c.refresh(5, expect_ok=False)
    t.eq(r.error(), 401, "with strict-expiry a Refresh after the credential's expiry gets 401")
    c.close()
    peer.close()
finally:
    t.ok(d.clean(), "timers daemon stops cleanly", d.log()[-3000:])
    d.close()

# ---------------------------------------------------------------- quotas, ports, reload, budget
port = free_port()
conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)


def write_conf(total):
    with open(conf.name, "w") as f:
        f.write("[net]\nworkers = 2\n[turn]\nlisten = udp://127.0.0.1:%d\nauth-secret = %s\n"
                "relay-ports = 41000-41003\nmax-allocations-per-user = 2\nmax-allocations = %d\n"
                "unauth-answer-rate = 480\nunauth-answer-burst = 480\n" % (port, SECRET, total))


write_conf(100)
d = Daemon([], config=conf.name)
srv = ("127.0.0.1", port)
held = []
try:
    a1, a2 = client(srv, "alice"), client(srv, "alice")
    t.ok(a1.allocate(expect_ok=False).cls == SUCCESS and a2.allocate(expect_ok=False).cls == SUCCESS,
         "two allocations for one id")
    a3 = client(srv, "alice")
    t.eq(a3.allocate(expect_ok=False).error(), 486, "a third for the same id gets 486 (max-allocations-per-user)")
    held += [a1, a2, a3]
    b1, b2 = client(srv, "bob"), client(srv, "bob")
    t.ok(b1.allocate(expect_ok=False).cls == SUCCESS and b2.allocate(expect_ok=False).cls == SUCCESS,
         "another id still allocates")
    held += [b1, b2]
    c1 = client(srv, "carol")
    t.eq(c1.allocate(expect_ok=False).error(), 508, "with the 4 relay ports taken, Allocate gets 508")
    held.append(c1)
    a1.refresh(0)
    t.ok(client(srv, "alice").allocate(expect_ok=False).cls == SUCCESS, "freeing one allocation frees its quota and port")

    # lower the total by SIGHUP: new allocations get 508 while the existing ones live on
    write_conf(2)
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded")
    a2.refresh(0)
    x = client(srv, "dave")
    t.eq(x.allocate(expect_ok=False).error(), 508, "after a reload to max-allocations=2, Allocate gets 508")
    t.ok(b1.refresh(600, expect_ok=False).cls == SUCCESS, "existing allocations are kept")
    held.append(x)

    # the unauthenticated budget: 480 bytes/s with a burst of 480 bytes, five 96-byte 401s, to
    # one address. The flood comes from an address of its own (127.0.0.9), so that the 401s the
    # other clients of this test got from 127.0.0.1 do not count against it.
    flood = TurnClient(srv, local=("127.0.0.9", 0))
    answered = 0
    for _ in range(40):
        flood.send_raw(Msg(ALLOCATE, REQUEST).add("REQUESTED-TRANSPORT", UDP_PROTO).encode())
    while flood.recv_any(0.3) is not None:
        answered += 1
    t.ok(1 <= answered <= 10, "40 unauthenticated requests from one source: %d answered" % answered)
    flood.close()
    time.sleep(1.2)
    ok = TurnClient(srv, local=("127.0.0.9", 0))
    r = ok.transact(Msg(ALLOCATE, REQUEST).add("REQUESTED-TRANSPORT", UDP_PROTO), integrity=False)
    t.ok(r is not None and r.error() == 401, "the budget refills with time")
    ok.close()
    # an authenticated client is never throttled by the budget
    e = client(srv, "erin")
    answered = 0
    for _ in range(20):
        r = e.refresh(600, expect_ok=False) if getattr(e, "key", None) else None
        if r is None:
            r = e.allocate(expect_ok=False)
        answered += r is not None
    t.eq(answered, 20, "authenticated requests are not counted against the budget")
    held.append(e)
finally:
    for h in held:
        h.close()
    t.ok(d.clean(), "quota daemon stops cleanly", d.log()[-3000:])
    d.close()
    os.unlink(conf.name)

sys.exit(t.done())
