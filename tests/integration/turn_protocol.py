"""TURN over UDP (RFC 8656) with our own client: the 401 challenge and long-term credentials (REST
secrets, static users, MESSAGE-INTEGRITY-SHA256), Allocate and its errors (400, 437, 440, 442),
retransmissions answered alike, Refresh (441, LIFETIME 0 and its retransmission), CreatePermission
(400, 403, 443), ChannelBind (the number range and rebind rules), ChannelData, Send and Data
indications both ways, EVEN-PORT reservations, dual allocations, and logs free of credentials."""

import os
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import (ALLOCATE, ATTR, ERROR, REQUEST, SUCCESS, Daemon, Msg, Tap, free_port,  # noqa: E402
                    long_term_key, rest_credential)
from turnclient import UDP_PROTO, Peer, TurnClient, verify_integrity  # noqa: E402

SECRET = "test-secret-0123456789"
SECRET2 = "rotated-secret-abcdef"
t = Tap()
port = free_port()
port6 = free_port(socket_family := __import__("socket").AF_INET6, "::1")
d = Daemon(["turn.listen=udp://127.0.0.1:%d, udp://[::1]:%d" % (port, port6),
            "turn.auth-secret=%s, %s" % (SECRET, SECRET2), "turn.realm=meet.test",
            "turn.allow-peers=127.0.0.0/8, ::1", "turn.static-users=alice:wonderland-pw",
            "turn.relay-ports=40000-40999", "net.workers=2", "log.level=info"])
srv = ("127.0.0.1", port)
srv6 = ("::1", port6)


def client(ident="p1", ttl=3600, secret=SECRET, server=srv):
    c = TurnClient(server)
    user, pw = rest_credential(secret, ident, ttl)
    c.login(user, pw)
    return c


