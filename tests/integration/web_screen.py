"""Screen sharing in the browser client (tests/browser/web_screen.mjs): three participants in
headless Chromium (a canvas's captureStream stands for getDisplayMedia's screen), relay-only through
meetlited's own TURN. The browser script reports its checks; this file prints them as TAP and
adds what PostgreSQL recorded (the meeting's screen_share). Screenshots go to
tests/output/web_screen under the build tree."""

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
    report = run_browser_script(t, "web_screen.mjs", {
        "base": "http://127.0.0.1:%d" % d.http_port, "chromium": CHROMIUM,
        "loopbackOnly": loopback_only(), "outdir": output_dir("web_screen")}, 480,
        people=("ann", "ben", "cat"), stderr_tail=6000)
    if any(not c["ok"] for c in report.get("checks", [])):
        for who in ("ann", "ben", "cat"):
            t.diag("---- %s's client log at the failure\n%s" % (who, report.get("early_" + who, "")[-6000:]))
    if report.get("code"):
        t.eq(pg.psql("SELECT screen_share FROM meetings WHERE code = '%s'" % report["code"]),
             "admins", "PostgreSQL: the meeting's screen sharing is ADMIN-only")
finally:
    if d:
        d.stop_checked(t)
    pg.close()
sys.exit(t.done())
