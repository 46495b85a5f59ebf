/* The admin API's life: an HTTP server of its own (src/http; so that it serves a TURN-only
 * node, and a flood on the public API never delays a scrape or a drain) carrying the admin
 * service, bearer tokens compared in constant time, the loopback rule, and the completions of
 * operations that ran on the network workers or the database threads. */
#include "config.h"

#include "admin/adm-int.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define ADM_HEADER_MAX 8192 /* bytes of all request headers */

/* ------------------------------------------------------------------ tokens */

static void sha256(const void *p, size_t n, uint8_t out[32])
{
    unsigned len = 0;
    if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != 32)
        abort(); /* SHA-256 is always there in OpenSSL 3's default provider */
}

struct tok_build {
    uint8_t (*v)[32];
    size_t n;
};

static int tok_add(const char *item, void *arg)
{
    struct tok_build *b = arg;
    b->v = ml_xrealloc(b->v, (b->n + 1) * sizeof *b->v);
    sha256(item, strlen(item), b->v[b->n++]);
    return 0;
}

/* Digests of the tokens of a comma list (NULL: none, for the scrape tokens) into *set and
 * *n, the old ones wiped. 0 or -1. */
static int tokens_load(struct adm *a, const char *list, uint8_t (**set)[32], size_t *n, char *err,
                       size_t errlen)
{
    struct tok_build b = {NULL, 0};
    if (list && adm_tokens_validate(list, err, errlen) < 0)
        return -1;
    if (list && ml_list_foreach(list, tok_add, &b) < 0) {
        free(b.v);
        return ml_err(err, errlen, "no token");
    }
    pthread_mutex_lock(&a->tok_mu);
    uint8_t(*old)[32] = *set;
    size_t nold = *n;
    *set = b.v;
    *n = b.n;
    pthread_mutex_unlock(&a->tok_mu);
    if (old) {
        ml_wipe(old, nold * sizeof *old);
        free(old);
    }
    return 0;
}

/* Both lists, all or nothing: admin.token must hold one token at least. */
static int tokens_reload(struct adm *a, const struct adm_config *cfg, char *err, size_t errlen)
{
    char why[160];
    if (!cfg->token)
        return ml_err(err, errlen, "admin.token is empty");
    if (adm_tokens_validate(cfg->token, why, sizeof why) < 0)
        return ml_err(err, errlen, "admin.token: %s", why);
    if (cfg->metrics_token && adm_tokens_validate(cfg->metrics_token, why, sizeof why) < 0)
        return ml_err(err, errlen, "admin.metrics-token: %s", why);
    if (tokens_load(a, cfg->token, &a->tokens, &a->ntokens, err, errlen) < 0 ||
        tokens_load(a, cfg->metrics_token, &a->scrape, &a->nscrape, err, errlen) < 0)
        return -1;
    if (!a->ntokens)
        return ml_err(err, errlen, "admin.token: no token");
    return 0;
}

/* Which list the bearer token is in: 2 admin, 1 scrape, 0 neither. Digests make every
 * comparison 32 bytes long, whatever the token's length, and CRYPTO_memcmp takes the same time
 * whatever matches; every token of both lists is compared, so the time says nothing about
 * which one matched either. */
static int token_kind(struct adm *a, const char *token, size_t n)
{
    uint8_t d[32];
    int admin = 0, scrape = 0;
    sha256(token, n, d);
    pthread_mutex_lock(&a->tok_mu);
    for (size_t i = 0; i < a->ntokens; i++)
        admin |= CRYPTO_memcmp(d, a->tokens[i], sizeof d) == 0;
    for (size_t i = 0; i < a->nscrape; i++)
        scrape |= CRYPTO_memcmp(d, a->scrape[i], sizeof d) == 0;
    pthread_mutex_unlock(&a->tok_mu);
    ml_wipe(d, sizeof d);
    return admin ? 2 : scrape ? 1 : 0;
}

/* The service's authentication: a bearer token of admin.token opens every route; one of
 * admin.metrics-token only the scrape routes (403 elsewhere, unknown paths included: a scrape
 * token learns no more than no token does). Refusals are logged (rate limited): someone holds
 * a wrong token. */
