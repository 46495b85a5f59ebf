/* The io_uring data path of UDP sockets (net.io = uring, or auto where the kernel allows it; the
 * epoll path of udp.c is the fallback). Every UDP socket of a worker keeps one multishot
 * IORING_OP_RECVMSG in flight that receives into the worker's ring of provided buffers. At the
 * end of each loop iteration one io_uring_enter() submits the sends queued by callbacks and runs
 * the receives the kernel has queued for this thread (they run when the thread enters the
 * kernel, never by interrupting it), and the completions go to the sockets' callbacks in
 * batches, as recvmmsg batches do on the epoll path. TCP and TLS streams, timers and
 * cross-thread tasks stay on the worker's libevent loop.
 *
 * Where a worker sleeps (net.uring-wait). The loop wait, the default: the ring
 * (IORING_SETUP_COOP_TASKRUN) has its fd among the loop's events, and a receive wakes the worker
 * through the signal path: epoll_wait returns EINTR after the receive ran as task work, and this
 * program's epoll_wait() (below) reports the ring readable at once, without the second wait
 * libevent would make to find it so. The ring wait (net.uring-wait = ring): the ring is set up with
 * IORING_SETUP_DEFER_TASKRUN and libevent's wait is taken into io_uring_enter. This program defines
 * epoll_wait(), which libevent's epoll backend calls; on a worker thread it polls libevent's epoll
 * descriptor from the ring (libevent's sockets, and the notifications of other threads) and sleeps
 * in io_uring_enter for one completion or libevent's next timeout. The receives run inside that
 * call: one system call wakes the worker. On every other thread epoll_wait() is epoll_pwait()
 * without a mask, as glibc's is. The ring wait saves CPU with a worker per core and lengthens the
 * tail when workers share cores with other busy threads (docs/benchmarks.md), hence not the
 * default.
 *
 * Sends: the datagrams callbacks queue leave when the pass ends, a run of them on one socket in
 * one sendmmsg (as on the epoll path), a datagram alone on its socket as an IORING_OP_SENDMSG
 * request, all of those in the pass's one io_uring_enter.
 *
 * Buffers: a receive buffer is free again once its batch's callback has returned and every
 * send pointing into it (net_udp_send_ref) has completed; a copied datagram (net_udp_send) lives
 * in the worker's arena until no send queued or in flight uses the arena. Free buffers wait on a
 * stack and the kernel is offered only as many as the traffic needs (64 at first, twice as many
 * each time it finds none), the most recently used first: a quiet worker touches a few pages that
 * stay in cache, a busy one grows to net.uring-buffers. Nothing is allocated per packet; a datagram
 * that finds no room is sent at once with sendto(), as outside a batch. */
#include "config.h"

#include "net/net-int.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define UR_SQ_ENTRIES 512               /* send requests queued before an early submit */
#define UR_CQ_ENTRIES 8192              /* completions the kernel can post between two passes */
#define UR_TX_SLOTS 2048                /* send requests queued or in flight per worker */
#define UR_ROUNDS 8                     /* submit-and-complete passes per loop iteration */
#define UR_REAP_MAX (4 * UR_CQ_ENTRIES) /* completions handled per pass */
#define UR_BGID 0                       /* the worker's buffer group */
#define UR_OFFER_MIN 64                 /* buffers offered to the kernel at first */
#define UR_NONE UINT32_MAX
#define UR_SETUP_FLAGS                                                                             \
    (IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |                   \
     IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SINGLE_ISSUER)
#define UR_SETUP_DEFER                                                                             \
    (IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_DEFER_TASKRUN |                  \
     IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SINGLE_ISSUER)
#define UR_POLL_UD 4u /* user_data of the poll on libevent's epoll descriptor (tag 0) */

/* A receive buffer: NET_HEADROOM bytes, the datagram, NET_TAILROOM bytes. The kernel writes its
 * header (struct io_uring_recvmsg_out and the source address) into the end of the headroom,
 * where the payload starts at NET_HEADROOM as on the epoll path; the header is read before the
 * callback, which may then write over the whole headroom. */
#define UR_NAMELEN ((unsigned)sizeof(struct sockaddr_in6))
#define UR_HDR (sizeof(struct io_uring_recvmsg_out) + UR_NAMELEN)
#define UR_BUF_LEN ((unsigned)(UR_HDR + NET_MAX_DATAGRAM)) /* what the kernel may fill */
_Static_assert(NET_HEADROOM >= UR_HDR, "the kernel's header must fit in the headroom");

/* user_data: a socket pointer or a send slot, tagged in the two low bits. */
enum { UR_RECV = 1, UR_SEND = 2, UR_CANCEL = 3 };
#define UR_TAG(ud) ((unsigned)((ud)&3u))

/* A send request, queued or in flight. */
struct ur_tx {
    struct msghdr msg;
    struct iovec iov;
    union net_sockaddr to;
    int32_t buf;   /* the receive buffer the datagram lies in, or -1 */
    bool arena;    /* the datagram is a copy in the worker's arena */
    uint32_t next; /* free list */
};

