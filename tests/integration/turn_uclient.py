"""coturn's turnutils_uclient (Debian's coturn 4.6), the most used TURN test client, against
meetlited with no compatibility switch set; every run must lose nothing (issue #11).

- The matrix: channel mode, client-to-client (-y), with RTCP companions (an Allocate with
  EVEN-PORT R, then one with the RESERVATION-TOKEN it got), over UDP, TCP and TLS, IPv4 and
  IPv6, with TURN REST credentials (-W); the six combinations run at once, ROUNDS times in a
  row. This is what failed before: uclient draws channel numbers from 0x4000-0x7FFF (400 when
  only RFC 8656's 0x4000-0x4FFF was accepted), and its IPv6 RTCP companion got an IPv4 relay.
- The same with a static long-term user (-u/-w).
- To turnutils_peer: channels with DONT-FRAGMENT (-g), Send/Data indications (-s), padded
  ChannelData (-D), IPv4 and IPv6.
- TLS: uclient tries TLS 1.0 and 1.1 contexts at random, which meetlited refuses; the refusal
  carries a TLS alert ("protocol version"), never a connection cut without one ("unexpected
  eof while reading").
- Stream framing of RFC 5766's channel numbers, with our own client: channels 0x5000 and 0x7FFF
  bound over TCP and TLS, and ChannelData on 0x7FFF (first byte 0x7F) of odd sizes, padded,
  relayed both ways with the stream still in step."""

import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Daemon, Tap, free_port, rest_credential  # noqa: E402
from turnclient import Peer, TurnClient  # noqa: E402

SECRET = "uclient-secret-0123456789"
ROUNDS = 5
t = Tap()
tmp = tempfile.mkdtemp(prefix="ml-uclient-")
cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=meetlite-uclient",
                "-addext", "subjectAltName=IP:127.0.0.1,IP:::1"], check=True, capture_output=True)

# one port per family serves UDP and TCP; TLS has its own
port4, tls4 = free_port(), free_port()
port6, tls6 = free_port(socket.AF_INET6, "::1"), free_port(socket.AF_INET6, "::1")
peer4, peer6 = free_port(), free_port(socket.AF_INET6, "::1")
d = Daemon(["turn.listen=udp://127.0.0.1:%d, tcp://127.0.0.1:%d, tls://127.0.0.1:%d, "
            "udp://[::1]:%d, tcp://[::1]:%d, tls://[::1]:%d" % (port4, port4, tls4, port6, port6, tls6),
            "turn.tls-cert=" + cert, "turn.tls-key=" + key,
            "turn.auth-secret=" + SECRET, "turn.static-users=ucuser:uc-password-1", "turn.realm=uclient.test",
            "turn.allow-peers=127.0.0.0/8, ::1", "turn.relay-ports=44000-44999",
            "turn.max-allocations-per-user=200", "net.workers=2"])
