"""Relay-only WebRTC calls of two headless Chromium participants through meetlited, over
turn:?transport=udp, turn:?transport=tcp and turns: (TLS with a self-signed certificate pinned
by its key). Asserts from getStats(): the selected pair's local candidate is a relay candidate
with the expected relayProtocol, both sides decode video frames of the other side's camera, a
data-channel round trip from each side, and no ICE candidate error was reported. The Firefox
version of these calls is browser_firefox.py (same script and page)."""

import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mltest  # noqa: E402
from mltest import Daemon, Tap, free_port  # noqa: E402
from mlbrowser import CHROMIUM, loopback_only, node_dir, output_dir  # noqa: E402

SECRET = "browser-secret-0123456789"
t = Tap()
tmp = mltest.scratch_dir("ml-browser-")
cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
pub = subprocess.run(["openssl", "x509", "-in", cert, "-pubkey", "-noout"], capture_output=True, check=True).stdout
der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True, check=True).stdout
spki = base64.b64encode(hashlib.sha256(der).digest()).decode()

port, tport = free_port(), free_port()
d = Daemon(["turn.listen=udp://127.0.0.1:%d, tcp://127.0.0.1:%d, tls://127.0.0.1:%d" % (port, port, tport),
            "turn.tls-cert=" + cert, "turn.tls-key=" + key, "turn.auth-secret=" + SECRET,
            "turn.realm=browser.test", "turn.allow-peers=127.0.0.0/8", "net.workers=2"])


def ice(url_list, ident):
    user = "%d:%s" % (int(time.time()) + 600, ident)
    pw = base64.b64encode(hmac.new(SECRET.encode(), user.encode(), hashlib.sha1).digest()).decode()
    return [{"urls": url_list, "username": user, "credential": pw}]


scenarios = [
    {"name": "udp", "iceServers": ice(["turn:127.0.0.1:%d?transport=udp" % port], "udp"), "want": "udp"},
    {"name": "tcp", "iceServers": ice(["turn:127.0.0.1:%d?transport=tcp" % port], "tcp"), "want": "tcp"},
    {"name": "tls", "iceServers": ice(["turns:127.0.0.1:%d?transport=tcp" % tport], "tls"), "want": "tls"},
]
try:
    run_dir = node_dir()
    arg = json.dumps({"scenarios": [{k: v for k, v in s.items() if k != "want"} for s in scenarios],
                      "spki": spki, "outdir": output_dir("browser_relay"),
                      "browser": "chromium", "executable": CHROMIUM,
                      "loopbackOnly": loopback_only()})
    r = subprocess.run(["timeout", "240", "node", "relay_call.mjs", arg], cwd=run_dir, capture_output=True, text=True)
    results = {}
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            x = json.loads(line)
            results[x["name"]] = x
    t.ok(r.returncode == 0 and len(results) == 3, "the browser run finished (%d scenarios)" % len(results),
         r.stdout[-2000:] + r.stderr[-2000:])
    for s in scenarios:
        x = results.get(s["name"], {})
        a, b = x.get("a") or {}, x.get("b") or {}
        desc = "%s: " % s["name"]
        t.ok(x.get("connected") == [True, True], desc + "both participants connected", x)
        t.ok(a.get("localType") == "relay" == b.get("localType") and
             a.get("relayProtocol") == s["want"] == b.get("relayProtocol"),
             desc + "selected pair uses a relay candidate over %s on both sides" % s["want"],
             json.dumps({"a": [a.get("localType"), a.get("relayProtocol")], "b": [b.get("localType"), b.get("relayProtocol")]}))
        t.ok(a.get("framesDecoded", 0) > 10 and b.get("framesDecoded", 0) > 10,
             desc + "both sides decode video (%s and %s frames)" % (a.get("framesDecoded"), b.get("framesDecoded")))
        sa, sb = a.get("remoteSize") or [0, 0], b.get("remoteSize") or [0, 0]
        t.ok(sa[1] and sb[1] and abs(sa[0] / sa[1] - 16 / 9) < 0.05 and abs(sb[0] / sb[1] - 4 / 3) < 0.05,
             desc + "each side shows the other's camera (%s, %s)" % (sa, sb))
        echo = x.get("echo") or [None, None]
        t.ok(all(e is not None for e in echo), desc + "a data-channel round trip from each side", echo)
        t.ok(not a.get("errors") and not b.get("errors"), desc + "no ICE candidate error", (a.get("errors"), b.get("errors")))
finally:
    rc, log = d.stop()
    t.ok(d.clean(), "meetlited stops cleanly", log[-3000:])
    d.close()
    subprocess.run(["rm", "-rf", tmp])

sys.exit(t.done())
