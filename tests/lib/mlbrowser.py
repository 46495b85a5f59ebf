"""Browsers for meetlite's tests, both from Debian: Chromium driven by npm's playwright-core and
Firefox ESR driven by npm's puppeteer-core over WebDriver BiDi. The npm packages are installed
from tests/browser/package-lock.json into the build tree (never into the source tree); neither
package downloads a browser."""

import base64
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time

from mltest import TOP_BUILDDIR, TOP_SRCDIR

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FIREFOX = os.environ.get("FIREFOX", "/usr/bin/firefox-esr")
LOCK_STAMP = ".meetlite-package-lock.json"  # the lock file node_modules was installed from


def node_dir():
    """A directory with the browser tests' scripts and their node_modules, made on first use
    and again when package-lock.json changes. Browser tests may start at the same time
    (make -j): one installs while the others wait on a file lock."""
    src = os.path.join(TOP_SRCDIR, "tests", "browser")
    dst = os.path.join(TOP_BUILDDIR, "tests", "browser-run")
    os.makedirs(dst, exist_ok=True)
    with open(os.path.join(dst, ".install-lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for name in os.listdir(src):
            if name.endswith((".mjs", ".json", ".html", ".js", ".css")):
                shutil.copy(os.path.join(src, name), os.path.join(dst, name))
        stamp = os.path.join(dst, "node_modules", LOCK_STAMP)
        with open(os.path.join(dst, "package-lock.json"), "rb") as f:
            want = f.read()
        have = None
        if os.path.exists(stamp):
            with open(stamp, "rb") as f:
                have = f.read()
        if have != want:
            env = dict(os.environ, PUPPETEER_SKIP_DOWNLOAD="1", PUPPETEER_SKIP_CHROME_DOWNLOAD="1",
                       PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
            r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=dst,
                               capture_output=True, text=True, timeout=600, env=env)
            if r.returncode != 0:
                raise RuntimeError("npm ci failed:\n" + r.stdout + r.stderr)
            with open(stamp, "wb") as f:
                f.write(want)
    return dst


def spki_pin(cert):
    """The SHA-256 of cert's public key (SubjectPublicKeyInfo, DER), base64: what Chromium's
    --ignore-certificate-errors-spki-list takes to trust that one self-signed certificate."""
    pub = subprocess.run(["openssl", "x509", "-in", cert, "-pubkey", "-noout"], capture_output=True,
                         check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True,
                         check=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def loopback_only():
    """True when no interface but loopback has an address (Chromium then needs a flag)."""
    out = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True).stdout
    return all(line.split()[1] == "lo" for line in out.splitlines() if " inet" in line)


def output_dir(name):
    d = os.path.join(TOP_BUILDDIR, "tests", "output", name)
    os.makedirs(d, exist_ok=True)
    return d


def firefox_profile(path, ca_pem=None):
    """A Firefox profile directory whose NSS database (cert9.db, made with certutil from
    libnss3-tools) trusts ca_pem for TLS servers. Firefox verifies a turns: server's
    certificate like a web site's; this is how a test CA is trusted without turning
    verification off. puppeteer-core adds its preferences (user.js) when it launches."""
    os.makedirs(path, exist_ok=True)
    subprocess.run(["certutil", "-N", "-d", "sql:" + path, "--empty-password"], check=True,
                   capture_output=True)
    if ca_pem:
        subprocess.run(["certutil", "-A", "-n", "meetlite test CA", "-t", "C,,", "-i", ca_pem,
                        "-d", "sql:" + path], check=True, capture_output=True)
    return path


def stop_browsers(pid_file):
    """Stops what a browser script left running: each line of pid_file is the PID of a browser
    it launched (puppeteer-core and playwright-core start each browser as the leader of its own
    process group, so the group holds the browser's content and socket processes). Only
    groups that still hold a browser of ours are signalled. Returns the PIDs found running."""
    left = []
    try:
        with open(pid_file) as f:
            pids = [int(x) for x in f.read().split() if x.isdigit()]
    except OSError:
        return left
    for pid in pids:
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read()
        except OSError:
            continue  # gone, as it should be
        if b"firefox" not in cmd and b"chrom" not in cmd:
            continue  # the PID was reused by something that is not ours
        left.append(pid)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)
            except OSError:
                break
            for _ in range(50):
                if not os.path.exists("/proc/%d" % pid):
                    break
                time.sleep(0.1)
    return left


def run_browser_script(t, script, arg, timeout, people=(), logs="failure", log_tail=4000,
                       stderr_tail=0, pid_file=None,
                       closed_check="the browsers were closed by the script (none left to stop)"):
    """Runs `timeout <timeout> node <script> <arg as JSON>` in node_dir() and prints its report as
    TAP on t: "the browser run finished" (exit 0 and a report with checks: the report is the
    last stdout line that starts with "{"), then each of the report's checks by its name. With
    pid_file (where the script writes the PIDs of the browsers it launched), the browsers it
    left running are stopped and closed_check asserts there were none. people: whose client log
    (the report's log_<name>) goes to the diagnostics, on a failed check (logs="failure") or
    always (logs="always"), its last log_tail characters. stderr_tail: that much of the script's
    stderr goes to the diagnostics first, whatever the outcome. The report (a dict, {} when
    there is none)."""
    try:
        run = subprocess.run(["timeout", str(timeout), "node", script, json.dumps(arg)],
                             cwd=node_dir(), capture_output=True, text=True)
    finally:
        left = stop_browsers(pid_file) if pid_file else []
    report = {}
    for line in run.stdout.splitlines():
        if line.startswith("{"):
            report = json.loads(line)
    if stderr_tail:
        t.diag(run.stderr[-stderr_tail:])
    t.ok(run.returncode == 0 and report.get("checks"), "the browser run finished",
         run.stdout[-3000:] + run.stderr[-3000:])
    if pid_file:
        t.ok(not left, closed_check, left)
    checks = report.get("checks", [])
    for c in checks:
        t.ok(c["ok"], c["name"], json.dumps(c.get("detail"))[:3000] if not c["ok"] else None)
    if logs == "always" or any(not c["ok"] for c in checks):
        for who in people:
            t.diag("---- %s's client log\n%s" % (who, report.get("log_" + who, "")[-log_tail:]))
    return report
