"""Protocol cases as data for the control plane (tier 2): every tests/data/http/*.case (HTTP
requests in, status, headers and JSON out) and every tests/data/ws/*.script (WebSocket frames
in, events and close codes out) runs against one meetlited with the control plane, the admin
listener and a private PostgreSQL. The format is in tests/lib/mlcases.py; each exchange and
each expected event is one TAP line."""

import glob
import json
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import TOP_SRCDIR, Tap, free_port  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, access_claims, jwt_hs256, migrate  # noqa: E402
from mlcases import Target, run_file, self_check  # noqa: E402

ADMIN_TOKEN = "cases-admin-token-0123456789abcdef"

t = Tap()
self_check(t)
pg = Postgres()
d = None
try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "the schema is in place", r.stdout + r.stderr)
    admin_port = free_port()
    # Limits the cases rely on: three failed logins per account (the per-address limit far
    # away, since every case logs in from 127.0.0.1), 4 KiB bodies, meetings of at most 50;
    # signaling limits small enough that what goes past them fits in one read of the server's
    # (a socket closed with unread input is reset, and the close frame lost with it).
    d = ControlDaemon(pg.url, ["admin.token=" + ADMIN_TOKEN,
                               "admin.listen=127.0.0.1:%d" % admin_port,
                               "auth.login-max-failures=3",
                               "auth.login-max-failures-per-address=1000",
                               "control.max-body=4k", "control.max-participants=50",
                               "signaling.max-message=4k", "signaling.rate=10",
                               "signaling.burst=20"])
    # Tokens no client can get from the API: expired, and signed with another key.
    nobody = "7f1e2d3c-4b5a-4697-8887-766554433221"
    tokens = {"EXPIRED_TOKEN": jwt_hs256(access_claims(nobody, lifetime=-600)),
              "FOREIGN_TOKEN": jwt_hs256(access_claims(nobody), secret="another-key-" * 4),
              "NOBODY_TOKEN": jwt_hs256(access_claims(nobody)),
              "PAD_5K": "x" * 5000}  # filler for a body over control.max-body
    target = Target(d.http_port, admin_port, d.turn_port, ADMIN_TOKEN, tokens)

    def settled():
        """Every connection of the node is up: the admin pool, the LISTEN thread, the sync."""
        try:
            q = urllib.request.Request("http://127.0.0.1:%d/stats" % admin_port,
                                       headers={"Authorization": "Bearer " + ADMIN_TOKEN})
            s = json.load(urllib.request.urlopen(q, timeout=5))
        except OSError:
            return False
        db = s["admin"]["database"]
        return (db is not None and db["up"] == db["size"] and s["turn"]["database_link"]["listen_up"]
                and s["turn"]["database_credentials"]["up"])
    deadline = time.time() + 60
    while not settled() and time.time() < deadline:
        time.sleep(0.1)
    t.ok(settled(), "the admin pool, the LISTEN connection and the credential sync are up")
    data = os.path.join(TOP_SRCDIR, "tests", "data")
    files = sorted(glob.glob(os.path.join(data, "http", "*.case"))) + \
        sorted(glob.glob(os.path.join(data, "ws", "*.script")))
    only = os.environ.get("API_CASES")  # a name to run one file while writing it
    if only:
        files = [f for f in files if only in os.path.basename(f)]
    else:
        t.ok(len(files) >= 6, "case and script files found (%d)" % len(files))
    for i, path in enumerate(files):
        run_file(target, path, i, t)
finally:
    if d is not None:
        t.ok(d.clean(), "meetlited stops cleanly", d.log())
        d.close()
    pg.close()
sys.exit(t.done())
