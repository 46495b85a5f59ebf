"""The monitoring kit against a node with the control plane and a private PostgreSQL (issue #15,
item 6): the HTTP latency histogram counts each route class (the page from the file mount, the
API, sign-up and log-in, signaling from the upgrade to joined, the admin API); signaling closes
are counted by code (1000 from the client, 1006 lost, 4401 refused); /metrics passes promtool;
the alert rules pass `promtool check rules` and their unit tests (`promtool test rules`); the
Grafana dashboard parses, and every metric name it and the rules query is in a real scrape
taken with the read-only scrape token."""

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import TOP_SRCDIR, Tap  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, migrate  # noqa: E402
from mladmin import TOKEN, AdminApi, metric, promtool, tcp_port  # noqa: E402
from mlsignal import Sig, meeting, refused  # noqa: E402

t = Tap()
SCRAPE = "scrape-token-0123456789abcdef"
RULES = os.path.join(TOP_SRCDIR, "contrib", "prometheus", "meetlite-rules.yml")
RULE_TESTS = os.path.join(TOP_SRCDIR, "contrib", "prometheus", "meetlite-rules.test.yml")
DASHBOARD = os.path.join(TOP_SRCDIR, "contrib", "grafana", "meetlite.json")
# Names a query may use that no exporter writes: Prometheus's own per-target series.
SYNTHETIC = {"up"}
NAME_RE = re.compile(r"\b((?:meetlite|turn|stun|process)_[a-zA-Z0-9_:]*|up)\b(?!\s*\()")


def names_in(expr):
    return set(NAME_RE.findall(expr))


def scraped_names(text):
    """Every series name of the exposition: sample lines, and the _bucket/_sum/_count of each
    declared histogram and the name of every declared family (a family without samples yet)."""
    out = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            out.add(name)
            if kind == "histogram":
                out.update({name + "_bucket", name + "_sum", name + "_count"})
        elif line and not line.startswith("#"):
            out.add(re.split(r"[{ ]", line, 1)[0])
    return out


def promtool_run(*args):
    exe = shutil.which("promtool")
    if not exe:
        return 127, "promtool is not installed (Debian package prometheus, scripts/deps.sh)"
    r = subprocess.run([exe] + list(args), capture_output=True, text=True, timeout=120,
                       cwd=os.path.dirname(RULES))
    return r.returncode, r.stdout + r.stderr


# ------------------------------------------------------------ the files alone
rc, out = promtool_run("check", "rules", RULES)
t.ok(rc == 0 and "SUCCESS" in out, "promtool check rules accepts contrib/prometheus/meetlite-rules.yml", out)
rc, out = promtool_run("test", "rules", RULE_TESTS)
t.ok(rc == 0 and "SUCCESS" in out, "promtool test rules: the alerts' unit tests pass", out)
with open(RULE_TESTS) as f:
    tested = set(re.findall(r"alertname: (\w+)", f.read()))
t.ok(len(tested) >= 2, "the unit tests cover at least two alerts (%s)" % sorted(tested))
with open(RULES) as f:
    rules_text = f.read()
alerts = re.findall(r"- alert: (\w+)", rules_text)
for want in ("MeetliteInstanceDown", "MeetliteDatabaseDown", "MeetliteAllocationFailures",
             "MeetliteQuotaRejectionsHigh", "MeetliteHttp5xxHigh", "MeetliteFileDescriptorsNearLimit"):
    t.ok(want in alerts, "the rules have %s" % want)
rule_names = set()
for m in re.finditer(r"expr: (?:\|\n((?:\s{10,}.*\n)+)|(.*))", rules_text):
    rule_names |= names_in(m.group(1) or m.group(2))

with open(DASHBOARD) as f:
    dash = json.load(f)
exprs = []
for p in dash["panels"]:
    for tg in p.get("targets", []):
        exprs.append((p["title"], tg["expr"]))
for v in dash["templating"]["list"]:
    if v.get("type") == "query":
        exprs.append(("variable " + v["name"], v["definition"]))
titles = " ".join(p["title"] for p in dash["panels"]).lower()
for want in ("allocations", "bandwidth", "joins", "p50", "p99", "signaling", "closes", "database"):
    t.ok(want in titles, "the dashboard has a panel on %s" % want)
dash_names = set()
for _, e in exprs:
    dash_names |= names_in(e)
