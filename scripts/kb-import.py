#!/usr/bin/env python3
"""Loads knowledge-base articles (kb/<lang>/<slug>.md) into meetlite's PostgreSQL.

Each article is a Markdown file that opens with a small header:

    ---
    title: My camera is black
    slug: camera-black          (the file's name without .md)
    language: en                (two letters; the folder's name when it is two letters)
    audience: student           (student, host or operator)
    tags: camera, webcam, black screen
    ---
    Markdown body ...

The database does the work (ml_kb_upsert_article in sql/009_kb.sql splits, indexes and counts);
this script only reads and checks the files and sends one call per article.

    kb-import.py [--origin starter|operator] --url CONNINFO PATH...   load through psql
    kb-import.py [--origin starter|operator] --sql PATH...            print the SQL instead

PATH is a .md file or a folder (searched recursively; README.md files are skipped). The
connection string may also come from $MEETLITE_DATABASE_URL, which keeps a password off the
command line; it reaches psql through PG* environment variables, never its arguments. The
whole import is one transaction: an invalid article changes nothing. With --sql, the output is
what sql/010_kb_starter.sql holds (`--origin starter --sql kb`).

Exit status: 0 success, 1 an article or the database refused, 2 bad usage.
Python standard library only (the C admin CLI, `meetlite-admin kb import`, replaces it).
"""

import argparse
import os
import re
import subprocess
import sys
import urllib.parse

KEYS = ("title", "slug", "language", "audience", "tags")
AUDIENCES = ("student", "host", "operator")
SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
MAX_BODY = 65536


class ArticleError(Exception):
    pass


