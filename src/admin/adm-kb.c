/* The admin API's side of the help assistant's knowledge base (issue #18): articles listed,
 * read, added or replaced from their file text, deleted, and the questions that found no
 * answer. The SQL functions of sql/009_kb.sql do the work (parsing an article file, splitting,
 * indexing, the statistics); each handler checks its input and runs one of them on the admin
 * pool. meetlite-admin kb drives these. */
#include "config.h"

#include "admin/adm-int.h"

#include <stdlib.h>
#include <string.h>

#define SUBSYS "admin"
#define KB_FILE_MAX (65536 + 4096) /* characters of an article file: the body's bound, a header */
#define KB_SLUG_MAX 80
#define KB_GAPS_DAYS 30
#define KB_GAPS_LIMIT 50

/* ------------------------------------------------------------------ statements */

static const struct db_stmt st_list = {"adm_kb_list", "SELECT ml_kb_list()::text", 0, 1};
static const struct db_stmt st_get = {"adm_kb_get", "SELECT ml_kb_article($1)::text", 1, 1};
enum { IMP_OUTCOME, IMP_SLUG, IMP_ARTICLE, IMP_PASSAGES, IMP_MESSAGE, IMP__COLS };
static const struct db_stmt st_import = {
    "adm_kb_import",
    "SELECT outcome, slug, article_id, passages, message FROM ml_kb_import_file($1, $2, $3)", 3,
    IMP__COLS};
static const struct db_stmt st_delete = {"adm_kb_delete", "SELECT ml_kb_delete_article($1)", 1, 1};
static const struct db_stmt st_gaps = {
    "adm_kb_gaps", "SELECT ml_kb_gaps_json($1::integer, $2::integer)::text", 2, 1};

/* What a handler hands its work function. */
struct kb_op {
    char slug[KB_SLUG_MAX + 1];
    char days[24], limit[24];
};

static enum db_status sql_failed(struct adm_req *r, PGresult *res, const char *what)
{
    if (!res || db_lost(res)) {
        PQclear(res);
        return DB_UNAVAILABLE;
    }
    ML_ERROR(SUBSYS, "%s failed (%s): %s", what, db_sqlstate(res), PQresultErrorMessage(res));
    PQclear(res);
    http_job_err(&r->http, HTTP_E_INTERNAL, what);
    return DB_FAILED;
}

/* One value of JSON text as the answer (200); NULL or no row: absent. */
static enum db_status json_value(struct adm_req *r, struct db_conn *c, const struct db_stmt *st,
                                 const char *const *p, enum http_err absent, const char *what)
{
    PGresult *res = db_exec(c, st, p);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        return sql_failed(r, res, what);
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        PQclear(res);
        http_job_err(&r->http, absent, NULL);
        return DB_FAILED;
    }
    http_job_body(&r->http, 200, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
    PQclear(res);
    return DB_OK;
}

/* The handler's op with the path's slug; false (answered 404) when it is not one. */
static struct kb_op *slug_op(struct adm_req *r)
{
    if (!ml_slug_valid(r->http.caps[0], KB_SLUG_MAX)) {
        http_reply_err(&r->http, HTTP_E_NOT_FOUND, "no article by that slug");
        return NULL;
    }
    struct kb_op *op = ml_xcalloc(1, sizeof *op);
    r->op = op;
    ml_strlcpy(op->slug, r->http.caps[0], sizeof op->slug);
    return op;
}

/* ------------------------------------------------------------------ reading */

static enum db_status w_list(struct db_conn *c, struct db_job *job)
{
    return json_value((struct adm_req *)job, c, &st_list, NULL, HTTP_E_INTERNAL,
                      "listing the articles");
}

/* GET /v1/kb/articles: every article, without bodies. */
static void h_list(struct http_req *hr)
{
    adm_submit(adm_req_of(hr), w_list, NULL);
}

static enum db_status w_get(struct db_conn *c, struct db_job *job)
{
    struct adm_req *r = (struct adm_req *)job;
    struct kb_op *op = r->op;
    const char *p[] = {op->slug};
    return json_value(r, c, &st_get, p, HTTP_E_NOT_FOUND, "reading an article");
}

/* GET /v1/kb/articles/{slug}: one article with its Markdown body. */
static void h_get(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    if (slug_op(r))
        adm_submit(r, w_get, NULL);
}

/* ------------------------------------------------------------------ writing */

static const char *const origin_names[] = {"operator", "starter", NULL};

struct import_in {
    char file[KB_FILE_MAX * 4 + 1];
    char slug[KB_SLUG_MAX * 4 + 1];
    bool has_slug;
    int origin;
    bool has_origin;
};

