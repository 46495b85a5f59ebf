"""meetlited stops cleanly whenever SIGTERM comes (issue #11, item 5): many start/stop cycles
under traffic, each SIGTERM at a random moment, each stop bounded by a deadline.

Part 1, a TURN-only node (1 or 2 workers, UDP, TCP and TLS listeners): clients allocate and
relay over UDP, TCP and TLS, TCP allocations (RFC 6062) pipe bytes between a client and a peer,
and a crowd of TCP and TLS connections closes while the SIGTERM arrives. That is the race this file was written for: a connection whose end was deferred to
the next loop iteration was freed by the worker's stop, then freed again by the deferred call
(a crash, or a hang on a freed lock, in 8 of 40 cycles of an optimised build before the fix).

Part 2, a full node on a private PostgreSQL (control plane, signaling, admin API, credential
sync, revocation LISTEN, usage records): HTTP joins and status reads, WebSocket signaling
sessions, admin statistics and TURN allocations with join credentials, stopped mid-flight.

Each stop must exit 0 within its deadline, log "stopped", and (under --enable-devel) report
nothing to the sanitizers. A hung daemon is killed by PID and its log shown."""

import asyncio
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mltest  # noqa: E402
from mltest import (BINDING, REQUEST, SANITIZER_MARKS, Daemon, Msg, Tap, free_port,  # noqa: E402
                    rest_credential)
from turnclient import Peer, TurnClient  # noqa: E402

CYCLES_TURN = int(os.environ.get("ML_STOP_CYCLES", "40"))
CYCLES_DB = int(os.environ.get("ML_STOP_DB_CYCLES", "8"))
STOP_DEADLINE_S = 15   # TURN-only: workers join at once; 15 s only absorbs a loaded machine
STOP_DEADLINE_DB_S = 25  # plus the usage writer's last flush (3 s) and signaling's goodbyes
SECRET = "stop-secret-0123456789"

t = Tap()
rng = random.Random(int(os.environ.get("ML_STOP_SEED", str(int(time.time())))))
tmp = mltest.scratch_dir("ml-stop-")
cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "c.key")
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=meetlite-stop",
                "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
tls_ctx.check_hostname = False
tls_ctx.verify_mode = ssl.CERT_NONE


# ---------------------------------------------------------------- part 1: TURN only

def turn_client(transport, port, tport, peer):
    """An allocation relaying a few packets; left open or closed at random."""
    c = TurnClient(("127.0.0.1", tport if transport == "tls" else port), transport,
                   tls_context=tls_ctx, timeout=1.0)
    user, password = rest_credential(SECRET, "stop%d" % rng.randint(0, 30))
    c.login(user, password)
    c.allocate()
    c.create_permission(peer.addr)
    for _ in range(rng.randint(1, 20)):
        c.send_indication(peer.addr, os.urandom(rng.randint(20, 400)))
    return c


def tcp_relay(port, tport, held):
    """A TCP allocation (RFC 6062) with a peer connection bound and bytes flowing both ways: a
    Connect to a listener of ours, a ConnectionBind on a second connection (which may move to
    another worker), the three sockets left open for the SIGTERM."""
    transport = rng.choice(("tcp", "tls"))
    srv = ("127.0.0.1", tport if transport == "tls" else port)
    c = TurnClient(srv, transport, tls_context=tls_ctx, timeout=1.0)
    c.tcp_alloc = True
    held.append(c)
    c.login(*rest_credential(SECRET, "stop%d" % rng.randint(0, 30)))
    c.allocate(attrs=[("REQUESTED-TRANSPORT", b"\x06\0\0\0")])
    lst = socket.socket()
    held.append(lst)
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    lst.settimeout(1.0)
    r = c._peer_request(0x00A, [("XOR-PEER-ADDRESS", None, lst.getsockname())], True)
    p, _ = lst.accept()
    held.append(p)
    dc = TurnClient(srv, transport, tls_context=tls_ctx, timeout=1.0)
    held.append(dc)
    for k in ("user", "password", "realm", "nonce", "key", "sha256", "algorithms"):
        setattr(dc, k, getattr(c, k, None))
    dc.request(0x00B, [("CONNECTION-ID", r.get("CONNECTION-ID"))])
    p.sendall(os.urandom(rng.randint(1, 200000)))
    dc.sock.sendall(os.urandom(rng.randint(1, 200000)))
    tcp_relays[0] += 1


tcp_relays = [0]  # TCP allocations piping bytes at a SIGTERM, over all cycles


