/* The REST API's common ground: the route tables of the resources (cp-account.c, cp-meeting.c,
 * cp-participant.c, cp-assistant.c) gathered for the service, the request's database job and what
 * follows it (the status cache and the relay told, then the answer), and the helpers every handler
 * shares (a meeting named by id or code, failed statements, the rows of the meeting SQL functions).
 * Handlers run on the control-plane thread (checks, then a database job); work functions on a
 * database thread (one prepared statement, most of them one SQL function = one transaction,
 * plus hashing and signing). */
#include "config.h"

#include "control/cp-int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define SUBSYS "api"

/* ------------------------------------------------------------------ requests and their jobs */

void cp_req_free(struct http_req *r)
{
    struct cp_req *req = cp_req_of(r);
    free(req->status_out);
    for (size_t i = 0; i < req->nrevoked; i++)
        free(req->revoked[i]);
    free(req->revoked);
}

/* A request's job is over (control-plane thread), its client there or not: what it changed
 * reaches the status cache and the relay before the answer. */
static void job_then(struct http_req *r)
{
    struct cp_req *req = cp_req_of(r);
    struct cp *cp = cp_of(req);
    if (req->touched[0])
        cp_cache_invalidate(cp, req->touched);
    if (req->on_done && r->job.status != DB_UNAVAILABLE)
        req->on_done(cp, req);
    /* revocations happen whether or not anyone waits for the answer */
    for (size_t i = 0; cp->revoke && i < req->nrevoked; i++)
        cp->revoke(cp->revoke_arg, req->revoked[i]);
    if (http_req_live(r))
        http_answer_job(r);
}

void cp_submit(struct cp_req *req, db_work_fn work)
{
    http_submit(&req->http, work, job_then);
}

/* ------------------------------------------------------------------ a meeting named */

bool cp_parse_ref(struct cp_req *req)
{
    const char *r = req->http.caps[0];
    return ml_uuid_norm(r, req->ref_id) || cp_meeting_code_norm(r, req->ref_code);
}

bool cp_meeting_code_norm(const char *s, char out[CP_CODE_STR])
{
    if (strlen(s) != 12 || s[3] != '-' || s[8] != '-')
        return false;
    for (int i = 0; i < 12; i++)
        if (i != 3 && i != 8 && !isalpha((unsigned char)s[i]))
            return false;
    for (int i = 0; i < 12; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[12] = 0;
    return true;
}

void cp_on_meeting(struct http_req *r, db_work_fn work)
{
    struct cp_req *req = cp_req_of(r);
    if (!cp_parse_ref(req)) {
        http_reply_err(r, HTTP_E_NO_MEETING, NULL);
        return;
    }
    cp_submit(req, work);
}

bool cp_parse_target(struct cp_req *req)
{
    if (!cp_parse_ref(req))
        return false;
    return ml_uuid_norm(req->http.caps[1], req->target);
}

/* ------------------------------------------------------------------ statements */

void cp_take_revoked(struct cp_req *req, const char *arr)
{
    db_words(arr, &req->revoked, &req->nrevoked);
}

bool cp_tuples(const PGresult *r)
{
    return r && PQresultStatus(r) == PGRES_TUPLES_OK;
}

enum db_status cp_sql_error(PGresult *r, const char *action, const char *rid)
{
    if (!r)
        return DB_UNAVAILABLE;
    if (db_lost(r)) {
        PQclear(r);
        return DB_UNAVAILABLE;
    }
    ML_ERROR(SUBSYS, "%s failed (rid=%s): %s %s", action, rid, db_sqlstate(r),
             PQresultErrorMessage(r));
    PQclear(r);
    return DB_FAILED;
}

enum db_status cp_sql_failed(struct cp_req *req, PGresult *r, const char *action)
{
    if (r && !strcmp(db_sqlstate(r), "23503")) {
        http_job_err(&req->http, HTTP_E_INVALID_TOKEN,
                     "the account of this token no longer exists");
        PQclear(r);
        return DB_FAILED;
    }
    enum db_status st = cp_sql_error(r, action, req->http.request_id);
    if (st == DB_FAILED)
        http_job_err(&req->http, HTTP_E_INTERNAL, NULL);
    return st;
}

enum db_status cp_json_row(struct cp_req *req, struct db_conn *c, const struct db_stmt *st,
                           const char *const *p, enum http_err absent, const char *action)
{
    PGresult *r = db_exec(c, st, p);
    if (!cp_tuples(r))
        return cp_sql_failed(req, r, action);
    if (PQntuples(r) == 0 || PQgetisnull(r, 0, 0)) {
        PQclear(r);
        http_job_err(&req->http, absent, NULL);
        return DB_FAILED;
    }
    http_job_body(&req->http, 200, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
    PQclear(r);
    return DB_OK;
}

enum db_status cp_outcome_row(struct cp_req *req, struct db_conn *c, const struct db_stmt *st,
                              const char *const *p, const char *action, PGresult **out)
{
    PGresult *r = db_exec(c, st, p);
    if (!cp_tuples(r) || PQntuples(r) != 1)
        return cp_sql_failed(req, r, action);
    cp_take_revoked(req, PQgetvalue(r, 0, PQnfields(r) - 1)); /* revoked: the last column */
    if (!PQgetisnull(r, 0, CP_OUT_MEETING)) {
        const char *mid = PQgetvalue(r, 0, CP_OUT_MEETING);
        ml_strlcpy(req->touched, mid, sizeof req->touched);
        ml_snprintf(req->http.log_note, sizeof req->http.log_note, "meeting=%s%s%s", mid,
                    req->target[0] ? " participant=" : "", req->target);
    }
    const char *outcome = PQgetvalue(r, 0, CP_OUT_OUTCOME);
    if (strcmp(outcome, "ok") != 0) {
        /* these functions look a meeting up: their not_found is the meeting's */
        http_job_err(&req->http, http_err_outcome(outcome, HTTP_E_NO_MEETING), NULL);
        PQclear(r);
        return DB_FAILED;
    }
    *out = r;
    return DB_OK;
}

const struct http_param cp_no_params[] = {
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

/* ------------------------------------------------------------------ health */

static void h_health(struct http_req *r)
{
    struct cp *cp = r->arg;
    unsigned up = db_pool_up(cp->pool);
    if (!up) {
        http_reply_err(r, HTTP_E_UNAVAILABLE, NULL);
        return;
    }
    http_reply_json(
        r, 200,
        json_pack("{s:s,s:s,s:i}", "status", "ok", "database", "up", "connections", (int)up));
}

/* ------------------------------------------------------------------ the route tables */

static const struct http_route core_routes[] = {
    {LWSHUMETH_GET, "/api/v1/health", h_health, 0, NULL, 0},
    {LWSHUMETH_GET, "/api/v1/config", cp_web_config, 0, NULL, 0},
    {0, NULL, NULL, 0, NULL, 0},
};

const struct http_route *const cp_api_routes[] = {
    core_routes,           cp_account_routes,   cp_meeting_routes,
    cp_participant_routes, cp_assistant_routes, NULL,
};
