"""The admin API on a TURN-only node (issue #8): every route without a token, with a wrong one
of the same length and with a right one (two tokens, rotated by SIGHUP); health probes without a
token; 404, 405, bounded and malformed bodies; /metrics accepted by promtool; counters that move
while two allocations relay to each other; REST credentials; allocations listed and closed by
id, meeting, participant, user and client address; drain mode; the log level; the loopback rule."""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import MEETLITED, Tap, free_port  # noqa: E402
from mladmin import (TOKEN, TOKEN2, WRONG, AdminDaemon, Pair, metric, promtool,  # noqa: E402
                     raw_post, release, tcp_port)
from turnclient import TurnClient  # noqa: E402

t = Tap()
TAG = "0123456789abcdef"  # a meeting's TURN tag, as the control plane makes them

d = AdminDaemon(["turn.static-users=alice:alice-password-1", "turn.auth-secret=cfg-secret-0123456789"])
api = d.api
pairs = []


def cred(ident, ttl=600):
    r = api.post("/v1/turn/credentials", {"id": ident, "ttl": ttl})
    if r.status != 200:
        raise RuntimeError("credential: %r" % r)
    return r.json["username"], r.json["password"]


def pair(ca, cb):
    p = Pair(d.server, ca, cb)
    pairs.append(p)
    return p


def alive(client):
    """The allocation answers a Refresh (437 once it is gone)."""
    r = client.refresh(expect_ok=False)
    return r is not None and r.cls == 2


