/* mlload TURN modes: a REST-authenticated client state machine for relay, alloc, idle, over
 * UDP, TCP or TLS, relaying to each other (pairs) or to reflecting UDP peers of our own. */
#include "config.h"

#include "tests/bench/mlload.h"

#include "common/common.h"
#include "stun/stun.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REQ_MAX 640          /* bytes: the largest request (Allocate with credentials) */
#define MAX_TRIES 5          /* transmissions of one request: rto, 2 rto, ... 16 rto */
#define MAX_STALE 3          /* 438 Stale Nonce retries of one request */
#define FREE_CONCURRENCY 256 /* Refresh 0 in flight per thread at the end */
#define RX_WINDOW 4096       /* relayed packets: duplicate detection window (sequence numbers) */
#define SCAN_US 10000        /* timer scan period */
/* Stream buffers (bytes). Relay: room for a few ms of traffic per connection, so a blocked
 * connection shows as blocked packets, not as a generator that stalls; other modes: requests. */
#define RELAY_IBUF (64u << 10)
#define RELAY_OBUF (128u << 10)
#define SMALL_IBUF 4096u
#define SMALL_OBUF 4096u

enum tc_state {
    TC_UNUSED = 0, /* not started */
    TC_CONNECT,    /* TCP/TLS: connecting and handshaking */
    TC_ALLOC1,     /* Allocate without credentials sent: a 401 is expected */
    TC_ALLOC2,     /* Allocate with credentials sent */
    TC_WAIT_PEER,  /* turn-relay: allocated, waiting for the partner's relayed address */
    TC_PERM,       /* CreatePermission sent */
    TC_BIND,       /* ChannelBind sent */
    TC_READY,
    TC_KA_REFRESH, /* keepalive: Refresh, then CreatePermission, then ChannelBind */
    TC_KA_PERM,
    TC_KA_BIND,
    TC_FREE, /* Refresh with LIFETIME 0 sent */
    TC_DONE,
    TC_FAILED,
};

/* One TURN client: a socket, an allocation, one outstanding request at a time. */
struct tc {
    int fd;  /* the UDP socket, or the stream's fd (c->s.fd): -1 once closed */
    int pfd; /* external peers: this client's reflecting UDP peer, -1 if none */
    struct ld_stream s;
    struct tc *src; /* turn-relay: whose packets this client receives (partner, or itself) */
    bool again;     /* TLS: decrypted input left inside OpenSSL, read again without an event */
    uint32_t gidx;  /* global client index: in transaction ids, usernames and payloads */
    uint8_t state;
    bool allocated; /* the server holds an allocation for this 5-tuple */
    bool in_setup;  /* counted in the setup concurrency */
    uint8_t tries;
    uint8_t stale_tries;
    uint16_t reqlen;
    uint16_t channel;
    uint16_t ulen, rlen, nlen;
    uint32_t rto_ms;
    uint32_t drops, pdrops;
    uint32_t tx_count; /* transaction counter */
    int64_t rto_due_us;
    int64_t seq_start_us;
    int64_t ka_due_us; /* 0: no keepalive planned */
    struct tc *partner;
    struct sockaddr_storage local, relay, peer;
    uint8_t tid[STUN_TID_LEN];
    uint8_t key[STUN_MD5_LEN];
    char user[48];
    char realm[128];
    char nonce[256];
    uint8_t req[REQ_MAX];
    /* turn-relay traffic */
    uint64_t tx, rx, late;
    uint32_t tx_seq;
    uint32_t rx_base; /* lowest sequence number in the duplicate window */
    uint64_t rx_bits[RX_WINDOW / 64];
};

struct tctx {
    struct ld_thread *t;
    const struct ld_opts *o;
    struct tc *c;
    unsigned n;
    unsigned next_start;
    unsigned setup_inflight, setup_cap;
    unsigned next_free, free_inflight;
    bool stream;   /* TCP or TLS to the server */
    bool starting; /* new sequences may start */
    bool tearing;  /* freeing: keepalives stop */
    uint8_t cookie[4];
    int64_t ka_interval_us;
    int64_t next_scan_us;
    /* traffic */
    unsigned *again; /* indexes of clients with c->again set */
    unsigned nagain;
    struct tc **act; /* clients whose pair is ready */
    unsigned nact, cursor;
    struct mmsghdr tx_msg[LD_BATCH];
    struct iovec tx_iov[LD_BATCH];
    uint8_t tx_buf[LD_BATCH][LD_SIZE_MAX + 128];
    uint8_t ind_data[LD_SIZE_MAX]; /* Send indication payload: zeros after the first 16 bytes */
};

static bool is_relay(const struct tctx *x)
{
    return x->o->mode == LD_TURN_RELAY;
}

static bool waiting_answer(const struct tc *c)
{
    switch (c->state) {
    case TC_CONNECT:
    case TC_ALLOC1:
    case TC_ALLOC2:
    case TC_PERM:
    case TC_BIND:
    case TC_KA_REFRESH:
    case TC_KA_PERM:
    case TC_KA_BIND:
    case TC_FREE:
        return true;
    default:
        return false;
    }
}

/* ------------------------------------------------------------ credentials */

/* TURN REST (draft-uberti-behave-turn-rest): username "<expiry>:<id>", password
 * base64(HMAC-SHA1(secret, username)). The key needs the realm and is made on the 401. */
static void make_user(struct tctx *x, struct tc *c)
{
    long long expiry = (long long)ml_wall_s() + 86400;
    size_t n = ml_snprintf(c->user, sizeof c->user, "%lld:mlload%u", expiry, c->gidx);
    c->ulen = (uint16_t)n;
    (void)x;
}

