/* TCP allocations (RFC 6062). A client on a TCP or TLS connection (its control connection)
 * allocates with REQUESTED-TRANSPORT TCP and gets a relayed address on which the server listens.
 * Connect asks the server to connect from that address to a peer; a peer that connects to it,
 * from an IP the allocation has a permission for, is announced by a ConnectionAttempt
 * indication. Either way the connection gets a CONNECTION-ID, and the client binds it to a new
 * connection of its own with ConnectionBind, within 30 s; from then on the two are a byte pipe
 * (src/net/tcpconn.c: bounded both ways). Everything of an allocation lives on its worker: a
 * ConnectionBind that lands on another one (SO_REUSEPORT picks workers by the 4-tuple) hands
 * its connection over to the worker named in the CONNECTION-ID's top byte. When the
 * allocation ends (its control connection closes, it expires, Refresh 0, revocation, the admin
 * API, shutdown), every connection of it closes and its bytes go into its usage record. */
#include "config.h"

#include "turn/turn-alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TCP_CONNECT_TIMEOUT_S 30  /* RFC 6062 5.2: at least 30 s */
#define TCP_BIND_TIMEOUT_MS 30000 /* RFC 6062 5.2, 5.3: a ConnectionBind within 30 s */

/* What a TCP allocation owns besides the allocation itself. */
struct turn_tcp_relay {
    struct net_listener *listener; /* on the relayed address */
    union turn_sa local;           /* the relayed address as bound (relay-address, its port) */
    struct turn_tcp_conn *conns;
    unsigned nconns;
};

enum tcp_state {
    TCP_CONNECTING, /* Connect: the server is connecting to the peer */
    TCP_PENDING,    /* up, waiting for the client's ConnectionBind */
    TCP_BOUND,      /* piped to a client data connection */
};

/* One peer connection of a TCP allocation. */
struct turn_tcp_conn {
    struct turn_tcp_conn *next;  /* the allocation's list */
    struct turn_tcp_conn *hnext; /* the worker's CONNECTION-ID chain */
    struct turn_alloc *a;
    uint32_t id;
    enum tcp_state state;
    struct net_conn *peer_conn;
    union turn_sa peer;
    struct turn_stream_conn *client; /* BOUND: the client data connection */
    int64_t deadline_ms;             /* PENDING: the ConnectionBind must come by then */
    /* CONNECTING: what the Connect's answer needs (the key is wiped once it is sent) */
    uint8_t tid[STUN_TID_LEN];
    bool fp, sha256;
    uint8_t key[STUN_MAX_KEY_LEN];
    size_t keylen;
};

/* ---------------------------------------------------------------- CONNECTION-IDs */

/* The worker that owns a CONNECTION-ID: its top byte (workers are at most 256). */
static unsigned id_worker(uint32_t id)
{
    return id >> 24;
}

static size_t id_slot(const struct turn_worker *tw, uint32_t id)
{
    return (size_t)((id * 0x9E3779B1u) >> 8) & (tw->tcp_ids_size - 1);
}

static struct turn_tcp_conn *id_find(struct turn_worker *tw, uint32_t id)
{
    if (!tw->tcp_ids_size)
        return NULL;
    for (struct turn_tcp_conn *c = tw->tcp_ids[id_slot(tw, id)]; c; c = c->hnext)
        if (c->id == id)
            return c;
    return NULL;
}

static int id_table_grow(struct turn_worker *tw)
{
    size_t size = tw->tcp_ids_size ? tw->tcp_ids_size * 2 : 64;
    struct turn_tcp_conn **t = calloc(size, sizeof *t), **old = tw->tcp_ids;
    size_t oldsize = tw->tcp_ids_size;
    if (!t)
        return -1;
    tw->tcp_ids = t;
    tw->tcp_ids_size = size;
    for (size_t i = 0; i < oldsize; i++) {
        while (old[i]) {
            struct turn_tcp_conn *c = old[i];
            old[i] = c->hnext;
            size_t s = id_slot(tw, c->id);
            c->hnext = t[s];
            t[s] = c;
        }
    }
    free(old);
    return 0;
}

