/* The relay's link to PostgreSQL. Revocations in: from this process's control plane (its
 * revoke hook) and from every node through LISTEN ml_turn_revoke, with a catch-up query after
 * each reconnection. Usage records out: the alloc_end hook queues a record (bounded), a writer
 * thread sends them in batches; while the database is away they wait, and the excess is
 * dropped and counted. */
#include "config.h"

#include "app/app.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SUBSYS "relay-db"
#define REVOKE_CHANNEL "ml_turn_revoke"
#define CATCHUP "catch-up"
/* A revocation's revoked_at is its transaction's start, which may precede its commit (and the
 * NOTIFY) by the length of that transaction: a catch-up looks back this much further than the
 * last moment the connection was known to be up. */
#define CATCHUP_MARGIN_S 300
/* The most revocations one catch-up applies (the relay holds at most TURN_AUTH_MAX_REVOKED). */
#define CATCHUP_MAX 65536
#define DROP_LOG_EVERY_MS 10000
#define FINAL_FLUSH_MS 3000
#define USAGE_BACKOFF_MIN_MS 100

/* One ended allocation, waiting for the writer. */
struct usage_rec {
    struct usage_rec *next;
    char cred_id[TURN_ID_MAX];
    char reason[24];
    enum net_transport transport;
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } client;
    int64_t start_s, end_s;
    struct turn_usage usage;
};

struct app_relay {
    struct turn_server *srv;
    const struct app_config *cfg; /* borrowed */
    char node[128];               /* the turn_usage.node column */
    /* revocations (listener thread, plus the control plane's thread for the hook) */
    struct db_listener *listener;
    int64_t alive_us; /* listener thread: server clock when last known connected; 0: never */
    uint64_t revocations, revocations_fail, listen_connects; /* atomic */
    /* usage: the queue (mu), the writer thread */
    bool record;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct usage_rec *head, *tail;
    size_t queued;   /* in the list */
    size_t inflight; /* taken by the writer, not yet written: counts against queue_max */
    bool stopping;
    pthread_t writer;
    bool writer_started;
    uint64_t written, dropped; /* atomic */
    /* writer thread only */
    PGconn *pg;
    int64_t backoff_ms, next_try_ms;
    uint64_t dropped_logged;
    int64_t drop_logged_ms;
};

/* ------------------------------------------------------------------ revocations */

/* Applies "<expiry>:<id>"; source names where it came from, for the log (a catch-up, which may
 * apply thousands, logs only its count). */
static void apply_revocation(struct app_relay *r, const char *username, const char *source)
{
    const char *colon = username ? strchr(username, ':') : NULL;
    long long expiry;
    char num[24];
    if (!colon || colon == username || (size_t)(colon - username) >= sizeof num || !colon[1] ||
        strlen(colon + 1) >= TURN_ID_MAX) {
        ML_LOG_LIMITED(ML_LOG_WARN, SUBSYS, "ignored a malformed revocation from %s", source);
        return;
    }
    memcpy(num, username, (size_t)(colon - username));
    num[colon - username] = 0;
    if (ml_parse_ll(num, 0, INT64_MAX, &expiry) < 0) {
        ML_LOG_LIMITED(ML_LOG_WARN, SUBSYS, "ignored a malformed revocation from %s", source);
        return;
    }
    const char *id = colon + 1;
    if (turn_server_revoke(r->srv, id, expiry) < 0) {
        __atomic_add_fetch(&r->revocations_fail, 1, __ATOMIC_RELAXED);
        ML_LOG_LIMITED(ML_LOG_WARN, SUBSYS,
                       "revocation of credential %s (from %s) not held: too many revocations "
                       "in force; its live allocations were closed",
                       id, source);
        return;
    }
    __atomic_add_fetch(&r->revocations, 1, __ATOMIC_RELAXED);
    if (strcmp(source, CATCHUP) != 0)
        ML_INFO(SUBSYS, "credential %s revoked (%s): refused from now on, its allocations closed",
                id, source);
    else
        ML_DEBUG(SUBSYS, "credential %s revoked (%s)", id, source);
}

