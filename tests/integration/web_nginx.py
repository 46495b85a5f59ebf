"""The nginx front of contrib/nginx (issue #15, item 7), run as written with only its ports and
certificate paths substituted: one TLS port where nginx's stream module reads the ClientHello
(ssl_preread) and sends HTTPS (ALPN h2 or http/1.1) to nginx's own http server, which terminates
TLS for the page, the API and the signaling WebSocket, and sends TURN over TLS (ALPN stun.turn,
or none) to meetlited's tls:// listener, both with a PROXY line naming the client. Clients come
from their own loopback addresses (127.0.0.5, ...): meetlited must see those in its access log,
its login limits (control.trusted-proxies) and a Binding answer over TLS
(net.proxy-protocol-from). Then two participants in headless Chromium load the page from nginx
over HTTPS, join, and see each other's video relay-only through turns: on nginx's port
(tests/browser/web_nginx.mjs)."""

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import BINDING, REQUEST, TOP_SRCDIR, Msg, Tap, free_port, recv_stun_stream  # noqa: E402
from mladmin import make_cert  # noqa: E402
from mlbrowser import CHROMIUM, loopback_only, output_dir, run_browser_script, spki_pin  # noqa: E402
from mlcontrol import Api, ControlDaemon, Postgres, migrate  # noqa: E402

NGINX = "/usr/sbin/nginx"
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
CONTRIB = os.path.join(TOP_SRCDIR, "contrib", "nginx")

t = Tap()
tmp = tempfile.mkdtemp(prefix="ml-webnginx-")
os.chmod(tmp, 0o755)
cert, key = make_cert(tmp, "meet.example.edu", san="IP:127.0.0.1,DNS:meet.example.edu")
spki = spki_pin(cert)


def tls_context(alpn):
    c = ssl.create_default_context(cafile=cert)  # the test's certificate is its own CA
    if alpn:
        c.set_alpn_protocols(alpn)
    return c


