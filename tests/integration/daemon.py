"""The meetlited daemon: command line, INI file with sections, --set overrides, --check-config,
--help listing every key of the sample configuration, SIGHUP reload of reloadable keys (and a
refused reload of a broken file), RLIMIT_NOFILE raised, worker threads, clean shutdown."""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import BINDING, MEETLITED, REQUEST, TOP_SRCDIR, Daemon, Msg, Tap, free_port, udp_exchange  # noqa: E402

t = Tap()


def run(*args):
    r = subprocess.run([MEETLITED] + list(args), capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


rc, out = run("--version")
t.ok(rc == 0 and re.match(r"meetlited \d+\.\d+\.\d+", out), "--version", out)

rc, helptext = run("--help")
t.ok(rc == 0 and "--set" in helptext and "--check-config" in helptext, "--help prints usage", helptext[:500])

# every key in the help appears in the annotated sample file and the other way round
sample = os.path.join(TOP_SRCDIR, "etc", "meetlite.conf")
help_keys = set(re.findall(r"^  ([a-z]+\.[a-z0-9-]+) \(", helptext, re.M))
sample_keys = set()
section = None
with open(sample) as f:
    for line in f:
        m = re.match(r"^\s*\[([a-z]+)\]", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"^\s*[#;]?\s*([a-z][a-z0-9-]*)\s*=", line)
        if m and section:
            sample_keys.add("%s.%s" % (section, m.group(1)))
t.ok(len(help_keys) > 10, "--help lists the configuration keys (%d)" % len(help_keys))
t.eq(sorted(help_keys - sample_keys), [], "every key is documented in etc/meetlite.conf")
t.eq(sorted(sample_keys - help_keys), [], "etc/meetlite.conf documents no unknown key")

# the shipped sample is valid once the site's secrets and database are filled in; without them
# --check-config says what start would say (issue #13: it applies every rule start applies)
rc, out = run("--config", sample, "--check-config")
t.ok(rc != 0 and "database.url" in out,
     "etc/meetlite.conf as shipped: --check-config names the missing database.url", out)
rc, out = run("--config", sample, "--set", "database.url=postgresql:///meetlite",
              "--set", "turn.auth-secret=sample-secret-0123456789",
              "--set", "auth.jwt-secret=sample-jwt-secret-0123456789abcdef0123", "--check-config")
t.ok(rc == 0 and "configuration OK" in out,
     "etc/meetlite.conf with a database and secrets passes --check-config", out)

# errors name the problem and exit non-zero
for args, needle, desc in [
    (["--set", "turn.nosuchkey=1", "--check-config"], "unknown key turn.nosuchkey", "unknown key refused"),
    (["--set", "net.workers=9999", "--check-config"], "outside", "out-of-range integer refused"),
    (["--set", "log.level=loud", "--check-config"], "log.level", "bad enum refused"),
    (["--set", "turn.listen=udp://300.1.1.1:3478", "--check-config"], "turn.listen", "bad listen address refused"),
    (["--set", "novalue", "--check-config"], "section.key=value", "malformed --set refused"),
    (["--config", "/nonexistent/meetlite.conf", "--check-config"], "cannot open", "missing file refused"),
]:
    rc, out = run(*args)
    t.ok(rc != 0 and needle in out, desc, out)

with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
    f.write("[turn]\nlisten = udp://127.0.0.1:1\nbogus line without equals\n")
    broken = f.name
rc, out = run("--config", broken, "--check-config")
t.ok(rc != 0 and ":3:" in out, "a syntax error is reported with file and line", out)
os.unlink(broken)

# a config file with sections, overridden by --set; SIGHUP reloads
port = free_port()
conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)


def write_conf(software, level="info", listen_port=port, extra=""):
    with open(conf.name, "w") as f:
        f.write("; test configuration\n[log]\nlevel = %s\n\n[net]\nworkers = 3\n\n[turn]\n"
                "listen = udp://127.0.0.1:%d\nsoftware = %s\n%s" % (level, listen_port, software, extra))


