/* The REST API: one handler per endpoint (control-plane thread: checks, then a database job)
 * and its work function (database thread: one prepared statement, most of them one SQL
 * function = one transaction, plus hashing and signing). */
#include "config.h"

#include "control/cp-int.h"

#include <argon2.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SUBSYS "api"

/* ------------------------------------------------------------------ helpers */

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* caps[0] names a meeting by id or by join code (abc-defg-hij). false: it names nothing. */
static bool parse_ref(struct cp_req *req)
{
    const char *r = req->http.caps[0];
    if (ml_uuid_norm(r, req->ref_id))
        return true;
    if (strlen(r) != 12 || r[3] != '-' || r[8] != '-')
        return false;
    for (int i = 0; i < 12; i++)
        if (i != 3 && i != 8 && !isalpha((unsigned char)r[i]))
            return false;
    ml_strlcpy(req->ref_code, r, sizeof req->ref_code);
    lower(req->ref_code);
    return true;
}

static const char *nz(const char *s)
{
    return s && *s ? s : NULL;
}

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

/* The revoked usernames of a PostgreSQL text[] ("{a,b}"), for the revocation hook. */
static void take_revoked(struct cp_req *req, const char *arr)
{
    db_words(arr, &req->revoked, &req->nrevoked);
}

/* A failed statement: DB_UNAVAILABLE when the connection broke or the statement was cut off
 * (the client gets 503), else the log line for operators (rid names the request) and
 * DB_FAILED. Clears r. */
static enum db_status sql_error(PGresult *r, const char *action, const char *rid)
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

/* A failed statement of a request: sql_error, and the answer for the client. */
static enum db_status sql_failed(struct cp_req *req, struct db_conn *c, PGresult *r,
                                 const char *action)
{
    ML_UNUSED(c);
    if (r && !strcmp(db_sqlstate(r), "23503")) {
        http_job_err(&req->http, HTTP_E_INVALID_TOKEN,
                     "the account of this token no longer exists");
        PQclear(r);
        return DB_FAILED;
    }
    enum db_status st = sql_error(r, action, req->http.request_id);
    if (st == DB_FAILED)
        http_job_err(&req->http, HTTP_E_INTERNAL, NULL);
    return st;
}

static bool tuples(PGresult *r)
{
    return r && PQresultStatus(r) == PGRES_TUPLES_OK;
}

/* An access token for a user (database thread). */
static char *access_token(struct cp *cp, const char *user_id, const char *name, int64_t *exp)
{
    int64_t now = ml_wall_s();
    *exp = now + cp->auth.token_lifetime_s;
    json_t *c = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I}", "iss", cp->auth.jwt_issuer, "aud",
                          cp->auth.jwt_audience, "sub", user_id, "name", name ? name : "", "iat",
                          (json_int_t)now, "nbf", (json_int_t)now, "exp", (json_int_t)*exp);
    char *tok = c ? cp_jwt_sign(&cp->key, c) : NULL;
    json_decref(c);
    return tok;
}

/* {"user":..., "token":..., "token_type":"Bearer", "expires_in":...} from a user JSON text. */
static void token_answer(struct cp *cp, struct cp_req *req, int status, const char *user_json,
                         const char *user_id, const char *name)
{
    int64_t exp;
    json_t *user = json_loads(user_json, 0, NULL);
    char *tok = access_token(cp, user_id, name, &exp);
    if (!user || !tok) {
        json_decref(user);
        free(tok);
        http_job_err(&req->http, HTTP_E_INTERNAL, NULL);
        return;
    }
    json_t *o = json_pack("{s:o,s:s,s:s,s:I}", "user", user, "token", tok, "token_type", "Bearer",
                          "expires_in", (json_int_t)cp->auth.token_lifetime_s);
    free(tok);
    http_job_json(&req->http, status, o);
}

/* A client sends the same access token with every request: what verifying it found (its
 * user and expiry) is kept, keyed by the whole token, so that the signature is checked and the
 * claims parsed once per token rather than once per request (a fifth of a cached status read).
 * The key never changes while the process runs (auth.jwt-* are not reloadable), a token is
 * matched byte for byte, and the expiry is checked on every use. */
struct cp_token_memo {
    long long exp;
    struct http_user user;
    char token[]; /* NUL-terminated */
};

/* FNV-1a: the slot of a string key in the direct-mapped tables of this file. */
static uint64_t key_hash(const char *key)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

static size_t token_slot(const char *tok)
{
    return (size_t)(key_hash(tok) % CP_TOKEN_SLOTS);
}

void cp_tokens_free(struct cp *cp)
{
    if (!cp->tokens)
        return;
    for (size_t i = 0; i < CP_TOKEN_SLOTS; i++)
        free(cp->tokens[i]);
    free(cp->tokens);
    cp->tokens = NULL;
}

enum http_err cp_authenticate(struct http_req *req, const char *authz)
{
    struct cp *cp = req->arg;
    if (!authz)
        return HTTP_E_UNAUTHENTICATED;
    if (strncasecmp(authz, "Bearer ", 7) != 0)
        return HTTP_E_UNAUTHENTICATED;
    const char *tok = authz + 7;
    while (*tok == ' ')
        tok++;
    struct cp_jwt_expect ex = {cp->auth.jwt_issuer, cp->auth.jwt_audience, cp->auth.leeway_s,
                               ml_wall_s()};
    struct cp_token_memo **slot = cp->tokens ? &cp->tokens[token_slot(tok)] : NULL;
    if (slot && *slot && !strcmp((*slot)->token, tok)) {
        if (ex.now <= (*slot)->exp + ex.leeway_s) {
            req->user = (*slot)->user;
            return HTTP_OK;
        }
        free(*slot); /* expired: the full check below says so */
        *slot = NULL;
    }
    jwt_t *j = NULL;
    enum http_err e = cp_jwt_verify(&cp->key, tok, &ex, &j);
    if (e != HTTP_OK)
        return e;
    const char *sub = jwt_get_grant(j, "sub");
    const char *name = jwt_get_grant(j, "name");
    if (!ml_uuid_valid(sub)) {
        jwt_free(j);
        return HTTP_E_INVALID_TOKEN;
    }
    ml_strlcpy(req->user.id, sub, sizeof req->user.id);
    ml_strlcpy(req->user.name, name ? name : "", sizeof req->user.name);
    errno = 0;
    long long exp = jwt_get_grant_int(j, "exp"); /* checked by cp_jwt_verify */
    jwt_free(j);
    size_t n = strlen(tok);
    struct cp_token_memo *m = slot && errno == 0 ? malloc(sizeof *m + n + 1) : NULL;
    if (m) {
        m->exp = exp;
        m->user = req->user;
        memcpy(m->token, tok, n + 1);
        free(*slot);
        *slot = m;
    }
    return HTTP_OK;
}

