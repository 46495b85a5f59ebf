"""The container files (issue #15), as far as a test can take them without building the image
(that needs a debootstrap download and a few minutes: docs/deploy.md gives the command, and
the closing note of #15 the result): the entrypoint script run directly (secrets from files and
from the environment, never both, one line only, gone from meetlited's environment, written to
a file of mode 0600, a made-up admin token so that the HEALTHCHECK's command answers 0 against
the real daemon), the Containerfile (two stages, a non-root user, every COPY source in the
build context, the build stage installing every Build-Depends of debian/control), and
compose.yaml (parsed: meetlited with host networking beside PostgreSQL, every secret file
declared, the command accepted by meetlited --check-config)."""

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import BINDING, MEETLITED, REQUEST, TOP_SRCDIR, Msg, Tap, free_port, udp_exchange  # noqa: E402

t = Tap()
ENTRY = os.path.join(TOP_SRCDIR, "container", "entrypoint.sh")
SAMPLE = os.path.join(TOP_SRCDIR, "etc", "meetlite.conf")
CLI = os.path.join(os.path.dirname(MEETLITED), "meetlite-admin")
tmp = tempfile.mkdtemp(prefix="ml-container-")
os.chmod(tmp, 0o755)  # the fake meetlited runs as nobody too


def put(name, text, mode=0o600):
    p = os.path.join(tmp, name)
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, mode)
    return p


# A fake meetlited on PATH that reports its arguments, its environment and the effective file.
fakebin = os.path.join(tmp, "fakebin")
os.makedirs(fakebin)
put("fakebin/meetlited", """#!/bin/sh
conf=$2
printf '%s\\n' "$@" > "$FAKE_OUT.args"
env > "$FAKE_OUT.env"
cp "$conf" "$FAKE_OUT.conf"
stat -c %a "$conf" > "$FAKE_OUT.mode"
""", 0o755)
realbin = os.path.join(tmp, "realbin")
os.makedirs(realbin)
os.symlink(MEETLITED, os.path.join(realbin, "meetlited"))


def entry(env, args=(), path=fakebin, timeout=60):
    e = {"PATH": path + ":/usr/bin:/bin", "MEETLITE_CONFIG": SAMPLE,
         "MEETLITE_RUNTIME_DIR": os.path.join(tmp, "run"), "FAKE_OUT": os.path.join(tmp, "out"),
         "ASAN_OPTIONS": "detect_leaks=1", "HOME": tmp}
    e.update(env)
    return subprocess.run(["sh", ENTRY] + list(args), env=e, capture_output=True, text=True, timeout=timeout)


def out(ext):
    with open(os.path.join(tmp, "out." + ext)) as f:
        return f.read()


