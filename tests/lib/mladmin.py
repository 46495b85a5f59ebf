"""Helpers for the admin API tests (issue #8), Python standard library only.

meetlited started with an admin listener on free loopback ports (each test its own daemon: the
default admin port would collide), a JSON client with a bearer token (plain or TLS), raw HTTP
for malformed requests, promtool, self-signed certificates made with the openssl command, two
TURN allocations relaying to each other, and meetlite-admin run as a subprocess.
"""

import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time

from mlcontrol import Resp, http_call  # noqa: F401 (Resp: the answer type of both APIs; tests import it here)
from mltest import TOP_BUILDDIR, TOP_SRCDIR, Daemon, free_port, scratch_dir
from turnclient import TurnClient

TOKEN = "admin-token-0123456789abcdef"
TOKEN2 = "second-token-fedcba9876543210"
WRONG = "x" * len(TOKEN)  # a wrong token of the same length
CLI = os.environ.get("MEETLITE_ADMIN", os.path.join(TOP_BUILDDIR, "meetlite-admin"))


def tcp_port(host="127.0.0.1"):
    """A port free on host right now (mltest.free_port: free for TCP and UDP)."""
    return free_port(socket.AF_INET6 if ":" in host else socket.AF_INET, host)


class AdminApi:
    """The admin API on a fresh connection per call."""

    def __init__(self, port, token=TOKEN, host="127.0.0.1", tls_context=None):
        self.host, self.port, self.token, self.tls = host, port, token, tls_context

    def call(self, method, path, body=None, token="default", headers=None, raw=None, timeout=30):
        h = {}
        data = None
        if raw is not None:
            data = raw
        elif body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        elif method in ("POST", "PUT"):
            data = b""
        tok = self.token if token == "default" else token
        if tok:
            h["Authorization"] = "Bearer " + tok
        if headers:
            h.update(headers)
        return http_call(self.host, self.port, method, path, data, h, timeout, self.tls)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.call("POST", path, body=body, **kw)

    def put(self, path, body=None, **kw):
        return self.call("PUT", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)

    def stats(self, top=None):
        r = self.get("/stats" + ("?top=%d" % top if top is not None else ""))
        if r.status != 200:
            raise RuntimeError("GET /stats: %r" % r)
        return r.json

    def metrics(self):
        r = self.get("/metrics")
        if r.status != 200:
            raise RuntimeError("GET /metrics: %r" % r)
        return r.raw.decode()


def raw_post(port, path, body, token, method="POST", content_type="application/json",
             host="127.0.0.1", timeout=5.0):
    """A request written by hand (body None: no Content-Length at all). Returns (status or
    None, the answer's bytes)."""
    head = "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n" % (method, path, host, token)
    if body is not None:
        head += "Content-Type: %s\r\nContent-Length: %d\r\n" % (content_type, len(body))
    data = head.encode() + b"\r\n" + (body or b"")
    s = socket.create_connection((host, port), timeout=timeout)
    out = b""
    try:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may answer and close before the whole body is sent
        deadline = time.time() + timeout
        while time.time() < deadline and b"\r\n\r\n" not in out:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, OSError):
                break
            if not chunk:
                break
            out += chunk
    finally:
        s.close()
    status = int(out.split(b" ")[1]) if out.startswith(b"HTTP/1.") else None
    return status, out


def release(client):
    """Deletes a TurnClient's allocation (Refresh with LIFETIME 0) and closes it."""
    try:
        client.refresh(lifetime=0, expect_ok=False)
    except Exception:  # noqa: BLE001 - gone already
        pass
    client.close()


