/* The authenticated TURN requests (RFC 8656 sections 7 to 9 and 11): Allocate, Refresh,
 * CreatePermission and ChannelBind, with long-term authentication (RFC 8489 9.2), quotas, the
 * peer policy and the error codes RFC 8656 lists. */
#include "config.h"

#include "turn/turn-alloc.h"

#include <netinet/in.h>
#include <openssl/evp.h>
#include <string.h>
#include <unistd.h>

/* Authenticates req; on failure answers it (within the unauthenticated budget of its address,
 * server.c) and returns false. A request that authenticates earns that budget its size. */
static bool authenticate(struct turn_worker *tw, const struct turn_client *cl,
                         const struct stun_msg *req, bool check_expiry, struct turn_cred *cred)
{
    enum turn_auth_result r = turn_auth_check_async(tw->srv->auth, req, cl->addr, ml_wall_s(),
                                                    check_expiry, turn_wake, tw, cred);
    if (r == TURN_AUTH_OK) {
        turn_budget_earn(tw, cl, req);
        return true;
    }
    if (r == TURN_AUTH_PENDING) {
        turn_defer(tw, cl, req);
        return false;
    }
    turn_reply_unauthenticated(tw, cl, req, r, cred);
    return false;
}

/* An error answer to an authenticated request: it carries MESSAGE-INTEGRITY like a success. */
static void reply_error(struct turn_worker *tw, const struct turn_client *cl,
                        const struct stun_msg *req, const struct turn_cred *cred, int code,
                        const char *reason)
{
    uint8_t out[TURN_REPLY_MAX];
    struct stun_builder b;
    stun_build_reply(&b, out, sizeof out, req, STUN_ERROR);
    stun_build_error(&b, code, reason);
    TURN_COUNT(tw->ctr.error_responses[turn_error_slot(code)], 1);
    switch (code) {
    case 440:
        TURN_COUNT(tw->ctr.errors_440, 1);
        break;
    case 441:
        TURN_COUNT(tw->ctr.errors_441, 1);
        break;
    case 442:
        TURN_COUNT(tw->ctr.errors_442, 1);
        break;
    case 443:
        TURN_COUNT(tw->ctr.errors_443, 1);
        break;
    case 508:
        TURN_COUNT(tw->ctr.errors_508, 1);
        break;
    default:
        break;
    }
    turn_finish_and_send(tw, cl, req, &b, cred);
}

static void user_hash(const struct turn_cred *cred, uint8_t out[16])
{
    uint8_t d[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_Digest(cred->username, strlen(cred->username), d, &len, EVP_sha256(), NULL);
    memcpy(out, d, 16);
}

/* RFC 8656 7.3: a request on an allocation must come with the credentials that made it. */
static bool same_user(const struct turn_alloc *a, const struct turn_cred *cred)
{
    uint8_t h[16];
    user_hash(cred, h);
    return stun_ct_equal(h, a->user_hash, sizeof h);
}

/* RFC 8656 7.2 and 7.3: the requested lifetime, capped at the maximum and at least the
 * default. */
static long long desired_lifetime(const struct turn_worker *tw, const struct stun_msg *req)
{
    const struct stun_attr *la = stun_msg_find(req, STUN_ATTR_LIFETIME);
    uint32_t want;
    long long def = tw->set.default_lifetime_s, max = tw->set.max_lifetime_s;
    if (!la || stun_attr_get_u32(req, la, &want) < 0)
        return def < max ? def : max;
    if (want == 0)
        return 0;
    long long lt = (long long)want < max ? (long long)want : max;
    if (lt < def)
        lt = def < max ? def : max;
    return lt;
}

/* Sends a success answer, remembering it for a retransmission of the same request. */
static void send_success(struct turn_worker *tw, const struct turn_client *cl,
                         const struct stun_msg *req, struct stun_builder *b,
                         const struct turn_cred *cred, struct turn_alloc *a)
{
    turn_finish_and_send(tw, cl, req, b, cred);
    if (a && b->len && !b->overflow)
        turn_alloc_remember(a, req->tid, b->buf, b->len);
}

/* A retransmission of the allocation's last request gets the same answer. */
static bool resend_last(struct turn_worker *tw, const struct turn_client *cl,
                        const struct turn_alloc *a, const struct stun_msg *req)
{
    size_t len;
    const uint8_t *last = a ? turn_alloc_recall(a, req->tid, &len) : NULL;
    if (!last)
        return false;
    turn_send(tw, cl, last, len);
    return true;
}

/* Reads an address-family attribute: 0 when absent, 1 with *fam set (0 IPv4, 1 IPv6), -1 when
 * malformed, -2 for an unknown family. */
static int family_of(const struct stun_msg *req, uint16_t type, int *fam)
{
    const struct stun_attr *at = stun_msg_find(req, type);
    if (!at)
        return 0;
    if (at->len != 4)
        return -1;
    uint8_t f = stun_attr_value(req, at)[0];
    if (f == STUN_FAMILY_IPV4)
        *fam = 0;
    else if (f == STUN_FAMILY_IPV6)
        *fam = 1;
    else
        return -2;
    return 1;
}

static void set_dont_fragment(struct net_udp *u, int fam)
{
    int fd = net_udp_fd(u);
    if (fam == 0) {
        int v = IP_PMTUDISC_DO;
        (void)setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &v, sizeof v);
    } else {
        int v = 1;
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_DONTFRAG, &v, sizeof v);
    }
}