/* A fresh CONNECTION-ID for c, hashed: this worker's index, then 24 bits of a sequence that
 * starts at random. 0 or -1 (out of memory, or no free id). */
static int id_assign(struct turn_worker *tw, struct turn_tcp_conn *c)
{
    if (tw->tcp_ids_n + 1 > tw->tcp_ids_size / 2 && id_table_grow(tw) < 0)
        return -1;
    if (!tw->tcp_seq)
        ml_random(&tw->tcp_seq, sizeof tw->tcp_seq);
    for (int tries = 0; tries < 64; tries++) {
        tw->tcp_seq = (tw->tcp_seq + 1) & 0xFFFFFFu;
        uint32_t id = (uint32_t)net_worker_id(tw->w) << 24 | tw->tcp_seq;
        if (tw->tcp_seq == 0 || id_find(tw, id))
            continue;
        c->id = id;
        size_t s = id_slot(tw, id);
        c->hnext = tw->tcp_ids[s];
        tw->tcp_ids[s] = c;
        tw->tcp_ids_n++;
        return 0;
    }
    return -1;
}

static void id_remove(struct turn_worker *tw, struct turn_tcp_conn *c)
{
    if (!tw->tcp_ids_size || !c->id)
        return;
    struct turn_tcp_conn **pp = &tw->tcp_ids[id_slot(tw, c->id)];
    while (*pp && *pp != c)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = c->hnext;
        tw->tcp_ids_n--;
    }
}

void turn_tcp_worker_free(struct turn_worker *tw)
{
    free(tw->tcp_ids);
    tw->tcp_ids = NULL;
    tw->tcp_ids_size = tw->tcp_ids_n = 0;
}

/* ---------------------------------------------------------------- peer connections */

static void on_peer_event(struct net_conn *nc, void *arg, enum net_conn_event ev);

static struct turn_tcp_conn *conn_new(struct turn_alloc *a, const struct sockaddr *peer,
                                      enum tcp_state st)
{
    struct turn_worker *tw = a->tw;
    struct turn_tcp_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (id_assign(tw, c) < 0) {
        free(c);
        return NULL;
    }
    c->a = a;
    c->state = st;
    memcpy(&c->peer, peer, ml_addr_len(peer));
    c->next = a->tcp->conns;
    a->tcp->conns = c;
    a->tcp->nconns++;
    TURN_COUNT(tw->ctr.tcp_relay_conns, 1);
    TURN_COUNT(tw->ctr.tcp_relay_conns_total, 1);
    return c;
}

/* Ends a peer connection: its bytes go into the allocation's usage, both sides close (after
 * what is queued to them is written), the record is freed. */
static void conn_end(struct turn_tcp_conn *c, const char *why)
{
    struct turn_alloc *a = c->a;
    struct turn_worker *tw = a->tw;
    char p[ML_ADDR_STRLEN];
    uint64_t from_peer = 0, to_peer = 0;
    if (c->peer_conn) {
        net_conn_bytes(c->peer_conn, &from_peer, &to_peer);
        net_conn_close(c->peer_conn);
        c->peer_conn = NULL;
    }
    a->usage.rx_bytes += to_peer;
    a->usage.tx_bytes += from_peer;
    TURN_COUNT(tw->ctr.relay_rx_bytes, to_peer);
    TURN_COUNT(tw->ctr.relay_tx_bytes, from_peer);
    if (c->client) {
        c->client->data = NULL;
        net_stream_close(c->client->s);
        c->client = NULL;
    }
    ML_DEBUG("turn",
             "tcp connection %08x of %s with %s ended (%s): %llu bytes to the peer, "
             "%llu from it",
             c->id, a->cred_id, ml_addr_str(&c->peer.sa, p, sizeof p), why,
             (unsigned long long)to_peer, (unsigned long long)from_peer);
    struct turn_tcp_conn **pp = &a->tcp->conns;
    while (*pp && *pp != c)
        pp = &(*pp)->next;
    if (*pp)
        *pp = c->next;
    a->tcp->nconns--;
    id_remove(tw, c);
    TURN_COUNT(tw->ctr.tcp_relay_conns, (uint64_t)-1);
    ml_wipe(c->key, sizeof c->key);
    free(c);
}

