/* The PostgreSQL subsystem: a small pool of database threads, each with its own libpq
 * connection, fed by one job queue; results handed back to the owner's thread through a
 * completion queue; numbered SQL migrations. Prefix: db_. Nothing here logs. */
#ifndef ML_DB_H
#define ML_DB_H

#include "common/common.h"

#include <libpq-fe.h>

/* The [database] configuration section. */
struct db_config {
    char *url;             /* libpq connection string; NULL: no database */
    char *password;        /* merged into url by db_conninfo_add_password at load */
    char *password_file;   /* the file password was read from */
    long long pool_size;   /* database threads (one connection each) */
    bool migrate_on_start; /* apply sql/NNN_*.sql at start */
    char *migrations_dir;  /* NULL: installed pkgdatadir/sql, else the source tree's sql/ */
    long long connect_timeout_s;
    long long statement_timeout_ms;
    long long max_queue;          /* queued jobs beyond which submissions fail (overload) */
    long long reconnect_max_ms;   /* the reconnect backoff grows to this */
    long long listen_keepalive_s; /* how often the LISTEN connection checks itself */
};
extern const struct ml_cfg_key db_cfg_keys[];
/* Puts database.password (when set) into database.url as its password parameter: the URL (a
 * keyword string or a postgresql:// URI) becomes a keyword string with every value quoted, so
 * no character of the password can change another parameter. 0, or -1 with err (which never
 * quotes the URL). */
int db_conninfo_add_password(struct db_config *cfg, char *err, size_t errlen) ML_WUR;

/* Outcome of a job, set by the pool (DB_UNAVAILABLE) or by the work function. */
enum db_status {
    DB_OK = 0,
    DB_UNAVAILABLE, /* no connection: the caller answers 503 with Retry-After */
    DB_FAILED,      /* the work function reported an error (its own result says which) */
};

struct db_conn;
struct db_job;

/* Runs on a database thread with a live connection. Returns DB_OK, DB_FAILED (a result
 * recorded by the job itself), or DB_UNAVAILABLE when the connection broke under it. */
typedef enum db_status (*db_work_fn)(struct db_conn *c, struct db_job *job);
/* Runs on the owner's thread from db_pool_drain(), once per submitted job. */
typedef void (*db_done_fn)(struct db_job *job);
/* Called from a database thread when the completion queue becomes non-empty (for example
 * lws_cancel_service): it must be safe to call from any thread. */
typedef void (*db_wake_fn)(void *arg);

/* A unit of work. The submitter embeds it in its own struct (container_of) and owns it; the
 * pool touches only these fields, and the work function only what the submitter put there
 * for it: never pointers into state that may die while the job runs. */
struct db_job {
    struct db_job *next; /* pool private */
    db_work_fn work;
    db_done_fn done;
    enum db_status status; /* set before done() runs */
    int64_t queued_us;     /* pool private: for the queue-wait figure */
};

/* A prepared statement, declared once (static) and prepared lazily on each connection. Its
 * result columns are named by an enum declared beside it (no positional column numbers in
 * the code that reads it): ncols is that enum's count, checked against every result in
 * --enable-devel builds (0: not checked). */
struct db_stmt {
    const char *name; /* unique among statements */
    const char *sql;
    int nparams;
    int ncols;
};

struct db_pool;

/* Creates the pool and starts its threads; connections are made by the threads (so a
 * database that is down at start is not fatal: the pool reports unavailable until it comes
 * up). cfg is copied. Returns NULL with err filled. */
struct db_pool *db_pool_new(const struct db_config *cfg, db_wake_fn wake, void *wake_arg, char *err,
                            size_t errlen) ML_WUR;
/* Stops the threads (a running job finishes; queued ones complete as DB_UNAVAILABLE and are
 * left for a last db_pool_drain) and frees the pool. */
void db_pool_free(struct db_pool *p);
/* Queues a job. Returns 0, or -1 at once (job untouched, never completed) when no connection
 * is up or the queue is full: the caller answers 503 without waiting. Any thread. */
int db_submit(struct db_pool *p, struct db_job *job) ML_WUR;
/* Runs done() for every finished job; call on the owner's thread after a wake. Returns the
 * number of jobs completed. */
unsigned db_pool_drain(struct db_pool *p);
/* Connections up now, and the seconds a client should wait before retrying when none is. */
unsigned db_pool_up(const struct db_pool *p);
unsigned db_pool_retry_after_s(const struct db_pool *p);

/* What a pool did, for the stats endpoint (#8). Latencies are measured on the database thread
 * from taking a job to finishing it (the queries, and a reconnection when one was needed). */
