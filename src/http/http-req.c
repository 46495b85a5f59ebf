/* One HTTP transaction from its first line to its answer: the checks every request passes
 * (headers within bounds, a body that says its length, JSON where a body is taken), the
 * service and route, authentication, the body and its parameter table, the handler; answers
 * set on the server thread or by work elsewhere (database jobs, posted work) that completes
 * there; the answer written (large ones in pieces), logged and counted. */
#include "config.h"

#include "http/http-int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

int http_header(struct lws *wsi, enum lws_token_indexes t, char *buf, size_t len)
{
    int n = lws_hdr_total_length(wsi, t);
    if (n <= 0 || (size_t)n >= len) {
        buf[0] = 0;
        return n <= 0 ? 0 : -1;
    }
    return lws_hdr_copy(wsi, buf, (int)len, t) < 0 ? -1 : n;
}

enum http_err http_length(struct lws *wsi, long long *content_length, const char **msg)
{
    char cl[32];
    *msg = NULL;
    *content_length = -1;
    if (http_header(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, cl, sizeof cl) > 0) {
        long long v;
        if (ml_parse_ll(ml_trim(cl), 0, 1LL << 40, &v) < 0) {
            *msg = "bad Content-Length";
            return HTTP_E_BAD_REQUEST;
        }
        *content_length = v;
    }
    /* chunked bodies are not supported: a body must say its length */
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0)
        return HTTP_E_LENGTH_REQUIRED;
    return HTTP_OK;
}

enum http_err http_body_check(struct lws *wsi, int method, long long content_length,
                              long long max_body, bool takes_body, const char **msg)
{
    *msg = NULL;
    if (content_length > max_body)
        return HTTP_E_TOO_LARGE;
    /* lws takes a POST without Content-Length as a body running to the end of the connection:
     * every request that may carry one must say its length, 0 included */
    if ((method == LWSHUMETH_POST || method == LWSHUMETH_PUT || method == LWSHUMETH_PATCH) &&
        content_length < 0)
        return HTTP_E_LENGTH_REQUIRED;
    if (content_length > 0) {
        char ct[128];
        if (http_header(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, ct, sizeof ct) <= 0 ||
            strncasecmp(ct, "application/json", 16) != 0 ||
            (ct[16] && ct[16] != ';' && ct[16] != ' '))
            return HTTP_E_MEDIA_TYPE;
        if (!takes_body) {
            *msg = "this request takes no body";
            return HTTP_E_BAD_REQUEST;
        }
    }
    return HTTP_OK;
}

/* ------------------------------------------------------------------ life of a request */

#define HTTP_HEADERS_ROOM 8192 /* bytes of the headers of an answer */
#define HTTP_WRITE_CHUNK 16384 /* bytes of a large answer written per WRITEABLE */
#define HTTP_AUTHZ_MAX 8256    /* bytes of an Authorization header looked at (a long JWT) */

bool http_req_live(const struct http_req *req)
{
    return req->wsi && !__atomic_load_n(&req->srv->stopping, __ATOMIC_ACQUIRE);
}

/* A request object is a few KiB, more than glibc's per-thread cache serves, and a status read
 * spent about 3 % of its CPU in the allocator's slow path for it: the server keeps up to
 * HTTP_REQ_SPARE freed ones for the next requests (server thread only; the link is the freed
 * object's first bytes). Under AddressSanitizer a kept object is poisoned, so that a use after
 * its release is still reported. */
#define HTTP_REQ_SPARE 64
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define REQ_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define REQ_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define REQ_POISON(p, n) ((void)(p), (void)(n))
#define REQ_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

static struct http_req *spare_pop(struct http_server *srv)
{
    struct http_req *req = srv->spare;
    if (req) {
        REQ_UNPOISON(req, srv->req_size);
        memcpy(&srv->spare, req, sizeof srv->spare);
        srv->nspare--;
    }
    return req;
}

static struct http_req *req_new(struct http_server *srv)
{
    struct http_req *req = spare_pop(srv);
    if (!req)
        return calloc(1, srv->req_size);
    memset(req, 0, srv->req_size);
    return req;
}

