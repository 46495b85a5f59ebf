"""The UDP data path (net.io, issue #19): auto picks io_uring where the kernel allows it and says
so; io_uring refused (a seccomp filter standing in for a kernel without it, or one that forbids
it) makes auto fall back to epoll with the reason, and net.io = uring a start error. Where an
io_uring worker sleeps (net.uring-wait): in libevent's epoll_wait by default; in its ring when
asked, woken there by libevent's descriptors and timers too, and a start error that says why
when libevent does not use epoll; with the loop wait a receive's wake-up is reported at once
(net.udp.ring_wakeups). On each path: the largest datagrams relayed whole
both ways, bursts far larger than the io_uring buffer ring (buffers recycled, receives
re-armed), relay sockets closed while their traffic still flows, and a clean exit (no sanitizer
report)."""

import ctypes
import os
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import (BINDING, REQUEST, SUCCESS, TOP_BUILDDIR, Daemon, Msg, Tap, free_port,  # noqa: E402
                    recv_stun_stream, rest_credential, udp_exchange)
from mladmin import AdminDaemon  # noqa: E402
from turnclient import Peer, TurnClient  # noqa: E402

SECRET = "net-io-secret-0123456789"
DENY = os.path.join(TOP_BUILDDIR, "tests", "lib", "deny-syscall")
BIGGEST = 65507 - 4  # client to peer: an IPv4 UDP payload less the ChannelData header
BIGGEST_BACK = 0xFFFF - 64  # peer to client: what the relay takes (room for a Data indication)
t = Tap()


def kernel_has_io_uring():
    """io_uring_setup(2) with no flags, straight from here: can this process use io_uring at all?
    (The data path also needs Linux 6.0 for its flags; checked against the release.)"""
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)  # struct io_uring_params
    fd = libc.syscall(425, 2, params)  # __NR_io_uring_setup on x86_64 and arm64
    if fd >= 0:
        os.close(fd)
    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    return fd >= 0 and (major, minor) >= (6, 0)


def binding_ok(port):
    m = Msg(BINDING, REQUEST)
    raw = udp_exchange(("127.0.0.1", port), m.encode())
    r = Msg.decode(raw) if raw else None
    return r is not None and r.cls == SUCCESS and r.tid == m.tid


def start(extra, wrapper=None, wait_for="ready", env=None):
    port = free_port()
    d = Daemon(["turn.listen=udp://127.0.0.1:%d" % port, "turn.auth-secret=%s" % SECRET,
                "turn.allow-peers=127.0.0.0/8", "turn.relay-ports=42000-42999", "net.workers=2"]
               + extra, wrapper=wrapper, wait_for=wait_for, env=env)
    return d, port


def client(port, ident):
    c = TurnClient(("127.0.0.1", port))
    c.login(*rest_credential(SECRET, ident, 3600))
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return c


