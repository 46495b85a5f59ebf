"""Raised hands and reactions over signaling (issue #17, item 3), against a private PostgreSQL:
a hand raised goes to everyone as participant-updated with the time it went up (stored: a
later joined roster has it; raising again keeps one's place), so the host's queue is ordered
by it; the participant lowers its own, an ADMIN lowers anyone's (lower-hand), a participant
may not lower another's; reactions from the fixed set go
to everyone (the sender too) with who sent them, other emoji are refused, and beyond
signaling.reaction-burst a participant's reactions are refused with rate_limited while its
connection stays. Screen sharing's signaling (issue #17, item 1): a share is announced with its
stream id in the roster entry (screen), stopped with null; when an ADMIN makes the meeting's
screen_share "admins", every session hears meeting-updated and a participant's share is
refused with not_admin while an ADMIN's goes."""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Tap  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, migrate  # noqa: E402
from mlsignal import Sig, meeting  # noqa: E402

t = Tap()
pg = Postgres()
d = None
THUMBS, HEART, PARTY = "\U0001F44D", "\u2764\ufe0f", "\U0001F389"


def hand_of(m, pid):
    return m["participant"]["hand"] if m["participant"]["id"] == pid else "other"


async def updated(c, pid, timeout=5):
    """The next participant-updated about pid."""
    while True:
        m = await c.expect("participant-updated", timeout=timeout)
        if m["participant"]["id"] == pid:
            return m


async def screen_of(c, pid, want, timeout=5):
    """The first participant-updated about pid whose screen is want (older ones are skipped)."""
    while True:
        m = await updated(c, pid, timeout)
        if m["participant"].get("screen") == want:
            return m