def traffic(port, tport, peer, stop, held):
    """Allocations and relayed data over every transport until stop is set."""
    while not stop.is_set():
        try:
            if rng.random() < 0.25:
                tcp_relay(port, tport, held)
                continue
            c = turn_client(rng.choice(("udp", "tcp", "tls")), port, tport, peer)
            if rng.random() < 0.5:
                held.append(c)  # still open at the SIGTERM
            else:
                c.close()
        except Exception:  # the daemon may be stopping already: only its exit is judged
            pass
        try:
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for _ in range(rng.randint(0, 50)):
                u.sendto(Msg(BINDING, REQUEST).encode(), ("127.0.0.1", port))
            u.close()
        except OSError:
            pass


def crowd(port, tport, n):
    """n TCP and TLS connections, each with one whole request (answered before this returns),
    a partial frame, or garbage that the server closes the connection for."""
    socks, answered = [], []
    for _ in range(n):
        try:
            if rng.random() < 0.1:
                raw = socket.create_connection(("127.0.0.1", tport), timeout=3)
                s = tls_ctx.wrap_socket(raw)
            else:
                s = socket.create_connection(("127.0.0.1", port), timeout=3)
            what = rng.random()
            if what < 0.8:
                s.sendall(Msg(BINDING, REQUEST).encode())
                answered.append(s)
            else:
                s.sendall(b"\x00\x01\x00" if what < 0.9 else b"\xff" * 24)
            socks.append(s)
        except OSError:
            pass
    for s in answered:
        try:
            s.recv(100)
        except OSError:
            pass
    return socks


# Peers that keep sending to the relayed addresses, and Binding requests to the listener, from
# a process of their own: they run on while this one closes its connections without the GIL.
BLASTER = """
import socket, sys, time
targets = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in sys.argv[1:]]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
binding = bytes.fromhex("000100002112a442") + bytes(12)
while True:
    for t in targets:
        try:
            s.sendto(b"p" * 200 if t[1] != int(sys.argv[1].rsplit(":", 1)[1]) else binding, t)
        except OSError:
            pass
    time.sleep(0.0005)
"""