/* What an Allocate asks for, read and checked before anything is acquired. */
struct alloc_ask {
    bool want[2];         /* families to relay: [0] IPv4, [1] IPv6 */
    int first;            /* the family EVEN-PORT applies to (the only one, unless dual) */
    bool even, reserve;   /* EVEN-PORT, and its R bit: hold the next port for a companion */
    const uint8_t *token; /* RESERVATION-TOKEN (8 bytes, in the request), or NULL */
    bool v6_refused;      /* dual asked where no IPv6 is relayed: IPv4 alone, and
                           * ADDRESS-ERROR-CODE 440 in the answer */
};

/* Reads an Allocate's attributes into *ask (RFC 8656 7.2). 0, or the error code to answer with
 * and in *why its reason (NULL: the standard one). With a RESERVATION-TOKEN the family is the
 * reservation's, known once it is taken. */
static int read_allocate(const struct turn_server *srv, const struct stun_msg *req,
                         struct alloc_ask *ask, const char **why)
{
    memset(ask, 0, sizeof *ask);
    *why = NULL;
    const struct stun_attr *rt = stun_msg_find(req, STUN_ATTR_REQUESTED_TRANSPORT);
    if (!rt || rt->len != 4) {
        *why = "REQUESTED-TRANSPORT missing";
        return 400;
    }
    if (stun_attr_value(req, rt)[0] != TURN_PROTO_UDP)
        return 442;
    const struct stun_attr *ep = stun_msg_find(req, STUN_ATTR_EVEN_PORT);
    const struct stun_attr *tok = stun_msg_find(req, STUN_ATTR_RESERVATION_TOKEN);
    int req_fam = 0, add_fam = 0;
    int has_req = family_of(req, STUN_ATTR_REQUESTED_ADDRESS_FAMILY, &req_fam);
    int has_add = family_of(req, STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY, &add_fam);
    if (has_req == -1 || has_add == -1 || (tok && tok->len != 8) || (ep && ep->len < 1)) {
        *why = "Malformed attribute";
        return 400;
    }
    if (has_req == -2)
        return 440;
    ask->even = ep != NULL;
    ask->reserve = ep && (stun_attr_value(req, ep)[0] & 0x80);
    ask->token = tok ? stun_attr_value(req, tok) : NULL;
    /* A token names a reserved address, family included, so it goes with neither EVEN-PORT nor
     * a family attribute; the two family attributes exclude each other; a dual allocation
     * reserves nothing (its pair is IPv4 and IPv6, not RTP and RTCP). */
    if ((tok && (ep || has_req || has_add)) || (has_req && has_add) || has_add == -2 ||
        (has_add && add_fam != 1) || (has_add && ask->reserve)) {
        *why = "Conflicting attributes";
        return 400;
    }
    if (tok)
        return 0;
    /* IPv4 by default, else the requested family, or both */
    ask->want[0] = !has_req || req_fam == 0;
    ask->want[1] = (has_req && req_fam == 1) || has_add;
    ask->first = ask->want[0] ? 0 : 1;
    if (!srv->have_relay[ask->first])
        return 440;
    if (has_add && !srv->have_relay[1]) {
        ask->want[1] = false;
        ask->v6_refused = true;
    }
    return 0;
}

