/* The admin listener: a libwebsockets context and service thread of its own (so that it serves
 * a TURN-only node, and a flood on the public API never delays a scrape or a drain), bearer
 * tokens compared in constant time, routing, bounded bodies, and the completions of operations
 * that ran on the network workers or the database threads. */
#include "config.h"

#include "admin/adm-int.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define ADM_HEADER_MAX 8192 /* bytes of all request headers */
#define ADM_WRITE_CHUNK 16384

/* Per connection: the transaction in progress. */
struct adm_conn {
    struct adm_req *req;
};

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

/* Digests of the tokens of a comma list. 0 or -1. */
static int tokens_load(struct adm *a, const char *list, char *err, size_t errlen)
{
    struct tok_build b = {NULL, 0};
    if (adm_tokens_validate(list, err, errlen) < 0)
        return -1;
    if (ml_list_foreach(list, tok_add, &b) < 0 || b.n == 0) {
        free(b.v);
        return ml_err(err, errlen, "admin.token: no token");
    }
    pthread_mutex_lock(&a->tok_mu);
    uint8_t(*old)[32] = a->tokens;
    size_t nold = a->ntokens;
    a->tokens = b.v;
    a->ntokens = b.n;
    pthread_mutex_unlock(&a->tok_mu);
    if (old) {
        ml_wipe(old, nold * sizeof *old);
        free(old);
    }
    return 0;
}

/* Whether the bearer token is one of ours. Digests make every comparison 32 bytes long,
 * whatever the token's length, and CRYPTO_memcmp takes the same time whatever matches; every
 * token is compared, so the time says nothing about which one matched either. */
static bool token_ok(struct adm *a, const char *token, size_t n)
{
    uint8_t d[32];
    int ok = 0;
    sha256(token, n, d);
    pthread_mutex_lock(&a->tok_mu);
    for (size_t i = 0; i < a->ntokens; i++)
        ok |= CRYPTO_memcmp(d, a->tokens[i], sizeof d) == 0;
    pthread_mutex_unlock(&a->tok_mu);
    ml_wipe(d, sizeof d);
    return ok != 0;
}

/* ------------------------------------------------------------------ routing */

static bool match(const char *pattern, const char *path, char caps[2][ADM_SEGMENT_MAX])
{
    unsigned ncap = 0;
    while (*pattern && *path) {
        if (*pattern == '*') {
            const char *end = strchr(path, '/');
            size_t n = end ? (size_t)(end - path) : strlen(path);
            if (n == 0 || n >= ADM_SEGMENT_MAX || ncap == 2)
                return false;
            memcpy(caps[ncap], path, n);
            caps[ncap][n] = 0;
            ncap++;
            path += n;
            pattern++;
            continue;
        }
        if (*pattern != *path)
            return false;
        pattern++;
        path++;
    }
    return !*pattern && !*path;
}

static const struct adm_route *route_match(int method, const char *path, bool *known,
                                           char caps[2][ADM_SEGMENT_MAX])
{
    *known = false;
    for (const struct adm_route *r = adm_routes; r->pattern; r++) {
        if (!match(r->pattern, path, caps))
            continue;
        *known = true;
        if (r->method == method)
            return r;
    }
    return NULL;
}

static void route_allow(const char *path, char *buf, size_t len)
{
    char caps[2][ADM_SEGMENT_MAX];
    size_t off = 0;
    buf[0] = 0;
    for (const struct adm_route *r = adm_routes; r->pattern && off < len; r++)
        if (match(r->pattern, path, caps))
            off += ml_snprintf(buf + off, len - off, "%s%s", off ? ", " : "",
                               http_method_name(r->method));
}

/* ------------------------------------------------------------------ answers */

void adm_req_free(struct adm_req *r)
{
    if (!r)
        return;
    free(r->body);
    if (r->params) {
        ml_wipe(r->params, r->route ? r->route->params_size : 0); /* may hold a password */
        free(r->params);
    }
    free(r->resp);
    if (r->op && r->op_free)
        r->op_free(r->op); /* a request can end between its continuations (shutdown) */
    free(r->op);
    json_decref(r->out);
    free(r);
}

static void ready(struct adm_req *r)
{
    r->ready = true;
    if (r->wsi)
        lws_callback_on_writable(r->wsi);
}

