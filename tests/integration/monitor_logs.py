"""The monitoring kit on a TURN-only node (issue #15, item 6): the read-only scrape token
(admin.metrics-token) opens GET /metrics and nothing else (403 with the JSON error body), rotates
on SIGHUP and never reaches the log; coturn's untyped names keep their values beside typed
_total counters (promtool check metrics); the HTTP latency histogram counts the admin's answers;
the log level changes at run time through SIGHUP and through meetlite-admin, debug lines
included, in any build; log.format = json writes one object a line (the access log's fields as
members); with JOURNAL_STREAM naming stderr every line carries the journal's <N> prefix."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mltest  # noqa: E402
from mltest import MEETLITED, Daemon, Tap, free_port  # noqa: E402
from mladmin import TOKEN, AdminApi, Pair, admin_sets, cli, metric, promtool, tcp_port  # noqa: E402

t = Tap()
SCRAPE = "scrape-token-0123456789abcdef"
SCRAPE2 = "scrape-token-rotated-9876543210"
SECRET = "cfg-secret-0123456789"

tmp = mltest.scratch_dir("mlmon-")
conf = os.path.join(tmp, "meetlite.conf")


def write_conf(level, scrape, fmt="text"):
    with open(conf, "w") as f:
        f.write("[log]\nlevel = %s\nformat = %s\n[admin]\nmetrics-token = %s\n" % (level, fmt, scrape))


def rest_cred(ident):
    import base64
    import hashlib
    import hmac
    user = "%d:%s" % (int(time.time()) + 600, ident)
    pw = base64.b64encode(hmac.new(SECRET.encode(), user.encode(), hashlib.sha1).digest()).decode()
    return user, pw


def junk(port):
    """A datagram that is neither STUN nor ChannelData: the relay drops it with a debug line."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"\xffnot stun at all", ("127.0.0.1", port))


