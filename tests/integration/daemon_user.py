"""Port 443 without staying root (issue #14, item 3): started as root (CI runs as root), meetlited
binds a privileged port, then becomes daemon.user, and serves.

- udp:// and shared:// listeners on a free port below 1024 on 127.0.0.1, with
  daemon.user=nobody: every uid and gid in /proc/PID/status is nobody's and nogroup's (real,
  effective, saved, filesystem), no supplementary group is root's, and the effective capability
  set is empty.
- It serves afterwards: a STUN Binding over UDP, over TCP, and over TLS on the shared port.
- A SIGHUP reloads a certificate the user can read; one it cannot read (mode 0600, root's) is
  refused with a log line while the old certificate keeps serving.
- A user that does not exist stops the start with a clear error, before anything is served.
- Without daemon.user, running as root is warned about."""

import os
import pwd
import grp
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import BINDING, MEETLITED, REQUEST, SUCCESS, Daemon, Msg, Tap, free_port  # noqa: E402

t = Tap()
t.ok(os.geteuid() == 0, "the test runs as root (as CI does), so it can bind below 1024")
tmp = tempfile.mkdtemp(prefix="ml-user-")
os.chmod(tmp, 0o755)
cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=meetlite-user"],
               check=True, capture_output=True)
os.chmod(cert, 0o644)
os.chmod(key, 0o644)  # readable by nobody for the reload that must work (a test key)


def low_port():
    """A port below 1024 free for TCP and UDP on 127.0.0.1."""
    for p in range(990, 600, -1):
        ok = True
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            s = socket.socket(socket.AF_INET, kind)
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return p
    raise RuntimeError("no free port below 1024")


def binding(sock_kind, port, ctx=None):
    m = Msg(BINDING, REQUEST)
    s = socket.socket(socket.AF_INET, sock_kind)
    s.settimeout(3)
    try:
        if sock_kind == socket.SOCK_DGRAM:
            s.sendto(m.encode(), ("127.0.0.1", port))
            data = s.recv(2048)
        else:
            s.connect(("127.0.0.1", port))
            if ctx:
                s = ctx.wrap_socket(s)
            s.sendall(m.encode())
            data = s.recv(2048)
        r = Msg.decode(data)
        return r.cls == SUCCESS
    except OSError:
        return False
    finally:
        s.close()


def status_ids(pid):
    ids = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid", "Groups", "CapEff", "CapPrm"):
                ids[k] = v.split()
    return ids


nobody = pwd.getpwnam("nobody")
gid = grp.getgrgid(nobody.pw_gid)
d = None
try:
    port = low_port()
    d = Daemon(["turn.listen=udp://127.0.0.1:%d, shared://127.0.0.1:%d" % (port, port),
                "turn.tls-cert=" + cert, "turn.tls-key=" + key, "turn.auth-secret=user-secret-0123456789",
                "daemon.user=nobody", "net.workers=2"])
    ids = status_ids(d.proc.pid)
    t.eq(ids["Uid"], [str(nobody.pw_uid)] * 4, "Uid: real, effective, saved and filesystem are nobody's")
    t.eq(ids["Gid"], [str(nobody.pw_gid)] * 4, "Gid: all four are %s's" % gid.gr_name)
    t.ok("0" not in ids.get("Groups", []), "no supplementary group is root's", ids.get("Groups"))
    t.ok(int(ids["CapEff"][0], 16) == 0 and int(ids["CapPrm"][0], 16) == 0,
         "no capability is left (effective and permitted sets empty)", ids)
    t.ok("now running as nobody" in d.log(), "the log says whom it runs as")
    t.ok(binding(socket.SOCK_DGRAM, port), "it serves: STUN Binding over UDP on port %d" % port)
    t.ok(binding(socket.SOCK_STREAM, port), "over TCP on the shared port %d" % port)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    t.ok(binding(socket.SOCK_STREAM, port, ctx), "over TLS on the shared port")
    # a reload the user can read
    d.signal(signal.SIGHUP)
    d.wait_log("TLS certificate loaded", 10)
    t.ok(True, "SIGHUP: a certificate readable by nobody is reloaded")
    os.chmod(key, 0o600)
    d.signal(signal.SIGHUP)
    d.wait_log("reload refused, configuration unchanged: turn.tls-cert/tls-key", 10)
    t.ok(binding(socket.SOCK_STREAM, port, ctx),
         "SIGHUP with a key nobody cannot read: refused and logged, the old certificate keeps serving")
    t.ok(d.clean(), "it stops cleanly", d.log()[-3000:])
    d.close()
    d = None

    r = subprocess.run([MEETLITED, "--set", "daemon.user=no-such-user-ml",
                        "--set", "turn.listen=udp://127.0.0.1:%d" % free_port()],
                       capture_output=True, text=True, timeout=30)
    t.ok(r.returncode != 0 and "no user" in (r.stdout + r.stderr),
         "an unknown daemon.user stops the start with a clear error", r.stdout + r.stderr)
    d = Daemon(["turn.listen=udp://127.0.0.1:%d" % free_port()])
    t.ok("running as root" in d.log(), "without daemon.user, running as root is warned about")
    t.ok(d.clean(), "that one stops cleanly too")
except Exception as e:  # noqa: BLE001
    t.ok(False, "the test ran to its end", repr(e) + ("\n" + d.log()[-3000:] if d else ""))
finally:
    if d:
        d.close()
    shutil.rmtree(tmp, ignore_errors=True)
t.done()
