"""SIGHUP with broken, truncated and empty configuration files (issue #13, failure 3): each is
refused in one log line and changes nothing, so TURN REST credentials, static users, the admin
token and a freshly joined participant's credential keep working; a file that only empties a
credential source, or changes a restart-only key, is refused too; a later good file applies.
And --check-config applies the rules start applies (failure 7)."""

import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import MEETLITED, SUCCESS, TOP_SRCDIR, Daemon, Tap, free_port  # noqa: E402
from mlcontrol import (JWT_SECRET, Api, Postgres, migrate, rest_password,  # noqa: E402
                       turn_allocate)
from mladmin import TOKEN, AdminApi, tcp_port  # noqa: E402

t = Tap()
SECRET_A = "fault-secret-aaaaaaaaaaaa"
SECRET_B = "fault-secret-bbbbbbbbbbbb"


def conf_text(pg_url, http_port, turn_port, admin_port, secrets, users, software, listen=None):
    return ("; written by tests/fault/sighup.py\n"
            "[log]\nlevel = info\n\n"
            "[net]\nworkers = 1\n\n"
            "[turn]\n"
            "listen = %s\n"
            "software = %s\n"
            "auth-secret = %s\n"
            "static-users = %s\n"
            "allow-peers = 127.0.0.0/8\n\n"
            "[database]\nurl = %s\nmigrations-dir = %s\n\n"
            "[control]\nlisten = 127.0.0.1:%d\n\n"
            "[auth]\njwt-secret = %s\nargon2-memory = 1024\nargon2-iterations = 1\n\n"
            "[admin]\nlisten = 127.0.0.1:%d\ntoken = %s\n"
            % (listen or "udp://127.0.0.1:%d, tcp://127.0.0.1:%d" % (turn_port, turn_port),
               software, secrets, users, pg_url, os.path.join(TOP_SRCDIR, "sql"), http_port,
               JWT_SECRET, admin_port, TOKEN))


def write(path, text):
    """Replaces the file the way an editor or a careless copy does: in place."""
    with open(path, "w") as f:
        f.write(text)


def reload_and_wait(d, marker):
    """SIGHUP, then wait for one more line with marker; returns True when it came."""
    before = d.log().count(marker)
    d.signal(signal.SIGHUP)
    deadline = time.time() + 15
    while time.time() < deadline:
        if d.log().count(marker) > before:
            return True
        time.sleep(0.05)
    return False


def rest_allocate(port, secret, ident="fault-user"):
    u = "%d:%s" % (int(time.time()) + 600, ident)
    return turn_allocate(port, u, rest_password(secret, u))


def software(port):
    from mltest import BINDING, REQUEST, Msg, udp_exchange
    r = Msg.decode(udp_exchange(("127.0.0.1", port), Msg(BINDING, REQUEST).encode()))
    return r.get("SOFTWARE")


