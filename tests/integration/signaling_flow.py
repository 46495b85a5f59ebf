"""WebSocket signaling on one node against a private PostgreSQL (python3-websockets clients):
joined (roster, chat history, fresh TURN credential), offer/answer/candidate/ice-restart to
exactly the named participant, presence, chat, media state, ping/pong, message validation,
isolation between meetings, bad/expired/removed tokens and non-members refused with their close
codes, ADMIN commands and their authorization, REST leave/remove/end/role reaching WebSocket
clients (the removed one closed with 4403 within a second), the signaling connections table
kept true, a resume on the default 30 s window, wss:// when the control plane has TLS."""

import asyncio
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mltest  # noqa: E402
from mltest import Tap  # noqa: E402
from mlcontrol import (TURN_SECRET, ControlDaemon, Postgres, access_claims, jwt_hs256,  # noqa: E402
                       migrate, rest_password)
from mlsignal import Person, Sig, meeting, refused  # noqa: E402

t = Tap()
pg = Postgres()
d = None
d2 = None


def rows(sql):
    out = pg.psql(sql)
    return [line.split("|") for line in out.splitlines() if line]


def sig_claims(mid, pid, sub, lifetime=600, **over):
    now = int(time.time())
    c = {"iss": "meetlite", "aud": "meetlite-signaling", "sub": sub, "mid": mid, "pid": pid,
         "role": "PARTICIPANT", "iat": now, "nbf": now, "exp": now + lifetime}
    c.update(over)
    return c


TLS_PEOPLE = []


