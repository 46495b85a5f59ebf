/* Unit tests of src/db: the pure helpers of db-int.h (reconnect backoff, latency buckets,
 * migration file names and their order) without a server, then the pool, migrations and the
 * LISTEN thread against a private PostgreSQL (tests/lib/pg.sh, started once for the suite and
 * stopped by its PID). */
#include "config.h"

#include "db/db-int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mlcheck.h"

/* ------------------------------------------------------------------ backoff and buckets */

START_TEST(backoff_doubles_to_the_ceiling)
{
    int64_t b = 0;
    int64_t want[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000};
    for (size_t i = 0; i < ML_ARRAY_LEN(want); i++) {
        ck_assert_int_eq(db_backoff_next(&b, 5000, 0), want[i]); /* no jitter drawn */
        ck_assert_int_eq(b, want[i]);
    }
    /* a connection that came up resets it (the caller zeroes it): 100 ms again */
    b = 0;
    ck_assert_int_eq(db_backoff_next(&b, 5000, 0), 100);
    /* a ceiling below the first step wins */
    b = 0;
    ck_assert_int_eq(db_backoff_next(&b, 50, 0), 50);
}
END_TEST

START_TEST(backoff_jitter_under_a_quarter)
{
    int64_t b = 0;
    for (int i = 0; i < 6; i++) {
        int64_t prev = b;
        int64_t wait = db_backoff_next(&b, 5000, UINT32_MAX);
        ck_assert_int_eq(b, prev ? (prev * 2 > 5000 ? 5000 : prev * 2) : 100);
        ck_assert_int_ge(wait, b);
        ck_assert_int_lt(wait, b + b / 4);
    }
    /* the jitter takes its value from the random draw */
    b = 800;
    ck_assert_int_eq(db_backoff_next(&b, 5000, 7), 1600 + 7);
    b = 800;
    ck_assert_int_eq(db_backoff_next(&b, 5000, 400), 1600); /* 400 % (1600 / 4) */
}
END_TEST

START_TEST(latency_buckets)
{
    ck_assert_uint_eq(db_latency_bucket(0), 0);
    ck_assert_uint_eq(db_latency_bucket(1000), 0); /* 1 ms is within le 0.001 */
    ck_assert_uint_eq(db_latency_bucket(1001), 1);
    ck_assert_uint_eq(db_latency_bucket(2500), 1);
    ck_assert_uint_eq(db_latency_bucket(7000), 3);     /* le 0.01 */
    ck_assert_uint_eq(db_latency_bucket(5000000), 11); /* le 5 */
    ck_assert_uint_eq(db_latency_bucket(5000001), 12); /* beyond: the last bucket */
    ck_assert_uint_eq(db_latency_bucket(INT64_MAX), DB_LATENCY_BUCKETS);
    for (unsigned i = 1; i < DB_LATENCY_BUCKETS; i++)
        ck_assert(db_latency_bounds_s[i] > db_latency_bounds_s[i - 1]);
}
END_TEST

/* ------------------------------------------------------------------ migration files */