try:
    # ------------------------------------------------------------ tokens on every route
    routes = [("GET", "/stats", None), ("GET", "/metrics", None),
              ("GET", "/v1/turn/users", None), ("POST", "/v1/turn/users", {"name": "x", "password": "12345678"}),
              ("DELETE", "/v1/turn/users/x", None),
              ("POST", "/v1/turn/credentials", {"id": "p"}),
              ("GET", "/v1/turn/allocations", None),
              ("POST", "/v1/turn/allocations/close", {"user": "nobody"}),
              ("DELETE", "/v1/turn/allocations/1", None),
              ("GET", "/v1/turn/secrets", None), ("POST", "/v1/turn/secrets", {}),
              ("DELETE", "/v1/turn/secrets/1", None),
              ("GET", "/v1/drain", None), ("PUT", "/v1/drain", {"draining": False}),
              ("GET", "/v1/log-level", None), ("PUT", "/v1/log-level", {"level": "info"}),
              ("POST", "/v1/tls/reload", None), ("GET", "/v1/meetings/abc-defg-hij/usage", None),
              ("GET", "/no/such/route", None), ("PATCH", "/stats", {})]
    for method, path, body in routes:
        r = api.call(method, path, body=body, token=None)
        t.ok(r.status == 401 and r.code() == "unauthenticated" and
             r.headers.get("www-authenticate", "").startswith("Bearer"),
             "%s %s without a token: 401 unauthenticated" % (method, path), r)
        r = api.call(method, path, body=body, token=WRONG)
        t.ok(r.status == 401 and r.code() == "invalid_token",
             "%s %s with a wrong token of the same length: 401 invalid_token" % (method, path), r)
        r = api.call(method, path, body=body, token=TOKEN[:-1])
        t.ok(r.status == 401, "%s %s with a prefix of the token: 401" % (method, path), r)
        r = api.call(method, path, body=body, headers={"Authorization": "Basic " + TOKEN})
        t.ok(r.status == 401, "%s %s with the token as Basic: 401" % (method, path), r)
        r = api.call(method, path, body=body)
        t.ok(r.status != 401 and r.json is not None if path != "/metrics" else r.status == 200,
             "%s %s with the token: %d" % (method, path, r.status), r)
    r = api.get("/no/such/route")
    t.ok(r.status == 404 and r.code() == "not_found", "unknown route with the token: 404", r)
    r = api.call("PATCH", "/stats", body={})
    t.ok(r.status == 405 and r.code() == "method_not_allowed" and r.headers.get("allow") == "GET",
         "wrong method: 405 with Allow", r)
    r = api.delete("/v1/drain")
    t.ok(r.status == 405 and "PUT" in r.headers.get("allow", ""), "DELETE /v1/drain: 405, Allow lists GET and PUT", r)
    r = api.get("/stats", token=TOKEN2)
    t.ok(r.status == 200, "the second token of the list works", r)
    for path in ("/healthz", "/readyz"):
        r = api.get(path, token=None)
        t.ok(r.status == 200 and r.json["status"] in ("ok", "ready"), "%s answers without a token" % path, r)
    t.ok(TOKEN not in d.log() and TOKEN2 not in d.log(), "no token in the log")

    # ------------------------------------------------------------ bodies
    r = raw_post(d.admin_port, "/v1/turn/credentials", b"x" * 20000, TOKEN)
    t.ok(r[0] == 413, "a body over 16 KiB: 413 before it is read", r)
    r = raw_post(d.admin_port, "/v1/kb/articles", b"x" * (600 * 1024), TOKEN)
    t.ok(r[0] == 413, "an article file over 512 KiB (that route's own bound): 413 before it is read", r)
    r = raw_post(d.admin_port, "/v1/drain", None, TOKEN, method="PUT")
    t.ok(r[0] == 411, "PUT without Content-Length: 411", r)
    r = api.put("/v1/drain", raw=b"{\"draining\": true}", headers={"Content-Type": "text/plain"})
    t.ok(r.status == 415, "a body that is not application/json: 415", r)
    r = api.put("/v1/drain", raw=b"{draining", headers={"Content-Type": "application/json"})
    t.ok(r.status == 400 and r.code() == "invalid_json", "malformed JSON: 400 invalid_json", r)
    r = api.put("/v1/drain", {})
    t.ok(r.status == 422 and r.code() == "missing_field", "a missing field: 422", r)
    r = api.put("/v1/log-level", {"level": "loud"})
    t.ok(r.status == 422 and r.code() == "invalid_field", "an unknown log level: 422", r)
    r = api.post("/v1/tls/reload", raw=b"{}", headers={"Content-Type": "application/json"})
    t.ok(r.status == 400, "a body where none is taken: 400", r)
    t.ok(d.alive(), "the daemon is alive after the malformed requests")

    # ------------------------------------------------------------ /stats and /metrics at rest
    s = api.stats()
    version = subprocess.run([MEETLITED, "--version"], capture_output=True, text=True).stdout.split()[-1]
    t.eq(s["process"]["version"], version, "stats: the version is meetlited --version's")
    t.ok(s["process"]["threads"] >= 4 and s["process"]["rss_bytes"] > 0 and s["process"]["open_fds"] > 0
         and s["process"]["uptime_s"] >= 0, "stats: threads, RSS, open fds, uptime", s["process"])
    t.eq(s["process"]["pid"], d.proc.pid, "stats: the pid is the daemon's")
    t.ok(s["control"]["enabled"] is False and "meetings_active" not in s["control"],
         "stats: a TURN-only node has no control-plane figures", s["control"])
    text = api.metrics()
    pt = promtool(text)
    t.ok(pt[0] == 0, "promtool check metrics accepts /metrics at rest", pt[1] + text[:2000])
    t.eq(metric(text, "meetlite_control_plane_enabled"), 0.0, "metrics: no control plane here")
    r = api.get("/metrics")
    t.ok(r.headers.get("content-type", "").startswith("text/plain; version=0.0.4"),
         "metrics: Prometheus text format 0.0.4", r.headers)

    # ------------------------------------------------------------ counters move while traffic flows
    ca, cb = cred(TAG + ".pa"), cred(TAG + ".pb")
    p = pair(ca, cb)
    t.ok(p.once(b"first"), "two allocations relay to each other")
    s1 = api.stats()
    m1 = api.metrics()
    p.start_flow(interval=0.002)
    time.sleep(0.6)
    s2 = api.stats()
    m2 = api.metrics()
    time.sleep(0.6)
    s3 = api.stats()
    m3 = api.metrics()
    p.stop_flow()
    rx = [x["turn"]["relayed"]["to_peers"]["packets"] for x in (s1, s2, s3)]
    tx = [x["turn"]["relayed"]["to_clients"]["packets"] for x in (s1, s2, s3)]
    t.ok(rx[0] < rx[1] < rx[2], "stats: packets relayed to peers grow during the flow %r" % rx)
    t.ok(tx[0] < tx[1] < tx[2], "stats: packets relayed to clients grow during the flow %r" % tx)
    by = [x["turn"]["relayed"]["to_peers"]["bytes"] for x in (s1, s2, s3)]
    t.ok(by[2] - by[1] >= 200 * (rx[2] - rx[1]), "stats: bytes grow with the packets %r" % by)
    mv = [metric(m, "turn_total_traffic_rcvp") for m in (m1, m2, m3)]
    t.ok(mv[0] < mv[1] < mv[2], "metrics: turn_total_traffic_rcvp grows during the flow %r" % mv)
    mv = [metric(m, "turn_total_traffic_sentb") for m in (m1, m2, m3)]
    t.ok(mv[0] < mv[1] < mv[2], "metrics: turn_total_traffic_sentb grows during the flow %r" % mv)
    mv = [metric(m, "turn_udp_recvmmsg_calls") for m in (m1, m2, m3)]
    t.ok(mv[0] < mv[1] < mv[2], "metrics: turn_udp_recvmmsg_calls grows during the flow %r" % mv)
    t.ok(metric(m3, 'meetlite_udp_recvmmsg_batch_size_bucket{le="+Inf"}') ==
         metric(m3, "meetlite_udp_recvmmsg_batch_size_count") == metric(m3, "turn_udp_recvmmsg_calls"),
         "metrics: the batch-size histogram counts every recvmmsg call")
    t.eq(metric(m3, 'turn_total_allocations{type="udp"}'), 2.0, "metrics: two UDP allocations")
    t.eq(s3["turn"]["allocations"]["total"], 2, "stats: two allocations")
    t.ok(s3["turn"]["permissions"] >= 2 and s3["turn"]["channels"] >= 1, "stats: permissions and channels", s3["turn"])
    t.ok(s3["turn"]["error_responses"]["401"] >= 2, "stats: the challenges counted as 401s", s3["turn"]["error_responses"])
    top = s3["allocations_per_meeting"]["top"]
    t.ok(len(top) == 1 and top[0]["tag"] == TAG and top[0]["allocations"] == 2,
         "stats: allocations per meeting (top N)", top)
    more = []
    big, small = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"  # two more meetings' tags
    for ident in (big + ".p1", big + ".p2", big + ".p3", small + ".p1"):
        mc = TurnClient(d.server)
        mc.login(*cred(ident))
        mc.allocate()
        more.append(mc)
    r = api.get("/stats?top=2")
    top = r.json["allocations_per_meeting"]["top"] if r.status == 200 else None
    t.ok(top is not None and [(g["tag"], g["allocations"]) for g in top] == [(big, 3), (TAG, 2)],
         "stats?top=2: the two largest meetings, largest first", top)
    for mc in more:
        mc.refresh(0)
        mc.close()
    t.ok(TAG not in m3, "metrics: no per-meeting label")
    pt = promtool(m3)
    t.ok(pt[0] == 0, "promtool accepts /metrics under traffic", pt)
    r = api.get("/stats?top=0")
    t.ok(r.status == 200 and r.json["allocations_per_meeting"]["top"] == [], "stats?top=0 lists no meeting")
    r = api.get("/stats?top=5000")
    t.ok(r.status == 422, "stats?top beyond 1000: 422", r)

    # ------------------------------------------------------------ credentials
    u, pw = cred("any-id.x", ttl=120)
    c = TurnClient(d.server)
    c.login(u, pw)
    t.ok(c.allocate(expect_ok=False).cls == 2, "a credential from the admin API allocates")
    exp = int(u.split(":")[0])
    t.ok(abs(exp - (time.time() + 120)) < 5, "its expiry is now + ttl")
    release(c)
    for body, desc in [({"id": "a:b"}, "a ':' in the id"), ({"id": ""}, "an empty id"),
                       ({"id": "x", "ttl": 0}, "ttl 0"), ({"id": "x", "ttl": 10 ** 9}, "a huge ttl"),
                       ({"ttl": 5}, "no id")]:
        r = api.post("/v1/turn/credentials", body)
        t.ok(r.status == 422, "credential refused: %s" % desc, r)

    # ------------------------------------------------------------ listing and closing allocations
    alice = TurnClient(d.server)
    alice.login("alice", "alice-password-1")
    alice.allocate()
    other = TurnClient(d.server)
    other.login(*cred("f" * 16 + ".someone"))
    other.allocate()
    r = api.get("/v1/turn/allocations")
    t.ok(r.status == 200 and r.json["total"] == 4 and len(r.json["allocations"]) == 4,
         "all four allocations listed", r)
    a0 = r.json["allocations"][0]
    t.ok(set(a0) >= {"id", "credential_id", "transport", "client", "relayed", "created_at", "expires_at",
                     "permissions", "channels", "usage"}, "an allocation's fields", a0)
    r = api.get("/v1/turn/allocations?limit=1")
    t.ok(r.json["total"] == 4 and len(r.json["allocations"]) == 1 and r.json["truncated"],
         "limit: one returned, total 4, truncated", r)
    r = api.get("/v1/turn/allocations?meeting=" + TAG)
    t.ok(r.json["total"] == 2 and {x["participant"] for x in r.json["allocations"]} == {"pa", "pb"},
         "filter by meeting tag", r)
    r = api.get("/v1/turn/allocations?participant=pa")
    t.ok(r.json["total"] == 1 and r.json["allocations"][0]["credential_id"] == TAG + ".pa",
         "filter by participant", r)
    r = api.get("/v1/turn/allocations?meeting=%s&participant=pb" % TAG)
    t.ok(r.json["total"] == 1 and r.json["allocations"][0]["participant"] == "pb",
         "filter by meeting and participant", r)
    r = api.get("/v1/turn/allocations?user=alice")
    t.ok(r.json["total"] == 1 and r.json["allocations"][0]["credential_id"] == "alice" and
         r.json["allocations"][0]["meeting_tag"] is None, "filter by user", r)
    host, port = alice.sock.getsockname()[:2]
    r = api.get("/v1/turn/allocations?client=%s:%d" % (host, port))
    t.ok(r.json["total"] == 1 and r.json["allocations"][0]["client"] == "%s:%d" % (host, port),
         "filter by client address and port", r)
    r = api.get("/v1/turn/allocations?client=127.0.0.1")
    t.eq(r.json["total"], 4, "filter by client IP (any port)")
    aid = r.json["allocations"][0]["id"]
    r = api.get("/v1/turn/allocations?id=" + aid)
    t.ok(r.json["total"] == 1 and r.json["allocations"][0]["id"] == aid, "filter by id", r)
    for q, desc in [("client=not-an-ip", "a bad client address"), ("limit=0", "limit 0"),
                    ("meeting=nonsense!", "a bad meeting reference"), ("id=abc", "a bad id"),
                    ("user=alice&meeting=" + TAG, "user together with meeting")]:
        r = api.get("/v1/turn/allocations?" + q)
        t.ok(r.status == 422, "listing refused: %s" % desc, r)
    r = api.get("/v1/turn/allocations?meeting=" + "1" * 36)
    t.ok(r.status in (422, 503), "a meeting id needs the database here", r)

    r = api.post("/v1/turn/allocations/close", {})
    t.ok(r.status == 422 and r.code() == "missing_field", "close without a filter: 422", r)
    r = api.delete("/v1/turn/allocations/999999999")
    t.ok(r.status == 404, "close an unknown allocation id: 404", r)
    r = api.get("/v1/turn/allocations?user=alice")
    r = api.delete("/v1/turn/allocations/" + r.json["allocations"][0]["id"])
    t.ok(r.status == 200 and r.json["closed"] == 1, "close one allocation by id", r)
    t.ok(not alive(alice), "alice's allocation is gone")
    r = api.post("/v1/turn/allocations/close", {"participant": "pa"})
    t.ok(r.status == 200 and r.json["closed"] == 1, "close a participant's allocations", r)
    t.ok(not alive(p.a) and alive(p.b), "only that participant's allocation is gone")
    r = api.post("/v1/turn/allocations/close", {"meeting": TAG})
    t.ok(r.status == 200 and r.json["closed"] == 1, "close a meeting's allocations", r)
    t.ok(not alive(p.b) and alive(other), "the meeting's allocations are gone, others live")
    host, port = other.sock.getsockname()[:2]
    r = api.post("/v1/turn/allocations/close", {"client": "%s:%d" % (host, port)})
    t.ok(r.status == 200 and r.json["closed"] == 1, "close by client address", r)
    t.ok(not alive(other), "that client's allocation is gone")
    alice2 = TurnClient(d.server)
    alice2.login("alice", "alice-password-1")
    alice2.allocate()
    r = api.post("/v1/turn/allocations/close", {"user": "alice"})
    t.ok(r.status == 200 and r.json["closed"] == 1, "close by user", r)
    for cl in (alice, other, alice2):
        release(cl)
    t.eq(api.get("/v1/turn/allocations").json["total"], 0, "no allocation left")

    # ------------------------------------------------------------ drain mode
    q = pair(cred(TAG + ".qa"), cred(TAG + ".qb"))
    r = api.put("/v1/drain", {"draining": True})
    t.ok(r.status == 200 and r.json["draining"] is True, "drain mode on", r)
    t.ok(api.get("/v1/drain").json["draining"] is True, "GET /v1/drain says so")
    c = TurnClient(d.server)
    c.login(*cred(TAG + ".late"))
    r = c.allocate(expect_ok=False)
    t.ok(r.cls == 3 and r.error() == 508, "a new Allocate gets 508 while draining", r.error())
    c.close()
    t.ok(q.once(b"still here"), "existing allocations keep relaying while draining")
    t.ok(alive(q.a), "and can refresh")
    r = api.get("/readyz", token=None)
    t.ok(r.status == 503 and r.json["draining"] is True, "/readyz is 503 while draining", r)
    r = api.get("/healthz", token=None)
    t.eq(r.status, 200, "/healthz stays 200 while draining")
    t.eq(api.stats()["turn"]["draining"], True, "stats: draining")
    t.eq(metric(api.metrics(), "meetlite_turn_draining"), 1.0, "metrics: draining")
    t.ok(api.stats()["turn"]["error_responses"]["508"] >= 1, "stats: the 508 counted")
    r = api.put("/v1/drain", {"draining": False})
    t.ok(r.status == 200 and r.json["draining"] is False, "drain mode off", r)
    c = TurnClient(d.server)
    c.login(*cred(TAG + ".later"))
    t.ok(c.allocate(expect_ok=False).cls == 2, "Allocate works again after drain mode")
    release(c)

    # ------------------------------------------------------------ log level, TLS reload without TLS
    r = api.put("/v1/log-level", {"level": "debug"})
    t.ok(r.status == 200 and r.json["level"] == "debug", "log level set to debug", r)
    t.eq(api.get("/v1/log-level").json["level"], "debug", "GET /v1/log-level says debug")
    api.put("/v1/log-level", {"level": "info"})
    t.ok("log level set to debug by the admin API" in d.log(), "the change is logged")
    r = api.post("/v1/tls/reload")
    t.ok(r.status == 409 and r.code() == "conflict", "TLS reload without a tls:// listener: 409", r)
    r = api.get("/v1/turn/users")
    t.ok(r.status == 409 and "database.url" in r.json["error"]["message"],
         "TURN users need a database: 409 on this node", r)
    r = api.post("/v1/turn/secrets", {})
    t.ok(r.status == 409, "secrets need a database: 409 on this node", r)
