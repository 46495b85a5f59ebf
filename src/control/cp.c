/* The control plane's life: configuration checks, keys, the TURN URIs handed out, the
 * database pool, the HTTP service it declares on its server (control.listen) beside
 * signaling's WebSocket protocol, and an orderly stop. */
#include "config.h"

#include "control/cp-int.h"
#include "net/net.h"

#include <argon2.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Copies a configuration string (NULL stays NULL). */
static char *dup_opt(const char *s)
{
    return s ? ml_xstrdup(s) : NULL;
}

void cp_turn_secret(struct cp *cp, char *buf, size_t len)
{
    pthread_mutex_lock(&cp->turn_mu);
    const char *s = cp->turn_secret_override ? cp->turn_secret_override : cp->turn_secret;
    ml_strlcpy(buf, s ? s : "", len);
    pthread_mutex_unlock(&cp->turn_mu);
}

void cp_set_turn_secret(struct cp *cp, const char *secret)
{
    char *s = secret && *secret ? ml_xstrdup(secret) : NULL;
    pthread_mutex_lock(&cp->turn_mu);
    char *old = cp->turn_secret_override;
    cp->turn_secret_override = s;
    pthread_mutex_unlock(&cp->turn_mu);
    if (old) {
        ml_wipe(old, strlen(old));
        free(old);
    }
}

void cp_set_drain(struct cp *cp, bool on)
{
    __atomic_store_n(&cp->draining, on, __ATOMIC_RELAXED);
}

_Static_assert(CP_HTTP_STATUSES == HTTP_STATUSES && CP_HTTP_STATUS_MIN == HTTP_STATUS_MIN,
               "the stats count answers by status as the HTTP layer does");

void cp_counters_read(struct cp *cp, struct cp_counters *out)
{
    memset(out, 0, sizeof *out);
    if (cp->http) {
        http_server_counters(cp->http, out->http_by_status);
        http_server_conn_stats(cp->http, &out->http_conns);
        http_server_latency(cp->http, out->latency);
    }
    out->ws_connections = sig_ws_open(cp->sig);
    sig_close_counts(cp->sig, out->ws_closes);
    if (cp->pool)
        db_pool_stats(cp->pool, &out->pool);
}

/* The first secret of a comma list: new credentials are signed with it, the relay accepts
 * every one of the list. */
static char *first_secret(const char *list)
{
    size_t n = 0;
    const char *item = ml_list_next(&list, &n);
    return item ? ml_nonnull(strndup(item, n)) : NULL;
}

void cp_reload_turn(struct cp *cp, const struct turn_config *turn)
{
    char *s = first_secret(turn->auth_secret);
    if (!s)
        return; /* keep the old one rather than stop issuing credentials */
    pthread_mutex_lock(&cp->turn_mu);
    char *old = cp->turn_secret;
    cp->turn_secret = s;
    pthread_mutex_unlock(&cp->turn_mu);
    if (old) {
        ml_wipe(old, strlen(old));
        free(old);
    }
}

static int add_uri(const char *item, void *arg)
{
    json_array_append_new(arg, json_string(item));
    return 0;
}

/* The host clients should use for a wildcard listener: public-url's, else loopback. */
static void public_host(const struct cp_config *cfg, char *buf, size_t len)
{
    const char *u = cfg->public_url;
    ml_strlcpy(buf, "127.0.0.1", len);
    if (!u)
        return;
    const char *h = strstr(u, "://");
    h = h ? h + 3 : u;
    size_t n;
    if (*h == '[')
        n = strcspn(h, "]") + 1;
    else
        n = strcspn(h, ":/");
    if (n && n < len) {
        memcpy(buf, h, n);
        buf[n] = 0;
    }
}

/* Appends to out the URI of listener ep at rank (0 stun:, 1 turn: udp, 2 turn: tcp, 3 turns:),
 * if it has one there: udp:// gives stun: and turn: udp; tcp:// turn: tcp; tls:// turns:;
 * shared:// both turn: tcp and turns: on its one port. A wildcard address becomes
 * wildcard_host. */
