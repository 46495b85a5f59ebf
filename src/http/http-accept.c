/* The servers' own accept: the listening socket is ours, watched on the service thread's libev
 * loop, and each accepted connection is handed to lws (lws_adopt_socket_vhost), whose vhost
 * listens on nothing. Doing the accept here, not in lws, gives three things lws 4.1 lacks:
 *  - at the descriptor limit, lws logs "accept: errno 24" and polls the still-readable socket
 *    again at once, a busy loop that floods the log; here accepting pauses (50 ms, doubling to a
 *    second while it goes on) with a log line per pause, and resumes by itself;
 *  - the connection limit and the per-address cap are applied before lws sees the socket, with
 *    the peer address accept() gave, and counted (http_server_conn_stats);
 *  - lws's own limit (fd_limit_per_thread) is left alone: set below RLIMIT_NOFILE it switches lws
 *    to a linear search of its connections on every event (docs/benchmarks.md).
 * Each server also keeps one descriptor in reserve (on /dev/null): when accept() fails for want
 * of descriptors, the reserve is closed and the next waiting connection accepted in its place and
 * served, so that the admin listener, which nobody floods, answers its health probes one at a
 * time even while the process is at its limit. The reserve is taken back as soon as a
 * connection of this server closes (its descriptor is then free, and this thread is the first
 * to ask for it). The TURN listeners do without: their clients are the flood.
 * Everything here runs on the service thread, except open and close (before it starts, after it
 * stopped). */
#include "config.h"

#include "http/http-int.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HTTP_ACCEPT_BATCH 64 /* connections accepted per wakeup before other work */
#define HTTP_PAUSE_MIN_MS 50
#define HTTP_PAUSE_MAX_MS 1000
#define HTTP_BACKLOG 1024

struct http_listener {
    struct http_server *srv;
    int fd;
    ev_io io;
    ev_timer retry;
    int reserve;       /* a descriptor held for the next accept at the limit; -1: spent */
    unsigned pause_ms; /* 0: accepting */
    unsigned pauses;   /* in this episode */
    int64_t paused_at_ms;
};

int http_listen_open(struct http_server *srv, const struct sockaddr *addr, char *err, size_t errlen)
{
    char a[ML_ADDR_STRLEN];
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, addr, ml_addr_len(addr)) < 0 || listen(fd, HTTP_BACKLOG) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return ml_err(err, errlen, "%s.listen: cannot listen on %s: %s", srv->cfg.section,
                      ml_addr_str(addr, a, sizeof a), strerror(e));
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        srv->port = ml_addr_port((struct sockaddr *)&ss);
    struct http_listener *l = ml_xcalloc(1, sizeof *l);
    l->srv = srv;
    l->fd = fd;
    l->reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
    srv->listener = l;
    return 0;
}

static void take_reserve(struct http_listener *l)
{
    if (l->reserve < 0)
        l->reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void count(uint64_t *c)
{
    ML_COUNT(*c, 1);
}

static void pause_accepting(struct http_listener *l, int e)
{
    struct http_server *srv = l->srv;
    struct ev_loop *loop = srv->evloop;
    if (l->pause_ms == 0) {
        l->pause_ms = HTTP_PAUSE_MIN_MS;
        l->paused_at_ms = ml_now_ms();
    } else if (l->pause_ms < HTTP_PAUSE_MAX_MS) {
        l->pause_ms = l->pause_ms * 2 > HTTP_PAUSE_MAX_MS ? HTTP_PAUSE_MAX_MS : l->pause_ms * 2;
    }
    l->pauses++;
    count(&srv->cstats.accept_paused);
    ev_io_stop(loop, &l->io);
    ev_timer_set(&l->retry, l->pause_ms / 1000.0, 0.);
    ev_timer_start(loop, &l->retry);
    ML_LOG_LIMITED(ML_LOG_WARN, srv->cfg.name,
                   "%s.listen: accept: %s; not accepting for %u ms (pause %u since %lld ms ago; "
                   "open connections are still served)",
                   srv->cfg.section, strerror(e), l->pause_ms, l->pauses,
                   (long long)(ml_now_ms() - l->paused_at_ms));
}

static void on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct http_listener *l = t->data;
    ML_UNUSED(revents);
    take_reserve(l);
    ev_io_start(loop, &l->io);
}