async def main(port):
    api = d.api
    mid, (A, B, C) = meeting(api, 3, prefix="hands")
    a = await Sig.open(port, A.sig_token)
    b = await Sig.open(port, B.sig_token)
    c = await Sig.open(port, C.sig_token)
    t.ok(all(e.get("hand", "missing") is None for e in a.joined["roster"]),
         "roster entries carry hand: null while no hand is up", a.joined["roster"])

    # ------------------------------------------------------------ raising
    await b.send(type="hand", id="h1", payload={"raised": True})
    ack = await b.expect("ack")
    t.ok(ack["of"] == "hand" and ack["id"] == "h1", "hand: acked to the sender", ack)
    ub = [await updated(x, B.pid) for x in (a, b, c)]
    t.ok(all(isinstance(u["participant"]["hand"], int) and u["participant"]["hand"] > 0 for u in ub),
         "everyone hears participant-updated with B's hand (the time it went up, ms)", ub)
    b_at = ub[0]["participant"]["hand"]
    await asyncio.sleep(0.05)
    await c.send(type="hand", payload={"raised": True})
    uc = await updated(a, C.pid)
    c_at = uc["participant"]["hand"]
    t.ok(c_at > b_at, "C's hand went up after B's: the queue order is the times' order",
         (b_at, c_at))
    await b.send(type="hand", payload={"raised": True})
    await b.expect("ack")
    t.ok(await a.quiet(0.5, "participant-updated"),
         "raising a raised hand again changes nothing (B keeps its place)")
    t.eq(pg.psql("SELECT floor(extract(epoch FROM hand_raised_at) * 1000)::bigint FROM "
                 "participants WHERE id = '%s'" % B.pid), str(b_at), "the hand is stored")
    a2 = await Sig.open(port, A.sig_token)
    hands = {e["id"]: e["hand"] for e in a2.joined["roster"]}
    t.ok(hands[B.pid] == b_at and hands[C.pid] == c_at and hands[A.pid] is None,
         "a new session's roster has the raised hands", hands)
    await a2.close()

    # ------------------------------------------------------------ lowering
    await c.send(type="lower-hand", id="x1", to=B.pid)
    e = await c.expect("error")
    t.ok(e["code"] == "not_admin" and e["id"] == "x1", "a participant cannot lower another's hand", e)
    await a.send(type="lower-hand", id="l1", to=B.pid)
    ack = await a.expect("ack")
    t.ok(ack["of"] == "lower-hand" and ack["participant_id"] == B.pid, "lower-hand: acked to the ADMIN",
         ack)
    u = await updated(b, B.pid)
    t.ok(u["participant"]["hand"] is None, "the ADMIN lowers B's hand: everyone hears hand null", u)
    await c.send(type="hand", payload={"raised": False})
    u = await updated(a, C.pid)
    t.ok(u["participant"]["hand"] is None, "C lowers its own hand", u)
    await a.send(type="hand", id="bad", payload={"raised": "yes"})
    e = await a.expect("error")
    t.ok(e["code"] == "invalid_field", "hand: raised must be a boolean", e)
    await a.send(type="lower-hand", id="nobody", to="00000000-0000-4000-8000-000000000000")
    e = await a.expect("error")
    t.ok(e["code"] == "participant_not_found", "lower-hand of no one: participant_not_found", e)

    # ------------------------------------------------------------ reactions
    await b.send(type="reaction", id="r1", payload={"emoji": THUMBS})
    got = [await x.expect("reaction") for x in (a, b, c)]
    t.ok(all(g["from"] == B.pid and g["payload"] == {"emoji": THUMBS} and g["ts"] > 0 for g in got),
         "a reaction reaches everyone, the sender too, with who sent it", got)
    await b.send(type="reaction", payload={"emoji": HEART})
    t.eq((await a.expect("reaction"))["payload"]["emoji"], HEART, "another of the set")
    await b.send(type="reaction", id="r2", payload={"emoji": "\U0001F4A9"})
    e = await b.expect("error")
    t.ok(e["code"] == "invalid_field" and e["id"] == "r2", "an emoji outside the set is refused", e)
    await b.send(type="reaction", id="r3", payload={"emoji": THUMBS, "extra": "<script>"})
    g = await a.expect("reaction", id="r3")
    t.ok("extra" not in g["payload"], "members outside the table are dropped", g)
    # burst 3 in this daemon, rate 1/s: C's fourth at once is refused, the connection stays
    for i in range(3):
        await c.send(type="reaction", id="c%d" % i, payload={"emoji": PARTY})
    await c.send(type="reaction", id="c3", payload={"emoji": PARTY})
    e = await c.expect("error")
    t.ok(e["code"] == "rate_limited" and e["id"] == "c3",
         "beyond signaling.reaction-burst: rate_limited", e)
    n = 0
    while True:
        try:
            m = await a.expect("reaction", timeout=0.5)
        except asyncio.TimeoutError:
            break
        if m["from"] == C.pid:
            n += 1
    t.eq(n, 3, "the others saw exactly the reactions that were let through")
    await asyncio.sleep(1.2)
    await c.send(type="reaction", id="c4", payload={"emoji": PARTY})
    t.eq((await a.expect("reaction", id="c4"))["from"], C.pid,
         "a second later the participant may react again")
    await c.send(type="ping", id="p")
    t.eq((await c.expect("pong"))["id"], "p", "the connection stays open")

    # ------------------------------------------------------------ screen sharing's signaling
    t.eq(a.joined.get("screen_share"), "anyone", "joined says who may share a screen")
    await b.send(type="screen", id="s1", payload={"sharing": True, "stream": "{b-screen-1}"})
    u = [await screen_of(x, B.pid, "{b-screen-1}") for x in (a, c)]
    t.ok(all(x["participant"]["screen"] == "{b-screen-1}" for x in u),
         "a share goes to everyone with its stream id in the roster entry", u)
    await b.send(type="screen", payload={"sharing": True})
    e = await b.expect("error")
    t.ok(e["code"] == "missing_field", "sharing without the stream id is refused", e)
    await b.send(type="screen", payload={"sharing": False})
    u = await screen_of(a, B.pid, None)
    t.ok(u["participant"]["screen"] is None, "stopping the share: screen null", u)
    r = api.call("PATCH", "/api/v1/meetings/%s" % mid, {"screen_share": "admins"}, A.token)
    t.ok(r.status == 200 and r.json["screen_share"] == "admins", "PATCH screen_share admins", r)
    r = api.call("PATCH", "/api/v1/meetings/%s" % mid, {"screen_share": "nobody"}, A.token)
    t.ok(r.status == 422, "screen_share: only anyone or admins", r)
    for x in (a, b, c):
        m = await x.expect("meeting-updated", timeout=10)
        t.eq(m["screen_share"], "admins", "every session hears meeting-updated")
    await c.send(type="screen", id="s2", payload={"sharing": True, "stream": "{c-screen}"})
    e = await c.expect("error")
    t.ok(e["code"] == "not_admin" and e["id"] == "s2", "then a participant's share is refused", e)
    await a.send(type="screen", payload={"sharing": True, "stream": "{a-screen}"})
    u = await screen_of(c, A.pid, "{a-screen}")
    t.eq(u["participant"]["screen"], "{a-screen}", "an ADMIN's share goes")
    for x in (a, b, c):
        await x.close()


try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "migrations apply", r.stdout + r.stderr)
    d = ControlDaemon(pg.url, ["signaling.reaction-burst=3", "signaling.reaction-rate=1"])
    d.wait_log("registered for signaling", 20)
    asyncio.run(main(d.http_port))
    t.ok(d.clean(), "the daemon stops cleanly, sanitizers quiet", d.log()[-3000:])
except Exception as e:  # noqa: BLE001
    t.unexpected(e, d)
finally:
    if d:
        d.close()
    pg.close()
sys.exit(t.done())