/* The sockets of an allocation being made, until the allocation owns them. */
struct alloc_socks {
    int fd[2];   /* relay socket per family; -1: none */
    int next_fd; /* EVEN-PORT with R: the port after fd[first], to reserve; -1: none */
};

/* Binds the relay sockets ask wants into *s, or takes the reserved one (whose family then
 * becomes ask's). 0, or -1 when no port is free or the token is unknown or lapsed; what was
 * bound is in *s either way. */
static int relay_sockets(struct turn_worker *tw, struct alloc_ask *ask, struct alloc_socks *s,
                         int64_t now_ms)
{
    if (ask->token) {
        int fam = 0;
        int fd = turn_reservation_take(tw->srv, ask->token, now_ms, &fam);
        if (fd < 0)
            return -1;
        s->fd[fam] = fd;
        ask->want[fam] = true;
        ask->first = fam;
        return 0;
    }
    for (int fam = 0; fam < 2; fam++) {
        int none;
        bool reserve = ask->reserve && fam == ask->first;
        if (ask->want[fam] && turn_relay_bind(tw, fam, ask->even, reserve, &s->fd[fam],
                                              reserve ? &s->next_fd : &none) < 0)
            return -1;
    }
    return 0;
}

/* RFC 8656 7.2. Acquires, in order: the quota, the relay sockets, the allocation (which then
 * owns the sockets), the reservation of the next port; a failure releases what was acquired at
 * one place, in reverse order, as run() in src/app/main.c does. */