struct net_uring {
    struct io_uring ring;
    bool ring_ok;
    struct event *ev;     /* the ring's fd on the worker's loop: readable with completions */
    struct msghdr rx_msg; /* what every receive asks for: the source address, no control */
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    uint8_t *bufs; /* nbufs slots of NET_RX_SLOT bytes */
    size_t bufs_bytes;
    unsigned nbufs;
    unsigned batch; /* datagrams per callback (net.udp-batch) */
    uint16_t *refs; /* per buffer: its batch, and each send pointing into it */
    uint16_t *free; /* stack of free buffers, not offered to the kernel */
    unsigned nfree;
    unsigned offered;  /* buffers in the ring the kernel has not taken yet */
    unsigned target;   /* buffers to keep offered: doubles when the kernel found none */
    bool starved;      /* a receive ended with -ENOBUFS in this pass */
    unsigned returned; /* buffers added to the ring, not yet published */
    struct ur_tx *tx;
    uint32_t tx_free;
    unsigned tx_busy;          /* send requests in flight */
    unsigned arena_busy;       /* sends queued or in flight whose datagram is a copy in the arena */
    int32_t qbuf[NET_TXQ_LEN]; /* per send in the worker's queue (w->tx): its receive buffer,
                                  or -1 for a copy in the arena */
    unsigned armed;            /* multishot receives in flight, of live and closed sockets */
    bool stopping;             /* the worker is stopping: receives that end are not started again */
    struct net_udp *rearm_head, *rearm_tail; /* receives that ended, to start again */
    /* the batch being gathered: consecutive datagrams of one socket */
    struct net_udp *bu;
    unsigned bn;
    uint64_t bbytes;
    int32_t bbuf[NET_MAX_BATCH];
    /* send completions counted during a pass, added to the counters at its end */
    uint64_t tx_packets, tx_bytes, tx_dropped;
    int placeholder; /* an unbound AF_UNIX datagram socket: put in a closed socket's fd */
    /* the ring wait (net.uring-wait = ring): the worker sleeps in io_uring_enter */
    bool defer;       /* set up with DEFER_TASKRUN, libevent's waits taken into the ring */
    int quiet_fd;     /* an eventfd never written: the loop's event that stands for the ring */
    int epfd;         /* libevent's epoll descriptor, learnt from its first wait */
    bool poll_armed;  /* a multishot poll of epfd is in flight */
    bool epoll_check; /* epfd may have ready descriptors: look before sleeping */
    bool wait_seen;   /* a wait of the loop came through ring_wait() */
};

static inline uint8_t *slot_of(const struct net_uring *r, int32_t b)
{
    return r->bufs + (size_t)b * NET_RX_SLOT;
}

/* ---------------------------------------------------------------- buffers */

/* Offers free buffers to the kernel up to the target, the most recently freed first, and makes
 * them visible to it. */
static void buf_offer(struct net_uring *r)
{
    if (r->starved) {
        r->starved = false;
        r->target = r->target * 2 < r->nbufs ? r->target * 2 : r->nbufs;
    }
    while (r->offered < r->target && r->nfree) {
        uint16_t b = r->free[--r->nfree];
        io_uring_buf_ring_add(r->br, slot_of(r, b) + NET_HEADROOM - UR_HDR, UR_BUF_LEN, b,
                              io_uring_buf_ring_mask(r->nbufs), (int)r->returned);
        r->returned++;
        r->offered++;
    }
    if (r->returned) {
        io_uring_buf_ring_advance(r->br, (int)r->returned);
        r->returned = 0;
    }
}

static void buf_put(struct net_uring *r, int32_t b)
{
    if (--r->refs[b] == 0)
        r->free[r->nfree++] = (uint16_t)b;
}

/* The receive buffer that holds [p, p + len), or -1. */
static int32_t buf_of(const struct net_uring *r, const void *p, size_t len)
{
    const uint8_t *q = p;
    if (q < r->bufs || q >= r->bufs + (size_t)r->nbufs * NET_RX_SLOT)
        return -1;
    size_t off = (size_t)(q - r->bufs);
    int32_t b = (int32_t)(off / NET_RX_SLOT);
    if (off - (size_t)b * NET_RX_SLOT + len > NET_RX_SLOT || r->refs[b] == 0)
        return -1;
    return b;
}

/* ---------------------------------------------------------------- submission queue */

/* A free submission entry; submits what is queued when the queue is full. NULL only when the
 * kernel refuses to take the queue. */
static struct io_uring_sqe *ur_sqe(struct net_uring *r)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (!sqe) {
        (void)io_uring_submit(&r->ring);
        sqe = io_uring_get_sqe(&r->ring);
    }
    return sqe;
}

int net_uring_arm(struct net_udp *u, char *err, size_t errlen)
{
    struct net_uring *r = u->w->ur;
    struct io_uring_sqe *sqe = ur_sqe(r);
    if (!sqe)
        return ml_err(err, errlen, "io_uring: no submission entry for a receive");
    io_uring_prep_recvmsg_multishot(sqe, u->fd, &r->rx_msg, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = UR_BGID;
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)u | UR_RECV);
    u->armed = true;
    r->armed++;
    return 0;
}

/* Frees a closed socket once nothing refers to it: no receive in flight, no callback running,
 * not waiting to be armed again. Its fd is closed here, after the kernel has let go of it, so
 * that sends still queued on it never name another socket. */
static void sock_release(struct net_udp *u)
{
    if (u->dead && !u->armed && !u->busy && !u->rearm)
        net_udp_free(u);
}

/* A closed socket's receive is cancelled at once, and the socket itself let go of at once: the
 * receive in flight holds it (and so its port) until the cancellation completes, which used to be
 * a loop turn or more later, so that an Allocate right after a Refresh of 0 could find the freed
 * relay port still bound and answer 508. The fd keeps its number (sends still queued name it)
 * but now holds the placeholder socket, which sends nothing anywhere: the datagrams queued for a
 * relay that just went are dropped, as on the epoll path. u itself is freed, and its fd closed,
 * when the receive's last completion arrives. */
void net_uring_close(struct net_udp *u)
{
    struct net_uring *r = u->w->ur;
    u->dead = true;
    if (u->armed) {
        struct io_uring_sync_cancel_reg reg;
        memset(&reg, 0, sizeof reg);
        reg.addr = (uint64_t)(uintptr_t)u | UR_RECV;
        reg.timeout.tv_sec = -1;
        reg.timeout.tv_nsec = -1;
        int rc = io_uring_register_sync_cancel(&r->ring, &reg);
        if (rc < 0 && rc != -ENOENT && rc != -EALREADY) {
            /* no synchronous cancellation here: ask for it with the next submission */
            struct io_uring_sqe *sqe = ur_sqe(r);
            if (sqe) {
                io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)u | UR_RECV, 0);
                io_uring_sqe_set_data64(sqe, UR_CANCEL);
                sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
            }
        }
        if (r->placeholder >= 0 && u->fd >= 0)
            (void)dup3(r->placeholder, u->fd, O_CLOEXEC);
        return;
    }
    sock_release(u);
}