static void add_listener_uri(json_t *out, const struct net_endpoint *ep, int rank,
                             const char *wildcard_host)
{
    static const struct {
        enum net_transport t;
        int rank;
        const char *scheme, *transport;
    } kinds[] = {
        {NET_UDP, 0, "stun", NULL},   {NET_UDP, 1, "turn", "udp"},
        {NET_TCP, 2, "turn", "tcp"},  {NET_SHARED, 2, "turn", "tcp"},
        {NET_TLS, 3, "turns", "tcp"}, {NET_SHARED, 3, "turns", "tcp"},
    };
    for (size_t k = 0; k < ML_ARRAY_LEN(kinds); k++) {
        if (kinds[k].t != ep->transport || kinds[k].rank != rank)
            continue;
        const struct sockaddr *sa = (const struct sockaddr *)&ep->addr;
        char ip[ML_ADDR_STRLEN], host[ML_ADDR_STRLEN + 2], uri[ML_ADDR_STRLEN + 40];
        ml_ip_str(sa, ip, sizeof ip);
        if (!strcmp(ip, "0.0.0.0") || !strcmp(ip, "::"))
            ml_strlcpy(host, wildcard_host, sizeof host);
        else if (sa->sa_family == AF_INET6)
            ml_snprintf(host, sizeof host, "[%s]", ip);
        else
            ml_strlcpy(host, ip, sizeof host);
        ml_snprintf(uri, sizeof uri, "%s:%s:%u%s%s", kinds[k].scheme, host,
                    (unsigned)ml_addr_port(sa), kinds[k].transport ? "?transport=" : "",
                    kinds[k].transport ? kinds[k].transport : "");
        size_t i;
        json_t *u;
        bool dup = false;
        json_array_foreach(out, i, u) dup |= !strcmp(json_string_value(u), uri);
        if (!dup) /* two wildcard listeners (IPv4, IPv6) under one public name */
            json_array_append_new(out, json_string(uri));
    }
}

json_t *cp_listen_uris(const char *listen, const char *wildcard_host, char *err, size_t errlen)
{
    struct net_endpoint *eps = NULL;
    size_t n = 0;
    if (net_endpoints_parse(listen, &eps, &n, err, errlen) < 0)
        return NULL;
    json_t *out = json_array();
    /* Cheap paths first, whatever the order of turn.listen: stun:, then turn: over UDP (3478
     * before 443 when listed so), turn: over TCP, turns: last. Browsers gather every URI at
     * once, but they pair and check candidates in this order within a type, and a client that
     * tries one at a time (or a network check) starts with the one that costs least. */
    for (int rank = 0; rank < 4; rank++)
        for (size_t i = 0; i < n; i++) {
            /* one stun: per address is enough: Binding answers the same on every UDP port */
            bool again = false;
            for (size_t j = 0; rank == 0 && j < i; j++)
                again |= eps[j].transport == NET_UDP &&
                         ml_addr_ip_equal((struct sockaddr *)&eps[j].addr,
                                          (struct sockaddr *)&eps[i].addr);
            if (!again)
                add_listener_uri(out, &eps[i], rank, wildcard_host);
        }
    free(eps);
    return out;
}

char *cp_listen_uris_list(const char *listen, const char *wildcard_host, char *err, size_t errlen)
{
    json_t *uris = cp_listen_uris(listen, wildcard_host, err, errlen);
    if (!uris)
        return NULL;
    struct ml_buf b = ML_BUF_INIT(SIZE_MAX);
    size_t i;
    json_t *u;
    json_array_foreach(uris, i, u)
    {
        if (ml_buf_printf(&b, "%s%s", i ? ", " : "", json_string_value(u)) < 0) {
            ml_buf_free(&b);
            json_decref(uris);
            ml_err(err, errlen, "out of memory");
            return NULL;
        }
    }
    json_decref(uris);
    if (!b.len) {
        ml_buf_free(&b);
        ml_err(err, errlen, "no listener gives a STUN or TURN URI");
        return NULL;
    }
    char *out = ml_xstrdup(b.p);
    ml_buf_free(&b);
    return out;
}

static int make_turn_uris(struct cp *cp, const struct turn_config *turn, char *err, size_t errlen)
{
    if (cp->cfg.turn_uris) {
        cp->turn_uris = json_array();
        if (ml_list_foreach(cp->cfg.turn_uris, add_uri, cp->turn_uris) < 0)
            return ml_err(err, errlen, "control.turn-uris: an item is too long");
        return 0;
    }
    char host[ML_ADDR_STRLEN + 2];
    public_host(&cp->cfg, host, sizeof host);
    cp->turn_uris = cp_listen_uris(turn->listen, host, err, errlen);
    return cp->turn_uris ? 0 : -1;
}

static int add_origin(const char *item, void *arg)
{
    struct cp *cp = arg;
    cp->cors = ml_xrealloc(cp->cors, (cp->ncors + 1) * sizeof *cp->cors);
    cp->cors[cp->ncors++] = ml_xstrdup(item);
    return 0;
}

