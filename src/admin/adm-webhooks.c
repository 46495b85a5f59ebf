/* The admin API's webhook routes (issue #17): the queued events (sql/008_webhooks.sql) listed
 * by status, type and time, newest first and paginated by sequence; one event; and replays (one
 * event, or every failed one since a time), which the delivery workers pick up at once. */
#include "config.h"

#include "admin/adm-int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define SUBSYS "admin"
#define WH_LIST_DEFAULT 100
#define WH_LIST_MAX 1000

static const char *const wh_statuses[] = {"pending", "delivered", "failed", "skipped", NULL};
static const char *const wh_types[] = {"meeting.started", "participant.joined", "participant.left",
                                       "meeting.ended",   "usage.recorded",     NULL};

struct wh_op {
    char id[40];
    char status[16], type[32], since[40], before[24], limit[24];
    long long limit_n;
};

/* The columns every event query returns, in this order. */
#define WH_COLS                                                                                    \
    "seq, id, type, ml_wh_time(created_at), status, attempts, ml_wh_time(next_attempt_at), "       \
    "ml_wh_time(delivered_at), last_status, last_error, claimed_by, payload::text"
enum {
    EV_SEQ,
    EV_ID,
    EV_TYPE,
    EV_CREATED,
    EV_STATUS,
    EV_ATTEMPTS,
    EV_NEXT,
    EV_DELIVERED,
    EV_LAST_STATUS,
    EV_LAST_ERROR,
    EV_NODE,
    EV_PAYLOAD,
    EV__COLS
};

static json_t *str_or_null(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null() : json_string(PQgetvalue(res, row, col));
}

static json_t *event_json(PGresult *res, int i)
{
    json_t *payload = json_loads(PQgetvalue(res, i, EV_PAYLOAD), 0, NULL);
    bool pending = !strcmp(PQgetvalue(res, i, EV_STATUS), "pending");
    return json_pack("{s:o,s:I,s:o,s:o,s:o,s:i,s:o,s:o,s:o,s:o,s:o,s:o}", "id",
                     str_or_null(res, i, EV_ID), "sequence",
                     (json_int_t)strtoll(PQgetvalue(res, i, EV_SEQ), NULL, 10), "type",
                     str_or_null(res, i, EV_TYPE), "created_at", str_or_null(res, i, EV_CREATED),
                     "status", str_or_null(res, i, EV_STATUS), "attempts",
                     (int)strtol(PQgetvalue(res, i, EV_ATTEMPTS), NULL, 10), "next_attempt_at",
                     pending ? str_or_null(res, i, EV_NEXT) : json_null(), "delivered_at",
                     str_or_null(res, i, EV_DELIVERED), "last_status",
                     PQgetisnull(res, i, EV_LAST_STATUS)
                         ? json_null()
                         : json_integer(strtol(PQgetvalue(res, i, EV_LAST_STATUS), NULL, 10)),
                     "last_error", str_or_null(res, i, EV_LAST_ERROR), "node",
                     str_or_null(res, i, EV_NODE), "payload", payload ? payload : json_null());
}

/* A statement's failure: the connection (503), a bad time in the request (422), else 500. */
static enum db_status failed(struct adm_req *r, PGresult *res, const char *what)
{
    if (!res)
        return DB_UNAVAILABLE;
    const char *state = db_sqlstate(res);
    if (db_lost(res)) {
        PQclear(res);
        return DB_UNAVAILABLE;
    }
    if (!strncmp(state, "22", 2)) { /* data exception: the time did not convert */
        PQclear(res);
        http_job_err(&r->http, HTTP_E_INVALID_FIELD, "since: a time (RFC 3339) or Unix seconds");
        return DB_FAILED;
    }
    char msg[256];
    ml_strlcpy(msg, PQresultErrorMessage(res), sizeof msg);
    ML_ERROR(SUBSYS, "%s failed (%s): %s", what, state, ml_trim(msg));
    PQclear(res);
    http_job_err(&r->http, HTTP_E_INTERNAL, what);
    return DB_FAILED;
}