static void req_release(struct http_server *srv, struct http_req *req)
{
    if (srv->nspare >= HTTP_REQ_SPARE) {
        free(req);
        return;
    }
    memcpy(req, &srv->spare, sizeof srv->spare);
    srv->spare = req;
    srv->nspare++;
    REQ_POISON(req, srv->req_size); /* the link too: spare_pop unpoisons before reading it */
}

void http_req_spares_free(struct http_server *srv)
{
    struct http_req *req;
    while ((req = spare_pop(srv)))
        free(req);
}

static void req_free(struct http_req *req)
{
    if (req->svc && req->svc->req_free)
        req->svc->req_free(req);
    free(req->body);
    free(req->args);
    if (req->params) {
        ml_wipe(req->params, req->route ? req->route->params_size : 0); /* a password, maybe */
        free(req->params);
    }
    free(req->resp);
    req_release(req->srv, req);
}

/* A request that lost its client is freed when nothing is in flight for it any more. */
static void settle(struct http_req *req)
{
    if (!req->wsi && req->pending == 0)
        req_free(req);
}

const char *http_req_arg(const struct http_req *req, const char *name)
{
    for (unsigned i = 0; i < req->nargs; i++)
        if (!strcmp(req->args[i].name, name))
            return req->args[i].value;
    return NULL;
}

bool http_arg_parse(const char *frag, struct http_arg *out)
{
    const char *eq = strchr(frag, '=');
    size_t nl = eq ? (size_t)(eq - frag) : strlen(frag);
    if (nl == 0 || nl >= sizeof out->name)
        return false;
    memcpy(out->name, frag, nl);
    out->name[nl] = 0;
    ml_strlcpy(out->value, eq ? eq + 1 : "", sizeof out->value);
    return true;
}

/* Keeps the query arguments (lws has them URL-decoded) while the headers are at hand. */
static void read_args(struct lws *wsi, struct http_req *req)
{
    char frag[HTTP_ARG_MAX + 32];
    req->args = ml_xcalloc(HTTP_MAX_ARGS, sizeof *req->args);
    for (int i = 0; req->nargs < HTTP_MAX_ARGS; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n <= 0)
            break;
        if (http_arg_parse(frag, &req->args[req->nargs]))
            req->nargs++;
    }
}

/* ------------------------------------------------------------------ answers */

static void set_resp(struct http_req *req, int status, const char *text, size_t len)
{
    free(req->resp);
    req->resp = ml_xmalloc(LWS_PRE + len + 1); /* answers are bounded: a listing at most */
    memcpy(req->resp + LWS_PRE, text, len);
    req->resp_len = len;
    req->resp_off = 0;
    req->status = status;
}

void http_reply_ready(struct http_req *req)
{
    req->ready = true;
    if (http_req_live(req))
        lws_callback_on_writable(req->wsi);
}

void http_job_err(struct http_req *req, enum http_err e, const char *msg)
{
    req->err = e;
    ml_strlcpy(req->errmsg, msg ? msg : "", sizeof req->errmsg);
}

void http_job_body(struct http_req *req, int status, const char *text, size_t len)
{
    set_resp(req, status, text, len);
    req->err = HTTP_OK;
}

void http_job_json(struct http_req *req, int status, json_t *body)
{
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!s) {
        http_job_err(req, HTTP_E_INTERNAL, NULL);
        return;
    }
    http_job_body(req, status, s, strlen(s));
    free(s);
}

void http_reply_err(struct http_req *req, enum http_err e, const char *msg)
{
    size_t len;
    char *s = http_err_json(e, msg, &len);
    set_resp(req, http_err_status(e), s, len);
    free(s);
    req->ctype = NULL;
    req->err = e;
    /* every 503 says when to come back: the database's own estimate, else a few seconds (a
     * draining node: by then a load balancer has taken it out of rotation) */
    if (http_err_status(e) == 503 && !req->retry_after_s)
        req->retry_after_s = e == HTTP_E_UNAVAILABLE && req->svc && req->svc->pool
                                 ? db_pool_retry_after_s(req->svc->pool)
                                 : 5;
    http_reply_ready(req);
}

void http_reply_json(struct http_req *req, int status, json_t *body)
{
    http_job_json(req, status, body);
    if (req->err != HTTP_OK)
        http_reply_err(req, req->err, NULL);
    else
        http_reply_ready(req);
}

