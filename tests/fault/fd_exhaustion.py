#!/usr/bin/env python3
"""Descriptor exhaustion (issue #13, failure 1): meetlited under an open-file limit of 300
(RLIMIT_NOFILE set in the child before exec) and 350 idle TCP connections from one address to
the TURN TCP listener and as many to the control plane's HTTP port.

Part 1, the limits left to their defaults: net.max-streams and control.max-connections are
derived from the limit (and one address gets half of each), so the flood is refused at accept,
counted in /metrics, and the process never runs out of descriptors: the CPU stays low, the log
stays small, a UDP allocation made before keeps relaying, the admin /healthz and the API's
/api/v1/health answer (the API from another address), another address still allocates over TCP,
and once the idle connections close the flooding address is served again.

Part 2, limits set far above the descriptor limit: the kernel's EMFILE is reached. Accepting
pauses with a backoff instead of spinning (CPU low, log bounded, pauses counted), the allocation
keeps relaying, the admin /healthz answers on the HTTP layer's reserved descriptor, and
everything recovers by itself once the idle connections close.

Before the fix: 94 % CPU in accept loops, about 15 MB/s of "Too many open files" and
"accept: errno 24" lines, and no health probe answered."""

import http.client
import os
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mladmin import TOKEN, AdminApi  # noqa: E402
from mlcontrol import TURN_SECRET, Postgres, control_sets, migrate  # noqa: E402
from mltest import SUCCESS, Daemon, Tap, free_port, rest_credential  # noqa: E402
from turnclient import Peer, TurnClient  # noqa: E402

LIMIT = 300
FLOOD = 350
t = Tap()

# the test itself holds the flood: it needs more than the daemon may have
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = 4 * FLOOD + 256
if soft < want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard != resource.RLIM_INFINITY else want, hard))


def low_limit():
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def cpu_share(pid, seconds):
    """The daemon's CPU over a few seconds, in cores (1.0: one core busy all the time)."""
    hz = os.sysconf("SC_CLK_TCK")
    a, t0 = cpu_ticks(pid), time.time()
    time.sleep(seconds)
    return (cpu_ticks(pid) - a) / hz / (time.time() - t0)


def flood(port, n, src="127.0.0.1"):
    """n idle connections; those the kernel refuses outright are simply not kept."""
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.bind((src, 0))
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", port))
            socks.append(s)
        except OSError:
            s.close()
    return socks


def close_all(socks):
    for s in socks:
        s.close()


def api_health(port, src="127.0.0.2", timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(src, 0))
    try:
        c.request("GET", "/api/v1/health")
        return c.getresponse().status
    except OSError:
        return None
    finally:
        c.close()


def healthz(admin):
    try:
        return admin.get("/healthz", token=None, timeout=5).status
    except OSError:
        return None


def relays(cl, peer):
    """One datagram each way through the allocation."""
    cl.send_indication(peer.addr, b"ping-through")
    data, src = peer.recv(2.0)
    if data != b"ping-through":
        return False
    peer.send(src, b"pong-back")
    got = cl.recv_data(2.0)
    return got is not None and got[2] == b"pong-back"


def udp_allocation(turn_port):
    user, pw = rest_credential(TURN_SECRET, "fault-udp")
    cl = TurnClient(("127.0.0.1", turn_port), "udp")
    cl.login(user, pw)
    cl.allocate()
    peer = Peer()
    cl.create_permission(peer.addr)
    return cl, peer


def tcp_allocates(turn_port, src):
    user, pw = rest_credential(TURN_SECRET, "fault-tcp-" + src)
    try:
        cl = TurnClient(("127.0.0.1", turn_port), "tcp", local=(src, 0), timeout=3)
        cl.login(user, pw)
        ok = cl.allocate().cls == SUCCESS
        cl.close()
        return ok
    except Exception as e:  # noqa: BLE001 (refused, reset, timeout: all mean "not served")
        t.diag("tcp allocate from %s: %r" % (src, e))
        return False


def metric(text, name, labels):
    for line in text.splitlines():
        if line.startswith(name + "{") and labels in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def start(url, extra):
    http_port, turn_port, admin_port = free_port(), free_port(), free_port()
    sets = control_sets(url, http_port, turn_port, extra=[
        "admin.listen=127.0.0.1:%d" % admin_port, "admin.token=" + TOKEN,
        "turn.allow-peers=127.0.0.0/8", "turn.relay-ports=43000-43499",
        "daemon.max-open-files=0", "net.workers=2"] + list(extra))
    d = Daemon(sets, preexec_fn=low_limit, timeout=60)
    admin = AdminApi(admin_port)
    deadline = time.time() + 30
    while time.time() < deadline and api_health(http_port, "127.0.0.1") != 200:
        time.sleep(0.1)
    return d, http_port, turn_port, admin