/* since: Unix seconds, or an RFC 3339 time (the database converts it; a bad one is a 422). */
static bool since_ok(const char *v)
{
    size_t n = strlen(v), digits = 0;
    if (!n || n > 35)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (isdigit(c))
            digits++;
        else if (!strchr("-:.+TtZz ", c))
            return false;
    }
    return digits > 0;
}

/* since as SQL can take it: Unix seconds become an ISO time. */
static void since_sql(const char *v, char *out, size_t len)
{
    long long s;
    if (ml_parse_ll(v, 0, 253402300799LL, &s) == 0)
        ml_snprintf(out, len, "epoch %lld", s); /* handled by the query below */
    else
        ml_strlcpy(out, v, len);
}

static enum db_status w_list(struct db_conn *c, struct db_job *job)
{
    static const struct db_stmt st = {
        "adm_wh_list",
        "SELECT " WH_COLS " FROM webhook_events WHERE ($1::text IS NULL OR status = $1) "
        "AND ($2::text IS NULL OR type = $2) "
        "AND ($3::text IS NULL OR created_at >= CASE WHEN $3 LIKE 'epoch %' "
        "THEN to_timestamp(substr($3, 7)::bigint) ELSE $3::timestamptz END) "
        "AND ($4::bigint IS NULL OR seq < $4::bigint) ORDER BY seq DESC LIMIT $5::integer",
        5, EV__COLS};
    struct adm_req *r = (struct adm_req *)job;
    struct wh_op *op = r->op;
    const char *p[] = {op->status[0] ? op->status : NULL, op->type[0] ? op->type : NULL,
                       op->since[0] ? op->since : NULL, op->before[0] ? op->before : NULL,
                       op->limit};
    PGresult *res = db_exec(c, &st, p);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        return failed(r, res, "listing webhook events");
    int n = PQntuples(res);
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, event_json(res, i));
    json_t *next = n == op->limit_n && n > 0
                       ? json_integer(strtoll(PQgetvalue(res, n - 1, EV_SEQ), NULL, 10))
                       : json_null();
    PQclear(res);
    http_job_json(&r->http, 200,
                  json_pack("{s:i,s:o,s:o}", "count", n, "events", arr, "next_before", next));
    return DB_OK;
}

static bool arg_enum(struct adm_req *r, const char *name, const char *const *vals, char *out,
                     size_t len)
{
    const char *v = http_req_arg(&r->http, name);
    if (!v || !*v)
        return true;
    for (size_t i = 0; vals[i]; i++)
        if (!strcmp(v, vals[i])) {
            ml_strlcpy(out, v, len);
            return true;
        }
    char msg[160];
    ml_snprintf(msg, sizeof msg, "%s: one of %s", name,
                vals == wh_statuses ? "pending, delivered, failed, skipped"
                                    : "meeting.started, participant.joined, participant.left, "
                                      "meeting.ended, usage.recorded");
    http_reply_err(&r->http, HTTP_E_INVALID_FIELD, msg);
    return false;
}

void adm_h_webhooks_list(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    struct wh_op *op = r->op = ml_xcalloc(1, sizeof *op);
    if (!arg_enum(r, "status", wh_statuses, op->status, sizeof op->status) ||
        !arg_enum(r, "type", wh_types, op->type, sizeof op->type))
        return;
    const char *since = http_req_arg(&r->http, "since");
    if (since && *since) {
        if (!since_ok(since)) {
            http_reply_err(&r->http, HTTP_E_INVALID_FIELD,
                           "since: a time (RFC 3339) or Unix seconds");
            return;
        }
        since_sql(since, op->since, sizeof op->since);
    }
    long long v;
    const char *before = http_req_arg(&r->http, "before");
    if (before && *before) {
        if (ml_parse_ll(before, 1, INT64_MAX, &v) < 0) {
            http_reply_err(&r->http, HTTP_E_INVALID_FIELD,
                           "before: a sequence number (next_before of the previous page)");
            return;
        }
        ml_snprintf(op->before, sizeof op->before, "%lld", v);
    }
    op->limit_n = WH_LIST_DEFAULT;
    const char *limit = http_req_arg(&r->http, "limit");
    if (limit && *limit && ml_parse_ll(limit, 1, WH_LIST_MAX, &op->limit_n) < 0) {
        http_reply_err(&r->http, HTTP_E_INVALID_FIELD, "limit: an integer from 1 to 1000");
        return;
    }
    ml_snprintf(op->limit, sizeof op->limit, "%lld", op->limit_n);
    adm_submit(r, w_list, NULL);
}