void turn_handle_allocate(struct turn_worker *tw, const struct turn_client *cl,
                          const struct stun_msg *req)
{
    struct turn_server *srv = tw->srv;
    struct turn_cred cred;
    int64_t now_ms = ml_now_ms();
    char addr[ML_ADDR_STRLEN];
    if (!authenticate(tw, cl, req, true, &cred))
        return;
    struct turn_alloc *a = turn_client_alloc(tw, cl);
    if (a) {
        if (!resend_last(tw, cl, a, req))
            reply_error(tw, cl, req, &cred, 437, NULL);
        return;
    }
    const struct stun_attr *rt = stun_msg_find(req, STUN_ATTR_REQUESTED_TRANSPORT);
    if (rt && rt->len == 4 && stun_attr_value(req, rt)[0] == TURN_PROTO_TCP) {
        turn_tcp_allocate(tw, cl, req, &cred); /* RFC 6062 */
        return;
    }
    struct alloc_ask ask;
    const char *why;
    int code = read_allocate(srv, req, &ask, &why);
    if (!code && turn_server_draining(srv)) {
        code = 508;
        why = "Server is draining";
    }
    if (code) {
        reply_error(tw, cl, req, &cred, code, why);
        return;
    }
    code = turn_quota_acquire(srv, cred.id, tw->set.max_per_user, tw->set.max_allocations);
    if (code) {
        ML_LOG_LIMITED(ML_LOG_NOTICE, "turn", "%d for Allocate from %s (%s): %s", code,
                       ml_addr_str(cl->addr, addr, sizeof addr), cred.id,
                       code == 486 ? "per-user quota reached" : "server capacity reached");
        reply_error(tw, cl, req, &cred, code, NULL);
        return;
    }

    struct alloc_socks s = {{-1, -1}, -1};
    uint8_t token[8];
    bool have_token = false;
    if (relay_sockets(tw, &ask, &s, now_ms) < 0) {
        why = ask.token ? "unknown or lapsed reservation token" : "no free relay port";
        goto fail;
    }
    why = "out of memory";
    a = turn_alloc_new(tw, cl);
    if (!a)
        goto fail;
    a->dont_fragment = stun_msg_find(req, STUN_ATTR_DONT_FRAGMENT) != NULL;
    for (int fam = 0; fam < 2; fam++) {
        if (s.fd[fam] < 0)
            continue;
        char err[160];
        a->relay[fam] = net_udp_adopt(tw->w, s.fd[fam], turn_relay_recv, a, err, sizeof err);
        s.fd[fam] = -1; /* the allocation's now, or closed by net_udp_adopt */
        why = "relay socket failed";
        if (!a->relay[fam])
            goto fail;
        TURN_COUNT(*(fam == 0 ? &tw->ctr.alloc_ipv4 : &tw->ctr.alloc_ipv6), 1);
        /* the address and port the relay socket got (net_udp_adopt read them once) */
        turn_relay_public_of(srv, net_udp_local(a->relay[fam]), &a->relay_public[fam]);
        why = "out of memory";
        if (turn_relay_index_add(a, fam) < 0)
            goto fail;
        if (a->dont_fragment)
            set_dont_fragment(a->relay[fam], fam);
    }
    if (s.next_fd >= 0) {
        why = "reservation table full";
        if (turn_reservation_add(srv, s.next_fd, ask.first, token, now_ms) < 0)
            goto fail;
        s.next_fd = -1;
        have_token = true;
    }

    /* Nothing fails from here: the allocation takes the quota over (turn_alloc_free releases
     * it, and reports the allocation to the hook, once cred_id is set). */
    ml_strlcpy(a->cred_id, cred.id, sizeof a->cred_id);
    user_hash(&cred, a->user_hash);
    a->cred_expiry_s = cred.expiry_s;
    long long lifetime = desired_lifetime(tw, req);
    if (lifetime == 0)
        lifetime = tw->set.default_lifetime_s;
    a->expires_ms = now_ms + lifetime * 1000;
    if (cl->transport != NET_UDP) {
        net_stream_set_idle(cl->stream, 0); /* the allocation's lifetime governs now */
        net_stream_established(cl->stream);
    }

    uint8_t out[TURN_REPLY_MAX];
    struct stun_builder b;
    stun_build_reply(&b, out, sizeof out, req, STUN_SUCCESS);
    for (int fam = 0; fam < 2; fam++)
        if (a->relay[fam])
            stun_build_xaddr(&b, STUN_ATTR_XOR_RELAYED_ADDRESS, &a->relay_public[fam].sa);
    if (ask.v6_refused) {
        const char *reason = stun_reason(440);
        uint8_t v[4 + 64];
        size_t rl = strlen(reason) < 64 ? strlen(reason) : 64;
        v[0] = STUN_FAMILY_IPV6;
        v[1] = 0;
        v[2] = 4;
        v[3] = 40;
        memcpy(v + 4, reason, rl);
        stun_build_attr(&b, STUN_ATTR_ADDRESS_ERROR_CODE, v, 4 + rl);
    }
    stun_build_u32(&b, STUN_ATTR_LIFETIME, (uint32_t)lifetime);
    if (have_token)
        stun_build_attr(&b, STUN_ATTR_RESERVATION_TOKEN, token, sizeof token);
    stun_build_xaddr(&b, STUN_ATTR_XOR_MAPPED_ADDRESS, cl->addr);
    char raddr[ML_ADDR_STRLEN];
    ML_INFO("turn", "allocated %s relay %s for %s (client %s, %s, lifetime %llds)",
            a->relay[1] && a->relay[0] ? "dual"
            : a->relay[1]              ? "ipv6"
                                       : "ipv4",
            ml_addr_str(&a->relay_public[a->relay[0] ? 0 : 1].sa, raddr, sizeof raddr), a->cred_id,
            ml_addr_str(cl->addr, addr, sizeof addr), net_transport_name(cl->transport), lifetime);
    send_success(tw, cl, req, &b, &cred, a);
    return;

fail:
    if (a)
        turn_alloc_free(a, why); /* and its relay sockets; without cred_id, no quota or hook */
    for (int fam = 0; fam < 2; fam++)
        if (s.fd[fam] >= 0)
            close(s.fd[fam]);
    if (s.next_fd >= 0)
        close(s.next_fd);
    turn_quota_release(srv, cred.id);
    ML_LOG_LIMITED(ML_LOG_WARN, "turn", "508 for Allocate from %s: %s",
                   ml_addr_str(cl->addr, addr, sizeof addr), why);
    reply_error(tw, cl, req, &cred, 508, NULL);
}