try:
    # ------------------------------------------------------------ the challenge
    c = TurnClient(srv)
    r = c.transact(Msg(ALLOCATE, REQUEST).add("REQUESTED-TRANSPORT", UDP_PROTO), integrity=False)
    t.ok(r is not None and r.cls == ERROR and r.error() == 401, "Allocate without credentials gets 401")
    t.eq(r.get("REALM"), b"meet.test", "401 carries the configured REALM")
    nonce = r.get("NONCE") or b""
    t.ok(nonce.startswith(b"obMatJos2") and len(nonce) <= 64, "NONCE is a stateless RFC 8489 nonce", nonce)
    pa = r.get("PASSWORD-ALGORITHMS") or b""
    algs = [struct.unpack("!H", pa[i:i + 2])[0] for i in range(0, len(pa), 4)]
    t.ok(set(algs) == {1, 2}, "PASSWORD-ALGORITHMS offers MD5 and SHA-256", algs)
    t.ok(r.get("SOFTWARE") is None and len(c.last_raw) < 160, "401 is short (%d bytes), no SOFTWARE" % len(c.last_raw))
    c.close()

    # ------------------------------------------------------------ Allocate
    c = client("p1")
    r = c.allocate()
    t.ok(r.cls == SUCCESS, "Allocate with a TURN REST credential succeeds")
    t.ok(verify_integrity(c.last_raw, c.key), "the success carries a valid MESSAGE-INTEGRITY")
    t.ok(c.relay[0] == "127.0.0.1" and 40000 <= c.relay[1] <= 40999, "XOR-RELAYED-ADDRESS in the relay range", c.relay)
    t.eq(struct.unpack("!I", r.get("LIFETIME"))[0], 600, "default LIFETIME 600 s")
    t.eq(c.mapped, c.sock.getsockname()[:2], "XOR-MAPPED-ADDRESS is the client's address")
    first_raw = c.last_raw

    # a retransmission of the same Allocate gets the same answer
    c.send_raw(c.encode(Msg.decode(first_raw[:20] + b"")) if False else b"")  # placeholder, replaced below
    alloc_req = Msg(ALLOCATE, REQUEST, tid=r.tid).add("REQUESTED-TRANSPORT", UDP_PROTO)
    again = c.transact(alloc_req)
    t.ok(again is not None and c.last_raw == first_raw, "a retransmitted Allocate gets the identical answer")
    r2 = c.allocate(expect_ok=False)
    t.eq(r2.error(), 437, "a second Allocate on the same 5-tuple gets 437")
    t.ok(verify_integrity(c.last_raw, c.key), "the 437 carries MESSAGE-INTEGRITY")

    # <id>:<expiry> order and the second secret
    c2 = TurnClient(srv)
    expiry = int(time.time()) + 600
    import base64, hashlib, hmac  # noqa: E401,E402
    u2 = "p2:%d" % expiry
    c2.login(u2, base64.b64encode(hmac.new(SECRET2.encode(), u2.encode(), hashlib.sha1).digest()).decode())
    t.ok(c2.allocate(expect_ok=False).cls == SUCCESS, "<id>:<expiry> username with the second secret accepted")
    c2.close()

    # wrong password, expired credential, unknown secret
    for desc, mk in [("a wrong password", lambda: ("%d:x" % (time.time() + 600), "bm90IGl0")),
                     ("an expired REST credential", lambda: rest_credential(SECRET, "old", -60)),
                     ("a credential from an unknown secret", lambda: rest_credential("other-secret-000", "x"))]:
        cc = TurnClient(srv)
        cc.login(*mk())
        rr = cc.allocate(expect_ok=False)
        t.ok(rr.cls == ERROR and rr.error() == 401, "%s gets 401" % desc, rr.error())
        cc.close()

    # static user with a password, and MESSAGE-INTEGRITY-SHA256
    cs = TurnClient(srv)
    cs.login("alice", "wonderland-pw")
    t.ok(cs.allocate(expect_ok=False).cls == SUCCESS, "static user alice allocates (MD5 key)")
    cs.close()
    cs = TurnClient(srv)
    cs.login("alice", "wonderland-pw", sha256=True)
    rs = cs.allocate(expect_ok=False)
    t.ok(rs.cls == SUCCESS and rs.get("MESSAGE-INTEGRITY-SHA256") is not None and verify_integrity(cs.last_raw, cs.key, True),
         "MESSAGE-INTEGRITY-SHA256 with PASSWORD-ALGORITHM SHA-256 is answered in kind")
    cs.close()

    # malformed Allocates
    for desc, attrs, code in [("no REQUESTED-TRANSPORT", [], 400),
                              ("REQUESTED-TRANSPORT TCP", [("REQUESTED-TRANSPORT", b"\x06\0\0\0")], 442),
                              ("RESERVATION-TOKEN with EVEN-PORT", [("REQUESTED-TRANSPORT", UDP_PROTO), ("EVEN-PORT", b"\x00"), ("RESERVATION-TOKEN", b"12345678")], 400),
                              ("an unknown address family", [("REQUESTED-TRANSPORT", UDP_PROTO), ("REQUESTED-ADDRESS-FAMILY", b"\x07\0\0\0")], 440),
                              ("both address family attributes", [("REQUESTED-TRANSPORT", UDP_PROTO), ("REQUESTED-ADDRESS-FAMILY", b"\x01\0\0\0"), ("ADDITIONAL-ADDRESS-FAMILY", b"\x02\0\0\0")], 400),
                              ("RESERVATION-TOKEN with REQUESTED-ADDRESS-FAMILY", [("REQUESTED-TRANSPORT", UDP_PROTO), ("REQUESTED-ADDRESS-FAMILY", b"\x02\0\0\0"), ("RESERVATION-TOKEN", b"12345678")], 400),
                              ("RESERVATION-TOKEN with ADDITIONAL-ADDRESS-FAMILY", [("REQUESTED-TRANSPORT", UDP_PROTO), ("ADDITIONAL-ADDRESS-FAMILY", b"\x02\0\0\0"), ("RESERVATION-TOKEN", b"12345678")], 400),
                              ("EVEN-PORT R with ADDITIONAL-ADDRESS-FAMILY", [("REQUESTED-TRANSPORT", UDP_PROTO), ("ADDITIONAL-ADDRESS-FAMILY", b"\x02\0\0\0"), ("EVEN-PORT", b"\x80")], 400)]:
        cc = client("bad")
        rr = cc.allocate(attrs=attrs, expect_ok=False)
        t.eq(rr.error(), code, "Allocate with %s gets %d" % (desc, code))
        cc.close()

    # ------------------------------------------------------------ permissions and channels
    peer = Peer()
    r = c.create_permission(peer.addr, expect_ok=False)
    t.ok(r.cls == SUCCESS, "CreatePermission for a loopback peer (allowed by turn.allow-peers)")
    r = c._peer_request(0x008, [], expect_ok=False)
    t.eq(r.error(), 400, "CreatePermission without XOR-PEER-ADDRESS gets 400")
    r = c.create_permission(("10.1.2.3", 5000), expect_ok=False)
    t.eq(r.error(), 403, "CreatePermission for 10.1.2.3 gets 403")
    t.ok("10.0.0.0/8" in d.log() and "403" in d.log(), "the 403 is logged with the rule that denied it")
    r = c.create_permission(peer.addr, ("10.1.2.3", 1), expect_ok=False)
    t.eq(r.error(), 403, "a request with one forbidden peer fails as a whole")
    r = c.create_permission(("::1", 5000), expect_ok=False)
    t.eq(r.error(), 443, "an IPv6 peer on an IPv4 allocation gets 443")

    for num, code in [(0x3FFF, 400), (0x8000, 400), (0xFFFF, 400)]:
        r = c.channel_bind(num, peer.addr, expect_ok=False)
        t.eq(r.error(), code, "ChannelBind 0x%04X gets %d" % (num, code))
    # RFC 5766's numbers (0x4000-0x7FFF, what coturn accepts) by default; their ChannelData
    # starts with 0x50-0x7F, told from STUN like 0x40-0x4F
    c57 = client("rfc5766-numbers")
    c57.allocate()
    p57 = Peer("127.0.0.3")
    for num, to in ((0x5000, ("127.0.0.3", 9)), (0x7FFF, p57.addr)):
        r = c57.channel_bind(num, to, expect_ok=False)
        t.ok(r.cls == SUCCESS, "ChannelBind 0x%04X (RFC 5766's range) succeeds by default" % num, r.error())
    c57.send_channel(0x7FFF, b"first-byte-0x7f")
    t.eq(p57.recv()[0], b"first-byte-0x7f", "ChannelData on channel 0x7FFF reaches the peer")
    p57.send(c57.relay, b"back-on-0x7fff")
    t.eq(c57.recv_data(), ("channel", 0x7FFF, b"back-on-0x7fff"), "and the peer's answer comes back on 0x7FFF")
    c57.close()
    p57.close()
    r = c.channel_bind(0x4000, peer.addr, expect_ok=False)
    t.ok(r.cls == SUCCESS, "ChannelBind 0x4000 to the peer")
    r = c.channel_bind(0x4000, peer.addr, expect_ok=False)
    t.ok(r.cls == SUCCESS, "refreshing the same binding succeeds")
    peer2 = Peer("127.0.0.2")  # permissions are per IP: another loopback address
    r = c.channel_bind(0x4000, peer2.addr, expect_ok=False)
    t.eq(r.error(), 400, "binding the number to another peer gets 400")
    r = c.channel_bind(0x4001, peer.addr, expect_ok=False)
    t.eq(r.error(), 400, "binding the peer to another number gets 400")
    r = c.channel_bind(0x4FFF, ("127.0.0.1", port), expect_ok=False)
    t.eq(r.error(), 403, "ChannelBind to meetlited's own listener gets 403")

    # ------------------------------------------------------------ data, both ways
    c.send_channel(0x4000, b"hello-peer")
    data, src = peer.recv()
    t.eq(data, b"hello-peer", "ChannelData reaches the peer")
    t.eq(src, c.relay, "the peer sees the relayed address")
    peer.send(c.relay, b"hello-client")
    got = c.recv_data()
    t.eq(got, ("channel", 0x4000, b"hello-client"), "the peer's answer comes back as ChannelData")
    c.send_indication(peer.addr, b"by-indication")
    data, _ = peer.recv()
    t.eq(data, b"by-indication", "a Send indication reaches the peer")
    # peer2 has no permission yet: its packets are dropped
    peer2.send(c.relay, b"uninvited")
    t.eq(c.recv_data(0.5), None, "a peer without permission is not relayed")
    c.create_permission(peer2.addr)
    peer2.send(c.relay, b"odd-size-12345")
    got = c.recv_data()
    t.eq(got, ("data", peer2.addr, b"odd-size-12345"), "a permitted peer without a channel arrives as a Data indication")
    c.send_indication(("127.0.0.1", 9), b"x")  # no permission for port 9? same IP: permitted, harmless
    c.send_channel(0x4555, b"unbound")
    t.eq(peer.recv(0.3)[0], None, "ChannelData on an unbound channel is dropped")

    # ------------------------------------------------------------ Refresh
    r = c.refresh(1200)
    t.eq(struct.unpack("!I", r.get("LIFETIME"))[0], 1200, "Refresh sets the requested lifetime")
    r = c.refresh(99999)
    t.eq(struct.unpack("!I", r.get("LIFETIME"))[0], 3600, "Refresh is capped at max-lifetime")
    other = client("someone-else")
    other.sock.close()
    other.sock = c.sock
    r = other.refresh(600, expect_ok=False)
    t.eq(r.error(), 441, "Refresh with another user's credentials gets 441")
    m = Msg(0x004, REQUEST).add("LIFETIME", struct.pack("!I", 0))
    r = c.transact(m)
    t.ok(r.cls == SUCCESS and struct.unpack("!I", r.get("LIFETIME"))[0] == 0, "Refresh with LIFETIME 0 deletes the allocation")
    deleted_raw = c.last_raw
    r = c.transact(Msg(0x004, REQUEST, tid=m.tid).add("LIFETIME", struct.pack("!I", 0)))
    t.ok(r is not None and c.last_raw == deleted_raw, "its retransmission gets the same answer")
    r = c.create_permission(peer.addr, expect_ok=False)
    t.eq(r.error(), 437, "CreatePermission after deletion gets 437")
    peer.send(c.relay, b"late")
    t.eq(c.recv_data(0.3), None, "the relay port no longer relays")
    c.close()

    # ------------------------------------------------------------ EVEN-PORT and reservations
    ce = client("even")
    r = ce.allocate(attrs=[("REQUESTED-TRANSPORT", UDP_PROTO), ("EVEN-PORT", b"\x80")], expect_ok=False)
    token = r.get("RESERVATION-TOKEN") if r.cls == SUCCESS else None
    t.ok(r.cls == SUCCESS and ce.relay[1] % 2 == 0 and token and len(token) == 8, "EVEN-PORT with R gets an even port and a RESERVATION-TOKEN")
    cr = client("odd")
    r = cr.allocate(attrs=[("REQUESTED-TRANSPORT", UDP_PROTO), ("RESERVATION-TOKEN", token or b"12345678")], expect_ok=False)
    t.ok(r.cls == SUCCESS and cr.relay[1] == ce.relay[1] + 1, "RESERVATION-TOKEN claims the next port", (ce.relay, getattr(cr, "relay", None)))
    cx = client("odd2")
    r = cx.allocate(attrs=[("REQUESTED-TRANSPORT", UDP_PROTO), ("RESERVATION-TOKEN", token or b"12345678")], expect_ok=False)
    t.eq(r.error(), 508, "a token already used gets 508")
    for x in (ce, cr, cx):
        x.close()
    # coturn's uclient -x: an IPv6 allocation reserves the next port; the companion claims it
    # with the token alone (no family attribute may go with it) and must get IPv6 again
    ce = client("even6", server=srv6)
    r = ce.allocate(attrs=[("REQUESTED-TRANSPORT", UDP_PROTO), ("REQUESTED-ADDRESS-FAMILY", b"\x02\0\0\0"),
                           ("EVEN-PORT", b"\x80")], expect_ok=False)
    token = r.get("RESERVATION-TOKEN") if r.cls == SUCCESS else None
    t.ok(r.cls == SUCCESS and ce.relay[0] == "::1" and ce.relay[1] % 2 == 0 and token,
         "IPv6 with EVEN-PORT R gets an even IPv6 port and a token", getattr(ce, "relay", None))
    cr = client("odd6", server=srv6)
    r = cr.allocate(attrs=[("REQUESTED-TRANSPORT", UDP_PROTO), ("RESERVATION-TOKEN", token or b"12345678")], expect_ok=False)
    t.ok(r.cls == SUCCESS and cr.relay == ("::1", ce.relay[1] + 1),
         "the token claims the next port, IPv6 like the reservation", (ce.relay, getattr(cr, "relays", None)))
    p6 = Peer("::1")
    if r.cls == SUCCESS:
        cr.create_permission(p6.addr)
        cr.send_indication(p6.addr, b"rtcp-over-v6")
        t.eq(p6.recv()[0], b"rtcp-over-v6", "the reserved IPv6 relay relays")
    else:
        t.ok(False, "the reserved IPv6 relay relays")
    p6.close()
    for x in (ce, cr):
        x.close()

    # ------------------------------------------------------------ IPv6 and dual allocations
    c6 = client("v6", server=srv6)
    r = c6.allocate(attrs=[("REQUESTED-TRANSPORT", UDP_PROTO), ("REQUESTED-ADDRESS-FAMILY", b"\x02\0\0\0")], expect_ok=False)
    t.ok(r.cls == SUCCESS and c6.relay[0] == "::1", "REQUESTED-ADDRESS-FAMILY IPv6 gets an IPv6 relay", getattr(c6, "relay", None))
    p6 = Peer("::1")
    c6.create_permission(p6.addr)
    c6.send_indication(p6.addr, b"over-v6")
    t.eq(p6.recv()[0], b"over-v6", "relaying to an IPv6 peer")
    c6.close()
    cd = client("dual")
    r = cd.allocate(attrs=[("REQUESTED-TRANSPORT", UDP_PROTO), ("ADDITIONAL-ADDRESS-FAMILY", b"\x02\0\0\0"),
                           ("EVEN-PORT", b"\x00")], expect_ok=False)
    fams = sorted(":" in a[0] for a in getattr(cd, "relays", []))
    t.ok(r.cls == SUCCESS and fams == [False, True], "ADDITIONAL-ADDRESS-FAMILY makes a dual allocation", getattr(cd, "relays", None))
    t.ok(all(a[1] % 2 == 0 for a in getattr(cd, "relays", [(0, 1)])) and r.get("RESERVATION-TOKEN") is None,
         "with EVEN-PORT (no R) both relays of the pair are even, and nothing is reserved", getattr(cd, "relays", None))
    cd.create_permission(p6.addr, peer.addr)
    cd.send_indication(p6.addr, b"dual-6")
    cd.send_indication(peer.addr, b"dual-4")
    t.ok(p6.recv()[0] == b"dual-6" and peer.recv()[0] == b"dual-4", "a dual allocation relays to both families")
    r = cd.refresh(0, attrs=[("REQUESTED-ADDRESS-FAMILY", b"\x02\0\0\0")], expect_ok=False)
    t.ok(r.cls == SUCCESS, "Refresh 0 of the IPv6 family keeps the IPv4 relay")
    cd.send_indication(peer.addr, b"still-4")
    t.eq(peer.recv()[0], b"still-4", "the IPv4 half still relays")
    r = cd.refresh(600, attrs=[("REQUESTED-ADDRESS-FAMILY", b"\x02\0\0\0")], expect_ok=False)
    t.eq(r.error(), 443, "Refresh of a family the allocation lacks gets 443")
    cd.close()
    p6.close()
    peer.close()
    peer2.close()
