/* Raw TCP for TURN's TCP relay (RFC 6062): listening sockets on relayed addresses that no other
 * socket of the process shares, connections to and from peers that carry bytes as they are,
 * and the pipe that joins such a connection to a client's stream. The pipe moves evbuffer
 * chains (no copy) and bounds what waits toward each side: a side whose reader is slower is
 * not read until half of it has drained, so its TCP window closes instead of our memory
 * growing. Everything here runs on the owning worker's thread. */
#include "config.h"

#include "net/net-int.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NET_CONN_LINGER_S 5 /* seconds to flush output after net_conn_close */
#define NET_LISTEN_BACKLOG 64

/* ---------------------------------------------------------------- sockets and listeners */

int net_tcp_bind_exclusive(const struct sockaddr *addr, bool *eaddrinuse, char *err, size_t errlen)
{
    char a[ML_ADDR_STRLEN];
    if (eaddrinuse)
        *eaddrinuse = false;
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ml_err(err, errlen, "socket: %s", strerror(errno));
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        (addr->sa_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)) {
        int e = errno;
        close(fd);
        return ml_err(err, errlen, "setsockopt: %s", strerror(e));
    }
    /* Bound and listening without SO_REUSEPORT: a port that any socket of ours holds is refused,
     * at bind or, for two sockets bound at once (SO_REUSEADDR lets them), at listen, which
     * checks the port again. Only then SO_REUSEPORT, so that this allocation's outgoing
     * connections may bind beside it. */
    if (bind(fd, addr, ml_addr_len(addr)) < 0 || listen(fd, NET_LISTEN_BACKLOG) < 0) {
        int e = errno;
        if (eaddrinuse)
            *eaddrinuse = e == EADDRINUSE;
        close(fd);
        return ml_err(err, errlen, "listen tcp %s: %s", ml_addr_str(addr, a, sizeof a),
                      strerror(e));
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
        int e = errno;
        close(fd);
        return ml_err(err, errlen, "setsockopt SO_REUSEPORT: %s", strerror(e));
    }
    return fd;
}

static void listener_accept(struct net_acceptor *a, int fd, const struct sockaddr *sa,
                            socklen_t salen)
{
    struct net_listener *l = a->arg;
    ML_UNUSED(salen);
    l->cb(l, l->arg, fd, sa);
}

struct net_listener *net_listener_new(struct net_worker *w, int fd, net_accept_cb cb, void *arg,
                                      char *err, size_t errlen)
{
    struct net_listener *l = calloc(1, sizeof *l);
    if (!l) {
        close(fd);
        ml_err(err, errlen, "out of memory");
        return NULL;
    }
    l->w = w;
    l->cb = cb;
    l->arg = arg;
    l->acc = net_acceptor_new(w, fd, -1, listener_accept, l, err, errlen); /* listening */
    if (!l->acc) {
        free(l);
        return NULL;
    }
    return l;
}

void net_listener_free(struct net_listener *l)
{
    if (!l)
        return;
    net_acceptor_free(l->acc);
    free(l);
}

/* ---------------------------------------------------------------- connections */

static void pipe_unlink(struct net_conn *c);

static void conn_destroy(struct net_conn *c)
{
    struct net_worker *w = c->w;
    if (c->pipe)
        pipe_unlink(c);
    if (c->freed_pending)
        ML_DLIST_UNLINK(w->conns_dying, c);
    else
        ML_DLIST_UNLINK(w->conns, c);
    if (c->bev)
        bufferevent_free(c->bev);
    if (c->wake)
        event_free(c->wake);
    NET_COUNT(w->ctr.conn_open, (uint64_t)-1);
    free(c);
}

static void conn_schedule_destroy(struct net_conn *c)
{
    struct net_worker *w = c->w;
    if (c->freed_pending)
        return;
    ML_DLIST_UNLINK(w->conns, c);
    c->freed_pending = true;
    c->closing = true;
    c->cb = NULL;
    ML_DLIST_PUSH(w->conns_dying, c);
    if (c->bev)
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    event_active(w->reap, EV_READ, 0);
}

void net_conns_reap(struct net_worker *w)
{
    while (w->conns_dying)
        conn_destroy(w->conns_dying);
}

void net_conns_close_all(struct net_worker *w)
{
    while (w->conns)
        conn_destroy(w->conns);
    net_conns_reap(w);
}

static void pipe_to_stream(struct net_conn *c);

static void conn_read(struct bufferevent *bev, void *arg)
{
    struct net_conn *c = arg;
    ML_UNUSED(bev);
    if (c->pipe)
        pipe_to_stream(c);
}

static void conn_written(struct bufferevent *bev, void *arg)
{
    struct net_conn *c = arg;
    ML_UNUSED(bev);
    if (c->closing) {
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
            conn_schedule_destroy(c);
        return;
    }
    /* The write low-watermark is max/2: the stream may be read again. */
    struct net_stream *s = c->pipe;
    if (s && s->read_paused && !s->closing) {
        s->read_paused = false;
        bufferevent_enable(s->bev, EV_READ);
        net_pipe_from_stream(s);
    }
}