static const struct http_param import_params[] = {
    {"file", HTTP_P_STRING, HTTP_P_REQUIRED, 1, KB_FILE_MAX, offsetof(struct import_in, file),
     KB_FILE_MAX * 4 + 1, HTTP_P_NOHAS, NULL},
    {"slug", HTTP_P_STRING, 0, 1, KB_SLUG_MAX, offsetof(struct import_in, slug),
     KB_SLUG_MAX * 4 + 1, offsetof(struct import_in, has_slug), NULL},
    {"origin", HTTP_P_ENUM, 0, 0, 0, offsetof(struct import_in, origin), 0,
     offsetof(struct import_in, has_origin), origin_names},
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

static enum db_status w_import(struct db_conn *c, struct db_job *job)
{
    struct adm_req *r = (struct adm_req *)job;
    struct import_in *in = r->http.params;
    const char *p[] = {in->file, in->has_slug ? in->slug : NULL, origin_names[in->origin]};
    PGresult *res = db_exec(c, &st_import, p);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        return sql_failed(r, res, "importing an article");
    const char *outcome = PQgetvalue(res, 0, IMP_OUTCOME);
    const char *slug = PQgetvalue(res, 0, IMP_SLUG);
    if (!strcmp(outcome, "invalid")) {
        http_job_err(&r->http, HTTP_E_INVALID_FIELD, PQgetvalue(res, 0, IMP_MESSAGE));
        PQclear(res);
        return DB_FAILED;
    }
    ml_snprintf(r->http.log_note, sizeof r->http.log_note, "article=%s %s", slug, outcome);
    http_job_json(&r->http, !strcmp(outcome, "created") ? 201 : 200,
                  json_pack("{s:s,s:s,s:I,s:I}", "slug", slug, "outcome", outcome, "article_id",
                            (json_int_t)strtoll(PQgetvalue(res, 0, IMP_ARTICLE), NULL, 10),
                            "passages",
                            (json_int_t)strtoll(PQgetvalue(res, 0, IMP_PASSAGES), NULL, 10)));
    PQclear(res);
    return DB_OK;
}

/* POST /v1/kb/articles {file, slug?, origin?}: an article file (kb/README.md) added or
 * replaced. origin starter (an upgrade's starter articles) never replaces an article an operator
 * wrote or edited. */
static void h_import(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    struct import_in *in = r->http.params;
    if (in->has_slug && !ml_slug_valid(in->slug, KB_SLUG_MAX)) {
        http_reply_err(&r->http, HTTP_E_INVALID_FIELD,
                       "slug: 1 to 80 of a-z, 0-9 and single hyphens");
        return;
    }
    adm_submit(r, w_import, NULL);
}

static enum db_status w_delete(struct db_conn *c, struct db_job *job)
{
    struct adm_req *r = (struct adm_req *)job;
    struct kb_op *op = r->op;
    const char *p[] = {op->slug};
    PGresult *res = db_exec(c, &st_delete, p);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        return sql_failed(r, res, "deleting an article");
    bool found = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (!found) {
        http_job_err(&r->http, HTTP_E_NOT_FOUND, "no article by that slug");
        return DB_FAILED;
    }
    ml_snprintf(r->http.log_note, sizeof r->http.log_note, "article=%s deleted", op->slug);
    http_job_json(&r->http, 200, json_pack("{s:s}", "deleted", op->slug));
    return DB_OK;
}

/* DELETE /v1/kb/articles/{slug}. */
static void h_delete(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    if (slug_op(r))
        adm_submit(r, w_delete, NULL);
}

/* ------------------------------------------------------------------ gaps */

static enum db_status w_gaps(struct db_conn *c, struct db_job *job)
{
    struct adm_req *r = (struct adm_req *)job;
    struct kb_op *op = r->op;
    const char *p[] = {op->days, op->limit};
    return json_value(r, c, &st_gaps, p, HTTP_E_INTERNAL, "listing the unanswered questions");
}

/* GET /v1/kb/gaps?days=30&limit=50: the questions without a good answer, most asked first. */
static void h_gaps(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    long long days = KB_GAPS_DAYS, limit = KB_GAPS_LIMIT;
    const char *d = http_req_arg(hr, "days"), *l = http_req_arg(hr, "limit");
    if (d && *d && ml_parse_ll(d, 1, 3650, &days) < 0) {
        http_reply_err(hr, HTTP_E_INVALID_FIELD, "days: an integer from 1 to 3650");
        return;
    }
    if (l && *l && ml_parse_ll(l, 1, 1000, &limit) < 0) {
        http_reply_err(hr, HTTP_E_INVALID_FIELD, "limit: an integer from 1 to 1000");
        return;
    }
    struct kb_op *op = ml_xcalloc(1, sizeof *op);
    r->op = op;
    ml_snprintf(op->days, sizeof op->days, "%lld", days);
    ml_snprintf(op->limit, sizeof op->limit, "%lld", limit);
    adm_submit(r, w_gaps, NULL);
}

/* ------------------------------------------------------------------ the table */

const struct http_route adm_kb_routes[] = {
    {LWSHUMETH_GET, "/v1/kb/articles", h_list, 0, NULL, 0},
    {LWSHUMETH_POST, "/v1/kb/articles", h_import, HTTP_ROUTE_BODY, import_params,
     sizeof(struct import_in), ADM_MAX_KB_BODY},
    {LWSHUMETH_GET, "/v1/kb/articles/*", h_get, 0, NULL, 0},
    {LWSHUMETH_DELETE, "/v1/kb/articles/*", h_delete, 0, NULL, 0},
    {LWSHUMETH_GET, "/v1/kb/gaps", h_gaps, HTTP_ROUTE_QUERY, NULL, 0},
    {0, NULL, NULL, 0, NULL, 0},
};
