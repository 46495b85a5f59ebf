"""Webhooks (issue #17, item 4) against real PostgreSQL and an HTTPS receiver with a CA of the
test's own: meeting started, participant joined and left (each reason), usage recorded and
meeting ended arrive in order with valid signatures (checked by the verification example of
docs/webhooks.md, run as it is written there); a receiver that fails (500s), then refuses
connections, then recovers gets every event, each id accepted once; meetlited killed with
SIGKILL with events pending loses none; two nodes on one database deliver each event once; a
receiver with the wrong secret refuses; replays through the admin API and meetlite-admin; bad
admin input gets a 4xx JSON error; configuration errors are refused at start."""

import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mltest  # noqa: E402
from mltest import MEETLITED, Tap, TOP_SRCDIR, free_port  # noqa: E402
from mlcontrol import ControlDaemon, Postgres  # noqa: E402
from mladmin import TOKEN, AdminApi, cli, metric, promtool, tcp_port  # noqa: E402
from mlrelay import Participant, wait_until  # noqa: E402
from mlhooks import SECRET, Receiver, make_ca  # noqa: E402

t = Tap()
pg = Postgres()
tmp = mltest.scratch_dir("mlwh-")
ca, crt, key = make_ca(tmp)
secret_file = os.path.join(tmp, "webhook.secret")
with open(secret_file, "w") as f:
    f.write(SECRET.decode() + "\n")
rx = Receiver(crt, key, free_port())
rx.start()
nodes = []
people = []
admin_port = tcp_port()


def node(name, admin=False, extra=()):
    sets = ["database.migrate-on-start=yes", "turn.allow-peers=127.0.0.0/8",
            "usage.flush-interval-ms=100", "signaling.node-id=" + name,
            "webhooks.url=https://127.0.0.1:%d/hooks/meetlite" % rx.port,
            "webhooks.secret-file=" + secret_file, "webhooks.ca-file=" + ca,
            "webhooks.timeout-ms=2000", "webhooks.retry-initial-ms=200",
            "webhooks.retry-max-ms=800", "webhooks.poll-interval-ms=1000",
            "webhooks.max-attempts=1000", "webhooks.batch=4"] + list(extra)
    if admin:
        sets += ["admin.listen=127.0.0.1:%d" % admin_port, "admin.token=" + TOKEN]
    d = ControlDaemon(pg.url, sets)
    nodes.append(d)
    return d


def ids_where(where, limit=100000):
    out = pg.psql("SELECT id FROM webhook_events WHERE %s ORDER BY seq LIMIT %d" % (where, limit))
    return out.split() if out else []


def all_delivered(ids):
    if not ids:
        return False
    q = "SELECT count(*) FROM webhook_events WHERE status = 'delivered' AND id IN (%s)" % \
        ",".join("'%s'" % i for i in ids)
    return int(pg.psql(q)) == len(ids)


def activity(api, tag):
    """A meeting with two joins, a leave and an end (six events): returns its id."""
    tok, _ = api.user("%s-host@example.org" % tag, name="Host " + tag)
    m = api.meeting(tok, title="Class " + tag)
    api.post("/api/v1/meetings/%s/join" % m["id"], None, tok)
    t2, _ = api.user("%s-pupil@example.org" % tag, name="Pupil " + tag)
    api.post("/api/v1/meetings/%s/join" % m["id"], None, t2)
    api.post("/api/v1/meetings/%s/leave" % m["id"], None, t2)
    api.post("/api/v1/meetings/%s/end" % m["id"], None, tok)
    return m["id"]


def meeting_ids(mid):
    return ids_where("payload->'meeting'->>'id' = '%s'" % mid)