#define DB_LATENCY_BUCKETS 12
/* Upper bounds, in seconds, of the latency histogram's buckets (a last one is unbounded). */
extern const double db_latency_bounds_s[DB_LATENCY_BUCKETS];
struct db_pool_stats {
    unsigned size, up;    /* connections configured, and up now */
    size_t queued;        /* jobs waiting for a thread now */
    uint64_t jobs;        /* completed, whatever the outcome */
    uint64_t unavailable; /* of which without a connection */
    uint64_t failed;      /* of which DB_FAILED (the request's own error) */
    uint64_t refused;     /* submissions refused at once (no connection, queue full) */
    uint64_t ran;         /* jobs that ran on a connection: the histogram's count */
    uint64_t wait_us;     /* their total time in the queue */
    uint64_t run_us;      /* their total time running: the histogram's sum */
    uint64_t run_hist[DB_LATENCY_BUCKETS + 1]; /* per bucket, not cumulative; last: beyond */
};
/* A consistent copy of the pool's figures. Any thread. */
void db_pool_stats(struct db_pool *p, struct db_pool_stats *out);

/* Runs a prepared statement (prepared on this connection at first use) with text parameters
 * (NULL for SQL NULL). Returns the result (caller PQclear()s), or NULL when the connection
 * broke: the work function then returns DB_UNAVAILABLE. A SQL error is a result with status
 * PGRES_FATAL_ERROR; db_sqlstate() names it. */
PGresult *db_exec(struct db_conn *c, const struct db_stmt *st, const char *const *params) ML_WUR;
/* The SQLSTATE of a failed result ("23505"), or "" . */
const char *db_sqlstate(const PGresult *r);
/* True when a failed result is the connection's, not the statement's: it broke (class 08),
 * the server shuts down (57P01), or the statement timed out (57014). The work function then
 * returns DB_UNAVAILABLE: the client gets 503 and may try again. */
bool db_lost(const PGresult *r);
/* Appends the elements of a text[] in PostgreSQL's text form ("{a,b}") to *v (grown with
 * realloc; *n of them; caller frees each and the vector). For arrays of plain words only (no
 * quoting, no NULL), such as the revoked usernames the SQL functions return; an element of
 * DB_WORD_MAX bytes or more is skipped. */
#define DB_WORD_MAX 128
void db_words(const char *arr, char ***v, size_t *n);
/* The last error of the connection (for the caller's log line). */
const char *db_conn_error(const struct db_conn *c);

/* Applies every sql/NNN_name.sql of dir not yet recorded in schema_migrations, in order, each
 * in its own transaction, under an advisory lock (two nodes may run it at once). Blocking.
 * *applied receives the number applied. 0, or -1 with err filled. */
int db_migrate(const char *url, const char *dir, unsigned *applied, char *err,
               size_t errlen) ML_WUR;
/* The migrations directory to use for cfg: the configured one, else the installed one, else
 * the source tree's (running uninstalled). Never NULL. */
const char *db_migrations_dir(const struct db_config *cfg);

/* ---------------------------------------------------------------- outside the pool */

/* Opens a connection with cfg's settings (connect and statement timeouts, TCP keepalives),
 * blocking for at most database.connect-timeout: for a thread of one's own. app_name shows in
 * pg_stat_activity. Returns the connection (caller PQfinish()es), or NULL with err filled. */
PGconn *db_connect(const struct db_config *cfg, const char *app_name, char *err,
                   size_t errlen) ML_WUR;

/* A dedicated LISTEN connection on a thread of its own ("dblisten"). It reconnects with the
 * pool's backoff (100 ms doubling to database.reconnect-max, with jitter) while PostgreSQL is
 * away, and checks an idle connection with a keepalive query every keepalive_ms (a connection
 * that does not answer within as long again is dropped). Every callback runs on that thread. */
struct db_listen_ops {
    /* After each connection, once LISTEN is in force and before any notification is handed
     * on: catch up on what may have been missed meanwhile (first: the first connection since
     * the listener started). pg is borrowed for the call, in blocking mode. 0, or -1 with err
     * filled to drop the connection and try again later. */
    int (*connected)(void *arg, PGconn *pg, bool first, char *err, size_t errlen);
    /* One notification; both strings borrowed for the call. */
    void (*notify)(void *arg, const char *channel, const char *payload);
    /* The keepalive was answered: server_us is the server's clock (microseconds, epoch). */
    void (*alive)(void *arg, int64_t server_us);
    /* The connection came up (err NULL), or it failed or broke (was_up: it had been up) and
     * will be tried again in retry_ms. For the owner's log: this subsystem never logs. */
    void (*state)(void *arg, bool up, bool was_up, const char *err, unsigned retry_ms);
};

struct db_listener;

/* Starts a listener on the NULL-terminated channels (at most 8, each under 64 bytes). cfg and
 * ops are copied; arg is passed to every callback. The first connection is made by the thread,
 * so a database that is down at start is not an error. NULL with err filled. */
struct db_listener *db_listener_new(const struct db_config *cfg, const char *const *channels,
                                    int64_t keepalive_ms, const struct db_listen_ops *ops,
                                    void *arg, char *err, size_t errlen) ML_WUR;
/* True while connected and caught up. Any thread. */
bool db_listener_up(const struct db_listener *l);
/* Stops the thread (a connection attempt under way finishes first) and frees the listener. */
void db_listener_free(struct db_listener *l);

#endif
