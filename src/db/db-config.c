/* The [database] configuration section: where PostgreSQL is, the pool, migrations. */
#include "config.h"

#include "db/db.h"

#include <stddef.h>

#define K(f) ML_CFG_FIELD(struct db_config, f)

const struct ml_cfg_key db_cfg_keys[] = {
    {"url", ML_CFG_STR, "", 0, 4096, ML_CFG_SECRET, K(url), NULL, NULL,
     "libpq connection string of the meetings database, e.g. \"host=/run/postgresql "
     "dbname=meetlite user=meetlite\" or postgresql://user:pass@host/db. Needed by the "
     "control plane. A TURN-only node sets it too, to learn revocations (LISTEN) and write "
     "usage records; it keeps relaying when the database is away. Empty: no database."},
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
