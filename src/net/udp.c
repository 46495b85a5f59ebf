/* UDP sockets on a worker: recvmmsg batches into worker-owned buffers, and a send queue flushed
 * with sendmmsg when a batch ends (the epoll path); with io_uring (uring.c) the same calls hand
 * the socket and its sends to the worker's ring. No heap allocation and no lock per packet. */
#include "config.h"

#include "net/net-int.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int net_udp_socket(const struct sockaddr *addr, const struct net_settings *set, bool reuseport,
                   bool *eaddrinuse, char *err, size_t errlen)
{
    char a[ML_ADDR_STRLEN];
    if (eaddrinuse)
        *eaddrinuse = false;
    int fd = socket(addr->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ml_err(err, errlen, "socket: %s", strerror(errno));
    int one = 1;
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        goto fail;
    if (addr->sa_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
        goto fail;
    if (set && set->udp_rcvbuf > 0) {
        int v = (int)set->udp_rcvbuf;
        /* As root SO_RCVBUFFORCE passes net.core.rmem_max; otherwise the capped size is fine. */
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) < 0)
            (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
    }
    if (set && set->udp_sndbuf > 0) {
        int v = (int)set->udp_sndbuf;
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v) < 0)
            (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    }
    if (bind(fd, addr, ml_addr_len(addr)) < 0) {
        if (eaddrinuse)
            *eaddrinuse = errno == EADDRINUSE;
        int e = errno;
        close(fd);
        return ml_err(err, errlen, "bind udp %s: %s", ml_addr_str(addr, a, sizeof a), strerror(e));
    }
    return fd;
fail:;
    int e = errno;
    close(fd);
    return ml_err(err, errlen, "setsockopt on udp %s: %s", ml_addr_str(addr, a, sizeof a),
                  strerror(e));
}

static unsigned hist_bucket(unsigned n)
{
    unsigned b = 0;
    while (n > 1 && b < 6) {
        n >>= 1;
        b++;
    }
    return b;
}

