"""meetlite-admin against a running meetlited with PostgreSQL (issue #8): every command as a
readable table and as --json; the token from the environment, a file, standard input or the
daemon's configuration file (and never needed on the command line); exit codes; the help
assistant's knowledge base (kb list, show, add, import, rm, gaps; an operator's edit kept by a
starter import); --help, the man pages and the daemon's --help agreeing."""

import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import MEETLITED, Tap, TOP_SRCDIR  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, migrate  # noqa: E402
from mladmin import CLI, TOKEN, cli, release, tcp_port  # noqa: E402
from turnclient import TurnClient  # noqa: E402

t = Tap()
pg = Postgres()
d = None
conf = None


def js(out):
    try:
        return json.loads(out)
    except ValueError:
        return None


try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "schema migrated", r.stderr)
    port = tcp_port()
    d = ControlDaemon(pg.url, ["admin.listen=127.0.0.1:%d" % port, "admin.token=" + TOKEN,
                               "turn.allow-peers=127.0.0.0/8", "turn.relay-ports=45000-45999"])
    url = "http://127.0.0.1:%d" % port
    U = ["-u", url]
    server = ("127.0.0.1", d.turn_port)

    # ------------------------------------------------------------ where the token comes from
    rc, out, err = cli(*U, "stats", token=None)
    t.ok(rc == 1 and "401" in err and "unauthenticated" in err, "no token: exit 1 with the 401", err)
    rc, out, err = cli(*U, "stats")
    t.ok(rc == 0 and out.startswith("meetlited ") and "relay " in out and "control " in out,
         "stats with the token from MEETLITE_ADMIN_TOKEN", out + err)
    with tempfile.NamedTemporaryFile("w", suffix=".token", delete=False) as f:
        f.write(TOKEN + "\n")
        tokfile = f.name
    rc, out, err = cli(*U, "--token-file", tokfile, "health", token=None)
    t.ok(rc == 0 and out.strip() == "ok", "--token-file", out + err)
    rc, out, err = cli(*U, "--token-file", "-", "--json", "drain", token=None, stdin=TOKEN + "\n")
    t.ok(rc == 0 and js(out) == {"draining": False}, "--token-file - reads standard input", out + err)
    os.unlink(tokfile)
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write("[admin]\nlisten = 127.0.0.1:%d\ntoken = %s, another-token-0123456789\n"
                "[database]\nurl = %s\n" % (port, TOKEN, pg.url))
        conf = f.name
    rc, out, err = cli("-c", conf, "log-level", token=None)
    t.ok(rc == 0 and out.strip() == "log level: info", "-c: URL and token from meetlited's configuration", out + err)
    rc, out, err = cli(*U, "stats", token="wrong-token-of-some-length")
    t.ok(rc == 1 and "invalid_token" in err, "a wrong token: exit 1", err)
    rc, out, err = cli("-u", "http://127.0.0.1:1", "stats")
    t.ok(rc == 3, "nobody listening: exit 3", out + err)
    rc, out, err = cli(*U, "no-such-command")
    t.ok(rc == 2 and "unknown command" in err, "an unknown command: exit 2", err)
    rc, out, err = cli(*U, "credential")
    t.ok(rc == 2 and "usage" in err, "a command without its argument: exit 2", err)

    # ------------------------------------------------------------ users
    rc, out, err = cli(*U, "users", "add", "frank", "--password-file", "-", stdin="frank-pass-123\n")
    t.ok(rc == 0 and "user frank created in realm meetlite" in out and "frank-pass-123" not in out,
         "users add with the password on standard input", out + err)
    c = TurnClient(server)
    c.login("frank", "frank-pass-123")
    t.ok(c.allocate(expect_ok=False).cls == 2, "frank allocates")
    rc, out, err = cli(*U, "users", "add", "gina")
    m = re.search(r"^password: (\S+)$", out, re.M)
    t.ok(rc == 0 and m, "users add without a password makes one up and shows it once", out + err)
    g = TurnClient(server)
    g.login("gina", m.group(1) if m else "")
    t.ok(g.allocate(expect_ok=False).cls == 2, "the made-up password works")
    release(g)
    rc, out, err = cli(*U, "users")
    t.ok(rc == 0 and re.search(r"^NAME +CREATED$", out, re.M) and re.search(r"^frank +20\d\d-", out, re.M)
         and "2 users" in out, "users: a table", out + err)
    rc, out, err = cli(*U, "--json", "users", "list")
    j = js(out)
    t.ok(rc == 0 and j and sorted(u["name"] for u in j["users"]) == ["frank", "gina"], "users --json", out)
    rc, out, err = cli(*U, "users", "add", "frank", "--password-file", "-", stdin="xxxxxxxxxx\n")
    t.ok(rc == 1 and "409" in err, "users add of an existing name: exit 1, 409", err)

    # ------------------------------------------------------------ allocations, close
    rc, out, err = cli(*U, "allocations")
    t.ok(rc == 0 and out.startswith("1 allocation") and re.search(r"^ID +TRANSPORT +CLIENT", out, re.M)
         and "frank" in out, "allocations: a table", out + err)
    rc, out, err = cli(*U, "--json", "allocations", "--user", "frank")
    j = js(out)
    t.ok(rc == 0 and j["total"] == 1 and j["allocations"][0]["credential_id"] == "frank", "allocations --json --user", out)
    host, cport = c.sock.getsockname()[:2]
    rc, out, err = cli(*U, "allocations", "--client", "%s:%d" % (host, cport))
    t.ok(rc == 0 and out.startswith("1 allocation"), "allocations --client", out + err)
    rc, out, err = cli(*U, "close")
    t.ok(rc == 2, "close without a filter: exit 2", err)
    rc, out, err = cli(*U, "close", "--id", j["allocations"][0]["id"])
    t.ok(rc == 0 and out.strip() == "1 allocation closed", "close --id", out + err)
    rc, out, err = cli(*U, "users", "delete", "frank")
    t.ok(rc == 0 and "user frank deleted; 0 allocations closed" in out, "users delete", out + err)
    c.close()

    # ------------------------------------------------------------ secrets, credential
    rc, out, err = cli(*U, "secrets", "add", "--secret-file", "-", stdin="cli-secret-0123456789abc\n")
    t.ok(rc == 0 and "secret 1 added" in out and "cli-secret" not in out, "secrets add from standard input", out + err)
    rc, out, err = cli(*U, "secrets", "add")
    m = re.search(r"^secret: (\S+)$", out, re.M)
    t.ok(rc == 0 and m and len(m.group(1)) >= 40, "secrets add makes one up and shows it once", out + err)
    rc, out, err = cli(*U, "secrets")
    t.ok(rc == 0 and "signed with database secret" in out and re.search(r"^ID +CREATED +FINGERPRINT +SIGNING$", out, re.M)
         and re.search(r"^2 .* yes$", out, re.M), "secrets: a table, the newest signing", out + err)
    rc, out, err = cli(*U, "secrets", "retire", "1")
    t.ok(rc == 0 and "secret 1 retired" in out, "secrets retire", out + err)
    rc, out, err = cli(*U, "--json", "secrets")
    j = js(out)
    t.ok(rc == 0 and [s["id"] for s in j["secrets"]] == [2], "secrets --json", out)
    rc, out, err = cli(*U, "credential", "p.1", "--ttl", "90")
    user = re.search(r"^username: (\S+)$", out, re.M)
    pw = re.search(r"^password: (\S+)$", out, re.M)
    t.ok(rc == 0 and user and pw and "expires:" in out, "credential: username, password, expiry", out + err)
    c = TurnClient(server)
    c.login(user.group(1), pw.group(1))
    t.ok(c.allocate(expect_ok=False).cls == 2, "the credential allocates")
    release(c)
    rc, out, err = cli(*U, "--json", "credential", "p.2")
    j = js(out)
    t.ok(rc == 0 and j and j["username"].endswith(":p.2") and j["password"], "credential --json", out)

    # ------------------------------------------------------------ the rest
    rc, out, err = cli(*U, "--json", "stats", "--top", "3")
    j = js(out)
    t.ok(rc == 0 and j["allocations_per_meeting"]["limit"] == 3 and j["control"]["enabled"],
         "stats --json --top", out[:500])
    rc, out, err = cli(*U, "metrics")
    t.ok(rc == 0 and "# TYPE turn_total_allocations gauge" in out, "metrics prints the Prometheus text", out[:300])
    rc, out, err = cli(*U, "ready")
    t.ok(rc == 0 and out.strip() == "ready, database up, draining no", "ready", out + err)
    rc, out, err = cli(*U, "drain", "on")
    t.ok(rc == 0 and out.strip() == "draining: yes", "drain on", out + err)
    rc, out, err = cli(*U, "ready")
    t.ok(rc == 1 and "not_ready" in out, "ready: exit 1 while draining", out + err)
    rc, out, err = cli(*U, "drain", "off")
    t.ok(rc == 0 and out.strip() == "draining: no", "drain off", out + err)
    rc, out, err = cli(*U, "log-level", "notice")
    t.ok(rc == 0 and out.strip() == "log level: notice", "log-level notice", out + err)
    rc, out, err = cli(*U, "log-level", "chatty")
    t.ok(rc == 1 and "422" in err, "log-level with an unknown level: exit 1, 422", err)
    rc, out, err = cli(*U, "usage", "abc-defg-hij")
    t.ok(rc == 1 and "404" in err, "usage of an unknown meeting: exit 1, 404", err)
    # ------------------------------------------------------------ the knowledge base (issue #18)
    kb_dir = os.path.join(TOP_SRCDIR, "kb")
    shipped = sum(1 for root, _, names in os.walk(kb_dir) for n in names
                  if n.endswith(".md") and n.lower() != "readme.md")
    rc, out, err = cli(*U, "kb", "list")
    t.ok(rc == 0 and out.startswith("%d articles" % shipped) and "camera-black" in out and
         "starter" in out, "kb list: the %d starter articles loaded by the migration" % shipped,
         out[:300] + err)
    with tempfile.TemporaryDirectory() as kbtmp:
        os.mkdir(os.path.join(kbtmp, "en"))
        mine = os.path.join(kbtmp, "en", "lecture-hall-wifi.md")
        with open(mine, "w") as f:
            f.write("---\ntitle: The lecture hall's Wi-Fi\nslug: lecture-hall-wifi\nlanguage: en\n"
                    "audience: student\ntags: eduroam, lecture hall\n---\nUse eduroam.\n\n"
                    "## Signing in to eduroam\nYour university account and password.\n")
        rc, out, err = cli(*U, "kb", "add", mine)
        t.ok(rc == 0 and out.startswith("created") and "lecture-hall-wifi (2 passages)" in out,
             "kb add FILE: created, with its passages", out + err)
        rc, out, err = cli(*U, "kb", "add", mine)
        t.ok(rc == 0 and out.startswith("unchanged"), "kb add of the same file: unchanged", out + err)
        rc, out, err = cli(*U, "kb", "show", "lecture-hall-wifi")
        t.ok(rc == 0 and "The lecture hall's Wi-Fi" in out and "## Signing in to eduroam" in out,
             "kb show SLUG: the Markdown", out + err)
        rc, out, err = cli(*U, "--json", "kb", "list")
        arts = {a["slug"]: a for a in (js(out) or {}).get("articles", [])}
        t.ok(rc == 0 and arts.get("lecture-hall-wifi", {}).get("origin") == "operator" and
             len(arts) == shipped + 1, "kb list --json: the new article is the operator's", out[:300])
        # an operator's edit of a starter article survives a starter import (an upgrade)
        with open(os.path.join(kb_dir, "en", "vpn.md")) as f:
            vpn = f.read()
        edited = os.path.join(kbtmp, "en", "vpn.md")
        with open(edited, "w") as f:
            f.write(vpn + "\n## Our campus VPN\nUse the campus VPN profile for meetings.\n")
        rc, out, err = cli(*U, "kb", "add", edited)
        t.ok(rc == 0 and out.startswith("updated") and "vpn" in out, "kb add of an edited starter "
             "article: updated", out + err)
        rc, out, err = cli(*U, "kb", "import", kb_dir, "--starter")
        t.ok(rc == 0 and "%d files: 0 created, 0 updated, %d unchanged, 1 kept" % (shipped, shipped - 1)
             in out and "kept     vpn" in out, "kb import DIR --starter: nothing duplicated, the "
             "operator's edit kept", out[-300:] + err)
        rc, out, err = cli(*U, "kb", "show", "vpn")
        t.ok(rc == 0 and "Our campus VPN" in out, "the edit is still there", out[-200:] + err)
        count = pg.psql("SELECT count(*) FROM kb_articles")
        t.eq(count, str(shipped + 1), "one row per slug after every import")
        bad = os.path.join(kbtmp, "en", "broken.md")
        with open(bad, "w") as f:
            f.write("no header here\n")
        rc, out, err = cli(*U, "kb", "import", kbtmp)
        t.ok(rc == 1 and "422" in err and "header" in err and "broken.md" in err and
             "some failed" in out, "kb import with a bad file: exit 1, the file and why", out + err)
        with open(os.path.join(kbtmp, "en", "latin1.md"), "wb") as f:
            f.write(b"---\ntitle: caf\xe9\n---\n")
        rc, out, err = cli(*U, "kb", "add", os.path.join(kbtmp, "en", "latin1.md"))
        t.ok(rc == 2 and "not UTF-8" in err, "kb add of a file that is not UTF-8: exit 2", err)
    rc, out, err = cli(*U, "kb", "rm", "lecture-hall-wifi")
    t.ok(rc == 0 and "deleted" in out, "kb rm SLUG", out + err)
    rc, out, err = cli(*U, "kb", "rm", "lecture-hall-wifi")
    t.ok(rc == 1 and "404" in err, "kb rm of an unknown slug: exit 1, 404", err)
    rc, out, err = cli(*U, "kb", "frobnicate")
    t.ok(rc == 2 and "usage" in err, "kb with an unknown subcommand: exit 2", err)
    # gaps: what students asked that found nothing
    stok, _ = d.api.user("asker@example.org")
    for q in ("can I print the whiteboard", "Can I print the whiteboard?", "how do I bake bread",
              "my camera is black"):
        r = d.api.post("/api/v1/assistant/ask", {"question": q}, stok)
        t.ok(r.status == 200, "asked: %s" % q, r)
    rc, out, err = cli(*U, "kb", "gaps")
    lines = out.splitlines()
    t.ok(rc == 0 and lines[0].startswith("2 unanswered questions in the last 30 days") and
         "print the whiteboard" in lines[2] and lines[2].split()[0] == "2" and
         "camera is black" not in out, "kb gaps: the unanswered ones, most asked first", out + err)
    rc, out, err = cli(*U, "--json", "kb", "gaps", "--days", "1", "--limit", "1")
    g = js(out) or {}
    t.ok(rc == 0 and g.get("days") == 1 and len(g.get("gaps", [])) == 1 and
         g["gaps"][0]["asked"] == 2 and g["gaps"][0]["accounts"] == 1,
         "kb gaps --json --days --limit", out + err)
    rc, out, err = cli(*U, "kb", "gaps", "--days", "0")
    t.ok(rc == 2, "kb gaps --days 0: exit 2", err)
    rc, out, err = cli("-c", conf, "migrate", token=None)
    t.ok(rc == 0 and "(0 migrations applied" in out, "migrate with database.url from -c", out + err)
    t.ok(TOKEN not in d.log(), "no token in the daemon's log")
