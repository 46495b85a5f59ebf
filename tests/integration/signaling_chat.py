"""Stored chat comes back oldest first whatever plan PostgreSQL picks (issue #13, failure 9): a
database analysed with a realistic participants table (some hundreds of rows), six chats sent
in a burst, a late joiner's history in the order they were sent, every time. And the smaller
things: an empty or too long chat is refused with the real limit (signaling.chat-max-length),
removing oneself is refused the same way over signaling and REST (the host: host_protected), and an ADMIN's removal
answers once (the ack) while the others get the removed event."""

import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Tap  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, migrate  # noqa: E402
from mlsignal import Person, Sig, meeting  # noqa: E402

t = Tap()
pg = Postgres()
d = None
CHAT_MAX = 300


def crowd(mid, host_user, n):
    """n participants who came and went (the table a school's server has after a week)."""
    pg.psql("INSERT INTO participants (meeting_id, user_id, display_name, role, joined_at, left_at)"
            " SELECT '%s', '%s', 'Old ' || g, 'PARTICIPANT', now() - interval '2 hours',"
            " now() - interval '1 hour' FROM generate_series(1, %d) g" % (mid, host_user, n))
    pg.psql("ANALYZE participants")


async def burst_order(api, port, n_rows, rounds=3):
    """True when every round's late joiner sees the burst oldest first."""
    mid, (A, B) = meeting(api, 2, prefix="order%d" % n_rows)
    crowd(mid, A.user, n_rows)
    a = await Sig.open(port, A.sig_token)
    ok = True
    seen = None
    for rnd in range(rounds):
        texts = ["r%d burst %d" % (rnd, i) for i in range(6)]
        for x in texts:  # a burst: no wait between them
            await a.send(type="chat", payload={"text": x})
        for x in texts:
            m = await a.expect("chat", timeout=10)
            if m["payload"]["text"] != x:
                ok = False
        deadline = time.time() + 10
        while time.time() < deadline:
            if int(pg.psql("SELECT count(*) FROM sig_chat WHERE meeting_id = '%s'" % mid)) \
                    >= 6 * (rnd + 1):
                break
            await asyncio.sleep(0.05)
        late = Person(api, "late%d-%d-%d@example.org" % (n_rows, rnd, time.time_ns() % 10**6),
                      "Late")
        late.join_meeting(mid)
        c = await Sig.open(port, late.sig_token)
        seen = [h["payload"]["text"] for h in c.joined["chat"]]
        want = ["r%d burst %d" % (r, i) for r in range(rnd + 1) for i in range(6)]
        if seen != want:
            ok = False
        await c.close()
        if not ok:
            break
    await a.close()
    return ok, seen


async def main(port):
    api = d.api
    for n in (80, 150, 400):
        ok, seen = await burst_order(api, port, n)
        t.ok(ok, "a late joiner gets a burst oldest first (%d analysed participants rows)" % n, seen)

    # ------------------------------------------------------------ the chat limits say the real limit
    mid, (A, B, C) = meeting(api, 3, prefix="small")
    a = await Sig.open(port, A.sig_token)
    b = await Sig.open(port, B.sig_token)
    await a.send(type="chat", id="e0", payload={"text": ""})
    m = await a.expect("error")
    t.ok(m["code"] == "invalid_field" and "1 to %d characters" % CHAT_MAX in m.get("message", ""),
         "an empty chat is refused with the configured limit (%d)" % CHAT_MAX, m)
    await a.send(type="chat", id="e1", payload={"text": "x" * (CHAT_MAX + 1)})
    m = await a.expect("error")
    t.ok(m["code"] == "invalid_field" and "1 to %d characters" % CHAT_MAX in m.get("message", ""),
         "a chat above the limit is refused with the same words", m)
    await a.send(type="chat", id="e2", payload={"text": "y" * CHAT_MAX})
    m = await a.expect("chat")
    t.eq(len(m["payload"]["text"]), CHAT_MAX, "a chat at the limit passes")

    # ------------------------------------------------------------ removing oneself: one answer
    r = api.call("PATCH", "/api/v1/meetings/%s/participants/%s" % (mid, B.pid), {"role": "ADMIN"},
                 token=A.token)
    t.ok(r.status == 200, "the host promotes B to ADMIN", r)
    await b.expect("participant-updated", timeout=5)
    await b.send(type="remove", id="self", to=B.pid)
    m = await b.expect("error")
    ws_code = m["code"]
    r = api.call("DELETE", "/api/v1/meetings/%s/participants/%s" % (mid, B.pid), token=B.token)
    t.ok(r.status >= 400 and r.code() == ws_code,
         "an ADMIN removing itself: REST and signaling give the same answer (%s)" % ws_code, r)
    t.eq(pg.psql("SELECT removed FROM participants WHERE id = '%s'" % B.pid), "f",
         "and B is still there")
    await a.send(type="remove", id="host-self", to=A.pid)
    m = await a.expect("error")
    r = api.call("DELETE", "/api/v1/meetings/%s/participants/%s" % (mid, A.pid), token=A.token)
    t.ok(m["code"] == "host_protected" and r.status == 403 and r.code() == "host_protected",
         "the host removing itself: host_protected over both", (m, r))

    # ------------------------------------------------------------ an ADMIN's removal answers once
    await a.send(type="remove", id="rm", to=C.pid)
    ack = await a.expect("ack", timeout=5)
    t.ok(ack.get("id") == "rm" and ack.get("participant_id") == C.pid, "remove: the ADMIN's ack",
         ack)
    m = await a.expect("removed", timeout=5)
    t.eq(m["participant_id"], C.pid, "the ADMIN gets the removed event like everyone")
    t.ok(await a.quiet(0.8, "removed"), "exactly once (the web client shows only this one)",
         a.backlog)
    m = await b.expect("removed", timeout=5)
    t.eq(m["participant_id"], C.pid, "the others get the removed event")
    await a.close()
    await b.close()


try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "the schema is applied", r.stdout + r.stderr)
    d = ControlDaemon(pg.url, ["signaling.chat-max-length=%d" % CHAT_MAX,
                               "signaling.publish-delay-us=0"],
                      wait_for="registered for signaling")
    asyncio.run(main(d.http_port))
    t.ok(d.clean(), "the daemon stops cleanly, sanitizers quiet", d.log()[-3000:])
except Exception as e:  # noqa: BLE001
    t.unexpected(e, d)
finally:
    if d:
        d.close()
    pg.close()
t.done()