/* ------------------------------------------------------------------ statements */

static const struct db_stmt st_signup = {
    "signup",
    "WITH u AS (INSERT INTO users (email, display_name, password_hash, signup_method) "
    "VALUES ($1, $2, $3, 'password') ON CONFLICT DO NOTHING RETURNING *) "
    "SELECT u.id, json_build_object('id', u.id, 'email', u.email, 'display_name', "
    "u.display_name, 'signup_method', u.signup_method, 'created_at', u.created_at) FROM u",
    3};
static const struct db_stmt st_login = {
    "login",
    "SELECT u.id, u.password_hash, u.display_name, json_build_object('id', u.id, 'email', "
    "u.email, 'display_name', u.display_name, 'signup_method', u.signup_method, 'created_at', "
    "u.created_at) FROM users u WHERE lower(u.email) = lower($1)",
    1};
static const struct db_stmt st_oidc = {
    "oidc", "SELECT outcome, user_id, display_name, user_json FROM ml_oidc_user($1, $2, $3, $4)",
    4};
static const struct db_stmt st_me = {
    "me",
    "SELECT json_build_object('id', u.id, 'email', u.email, 'display_name', u.display_name, "
    "'signup_method', u.signup_method, 'oidc_issuer', u.oidc_issuer, 'created_at', "
    "u.created_at) FROM users u WHERE u.id = $1",
    1};
static const struct db_stmt st_ice = {
    "ice",
    "INSERT INTO turn_credentials (user_id, username, expires_at) "
    "SELECT u.id, $2, to_timestamp($3::bigint) FROM users u WHERE u.id = $1 RETURNING id",
    3};
static const struct db_stmt st_create = {
    "create",
    "WITH m AS (INSERT INTO meetings (code, title, host_id, expires_at, max_participants) "
    "VALUES ($1, $2, $3, now() + make_interval(secs => $4::integer), $5) RETURNING *), "
    "a AS (INSERT INTO audit_log (actor_id, meeting_id, action) "
    "SELECT $3, m.id, 'meeting.create' FROM m) "
    "SELECT m.id, ml_meeting_json(ROW(m.*)::meetings, $3) FROM m",
    5};
static const struct db_stmt st_list = {
    "list",
    "SELECT json_build_object('meetings', coalesce(json_agg(ml_meeting_json(m, $1) "
    "ORDER BY m.created_at DESC), '[]'::json)) FROM (SELECT * FROM meetings x WHERE "
    "x.host_id = $1 OR x.id IN (SELECT p.meeting_id FROM participants p WHERE p.user_id = $1 "
    "AND NOT p.removed) ORDER BY x.created_at DESC LIMIT $2) m",
    2};
/* A meeting's status in both forms (with the roster for insiders, without for others), with
 * what it takes to tell them apart, so that the answer can be cached for every caller. */
#define MEETING_FIELDS(parts)                                                                      \
    "json_build_object('id', m.id, 'code', m.code, 'title', m.title, 'status', CASE WHEN "         \
    "m.status = 'ACTIVE' AND m.expires_at <= now() THEN 'EXPIRED' ELSE m.status::text END, "       \
    "'host', json_build_object('id', m.host_id, 'display_name', h.display_name), 'created_at', "   \
    "m.created_at, 'expires_at', m.expires_at, 'ended_at', m.ended_at, 'max_participants', "       \
    "m.max_participants, 'participants', " parts ")"
/* Written out rather than through ml_meeting_json (a function call per form costs more than
 * the whole query otherwise): the roster is aggregated once for both forms. */
#define STATUS_COLS                                                                                \
    "SELECT m.id, m.code, m.host_id, floor(extract(epoch FROM "                                    \
    "m.expires_at))::bigint, " MEETING_FIELDS("r.list") ", " MEETING_FIELDS(                       \
        "NULL::json") ", coalesce(r.members, '') "                                                 \
                      "FROM meetings m JOIN users h ON h.id = m.host_id CROSS JOIN LATERAL "       \
                      "(SELECT "                                                                   \
                      "coalesce(json_agg(json_build_object('id', x.id, 'user_id', x.user_id, "     \
                      "'display_name', "                                                           \
                      "x.display_name, 'role', x.role, 'joined_at', x.joined_at) ORDER BY "        \
                      "x.joined_at, x.id), "                                                       \
                      "'[]'::json) AS list, string_agg(x.user_id::text, ',') AS members FROM "     \
                      "participants x "                                                            \
                      "WHERE x.meeting_id = m.id AND x.left_at IS NULL) r "
static const struct db_stmt st_status_id = {"status_id", STATUS_COLS "WHERE m.id = $1", 1};
static const struct db_stmt st_status_code = {"status_code", STATUS_COLS "WHERE m.code = $1", 1};
static const struct db_stmt st_join = {
    "join",
    "SELECT outcome, meeting_id, meeting_code, meeting_expires, participant_id, role, "
    "display_name, cred_username, cred_expires, rejoined, revoked "
    "FROM ml_join($1, $2, $3, $4, $5)",
    5};
static const struct db_stmt st_leave = {
    "leave", "SELECT outcome, meeting_id, meeting_ended, revoked FROM ml_leave($1, $2, $3)", 3};
static const struct db_stmt st_end = {
    "end", "SELECT outcome, meeting_id, revoked FROM ml_end($1, $2, $3)", 3};
static const struct db_stmt st_remove = {
    "remove", "SELECT outcome, meeting_id, revoked FROM ml_remove($1, $2, $3, $4)", 4};
static const struct db_stmt st_role = {
    "role", "SELECT outcome, meeting_id, participant, revoked FROM ml_set_role($1, $2, $3, $4, $5)",
    5};
static const struct db_stmt st_usage = {
    "usage",
    "SELECT outcome, meeting_id, usage, '{}'::text[] AS revoked FROM ml_meeting_usage($1, $2, $3)",
    3};
static const struct db_stmt st_sweep = {
    "sweep",
    "WITH m AS (UPDATE meetings SET status = 'EXPIRED', ended_at = now() "
    "WHERE status = 'ACTIVE' AND expires_at <= now() RETURNING id), "
    "p AS (UPDATE participants SET left_at = now() WHERE left_at IS NULL "
    "AND meeting_id IN (SELECT id FROM m) RETURNING id), "
    "c AS (UPDATE turn_credentials SET revoked_at = now() WHERE revoked_at IS NULL "
    "AND participant_id IN (SELECT id FROM p) RETURNING username) "
    "SELECT (SELECT count(*) FROM m), (SELECT coalesce(array_agg(DISTINCT username), '{}') "
    "FROM c)",
    0};

/* The outcome word of a meeting SQL function as an error: not_found names the meeting here. */
static enum http_err outcome_err(const char *o)
{
    return http_err_outcome(o, HTTP_E_NO_MEETING);
}

