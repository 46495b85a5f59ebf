/* Participants: joining a meeting (a TURN credential and a signaling token in the answer),
 * leaving it, an ADMIN removing one or changing one's role; the TURN credentials and iceServers
 * a join hands out (also to signaling's sessions). */
#include "config.h"

#include "control/cp-int.h"

#include <argon2.h>
#include <stdlib.h>
#include <string.h>

#define SUBSYS "api"

/* seconds a network check's probe credential lasts: the check takes a few */
#define CP_PROBE_TTL_S 60
/* A check asks once per join; a client asking in a loop gets 429 instead of filling the
 * credential table: at most CP_PROBE_MAX per account within CP_PROBE_WINDOW_S. */
#define CP_PROBE_MAX 30
#define CP_PROBE_WINDOW_S 60

/* ------------------------------------------------------------------ statements */

/* Each statement's result columns are named by an enum beside its text; its last member, the
 * count, is the statement's ncols (checked against the result in --enable-devel builds). */
enum {
    JOIN_OUTCOME,
    JOIN_MEETING,
    JOIN_CODE,
    JOIN_MEETING_EXPIRES, /* seconds since the epoch */
    JOIN_PARTICIPANT,
    JOIN_ROLE,
    JOIN_NAME,
    JOIN_CRED_USER,    /* the TURN username ml_join recorded */
    JOIN_CRED_EXPIRES, /* seconds since the epoch */
    JOIN_REJOINED,
    JOIN_REVOKED,  /* the participant's earlier credentials */
    JOIN_PASSCODE, /* outcome 'passcode': the meeting's passcode hash, to check here */
    JOIN__COLS
};
/* $6: the passcode was checked already. When it was not, and the meeting has one and the
 * joiner is not exempt (its host; present and admitted already), ml_join answers 'passcode'
 * with the hash before anything else (sql/013_join_cost.sql): a join without a passcode is one
 * round trip. */
static const struct db_stmt st_join = {
    "join",
    "SELECT outcome, meeting_id, meeting_code, meeting_expires, participant_id, role, "
    "display_name, cred_username, cred_expires, rejoined, revoked, passcode_hash "
    "FROM ml_join($1, $2, $3, $4, $5, $6)",
    6, JOIN__COLS};
/* An ADMIN admits or denies one in the lobby (CP_OUT_*). */
static const struct db_stmt st_lobby = {
    "lobby", "SELECT outcome, meeting_id, revoked FROM ml_lobby_decide($1, $2, $3, $4, $5)", 5,
    CP_OUT_OWN + 1};
/* ml_leave, ml_remove and ml_set_role answer as the other meeting functions (CP_OUT_*) */
enum { LEAVE_ENDED = CP_OUT_OWN, LEAVE__COLS = CP_OUT_OWN + 2 };
/* The verdict of the lobby's network check (sql/007_network_check.sql), when the join says it;
 * a rejoin without it (a credential renewal) keeps the earlier one. */
static const struct db_stmt st_network = {
    "join_network", "UPDATE participants SET network = $2 WHERE id = $1", 2, 0};
/* A probe credential for the network check (ml_network_check answers an outcome word). */
static const struct db_stmt st_probe = {"network_check",
                                        "SELECT ml_network_check($1, $2, $3, $4, $5)", 5, 1};
static const struct db_stmt st_leave = {
    "leave", "SELECT outcome, meeting_id, meeting_ended, revoked FROM ml_leave($1, $2, $3)", 3,
    LEAVE__COLS};
static const struct db_stmt st_remove = {
    "remove", "SELECT outcome, meeting_id, revoked FROM ml_remove($1, $2, $3, $4)", 4,
    CP_OUT_OWN + 1};
enum { ROLE_PARTICIPANT = CP_OUT_OWN, ROLE__COLS = CP_OUT_OWN + 2 };
static const struct db_stmt st_role = {
    "role", "SELECT outcome, meeting_id, participant, revoked FROM ml_set_role($1, $2, $3, $4, $5)",
    5, ROLE__COLS};

