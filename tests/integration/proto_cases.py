"""Protocol cases as data (tier 2): every tests/data/stun/*.case exchange is sent to a running
meetlited over UDP and TCP, and the answer is compared with the expected hex."""

import glob
import os
import re
import socket
import struct
import sys
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import BINDING, REQUEST, TOP_SRCDIR, Daemon, Msg, Tap, free_port, recv_stun_stream, udp_exchange  # noqa: E402


def parse_hex(text):
    return bytes.fromhex(re.sub(r"\s+", "", text))


def with_fingerprint(raw):
    raw = raw[:2] + struct.pack("!H", len(raw) - 20 + 8) + raw[4:]
    crc = (zlib.crc32(raw) ^ 0x5354554E) & 0xFFFFFFFF
    return raw + struct.pack("!HHI", 0x8028, 4, crc)


def parse_pattern(text):
    """Expected bytes: a list of ints, None for '..', and a trailing 'REST' for '*'."""
    out = []
    for tok in text.split():
        if tok == "*":
            out.append("REST")
            continue
        for i in range(0, len(tok), 2):
            pair = tok[i:i + 2]
            out.append(None if pair == ".." else int(pair, 16))
    return out


def matches(pattern, data):
    for i, p in enumerate(pattern):
        if p == "REST":
            return True
        if i >= len(data):
            return False
        if p is not None and p != data[i]:
            return False
    return len(data) == len(pattern)


def load_cases(path):
    cases, cur, transports, comment = [], None, ("udp", "tcp"), ""
    for line in open(path):
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            comment = line[1:].strip()
            continue
        if line.startswith("@"):
            transports = (line[1:],)
            continue
        if line.startswith(">"):
            body = line[1:].strip()
            fp = body.endswith("+FP")
            raw = parse_hex(body[:-3] if fp else body)
            cur = {"req": with_fingerprint(raw) if fp else raw, "desc": comment,
                   "transports": transports}
            continue
        if line.startswith("<"):
            body = line[1:].strip()
            cur["expect"] = None if body == "none" else parse_pattern(body)
            cases.append(cur)
            cur, transports = None, ("udp", "tcp")
    return cases


t = Tap()
port = free_port()
d = Daemon(["turn.listen=udp://127.0.0.1:%d, tcp://127.0.0.1:%d" % (port, port), "net.workers=1"])
srv = ("127.0.0.1", port)
try:
    files = sorted(glob.glob(os.path.join(TOP_SRCDIR, "tests", "data", "stun", "*.case")))
    t.ok(len(files) >= 3, "case files found (%d)" % len(files))
    for path in files:
        name = os.path.basename(path)
        for case in load_cases(path):
            for tr in case["transports"]:
                desc = "%s [%s] %s" % (name, tr, case["desc"])
                if tr == "udp":
                    reply = udp_exchange(srv, case["req"], timeout=0.4 if case["expect"] is None else 2)
                else:
                    c = socket.create_connection(srv, timeout=2)
                    c.sendall(case["req"])
                    try:
                        reply = recv_stun_stream(c, timeout=0.4 if case["expect"] is None else 2)
                    except (socket.timeout, ConnectionError):
                        reply = None
                    c.close()
                if case["expect"] is None:
                    t.ok(reply is None, desc, reply.hex() if reply else None)
                    # the server still answers after a dropped message
                    alive = udp_exchange(srv, Msg(BINDING, REQUEST).encode())
                    t.ok(alive is not None, desc + ": still answering")
                else:
                    t.ok(reply is not None and matches(case["expect"], reply), desc,
                         "got %s" % (reply.hex() if reply else None))
finally:
    t.ok(d.clean(), "meetlited stops cleanly", d.log())
    d.close()
sys.exit(t.done())
