"""Failover with a browser (issue #16, item 3; tests/browser/web_fleet.mjs): three relays
registered in PostgreSQL, each with a relay port range of its own, and a control plane that
places by meeting, with the fleet's default timings (heartbeat 1 s, node timeout 3 s). Two
Chromium participants relay-only on their meeting's relay; the relay is killed with SIGKILL and
the media must come back over another relay within 10 s, without a reload. The time is printed
(docs/fleet.md quotes it)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Tap  # noqa: E402
from mlbrowser import CHROMIUM, loopback_only, output_dir, run_browser_script  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, migrate  # noqa: E402
from mlfleet import Relay  # noqa: E402

t = Tap()
pg = Postgres()
relays = {}
d = None
report = {}
try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "schema migrated", r.stderr)
    ports = {}
    for i, n in enumerate(("campus-a", "campus-b", "campus-c")):
        lo = 43000 + 200 * i
        ports[n] = [lo, lo + 199]
        relays[n] = Relay(pg.url, n, "campus", extra=["turn.relay-ports=%d-%d" % (lo, lo + 199)])
    d = ControlDaemon(pg.url, ["turn.allow-peers=127.0.0.0/8", "fleet.placement=meeting",
                               "fleet.region=campus"])
    # each client's log's tail (what it did from the kill on) goes to the diagnostics, whatever
    # the outcome
    report = run_browser_script(t, "web_fleet.mjs", {
        "base": "http://127.0.0.1:%d" % d.http_port, "chromium": CHROMIUM,
        "loopbackOnly": loopback_only(), "outdir": output_dir("web_fleet"),
        "relays": {n: {"pid": r.proc.pid, "ports": ports[n]} for n, r in relays.items()}}, 300,
        people=("ann", "ben"), logs="always", log_tail=2500)
    print("# measured: after SIGKILL of the meeting's relay (%s): told over signaling %s ms, "
          "selected pair on the new relay %s ms, 5 more frames decoded %s ms"
          % (report.get("killed"), report.get("toldMs"), report.get("switchedMs"),
             report.get("recoveryMs")))
    killed = report.get("killed")
    if killed in relays:
        relays[killed].proc.wait(10)
        t.ok(relays[killed].proc.returncode == -9, "the meeting's relay was killed (SIGKILL)")
finally:
    if d:
        d.stop_checked(t, "the control plane")
    for n, r in relays.items():
        if n != report.get("killed"):
            t.ok(r.clean(), "relay %s stops cleanly" % n, r.log()[-2000:])
    pg.close()
t.done()
