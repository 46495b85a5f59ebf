/* Meetings: creating one (a join code drawn at random), listing one's own, its status (served
 * from the status cache while fresh: the roster for its participants, not for others), ending
 * it, its relay usage, and the periodic sweep of the meetings that expired. */
#include "config.h"

#include "control/cp-int.h"

#include <stdlib.h>
#include <string.h>

#define SUBSYS "api"

/* ------------------------------------------------------------------ statements */

/* Each statement's result columns are named by an enum beside its text; its last member, the
 * count, is the statement's ncols (checked against the result in --enable-devel builds). */
enum { CREATE_ID, CREATE_MEETING, CREATE__COLS };
static const struct db_stmt st_create = {
    "create",
    "WITH m AS (INSERT INTO meetings (code, title, host_id, expires_at, max_participants, "
    "passcode_hash, waiting_room, wait_for_host, screen_share) "
    "VALUES ($1, $2, $3, now() + make_interval(secs => $4::integer), $5, $6, $7, $8, $9) "
    "RETURNING *), "
    "a AS (INSERT INTO audit_log (actor_id, meeting_id, action) "
    "SELECT $3, m.id, 'meeting.create' FROM m) "
    "SELECT m.id, ml_meeting_json(ROW(m.*)::meetings, $3) FROM m",
    9, CREATE__COLS};
/* ml_meeting_settings answers as the other meeting functions (CP_OUT_*) */
enum { SETTINGS_JSON = CP_OUT_OWN, SETTINGS__COLS = CP_OUT_OWN + 2 };
static const struct db_stmt st_settings = {
    "settings",
    "SELECT outcome, meeting_id, meeting, revoked FROM ml_meeting_settings($1, $2, $3, $4, $5, "
    "$6, $7, $8)",
    8, SETTINGS__COLS};
/* who may share a screen (sql/012_meeting_features.sql) */
static const char *const screen_names[] = {"anyone", "admins", NULL};
static const struct db_stmt st_list = {
    "list",
    "SELECT json_build_object('meetings', coalesce(json_agg(ml_meeting_json(m, $1) "
    "ORDER BY m.created_at DESC), '[]'::json)) FROM (SELECT * FROM meetings x WHERE "
    "x.host_id = $1 OR x.id IN (SELECT p.meeting_id FROM participants p WHERE p.user_id = $1 "
    "AND NOT p.removed) ORDER BY x.created_at DESC LIMIT $2) m",
    2, 1};
/* A meeting's status in both forms (with the roster for insiders, without for others), with
 * what it takes to tell them apart, so that the answer can be cached for every caller. */
#define MEETING_FIELDS(parts)                                                                      \
    "json_build_object('id', m.id, 'code', m.code, 'title', m.title, 'status', CASE WHEN "         \
    "m.status = 'ACTIVE' AND m.expires_at <= now() THEN 'EXPIRED' ELSE m.status::text END, "       \
    "'host', json_build_object('id', m.host_id, 'display_name', h.display_name), 'created_at', "   \
    "m.created_at, 'expires_at', m.expires_at, 'ended_at', m.ended_at, 'max_participants', "       \
    "m.max_participants, 'passcode', m.passcode_hash IS NOT NULL, 'waiting_room', "                \
    "m.waiting_room, 'wait_for_host', m.wait_for_host, 'screen_share', m.screen_share, "           \
    "'participants', " parts ")"
/* Written out rather than through ml_meeting_json (a function call per form costs more than
 * the whole query otherwise): the roster is aggregated once for both forms. */
