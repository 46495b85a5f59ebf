"""The browser meeting client end to end (tests/browser/web_room.mjs): three participants in
headless Chromium, relay-only through meetlited's own TURN (turn.allow-peers lets loopback
peers through), with the admin API on to watch the relay's allocations. The browser script
reports its checks; this file prints them as TAP and adds what PostgreSQL recorded: Ben's
removal and his allocations' usage records, the meeting ended, TURN credentials renewed.
Screenshots go to tests/output/web_room under the build tree."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Tap, free_port  # noqa: E402
from mlbrowser import CHROMIUM, loopback_only, output_dir, run_browser_script  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, migrate  # noqa: E402

ADMIN_TOKEN = "web-room-admin-token-0123456789"
CREDENTIAL_TTL = 60  # the shortest control.credential-ttl: the clients must renew within the run

t = Tap()
pg = Postgres()
d = None
report = {}
try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "schema migrated", r.stderr)
    admin_port = free_port()
    d = ControlDaemon(pg.url, ["turn.allow-peers=127.0.0.0/8",
                               "control.credential-ttl=%ds" % CREDENTIAL_TTL,
                               "admin.listen=127.0.0.1:%d" % admin_port, "admin.token=" + ADMIN_TOKEN])
    base = "http://127.0.0.1:%d" % d.http_port
    report = run_browser_script(t, "web_room.mjs", {
        "base": base, "chromium": CHROMIUM, "loopbackOnly": loopback_only(),
        "outdir": output_dir("web_room"), "credentialTtl": CREDENTIAL_TTL,
        "admin": {"url": "http://127.0.0.1:%d" % admin_port, "token": ADMIN_TOKEN}}, 300,
        people=("ann", "ben", "cat"))
    t.diag("Ben's allocations were gone %s ms after the removal" % report.get("allocationsGoneMs"))

    pids = report.get("pids", {})
    code = report.get("code", "")
    if pids.get("ben") and code:
        t.eq(pg.psql("SELECT status FROM meetings WHERE code = '%s'" % code), "ENDED",
             "PostgreSQL: the meeting is ENDED")
        t.eq(pg.psql("SELECT removed FROM participants WHERE id = '%s'" % pids["ben"]), "t",
             "PostgreSQL: Ben is recorded as removed")
        # the newest credential handed to Ann (cred_until, sql/017) expires a TTL after it was
        # issued: past her join's by more than a TTL, she renewed
        n = pg.psql("SELECT cred_until - floor(extract(epoch FROM joined_at))::bigint FROM participants "
                    "WHERE id = '%s'" % pids["ann"])
        t.ok(int(n or 0) >= CREDENTIAL_TTL + 10,
             "PostgreSQL: Ann's client got fresh TURN credentials (the newest expires %s s after her "
             "join, TTL %d s)" % (n, CREDENTIAL_TTL))
        t.eq(pg.psql("SELECT count(*) FROM participants p WHERE p.meeting_id = (SELECT id FROM meetings "
                     "WHERE code = '%s') AND p.cred_until IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
                     "turn_credentials t WHERE t.participant_id = p.id AND t.revoked_at IS NOT NULL)" % code),
             "0", "PostgreSQL: no credential of the meeting is left unrevoked")
        usage = ""
        for _ in range(50):  # usage records reach PostgreSQL in batches (usage.flush-interval-ms)
            usage = pg.psql("SELECT count(*), coalesce(sum(bytes_to_client), 0) FROM turn_usage "
                            "WHERE participant_id = '%s'" % pids["ben"])
            if usage and not usage.startswith("0|"):
                break
            time.sleep(0.2)
        allocs, bytes_ = (usage or "0|0").split("|")
        t.ok(int(allocs) >= 1 and int(bytes_) > 10000,
             "PostgreSQL: Ben's ended allocations have usage records (%s, %s bytes to him)" % (allocs, bytes_))
finally:
    if d:
        d.stop_checked(t)
    pg.close()

sys.exit(t.done())