static int make_key(struct tctx *x, struct tc *c)
{
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    const char *secret = x->o->secret;
    if (!HMAC(EVP_sha1(), secret, (int)strlen(secret), (const uint8_t *)c->user, c->ulen, mac,
              &maclen))
        return -1;
    char pass[64];
    size_t plen = ml_base64_encode(mac, maclen, pass, sizeof pass);
    int rc = stun_key_md5(c->user, c->ulen, c->realm, c->rlen, pass, plen, c->key);
    ml_wipe(pass, sizeof pass);
    ml_wipe(mac, sizeof mac);
    return rc;
}

/* Copies a text attribute (REALM, NONCE) into dst; 0, or -1 when absent or too long. */
static int copy_text(const struct stun_msg *m, uint16_t type, char *dst, size_t cap, uint16_t *len)
{
    const struct stun_attr *a = stun_msg_find(m, type);
    if (!a || a->len >= cap)
        return -1;
    memcpy(dst, stun_attr_value(m, a), a->len);
    dst[a->len] = 0;
    *len = a->len;
    return 0;
}

/* ------------------------------------------------------------ requests */

/* EPOLLOUT only while the connection needs it (connecting, output queued). */
static void stream_interest(struct tctx *x, struct tc *c)
{
    if (!x->stream || c->fd < 0)
        return;
    bool want = ld_stream_wants_out(&c->s);
    if (want != c->s.want_out && ld_epoll_mod(x->t->ep, c->fd, (uint32_t)(c - x->c), want) == 0)
        c->s.want_out = want;
}

/* Over a stream the request is written once: the transport is reliable (RFC 8489 section
 * 6.2.2), and the timer only bounds the wait for the answer. A write error is left to the
 * event loop, which sees the connection fail: nothing is closed here. */
static void send_req(struct tctx *x, struct tc *c, int64_t now)
{
    if (!x->stream) {
        if (send(c->fd, c->req, c->reqlen, MSG_DONTWAIT) < 0)
            x->t->st.send_err++; /* the retransmission timer tries again */
    } else if (c->tries == 1 && c->state != TC_CONNECT && c->fd >= 0) {
        uint8_t *p = ld_stream_reserve(&c->s, c->reqlen);
        if (p) {
            memcpy(p, c->req, c->reqlen);
            ld_stream_commit(&c->s, c->reqlen);
        }
        if (!p || ld_stream_flush(&c->s) < 0)
            x->t->st.send_err++;
        stream_interest(x, c);
    }
    c->rto_due_us = now + (int64_t)c->rto_ms * 1000;
}

/* Builds the request that state s sends, with a fresh transaction id, and sends it. */
static void start_req(struct tctx *x, struct tc *c, uint8_t s, int64_t now)
{
    const struct ld_opts *o = x->o;
    uint16_t method;
    switch (s) {
    case TC_ALLOC1:
    case TC_ALLOC2:
        method = TURN_ALLOCATE;
        break;
    case TC_PERM:
    case TC_KA_PERM:
        method = TURN_CREATE_PERMISSION;
        break;
    case TC_BIND:
    case TC_KA_BIND:
        method = TURN_CHANNEL_BIND;
        break;
    default:
        method = TURN_REFRESH;
        break;
    }
    if (c->state != s)
        c->stale_tries = 0;
    c->state = s;
    memcpy(c->tid, x->cookie, 4);
    stun_put32(c->tid + 4, c->gidx);
    stun_put32(c->tid + 8, ++c->tx_count);
    struct stun_builder b;
    stun_build_init(&b, c->req, sizeof c->req, method, STUN_REQUEST, c->tid);
    switch (s) {
    case TC_ALLOC1:
    case TC_ALLOC2:
        stun_build_u32(&b, STUN_ATTR_REQUESTED_TRANSPORT, 17u << 24); /* UDP */
        stun_build_u32(&b, STUN_ATTR_LIFETIME, o->lifetime_s);
        break;
    case TC_PERM:
    case TC_KA_PERM:
        stun_build_xaddr(&b, STUN_ATTR_XOR_PEER_ADDRESS, (const struct sockaddr *)&c->peer);
        break;
    case TC_BIND:
    case TC_KA_BIND:
        stun_build_u32(&b, STUN_ATTR_CHANNEL_NUMBER, (uint32_t)c->channel << 16);
        stun_build_xaddr(&b, STUN_ATTR_XOR_PEER_ADDRESS, (const struct sockaddr *)&c->peer);
        break;
    case TC_KA_REFRESH:
        stun_build_u32(&b, STUN_ATTR_LIFETIME, o->lifetime_s);
        break;
    default: /* TC_FREE */
        stun_build_u32(&b, STUN_ATTR_LIFETIME, 0);
        break;
    }
    /* Credentials on everything but the first Allocate, once the realm is known (a server
     * without authentication never sends one). */
    if (s != TC_ALLOC1 && c->rlen) {
        stun_build_attr(&b, STUN_ATTR_USERNAME, c->user, c->ulen);
        stun_build_attr(&b, STUN_ATTR_REALM, c->realm, c->rlen);
        stun_build_attr(&b, STUN_ATTR_NONCE, c->nonce, c->nlen);
        stun_build_integrity(&b, c->key, sizeof c->key);
    }
    if (o->fingerprint)
        stun_build_fingerprint(&b);
    c->reqlen = (uint16_t)stun_build_finish(&b); /* REQ_MAX holds the largest; 0 would fail */
    c->tries = 1;
    c->rto_ms = o->rto_ms;
    send_req(x, c, now);
}

