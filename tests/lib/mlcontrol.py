"""Helpers for the control-plane integration tests (Python standard library only).

A private PostgreSQL per test file (tests/lib/pg.sh, stopped by PID in a finally), meetlited
started with the control plane on loopback, a small JSON HTTP client, raw HTTP for malformed
requests, JWT crafting for attacks, and a TURN Allocate with a REST credential.
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time

from mltest import (ALLOCATE, ERROR, MEETLITED, REQUEST, SUCCESS, TOP_SRCDIR, Daemon, Msg,
                    free_port, long_term_key)

PG_SH = os.path.join(TOP_SRCDIR, "tests", "lib", "pg.sh")
JWT_SECRET = "test-jwt-secret-0123456789abcdef0123456789"
TURN_SECRET = "test-turn-secret-0123456789"


# ---------------------------------------------------------------- PostgreSQL

class Postgres:
    """A throwaway PostgreSQL in a temp dir (socket only). stop() by PID; also on failure."""

    def __init__(self):
        base = "/var/tmp" if os.path.isdir("/var/tmp") else None
        self.dir = tempfile.mkdtemp(prefix="mlpg-", dir=base)
        os.chmod(self.dir, 0o755)
        self.url = None
        self.start()

    def start(self):
        r = subprocess.run(["sh", PG_SH, "start", self.dir], capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            raise RuntimeError("pg.sh start failed: %s" % r.stderr)
        self.url = r.stdout.strip().splitlines()[-1]
        return self.url

    def stop(self):
        subprocess.run(["sh", PG_SH, "stop", self.dir], capture_output=True, timeout=60)

    def psql(self, sql):
        r = subprocess.run(["psql", self.url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("psql: %s" % r.stderr)
        return r.stdout.strip()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def migrate(url, extra=()):
    args = [MEETLITED, "--set", "database.url=" + url, "--set",
            "database.migrations-dir=" + os.path.join(TOP_SRCDIR, "sql")]
    for s in extra:
        args += ["--set", s]
    args.append("--migrate")
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------- the daemon

def control_sets(url, http_port, turn_port, extra=()):
    return ["database.url=" + url,
            "database.migrations-dir=" + os.path.join(TOP_SRCDIR, "sql"),
            "control.listen=127.0.0.1:%d" % http_port,
            "turn.listen=udp://127.0.0.1:%d, tcp://127.0.0.1:%d" % (turn_port, turn_port),
            "turn.auth-secret=" + TURN_SECRET,
            "auth.jwt-secret=" + JWT_SECRET,
            "auth.argon2-memory=1024", "auth.argon2-iterations=1",
            "net.workers=1", "log.level=info"] + list(extra)


class ControlDaemon(Daemon):
    def __init__(self, url, extra=(), http_port=None, turn_port=None, wait_for="ready"):
        self.http_port = http_port or free_port()
        self.turn_port = turn_port or free_port()
        super().__init__(control_sets(url, self.http_port, self.turn_port, extra),
                         wait_for=wait_for, timeout=60)
        self.api = Api(self.http_port)
        if wait_for:
            self.wait_db()

    def wait_db(self, timeout=30):
        """The pool connects in the background after "ready": wait for its first connection."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.api.get("/api/v1/health").status == 200:
                return True
            time.sleep(0.05)
        raise RuntimeError("the database pool did not connect within %ss:\n%s" % (timeout, self.log()))


# ---------------------------------------------------------------- HTTP

class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.raw = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def code(self):
        try:
            return self.json["error"]["code"]
        except (TypeError, KeyError):
            return None

    def __repr__(self):
        return "%d %r %r" % (self.status, self.headers, self.raw[:400])


def http_call(host, port, method, path, data=None, headers=None, timeout=30, tls=None, source=None):
    """One request on a fresh connection, over HTTPS when tls (an ssl.SSLContext) is given, from
    the local address source when given: the answer as a Resp."""
    src = (source, 0) if source else None
    if tls:
        c = http.client.HTTPSConnection(host, port, timeout=timeout, context=tls, source_address=src)
    else:
        c = http.client.HTTPConnection(host, port, timeout=timeout, source_address=src)
    try:
        c.request(method, path, body=data, headers=headers or {})
        r = c.getresponse()
        return Resp(r.status, r.getheaders(), r.read())
    finally:
        c.close()


