/* Accounts and their tokens: sign-up and password login (argon2id on a database thread, the
 * failed-login limits), OpenID Connect sign-in, who one is, TURN credentials for an account,
 * and the access tokens all of them answer with; the service's authentication of them. */
#include "config.h"

#include "control/cp-int.h"

#include <argon2.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SUBSYS "api"

/* ------------------------------------------------------------------ statements */

/* Each statement's result columns are named by an enum beside its text; its last member, the
 * count, is the statement's ncols (checked against the result in --enable-devel builds). */
enum { SIGNUP_ID, SIGNUP_USER, SIGNUP__COLS };
static const struct db_stmt st_signup = {
    "signup",
    "WITH u AS (INSERT INTO users (email, display_name, password_hash, signup_method) "
    "VALUES ($1, $2, $3, 'password') ON CONFLICT DO NOTHING RETURNING *) "
    "SELECT u.id, json_build_object('id', u.id, 'email', u.email, 'display_name', "
    "u.display_name, 'signup_method', u.signup_method, 'created_at', u.created_at) FROM u",
    3, SIGNUP__COLS};
enum { LOGIN_ID, LOGIN_HASH, LOGIN_NAME, LOGIN_USER, LOGIN__COLS };
static const struct db_stmt st_login = {
    "login",
    "SELECT u.id, u.password_hash, u.display_name, json_build_object('id', u.id, 'email', "
    "u.email, 'display_name', u.display_name, 'signup_method', u.signup_method, 'created_at', "
    "u.created_at) FROM users u WHERE lower(u.email) = lower($1)",
    1, LOGIN__COLS};
enum { OIDC_OUTCOME, OIDC_USER_ID, OIDC_NAME, OIDC_USER, OIDC__COLS };
static const struct db_stmt st_oidc = {
    "oidc", "SELECT outcome, user_id, display_name, user_json FROM ml_oidc_user($1, $2, $3, $4)", 4,
    OIDC__COLS};
static const struct db_stmt st_me = {
    "me",
    "SELECT json_build_object('id', u.id, 'email', u.email, 'display_name', u.display_name, "
    "'signup_method', u.signup_method, 'oidc_issuer', u.oidc_issuer, 'created_at', "
    "u.created_at) FROM users u WHERE u.id = $1",
    1, 1};
static const struct db_stmt st_ice = {
    "ice",
    "INSERT INTO turn_credentials (user_id, username, expires_at) "
    "SELECT u.id, $2, to_timestamp($3::bigint) FROM users u WHERE u.id = $1 RETURNING id",
    3, 1};

/* ------------------------------------------------------------------ access tokens */

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
    /* a client sends the same token with every request: its signature is checked once */
    if (cp_token_recall(cp, tok, ex.now, ex.leeway_s, &req->user))
        return HTTP_OK;
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
    bool exp_ok = errno == 0;
    jwt_free(j);
    if (exp_ok)
        cp_token_remember(cp, tok, exp, &req->user);
    return HTTP_OK;
}

/* ------------------------------------------------------------------ sign-up and login */

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

int cp_secret_hash(struct cp *cp, char *secret, char *hash, size_t len)
{
    uint8_t salt[16];
    ml_random(salt, sizeof salt);
    int rc = argon2id_hash_encoded((uint32_t)cp->auth.argon2_iterations,
                                   (uint32_t)cp->auth.argon2_memory_kib, 1, secret, strlen(secret),
                                   salt, sizeof salt, 32, hash, len);
    ml_wipe(secret, strlen(secret));
    return rc;
}

static enum db_status w_signup(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    struct cp *cp = cp_of(req);
    struct signup_in *in = req->http.params;
    char hash[CP_HASH_BYTES];
    int rc = cp_secret_hash(cp, in->password, hash, sizeof hash);
    if (rc != ARGON2_OK) {
        ML_ERROR(SUBSYS, "argon2id failed (rid=%s): %s", req->http.request_id,
                 argon2_error_message(rc));
        http_job_err(&req->http, HTTP_E_INTERNAL, NULL);
        return DB_FAILED;
    }
    const char *p[] = {in->email, in->display_name, hash};
    PGresult *r = db_exec(c, &st_signup, p);
    if (!cp_tuples(r))
        return cp_sql_failed(req, r, "signup");
    if (PQntuples(r) == 0) {
        PQclear(r);
        http_job_err(&req->http, HTTP_E_EMAIL_TAKEN, NULL);
        return DB_FAILED;
    }
    token_answer(cp, req, 201, PQgetvalue(r, 0, SIGNUP_USER), PQgetvalue(r, 0, SIGNUP_ID),
                 in->display_name);
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
    if (!cp_tuples(r)) {
        ml_wipe(in->password, sizeof in->password);
        return cp_sql_failed(req, r, "login");
    }
    bool found = PQntuples(r) == 1 && !PQgetisnull(r, 0, LOGIN_HASH);
    /* an unknown account costs the same hash as a known one */
    const char *hash = found ? PQgetvalue(r, 0, LOGIN_HASH) : cp->dummy_hash;
    bool ok = argon2id_verify(hash, in->password, strlen(in->password)) == ARGON2_OK && found;
    ml_wipe(in->password, sizeof in->password);
    if (!ok) {
        PQclear(r);
        req->login_failed = true;
        http_job_err(&req->http, HTTP_E_BAD_CREDENTIALS, NULL);
        return DB_FAILED;
    }
    token_answer(cp, req, 200, PQgetvalue(r, 0, LOGIN_USER), PQgetvalue(r, 0, LOGIN_ID),
                 PQgetvalue(r, 0, LOGIN_NAME));
    PQclear(r);
    return DB_OK;
}