static void udp_readable(evutil_socket_t fd, short what, void *arg)
{
    struct net_udp *u = arg;
    struct net_worker *w = u->w;
    unsigned batch = w->e->set.udp_batch;
    ML_UNUSED(what);
    u->busy = true;
    for (int round = 0; round < NET_DRAIN_ROUNDS && !u->dead; round++) {
        /* Sends queued by earlier sockets of this wakeup may point into the first rx_used
         * slots (they go out together at the end of the loop iteration): receive after them,
         * or flush first when too few slots are left. */
        unsigned first = w->rx_used, vlen = NET_MAX_BATCH - first;
        if (vlen < batch && vlen < NET_RX_MIN_FREE) {
            net_worker_flush(w);
            first = 0;
            vlen = batch;
        } else if (vlen > batch) {
            vlen = batch;
        }
        for (unsigned i = 0; i < vlen; i++) {
            struct mmsghdr *m = &w->rx_msgs[i];
            w->rx_iov[i].iov_base = w->rx + (size_t)(first + i) * NET_RX_SLOT + NET_HEADROOM;
            w->rx_iov[i].iov_len = NET_MAX_DATAGRAM;
            memset(&m->msg_hdr, 0, sizeof m->msg_hdr);
            m->msg_hdr.msg_name = &w->pkts[i].from;
            m->msg_hdr.msg_namelen = sizeof w->pkts[i].from;
            m->msg_hdr.msg_iov = &w->rx_iov[i];
            m->msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(fd, w->rx_msgs, vlen, MSG_DONTWAIT, NULL);
        if (n <= 0)
            break;
        w->rx_used = first + (unsigned)n;
        unsigned kept = 0;
        uint64_t bytes = 0;
        for (int i = 0; i < n; i++) {
            struct mmsghdr *m = &w->rx_msgs[i];
            if (m->msg_hdr.msg_flags & MSG_TRUNC) {
                NET_COUNT(w->ctr.udp_rx_truncated, 1);
                continue;
            }
            struct net_pkt *p = &w->pkts[kept];
            if ((unsigned)i != kept)
                memcpy(&p->from, &w->pkts[i].from, sizeof p->from);
            p->data = w->rx_iov[i].iov_base;
            p->len = m->msg_len;
            p->fromlen = m->msg_hdr.msg_namelen;
            bytes += m->msg_len;
            kept++;
        }
        NET_COUNT(w->ctr.udp_rx_batches, 1);
        NET_COUNT(w->ctr.udp_rx_batch_hist[hist_bucket((unsigned)n)], 1);
        NET_COUNT(w->ctr.udp_rx_packets, kept);
        NET_COUNT(w->ctr.udp_rx_bytes, bytes);
        if (kept) {
            w->in_batch = true;
            u->cb(u, u->arg, w->pkts, kept);
            w->in_batch = false;
        }
        /* A flush inside the callback (a full queue, a socket closed) reset rx_used, but what
         * the callback queued after it may still point into this batch's slots. */
        if (w->rx_used < first + (unsigned)n)
            w->rx_used = first + (unsigned)n;
        if ((unsigned)n < vlen)
            break;
    }
    u->busy = false;
    if (u->dead)
        net_udp_free(u);
}

struct net_udp *net_udp_wrap(struct net_worker *w, int fd, int endpoint, net_udp_cb cb, void *arg)
{
    struct net_udp *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->w = w;
    u->fd = fd;
    u->endpoint = endpoint;
    u->cb = cb;
    u->arg = arg;
    socklen_t len = sizeof u->local;
    if (getsockname(fd, &u->local.sa, &len) < 0 || len > sizeof u->local)
        memset(&u->local, 0, sizeof u->local);
    return u;
}

int net_udp_arm(struct net_udp *u, char *err, size_t errlen)
{
    if (u->w->ur)
        return net_uring_arm(u, err, errlen);
    u->ev = event_new(u->w->base, u->fd, EV_READ | EV_PERSIST, udp_readable, u);
    if (!u->ev || event_add(u->ev, NULL) < 0)
        return ml_err(err, errlen, "cannot watch udp socket");
    return 0;
}

int net_udp_bind(struct net_worker *w, const struct sockaddr *addr, bool *eaddrinuse, char *err,
                 size_t errlen)
{
    return net_udp_socket(addr, &w->e->set, false, eaddrinuse, err, errlen);
}

struct net_udp *net_udp_adopt(struct net_worker *w, int fd, net_udp_cb cb, void *arg, char *err,
                              size_t errlen)
{
    struct net_udp *u = net_udp_wrap(w, fd, -1, cb, arg);
    if (!u) {
        close(fd);
        ml_err(err, errlen, "out of memory");
        return NULL;
    }
    if (net_udp_arm(u, err, errlen) < 0) {
        net_udp_free(u);
        return NULL;
    }
    return u;
}

struct net_udp *net_udp_open(struct net_worker *w, const struct sockaddr *addr, net_udp_cb cb,
                             void *arg, bool *eaddrinuse, char *err, size_t errlen)
{
    int fd = net_udp_bind(w, addr, eaddrinuse, err, errlen);
    if (fd < 0)
        return NULL;
    return net_udp_adopt(w, fd, cb, arg, err, errlen);
}

void net_udp_free(struct net_udp *u)
{
    if (u->ev)
        event_free(u->ev);
    if (u->fd >= 0)
        close(u->fd);
    free(u);
}

void net_udp_close(struct net_udp *u)
{
    if (!u || u->dead)
        return;
    if (u->w->ur) {
        /* the fd stays open until the kernel lets go of the socket: queued sends may name it */
        net_uring_close(u);
        return;
    }
    /* Queued datagrams may name this fd: send them before it closes. */
    net_worker_flush(u->w);
    if (u->ev)
        event_del(u->ev);
    if (u->busy) {
        u->dead = true;
        return;
    }
    net_udp_free(u);
}

const struct sockaddr *net_udp_local(const struct net_udp *u)
{
    return &u->local.sa;
}

int net_udp_fd(const struct net_udp *u)
{
    return u->fd;
}

int net_udp_endpoint(const struct net_udp *u)
{
    return u->endpoint;
}

static int send_now(struct net_udp *u, const struct sockaddr *to, const void *data, size_t len)
{
    struct net_worker *w = u->w;
    ssize_t n = sendto(u->fd, data, len, MSG_DONTWAIT, to, ml_addr_len(to));
    if (n < 0) {
        NET_COUNT(w->ctr.udp_tx_dropped, 1);
        return -1;
    }
    NET_COUNT(w->ctr.udp_tx_packets, 1);
    NET_COUNT(w->ctr.udp_tx_bytes, len);
    return 0;
}

static int enqueue(struct net_udp *u, const struct sockaddr *to, const void *data, size_t len)
{
    struct net_worker *w = u->w;
    struct net_txq *q = &w->tx;
    if (q->n == NET_TXQ_LEN)
        net_worker_flush(w);
    unsigned i = q->n++;
    memcpy(&q->to[i], to, ml_addr_len(to));
    q->fd[i] = u->fd;
    q->iov[i].iov_base = (void *)data;
    q->iov[i].iov_len = len;
    return 0;
}

int net_udp_send_ref(struct net_udp *u, const struct sockaddr *to, const void *data, size_t len)
{
    if (u->dead)
        return -1;
    if (!u->w->in_batch)
        return send_now(u, to, data, len);
    if (u->w->ur)
        return net_uring_send(u, to, data, len, false) == 0 ? 0 : send_now(u, to, data, len);
    return enqueue(u, to, data, len);
}

int net_udp_send(struct net_udp *u, const struct sockaddr *to, const void *data, size_t len)
{
    struct net_worker *w = u->w;
    if (u->dead)
        return -1;
    if (!w->in_batch || len > NET_TX_ARENA / 4)
        return send_now(u, to, data, len);
    if (w->ur)
        return net_uring_send(u, to, data, len, true) == 0 ? 0 : send_now(u, to, data, len);
    /* Flush before copying: a flush empties the arena, so the copy must not be made before a
     * flush that enqueue() would do for a full queue (later copies would overwrite it). */
    if (w->tx.n == NET_TXQ_LEN || w->tx.arena_used + len > NET_TX_ARENA)
        net_worker_flush(w);
    uint8_t *copy = w->tx.arena + w->tx.arena_used;
    memcpy(copy, data, len);
    w->tx.arena_used += (len + 7) & ~(size_t)7;
    return enqueue(u, to, copy, len);
}

void net_txq_sendmmsg(struct net_txq *q, unsigned i, unsigned j, struct net_tx_count *c)
{
    for (unsigned k = i; k < j; k++) {
        struct msghdr *h = &q->msgs[k].msg_hdr;
        memset(h, 0, sizeof *h);
        h->msg_name = &q->to[k];
        h->msg_namelen = ml_addr_len((struct sockaddr *)&q->to[k]);
        h->msg_iov = &q->iov[k];
        h->msg_iovlen = 1;
    }
    unsigned k = i;
    while (k < j) {
        int n = sendmmsg(q->fd[i], &q->msgs[k], j - k, MSG_DONTWAIT);
        if (n > 0) {
            for (int m = 0; m < n; m++)
                c->bytes += q->iov[k + (unsigned)m].iov_len;
            c->sent += (unsigned)n;
            k += (unsigned)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == ENOBUFS || errno == EINTR)) {
            /* The socket buffer is full: the rest of this run is dropped, and counted. */
            c->dropped += j - k;
            break;
        }
        /* An error about one destination (unreachable, refused): skip that datagram. */
        c->dropped++;
        k++;
    }
}

void net_worker_turn(struct net_worker *w)
{
    if (w->ur)
        net_uring_turn(w);
    else
        net_worker_flush(w);
}

void net_worker_flush(struct net_worker *w)
{
    if (w->ur) {
        net_uring_flush(w);
        return;
    }
    struct net_txq *q = &w->tx;
    unsigned i = 0;
    struct net_tx_count c = {0, 0, 0};
    while (i < q->n) {
        /* A run of datagrams on the same socket goes out in one sendmmsg. */
        unsigned j = i;
        while (j < q->n && q->fd[j] == q->fd[i])
            j++;
        net_txq_sendmmsg(q, i, j, &c);
        i = j;
    }
    q->n = 0;
    q->arena_used = 0;
    w->rx_used = 0; /* nothing queued points into the receive slots any more */
    if (c.sent) {
        NET_COUNT(w->ctr.udp_tx_packets, c.sent);
        NET_COUNT(w->ctr.udp_tx_bytes, c.bytes);
    }
    if (c.dropped)
        NET_COUNT(w->ctr.udp_tx_dropped, c.dropped);
}
