/* The database pool: N threads, each owning one libpq connection, taking jobs from one queue
 * and handing them back through a completion queue drained on the owner's thread. A thread
 * whose connection is down reconnects with backoff; while no connection is up, submissions
 * fail at once so that clients get 503 instead of waiting. */
#include "config.h"

#include "db/db-int.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DB_MAX_PREPARED 64
/* An idle connection looks at its socket this often (a poll, no round trip): a server that
 * stopped or restarted has said so and closed, and the pool's "up" count, which health reports,
 * follows within this time. */
#define DB_IDLE_CHECK_MS 250
/* While no connection of the pool is up, the first retries at least this often whatever its
 * backoff, so that the pool (and health, and the 503s) come back within a second of the
 * database. One connect attempt a second per pool. */
#define DB_DOWN_RETRY_MS 1000

struct db_conn {
    struct db_pool *pool;
    PGconn *pg;
    bool up;
    unsigned idx;
    pthread_t thread;
    int64_t next_try_ms; /* monotonic: next reconnect attempt */
    int64_t backoff_ms;
    const struct db_stmt *prepared[DB_MAX_PREPARED];
    unsigned nprepared;
    char err[256];
};

struct db_pool {
    struct db_config cfg; /* strings owned */
    db_wake_fn wake;
    void *wake_arg;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct db_job *head, *tail; /* queued */
    size_t queued;
    struct db_job *done_head, *done_tail; /* finished, waiting for db_pool_drain */
    bool stopping;
    unsigned up;         /* atomic: connections up */
    int64_t retry_at_ms; /* atomic: earliest next reconnect of any down connection */
    struct db_conn *conns;
    unsigned nconns;
    struct db_pool_stats st; /* guarded by mu, except refused (atomic) */
};

const double db_latency_bounds_s[DB_LATENCY_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                        0.1,   0.25,   0.5,   1,    2.5,   5};

unsigned db_latency_bucket(int64_t run_us)
{
    unsigned b = 0;
    while (b < DB_LATENCY_BUCKETS && (double)run_us > db_latency_bounds_s[b] * 1e6)
        b++;
    return b;
}

int64_t db_backoff_next(int64_t *backoff_ms, int64_t max_ms, uint32_t random)
{
    int64_t b = *backoff_ms ? *backoff_ms * 2 : DB_BACKOFF_MIN_MS;
    if (b > max_ms)
        b = max_ms;
    *backoff_ms = b;
    return b + (b >= 4 ? (int64_t)(random % (uint32_t)(b / 4)) : 0);
}

/* Records a finished job (with p->mu held). run_us: time on the database thread. */
static void account(struct db_pool *p, const struct db_job *job, int64_t run_us)
{
    p->st.jobs++;
    if (job->status == DB_UNAVAILABLE)
        p->st.unavailable++;
    else if (job->status == DB_FAILED)
        p->st.failed++;
    if (run_us < 0)
        return; /* never ran */
    int64_t wait = ml_now_us() - job->queued_us - run_us;
    p->st.wait_us += (uint64_t)(wait > 0 ? wait : 0);
    p->st.run_us += (uint64_t)run_us;
    p->st.run_hist[db_latency_bucket(run_us)]++;
    p->st.ran++;
}

static void push_done(struct db_pool *p, struct db_job *job)
{
    /* with p->mu held */
    bool was_empty = !p->done_head;
    job->next = NULL;
    if (p->done_tail)
        p->done_tail->next = job;
    else
        p->done_head = job;
    p->done_tail = job;
    if (was_empty && p->wake)
        p->wake(p->wake_arg);
}

static struct db_job *pop_job(struct db_pool *p)
{
    struct db_job *j = p->head;
    if (j) {
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
    }
    return j;
}

static void conn_close(struct db_conn *c)
{
    if (c->pg)
        PQfinish(c->pg);
    c->pg = NULL;
    c->nprepared = 0;
    if (c->up) {
        c->up = false;
        __atomic_sub_fetch(&c->pool->up, 1, __ATOMIC_RELAXED);
    }
}

