/* A dedicated LISTEN connection on a thread of its own, usable with or without the control
 * plane's pool: it connects (with backoff while PostgreSQL is away), LISTENs, lets its owner
 * catch up on what it may have missed, hands every notification on as it arrives, and checks
 * the connection with a keepalive query that also reads the server's clock. Also
 * db_connect(), the blocking connection shared by the database threads outside the pool. */
#include "config.h"

#include "db/db-int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DB_LISTEN_MAX_CHANNELS 8
/* The keepalive query: the server's clock in microseconds since the epoch. */
#define DB_LISTEN_PING "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint"

PGconn *db_connect(const struct db_config *cfg, const char *app_name, char *err, size_t errlen)
{
    char timeout[32], opts[96];
    ml_snprintf(timeout, sizeof timeout, "%lld", cfg->connect_timeout_s);
    ml_snprintf(opts, sizeof opts, "-c statement_timeout=%lld", cfg->statement_timeout_ms);
    /* TCP keepalives notice a peer that vanished (they are ignored on unix sockets); the URL,
     * expanded from dbname, may override them, but not the timeouts that follow it. */
    const char *keys[] = {"keepalives",       "keepalives_idle", "keepalives_interval",
                          "keepalives_count", "dbname",          "connect_timeout",
                          "application_name", "options",         NULL};
    const char *vals[] = {"1", "10", "5", "3", cfg->url, timeout, app_name, opts, NULL};
    if (!cfg->url) {
        ml_err(err, errlen, "database.url is not set");
        return NULL;
    }
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        ml_err(err, errlen, "%s", pg ? PQerrorMessage(pg) : "out of memory");
        if (pg)
            PQfinish(pg);
        return NULL;
    }
    return pg;
}

struct db_listener {
    struct db_config cfg; /* url owned */
    char *channels[DB_LISTEN_MAX_CHANNELS];
    unsigned nchannels;
    int64_t keepalive_ms;
    struct db_listen_ops ops;
    void *arg;
    pthread_t thread;
    bool started;
    int wake[2];   /* a pipe: written to stop the thread */
    bool stopping; /* atomic */
    bool up;       /* atomic: connected and caught up */
    /* listener thread only */
    PGconn *pg;
    int64_t backoff_ms, next_try_ms;
    bool ping_out;
    int64_t next_ping_ms, ping_deadline_ms;
    char err[256];
};

/* Strips the trailing newline libpq puts on its messages. */
static void set_err(struct db_listener *l, const char *what, const char *msg)
{
    ml_snprintf(l->err, sizeof l->err, "%s%s%s", what, msg && *msg ? ": " : "", msg ? msg : "");
    size_t n = strlen(l->err);
    while (n && (l->err[n - 1] == '\n' || l->err[n - 1] == ' '))
        l->err[--n] = 0;
}

static void schedule_retry(struct db_listener *l)
{
    uint32_t r;
    ml_random(&r, sizeof r);
    l->next_try_ms = ml_now_ms() + db_backoff_next(&l->backoff_ms, l->cfg.reconnect_max_ms, r);
}

/* The connection failed or broke: tell the owner, close it, retry later. */
static void drop(struct db_listener *l)
{
    if (l->pg)
        PQfinish(l->pg);
    l->pg = NULL;
    l->ping_out = false;
    bool was_up = __atomic_exchange_n(&l->up, false, __ATOMIC_RELAXED);
    schedule_retry(l);
    if (l->ops.state)
        l->ops.state(l->arg, false, was_up, l->err, (unsigned)(l->next_try_ms - ml_now_ms()));
}

