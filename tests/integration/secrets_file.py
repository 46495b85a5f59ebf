"""Secrets from files (issue #15, item 4): the -file form of every secret key, its rules (one of
key and key-file, trailing newline stripped, empty or multi-line file refused, a world-readable
file warned about, relative paths and default names inside $CREDENTIALS_DIRECTORY), the secret
never in an error or a dump, and reload: a changed file is a changed key, a bad file keeps the
old configuration."""

import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import ERROR, MEETLITED, SUCCESS, Daemon, Tap, free_port, rest_credential  # noqa: E402
from mladmin import AdminApi, admin_sets, tmpdir  # noqa: E402
from mlcontrol import turn_allocate  # noqa: E402

t = Tap()
tmp = tmpdir()
TURN_SECRET = "file-turn-secret-0123456789"
TOKEN_A = "file-admin-token-aaaaaaaaaaaaaaaa"
TOKEN_B = "file-admin-token-bbbbbbbbbbbbbbbb"
SECRETS = (TURN_SECRET, TOKEN_A, TOKEN_B)


def put(name, text, mode=0o600, base=tmp):
    path = os.path.join(base, name)
    with open(path + ".new", "w") as f:
        f.write(text)
    os.chmod(path + ".new", mode)
    os.replace(path + ".new", path)  # as an editor or a deploy tool would: atomically
    return path


def run(*args, env=None):
    e = dict(os.environ)
    e.pop("CREDENTIALS_DIRECTORY", None)
    e.update(env or {})
    r = subprocess.run([MEETLITED] + list(args), capture_output=True, text=True, timeout=30, env=e)
    return r.returncode, r.stdout + r.stderr


def sets(*kv):
    out = []
    for s in kv:
        out += ["--set", s]
    return out


def leaks(text):
    return [s for s in SECRETS if s in text]


secret_file = put("turn-secret", TURN_SECRET + "\n")
both = sets("turn.auth-secret=" + TURN_SECRET, "turn.auth-secret-file=" + secret_file)
cases = [
    ("key and key-file both set", both, None,
     "turn.auth-secret and turn.auth-secret-file are both set"),
    ("an empty file", sets("turn.auth-secret-file=" + put("empty", "\n")), None, "is empty"),
    ("a missing file", sets("turn.auth-secret-file=" + os.path.join(tmp, "nope")), None,
     "cannot open"),
    ("a directory", sets("turn.auth-secret-file=" + tmp), None, "not a regular file"),
    ("two lines for a single-value key",
     sets("turn.nonce-secret-file=" + put("nonce", "line-one-xxxxxxxx\nline-two-xxxxxxxx\n")), None,
     "more than one line"),
    ("a secret the key's validator refuses",
     sets("admin.token-file=" + put("short-token", "short\n")), None, "admin.token"),
    ("a relative path without $CREDENTIALS_DIRECTORY", sets("turn.auth-secret-file=turn-secret"),
     None, "relative path"),
]
for desc, args, env, want in cases:
    rc, out = run(*args, "--check-config", env=env)
    t.ok(rc == 1 and want in out, "refused: " + desc, out)
    t.eq(leaks(out), [], "and the message holds no secret: " + desc)

rc, out = run(*sets("turn.auth-secret-file=" + secret_file), "--check-config")
t.ok(rc == 0, "a secret file passes --check-config", out)
rc, out = run(*sets("turn.auth-secret-file=" + secret_file), "--dump-config")
t.ok(rc == 0 and "auth-secret = (set)" in out and secret_file in out and not leaks(out),
     "--dump-config shows (set) and the file's path, never the secret", out)
open_file = put("open-secret", TURN_SECRET + "\n", mode=0o644)
rc, out = run(*sets("turn.auth-secret-file=" + open_file), "--check-config")
t.ok(rc == 0 and "readable by every user" in out and open_file in out,
     "a world-readable secret file is read, with a warning naming it", out)

# systemd credentials: a relative path, and the default name when neither key is set
creds = os.path.join(tmp, "credentials")
os.mkdir(creds, 0o700)
put("turn.auth-secret", TURN_SECRET + "\n", base=creds)
put("admin-token", TOKEN_A + "\n" + TOKEN_B + "\n", base=creds)
rc, out = run(*sets("admin.token-file=admin-token", "turn.listen=udp://127.0.0.1:%d" % free_port()),
              "--dump-config", env={"CREDENTIALS_DIRECTORY": creds})
t.ok(rc == 0 and "auth-secret-file = " + os.path.join(creds, "turn.auth-secret") in out
     and "token-file = admin-token" in out and "token = (set)" in out,
     "$CREDENTIALS_DIRECTORY: a relative -file path and the default name turn.auth-secret", out)
rc, out = run(*sets("admin.token-file=../turn-secret"), "--check-config",
              env={"CREDENTIALS_DIRECTORY": creds})
t.ok(rc == 1 and "not a credential name" in out, "a credential name cannot leave the directory", out)

# a running daemon: the token list and the TURN secret from credentials, then reloads
admin_port, turn_port = free_port(), free_port()
d = Daemon(admin_sets(admin_port, turn_port, ["admin.token-file=admin-token"], tokens=()),
           env={"CREDENTIALS_DIRECTORY": creds}, timeout=60)
try:
    api_a, api_b = AdminApi(admin_port, token=TOKEN_A), AdminApi(admin_port, token=TOKEN_B)
    t.eq((api_a.get("/stats").status, api_b.get("/stats").status), (200, 200),
         "both tokens of the credential (one a line, newline stripped) open the admin API")
    user, pw = rest_credential(TURN_SECRET, "filed")
    t.eq(turn_allocate(turn_port, user, pw), (SUCCESS, None),
         "a TURN REST credential made with the secret of the default-named credential allocates")

    put("admin-token", TOKEN_B + "\n", base=creds)
    d.signal(signal.SIGHUP)
    d.wait_log("reloaded admin.token", 20)
    t.eq((api_a.get("/stats").status, api_b.get("/stats").status), (401, 200),
         "SIGHUP re-reads the token file: the removed token is refused, the other still works")

    put("admin-token", "", base=creds)
    d.signal(signal.SIGHUP)
    d.wait_log("reload refused", 20)
    t.ok("admin.token-file" in d.log() and "is empty" in d.log(),
         "an emptied token file refuses the reload and says why", d.log()[-2000:])
    t.eq(api_b.get("/stats").status, 200, "and the token in force keeps working")

    put("turn.auth-secret", "other-turn-secret-0123456789\n", base=creds)
    put("admin-token", TOKEN_A + "\n", base=creds)
    d.signal(signal.SIGHUP)
    deadline = time.time() + 20
    while time.time() < deadline and "reloaded turn.auth-secret" not in d.log():
        time.sleep(0.05)
    t.ok("reloaded turn.auth-secret" in d.log(), "a changed secret file is a changed key on SIGHUP")
    user, pw = rest_credential(TURN_SECRET, "filed-again")
    r = turn_allocate(turn_port, user, pw)
    t.ok(r is not None and r[0] == ERROR and r[1] == 401, "the old TURN secret is refused", r)
    user, pw = rest_credential("other-turn-secret-0123456789", "filed-new")
    t.eq(turn_allocate(turn_port, user, pw), (SUCCESS, None), "the new one allocates")
    t.eq(api_a.get("/stats").status, 200, "the token file of the same reload took effect too")
    t.eq(leaks(d.log()), [], "no secret in the log")
finally:
    t.ok(d.clean(), "clean exit, no sanitizer report", d.log()[-3000:])
    d.close()
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(t.done())