/* The answer to a Connect, once the connection is up (CONNECTION-ID) or has failed (447). It
 * goes on the control connection, with the integrity of the request's key. */
static void answer_connect(struct turn_tcp_conn *c, int code)
{
    struct turn_alloc *a = c->a;
    struct turn_worker *tw = a->tw;
    struct net_stream *s = a->conn ? a->conn->s : NULL;
    if (!s)
        return;
    struct turn_client cl = {.transport = net_stream_transport(s),
                             .conn = a->conn,
                             .stream = s,
                             .addr = net_stream_peer(s),
                             .local = net_stream_local(s)};
    struct stun_msg req; /* what turn_finish_and_send reads of a request */
    memset(&req, 0, sizeof req);
    req.method = TURN_CONNECT;
    memcpy(req.tid, c->tid, STUN_TID_LEN);
    req.mi = req.mi256 = -1;
    req.fp = c->fp ? 0 : -1;
    struct turn_cred *cred = calloc(1, sizeof *cred);
    if (!cred)
        return;
    cred->sha256 = c->sha256;
    memcpy(cred->key, c->key, c->keylen);
    cred->keylen = c->keylen;
    uint8_t out[TURN_REPLY_MAX];
    struct stun_builder b;
    stun_build_init(&b, out, sizeof out, TURN_CONNECT, code ? STUN_ERROR : STUN_SUCCESS, c->tid);
    if (code) {
        stun_build_error(&b, code, NULL);
        TURN_COUNT(tw->ctr.error_responses[turn_error_slot(code)], 1);
    } else {
        stun_build_u32(&b, STUN_ATTR_CONNECTION_ID, c->id);
    }
    turn_finish_and_send(tw, &cl, &req, &b, cred);
    ml_wipe(cred, sizeof *cred);
    free(cred);
    ml_wipe(c->key, sizeof c->key);
    c->keylen = 0;
    net_worker_flush(tw->w);
}

/* A ConnectionAttempt indication: a permitted peer connected to the relayed address. */
static void send_attempt(struct turn_tcp_conn *c)
{
    struct turn_alloc *a = c->a;
    struct turn_worker *tw = a->tw;
    if (!a->conn)
        return;
    uint8_t out[TURN_REPLY_MAX], tid[STUN_TID_LEN];
    struct stun_builder b;
    ml_random(tid, sizeof tid);
    stun_build_init(&b, out, sizeof out, TURN_CONNECTION_ATTEMPT, STUN_INDICATION, tid);
    stun_build_xaddr(&b, STUN_ATTR_XOR_PEER_ADDRESS, &c->peer.sa);
    stun_build_u32(&b, STUN_ATTR_CONNECTION_ID, c->id);
    if (tw->set.software[0])
        stun_build_attr(&b, STUN_ATTR_SOFTWARE, tw->set.software, strlen(tw->set.software));
    if (tw->set.fingerprint_always)
        stun_build_fingerprint(&b);
    size_t len = stun_build_finish(&b);
    if (len)
        (void)net_stream_send_reply(a->conn->s, out, len);
}

static void on_peer_event(struct net_conn *nc, void *arg, enum net_conn_event ev)
{
    struct turn_tcp_conn *c = arg;
    struct turn_worker *tw = c->a->tw;
    char p[ML_ADDR_STRLEN];
    switch (ev) {
    case NET_CONN_CONNECTED:
        if (c->state != TCP_CONNECTING)
            return;
        c->state = TCP_PENDING;
        c->deadline_ms = ml_now_ms() + TCP_BIND_TIMEOUT_MS;
        answer_connect(c, 0);
        return;
    case NET_CONN_FAILED:
        TURN_COUNT(tw->ctr.tcp_relay_failed, 1);
        ML_LOG_LIMITED(ML_LOG_INFO, "turn", "447 for Connect to %s (%s): %s",
                       ml_addr_str(&c->peer.sa, p, sizeof p), c->a->cred_id,
                       strerror(net_conn_error(nc)));
        answer_connect(c, 447);
        conn_end(c, "connect failed");
        return;
    case NET_CONN_CLOSED:
        conn_end(c, "closed by the peer");
        return;
    }
}

