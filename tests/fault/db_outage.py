"""PostgreSQL stopped and started during a meeting (issue #13, failures 4 and 5, item 9): two
participants relay through meetlited's TURN allocations and talk over signaling while the
database is away for 12 s. The relay never stops; health and the admin /readyz say "down"
within a second and "up" again within a second of its return; the API answers 503 with a JSON
error and recovers; a chat sent meanwhile is refused to its sender (and shown to nobody); no
join, usage record or chat is lost or doubled. Then kill -9 and a restart: the database stays
coherent and the participants join again."""

import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Tap  # noqa: E402
from mlcontrol import Api, ControlDaemon, Postgres, migrate  # noqa: E402
from mladmin import TOKEN, AdminApi, Pair, tcp_port  # noqa: E402
from mlsignal import Sig, meeting  # noqa: E402

t = Tap()
pg = Postgres()
d = None
OUTAGE_S = 12
# Health follows the pool: an idle connection looks at its socket every 250 ms, and a pool with
# no connection retries every second (src/db/db-pool.c). Both bounds get the scheduling slack
# of a loaded two-core machine on top, no more.
DOWN_WITHIN_S = 1.5
UP_WITHIN_S = 2.0


def ice_cred(join):
    s = [x for x in join["iceServers"] if "username" in x][0]
    return s["username"], s["credential"]


def json_error(r):
    try:
        e = r.json["error"]
        return isinstance(e["code"], str) and isinstance(e["message"], str) and e["message"] != ""
    except (TypeError, KeyError):
        return False