enum {
    STATUS_ID,
    STATUS_CODE,
    STATUS_HOST,
    STATUS_EXPIRES, /* seconds since the epoch */
    STATUS_FULL,    /* the meeting with its roster, for its participants */
    STATUS_PUBLIC,  /* without, for others */
    STATUS_MEMBERS, /* user ids of the participants present, a comma list ("" for none) */
    STATUS__COLS
};
#define STATUS_COLS                                                                                \
    "SELECT m.id, m.code, m.host_id, floor(extract(epoch FROM "                                    \
    "m.expires_at))::bigint, " MEETING_FIELDS("r.list") ", " MEETING_FIELDS(                       \
        "NULL::json") ", coalesce(r.members, '') "                                                 \
                      "FROM meetings m JOIN users h ON h.id = m.host_id CROSS JOIN LATERAL "       \
                      "(SELECT "                                                                   \
                      "coalesce(json_agg(json_build_object('id', x.id, 'user_id', x.user_id, "     \
                      "'display_name', "                                                           \
                      "x.display_name, 'role', x.role, 'state', CASE WHEN x.waiting THEN "         \
                      "'waiting' ELSE 'joined' END, 'joined_at', x.joined_at) ORDER BY "           \
                      "x.joined_at, x.id), "                                                       \
                      "'[]'::json) AS list, string_agg(x.user_id::text, ',') FILTER (WHERE NOT "   \
                      "x.waiting) AS members FROM "                                                \
                      "participants x "                                                            \
                      "WHERE x.meeting_id = m.id AND x.left_at IS NULL) r "
static const struct db_stmt st_status_id = {"status_id", STATUS_COLS "WHERE m.id = $1", 1,
                                            STATUS__COLS};
static const struct db_stmt st_status_code = {"status_code", STATUS_COLS "WHERE m.code = $1", 1,
                                              STATUS__COLS};
/* ml_end and ml_meeting_usage answer as the other meeting functions (CP_OUT_*) */
static const struct db_stmt st_end = {
    "end", "SELECT outcome, meeting_id, revoked FROM ml_end($1, $2, $3)", 3, CP_OUT_OWN + 1};
enum { USAGE_JSON = CP_OUT_OWN, USAGE__COLS = CP_OUT_OWN + 2 };
static const struct db_stmt st_usage = {
    "usage",
    "SELECT outcome, meeting_id, usage, '{}'::text[] AS revoked FROM ml_meeting_usage($1, $2, $3)",
    3, USAGE__COLS};
enum { SWEEP_EXPIRED, SWEEP_REVOKED, SWEEP__COLS };
static const struct db_stmt st_sweep = {
    "sweep",
    "WITH m AS (UPDATE meetings SET status = 'EXPIRED', ended_at = now() "
    "WHERE status = 'ACTIVE' AND expires_at <= now() RETURNING id), "
    "p AS (UPDATE participants SET left_at = now() WHERE left_at IS NULL "
    "AND meeting_id IN (SELECT id FROM m) RETURNING id) "
    "SELECT (SELECT count(*) FROM m), (SELECT ml_revoke_participants(array_agg(id)) FROM p)",
    0, SWEEP__COLS};
/* the help assistant's questions' log, kept assistant.question-retention */
static const struct db_stmt st_prune = {
    "prune_questions", "SELECT ml_kb_prune_questions(make_interval(secs => $1::bigint))", 1, 1};

/* ------------------------------------------------------------------ create and list */

struct create_in {
    char title[804];
    long long duration_s;
    long long max_participants;
    bool has_duration, has_max;
    char passcode[CP_PASSCODE_BYTES];
    bool has_passcode, waiting_room, wait_for_host;
    int screen_share; /* screen_names[] */
};

