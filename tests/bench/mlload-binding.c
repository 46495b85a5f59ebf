/* mlload binding mode: paced or windowed Binding requests, answers matched and checked; and
 * turn-flood: paced Allocates without credentials (the smallest request a TURN server answers:
 * a bare 20-byte header), every answer counted with its bytes, as a victim of reflection would
 * receive them when the source address is forged. */
#include "config.h"

#include "tests/bench/mlload.h"

#include "common/common.h"
#include "stun/stun.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REQ_MAX 64 /* bytes: a Binding request with FINGERPRINT is 28 */

enum slot_state {
    SLOT_FREE = 0,
    SLOT_OUT,      /* sent, unanswered */
    SLOT_ANSWERED, /* answered (valid or not) */
    SLOT_GAVE_UP,  /* closed loop: timed out */
};

/* One request in flight; the ring of a socket is indexed by sequence number. */
struct slot {
    uint32_t seq;
    uint32_t state;
    int64_t sent_us;
};

struct bsock {
    int fd;
    uint32_t gidx; /* global socket index: bytes 4..7 of the transaction id */
    uint32_t drops;
    uint32_t next_seq; /* bytes 8..11 of the next transaction id */
    uint32_t head;     /* closed loop: oldest sequence not retired */
    uint32_t inflight;
    struct slot *ring;
    struct sockaddr_storage local;
};

struct bctx {
    struct ld_thread *t;
    const struct ld_opts *o;
    struct bsock *s;
    unsigned n;
    uint32_t mask;     /* ring size - 1 */
    uint64_t inflight; /* sum over sockets */
    unsigned cursor;   /* open loop: next socket to send on */
    uint8_t tid_cookie[4];
    struct mmsghdr tx_msg[LD_BATCH];
    struct iovec tx_iov[LD_BATCH];
    uint8_t tx_buf[LD_BATCH][REQ_MAX];
};

static uint32_t pow2_at_least(uint64_t v, uint32_t min, uint32_t max)
{
    uint32_t p = min;
    while (p < v && p < max)
        p <<= 1;
    return p;
}

/* Sends up to k requests on socket s; returns how many left. */
static unsigned send_reqs(struct bctx *b, struct bsock *s, unsigned k, int64_t now)
{
    struct ld_stats *st = &b->t->st;
    if (k > LD_BATCH)
        k = LD_BATCH;
    if (!k)
        return 0;
    size_t reqlen = 0; /* every request of the batch has the same length */
    for (unsigned i = 0; i < k; i++) {
        uint8_t tid[STUN_TID_LEN];
        memcpy(tid, b->tid_cookie, 4);
        stun_put32(tid + 4, s->gidx);
        stun_put32(tid + 8, s->next_seq + i);
        struct stun_builder sb;
        stun_build_init(&sb, b->tx_buf[i], REQ_MAX,
                        b->o->mode == LD_TURN_FLOOD ? TURN_ALLOCATE : STUN_BINDING, STUN_REQUEST,
                        tid);
        if (b->o->fingerprint)
            stun_build_fingerprint(&sb);
        size_t len = stun_build_finish(&sb);
        reqlen = len;
        b->tx_iov[i].iov_base = b->tx_buf[i];
        b->tx_iov[i].iov_len = len;
        b->tx_msg[i].msg_hdr = (struct msghdr){.msg_iov = &b->tx_iov[i], .msg_iovlen = 1};
    }
    int n = sendmmsg(s->fd, b->tx_msg, k, MSG_DONTWAIT);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
            st->send_eagain++;
        else
            st->send_err++;
        return 0;
    }
    if ((unsigned)n < k)
        st->send_eagain++;
    for (int i = 0; i < n; i++) {
        struct slot *sl = &s->ring[(s->next_seq + (uint32_t)i) & b->mask];
        if (sl->state == SLOT_OUT) {
            /* open loop: overwriting a request unanswered for a whole ring; it is lost */
            s->inflight--;
            b->inflight--;
        }
        sl->seq = s->next_seq + (uint32_t)i;
        sl->state = SLOT_OUT;
        sl->sent_us = now;
    }
    s->next_seq += (uint32_t)n;
    s->inflight += (uint32_t)n;
    b->inflight += (uint64_t)n;
    st->sent += (uint64_t)n;
    st->sent_bytes += (uint64_t)n * reqlen;
    return (unsigned)n;
}

