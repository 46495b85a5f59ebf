"""The Debian package (issue #15), end to end on this machine (as root, as CI runs): make dist,
the tarball holds what the README's commands use (every file git tracks, when run from a git
checkout), dpkg-buildpackage -us -uc -b builds the package from the unpacked tarball, lintian
finds no error, the package holds the daemon, CLI, unit, man pages, migrations and web client,
with meetlite.conf a conffile of mode 0640; apt installs it, it creates the system user
meetlite and gives the file to root:meetlite; the installed unit passes systemd-analyze verify;
the installed meetlited, run as meetlite with the installed configuration (edited as an operator
would: a database URL, a JWT secret, and free loopback ports since other jobs share this
machine), migrates the database from /usr/share/meetlite/sql, answers coturn's
turnutils_stunclient and serves the web client from /usr/share/meetlite/web; a reinstall keeps
the edited configuration; apt-get purge (dpkg --purge) leaves the machine as it was (the user too, when the
test made it). Takes a few minutes: most of it is the optimised build."""

import glob
import grp
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import TOP_BUILDDIR, TOP_SRCDIR, Tap, free_port  # noqa: E402
from mlcontrol import Postgres  # noqa: E402

t = Tap()
APT_ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
APT = ["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=600", "--no-install-recommends"]
# Files git tracks that the tarball leaves out on purpose: the session machinery's runner and a
# placeholder that keeps m4/ in git.
NOT_DISTRIBUTED = {".ci/run", "m4/.gitkeep"}


def run(args, timeout=600, **kw):
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        return -1, "timed out after %ss: %s\n%s" % (timeout, " ".join(args), e.stdout or "")
    return r.returncode, r.stdout + r.stderr