void http_reply_text(struct http_req *req, int status, const char *ctype, char *text, size_t len)
{
    set_resp(req, status, text, len);
    free(text);
    req->ctype = ctype;
    req->err = HTTP_OK;
    http_reply_ready(req);
}

/* ------------------------------------------------------------------ jobs and posted work */

void http_answer_job(struct http_req *req)
{
    if (req->job.status == DB_UNAVAILABLE)
        http_reply_err(req, HTTP_E_UNAVAILABLE, NULL);
    else if (req->err != HTTP_OK || !req->resp)
        http_reply_err(req, req->err != HTTP_OK ? req->err : HTTP_E_INTERNAL, req->errmsg);
    else
        http_reply_ready(req);
}

/* A finished database job, on the server thread (or in the pool's last drain at shutdown). */
static void job_done(struct db_job *job)
{
    struct http_req *req = (struct http_req *)job; /* job is the first member */
    http_then_fn then = req->then;
    req->then = NULL;
    req->pending--;
    if (then)
        then(req);
    else if (http_req_live(req))
        http_answer_job(req);
    settle(req);
}

void http_submit(struct http_req *req, db_work_fn work, http_then_fn then)
{
    struct db_pool *pool = req->svc ? req->svc->pool : NULL;
    req->job.work = work;
    req->job.done = job_done;
    req->err = HTTP_OK;
    req->then = then;
    if (pool && db_submit(pool, &req->job) == 0) {
        req->pending++;
        return;
    }
    /* refused at once: the continuation hears it as a job that found no connection */
    req->then = NULL;
    req->job.status = DB_UNAVAILABLE;
    if (!pool)
        ml_strlcpy(req->errmsg, "no database: database.url is not set", sizeof req->errmsg);
    if (then)
        then(req);
    else /* no database at all is the node's configuration, not an outage */
        http_reply_err(req, pool ? HTTP_E_UNAVAILABLE : HTTP_E_CONFLICT,
                       req->errmsg[0] ? req->errmsg : NULL);
}

void http_hold(struct http_req *req)
{
    req->pending++;
}

void http_unhold(struct http_req *req)
{
    req->pending--;
}

void http_post(struct http_done *d)
{
    struct http_server *srv = d->req->srv;
    pthread_mutex_lock(&srv->done_mu);
    bool was_empty = !srv->done_head;
    d->next = NULL;
    if (srv->done_tail)
        srv->done_tail->next = d;
    else
        __atomic_store_n(&srv->done_head, d, __ATOMIC_RELEASE); /* read unlocked by the drain */
    srv->done_tail = d;
    pthread_mutex_unlock(&srv->done_mu);
    if (was_empty)
        http_server_wake(srv);
}

void http_posted_drain(struct http_server *srv)
{
    /* most wakes are for the pools or signaling: no lock when nothing was posted (a post
     * wakes the thread after it unlocked, so this read sees it) */
    if (!__atomic_load_n(&srv->done_head, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&srv->done_mu);
    struct http_done *d = srv->done_head;
    __atomic_store_n(&srv->done_head, NULL, __ATOMIC_RELAXED);
    srv->done_tail = NULL;
    pthread_mutex_unlock(&srv->done_mu);
    while (d) {
        struct http_done *next = d->next;
        struct http_req *req = d->req;
        req->pending--;
        if (http_req_live(req))
            d->fn(d);
        if (d->free)
            d->free(d);
        else
            free(d);
        settle(req);
        d = next;
    }
}

/* ------------------------------------------------------------------ a request arrives */

static bool rid_ok(const char *s, size_t n)
{
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.' &&
            s[i] != ':')
            return false;
    return true;
}

static const struct http_service *service_for(const struct http_server *srv, const char *path)
{
    for (size_t i = 0; i < srv->cfg.nservices; i++)
        if (!strncmp(path, srv->svc[i].prefix, strlen(srv->svc[i].prefix)))
            return &srv->svc[i];
    return NULL;
}

/* The service's authentication of the request's bearer token. */
static enum http_err authenticate(struct http_req *req)
{
    char authz[HTTP_AUTHZ_MAX];
    if (!req->svc->authenticate)
        return HTTP_E_UNAUTHENTICATED;
    int n = http_header(req->wsi, WSI_TOKEN_HTTP_AUTHORIZATION, authz, sizeof authz);
    if (n < 0)
        return HTTP_E_INVALID_TOKEN;
    enum http_err e = req->svc->authenticate(req, n ? authz : NULL);
    ml_wipe(authz, (size_t)n);
    return e;
}

