"""What crosses PostgreSQL between two signaling nodes (issue #16, item 7): a message to a
participant whose sessions are all on the sender's node is not published (a LISTEN of the test
sees no NOTIFY of it), one to a participant on the other node is, on that node's channel only;
when that participant opens a
second session on the other node, the new node claims it before telling its client joined, so
that everything sent to it after joined reaches both sessions, in order (a stream of offers sent
every few milliseconds while it opens: no gap after the first one it gets, nothing sent after
joined missed); when that session closes, messages to it still reach its first session."""

import asyncio
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Tap  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, migrate  # noqa: E402
from mlsignal import Sig, meeting  # noqa: E402

t = Tap()
pg = Postgres()
n1 = n2 = None
FLEET = ["signaling.heartbeat-ms=300", "signaling.node-timeout-ms=1500",
         "signaling.max-connections-per-participant=3", "signaling.rate=5000",
         "signaling.burst=5000"]


class Listen:
    """A psql session that LISTENs on the signaling channel: what the nodes published."""

    def __init__(self, url):
        self.p = subprocess.Popen(["psql", url, "-XAtq"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.n = 0
        self._cmd('LISTEN meetlite_sig; LISTEN "ml_sig_node-one"; LISTEN "ml_sig_node-two";')

    def _cmd(self, sql):
        self.n += 1
        mark = "mark-%d" % self.n
        self.p.stdin.write("%s SELECT '%s';\n" % (sql, mark))
        self.p.stdin.flush()
        out = []
        while True:
            line = self.p.stdout.readline()
            if not line or line.strip() == mark:
                return out
            out.append(line)

    def heard(self):
        """The notifications since the last call (a payload's records span several lines)."""
        text = "".join(self._cmd("") + self._cmd(""))  # psql prints them after a result
        return [n for n in text.split("Asynchronous notification ") if n.strip()]

    def close(self):
        self.p.stdin.close()
        self.p.wait(10)


async def main(lis):
    p1, p2 = n1.http_port, n2.http_port
    mid, (A, B, C) = meeting(n1.api, 3, prefix="route")
    a = await Sig.open(p1, A.sig_token)
    b = await Sig.open(p1, B.sig_token)
    c = await Sig.open(p2, C.sig_token)
    for w in (a, b):
        await w.expect("participant-joined")
    await a.expect("participant-joined")
    await asyncio.sleep(0.3)
    lis.heard()

    # to B, whose only session is on node-one with A: nothing for node-two
    await a.send(type="offer", to=B.pid, payload={"sdp": "stays-on-node-one"})
    t.eq((await b.expect("offer"))["payload"]["sdp"], "stays-on-node-one",
         "A -> B on the same node is delivered")
    await a.send(type="offer", to=C.pid, payload={"sdp": "crosses-to-node-two"})
    t.eq((await c.expect("offer"))["payload"]["sdp"], "crosses-to-node-two",
         "A -> C crosses to node-two")
    await asyncio.sleep(0.2)
    heard = lis.heard()
    t.ok(not any("stays-on-node-one" in h for h in heard),
         "the message to B was not published (no NOTIFY of it)", heard)
    t.ok([h.split('"')[1] for h in heard if "crosses-to-node-two" in h] == ["ml_sig_node-two"],
         "the message to C was published once, on node-two's channel", heard)

    # B opens a second session on node-two while A streams offers to B
    sent = []  # (n, time sent)
    stop = asyncio.Event()

    async def stream():
        n = 0
        while not stop.is_set():
            n += 1
            sent.append((n, time.time()))
            await a.send(type="offer", to=B.pid, payload={"sdp": "s%d" % n})
            await asyncio.sleep(0.002)

    task = asyncio.create_task(stream())
    await asyncio.sleep(0.1)
    b2 = await Sig.open(p2, B.sig_token)
    joined_at = time.time()
    await asyncio.sleep(0.3)
    stop.set()
    await task
    last = sent[-1][0]
    got1 = []
    while len(got1) < last:
        m = await b.expect("offer")
        got1.append(int(m["payload"]["sdp"][1:]))
    t.eq(got1, list(range(1, last + 1)), "B's first session (node-one) got all %d, in order" % last)
    got2 = []
    while not got2 or got2[-1] < last:
        m = await b2.expect("offer", timeout=5)
        got2.append(int(m["payload"]["sdp"][1:]))
    t.ok(got2 == list(range(got2[0], last + 1)),
         "B's second session (node-two) got %d..%d with no gap" % (got2[0], last), got2)
    after = [n for n, ts in sent if ts > joined_at]
    t.ok(after and got2[0] <= after[0],
         "and every one sent after its joined (%d of them)" % len(after), (got2[:3], after[:3]))
    t.ok(b2.joined["participant_id"] == B.pid, "the second session is B's")

    # B's second session goes: node-one still delivers to the first; node-two to nobody
    await b2.close()
    await asyncio.sleep(0.3)
    await c.send(type="offer", to=B.pid, payload={"sdp": "from-node-two"})
    t.eq((await b.expect("offer"))["payload"]["sdp"], "from-node-two",
         "C (node-two) -> B (node-one) after B left node-two")
    await a.send(type="offer", to=B.pid, payload={"sdp": "after-close"})
    t.eq((await b.expect("offer"))["payload"]["sdp"], "after-close",
         "A -> B on node-one still delivered")
    for w in (a, b, c):
        await w.close()


lis = None
try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "migrations apply", r.stdout + r.stderr)
    n1 = ControlDaemon(pg.url, FLEET + ["signaling.node-id=node-one"],
                       wait_for="registered for signaling")
    n2 = ControlDaemon(pg.url, FLEET + ["signaling.node-id=node-two"],
                       wait_for="registered for signaling")
    lis = Listen(pg.url)
    asyncio.run(main(lis))
    t.ok(n1.clean(), "node-one stops cleanly, sanitizers quiet", n1.log()[-3000:])
    t.ok(n2.clean(), "node-two stops cleanly, sanitizers quiet", n2.log()[-3000:])
except Exception as e:  # noqa: BLE001
    t.unexpected(e, n1, n2, tail=5000)
finally:
    if lis:
        lis.close()
    for x in (n1, n2):
        if x:
            x.close()
    pg.close()
sys.exit(t.done())