/* ------------------------------------------------------------------ health */

static void h_health(struct http_req *r)
{
    struct cp_req *req = cp_req_of(r);
    struct cp *cp = cp_of(req);
    unsigned up = db_pool_up(cp->pool);
    if (!up) {
        http_reply_err(&req->http, HTTP_E_UNAVAILABLE, NULL);
        return;
    }
    http_reply_json(
        &req->http, 200,
        json_pack("{s:s,s:s,s:i}", "status", "ok", "database", "up", "connections", (int)up));
}

/* ------------------------------------------------------------------ accounts */

struct signup_in {
    char email[256];
    char password[1028];
    char display_name[404];
    bool has_display_name;
};
static const struct http_param signup_params[] = {
    {"email", HTTP_P_EMAIL, HTTP_P_REQUIRED | HTTP_P_TRIM, 3, 254,
     offsetof(struct signup_in, email), 256, HTTP_P_NOHAS, NULL},
    {"password", HTTP_P_STRING, HTTP_P_REQUIRED, 1, 256, offsetof(struct signup_in, password), 1028,
     HTTP_P_NOHAS, NULL},
    {"display_name", HTTP_P_STRING, HTTP_P_NO_CTRL | HTTP_P_TRIM, 1, 100,
     offsetof(struct signup_in, display_name), 404, offsetof(struct signup_in, has_display_name),
     NULL},
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

static enum db_status w_signup(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    struct cp *cp = cp_of(req);
    struct signup_in *in = req->http.params;
    uint8_t salt[16];
    char hash[160];
    ml_random(salt, sizeof salt);
    int rc = argon2id_hash_encoded((uint32_t)cp->auth.argon2_iterations,
                                   (uint32_t)cp->auth.argon2_memory_kib, 1, in->password,
                                   strlen(in->password), salt, sizeof salt, 32, hash, sizeof hash);
    ml_wipe(in->password, sizeof in->password);
    if (rc != ARGON2_OK) {
        ML_ERROR(SUBSYS, "argon2id failed (rid=%s): %s", req->http.request_id,
                 argon2_error_message(rc));
        http_job_err(&req->http, HTTP_E_INTERNAL, NULL);
        return DB_FAILED;
    }
    const char *p[] = {in->email, in->display_name, hash};
    PGresult *r = db_exec(c, &st_signup, p);
    if (!tuples(r))
        return sql_failed(req, c, r, "signup");
    if (PQntuples(r) == 0) {
        PQclear(r);
        http_job_err(&req->http, HTTP_E_EMAIL_TAKEN, NULL);
        return DB_FAILED;
    }
    token_answer(cp, req, 201, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 0), in->display_name);
    PQclear(r);
    return DB_OK;
}

static void h_signup(struct http_req *r)
{
    struct cp_req *req = cp_req_of(r);
    struct cp *cp = cp_of(req);
    struct signup_in *in = req->http.params;
    size_t chars = 0;
    ml_utf8_valid(in->password, strlen(in->password), &chars);
    if ((long long)chars < cp->auth.password_min) {
        char msg[96];
        ml_snprintf(msg, sizeof msg, "password: at least %lld characters", cp->auth.password_min);
        http_reply_err(&req->http, HTTP_E_INVALID_FIELD, msg);
        return;
    }
    if (!in->has_display_name) { /* the local part of the address */
        ml_strlcpy(in->display_name, in->email, sizeof in->display_name);
        char *at = strchr(in->display_name, '@');
        if (at)
            *at = 0;
        if (strlen(in->display_name) > 100)
            in->display_name[100] = 0;
    }
    cp_submit(req, w_signup);
}

struct login_in {
    char email[256];
    char password[1028];
};
static const struct http_param login_params[] = {
    {"email", HTTP_P_STRING, HTTP_P_REQUIRED | HTTP_P_TRIM, 1, 254,
     offsetof(struct login_in, email), 256, HTTP_P_NOHAS, NULL},
    {"password", HTTP_P_STRING, HTTP_P_REQUIRED, 1, 256, offsetof(struct login_in, password), 1028,
     HTTP_P_NOHAS, NULL},
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

static enum db_status w_login(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    struct cp *cp = cp_of(req);
    struct login_in *in = req->http.params;
    const char *p[] = {in->email};
    PGresult *r = db_exec(c, &st_login, p);
    if (!tuples(r)) {
        ml_wipe(in->password, sizeof in->password);
        return sql_failed(req, c, r, "login");
    }
    bool found = PQntuples(r) == 1 && !PQgetisnull(r, 0, 1);
    /* an unknown account costs the same hash as a known one */
    const char *hash = found ? PQgetvalue(r, 0, 1) : cp->dummy_hash;
    bool ok = argon2id_verify(hash, in->password, strlen(in->password)) == ARGON2_OK && found;
    ml_wipe(in->password, sizeof in->password);
    if (!ok) {
        PQclear(r);
        req->login_failed = true;
        http_job_err(&req->http, HTTP_E_BAD_CREDENTIALS, NULL);
        return DB_FAILED;
    }
    token_answer(cp, req, 200, PQgetvalue(r, 0, 3), PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 2));
    PQclear(r);
    return DB_OK;
}

static void login_keys(struct cp_req *req, char *acct, size_t alen, char *addr, size_t adlen)
{
    struct login_in *in = req->http.params;
    ml_snprintf(acct, alen, "acct:%s", in->email);
    lower(acct);
    ml_snprintf(addr, adlen, "addr:%s", req->http.peer);
}

static void login_done(struct cp *cp, struct cp_req *req)
{
    char acct[300], addr[96];
    login_keys(req, acct, sizeof acct, addr, sizeof addr);
    if (req->login_failed) {
        cp_limiter_fail(cp->limiter, acct, cp->auth.login_window_s);
        cp_limiter_fail(cp->limiter, addr, cp->auth.login_window_s);
        ML_LOG_LIMITED(ML_LOG_NOTICE, SUBSYS, "failed login from %s (rid=%s)", req->http.peer,
                       req->http.request_id);
    } else if (req->http.err == HTTP_OK) {
        cp_limiter_reset(cp->limiter, acct);
    }
}

static void h_login(struct http_req *r)
{
    struct cp_req *req = cp_req_of(r);
    struct cp *cp = cp_of(req);
    char acct[300], addr[96];
    unsigned retry = 0;
    login_keys(req, acct, sizeof acct, addr, sizeof addr);
    if (cp_limiter_blocked(cp->limiter, acct, cp->auth.login_max_failures, cp->auth.login_window_s,
                           &retry) ||
        cp_limiter_blocked(cp->limiter, addr, cp->auth.login_max_failures_addr,
                           cp->auth.login_window_s, &retry)) {
        struct login_in *in = req->http.params;
        ml_wipe(in->password, sizeof in->password);
        req->http.retry_after_s = retry;
        http_reply_err(&req->http, HTTP_E_RATE_LIMITED, NULL);
        return;
    }
    req->on_done = login_done;
    cp_submit(req, w_login);
}

