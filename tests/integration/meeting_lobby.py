"""A meeting's passcode and its waiting room (issue #17, item 2), against a private PostgreSQL:
the passcode stored as an argon2id hash only, asked of every joiner but the host and those
already in, a wrong one counted as a failed sign-in (429 for the account from that address,
never for the same account elsewhere); the waiting room: a joiner gets 202 and no TURN
credential (none recorded either), its signaling session says "waiting" and may only ping,
the ADMINs hear lobby-waiting, a non-ADMIN cannot decide, admit tells the joiner (admitted,
close 4008) and its next join carries the credential, deny tells it (denied, close 4403) and
refuses it from then on; "wait for host" holds everyone until an ADMIN is present and lets
them in when one comes; turning the waiting room off lets in who waited."""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Tap  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, migrate  # noqa: E402
from mlsignal import Person, Sig  # noqa: E402

t = Tap()
pg = Postgres()
d = None
_n = [0]


def rows(sql):
    out = pg.psql(sql)
    return [line.split("|") for line in out.splitlines() if line]


def person(api, name):
    _n[0] += 1
    return Person(api, "lobby%d@example.org" % _n[0], name)


def join(api, who, mid, **body):
    return api.post("/api/v1/meetings/%s/join" % mid, body, who.token)


def creds(pid):
    """1 when the participant was handed a TURN credential (its cred_until, sql/017), else 0."""
    return int(rows("SELECT (cred_until IS NOT NULL)::int FROM participants WHERE id = '%s'" % pid)[0][0])


def decide(api, who, mid, pid, what):
    return api.post("/api/v1/meetings/%s/participants/%s/%s" % (mid, pid, what), None, who.token,
                    raw=b"", headers={"Content-Length": "0"})


async def sig_open(port, token):
    """A signaling connection that may open as a lobby session (waiting) or joined."""
    c = await Sig.open(port, token, expect_joined=False)
    m = await c.recv(timeout=10)
    c.joined = m
    return c


def passcodes(api):
    host = person(api, "Host")
    r = api.post("/api/v1/meetings", {"title": "Exam", "passcode": "s3cret-42"}, host.token)
    t.ok(r.status == 201 and r.json["passcode"] is True and "s3cret" not in r.raw.decode()
         and "argon2" not in r.raw.decode(), "create with a passcode: 201, says passcode: true, "
         "shows neither the passcode nor its hash", r)
    mid = r.json["id"]
    t.ok(rows("SELECT passcode_hash LIKE '$argon2id$%%' FROM meetings WHERE id = '%s'" % mid)
         == [["t"]], "the passcode is stored as an argon2id hash")
    r = api.post("/api/v1/meetings", {"title": "Exam", "passcode": "abc"}, host.token)
    t.ok(r.status == 422 and r.code() == "invalid_field", "a passcode under 4 characters: 422", r)

    r = join(api, host, mid)
    t.ok(r.status == 200 and r.json["iceServers"], "the host joins without the passcode", r)
    b = person(api, "Bea")
    r = join(api, b, mid)
    t.ok(r.status == 401 and r.code() == "passcode_required", "no passcode: 401 passcode_required", r)
    r = join(api, b, mid, passcode="wrong-one")
    t.ok(r.status == 403 and r.code() == "invalid_passcode", "a wrong passcode: 403 invalid_passcode",
         r)
    r = join(api, b, mid, passcode="s3cret-42")
    t.ok(r.status == 200 and r.json["iceServers"] and r.json["turn"]["username"],
         "the right passcode: 200 with the TURN credential", r)
    r = join(api, b, mid)
    t.ok(r.status == 200, "a rejoin of one present needs no passcode (a credential renewal)", r)

    # the sign-in limits: auth.login-max-failures=3 for the account from one address
    c = person(api, "Cid")
    from_c = api.frm("127.0.0.3")
    for i in range(3):
        r = join(from_c, c, mid, passcode="guess-%d" % i)
        t.ok(r.status == 403, "guess %d: 403" % (i + 1), r)
    r = join(from_c, c, mid, passcode="guess-x")
    t.ok(r.status == 429 and r.code() == "rate_limited" and
         int(r.headers.get("retry-after", "0")) > 0,
         "after auth.login-max-failures wrong passcodes: 429 with Retry-After", r)
    r = join(from_c, c, mid, passcode="s3cret-42")
    t.ok(r.status == 429, "... and the right one from that address is refused too", r)
    r = join(api.frm("127.0.0.4"), c, mid, passcode="s3cret-42")
    t.ok(r.status == 200, "the same account from another address gets in", r)
    e = person(api, "Eve")
    r = join(from_c, e, mid, passcode="s3cret-42")
    t.ok(r.status == 200, "another account from the limited address is not refused", r)

    # settings: only an ADMIN; "" removes the passcode
    r = api.call("PATCH", "/api/v1/meetings/%s" % mid, {"passcode": ""}, b.token)
    t.ok(r.status == 403 and r.code() == "not_admin", "PATCH by a participant: 403 not_admin", r)
    r = api.call("PATCH", "/api/v1/meetings/%s" % mid, {"passcode": "xy"}, host.token)
    t.ok(r.status == 422, "PATCH with a passcode under 4 characters: 422", r)
    r = api.call("PATCH", "/api/v1/meetings/%s" % mid, {"passcode": ""}, host.token)
    t.ok(r.status == 200 and r.json["passcode"] is False, "PATCH passcode \"\": removed", r)
    r = join(api, person(api, "Fay"), mid)
    t.ok(r.status == 200, "then anyone joins without one", r)
    r = api.call("PATCH", "/api/v1/meetings/%s" % mid, {"passcode": "another-1"}, host.token)
    t.ok(r.status == 200 and r.json["passcode"] is True, "PATCH sets a new passcode", r)
    r = join(api, person(api, "Gil"), mid, passcode="s3cret-42")
    t.ok(r.status == 403, "the old passcode no longer opens it", r)