void adm_reply_text(struct adm_req *r, int status, const char *ctype, char *text, size_t len)
{
    free(r->resp);
    r->resp =
        ml_xmalloc(LWS_PRE + len + 1); /* answers are small; the largest (a listing) is bounded */
    memcpy(r->resp + LWS_PRE, text, len);
    r->resp_len = len;
    r->resp_off = 0;
    r->status = status;
    r->ctype = ctype;
    free(text);
    ready(r);
}

void adm_reply_err(struct adm_req *r, enum http_err e, const char *msg)
{
    size_t len;
    char *s = http_err_json(e, msg, &len);
    r->err = e;
    if ((e == HTTP_E_UNAVAILABLE || e == HTTP_E_DRAINING) && !r->retry_after_s)
        r->retry_after_s = r->adm->pool ? db_pool_retry_after_s(r->adm->pool) : 1;
    adm_reply_text(r, http_err_status(e), "application/json", s, len);
}

void adm_reply_json(struct adm_req *r, int status, json_t *body)
{
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!s) {
        adm_reply_err(r, HTTP_E_INTERNAL, "out of memory");
        return;
    }
    adm_reply_text(r, status, "application/json", s, strlen(s));
}

const char *adm_arg(const struct adm_req *r, const char *name)
{
    for (unsigned i = 0; i < r->nargs; i++)
        if (!strcmp(r->args[i].name, name))
            return r->args[i].value;
    return NULL;
}

/* ------------------------------------------------------------------ completions */

void adm_post(struct adm *a, struct adm_done *d)
{
    pthread_mutex_lock(&a->done_mu);
    bool was_empty = !a->done_head;
    d->next = NULL;
    if (a->done_tail)
        a->done_tail->next = d;
    else
        a->done_head = d;
    a->done_tail = d;
    pthread_mutex_unlock(&a->done_mu);
    if (was_empty && a->ctx)
        lws_cancel_service(a->ctx);
}

/* A request that lost its client (or its server) is freed when nothing is in flight for it. */
static void settle(struct adm_req *r)
{
    if (!r->wsi && r->pending == 0)
        adm_req_free(r);
}

/* Runs the continuations of finished operations; admin thread (or adm_free). */
static void drain_done(struct adm *a)
{
    pthread_mutex_lock(&a->done_mu);
    struct adm_done *d = a->done_head;
    a->done_head = a->done_tail = NULL;
    pthread_mutex_unlock(&a->done_mu);
    while (d) {
        struct adm_done *next = d->next;
        struct adm_req *r = d->req;
        r->pending--;
        if (r->wsi && !a->stopping)
            d->fn(a, r, d);
        free(d->views);
        free(d->groups);
        free(d);
        settle(r);
        d = next;
    }
}

static void job_done(struct db_job *job)
{
    struct adm_req *r = (struct adm_req *)job; /* job is the first member */
    struct adm *a = r->adm;
    r->pending--;
    if (r->wsi && !a->stopping) {
        if (r->on_db)
            r->on_db(a, r); /* whatever the outcome: it looks at r->job.status and r->err */
        else if (job->status == DB_UNAVAILABLE)
            adm_reply_err(r, HTTP_E_UNAVAILABLE, NULL);
        else if (r->err != HTTP_OK || !r->out)
            adm_reply_err(r, r->err != HTTP_OK ? r->err : HTTP_E_INTERNAL, r->errmsg);
        else
            adm_reply_json(r, r->status ? r->status : 200, json_incref(r->out));
    }
    settle(r);
}

void adm_submit(struct adm_req *r, db_work_fn work, void (*on_db)(struct adm *, struct adm_req *))
{
    struct adm *a = r->adm;
    r->job.work = work;
    r->job.done = job_done;
    r->on_db = on_db;
    r->err = HTTP_OK;
    if (!a->pool || db_submit(a->pool, &r->job) < 0) {
        /* refused at once: the continuation hears it like a job that found no connection */
        r->job.status = DB_UNAVAILABLE;
        if (!a->pool)
            ml_strlcpy(r->errmsg, "no database: database.url is not set", sizeof r->errmsg);
        if (on_db)
            on_db(a, r);
        else /* no database at all is the node's configuration, not an outage */
            adm_reply_err(r, a->pool ? HTTP_E_UNAVAILABLE : HTTP_E_CONFLICT,
                          r->errmsg[0] ? r->errmsg : NULL);
        return;
    }
    r->pending++;
}