def metric(text, name):
    """The value of the sample line 'name value' (name may carry labels), or None."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def promtool(text):
    """(exit code, output) of promtool check metrics. A missing promtool is a failure (127),
    never a pass: scripts/deps.sh installs it (Debian package prometheus)."""
    exe = shutil.which("promtool")
    if not exe:
        return 127, "promtool is not installed (Debian package prometheus, see scripts/deps.sh)"
    r = subprocess.run([exe, "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=60)
    return r.returncode, r.stdout + r.stderr


def admin_sets(admin_port, turn_port, extra=(), tokens=(TOKEN, TOKEN2)):
    return ["admin.listen=127.0.0.1:%d" % admin_port] + \
        (["admin.token=" + ", ".join(tokens)] if tokens else []) + \
           ["turn.listen=udp://127.0.0.1:%d, tcp://127.0.0.1:%d" % (turn_port, turn_port),
            "turn.allow-peers=127.0.0.0/8",
            "turn.relay-ports=42000-42999",
            "net.workers=2", "log.level=info"] + list(extra)


class AdminDaemon(Daemon):
    """meetlited with the admin API (TURN-only unless extra says otherwise)."""

    def __init__(self, extra=(), tokens=(TOKEN, TOKEN2), wait_for="ready", config=None,
                 admin_port=None, turn_port=None):
        self.admin_port = admin_port or tcp_port()
        self.turn_port = turn_port or free_port()
        super().__init__(admin_sets(self.admin_port, self.turn_port, extra, tokens),
                         config=config, wait_for=wait_for, timeout=60)
        self.api = AdminApi(self.admin_port)
        self.server = ("127.0.0.1", self.turn_port)


def make_cert(dirname, cn, san="IP:127.0.0.1,DNS:localhost"):
    """A self-signed P-256 certificate for cn and the subjectAltName san, and its key (PEM), in
    dirname; returns (cert, key) paths."""
    cert, key = os.path.join(dirname, cn + ".crt"), os.path.join(dirname, cn + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=" + cn, "-addext", "subjectAltName=" + san],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def peer_cert_cn(host, port, timeout=5):
    """The CN of the certificate a TLS server presents now (no verification)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as s:
        with ctx.wrap_socket(s) as t:
            der = t.getpeercert(binary_form=True)
    pem = ssl.DER_cert_to_PEM_cert(der)
    r = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253"],
                       input=pem, capture_output=True, text=True, timeout=30)
    out = r.stdout.strip()
    return out.split("CN=", 1)[1].split(",")[0] if "CN=" in out else out


class Pair:
    """Two TURN allocations on one server that relay to each other: a creates a permission
    (and a channel) toward b's relay address and b toward a's."""

    def __init__(self, server, cred_a, cred_b, transport="udp"):
        self.a = TurnClient(server, transport=transport, timeout=1.0)
        self.b = TurnClient(server, transport=transport, timeout=1.0)
        self.a.login(*cred_a)
        self.b.login(*cred_b)
        self.a.allocate()
        self.b.allocate()
        self.a.create_permission(self.b.relay)
        self.b.create_permission(self.a.relay)
        self.a.channel_bind(0x4001, self.b.relay)
        self._stop = threading.Event()
        self._thread = None
        self.sent = 0

    def once(self, payload=b"ping", timeout=1.0):
        """a -> b over the channel; True when b got it."""
        self.a.send_channel(0x4001, payload)
        end = time.time() + timeout
        while time.time() < end:
            got = self.b.recv_data(max(0.01, end - time.time()))
            if got and got[2] == payload:
                return True
        return False

    def start_flow(self, interval=0.001, size=200):
        """Sends from a to b in the background until stop_flow()."""
        payload = b"m" * size

        def run():
            while not self._stop.is_set():
                try:
                    self.a.send_channel(0x4001, payload)
                    self.sent += 1
                except OSError:
                    pass
                time.sleep(interval)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop_flow(self):
        self._stop.set()
        if self._thread:
            self._thread.join(5)

    def close(self):
        self.stop_flow()
        self.a.close()
        self.b.close()


def cli(*args, env=None, token=TOKEN, stdin=None, timeout=60):
    """Runs meetlite-admin; returns (exit code, stdout, stderr). The token goes through the
    environment, never the command line."""
    e = dict(os.environ)
    e.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    if token is not None:
        e["MEETLITE_ADMIN_TOKEN"] = token
    else:
        e.pop("MEETLITE_ADMIN_TOKEN", None)
    if env:
        e.update(env)
    r = subprocess.run([CLI] + list(args), capture_output=True, text=True, env=e, input=stdin,
                       timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def tmpdir():
    base = "/var/tmp" if os.path.isdir("/var/tmp") else None
    return scratch_dir("mladm-", base)


__all__ = ["TOKEN", "TOKEN2", "WRONG", "CLI", "AdminApi", "AdminDaemon", "Pair", "Resp",
           "admin_sets", "cli", "make_cert", "metric", "peer_cert_cn", "promtool", "raw_post",
           "release", "tcp_port", "tmpdir", "TOP_SRCDIR"]