static const struct http_param create_params[] = {
    {"title", HTTP_P_STRING, HTTP_P_REQUIRED | HTTP_P_NO_CTRL | HTTP_P_TRIM, 1, 200,
     offsetof(struct create_in, title), 804, HTTP_P_NOHAS, NULL},
    {"duration_s", HTTP_P_INT, 0, 1, 31 * 86400, offsetof(struct create_in, duration_s), 0,
     offsetof(struct create_in, has_duration), NULL},
    {"max_participants", HTTP_P_INT, 0, 1, 100000, offsetof(struct create_in, max_participants), 0,
     offsetof(struct create_in, has_max), NULL},
    {"passcode", HTTP_P_STRING, HTTP_P_NO_CTRL, CP_PASSCODE_MIN, CP_PASSCODE_MAX,
     offsetof(struct create_in, passcode), CP_PASSCODE_BYTES,
     offsetof(struct create_in, has_passcode), NULL},
    {"waiting_room", HTTP_P_BOOL, 0, 0, 0, offsetof(struct create_in, waiting_room), 0,
     HTTP_P_NOHAS, NULL},
    {"wait_for_host", HTTP_P_BOOL, 0, 0, 0, offsetof(struct create_in, wait_for_host), 0,
     HTTP_P_NOHAS, NULL},
    {"screen_share", HTTP_P_ENUM, 0, 0, 0, offsetof(struct create_in, screen_share), 0,
     HTTP_P_NOHAS, screen_names},
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
    char dur[24], max[24], code[13], hash[CP_HASH_BYTES];
    ml_snprintf(dur, sizeof dur, "%lld", in->duration_s);
    ml_snprintf(max, sizeof max, "%lld", in->max_participants);
    if (in->has_passcode && cp_secret_hash(cp_of(req), in->passcode, hash, sizeof hash) < 0) {
        http_job_err(&req->http, HTTP_E_INTERNAL, "cannot hash the passcode");
        return DB_FAILED;
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        make_code(code);
        const char *p[] = {code,
                           in->title,
                           req->http.user.id,
                           dur,
                           max,
                           in->has_passcode ? hash : NULL,
                           in->waiting_room ? "true" : "false",
                           in->wait_for_host ? "true" : "false",
                           screen_names[in->screen_share]};
        PGresult *r = db_exec(c, &st_create, p);
        if (r && PQresultStatus(r) == PGRES_FATAL_ERROR && !strcmp(db_sqlstate(r), "23505")) {
            PQclear(r); /* the code is taken: draw another */
            continue;
        }
        if (!cp_tuples(r) || PQntuples(r) != 1)
            return cp_sql_failed(req, r, "create meeting");
        ml_snprintf(req->http.location, sizeof req->http.location, "/api/v1/meetings/%s",
                    PQgetvalue(r, 0, CREATE_ID));
        ml_snprintf(req->http.log_note, sizeof req->http.log_note, "meeting=%s",
                    PQgetvalue(r, 0, CREATE_ID));
        http_job_body(&req->http, 201, PQgetvalue(r, 0, CREATE_MEETING),
                      (size_t)PQgetlength(r, 0, CREATE_MEETING));
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
    return cp_json_row(req, c, &st_list, p, HTTP_E_INTERNAL, "list meetings");
}

static void h_list(struct http_req *r)
{
    struct cp_req *req = cp_req_of(r);
    cp_submit(req, w_list);
}

/* ------------------------------------------------------------------ status */

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
    if (!cp_tuples(r))
        return cp_sql_failed(req, r, "meeting status");
    if (PQntuples(r) != 1) {
        PQclear(r);
        http_job_err(&req->http, HTTP_E_NO_MEETING, NULL);
        return DB_FAILED;
    }
    struct cp_status s;
    memset(&s, 0, sizeof s);
    ml_strlcpy(s.id, PQgetvalue(r, 0, STATUS_ID), sizeof s.id);
    ml_strlcpy(s.code, PQgetvalue(r, 0, STATUS_CODE), sizeof s.code);
    ml_strlcpy(s.host, PQgetvalue(r, 0, STATUS_HOST), sizeof s.host);
    s.expires_s = strtoll(PQgetvalue(r, 0, STATUS_EXPIRES), NULL, 10);
    s.full = PQgetvalue(r, 0, STATUS_FULL);
    s.full_len = (size_t)PQgetlength(r, 0, STATUS_FULL);
    s.pub = PQgetvalue(r, 0, STATUS_PUBLIC);
    s.pub_len = (size_t)PQgetlength(r, 0, STATUS_PUBLIC);
    s.members = PQgetvalue(r, 0, STATUS_MEMBERS);
    s.fetched_ms = ml_now_ms();
    status_answer(req, &s);
    if (s.full_len + s.pub_len < CP_STATUS_CACHE_MAX_BYTES)
        req->status_out = cp_status_dup(&s, req->ref_id[0] ? req->ref_id : req->ref_code);
    PQclear(r);
    return DB_OK;
}

/* Control-plane thread: file a fresh status unless a write may have changed it meanwhile. */
static void status_done(struct cp *cp, struct cp_req *req)
{
    struct cp_status *s = req->status_out;
    if (!s || req->cache_gen != cp->cache_gen || cp->cfg.status_cache_ms <= 0)
        return;
    cp_cache_put(cp, s);
}

