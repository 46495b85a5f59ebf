"""HTTPS on a shared:// listener by its ClientHello's ALPN (issue #14, the fast path): a hello
that offers http/1.1 (and not stun.turn) goes to the control plane's own TLS before any byte is
read; every other TLS connection keeps the path where the relay does TLS and the first
decrypted bytes decide. Which path served a connection is read from /metrics
(meetlite_shared_connections_total{kind="https_direct"|"https_relayed"|...}).

- ALPN http/1.1, and h2 + http/1.1 (a browser's offer), from Python ssl and curl: served, by
  the fast path, ALPN http/1.1 negotiated.
- ALPN h2 alone: served as HTTP/1.1 without ALPN by the relay's TLS (the control plane speaks
  no h2), not the fast path.
- ALPN stun.turn, http/1.1 + stun.turn, and no ALPN: TURN over TLS (Allocate) as before; no
  ALPN with HTTP: answered through the relayed path.
- A ClientHello sent one byte per TCP segment, and one cut into 1-byte TLS records: the fast
  path, and the handshake and request complete.
- Garbage after a TLS record header: closed at once. A truncated hello, and one trickled a
  byte at a time past the deadline: closed after net.shared-first-bytes-timeout, not before.
- wss:// signaling offering http/1.1: through the fast path, a chat crosses to a ws:// peer.
- The client's address on the fast path: the access log names 127.0.0.2.
- The daemon stops cleanly (no sanitizer report, no leak)."""

import asyncio
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
from mltest import Tap, free_port  # noqa: E402
from mlcontrol import Postgres, ControlDaemon, migrate  # noqa: E402
from mladmin import TOKEN, AdminApi, make_cert  # noqa: E402
from mlsignal import Person, Sig  # noqa: E402
from turnclient import TurnClient  # noqa: E402

FIRST_BYTES_S = 3
t = Tap()
tmp = mltest.scratch_dir("ml-alpn-")
cert, key = make_cert(tmp, "localhost")


def tls_ctx(alpn=None):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    if alpn:
        c.set_alpn_protocols(alpn)
    return c


def https_get(port, path, alpn, source=None, timeout=10):
    """One GET over TLS with the ALPN offer given: (status line, negotiated ALPN)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                 source_address=(source, 0) if source else None)
    ss = tls_ctx(alpn).wrap_socket(s, server_hostname="localhost")
    try:
        ss.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % path).encode())
        data = b""
        while True:
            chunk = ss.recv(65536)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0].decode(errors="replace"), ss.selected_alpn_protocol(), data
    finally:
        ss.close()


def shared_counts(admin):
    text = admin.metrics()
    out = {}
    for m in re.finditer(r'^meetlite_shared_connections_total\{kind="(\w+)"\} (\d+)', text, re.M):
        out[m.group(1)] = int(m.group(2))
    return out


def delta(admin, before):
    now = shared_counts(admin)
    return {k: now.get(k, 0) - before.get(k, 0) for k in now if now.get(k, 0) != before.get(k, 0)}


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


def records(hello, size):
    """The handshake message of hello's records, again in records of at most size bytes."""
    msg, off = b"", 0
    while off + 5 <= len(hello):
        n = int.from_bytes(hello[off + 3:off + 5], "big")
        msg += hello[off + 5:off + 5 + n]
        off += 5 + n
    return b"".join(b"\x16\x03\x01" + len(msg[i:i + size]).to_bytes(2, "big") + msg[i:i + size]
                    for i in range(0, len(msg), size))


