"""meetlited.service (issue #15): systemd-analyze verify passes on the unit make builds (with
ExecStart pointing at this build's meetlited, and the man pages of Documentation= on a MANPATH),
and fails on a broken copy, so the check can fail; the unit has the type, user, capability and
hardening the deployment guide promises; its ExecReload checks the file before it signals."""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import MEETLITED, TOP_BUILDDIR, TOP_SRCDIR, Tap  # noqa: E402

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
    with open(bad, "w") as f:
        f.write("[turn]\nlisten = udp://300.0.0.1:3478\n")
    check = reload[0].split() if reload else ["x"]
    for conf, want_ok, desc in ((good, True, "the shipped sample passes the reload check"),
                                (bad, False, "a broken file fails the reload check (no SIGHUP is sent)")):
        args = [MEETLITED] + [a for a in check[1:]]
        args[args.index("--config") + 1] = conf
        r = subprocess.run(args, capture_output=True, text=True, timeout=30)
        t.ok((r.returncode == 0) == want_ok, desc, r.stdout + r.stderr)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(t.done())