static void schedule_retry(struct db_conn *c)
{
    uint32_t r;
    ml_random(&r, sizeof r);
    int64_t delay = db_backoff_next(&c->backoff_ms, c->pool->cfg.reconnect_max_ms, r);
    if (c->idx == 0 && delay > DB_DOWN_RETRY_MS && !__atomic_load_n(&c->pool->up, __ATOMIC_RELAXED))
        delay = DB_DOWN_RETRY_MS;
    c->next_try_ms = ml_now_ms() + delay;
    __atomic_store_n(&c->pool->retry_at_ms, c->next_try_ms, __ATOMIC_RELAXED);
}

/* Connects (blocking: this is a database thread). */
static bool conn_open(struct db_conn *c)
{
    char timeout[32], opts[96];
    const struct db_config *cfg = &c->pool->cfg;
    ml_snprintf(timeout, sizeof timeout, "%lld", cfg->connect_timeout_s);
    ml_snprintf(opts, sizeof opts, "-c statement_timeout=%lld", cfg->statement_timeout_ms);
    const char *keys[] = {"dbname", "connect_timeout", "application_name", "options", NULL};
    const char *vals[] = {cfg->url, timeout, "meetlited", opts, NULL};
    c->pg = PQconnectdbParams(keys, vals, 1);
    if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) {
        ml_snprintf(c->err, sizeof c->err, "%s", c->pg ? PQerrorMessage(c->pg) : "out of memory");
        conn_close(c);
        return false;
    }
    c->up = true;
    c->backoff_ms = 0;
    __atomic_add_fetch(&c->pool->up, 1, __ATOMIC_RELAXED);
    return true;
}

/* True when the server closed the connection while it sat idle (a restart, an admin's
 * pg_terminate_backend): caught here, before a job is run on it. The server says why before it
 * closes, and one read takes only that message (libpq files it as a notice of an idle
 * connection): read again while the socket stays readable, to reach the end of the stream. */
static bool conn_dead(struct db_conn *c)
{
    struct pollfd pfd = {.fd = PQsocket(c->pg), .events = POLLIN};
    if (pfd.fd < 0)
        return true;
    for (int reads = 0; reads < 8 && poll(&pfd, 1, 0) > 0; reads++) {
        if (!PQconsumeInput(c->pg) || PQstatus(c->pg) != CONNECTION_OK)
            return true;
        for (PGnotify *n; (n = PQnotifies(c->pg)); PQfreemem(n))
            ;
    }
    return PQstatus(c->pg) != CONNECTION_OK;
}

