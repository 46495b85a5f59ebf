/* The control plane's HTTP server: a libwebsockets context on a service thread of its own;
 * per request the route, the request id, CORS, body limits, authentication, validation by the
 * route's parameter table, then the handler; database jobs come back through the pool's
 * completion queue, drained on LWS_CALLBACK_EVENT_WAIT_CANCELLED. */
#include "config.h"

#include "control/cp-int.h"
#include "net/net.h"

#include <ctype.h>
#include <ev.h>
#include <stdlib.h>
#include <string.h>

#define CP_HEADER_MAX 16384 /* bytes of all request headers: room for a long bearer token */

/* Per connection: the transaction in progress. */
struct cp_conn {
    struct cp_req *req;
};

/* ------------------------------------------------------------------ routing */

/* Matches one pattern; captures '*' segments. */
static bool match(const char *pattern, const char *path, char caps[CP_MAX_CAPTURES][CP_SEGMENT_MAX])
{
    unsigned ncap = 0;
    while (*pattern && *path) {
        if (*pattern == '*') {
            const char *end = strchr(path, '/');
            size_t n = end ? (size_t)(end - path) : strlen(path);
            if (n == 0 || n >= CP_SEGMENT_MAX || ncap == CP_MAX_CAPTURES)
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

const struct cp_route *cp_route_match(const struct cp_route *table, int method, const char *path,
                                      bool *path_known, char caps[CP_MAX_CAPTURES][CP_SEGMENT_MAX])
{
    *path_known = false;
    for (const struct cp_route *r = table; r->pattern; r++) {
        if (!match(r->pattern, path, caps))
            continue;
        *path_known = true;
        if (r->method == method)
            return r;
    }
    return NULL;
}

void cp_route_allow(const struct cp_route *table, const char *path, char *buf, size_t len)
{
    char caps[CP_MAX_CAPTURES][CP_SEGMENT_MAX];
    size_t off = 0;
    buf[0] = 0;
    for (const struct cp_route *r = table; r->pattern && off < len; r++)
        if (match(r->pattern, path, caps))
            off += ml_snprintf(buf + off, len - off, "%s, ", http_method_name(r->method));
    if (off < len)
        ml_snprintf(buf + off, len - off, "OPTIONS");
}

/* ------------------------------------------------------------------ answers */

void cp_req_free(struct cp_req *req)
{
    if (!req)
        return;
    free(req->body);
    free(req->params);
    free(req->resp);
    free(req->status_out);
    for (size_t i = 0; i < req->nrevoked; i++)
        free(req->revoked[i]);
    free(req->revoked);
    free(req);
}

static void set_resp(struct cp_req *req, int status, const char *text, size_t len)
{
    free(req->resp);
    req->resp = ml_xmalloc(LWS_PRE + len + 1);
    memcpy(req->resp + LWS_PRE, text, len);
    req->resp_len = len;
    req->status = status;
}

void cp_reply_ready(struct cp_req *req)
{
    req->ready = true;
    if (req->wsi)
        lws_callback_on_writable(req->wsi);
}

void cp_job_err(struct cp_req *req, enum http_err e, const char *msg)
{
    req->err = e;
    ml_strlcpy(req->errmsg, msg ? msg : "", sizeof req->errmsg);
}

void cp_job_json(struct cp_req *req, int status, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!s) {
        cp_job_err(req, HTTP_E_INTERNAL, NULL);
        return;
    }
    set_resp(req, status, s, strlen(s));
    free(s);
    req->err = HTTP_OK;
}

void cp_reply_err(struct cp_req *req, enum http_err e, const char *msg)
{
    size_t len;
    char *s = http_err_json(e, msg, &len);
    set_resp(req, http_err_status(e), s, len);
    free(s);
    req->err = e;
    if (e == HTTP_E_UNAVAILABLE && !req->retry_after_s)
        req->retry_after_s = req->cp->pool ? db_pool_retry_after_s(req->cp->pool) : 1;
    cp_reply_ready(req);
}

void cp_reply_json(struct cp_req *req, int status, json_t *body)
{
    cp_job_json(req, status, body);
    if (req->err != HTTP_OK)
        cp_reply_err(req, req->err, NULL);
    else
        cp_reply_ready(req);
}

/* A finished database job, on the control-plane thread. */
static void job_done(struct db_job *job)
{
    struct cp_req *req = (struct cp_req *)job; /* job is the first member */
    struct cp *cp = req->cp;
    req->pending = false;
    if (req->touched[0])
        cp_cache_invalidate(cp, req->touched);
    if (req->on_done && job->status != DB_UNAVAILABLE)
        req->on_done(cp, req);
    /* revocations happen whether or not anyone waits for the answer */
    for (size_t i = 0; cp->revoke && i < req->nrevoked; i++)
        cp->revoke(cp->revoke_arg, req->revoked[i]);
    if (req->internal) {
        cp->sweep_running = false;
        if (job->status == DB_UNAVAILABLE)
            ML_DEBUG("http", "sweep skipped: the database is unavailable");
        cp_req_free(req);
        return;
    }
    if (!req->wsi) { /* the client left while the job ran */
        cp_req_free(req);
        return;
    }
    if (job->status == DB_UNAVAILABLE)
        cp_reply_err(req, HTTP_E_UNAVAILABLE, NULL);
    else if (req->err != HTTP_OK || !req->resp)
        cp_reply_err(req, req->err != HTTP_OK ? req->err : HTTP_E_INTERNAL, req->errmsg);
    else
        cp_reply_ready(req);
}

void cp_submit(struct cp_req *req, db_work_fn work)
{
    req->job.work = work;
    req->job.done = job_done;
    req->err = HTTP_OK;
    if (!req->cp->pool || db_submit(req->cp->pool, &req->job) < 0) {
        if (req->internal) {
            req->cp->sweep_running = false;
            cp_req_free(req);
            return;
        }
        cp_reply_err(req, HTTP_E_UNAVAILABLE, NULL);
        return;
    }
    req->pending = true;
}

/* ------------------------------------------------------------------ CORS */

static bool origin_allowed(const struct cp *cp, const char *origin)
{
    if (!*origin)
        return false;
    for (size_t i = 0; i < cp->ncors; i++)
        if (!strcmp(cp->cors[i], "*") || !strcasecmp(cp->cors[i], origin))
            return true;
    return false;
}

/* ------------------------------------------------------------------ requests */

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

static void dispatch(struct cp *cp, struct cp_req *req)
{
    const struct cp_route *r = req->route;
    char msg[200];
    req->dispatched = true;
    if (r->params) {
        enum http_err e = http_params_json(r->params, r->params_size, r->flags & CP_ROUTE_BODY,
                                           req->body, req->body_len, &req->params, msg, sizeof msg);
        if (e != HTTP_OK) {
            cp_reply_err(req, e, msg);
            return;
        }
    }
    r->handler(cp, req);
}

static int on_request(struct cp *cp, struct lws *wsi, struct cp_conn *pc)
{
    char *uri = NULL;
    int ulen = 0;
    struct cp_req *req = calloc(1, sizeof *req);
    if (!req)
        return -1;
    if (pc->req) { /* should not happen: a previous transaction not finished */
        if (pc->req->pending)
            pc->req->wsi = NULL;
        else
            cp_req_free(pc->req);
    }
    pc->req = req;
    req->cp = cp;
    req->wsi = wsi;
    req->start_us = ml_now_us();
    req->content_length = -1;
    lws_get_peer_simple(wsi, req->peer, sizeof req->peer);

    char rid[80];
    int rn = lws_hdr_custom_copy(wsi, rid, sizeof rid, "x-request-id:", 13);
    if (rn > 0 && rid_ok(rid, (size_t)rn))
        ml_strlcpy(req->request_id, rid, sizeof req->request_id);
    else
        ml_snprintf(req->request_id, sizeof req->request_id, "%s-%llx", cp->rid_prefix,
                    (unsigned long long)++cp->req_seq);
    if (http_header(wsi, WSI_TOKEN_ORIGIN, req->origin, sizeof req->origin) < 0)
        req->origin[0] = 0;

    req->method = lws_http_get_uri_and_method(wsi, &uri, &ulen);
    if (req->method < 0 || !uri) {
        ml_strlcpy(req->path, "?", sizeof req->path);
        req->close_after = true;
        cp_reply_err(req, HTTP_E_METHOD, NULL);
        return 0;
    }
    if ((size_t)ulen >= sizeof req->path) {
        ml_strlcpy(req->path, "(long)", sizeof req->path);
        req->close_after = true;
        cp_reply_err(req, HTTP_E_NOT_FOUND, NULL);
        return 0;
    }
    memcpy(req->path, uri, (size_t)ulen);
    req->path[ulen] = 0;

    const char *why;
    enum http_err fe = http_length(wsi, &req->content_length, &why);
    if (fe != HTTP_OK) {
        req->close_after = true;
        cp_reply_err(req, fe, why);
        return 0;
    }
    bool body_follows = req->content_length > 0;

    if (req->method == LWSHUMETH_OPTIONS) { /* CORS preflight */
        req->close_after = body_follows;
        req->status = 204;
        req->resp_len = 0;
        cp_reply_ready(req);
        return 0;
    }
    bool known = false;
    req->route = cp_route_match(cp_api_routes, req->method, req->path, &known, req->caps);
    if (!req->route) {
        req->close_after = body_follows;
        cp_reply_err(req, known ? HTTP_E_METHOD : HTTP_E_NOT_FOUND, NULL);
        return 0;
    }
    fe = http_body_check(wsi, req->method, req->content_length, cp->cfg.max_body,
                         req->route->params != NULL, &why);
    if (fe != HTTP_OK) {
        req->close_after = true;
        cp_reply_err(req, fe, why);
        return 0;
    }
    if (req->route->flags & CP_ROUTE_AUTH) {
        char authz[CP_JWT_MAX + 64];
        int an = http_header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, authz, sizeof authz);
        enum http_err e =
            an < 0 ? HTTP_E_INVALID_TOKEN : cp_authenticate(cp, req, an ? authz : NULL);
        if (e != HTTP_OK) {
            req->close_after = body_follows;
            cp_reply_err(req, e, NULL);
            return 0;
        }
    }
    if (body_follows) {
        req->body = malloc((size_t)req->content_length + 1);
        if (!req->body)
            return -1;
        return 0; /* dispatched on LWS_CALLBACK_HTTP_BODY_COMPLETION */
    }
    dispatch(cp, req);
    return 0;
}

static void access_log(struct cp_req *req)
{
    if (!req->cp->cfg.access_log || !ml_log_enabled(ML_LOG_INFO))
        return;
    int64_t us = ml_now_us() - req->start_us;
    ML_INFO("http", "%s %s %d %lld.%03lldms rid=%s peer=%s%s%s%s%s", http_method_name(req->method),
            req->path, req->status, (long long)(us / 1000), (long long)(us % 1000), req->request_id,
            req->peer, req->user.id[0] ? " user=" : "", req->user.id, req->log_note[0] ? " " : "",
            req->log_note);
}

static int write_response(struct cp *cp, struct lws *wsi, struct cp_conn *pc)
{
    struct cp_req *req = pc->req;
    if (!req || !req->ready)
        return 0;
    if (!req->headers_sent) {
        unsigned char hbuf[LWS_PRE + 8192];
        unsigned char *start = hbuf + LWS_PRE, *p = start, *end = hbuf + sizeof hbuf - 1;
        char num[24];
        if (lws_add_http_common_headers(wsi, (unsigned)req->status, "application/json",
                                        (lws_filepos_t)req->resp_len, &p, end))
            return -1;
#define HDR(name, val)                                                                             \
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)(name),                            \
                                    (const unsigned char *)(val), (int)strlen(val), &p, end))      \
    return -1
        HDR("x-request-id:", req->request_id);
        HDR("cache-control:", "no-store");
        if (req->retry_after_s) {
            ml_snprintf(num, sizeof num, "%u", req->retry_after_s);
            HDR("retry-after:", num);
        }
        if (req->location[0])
            HDR("location:", req->location);
        if (req->err == HTTP_E_METHOD || req->method == LWSHUMETH_OPTIONS) {
            char allow[128];
            cp_route_allow(cp_api_routes, req->path, allow, sizeof allow);
            HDR(req->method == LWSHUMETH_OPTIONS ? "access-control-allow-methods:" : "allow:",
                allow);
        }
        if (origin_allowed(cp, req->origin)) {
            HDR("access-control-allow-origin:", req->origin);
            HDR("vary:", "Origin");
            if (req->method == LWSHUMETH_OPTIONS) {
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
            if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) !=
                (int)(p - start))
                return -1;
        } else {
            if (lws_finalize_write_http_header(wsi, start, &p, end))
                return -1;
            if (req->resp_len) {
                lws_callback_on_writable(wsi);
                return 0;
            }
        }
    } else if (lws_write(wsi, (unsigned char *)req->resp + LWS_PRE, req->resp_len,
                         LWS_WRITE_HTTP_FINAL) != (int)req->resp_len) {
        return -1;
    }
    access_log(req);
    if (req->status >= CP_HTTP_STATUS_MIN && req->status < CP_HTTP_STATUS_MIN + CP_HTTP_STATUSES)
        NET_COUNT(cp->http_by_status[req->status - CP_HTTP_STATUS_MIN], 1);
    bool close = req->close_after;
    cp_req_free(req);
    pc->req = NULL;
    if (close)
        return -1;
    if (lws_http_transaction_completed(wsi))
        return -1;
    return 0;
}