static void rearm_push(struct net_uring *r, struct net_udp *u)
{
    u->rearm = true;
    u->rearm_next = NULL;
    if (r->rearm_tail)
        r->rearm_tail->rearm_next = u;
    else
        r->rearm_head = u;
    r->rearm_tail = u;
}

/* Starts again the receives that ended (no buffer was free, or the completion queue was full). */
static void rearm_all(struct net_uring *r)
{
    struct net_udp *u = r->rearm_head;
    r->rearm_head = r->rearm_tail = NULL;
    while (u) {
        struct net_udp *next = u->rearm_next;
        u->rearm = false;
        u->rearm_next = NULL;
        if (u->dead) {
            sock_release(u);
        } else if (net_uring_arm(u, NULL, 0) < 0) {
            rearm_push(r, u); /* the next pass tries again */
        }
        u = next;
    }
}

/* ---------------------------------------------------------------- sends */

static void txq_flush(struct net_worker *w);

int net_uring_send(struct net_udp *u, const struct sockaddr *to, const void *data, size_t len,
                   bool copy)
{
    struct net_worker *w = u->w;
    struct net_uring *r = w->ur;
    struct net_txq *q = &w->tx;
    socklen_t tolen = ml_addr_len(to);
    if (tolen > sizeof(union net_sockaddr) || len > NET_MAX_DATAGRAM)
        return -1;
    if (q->n == NET_TXQ_LEN)
        txq_flush(w);
    int32_t b = -1;
    if (!copy) {
        /* A datagram in a receive buffer is sent from there; anything else is copied, since it
         * need not outlive the callback and the send may complete after it. */
        b = buf_of(r, data, len);
        copy = b < 0 || r->refs[b] == UINT16_MAX;
    }
    const void *p = data;
    if (copy) {
        if (r->arena_busy == 0)
            w->tx.arena_used = 0; /* nothing queued or in flight points into the arena */
        if (len > NET_TX_ARENA / 4 || w->tx.arena_used + len > NET_TX_ARENA)
            return -1;
        uint8_t *c = w->tx.arena + w->tx.arena_used;
        memcpy(c, data, len);
        w->tx.arena_used += (len + 7) & ~(size_t)7;
        p = c;
        b = -1;
        r->arena_busy++;
    } else {
        r->refs[b]++;
    }
    unsigned i = q->n++;
    memcpy(&q->to[i], to, tolen);
    q->fd[i] = u->fd;
    q->iov[i].iov_base = (void *)p;
    q->iov[i].iov_len = len;
    r->qbuf[i] = b;
    return 0;
}

/* Adds the sends counted since the last time to the worker's counters. */
static void count_tx(struct net_worker *w)
{
    struct net_uring *r = w->ur;
    if (r->tx_packets) {
        NET_COUNT(w->ctr.udp_tx_packets, r->tx_packets);
        NET_COUNT(w->ctr.udp_tx_bytes, r->tx_bytes);
    }
    if (r->tx_dropped)
        NET_COUNT(w->ctr.udp_tx_dropped, r->tx_dropped);
    r->tx_packets = r->tx_bytes = r->tx_dropped = 0;
}

/* Lets go of what queued send i held: its receive buffer, or its place in the arena. */
static void txq_release(struct net_uring *r, unsigned i)
{
    if (r->qbuf[i] >= 0)
        buf_put(r, r->qbuf[i]);
    else
        r->arena_busy--;
}

/* Queued sends [i, j), all on one socket, in sendmmsg calls (as the epoll path sends them). */
static void txq_sendmmsg(struct net_worker *w, unsigned i, unsigned j)
{
    struct net_uring *r = w->ur;
    struct net_tx_count c = {0, 0, 0};
    net_txq_sendmmsg(&w->tx, i, j, &c);
    r->tx_packets += c.sent;
    r->tx_bytes += c.bytes;
    r->tx_dropped += c.dropped;
    for (unsigned k = i; k < j; k++)
        txq_release(r, k);
}

/* Queued send i as a send request, issued by the next io_uring_enter with the others. false
 * when there is no room (the caller sends it at once). */
static bool txq_request(struct net_worker *w, unsigned i)
{
    struct net_uring *r = w->ur;
    struct net_txq *q = &w->tx;
    if (r->tx_free == UR_NONE)
        return false;
    struct io_uring_sqe *sqe = ur_sqe(r);
    if (!sqe)
        return false;
    uint32_t slot = r->tx_free;
    struct ur_tx *t = &r->tx[slot];
    r->tx_free = t->next;
    r->tx_busy++;
    t->buf = r->qbuf[i];
    t->arena = r->qbuf[i] < 0; /* what the queued send held goes with the request */
    socklen_t tolen = ml_addr_len((struct sockaddr *)&q->to[i]);
    memcpy(&t->to, &q->to[i], tolen);
    t->iov = q->iov[i];
    memset(&t->msg, 0, sizeof t->msg);
    t->msg.msg_name = &t->to;
    t->msg.msg_namelen = tolen;
    t->msg.msg_iov = &t->iov;
    t->msg.msg_iovlen = 1;
    /* MSG_DONTWAIT: a full socket buffer fails the send at once (it is dropped and counted, as
     * on the epoll path) instead of parking it until the socket is writable. */
    io_uring_prep_sendmsg(sqe, q->fd[i], &t->msg, MSG_DONTWAIT);
    io_uring_sqe_set_data64(sqe, ((uint64_t)slot << 2) | UR_SEND);
    return true;
}

/* Sends what the queue holds: a run of datagrams on one socket in one sendmmsg, which costs the
 * kernel less per datagram than as many requests; a datagram alone on its socket (a relay
 * socket's typical share of a pass) as a request, so that all of them leave with one
 * io_uring_enter instead of a system call each. */
