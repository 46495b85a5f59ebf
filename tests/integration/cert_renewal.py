"""Certificates renewed under a running call (issue #15, item 5): the certbot deploy hook
(etc/certbot/meetlite-deploy-hook) replaces the certificate files of the relay's tls://
listener and of control.listen, and has meetlited load them through meetlite-admin
tls-reload. A TURN-over-TLS allocation keeps relaying, an open wss:// signaling WebSocket and
an HTTPS keep-alive connection keep working, and new TLS connections on both ports see the new
certificate's serial. Then SIGHUP does the same, a key that does not match its certificate
refuses the reload (the old pair keeps serving), and the admin listener's own certificate
(admin.tls-cert) reloads on SIGHUP under a keep-alive connection."""

import asyncio
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import TOP_SRCDIR, Tap, free_port, rest_credential  # noqa: E402
from mladmin import CLI, TOKEN, AdminDaemon, tmpdir  # noqa: E402
from mlcontrol import TURN_SECRET, Api, ControlDaemon, Postgres, migrate  # noqa: E402
from mlsignal import Person, Sig  # noqa: E402
from turnclient import TurnClient  # noqa: E402

HOOK = os.path.join(TOP_SRCDIR, "etc", "certbot", "meetlite-deploy-hook")
t = Tap()
tmp = tmpdir()


def lineage(name, serial):
    """A certbot-style live directory (fullchain.pem, privkey.pem) with a certificate of the
    given serial number."""
    d = os.path.join(tmp, "live-" + name)
    os.mkdir(d)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", os.path.join(d, "privkey.pem"),
                    "-out", os.path.join(d, "fullchain.pem"), "-days", "2", "-set_serial",
                    str(serial), "-subj", "/CN=" + name, "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return d


def no_verify():
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def serial_of(der):
    r = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                       capture_output=True, timeout=30, check=True)
    return int(r.stdout.decode().strip().split("=", 1)[1], 16)


def peer_serial(port, alpn=None):
    """The serial of the certificate a new TLS connection to port sees."""
    ctx = no_verify()
    if alpn:
        ctx.set_alpn_protocols(alpn)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s) as tls:
            return serial_of(tls.getpeercert(binary_form=True))


class KeepAlive:
    """One HTTPS connection used for several requests: it must stay the same socket."""

    def __init__(self, port, path, token=None):
        self.c = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=no_verify())
        self.path, self.token = path, token
        self.first = self.get()
        self.local = self.c.sock.getsockname()
        self.serial = serial_of(self.c.sock.getpeercert(binary_form=True))

    def get(self):
        self.c.request("GET", self.path,
                       headers={"Authorization": "Bearer " + self.token} if self.token else {})
        r = self.c.getresponse()
        r.read()
        return r.status

    def still_same(self):
        """A request on the same connection: (status, same socket, certificate serial)."""
        status = self.get()
        same = self.c.sock is not None and self.c.sock.getsockname() == self.local
        return status, same, serial_of(self.c.sock.getpeercert(binary_form=True)) if same else None


def put_pair(cert_from, key_from, dest):
    shutil.copy(os.path.join(cert_from, "fullchain.pem"), os.path.join(dest, "fullchain.pem"))
    shutil.copy(os.path.join(key_from, "privkey.pem"), os.path.join(dest, "privkey.pem"))


def run_hook(live, config):
    env = dict(os.environ, RENEWED_LINEAGE=live, MEETLITE_TLS_DIR=tls_dir, MEETLITE_RELOAD="admin",
               MEETLITE_CONFIG=config, MEETLITE_ADMIN=CLI)
    env.pop("MEETLITE_ADMIN_TOKEN", None)  # the hook finds the token through the configuration
    return subprocess.run(["sh", HOOK], capture_output=True, text=True, env=env, timeout=60)


old, new, other = lineage("old", 0x1001), lineage("new", 0x2002), lineage("other", 0x3003)
tls_dir = os.path.join(tmp, "tls")
os.mkdir(tls_dir, 0o750)
put_pair(old, old, tls_dir)
crt, key = os.path.join(tls_dir, "fullchain.pem"), os.path.join(tls_dir, "privkey.pem")
token_file = os.path.join(tmp, "admin-token")
with open(token_file, "w") as f:
    f.write(TOKEN + "\n")
os.chmod(token_file, 0o600)

