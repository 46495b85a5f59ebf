"""The browser meeting client in Firefox (tests/browser/web_firefox.mjs): Fay in Firefox ESR
(puppeteer-core over WebDriver BiDi) hosts a meeting that Ann and Ben join from Chromium
(playwright-core), all three relay-only through meetlited's own TURN (turn.allow-peers lets
loopback peers through). The TURN server listens as a dual-stack one does, on 127.0.0.1 and
::1, UDP and TCP: the join hands out six STUN/TURN URIs, which made Firefox log a page error
("five or more STUN/TURN servers") until the client left out the stun: URIs it does not need. The browser script reports its checks; this file prints them as TAP,
stops any browser the script left behind, and adds what PostgreSQL recorded: three
participants and the meeting ended. Screenshots go to tests/output/web_firefox."""

import json
import os
import socket
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Tap, free_port  # noqa: E402
from mlbrowser import CHROMIUM, FIREFOX, loopback_only, output_dir, run_browser_script  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, migrate  # noqa: E402



def dual_stack_port():
    """A port free for UDP and TCP on 127.0.0.1 and on ::1."""
    for _ in range(100):
        p = free_port()
        ok = True
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            s = socket.socket(socket.AF_INET6, kind)
            try:
                s.bind(("::1", p))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return p
    raise RuntimeError("no port free on both loopback addresses")


t = Tap()
pg = Postgres()
d = None
report = {}
pid_file = tempfile.NamedTemporaryFile(prefix="ml-web-firefox-", suffix=".pids", delete=False).name
try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "schema migrated", r.stderr)
    tp = dual_stack_port()
    # Allocations a participant may hold: Firefox, when it offers, allocates for the RTCP
    # component too and keeps that allocation (it ignores rtcpMuxPolicy "require"), so two per
    # TURN URI; four URIs (udp and tcp, IPv4 and IPv6); two peers; and during the renewal's ICE
    # restart the old generation's allocations until the new one is in use: 2 x 4 x 2 x 2 = 32.
    # (The default, 20, is for issue 11 item 4 to size; with it Firefox's renewal gets 486.)
    d = ControlDaemon(pg.url, ["turn.listen=udp://127.0.0.1:%d, tcp://127.0.0.1:%d, udp://[::1]:%d, tcp://[::1]:%d"
                               % (tp, tp, tp, tp), "turn.allow-peers=127.0.0.0/8,::1/128",
                               "turn.max-allocations-per-user=32"], turn_port=tp)
    base = "http://127.0.0.1:%d" % d.http_port
    report = run_browser_script(t, "web_firefox.mjs", {
        "base": base, "chromium": CHROMIUM, "firefox": FIREFOX, "loopbackOnly": loopback_only(),
        "outdir": output_dir("web_firefox"), "pidFile": pid_file}, 200, people=("fay", "ann", "ben"),
        pid_file=pid_file, closed_check="Firefox was closed by the script (none left to stop)")
    t.diag("codecs received (per peer): %s" % json.dumps(report.get("codecs")))
    t.diag("who offers to whom: %s" % json.dumps(report.get("offers")))

    code = report.get("code", "")
    if code:
        t.eq(pg.psql("SELECT status FROM meetings WHERE code = '%s'" % code), "ENDED",
             "PostgreSQL: the meeting Firefox ended is ENDED")
        t.eq(pg.psql("SELECT count(*) FROM participants WHERE meeting_id = "
                     "(SELECT id FROM meetings WHERE code = '%s')" % code), "3",
             "PostgreSQL: three participants were in it")
finally:
    if d:
        d.stop_checked(t)
    pg.close()
    os.unlink(pid_file)

sys.exit(t.done())
