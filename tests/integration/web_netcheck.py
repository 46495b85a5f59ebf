"""The network check before joining and the paths in the roster (issue #14, item 4), end to end
in headless Chromium (tests/browser/web_netcheck.mjs) against two meetlited nodes on one private
PostgreSQL: "good" relays over UDP, TCP and TLS on loopback (a self-signed certificate pinned
in Chromium); "blocked" hands out iceServers that name closed ports. The browser script reports
its checks; this file prints them as TAP and adds what PostgreSQL recorded: the check's verdict
stored with each join, and the probe credentials of no meeting. Screenshots go to
tests/output/web_netcheck under the build tree."""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Tap, free_port  # noqa: E402
from mladmin import make_cert  # noqa: E402
from mlbrowser import CHROMIUM, loopback_only, output_dir, run_browser_script, spki_pin  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, migrate  # noqa: E402

t = Tap()
pg = Postgres()
tmp = tempfile.mkdtemp(prefix="ml-netcheck-")
daemons = []
report = {}
try:
    cert, key = make_cert(tmp, "localhost")
    spki = spki_pin(cert)

    r = migrate(pg.url)
    t.ok(r.returncode == 0, "schema migrated", r.stderr)
    port, tport = free_port(), free_port()
    good = ControlDaemon(pg.url, [
        "turn.listen=udp://127.0.0.1:%d, tcp://127.0.0.1:%d, tls://127.0.0.1:%d" % (port, port, tport),
        "turn.tls-cert=" + cert, "turn.tls-key=" + key, "turn.allow-peers=127.0.0.0/8",
        "control.turn-uris=stun:127.0.0.1:%d, turn:127.0.0.1:%d?transport=udp, "
        "turn:127.0.0.1:%d?transport=tcp, turns:127.0.0.1:%d?transport=tcp" % (port, port, port, tport)],
        turn_port=port)
    daemons.append(good)
    closed_udp, closed_tls = free_port(), free_port()  # nothing listens on them
    blocked = ControlDaemon(pg.url, [
        "turn.allow-peers=127.0.0.0/8",
        "control.turn-uris=turn:127.0.0.1:%d?transport=udp, turn:127.0.0.1:%d?transport=tcp, "
        "turns:127.0.0.1:%d?transport=tcp" % (closed_udp, closed_udp, closed_tls)])
    daemons.append(blocked)

    report = run_browser_script(t, "web_netcheck.mjs", {
        "base": "http://127.0.0.1:%d" % good.http_port,
        "blocked": "http://127.0.0.1:%d" % blocked.http_port,
        "chromium": CHROMIUM, "loopbackOnly": loopback_only(), "spki": spki,
        "outdir": output_dir("web_netcheck")}, 240, people=("ann", "ben", "cat", "dan"))

    pids = report.get("pids", {})
    if pids.get("ben") and pids.get("dan"):
        t.eq(pg.psql("SELECT network FROM participants WHERE id = '%s'" % pids["ben"]), "udp",
             "PostgreSQL: Ben's join stored his check's verdict (udp)")
        t.eq(pg.psql("SELECT network FROM participants WHERE id = '%s'" % pids["dan"]), "none",
             "PostgreSQL: Dan's join stored his (none)")
        n = pg.psql("SELECT count(*) FROM turn_credentials c JOIN users u ON u.id = c.user_id "
                    "WHERE u.email = 'dan@example.org' AND c.participant_id IS NULL "
                    "AND c.expires_at <= c.issued_at + interval '61 seconds'")
        t.ok(int(n or 0) >= 1, "PostgreSQL: Dan's probe credential was recorded, of no meeting, for 60 s (%s)" % n)
finally:
    for d in daemons:
        d.stop_checked(t)
    pg.close()
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(t.done())
