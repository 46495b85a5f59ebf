#!/usr/bin/env python3
"""Slow TCP and TLS clients (issue #13, failure 2). Every byte resets the idle timeout, so a
client sending a frame one byte at a time used to keep its connection forever. Now:
net.stream-frame-timeout bounds the time from a frame's first byte to its last, and
net.stream-setup-timeout the time from accept (TLS handshake included) to a successful Allocate
(or a ConnectionBind that makes an RFC 6062 data connection). Binding requests are answered
meanwhile, but do not extend the deadline. Both closes are counted in /metrics. A frame split in
quick pieces, and connections with an allocation, are not affected."""

import os
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mltest  # noqa: E402
from mladmin import TOKEN, AdminApi  # noqa: E402
from mltest import BINDING, REQUEST, SUCCESS, Daemon, Msg, Tap, free_port, recv_stun_stream, rest_credential  # noqa: E402
from turnclient import Peer, TurnClient  # noqa: E402

SECRET = "slow-secret-0123456789"
FRAME_S, SETUP_S = 2, 4
t = Tap()
tmp = mltest.scratch_dir("ml-slow-")
cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "c.key")
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=slow"], check=True, capture_output=True)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

port, tport, admin_port = free_port(), free_port(), free_port()
d = Daemon(["turn.listen=udp://127.0.0.1:%d, tcp://127.0.0.1:%d, tls://127.0.0.1:%d" % (port, port, tport),
            "turn.tls-cert=" + cert, "turn.tls-key=" + key, "turn.auth-secret=" + SECRET,
            "turn.allow-peers=127.0.0.0/8", "turn.relay-ports=44000-44499",
            "net.stream-frame-timeout=%d" % FRAME_S, "net.stream-setup-timeout=%d" % SETUP_S,
            "net.stream-idle-timeout=60", "net.workers=2",
            "admin.listen=127.0.0.1:%d" % admin_port, "admin.token=" + TOKEN])
admin = AdminApi(admin_port)


def closed_within(sock, limit):
    """Seconds until the server closes sock (EOF or reset), or None if still open after limit.
    Whatever the server sends meanwhile is read and dropped."""
    t0 = time.time()
    while time.time() - t0 < limit:
        sock.settimeout(max(0.05, min(0.5, limit - (time.time() - t0))))
        try:
            if sock.recv(4096) == b"":
                return time.time() - t0
        except (socket.timeout, TimeoutError, ssl.SSLWantReadError):
            continue
        except (ConnectionResetError, ssl.SSLError, OSError):
            return time.time() - t0
    return None


def trickle(sock, data, every, limit):
    """Sends data a byte at a time; seconds from the first byte until the server closes, or
    None if it is still open after limit."""
    t0 = time.time()
    i = 0
    while time.time() - t0 < limit:
        if i < len(data):
            try:
                sock.send(data[i:i + 1])
            except OSError:
                return time.time() - t0
            i += 1
        left = closed_within(sock, every)
        if left is not None:
            return time.time() - t0
    return None


def metric(name, labels):
    for line in admin.metrics().splitlines():
        if line.startswith(name + "{") and labels in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def allocated(transport, p):
    user, pw = rest_credential(SECRET, "slow-" + transport)
    cl = TurnClient(("127.0.0.1", p), transport, tls_context=ctx if transport == "tls" else None, timeout=3)
    cl.login(user, pw)
    r = cl.allocate()
    return cl, r.cls == SUCCESS