finally:
    rc, log = d.stop()
    t.ok(SECRET not in log and SECRET2 not in log and "wonderland-pw" not in log, "no secret or password in the log")
    t.ok(d.clean(), "meetlited stops cleanly", log[-3000:])
    d.close()

# a daemon with no IPv6 relay and an external address: IPv6 requests get 440, dual falls back
# with ADDRESS-ERROR-CODE, and the advertised relay address is the external one
port = free_port()
d = Daemon(["turn.listen=udp://127.0.0.1:%d" % port, "turn.auth-secret=%s" % SECRET, "net.workers=1",
            "turn.relay-address=127.0.0.1", "turn.external-address=203.0.113.7",
            "turn.rfc5766-channel-numbers=no"])
try:
    c = client("natted", server=("127.0.0.1", port))
    c.allocate()
    t.eq(c.relay[0], "203.0.113.7", "behind 1:1 NAT, XOR-RELAYED-ADDRESS carries turn.external-address")
    c.close()
    c = client("rfc8656-numbers", server=("127.0.0.1", port))
    c.allocate()
    t.eq(c.channel_bind(0x5000, ("127.0.0.1", 5000), expect_ok=False).error(), 400,
         "with turn.rfc5766-channel-numbers=no, ChannelBind 0x5000 gets 400")
    t.eq(c.channel_bind(0x4FFF, ("127.0.0.1", 5000), expect_ok=False).error(), 403,
         "and 0x4FFF passes the number check (403: loopback is denied here)")
    c.close()
    c = client("v4only", server=("127.0.0.1", port))
    r = c.allocate(attrs=[("REQUESTED-TRANSPORT", UDP_PROTO), ("REQUESTED-ADDRESS-FAMILY", b"\x02\0\0\0")], expect_ok=False)
    t.eq(r.error(), 440, "IPv6 requested where none is relayed gets 440")
    c.close()
    c = client("v4only2", server=("127.0.0.1", port))
    r = c.allocate(attrs=[("REQUESTED-TRANSPORT", UDP_PROTO), ("ADDITIONAL-ADDRESS-FAMILY", b"\x02\0\0\0")], expect_ok=False)
    aec = r.get("ADDRESS-ERROR-CODE") if r.cls == SUCCESS else None
    t.ok(r.cls == SUCCESS and aec is not None and aec[0] == 2 and aec[2] * 100 + aec[3] == 440,
         "a dual request without IPv6 gets IPv4 and ADDRESS-ERROR-CODE 440")
    c.close()
    # the default policy denies loopback (CVE-2018-4058) and its mapped form (CVE-2026-27624)
    c = client("policy", server=("127.0.0.1", port))
    c.allocate()
    for p in (("127.0.0.1", 5000), ("::ffff:127.0.0.1", 5000), ("0.0.0.0", 5000)):
        fam_ok = ":" not in p[0]
        r = c.create_permission(p, expect_ok=False)
        t.ok(r.cls == ERROR and r.error() in ((403,) if fam_ok else (403, 443)),
             "with no allow-peers, CreatePermission to %s is refused (%s)" % (p[0], r.error()))
    c.close()
