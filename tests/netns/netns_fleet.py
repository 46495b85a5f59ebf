"""The fleet on made-up hosts (issue #16, item 4): network namespaces, veth pairs, one bridge
and nftables, built and deleted by the test (needs root; CI runs as root).

Hosts (a namespace each, random suffix), on a bridge "wan" that stands for the campus network
(198.18.16.0/24; the test itself reaches it through a veth of its own at .250):

    db        198.18.16.5   PostgreSQL's TCP port (a forwarder to the test's private server)
    c1, c2    .11, .12      control-plane meetlited, fleet.placement = meeting
    r1-r3     .21-.23       TURN-only meetlited relays, registered (fleet.register)
    ra, rb    .31, .32      NAT routers (masquerade) that drop UDP: students relay over TCP
    sa, sb    10.31.0.2, 10.32.0.2 behind them: scripted participants (tests/lib/mlfleetclient.py)

Twelve scripted participants (the media path of a WebRTC client without a browser: the machine
cannot hold twelve Chromium pages next to the other builds) in three meetings of four, spread
over both student hosts and both control nodes, each relaying a packet to each other every
50 ms through its meeting's relay. The relay of one meeting is killed with SIGKILL: every one of
its participants is pushed new iceServers, allocates on another relay and hears every other
participant again within 10 s; the other meetings do not notice. Then one participant leaves
through each control node, and its credential is refused on every live relay within 1 s, and
its allocation closed."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import MEETLITED, TOP_SRCDIR, Daemon, Tap  # noqa: E402
from mlcontrol import JWT_SECRET, TURN_SECRET, Api, Postgres, migrate  # noqa: E402
from turnclient import TurnClient, TurnError  # noqa: E402
from mlnetns import (add_namespaces, delete_namespaces, in_namespace, namespaces_left, reap_stale,  # noqa: E402
                     run_suffix, sh)

NET = "198.18.16."
SUFFIX = run_suffix()
HOSTS = {"db": NET + "5", "c1": NET + "11", "c2": NET + "12", "r1": NET + "21", "r2": NET + "22",
         "r3": NET + "23"}
SITES = {"a": (NET + "31", "10.31.0"), "b": (NET + "32", "10.32.0")}
NS = {h: "mlf%s-%s" % (h, SUFFIX) for h in list(HOSTS) + ["hub", "ra", "rb", "sa", "sb"]}
ROOT_IF = "mlfr" + SUFFIX
BOUND_S = 10.0
REVOKE_S = 1.0
PY = "/usr/bin/python3"  # Debian's, with python3-websockets

t = Tap()
for ns in reap_stale(["mlf%s" % h for h in list(HOSTS) + ["hub", "ra", "rb", "sa", "sb"]]):
    t.diag("deleted %s, left by a run that was killed" % ns)


def build():
    add_namespaces(NS.values())
    hub = NS["hub"]
    sh("ip", "-n", hub, "link", "add", "wan", "type", "bridge")
    sh("ip", "-n", hub, "link", "set", "wan", "up")

    def attach(ns, ifname, addr, port):
        sh("ip", "-n", ns, "link", "add", ifname, "type", "veth", "peer", "name", port, "netns", hub)
        sh("ip", "-n", hub, "link", "set", port, "master", "wan", "up")
        sh("ip", "-n", ns, "addr", "add", addr + "/24", "dev", ifname)
        sh("ip", "-n", ns, "link", "set", ifname, "up")

    for h, addr in HOSTS.items():
        attach(NS[h], "eth0", addr, h + "-w")
    # the test's own way in (REST calls, TURN checks): a veth from the root namespace
    sh("ip", "link", "add", ROOT_IF, "type", "veth", "peer", "name", "root-w", "netns", hub)
    sh("ip", "-n", hub, "link", "set", "root-w", "master", "wan", "up")
    sh("ip", "addr", "add", NET + "250/24", "dev", ROOT_IF)
    sh("ip", "link", "set", ROOT_IF, "up")
    for site, (wan, lan) in SITES.items():
        r, s = NS["r" + site], NS["s" + site]
        attach(r, "wan0", wan, "r%s-w" % site)
        sh("ip", "-n", r, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", s)
        sh("ip", "-n", r, "addr", "add", lan + ".1/24", "dev", "lan0")
        sh("ip", "-n", r, "link", "set", "lan0", "up")
        sh("ip", "-n", s, "addr", "add", lan + ".2/24", "dev", "eth0")
        sh("ip", "-n", s, "link", "set", "eth0", "up")
        sh("ip", "-n", s, "route", "add", "default", "via", lan + ".1")
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=r)


def teardown():
    subprocess.run(["ip", "link", "del", ROOT_IF], capture_output=True)
    delete_namespaces(NS.values())


# a home or campus router that lets out everything but UDP (students relay over TCP)
RULESET = """flush ruleset
table inet mlrouter {
    chain forward {
        type filter hook forward priority filter; policy drop;
        iifname "lan0" oifname "wan0" meta l4proto udp counter drop
        iifname "lan0" oifname "wan0" accept
        ct state established,related accept
    }
    chain postrouting {
        type nat hook postrouting priority srcnat;
        oifname "wan0" masquerade
    }
}
"""

# PostgreSQL's TCP port on the db host: a forwarder to the test server's unix socket
FORWARDER = r"""
import asyncio, sys
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
async def pipe(r, w):
    try:
        while True:
            b = await r.read(65536)
            if not b:
                break
            w.write(b)
            await w.drain()
    except Exception:
        pass
    finally:
        w.close()