pg = Postgres()
d = None
try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "migrations applied", r.stderr)
    admin_port, turn_port, tls_port = free_port(), free_port(), free_port()
    config = os.path.join(tmp, "meetlite.conf")
    with open(config, "w") as f:  # what meetlite-admin reads: the admin listener and its token
        f.write("[admin]\nlisten = 127.0.0.1:%d\ntoken-file = %s\n" % (admin_port, token_file))
    d = ControlDaemon(pg.url, [
        "turn.listen=udp://127.0.0.1:%d, tls://127.0.0.1:%d" % (turn_port, tls_port),
        "turn.tls-cert=" + crt, "turn.tls-key=" + key, "turn.allow-peers=127.0.0.0/8",
        "control.tls-cert=" + crt, "control.tls-key=" + key,
        "admin.listen=127.0.0.1:%d" % admin_port, "admin.token-file=" + token_file],
        turn_port=turn_port, wait_for=None)
    d.wait_log("ready", 60)
    api = Api(d.http_port, tls=no_verify())  # no verification: a self-signed test cert
    deadline = time.time() + 30
    while time.time() < deadline and api.get("/api/v1/health").status != 200:
        time.sleep(0.1)
    d.api = api
    t.eq((peer_serial(d.http_port), peer_serial(tls_port)), (0x1001, 0x1001),
         "control.listen and the tls:// listener serve the first certificate")

    # the call: two TURN-over-TLS allocations relaying to each other through a channel
    ctx = no_verify()
    a = TurnClient(("127.0.0.1", tls_port), transport="tls", tls_context=ctx, timeout=2.0)
    b = TurnClient(("127.0.0.1", tls_port), transport="tls", tls_context=ctx, timeout=2.0)
    for c, who in ((a, "a"), (b, "b")):
        c.login(*rest_credential(TURN_SECRET, "call-" + who))
        c.allocate()
    a.create_permission(b.relay)
    b.create_permission(a.relay)
    a.channel_bind(0x4001, b.relay)

    def relayed(payload):
        a.send_channel(0x4001, payload)
        end = time.time() + 3
        while time.time() < end:
            got = b.recv_data(max(0.05, end - time.time()))
            if got and got[2] == payload:
                return True
        return False

    t.ok(relayed(b"before renewal"), "TURN over TLS: data relayed before the renewal")
    keep = KeepAlive(d.http_port, "/api/v1/health")
    t.ok(keep.first == 200 and keep.serial == 0x1001, "an HTTPS keep-alive connection is open")

    host_p = Person(api, "host@renew.test", "Host")
    guest_p = Person(api, "guest@renew.test", "Guest")
    m = api.meeting(host_p.token, "Renewal")
    host_p.join_meeting(m["id"])
    guest_p.join_meeting(m["id"])

    async def call():
        ws_a = await Sig.open(d.http_port, host_p.sig_token, tls=True)
        ws_b = await Sig.open(d.http_port, guest_p.sig_token, tls=True)
        await ws_b.send(type="offer", to=host_p.pid, payload={"sdp": "before"})
        got = await ws_a.expect("offer")
        t.eq(got["payload"]["sdp"], "before", "wss:// signaling works before the renewal")

        hook = await asyncio.to_thread(run_hook, new, config)
        t.ok(hook.returncode == 0 and "reloaded" in hook.stdout,
             "the certbot deploy hook copies the renewed files and reloads (meetlite-admin)",
             hook.stdout + hook.stderr)
        mode = os.stat(crt).st_mode & 0o777
        t.eq(oct(mode), oct(0o640), "the copies are mode 0640")

        await ws_b.send(type="offer", to=host_p.pid, payload={"sdp": "after"})
        got = await ws_a.expect("offer")
        t.eq(got["payload"]["sdp"], "after", "the WebSocket opened before the renewal carries on")
        await ws_a.send(type="answer", to=guest_p.pid, payload={"sdp": "answer after"})
        got = await ws_b.expect("answer")
        t.eq(got["payload"]["sdp"], "answer after", "in both directions")
        ws_c = await Sig.open(d.http_port, guest_p.sig_token, tls=True)
        t.eq(serial_of(ws_c.ws.transport.get_extra_info("ssl_object").getpeercert(True)), 0x2002,
             "a new wss:// connection gets the new certificate")
        for w in (ws_a, ws_b, ws_c):
            await w.close()

    asyncio.run(call())
    t.ok(relayed(b"after renewal"), "the TURN-over-TLS allocations relay after the renewal")
    t.ok(a.refresh(expect_ok=False).cls == 2, "and their TLS connections still carry requests")
    status, same, serial = keep.still_same()
    t.ok(status == 200 and same and serial == 0x1001,
         "the keep-alive connection is the same one, with the certificate it started with",
         (status, same, serial))
    t.eq((peer_serial(d.http_port), peer_serial(d.http_port, ["http/1.1"]), peer_serial(tls_port)),
         (0x2002, 0x2002, 0x2002), "new TLS connections on both ports see the new serial")
    t.ok("TLS certificate loaded for control.listen: /CN=new" in d.log()
         and "TLS certificate loaded for turn.listen: /CN=new" in d.log(),
         "each listener's new certificate is logged", d.log()[-2000:])

    # SIGHUP: the files changed under the same names
    put_pair(other, other, tls_dir)
    d.signal(signal.SIGHUP)
    d.wait_log("TLS certificate loaded for control.listen: /CN=other", 20)
    t.eq((peer_serial(d.http_port), peer_serial(tls_port)), (0x3003, 0x3003),
         "SIGHUP: both listeners load the changed files")

    # a key that does not match: the whole reload is refused, nothing changes
    put_pair(new, other, tls_dir)
    d.signal(signal.SIGHUP)
    d.wait_log("reload refused", 20)
    t.ok("does not match" in d.log() or "mismatch" in d.log(), "the refusal says why",
         d.log()[-1500:])
    t.eq((peer_serial(d.http_port), peer_serial(tls_port)), (0x3003, 0x3003),
         "and the old certificate keeps serving on both")
    hook = run_hook(os.path.join(tmp, "no-such-lineage"), config)
    t.ok(hook.returncode != 0, "the hook fails when certbot's files are missing", hook.stderr)
    env = dict(os.environ)
    env.pop("MEETLITE_ADMIN_TOKEN", None)
    r = subprocess.run([CLI, "--config", config, "tls-reload"], capture_output=True, text=True,
                       timeout=60, env=env)
    t.ok(r.returncode == 1 and "409" in r.stderr, "meetlite-admin tls-reload reports the refusal",
         r.stdout + r.stderr)
    t.ok(relayed(b"after refusal"), "the call still relays")
    a.close()
    b.close()