/* Connects, LISTENs on every channel and lets the owner catch up. true when all went well. */
static bool open_conn(struct db_listener *l, bool *first)
{
    char err[256];
    l->pg = db_connect(&l->cfg, "meetlited-listen", err, sizeof err);
    if (!l->pg) {
        set_err(l, "cannot connect", err);
        return false;
    }
    for (unsigned i = 0; i < l->nchannels; i++) {
        char *id = PQescapeIdentifier(l->pg, l->channels[i], strlen(l->channels[i]));
        char sql[160];
        ml_snprintf(sql, sizeof sql, "LISTEN %s", id ? id : "\"\"");
        PQfreemem(id);
        PGresult *r = PQexec(l->pg, sql);
        bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            set_err(l, "LISTEN failed", r ? PQresultErrorMessage(r) : PQerrorMessage(l->pg));
        PQclear(r);
        if (!ok)
            return false;
    }
    /* LISTEN is in force: whatever commits from now on is notified, whatever committed before
     * is visible to the owner's catch-up queries. */
    if (l->ops.connected && l->ops.connected(l->arg, l->pg, *first, err, sizeof err) < 0) {
        set_err(l, "catch-up failed", err);
        return false;
    }
    if (PQsetnonblocking(l->pg, 1) != 0) {
        set_err(l, "cannot make the connection non-blocking", PQerrorMessage(l->pg));
        return false;
    }
    *first = false;
    l->backoff_ms = 0;
    l->ping_out = false;
    l->next_ping_ms = ml_now_ms() + l->keepalive_ms;
    __atomic_store_n(&l->up, true, __ATOMIC_RELAXED);
    if (l->ops.state)
        l->ops.state(l->arg, true, false, NULL, 0);
    return true;
}

/* Reads what arrived: the keepalive's answer and notifications. false: the connection broke. */
static bool consume(struct db_listener *l)
{
    if (!PQconsumeInput(l->pg)) {
        set_err(l, "connection lost", PQerrorMessage(l->pg));
        return false;
    }
    while (l->ping_out && !PQisBusy(l->pg)) {
        PGresult *r = PQgetResult(l->pg);
        if (!r) {
            l->ping_out = false;
            l->next_ping_ms = ml_now_ms() + l->keepalive_ms;
            break;
        }
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
            long long us = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
            if (l->ops.alive)
                l->ops.alive(l->arg, us);
        } else {
            set_err(l, "keepalive failed", PQresultErrorMessage(r));
            PQclear(r);
            return false;
        }
        PQclear(r);
    }
    for (PGnotify *n; (n = PQnotifies(l->pg)); PQfreemem(n))
        if (l->ops.notify)
            l->ops.notify(l->arg, n->relname, n->extra);
    if (PQstatus(l->pg) != CONNECTION_OK) {
        set_err(l, "connection lost", PQerrorMessage(l->pg));
        return false;
    }
    return true;
}

static int poll_ms(int64_t until_ms)
{
    int64_t d = until_ms - ml_now_ms();
    if (d < 0)
        return 0;
    return d > 60000 ? 60000 : (int)d;
}