struct oidc_in {
    char id_token[CP_JWT_MAX + 1];
};
static const struct http_param oidc_params[] = {
    {"id_token", HTTP_P_STRING, HTTP_P_REQUIRED, 1, CP_JWT_MAX, offsetof(struct oidc_in, id_token),
     CP_JWT_MAX + 1, HTTP_P_NOHAS, NULL},
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

static enum db_status w_oidc(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    struct cp *cp = cp_of(req);
    struct oidc_in *in = req->http.params;
    struct cp_jwt_expect ex = {cp->auth.oidc_issuer, cp->auth.oidc_audience, cp->auth.leeway_s,
                               ml_wall_s()};
    jwt_t *j = NULL;
    enum http_err e = cp_jwks_verify(&cp->jwks, in->id_token, &ex, &j);
    if (e != HTTP_OK) {
        http_job_err(&req->http, e, "the ID token is not valid");
        return DB_FAILED;
    }
    const char *sub = jwt_get_grant(j, "sub");
    const char *email = jwt_get_grant(j, "email");
    const char *name = jwt_get_grant(j, "name");
    const char *ev_s = jwt_get_grant(j, "email_verified");
    errno = 0;
    int ev = jwt_get_grant_bool(j, "email_verified");
    bool verified = (errno == 0 && ev == 1) || (ev_s && !strcmp(ev_s, "true"));
    char dn[404], em[256];
    size_t chars;
    if (!sub || !*sub || strlen(sub) > 255 || !ml_utf8_valid(sub, strlen(sub), NULL) || !email ||
        strlen(email) > 254 || !strchr(email, '@') || !ml_utf8_valid(email, strlen(email), NULL)) {
        jwt_free(j);
        http_job_err(&req->http, HTTP_E_INVALID_TOKEN, "the ID token lacks sub or email");
        return DB_FAILED;
    }
    if (!verified) {
        jwt_free(j);
        http_job_err(&req->http, HTTP_E_EMAIL_UNVERIFIED, NULL);
        return DB_FAILED;
    }
    ml_strlcpy(em, email, sizeof em);
    if (name && *name && ml_utf8_valid(name, strlen(name), &chars) && chars <= 100 &&
        strlen(name) < sizeof dn) {
        ml_strlcpy(dn, name, sizeof dn);
    } else {
        ml_strlcpy(dn, email, sizeof dn);
        char *at = strchr(dn, '@');
        if (at)
            *at = 0;
        dn[100] = 0;
    }
    char subc[256];
    ml_strlcpy(subc, sub, sizeof subc);
    jwt_free(j);
    const char *p[] = {cp->auth.oidc_issuer, subc, em, dn};
    PGresult *r = db_exec(c, &st_oidc, p);
    if (!tuples(r) || PQntuples(r) != 1)
        return sql_failed(req, c, r, "oidc sign-in");
    const char *outcome = PQgetvalue(r, 0, 0);
    if (!strcmp(outcome, "conflict") || PQgetisnull(r, 0, 1)) {
        PQclear(r);
        http_job_err(&req->http, HTTP_E_ACCOUNT_CONFLICT, NULL);
        return DB_FAILED;
    }
    ml_snprintf(req->http.log_note, sizeof req->http.log_note, "oidc=%s", outcome);
    token_answer(cp, req, !strcmp(outcome, "created") ? 201 : 200, PQgetvalue(r, 0, 3),
                 PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
    PQclear(r);
    return DB_OK;
}

static void h_oidc(struct http_req *r)
{
    struct cp_req *req = cp_req_of(r);
    struct cp *cp = cp_of(req);
    if (!cp->oidc) {
        http_reply_err(&req->http, HTTP_E_OIDC_DISABLED, NULL);
        return;
    }
    cp_submit(req, w_oidc);
}

/* A statement whose one value is the answer's JSON text (absent row: err). */
static enum db_status json_row(struct cp_req *req, struct db_conn *c, const struct db_stmt *st,
                               const char *const *p, enum http_err absent, const char *action)
{
    PGresult *r = db_exec(c, st, p);
    if (!tuples(r))
        return sql_failed(req, c, r, action);
    if (PQntuples(r) == 0 || PQgetisnull(r, 0, 0)) {
        PQclear(r);
        http_job_err(&req->http, absent, NULL);
        return DB_FAILED;
    }
    http_job_body(&req->http, 200, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
    PQclear(r);
    return DB_OK;
}

static enum db_status w_me(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    const char *p[] = {req->http.user.id};
    return json_row(req, c, &st_me, p, HTTP_E_INVALID_TOKEN, "me");
}

static void h_me(struct http_req *r)
{
    struct cp_req *req = cp_req_of(r);
    cp_submit(req, w_me);
}

/* The URIs handed out, and a REST credential for id expiring at expiry. */
static json_t *ice_servers(struct cp *cp, const char *user, const char *pass)
{
    json_t *stun = json_array(), *turn = json_array();
    size_t i;
    json_t *u;
    json_array_foreach(cp->turn_uris, i, u)
    {
        const char *s = json_string_value(u);
        json_array_append(strncmp(s, "stun", 4) == 0 ? stun : turn, u);
    }
    json_t *list = json_array();
    if (json_array_size(stun))
        json_array_append_new(list, json_pack("{s:o}", "urls", stun));
    else
        json_decref(stun);
    if (json_array_size(turn))
        json_array_append_new(
            list, json_pack("{s:o,s:s,s:s}", "urls", turn, "username", user, "credential", pass));
    else
        json_decref(turn);
    return list;
}

static enum db_status w_ice(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    struct cp *cp = cp_of(req);
    char secret[512], user[128], pass[64], exp_s[24];
    int64_t exp = ml_wall_s() + cp->cfg.credential_ttl_s;
    cp_turn_secret(cp, secret, sizeof secret);
    int rc =
        turn_rest_credential(secret, req->http.user.id, exp, user, sizeof user, pass, sizeof pass);
    ml_wipe(secret, sizeof secret);
    if (rc < 0) {
        http_job_err(&req->http, HTTP_E_INTERNAL, NULL);
        return DB_FAILED;
    }
    ml_snprintf(exp_s, sizeof exp_s, "%lld", (long long)exp);
    const char *p[] = {req->http.user.id, user, exp_s};
    PGresult *r = db_exec(c, &st_ice, p);
    if (!tuples(r))
        return sql_failed(req, c, r, "ice-servers");
    bool known = PQntuples(r) == 1;
    PQclear(r);
    if (!known) {
        http_job_err(&req->http, HTTP_E_INVALID_TOKEN,
                     "the account of this token no longer exists");
        return DB_FAILED;
    }
    http_job_json(&req->http, 200,
                  json_pack("{s:s,s:s,s:I,s:O,s:o}", "username", user, "password", pass, "ttl",
                            (json_int_t)cp->cfg.credential_ttl_s, "uris", cp->turn_uris,
                            "iceServers", ice_servers(cp, user, pass)));
    return DB_OK;
}

static void h_ice(struct http_req *r)
{
    struct cp_req *req = cp_req_of(r);
    cp_submit(req, w_ice);
}

/* ------------------------------------------------------------------ meetings */

struct create_in {
    char title[804];
    long long duration_s;
    long long max_participants;
    bool has_duration, has_max;
};
static const struct http_param create_params[] = {
    {"title", HTTP_P_STRING, HTTP_P_REQUIRED | HTTP_P_NO_CTRL | HTTP_P_TRIM, 1, 200,
     offsetof(struct create_in, title), 804, HTTP_P_NOHAS, NULL},
    {"duration_s", HTTP_P_INT, 0, 1, 31 * 86400, offsetof(struct create_in, duration_s), 0,
     offsetof(struct create_in, has_duration), NULL},
    {"max_participants", HTTP_P_INT, 0, 1, 100000, offsetof(struct create_in, max_participants), 0,
     offsetof(struct create_in, has_max), NULL},
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

static void make_code(char code[13])
{
    uint8_t r[10];
    ml_random(r, sizeof r);
    int k = 0;
    for (int i = 0; i < 12; i++) {
        if (i == 3 || i == 8) {
            code[i] = '-';
            continue;
        }
        code[i] = (char)('a' + r[k++] % 26);
    }
    code[12] = 0;
}

static enum db_status w_create(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    struct create_in *in = req->http.params;
    char dur[24], max[24], code[13];
    ml_snprintf(dur, sizeof dur, "%lld", in->duration_s);
    ml_snprintf(max, sizeof max, "%lld", in->max_participants);
    for (int attempt = 0; attempt < 5; attempt++) {
        make_code(code);
        const char *p[] = {code, in->title, req->http.user.id, dur, max};
        PGresult *r = db_exec(c, &st_create, p);
        if (r && PQresultStatus(r) == PGRES_FATAL_ERROR && !strcmp(db_sqlstate(r), "23505")) {
            PQclear(r); /* the code is taken: draw another */
            continue;
        }
        if (!tuples(r) || PQntuples(r) != 1)
            return sql_failed(req, c, r, "create meeting");
        ml_snprintf(req->http.location, sizeof req->http.location, "/api/v1/meetings/%s",
                    PQgetvalue(r, 0, 0));
        ml_snprintf(req->http.log_note, sizeof req->http.log_note, "meeting=%s",
                    PQgetvalue(r, 0, 0));
        http_job_body(&req->http, 201, PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1));
        PQclear(r);
        return DB_OK;
    }
    http_job_err(&req->http, HTTP_E_INTERNAL, "could not draw a free meeting code");
    return DB_FAILED;
}

static void h_create(struct http_req *r)
{
    struct cp_req *req = cp_req_of(r);
    struct cp *cp = cp_of(req);
    struct create_in *in = req->http.params;
    char msg[128];
    if (!in->has_duration)
        in->duration_s = cp->cfg.default_duration_s;
    if (!in->has_max)
        in->max_participants = cp->cfg.default_participants;
    if (in->duration_s < cp->cfg.min_duration_s || in->duration_s > cp->cfg.max_duration_s) {
        ml_snprintf(msg, sizeof msg, "duration_s: must be %lld to %lld", cp->cfg.min_duration_s,
                    cp->cfg.max_duration_s);
        http_reply_err(&req->http, HTTP_E_INVALID_FIELD, msg);
        return;
    }
    if (in->max_participants > cp->cfg.max_participants) {
        ml_snprintf(msg, sizeof msg, "max_participants: at most %lld", cp->cfg.max_participants);
        http_reply_err(&req->http, HTTP_E_INVALID_FIELD, msg);
        return;
    }
    cp_submit(req, w_create);
}

static enum db_status w_list(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    char lim[24];
    ml_snprintf(lim, sizeof lim, "%lld", cp_of(req)->cfg.meetings_list_max);
    const char *p[] = {req->http.user.id, lim};
    return json_row(req, c, &st_list, p, HTTP_E_INTERNAL, "list meetings");
}

static void h_list(struct http_req *r)
{
    struct cp_req *req = cp_req_of(r);
    cp_submit(req, w_list);
}

/* A cached meeting status: both JSON forms and who may see the roster. */
struct cp_status {
    char key[40]; /* the id or code it is filed under */
    char id[40], code[16], host[40];
    int64_t fetched_ms, expires_s;
    char *members; /* comma list of active participants' user ids */
    char *full, *pub;
    size_t full_len, pub_len;
    /* the strings follow the struct in the same allocation */
};

#define STATUS_CACHE_MAX_BYTES 16384 /* bigger rosters are not cached */

static size_t slot_of(const char *key)
{
    return (size_t)(key_hash(key) % CP_CACHE_SLOTS);
}

static struct cp_status *status_dup(const struct cp_status *s, const char *key)
{
    size_t ml = strlen(s->members) + 1;
    struct cp_status *c = malloc(sizeof *c + ml + s->full_len + s->pub_len + 2);
    if (!c)
        return NULL;
    *c = *s;
    ml_strlcpy(c->key, key, sizeof c->key);
    char *p = (char *)(c + 1);
    memcpy(p, s->members, ml);
    c->members = p;
    p += ml;
    memcpy(p, s->full, s->full_len);
    p[s->full_len] = 0;
    c->full = p;
    p += s->full_len + 1;
    memcpy(p, s->pub, s->pub_len);
    p[s->pub_len] = 0;
    c->pub = p;
    return c;
}

static void cache_put(struct cp *cp, const struct cp_status *s, const char *key)
{
    struct cp_status **slot = &cp->cache[slot_of(key)];
    struct cp_status *c = status_dup(s, key);
    if (!c)
        return;
    free(*slot);
    *slot = c;
}

static void cache_drop(struct cp *cp, const char *key, const char *id)
{
    struct cp_status **slot = &cp->cache[slot_of(key)];
    if (*slot && !strcmp((*slot)->key, key) && (!id || !strcmp((*slot)->id, id))) {
        free(*slot);
        *slot = NULL;
    }
}

void cp_cache_invalidate(struct cp *cp, const char *meeting_id)
{
    cp->cache_gen++;
    struct cp_status *s = cp->cache[slot_of(meeting_id)];
    if (s && !strcmp(s->key, meeting_id))
        cache_drop(cp, s->code, meeting_id);
    cache_drop(cp, meeting_id, NULL);
}

void cp_cache_free(struct cp *cp)
{
    if (!cp->cache)
        return;
    for (size_t i = 0; i < CP_CACHE_SLOTS; i++)
        free(cp->cache[i]);
    free(cp->cache);
    cp->cache = NULL;
}

static bool insider(const struct cp_status *s, const char *user)
{
    return !strcmp(s->host, user) || strstr(s->members, user) != NULL;
}

static void status_answer(struct cp_req *req, const struct cp_status *s)
{
    bool in = insider(s, req->http.user.id);
    const char *text = in ? s->full : s->pub;
    http_job_body(&req->http, 200, text, in ? s->full_len : s->pub_len);
}

static enum db_status w_status(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    const char *p[] = {req->ref_id[0] ? req->ref_id : req->ref_code};
    PGresult *r = db_exec(c, req->ref_id[0] ? &st_status_id : &st_status_code, p);
    if (!tuples(r))
        return sql_failed(req, c, r, "meeting status");
    if (PQntuples(r) != 1) {
        PQclear(r);
        http_job_err(&req->http, HTTP_E_NO_MEETING, NULL);
        return DB_FAILED;
    }
    struct cp_status s;
    memset(&s, 0, sizeof s);
    ml_strlcpy(s.id, PQgetvalue(r, 0, 0), sizeof s.id);
    ml_strlcpy(s.code, PQgetvalue(r, 0, 1), sizeof s.code);
    ml_strlcpy(s.host, PQgetvalue(r, 0, 2), sizeof s.host);
    s.expires_s = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
    s.full = PQgetvalue(r, 0, 4);
    s.full_len = (size_t)PQgetlength(r, 0, 4);
    s.pub = PQgetvalue(r, 0, 5);
    s.pub_len = (size_t)PQgetlength(r, 0, 5);
    s.members = PQgetvalue(r, 0, 6); /* "" when NULL */
    s.fetched_ms = ml_now_ms();
    status_answer(req, &s);
    if (s.full_len + s.pub_len < STATUS_CACHE_MAX_BYTES)
        req->status_out = status_dup(&s, req->ref_id[0] ? req->ref_id : req->ref_code);
    PQclear(r);
    return DB_OK;
}

/* Control-plane thread: file a fresh status unless a write may have changed it meanwhile. */
static void status_done(struct cp *cp, struct cp_req *req)
{
    struct cp_status *s = req->status_out;
    if (!s || req->cache_gen != cp->cache_gen || cp->cfg.status_cache_ms <= 0)
        return;
    cache_put(cp, s, s->id);
    cache_put(cp, s, s->code);
}

static void h_status(struct http_req *r)
{
    struct cp_req *req = cp_req_of(r);
    struct cp *cp = cp_of(req);
    if (!parse_ref(req)) {
        http_reply_err(&req->http, HTTP_E_NO_MEETING, NULL);
        return;
    }
    const char *key = req->ref_id[0] ? req->ref_id : req->ref_code;
    const struct cp_status *s = cp->cache[slot_of(key)];
    if (s && !strcmp(s->key, key) && ml_now_ms() - s->fetched_ms < cp->cfg.status_cache_ms &&
        ml_wall_s() < s->expires_s) {
        status_answer(req, s);
        http_reply_ready(&req->http);
        return;
    }
    req->cache_gen = cp->cache_gen;
    req->on_done = status_done;
    cp_submit(req, w_status);
}

struct join_in {
    char display_name[404];
    bool has_display_name;
};
static const struct http_param join_params[] = {
    {"display_name", HTTP_P_STRING, HTTP_P_NO_CTRL | HTTP_P_TRIM, 1, 100,
     offsetof(struct join_in, display_name), 404, offsetof(struct join_in, has_display_name), NULL},
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

static enum db_status w_join(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    struct cp *cp = cp_of(req);
    struct join_in *in = req->http.params;
    char ttl[24];
    ml_snprintf(ttl, sizeof ttl, "%lld", cp->cfg.credential_ttl_s);
    const char *p[] = {nz(req->ref_id), nz(req->ref_code), req->http.user.id,
                       in->has_display_name ? in->display_name : NULL, ttl};
    PGresult *r = db_exec(c, &st_join, p);
    if (!tuples(r) || PQntuples(r) != 1)
        return sql_failed(req, c, r, "join");
    take_revoked(req, PQgetvalue(r, 0, 10));
    if (!PQgetisnull(r, 0, 1))
        ml_strlcpy(req->touched, PQgetvalue(r, 0, 1), sizeof req->touched);
    const char *outcome = PQgetvalue(r, 0, 0);
    if (strcmp(outcome, "ok") != 0) {
        if (!PQgetisnull(r, 0, 1))
            ml_snprintf(req->http.log_note, sizeof req->http.log_note, "meeting=%s",
                        PQgetvalue(r, 0, 1));
        http_job_err(&req->http, outcome_err(outcome), NULL);
        PQclear(r);
        return DB_FAILED;
    }
    const char *mid = PQgetvalue(r, 0, 1), *pid = PQgetvalue(r, 0, 4);
    long long m_exp = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
    long long c_exp = strtoll(PQgetvalue(r, 0, 8), NULL, 10);
    /* The credential id is "<meeting tag>.<participant id>" (sql/003_turn.sql): a stateless
     * relay can tell an allocation's meeting from it, and the tag gives away nothing that
     * joins it. The username ml_join recorded says which id; the password is signed here. */
    char user[128], pass[64];
    if (cp_credential(cp, PQgetvalue(r, 0, 7), c_exp, user, sizeof user, pass, sizeof pass) < 0) {
        PQclear(r);
        http_job_err(&req->http, HTTP_E_INTERNAL, "cannot make the TURN credential");
        return DB_FAILED;
    }
    int64_t now = ml_wall_s();
    long long s_exp = now + cp->auth.signaling_token_lifetime_s;
    if (s_exp > m_exp)
        s_exp = m_exp;
    json_t *claims = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I}", "iss", cp->auth.jwt_issuer,
                               "aud", "meetlite-signaling", "sub", req->http.user.id, "mid", mid,
                               "pid", pid, "role", PQgetvalue(r, 0, 5), "iat", (json_int_t)now,
                               "nbf", (json_int_t)now, "exp", (json_int_t)s_exp);
    char *sig = claims ? cp_jwt_sign(&cp->key, claims) : NULL;
    json_decref(claims);
    if (!sig) {
        PQclear(r);
        http_job_err(&req->http, HTTP_E_INTERNAL, NULL);
        return DB_FAILED;
    }
    long long ttl_left = c_exp - now > 0 ? c_exp - now : 0;
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:I,s:s,s:I,s:o,s:{s:s,s:s,s:I,s:I,s:O}}",
                          "meeting_id", mid, "meeting_code", PQgetvalue(r, 0, 2), "participant_id",
                          pid, "role", PQgetvalue(r, 0, 5), "display_name", PQgetvalue(r, 0, 6),
                          "rejoined", PQgetvalue(r, 0, 9)[0] == 't', "meeting_expires_at",
                          (json_int_t)m_exp, "signaling_token", sig, "signaling_token_expires_at",
                          (json_int_t)s_exp, "iceServers", ice_servers(cp, user, pass), "turn",
                          "username", user, "password", pass, "ttl", (json_int_t)ttl_left,
                          "expires_at", (json_int_t)c_exp, "uris", cp->turn_uris);
    free(sig);
    ml_snprintf(req->http.log_note, sizeof req->http.log_note, "meeting=%s participant=%s", mid,
                pid);
    PQclear(r);
    http_job_json(&req->http, 200, o);
    return DB_OK;
}