static void dispatch(struct http_req *req)
{
    const struct http_route *r = req->route;
    char msg[200];
    req->dispatched = true;
    if (r->params) {
        enum http_err e = http_params_json(r->params, r->params_size, r->flags & HTTP_ROUTE_BODY,
                                           req->body, req->body_len, &req->params, msg, sizeof msg);
        if (e != HTTP_OK) {
            http_reply_err(req, e, msg);
            return;
        }
    }
    r->handler(req);
}

/* Refuses a request before its route runs; close: the connection closes after the answer. */
static int refuse(struct http_req *req, enum http_err e, const char *msg, bool close)
{
    req->close_after = close;
    http_reply_err(req, e, msg);
    return 0;
}

int http_req_start(struct http_server *srv, struct lws *wsi, struct http_conn *conn)
{
    char *uri = NULL;
    int ulen = 0;
    struct http_req *req = req_new(srv);
    if (!req)
        return -1;
    if (conn->req) { /* a previous transaction not finished: should not happen */
        conn->req->wsi = NULL;
        settle(conn->req);
    }
    conn->req = req;
    req->srv = srv;
    req->wsi = wsi;
    req->start_us = ml_now_us();
    req->content_length = -1;
    http_client_addr(wsi, req->peer, sizeof req->peer);
    if (srv->cfg.request_ids) {
        char rid[80];
        int rn = lws_hdr_custom_copy(wsi, rid, sizeof rid, "x-request-id:", 13);
        if (rn > 0 && rid_ok(rid, (size_t)rn))
            ml_strlcpy(req->request_id, rid, sizeof req->request_id);
        else
            ml_snprintf(req->request_id, sizeof req->request_id, "%s-%llx", srv->rid_prefix,
                        (unsigned long long)++srv->req_seq);
    }
    if (srv->cfg.ncors && http_header(wsi, WSI_TOKEN_ORIGIN, req->origin, sizeof req->origin) < 0)
        req->origin[0] = 0;

    req->method = lws_http_get_uri_and_method(wsi, &uri, &ulen);
    if (req->method < 0 || !uri) {
        ml_strlcpy(req->path, "?", sizeof req->path);
        return refuse(req, HTTP_E_METHOD, NULL, true);
    }
    if ((size_t)ulen >= sizeof req->path) {
        ml_strlcpy(req->path, "(long)", sizeof req->path);
        return refuse(req, HTTP_E_NOT_FOUND, NULL, true);
    }
    memcpy(req->path, uri, (size_t)ulen);
    req->path[ulen] = 0;

    const char *why;
    enum http_err e = http_length(wsi, &req->content_length, &why);
    if (e != HTTP_OK)
        return refuse(req, e, why, true);
    bool body_follows = req->content_length > 0;

    req->svc = service_for(srv, req->path);
    req->arg = req->svc ? req->svc->arg : NULL;
    if (req->method == LWSHUMETH_OPTIONS && srv->cfg.preflight) { /* CORS preflight */
        req->close_after = body_follows;
        req->status = 204;
        req->resp_len = 0;
        http_reply_ready(req);
        return 0;
    }
    if (!req->svc)
        return refuse(req, HTTP_E_NOT_FOUND, NULL, body_follows);
    const struct http_service *svc = req->svc;
    bool known = false;
    req->route =
        http_route_match(svc->routes, req->method, req->path, svc->segment_max, &known, req->caps);
    if (svc->token_first && !(req->route && (req->route->flags & HTTP_ROUTE_PUBLIC))) {
        /* before the path is judged: without a token nobody learns which paths exist */
        e = authenticate(req);
        if (e != HTTP_OK)
            return refuse(req, e, NULL, body_follows);
    }
    if (!req->route)
        return refuse(req, known ? HTTP_E_METHOD : HTTP_E_NOT_FOUND, NULL, body_follows);
    e = http_body_check(wsi, req->method, req->content_length,
                        req->route->max_body ? req->route->max_body : srv->cfg.max_body,
                        req->route->params != NULL, &why);
    if (e != HTTP_OK)
        return refuse(req, e, why, true);
    if (!svc->token_first && (req->route->flags & HTTP_ROUTE_AUTH)) {
        e = authenticate(req);
        if (e != HTTP_OK)
            return refuse(req, e, NULL, body_follows);
    }
    if (req->route->flags & HTTP_ROUTE_QUERY)
        read_args(wsi, req);
    if (body_follows) {
        req->body = malloc((size_t)req->content_length + 1);
        if (!req->body)
            return -1;
        return 0; /* dispatched on LWS_CALLBACK_HTTP_BODY_COMPLETION */
    }
    dispatch(req);
    return 0;
}