static void txq_flush(struct net_worker *w)
{
    struct net_txq *q = &w->tx;
    unsigned i = 0;
    while (i < q->n) {
        unsigned j = i + 1;
        while (j < q->n && q->fd[j] == q->fd[i])
            j++;
        if (j - i >= 2 || !txq_request(w, i))
            txq_sendmmsg(w, i, j);
        i = j;
    }
    q->n = 0;
    count_tx(w);
}

static void on_send(struct net_uring *r, uint32_t slot, int32_t res)
{
    struct ur_tx *t = &r->tx[slot];
    if (res >= 0) {
        r->tx_packets++;
        r->tx_bytes += t->iov.iov_len;
    } else {
        r->tx_dropped++;
    }
    if (t->arena)
        r->arena_busy--;
    else if (t->buf >= 0)
        buf_put(r, t->buf);
    t->next = r->tx_free;
    r->tx_free = slot;
    r->tx_busy--;
}

void net_uring_flush(struct net_worker *w)
{
    struct net_uring *r = w->ur;
    txq_flush(w);
    if (io_uring_sq_ready(&r->ring))
        (void)io_uring_submit(&r->ring);
}

/* ---------------------------------------------------------------- receives */

static unsigned hist_bucket(unsigned n)
{
    unsigned b = 0;
    while (n > 1 && b < 6) {
        n >>= 1;
        b++;
    }
    return b;
}

/* Hands the gathered batch to its socket's callback. */
static void batch_deliver(struct net_worker *w)
{
    struct net_uring *r = w->ur;
    struct net_udp *u = r->bu;
    unsigned n = r->bn;
    if (!u)
        return;
    int32_t held[NET_MAX_BATCH];
    memcpy(held, r->bbuf, n * sizeof held[0]);
    NET_COUNT(w->ctr.udp_rx_batches, 1);
    NET_COUNT(w->ctr.udp_rx_batch_hist[hist_bucket(n)], 1);
    NET_COUNT(w->ctr.udp_rx_packets, n);
    NET_COUNT(w->ctr.udp_rx_bytes, r->bbytes);
    r->bu = NULL;
    r->bn = 0;
    r->bbytes = 0;
    w->in_batch = true;
    u->busy = true;
    u->cb(u, u->arg, w->pkts, n);
    u->busy = false;
    w->in_batch = false;
    for (unsigned i = 0; i < n; i++)
        buf_put(r, held[i]);
    if (u->dead)
        sock_release(u);
}

/* A datagram in buffer b (res bytes with the kernel's header) for u: joins the batch. Returns
 * false when it is dropped (the caller gives the buffer back). */
static bool batch_add(struct net_worker *w, struct net_udp *u, int32_t b, int32_t res)
{
    struct net_uring *r = w->ur;
    uint8_t *hdr = slot_of(r, b) + NET_HEADROOM - UR_HDR;
    struct io_uring_recvmsg_out *out = io_uring_recvmsg_validate(hdr, res, &r->rx_msg);
    if (!out || out->namelen > UR_NAMELEN)
        return false;
    if ((out->flags & MSG_TRUNC) || out->payloadlen > (unsigned)res - UR_HDR) {
        NET_COUNT(w->ctr.udp_rx_truncated, 1);
        return false;
    }
    if (r->bu != u || r->bn >= r->batch) {
        batch_deliver(w);
        if (u->dead)
            return false; /* that callback closed u */
    }
    r->bu = u;
    struct net_pkt *p = &w->pkts[r->bn];
    memcpy(&p->from, io_uring_recvmsg_name(out), out->namelen);
    p->fromlen = out->namelen;
    p->data = slot_of(r, b) + NET_HEADROOM;
    p->len = out->payloadlen;
    r->bbuf[r->bn++] = b;
    r->bbytes += out->payloadlen;
    return true;
}

static void on_recv(struct net_worker *w, struct net_udp *u, int32_t res, uint32_t flags)
{
    struct net_uring *r = w->ur;
    if (flags & IORING_CQE_F_BUFFER) {
        int32_t b = (int32_t)(flags >> IORING_CQE_BUFFER_SHIFT);
        r->refs[b] = 1;
        r->offered--;
        if (res < 0 || u->dead || !batch_add(w, u, b, res))
            buf_put(r, b);
    }
    if (!(flags & IORING_CQE_F_MORE)) {
        /* The multishot receive ended: cancelled (closed), no free buffer (-ENOBUFS), the
         * completion queue was full, or an error. A live socket gets a new one after this pass,
         * once the buffers of the pass are back. */
        u->armed = false;
        r->armed--;
        if (res == -ENOBUFS)
            r->starved = true;
        if (u->dead)
            sock_release(u);
        else if (!u->rearm && !r->stopping)
            rearm_push(r, u);
    }
}

/* Handles the completions waiting in the queue (bounded); returns how many. */
static unsigned reap(struct net_worker *w)
{
    struct net_uring *r = w->ur;
    unsigned total = 0;
    while (total < UR_REAP_MAX) {
        struct {
            uint64_t ud;
            int32_t res;
            uint32_t flags;
        } c[64];
        /* Read without io_uring_peek_batch_cqe(), which enters the kernel whenever the queue is
         * empty and work is pending for this thread: a system call per pass that the next
         * pass's io_uring_enter makes anyway (net_uring_turn checks IORING_SQ_TASKRUN). */
        unsigned n = 0, head;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&r->ring, head, cqe)
        {
            c[n].ud = cqe->user_data;
            c[n].res = cqe->res;
            c[n].flags = cqe->flags;
            if (++n == 64)
                break;
        }
        if (!n)
            break;
        /* copied out and the queue advanced first: callbacks may submit, and the kernel may
         * then post more */
        io_uring_cq_advance(&r->ring, n);
        for (unsigned i = 0; i < n; i++) {
            switch (UR_TAG(c[i].ud)) {
            case UR_RECV:
                on_recv(w, (struct net_udp *)(uintptr_t)(c[i].ud & ~(uint64_t)3), c[i].res,
                        c[i].flags);
                break;
            case UR_SEND:
                on_send(r, (uint32_t)(c[i].ud >> 2), c[i].res);
                break;
            default:
                if (c[i].ud == UR_POLL_UD) {
                    r->epoll_check = true;
                    if (!(c[i].flags & IORING_CQE_F_MORE))
                        r->poll_armed = false;
                }
                break; /* or a cancellation that found nothing left to cancel */
            }
        }
        total += n;
    }
    batch_deliver(w);
    count_tx(w);
    buf_offer(r);
    rearm_all(r);
    return total;
}