/* RFC 8656 7.3. */
void turn_handle_refresh(struct turn_worker *tw, const struct turn_client *cl,
                         const struct stun_msg *req)
{
    struct turn_cred cred;
    int64_t now_ms = ml_now_ms();
    if (!authenticate(tw, cl, req, turn_auth_strict_expiry(tw->srv->auth), &cred))
        return;
    struct turn_alloc *a = turn_client_alloc(tw, cl);
    if (!a) {
        size_t len;
        const uint8_t *last = turn_tombstone_find(tw, cl, req->tid, now_ms, &len);
        if (last)
            turn_send(tw, cl, last, len);
        else
            reply_error(tw, cl, req, &cred, 437, NULL);
        return;
    }
    if (!same_user(a, &cred)) {
        reply_error(tw, cl, req, &cred, 441, NULL);
        return;
    }
    if (resend_last(tw, cl, a, req))
        return;
    int fam = 0;
    int has_fam = family_of(req, STUN_ATTR_REQUESTED_ADDRESS_FAMILY, &fam);
    if (has_fam < 0) {
        reply_error(tw, cl, req, &cred, has_fam == -2 ? 440 : 400, NULL);
        return;
    }
    if (has_fam && !turn_alloc_has_family(a, fam)) {
        reply_error(tw, cl, req, &cred, 443, NULL);
        return;
    }
    long long lifetime = desired_lifetime(tw, req);
    uint8_t out[TURN_REPLY_MAX];
    struct stun_builder b;
    stun_build_reply(&b, out, sizeof out, req, STUN_SUCCESS);
    stun_build_u32(&b, STUN_ATTR_LIFETIME, (uint32_t)lifetime);
    if (lifetime == 0 && has_fam && a->relay[1 - fam]) {
        /* A dual allocation drops one family and lives on with the other. */
        turn_alloc_close_relay(a, fam);
        send_success(tw, cl, req, &b, &cred, a);
        return;
    }
    if (lifetime == 0) {
        /* Freed first: once the client has the answer, its quota and relay port are free
         * (on any worker) for its next Allocate. */
        turn_alloc_free(a, "refreshed to 0");
        turn_finish_and_send(tw, cl, req, &b, &cred);
        if (b.len && !b.overflow)
            turn_tombstone_add(tw, cl, req->tid, b.buf, b.len, now_ms);
        if (cl->transport != NET_UDP)
            net_stream_reset_idle(cl->stream);
        return;
    }
    a->expires_ms = now_ms + lifetime * 1000;
    send_success(tw, cl, req, &b, &cred, a);
}

/* Common checks of CreatePermission and ChannelBind: the allocation exists, the credentials
 * match, and the request is not a retransmission. Returns the allocation or NULL (answered). */
static struct turn_alloc *alloc_for_request(struct turn_worker *tw, const struct turn_client *cl,
                                            const struct stun_msg *req, struct turn_cred *cred)
{
    if (!authenticate(tw, cl, req, turn_auth_strict_expiry(tw->srv->auth), cred))
        return NULL;
    struct turn_alloc *a = turn_client_alloc(tw, cl);
    if (!a || a->expires_ms <= ml_now_ms()) {
        reply_error(tw, cl, req, cred, 437, NULL);
        return NULL;
    }
    if (!same_user(a, cred)) {
        reply_error(tw, cl, req, cred, 441, NULL);
        return NULL;
    }
    if (resend_last(tw, cl, a, req))
        return NULL;
    return a;
}