def turn_cycle(i):
    port, tport = free_port(), free_port()
    workers = rng.choice((1, 1, 2))
    d = Daemon(["turn.listen=udp://127.0.0.1:%d, tcp://127.0.0.1:%d, tls://127.0.0.1:%d"
                % (port, port, tport), "turn.tls-cert=" + cert, "turn.tls-key=" + key,
                "turn.auth-secret=" + SECRET, "turn.allow-peers=127.0.0.0/8",
                "turn.max-allocations-per-user=1000", "turn.tcp-relay=yes",
                "net.workers=%d" % workers,
                "log.level=notice"])
    peer = Peer()
    stop, held = threading.Event(), []
    th = [threading.Thread(target=traffic, args=(port, tport, peer, stop, held))
          for _ in range(2)]
    blaster = None
    try:
        for x in th:
            x.start()
        time.sleep(rng.uniform(0.1, 0.5))
        stop.set()
        for x in th:
            x.join()
        relays = ["%s:%d" % c.relay for c in held  # UDP relays (not those of TCP allocations)
                  if getattr(c, "relay", None) and not getattr(c, "tcp_alloc", False)]
        blaster = subprocess.Popen([sys.executable, "-c", BLASTER, "127.0.0.1:%d" % port]
                                   + relays)
        socks = crowd(port, tport, rng.randint(150, 300))
        # close the crowd and stop the daemon in the middle of it: connections whose end the
        # workers are handling when the stop reaches them
        cut = rng.randint(0, len(socks) // 2)
        signalled = False
        for j, s in enumerate(socks):
            if j == cut:
                signalled = sigterm(d)
            try:
                s.close()
            except OSError:
                pass
        if not signalled:
            sigterm(d)
        ok = judge(d, "TURN-only node, %d worker%s, %d allocations: stops cleanly (cycle %d)"
                   % (workers, "s" if workers > 1 else "", len(held), i), STOP_DEADLINE_S)
    finally:
        stop.set()
        for x in th:
            x.join()
        if blaster:
            blaster.kill()
            blaster.wait()
        for c in held:
            c.close()
        peer.close()
        d.close()
    return ok


_sent = {}


def sigterm(d):
    """Sends the SIGTERM now; judge() waits for the exit."""
    _sent[d] = time.time()
    d.signal(signal.SIGTERM)
    return True


def judge(d, what, deadline):
    t0 = _sent.pop(d)
    try:
        d.proc.wait(max(0.1, t0 + deadline - time.time()))
    except subprocess.TimeoutExpired:
        stack = subprocess.run(["gdb", "-p", str(d.proc.pid), "-batch", "-ex",
                                "thread apply all bt"], capture_output=True, text=True,
                               timeout=60).stdout if os.path.exists("/usr/bin/gdb") else ""
        d.proc.kill()
        d.proc.wait()
        d.rc = d.proc.returncode
        return t.ok(False, what, "no exit within %ss of SIGTERM:\n%s\n%s" % (deadline, d.log(),
                                                                              stack))
    d.rc = d.proc.returncode
    log = d.log()
    clean = d.rc == 0 and "stopped" in log and not any(m in log for m in SANITIZER_MARKS)
    return t.ok(clean, "%s (%.2f s)" % (what, time.time() - t0),
                "exit status %s:\n%s" % (d.rc, log))


failed_turn = 0
for i in range(CYCLES_TURN):
    if not turn_cycle(i + 1):
        failed_turn += 1
t.ok(failed_turn == 0, "TURN-only: %d of %d stops failed" % (failed_turn, CYCLES_TURN))
t.ok(not CYCLES_TURN or tcp_relays[0] > 0,
     "TCP allocations were piping bytes at the stops (%d in all)" % tcp_relays[0])


# ---------------------------------------------------------------- part 2: a full node

from mlcontrol import ControlDaemon, Postgres  # noqa: E402
from mladmin import TOKEN, AdminApi, tcp_port  # noqa: E402
from mlsignal import Sig, meeting  # noqa: E402


def http_load(d, mid, people, stop, n):
    """Joins (fresh TURN credentials), status reads and admin statistics until stop."""
    adm = AdminApi(d.admin_port)
    while not stop.is_set():
        try:
            p = rng.choice(people)
            p.join_meeting(mid)
            if d.api.get("/api/v1/meetings/%s" % mid, token=p.token, timeout=5).status == 200 \
                    and adm.get("/stats", timeout=5).status == 200:
                n["http"] += 1
        except Exception:
            pass


def relay_load(d, people, stop, held, n):
    """TURN allocations with the participants' join credentials, over UDP and TCP."""
    peer = Peer()
    try:
        while not stop.is_set():
            try:
                p = rng.choice(people)
                if not p.join:
                    continue
                c = TurnClient(("127.0.0.1", d.turn_port), rng.choice(("udp", "tcp")),
                               timeout=1.0)
                c.login(p.join["turn"]["username"], p.join["turn"]["password"])
                c.allocate()
                c.create_permission(peer.addr)
                c.send_indication(peer.addr, b"x" * 100)
                held.append(c)
                n["alloc"] += 1
            except Exception:
                pass
    finally:
        peer.close()


def signaling_load(d, people, stop, n):
    """WebSocket sessions that come and go, with messages between them, until stop."""
    async def run():
        open_ = []
        while not stop.is_set():
            try:
                p = rng.choice(people)
                s = await Sig.open(d.http_port, token=p.sig_token, timeout=3)
                open_.append(s)
                n["ws"] += 1
                await s.send(type="chat", text="hello %d" % len(open_))
                if len(open_) > 4:
                    await open_.pop(0).close()
            except Exception:
                await asyncio.sleep(0.05)
        for s in open_:
            try:
                s.abort()
            except Exception:
                pass
    asyncio.run(run())


pg = Postgres()
try:
    ready = None
    failed_db = 0
    total = {"http": 0, "alloc": 0, "ws": 0}
    for i in range(CYCLES_DB):
        admin_port = tcp_port()
        d = ControlDaemon(pg.url, ["database.migrate-on-start=yes", "net.workers=2",
                                   "turn.allow-peers=127.0.0.0/8",
                                   "admin.listen=127.0.0.1:%d" % admin_port,
                                   "admin.token=" + TOKEN, "admin.db-credentials=yes",
                                   "usage.flush-interval-ms=50", "log.level=notice"])
        d.admin_port = admin_port
        if ready is None:
            ready = meeting(d.api, 4, title="Stop", prefix="stop")
        mid, people = ready
        for p in people:
            p.api = d.api  # this cycle's daemon
        stop, held, n = threading.Event(), [], {"http": 0, "alloc": 0, "ws": 0}
        th = [threading.Thread(target=http_load, args=(d, mid, people, stop, n)),
              threading.Thread(target=relay_load, args=(d, people, stop, held, n)),
              threading.Thread(target=signaling_load, args=(d, people, stop, n))]
        try:
            for x in th:
                x.start()
            time.sleep(rng.uniform(0.2, 2.0))
            sigterm(d)
            if not judge(d, "full node on PostgreSQL (%d joins, %d allocations, %d signaling "
                         "sessions): stops cleanly (cycle %d)" % (n["http"], n["alloc"], n["ws"],
                                                                  i + 1), STOP_DEADLINE_DB_S):
                failed_db += 1
            for k in total:
                total[k] += n[k]
        finally:
            stop.set()
            for x in th:
                x.join()
            for c in held:
                c.close()
            d.close()
    t.ok(failed_db == 0, "full node: %d of %d stops failed" % (failed_db, CYCLES_DB))
    t.ok(not CYCLES_DB or all(total.values()),
         "the full node served joins, allocations and signaling before its stops", total)
finally:
    pg.close()
sys.exit(t.done())