def wait_for(pred, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


# ------------------------------------------------------------ configurations refused
r = subprocess.run([MEETLITED, "--check-config", "--set", "admin.metrics-token=" + SCRAPE],
                   capture_output=True, text=True)
t.ok(r.returncode != 0 and "admin.metrics-token needs the admin listener" in r.stderr,
     "a scrape token without admin.token is refused (it would open nothing)", r.stdout + r.stderr)
r = subprocess.run([MEETLITED, "--check-config", "--set", "admin.token=" + TOKEN,
                    "--set", "admin.metrics-token=%s, %s" % (SCRAPE, TOKEN)], capture_output=True, text=True)
t.ok(r.returncode != 0 and "in both admin.token and admin.metrics-token" in r.stderr,
     "a token in both lists is refused", r.stdout + r.stderr)
t.ok(TOKEN not in r.stderr and SCRAPE not in r.stderr, "the refusal names no token")

write_conf("info", SCRAPE)
admin_port, turn_port = tcp_port(), free_port()
sets = [s for s in admin_sets(admin_port, turn_port) if not s.startswith("log.level")]
d = Daemon(sets + ["turn.auth-secret=" + SECRET], config=conf, timeout=60)
api = AdminApi(admin_port)
scrape = AdminApi(admin_port, token=SCRAPE)
p = None
try:
    # ------------------------------------------------------------ the scrape token
    r = scrape.get("/metrics")
    t.ok(r.status == 200 and "# TYPE turn_total_allocations gauge" in r.raw.decode(),
         "the scrape token opens GET /metrics", r)
    for method, path, body in [("GET", "/stats", None), ("GET", "/v1/log-level", None),
                               ("PUT", "/v1/log-level", {"level": "debug"}),
                               ("PUT", "/v1/drain", {"draining": True}),
                               ("GET", "/v1/turn/allocations", None),
                               ("POST", "/v1/turn/credentials", {"id": "x"}),
                               ("GET", "/no/such/path", None), ("POST", "/metrics", None)]:
        r = scrape.call(method, path, body=body)
        t.ok(r.status == 403 and r.code() == "forbidden" and r.json["error"]["message"],
             "the scrape token on %s %s: 403 forbidden with the JSON error body" % (method, path), r)
    r = api.get("/v1/drain")
    t.ok(r.status == 200 and r.json["draining"] is False, "the refused PUT /v1/drain changed nothing", r)
    r = api.get("/v1/log-level")
    t.ok(r.status == 200 and r.json["level"] == "info", "the refused PUT /v1/log-level changed nothing", r)
    r = AdminApi(admin_port, token="x" * len(SCRAPE)).get("/metrics")
    t.ok(r.status == 401 and r.code() == "invalid_token", "a wrong scrape token: 401 invalid_token", r)
    r = scrape.get("/metrics", token=None)
    t.ok(r.status == 401 and r.code() == "unauthenticated", "no token at all: 401 unauthenticated", r)
    r = api.get("/metrics")
    t.ok(r.status == 200, "an admin token still opens /metrics", r)
    r = api.get("/stats")
    t.ok(r.status == 200, "an admin token still opens /stats", r)

    # rotation on SIGHUP: the new token in, the old one out, nothing else changed
    write_conf("info", SCRAPE2)
    d.signal(signal.SIGHUP)
    t.ok(wait_for(lambda: AdminApi(admin_port, token=SCRAPE2).get("/metrics").status == 200),
         "SIGHUP: the new scrape token opens /metrics")
    r = scrape.get("/metrics")
    t.ok(r.status == 401, "SIGHUP: the old scrape token is refused", r)
    scrape = AdminApi(admin_port, token=SCRAPE2)
    t.ok(SCRAPE not in d.log() and SCRAPE2 not in d.log() and TOKEN not in d.log(),
         "no token in the log")

    # ------------------------------------------------------------ typed counters beside coturn's
    p = Pair(("127.0.0.1", turn_port), rest_cred("mon.pa"), rest_cred("mon.pb"))
    t.ok(p.once(b"first"), "two allocations relay to each other")
    for _ in range(20):
        p.once(b"x" * 100)
    text = scrape.get("/metrics").raw.decode()
    pt = promtool(text)
    t.ok(pt[0] == 0, "promtool check metrics accepts /metrics with the typed counters", pt[1])
    for name, kind in [("turn_total_traffic_rcvp", "untyped"), ("turn_total_traffic_sentb", "untyped"),
                       ("stun_binding_request", "untyped"), ("turn_udp_recvmmsg_calls", "untyped"),
                       ("meetlite_turn_relayed_packets_total", "counter"),
                       ("meetlite_turn_relayed_bytes_total", "counter"),
                       ("meetlite_stun_binding_requests_total", "counter"),
                       ("meetlite_turn_unauthenticated_dropped_total", "counter"),
                       ("meetlite_udp_recvmmsg_calls_total", "counter"),
                       ("meetlite_udp_recvmmsg_packets_total", "counter"),
                       ("meetlite_http_request_duration_seconds", "histogram")]:
        t.ok("# TYPE %s %s\n" % (name, kind) in text, "metrics: %s is %s" % (name, kind))
    rcvp = metric(text, "turn_total_traffic_rcvp")
    t.ok(rcvp and rcvp >= 21 and
         metric(text, 'meetlite_turn_relayed_packets_total{direction="to_peers"}') == rcvp,
         "the typed packet counter equals coturn's turn_total_traffic_rcvp (%s)" % rcvp)
    t.eq(metric(text, 'meetlite_turn_relayed_bytes_total{direction="to_clients"}'),
         metric(text, "turn_total_traffic_sentb"), "the typed byte counter equals turn_total_traffic_sentb")
    t.eq(metric(text, "meetlite_udp_recvmmsg_calls_total"), metric(text, "turn_udp_recvmmsg_calls"),
         "recvmmsg calls: typed and coturn's agree")
    n_admin = metric(text, 'meetlite_http_request_duration_seconds_count{class="admin"}')
    t.ok(n_admin and n_admin >= 10, "the latency histogram counted the admin's answers (%s)" % n_admin)
    t.eq(metric(text, 'meetlite_http_request_duration_seconds_bucket{class="admin",le="+Inf"}'), n_admin,
         "the +Inf bucket holds every admin answer")
    s = api.get("/stats").json
    t.ok(sum(s["http"]["latency"]["admin"].values()) >= n_admin,
         "/stats has the same histogram (http.latency.admin)", s.get("http"))

    # ------------------------------------------------------------ the log level at run time
    junk(turn_port)
    time.sleep(0.3)
    t.ok("dropping 16 bytes" not in d.log(), "at info no debug line is written")
    rc, out, err = cli("-u", "http://127.0.0.1:%d" % admin_port, "log-level", "debug")
    t.ok(rc == 0 and out.strip() == "log level: debug", "meetlite-admin log-level debug", out + err)
    junk(turn_port)
    t.ok(wait_for(lambda: "dropping 16 bytes from 127.0.0.1" in d.log()),
         "after log-level debug the relay's debug line is written (every build has them)")
    write_conf("notice", SCRAPE2)
    d.signal(signal.SIGHUP)
    t.ok(wait_for(lambda: api.get("/v1/log-level").json["level"] == "notice"),
         "SIGHUP with log.level = notice: the level is notice")
    mark = len(d.log())
    junk(turn_port)
    api.get("/stats")
    time.sleep(0.3)
    t.ok("dropping 16 bytes" not in d.log()[mark:] and "GET /stats" not in d.log()[mark:],
         "at notice neither debug lines nor the access log are written")

    # ------------------------------------------------------------ log.format = json, on SIGHUP
    write_conf("info", SCRAPE2, fmt="json")
    d.signal(signal.SIGHUP)
    t.ok(wait_for(lambda: api.get("/v1/log-level").json["level"] == "info"), "SIGHUP: back to info")
    mark = len(d.log())
    api.get("/stats", headers={"X-Request-Id": "req-mon-1"})
    t.ok(wait_for(lambda: "GET /stats" in d.log()[mark:]), "the access log line is written")
    lines = [ln for ln in d.log()[mark:].splitlines() if ln.strip()]
    objs = []
    for ln in lines:
        try:
            objs.append(json.loads(ln))
        except ValueError:
            objs.append(None)
    t.ok(lines and all(o is not None for o in objs), "log.format = json: every line is one JSON object",
         lines[:5])
    acc = [o for o in objs if o and o.get("path") == "/stats"]
    t.ok(acc and all(k in acc[0] for k in ("ts", "level", "subsystem", "msg", "thread", "pid")),
         "a JSON line has ts, level, subsystem, msg, thread, pid", acc[:1])
    t.ok(acc and acc[0]["method"] == "GET" and acc[0]["status"] == 200 and acc[0]["peer"] == "127.0.0.1"
         and isinstance(acc[0]["duration_us"], int) and acc[0]["subsystem"] == "admin"
         and acc[0]["level"] == "info", "the access log's fields are members of their own", acc[:1])
    t.ok(acc and acc[0]["ts"].endswith("Z") and "T" in acc[0]["ts"], "ts is UTC ISO 8601", acc[:1])
    p.close()
    p = None
    t.ok(d.clean(), "the daemon stops cleanly", d.log()[-3000:])
finally:
    if p:
        p.close()
    d.close()

# ------------------------------------------------------------ the journal's priority prefixes
# stderr is a file whose device and inode JOURNAL_STREAM names, as systemd's would; a second run
# with a JOURNAL_STREAM naming something else (a child whose stderr was redirected) has none.
for matching in (True, False):
    logpath = os.path.join(tmp, "journal-%d.log" % matching)
    port2, aport2 = free_port(), tcp_port()
    with open(logpath, "w") as lf:
        st = os.fstat(lf.fileno())
        env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino + (0 if matching else 1)))
        proc = subprocess.Popen([MEETLITED, "--set", "turn.listen=udp://127.0.0.1:%d" % port2,
                                 "--set", "admin.listen=127.0.0.1:%d" % aport2, "--set", "admin.token=" + TOKEN,
                                 "--set", "log.level=info"], stdout=lf, stderr=subprocess.STDOUT, env=env)
    try:
        ok = wait_for(lambda: "listening on udp" in open(logpath).read(), 30)
        AdminApi(aport2).get("/nope")
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    text = open(logpath).read()
    lines = [ln for ln in text.splitlines() if ln and "==" not in ln]
    if matching:
        t.ok(ok and lines and all(ln[0] == "<" and ln[2] == ">" for ln in lines),
             "stderr is the journal: every line starts with <N>", lines[:4])
        t.ok(any(ln.startswith("<6>") and " info " in ln for ln in lines) and
             any(ln.startswith("<5>") and " notice " in ln for ln in lines),
             "<6> for info, <5> for notice (sd-daemon's numbers)", lines[:6])
    else:
        t.ok(ok and lines and not any(ln.startswith("<") for ln in lines),
             "JOURNAL_STREAM naming another stream: no prefixes", lines[:4])
t.done()
