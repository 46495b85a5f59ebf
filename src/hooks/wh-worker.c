/* The webhook worker: a thread with its own libpq connection (LISTEN ml_webhook, and the queue's
 * statements) and its own client connection (src/http's http_fetch, kept between POSTs). It
 * claims due events (ml_wh_claim: SKIP LOCKED and a lease, so nodes sharing the database never
 * send one event at once), POSTs them in order,
 * records each outcome (ml_wh_result), and sleeps until a NOTIFY, the next due retry or the
 * poll interval. Nothing here touches an event loop: a slow receiver slows only this thread. */
#include "config.h"

#include "hooks/wh.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SUBSYS "webhooks"
#define WH_LEASE_MARGIN_MS 2000 /* a claim's lease: one timeout more than the batch's, and this */
#define WH_PURGE_EVERY_MS (3600 * 1000)
#define WH_CONNECT_MAX_MS 30000          /* database reconnect backoff ceiling */
#define WH_REPLY_MAX 4096                /* bytes of a receiver's answer read (and dropped) */
#define WH_ANNOUNCE_EVERY_MS (60 * 1000) /* a delivering node refreshes its webhook_nodes row */

/* The settings one batch uses: a copy taken under the mutex. */
struct wh_settings {
    char url[WH_URL_MAX];
    char secret[WH_SECRET_MAX + 1];
    size_t secret_len;
    char types[1100]; /* a text[] literal "{a,b}"; "" for all */
    char ca_file[4097];
    long long timeout_ms, max_attempts, max_age_s, retry_initial_ms, retry_max_ms, poll_ms;
    long long batch, retention_s;
};

struct wh_worker {
    struct db_config db; /* url owned */
    char node[128];
    pthread_mutex_t mu;
    struct wh_settings set; /* under mu */
    pthread_t thread;
    bool started;
    int wake[2];                 /* a pipe: written to stop the thread, or after a reload */
    bool stopping;               /* atomic */
    struct wh_counters counters; /* atomic fields */
    /* worker thread only */
    PGconn *pg;
    struct http_fetch_conn *conn; /* NULL until the first POST */
    int64_t backoff_ms, next_connect_ms, next_purge_ms;
    bool schema_warned;
    bool down_warned; /* the database's absence was logged at warn since the last connection */
    bool listening;   /* LISTEN ml_webhook in force on pg */
    int announced;    /* what webhook_nodes says of this node: 1 delivers, 0 not, -1 unknown */
    int64_t next_announce_ms;
};

struct wh_event {
    char seq[24];
    char id[40];
    int attempts;
    char *body; /* owned */
};

static int settings_from(struct wh_settings *s, const struct wh_config *cfg, char *err,
                         size_t errlen)
{
    memset(s, 0, sizeof *s);
    int n = wh_secret_load(cfg, s->secret, err, errlen);
    if (n < 0)
        return -1;
    s->secret_len = (size_t)n;
    if (cfg->url)
        ml_strlcpy(s->url, cfg->url, sizeof s->url);
    if (cfg->url && !n)
        return ml_err(err, errlen, "webhooks.url is set but no secret is");
    if (cfg->ca_file)
        ml_strlcpy(s->ca_file, cfg->ca_file, sizeof s->ca_file);
    if (cfg->events) {
        /* a text[] literal: the names were checked (letters, dots) and the list bounded */
        size_t at = ml_strlcpy(s->types, "{", sizeof s->types);
        const char *cur = cfg->events, *item;
        size_t len;
        for (bool first = true; (item = ml_list_next(&cur, &len)); first = false)
            if (at < sizeof s->types)
                at += ml_snprintf(s->types + at, sizeof s->types - at, "%s%.*s", first ? "" : ",",
                                  (int)len, item);
        if (at < sizeof s->types)
            ml_strlcpy(s->types + at, "}", sizeof s->types - at);
    }
    s->timeout_ms = cfg->timeout_ms;
    s->max_attempts = cfg->max_attempts;
    s->max_age_s = cfg->max_age_s;
    s->retry_initial_ms = cfg->retry_initial_ms;
    s->retry_max_ms = cfg->retry_max_ms;
    s->poll_ms = cfg->poll_ms;
    s->batch = cfg->batch;
    s->retention_s = cfg->retention_s;
    return 0;
}

