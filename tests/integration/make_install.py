"""make install and the operator's configuration (issue #15): the first install puts the sample
at $(sysconfdir)/meetlite/meetlite.conf, mode 0640, with the unit and the daemon; a second install
never overwrites an edited file (the new sample goes to meetlite.conf.dist); uninstall keeps the
edited file and removes the rest."""

import os
import shutil
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import TOP_BUILDDIR, TOP_SRCDIR, Tap  # noqa: E402

t = Tap()
dest = tempfile.mkdtemp(prefix="ml-install-")


# The directories of a packaged install, whatever this build was configured with.
DIRS = {"prefix": "/usr", "sysconfdir": "/etc", "systemdsystemunitdir": "/lib/systemd/system"}


def make(*targets):
    r = subprocess.run(["make", "-C", TOP_BUILDDIR, "DESTDIR=" + dest]
                       + ["%s=%s" % kv for kv in DIRS.items()] + list(targets),
                       capture_output=True, text=True, timeout=600)
    return r.returncode, r.stdout + r.stderr


def var(name):
    return {"meetliteconfdir": "/etc/meetlite", "systemdsystemunitdir": "/lib/systemd/system",
            "sbindir": "/usr/sbin", "pkgdatadir": "/usr/share/meetlite"}[name]


try:
    rc, out = make("install")
    t.ok(rc == 0, "make install", out[-3000:])
    confdir = dest + var("meetliteconfdir")
    conf = os.path.join(confdir, "meetlite.conf")
    unitdir = dest + var("systemdsystemunitdir")
    with open(os.path.join(TOP_SRCDIR, "etc", "meetlite.conf")) as f:
        sample = f.read()
    t.ok(os.path.isfile(conf) and open(conf).read() == sample, "the sample is installed as meetlite.conf", confdir)
    t.eq(stat.S_IMODE(os.stat(conf).st_mode) if os.path.exists(conf) else None, 0o640,
         "meetlite.conf is mode 0640")
    t.ok(os.path.isfile(os.path.join(confdir, "meetlite.conf.dist")), "and the sample as meetlite.conf.dist")
    t.ok(os.path.isfile(os.path.join(unitdir, "meetlited.service")), "meetlited.service installed in %s" % unitdir)
    t.ok(os.access(dest + var("sbindir") + "/meetlited", os.X_OK), "meetlited installed")
    t.ok(os.path.isfile(dest + var("pkgdatadir") + "/web/index.html"), "the web client installed")
    tree_sql = sorted(f for f in os.listdir(os.path.join(TOP_SRCDIR, "sql")) if f.endswith(".sql"))
    inst = dest + var("pkgdatadir") + "/sql"
    inst_sql = sorted(f for f in os.listdir(inst) if f.endswith(".sql")) if os.path.isdir(inst) else []
    t.eq(inst_sql, tree_sql, "every migration of sql/ is installed (each one in a dist_sql_DATA)")

    edited = sample + "\n; edited by the operator\n[log]\nlevel = notice\n"
    with open(conf, "w") as f:
        f.write(edited)
    os.unlink(os.path.join(confdir, "meetlite.conf.dist"))
    rc, out = make("install")
    t.ok(rc == 0, "make install again", out[-3000:])
    t.eq(open(conf).read(), edited, "the second install keeps the edited meetlite.conf")
    t.ok("KEEP" in out, "and says so", out[-2000:])
    t.ok(os.path.isfile(os.path.join(confdir, "meetlite.conf.dist")), "the new sample goes to meetlite.conf.dist")

    rc, out = make("uninstall")
    t.ok(rc == 0, "make uninstall", out[-3000:])
    t.ok(os.path.isfile(conf) and open(conf).read() == edited, "uninstall keeps the edited meetlite.conf")
    t.ok(not os.path.exists(os.path.join(confdir, "meetlite.conf.dist")), "uninstall removes meetlite.conf.dist")
    t.ok(not os.path.exists(os.path.join(unitdir, "meetlited.service")), "uninstall removes the unit")
finally:
    shutil.rmtree(dest, ignore_errors=True)

sys.exit(t.done())