void app_relay_revoke(void *arg, const char *username)
{
    apply_revocation(arg, username, "control plane");
}

static void on_notify(void *arg, const char *channel, const char *payload)
{
    if (!strcmp(channel, REVOKE_CHANNEL))
        apply_revocation(arg, payload, "NOTIFY");
}

static void on_alive(void *arg, int64_t server_us)
{
    struct app_relay *r = arg;
    r->alive_us = server_us;
}

/* After each (re)connection, LISTEN already in force: the revocations that committed before
 * it and that this relay may not have seen. The first time, every revocation still in force
 * (the node just started); later, those since the connection was last known up. */
static int on_connected(void *arg, PGconn *pg, bool first, char *err, size_t errlen)
{
    struct app_relay *r = arg;
    PGresult *now = PQexec(pg, "SELECT (extract(epoch FROM now()) * 1000000)::bigint");
    if (!now || PQresultStatus(now) != PGRES_TUPLES_OK || PQntuples(now) != 1) {
        ml_err(err, errlen, "%s", now ? PQresultErrorMessage(now) : PQerrorMessage(pg));
        PQclear(now);
        return -1;
    }
    int64_t now_us = strtoll(PQgetvalue(now, 0, 0), NULL, 10);
    PQclear(now);
    /* Without migration 003's trigger nothing is ever notified: say so, once a connection. */
    PGresult *trig = PQexec(pg, "SELECT 1 FROM pg_trigger WHERE tgname = "
                                "'turn_credentials_revoke_notify' AND NOT tgisinternal");
    if (trig && PQresultStatus(trig) == PGRES_TUPLES_OK && PQntuples(trig) == 0)
        ML_WARN(SUBSYS, "revocations: the database lacks migration 003 (run meetlited --migrate): "
                        "revocations made on other nodes reach this relay only at its next "
                        "reconnection");
    PQclear(trig);
    char since[32], limit[16];
    bool all = first || r->alive_us == 0;
    ml_snprintf(since, sizeof since, "%lld",
                (long long)(all ? 0 : r->alive_us / 1000000 - CATCHUP_MARGIN_S));
    ml_snprintf(limit, sizeof limit, "%d", CATCHUP_MAX);
    const char *params[] = {since, limit};
    PGresult *res =
        PQexecParams(pg,
                     "SELECT username FROM turn_credentials WHERE revoked_at IS NOT NULL "
                     "AND revoked_at >= to_timestamp($1::bigint) AND expires_at > now() "
                     "ORDER BY revoked_at DESC LIMIT $2::integer",
                     2, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        ml_err(err, errlen, "%s", res ? PQresultErrorMessage(res) : PQerrorMessage(pg));
        PQclear(res);
        return -1;
    }
    int n = PQntuples(res);
    for (int i = 0; i < n; i++)
        apply_revocation(r, PQgetvalue(res, i, 0), CATCHUP);
    PQclear(res);
    if (n > 0 || !first)
        ML_NOTICE(SUBSYS, "revocations: %d applied from the database (%s)", n,
                  all ? "every one in force" : "those made while disconnected");
    if (n == CATCHUP_MAX)
        ML_WARN(SUBSYS, "revocations: the catch-up stopped at %d; older ones are not applied",
                CATCHUP_MAX);
    r->alive_us = now_us;
    __atomic_add_fetch(&r->listen_connects, 1, __ATOMIC_RELAXED);
    return 0;
}

static void on_state(void *arg, bool up, bool was_up, const char *err, unsigned retry_ms)
{
    ML_UNUSED(arg);
    if (up)
        ML_NOTICE(SUBSYS, "listening for revocations (LISTEN " REVOKE_CHANNEL ")");
    else if (was_up)
        ML_WARN(SUBSYS,
                "revocations: lost the database (%s); relaying goes on with stateless "
                "credentials, retrying in %u ms",
                err, retry_ms);
    else
        ML_LOG_LIMITED(ML_LOG_WARN, SUBSYS, "revocations: no database (%s); retrying in %u ms", err,
                       retry_ms);
}

