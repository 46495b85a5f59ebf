"""The meeting-aware relay across nodes (issue #5): a control-plane meetlited and a TURN-only
meetlited (no control.listen) on one PostgreSQL. Allocations live on the TURN-only node;
removals, leaves and ends made through the control node close them within 1 s (NOTIFY). With
PostgreSQL stopped, the TURN-only node keeps relaying and allocating with stateless credentials,
buffers usage records up to usage.queue-max and counts the rest as dropped; revocations made
while it is cut off (through the control node and by SQL) are applied when it reconnects, and a
node that starts applies every revocation still in force. The TURN-only node reaches PostgreSQL
through a TCP proxy the test can cut, so that it alone loses the database."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Daemon, Tap, free_port  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, TURN_SECRET  # noqa: E402
from mlrelay import Participant, PgProxy, allocate_code, usage_rows, wait_until  # noqa: E402

t = Tap()
pg = Postgres()
proxy = None
c1 = None
tn = None
tn2 = None
people = []


def turn_only(port):
    return Daemon(["database.url=" + proxy.url(),
                   "turn.listen=udp://127.0.0.1:%d, tcp://127.0.0.1:%d" % (port, port),
                   "turn.auth-secret=" + TURN_SECRET, "turn.allow-peers=127.0.0.0/8",
                   "net.workers=2", "usage.queue-max=5", "usage.flush-interval-ms=100",
                   "database.reconnect-max=500", "database.listen-keepalive=1s",
                   "signaling.node-id=turn-only-1",
                   "log.level=info"], timeout=60)


def join(mid, tok):
    r = c1.api.post("/api/v1/meetings/%s/join" % mid, None, tok)
    if r.status != 200:
        raise RuntimeError("join: %r" % r)
    return r.json


def on_turn_node(j):
    p = Participant(("127.0.0.1", tport), j)
    people.append(p)
    return p


def revoked_within(p, t0, limit=1.0):
    left = t0 + limit - time.time()
    if left > 0:
        time.sleep(left)
    gone, why = p.gone()
    fresh = allocate_code(p.server, p.user, p.password)
    return gone and fresh == 401, (why, fresh, round(time.time() - t0, 3))


try:
    proxy = PgProxy(pg)
    c1 = ControlDaemon(pg.url, ["database.migrate-on-start=yes", "database.reconnect-max=500",
                                "turn.allow-peers=127.0.0.0/8"])
    api = c1.api
    tport = free_port()
    tn = turn_only(tport)
    t.ok(tn.wait_log("listening for revocations", 20), "the TURN-only node LISTENs through its own connection")
    t.ok("control plane listening" not in tn.log(), "it has no control plane")

    host_tok, host = api.user("host@example.org", name="Host")
    toks = {n: api.user("%s@example.org" % n, name=n.title())[0]
            for n in ("ann", "bob", "carl", "dan", "erin", "fay", "gus")}

    # ------------------------------------------------------------ removal through the control node
    m = api.meeting(host_tok, "Across nodes", max_participants=20)
    mid = m["id"]
    join(mid, host_tok)
    ann = on_turn_node(join(mid, toks["ann"]))
    t.ok(ann.relays(), "Ann relays through the TURN-only node with her join credential")
    t0 = time.time()
    r = api.call("DELETE", "/api/v1/meetings/%s/participants/%s" % (mid, ann.join["participant_id"]),
                 token=host_tok)
    t.eq(r.status, 200, "the ADMIN removes Ann through the control node")
    ok, why = revoked_within(ann, t0)
    t.ok(ok, "within 1 s her allocation on the TURN-only node is gone and her credential gets 401", why)
    t.ok("revoked (NOTIFY)" in tn.log(), "the TURN-only node learned it by NOTIFY", tn.log()[-2000:])

    # ------------------------------------------------------------ leave, and the end of the meeting
    fay = on_turn_node(join(mid, toks["fay"]))
    t.ok(fay.relays(), "Fay relays through the TURN-only node")
    t0 = time.time()
    t.eq(api.post("/api/v1/meetings/%s/leave" % mid, None, toks["fay"]).status, 200, "Fay leaves")
    ok, why = revoked_within(fay, t0)
    t.ok(ok, "within 1 s her allocation is gone and her credential refused", why)
    gus = on_turn_node(join(mid, toks["gus"]))
    bob0 = on_turn_node(join(mid, toks["bob"]))
    t.ok(gus.relays() and bob0.relays(), "two more participants relay through the TURN-only node")
    t0 = time.time()
    t.eq(api.post("/api/v1/meetings/%s/end" % mid, None, host_tok).status, 200, "the ADMIN ends the meeting")
    res = [revoked_within(p, t0) for p in (gus, bob0)]
    t.ok(all(ok for ok, _ in res), "within 1 s both allocations are gone and both credentials refused", res)
    written = wait_until(lambda: int(pg.psql("SELECT count(*) FROM turn_usage WHERE meeting_id = '%s'" % mid)) >= 4, 3)
    t.ok(written, "the TURN-only node recorded the four allocations' usage")
    node = pg.psql("SELECT DISTINCT node FROM turn_usage WHERE meeting_id = '%s'" % mid)
    t.eq(node, "turn-only-1", "with the node's name (signaling.node-id)")

    # ------------------------------------------------------------ PostgreSQL stops
    m2 = api.meeting(host_tok, "Outage", max_participants=20)
    mid2 = m2["id"]
    join(mid2, host_tok)
    bob = on_turn_node(join(mid2, toks["bob"]))
    dan = on_turn_node(join(mid2, toks["dan"]))
    carl_j = join(mid2, toks["carl"])
    erin_j = join(mid2, toks["erin"])
    t.ok(bob.relays() and dan.relays(), "Bob and Dan relay")
    pg.stop()
    t.ok(tn.wait_log("revocations: lost the database", 10), "the TURN-only node notices the loss", tn.log()[-2000:])
    t.ok(bob.relays() and dan.relays(), "while PostgreSQL is down, existing allocations keep relaying")
    t.eq(bob.refresh_code(), "ok", "and refresh")
    carl = on_turn_node(carl_j)
    t.ok(carl.relays(), "a new Allocate with a valid credential succeeds and relays")
    # usage.queue-max = 5: eight allocations end, five records wait, three are dropped
    erins = []
    for _ in range(8):
        e = Participant(("127.0.0.1", tport), erin_j, channel=False)
        people.append(e)
        erins.append(e)
    ends = [e.end() for e in erins]
    t.eq(ends, ["ok"] * 8, "eight allocations of Erin end while the database is down")
    t.ok(wait_until(lambda: "records dropped" in tn.log(), 5),
         "usage records beyond usage.queue-max are dropped, counted and logged", tn.log()[-2000:])

    # ------------------------------------------------------------ revocations while cut off
    proxy.cut()  # the TURN-only node alone stays without the database
    pg.start()
    c1.wait_db(30)
    # the control node's pool may need a moment to find that its connections died: retry
    r = wait_until(lambda: (lambda x: x if x.status != 503 else None)(api.call(
        "DELETE", "/api/v1/meetings/%s/participants/%s" % (mid2, dan.join["participant_id"]),
        token=host_tok)), 10, 0.1)
    t.ok(r and r.status == 200, "PostgreSQL is back; the ADMIN removes Dan through the control node", r)
    # an operator's revocation of one credential: a row written revoked (sql/017), published by
    # its trigger and read by the catch-up
    pg.psql("INSERT INTO turn_credentials (participant_id, user_id, username, expires_at, revoked_at) "
            "SELECT id, user_id, '%s', to_timestamp(%s), now() FROM participants WHERE id = '%s'"
            % (bob.user, bob.user.split(":")[0], bob.join["participant_id"]))
    t.ok(dan.relays() and bob.relays(),
         "the TURN-only node, still cut off, missed both revocations (removal, SQL INSERT): they relay")
    proxy.restore()
    t_back = time.time()
    ok = wait_until(lambda: not dan.to_client(b"probe", timeout=0.1) and not bob.to_client(b"probe", timeout=0.1), 8)
    t.ok(ok, "after it reconnects, the catch-up closes both allocations (%.1f s)" % (time.time() - t_back))
    t.eq((allocate_code(dan.server, dan.user, dan.password), allocate_code(bob.server, bob.user, bob.password)),
         (401, 401), "and refuses both credentials")
    t.ok("applied from the database (those made while disconnected)" in tn.log(), "the catch-up is logged",
         tn.log()[-2000:])
    t.ok(carl.relays(), "Carl, never revoked, keeps relaying")
    where = "cred_id = '%s'" % erins[0].cred_id
    t.ok(wait_until(lambda: len(usage_rows(pg, where)) == 5, 5),
         "the five buffered records are written once the database is reachable", usage_rows(pg, where))

    # ------------------------------------------------------------ a node that starts catches up
    rc, log = tn.stop()
    t.ok(tn.clean(), "the TURN-only node stops cleanly (no sanitizer report)", log[-3000:])
    # Every allocation it made is either in turn_usage or counted as dropped: the three above,
    # and possibly the records of Bob's and Dan's allocations, closed by the catch-up while
    # the five buffered records still filled the queue.
    total = re.search(r"totals: (\d+) allocations", log)
    final = re.search(r"usage records: (\d+) written, (\d+) dropped", log)
    in_db = int(pg.psql("SELECT count(*) FROM turn_usage"))
    t.ok(total and final and int(final.group(1)) == in_db and 3 <= int(final.group(2)) <= 5 and
         int(final.group(1)) + int(final.group(2)) == int(total.group(1)),
         "its final count: every allocation written or counted as dropped (%s)" % (final and final.group(0)),
         (total and total.group(0), final and final.group(0), in_db))
    tn2 = turn_only(tport)
    t.ok(tn2.wait_log("listening for revocations", 20), "a new TURN-only node starts")
    t.eq(allocate_code(("127.0.0.1", tport), dan.user, dan.password), 401,
         "it refuses a credential revoked before it started (catch-up of every revocation in force)")
    t.eq(allocate_code(("127.0.0.1", tport), carl.user, carl.password), "ok", "and accepts a live one")
    t.ok(tn2.clean(), "it stops cleanly", tn2.log()[-3000:])
    t.ok(c1.clean(), "the control node stops cleanly", c1.log()[-3000:])
except Exception as e:  # noqa: BLE001
    import traceback
    t.ok(False, "unexpected exception: %r" % e,
         traceback.format_exc() + "\n".join(x.log()[-3000:] for x in (tn, tn2, c1) if x))
finally:
    for p in people:
        p.close()
    for x in (tn, tn2, c1):
        if x:
            x.close()
    if proxy:
        proxy.close()
    pg.close()
sys.exit(t.done())