static void close_client(struct tc *c)
{
    if (c->s.fd >= 0) {
        ld_stream_close(&c->s); /* closes c->fd */
        c->fd = -1;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    if (c->pfd >= 0) {
        close(c->pfd);
        c->pfd = -1;
    }
}

static void setup_done(struct tctx *x, struct tc *c)
{
    if (c->in_setup) {
        c->in_setup = false;
        x->setup_inflight--;
    }
}

static void fail(struct tctx *x, struct tc *c, int64_t now)
{
    struct ld_stats *st = &x->t->st;
    uint8_t was = c->state;
    c->state = TC_FAILED;
    if (c->in_setup) {
        st->setup_failed++;
        setup_done(x, c);
    } else if (was == TC_KA_REFRESH || was == TC_KA_PERM || was == TC_KA_BIND) {
        st->refresh_failed++;
    } else if (was == TC_FREE) {
        /* still allocated: run_teardown counts it in free_failed */
        x->free_inflight--;
        c->state = TC_DONE;
        close_client(c);
        return;
    }
    if (!c->allocated)
        close_client(c);
    /* a partner waiting for this one's relayed address will never get it */
    if (c->partner && c->partner->state == TC_WAIT_PEER)
        fail(x, c->partner, now);
}

static void ready(struct tctx *x, struct tc *c, int64_t now)
{
    struct ld_stats *st = &x->t->st;
    if (c->in_setup) {
        st->setup_ok++;
        setup_done(x, c);
        if (x->o->mode == LD_TURN_ALLOC) {
            ld_hist_add(&st->lat, (uint64_t)(now - c->seq_start_us));
            st->last_done_us = now;
        }
        if (x->o->mode == LD_TURN_IDLE)
            __atomic_add_fetch(&x->t->run->allocs_ready, 1, __ATOMIC_RELAXED);
    } else {
        st->refreshed++;
    }
    c->state = TC_READY;
    c->ka_due_us = now + x->ka_interval_us;
}

/* After Allocate succeeded: permission next (relay mode: once the partner's address is
 * known). */
static void allocated(struct tctx *x, struct tc *c, int64_t now)
{
    if (!is_relay(x)) {
        /* any permitted address will do: the client's own */
        c->peer = c->local;
        start_req(x, c, TC_PERM, now);
        return;
    }
    if (x->o->peer_external) {
        /* c->peer is the peer socket's address; it now talks to the relayed address only */
        if (connect(c->pfd, (const struct sockaddr *)&c->relay,
                    ml_addr_len((const struct sockaddr *)&c->relay)) < 0) {
            x->t->st.errors++;
            fail(x, c, now);
            return;
        }
        start_req(x, c, TC_PERM, now);
        return;
    }
    c->state = TC_WAIT_PEER;
    struct tc *p = c->partner;
    if (p->state == TC_FAILED || p->state == TC_DONE) {
        fail(x, c, now);
    } else if (p->state == TC_WAIT_PEER) {
        c->peer = p->relay;
        p->peer = c->relay;
        start_req(x, c, TC_PERM, now);
        start_req(x, p, TC_PERM, now);
    }
}

static void on_response(struct tctx *x, struct tc *c, const struct stun_msg *m, int64_t now)
{
    struct ld_stats *st = &x->t->st;
    if (!waiting_answer(c) || memcmp(m->tid, c->tid, STUN_TID_LEN) != 0) {
        st->dup++; /* the answer to a retransmission, or to a request given up on */
        return;
    }
    if (m->cls == STUN_ERROR) {
        const struct stun_attr *a = stun_msg_find(m, STUN_ATTR_ERROR_CODE);
        int code = 0;
        if (!a || stun_attr_get_error(m, a, &code, NULL, NULL) < 0 || code < 300 || code > 699) {
            st->errors++;
            fail(x, c, now);
            return;
        }
        st->err_codes[code]++;
        if (code == 401 && c->state == TC_ALLOC1) {
            if (copy_text(m, STUN_ATTR_REALM, c->realm, sizeof c->realm, &c->rlen) < 0 ||
                copy_text(m, STUN_ATTR_NONCE, c->nonce, sizeof c->nonce, &c->nlen) < 0 ||
                make_key(x, c) < 0) {
                st->errors++;
                fail(x, c, now);
                return;
            }
            start_req(x, c, TC_ALLOC2, now);
            return;
        }
        if (code == 438 && c->state != TC_ALLOC1 && c->stale_tries < MAX_STALE) {
            uint16_t rlen = c->rlen;
            char realm[sizeof c->realm];
            memcpy(realm, c->realm, sizeof realm);
            if (copy_text(m, STUN_ATTR_NONCE, c->nonce, sizeof c->nonce, &c->nlen) < 0) {
                st->errors++;
                fail(x, c, now);
                return;
            }
            if (copy_text(m, STUN_ATTR_REALM, c->realm, sizeof c->realm, &c->rlen) == 0 &&
                (rlen != c->rlen || memcmp(realm, c->realm, rlen) != 0) && make_key(x, c) < 0) {
                st->errors++;
                fail(x, c, now);
                return;
            }
            st->stale_nonce++;
            c->stale_tries++;
            start_req(x, c, c->state, now); /* same state: stale_tries carries over */
            return;
        }
        if (code == 437 && c->state == TC_FREE) {
            /* already gone (expired, or the first Refresh 0 was answered and lost) */
            c->allocated = false;
            st->freed++;
            x->free_inflight--;
            c->state = TC_DONE;
            close_client(c);
            return;
        }
        fail(x, c, now);
        return;
    }
    if (m->cls != STUN_SUCCESS) {
        st->invalid++;
        return;
    }
    /* An answer to an authenticated request must carry a MAC made with our key. */
    if (c->state != TC_ALLOC1 && c->rlen &&
        stun_msg_check_integrity(m, c->key, sizeof c->key) == 0) {
        st->errors++;
        fail(x, c, now);
        return;
    }
    switch (c->state) {
    case TC_ALLOC1:
    case TC_ALLOC2: {
        const struct stun_attr *a = stun_msg_find(m, STUN_ATTR_XOR_RELAYED_ADDRESS);
        socklen_t sl;
        if (!a || stun_attr_get_xaddr(m, a, &c->relay, &sl) < 0) {
            st->errors++;
            fail(x, c, now);
            return;
        }
        c->allocated = true;
        allocated(x, c, now);
        return;
    }
    case TC_PERM:
        if (is_relay(x) && x->o->send_ind)
            ready(x, c, now);
        else
            start_req(x, c, TC_BIND, now);
        return;
    case TC_BIND:
    case TC_KA_BIND:
        ready(x, c, now);
        return;
    case TC_KA_REFRESH:
        start_req(x, c, TC_KA_PERM, now);
        return;
    case TC_KA_PERM:
        if (is_relay(x) && x->o->send_ind)
            ready(x, c, now);
        else
            start_req(x, c, TC_KA_BIND, now);
        return;
    case TC_FREE:
        c->allocated = false;
        st->freed++;
        x->free_inflight--;
        c->state = TC_DONE;
        close_client(c);
        return;
    default:
        return;
    }
}

/* ------------------------------------------------------------ relayed traffic */

static void on_payload(struct tctx *x, struct tc *c, const uint8_t *p, size_t len, int64_t now)
{
    struct ld_stats *st = &x->t->st;
    if (len != x->o->size) {
        st->invalid++;
        return;
    }
    if (!c->src || stun_get32(p) != c->src->gidx) {
        st->misrouted++;
        st->errors++;
        return;
    }
    uint32_t seq = stun_get32(p + 4);
    if (seq >= c->rx_base + RX_WINDOW) {
        uint32_t nb = seq - RX_WINDOW + 1;
        if (nb - c->rx_base >= RX_WINDOW)
            memset(c->rx_bits, 0, sizeof c->rx_bits);
        else
            for (uint32_t s = c->rx_base; s != nb; s++)
                c->rx_bits[(s % RX_WINDOW) / 64] &= ~(1ull << (s % 64));
        c->rx_base = nb;
    }
    if (seq >= c->rx_base) {
        uint64_t bit = 1ull << (seq % 64);
        uint64_t *w = &c->rx_bits[(seq % RX_WINDOW) / 64];
        if (*w & bit) {
            st->dup++;
            return;
        }
        *w |= bit;
    }
    uint64_t sent_us = ((uint64_t)stun_get32(p + 8) << 32) | stun_get32(p + 12);
    uint64_t lat = (uint64_t)now >= sent_us ? (uint64_t)now - sent_us : 0;
    c->rx++;
    if (x->o->late_ms && lat > (uint64_t)x->o->late_ms * 1000) {
        /* too late for a real-time call: lost (streams queue instead of dropping) */
        c->late++;
        st->late++;
        return;
    }
    st->received++;
    ld_hist_add(&st->lat, lat);
}

static void on_datagram(struct tctx *x, struct tc *c, const uint8_t *buf, size_t len, int64_t now)
{
    struct ld_stats *st = &x->t->st;
    if (stun_is_channeldata(buf, len)) {
        uint16_t ch;
        const uint8_t *data;
        size_t dlen;
        if (stun_channeldata_parse(buf, len, &ch, &data, &dlen) < 0 || ch != c->channel) {
            st->invalid++;
            return;
        }
        on_payload(x, c, data, dlen, now);
        return;
    }
    struct stun_msg m;
    if (stun_msg_parse(&m, buf, len, NULL) < 0) {
        st->invalid++;
        return;
    }
    if (m.cls == STUN_INDICATION && m.method == TURN_DATA) {
        const struct stun_attr *a = stun_msg_find(&m, STUN_ATTR_DATA);
        if (!a) {
            st->invalid++;
            return;
        }
        on_payload(x, c, stun_attr_value(&m, a), a->len, now);
        return;
    }
    if (m.cls == STUN_SUCCESS || m.cls == STUN_ERROR) {
        on_response(x, c, &m, now);
        return;
    }
    st->invalid++;
}

/* Writes relayed packet seq of client c into buf (cap bytes; ChannelData padded to 4 bytes
 * when pad, RFC 8656 section 12.5): the payload's first 16 bytes identify it, the rest are zeros
 * (zero_rest: written here; otherwise the caller keeps them zero). Returns its length. */
static size_t build_packet(struct tctx *x, struct tc *c, uint8_t *buf, size_t cap, uint32_t seq,
                           int64_t now, bool pad, bool zero_rest)
{
    const struct ld_opts *o = x->o;
    uint8_t pl[16];
    stun_put32(pl, c->gidx);
    stun_put32(pl + 4, seq);
    stun_put32(pl + 8, (uint32_t)((uint64_t)now >> 32));
    stun_put32(pl + 12, (uint32_t)now);
    if (o->send_ind) {
        memcpy(x->ind_data, pl, sizeof pl); /* the rest stays zero */
        uint8_t tid[STUN_TID_LEN];
        memcpy(tid, x->cookie, 4);
        stun_put32(tid + 4, c->gidx);
        stun_put32(tid + 8, seq);
        struct stun_builder b;
        stun_build_init(&b, buf, cap, TURN_SEND, STUN_INDICATION, tid);
        stun_build_xaddr(&b, STUN_ATTR_XOR_PEER_ADDRESS, (const struct sockaddr *)&c->peer);
        stun_build_attr(&b, STUN_ATTR_DATA, x->ind_data, o->size);
        return stun_build_finish(&b);
    }
    size_t len = STUN_CHANNELDATA_HEADER_LEN + o->size;
    size_t flen = pad ? (len + 3) & ~(size_t)3 : len;
    stun_channeldata_header(buf, c->channel, o->size);
    memcpy(buf + STUN_CHANNELDATA_HEADER_LEN, pl, sizeof pl);
    if (zero_rest)
        memset(buf + STUN_CHANNELDATA_HEADER_LEN + sizeof pl, 0,
               flen - STUN_CHANNELDATA_HEADER_LEN - sizeof pl);
    return flen;
}

/* Stream: queues k packets on c's connection and writes what the socket takes. What does not
 * fit in the output buffer is dropped and counted as blocked (and skipped): a connection the
 * server does not drain never holds the generator up. Returns k (the schedule moves on). */
static unsigned send_data_stream(struct tctx *x, struct tc *c, unsigned k, int64_t now)
{
    struct ld_stats *st = &x->t->st;
    if (c->fd < 0 || c->s.phase != LD_SP_OPEN)
        return 0;
    size_t max =
        x->o->send_ind ? sizeof x->tx_buf[0] : (STUN_CHANNELDATA_HEADER_LEN + x->o->size + 3);
    unsigned i;
    for (i = 0; i < k; i++) {
        uint8_t *p = ld_stream_reserve(&c->s, max);
        if (!p)
            break;
        size_t len;
        if (x->o->send_ind) {
            len = build_packet(x, c, x->tx_buf[0], sizeof x->tx_buf[0], c->tx_seq + i, now, true,
                               false);
            memcpy(p, x->tx_buf[0], len);
        } else {
            len = build_packet(x, c, p, max, c->tx_seq + i, now, true, true);
        }
        ld_stream_commit(&c->s, len);
    }
    if (ld_stream_flush(&c->s) < 0)
        st->send_err++; /* the event loop sees the connection fail */
    stream_interest(x, c);
    if (i < k) {
        st->blocked += k - i;
        st->skipped += k - i;
    }
    c->tx_seq += i;
    c->tx += i;
    st->sent += i;
    return k;
}

/* Sends k relayed packets from client c; returns how many left. */
static unsigned send_data(struct tctx *x, struct tc *c, unsigned k, int64_t now)
{
    struct ld_stats *st = &x->t->st;
    if (k > LD_BATCH)
        k = LD_BATCH;
    if (x->stream)
        return send_data_stream(x, c, k, now);
    if (c->fd < 0)
        return 0;
    for (unsigned i = 0; i < k; i++) {
        uint8_t *buf = x->tx_buf[i];
        size_t len = build_packet(x, c, buf, sizeof x->tx_buf[i], c->tx_seq + i, now, false, false);
        x->tx_iov[i].iov_base = buf;
        x->tx_iov[i].iov_len = len;
        x->tx_msg[i].msg_hdr = (struct msghdr){.msg_iov = &x->tx_iov[i], .msg_iovlen = 1};
    }
    int n = sendmmsg(c->fd, x->tx_msg, k, MSG_DONTWAIT);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
            st->send_eagain++;
        else
            st->send_err++;
        return 0;
    }
    if ((unsigned)n < k)
        st->send_eagain++;
    c->tx_seq += (uint32_t)n;
    c->tx += (uint64_t)n;
    st->sent += (uint64_t)n;
    return (unsigned)n;
}