START_TEST(migration_names)
{
    ck_assert_int_eq(db_migration_version("001_init.sql"), 1);
    ck_assert_int_eq(db_migration_version("010_x.sql"), 10);
    ck_assert_int_eq(db_migration_version("999_last_one.sql"), 999);
    static const char *const bad[] = {"",
                                      "001_.sql",
                                      "01_init.sql",
                                      "0001_init.sql",
                                      "001-init.sql",
                                      "001_init.SQL",
                                      "abc_init.sql",
                                      "001_init.sql.bak",
                                      "001_init",
                                      "README",
                                      "1_2_3.sql"};
    for (size_t i = 0; i < ML_ARRAY_LEN(bad); i++)
        ck_assert_msg(db_migration_version(bad[i]) == -1, "\"%s\" is not a migration", bad[i]);
}
END_TEST

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    ml_snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void remove_tree(const char *dir)
{
    char cmd[600];
    ck_assert(strncmp(dir, "/tmp/ml-", 8) == 0 || strncmp(dir, "/var/tmp/ml", 11) == 0);
    ml_snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(migrations_in_order)
{
    char dir[] = "/tmp/ml-mig-XXXXXX", err[256];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    struct db_migration *list;
    size_t n;
    /* none yet: no error, nothing listed */
    ck_assert_int_eq(db_migrations_list(dir, &list, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_null(list);

    write_file(dir, "010_ten.sql", "");
    write_file(dir, "002_two.sql", "");
    write_file(dir, "001_one.sql", "");
    write_file(dir, "README", "");
    write_file(dir, "003_three.sql~", "");
    char sub[600];
    ml_snprintf(sub, sizeof sub, "%s/004_a_directory.sql", dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    ck_assert_int_eq(db_migrations_list(dir, &list, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(list[0].version, 1);
    ck_assert_str_eq(list[0].name, "001_one.sql");
    ck_assert_int_eq(list[1].version, 2);
    ck_assert_int_eq(list[2].version, 10); /* by number, whatever readdir's order */
    free(list);

    /* two files of one number: refused, naming it */
    write_file(dir, "002_again.sql", "");
    ck_assert_int_eq(db_migrations_list(dir, &list, &n, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "two migrations numbered 002"));
    ck_assert_ptr_null(list);
    remove_tree(dir);

    ck_assert_int_eq(db_migrations_list(dir, &list, &n, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "cannot open the migrations directory"));
}
END_TEST

/* The tree's own migrations list in order, without gaps from 1. */
START_TEST(tree_migrations)
{
    char err[256];
    struct db_migration *list;
    size_t n;
    struct db_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.migrations_dir = (char *)ML_SRCDIR "/sql";
    ck_assert_str_eq(db_migrations_dir(&cfg), ML_SRCDIR "/sql"); /* the configured one wins */
    ck_assert_int_eq(db_migrations_list(db_migrations_dir(&cfg), &list, &n, err, sizeof err), 0);
    ck_assert_uint_ge(n, 5);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(list[i].version, (int)i + 1);
    ck_assert_str_eq(list[0].name, "001_init.sql");
    free(list);
}
END_TEST

/* ------------------------------------------------------------------ a private PostgreSQL */

static char pg_dir[64];
static char pg_url[512]; /* "" when it did not start */

static const char *srcdir(void)
{
    const char *s = getenv("top_srcdir");
    return s && *s ? s : ML_SRCDIR;
}

static void pg_setup(void)
{
    char cmd[1024], line[512];
    ml_strlcpy(pg_dir, "/var/tmp/mlpg-unit-XXXXXX", sizeof pg_dir);
    if (!mkdtemp(pg_dir) || chmod(pg_dir, 0755) < 0)
        return;
    ml_snprintf(cmd, sizeof cmd, "sh '%s/tests/lib/pg.sh' start '%s'", srcdir(), pg_dir);
    FILE *p = popen(cmd, "r");
    if (!p)
        return;
    while (fgets(line, sizeof line, p))
        ml_strlcpy(pg_url, line, sizeof pg_url);
    if (pclose(p) != 0)
        pg_url[0] = 0;
    pg_url[strcspn(pg_url, "\n")] = 0;
}

static void pg_teardown(void)
{
    char cmd[1024];
    if (!pg_dir[0])
        return;
    ml_snprintf(cmd, sizeof cmd, "sh '%s/tests/lib/pg.sh' stop '%s' && rm -rf '%s'", srcdir(),
                pg_dir, pg_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "test_db: could not stop PostgreSQL in %s\n", pg_dir);
}

static PGconn *admin_conn(void)
{
    ck_assert_msg(pg_url[0], "the private PostgreSQL did not start (tests/lib/pg.sh)");
    PGconn *c = PQconnectdb(pg_url);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    return c;
}

static void sql(PGconn *c, const char *q)
{
    PGresult *r = PQexec(c, q);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
                  "%s: %s", q, PQerrorMessage(c));
    PQclear(r);
}

static long long sql_int(PGconn *c, const char *q)
{
    PGresult *r = PQexec(c, q);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s: %s", q,
                  PQerrorMessage(c));
    long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static struct db_config pool_cfg(const char *url, long long size, long long max_queue)
{
    struct db_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.url = (char *)url;
    cfg.pool_size = size;
    cfg.connect_timeout_s = 5;
    cfg.statement_timeout_ms = 5000;
    cfg.max_queue = max_queue;
    cfg.reconnect_max_ms = 1000;
    cfg.listen_keepalive_s = 10;
    return cfg;
}

static unsigned wakes; /* atomic: completion-queue wake-ups */

static void on_wake(void *arg)
{
    ML_UNUSED(arg);
    __atomic_add_fetch(&wakes, 1, __ATOMIC_RELAXED);
}

static void wait_up(struct db_pool *p)
{
    for (int i = 0; i < 1000 && db_pool_up(p) == 0; i++)
        sleep_ms(10);
    ck_assert_uint_ge(db_pool_up(p), 1);
}

/* A job: runs query q with one parameter; records what it saw. */
struct ut_job {
    struct db_job job;
    const struct db_stmt *st;
    char param[32];
    int seq;      /* order of submission */
    int ran_as;   /* order in which work ran */
    int done_as;  /* order in which done ran */
    char out[64]; /* the first value of the result */
    char sqlstate[8];
    long long prepared; /* pg_prepared_statements of this statement after it ran twice */
};

static int work_count, done_count;

static enum db_status ut_work(struct db_conn *c, struct db_job *job)
{
    struct ut_job *j = (struct ut_job *)job;
    const char *params[] = {j->param};
    j->ran_as = __atomic_fetch_add(&work_count, 1, __ATOMIC_RELAXED);
    PGresult *r = db_exec(c, j->st, params);
    if (!r)
        return DB_UNAVAILABLE;
    enum db_status st = DB_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        ml_strlcpy(j->sqlstate, db_sqlstate(r), sizeof j->sqlstate);
        st = DB_FAILED;
    } else {
        ml_strlcpy(j->out, PQgetvalue(r, 0, 0), sizeof j->out);
    }
    PQclear(r);
    return st;
}

/* Runs its statement twice, then counts how often it is prepared on this connection. */
static enum db_status ut_work_twice(struct db_conn *c, struct db_job *job)
{
    static const struct db_stmt count = {
        "ut_prepared", "SELECT count(*) FROM pg_prepared_statements WHERE name = $1", 1};
    struct ut_job *j = (struct ut_job *)job;
    const char *params[] = {j->param};
    for (int i = 0; i < 2; i++) {
        PGresult *r = db_exec(c, j->st, params);
        if (!r)
            return DB_UNAVAILABLE;
        PQclear(r);
    }
    const char *name[] = {j->st->name};
    PGresult *r = db_exec(c, &count, name);
    if (!r)
        return DB_UNAVAILABLE;
    j->prepared = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return DB_OK;
}

/* A fresh set of jobs: nothing ran, nothing completed. */
static void jobs_reset(struct ut_job *jobs, size_t n)
{
    memset(jobs, 0, n * sizeof *jobs);
    for (size_t i = 0; i < n; i++)
        jobs[i].ran_as = jobs[i].done_as = -1;
    work_count = done_count = 0;
}

static void ut_done(struct db_job *job)
{
    ((struct ut_job *)job)->done_as = done_count++;
}

/* Drains until n jobs have completed in all (the owner's side of the pool). */
static void drain_until(struct db_pool *p, int n)
{
    for (int i = 0; i < 1000 && done_count < n; i++) {
        db_pool_drain(p);
        if (done_count < n)
            sleep_ms(10);
    }
    ck_assert_int_eq(done_count, n);
}

static const struct db_stmt st_add = {"ut_add", "SELECT ($1::int + 1)::text", 1};
static const struct db_stmt st_bad = {"ut_bad", "SELECT nonexistent_column FROM pg_class", 0};
static const struct db_stmt st_sleep = {"ut_sleep", "SELECT pg_sleep($1::float8)::text", 1};
static const struct db_stmt st_pid = {"ut_pid", "SELECT pg_backend_pid()::text", 0};

START_TEST(pool_jobs_in_order)
{
    enum { N = 20 };
    static struct ut_job jobs[N + 2];
    jobs_reset(jobs, N + 2);
    __atomic_store_n(&wakes, 0, __ATOMIC_RELAXED);
    ck_assert_msg(pg_url[0], "the private PostgreSQL did not start (tests/lib/pg.sh)");
    char err[256];
    struct db_config cfg = pool_cfg(pg_url, 1, 100);
    struct db_pool *p = db_pool_new(&cfg, on_wake, NULL, err, sizeof err);
    ck_assert_msg(p != NULL, "%s", err);
    wait_up(p);
    for (int i = 0; i < N; i++) {
        jobs[i].job.work = ut_work;
        jobs[i].job.done = ut_done;
        jobs[i].st = &st_add;
        jobs[i].seq = i;
        ml_snprintf(jobs[i].param, sizeof jobs[i].param, "%d", i * 10);
        ck_assert_int_eq(db_submit(p, &jobs[i].job), 0);
    }
    /* a statement that fails is the job's own error, counted as failed */
    jobs[N].job.work = ut_work;
    jobs[N].job.done = ut_done;
    jobs[N].st = &st_bad;
    ck_assert_int_eq(db_submit(p, &jobs[N].job), 0);
    /* a statement is prepared once per connection, however often it runs */
    jobs[N + 1].job.work = ut_work_twice;
    jobs[N + 1].job.done = ut_done;
    jobs[N + 1].st = &st_add;
    ml_strlcpy(jobs[N + 1].param, "1", sizeof jobs[N + 1].param);
    ck_assert_int_eq(db_submit(p, &jobs[N + 1].job), 0);
    drain_until(p, N + 2);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(jobs[i].job.status, DB_OK);
        ck_assert_int_eq(jobs[i].ran_as, i); /* one connection: first in, first run */
        ck_assert_int_eq(jobs[i].done_as, i);
        char want[16];
        ml_snprintf(want, sizeof want, "%d", i * 10 + 1);
        ck_assert_str_eq(jobs[i].out, want);
    }
    ck_assert_int_eq(jobs[N].job.status, DB_FAILED);
    ck_assert_str_eq(jobs[N].sqlstate, "42703"); /* undefined_column */
    ck_assert_int_eq(jobs[N + 1].job.status, DB_OK);
    ck_assert_int_eq(jobs[N + 1].prepared, 1);
    unsigned w = __atomic_load_n(&wakes, __ATOMIC_RELAXED);
    ck_assert_uint_ge(w, 1);
    ck_assert_uint_le(w, N + 2); /* only when the completion queue was empty */

    struct db_pool_stats st;
    db_pool_stats(p, &st);
    ck_assert_uint_eq(st.size, 1);
    ck_assert_uint_eq(st.up, 1);
    ck_assert_uint_eq(st.queued, 0);
    ck_assert_uint_eq(st.jobs, N + 2);
    ck_assert_uint_eq(st.ran, N + 2);
    ck_assert_uint_eq(st.failed, 1);
    ck_assert_uint_eq(st.unavailable, 0);
    ck_assert_uint_eq(st.refused, 0);
    uint64_t in_hist = 0;
    for (unsigned i = 0; i <= DB_LATENCY_BUCKETS; i++)
        in_hist += st.run_hist[i];
    ck_assert_uint_eq(in_hist, N + 2);
    ck_assert_uint_gt(st.run_us, 0);
    db_pool_free(p);
}
END_TEST

START_TEST(pool_queue_bounded)
{
    static struct ut_job jobs[4];
    jobs_reset(jobs, 4);
    ck_assert_msg(pg_url[0], "the private PostgreSQL did not start (tests/lib/pg.sh)");
    char err[256];
    struct db_config cfg = pool_cfg(pg_url, 1, 2);
    struct db_pool *p = db_pool_new(&cfg, on_wake, NULL, err, sizeof err);
    ck_assert_msg(p != NULL, "%s", err);
    wait_up(p);
    for (int i = 0; i < 4; i++) {
        jobs[i].job.work = ut_work;
        jobs[i].job.done = ut_done;
        jobs[i].st = i ? &st_add : &st_sleep;
        ml_strlcpy(jobs[i].param, i ? "1" : "0.5", sizeof jobs[i].param);
    }
    ck_assert_int_eq(db_submit(p, &jobs[0].job), 0);
    /* the only thread takes the slow job; then two may wait, and a third is refused at once */
    struct db_pool_stats st;
    for (int i = 0; i < 200; i++) {
        db_pool_stats(p, &st);
        if (st.queued == 0 && __atomic_load_n(&work_count, __ATOMIC_RELAXED) == 1)
            break;
        sleep_ms(5);
    }
    ck_assert_int_eq(db_submit(p, &jobs[1].job), 0);
    ck_assert_int_eq(db_submit(p, &jobs[2].job), 0);
    ck_assert_int_eq(db_submit(p, &jobs[3].job), -1);
    db_pool_stats(p, &st);
    ck_assert_uint_eq(st.queued, 2);
    ck_assert_uint_eq(st.refused, 1);
    drain_until(p, 3);
    ck_assert_int_eq(jobs[3].done_as, -1); /* refused: never run, never completed */
    ck_assert_int_eq(jobs[3].ran_as, -1);
    ck_assert_int_eq(jobs[1].ran_as, 1);
    ck_assert_int_eq(jobs[2].ran_as, 2);
    db_pool_free(p);
}
END_TEST

/* A server that ended the connection while it was idle (a restart, pg_terminate_backend) is
 * noticed before the next job runs on it, which runs on a new connection instead of failing. */
START_TEST(pool_reconnects_before_a_job)
{
    static struct ut_job jobs[2];
    jobs_reset(jobs, 2);
    PGconn *admin = admin_conn();
    char err[256];
    struct db_config cfg = pool_cfg(pg_url, 1, 10);
    struct db_pool *p = db_pool_new(&cfg, on_wake, NULL, err, sizeof err);
    ck_assert_msg(p != NULL, "%s", err);
    wait_up(p);
    for (int i = 0; i < 2; i++) {
        jobs[i].job.work = ut_work;
        jobs[i].job.done = ut_done;
        jobs[i].st = &st_pid;
    }
    ck_assert_int_eq(db_submit(p, &jobs[0].job), 0);
    drain_until(p, 1);
    char q[128];
    ml_snprintf(q, sizeof q, "SELECT pg_terminate_backend(%s)::int", jobs[0].out);
    ck_assert_int_eq(sql_int(admin, q), 1);
    sleep_ms(200);
    ck_assert_int_eq(db_submit(p, &jobs[1].job), 0);
    drain_until(p, 2);
    ck_assert_int_eq(jobs[1].job.status, DB_OK);
    ck_assert_str_ne(jobs[1].out, jobs[0].out); /* another backend */
    struct db_pool_stats st;
    db_pool_stats(p, &st);
    ck_assert_uint_eq(st.unavailable, 0);
    ck_assert_uint_eq(st.up, 1);
    db_pool_free(p);
    PQfinish(admin);
}
END_TEST

/* No server: nothing waits. Submissions are refused at once, and clients are told when to
 * retry. */
START_TEST(pool_without_a_server)
{
    char err[256];
    struct db_config cfg = pool_cfg("host=/nonexistent-ml-socket-dir port=1 dbname=x", 2, 10);
    cfg.connect_timeout_s = 1;
    struct db_pool *p = db_pool_new(&cfg, on_wake, NULL, err, sizeof err);
    ck_assert_msg(p != NULL, "%s", err);
    sleep_ms(300); /* a first attempt failed and was rescheduled */
    ck_assert_uint_eq(db_pool_up(p), 0);
    struct ut_job j;
    jobs_reset(&j, 1);
    j.job.work = ut_work;
    j.job.done = ut_done;
    ck_assert_int_eq(db_submit(p, &j.job), -1);
    unsigned retry = db_pool_retry_after_s(p);
    ck_assert_uint_ge(retry, 1);
    ck_assert_uint_le(retry, 30);
    struct db_pool_stats st;
    db_pool_stats(p, &st);
    ck_assert_uint_eq(st.size, 2);
    ck_assert_uint_eq(st.refused, 1);
    ck_assert_uint_eq(st.jobs, 0);
    db_pool_free(p);

    cfg.url = NULL;
    ck_assert_ptr_null(db_pool_new(&cfg, on_wake, NULL, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "database.url"));
}
END_TEST

/* Migrations: in order, each once, a failing one rolled back whole and named. */
START_TEST(migrate_in_order_once)
{
    PGconn *admin = admin_conn();
    sql(admin, "DROP DATABASE IF EXISTS ut_migrate");
    sql(admin, "CREATE DATABASE ut_migrate");
    char url[600], dir[] = "/tmp/ml-migdb-XXXXXX", err[512];
    ml_snprintf(url, sizeof url, "%s", pg_url);
    char *db = strstr(url, "dbname=");
    ck_assert_ptr_nonnull(db);
    ml_snprintf(db, sizeof url - (size_t)(db - url), "dbname=ut_migrate user=postgres");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    write_file(dir, "002_b.sql", "CREATE TABLE b (y int REFERENCES a (x));");
    write_file(dir, "001_a.sql", "CREATE TABLE a (x int PRIMARY KEY);");
    unsigned applied = 99;
    ck_assert_msg(db_migrate(url, dir, &applied, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(applied, 2); /* b refers to a: the order mattered */
    ck_assert_msg(db_migrate(url, dir, &applied, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(applied, 0);

    write_file(dir, "003_c.sql", "CREATE TABLE c (z int); SELECT no_such_function();");
    ck_assert_int_eq(db_migrate(url, dir, &applied, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "003_c.sql"));
    PGconn *m = PQconnectdb(url);
    ck_assert_int_eq(PQstatus(m), CONNECTION_OK);
    ck_assert_int_eq(sql_int(m, "SELECT count(*) FROM schema_migrations"), 2);
    ck_assert_int_eq(sql_int(m, "SELECT count(*) FROM pg_tables WHERE tablename = 'c'"), 0);
    write_file(dir, "003_c.sql", "CREATE TABLE c (z int);");
    ck_assert_msg(db_migrate(url, dir, &applied, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(applied, 1);
    ck_assert_int_eq(sql_int(m, "SELECT max(version) FROM schema_migrations"), 3);
    PQfinish(m);
    remove_tree(dir);
    sql(admin, "DROP DATABASE ut_migrate");
    PQfinish(admin);
}
END_TEST

/* ------------------------------------------------------------------ the LISTEN thread */

struct listen_seen {
    pthread_mutex_t mu;
    int connects, firsts, ups, downs_was_up, alive;
    char payload[64];
};

static int on_connected(void *arg, PGconn *pg, bool first, char *err, size_t errlen)
{
    struct listen_seen *s = arg;
    ML_UNUSED(err);
    ML_UNUSED(errlen);
    /* the connection is borrowed, blocking, and LISTEN is in force: a catch-up query works */
    PGresult *r = PQexec(pg, "SELECT 1");
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    pthread_mutex_lock(&s->mu);
    s->connects += ok;
    s->firsts += first;
    pthread_mutex_unlock(&s->mu);
    return ok ? 0 : -1;
}

static void on_notify(void *arg, const char *channel, const char *payload)
{
    struct listen_seen *s = arg;
    pthread_mutex_lock(&s->mu);
    if (!strcmp(channel, "ut_chan"))
        ml_strlcpy(s->payload, payload, sizeof s->payload);
    pthread_mutex_unlock(&s->mu);
}

static void on_alive(void *arg, int64_t server_us)
{
    struct listen_seen *s = arg;
    int64_t now_us = ml_wall_s() * 1000000;
    pthread_mutex_lock(&s->mu);
    if (server_us > now_us - 60000000 && server_us < now_us + 60000000)
        s->alive++;
    pthread_mutex_unlock(&s->mu);
}

static void on_state(void *arg, bool up, bool was_up, const char *err, unsigned retry_ms)
{
    struct listen_seen *s = arg;
    ML_UNUSED(err);
    pthread_mutex_lock(&s->mu);
    if (up)
        s->ups++;
    else if (was_up && retry_ms >= DB_BACKOFF_MIN_MS / 2)
        s->downs_was_up++;
    pthread_mutex_unlock(&s->mu);
}

static int seen(struct listen_seen *s, const int *field, int at_least)
{
    int v = 0;
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&s->mu);
        v = *field;
        pthread_mutex_unlock(&s->mu);
        if (v >= at_least)
            break;
        sleep_ms(10);
    }
    return v;
}

START_TEST(listener_notifies_and_reconnects)
{
    PGconn *admin = admin_conn();
    static struct listen_seen s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.mu, NULL);
    struct db_config cfg = pool_cfg(pg_url, 1, 10);
    const char *channels[] = {"ut_chan", NULL};
    const struct db_listen_ops ops = {on_connected, on_notify, on_alive, on_state};
    char err[256];
    struct db_listener *l = db_listener_new(&cfg, channels, 200, &ops, &s, err, sizeof err);
    ck_assert_msg(l != NULL, "%s", err);
    ck_assert_int_eq(seen(&s, &s.ups, 1), 1);
    ck_assert(db_listener_up(l));
    ck_assert_int_eq(s.firsts, 1);
    sql(admin, "NOTIFY ut_chan, 'hello'");
    for (int i = 0; i < 500 && strcmp(s.payload, "hello"); i++)
        sleep_ms(10);
    pthread_mutex_lock(&s.mu);
    ck_assert_str_eq(s.payload, "hello");
    pthread_mutex_unlock(&s.mu);
    ck_assert_int_ge(seen(&s, &s.alive, 1), 1); /* the keepalive read the server's clock */

    /* the server drops it: the owner hears of it, and it comes back by itself */
    ck_assert_int_eq(sql_int(admin, "SELECT count(pg_terminate_backend(pid)) FROM "
                                    "pg_stat_activity WHERE application_name = "
                                    "'meetlited-listen'"),
                     1);
    ck_assert_int_ge(seen(&s, &s.downs_was_up, 1), 1);
    ck_assert_int_ge(seen(&s, &s.ups, 2), 2);
    ck_assert_int_eq(s.firsts, 1); /* a reconnection is not the first connection */
    ck_assert_int_ge(s.connects, 2);
    sql(admin, "NOTIFY ut_chan, 'again'");
    for (int i = 0; i < 500 && strcmp(s.payload, "again"); i++)
        sleep_ms(10);
    pthread_mutex_lock(&s.mu);
    ck_assert_str_eq(s.payload, "again");
    pthread_mutex_unlock(&s.mu);
    db_listener_free(l);
    pthread_mutex_destroy(&s.mu);
    PQfinish(admin);
}
END_TEST

/* ------------------------------------------------------------------ database.password */

/* The value of keyword in a connection string, as libpq reads it (caller frees); NULL: unset. */
static char *conninfo_get(const char *conninfo, const char *keyword)
{
    char *perr = NULL;
    PQconninfoOption *o = PQconninfoParse(conninfo, &perr);
    PQfreemem(perr);
    ck_assert_ptr_nonnull(o);
    char *v = NULL;
    for (PQconninfoOption *p = o; p->keyword; p++)
        if (!strcmp(p->keyword, keyword) && p->val)
            v = strdup(p->val);
    PQconninfoFree(o);
    return v;
}

static void check_merge(const char *url, const char *password, const char *dbname, const char *host)
{
    struct db_config cfg = {.url = strdup(url), .password = strdup(password)};
    char err[256];
    ck_assert_int_eq(db_conninfo_add_password(&cfg, err, sizeof err), 0);
    char *pw = conninfo_get(cfg.url, "password"), *db = conninfo_get(cfg.url, "dbname"),
         *h = conninfo_get(cfg.url, "host"), *opt = conninfo_get(cfg.url, "options");
    ck_assert_str_eq(pw, password); /* every byte, quotes and backslashes included */
    ck_assert_str_eq(db, dbname);
    ck_assert_str_eq(h, host);
    ck_assert_ptr_null(opt); /* nothing in the password became a parameter of its own */
    free(pw);
    free(db);
    free(h);
    free(cfg.url);
    free(cfg.password);
}

START_TEST(password_merged_quoted)
{
    check_merge("host=/run/postgresql dbname=meetlite user=meetlite", "s3cret", "meetlite",
                "/run/postgresql");
    check_merge("host=h dbname=d", "a' options='-c x=1", "d", "h");
    check_merge("host=h dbname=d", "back\\slash' and 'quote\\", "d", "h");
    /* a URI is rewritten as keywords; its own password loses to ours */
    check_merge("postgresql://meetlite:old@db.example.org/meetings?sslmode=require", "new pw",
                "meetings", "db.example.org");
    struct db_config none = {.url = strdup("dbname=x")};
    char err[256];
    ck_assert_int_eq(db_conninfo_add_password(&none, err, sizeof err), 0);
    ck_assert_str_eq(none.url, "dbname=x"); /* no password: the URL as written */
    free(none.url);
    struct db_config bad = {.url = strdup("host='unterminated"), .password = strdup("pw-1")};
    ck_assert_int_eq(db_conninfo_add_password(&bad, err, sizeof err), -1);
    ck_assert_ptr_null(strstr(err, "unterminated")); /* the URL is never quoted back */
    free(bad.url);
    free(bad.password);
}
END_TEST

static Suite *helpers_suite(void)
{
    Suite *s = suite_create("db-helpers");
    TCase *tc = tcase_create("pure");
    tcase_add_test(tc, backoff_doubles_to_the_ceiling);
    tcase_add_test(tc, backoff_jitter_under_a_quarter);
    tcase_add_test(tc, latency_buckets);
    tcase_add_test(tc, migration_names);
    tcase_add_test(tc, migrations_in_order);
    tcase_add_test(tc, tree_migrations);
    tcase_add_test(tc, password_merged_quoted);
    suite_add_tcase(s, tc);
    return s;
}

static Suite *postgres_suite(void)
{
    Suite *s = suite_create("db-postgres");
    TCase *tc = tcase_create("server");
    tcase_add_unchecked_fixture(tc, pg_setup, pg_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, pool_jobs_in_order);
    tcase_add_test(tc, pool_queue_bounded);
    tcase_add_test(tc, pool_reconnects_before_a_job);
    tcase_add_test(tc, pool_without_a_server);
    tcase_add_test(tc, migrate_in_order_once);
    tcase_add_test(tc, listener_notifies_and_reconnects);
    suite_add_tcase(s, tc);
    return s;
}

ML_CHECK_MAIN(helpers_suite, postgres_suite)