/* The pool's: a job finished (a database thread). */
static void wake(void *arg)
{
    struct cp *cp = arg;
    http_server_wake(cp->http);
}

/* The service's: collect the finished jobs (the HTTP thread). */
static void drain(void *arg)
{
    struct cp *cp = arg;
    db_pool_drain(cp->pool);
}

struct cp *cp_new(const struct cp_config *cfg, const struct cp_auth_config *auth,
                  const struct turn_config *turn, const struct db_config *db, char *err,
                  size_t errlen)
{
    if (!cfg->listen) {
        ml_err(err, errlen, "control.listen is empty");
        return NULL;
    }
    if (cp_config_check(cfg, auth, turn, db, err, errlen) < 0)
        return NULL;
    struct cp *cp = ml_xcalloc(1, sizeof *cp);
    pthread_mutex_init(&cp->turn_mu, NULL);
    /* keep what we use; strings duplicated so that a reload cannot pull them away */
    cp->cfg = *cfg;
    cp->cfg.listen = dup_opt(cfg->listen);
    cp->cfg.public_url = dup_opt(cfg->public_url);
    cp->cfg.cors_origins = dup_opt(cfg->cors_origins);
    cp->cfg.turn_uris = dup_opt(cfg->turn_uris);
    cp->cfg.tls_cert = dup_opt(cfg->tls_cert);
    cp->cfg.tls_key = dup_opt(cfg->tls_key);
    cp->cfg.web_root = dup_opt(cfg->web_root);
    cp->cfg.assistant.llm_url = NULL; /* copied by cp_llm_new */
    cp->cfg.assistant.llm_key_file = NULL;
    cp->cfg.assistant.llm_model = NULL;
    cp->auth = *auth;
    cp->auth.jwt_secret = NULL;
    cp->auth.jwt_key = dup_opt(auth->jwt_key);
    cp->auth.jwt_issuer = dup_opt(auth->jwt_issuer);
    cp->auth.jwt_audience = dup_opt(auth->jwt_audience);
    cp->auth.oidc_issuer = dup_opt(auth->oidc_issuer);
    cp->auth.oidc_audience = dup_opt(auth->oidc_audience);
    cp->auth.oidc_jwks_file = dup_opt(auth->oidc_jwks_file);
    cp->auth.oidc_authorize_url = dup_opt(auth->oidc_authorize_url);
    /* not kept: the key source copies what it needs, and the secret's file is the app's */
    cp->auth.jwt_secret_file = NULL;
    cp->auth.oidc_jwks_uri = NULL;
    cp->auth.oidc_ca_file = NULL;
    cp->turn_secret = first_secret(turn->auth_secret);
    cp->limiter = cp_limiter_new(8192);
    cp->cfg.trusted_proxies = NULL; /* parsed into cp->trusted_proxies */
    cp->cache = ml_xcalloc(CP_CACHE_SLOTS, sizeof *cp->cache);
    cp->tokens = ml_xcalloc(CP_TOKEN_SLOTS, sizeof *cp->tokens);

    if (cfg->trusted_proxies &&
        ml_cidr_set_add_list(&cp->trusted_proxies, cfg->trusted_proxies, err, errlen) < 0)
        goto fail;

    if (auth->jwt_key ? cp_jwt_key_es256_file(&cp->key, auth->jwt_key, err, errlen)
                      : cp_jwt_key_hs256(&cp->key, auth->jwt_secret, err, errlen))
        goto fail;
    if (auth->oidc_issuer) {
        cp->jwks = cp_jwks_src_new(auth, err, errlen);
        if (!cp->jwks)
            goto fail;
        cp->oidc = true;
    }
    if (make_turn_uris(cp, turn, err, errlen) < 0)
        goto fail;
    if (cfg->cors_origins && ml_list_foreach(cfg->cors_origins, add_origin, cp) < 0) {
        ml_err(err, errlen, "control.cors-origins: an origin is too long");
        goto fail;
    }
    /* the hash an unknown account is checked against, so that it costs what a known one does */
    uint8_t salt[16], pw[16];
    ml_random(salt, sizeof salt);
    ml_random(pw, sizeof pw);
    if (argon2id_hash_encoded((uint32_t)auth->argon2_iterations, (uint32_t)auth->argon2_memory_kib,
                              1, pw, sizeof pw, salt, sizeof salt, 32, cp->dummy_hash,
                              sizeof cp->dummy_hash) != ARGON2_OK) {
        ml_err(err, errlen, "argon2id does not work with these auth.argon2-* settings");
        goto fail;
    }
    if (cfg->assistant.llm_url && *cfg->assistant.llm_url) {
        cp->llm = cp_llm_new(&cfg->assistant, err, errlen);
        if (!cp->llm)
            goto fail;
    }
    cp->pool = db_pool_new(db, wake, cp, err, errlen);
    if (!cp->pool)
        goto fail;
    return cp;
fail:
    cp_free(cp);
    return NULL;
}

