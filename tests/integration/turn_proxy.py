"""The PROXY protocol on the TURN stream listeners (net.proxy-protocol-from): from a trusted
proxy, a version 2 (binary) or version 1 (text, what nginx's stream module sends) header before
the client's first STUN message, or before its TLS ClientHello, makes the client's address the
connection's: a Binding answer's XOR-MAPPED-ADDRESS is the header's source, not the proxy's.
A trusted peer without a header is served as itself; a header from an untrusted peer, a
malformed header, and a header that never completes close the connection."""

import os
import socket
import ssl
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mltest  # noqa: E402
from mltest import BINDING, REQUEST, Daemon, Msg, Tap, free_port, recv_stun_stream  # noqa: E402

t = Tap()
tmp = mltest.scratch_dir("ml-proxy-")
cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "c.key")
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=meetlite-proxy"],
               check=True, capture_output=True)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(src, sport, dst="127.0.0.1", dport=3478, cmd=1, tlv=b""):
    if ":" in src:
        body = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) + \
            struct.pack("!HH", sport, dport) + tlv
        fam = 0x21
    else:
        body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport) + tlv
        fam = 0x11
    return V2_SIG + bytes([0x20 | cmd, fam]) + struct.pack("!H", len(body)) + body


def v1(src, sport, dst="127.0.0.1", dport=3478):
    proto = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (proto, src, dst, sport, dport)).encode()


def binding(sock):
    m = Msg(BINDING, REQUEST)
    sock.sendall(m.encode())
    r = Msg.decode(recv_stun_stream(sock, 3))
    return r.xaddr("XOR-MAPPED-ADDRESS")


