"""The admin API with PostgreSQL (issue #8), two nodes sharing a database: TURN users created
through the API authenticate against the relay at once on the node that made them and within a
second on the other, deleted ones stop (their allocations closed); shared secrets rotate under
live allocations (made with the old one they keep relaying, new credentials from it are refused,
the newest signs the control plane's join credentials too); /stats and /metrics with the control
plane (meetings, participants, HTTP answers, database pools, top meetings) accepted by promtool;
allocations found and closed by meeting id and join code; drain mode refusing joins with 503
draining; /readyz and the database."""

import base64
import hashlib
import hmac
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Tap, free_port, long_term_key  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, TURN_SECRET, rest_password  # noqa: E402
from mladmin import (TOKEN, AdminApi, AdminDaemon, Pair, cli, metric, promtool,  # noqa: E402
                     release, tcp_port, TOP_SRCDIR)
from mlrelay import wait_until  # noqa: E402
from turnclient import TurnClient  # noqa: E402

t = Tap()
pg = Postgres()
nodes = []
pairs = []
REALM = "meetlite"


def allocate(server, user, password, sha256=False):
    """Allocate with a long-term credential: 'ok', an error code, or None (no answer)."""
    c = TurnClient(server, timeout=1.0)
    c.login(user, password, sha256=sha256)
    try:
        r = c.allocate(expect_ok=False)
    except TimeoutError:
        return None
    finally:
        pass
    code = "ok" if r.cls == 2 else r.error()
    if code == "ok":
        release(c)
    else:
        c.close()
    return code


def rest_cred(secret, ident, ttl=600):
    user = "%d:%s" % (int(time.time()) + ttl, ident)
    return user, rest_password(secret, user)


def signed_with(secret, user, password):
    return base64.b64encode(hmac.new(secret.encode(), user.encode(), hashlib.sha1).digest()).decode() == password


