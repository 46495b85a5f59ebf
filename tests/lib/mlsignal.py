"""Helpers for the signaling integration tests: an asyncio WebSocket client on Debian's
python3-websockets (10.x), and meetings with joined participants made through the REST API.

A client keeps every message it receives; expect() returns the first one of a type (others
stay for later), so that a test can check events in any order it likes and still see all.
"""

import asyncio
import json
import ssl as ssllib
import time
import urllib.parse

import websockets

SIG_PATH = "/api/v1/signaling"


class Closed(Exception):
    def __init__(self, code, reason):
        super().__init__("closed %s %s" % (code, reason))
        self.code, self.reason = code, reason


class Sig:
    """One signaling connection."""

    def __init__(self, ws):
        self.ws = ws
        self.backlog = []
        self.joined = None

    @classmethod
    async def open(cls, port, token=None, resume=None, last_seq=None, host="127.0.0.1",
                   tls=False, expect_joined=True, timeout=10, path=SIG_PATH, headers=None, alpn=None):
        q = {}
        if token is not None:
            q["token"] = token
        if resume is not None:
            q["resume"] = resume
        if last_seq is not None:
            q["last_seq"] = str(last_seq)
        url = "%s://%s:%d%s%s" % ("wss" if tls else "ws", host, port, path,
                                  ("?" + urllib.parse.urlencode(q)) if q else "")
        ctx = None
        if tls:
            ctx = ssllib.SSLContext(ssllib.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssllib.CERT_NONE
            if alpn:
                ctx.set_alpn_protocols(alpn)
        ws = await asyncio.wait_for(websockets.connect(url, ping_interval=None, max_size=2 ** 22,
                                                       ssl=ctx, extra_headers=headers,
                                                       open_timeout=timeout), timeout)
        c = cls(ws)
        if expect_joined:
            c.joined = await c.expect("resumed" if resume is not None else "joined",
                                      timeout=timeout)
        return c

    async def send(self, **msg):
        await self.ws.send(json.dumps(msg))

    async def send_raw(self, data):
        await self.ws.send(data)

    async def _recv(self, timeout):
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except websockets.ConnectionClosed as e:
            raise Closed(e.code, e.reason)
        return json.loads(raw)

    async def recv(self, timeout=5):
        if self.backlog:
            return self.backlog.pop(0)
        return await self._recv(timeout)

    async def expect(self, type_, timeout=5, **match):
        """The first message of type_ (and with the given members), waiting up to timeout."""
        def ok(m):
            return m.get("type") == type_ and all(m.get(k) == v for k, v in match.items())
        for i, m in enumerate(self.backlog):
            if ok(m):
                return self.backlog.pop(i)
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise asyncio.TimeoutError("no %s within %ss; got %r" % (type_, timeout,
                                                                          self.backlog[-5:]))
            m = await self._recv(left)
            if ok(m):
                return m
            self.backlog.append(m)

    async def quiet(self, seconds=0.3, type_=None):
        """True when nothing (of type_) arrives for seconds."""
        if any(type_ is None or m.get("type") == type_ for m in self.backlog):
            return False
        deadline = time.time() + seconds
        while True:
            left = deadline - time.time()
            if left <= 0:
                return True
            try:
                m = await self._recv(left)
            except asyncio.TimeoutError:
                return True
            self.backlog.append(m)
            if type_ is None or m.get("type") == type_:
                return False

    async def closed(self, timeout=5):
        """Waits for the server to close; returns (code, reason). Messages are kept."""
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                return None
            try:
                m = await self._recv(left)
                self.backlog.append(m)
            except Closed as e:
                return (e.code, e.reason)
            except asyncio.TimeoutError:
                return None

    async def close(self, code=1000):
        await self.ws.close(code=code)

    def abort(self):
        """Drops the TCP connection without a close frame (a network loss)."""
        self.ws.transport.abort()

    def last_seq(self):
        seqs = [m["seq"] for m in self.backlog if "seq" in m]
        return max(seqs) if seqs else None


async def refused(port, token=None, timeout=5, **kw):
    """Connects expecting the server to close before joined: returns (code, reason)."""
    try:
        c = await Sig.open(port, token=token, expect_joined=False, timeout=timeout, **kw)
    except websockets.InvalidStatusCode as e:
        return ("http", e.status_code)
    except (websockets.exceptions.InvalidHandshake, websockets.ConnectionClosed, OSError) as e:
        return ("error", str(e))
    try:
        m = await c.expect("joined", timeout=timeout)
        return ("joined", m)
    except Closed as e:
        return (e.code, e.reason)


# ---------------------------------------------------------------- meetings through REST

class Person:
    def __init__(self, api, email, name):
        self.api, self.email, self.name = api, email, name
        self.token, self.user = api.user(email, name=name)
        self.join = None

    def join_meeting(self, meeting_id):
        r = self.api.post("/api/v1/meetings/%s/join" % meeting_id, body=None, token=self.token,
                          raw=b"", headers={"Content-Length": "0"})
        if r.status != 200:
            raise RuntimeError("join: %r" % r)
        self.join = r.json
        return r.json

    @property
    def sig_token(self):
        return self.join["signaling_token"]

    @property
    def pid(self):
        return self.join["participant_id"]


_n = [0]


def meeting(api, n, title="Signaling", prefix="p", **kw):
    """A meeting whose host and n-1 others have joined: (meeting id, [Person]). The host is
    people[0]."""
    people = []
    for i in range(n):
        _n[0] += 1
        people.append(Person(api, "%s%d-%d@example.org" % (prefix, _n[0], i),
                             "%s %d" % (prefix.upper(), i)))
    m = api.meeting(people[0].token, title, **kw)
    for p in people:
        p.join_meeting(m["id"])
    return m["id"], people


__all__ = ["Sig", "Closed", "refused", "Person", "meeting", "SIG_PATH"]