finally:
    for x in pairs:
        x.close()
    t.ok(d.clean(), "clean exit, no sanitizer report", d.log()[-3000:])
    d.close()

# tokens come from the file; a SIGHUP replaces them
conf = "/tmp/mladm-%d.conf" % os.getpid()
with open(conf, "w") as f:
    f.write("[admin]\ntoken = %s\n" % TOKEN)
d = AdminDaemon([], config=conf, tokens=())
try:
    # the --set of admin_sets with no tokens leaves the file's
    t.eq(d.api.get("/stats").status, 200, "a token from the configuration file works")
    with open(conf, "w") as f:
        f.write("[admin]\ntoken = %s\n" % TOKEN2)
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded")
    t.eq(d.api.get("/stats").status, 401, "after SIGHUP the old token is refused")
    t.eq(d.api.get("/stats", token=TOKEN2).status, 200, "and the new one accepted")
finally:
    t.ok(d.clean(), "clean exit after the token rotation", d.log()[-3000:])
    d.close()
    os.unlink(conf)

# the listener stays on loopback unless TLS or admin.allow-remote says otherwise
port = tcp_port()
r = subprocess.run([MEETLITED, "--set", "turn.listen=udp://127.0.0.1:%d" % free_port(), "--set",
                    "admin.listen=0.0.0.0:%d" % port, "--set", "admin.token=" + TOKEN, "--set",
                    "net.workers=1"], capture_output=True, text=True, timeout=30)
t.ok(r.returncode != 0 and "not a loopback address" in r.stderr + r.stdout,
     "a non-loopback admin.listen without TLS is refused", r.stderr)
d = AdminDaemon(["admin.allow-remote=yes", "admin.listen=0.0.0.0:%d" % port], admin_port=port)
try:
    t.eq(d.api.get("/healthz", token=None).status, 200, "admin.allow-remote lets it listen beyond loopback")
finally:
    t.ok(d.clean(), "clean exit", d.log()[-2000:])
    d.close()
r = subprocess.run([MEETLITED, "--set", "admin.token=short", "--check-config"], capture_output=True,
                   text=True, timeout=30)
t.ok(r.returncode != 0 and "admin.token" in r.stderr, "a token under 16 characters is refused", r.stderr)

sys.exit(t.done())