def turn_binding(front, src, alpn):
    """A Binding request over TLS to nginx's public port from src: the XOR-MAPPED-ADDRESS of the
    answer, and the local address it should be."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.bind((src, 0))
    raw.settimeout(5)
    raw.connect(("127.0.0.1", front))
    with tls_context(alpn).wrap_socket(raw, server_hostname="meet.example.edu") as s:
        s.sendall(Msg(BINDING, REQUEST).encode())
        return Msg.decode(recv_stun_stream(s, 5)).xaddr("XOR-MAPPED-ADDRESS"), s.getsockname()


def substitute(path, subs):
    """The contrib file with each of subs replaced; every one must be there (a change of the
    file that drops one fails here rather than testing something else)."""
    with open(path) as f:
        text = f.read()
    for old, new in subs.items():
        t.ok(old in text, "%s has %r" % (os.path.basename(path), old))
        text = text.replace(old, new)
    out = os.path.join(tmp, os.path.basename(path))
    with open(out, "w") as f:
        f.write(text)
    return out


t.ok(os.access(NGINX, os.X_OK) and os.path.exists(STREAM_MODULE),
     "nginx and its stream module are installed (scripts/deps.sh: nginx libnginx-mod-stream)")

pg = Postgres()
d = nginx = None
report = {}
try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "the schema is applied", r.stdout + r.stderr)
    front, inner, api_port, tls_port, udp_port = (free_port() for _ in range(5))
    base = "https://127.0.0.1:%d" % front
    turns = "turns:127.0.0.1:%d" % front
    d = ControlDaemon(pg.url, ["control.trusted-proxies=127.0.0.1/32", "net.proxy-protocol-from=127.0.0.1/32",
                               "auth.login-max-failures=2", "auth.login-max-failures-per-address=2",
                               "turn.tls-cert=" + cert, "turn.tls-key=" + key,
                               "turn.listen=udp://127.0.0.1:%d, tls://127.0.0.1:%d" % (udp_port, tls_port),
                               "turn.allow-peers=127.0.0.0/8",
                               "control.public-url=" + base,
                               "control.turn-uris=%s?transport=tcp" % turns],
                      http_port=api_port, turn_port=udp_port)

    stream_conf = substitute(os.path.join(CONTRIB, "meetlite-stream.conf"), {
        "listen 443;": "listen 127.0.0.1:%d;" % front,
        "listen [::]:443;": "",
        "server 127.0.0.1:8443;": "server 127.0.0.1:%d;" % inner,
        "server 127.0.0.1:5349;": "server 127.0.0.1:%d;" % tls_port})
    site_conf = substitute(os.path.join(CONTRIB, "meetlite-site.conf"), {
        "listen 127.0.0.1:8443 ssl": "listen 127.0.0.1:%d ssl" % inner,
        "/etc/letsencrypt/live/meet.example.edu/fullchain.pem": cert,
        "/etc/letsencrypt/live/meet.example.edu/privkey.pem": key,
        "http://127.0.0.1:8080;": "http://127.0.0.1:%d;" % api_port})
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""
load_module %(module)s;
daemon off;
master_process off;
worker_processes 1;
pid %(tmp)s/nginx.pid;
error_log %(tmp)s/error.log info;
events { worker_connections 512; }
include %(stream)s;
http {
    access_log %(tmp)s/access.log;
    client_body_temp_path %(tmp)s/body;
    proxy_temp_path %(tmp)s/proxy;
    fastcgi_temp_path %(tmp)s/fastcgi;
    uwsgi_temp_path %(tmp)s/uwsgi;
    scgi_temp_path %(tmp)s/scgi;
    include %(site)s;
}
""" % {"module": STREAM_MODULE, "tmp": tmp, "stream": stream_conf, "site": site_conf})
    chk = subprocess.run([NGINX, "-t", "-p", tmp, "-c", conf], capture_output=True, text=True)
    t.ok(chk.returncode == 0, "nginx -t accepts the contrib configuration", chk.stderr)
    nginx = subprocess.Popen([NGINX, "-p", tmp, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", front), timeout=0.5).close()
            socket.create_connection(("127.0.0.1", inner), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    t.ok(nginx.poll() is None, "nginx runs in front (stream on the public port, http behind it)")

    # ------------------------------------------------------------ HTTPS through the one port
    fa = Api(front, tls=tls_context(["http/1.1"]))  # through nginx's public port, ALPN as browsers offer
    r = fa.get("/")
    t.ok(r.status == 200 and b"<html" in r.raw.lower(), "GET / over HTTPS (ALPN http/1.1) through nginx: the page", r)
    r = fa.get("/api/v1/health")
    t.ok(r.status == 200, "the API over HTTPS through nginx", r)
    fa.frm("127.0.0.5").user("ann@example.org", "correct horse")
    for i in range(2):
        fa.frm("127.0.0.5").post("/api/v1/auth/login", {"email": "ann@example.org", "password": "wrong %d" % i},
                                 headers={"X-Request-Id": "tls5-%d" % i})
    r = fa.frm("127.0.0.5").post("/api/v1/auth/login", {"email": "ann@example.org", "password": "correct horse"})
    t.ok(r.status == 429, "through nginx's TLS front: the student who failed (127.0.0.5) is refused", r)
    r = fa.frm("127.0.0.6").post("/api/v1/auth/login", {"email": "ann@example.org", "password": "correct horse"})
    t.ok(r.status == 200, "another student (127.0.0.6) signs in to the same account", r)
    r = fa.frm("127.0.0.6").post("/api/v1/auth/login", {"email": "ann@example.org", "password": "correct horse"},
                                 headers={"X-Forwarded-For": "127.0.0.5"})
    t.ok(r.status == 200, "a forged X-Forwarded-For from the client names nobody: 127.0.0.6 still signs in", r)
    deadline = time.time() + 3
    while "rid=tls5-1 peer=127.0.0.5" not in d.log() and time.time() < deadline:
        time.sleep(0.02)
    t.ok(re.search(r"rid=tls5-1 peer=127\.0\.0\.5\b", d.log()),
         "meetlited's access log has the student's address (PROXY line -> realip -> X-Forwarded-For)",
         d.log()[-1500:])

    # ------------------------------------------------------------ TURN over TLS on the same port
    for src, alpn in (("127.0.0.7", None), ("127.0.0.8", ["stun.turn"])):
        got, want = turn_binding(front, src, alpn)
        t.eq(got, want, "TURN over TLS on nginx's public port from %s (ALPN %s): XOR-MAPPED-ADDRESS is the "
             "client's own address and port" % (src, alpn[0] if alpn else "none"))

    # ------------------------------------------------------------ a browser meeting through nginx
    api = Api(d.http_port)
    people = []
    for name in ("ann", "ben"):
        res = api.signup("%s-nginx@example.org" % name, name=name.capitalize())
        j = res.json or {}
        people.append({"name": name, "session": {"token": j.get("token"), "user": j.get("user"),
                                                 "expires_at": int(time.time()) + 3000}})
    t.ok(all(p["session"]["token"] for p in people), "two accounts")
    meeting = api.meeting(people[0]["session"]["token"], title="Through nginx")
    report = run_browser_script(t, "web_nginx.mjs", {
        "base": base, "chromium": CHROMIUM, "loopbackOnly": loopback_only(),
        "outdir": output_dir("web_nginx"), "spki": spki, "code": meeting["code"],
        "people": people, "turnsUri": turns}, 300)
    t.diag("selected pairs: %s" % json.dumps(report.get("paths")))
    log = d.log()
    t.ok(re.search(r"allocated \w+ relay \S+ for \S+ \(client 127\.0\.0\.1:\d+, tls,", log),
         "meetlited allocated for the browsers over TLS (the connections nginx passed)",
         [ln for ln in log.splitlines() if "allocated" in ln][:4])
    with open(os.path.join(tmp, "access.log")) as f:
        access = f.read()
    t.ok("GET /api/v1/signaling" in access and " 101 " in access,
         "nginx's access log has the signaling WebSocket upgrade (101)",
         [ln for ln in access.splitlines() if "signaling" in ln][:3])
finally:
    if nginx and nginx.poll() is None:
        nginx.terminate()
        try:
            nginx.wait(5)
        except subprocess.TimeoutExpired:
            nginx.kill()
    if d:
        d.stop_checked(t, tail=2000)
    pg.close()
    shutil.rmtree(tmp, ignore_errors=True)
sys.exit(t.done())