/* Checks one answer; counts it. */
static void on_answer(struct bctx *b, struct bsock *s, const uint8_t *buf, size_t len, int64_t now)
{
    struct ld_stats *st = &b->t->st;
    struct stun_msg m;
    if (stun_msg_parse(&m, buf, len, NULL) < 0 || memcmp(m.tid, b->tid_cookie, 4) != 0 ||
        stun_get32(m.tid + 4) != s->gidx) {
        st->invalid++;
        return;
    }
    uint32_t seq = stun_get32(m.tid + 8);
    struct slot *sl = &s->ring[seq & b->mask];
    if (sl->state == SLOT_FREE || sl->seq != seq || sl->state == SLOT_GAVE_UP) {
        st->stale++;
        return;
    }
    if (sl->state == SLOT_ANSWERED) {
        st->dup++;
        return;
    }
    sl->state = SLOT_ANSWERED;
    s->inflight--;
    b->inflight--;
    if (b->o->mode == LD_TURN_FLOOD) {
        /* whatever the answer, it is what the victim receives */
        const struct stun_attr *a = stun_msg_find(&m, STUN_ATTR_ERROR_CODE);
        int code;
        if (m.cls == STUN_ERROR && a && stun_attr_get_error(&m, a, &code, NULL, NULL) == 0 &&
            code >= 300 && code < 700)
            st->err_codes[code]++;
        st->received++;
        st->recv_bytes += len;
        if (now - st->run_start_us >= 1000000)
            st->recv_bytes_after_1s += len;
        ld_hist_add(&st->lat, (uint64_t)(now - sl->sent_us));
        return;
    }
    bool ok = m.cls == STUN_SUCCESS && m.method == STUN_BINDING;
    if (ok) {
        const struct stun_attr *a = stun_msg_find(&m, STUN_ATTR_XOR_MAPPED_ADDRESS);
        struct sockaddr_storage ss;
        socklen_t sl_len;
        ok = a && stun_attr_get_xaddr(&m, a, &ss, &sl_len) == 0 &&
             ml_addr_equal((const struct sockaddr *)&ss, (const struct sockaddr *)&s->local);
    } else if (m.cls == STUN_ERROR) {
        const struct stun_attr *a = stun_msg_find(&m, STUN_ATTR_ERROR_CODE);
        int code;
        if (a && stun_attr_get_error(&m, a, &code, NULL, NULL) == 0 && code >= 300 && code < 700)
            st->err_codes[code]++;
    }
    if (ok) {
        st->received++;
        ld_hist_add(&st->lat, (uint64_t)(now - sl->sent_us));
    } else {
        st->errors++;
    }
}

/* Closed loop: retires answered requests at the head and gives up on expired ones. */
static void retire(struct bctx *b, struct bsock *s, int64_t now)
{
    int64_t timeout_us = (int64_t)b->o->timeout_ms * 1000;
    while (s->head != s->next_seq) {
        struct slot *sl = &s->ring[s->head & b->mask];
        if (sl->state == SLOT_OUT) {
            if (now - sl->sent_us < timeout_us)
                break;
            sl->state = SLOT_GAVE_UP;
            s->inflight--;
            b->inflight--;
            b->t->st.timeouts++;
        }
        s->head++;
    }
}