def installed(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    return "install ok installed" in r.stdout


if os.geteuid() != 0:
    t.ok(False, "package.py installs a package: it runs as root (CI does)")
    sys.exit(t.done())
if installed("meetlite"):
    t.bail("the meetlite package is installed on this machine already: remove it first "
           "(dpkg --purge meetlite); this test installs and purges its own")

user_before = True
try:
    pwd.getpwnam("meetlite")
except KeyError:
    user_before = False

work = tempfile.mkdtemp(prefix="mlpkg-", dir="/var/tmp")
os.chmod(work, 0o755)
pg = None
daemon = None
was_installed = False
try:
    # ---------------------------------------------------------------- the tarball
    before = set(glob.glob(os.path.join(TOP_BUILDDIR, "meetlite-*.tar.gz")))
    rc, out = run(["make", "-C", TOP_BUILDDIR, "dist"], timeout=900)
    t.ok(rc == 0, "make dist", out[-3000:])
    tarballs = sorted(glob.glob(os.path.join(TOP_BUILDDIR, "meetlite-*.tar.gz")), key=os.path.getmtime)
    tarball = tarballs[-1] if tarballs else None
    if tarball and tarball not in before:
        # ours: into the work directory, so that the build tree stays as it was (distcleancheck)
        tarball = shutil.move(tarball, os.path.join(work, os.path.basename(tarball)))
    with tarfile.open(tarball) as tf:
        names = tf.getnames()
        top = names[0].split("/")[0]
        tf.extractall(work)
    files = {n[len(top) + 1:] for n in names if n.startswith(top + "/")}
    needed = ["autogen.sh", "configure", "scripts/start.sh", "scripts/test.sh", "scripts/deps.sh",
              "tests/lib/pg.sh", "tests/lib/mltest.py", "sql/001_init.sql", "src/web/index.html",
              "etc/meetlite.conf", "etc/systemd/meetlited.service.in", "debian/rules",
              "debian/control", "Containerfile", "compose.yaml", "container/entrypoint.sh",
              "docs/deploy.md", "man/meetlited.8", "tests/fuzz/fuzz_stun.c",
              "tests/browser/package.json", ".github/workflows/ci.yml"]
    t.eq([n for n in needed if n not in files], [], "the tarball has what the README's commands and the CI use")
    if os.path.exists(os.path.join(TOP_SRCDIR, ".git")):
        rc, out = run(["git", "-C", TOP_SRCDIR, "ls-files"])
        tracked = set(out.split()) if rc == 0 else set()
        t.eq(sorted(tracked - files - NOT_DISTRIBUTED), [], "every file git tracks is in the tarball")
    else:
        # running from the tarball itself (make distcheck): it is its own list
        t.ok(os.path.isfile(os.path.join(TOP_SRCDIR, "debian", "rules")), "this tree is a tarball's, with debian/")

    # ---------------------------------------------------------------- the build
    src = os.path.join(work, top)
    start = time.time()
    rc, out = run(["nice", "-n", "10", "dpkg-buildpackage", "-us", "-uc", "-b", "-j2"], cwd=src, timeout=2400)
    t.ok(rc == 0, "dpkg-buildpackage -us -uc -b (%.0f s)" % (time.time() - start), out[-4000:])
    debs = glob.glob(os.path.join(work, "meetlite_*_*.deb"))
    deb = debs[0] if debs else os.path.join(work, "missing.deb")
    t.ok(len(debs) == 1, "one meetlite package", debs)

    rc, out = run(["lintian", "--fail-on", "error", "--tag-display-limit", "0", deb], timeout=600)
    t.ok(rc == 0 and not re.search(r"^E: ", out, re.M), "lintian reports no error", out)
    t.diag("lintian:\n" + (out.strip() or "(nothing)"))

    rc, listing = run(["dpkg-deb", "-c", deb])
    for path in ("./usr/sbin/meetlited", "./usr/bin/meetlite-admin", "./lib/systemd/system/meetlited.service",
                 "./usr/share/man/man8/meetlited.8.gz", "./usr/share/man/man1/meetlite-admin.1.gz",
                 "./usr/share/meetlite/sql/001_init.sql", "./usr/share/meetlite/web/index.html",
                 "./usr/share/doc/meetlite/deploy.md.gz"):
        t.ok(re.search(r" %s$" % re.escape(path), listing, re.M), "the package holds %s" % path[1:])
    m = re.search(r"^(\S+) (\S+)\s+\d+ .* \./etc/meetlite/meetlite\.conf$", listing, re.M)
    t.eq(m.group(1) if m else None, "-rw-r-----", "meetlite.conf is shipped mode 0640")
    rc, conffiles = run(["dpkg-deb", "-I", deb, "conffiles"])
    t.eq(conffiles.split(), ["/etc/meetlite/meetlite.conf"], "meetlite.conf is a conffile")

    # ---------------------------------------------------------------- install
    rc, out = run(APT + ["install", deb], env=APT_ENV, timeout=900)
    was_installed = installed("meetlite")
    t.ok(rc == 0 and was_installed, "apt install ./meetlite_*.deb", out[-3000:])
    try:
        pw = pwd.getpwnam("meetlite")
        gr = grp.getgrnam("meetlite")
    except KeyError:
        pw = gr = None
    t.ok(pw is not None and pw.pw_uid < 1000 and pw.pw_shell.endswith("nologin"),
         "the system user meetlite exists (uid < 1000, no login shell)", pw)
    st = os.stat("/etc/meetlite/meetlite.conf") if os.path.exists("/etc/meetlite/meetlite.conf") else None
    t.ok(st and stat.S_IMODE(st.st_mode) == 0o640 and st.st_uid == 0 and gr and st.st_gid == gr.gr_gid,
         "/etc/meetlite/meetlite.conf is root:meetlite 0640", st)
    rc, out = run(["systemd-analyze", "verify", "/lib/systemd/system/meetlited.service"], timeout=120)
    t.ok(rc == 0 and out.strip() == "", "the installed unit passes systemd-analyze verify", out)
    rc, out = run(["/usr/sbin/meetlited", "--version"])
    t.ok(rc == 0 and out.startswith("meetlited "), "the installed meetlited runs", out)

    # ---------------------------------------------------------------- the installed daemon
    pg = Postgres()
    # the operator's edits: the database, a secret, this machine's free ports (later keys win)
    sport, hport = free_port(), free_port()
    with open("/etc/meetlite/meetlite.conf") as f:
        shipped = f.read()
    edits = ("\n; --- the operator's settings\n[database]\nurl = %s\n[auth]\njwt-secret = %s\n"
             "[turn]\nauth-secret = %s\nlisten = udp://127.0.0.1:%d, tcp://127.0.0.1:%d\n"
             "[control]\nlisten = 127.0.0.1:%d\n"
             % (pg.url, "pkg-test-jwt-" + os.urandom(16).hex(), "pkg-test-turn-" + os.urandom(16).hex(),
                sport, sport, hport))
    with open("/etc/meetlite/meetlite.conf", "a") as f:
        f.write(edits)
    edited = shipped + edits
    as_ml = ["runuser", "-u", "meetlite", "--"]
    rc, out = run(as_ml + ["/usr/sbin/meetlited", "--config", "/etc/meetlite/meetlite.conf", "--migrate"])
    t.ok(rc == 0 and "/usr/share/meetlite/sql" in out, "meetlited --migrate as meetlite, from /usr/share/meetlite/sql", out)

    logf = open(os.path.join(work, "daemon.log"), "w")
    # setpriv execs (runuser would stay as a parent and SIGKILL the daemon 2 s after a SIGTERM)
    daemon = subprocess.Popen(["setpriv", "--reuid=meetlite", "--regid=meetlite", "--init-groups", "--",
                               "/usr/sbin/meetlited", "--config", "/etc/meetlite/meetlite.conf"],
                              stdout=logf, stderr=subprocess.STDOUT)

    def log():
        with open(os.path.join(work, "daemon.log"), errors="replace") as fh:
            return fh.read()

    deadline = time.time() + 60
    while time.time() < deadline and " ready " not in log() and daemon.poll() is None:
        time.sleep(0.1)
    t.ok(" ready " in log(), "the installed meetlited starts with the installed configuration", log())
    rc, out = run(["turnutils_stunclient", "-p", str(sport), "127.0.0.1"], timeout=30)
    t.ok(rc == 0 and re.search(r"UDP reflexive addr: 127\.0\.0\.1:\d+", out), "turnutils_stunclient gets its address", out)
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/" % hport, timeout=10) as resp:
            page = resp.read().decode(errors="replace")
        with open("/usr/share/meetlite/web/index.html") as fh:
            want = fh.read()
    except OSError as e:
        page, want = str(e), None
    t.eq(page, want, "the control plane serves the installed web client")
    t.ok("/usr/share/meetlite/web" in log(), "from /usr/share/meetlite/web", log())
    uid = None
    try:
        with open("/proc/%d/status" % daemon.pid) as fh:
            uid = int(re.search(r"^Uid:\s+(\d+)", fh.read(), re.M).group(1))
    except (OSError, ValueError, AttributeError):
        pass
    t.eq(uid, pw.pw_uid if pw else -1, "it runs as meetlite")
    daemon.terminate()
    try:
        daemon.wait(30)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
    logf.close()
    t.ok(daemon.returncode == 0 and "stopped" in log(), "SIGTERM stops it cleanly", log()[-2000:])
    daemon = None

    # ---------------------------------------------------------------- reinstall
    rc, out = run(APT + ["install", "--reinstall", deb], env=APT_ENV, timeout=900)
    t.ok(rc == 0, "apt install --reinstall", out[-3000:])
    with open("/etc/meetlite/meetlite.conf") as f:
        t.ok(f.read() == edited, "the reinstall keeps the edited meetlite.conf")
    st = os.stat("/etc/meetlite/meetlite.conf")
    t.ok(stat.S_IMODE(st.st_mode) == 0o640 and gr and st.st_gid == gr.gr_gid, "still root:meetlite 0640")
    rc, out = run(APT + ["install", "--reinstall", "-o", "Dpkg::Options::=--force-confnew", deb], env=APT_ENV, timeout=900)
    with open("/etc/meetlite/meetlite.conf") as f:
        t.ok(rc == 0 and f.read() == edited,
             "even with --force-confnew: the packaged file did not change, so dpkg keeps the edit", out[-2000:])
finally:
    if daemon is not None and daemon.poll() is None:
        daemon.kill()
        daemon.wait()
    if pg is not None:
        pg.close()
    if was_installed or installed("meetlite"):
        # apt-get waits for the dpkg lock (other jobs may hold it); purge as dpkg --purge does
        rc, out = run(APT + ["purge", "meetlite"], env=APT_ENV, timeout=900)
        t.ok(rc == 0 and not installed("meetlite"), "the package is purged", out[-3000:])
        t.ok(not os.path.exists("/etc/meetlite") and not os.path.exists("/usr/sbin/meetlited"),
             "purge leaves no file behind")
    if not user_before:
        try:
            pwd.getpwnam("meetlite")
            run(["deluser", "--system", "--quiet", "meetlite"])
        except KeyError:
            pass
        try:
            grp.getgrnam("meetlite")
            run(["delgroup", "--system", "--quiet", "meetlite"])
        except KeyError:
            pass
    shutil.rmtree(work, ignore_errors=True)

sys.exit(t.done())
