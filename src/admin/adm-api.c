/* The admin API's handlers: health and readiness, stats and metrics, TURN users and shared
 * secrets (PostgreSQL), REST credentials, allocations (list and close by id, meeting,
 * participant, user or client address), drain mode, the log level and the TLS certificate
 * (webhooks: adm-webhooks.c). Handlers run on the admin thread; database work runs on the admin
 * pool's threads (its inputs copied into the request's op first), relay work on the network
 * workers. */
#include "config.h"

#include "admin/adm-int.h"

#include <ctype.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define SUBSYS "admin"
#define TOP_ASK_FACTOR 4 /* groups asked for per meeting shown: static users form groups too */
#define TOP_ASK_MAX 4000
#define CRED_TTL_DEFAULT 3600
#define CRED_TTL_MAX (7 * 86400)
#define LIST_DEFAULT 100

static json_t *ju(uint64_t v)
{
    return json_integer((json_int_t)(v > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : v));
}

/* The op state of a handler: allocated zeroed, freed with the request. */
static void *op_new(struct adm_req *r, size_t size)
{
    r->op = ml_xcalloc(1, size);
    return r->op;
}

/* A failed statement: the connection broke (503), or an error to log and answer 500. */
static enum db_status sql_failed(struct adm_req *r, struct db_conn *c, PGresult *res,
                                 const char *what)
{
    if (!res)
        return DB_UNAVAILABLE;
    char msg[256];
    ml_strlcpy(msg, PQresultErrorMessage(res), sizeof msg);
    ML_ERROR(SUBSYS, "%s failed (%s): %s", what, db_sqlstate(res), ml_trim(msg));
    PQclear(res);
    ML_UNUSED(c);
    http_job_err(&r->http, HTTP_E_INTERNAL, what);
    return DB_FAILED;
}

static bool tuples(PGresult *res)
{
    return res && PQresultStatus(res) == PGRES_TUPLES_OK;
}

static void hex(const uint8_t *in, size_t n, char *out)
{
    ml_hex_encode(in, n, out);
}