/* The limits' keys: the account (its e-mail, case folded), the client address, and the pair.
 * Only the pair and the address refuse (429): failures a stranger causes from elsewhere never
 * refuse the owner; they slow the account down instead (login_slowdown_ms). */
struct login_keys {
    char acct[300], addr[96], pair[400];
};

static void login_keys(struct cp_req *req, struct login_keys *k)
{
    struct login_in *in = req->http.params;
    ml_snprintf(k->acct, sizeof k->acct, "acct:%s", in->email);
    for (char *p = k->acct; *p; p++) /* the address's case does not make another account */
        *p = (char)tolower((unsigned char)*p);
    ml_snprintf(k->addr, sizeof k->addr, "addr:%s", req->http.peer);
    ml_snprintf(k->pair, sizeof k->pair, "pair:%s|%s", req->http.peer, k->acct + 5);
}

/* The wait before an attempt on an account with login-slowdown-after failures or more in the
 * window: 250 ms, doubling with each further failure, up to login-slowdown-max. It bounds how
 * fast guesses spread over many addresses can come (each connection waits), and never refuses
 * the owner's right password. */
static int64_t login_slowdown_ms(struct cp *cp, const struct login_keys *k)
{
    unsigned f = cp_limiter_failures(cp->limiter, k->acct, cp->auth.login_window_s);
    if (f < (unsigned long long)cp->auth.login_slowdown_after)
        return 0;
    unsigned steps = f - (unsigned)cp->auth.login_slowdown_after;
    int64_t max_ms = cp->auth.login_slowdown_max_s * 1000;
    int64_t ms = steps >= 20 ? max_ms : 250LL << steps;
    return ms < max_ms ? ms : max_ms;
}

bool cp_signin_blocked(struct cp *cp, const char *pair, const char *addr, unsigned *retry_s)
{
    return cp_limiter_blocked(cp->limiter, pair, cp->auth.login_max_failures,
                              cp->auth.login_window_s, retry_s) ||
           cp_limiter_blocked(cp->limiter, addr, cp->auth.login_max_failures_addr,
                              cp->auth.login_window_s, retry_s);
}

void cp_signin_failed(struct cp *cp, const char *pair, const char *addr)
{
    cp_limiter_fail(cp->limiter, addr, cp->auth.login_window_s);
    cp_limiter_fail(cp->limiter, pair, cp->auth.login_window_s);
}

static void login_done(struct cp *cp, struct cp_req *req)
{
    struct login_keys k;
    login_keys(req, &k);
    if (req->login_failed) {
        cp_limiter_fail(cp->limiter, k.acct, cp->auth.login_window_s);
        cp_signin_failed(cp, k.pair, k.addr);
        ML_LOG_LIMITED(ML_LOG_NOTICE, SUBSYS, "failed login from %s (rid=%s)", req->http.peer,
                       req->http.request_id);
    } else if (req->http.err == HTTP_OK) {
        /* the account's own count stays: an attack on it goes on while its owner signs in */
        cp_limiter_reset(cp->limiter, k.pair);
    }
}

static void login_check(struct cp_req *req)
{
    req->on_done = login_done;
    cp_submit(req, w_login);
}

/* A login waiting out its account's slowdown: a timer on the server's loop, then the check. */
struct cp_login_delay {
    struct http_done done; /* first: posted back to the server thread when the timer fires */
    lws_sorted_usec_list_t sul;
    struct cp *cp;
    struct cp_login_delay *prev, *next; /* cp->login_delays */
};

static void delay_unlink(struct cp_login_delay *d)
{
    ML_DLIST_UNLINK(d->cp->login_delays, d);
}

static void delay_go(struct http_done *done)
{
    login_check(cp_req_of(done->req)); /* only while the client is there */
}