/* ------------------------------------------------------------------ usage records: the queue */

/* The alloc_end hook, on a worker thread: copy and queue, never wait on the database. */
static void on_alloc_end(void *arg, const struct turn_alloc_info *info)
{
    struct app_relay *r = arg;
    if (!r->record)
        return;
    struct usage_rec *rec = malloc(sizeof *rec);
    if (!rec) {
        __atomic_add_fetch(&r->dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    memset(rec, 0, sizeof *rec);
    ml_strlcpy(rec->cred_id, info->cred_id, sizeof rec->cred_id);
    ml_strlcpy(rec->reason, info->reason ? info->reason : "", sizeof rec->reason);
    rec->transport = info->transport;
    if (info->client) {
        socklen_t len = ml_addr_len(info->client);
        if (len <= sizeof rec->client)
            memcpy(&rec->client, info->client, len);
    }
    rec->start_s = info->created_s;
    rec->end_s = info->ended_s;
    rec->usage = info->usage;
    pthread_mutex_lock(&r->mu);
    if (r->stopping || r->queued + r->inflight >= (size_t)r->cfg->usage.queue_max) {
        pthread_mutex_unlock(&r->mu);
        free(rec);
        __atomic_add_fetch(&r->dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    if (r->tail)
        r->tail->next = rec;
    else
        r->head = rec;
    r->tail = rec;
    r->queued++;
    if (r->queued == (size_t)r->cfg->usage.batch_size)
        pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

/* With mu held: takes up to max records off the front. */
static struct usage_rec *take(struct app_relay *r, size_t max, size_t *n)
{
    struct usage_rec *first = r->head, *last = NULL;
    size_t k = 0;
    for (struct usage_rec *x = r->head; x && k < max; x = x->next) {
        last = x;
        k++;
    }
    if (!k) {
        *n = 0;
        return NULL;
    }
    r->head = last->next;
    if (!r->head)
        r->tail = NULL;
    last->next = NULL;
    r->queued -= k;
    r->inflight += k;
    *n = k;
    return first;
}

/* With mu held: puts a batch that could not be written back in front, in order. */
static void put_back(struct app_relay *r, struct usage_rec *batch, size_t n)
{
    struct usage_rec *last = batch;
    while (last && last->next)
        last = last->next;
    if (!last)
        return;
    last->next = r->head;
    r->head = batch;
    if (!r->tail)
        r->tail = last;
    r->queued += n;
    r->inflight -= n;
}

static void free_batch(struct usage_rec *b)
{
    while (b) {
        struct usage_rec *next = b->next;
        free(b);
        b = next;
    }
}

/* ------------------------------------------------------------------ usage records: writing */

/* The columns of a batch travel as text[] literals built in bounded buffers (ml_buf: a batch is
 * at most usage.batch-size records, so no ceiling is needed beyond memory). */
static void text_str(struct ml_buf *t, const char *s)
{
    (void)ml_buf_str(t, s);
}

/* Appends one element of a text[] literal: NULL, or the string quoted with \ and " escaped. */
static void text_elem(struct ml_buf *t, const char *s)
{
    text_str(t, t->len > 1 ? "," : "");
    if (!s) {
        text_str(t, "NULL");
        return;
    }
    text_str(t, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            text_str(t, "\\");
        (void)ml_buf_add(t, s, 1);
    }
    text_str(t, "\"");
}

static void text_num(struct ml_buf *t, long long v)
{
    (void)ml_buf_printf(t, "%s%lld", t->len > 1 ? "," : "", v);
}

enum {
    COL_CRED,
    COL_TRANSPORT,
    COL_IP,
    COL_PORT,
    COL_START,
    COL_END,
    COL_REASON,
    COL_PKT_PEER,
    COL_BYTES_PEER,
    COL_PKT_CLIENT,
    COL_BYTES_CLIENT,
    NCOLS
};

enum write_result { WRITE_OK, WRITE_RETRY, WRITE_DROP };

/* Is this failure the connection's or the schema's (the batch is fine: retry later), or the
 * batch's own (retrying would fail forever)? */
static bool transient(const PGresult *res)
{
    const char *st = db_sqlstate(res);
    return !strncmp(st, "08", 2) || !strncmp(st, "57P", 3) || !strcmp(st, "57014") ||
           !strcmp(st, "42P01") || !strcmp(st, "42883") || !strncmp(st, "53", 2) ||
           !strncmp(st, "40", 2);
}

static enum write_result write_batch(struct app_relay *r, struct usage_rec *batch, size_t n,
                                     char *err, size_t errlen)
{
    struct ml_buf col[NCOLS];
    for (int c = 0; c < NCOLS; c++) {
        col[c] = (struct ml_buf)ML_BUF_INIT(SIZE_MAX);
        text_str(&col[c], "{");
    }
    for (struct usage_rec *x = batch; x; x = x->next) {
        char ip[ML_ADDR_STRLEN];
        bool has_ip = x->client.sa.sa_family == AF_INET || x->client.sa.sa_family == AF_INET6;
        if (has_ip) {
            ml_ip_str(&x->client.sa, ip, sizeof ip);
            ip[strcspn(ip, "%")] = 0; /* inet has no zone ids (fe80::1%eth0) */
        }
        text_elem(&col[COL_CRED], x->cred_id);
        text_elem(&col[COL_TRANSPORT], net_transport_name(x->transport));
        text_elem(&col[COL_IP], has_ip ? ip : NULL);
        if (has_ip)
            text_num(&col[COL_PORT], ml_addr_port(&x->client.sa));
        else
            text_elem(&col[COL_PORT], NULL);
        text_num(&col[COL_START], x->start_s);
        text_num(&col[COL_END], x->end_s);
        text_elem(&col[COL_REASON], x->reason);
        text_num(&col[COL_PKT_PEER], (long long)x->usage.rx_packets);
        text_num(&col[COL_BYTES_PEER], (long long)x->usage.rx_bytes);
        text_num(&col[COL_PKT_CLIENT], (long long)x->usage.tx_packets);
        text_num(&col[COL_BYTES_CLIENT], (long long)x->usage.tx_bytes);
    }
    const char *params[NCOLS + 1];
    params[0] = r->node;
    for (int c = 0; c < NCOLS; c++) {
        text_str(&col[c], "}");
        params[c + 1] = col[c].p;
    }
    PGresult *res = PQexecParams(r->pg,
                                 "SELECT ml_usage_insert($1, $2::text[], $3::text[], $4::text[], "
                                 "$5::integer[], $6::bigint[], $7::bigint[], $8::text[], "
                                 "$9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[])",
                                 NCOLS + 1, NULL, params, NULL, NULL, 0);
    for (int c = 0; c < NCOLS; c++)
        ml_buf_free(&col[c]);
    enum write_result out;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        out = WRITE_OK;
        long long got = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        if (got != (long long)n)
            ML_WARN(SUBSYS, "usage: %lld of %zu records written", got, n);
    } else if (!res || PQstatus(r->pg) != CONNECTION_OK || transient(res)) {
        ml_err(err, errlen, "%s", res ? PQresultErrorMessage(res) : PQerrorMessage(r->pg));
        out = WRITE_RETRY;
    } else {
        ml_err(err, errlen, "%s %s", db_sqlstate(res), PQresultErrorMessage(res));
        out = WRITE_DROP;
    }
    PQclear(res);
    return out;
}

static void writer_retry_later(struct app_relay *r)
{
    if (r->pg)
        PQfinish(r->pg);
    r->pg = NULL;
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : USAGE_BACKOFF_MIN_MS;
    if (r->backoff_ms > r->cfg->database.reconnect_max_ms)
        r->backoff_ms = r->cfg->database.reconnect_max_ms;
    r->next_try_ms = ml_now_ms() + r->backoff_ms;
}

/* Writes one batch taken from the queue (mu not held). false: it went back to the queue. */
static bool send_batch(struct app_relay *r, struct usage_rec *batch, size_t n)
{
    char err[512];
    if (!r->pg) {
        r->pg = db_connect(&r->cfg->database, "meetlited-usage", err, sizeof err);
        if (!r->pg) {
            ML_LOG_LIMITED(ML_LOG_WARN, SUBSYS, "usage: cannot reach the database (%s)", err);
            goto retry;
        }
        r->backoff_ms = 0;
    }
    switch (write_batch(r, batch, n, err, sizeof err)) {
    case WRITE_OK:
        __atomic_add_fetch(&r->written, n, __ATOMIC_RELAXED);
        pthread_mutex_lock(&r->mu);
        r->inflight -= n;
        pthread_mutex_unlock(&r->mu);
        free_batch(batch);
        return true;
    case WRITE_DROP:
        ML_ERROR(SUBSYS, "usage: the database refused a batch of %zu records, dropped: %s", n, err);
        __atomic_add_fetch(&r->dropped, n, __ATOMIC_RELAXED);
        pthread_mutex_lock(&r->mu);
        r->inflight -= n;
        pthread_mutex_unlock(&r->mu);
        free_batch(batch);
        return true;
    case WRITE_RETRY:
        ML_LOG_LIMITED(ML_LOG_WARN, SUBSYS, "usage: writing %zu records failed, kept for later: %s",
                       n, err);
        break;
    }
retry:
    writer_retry_later(r);
    pthread_mutex_lock(&r->mu);
    put_back(r, batch, n);
    pthread_mutex_unlock(&r->mu);
    return false;
}

/* Says, at most every 10 s, how many records were dropped since it last said so. */
static void log_drops(struct app_relay *r, bool force)
{
    uint64_t d = __atomic_load_n(&r->dropped, __ATOMIC_RELAXED);
    int64_t now = ml_now_ms();
    if (d == r->dropped_logged ||
        (!force && r->drop_logged_ms && now - r->drop_logged_ms < DROP_LOG_EVERY_MS))
        return;
    ML_WARN(SUBSYS,
            "usage: %llu records dropped (%llu in all): the queue of %lld was full or the "
            "database refused them",
            (unsigned long long)(d - r->dropped_logged), (unsigned long long)d,
            r->cfg->usage.queue_max);
    r->dropped_logged = d;
    r->drop_logged_ms = now;
}

static void deadline_in(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void *writer_main(void *arg)
{
    struct app_relay *r = arg;
    const size_t batch = (size_t)r->cfg->usage.batch_size;
    const int64_t interval = r->cfg->usage.flush_interval_ms;
    int64_t next_flush = ml_now_ms() + interval;
    ml_log_set_thread("usage");
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        int64_t now = ml_now_ms();
        /* a batch leaves when it is full or its interval is over, and the database may be
         * tried again */
        bool due = r->queued >= batch || (r->queued && now >= next_flush);
        bool may = !r->pg ? now >= r->next_try_ms : true;
        if (!due || !may) {
            int64_t wake = !r->queued ? now + interval : !due ? next_flush : r->next_try_ms;
            struct timespec ts;
            deadline_in(&ts, wake > now ? wake - now : 1);
            pthread_cond_timedwait(&r->cond, &r->mu, &ts);
            pthread_mutex_unlock(&r->mu);
            log_drops(r, false);
            pthread_mutex_lock(&r->mu);
            continue;
        }
        size_t n;
        struct usage_rec *b = take(r, batch, &n);
        pthread_mutex_unlock(&r->mu);
        bool sent = send_batch(r, b, n);
        log_drops(r, false);
        pthread_mutex_lock(&r->mu);
        if (sent && r->queued < batch)
            next_flush = ml_now_ms() + interval;
    }
    pthread_mutex_unlock(&r->mu);
    /* Stopping: write what is left, for a few seconds at most. */
    int64_t end = ml_now_ms() + FINAL_FLUSH_MS;
    bool failed = false;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        size_t n;
        struct usage_rec *b = take(r, batch, &n);
        pthread_mutex_unlock(&r->mu);
        if (!b)
            break;
        if (failed || ml_now_ms() >= end) {
            /* the database is away, or time is up: what remains is lost */
            __atomic_add_fetch(&r->dropped, n, __ATOMIC_RELAXED);
            pthread_mutex_lock(&r->mu);
            r->inflight -= n;
            pthread_mutex_unlock(&r->mu);
            free_batch(b);
            continue;
        }
        failed = !send_batch(r, b, n);
    }
    log_drops(r, true);
    if (r->pg)
        PQfinish(r->pg);
    r->pg = NULL;
    return NULL;
}

/* ------------------------------------------------------------------ the object */

struct app_relay *app_relay_new(const struct app_config *cfg, struct turn_server *srv, char *err,
                                size_t errlen)
{
    if (!cfg->database.url) {
        ml_err(err, errlen, "database.url is not set");
        return NULL;
    }
    struct app_relay *r = calloc(1, sizeof *r);
    if (!r) {
        ml_err(err, errlen, "out of memory");
        return NULL;
    }
    r->srv = srv;
    r->cfg = cfg;
    r->record = cfg->usage.record;
    /* The fleet's name for this node (signaling.node-id, shared with signaling), else the host's */
    if (cfg->signaling.node_id)
        ml_strlcpy(r->node, cfg->signaling.node_id, sizeof r->node);
    else if (gethostname(r->node, sizeof r->node) < 0 || !r->node[0])
        ml_strlcpy(r->node, "unknown", sizeof r->node);
    r->node[sizeof r->node - 1] = 0;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cond, NULL);
    if (r->record) {
        struct turn_hooks h = {.alloc_end = on_alloc_end, .arg = r};
        turn_server_set_hooks(srv, &h);
    }
    return r;
}

int app_relay_start(struct app_relay *r, char *err, size_t errlen)
{
    static const char *const channels[] = {REVOKE_CHANNEL, NULL};
    struct db_listen_ops ops = {
        .connected = on_connected, .notify = on_notify, .alive = on_alive, .state = on_state};
    r->listener = db_listener_new(&r->cfg->database, channels,
                                  r->cfg->database.listen_keepalive_s * 1000, &ops, r, err, errlen);
    if (!r->listener)
        return -1;
    if (r->record) {
        int rc = pthread_create(&r->writer, NULL, writer_main, r);
        if (rc)
            return ml_err(err, errlen, "cannot start the usage writer: %s", strerror(rc));
        r->writer_started = true;
    }
    return 0;
}

void app_relay_counters(const struct app_relay *r, struct app_relay_counters *out)
{
    memset(out, 0, sizeof *out);
    if (!r)
        return;
    out->revocations = __atomic_load_n(&r->revocations, __ATOMIC_RELAXED);
    out->revocations_fail = __atomic_load_n(&r->revocations_fail, __ATOMIC_RELAXED);
    out->listen_connects = __atomic_load_n(&r->listen_connects, __ATOMIC_RELAXED);
    out->usage_written = __atomic_load_n(&r->written, __ATOMIC_RELAXED);
    out->usage_dropped = __atomic_load_n(&r->dropped, __ATOMIC_RELAXED);
    out->listen_up = db_listener_up(r->listener);
    pthread_mutex_lock((pthread_mutex_t *)&r->mu);
    out->usage_queued = r->queued + r->inflight;
    pthread_mutex_unlock((pthread_mutex_t *)&r->mu);
}

void app_relay_stop_revocations(struct app_relay *r)
{
    if (!r)
        return;
    db_listener_free(r->listener);
    r->listener = NULL;
}

void app_relay_free(struct app_relay *r)
{
    if (!r)
        return;
    app_relay_stop_revocations(r);
    if (r->writer_started) {
        pthread_mutex_lock(&r->mu);
        r->stopping = true;
        pthread_cond_signal(&r->cond);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->writer, NULL);
    }
    struct app_relay_counters c;
    app_relay_counters(r, &c);
    ML_NOTICE(SUBSYS, "usage records: %llu written, %llu dropped; %llu revocations applied",
              (unsigned long long)c.usage_written, (unsigned long long)c.usage_dropped,
              (unsigned long long)c.revocations);
    free_batch(r->head);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cond);
    free(r);
}