void http_req_body(struct http_conn *conn, const void *in, size_t len)
{
    struct http_req *req = conn->req;
    if (!req || !req->body || req->ready)
        return;
    if (req->body_len + len > (size_t)req->content_length) {
        req->body_overflow = true;
        return;
    }
    memcpy(req->body + req->body_len, in, len);
    req->body_len += len;
}

void http_req_body_done(struct http_conn *conn)
{
    struct http_req *req = conn->req;
    if (!req || req->dispatched || req->ready)
        return;
    if (req->body_overflow || req->body_len != (size_t)req->content_length) {
        refuse(req, HTTP_E_BAD_REQUEST, "the body does not match its Content-Length", true);
        return;
    }
    dispatch(req);
}

void http_req_closed(struct http_conn *conn)
{
    struct http_req *req = conn->req;
    if (!req)
        return;
    conn->req = NULL;
    req->wsi = NULL; /* orphaned: freed when its last operation completes */
    settle(req);
}

/* ------------------------------------------------------------------ the answer goes out */

static bool origin_allowed(const struct http_server *srv, const char *origin)
{
    if (!*origin)
        return false;
    for (size_t i = 0; i < srv->cfg.ncors; i++)
        if (!strcmp(srv->cfg.cors[i], "*") || !strcasecmp(srv->cfg.cors[i], origin))
            return true;
    return false;
}

static void access_log(const struct http_req *req)
{
    const struct http_server_config *c = &req->srv->cfg;
    bool change = req->method != LWSHUMETH_GET && req->method != LWSHUMETH_HEAD;
    /* changes are an audit trail (notice) where the server keeps one; reads are routine */
    enum ml_log_level level = c->audit && change ? ML_LOG_NOTICE : ML_LOG_INFO;
    if (!(c->access_log || level == ML_LOG_NOTICE) || !ml_log_enabled(level))
        return;
    int64_t us = ml_now_us() - req->start_us;
    /* log.format = json: the same figures as members of their own */
    const struct ml_log_field f[] = {
        {"method", http_method_name(req->method), 0},
        {"path", req->path, 0},
        {"status", NULL, req->status},
        {"duration_us", NULL, (long long)us},
        {"peer", req->peer, 0},
        {"request_id", req->request_id, 0},
        {"user", req->user.id, 0},
        {"note", req->log_note, 0},
    };
    ml_log_fields(level, c->name, f, ML_ARRAY_LEN(f), "%s %s %d %lld.%03lldms%s%s peer=%s%s%s%s%s",
                  http_method_name(req->method), req->path, req->status, (long long)(us / 1000),
                  (long long)(us % 1000), req->request_id[0] ? " rid=" : "", req->request_id,
                  req->peer, req->user.id[0] ? " user=" : "", req->user.id,
                  req->log_note[0] ? " " : "", req->log_note);
}

/* The status line and headers; small answers leave with them in one write. 1: the body
 * follows in pieces, 0: done, -1: close. */