static void conn_event(struct bufferevent *bev, short what, void *arg)
{
    struct net_conn *c = arg;
    ML_UNUSED(bev);
    if (what & BEV_EVENT_CONNECTED) {
        c->connecting = false;
        bufferevent_set_timeouts(c->bev, NULL, NULL);
        if (c->cb)
            c->cb(c, c->arg, NET_CONN_CONNECTED);
        return;
    }
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)))
        return;
    if (c->closing) {
        conn_schedule_destroy(c); /* the linger ended, or the peer went away meanwhile */
        return;
    }
    if (c->connecting) {
        c->connecting = false;
        c->error = (what & BEV_EVENT_TIMEOUT) ? ETIMEDOUT : EVUTIL_SOCKET_ERROR();
        if (!c->error)
            c->error = ECONNREFUSED;
        if (c->cb)
            c->cb(c, c->arg, NET_CONN_FAILED);
        return;
    }
    /* The peer ended: what it sent before goes to the client, whatever the limit (the input
     * buffer is bounded by it already), then the owner decides. */
    struct net_stream *s = c->pipe;
    if (s && !s->closing) {
        struct evbuffer *in = bufferevent_get_input(c->bev);
        size_t n = evbuffer_get_length(in);
        if (n && bufferevent_write_buffer(s->bev, in) == 0) {
            c->from_peer += n;
            NET_COUNT(c->w->ctr.conn_bytes_in, n);
        }
    }
    if (c->cb)
        c->cb(c, c->arg, NET_CONN_CLOSED);
}

/* Resumes reading the peer once the stream's output has drained; see wire_drained. */
static void conn_wake(evutil_socket_t fd, short what, void *arg)
{
    struct net_conn *c = arg;
    ML_UNUSED(fd);
    ML_UNUSED(what);
    if (!c->read_paused || !c->pipe || c->closing)
        return;
    c->read_paused = false;
    bufferevent_enable(c->bev, EV_READ);
    pipe_to_stream(c);
}

static struct net_conn *conn_new(struct net_worker *w, int fd, net_conn_cb cb, void *arg)
{
    struct net_conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return NULL;
    }
    c->w = w;
    c->cb = cb;
    c->arg = arg;
    c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->wake = event_new(w->base, -1, 0, conn_wake, c);
    if (!c->bev || !c->wake) {
        if (c->bev)
            bufferevent_free(c->bev);
        else
            close(fd);
        if (c->wake)
            event_free(c->wake);
        free(c);
        return NULL;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    bufferevent_setcb(c->bev, conn_read, conn_written, conn_event, c);
    ML_DLIST_PUSH(w->conns, c);
    NET_COUNT(w->ctr.conn_open, 1);
    return c;
}

struct net_conn *net_conn_adopt(struct net_worker *w, int fd, net_conn_cb cb, void *arg)
{
    struct net_conn *c = conn_new(w, fd, cb, arg);
    if (!c)
        return NULL;
    socklen_t len = sizeof c->peer;
    if (getpeername(fd, (struct sockaddr *)&c->peer, &len) < 0)
        memset(&c->peer, 0, sizeof c->peer);
    /* Reading stays off until the pipe: the peer's bytes wait in the kernel. */
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_enable(c->bev, EV_WRITE);
    return c;
}

struct net_conn *net_conn_connect(struct net_worker *w, const struct sockaddr *local,
                                  const struct sockaddr *peer, int timeout_s, net_conn_cb cb,
                                  void *arg, char *err, size_t errlen)
{
    char a[ML_ADDR_STRLEN];
    int fd = socket(peer->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        ml_err(err, errlen, "socket: %s", strerror(errno));
        return NULL;
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        (peer->sa_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) ||
        bind(fd, local, ml_addr_len(local)) < 0) {
        int e = errno;
        close(fd);
        ml_err(err, errlen, "bind tcp %s: %s", ml_addr_str(local, a, sizeof a), strerror(e));
        return NULL;
    }
    struct net_conn *c = conn_new(w, fd, cb, arg);
    if (!c) {
        ml_err(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(&c->peer, peer, ml_addr_len(peer));
    c->connecting = true;
    struct timeval tv = {.tv_sec = timeout_s};
    bufferevent_set_timeouts(c->bev, NULL, &tv); /* the write timeout bounds the connect */
    /* A refusal known at once is reported from the loop, like a late one. */
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)peer, (int)ml_addr_len(peer)) < 0) {
        int e = errno;
        conn_destroy(c);
        ml_err(err, errlen, "connect to %s: %s", ml_addr_str(peer, a, sizeof a), strerror(e));
        return NULL;
    }
    bufferevent_disable(c->bev, EV_READ);
    return c;
}

const struct sockaddr *net_conn_peer(const struct net_conn *c)
{
    return (const struct sockaddr *)&c->peer;
}

