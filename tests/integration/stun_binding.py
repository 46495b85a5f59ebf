"""STUN Binding service: coturn's turnutils_stunclient over UDP (IPv4 and IPv6), our own client
over UDP and TCP (several messages in one segment, one message over several reads), RFC 3489
clients, 420 for unknown comprehension-required attributes, FINGERPRINT echo, SOFTWARE off by
default; then a burst of malformed datagrams and segments, after which the daemon still answers
and shuts down cleanly."""

import os
import random
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import (ATTR, BINDING, ERROR, REQUEST, SUCCESS, Daemon, Msg, Tap, free_port,  # noqa: E402
                    fingerprint_ok, recv_stun_stream, udp_exchange)

t = Tap()
port = free_port()
port6 = free_port(socket.AF_INET6, "::1")
d = Daemon(["turn.listen=udp://127.0.0.1:%d, tcp://127.0.0.1:%d, udp://[::1]:%d, tcp://[::1]:%d"
            % (port, port, port6, port6), "net.workers=2", "log.level=info"])
srv4 = ("127.0.0.1", port)
srv6 = ("::1", port6)


def stunclient(host, p):
    r = subprocess.run(["timeout", "10", "turnutils_stunclient", "-p", str(p), host],
                       capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


try:
    # coturn's client, IPv4 and IPv6
    rc, out = stunclient("127.0.0.1", port)
    t.ok(rc == 0 and "UDP reflexive addr: 127.0.0.1:" in out, "turnutils_stunclient over UDP/IPv4", out)
    rc, out = stunclient("::1", port6)
    t.ok(rc == 0 and "UDP reflexive addr: ::1:" in out, "turnutils_stunclient over UDP/IPv6", out)

    # our client over UDP: XOR-MAPPED-ADDRESS is our own address
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    req = Msg(BINDING, REQUEST)
    raw = udp_exchange(srv4, req.encode(), sock=s)
    r = Msg.decode(raw) if raw else None
    t.ok(r is not None and r.cls == SUCCESS and r.tid == req.tid, "UDP Binding success with the same transaction id")
    t.eq(r.xaddr("XOR-MAPPED-ADDRESS") if r else None, s.getsockname(), "XOR-MAPPED-ADDRESS is the client's address")
    t.ok(r is not None and r.get("SOFTWARE") is None, "no SOFTWARE attribute unless configured")
    t.ok(r is not None and r.get("FINGERPRINT") is None, "no FINGERPRINT when the request had none")
    t.ok(r is not None and r.cookie == 0x2112A442, "response carries the magic cookie")

    # FINGERPRINT echoed
    req = Msg(BINDING, REQUEST)
    raw = udp_exchange(srv4, req.encode(fingerprint=True), sock=s)
    t.ok(raw is not None and fingerprint_ok(raw), "FINGERPRINT echoed and valid when the request had one")

    # request with a bad FINGERPRINT is dropped
    bad = bytearray(Msg(BINDING, REQUEST).encode(fingerprint=True))
    bad[-1] ^= 0xFF
    t.ok(udp_exchange(srv4, bytes(bad), timeout=0.5, sock=s) is None, "a request with a wrong FINGERPRINT is dropped")

    # unknown comprehension-required attribute: 420 + UNKNOWN-ATTRIBUTES
    req = Msg(BINDING, REQUEST).add(0x7FF1, b"abcd").add(0x0031, b"\x00\x00\x00\x01")
    raw = udp_exchange(srv4, req.encode(), sock=s)
    r = Msg.decode(raw) if raw else None
    t.ok(r is not None and r.cls == ERROR and r.error() == 420, "unknown comprehension-required attribute gets 420")
    ua = r.get("UNKNOWN-ATTRIBUTES") if r else None
    got = sorted(struct.unpack("!%dH" % (len(ua) // 2), ua)) if ua else []
    t.eq(got, [0x0031, 0x7FF1], "UNKNOWN-ATTRIBUTES lists both unknown types")

    # unknown comprehension-optional attribute is ignored
    req = Msg(BINDING, REQUEST).add(0xC0FE, b"xyz")
    raw = udp_exchange(srv4, req.encode(), sock=s)
    r = Msg.decode(raw) if raw else None
    t.ok(r is not None and r.cls == SUCCESS, "unknown comprehension-optional attribute is ignored")

    # RFC 3489 client: no magic cookie, MAPPED-ADDRESS
    tid16 = os.urandom(16)
    raw3489 = struct.pack("!HH", 0x0001, 0) + tid16
    raw = udp_exchange(srv4, raw3489, sock=s)
    ok = raw is not None and len(raw) >= 20 and raw[4:20] == tid16 and struct.unpack("!H", raw[:2])[0] == 0x0101
    t.ok(ok, "RFC 3489 request answered with its 16-byte transaction id")
    if ok:
        at, al = struct.unpack("!HH", raw[20:24])
        fam, p = raw[25], struct.unpack("!H", raw[26:28])[0]
        ip = socket.inet_ntop(socket.AF_INET, raw[28:32])
        t.eq((at, fam, ip, p), (ATTR["MAPPED-ADDRESS"], 1, "127.0.0.1", s.getsockname()[1]),
             "RFC 3489 response carries MAPPED-ADDRESS")
    else:
        t.ok(False, "RFC 3489 response carries MAPPED-ADDRESS")

    # a Binding indication gets no answer
    ind = Msg(BINDING, 1)
    t.ok(udp_exchange(srv4, ind.encode(), timeout=0.5, sock=s) is None, "Binding indication gets no response")

    # unsupported method
    raw = udp_exchange(srv4, Msg(0x0FF, REQUEST).encode(), sock=s)
    r = Msg.decode(raw) if raw else None
    t.ok(r is not None and r.cls == ERROR and r.error() == 400, "an unknown method gets 400")
    s.close()

    # IPv6 UDP with our client
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s6.bind(("::1", 0))
    req = Msg(BINDING, REQUEST)
    raw = udp_exchange(srv6, req.encode(), sock=s6)
    r = Msg.decode(raw) if raw else None
    t.eq(r.xaddr("XOR-MAPPED-ADDRESS")[:2] if r else None, s6.getsockname()[:2], "IPv6 XOR-MAPPED-ADDRESS")
    s6.close()

    # TCP: several messages in one segment
    for fam, srv in ((socket.AF_INET, srv4), (socket.AF_INET6, srv6)):
        c = socket.socket(fam, socket.SOCK_STREAM)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.connect(srv)
        reqs = [Msg(BINDING, REQUEST) for _ in range(5)]
        c.sendall(b"".join(m.encode() for m in reqs))
        got = []
        try:
            for _ in reqs:
                got.append(Msg.decode(recv_stun_stream(c)))
        except Exception as e:  # noqa: BLE001
            t.diag("tcp: %s" % e)
        name = "IPv4" if fam == socket.AF_INET else "IPv6"
        t.eq([m.tid for m in got], [m.tid for m in reqs], "TCP/%s: five messages in one segment, five answers in order" % name)
        t.ok(all(m.xaddr("XOR-MAPPED-ADDRESS")[:2] == c.getsockname()[:2] for m in got),
             "TCP/%s: XOR-MAPPED-ADDRESS is the connection's address" % name)
        # one message over several reads
        req = Msg(BINDING, REQUEST)
        data = req.encode(fingerprint=True)
        for i in range(0, len(data), 3):
            c.send(data[i:i + 3])
            time.sleep(0.01)
        try:
            raw = recv_stun_stream(c)
            r = Msg.decode(raw)
            t.ok(r.tid == req.tid and fingerprint_ok(raw), "TCP/%s: a message split over several segments is answered" % name)
        except Exception as e:  # noqa: BLE001
            t.ok(False, "TCP/%s: a message split over several segments is answered" % name, e)
        c.close()

    # a connection that stops in the middle of a frame costs nothing while it waits
    def cpu_s(pid):
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.connect(srv4)
    c.sendall(Msg(BINDING, REQUEST).add(0x8022, b"x" * 60).encode()[:30])   # 30 of 84 bytes
    before = cpu_s(d.proc.pid)
    time.sleep(2)
    spent = cpu_s(d.proc.pid) - before
    t.ok(spent < 0.3, "a partial frame waiting for its rest costs no CPU (%.2f s in 2 s)" % spent)
    c.close()

    # malformed burst: datagrams
    rnd = random.Random(1234)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    good = Msg(BINDING, REQUEST).encode(fingerprint=True)
    forms = []
    for n in range(0, 20):
        forms.append(good[:n])                                   # truncated header
    forms.append(good[:2] + struct.pack("!H", 3) + good[4:])     # length not a multiple of 4
    forms.append(good[:2] + struct.pack("!H", 400) + good[4:])   # length beyond the datagram
    forms.append(good + b"\0\0\0\0")                             # datagram longer than length
    forms.append(Msg(BINDING, REQUEST).add(0x0006, b"x" * 8).encode()[:-4] + b"")  # attr past end, length fixed below
    m = bytearray(Msg(BINDING, REQUEST).add(0x0006, b"x" * 8).encode())
    m[22:24] = struct.pack("!H", 200)                            # attribute length past the end
    forms.append(bytes(m))
    for _ in range(2000):
        n = rnd.randint(0, 200)
        b = bytearray(rnd.getrandbits(8) for _ in range(n))
        if n >= 8 and rnd.random() < 0.7:
            b[0] &= 0x3F
            b[4:8] = struct.pack("!I", 0x2112A442)
        forms.append(bytes(b))
    for f in forms:
        s.sendto(f, srv4)
    s.close()

    # malformed burst: stream segments on fresh connections
    closed = 0
    for i in range(60):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.connect(srv4)
        junk = bytes([0x80 | rnd.getrandbits(7)]) + bytes(rnd.getrandbits(8) for _ in range(rnd.randint(3, 300)))
        if i % 3 == 0:
            junk = struct.pack("!HH", 0x0001, 0xFFF0) + os.urandom(16)   # oversized frame header
        c.sendall(junk)
        c.settimeout(3)
        try:
            if c.recv(100) == b"":
                closed += 1
        except (ConnectionResetError, socket.timeout):
            closed += 1
        c.close()
    t.eq(closed, 60, "every unframeable or oversized TCP stream is closed by the server")

    # still answering
    raw = udp_exchange(srv4, Msg(BINDING, REQUEST).encode())
    t.ok(raw is not None and Msg.decode(raw).cls == SUCCESS, "still answers UDP after the malformed burst")
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.connect(srv4)
    req = Msg(BINDING, REQUEST)
    c.sendall(req.encode())
    try:
        t.ok(Msg.decode(recv_stun_stream(c)).tid == req.tid, "still answers TCP after the malformed burst")
    except Exception as e:  # noqa: BLE001
        t.ok(False, "still answers TCP after the malformed burst", e)
    c.close()
    rc, out = stunclient("127.0.0.1", port)
    t.ok(rc == 0 and "reflexive" in out, "turnutils_stunclient still answered after the burst", out)
finally:
    t.ok(d.clean(), "meetlited stops cleanly on SIGTERM (exit 0, no sanitizer report)", d.log())
    d.close()

# SOFTWARE when configured
port = free_port()
d = Daemon(["turn.listen=udp://127.0.0.1:%d" % port, "turn.software=meetlite-test", "net.workers=1"])
try:
    raw = udp_exchange(("127.0.0.1", port), Msg(BINDING, REQUEST).encode())
    r = Msg.decode(raw) if raw else None
    t.eq(r.get("SOFTWARE") if r else None, b"meetlite-test", "SOFTWARE sent when turn.software is set")
finally:
    t.ok(d.clean(), "second daemon stops cleanly", d.log())
    d.close()

sys.exit(t.done())