void cp_set_revoke_hook(struct cp *cp, cp_revoke_fn fn, void *arg)
{
    cp->revoke = fn;
    cp->revoke_arg = arg;
}

/* ------------------------------------------------------------------ signaling's dependencies */

/* A join's signaling token: this node's key, audience meetlite-signaling. */
static enum http_err sig_verify(void *arg, const char *token, uint8_t mid[16], uint8_t pid[16],
                                uint8_t uid[16])
{
    struct cp *cp = arg;
    struct cp_jwt_expect ex = {cp->auth.jwt_issuer, "meetlite-signaling", cp->auth.leeway_s,
                               ml_wall_s()};
    jwt_t *j = NULL;
    enum http_err e = cp_jwt_verify(&cp->key, token, &ex, &j);
    if (e == HTTP_OK && (!ml_uuid_parse(jwt_get_grant(j, "mid"), mid) ||
                         !ml_uuid_parse(jwt_get_grant(j, "pid"), pid) ||
                         !ml_uuid_parse(jwt_get_grant(j, "sub"), uid)))
        e = HTTP_E_INVALID_TOKEN;
    jwt_free(j);
    return e;
}

static char *sig_ice_servers(void *arg, struct db_conn *c, const char *mid, const char *pid,
                             const char *cred_user, long long expires_s, char **relay)
{
    return cp_ice_json(arg, c, mid, pid, cred_user, expires_s, relay);
}

static void sig_revoke(void *arg, const char *username)
{
    struct cp *cp = arg;
    if (cp->revoke) /* the same hook as the REST API's */
        cp->revoke(cp->revoke_arg, username);
}

static void sig_changed(void *arg, const char *meeting_id)
{
    cp_cache_invalidate(arg, meeting_id);
}

int cp_set_signaling(struct cp *cp, const struct sig_config *cfg, const struct db_config *db,
                     char *err, size_t errlen)
{
    if (cp->sig)
        return ml_err(err, errlen, "signaling is already set up");
    if (!cfg->enabled)
        return 0;
    const struct sig_deps deps = {
        .pool = cp->pool,
        .verify = sig_verify,
        .ice_servers = sig_ice_servers,
        .revoke = sig_revoke,
        .changed = sig_changed,
        .credential_ttl_s = cp->cfg.credential_ttl_s,
        .arg = cp,
    };
    cp->sig = sig_new(cfg, db, &deps, err, errlen);
    return cp->sig ? 0 : -1;
}

/* ------------------------------------------------------------------ the server */

void cp_serve_shared_only(struct cp *cp)
{
    cp->shared_only = true;
}

void cp_serve_shared_tls(struct cp *cp, const struct turn_config *turn)
{
    cp->shared_tls.cert = dup_opt(turn->tls_cert);
    cp->shared_tls.key = dup_opt(turn->tls_key);
    cp->shared_tls.ciphers = dup_opt(turn->tls_ciphers);
    cp->shared_tls.ciphersuites = dup_opt(turn->tls_ciphersuites);
    cp->shared_tls.tls13_only = turn->tls_min_version && !strcmp(turn->tls_min_version, "1.3");
}

bool cp_adopts_tls(const struct cp *cp)
{
    return http_server_adopts_tls(cp->http);
}

void cp_adopt(void *arg, int fd, const struct sockaddr *peer, bool tls)
{
    struct cp *cp = arg;
    if (!cp->http) {
        close(fd);
        return;
    }
    (void)http_server_adopt(cp->http, fd, peer, tls); /* it closes fd when it cannot */
}

int cp_port(const struct cp *cp)
{
    return cp->http ? http_server_port(cp->http) : 0;
}

bool cp_shared_tls_set(struct cp *cp, SSL_CTX *loaded)
{
    return cp && cp->http && http_server_tls_adopt_set(cp->http, loaded);
}

bool cp_tls_set(struct cp *cp, SSL_CTX *loaded)
{
    if (!cp->http || !http_server_tls(cp->http))
        return false;
    http_server_tls_set(cp->http, loaded);
    return true;
}

#define CP_HEADER_MAX 16384 /* bytes of all request headers: room for a long bearer token */

/* Binds control.listen with the REST API as its service and signaling as its WebSocket
 * protocol (the vhost's default for an upgrade naming no protocol: browsers'). */
