/* Message dispatch for STUN/TURN on the network workers, and the Binding service (RFC 8489):
 * XOR-MAPPED-ADDRESS (MAPPED-ADDRESS for RFC 3489 clients), 420 for unknown
 * comprehension-required attributes, FINGERPRINT echoed, SOFTWARE only when configured. */
#include "config.h"

#include "turn/turn-int.h"

#include <stdlib.h>
#include <string.h>

struct turn_server *turn_server_new(const struct turn_config *cfg, char *err, size_t errlen)
{
    struct turn_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        ml_err(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&srv->lock, NULL);
    turn_server_reload(srv, cfg);
    return srv;
}

void turn_server_free(struct turn_server *srv)
{
    if (!srv)
        return;
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}

void turn_server_reload(struct turn_server *srv, const struct turn_config *cfg)
{
    pthread_mutex_lock(&srv->lock);
    ml_strlcpy(srv->software, cfg->software ? cfg->software : "", sizeof srv->software);
    srv->fingerprint_always = cfg->fingerprint_always;
    __atomic_add_fetch(&srv->generation, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&srv->lock);
}

/* Workers keep private copies of reloadable values and refresh them when the generation
 * changes: one relaxed load per message instead of a lock. */
static void refresh(struct turn_worker *tw)
{
    unsigned gen = __atomic_load_n(&tw->srv->generation, __ATOMIC_ACQUIRE);
    if (gen == tw->generation)
        return;
    pthread_mutex_lock(&tw->srv->lock);
    memcpy(tw->software, tw->srv->software, sizeof tw->software);
    tw->fingerprint_always = tw->srv->fingerprint_always;
    tw->generation = tw->srv->generation;
    pthread_mutex_unlock(&tw->srv->lock);
}

void turn_send(struct turn_worker *tw, const struct turn_client *cl, const void *buf, size_t len)
{
    ML_UNUSED(tw);
    if (cl->transport == NET_UDP)
        (void)net_udp_send(cl->udp, cl->addr, buf, len);
    else
        (void)net_stream_send(cl->stream, buf, len);
}

static unsigned error_slot(int code)
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

/* Ends a response: SOFTWARE when configured, FINGERPRINT when the request had one. */
static void finish_and_send(struct turn_worker *tw, const struct turn_client *cl,
                            const struct stun_msg *req, struct stun_builder *b)
{
    if (tw->software[0] && !req->rfc3489)
        stun_build_attr(b, STUN_ATTR_SOFTWARE, tw->software, strlen(tw->software));
    if (!req->rfc3489 && (req->fp >= 0 || tw->fingerprint_always))
        stun_build_fingerprint(b);
    size_t len = stun_build_finish(b);
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
    TURN_COUNT(tw->ctr.error_responses[error_slot(code)], 1);
    finish_and_send(tw, cl, req, &b);
}

static void reply_unknown(struct turn_worker *tw, const struct turn_client *cl,
                          const struct stun_msg *req, const uint16_t *types, size_t n)
{
    uint8_t out[TURN_REPLY_MAX];
    struct stun_builder b;
    stun_build_reply(&b, out, sizeof out, req, STUN_ERROR);
    stun_build_error(&b, 420, NULL);
    stun_build_unknown(&b, types, n);
    TURN_COUNT(tw->ctr.error_responses[error_slot(420)], 1);
    finish_and_send(tw, cl, req, &b);
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
    finish_and_send(tw, cl, req, &b);
}

static void handle_request(struct turn_worker *tw, const struct turn_client *cl,
                           const struct stun_msg *req)
{
    uint16_t unknown[16];
    TURN_COUNT(tw->ctr.stun_requests, 1);
    size_t nu = stun_msg_unknown_required(req, unknown, ML_ARRAY_LEN(unknown));
    if (nu) {
        reply_unknown(tw, cl, req, unknown, nu);
        return;
    }
    switch (req->method) {
    case STUN_BINDING:
        handle_binding(tw, cl, req);
        return;
    default:
        if (req->rfc3489)
            return; /* RFC 3489 clients get Binding only */
        turn_reply_error(tw, cl, req, 400, "Unsupported method");
        return;
    }
}

/* One datagram or stream frame from a client. */
static void handle_message(struct turn_worker *tw, const struct turn_client *cl, uint8_t *data,
                           size_t len)
{
    struct stun_msg m;
    enum stun_parse_err perr;
    refresh(tw);
    if (stun_is_channeldata(data, len)) {
        /* ChannelData before any allocation exists: there is no channel to deliver to. */
        TURN_COUNT(tw->ctr.malformed, 1);
        return;
    }
    if (stun_msg_parse(&m, data, len, &perr) < 0) {
        char a[ML_ADDR_STRLEN];
        TURN_COUNT(tw->ctr.malformed, 1);
        ML_DEBUG("turn", "dropping %zu bytes from %s: %s", len,
                 ml_addr_str(cl->addr, a, sizeof a), stun_parse_err_str(perr));
        return;
    }
    switch (m.cls) {
    case STUN_REQUEST:
        handle_request(tw, cl, &m);
        break;
    case STUN_INDICATION:
        TURN_COUNT(tw->ctr.indications, 1);
        break;
    default:
        break; /* responses are not ours to answer */
    }
}

/* ---------------------------------------------------------------- net handler */

static void *worker_start(struct net_worker *w, void *ctx)
{
    struct turn_worker *tw = ml_xcalloc(1, sizeof *tw);
    tw->srv = ctx;
    tw->w = w;
    tw->generation = 0;
    refresh(tw);
    return tw;
}

static void worker_stop(struct net_worker *w, void *state)
{
    ML_UNUSED(w);
    free(state);
}

static void udp_recv(struct net_udp *u, void *arg, struct net_pkt *pkts, unsigned n)
{
    struct turn_worker *tw = arg;
    struct turn_client cl = {.transport = NET_UDP, .udp = u, .local = net_udp_local(u)};
    for (unsigned i = 0; i < n; i++) {
        cl.addr = (const struct sockaddr *)&pkts[i].from;
        handle_message(tw, &cl, pkts[i].data, pkts[i].len);
    }
}

/* Per-connection state of a TCP/TLS client. */
struct turn_stream_conn {
    struct net_stream *s;
};

static void *stream_open(void *state, struct net_stream *s)
{
    ML_UNUSED(state);
    struct turn_stream_conn *c = calloc(1, sizeof *c);
    if (c)
        c->s = s;
    return c;
}

static void stream_frame(void *state, struct net_stream *s, void *conn, uint8_t *data,
                         size_t len)
{
    ML_UNUSED(conn);
    struct turn_client cl = {.transport = net_stream_transport(s),
                             .stream = s,
                             .addr = net_stream_peer(s),
                             .local = net_stream_local(s)};
    handle_message(state, &cl, data, len);
}

static void stream_close(void *state, struct net_stream *s, void *conn)
{
    ML_UNUSED(state);
    ML_UNUSED(s);
    free(conn);
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