write_conf("first")
d = Daemon(["log.level=info"], config=conf.name)
srv = ("127.0.0.1", port)
try:
    r = Msg.decode(udp_exchange(srv, Msg(BINDING, REQUEST).encode()))
    t.eq(r.get("SOFTWARE"), b"first", "value from the config file is used")
    t.ok("3 network workers" in d.log(), "net.workers from the file starts 3 workers", d.log())
    threads = len(os.listdir("/proc/%d/task" % d.proc.pid))
    t.ok(threads >= 4, "worker threads exist (%d threads)" % threads)
    with open("/proc/%d/limits" % d.proc.pid) as f:
        lim = [ln for ln in f if ln.startswith("Max open files")][0].split()
    t.ok(int(lim[3]) >= 4096, "RLIMIT_NOFILE raised (soft limit %s)" % lim[3])

    write_conf("second", extra="fingerprint = yes\n")
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded")
    r = Msg.decode(udp_exchange(srv, Msg(BINDING, REQUEST).encode()))
    t.eq(r.get("SOFTWARE"), b"second", "SIGHUP reloads turn.software")
    t.ok(r.get("FINGERPRINT") is not None, "SIGHUP reloads turn.fingerprint")

    other = free_port()
    write_conf("third", listen_port=other)
    n_before = d.log().count("reload refused")
    d.signal(signal.SIGHUP)
    deadline = time.time() + 10
    while d.log().count("reload refused") == n_before and time.time() < deadline:
        time.sleep(0.05)
    t.ok("reload refused, configuration unchanged: restart-only keys changed: turn.listen"
         in d.log(), "a restart-only change refuses the whole reload, in one line", d.log()[-2000:])
    r = Msg.decode(udp_exchange(srv, Msg(BINDING, REQUEST).encode()))
    t.eq(r.get("SOFTWARE"), b"second", "still serving on the old address, nothing of that file applied")
    write_conf("third")
    d.signal(signal.SIGHUP)
    deadline = time.time() + 10
    while time.time() < deadline:
        r = Msg.decode(udp_exchange(srv, Msg(BINDING, REQUEST).encode()))
        if r.get("SOFTWARE") == b"third":
            break
        time.sleep(0.05)
    t.eq(r.get("SOFTWARE"), b"third", "the same file without the restart-only change applies")

    with open(conf.name, "w") as f:
        f.write("[turn]\nsoftware = broken\nunknown-key = 1\n")
    d.signal(signal.SIGHUP)
    d.wait_log("reload refused")
    r = Msg.decode(udp_exchange(srv, Msg(BINDING, REQUEST).encode()))
    t.eq(r.get("SOFTWARE"), b"third", "a broken file changes nothing")
    t.ok(d.alive(), "daemon survives a broken reload")
finally:
    t.ok(d.clean(), "clean exit after reloads", d.log())
    d.close()
    os.unlink(conf.name)

# SIGINT stops it too; a port held by another program is a clear error
import socket  # noqa: E402
port = free_port()
d = Daemon(["turn.listen=udp://127.0.0.1:%d" % port, "net.workers=1"])
d.signal(signal.SIGINT)
try:  # let SIGINT do the stop: stop() sends SIGTERM, which could be read first
    d.proc.wait(20)
except subprocess.TimeoutExpired:
    pass
rc, text = d.stop()
t.ok(rc == 0 and "received SIGINT" in text, "SIGINT stops the daemon cleanly", text)
d.close()

# signals repeated while it stops (an impatient operator) do not cut the stop short
d = Daemon(["turn.listen=udp://127.0.0.1:%d" % free_port(), "net.workers=1"])
sent = 0
deadline = time.time() + 20
while d.proc.poll() is None and time.time() < deadline:
    d.proc.send_signal(signal.SIGTERM if sent % 2 else signal.SIGINT)
    sent += 1
    time.sleep(0.002)
rc, text = d.stop()
t.ok(rc == 0 and "totals:" in text, "signals repeated during the stop: it still ends cleanly "
     "(%d signals sent; exit 0 and its last log line)" % sent, text[-2000:])
d.close()

holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
holder.bind(("127.0.0.1", 0))
rc, out = run("--set", "turn.listen=udp://127.0.0.1:%d" % holder.getsockname()[1], "--set", "net.workers=1")
t.ok(rc != 0 and "Address already in use" in out, "a port held by another program is a clear error", out)
holder.close()

rc, out = run("--set", "turn.listen=udp://192.0.2.77:3478", "--set", "net.workers=1")
t.ok(rc != 0 and "bind udp 192.0.2.77:3478" in out, "an address that cannot be bound is a clear error", out)

sys.exit(t.done())