int net_conn_error(const struct net_conn *c)
{
    return c->error;
}

void net_conn_bytes(const struct net_conn *c, uint64_t *from_peer, uint64_t *to_peer)
{
    *from_peer = c->from_peer;
    *to_peer = c->to_peer;
}

void net_conn_close(struct net_conn *c)
{
    if (!c || c->closing)
        return;
    c->closing = true;
    c->cb = NULL;
    if (c->pipe)
        pipe_unlink(c);
    bufferevent_disable(c->bev, EV_READ);
    if (c->connecting || evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        conn_schedule_destroy(c);
        return;
    }
    /* Let what the client sent drain to the peer, but not forever. */
    struct timeval linger = {.tv_sec = NET_CONN_LINGER_S};
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    bufferevent_set_timeouts(c->bev, NULL, &linger);
    bufferevent_enable(c->bev, EV_WRITE);
}

/* ---------------------------------------------------------------- the pipe */

/* Stream to peer: as much as fits under max; the stream is not read while the rest waits. */
void net_pipe_from_stream(struct net_stream *s)
{
    struct net_conn *c = s->pipe;
    if (!c || c->closing)
        return;
    struct evbuffer *in = bufferevent_get_input(s->bev);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t avail = evbuffer_get_length(in), queued = evbuffer_get_length(out);
    size_t room = queued < c->max ? c->max - queued : 0;
    size_t n = avail < room ? avail : room;
    if (n && evbuffer_remove_buffer(in, out, n) == (int)n) {
        c->to_peer += n;
        NET_COUNT(c->w->ctr.conn_bytes_out, n);
    }
    if (evbuffer_get_length(in) && !s->read_paused) {
        s->read_paused = true;
        bufferevent_disable(s->bev, EV_READ);
    }
}

/* Peer to stream, likewise; the peer is read again when the stream's output has drained. */
static void pipe_to_stream(struct net_conn *c)
{
    struct net_stream *s = c->pipe;
    if (!s || s->closing)
        return;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t avail = evbuffer_get_length(in), queued = net_stream_queued(s);
    size_t room = queued < c->max ? c->max - queued : 0;
    size_t n = avail < room ? avail : room;
    if (n && evbuffer_remove_buffer(in, bufferevent_get_output(s->bev), n) == (int)n) {
        c->from_peer += n;
        NET_COUNT(c->w->ctr.conn_bytes_in, n);
    }
    if (evbuffer_get_length(in) && !c->read_paused) {
        c->read_paused = true;
        bufferevent_disable(c->bev, EV_READ);
    }
}

/* Bytes left the stream's wire buffer (records for TLS, which the write callback of its filter
 * does not see). Called inside libevent's buffer operations, so it only wakes conn_wake. */
static void wire_drained(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct net_conn *c = arg;
    ML_UNUSED(buf);
    if (info->n_deleted && c->read_paused && c->pipe && net_stream_queued(c->pipe) <= c->max / 2)
        event_active(c->wake, EV_READ, 0);
}

static void pipe_unlink(struct net_conn *c)
{
    struct net_stream *s = c->pipe;
    if (c->wire_cb)
        evbuffer_remove_cb_entry(net_stream_wire_out(s), c->wire_cb);
    c->wire_cb = NULL;
    s->pipe = NULL;
    c->pipe = NULL;
}

/* The stream is being freed: what it had read still goes to the peer (bounded by its input
 * buffer's limit), and reading the peer stops until the owner closes the connection. */
void net_pipe_stream_gone(struct net_stream *s)
{
    struct net_conn *c = s->pipe;
    if (!c->closing) {
        struct evbuffer *in = bufferevent_get_input(s->bev);
        size_t n = evbuffer_get_length(in);
        if (n && bufferevent_write_buffer(c->bev, in) == 0) {
            c->to_peer += n;
            NET_COUNT(c->w->ctr.conn_bytes_out, n);
        }
        bufferevent_disable(c->bev, EV_READ);
    }
    pipe_unlink(c);
}

int net_conn_pipe(struct net_conn *c, struct net_stream *s, size_t max)
{
    if (c->pipe || s->pipe || c->closing || c->connecting || s->closing || s->handover_to >= 0 ||
        max < 2)
        return -1;
    c->wire_cb = evbuffer_add_cb(net_stream_wire_out(s), wire_drained, c);
    if (!c->wire_cb)
        return -1;
    c->pipe = s;
    s->pipe = c;
    net_stream_established(s); /* a data connection (RFC 6062) is set up */
    c->max = max;
    /* The peer's input holds at most max; its output calls back at max/2 to resume s. */
    bufferevent_setwatermark(c->bev, EV_READ, 0, max);
    bufferevent_setwatermark(c->bev, EV_WRITE, max / 2, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    /* Bytes the client sent right after its last frame go over from the loop: when this is
     * called from the handler of that frame, the frame itself is still in the input. */
    bufferevent_trigger(s->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS | BEV_TRIG_IGNORE_WATERMARKS);
    return 0;
}