static void send_due(struct tctx *x, uint64_t *sched, int64_t t0, int64_t now)
{
    struct ld_thread *t = x->t;
    if (!x->nact)
        return;
    uint64_t target = (uint64_t)(t->rate * (double)(now - t0) / 1e6);
    if (t->count && target > t->count)
        target = t->count;
    if (target <= *sched)
        return;
    uint64_t due = target - *sched;
    uint64_t lag_max = (uint64_t)(t->rate / 1000);
    if (lag_max < 4ull * x->o->burst)
        lag_max = 4ull * x->o->burst;
    if (due > lag_max) {
        t->st.skipped += due - lag_max;
        *sched += due - lag_max;
        due = lag_max;
    }
    unsigned per = (unsigned)((due + x->nact - 1) / x->nact);
    if (per > LD_BATCH)
        per = LD_BATCH;
    unsigned fails = 0;
    while (due && fails < x->nact) {
        struct tc *c = x->act[x->cursor];
        x->cursor = (x->cursor + 1) % x->nact;
        unsigned k = per < due ? per : (unsigned)due;
        unsigned sent = send_data(x, c, k, now);
        if (sent < k)
            fails++;
        due -= sent;
        *sched += sent;
    }
}

/* ------------------------------------------------------------ event loop */

/* The server client c allocates on: --server, or --server2 for the second client of every pair
 * (odd global index), whose packets then cross both servers. */