class Api:
    """A JSON client on a fresh connection per call (simple and thread-safe); over HTTPS when tls
    (an ssl.SSLContext) is given."""

    def __init__(self, port, host="127.0.0.1", source=None, tls=None):
        self.host, self.port = host, port
        self.source = source  # a local address to connect from ("127.0.0.2"): another client
        self.tls = tls

    def frm(self, source):
        """The same API from another local address."""
        return Api(self.port, self.host, source, self.tls)

    def call(self, method, path, body=None, token=None, headers=None, raw=None, timeout=30):
        h = {}
        data = None
        if raw is not None:
            data = raw
        elif body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if token:
            h["Authorization"] = "Bearer " + token
        if headers:
            h.update(headers)
        return http_call(self.host, self.port, method, path, data, h, timeout, self.tls, self.source)

    def get(self, path, token=None, **kw):
        return self.call("GET", path, token=token, **kw)

    def post(self, path, body=None, token=None, **kw):
        return self.call("POST", path, body=body, token=token, **kw)

    def signup(self, email, password="correct horse", name=None):
        b = {"email": email, "password": password}
        if name is not None:
            b["display_name"] = name
        return self.post("/api/v1/auth/signup", b)

    def user(self, email, password="correct horse", name=None):
        """Signs up and returns (token, user id)."""
        r = self.signup(email, password, name)
        if r.status != 201:
            raise RuntimeError("signup %s: %r" % (email, r))
        return r.json["token"], r.json["user"]["id"]

    def meeting(self, token, title="Meeting", **kw):
        b = {"title": title}
        b.update(kw)
        r = self.post("/api/v1/meetings", b, token)
        if r.status != 201:
            raise RuntimeError("create meeting: %r" % r)
        return r.json


def raw_http(port, data, timeout=5.0, host="127.0.0.1"):
    """Sends raw bytes, returns (status or None, whole answer bytes) until close or timeout."""
    s = socket.create_connection((host, port), timeout=timeout)
    out = b""
    try:
        s.sendall(data)
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
            # one whole answer is enough
            if b"\r\n\r\n" in out:
                head, _, rest = out.partition(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        if len(rest) >= int(line.split(b":")[1]):
                            deadline = 0
    finally:
        s.close()
    status = None
    if out.startswith(b"HTTP/1."):
        status = int(out.split(b" ")[1])
    return status, out


def raw_json_body(answer):
    _, _, rest = answer.partition(b"\r\n\r\n")
    try:
        return json.loads(rest)
    except ValueError:
        return None


# ---------------------------------------------------------------- JWT

def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jwt_hs256(claims, secret=JWT_SECRET, header=None):
    hdr = header or {"alg": "HS256", "typ": "JWT"}
    si = b64url(json.dumps(hdr).encode()) + "." + b64url(json.dumps(claims).encode())
    key = secret.encode() if isinstance(secret, str) else secret
    return si + "." + b64url(hmac.new(key, si.encode(), hashlib.sha256).digest())


def jwt_claims(token):
    return json.loads(b64url_decode(token.split(".")[1]))


def access_claims(sub, lifetime=3600, **over):
    now = int(time.time())
    c = {"iss": "meetlite", "aud": "meetlite-api", "sub": sub, "iat": now, "nbf": now,
         "exp": now + lifetime}
    c.update(over)
    return c


# ---------------------------------------------------------------- TURN

def turn_allocate(port, username, password, realm_hint=None, timeout=2.0):
    """Allocate over UDP with a long-term credential. Returns (class, error code or None),
    or None when the server does not answer."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        req = Msg(ALLOCATE, REQUEST).add("REQUESTED-TRANSPORT", b"\x11\0\0\0")
        s.sendto(req.encode(), ("127.0.0.1", port))
        r = Msg.decode(s.recvfrom(65536)[0])
        if r.cls != ERROR or r.error() != 401:
            return (r.cls, r.error())
        realm, nonce = r.get("REALM"), r.get("NONCE")
        key = long_term_key(username, realm.decode(), password)
        req = Msg(ALLOCATE, REQUEST).add("REQUESTED-TRANSPORT", b"\x11\0\0\0")
        req.add("USERNAME", username.encode()).add("REALM", realm).add("NONCE", nonce)
        s.sendto(req.encode(key=key), ("127.0.0.1", port))
        r = Msg.decode(s.recvfrom(65536)[0])
        return (r.cls, r.error())
    except socket.timeout:
        return None
    finally:
        s.close()


def rest_password(secret, username):
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


__all__ = ["Postgres", "ControlDaemon", "Api", "Resp", "raw_http", "raw_json_body", "migrate",
           "jwt_hs256", "jwt_claims", "access_claims", "b64url", "b64url_decode", "turn_allocate",
           "rest_password", "JWT_SECRET", "TURN_SECRET", "SUCCESS", "ERROR", "struct"]