try:
    # ------------------------------------------------------------ the schema, by meetlite-admin
    rc, out, err = cli("migrate", "--database-url", pg.url, "--migrations-dir",
                       os.path.join(TOP_SRCDIR, "sql"), token=None)
    t.ok(rc == 0 and "schema up to date" in out, "meetlite-admin migrate applies the schema", out + err)
    rc, out, err = cli("migrate", "--database-url", pg.url, "--migrations-dir",
                       os.path.join(TOP_SRCDIR, "sql"), token=None)
    t.ok(rc == 0 and "(0 migrations applied" in out, "a second migrate applies nothing", out + err)
    t.eq(pg.psql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'turn_users' "
                 "AND column_name LIKE '%pass%'"), "0", "turn_users has no password column")

    a1 = tcp_port()
    n1 = ControlDaemon(pg.url, ["admin.listen=127.0.0.1:%d" % a1, "admin.token=" + TOKEN,
                                "turn.allow-peers=127.0.0.0/8", "turn.relay-ports=43000-43999",
                                "net.workers=2", "database.reconnect-max=500"])
    nodes.append(n1)
    adm = AdminApi(a1)
    api = n1.api
    srv1 = ("127.0.0.1", n1.turn_port)
    n2 = AdminDaemon(["database.url=" + pg.url, "turn.auth-secret=" + TURN_SECRET,
                      "turn.relay-ports=44000-44999"])
    nodes.append(n2)
    srv2 = n2.server
    t.ok(wait_until(lambda: adm.stats()["turn"]["database_credentials"]["up"], 10),
         "node 1 keeps the TURN credentials in sync with PostgreSQL")
    t.ok(wait_until(lambda: n2.api.stats()["turn"]["database_credentials"]["up"], 10),
         "node 2 (TURN-only) too")

    # ------------------------------------------------------------ TURN users
    r = adm.post("/v1/turn/users", {"name": "carol", "password": "carol-pass-123"})
    t.ok(r.status == 201 and r.json["name"] == "carol" and r.json["realm"] == REALM,
         "a TURN user is created", r)
    t.ok("password" not in r.json, "the answer has no password")
    t.eq(allocate(srv1, "carol", "carol-pass-123"), "ok",
         "the new user authenticates at once on the node that created it")
    t.eq(allocate(srv1, "carol", "carol-pass-123", sha256=True), "ok", "with SHA-256 keys too")
    t.eq(allocate(srv1, "carol", "wrong-password"), 401, "a wrong password is refused")
    t.ok(wait_until(lambda: allocate(srv2, "carol", "carol-pass-123") == "ok", 2),
         "the other node takes the user within a second (NOTIFY)")
    key = pg.psql("SELECT encode(md5_key, 'hex') FROM turn_users WHERE name = 'carol'")
    t.eq(key, long_term_key("carol", REALM, "carol-pass-123").hex(), "PostgreSQL holds the MD5 key")
    t.eq(pg.psql("SELECT count(*) FROM turn_users t WHERE t::text LIKE '%carol-pass%'"), "0",
         "and never the password")
    r = adm.get("/v1/turn/users")
    t.ok(r.status == 200 and [u["name"] for u in r.json["users"]] == ["carol"] and
         "created_at" in r.json["users"][0] and len(r.json["users"][0]) == 2,
         "users are listed, names and dates only", r)
    r = adm.post("/v1/turn/users", {"name": "carol", "password": "another-pass-1"})
    t.ok(r.status == 409 and r.code() == "conflict", "a second carol: 409", r)
    for body, desc in [({"name": "bad name", "password": "12345678"}, "a space in the name"),
                       ({"name": "a:b", "password": "12345678"}, "a ':' in the name"),
                       ({"name": "dave", "password": "short"}, "a password under 8 characters"),
                       ({"name": "dave"}, "no password")]:
        r = adm.post("/v1/turn/users", body)
        t.ok(r.status == 422, "user refused: %s" % desc, r)
    t.ok("carol-pass-123" not in n1.log(), "no password in the log")

    live = TurnClient(srv1, timeout=1.0)
    live.login("carol", "carol-pass-123")
    live.allocate()
    r = adm.delete("/v1/turn/users/carol")
    t.ok(r.status == 200 and r.json["allocations_closed"] == 1, "the user is deleted, its allocation closed", r)
    t.eq(adm.get("/v1/turn/allocations?user=carol").json["total"], 0,
         "the deleted user's allocation is gone")
    live.close()
    t.eq(allocate(srv1, "carol", "carol-pass-123"), 401, "a deleted user is refused at once")
    t.ok(wait_until(lambda: allocate(srv2, "carol", "carol-pass-123") == 401, 2),
         "and on the other node within a second")
    r = adm.delete("/v1/turn/users/carol")
    t.ok(r.status == 404, "deleting it again: 404", r)

    # a user made by hand in PostgreSQL reaches the relays too (the NOTIFY is the table's)
    md5 = long_term_key("erin", REALM, "erin-pass-123").hex()
    sha = hashlib.sha256(b"erin:%s:erin-pass-123" % REALM.encode()).hexdigest()
    pg.psql("INSERT INTO turn_users (realm, name, md5_key, sha256_key) VALUES ('%s', 'erin', "
            "decode('%s', 'hex'), decode('%s', 'hex'))" % (REALM, md5, sha))
    t.ok(wait_until(lambda: allocate(srv2, "erin", "erin-pass-123") == "ok", 2),
         "a user inserted with psql authenticates within a second")

    # ------------------------------------------------------------ secrets under live allocations
    r = adm.get("/v1/turn/secrets")
    t.ok(r.status == 200 and r.json["secrets"] == [] and r.json["signing"]["source"] == "configuration",
         "no runtime secret yet: turn.auth-secret signs", r)
    S1 = "runtime-secret-one-0123456789"
    r = adm.post("/v1/turn/secrets", {"secret": S1})
    t.ok(r.status == 201 and r.json["signing"] is True and "secret" not in r.json,
         "a secret is added (and not echoed)", r)
    id1 = r.json["id"]
    r = adm.get("/v1/turn/secrets")
    t.ok(len(r.json["secrets"]) == 1 and r.json["secrets"][0]["signing"] and
         r.json["signing"]["source"] == "database" and S1 not in r.raw.decode(),
         "listed by fingerprint, never by value", r)
    c = adm.post("/v1/turn/credentials", {"id": "rot.a"}).json
    t.ok(signed_with(S1, c["username"], c["password"]), "new credentials are signed with it")
    # the control plane signs join credentials with it too
    host_tok, _ = api.user("host@example.org", name="Host")
    ann_tok, _ = api.user("ann@example.org", name="Ann")
    m = api.meeting(host_tok, "Rotation", max_participants=10)
    j = api.post("/api/v1/meetings/%s/join" % m["id"], None, host_tok).json
    t.ok(signed_with(S1, j["turn"]["username"], j["turn"]["password"]),
         "the control plane's join credentials are signed with it", j.get("turn"))
    old_a = (c["username"], c["password"])
    old_b = tuple(adm.post("/v1/turn/credentials", {"id": "rot.b"}).json[k] for k in ("username", "password"))
    p = Pair(srv1, old_a, old_b)
    pairs.append(p)
    t.ok(p.once(b"before"), "allocations made with secret one relay")
    r = adm.post("/v1/turn/secrets", {})
    t.ok(r.status == 201 and len(r.json.get("secret", "")) >= 40, "a second secret is made up and shown once", r)
    S2, id2 = r.json["secret"], r.json["id"]
    t.ok(S2 not in n1.log(), "the made-up secret is not logged")
    r = adm.delete("/v1/turn/secrets/%d" % id1)
    t.ok(r.status == 200 and r.json["retired"] == id1, "secret one is retired", r)
    t.ok(p.once(b"after"), "allocations made with the retired secret keep relaying")
    p.start_flow(interval=0.005)
    time.sleep(0.3)
    p.stop_flow()
    t.ok(p.once(b"still"), "through a burst of traffic")
    fresh = rest_cred(S1, "rot.c")
    t.eq(allocate(srv1, *fresh), 401, "a new credential from the retired secret is refused")
    t.ok(wait_until(lambda: allocate(srv2, *fresh) == 401, 2), "on the other node too")
    c2 = adm.post("/v1/turn/credentials", {"id": "rot.d"}).json
    t.ok(signed_with(S2, c2["username"], c2["password"]), "the new secret signs from now on")
    t.eq(allocate(srv1, c2["username"], c2["password"]), "ok", "and its credentials allocate")
    t.ok(wait_until(lambda: allocate(srv2, c2["username"], c2["password"]) == "ok", 2),
         "on the other node too")
    t.eq(allocate(srv1, *rest_cred(TURN_SECRET, "cfg.x")), "ok", "turn.auth-secret keeps working")
    j = api.post("/api/v1/meetings/%s/join" % m["id"], None, ann_tok).json
    t.ok(signed_with(S2, j["turn"]["username"], j["turn"]["password"]),
         "joins get credentials of the new secret", j.get("turn"))
    for body, desc, code in [({"secret": "short"}, "a secret under 16 characters", 422),
                             ({"secret": "has a space in it!!"}, "white space", 422),
                             ({"secret": S2}, "an existing secret", 409)]:
        r = adm.post("/v1/turn/secrets", body)
        t.ok(r.status == code, "secret refused: %s" % desc, r)
    r = adm.delete("/v1/turn/secrets/%d" % id1)
    t.eq(r.status, 404, "retiring it again: 404")
    r = adm.delete("/v1/turn/secrets/%d" % id2)
    t.ok(r.status == 200, "the last runtime secret retired", r)
    c3 = adm.post("/v1/turn/credentials", {"id": "rot.e"}).json
    t.ok(signed_with(TURN_SECRET, c3["username"], c3["password"]),
         "without runtime secrets turn.auth-secret signs again")

    # ------------------------------------------------------------ stats with the control plane
    # joined again (the same participants): fresh credentials, signed with turn.auth-secret now
    hj = api.post("/api/v1/meetings/%s/join" % m["id"], None, host_tok).json
    aj = api.post("/api/v1/meetings/%s/join" % m["id"], None, ann_tok).json
    tag = pg.psql("SELECT turn_tag FROM meetings WHERE id = '%s'" % m["id"])
    q = Pair(srv1, (hj["turn"]["username"], hj["turn"]["password"]),
             (aj["turn"]["username"], aj["turn"]["password"]))
    pairs.append(q)
    t.ok(q.once(b"meeting"), "two participants of the meeting relay")
    s = adm.stats()
    cp = s["control"]
    t.ok(cp["enabled"] and cp["meetings_active"] >= 1 and cp["participants_present"] >= 2,
         "stats: active meetings and present participants", cp)
    t.ok(cp["http_responses"].get("201", 0) >= 3 and cp["http_responses"].get("200", 0) >= 3,
         "stats: HTTP answers by status", cp["http_responses"])
    t.ok(cp["database"]["size"] == 4 and cp["database"]["up"] >= 1 and cp["database"]["jobs"] > 0,
         "stats: the control plane's pool", cp["database"])
    t.ok(s["admin"]["database"]["size"] == 2, "stats: the admin pool", s["admin"])
    t.ok("websocket_connections" in cp, "stats: WebSocket connections")
    top = s["allocations_per_meeting"]["top"]
    mine = [x for x in top if x["tag"] == tag]
    t.ok(mine and mine[0]["allocations"] == 2 and mine[0]["meeting_id"] == m["id"] and
         mine[0]["title"] == "Rotation" and mine[0]["code"] == m["code"],
         "stats: the meeting's allocations, with its id, code and title from the database", top)
    t.ok(s["turn"]["runtime_credentials"]["users"] == 1, "stats: one runtime user (erin)", s["turn"]["runtime_credentials"])
    text = adm.metrics()
    pt = promtool(text)
    t.ok(pt[0] == 0, "promtool accepts /metrics with the control plane", pt[1] + text[:3000])
    t.ok(metric(text, "meetlite_meetings_active") >= 1 and metric(text, "meetlite_participants_present") >= 2,
         "metrics: meetings and participants")
    t.ok(metric(text, 'meetlite_http_responses_total{listener="api",code="201"}') >= 3,
         "metrics: the API's answers by status")
    t.ok(metric(text, 'meetlite_db_job_duration_seconds_count{pool="api"}') > 0,
         "metrics: database job latency")
    t.eq(metric(text, 'meetlite_db_pool_connections{pool="api"}'), 4.0, "metrics: the API pool's size")
    t.ok(tag not in text and m["id"] not in text, "metrics: nothing per meeting")
    t.ok(metric(text, "meetlite_turn_revocations_total") is not None, "metrics: the relay link's figures (#5)")

    # ------------------------------------------------------------ allocations by meeting id and code
    r = adm.get("/v1/turn/allocations?meeting=" + m["id"])
    t.ok(r.status == 200 and r.json["total"] == 2 and all(a["meeting_tag"] == tag for a in r.json["allocations"]),
         "allocations of a meeting found by its id", r)
    r = adm.get("/v1/turn/allocations?meeting=" + m["code"].upper())
    t.eq(r.json["total"], 2, "and by its join code, in any case")
    r = adm.get("/v1/turn/allocations?meeting=" + "0" * 8 + "-0000-0000-0000-" + "0" * 12)
    t.ok(r.status == 404 and r.code() == "meeting_not_found", "an unknown meeting: 404", r)
    r = adm.get("/v1/turn/allocations?meeting=%s&participant=%s" % (m["id"], aj["participant_id"]))
    t.ok(r.json["total"] == 1 and r.json["allocations"][0]["participant"] == aj["participant_id"],
         "a participant of a meeting", r)

    # ------------------------------------------------------------ drain mode and joins
    bob_tok, _ = api.user("bob@example.org", name="Bob")
    r = adm.put("/v1/drain", {"draining": True})
    t.eq(r.status, 200, "drain mode on")
    r = api.post("/api/v1/meetings/%s/join" % m["id"], None, bob_tok)
    t.ok(r.status == 503 and r.code() == "draining", "a join is refused with 503 draining", r)
    t.ok(r.headers.get("retry-after", "").isdigit(), "and says when to come back (Retry-After)", r)
    t.eq(api.get("/api/v1/meetings/%s" % m["id"], token=host_tok).status, 200, "other requests carry on")
    t.ok(q.once(b"draining"), "the meeting's allocations keep relaying")
    t.eq(allocate(srv1, *rest_cred(TURN_SECRET, "drain.x")), 508, "a new allocation: 508")
    r = adm.get("/readyz", token=None)
    t.ok(r.status == 503 and r.json["database"] == "up", "/readyz: 503 while draining, database up", r)
    adm.put("/v1/drain", {"draining": False})
    r = api.post("/api/v1/meetings/%s/join" % m["id"], None, bob_tok)
    t.eq(r.status, 200, "joins are taken again after drain mode")
    r = adm.get("/readyz", token=None)
    t.ok(r.status == 200 and r.json["database"] == "up", "/readyz: 200, database up", r)

    # ------------------------------------------------------------ closing a meeting, its usage
    r = adm.post("/v1/turn/allocations/close", {"meeting": m["id"]})
    t.ok(r.status == 200 and r.json["closed"] == 2, "a meeting's allocations closed by its id", r)
    r = adm.get("/v1/meetings/%s/usage" % m["id"])
    t.ok(r.status == 200 and "totals" in r.json, "the meeting's relay usage (sql/003)", r)
    r = adm.get("/v1/meetings/abc-defg-hij/usage")
    t.eq(r.status, 404, "usage of an unknown meeting: 404")

    # ------------------------------------------------------------ a node whose database is away
    n3 = AdminDaemon(["database.url=host=/nonexistent port=1 dbname=x connect_timeout=1",
                      "database.reconnect-max=500"])
    nodes.append(n3)
    r = wait_until(lambda: n3.api.get("/readyz", token=None).status == 503, 5)
    r = n3.api.get("/readyz", token=None)
    t.ok(r.status == 503 and r.json["database"] == "down", "/readyz: 503 when the database is unreachable", r)
    t.eq(n3.api.get("/healthz", token=None).status, 200, "/healthz: still alive")
    r = n3.api.post("/v1/turn/users", {"name": "x", "password": "12345678"})
    t.ok(r.status == 503 and r.headers.get("retry-after"), "a change needs the database: 503 Retry-After", r)
    s = n3.api.stats()
    t.ok(s["turn"]["database_credentials"]["up"] is False, "stats: the sync is down", s["turn"].get("database_credentials"))
finally:
    for p in pairs:
        p.close()
    for n in nodes:
        t.ok(n.clean(), "node %d: clean exit, no sanitizer report" % (nodes.index(n) + 1), n.log()[-3000:])
        n.close()
    pg.close()

sys.exit(t.done())