/* Whether the kernel has something for us: queued submissions, completions, receives waiting
 * to run on this thread, or completions that overflowed the queue. */
static bool kernel_work(const struct net_uring *r)
{
    return (IO_URING_READ_ONCE(*r->ring.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) !=
           0;
}

void net_uring_turn(struct net_worker *w)
{
    struct net_uring *r = w->ur;
    for (unsigned round = 0; round < UR_ROUNDS; round++) {
        txq_flush(w);
        if (io_uring_sq_ready(&r->ring) || kernel_work(r)) {
            /* -EBUSY (completions overflowing) and -EINTR are fine: reaping makes room */
            (void)io_uring_submit_and_get_events(&r->ring);
        } else if (!io_uring_cq_ready(&r->ring)) {
            return;
        }
        reap(w);
    }
    /* Still busy after UR_ROUNDS passes: the loop's other events get their turn first. */
    if (io_uring_sq_ready(&r->ring) || io_uring_cq_ready(&r->ring) || kernel_work(r))
        event_active(r->ev, EV_READ, 0);
}

/* The ring's fd became readable: the pass at the end of this loop iteration handles it. */
static void ring_readable(evutil_socket_t fd, short what, void *arg)
{
    ML_UNUSED(fd);
    ML_UNUSED(what);
    ML_UNUSED(arg);
}

/* ---------------------------------------------------------------- the ring wait */

/* This thread's worker, from the start of its ring: its loop's waits come to ring_wait() (the
 * ring wait, r->defer) or loop_wait() (the loop wait). */
static __thread struct net_worker *waiter;
/* Set while net_uring_wait_probe() runs a loop of its own on this thread: counts its waits. */
static __thread unsigned *wait_probe_hits;

/* Submits the multishot poll of libevent's epoll descriptor if none is in flight. */
static void poll_epfd(struct net_uring *r)
{
    if (r->poll_armed)
        return;
    struct io_uring_sqe *sqe = ur_sqe(r);
    if (!sqe)
        return; /* the kernel refuses the queue: the wait below says so again */
    io_uring_prep_poll_multishot(sqe, r->epfd, POLLIN);
    io_uring_sqe_set_data64(sqe, UR_POLL_UD);
    r->poll_armed = true;
}

/* libevent's wait, on a worker whose ring waits: what epoll_wait() would return, after
 * sleeping in io_uring_enter instead. The ring's completions are reported as the quiet fd's
 * readability, which ends the loop's iteration; net_uring_turn() then handles them. */
static int ring_wait(struct net_worker *w, int epfd, struct epoll_event *events, int maxevents,
                     int timeout)
{
    struct net_uring *r = w->ur;
    r->wait_seen = true;
    /* Descriptors that may be ready (the poll fired, or the last look found some: libevent's
     * level-triggered ones stay ready without a new wake-up of the poll): look first. */
    if (r->epoll_check || timeout == 0) {
        int n = epoll_pwait(epfd, events, maxevents, 0, NULL);
        r->epoll_check = n > 0;
        if (n != 0 || timeout == 0)
            return n;
    }
    poll_epfd(r);
    int n = -1;
    if (!io_uring_cq_ready(&r->ring)) {
        struct __kernel_timespec ts, *tsp = NULL;
        if (timeout > 0) {
            ts.tv_sec = timeout / 1000;
            ts.tv_nsec = (long long)(timeout % 1000) * 1000000;
            tsp = &ts;
        }
        struct io_uring_cqe *cqe;
        /* -ETIME: libevent's timeout; -EINTR: a signal; -EBUSY: completions overflowed (the
         * pass takes them). Anything else is a ring the kernel will not wait on: sleep in epoll
         * for at most a millisecond rather than turn the loop round without sleeping. */
        int rc = io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, tsp, NULL);
        if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN) {
            n = epoll_pwait(epfd, events, maxevents, timeout < 0 || timeout > 1 ? 1 : timeout,
                            NULL);
            n = n < 0 ? 0 : n;
            r->epoll_check = n > 0;
        }
    }
    if (n < 0) {
        unsigned head;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&r->ring, head, cqe)
        {
            if (cqe->user_data == UR_POLL_UD) {
                r->epoll_check = true;
                break;
            }
        }
        n = 0;
        if (r->epoll_check) {
            n = epoll_pwait(epfd, events, maxevents, 0, NULL);
            n = n < 0 ? 0 : n;
            r->epoll_check = n > 0;
        }
    }
    if (n < maxevents && io_uring_cq_ready(&r->ring)) {
        memset(&events[n], 0, sizeof events[n]);
        events[n].events = EPOLLIN;
        events[n].data.fd = r->quiet_fd;
        n++;
    }
    return n;
}

/* libevent's wait, on a worker with the loop wait. A receive wakes the sleeping worker as task
 * work, which the kernel runs on the way out of epoll_wait, and the wait ends with EINTR. Left
 * to libevent, that is a turn of its loop and a second epoll_wait to find the ring readable;
 * here the ring's readability is reported at once, so a wake-up costs one epoll_wait, as on the
 * epoll path. Other ready descriptors stay ready (libevent's are level-triggered) for the next
 * wait. */