static void h_status(struct http_req *r)
{
    struct cp_req *req = cp_req_of(r);
    struct cp *cp = cp_of(req);
    if (!cp_parse_ref(req)) {
        http_reply_err(&req->http, HTTP_E_NO_MEETING, NULL);
        return;
    }
    const char *key = req->ref_id[0] ? req->ref_id : req->ref_code;
    const struct cp_status *s = cp_cache_get(cp, key);
    if (s) {
        status_answer(req, s);
        http_reply_ready(&req->http);
        return;
    }
    req->cache_gen = cp->cache_gen;
    req->on_done = status_done;
    cp_submit(req, w_status);
}

/* ------------------------------------------------------------------ end, usage */

static enum db_status w_end(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    const char *p[] = {cp_nz(req->ref_id), cp_nz(req->ref_code), req->http.user.id};
    PGresult *r = NULL;
    enum db_status st = cp_outcome_row(req, c, &st_end, p, "end", &r);
    if (st != DB_OK)
        return st;
    PQclear(r);
    http_job_json(&req->http, 200, json_pack("{s:s}", "status", "ENDED"));
    return DB_OK;
}

static void h_end(struct http_req *r)
{
    cp_on_meeting(r, w_end);
}

/* ------------------------------------------------------------------ settings */

struct settings_in {
    char passcode[CP_PASSCODE_BYTES]; /* "" removes the passcode */
    bool has_passcode, waiting_room, has_waiting_room, wait_for_host, has_wait_for_host;
    int screen_share;
    bool has_screen_share;
};

