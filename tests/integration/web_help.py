"""The Help panel of the browser client (issue #18) in headless Chromium
(tests/browser/web_help.mjs) against meetlited with the starter knowledge base: asked from the
dashboard with the keyboard and from the control bar in a call, answers with sources, an
article opened, the page's context sent. Here: what PostgreSQL recorded of the questions (the
account and the outcome, nothing of the context). Screenshots go to tests/output/web_help."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Tap  # noqa: E402
from mlbrowser import CHROMIUM, loopback_only, output_dir, run_browser_script  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, migrate  # noqa: E402

t = Tap()
pg = Postgres()
d = None
try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "schema migrated", r.stderr)
    d = ControlDaemon(pg.url, ["turn.allow-peers=127.0.0.0/8"])
    run_browser_script(t, "web_help.mjs", {
        "base": "http://127.0.0.1:%d" % d.http_port, "chromium": CHROMIUM,
        "loopbackOnly": loopback_only(), "outdir": output_dir("web_help")}, 240)
    rows = pg.psql("SELECT q.question || '|' || q.answered FROM kb_questions q JOIN users u "
                   "ON u.id = q.account_id WHERE u.email = 'hana@example.org' ORDER BY q.id").splitlines()
    t.eq(rows, ["my camera is black|true", "how do I bake sourdough bread|false",
                "it says connecting forever|true"],
         "PostgreSQL: the three questions with her account and their outcome")
finally:
    if d:
        d.stop_checked(t)
    pg.close()

sys.exit(t.done())
