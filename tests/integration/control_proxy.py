"""The control plane behind a trusted proxy (control.trusted-proxies, issue #13 item 7): from the
proxy (127.0.0.1 here) the client's address is the last hop of X-Forwarded-For that is not a
trusted proxy, and it is the address of the access log, the per-address login limit and the
per-account-and-address one: two students behind the proxy are limited separately, and a class
behind it is not locked out by one student; a signaling WebSocket is logged with the student's
address, and a TURN allocation through a TCP proxy's PROXY header (net.proxy-protocol-from)
has the student's address in its usage record. From an untrusted peer (127.0.0.2) the header is
ignored; a malformed header leaves the peer's address and never fails the request. A second
daemon reads RFC 7239 Forwarded (control.forwarded-header=forwarded) instead, and then ignores
X-Forwarded-For."""

import os
import re
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Tap  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, migrate  # noqa: E402
from mlrelay import usage_rows, wait_until  # noqa: E402
from turnclient import TurnClient  # noqa: E402

t = Tap()
pg = Postgres()
d = None
LOGIN = "/api/v1/auth/login"


def log_peers(daemon, rid):
    """The peers the access log recorded for the request id rid (written once the answer left:
    waited for)."""
    deadline = time.time() + 3
    while True:
        found = re.findall(r"rid=%s peer=(\S+)" % re.escape(rid), daemon.log())
        if found or time.time() > deadline:
            return found
        time.sleep(0.02)


