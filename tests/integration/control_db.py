"""The control plane and its database under concurrency and failure: 20 concurrent joins of one
user make one participant; 10 users racing for 3 seats get exactly 3; meetings expire with no
request arriving; clients that vanish mid-request; PostgreSQL restarted mid-run (503 with
Retry-After at once while it is down, the relay still answering, recovery after, no row lost or
doubled); migrations run twice and concurrently."""

import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import BINDING, REQUEST, Msg, Tap, udp_exchange  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, migrate, raw_http  # noqa: E402

t = Tap()
pg = Postgres()
# every sql/NNN_*.sql is a migration: the counts below follow the tree
NMIG = len([f for f in os.listdir(os.path.join(os.environ.get("top_srcdir", os.path.join(
    os.path.dirname(__file__), "..", "..")), "sql")) if f[:3].isdigit() and f.endswith(".sql")])
d = None


def parallel(fns):
    out = [None] * len(fns)
    barrier = threading.Barrier(len(fns))

    def run(i):
        barrier.wait()
        try:
            out[i] = fns[i]()
        except Exception as e:  # noqa: BLE001
            out[i] = e

    th = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for x in th:
        x.start()
    for x in th:
        x.join(120)
    return out


try:
    # ------------------------------------------------------------ migrations, concurrently
    pg.psql("CREATE DATABASE other")
    other = pg.url.replace("dbname=meetlite", "dbname=other")
    res = parallel([lambda: migrate(other), lambda: migrate(other), lambda: migrate(other)])
    t.ok(all(r.returncode == 0 for r in res), "three --migrate at once all succeed",
         [r.stdout + r.stderr for r in res])
    applied = sorted(int(r.stderr.split("(")[1].split()[0]) if "(" in r.stderr else -1 for r in res)
    t.eq(applied, [0, 0, NMIG], "exactly one of them applied the migrations (advisory lock)")
    t.eq(pg.psql("SELECT count(*) FROM schema_migrations", ).strip() if False else
         subprocess.run(["psql", other, "-XAtqc", "SELECT count(*) FROM schema_migrations"],
                        capture_output=True, text=True).stdout.strip(), str(NMIG), "recorded once")

    # ------------------------------------------------------------ the daemon migrates at start
    d = ControlDaemon(pg.url, ["database.migrate-on-start=yes", "control.min-duration=1s",
                               "control.sweep-interval=1s", "database.pool-size=4",
                               "database.reconnect-max=500"])
    api = d.api
    t.ok("database schema up to date (%d migration%s applied" % (NMIG, "" if NMIG == 1 else "s") in d.log(),
         "database.migrate-on-start applies the schema", d.log())

    host_tok, host = api.user("host@example.org", name="Host")
    users = [api.user("u%d@example.org" % i) for i in range(12)]

    # ------------------------------------------------------------ 20 concurrent joins of one user
    m = api.meeting(host_tok, "Race one user", max_participants=5)
    tok = users[0][0]
    res = parallel([lambda: api.post("/api/v1/meetings/%s/join" % m["id"], None, tok) for _ in range(20)])
    st = [r.status if not isinstance(r, Exception) else repr(r) for r in res]
    pids = {r.json["participant_id"] for r in res if not isinstance(r, Exception) and r.status == 200}
    t.ok(st == [200] * 20 and len(pids) == 1, "20 concurrent joins of one user all succeed with one participant", st)
    n = pg.psql("SELECT count(*) FROM participants WHERE meeting_id = '%s'" % m["id"])
    t.eq(n, "1", "exactly one participant row")
    pid = pids.pop()
    newest = max(int(r.json["turn"]["username"].split(":")[0]) for r in res)
    t.eq(pg.psql("SELECT cred_until, (SELECT count(*) FROM turn_credentials WHERE participant_id = p.id) "
                 "FROM participants p WHERE id = '%s'" % pid), "%d|0" % newest,
         "the participant records its newest credential's expiry, and no join writes a row (sql/017)")

    # ------------------------------------------------------------ capacity race
    m = api.meeting(host_tok, "Race for seats", max_participants=3)
    res = parallel([lambda tk=u[0]: api.post("/api/v1/meetings/%s/join" % m["id"], None, tk) for u in users[:10]])
    st = sorted(r.status if not isinstance(r, Exception) else 0 for r in res)
    t.eq(st, [200] * 3 + [409] * 7, "10 users racing for 3 seats: exactly 3 get in, 7 get 409")
    t.ok(all(r.code() == "meeting_full" for r in res if r.status == 409), "the losers get meeting_full")
    t.eq(pg.psql("SELECT count(*) FROM participants WHERE meeting_id = '%s' AND left_at IS NULL" % m["id"]), "3",
         "3 active participants in the database")

    # ------------------------------------------------------------ clients that vanish mid-request
    req = ("POST /api/v1/meetings/%s/join HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
           "Content-Length: 0\r\n\r\n" % (m["id"], users[11][0])).encode()
    import socket
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", d.http_port))
        s.sendall(req)
        s.close()
    time.sleep(0.5)
    r = api.get("/api/v1/health")
    t.ok(r.status == 200 and d.alive(), "clients closing before their answer leave the daemon healthy", r)

    # ------------------------------------------------------------ expiry with no request arriving
    short = api.meeting(host_tok, "Short", duration_s=2)
    api.post("/api/v1/meetings/%s/join" % short["id"], None, users[1][0])
    api.post("/api/v1/meetings/%s/join" % short["id"], None, host_tok)
    deadline = time.time() + 15
    status = None
    while time.time() < deadline:
        status = pg.psql("SELECT status FROM meetings WHERE id = '%s'" % short["id"])
        if status == "EXPIRED":
            break
        time.sleep(0.25)
    t.eq(status, "EXPIRED", "a meeting expires on time with no request arriving (the sweep)")
    t.eq(pg.psql("SELECT count(*) FROM participants WHERE meeting_id = '%s' AND left_at IS NULL" % short["id"]), "0",
         "its participants are closed")
    t.eq(pg.psql("SELECT count(*) FILTER (WHERE t.revoked_at IS NOT NULL), count(*) FILTER (WHERE "
                 "t.revoked_at IS NULL), count(DISTINCT t.participant_id) FROM turn_credentials t "
                 "JOIN participants p ON p.id = t.participant_id WHERE p.meeting_id = '%s'" % short["id"]),
         "2|0|2", "its TURN credentials are revoked: one revocation for each participant")
    t.ok(int(pg.psql("SELECT max(extract(epoch FROM t.expires_at) - extract(epoch FROM m.expires_at)) "
                     "FROM turn_credentials t JOIN participants p ON p.id = t.participant_id "
                     "JOIN meetings m ON m.id = p.meeting_id").split(".")[0]) <= 0,
         "no credential ever outlives its meeting")
    r = api.post("/api/v1/meetings/%s/join" % short["id"], None, users[2][0])
    t.ok(r.status == 410 and r.code() == "meeting_expired", "join an expired meeting: 410 meeting_expired", r)
    # a meeting past its end that the sweep has not seen yet is expired for requests at once
    pg.psql("UPDATE meetings SET expires_at = now() - interval '1 second', created_at = now() - interval '1 hour' "
            "WHERE title = 'Race for seats'")
    r = api.post("/api/v1/meetings/%s/join" % m["id"], None, users[4][0])
    t.ok(r.status == 410 and r.code() == "meeting_expired", "a join sees a lapsed meeting as expired before the sweep", r)

    # ------------------------------------------------------------ PostgreSQL restarted mid-run
    live = api.meeting(host_tok, "Through the restart", max_participants=50)
    stop = threading.Event()
    created, failures, lock = [], [], threading.Lock()
    counter = [0]

    def writer():
        while not stop.is_set():
            with lock:
                counter[0] += 1
                title = "restart-%05d" % counter[0]
            try:
                r = api.post("/api/v1/meetings", {"title": title}, host_tok, timeout=10)
            except Exception as e:  # noqa: BLE001
                with lock:
                    failures.append(repr(e))
                continue
            with lock:
                if r.status == 201:
                    created.append(title)
                elif r.status != 503:
                    failures.append(r)
            api.post("/api/v1/meetings/%s/join" % live["id"], None, users[5][0], timeout=10)
            time.sleep(0.01)

    ws = [threading.Thread(target=writer) for _ in range(3)]
    for w in ws:
        w.start()
    time.sleep(1.0)
    pg.stop()
    time.sleep(0.3)
    t0 = time.time()
    r = api.post("/api/v1/meetings", {"title": "while down"}, host_tok)
    dt = time.time() - t0
    t.ok(r.status == 503 and r.code() == "unavailable" and int(r.headers.get("retry-after", "0")) >= 1,
         "PostgreSQL down: 503 unavailable with Retry-After", r)
    t.ok(dt < 1.0, "the 503 comes at once (%.3f s), not after a queue" % dt)
    r = api.get("/api/v1/health")
    t.ok(r.status == 503, "health says 503 while the database is down", r)
    r = api.get("/api/v1/me", host_tok)
    t.ok(r.status == 503, "reads get 503 too", r)
    reply = udp_exchange(("127.0.0.1", d.turn_port), Msg(BINDING, REQUEST).encode())
    t.ok(reply is not None and d.alive(), "the daemon and its STUN/TURN relay keep running")
    time.sleep(1.0)
    pg.start()
    deadline = time.time() + 20
    while time.time() < deadline and api.get("/api/v1/health").status != 200:
        time.sleep(0.1)
    t.ok(api.get("/api/v1/health").status == 200, "the pool reconnects by itself (%.1f s after the restart)" % (time.time() - deadline + 20))
    time.sleep(1.0)
    stop.set()
    for w in ws:
        w.join(30)
    t.ok(not failures, "no answer other than 201 or 503 during the restart", failures[:5])
    r = api.post("/api/v1/meetings", {"title": "after"}, host_tok)
    t.ok(r.status == 201, "writes work again", r)
    rows = pg.psql("SELECT title FROM meetings WHERE title LIKE 'restart-%'").split()
    t.ok(len(created) > 5 and set(created) <= set(rows), "no acknowledged row lost (%d created)" % len(created),
         sorted(set(created) - set(rows))[:5])
    t.eq(len(rows), len(set(rows)), "no row doubled")
    extra = set(rows) - set(created)
    t.ok(len(extra) <= 1, "at most the one in-flight write is committed without its answer", sorted(extra))
    t.eq(pg.psql("SELECT count(*) FROM participants WHERE meeting_id = '%s' AND left_at IS NULL" % live["id"]), "1",
         "the repeated joins through the restart left one participant")
    st, _ = raw_http(d.http_port, b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
    t.eq(st, 200, "health 200 after recovery")
finally:
    if d:
        t.ok(d.clean(), "meetlited exits cleanly (no sanitizer report)", d.log()[-3000:])
        d.close()
    pg.close()

sys.exit(t.done())
