/* The help assistant (issue #18): questions answered from the knowledge base in PostgreSQL
 * (sql/009_kb.sql: ml_kb_answer ranks the passages, logs the question, picks follow-ups or the
 * general articles) and its articles read in full. Retrieval only: nothing here writes text.
 * Questions are limited per account (cp-limit.c) and in length; the context the client sends
 * (its page, its network check's verdict, its language) steers the ranking and is not stored.
 * With assistant.llm-url set, the passages also go to generation (cp-llm.c) before the answer. */
#include "config.h"

#include "control/cp-int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define SUBSYS "api"

#define CP_ASK_QUESTION_CHARS 500 /* kb_questions.question's bound; assistant.max-question */
#define CP_ASK_CONTEXT_MAX 1024   /* bytes of the context object, as compact JSON */
#define CP_ARTICLES_PATH "/api/v1/assistant/articles/"
#define CP_SLUG_MAX 80 /* kb_articles.slug's bound */

/* ------------------------------------------------------------------ statements */

/* One value: the answer's JSON (ml_kb_answer documents its members); $8: the passages' whole
 * text too, for generation. */
static const struct db_stmt st_answer = {
    "kb_answer", "SELECT ml_kb_answer($1, $2, $3, $4, $5, $6, $7, $8)::text", 8, 1};
/* One value: the article's JSON, NULL when no article has the slug. */
static const struct db_stmt st_article = {"kb_article", "SELECT ml_kb_article($1)::text", 1, 1};

/* ------------------------------------------------------------------ asking */

/* The context of a question, all optional: where the client asks from, what its network check
 * found (the verdicts of POST .../network-check), the asker's role in the room, the browser's
 * language ("de-CH": its first two letters) and name. Unknown members are ignored. */
static const char *const page_names[] = {"dashboard", "lobby", "room", "sign-in", "other", NULL};
static const char *const net_names[] = {"udp", "tcp", "tls", "none", "unchecked", NULL};
static const char *const ctx_roles[] = {"ADMIN", "PARTICIPANT", NULL};

struct ask_context {
    int page, network, role;
    bool has_page, has_network, has_role;
    char language[64], browser[484];
    bool has_language, has_browser;
};

