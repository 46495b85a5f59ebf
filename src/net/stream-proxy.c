/* The PROXY protocol at the start of a connection from a trusted proxy (net.proxy-protocol-from):
 * the header is read before anything else, TLS included (nginx's stream module sends it before
 * the client's ClientHello), and no byte past it, so the stream then starts on the client's
 * own bytes as if the client had connected: its address (the header's source) is the one
 * XOR-MAPPED-ADDRESS, limits, usage records and logs see. A connection from such a peer that
 * does not begin with a header is the proxy's own, and is served as it is. */
#include "config.h"

#include "net/net-int.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NET_PROXY_TIMEOUT_S 10 /* for the whole header to arrive */

struct net_proxy_wait {
    struct net_worker *w;
    struct net_stream *s; /* not on any list yet */
    int fd;
    struct event *ev;
    uint8_t buf[NET_PROXY_MAX]; /* the header's bytes read so far */
    size_t len;
    int64_t deadline_ms;                /* the header is whole by then, however it trickles in */
    struct net_proxy_wait *prev, *next; /* the worker's proxy_waits */
};

bool net_proxy_trusted(const struct net_engine *e, const struct sockaddr *peer)
{
    return ml_cidr_set_has(&e->proxy_from, peer);
}

static void unlink_wait(struct net_proxy_wait *p)
{
    ML_DLIST_UNLINK(p->w->proxy_waits, p);
}

/* Ends the wait; with begin, the connection goes on as a stream, otherwise it is closed. */
static void finish(struct net_proxy_wait *p, bool begin, const char *why)
{
    struct net_worker *w = p->w;
    unlink_wait(p);
    event_free(p->ev);
    if (begin) {
        net_stream_begin(w, p->s, p->fd);
    } else {
        char a[ML_ADDR_STRLEN];
        ML_LOG_LIMITED(ML_LOG_NOTICE, "net", "closing %s connection from proxy %s: %s",
                       net_transport_name(p->s->transport),
                       ml_addr_str((struct sockaddr *)&p->s->peer, a, sizeof a), why);
        NET_COUNT(w->ctr.stream_refused, 1);
        close(p->fd);
        free(p->s);
    }
    free(p);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct net_proxy_wait *p = arg;
    if ((what & EV_TIMEOUT) || ml_now_ms() >= p->deadline_ms) {
        finish(p, false, "no complete PROXY header in time");
        return;
    }
    /* Look without taking: only the header's bytes are taken from the socket */
    ssize_t n = recv(fd, p->buf + p->len, sizeof p->buf - p->len, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        finish(p, false, n == 0 ? "closed before its PROXY header" : strerror(errno));
        return;
    }
    struct net_proxy_hdr h;
    enum net_proxy_rc rc = net_proxy_parse(p->buf, p->len + (size_t)n, &h);
    size_t take = 0;
    switch (rc) {
    case NET_PROXY_NONE:
        if (p->len == 0) { /* the proxy's own connection (a health check): nothing taken */
            finish(p, true, NULL);
            return;
        }
        finish(p, false, "not a PROXY header");
        return;
    case NET_PROXY_BAD:
        finish(p, false, "malformed PROXY header");
        return;
    case NET_PROXY_MORE:
        take = (size_t)n; /* all of it belongs to the header: taken, or the socket stays readable */
        break;
    case NET_PROXY_DONE:
        take = h.len - p->len;
        break;
    }
    ssize_t got = recv(fd, p->buf + p->len, take, 0);
    if (got != (ssize_t)take) {
        finish(p, false, "short read of its PROXY header");
        return;
    }
    p->len += take;
    if (rc == NET_PROXY_MORE)
        return;
    if (h.has_addr) {
        struct sockaddr_storage v4;
        if (ml_addr_embedded_v4((struct sockaddr *)&h.src, &v4, ML_CANON_MAPPED))
            h.src = v4;
        p->s->peer = h.src;
    }
    finish(p, true, NULL);
}

void net_proxy_wait(struct net_worker *w, struct net_stream *s, int fd)
{
    struct net_proxy_wait *p = calloc(1, sizeof *p);
    if (p)
        p->ev = event_new(w->base, fd, EV_READ | EV_PERSIST, on_readable, p);
    struct timeval tv = {.tv_sec = NET_PROXY_TIMEOUT_S};
    if (!p || !p->ev || event_add(p->ev, &tv) < 0) {
        if (p && p->ev)
            event_free(p->ev);
        free(p);
        free(s);
        close(fd);
        NET_COUNT(w->ctr.stream_refused, 1);
        return;
    }
    p->w = w;
    p->s = s;
    p->fd = fd;
    p->deadline_ms = ml_now_ms() + NET_PROXY_TIMEOUT_S * 1000;
    ML_DLIST_PUSH(w->proxy_waits, p);
}

void net_proxy_waits_close_all(struct net_worker *w)
{
    while (w->proxy_waits) {
        struct net_proxy_wait *p = w->proxy_waits;
        unlink_wait(p);
        event_free(p->ev);
        close(p->fd);
        free(p->s);
        free(p);
    }
}