static int loop_wait(struct net_worker *w, int epfd, struct epoll_event *events, int maxevents,
                     int timeout)
{
    struct net_uring *r = w->ur;
    int n = epoll_pwait(epfd, events, maxevents, timeout, NULL);
    if (n >= 0 || errno != EINTR || !(io_uring_cq_ready(&r->ring) || kernel_work(r)))
        return n;
    NET_COUNT(w->ctr.udp_ring_wakeups, 1);
    memset(&events[0], 0, sizeof events[0]);
    events[0].events = EPOLLIN;
    events[0].data.fd = r->ring.ring_fd;
    return 1;
}

/* libevent's epoll backend waits here: the dynamic linker finds this program's definition
 * before glibc's. */
int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
    if (wait_probe_hits)
        (*wait_probe_hits)++;
    struct net_worker *w = waiter;
    if (w && maxevents > 0) {
        struct net_uring *r = w->ur;
        if (r->epfd < 0)
            r->epfd = epfd; /* the worker's loop is the only one on this thread */
        if (epfd == r->epfd)
            return r->defer ? ring_wait(w, epfd, events, maxevents, timeout)
                            : loop_wait(w, epfd, events, maxevents, timeout);
    }
    return epoll_pwait(epfd, events, maxevents, timeout, NULL);
}

static void probe_noop(evutil_socket_t fd, short what, void *arg)
{
    ML_UNUSED(fd);
    ML_UNUSED(what);
    ML_UNUSED(arg);
}

/* A small ring with the given setup flags, for a probe; 0 or -errno. */
static int probe_ring(struct io_uring *ring, unsigned flags)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = flags;
    p.cq_entries = 16;
    return io_uring_queue_init_params(8, ring, &p);
}

int net_uring_wait_probe(char *why, size_t whylen)
{
    struct io_uring ring;
    int rc = probe_ring(&ring, UR_SETUP_DEFER);
    if (rc < 0)
        return ml_err(why, whylen, "IORING_SETUP_DEFER_TASKRUN refused: %s (Linux 6.1 or later)",
                      strerror(-rc));
    io_uring_queue_exit(&ring);
    /* A loop of libevent's own, one turn without blocking: does its wait come through here? */
    struct event_base *base = event_base_new();
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct event *ev = base && efd >= 0 ? event_new(base, efd, EV_READ, probe_noop, NULL) : NULL;
    unsigned hits = 0;
    rc = -1;
    if (!ev || event_add(ev, NULL) < 0) {
        ml_err(why, whylen, "cannot make a libevent loop to probe");
    } else if (strcmp(event_base_get_method(base), "epoll") != 0) {
        ml_err(why, whylen, "libevent uses its %s backend, not epoll", event_base_get_method(base));
    } else {
        wait_probe_hits = &hits;
        (void)event_base_loop(base, EVLOOP_NONBLOCK);
        wait_probe_hits = NULL;
        if (hits)
            rc = 0;
        else
            ml_err(why, whylen, "libevent's epoll_wait calls do not reach meetlited's");
    }
    if (ev)
        event_free(ev);
    if (efd >= 0)
        close(efd);
    if (base)
        event_base_free(base);
    return rc;
}

int net_uring_wait_select(enum net_uring_wait requested, const char *probe_err,
                          enum net_uring_wait *chosen, char *note, size_t notelen, char *err,
                          size_t errlen)
{
    char why[200] = "";
    *chosen = NET_URING_WAIT_LOOP;
    if (requested != NET_URING_WAIT_RING) {
        ml_snprintf(note, notelen, "; workers wait in epoll_wait (net.uring-wait = loop)");
        return 0;
    }
    int rc = probe_err ? (ml_snprintf(why, sizeof why, "%s", probe_err), -1)
                       : net_uring_wait_probe(why, sizeof why);
    if (rc < 0)
        return ml_err(err, errlen,
                      "net.uring-wait = ring, but a worker cannot wait in its ring: %s", why);
    *chosen = NET_URING_WAIT_RING;
    ml_snprintf(note, notelen, "; workers wait in io_uring_enter (net.uring-wait = ring)");
    return 0;
}

/* ---------------------------------------------------------------- lifetime */