try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "the schema is applied", r.stdout + r.stderr)
    d = ControlDaemon(pg.url, ["control.trusted-proxies=127.0.0.1/32, 10.0.0.0/8",
                               "auth.login-max-failures=2", "auth.login-max-failures-per-address=3",
                               "net.proxy-protocol-from=127.0.0.1/32", "usage.flush-interval-ms=100"])
    proxy = d.api                 # 127.0.0.1: trusted
    outsider = d.api.frm("127.0.0.2")  # not trusted

    def via(xff, body, rid, api=None, header="X-Forwarded-For"):
        h = {"X-Request-Id": rid}
        if xff is not None:
            h[header] = xff
        return (api or proxy).post(LOGIN, body, headers=h)

    for i in range(30):
        proxy.user("student%d@example.org" % i, "correct horse")

    # ------------------------------------------------------------ the logged address
    r = via("198.51.100.1", {"email": "student0@example.org", "password": "correct horse"}, "xff-1")
    t.ok(r.status == 200, "login through the proxy: 200", r)
    t.eq(log_peers(d, "xff-1"), ["198.51.100.1"], "the access log has the student's address, not the proxy's")
    via("203.0.113.66, 198.51.100.2", {"email": "student0@example.org", "password": "correct horse"}, "xff-2")
    t.eq(log_peers(d, "xff-2"), ["198.51.100.2"], "a client-supplied hop left of the proxy's is not believed (last untrusted hop)")
    via("198.51.100.3, 10.1.2.3", {"email": "student0@example.org", "password": "correct horse"}, "xff-3")
    t.eq(log_peers(d, "xff-3"), ["198.51.100.3"], "trusted hops (10.0.0.0/8, a second proxy) are walked past")
    via("[2001:db8::5]:443", {"email": "student0@example.org", "password": "correct horse"}, "xff-4")
    t.eq(log_peers(d, "xff-4"), ["2001:db8::5"], "a bracketed IPv6 hop with a port")
    via("::ffff:198.51.100.4", {"email": "student0@example.org", "password": "correct horse"}, "xff-5")
    t.eq(log_peers(d, "xff-5"), ["198.51.100.4"], "an IPv4-mapped hop is IPv4")
    for i, bad in enumerate(["not-an-address", "198.51.100.1, , garbage", "999.1.1.1", "198.51.100.1:99999",
                             "\"198.51.100.1\"", "x" * 3000]):
        r = via(bad, {"email": "student0@example.org", "password": "correct horse"}, "bad-%d" % i)
        t.ok(r.status == 200 and log_peers(d, "bad-%d" % i) == ["127.0.0.1"],
             "malformed X-Forwarded-For %r: 200, the proxy's own address" % bad[:30], (r, log_peers(d, "bad-%d" % i)))

    # ------------------------------------------------------------ limits per student
    for i in range(2):
        r = via("198.51.100.10", {"email": "student1@example.org", "password": "wrong %d" % i}, "s10-%d" % i)
    r = via("198.51.100.10", {"email": "student1@example.org", "password": "correct horse"}, "s10-x")
    t.ok(r.status == 429 and int(r.headers.get("retry-after", "0")) > 0,
         "student A behind the proxy: refused (429, Retry-After) after its own failures on the account", r)
    r = via("198.51.100.11", {"email": "student1@example.org", "password": "correct horse"}, "s11")
    t.ok(r.status == 200, "student B behind the same proxy, same account: not refused (200)", r)
    r = via("198.51.100.10", {"email": "student2@example.org", "password": "wrong"}, "s10-y")
    t.ok(r.status == 401, "student A, a third failure (another account): 401", r)
    r = via("198.51.100.10", {"email": "student3@example.org", "password": "correct horse"}, "s10-z")
    t.ok(r.status == 429, "student A: the per-address limit (3) now refuses it on any account", r)
    ok = 0
    for i in range(4, 30):
        r = via("198.51.100.%d" % (100 + i), {"email": "student%d@example.org" % i, "password": "correct horse"}, "cls-%d" % i)
        ok += r.status == 200
    t.eq(ok, 26, "the rest of the class behind the proxy signs in: one student does not lock it out")

    # ------------------------------------------------------------ a WebSocket through the proxy
    import base64
    ws = socket.create_connection(("127.0.0.1", d.http_port), timeout=3)
    ws.sendall(("GET /api/v1/signaling?token=not.a.token HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n"
                "X-Forwarded-For: 198.51.100.42\r\n\r\n" % base64.b64encode(os.urandom(16)).decode()).encode())
    try:
        ws.recv(4096)
    except OSError:
        pass
    ws.close()
    deadline = time.time() + 3
    while "refused (peer=198.51.100.42)" not in d.log() and time.time() < deadline:
        time.sleep(0.02)
    t.ok("refused (peer=198.51.100.42)" in d.log(),
         "a signaling WebSocket through the proxy is logged with the student's address", d.log()[-1500:])

    # ------------------------------------------------------------ usage records through a TCP proxy
    host_tok, _ = proxy.user("host@example.org", "correct horse")
    m = proxy.meeting(host_tok, "Through the proxy")
    j = proxy.post("/api/v1/meetings/%s/join" % m["id"], None, host_tok).json
    c = TurnClient(("127.0.0.1", d.turn_port), transport="tcp", timeout=2.0)
    hdr = b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + socket.inet_aton("203.0.113.50") + \
        socket.inet_aton("127.0.0.1") + struct.pack("!HH", 40123, d.turn_port)
    c.sock.sendall(hdr)  # what nginx's stream module (proxy_protocol on) would put first
    c.login(j["turn"]["username"], j["turn"]["password"])
    c.allocate()
    t.eq(c.mapped, ("203.0.113.50", 40123), "Allocate through a PROXY v2 header: XOR-MAPPED-ADDRESS is the student's")
    c.close()
    where = "cred_id = '%s'" % j["turn"]["username"].split(":", 1)[1]
    rows = wait_until(lambda: usage_rows(pg, where), 5)
    t.eq([(r["client_ip"], r["client_port"], r["transport"]) for r in rows], [("203.0.113.50", "40123", "tcp")],
         "the allocation's usage record has the student's address and port, not the proxy's")

    # ------------------------------------------------------------ an untrusted peer
    for i in range(3):
        r = via("198.51.100.%d" % (200 + i), {"email": "student%d@example.org" % (5 + i), "password": "wrong"},
                "out-%d" % i, api=outsider)
    t.eq(log_peers(d, "out-0"), ["127.0.0.2"], "untrusted peer: X-Forwarded-For ignored in the log")
    r = via("198.51.100.250", {"email": "student9@example.org", "password": "correct horse"}, "out-x", api=outsider)
    t.ok(r.status == 429, "untrusted peer: its failures count against its own address whatever header it sends", r)

    code, log = d.stop()
    d = None
    t.ok(code == 0, "meetlited stops cleanly", log[-2000:])

    # ------------------------------------------------------------ RFC 7239 Forwarded
    d = ControlDaemon(pg.url, ["control.trusted-proxies=127.0.0.1/32", "control.forwarded-header=forwarded"])
    proxy = d.api
    cases = [("for=192.0.2.60;proto=https;by=203.0.113.43", "192.0.2.60", "a plain for="),
             ("for=\"[2001:db8:cafe::17]:4711\"", "2001:db8:cafe::17", "a quoted IPv6 with a port"),
             ("For=\"192.0.2.1:8080\", for=192.0.2.61", "192.0.2.61", "two elements: the last untrusted"),
             ("for=192.0.2.62, for=127.0.0.1", "192.0.2.62", "a trusted hop walked past"),
             ("for=_hidden", "127.0.0.1", "an obfuscated node: the peer"),
             ("for=unknown", "127.0.0.1", "unknown: the peer"),
             ("proto=https", "127.0.0.1", "an element without for=: the peer"),
             ("for=\"[2001:db8::1", "127.0.0.1", "an open quote: the peer"),
             ("for=192.0.2.1;for=192.0.2.2", "127.0.0.1", "two for= in one element: the peer")]
    for i, (value, want, what) in enumerate(cases):
        r = via(value, {"email": "student0@example.org", "password": "correct horse"}, "fwd-%d" % i, header="Forwarded")
        t.ok(r.status == 200 and log_peers(d, "fwd-%d" % i) == [want],
             "Forwarded: %s -> %s" % (what, want), (r, value, log_peers(d, "fwd-%d" % i)))
    via("198.51.100.77", {"email": "student0@example.org", "password": "correct horse"}, "fwd-xff")
    t.eq(log_peers(d, "fwd-xff"), ["127.0.0.1"], "with forwarded-header=forwarded, X-Forwarded-For is not read")
    code, log = d.stop()
    d = None
    t.ok(code == 0, "meetlited stops cleanly", log[-2000:])
finally:
    if d:
        d.stop()
    pg.close()
t.done()