static enum http_err authenticate(struct http_req *req, const char *authz)
{
    struct adm *a = req->arg;
    if (!authz)
        return HTTP_E_UNAUTHENTICATED;
    int kind = 0;
    if (strlen(authz) > 7 && !strncasecmp(authz, "Bearer ", 7)) {
        const char *t = authz + 7;
        while (*t == ' ')
            t++;
        size_t tl = strlen(t);
        while (tl && t[tl - 1] == ' ')
            tl--;
        kind = tl ? token_kind(a, t, tl) : 0;
    }
    if (kind == 2)
        return HTTP_OK;
    if (kind == 1) {
        if (req->route && (req->route->flags & ADM_ROUTE_SCRAPE))
            return HTTP_OK;
        ML_LOG_LIMITED(ML_LOG_WARN, "admin", "scrape token refused from %s for %s %s", req->peer,
                       http_method_name(req->method), req->path);
        return HTTP_E_FORBIDDEN;
    }
    ML_LOG_LIMITED(ML_LOG_WARN, "admin", "refused token from %s for %s %s", req->peer,
                   http_method_name(req->method), req->path);
    return HTTP_E_INVALID_TOKEN;
}

/* ------------------------------------------------------------------ requests */

static void req_free(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    if (r->op && r->op_free)
        r->op_free(r->op); /* a request can end between its continuations (shutdown) */
    free(r->op);
    json_decref(r->out);
}

/* A job is over: its continuation, while the client is there (admin thread). */
static void job_then(struct http_req *hr)
{
    struct adm_req *r = adm_req_of(hr);
    if (http_req_live(hr))
        r->on_db(adm_of(r), r); /* whatever the outcome: it looks at the job's status and err */
}

void adm_submit(struct adm_req *r, db_work_fn work, void (*on_db)(struct adm *, struct adm_req *))
{
    r->on_db = on_db;
    http_submit(&r->http, work, on_db ? job_then : NULL);
}

static void done_run(struct http_done *hd)
{
    struct adm_done *d = (struct adm_done *)hd;
    struct adm_req *r = adm_req_of(hd->req);
    d->fn(adm_of(r), r, d);
}

static void done_free(struct http_done *hd)
{
    struct adm_done *d = (struct adm_done *)hd;
    free(d->views);
    free(d->groups);
    free(d);
}

void adm_post(struct adm_req *r, struct adm_done *d)
{
    d->base.req = &r->http;
    d->base.fn = done_run;
    d->base.free = done_free;
    http_post(&d->base);
}

/* Loopback: 127.0.0.0/8 and ::1 (and ::ffff:127.x). */
/* ------------------------------------------------------------------ the server */

/* The pool's: a job finished (a database thread). */
static void wake(void *arg)
{
    struct adm *a = arg;
    http_server_wake(a->http);
}

/* The service's: collect the finished jobs (the admin thread). */
static void drain(void *arg)
{
    struct adm *a = arg;
    if (a->pool)
        db_pool_drain(a->pool);
}

/* Answers of every kind carry it: a browser must not guess a type. */
static const struct lws_protocol_vhost_options hdr_nosniff = {NULL, NULL,
                                                              "x-content-type-options:", "nosniff"};

/* Binds admin.listen (loopback unless TLS or admin.allow-remote) with the admin service. */
static int http_init(struct adm *a, char *err, size_t errlen)
{
    if (adm_config_check(&a->cfg, err, errlen) < 0)
        return -1;
    bool tls = a->cfg.tls_cert && a->cfg.tls_key;
    static const struct http_route *const tables[] = {adm_routes, adm_kb_routes, NULL};
    const struct http_service svc = {
        .prefix = "/",
        .cls = HTTP_CLASS_ADMIN,
        .routes = tables,
        .segment_max = ADM_SEGMENT_MAX,
        .token_first = true,
        .authenticate = authenticate,
        .realm = "meetlite-admin",
        .req_size = sizeof(struct adm_req),
        .req_free = req_free,
        .pool = a->pool,
        .wake = drain,
        .arg = a,
    };
    const struct http_server_config hc = {
        .name = "admin",
        .section = "admin",
        .listen = a->cfg.listen,
        .default_port = 8081,
        .tls_cert = tls ? a->cfg.tls_cert : NULL,
        .tls_key = tls ? a->cfg.tls_key : NULL,
        .max_header = ADM_HEADER_MAX,
        .header_pool = 32,
        .max_body = ADM_MAX_BODY,
        .max_connections = a->cfg.max_connections,
        .access_log = true,
        .audit = true, /* changes are an audit trail */
        .headers = &hdr_nosniff,
        .services = &svc,
        .nservices = 1,
    };
    a->http = http_server_new(&hc, err, errlen);
    return a->http ? 0 : -1;
}

