"""Raised hands and reactions in the browser client (tests/browser/web_hands.mjs): three
participants in headless Chromium, relay-only through meetlited's own TURN. The browser script
reports its checks; this file prints them as TAP and adds what PostgreSQL recorded (every hand
down at the end). Screenshots go to tests/output/web_hands under the build tree."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Tap  # noqa: E402
from mlbrowser import CHROMIUM, loopback_only, output_dir, run_browser_script  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, migrate  # noqa: E402

t = Tap()
pg = Postgres()
d = None
report = {}
try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "schema migrated", r.stderr)
    d = ControlDaemon(pg.url, ["turn.allow-peers=127.0.0.0/8"])
    report = run_browser_script(t, "web_hands.mjs", {
        "base": "http://127.0.0.1:%d" % d.http_port, "chromium": CHROMIUM,
        "loopbackOnly": loopback_only(), "outdir": output_dir("web_hands")}, 300, people=("ann", "ben", "cat"))
    pids = report.get("pids", {})
    if pids.get("ben") and pids.get("cat"):
        t.eq(pg.psql("SELECT count(*) FROM participants WHERE id IN ('%s', '%s') AND "
                     "hand_raised_at IS NOT NULL" % (pids["ben"], pids["cat"])), "0",
             "PostgreSQL: every hand is down at the end")
finally:
    if d:
        d.stop_checked(t)
    pg.close()
sys.exit(t.done())