static const struct sockaddr_storage *client_server(const struct tctx *x, const struct tc *c)
{
    const struct ld_opts *o = x->o;
    return o->server2_len && is_relay(x) && (c->gidx & 1u) ? &o->server2 : &o->server;
}

static int start_client(struct tctx *x, struct tc *c, unsigned key, int64_t now)
{
    const struct ld_opts *o = x->o;
    const struct sockaddr_storage *srv = client_server(x, c);
    if (x->stream) {
        bool relay = is_relay(x);
        if (ld_stream_open(o, srv, &c->s, relay ? RELAY_IBUF : SMALL_IBUF,
                           relay ? RELAY_OBUF : SMALL_OBUF, &c->local) < 0)
            return -1;
        c->fd = c->s.fd;
    } else {
        c->fd = ld_udp_socket_from(o, c->gidx, srv, &c->local);
        if (c->fd < 0)
            return -1;
    }
    if (ld_epoll_add(x->t->ep, c->fd, key) < 0) {
        close_client(c);
        return -1;
    }
    if (o->peer_external) {
        c->pfd = ld_udp_bound_socket(o, c->gidx, &c->peer);
        if (c->pfd < 0 || ld_epoll_add(x->t->ep, c->pfd, key | LD_KEY_PEER) < 0) {
            close_client(c);
            return -1;
        }
    }
    make_user(x, c);
    c->in_setup = true;
    x->setup_inflight++;
    c->seq_start_us = now;
    if (x->stream) {
        /* the Allocate goes out once the connection (and TLS) is up */
        c->state = TC_CONNECT;
        c->tries = 1;
        c->rto_ms = o->rto_ms;
        c->rto_due_us = now + (int64_t)c->rto_ms * 1000;
        stream_interest(x, c);
        return 0;
    }
    start_req(x, c, TC_ALLOC1, now);
    return 0;
}

/* The server closed or reset the connection, or it failed: the server frees the allocation
 * with it (RFC 8656 section 3.1), so nothing is left to free. */
