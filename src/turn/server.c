/* The STUN/TURN server: construction from the configuration (credentials, peer policy, relay
 * addresses), reload, the per-worker state, message dispatch on the network workers, and the
 * Binding service (RFC 8489): XOR-MAPPED-ADDRESS (MAPPED-ADDRESS for RFC 3489 clients), 420 for
 * unknown comprehension-required attributes, FINGERPRINT echoed, SOFTWARE only when set. */
#include "config.h"

#include "turn/turn-alloc.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- construction */

/* Parses a list of IPs (turn.relay-address, turn.external-address) into out[family][i], up to
 * TURN_RELAY_ADDRS per family, port 0. 0 or -1. */
static int parse_ip_list(const char *key, const char *list, union turn_sa out[2][TURN_RELAY_ADDRS],
                         unsigned n[2], char *err, size_t errlen)
{
    const char *p = list ? list : "";
    char item[128];
    n[0] = n[1] = 0;
    while (*p) {
        size_t len = strcspn(p, ", \t");
        if (len && len < sizeof item) {
            memcpy(item, p, len);
            item[len] = 0;
            union turn_sa sa;
            struct sockaddr_storage ss;
            socklen_t sl;
            if (ml_addr_parse(item, 0, &ss, &sl) < 0 || sl > sizeof sa)
                return ml_err(err, errlen, "%s: \"%s\" is not an IP address", key, item);
            memset(&sa, 0, sizeof sa);
            memcpy(&sa, &ss, sl);
            ml_addr_set_port(&sa.sa, 0);
            int fam = turn_fam_index(sa.sa.sa_family);
            for (unsigned i = 0; i < n[fam]; i++)
                if (ml_addr_equal(&out[fam][i].sa, &sa.sa))
                    return ml_err(err, errlen, "%s: %s is listed twice", key, item);
            if (n[fam] == TURN_RELAY_ADDRS)
                return ml_err(err, errlen, "%s: at most %d addresses per family", key,
                              TURN_RELAY_ADDRS);
            out[fam][n[fam]++] = sa;
        } else if (len) {
            return ml_err(err, errlen, "%s: an item is too long", key);
        }
        p += len;
        p += strspn(p, ", \t");
    }
    return 0;
}

/* Relay addresses: turn.relay-address (several per family: each has the whole port range), else
 * the specific address of a listener of that family; turn.external-address, one per relay
 * address in the same order, is what clients are told. */
static int setup_relays(struct turn_server *srv, const struct turn_config *cfg, char *err,
                        size_t errlen)
{
    struct net_endpoint *eps = NULL;
    size_t neps = 0;
    bool wildcard[2] = {false, false};
    unsigned npub[2];
    if (parse_ip_list("turn.relay-address", cfg->relay_address, srv->relay_bind, srv->nrelay, err,
                      errlen) < 0 ||
        parse_ip_list("turn.external-address", cfg->external_address, srv->relay_public, npub, err,
                      errlen) < 0)
        return -1;
    if (net_endpoints_parse(cfg->listen, &eps, &neps, err, errlen) < 0)
        return -1;
    bool configured[2] = {srv->nrelay[0] > 0, srv->nrelay[1] > 0};
    for (size_t i = 0; i < neps; i++) {
        const struct sockaddr *sa = (const struct sockaddr *)&eps[i].addr;
        int fam = turn_fam_index(sa->sa_family);
        static const uint8_t any6[16];
        bool any = sa->sa_family == AF_INET
                       ? ((const struct sockaddr_in *)sa)->sin_addr.s_addr == 0
                       : memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr, any6, 16) == 0;
        if (any) {
            wildcard[fam] = true;
        } else if (!configured[fam] && srv->nrelay[fam] == 0) {
            memcpy(&srv->relay_bind[fam][0], sa, ml_addr_len(sa));
            ml_addr_set_port(&srv->relay_bind[fam][0].sa, 0);
            srv->nrelay[fam] = 1;
        }
    }
    free(eps);
    for (int fam = 0; fam < 2; fam++) {
        if (wildcard[fam] && !srv->nrelay[fam])
            return ml_err(err, errlen,
                          "turn.relay-address needs an IPv%d address: turn.listen has a wildcard "
                          "IPv%d listener, and relay sockets must bind to a specific address",
                          fam ? 6 : 4, fam ? 6 : 4);
        if (npub[fam] && !srv->nrelay[fam])
            return ml_err(err, errlen,
                          "turn.external-address has an IPv%d address but nothing relays IPv%d",
                          fam ? 6 : 4, fam ? 6 : 4);
        if (npub[fam] && npub[fam] != srv->nrelay[fam])
            return ml_err(err, errlen,
                          "turn.external-address has %u IPv%d addresses for %u relay addresses: "
                          "give one per relay address, in the same order",
                          npub[fam], fam ? 6 : 4, srv->nrelay[fam]);
        srv->have_relay[fam] = srv->nrelay[fam] > 0;
        if (!npub[fam])
            memcpy(srv->relay_public[fam], srv->relay_bind[fam], sizeof srv->relay_public[fam]);
    }
    srv->port_attempts = (unsigned)cfg->relay_port_attempts;
    return turn_port_range_parse(cfg->relay_ports, &srv->port_lo, &srv->port_hi, err, errlen);
}

