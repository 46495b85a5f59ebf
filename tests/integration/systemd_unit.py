"""meetlited.service (issue #15): systemd-analyze verify passes on the unit make builds (with
ExecStart pointing at this build's meetlited, and the man pages of Documentation= on a MANPATH),
and fails on a broken copy, so the check can fail; the unit has the type, user, capability and
hardening the deployment guide promises; its ExecReload checks the file before it signals.
Port 443 without root (issue #14, item 3): what AmbientCapabilities= does, done with setpriv
(systemd is not PID 1 here): an unprivileged meetlited cannot bind a port below 1024, and with
the unit's ambient capability, and nothing else, it binds one and answers STUN."""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import BINDING, MEETLITED, REQUEST, TOP_BUILDDIR, TOP_SRCDIR, Msg, Tap, udp_exchange  # noqa: E402

t = Tap()
unit_path = os.path.join(TOP_BUILDDIR, "etc", "systemd", "meetlited.service")
with open(unit_path) as f:
    unit = f.read()

tmp = tempfile.mkdtemp(prefix="ml-unit-")


def verify(text, name="meetlited.service"):
    d = tempfile.mkdtemp(dir=tmp)
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write(text)
    env = dict(os.environ, MANPATH=os.path.join(tmp, "man"), SYSTEMD_LOG_COLOR="0")
    r = subprocess.run(["systemd-analyze", "verify", p], capture_output=True, text=True, timeout=60,
                       env=env)
    return r.returncode, (r.stdout + r.stderr).strip()


try:
    for sec, page in (("8", "meetlited.8"), ("1", "meetlite-admin.1")):
        os.makedirs(os.path.join(tmp, "man", "man" + sec))
        shutil.copy(os.path.join(TOP_SRCDIR, "man", page), os.path.join(tmp, "man", "man" + sec))

    def directive(name):
        return re.findall(r"^%s=(.*)$" % re.escape(name), unit, re.M)

    start = directive("ExecStart")
    t.ok(len(start) == 1 and start[0].split()[0].endswith("/sbin/meetlited"), "ExecStart runs the installed meetlited", start)
    t.ok(len(start) == 1 and re.search(r"--config \S+/meetlite/meetlite\.conf$", start[0]),
         "with the installed configuration", start)
    t.ok(not re.search(r"@[a-z_]+@", unit), "make filled in every @...@ path")
    local = unit.replace(start[0].split()[0], MEETLITED)
    rc, out = verify(local)
    t.ok(rc == 0 and out == "", "systemd-analyze verify passes, with no warning", out)

    rc, out = verify(local.replace("ExecStart=" + MEETLITED, "ExecStart=/nonexistent/meetlited"))
    t.ok(rc != 0 and "not executable" in out, "verify fails when the binary is missing (the check can fail)", out)
    rc, out = verify(local.replace("ProtectSystem=strict", "ProtectSystem=bogus"))
    t.ok(out != "", "verify reports a bad value", out)

    for name, want in (("Type", "notify"), ("NotifyAccess", "main"), ("User", "meetlite"),
                       ("Group", "meetlite"), ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
                       ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"), ("NoNewPrivileges", "yes"),
                       ("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                       ("LimitNOFILE", "1048576"), ("StateDirectory", "meetlite"),
                       ("RuntimeDirectory", "meetlite"), ("Restart", "on-failure")):
        t.eq(directive(name), [want], "%s=%s" % (name, want))
    fams = directive("RestrictAddressFamilies")
    t.ok(len(fams) == 1 and set(fams[0].split()) == {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"},
         "RestrictAddressFamilies: IPv4, IPv6, unix sockets and netlink only", fams)
    wd = directive("WatchdogSec")
    t.ok(len(wd) == 1 and re.match(r"^\d+s$", wd[0]), "a watchdog is set", wd)

    # ExecReload: first the check, then the signal; a broken file stops the reload there
    reload = directive("ExecReload")
    t.ok(len(reload) == 2 and reload[0].endswith("--check-config") and reload[1] == "/bin/kill -HUP $MAINPID",
         "ExecReload checks the configuration, then sends SIGHUP", reload)
    good = os.path.join(tmp, "good.conf")
    bad = os.path.join(tmp, "bad.conf")
    shutil.copy(os.path.join(TOP_SRCDIR, "etc", "meetlite.conf"), good)
    with open(good, "a") as f:  # what an operator fills in: start (and so the check) needs it
        f.write("\n[database]\nurl = postgresql:///meetlite\n[turn]\nauth-secret = %s\n"
                "[auth]\njwt-secret = %s\n" % ("s" * 32, "j" * 40))
    with open(bad, "w") as f:
        f.write("[turn]\nlisten = udp://300.0.0.1:3478\n")
    check = reload[0].split() if reload else ["x"]
    for conf, want_ok, desc in ((good, True, "the shipped sample, filled in, passes the reload check"),
                                (bad, False, "a broken file fails the reload check (no SIGHUP is sent)")):
        args = [MEETLITED] + [a for a in check[1:]]
        args[args.index("--config") + 1] = conf
        r = subprocess.run(args, capture_output=True, text=True, timeout=30)
        t.ok((r.returncode == 0) == want_ok, desc, r.stdout + r.stderr)

    # ---------------------------------------------------------------- a port below 1024, no root
    def low_port():
        for p in range(600, 1024):
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as s:
                    u.bind(("127.0.0.1", p))
                    s.bind(("127.0.0.1", p))
                    return p
            except OSError:
                continue
        return None

    caps = directive("AmbientCapabilities")
    cap = caps[0].lower().replace("cap_", "") if caps else "none"
    if os.geteuid() != 0:
        t.ok(False, "systemd_unit.py runs as root (CI does) to try the ambient capability")
    else:
        port = low_port()
        base = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        daemon = [MEETLITED, "--set", "turn.listen=udp://127.0.0.1:%d, tcp://127.0.0.1:%d" % (port, port),
                  "--set", "control.listen=", "--set", "admin.token=", "--set", "net.workers=1",
                  "--set", "daemon.max-open-files=0"]
        r = subprocess.run(base + ["--"] + daemon, capture_output=True, text=True, timeout=60)
        t.ok(r.returncode != 0 and "Permission denied" in r.stderr,
             "without the capability, an unprivileged meetlited cannot bind port %d" % port, r.stderr[-2000:])
        logp = os.path.join(tmp, "cap.log")
        with open(logp, "w") as logf:
            p = subprocess.Popen(base + ["--inh-caps=+" + cap, "--ambient-caps=+" + cap, "--"] + daemon,
                                 stdout=logf, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 30
            while time.time() < deadline and p.poll() is None and " ready " not in open(logp).read():
                time.sleep(0.05)
            ans = udp_exchange(("127.0.0.1", port), Msg(BINDING, REQUEST).encode(), timeout=2.0) if p.poll() is None else None
            t.ok(ans is not None, "with AmbientCapabilities=%s (setpriv) it binds port %d and answers STUN" % (caps[0] if caps else "?", port),
                 open(logp).read()[-2000:])
            status = open("/proc/%d/status" % p.pid).read() if p.poll() is None else ""
            eff = re.search(r"^CapEff:\s+([0-9a-f]+)", status, re.M)
            uid = re.search(r"^Uid:\s+(\d+)", status, re.M)
            t.eq(int(eff.group(1), 16) if eff else None, 1 << 10, "its only capability is CAP_NET_BIND_SERVICE")
            t.ok(uid and int(uid.group(1)) != 0, "and it is not root", status[:300])
            p.terminate()
            p.wait(30)
            t.eq(p.returncode, 0, "it stops cleanly")
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
finally:
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(t.done())
