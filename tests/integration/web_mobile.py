"""The meeting client on a 390x844 touch viewport, and its accessibility
(tests/browser/web_mobile.mjs): layout (no horizontal overflow, controls on the screen, touch
targets of 44 px) and an axe-core audit with no serious or critical violation, signed out, in
the lobby and in the call with its panels open. Screenshots go to tests/output/web_mobile
under the build tree."""

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
    report = run_browser_script(t, "web_mobile.mjs", {
        "base": "http://127.0.0.1:%d" % d.http_port, "chromium": CHROMIUM,
        "loopbackOnly": loopback_only(), "outdir": output_dir("web_mobile")}, 300, people=("ann", "mo"))
    for k in sorted(report):
        if k.startswith("axe_"):
            t.diag("axe-core, %s (all impacts): %s" % (k[4:], ", ".join(report[k]) or "none"))
finally:
    if d:
        d.stop_checked(t)
    pg.close()
sys.exit(t.done())