static void *map_bytes(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static size_t page_round(size_t n)
{
    long pg = sysconf(_SC_PAGESIZE);
    size_t p = pg > 0 ? (size_t)pg : 4096;
    return (n + p - 1) / p * p;
}

void net_uring_free(struct net_uring *r)
{
    if (!r)
        return;
    if (r->ev)
        event_free(r->ev);
    if (r->ring_ok)
        io_uring_queue_exit(&r->ring); /* the kernel lets go of the buffers here */
    if (r->br)
        munmap(r->br, r->br_bytes);
    if (r->bufs)
        munmap(r->bufs, r->bufs_bytes);
    free(r->refs);
    free(r->free);
    free(r->tx);
    if (r->placeholder >= 0)
        close(r->placeholder);
    if (r->quiet_fd >= 0)
        close(r->quiet_fd);
    free(r);
}

static const char *setup_error(int e)
{
    switch (e) {
    case ENOSYS:
        return "io_uring_setup: not implemented (a kernel without io_uring, or a seccomp filter)";
    case EPERM:
    case EACCES:
        return "io_uring_setup: not permitted (sysctl kernel.io_uring_disabled, or a seccomp "
               "filter)";
    case EINVAL:
        return "io_uring_setup: flags refused (Linux 6.0 or later is needed)";
    default:
        return NULL;
    }
}

struct net_uring *net_uring_new(const struct net_settings *set, char *err, size_t errlen)
{
    struct net_uring *r = calloc(1, sizeof *r);
    if (!r) {
        ml_err(err, errlen, "out of memory");
        return NULL;
    }
    r->placeholder = -1;
    r->quiet_fd = -1;
    r->epfd = -1;
    r->defer = set->wait == NET_URING_WAIT_RING;
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    /* Made on the main thread, used by the worker's: the ring starts disabled, and enabling it
     * on the worker's thread makes that thread its only submitter. */
    p.flags = (r->defer ? UR_SETUP_DEFER : UR_SETUP_FLAGS) | IORING_SETUP_R_DISABLED;
    p.cq_entries = UR_CQ_ENTRIES;
    int rc = io_uring_queue_init_params(UR_SQ_ENTRIES, &r->ring, &p);
    if (rc < 0) {
        const char *why = setup_error(-rc);
        ml_err(err, errlen, "io_uring_setup: %s", why ? why : strerror(-rc));
        free(r);
        return NULL;
    }
    r->ring_ok = true;
    r->placeholder = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (r->placeholder < 0) {
        ml_err(err, errlen, "io_uring: socket(AF_UNIX): %s", strerror(errno));
        goto fail;
    }
    r->nbufs = set->uring_buffers ? set->uring_buffers : 512;
    r->batch = set->udp_batch && set->udp_batch <= NET_MAX_BATCH ? set->udp_batch : NET_MAX_BATCH;
    r->br_bytes = page_round(r->nbufs * sizeof(struct io_uring_buf));
    r->bufs_bytes = page_round((size_t)r->nbufs * NET_RX_SLOT);
    r->br = map_bytes(r->br_bytes);
    r->bufs = map_bytes(r->bufs_bytes);
    r->refs = calloc(r->nbufs, sizeof *r->refs);
    r->free = calloc(r->nbufs, sizeof *r->free);
    r->tx = calloc(UR_TX_SLOTS, sizeof *r->tx);
    if (!r->br || !r->bufs || !r->refs || !r->free || !r->tx) {
        ml_err(err, errlen, "out of memory for %u io_uring receive buffers", r->nbufs);
        goto fail;
    }
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)r->br;
    reg.ring_entries = r->nbufs;
    reg.bgid = UR_BGID;
    rc = io_uring_register_buf_ring(&r->ring, &reg, 0);
    if (rc < 0) {
        ml_err(err, errlen, "io_uring: cannot register the buffer ring: %s", strerror(-rc));
        goto fail;
    }
    io_uring_buf_ring_init(r->br);
    for (unsigned i = 0; i < r->nbufs; i++)
        r->free[r->nfree++] = (uint16_t)(r->nbufs - 1 - i); /* buffer 0 on top */
    r->target = r->nbufs < UR_OFFER_MIN ? r->nbufs : UR_OFFER_MIN;
    buf_offer(r);
    for (uint32_t i = 0; i < UR_TX_SLOTS; i++)
        r->tx[i].next = i + 1 < UR_TX_SLOTS ? i + 1 : UR_NONE;
    r->tx_free = 0;
    r->rx_msg.msg_namelen = UR_NAMELEN;
    return r;
fail:
    net_uring_free(r);
    return NULL;
}

int net_uring_start(struct net_worker *w, char *err, size_t errlen)
{
    struct net_uring *r = w->ur;
    int rc = io_uring_register(r->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
    if (rc < 0)
        return ml_err(err, errlen, "io_uring: cannot enable the ring: %s", strerror(-rc));
    if (r->defer) {
        r->quiet_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (r->quiet_fd < 0)
            return ml_err(err, errlen, "io_uring: eventfd: %s", strerror(errno));
    }
    r->ev = event_new(w->base, r->defer ? r->quiet_fd : r->ring.ring_fd, EV_READ | EV_PERSIST,
                      ring_readable, w);
    if (!r->ev || event_add(r->ev, NULL) < 0)
        return ml_err(err, errlen, "io_uring: cannot watch the ring");
    waiter = w;
    if (r->defer) {
        /* The probe saw it; a turn of the loop (nothing is armed yet) makes sure. */
        (void)event_base_loop(w->base, EVLOOP_NONBLOCK);
        if (!r->wait_seen) {
            waiter = NULL;
            return ml_err(err, errlen, "io_uring: the loop's wait did not come to the ring");
        }
    }
    return 0;
}

void net_uring_stop(struct net_worker *w)
{
    struct net_uring *r = w->ur;
    /* Every socket is closed by now and its receive being cancelled; cancel whatever is left
     * too, then take the completions until the kernel holds nothing of ours. */
    r->stopping = true;
    txq_flush(w);
    struct io_uring_sqe *sqe = ur_sqe(r);
    if (sqe) {
        io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, UR_CANCEL);
    }
    int64_t deadline = ml_now_ms() + 2000;
    while ((r->armed || r->tx_busy || r->rearm_head) && ml_now_ms() < deadline) {
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
        struct io_uring_cqe *cqe;
        (void)io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts, NULL);
        reap(w);
    }
    if (r->armed || r->tx_busy)
        ML_ERROR("net", "worker %u: io_uring still held %u receives and %u sends at exit", w->id,
                 r->armed, r->tx_busy);
    if (r->ev)
        event_del(r->ev);
    waiter = NULL;
}

/* ---------------------------------------------------------------- choosing at start */

/* Waits (bounded) for the completion of user_data ud; 1 when it came, 0 when not, -1 on an
 * error of io_uring_enter. The completion's result and flags are returned. */
static int probe_wait(struct io_uring *ring, uint64_t ud, int *res, unsigned *flags)
{
    int64_t deadline = ml_now_ms() + 1000;
    while (ml_now_ms() < deadline) {
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};
        struct io_uring_cqe *cqe;
        int e = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
        if (e == -ETIME || e == -EINTR)
            continue;
        if (e < 0)
            return -1;
        uint64_t got = cqe->user_data;
        *res = cqe->res;
        *flags = cqe->flags;
        io_uring_cqe_seen(ring, cqe);
        if (got == ud)
            return 1;
    }
    return 0;
}

/* A whole round trip over an AF_UNIX datagram pair (no network needed): a send request, a
 * multishot receive into a buffer ring, their completions, and the receive's cancellation. */