static void delay_free(struct http_done *done)
{
    struct cp_req *req = cp_req_of(done->req);
    if (!http_req_live(&req->http)) { /* it will not be checked: forget the password now */
        struct login_in *in = req->http.params;
        ml_wipe(in->password, sizeof in->password);
    }
    free(done);
}

static void delay_fired(lws_sorted_usec_list_t *sul)
{
    struct cp_login_delay *d = lws_container_of(sul, struct cp_login_delay, sul);
    delay_unlink(d);
    http_post(&d->done); /* runs delay_go on this thread, or frees d if the client left */
}

void cp_login_delays_release(struct cp *cp)
{
    while (cp->login_delays) {
        struct cp_login_delay *d = cp->login_delays;
        lws_sul_cancel(&d->sul);
        delay_unlink(d);
        http_post(&d->done);
    }
}

static void h_login(struct http_req *r)
{
    struct cp_req *req = cp_req_of(r);
    struct cp *cp = cp_of(req);
    struct login_keys k;
    unsigned retry = 0;
    login_keys(req, &k);
    if (cp_signin_blocked(cp, k.pair, k.addr, &retry)) {
        struct login_in *in = req->http.params;
        ml_wipe(in->password, sizeof in->password);
        req->http.retry_after_s = retry;
        http_reply_err(&req->http, HTTP_E_RATE_LIMITED, NULL);
        return;
    }
    int64_t wait_ms = login_slowdown_ms(cp, &k);
    if (wait_ms == 0) {
        login_check(req);
        return;
    }
    struct cp_login_delay *d = ml_xcalloc(1, sizeof *d);
    d->cp = cp;
    d->done.req = &req->http;
    d->done.fn = delay_go;
    d->done.free = delay_free;
    ML_DLIST_PUSH(cp->login_delays, d);
    http_hold(&req->http);
    ML_LOG_LIMITED(ML_LOG_INFO, SUBSYS, "login from %s waits %lld ms: its account is slowed down",
                   req->http.peer, (long long)wait_ms);
    lws_sul_schedule(lws_get_context(req->http.wsi), 0, &d->sul, delay_fired,
                     (lws_usec_t)wait_ms * 1000);
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
    enum http_err e = cp_jwks_src_verify(cp->jwks, in->id_token, &ex, &j);
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
    if (!cp_tuples(r) || PQntuples(r) != 1)
        return cp_sql_failed(req, r, "oidc sign-in");
    const char *outcome = PQgetvalue(r, 0, OIDC_OUTCOME);
    if (!strcmp(outcome, "conflict") || PQgetisnull(r, 0, OIDC_USER_ID)) {
        PQclear(r);
        http_job_err(&req->http, HTTP_E_ACCOUNT_CONFLICT, NULL);
        return DB_FAILED;
    }
    ml_snprintf(req->http.log_note, sizeof req->http.log_note, "oidc=%s", outcome);
    token_answer(cp, req, !strcmp(outcome, "created") ? 201 : 200, PQgetvalue(r, 0, OIDC_USER),
                 PQgetvalue(r, 0, OIDC_USER_ID), PQgetvalue(r, 0, OIDC_NAME));
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

/* ------------------------------------------------------------------ who one is */

static enum db_status w_me(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    const char *p[] = {req->http.user.id};
    return cp_json_row(req, c, &st_me, p, HTTP_E_INVALID_TOKEN, "me");
}

static void h_me(struct http_req *r)
{
    struct cp_req *req = cp_req_of(r);
    cp_submit(req, w_me);
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
    if (!cp_tuples(r))
        return cp_sql_failed(req, r, "ice-servers");
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
                            "iceServers", cp_ice_servers(cp, user, pass)));
    return DB_OK;
}

static void h_ice(struct http_req *r)
{
    struct cp_req *req = cp_req_of(r);
    cp_submit(req, w_ice);
}

/* ------------------------------------------------------------------ routes */

#define AUTH HTTP_ROUTE_AUTH
#define BODY HTTP_ROUTE_BODY
#define LOGIN HTTP_ROUTE_LOGIN
#define P(t, s) t, sizeof(struct s)

const struct http_route cp_account_routes[] = {
    {LWSHUMETH_POST, "/api/v1/auth/signup", h_signup, BODY | LOGIN, P(signup_params, signup_in)},
    {LWSHUMETH_POST, "/api/v1/auth/login", h_login, BODY | LOGIN, P(login_params, login_in)},
    {LWSHUMETH_POST, "/api/v1/auth/oidc", h_oidc, BODY | LOGIN, P(oidc_params, oidc_in)},
    {LWSHUMETH_GET, "/api/v1/me", h_me, AUTH, NULL, 0},
    {LWSHUMETH_GET, "/api/v1/ice-servers", h_ice, AUTH, NULL, 0},
    {0, NULL, NULL, 0, NULL, 0},
};
