"""The per-participant TURN quota sized for a real meeting (issue #11): nine people in headless
Chromium (tests/browser/web_nine.mjs), relay-only, every one connected to the eight others. The
join hands out six TURN URIs (udp, tcp and tls, on 127.0.0.1 and ::1), so each browser holds up
to 6 x 8 = 48 allocations: twice the former fixed quota of 20. With turn.max-allocations-per-user
left at its default (0: derived), meetlited sizes it 2 x 6 x (9 - 1) = 96 from
control.max-participants = 9; this file checks that derivation (--dump-config), then that no
Allocate was refused: no 486 in the daemon's counters (admin /stats) or its log, and no ICE
candidate error in any browser."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import MEETLITED, Tap, free_port  # noqa: E402
from mladmin import make_cert  # noqa: E402
from mlbrowser import CHROMIUM, loopback_only, output_dir, run_browser_script, spki_pin  # noqa: E402
from mlcontrol import Api, ControlDaemon, Postgres, control_sets, migrate  # noqa: E402

ADMIN_TOKEN = "web-nine-admin-token-0123456789"
PEOPLE = 9
t = Tap()
tmp = tempfile.mkdtemp(prefix="ml-nine-")
cert, key = make_cert(tmp, "meetlite-nine", san="IP:127.0.0.1,IP:::1")
spki = spki_pin(cert)

pg = Postgres()
d = None
report = {}
try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "schema migrated", r.stderr)
    http_port, turn4, tls4 = free_port(), free_port(), free_port()
    turn6, tls6 = free_port(socket.AF_INET6, "::1"), free_port(socket.AF_INET6, "::1")
    admin_port = free_port()
    sets = ["turn.listen=udp://127.0.0.1:%d, tcp://127.0.0.1:%d, tls://127.0.0.1:%d, "
            "udp://[::1]:%d, tcp://[::1]:%d, tls://[::1]:%d" % (turn4, turn4, tls4, turn6, turn6, tls6),
            "turn.tls-cert=" + cert, "turn.tls-key=" + key, "turn.allow-peers=127.0.0.0/8, ::1",
            "control.max-participants=%d" % PEOPLE, "control.default-participants=%d" % PEOPLE,
            "admin.listen=127.0.0.1:%d" % admin_port, "admin.token=" + ADMIN_TOKEN, "net.workers=2"]
    extra = os.environ.get("WEB_NINE_EXTRA")  # e.g. turn.max-allocations-per-user=20, by hand
    if extra:
        sets.append(extra)

    dump = subprocess.run([MEETLITED, "--dump-config"] +
                          sum((["--set", s] for s in control_sets(pg.url, http_port, turn4, sets)), []),
                          capture_output=True, text=True)
    quota = [ln.split("=")[1].strip() for ln in dump.stdout.splitlines()
             if ln.startswith("max-allocations-per-user")]
    t.ok(quota == ["96"] or extra, "the derived quota: 2 x 6 TURN URIs x (9 - 1) peers = 96 (%s)" % quota,
         dump.stdout[-2000:] + dump.stderr[-2000:])

    d = ControlDaemon(pg.url, sets, http_port=http_port, turn_port=turn4)
    api = Api(d.http_port)
    people = []
    for i in range(PEOPLE):
        res = api.signup("p%d@example.org" % i, name="Person %d" % (i + 1))
        j = res.json or {}
        people.append({"name": "p%d" % (i + 1), "session": {"token": j.get("token"), "user": j.get("user"),
                                                            "expires_at": int(time.time()) + 3000}})
    t.ok(all(p["session"]["token"] for p in people), "nine accounts signed up")
    meeting = api.meeting(people[0]["session"]["token"], title="Nine", max_participants=PEOPLE)

    report = run_browser_script(t, "web_nine.mjs", {
        "base": "http://127.0.0.1:%d" % d.http_port, "chromium": CHROMIUM,
        "loopbackOnly": loopback_only(), "outdir": output_dir("web_nine"), "spki": spki,
        "code": meeting["code"], "people": people,
        "admin": {"url": "http://127.0.0.1:%d" % admin_port, "token": ADMIN_TOKEN}}, 480)
    t.diag("allocations per participant: %s" % json.dumps(report.get("allocations")))

    req = urllib.request.Request("http://127.0.0.1:%d/stats" % admin_port,
                                 headers={"Authorization": "Bearer " + ADMIN_TOKEN})
    stats = json.loads(urllib.request.urlopen(req, timeout=10).read())
    errors = stats["turn"]["error_responses"]
    t.ok(errors["486"] == 0 and errors["508"] == 0,
         "the relay answered no 486 (quota) and no 508 (capacity): %s" % json.dumps(errors))
    most = report.get("mostAllocations", 0)
    t.ok(20 < most <= 96, "the busiest participant held %d allocations at once: more than the former quota "
         "of 20, within the derived 96" % most)
finally:
    if d:
        rc, log = d.stop()
        t.ok("quota reached" not in log, "no Allocate was refused for the quota (log)",
             [ln for ln in log.splitlines() if "quota" in ln][:5])
        made = {}
        for m in re.finditer(r"allocated \w+ relay \S+ for (\S+) \(client", log):
            # a participant's credential is "<expiry>:<meeting tag>.<participant id>"; the lobby's
            # network check probes with one of no meeting ("<expiry>:<user id>"), not counted
            if "." in m.group(1):
                made[m.group(1)] = made.get(m.group(1), 0) + 1
        t.ok(len(made) == PEOPLE and min(made.values()) >= 6 * (PEOPLE - 1),
             "each participant made an allocation per TURN URI (6) and peer connection (8): %s"
             % sorted(made.values()))
        t.ok(d.clean(), "meetlited stops cleanly (no sanitizer report)", log[-3000:])
        d.close()
    pg.close()
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(t.done())