try:
    binding = Msg(BINDING, REQUEST).encode()

    # a frame completed in quick pieces is served as before
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(binding[:7])
    time.sleep(0.5)
    s.sendall(binding[7:])
    s.settimeout(3)
    r = Msg.decode(recv_stun_stream(s, 3))
    t.ok(r is not None and r.cls == SUCCESS, "a frame arriving in two pieces is answered")
    s.close()

    # an allocated TCP client that then sends a frame a byte at a time (each byte would reset
    # the idle timeout): closed by the frame deadline
    for transport, p in (("tcp", port), ("tls", tport)):
        cl, ok = allocated(transport, p)
        t.ok(ok, "%s: allocated" % transport)
        took = trickle(cl.sock, binding, 0.5, FRAME_S + 6)
        t.ok(took is not None and FRAME_S - 0.5 <= took <= FRAME_S + 2.5,
             "%s: a frame sent one byte each 0.5 s is cut after net.stream-frame-timeout (%s s)" % (transport, took))
        cl.close()
    frames = metric("meetlite_stream_dropped_total", 'reason="frame_timeout"')
    t.ok(frames is not None and frames >= 2, "frame timeouts are counted (%s)" % frames)

    # connect and do nothing: closed by the setup deadline (TLS: no handshake either)
    s = socket.create_connection(("127.0.0.1", port))
    took = closed_within(s, SETUP_S + 4)
    t.ok(took is not None and SETUP_S - 0.5 <= took <= SETUP_S + 2.5,
         "tcp: a connection that sends nothing is closed after net.stream-setup-timeout (%s s)" % took)
    s.close()
    s = socket.create_connection(("127.0.0.1", tport))
    took = closed_within(s, SETUP_S + 4)
    t.ok(took is not None and SETUP_S - 0.5 <= took <= SETUP_S + 2.5,
         "tls: a connection that never starts its handshake is closed after the setup timeout (%s s)" % took)
    s.close()

    # a TLS handshake that completes, then nothing: the handshake counts in the same deadline
    raw = socket.create_connection(("127.0.0.1", tport))
    t0 = time.time()
    s = ctx.wrap_socket(raw)
    took = closed_within(s, SETUP_S + 4)
    took = took + (time.time() - t0 - took) if took is not None else None
    t.ok(took is not None and took <= SETUP_S + 2.5,
         "tls: handshake done but no Allocate: closed at the setup deadline (%s s)" % took)
    s.close()

    # Binding requests are answered meanwhile, but do not make a connection set up
    s = socket.create_connection(("127.0.0.1", port))
    t0 = time.time()
    answered = 0
    gone = None
    while time.time() - t0 < SETUP_S + 4:
        try:
            s.sendall(binding)
            r = Msg.decode(recv_stun_stream(s, 1.0))
            if r is not None and r.cls == SUCCESS:
                answered += 1
        except (OSError, ValueError, AttributeError):
            gone = time.time() - t0
            break
        time.sleep(0.5)
    if gone is None:
        gone = closed_within(s, 0.5)
        gone = gone + (time.time() - t0) if gone is not None else None
    t.ok(answered >= 3, "Binding requests on a fresh connection are answered (%d)" % answered)
    t.ok(gone is not None and gone <= SETUP_S + 2.5,
         "a Binding-only connection is closed at the setup deadline (%s s)" % gone)
    s.close()
    setups = metric("meetlite_stream_dropped_total", 'reason="setup_timeout"')
    t.ok(setups is not None and setups >= 4, "setup timeouts are counted (%s)" % setups)

    # connections with an allocation outlive both deadlines and keep relaying
    peer = Peer()
    for transport, p in (("tcp", port), ("tls", tport)):
        cl, ok = allocated(transport, p)
        cl.create_permission(peer.addr)
        time.sleep(SETUP_S + 1.5)
        cl.send_indication(peer.addr, b"still-here-" + transport.encode())
        data, src = peer.recv(2.0)
        t.ok(ok and data == b"still-here-" + transport.encode(),
             "%s: an allocated connection outlives the setup deadline and relays" % transport)
        r = cl.refresh(expect_ok=False)
        t.ok(r.cls == SUCCESS, "%s: and its requests are answered" % transport)
        cl.close()
    peer.close()
finally:
    t.ok(d.clean(), "meetlited stops cleanly", d.log()[-3000:])
    d.close()
t.done()
