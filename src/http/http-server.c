/* The server core: one libwebsockets context per listening address, on a service thread of its
 * own that runs a libev loop (which also carries the listening socket, http-accept.c); the HTTP
 * protocol's callback (connections counted, requests handed to http-req.c, wakes from other
 * threads), the WebSocket protocols beside it, the services' and protocols' ticks, and an orderly
 * stop. */
#include "config.h"

#include "http/http-int.h"

#include <ev.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ connections */

#define HTTP_FWD_MAX 2048 /* bytes of a forwarding header read; a longer one is not believed */

void http_client_addr(struct lws *wsi, char *buf, size_t len)
{
    /* The one place that says who the client is: the peer (for a connection adopted from a
     * shared listener, the address it came with: its socket may be a socketpair), or behind a
     * trusted proxy the client its header names. */
    const struct http_conn_info *info = lws_get_opaque_user_data(wsi);
    if (info && info->adopted)
        ml_ip_str((const struct sockaddr *)&info->peer, buf, len);
    else
        lws_get_peer_simple(wsi, buf, len);
    struct lws_context *ctx = lws_get_context(wsi);
    struct http_server *srv = ctx ? lws_context_user(ctx) : NULL;
    const struct ml_cidr_set *trusted = srv ? srv->cfg.trusted_proxies : NULL;
    if (!trusted || !trusted->n)
        return;
    struct sockaddr_storage peer;
    socklen_t plen;
    if (ml_addr_parse(buf, 0, &peer, &plen) < 0)
        return;
    char value[HTTP_FWD_MAX];
    int n;
    if (srv->cfg.fwd_header == HTTP_FWD_FORWARDED) {
        n = lws_hdr_custom_length(wsi, "forwarded:", 10);
        if (n <= 0 || n >= (int)sizeof value ||
            lws_hdr_custom_copy(wsi, value, (int)sizeof value, "forwarded:", 10) < 0)
            return;
    } else {
        n = http_header(wsi, WSI_TOKEN_X_FORWARDED_FOR, value, sizeof value);
        if (n <= 0)
            return;
    }
    char client[ML_ADDR_STRLEN];
    if (http_forwarded_client(trusted, (struct sockaddr *)&peer, srv->cfg.fwd_header, value, client,
                              sizeof client))
        ml_strlcpy(buf, client, len);
}

int http_server_adopt(struct http_server *srv, int fd, const struct sockaddr *peer, bool tls)
{
    if (__atomic_load_n(&srv->stopping, __ATOMIC_ACQUIRE)) {
        close(fd);
        return -1;
    }
    struct http_adopt *a = ml_xmalloc(sizeof *a);
    a->next = NULL;
    a->fd = fd;
    a->tls = tls;
    memset(&a->peer, 0, sizeof a->peer);
    memcpy(&a->peer, peer, ml_addr_len(peer));
    pthread_mutex_lock(&srv->adopt_mu);
    if (srv->adopt_tail)
        srv->adopt_tail->next = a;
    else
        srv->adopt_head = a;
    srv->adopt_tail = a;
    pthread_mutex_unlock(&srv->adopt_mu);
    lws_cancel_service(srv->ctx);
    return 0;
}