/* ------------------------------------------------------------------ one event, replays */

static enum db_status w_get(struct db_conn *c, struct db_job *job)
{
    static const struct db_stmt st_get = {
        "adm_wh_get", "SELECT " WH_COLS " FROM webhook_events WHERE id = $1::uuid", 1, EV__COLS};
    static const struct db_stmt st_replay = {
        "adm_wh_replay", "SELECT " WH_COLS " FROM ml_wh_replay($1::uuid)", 1, EV__COLS};
    struct adm_req *r = (struct adm_req *)job;
    struct wh_op *op = r->op;
    const char *p[] = {op->id};
    bool replay = r->http.method == LWSHUMETH_POST;
    PGresult *res = db_exec(c, replay ? &st_replay : &st_get, p);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        return failed(r, res, replay ? "replaying a webhook event" : "reading a webhook event");
    if (PQntuples(res) == 0) {
        PQclear(res);
        http_job_err(&r->http, HTTP_E_NOT_FOUND, "no webhook event with this id");
        return DB_FAILED;
    }
    json_t *o = event_json(res, 0);
    PQclear(res);
    if (replay)
        ML_NOTICE(SUBSYS, "webhook event %s queued again", op->id);
    http_job_json(&r->http, 200, o);
    return DB_OK;
}

void adm_h_webhooks_event(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    struct wh_op *op = r->op = ml_xcalloc(1, sizeof *op);
    if (!ml_uuid_norm(r->http.caps[0], op->id)) {
        http_reply_err(&r->http, HTTP_E_NOT_FOUND, "no webhook event with this id");
        return;
    }
    adm_submit(r, w_get, NULL);
}

const struct http_param adm_wh_replay_params[] = {
    {"since", HTTP_P_STRING, HTTP_P_TRIM, 1, 35, offsetof(struct adm_wh_replay_in, since), 40,
     offsetof(struct adm_wh_replay_in, has_since), NULL},
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

static enum db_status w_replay_failed(struct db_conn *c, struct db_job *job)
{
    static const struct db_stmt st = {
        "adm_wh_replay_failed",
        "SELECT ml_wh_replay_failed(CASE WHEN $1 LIKE 'epoch %' "
        "THEN to_timestamp(substr($1, 7)::bigint) ELSE $1::timestamptz END)",
        1, 1};
    struct adm_req *r = (struct adm_req *)job;
    struct wh_op *op = r->op;
    const char *p[] = {op->since[0] ? op->since : NULL};
    PGresult *res = db_exec(c, &st, p);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        return failed(r, res, "replaying failed webhook events");
    long long n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    ML_NOTICE(SUBSYS, "%lld failed webhook events queued again", n);
    http_job_json(&r->http, 200, json_pack("{s:I}", "replayed", (json_int_t)n));
    return DB_OK;
}

void adm_h_webhooks_replay_failed(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    struct adm_wh_replay_in *in = r->http.params;
    struct wh_op *op = r->op = ml_xcalloc(1, sizeof *op);
    if (in && in->has_since) {
        if (!since_ok(in->since)) {
            http_reply_err(&r->http, HTTP_E_INVALID_FIELD,
                           "since: a time (RFC 3339) or Unix seconds");
            return;
        }
        since_sql(in->since, op->since, sizeof op->since);
    }
    adm_submit(r, w_replay_failed, NULL);
}