static void top_up(struct bctx *b, struct bsock *s, int64_t now)
{
    uint32_t ring = b->mask + 1;
    unsigned want = b->o->window > s->inflight ? b->o->window - s->inflight : 0;
    unsigned room = ring - (s->next_seq - s->head);
    if (want > room)
        want = room;
    uint64_t cap = b->t->count;
    if (cap) {
        uint64_t left = cap > b->t->st.sent ? cap - b->t->st.sent : 0;
        if (want > left)
            want = (unsigned)left;
    }
    while (want) {
        unsigned n = send_reqs(b, s, want, now);
        if (!n)
            break;
        want -= n;
    }
}

static void on_readable(struct bctx *b, struct bsock *s, bool refill)
{
    struct ld_thread *t = b->t;
    for (unsigned round = 0; round < LD_RX_ROUNDS; round++) {
        int n = ld_recv_batch(t, s->fd, &s->drops);
        if (!n)
            break;
        int64_t now = ml_now_us();
        for (int i = 0; i < n; i++)
            on_answer(b, s, t->rx_buf[i], t->rx_msg[i].msg_len, now);
        if (refill) {
            retire(b, s, now);
            top_up(b, s, now);
        }
        if (n < LD_BATCH)
            break;
    }
}

/* Waits for answers until deadline_us and handles them. */
static void poll_once(struct bctx *b, int64_t deadline_us, bool refill)
{
    struct epoll_event ev[64];
    int64_t now = ml_now_us();
    int n = ld_epoll_wait(b->t->ep, ev, 64, now, b->o->spin ? now : deadline_us);
    if (!n)
        return;
    int64_t w0 = ml_now_us();
    for (int i = 0; i < n; i++)
        on_readable(b, &b->s[ev[i].data.u32], refill);
    b->t->st.work_us += ml_now_us() - w0;
}

static void gate_idle(struct ld_thread *t, int64_t until_us)
{
    int64_t now = ml_now_us();
    if (until_us > now)
        usleep((useconds_t)(until_us - now));
}

/* Open loop: sends what the schedule says is due, spread over the sockets. */
static void send_due(struct bctx *b, uint64_t *sched, int64_t t0, int64_t now)
{
    struct ld_thread *t = b->t;
    uint64_t target = (uint64_t)(t->rate * (double)(now - t0) / 1e6);
    if (t->count && target > t->count)
        target = t->count;
    if (target <= *sched)
        return;
    uint64_t due = target - *sched;
    /* Falling behind by more than a millisecond of traffic (or a few bursts) means this
     * thread was descheduled or is saturated: skip rather than burst, and report it. */
    uint64_t lag_max = (uint64_t)(t->rate / 1000);
    if (lag_max < 4ull * b->o->burst)
        lag_max = 4ull * b->o->burst;
    if (due > lag_max) {
        t->st.skipped += due - lag_max;
        *sched += due - lag_max;
        due = lag_max;
    }
    unsigned per = (unsigned)((due + b->n - 1) / b->n);
    if (per > LD_BATCH)
        per = LD_BATCH;
    unsigned fails = 0;
    while (due && fails < b->n) {
        struct bsock *s = &b->s[b->cursor];
        b->cursor = (b->cursor + 1) % b->n;
        unsigned k = per < due ? per : (unsigned)due;
        unsigned sent = send_reqs(b, s, k, now);
        if (sent < k)
            fails++;
        due -= sent;
        *sched += sent;
    }
}

