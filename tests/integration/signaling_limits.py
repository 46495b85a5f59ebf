"""Signaling limits and resume, each with its close code and its log line: message size (whole
and in fragments), messages per second, connections per participant (a participant's
connections all receive its messages), binary frames, the idle timeout (a client that answers
no ping; one that does stays), a client that does not read (its queue bounded), resume within
the window with the missed messages replayed in order, and refused after it, after a clean
close, with a bad token, or beyond the replay buffer."""

import asyncio
import base64
import os
import socket
import struct
import sys
import time
import urllib.parse

import websockets

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Tap  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, migrate, raw_http  # noqa: E402
from mlsignal import SIG_PATH, Sig, meeting, refused  # noqa: E402

t = Tap()
pg = Postgres()
d = None
d2 = None


def logged(daemon, text, timeout=5):
    """Whether the daemon logs text within timeout: a test line, never an exception."""
    try:
        return daemon.wait_log(text, timeout)
    except RuntimeError:
        return False


def rows(sql):
    return [line.split("|") for line in pg.psql(sql).splitlines() if line]


class RawWs:
    """A WebSocket client that answers nothing and reads only when told to."""

    def __init__(self, port, token, rcvbuf=None):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s?token=%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
               % (SIG_PATH, urllib.parse.quote(token), key))
        self.s.sendall(req.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.s.recv(4096)
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ")[1])

    def _need(self, n, deadline):
        while len(self.buf) < n:
            self.s.settimeout(max(0.01, deadline - time.time()))
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk

    def frames(self, timeout=10):
        """Reads frames until a close frame: ([(opcode, payload)], close code or None)."""
        out = []
        deadline = time.time() + timeout
        try:
            while time.time() < deadline:
                self._need(2, deadline)
                op, ln = self.buf[0] & 15, self.buf[1] & 127
                off = 2
                if ln == 126:
                    self._need(4, deadline)
                    ln, off = struct.unpack("!H", self.buf[2:4])[0], 4
                elif ln == 127:
                    self._need(10, deadline)
                    ln, off = struct.unpack("!Q", self.buf[2:10])[0], 10
                self._need(off + ln, deadline)
                payload, self.buf = self.buf[off:off + ln], self.buf[off + ln:]
                out.append((op, payload))
                if op == 8:
                    return out, struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        except (socket.timeout, EOFError, OSError):
            pass
        return out, None

    def close(self):
        self.s.close()


async def limits(port):
    api = d.api
    mid, (A, B, C) = meeting(api, 3, prefix="lim")

    # ------------------------------------------------------------ message size
    a = await Sig.open(port, A.sig_token)
    b = await Sig.open(port, B.sig_token)
    await a.expect("participant-joined")
    big = "v=0\r\n" + "a=x\r\n" * 700  # about 4.2 kB: above max-message=4k as JSON
    await a.send(type="offer", to=B.pid, payload={"sdp": "v=0\r\n" + "a=x\r\n" * 400})
    m = await b.expect("offer")
    t.eq(len(m["payload"]["sdp"]), 5 + 5 * 400, "a 2 kB offer passes")
    frag = ['{"type":"offer","to":"%s",' % B.pid, '"payload":{"sdp":"', "a" * 1500, '"}}']
    await a.ws.send(iter(frag))
    m = await b.expect("offer")
    t.eq(len(m["payload"]["sdp"]), 1500, "a message in four WebSocket fragments is put together")
    await a.send(type="offer", to=B.pid, payload={"sdp": big})
    t.eq(await a.closed(3), (4002, "message_too_large"), "a message above max-message: 4002")
    t.ok(await b.quiet(0.3, "offer"), "and it was not relayed")
    t.ok(logged(d, "closing 4002 message_too_large"), "the log says which limit and whose connection")

    a = await Sig.open(port, A.sig_token)
    frag = ['{"type":"offer","to":"%s",' % B.pid, '"payload":{"sdp":"'] + ["a" * 1000] * 5 + ['"}}']
    try:  # the server may close while the fragments are still being sent
        await a.ws.send(iter(frag))
        cl = await a.closed(3)
    except websockets.ConnectionClosed:
        cl = None
    await asyncio.sleep(0.2)
    t.ok(not a.ws.open and d.log().count("closing 4002 message_too_large") == 2,
         "the same in fragments: closed 4002 as soon as the total passes the limit", cl)

    # ------------------------------------------------------------ binary frames
    a = await Sig.open(port, A.sig_token)
    await a.ws.send(b"\x00\x01binary")
    t.eq(await a.closed(3), (4006, "binary_frame"), "a binary frame: 4006")
    # A closed session counts against the participant's connection limit until the server has
    # seen the close through and deleted its row (after the client saw the close frame): wait
    # for that before the next connections, as a client backing off would.
    t.ok(logged(d, "4006 binary_frame after"), "the server ends the session it closed (4006)")
    await asyncio.sleep(0.3)

    # ------------------------------------------------------------ rate
    a = await Sig.open(port, A.sig_token)
    for i in range(12):  # burst 10, rate 5/s
        await a.send(type="ping", id=i)
    t.eq(await a.closed(3), (4003, "rate_limited"), "above rate and burst: 4003")
    n = len([x for x in a.backlog if x["type"] == "pong"])
    t.ok(n <= 10, "no more than the burst was answered (%d pongs before the close)" % n,
         a.backlog)
    t.ok(logged(d, "closing 4003 rate_limited"), "the log names the rate limit (4003)")
    t.ok(logged(d, "4003 rate_limited after"), "the server ends the session it closed (4003)")
    await asyncio.sleep(0.3)
    a = await Sig.open(port, A.sig_token)
    for i in range(8):  # at the rate: never closed
        await a.send(type="ping", id=i)
        await a.expect("pong")
        await asyncio.sleep(0.25)
    t.ok(a.ws.open, "a client within the rate stays connected")

    # ------------------------------------------------------------ connections per participant
    a2 = await Sig.open(port, A.sig_token)
    t.eq(await refused(port, A.sig_token), (4004, "too_many_connections"),
         "a third connection of one participant (limit 2): 4004")
    t.ok(logged(d, "closing 4004 too_many_connections"), "the log names the connection limit (4004)")
    await b.send(type="offer", to=A.pid, payload={"sdp": "to both"})
    m1 = await a.expect("offer")
    m2 = await a2.expect("offer")
    t.ok(m1["payload"] == m2["payload"] == {"sdp": "to both"},
         "a message to a participant reaches each of its connections")
    await a2.close()
    await asyncio.sleep(0.3)
    a3 = await Sig.open(port, A.sig_token)
    t.ok(a3.joined is not None, "once one closes, another may open")
    await a3.close()

    # ------------------------------------------------------------ idle timeout
    raw = RawWs(port, C.sig_token)
    t.eq(raw.status, 101, "a raw client upgrades")
    t0 = time.time()
    # read in a thread: the event loop must keep answering the pings of a and b meanwhile
    frames, code = await asyncio.get_running_loop().run_in_executor(None, raw.frames, 10)
    took = time.time() - t0
    ops = [op for op, _ in frames]
    t.ok(code == 4001 and 9 in ops and 2.5 < took < 6,
         "a client that answers no ping is closed 4001 after idle-timeout (%.1fs; pings seen: %d)"
         % (took, ops.count(9)), (code, ops))
    raw.close()
    t.ok(logged(d, "closing 4001 idle_timeout"), "the log names the idle timeout (4001)")
    await asyncio.sleep(4.5)  # python-websockets answers pings by itself
    t.ok(b.ws.open, "a client that answers pings outlives idle-timeout")
    await b.send(type="ping", id="still")
    t.eq((await b.expect("pong"))["id"], "still", "and still works")
    await a.close()
    await b.close()

    # control.max-connections=40 counts HTTP and WebSocket connections together
    await asyncio.sleep(0.3)
    held = []
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", port))
        held.append(s)
    await asyncio.sleep(0.3)
    try:
        st, _ = raw_http(port, b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n", timeout=2)
    except OSError:  # reset: refused at accept
        st = None
    t.eq(st, None, "beyond control.max-connections a connection is closed unanswered")
    t.ok(logged(d, "control.max-connections=40 open already"), "the log names control.max-connections")
    for s in held:
        s.close()
    await asyncio.sleep(0.5)
    st, _ = raw_http(port, b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n", timeout=2)
    t.eq(st, 200, "and served again once they are closed (the count comes back down)")


async def resume(port):
    api = d.api
    mid, (A, B) = meeting(api, 2, prefix="res")
    a = await Sig.open(port, A.sig_token)
    b = await Sig.open(port, B.sig_token)
    await a.expect("participant-joined")
    tok, sid = b.joined["resume_token"], b.joined["session_id"]
    await a.send(type="offer", to=B.pid, payload={"sdp": "seen"})
    m = await b.expect("offer")
    seen = m["seq"]
    b.abort()  # no close frame: a lost network
    await asyncio.sleep(0.3)
    await a.send(type="candidate", to=B.pid, payload={"candidate": "c1"})
    await a.send(type="chat", payload={"text": "while away"})
    await a.send(type="candidate", to=B.pid, payload={"candidate": "c2"})
    await asyncio.sleep(1.0)
    b = await Sig.open(port, resume=tok, last_seq=seen)
    t.ok(b.joined["session_id"] == sid and b.joined["replayed"] == 3,
         "resumed within the window: same session, 3 messages replayed", b.joined)
    got = [await b.recv() for _ in range(3)]
    t.eq([(x["type"], x["payload"].get("candidate", x["payload"].get("text"))) for x in got],
         [("candidate", "c1"), ("chat", "while away"), ("candidate", "c2")],
         "the missed messages, in order")
    t.ok(all(x["seq"] > seen for x in got) and got[0]["seq"] < got[1]["seq"] < got[2]["seq"],
         "with growing sequence numbers after last_seq", [x["seq"] for x in got])
    t.ok(not any(x["type"] == "participant-left" for x in a.backlog) and
         await a.quiet(0.2, "participant-left"), "the other side saw no participant-left")
    await a.send(type="answer", to=B.pid, payload={"sdp": "live"})
    t.eq((await b.expect("answer"))["payload"]["sdp"], "live", "then live messages flow")
    await b.send(type="answer", to=A.pid, payload={"sdp": "back"})
    t.eq((await a.expect("answer"))["from"], B.pid, "and the resumed client keeps its identity")
    t.eq(rows("SELECT count(*), bool_and(detached_at IS NULL) FROM sig_connections WHERE "
              "participant_id = '%s'" % B.pid), [["1", "t"]], "one session row, attached again")

    # a resume from an earlier point replays what was already sent (lost in flight)
    tok = b.joined.get("resume_token", tok)
    last = max(x["seq"] for x in got)
    b.abort()
    await asyncio.sleep(0.3)
    b = await Sig.open(port, resume=tok, last_seq=got[0]["seq"])
    t.eq(b.joined["replayed"], 3, "resume from an earlier last_seq replays from there")
    del last

    # unknown, foreign, malformed tokens
    t.eq(await refused(port, resume=tok.split(".")[0] + "." + "0" * 32), (4007, "resume_failed"),
         "an unknown resume token: 4007")
    t.eq(await refused(port, resume="other-node." + tok.split(".")[1]), (4007, "resume_failed"),
         "a resume token of another node: 4007")
    t.eq(await refused(port, resume="garbage"), (4007, "resume_failed"), "a malformed one: 4007")
    t.eq(await refused(port, resume=tok), (4007, "resume_failed"),
         "the token of a session that is attached: 4007")

    # after the window
    b.abort()
    t0 = time.time()
    m = await a.expect("participant-left", timeout=8)
    took = time.time() - t0
    t.ok(m["participant_id"] == B.pid and m["reason"] == "disconnected" and 2.5 < took < 6,
         "not resumed within resume-window (3s): participant-left disconnected after %.1fs" % took,
         m)
    t.eq(await refused(port, resume=tok), (4007, "resume_failed"), "and its token is refused after")
    t.eq(rows("SELECT count(*) FROM sig_connections WHERE participant_id = '%s'" % B.pid), [["0"]],
         "its session row is gone")

    # a clean close ends the session at once
    b = await Sig.open(port, B.sig_token)
    await a.expect("participant-joined")
    tok = b.joined["resume_token"]
    await b.close(1000)
    m = await a.expect("participant-left", timeout=2)
    t.eq(m["reason"], "disconnected", "a close with 1000 ends the session at once")
    t.eq(await refused(port, resume=tok), (4007, "resume_failed"), "and cannot be resumed")

    # beyond the replay buffer (replay-messages=8)
    b = await Sig.open(port, B.sig_token)
    await a.expect("participant-joined")
    tok, seen = b.joined["resume_token"], b.joined["seq"]
    b.abort()
    await asyncio.sleep(0.3)
    # 9 > replay-messages, sent quickly (within burst=10: A has been quiet for seconds), so
    # that the resume comes well inside the 3 s window even on a loaded machine
    for i in range(9):
        await a.send(type="candidate", to=B.pid, payload={"candidate": "c%d" % i})
        await asyncio.sleep(0.05)
    t.eq(await refused(port, resume=tok, last_seq=seen), (4007, "resume_failed"),
         "messages missed beyond the replay buffer: 4007 (a fresh join is needed)")
    t.ok(logged(d, "the replay buffer starts at"), "the log says where the replay buffer starts")
    b = await Sig.open(port, B.sig_token)
    t.ok(b.joined["participant_id"] == B.pid, "a fresh join after a failed resume works")
    await a.close()
    await b.close()


async def slow(port):
    api = d2.api
    mid, (A, B, C) = meeting(api, 3, prefix="slow")
    a = await Sig.open(port, A.sig_token)
    c = await Sig.open(port, C.sig_token)
    raw = RawWs(port, B.sig_token, rcvbuf=4096)
    await a.expect("participant-joined")
    await a.expect("participant-joined")
    sdp = "v=0\r\n" + "a=" + "x" * 60000 + "\r\n"
    for i in range(200):  # 12 MB to a client that reads nothing
        await a.send(type="offer", to=B.pid, payload={"sdp": sdp})
    t0 = time.time()
    m = await a.expect("participant-left", timeout=20)
    t.ok(m["participant_id"] == B.pid, "a client that does not read is closed (slow consumer) "
         "after %.1fs; the others see it leave" % (time.time() - t0), m)
    t.ok(logged(d2, "closing 4005 slow_consumer"), "the log names the limit (4005)")
    await c.send(type="ping", id="ok")
    t.eq((await c.expect("pong"))["id"], "ok", "the other clients carry on")
    raw.close()
    await a.close()
    await c.close()


try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "migrations apply", r.stdout + r.stderr)
    d = ControlDaemon(pg.url, ["signaling.max-message=4k", "signaling.rate=5", "signaling.burst=10",
                               "signaling.max-connections-per-participant=2",
                               "signaling.ping-interval=1s", "signaling.idle-timeout=3s",
                               "signaling.resume-window=3s", "signaling.replay-messages=8",
                               "signaling.max-queue=64k", "control.max-connections=40"],
                      wait_for="registered for signaling")
    asyncio.run(limits(d.http_port))
    asyncio.run(resume(d.http_port))
    t.ok(d.clean(), "the daemon stops cleanly, sanitizers quiet", d.log()[-3000:])
    d2 = ControlDaemon(pg.url, ["signaling.rate=100000", "signaling.burst=100000",
                                "signaling.max-message=64k", "signaling.max-queue=128k"],
                       wait_for="registered for signaling")
    asyncio.run(slow(d2.http_port))
    t.ok(d2.clean(), "the second daemon stops cleanly", d2.log()[-3000:])
    out = [line for line in os.popen("%s --dump-config 2>&1" % os.environ.get(
        "MEETLITED", "meetlited")).read().splitlines() if line.startswith("resume-window")]
    t.eq(out, ["resume-window = 30"], "the default resume window is 30 s")
except Exception as e:  # noqa: BLE001
    t.unexpected(e, d, d2)
finally:
    for x in (d, d2):
        if x:
            x.close()
    pg.close()
sys.exit(t.done())