static int write_head(struct http_server *srv, struct lws *wsi, struct http_req *req)
{
    unsigned char hbuf[LWS_PRE + HTTP_HEADERS_ROOM];
    unsigned char *start = hbuf + LWS_PRE, *p = start, *end = hbuf + sizeof hbuf - 1;
    char num[24];
    if (lws_add_http_common_headers(wsi, (unsigned)req->status,
                                    req->ctype ? req->ctype : "application/json",
                                    (lws_filepos_t)req->resp_len, &p, end))
        return -1;
#define HDR(name, val)                                                                             \
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)(name),                            \
                                    (const unsigned char *)(val), (int)strlen(val), &p, end))      \
    return -1
    if (req->request_id[0])
        HDR("x-request-id:", req->request_id);
    HDR("cache-control:", "no-store");
    if (req->retry_after_s) {
        ml_snprintf(num, sizeof num, "%u", req->retry_after_s);
        HDR("retry-after:", num);
    }
    if (req->location[0])
        HDR("location:", req->location);
    if (req->status == 401 && req->svc && req->svc->realm) {
        char v[128];
        ml_snprintf(v, sizeof v, "Bearer realm=\"%s\"", req->svc->realm);
        HDR("www-authenticate:", v);
    }
    bool preflight = req->method == LWSHUMETH_OPTIONS && srv->cfg.preflight;
    if (req->err == HTTP_E_METHOD || preflight) {
        char allow[128] = "";
        if (req->svc)
            http_route_allow(req->svc->routes, req->path, req->svc->segment_max, srv->cfg.preflight,
                             allow, sizeof allow);
        else
            ml_strlcpy(allow, "OPTIONS", sizeof allow);
        HDR(preflight ? "access-control-allow-methods:" : "allow:", allow);
    }
    if (origin_allowed(srv, req->origin)) {
        HDR("access-control-allow-origin:", req->origin);
        HDR("vary:", "Origin");
        if (preflight) {
            HDR("access-control-allow-headers:", "Authorization, Content-Type, X-Request-Id");
            HDR("access-control-max-age:", "600");
        } else {
            HDR("access-control-expose-headers:", "X-Request-Id, Retry-After, Location");
        }
    }
    if (req->close_after)
        HDR("connection:", "close");
#undef HDR
    req->headers_sent = true;
    if (req->resp_len && req->resp_len <= (size_t)(end - p) - 8) {
        /* small answers leave in one write: headers and body together */
        if (lws_finalize_http_header(wsi, &p, end))
            return -1;
        memcpy(p, req->resp + LWS_PRE, req->resp_len);
        p += req->resp_len;
        req->resp_off = req->resp_len;
        return lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) ==
                       (int)(p - start)
                   ? 0
                   : -1;
    }
    if (lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    return req->resp_len ? 1 : 0;
}

/* The next piece of a large body. 1: more follows, 0: done, -1: close. */
static int write_piece(struct lws *wsi, struct http_req *req)
{
    size_t n = req->resp_len - req->resp_off;
    bool last = n <= HTTP_WRITE_CHUNK;
    if (!last)
        n = HTTP_WRITE_CHUNK;
    /* lws_write needs LWS_PRE bytes before what it writes: the bytes already sent (or the
     * headroom, for the first piece) serve, saved and restored around the call */
    unsigned char *at = (unsigned char *)req->resp + LWS_PRE + req->resp_off;
    unsigned char saved[LWS_PRE];
    memcpy(saved, at - LWS_PRE, LWS_PRE);
    int w = lws_write(wsi, at, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
    memcpy(at - LWS_PRE, saved, LWS_PRE);
    if (w != (int)n)
        return -1;
    req->resp_off += n;
    return last ? 0 : 1;
}

int http_req_write(struct http_server *srv, struct lws *wsi, struct http_conn *conn)
{
    struct http_req *req = conn->req;
    if (!req || !req->ready)
        return 0;
    int rc = req->headers_sent ? write_piece(wsi, req) : write_head(srv, wsi, req);
    if (rc < 0)
        return -1;
    if (rc > 0) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    access_log(req);
    if (req->status >= HTTP_STATUS_MIN && req->status < HTTP_STATUS_MIN + HTTP_STATUSES)
        ML_COUNT(srv->by_status[req->status - HTTP_STATUS_MIN], 1);
    /* one place times every answer of ours: its service's class (a path no service took, or
     * a page's fallback: the page), log-in routes apart */
    http_latency_add(srv,
                     !req->svc                                              ? HTTP_CLASS_PAGE
                     : req->route && (req->route->flags & HTTP_ROUTE_LOGIN) ? HTTP_CLASS_AUTH
                                                                            : req->svc->cls,
                     ml_now_us() - req->start_us);
    bool close = req->close_after;
    conn->req = NULL;
    req->wsi = NULL;
    settle(req);
    if (close)
        return -1;
    if (lws_http_transaction_completed(wsi))
        return -1;
    return 0;
}