void http_admit(struct http_server *srv, int fd, const struct sockaddr *peer, bool adopted,
                bool tls)
{
    char a[ML_ADDR_STRLEN];
    struct lws_vhost *vh = tls ? srv->vhost_tls : srv->vhost;
    if (!vh) {
        close(fd);
        ML_LOG_LIMITED(ML_LOG_WARN, srv->cfg.name,
                       "a TLS connection handed over, and no vhost "
                       "for it");
        return;
    }
    if (srv->conns >= srv->max_connections) {
        count(&srv->cstats.refused_limit);
        close(fd);
        ML_LOG_LIMITED(ML_LOG_WARN, srv->cfg.name,
                       "connection refused: %s.max-connections=%lld open already", srv->cfg.section,
                       srv->max_connections);
        return;
    }
    /* A trusted proxy's connections carry every client behind it: not capped per address. */
    bool cap = srv->addrs && !ml_cidr_set_has(srv->cfg.trusted_proxies, peer);
    if (cap && !ml_addr_counts_take(srv->addrs, peer)) {
        count(&srv->cstats.refused_addr);
        close(fd);
        ML_LOG_LIMITED(ML_LOG_WARN, srv->cfg.name,
                       "connection from %s refused: %s.max-connections-per-address=%u open from "
                       "it already",
                       ml_ip_str(peer, a, sizeof a), srv->cfg.section,
                       ml_addr_counts_max(srv->addrs));
        return;
    }
    struct http_conn_info *info = NULL;
    if (cap || adopted) {
        info = calloc(1, sizeof *info);
        if (!info) {
            if (cap)
                ml_addr_counts_put(srv->addrs, peer);
            close(fd);
            return;
        }
        memcpy(&info->peer, peer, ml_addr_len(peer));
        info->counted = cap;
        info->adopted = adopted;
    }
    /* No Nagle: lws (4.1) sets no option on a socket it adopts, and a WebSocket frame written
     * while the client had not yet acknowledged the previous one waited for its delayed ACK,
     * 40 ms (1-3 % of signaling messages across nodes, docs/benchmarks.md). Harmless on a
     * socket that is not TCP. */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* as an accepted socket: HTTP, and TLS when the vhost has it (lws does the handshake);
     * closes fd when it fails */
    struct lws *wsi = lws_adopt_socket_vhost(vh, fd);
    if (!wsi) {
        if (info) {
            if (cap)
                ml_addr_counts_put(srv->addrs, peer);
            free(info);
        }
        if (adopted)
            ML_LOG_LIMITED(ML_LOG_WARN, srv->cfg.name, "cannot adopt a shared-port connection");
        return;
    }
    count(&srv->cstats.accepted);
    if (info)
        lws_set_opaque_user_data(wsi, info); /* given back by http_conn_gone */
}

void http_conn_gone(struct http_server *srv, struct lws *wsi)
{
    if (srv->listener)
        take_reserve(srv->listener); /* lws closed the socket before this callback */
    struct http_conn_info *info = lws_get_opaque_user_data(wsi);
    if (!info)
        return;
    lws_set_opaque_user_data(wsi, NULL);
    if (info->counted && srv->addrs)
        ml_addr_counts_put(srv->addrs, (struct sockaddr *)&info->peer);
    free(info);
}

static void on_readable(struct ev_loop *loop, ev_io *io, int revents)
{
    struct http_listener *l = io->data;
    struct http_server *srv = l->srv;
    ML_UNUSED(loop);
    ML_UNUSED(revents);
    for (int i = 0; i < HTTP_ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EMFILE || errno == ENFILE) && l->reserve >= 0) {
            close(l->reserve); /* one more connection, served with the reserve's place */
            l->reserve = -1;
            sl = sizeof ss;
            fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                int e = errno;
                take_reserve(l);
                errno = e;
            }
        }
        if (fd < 0) {
            int e = errno;
            if (e == EAGAIN || e == EWOULDBLOCK)
                return;
            if (e == EINTR || e == ECONNABORTED || e == EPROTO)
                continue;
            /* EMFILE, ENFILE, ENOBUFS, ENOMEM, or anything else that would repeat at once */
            pause_accepting(l, e);
            return;
        }
        if (l->pause_ms) {
            ML_LOG_LIMITED(ML_LOG_NOTICE, srv->cfg.name,
                           "%s.listen: accepting again after %lld ms (%u pauses for want of "
                           "descriptors)",
                           srv->cfg.section, (long long)(ml_now_ms() - l->paused_at_ms), l->pauses);
            l->pause_ms = 0;
            l->pauses = 0;
        }
        if (__atomic_load_n(&srv->stopping, __ATOMIC_ACQUIRE)) {
            close(fd);
            return;
        }
        http_admit(srv, fd, (struct sockaddr *)&ss, false, false);
    }
}

void http_listen_start(struct http_server *srv)
{
    struct http_listener *l = srv->listener;
    if (!l)
        return; /* no_listen: a shared listener hands connections over (http_server_adopt) */
    ev_io_init(&l->io, on_readable, l->fd, EV_READ);
    l->io.data = l;
    ev_timer_init(&l->retry, on_retry, 0., 0.);
    l->retry.data = l;
    ev_io_start(srv->evloop, &l->io);
}

void http_listen_close(struct http_server *srv)
{
    struct http_listener *l = srv->listener;
    if (!l)
        return;
    if (srv->evloop) {
        ev_io_stop(srv->evloop, &l->io);
        ev_timer_stop(srv->evloop, &l->retry);
    }
    close(l->fd);
    if (l->reserve >= 0)
        close(l->reserve);
    free(l);
    srv->listener = NULL;
}

void http_server_conn_stats(struct http_server *srv, struct http_conn_stats *out)
{
    out->open = (uint64_t)__atomic_load_n(&srv->conns, __ATOMIC_RELAXED);
    out->accepted = __atomic_load_n(&srv->cstats.accepted, __ATOMIC_RELAXED);
    out->refused_limit = __atomic_load_n(&srv->cstats.refused_limit, __ATOMIC_RELAXED);
    out->refused_addr = __atomic_load_n(&srv->cstats.refused_addr, __ATOMIC_RELAXED);
    out->accept_paused = __atomic_load_n(&srv->cstats.accept_paused, __ATOMIC_RELAXED);
    out->max_connections = srv->max_connections;
    out->max_per_addr = srv->addrs ? ml_addr_counts_max(srv->addrs) : 0;
}