/* Takes the queued connections; with serve false (stopping), closes them. */
static void adopt_drain(struct http_server *srv, bool serve)
{
    if (!__atomic_load_n(&srv->adopt_head, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&srv->adopt_mu);
    struct http_adopt *a = srv->adopt_head;
    srv->adopt_head = srv->adopt_tail = NULL;
    pthread_mutex_unlock(&srv->adopt_mu);
    while (a) {
        struct http_adopt *next = a->next;
        if (serve)
            http_admit(srv, a->fd, (struct sockaddr *)&a->peer, true, a->tls); /* as accepted */
        else
            close(a->fd);
        free(a);
        a = next;
    }
}

void *http_ws_arg(struct lws *wsi)
{
    const struct lws_protocols *p = lws_get_protocol(wsi);
    return p ? p->user : NULL;
}

/* ------------------------------------------------------------------ TLS */

/* The one place a vhost's TLS context gets its certificate from a replaceable holder, so that
 * http_server_tls_set (and http_server_tls_adopt_set) reach every new handshake without
 * touching the connections already made. lws calls it (through LOAD_EXTRA_SERVER_VERIFY_CERTS,
 * in: the vhost) for each TLS vhost make_vhost creates: the server's own takes srv->tls, the
 * shared listener's handover vhost (HTTP_VHOST_TLS, cfg.adopt_tls) srv->tls_adopt. */
static int http_tls_vhost_attach(struct http_server *srv, struct lws_vhost *vh, SSL_CTX *ssl_ctx)
{
    const char *name = vh ? lws_get_vhost_name(vh) : NULL;
    struct net_tls_cert *holder = name && !strcmp(name, HTTP_VHOST_TLS) ? srv->tls_adopt : srv->tls;
    if (holder && ssl_ctx)
        net_tls_cert_attach(holder, ssl_ctx);
    return 0;
}

/* A holder with the pair of cert and key, checked as lws will load them. 0 or -1 with err. */
static int tls_holder(struct net_tls_cert **out, const char *cert, const char *key, char *err,
                      size_t errlen)
{
    SSL_CTX *pair = net_tls_cert_load(cert, key, err, errlen);
    if (!pair)
        return -1;
    *out = net_tls_cert_new();
    if (*out)
        net_tls_cert_set(*out, pair);
    SSL_CTX_free(pair);
    return *out ? 0 : ml_err(err, errlen, "out of memory");
}

bool http_server_tls(const struct http_server *srv)
{
    return srv->tls != NULL;
}

void http_server_tls_set(struct http_server *srv, SSL_CTX *loaded)
{
    if (srv->tls)
        net_tls_cert_set(srv->tls, loaded);
}

bool http_server_tls_adopt_set(struct http_server *srv, SSL_CTX *loaded)
{
    if (!srv || !srv->tls_adopt)
        return false;
    net_tls_cert_set(srv->tls_adopt, loaded);
    return true;
}

/* ------------------------------------------------------------------ the HTTP protocol */

static int cb_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    struct http_conn *conn = user;
    struct lws_context *ctx = lws_get_context(wsi);
    struct http_server *srv = ctx ? lws_context_user(ctx) : NULL;
    if (!srv)
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    switch (reason) {
    case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS: /* user: the vhost's SSL_CTX */
        return http_tls_vhost_attach(srv, in, (SSL_CTX *)user);
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        /* delivered to every protocol of every vhost, and not 1:1 with wakes: collect here
         * only (the first vhost), and collect everything */
        if (http_wake_is_primary(wsi) && !__atomic_load_n(&srv->stopping, __ATOMIC_ACQUIRE)) {
            adopt_drain(srv, true);
            for (size_t i = 0; i < srv->cfg.nservices; i++)
                if (srv->svc[i].wake)
                    srv->svc[i].wake(srv->svc[i].arg);
            http_posted_drain(srv);
        }
        return 0;
    case LWS_CALLBACK_WSI_CREATE: /* every accepted connection, HTTP or WebSocket */
        srv->conns++;
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        srv->conns--;
        http_conn_gone(srv, wsi);
        return 0;
    case LWS_CALLBACK_FILTER_HTTP_CONNECTION:
    case LWS_CALLBACK_ADD_HEADERS:
        /* a file of a mount (the page) is served by lws: timed from the first of these */
        if (conn && !conn->file_start_us)
            conn->file_start_us = ml_now_us();
        return lws_callback_http_dummy(wsi, reason, user, in, len); /* what it did before */
    case LWS_CALLBACK_HTTP_FILE_COMPLETION:
        if (conn && conn->file_start_us) {
            http_latency_add(srv, HTTP_CLASS_PAGE, ml_now_us() - conn->file_start_us);
            conn->file_start_us = 0;
        }
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    case LWS_CALLBACK_HTTP:
        /* a new transaction: the fallback may serve it as a file (timed at its completion);
         * otherwise it is ours to answer, and http-req.c times it */
        if (conn)
            conn->file_start_us = ml_now_us();
        if (srv->cfg.fallback) {
            int rc = srv->cfg.fallback(srv->cfg.fallback_arg, wsi);
            if (rc <= 0)
                return rc;
        }
        if (conn)
            conn->file_start_us = 0;
        return http_req_start(srv, wsi, conn);
    case LWS_CALLBACK_HTTP_BODY:
        http_req_body(conn, in, len);
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        http_req_body_done(conn);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return http_req_write(srv, wsi, conn);
    case LWS_CALLBACK_CLOSED_HTTP:
        if (conn)
            http_req_closed(conn);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ------------------------------------------------------------------ ticks */

static void on_timer(lws_sorted_usec_list_t *sul)
{
    struct http_timer *t = lws_container_of(sul, struct http_timer, sul);
    struct http_server *srv = t->srv;
    if (__atomic_load_n(&srv->stopping, __ATOMIC_ACQUIRE))
        return;
    t->fn(t->arg);
    if (t->every_ms > 0)
        lws_sul_schedule(srv->ctx, 0, &t->sul, on_timer, t->every_ms * LWS_US_PER_MS);
}

static void add_timer(struct http_server *srv, void (*fn)(void *), void *arg, int64_t first_ms,
                      int64_t every_ms)
{
    struct http_timer *t = &srv->timers[srv->ntimers++];
    t->srv = srv;
    t->fn = fn;
    t->arg = arg;
    t->first_ms = first_ms;
    t->every_ms = every_ms;
}

/* ------------------------------------------------------------------ life */

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

/* The lws protocols: plain HTTP first (it gets what no mount and no WebSocket takes), then the
 * WebSocket ones, each with its arg as the protocol's user pointer (http_ws_arg). */
static void make_protocols(struct http_server *srv)
{
    struct lws_protocols *p = srv->protocols;
    memset(p, 0, sizeof srv->protocols);
    p[0].name = HTTP_PROTOCOL;
    p[0].callback = cb_http;
    p[0].per_session_data_size = sizeof(struct http_conn);
    for (size_t i = 0; i < srv->cfg.nws; i++) {
        const struct http_ws *w = &srv->ws[i];
        p[1 + i].name = w->name;
        p[1 + i].callback = w->callback;
        p[1 + i].per_session_data_size = w->pss_size;
        p[1 + i].rx_buffer_size = w->rx_buffer_size;
        p[1 + i].id = (unsigned)i;
        p[1 + i].user = w->arg;
        if (w->is_default) {
            /* the vhost's default for an upgrade naming no protocol; plain HTTP still goes to
             * protocols[0] */
            srv->pvo_default = (struct lws_protocol_vhost_options){NULL, NULL, "default", "1"};
            srv->pvo = (struct lws_protocol_vhost_options){NULL, &srv->pvo_default, w->name, ""};
        }
    }
}

/* What the context and every vhost of the server are made with (vhost-level fields are ignored
 * by the context, and the other way round). */
/* No lws "validity" timer per connection. lws's default policy (ping after 300 s of silence,
 * hang up at 310) keeps one on every connection and moves it on each frame received; lws's
 * timers are one sorted list per thread, so each move walks the list: with 15,000 idle
 * WebSockets a node spent a quarter of a core in lws_dll2_add_sorted moving them for the
 * pongs of signaling's pings, and its connects slowed to tens a second (perf, `PARTS=idle-host
 * tests/bench/bench-signaling.sh`). Signaling keeps its own pings and idle timeout in one pass
 * a second (sig_tick); HTTP keeps lws's keep-alive and request timeouts, which are set per
 * request and so few. A policy whose secs_since_valid_hangup is 0 schedules nothing. */
static const lws_retry_bo_t no_validity_timer = {.secs_since_valid_ping = 0,
                                                 .secs_since_valid_hangup = 0};

static void base_info(struct http_server *srv, struct lws_context_creation_info *info)
{
    memset(info, 0, sizeof *info);
    info->port = CONTEXT_PORT_NO_LISTEN_SERVER; /* a server vhost; http-accept.c accepts, or a
                                                 * shared listener hands sockets over */
    info->protocols = srv->protocols;
    info->pvo = srv->pvo.name ? &srv->pvo : NULL;
    info->user = srv;
    info->alpn = "http/1.1";
    info->max_http_header_data = (unsigned short)srv->cfg.max_header;
    info->max_http_header_pool = (unsigned short)srv->cfg.header_pool;
    info->keepalive_timeout = 30;
    info->timeout_secs = 20;
    info->retry_and_idle_policy = &no_validity_timer; /* the vhosts' (make_vhost) */
    /* No fd_limit_per_thread: below the process's RLIMIT_NOFILE it makes lws find the
     * connection of every socket event by a linear scan of all of them (its "max fds unrelated
     * to ulimit" mode); max_connections is applied at accept instead (http-accept.c). */
    info->count_threads = 1;
    info->options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    if (srv->ipv4)
        info->options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info->headers = srv->cfg.headers;
    info->mounts = srv->cfg.mounts;
}

/* Creates the lws context on a libev loop of our own. lws's built-in loop poll()s every socket
 * at each wake-up, which costs as much as the work itself once thousands of WebSockets are
 * open; epoll through libev does not. The loop also carries our listening socket
 * (http-accept.c), so lws's own loop, which we cannot add a socket to, is not an option. A
 * loop of our own registers no signal watcher (an internal one would take SIGINT from the main
 * thread). The vhosts are made by make_vhost. */
static int make_context(struct http_server *srv)
{
    struct lws_context_creation_info info;
    base_info(srv, &info);
    info.options |= LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    if (srv->cfg.tls_cert || srv->cfg.adopt_tls.cert)
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    srv->evloop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOSIGMASK);
    if (!srv->evloop)
        srv->evloop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (!srv->evloop)
        return -1;
    void *loops[1] = {srv->evloop};
    info.foreign_loops = loops;
    info.options |= LWS_SERVER_OPTION_LIBEV;
    srv->ctx = lws_create_context(&info);
    return srv->ctx ? 0 : -1;
}

/* Creates one vhost of the server (they all carry the same protocols, mounts and headers), with
 * TLS (HTTPS and wss://) when tls->cert is set. The one place where a vhost and its certificate
 * are made; its certificate is then replaced per handshake from a holder
 * (http_tls_vhost_attach), which is how a reload reaches it. NULL on failure
 * (a file that cannot be read, a key that does not match). */
static struct lws_vhost *make_vhost(struct http_server *srv, const char *name,
                                    const struct http_tls *tls)
{
    struct lws_context_creation_info info;
    base_info(srv, &info);
    info.vhost_name = name;
    if (tls->cert) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = tls->cert;
        info.ssl_private_key_filepath = tls->key;
        if (tls->ciphers && *tls->ciphers)
            info.ssl_cipher_list = tls->ciphers;
        if (tls->ciphersuites && *tls->ciphersuites)
            info.tls1_3_plus_cipher_list = tls->ciphersuites;
        /* no TLS below 1.2 whatever OpenSSL's configuration says; 1.3 only when asked */
        info.ssl_options_set = SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |
                               SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE;
        if (tls->tls13_only)
            info.ssl_options_set |= SSL_OP_NO_TLSv1_2;
    }
    return lws_create_vhost(srv->ctx, &info);
}