static void h_join(struct http_req *r)
{
    struct cp_req *req = cp_req_of(r);
    struct cp *cp = cp_of(req);
    if (__atomic_load_n(&cp->draining, __ATOMIC_RELAXED)) { /* admin drain mode (#8) */
        http_reply_err(&req->http, HTTP_E_DRAINING, NULL);
        return;
    }
    if (!parse_ref(req)) {
        http_reply_err(&req->http, HTTP_E_NO_MEETING, NULL);
        return;
    }
    struct join_in *in = req->http.params;
    if (!in->has_display_name && req->http.user.name[0]) {
        /* the name in the token: the account's display name at login */
        size_t chars;
        if (ml_utf8_valid(req->http.user.name, strlen(req->http.user.name), &chars) &&
            chars <= 100) {
            ml_strlcpy(in->display_name, req->http.user.name, sizeof in->display_name);
            in->has_display_name = true;
        }
    }
    cp_submit(req, w_join);
}

/* leave, end, remove, role: one SQL function each, outcome first, revoked usernames last. */
static enum db_status outcome_row(struct cp_req *req, struct db_conn *c, const struct db_stmt *st,
                                  const char *const *p, const char *action, PGresult **out)
{
    PGresult *r = db_exec(c, st, p);
    if (!tuples(r) || PQntuples(r) != 1)
        return sql_failed(req, c, r, action);
    take_revoked(req, PQgetvalue(r, 0, PQnfields(r) - 1));
    if (!PQgetisnull(r, 0, 1))
        ml_strlcpy(req->touched, PQgetvalue(r, 0, 1), sizeof req->touched);
    if (!PQgetisnull(r, 0, 1))
        ml_snprintf(req->http.log_note, sizeof req->http.log_note, "meeting=%s%s%s",
                    PQgetvalue(r, 0, 1), req->target[0] ? " participant=" : "", req->target);
    const char *outcome = PQgetvalue(r, 0, 0);
    if (strcmp(outcome, "ok") != 0) {
        http_job_err(&req->http, outcome_err(outcome), NULL);
        PQclear(r);
        return DB_FAILED;
    }
    *out = r;
    return DB_OK;
}