/* ------------------------------------------------------------------ join and leave */

bool cp_ice_uri_ok(const char *s, size_t n)
{
    static const char *const schemes[] = {"stun:", "stuns:", "turn:", "turns:"};
    if (n > CP_ICE_URI_MAX)
        return false;
    size_t host = 0;
    for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++) {
        size_t k = strlen(schemes[i]);
        if (n > k && !memcmp(s, schemes[i], k))
            host = k;
    }
    if (!host || s[host] == ':' || s[host] == '?')
        return false; /* no scheme, or no host */
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~' || s[i] == '"' || s[i] == '\\')
            return false;
    return true;
}

json_t *cp_ice_from(const json_t *uris, const char *user, const char *pass)
{
    json_t *stun = json_array(), *turn = json_array();
    size_t i;
    json_t *u;
    json_array_foreach(uris, i, u)
    {
        const char *s = json_string_value(u);
        if (s)
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

json_t *cp_ice_servers(struct cp *cp, const char *user, const char *pass)
{
    return cp_ice_from(cp->turn_uris, user, pass);
}

/* The network check's verdicts, as sql/007_network_check.sql allows them: the best way to the
 * relay that worked, none, or no check made. */
static const char *const network_names[] = {"udp", "tcp", "tls", "none", "unchecked", NULL};

struct join_in {
    char display_name[404];
    bool has_display_name;
    int network;
    bool has_network;
    char passcode[CP_PASSCODE_BYTES];
    bool has_passcode;
};

static const struct http_param join_params[] = {
    {"display_name", HTTP_P_STRING, HTTP_P_NO_CTRL | HTTP_P_TRIM, 1, 100,
     offsetof(struct join_in, display_name), 404, offsetof(struct join_in, has_display_name), NULL},
    {"network", HTTP_P_ENUM, 0, 0, 0, offsetof(struct join_in, network), 0,
     offsetof(struct join_in, has_network), network_names},
    {"passcode", HTTP_P_STRING, 0, 1, CP_PASSCODE_MAX, offsetof(struct join_in, passcode),
     CP_PASSCODE_BYTES, offsetof(struct join_in, has_passcode), NULL},
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

/* The meeting's passcode, when ml_join asked for it (outcome 'passcode', the hash in r, which
 * is cleared here): DB_OK when the joiner gave the right one (ml_join is then called again),
 * else the request's error (a wrong one marks the failure for the limits). The passcode is
 * wiped either way. */
static enum db_status check_passcode(struct cp_req *req, PGresult *r, struct join_in *in)
{
    enum db_status st = DB_OK;
    if (!in->has_passcode) {
        http_job_err(&req->http, HTTP_E_PASSCODE_REQUIRED, NULL);
        st = DB_FAILED;
    } else if (PQgetisnull(r, 0, JOIN_PASSCODE) ||
               argon2id_verify(PQgetvalue(r, 0, JOIN_PASSCODE), in->passcode,
                               strlen(in->passcode)) != ARGON2_OK) {
        req->login_failed = true;
        http_job_err(&req->http, HTTP_E_BAD_PASSCODE, NULL);
        st = DB_FAILED;
    }
    PQclear(r);
    ml_wipe(in->passcode, sizeof in->passcode);
    return st;
}

static char *signaling_token(struct cp *cp, const char *sub, const char *mid, const char *pid,
                             const char *role, int64_t now, long long exp);

/* The answer to a joiner the lobby holds (202): who it is and a signaling token to hear the
 * ADMINs' decision with, but no TURN credential and no iceServers. */
static enum db_status waiting_answer(struct cp_req *req, PGresult *r, const char *mid,
                                     const char *pid)
{
    struct cp *cp = cp_of(req);
    long long m_exp = strtoll(PQgetvalue(r, 0, JOIN_MEETING_EXPIRES), NULL, 10);
    int64_t now = ml_wall_s();
    long long s_exp = now + cp->auth.signaling_token_lifetime_s;
    if (s_exp > m_exp)
        s_exp = m_exp;
    char *sig =
        signaling_token(cp, req->http.user.id, mid, pid, PQgetvalue(r, 0, JOIN_ROLE), now, s_exp);
    if (!sig) {
        PQclear(r);
        http_job_err(&req->http, HTTP_E_INTERNAL, NULL);
        return DB_FAILED;
    }
    json_t *o = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:s,s:b,s:I,s:s,s:I}", "state", "waiting", "meeting_id", mid,
        "meeting_code", PQgetvalue(r, 0, JOIN_CODE), "participant_id", pid, "role",
        PQgetvalue(r, 0, JOIN_ROLE), "display_name", PQgetvalue(r, 0, JOIN_NAME), "rejoined",
        PQgetvalue(r, 0, JOIN_REJOINED)[0] == 't', "meeting_expires_at", (json_int_t)m_exp,
        "signaling_token", sig, "signaling_token_expires_at", (json_int_t)s_exp);
    free(sig);
    ml_snprintf(req->http.log_note, sizeof req->http.log_note, "meeting=%s participant=%s waiting",
                mid, pid);
    PQclear(r);
    http_job_json(&req->http, 202, o);
    return DB_OK;
}

/* The join's answer is at most this long: a few hundred bytes and the iceServers of two relay
 * nodes of at most 16 URIs each. */
#define CP_JOIN_ANSWER_MAX (64 * 1024)

/* Appends prefix (JSON text) and s as a JSON string, as jansson writes it (ml_buf_json_str).
 * 0, or -1 when b is full or s is not UTF-8 (the database's text is). */
static int jw_str(struct ml_buf *b, const char *prefix, const char *s)
{
    return ml_buf_str(b, prefix) == 0 && ml_buf_json_str(b, s) == 0 ? 0 : -1;
}

/* The signaling token of a participant (aud meetlite-signaling, bound to its meeting and
 * itself), its claims written here rather than packed and dumped by jansson. NULL on failure. */
static char *signaling_token(struct cp *cp, const char *sub, const char *mid, const char *pid,
                             const char *role, int64_t now, long long exp)
{
    struct ml_buf b = ML_BUF_INIT(4096);
    bool ok = jw_str(&b, "{\"iss\":", cp->auth.jwt_issuer) == 0 &&
              ml_buf_str(&b, ",\"aud\":\"meetlite-signaling\"") == 0 &&
              jw_str(&b, ",\"sub\":", sub) == 0 && jw_str(&b, ",\"mid\":", mid) == 0 &&
              jw_str(&b, ",\"pid\":", pid) == 0 && jw_str(&b, ",\"role\":", role) == 0 &&
              ml_buf_printf(&b, ",\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld}", (long long)now,
                            (long long)now, exp) == 0;
    char *tok = ok ? cp_jwt_sign_text(&cp->key, b.p) : NULL;
    ml_buf_free(&b);
    return tok;
}

/* Appends prefix and v dumped by jansson (compact). 0, or -1. */
static int jw_json(struct ml_buf *b, const char *prefix, const json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    int rc = s && ml_buf_str(b, prefix) == 0 && ml_buf_str(b, s) == 0 ? 0 : -1;
    free(s);
    return rc;
}

/* Appends prefix and an array of strings (the URIs), as jansson writes it. 0, or -1. */
static int jw_strs(struct ml_buf *b, const char *prefix, const json_t *a)
{
    if (ml_buf_str(b, prefix) < 0 || ml_buf_str(b, "[") < 0)
        return -1;
    size_t i;
    const json_t *u;
    json_array_foreach(a, i, u)
    {
        if ((i && ml_buf_str(b, ",") < 0) || !json_is_string(u) ||
            ml_buf_json_str(b, json_string_value(u)) < 0)
            return -1;
    }
    return ml_buf_str(b, "]");
}

/* Appends prefix and the iceServers cp_ice_from() would build of uris, user and pass, written
 * without building them: one entry for the stun: URIs, one with the credential for the turn:
 * and turns: ones. 0, or -1. */
static int jw_ice(struct ml_buf *b, const char *prefix, const json_t *uris, const char *user,
                  const char *pass)
{
    if (ml_buf_str(b, prefix) < 0 || ml_buf_str(b, "[") < 0)
        return -1;
    bool any = false;
    for (int turn = 0; turn < 2; turn++) {
        size_t i, n = 0;
        const json_t *u;
        json_array_foreach(uris, i, u)
        {
            const char *v = json_string_value(u);
            if (!v || (strncmp(v, "stun", 4) != 0) != turn)
                continue;
            /* the first URI of an entry opens it (after the stun: entry, if any) */
            const char *before = ",";
            if (!n)
                before = any ? ",{\"urls\":[" : "{\"urls\":[";
            if (ml_buf_str(b, before) < 0 || ml_buf_json_str(b, v) < 0)
                return -1;
            n++;
        }
        if (!n)
            continue;
        any = true;
        if (ml_buf_str(b, "]") < 0 ||
            (turn &&
             (jw_str(b, ",\"username\":", user) < 0 || jw_str(b, ",\"credential\":", pass) < 0)) ||
            ml_buf_str(b, "}") < 0)
            return -1;
    }
    return ml_buf_str(b, "]");
}

static enum db_status w_join(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    struct cp *cp = cp_of(req);
    struct join_in *in = req->http.params;
    char ttl[24];
    ml_snprintf(ttl, sizeof ttl, "%lld", cp->cfg.credential_ttl_s);
    const char *p[] = {cp_nz(req->ref_id),
                       cp_nz(req->ref_code),
                       req->http.user.id,
                       in->has_display_name ? in->display_name : NULL,
                       ttl,
                       "f"};
    PGresult *r = db_exec(c, &st_join, p);
    if (cp_tuples(r) && PQntuples(r) == 1 && !strcmp(PQgetvalue(r, 0, JOIN_OUTCOME), "passcode")) {
        enum db_status pst = check_passcode(req, r, in);
        if (pst != DB_OK)
            return pst;
        p[5] = "t";
        r = db_exec(c, &st_join, p);
    }
    ml_wipe(in->passcode, sizeof in->passcode);
    if (!cp_tuples(r) || PQntuples(r) != 1)
        return cp_sql_failed(req, r, "join");
    cp_take_revoked(req, PQgetvalue(r, 0, JOIN_REVOKED));
    if (!PQgetisnull(r, 0, JOIN_MEETING))
        ml_strlcpy(req->touched, PQgetvalue(r, 0, JOIN_MEETING), sizeof req->touched);
    const char *outcome = PQgetvalue(r, 0, JOIN_OUTCOME);
    if (!strcmp(outcome, "waiting"))
        return waiting_answer(req, r, PQgetvalue(r, 0, JOIN_MEETING),
                              PQgetvalue(r, 0, JOIN_PARTICIPANT));
    if (strcmp(outcome, "ok") != 0) {
        if (!PQgetisnull(r, 0, JOIN_MEETING))
            ml_snprintf(req->http.log_note, sizeof req->http.log_note, "meeting=%s",
                        PQgetvalue(r, 0, JOIN_MEETING));
        http_job_err(&req->http, http_err_outcome(outcome, HTTP_E_NO_MEETING), NULL);
        PQclear(r);
        return DB_FAILED;
    }
    const char *mid = PQgetvalue(r, 0, JOIN_MEETING), *pid = PQgetvalue(r, 0, JOIN_PARTICIPANT);
    const char *role = PQgetvalue(r, 0, JOIN_ROLE);
    if (in->has_network) {
        /* before the signaling session opens, whose roster reads it */
        const char *np[] = {pid, network_names[in->network]};
        PGresult *nr = db_exec(c, &st_network, np);
        if (PQresultStatus(nr) != PGRES_COMMAND_OK) {
            PQclear(r);
            return cp_sql_failed(req, nr, "join: storing the network check");
        }
        PQclear(nr);
    }
    long long m_exp = strtoll(PQgetvalue(r, 0, JOIN_MEETING_EXPIRES), NULL, 10);
    long long c_exp = strtoll(PQgetvalue(r, 0, JOIN_CRED_EXPIRES), NULL, 10);
    /* The credential id is "<meeting tag>.<participant id>" (sql/003_turn.sql): a stateless
     * relay can tell an allocation's meeting from it, and the tag gives away nothing that
     * joins it. The username ml_join recorded says which id; the password is signed here. */
    char user[128], pass[64];
    if (cp_credential(cp, PQgetvalue(r, 0, JOIN_CRED_USER), c_exp, user, sizeof user, pass,
                      sizeof pass) < 0) {
        PQclear(r);
        http_job_err(&req->http, HTTP_E_INTERNAL, "cannot make the TURN credential");
        return DB_FAILED;
    }
    int64_t now = ml_wall_s();
    long long s_exp = now + cp->auth.signaling_token_lifetime_s;
    if (s_exp > m_exp)
        s_exp = m_exp;
    char *sig = signaling_token(cp, req->http.user.id, mid, pid, role, now, s_exp);
    if (!sig) {
        PQclear(r);
        http_job_err(&req->http, HTTP_E_INTERNAL, NULL);
        return DB_FAILED;
    }
    long long ttl_left = c_exp - now > 0 ? c_exp - now : 0;
    /* the placement (NULL: the static URIs); the iceServers are written from its URIs below,
     * never built (jansson's objects and dump cost a join ~30k instructions, callgrind) */
    json_t *relay = cp_fleet_place(cp, c, mid, pid, user, pass);
    const json_t *uris = cp_fleet_uris(cp, relay);
    /* The answer is written here rather than packed and dumped by jansson, whose dump of it
     * cost a join 100k instructions (callgrind); the relay's placement, JSON already, is dumped
     * on its own. */
    struct ml_buf b = ML_BUF_INIT(CP_JOIN_ANSWER_MAX);
    bool ok =
        jw_str(&b, "{\"meeting_id\":", mid) == 0 &&
        jw_str(&b, ",\"meeting_code\":", PQgetvalue(r, 0, JOIN_CODE)) == 0 &&
        jw_str(&b, ",\"participant_id\":", pid) == 0 && jw_str(&b, ",\"role\":", role) == 0 &&
        jw_str(&b, ",\"display_name\":", PQgetvalue(r, 0, JOIN_NAME)) == 0 &&
        ml_buf_printf(&b, ",\"rejoined\":%s,\"meeting_expires_at\":%lld",
                      PQgetvalue(r, 0, JOIN_REJOINED)[0] == 't' ? "true" : "false", m_exp) == 0 &&
        jw_str(&b, ",\"signaling_token\":", sig) == 0 &&
        ml_buf_printf(&b, ",\"signaling_token_expires_at\":%lld", s_exp) == 0 &&
        jw_ice(&b, ",\"iceServers\":", uris, user, pass) == 0 &&
        jw_str(&b, ",\"turn\":{\"username\":", user) == 0 &&
        jw_str(&b, ",\"password\":", pass) == 0 &&
        ml_buf_printf(&b, ",\"ttl\":%lld,\"expires_at\":%lld", ttl_left, c_exp) == 0 &&
        jw_strs(&b, ",\"uris\":", uris) == 0 && ml_buf_str(&b, "}") == 0 &&
        (!relay || jw_json(&b, ",\"relay\":", relay) == 0) && ml_buf_str(&b, "}") == 0;
    json_decref(relay);
    free(sig);
    ml_wipe(pass, sizeof pass);
    if (ok)
        ml_snprintf(req->http.log_note, sizeof req->http.log_note, "meeting=%s participant=%s", mid,
                    pid);
    PQclear(r);
    if (!ok) {
        ml_buf_free(&b);
        http_job_err(&req->http, HTTP_E_INTERNAL, NULL);
        return DB_FAILED;
    }
    http_job_body(&req->http, 200, b.p, b.len);
    ml_wipe(b.p, b.len); /* it held the TURN password and the signaling token */
    ml_buf_free(&b);
    return DB_OK;
}

/* A wrong passcode counts as a failed sign-in does (control.login-*): per account and address
 * (the pair refuses at control.login-max-failures) and per address (at
 * control.login-max-failures-addr), in the same table; a right one clears the pair. */
struct passcode_keys {
    char addr[96], pair[160];
};

static void passcode_keys(struct cp_req *req, struct passcode_keys *k)
{
    ml_snprintf(k->addr, sizeof k->addr, "addr:%s", req->http.peer);
    ml_snprintf(k->pair, sizeof k->pair, "passcode:%s|%s", req->http.peer, req->http.user.id);
}

static bool passcode_blocked(struct cp_req *req)
{
    struct cp *cp = cp_of(req);
    struct passcode_keys k;
    unsigned retry = 0;
    passcode_keys(req, &k);
    if (cp_signin_blocked(cp, k.pair, k.addr, &retry)) {
        req->http.retry_after_s = retry;
        return true;
    }
    return false;
}

static void passcode_done(struct cp *cp, struct cp_req *req)
{
    struct passcode_keys k;
    passcode_keys(req, &k);
    if (req->login_failed) {
        cp_signin_failed(cp, k.pair, k.addr);
        ML_LOG_LIMITED(ML_LOG_NOTICE, SUBSYS, "wrong meeting passcode from %s (rid=%s)",
                       req->http.peer, req->http.request_id);
    } else if (req->http.err == HTTP_OK) {
        cp_limiter_reset(cp->limiter, k.pair);
    }
}

static void h_join(struct http_req *r)
{
    struct cp_req *req = cp_req_of(r);
    struct cp *cp = cp_of(req);
    if (__atomic_load_n(&cp->draining, __ATOMIC_RELAXED)) { /* admin drain mode (#8) */
        http_reply_err(&req->http, HTTP_E_DRAINING, NULL);
        return;
    }
    if (!cp_parse_ref(req)) {
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
    /* Only a join that gives a passcode can guess one: the others (nearly all, renewals
     * included) skip the limiter's three keyed lookups, before and after. */
    if (in->has_passcode) {
        if (passcode_blocked(req)) {
            ml_wipe(in->passcode, sizeof in->passcode);
            http_reply_err(&req->http, HTTP_E_RATE_LIMITED,
                           "too many wrong passcodes; try again later");
            return;
        }
        req->on_done = passcode_done;
    }
    cp_submit(req, w_join);
}

static enum db_status w_leave(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    const char *p[] = {cp_nz(req->ref_id), cp_nz(req->ref_code), req->http.user.id};
    PGresult *r = NULL;
    enum db_status st = cp_outcome_row(req, c, &st_leave, p, "leave", &r);
    if (st != DB_OK)
        return st;
    bool ended = PQgetvalue(r, 0, LEAVE_ENDED)[0] == 't';
    PQclear(r);
    http_job_json(&req->http, 200, json_pack("{s:b,s:b}", "left", 1, "meeting_ended", ended));
    return DB_OK;
}

static void h_leave(struct http_req *r)
{
    cp_on_meeting(r, w_leave);
}

/* ------------------------------------------------------------------ the network check */

/* POST .../network-check: iceServers with a probe credential of CP_PROBE_TTL_S, for the lobby's
 * test of which ways reach the relay before joining. Given to whoever may join now (as the
 * join decides: an active meeting, not removed from it), and no more: the credential belongs
 * to no meeting (as GET /ice-servers'), is recorded, and lasts only for the check. No
 * participant is made, so the others see nothing of it. */
static enum db_status w_network_check(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    struct cp *cp = cp_of(req);
    char secret[512], user[128], pass[64], exp_s[24];
    int64_t exp = ml_wall_s() + CP_PROBE_TTL_S;
    cp_turn_secret(cp, secret, sizeof secret);
    int rc =
        turn_rest_credential(secret, req->http.user.id, exp, user, sizeof user, pass, sizeof pass);
    ml_wipe(secret, sizeof secret);
    if (rc < 0) {
        http_job_err(&req->http, HTTP_E_INTERNAL, NULL);
        return DB_FAILED;
    }
    ml_snprintf(exp_s, sizeof exp_s, "%lld", (long long)exp);
    const char *p[] = {cp_nz(req->ref_id), cp_nz(req->ref_code), req->http.user.id, user, exp_s};
    PGresult *r = db_exec(c, &st_probe, p);
    if (!cp_tuples(r) || PQntuples(r) != 1) {
        ml_wipe(pass, sizeof pass);
        return cp_sql_failed(req, r, "network check");
    }
    char outcome[32];
    ml_strlcpy(outcome, PQgetvalue(r, 0, 0), sizeof outcome);
    PQclear(r);
    if (strcmp(outcome, "ok") != 0) {
        ml_wipe(pass, sizeof pass);
        if (!strcmp(outcome, "no_user"))
            http_job_err(&req->http, HTTP_E_INVALID_TOKEN,
                         "the account of this token no longer exists");
        else
            http_job_err(&req->http, http_err_outcome(outcome, HTTP_E_NO_MEETING), NULL);
        return DB_FAILED;
    }
    http_job_json(&req->http, 200,
                  json_pack("{s:o,s:I,s:I}", "iceServers", cp_ice_servers(cp, user, pass), "ttl",
                            (json_int_t)CP_PROBE_TTL_S, "expires_at", (json_int_t)exp));
    ml_wipe(pass, sizeof pass);
    return DB_OK;
}

static void h_network_check(struct http_req *r)
{
    struct cp *cp = cp_of(cp_req_of(r));
    char key[64 + sizeof r->user.id];
    unsigned retry = 0;
    ml_snprintf(key, sizeof key, "probe:%s", r->user.id);
    if (cp_limiter_blocked(cp->limiter, key, CP_PROBE_MAX, CP_PROBE_WINDOW_S, &retry)) {
        r->retry_after_s = retry;
        http_reply_err(r, HTTP_E_RATE_LIMITED, "too many network checks; try again later");
        return;
    }
    cp_limiter_fail(cp->limiter, key, CP_PROBE_WINDOW_S); /* counts the checks asked */
    cp_on_meeting(r, w_network_check);
}

/* ------------------------------------------------------------------ removal and roles */

static enum db_status w_remove(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    const char *p[] = {cp_nz(req->ref_id), cp_nz(req->ref_code), req->http.user.id, req->target};
    PGresult *r = NULL;
    enum db_status st = cp_outcome_row(req, c, &st_remove, p, "remove participant", &r);
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
    const char *p[] = {cp_nz(req->ref_id), cp_nz(req->ref_code), req->http.user.id, req->target,
                       role_names[in->role]};
    PGresult *r = NULL;
    enum db_status st = cp_outcome_row(req, c, &st_role, p, "change role", &r);
    if (st != DB_OK)
        return st;
    json_t *part = json_loads(PQgetvalue(r, 0, ROLE_PARTICIPANT), 0, NULL);
    PQclear(r);
    if (!part) {
        http_job_err(&req->http, HTTP_E_INTERNAL, NULL);
        return DB_FAILED;
    }
    http_job_json(&req->http, 200, part);
    return DB_OK;
}

/* The path names a meeting and a participant: the job runs; else the answer says which of the
 * two names nothing. */
static void on_target(struct http_req *r, db_work_fn work)
{
    struct cp_req *req = cp_req_of(r);
    if (!cp_parse_target(req)) {
        http_reply_err(
            r, req->ref_id[0] || req->ref_code[0] ? HTTP_E_NO_PARTICIPANT : HTTP_E_NO_MEETING,
            NULL);
        return;
    }
    cp_submit(req, work);
}

/* POST .../participants/{pid}/admit and .../deny: an ADMIN decides for one in the lobby. */
static enum db_status lobby_decide(struct db_job *job, struct db_conn *c, bool admit)
{
    struct cp_req *req = (struct cp_req *)job;
    const char *p[] = {cp_nz(req->ref_id), cp_nz(req->ref_code), req->http.user.id, req->target,
                       admit ? "true" : "false"};
    PGresult *r = NULL;
    enum db_status st =
        cp_outcome_row(req, c, &st_lobby, p, admit ? "admit participant" : "deny participant", &r);
    if (st != DB_OK)
        return st;
    PQclear(r);
    http_job_json(&req->http, 200,
                  json_pack("{s:s,s:s}", "participant_id", req->target, "state",
                            admit ? "admitted" : "denied"));
    return DB_OK;
}

static enum db_status w_admit(struct db_conn *c, struct db_job *job)
{
    return lobby_decide(job, c, true);
}

static enum db_status w_deny(struct db_conn *c, struct db_job *job)
{
    return lobby_decide(job, c, false);
}

static void h_admit(struct http_req *r)
{
    on_target(r, w_admit);
}

static void h_deny(struct http_req *r)
{
    on_target(r, w_deny);
}

static void h_remove(struct http_req *r)
{
    on_target(r, w_remove);
}

static void h_role(struct http_req *r)
{
    on_target(r, w_role);
}

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

char *cp_ice_json(struct cp *cp, struct db_conn *c, const char *mid, const char *pid,
                  const char *cred_user, long long expires_s, char **relay_out)
{
    char user[128], pass[64];
    if (relay_out)
        *relay_out = NULL;
    if (cp_credential(cp, cred_user, expires_s, user, sizeof user, pass, sizeof pass) < 0)
        return NULL;
    /* placed as a join is (without a connection: the static URIs), written as a join's are */
    json_t *relay = c ? cp_fleet_place(cp, c, mid, pid, user, pass) : NULL;
    struct ml_buf b = ML_BUF_INIT(CP_JOIN_ANSWER_MAX);
    char *text = jw_ice(&b, "", cp_fleet_uris(cp, relay), user, pass) == 0 ? ml_buf_take(&b) : NULL;
    if (!text) {
        ml_wipe(b.p, b.len);
        ml_buf_free(&b);
    }
    if (relay && relay_out)
        *relay_out = json_dumps(relay, JSON_COMPACT);
    json_decref(relay);
    ml_wipe(pass, sizeof pass);
    return text;
}

/* ------------------------------------------------------------------ routes */

#define AUTH HTTP_ROUTE_AUTH
#define BODY HTTP_ROUTE_BODY
#define P(t, s) t, sizeof(struct s)

const struct http_route cp_participant_routes[] = {
    {LWSHUMETH_POST, "/api/v1/meetings/*/join", h_join, AUTH, P(join_params, join_in)},
    {LWSHUMETH_POST, "/api/v1/meetings/*/leave", h_leave, AUTH, cp_no_params, 1},
    {LWSHUMETH_POST, "/api/v1/meetings/*/network-check", h_network_check, AUTH, cp_no_params, 1},
    {LWSHUMETH_POST, "/api/v1/meetings/*/participants/*/admit", h_admit, AUTH, cp_no_params, 1},
    {LWSHUMETH_POST, "/api/v1/meetings/*/participants/*/deny", h_deny, AUTH, cp_no_params, 1},
    {LWSHUMETH_DELETE, "/api/v1/meetings/*/participants/*", h_remove, AUTH, NULL, 0},
    {LWSHUMETH_PATCH, "/api/v1/meetings/*/participants/*", h_role, AUTH | BODY,
     P(role_params, role_in)},
    {0, NULL, NULL, 0, NULL, 0},
};