/* ------------------------------------------------------------------ requests */

static void dispatch(struct adm *a, struct adm_req *r)
{
    const struct adm_route *rt = r->route;
    char msg[200];
    r->dispatched = true;
    if (rt->params) {
        enum http_err e = http_params_json(rt->params, rt->params_size, rt->flags & ADM_BODY,
                                           r->body, r->body_len, &r->params, msg, sizeof msg);
        if (e != HTTP_OK) {
            adm_reply_err(r, e, msg);
            return;
        }
    }
    rt->handler(a, r);
}

/* Keeps the query arguments (lws has them URL-decoded) while the headers are at hand. */
static void read_args(struct lws *wsi, struct adm_req *r)
{
    char frag[ADM_ARG_MAX + 32];
    for (int i = 0; r->nargs < ADM_MAX_ARGS; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n <= 0)
            break;
        char *eq = strchr(frag, '=');
        struct adm_arg *g = &r->args[r->nargs];
        size_t nl = eq ? (size_t)(eq - frag) : strlen(frag);
        if (nl == 0 || nl >= sizeof g->name)
            continue;
        memcpy(g->name, frag, nl);
        g->name[nl] = 0;
        ml_strlcpy(g->value, eq ? eq + 1 : "", sizeof g->value);
        r->nargs++;
    }
}

/* The bearer token of the Authorization header: 0 none, 1 ok, -1 refused. */
static int authenticate(struct adm *a, struct lws *wsi)
{
    char authz[1024];
    int n = http_header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, authz, sizeof authz);
    if (n == 0)
        return 0;
    int rc = -1;
    if (n > 7 && !strncasecmp(authz, "Bearer ", 7)) {
        const char *t = authz + 7;
        while (*t == ' ')
            t++;
        size_t tl = strlen(t);
        while (tl && t[tl - 1] == ' ')
            tl--;
        rc = tl && token_ok(a, t, tl) ? 1 : -1;
    }
    ml_wipe(authz, sizeof authz);
    return rc;
}

static int on_request(struct adm *a, struct lws *wsi, struct adm_conn *pc)
{
    char *uri = NULL;
    int ulen = 0;
    struct adm_req *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    if (pc->req) { /* a previous transaction not finished: should not happen */
        pc->req->wsi = NULL;
        settle(pc->req);
    }
    pc->req = r;
    r->adm = a;
    r->wsi = wsi;
    r->start_us = ml_now_us();
    r->content_length = -1;
    lws_get_peer_simple(wsi, r->peer, sizeof r->peer);

    r->method = lws_http_get_uri_and_method(wsi, &uri, &ulen);
    if (r->method < 0 || !uri) {
        ml_strlcpy(r->path, "?", sizeof r->path);
        r->close_after = true;
        adm_reply_err(r, HTTP_E_METHOD, NULL);
        return 0;
    }
    if ((size_t)ulen >= sizeof r->path) {
        ml_strlcpy(r->path, "(long)", sizeof r->path);
        r->close_after = true;
        adm_reply_err(r, HTTP_E_NOT_FOUND, NULL);
        return 0;
    }
    memcpy(r->path, uri, (size_t)ulen);
    r->path[ulen] = 0;
    read_args(wsi, r);

    const char *why;
    enum http_err fe = http_length(wsi, &r->content_length, &why);
    if (fe != HTTP_OK) {
        r->close_after = true;
        adm_reply_err(r, fe, why);
        return 0;
    }
    bool body_follows = r->content_length > 0;
    bool known = false;
    r->route = route_match(r->method, r->path, &known, r->caps);
    /* Authentication comes first, before the path is judged: without a token nobody learns
     * which paths exist. Health probes (no token) are the exception. */
    if (!r->route || !(r->route->flags & ADM_NOAUTH)) {
        int auth = authenticate(a, wsi);
        if (auth <= 0) {
            r->close_after = body_follows;
            if (auth < 0)
                ML_LOG_LIMITED(ML_LOG_WARN, "admin", "refused token from %s for %s %s", r->peer,
                               http_method_name(r->method), r->path);
            adm_reply_err(r, auth < 0 ? HTTP_E_INVALID_TOKEN : HTTP_E_UNAUTHENTICATED, NULL);
            return 0;
        }
    }
    if (!r->route) {
        r->close_after = body_follows;
        adm_reply_err(r, known ? HTTP_E_METHOD : HTTP_E_NOT_FOUND, NULL);
        return 0;
    }
    fe = http_body_check(wsi, r->method, r->content_length, ADM_MAX_BODY, r->route->params != NULL,
                         &why);
    if (fe != HTTP_OK) {
        r->close_after = true;
        adm_reply_err(r, fe, why);
        return 0;
    }
    if (body_follows) {
        r->body = malloc((size_t)r->content_length + 1);
        if (!r->body)
            return -1;
        return 0; /* dispatched on LWS_CALLBACK_HTTP_BODY_COMPLETION */
    }
    dispatch(a, r);
    return 0;
}

