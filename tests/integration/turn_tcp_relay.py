"""TCP allocations (RFC 6062) on meetlited: coturn's turnutils_uclient -T (clients' relays
connecting to each other through the server) over TCP and TLS, several runs each, and with IPv6
relayed addresses, every one with 0 messages lost and every connection bound; and our own client for what uclient does not reach:
the answers to bad requests (400, 403, 437, 441, 442, 446, 447, 508), a Connect's connection made
from the relayed address, an incoming peer connection announced by ConnectionAttempt (and one
without a permission closed unannounced), data that the peer sent before the ConnectionBind,
megabytes both ways intact, a reader that stops (the writer is held back, nothing is lost), the
bytes in the allocation's usage, a ConnectionBind that never comes (closed after 30 s), and an
allocation whose control connection closes (its connections close with it)."""

import hashlib
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mltest  # noqa: E402
from mltest import (ALLOCATE, ERROR, INDICATION, SUCCESS, Daemon, Msg, Tap, free_port,  # noqa: E402
                    rest_credential)
from mladmin import TOKEN, AdminApi, tcp_port  # noqa: E402
from turnclient import TurnClient  # noqa: E402

CONNECT, CONNECTION_BIND, CONNECTION_ATTEMPT = 0x00A, 0x00B, 0x00C
TCP = b"\x06\0\0\0"
SECRET = "tcprelay-secret-0123456789"
t = Tap()
tmp = mltest.scratch_dir("ml-tcprelay-")
cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "c.key")
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=meetlite-tcprelay",
                "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

conf = os.path.join(tmp, "meetlite.conf")


def write_conf(tcp_relay="yes", max_conns=32):
    with open(conf, "w") as f:
        f.write("[turn]\ntcp-relay = %s\ntcp-relay-max-connections = %d\ntcp-relay-buffer = 64k\n"
                % (tcp_relay, max_conns))


