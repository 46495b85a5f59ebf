"""The meeting-aware relay on one node (issue #5): participants hold real TURN allocations with
the credentials of their joins ("<expiry>:<meeting tag>.<participant id>"), relaying to UDP
peers; a removal, a leave and a meeting's end revoke them in process, and within 1 s the relay
refuses the credential and the allocations are gone. Usage records: known packets and bytes
each way land in turn_usage exactly, tied to meeting and participant; the usage endpoint
answers the meeting's ADMIN only."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Tap  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, rest_password, TURN_SECRET  # noqa: E402
from mlrelay import Participant, allocate_code, usage_rows, wait_until  # noqa: E402

t = Tap()
pg = Postgres()
d = None
people = []


def join(api, mid, tok):
    r = api.post("/api/v1/meetings/%s/join" % mid, None, tok)
    if r.status != 200:
        raise RuntimeError("join: %r" % r)
    return r.json


def participant(j, transport="udp"):
    p = Participant(("127.0.0.1", d.turn_port), j, transport=transport)
    people.append(p)
    return p


def revoked_within(p, t0, limit=1.0):
    """Waits until limit seconds after t0, then checks that p's allocation is gone and its
    credential refused by a fresh Allocate."""
    left = t0 + limit - time.time()
    if left > 0:
        time.sleep(left)
    gone, why = p.gone()
    fresh = allocate_code(p.server, p.user, p.password)
    return gone and fresh == 401, (why, fresh, round(time.time() - t0, 3))


try:
    d = ControlDaemon(pg.url, ["database.migrate-on-start=yes", "turn.allow-peers=127.0.0.0/8",
                               "net.workers=2", "usage.flush-interval-ms=100",
                               "control.min-duration=1s", "control.sweep-interval=1s",
                               "database.reconnect-max=500", "log.level=info"])
    api = d.api
    t.ok(d.wait_log("listening for revocations", 10), "the node LISTENs for revocations", d.log())
    t.ok("3 migrations applied" in d.log() or "migrations applied" in d.log(),
         "migration 003 applied at start", d.log())

    host_tok, host = api.user("host@example.org", name="Host")
    ann_tok, ann = api.user("ann@example.org", name="Ann")
    bob_tok, bob = api.user("bob@example.org", name="Bob")
    eve_tok, eve = api.user("eve@example.org", name="Eve")

    # ------------------------------------------------------------ the credential format
    m = api.meeting(host_tok, "Relay", max_participants=10)
    mid = m["id"]
    tag = pg.psql("SELECT turn_tag FROM meetings WHERE id = '%s'" % mid)
    t.ok(len(tag) == 16 and all(ch in "0123456789abcdef" for ch in tag), "the meeting has a 16-hex tag", tag)
    t.ok(tag not in mid.replace("-", "") and tag != m["code"], "the tag is not derived from the id or code")
    hj = join(api, mid, host_tok)
    aj = join(api, mid, ann_tok)
    exp, ident = aj["turn"]["username"].split(":")
    t.eq(ident, "%s.%s" % (tag, aj["participant_id"]), "TURN username is <expiry>:<tag>.<participant id>")
    t.eq(aj["turn"]["password"], rest_password(TURN_SECRET, aj["turn"]["username"]), "its password is the REST HMAC")
    t.ok(mid not in aj["turn"]["username"], "the meeting UUID is not in the username")

    # ------------------------------------------------------------ removal by the ADMIN
    ann_p = participant(aj)
    t.ok(ann_p.relays(), "Ann relays to her peer and back with her join credential")
    t0 = time.time()
    r = api.call("DELETE", "/api/v1/meetings/%s/participants/%s" % (mid, aj["participant_id"]), token=host_tok)
    t.eq(r.status, 200, "the ADMIN removes Ann")
    ok, why = revoked_within(ann_p, t0)
    t.ok(ok, "within 1 s of the removal her allocation is gone and her credential gets 401", why)
    t.ok("revoked (control plane)" in d.log(), "revoked in process, through the control plane's hook", d.log()[-2000:])

    # ------------------------------------------------------------ leave
    bj = join(api, mid, bob_tok)
    bob_p = participant(bj)
    bob_tcp = participant(join(api, mid, bob_tok), transport="tcp")  # a rejoin: same participant
    t.eq(bob_tcp.cred_id, bob_p.cred_id, "a rejoin of a present participant keeps the credential id")
    t.ok(bob_p.relays() and bob_tcp.relays(), "Bob relays over UDP and over TCP")
    t0 = time.time()
    r = api.post("/api/v1/meetings/%s/leave" % mid, None, bob_tok)
    t.eq(r.status, 200, "Bob leaves")
    ok, why = revoked_within(bob_p, t0)
    t.ok(ok, "within 1 s of leaving his UDP allocation is gone and his credential gets 401", why)
    gone, why = bob_tcp.gone()
    t.ok(gone, "and his TCP allocation is gone too", why)

    # ------------------------------------------------------------ the meeting ends
    hp = participant(hj)
    ej = join(api, mid, eve_tok)
    ep = participant(ej)
    bj2 = join(api, mid, bob_tok)  # a new participant (Bob left before)
    t.ok(bj2["participant_id"] != bj["participant_id"], "Bob's new join is a new participant")
    bp2 = participant(bj2)
    t.ok(all(p.relays() for p in (hp, ep, bp2)), "three participants relay")
    t0 = time.time()
    r = api.post("/api/v1/meetings/%s/end" % mid, None, host_tok)
    t.eq(r.status, 200, "the ADMIN ends the meeting")
    res = [revoked_within(p, t0) for p in (hp, ep, bp2)]
    t.ok(all(ok for ok, _ in res), "within 1 s every participant's allocation is gone and every credential refused",
         res)

    # ------------------------------------------------------------ the meeting expires
    mx = api.meeting(host_tok, "Short", duration_s=2)
    xj = join(api, mx["id"], eve_tok)
    xp = participant(xj)
    t.ok(xp.relays(), "a participant of a 2-second meeting relays")
    exp_at = int(xj["turn"]["username"].split(":")[0])
    t.ok(exp_at <= xj["meeting_expires_at"], "its credential expires with the meeting")
    # The credential's own expiry does not end a live allocation (turn.strict-expiry is off):
    # the sweep's revocation does.
    gone = wait_until(lambda: xp.gone()[0], 6, 0.2)
    t.ok(gone and time.time() < exp_at + 3.5,
         "the expiry sweep's revocation closes the allocation soon after the meeting's end",
         (round(time.time() - exp_at, 2), xp.gone()[1]))

    # ------------------------------------------------------------ usage records, exactly
    m2 = api.meeting(host_tok, "Usage", max_participants=10)
    mid2 = m2["id"]
    tag2 = pg.psql("SELECT turn_tag FROM meetings WHERE id = '%s'" % mid2)
    hj2 = join(api, mid2, host_tok)
    aj2 = join(api, mid2, ann_tok)
    ap = participant(aj2)
    sizes_up = [1, 17, 100, 999, 1200]          # over the channel
    sizes_up_ind = [5, 64]                      # as Send indications
    sizes_down = [3, 33, 333, 1000]
    ok = all(ap.to_peer(os.urandom(n)) for n in sizes_up)
    ok = ok and all(ap.to_peer(os.urandom(n), indication=True) for n in sizes_up_ind)
    ok = ok and all(ap.to_client(os.urandom(n)) for n in sizes_down)
    t.ok(ok, "7 packets (2386 bytes) client to peer and 4 (1369 bytes) peer to client all arrived")
    client_port = ap.client.sock.getsockname()[1]
    t.eq(ap.end(), "ok", "Ann ends her allocation (Refresh 0)")
    where = "cred_id = '%s'" % ap.cred_id
    rows = wait_until(lambda: usage_rows(pg, where), 3)
    t.eq(len(rows), 1, "one usage record in PostgreSQL within the flush interval")
    row = rows[0] if rows else {}
    want = {"cred_id": "%s.%s" % (tag2, aj2["participant_id"]), "meeting_id": mid2,
            "participant_id": aj2["participant_id"], "transport": "udp",
            "packets_to_peer": "7", "bytes_to_peer": str(sum(sizes_up + sizes_up_ind)),
            "packets_to_client": "4", "bytes_to_client": str(sum(sizes_down)),
            "end_reason": "refreshed to 0", "client_ip": "127.0.0.1", "client_port": str(client_port)}
    t.eq({k: row.get(k) for k in want}, want, "the record has the exact packets and bytes each way, meeting and participant")

    # a TCP allocation of the host, ended by closing the connection
    hp2 = participant(hj2, transport="tcp")
    ok = all(hp2.to_peer(os.urandom(n)) for n in (10, 20)) and hp2.to_client(os.urandom(30))
    t.ok(ok, "the host relays over TCP")
    hp2.close()
    where_h = "cred_id = '%s'" % hp2.cred_id
    rows = wait_until(lambda: usage_rows(pg, where_h), 3)
    row = rows[0] if rows else {}
    t.eq((row.get("transport"), row.get("packets_to_peer"), row.get("bytes_to_peer"),
          row.get("packets_to_client"), row.get("bytes_to_client"), row.get("end_reason")),
         ("tcp", "2", "30", "1", "30", "connection closed"), "the TCP allocation's record is exact too")

    # ------------------------------------------------------------ the usage endpoint
    url = "/api/v1/meetings/%s/usage" % mid2
    r = api.get(url, host_tok)
    t.ok(r.status == 200, "the ADMIN reads the meeting's usage", r)
    u = r.json or {}
    tot = u.get("totals", {})
    t.eq((u.get("meeting_id"), tot.get("allocations"), tot.get("packets_to_peer"), tot.get("bytes_to_peer"),
          tot.get("packets_to_client"), tot.get("bytes_to_client")),
         (mid2, 2, 9, 2386 + 30, 5, 1369 + 30), "totals add both allocations")
    per = {p["participant_id"]: p for p in u.get("participants", [])}
    pa = per.get(aj2["participant_id"], {})
    t.eq((pa.get("display_name"), pa.get("allocations"), pa.get("bytes_to_peer"), pa.get("bytes_to_client"),
          pa.get("transports")), ("Ann", 1, 2386, 1369, ["udp"]), "per participant: Ann's figures")
    ph = per.get(hj2["participant_id"], {})
    t.eq((ph.get("display_name"), ph.get("bytes_to_peer"), ph.get("transports")), ("Host", 30, ["tcp"]),
         "per participant: the host's figures")
    r = api.get("/api/v1/meetings/%s/usage" % m2["code"], host_tok)
    t.ok(r.status == 200 and r.json["meeting_id"] == mid2, "by join code too", r)
    r = api.get(url, ann_tok)
    t.ok(r.status == 403 and r.code() == "not_admin", "a PARTICIPANT gets 403 not_admin", r)
    r = api.get(url, eve_tok)
    t.ok(r.status == 403 and r.code() == "not_admin", "a stranger gets 403 not_admin", r)
    r = api.get(url)
    t.eq(r.status, 401, "no token: 401")
    r = api.get("/api/v1/meetings/00000000-0000-4000-8000-000000000000/usage", host_tok)
    t.ok(r.status == 404 and r.code() == "meeting_not_found", "an unknown meeting: 404", r)
    r = api.get("/api/v1/meetings/%s/usage" % mid, host_tok)
    t.ok(r.status == 200 and r.json["totals"]["allocations"] >= 6,
         "the ended meeting's usage (revoked allocations recorded too)", r)
    revoked_rows = pg.psql("SELECT count(*) FROM turn_usage WHERE meeting_id = '%s' AND end_reason = 'revoked'" % mid)
    t.ok(int(revoked_rows) >= 6, "allocations closed by revocation are recorded with reason 'revoked'", revoked_rows)

    # ------------------------------------------------------------ logs and shutdown
    log = d.log()
    t.ok(hj2["turn"]["password"] not in log and aj2["turn"]["password"] not in log, "no TURN password in the log")
    t.ok(d.clean(), "meetlited stops cleanly (no sanitizer report)", d.log()[-3000:])
    t.ok("usage records:" in d.log() and "0 dropped" in d.log(), "the final line counts usage records, none dropped",
         d.log()[-1500:])
except Exception as e:  # noqa: BLE001
    import traceback
    t.ok(False, "unexpected exception: %r" % e, traceback.format_exc() + (d.log()[-3000:] if d else ""))
finally:
    for p in people:
        p.close()
    if d:
        d.close()
    pg.close()
sys.exit(t.done())