static enum db_status w_leave(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    const char *p[] = {nz(req->ref_id), nz(req->ref_code), req->http.user.id};
    PGresult *r = NULL;
    enum db_status st = outcome_row(req, c, &st_leave, p, "leave", &r);
    if (st != DB_OK)
        return st;
    bool ended = PQgetvalue(r, 0, 2)[0] == 't';
    PQclear(r);
    http_job_json(&req->http, 200, json_pack("{s:b,s:b}", "left", 1, "meeting_ended", ended));
    return DB_OK;
}

static enum db_status w_end(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    const char *p[] = {nz(req->ref_id), nz(req->ref_code), req->http.user.id};
    PGresult *r = NULL;
    enum db_status st = outcome_row(req, c, &st_end, p, "end", &r);
    if (st != DB_OK)
        return st;
    PQclear(r);
    http_job_json(&req->http, 200, json_pack("{s:s}", "status", "ENDED"));
    return DB_OK;
}

static enum db_status w_remove(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    const char *p[] = {nz(req->ref_id), nz(req->ref_code), req->http.user.id, req->target};
    PGresult *r = NULL;
    enum db_status st = outcome_row(req, c, &st_remove, p, "remove participant", &r);
    if (st != DB_OK)
        return st;
    PQclear(r);
    http_job_json(&req->http, 200,
                  json_pack("{s:b,s:s}", "removed", 1, "participant_id", req->target));
    return DB_OK;
}