/* The first 16 hex digits of SHA-256(secret): names a secret without giving it away. */
static void fingerprint(const char *secret, char out[17])
{
    uint8_t d[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    char h[2 * EVP_MAX_MD_SIZE + 1];
    EVP_Digest(secret, strlen(secret), d, &len, EVP_sha256(), NULL);
    hex(d, 8, h);
    memcpy(out, h, 16);
    out[16] = 0;
}

static bool is_tag(const char *s)
{
    if (strlen(s) != 16)
        return false;
    for (int i = 0; i < 16; i++)
        if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
            return false;
    return true;
}

/* ------------------------------------------------------------------ health */

static void h_healthz(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    struct adm *a = adm_of(r);
    ML_UNUSED(a);
    http_reply_json(&r->http, 200,
                    json_pack("{s:s,s:s}", "status", "ok", "version", PACKAGE_VERSION));
}

static enum db_status w_ping(struct db_conn *c, struct db_job *job)
{
    static const struct db_stmt st = {"adm_ping", "SELECT 1", 0};
    struct adm_req *r = (struct adm_req *)job;
    PGresult *res = db_exec(c, &st, NULL);
    if (!tuples(res))
        return sql_failed(r, c, res, "readiness check");
    PQclear(res);
    return DB_OK;
}

static void ready_answer(struct adm *a, struct adm_req *r)
{
    bool draining = turn_server_draining(a->deps.turn);
    const char *db = !a->pool                                      ? "none"
                     : r->http.job.status == DB_OK && !r->http.err ? "up"
                                                                   : "down";
    bool ok = !draining && strcmp(db, "down") != 0;
    http_reply_json(&r->http, ok ? 200 : 503,
                    json_pack("{s:s,s:s,s:b}", "status", ok ? "ready" : "not_ready", "database", db,
                              "draining", draining));
}

/* Ready: not draining, and PostgreSQL answers (when there is one). A load balancer takes a
 * draining node out of its rotation this way. */
static void h_readyz(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    struct adm *a = adm_of(r);
    if (!a->pool || turn_server_draining(a->deps.turn)) {
        ready_answer(a, r);
        return;
    }
    adm_submit(r, w_ping, ready_answer);
}

/* ------------------------------------------------------------------ stats and metrics */

struct stats_op {
    bool metrics;
    struct st_snapshot snap;
    struct st_meeting *top; /* ntop of them */
    size_t ntop;
};

static void stats_op_free(void *arg)
{
    struct stats_op *op = arg;
    free(op->top);
    op->top = NULL;
}

_Static_assert(ST_HTTP_CODES == HTTP_STATUSES && ST_HTTP_MIN == HTTP_STATUS_MIN,
               "the stats count answers by status as the HTTP layer does");

static void snapshot(struct adm *a, struct st_snapshot *s)
{
    memset(s, 0, sizeof *s);
    ml_strlcpy(s->proc.version, PACKAGE_VERSION, sizeof s->proc.version);
    st_process_read(&s->proc);
    turn_counters_read(a->deps.engine, &s->turn);
    net_engine_counters(a->deps.engine, &s->net);
    net_engine_limits(a->deps.engine, &s->net_max_streams, &s->net_max_per_addr, &s->net_addresses);
    s->net_max_streams *= net_engine_workers(a->deps.engine);
    s->draining = turn_server_draining(a->deps.turn);
    adm_sync_stats(a->deps.sync, &s->sync);
    turn_server_runtime_counts(a->deps.turn, &s->sync.secrets, &s->sync.users);
    if (a->deps.relay_link) {
        a->deps.relay_link(a->deps.arg, &s->link);
        s->link.present = true;
    }
    if (a->deps.webhooks) {
        a->deps.webhooks(a->deps.arg, &s->hooks);
        s->hooks.present = true;
    }
    if (a->deps.cp) {
        struct cp_counters *cc = ml_xcalloc(1, sizeof *cc);
        cp_counters_read(a->deps.cp, cc);
        s->have_cp = true;
        memcpy(s->http_api, cc->http_by_status, sizeof s->http_api);
        s->api_conns = cc->http_conns;
        s->ws_connections = cc->ws_connections;
        memcpy(s->ws_closes, cc->ws_closes, sizeof s->ws_closes);
        memcpy(s->http_latency, cc->latency, sizeof s->http_latency);
        s->pools[s->npools].name = "api";
        s->pools[s->npools++].st = cc->pool;
        free(cc);
    }
    http_server_counters(a->http, s->http_admin);
    http_server_latency(a->http, s->http_latency); /* adds the admin class */
    http_server_conn_stats(a->http, &s->admin_conns);
    if (a->pool) {
        s->pools[s->npools].name = "admin";
        db_pool_stats(a->pool, &s->pools[s->npools++].st);
    }
}

static void stats_render(struct adm *a, struct adm_req *r)
{
    struct stats_op *op = r->op;
    ML_UNUSED(a);
    if (op->metrics) {
        size_t len;
        char *text = st_prometheus(&op->snap, &len);
        if (!text) {
            http_reply_err(&r->http, HTTP_E_INTERNAL, "out of memory");
            return;
        }
        http_reply_text(&r->http, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
        return;
    }
    op->snap.top = op->top;
    op->snap.ntop = op->ntop;
    json_t *j = st_json(&op->snap);
    free(op->top);
    op->top = NULL;
    http_reply_json(&r->http, 200, j);
}

/* Meetings and participants (all nodes: the database's figures), and what the database knows
 * of the top meetings' tags. Every part is optional: a failure leaves it out. */
static enum db_status w_stats(struct db_conn *c, struct db_job *job)
{
    enum { COUNT_MEETINGS, COUNT_PARTICIPANTS, COUNT__COLS };
    static const struct db_stmt st_counts = {
        "adm_counts",
        "SELECT (SELECT count(*) FROM meetings WHERE status = 'ACTIVE'), "
        "(SELECT count(*) FROM participants p JOIN meetings m ON m.id = p.meeting_id "
        "WHERE p.left_at IS NULL AND m.status = 'ACTIVE')",
        0, COUNT__COLS};
    enum { TAG_TAG, TAG_ID, TAG_CODE, TAG_TITLE, TAG__COLS };
    static const struct db_stmt st_tags = {
        "adm_tags",
        "SELECT turn_tag, id, code, title FROM meetings WHERE turn_tag = ANY($1::text[])", 1,
        TAG__COLS};
    struct adm_req *r = (struct adm_req *)job;
    struct stats_op *op = r->op;
    if (op->snap.have_cp) {
        PGresult *res = db_exec(c, &st_counts, NULL);
        if (!res)
            return DB_UNAVAILABLE;
        if (tuples(res) && PQntuples(res) == 1) {
            op->snap.have_db_counts = true;
            op->snap.meetings_active = strtoll(PQgetvalue(res, 0, COUNT_MEETINGS), NULL, 10);
            op->snap.participants_present =
                strtoll(PQgetvalue(res, 0, COUNT_PARTICIPANTS), NULL, 10);
        }
        PQclear(res);
    }
    if (op->ntop) {
        /* {"a","b"}: tags are 16 hex digits, nothing to quote; ntop bounds the text */
        struct ml_buf arr = ML_BUF_INIT(SIZE_MAX);
        (void)ml_buf_str(&arr, "{");
        for (size_t i = 0; i < op->ntop; i++)
            (void)ml_buf_printf(&arr, "%s%s", i ? "," : "", op->top[i].tag);
        (void)ml_buf_str(&arr, "}");
        const char *p[] = {arr.p};
        PGresult *res = db_exec(c, &st_tags, p);
        ml_buf_free(&arr);
        if (!res)
            return DB_UNAVAILABLE;
        for (int i = 0; tuples(res) && i < PQntuples(res); i++)
            for (size_t k = 0; k < op->ntop; k++)
                if (!strcmp(op->top[k].tag, PQgetvalue(res, i, TAG_TAG))) {
                    ml_strlcpy(op->top[k].meeting_id, PQgetvalue(res, i, TAG_ID),
                               sizeof op->top[k].meeting_id);
                    ml_strlcpy(op->top[k].code, PQgetvalue(res, i, TAG_CODE),
                               sizeof op->top[k].code);
                    ml_strlcpy(op->top[k].title, PQgetvalue(res, i, TAG_TITLE),
                               sizeof op->top[k].title);
                }
        PQclear(res);
    }
    return DB_OK;
}

static void stats_after_db(struct adm *a, struct adm_req *r)
{
    stats_render(a, r); /* DB_UNAVAILABLE too: the figures that need it are left out */
}

static void stats_db_or_render(struct adm *a, struct adm_req *r)
{
    struct stats_op *op = r->op;
    if (a->pool && (op->snap.have_cp || op->ntop) && db_pool_up(a->pool))
        adm_submit(r, w_stats, stats_after_db);
    else
        stats_render(a, r);
}

static void stats_groups(struct adm *a, struct adm_req *r, struct adm_done *d)
{
    struct stats_op *op = r->op;
    size_t limit = op->snap.top_limit, groups = 0;
    op->top = ml_xcalloc(limit ? limit : 1, sizeof *op->top);
    for (size_t i = 0; i < d->ngroups; i++) {
        if (!is_tag(d->groups[i].tag))
            continue; /* a static user or an account credential: not a meeting */
        groups++;
        if (op->ntop < limit) {
            ml_strlcpy(op->top[op->ntop].tag, d->groups[i].tag, sizeof op->top[op->ntop].tag);
            op->top[op->ntop++].allocations = d->groups[i].allocations;
        }
    }
    op->snap.have_top = true;
    /* groups counts the meetings among those reported; with more groups than asked for, the
     * total is at least that */
    op->snap.top_groups = groups;
    stats_db_or_render(a, r);
}

static void on_groups(void *arg, struct turn_group_count *v, size_t n, size_t groups)
{
    struct adm_req *r = arg;
    struct adm_done *d = ml_xcalloc(1, sizeof *d);
    ML_UNUSED(groups);
    d->fn = stats_groups;
    d->groups = v;
    d->ngroups = n;
    adm_post(r, d);
}

static void stats_start(struct adm *a, struct adm_req *r, bool metrics)
{
    struct stats_op *op = op_new(r, sizeof *op);
    r->op_free = stats_op_free; /* the top meetings, when the request ends before rendering */
    op->metrics = metrics;
    snapshot(a, &op->snap);
    if (!metrics) {
        long long top = __atomic_load_n(&a->top_meetings, __ATOMIC_RELAXED);
        const char *q = http_req_arg(&r->http, "top");
        if (q && ml_parse_ll(q, 0, 1000, &top) < 0) {
            http_reply_err(&r->http, HTTP_E_INVALID_FIELD, "top: an integer from 0 to 1000");
            return;
        }
        op->snap.top_limit = (size_t)top;
        op->snap.have_top = true; /* an empty list for top=0 */
        size_t ask = (size_t)top * TOP_ASK_FACTOR;
        if (ask > TOP_ASK_MAX)
            ask = TOP_ASK_MAX;
        if (top > 0) {
            http_hold(&r->http);
            if (turn_server_count_by_tag(a->deps.turn, ask, on_groups, r) == 0)
                return;
            http_unhold(&r->http);
        }
    }
    stats_db_or_render(a, r);
}

static void h_stats(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    struct adm *a = adm_of(r);
    stats_start(a, r, false);
}

static void h_metrics(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    struct adm *a = adm_of(r);
    stats_start(a, r, true);
}

/* ------------------------------------------------------------------ TURN users */

struct user_in {
    char name[TURN_ID_MAX];
    char password[260];
};
static const struct http_param user_params[] = {
    {"name", HTTP_P_STRING, HTTP_P_REQUIRED, 1, TURN_ID_MAX - 1, offsetof(struct user_in, name),
     TURN_ID_MAX, HTTP_P_NOHAS, NULL},
    {"password", HTTP_P_STRING, HTTP_P_REQUIRED, 8, 256, offsetof(struct user_in, password), 260,
     HTTP_P_NOHAS, NULL},
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

struct user_op {
    char realm[128];
    char name[TURN_ID_MAX];
    char md5[33], sha256[65];
    long long max;
    bool exists, full;
    size_t closed;
};

static bool need_sync(struct adm *a, struct adm_req *r)
{
    if (a->deps.sync)
        return true;
    http_reply_err(&r->http, HTTP_E_CONFLICT,
                   a->pool ? "admin.db-credentials is off on this node"
                           : "no database: database.url is not set");
    return false;
}

static enum db_status w_users_list(struct db_conn *c, struct db_job *job)
{
    enum { USER_NAME, USER_CREATED, USER__COLS };
    static const struct db_stmt st = {
        "adm_users_list",
        "SELECT name, floor(extract(epoch FROM created_at))::bigint FROM turn_users "
        "WHERE realm = $1 ORDER BY name LIMIT $2",
        2, USER__COLS};
    struct adm_req *r = (struct adm_req *)job;
    struct user_op *op = r->op;
    char max[24];
    ml_snprintf(max, sizeof max, "%lld", op->max);
    const char *p[] = {op->realm, max};
    PGresult *res = db_exec(c, &st, p);
    if (!tuples(res))
        return sql_failed(r, c, res, "listing TURN users");
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(
            arr, json_pack("{s:s,s:I}", "name", PQgetvalue(res, i, USER_NAME), "created_at",
                           (json_int_t)strtoll(PQgetvalue(res, i, USER_CREATED), NULL, 10)));
    http_job_json(
        &r->http, 200,
        json_pack("{s:s,s:i,s:o}", "realm", op->realm, "count", PQntuples(res), "users", arr));
    PQclear(res);
    return DB_OK;
}

static void h_users_list(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    struct adm *a = adm_of(r);
    struct user_op *op = op_new(r, sizeof *op);
    ml_strlcpy(op->realm, turn_server_realm(a->deps.turn), sizeof op->realm);
    op->max = a->cfg.max_turn_users;
    adm_submit(r, w_users_list, NULL);
}

static enum db_status w_user_add(struct db_conn *c, struct db_job *job)
{
    static const struct db_stmt st_add = {
        "adm_user_add",
        "WITH n AS (SELECT count(*) AS n FROM turn_users WHERE realm = $1) "
        "INSERT INTO turn_users (realm, name, md5_key, sha256_key) "
        "SELECT $1, $2, decode($3, 'hex'), decode($4, 'hex') FROM n WHERE n.n < $5::bigint "
        "ON CONFLICT DO NOTHING RETURNING floor(extract(epoch FROM created_at))::bigint",
        5};
    static const struct db_stmt st_exists = {
        "adm_user_exists", "SELECT 1 FROM turn_users WHERE realm = $1 AND name = $2", 2};
    struct adm_req *r = (struct adm_req *)job;
    struct user_op *op = r->op;
    char max[24], err[256];
    ml_snprintf(max, sizeof max, "%lld", op->max);
    const char *p[] = {op->realm, op->name, op->md5, op->sha256, max};
    PGresult *res = db_exec(c, &st_add, p);
    ml_wipe(op->md5, sizeof op->md5);
    ml_wipe(op->sha256, sizeof op->sha256);
    if (!tuples(res))
        return sql_failed(r, c, res, "creating a TURN user");
    if (PQntuples(res) == 0) {
        PQclear(res);
        res = db_exec(c, &st_exists, p);
        if (!tuples(res))
            return sql_failed(r, c, res, "creating a TURN user");
        bool exists = PQntuples(res) > 0;
        PQclear(res);
        r->http.err = HTTP_E_CONFLICT;
        if (exists)
            ml_snprintf(r->http.errmsg, sizeof r->http.errmsg, "a TURN user named %s exists",
                        op->name);
        else
            ml_snprintf(r->http.errmsg, sizeof r->http.errmsg,
                        "admin.max-turn-users (%lld) users exist already", op->max);
        return DB_FAILED;
    }
    long long created = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (adm_sync_load_pool(adm_of(r)->deps.sync, c, err, sizeof err) < 0)
        ML_WARN(SUBSYS, "TURN user %s stored; the relay takes it at the next sync: %s", op->name,
                err);
    http_job_json(&r->http, 201,
                  json_pack("{s:s,s:s,s:I}", "name", op->name, "realm", op->realm, "created_at",
                            (json_int_t)created));
    return DB_OK;
}

/* The long-term keys of name:realm:password, as hex. */
static int user_keys(const char *name, const char *realm, const char *pass, char md5[33],
                     char sha[65])
{
    char buf[TURN_ID_MAX + 128 + 260 + 4];
    uint8_t d[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    size_t n = ml_snprintf(buf, sizeof buf, "%s:%s:%s", name, realm, pass);
    int ok = EVP_Digest(buf, n, d, &len, EVP_md5(), NULL) == 1 && len == 16;
    if (ok)
        hex(d, 16, md5);
    ok = ok && EVP_Digest(buf, n, d, &len, EVP_sha256(), NULL) == 1 && len == 32;
    if (ok)
        hex(d, 32, sha);
    ml_wipe(buf, sizeof buf);
    ml_wipe(d, sizeof d);
    return ok ? 0 : -1;
}

static void h_user_add(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    struct adm *a = adm_of(r);
    struct user_in *in = r->http.params;
    if (!need_sync(a, r))
        return;
    if (!adm_user_name_ok(in->name)) {
        http_reply_err(&r->http, HTTP_E_INVALID_FIELD,
                       "name: 1 to 127 of the characters A-Z a-z 0-9 . _ @ + -");
        return;
    }
    struct user_op *op = op_new(r, sizeof *op);
    ml_strlcpy(op->realm, turn_server_realm(a->deps.turn), sizeof op->realm);
    ml_strlcpy(op->name, in->name, sizeof op->name);
    op->max = a->cfg.max_turn_users;
    int rc = user_keys(in->name, op->realm, in->password, op->md5, op->sha256);
    ml_wipe(in->password, sizeof in->password);
    if (rc < 0) {
        http_reply_err(&r->http, HTTP_E_INTERNAL, "cannot compute the keys");
        return;
    }
    adm_submit(r, w_user_add, NULL);
}

static enum db_status w_user_del(struct db_conn *c, struct db_job *job)
{
    static const struct db_stmt st = {
        "adm_user_del", "DELETE FROM turn_users WHERE realm = $1 AND name = $2 RETURNING 1", 2};
    struct adm_req *r = (struct adm_req *)job;
    struct user_op *op = r->op;
    char err[256];
    const char *p[] = {op->realm, op->name};
    PGresult *res = db_exec(c, &st, p);
    if (!tuples(res))
        return sql_failed(r, c, res, "deleting a TURN user");
    bool found = PQntuples(res) > 0;
    PQclear(res);
    if (!found) {
        r->http.err = HTTP_E_NOT_FOUND;
        ml_snprintf(r->http.errmsg, sizeof r->http.errmsg, "no TURN user named %s", op->name);
        return DB_FAILED;
    }
    if (adm_sync_load_pool(adm_of(r)->deps.sync, c, err, sizeof err) < 0)
        ML_WARN(SUBSYS, "TURN user %s deleted; the relay drops it at the next sync: %s", op->name,
                err);
    return DB_OK;
}

static void user_closed(struct adm *a, struct adm_req *r, struct adm_done *d)
{
    struct user_op *op = r->op;
    ML_UNUSED(a);
    http_reply_json(
        &r->http, 200,
        json_pack("{s:s,s:I}", "deleted", op->name, "allocations_closed", (json_int_t)d->closed));
}

/* turn_closed_cb of DELETE /v1/turn/users/{name} (a worker thread). */
static void on_user_closed(void *arg, size_t closed)
{
    struct adm_req *r = arg;
    struct adm_done *d = ml_xcalloc(1, sizeof *d);
    d->fn = user_closed;
    d->closed = closed;
    adm_post(r, d);
}

static void user_deleted(struct adm *a, struct adm_req *r)
{
    struct user_op *op = r->op;
    if (r->http.job.status != DB_OK || r->http.err != HTTP_OK) {
        http_reply_err(&r->http, r->http.err != HTTP_OK ? r->http.err : HTTP_E_UNAVAILABLE,
                       r->http.errmsg);
        return;
    }
    ML_NOTICE(SUBSYS, "TURN user %s deleted; closing its allocations", op->name);
    /* The relay refuses the user already; its live allocations end now too. */
    struct turn_alloc_filter f;
    memset(&f, 0, sizeof f);
    ml_strlcpy(f.cred_id, op->name, sizeof f.cred_id);
    http_hold(&r->http);
    if (turn_server_close(a->deps.turn, &f, "user deleted", on_user_closed, r) < 0) {
        http_unhold(&r->http);
        struct adm_done d = {0};
        user_closed(a, r, &d);
    }
}

static void h_user_del(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    struct adm *a = adm_of(r);
    if (!need_sync(a, r))
        return;
    if (!adm_user_name_ok(r->http.caps[0])) {
        http_reply_err(&r->http, HTTP_E_NOT_FOUND, "no TURN user by that name");
        return;
    }
    struct user_op *op = op_new(r, sizeof *op);
    ml_strlcpy(op->realm, turn_server_realm(a->deps.turn), sizeof op->realm);
    ml_strlcpy(op->name, r->http.caps[0], sizeof op->name);
    adm_submit(r, w_user_del, user_deleted);
}

/* ------------------------------------------------------------------ REST credentials */

struct cred_in {
    char id[TURN_ID_MAX];
    long long ttl;
    bool has_ttl;
};
static const struct http_param cred_params[] = {
    {"id", HTTP_P_STRING, HTTP_P_REQUIRED | HTTP_P_NO_CTRL, 1, TURN_ID_MAX - 1,
     offsetof(struct cred_in, id), TURN_ID_MAX, HTTP_P_NOHAS, NULL},
    {"ttl", HTTP_P_INT, 0, 1, CRED_TTL_MAX, offsetof(struct cred_in, ttl), 0,
     offsetof(struct cred_in, has_ttl), NULL},
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

static void h_credential(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    struct adm *a = adm_of(r);
    struct cred_in *in = r->http.params;
    char secret[260], user[TURN_ID_MAX + 32], pass[64];
    for (const char *p = in->id; *p; p++)
        if (*p == ':' || isspace((unsigned char)*p)) {
            http_reply_err(&r->http, HTTP_E_INVALID_FIELD, "id: no ':' and no white space");
            return;
        }
    long long ttl = in->has_ttl ? in->ttl : CRED_TTL_DEFAULT;
    int64_t expiry = ml_wall_s() + ttl;
    if (!turn_server_signing_secret(a->deps.turn, secret, sizeof secret)) {
        http_reply_err(&r->http, HTTP_E_CONFLICT,
                       "no shared secret: set turn.auth-secret or add one with POST "
                       "/v1/turn/secrets");
        return;
    }
    int rc = turn_rest_credential(secret, in->id, expiry, user, sizeof user, pass, sizeof pass);
    ml_wipe(secret, sizeof secret);
    if (rc < 0) {
        http_reply_err(&r->http, HTTP_E_INVALID_FIELD, "id: cannot make a credential of it");
        return;
    }
    ML_NOTICE(SUBSYS, "TURN credential issued for id %s, ttl %lld s", in->id, ttl);
    http_reply_json(&r->http, 200,
                    json_pack("{s:s,s:s,s:I,s:I,s:s}", "username", user, "password", pass, "ttl",
                              (json_int_t)ttl, "expires_at", (json_int_t)expiry, "realm",
                              turn_server_realm(a->deps.turn)));
    ml_wipe(pass, sizeof pass);
}

/* ------------------------------------------------------------------ allocations */

/* Which allocations: the query arguments of GET, or the body of POST .../close. */
struct filter_in {
    char meeting[64];
    char participant[64];
    char user[TURN_ID_MAX];
    char client[64];
    long long id;
    bool has_meeting, has_participant, has_user, has_client, has_id;
};
static const struct http_param filter_params[] = {
    {"meeting", HTTP_P_STRING, HTTP_P_TRIM, 1, 63, offsetof(struct filter_in, meeting), 64,
     offsetof(struct filter_in, has_meeting), NULL},
    {"participant", HTTP_P_STRING, HTTP_P_TRIM, 1, 63, offsetof(struct filter_in, participant), 64,
     offsetof(struct filter_in, has_participant), NULL},
    {"user", HTTP_P_STRING, HTTP_P_TRIM, 1, TURN_ID_MAX - 1, offsetof(struct filter_in, user),
     TURN_ID_MAX, offsetof(struct filter_in, has_user), NULL},
    {"client", HTTP_P_STRING, HTTP_P_TRIM, 1, 63, offsetof(struct filter_in, client), 64,
     offsetof(struct filter_in, has_client), NULL},
    {"id", HTTP_P_INT, 0, 1, INT64_MAX, offsetof(struct filter_in, id), 0,
     offsetof(struct filter_in, has_id), NULL},
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

struct alloc_op {
    struct filter_in in;
    bool close;                 /* close rather than list */
    size_t limit;               /* listing */
    struct turn_alloc_filter f; /* what the relay filters */
    char suffix[72];            /* ".<participant>": filtered here (no meeting given) */
    char ref_id[40], ref_code[16];
    char tag[TURN_ID_MAX]; /* the meeting's tag, from the database */
    bool found;
    size_t closed;
    unsigned closes; /* close operations still running */
};

static void alloc_go(struct adm *a, struct adm_req *r);

/* Fills the relay's filter from the request; the meeting may need the database first. */
static bool filter_build(struct adm_req *r, struct alloc_op *op)
{
    struct filter_in *in = &op->in;
    struct turn_alloc_filter *f = &op->f;
    memset(f, 0, sizeof *f);
    if (!(in->has_meeting || in->has_participant || in->has_user || in->has_client || in->has_id) &&
        op->close) {
        http_reply_err(&r->http, HTTP_E_MISSING_FIELD,
                       "say which allocations: meeting, participant, user, client or id");
        return false;
    }
    if (in->has_user && (in->has_meeting || in->has_participant)) {
        http_reply_err(&r->http, HTTP_E_INVALID_FIELD,
                       "user: not together with meeting or participant");
        return false;
    }
    if (in->has_id)
        f->id = (uint64_t)in->id;
    if (in->has_user)
        ml_strlcpy(f->cred_id, in->user, sizeof f->cred_id);
    if (in->has_client) {
        socklen_t len;
        if (ml_addr_parse(in->client, 0, &f->client, &len) < 0) {
            http_reply_err(&r->http, HTTP_E_INVALID_FIELD, "client: an IP address, or IP:port");
            return false;
        }
        f->has_client = true;
    }
    if (in->has_participant) {
        for (const char *p = in->participant; *p; p++)
            if (!isalnum((unsigned char)*p) && *p != '-') {
                http_reply_err(&r->http, HTTP_E_INVALID_FIELD, "participant: a participant id");
                return false;
            }
    }
    if (in->has_meeting) {
        if (is_tag(in->meeting)) {
            ml_strlcpy(op->tag, in->meeting, sizeof op->tag);
        } else if (ml_uuid_valid(in->meeting)) {
            ml_strlcpy(op->ref_id, in->meeting, sizeof op->ref_id);
        } else if (!cp_meeting_code_norm(in->meeting, op->ref_code)) {
            http_reply_err(&r->http, HTTP_E_INVALID_FIELD,
                           "meeting: a meeting id, a join code or a 16-hex-digit TURN tag");
            return false;
        }
    }
    return true;
}

/* The meeting's credential tag (sql/003_turn.sql) from its id or join code. */
static enum db_status w_meeting_tag(struct db_conn *c, struct db_job *job)
{
    static const struct db_stmt st = {
        "adm_meeting_tag", "SELECT turn_tag FROM meetings WHERE id = $1::uuid OR code = $2 LIMIT 1",
        2};
    struct adm_req *r = (struct adm_req *)job;
    struct alloc_op *op = r->op;
    const char *p[] = {op->ref_id[0] ? op->ref_id : NULL, op->ref_code[0] ? op->ref_code : NULL};
    PGresult *res = db_exec(c, &st, p);
    if (!tuples(res))
        return sql_failed(r, c, res, "finding a meeting's TURN tag");
    op->found = PQntuples(res) > 0;
    if (op->found)
        ml_strlcpy(op->tag, PQgetvalue(res, 0, 0), sizeof op->tag);
    PQclear(res);
    return DB_OK;
}

static void meeting_tag_done(struct adm *a, struct adm_req *r)
{
    struct alloc_op *op = r->op;
    if (r->http.job.status == DB_UNAVAILABLE) {
        http_reply_err(&r->http, HTTP_E_UNAVAILABLE, "the database is needed to find the meeting");
        return;
    }
    if (r->http.err != HTTP_OK) {
        http_reply_err(&r->http, r->http.err, r->http.errmsg);
        return;
    }
    if (!op->found) {
        http_reply_err(&r->http, HTTP_E_NO_MEETING, NULL);
        return;
    }
    alloc_go(a, r);
}

static json_t *addr_json(const struct sockaddr_storage *ss)
{
    char buf[ML_ADDR_STRLEN];
    return json_string(ml_addr_str((const struct sockaddr *)ss, buf, sizeof buf));
}

/* An allocation as JSON; the credential id is split into meeting tag and participant when it
 * has that form. */
static json_t *view_json(const struct turn_alloc_view *v)
{
    json_t *o = json_object();
    char idbuf[24];
    ml_snprintf(idbuf, sizeof idbuf, "%" PRIu64, v->id);
    json_object_set_new(o, "id", json_string(idbuf));
    json_object_set_new(o, "credential_id", json_string(v->cred_id));
    const char *dot = strchr(v->cred_id, '.');
    char tag[TURN_ID_MAX] = "";
    if (dot && (size_t)(dot - v->cred_id) < sizeof tag) {
        memcpy(tag, v->cred_id, (size_t)(dot - v->cred_id));
        tag[dot - v->cred_id] = 0;
    }
    bool meeting = dot && is_tag(tag);
    json_object_set_new(o, "meeting_tag", meeting ? json_string(tag) : json_null());
    json_object_set_new(o, "participant", meeting ? json_string(dot + 1) : json_null());
    json_object_set_new(o, "transport", json_string(net_transport_name(v->transport)));
    json_object_set_new(o, "client", addr_json(&v->client));
    json_t *relays = json_array();
    for (int i = 0; i < 2; i++)
        if (v->has_relay[i])
            json_array_append_new(relays, addr_json(&v->relay[i]));
    json_object_set_new(o, "relayed", relays);
    json_object_set_new(o, "created_at", json_integer(v->created_s));
    json_object_set_new(o, "expires_at", json_integer(v->expires_s));
    json_object_set_new(o, "permissions", json_integer(v->permissions));
    json_object_set_new(o, "channels", json_integer(v->channels));
    json_object_set_new(o, "worker", json_integer(v->worker));
    json_object_set_new(o, "usage",
                        json_pack("{s:o,s:o,s:o,s:o}", "packets_to_peers", ju(v->usage.rx_packets),
                                  "bytes_to_peers", ju(v->usage.rx_bytes), "packets_to_client",
                                  ju(v->usage.tx_packets), "bytes_to_client",
                                  ju(v->usage.tx_bytes)));
    return o;
}

/* The participant filter the relay cannot apply: "<participant>" or "<anything>.<participant>". */
static bool suffix_ok(const struct alloc_op *op, const char *cred_id)
{
    if (!op->suffix[0])
        return true;
    size_t n = strlen(cred_id), s = strlen(op->suffix);
    if (!strcmp(cred_id, op->suffix + 1))
        return true;
    return n > s && !strcmp(cred_id + n - s, op->suffix);
}

static void alloc_closed(struct adm *a, struct adm_req *r, struct adm_done *d)
{
    struct alloc_op *op = r->op;
    ML_UNUSED(a);
    op->closed += d->closed;
    if (--op->closes > 0)
        return;
    ML_NOTICE(SUBSYS, "closed %zu allocation%s", op->closed, op->closed == 1 ? "" : "s");
    if (op->in.has_id && !op->in.has_meeting && !op->in.has_participant && !op->in.has_user &&
        !op->in.has_client && op->closed == 0) {
        http_reply_err(&r->http, HTTP_E_NOT_FOUND, "no live allocation with this id");
        return;
    }
    http_reply_json(&r->http, 200, json_pack("{s:I}", "closed", (json_int_t)op->closed));
}

/* turn_closed_cb of the allocation routes (a worker thread): to the admin thread. */
static void on_closed(void *arg, size_t closed)
{
    struct adm_req *r = arg;
    struct adm_done *d = ml_xcalloc(1, sizeof *d);
    d->fn = alloc_closed;
    d->closed = closed;
    adm_post(r, d);
}

/* Closes each distinct credential id that the participant filter matched. */
static void close_listed(struct adm *a, struct adm_req *r, struct adm_done *d)
{
    struct alloc_op *op = r->op;
    char(*ids)[TURN_ID_MAX] = ml_xcalloc(ADM_CLOSE_MAX, sizeof *ids);
    size_t nids = 0;
    for (size_t i = 0; i < d->n && nids < ADM_CLOSE_MAX; i++) {
        if (!suffix_ok(op, d->views[i].cred_id))
            continue;
        bool seen = false;
        for (size_t k = 0; k < nids && !seen; k++)
            seen = !strcmp(ids[k], d->views[i].cred_id);
        if (!seen)
            ml_strlcpy(ids[nids++], d->views[i].cred_id, TURN_ID_MAX);
    }
    op->closes = 1; /* this function's own share, dropped at the end */
    for (size_t k = 0; k < nids; k++) {
        struct turn_alloc_filter f = op->f;
        ml_strlcpy(f.cred_id, ids[k], sizeof f.cred_id);
        f.cred_prefix[0] = 0;
        http_hold(&r->http);
        op->closes++;
        if (turn_server_close(a->deps.turn, &f, "closed by the admin API", on_closed, r) < 0) {
            http_unhold(&r->http);
            op->closes--;
        }
    }
    free(ids);
    struct adm_done self = {0};
    alloc_closed(a, r, &self);
}

static void alloc_listed(struct adm *a, struct adm_req *r, struct adm_done *d)
{
    struct alloc_op *op = r->op;
    if (op->close) {
        close_listed(a, r, d);
        return;
    }
    json_t *arr = json_array();
    size_t shown = 0, matched = op->suffix[0] ? 0 : d->total;
    for (size_t i = 0; i < d->n; i++) {
        if (!suffix_ok(op, d->views[i].cred_id))
            continue;
        if (op->suffix[0])
            matched++;
        if (shown < op->limit) {
            json_array_append_new(arr, view_json(&d->views[i]));
            shown++;
        }
    }
    /* With the participant filter only the first ADM_SCAN_MAX allocations were looked at. */
    bool partial = op->suffix[0] && d->total > d->n;
    http_reply_json(&r->http, 200,
                    json_pack("{s:I,s:I,s:b,s:o}", "total", (json_int_t)matched, "returned",
                              (json_int_t)shown, "truncated", shown < matched || partial,
                              "allocations", arr));
}

static void on_list(void *arg, struct turn_alloc_view *v, size_t n, size_t total)
{
    struct adm_req *r = arg;
    struct adm_done *d = ml_xcalloc(1, sizeof *d);
    d->fn = alloc_listed;
    d->views = v;
    d->n = n;
    d->total = total;
    adm_post(r, d);
}

/* The filter is complete (the meeting's tag known): list, or close. */
static void alloc_go(struct adm *a, struct adm_req *r)
{
    struct alloc_op *op = r->op;
    struct filter_in *in = &op->in;
    if (in->has_participant && op->tag[0]) {
        ml_snprintf(op->f.cred_id, sizeof op->f.cred_id, "%s.%s", op->tag, in->participant);
    } else if (op->tag[0]) {
        ml_snprintf(op->f.cred_prefix, sizeof op->f.cred_prefix, "%s.", op->tag);
    } else if (in->has_participant) {
        ml_snprintf(op->suffix, sizeof op->suffix, ".%s", in->participant);
    }
    if (op->close && !op->suffix[0]) {
        op->closes = 1;
        http_hold(&r->http);
        if (turn_server_close(a->deps.turn, &op->f, "closed by the admin API", on_closed, r) < 0) {
            http_unhold(&r->http);
            http_reply_err(&r->http, HTTP_E_INTERNAL, "the relay could not be asked");
        }
        return;
    }
    size_t limit = op->suffix[0] ? ADM_SCAN_MAX : op->limit;
    http_hold(&r->http);
    if (turn_server_list(a->deps.turn, &op->f, limit, on_list, r) < 0) {
        http_unhold(&r->http);
        http_reply_err(&r->http, HTTP_E_INTERNAL, "the relay could not be asked");
    }
}

static void alloc_start(struct adm *a, struct adm_req *r, struct alloc_op *op)
{
    if (!filter_build(r, op))
        return;
    if (op->ref_id[0] || op->ref_code[0]) {
        adm_submit(r, w_meeting_tag, meeting_tag_done);
        return;
    }
    alloc_go(a, r);
}

static void h_alloc_list(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    struct adm *a = adm_of(r);
    struct alloc_op *op = op_new(r, sizeof *op);
    struct filter_in *in = &op->in;
    static const struct {
        const char *name;
        size_t off, has, size;
    } args[] = {
        {"meeting", offsetof(struct filter_in, meeting), offsetof(struct filter_in, has_meeting),
         64},
        {"participant", offsetof(struct filter_in, participant),
         offsetof(struct filter_in, has_participant), 64},
        {"user", offsetof(struct filter_in, user), offsetof(struct filter_in, has_user),
         TURN_ID_MAX},
        {"client", offsetof(struct filter_in, client), offsetof(struct filter_in, has_client), 64},
    };
    for (size_t i = 0; i < ML_ARRAY_LEN(args); i++) {
        const char *v = http_req_arg(&r->http, args[i].name);
        if (!v || !*v)
            continue;
        if (strlen(v) >= args[i].size) {
            char msg[64];
            ml_snprintf(msg, sizeof msg, "%s: too long", args[i].name);
            http_reply_err(&r->http, HTTP_E_INVALID_FIELD, msg);
            return;
        }
        ml_strlcpy((char *)in + args[i].off, v, args[i].size);
        *(bool *)((char *)in + args[i].has) = true;
    }
    long long v;
    const char *id = http_req_arg(&r->http, "id"), *limit = http_req_arg(&r->http, "limit");
    if (id && *id) {
        if (ml_parse_ll(id, 1, INT64_MAX, &v) < 0) {
            http_reply_err(&r->http, HTTP_E_INVALID_FIELD, "id: an allocation id");
            return;
        }
        in->id = v;
        in->has_id = true;
    }
    op->limit = LIST_DEFAULT;
    if (limit && *limit) {
        if (ml_parse_ll(limit, 1, ADM_LIST_MAX, &v) < 0) {
            http_reply_err(&r->http, HTTP_E_INVALID_FIELD, "limit: an integer from 1 to 10000");
            return;
        }
        op->limit = (size_t)v;
    }
    alloc_start(a, r, op);
}

static void h_alloc_close(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    struct adm *a = adm_of(r);
    struct alloc_op *op = op_new(r, sizeof *op);
    op->in = *(struct filter_in *)r->http.params;
    op->close = true;
    alloc_start(a, r, op);
}

static void h_alloc_close_one(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    struct adm *a = adm_of(r);
    struct alloc_op *op = op_new(r, sizeof *op);
    long long v;
    if (ml_parse_ll(r->http.caps[0], 1, INT64_MAX, &v) < 0) {
        http_reply_err(&r->http, HTTP_E_NOT_FOUND, "no live allocation with this id");
        return;
    }
    op->in.id = v;
    op->in.has_id = true;
    op->close = true;
    alloc_start(a, r, op);
}

/* ------------------------------------------------------------------ shared secrets */

struct secret_in {
    char secret[260];
    bool has_secret;
};
static const struct http_param secret_params[] = {
    {"secret", HTTP_P_STRING, 0, 16, 255, offsetof(struct secret_in, secret), 260,
     offsetof(struct secret_in, has_secret), NULL},
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

struct secret_op {
    char secret[260];
    bool generated;
    long long id;
    char sign_fp[17];
};

static enum db_status w_secrets_list(struct db_conn *c, struct db_job *job)
{
    enum { SECRET_ID, SECRET_CREATED, SECRET_SECRET, SECRET__COLS };
    static const struct db_stmt st = {
        "adm_secrets_list",
        "SELECT id, floor(extract(epoch FROM created_at))::bigint, secret FROM turn_secrets "
        "ORDER BY created_at, id",
        0, SECRET__COLS};
    struct adm_req *r = (struct adm_req *)job;
    struct secret_op *op = r->op;
    PGresult *res = db_exec(c, &st, NULL);
    if (!tuples(res))
        return sql_failed(r, c, res, "listing shared secrets");
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        char fp[17];
        fingerprint(PQgetvalue(res, i, SECRET_SECRET), fp);
        json_array_append_new(
            arr,
            json_pack("{s:I,s:I,s:s,s:b}", "id",
                      (json_int_t)strtoll(PQgetvalue(res, i, SECRET_ID), NULL, 10), "created_at",
                      (json_int_t)strtoll(PQgetvalue(res, i, SECRET_CREATED), NULL, 10),
                      "fingerprint", fp, "signing", !strcmp(fp, op->sign_fp)));
    }
    PQclear(res);
    r->out = json_pack("{s:o}", "secrets", arr);
    return DB_OK;
}

/* Which secret signs new credentials: "database" (the newest runtime one), "configuration"
 * (turn.auth-secret's first) or "none". */
static void signing_json(struct adm *a, json_t *o, char fp[17])
{
    char secret[260];
    size_t rs, ru;
    turn_server_runtime_counts(a->deps.turn, &rs, &ru);
    size_t n = turn_server_signing_secret(a->deps.turn, secret, sizeof secret);
    fp[0] = 0;
    if (n)
        fingerprint(secret, fp);
    ml_wipe(secret, sizeof secret);
    json_object_set_new(o, "signing",
                        json_pack("{s:s,s:o}", "source",
                                  !n   ? "none"
                                  : rs ? "database"
                                       : "configuration",
                                  "fingerprint", n ? json_string(fp) : json_null()));
}

static void secrets_listed(struct adm *a, struct adm_req *r)
{
    struct secret_op *op = r->op;
    if (r->http.job.status != DB_OK || r->http.err != HTTP_OK) {
        http_reply_err(&r->http, r->http.err != HTTP_OK ? r->http.err : HTTP_E_UNAVAILABLE,
                       r->http.errmsg);
        return;
    }
    json_t *o = json_incref(r->out);
    signing_json(a, o, op->sign_fp);
    http_reply_json(&r->http, 200, o);
}

static void h_secrets_list(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    struct adm *a = adm_of(r);
    struct secret_op *op = op_new(r, sizeof *op);
    json_t *tmp = json_object();
    signing_json(a, tmp, op->sign_fp); /* for the "signing" mark of each row */
    json_decref(tmp);
    adm_submit(r, w_secrets_list, secrets_listed);
}

static enum db_status w_secret_add(struct db_conn *c, struct db_job *job)
{
    static const struct db_stmt st = {
        "adm_secret_add",
        "INSERT INTO turn_secrets (secret) SELECT $1 "
        "WHERE (SELECT count(*) FROM turn_secrets) < $2::int "
        "ON CONFLICT DO NOTHING RETURNING id, floor(extract(epoch FROM created_at))::bigint",
        2, 2};
    enum { ADDED_ID, ADDED_CREATED };
    struct adm_req *r = (struct adm_req *)job;
    struct secret_op *op = r->op;
    char max[16], err[256], fp[17];
    ml_snprintf(max, sizeof max, "%d", ADM_MAX_SECRETS);
    const char *p[] = {op->secret, max};
    PGresult *res = db_exec(c, &st, p);
    if (!tuples(res))
        return sql_failed(r, c, res, "adding a shared secret");
    if (PQntuples(res) == 0) {
        PQclear(res);
        r->http.err = HTTP_E_CONFLICT;
        ml_snprintf(r->http.errmsg, sizeof r->http.errmsg,
                    "the secret exists already, or %d secrets do: retire one first",
                    ADM_MAX_SECRETS);
        return DB_FAILED;
    }
    long long id = strtoll(PQgetvalue(res, 0, ADDED_ID), NULL, 10);
    long long created = strtoll(PQgetvalue(res, 0, ADDED_CREATED), NULL, 10);
    PQclear(res);
    if (adm_sync_load_pool(adm_of(r)->deps.sync, c, err, sizeof err) < 0)
        ML_WARN(SUBSYS, "shared secret %lld stored; the relay takes it at the next sync: %s", id,
                err);
    fingerprint(op->secret, fp);
    json_t *o = json_pack("{s:I,s:I,s:s,s:b}", "id", (json_int_t)id, "created_at",
                          (json_int_t)created, "fingerprint", fp, "signing", true);
    if (o && op->generated)
        json_object_set_new(o, "secret", json_string(op->secret));
    http_job_json(&r->http, 201, o);
    ml_wipe(op->secret, sizeof op->secret);
    ML_NOTICE(SUBSYS, "shared secret %lld (%s) added; it signs new TURN credentials", id, fp);
    return DB_OK;
}

static void h_secret_add(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    struct adm *a = adm_of(r);
    struct secret_in *in = r->http.params;
    if (!need_sync(a, r))
        return;
    struct secret_op *op = op_new(r, sizeof *op);
    if (in->has_secret) {
        for (const char *p = in->secret; *p; p++)
            if (!isgraph((unsigned char)*p) || *p == ',') {
                ml_wipe(in->secret, sizeof in->secret);
                http_reply_err(&r->http, HTTP_E_INVALID_FIELD,
                               "secret: printable characters, no comma or white space");
                return;
            }
        ml_strlcpy(op->secret, in->secret, sizeof op->secret);
        ml_wipe(in->secret, sizeof in->secret);
    } else {
        uint8_t raw[32];
        ml_random(raw, sizeof raw);
        /* base64url without padding: no '+', '/' or '=' to quote in a shell or a URL */
        ml_base64url_encode(raw, sizeof raw, op->secret, sizeof op->secret);
        ml_wipe(raw, sizeof raw);
        op->generated = true;
    }
    adm_submit(r, w_secret_add, NULL);
}

static enum db_status w_secret_del(struct db_conn *c, struct db_job *job)
{
    static const struct db_stmt st = {"adm_secret_del",
                                      "DELETE FROM turn_secrets WHERE id = $1 RETURNING 1", 1};
    struct adm_req *r = (struct adm_req *)job;
    struct secret_op *op = r->op;
    char id[24], err[256];
    ml_snprintf(id, sizeof id, "%lld", op->id);
    const char *p[] = {id};
    PGresult *res = db_exec(c, &st, p);
    if (!tuples(res))
        return sql_failed(r, c, res, "retiring a shared secret");
    bool found = PQntuples(res) > 0;
    PQclear(res);
    if (!found) {
        r->http.err = HTTP_E_NOT_FOUND;
        ml_strlcpy(r->http.errmsg, "no shared secret with this id", sizeof r->http.errmsg);
        return DB_FAILED;
    }
    if (adm_sync_load_pool(adm_of(r)->deps.sync, c, err, sizeof err) < 0)
        ML_WARN(SUBSYS, "shared secret %lld deleted; the relay drops it at the next sync: %s",
                op->id, err);
    ML_NOTICE(SUBSYS, "shared secret %lld retired", op->id);
    http_job_json(&r->http, 200, json_pack("{s:I}", "retired", (json_int_t)op->id));
    return DB_OK;
}

static void h_secret_del(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    struct adm *a = adm_of(r);
    if (!need_sync(a, r))
        return;
    struct secret_op *op = op_new(r, sizeof *op);
    if (ml_parse_ll(r->http.caps[0], 1, INT64_MAX, &op->id) < 0) {
        http_reply_err(&r->http, HTTP_E_NOT_FOUND, "no shared secret with this id");
        return;
    }
    adm_submit(r, w_secret_del, NULL);
}

/* ------------------------------------------------------------------ drain, log level, TLS */

struct drain_in {
    bool draining;
};
static const struct http_param drain_params[] = {
    {"draining", HTTP_P_BOOL, HTTP_P_REQUIRED, 0, 0, offsetof(struct drain_in, draining), 0,
     HTTP_P_NOHAS, NULL},
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

static void h_drain_get(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    struct adm *a = adm_of(r);
    http_reply_json(&r->http, 200,
                    json_pack("{s:b}", "draining", turn_server_draining(a->deps.turn)));
}

static void h_drain_set(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    struct adm *a = adm_of(r);
    struct drain_in *in = r->http.params;
    if (a->deps.set_drain)
        a->deps.set_drain(a->deps.arg, in->draining);
    else
        turn_server_set_drain(a->deps.turn, in->draining);
    ML_NOTICE(SUBSYS, "drain mode %s by the admin API",
              in->draining ? "on: new allocations get 508 and joins 503"
                           : "off: new allocations and joins are taken again");
    http_reply_json(&r->http, 200,
                    json_pack("{s:b}", "draining", turn_server_draining(a->deps.turn)));
}

static const char *const levels[] = {"error", "warn", "notice", "info", "debug", NULL};

struct level_in {
    int level;
};
static const struct http_param level_params[] = {
    {"level", HTTP_P_ENUM, HTTP_P_REQUIRED, 0, 0, offsetof(struct level_in, level), 0, HTTP_P_NOHAS,
     levels},
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

static void h_level_get(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    struct adm *a = adm_of(r);
    ML_UNUSED(a);
    http_reply_json(&r->http, 200,
                    json_pack("{s:s}", "level", ml_log_level_name(ml_log_get_level())));
}

static void h_level_set(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    struct level_in *in = r->http.params;
    ml_log_set_level((enum ml_log_level)in->level);
    ML_NOTICE(SUBSYS, "log level set to %s by the admin API (a SIGHUP restores log.level)",
              levels[in->level]);
    http_reply_json(&r->http, 200, json_pack("{s:s}", "level", levels[in->level]));
}

static void h_tls_reload(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    struct adm *a = adm_of(r);
    char err[512] = "";
    if (!a->deps.reload_tls || a->deps.reload_tls(a->deps.arg, err, sizeof err) < 0) {
        http_reply_err(&r->http, HTTP_E_CONFLICT, err[0] ? err : "no TLS certificate to reload");
        return;
    }
    http_reply_json(&r->http, 200, json_pack("{s:b}", "reloaded", true));
}

/* ------------------------------------------------------------------ meeting usage */

static enum db_status w_usage(struct db_conn *c, struct db_job *job)
{
    static const struct db_stmt st = {
        "adm_usage",
        "SELECT ml_meeting_usage_json(id)::text FROM meetings WHERE id = $1::uuid OR code = $2 "
        "LIMIT 1",
        2};
    struct adm_req *r = (struct adm_req *)job;
    struct alloc_op *op = r->op;
    const char *p[] = {op->ref_id[0] ? op->ref_id : NULL, op->ref_code[0] ? op->ref_code : NULL};
    PGresult *res = db_exec(c, &st, p);
    if (!tuples(res))
        return sql_failed(r, c, res, "reading a meeting's relay usage");
    if (PQntuples(res) == 0) {
        PQclear(res);
        r->http.err = HTTP_E_NO_MEETING;
        return DB_FAILED;
    }
    json_t *usage = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    if (!usage) {
        r->http.err = HTTP_E_INTERNAL;
        return DB_FAILED;
    }
    http_job_json(&r->http, 200, usage);
    return DB_OK;
}

static void h_usage(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    struct alloc_op *op = op_new(r, sizeof *op);
    if (ml_uuid_valid(r->http.caps[0]))
        ml_strlcpy(op->ref_id, r->http.caps[0], sizeof op->ref_id);
    else if (!cp_meeting_code_norm(r->http.caps[0], op->ref_code)) {
        http_reply_err(&r->http, HTTP_E_NO_MEETING, NULL);
        return;
    }
    adm_submit(r, w_usage, NULL);
}

/* ------------------------------------------------------------------ the table */

#define NOAUTH HTTP_ROUTE_PUBLIC
#define BODY HTTP_ROUTE_BODY
#define QUERY HTTP_ROUTE_QUERY
#define SCRAPE ADM_ROUTE_SCRAPE
#define P(t, s) t, sizeof(struct s)

const struct http_route adm_routes[] = {
    {LWSHUMETH_GET, "/healthz", h_healthz, NOAUTH, NULL, 0},
    {LWSHUMETH_GET, "/readyz", h_readyz, NOAUTH, NULL, 0},
    {LWSHUMETH_GET, "/stats", h_stats, QUERY, NULL, 0},
    {LWSHUMETH_GET, "/metrics", h_metrics, SCRAPE, NULL, 0},
    {LWSHUMETH_GET, "/v1/turn/users", h_users_list, 0, NULL, 0},
    {LWSHUMETH_POST, "/v1/turn/users", h_user_add, BODY, P(user_params, user_in)},
    {LWSHUMETH_DELETE, "/v1/turn/users/*", h_user_del, 0, NULL, 0},
    {LWSHUMETH_POST, "/v1/turn/credentials", h_credential, BODY, P(cred_params, cred_in)},
    {LWSHUMETH_GET, "/v1/turn/allocations", h_alloc_list, QUERY, NULL, 0},
    {LWSHUMETH_POST, "/v1/turn/allocations/close", h_alloc_close, BODY,
     P(filter_params, filter_in)},
    {LWSHUMETH_DELETE, "/v1/turn/allocations/*", h_alloc_close_one, 0, NULL, 0},
    {LWSHUMETH_GET, "/v1/turn/secrets", h_secrets_list, 0, NULL, 0},
    {LWSHUMETH_POST, "/v1/turn/secrets", h_secret_add, 0, P(secret_params, secret_in)},
    {LWSHUMETH_DELETE, "/v1/turn/secrets/*", h_secret_del, 0, NULL, 0},
    {LWSHUMETH_GET, "/v1/drain", h_drain_get, 0, NULL, 0},
    {LWSHUMETH_PUT, "/v1/drain", h_drain_set, BODY, P(drain_params, drain_in)},
    {LWSHUMETH_GET, "/v1/log-level", h_level_get, 0, NULL, 0},
    {LWSHUMETH_PUT, "/v1/log-level", h_level_set, BODY, P(level_params, level_in)},
    {LWSHUMETH_POST, "/v1/tls/reload", h_tls_reload, 0, NULL, 0},
    {LWSHUMETH_GET, "/v1/meetings/*/usage", h_usage, 0, NULL, 0},
    {LWSHUMETH_GET, "/v1/webhooks/events", adm_h_webhooks_list, QUERY, NULL, 0},
    {LWSHUMETH_GET, "/v1/webhooks/events/*", adm_h_webhooks_event, 0, NULL, 0},
    {LWSHUMETH_POST, "/v1/webhooks/events/*/replay", adm_h_webhooks_event, 0, NULL, 0},
    {LWSHUMETH_POST, "/v1/webhooks/replay-failed", adm_h_webhooks_replay_failed, 0,
     P(adm_wh_replay_params, adm_wh_replay_in)},
    {0, NULL, NULL, 0, NULL, 0},
};
