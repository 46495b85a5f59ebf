"""OpenID Connect keys fetched from the issuer (issue #15, item 5): a local HTTPS issuer (Python's
http.server over ssl, with a CA this test makes) serves its discovery document and a JWKS that
it rotates. meetlited finds jwks_uri through discovery, accepts a token of the new key after the
rotation (a token naming an unknown kid makes it fetch again), refuses a token of the removed
key, fetches at most once per refetch interval however many unknown kids arrive, keeps the last
good set when the issuer fails, honours Cache-Control max-age, and refuses an issuer whose
certificate it cannot verify."""

import base64
import http.server
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Tap  # noqa: E402
from mladmin import tmpdir  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, migrate  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature  # noqa: E402

t = Tap()
tmp = tmpdir()
AUD = "client-jwks"


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True, timeout=60)


# a CA of our own and the issuer's certificate, signed by it
ca_key, ca_crt = os.path.join(tmp, "ca.key"), os.path.join(tmp, "ca.crt")
srv_key, srv_csr, srv_crt = (os.path.join(tmp, n) for n in ("srv.key", "srv.csr", "srv.crt"))
openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", ca_key, "-out", ca_crt, "-days", "2", "-subj", "/CN=meetlite test CA")
openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", srv_key,
        "-out", srv_csr, "-subj", "/CN=issuer.test")
ext = os.path.join(tmp, "ext.cnf")
with open(ext, "w") as f:
    f.write("subjectAltName=IP:127.0.0.1\n")
openssl("x509", "-req", "-in", srv_csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
        "-out", srv_crt, "-days", "2", "-extfile", ext)


def jwk(key, kid):
    n = key.public_key().public_numbers()
    return {"kty": "EC", "kid": kid, "crv": "P-256", "use": "sig", "alg": "ES256",
            "x": b64url(n.x.to_bytes(32, "big")), "y": b64url(n.y.to_bytes(32, "big"))}


class Issuer:
    """What the handler serves; changed by the test between requests."""
    keys = []
    max_age = 3600
    fail = False
    hits = {"/.well-known/openid-configuration": 0, "/keys": 0}
    lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with Issuer.lock:
            if self.path in Issuer.hits:
                Issuer.hits[self.path] += 1
            if self.path == "/.well-known/openid-configuration":
                body = json.dumps({"issuer": ISS, "jwks_uri": ISS + "/keys"}).encode()
                status, age = 200, 3600
            elif self.path == "/keys" and not Issuer.fail:
                body = json.dumps({"keys": [jwk(k, kid) for kid, k in Issuer.keys]}).encode()
                status, age = 200, Issuer.max_age
            else:
                body, status, age = b"{}", 500 if self.path == "/keys" else 404, 0
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "public, max-age=%d" % age)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
sctx.load_cert_chain(srv_crt, srv_key)
server.socket = sctx.wrap_socket(server.socket, server_side=True)
ISS = "https://127.0.0.1:%d" % server.server_address[1]
threading.Thread(target=server.serve_forever, daemon=True).start()


def hits(path="/keys"):
    with Issuer.lock:
        return Issuer.hits[path]


def id_token(key, kid, sub):
    now = int(time.time())
    claims = {"iss": ISS, "aud": AUD, "sub": sub, "email": sub + "@example.org",
              "email_verified": True, "iat": now, "exp": now + 600}
    si = b64url(json.dumps({"alg": "ES256", "kid": kid, "typ": "JWT"}).encode()) + "." + \
        b64url(json.dumps(claims).encode())
    r, s = decode_dss_signature(key.sign(si.encode(), ec.ECDSA(hashes.SHA256())))
    return si + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


