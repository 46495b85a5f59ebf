"""The passcode and the waiting room in the browser client (tests/browser/web_lobby.mjs):
three participants in headless Chromium, relay-only through meetlited's own TURN. The browser
script reports its checks; this file prints them as TAP and adds what PostgreSQL recorded:
no TURN credential for Cat (denied), Ben's credentials all issued after his admission, the
passcode stored as a hash; and the school's webhook receiver (HTTPS, signatures checked by
the example of docs/webhooks.md) told of the meeting and of Ann and Ben joining, never of Cat.
Screenshots go to tests/output/web_lobby under the build tree."""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Tap  # noqa: E402
from mlbrowser import CHROMIUM, loopback_only, node_dir, output_dir  # noqa: E402
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
    tmp = tempfile.mkdtemp(prefix="mlwl-")
    ca, crt, key = make_ca(tmp)
    rx = Receiver(crt, key, free_port())
    rx.start()
    d = ControlDaemon(pg.url, ["turn.allow-peers=127.0.0.0/8",
                               "webhooks.url=https://127.0.0.1:%d/meetlite" % rx.port,
                               "webhooks.secret-file=" + secret_file(tmp), "webhooks.ca-file=" + ca])
    arg = json.dumps({"base": "http://127.0.0.1:%d" % d.http_port, "chromium": CHROMIUM,
                      "loopbackOnly": loopback_only(), "outdir": output_dir("web_lobby")})
    run = subprocess.run(["timeout", "300", "node", "web_lobby.mjs", arg], cwd=node_dir(),
                         capture_output=True, text=True)
    for line in run.stdout.splitlines():
        if line.startswith("{"):
            report = json.loads(line)
    t.ok(run.returncode == 0 and report.get("checks"), "the browser run finished",
         run.stdout[-3000:] + run.stderr[-3000:])
    for c in report.get("checks", []):
        t.ok(c["ok"], c["name"], json.dumps(c.get("detail"))[:3000] if not c["ok"] else None)
    if any(not c["ok"] for c in report.get("checks", [])):
        for who in ("ann", "ben", "cat"):
            t.diag("---- %s's client log\n%s" % (who, report.get("log_" + who, "")[-4000:]))
    pids = report.get("pids", {})
    if pids.get("ben") and pids.get("cat"):
        t.eq(pg.psql("SELECT count(*) FROM turn_credentials WHERE participant_id = '%s'"
                     % pids["cat"]), "0", "PostgreSQL: Cat (denied) never had a TURN credential")
        t.eq(pg.psql("SELECT removed AND waiting FROM participants WHERE id = '%s'" % pids["cat"]),
             "t", "PostgreSQL: Cat is recorded as denied")
        n = pg.psql("SELECT count(*) FROM turn_credentials WHERE participant_id = '%s'" % pids["ben"])
        early = pg.psql("SELECT count(*) FROM turn_credentials c WHERE c.participant_id = '%s' AND "
                        "c.issued_at < (SELECT a.at FROM audit_log a WHERE a.target_id = '%s' AND "
                        "a.action = 'participant.admit')" % (pids["ben"], pids["ben"]))
        t.ok(int(n or 0) >= 1 and early == "0",
             "PostgreSQL: Ben's TURN credentials (%s) were all issued after his admission" % n)
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
        rc, log = d.stop()
        t.ok(d.clean(), "meetlited stops cleanly (no sanitizer report)", log[-3000:])
        d.close()
    pg.close()
sys.exit(t.done())