struct wh_worker *wh_worker_new(const struct wh_config *cfg, const struct db_config *db,
                                const char *node, char *err, size_t errlen)
{
    struct wh_worker *w = ml_xcalloc(1, sizeof *w);
    w->wake[0] = w->wake[1] = -1;
    w->announced = -1;
    if (settings_from(&w->set, cfg, err, errlen) < 0) {
        free(w);
        return NULL;
    }
    w->db = *db;
    w->db.url = db->url ? ml_xstrdup(db->url) : NULL;
    w->db.migrations_dir = NULL;
    ml_strlcpy(w->node, node, sizeof w->node);
    pthread_mutex_init(&w->mu, NULL);
    if (pipe(w->wake) < 0) {
        ml_err(err, errlen, "pipe: %s", strerror(errno));
        wh_worker_free(w);
        return NULL;
    }
    fcntl(w->wake[0], F_SETFL, O_NONBLOCK);
    fcntl(w->wake[1], F_SETFL, O_NONBLOCK);
    return w;
}

int wh_worker_reload(struct wh_worker *w, const struct wh_config *cfg, char *err, size_t errlen)
{
    struct wh_settings *s = ml_xcalloc(1, sizeof *s);
    int rc = settings_from(s, cfg, err, errlen);
    if (rc == 0) {
        pthread_mutex_lock(&w->mu);
        ml_wipe(w->set.secret, sizeof w->set.secret);
        w->set = *s;
        pthread_mutex_unlock(&w->mu);
        ssize_t n = write(w->wake[1], "r", 1);
        ML_UNUSED(n); /* a full pipe wakes the thread as well */
    }
    ml_wipe(s, sizeof *s);
    free(s);
    return rc;
}

void wh_worker_counters(struct wh_worker *w, struct wh_counters *out)
{
    out->delivered = __atomic_load_n(&w->counters.delivered, __ATOMIC_RELAXED);
    out->attempts_failed = __atomic_load_n(&w->counters.attempts_failed, __ATOMIC_RELAXED);
    out->connects = __atomic_load_n(&w->counters.connects, __ATOMIC_RELAXED);
}