async def conn(r, w):
    try:
        ur, uw = await asyncio.open_unix_connection(path)
    except OSError:
        w.close()
        return
    await asyncio.gather(pipe(r, uw), pipe(ur, w))
async def main():
    s = await asyncio.start_server(conn, host, port)
    print("listening", flush=True)
    await s.serve_forever()
asyncio.run(main())
"""


signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
pg = fwd = None
daemons = {}
clients = []
tmp = tempfile.mkdtemp(prefix="ml-netns-fleet-")
os.chmod(tmp, 0o755)
try:
    if os.geteuid() != 0:
        raise RuntimeError("the network tier needs root (ip netns, nftables)")
    build()
    t.ok(True, "namespaces built: " + ", ".join(sorted(NS.values())))
    for r in ("ra", "rb"):
        path = os.path.join(tmp, "router.nft")
        with open(path, "w") as f:
            f.write(RULESET)
        sh("nft", "-f", path, ns=NS[r])

    pg = Postgres()
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "schema migrated", r.stderr)
    m = re.search(r"host=(\S+)", pg.url)
    p = re.search(r"port=(\d+)", pg.url)
    sock = os.path.join(m.group(1), ".s.PGSQL.%s" % (p.group(1) if p else "5432"))
    fpath = os.path.join(tmp, "forwarder.py")
    with open(fpath, "w") as f:
        f.write(FORWARDER)
    fwd = subprocess.Popen(["ip", "netns", "exec", NS["db"], PY, fpath, HOSTS["db"],
                            "5432", sock], stdout=subprocess.PIPE, text=True)
    t.eq(fwd.stdout.readline().strip(), "listening", "PostgreSQL answers on the db host's TCP port")
    user = re.search(r"user=(\S+)", pg.url)
    db_url = "host=%s port=5432 dbname=%s user=%s" % (
        HOSTS["db"], re.search(r"dbname=(\S+)", pg.url).group(1), user.group(1) if user else "postgres")

    common = ["database.url=" + db_url, "turn.auth-secret=" + TURN_SECRET, "net.workers=1",
              "log.level=info", "database.reconnect-max=500"]
    for i, h in enumerate(("r1", "r2", "r3")):
        ip = HOSTS[h]
        daemons[h] = Daemon(common + [
            "turn.listen=udp://{0}:3478, tcp://{0}:3478".format(ip),
            "turn.allow-peers=%s0/24" % NET, "usage.record=no",
            "fleet.register=yes", "fleet.node-name=" + h, "fleet.region=campus"],
            binary=in_namespace(tmp, NS[h], MEETLITED), timeout=60)
        daemons[h].wait_log("relay registered as " + h, 30)
    for h in ("c1", "c2"):
        daemons[h] = Daemon(common + [
            "control.listen=%s:8080" % HOSTS[h], "turn.listen=udp://127.0.0.1:3478",
            "auth.jwt-secret=" + JWT_SECRET, "auth.argon2-memory=1024", "auth.argon2-iterations=1",
            "database.migrations-dir=" + os.path.join(TOP_SRCDIR, "sql"),
            "signaling.node-id=ctl-" + h, "fleet.placement=meeting", "fleet.region=campus"],
            binary=in_namespace(tmp, NS[h], MEETLITED), timeout=60)
    apis = {h: Api(8080, host=HOSTS[h]) for h in ("c1", "c2")}
    for h, a in apis.items():
        for _ in range(300):
            if a.get("/api/v1/health").status == 200:
                break
            time.sleep(0.1)
    t.ok(all(a.get("/api/v1/health").status == 200 for a in apis.values()),
         "both control nodes answer on the campus network and reach PostgreSQL over TCP")
    t.eq(pg.psql("SELECT string_agg(name, ',' ORDER BY name) FROM relay_nodes"), "r1,r2,r3",
         "the three relays registered through the db host")

    # ------------------------------------------------------------ three meetings of four
    meetings = []
    n = 0
    for k in range(3):
        people = []
        for i in range(4):
            n += 1
            api = apis["c1" if n % 2 else "c2"]
            tok = api.user("p%d-%s@example.org" % (n, SUFFIX), name="P%d" % n)[0]
            people.append({"n": n, "tok": tok, "ctl": "c1" if n % 2 else "c2",
                           "site": "a" if i < 2 else "b"})
        mt = apis["c1"].meeting(people[0]["tok"], "Room %d" % k, max_participants=10)
        for p in people:
            j = apis[p["ctl"]].post("/api/v1/meetings/%s/join" % mt["id"], None, p["tok"]).json
            p.update(pid=j["participant_id"], token=j["signaling_token"], relay=j["relay"]["node"],
                     mid=mt["id"])
        meetings.append(people)
    nodes = [m[0]["relay"] for m in meetings]
    t.ok(all(len({p["relay"] for p in m}) == 1 for m in meetings),
         "each meeting's four joins (on both control nodes) name one relay", nodes)
    t.eq(sorted(nodes), ["r1", "r2", "r3"], "the three meetings are spread over the three relays")

    client = os.path.join(TOP_SRCDIR, "tests", "lib", "mlfleetclient.py")
    for m in meetings:
        for p in m:
            arg = json.dumps({"sig_url": "ws://%s:8080/api/v1/signaling" % HOSTS[p["ctl"]],
                              "token": p["token"], "pid": p["pid"], "duration": 150})
            proc = subprocess.Popen(["ip", "netns", "exec", NS["s" + p["site"]], PY,
                                     client, arg], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
            os.set_blocking(proc.stdout.fileno(), False)
            proc.evs, proc.person = [], p
            clients.append(proc)

    def poll():
        for c in clients:
            try:
                data = c.stdout.read()
            except (OSError, TypeError):
                data = None
            for line in (data or "").splitlines():
                if line.startswith("{"):
                    c.evs.append(json.loads(line))

    # every client allocates on its meeting's relay and hears the other three
    deadline = time.time() + 60
    while time.time() < deadline:
        poll()
        if all(any(e["ev"] == "allocated" for e in c.evs) for c in clients):
            break
        time.sleep(0.2)
    alloc_relays = [[e for e in c.evs if e["ev"] == "allocated"][-1:] for c in clients]
    t.ok(all(a for a in alloc_relays), "the twelve participants allocate over TCP through their "
         "NAT (UDP is dropped there)", [c.evs[-3:] for c in clients if not any(
             e["ev"] == "allocated" for e in c.evs)])
    time.sleep(5)  # the calls run

    victim = nodes[0]
    t0 = time.time()
    daemons[victim].proc.send_signal(signal.SIGKILL)
    daemons[victim].proc.wait(10)
    time.sleep(BOUND_S + 3)
    poll()
    affected = [c for c in clients if c.person["relay"] == victim]
    pushed = [[e for e in c.evs if e["ev"] == "pushed" and e["t"] > t0] for c in affected]
    moved = [[e for e in c.evs if e["ev"] == "allocated" and e["t"] > t0] for c in affected]
    t.ok(all(pushed) and all(p[0]["relay"] in ("r1", "r2", "r3") and p[0]["relay"] != victim
                             for p in pushed),
         "the four participants of the killed relay's meeting are told a live relay",
         [p[:1] for p in pushed])
    t.ok(all(m) and len({m[0]["relay"] for m in moved}) == 1,
         "and allocate there, all four on the same relay", [m[:1] for m in moved])
    t.diag("told after %s s, allocated after %s s" % (
        [round(p[0]["t"] - t0, 2) for p in pushed if p], [round(m[0]["t"] - t0, 2) for m in moved if m]))

    # ------------------------------------------------------------ revocations from either node
    time.sleep(2)
    revoked = []
    for k, via in ((1, "c1"), (2, "c2")):
        c = [x for x in clients if x.person is meetings[k][3]][0]
        cred = [e for e in c.evs if e["ev"] == "allocated"][-1]
        r = apis[via].post("/api/v1/meetings/%s/leave" % c.person["mid"], None, c.person["tok"])
        tl = time.time()
        live = [h for h in ("r1", "r2", "r3") if h != victim]
        refused = {}
        while time.time() < tl + REVOKE_S and len(refused) < len(live):
            for h in live:
                if h in refused:
                    continue
                tc = TurnClient((HOSTS[h], 3478), transport="udp", local=(NET + "250", 0),
                                timeout=0.3)
                try:
                    tc.login(cred["user"], cred["password"])
                    a = tc.allocate(expect_ok=False)
                    if a.error() == 401:
                        refused[h] = round(time.time() - tl, 3)
                except (TurnError, OSError, TimeoutError):
                    pass
                finally:
                    tc.close()
        revoked.append((via, tl, refused, c))
        t.ok(r.status == 200 and sorted(refused) == sorted(live),
             "a leave through %s: the credential is refused on every live relay within %.0f s %s"
             % (via, REVOKE_S, refused), r)
    time.sleep(1.5)

    # ------------------------------------------------------------ what the media did
    for c in clients:
        if c.poll() is None:
            c.send_signal(signal.SIGTERM)
    for c in clients:
        try:
            c.wait(20)
        except subprocess.TimeoutExpired:
            c.kill()
        os.set_blocking(c.stdout.fileno(), True)
        rest = c.stdout.read() or ""
        for line in rest.splitlines():
            if line.startswith("{"):
                c.evs.append(json.loads(line))
    summary = {c.person["pid"]: ([e for e in c.evs if e["ev"] == "summary"] or [{}])[-1].get("rx", {})
               for c in clients}
    slot0 = int(t0 * 10)
    worst, quiet_gap = 0.0, 0.0
    missing = []
    for mi, m in enumerate(meetings):
        for p in m:
            if any(p is c.person for _, _, _, c in revoked):
                continue
            rx = summary.get(p["pid"], {})
            for q in m:
                if q is p or any(q is c.person for _, _, _, c in revoked):
                    continue
                slots = rx.get(q["pid"], [])
                after = [s for s in slots if s > slot0 + 5]
                before = [s for s in slots if s <= slot0]
                if not before or not after:
                    missing.append((p["n"], q["n"], len(before), len(after)))
                    continue
                if mi == 0:
                    worst = max(worst, (after[0] - slot0) / 10.0)
                else:  # the longest silence around the kill
                    around = [s for s in slots if slot0 - 20 <= s <= slot0 + 100]
                    gaps = [(b - a) / 10.0 for a, b in zip(around, around[1:])]
                    quiet_gap = max([quiet_gap] + gaps)
    t.ok(not missing, "every participant heard every other before the kill and after it", missing)
    # a leaver's allocation is closed by its relay: its packets stop reaching the others
    for via, tl, _, c in revoked:
        x = c.person
        last = [max(summary.get(q["pid"], {}).get(x["pid"], [0])) for m in meetings
                for q in m if q["mid"] == x["mid"] and q is not x]
        t.ok(last and all(tl * 10 - 20 < s <= tl * 10 + 10 for s in last),
             "the participant who left through %s: its packets stop reaching the others within "
             "1 s (its allocation closed by its relay)" % via,
             [round(s / 10.0 - tl, 1) for s in last])
    print("# measured: a meeting whose relay was killed hears every participant again after "
          "%.1f s at worst (packets every 50 ms, 100 ms resolution)" % worst)
    t.ok(0 < worst <= BOUND_S, "every call of the killed relay recovers within %.0f s (worst %.1f s)"
         % (BOUND_S, worst))
    t.ok(quiet_gap < 2.0, "the meetings on the other relays go on (longest silence %.1f s)"
         % quiet_gap)
except Exception as e:  # noqa: BLE001 -- reported as a failed test, then cleaned up
    import traceback
    t.ok(False, "the fleet's network test ran", repr(e) + "\n" + traceback.format_exc())
finally:
    for c in clients:
        if c.poll() is None:
            c.kill()
            c.wait()
    for h, d in daemons.items():
        rc, log = d.stop()
        if d.proc.returncode != -9:
            t.ok(d.clean(), "%s stops cleanly" % h, log[-2000:])
    if fwd:
        fwd.kill()
        fwd.wait()
    if pg:
        pg.close()
    teardown()
    left = namespaces_left(SUFFIX)
    t.ok(not left, "every namespace of the run is deleted", left)
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(t.done())