/* max_connections 0: one share of the open-file limit (ml_fd_share), and then one address gets
 * at most half of it, so that a single address cannot take the whole of a small budget. */
static void derive_limits(struct http_server *srv)
{
    long long per_addr = srv->cfg.max_connections_per_addr;
    srv->max_connections = srv->cfg.max_connections;
    if (srv->max_connections <= 0) {
        srv->max_connections = ml_fd_share();
        long long half = srv->max_connections / 2 > 0 ? srv->max_connections / 2 : 1;
        if (per_addr <= 0 || per_addr > half)
            per_addr = half;
        ML_INFO(srv->cfg.name,
                "%s.max-connections derived from the open-file limit %llu: %lld, %lld from one "
                "address",
                srv->cfg.section, ml_fd_limit(), srv->max_connections, per_addr);
    }
    if (per_addr > 0)
        srv->addrs = ml_addr_counts_new(per_addr > UINT32_MAX ? UINT32_MAX : (unsigned)per_addr);
}

struct http_server *http_server_new(const struct http_server_config *cfg, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (cfg->nservices > HTTP_MAX_SERVICES || cfg->nws > HTTP_MAX_WS) {
        ml_err(err, errlen, "%s: too many services", cfg->section);
        return NULL;
    }
    if (ml_addr_parse(cfg->listen, cfg->default_port, &ss, &sl) < 0) {
        ml_err(err, errlen, "%s.listen: bad address %s", cfg->section, cfg->listen);
        return NULL;
    }
    struct http_server *srv = ml_xcalloc(1, sizeof *srv);
    pthread_mutex_init(&srv->done_mu, NULL);
    pthread_mutex_init(&srv->adopt_mu, NULL);
    srv->cfg = *cfg;
    derive_limits(srv);
    if (!cfg->no_listen && http_listen_open(srv, (struct sockaddr *)&ss, err, errlen) < 0) {
        http_server_free(srv);
        return NULL;
    }
    srv->req_size = sizeof(struct http_req);
    for (size_t i = 0; i < cfg->nservices; i++) {
        srv->svc[i] = cfg->services[i];
        if (!srv->svc[i].segment_max || srv->svc[i].segment_max > HTTP_SEGMENT_MAX)
            srv->svc[i].segment_max = HTTP_SEGMENT_MAX;
        if (srv->svc[i].req_size > srv->req_size)
            srv->req_size = srv->svc[i].req_size;
        if (srv->svc[i].tick)
            add_timer(srv, srv->svc[i].tick, srv->svc[i].arg, srv->svc[i].tick_first_ms,
                      srv->svc[i].tick_ms);
    }
    srv->cfg.services = srv->svc;
    for (size_t i = 0; i < cfg->nws; i++) {
        srv->ws[i] = cfg->ws[i];
        if (srv->ws[i].tick)
            add_timer(srv, srv->ws[i].tick, srv->ws[i].arg, srv->ws[i].tick_ms, srv->ws[i].tick_ms);
    }
    srv->cfg.ws = srv->ws;
    uint8_t r[4];
    ml_random(r, sizeof r);
    ml_hex_encode(r, sizeof r, srv->rid_prefix);
    make_protocols(srv);

    lws_set_log_level(LLL_ERR | LLL_WARN, lws_emit);
    /* A shared listener (one port for TLS, TURN and HTTP) hands accepted sockets over
     * (http_server_adopt); with no_listen the server has no port of its own. */
    srv->ipv4 = ss.ss_family == AF_INET;
    if (make_context(srv) < 0) {
        ml_err(err, errlen,
               "%s.listen: cannot serve on %s (libwebsockets' libev plugin missing: apt-get "
               "install libwebsockets-evlib-ev?)",
               cfg->section, cfg->listen);
        http_server_free(srv);
        return NULL;
    }
    if ((cfg->tls_cert && tls_holder(&srv->tls, cfg->tls_cert, cfg->tls_key, err, errlen) < 0) ||
        (cfg->adopt_tls.cert &&
         tls_holder(&srv->tls_adopt, cfg->adopt_tls.cert, cfg->adopt_tls.key, err, errlen) < 0)) {
        http_server_free(srv);
        return NULL;
    }
    const struct http_tls own = {.cert = cfg->tls_cert, .key = cfg->tls_key};
    srv->vhost = make_vhost(srv, cfg->name, &own);
    if (srv->vhost && cfg->adopt_tls.cert)
        srv->vhost_tls = make_vhost(srv, HTTP_VHOST_TLS, &cfg->adopt_tls);
    if (cfg->no_listen)
        srv->port = ml_addr_port((struct sockaddr *)&ss);
    if (!srv->vhost || (cfg->adopt_tls.cert && !srv->vhost_tls)) {
        ml_err(err, errlen, "%s.listen: cannot serve on %s (a TLS file that cannot be read?)",
               cfg->section, cfg->listen);
        http_server_free(srv);
        return NULL;
    }
    return srv;
}