static const struct http_param ctx_params[] = {
    {"page", HTTP_P_ENUM, 0, 0, 0, offsetof(struct ask_context, page), 0,
     offsetof(struct ask_context, has_page), page_names},
    {"network", HTTP_P_ENUM, 0, 0, 0, offsetof(struct ask_context, network), 0,
     offsetof(struct ask_context, has_network), net_names},
    {"role", HTTP_P_ENUM, 0, 0, 0, offsetof(struct ask_context, role), 0,
     offsetof(struct ask_context, has_role), ctx_roles},
    {"language", HTTP_P_STRING, HTTP_P_NO_CTRL | HTTP_P_TRIM, 0, 15,
     offsetof(struct ask_context, language), 64, offsetof(struct ask_context, has_language), NULL},
    {"browser", HTTP_P_STRING, HTTP_P_NO_CTRL, 0, 120, offsetof(struct ask_context, browser), 484,
     offsetof(struct ask_context, has_browser), NULL},
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

/* The body, then (filled by the handler, read by the work function) what the context means for
 * the search. */
struct ask_in {
    char question[CP_ASK_QUESTION_CHARS * 4 + 1];
    char context[CP_ASK_CONTEXT_MAX + 1];
    bool has_context;
    char lang[3];         /* "en" unless the context names another */
    const char *audience; /* "student", "host", or NULL: no preference */
    const char *network;  /* a verdict, or NULL */
};

static const struct http_param ask_params[] = {
    {"question", HTTP_P_STRING, HTTP_P_REQUIRED | HTTP_P_NO_CTRL | HTTP_P_TRIM, 1,
     CP_ASK_QUESTION_CHARS, offsetof(struct ask_in, question), CP_ASK_QUESTION_CHARS * 4 + 1,
     HTTP_P_NOHAS, NULL},
    {"context", HTTP_P_OBJECT, 0, 0, CP_ASK_CONTEXT_MAX, offsetof(struct ask_in, context),
     CP_ASK_CONTEXT_MAX + 1, offsetof(struct ask_in, has_context), NULL},
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

static enum db_status w_ask(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    struct cp *cp = cp_of(req);
    struct ask_in *in = req->http.params;
    char shown[24];
    ml_snprintf(shown, sizeof shown, "%lld", cp->cfg.assistant.passages);
    const char *p[] = {in->question,      in->lang, in->audience,     in->network,
                       req->http.user.id, shown,    CP_ARTICLES_PATH, cp->llm ? "t" : "f"};
    return cp_json_row(req, c, &st_answer, p, HTTP_E_INTERNAL, "assistant question");
}

/* The retrieval answer is there (server thread): answered at once, or handed to generation
 * when it is on and something was found to write from. */
static void ask_then(struct http_req *r)
{
    struct cp *cp = cp_of(cp_req_of(r));
    struct ask_in *in = r->params;
    if (!cp->llm || r->job.status != DB_OK || r->err != HTTP_OK || !r->resp) {
        http_answer_job(r);
        return;
    }
    json_t *a = json_loadb(r->resp + LWS_PRE, r->resp_len, 0, NULL);
    if (!a) {
        http_reply_err(r, HTTP_E_INTERNAL, NULL);
        return;
    }
    if (!json_is_true(json_object_get(a, "answered"))) {
        json_object_set_new(a, "mode", json_string("retrieval"));
        http_reply_json(r, 200, a);
        return;
    }
    if (!cp_llm_ask(cp->llm, r, in->question, a)) {
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(a, "passages"), i, p) json_object_del(p, "text");
        http_reply_json(r, 200, a); /* too many waiting: the retrieval answer */
    }
}

/* The context object into the search's language, audience and network verdict; HTTP_OK or
 * the error naming the member. */
static enum http_err read_context(struct ask_in *in, char *msg, size_t msglen)
{
    ml_strlcpy(in->lang, "en", sizeof in->lang);
    if (!in->has_context)
        return HTTP_OK;
    json_t *doc = json_loads(in->context, 0, NULL);
    struct ask_context ctx;
    memset(&ctx, 0, sizeof ctx);
    char m[160];
    enum http_err e = doc ? http_params_parse(ctx_params, doc, &ctx, m, sizeof m) : HTTP_E_INTERNAL;
    json_decref(doc);
    if (e != HTTP_OK) {
        ml_snprintf(msg, msglen, "context.%s", doc ? m : "unreadable");
        return e;
    }
    if (ctx.has_language && isalpha((unsigned char)ctx.language[0]) &&
        isalpha((unsigned char)ctx.language[1]) &&
        (!ctx.language[2] || ctx.language[2] == '-' || ctx.language[2] == '_')) {
        in->lang[0] = (char)tolower((unsigned char)ctx.language[0]);
        in->lang[1] = (char)tolower((unsigned char)ctx.language[1]);
        in->lang[2] = 0;
    }
    if (ctx.has_role)
        in->audience = !strcmp(ctx_roles[ctx.role], "ADMIN") ? "host" : "student";
    else if (ctx.has_page &&
             (!strcmp(page_names[ctx.page], "room") || !strcmp(page_names[ctx.page], "lobby")))
        in->audience = "student";
    if (ctx.has_network)
        in->network = net_names[ctx.network];
    return HTTP_OK;
}

/* POST /api/v1/assistant/ask {question, context?}: the answer (docs/api.md). */
static void h_ask(struct http_req *r)
{
    struct cp *cp = cp_of(cp_req_of(r));
    struct ask_in *in = r->params;
    const struct cp_assistant_config *ac = &cp->cfg.assistant;
    char key[16 + sizeof r->user.id];
    unsigned retry = 0;
    ml_snprintf(key, sizeof key, "ask:%s", r->user.id);
    if (cp_limiter_blocked(cp->limiter, key, ac->rate_max, ac->rate_window_s, &retry)) {
        r->retry_after_s = retry;
        http_reply_err(r, HTTP_E_RATE_LIMITED, "too many questions; try again later");
        return;
    }
    size_t chars = 0; /* valid UTF-8: the table checked it */
    if (!ml_utf8_valid(in->question, strlen(in->question), &chars) ||
        (long long)chars > ac->question_max) {
        char msg[96];
        ml_snprintf(msg, sizeof msg, "question: length must be 1 to %lld characters",
                    ac->question_max);
        http_reply_err(r, HTTP_E_INVALID_FIELD, msg);
        return;
    }
    char msg[200];
    enum http_err e = read_context(in, msg, sizeof msg);
    if (e != HTTP_OK) {
        http_reply_err(r, e, msg);
        return;
    }
    cp_limiter_fail(cp->limiter, key, ac->rate_window_s); /* counts the questions asked */
    http_submit(r, w_ask, ask_then);
}

/* ------------------------------------------------------------------ articles */

static enum db_status w_article(struct db_conn *c, struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job;
    const char *p[] = {req->http.caps[0]};
    return cp_json_row(req, c, &st_article, p, HTTP_E_NOT_FOUND, "assistant article");
}

/* GET /api/v1/assistant/articles/{slug}: an article in full, its body Markdown. */
static void h_article(struct http_req *r)
{
    if (!ml_slug_valid(r->caps[0], CP_SLUG_MAX)) {
        http_reply_err(r, HTTP_E_NOT_FOUND, "no such article");
        return;
    }
    cp_submit(cp_req_of(r), w_article);
}

/* ------------------------------------------------------------------ routes */

const struct http_route cp_assistant_routes[] = {
    {LWSHUMETH_POST, "/api/v1/assistant/ask", h_ask, HTTP_ROUTE_AUTH | HTTP_ROUTE_BODY, ask_params,
     sizeof(struct ask_in)},
    {LWSHUMETH_GET, "/api/v1/assistant/articles/*", h_article, HTTP_ROUTE_AUTH, NULL, 0},
    {0, NULL, NULL, 0, NULL, 0},
};