def wait_status(fn, want, timeout):
    """Polls fn() until it answers want; seconds it took, or None."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            if fn() == want:
                return time.time() - t0
        except OSError:
            pass
        time.sleep(0.02)
    return None


def q(sql):
    return pg.psql(sql)


async def outage(api, adm):
    mid, (A, B) = meeting(api, 2, prefix="outage")
    C = meeting(api, 1, prefix="late")[1][0]  # joins the outage meeting later
    a = await Sig.open(d.http_port, A.sig_token)
    b = await Sig.open(d.http_port, B.sig_token)
    await a.expect("participant-joined")
    pair = Pair(("127.0.0.1", d.turn_port), ice_cred(A.join), ice_cred(B.join))
    t.ok(pair.once(b"before"), "the two participants relay through meetlited before the outage")
    await a.send(type="chat", payload={"text": "before the outage"})
    m = await b.expect("chat", timeout=5)
    t.eq(m["payload"]["text"], "before the outage", "chat works before the outage")
    await a.expect("chat", timeout=5)  # the sender's own copy
    deadline = time.time() + 10
    while q("SELECT count(*) FROM sig_chat WHERE meeting_id = '%s'" % mid) != "1" and \
            time.time() < deadline:
        await asyncio.sleep(0.05)

    # ------------------------------------------------------------ the database goes away
    t0 = time.time()
    pg.stop()
    took = wait_status(lambda: api.get("/api/v1/health").status, 503, 10)
    t.ok(took is not None and took <= DOWN_WITHIN_S,
         "GET /api/v1/health says 503 within %.1f s of the outage (took %s s)" % (DOWN_WITHIN_S, took))
    r = api.get("/api/v1/health")
    t.ok(r.status == 503 and json_error(r) and r.code() == "unavailable",
         "health during the outage: 503 {\"error\":{\"code\":\"unavailable\",...}}", r)
    took = wait_status(lambda: adm.get("/readyz").status, 503, 10)
    t.ok(took is not None and took <= DOWN_WITHIN_S, "the admin /readyz agrees (503)", took)

    r = api.get("/api/v1/meetings", token=A.token)
    t.ok(r.status == 503 and json_error(r), "a database read answers 503 with a JSON error", r)
    r = api.post("/api/v1/meetings/%s/join" % mid, token=C.token, raw=b"",
                 headers={"Content-Length": "0"})
    t.ok(r.status == 503 and json_error(r), "a join answers 503 with a JSON error", r)

    await a.send(type="chat", id="lost?", payload={"text": "during the outage"})
    m = await a.expect("error", timeout=5)
    t.ok(m.get("id") == "lost?" and m["code"] == "unavailable" and "database" in m["message"],
         "a chat during the outage is refused to its sender (unavailable)", m)
    t.ok(await b.quiet(0.5, "chat"), "and shown to nobody")
    relayed = 0
    tries = 0
    while time.time() - t0 < OUTAGE_S:
        tries += 1
        relayed += pair.once(b"during %d" % tries)
        await asyncio.sleep(0.3)
    t.ok(tries >= 10 and relayed == tries,
         "relaying never stops during the %d s outage (%d of %d packets)" % (OUTAGE_S, relayed, tries))
    t.ok(d.alive(), "meetlited runs on through the outage")

    # ------------------------------------------------------------ it comes back
    pg.start()  # returns once PostgreSQL accepts connections: "its return"
    took = wait_status(lambda: api.get("/api/v1/health").status, 200, 15)
    t.ok(took is not None and took <= UP_WITHIN_S,
         "health says 200 within %.1f s of the database's return (took %s s)" % (UP_WITHIN_S, took))
    took = wait_status(lambda: adm.get("/readyz").status, 200, 15)
    t.ok(took is not None, "the admin /readyz agrees (200)", took)
    r = api.post("/api/v1/meetings/%s/join" % mid, token=C.token, raw=b"",
                 headers={"Content-Length": "0"})
    t.ok(r.status == 200, "a join works again", r)
    C.join = r.json
    # signaling's own connections reconnect with their backoff (database.reconnect-max)
    sent = False
    deadline = time.time() + 15
    while not sent and time.time() < deadline:
        await a.send(type="chat", id="after", payload={"text": "after the outage"})
        while True:
            m = await a.recv(timeout=5)
            if (m.get("type") == "chat" and m["payload"]["text"] == "after the outage") or \
                    (m.get("type") == "error" and m.get("id") == "after"):
                break
        sent = m["type"] == "chat"
        if not sent:
            await asyncio.sleep(0.3)
    t.ok(sent, "chat is accepted again once the database is back")
    m = await b.expect("chat", timeout=5, payload={"text": "after the outage"})
    t.ok(m is not None, "and delivered")
    deadline = time.time() + 10
    while q("SELECT count(*) FROM sig_chat WHERE meeting_id = '%s'" % mid) != "2" and \
            time.time() < deadline:
        await asyncio.sleep(0.05)
    c = await Sig.open(d.http_port, C.sig_token)
    t.eq([h["payload"]["text"] for h in c.joined["chat"]], ["before the outage", "after the outage"],
         "the late joiner's history: every accepted chat once, in order, nothing refused")
    t.ok(pair.once(b"after"), "the allocations made before the outage still relay")

    # ------------------------------------------------------------ joins and usage records
    t.eq(q("SELECT count(*) FROM participants WHERE meeting_id = '%s' AND left_at IS NULL" % mid),
         "3", "three joins, three participants: none lost, none doubled")
    pair.a.refresh(0)
    pair.b.refresh(0)
    pair.close()
    deadline = time.time() + 15
    while q("SELECT count(*) FROM turn_usage WHERE meeting_id = '%s'" % mid) != "2" and \
            time.time() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # a doubled write would land by now
    rows = q("SELECT participant_id, packets_to_peer > 0 FROM turn_usage WHERE meeting_id = '%s' "
             "ORDER BY participant_id" % mid).splitlines()
    t.eq(sorted(x.split("|")[0] for x in rows), sorted([A.pid, B.pid]),
         "one usage record per allocation, written after the outage (none lost or doubled)")
    t.ok(any(x.endswith("|t") for x in rows), "the usage record counts the outage's packets", rows)
    await c.close()
    await a.close()
    await b.close()
    return mid, (A, B, C)


async def after_kill(api, mid, people):
    A, B, C = people
    codes = []
    for p in (A, B):
        r = api.post("/api/v1/meetings/%s/join" % mid, token=p.token, raw=b"",
                     headers={"Content-Length": "0"})
        codes.append(r.status)
        if r.status == 200:
            p.join = r.json
    t.ok(codes == [200, 200] and A.join["participant_id"] == A.pid,
         "after kill -9 and a restart the participants join again (same participant)", codes)
    a = await Sig.open(d.http_port, A.sig_token)
    t.eq(sorted(x["id"] for x in a.joined["roster"]), sorted([A.pid, B.pid, C.pid]),
         "the roster is the database's: nobody lost, nobody doubled")
    t.eq([h["payload"]["text"] for h in a.joined["chat"]], ["before the outage", "after the outage"],
         "the chat history survived the kill")
    t.eq(q("SELECT count(*) FROM sig_connections WHERE meeting_id = '%s'" % mid), "1",
         "the killed process's signaling sessions are gone (only the new one is recorded)")
    pair = Pair(("127.0.0.1", d.turn_port), ice_cred(A.join), ice_cred(B.join))
    t.ok(pair.once(b"again"), "fresh TURN credentials relay after the restart")
    pair.close()
    await a.close()


try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "the schema is applied", r.stdout + r.stderr)
    admin_port = tcp_port()
    extra = ["admin.listen=127.0.0.1:%d" % admin_port, "admin.token=" + TOKEN,
             "turn.allow-peers=127.0.0.0/8", "usage.flush-interval-ms=100",
             "signaling.node-id=fault-node", "database.connect-timeout=2s"]
    d = ControlDaemon(pg.url, extra, wait_for="registered for signaling")
    api, adm = d.api, AdminApi(admin_port)
    mid, people = asyncio.run(outage(api, adm))
    http_port, turn_port = d.http_port, d.turn_port

    # ------------------------------------------------------------ kill -9 and restart
    d.proc.kill()
    d.proc.wait()
    t.ok(d.proc.returncode == -9, "meetlited killed with SIGKILL")
    t.eq(q("SELECT status FROM meetings WHERE id = '%s'" % mid), "ACTIVE",
         "the meeting is still active in the database")
    d.close()
    d = ControlDaemon(pg.url, extra, http_port=http_port, turn_port=turn_port,
                      wait_for="registered for signaling")
    asyncio.run(after_kill(d.api, mid, people))
    t.ok(d.clean(), "the restarted daemon stops cleanly, sanitizers quiet", d.log()[-3000:])
except Exception as e:  # noqa: BLE001
    t.unexpected(e, d)
finally:
    if d:
        d.close()
    pg.close()
t.done()