peers = [subprocess.Popen(["turnutils_peer", "-L", "127.0.0.1", "-p", str(peer4)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
         subprocess.Popen(["turnutils_peer", "-L", "::1", "-p", str(peer6)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
time.sleep(0.3)

TRANSPORTS = {"UDP": ([], port4, port6), "TCP": (["-t"], port4, port6), "TLS": (["-t", "-S"], tls4, tls6)}
FAMILIES = {"IPv4": ([], "127.0.0.1", ("127.0.0.1", peer4)), "IPv6": (["-x"], "::1", ("::1", peer6))}


def start(flags, transport, family, n, m, auth=("-W", SECRET), user="uc"):
    """A uclient run, started; flags without -e (peer) run client-to-client."""
    tflags, p4, p6 = TRANSPORTS[transport]
    fflags, server, peer = FAMILIES[family]
    args = ["timeout", "90", "turnutils_uclient", "-n", str(n), "-m", str(m), "-l", "171", "-z", "5",
            "-u", user, auth[0], auth[1], "-p", str(p4 if family == "IPv4" else p6)] + tflags + fflags
    if "-y" not in flags:
        args += ["-e", peer[0], "-r", str(peer[1])]
    return subprocess.Popen(args + flags + [server], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def check(desc, proc, n, m):
    out = proc.communicate()[0]
    totals = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$", out, re.M)
    lost = re.findall(r"Total lost packets (\d+)", out)
    sent, got = (int(totals[-1][0]), int(totals[-1][1])) if totals else (0, -1)
    ok = proc.returncode == 0 and sent >= n * m and got == sent and lost and int(lost[-1]) == 0
    t.ok(ok, "%s: %d sent, %d received, %s lost" % (desc, sent, got, lost[-1] if lost else "?"),
         "\n".join(ln for ln in out.splitlines() if "tls_connect" not in ln and "errno=" not in ln)[-2500:])
    return out


try:
    tls_out = []
    # the matrix, ROUNDS times in a row: channels, client-to-client, RTCP companions
    for rnd in range(1, ROUNDS + 1):
        runs = [("round %d: %s %s, channels, client-to-client, RTCP companions, REST (-W)" % (rnd, tr, fam),
                 start(["-y"], tr, fam, 50, 2), tr) for tr in TRANSPORTS for fam in FAMILIES]
        for desc, proc, tr in runs:
            out = check(desc, proc, 50, 2)
            if tr == "TLS":
                tls_out.append(out)
    # long-term credentials of a static user
    runs = [("%s %s, channels, client-to-client, RTCP companions, static user (-w)" % (tr, fam),
             start(["-y"], tr, fam, 50, 2, auth=("-w", "uc-password-1"), user="ucuser"), tr)
            for tr in TRANSPORTS for fam in FAMILIES]
    for desc, proc, tr in runs:
        out = check(desc, proc, 50, 2)
        if tr == "TLS":
            tls_out.append(out)
    # to a peer: DONT-FRAGMENT, Send/Data indications, padded ChannelData
    runs = [("%s to turnutils_peer, channels with DONT-FRAGMENT (-g)" % fam, start(["-g"], "UDP", fam, 100, 2))
            for fam in FAMILIES]
    runs += [("%s to turnutils_peer, Send/Data indications (-s)" % tr, start(["-s"], tr, "IPv4", 100, 2))
             for tr in TRANSPORTS]
    runs += [("UDP to turnutils_peer, padded ChannelData (-D)", start(["-D"], "UDP", "IPv4", 100, 2)),
             ("UDP client-to-client over indications (-y -s)", start(["-y", "-s"], "UDP", "IPv4", 100, 2))]
    for desc, proc in runs:
        out = check(desc, proc, 100, 2)
        if "-s" in desc and "TLS" in desc:
            tls_out.append(out)
    # ChannelData with first bytes 0x50-0x7F in a stream: framed, padded and relayed like 0x4000
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    peer = Peer()
    for name, transport, srv_port in (("TCP", "tcp", port4), ("TLS", "tls", tls4)):
        c = TurnClient(("127.0.0.1", srv_port), transport, tls_context=ctx if transport == "tls" else None)
        c.login(*rest_credential(SECRET, "framing-" + transport))
        c.allocate()
        c.channel_bind(0x7FFF, peer.addr)
        c.channel_bind(0x5000, ("127.0.0.1", 9))
        sent = [b"x" * n for n in (1, 2, 3, 5, 171, 1001)]
        for data in sent:
            c.send_channel(0x7FFF, data)
        got = [peer.recv()[0] for _ in sent]
        for data in sent:
            peer.send(c.relay, data)
        back = [c.recv_data() for _ in sent]
        t.ok(got == sent and back == [("channel", 0x7FFF, d) for d in sent],
             "%s: ChannelData on 0x7FFF of odd sizes (padded) reaches the peer and comes back on 0x7FFF" % name,
             (len(got), back[:2]))
        t.ok(c.refresh(600, expect_ok=False).cls == 2, "%s: the stream stays in step after them" % name)
        c.close()
    peer.close()

    eofs = sum(o.count("unexpected eof") for o in tls_out)
    alerts = sum(o.count("alert protocol version") for o in tls_out)
    t.ok(eofs == 0, "TLS handshakes meetlited refuses end with an alert, never a bare cut "
         "(%d 'protocol version' alerts, %d 'unexpected eof')" % (alerts, eofs))
finally:
    for p in peers:
        p.terminate()
        p.wait()
    rc, log = d.stop()
    t.ok(d.clean(), "meetlited stops cleanly", log[-3000:])
    d.close()
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(t.done())
