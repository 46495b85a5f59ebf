"""Two meetlited nodes on one PostgreSQL serve the same meetings: participants on different
nodes see each other (rosters, presence) and exchange every message type through LISTEN/NOTIFY,
a payload above NOTIFY's 8000 bytes through sig_outbox, chat and media state stored for both,
REST changes made on one node reach clients of the other (the removed one closed within a
second), isolation holds across nodes, the connection limit per participant counts both nodes,
sig_connections names the node of each session, and a node killed with SIGKILL is swept by the
other: its rows go, its participants go offline, the survivor's connections carry on."""

import asyncio
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Tap  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, migrate  # noqa: E402
from mlsignal import Sig, meeting, refused  # noqa: E402

t = Tap()
pg = Postgres()
n1 = n2 = None
FLEET = ["signaling.heartbeat-ms=300", "signaling.node-timeout-ms=1500",
         "signaling.max-connections-per-participant=2"]


def rows(sql):
    return [line.split("|") for line in pg.psql(sql).splitlines() if line]


async def main():
    p1, p2 = n1.http_port, n2.http_port
    mid, (A, B, C) = meeting(n1.api, 3, prefix="fleet")
    mid2, (X, Y) = meeting(n2.api, 2, prefix="fleet2")

    a = await Sig.open(p1, A.sig_token)
    b = await Sig.open(p2, B.sig_token)
    t.ok(a.joined["node"] == "node-one" and b.joined["node"] == "node-two",
         "A is served by node-one, B by node-two", (a.joined["node"], b.joined["node"]))
    m = await a.expect("participant-joined")
    t.eq(m["participant"]["id"], B.pid, "A (node-one) sees B (node-two) join")
    t.ok({e["id"]: e["online"] for e in b.joined["roster"]}[A.pid],
         "B's roster shows A online on the other node")
    t.eq(sorted(rows("SELECT participant_id, node_id FROM sig_connections WHERE meeting_id = '%s'"
                     % mid)), sorted([[A.pid, "node-one"], [B.pid, "node-two"]]),
         "sig_connections: each session with its node")

    # every message type across the nodes
    await a.send(type="offer", id=1, to=B.pid, payload={"sdp": "v=0 one->two"})
    m = await b.expect("offer")
    t.ok(m["from"] == A.pid and m["payload"]["sdp"] == "v=0 one->two" and m["id"] == 1,
         "offer across nodes", m)
    await b.send(type="answer", to=A.pid, payload={"sdp": "v=0 two->one"})
    t.eq((await a.expect("answer"))["payload"]["sdp"], "v=0 two->one", "answer across nodes")
    for i in range(20):
        await a.send(type="candidate", to=B.pid, payload={"candidate": "cand %d" % i,
                                                         "sdpMLineIndex": 0})
    got = [(await b.expect("candidate"))["payload"]["candidate"] for _ in range(20)]
    t.eq(got, ["cand %d" % i for i in range(20)], "20 candidates across nodes, in order")
    await b.send(type="ice-restart", to=A.pid)
    t.eq((await a.expect("ice-restart"))["from"], B.pid, "ice-restart across nodes")
    big = "v=0\r\n" + "".join("a=fingerprint:sha-256 %064x\r\n" % i for i in range(150))
    t.ok(len(big) > 12000, "an SDP of %d bytes (above NOTIFY's 8000)" % len(big))
    await b.send(type="offer", to=A.pid, payload={"sdp": big})
    m = await a.expect("offer")
    t.eq(m["payload"]["sdp"], big, "a payload above 8000 bytes crosses (through sig_outbox)")
    await a.send(type="mute-request", to=B.pid, payload={"kind": "audio"})
    t.eq((await b.expect("mute-request"))["from"], A.pid, "mute-request across nodes")
    await b.send(type="chat", payload={"text": "hello from two"})
    m = await a.expect("chat")
    t.ok(m["payload"]["text"] == "hello from two" and m["name"] == "FLEET 1", "chat across nodes", m)
    await b.expect("chat")
    await a.send(type="media", payload={"audio": True, "video": True})
    m = await b.expect("participant-updated")
    t.ok(m["participant"]["id"] == A.pid and m["participant"]["audio"] and m["participant"]["video"],
         "media state across nodes", m)
    await asyncio.sleep(0.3)
    c = await Sig.open(p2, C.sig_token)
    t.ok([h["payload"]["text"] for h in c.joined["chat"]] == ["hello from two"] and
         {e["id"]: e for e in c.joined["roster"]}[A.pid]["audio"] is True,
         "a later connection on node-two: the chat history and A's media state", c.joined)
    await a.expect("participant-joined")
    await b.expect("participant-joined")

    # isolation across nodes
    x = await Sig.open(p1, X.sig_token)  # meeting 2, on node-one
    await b.send(type="offer", to=X.pid, payload={"sdp": "v=0"})
    t.eq((await b.expect("error"))["code"], "participant_not_found",
         "node-two refuses an offer naming a participant of another meeting on node-one")
    await b.send(type="chat", payload={"text": "meeting one only"})
    await a.expect("chat", payload={"text": "meeting one only"})
    t.ok(await x.quiet(0.4), "nothing of meeting 1 reaches meeting 2's client on the other node",
         x.backlog)

    # the limit per participant counts both nodes (max 2)
    b2 = await Sig.open(p1, B.sig_token)
    t.eq(await refused(p2, B.sig_token), (4004, "too_many_connections"),
         "B has a connection on each node: a third on either is refused 4004")
    await a.send(type="offer", to=B.pid, payload={"sdp": "to both nodes"})
    t.ok((await b.expect("offer"))["payload"] == (await b2.expect("offer"))["payload"],
         "a message to B reaches both of its connections, one per node")
    await b2.close()

    # REST on node-one, client on node-two
    r = n1.api.call("PATCH", "/api/v1/meetings/%s/participants/%s" % (mid, C.pid),
                    {"role": "ADMIN"}, token=A.token)
    t.eq(r.status, 200, "role changed through node-one")
    m = await c.expect("participant-updated")
    t.eq(m["participant"]["role"], "ADMIN", "C (node-two) hears of its new role")
    t0 = time.time()
    r = n1.api.call("DELETE", "/api/v1/meetings/%s/participants/%s" % (mid, B.pid), token=A.token)
    t.eq(r.status, 200, "B removed through node-one")
    cl = await b.closed(2)
    took = time.time() - t0
    t.ok(cl == (4403, "removed") and took < 1.0,
         "B's WebSocket on node-two closed 4403 in %.3fs" % took, cl)
    t.eq((await c.expect("removed"))["participant_id"], B.pid, "C on node-two gets removed")
    t.eq((await a.expect("removed"))["participant_id"], B.pid, "A on node-one gets removed")

    # end over signaling on node-two reaches node-one
    await c.send(type="end", id="fin")
    t.eq((await c.expect("ack"))["id"], "fin", "C ends the meeting on node-two")
    cl = await a.closed(2)
    t.ok(cl == (4410, "meeting_ended") and any(m["type"] == "meeting-ended" for m in a.backlog),
         "A on node-one: meeting-ended and 4410", cl)
    await c.closed(2)
    await x.close()

    # a node killed with SIGKILL
    mid3, (P, Q, R) = meeting(n1.api, 3, prefix="kill")
    p = await Sig.open(p1, P.sig_token)
    q = await Sig.open(p2, Q.sig_token)
    r_ = await Sig.open(p1, R.sig_token)
    await p.expect("participant-joined")
    await p.expect("participant-joined")
    t.eq(rows("SELECT count(*) FROM sig_connections WHERE node_id = 'node-two'"), [["1"]],
         "node-two holds one session")
    n2.proc.send_signal(signal.SIGKILL)
    n2.proc.wait()
    t0 = time.time()
    m = await p.expect("participant-left", timeout=10)
    took = time.time() - t0
    t.ok(m["participant_id"] == Q.pid and m["reason"] == "disconnected",
         "node-one sweeps the dead node: Q goes offline after %.1fs" % took, m)
    t.ok(took < 4, "within node-timeout and a heartbeat (1.5 s + 0.3 s)", took)
    t.eq(rows("SELECT count(*) FROM sig_connections WHERE node_id = 'node-two'"), [["0"]],
         "the dead node's session rows are gone")
    t.eq(rows("SELECT node_id FROM sig_nodes"), [["node-one"]], "sig_nodes: node-one only")
    await p.send(type="offer", to=R.pid, payload={"sdp": "still here"})
    t.eq((await r_.expect("offer"))["payload"]["sdp"], "still here",
         "node-one's own connections are unaffected")
    t.ok(p.ws.open and r_.ws.open, "and still open")
    try:
        await q.ws.recv()
    except Exception:  # noqa: BLE001
        pass
    t.ok(not q.ws.open, "the dead node's client lost its connection")
    q2 = await Sig.open(p1, Q.sig_token)
    t.ok(q2.joined["participant_id"] == Q.pid, "and joins again through the surviving node")
    m = await p.expect("participant-joined")
    t.eq(m["participant"]["id"], Q.pid, "where the others see it back")
    for w in (p, q2, r_):
        await w.close()


try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "migrations apply", r.stdout + r.stderr)
    n1 = ControlDaemon(pg.url, FLEET + ["signaling.node-id=node-one"],
                       wait_for="registered for signaling")
    n2 = ControlDaemon(pg.url, FLEET + ["signaling.node-id=node-two"],
                       wait_for="registered for signaling")
    asyncio.run(main())
    t.ok(n1.clean(), "node-one stops cleanly, sanitizers quiet", n1.log()[-3000:])
    t.ok("ERROR: AddressSanitizer" not in n2.log(), "node-two died of SIGKILL, not of a bug")
except Exception as e:  # noqa: BLE001
    t.unexpected(e, n1, n2, tail=5000)
finally:
    for x in (n1, n2):
        if x:
            x.close()
    pg.close()
sys.exit(t.done())
