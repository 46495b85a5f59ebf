"""A scripted meeting participant for the fleet's network test (tests/netns/netns_fleet.py): the
media path of a WebRTC client without a browser. It opens signaling with a join's token, takes a
TURN allocation over TCP on the relay its iceServers name (UDP is blocked on its network),
tells the others its relayed address in a "candidate" message, permits theirs, and sends each
of them a small packet every 50 ms through the relay (Send indications). On an "ice-servers"
message (its relay died or drains) it allocates on the new relay and tells the others again,
as a browser's ICE restart does. It prints one JSON line per event on stdout:
    {"ev": "joined", "relay": ..., "t": ...}
    {"ev": "allocated", "relay": <host:port of the TURN server>, "addr": <relayed>, "t": ...}
    {"ev": "pushed", "reason": ..., "relay": ..., "t": ...}
    {"ev": "gone", "why": ..., "t": ...}     (its allocation's connection closed: a revocation)
and, when told to stop (SIGTERM) or after its duration, {"ev": "summary", "rx": {peer: [times
of packets received, 100 ms resolution]}}.
Usage: python3 mlfleetclient.py '<json>' with {sig_url, token, pid, duration}."""

import asyncio
import json
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from turnclient import TurnClient  # noqa: E402

import websockets  # noqa: E402  (python3-websockets)

cfg = json.loads(sys.argv[1])
me = cfg["pid"]


def out(**ev):
    ev["t"] = round(time.time(), 3)
    sys.stdout.write(json.dumps(ev) + "\n")
    sys.stdout.flush()


def tcp_turn(ice):
    """(host, port, user, password) of the first turn: URI over TCP in iceServers."""
    for s in ice:
        for u in s.get("urls", []):
            m = re.match(r"^turn:([^:?]+):(\d+)\?transport=tcp$", u)
            if m and "username" in s:
                return m.group(1), int(m.group(2)), s["username"], s["credential"]
    return None


class Media:
    def __init__(self):
        self.turn = None
        self.server = None
        self.addr = None
        self.peers = {}  # pid -> (ip, port) relayed address
        self.rx = {}  # pid -> set of 100 ms slots
        self.gone = False

    def allocate(self, ice):
        if self.turn:
            self.turn.close()
            self.turn = None
        t = tcp_turn(ice)
        if not t:
            out(ev="error", what="no turn: over tcp in iceServers")
            return False
        host, port, user, pw = t
        try:
            c = TurnClient((host, port), transport="tcp", timeout=1.0)
            c.login(user, pw)
            c.allocate()
        except Exception as e:  # noqa: BLE001 -- a relay that is down: told later
            out(ev="error", what="allocate on %s:%d: %r" % (host, port, e))
            return False
        self.turn, self.server, self.addr, self.gone = c, "%s:%d" % (host, port), c.relay, False
        out(ev="allocated", relay=self.server, addr="%s:%d" % self.addr, user=user, password=pw)
        for a in self.peers.values():
            self.permit(a)
        return True

    def permit(self, addr):
        if not self.turn:
            return
        try:
            self.turn.create_permission(addr)
        except Exception as e:  # noqa: BLE001
            out(ev="error", what="permission for %s: %r" % (addr, e))

    def send_all(self):
        if not self.turn or self.gone:
            return
        for a in self.peers.values():
            try:
                self.turn.send_indication(a, ("%s %d" % (me, time.time() * 1000)).encode())
            except OSError:
                self.lost("send failed")
                return

    def receive(self):
        if not self.turn or self.gone:
            return
        while True:
            try:
                got = self.turn.recv_data(0.005)
            except Exception:  # noqa: BLE001 -- the connection closed
                self.lost("connection closed")
                return
            if not got:
                return
            words = got[2].split(b" ")
            if words:
                pid = words[0].decode(errors="replace")
                self.rx.setdefault(pid, set()).add(int(time.time() * 10))

    def lost(self, why):
        if not self.gone:
            self.gone = True
            out(ev="gone", why=why, relay=self.server)


async def main():
    media = Media()
    ws = await websockets.connect(cfg["sig_url"] + "?token=" + cfg["token"], ping_interval=None,
                                  max_size=2 ** 22, open_timeout=20)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    end = time.time() + cfg.get("duration", 120)

    async def announce_to(to):
        if media.addr:
            await ws.send(json.dumps({"type": "candidate", "to": to, "payload": {
                "candidate": "fleet %s %d" % media.addr, "sdpMLineIndex": 0}}))

    async def reader():
        async for raw in ws:
            m = json.loads(raw)
            ty = m.get("type")
            if ty == "joined":
                out(ev="joined", relay=(m.get("relay") or {}).get("node"))
                media.allocate(m["iceServers"])
                for p in m.get("roster", []):
                    if p["id"] != me and p.get("online"):
                        await announce_to(p["id"])
            elif ty == "participant-joined":
                await announce_to(m["participant"]["id"])
            elif ty == "candidate":
                w = m["payload"]["candidate"].split()
                if len(w) == 3 and w[0] == "fleet":
                    new = (w[1], int(w[2]))
                    fresh = media.peers.get(m["from"]) != new
                    media.peers[m["from"]] = new
                    if fresh:
                        media.permit(new)
                        await announce_to(m["from"])  # so that it permits us too
            elif ty == "ice-servers":
                out(ev="pushed", reason=m.get("reason"), relay=(m.get("relay") or {}).get("node"))
                if media.allocate(m["iceServers"]):
                    for p in list(media.peers):
                        await announce_to(p)

    async def pump():
        while not stop.is_set() and time.time() < end:
            media.receive()
            media.send_all()
            await asyncio.sleep(0.05)
        stop.set()

    task = asyncio.ensure_future(reader())
    await pump()
    task.cancel()
    out(ev="summary", rx={p: sorted(s) for p, s in media.rx.items()})
    try:
        await ws.close()
    except Exception:  # noqa: BLE001
        pass
    if media.turn:
        media.turn.close()


asyncio.run(main())