pg = Postgres()
try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "migrations applied", r.stderr)

    # ------------------------------------------------------------ part 1: derived limits
    d, http_port, turn_port, admin = start(pg.url, [])
    try:
        log = d.log()
        t.ok("net.max-streams derived from the open-file limit 300" in log,
             "net.max-streams is derived from RLIMIT_NOFILE", log[-2000:])
        t.ok("control.max-connections derived from the open-file limit 300" in log,
             "control.max-connections is derived from RLIMIT_NOFILE")
        cl, peer = udp_allocation(turn_port)
        t.ok(relays(cl, peer), "a UDP allocation relays before the flood")

        idle = flood(turn_port, FLOOD) + flood(http_port, FLOOD)
        t.diag("%d idle connections open from 127.0.0.1" % len(idle))
        time.sleep(1.0)
        size0 = os.path.getsize(d.logf.name)
        share = cpu_share(d.proc.pid, 3.0)
        grown = os.path.getsize(d.logf.name) - size0
        t.ok(share < 0.3, "CPU under the flood stays low (%.0f %% of a core)" % (share * 100))
        t.ok(grown < 20000, "the log grows little under the flood (%d bytes in 3 s)" % grown)
        t.ok(relays(cl, peer), "the UDP allocation keeps relaying under the flood")
        t.eq(healthz(admin), 200, "admin /healthz answers under the flood")
        t.eq(api_health(http_port), 200, "GET /api/v1/health answers another address under the flood")
        t.ok(tcp_allocates(turn_port, "127.0.0.3"), "another address allocates over TCP under the flood")
        m = admin.metrics()
        turn_refused = metric(m, "meetlite_connections_refused_total", 'listener="turn",reason="per_address"')
        api_refused = metric(m, "meetlite_connections_refused_total", 'listener="api",reason="per_address"')
        t.ok(turn_refused and turn_refused > 0, "TURN streams refused per address are counted (%s)" % turn_refused)
        t.ok(api_refused and api_refused > 0, "HTTP connections refused per address are counted (%s)" % api_refused)
        lim = metric(m, "meetlite_connection_limit", 'listener="turn",scope="per_address"')
        total = metric(m, "meetlite_connection_limit", 'listener="turn",scope="total"')
        t.ok(lim and total and lim <= total / 4 and total < LIMIT,
             "the derived TURN limits fit the descriptor limit (%s total, %s per address)" % (total, lim))
        t.ok(metric(m, "meetlite_accept_pauses_total", 'listener="turn"') == 0,
             "with derived limits the process never ran out of descriptors")

        close_all(idle)
        ok = False
        deadline = time.time() + 10
        while time.time() < deadline and not ok:
            ok = tcp_allocates(turn_port, "127.0.0.1")
            if not ok:
                time.sleep(0.2)
        t.ok(ok, "after the idle connections close, the flooding address allocates again")
        t.eq(api_health(http_port, "127.0.0.1"), 200, "and its HTTP requests are answered again")
        cl.close()
        peer.close()
    finally:
        t.ok(d.clean(), "part 1: clean exit, no sanitizer report", d.log()[-3000:])
        d.close()

    # ------------------------------------------------------------ part 2: the real EMFILE
    d, http_port, turn_port, admin = start(pg.url, [
        "net.max-streams=100000", "net.max-streams-per-address=0",
        "control.max-connections=100000", "control.max-connections-per-address=0"])
    try:
        t.ok("exceeds the open-file limit 300" in d.log(), "a net.max-streams above the limit is warned about")
        cl, peer = udp_allocation(turn_port)
        t.ok(relays(cl, peer), "part 2: a UDP allocation relays before the flood")
        idle = flood(turn_port, FLOOD) + flood(http_port, FLOOD)
        time.sleep(1.0)
        size0 = os.path.getsize(d.logf.name)
        share = cpu_share(d.proc.pid, 3.0)
        grown = os.path.getsize(d.logf.name) - size0
        t.ok(share < 0.3, "at EMFILE the CPU stays low (%.0f %% of a core)" % (share * 100))
        t.ok(grown < 20000, "at EMFILE the log grows little (%d bytes in 3 s)" % grown)
        log = d.log()
        t.ok("not accepting for" in log and "Too many open files" in log,
             "the pause is logged with its cause", log[-2000:])
        t.ok("Error from accept() call" not in log and "accept: errno 24" not in log,
             "neither libevent's nor libwebsockets' accept error floods the log")
        t.ok(relays(cl, peer), "at EMFILE the UDP allocation keeps relaying")
        for i in range(3):
            t.eq(healthz(admin), 200, "at EMFILE admin /healthz still answers, on its reserved descriptor (%d)" % (i + 1))

        close_all(idle)
        deadline = time.time() + 10
        h = a = None
        while time.time() < deadline and (h != 200 or a != 200):
            h, a = healthz(admin), api_health(http_port, "127.0.0.1")
            time.sleep(0.2)
        t.eq(h, 200, "after the idle connections close, admin /healthz answers again")
        t.eq(a, 200, "and GET /api/v1/health")
        t.ok(tcp_allocates(turn_port, "127.0.0.1"), "and a TCP allocation succeeds")
        m = admin.metrics()
        paused = metric(m, "meetlite_accept_pauses_total", 'listener="turn"')
        api_paused = metric(m, "meetlite_accept_pauses_total", 'listener="api"')
        t.ok(paused and paused > 0, "the TURN listener's pauses are counted (%s)" % paused)
        t.ok(api_paused and api_paused > 0, "the API listener's pauses are counted (%s)" % api_paused)
        t.ok("accepting again after" in d.log(), "the end of the pause is logged")
        t.ok(relays(cl, peer), "the UDP allocation still relays")
        cl.close()
        peer.close()
    finally:
        t.ok(d.clean(), "part 2: clean exit, no sanitizer report", d.log()[-3000:])
        d.close()
finally:
    pg.close()
t.done()