old_key, new_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
Issuer.keys = [("k-old", old_key)]
REFETCH = 2
pg = Postgres()
d = d2 = None
try:
    t.ok(migrate(pg.url).returncode == 0, "schema migrated")
    d = ControlDaemon(pg.url, ["auth.oidc-issuer=" + ISS, "auth.oidc-audience=" + AUD,
                               "auth.oidc-ca-file=" + ca_crt,
                               "auth.oidc-jwks-refetch-interval=%ds" % REFETCH,
                               "auth.oidc-jwks-refresh-min=1s"])
    api = d.api

    def oidc(token):
        return api.post("/api/v1/auth/oidc", {"id_token": token})

    r = oidc(id_token(old_key, "k-old", "alice"))
    t.ok(r.status == 201 and r.json["token"], "a token of the issuer's key is accepted (keys fetched)", r)
    t.eq((hits("/.well-known/openid-configuration") >= 1, hits() >= 1), (True, True),
         "the discovery document gave jwks_uri, and the keys came from it")
    t.ok("OIDC signing keys of %s fetched: 1 keys" % ISS in d.log(), "the fetch is logged", d.log()[-1500:])

    # the issuer rotates: the new key in, the old one out
    time.sleep(REFETCH + 0.2)
    Issuer.keys = [("k-new", new_key)]
    before = hits()
    r = oidc(id_token(new_key, "k-new", "bob"))
    t.ok(r.status == 201, "after the rotation a token of the new key is accepted (unknown kid: fetched again)", r)
    t.eq(hits() - before, 1, "with one fetch")
    r = oidc(id_token(old_key, "k-old", "alice"))
    t.ok(r.status == 401 and r.code() == "invalid_token", "a token of the removed key is refused after the refresh", r)

    # unknown kids from a stranger: at most one fetch per interval
    time.sleep(REFETCH + 0.2)
    before = hits()
    stranger = ec.generate_private_key(ec.SECP256R1())
    for i in range(6):
        r = oidc(id_token(stranger, "made-up-%d" % i, "mallory"))
    t.ok(r.status == 401, "tokens of keys the issuer never had are refused", r)
    t.eq(hits() - before, 1, "six unknown kids within the refetch interval: one fetch")

    # the issuer fails: the last good set stays
    time.sleep(REFETCH + 0.2)
    Issuer.fail = True
    before = hits()
    r = oidc(id_token(stranger, "made-up-x", "mallory"))
    t.ok(hits() - before == 1 and r.status == 401, "an unknown kid while the issuer fails: one fetch, refused", r)
    r = oidc(id_token(new_key, "k-new", "bob"))
    t.ok(r.status == 200, "a failed fetch keeps the last good set: the new key still works", r)
    t.ok("not fetched" in d.log() and "the last good set stays" in d.log(),
         "the failure is logged", d.log()[-1500:])
    Issuer.fail = False

    # Cache-Control max-age is honoured (within refresh-min = 1s)
    Issuer.max_age = 1
    time.sleep(REFETCH + 0.2)
    oidc(id_token(stranger, "made-up-y", "mallory"))  # a fetch that carries max-age=1
    before = hits()
    time.sleep(4.5)
    n = hits() - before
    t.ok(3 <= n <= 6, "max-age=1: fetched again about every second without any token (%d in 4.5 s)" % n)
    Issuer.max_age = 3600
    time.sleep(1.5)
    before = hits()
    time.sleep(3)
    t.eq(hits() - before, 0, "max-age=3600: no fetch in the next seconds")

    # an issuer whose certificate is not trusted (no oidc-ca-file: the system's CAs)
    d2 = ControlDaemon(pg.url, ["auth.oidc-issuer=" + ISS, "auth.oidc-audience=" + AUD])
    r = d2.api.post("/api/v1/auth/oidc", {"id_token": id_token(new_key, "k-new", "bob")})
    t.ok(r.status == 503, "an issuer we cannot verify: no keys, 503", r)
    t.ok("not fetched" in d2.log() and "certificate" in d2.log(), "and the log says why", d2.log()[-1500:])
finally:
    for x in (d, d2):
        if x:
            t.ok(x.clean(), "clean exit, no sanitizer report", x.log()[-3000:])
            x.close()
    pg.close()
    server.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(t.done())
