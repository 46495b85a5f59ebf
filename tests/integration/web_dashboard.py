"""The browser client's files on the control plane's port, and its dashboard in headless
Chromium (tests/browser/web_dashboard.mjs): sign-up and sign-in, "Sign in with Google" with
an ID token signed by a key made here (meetlited's auth.oidc-jwks-file holds its public half),
meetings and their status, the messages for ended, expired and unknown meetings, a refused
camera, a direct call. Here: MIME types, caching and revalidation, the /m/<code> deep links,
404s, no way out of the web root, GET /api/v1/config, and the API untouched by the mount.
Screenshots go to tests/output/web_dashboard under the build tree."""

import http.client
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mltest  # noqa: E402
from mltest import Tap  # noqa: E402
from mlbrowser import CHROMIUM, loopback_only, output_dir, run_browser_script  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, b64url, migrate  # noqa: E402

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

ISSUER = "https://accounts.google.com"
AUDIENCE = "meetlite-test.apps.googleusercontent.com"
KID = "web-test-1"

t = Tap()
tmp = mltest.scratch_dir("mlweb-")
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
nums = key.public_key().public_numbers()
jwks = os.path.join(tmp, "jwks.json")
with open(jwks, "w") as f:
    json.dump({"keys": [{"kty": "RSA", "kid": KID, "use": "sig", "alg": "RS256",
                         "n": b64url(nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")),
                         "e": b64url(nums.e.to_bytes(3, "big"))}]}, f)
key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()


def get(port, path, headers=None, method="GET"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


pg = Postgres()
d = None
try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "schema migrated", r.stderr)
    d = ControlDaemon(pg.url, ["turn.allow-peers=127.0.0.0/8", "auth.oidc-issuer=" + ISSUER,
                               "auth.oidc-audience=" + AUDIENCE, "auth.oidc-jwks-file=" + jwks,
                               "control.min-duration=2s", "control.sweep-interval=1s"])
    port = d.http_port
    srcweb = os.path.join(os.environ.get("top_srcdir", "."), "src", "web")
    t.ok("browser client from %s" % os.path.realpath(srcweb) in d.log(),
         "an uninstalled meetlited serves the source tree's src/web", d.log()[-1500:])

    # ------------------------------------------------------------ the files
    types = {"/": "text/html; charset=utf-8", "/index.html": "text/html; charset=utf-8",
             "/js/app.js": "text/javascript; charset=utf-8", "/css/app.css": "text/css; charset=utf-8",
             "/favicon.svg": "image/svg+xml"}
    for path, want in types.items():
        st, h, body = get(port, path)
        t.ok(st == 200 and h.get("content-type") == want and body,
             "GET %s: 200 %s" % (path, want), (st, h))
    st, h, body = get(port, "/js/app.js")
    t.ok("must-revalidate" in h.get("cache-control", "") and h.get("etag"),
         "files carry an ETag and must be revalidated (unversioned module names)", h)
    st2, h2, body2 = get(port, "/js/app.js", {"If-None-Match": h.get("etag", "")})
    t.ok(st2 == 304 and not body2, "a matching If-None-Match gets 304 without a body", (st2, h2))
    t.ok(h.get("x-content-type-options") == "nosniff" and h.get("referrer-policy") == "no-referrer" and
         h.get("x-frame-options") == "DENY", "files carry nosniff, no-referrer and DENY framing", h)
    with open(os.path.join(srcweb, "index.html"), "rb") as f:
        index = f.read()
    for path in ("/m/abc-defg-hij", "/m/ABC-defg-hij/"):
        st, h, body = get(port, path)
        t.ok(st == 200 and body == index and h.get("content-type") == "text/html; charset=utf-8" and
             h.get("cache-control") == "no-cache", "the meeting link %s loads the app" % path, (st, h))
    st, h, body = get(port, "/m/abc-defg-hij", method="HEAD")
    t.ok(st == 200 and not body, "HEAD of a meeting link: 200, no body", (st, h))
    for path in ("/m/", "/m/a/b", "/m/bad%20code", "/nope.html", "/js/nope.js", "/dashboard"):
        st, h, body = get(port, path)
        t.ok(st == 404, "GET %s: 404" % path, (st, h, body[:200]))
    for path in ("/../../../../etc/passwd", "/js/../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
                 "/..%2f..%2fetc/passwd"):
        st, h, body = get(port, path)
        t.ok(st in (400, 403, 404) and b"root:" not in body, "no way out of the web root: %s (%d)" % (path, st))
    st, h, body = get(port, "/api/v1/nope")
    t.ok(st == 404 and json.loads(body)["error"]["code"] == "not_found",
         "a missing API path is still the API's JSON 404", (st, body))
    st, h, body = get(port, "/api/v1/health")
    t.ok(st == 200 and json.loads(body)["status"] == "ok", "the API answers beside the files")
    st, h, body = get(port, "/api/v1/config")
    cfgj = json.loads(body) if st == 200 else {}
    t.ok(st == 200 and cfgj.get("oidc") == {"issuer": ISSUER, "client_id": AUDIENCE, "name": "Google",
                                          "authorization_endpoint": "https://accounts.google.com/o/oauth2/v2/auth"} and
         cfgj["meetings"]["min_duration_s"] == 2 and cfgj["password_min"] == 8,
         "GET /api/v1/config: Google's sign-in and the meeting limits, no secret", body)
    t.ok(b"jwks" not in body and b"secret" not in body, "the public configuration names no key file or secret")

    # ------------------------------------------------------------ the browser
    run_browser_script(t, "web_dashboard.mjs", {
        "base": "http://127.0.0.1:%d" % port, "chromium": CHROMIUM,
        "loopbackOnly": loopback_only(), "outdir": output_dir("web_dashboard"),
        "oidc": {"issuer": ISSUER, "audience": AUDIENCE, "kid": KID, "key": key_pem}}, 240)
    t.eq(pg.psql("SELECT signup_method || ' ' || coalesce(oidc_subject, '') FROM users "
                 "WHERE email = 'fay@example.org'"), "oidc google-fay-1",
         "PostgreSQL: the Google account was created with its subject")
finally:
    if d:
        d.stop_checked(t)
    pg.close()
    subprocess.run(["rm", "-rf", tmp])

sys.exit(t.done())