static const struct http_param settings_params[] = {
    {"passcode", HTTP_P_STRING, HTTP_P_NO_CTRL | HTTP_P_EMPTY_OK, CP_PASSCODE_MIN, CP_PASSCODE_MAX,
     offsetof(struct settings_in, passcode), CP_PASSCODE_BYTES,
     offsetof(struct settings_in, has_passcode), NULL},
    {"waiting_room", HTTP_P_BOOL, 0, 0, 0, offsetof(struct settings_in, waiting_room), 0,
     offsetof(struct settings_in, has_waiting_room), NULL},
    {"wait_for_host", HTTP_P_BOOL, 0, 0, 0, offsetof(struct settings_in, wait_for_host), 0,
     offsetof(struct settings_in, has_wait_for_host), NULL},
    {"screen_share", HTTP_P_ENUM, 0, 0, 0, offsetof(struct settings_in, screen_share), 0,
     offsetof(struct settings_in, has_screen_share), screen_names},
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

/* PATCH /api/v1/meetings/{ref}: an ADMIN changes the passcode and the lobby's settings. */
static enum db_status w_settings(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    struct settings_in *in = req->http.params;
    char hash[CP_HASH_BYTES];
    bool set_hash = in->has_passcode, clear = set_hash && !in->passcode[0];
    if (set_hash && !clear && cp_secret_hash(cp_of(req), in->passcode, hash, sizeof hash) < 0) {
        http_job_err(&req->http, HTTP_E_INTERNAL, "cannot hash the passcode");
        return DB_FAILED;
    }
    const char *p[] = {cp_nz(req->ref_id),
                       cp_nz(req->ref_code),
                       req->http.user.id,
                       set_hash ? "true" : "false",
                       set_hash && !clear ? hash : NULL,
                       in->has_waiting_room ? (in->waiting_room ? "true" : "false") : NULL,
                       in->has_wait_for_host ? (in->wait_for_host ? "true" : "false") : NULL,
                       in->has_screen_share ? screen_names[in->screen_share] : NULL};
    PGresult *r = NULL;
    enum db_status st = cp_outcome_row(req, c, &st_settings, p, "meeting settings", &r);
    if (st != DB_OK)
        return st;
    http_job_body(&req->http, 200, PQgetvalue(r, 0, SETTINGS_JSON),
                  (size_t)PQgetlength(r, 0, SETTINGS_JSON));
    PQclear(r);
    return DB_OK;
}

static void h_settings(struct http_req *r)
{
    cp_on_meeting(r, w_settings);
}

/* What the relay's ended allocations of a meeting used, for its ADMINs (sql/003_turn.sql's
 * ml_meeting_usage_json, which the admin API shares). */
static enum db_status w_usage(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    const char *p[] = {cp_nz(req->ref_id), cp_nz(req->ref_code), req->http.user.id};
    PGresult *r = NULL;
    enum db_status st = cp_outcome_row(req, c, &st_usage, p, "meeting usage", &r);
    if (st != DB_OK)
        return st;
    req->touched[0] = 0; /* a read: the cached status stays */
    json_t *usage = json_loads(PQgetvalue(r, 0, USAGE_JSON), 0, NULL);
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
    cp_on_meeting(r, w_usage);
}

/* ------------------------------------------------------------------ the expiry sweep */

/* The sweep's job: no client, no request; the credentials it revoked for the hook. */
struct sweep_job {
    struct db_job job; /* first: the pool hands it back */
    struct cp *cp;
    char **revoked;
    size_t nrevoked;
    long long prune_s; /* > 0: also delete the questions older than this */
};

/* How often the questions' log is pruned: a daily retention needs no finer step. */
#define CP_PRUNE_EVERY_MS (3600 * 1000)

static enum db_status w_sweep(struct db_conn *c, struct db_job *job)
{
    struct sweep_job *j = (struct sweep_job *)job;
    PGresult *r = db_exec(c, &st_sweep, NULL);
    if (!cp_tuples(r) || PQntuples(r) != 1)
        return cp_sql_error(r, "expiry sweep", "sweep");
    long n = strtol(PQgetvalue(r, 0, SWEEP_EXPIRED), NULL, 10);
    db_words(PQgetvalue(r, 0, SWEEP_REVOKED), &j->revoked, &j->nrevoked);
    if (n > 0)
        ML_INFO(SUBSYS, "%ld meeting%s expired, %zu TURN credential%s revoked", n,
                n == 1 ? "" : "s", j->nrevoked, j->nrevoked == 1 ? "" : "s");
    PQclear(r);
    if (j->prune_s > 0) {
        char secs[24];
        snprintf(secs, sizeof secs, "%lld", j->prune_s);
        const char *pv[] = {secs};
        r = db_exec(c, &st_prune, pv);
        if (!cp_tuples(r) || PQntuples(r) != 1)
            return cp_sql_error(r, "pruning the questions' log", "prune");
        long d = strtol(PQgetvalue(r, 0, 0), NULL, 10);
        if (d > 0)
            ML_INFO(SUBSYS, "%ld question%s older than assistant.question-retention deleted", d,
                    d == 1 ? "" : "s");
        PQclear(r);
    }
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
    int64_t now = ml_now_ms();
    long long keep = cp->cfg.assistant.question_retention_s;
    if (keep > 0 && (!cp->prune_last_ms || now - cp->prune_last_ms >= CP_PRUNE_EVERY_MS)) {
        j->prune_s = keep;
        cp->prune_last_ms = now;
    }
    j->job.work = w_sweep;
    j->job.done = sweep_done;
    if (db_submit(cp->pool, &j->job) < 0) {
        free(j);
        return;
    }
    cp->sweep_running = true;
}

/* ------------------------------------------------------------------ routes */

#define AUTH HTTP_ROUTE_AUTH
#define BODY HTTP_ROUTE_BODY
#define P(t, s) t, sizeof(struct s)

const struct http_route cp_meeting_routes[] = {
    {LWSHUMETH_POST, "/api/v1/meetings", h_create, AUTH | BODY, P(create_params, create_in)},
    {LWSHUMETH_GET, "/api/v1/meetings", h_list, AUTH, NULL, 0},
    {LWSHUMETH_GET, "/api/v1/meetings/*", h_status, AUTH, NULL, 0},
    {LWSHUMETH_PATCH, "/api/v1/meetings/*", h_settings, AUTH | BODY,
     P(settings_params, settings_in)},
    {LWSHUMETH_POST, "/api/v1/meetings/*/end", h_end, AUTH, cp_no_params, 1},
    {LWSHUMETH_GET, "/api/v1/meetings/*/usage", h_usage, AUTH, NULL, 0},
    {0, NULL, NULL, 0, NULL, 0},
};