def parse_article(path):
    """Reads one article file; returns a dict with title, slug, language, audience, tags, body."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BODY + 4096 + 1)
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ArticleError("%s: not UTF-8 (%s)" % (path, e))
    except OSError as e:
        raise ArticleError("%s: %s" % (path, e.strerror))
    if "\0" in text:
        raise ArticleError("%s: contains a NUL character" % path)
    text = text.replace("\r\n", "\n")
    if not text.startswith("---\n"):
        raise ArticleError("%s: the file must open with a '---' header line" % path)
    end = text.find("\n---\n", 3)
    if end < 0:
        raise ArticleError("%s: the header has no closing '---' line" % path)
    meta = {}
    for n, line in enumerate(text[4:end].split("\n"), start=2):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or key not in KEYS:
            raise ArticleError("%s:%d: expected one of %s, then ':'" % (path, n, ", ".join(KEYS)))
        if key in meta:
            raise ArticleError("%s:%d: %s given twice" % (path, n, key))
        meta[key] = value.strip()
    for key in ("title", "slug", "language", "audience"):
        if not meta.get(key):
            raise ArticleError("%s: the header needs %s" % (path, key))
    body = text[end + 5:].strip("\n") + "\n"
    if not body.strip():
        raise ArticleError("%s: the article has no body" % path)
    if len(body) > MAX_BODY:
        raise ArticleError("%s: the body is longer than %d characters" % (path, MAX_BODY))
    stem = os.path.splitext(os.path.basename(path))[0]
    if not SLUG.match(meta["slug"]) or len(meta["slug"]) > 80:
        raise ArticleError("%s: slug: 1 to 80 of a-z, 0-9 and single hyphens" % path)
    if meta["slug"] != stem:
        raise ArticleError("%s: the slug %r differs from the file's name" % (path, meta["slug"]))
    if not re.match(r"^[a-z]{2}$", meta["language"]):
        raise ArticleError("%s: language: a two-letter code such as en" % path)
    folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
    if re.match(r"^[a-z]{2}$", folder) and folder != meta["language"]:
        raise ArticleError("%s: language %s in folder %s/" % (path, meta["language"], folder))
    if meta["audience"] not in AUDIENCES:
        raise ArticleError("%s: audience: one of %s" % (path, ", ".join(AUDIENCES)))
    if len(meta["title"]) > 200:
        raise ArticleError("%s: title: at most 200 characters" % path)
    tags = [t.strip() for t in meta.get("tags", "").split(",") if t.strip()]
    if len(tags) > 20 or any(len(t) > 40 for t in tags):
        raise ArticleError("%s: tags: at most 20, each at most 40 characters" % path)
    return {"path": path, "title": meta["title"], "slug": meta["slug"],
            "language": meta["language"], "audience": meta["audience"], "tags": tags,
            "body": body}


def find_articles(paths):
    """Every article file under the paths, in a stable order (by language folder, then slug)."""
    files = []
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, names in os.walk(p):
                dirs.sort()
                for name in sorted(names):
                    if name.endswith(".md") and name.lower() != "readme.md":
                        files.append(os.path.join(root, name))
        elif os.path.isfile(p):
            files.append(p)
        else:
            raise ArticleError("%s: no such file or folder" % p)
    return files


def dollar(s):
    """s as a dollar-quoted SQL literal whose tag does not occur in s."""
    n = 0
    while True:
        tag = "$kb%s$" % (n or "")
        if tag not in s:
            return tag + s + tag
        n += 1


def article_sql(a, origin):
    tags = "ARRAY[%s]::text[]" % ", ".join(dollar(t) for t in a["tags"])
    where = os.path.join(os.path.basename(os.path.dirname(a["path"])), os.path.basename(a["path"]))
    where = re.sub(r"[^A-Za-z0-9._/-]", "_", where)  # inside a RAISE format string
    return ("DO $do$\nDECLARE\n    r record;\nBEGIN\n"
            "    SELECT * INTO r FROM ml_kb_upsert_article(\n"
            "        %s,\n        %s,\n        %s,\n        %s, %s, %s, %s);\n"
            "    IF r.outcome = 'invalid' THEN\n"
            "        RAISE EXCEPTION 'kb %s: %%', r.message;\n"
            "    END IF;\n"
            "    RAISE NOTICE 'kb %s: %% (%% passages)', r.outcome, r.passages;\n"
            "END\n$do$;\n") % (dollar(a["slug"]), dollar(a["title"]), dollar(a["body"]), tags,
                               dollar(a["language"]), dollar(a["audience"]), dollar(origin),
                               where, a["slug"])


def build_sql(articles, origin):
    seen = {}
    for a in articles:
        if a["slug"] in seen:
            raise ArticleError("%s: slug %s is also used by %s" % (a["path"], a["slug"],
                                                                  seen[a["slug"]]))
        seen[a["slug"]] = a["path"]
    head = ("-- %d knowledge-base articles (origin %s), generated by scripts/kb-import.py from their\n"
            "-- Markdown files. Do not edit: change the articles and generate it again.\n"
            % (len(articles), origin))
    return head + "".join(article_sql(a, origin) for a in articles)


# libpq connection keywords and the environment variables psql reads them from
ENV_OF = {
    "host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT", "dbname": "PGDATABASE",
    "user": "PGUSER", "password": "PGPASSWORD", "passfile": "PGPASSFILE",
    "service": "PGSERVICE", "options": "PGOPTIONS", "application_name": "PGAPPNAME",
    "sslmode": "PGSSLMODE", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY",
    "sslrootcert": "PGSSLROOTCERT", "sslcrl": "PGSSLCRL", "requiressl": "PGREQUIRESSL",
    "connect_timeout": "PGCONNECT_TIMEOUT", "target_session_attrs": "PGTARGETSESSIONATTRS",
    "channel_binding": "PGCHANNELBINDING", "gssencmode": "PGGSSENCMODE",
    "krbsrvname": "PGKRBSRVNAME", "client_encoding": "PGCLIENTENCODING",
}


def conninfo_env(url):
    """A libpq connection string (key=value pairs or a postgresql:// URI) as PG* variables."""
    params = {}
    if url.startswith(("postgresql://", "postgres://")):
        u = urllib.parse.urlsplit(url)
        if u.username:
            params["user"] = urllib.parse.unquote(u.username)
        if u.password:
            params["password"] = urllib.parse.unquote(u.password)
        if u.hostname:
            params["host"] = urllib.parse.unquote(u.hostname)
        if u.port:
            params["port"] = str(u.port)
        if u.path.strip("/"):
            params["dbname"] = urllib.parse.unquote(u.path.lstrip("/"))
        for k, v in urllib.parse.parse_qsl(u.query, keep_blank_values=True):
            params[k] = v
    else:
        for m in re.finditer(r"\s*([A-Za-z_]+)\s*=\s*('((?:[^'\\]|\\.)*)'|[^\s']*)", url):
            value = m.group(3) if m.group(3) is not None else m.group(2)
            params[m.group(1)] = re.sub(r"\\(.)", r"\1", value)
        rest = re.sub(r"\s*([A-Za-z_]+)\s*=\s*('((?:[^'\\]|\\.)*)'|[^\s']*)", "", url).strip()
        if rest:
            raise ArticleError("cannot read the connection string near %r" % rest[:20])
    env = {}
    for k, v in params.items():
        if k not in ENV_OF:
            raise ArticleError("connection parameter %s is not supported here" % k)
        env[ENV_OF[k]] = v
    return env


def run_psql(url, sql):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(conninfo_env(url))
    r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=terse",
                        "--single-transaction",
                        "-f", "-"], input=sql, env=env, capture_output=True, text=True,
                       timeout=600)
    for line in r.stderr.splitlines():
        m = re.search(r"NOTICE:\s+kb (.*)$", line)
        if m:
            print(m.group(1))
        elif line.strip():
            print(line, file=sys.stderr)
    return r.returncode


def main(argv):
    ap = argparse.ArgumentParser(description="Load knowledge-base articles into PostgreSQL.")
    ap.add_argument("paths", nargs="+", metavar="PATH", help="an article file or a folder")
    ap.add_argument("--url", help="libpq connection string (default: $MEETLITE_DATABASE_URL)")
    ap.add_argument("--sql", action="store_true", help="print the SQL, do not run it")
    ap.add_argument("--origin", choices=("starter", "operator"), default="operator",
                    help="starter: never overwrite an article an operator edited")
    args = ap.parse_args(argv)
    try:
        articles = [parse_article(p) for p in find_articles(args.paths)]
        if not articles:
            raise ArticleError("no article (*.md) under %s" % " ".join(args.paths))
        sql = build_sql(articles, args.origin)
        if args.sql:
            sys.stdout.write(sql)
            return 0
        url = args.url or os.environ.get("MEETLITE_DATABASE_URL")
        if not url:
            ap.error("--url or $MEETLITE_DATABASE_URL is needed (or --sql)")
        return 0 if run_psql(url, sql) == 0 else 1
    except ArticleError as e:
        print("kb-import: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