t.ok(len(dash_names) >= 15 and len(rule_names) >= 8,
     "names found in the dashboard (%d) and the rules (%d)" % (len(dash_names), len(rule_names)))

# ------------------------------------------------------------ a running node
pg = Postgres()
d = None
try:
    m = migrate(pg.url)
    t.ok(m.returncode == 0, "the schema is migrated", m.stderr[-2000:])
    admin_port = tcp_port()
    d = ControlDaemon(pg.url, ["admin.listen=127.0.0.1:%d" % admin_port, "admin.token=" + TOKEN,
                               "admin.metrics-token=" + SCRAPE])
    api = d.api
    scrape = AdminApi(admin_port, token=SCRAPE)

    # the page (lws's file mount) and a deep link, the API, sign-up and log-in (meeting())
    for path in ("/", "/index.html", "/m/abc-defg-hij"):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (d.http_port, path), timeout=10) as r:
            body = r.read()
        t.ok(r.status == 200 and body, "GET %s serves the page" % path)
    for _ in range(3):
        api.get("/api/v1/health")
    mid, people = meeting(api, 3, prefix="mon")
    r = api.post("/api/v1/auth/login", {"email": people[0].email, "password": "correct horse"})
    t.ok(r.status == 200, "a log-in", r)

    async def sessions():
        a = await Sig.open(d.http_port, people[0].sig_token)
        b = await Sig.open(d.http_port, people[1].sig_token)
        c = await Sig.open(d.http_port, people[2].sig_token)
        await a.close(1000)
        b.abort()
        code = await refused(d.http_port, "not-a-token")
        await c.close(1000)
        return code

    code = asyncio.run(sessions())
    t.ok(code and code[0] == 4401, "a bad signaling token is closed with 4401", code)

    def counts():
        text = scrape.get("/metrics").raw.decode()
        return text, {c: metric(text, 'meetlite_http_request_duration_seconds_count{class="%s"}' % c)
                      for c in ("page", "api", "auth", "signaling_upgrade", "admin")}

    deadline = time.time() + 10
    while True:
        text, n = counts()
        closes = {c: metric(text, 'meetlite_signaling_closes_total{code="%s"}' % c)
                  for c in ("1000", "1006", "4401")}
        if (closes["1006"] or time.time() > deadline) and closes["1000"] == 2:
            break
        time.sleep(0.2)
    text, n = counts()  # once more: the scrapes before are counted now
    t.ok(n["page"] and n["page"] >= 3, "the page class counted the file mount's answers (%s)" % n["page"])
    t.ok(n["api"] and n["api"] >= 3, "the api class counted the API's answers (%s)" % n["api"])
    t.ok(n["auth"] and n["auth"] >= 4, "the auth class counted three sign-ups and a log-in (%s)" % n["auth"])
    t.ok(n["signaling_upgrade"] and n["signaling_upgrade"] >= 3,
         "the signaling_upgrade class counted three sessions to joined (%s)" % n["signaling_upgrade"])
    t.ok(n["admin"] and n["admin"] >= 1, "the admin class counted the scrapes (%s)" % n["admin"])
    t.eq(closes["1000"], 2.0, "two signaling sessions closed by their clients: code 1000 counted twice")
    t.eq(closes["1006"], 1.0, "one session lost without a close frame: code 1006")
    t.eq(closes["4401"], 1.0, "one connection refused for its token: code 4401")
    t.ok("# TYPE meetlite_signaling_closes_total counter" in text, "the closes are a typed counter")
    pt = promtool(text)
    t.ok(pt[0] == 0, "promtool check metrics accepts the control plane's /metrics", pt[1])
    s = AdminApi(admin_port).get("/stats").json
    t.ok(s["control"]["websocket_closes"].get("1000") == 2, "/stats has the closes by code",
         s["control"].get("websocket_closes"))

    have = scraped_names(text)
    missing = sorted(n for n in dash_names - SYNTHETIC if n not in have)
    t.eq(missing, [], "every metric the dashboard queries is in the scrape")
    missing = sorted(n for n in rule_names - SYNTHETIC if n not in have)
    t.eq(missing, [], "every metric the alert rules query is in the scrape")
    t.ok(SCRAPE not in d.log() and TOKEN not in d.log(), "no token in the log")
    t.ok(d.clean(), "the daemon stops cleanly", d.log()[-3000:])
except Exception:
    if d:
        sys.stderr.write(d.log()[-6000:])
    raise
finally:
    if d:
        d.close()
    pg.close()
t.done()
