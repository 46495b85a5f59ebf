"""A real nginx in front of meetlited, as a university would put it (issue #13 item 7, #15 item
7): its http module terminates nothing here but proxies the API with X-Forwarded-For
($proxy_add_x_forwarded_for), and its stream module passes TURN over TLS through with
proxy_protocol on (the PROXY v1 line before the client's ClientHello). Clients connect to nginx
from their own loopback addresses (127.0.0.5, 127.0.0.6, ...): meetlited must see those, in the
access log and the login limits (control.trusted-proxies) and in a Binding answer's
XOR-MAPPED-ADDRESS over TLS (net.proxy-protocol-from), not nginx's 127.0.0.1."""

import os
import re
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mltest  # noqa: E402
from mltest import BINDING, REQUEST, Msg, Tap, free_port, recv_stun_stream  # noqa: E402
from mlcontrol import Api, ControlDaemon, Postgres, migrate  # noqa: E402

NGINX = "/usr/sbin/nginx"
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"

t = Tap()
tmp = mltest.scratch_dir("ml-nginx-")
cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "c.key")
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=meetlite-nginx"],
               check=True, capture_output=True)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

t.ok(os.access(NGINX, os.X_OK) and os.path.exists(STREAM_MODULE),
     "nginx and its stream module are installed (scripts/deps.sh: nginx libnginx-mod-stream)")

pg = Postgres()
d = nginx = None
try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "the schema is applied", r.stdout + r.stderr)
    tls_port = free_port()
    d = ControlDaemon(pg.url, ["control.trusted-proxies=127.0.0.1/32", "net.proxy-protocol-from=127.0.0.1/32",
                               "auth.login-max-failures=2", "auth.login-max-failures-per-address=2",
                               "turn.tls-cert=" + cert, "turn.tls-key=" + key,
                               "turn.listen=udp://127.0.0.1:%d, tls://127.0.0.1:%d" % (free_port(), tls_port)])
    http_front, stream_front = free_port(), free_port()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""
load_module %(module)s;
daemon off;
master_process off;
worker_processes 1;
pid %(tmp)s/nginx.pid;
error_log %(tmp)s/error.log info;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %(tmp)s/body;
    proxy_temp_path %(tmp)s/proxy;
    fastcgi_temp_path %(tmp)s/fastcgi;
    uwsgi_temp_path %(tmp)s/uwsgi;
    scgi_temp_path %(tmp)s/scgi;
    server {
        listen 127.0.0.1:%(http_front)d;
        location / {
            proxy_pass http://127.0.0.1:%(api)d;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }
    }
}
stream {
    server {
        listen 127.0.0.1:%(stream_front)d;
        proxy_pass 127.0.0.1:%(tls)d;
        proxy_protocol on;
    }
}
""" % {"module": STREAM_MODULE, "tmp": tmp, "http_front": http_front, "api": d.http_port,
           "stream_front": stream_front, "tls": tls_port})
    nginx = subprocess.Popen([NGINX, "-p", tmp, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", stream_front), timeout=0.5).close()
            socket.create_connection(("127.0.0.1", http_front), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    t.ok(nginx.poll() is None, "nginx runs in front (http and stream)")

    # ------------------------------------------------------------ the API through nginx's http module
    front = Api(http_front)
    front.frm("127.0.0.5").user("ann@example.org", "correct horse")
    for i in range(2):
        front.frm("127.0.0.5").post("/api/v1/auth/login", {"email": "ann@example.org", "password": "wrong %d" % i},
                                    headers={"X-Request-Id": "n5-%d" % i})
    r = front.frm("127.0.0.5").post("/api/v1/auth/login", {"email": "ann@example.org", "password": "correct horse"})
    t.ok(r.status == 429, "through nginx: the student who failed (127.0.0.5) is refused", r)
    r = front.frm("127.0.0.6").post("/api/v1/auth/login", {"email": "ann@example.org", "password": "correct horse"})
    t.ok(r.status == 200, "through nginx: another student (127.0.0.6) signs in to the same account", r)
    ok = sum(front.frm("127.0.0.%d" % (10 + i)).post(
        "/api/v1/auth/login", {"email": "ann@example.org", "password": "correct horse"}).status == 200 for i in range(5))
    t.eq(ok, 5, "through nginx: a class of five more signs in; one student's failures lock nobody else out")
    deadline = time.time() + 3
    while "rid=n5-1 peer=127.0.0.5" not in d.log() and time.time() < deadline:
        time.sleep(0.02)
    t.ok(re.search(r"rid=n5-1 peer=127\.0\.0\.5\b", d.log()), "meetlited's access log has the student's address", d.log()[-1500:])

    # ------------------------------------------------------------ TURN over TLS through nginx's stream module
    for src in ("127.0.0.7", "127.0.0.8"):
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.bind((src, 0))
        raw.settimeout(5)
        raw.connect(("127.0.0.1", stream_front))
        with ctx.wrap_socket(raw) as s:
            m = Msg(BINDING, REQUEST)
            s.sendall(m.encode())
            a = Msg.decode(recv_stun_stream(s, 5)).xaddr("XOR-MAPPED-ADDRESS")
            t.eq(a, s.getsockname(), "TURN over TLS through nginx stream (proxy_protocol on), from %s: "
                 "XOR-MAPPED-ADDRESS is the client's own address and port" % src)
finally:
    if nginx and nginx.poll() is None:
        nginx.terminate()
        try:
            nginx.wait(5)
        except subprocess.TimeoutExpired:
            nginx.kill()
    if d:
        code, log = d.stop()
        t.ok(code == 0, "meetlited stops cleanly", log[-2000:])
    pg.close()
t.done()