static void stream_failed(struct tctx *x, struct tc *c, int64_t now)
{
    x->t->st.conn_failed++;
    c->allocated = false;
    if (c->state == TC_FREE) {
        x->free_inflight--;
        c->state = TC_DONE;
        close_client(c);
        return;
    }
    if (waiting_answer(c)) {
        fail(x, c, now); /* closes it: not allocated */
        return;
    }
    if (c->state != TC_DONE)
        c->state = TC_FAILED;
    close_client(c);
}

/* Starts sequences up to the concurrency cap (pairs together in turn-relay). */
static void start_more(struct tctx *x, int64_t now)
{
    unsigned step = is_relay(x) ? 2 : 1;
    while (x->starting && x->next_start < x->n && x->setup_inflight + step <= x->setup_cap &&
           !ld_stopping()) {
        for (unsigned k = 0; k < step; k++) {
            unsigned i = x->next_start++;
            struct tc *c = &x->c[i];
            if (start_client(x, c, i, now) < 0) {
                /* out of sockets: stop starting, count the rest of this unit as failed */
                c->state = TC_FAILED;
                x->t->st.setup_failed++;
                x->starting = false;
                if (c->partner && c->partner->state == TC_WAIT_PEER)
                    fail(x, c->partner, now);
            }
        }
    }
}

static void scan(struct tctx *x, int64_t now)
{
    struct ld_stats *st = &x->t->st;
    for (unsigned i = 0; i < x->n; i++) {
        struct tc *c = &x->c[i];
        if (waiting_answer(c)) {
            if (now < c->rto_due_us)
                continue;
            if (c->tries >= MAX_TRIES) {
                st->timeouts++;
                fail(x, c, now);
                continue;
            }
            c->tries++;
            c->rto_ms *= 2;
            if (!x->stream)
                st->retransmits++;
            send_req(x, c, now);
        } else if (c->state == TC_READY && !x->tearing && c->ka_due_us && now >= c->ka_due_us) {
            c->ka_due_us = 0;
            start_req(x, c, TC_KA_REFRESH, now);
        }
    }
    x->next_scan_us = now + SCAN_US;
}

/* Cuts the stream's input into frames (RFC 8656 section 12.5: ChannelData padded to 4 bytes)
 * and hands each to on_datagram. Returns -1 when the input cannot be framed. */
static int stream_frames(struct tctx *x, struct tc *c, int64_t now)
{
    struct ld_stream *s = &c->s;
    uint32_t off = 0;
    while (s->ilen - off >= STUN_CHANNELDATA_HEADER_LEN) {
        long flen = stun_frame_len(s->ibuf + off, s->ilen - off, true);
        if (flen < 0 || (size_t)flen > s->icap) {
            x->t->st.invalid++;
            return -1;
        }
        if (flen == 0 || (size_t)flen > s->ilen - off)
            break; /* the rest of the frame has not arrived yet */
        on_datagram(x, c, s->ibuf + off, (size_t)flen, now);
        if (c->fd < 0)
            return 0; /* closed by its answer (freed): the buffer is gone */
        off += (uint32_t)flen;
    }
    if (off) {
        memmove(s->ibuf, s->ibuf + off, s->ilen - off);
        s->ilen -= off;
    }
    return 0;
}

static void on_stream_readable(struct tctx *x, struct tc *c)
{
    for (unsigned round = 0; round < LD_RX_ROUNDS && c->fd >= 0; round++) {
        int r = ld_stream_read(&c->s);
        if (r < 0) {
            stream_failed(x, c, ml_now_us());
            return;
        }
        if (r == 0)
            break;
        if (stream_frames(x, c, ml_now_us()) < 0) {
            stream_failed(x, c, ml_now_us());
            return;
        }
    }
    /* bytes OpenSSL holds raise no event: come back for them (bounded: one turn a poll) */
    if (c->fd >= 0 && !c->again && ld_stream_pending(&c->s)) {
        c->again = true;
        x->again[x->nagain++] = (unsigned)(c - x->c);
    }
}

static void on_stream_event(struct tctx *x, struct tc *c, uint32_t events)
{
    if (c->fd < 0)
        return;
    if (c->state == TC_CONNECT) {
        int r = ld_stream_progress(&c->s);
        if (r < 0) {
            stream_failed(x, c, ml_now_us());
            return;
        }
        if (r == 0) {
            stream_interest(x, c);
            return;
        }
        start_req(x, c, TC_ALLOC1, ml_now_us());
    }
    bool wwrite = c->s.ssl_wwrite;
    if ((events & EPOLLOUT) && ld_stream_flush(&c->s) < 0) {
        stream_failed(x, c, ml_now_us());
        return;
    }
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) || (wwrite && (events & EPOLLOUT)))
        on_stream_readable(x, c);
    stream_interest(x, c);
}

/* External peer: every datagram from the relayed address goes back to it unchanged. */
static void on_peer_readable(struct tctx *x, struct tc *c)
{
    struct ld_thread *t = x->t;
    for (unsigned round = 0; round < LD_RX_ROUNDS && c->pfd >= 0; round++) {
        int n = ld_recv_batch(t, c->pfd, &c->pdrops);
        if (!n)
            break;
        for (int i = 0; i < n; i++) {
            x->tx_iov[i].iov_base = t->rx_buf[i];
            x->tx_iov[i].iov_len = t->rx_msg[i].msg_len;
            x->tx_msg[i].msg_hdr = (struct msghdr){.msg_iov = &x->tx_iov[i], .msg_iovlen = 1};
        }
        int w = sendmmsg(c->pfd, x->tx_msg, (unsigned)n, MSG_DONTWAIT);
        if (w < 0) {
            t->st.send_err++;
            w = 0;
        } else if (w < n) {
            t->st.send_eagain++;
        }
        t->st.peer_echoed += (uint64_t)w;
        if (n < LD_BATCH)
            break;
    }
}