static void access_log(struct adm_req *r)
{
    int64_t us = ml_now_us() - r->start_us;
    /* changes are an audit trail (notice); reads are routine (info) */
    bool change = r->method != LWSHUMETH_GET && r->method != LWSHUMETH_HEAD;
    if (change || ml_log_enabled(ML_LOG_INFO))
        ml_log(change ? ML_LOG_NOTICE : ML_LOG_INFO, "admin", "%s %s %d %lld.%03lldms peer=%s",
               http_method_name(r->method), r->path, r->status, (long long)(us / 1000),
               (long long)(us % 1000), r->peer);
}

static int write_response(struct adm *a, struct lws *wsi, struct adm_conn *pc)
{
    struct adm_req *r = pc->req;
    if (!r || !r->ready)
        return 0;
    if (!r->headers_sent) {
        unsigned char hbuf[LWS_PRE + 2048];
        unsigned char *start = hbuf + LWS_PRE, *p = start, *end = hbuf + sizeof hbuf - 1;
        char num[24];
        if (lws_add_http_common_headers(wsi, (unsigned)r->status, r->ctype,
                                        (lws_filepos_t)r->resp_len, &p, end))
            return -1;
#define HDR(name, val)                                                                             \
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)(name),                            \
                                    (const unsigned char *)(val), (int)strlen(val), &p, end))      \
    return -1
        HDR("cache-control:", "no-store");
        HDR("x-content-type-options:", "nosniff");
        if (r->retry_after_s) {
            ml_snprintf(num, sizeof num, "%u", r->retry_after_s);
            HDR("retry-after:", num);
        }
        if (r->status == 401)
            HDR("www-authenticate:", "Bearer realm=\"meetlite-admin\"");
        if (r->err == HTTP_E_METHOD) {
            char allow[128];
            route_allow(r->path, allow, sizeof allow);
            HDR("allow:", allow);
        }
        if (r->close_after)
            HDR("connection:", "close");
#undef HDR
        r->headers_sent = true;
        if (lws_finalize_write_http_header(wsi, start, &p, end))
            return -1;
        if (r->resp_len) {
            lws_callback_on_writable(wsi);
            return 0;
        }
    } else if (r->resp_off < r->resp_len) {
        /* big answers (listings) leave in chunks, one per WRITEABLE */
        size_t n = r->resp_len - r->resp_off;
        bool last = n <= ADM_WRITE_CHUNK;
        if (!last)
            n = ADM_WRITE_CHUNK;
        /* lws_write needs LWS_PRE bytes before what it writes: the bytes already sent (or the
         * headroom for the first chunk) serve, saved and restored around the call. */
        unsigned char *at = (unsigned char *)r->resp + LWS_PRE + r->resp_off;
        unsigned char saved[LWS_PRE];
        memcpy(saved, at - LWS_PRE, LWS_PRE);
        int w = lws_write(wsi, at, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
        memcpy(at - LWS_PRE, saved, LWS_PRE);
        if (w != (int)n)
            return -1;
        r->resp_off += n;
        if (!last) {
            lws_callback_on_writable(wsi);
            return 0;
        }
    }
    access_log(r);
    if (r->status >= ST_HTTP_MIN && r->status < ST_HTTP_MIN + ST_HTTP_CODES)
        NET_COUNT(a->http_by_status[r->status - ST_HTTP_MIN], 1);
    bool close = r->close_after;
    pc->req = NULL;
    r->wsi = NULL;
    settle(r);
    if (close)
        return -1;
    if (lws_http_transaction_completed(wsi))
        return -1;
    return 0;
}