static void *conn_main(void *arg)
{
    struct db_conn *c = arg;
    struct db_pool *p = c->pool;
    char name[16];
    ml_snprintf(name, sizeof name, "db%u", c->idx);
    ml_log_set_thread(name);

    pthread_mutex_lock(&p->mu);
    while (!p->stopping) {
        if (!c->up) {
            if (ml_now_ms() >= c->next_try_ms) {
                pthread_mutex_unlock(&p->mu);
                bool ok = conn_open(c);
                pthread_mutex_lock(&p->mu);
                if (!ok)
                    schedule_retry(c);
                continue;
            }
            /* No connection anywhere: fail what is queued rather than let it wait. */
            if (__atomic_load_n(&p->up, __ATOMIC_RELAXED) == 0 && p->head) {
                struct db_job *j;
                while ((j = pop_job(p))) {
                    j->status = DB_UNAVAILABLE;
                    account(p, j, -1);
                    push_done(p, j);
                }
                continue;
            }
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t wait_ms = c->next_try_ms - ml_now_ms();
            if (wait_ms < 1)
                wait_ms = 1;
            ts.tv_sec += wait_ms / 1000;
            ts.tv_nsec += (wait_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&p->cond, &p->mu, &ts);
            continue;
        }
        struct db_job *job = pop_job(p);
        if (!job) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += DB_IDLE_CHECK_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            if (pthread_cond_timedwait(&p->cond, &p->mu, &ts) == ETIMEDOUT && !p->head) {
                pthread_mutex_unlock(&p->mu);
                bool dead = conn_dead(c); /* the socket is this thread's */
                if (dead) {
                    ml_snprintf(c->err, sizeof c->err, "%s", PQerrorMessage(c->pg));
                    conn_close(c);
                }
                pthread_mutex_lock(&p->mu);
                if (dead)
                    schedule_retry(c);
            }
            continue;
        }
        pthread_mutex_unlock(&p->mu);
        enum db_status st;
        int64_t t0 = ml_now_us();
        if (conn_dead(c)) {
            ml_snprintf(c->err, sizeof c->err, "%s", PQerrorMessage(c->pg));
            conn_close(c);
            /* try once more at once: a server restart is usually over by now */
            if (conn_open(c))
                st = job->work(c, job);
            else
                st = DB_UNAVAILABLE;
        } else {
            st = job->work(c, job);
        }
        if (st == DB_UNAVAILABLE || (c->pg && PQstatus(c->pg) != CONNECTION_OK)) {
            if (c->pg)
                ml_snprintf(c->err, sizeof c->err, "%s", PQerrorMessage(c->pg));
            conn_close(c);
        }
        int64_t run_us = ml_now_us() - t0;
        pthread_mutex_lock(&p->mu);
        if (!c->up)
            schedule_retry(c);
        job->status = st;
        account(p, job, run_us);
        push_done(p, job);
    }
    /* Stopping: whatever is still queued completes as unavailable. */
    for (struct db_job *j; (j = pop_job(p));) {
        j->status = DB_UNAVAILABLE;
        account(p, j, -1);
        push_done(p, j);
    }
    pthread_mutex_unlock(&p->mu);
    conn_close(c);
    return NULL;
}

struct db_pool *db_pool_new(const struct db_config *cfg, db_wake_fn wake, void *wake_arg, char *err,
                            size_t errlen)
{
    if (!cfg->url) {
        ml_err(err, errlen, "database.url is not set");
        return NULL;
    }
    struct db_pool *p = calloc(1, sizeof *p);
    if (!p) {
        ml_err(err, errlen, "out of memory");
        return NULL;
    }
    p->cfg = *cfg;
    p->cfg.url = strdup(cfg->url);
    p->cfg.migrations_dir = NULL;
    p->wake = wake;
    p->wake_arg = wake_arg;
    p->nconns = (unsigned)(cfg->pool_size > 0 ? cfg->pool_size : 1);
    p->conns = calloc(p->nconns, sizeof *p->conns);
    if (!p->cfg.url || !p->conns) {
        free(p->cfg.url);
        free(p->conns);
        free(p);
        ml_err(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cond, NULL);
    for (unsigned i = 0; i < p->nconns; i++) {
        struct db_conn *c = &p->conns[i];
        c->pool = p;
        c->idx = i;
        int rc = pthread_create(&c->thread, NULL, conn_main, c);
        if (rc) {
            ml_err(err, errlen, "cannot start a database thread: %s", strerror(rc));
            p->nconns = i;
            db_pool_free(p);
            return NULL;
        }
    }
    return p;
}

void db_pool_free(struct db_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    p->wake = NULL; /* the owner is going away: it drains by itself below */
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nconns; i++)
        pthread_join(p->conns[i].thread, NULL);
    db_pool_drain(p);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cond);
    free(p->conns);
    free(p->cfg.url);
    free(p);
}

