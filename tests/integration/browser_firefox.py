"""Relay-only WebRTC calls of two headless Firefox ESR participants through meetlited, over
turn:?transport=udp, turn:?transport=tcp and turns: (TLS), driven by puppeteer-core over
WebDriver BiDi (tests/browser/relay_call.mjs, the same page as the Chromium test).

Asserts from Firefox's getStats(): the selected pair's local candidate is a relay candidate with
the expected relayProtocol, both sides decode the other side's camera, a data-channel round
trip from each side, and no ICE candidate error. And how Firefox treats a turns: server:
* it verifies the certificate like a web site's: a test CA in the profile's NSS database
  (cert9.db, certutil) makes turns:localhost work with verification on;
* without that trust it refuses the handshake (meetlited logs the client's "unknown ca"
  alert) and gathers nothing; the WebDriver BiDi capability acceptInsecureCerts lifts that;
* it ignores turns: with an IP address (it wants a host name to check): no candidate at all,
  which is why a deployment names a host in control.turn-uris for its turns: URI.
localhost resolves to 127.0.0.1 and ::1, and Firefox tries both: the TLS listener is on both."""

import base64
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Daemon, Tap, free_port  # noqa: E402
from mlbrowser import FIREFOX, firefox_profile, node_dir, output_dir, stop_browsers  # noqa: E402

SECRET = "firefox-secret-0123456789"
t = Tap()
tmp = tempfile.mkdtemp(prefix="ml-firefox-")


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True)


