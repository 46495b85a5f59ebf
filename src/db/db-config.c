/* The [database] configuration section: where PostgreSQL is, the pool, migrations. */
#include "config.h"

#include "db/db.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define K(f) ML_CFG_FIELD(struct db_config, f)

const struct ml_cfg_key db_cfg_keys[] = {
    {"url", ML_CFG_STR, "", 0, 4096, ML_CFG_SECRET, K(url), NULL, NULL,
     "libpq connection string of the meetings database, e.g. \"host=/run/postgresql "
     "dbname=meetlite user=meetlite\" or postgresql://user:pass@host/db. Needed by the "
     "control plane. A TURN-only node sets it too, to learn revocations (LISTEN) and write "
     "usage records; it keeps relaying when the database is away. Empty: no database. Keep "
     "the password out of it: database.password-file (or libpq's own passfile=)."},
    {"password", ML_CFG_STR, "", 0, 1024, ML_CFG_SECRET, K(password), NULL, NULL,
     "Password of the database role, added to database.url as libpq's password parameter "
     "(it wins over one in the URL). Prefer database.password-file."},
    {"password-file", ML_CFG_STR, "", 0, 4096, ML_CFG_FILE, K(password_file), NULL, NULL,
     "File holding database.password." ML_CFG_FILE_HELP("database.password")},
    {"pool-size", ML_CFG_INT, "4", 1, 64, 0, K(pool_size), NULL, NULL,
     "Database threads, each with its own connection. Queries, password hashing and token "
     "signing run on them, never on the HTTP thread."},
    {"migrate-on-start", ML_CFG_BOOL, "no", 0, 0, 0, K(migrate_on_start), NULL, NULL,
     "Apply the pending schema migrations at start (as meetlited --migrate does). Safe with "
     "several nodes: they take an advisory lock and take turns."},
    {"migrations-dir", ML_CFG_STR, "", 0, 4096, 0, K(migrations_dir), NULL, NULL,
     "Directory of the NNN_name.sql migrations. Empty: the installed share/meetlite/sql, or the "
     "source tree's sql/ when running uninstalled."},
    {"connect-timeout", ML_CFG_DURATION, "5s", 1, 600, 0, K(connect_timeout_s), NULL, NULL,
     "Longest wait for a connection to PostgreSQL."},
    {"statement-timeout", ML_CFG_INT, "5000", 0, 3600000, 0, K(statement_timeout_ms), NULL, NULL,
     "PostgreSQL statement_timeout of every connection, in milliseconds (0: none)."},
    {"max-queue", ML_CFG_INT, "4096", 1, 1000000, 0, K(max_queue), NULL, NULL,
     "Requests waiting for a database thread; beyond it requests get 503 at once."},
    {"reconnect-max", ML_CFG_INT, "5000", 100, 600000, 0, K(reconnect_max_ms), NULL, NULL,
     "Reconnect backoff ceiling in milliseconds: a lost connection is retried after 100 ms, "
     "then twice as long each time up to this. Applies to the pool, the LISTEN connection for "
     "revocations and the usage writer."},
    {"listen-keepalive", ML_CFG_DURATION, "10s", 1, 3600, 0, K(listen_keepalive_s), NULL, NULL,
     "How often the LISTEN connection (TURN revocations from every control-plane node) checks "
     "an idle connection with a query; one that does not answer within as long again is "
     "dropped and made again, with a catch-up on the revocations it may have missed."},
    {NULL, 0, NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};

/* Appends "keyword='value'" to b, quoted as libpq's conninfo parser expects. 0 or -1. */
static int conninfo_add(struct ml_buf *b, const char *kw, const char *val)
{
    int rc = ml_buf_printf(b, "%s%s='", b->len ? " " : "", kw);
    for (const char *p = val; *p && rc == 0; p++) {
        if (*p == '\'' || *p == '\\')
            rc = ml_buf_add(b, "\\", 1);
        if (rc == 0)
            rc = ml_buf_add(b, p, 1);
    }
    return rc == 0 ? ml_buf_add(b, "'", 1) : -1;
}

int db_conninfo_add_password(struct db_config *cfg, char *err, size_t errlen)
{
    if (!cfg->password)
        return 0;
    if (!cfg->url)
        return ml_err(err, errlen, "database.password needs database.url");
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(cfg->url, &perr);
    if (!opts) {
        /* libpq's message may quote the string, which may hold a password: not passed on */
        PQfreemem(perr);
        return ml_err(err, errlen, "database.url is not a valid libpq connection string");
    }
    /* the URL's own parameters, then ours: libpq has no other safe way to combine them */
    struct ml_buf b = ML_BUF_INIT(65536);
    int rc = 0;
    for (PQconninfoOption *o = opts; o->keyword && rc == 0; o++)
        if (o->val && strcmp(o->keyword, "password") != 0)
            rc = conninfo_add(&b, o->keyword, o->val);
    if (rc == 0)
        rc = conninfo_add(&b, "password", cfg->password);
    PQconninfoFree(opts);
    char *merged = ml_buf_take(&b);
    if (rc < 0 || !merged) {
        if (merged) {
            ml_wipe(merged, strlen(merged));
            free(merged);
        }
        return ml_err(err, errlen, "database.url with its password: too long");
    }
    ml_wipe(cfg->url, strlen(cfg->url));
    free(cfg->url);
    cfg->url = merged;
    return 0;
}