static int setup(struct bctx *b)
{
    struct ld_thread *t = b->t;
    const struct ld_opts *o = b->o;
    uint64_t entries;
    if (o->window) {
        entries = 4ull * o->window;
    } else {
        /* cover the drain period plus a second of lateness at this socket's rate */
        double per_sock = t->rate / (t->n ? t->n : 1);
        entries = (uint64_t)(per_sock * (o->drain_ms + 1000.0) / 1000.0 * 1.25);
    }
    uint32_t max = 1u << 20;
    /* and at most 64 MiB of rings in this thread */
    while (max > 256 && (uint64_t)max * t->n * sizeof(struct slot) > (64ull << 20))
        max >>= 1;
    b->mask = pow2_at_least(entries, 256, max) - 1;
    b->n = t->n;
    b->s = calloc(b->n, sizeof *b->s);
    if (!b->s)
        return -1;
    for (unsigned i = 0; i < b->n; i++)
        b->s[i].fd = -1;
    for (unsigned i = 0; i < b->n; i++) {
        struct bsock *s = &b->s[i];
        s->gidx = t->first + i;
        s->ring = calloc((size_t)b->mask + 1, sizeof *s->ring);
        if (!s->ring) {
            fprintf(stderr, "mlload: out of memory for %u sockets\n", b->n);
            return -1;
        }
        s->fd = ld_udp_socket(o, s->gidx, &s->local);
        if (s->fd < 0 || ld_epoll_add(t->ep, s->fd, i) < 0)
            return -1;
    }
    return 0;
}

static void teardown(struct bctx *b)
{
    for (unsigned i = 0; b->s && i < b->n; i++) {
        if (b->s[i].fd >= 0)
            close(b->s[i].fd);
        b->t->st.rx_drops += b->s[i].drops;
        free(b->s[i].ring);
    }
    free(b->s);
}

int ld_binding_thread(struct ld_thread *t)
{
    const struct ld_opts *o = t->o;
    struct bctx *b = calloc(1, sizeof *b);
    if (!b)
        return -1;
    b->t = t;
    b->o = o;
    stun_put32(b->tid_cookie, t->run->cookie);
    int rc = setup(b);
    int64_t now = ml_now_us();
    int64_t t0 = ld_gate(t, gate_idle, now);
    if (rc < 0) {
        teardown(b);
        free(b);
        return -1;
    }
    struct ld_stats *st = &t->st;
    int64_t hard = t->run->hard_end_us;
    int64_t send_end = t0 + (int64_t)(o->duration_s * 1e6);
    if (send_end > hard)
        send_end = hard;
    st->run_start_us = t0;
    st->rate = t->rate;
    int64_t cpu0 = ld_thread_cpu_ns();
    bool closed = o->window > 0;
    uint64_t sched = 0;
    int64_t next_scan = t0, next_send = t0;

    if (closed)
        for (unsigned i = 0; i < b->n; i++)
            top_up(b, &b->s[i], t0);
    for (;;) {
        now = ml_now_us();
        if (now >= send_end || ld_stopping() || (t->count && st->sent >= t->count))
            break;
        int64_t wake;
        if (closed) {
            if (now >= next_scan) {
                /* expired requests free their window slot */
                for (unsigned i = 0; i < b->n; i++) {
                    retire(b, &b->s[i], now);
                    top_up(b, &b->s[i], now);
                }
                next_scan = now + 10000;
            }
            wake = next_scan;
        } else {
            if (now >= next_send) {
                uint64_t before = st->send_eagain;
                send_due(b, &sched, t0, now);
                int64_t done = ml_now_us();
                st->work_us += done - now;
                /* the next burst: when `burst` more packets are due, at most 1 ms away */
                next_send = t0 + (int64_t)((double)(sched + o->burst) * 1e6 / t->rate);
                if (next_send > done + 1000)
                    next_send = done + 1000;
                if (st->send_eagain != before && next_send < done + 50)
                    next_send = done + 50;
            }
            wake = next_send;
        }
        if (wake > send_end)
            wake = send_end;
        poll_once(b, wake, closed);
    }
    st->run_end_us = ml_now_us();
    st->run_cpu_ns = ld_thread_cpu_ns() - cpu0;
    st->run_work_us = st->work_us;

    /* Drain: late answers still count until drain_ms has passed or nothing is in flight. */
    int64_t drain_end = st->run_end_us + (int64_t)o->drain_ms * 1000;
    if (drain_end > hard)
        drain_end = hard;
    while (b->inflight && !ld_stopping()) {
        now = ml_now_us();
        if (now >= drain_end)
            break;
        poll_once(b, drain_end, false);
    }
    teardown(b);
    free(b);
    return 0;
}