static void on_readable(struct tctx *x, struct tc *c)
{
    struct ld_thread *t = x->t;
    for (unsigned round = 0; round < LD_RX_ROUNDS && c->fd >= 0; round++) {
        int n = ld_recv_batch(t, c->fd, &c->drops);
        if (!n)
            break;
        int64_t now = ml_now_us();
        for (int i = 0; i < n && c->fd >= 0; i++)
            on_datagram(x, c, t->rx_buf[i], t->rx_msg[i].msg_len, now);
        if (n < LD_BATCH)
            break;
    }
}

/* Serves sockets and timers until deadline_us (one wait). */
static void poll_once(struct tctx *x, int64_t deadline_us)
{
    int64_t now = ml_now_us();
    if (now >= x->next_scan_us) {
        scan(x, now);
        start_more(x, now);
    }
    if (deadline_us > x->next_scan_us)
        deadline_us = x->next_scan_us;
    struct epoll_event ev[64];
    int n = ld_epoll_wait(x->t->ep, ev, 64, now, x->o->spin || x->nagain ? now : deadline_us);
    if (!n && !x->nagain)
        return;
    int64_t w0 = ml_now_us();
    for (int i = 0; i < n; i++) {
        uint32_t key = ev[i].data.u32;
        struct tc *c = &x->c[key & ~LD_KEY_PEER];
        if (key & LD_KEY_PEER)
            on_peer_readable(x, c);
        else if (x->stream)
            on_stream_event(x, c, ev[i].events);
        else
            on_readable(x, c);
    }
    /* TLS input left inside OpenSSL by the bounded reads: one more turn each */
    unsigned na = x->nagain;
    x->nagain = 0;
    for (unsigned i = 0; i < na; i++) {
        struct tc *c = &x->c[x->again[i]];
        c->again = false;
        if (c->fd >= 0)
            on_stream_readable(x, c);
    }
    now = ml_now_us();
    x->t->st.work_us += now - w0;
    start_more(x, now);
}

static __thread struct tctx *cur_ctx; /* for the gate callback */

static void gate_poll(struct ld_thread *t, int64_t until_us)
{
    (void)t;
    poll_once(cur_ctx, until_us);
}

/* Setup phase: runs until every sequence is done, the deadline passes, or a stop. */
static void run_setup(struct tctx *x, int64_t end_us)
{
    x->starting = true;
    start_more(x, ml_now_us());
    for (;;) {
        int64_t now = ml_now_us();
        if (now >= end_us || ld_stopping())
            break;
        if (x->setup_inflight == 0 && (x->next_start >= x->n || !x->starting))
            break;
        poll_once(x, end_us);
    }
    x->starting = false;
    /* what did not finish in time failed; allocated ones are freed at the end */
    int64_t now = ml_now_us();
    for (unsigned i = 0; i < x->n; i++) {
        struct tc *c = &x->c[i];
        if (c->in_setup) {
            /* an Allocate the server took but whose answer is still on its way would leak
             * until its lifetime ends: free it too (a 437 then counts as freed) */
            if (c->state == TC_ALLOC2)
                c->allocated = true;
            x->t->st.timeouts++;
            fail(x, c, now);
        }
    }
}

/* Frees every allocation (Refresh 0), a bounded number in flight, within LD_TEARDOWN_S. */
static void run_teardown(struct tctx *x)
{
    x->tearing = true;
    int64_t end = ml_now_us() + LD_TEARDOWN_S * 1000000ll;
    if (end > x->t->run->hard_end_us)
        end = x->t->run->hard_end_us;
    for (;;) {
        int64_t now = ml_now_us();
        while (x->next_free < x->n && x->free_inflight < FREE_CONCURRENCY) {
            struct tc *c = &x->c[x->next_free++];
            if (!c->allocated || c->fd < 0)
                continue;
            if (c->in_setup)
                setup_done(x, c);
            start_req(x, c, TC_FREE, now);
            x->free_inflight++;
        }
        if ((x->next_free >= x->n && x->free_inflight == 0) || now >= end)
            break;
        poll_once(x, end);
    }
    for (unsigned i = 0; i < x->n; i++) {
        struct tc *c = &x->c[i];
        if (c->allocated)
            x->t->st.free_failed++;
        x->t->st.rx_drops += c->drops + c->pdrops;
        close_client(c);
    }
}

static void run_traffic(struct tctx *x, int64_t t0)
{
    struct ld_thread *t = x->t;
    const struct ld_opts *o = x->o;
    struct ld_stats *st = &t->st;
    int64_t hard = t->run->hard_end_us;
    int64_t send_end = t0 + (int64_t)(o->duration_s * 1e6);
    if (send_end > hard)
        send_end = hard;
    x->act = calloc(x->n ? x->n : 1, sizeof *x->act);
    if (!x->act)
        return;
    for (unsigned i = 0; i + 1 < x->n; i += 2) {
        if (x->c[i].state == TC_READY && x->c[i + 1].state == TC_READY) {
            x->act[x->nact++] = &x->c[i];
            x->act[x->nact++] = &x->c[i + 1];
            st->pairs_run++;
        }
    }
    /* the pairs that did not come up get no share of the rate: lower the offered rate */
    t->rate = t->rate * x->nact / (x->n ? x->n : 1);
    st->rate = t->rate;
    memset(x->tx_buf, 0, sizeof x->tx_buf);
    st->run_start_us = t0;
    int64_t cpu0 = ld_thread_cpu_ns();
    uint64_t sched = 0;
    int64_t next_send = t0;
    for (;;) {
        int64_t now = ml_now_us();
        if (now >= send_end || ld_stopping() || (t->count && st->sent >= t->count) || !x->nact)
            break;
        if (now >= next_send) {
            uint64_t before = st->send_eagain;
            send_due(x, &sched, t0, now);
            int64_t done = ml_now_us();
            st->work_us += done - now;
            /* the next burst: when `burst` more packets are due, at most 1 ms away */
            next_send = t0 + (int64_t)((double)(sched + o->burst) * 1e6 / t->rate);
            if (next_send > done + 1000)
                next_send = done + 1000;
            if (st->send_eagain != before && next_send < done + 50)
                next_send = done + 50;
        }
        poll_once(x, next_send < send_end ? next_send : send_end);
    }
    st->run_end_us = ml_now_us();
    st->run_cpu_ns = ld_thread_cpu_ns() - cpu0;
    st->run_work_us = st->work_us;
    int64_t drain_end = st->run_end_us + (int64_t)o->drain_ms * 1000;
    if (drain_end > hard)
        drain_end = hard;
    for (;;) {
        int64_t now = ml_now_us();
        if (now >= drain_end || ld_stopping())
            break;
        bool all = true;
        for (unsigned i = 0; i < x->nact && all; i++)
            all = x->act[i]->rx >= x->act[i]->src->tx || x->act[i]->fd < 0;
        if (all)
            break;
        poll_once(x, drain_end);
    }
    for (unsigned i = 0; i + 1 < x->nact; i += 2) {
        struct tc *a = x->act[i], *b = x->act[i + 1];
        uint64_t sent = a->tx + b->tx, got = a->rx + b->rx - a->late - b->late;
        double loss = sent ? 100.0 * (double)(sent > got ? sent - got : 0) / (double)sent : 0;
        if (loss > st->pair_loss_max_pct)
            st->pair_loss_max_pct = loss;
    }
    free(x->act);
    x->act = NULL;
}