async def waiting_room(api, port):
    host = person(api, "Host")
    m = api.meeting(host.token, "Class", waiting_room=True)
    mid = m["id"]
    t.ok(m["waiting_room"] is True and m["wait_for_host"] is False, "create: waiting_room", m)
    host.join_meeting(mid)
    h = await Sig.open(port, host.sig_token)

    w = person(api, "Wen")
    r = join(api, w, mid)
    t.ok(r.status == 202 and r.json["state"] == "waiting" and r.json["signaling_token"] and
         "iceServers" not in r.json and "turn" not in r.json,
         "a joiner the waiting room holds: 202 waiting, a signaling token, no iceServers", r)
    w.join = r.json
    t.eq(creds(w.pid), 0, "no TURN credential is recorded for one waiting")
    t.eq(rows("SELECT waiting, role FROM participants WHERE id = '%s'" % w.pid),
         [["t", "PARTICIPANT"]], "the participant row is waiting")
    ev = await h.expect("lobby-waiting", timeout=10)
    t.ok(ev["participant"]["id"] == w.pid and ev["participant"]["state"] == "waiting" and
         ev["participant"]["name"] == "Wen", "the ADMIN hears lobby-waiting with the roster entry", ev)
    r = api.get("/api/v1/meetings/%s" % mid, w.token)
    t.ok(r.status == 200 and r.json["participants"] is None,
         "the status for one waiting has no roster (not an insider)", r)
    r = api.get("/api/v1/meetings/%s" % mid, host.token)
    st = {p["id"]: p["state"] for p in r.json["participants"]}
    t.eq(st.get(w.pid), "waiting", "the ADMIN's status roster shows state waiting")

    ws = await sig_open(port, w.sig_token)
    t.ok(ws.joined["type"] == "waiting" and ws.joined["participant_id"] == w.pid and
         "iceServers" not in ws.joined and "roster" not in ws.joined,
         "the lobby's signaling session opens with waiting: no iceServers, no roster", ws.joined)
    await ws.send(type="chat", id="c1", payload={"text": "let me in"})
    e = await ws.expect("error")
    t.ok(e["code"] == "waiting" and e["id"] == "c1", "the lobby may not chat: error waiting", e)
    await ws.send(type="ping", id="p1")
    e = await ws.expect("pong")
    t.ok(e.get("id") == "p1", "the lobby may ping", e)
    await h.send(type="offer", id="o1", to=w.pid, payload={"sdp": "v=0"})
    e = await h.expect("error")
    t.ok(e["code"] == "waiting", "an offer to one in the lobby is refused", e)
    t.ok(await ws.quiet(0.5), "the lobby hears nothing of the meeting")

    # an admitted participant's roster does not show the lobby
    p = person(api, "Pat")
    r = join(api, p, mid)
    p.join = r.json
    e = await h.expect("lobby-waiting", timeout=10)
    t.eq(e["participant"]["id"], p.pid, "the ADMIN hears the second arrival")
    r = decide(api, p, mid, w.pid, "admit")
    t.ok(r.status == 403 and r.code() == "not_admin", "one waiting cannot admit another", r)
    r = decide(api, host, mid, p.pid, "admit")
    t.ok(r.status == 200 and r.json["state"] == "admitted", "the ADMIN admits Pat: 200", r)
    e = await h.expect("lobby-left", timeout=10, participant_id=p.pid)
    t.eq(e["reason"], "admitted", "the ADMINs hear lobby-left, reason admitted")
    r = join(api, p, mid)
    t.ok(r.status == 200 and r.json["iceServers"], "Pat joins again: 200 with the credential", r)
    p.join = r.json
    t.ok(creds(p.pid) >= 1, "... recorded")
    ps = await Sig.open(port, p.sig_token)
    ids = [e["id"] for e in ps.joined["roster"]]
    t.ok(w.pid not in ids and p.pid in ids, "a participant's roster leaves out the lobby", ids)
    r = decide(api, p, mid, w.pid, "admit")
    t.ok(r.status == 403 and r.code() == "not_admin", "a participant cannot admit: 403 not_admin", r)
    r = decide(api, p, mid, w.pid, "deny")
    t.ok(r.status == 403 and r.code() == "not_admin", "nor deny", r)
    r = api.call("PATCH", "/api/v1/meetings/%s/participants/%s" % (mid, w.pid), {"role": "ADMIN"},
                 host.token)
    t.ok(r.status == 409 and r.code() == "waiting",
         "one in the waiting room cannot be made ADMIN (it would let itself in): 409 waiting", r)
    h2 = await Sig.open(port, host.sig_token)
    st = {e["id"]: e.get("state") for e in h2.joined["roster"]}
    t.eq(st.get(w.pid), "waiting", "an ADMIN's joined roster shows the lobby, state waiting")
    await h2.close()

    # webhooks (sql/008_webhooks.sql): who waits has not joined; admission is the join
    ev = lambda pid: rows("SELECT type FROM webhook_events WHERE payload->'participant'->>'id' = "
                          "'%s' ORDER BY seq" % pid)
    t.eq(ev(w.pid), [], "webhooks: no participant.joined while Wen waits")

    # admit
    r = decide(api, host, mid, w.pid, "admit")
    t.ok(r.status == 200, "the ADMIN admits Wen: 200", r)
    e = await ws.expect("admitted", timeout=10)
    t.ok(e["participant_id"] == w.pid, "the waiting one hears admitted", e)
    code = await ws.closed(10)
    t.ok(code and code[0] == 4008 and code[1] == "admitted", "its lobby session closes 4008", code)
    e = await h.expect("lobby-left", timeout=10, participant_id=w.pid)
    t.ok(e["reason"] == "admitted",
         "the ADMIN hears lobby-left, reason admitted", e)
    t.eq(creds(w.pid), 0, "admission itself hands out nothing")
    r = join(api, w, mid)
    t.ok(r.status == 200 and r.json["iceServers"] and r.json["turn"]["username"],
         "the admitted one joins again: 200 with its TURN credential", r)
    w.join = r.json
    t.eq(creds(w.pid), 1, "one credential, issued after admission")
    wj = await Sig.open(port, w.sig_token)
    t.ok(wj.joined["type"] == "joined" and any(s.get("username") for s in wj.joined["iceServers"]),
         "its signaling session is a joined one with iceServers", wj.joined)
    e = await h.expect("participant-joined", timeout=10)
    t.ok(e["participant"]["id"] in (w.pid, p.pid), "the others hear participant-joined", e)
    r = decide(api, host, mid, w.pid, "admit")
    t.ok(r.status == 409 and r.code() == "not_waiting", "admitting one who is in: 409 not_waiting", r)
    r = decide(api, host, mid, "00000000-0000-4000-8000-000000000000", "deny")
    t.ok(r.status == 404 and r.code() == "participant_not_found", "deny of no one: 404", r)

    # deny
    x = person(api, "Xan")
    r = join(api, x, mid)
    x.join = r.json
    xs = await sig_open(port, x.sig_token)
    t.eq(xs.joined["type"], "waiting", "Xan waits")
    r = decide(api, host, mid, x.pid, "deny")
    t.ok(r.status == 200 and r.json["state"] == "denied", "the ADMIN denies Xan: 200", r)
    e = await xs.expect("denied", timeout=10)
    code = await xs.closed(10)
    t.ok(code and code[0] == 4403 and code[1] == "denied", "Xan hears denied, closed 4403 denied",
         (e, code))
    r = join(api, x, mid)
    t.ok(r.status == 403 and r.code() == "denied", "Xan's next join: 403 denied", r)
    t.eq(creds(x.pid), 0, "Xan never had a TURN credential")
    t.eq(ev(w.pid), [["participant.joined"]], "webhooks: Wen joined once, when admitted")
    t.eq(ev(x.pid), [], "webhooks: Xan, denied while waiting, neither joined nor left")

    # the waiting room turned off lets in who waits
    q = person(api, "Quin")
    r = join(api, q, mid)
    q.join = r.json
    qs = await sig_open(port, q.sig_token)
    r = api.call("PATCH", "/api/v1/meetings/%s" % mid, {"waiting_room": False}, host.token)
    t.ok(r.status == 200 and r.json["waiting_room"] is False, "PATCH waiting_room false: 200", r)
    e = await qs.expect("admitted", timeout=10)
    t.ok(e["participant_id"] == q.pid, "who waited is admitted", e)
    r = join(api, person(api, "Rio"), mid)
    t.ok(r.status == 200, "a new joiner comes straight in", r)
    for c in (h, ps, wj):
        await c.close()


