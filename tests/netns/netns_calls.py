"""The network tier (issue #14, item 5): meetings on made-up restrictive networks, built from
network namespaces, veth pairs and nftables on this machine (needs root; CI runs as root).

Hosts, each a namespace with a random suffix (deleted at the end, also on failure):

    server  203.0.113.10 (TURN: udp/tcp 3478, tls 443), 203.0.113.11 (page, API, signaling:
            HTTPS on 443), on a bridge "wan" that stands for the internet; meetlited runs
            here with the test's private PostgreSQL (reached over its unix socket)
    rA, rB  NAT routers: wan0 203.0.113.21/.22 on the bridge, lan0 10.1.0.1 / 10.2.0.1;
            nftables masquerade and the firewall profile in chain forward
    sA, sB  students 10.1.0.2 / 10.2.0.2 behind them; headless Chromium runs here through
            `ip netns exec`

Profiles (the routers' rulesets are swapped between them; one server for all):
    open          masquerade (endpoint-independent mapping): the call goes direct
    symmetric     masquerade fully-random (a new random port per flow, so no mapping a STUN
                  answer reveals is the one a peer can reach): relay over UDP
    udp-blocked   UDP dropped: relay over TCP or TLS
    tcp443        only TCP to port 443: relay over TLS on 443
    tls443        only TLS to port 443: a TCP flow to 443 whose first payload byte is not
                  0x16 (a TLS handshake record) is dropped, with the rest of the flow: the
                  first data packet is judged by a raw payload match (@ih,0,8: the first byte
                  after the TCP header) and the verdict kept in the flow's conntrack mark
                  (1 TLS, 2 not), so later packets are judged by the mark alone; packets
                  without payload (handshake, pure ACKs) pass. Relay over TLS on 443.
    unreachable   only the page's address: nothing reaches the relay, nor the other student;
                  the lobby says so, and the call explains itself within 15 s.

Port 443 is the one-address deployment (docs/relay.md): one shared:// listener carries the
page, the API, signaling and TURN over TCP and TLS, and the students use 203.0.113.10 for all
of it. The server's second address (203.0.113.11) serves the same listener, so that the
unreachable profile can let the page through and not the relay.
"""

import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import MEETLITED, Daemon, Tap  # noqa: E402
from mladmin import make_cert  # noqa: E402
from mlbrowser import CHROMIUM, output_dir, run_browser_script, spki_pin  # noqa: E402
from mlnetns import (add_namespaces, delete_namespaces, in_namespace, namespaces_left, reap_stale,  # noqa: E402
                     run_suffix, sh)
from mlcontrol import JWT_SECRET, TOP_SRCDIR, TURN_SECRET, Postgres, migrate  # noqa: E402

TURN_ADDR = "203.0.113.10"
CP_ADDR = "203.0.113.11"  # the page's second address (the unreachable profile)
SITES = {"a": ("203.0.113.21", "10.1.0"), "b": ("203.0.113.22", "10.2.0")}
SUFFIX = run_suffix()
NS = {"srv": "mlsrv-" + SUFFIX, "ra": "mlra-" + SUFFIX, "rb": "mlrb-" + SUFFIX,
      "sa": "mlsa-" + SUFFIX, "sb": "mlsb-" + SUFFIX}

t = Tap()
for ns in reap_stale(["mlsrv", "mlra", "mlrb", "mlsa", "mlsb"]):
    t.diag("deleted %s, left by a run that was killed" % ns)


def build():
    """The namespaces and their links (see the banner)."""
    add_namespaces(NS.values())
    srv = NS["srv"]
    sh("ip", "-n", srv, "link", "add", "wan", "type", "bridge")
    sh("ip", "-n", srv, "addr", "add", TURN_ADDR + "/24", "dev", "wan")
    sh("ip", "-n", srv, "addr", "add", CP_ADDR + "/24", "dev", "wan")
    sh("ip", "-n", srv, "link", "set", "wan", "up")
    for site, (wan, lan) in SITES.items():
        r, s = NS["r" + site], NS["s" + site]
        port = "r%s-wan" % site
        sh("ip", "-n", r, "link", "add", "wan0", "type", "veth", "peer", "name", port, "netns", srv)
        sh("ip", "-n", srv, "link", "set", port, "master", "wan", "up")
        sh("ip", "-n", r, "addr", "add", wan + "/24", "dev", "wan0")
        sh("ip", "-n", r, "link", "set", "wan0", "up")
        sh("ip", "-n", r, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", s)
        sh("ip", "-n", r, "addr", "add", lan + ".1/24", "dev", "lan0")
        sh("ip", "-n", r, "link", "set", "lan0", "up")
        sh("ip", "-n", s, "addr", "add", lan + ".2/24", "dev", "eth0")
        sh("ip", "-n", s, "link", "set", "eth0", "up")
        sh("ip", "-n", s, "route", "add", "default", "via", lan + ".1")
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=r)