static int probe_roundtrip(struct io_uring *ring, char *why, size_t whylen)
{
    static const char ping[] = "meetlite";
    int sv[2] = {-1, -1};
    size_t brbytes = page_round(2 * sizeof(struct io_uring_buf));
    struct io_uring_buf_ring *br = map_bytes(brbytes);
    uint8_t *buf = calloc(2, 256);
    bool registered = false, armed = false;
    int rc = -1, res = 0;
    unsigned flags = 0;
    if (!br || !buf) {
        ml_err(why, whylen, "out of memory");
        goto out;
    }
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
        ml_err(why, whylen, "socketpair: %s", strerror(errno));
        goto out;
    }
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)br;
    reg.ring_entries = 2;
    reg.bgid = UR_BGID;
    int e = io_uring_register_buf_ring(ring, &reg, 0);
    if (e < 0) {
        ml_err(why, whylen, "provided buffer rings refused: %s (Linux 5.19 or later is needed)",
               strerror(-e));
        goto out;
    }
    registered = true;
    io_uring_buf_ring_init(br);
    for (int i = 0; i < 2; i++)
        io_uring_buf_ring_add(br, buf + i * 256, 256, (unsigned short)i, io_uring_buf_ring_mask(2),
                              i);
    io_uring_buf_ring_advance(br, 2);
    struct iovec iov = {.iov_base = (void *)ping, .iov_len = sizeof ping};
    struct msghdr smsg, rmsg;
    memset(&smsg, 0, sizeof smsg);
    memset(&rmsg, 0, sizeof rmsg);
    smsg.msg_iov = &iov;
    smsg.msg_iovlen = 1;
    rmsg.msg_namelen = sizeof(struct sockaddr_un);
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    io_uring_prep_sendmsg(sqe, sv[1], &smsg, MSG_DONTWAIT);
    io_uring_sqe_set_data64(sqe, UR_SEND);
    sqe = io_uring_get_sqe(ring);
    io_uring_prep_recvmsg_multishot(sqe, sv[0], &rmsg, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = UR_BGID;
    io_uring_sqe_set_data64(sqe, UR_RECV);
    e = io_uring_submit(ring);
    if (e < 0) {
        ml_err(why, whylen, "io_uring_enter: %s", strerror(-e));
        goto out;
    }
    armed = true;
    e = probe_wait(ring, UR_SEND, &res, &flags);
    if (e <= 0 || res < 0) {
        ml_err(why, whylen, "sendmsg request: %s",
               e < 0    ? "io_uring_enter failed"
               : e == 0 ? "no completion"
                        : strerror(-res));
        goto out;
    }
    e = probe_wait(ring, UR_RECV, &res, &flags);
    if (e <= 0 || res < 0 || !(flags & IORING_CQE_F_BUFFER)) {
        ml_err(why, whylen, "multishot recvmsg into provided buffers: %s (Linux 6.0 or later)",
               e < 0    ? "io_uring_enter failed"
               : e == 0 ? "no completion"
                        : strerror(-res));
        armed = e > 0 && (flags & IORING_CQE_F_MORE);
        goto out;
    }
    armed = (flags & IORING_CQE_F_MORE) != 0;
    rc = 0;
out:
    if (armed) {
        /* the receive must be gone before its buffers are */
        sqe = io_uring_get_sqe(ring);
        if (sqe) {
            io_uring_prep_cancel64(sqe, UR_RECV, 0);
            io_uring_sqe_set_data64(sqe, UR_CANCEL);
            sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
            (void)io_uring_submit(ring);
        }
        while (probe_wait(ring, UR_RECV, &res, &flags) == 1 && (flags & IORING_CQE_F_MORE))
            ;
    }
    if (registered)
        (void)io_uring_unregister_buf_ring(ring, UR_BGID);
    if (sv[0] >= 0) {
        close(sv[0]);
        close(sv[1]);
    }
    if (br)
        munmap(br, brbytes);
    free(buf);
    return rc;
}

int net_uring_probe(char *why, size_t whylen)
{
    struct io_uring ring;
    int rc = probe_ring(&ring, UR_SETUP_FLAGS);
    if (rc < 0) {
        const char *msg = setup_error(-rc);
        if (msg)
            return ml_err(why, whylen, "%s", msg);
        return ml_err(why, whylen, "io_uring_setup: %s", strerror(-rc));
    }
    struct io_uring_probe *pr = io_uring_get_probe_ring(&ring);
    bool ops = pr && io_uring_opcode_supported(pr, IORING_OP_RECVMSG) &&
               io_uring_opcode_supported(pr, IORING_OP_SENDMSG) &&
               io_uring_opcode_supported(pr, IORING_OP_ASYNC_CANCEL);
    if (pr)
        io_uring_free_probe(pr);
    if (!ops) {
        io_uring_queue_exit(&ring);
        return ml_err(why, whylen, "the kernel lacks IORING_OP_RECVMSG, SENDMSG or ASYNC_CANCEL");
    }
    rc = probe_roundtrip(&ring, why, whylen);
    io_uring_queue_exit(&ring);
    return rc;
}

int net_io_select(enum net_io requested, const char *probe_err, bool *uring, char *note,
                  size_t notelen, char *err, size_t errlen)
{
    char why[200] = "";
    *uring = false;
    if (requested == NET_IO_EPOLL) {
        ml_snprintf(note, notelen, "epoll (net.io = epoll)");
        return 0;
    }
    int rc = probe_err ? (ml_snprintf(why, sizeof why, "%s", probe_err), -1)
                       : net_uring_probe(why, sizeof why);
    if (rc == 0) {
        *uring = true;
        ml_snprintf(note, notelen,
                    "io_uring (multishot receives into provided buffer rings, batched sends%s)",
                    requested == NET_IO_AUTO ? "; net.io = auto" : "");
        return 0;
    }
    if (requested == NET_IO_URING)
        return ml_err(err, errlen, "net.io = uring, but io_uring cannot serve UDP here: %s", why);
    ml_snprintf(note, notelen, "epoll (net.io = auto; io_uring unavailable: %s)", why);
    return 0;
}