async def wait_for_host(api, port):
    host = person(api, "Host")
    m = api.meeting(host.token, "Study group", wait_for_host=True)
    mid = m["id"]
    y = person(api, "Yui")
    r = join(api, y, mid)
    t.ok(r.status == 202 and r.json["state"] == "waiting" and "iceServers" not in r.json,
         "wait for host: a joiner before any ADMIN waits (202, no iceServers)", r)
    y.join = r.json
    ys = await sig_open(port, y.sig_token)
    t.eq(ys.joined["type"], "waiting", "its session waits")
    host.join_meeting(mid)
    e = await ys.expect("admitted", timeout=10)
    t.ok(e["participant_id"] == y.pid, "the host's arrival admits who waited for it", e)
    r = join(api, y, mid)
    t.ok(r.status == 200 and r.json["iceServers"], "then its join carries the credential", r)
    r = join(api, person(api, "Zed"), mid)
    t.ok(r.status == 200, "with an ADMIN present a joiner comes straight in", r)


async def main(port):
    passcodes(d.api)
    await waiting_room(d.api, port)
    await wait_for_host(d.api, port)


try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "migrations apply", r.stdout + r.stderr)
    d = ControlDaemon(pg.url, ["auth.login-max-failures=3", "auth.login-max-failures-per-address=20",
                               "auth.login-slowdown-after=100"])
    d.wait_log("registered for signaling", 20)
    # events are queued only while some node delivers them (sql/015_webhook_nodes.sql): this
    # one does not, so another node of the fleet is said to, for the webhook checks below
    pg.psql("INSERT INTO webhook_nodes (node, until) VALUES ('elsewhere', now() + interval '1 hour')")
    asyncio.run(main(d.http_port))
    t.ok(d.clean(), "the daemon stops cleanly, sanitizers quiet", d.log()[-3000:])
except Exception as e:  # noqa: BLE001
    t.unexpected(e, d)
finally:
    if d:
        d.close()
    pg.close()
sys.exit(t.done())