static void *service_main(void *arg)
{
    struct http_server *srv = arg;
    ml_log_set_thread(srv->cfg.name);
    /* one round of our libev loop at a time; lws_cancel_service() ends a wait */
    while (!__atomic_load_n(&srv->stopping, __ATOMIC_ACQUIRE))
        ev_run(srv->evloop, EVRUN_ONCE);
    return NULL;
}

int http_server_start(struct http_server *srv, char *err, size_t errlen)
{
    /* the service thread has not started: scheduling from here races with nothing */
    for (size_t i = 0; i < srv->ntimers; i++)
        lws_sul_schedule(srv->ctx, 0, &srv->timers[i].sul, on_timer,
                         srv->timers[i].first_ms * LWS_US_PER_MS);
    http_listen_start(srv);
    int rc = pthread_create(&srv->thread, NULL, service_main, srv);
    if (rc)
        return ml_err(err, errlen, "cannot start the %s thread: %s", srv->cfg.name, strerror(rc));
    srv->started = true;
    return 0;
}

bool http_server_adopts_tls(const struct http_server *srv)
{
    return srv && srv->vhost_tls;
}

int http_server_port(const struct http_server *srv)
{
    return srv->port;
}

void http_server_wake(struct http_server *srv)
{
    if (srv && srv->ctx)
        lws_cancel_service(srv->ctx);
}

