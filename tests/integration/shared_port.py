"""One port for the meeting page, the API, signaling and TURN (issue #14, item 1): a shared://
listener in turn.listen whose address is also control.listen.

- Plain TCP on the shared port: the page (GET /), REST (signup, a meeting, a join), a
  WebSocket signaling session, TURN over TCP (an Allocate with the join's credential).
- TLS on the same port, one certificate: HTTPS with ALPN http/1.1 and without ALPN, REST, wss://
  signaling, TURN over TLS with ALPN stun.turn and without ALPN (Python ssl and STUN), and
  coturn's turnutils_uclient -S relaying client to client through it.
- The join's iceServers: stun:, turn: udp (3478 before 443), turn: tcp, turns:, in that order.
- The client's real address reaches the control plane: requests from 127.0.0.2, plain and TLS
  (whose bytes reach lws through a socketpair), are logged with peer=127.0.0.2.
- Garbage first bytes are closed at once; nothing at all (slowloris), or a ClientHello that
  stops half way, is closed after net.shared-first-bytes-timeout.
- --check-config catches the listener conflicts start would hit, and accepts the shared form.
- Two headless Chromium participants call each other relay-only through the shared port,
  over turns: (TLS) and over turn:?transport=tcp: the selected pair is a relay candidate over
  tls / tcp on both sides, and both decode the other's video (tests/browser/relay_call.mjs).
- The daemon stops cleanly (no sanitizer report)."""

import asyncio
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mltest  # noqa: E402
from mltest import MEETLITED, Tap, free_port  # noqa: E402
from mlcontrol import TURN_SECRET, Api, ControlDaemon, Postgres, Resp, migrate  # noqa: E402
from mlsignal import Person, Sig  # noqa: E402
from turnclient import TurnClient  # noqa: E402
from mladmin import make_cert  # noqa: E402
from mlbrowser import CHROMIUM, loopback_only, node_dir, output_dir, spki_pin  # noqa: E402

FIRST_BYTES_S = 2
t = Tap()
tmp = mltest.scratch_dir("ml-shared-")
cert, key = make_cert(tmp, "localhost")
spki = spki_pin(cert)


def tls_ctx(alpn=None):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    if alpn:
        c.set_alpn_protocols(alpn)
    return c


class TlsApi(Api):
    """The same JSON client over TLS, with the ALPN offer given (None: no ALPN at all)."""

    def __init__(self, port, alpn, source=None):
        super().__init__(port)
        self.alpn, self.source = alpn, source

    def call(self, method, path, body=None, token=None, headers=None, raw=None, timeout=30):
        h = dict(headers or {})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if body is not None and raw is None:
            h["Content-Type"] = "application/json"
        if token:
            h["Authorization"] = "Bearer " + token
        ctx = tls_ctx(self.alpn)
        c = http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=ctx,
                                        source_address=(self.source, 0) if self.source else None)
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            resp = Resp(r.status, r.getheaders(), r.read())
            resp.alpn = c.sock.selected_alpn_protocol() if c.sock else None
            return resp
        finally:
            c.close()


def closed_within(sock, seconds):
    """Seconds until the server closed sock (EOF or reset), or None when it stayed open."""
    start = time.time()
    sock.settimeout(0.2)
    while time.time() - start < seconds:
        try:
            if sock.recv(4096) == b"":
                return time.time() - start
        except socket.timeout:
            continue
        except OSError:
            return time.time() - start
    return None


def check_config(sets):
    # --check-config applies start's rules: a control plane needs its database and secrets, a
    # wildcard relay listener a relay address
    base = ["database.url=postgresql:///none", "turn.relay-address=127.0.0.1,::1",
            "turn.auth-secret=" + TURN_SECRET, "auth.jwt-secret=" + "j" * 40]
    args = [MEETLITED, "--check-config"]
    for s in base + list(sets):
        args += ["--set", s]
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