static void *listen_main(void *arg)
{
    struct db_listener *l = arg;
    bool first = true;
    ml_log_set_thread("dblisten");
    while (!__atomic_load_n(&l->stopping, __ATOMIC_RELAXED)) {
        struct pollfd pfd[2] = {{.fd = l->wake[0], .events = POLLIN}, {.fd = -1}};
        int timeout;
        if (!l->pg) {
            if (ml_now_ms() >= l->next_try_ms) {
                if (!open_conn(l, &first))
                    drop(l);
                continue;
            }
            timeout = poll_ms(l->next_try_ms);
        } else {
            pfd[1].fd = PQsocket(l->pg);
            pfd[1].events = POLLIN;
            int flushing = PQflush(l->pg);
            if (flushing < 0) {
                set_err(l, "connection lost", PQerrorMessage(l->pg));
                drop(l);
                continue;
            }
            if (flushing == 1)
                pfd[1].events |= POLLOUT;
            timeout = poll_ms(l->ping_out ? l->ping_deadline_ms : l->next_ping_ms);
        }
        int n = poll(pfd, l->pg ? 2 : 1, timeout);
        if (n < 0 && errno != EINTR)
            break; /* cannot happen with valid descriptors */
        if (pfd[0].revents) {
            char buf[16];
            while (read(l->wake[0], buf, sizeof buf) < 0 && errno == EINTR)
                ;
            continue; /* the loop condition decides */
        }
        if (!l->pg)
            continue;
        if ((pfd[1].revents & (POLLIN | POLLERR | POLLHUP)) && !consume(l)) {
            drop(l);
            continue;
        }
        int64_t now = ml_now_ms();
        if (l->ping_out && now >= l->ping_deadline_ms) {
            ml_snprintf(l->err, sizeof l->err, "no answer to the keepalive within %lld ms",
                        (long long)l->keepalive_ms);
            drop(l);
            continue;
        }
        if (!l->ping_out && now >= l->next_ping_ms) {
            if (!PQsendQuery(l->pg, DB_LISTEN_PING)) {
                set_err(l, "keepalive failed", PQerrorMessage(l->pg));
                drop(l);
                continue;
            }
            l->ping_out = true;
            l->ping_deadline_ms = now + l->keepalive_ms;
        }
    }
    if (l->pg)
        PQfinish(l->pg);
    l->pg = NULL;
    __atomic_store_n(&l->up, false, __ATOMIC_RELAXED);
    return NULL;
}

struct db_listener *db_listener_new(const struct db_config *cfg, const char *const *channels,
                                    int64_t keepalive_ms, const struct db_listen_ops *ops,
                                    void *arg, char *err, size_t errlen)
{
    if (!cfg->url) {
        ml_err(err, errlen, "database.url is not set");
        return NULL;
    }
    struct db_listener *l = calloc(1, sizeof *l);
    if (!l) {
        ml_err(err, errlen, "out of memory");
        return NULL;
    }
    l->wake[0] = l->wake[1] = -1;
    l->cfg = *cfg;
    l->cfg.url = strdup(cfg->url);
    l->cfg.migrations_dir = NULL;
    l->keepalive_ms = keepalive_ms > 0 ? keepalive_ms : 10000;
    l->ops = *ops;
    l->arg = arg;
    bool ok = l->cfg.url != NULL;
    for (unsigned i = 0; ok && channels[i]; i++) {
        if (i == DB_LISTEN_MAX_CHANNELS || strlen(channels[i]) >= 64) {
            db_listener_free(l);
            ml_err(err, errlen, "too many or too long LISTEN channels");
            return NULL;
        }
        ok = (l->channels[i] = strdup(channels[i])) != NULL;
        l->nchannels = i + 1;
    }
    if (!ok) {
        db_listener_free(l);
        ml_err(err, errlen, "out of memory");
        return NULL;
    }
    if (pipe2(l->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        ml_err(err, errlen, "cannot make a pipe: %s", strerror(errno));
        db_listener_free(l);
        return NULL;
    }
    int rc = pthread_create(&l->thread, NULL, listen_main, l);
    if (rc) {
        ml_err(err, errlen, "cannot start the LISTEN thread: %s", strerror(rc));
        db_listener_free(l);
        return NULL;
    }
    l->started = true;
    return l;
}

bool db_listener_up(const struct db_listener *l)
{
    return l && __atomic_load_n(&l->up, __ATOMIC_RELAXED);
}

void db_listener_free(struct db_listener *l)
{
    if (!l)
        return;
    if (l->started) {
        __atomic_store_n(&l->stopping, true, __ATOMIC_RELAXED);
        ssize_t w;
        do
            w = write(l->wake[1], "x", 1);
        while (w < 0 && errno == EINTR);
        pthread_join(l->thread, NULL);
    }
    if (l->wake[0] >= 0)
        close(l->wake[0]);
    if (l->wake[1] >= 0)
        close(l->wake[1]);
    for (unsigned i = 0; i < l->nchannels; i++)
        free(l->channels[i]);
    free(l->cfg.url);
    free(l);
}
