/* TURN users and shared secrets from PostgreSQL into the relay, on every node with a database.
 *
 * One thread, one connection: it LISTENs on ml_turn_creds (sql/004_admin.sql notifies it after
 * every statement that changes turn_users or turn_secrets) and reads both tables whole, then
 * swaps them into the relay (turn_server_set_runtime_creds), when a change is notified, when it
 * (re)connects (whatever changed meanwhile), and every admin.sync-interval as a safety net
 * that also notices a dead connection. Reading whole tables keeps it obviously right: the
 * tables are small (bounded by admin.max-turn-users and ADM_MAX_SECRETS) and change rarely.
 *
 * Why not db_listener (src/db/db-listen.c): its notification callback cannot query, and every
 * notification here needs a query; one connection that both listens and reads is simpler than
 * a listener plus a second connection. The admin API also reads and applies right after its own
 * changes (adm_sync_load_pool), so the node that answered 201 already relays with it; every
 * (read, apply) pair, from either path, runs under load_mu, so the newest read always lands
 * last. While PostgreSQL is away the last tables loaded stay in force: the relay never loses
 * its credentials to a database outage. */
#include "config.h"

#include "admin/adm-int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SYNC_CHANNEL "ml_turn_creds"
#define SYNC_BACKOFF_MIN_MS 100

#define SQL_SECRETS                                                                                \
    "SELECT secret FROM (SELECT secret, created_at, id FROM turn_secrets "                         \
    "ORDER BY created_at DESC, id DESC LIMIT 16) s ORDER BY created_at, id"
#define SQL_USERS                                                                                  \
    "SELECT name, encode(md5_key, 'hex'), encode(sha256_key, 'hex') FROM turn_users "              \
    "WHERE realm = $1 ORDER BY name LIMIT $2"

enum { USER_NAME, USER_MD5, USER_SHA256, USER__COLS }; /* SQL_USERS's columns */
static const struct db_stmt st_secrets = {"adm_sync_secrets", SQL_SECRETS, 0, 1};
static const struct db_stmt st_users = {"adm_sync_users", SQL_USERS, 2, USER__COLS};

struct adm_sync {
    struct db_config db; /* url owned */
    struct turn_server *srv;
    char realm[128];
    long long interval_s, max_users;
    adm_sync_changed_fn changed;
    void *arg;
    pthread_t thread;
    bool started;
    int wake[2];
    bool stopping; /* atomic */
    pthread_mutex_t load_mu;
    /* figures (atomic) */
    bool up;
    int64_t last_s;
    uint64_t loads, failures;
    bool warned; /* under load_mu: the schema-missing warning was given */
    /* sync thread only */
    PGconn *pg;
    int64_t backoff_ms, next_try_ms, next_load_ms;
};

/* ------------------------------------------------------------------ one load */

/* Runs one of the two queries (which: 0 secrets, 1 users) with params. */
typedef PGresult *(*exec_fn)(void *ctx, int which, const char *const *params);

static PGresult *exec_raw(void *ctx, int which, const char *const *params)
{
    PGconn *pg = ctx;
    return which ? PQexecParams(pg, SQL_USERS, 2, NULL, params, NULL, NULL, 0)
                 : PQexecParams(pg, SQL_SECRETS, 0, NULL, NULL, NULL, NULL, 0);
}

static PGresult *exec_pool(void *ctx, int which, const char *const *params)
{
    return db_exec(ctx, which ? &st_users : &st_secrets, params);
}