try:
    # ------------------------------------------------------------ configuration refused
    def check(*sets):
        args = [MEETLITED]
        for s in sets:
            args += ["--set", s]
        return subprocess.run(args + ["--check-config"], capture_output=True, text=True,
                              timeout=60)
    r = check("database.url=" + pg.url, "webhooks.url=https://127.0.0.1:1/x")
    t.ok(r.returncode != 0 and "secret" in r.stderr, "a url without a secret is refused", r.stderr)
    r = check("database.url=" + pg.url, "webhooks.url=http://example.org/x",
              "webhooks.secret-file=" + secret_file)
    t.ok(r.returncode != 0 and "https://" in r.stderr, "plain http to a remote host is refused",
         r.stderr)
    r = check("database.url=" + pg.url, "webhooks.url=http://localhost:80@example.org/x",
              "webhooks.secret-file=" + secret_file)
    t.ok(r.returncode != 0 and "https://" in r.stderr,
         "plain http to a remote host behind a loopback user name is refused", r.stderr)
    r = check("database.url=" + pg.url, "webhooks.events=meeting.started, meeting.exploded")
    t.ok(r.returncode != 0 and "meeting.exploded" in r.stderr, "an unknown event type is refused",
         r.stderr)
    short = os.path.join(tmp, "short.secret")
    with open(short, "w") as f:
        f.write("short\n")
    r = check("database.url=" + pg.url, "webhooks.url=https://127.0.0.1:1/x",
              "webhooks.secret-file=" + short)
    t.ok(r.returncode != 0 and "shorter than 16" in r.stderr, "a short secret is refused", r.stderr)
    r = check("database.url=" + pg.url, "webhooks.url=https://127.0.0.1:1/x",
              "webhooks.secret-file=" + secret_file)
    t.ok(r.returncode == 0, "a url with a secret file passes --check-config", r.stderr)

    # ------------------------------------------------------------ events in order, signed
    a = node("node-a", admin=True)
    api = a.api
    host_tok, host = api.user("host@example.org", name="Ms Host")
    ann_tok, ann = api.user("ann@example.org", name="Ann")
    bob_tok, bob = api.user("bob@example.org", name="Bob")
    m = api.meeting(host_tok, title="Biology 4B")
    mid = m["id"]
    jh = api.post("/api/v1/meetings/%s/join" % mid, None, host_tok).json
    ja = api.post("/api/v1/meetings/%s/join" % mid, None, ann_tok).json
    p = Participant(("127.0.0.1", a.turn_port), ja)
    people.append(p)
    t.ok(p.relays(), "Ann relays through her meeting credential")
    t.ok(p.end() == "ok", "Ann's allocation ends (a usage record follows)")
    t.ok(wait_until(lambda: ids_where("type = 'usage.recorded'"), 5), "the usage record queued an event")
    r = api.post("/api/v1/meetings/%s/leave" % mid, None, ann_tok)
    t.eq(r.status, 200, "Ann leaves")
    jb = api.post("/api/v1/meetings/%s/join" % mid, None, bob_tok).json
    r = api.call("DELETE", "/api/v1/meetings/%s/participants/%s" % (mid, jb["participant_id"]),
                 token=host_tok)
    t.ok(r.status in (200, 204), "the host removes Bob", r)
    r = api.post("/api/v1/meetings/%s/end" % mid, None, host_tok)
    t.eq(r.status, 200, "the host ends the meeting")
    want = meeting_ids(mid)
    t.ok(wait_until(lambda: rx.has(want), 15), "the receiver got every event of the meeting",
         "%d of %d" % (len([i for i in want if i in rx.ids]), len(want)))
    got = [e for e in rx.accepted if (e["data"].get("meeting") or {}).get("id") == mid]
    kinds = [(e["type"], (e["data"].get("participant") or {}).get("display_name"),
              e["data"].get("reason")) for e in got]
    expect = [("meeting.started", None, None),
              ("participant.joined", "Ms Host", None),
              ("participant.joined", "Ann", None),
              ("usage.recorded", "Ann", None),
              ("participant.left", "Ann", "left"),
              ("participant.joined", "Bob", None),
              ("participant.left", "Bob", "removed"),
              ("participant.left", "Ms Host", "meeting_ended"),
              ("meeting.ended", None, None)]
    t.eq(kinds, expect, "started, joined, usage, left (left, removed, meeting_ended), ended: in order")
    seqs = [e["sequence"] for e in got]
    t.ok(seqs == sorted(seqs), "sequence numbers grow in the order received", seqs)
    t.ok(rx.bad_sig == 0 and rx.header_mismatch == 0,
         "every signature verified by the docs' example, the id header matches the body",
         (rx.bad_sig, rx.header_mismatch))
    started = got[0]["data"]["meeting"]
    t.ok(started["code"] == m["code"] and started["title"] == "Biology 4B" and
         started["host"]["display_name"] == "Ms Host", "meeting.started names the meeting and host",
         started)
    joined = got[1]["data"]["participant"]
    t.ok(joined["role"] == "ADMIN" and joined["id"] == jh["participant_id"],
         "participant.joined carries the id and role", joined)
    usage = got[3]["data"]["usage"]
    t.ok(usage["bytes_to_peer"] > 0 and usage["bytes_to_client"] > 0 and
         usage["transport"] == "udp" and usage["node"] is not None,
         "usage.recorded carries the figures", usage)
    ended = got[-1]["data"]
    t.ok(ended["status"] == "ended" and ended["participants_total"] == 3 and
         ended["meeting"]["ended_at"], "meeting.ended: status, ended_at, participants", ended)
    blob = json.dumps(rx.accepted)
    t.ok(ja["turn"]["password"] not in blob and ja["turn"]["username"] not in blob and
         host_tok not in blob and SECRET.decode() not in blob and "password" not in blob,
         "no credential, token or secret in any event")
    t.ok(all(n == 1 for n in rx.ids.values()), "each id accepted once")

    # ------------------------------------------------------------ idle: the worker sleeps
    # A claim must not wake the workers (it did: the lease's update sent a NOTIFY, every
    # claim woke its own worker, which claimed again, ~1,400 times a second at idle).
    pg.psql("ALTER SYSTEM SET track_functions = 'pl'")
    pg.psql("SELECT pg_reload_conf()")
    time.sleep(1.5)
    pg.psql("SELECT pg_stat_reset()")
    time.sleep(4)
    claims = int(pg.psql("SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions "
                         "WHERE funcname = 'ml_wh_claim'") or 0)
    t.ok(claims <= 12, "with nothing due, the worker claims on its poll interval only "
         "(%d claims in 4 s, webhooks.poll-interval-ms 1000)" % claims)

    # ------------------------------------------------------------ outage: 500s, refused, back
    rx.mode = "fail"
    m1 = activity(api, "outage1")
    t.ok(wait_until(lambda: pg.psql("SELECT count(*) FROM webhook_events WHERE attempts >= 2 "
                                    "AND last_status = 500") != "0", 10),
         "events are retried while the receiver answers 500")
    rx.stop()
    m2 = activity(api, "outage2")
    t.ok(wait_until(lambda: pg.psql("SELECT count(*) FROM webhook_events WHERE status = 'pending' "
                                    "AND last_status IS NULL AND last_error LIKE '%onnect%'")
                    != "0", 10), "refused connections are recorded as failed attempts",
         pg.psql("SELECT last_status, last_error FROM webhook_events WHERE status = 'pending'"))
    pending = meeting_ids(m1) + meeting_ids(m2)
    t.ok(not rx.has(pending), "nothing of the outage was accepted yet")
    rx.mode = "ok"
    rx.start()
    t.ok(wait_until(lambda: rx.has(pending), 15), "after recovery every event arrives",
         "%d of %d" % (len([i for i in pending if i in rx.ids]), len(pending)))
    t.ok(wait_until(lambda: all_delivered(pending), 5), "and every one is marked delivered")
    t.eq(rx.dups(pending), {}, "each id accepted once after the outage")

    # ------------------------------------------------------------ SIGKILL with events pending
    rx.stop()
    m3 = activity(api, "killed")
    t.ok(wait_until(lambda: len(meeting_ids(m3)) == 6, 5), "six events queued for the meeting")
    time.sleep(0.5)
    a.signal(signal.SIGKILL)
    t.ok(wait_until(lambda: not a.alive(), 5), "meetlited killed with SIGKILL")
    pend = meeting_ids(m3)
    t.eq(pg.psql("SELECT count(*) FROM webhook_events WHERE status = 'pending' AND id IN (%s)" %
                 ",".join("'%s'" % i for i in pend)), "6", "its events are pending in PostgreSQL")
    rx.start()
    a = node("node-a", admin=True)
    api = a.api
    t.ok(wait_until(lambda: rx.has(pend), 20), "after the restart every one is delivered",
         pg.psql("SELECT status, attempts, next_attempt_at - now(), last_error FROM webhook_events "
                 "WHERE status <> 'delivered'"))
    t.eq(rx.dups(pend), {}, "each once")

    # ------------------------------------------------------------ two nodes, one queue
    b = node("node-b")
    tags = ["two-%d" % i for i in range(8)]
    mids = [activity(api if i % 2 == 0 else b.api, tag) for i, tag in enumerate(tags)]
    both = [i for mm in mids for i in meeting_ids(mm)]
    t.eq(len(both), 48, "48 events queued through both nodes")
    t.ok(wait_until(lambda: rx.has(both), 30), "the two nodes deliver them all")
    t.eq(rx.dups(both), {}, "each id accepted once with two nodes sharing the queue")
    t.diag("delivered by: " + pg.psql(
        "SELECT string_agg(claimed_by || '=' || n, ' ') FROM (SELECT claimed_by, count(*) n "
        "FROM webhook_events WHERE status = 'delivered' GROUP BY claimed_by) x"))
    b.stop()

    # ------------------------------------------------------------ the wrong secret
    rx.secret = b"not-the-secret-0123456789abcdef"
    bad_before = rx.bad_sig
    tok, _ = api.user("wrong@example.org", name="Wrong")
    mw = api.meeting(tok, title="Wrong secret")["id"]
    wid = meeting_ids(mw)
    t.ok(wait_until(lambda: rx.bad_sig > bad_before, 10), "the receiver with another secret refuses")
    t.ok(wait_until(lambda: pg.psql("SELECT last_status FROM webhook_events WHERE id = '%s'" % wid[0])
                    == "401", 5), "the refusal is recorded (401), the event stays pending")
    t.ok(not rx.has(wid), "nothing was accepted")
    rx.secret = SECRET
    t.ok(wait_until(lambda: rx.has(wid), 10), "with the right secret back it is delivered")

    # ------------------------------------------------------------ rotation: SIGHUP reads the file
    NEW = b"rotated-secret-0123456789abcdef0"
    with open(secret_file, "w") as f:
        f.write(NEW.decode() + "\n")
    rx.secret = NEW
    a.signal(signal.SIGHUP)
    t.ok(a.wait_log("configuration reloaded", 10), "SIGHUP reloads")
    mr = api.meeting(tok, title="Rotated")["id"]
    rid = meeting_ids(mr)
    t.ok(wait_until(lambda: rx.has(rid), 10), "after SIGHUP events are signed with the new secret")
    t.ok(NEW.decode() not in a.log() and SECRET.decode() not in a.log(), "no secret in the log")

    # ------------------------------------------------------------ the admin API
    adm = AdminApi(admin_port)
    r = adm.get("/v1/webhooks/events?status=delivered&type=meeting.started&limit=2")
    t.ok(r.status == 200 and r.json["count"] == 2 and
         all(e["type"] == "meeting.started" and e["status"] == "delivered" for e in r.json["events"])
         and isinstance(r.json["next_before"], int), "list by status and type, paginated", r)
    page2 = adm.get("/v1/webhooks/events?status=delivered&type=meeting.started&limit=2&before=%d" %
                    r.json["next_before"])
    t.ok(page2.status == 200 and page2.json["events"] and
         page2.json["events"][0]["sequence"] < r.json["events"][-1]["sequence"],
         "the next page continues before the last one", page2)
    first = r.json["events"][0]
    r = adm.get("/v1/webhooks/events?since=%d" % (int(time.time()) + 3600))
    t.ok(r.status == 200 and r.json["count"] == 0, "since in the future: nothing", r)
    r = adm.get("/v1/webhooks/events?since=2000-01-01T00:00:00Z&limit=1000")
    total = int(pg.psql("SELECT count(*) FROM webhook_events"))
    t.ok(r.status == 200 and r.json["count"] == min(total, 1000), "since as RFC 3339", r.status)
    r = adm.get("/v1/webhooks/events/" + first["id"])
    t.ok(r.status == 200 and r.json["payload"]["meeting"]["id"] and r.json["attempts"] >= 1,
         "one event with its payload", r)
    n_before = rx.ids[first["id"]]
    r = adm.post("/v1/webhooks/events/%s/replay" % first["id"])
    t.ok(r.status == 200 and r.json["status"] == "pending" and r.json["attempts"] == 0,
         "replay through the API", r)
    t.ok(wait_until(lambda: rx.ids.get(first["id"]) == n_before + 1, 10),
         "the replayed event arrives again with the same id")
    # failed events: two delivered ones marked failed as if their attempts ran out
    failed = ids_where("type = 'participant.joined' AND status = 'delivered'", 2)
    pg.psql("UPDATE webhook_events SET status = 'failed', delivered_at = NULL WHERE id IN (%s)" %
            ",".join("'%s'" % i for i in failed))
    r = adm.get("/v1/webhooks/events?status=failed")
    t.ok(r.status == 200 and sorted(e["id"] for e in r.json["events"]) == sorted(failed),
         "failed events are listed", r)
    r = adm.post("/v1/webhooks/replay-failed", {"since": "2000-01-01T00:00:00Z"})
    t.ok(r.status == 200 and r.json["replayed"] == 2, "replay-failed through the API", r)
    t.ok(wait_until(lambda: all_delivered(failed), 10), "both are delivered again")

    for path, code, what in [
            ("/v1/webhooks/events?status=lost", 422, "an unknown status"),
            ("/v1/webhooks/events?type=meeting.exploded", 422, "an unknown type"),
            ("/v1/webhooks/events?limit=0", 422, "limit 0"),
            ("/v1/webhooks/events?limit=100000", 422, "limit too large"),
            ("/v1/webhooks/events?before=abc", 422, "a bad cursor"),
            ("/v1/webhooks/events?since=yesterday", 422, "since in words"),
            ("/v1/webhooks/events?since=2026-13-45T99:00:00Z", 422, "since out of range"),
            ("/v1/webhooks/events/not-a-uuid", 404, "a bad id"),
            ("/v1/webhooks/events/00000000-0000-4000-8000-000000000000", 404, "an unknown id")]:
        r = adm.get(path)
        t.ok(r.status == code and r.json and r.json["error"]["code"] and r.json["error"]["message"],
             "%s: %d with a JSON error" % (what, code), r)
    r = adm.post("/v1/webhooks/events/00000000-0000-4000-8000-000000000000/replay")
    t.ok(r.status == 404 and r.json["error"]["code"] == "not_found", "replay of an unknown id: 404", r)
    r = adm.post("/v1/webhooks/replay-failed", {"since": "soon"})
    t.ok(r.status == 422 and r.json["error"]["code"] == "invalid_field", "replay-failed with a bad since", r)
    r = adm.post("/v1/webhooks/replay-failed", {"since": 12})
    t.ok(r.status == 422, "replay-failed with since of the wrong type", r)
    r = adm.get("/v1/webhooks/events", token=None)
    t.ok(r.status == 401, "no token: 401", r)
    r = adm.get("/stats")
    w = r.json.get("webhooks") if r.status == 200 else None
    t.ok(w and w["delivered"] > 0 and w["attempts_failed"] > 0 and w["db_connects"] >= 1,
         "/stats counts the node's deliveries and failed attempts", w)
    text = adm.metrics()
    t.ok(metric(text, "meetlite_webhook_deliveries_total") == w["delivered"] and
         metric(text, "meetlite_webhook_attempts_failed_total") is not None,
         "/metrics has the webhook counters")
    pt = promtool(text)
    t.ok(pt[0] == 0, "promtool accepts /metrics with them", pt)

    # ------------------------------------------------------------ meetlite-admin
    U = ["-u", "http://127.0.0.1:%d" % admin_port]
    rc, out, err = cli(*U, "webhooks", "list", "--status", "delivered", "--type",
                       "meeting.ended", "--limit", "3")
    t.ok(rc == 0 and "meeting.ended" in out and "delivered" in out and "ID" in out,
         "webhooks list: a table", out + err)
    rc, out, err = cli(*U, "--json", "webhooks", "list", "--limit", "1")
    t.ok(rc == 0 and json.loads(out)["count"] == 1, "webhooks list --json", out + err)
    rc, out, err = cli(*U, "webhooks", "show", first["id"])
    t.ok(rc == 0 and first["id"] in out and "meeting.started" in out, "webhooks show", out + err)
    n_before = rx.ids[first["id"]]
    rc, out, err = cli(*U, "webhooks", "replay", first["id"])
    t.ok(rc == 0 and "queued again" in out, "webhooks replay ID", out + err)
    t.ok(wait_until(lambda: rx.ids.get(first["id"]) == n_before + 1, 10),
         "the event replayed by the CLI arrives again")
    pg.psql("UPDATE webhook_events SET status = 'failed', delivered_at = NULL WHERE id = '%s'" %
            failed[0])
    rc, out, err = cli(*U, "webhooks", "replay-failed", "--since", str(int(time.time()) - 86400))
    t.ok(rc == 0 and out.startswith("1 failed events queued again"), "webhooks replay-failed", out + err)
    t.ok(wait_until(lambda: all_delivered(failed[:1]), 10), "and it is delivered")
    rc, out, err = cli(*U, "webhooks", "replay")
    t.ok(rc == 2 and "usage" in err, "webhooks replay without an id: exit 2", err)
    rc, out, err = cli(*U, "webhooks", "list", "--status", "lost")
    t.ok(rc == 1 and "422" in err and "invalid_field" in err, "a bad status: exit 1 with the 422", err)
    rc, out, err = cli(*U, "webhooks", "replay", "nope")
    t.ok(rc == 1 and "404" in err, "replay of a bad id: exit 1 with the 404", err)

    t.eq(rx.header_mismatch, 0, "the id header matched the body in every delivery")
    t.ok(" error [" not in a.log() and "runtime error" not in a.log(), "no error in the log",
         a.log()[-3000:])
    t.ok(a.clean(), "the node stops cleanly (no sanitizer report)", a.log()[-3000:])

    # ------------------------------------------------------------ the filter, the last attempt
    rx.stop()
    c = node("node-c", extra=["webhooks.max-attempts=2",
                              "webhooks.events=meeting.started, meeting.ended"])
    tok, _ = c.api.user("last@example.org", name="Last")
    ml = c.api.meeting(tok, title="Last attempt")["id"]
    c.api.post("/api/v1/meetings/%s/join" % ml, None, tok)
    st = "SELECT type || ':' || status || ':' || attempts FROM webhook_events " \
         "WHERE payload->'meeting'->>'id' = '%s' ORDER BY seq" % ml
    t.ok(wait_until(lambda: pg.psql(st).split() == ["meeting.started:failed:2",
                                                    "participant.joined:skipped:0"], 10),
         "a type outside webhooks.events is skipped; two refused attempts make an event failed",
         pg.psql(st))
    t.ok(c.wait_log("failed after 2 attempts", 5), "the last failure is logged")
    rx.start()
    time.sleep(1.5)
    t.ok(not rx.has(meeting_ids(ml)), "neither is sent once the receiver is back (until a replay)")
    t.ok(c.clean(), "node c stops cleanly", c.log()[-3000:])

    # ------------------------------------------------------------ queued only while a node delivers
    # Every node above registered in webhook_nodes for webhooks.max-age (3 days by default) and
    # kept its row when it stopped, so that events made while it restarts still wait for it.
    held = pg.psql("SELECT node || ':' || (until > now() + interval '71 hours' AND "
                   "until <= now() + interval '72 hours') FROM webhook_nodes ORDER BY node").split()
    t.eq(held, ["node-a:true", "node-b:true", "node-c:true"],
         "each delivering node holds a row until max-age from its last refresh")
    # node-a and node-b are gone for good (as if their rows had run out); node-c comes back
    # without webhooks.url and deletes its own row at start: nobody delivers now
    pg.psql("UPDATE webhook_nodes SET until = now() - interval '1 second' "
            "WHERE node IN ('node-a', 'node-b')")
    q = ControlDaemon(pg.url, ["signaling.node-id=node-c", "turn.allow-peers=127.0.0.0/8"])
    nodes.append(q)
    t.eq(pg.psql("SELECT count(*) FROM webhook_nodes WHERE node = 'node-c'"), "0",
         "a node without webhooks.url deletes its row at start")
    tok, _ = q.api.user("quiet-host@example.org", name="Quiet Host")
    mq = q.api.meeting(tok, title="Nobody listens")["id"]
    r = q.api.post("/api/v1/meetings/%s/join" % mq, None, tok)
    t.eq(r.status, 200, "a join works with nobody delivering")
    q.api.post("/api/v1/meetings/%s/end" % mq, None, tok)
    t.eq(meeting_ids(mq), [], "with no node delivering, the meeting's changes queue no event")
    t.ok(q.clean(), "the quiet node stops cleanly", q.log()[-3000:])
    # a delivering node comes back: events are queued again from its start on, and sent
    e = node("node-e")
    tok, _ = e.api.user("back-host@example.org", name="Back Host")
    mb = e.api.meeting(tok, title="Back again")["id"]
    e.api.post("/api/v1/meetings/%s/join" % mb, None, tok)
    t.ok(wait_until(lambda: len(meeting_ids(mb)) == 2, 5),
         "once a node delivers again, changes queue their events", meeting_ids(mb))
    t.ok(wait_until(lambda: rx.has(meeting_ids(mb)), 15), "and they are delivered")
    t.ok(e.clean(), "node e stops cleanly", e.log()[-3000:])
finally:
    for p in people:
        p.close()
    for d in nodes:
        try:
            d.close()
        except Exception:  # noqa: BLE001 - already gone
            pass
    rx.stop()
    pg.close()
    subprocess.run(["rm", "-rf", tmp], check=False)
t.done()