int db_submit(struct db_pool *p, struct db_job *job)
{
    if (__atomic_load_n(&p->up, __ATOMIC_RELAXED) == 0) {
        __atomic_add_fetch(&p->st.refused, 1, __ATOMIC_RELAXED);
        return -1;
    }
    pthread_mutex_lock(&p->mu);
    if (p->stopping || p->queued >= (size_t)p->cfg.max_queue) {
        pthread_mutex_unlock(&p->mu);
        __atomic_add_fetch(&p->st.refused, 1, __ATOMIC_RELAXED);
        return -1;
    }
    job->next = NULL;
    job->status = DB_OK;
    job->queued_us = ml_now_us();
    if (p->tail)
        p->tail->next = job;
    else
        p->head = job;
    p->tail = job;
    p->queued++;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

unsigned db_pool_drain(struct db_pool *p)
{
    pthread_mutex_lock(&p->mu);
    struct db_job *j = p->done_head;
    p->done_head = p->done_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    unsigned n = 0;
    while (j) {
        struct db_job *next = j->next;
        j->done(j);
        j = next;
        n++;
    }
    return n;
}

void db_pool_stats(struct db_pool *p, struct db_pool_stats *out)
{
    pthread_mutex_lock(&p->mu);
    *out = p->st;
    out->queued = p->queued;
    pthread_mutex_unlock(&p->mu);
    out->refused = __atomic_load_n(&p->st.refused, __ATOMIC_RELAXED);
    out->size = p->nconns;
    out->up = db_pool_up(p);
}

unsigned db_pool_up(const struct db_pool *p)
{
    return __atomic_load_n(&p->up, __ATOMIC_RELAXED);
}

unsigned db_pool_retry_after_s(const struct db_pool *p)
{
    int64_t at = __atomic_load_n(&p->retry_at_ms, __ATOMIC_RELAXED);
    int64_t s = (at - ml_now_ms() + 999) / 1000;
    if (s < 1)
        s = 1;
    if (s > 30)
        s = 30;
    return (unsigned)s;
}

PGresult *db_exec(struct db_conn *c, const struct db_stmt *st, const char *const *params)
{
    bool have = false;
    for (unsigned i = 0; i < c->nprepared; i++)
        if (c->prepared[i] == st) {
            have = true;
            break;
        }
    if (!have) {
        PGresult *r = PQprepare(c->pg, st->name, st->sql, st->nparams, NULL);
        if (!r || PQstatus(c->pg) != CONNECTION_OK) {
            PQclear(r);
            return NULL;
        }
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            return r; /* a bad statement: the caller sees the error */
        PQclear(r);
        if (c->nprepared < DB_MAX_PREPARED)
            c->prepared[c->nprepared++] = st;
    }
    PGresult *r = PQexecPrepared(c->pg, st->name, st->nparams, params, NULL, NULL, 0);
    if (!r || PQstatus(c->pg) != CONNECTION_OK) {
        PQclear(r);
        return NULL;
    }
#ifdef ML_DEVEL
    /* the statement's text and the enum that names its columns disagree: a programming error,
     * stopped by the first test that runs the statement */
    if (st->ncols && PQresultStatus(r) == PGRES_TUPLES_OK && PQnfields(r) != st->ncols)
        abort();
#endif
    return r;
}

const char *db_sqlstate(const PGresult *r)
{
    const char *s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    return s ? s : "";
}

bool db_lost(const PGresult *r)
{
    const char *state = db_sqlstate(r);
    return !strncmp(state, "08", 2) || !strcmp(state, "57P01") || !strcmp(state, "57014");
}

void db_words(const char *arr, char ***v, size_t *n)
{
    if (!arr || arr[0] != '{')
        return;
    for (const char *p = arr + 1; *p && *p != '}';) {
        size_t len = strcspn(p, ",}");
        if (len && len < DB_WORD_MAX) {
            *v = ml_xrealloc(*v, (*n + 1) * sizeof **v);
            char *w = ml_xmalloc(len + 1);
            memcpy(w, p, len);
            w[len] = 0;
            (*v)[(*n)++] = w;
        }
        p += len;
        if (*p == ',')
            p++;
    }
}

const char *db_conn_error(const struct db_conn *c)
{
    return c->pg ? PQerrorMessage(c->pg) : c->err;
}