/* The address clients are told for a relay socket bound to local (its IP is one of the relay
 * addresses): the matching public IP with local's port. */
void turn_relay_public_of(const struct turn_server *srv, const struct sockaddr *local,
                          union turn_sa *out)
{
    int fam = turn_fam_index(local->sa_family);
    *out = srv->relay_public[fam][0];
    for (unsigned i = 0; i < srv->nrelay[fam]; i++) {
        if (ml_addr_ip_equal(&srv->relay_bind[fam][i].sa, local)) {
            *out = srv->relay_public[fam][i];
            break;
        }
    }
    ml_addr_set_port(&out->sa, ml_addr_port(local));
}

/* Fills the reloadable settings from cfg, with a new policy. */
static int settings_from(struct turn_server *srv, const struct turn_config *cfg,
                         struct turn_settings *set, char *err, size_t errlen)
{
    memset(set, 0, sizeof *set);
    ml_strlcpy(set->software, cfg->software ? cfg->software : "", sizeof set->software);
    set->fingerprint_always = cfg->fingerprint_always;
    set->max_allocations = cfg->max_allocations;
    set->max_per_user = cfg->max_allocations_per_user;
    set->max_permissions = cfg->max_permissions;
    set->max_channels = cfg->max_channels;
    set->default_lifetime_s = cfg->default_lifetime_s;
    set->max_lifetime_s = cfg->max_lifetime_s;
    set->perm_lifetime_s = cfg->permission_lifetime_s;
    set->chan_lifetime_s = cfg->channel_lifetime_s;
    set->unauth_answer_rate = cfg->unauth_answer_rate;
    set->unauth_answer_burst = cfg->unauth_answer_burst;
    set->channel_max = cfg->rfc5766_channels ? TURN_CHANNEL_MAX_RFC5766 : TURN_CHANNEL_MAX;
    set->tcp_relay = cfg->tcp_relay;
    set->tcp_max_conns = cfg->tcp_relay_max_conns;
    set->tcp_buffer = cfg->tcp_relay_buffer;
    set->policy = turn_policy_new(cfg->allow_peers, cfg->deny_peers, err, errlen);
    if (!set->policy)
        return -1;
    for (size_t i = 0; i < srv->nservices; i++)
        if (turn_policy_add_service(set->policy, &srv->services[i].sa) < 0) {
            turn_policy_free(set->policy);
            return ml_err(err, errlen, "out of memory");
        }
    return 0;
}

struct turn_server *turn_server_new(const struct turn_config *cfg, char *err, size_t errlen)
{
    struct turn_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        ml_err(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&srv->lock, NULL);
    for (size_t i = 0; i < TURN_QUOTA_STRIPES; i++)
        pthread_mutex_init(&srv->quota_locks[i], NULL);
    pthread_mutex_init(&srv->res_lock, NULL);
    for (size_t i = 0; i < TURN_MAX_RESERVATIONS; i++)
        srv->res[i].fd = -1;
    srv->quota_buckets = 1024;
    srv->quota = calloc(srv->quota_buckets, sizeof *srv->quota);
    if (!srv->quota) {
        ml_err(err, errlen, "out of memory");
        goto fail;
    }
    srv->budget = turn_budget_new();
    if (!srv->budget) {
        ml_err(err, errlen, "out of memory");
        goto fail;
    }
    if (setup_relays(srv, cfg, err, errlen) < 0)
        goto fail;
    srv->auth = turn_auth_new(cfg, err, errlen);
    if (!srv->auth)
        goto fail;
    if (settings_from(srv, cfg, &srv->set, err, errlen) < 0)
        goto fail;
    srv->generation = 1;
    return srv;
fail:
    turn_server_free(srv);
    return NULL;
}