finally:
    t.ok(d.clean(), "second daemon stops cleanly", d.log()[-3000:])
    d.close()

# two clients of one worker relaying to each other: delivered in process, yet with the same
# semantics as through the kernel (the receiver's permissions decide; the source is the
# sender's relay address)
port = free_port()
d = Daemon(["turn.listen=udp://127.0.0.1:%d" % port, "turn.auth-secret=%s" % SECRET, "net.workers=1",
            "turn.allow-peers=127.0.0.0/8"])
try:
    a, b = client("inproc-a", server=("127.0.0.1", port)), client("inproc-b", server=("127.0.0.1", port))
    a.allocate()
    b.allocate()
    a.create_permission(b.relay)
    a.channel_bind(0x4010, b.relay)
    a.send_channel(0x4010, b"before-permission")
    t.eq(b.recv_data(0.5), None, "in process: nothing reaches a client that has no permission for the sender")
    b.create_permission(a.relay)
    a.send_channel(0x4010, b"as-data")
    t.eq(b.recv_data(), ("data", a.relay, b"as-data"), "in process: a Data indication from the sender's relay address")
    b.channel_bind(0x4020, a.relay)
    a.send_indication(b.relay, b"as-channel")
    t.eq(b.recv_data(), ("channel", 0x4020, b"as-channel"), "in process: ChannelData once the receiver bound a channel")
    b.send_channel(0x4020, b"back")
    t.eq(a.recv_data(), ("channel", 0x4010, b"back"), "in process: and back")
    a.close()
    b.close()
finally:
    rc, log = d.stop()
    t.ok("relayed 4 packets to peers and 3 to clients" in log, "counted once each way",
         [ln for ln in log.splitlines() if "totals" in ln])
    t.ok(d.clean(), "third daemon stops cleanly", log[-3000:])
    d.close()

sys.exit(t.done())