static int cb_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    struct adm_conn *pc = user;
    struct lws_context *ctx = lws_get_context(wsi);
    struct adm *a = ctx ? lws_context_user(ctx) : NULL;
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        /* every protocol of every vhost gets it, and not once per wake: drain it all */
        if (a && !a->stopping) {
            if (a->pool)
                db_pool_drain(a->pool);
            drain_done(a);
        }
        return 0;
    case LWS_CALLBACK_HTTP:
        return on_request(a, wsi, pc);
    case LWS_CALLBACK_HTTP_BODY: {
        struct adm_req *r = pc->req;
        if (!r || !r->body || r->ready)
            return 0;
        if (r->body_len + len > (size_t)r->content_length) {
            r->body_overflow = true;
            return 0;
        }
        memcpy(r->body + r->body_len, in, len);
        r->body_len += len;
        return 0;
    }
    case LWS_CALLBACK_HTTP_BODY_COMPLETION: {
        struct adm_req *r = pc->req;
        if (!r || r->dispatched || r->ready)
            return 0;
        if (r->body_overflow || r->body_len != (size_t)r->content_length) {
            r->close_after = true;
            adm_reply_err(r, HTTP_E_BAD_REQUEST, "the body does not match its Content-Length");
            return 0;
        }
        dispatch(a, r);
        return 0;
    }
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return write_response(a, wsi, pc);
    case LWS_CALLBACK_CLOSED_HTTP:
        if (pc && pc->req) {
            pc->req->wsi = NULL; /* orphaned: freed when its operations complete */
            settle(pc->req);
            pc->req = NULL;
        }
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols adm_protocols[] = {
    {"adm-http", cb_http, sizeof(struct adm_conn), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_emit(int level, const char *line)
{
    char buf[512];
    ml_strlcpy(buf, line, sizeof buf);
    ml_trim(buf);
    if (level & LLL_ERR)
        ML_ERROR("lws", "%s", buf);
    else
        ML_WARN("lws", "%s", buf);
}

/* Loopback: 127.0.0.0/8 and ::1 (and ::ffff:127.x). */
static bool is_loopback(const struct sockaddr *sa)
{
    struct sockaddr_storage v4;
    if (sa->sa_family == AF_INET6 && ml_addr_embedded_v4(sa, &v4, ML_CANON_MAPPED))
        sa = (const struct sockaddr *)&v4;
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        static const uint8_t lo[16] = {[15] = 1};
        return !memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr, lo, 16);
    }
    return false;
}

static int http_init(struct adm *a, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    char ip[ML_ADDR_STRLEN];
    struct lws_context_creation_info info;
    if (ml_addr_parse(a->cfg.listen, 8081, &ss, &sl) < 0)
        return ml_err(err, errlen, "admin.listen: bad address %s", a->cfg.listen);
    bool tls = a->cfg.tls_cert && a->cfg.tls_key;
    if (!!a->cfg.tls_cert != !!a->cfg.tls_key)
        return ml_err(err, errlen, "admin.tls-cert and admin.tls-key go together");
    if (!is_loopback((struct sockaddr *)&ss) && !tls && !a->cfg.allow_remote)
        return ml_err(err, errlen,
                      "admin.listen %s is not a loopback address: set admin.tls-cert and "
                      "admin.tls-key, or admin.allow-remote = yes to send tokens in clear",
                      a->cfg.listen);
    ml_ip_str((struct sockaddr *)&ss, ip, sizeof ip);
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_emit);
    memset(&info, 0, sizeof info);
    info.port = ml_addr_port((struct sockaddr *)&ss);
    info.iface = ip;
    info.protocols = adm_protocols;
    info.vhost_name = "admin";
    info.user = a;
    info.alpn = "http/1.1";
    info.max_http_header_data = ADM_HEADER_MAX;
    info.max_http_header_pool = 32;
    info.keepalive_timeout = 30;
    info.timeout_secs = 20;
    info.fd_limit_per_thread = (unsigned)a->cfg.max_connections + 32;
    info.count_threads = 1;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    if (ss.ss_family == AF_INET)
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    if (tls) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = a->cfg.tls_cert;
        info.ssl_private_key_filepath = a->cfg.tls_key;
    }
    a->ctx = lws_create_context(&info);
    if (!a->ctx)
        return ml_err(err, errlen,
                      "admin.listen: cannot listen on %s (in use, not a local address, or a TLS "
                      "file that cannot be read?)",
                      a->cfg.listen);
    a->vhost = lws_get_vhost_by_name(a->ctx, "admin");
    a->port = a->vhost ? lws_get_vhost_listen_port(a->vhost) : info.port;
    if (a->port <= 0)
        return ml_err(err, errlen, "admin.listen: cannot listen on %s", a->cfg.listen);
    return 0;
}