LAN = 'iifname "lan0" oifname "wan0"'
PROFILE_RULES = {
    "open": [LAN + " accept"],
    "symmetric": [LAN + " accept"],
    "udp-blocked": [LAN + " meta l4proto udp counter drop", LAN + " accept"],
    "tcp443": [LAN + " tcp dport 443 accept"],
    "tls443": [LAN + " tcp dport 443 ct mark 0x1 accept",
               LAN + " tcp dport 443 ct mark 0x2 counter drop",
               LAN + " tcp dport 443 @ih,0,8 0x16 ct mark set 0x1 accept",
               LAN + " tcp dport 443 @ih,0,8 != 0x16 ct mark set 0x2 counter drop",
               LAN + " tcp dport 443 accept"],
    "unreachable": [LAN + " ip daddr %s tcp dport 443 accept" % CP_ADDR],
}


def ruleset(profile):
    """A router's whole ruleset for a profile: NAT, then the forward chain: the profile's rules
    first (tls443 judges packets of established flows too), replies of flows let out, and
    everything else from the LAN counted and dropped; nothing new comes in from the WAN.
    The router itself takes nothing new from the WAN either: an unsolicited packet (a peer's
    ICE check arriving before our own went out) would otherwise leave a conntrack entry for
    the router's own port, and the masquerade of our later check would have to pick another
    port: a home router that answers nothing behaves like this one."""
    masq = "masquerade fully-random" if profile == "symmetric" else "masquerade"
    rules = "\n".join("        " + r for r in PROFILE_RULES[profile])
    return """flush ruleset
table inet mlrouter {
    chain forward {
        type filter hook forward priority filter; policy drop;
%s
        ct state established,related accept
        iifname "lan0" counter drop
    }
    chain input {
        type filter hook input priority filter; policy accept;
        iifname "wan0" ct state new drop
    }
    chain postrouting {
        type nat hook postrouting priority srcnat;
        oifname "wan0" %s
    }
}
""" % (rules, masq)


def dropped(out):
    """Packets a router's counters dropped, from `nft list chain` output."""
    n = 0
    for line in out.splitlines():
        if "counter packets" in line:
            n += int(line.split("counter packets")[1].split()[0])
    return n


def server_sets(pg_url, cert, key):
    """meetlited's configuration: the one-address deployment (docs/relay.md), a shared:// listener
    on 443 carrying the page, the API, signaling and TURN over TCP and TLS. It listens on the
    wildcard so that the second address (CP_ADDR) serves the page too: the unreachable profile
    lets students reach only that one, a network where the page loads and the relay does not."""
    return ["database.url=" + pg_url,
            "database.migrations-dir=" + os.path.join(TOP_SRCDIR, "sql"),
            "control.listen=0.0.0.0:443",
            "control.public-url=https://%s" % TURN_ADDR,
            "turn.listen=udp://{0}:3478, tcp://{0}:3478, shared://0.0.0.0:443".format(TURN_ADDR),
            "turn.relay-address=" + TURN_ADDR,
            "turn.tls-cert=" + cert, "turn.tls-key=" + key,
            "control.turn-uris=stun:{0}:3478, turn:{0}:3478?transport=udp, "
            "turn:{0}:3478?transport=tcp, turns:{0}:443?transport=tcp".format(TURN_ADDR),
            "turn.allow-peers=203.0.113.0/24",
            "turn.auth-secret=" + TURN_SECRET, "auth.jwt-secret=" + JWT_SECRET,
            "auth.argon2-memory=1024", "auth.argon2-iterations=1",
            "net.workers=1", "log.level=info"]


def plain_to_443(ns):
    """From namespace ns, plain text (not TLS) to the page's port 443: 'answered' (bytes or a
    close came back) or 'silent' (a firewall dropped it)."""
    code = ("import socket\ns=socket.create_connection(('%s',443),3)\ns.settimeout(2)\n"
            "s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n"
            "try:\n    s.recv(100); print('answered')\nexcept socket.timeout:\n    print('silent')\n"
            "except OSError:\n    print('answered')\n") % CP_ADDR  # a reset is an answer too
    return sh(sys.executable, "-c", code, ns=ns, check=False).strip() or "failed"


def tls_to_443(ns):
    code = ("import socket,ssl\nc=ssl.create_default_context();c.check_hostname=False;c.verify_mode=ssl.CERT_NONE\n"
            "s=c.wrap_socket(socket.create_connection(('%s',443),3));s.settimeout(3)\nprint(s.version())\n") % CP_ADDR
    return sh(sys.executable, "-c", code, ns=ns, check=False).strip() or "failed"