def relay_checks(port, label):
    """Largest datagrams both ways, a burst, and closing a relay socket under traffic."""
    c = client(port, "big-" + label)
    c.allocate()
    peer = Peer()
    peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    c.create_permission(peer.addr)
    c.channel_bind(0x4001, peer.addr)
    big = bytes(range(256)) * (BIGGEST // 256) + b"x" * (BIGGEST % 256)
    c.send_channel(0x4001, big)
    got, src = peer.recv(2.0)
    t.ok(got == big and src == tuple(c.relay), "%s: a %d-byte ChannelData payload reaches the peer whole"
         % (label, len(big)), (len(got) if got else None, src))
    # one byte more than the relay takes: dropped, and the next one still passes
    peer.send(tuple(c.relay), big[:BIGGEST_BACK + 1])
    t.eq(c.recv_data(0.5), None, "%s: a %d-byte datagram from the peer is not relayed" % (label, BIGGEST_BACK + 1))
    back = big[:BIGGEST_BACK]
    peer.send(tuple(c.relay), back)
    r = c.recv_data(2.0)
    t.ok(r == ("channel", 0x4001, back), "%s: a %d-byte datagram from the peer comes back whole"
         % (label, len(back)), r and (r[0], r[1], len(r[2])))

    # bursts of 300 datagrams: many times the 16 receive buffers of the io_uring daemon
    received = 0
    for rnd in range(5):
        for i in range(300):
            peer.send(tuple(c.relay), struct.pack("!II", rnd, i) + b"." * 92)
        n = 0
        while n < 300:
            r = c.recv_data(2.0)
            if r is None:
                break
            n += 1
        received += n
    t.eq(received, 1500, "%s: bursts of 300 datagrams from the peer all reach the client" % label)
    for i in range(300):
        c.send_channel(0x4001, struct.pack("!I", i) + b"-" * 96)
    n = 0
    while n < 300 and peer.recv(2.0)[0] is not None:
        n += 1
    t.eq(n, 300, "%s: a burst of 300 ChannelData messages all reach the peer" % label)

    # closing the relay socket while the peer keeps sending to it
    stop = threading.Event()

    def flood(dst):
        while not stop.is_set():
            for _ in range(50):
                try:
                    peer.send(dst, b"flood" * 20)
                except OSError:
                    pass
            time.sleep(0.001)

    th = threading.Thread(target=flood, args=(tuple(c.relay),))
    th.start()
    time.sleep(0.2)
    r = c.refresh(lifetime=0)
    time.sleep(0.2)
    stop.set()
    th.join()
    t.ok(r.cls == SUCCESS, "%s: Refresh 0 frees an allocation whose relay socket is being flooded" % label)
    c.close()
    c2 = client(port, "after-" + label)
    c2.allocate()
    c2.create_permission(peer.addr)
    c2.channel_bind(0x4002, peer.addr)
    c2.send_channel(0x4002, b"still relaying")
    t.eq(peer.recv(2.0)[0], b"still relaying", "%s: relaying goes on afterwards" % label)
    c2.close()
    peer.close()


uring_ok = kernel_has_io_uring()
t.diag("this kernel %s io_uring to this process" % ("offers" if uring_ok else "does not offer"))
# IORING_SETUP_DEFER_TASKRUN, which the ring wait needs, came with Linux 6.1
ring_wait_ok = uring_ok and tuple(int(x) for x in os.uname().release.split(".")[:2]) >= (6, 1)
RING_NOTE = "; workers wait in io_uring_enter (net.uring-wait = ring)"
LOOP_NOTE = "; workers wait in epoll_wait (net.uring-wait = loop)"


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

# ------------------------------------------------------------ auto: io_uring where available
d, port = start([])
try:
    log = d.log()
    if uring_ok:
        t.ok("UDP data path: io_uring (" in log and "net.io = auto" in log,
             "auto: the log says io_uring serves UDP", log)
        t.ok(LOOP_NOTE in log, "auto: the log says the workers wait in epoll_wait (the default)", log)
    else:
        t.ok("UDP data path: epoll (net.io = auto; io_uring unavailable: " in log,
             "auto: the log says epoll serves UDP, and why", log)
    relay_checks(port, "auto")
finally:
    rc, log = d.stop()
    t.ok(d.clean(), "auto: stops cleanly", log[-3000:])
    d.close()

# ------------------------------------------------------------ how a sleeping worker wakes
# With the loop wait, a receive wakes a worker asleep in epoll_wait as task work, and the wait
# ends with EINTR; meetlited reports the ring readable at once (one epoll_wait per wake-up, as on
# the epoll path), counted as net.udp.ring_wakeups. Datagrams 20 ms apart each find the worker
# asleep. The epoll path and the ring wait never count one.
def wakeups(io, label):
    d = AdminDaemon(["turn.auth-secret=%s" % SECRET, "net.workers=1"] + io)
    try:
        c = TurnClient(d.server)
        c.login(*rest_credential(SECRET, "wake-" + label, 3600))
        c.allocate()
        peer = Peer()
        c.create_permission(peer.addr)
        c.channel_bind(0x4003, peer.addr)
        before = d.api.stats()["net"]["udp"]["ring_wakeups"]
        got = 0
        for i in range(20):
            c.send_channel(0x4003, b"wake %d" % i)
            got += peer.recv(2.0)[0] == b"wake %d" % i
            time.sleep(0.02)
        after = d.api.stats()["net"]["udp"]["ring_wakeups"]
        metrics = d.api.metrics()
        c.close()
        peer.close()
        return got, after - before, metrics
    finally:
        rc, log = d.stop()
        t.ok(d.clean(), "%s: stops cleanly" % label, log[-3000:])
        d.close()


if uring_ok:
    got, woke, metrics = wakeups(["net.io=uring"], "loop wait")
    t.eq(got, 20, "loop wait: 20 datagrams 20 ms apart are relayed")
    t.ok(woke >= 15, "loop wait: most of them wake the worker through its ring, reported without a "
         "second wait (net.udp.ring_wakeups grew by %d)" % woke)
    t.ok("\nmeetlite_udp_ring_wakeups_total " in metrics, "the wake-ups are a Prometheus counter",
         [ln for ln in metrics.splitlines() if "ring_wakeups" in ln])
if ring_wait_ok:
    got, woke, _ = wakeups(["net.io=uring", "net.uring-wait=ring"], "ring wait, wake-ups")
    t.eq((got, woke), (20, 0), "ring wait: the datagrams are relayed, and no wake-up goes through epoll_wait")
got, woke, _ = wakeups(["net.io=epoll"], "epoll, wake-ups")
t.eq((got, woke), (20, 0), "epoll: the datagrams are relayed, and no ring wake-up is counted")

# ------------------------------------------------------------ uring with a ring of 16 buffers
# (every burst runs the ring dry: receives end with ENOBUFS and are started again)
if uring_ok:
    d, port = start(["net.io=uring", "net.uring-buffers=16"])
    try:
        t.ok("UDP data path: io_uring (" in d.log(), "net.io = uring: the log says io_uring")
        relay_checks(port, "uring, 16 buffers")
    finally:
        rc, log = d.stop()
        t.ok(d.clean(), "uring, 16 buffers: stops cleanly", log[-3000:])
        d.close()
else:
    p = subprocess.run([os.environ.get("MEETLITED", os.path.join(TOP_BUILDDIR, "meetlited")), "--set",
                        "turn.listen=udp://127.0.0.1:%d" % free_port(), "--set", "net.io=uring"],
                       capture_output=True, text=True, timeout=30)
    t.ok(p.returncode != 0 and "net.io = uring, but io_uring cannot serve UDP here" in p.stdout + p.stderr,
         "net.io = uring on a kernel without a usable io_uring is a start error", p.stdout + p.stderr)

# ------------------------------------------------------------ the ring wait: what else wakes it
# A worker asleep in io_uring_enter must still wake for libevent's descriptors (a TCP listener,
# a TCP connection) and for libevent's timers (the setup deadline of a connection that says
# nothing), and must stay asleep when nothing happens.
if ring_wait_ok:
    port, tport = free_port(), free_port()
    d = Daemon(["turn.listen=udp://127.0.0.1:%d, tcp://127.0.0.1:%d" % (port, tport),
                "turn.auth-secret=%s" % SECRET, "turn.allow-peers=127.0.0.0/8", "turn.relay-ports=42000-42999",
                "net.workers=1", "net.io=uring", "net.uring-wait=ring",
                "net.stream-setup-timeout=1s"])
    try:
        t.ok(RING_NOTE in d.log(), "net.uring-wait = ring: the log says so", d.log())
        t.ok(binding_ok(port), "ring wait: a UDP Binding request is answered")
        s = socket.create_connection(("127.0.0.1", tport), timeout=5)
        m = Msg(BINDING, REQUEST)
        s.sendall(m.encode())
        r = Msg.decode(recv_stun_stream(s, 5.0))
        t.ok(r.cls == SUCCESS and r.tid == m.tid, "ring wait: a TCP connection is accepted and its Binding answered")
        s.close()
        quiet = socket.create_connection(("127.0.0.1", tport), timeout=10)
        t0 = time.monotonic()
        try:
            closed = quiet.recv(1) == b""
        except OSError:
            closed = True
        took = time.monotonic() - t0
        quiet.close()
        t.ok(closed and 0.8 <= took <= 4.0,
             "ring wait: a connection that says nothing is closed by its 1 s setup deadline (a timer)",
             "closed %s after %.2f s" % (closed, took))
        time.sleep(0.5)
        c0 = cpu_seconds(d.proc.pid)
        time.sleep(2.0)
        used = cpu_seconds(d.proc.pid) - c0
        t.ok(used < 0.5, "ring wait: an idle daemon stays asleep (%.2f s of CPU in 2 s)" % used)
        relay_checks(port, "uring, ring wait")
    finally:
        rc, log = d.stop()
        t.ok(d.clean(), "ring wait: stops cleanly", log[-3000:])
        d.close()

# ------------------------------------------------------------ libevent not on epoll: no ring wait
# (EVENT_NOEPOLL makes libevent choose poll(2): its waits never reach meetlited's epoll_wait)
if uring_ok:
    d, port = start(["net.io=uring"], env={"EVENT_NOEPOLL": "1"})
    try:
        t.ok(LOOP_NOTE in d.log(), "libevent on poll: the default loop wait serves", d.log())
        t.ok(binding_ok(port), "libevent on poll: the loop wait answers")
    finally:
        rc, log = d.stop()
        t.ok(d.clean(), "libevent on poll: stops cleanly", log[-3000:])
        d.close()
    env = dict(os.environ, EVENT_NOEPOLL="1")
    p = subprocess.run([os.environ.get("MEETLITED", os.path.join(TOP_BUILDDIR, "meetlited")), "--set",
                        "turn.listen=udp://127.0.0.1:%d" % free_port(), "--set", "net.io=uring",
                        "--set", "net.uring-wait=ring"], capture_output=True, text=True, timeout=30, env=env)
    out = p.stdout + p.stderr
    t.ok(p.returncode != 0 and "net.uring-wait = ring, but a worker cannot wait in its ring: "
         "libevent uses its poll backend, not epoll" in out and "ready" not in out,
         "libevent on poll: net.uring-wait = ring is a start error that says why", out)

# ------------------------------------------------------------ epoll, chosen
d, port = start(["net.io=epoll"])
try:
    t.ok("UDP data path: epoll (net.io = epoll)" in d.log(), "net.io = epoll: the log says epoll")
    relay_checks(port, "epoll")
finally:
    rc, log = d.stop()
    t.ok(d.clean(), "epoll: stops cleanly", log[-3000:])
    d.close()

# ------------------------------------------------------------ io_uring refused by the kernel
t.ok(os.access(DENY, os.X_OK), "tests/lib/deny-syscall is built", DENY)
for errno_name, why in (("ENOSYS", "io_uring_setup: not implemented (a kernel without io_uring, or a seccomp filter)"),
                        ("EPERM", "io_uring_setup: not permitted (sysctl kernel.io_uring_disabled, or a seccomp filter)")):
    deny = [DENY, "io_uring_setup", errno_name]
    d, port = start([], wrapper=deny)
    try:
        want = "UDP data path: epoll (net.io = auto; io_uring unavailable: %s)" % why
        t.ok(want in d.log(), "io_uring_setup fails with %s: auto falls back to epoll and says why" % errno_name,
             d.log())
        t.ok(binding_ok(port), "io_uring_setup fails with %s: the epoll path answers" % errno_name)
    finally:
        rc, log = d.stop()
        t.ok(d.clean(), "fallback (%s): stops cleanly" % errno_name, log[-3000:])
        d.close()
    args = deny + [os.environ.get("MEETLITED", os.path.join(TOP_BUILDDIR, "meetlited")),
                   "--set", "turn.listen=udp://127.0.0.1:%d" % free_port(), "--set", "net.io=uring"]
    p = subprocess.run(args, capture_output=True, text=True, timeout=30)
    out = p.stdout + p.stderr
    t.ok(p.returncode != 0 and "net.io = uring, but io_uring cannot serve UDP here: %s" % why in out
         and "ready" not in out,
         "io_uring_setup fails with %s: net.io = uring is a start error that says why" % errno_name,
         "status %d:\n%s" % (p.returncode, out))

# a kernel that sets rings up but refuses to enter them: the probe's real round trip catches it
d, port = start([], wrapper=[DENY, "io_uring_enter", "EPERM"])
try:
    log = d.log()
    t.ok("UDP data path: epoll (net.io = auto; io_uring unavailable: io_uring_enter: " in log,
         "io_uring_enter refused: auto falls back to epoll", log)
    t.ok(binding_ok(port), "io_uring_enter refused: the epoll path answers")
finally:
    rc, log = d.stop()
    t.ok(d.clean(), "fallback (io_uring_enter): stops cleanly", log[-3000:])
    d.close()

sys.exit(t.done())
