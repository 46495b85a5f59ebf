"""Screen sharing in the browser client (tests/browser/web_screen.mjs): three participants in
headless Chromium (a canvas's captureStream stands for getDisplayMedia's screen), relay-only through
meetlited's own TURN. The browser script reports its checks; this file prints them as TAP and
adds what PostgreSQL recorded (the meeting's screen_share). Screenshots go to
tests/output/web_screen under the build tree."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Tap  # noqa: E402
from mlbrowser import CHROMIUM, loopback_only, node_dir, output_dir  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, migrate  # noqa: E402

t = Tap()
pg = Postgres()
d = None
report = {}
try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "schema migrated", r.stderr)
    d = ControlDaemon(pg.url, ["turn.allow-peers=127.0.0.0/8"])
    arg = json.dumps({"base": "http://127.0.0.1:%d" % d.http_port, "chromium": CHROMIUM,
                      "loopbackOnly": loopback_only(), "outdir": output_dir("web_screen")})
    run = subprocess.run(["timeout", "480", "node", "web_screen.mjs", arg], cwd=node_dir(),
                         capture_output=True, text=True)
    for line in run.stdout.splitlines():
        if line.startswith("{"):
            report = json.loads(line)
    t.diag(run.stderr[-6000:])
    t.ok(run.returncode == 0 and report.get("checks"), "the browser run finished",
         run.stdout[-3000:] + run.stderr[-3000:])
    for c in report.get("checks", []):
        t.ok(c["ok"], c["name"], json.dumps(c.get("detail"))[:3000] if not c["ok"] else None)
    if any(not c["ok"] for c in report.get("checks", [])):
        for who in ("ann", "ben", "cat"):
            t.diag("---- %s's client log\n%s" % (who, report.get("log_" + who, "")[-4000:]))
            t.diag("---- %s's client log at the failure\n%s" % (who, report.get("early_" + who, "")[-6000:]))
    if report.get("code"):
        t.eq(pg.psql("SELECT screen_share FROM meetings WHERE code = '%s'" % report["code"]),
             "admins", "PostgreSQL: the meeting's screen sharing is ADMIN-only")
finally:
    if d:
        rc, log = d.stop()
        t.ok(d.clean(), "meetlited stops cleanly (no sanitizer report)", log[-3000:])
        d.close()
    pg.close()
sys.exit(t.done())