static const char *const role_names[] = {"ADMIN", "PARTICIPANT", NULL};
struct role_in {
    int role;
};
static const struct http_param role_params[] = {
    {"role", HTTP_P_ENUM, HTTP_P_REQUIRED, 0, 0, offsetof(struct role_in, role), 0, HTTP_P_NOHAS,
     role_names},
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

static enum db_status w_role(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    struct role_in *in = req->http.params;
    const char *p[] = {nz(req->ref_id), nz(req->ref_code), req->http.user.id, req->target,
                       role_names[in->role]};
    PGresult *r = NULL;
    enum db_status st = outcome_row(req, c, &st_role, p, "change role", &r);
    if (st != DB_OK)
        return st;
    json_t *part = json_loads(PQgetvalue(r, 0, 2), 0, NULL);
    PQclear(r);
    if (!part) {
        http_job_err(&req->http, HTTP_E_INTERNAL, NULL);
        return DB_FAILED;
    }
    http_job_json(&req->http, 200, part);
    return DB_OK;
}

static const struct http_param no_params[] = {
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

static void h_leave(struct http_req *r)
{
    struct cp_req *req = cp_req_of(r);
    if (!parse_ref(req)) {
        http_reply_err(&req->http, HTTP_E_NO_MEETING, NULL);
        return;
    }
    cp_submit(req, w_leave);
}

static void h_end(struct http_req *r)
{
    struct cp_req *req = cp_req_of(r);
    if (!parse_ref(req)) {
        http_reply_err(&req->http, HTTP_E_NO_MEETING, NULL);
        return;
    }
    cp_submit(req, w_end);
}

static bool parse_target(struct cp_req *req)
{
    if (!parse_ref(req))
        return false;
    return ml_uuid_norm(req->http.caps[1], req->target);
}

static void h_remove(struct http_req *r)
{
    struct cp_req *req = cp_req_of(r);
    if (!parse_target(req)) {
        http_reply_err(
            &req->http,
            req->ref_id[0] || req->ref_code[0] ? HTTP_E_NO_PARTICIPANT : HTTP_E_NO_MEETING, NULL);
        return;
    }
    cp_submit(req, w_remove);
}

static void h_role(struct http_req *r)
{
    struct cp_req *req = cp_req_of(r);
    if (!parse_target(req)) {
        http_reply_err(
            &req->http,
            req->ref_id[0] || req->ref_code[0] ? HTTP_E_NO_PARTICIPANT : HTTP_E_NO_MEETING, NULL);
        return;
    }
    cp_submit(req, w_role);
}

/* ------------------------------------------------------------------ relay usage */

/* What the relay's ended allocations of a meeting used, for its ADMINs (sql/003_turn.sql's
 * ml_meeting_usage_json, which the admin API shares). */
static enum db_status w_usage(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    const char *p[] = {nz(req->ref_id), nz(req->ref_code), req->http.user.id};
    PGresult *r = NULL;
    enum db_status st = outcome_row(req, c, &st_usage, p, "meeting usage", &r);
    if (st != DB_OK)
        return st;
    req->touched[0] = 0; /* a read: the cached status stays */
    json_t *usage = json_loads(PQgetvalue(r, 0, 2), 0, NULL);
    PQclear(r);
    if (!usage) {
        http_job_err(&req->http, HTTP_E_INTERNAL, NULL);
        return DB_FAILED;
    }
    http_job_json(&req->http, 200, usage);
    return DB_OK;
}

static void h_usage(struct http_req *r)
{
    struct cp_req *req = cp_req_of(r);
    if (!parse_ref(req)) {
        http_reply_err(&req->http, HTTP_E_NO_MEETING, NULL);
        return;
    }
    cp_submit(req, w_usage);
}

/* ------------------------------------------------------------------ the expiry sweep */

/* The sweep's job: no client, no request; the credentials it revoked for the hook. */
struct sweep_job {
    struct db_job job; /* first: the pool hands it back */
    struct cp *cp;
    char **revoked;
    size_t nrevoked;
};

static enum db_status w_sweep(struct db_conn *c, struct db_job *job)
{
    struct sweep_job *j = (struct sweep_job *)job;
    PGresult *r = db_exec(c, &st_sweep, NULL);
    if (!tuples(r) || PQntuples(r) != 1)
        return sql_error(r, "expiry sweep", "sweep");
    long n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    db_words(PQgetvalue(r, 0, 1), &j->revoked, &j->nrevoked);
    if (n > 0)
        ML_INFO(SUBSYS, "%ld meeting%s expired, %zu TURN credential%s revoked", n,
                n == 1 ? "" : "s", j->nrevoked, j->nrevoked == 1 ? "" : "s");
    PQclear(r);
    return DB_OK;
}

static void sweep_done(struct db_job *job)
{
    struct sweep_job *j = (struct sweep_job *)job;
    struct cp *cp = j->cp;
    cp->sweep_running = false;
    if (job->status == DB_UNAVAILABLE)
        ML_DEBUG(SUBSYS, "sweep skipped: the database is unavailable");
    for (size_t i = 0; i < j->nrevoked; i++) {
        if (cp->revoke)
            cp->revoke(cp->revoke_arg, j->revoked[i]);
        free(j->revoked[i]);
    }
    free(j->revoked);
    free(j);
}

void cp_sweep(void *arg)
{
    struct cp *cp = arg;
    if (cp->sweep_running || !cp->pool || !db_pool_up(cp->pool))
        return;
    struct sweep_job *j = ml_xcalloc(1, sizeof *j);
    j->cp = cp;
    j->job.work = w_sweep;
    j->job.done = sweep_done;
    if (db_submit(cp->pool, &j->job) < 0) {
        free(j);
        return;
    }
    cp->sweep_running = true;
}

/* ------------------------------------------------------------------ the route table */

#define AUTH HTTP_ROUTE_AUTH
#define BODY HTTP_ROUTE_BODY
#define P(t, s) t, sizeof(struct s)

const struct http_route cp_api_routes[] = {
    {LWSHUMETH_GET, "/api/v1/health", h_health, 0, NULL, 0},
    {LWSHUMETH_GET, "/api/v1/config", cp_web_config, 0, NULL, 0},
    {LWSHUMETH_POST, "/api/v1/auth/signup", h_signup, BODY, P(signup_params, signup_in)},
    {LWSHUMETH_POST, "/api/v1/auth/login", h_login, BODY, P(login_params, login_in)},
    {LWSHUMETH_POST, "/api/v1/auth/oidc", h_oidc, BODY, P(oidc_params, oidc_in)},
    {LWSHUMETH_GET, "/api/v1/me", h_me, AUTH, NULL, 0},
    {LWSHUMETH_GET, "/api/v1/ice-servers", h_ice, AUTH, NULL, 0},
    {LWSHUMETH_POST, "/api/v1/meetings", h_create, AUTH | BODY, P(create_params, create_in)},
    {LWSHUMETH_GET, "/api/v1/meetings", h_list, AUTH, NULL, 0},
    {LWSHUMETH_GET, "/api/v1/meetings/*", h_status, AUTH, NULL, 0},
    {LWSHUMETH_POST, "/api/v1/meetings/*/join", h_join, AUTH, P(join_params, join_in)},
    {LWSHUMETH_POST, "/api/v1/meetings/*/leave", h_leave, AUTH, no_params, 1},
    {LWSHUMETH_POST, "/api/v1/meetings/*/end", h_end, AUTH, no_params, 1},
    {LWSHUMETH_GET, "/api/v1/meetings/*/usage", h_usage, AUTH, NULL, 0},
    {LWSHUMETH_DELETE, "/api/v1/meetings/*/participants/*", h_remove, AUTH, NULL, 0},
    {LWSHUMETH_PATCH, "/api/v1/meetings/*/participants/*", h_role, AUTH | BODY,
     P(role_params, role_in)},
    {0, NULL, NULL, 0, NULL, 0},
};

/* ------------------------------------------------------------------ TURN credentials */

int cp_credential(struct cp *cp, const char *cred_user, long long expires_s, char *user,
                  size_t ulen, char *pass, size_t plen)
{
    const char *cred_id = strchr(cred_user, ':');
    char secret[512];
    cp_turn_secret(cp, secret, sizeof secret);
    int rc =
        cred_id ? turn_rest_credential(secret, cred_id + 1, expires_s, user, ulen, pass, plen) : -1;
    ml_wipe(secret, sizeof secret);
    if (rc < 0 || strcmp(user, cred_user) != 0) {
        ml_wipe(pass, plen);
        return -1;
    }
    return 0;
}

char *cp_ice_json(struct cp *cp, const char *cred_user, long long expires_s)
{
    char user[128], pass[64];
    if (cp_credential(cp, cred_user, expires_s, user, sizeof user, pass, sizeof pass) < 0)
        return NULL;
    json_t *ice = ice_servers(cp, user, pass); /* what a join answers */
    char *text = json_dumps(ice, JSON_COMPACT);
    json_decref(ice);
    ml_wipe(pass, sizeof pass);
    return text;
}