try:
    # ---------------------------------------------------------------- the entrypoint
    turn = put("turn-secret", "turn-secret-from-a-file-0123456789\n")
    jwt = put("jwt-secret", "jwt-secret-from-a-file-0123456789abcdef012345\n")
    r = entry({"MEETLITE_TURN_SECRET_FILE": turn, "MEETLITE_JWT_SECRET_FILE": jwt,
               "MEETLITE_DATABASE_URL": "host=/nonexistent dbname=meetlite user=meetlite",
               "MEETLITE_ADMIN_TOKEN": "an-admin-token-from-the-env-0123"},
              ["--set", "net.workers=1"])
    t.ok(r.returncode == 0, "the entrypoint runs meetlited", r.stderr)
    args = out("args").split("\n") if r.returncode == 0 else []
    t.eq(args[:2], ["--config", os.path.join(tmp, "run", "meetlite.conf")],
         "meetlited gets the effective file under the runtime directory")
    t.eq(args[2:4], ["--set", "net.workers=1"], "and the container's arguments after it")
    argv = " ".join(args)
    t.ok("secret" not in argv and "token" not in argv, "no secret on meetlited's command line", argv)
    env = out("env") if r.returncode == 0 else ""
    t.ok(r.returncode == 0 and "MEETLITE_" not in env.replace("MEETLITE_CONFIG", "").replace("MEETLITE_RUNTIME_DIR", ""),
         "the secrets' variables are gone from meetlited's environment", env)
    t.eq(out("mode").strip() if r.returncode == 0 else None, "600", "the effective file is mode 0600")
    conf = out("conf") if r.returncode == 0 else ""
    t.ok("auth-secret-file = %s\n" % turn in conf and "turn-secret-from" not in conf,
         "MEETLITE_TURN_SECRET_FILE becomes turn.auth-secret-file: meetlited reads the secret itself")
    t.ok("jwt-secret-file = %s\n" % jwt in conf and "jwt-secret-from" not in conf,
         "MEETLITE_JWT_SECRET_FILE becomes auth.jwt-secret-file")
    t.ok("url = host=/nonexistent dbname=meetlite user=meetlite\nmigrate-on-start = yes" in conf,
         "database.url from the environment, migrations on by default")
    t.ok("token = an-admin-token-from-the-env-0123\n" in conf, "admin.token from the environment")

    r = entry({"MEETLITE_TURN_SECRET": "x" * 20, "MEETLITE_TURN_SECRET_FILE": turn})
    t.ok(r.returncode != 0 and "not both" in r.stderr, "a value and its _FILE together are refused", r.stderr)
    r = entry({"MEETLITE_TURN_SECRET": "line-one-secret-0123\n[admin]\ntoken = injected-token-0123456789"})
    t.ok(r.returncode != 0 and "one line" in r.stderr, "a secret of several lines is refused (no key injection)", r.stderr)
    pw = put("db-password", "db-password-from-a-file-0123\n")
    r = entry({"MEETLITE_DATABASE_URL": "host=/nonexistent dbname=meetlite user=meetlite",
               "MEETLITE_DATABASE_PASSWORD_FILE": pw})
    t.ok(r.returncode == 0 and "password-file = %s\n" % pw in out("conf"),
         "MEETLITE_DATABASE_PASSWORD_FILE becomes database.password-file", r.stderr)
    r = entry({"MEETLITE_JWT_SECRET_FILE": os.path.join(tmp, "missing")})
    t.ok(r.returncode != 0 and "cannot read" in r.stderr, "a missing secret file is named", r.stderr)
    r = entry({"MEETLITE_MIGRATE": "maybe"})
    t.ok(r.returncode != 0 and "MEETLITE_MIGRATE" in r.stderr, "a bad MEETLITE_MIGRATE is refused", r.stderr)
    r = entry({}, ["sh", "-c", "echo other-command"])
    t.ok(r.returncode == 0 and r.stdout.strip() == "other-command", "a command that is not an option runs instead", r.stderr)

    # no admin token given: a random one, different each start
    toks = []
    for _ in range(2):
        r = entry({})
        m = re.search(r"^token = ([0-9a-f]+)$", out("conf"), re.M) if r.returncode == 0 else None
        toks.append(m.group(1) if m else None)
    t.ok(all(x and len(x) == 64 for x in toks) and toks[0] != toks[1], "without a token, a random 256-bit one each start", toks)

    # /run not writable (a fresh tmpfs owned by root, the image runs as meetlite): /tmp instead
    if os.geteuid() == 0:
        ro = os.path.join(tmp, "ro")
        os.makedirs(ro)
        os.chmod(ro, 0o555)
        r = subprocess.run(["runuser", "-u", "nobody", "--", "env", "PATH=%s:/usr/bin:/bin" % fakebin,
                            "MEETLITE_CONFIG=/dev/null", "MEETLITE_RUNTIME_DIR=%s/sub" % ro,
                            "FAKE_OUT=/tmp/ml-container-%d" % os.getpid(), "sh", ENTRY],
                           capture_output=True, text=True, timeout=60)
        a = ""
        try:
            with open("/tmp/ml-container-%d.args" % os.getpid()) as f:
                a = f.read()
        except OSError:
            pass
        for ext in ("args", "env", "conf", "mode"):
            try:
                os.unlink("/tmp/ml-container-%d.%s" % (os.getpid(), ext))
            except OSError:
                pass
        t.ok(r.returncode == 0 and "/tmp/meetlite." in a, "an unwritable runtime directory falls back to /tmp", r.stderr + a)
        for d in [p for p in os.listdir("/tmp") if p.startswith("meetlite.")]:
            if os.stat("/tmp/" + d).st_uid == int(subprocess.check_output(["id", "-u", "nobody"])):
                shutil.rmtree("/tmp/" + d, ignore_errors=True)
    else:
        t.ok(False, "this test runs as root (CI does) to try an unwritable runtime directory")

    # the real daemon through the entrypoint, and the image's HEALTHCHECK command against it
    with open(os.path.join(TOP_SRCDIR, "Containerfile")) as f:
        cf = f.read()
    hc = re.search(r"^HEALTHCHECK .*?CMD (\[.*?\])\s*$", cf, re.M | re.S)
    hc_cmd = json.loads(hc.group(1)) if hc else []
    t.ok(hc_cmd[:1] == ["meetlite-admin"] and hc_cmd[-1] == "health" and "http://127.0.0.1:8081" in hc_cmd,
         "the HEALTHCHECK asks /healthz of the admin listener on loopback", hc_cmd)
    sport, aport = free_port(), free_port()
    e = dict(os.environ, PATH=realbin + ":/usr/bin:/bin", MEETLITE_CONFIG=SAMPLE,
             MEETLITE_RUNTIME_DIR=os.path.join(tmp, "run2"), MEETLITE_TURN_SECRET_FILE=turn)
    logf = open(os.path.join(tmp, "daemon.log"), "w")
    p = subprocess.Popen(["sh", ENTRY, "--set", "turn.listen=udp://127.0.0.1:%d" % sport, "--set", "control.listen=",
                          "--set", "admin.listen=127.0.0.1:%d" % aport, "--set", "net.workers=1"],
                         env=e, stdout=logf, stderr=subprocess.STDOUT)
    try:
        import time
        deadline = time.time() + 30
        hc_rc = None
        args = [CLI if a == "meetlite-admin" else a.replace("8081", str(aport)) for a in hc_cmd]
        while time.time() < deadline and p.poll() is None:
            hc_rc = subprocess.run(args, capture_output=True, timeout=10).returncode
            if hc_rc == 0:
                break
            time.sleep(0.2)
        t.eq(hc_rc, 0, "the HEALTHCHECK command answers 0 with the token the entrypoint made")
        ans = udp_exchange(("127.0.0.1", sport), Msg(BINDING, REQUEST).encode(), timeout=2.0)
        t.ok(ans is not None, "and STUN answers")
        t.ok(p.poll() is None, "meetlited runs as the entrypoint's process (exec)")
        pid_cmd = open("/proc/%d/cmdline" % p.pid).read().split("\0")[0] if p.poll() is None else ""
        t.ok(pid_cmd.endswith("meetlited"), "the entrypoint's PID is meetlited's (signals reach it)", pid_cmd)
        p.terminate()
        p.wait(30)
        t.eq(p.returncode, 0, "SIGTERM stops it cleanly")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        logf.close()

    # ---------------------------------------------------------------- the Containerfile
    froms = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", cf, re.M)
    t.ok(len(froms) == 2 and froms[0][1] == "build" and all(f[0] == "${BASE}" for f in froms),
         "two stages, both on the Debian 12 base (BASE)", froms)
    t.ok(re.search(r"^ARG BASE=localhost/debian:12$", cf, re.M), "BASE defaults to the locally made debian:12")
    final = cf[cf.rindex("\nFROM "):]
    t.ok(re.search(r"^USER meetlite$", final, re.M), "the run stage runs as meetlite, not root")
    t.ok("COPY --from=build" in final and "apt-get install" in final and "meetlite_*.deb" in final,
         "the run stage installs the package the build stage made")
    ign = open(os.path.join(TOP_SRCDIR, ".containerignore")).read().split()
    srcs = [m.split()[0] for m in re.findall(r"^COPY (?!--from)(.*)$", cf, re.M)]
    t.ok(srcs and all(s == "." or os.path.exists(os.path.join(TOP_SRCDIR, s)) for s in srcs),
         "every COPY source exists in the build context", srcs)
    t.ok(not any(s.startswith(i.rstrip("*")) for s in srcs if s != "." for i in ign),
         ".containerignore keeps none of them out", srcs)
    t.ok(".git" in ign and "build-*" in ign and ".run" in ign, ".containerignore keeps build output and local state out")
    with open(os.path.join(TOP_SRCDIR, "debian", "control")) as f:
        ctl = f.read()
    bd = re.search(r"^Build-Depends:(.*?)^\S", ctl, re.M | re.S).group(1)
    deps = [re.sub(r"\s*\(.*", "", d.strip()) for d in bd.split(",") if d.strip()]
    deps = [d for d in deps if not d.startswith("debhelper-compat")]
    build_stage = cf[:cf.rindex("\nFROM ")]
    missing = [d for d in deps if not re.search(r"(?<![\w.-])%s(?![\w.-])" % re.escape(d), build_stage)]
    t.eq(missing, [], "the build stage installs every Build-Depends of debian/control")
    t.ok(stat.S_IMODE(os.stat(ENTRY).st_mode) & 0o111, "the entrypoint is executable in the tree")

    # ---------------------------------------------------------------- compose.yaml
    with open(os.path.join(TOP_SRCDIR, "compose.yaml")) as f:
        comp = yaml.safe_load(f)
    svc = comp.get("services", {})
    t.eq(sorted(svc), ["db", "meetlited"], "compose: meetlited and PostgreSQL")
    ml = svc.get("meetlited", {})
    t.eq(ml.get("network_mode"), "host", "meetlited on the host's network (the relay range)")
    t.eq(ml.get("build", {}).get("dockerfile"), "Containerfile", "built from the Containerfile")
    t.eq(ml.get("depends_on", {}).get("db", {}).get("condition"), "service_healthy", "started once PostgreSQL is healthy")
    declared = set(comp.get("secrets", {}))
    used = set(ml.get("secrets", [])) | set(svc.get("db", {}).get("secrets", []))
    t.ok(used and used <= declared, "every secret a service uses is declared", (used, declared))
    files = [v for k, v in ml.get("environment", {}).items() if k.endswith("_FILE")]
    t.ok(files and all(f.startswith("/run/secrets/") and f[len("/run/secrets/"):] in ml.get("secrets", []) for f in files),
         "every *_FILE names a secret mounted into meetlited", files)
    mlenv = ml.get("environment", {})
    t.ok(not any(k in ("MEETLITE_TURN_SECRET", "MEETLITE_JWT_SECRET", "MEETLITE_ADMIN_TOKEN",
                       "MEETLITE_DATABASE_PASSWORD") for k in mlenv)
         and "password" not in mlenv.get("MEETLITE_DATABASE_URL", "") and "@" not in mlenv.get("MEETLITE_DATABASE_URL", ""),
         "no secret in the compose file's environment (the database URL holds no password)", mlenv)
    t.ok(svc.get("db", {}).get("environment", {}).get("POSTGRES_PASSWORD_FILE"), "PostgreSQL's password from a secret too")
    cmd = ml.get("command", [])
    # plus what the entrypoint adds from the secrets (a database URL, the TURN and JWT secrets):
    # --check-config applies start's rules, which need them
    secrets = ["--set=database.url=" + mlenv.get("MEETLITE_DATABASE_URL", ""),
               "--set=database.password-file=" + put("compose-db-password", "p" * 32 + "\n"),
               "--set=turn.auth-secret-file=" + put("compose-turn-secret", "s" * 32 + "\n"),
               "--set=auth.jwt-secret-file=" + put("compose-jwt-secret", "j" * 40 + "\n")]
    r = subprocess.run([MEETLITED, "--config", SAMPLE] + cmd + secrets + ["--check-config"],
                       capture_output=True, text=True, timeout=30)
    t.ok(r.returncode == 0, "meetlited --check-config accepts the compose command", r.stdout + r.stderr)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(t.done())
