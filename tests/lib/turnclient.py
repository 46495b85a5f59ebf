"""A small TURN client (RFC 8656) for meetlite's tests, on the Python standard library.

It speaks UDP or TCP (optionally TLS), answers the 401 challenge with long-term credentials
(MD5 or SHA-256 keys), keeps realm and nonce, and exposes every request so tests can send
malformed or unusual ones.
"""

import hashlib
import os
import socket
import ssl
import struct
import time

from mltest import (ALLOCATE, ATTR, CHANNEL_BIND, CREATE_PERMISSION, DATA, ERROR, INDICATION, REFRESH,
                    REQUEST, SEND, SUCCESS, Msg, encode_addr, decode_addr, long_term_key, pad4)
import hmac as _hmac

UDP_PROTO = b"\x11\x00\x00\x00"


def verify_integrity(raw, key, sha256=False):
    """True when the message's MESSAGE-INTEGRITY(-SHA256) verifies with key."""
    want = 0x001C if sha256 else 0x0008
    off = 20
    while off + 4 <= len(raw):
        t, ln = struct.unpack("!HH", raw[off:off + 4])
        if t == want:
            hdr = bytearray(raw[:20])
            struct.pack_into("!H", hdr, 2, off - 20 + 4 + ln)
            mac = _hmac.new(key, bytes(hdr) + raw[20:off], hashlib.sha256 if sha256 else hashlib.sha1).digest()
            return _hmac.compare_digest(mac[:ln], raw[off + 4:off + 4 + ln])
        off += 4 + ln + (-ln % 4)
    return False


class TurnError(Exception):
    def __init__(self, code, msg):
        Exception.__init__(self, "TURN error %s" % code)
        self.code = code
        self.msg = msg