/* ------------------------------------------------------------------ life */

static char *dup_opt(const char *s)
{
    return s ? ml_xstrdup(s) : NULL;
}

struct adm *adm_new(const struct adm_config *cfg, const struct adm_deps *deps, char *err,
                    size_t errlen)
{
    if (!cfg->token) {
        ml_err(err, errlen, "admin.token is empty");
        return NULL;
    }
    struct adm *a = ml_xcalloc(1, sizeof *a);
    pthread_mutex_init(&a->tok_mu, NULL);
    a->cfg = *cfg;
    a->cfg.listen = dup_opt(cfg->listen);
    a->cfg.token = NULL; /* only their digests are kept */
    a->cfg.metrics_token = NULL;
    a->cfg.tls_cert = dup_opt(cfg->tls_cert);
    a->cfg.tls_key = dup_opt(cfg->tls_key);
    a->top_meetings = cfg->top_meetings;
    a->deps = *deps;
    a->db = *deps->db;
    a->db.url = dup_opt(deps->db->url);
    a->db.migrations_dir = NULL;
    a->deps.db = &a->db;
    if (tokens_reload(a, cfg, err, errlen) < 0)
        goto fail;
    if (a->db.url) {
        /* Two connections of its own: a slow statistics query never holds up a change, and
         * the control plane's pool is never taken from its users. */
        struct db_config pc = a->db;
        pc.pool_size = 2;
        pc.max_queue = 64;
        a->pool = db_pool_new(&pc, wake, a, err, errlen);
        if (!a->pool)
            goto fail;
    }
    if (http_init(a, err, errlen) < 0)
        goto fail;
    return a;
fail:
    adm_free(a);
    return NULL;
}

int adm_start(struct adm *a, char *err, size_t errlen)
{
    return http_server_start(a->http, err, errlen);
}

int adm_port(const struct adm *a)
{
    return http_server_port(a->http);
}

bool adm_tls_set(struct adm *a, SSL_CTX *loaded)
{
    if (!a->http || !http_server_tls(a->http))
        return false;
    http_server_tls_set(a->http, loaded);
    return true;
}

int adm_reload(struct adm *a, const struct adm_config *cfg, char *err, size_t errlen)
{
    __atomic_store_n(&a->top_meetings, cfg->top_meetings, __ATOMIC_RELAXED);
    if (!cfg->token)
        return ml_err(err, errlen, "admin.token cannot be emptied while the listener runs");
    return tokens_reload(a, cfg, err, errlen);
}

void adm_stop(struct adm *a)
{
    if (!a)
        return;
    http_server_stop(a->http);
    /* The database threads too: a job may be applying TURN credentials through the sync,
     * which the caller frees next. Finished jobs only mark their requests; closing the
     * connections in adm_free() frees them. */
    db_pool_free(a->pool);
    a->pool = NULL;
}

void adm_free(struct adm *a)
{
    if (!a)
        return;
    adm_stop(a);
    /* closing the connections orphans the requests with operations in flight, which the last
     * completions free */
    http_server_free(a->http);
    free(a->tokens);
    free(a->scrape);
    free(a->cfg.listen);
    free(a->cfg.tls_cert);
    free(a->cfg.tls_key);
    free(a->db.url);
    pthread_mutex_destroy(&a->tok_mu);
    free(a);
}
