"""coturn's turnutils_uclient against meetlited over UDP: channel mode and Send/Data-indication
mode, to turnutils_peer and client-to-client (-y) (coturn 4.6's client picks channel numbers from
RFC 5766's range, so turn.rfc5766-channel-numbers is on), with padded ChannelData (-D) and DONT-FRAGMENT
(-g), every run with 0 packets lost; also over IPv6 (-x on ::1)."""

import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Daemon, Tap, free_port  # noqa: E402

SECRET = "uclient-secret-0123456789"
t = Tap()
port = free_port()
port6 = free_port(socket.AF_INET6, "::1")
peer_port = free_port()
peer6_port = free_port(socket.AF_INET6, "::1")
d = Daemon(["turn.listen=udp://127.0.0.1:%d, udp://[::1]:%d" % (port, port6),
            "turn.auth-secret=" + SECRET, "turn.realm=uclient.test",
            "turn.allow-peers=127.0.0.0/8, ::1", "turn.relay-ports=44000-44999",
            "turn.max-allocations-per-user=100", "turn.rfc5766-channel-numbers=yes", "net.workers=2"])
peers = [subprocess.Popen(["turnutils_peer", "-L", "127.0.0.1", "-p", str(peer_port)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
         subprocess.Popen(["turnutils_peer", "-L", "::1", "-p", str(peer6_port)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
time.sleep(0.3)


def uclient(desc, flags, n, m, expect_total, server="127.0.0.1", srv_port=None, peer=("127.0.0.1", peer_port)):
    args = ["timeout", "90", "turnutils_uclient", "-n", str(n), "-m", str(m), "-l", "171", "-z", "5",
            "-u", "uc", "-W", SECRET, "-p", str(srv_port or port)]
    if "-y" not in flags:
        args += ["-e", peer[0], "-r", str(peer[1])]
    args += flags + [server]
    r = subprocess.run(args, capture_output=True, text=True)
    out = r.stdout + r.stderr
    sent = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$", out, re.M)
    lost = re.findall(r"Total lost packets (\d+)", out)
    ok = (r.returncode == 0 and sent and int(sent[-1][0]) == expect_total and int(sent[-1][1]) == expect_total
          and lost and int(lost[-1]) == 0)
    t.ok(ok, "%s: %s sent, %s received, %s lost" % (desc, sent[-1][0] if sent else "?", sent[-1][1] if sent else "?",
                                                  lost[-1] if lost else "?"), out[-2500:])


try:
    uclient("channel mode to turnutils_peer", ["-X", "-g", "-c"], 200, 10, 2000)
    uclient("Send/Data indications to turnutils_peer", ["-X", "-s", "-c"], 200, 10, 2000)
    uclient("channel mode with padded ChannelData (-D)", ["-X", "-D", "-c"], 100, 4, 400)
    uclient("client-to-client over channels (-y)", ["-X", "-y", "-c"], 200, 10, 2000)
    uclient("client-to-client over indications (-y -s)", ["-X", "-y", "-s", "-c"], 200, 10, 2000)
    uclient("with RTCP allocations (EVEN-PORT and reservations)", ["-X"], 100, 4, 400)
    uclient("IPv6: uclient on ::1, IPv6 relay (-x)", ["-x", "-c"], 100, 4, 400, server="::1", srv_port=port6,
            peer=("::1", peer6_port))
    uclient("IPv6 client-to-client (-x -y)", ["-x", "-y", "-c"], 100, 4, 400, server="::1", srv_port=port6)
finally:
    for p in peers:
        p.terminate()
        p.wait()
    t.ok(d.clean(), "meetlited stops cleanly", d.log()[-3000:])
    d.close()

sys.exit(t.done())