async def main(port):
    api = d.api
    TLS_PEOPLE.extend(meeting(api, 2, prefix="tls")[1])  # for the wss:// node below
    mid, (A, B, C, D) = meeting(api, 4, prefix="flow")
    mid2, (X, Y) = meeting(api, 2, prefix="other")

    # ------------------------------------------------------------ joined
    a = await Sig.open(port, A.sig_token)
    j = a.joined
    t.ok(j["participant_id"] == A.pid and j["meeting_id"] == mid and j["role"] == "ADMIN",
         "joined: the participant, its meeting, its role", j)
    roster = {e["id"]: e for e in j["roster"]}
    t.eq(sorted(roster), sorted([A.pid, B.pid, C.pid, D.pid]), "joined: the roster is the meeting's "
         "present participants")
    t.ok(roster[A.pid]["host"] and roster[A.pid]["online"] and roster[B.pid]["name"] == "FLOW 1" and
         roster[B.pid]["role"] == "PARTICIPANT" and roster[B.pid]["audio"] is False and
         roster[B.pid]["online"] is False, "roster entries: name, role, host, audio, video, online",
         roster)
    turn = [s for s in j["iceServers"] if "username" in s]
    ok = bool(turn) and A.pid in turn[0]["username"] and \
        rest_password(TURN_SECRET, turn[0]["username"]) == turn[0]["credential"]
    t.ok(ok, "joined: iceServers with a TURN credential of this participant (HMAC checks out)",
         j["iceServers"])
    n = rows("SELECT cred_until FROM participants WHERE id = '%s'" % A.pid)
    t.ok(int(n[0][0]) >= int(turn[0]["username"].split(":")[0]),
         "the credential of joined is recorded as a join's is (cred_until: revocable)", n)
    t.ok(j["resume_token"].startswith(j["node"] + ".") and isinstance(j["seq"], int),
         "joined: a resume token of this node and the meeting's sequence number", j)
    t.eq(rows("SELECT meeting_id, participant_id, node_id, detached_at IS NULL FROM "
              "sig_connections WHERE id = '%s'" % j["session_id"]),
         [[mid, A.pid, j["node"], "t"]], "the session is recorded: meeting, participant, node")

    b = await Sig.open(port, B.sig_token)
    m = await a.expect("participant-joined")
    t.ok(m["participant"]["id"] == B.pid and m["participant"]["online"] and "seq" in m,
         "presence: participant-joined reaches the others with the roster entry", m)
    t.ok({e["id"]: e["online"] for e in b.joined["roster"]}[A.pid],
         "B's roster shows A online")
    c = await Sig.open(port, C.sig_token)
    await a.expect("participant-joined")
    await b.expect("participant-joined")

    # ------------------------------------------------------------ offer / answer / candidate
    await a.send(type="offer", id="o-1", to=B.pid,
                 payload={"sdp": "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\n", "extra": "dropped"})
    m = await b.expect("offer")
    t.ok(m["from"] == A.pid and m["to"] == B.pid and m["id"] == "o-1" and
         m["payload"] == {"sdp": "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\n"},
         "offer reaches B with from, to, id; unknown payload members are not relayed", m)
    await b.send(type="answer", id=7, to=A.pid, payload={"sdp": "v=0\r\n"})
    m = await a.expect("answer")
    t.ok(m["from"] == B.pid and m["id"] == 7, "answer reaches A", m)
    await a.send(type="candidate", to=B.pid, payload={
        "candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host", "sdpMid": "0",
        "sdpMLineIndex": 0, "usernameFragment": "abcd"})
    m = await b.expect("candidate")
    t.ok(m["payload"]["sdpMLineIndex"] == 0 and m["payload"]["usernameFragment"] == "abcd",
         "candidate reaches B with its fields", m)
    await a.send(type="candidate", to=B.pid, payload={"candidate": ""})
    m = await b.expect("candidate")
    t.eq(m["payload"], {"candidate": ""}, "the end-of-candidates indication passes")
    await b.send(type="ice-restart", to=A.pid, payload={"reason": "network change"})
    m = await a.expect("ice-restart")
    t.ok(m["from"] == B.pid and m["payload"]["reason"] == "network change", "ice-restart reaches A", m)
    t.ok(await c.quiet(0.4, "offer") and not any(x["type"] in ("answer", "candidate", "ice-restart")
                                                  for x in c.backlog),
         "C, in the same meeting, receives none of them")
    seqs = [m["seq"] for m in b.backlog + [m] if "seq" in m]
    t.ok(all(x < y for x, y in zip(seqs, seqs[1:])), "sequence numbers grow", seqs)

    # ------------------------------------------------------------ validation
    await a.send_raw("{not json")
    m = await a.expect("error")
    t.eq(m["code"], "invalid_json", "malformed JSON: error invalid_json, the connection stays")
    await a.send(type="teleport", id="x1")
    m = await a.expect("error")
    t.ok(m["code"] == "invalid_field" and m["id"] == "x1", "unknown type: error with the id", m)
    await a.send(type="offer", payload={"sdp": "v=0"})
    m = await a.expect("error")
    t.eq(m["code"], "missing_field", "offer without to: missing_field")
    await a.send(type="offer", to=B.pid)
    m = await a.expect("error")
    t.eq(m["code"], "missing_field", "offer without payload: missing_field")
    await a.send(type="offer", to=B.pid, payload={"sdp": 42})
    m = await a.expect("error")
    t.ok(m["code"] == "invalid_field" and "sdp" in m["message"], "sdp of the wrong type", m)
    await a.send(type="offer", to=A.pid, payload={"sdp": "v=0"})
    m = await a.expect("error")
    t.eq(m["code"], "invalid_field", "an offer to oneself is refused")
    await a.send(type="offer", to="not-a-uuid", payload={"sdp": "v=0"})
    m = await a.expect("error")
    t.eq(m["code"], "invalid_field", "to that is not a participant id")
    await a.send(type="chat", payload={"text": "bell\u0007"})
    m = await a.expect("error")
    t.eq(m["code"], "invalid_field", "chat with a control character is refused")
    await a.send(type="offer", to=B.pid, payload={"sdp": "v=0"}, id="x" * 65)
    m = await a.expect("error")
    t.eq(m["code"], "invalid_field", "an id longer than 64 characters is refused")
    await a.send(type="ping", id="p-1")
    m = await a.expect("pong")
    t.ok(m["id"] == "p-1" and "seq" not in m, "ping: pong with the id (not part of the stream)", m)
    t.ok(await b.quiet(0.3, "offer"), "nothing invalid reached B")

    # ------------------------------------------------------------ isolation between meetings
    x = await Sig.open(port, X.sig_token)
    await a.send(type="offer", id="iso", to=X.pid, payload={"sdp": "v=0"})
    m = await a.expect("error")
    t.ok(m["code"] == "participant_not_found" and m["id"] == "iso",
         "an offer naming a participant of another meeting is refused", m)
    await a.send(type="chat", payload={"text": "for my meeting only"})
    t.ok(await x.quiet(0.5), "and nothing of meeting 1 reaches meeting 2's participant", x.backlog)
    await x.send(type="offer", to=A.pid, payload={"sdp": "v=0"})
    m = await x.expect("error")
    t.eq(m["code"], "participant_not_found", "nor the other way round")

    # ------------------------------------------------------------ chat and media state
    for w in (a, b, c):
        m = await w.expect("chat", payload={"text": "for my meeting only"})
    t.ok(m["from"] == A.pid and m["name"] == "FLOW 0" and m["chat_id"] and m["ts"] > 0,
         "chat reaches everyone, the sender too, with name, chat_id and time", m)
    for i in range(3):
        await b.send(type="chat", payload={"text": "line %d" % i})
    for i in range(3):
        await a.expect("chat", payload={"text": "line %d" % i})
    await c.send(type="media", payload={"audio": True, "video": False})
    for w in (a, b, c):
        m = await w.expect("participant-updated")
    t.ok(m["participant"]["id"] == C.pid and m["participant"]["audio"] is True and
         m["participant"]["video"] is False, "media: participant-updated to everyone", m)
    await asyncio.sleep(0.3)  # stored by the publisher thread
    dd = await Sig.open(port, D.sig_token)
    texts = [h["payload"]["text"] for h in dd.joined["chat"]]
    t.eq(texts, ["for my meeting only", "line 0", "line 1", "line 2"],
         "a later connection gets the stored chat in order")
    t.ok(dd.joined["chat"][1]["from"] == B.pid and dd.joined["chat"][1]["name"] == "FLOW 1",
         "history entries carry sender and name", dd.joined["chat"][1])
    r = {e["id"]: e for e in dd.joined["roster"]}
    t.ok(r[C.pid]["audio"] is True and r[C.pid]["video"] is False and r[C.pid]["online"],
         "a later connection's roster has C's media state (stored)", r[C.pid])
    for w in (a, b, c):
        await w.expect("participant-joined")

    # ------------------------------------------------------------ tokens and non-members
    t.eq(await refused(port, None), (4401, "unauthenticated"), "no token: 4401 unauthenticated")
    t.eq(await refused(port, "abc.def.ghi"), (4401, "invalid_token"), "garbage token: 4401")
    t.eq(await refused(port, jwt_hs256(sig_claims(mid, B.pid, B.user, lifetime=-120))),
         (4401, "token_expired"), "expired signaling token: 4401 token_expired")
    t.eq(await refused(port, A.token), (4401, "invalid_token"),
         "an access token (aud meetlite-api) is not a signaling token: 4401")
    t.eq(await refused(port, jwt_hs256(sig_claims(mid, B.pid, B.user), secret="x" * 40)),
         (4401, "invalid_token"), "a token signed with another key: 4401")
    t.eq(await refused(port, jwt_hs256(sig_claims(mid2, B.pid, B.user))),
         (4404, "participant_not_found"),
         "a token naming a participant of another meeting: 4404 (non-member)")
    t.eq(await refused(port, jwt_hs256(sig_claims(mid, B.pid, X.user))),
         (4404, "participant_not_found"), "a token of another user for B: 4404")
    r = await refused(port, A.sig_token, path="/api/v1/elsewhere")
    t.ok(r[0] in ("http", "error"), "a WebSocket on another path is not accepted", r)

    # ------------------------------------------------------------ ADMIN commands
    await b.send(type="mute-request", id="m1", to=C.pid, payload={"kind": "audio"})
    m = await b.expect("error")
    t.ok(m["code"] == "not_admin" and m["id"] == "m1", "mute-request by a PARTICIPANT: not_admin", m)
    await b.send(type="remove", to=C.pid)
    t.eq((await b.expect("error"))["code"], "not_admin", "remove by a PARTICIPANT: not_admin")
    await b.send(type="end")
    t.eq((await b.expect("error"))["code"], "not_admin", "end by a PARTICIPANT: not_admin")
    t.ok(await c.quiet(0.3, "mute-request"), "C got no mute-request from B")
    await a.send(type="mute-request", id="m2", to=C.pid, payload={"kind": "video"})
    m = await c.expect("mute-request")
    t.ok(m["from"] == A.pid and m["payload"] == {"kind": "video"} and m["id"] == "m2",
         "mute-request by the ADMIN reaches C", m)
    t.ok(await b.quiet(0.3, "mute-request"), "and only C")

    # a role change through REST reaches every client, and makes C an ADMIN here too
    r = api.call("PATCH", "/api/v1/meetings/%s/participants/%s" % (mid, C.pid), {"role": "ADMIN"},
                 token=A.token)
    t.eq(r.status, 200, "PATCH role ADMIN")
    m = await b.expect("participant-updated")
    t.ok(m["participant"]["id"] == C.pid and m["participant"]["role"] == "ADMIN",
         "participant-updated with the new role", m)
    await c.send(type="remove", id="r0", to=A.pid)
    m = await c.expect("error")
    t.ok(m["code"] == "host_protected" and m["id"] == "r0", "the new ADMIN cannot remove the host", m)

    # REST leave: participant-left to the others, the leaver's socket closed 4409
    r = api.post("/api/v1/meetings/%s/leave" % mid, token=D.token, raw=b"",
                 headers={"Content-Length": "0"})
    t.eq(r.status, 200, "D leaves through REST")
    m = await a.expect("participant-left", participant_id=D.pid)
    t.eq(m["reason"], "left", "participant-left reason left")
    t.eq(await dd.closed(2), (4409, "not_joined"), "D's socket closed with 4409 not_joined")
    t.eq(await refused(port, D.sig_token), (4409, "not_joined"),
         "D's token no longer connects (it left): 4409")

    # REST DELETE: removed to everyone, the removed socket closed 4403 within a second
    t0 = time.time()
    r = api.call("DELETE", "/api/v1/meetings/%s/participants/%s" % (mid, B.pid), token=A.token)
    t.eq(r.status, 200, "REST DELETE removes B")
    cl = await b.closed(2)
    took = time.time() - t0
    t.ok(cl == (4403, "removed") and took < 1.0, "B's WebSocket closed 4403 removed in %.3fs" % took,
         cl)
    t.ok(any(x["type"] == "removed" and x["participant_id"] == B.pid for x in b.backlog),
         "B was told before the close", b.backlog[-3:])
    m = await a.expect("removed")
    t.eq(m["participant_id"], B.pid, "the others get removed")
    t.eq(await refused(port, B.sig_token), (4403, "removed"),
         "a removed participant's (still unexpired) token no longer connects: 4403")
    t.eq(rows("SELECT count(*) FILTER (WHERE revoked_at IS NOT NULL), count(*) FILTER (WHERE revoked_at "
              "IS NULL) FROM turn_credentials WHERE participant_id = '%s'" % B.pid), [["1", "0"]],
         "B's TURN credentials are revoked (one revocation for the participant)")
    t.eq(rows("SELECT count(*) FROM sig_connections WHERE participant_id = '%s'" % B.pid), [["0"]],
         "B's session rows are gone")

    # resume on the default window: the connection drops, the session waits
    E = Person(api, "flow-e-%d@example.org" % os.getpid(), "E")
    E.join_meeting(mid)
    e = await Sig.open(port, E.sig_token)
    await a.expect("participant-joined", timeout=5)
    token, last = e.joined["resume_token"], e.joined["seq"]
    e.abort()
    await asyncio.sleep(0.5)
    t.eq(rows("SELECT detached_at IS NOT NULL FROM sig_connections WHERE id = '%s'"
              % e.joined["session_id"]), [["t"]], "a dropped session is recorded as detached")
    await a.send(type="offer", to=E.pid, payload={"sdp": "missed"})
    await asyncio.sleep(2.0)
    e2 = await Sig.open(port, resume=token, last_seq=last)
    m = await e2.expect("offer")
    t.ok(e2.joined["session_id"] == e.joined["session_id"] and m["payload"]["sdp"] == "missed",
         "resumed after 2.5 s (default window 30 s): same session, the missed offer replayed",
         (e2.joined, m))
    t.ok(await a.quiet(0.3, "participant-left"), "the others saw no participant-left meanwhile")
    await e2.close()

    # WS ADMIN commands: remove (the same removal as REST) and end
    await c.send(type="remove", id="r1", to=E.pid)
    m = await c.expect("ack")
    t.ok(m["id"] == "r1" and m["participant_id"] == E.pid, "remove over signaling: ack", m)
    t.eq(rows("SELECT removed FROM participants WHERE id = '%s'" % E.pid), [["t"]],
         "the participant is removed in the database")
    t.eq(rows("SELECT count(*) FILTER (WHERE revoked_at IS NOT NULL), count(*) FILTER (WHERE revoked_at "
              "IS NULL) FROM turn_credentials WHERE participant_id = '%s'" % E.pid), [["1", "0"]],
         "its TURN credentials are revoked (the REST removal's hook)")
    t.eq(rows("SELECT count(*) FROM audit_log WHERE action = 'participant.remove' AND target_id = '%s'"
              % E.pid), [["1"]], "and audited as a REST removal is")
    m = await a.expect("removed")
    t.eq(m["participant_id"], E.pid, "removed reaches the others")

    t.eq(rows("SELECT count(*) FROM sig_connections WHERE meeting_id = '%s'" % mid), [["2"]],
         "sig_connections: exactly the two live sessions of meeting 1")
    await c.send(type="end", id="bye")
    m = await c.expect("ack")
    t.eq(m["id"], "bye", "end over signaling: ack")
    for w, who in ((a, "A"), (c, "C")):
        cl = await w.closed(2)
        t.ok(cl == (4410, "meeting_ended") and any(x["type"] == "meeting-ended" for x in w.backlog),
             "%s: meeting-ended, then closed 4410" % who, (cl, w.backlog[-2:]))
    t.eq(api.get("/api/v1/meetings/%s" % mid, token=A.token).json["status"], "ENDED",
         "the meeting is ENDED")
    t.eq(await refused(port, A.sig_token), (4410, "meeting_ended"),
         "connecting to an ended meeting: 4410")

    # REST end of meeting 2
    y = await Sig.open(port, Y.sig_token)
    r = api.post("/api/v1/meetings/%s/end" % mid2, token=X.token, raw=b"",
                 headers={"Content-Length": "0"})
    t.eq(r.status, 200, "REST end of meeting 2")
    for w in (x, y):
        cl = await w.closed(2)
        t.ok(cl == (4410, "meeting_ended"), "REST end: its clients get meeting-ended and 4410", cl)
    await asyncio.sleep(0.3)
    t.eq(rows("SELECT count(*) FROM sig_connections"), [["0"]], "no session row is left")