def connect(port, source="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(3)
    s.connect(("127.0.0.1", port))
    return s


def closed_soon(s, timeout=3.0):
    """True when the server closes the connection within timeout (EOF or reset)."""
    s.settimeout(timeout)
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


port, tport, port6 = free_port(), free_port(), free_port(socket.AF_INET6, "::1")
d = Daemon(["turn.listen=tcp://127.0.0.1:%d, tls://127.0.0.1:%d, tcp://[::1]:%d" % (port, tport, port6),
            "turn.tls-cert=" + cert, "turn.tls-key=" + key, "turn.auth-secret=proxy-secret-0123456789",
            "net.proxy-protocol-from=127.0.0.1/32, ::1/128", "net.workers=2"])
try:
    # ---------------------------------------------------------------- TCP
    s = connect(port)
    s.sendall(v2("203.0.113.7", 4242))
    t.eq(binding(s), ("203.0.113.7", 4242), "TCP, PROXY v2 from a trusted proxy: XOR-MAPPED-ADDRESS is the client's")
    t.eq(binding(s), ("203.0.113.7", 4242), "... and stays so for the connection's next request")
    s.close()

    s = connect(port)
    m = Msg(BINDING, REQUEST)
    s.sendall(v2("2001:db8::17", 5000, "2001:db8::1", 3478) + m.encode())  # header and request in one segment
    r = Msg.decode(recv_stun_stream(s, 3))
    t.eq(r.xaddr("XOR-MAPPED-ADDRESS"), ("2001:db8::17", 5000),
         "TCP, PROXY v2 with an IPv6 client, header and request in one segment")
    s.close()

    s = connect(port)
    s.sendall(v2("198.51.100.20", 6000, tlv=b"\x04\x00\x05hello"))  # a TLV (NOOP) after the addresses
    t.eq(binding(s), ("198.51.100.20", 6000), "TCP, PROXY v2 with TLVs: they are skipped")
    s.close()

    s = connect(port)
    hdr = v2("198.51.100.21", 6001)
    for i in range(0, len(hdr), 5):  # the header trickles in
        s.sendall(hdr[i:i + 5])
        time.sleep(0.05)
    t.eq(binding(s), ("198.51.100.21", 6001), "TCP, PROXY v2 in pieces: read whole before the stream starts")
    s.close()

    s = connect(port)
    s.sendall(v1("192.0.2.55", 61000))
    t.eq(binding(s), ("192.0.2.55", 61000), "TCP, PROXY v1 (nginx's stream module): the client's address")
    s.close()

    s = connect(port)
    s.sendall(v2("127.0.0.1", 1, cmd=0))
    a = binding(s)
    t.ok(a[0] == "127.0.0.1" and a[1] == s.getsockname()[1], "TCP, PROXY v2 LOCAL (a health check): the proxy's own address", a)
    s.close()

    s = connect(port)
    a = binding(s)
    t.ok(a == s.getsockname(), "TCP from a trusted proxy without a header: its own address", a)
    s.close()

    s = socket.create_connection(("::1", port6), timeout=3)
    s.sendall(v1("192.0.2.66", 1234, "192.0.2.1", 3478))
    t.eq(binding(s), ("192.0.2.66", 1234), "TCP on an IPv6 listener from a trusted ::1: PROXY v1 TCP4")
    s.close()

    # ---------------------------------------------------------------- refused
    s = connect(port, source="127.0.0.2")
    s.sendall(v2("203.0.113.9", 4242))
    t.ok(closed_soon(s), "TCP, PROXY v2 from an untrusted peer (127.0.0.2): closed at once")
    s.close()
    s = connect(port, source="127.0.0.2")
    s.sendall(v1("203.0.113.9", 4242))
    t.ok(closed_soon(s), "TCP, PROXY v1 from an untrusted peer: closed at once")
    s.close()
    s = connect(port, source="127.0.0.2")
    a = binding(s)
    t.ok(a == s.getsockname(), "an untrusted peer without a header is served as itself", a)
    s.close()

    bad = [("version 3", b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + b"\0" * 12),
           ("a length beyond the limit", V2_SIG + b"\x21\x11\xff\xff"),
           ("addresses shorter than the family needs", V2_SIG + b"\x21\x21\x00\x0c" + b"\0" * 12),
           ("a datagram source", V2_SIG + b"\x21\x12\x00\x0c" + b"\0" * 12),
           ("v1 with a bad address", b"PROXY TCP4 300.1.1.1 127.0.0.1 1 2\r\n"),
           ("v1 without CRLF in 107 bytes", b"PROXY TCP4 " + b"1" * 120),
           ("a signature that goes wrong", b"\r\n\r\n\x00\r\nQUIX\n" + b"\0" * 8)]
    for what, data in bad:
        s = connect(port)
        s.sendall(data)
        t.ok(closed_soon(s), "TCP from a trusted proxy, malformed header (%s): closed" % what)
        s.close()
    t.ok(d.alive(), "meetlited is alive after the malformed headers")

    # ---------------------------------------------------------------- TLS
    raw = connect(tport)
    raw.sendall(v2("203.0.113.8", 4343))  # before the ClientHello, as nginx and HAProxy send it
    with ctx.wrap_socket(raw) as s:
        t.eq(binding(s), ("203.0.113.8", 4343), "TLS, PROXY v2 before the ClientHello: the client's address")
    raw = connect(tport)
    raw.sendall(v1("192.0.2.77", 40000))
    with ctx.wrap_socket(raw) as s:
        t.eq(binding(s), ("192.0.2.77", 40000), "TLS, PROXY v1 before the ClientHello (nginx stream proxy_protocol on)")
    raw = connect(tport)
    with ctx.wrap_socket(raw) as s:
        a = binding(s)
        t.ok(a == s.getsockname(), "TLS from a trusted proxy without a header: its own address", a)
    raw = connect(tport, source="127.0.0.2")
    raw.sendall(v2("203.0.113.9", 4242))
    try:
        with ctx.wrap_socket(raw) as s:
            binding(s)
        t.ok(False, "TLS, PROXY v2 from an untrusted peer: refused")
    except (ssl.SSLError, ConnectionError, OSError) as e:
        t.ok(True, "TLS, PROXY v2 from an untrusted peer: refused", e)

    code, log = d.stop()
    t.ok(code == 0, "meetlited stops cleanly (no leak under ASan)", log[-3000:])
    t.ok("not in net.proxy-protocol-from" in log and "malformed PROXY header" in log,
         "the refusals are logged with their reason", log[-2000:])
finally:
    if d.alive():
        d.stop()
t.done()
