"""The meeting client on a 390x844 touch viewport, and its accessibility
(tests/browser/web_mobile.mjs): layout (no horizontal overflow, controls on the screen, touch
targets of 44 px) and an axe-core audit with no serious or critical violation, signed out, in
the lobby and in the call with its panels open. Screenshots go to tests/output/web_mobile
under the build tree."""

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
                      "loopbackOnly": loopback_only(), "outdir": output_dir("web_mobile")})
    run = subprocess.run(["timeout", "300", "node", "web_mobile.mjs", arg], cwd=node_dir(),
                         capture_output=True, text=True)
    for line in run.stdout.splitlines():
        if line.startswith("{"):
            report = json.loads(line)
    t.ok(run.returncode == 0 and report.get("checks"), "the browser run finished",
         run.stdout[-3000:] + run.stderr[-3000:])
    for c in report.get("checks", []):
        t.ok(c["ok"], c["name"], json.dumps(c.get("detail"))[:3000] if not c["ok"] else None)
    if any(not c["ok"] for c in report.get("checks", [])):
        for who in ("ann", "mo"):
            t.diag("---- %s's client log\n%s" % (who, report.get("log_" + who, "")[-4000:]))
    for k in sorted(report):
        if k.startswith("axe_"):
            t.diag("axe-core, %s (all impacts): %s" % (k[4:], ", ".join(report[k]) or "none"))
finally:
    if d:
        rc, log = d.stop()
        t.ok(d.clean(), "meetlited stops cleanly (no sanitizer report)", log[-3000:])
        d.close()
    pg.close()
sys.exit(t.done())