pg = Postgres()
d = None
conf = tempfile.NamedTemporaryFile("w", prefix="ml-sighup-", suffix=".conf", delete=False)
conf.close()
try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "the schema is applied", r.stdout + r.stderr)
    http_port, turn_port, admin_port = free_port(), free_port(), tcp_port()
    good = conf_text(pg.url, http_port, turn_port, admin_port, SECRET_A, "alice:alice-password-1",
                     "first")
    write(conf.name, good)
    d = Daemon([], config=conf.name, timeout=60)
    api, adm = Api(http_port), AdminApi(admin_port)
    deadline = time.time() + 30
    while api.get("/api/v1/health").status != 200 and time.time() < deadline:
        time.sleep(0.05)

    def alice(meeting_id=None):
        """Signs up (once), joins a meeting and allocates with the join's TURN credential."""
        j = api.post("/api/v1/meetings/%s/join" % meeting_id, token=alice.token, raw=b"",
                     headers={"Content-Length": "0"})
        if j.status != 200:
            return ("join", j.status)
        s = [x for x in j.json["iceServers"] if "username" in x][0]
        return turn_allocate(turn_port, s["username"], s["credential"])

    alice.token, _ = api.user("sighup-owner@example.org")
    mid = api.meeting(alice.token, "Reloads")["id"]

    def all_credentials_work(when):
        res = rest_allocate(turn_port, SECRET_A)
        t.ok(res and res[0] == SUCCESS, "%s: a TURN REST credential allocates" % when, res)
        res = turn_allocate(turn_port, "alice", "alice-password-1")
        t.ok(res and res[0] == SUCCESS, "%s: a static user allocates" % when, res)
        r = adm.get("/stats")
        t.eq(r.status, 200, "%s: the admin token is accepted" % when)
        res = alice(mid)
        t.ok(res and res[0] == SUCCESS, "%s: a fresh join's TURN credential allocates" % when, res)

    all_credentials_work("at start")

    # ------------------------------------------------------------ files that must be refused
    cut = good.index("static-users")  # cut off in the middle of [turn]: no users, no database
    bad_files = [
        ("an empty file", ""),
        ("a truncated file (cut inside [turn])", good[:cut]),
        ("a truncated file (cut mid-line)", good[:good.index("auth-secret") + 16]),
        ("a file with a syntax error", good.replace("[admin]", "[admin\n")),
        ("a file with an unknown key", good + "no-such-key = 1\n"),
        ("a file that empties turn.static-users",
         good.replace("static-users = alice:alice-password-1", "static-users =")),
        ("a file that empties turn.auth-secret", good.replace("auth-secret = " + SECRET_A,
                                                              "auth-secret =")),
        ("a file that empties admin.token", good.replace("token = " + TOKEN, "token =")),
        ("a file that changes a restart-only key (control.listen) with a reloadable one",
         good.replace("127.0.0.1:%d\n\n[auth]" % http_port,
                      "127.0.0.1:%d\n\n[auth]" % free_port()).replace("software = first",
                                                                      "software = second")),
        ("a file whose admin.listen leaves loopback without TLS",
         good.replace("[admin]\nlisten = 127.0.0.1", "[admin]\nlisten = 0.0.0.0")),
    ]
    for desc, text in bad_files:
        write(conf.name, text)
        refused = reload_and_wait(d, "reload refused, configuration unchanged")
        t.ok(refused and d.alive(), "SIGHUP with %s: refused" % desc, d.log()[-1500:])
        lines = [ln for ln in d.log().splitlines() if "reload refused" in ln]
        t.ok(SECRET_A not in d.log() and TOKEN not in d.log(),
             "%s: the refusal names no secret" % desc, lines[-1:])
    t.ok("reloaded turn.auth-secret" not in d.log() and "reloaded turn.static-users" not in d.log(),
         "no refused file reloaded a credential key", d.log()[-3000:])
    t.eq(software(turn_port), b"first", "a refused file changed nothing (turn.software)")
    all_credentials_work("after the refused reloads")

    # ------------------------------------------------------------ a later good file applies
    good2 = conf_text(pg.url, http_port, turn_port, admin_port, SECRET_B + ", " + SECRET_A,
                      "alice:alice-password-1, bob:bob-password-2", "second")
    write(conf.name, good2)
    t.ok(reload_and_wait(d, "configuration reloaded"), "a good file after them is applied",
         d.log()[-1500:])
    t.eq(software(turn_port), b"second", "the good file's turn.software is in force")
    res = turn_allocate(turn_port, "bob", "bob-password-2")
    t.ok(res and res[0] == SUCCESS, "the good file's new static user allocates", res)
    res = rest_allocate(turn_port, SECRET_B, "fault-user-b")
    t.ok(res and res[0] == SUCCESS, "the good file's new secret signs REST credentials", res)
    all_credentials_work("after the good reload")
    t.ok(d.clean(), "clean exit, sanitizers quiet", d.log()[-3000:])

    # ------------------------------------------------------------ --check-config is start's judge
    def check(*sets):
        args = [MEETLITED, "--check-config"]
        for s in sets:
            args += ["--set", s]
        r = subprocess.run(args, capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout + r.stderr

    def start(*sets):
        args = [MEETLITED]
        for s in sets:
            args += ["--set", s]
        try:
            r = subprocess.run(args, capture_output=True, text=True, timeout=20)
            return r.returncode, r.stdout + r.stderr
        except subprocess.TimeoutExpired:
            return None, "still running"

    tp = free_port()
    remote = ["turn.listen=udp://127.0.0.1:%d" % tp, "admin.token=" + TOKEN,
              "admin.listen=0.0.0.0:%d" % tcp_port()]
    rc, out = check(*remote)
    t.ok(rc != 0 and "not a loopback address" in out,
         "--check-config refuses admin.listen off loopback without TLS", out)
    rc2, out2 = start(*remote)
    t.ok(rc2 not in (0, None) and "not a loopback address" in out2, "and start refuses it too",
         out2)
    shared = tcp_port()
    rc, out = check("turn.listen=udp://127.0.0.1:%d" % tp, "admin.token=" + TOKEN,
                    "admin.listen=127.0.0.1:%d" % shared, "control.listen=127.0.0.1:%d" % shared,
                    "database.url=postgresql:///none", "turn.auth-secret=" + SECRET_A,
                    "auth.jwt-secret=" + JWT_SECRET)
    t.ok(rc != 0 and "collide" in out, "--check-config refuses two listeners on one address",
         out)
    rc, out = check("turn.listen=udp://127.0.0.1:%d" % tp, "control.listen=127.0.0.1:%d" % shared,
                    "database.url=postgresql:///none", "turn.auth-secret=" + SECRET_A,
                    "auth.jwt-secret=too-short")
    t.ok(rc != 0 and "jwt-secret" in out, "--check-config refuses a short auth.jwt-secret", out)
    cp_base = ["turn.listen=udp://127.0.0.1:%d" % tp, "control.listen=127.0.0.1:%d" % shared,
               "database.url=postgresql:///none", "turn.auth-secret=" + SECRET_A]
    rc, out = check(*cp_base, "auth.jwt-key=/nonexistent/es256.pem")
    t.ok(rc != 0 and "auth.jwt-key" in out, "--check-config loads auth.jwt-key as start does", out)
    rc, out = check(*cp_base, "auth.jwt-secret=" + JWT_SECRET, "control.tls-cert=" + conf.name,
                    "control.tls-key=" + conf.name)
    t.ok(rc != 0 and "control.tls-cert" in out,
         "--check-config loads the control plane's certificate as start does", out)
    rc, out = check(*cp_base, "auth.jwt-secret=" + JWT_SECRET)
    t.ok(rc == 0 and "configuration OK" in out, "--check-config passes a good control plane", out)
    rc, out = check("turn.listen=udp://127.0.0.1:%d" % tp)
    t.ok(rc == 0 and "configuration OK" in out, "--check-config passes a good configuration", out)
except Exception as e:  # noqa: BLE001
    t.unexpected(e, d)
finally:
    if d:
        d.close()
    pg.close()
    os.unlink(conf.name)
t.done()