void turn_server_free(struct turn_server *srv)
{
    if (!srv)
        return;
    if (srv->set.policy)
        turn_policy_free(srv->set.policy);
    for (size_t i = 0; i < srv->nretired; i++)
        turn_policy_free(srv->retired[i]);
    free(srv->retired);
    if (srv->auth)
        turn_auth_free(srv->auth);
    turn_budget_free(srv->budget);
    turn_reservations_free(srv);
    if (srv->quota) {
        turn_quota_free_all(srv);
        free(srv->quota);
    }
    free(srv->services);
    pthread_mutex_destroy(&srv->lock);
    for (size_t i = 0; i < TURN_QUOTA_STRIPES; i++)
        pthread_mutex_destroy(&srv->quota_locks[i]);
    pthread_mutex_destroy(&srv->res_lock);
    free(srv);
}

int turn_server_reload(struct turn_server *srv, const struct turn_config *cfg, char *err,
                       size_t errlen)
{
    struct turn_settings set;
    if (settings_from(srv, cfg, &set, err, errlen) < 0)
        return -1;
    if (turn_auth_reload(srv->auth, cfg, err, errlen) < 0) {
        turn_policy_free(set.policy);
        return -1;
    }
    pthread_mutex_lock(&srv->lock);
    /* Workers may still hold the old policy until they see the new generation: it is kept
     * until the server is freed (reloads are rare). */
    struct turn_policy **r = realloc(srv->retired, (srv->nretired + 1) * sizeof *r);
    if (r) {
        srv->retired = r;
        srv->retired[srv->nretired++] = srv->set.policy;
        srv->set = set;
        __atomic_add_fetch(&srv->generation, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&srv->lock);
    if (!r) {
        turn_policy_free(set.policy);
        return ml_err(err, errlen, "out of memory");
    }
    return 0;
}

int turn_server_add_service(struct turn_server *srv, const struct sockaddr *sa)
{
    union turn_sa *v = realloc(srv->services, (srv->nservices + 1) * sizeof *v);
    if (!v)
        return -1;
    srv->services = v;
    memset(&v[srv->nservices], 0, sizeof *v);
    memcpy(&v[srv->nservices], sa, ml_addr_len(sa));
    srv->nservices++;
    return turn_policy_add_service(srv->set.policy, sa);
}

void turn_server_set_hooks(struct turn_server *srv, const struct turn_hooks *h)
{
    srv->hooks = *h;
}

void turn_server_set_engine(struct turn_server *srv, struct net_engine *e)
{
    srv->engine = e;
}

/* Workers keep private copies of reloadable values and refresh them when the generation
 * changes: one relaxed load per message instead of a lock. */
static void refresh(struct turn_worker *tw)
{
    unsigned gen = __atomic_load_n(&tw->srv->generation, __ATOMIC_ACQUIRE);
    if (gen == tw->generation)
        return;
    pthread_mutex_lock(&tw->srv->lock);
    tw->set = tw->srv->set;
    tw->generation = tw->srv->generation;
    pthread_mutex_unlock(&tw->srv->lock);
}

/* ---------------------------------------------------------------- closing by credential */

int turn_server_close_cred(struct turn_server *srv, const char *id, const char *reason)
{
    struct turn_alloc_filter f;
    memset(&f, 0, sizeof f);
    if (!id || !*id || ml_strlcpy(f.cred_id, id, sizeof f.cred_id) >= sizeof f.cred_id)
        return -1;
    return turn_server_close(srv, &f, reason, NULL, NULL);
}

int turn_server_revoke(struct turn_server *srv, const char *id, int64_t until_s)
{
    int rc = turn_auth_revoke(srv->auth, id, until_s);
    /* Close what is open even when the set is full: the credential then dies with them. */
    if (turn_server_close_cred(srv, id, "revoked") < 0)
        rc = -1;
    return rc;
}

/* ---------------------------------------------------------------- answers */

void turn_send(struct turn_worker *tw, const struct turn_client *cl, const void *buf, size_t len)
{
    ML_UNUSED(tw);
    if (cl->transport == NET_UDP)
        (void)net_udp_send(cl->udp, cl->addr, buf, len);
    else
        (void)net_stream_send_reply(cl->stream, buf, len);
}

unsigned turn_error_slot(int code)
{
    switch (code) {
    case 400:
        return 0;
    case 401:
        return 1;
    case 403:
        return 2;
    case 420:
        return 3;
    case 437:
        return 4;
    case 438:
        return 5;
    case 486:
        return 6;
    default:
        return 7;
    }
}

/* Ends an answer: SOFTWARE when configured, MESSAGE-INTEGRITY(-SHA256) with the request's key
 * when it was authenticated, FINGERPRINT when the request had one. Returns its length, 0 when
 * it did not fit. */
static size_t finish(const struct turn_worker *tw, const struct stun_msg *req,
                     struct stun_builder *b, const struct turn_cred *cred)
{
    if (tw->set.software[0] && !req->rfc3489)
        stun_build_attr(b, STUN_ATTR_SOFTWARE, tw->set.software, strlen(tw->set.software));
    if (cred && cred->sha256)
        stun_build_integrity_sha256(b, cred->key, cred->keylen);
    else if (cred)
        stun_build_integrity(b, cred->key, cred->keylen);
    if (!req->rfc3489 && (req->fp >= 0 || tw->set.fingerprint_always))
        stun_build_fingerprint(b);
    return stun_build_finish(b);
}

void turn_finish_and_send(struct turn_worker *tw, const struct turn_client *cl,
                          const struct stun_msg *req, struct stun_builder *b,
                          const struct turn_cred *cred)
{
    size_t len = finish(tw, req, b, cred);
    if (len)
        turn_send(tw, cl, b->buf, len);
}

void turn_reply_error(struct turn_worker *tw, const struct turn_client *cl,
                      const struct stun_msg *req, int code, const char *reason)
{
    uint8_t out[TURN_REPLY_MAX];
    struct stun_builder b;
    stun_build_reply(&b, out, sizeof out, req, STUN_ERROR);
    stun_build_error(&b, code, reason);
    TURN_COUNT(tw->ctr.error_responses[turn_error_slot(code)], 1);
    turn_finish_and_send(tw, cl, req, &b, NULL);
}

/* ---------------------------------------------------------------- unauthenticated answers
 *
 * A UDP source address can be forged, so an answer to a request that did not authenticate may
 * land on a victim that never asked (reflection). Such answers are paid for from the budget of
 * the address they go to (turn.unauth-answer-rate bytes/s, turn.unauth-answer-burst bytes),
 * one budget per address for the whole server; what does not fit is dropped and counted.
 * Not charged: answers over TCP and TLS (the handshake proved the address; the connection's
 * output is bounded on its own), and the part of an answer no larger than its request when
 * the request's NONCE proves the address (we gave it to that IP and port: it receives our
 * answers). And an address earns its budget back with the size of every request of its own
 * that authenticates: a campus behind one NAT address, whose clients all complete the
 * handshake, is never held back however many start at once, while a victim of forged
 * requests, which never authenticate, gets at most the burst and then the rate.
 * docs/relay.md ("The unauthenticated budget") has the reasoning and the figures. */

/* Whether an answer of len bytes to req may go to cl; counts what it costs or why not. */
static bool unauth_within_budget(struct turn_worker *tw, const struct turn_client *cl,
                                 const struct stun_msg *req, size_t len, bool proven)
{
    if (cl->transport != NET_UDP)
        return true;
    size_t cost = len;
    if (proven) {
        TURN_COUNT(tw->ctr.unauth_proven, 1);
        cost = len > req->len ? len - req->len : 0;
    }
    if (cost == 0 || turn_budget_take(tw->srv->budget, cl->addr, cost, ml_now_us(),
                                      tw->set.unauth_answer_rate, tw->set.unauth_answer_burst)) {
        TURN_COUNT(tw->ctr.unauth_charged_bytes, cost);
        return true;
    }
    TURN_COUNT(tw->ctr.unauth_dropped, 1);
    TURN_COUNT(tw->ctr.unauth_dropped_bytes, len);
    return false;
}

void turn_budget_earn(struct turn_worker *tw, const struct turn_client *cl,
                      const struct stun_msg *req)
{
    turn_budget_give(tw->srv->budget, cl->addr, req->len, ml_now_us(), tw->set.unauth_answer_rate);
}

/* The answer to a request that did not authenticate, into out (cap bytes): 401 and 438 with
 * REALM, NONCE (nlen bytes) and PASSWORD-ALGORITHMS, 400 with nothing more. No reason phrase
 * (optional, RFC 8489 14.8) and no SOFTWARE unless configured: an answer that may go to a
 * forged source carries only what a client needs. Returns its length, 0 if it did not fit. */
static size_t build_unauthenticated(const struct turn_worker *tw, const struct stun_msg *req,
                                    int code, const char *nonce, size_t nlen, uint8_t *out,
                                    size_t cap)
{
    struct stun_builder b;
    stun_build_reply(&b, out, cap, req, STUN_ERROR);
    stun_build_error(&b, code, "");
    if (code != 400) {
        const char *realm = turn_auth_realm(tw->srv->auth);
        stun_build_attr(&b, STUN_ATTR_REALM, realm, strlen(realm));
        stun_build_attr(&b, STUN_ATTR_NONCE, nonce, nlen);
        turn_auth_build_algorithms(&b);
    }
    return finish(tw, req, &b, NULL);
}

void turn_reply_unauthenticated(struct turn_worker *tw, const struct turn_client *cl,
                                const struct stun_msg *req, enum turn_auth_result r,
                                const struct turn_cred *cred)
{
    int code = r == TURN_AUTH_STALE ? 438 : r == TURN_AUTH_BAD_REQUEST ? 400 : 401;
    uint8_t out[TURN_REPLY_MAX];
    char nonce[TURN_NONCE_MAX];
    /* Built first with a stand-in NONCE of the same length: the size is known before the HMAC
     * is computed, so a request over budget costs no more than its parsing. */
    size_t nlen = turn_auth_nonce_len();
    memset(nonce, '0', nlen);
    size_t len = build_unauthenticated(tw, req, code, nonce, nlen, out, sizeof out);
    if (!len || !unauth_within_budget(tw, cl, req, len, cred->address_proven))
        return;
    if (code != 400) {
        if (turn_auth_nonce(tw->srv->auth, cl->addr, ml_wall_s(), nonce, sizeof nonce) != nlen)
            return;
        len = build_unauthenticated(tw, req, code, nonce, nlen, out, sizeof out);
    }
    if (r == TURN_AUTH_REJECT) {
        char a[ML_ADDR_STRLEN];
        ML_LOG_LIMITED(ML_LOG_INFO, "turn", "401 for %s %s: credentials refused",
                       stun_method_name(req->method), ml_addr_str(cl->addr, a, sizeof a));
    }
    TURN_COUNT(tw->ctr.error_responses[turn_error_slot(code)], 1);
    if (len)
        turn_send(tw, cl, out, len);
}

/* Errors to requests nothing authenticates yet (an unknown comprehension-required attribute,
 * an unknown method): small, and within the same budget as 401s. */
void turn_reply_unauthenticated_error(struct turn_worker *tw, const struct turn_client *cl,
                                      const struct stun_msg *req, int code, const char *reason,
                                      const uint16_t *unknown, size_t nunknown)
{
    uint8_t out[TURN_REPLY_MAX];
    struct stun_builder b;
    stun_build_reply(&b, out, sizeof out, req, STUN_ERROR);
    stun_build_error(&b, code, reason);
    if (nunknown)
        stun_build_unknown(&b, unknown, nunknown);
    size_t len = finish(tw, req, &b, NULL);
    if (!len || !unauth_within_budget(tw, cl, req, len, false))
        return;
    TURN_COUNT(tw->ctr.error_responses[turn_error_slot(code)], 1);
    turn_send(tw, cl, out, len);
}

static void handle_binding(struct turn_worker *tw, const struct turn_client *cl,
                           const struct stun_msg *req)
{
    uint8_t out[TURN_REPLY_MAX];
    struct stun_builder b;
    stun_build_reply(&b, out, sizeof out, req, STUN_SUCCESS);
    if (req->rfc3489) {
        stun_build_addr(&b, STUN_ATTR_MAPPED_ADDRESS, cl->addr);
        TURN_COUNT(tw->ctr.binding_rfc3489, 1);
    } else {
        stun_build_xaddr(&b, STUN_ATTR_XOR_MAPPED_ADDRESS, cl->addr);
    }
    TURN_COUNT(tw->ctr.binding_requests, 1);
    turn_finish_and_send(tw, cl, req, &b, NULL);
}

static void handle_request(struct turn_worker *tw, const struct turn_client *cl,
                           const struct stun_msg *req)
{
    uint16_t unknown[16];
    TURN_COUNT(tw->ctr.stun_requests, 1);
    size_t nu = stun_msg_unknown_required(req, unknown, ML_ARRAY_LEN(unknown));
    if (nu) {
        turn_reply_unauthenticated_error(tw, cl, req, 420, NULL, unknown, nu);
        return;
    }
    if (req->rfc3489 && req->method != STUN_BINDING)
        return; /* RFC 3489 clients get Binding only */
    switch (req->method) {
    case STUN_BINDING:
        handle_binding(tw, cl, req);
        return;
    case TURN_ALLOCATE:
        turn_handle_allocate(tw, cl, req);
        return;
    case TURN_REFRESH:
        turn_handle_refresh(tw, cl, req);
        return;
    case TURN_CREATE_PERMISSION:
        turn_handle_create_permission(tw, cl, req);
        return;
    case TURN_CHANNEL_BIND:
        turn_handle_channel_bind(tw, cl, req);
        return;
    case TURN_CONNECT:
        turn_tcp_handle_connect(tw, cl, req);
        return;
    case TURN_CONNECTION_BIND:
        turn_tcp_handle_connection_bind(tw, cl, req);
        return;
    default:
        turn_reply_unauthenticated_error(tw, cl, req, 400, "Unsupported method", NULL, 0);
        return;
    }
}

/* One datagram or stream frame from a client. */
static void handle_message(struct turn_worker *tw, const struct turn_client *cl, uint8_t *data,
                           size_t len)
{
    struct stun_msg m;
    enum stun_parse_err perr;
    if (stun_is_channeldata(data, len)) {
        turn_relay_channeldata(tw, cl, data, len, ml_now_ms());
        return;
    }
    if (stun_msg_parse(&m, data, len, &perr) < 0) {
        char a[ML_ADDR_STRLEN];
        TURN_COUNT(tw->ctr.malformed, 1);
        ML_DEBUG("turn", "dropping %zu bytes from %s: %s", len, ml_addr_str(cl->addr, a, sizeof a),
                 stun_parse_err_str(perr));
        return;
    }
    switch (m.cls) {
    case STUN_REQUEST:
        handle_request(tw, cl, &m);
        break;
    case STUN_INDICATION:
        TURN_COUNT(tw->ctr.indications, 1);
        if (m.method == TURN_SEND && !m.rfc3489)
            turn_relay_send_indication(tw, cl, &m, ml_now_ms());
        break;
    default:
        break; /* responses are not ours to answer */
    }
}

/* An asynchronous credential source is looking the user up: the request is kept (bounded) and
 * replayed when the source wakes the worker. Over UDP a client retransmits anyway; over a stream
 * nothing is retransmitted, so the replay is what answers it. */
void turn_defer(struct turn_worker *tw, const struct turn_client *cl, const struct stun_msg *req)
{
    if (tw->npending >= TURN_MAX_PENDING)
        return;
    struct turn_pending *p = malloc(sizeof *p + req->len);
    if (!p)
        return;
    memset(p, 0, sizeof *p);
    p->transport = cl->transport;
    p->udp = cl->udp;
    p->conn = cl->conn;
    memcpy(&p->addr, cl->addr, ml_addr_len(cl->addr));
    p->since_ms = ml_now_ms();
    p->len = req->len;
    memcpy(p->msg, req->buf, req->len);
    p->next = tw->pending;
    tw->pending = p;
    tw->npending++;
}

static void replay_pending(struct net_worker *w, void *arg)
{
    struct turn_worker *tw = net_worker_state(w);
    ML_UNUSED(arg);
    if (!tw)
        return;
    struct turn_pending *p = tw->pending;
    tw->pending = NULL;
    tw->npending = 0;
    int64_t now_ms = ml_now_ms();
    while (p) {
        struct turn_pending *next = p->next;
        /* A request the source never answered is dropped after the time a client waits. */
        if ((p->transport == NET_UDP || p->conn) && now_ms - p->since_ms < 10000) {
            struct turn_client cl = {.transport = p->transport,
                                     .udp = p->udp,
                                     .conn = p->conn,
                                     .stream = p->conn ? p->conn->s : NULL,
                                     .addr = &p->addr.sa,
                                     .local = p->udp ? net_udp_local(p->udp)
                                                     : net_stream_local(p->conn->s)};
            handle_message(tw, &cl, p->msg, p->len);
        }
        free(p);
        p = next;
    }
}

void turn_wake(void *arg)
{
    struct turn_worker *tw = arg;
    /* Any thread: only post. The replay runs after the deferring call has returned. When the
     * worker is stopping the request is simply not answered. */
    if (net_worker_post(tw->w, replay_pending, NULL) < 0)
        return;
}

static void pending_free_all(struct turn_worker *tw)
{
    while (tw->pending) {
        struct turn_pending *p = tw->pending;
        tw->pending = p->next;
        free(p);
    }
    tw->npending = 0;
}

/* ---------------------------------------------------------------- net handler */

static void *worker_start(struct net_worker *w, void *ctx)
{
    struct turn_worker *tw = ml_xcalloc(1, sizeof *tw);
    tw->srv = ctx;
    tw->w = w;
    ml_random(&tw->indication_salt, sizeof tw->indication_salt);
    refresh(tw);
    if (turn_worker_tables_init(tw) < 0)
        ML_ERROR("turn", "worker %u: out of memory while starting", net_worker_id(w));
    return tw;
}

static void worker_stop(struct net_worker *w, void *state)
{
    struct turn_worker *tw = state;
    ML_UNUSED(w);
    turn_worker_tables_free(tw);
    turn_tcp_worker_free(tw);
    pending_free_all(tw);
    free(tw);
}

static void udp_recv(struct net_udp *u, void *arg, struct net_pkt *pkts, unsigned n)
{
    struct turn_worker *tw = arg;
    struct turn_client cl = {.transport = NET_UDP, .udp = u, .local = net_udp_local(u)};
    refresh(tw);
    for (unsigned i = 0; i < n; i++) {
        cl.addr = (const struct sockaddr *)&pkts[i].from;
        handle_message(tw, &cl, pkts[i].data, pkts[i].len);
    }
}

static void *stream_open(void *state, struct net_stream *s)
{
    ML_UNUSED(state);
    struct turn_stream_conn *c = calloc(1, sizeof *c);
    if (c)
        c->s = s;
    return c;
}

static void stream_frame(void *state, struct net_stream *s, void *conn, uint8_t *data, size_t len)
{
    struct turn_worker *tw = state;
    struct turn_client cl = {.transport = net_stream_transport(s),
                             .conn = conn,
                             .stream = s,
                             .addr = net_stream_peer(s),
                             .local = net_stream_local(s)};
    refresh(tw);
    handle_message(tw, &cl, data, len);
}

static void stream_close(void *state, struct net_stream *s, void *conn)
{
    struct turn_stream_conn *c = conn;
    struct turn_worker *tw = state;
    ML_UNUSED(s);
    for (struct turn_pending *p = tw->pending; p; p = p->next)
        if (p->conn == c)
            p->conn = NULL;
    if (c->alloc)
        turn_alloc_free(c->alloc, "connection closed");
    if (c->data)
        turn_tcp_data_closed(tw, c);
    free(c);
}

static long frame_len(const uint8_t *buf, size_t avail)
{
    return stun_frame_len(buf, avail, true);
}

static const struct net_handler handler = {
    .worker_start = worker_start,
    .worker_stop = worker_stop,
    .udp_recv = udp_recv,
    .stream_open = stream_open,
    .stream_frame = stream_frame,
    .stream_close = stream_close,
    .frame_len = frame_len,
};

const struct net_handler *turn_net_handler(void)
{
    return &handler;
}

void turn_counters_read(struct net_engine *e, struct turn_counters *out)
{
    memset(out, 0, sizeof *out);
    uint64_t *dst = (uint64_t *)out;
    for (unsigned i = 0; i < net_engine_workers(e); i++) {
        struct turn_worker *tw = net_worker_state(net_engine_worker(e, i));
        if (!tw)
            continue;
        const uint64_t *src = (const uint64_t *)&tw->ctr;
        for (size_t k = 0; k < sizeof *out / sizeof(uint64_t); k++)
            dst[k] += __atomic_load_n(&src[k], __ATOMIC_RELAXED);
    }
}