static bool stopping(struct wh_worker *w)
{
    return __atomic_load_n(&w->stopping, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------- the database */

static void db_drop(struct wh_worker *w, const char *what, const char *msg)
{
    char m[256];
    ml_strlcpy(m, msg ? msg : "", sizeof m);
    /* once per outage at warn: a database that stays away is retried quietly */
    if (!w->down_warned)
        ML_WARN(SUBSYS, "%s: %s; the database connection is made again", what, ml_trim(m));
    else
        ML_INFO(SUBSYS, "%s: %s; the database connection is made again", what, ml_trim(m));
    w->down_warned = true;
    if (w->pg)
        PQfinish(w->pg);
    w->pg = NULL;
    uint32_t r;
    ml_random(&r, sizeof r);
    w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : 200;
    if (w->backoff_ms > WH_CONNECT_MAX_MS)
        w->backoff_ms = WH_CONNECT_MAX_MS;
    w->next_connect_ms = ml_now_ms() + w->backoff_ms / 2 + r % (w->backoff_ms / 2 + 1);
}

static bool db_up(struct wh_worker *w)
{
    if (w->pg)
        return true;
    if (ml_now_ms() < w->next_connect_ms)
        return false;
    char err[256];
    w->pg = db_connect(&w->db, "meetlited-webhooks", err, sizeof err);
    if (!w->pg) {
        db_drop(w, "cannot connect", err);
        return false;
    }
    w->listening = false;
    w->backoff_ms = 0;
    w->down_warned = false;
    __atomic_add_fetch(&w->counters.connects, 1, __ATOMIC_RELAXED);
    return true;
}

/* LISTEN ml_webhook while this node delivers (webhooks.url set), UNLISTEN when it stops: every
 * NOTIFY wakes each backend that listens in the database, and a join sends one (its
 * participant.joined event), so a node that delivers nothing does not listen. Called before a
 * claim, which finds what was queued before the LISTEN. false: the connection was dropped. */
static bool db_listen(struct wh_worker *w, bool want)
{
    if (w->listening == want)
        return true;
    PGresult *r = PQexec(w->pg, want ? "LISTEN ml_webhook" : "UNLISTEN ml_webhook");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    char err[256];
    if (!ok)
        ml_strlcpy(err, PQresultErrorMessage(r), sizeof err);
    PQclear(r);
    if (!ok) {
        db_drop(w, want ? "LISTEN ml_webhook failed" : "UNLISTEN ml_webhook failed", err);
        return false;
    }
    w->listening = want;
    return true;
}

/* A statement's failure: the connection broke, or (a schema without sql/010) a warning once. */
static void db_failed(struct wh_worker *w, PGresult *r, const char *what)
{
    const char *state = r ? db_sqlstate(r) : "";
    if (!strcmp(state, "42883") || !strcmp(state, "42P01")) {
        if (!w->schema_warned)
            ML_WARN(SUBSYS, "%s: the webhook tables are missing (meetlited --migrate)", what);
        w->schema_warned = true;
        PQclear(r);
        w->next_connect_ms = ml_now_ms() + WH_CONNECT_MAX_MS;
        PQfinish(w->pg);
        w->pg = NULL;
        return;
    }
    char msg[256];
    ml_strlcpy(msg, r ? PQresultErrorMessage(r) : PQerrorMessage(w->pg), sizeof msg);
    PQclear(r);
    db_drop(w, what, msg);
}

static PGresult *exec(struct wh_worker *w, const char *sql, int n, const char *const *p,
                      ExecStatusType want, const char *what)
{
    PGresult *r = PQexecParams(w->pg, sql, n, NULL, p, NULL, NULL, 0);
    if (!r || PQresultStatus(r) != want) {
        db_failed(w, r, what);
        return NULL;
    }
    return r;
}

/* ---------------------------------------------------------------- HTTP */

/* POSTs one event. Returns true when the receiver answered 2xx; *status is its HTTP status (0:
 * no answer) and err says what went wrong otherwise. */
static bool post(struct wh_worker *w, const struct wh_settings *s, const struct wh_event *e,
                 long *status, char *err, size_t errlen)
{
    if (!w->conn)
        w->conn = http_fetch_conn_new();
    int64_t ts = ml_wall_s();
    size_t blen = strlen(e->body);
    char sig[WH_SIG_LEN], h_id[96], h_ts[64], h_sig[128], h_att[64];
    wh_sign(s->secret, s->secret_len, ts, e->body, blen, sig);
    ml_snprintf(h_id, sizeof h_id, "Meetlite-Webhook-Id: %s", e->id);
    ml_snprintf(h_ts, sizeof h_ts, "Meetlite-Webhook-Timestamp: %lld", (long long)ts);
    ml_snprintf(h_sig, sizeof h_sig, "Meetlite-Webhook-Signature: %s", sig);
    ml_snprintf(h_att, sizeof h_att, "Meetlite-Webhook-Attempt: %d", e->attempts);
    const char *const hv[] = {"Content-Type: application/json",
                              "User-Agent: meetlite/" PACKAGE_VERSION,
                              h_id,
                              h_ts,
                              h_sig,
                              h_att,
                              NULL};
    /* no redirects: the signature is for this receiver; a 3xx is a failed attempt */
    struct http_fetch_req req = {.url = s->url,
                                 .body = e->body,
                                 .body_len = blen,
                                 .headers = hv,
                                 .protocols = "https,http",
                                 .timeout_ms = s->timeout_ms,
                                 .ca_file = s->ca_file,
                                 .max_body = WH_REPLY_MAX,
                                 .abort = &w->stopping};
    struct http_fetch_resp resp;
    enum http_fetch_err fe = http_fetch(w->conn, &req, &resp);
    *status = resp.status;
    /* a receiver that talks on is cut short: its status stands */
    if (fe == HTTP_FETCH_TOO_LARGE)
        fe = resp.status >= 200 && resp.status <= 299 ? HTTP_FETCH_OK : HTTP_FETCH_STATUS;
    if (fe == HTTP_FETCH_STATUS)
        ml_err(err, errlen, "the receiver answered HTTP %ld", resp.status);
    else if (fe != HTTP_FETCH_OK)
        ml_err(err, errlen, "%s", resp.err);
    http_fetch_resp_free(&resp);
    return fe == HTTP_FETCH_OK;
}

/* ---------------------------------------------------------------- the queue */

static long long backoff_ms(const struct wh_settings *s, int attempts)
{
    long long d = s->retry_initial_ms;
    for (int i = 1; i < attempts && d < s->retry_max_ms; i++)
        d *= 2;
    if (d > s->retry_max_ms)
        d = s->retry_max_ms;
    uint32_t r;
    ml_random(&r, sizeof r);
    return d / 2 + (long long)(r % (uint32_t)(d / 2 + 1)); /* jitter: half to all of it */
}

static bool record(struct wh_worker *w, const struct wh_settings *s, const struct wh_event *e,
                   bool ok, bool given_back, long status, const char *error, long long retry_ms)
{
    static const char sql[] = "SELECT ml_wh_result($1, $2::bigint, $3::boolean, $4::boolean, "
                              "$5::integer, $6, $7::integer, $8::integer)";
    char st[16], retry[24], max[24];
    ml_snprintf(st, sizeof st, "%ld", status);
    ml_snprintf(retry, sizeof retry, "%lld", retry_ms);
    ml_snprintf(max, sizeof max, "%lld", s->max_attempts);
    const char *p[] = {
        w->node, e->seq, ok ? "t" : "f", given_back ? "t" : "f", status ? st : NULL, error,
        retry,   max};
    PGresult *r = exec(w, sql, 8, p, PGRES_TUPLES_OK, "recording a webhook attempt");
    PQclear(r);
    return r != NULL;
}

/* Claims and sends one batch. Returns the events claimed, or -1 when the database failed. */
static int deliver_batch(struct wh_worker *w, const struct wh_settings *s)
{
    static const char sql[] = "SELECT seq, id, attempts, body FROM ml_wh_claim($1, $2::text[], "
                              "$3::integer, $4::integer, $5::integer, $6::integer)";
    enum { C_SEQ, C_ID, C_ATTEMPTS, C_BODY };
    char limit[24], lease[24], max[24], age[24];
    ml_snprintf(limit, sizeof limit, "%lld", s->batch);
    ml_snprintf(lease, sizeof lease, "%lld", (s->batch + 1) * s->timeout_ms + WH_LEASE_MARGIN_MS);
    ml_snprintf(max, sizeof max, "%lld", s->max_attempts);
    ml_snprintf(age, sizeof age, "%lld", s->max_age_s);
    const char *p[] = {w->node, s->types[0] ? s->types : NULL, limit, lease, max, age};
    PGresult *r = exec(w, sql, 6, p, PGRES_TUPLES_OK, "claiming webhook events");
    if (!r)
        return -1;
    int n = PQntuples(r);
    struct wh_event *ev = ml_xcalloc((size_t)n + 1, sizeof *ev);
    for (int i = 0; i < n; i++) {
        ml_strlcpy(ev[i].seq, PQgetvalue(r, i, C_SEQ), sizeof ev[i].seq);
        ml_strlcpy(ev[i].id, PQgetvalue(r, i, C_ID), sizeof ev[i].id);
        ev[i].attempts = (int)strtol(PQgetvalue(r, i, C_ATTEMPTS), NULL, 10);
        ev[i].body = ml_xstrdup(PQgetvalue(r, i, C_BODY));
    }
    PQclear(r);
    int rc = n;
    long long retry = 0;
    bool failed = false;
    for (int i = 0; i < n; i++) {
        if (failed || stopping(w)) {
            /* behind a failure (or at a stop): not tried now, and not after the one that failed */
            if (!record(w, s, &ev[i], false, true, 0, NULL, failed ? retry : 0)) {
                rc = -1;
                break;
            }
            continue;
        }
        long status;
        char err[300];
        bool ok = post(w, s, &ev[i], &status, err, sizeof err);
        if (ok) {
            __atomic_add_fetch(&w->counters.delivered, 1, __ATOMIC_RELAXED);
        } else {
            __atomic_add_fetch(&w->counters.attempts_failed, 1, __ATOMIC_RELAXED);
            retry = backoff_ms(s, ev[i].attempts);
            failed = true;
            if (ev[i].attempts >= s->max_attempts)
                ML_WARN(SUBSYS, "event %s failed after %d attempts: %s", ev[i].id, ev[i].attempts,
                        err);
            else
                ML_INFO(SUBSYS, "event %s, attempt %d: %s; next in %lld ms", ev[i].id,
                        ev[i].attempts, err, retry);
        }
        if (!record(w, s, &ev[i], ok, false, status, ok ? NULL : err, retry)) {
            rc = -1;
            break;
        }
    }
    for (int i = 0; i < n; i++)
        free(ev[i].body);
    free(ev);
    return rc;
}

/* Registers this node in webhook_nodes while it delivers (webhooks.url set), for max-age from
 * now, or deletes its row when it does not (sql/015_webhook_nodes.sql): the event triggers fire
 * only while some node's row holds, so no change pays for events nobody sends. Again every
 * minute, and at once when a reload changes whether this node delivers. */
static void announce(struct wh_worker *w, const struct wh_settings *s)
{
    int want = s->url[0] != 0;
    if (w->announced == want && ml_now_ms() < w->next_announce_ms)
        return;
    char hold[24];
    ml_snprintf(hold, sizeof hold, "%lld", want ? s->max_age_s : 0LL);
    const char *p[] = {w->node, hold};
    PGresult *r = exec(w, "SELECT ml_wh_node($1, $2::bigint)", 2, p, PGRES_TUPLES_OK,
                       want ? "registering as a webhook node" : "unregistering as a webhook node");
    if (!r)
        return;
    PQclear(r);
    w->announced = want;
    w->next_announce_ms = ml_now_ms() + WH_ANNOUNCE_EVERY_MS;
}

static void purge(struct wh_worker *w, const struct wh_settings *s)
{
    char age[24];
    ml_snprintf(age, sizeof age, "%lld", s->retention_s);
    const char *p[] = {age};
    PGresult *r = exec(w, "SELECT ml_wh_purge($1::integer)", 1, p, PGRES_TUPLES_OK,
                       "purging old webhook events");
    if (!r)
        return;
    long long n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    if (n)
        ML_INFO(SUBSYS, "%lld webhook events older than webhooks.retention deleted", n);
    w->next_purge_ms = ml_now_ms() + WH_PURGE_EVERY_MS;
}

/* Milliseconds until the next pending event is due, at most cap. */
static long long next_due(struct wh_worker *w, long long cap)
{
    PGresult *r = exec(w, "SELECT ml_wh_next_due_ms()", 0, NULL, PGRES_TUPLES_OK,
                       "reading the webhook queue");
    if (!r)
        return cap;
    long long d = cap;
    if (!PQgetisnull(r, 0, 0))
        d = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return d < cap ? d : cap;
}

static void *run(void *arg)
{
    struct wh_worker *w = arg;
    struct wh_settings *s = ml_xcalloc(1, sizeof *s);
    while (!stopping(w)) {
        pthread_mutex_lock(&w->mu);
        *s = w->set;
        pthread_mutex_unlock(&w->mu);
        long long sleep_ms = s->poll_ms;
        if (db_up(w)) {
            announce(w, s);
            if (w->pg && ml_now_ms() >= w->next_purge_ms)
                purge(w, s);
            if (w->pg && db_listen(w, s->url[0] != 0) && s->url[0]) {
                int n = deliver_batch(w, s);
                if (n == s->batch)
                    continue; /* more may be due */
            }
            if (w->pg && s->url[0])
                sleep_ms = next_due(w, sleep_ms);
        }
        if (!w->pg) {
            long long d = w->next_connect_ms - ml_now_ms();
            sleep_ms = d < 0 ? 0 : d;
        }
        struct pollfd pf[2] = {{.fd = w->wake[0], .events = POLLIN},
                               {.fd = w->pg ? PQsocket(w->pg) : -1, .events = POLLIN}};
        if (poll(pf, 2, (int)(sleep_ms > 3600000 ? 3600000 : sleep_ms)) < 0 && errno != EINTR)
            break;
        if (pf[0].revents) {
            char buf[64];
            while (read(w->wake[0], buf, sizeof buf) > 0)
                ;
        }
        if (w->pg && pf[1].revents) {
            if (!PQconsumeInput(w->pg)) {
                db_drop(w, "connection lost", PQerrorMessage(w->pg));
                continue;
            }
            PGnotify *nt;
            while ((nt = PQnotifies(w->pg)))
                PQfreemem(nt);
        }
    }
    ml_wipe(s, sizeof *s);
    free(s);
    return NULL;
}

int wh_worker_start(struct wh_worker *w, char *err, size_t errlen)
{
    /* A node says whether it delivers before its control plane answers many requests, so that
     * the changes of the first ones are queued (or not) as configured; when the database is not
     * there yet the thread does it as it connects. */
    if (db_up(w))
        announce(w, &w->set);
    if (pthread_create(&w->thread, NULL, run, w) != 0)
        return ml_err(err, errlen, "cannot start the webhook thread");
    w->started = true;
    return 0;
}

void wh_worker_free(struct wh_worker *w)
{
    if (!w)
        return;
    if (w->started) {
        __atomic_store_n(&w->stopping, true, __ATOMIC_RELAXED);
        ssize_t n = write(w->wake[1], "s", 1);
        ML_UNUSED(n);
        pthread_join(w->thread, NULL);
    }
    http_fetch_conn_free(w->conn);
    if (w->pg)
        PQfinish(w->pg);
    if (w->wake[0] >= 0)
        close(w->wake[0]);
    if (w->wake[1] >= 0)
        close(w->wake[1]);
    pthread_mutex_destroy(&w->mu);
    ml_wipe(&w->set, sizeof w->set);
    free(w->db.url);
    free(w);
}