static void on_sweep_timer(lws_sorted_usec_list_t *sul)
{
    struct cp *cp = lws_container_of(sul, struct cp, sweep_sul);
    if (cp->stopping)
        return;
    cp_sweep(cp);
    lws_sul_schedule(cp->ctx, 0, &cp->sweep_sul, on_sweep_timer,
                     cp->cfg.sweep_interval_s * LWS_US_PER_SEC);
}

static int cb_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    struct cp_conn *pc = user;
    struct lws_context *ctx = lws_get_context(wsi);
    struct cp *cp = ctx ? lws_context_user(ctx) : NULL;
    switch (reason) {
    case LWS_CALLBACK_PROTOCOL_INIT:
        if (cp)
            lws_sul_schedule(ctx, 0, &cp->sweep_sul, on_sweep_timer, 200 * LWS_US_PER_MS);
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        /* delivered to every protocol of every vhost, and not 1:1 with wakes: drain here only,
         * and drain everything */
        if (cp && cp->pool && !cp->stopping)
            db_pool_drain(cp->pool);
        return 0;
    case LWS_CALLBACK_WSI_CREATE: /* every accepted connection, HTTP or WebSocket */
        if (cp)
            cp->conns++;
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        if (cp)
            cp->conns--;
        return 0;
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        if (cp && cp->conns >= cp->cfg.max_connections) {
            ML_LOG_LIMITED(ML_LOG_WARN, "http",
                           "connection refused: control.max-connections=%lld open already",
                           cp->cfg.max_connections);
            return 1;
        }
        return 0;
    case LWS_CALLBACK_HTTP: {
        int rc = cp_web_fallback(cp, wsi); /* a meeting link: the client's page */
        return rc <= 0 ? rc : on_request(cp, wsi, pc);
    }
    case LWS_CALLBACK_HTTP_BODY: {
        struct cp_req *req = pc->req;
        if (!req || !req->body || req->ready)
            return 0;
        if (req->body_len + len > (size_t)req->content_length) {
            req->body_overflow = true;
            return 0;
        }
        memcpy(req->body + req->body_len, in, len);
        req->body_len += len;
        return 0;
    }
    case LWS_CALLBACK_HTTP_BODY_COMPLETION: {
        struct cp_req *req = pc->req;
        if (!req || req->dispatched || req->ready)
            return 0;
        if (req->body_overflow || req->body_len != (size_t)req->content_length) {
            req->close_after = true;
            cp_reply_err(req, HTTP_E_BAD_REQUEST, "the body does not match its Content-Length");
            return 0;
        }
        dispatch(cp, req);
        return 0;
    }
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return write_response(cp, wsi, pc);
    case LWS_CALLBACK_CLOSED_HTTP:
        if (pc && pc->req) {
            if (pc->req->pending)
                pc->req->wsi = NULL; /* orphaned: freed when its job completes */
            else
                cp_req_free(pc->req);
            pc->req = NULL;
        }
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols cp_protocols[] = {
    {"cp-http", cb_http, sizeof(struct cp_conn), 0, 0, NULL, 0},
    /* WebSocket signaling (sig-ws.c): the vhost's default for an upgrade naming no protocol */
    {"meetlite-signaling", sig_ws_callback, SIG_PSS_SIZE, 2048, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* Makes meetlite-signaling the protocol of a WebSocket upgrade without Sec-WebSocket-Protocol
 * (browsers' new WebSocket(url)); HTTP requests still go to protocols[0]. */
static const struct lws_protocol_vhost_options sig_pvo_default = {NULL, NULL, "default", "1"};
static const struct lws_protocol_vhost_options sig_pvo = {NULL, &sig_pvo_default,
                                                          "meetlite-signaling", ""};

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

/* Creates the lws context with the API vhost, bound now (so a bind error stops start-up). */
int cp_http_init(struct cp *cp, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    char ip[ML_ADDR_STRLEN];
    struct lws_context_creation_info info;
    if (ml_addr_parse(cp->cfg.listen, 0, &ss, &sl) < 0)
        return ml_err(err, errlen, "control.listen: bad address %s", cp->cfg.listen);
    ml_ip_str((struct sockaddr *)&ss, ip, sizeof ip);
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_emit);
    memset(&info, 0, sizeof info);
    info.port = ml_addr_port((struct sockaddr *)&ss);
    info.iface = ip;
    info.protocols = cp_protocols;
    info.pvo = &sig_pvo;
    info.vhost_name = "api";
    info.user = cp;
    info.alpn = "http/1.1";
    info.max_http_header_data = CP_HEADER_MAX;
    info.max_http_header_pool = 256;
    info.keepalive_timeout = 30;
    info.timeout_secs = 20;
    /* No fd_limit_per_thread: below the process's RLIMIT_NOFILE it makes lws find the
     * connection of every socket event by a linear scan of all of them (its "max fds unrelated
     * to ulimit" mode); control.max-connections is counted in cb_http instead. */
    info.count_threads = 1;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    if (ss.ss_family == AF_INET)
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    if (cp_web_init(cp, &info, err, errlen) < 0)
        return -1;
    if (cp->cfg.tls_cert) { /* HTTPS and wss:// on the same port */
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cp->cfg.tls_cert;
        info.ssl_private_key_filepath = cp->cfg.tls_key;
    }
    /* lws on a libev loop of ours (its evlib_ev plugin): epoll, where lws's built-in loop
     * poll()s every socket at each wake-up, which costs as much as the work itself once
     * thousands of WebSockets are open. A loop of our own registers no signal watcher (an
     * internal one would take SIGINT from the main thread). */
    cp->evloop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOSIGMASK);
    if (!cp->evloop)
        cp->evloop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (!cp->evloop)
        return ml_err(err, errlen, "cannot create the control plane's event loop");
    void *loops[1] = {cp->evloop};
    info.foreign_loops = loops;
    info.options |= LWS_SERVER_OPTION_LIBEV;
    cp->ctx = lws_create_context(&info);
    if (!cp->ctx) { /* the plugin may be missing (libwebsockets-evlib-ev): lws's own loop */
        ev_loop_destroy(cp->evloop);
        cp->evloop = NULL;
        info.foreign_loops = NULL;
        info.options &= ~(uint64_t)LWS_SERVER_OPTION_LIBEV;
        cp->ctx = lws_create_context(&info);
        if (cp->ctx)
            ML_WARN("http", "libwebsockets' libev plugin is missing (apt-get install "
                            "libwebsockets-evlib-ev): lws's poll() loop serves instead, slower "
                            "with thousands of connections");
    }
    if (!cp->ctx)
        return ml_err(err, errlen,
                      "control.listen: cannot listen on %s (in use, or not a local "
                      "address?)",
                      cp->cfg.listen);
    cp->vhost = lws_get_vhost_by_name(cp->ctx, "api");
    cp->port = cp->vhost ? lws_get_vhost_listen_port(cp->vhost) : info.port;
    if (cp->port <= 0) {
        lws_context_destroy(cp->ctx);
        cp->ctx = NULL;
        return ml_err(err, errlen, "control.listen: cannot listen on %s", cp->cfg.listen);
    }
    return 0;
}