finally:
    if d:
        t.ok(d.clean(), "clean exit, no sanitizer report", d.log()[-3000:])
        d.close()
    pg.close()
    if conf:
        os.unlink(conf)

# ---------------------------------------------------------------- help and man pages agree
helptext = subprocess.run([CLI, "--help"], capture_output=True, text=True).stdout
man1 = open(os.path.join(TOP_SRCDIR, "man", "meetlite-admin.1")).read()
man_text = man1.replace("\\-", "-").replace("\\fB", "").replace("\\fR", "").replace("\\fI", "")
opts = set(re.findall(r"--[a-z][a-z-]+", helptext))
t.ok(len(opts) >= 8, "meetlite-admin --help lists its options (%d)" % len(opts))
t.eq(sorted(o for o in opts if o not in man_text), [], "every option of --help is in meetlite-admin(1)")
cmds = set(re.findall(r"^  ([a-z][a-z-]+)(?: |$)", helptext.split("Commands:")[1], re.M))
t.ok(len(cmds) >= 12, "--help lists the commands (%d)" % len(cmds))
t.eq(sorted(c for c in cmds if not re.search(r"^\.B %s\b" % re.escape(c), man_text, re.M)), [],
     "every command of --help is in meetlite-admin(1)")
helptext = subprocess.run([MEETLITED, "--help"], capture_output=True, text=True).stdout
man8 = open(os.path.join(TOP_SRCDIR, "man", "meetlited.8")).read().replace("\\-", "-")
opts = set(re.findall(r"--[a-z][a-z-]+", helptext.split("Configuration keys")[0]))
t.eq(sorted(o for o in opts if o not in man8), [], "every option of meetlited --help is in meetlited(8)")
sections = set(re.findall(r"^\[([a-z]+)\]$", helptext, re.M))
t.eq(sorted(s for s in sections if "[%s]" % s not in man8), [], "every configuration section is in meetlited(8)")
keys = set(re.findall(r"^  (admin\.[a-z-]+) \(", helptext, re.M))
t.eq(sorted(k for k in keys if k not in man8), [], "every admin.* key is in meetlited(8)")

sys.exit(t.done())
