"""systemd's notify protocol (Type=notify, issue #15): the test is the service manager. It listens
on a NOTIFY_SOCKET of its own (a path, then an abstract '@' name) and checks what meetlited
says: READY=1 only once STUN answers (and, with a database, once PostgreSQL answers, or after
database.connect-timeout without it),
RELOADING=1 with MONOTONIC_USEC then READY=1 around SIGHUP (also a refused reload), WATCHDOG=1
every third of WATCHDOG_USEC, none when WATCHDOG_PID names another process, STOPPING=1 at
SIGTERM."""

import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import BINDING, REQUEST, Daemon, Msg, Tap, free_port, udp_exchange  # noqa: E402
from mlcontrol import Postgres, control_sets  # noqa: E402

t = Tap()


class Manager:
    """A notify socket: every datagram with its arrival time."""

    def __init__(self, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "meetlite-test-%d-%d" % (os.getpid(), time.monotonic_ns())
            self.sock.bind("\0" + name)
            self.env = "@" + name
            self.dir = None
        else:
            self.dir = tempfile.mkdtemp(prefix="ml-notify-")
            path = os.path.join(self.dir, "notify")
            self.sock.bind(path)
            self.env = path
        self.msgs = []  # (monotonic time, {key: value})

    def poll(self, timeout):
        """Reads what arrived within timeout seconds."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(4096)
                fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
                self.msgs.append((time.monotonic(), fields))
                self.sock.settimeout(0.01)
        except socket.timeout:
            pass

    def wait(self, key, value=None, after=0, timeout=20.0):
        """The first message at index >= after with key (=value); its index, or -1."""
        deadline = time.monotonic() + timeout
        while True:
            for i in range(after, len(self.msgs)):
                f = self.msgs[i][1]
                if key in f and (value is None or f[key] == value):
                    return i
            left = deadline - time.monotonic()
            if left <= 0:
                return -1
            self.poll(min(left, 0.1))

    def count(self, key, since=0.0):
        return sum(1 for ts, f in self.msgs if key in f and ts >= since)

    def close(self):
        self.sock.close()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def stun_ok(port):
    try:
        answer = udp_exchange(("127.0.0.1", port), Msg(BINDING, REQUEST).encode(), timeout=1.0)
        return answer is not None
    except OSError:
        return False


def write_conf(path, level):
    with open(path, "w") as f:
        f.write("[log]\nlevel = %s\n" % level)


# ---------------------------------------------------------------- a relay, a path socket, a watchdog
tmp = tempfile.mkdtemp(prefix="ml-notify-conf-")
conf = os.path.join(tmp, "meetlite.conf")
write_conf(conf, "info")
m = Manager()
port = free_port()
d = Daemon(["turn.listen=udp://127.0.0.1:%d" % port, "net.workers=2", "control.listen=",
            "admin.token="], config=conf, wait_for=None,
           env={"NOTIFY_SOCKET": m.env, "WATCHDOG_USEC": "600000"})
try:
    i = m.wait("READY", "1")
    t.ok(i >= 0, "READY=1 on the path socket", d.log())
    t.ok(stun_ok(port), "at READY=1 the STUN listener answers")
    f = m.msgs[i][1] if i >= 0 else {}
    t.eq(f.get("MAINPID"), str(d.proc.pid), "READY=1 names the main PID")
    t.ok(f.get("STATUS", "").startswith("Running"), "READY=1 carries a STATUS line", f)

    # WATCHDOG_USEC=600 ms: a ping every 200 ms while both workers answer
    start = time.monotonic()
    m.poll(2.0)
    while time.monotonic() - start < 2.0:
        m.poll(2.0 - (time.monotonic() - start))
    pings = m.count("WATCHDOG", since=start)
    t.ok(5 <= pings <= 14, "WATCHDOG=1 about every 200 ms with WATCHDOG_USEC=600000 (%d in 2 s)" % pings)
    times = [ts for ts, fl in m.msgs if "WATCHDOG" in fl and ts >= start]
    gaps = [b - a for a, b in zip(times, times[1:])]
    t.ok(gaps and max(gaps) < 0.6, "no gap between pings reaches the timeout (max %.3f s)" % max(gaps or [9]))
    t.ok("watchdog: ping every 200 ms" in d.log(), "the log says how often it pings")

    # SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1
    n0 = len(m.msgs)
    before_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    write_conf(conf, "notice")
    d.signal(signal.SIGHUP)
    r = m.wait("RELOADING", "1", after=n0)
    t.ok(r >= 0, "RELOADING=1 on SIGHUP", d.log())
    fr = m.msgs[r][1] if r >= 0 else {}
    mono = int(fr.get("MONOTONIC_USEC", "0") or 0)
    after_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    t.ok(before_us <= mono <= after_us, "RELOADING=1 carries MONOTONIC_USEC of CLOCK_MONOTONIC", fr)
    k = m.wait("READY", "1", after=max(r, n0))
    t.ok(k > r >= 0, "READY=1 after the reload")
    t.ok(d.wait_log("reloaded log.level"), "the reload took the new level")

    # a broken file: the reload is refused, and the manager still hears READY=1
    n0 = len(m.msgs)
    with open(conf, "w") as fh:
        fh.write("[log]\nlevel = loud\n")
    d.signal(signal.SIGHUP)
    r = m.wait("RELOADING", "1", after=n0)
    k = m.wait("READY", "1", after=max(r, n0))
    t.ok(r >= 0 and k > r, "a refused reload also ends with READY=1")
    t.ok(k > r >= 0 and "refused" in m.msgs[k][1].get("STATUS", ""), "its STATUS says it was refused",
         m.msgs[k][1] if k >= 0 else None)
    t.ok(d.alive() and stun_ok(port), "still serving after the refused reload")

    # SIGTERM: STOPPING=1, then a clean exit
    n0 = len(m.msgs)
    d.signal(signal.SIGTERM)
    s = m.wait("STOPPING", "1", after=n0)
    t.ok(s >= 0, "STOPPING=1 at SIGTERM")
    d.proc.wait(30)  # one SIGTERM: clean() must not send a second
    t.ok(d.clean(), "clean exit", "rc=%s\n%s" % (d.rc, d.log()[-3000:]))
finally:
    d.close()
    m.close()

# ---------------------------------------------------------------- an abstract socket, the database
m = Manager(abstract=True)
pg = Postgres()
try:
    http_port, turn_port = free_port(), free_port()
    sets = control_sets(pg.url, http_port, turn_port, ["database.migrate-on-start=yes", "admin.token="])
    # WATCHDOG_PID of another process: this daemon must not ping
    d = Daemon(sets, wait_for=None,
               env={"NOTIFY_SOCKET": m.env, "WATCHDOG_USEC": "300000", "WATCHDOG_PID": "1"})
    try:
        i = m.wait("READY", "1", timeout=60)
        t.ok(i >= 0, "READY=1 on the abstract socket", d.log())
        t.ok(stun_ok(turn_port), "at READY=1 STUN answers")
        try:
            c = socket.create_connection(("127.0.0.1", http_port), timeout=2)
            c.close()
            http_up = True
        except OSError:
            http_up = False
        t.ok(http_up, "at READY=1 the control plane accepts connections")
        t.ok(re.search(r"database schema up to date", d.log()) is not None,
             "READY=1 came after the migrations")
        ready_at = m.msgs[i][0] if i >= 0 else time.monotonic()
        m.poll(1.0)
        t.eq(m.count("WATCHDOG"), 0, "no WATCHDOG=1 when WATCHDOG_PID names another process")
        d.signal(signal.SIGTERM)
        t.ok(m.wait("STOPPING", "1") >= 0, "STOPPING=1 on the abstract socket")
        d.proc.wait(30)
        t.ok(d.clean(), "clean exit", "rc=%s\n%s" % (d.rc, d.log()[-3000:]))
        t.ok(ready_at > 0, "READY=1 seen before the stop")
    finally:
        d.close()
finally:
    pg.close()
    m.close()

# ---------------------------------------------------------------- a database that does not answer
# A TURN-only node with database.url: READY=1 waits for PostgreSQL up to database.connect-timeout,
# then comes anyway (the relay runs without it) and says so.
m = Manager()
nodb = tempfile.mkdtemp(prefix="ml-nodb-")
port = free_port()
started = time.monotonic()
d = Daemon(["turn.listen=udp://127.0.0.1:%d" % port, "net.workers=1", "control.listen=", "admin.token=",
            "database.url=host=%s port=1 dbname=none user=none" % nodb, "database.connect-timeout=2s"],
           wait_for=None, env={"NOTIFY_SOCKET": m.env})
try:
    i = m.wait("READY", "1", timeout=30)
    waited = (m.msgs[i][0] - started) if i >= 0 else 0
    t.ok(i >= 0 and waited >= 1.9, "without the database READY=1 waits database.connect-timeout (%.1f s)" % waited, d.log())
    t.ok(i >= 0 and "database does not answer" in m.msgs[i][1].get("STATUS", ""), "and its STATUS says why",
         m.msgs[i][1] if i >= 0 else None)
    t.ok(stun_ok(port), "the relay serves meanwhile")
    d.signal(signal.SIGTERM)
    d.proc.wait(30)
    t.ok(d.clean(), "clean exit", "rc=%s\n%s" % (d.rc, d.log()[-3000:]))
finally:
    d.close()
    m.close()
    shutil.rmtree(nodb, ignore_errors=True)

# ---------------------------------------------------------------- no NOTIFY_SOCKET: nothing changes
port = free_port()
d = Daemon(["turn.listen=udp://127.0.0.1:%d" % port, "net.workers=1", "control.listen=",
            "admin.token="], env={"NOTIFY_SOCKET": ""})
try:
    t.ok(stun_ok(port), "without NOTIFY_SOCKET the daemon runs as before")
    t.ok("notify" not in d.log(), "and says nothing about notifying", d.log())
    t.ok(d.clean(), "clean exit", "rc=%s\n%s" % (d.rc, d.log()[-3000:]))
finally:
    d.close()
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(t.done())