/* A connection arrived on the relayed address. RFC 6062 5.3: accepted, then closed at once
 * unless the allocation has a permission for the peer's IP; otherwise announced. */
static void on_peer_accept(struct net_listener *l, void *arg, int fd, const struct sockaddr *peer)
{
    struct turn_alloc *a = arg;
    struct turn_worker *tw = a->tw;
    char p[ML_ADDR_STRLEN];
    const char *why = NULL;
    ML_UNUSED(l);
    if (peer->sa_family != AF_INET && peer->sa_family != AF_INET6)
        why = "not an IP peer";
    else if (!turn_perm_find(a, peer, ml_now_ms()))
        why = "no permission";
    else if (turn_policy_deny(tw->set.policy, peer, false))
        why = "denied by the peer policy";
    else if (a->tcp->nconns >= (unsigned)tw->set.tcp_max_conns)
        why = "too many connections";
    for (struct turn_tcp_conn *c = a->tcp->conns; !why && c; c = c->next)
        if (ml_addr_equal(&c->peer.sa, peer))
            why = "a connection with that peer address exists";
    struct turn_tcp_conn *c = why ? NULL : conn_new(a, peer, TCP_PENDING);
    if (!why && !c)
        why = "out of memory";
    if (c && !(c->peer_conn = net_conn_adopt(tw->w, fd, on_peer_event, c))) {
        conn_end(c, "out of memory"); /* net_conn_adopt closed fd */
        return;
    }
    if (!c) {
        TURN_COUNT(tw->ctr.tcp_relay_refused, 1);
        ML_LOG_LIMITED(ML_LOG_INFO, "turn",
                       "closed a tcp connection from %s to the relay of %s: %s",
                       ml_addr_str(peer, p, sizeof p), a->cred_id, why);
        close(fd);
        return;
    }
    c->deadline_ms = ml_now_ms() + TCP_BIND_TIMEOUT_MS;
    send_attempt(c);
    net_worker_flush(tw->w);
}

/* An error answer to an authenticated request of this file, noted in the debug log. */
static void refuse(struct turn_worker *tw, const struct turn_client *cl, const struct stun_msg *req,
                   const struct turn_cred *cred, int code, const char *reason)
{
    char a[ML_ADDR_STRLEN];
    ML_DEBUG("turn", "%d for %s from %s (%s): %s", code, stun_method_name(req->method),
             ml_addr_str(cl->addr, a, sizeof a), cred->id, reason ? reason : stun_reason(code));
    turn_reply_auth_error(tw, cl, req, cred, code, reason);
}

/* ---------------------------------------------------------------- the allocation */

/* A TCP port of the relay range on one of the relay addresses of family fam, drawn as the UDP
 * relays draw theirs (turn_port_walk). */
static int bind_relay_port(struct turn_worker *tw, int fam, union turn_sa *bound)
{
    struct turn_server *srv = tw->srv;
    struct turn_port_walk pw;
    unsigned addr, port;
    turn_port_walk_init(srv, fam, false, false, &pw);
    while (turn_port_walk_next(&pw, &addr, &port)) {
        union turn_sa sa = srv->relay_bind[fam][addr];
        char err[160];
        bool inuse = false;
        ml_addr_set_port(&sa.sa, (uint16_t)port);
        int fd = net_tcp_bind_exclusive(&sa.sa, &inuse, err, sizeof err);
        if (fd >= 0) {
            *bound = sa;
            return fd;
        }
        if (!inuse)
            return -1;
        TURN_COUNT(tw->ctr.relay_port_busy, 1);
    }
    return -1;
}

/* RFC 6062 5.1, after the checks of RFC 8656 7.2 that Allocate made (authentication, no
 * allocation on this connection, REQUESTED-TRANSPORT). */