write_conf()
port, tport, admin_port = free_port(), free_port(), tcp_port()
port6, tport6 = free_port(socket.AF_INET6, "::1"), free_port(socket.AF_INET6, "::1")
d = Daemon(["turn.listen=udp://127.0.0.1:%d, tcp://127.0.0.1:%d, tls://127.0.0.1:%d, tcp://[::1]:%d, "
            "tls://[::1]:%d" % (port, port, tport, port6, tport6),
            "turn.tls-cert=" + cert, "turn.tls-key=" + key, "turn.auth-secret=" + SECRET,
            "turn.realm=tcprelay.test", "turn.allow-peers=127.0.0.0/8, ::1", "turn.relay-ports=48000-48999",
            "turn.max-allocations-per-user=100", "net.workers=2",
            "admin.listen=127.0.0.1:%d" % admin_port, "admin.token=" + TOKEN],
           config=conf, env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=8"})
SRV = {"tcp": ("127.0.0.1", port), "tls": ("127.0.0.1", tport), "udp": ("127.0.0.1", port)}


def reload(**kw):
    n = d.log().count("configuration reloaded")
    write_conf(**kw)
    d.signal(signal.SIGHUP)
    deadline = time.time() + 10
    while time.time() < deadline and d.log().count("configuration reloaded") == n:
        time.sleep(0.05)


def control(transport="tcp", user="alice", attrs=None):
    """A control connection with a TCP allocation (or the answer, with expect_ok=False)."""
    c = TurnClient(SRV[transport], transport, tls_context=ctx, timeout=3.0)
    c.login(*rest_credential(SECRET, user))
    c.allocate(attrs=[("REQUESTED-TRANSPORT", TCP)] + list(attrs or []))
    return c


def connect(c, peer, expect_ok=True):
    return c._peer_request(CONNECT, [("XOR-PEER-ADDRESS", None, peer)], expect_ok)


def cid_of(m):
    return struct.unpack("!I", m.get("CONNECTION-ID"))[0]


class Data:
    """A client data connection: a new connection that binds a CONNECTION-ID, signed with what the
    control connection holds (its nonce included, as clients do), then a byte pipe."""

    def __init__(self, ctrl, cid, transport="tcp", raw_id=None):
        self.c = TurnClient(SRV[transport], transport, tls_context=ctx, timeout=5.0)
        for k in ("user", "password", "realm", "nonce", "key", "sha256", "algorithms"):
            setattr(self.c, k, getattr(ctrl, k, None))
        attrs = [] if cid is None else [("CONNECTION-ID", raw_id if raw_id is not None else struct.pack("!I", cid))]
        self.answer = self.c.request(CONNECTION_BIND, attrs, expect_ok=False)
        self.sock = self.c.sock
        self.pending = self.c.stream_buf  # bytes that came right after the answer

    def ok(self):
        return self.answer is not None and self.answer.cls == SUCCESS

    def recv_exact(self, n, timeout=10):
        out = bytearray(self.pending[:n])
        self.pending = self.pending[n:]
        self.sock.settimeout(timeout)
        while len(out) < n:
            chunk = self.sock.recv(min(65536, n - len(out)))
            if not chunk:
                raise ConnectionError("closed after %d of %d bytes" % (len(out), n))
            out += chunk
        return bytes(out)

    def close(self):
        self.c.close()


def eof_within(sock, timeout):
    """True when the other end closes within timeout (data before the close is discarded)."""
    sock.settimeout(timeout)
    end = time.time() + timeout
    try:
        while time.time() < end:
            if not sock.recv(65536):
                return True
    except (socket.timeout, TimeoutError):
        return False
    except OSError:
        return True
    return False


def attempt_of(c, timeout=3.0):
    """The next ConnectionAttempt on control connection c, or None."""
    end = time.time() + timeout
    while time.time() < end:
        raw = c.recv_any(max(0.05, end - time.time()))
        if raw is None:
            return None
        m = Msg.decode(raw)
        if m.method == CONNECTION_ATTEMPT and m.cls == INDICATION:
            return m
    return None


def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    s.settimeout(5)
    return s


def pump(sock, data):
    threading.Thread(target=sock.sendall, args=(data,), daemon=True).start()


def uclient(desc, flags, srv_port, n=100, m=8, server="127.0.0.1"):
    """uclient -T: m clients, each connecting to every other's relayed address; every client sends
    n messages over each of its connections' pairs. Every connection must be bound and nothing
    lost. Over TLS a run gets up to three attempts, as in turn_stream.py: coturn 4.6's client
    counts a message per SSL_read of a message's length, and when the relay hop between two
    relayed addresses (plain TCP) has coalesced messages, the records the server writes to the
    client no longer match them one to one; the client then counts one message short although
    every byte arrived (seen on a machine at load 145: 799 of 800 messages, 136800 of 136800
    bytes). Our own client checks TLS pipes byte for byte below."""
    args = ["timeout", "120", "turnutils_uclient", "-T", "-n", str(n), "-m", str(m), "-l", "171", "-z", "5",
            "-u", "uc", "-W", SECRET, "-p", str(srv_port)] + flags + [server]
    want = n * m
    tries = []
    for _ in range(3 if "-S" in flags else 1):
        r = subprocess.run(args, capture_output=True, text=True)
        out = r.stdout + r.stderr
        done = re.findall(r"(\d+) connections are completed", out)
        sent = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$", out, re.M)
        nbytes = re.findall(r"tot_send_bytes ~ (\d+), tot_recv_bytes ~ (\d+)\s*$", out, re.M)
        lost = re.findall(r"Total lost packets (\d+)", out)
        ok = (r.returncode == 0 and done and int(done[-1]) == m * (m - 1) and "not enough" not in out and sent
              and int(sent[-1][0]) == want == int(sent[-1][1]) and lost and int(lost[-1]) == 0)
        tries.append("%s lost (bytes %s of %s)" % (lost[-1] if lost else "?", nbytes[-1][1] if nbytes else "?",
                                                   nbytes[-1][0] if nbytes else "?"))
        if ok:
            break
    t.ok(ok, "%s: %s of %d connections bound, %s of %d messages received, %s lost%s"
         % (desc, done[-1] if done else "?", m * (m - 1), sent[-1][1] if sent else "?", want,
            lost[-1] if lost else "?", "" if len(tries) == 1 else " (attempts: %s)" % "; ".join(tries)),
         out[-2500:])


held = []
try:
    # ------------------------------------------------------------ coturn's client
    for i in range(3):
        uclient("uclient -T over TCP, run %d" % (i + 1), [], port)
    for i in range(3):
        uclient("uclient -T over TLS (-S), run %d" % (i + 1), ["-S"], tport)
    uclient("uclient -T on ::1, IPv6 relayed addresses (-x)", ["-x"], port6, m=6, server="::1")
    uclient("uclient -T -S on ::1, IPv6 relayed addresses (-x)", ["-S", "-x"], tport6, m=6, server="::1")

    # ------------------------------------------------------------ the allocation
    u = TurnClient(SRV["udp"], "udp")
    u.login(*rest_credential(SECRET, "alice"))
    r = u.allocate(attrs=[("REQUESTED-TRANSPORT", TCP)], expect_ok=False)
    t.eq(r.error(), 400, "a TCP allocation asked over UDP gets 400 (RFC 6062 5.1)")
    u.close()
    for name, value in (("EVEN-PORT", b"\x80"), ("DONT-FRAGMENT", b""), ("RESERVATION-TOKEN", b"12345678")):
        x = TurnClient(SRV["tcp"], "tcp")
        x.login(*rest_credential(SECRET, "alice"))
        r = x.allocate(attrs=[("REQUESTED-TRANSPORT", TCP), (name, value)], expect_ok=False)
        t.eq(r.error(), 400, "a TCP Allocate with %s gets 400" % name)
        x.close()

    a = control("tcp")
    held.append(a)
    relay = a.relay
    t.ok(relay[0] == "127.0.0.1" and 48000 <= relay[1] <= 48999, "TCP allocation: relayed address %s:%d" % relay)
    # nobody has a permission yet: a connection to the relayed address is accepted and closed
    p0 = socket.create_connection(relay, timeout=3)
    t.ok(eof_within(p0, 3) and attempt_of(a, 0.5) is None,
         "a peer without a permission is closed at once, and not announced")
    p0.close()

    # ------------------------------------------------------------ Connect: the errors
    r = a._peer_request(CONNECT, [], expect_ok=False)
    t.eq(r.error(), 400, "Connect without XOR-PEER-ADDRESS: 400")
    t.eq(connect(a, ("10.1.2.3", 80), expect_ok=False).error(), 403, "Connect to a private peer: 403 (peer policy)")
    t.eq(connect(a, ("127.0.0.1", port), expect_ok=False).error(), 403, "Connect to meetlited's own listener: 403")
    closed_port = free_port()
    r = connect(a, ("127.0.0.1", closed_port), expect_ok=False)
    t.eq(r.error(), 447, "Connect to a port where nobody listens: 447 Connection Timeout or Failure")
    x = TurnClient(SRV["tcp"], "tcp")
    x.login(*rest_credential(SECRET, "alice"))
    x.allocate()
    t.eq(connect(x, ("127.0.0.1", 9), expect_ok=False).error(), 400, "Connect on a UDP allocation: 400")
    x.close()
    x = TurnClient(SRV["tcp"], "tcp")
    x.login(*rest_credential(SECRET, "alice"))
    t.eq(x.request(CONNECT, [], expect_ok=False).error(), 437, "Connect on a connection without an allocation: 437")
    x.close()

    # ------------------------------------------------------------ Connect: a peer
    lst = listener()
    peer_addr = lst.getsockname()
    r = connect(a, peer_addr)
    cid = cid_of(r)
    ps, ps_from = lst.accept()
    t.eq(tuple(ps_from[:2]), tuple(relay), "the peer's connection comes from the relayed address (RFC 6062 5.2)")
    t.eq(connect(a, peer_addr, expect_ok=False).error(), 446, "a second Connect to the same peer: 446")
    ps.sendall(b"early bytes, sent before the ConnectionBind;")

    # ConnectionBind: the errors
    u = TurnClient(SRV["udp"], "udp")
    t.eq(u.transact(Msg(CONNECTION_BIND).add("CONNECTION-ID", struct.pack("!I", cid)), integrity=False).error(), 400,
         "ConnectionBind over UDP: 400")
    u.close()
    t.eq(Data(a, None).answer.error(), 400, "ConnectionBind without CONNECTION-ID: 400")
    t.eq(Data(a, cid ^ 0x00FFFFFF).answer.error(), 400, "ConnectionBind with an unknown CONNECTION-ID: 400")
    bob = TurnClient(SRV["tcp"], "tcp")
    bob.login(*rest_credential(SECRET, "bob"))
    bob.allocate()
    db = Data(bob, cid)
    t.eq(db.answer.error() if db.answer else None, 441, "ConnectionBind with another user's credentials: 441")
    db.close()
    bob.close()

    dc = Data(a, cid)
    t.ok(dc.ok(), "ConnectionBind on a new connection: success", dc.answer and dc.answer.error())
    t.eq(Data(a, cid).answer.error(), 400, "binding the same CONNECTION-ID again: 400")
    early = b"early bytes, sent before the ConnectionBind;"
    t.eq(dc.recv_exact(len(early)), early, "what the peer sent before the ConnectionBind arrives first")
    big_up, big_down = os.urandom(3 << 20), os.urandom(3 << 20)
    pump(dc.sock, big_up)
    pump(ps, big_down)
    ps.settimeout(20)
    got_up = bytearray()
    while len(got_up) < len(big_up):
        chunk = ps.recv(1 << 16)
        if not chunk:
            break
        got_up += chunk
    got_down = dc.recv_exact(len(big_down), 20)
    t.ok(hashlib.sha256(got_up).digest() == hashlib.sha256(big_up).digest(),
         "3 MiB client to peer, intact (%d bytes)" % len(got_up))
    t.ok(got_down == big_down, "3 MiB peer to client, intact")

    # a client that stops reading holds the peer back; nothing is lost when it reads again
    ps.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 << 10)
    ps.setblocking(False)
    chunk = os.urandom(1 << 16)
    written, stalled_since = 0, None
    while written < (64 << 20):
        try:
            written += ps.send(chunk[written % len(chunk):])  # the stream is chunk repeated
            stalled_since = None
        except BlockingIOError:
            if stalled_since is None:
                stalled_since = time.time()
            elif time.time() - stalled_since > 1.0:
                break
            time.sleep(0.01)
    t.ok(written < (24 << 20), "a client that reads nothing holds the peer back: %.1f MiB of 64 accepted "
         "(relay buffer 64 KiB plus the sockets' buffers)" % (written / 1048576.0))
    expect = (chunk * (written // len(chunk) + 1))[:written]
    got = dc.recv_exact(written, 30)
    t.ok(got == expect, "then it reads all %d bytes, in order" % written)
    ps.setblocking(True)

    # the bytes are in the allocation's usage once the connection ends
    dc.close()
    t.ok(eof_within(ps, 5), "the client closes its data connection: the peer connection closes")
    ps.close()
    adm = AdminApi(admin_port)
    views = adm.get("/v1/turn/allocations").json
    usage = None
    for v in (views or {}).get("allocations", []):
        if "%s:%d" % relay in v.get("relayed", []):
            usage = v["usage"]
    want_up, want_down = len(big_up), len(early) + len(big_down) + written
    t.ok(usage and usage["bytes_to_peers"] == want_up and usage["bytes_to_client"] == want_down,
         "the allocation's usage counts the bytes: %d to the peer, %d to the client" % (want_up, want_down),
         "usage %r in %r" % (usage, views))

    # a client that sends its first bytes with the ConnectionBind, before the answer (whichever
    # worker the new connection lands on: the frame is handled there or handed over)
    piped_ok = True
    for i in range(6):
        lp = listener()
        cid_i = cid_of(connect(a, lp.getsockname()))
        pp, _ = lp.accept()
        q = TurnClient(SRV["tcp"], "tcp", timeout=5.0)
        for k in ("user", "password", "realm", "nonce", "key", "sha256", "algorithms"):
            setattr(q, k, getattr(a, k, None))
        bind = Msg(CONNECTION_BIND).add("CONNECTION-ID", struct.pack("!I", cid_i))
        extra = b"pipelined right behind ConnectionBind %d" % i
        q.sock.sendall(q.encode(bind) + extra)
        answer = Msg.decode(q._recv_one(5.0))
        pp.settimeout(5)
        got = b""
        try:
            while len(got) < len(extra):
                chunk = pp.recv(100)
                if not chunk:
                    break
                got += chunk
        except OSError:
            pass
        if answer.cls != SUCCESS or got != extra:
            piped_ok = False
            t.diag("run %d: answer %s, peer got %r" % (i, answer.cls, got))
        q.close()
        pp.close()
        lp.close()
    t.ok(piped_ok, "bytes sent right behind a ConnectionBind reach the peer, and the request does not (6 runs)")

    # ------------------------------------------------------------ a peer that connects
    inc = socket.socket()
    inc.bind(("127.0.0.1", 0))
    a.create_permission(("127.0.0.1", 0))
    inc.connect(relay)
    m = attempt_of(a)
    t.ok(m is not None and m.xaddr("XOR-PEER-ADDRESS") == inc.getsockname() and m.get("CONNECTION-ID"),
         "a permitted peer that connects is announced: ConnectionAttempt with its address and a CONNECTION-ID",
         m and m.attrs)
    if m is not None:
        di = Data(a, cid_of(m))
        t.ok(di.ok(), "ConnectionBind of the incoming connection: success")
        inc.sendall(b"hello from the peer")
        di.sock.sendall(b"hello from the client")
        t.eq(di.recv_exact(19), b"hello from the peer", "incoming connection: peer to client")
        inc.settimeout(5)
        t.eq(inc.recv(100), b"hello from the client", "incoming connection: client to peer")
        held.append(di)

    # ------------------------------------------------------------ the limit
    reload(max_conns=2)  # a has one connection (the incoming one)
    l2, l3 = listener(), listener()
    r2 = connect(a, l2.getsockname())
    t.ok(r2.cls == SUCCESS, "with turn.tcp-relay-max-connections = 2, a second connection is made")
    r3 = connect(a, l3.getsockname(), expect_ok=False)
    t.eq(r3.error(), 508, "a third Connect: 508")
    inc3 = socket.create_connection(relay, timeout=3)
    t.ok(eof_within(inc3, 3) and attempt_of(a, 0.5) is None, "a third incoming connection is closed, not announced")
    inc3.close()
    reload(max_conns=32)

    # ------------------------------------------------------------ a ConnectionBind that never comes
    l4 = listener()
    r4 = connect(a, l4.getsockname())
    p4, _ = l4.accept()
    bind_wait_started = time.time()

    # ------------------------------------------------------------ over TLS
    at = control("tls", user="carol")
    held.append(at)
    l5 = listener()
    r5 = connect(at, l5.getsockname())
    p5, _ = l5.accept()
    dt = Data(at, cid_of(r5), transport="tls")
    t.ok(dt.ok(), "TLS control and data connections: ConnectionBind succeeds")
    blob = os.urandom(1 << 20)
    pump(dt.sock, blob)
    p5.settimeout(20)
    got = bytearray()
    while len(got) < len(blob):
        chunk = p5.recv(1 << 16)
        if not chunk:
            break
        got += chunk
    p5.sendall(blob[::-1])
    t.ok(bytes(got) == blob and dt.recv_exact(len(blob), 20) == blob[::-1], "TLS: 1 MiB each way, intact")

    # the control connection closes: the allocation ends and its connections with it
    at.close()
    t.ok(eof_within(p5, 5), "the TLS control connection closes: the peer connection closes")
    dt.sock.settimeout(5)
    try:
        gone = dt.sock.recv(10) == b""
    except OSError:
        gone = True
    t.ok(gone, "... and so does the client data connection")
    dt.close()

    # tcp-relay off (a reload): a TCP allocation gets 442
    reload(tcp_relay="no")
    x = TurnClient(SRV["tcp"], "tcp")
    x.login(*rest_credential(SECRET, "alice"))
    t.eq(x.allocate(attrs=[("REQUESTED-TRANSPORT", TCP)], expect_ok=False).error(), 442,
         "with turn.tcp-relay = no (reloaded), a TCP Allocate gets 442")
    x.close()
    reload(tcp_relay="yes")

    # the unbound connection is closed 30 s after it was made (RFC 6062 5.2)
    left = 29.0 - (time.time() - bind_wait_started)
    p4.settimeout(max(0.1, left))
    try:
        early_eof = p4.recv(10) == b""
    except (socket.timeout, TimeoutError):
        early_eof = False
    t.ok(not early_eof, "an unbound peer connection is still open after 29 s")
    t.ok(eof_within(p4, 5), "... and closed by 34 s: no ConnectionBind came within 30 s")
    p4.close()
    t.eq(Data(a, cid_of(r4)).answer.error(), 400, "its CONNECTION-ID is gone: 400")
finally:
    for h in held:
        h.close()
    ok = d.clean()
    t.ok(ok, "meetlited stops cleanly", d.log()[-3000:])
    d.close()

sys.exit(t.done())
