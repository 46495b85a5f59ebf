"""The unauthenticated budget with default settings (issue #11, item 6): a class of 1,000 clients
behind one address allocates, while a flood of forged unauthenticated requests naming one victim
address gets answers bounded to the documented bytes per second; a client whose NONCE proves its
address, and TCP, are answered during the flood; /metrics counts what was dropped."""

import os
import selectors
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mladmin import AdminDaemon, metric  # noqa: E402
from mltest import (ALLOCATE, CHANNEL_BIND, CREATE_PERMISSION, ERROR, REQUEST, SUCCESS, Msg, Tap,  # noqa: E402
                    encode_addr, long_term_key, rest_credential)
from turnclient import UDP_PROTO, Peer, TurnClient, verify_integrity  # noqa: E402

SECRET = "budget-secret-0123456789"
RATE, BURST = 16 * 1024, 128 * 1024  # the defaults of turn.unauth-answer-rate and -burst
CLASS_IP, VICTIM_IP = "127.0.0.66", "127.0.0.77"
STUDENTS = 1000
# RFC 8489 6.2.1: RTO 500 ms doubling, Rc = 7 transmissions, then Rm * RTO = 8 s for the last
RTO, RC, RM = 0.5, 7, 16
t = Tap()


def counters(api):
    text = api.metrics()
    return {
        "dropped": metric(text, "turn_unauthenticated_401_dropped_responses"),
        "dropped_bytes": metric(text, 'meetlite_turn_unauthenticated_answer_bytes_total{outcome="dropped"}'),
        "charged_bytes": metric(text, 'meetlite_turn_unauthenticated_answer_bytes_total{outcome="charged"}'),
        "proven": metric(text, "meetlite_turn_unauthenticated_proven_total"),
    }


# ---------------------------------------------------------------- a class behind one address

class Student:
    """One browser's TURN client: Allocate (401), Allocate, CreatePermission, ChannelBind, with
    RFC 8489 retransmissions on its own UDP socket."""

    def __init__(self, i, server, peer):
        self.i, self.server, self.peer = i, server, peer
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((CLASS_IP, 0))
        self.sock.setblocking(False)
        self.user, self.password = rest_credential(SECRET, "student%d" % i)
        self.key = self.realm = self.nonce = None
        self.state, self.failed, self.transmissions = "alloc1", None, 0

    def start(self, now):
        self.send(now)

    def send(self, now, new=True):
        if new:
            m = {"alloc1": Msg(ALLOCATE, REQUEST), "alloc2": Msg(ALLOCATE, REQUEST),
                 "perm": Msg(CREATE_PERMISSION, REQUEST), "bind": Msg(CHANNEL_BIND, REQUEST)}[self.state]
            if self.state in ("alloc1", "alloc2"):
                m.add("REQUESTED-TRANSPORT", UDP_PROTO)
            if self.state == "bind":
                m.add("CHANNEL-NUMBER", struct.pack("!HH", 0x4000 + self.i % 0x1000, 0))
            if self.state in ("perm", "bind"):
                m.add("XOR-PEER-ADDRESS", encode_addr(self.peer, m.tid))
            if self.state != "alloc1":
                m.add("USERNAME", self.user.encode()).add("REALM", self.realm).add("NONCE", self.nonce)
            self.tid = m.tid
            self.raw = m.encode(key=self.key if self.state != "alloc1" else None)
            self.tries = 0
        self.tries += 1
        self.transmissions += 1
        self.sock.sendto(self.raw, self.server)
        self.due = now + (RTO * 2 ** (self.tries - 1) if self.tries < RC else RM * RTO)

    def on_datagram(self, data, now):
        try:
            r = Msg.decode(data)
        except ValueError:
            return
        if self.state in ("done", "failed") or r.tid != self.tid:
            return
        if self.state == "alloc1" and r.cls == ERROR and r.error() == 401:
            self.realm, self.nonce = r.get("REALM"), r.get("NONCE")
            self.key = long_term_key(self.user, self.realm.decode(), self.password)
            self.state = "alloc2"
        elif r.cls == ERROR and r.error() == 438 and r.get("NONCE"):
            self.nonce = r.get("NONCE")
        elif r.cls == SUCCESS and verify_integrity(data, self.key):
            self.state = {"alloc2": "perm", "perm": "bind", "bind": "done"}[self.state]
            if self.state == "done":
                return
        else:
            self.state, self.failed = "failed", "answer %s %s" % (r.cls, r.error())
            return
        self.send(now)

    def check_timer(self, now):
        if self.state in ("done", "failed") or now < self.due:
            return
        if self.tries >= RC:
            self.state, self.failed = "failed", "no answer in %d transmissions (%s)" % (RC, self.state)
            return
        self.send(now, new=False)