finally:
    if d:
        t.ok(d.clean(), "clean exit, no sanitizer report", d.log()[-3000:])
        d.close()
    pg.close()

# the admin listener's certificate under a keep-alive connection, and a shared:// listener's
# (turn.tls-cert) under a TURN allocation made through it
put_pair(old, old, tls_dir)
port, shared_port = free_port(), free_port()
d = AdminDaemon(["admin.tls-cert=" + crt, "admin.tls-key=" + key,
                 "turn.listen=shared://127.0.0.1:%d" % shared_port,
                 "turn.tls-cert=" + crt, "turn.tls-key=" + key,
                 "turn.auth-secret-file=" + token_file], admin_port=port)
try:
    keep = KeepAlive(port, "/stats", token=TOKEN)
    t.ok(keep.first == 200 and keep.serial == 0x1001, "admin.listen over HTTPS, first certificate")
    c = TurnClient(("127.0.0.1", shared_port), transport="tls", tls_context=no_verify())
    c.login(*rest_credential(TOKEN, "shared"))  # the secret is the token file's line
    t.ok(c.allocate(expect_ok=False).cls == 2 and
         serial_of(c.sock.getpeercert(binary_form=True)) == 0x1001,
         "an allocation over TLS on the shared:// listener, first certificate")
    put_pair(new, new, tls_dir)
    d.signal(signal.SIGHUP)
    d.wait_log("TLS certificate loaded for admin.listen: /CN=new", 20)
    t.eq((peer_serial(port), peer_serial(shared_port)), (0x2002, 0x2002),
         "SIGHUP: new admin and shared:// connections see the new serial")
    status, same, serial = keep.still_same()
    t.ok(status == 200 and same and serial == 0x1001,
         "the admin keep-alive connection carries on with its certificate", (status, same, serial))
    t.ok(c.refresh(expect_ok=False).cls == 2, "the allocation on the shared:// listener carries on")
    c.close()
finally:
    t.ok(d.clean(), "clean exit, no sanitizer report", d.log()[-3000:])
    d.close()

# HTTPS on a shared:// listener: a ClientHello offering http/1.1 is handed to the HTTP layer
# before its handshake (its own vhost), one without ALPN is answered by the network worker;
# both take turn.tls-cert's new pair on SIGHUP
put_pair(old, old, tls_dir)
pg = Postgres()
d = None
try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "migrations applied (shared:// part)", r.stderr)
    sport, sturn = free_port(), free_port()
    d = ControlDaemon(pg.url, http_port=sport, turn_port=sturn, extra=[
        "turn.listen=udp://127.0.0.1:%d, shared://127.0.0.1:%d" % (sturn, sport),
        "turn.tls-cert=" + crt, "turn.tls-key=" + key])
    t.eq((peer_serial(sport, ["http/1.1"]), peer_serial(sport)), (0x1001, 0x1001),
         "shared://: HTTPS by ALPN (handed over) and without ALPN, first certificate")
    put_pair(new, new, tls_dir)
    d.signal(signal.SIGHUP)
    d.wait_log("TLS certificate loaded for turn.listen: /CN=new", 20)
    t.eq((peer_serial(sport, ["http/1.1"]), peer_serial(sport)), (0x2002, 0x2002),
         "SIGHUP: both paths of the shared:// listener see the new serial")
finally:
    if d:
        t.ok(d.clean(), "clean exit, no sanitizer report (shared://)", d.log()[-3000:])
        d.close()
    pg.close()
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(t.done())