# make's timeout or a ^C: still delete the namespaces
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
pg = d = None
tmp = tempfile.mkdtemp(prefix="ml-netns-")
started = time.time()
try:
    if os.geteuid() != 0:
        raise RuntimeError("the network tier needs root (ip netns, nftables)")
    build()
    t.ok(True, "namespaces built: " + ", ".join(sorted(NS.values())))
    cert, key = make_cert(tmp, "meet.test", san="IP:%s,IP:%s,DNS:meet.test" % (TURN_ADDR, CP_ADDR))
    os.chmod(tmp, 0o755)
    spki = spki_pin(cert)

    pg = Postgres()
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "schema migrated", r.stderr)
    d = Daemon(server_sets(pg.url, cert, key), binary=in_namespace(tmp, NS["srv"], MEETLITED), timeout=60)
    browsers = {site: in_namespace(tmp, NS["s" + site], CHROMIUM) for site in ("a", "b")}

    # the routers' rulesets, one file per profile; nft -f swaps a whole ruleset at once
    profiles = []
    expect = {"open": {"kind": "direct", "verdict": "udp"},
              "symmetric": {"kind": "relay", "protocols": ["udp"], "verdict": "udp"},
              "udp-blocked": {"kind": "relay", "protocols": ["tcp", "tls"], "verdict": "tcp"},
              "tcp443": {"kind": "relay", "protocols": ["tls"], "verdict": "tls"},
              "tls443": {"kind": "relay", "protocols": ["tls"], "verdict": "tls"},
              "unreachable": {"kind": "none", "verdict": "none"}}
    for name, want in expect.items():
        path = os.path.join(tmp, name + ".nft")
        with open(path, "w") as f:
            f.write(ruleset(name))
        # the unreachable profile reaches the page by the second address only
        base = "https://%s" % (CP_ADDR if name == "unreachable" else TURN_ADDR)
        profiles.append({"name": name, "expect": want, "base": base,
                         "apply": [["ip", "netns", "exec", NS[r], "nft", "-f", path] for r in ("ra", "rb")],
                         "count": [["ip", "netns", "exec", NS[r], "nft", "list", "chain", "inet", "mlrouter",
                                    "forward"] for r in ("ra", "rb")]})

    # the TLS-only rule judges the first payload, not the port: shown with plain text and TLS
    sh("nft", "-f", os.path.join(tmp, "tcp443.nft"), ns=NS["ra"])
    t.eq(plain_to_443(NS["sa"]), "answered", "tcp443: plain text to port 443 gets through")
    sh("nft", "-f", os.path.join(tmp, "tls443.nft"), ns=NS["ra"])
    t.eq(plain_to_443(NS["sa"]), "silent", "tls443: plain text to port 443 is dropped after the TCP handshake")
    t.ok(tls_to_443(NS["sa"]).startswith("TLS"), "tls443: a TLS handshake to port 443 gets through")

    arg = {"base": "https://%s" % CP_ADDR, "browsers": browsers, "spki": spki,
           "outdir": output_dir("netns_calls"), "profiles": profiles}
    report = run_browser_script(t, "netns_calls.mjs", arg, 420)
    for name, r in report.get("profiles", {}).items():
        t.diag("%s: %s ms, verdicts %s, ann %s, ben %s" % (
            name, r.get("ms"), r.get("verdicts"),
            {k: (r.get("ann") or {}).get(k) for k in ("kind", "protocol", "localType", "remoteType")},
            {k: (r.get("ben") or {}).get(k) for k in ("kind", "protocol", "localType", "remoteType")}))
        if any(not c["ok"] and c["name"].startswith(name + ":") for c in report.get("checks", [])):
            t.diag("---- ann\n%s\n---- ben\n%s" % (r.get("log_ann", "")[-2500:], r.get("log_ben", "")[-2500:]))
    # each restrictive profile's routers really dropped what it forbids (counters per ruleset)
    for name in ("udp-blocked", "tcp443", "tls443", "unreachable"):
        n = [dropped(c) for c in report.get("profiles", {}).get(name, {}).get("counters", [])]
        t.ok(len(n) == 2 and all(x > 0 for x in n), "%s: both routers' drop counters counted packets %s" % (name, n))
    # its length is a design goal (< 3 min, docs), not an assertion: speed is measured in tests/bench
    t.diag("the tier ran in %.0f s" % (time.time() - started))
except Exception as e:  # noqa: BLE001 -- reported as a failed test, then cleaned up
    t.ok(False, "the network tier ran", repr(e))
finally:
    if d:
        d.stop_checked(t)
    if pg:
        pg.close()
    delete_namespaces(NS.values())
    left = namespaces_left(SUFFIX)
    t.ok(not left, "every namespace of the run is deleted", left)
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(t.done())