# A test CA and a server certificate it signs, as a deployment has: the CA goes into the
# Firefox profile's NSS database, the server certificate into meetlited.
ca, ca_key = os.path.join(tmp, "ca.pem"), os.path.join(tmp, "ca-key.pem")
cert, key, csr, ext = (os.path.join(tmp, n) for n in ("c.pem", "k.pem", "c.csr", "ext.cnf"))
EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
openssl("req", "-x509", *EC, "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=meetlite test CA")
openssl("req", "-new", *EC, "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
with open(ext, "w") as f:
    f.write("subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nbasicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
        "-days", "2", "-extfile", ext)

def port_on_both_loopbacks():
    """A TCP port free on 127.0.0.1 and on ::1 (turns:localhost reaches either)."""
    for _ in range(100):
        p = free_port()
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s.bind(("::1", p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no port free on both loopback addresses")


port, tport = free_port(), port_on_both_loopbacks()
d = Daemon(["turn.listen=udp://127.0.0.1:%d, tcp://127.0.0.1:%d, tls://127.0.0.1:%d, tls://[::1]:%d"
            % (port, port, tport, tport),
            "turn.tls-cert=" + cert, "turn.tls-key=" + key, "turn.auth-secret=" + SECRET,
            "turn.realm=firefox.test", "turn.allow-peers=127.0.0.0/8", "net.workers=2"])


def ice(url, ident):
    user = "%d:%s" % (int(time.time()) + 600, ident)
    pw = base64.b64encode(hmac.new(SECRET.encode(), user.encode(), hashlib.sha1).digest()).decode()
    return [{"urls": [url], "username": user, "credential": pw}]


UDP = ice("turn:127.0.0.1:%d?transport=udp" % port, "udp")
TCP = ice("turn:127.0.0.1:%d?transport=tcp" % port, "tcp")
TLS = ice("turns:localhost:%d?transport=tcp" % tport, "tls")
TLS_IP = ice("turns:127.0.0.1:%d?transport=tcp" % tport, "tls-ip")


def run(label, scenarios, **firefox):
    """One Firefox (a fresh process) runs the scenarios; returns {name: result}. The browser
    is stopped by PID if the script did not close it (and that counts as a failure)."""
    pid_file = os.path.join(tmp, label + ".pids")
    arg = dict(browser="firefox", executable=FIREFOX, scenarios=scenarios, pidFile=pid_file,
               outdir=output_dir("browser_firefox/" + label), **firefox)
    started = time.monotonic()
    try:
        r = subprocess.run(["timeout", "150", "node", "relay_call.mjs", json.dumps(arg)], cwd=run_dir,
                           capture_output=True, text=True)
    finally:
        left = stop_browsers(pid_file)
    results = {}
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            x = json.loads(line)
            results[x["name"]] = x
    t.diag("%s: %.1f s (%s)" % (label, time.monotonic() - started,
                                ", ".join("%s %.1f s" % (n, x.get("ms", 0) / 1000) for n, x in results.items())))
    t.ok(r.returncode == 0 and len(results) == len(scenarios),
         "%s: the Firefox run finished (%d of %d scenarios)" % (label, len(results), len(scenarios)),
         r.stdout[-2000:] + r.stderr[-3000:])
    t.ok(not left, "%s: Firefox was closed by the script (none left to stop)" % label, left)
    return results


def check_call(label, x, want):
    a, b = x.get("a") or {}, x.get("b") or {}
    desc = "%s: " % label
    t.ok(x.get("connected") == [True, True], desc + "both participants connected",
         json.dumps({k: x.get(k) for k in ("error", "gathered", "connected")}))
    t.ok(a.get("localType") == "relay" == b.get("localType") and
         a.get("relayProtocol") == want == b.get("relayProtocol"),
         desc + "selected pair uses a relay candidate over %s on both sides" % want,
         json.dumps({"a": [a.get("localType"), a.get("relayProtocol")],
                     "b": [b.get("localType"), b.get("relayProtocol")]}))
    t.ok(a.get("framesDecoded", 0) > 10 and b.get("framesDecoded", 0) > 10,
         desc + "both sides decode video (%s and %s frames)" % (a.get("framesDecoded"), b.get("framesDecoded")))
    sa, sb = a.get("remoteSize") or [0, 0], b.get("remoteSize") or [0, 0]
    t.ok(sa[1] and sb[1] and abs(sa[0] / sa[1] - 16 / 9) < 0.05 and abs(sb[0] / sb[1] - 4 / 3) < 0.05,
         desc + "each side shows the other's camera (%s, %s)" % (sa, sb))
    echo = x.get("echo") or [None, None]
    t.ok(all(e is not None for e in echo),
         desc + "a data-channel round trip from each side (%s ms)" % ", ".join("%.1f" % e for e in echo if e is not None),
         echo)
    t.ok(not a.get("errors") and not b.get("errors"), desc + "no ICE candidate error",
         (a.get("errors"), b.get("errors")))


try:
    run_dir = node_dir()
    # 1. A profile whose NSS database trusts the test CA: TLS is verified, and passes.
    trusted = firefox_profile(os.path.join(tmp, "profile-ca"), ca)
    res = run("trusted", [{"name": "udp", "iceServers": UDP}, {"name": "tcp", "iceServers": TCP},
                          {"name": "tls", "iceServers": TLS}, {"name": "tls-ip", "iceServers": TLS_IP}],
              profile=trusted)
    for name, want in (("udp", "udp"), ("tcp", "tcp"), ("tls", "tls")):
        check_call(name, res.get(name, {}), want)
    x = res.get("tls-ip", {})
    t.ok(x.get("gathered") == [0, 0] and x.get("connected") == [False, False] and not x.get("error"),
         "turns: with an IP address: Firefox gathers no candidate (it wants a host name)",
         json.dumps({k: x.get(k) for k in ("error", "gathered", "connected")}))

    # 2. A profile that does not trust the CA: Firefox refuses the server's certificate.
    mark = len(d.log())
    res = run("untrusted", [{"name": "tls", "iceServers": TLS}],
              profile=firefox_profile(os.path.join(tmp, "profile-plain")))
    x = res.get("tls", {})
    t.ok(x.get("gathered") == [0, 0] and x.get("connected") == [False, False],
         "turns: with an untrusted certificate: no relay candidate, no call",
         json.dumps({k: x.get(k) for k in ("error", "gathered", "connected")}))
    t.ok("alert unknown ca" in d.log()[mark:],
         "turns: with an untrusted certificate: Firefox rejected it (meetlited logs the TLS alert 'unknown ca')",
         d.log()[mark:][-2000:])
    errs = [e for side in ("a", "b") for e in ((x.get(side) or {}).get("errors") or [])]
    t.ok(errs and all(e.get("code") == 701 for e in errs),
         "turns: with an untrusted certificate: the page is told (icecandidateerror 701)", errs)

    # 3. The same untrusted certificate with the WebDriver BiDi capability acceptInsecureCerts.
    res = run("insecure", [{"name": "tls", "iceServers": TLS}],
              profile=firefox_profile(os.path.join(tmp, "profile-insecure")), acceptInsecureCerts=True)
    check_call("tls, acceptInsecureCerts", res.get("tls", {}), "tls")
finally:
    rc, log = d.stop()
    t.ok(d.clean(), "meetlited stops cleanly", log[-3000:])
    d.close()
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(t.done())