/* Checks one peer address of a request against the allocation's families and the policy;
 * answers and returns false when it fails. */
static bool peer_allowed(struct turn_worker *tw, const struct turn_client *cl,
                         const struct stun_msg *req, const struct turn_cred *cred,
                         struct turn_alloc *a, const struct sockaddr *peer, bool with_port)
{
    if (!turn_alloc_has_family(a, turn_fam_index(peer->sa_family))) {
        reply_error(tw, cl, req, cred, 443, NULL);
        return false;
    }
    char why[TURN_POLICY_WHY_MAX];
    if (turn_policy_explain(tw->set.policy, peer, with_port, why, sizeof why)) {
        char p[ML_ADDR_STRLEN], c[ML_ADDR_STRLEN];
        TURN_COUNT(tw->ctr.peer_denied, 1);
        ML_LOG_LIMITED(ML_LOG_NOTICE, "turn", "403 for %s to peer %s from %s (%s): denied by %s",
                       stun_method_name(req->method), ml_addr_str(peer, p, sizeof p),
                       ml_addr_str(cl->addr, c, sizeof c), cred->id, why);
        reply_error(tw, cl, req, cred, 403, "Forbidden IP");
        return false;
    }
    return true;
}

/* RFC 8656 9. Every XOR-PEER-ADDRESS is checked before any permission is installed: the
 * request succeeds or fails as a whole. */
void turn_handle_create_permission(struct turn_worker *tw, const struct turn_client *cl,
                                   const struct stun_msg *req)
{
    struct turn_cred cred;
    struct turn_alloc *a = alloc_for_request(tw, cl, req, &cred);
    if (!a)
        return;
    union turn_sa peers[STUN_MAX_ATTRS];
    unsigned n = 0;
    for (unsigned i = 0; i < req->nattrs; i++) {
        const struct stun_attr *at = &req->attrs[i];
        if (at->type != STUN_ATTR_XOR_PEER_ADDRESS)
            continue;
        if (turn_get_xaddr(req, at, &peers[n]) < 0) {
            reply_error(tw, cl, req, &cred, 400, "Bad XOR-PEER-ADDRESS");
            return;
        }
        if (!peer_allowed(tw, cl, req, &cred, a, &peers[n].sa, false))
            return;
        n++;
    }
    if (n == 0) {
        reply_error(tw, cl, req, &cred, 400, "XOR-PEER-ADDRESS missing");
        return;
    }
    int64_t expires = ml_now_ms() + tw->set.perm_lifetime_s * 1000;
    unsigned have = 0;
    for (unsigned i = 0; i < n; i++)
        if (!turn_perm_find(a, &peers[i].sa, 0))
            have++;
    if (a->nperms + have > tw->set.max_permissions) {
        reply_error(tw, cl, req, &cred, 508, "Too many permissions");
        return;
    }
    for (unsigned i = 0; i < n; i++)
        if (turn_perm_install(a, &peers[i].sa, expires, tw->set.max_permissions) < 0) {
            reply_error(tw, cl, req, &cred, 508, "Too many permissions");
            return;
        }
    uint8_t out[TURN_REPLY_MAX];
    struct stun_builder b;
    stun_build_reply(&b, out, sizeof out, req, STUN_SUCCESS);
    send_success(tw, cl, req, &b, &cred, a);
}