def run_class(server, peer, n):
    students = [Student(i, server, peer) for i in range(n)]
    sel = selectors.DefaultSelector()
    for s in students:
        sel.register(s.sock, selectors.EVENT_READ, s)
    t0 = time.time()
    for s in students:  # the lecture starts: everyone at once
        s.start(t0)
    deadline = t0 + 60
    while time.time() < deadline and any(s.state not in ("done", "failed") for s in students):
        for key, _ in sel.select(timeout=0.01):
            s = key.data
            while True:
                try:
                    data = s.sock.recv(2048)
                except BlockingIOError:
                    break
                s.on_datagram(data, time.time())
        now = time.time()
        for s in students:
            s.check_timer(now)
    elapsed = time.time() - t0
    for s in students:
        sel.unregister(s.sock)
        s.sock.close()
    return students, elapsed


# ---------------------------------------------------------------- a flood naming one victim

class Flood:
    """Unauthenticated requests from many ports of one address at a fixed rate, in a thread; the
    answers that come back to that address are counted (this is what a victim would receive)."""

    def __init__(self, server, rate, seconds, sockets=64):
        self.server, self.rate, self.seconds = server, rate, seconds
        self.socks = []
        for _ in range(sockets):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((VICTIM_IP, 0))
            s.setblocking(False)
            self.socks.append(s)
        self.sent = self.sent_bytes = self.answers = self.answer_bytes = 0
        self.codes = {}
        bare = Msg(ALLOCATE, REQUEST).add("REQUESTED-TRANSPORT", UDP_PROTO)
        forged = Msg(ALLOCATE, REQUEST).add("REQUESTED-TRANSPORT", UDP_PROTO).add(
            "USERNAME", b"1999999999:victim").add("REALM", b"meetlite").add(
            "NONCE", b"obMatJos2AAAB00000000AAAAAAAAAAAAAAAA")
        unknown = Msg(0x0FF, REQUEST)  # a method nobody serves (0x00A is Connect, RFC 6062)
        # three kinds, as an attacker would mix them: 401, 438 (a NONCE that is not ours), 400
        self.kinds = [bare.encode(), forged.encode(key=b"k" * 16), unknown.encode()]
        self.thread = threading.Thread(target=self.run, daemon=True)

    def start(self):
        self.thread.start()

    def drain(self):
        for s in self.socks:
            while True:
                try:
                    data = s.recv(2048)
                except BlockingIOError:
                    break
                self.answers += 1
                self.answer_bytes += len(data)
                try:
                    code = Msg.decode(data).error()
                except ValueError:
                    code = "invalid"
                self.codes[code] = self.codes.get(code, 0) + 1

    def run(self):
        self.t0 = time.time()
        end = self.t0 + self.seconds
        while time.time() < end:
            due = int((time.time() - self.t0) * self.rate)
            while self.sent < due:
                raw = self.kinds[self.sent % 3]
                # a fresh transaction id each time: the server sees new requests, not retransmissions
                raw = raw[:8] + os.urandom(12) + raw[20:]
                try:
                    self.socks[self.sent % len(self.socks)].sendto(raw, self.server)
                except BlockingIOError:
                    pass
                self.sent += 1
                self.sent_bytes += len(raw)
            self.drain()
            time.sleep(0.001)
        stop = time.time() + 0.5  # answers still on their way
        while time.time() < stop:
            self.drain()
            time.sleep(0.005)
        self.t1 = time.time()

    def join(self):
        self.thread.join()
        for s in self.socks:
            s.close()


