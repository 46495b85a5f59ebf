"""Webhook test kit: the verification example of docs/webhooks.md (run as it is written
there), a CA of the test's own, and an HTTPS receiver that verifies every delivery and records
what it accepted. Used by tests/integration/webhooks.py and the browser tier."""

import http.server
import json
import os
import re
import ssl
import subprocess
import threading

from mltest import TOP_SRCDIR

SECRET = b"webhook-secret-0123456789abcdef"


def doc_verifier():
    """verify_webhook exactly as docs/webhooks.md shows it (its first python block)."""
    text = open(os.path.join(TOP_SRCDIR, "docs", "webhooks.md")).read()
    m = re.search(r"## Verifying a delivery.*?```python\n(.*?)```", text, re.S)
    if not m:
        raise RuntimeError("no python example in docs/webhooks.md")
    ns = {}
    exec(compile(m.group(1), "docs/webhooks.md", "exec"), ns)  # noqa: S102 - our own docs
    return ns["verify_webhook"]


verify_webhook = doc_verifier()


def make_ca(d):
    """A CA of the test's own and a server certificate for 127.0.0.1 signed by it."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True, timeout=60)
    ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
    key, csr, crt = os.path.join(d, "rx.key"), os.path.join(d, "rx.csr"), os.path.join(d, "rx.crt")
    ext = os.path.join(d, "rx.ext")
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=meetlite test webhook CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
        "-out", csr, "-subj", "/CN=127.0.0.1")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
        "-days", "2", "-extfile", ext)
    return ca, crt, key


class Receiver:
    """An HTTPS webhook receiver: verifies each request with the docs' example, answers as
    mode says ("ok": 200, "fail": 500), records what it accepted (deduplicated by id)."""

    def __init__(self, cert, key, port):
        self.cert, self.key, self.port = cert, key, port
        self.secret = SECRET
        self.mode = "ok"
        self.lock = threading.Lock()
        self.accepted = []   # event bodies accepted, first time each id
        self.ids = {}        # id -> times a 2xx was answered for it
        self.requests = 0
        self.bad_sig = 0
        self.header_mismatch = 0
        self.srv = None

    def start(self):
        rx = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):  # noqa: N802 - http.server's name
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with rx.lock:
                    rx.requests += 1
                    if not verify_webhook(rx.secret, self.headers, body):
                        rx.bad_sig += 1
                        code = 401
                    elif rx.mode != "ok":
                        code = 500
                    else:
                        ev = json.loads(body)
                        if ev.get("id") != self.headers.get("Meetlite-Webhook-Id"):
                            rx.header_mismatch += 1
                        rx.ids[ev["id"]] = rx.ids.get(ev["id"], 0) + 1
                        if rx.ids[ev["id"]] == 1:
                            rx.accepted.append(ev)
                        code = 200
                out = json.dumps({"status": code}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.srv = srv

    def stop(self):
        """Closes the listening socket: connections are refused from now on."""
        if self.srv:
            self.srv.shutdown()
            self.srv.server_close()
            self.srv = None

    def has(self, ids):
        with self.lock:
            return all(i in self.ids for i in ids)

    def dups(self, ids=None):
        with self.lock:
            return {i: n for i, n in self.ids.items() if n > 1 and (ids is None or i in ids)}


def secret_file(d, secret=SECRET):
    """The secret as a file in d (webhooks.secret-file), with the newline an editor leaves."""
    path = os.path.join(d, "webhook.secret")
    with open(path, "w") as f:
        f.write(secret.decode() + "\n")
    os.chmod(path, 0o600)
    return path
