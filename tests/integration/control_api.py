"""The control plane's REST API against a private PostgreSQL: every endpoint's success and error
paths, authorization (only ADMIN ends, removes or changes roles; outsiders do not see the
roster), request validation (types, lengths, SQL metacharacters, invalid UTF-8, oversized,
malformed and chunked bodies), errors as JSON with request ids, CORS, the access log, failed
login limits, and the TURN credential of a join (its HMAC recomputed, its expiry within the
meeting's, and Allocate on meetlited's own relay)."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import SUCCESS, Tap  # noqa: E402
from mlcontrol import (TURN_SECRET, ControlDaemon, Postgres, jwt_claims, migrate, raw_http,  # noqa: E402
                       raw_json_body, rest_password, turn_allocate)

t = Tap()
pg = Postgres()
d = None
try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "meetlited --migrate applies the schema", r.stdout + r.stderr)
    r = migrate(pg.url)
    t.ok(r.returncode == 0 and "0 migrations applied" in r.stdout + r.stderr,
         "--migrate a second time applies nothing", r.stdout + r.stderr)

    d = ControlDaemon(pg.url, ["control.cors-origins=https://app.example", "control.max-body=4k",
                               "auth.login-max-failures=3", "control.max-participants=20",
                               "control.default-participants=10"])
    api = d.api

    # ------------------------------------------------------------ health, errors, request ids
    r = api.get("/api/v1/health")
    t.ok(r.status == 200 and r.json["database"] == "up", "health: 200, database up", r)
    t.ok(len(r.headers.get("x-request-id", "")) > 4, "a generated X-Request-Id on every answer", r)
    r = api.get("/api/v1/health", headers={"X-Request-Id": "abc-123_x.y"})
    t.eq(r.headers.get("x-request-id"), "abc-123_x.y", "a sane client X-Request-Id is echoed")
    r = api.get("/api/v1/health", headers={"X-Request-Id": "bad id\u00e9<script>".encode("utf-8").decode("latin-1")})
    t.ok(r.headers.get("x-request-id") not in (None, "") and "<" not in r.headers["x-request-id"],
         "an insane X-Request-Id is replaced", r)
    r = api.get("/api/v1/nowhere")
    t.ok(r.status == 404 and r.code() == "not_found" and "message" in r.json["error"],
         "unknown path: 404 with {error:{code,message}}", r)
    r = api.call("DELETE", "/api/v1/me")
    t.ok(r.status == 405 and r.code() == "method_not_allowed" and "GET" in r.headers.get("allow", ""),
         "wrong method: 405 with Allow", r)

    # ------------------------------------------------------------ signup and login
    r = api.signup("alice@example.org", "correct horse", "Alice")
    t.ok(r.status == 201 and r.json["user"]["email"] == "alice@example.org" and r.json["token"],
         "signup: 201 with user and token", r)
    alice_tok, alice = r.json["token"], r.json["user"]["id"]
    c = jwt_claims(alice_tok)
    t.ok(c["sub"] == alice and c["aud"] == "meetlite-api" and c["iss"] == "meetlite" and
         c["exp"] > time.time(), "the access token carries sub, iss, aud, exp", c)
    r = api.signup("ALICE@Example.org", "another pass")
    t.ok(r.status == 409 and r.code() == "email_taken", "signup: e-mail unique without regard to case", r)
    pw_hash = pg.psql("SELECT password_hash FROM users WHERE email = 'alice@example.org'")
    t.ok(pw_hash.startswith("$argon2id$"), "the password is stored as an argon2id hash", pw_hash[:20])
    r = api.signup("short@example.org", "short")
    t.ok(r.status == 422 and r.code() == "invalid_field" and "password" in r.json["error"]["message"],
         "signup: short password 422", r)
    r = api.post("/api/v1/auth/signup", {"email": "not-an-address", "password": "long enough"})
    t.ok(r.status == 422 and "email" in r.json["error"]["message"], "signup: bad e-mail 422", r)
    r = api.post("/api/v1/auth/signup", {"password": "long enough"})
    t.ok(r.status == 422 and r.code() == "missing_field", "signup: missing e-mail 422 missing_field", r)
    r = api.post("/api/v1/auth/signup", {"email": 42, "password": "long enough"})
    t.ok(r.status == 422 and r.code() == "invalid_field", "signup: wrong type 422", r)

    r = api.post("/api/v1/auth/login", {"email": "Alice@example.org", "password": "correct horse"})
    t.ok(r.status == 200 and r.json["user"]["id"] == alice, "login: 200, e-mail case-insensitive", r)
    r = api.post("/api/v1/auth/login", {"email": "alice@example.org", "password": "wrong horse"})
    t.ok(r.status == 401 and r.code() == "invalid_credentials", "login: wrong password 401", r)
    r = api.post("/api/v1/auth/login", {"email": "nobody@example.org", "password": "whatever1"})
    t.ok(r.status == 401 and r.code() == "invalid_credentials", "login: unknown account 401, same code", r)
    # rate limit per account and address: 3 failures allowed (auth.login-max-failures=3), then 429
    api.post("/api/v1/auth/login", {"email": "alice@example.org", "password": "wrong 2"})
    api.post("/api/v1/auth/login", {"email": "alice@example.org", "password": "wrong 3"})
    r = api.post("/api/v1/auth/login", {"email": "alice@example.org", "password": "correct horse"})
    t.ok(r.status == 429 and r.code() == "rate_limited" and int(r.headers.get("retry-after", "0")) > 0,
         "failed logins per account from one address: 429 with Retry-After there, even with the right password", r)
    r = api.frm("127.0.0.2").post("/api/v1/auth/login", {"email": "alice@example.org", "password": "correct horse"})
    t.ok(r.status == 200 and r.json["user"]["id"] == alice,
         "... while the owner from another address signs in: nobody can lock an account", r)
    r = api.post("/api/v1/auth/login", {"email": "bob@example.org", "password": "x"})
    t.ok(r.status == 401, "another account is not limited by alice's failures", r)

    # ------------------------------------------------------------ /me and tokens
    r = api.get("/api/v1/me", alice_tok)
    t.ok(r.status == 200 and r.json["id"] == alice and r.json["display_name"] == "Alice", "GET /me", r)
    r = api.get("/api/v1/me")
    t.ok(r.status == 401 and r.code() == "unauthenticated", "GET /me without a token: 401", r)
    r = api.get("/api/v1/me", headers={"Authorization": "Basic YTpi"})
    t.ok(r.status == 401, "GET /me with Basic auth: 401", r)
    r = api.get("/api/v1/me", "not.a.jwt")
    t.ok(r.status == 401 and r.code() == "invalid_token", "garbage token: 401 invalid_token", r)

    bob_tok, bob = api.user("bob@example.org", name="Bob")
    carol_tok, carol = api.user("carol@example.org", name="Carol")
    dave_tok, dave = api.user("dave@example.org", name="Dave")

    # ------------------------------------------------------------ meetings
    r = api.post("/api/v1/meetings", {"title": "  Weekly  ", "duration_s": 600, "max_participants": 3}, alice_tok)
    t.ok(r.status == 201 and r.json["title"] == "Weekly" and r.json["status"] == "ACTIVE" and
         r.json["host"]["id"] == alice and r.headers.get("location") == "/api/v1/meetings/" + r.json["id"],
         "create: 201 with Location, title trimmed", r)
    m = r.json
    mid, code = m["id"], m["code"]
    t.ok(len(code) == 12 and code[3] == "-" and code[8] == "-", "a short join code abc-defg-hij", code)
    r = api.post("/api/v1/meetings", {"title": "x", "duration_s": 10}, alice_tok)
    t.ok(r.status == 422 and "duration_s" in r.json["error"]["message"], "create: duration below the minimum 422", r)
    r = api.post("/api/v1/meetings", {"title": "x", "duration_s": 10 ** 9}, alice_tok)
    t.ok(r.status == 422, "create: duration above the maximum 422", r)
    r = api.post("/api/v1/meetings", {"title": "x", "max_participants": 21}, alice_tok)
    t.ok(r.status == 422 and "max_participants" in r.json["error"]["message"], "create: too many participants 422", r)
    r = api.post("/api/v1/meetings", {"title": ""}, alice_tok)
    t.ok(r.status == 422, "create: empty title 422", r)
    r = api.post("/api/v1/meetings", {"title": "a" * 201}, alice_tok)
    t.ok(r.status == 422, "create: 201-character title 422", r)
    r = api.post("/api/v1/meetings", {"title": "\u00e9" * 200}, alice_tok)
    t.ok(r.status == 201, "create: 200 characters of two bytes each are fine", r)
    r = api.post("/api/v1/meetings", {"title": "line\nbreak"}, alice_tok)
    t.ok(r.status == 422, "create: control characters in the title 422", r)
    r = api.post("/api/v1/meetings", {"title": "x"})
    t.ok(r.status == 401, "create: without a token 401", r)

    r = api.get("/api/v1/meetings/" + mid, alice_tok)
    t.ok(r.status == 200 and r.json["participants"] == [], "status by id: the host sees the (empty) roster", r)
    r = api.get("/api/v1/meetings/" + code.upper(), alice_tok)
    t.ok(r.status == 200 and r.json["id"] == mid, "status by join code (case-insensitive)", r)
    r = api.get("/api/v1/meetings/00000000-0000-0000-0000-000000000000", alice_tok)
    t.ok(r.status == 404 and r.code() == "meeting_not_found", "status: unknown id 404", r)
    r = api.get("/api/v1/meetings/zzz-zzzz-zzz", alice_tok)
    t.ok(r.status == 404, "status: unknown code 404", r)
    r = api.get("/api/v1/meetings/x'%20OR%201=1--", alice_tok)
    t.ok(r.status == 404, "status: SQL in the path is just an unknown meeting", r)

    # ------------------------------------------------------------ join
    r = api.post("/api/v1/meetings/%s/join" % mid, None, alice_tok)
    t.ok(r.status == 200 and r.json["role"] == "ADMIN" and not r.json["rejoined"], "the host joins as ADMIN", r)
    a_part = r.json["participant_id"]
    j = r.json
    user, pw = j["turn"]["username"], j["turn"]["password"]
    exp_s, ident = user.split(":")
    tag = pg.psql("SELECT turn_tag FROM meetings WHERE id = '%s'" % mid)
    t.eq(ident, "%s.%s" % (tag, a_part), "TURN username is <expiry>:<meeting tag>.<participant id>")
    t.eq(pw, rest_password(TURN_SECRET, user), "TURN password is base64(HMAC-SHA1(secret, username))")
    t.ok(int(exp_s) <= j["meeting_expires_at"], "the credential expires no later than the meeting",
         (exp_s, j["meeting_expires_at"]))
    urls = [u for s in j["iceServers"] for u in s["urls"]]
    t.ok(any(u.startswith("stun:") for u in urls) and
         "turn:127.0.0.1:%d?transport=udp" % d.turn_port in urls and
         "turn:127.0.0.1:%d?transport=tcp" % d.turn_port in urls,
         "iceServers has stun: and turn: udp and tcp URIs from turn.listen", urls)
    turn_server = [s for s in j["iceServers"] if "username" in s][0]
    t.ok(turn_server["username"] == user and turn_server["credential"] == pw,
         "the RTCIceServer entry carries the credential", turn_server)
    sc = jwt_claims(j["signaling_token"])
    t.ok(sc["mid"] == mid and sc["pid"] == a_part and sc["aud"] == "meetlite-signaling" and
         sc["exp"] <= j["meeting_expires_at"], "the signaling token is bound to meeting and participant", sc)
    r = api.get("/api/v1/me", j["signaling_token"])
    t.ok(r.status == 401, "a signaling token is not an access token (aud)", r)
    rows = pg.psql("SELECT cred_until || ':' || m.turn_tag || '.' || p.id FROM participants p "
                   "JOIN meetings m ON m.id = p.meeting_id WHERE p.id = '%s'" % a_part)
    t.eq(rows, user, "the issued credential is recorded with its participant (cred_until)")
    res = turn_allocate(d.turn_port, user, pw)
    t.ok(res is not None and res[0] == SUCCESS,
         "meetlited's own relay accepts the join's TURN credential (Allocate)", res)
    bad = turn_allocate(d.turn_port, user, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    t.ok(bad is None or bad[0] != SUCCESS, "the relay refuses a wrong password", bad)

    r = api.post("/api/v1/meetings/%s/join" % mid, None, alice_tok)
    t.ok(r.status == 200 and r.json["participant_id"] == a_part and r.json["rejoined"],
         "a second join returns the same participant", r)
    r = api.post("/api/v1/meetings/%s/join" % code, {"display_name": "Bobby"}, bob_tok)
    t.ok(r.status == 200 and r.json["role"] == "PARTICIPANT" and r.json["display_name"] == "Bobby",
         "join by code with a display name: PARTICIPANT", r)
    b_part = r.json["participant_id"]
    r = api.post("/api/v1/meetings/%s/join" % mid, {"display_name": 7}, carol_tok)
    t.ok(r.status == 422, "join: a non-string display name 422", r)
    r = api.post("/api/v1/meetings/%s/join" % mid, None, carol_tok)
    t.ok(r.status == 200, "carol joins (3 of 3)", r)
    c_part = r.json["participant_id"]
    r = api.post("/api/v1/meetings/%s/join" % mid, None, dave_tok)
    t.ok(r.status == 409 and r.code() == "meeting_full", "a full meeting: 409 meeting_full", r)
    r = api.post("/api/v1/meetings/00000000-0000-0000-0000-000000000000/join", None, dave_tok)
    t.ok(r.status == 404, "join an unknown meeting: 404", r)

    # roster visibility
    r = api.get("/api/v1/meetings/" + mid, bob_tok)
    t.ok(r.status == 200 and len(r.json["participants"]) == 3 and
         {p["role"] for p in r.json["participants"]} == {"ADMIN", "PARTICIPANT"},
         "a participant reads the roster with roles", r)
    r = api.get("/api/v1/meetings/" + mid, dave_tok)
    t.ok(r.status == 200 and r.json.get("participants") is None and r.json["status"] == "ACTIVE",
         "an outsider sees the status but not the roster", r)

    # ------------------------------------------------------------ authorization
    r = api.post("/api/v1/meetings/%s/end" % mid, None, bob_tok)
    t.ok(r.status == 403 and r.code() == "not_admin", "a PARTICIPANT cannot end the meeting", r)
    r = api.post("/api/v1/meetings/%s/end" % mid, None, dave_tok)
    t.ok(r.status == 403, "an outsider cannot end the meeting", r)
    r = api.call("DELETE", "/api/v1/meetings/%s/participants/%s" % (mid, c_part), token=bob_tok)
    t.ok(r.status == 403 and r.code() == "not_admin", "a PARTICIPANT cannot remove anyone", r)
    r = api.call("PATCH", "/api/v1/meetings/%s/participants/%s" % (mid, b_part), {"role": "ADMIN"}, token=bob_tok)
    t.ok(r.status == 403, "a PARTICIPANT cannot promote himself", r)
    r = api.call("PATCH", "/api/v1/meetings/%s/participants/%s" % (mid, b_part), {"role": "OWNER"}, token=alice_tok)
    t.ok(r.status == 422 and "ADMIN" in r.json["error"]["message"], "PATCH: an unknown role 422", r)
    r = api.call("PATCH", "/api/v1/meetings/%s/participants/%s" % (mid, b_part), {"role": "ADMIN"}, token=alice_tok)
    t.ok(r.status == 200 and r.json["role"] == "ADMIN" and r.json["id"] == b_part, "the host promotes bob to ADMIN", r)
    r = api.call("PATCH", "/api/v1/meetings/%s/participants/%s" % (mid, a_part), {"role": "PARTICIPANT"}, token=bob_tok)
    t.ok(r.status == 403 and r.code() == "host_protected", "the host cannot be demoted", r)
    r = api.call("DELETE", "/api/v1/meetings/%s/participants/%s" % (mid, a_part), token=bob_tok)
    t.ok(r.status == 403 and r.code() == "host_protected", "the host cannot be removed", r)
    r = api.call("DELETE", "/api/v1/meetings/%s/participants/%s" % (mid, "00000000-0000-0000-0000-000000000000"), token=bob_tok)
    t.ok(r.status == 404 and r.code() == "participant_not_found", "removing an unknown participant: 404", r)
    c_user = jwt_claims(carol_tok)["sub"]
    r = api.call("DELETE", "/api/v1/meetings/%s/participants/%s" % (mid, c_part), token=bob_tok)
    t.ok(r.status == 200 and r.json["removed"], "an ADMIN (bob) removes carol", r)
    t.eq(pg.psql("SELECT count(*) FILTER (WHERE t.revoked_at IS NOT NULL AND t.username = p.cred_until || "
                 "':' || m.turn_tag || '.' || p.id), count(*) FILTER (WHERE t.revoked_at IS NULL) "
                 "FROM turn_credentials t JOIN participants p ON p.id = t.participant_id JOIN meetings m "
                 "ON m.id = p.meeting_id WHERE p.user_id = '%s'" % c_user), "1|0",
         "the removed participant's TURN credentials are revoked (one revocation, its newest expiry)")
    r = api.post("/api/v1/meetings/%s/join" % mid, None, carol_tok)
    t.ok(r.status == 403 and r.code() == "removed", "a removed user cannot come back", r)
    r = api.get("/api/v1/meetings/" + mid, carol_tok)
    t.ok(r.status == 200 and r.json.get("participants") is None, "a removed user no longer sees the roster", r)
    t.eq(pg.psql("SELECT action FROM audit_log WHERE meeting_id = '%s' ORDER BY id" % mid).split(),
         ["meeting.create", "participant.role", "participant.remove"], "admin actions are in the audit log")

    # ------------------------------------------------------------ leave, end, list
    r = api.post("/api/v1/meetings/%s/leave" % mid, None, dave_tok)
    t.ok(r.status == 409 and r.code() == "not_joined", "leave without having joined: 409", r)
    r = api.post("/api/v1/meetings/%s/leave" % mid, None, bob_tok)
    t.ok(r.status == 200 and r.json["left"] and not r.json["meeting_ended"], "bob leaves; alice remains", r)
    r = api.post("/api/v1/meetings/%s/leave" % mid, None, alice_tok)
    t.ok(r.status == 200 and r.json["meeting_ended"], "the last participant leaves: the meeting ends", r)
    r = api.get("/api/v1/meetings/" + mid, alice_tok)
    t.ok(r.status == 200 and r.json["status"] == "ENDED" and r.json["ended_at"], "status ENDED", r)
    r = api.post("/api/v1/meetings/%s/join" % mid, None, bob_tok)
    t.ok(r.status == 410 and r.code() == "meeting_ended", "join an ended meeting: 410 meeting_ended", r)
    t.eq(pg.psql("SELECT count(*) FROM participants p WHERE p.meeting_id = '%s' AND p.cred_until IS NOT "
                 "NULL AND NOT EXISTS (SELECT 1 FROM turn_credentials t WHERE t.participant_id = p.id AND "
                 "t.revoked_at IS NOT NULL)" % mid), "0",
         "an ended meeting has no live credential: each participant handed one has its revocation")

    m2 = api.meeting(alice_tok, "Second")
    api.post("/api/v1/meetings/%s/join" % m2["id"], None, bob_tok)
    r = api.post("/api/v1/meetings/%s/end" % m2["id"], None, alice_tok)
    t.ok(r.status == 200 and r.json["status"] == "ENDED", "the host ends a meeting without having joined", r)
    r = api.post("/api/v1/meetings/%s/end" % m2["id"], None, alice_tok)
    t.ok(r.status == 410, "ending it again: 410", r)
    r = api.call("DELETE", "/api/v1/meetings/%s/participants/%s" % (m2["id"], b_part), token=alice_tok)
    t.ok(r.status == 410, "removing from an ended meeting: 410", r)
    r = api.get("/api/v1/meetings", alice_tok)
    t.ok(r.status == 200 and [x["title"] for x in r.json["meetings"]][:1] == ["Second"] and
         len(r.json["meetings"]) == 3, "GET /meetings lists mine, newest first", r)
    r = api.get("/api/v1/meetings", bob_tok)
    t.ok(r.status == 200 and {x["id"] for x in r.json["meetings"]} == {mid, m2["id"]},
         "GET /meetings includes meetings I joined", r)
    r = api.get("/api/v1/meetings", dave_tok)
    t.ok(r.status == 200 and r.json["meetings"] == [], "GET /meetings is empty for a newcomer", r)

    # ------------------------------------------------------------ ice-servers
    r = api.get("/api/v1/ice-servers", bob_tok)
    t.ok(r.status == 200 and set(r.json) >= {"username", "password", "ttl", "uris"} and
         r.json["username"].endswith(":" + bob) and r.json["password"] == rest_password(TURN_SECRET, r.json["username"]),
         "GET /ice-servers: the TURN REST API answer {username,password,ttl,uris}", r)
    r = api.get("/api/v1/ice-servers")
    t.ok(r.status == 401, "GET /ice-servers needs a token", r)

    # ------------------------------------------------------------ text: SQL and UTF-8
    nasty = ["'; DROP TABLE users; --", "Robert'); DELETE FROM meetings;--", "\\' OR 1=1 --",
             "$1 $$ %s %n", "\u202eevil\u202c", "emoji \U0001F600", "\"quoted\""]
    ok = True
    for s in nasty:
        r = api.post("/api/v1/meetings", {"title": s}, alice_tok)
        ok &= r.status == 201 and r.json["title"] == s.strip()
        if r.status == 201:
            j2 = api.post("/api/v1/meetings/%s/join" % r.json["id"], {"display_name": s}, bob_tok)
            ok &= j2.status == 200 and j2.json["display_name"] == s.strip()
    t.ok(ok, "SQL metacharacters in titles and display names are stored verbatim")
    r = api.signup("o'brien+x@example.org", "pass'; --x", "O'Brien \"; DROP")
    t.ok(r.status == 201 and r.json["user"]["display_name"] == "O'Brien \"; DROP", "SQL metacharacters in signup fields", r)
    r = api.post("/api/v1/auth/login", {"email": "o'brien+x@example.org", "password": "pass'; --x"})
    t.ok(r.status == 200, "and the account logs in", r)
    t.ok(int(pg.psql("SELECT count(*) FROM users")) >= 5, "the users table is still there")

    for field, path, extra in [("title", "/api/v1/meetings", {}),
                               ("display_name", "/api/v1/meetings/%s/join" % m2["id"], {}),
                               ("email", "/api/v1/auth/signup", {"password": "long enough"}),
                               ("password", "/api/v1/auth/signup", {"email": "utf@example.org"}),
                               ("display_name", "/api/v1/auth/signup", {"email": "utf2@example.org", "password": "long enough"})]:
        body = b'{"%s": "bad \xff\xfe text"' % field.encode()
        for k, v in extra.items():
            body += b', "%s": "%s"' % (k.encode(), v.encode())
        body += b"}"
        r = api.call("POST", path, raw=body, token=alice_tok, headers={"Content-Type": "application/json"})
        t.ok(r.status == 400 and r.code() == "invalid_json", "invalid UTF-8 in %s (%s): 400" % (field, path), r)
    r = api.call("POST", "/api/v1/meetings", raw=b'{"title": "nul \\u0000 inside"}', token=alice_tok,
                 headers={"Content-Type": "application/json"})
    t.ok(r.status in (400, 422), "a NUL escape in a string is refused", r)
    r = api.call("POST", "/api/v1/meetings", raw=b'{"title": "lone \\ud800 surrogate"}', token=alice_tok,
                 headers={"Content-Type": "application/json"})
    t.ok(r.status in (400, 422), "a lone surrogate escape is refused", r)

    # ------------------------------------------------------------ bodies
    for raw, desc in [(b"{", "truncated JSON"), (b"[1,2]", "an array"), (b"null", "null"),
                      (b'{"title": "a", "title": "b"}', "duplicate keys"), (b"\xef\xbb\xbf{}", "a BOM")]:
        r = api.call("POST", "/api/v1/meetings", raw=raw, token=alice_tok, headers={"Content-Type": "application/json"})
        t.ok(r.status == 400 and r.code() == "invalid_json", "malformed body (%s): 400 invalid_json" % desc, r)
    r = api.call("POST", "/api/v1/meetings", raw=b'{"title":"x"}', token=alice_tok, headers={"Content-Type": "text/plain"})
    t.ok(r.status == 415 and r.code() == "unsupported_media_type", "a non-JSON content type: 415", r)
    r = api.call("POST", "/api/v1/meetings", raw=b'{"title":"x"}', token=alice_tok,
                 headers={"Content-Type": "application/json; charset=utf-8"})
    t.ok(r.status == 201, "application/json; charset=utf-8 is fine", r)
    big = b'{"title": "' + b"a" * 5000 + b'"}'
    r = api.call("POST", "/api/v1/meetings", raw=big, token=alice_tok, headers={"Content-Type": "application/json"})
    t.ok(r.status == 413 and r.code() == "body_too_large", "a body over control.max-body: 413", r)
    st, ans = raw_http(d.http_port, b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n")
    t.ok(st == 411 and raw_json_body(ans)["error"]["code"] == "length_required",
         "a POST without Content-Length: 411 with a JSON body", ans[:300])
    st, ans = raw_http(d.http_port, b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n0\r\n\r\n")
    t.ok(st == 411, "a chunked body: 411 at once", ans[:300])
    st, ans = raw_http(d.http_port, b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 99999999999\r\n\r\n")
    t.ok(st == 413, "a huge Content-Length: 413 before any body arrives", ans[:300])
    st, ans = raw_http(d.http_port, b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: abc\r\n\r\n")
    t.ok(st in (400, 411) or st is None, "a malformed Content-Length is refused", ans[:300])
    r = api.post("/api/v1/meetings/%s/leave" % m2["id"], {"unexpected": 1}, dave_tok)
    t.ok(r.status == 410 or r.status == 409, "unknown members are ignored (leave of an ended meeting: 410)", r)
    r = api.call("GET", "/api/v1/me", token="a" * 5000)
    t.ok(r.status == 401, "an oversized token: 401", r)

    # ------------------------------------------------------------ CORS
    r = api.call("OPTIONS", "/api/v1/meetings", headers={"Origin": "https://app.example",
                                                           "Access-Control-Request-Method": "POST"})
    t.ok(r.status == 204 and r.headers.get("access-control-allow-origin") == "https://app.example" and
         "POST" in r.headers.get("access-control-allow-methods", "") and
         "Authorization" in r.headers.get("access-control-allow-headers", ""),
         "CORS preflight for an allowed origin", r)
    r = api.get("/api/v1/me", alice_tok, headers={"Origin": "https://app.example"})
    t.ok(r.headers.get("access-control-allow-origin") == "https://app.example" and
         "X-Request-Id" in r.headers.get("access-control-expose-headers", ""), "CORS headers on answers", r)
    r = api.get("/api/v1/me", alice_tok, headers={"Origin": "https://evil.example"})
    t.ok("access-control-allow-origin" not in r.headers, "no CORS headers for another origin", r)

    # ------------------------------------------------------------ network checks are bounded
    r = api.post("/api/v1/meetings", {"title": "Probes", "duration_s": 600}, alice_tok)
    probe_path = "/api/v1/meetings/%s/network-check" % (r.json["id"] if r.status == 201 else "none")
    probes = [api.post(probe_path, None, alice_tok).status for _ in range(30)]
    t.eq(probes, [200] * 30, "30 network checks in a minute are answered")
    r = api.post(probe_path, None, alice_tok)
    t.ok(r.status == 429 and r.code() == "rate_limited" and int(r.headers.get("retry-after", "0")) > 0,
         "the 31st within the minute: 429 rate_limited with Retry-After", r)
    # ------------------------------------------------------------ OIDC off, the access log
    r = api.post("/api/v1/auth/oidc", {"id_token": "x.y.z"})
    t.ok(r.status == 404 and r.code() == "oidc_not_configured", "OIDC sign-in when not configured: 404", r)
    api.get("/api/v1/me?token=SECRETQUERY", alice_tok, headers={"X-Request-Id": "log-check-1"})
    time.sleep(0.2)
    log = d.log()
    line = [ln for ln in log.splitlines() if "rid=log-check-1" in ln]
    t.ok(line and "GET /api/v1/me 200" in line[0] and "SECRETQUERY" not in log,
         "the access log has method, path without the query, status, request id", line)
    t.ok("correct horse" not in log and alice_tok not in log and TURN_SECRET not in log,
         "no password, token or secret in the log")
finally:
    if d:
        t.ok(d.clean(), "meetlited exits cleanly (no sanitizer report)", d.log()[-3000:])
        d.close()
    pg.close()

sys.exit(t.done())