/* RFC 8656 11.2. */
void turn_handle_channel_bind(struct turn_worker *tw, const struct turn_client *cl,
                              const struct stun_msg *req)
{
    struct turn_cred cred;
    struct turn_alloc *a = alloc_for_request(tw, cl, req, &cred);
    if (!a)
        return;
    const struct stun_attr *ca = stun_msg_find(req, STUN_ATTR_CHANNEL_NUMBER);
    const struct stun_attr *pa = stun_msg_find(req, STUN_ATTR_XOR_PEER_ADDRESS);
    uint32_t cv;
    union turn_sa peer;
    if (!ca || stun_attr_get_u32(req, ca, &cv) < 0) {
        reply_error(tw, cl, req, &cred, 400, "CHANNEL-NUMBER missing");
        return;
    }
    uint16_t number = (uint16_t)(cv >> 16);
    if (number < TURN_CHANNEL_MIN || number > tw->set.channel_max) {
        reply_error(tw, cl, req, &cred, 400, "Channel number out of range");
        return;
    }
    if (!pa || turn_get_xaddr(req, pa, &peer) < 0) {
        reply_error(tw, cl, req, &cred, 400, "XOR-PEER-ADDRESS missing");
        return;
    }
    if (!peer_allowed(tw, cl, req, &cred, a, &peer.sa, true))
        return;
    struct turn_chan *by_num = turn_chan_by_number(a, number);
    struct turn_chan *by_peer = turn_chan_by_peer(a, &peer.sa);
    if (by_num && !ml_addr_equal(&by_num->peer.sa, &peer.sa)) {
        reply_error(tw, cl, req, &cred, 400, "Channel bound to another peer");
        return;
    }
    if (by_peer && by_peer->number != number) {
        reply_error(tw, cl, req, &cred, 400, "Peer bound to another channel");
        return;
    }
    int64_t now_ms = ml_now_ms();
    if (!turn_perm_find(a, &peer.sa, 0) && a->nperms >= tw->set.max_permissions) {
        reply_error(tw, cl, req, &cred, 508, "Too many permissions");
        return;
    }
    if (turn_chan_bind(a, number, &peer.sa, now_ms + tw->set.chan_lifetime_s * 1000,
                       tw->set.max_channels) < 0) {
        reply_error(tw, cl, req, &cred, 508, "Too many channels");
        return;
    }
    /* A channel binding installs or refreshes the permission for its peer (RFC 8656 11.2). */
    (void)turn_perm_install(a, &peer.sa, now_ms + tw->set.perm_lifetime_s * 1000,
                            tw->set.max_permissions);
    uint8_t out[TURN_REPLY_MAX];
    struct stun_builder b;
    stun_build_reply(&b, out, sizeof out, req, STUN_SUCCESS);
    send_success(tw, cl, req, &b, &cred, a);
}

/* ---------------------------------------------------------------- for tcprelay.c (RFC 6062) */

bool turn_authenticate(struct turn_worker *tw, const struct turn_client *cl,
                       const struct stun_msg *req, bool check_expiry, struct turn_cred *cred)
{
    return authenticate(tw, cl, req, check_expiry, cred);
}

void turn_reply_auth_error(struct turn_worker *tw, const struct turn_client *cl,
                           const struct stun_msg *req, const struct turn_cred *cred, int code,
                           const char *reason)
{
    reply_error(tw, cl, req, cred, code, reason);
}

void turn_user_hash(const struct turn_cred *cred, uint8_t out[16])
{
    user_hash(cred, out);
}

bool turn_same_user(const struct turn_alloc *a, const struct turn_cred *cred)
{
    return same_user(a, cred);
}

long long turn_desired_lifetime(const struct turn_worker *tw, const struct stun_msg *req)
{
    return desired_lifetime(tw, req);
}

void turn_send_success(struct turn_worker *tw, const struct turn_client *cl,
                       const struct stun_msg *req, struct stun_builder *b,
                       const struct turn_cred *cred, struct turn_alloc *a)
{
    send_success(tw, cl, req, b, cred, a);
}

struct turn_alloc *turn_alloc_for_request(struct turn_worker *tw, const struct turn_client *cl,
                                          const struct stun_msg *req, struct turn_cred *cred)
{
    return alloc_for_request(tw, cl, req, cred);
}

bool turn_peer_allowed(struct turn_worker *tw, const struct turn_client *cl,
                       const struct stun_msg *req, const struct turn_cred *cred,
                       struct turn_alloc *a, const struct sockaddr *peer, bool with_port)
{
    return peer_allowed(tw, cl, req, cred, a, peer, with_port);
}