/* ------------------------------------------------------------------ life */

static void wake(void *arg)
{
    struct adm *a = arg;
    if (a->ctx)
        lws_cancel_service(a->ctx);
}

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
    pthread_mutex_init(&a->done_mu, NULL);
    a->cfg = *cfg;
    a->cfg.listen = dup_opt(cfg->listen);
    a->cfg.token = NULL; /* only its digests are kept */
    a->cfg.tls_cert = dup_opt(cfg->tls_cert);
    a->cfg.tls_key = dup_opt(cfg->tls_key);
    a->top_meetings = cfg->top_meetings;
    a->deps = *deps;
    a->db = *deps->db;
    a->db.url = dup_opt(deps->db->url);
    a->db.migrations_dir = NULL;
    a->deps.db = &a->db;
    if (tokens_load(a, cfg->token, err, errlen) < 0)
        goto fail;
    if (http_init(a, err, errlen) < 0)
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
    return a;
fail:
    adm_free(a);
    return NULL;
}

static void *service_main(void *arg)
{
    struct adm *a = arg;
    ml_log_set_thread("admin");
    while (!__atomic_load_n(&a->stopping, __ATOMIC_ACQUIRE))
        if (lws_service(a->ctx, 0) < 0)
            break;
    return NULL;
}

int adm_start(struct adm *a, char *err, size_t errlen)
{
    int rc = pthread_create(&a->thread, NULL, service_main, a);
    if (rc)
        return ml_err(err, errlen, "cannot start the admin thread: %s", strerror(rc));
    a->started = true;
    return 0;
}

int adm_port(const struct adm *a)
{
    return a->port;
}

int adm_reload(struct adm *a, const struct adm_config *cfg, char *err, size_t errlen)
{
    __atomic_store_n(&a->top_meetings, cfg->top_meetings, __ATOMIC_RELAXED);
    if (!cfg->token)
        return ml_err(err, errlen, "admin.token cannot be emptied while the listener runs");
    return tokens_load(a, cfg->token, err, errlen);
}

void adm_stop(struct adm *a)
{
    if (!a)
        return;
    if (a->started) {
        __atomic_store_n(&a->stopping, true, __ATOMIC_RELEASE);
        lws_cancel_service(a->ctx);
        pthread_join(a->thread, NULL);
        a->started = false;
    }
    /* The database threads too: a job may be applying TURN credentials through the sync,
     * which the caller frees next. Finished jobs only mark their requests; lws_context_destroy
     * in adm_free() frees them. */
    a->stopping = true;
    db_pool_free(a->pool);
    a->pool = NULL;
}

void adm_free(struct adm *a)
{
    if (!a)
        return;
    adm_stop(a);
    /* closing the connections orphans the requests with operations in flight ... */
    if (a->ctx) {
        lws_context_destroy(a->ctx);
        a->ctx = NULL;
    }
    /* ... which the last completions free */
    drain_done(a);
    free(a->tokens);
    free(a->cfg.listen);
    free(a->cfg.tls_cert);
    free(a->cfg.tls_key);
    free(a->db.url);
    pthread_mutex_destroy(&a->tok_mu);
    pthread_mutex_destroy(&a->done_mu);
    free(a);
}