static int http_init(struct cp *cp, char *err, size_t errlen)
{
    const struct http_service api = {
        .prefix = "/",
        .cls = HTTP_CLASS_API,
        .routes = cp_api_routes,
        .segment_max = CP_SEGMENT_MAX,
        .authenticate = cp_authenticate,
        .req_size = sizeof(struct cp_req),
        .req_free = cp_req_free,
        .pool = cp->pool,
        .tick = cp_tick,
        .tick_first_ms = 200,
        .tick_ms = cp_tick_ms(cp),
        .wake = drain,
        .arg = cp,
    };
    struct http_ws ws;
    sig_ws_protocol(cp->sig, &ws); /* declared even when off: it refuses connections */
    struct http_server_config hc = {
        .name = "http",
        .section = "control",
        .listen = cp->cfg.listen,
        .no_listen = cp->shared_only,
        .tls_cert = cp->cfg.tls_cert,
        .tls_key = cp->cfg.tls_key,
        .adopt_tls = cp->shared_tls,
        .max_header = CP_HEADER_MAX,
        .header_pool = 256,
        .max_body = cp->cfg.max_body,
        .max_connections = cp->cfg.max_connections,
        .max_connections_per_addr = cp->cfg.max_connections_per_addr,
        .request_ids = true,
        .preflight = true,
        .cors = cp->cors,
        .ncors = cp->ncors,
        .trusted_proxies = &cp->trusted_proxies,
        .fwd_header = (enum http_fwd_header)cp->cfg.forwarded_header,
        .access_log = cp->cfg.access_log,
        .fallback = cp_web_fallback,
        .fallback_arg = cp,
        .services = &api,
        .nservices = 1,
        .ws = &ws,
        .nws = 1,
    };
    if (cp_web_init(cp, &hc, err, errlen) < 0)
        return -1;
    cp->http = http_server_new(&hc, err, errlen);
    return cp->http ? 0 : -1;
}

int cp_start(struct cp *cp, char *err, size_t errlen)
{
    if (http_init(cp, err, errlen) < 0)
        return -1;
    if (sig_start(cp->sig, cp->http, err, errlen) < 0)
        return -1;
    return http_server_start(cp->http, err, errlen);
}

void cp_free(struct cp *cp)
{
    if (!cp)
        return;
    sig_quiesce(cp->sig); /* WebSocket clients are told 1001 while the loop still runs */
    http_server_stop(cp->http);
    cp_login_delays_release(cp);
    sig_stop(cp->sig); /* the node leaves signaling (its sessions' rows go) while lws exists */
    /* closing the connections orphans the requests whose jobs still run ... */
    cp_llm_free(cp->llm); /* its queued questions are posted back before the server goes */
    http_server_close(cp->http);
    /* ... and the pool's last drain frees them (it calls no lws function for an orphan) */
    db_pool_free(cp->pool);
    sig_free(cp->sig); /* after the pool's last drain: no job of signaling is left */
    http_server_free(cp->http);
    cp_jwt_key_free(&cp->key);
    cp_jwks_src_free(cp->jwks);
    json_decref(cp->turn_uris);
    for (size_t i = 0; i < cp->ncors; i++)
        free(cp->cors[i]);
    free(cp->cors);
    cp_limiter_free(cp->limiter);
    ml_cidr_set_free(&cp->trusted_proxies);
    cp_cache_free(cp);
    cp_tokens_free(cp);
    if (cp->turn_secret) {
        ml_wipe(cp->turn_secret, strlen(cp->turn_secret));
        free(cp->turn_secret);
    }
    cp_set_turn_secret(cp, NULL);
    free(cp->cfg.listen);
    free(cp->cfg.public_url);
    free(cp->cfg.cors_origins);
    free(cp->cfg.turn_uris);
    free(cp->cfg.tls_cert);
    free((char *)cp->shared_tls.cert);
    free((char *)cp->shared_tls.key);
    free((char *)cp->shared_tls.ciphers);
    free((char *)cp->shared_tls.ciphersuites);
    free(cp->cfg.tls_key);
    free(cp->cfg.web_root);
    free((char *)cp->fleet.region);
    cp_web_free(cp->web);
    free(cp->auth.jwt_key);
    free(cp->auth.jwt_issuer);
    free(cp->auth.jwt_audience);
    free(cp->auth.oidc_issuer);
    free(cp->auth.oidc_audience);
    free(cp->auth.oidc_jwks_file);
    free(cp->auth.oidc_authorize_url);
    pthread_mutex_destroy(&cp->turn_mu);
    free(cp);
}