d = AdminDaemon(["turn.auth-secret=" + SECRET, "turn.relay-ports=46000-47999"])
try:
    api = d.api
    peer = Peer()
    c0 = counters(api)
    t.ok(c0["dropped"] == 0 and c0["dropped_bytes"] == 0 and c0["charged_bytes"] == 0 and c0["proven"] == 0,
         "metrics: the budget's counters are exported, at zero", c0)

    # ------------------------------------------------------------ the class
    students, elapsed = run_class(d.server, peer.addr, STUDENTS)
    done = [s for s in students if s.state == "done"]
    failed = [(s.i, s.failed) for s in students if s.state != "done"]
    c1 = counters(api)
    t.eq(len(done), STUDENTS, "%d clients behind one address, starting together with default settings, "
         "all allocate, create a permission and bind a channel within their transactions" % STUDENTS)
    if failed:
        t.diag("failed: %r" % failed[:10])
    extra = sum(s.transmissions for s in students) - 4 * STUDENTS
    t.diag("class of %d: %.2f s, %d retransmissions" % (STUDENTS, elapsed, extra))
    t.eq(c1["dropped"] - c0["dropped"], 0, "no answer to the class was dropped (96,000 bytes of 401s "
         "fit the 128 KiB burst, and every authenticated request earns its size back)")
    t.ok(c1["charged_bytes"] - c0["charged_bytes"] >= 96 * STUDENTS,
         "their 401 challenges were charged to the address's budget", (c0, c1))

    # ------------------------------------------------------------ a victim's address
    # Before the flood, a client on the victim's address gets a NONCE for its own port: its
    # address is then proven. The 401 it gets is the challenge everyone gets.
    mine = TurnClient(d.server, local=(VICTIM_IP, 0))
    challenge = mine.transact(Msg(ALLOCATE, REQUEST).add("REQUESTED-TRANSPORT", UDP_PROTO), integrity=False)
    t.ok(challenge is not None and challenge.error() == 401, "the challenge: 401")
    if challenge is not None:
        types = [a for a, _ in challenge.attrs]
        t.eq(types, [0x0009, 0x0014, 0x0015, 0x8002],
             "a 401 carries ERROR-CODE, REALM, NONCE, PASSWORD-ALGORITHMS and nothing else")
        t.eq(len(challenge.get("ERROR-CODE")), 4, "... with no reason phrase")
        t.eq(len(challenge.raw), 96, "a 401 is 96 bytes with the default realm (the request: 28)")
    user, password = rest_credential(SECRET, "victim-owner")
    mine.login(user, "wrong-password")
    mine._challenge(challenge)

    flood = Flood(d.server, rate=10000, seconds=4.0)
    flood.start()
    time.sleep(1.5)  # the burst is long gone: the victim's budget is empty
    during = {}
    # a wrong password with our NONCE: refused with a 401, which is not charged
    r = mine.transact(Msg(ALLOCATE, REQUEST).add("REQUESTED-TRANSPORT", UDP_PROTO), retries=1)
    during["proven 401"] = r is not None and r.error() == 401
    req_len = len(mine.encode(Msg(ALLOCATE, REQUEST).add("REQUESTED-TRANSPORT", UDP_PROTO)))
    # the right password: allocates
    mine.login(user, password)
    mine._challenge(challenge)
    r = mine.transact(Msg(ALLOCATE, REQUEST).add("REQUESTED-TRANSPORT", UDP_PROTO), retries=1)
    during["proven allocate"] = r is not None and r.cls == SUCCESS
    # TCP from the same address: the handshake proved it
    tcp = TurnClient(d.server, transport="tcp", local=(VICTIM_IP, 0), timeout=5)
    tcp.login(*rest_credential(SECRET, "victim-tcp"))
    try:
        during["tcp allocate"] = tcp.allocate(expect_ok=False).cls == SUCCESS
    except (TimeoutError, OSError) as e:
        during["tcp allocate"] = repr(e)
    flood.join()
    c2 = counters(api)
    t.ok(during["proven 401"], "during the flood, a refused request whose NONCE proves its address still "
         "gets its 401", during)
    t.ok(during["proven allocate"], "during the flood, the client with the proving NONCE allocates", during)
    t.ok(during["tcp allocate"] is True, "during the flood, a TCP client of the victim's address is "
         "challenged and allocates", during)

    # The bound: the burst, the rate over the whole window, and what the victim's address earned
    # back with its own two authenticated Allocates (UDP and TCP, 136 bytes each at most here).
    window = flood.t1 - flood.t0
    bound = BURST + RATE * window + 2 * 136
    t.diag("flood: %d requests (%d bytes) in %.2f s; %d answers, %d bytes %r" % (
        flood.sent, flood.sent_bytes, window, flood.answers, flood.answer_bytes, flood.codes))
    t.ok(flood.sent >= 30000, "the flood sent %d requests" % flood.sent)
    t.ok(flood.answer_bytes <= bound, "the victim's address received %d bytes of answers in %.2f s: at most "
         "the burst, the rate and what the address earned (%d)" % (flood.answer_bytes, window, bound))
    t.ok(flood.answer_bytes >= 0.9 * BURST, "... and was answered while its budget lasted (%d bytes)" %
         flood.answer_bytes)
    t.ok(set(flood.codes) <= {400, 401, 438} and all(flood.codes.get(c) for c in (400, 401, 438)),
         "the flood's 401s, 438s (a NONCE that is not ours) and 400s (an unknown method) are all "
         "within the budget", flood.codes)
    unanswered = flood.sent - flood.answers
    dropped = c2["dropped"] - c1["dropped"]
    t.ok(0.95 * unanswered <= dropped <= unanswered,
         "metrics: the unanswered requests are counted as dropped (%d of %d)" % (dropped, unanswered))
    t.ok(c2["dropped_bytes"] - c1["dropped_bytes"] >= 40 * dropped,
         "metrics: the bytes not sent are counted", (c1, c2))
    t.ok(c2["proven"] - c1["proven"] >= 1, "metrics: the proven answer is counted, not charged", (c1, c2))
    t.ok(req_len > 96, "a proven request is larger than its 401 (%d bytes): reflecting it gains "
         "nothing" % req_len)

    # the class's address was not hurt by the flood on another address
    other = TurnClient(d.server, local=(CLASS_IP, 0))
    other.login(*rest_credential(SECRET, "late-student"))
    t.ok(other.allocate(expect_ok=False).cls == SUCCESS, "another address still allocates after the flood")
    for c in (mine, tcp, other):
        c.close()
    peer.sock.close()
finally:
    t.ok(d.clean(), "meetlited stops cleanly", d.log()[-3000:])
    d.close()
t.done()