bool http_server_stopping(const struct http_server *srv)
{
    return __atomic_load_n(&srv->stopping, __ATOMIC_ACQUIRE);
}

void http_server_stop(struct http_server *srv)
{
    if (!srv)
        return;
    __atomic_store_n(&srv->stopping, true, __ATOMIC_RELEASE);
    if (srv->started) {
        lws_cancel_service(srv->ctx);
        pthread_join(srv->thread, NULL);
        srv->started = false;
    }
}

void http_server_close(struct http_server *srv)
{
    if (!srv)
        return;
    http_server_stop(srv);
    if (srv->ctx) {
        for (size_t i = 0; i < srv->ntimers; i++)
            lws_sul_cancel(&srv->timers[i].sul);
        /* closing the connections orphans the requests with work in flight */
        lws_context_destroy(srv->ctx);
        srv->ctx = NULL;
    }
    http_listen_close(srv);
    if (srv->evloop)
        ev_loop_destroy(srv->evloop);
    srv->evloop = NULL;
}

void http_server_free(struct http_server *srv)
{
    if (!srv)
        return;
    http_server_close(srv);
    adopt_drain(srv, false);
    http_posted_drain(srv); /* the last completions free their orphaned requests */
    http_req_spares_free(srv);
    pthread_mutex_destroy(&srv->done_mu);
    pthread_mutex_destroy(&srv->adopt_mu);
    ml_addr_counts_free(srv->addrs);
    net_tls_cert_free(srv->tls); /* after the context, whose vhosts point at them */
    net_tls_cert_free(srv->tls_adopt);
    free(srv);
}

