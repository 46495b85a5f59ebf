"""Failed logins never lock the owner out (issue #13, failure 6): a stranger's wrong passwords
from one address get that address 429 with Retry-After for that account, while the owner, from
another address, still signs in with the right password; the stranger's address stays refused
even with the right password; guesses spread over many addresses slow the account down (every
attempt waits, growing with its failures) without refusing the right password; the per-address
limit across accounts still holds."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Tap  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, migrate  # noqa: E402

t = Tap()
pg = Postgres()
d = None
LOGIN = "/api/v1/auth/login"
try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "the schema is applied", r.stdout + r.stderr)
    d = ControlDaemon(pg.url, ["auth.login-max-failures=3", "auth.login-max-failures-per-address=8",
                               "auth.login-slowdown-after=6", "auth.login-slowdown-max=2s"])
    api = d.api
    owner = api.frm("127.0.0.2")
    stranger = api.frm("127.0.0.3")
    api.user("owner@example.org", "correct horse", name="Owner")

    def login(a, password, email="owner@example.org"):
        t0 = time.monotonic()
        r = a.post(LOGIN, {"email": email, "password": password})
        return r, time.monotonic() - t0

    # ------------------------------------------------------------ a stranger's failures
    for i in range(3):
        r, _ = login(stranger, "wrong %d" % i)
        t.ok(r.status == 401 and r.code() == "invalid_credentials", "stranger, wrong password %d: 401" % (i + 1), r)
    r, _ = login(stranger, "wrong 4")
    t.ok(r.status == 429 and r.code() == "rate_limited" and int(r.headers.get("retry-after", "0")) > 0,
         "stranger's address, after login-max-failures on the account: 429 with Retry-After", r)
    r, _ = login(stranger, "correct horse")
    t.ok(r.status == 429, "stranger's address stays refused for the account, even with the right password", r)
    r, took = login(owner, "correct horse")
    t.ok(r.status == 200 and r.json["token"], "owner from another address with the right password: 200", r)
    t.ok(took < 1.0, "... at once (the account is below login-slowdown-after)", took)
    r, _ = login(stranger, "whatever1", email="other@example.org")
    t.ok(r.status == 401, "stranger's address is refused for that account only: another account still answers 401", r)

    # ------------------------------------------------------------ guesses from many addresses
    # failures on the account so far: 3 (the 429s were refused before any check); three more
    # from three fresh addresses reach login-slowdown-after=6
    for i in range(3):
        r, took = login(api.frm("127.0.1.%d" % (i + 1)), "guess %d" % i)
        t.ok(r.status == 401 and took < 1.0, "distributed guess %d from a fresh address: 401 at once" % (i + 1), (r, took))
    # now every attempt on the account waits: 250 ms, doubling per further failure, 2 s at most
    waits = []
    for i in range(3):
        r, took = login(api.frm("127.0.2.%d" % (i + 1)), "guess %d" % (i + 10))
        waits.append(took)
        t.ok(r.status == 401, "distributed guess beyond login-slowdown-after: still 401, not 429", r)
    t.ok(waits[0] >= 0.2 and waits[1] >= 0.45 and waits[2] >= 0.9,
         "... each slowed down, the wait growing with the failures (0.25 s, 0.5 s, 1 s)", waits)
    r, took = login(api.frm("127.0.3.1"), "correct horse")
    t.ok(r.status == 200, "the owner from yet another address: the right password still signs in (200)", r)
    t.ok(1.8 <= took < 6, "... after the account's slowdown (2 s, login-slowdown-max)", took)
    r, took = login(api.frm("127.0.3.2"), "correct horse", email="other-account@example.org")
    t.ok(r.status == 401 and took < 1.0, "another account is not slowed down", (r, took))

    # ------------------------------------------------------------ the per-address limit
    prober = api.frm("127.0.4.1")
    for i in range(8):
        prober.post(LOGIN, {"email": "acct%d@example.org" % i, "password": "nope nope"})
    r = prober.post(LOGIN, {"email": "acct99@example.org", "password": "nope nope"})
    t.ok(r.status == 429 and int(r.headers.get("retry-after", "0")) > 0,
         "one address failing on many accounts: 429 after login-max-failures-per-address", r)

    # ------------------------------------------------------------ a client that leaves while it waits
    import socket
    import json
    body = json.dumps({"email": "owner@example.org", "password": "gone away"}).encode()
    s = socket.create_connection(("127.0.0.1", d.http_port), timeout=3)
    s.sendall(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    s.close()  # it waits out the slowdown without a client
    time.sleep(0.2)
    code, log = d.stop()
    d = None
    t.ok(code == 0, "meetlited stops cleanly with a login waiting (nothing leaks under ASan)", log[-3000:])
    t.ok("waits" in log and "its account is slowed down" in log, "the slowdown is logged", log[-1500:])
finally:
    if d:
        d.stop()
    pg.close()
t.done()
