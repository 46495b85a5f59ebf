"""TLS and the admin API (issue #8): the relay's certificate reloaded through POST
/v1/tls/reload (new TLS connections get the new one, an established one carries on, a broken
file keeps the old one); the admin listener itself over HTTPS, beyond loopback, with
meetlite-admin checking its certificate (--cacert), refusing an unknown one, or not checking
(-k)."""

import os
import shutil
import ssl
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Tap, free_port  # noqa: E402
from mladmin import (AdminApi, AdminDaemon, cli, make_cert, peer_cert_cn, release,  # noqa: E402
                     tcp_port, tmpdir)
from turnclient import TurnClient  # noqa: E402

t = Tap()
tmp = tmpdir()
certs = {cn: make_cert(tmp, cn) for cn in ("relay-one", "relay-two", "admin-host")}
live_crt, live_key = os.path.join(tmp, "live.crt"), os.path.join(tmp, "live.key")


def install(cn):
    shutil.copy(certs[cn][0], live_crt)
    shutil.copy(certs[cn][1], live_key)


install("relay-one")
tls_port = free_port()
d = AdminDaemon(["turn.listen=udp://127.0.0.1:%d, tls://127.0.0.1:%d" % (free_port(), tls_port),
                 "turn.tls-cert=" + live_crt, "turn.tls-key=" + live_key,
                 "turn.auth-secret=tls-secret-0123456789"])
try:
    t.eq(peer_cert_cn("127.0.0.1", tls_port), "relay-one", "the relay serves the first certificate")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    cr = d.api.post("/v1/turn/credentials", {"id": "tls.user"}).json
    before = TurnClient(("127.0.0.1", tls_port), transport="tls", tls_context=ctx)
    before.login(cr["username"], cr["password"])
    t.ok(before.allocate(expect_ok=False).cls == 2, "a TLS client allocates")

    install("relay-two")
    r = d.api.post("/v1/tls/reload")
    t.ok(r.status == 200 and r.json["reloaded"] is True, "POST /v1/tls/reload", r)
    t.eq(peer_cert_cn("127.0.0.1", tls_port), "relay-two", "new TLS connections get the new certificate")
    t.ok(before.refresh(expect_ok=False).cls == 2, "the connection made before the reload carries on")
    t.ok("TLS certificate loaded" in d.log() and "relay-two" in d.log(), "the reload is logged with the subject")

    with open(live_crt, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    r = d.api.post("/v1/tls/reload")
    t.ok(r.status == 409 and r.code() == "conflict" and r.json["error"]["message"],
         "a broken certificate file: 409 with the reason", r)
    t.eq(peer_cert_cn("127.0.0.1", tls_port), "relay-two", "and the previous certificate keeps serving")
    rc, out, err = cli("-u", "http://127.0.0.1:%d" % d.admin_port, "tls-reload")
    t.ok(rc == 1 and "409" in err, "meetlite-admin tls-reload reports the failure (exit 1)", out + err)
    install("relay-one")
    rc, out, err = cli("-u", "http://127.0.0.1:%d" % d.admin_port, "tls-reload")
    t.ok(rc == 0 and "reloaded" in out, "meetlite-admin tls-reload", out + err)
    t.eq(peer_cert_cn("127.0.0.1", tls_port), "relay-one", "the first certificate is back")
    release(before)
finally:
    t.ok(d.clean(), "clean exit, no sanitizer report", d.log()[-3000:])
    d.close()

# the admin listener over HTTPS, on every address (TLS makes that allowed)
crt, key = certs["admin-host"]
port = tcp_port()
d = AdminDaemon(["admin.listen=0.0.0.0:%d" % port, "admin.tls-cert=" + crt, "admin.tls-key=" + key],
                admin_port=port)
try:
    t.ok("admin API listening on https://0.0.0.0:%d" % port in d.log(), "the admin API listens with TLS on 0.0.0.0")
    ctx = ssl.create_default_context(cafile=crt)
    api = AdminApi(port, tls_context=ctx)
    r = api.get("/stats")
    t.ok(r.status == 200 and r.json["process"]["pid"] == d.proc.pid, "GET /stats over HTTPS", r)
    t.eq(api.get("/stats", token=None).status, 401, "over HTTPS too, no token: 401")
    plain = AdminApi(port)
    try:
        plain.get("/healthz", token=None, timeout=3)
        spoke_plain = True
    except Exception:  # noqa: BLE001 - refused or garbled: either way no plain HTTP
        spoke_plain = False
    t.ok(not spoke_plain, "plain HTTP is not served on the TLS port")
    url = "https://127.0.0.1:%d" % port
    rc, out, err = cli("-u", url, "--cacert", crt, "stats")
    t.ok(rc == 0 and "meetlited" in out, "meetlite-admin --cacert checks the certificate and talks", out + err)
    rc, out, err = cli("-u", url, "--cacert", certs["relay-one"][0], "stats")
    t.ok(rc == 3, "meetlite-admin refuses a certificate its CA did not sign (exit 3)", out + err)
    rc, out, err = cli("-u", url, "-k", "--json", "drain")
    t.ok(rc == 0 and '"draining": false' in out, "meetlite-admin -k skips the check", out + err)
finally:
    t.ok(d.clean(), "clean exit, no sanitizer report", d.log()[-3000:])
    d.close()
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(t.done())