static int hex_decode(const char *hex, uint8_t *out, size_t n)
{
    if (strlen(hex) != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        char two[3] = {hex[2 * i], hex[2 * i + 1], 0};
        char *end;
        v = (unsigned)strtoul(two, &end, 16);
        if (*end)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

/* 1 loaded and applied; 0 the schema is not there yet (nothing changed); -1 failed (*broken:
 * the connection is gone). With load_mu held. */
static int load(struct adm_sync *s, exec_fn ex, void *ctx, bool *broken, char *err, size_t errlen)
{
    char max[24];
    const char *params[] = {s->realm, max};
    ml_snprintf(max, sizeof max, "%lld", s->max_users);
    *broken = false;
    PGresult *rs = ex(ctx, 0, NULL);
    PGresult *ru = rs && PQresultStatus(rs) == PGRES_TUPLES_OK ? ex(ctx, 1, params) : NULL;
    int rc = -1;
    char **secrets = NULL;
    struct turn_runtime_user *users = NULL;
    size_t ns = 0, nu = 0;
    if (!rs || (PQresultStatus(rs) == PGRES_TUPLES_OK && !ru)) {
        *broken = true;
        ml_err(err, errlen, "the connection broke");
        goto out;
    }
    PGresult *bad = PQresultStatus(rs) != PGRES_TUPLES_OK ? rs : ru;
    if (PQresultStatus(bad) != PGRES_TUPLES_OK) {
        if (!strcmp(db_sqlstate(bad), "42P01")) { /* undefined_table */
            rc = 0;
            ml_err(err, errlen, "turn_users or turn_secrets is missing (run meetlited --migrate)");
        } else {
            ml_err(err, errlen, "%s", PQresultErrorMessage(bad));
        }
        goto out;
    }
    ns = (size_t)PQntuples(rs);
    nu = (size_t)PQntuples(ru);
    secrets = calloc(ns + 1, sizeof *secrets);
    users = calloc(nu + 1, sizeof *users);
    if (!secrets || !users) {
        ml_err(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < ns; i++)
        secrets[i] = PQgetvalue(rs, (int)i, 0);
    for (size_t i = 0; i < nu; i++) {
        struct turn_runtime_user *u = &users[i];
        if (ml_strlcpy(u->name, PQgetvalue(ru, (int)i, USER_NAME), sizeof u->name) >=
                sizeof u->name ||
            hex_decode(PQgetvalue(ru, (int)i, USER_MD5), u->md5, sizeof u->md5) < 0 ||
            hex_decode(PQgetvalue(ru, (int)i, USER_SHA256), u->sha256, sizeof u->sha256) < 0) {
            ml_err(err, errlen, "turn_users row %zu is malformed", i + 1);
            goto out;
        }
    }
    if (turn_server_set_runtime_creds(s->srv, (const char *const *)secrets, ns, users, nu, err,
                                      errlen) < 0)
        goto out;
    rc = 1;
out:
    if (users)
        ml_wipe(users, (nu + 1) * sizeof *users);
    free(users);
    free(secrets);
    PQclear(rs); /* PQclear wipes nothing: the secrets stay in freed memory until reused */
    PQclear(ru);
    return rc;
}

/* Loads and applies under load_mu, and keeps the figures. */
static int load_locked(struct adm_sync *s, exec_fn ex, void *ctx, bool *broken, char *err,
                       size_t errlen)
{
    pthread_mutex_lock(&s->load_mu);
    int rc = load(s, ex, ctx, broken, err, errlen);
    bool warn = rc == 0 && !s->warned;
    if (rc == 0)
        s->warned = true;
    pthread_mutex_unlock(&s->load_mu);
    if (rc > 0) {
        __atomic_add_fetch(&s->loads, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&s->last_s, ml_wall_s(), __ATOMIC_RELAXED);
        if (s->changed)
            s->changed(s->arg);
    } else {
        __atomic_add_fetch(&s->failures, 1, __ATOMIC_RELAXED);
        if (warn)
            ML_WARN("admin", "TURN users and secrets from the database are off for now: %s", err);
    }
    return rc;
}

int adm_sync_load_pool(struct adm_sync *s, struct db_conn *c, char *err, size_t errlen)
{
    bool broken;
    int rc = load_locked(s, exec_pool, c, &broken, err, errlen);
    return rc > 0 ? 0 : -1;
}

const char *adm_sync_realm(const struct adm_sync *s)
{
    return s->realm;
}

long long adm_sync_max_users(const struct adm_sync *s)
{
    return s->max_users;
}

/* ------------------------------------------------------------------ the thread */

static void schedule_retry(struct adm_sync *s)
{
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : SYNC_BACKOFF_MIN_MS;
    if (s->backoff_ms > s->db.reconnect_max_ms)
        s->backoff_ms = s->db.reconnect_max_ms;
    uint32_t r;
    ml_random(&r, sizeof r);
    s->next_try_ms = ml_now_ms() + s->backoff_ms + (int64_t)(r % (uint32_t)(s->backoff_ms / 4 + 1));
}

static void drop(struct adm_sync *s, const char *why)
{
    bool was_up = __atomic_exchange_n(&s->up, false, __ATOMIC_RELAXED);
    if (s->pg)
        PQfinish(s->pg);
    s->pg = NULL;
    schedule_retry(s);
    if (was_up)
        ML_WARN("admin",
                "TURN credential sync: %s; the credentials loaded stay in force, "
                "retrying",
                why);
}

static bool connect_listen(struct adm_sync *s, char *err, size_t errlen)
{
    char timeout[32], opts[96];
    ml_snprintf(timeout, sizeof timeout, "%lld", s->db.connect_timeout_s);
    ml_snprintf(opts, sizeof opts, "-c statement_timeout=%lld", s->db.statement_timeout_ms);
    const char *keys[] = {"keepalives",       "keepalives_idle", "dbname", "connect_timeout",
                          "application_name", "options",         NULL};
    const char *vals[] = {"1", "10", s->db.url, timeout, "meetlited-credsync", opts, NULL};
    s->pg = PQconnectdbParams(keys, vals, 1);
    if (!s->pg || PQstatus(s->pg) != CONNECTION_OK) {
        ml_err(err, errlen, "%s", s->pg ? PQerrorMessage(s->pg) : "out of memory");
        return false;
    }
    PGresult *r = PQexec(s->pg, "LISTEN " SYNC_CHANNEL);
    bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        ml_err(err, errlen, "LISTEN: %s", r ? PQresultErrorMessage(r) : PQerrorMessage(s->pg));
    PQclear(r);
    return ok;
}

static void *sync_main(void *arg)
{
    struct adm_sync *s = arg;
    char err[512];
    ml_log_set_thread("credsync");
    while (!__atomic_load_n(&s->stopping, __ATOMIC_RELAXED)) {
        int64_t now = ml_now_ms();
        if (!s->pg) {
            if (now >= s->next_try_ms) {
                if (connect_listen(s, err, sizeof err)) {
                    s->backoff_ms = 0;
                    s->next_load_ms = now; /* catch up on whatever changed meanwhile */
                    __atomic_store_n(&s->up, true, __ATOMIC_RELAXED);
                } else {
                    ml_trim(err);
                    drop(s, err);
                }
                continue;
            }
        } else if (now >= s->next_load_ms) {
            bool broken;
            int rc = load_locked(s, exec_raw, s->pg, &broken, err, sizeof err);
            s->next_load_ms = now + s->interval_s * 1000;
            if (rc < 0 && !broken)
                ML_WARN("admin", "TURN credential sync: %s", ml_trim(err));
            if (broken || PQstatus(s->pg) != CONNECTION_OK) {
                ml_snprintf(err, sizeof err, "connection lost: %s", PQerrorMessage(s->pg));
                drop(s, ml_trim(err));
                continue;
            }
            /* a change notified while the tables were read may have missed the read */
            bool any = false;
            for (PGnotify *nf; (nf = PQnotifies(s->pg)); PQfreemem(nf))
                any = true;
            if (any)
                s->next_load_ms = ml_now_ms();
            continue;
        }
        struct pollfd pfd[2] = {{.fd = s->wake[0], .events = POLLIN},
                                {.fd = s->pg ? PQsocket(s->pg) : -1, .events = POLLIN}};
        int64_t until = s->pg ? s->next_load_ms : s->next_try_ms;
        int64_t wait = until - ml_now_ms();
        int timeout = wait < 0 ? 0 : wait > 60000 ? 60000 : (int)wait;
        int n = poll(pfd, 2, timeout);
        if (n < 0 && errno != EINTR)
            break;
        if (pfd[0].revents) {
            char buf[16];
            while (read(s->wake[0], buf, sizeof buf) > 0)
                ;
            continue;
        }
        if (s->pg && (pfd[1].revents & (POLLIN | POLLERR | POLLHUP))) {
            if (!PQconsumeInput(s->pg)) {
                ml_snprintf(err, sizeof err, "connection lost: %s", PQerrorMessage(s->pg));
                drop(s, ml_trim(err));
                continue;
            }
            bool any = false;
            for (PGnotify *nf; (nf = PQnotifies(s->pg)); PQfreemem(nf))
                any = true;
            if (any)
                s->next_load_ms = ml_now_ms(); /* read at once; a burst is read once */
        }
    }
    if (s->pg)
        PQfinish(s->pg);
    s->pg = NULL;
    __atomic_store_n(&s->up, false, __ATOMIC_RELAXED);
    return NULL;
}

struct adm_sync *adm_sync_new(const struct db_config *db, const struct adm_config *cfg,
                              struct turn_server *srv, adm_sync_changed_fn changed, void *arg,
                              char *err, size_t errlen)
{
    if (!db->url) {
        ml_err(err, errlen, "database.url is not set");
        return NULL;
    }
    struct adm_sync *s = ml_xcalloc(1, sizeof *s);
    s->wake[0] = s->wake[1] = -1;
    s->db = *db;
    s->db.url = ml_xstrdup(db->url);
    s->db.migrations_dir = NULL;
    s->srv = srv;
    ml_strlcpy(s->realm, turn_server_realm(srv), sizeof s->realm);
    s->interval_s = cfg->sync_interval_s > 0 ? cfg->sync_interval_s : 60;
    s->max_users = cfg->max_turn_users;
    s->changed = changed;
    s->arg = arg;
    pthread_mutex_init(&s->load_mu, NULL);
    if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        ml_err(err, errlen, "cannot make a pipe: %s", strerror(errno));
        adm_sync_free(s);
        return NULL;
    }
    int rc = pthread_create(&s->thread, NULL, sync_main, s);
    if (rc) {
        ml_err(err, errlen, "cannot start the credential sync thread: %s", strerror(rc));
        adm_sync_free(s);
        return NULL;
    }
    s->started = true;
    return s;
}

void adm_sync_stats(struct adm_sync *s, struct st_sync *out)
{
    memset(out, 0, sizeof *out);
    if (!s)
        return;
    out->present = true;
    out->up = __atomic_load_n(&s->up, __ATOMIC_RELAXED);
    out->last_s = __atomic_load_n(&s->last_s, __ATOMIC_RELAXED);
    out->loads = __atomic_load_n(&s->loads, __ATOMIC_RELAXED);
    out->failures = __atomic_load_n(&s->failures, __ATOMIC_RELAXED);
}

void adm_sync_free(struct adm_sync *s)
{
    if (!s)
        return;
    if (s->started) {
        __atomic_store_n(&s->stopping, true, __ATOMIC_RELAXED);
        ssize_t w;
        do
            w = write(s->wake[1], "x", 1);
        while (w < 0 && errno == EINTR);
        pthread_join(s->thread, NULL);
    }
    if (s->wake[0] >= 0)
        close(s->wake[0]);
    if (s->wake[1] >= 0)
        close(s->wake[1]);
    pthread_mutex_destroy(&s->load_mu);
    free(s->db.url);
    free(s);
}