void turn_tcp_allocate(struct turn_worker *tw, const struct turn_client *cl,
                       const struct stun_msg *req, const struct turn_cred *cred)
{
    struct turn_server *srv = tw->srv;
    char addr[ML_ADDR_STRLEN], raddr[ML_ADDR_STRLEN];
    if (!tw->set.tcp_relay) {
        refuse(tw, cl, req, cred, 442, "TCP relay is not offered here");
        return;
    }
    if (cl->transport == NET_UDP) {
        refuse(tw, cl, req, cred, 400, "TCP allocations need a TCP or TLS connection (RFC 6062)");
        return;
    }
    if (stun_msg_find(req, STUN_ATTR_DONT_FRAGMENT) || stun_msg_find(req, STUN_ATTR_EVEN_PORT) ||
        stun_msg_find(req, STUN_ATTR_RESERVATION_TOKEN) ||
        stun_msg_find(req, STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY)) {
        refuse(tw, cl, req, cred, 400,
               "Not with a TCP allocation: DONT-FRAGMENT, EVEN-PORT, "
               "RESERVATION-TOKEN, ADDITIONAL-ADDRESS-FAMILY");
        return;
    }
    int fam = 0;
    const struct stun_attr *af = stun_msg_find(req, STUN_ATTR_REQUESTED_ADDRESS_FAMILY);
    if (af) {
        uint8_t f = stun_attr_value(req, af)[0];
        if (f != STUN_FAMILY_IPV4 && f != STUN_FAMILY_IPV6) {
            refuse(tw, cl, req, cred, 440, NULL);
            return;
        }
        fam = f == STUN_FAMILY_IPV6 ? 1 : 0;
    }
    if (!srv->have_relay[fam]) {
        refuse(tw, cl, req, cred, 440, NULL);
        return;
    }
    if (turn_server_draining(srv)) {
        refuse(tw, cl, req, cred, 508, "Server is draining");
        return;
    }
    int q = turn_quota_acquire(srv, cred->id, tw->set.max_per_user, tw->set.max_allocations);
    if (q) {
        ML_LOG_LIMITED(ML_LOG_NOTICE, "turn", "%d for a TCP Allocate from %s (%s): %s", q,
                       ml_addr_str(cl->addr, addr, sizeof addr), cred->id,
                       q == 486 ? "per-user quota reached" : "server capacity reached");
        refuse(tw, cl, req, cred, q, NULL);
        return;
    }
    union turn_sa local;
    int fd = bind_relay_port(tw, fam, &local);
    struct turn_alloc *a = NULL;
    struct turn_tcp_relay *r = NULL;
    if (fd < 0 || !(r = calloc(1, sizeof *r)) || !(a = turn_alloc_new(tw, cl))) {
        if (fd >= 0)
            close(fd);
        free(r);
        turn_quota_release(srv, cred->id);
        ML_LOG_LIMITED(ML_LOG_WARN, "turn", "508 for a TCP Allocate from %s: %s",
                       ml_addr_str(cl->addr, addr, sizeof addr),
                       fd < 0 ? "no free relay port" : "out of memory");
        refuse(tw, cl, req, cred, 508, NULL);
        return;
    }
    ml_strlcpy(a->cred_id, cred->id, sizeof a->cred_id);
    turn_user_hash(cred, a->user_hash);
    a->cred_expiry_s = cred->expiry_s;
    a->tcp = r;
    a->tcp_family = (uint8_t)fam;
    r->local = local;
    turn_relay_public_of(srv, &local.sa, &a->relay_public[fam]);
    char err[160];
    r->listener = net_listener_new(tw->w, fd, on_peer_accept, a, err, sizeof err);
    if (!r->listener) {
        turn_alloc_free(a, "relay socket failed");
        refuse(tw, cl, req, cred, 508, NULL);
        return;
    }
    long long lifetime = turn_desired_lifetime(tw, req);
    if (lifetime == 0)
        lifetime = tw->set.default_lifetime_s;
    a->expires_ms = ml_now_ms() + lifetime * 1000;
    net_stream_set_idle(cl->stream, 0); /* the allocation's lifetime governs now */
    net_stream_established(cl->stream);

    uint8_t out[TURN_REPLY_MAX];
    struct stun_builder b;
    stun_build_reply(&b, out, sizeof out, req, STUN_SUCCESS);
    stun_build_xaddr(&b, STUN_ATTR_XOR_RELAYED_ADDRESS, &a->relay_public[fam].sa);
    stun_build_u32(&b, STUN_ATTR_LIFETIME, (uint32_t)lifetime);
    stun_build_xaddr(&b, STUN_ATTR_XOR_MAPPED_ADDRESS, cl->addr);
    ML_INFO("turn", "allocated tcp relay %s for %s (client %s, %s, lifetime %llds)",
            ml_addr_str(&a->relay_public[fam].sa, raddr, sizeof raddr), a->cred_id,
            ml_addr_str(cl->addr, addr, sizeof addr), net_transport_name(cl->transport), lifetime);
    turn_send_success(tw, cl, req, &b, cred, a);
}