const char *const http_class_names[HTTP_CLASSES] = {"page", "api", "auth", "signaling_upgrade",
                                                    "admin"};
/* From a millisecond to ten seconds: a static file, a query, a password hash, a join. */
const double http_latency_bounds_s[HTTP_LATENCY_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                            0.1,   0.25,   0.5,   1,    2.5,   10};

void http_latency_add(struct http_server *srv, enum http_class cls, int64_t us)
{
    if ((unsigned)cls >= HTTP_CLASSES)
        return;
    if (us < 0)
        us = 0;
    unsigned b = 0;
    while (b < HTTP_LATENCY_BUCKETS && (double)us > http_latency_bounds_s[b] * 1e6)
        b++;
    struct http_latency *l = &srv->latency[cls];
    ML_COUNT(l->buckets[b], 1);
    ML_COUNT(l->sum_us, (uint64_t)us);
}

bool http_wake_is_primary(struct lws *wsi)
{
    struct lws_context *ctx = wsi ? lws_get_context(wsi) : NULL;
    struct http_server *srv = ctx ? lws_context_user(ctx) : NULL;
    return srv && lws_get_vhost(wsi) == srv->vhost;
}

void http_observe(struct lws *wsi, enum http_class cls, int64_t us)
{
    struct lws_context *ctx = wsi ? lws_get_context(wsi) : NULL;
    struct http_server *srv = ctx ? lws_context_user(ctx) : NULL;
    if (srv)
        http_latency_add(srv, cls, us);
}

void http_server_latency(struct http_server *srv, struct http_latency *out)
{
    for (unsigned c = 0; c < HTTP_CLASSES; c++) {
        for (unsigned b = 0; b <= HTTP_LATENCY_BUCKETS; b++)
            out[c].buckets[b] += __atomic_load_n(&srv->latency[c].buckets[b], __ATOMIC_RELAXED);
        out[c].sum_us += __atomic_load_n(&srv->latency[c].sum_us, __ATOMIC_RELAXED);
    }
}

void http_server_counters(struct http_server *srv, uint64_t out[HTTP_STATUSES])
{
    for (int i = 0; i < HTTP_STATUSES; i++)
        out[i] = __atomic_load_n(&srv->by_status[i], __ATOMIC_RELAXED);
}