def manual_https(port, alpn, send_hello, timeout=15):
    """TLS through ssl.MemoryBIO, the ClientHello given to send_hello(sock, hello_bytes) to put
    on the wire its own way; then a GET. Returns (status line, ALPN)."""
    ctx = tls_ctx(alpn)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        send_hello(s, out.read())
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                pending = out.read()
                if pending:
                    s.sendall(pending)
                data = s.recv(65536)
                if not data:
                    raise RuntimeError("closed during the handshake")
                inc.write(data)
        s.sendall(out.read())
        obj.write(b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        s.sendall(out.read())
        body = b""
        while b"\r\n" not in body and time.time() < deadline:
            try:
                body += obj.read(65536)
            except ssl.SSLWantReadError:
                data = s.recv(65536)
                if not data:
                    break
                inc.write(data)
        return body.split(b"\r\n", 1)[0].decode(errors="replace"), obj.selected_alpn_protocol()
    finally:
        s.close()


def a_hello(alpn):
    """A real ClientHello from Python's ssl module, as bytes."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = tls_ctx(alpn).wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


pg = Postgres()
d = None
try:
    pg.start()
    r = migrate(pg.url)
    if r.returncode != 0:
        t.bail("migrate: " + r.stderr)
    port, turn_port, admin_port = free_port(), free_port(), free_port()
    d = ControlDaemon(pg.url, http_port=port, turn_port=turn_port, extra=[
        "turn.listen=udp://127.0.0.1:%d, shared://127.0.0.1:%d" % (turn_port, port),
        "turn.tls-cert=" + cert, "turn.tls-key=" + key, "turn.allow-peers=127.0.0.0/8",
        "turn.relay-ports=46000-46999", "net.shared-first-bytes-timeout=%ds" % FIRST_BYTES_S,
        "net.workers=2", "admin.token=" + TOKEN, "admin.listen=127.0.0.1:%d" % admin_port])
    admin = AdminApi(admin_port)

    # ------------------------------------------------------------ HTTPS by ALPN
    for desc, alpn, want_alpn, want_kind in [
            ("ALPN http/1.1", ["http/1.1"], "http/1.1", "https_direct"),
            ("ALPN h2, http/1.1 (a browser's offer)", ["h2", "http/1.1"], "http/1.1", "https_direct"),
            ("ALPN h2 only", ["h2"], None, "https_relayed"),
            ("no ALPN", None, None, "https_relayed")]:
        before = shared_counts(admin)
        status, got, raw = https_get(port, "/api/v1/health", alpn)
        dl = delta(admin, before)
        t.ok(status.endswith("200 OK") and got == want_alpn and dl == {want_kind: 1},
             "HTTPS with %s: answered 200 (ALPN %s), served by %s" % (desc, got, want_kind),
             "%s %s %r" % (status, dl, raw[:300]))

    for desc, args, want in [("curl --http1.1", ["--http1.1"], "HTTP/1.1 200"),
                             ("curl (offers h2 and http/1.1)", [], "HTTP/1.1 200")]:
        before = shared_counts(admin)
        r = subprocess.run(["curl", "-sk", "-i", "-m", "10"] + args +
                           ["https://localhost:%d/api/v1/health" % port], capture_output=True, timeout=20)
        dl = delta(admin, before)
        head = r.stdout.split(b"\r\n", 1)[0].decode(errors="replace")
        t.ok(r.returncode == 0 and head.startswith(want) and dl == {"https_direct": 1},
             "%s: %s through the fast path" % (desc, head), "%r %s %r" % (r.returncode, dl, r.stderr[-300:]))

    # ------------------------------------------------------------ TURN keeps its path
    join = None
    host = Person(d.api, "host@alpn.test", "Host")
    m = d.api.meeting(host.token, title="ALPN")
    join = host.join_meeting(m["id"])
    user, pw = join["turn"]["username"], join["turn"]["password"]
    for desc, alpn, want_alpn in [("ALPN stun.turn", ["stun.turn"], "stun.turn"),
                                  ("ALPN http/1.1 and stun.turn", ["http/1.1", "stun.turn"], "stun.turn"),
                                  ("no ALPN", None, None)]:
        c = None
        before = shared_counts(admin)
        try:
            c = TurnClient(("127.0.0.1", port), transport="tls", tls_context=tls_ctx(alpn))
            c.login(user, pw)
            relayed = c.allocate().cls == 2 and c.relay
            got = c.sock.selected_alpn_protocol()
            dl = delta(admin, before)
            t.ok(bool(relayed) and got == want_alpn and dl == {"turn_tls": 1},
                 "TURN over TLS with %s: Allocate succeeds (ALPN %s), the relay's TLS" % (desc, got), repr(dl))
        except Exception as e:  # noqa: BLE001
            t.ok(False, "TURN over TLS with %s" % desc, repr(e))
        finally:
            if c:
                c.close()

    # ------------------------------------------------------------ hellos cut up
    def byte_per_segment(s, hello):
        for i in range(len(hello)):
            s.send(hello[i:i + 1])
            time.sleep(0.002)

    before = shared_counts(admin)
    try:
        status, got = manual_https(port, ["http/1.1"], byte_per_segment)
    except Exception as e:  # noqa: BLE001
        status, got = repr(e), None
    dl = delta(admin, before)
    t.ok(status.endswith("200 OK") and got == "http/1.1" and dl == {"https_direct": 1},
         "a ClientHello one byte per TCP segment: the fast path, answered (%s)" % status, repr(dl))

    before = shared_counts(admin)
    try:
        status, got = manual_https(port, ["h2", "http/1.1"], lambda s, h: s.sendall(records(h, 1)))
    except Exception as e:  # noqa: BLE001
        status, got = repr(e), None
    dl = delta(admin, before)
    t.ok(status.endswith("200 OK") and got == "http/1.1" and dl == {"https_direct": 1},
         "a ClientHello in 1-byte TLS records: the fast path, answered (%s)" % status, repr(dl))

    # ------------------------------------------------------------ bad, short and slow hellos
    hello = a_hello(["http/1.1"])
    before = shared_counts(admin)
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"\x16\x03\x01\x00\x40" + b"\xee" * 64)
    w = closed_within(s, FIRST_BYTES_S + 3)
    s.close()
    t.ok(w is not None and w < 1.5, "garbage after a TLS record header: closed at once (%s s)" % w)

    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(hello[:len(hello) // 2])
    w = closed_within(s, FIRST_BYTES_S + 4)
    s.close()
    t.ok(w is not None and FIRST_BYTES_S - 0.5 <= w <= FIRST_BYTES_S + 3,
         "a truncated ClientHello: closed after net.shared-first-bytes-timeout (%s s)" % w)

    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start, w = time.time(), None
    for i in range(len(hello) - 1):  # never the last byte
        try:
            s.send(hello[i:i + 1])
        except OSError:
            w = time.time() - start
            break
        c = closed_within(s, 0.3)
        if c is not None:
            w = time.time() - start
            break
        if time.time() - start > FIRST_BYTES_S + 4:
            break
    s.close()
    t.ok(w is not None and FIRST_BYTES_S - 0.5 <= w <= FIRST_BYTES_S + 3,
         "a ClientHello trickled a byte at a time: closed at the deadline all the same (%s s)" % w)
    dl = delta(admin, before)
    t.ok(not dl.get("https_direct") and dl.get("refused", 0) >= 2,
         "none of them reached the control plane; the two slow ones counted as refused", repr(dl))
    r = d.api.get("/api/v1/health")
    t.ok(r.status == 200, "the port still serves after them", repr(r))

    # ------------------------------------------------------------ wss:// on the fast path
    guest = Person(d.api, "guest@alpn.test", "Guest")
    guest.join_meeting(m["id"])

    async def ws_sessions():
        a = await Sig.open(port, token=host.sig_token)
        b = await Sig.open(port, token=guest.sig_token, tls=True, alpn=["http/1.1"])
        await a.send(type="chat", payload={"text": "through the fast path"})
        got = await b.expect("chat", timeout=5)
        await b.send(type="chat", payload={"text": "and back"})
        back = {}
        for _ in range(3):  # the sender may hear its own chat first
            back = await a.expect("chat", timeout=5)
            if "and back" in json.dumps(back):
                break
        await a.close()
        await b.close()
        return got, back

    before = shared_counts(admin)
    try:
        got, back = asyncio.run(ws_sessions())
        dl = delta(admin, before)
        t.ok("through the fast path" in json.dumps(got) and "and back" in json.dumps(back) and
             dl.get("https_direct") == 1 and not dl.get("https_relayed"),
             "wss:// offering http/1.1: signaling through the fast path, chats cross both ways", repr(dl))
    except Exception as e:  # noqa: BLE001
        t.ok(False, "wss:// signaling through the fast path", repr(e))
    else:
        if not ("through the fast path" in json.dumps(got) and "and back" in json.dumps(back)):
            t.diag("got %r back %r" % (got, back))

    # ------------------------------------------------------------ the client's address
    status, got, _ = https_get(port, "/api/v1/health?from=alpn", ["http/1.1"], source="127.0.0.2")
    time.sleep(0.3)
    lines = [ln for ln in d.log().splitlines() if "/api/v1/health" in ln and "peer=" in ln]
    peer = re.search(r"peer=(\S+)", lines[-1]).group(1) if lines else None
    t.ok(status.endswith("200 OK") and peer == "127.0.0.2",
         "the fast path: the access log names the client's real address (%s)" % peer)

    rc, text = d.stop()
    t.ok(d.clean(), "the daemon stops cleanly", text[-3000:])
except Exception as e:  # noqa: BLE001
    t.ok(False, "the test ran to its end", repr(e) + ("\n" + d.log()[-4000:] if d else ""))
finally:
    if d:
        d.close()
    pg.close()
t.done()