static void write_ready_file(const struct ld_opts *o, uint64_t allocs)
{
    if (!o->quiet)
        fprintf(stderr, "mlload: %llu allocations up\n", (unsigned long long)allocs);
    if (!o->ready_file)
        return;
    int fd = open(o->ready_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "mlload: %s: %s\n", o->ready_file, strerror(errno));
        return;
    }
    char line[32];
    size_t n = ml_snprintf(line, sizeof line, "%llu\n", (unsigned long long)allocs);
    if (write(fd, line, n) < 0)
        fprintf(stderr, "mlload: %s: %s\n", o->ready_file, strerror(errno));
    close(fd);
}

int ld_turn_thread(struct ld_thread *t)
{
    const struct ld_opts *o = t->o;
    struct tctx *x = calloc(1, sizeof *x);
    if (!x)
        return -1;
    cur_ctx = x;
    x->t = t;
    x->o = o;
    stun_put32(x->cookie, t->run->cookie);
    bool relay = is_relay(x);
    x->n = relay ? 2 * t->n : t->n;
    x->stream = o->transport != LD_UDP;
    x->c = calloc(x->n ? x->n : 1, sizeof *x->c);
    x->again = calloc(x->n ? x->n : 1, sizeof *x->again);
    if (!x->c || !x->again) {
        fprintf(stderr, "mlload: out of memory for %u clients\n", x->n);
        free(x->c);
        free(x->again);
        free(x);
        return -1;
    }
    for (unsigned i = 0; i < x->n; i++) {
        struct tc *c = &x->c[i];
        c->fd = -1;
        c->pfd = -1;
        c->s.fd = -1;
        c->gidx = relay ? 2 * t->first + i : t->first + i;
        c->channel = (uint16_t)(0x4000 + (c->gidx & 0x3ff));
        if (relay && !o->peer_external)
            c->partner = &x->c[i ^ 1u];
        c->src = o->peer_external ? c : c->partner;
    }
    x->setup_cap = (unsigned)ld_share(o->concurrency, t->idx, o->threads);
    if (relay && x->setup_cap < 2)
        x->setup_cap = 2;
    if (!x->setup_cap)
        x->setup_cap = 1;
    /* permissions last 300 s and channels 600 s (RFC 8656): refresh well before either */
    int64_t ka = (int64_t)o->lifetime_s * 1000000 / 2;
    x->ka_interval_us = ka < 120000000 ? ka : 120000000;

    int64_t start = ml_now_us();
    int64_t hard = t->run->hard_end_us;
    if (o->mode == LD_TURN_ALLOC) {
        int64_t t0 = ld_gate(t, gate_poll, start);
        t->st.run_start_us = t0;
        int64_t cpu0 = ld_thread_cpu_ns();
        int64_t end = t0 + (int64_t)(o->duration_s * 1e6);
        run_setup(x, end < hard ? end : hard);
        t->st.run_end_us = ml_now_us();
        t->st.run_cpu_ns = ld_thread_cpu_ns() - cpu0;
        t->st.run_work_us = t->st.work_us;
        if (!o->keep) {
            run_teardown(x);
        } else {
            for (unsigned i = 0; i < x->n; i++) {
                t->st.rx_drops += x->c[i].drops + x->c[i].pdrops;
                close_client(&x->c[i]);
            }
        }
    } else {
        int64_t end = start + (int64_t)o->setup_timeout_s * 1000000;
        run_setup(x, end < hard ? end : hard);
        int64_t t0 = ld_gate(t, gate_poll, ml_now_us());
        if (relay) {
            run_traffic(x, t0);
        } else {
            if (t->idx == 0)
                write_ready_file(o, __atomic_load_n(&t->run->allocs_ready, __ATOMIC_RELAXED));
            t->st.run_start_us = t0;
            int64_t cpu0 = ld_thread_cpu_ns();
            int64_t hold_end = t0 + (int64_t)(o->duration_s * 1e6);
            if (hold_end > hard - LD_TEARDOWN_S * 1000000ll)
                hold_end = hard - LD_TEARDOWN_S * 1000000ll;
            while (!ld_stopping() && ml_now_us() < hold_end)
                poll_once(x, hold_end);
            t->st.run_end_us = ml_now_us();
            t->st.run_cpu_ns = ld_thread_cpu_ns() - cpu0;
            t->st.run_work_us = t->st.work_us;
        }
        run_teardown(x);
    }
    free(x->c);
    free(x->again);
    free(x);
    return 0;
}