void turn_tcp_release(struct turn_alloc *a)
{
    struct turn_tcp_relay *r = a->tcp;
    if (!r)
        return;
    while (r->conns)
        conn_end(r->conns, "allocation ended");
    net_listener_free(r->listener);
    free(r);
    a->tcp = NULL;
}

void turn_tcp_sweep(struct turn_alloc *a, int64_t now_ms)
{
    for (struct turn_tcp_conn *c = a->tcp->conns, *next; c; c = next) {
        next = c->next;
        if (c->state == TCP_PENDING && c->deadline_ms <= now_ms)
            conn_end(c, "no ConnectionBind within 30 s");
    }
}

/* ---------------------------------------------------------------- Connect, ConnectionBind */

/* RFC 6062 5.2. */
void turn_tcp_handle_connect(struct turn_worker *tw, const struct turn_client *cl,
                             const struct stun_msg *req)
{
    struct turn_cred cred;
    char p[ML_ADDR_STRLEN], err[160];
    struct turn_alloc *a = turn_alloc_for_request(tw, cl, req, &cred);
    if (!a)
        return;
    if (!a->tcp) {
        refuse(tw, cl, req, &cred, 400, "Connect needs a TCP allocation");
        goto out;
    }
    const struct stun_attr *pa = stun_msg_find(req, STUN_ATTR_XOR_PEER_ADDRESS);
    union turn_sa peer;
    if (!pa || turn_get_xaddr(req, pa, &peer) < 0) {
        refuse(tw, cl, req, &cred, 400, "XOR-PEER-ADDRESS missing");
        goto out;
    }
    if (!turn_peer_allowed(tw, cl, req, &cred, a, &peer.sa, true))
        goto out;
    for (struct turn_tcp_conn *c = a->tcp->conns; c; c = c->next) {
        if (ml_addr_equal(&c->peer.sa, &peer.sa)) {
            ML_DEBUG("turn", "Connect to %s: connection %08x exists",
                     ml_addr_str(&peer.sa, p, sizeof p), c->id);
            refuse(tw, cl, req, &cred, 446, NULL);
            goto out;
        }
    }
    if (a->tcp->nconns >= (unsigned)tw->set.tcp_max_conns) {
        refuse(tw, cl, req, &cred, 508, "Too many connections on this allocation");
        goto out;
    }
    struct turn_tcp_conn *c = conn_new(a, &peer.sa, TCP_CONNECTING);
    if (!c) {
        refuse(tw, cl, req, &cred, 508, NULL);
        goto out;
    }
    memcpy(c->tid, req->tid, STUN_TID_LEN);
    c->fp = req->fp >= 0;
    c->sha256 = cred.sha256;
    memcpy(c->key, cred.key, cred.keylen);
    c->keylen = cred.keylen;
    c->peer_conn = net_conn_connect(tw->w, &a->tcp->local.sa, &peer.sa, TCP_CONNECT_TIMEOUT_S,
                                    on_peer_event, c, err, sizeof err);
    if (!c->peer_conn) {
        TURN_COUNT(tw->ctr.tcp_relay_failed, 1);
        ML_LOG_LIMITED(ML_LOG_INFO, "turn", "447 for Connect to %s (%s): %s",
                       ml_addr_str(&peer.sa, p, sizeof p), a->cred_id, err);
        refuse(tw, cl, req, &cred, 447, NULL);
        conn_end(c, "connect failed");
        goto out;
    }
    ML_DEBUG("turn", "tcp connection %08x of %s: connecting to %s", c->id, a->cred_id,
             ml_addr_str(&peer.sa, p, sizeof p));
out:
    ml_wipe(cred.key, sizeof cred.key);
}