class TurnClient:
    def __init__(self, server, transport="udp", family=None, local=None, tls_context=None, timeout=2.0):
        self.server = server
        self.transport = transport
        fam = family or (socket.AF_INET6 if ":" in server[0] else socket.AF_INET)
        if transport == "udp":
            self.sock = socket.socket(fam, socket.SOCK_DGRAM)
            self.sock.bind(local or (server[0], 0))
        else:
            raw = socket.socket(fam, socket.SOCK_STREAM)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            raw.settimeout(timeout)
            if local:
                raw.bind(local)
            raw.connect(server)
            self.sock = tls_context.wrap_socket(raw, server_hostname=None) if transport == "tls" else raw
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.user = self.password = self.realm = self.nonce = None
        self.key = None
        self.sha256 = False
        self.stream_buf = b""
        self.inbox = []  # data messages (ChannelData, Data indications) received meanwhile
        self.last_raw = None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # ------------------------------------------------------------ wire
    def send_raw(self, data):
        if self.transport == "udp":
            self.sock.sendto(data, self.server)
        else:
            if data[0] & 0xC0 == 0x40:
                data = pad4(data)
            self.sock.sendall(data)

    def _recv_one(self, timeout):
        self.sock.settimeout(timeout)
        if self.transport == "udp":
            data, _ = self.sock.recvfrom(65536)
            return data
        while True:
            if len(self.stream_buf) >= 4:
                if self.stream_buf[0] & 0xC0 == 0x40:
                    ln = struct.unpack("!H", self.stream_buf[2:4])[0]
                    total = 4 + ln + (-ln % 4)
                    if len(self.stream_buf) >= total:
                        msg, self.stream_buf = self.stream_buf[:4 + ln], self.stream_buf[total:]
                        return msg
                else:
                    ln = struct.unpack("!H", self.stream_buf[2:4])[0]
                    if len(self.stream_buf) >= 20 + ln:
                        msg, self.stream_buf = self.stream_buf[:20 + ln], self.stream_buf[20 + ln:]
                        return msg
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.stream_buf += chunk

    def recv_any(self, timeout=None):
        """The next message of any kind, or None on timeout."""
        if self.inbox:
            return self.inbox.pop(0)
        try:
            return self._recv_one(timeout if timeout is not None else self.timeout)
        except (socket.timeout, TimeoutError):
            return None

    def transact(self, msg, integrity=True, fingerprint=False, retries=3, raw=None):
        """Sends a request and returns the response (a Msg with .raw), retransmitting over UDP."""
        data = raw if raw is not None else self.encode(msg, integrity, fingerprint)
        attempts = retries if self.transport == "udp" else 1
        deadline_each = self.timeout / attempts if self.transport == "udp" else self.timeout
        for _ in range(attempts):
            self.send_raw(data)
            end = time.time() + deadline_each
            while time.time() < end:
                try:
                    got = self._recv_one(max(0.01, end - time.time()))
                except (socket.timeout, TimeoutError):
                    break
                if got[0] & 0xC0 == 0x40 or (len(got) >= 20 and got[8:20] != msg.tid):
                    self.inbox.append(got)
                    continue
                r = Msg.decode(got)
                self.last_raw = got
                return r
        return None

    def encode(self, msg, integrity=True, fingerprint=False):
        if integrity and self.key is not None:
            if self.user is not None and msg.get("USERNAME") is None:
                msg.add("USERNAME", self.user.encode())
                msg.add("REALM", self.realm)
                msg.add("NONCE", self.nonce)
                if self.sha256:
                    msg.add("PASSWORD-ALGORITHMS", self.algorithms)
                    msg.add("PASSWORD-ALGORITHM", struct.pack("!HH", 2, 0))
            if self.sha256:
                return msg.encode(sha256_key=self.key, fingerprint=fingerprint)
            return msg.encode(key=self.key, fingerprint=fingerprint)
        return msg.encode(fingerprint=fingerprint)

    # ------------------------------------------------------------ auth
    def login(self, user, password, sha256=False):
        self.user, self.password, self.sha256 = user, password, sha256

    def _challenge(self, r):
        self.realm = r.get("REALM")
        self.nonce = r.get("NONCE")
        self.algorithms = r.get("PASSWORD-ALGORITHMS")
        text = "%s:%s:%s" % (self.user, self.realm.decode(), self.password)
        self.key = hashlib.sha256(text.encode()).digest() if self.sha256 else long_term_key(
            self.user, self.realm.decode(), self.password)

    def request(self, method, attrs=(), expect_ok=True, fingerprint=False):
        """An authenticated request: handles the first 401 and 438 by retrying."""
        for _ in range(3):
            m = Msg(method, REQUEST)
            for t, v in attrs:
                m.add(t, v)
            r = self.transact(m, fingerprint=fingerprint)
            if r is None:
                raise TimeoutError("no answer to method 0x%x" % method)
            if r.cls == ERROR and r.error() in (401, 438) and self.user is not None and (
                    self.key is None or r.error() == 438):
                self._challenge(r)
                continue
            if expect_ok and r.cls != SUCCESS:
                raise TurnError(r.error(), r)
            return r
        if expect_ok and r.cls != SUCCESS:
            raise TurnError(r.error(), r)
        return r

    # ------------------------------------------------------------ TURN
    def allocate(self, attrs=None, lifetime=None, expect_ok=True):
        a = [("REQUESTED-TRANSPORT", UDP_PROTO)] if attrs is None else list(attrs)
        if lifetime is not None:
            a.append(("LIFETIME", struct.pack("!I", lifetime)))
        r = self.request(ALLOCATE, a, expect_ok)
        if r.cls == SUCCESS:
            self.relay = r.xaddr("XOR-RELAYED-ADDRESS")
            self.relays = [decode_addr(v, r.tid) for t, v in r.attrs if t == ATTR["XOR-RELAYED-ADDRESS"]]
            self.mapped = r.xaddr("XOR-MAPPED-ADDRESS")
        return r

    def refresh(self, lifetime=None, expect_ok=True, attrs=()):
        a = list(attrs)
        if lifetime is not None:
            a.append(("LIFETIME", struct.pack("!I", lifetime)))
        return self.request(REFRESH, a, expect_ok)

    def create_permission(self, *peers, expect_ok=True, tid=None):
        m_attrs = [("XOR-PEER-ADDRESS", None, p) for p in peers]
        return self._peer_request(CREATE_PERMISSION, m_attrs, expect_ok)

    def channel_bind(self, number, peer, expect_ok=True):
        return self._peer_request(CHANNEL_BIND, [("CHANNEL-NUMBER", struct.pack("!HH", number, 0), None),
                                                 ("XOR-PEER-ADDRESS", None, peer)], expect_ok)

    def _peer_request(self, method, items, expect_ok):
        for _ in range(3):
            m = Msg(method, REQUEST)
            for t, v, peer in items:
                m.add(t, v if peer is None else encode_addr(peer, m.tid))
            r = self.transact(m)
            if r is None:
                raise TimeoutError("no answer")
            if r.cls == ERROR and r.error() == 438:
                self._challenge(r)
                continue
            if expect_ok and r.cls != SUCCESS:
                raise TurnError(r.error(), r)
            return r
        return r

    def send_indication(self, peer, data, extra=()):
        m = Msg(SEND, INDICATION)
        m.add("XOR-PEER-ADDRESS", encode_addr(peer, m.tid))
        m.add("DATA", data)
        for t, v in extra:
            m.add(t, v)
        self.send_raw(m.encode())

    def send_channel(self, number, data):
        self.send_raw(struct.pack("!HH", number, len(data)) + data)

    def recv_data(self, timeout=1.0):
        """The next relayed datagram: ('channel', number, data) or ('data', peer, data), or None."""
        end = time.time() + timeout
        while True:
            left = end - time.time()
            if left <= 0:
                return None
            raw = self.recv_any(left)
            if raw is None:
                return None
            if raw[0] & 0xC0 == 0x40:
                number, ln = struct.unpack("!HH", raw[:4])
                return ("channel", number, raw[4:4 + ln])
            m = Msg.decode(raw)
            if m.method == DATA and m.cls == INDICATION:
                return ("data", m.xaddr("XOR-PEER-ADDRESS"), m.get("DATA"))


class Peer:
    """A UDP peer on loopback that records what it receives."""

    def __init__(self, host="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.addr = self.sock.getsockname()[:2]

    def recv(self, timeout=1.0):
        self.sock.settimeout(timeout)
        try:
            data, src = self.sock.recvfrom(65536)
            return data, src[:2]
        except (socket.timeout, TimeoutError):
            return None, None

    def send(self, to, data):
        self.sock.sendto(data, to)

    def close(self):
        self.sock.close()


def drain(sock_or_client, timeout=0.2):
    while (sock_or_client.recv_any(timeout) if isinstance(sock_or_client, TurnClient) else None) is not None:
        pass
