/* Internals of the database subsystem shared by its files: the reconnect backoff of the pool
 * and the LISTEN thread, the latency histogram's buckets, and the list of migration files.
 * Pure functions, so that tests/unit/test_db.c checks them without a server. Nothing outside
 * src/db includes this header. */
#ifndef ML_DB_INT_H
#define ML_DB_INT_H

#include "db/db.h"

#define DB_BACKOFF_MIN_MS 100 /* the first retry after a failed or lost connection */

/* The next reconnect delay: *backoff_ms (0 when the connection was up) doubles from
 * DB_BACKOFF_MIN_MS to at most max_ms and is stored back; the wait returned adds a jitter of
 * less than a quarter of it, taken from random, so that N threads do not reconnect in step. */
int64_t db_backoff_next(int64_t *backoff_ms, int64_t max_ms, uint32_t random);

/* The latency histogram bucket of a job that ran run_us microseconds: the first bound of
 * db_latency_bounds_s it does not exceed, or DB_LATENCY_BUCKETS beyond the last. */
unsigned db_latency_bucket(int64_t run_us);

/* Most migration files in a directory, and the largest one read. */
#define DB_MAX_MIGRATIONS 512
#define DB_MAX_SQL_FILE (4 << 20)

struct db_migration {
    int version; /* NNN of NNN_name.sql */
    char name[256];
};

/* The version of a migration file name ("001_init.sql": 1), or -1 when the name is not one:
 * three digits, an underscore, a name of at least one character, ".sql". */
int db_migration_version(const char *name);

/* The migrations of dir (regular files named as above; anything else is ignored), in order of
 * version, into a malloc'd array (caller frees; NULL when there is none). 0, or -1 with err
 * filled: dir unreadable, two files of one version, more than DB_MAX_MIGRATIONS. */
int db_migrations_list(const char *dir, struct db_migration **out, size_t *n, char *err,
                       size_t errlen) ML_WUR;

#endif
