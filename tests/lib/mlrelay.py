"""Helpers for the meeting-aware relay tests (issue #5), Python standard library only.

A participant holding a real TURN allocation (tests/lib/turnclient.py) with the credential of
its join, relaying to and from a UDP peer; checks that the allocation is alive or gone; a
TCP proxy in front of PostgreSQL's unix socket that a test can cut (to take the database away
from one node only); polling helpers.
"""

import os
import select
import socket
import struct
import threading
import time

from mltest import REFRESH, SUCCESS, ERROR  # noqa: F401
from turnclient import Peer, TurnClient

CHANNEL = 0x4001


def wait_until(fn, timeout=5.0, step=0.02):
    """Calls fn until it returns a true value or timeout passes; returns the last value."""
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() >= deadline:
            return v
        time.sleep(step)


class Participant:
    """A meeting participant on the relay: the join answer's TURN credential, an allocation on
    server (host, port), a permission and channel toward its own UDP peer."""

    def __init__(self, server, join, transport="udp", channel=True):
        self.join = join
        self.user = join["turn"]["username"]
        self.password = join["turn"]["password"]
        self.cred_id = self.user.split(":", 1)[1]
        self.server = server
        self.client = TurnClient(server, transport=transport, timeout=1.0)
        self.client.login(self.user, self.password)
        self.peer = Peer()
        self.sent_to_peer = []      # payload sizes that reached the peer
        self.sent_to_client = []    # payload sizes that reached the client
        self.client.allocate()
        self.relay = self.client.relay
        self.client.create_permission(self.peer.addr)
        self.channel = channel
        if channel:
            self.client.channel_bind(CHANNEL, self.peer.addr)

    def to_peer(self, payload, timeout=1.0, indication=False):
        """Client -> peer; True when the peer got it."""
        if self.channel and not indication:
            self.client.send_channel(CHANNEL, payload)
        else:
            self.client.send_indication(self.peer.addr, payload)
        end = time.time() + timeout
        while time.time() < end:
            data, _ = self.peer.recv(max(0.01, end - time.time()))
            if data == payload:
                self.sent_to_peer.append(len(payload))
                return True
        return False

    def to_client(self, payload, timeout=1.0):
        """Peer -> client through the relay address; True when the client got it."""
        self.peer.send(tuple(self.relay), payload)
        end = time.time() + timeout
        while time.time() < end:
            got = self.client.recv_data(max(0.01, end - time.time()))
            if got and got[2] == payload:
                self.sent_to_client.append(len(payload))
                return True
        return False

    def relays(self, timeout=0.5):
        """Both directions work now (one packet each way)."""
        tag = os.urandom(6).hex().encode()
        return self.to_peer(b"ping-" + tag, timeout) and self.to_client(b"pong-" + tag, timeout)

    def refresh_code(self, lifetime=None):
        """The answer to a Refresh: 'ok', or its error code (401, 437, ...), or None."""
        try:
            r = self.client.refresh(lifetime=lifetime, expect_ok=False)
        except TimeoutError:
            return None
        if r is None:
            return None
        return "ok" if r.cls == SUCCESS else r.error()

    def gone(self):
        """The allocation is closed: nothing from the peer reaches the client, and a Refresh
        is refused (437 no allocation, or 401 revoked credential)."""
        no_data = not self.to_client(b"after-" + os.urandom(4).hex().encode(), timeout=0.3)
        code = self.refresh_code()
        return no_data and code in (401, 437), (no_data, code)

    def end(self):
        """Ends the allocation (Refresh LIFETIME 0); 'ok' when it was live."""
        return self.refresh_code(lifetime=0)

    def close(self):
        self.client.close()
        self.peer.close()


def allocate_code(server, user, password, transport="udp"):
    """A fresh Allocate with a credential from a new client: 'ok' or the error code."""
    c = TurnClient(server, transport=transport, timeout=1.0)
    try:
        c.login(user, password)
        r = c.allocate(expect_ok=False)
        code = "ok" if r.cls == SUCCESS else r.error()
        if code == "ok":
            c.refresh(lifetime=0, expect_ok=False)
        return code
    except (TimeoutError, OSError) as e:
        return repr(e)
    finally:
        c.close()


def pg_unix_socket(url):
    """The unix socket path of a pg.sh connection string ("host=DIR port=N ...")."""
    kv = dict(item.split("=", 1) for item in url.split())
    return os.path.join(kv["host"], ".s.PGSQL.%s" % kv["port"])


class PgProxy:
    """A TCP listener on 127.0.0.1 forwarding to PostgreSQL's unix socket. cut() closes every
    forwarded connection and refuses new ones (a node that lost the database while others
    still reach it); restore() lets connections through again."""

    def __init__(self, pg):
        self.pg = pg
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.blocked = False
        self.pairs = []
        self.lock = threading.Lock()
        self.stopping = False
        self.accepted = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def url(self, dbname="meetlite"):
        return "host=127.0.0.1 port=%d dbname=%s user=postgres" % (self.port, dbname)

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                if self.blocked or self.stopping:
                    c.close()
                    continue
                try:
                    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    u.connect(pg_unix_socket(self.pg.url))
                except OSError:
                    c.close()
                    continue
                self.accepted += 1
                self.pairs.append((c, u))
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()

    def _pump(self, a, b):
        socks = [a, b]
        try:
            while True:
                r, _, _ = select.select(socks, [], [], 0.5)
                if self.stopping:
                    break
                done = False
                for s in r:
                    try:
                        data = s.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        done = True
                        break
                    (b if s is a else a).sendall(data)
                if done:
                    break
        except (OSError, ValueError):
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            with self.lock:
                if (a, b) in self.pairs:
                    self.pairs.remove((a, b))

    def cut(self):
        with self.lock:
            self.blocked = True
            pairs = list(self.pairs)
        for a, b in pairs:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def restore(self):
        with self.lock:
            self.blocked = False

    def close(self):
        self.stopping = True
        self.cut()
        self.lsock.close()


def usage_rows(pg, where):
    """turn_usage rows as dicts (only the columns the tests compare)."""
    cols = ["cred_id", "meeting_id", "participant_id", "transport", "packets_to_peer",
            "bytes_to_peer", "packets_to_client", "bytes_to_client", "end_reason",
            "host(client_ip)", "client_port", "extract(epoch FROM ended_at - started_at)::int"]
    out = pg.psql("SELECT %s FROM turn_usage WHERE %s ORDER BY id" % (
        ", ".join("coalesce(%s::text, '')" % c for c in cols), where))
    rows = []
    for line in out.splitlines():
        v = line.split("|")
        rows.append(dict(zip(["cred_id", "meeting_id", "participant_id", "transport",
                              "packets_to_peer", "bytes_to_peer", "packets_to_client",
                              "bytes_to_client", "end_reason", "client_ip", "client_port",
                              "seconds"], v)))
    return rows


__all__ = ["Participant", "PgProxy", "allocate_code", "usage_rows", "wait_until", "CHANNEL",
           "struct"]