pg = Postgres()
d = None
try:
    pg.start()
    url = pg.url
    r = migrate(url)
    if r.returncode != 0:
        t.bail("migrate: " + r.stderr)
    port, turn_port, udp443 = free_port(), free_port(), free_port()
    d = ControlDaemon(url, http_port=port, turn_port=turn_port, extra=[
        "turn.listen=udp://127.0.0.1:%d, tcp://127.0.0.1:%d, udp://127.0.0.1:%d, shared://127.0.0.1:%d"
        % (turn_port, turn_port, udp443, port),
        "turn.tls-cert=" + cert, "turn.tls-key=" + key, "turn.allow-peers=127.0.0.0/8",
        "turn.relay-ports=45000-45999", "net.shared-first-bytes-timeout=%ds" % FIRST_BYTES_S,
        "net.workers=2"])
    t.ok("control plane served on the shared listener" in d.log(), "the control plane binds no port of its own")
    plain = d.api
    tls_http = TlsApi(port, ["http/1.1"])
    tls_none = TlsApi(port, None)

    # ------------------------------------------------------------ HTTP, plain and TLS
    r = plain.get("/")
    t.ok(r.status == 200 and b"<html" in r.raw.lower(), "plain: GET / serves the meeting page", repr(r))
    r = tls_http.get("/")
    t.ok(r.status == 200 and b"<html" in r.raw.lower() and r.alpn == "http/1.1",
         "TLS, ALPN http/1.1: GET / serves the meeting page (ALPN %s)" % r.alpn, repr(r))
    r = tls_none.get("/api/v1/health")
    t.ok(r.status == 200 and r.alpn is None, "TLS without ALPN: the first decrypted bytes say HTTP", repr(r))

    host = Person(plain, "host@shared.test", "Host")
    m = plain.meeting(host.token, title="Shared port")
    join = host.join_meeting(m["id"])
    t.ok(join.get("turn", {}).get("username"), "plain: REST signup, create, join")
    guest = Person(tls_http, "guest@shared.test", "Guest")
    gj = guest.join_meeting(m["id"])
    t.ok(gj.get("turn", {}).get("username"), "TLS: REST signup and join")

    uris = [u for s in join["iceServers"] for u in (s["urls"] if isinstance(s["urls"], list) else [s["urls"]])]
    want = ["stun:127.0.0.1:%d" % turn_port,
            "turn:127.0.0.1:%d?transport=udp" % turn_port,
            "turn:127.0.0.1:%d?transport=udp" % udp443,
            "turn:127.0.0.1:%d?transport=tcp" % turn_port,
            "turn:127.0.0.1:%d?transport=tcp" % port,
            "turns:127.0.0.1:%d?transport=tcp" % port]
    t.eq(uris, want, "iceServers: stun:, turn: udp (both ports), turn: tcp, turns: on the shared port")

    # ------------------------------------------------------------ WebSocket signaling
    async def ws_sessions():
        a = await Sig.open(port, token=host.sig_token)
        b = await Sig.open(port, token=guest.sig_token, tls=True)
        await a.send(type="chat", payload={"text": "over one port"})
        got = await b.expect("chat", timeout=5)
        await a.close()
        await b.close()
        return got

    try:
        got = asyncio.run(ws_sessions())
        t.ok("over one port" in json.dumps(got), "ws:// and wss:// signaling on the shared port: a chat crosses")
    except Exception as e:  # noqa: BLE001
        t.ok(False, "ws:// and wss:// signaling on the shared port", repr(e))

    # ------------------------------------------------------------ TURN over TCP and TLS
    user, pw = join["turn"]["username"], join["turn"]["password"]
    for desc, transport, ctx in [("plain TCP", "tcp", None),
                                 ("TLS without ALPN", "tls", tls_ctx()),
                                 ("TLS with ALPN stun.turn", "tls", tls_ctx(["stun.turn"]))]:
        c = None
        try:
            c = TurnClient(("127.0.0.1", port), transport=transport, tls_context=ctx)
            c.login(user, pw)
            relayed = c.allocate().cls == 2 and c.relay
            alpn = c.sock.selected_alpn_protocol() if transport == "tls" else None
            ok = bool(relayed) and (alpn == "stun.turn" if "stun.turn" in desc else alpn is None)
            t.ok(ok, "TURN over %s on the shared port: Allocate succeeds (ALPN %s)" % (desc, alpn))
        except Exception as e:  # noqa: BLE001
            t.ok(False, "TURN over %s on the shared port" % desc, repr(e))
        finally:
            if c:
                c.close()

    n, m_ = 30, 2
    proc = subprocess.run(["timeout", "60", "turnutils_uclient", "-n", str(n), "-m", str(m_), "-l", "171",
                           "-z", "5", "-u", "uc", "-W", TURN_SECRET, "-p", str(port), "-t", "-S", "-y",
                           "127.0.0.1"], capture_output=True, text=True)
    totals = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$", proc.stdout, re.M)
    sent, recv = (int(totals[-1][0]), int(totals[-1][1])) if totals else (0, -1)
    t.ok(proc.returncode == 0 and sent >= n * m_ and recv == sent,
         "turnutils_uclient -S through the shared port: %d sent, %d received" % (sent, recv),
         proc.stdout[-2000:])

    # ------------------------------------------------------------ the client's real address
    src_plain = Api(port)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=("127.0.0.2", 0))
    conn.request("GET", "/api/v1/health?from=plain")
    conn.getresponse().read()
    conn.close()
    TlsApi(port, ["http/1.1"], source="127.0.0.2").get("/api/v1/health?from=tls")
    TlsApi(port, None, source="127.0.0.2").get("/api/v1/health?from=tls-noalpn")
    time.sleep(0.3)
    lines = [ln for ln in d.log().splitlines() if "/api/v1/health" in ln and "peer=" in ln]
    peers = [re.search(r"peer=(\S+)", ln).group(1) for ln in lines[-3:]]
    t.eq(peers, ["127.0.0.2"] * 3, "access log: the real client address, plain, TLS with and without ALPN")

    # ------------------------------------------------------------ bad and silent clients
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"\xff\xfe\x00\x01garbage that is no protocol\r\n")
    w = closed_within(s, 3)
    t.ok(w is not None and w < 1.5, "garbage first bytes: closed at once (%s s)" % w)
    s.close()
    s = socket.create_connection(("127.0.0.1", port))
    w = closed_within(s, FIRST_BYTES_S + 4)
    t.ok(w is not None and FIRST_BYTES_S - 0.5 <= w <= FIRST_BYTES_S + 3,
         "nothing sent (slowloris): closed after net.shared-first-bytes-timeout (%s s)" % w)
    s.close()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello that stops
    w = closed_within(s, FIRST_BYTES_S + 4)
    t.ok(w is not None and FIRST_BYTES_S - 0.5 <= w <= FIRST_BYTES_S + 3,
         "half a ClientHello: closed after the deadline (%s s)" % w)
    s.close()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GE")  # an HTTP method that never ends
    w = closed_within(s, FIRST_BYTES_S + 4)
    t.ok(w is not None and FIRST_BYTES_S - 0.5 <= w <= FIRST_BYTES_S + 3,
         "two bytes of a method: closed after the deadline (%s s)" % w)
    s.close()
    r = plain.get("/api/v1/health")
    t.ok(r.status == 200, "the port still serves after them", repr(r))

    # ------------------------------------------------------------ --check-config
    p = free_port()
    tls = ["turn.tls-cert=" + cert, "turn.tls-key=" + key]
    cases = [
        ("control.listen and tls:// on one address and port",
         ["control.listen=127.0.0.1:%d" % p, "turn.listen=tls://127.0.0.1:%d" % p] + tls, False),
        ("a wildcard tcp:// over a specific control.listen",
         ["control.listen=127.0.0.1:%d" % p, "turn.listen=tcp://0.0.0.0:%d" % p], False),
        ("two udp:// listeners on one port",
         ["turn.listen=udp://127.0.0.1:%d, udp://0.0.0.0:%d" % (p, p)], False),
        ("admin.listen on the relay's TCP port",
         ["turn.listen=tcp://127.0.0.1:%d" % p, "admin.token=" + "a" * 40, "admin.listen=127.0.0.1:%d" % p],
         False),
        ("shared:// with control.tls-cert",
         ["control.listen=127.0.0.1:%d" % p, "turn.listen=shared://127.0.0.1:%d" % p,
          "control.tls-cert=" + cert, "control.tls-key=" + key] + tls, False),
        ("shared:// without a certificate", ["turn.listen=shared://127.0.0.1:%d" % p], False),
        ("shared:// with control.listen at its address",
         ["control.listen=127.0.0.1:%d" % p, "turn.listen=udp://127.0.0.1:%d, shared://127.0.0.1:%d" % (p, p)]
         + tls, True),
        ("udp:// and tcp:// on one port", ["turn.listen=udp://127.0.0.1:%d, tcp://127.0.0.1:%d" % (p, p)], True),
        ("IPv4 and IPv6 wildcards of the relay on one port (IPV6_V6ONLY)",
         ["turn.listen=tcp://0.0.0.0:%d, tcp://[::]:%d" % (p, p)], True),
        ("control.listen on [::] (dual-stack) over the relay's IPv4 TCP port",
         ["control.listen=[::]:%d" % p, "turn.listen=tcp://127.0.0.1:%d" % p], False),
    ]
    for desc, sets, ok in cases:
        r = check_config(sets)
        good = (r.returncode == 0) if ok else (r.returncode != 0 and ("collide" in r.stderr or
                                                                      "shared://" in r.stderr))
        t.ok(good, "--check-config %s: %s" % ("accepts" if ok else "refuses", desc), r.stdout + r.stderr)

    # ------------------------------------------------------------ Chromium through the port
    def ice(urls, ident):
        user = "%d:%s" % (int(time.time()) + 600, ident)
        pw = base64.b64encode(hmac.new(TURN_SECRET.encode(), user.encode(), hashlib.sha1).digest()).decode()
        return [{"urls": urls, "username": user, "credential": pw}]

    scenarios = [
        {"name": "shared-tls", "iceServers": ice(["turns:127.0.0.1:%d?transport=tcp" % port], "b-tls"),
         "want": "tls"},
        {"name": "shared-tcp", "iceServers": ice(["turn:127.0.0.1:%d?transport=tcp" % port], "b-tcp"),
         "want": "tcp"},
    ]
    arg = json.dumps({"scenarios": [{k: v for k, v in sc.items() if k != "want"} for sc in scenarios],
                      "spki": spki, "outdir": output_dir("shared_port"), "browser": "chromium",
                      "executable": CHROMIUM, "loopbackOnly": loopback_only()})
    r = subprocess.run(["timeout", "240", "node", "relay_call.mjs", arg], cwd=node_dir(), capture_output=True,
                       text=True)
    results = {}
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            x = json.loads(line)
            results[x["name"]] = x
    t.ok(r.returncode == 0 and len(results) == 2, "the Chromium run finished (%d scenarios)" % len(results),
         r.stdout[-2000:] + r.stderr[-2000:])
    for sc in scenarios:
        x = results.get(sc["name"], {})
        a, b = x.get("a") or {}, x.get("b") or {}
        t.ok(x.get("connected") == [True, True] and
             a.get("localType") == "relay" == b.get("localType") and
             a.get("relayProtocol") == sc["want"] == b.get("relayProtocol") and
             a.get("framesDecoded", 0) > 10 and b.get("framesDecoded", 0) > 10,
             "Chromium relay-only call through the shared port over %s: relay candidates on both sides, "
             "video decoded (%s and %s frames)" % (sc["want"], a.get("framesDecoded"), b.get("framesDecoded")),
             json.dumps(x)[:1500])

    rc, text = d.stop()
    t.ok(d.clean(), "the daemon stops cleanly", text[-3000:])
except Exception as e:  # noqa: BLE001
    t.ok(False, "the test ran to its end", repr(e) + ("\n" + d.log()[-4000:] if d else ""))
finally:
    if d:
        d.close()
    pg.close()
t.done()
