"""The passcode and the waiting room in the browser client (tests/browser/web_lobby.mjs):
three participants in headless Chromium, relay-only through meetlited's own TURN. The browser
script reports its checks; this file prints them as TAP and adds what PostgreSQL recorded:
no TURN credential for Cat (denied), Ben's credentials all issued after his admission, the
passcode stored as a hash; and the school's webhook receiver (HTTPS, signatures checked by
the example of docs/webhooks.md) told of the meeting and of Ann and Ben joining, never of Cat.
Screenshots go to tests/output/web_lobby under the build tree."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mltest  # noqa: E402
from mltest import Tap  # noqa: E402
from mlbrowser import CHROMIUM, loopback_only, output_dir, run_browser_script  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, migrate  # noqa: E402
from mlhooks import Receiver, make_ca, secret_file  # noqa: E402
from mlrelay import wait_until  # noqa: E402
from mltest import free_port  # noqa: E402

t = Tap()
pg = Postgres()
d = None
report = {}
try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "schema migrated", r.stderr)
    tmp = mltest.scratch_dir("mlwl-")
    ca, crt, key = make_ca(tmp)
    rx = Receiver(crt, key, free_port())
    rx.start()
    d = ControlDaemon(pg.url, ["turn.allow-peers=127.0.0.0/8",
                               "webhooks.url=https://127.0.0.1:%d/meetlite" % rx.port,
                               "webhooks.secret-file=" + secret_file(tmp), "webhooks.ca-file=" + ca])
    report = run_browser_script(t, "web_lobby.mjs", {
        "base": "http://127.0.0.1:%d" % d.http_port, "chromium": CHROMIUM,
        "loopbackOnly": loopback_only(), "outdir": output_dir("web_lobby")}, 300, people=("ann", "ben", "cat"))
    pids = report.get("pids", {})
    if pids.get("ben") and pids.get("cat"):
        t.eq(pg.psql("SELECT cred_until IS NULL FROM participants WHERE id = '%s'" % pids["cat"]), "t",
             "PostgreSQL: Cat (denied) never had a TURN credential")
        t.eq(pg.psql("SELECT removed AND waiting FROM participants WHERE id = '%s'" % pids["cat"]),
             "t", "PostgreSQL: Cat is recorded as denied")
        # no credential while waiting (ml_join; meeting_lobby.py checks it as it happens), one
        # after admission: his participant row records it (cred_until)
        n = pg.psql("SELECT cred_until IS NOT NULL AND waiting = false FROM participants WHERE id = '%s'"
                    % pids["ben"])
        t.eq(n, "t", "PostgreSQL: Ben, admitted, was handed a TURN credential")
        t.ok(pg.psql("SELECT passcode_hash LIKE '$argon2id$%%' FROM meetings WHERE code = '%s'"
                     % report.get("code", "")) == "t", "PostgreSQL: the passcode is an argon2id hash")

        # the school's systems (issue #17, item 4): webhooks of the browser meeting
        def events():
            with rx.lock:
                return [e for e in rx.accepted
                        if ((e["data"].get("meeting") or {}).get("code")) == report.get("code")]

        def joined(pid):
            return [e for e in events() if e["type"] == "participant.joined" and
                    e["data"]["participant"]["id"] == pid]
        t.ok(wait_until(lambda: joined(pids["ann"]) and joined(pids["ben"]), 15),
             "webhooks: the receiver hears Ann and Ben join", [e["type"] for e in events()])
        t.ok([e["type"] for e in events()][:1] == ["meeting.started"],
             "webhooks: meeting.started comes first", [e["type"] for e in events()])
        t.ok(not [e for e in events() if (e["data"].get("participant") or {}).get("id") ==
                  pids["cat"]], "webhooks: nothing of Cat, who waited and was denied")
        t.ok(rx.bad_sig == 0 and rx.requests >= 3,
             "webhooks: every delivery verified by the docs' example (%d)" % rx.requests)
finally:
    if d:
        d.stop_checked(t)
    pg.close()
sys.exit(t.done())