/* RFC 6062 5.4. The request comes on a new connection of the client, on whichever worker the
 * kernel chose: it goes to the worker that owns the CONNECTION-ID first. */
void turn_tcp_handle_connection_bind(struct turn_worker *tw, const struct turn_client *cl,
                                     const struct stun_msg *req)
{
    if (cl->transport == NET_UDP) {
        /* unauthenticated and over UDP, so possibly spoofed: a short answer, within the budget */
        turn_reply_unauthenticated_error(tw, cl, req, 400, NULL, NULL, 0);
        return;
    }
    const struct stun_attr *ca = stun_msg_find(req, STUN_ATTR_CONNECTION_ID);
    uint32_t id;
    if (!ca || stun_attr_get_u32(req, ca, &id) < 0) {
        turn_reply_error(tw, cl, req, 400, "CONNECTION-ID missing");
        return;
    }
    bool in_use = cl->conn->alloc || cl->conn->data;
    unsigned owner = id_worker(id);
    if (!in_use && owner != net_worker_id(tw->w) &&
        owner < net_engine_workers(net_worker_engine(tw->w)) &&
        net_stream_handover(cl->stream, owner, req->buf, req->len) == 0)
        return; /* answered there */
    /* The client signs with the nonce it holds, which the server issued to its control
     * connection: nonces are bound to the client's address and port, and this connection has
     * another port. So when the CONNECTION-ID is known and the IP is the control connection's,
     * the nonce is checked (and a fresh one issued) for that connection's address: one that
     * the client may go on using on every connection of its allocation. */
    struct turn_tcp_conn *c = id_find(tw, id);
    struct turn_client acl = *cl;
    if (c && ml_addr_ip_equal(&c->a->client.sa, cl->addr))
        acl.addr = &c->a->client.sa;
    struct turn_cred cred;
    if (!turn_authenticate(tw, &acl, req, turn_auth_strict_expiry(tw->srv->auth), &cred))
        return;
    if (in_use) {
        refuse(tw, cl, req, &cred, 400, "This connection is in use already");
    } else if (!c || c->state != TCP_PENDING) {
        refuse(tw, cl, req, &cred, 400, "No connection waits with this CONNECTION-ID");
    } else if (!turn_same_user(c->a, &cred)) {
        refuse(tw, cl, req, &cred, 441, NULL);
    } else {
        uint8_t out[TURN_REPLY_MAX];
        struct stun_builder b;
        stun_build_reply(&b, out, sizeof out, req, STUN_SUCCESS);
        turn_finish_and_send(tw, cl, req, &b, &cred);
        c->state = TCP_BOUND;
        c->client = cl->conn;
        cl->conn->data = c;
        net_stream_set_idle(cl->stream, 0); /* the allocation's lifetime governs it */
        if (net_conn_pipe(c->peer_conn, cl->stream, (size_t)tw->set.tcp_buffer) < 0)
            conn_end(c, "cannot pipe");
    }
    ml_wipe(cred.key, sizeof cred.key);
}

void turn_tcp_data_closed(struct turn_worker *tw, struct turn_stream_conn *sc)
{
    struct turn_tcp_conn *c = sc->data;
    ML_UNUSED(tw);
    sc->data = NULL;
    c->client = NULL;
    conn_end(c, "closed by the client");
}