async def tls_main(port):
    A, B = TLS_PEOPLE
    a = await Sig.open(port, A.sig_token, tls=True)
    b = await Sig.open(port, B.sig_token, tls=True)
    await b.send(type="offer", to=A.pid, payload={"sdp": "v=0 over tls"})
    m = await a.expect("offer")
    t.eq(m["payload"]["sdp"], "v=0 over tls", "wss://: signaling over TLS on control.listen")
    await a.close()
    await b.close()


try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "migrations apply", r.stdout + r.stderr)
    d = ControlDaemon(pg.url, ["control.credential-ttl=1h"])
    d.wait_log("registered for signaling", 20)
    asyncio.run(main(d.http_port))
    t.ok(d.clean(), "the daemon stops cleanly, sanitizers quiet", d.log()[-3000:])
    t.eq(rows("SELECT count(*) FROM sig_nodes"), [["0"]], "a node that stops leaves sig_nodes")

    # ------------------------------------------------------------ wss://
    tmp = mltest.scratch_dir("mlsigtls-")
    cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    d2 = ControlDaemon(pg.url, ["control.tls-cert=" + cert, "control.tls-key=" + key],
                       wait_for=None)
    d2.wait_log("registered for signaling", 30)
    import http.client  # noqa: E402
    import ssl  # noqa: E402
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    hc = http.client.HTTPSConnection("127.0.0.1", d2.http_port, timeout=10, context=ctx)
    hc.request("GET", "/api/v1/health")
    t.eq(hc.getresponse().status, 200, "control.tls-cert: the API answers over HTTPS")
    hc.close()
    asyncio.run(tls_main(d2.http_port))
    t.ok(d2.clean(), "the TLS daemon stops cleanly", d2.log()[-3000:])
except Exception as e:  # noqa: BLE001
    import traceback
    t.ok(False, "unexpected exception: %r" % e, traceback.format_exc())
    for x in (d, d2):
        if x:
            t.diag(x.log()[-4000:])
finally:
    for x in (d, d2):
        if x:
            x.close()
    pg.close()
sys.exit(t.done())
