"""The Help panel of the browser client (issue #18) in headless Chromium
(tests/browser/web_help.mjs) against meetlited with the starter knowledge base: asked from the
dashboard with the keyboard and from the control bar in a call, answers with sources, an
article opened, the page's context sent. Here: what PostgreSQL recorded of the questions (the
account and the outcome, nothing of the context). Screenshots go to tests/output/web_help."""

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
try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "schema migrated", r.stderr)
    d = ControlDaemon(pg.url, ["turn.allow-peers=127.0.0.0/8"])
    arg = json.dumps({"base": "http://127.0.0.1:%d" % d.http_port, "chromium": CHROMIUM,
                      "loopbackOnly": loopback_only(), "outdir": output_dir("web_help")})
    run = subprocess.run(["timeout", "240", "node", "web_help.mjs", arg], cwd=node_dir(),
                         capture_output=True, text=True)
    report = {}
    for line in run.stdout.splitlines():
        if line.startswith("{"):
            report = json.loads(line)
    t.ok(run.returncode == 0 and report.get("checks"), "the browser run finished",
         run.stdout[-3000:] + run.stderr[-3000:])
    for c in report.get("checks", []):
        t.ok(c["ok"], c["name"], json.dumps(c.get("detail"))[:3000] if not c["ok"] else None)
    rows = pg.psql("SELECT q.question || '|' || q.answered FROM kb_questions q JOIN users u "
                   "ON u.id = q.account_id WHERE u.email = 'hana@example.org' ORDER BY q.id").splitlines()
    t.eq(rows, ["my camera is black|true", "how do I bake sourdough bread|false",
                "it says connecting forever|true"],
         "PostgreSQL: the three questions with her account and their outcome")
finally:
    if d:
        rc, log = d.stop()
        t.ok(d.clean(), "meetlited stops cleanly (no sanitizer report)", log[-3000:])
        d.close()
    pg.close()

sys.exit(t.done())
