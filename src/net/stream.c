/* TCP and TLS client connections: accept on each worker's SO_REUSEPORT listener (within the
 * per-worker and per-address caps), cut the byte stream into frames with the handler's framing
 * rule, bound what is queued to slow readers and the time slow writers may take (a frame, and
 * the setup after connecting), and hand a connection over to another worker (socket, TLS
 * session and buffered bytes) when the handler says a frame belongs there. A piped stream
 * (tcpconn.c) is read as bytes instead.
 * A shared:// listener's connection is sniffed first: TURN goes on as here, HTTP goes to the
 * control plane (net_engine_set_http): a plain connection's socket itself, nothing read; a
 * ClientHello that offers ALPN http/1.1 likewise, the control plane doing TLS (clienthello.c
 * reads it); any other ClientHello starts TLS here, and then HTTP's decrypted bytes go to the
 * control plane through a socketpair. */
#include "config.h"

#include "net/net-int.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <sys/socket.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NET_CLOSE_LINGER_S 5            /* seconds to flush output after net_stream_close */
#define NET_STREAM_READ_MAX (64 * 1024) /* bytes per read from a stream's socket */
#define NET_TLS_RAW_IN_MAX (64 * 1024)  /* TLS records buffered before reading stops (> one) */

int net_tcp_listen_socket(const struct sockaddr *addr, bool *eaddrinuse, char *err, size_t errlen)
{
    char a[ML_ADDR_STRLEN];
    if (eaddrinuse)
        *eaddrinuse = false;
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ml_err(err, errlen, "socket: %s", strerror(errno));
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        (addr->sa_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)) {
        int e = errno;
        close(fd);
        return ml_err(err, errlen, "setsockopt: %s", strerror(e));
    }
    if (bind(fd, addr, ml_addr_len(addr)) < 0 || listen(fd, 1024) < 0) {
        int e = errno;
        if (eaddrinuse)
            *eaddrinuse = e == EADDRINUSE;
        close(fd);
        return ml_err(err, errlen, "listen tcp %s: %s", ml_addr_str(addr, a, sizeof a),
                      strerror(e));
    }
    return fd;
}

/* Frees the bufferevents and the TLS session. The filter is made without BEV_OPT_CLOSE_ON_FREE
 * (so that a session can move to another worker), so the socket's bufferevent and the session
 * are freed here; the filter keeps its reference on the former until it is finalized. */
static void stream_free_io(struct net_stream *s)
{
    if (s->deadline)
        event_free(s->deadline);
    s->deadline = NULL;
    if (s->bev)
        bufferevent_free(s->bev);
    if (s->raw)
        bufferevent_free(s->raw);
    if (s->ssl)
        SSL_free(s->ssl);
    s->bev = s->raw = NULL;
    s->ssl = NULL;
}

struct handover;
static struct handover *stream_take(struct net_stream *s);
static void peek_free(struct net_stream *s);
static void handover_post(struct net_worker *w, unsigned to, struct handover *ho);

/* Frees the stream and tells the handler; runs from the reaper or at stop, never inside a
 * handler call. A stream handed over leaves an empty shell here: its socket, session and
 * bytes are posted to the other worker once nothing here can touch them any more. */
static void stream_destroy(struct net_stream *s)
{
    struct net_worker *w = s->w;
    int to = s->handover_to;
    struct handover *ho = to >= 0 ? stream_take(s) : NULL;
    if (s->addr_held) /* a connection handed over keeps its place: stream_take moved it */
        ml_addr_counts_put(w->e->addrs, (struct sockaddr *)&s->peer);
    if (s->freed_pending)
        ML_DLIST_UNLINK(w->dying, s);
    else
        ML_DLIST_UNLINK(w->streams, s);
    w->nstreams--;
    if (s->pipe)
        net_pipe_stream_gone(s); /* what the client sent still reaches the peer */
    if (s->proxy) {
        net_conn_close(s->proxy); /* lws reads what was piped, then the end */
        s->proxy = NULL;
    }
    peek_free(s);
    if (s->conn && w->e->h->stream_close)
        w->e->h->stream_close(w->state, s, s->conn);
    stream_free_io(s);
    free(s->handover_frame);
    NET_COUNT(w->ctr.stream_closed, 1);
    free(s);
    if (ho)
        handover_post(w, (unsigned)to, ho);
}

/* The worker's reaper: frees the streams and raw connections closed since it last ran. One
 * event per worker, not a one-shot per object: an object that is freed at stop must not leave a
 * callback behind that would free it a second time (the stop empties the lists it reads). */
void net_reap(evutil_socket_t fd, short what, void *arg)
{
    struct net_worker *w = arg;
    ML_UNUSED(fd);
    ML_UNUSED(what);
    while (w->dying)
        stream_destroy(w->dying);
    net_conns_reap(w);
}

static void schedule_destroy(struct net_stream *s)
{
    struct net_worker *w = s->w;
    if (s->freed_pending)
        return;
    ML_DLIST_UNLINK(w->streams, s);
    peek_free(s);
    s->freed_pending = true;
    s->closing = true;
    ML_DLIST_PUSH(w->dying, s);
    if (s->bev)
        bufferevent_disable(s->bev, EV_READ | EV_WRITE);
    event_active(w->reap, EV_READ, 0);
}

/* ---------------------------------------------------------------- shared:// sniffing */

static void stream_read(struct bufferevent *bev, void *arg);
static void stream_written(struct bufferevent *bev, void *arg);
static void stream_event(struct bufferevent *bev, short what, void *arg);

enum net_first net_first_bytes(const uint8_t *b, size_t n, bool tls)
{
    /* PRI: HTTP/2's preface, which lws (HTTP/1.1 here) answers; better than TURN framing it */
    static const char *const methods[] = {"GET ",    "POST ",  "PUT ",     "HEAD ",
                                          "DELETE ", "PATCH ", "OPTIONS ", "PRI "};
    static const uint8_t cookie[4] = {0x21, 0x12, 0xA4, 0x42};
    if (n == 0)
        return NET_FIRST_MORE;
    if (tls && b[0] == 0x16) {
        if (n < 2)
            return NET_FIRST_MORE;
        if (b[1] == 0x03)
            return NET_FIRST_TLS;
    }
    if ((b[0] & 0xC0) == 0) {
        if (n < 8)
            return NET_FIRST_MORE;
        return memcmp(b + 4, cookie, 4) == 0 ? NET_FIRST_TURN : NET_FIRST_BAD;
    }
    bool prefix = false;
    for (size_t i = 0; i < ML_ARRAY_LEN(methods); i++) {
        size_t ml = strlen(methods[i]);
        if (memcmp(b, methods[i], n < ml ? n : ml) == 0) {
            if (n >= ml)
                return NET_FIRST_HTTP;
            prefix = true;
        }
    }
    if (prefix)
        return NET_FIRST_MORE;
    /* ChannelData (RFC 8656 12.4): only after an allocation made on this connection, but a
     * first byte of 0x40-0x7F that is no method is framed and judged by TURN as it is. */
    if (b[0] >= 0x40 && b[0] <= 0x7F)
        return NET_FIRST_TURN;
    return NET_FIRST_BAD;
}

static void sniff_refuse(struct net_stream *s, const char *why)
{
    char a[ML_ADDR_STRLEN];
    NET_COUNT(s->w->ctr.shared_refused, 1);
    ML_LOG_LIMITED(ML_LOG_INFO, "net", "closing shared-port client %s: %s",
                   ml_addr_str((struct sockaddr *)&s->peer, a, sizeof a), why);
    schedule_destroy(s);
}

/* Hands an HTTP connection to the receiver, under its lock (so that clearing it waits for a
 * call in progress); false, fd untouched, when there is none. */
static bool http_handoff(struct net_engine *e, int fd, const struct sockaddr *peer, bool tls)
{
    pthread_mutex_lock(&e->http_lock);
    bool ok = e->http_fn != NULL && (!tls || e->http_tls);
    if (ok)
        e->http_fn(e->http_arg, fd, peer, tls);
    pthread_mutex_unlock(&e->http_lock);
    return ok;
}

/* A ClientHello on a plain connection: OpenSSL as a filter over the socket's bufferevent from
 * now on; the handshake is still unread in the socket (it was only peeked). */
static void sniff_start_tls(struct net_stream *s)
{
    struct net_worker *w = s->w;
    struct net_engine *e = w->e;
    pthread_mutex_lock(&e->tls_lock);
    SSL *ssl = e->tls_ctx ? SSL_new(e->tls_ctx) : NULL;
    pthread_mutex_unlock(&e->tls_lock);
    if (!ssl || !SSL_set_ex_data(ssl, net_tls_shared_index(), (void *)1)) {
        if (ssl)
            SSL_free(ssl);
        sniff_refuse(s, "no TLS context");
        return;
    }
    struct bufferevent *f =
        bufferevent_openssl_filter_new(w->base, s->bev, ssl, BUFFEREVENT_SSL_ACCEPTING, 0);
    if (!f) {
        SSL_free(ssl);
        sniff_refuse(s, "out of memory");
        return;
    }
    s->raw = s->bev; /* the filter took its callbacks over */
    s->bev = f;
    s->ssl = ssl;
    s->transport = NET_TLS;
    s->sniff = NET_SNIFF_TLS;
    bufferevent_openssl_set_allow_dirty_shutdown(f, 1);
    bufferevent_setcb(f, stream_read, stream_written, stream_event, s);
    size_t in_max = (size_t)e->set.stream_max_frame * 2;
    bufferevent_setwatermark(f, EV_READ, 0, in_max);
    bufferevent_setwatermark(s->raw, EV_READ, 0,
                             in_max > NET_TLS_RAW_IN_MAX ? in_max : NET_TLS_RAW_IN_MAX);
    bufferevent_set_timeouts(s->raw, NULL, NULL);
    net_stream_set_idle(s, e->set.shared_first_s); /* the handshake and the first request */
    bufferevent_enable(f, EV_READ | EV_WRITE);
}

static void peek_free(struct net_stream *s)
{
    if (s->peek)
        event_free(s->peek);
    if (s->peek_again)
        event_free(s->peek_again);
    s->peek = s->peek_again = NULL;
}

/* Plain HTTP, or (tls) a ClientHello that offers http/1.1: the socket itself goes to the
 * control plane, nothing read from it yet; for TLS the control plane does the handshake. */
static void sniff_http_socket(struct net_stream *s, bool tls)
{
    struct net_worker *w = s->w;
    int fd = bufferevent_getfd(s->bev);
    if (fd < 0) {
        sniff_refuse(s, "no socket");
        return;
    }
    /* Out of the bufferevent first: once handed over, the control plane may close fd and the
     * number be reused before this thread touches the bufferevent again. */
    bufferevent_setfd(s->bev, -1);
    if (!http_handoff(w->e, fd, (struct sockaddr *)&s->peer, tls)) {
        close(fd);
        sniff_refuse(s, "HTTP, and no control plane here");
        return;
    }
    if (tls)
        NET_COUNT(w->ctr.shared_https_direct, 1);
    else
        NET_COUNT(w->ctr.shared_http, 1);
    s->sniff = NET_SNIFF_NONE;
    schedule_destroy(s);
}

/* The control plane closed its end of an HTTP-over-TLS connection's socketpair: what it wrote
 * has been queued to the client (tcpconn.c), which is closed once that has left. */
static void proxy_event(struct net_conn *c, void *arg, enum net_conn_event ev)
{
    struct net_stream *s = arg;
    ML_UNUSED(ev);
    if (s->proxy != c)
        return;
    s->proxy = NULL;
    net_conn_close(c);
    net_stream_close(s);
}

/* HTTP inside TLS: the session stays here; its decrypted bytes go both ways through a
 * socketpair whose other end the control plane adopts as a plain HTTP connection. */
static void sniff_http_tls(struct net_stream *s)
{
    struct net_worker *w = s->w;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
        sniff_refuse(s, strerror(errno));
        return;
    }
    struct net_conn *c = net_conn_adopt(w, sv[0], proxy_event, s);
    if (!c || net_conn_pipe(c, s, (size_t)w->e->set.stream_out_max) < 0) {
        if (c)
            net_conn_close(c);
        close(sv[1]);
        sniff_refuse(s, "cannot pipe to the control plane");
        return;
    }
    if (!http_handoff(w->e, sv[1], (struct sockaddr *)&s->peer, false)) {
        close(sv[1]);
        net_conn_close(c);
        sniff_refuse(s, "HTTPS, and no control plane here");
        return;
    }
    s->proxy = c;
    s->sniff = NET_SNIFF_NONE;
    net_stream_set_idle(s, 0); /* the control plane's own timeouts govern */
    net_stream_established(s); /* and its own deadlines: no TURN setup is coming */
    NET_COUNT(w->ctr.shared_https, 1);
}

/* Acts on what a shared:// connection's first bytes are. Returns true when its bytes must not
 * be framed (more are needed, or the stream became something else); false for TURN. */
static bool decide(struct net_stream *s, enum net_first kind)
{
    struct net_worker *w = s->w;
    switch (kind) {
    case NET_FIRST_MORE:
        return true;
    case NET_FIRST_BAD:
        sniff_refuse(s, "neither TLS, STUN nor HTTP");
        return true;
    case NET_FIRST_TLS:
        sniff_start_tls(s);
        return true;
    case NET_FIRST_HTTP:
        if (s->sniff == NET_SNIFF_PLAIN)
            sniff_http_socket(s, false);
        else
            sniff_http_tls(s);
        return true;
    case NET_FIRST_TURN:
        break;
    }
    if (s->transport == NET_TLS)
        NET_COUNT(w->ctr.shared_turn_tls, 1);
    else
        NET_COUNT(w->ctr.shared_turn_tcp, 1);
    s->sniff = NET_SNIFF_NONE;
    net_stream_reset_idle(s);
    s->conn = w->e->h->stream_open(w->state, s);
    if (!s->conn) {
        NET_COUNT(w->ctr.stream_refused, 1);
        schedule_destroy(s);
        return true;
    }
    return false;
}

/* Inside TLS: the ALPN the handshake chose decides, else the first decrypted bytes. */
static bool sniff_tls(struct net_stream *s)
{
    const unsigned char *alpn = NULL;
    unsigned int alen = 0;
    SSL_get0_alpn_selected(s->ssl, &alpn, &alen);
    if (alen == 8 && !memcmp(alpn, "http/1.1", 8))
        return decide(s, NET_FIRST_HTTP);
    if (alen == 9 && !memcmp(alpn, "stun.turn", 9))
        return decide(s, NET_FIRST_TURN);
    uint8_t b[8];
    ev_ssize_t n = evbuffer_copyout(bufferevent_get_input(s->bev), b, sizeof b);
    return decide(s, net_first_bytes(b, n > 0 ? (size_t)n : 0, false));
}

/* A ClientHello on a shared:// listener whose receiver takes TLS before the handshake: peeks
 * at it (as far as it has arrived, at most NET_HELLO_PEEK_MAX bytes). DONE: it offers ALPN
 * http/1.1 and not stun.turn, and goes to the control plane whole, before any byte is read.
 * NOT: OpenSSL here takes it as before (TURN clients and scripts send no ALPN, or stun.turn;
 * an h2-only offer is served without ALPN; a malformed or oversized hello gets OpenSSL's
 * answer). MORE: the rest of it has not arrived. */
static enum net_hello_rc peek_hello(int fd)
{
    uint8_t b[NET_HELLO_PEEK_MAX];
    struct net_hello h;
    ssize_t n = recv(fd, b, sizeof b, MSG_PEEK | MSG_DONTWAIT);
    if (n <= 0)
        return NET_HELLO_NOT; /* the first peek saw bytes: let OpenSSL meet what follows */
    enum net_hello_rc rc = net_hello_parse(b, (size_t)n, &h);
    if (rc == NET_HELLO_MORE && (size_t)n == sizeof b)
        return NET_HELLO_NOT; /* not whole within what is looked at */
    if (rc != NET_HELLO_DONE)
        return rc;
    if (!h.alpn_http11 || h.alpn_turn)
        return NET_HELLO_NOT;
    ML_DEBUG("net", "shared-port ClientHello of %zu bytes offers http/1.1 (sni %s): to HTTPS",
             h.len, h.sni[0] ? h.sni : "-");
    return NET_HELLO_DONE;
}

#define NET_PEEK_DELAY_MIN_MS 5   /* first wait when too few bytes came to tell */
#define NET_PEEK_DELAY_MAX_MS 200 /* the wait doubles up to this */

/* A plain connection: its first bytes, peeked. A few bytes that cannot tell yet leave the socket
 * readable, so instead of waiting for readability (which would fire at once, again and again)
 * it peeks again after a delay that doubles; until the deadline. */
static void peek_cb(evutil_socket_t fd, short what, void *arg)
{
    struct net_stream *s = arg;
    ML_UNUSED(what);
    if (s->closing)
        return;
    uint8_t b[8];
    ssize_t n = recv(fd, b, sizeof b, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        schedule_destroy(s); /* gone before it said anything */
        return;
    }
    enum net_first kind = n > 0 ? net_first_bytes(b, (size_t)n, true) : NET_FIRST_MORE;
    bool direct = false;
    if (kind == NET_FIRST_TLS && __atomic_load_n(&s->w->e->http_tls, __ATOMIC_ACQUIRE)) {
        enum net_hello_rc rc = peek_hello(fd);
        if (rc == NET_HELLO_MORE)
            kind = NET_FIRST_MORE; /* waits like a short start: the same deadline */
        direct = rc == NET_HELLO_DONE;
    }
    if (kind == NET_FIRST_MORE) {
        int64_t left = s->peek_deadline_ms - ml_now_ms();
        if (left <= 0) {
            sniff_refuse(s, n > 0 ? "too few bytes in time" : "nothing said in time");
            return;
        }
        if (n > 0) {
            int64_t ms = s->peek_delay_ms < left ? s->peek_delay_ms : left;
            struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
            evtimer_add(s->peek_again, &tv);
            s->peek_delay_ms = s->peek_delay_ms * 2 > NET_PEEK_DELAY_MAX_MS ? NET_PEEK_DELAY_MAX_MS
                                                                            : s->peek_delay_ms * 2;
        } else {
            struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
            event_add(s->peek, &tv);
        }
        return;
    }
    peek_free(s);
    if (direct) {
        sniff_http_socket(s, true);
        return;
    }
    if (!decide(s, kind))
        bufferevent_enable(s->bev, EV_READ | EV_WRITE); /* TURN over TCP: framed from here */
}

static void peek_again_cb(evutil_socket_t fd, short what, void *arg)
{
    struct net_stream *s = arg;
    ML_UNUSED(fd);
    ML_UNUSED(what);
    if (!s->closing)
        peek_cb(bufferevent_getfd(s->bev), EV_READ, s);
}

/* Starts sniffing a new shared:// connection; false when out of memory. */
static bool peek_start(struct net_stream *s)
{
    struct net_worker *w = s->w;
    int fd = bufferevent_getfd(s->bev);
    s->sniff = NET_SNIFF_PLAIN;
    s->peek = event_new(w->base, fd, EV_READ, peek_cb, s);
    s->peek_again = evtimer_new(w->base, peek_again_cb, s);
    if (!s->peek || !s->peek_again)
        return false;
    s->peek_delay_ms = NET_PEEK_DELAY_MIN_MS;
    s->peek_deadline_ms = ml_now_ms() + w->e->set.shared_first_s * 1000;
    struct timeval tv = {.tv_sec = w->e->set.shared_first_s};
    return event_add(s->peek, &tv) == 0;
}

/* ---------------------------------------------------------------- deadlines for slow writers */

/* The idle timeout restarts with every byte: a client sending a byte now and then would hold a
 * connection forever. Two deadlines do not restart: a frame whose first byte arrived must be
 * whole within net.stream-frame-timeout, and the connection must be set up (TURN: an
 * allocation, or a data connection) within net.stream-setup-timeout of being accepted, TLS
 * handshake included. One timer per stream serves both, set for the earlier. */
static void deadline_arm(struct net_stream *s)
{
    int64_t next = s->frame_by_ms;
    if (s->setup_by_ms && (!next || s->setup_by_ms < next))
        next = s->setup_by_ms;
    if (!next || s->closing) {
        evtimer_del(s->deadline);
        s->armed_ms = 0;
        return;
    }
    s->armed_ms = next;
    int64_t left = next - ml_now_ms();
    if (left < 0)
        left = 0;
    struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
    evtimer_add(s->deadline, &tv);
}

static void deadline_fired(evutil_socket_t fd, short what, void *arg)
{
    struct net_stream *s = arg;
    struct net_worker *w = s->w;
    char a[ML_ADDR_STRLEN];
    ML_UNUSED(fd);
    ML_UNUSED(what);
    s->armed_ms = 0;
    if (s->closing)
        return;
    int64_t now = ml_now_ms();
    const char *why;
    if (s->setup_by_ms && now >= s->setup_by_ms) {
        NET_COUNT(w->ctr.stream_setup_timeouts, 1);
        why = "not set up within net.stream-setup-timeout";
    } else if (s->frame_by_ms && now >= s->frame_by_ms) {
        NET_COUNT(w->ctr.stream_frame_timeouts, 1);
        why = "a frame unfinished after net.stream-frame-timeout";
    } else {
        deadline_arm(s); /* early (a deadline moved): wait for the earlier one */
        return;
    }
    ML_LOG_LIMITED(ML_LOG_NOTICE, "net", "closing %s client %s: %s",
                   net_transport_name(s->transport),
                   ml_addr_str((struct sockaddr *)&s->peer, a, sizeof a), why);
    s->frame_by_ms = s->setup_by_ms = 0;
    net_stream_close(s);
}

void net_stream_established(struct net_stream *s)
{
    if (!s->setup_by_ms)
        return;
    s->setup_by_ms = 0;
    deadline_arm(s);
}

/* After a read: bytes left in the input are the start of a frame (or frames left for the next
 * wakeup). The deadline starts when a frame's first byte is seen, so it restarts only when a
 * frame was completed by this read, never because more bytes of the same frame arrived. */
static void frame_deadline(struct net_stream *s, size_t left, bool completed)
{
    struct net_worker *w = s->w;
    if (left == 0 || s->pipe || w->e->set.stream_frame_s <= 0) {
        s->frame_by_ms = 0; /* a timer still set for it finds nothing due and re-arms */
        return;
    }
    if (s->frame_by_ms && !completed)
        return;
    s->frame_by_ms = ml_now_ms() + w->e->set.stream_frame_s * 1000;
    /* Lazily: a timer set to fire no later than this deadline re-arms for it when it fires, so a
     * read that ends inside a frame costs no timer operation while the stream is busy. */
    if (!s->armed_ms || s->armed_ms > s->frame_by_ms)
        deadline_arm(s);
}

long net_frame_next(struct evbuffer *in, const struct net_handler *h, long long max_frame,
                    uint8_t **frame)
{
    size_t avail = evbuffer_get_length(in);
    *frame = NULL;
    if (avail < 4)
        return 0;
    long flen = h->frame_len(evbuffer_pullup(in, 4), 4);
    if (flen < 0)
        return NET_FRAME_BAD;
    if (flen > max_frame)
        return NET_FRAME_OVERSIZED;
    if (flen == 0 || avail < (size_t)flen)
        return 0; /* a partial frame: the next read completes it */
    *frame = evbuffer_pullup(in, flen);
    return *frame ? flen : NET_FRAME_NOMEM;
}

static void stream_read(struct bufferevent *bev, void *arg)
{
    struct net_stream *s = arg;
    struct net_worker *w = s->w;
    const struct net_handler *h = w->e->h;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (s->pipe) {
        net_pipe_from_stream(s);
        return;
    }
    if (s->sniff != NET_SNIFF_NONE && (s->closing || sniff_tls(s)))
        return;
    /* Bounded: at most 256 frames a wakeup; the rest waits for the next one. */
    bool more = false;
    int frames = 0;
    for (; !s->closing; frames++) {
        if (evbuffer_get_length(in) < 4)
            break;
        if (frames == 256) {
            more = true;
            break;
        }
        uint8_t *frame;
        long flen = net_frame_next(in, h, w->e->set.stream_max_frame, &frame);
        if (flen == NET_FRAME_BAD || flen == NET_FRAME_OVERSIZED) {
            char a[ML_ADDR_STRLEN];
            NET_COUNT(w->ctr.stream_bad_frames, 1);
            ML_LOG_LIMITED(ML_LOG_NOTICE, "net",
                           "closing %s client %s: %s frame (while reading a stream)",
                           net_transport_name(s->transport),
                           ml_addr_str((struct sockaddr *)&s->peer, a, sizeof a),
                           flen == NET_FRAME_BAD ? "unframeable" : "oversized");
            schedule_destroy(s);
            return;
        }
        if (flen < 0) { /* NET_FRAME_NOMEM */
            schedule_destroy(s);
            return;
        }
        if (flen == 0) {
            /* a partial frame: the next read completes it. A PROXY header (the start of one
             * frames as a long STUN message or ChannelData) from a peer not trusted to send
             * one: the connection is not what it claims, close it now, not at the idle
             * timeout. Only the first frame of a connection is looked at. */
            size_t avail = evbuffer_get_length(in);
            if (!s->framed && s->transport == NET_TCP &&
                net_proxy_signature(evbuffer_pullup(in, (ev_ssize_t)(avail < 12 ? avail : 12)),
                                    avail < 12 ? avail : 12)) {
                char a[ML_ADDR_STRLEN];
                ML_LOG_LIMITED(ML_LOG_NOTICE, "net",
                               "closing tcp client %s: a PROXY protocol header from a peer "
                               "not in net.proxy-protocol-from",
                               ml_addr_str((struct sockaddr *)&s->peer, a, sizeof a));
                NET_COUNT(w->ctr.stream_bad_frames, 1);
                schedule_destroy(s);
                return;
            }
            break;
        }
        s->framed = true;
        NET_COUNT(w->ctr.stream_rx_bytes, (uint64_t)flen);
        w->in_batch = true;
        h->stream_frame(w->state, s, s->conn, frame, (size_t)flen);
        w->in_batch = false;
        evbuffer_drain(in, (size_t)flen);
        if (s->pipe) {
            /* the frame made it a pipe: what follows it is the client's bytes */
            frame_deadline(s, 0, true);
            net_worker_flush(w);
            net_pipe_from_stream(s);
            return;
        }
    }
    if (!s->closing)
        frame_deadline(s, evbuffer_get_length(in), frames > 0);
    net_worker_flush(w);
    /* Whole frames left behind by the per-wakeup bound: come back for them after other work.
     * Never for a partial frame, or the loop would spin until its rest arrives. */
    if (more && !s->closing)
        bufferevent_trigger(bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
}

/* Bytes not yet given to the kernel: frames, and for TLS the records made of them. */
static size_t queued(const struct net_stream *s)
{
    size_t n = evbuffer_get_length(bufferevent_get_output(s->bev));
    if (s->raw)
        n += evbuffer_get_length(bufferevent_get_output(s->raw));
    return n;
}

size_t net_stream_queued(const struct net_stream *s)
{
    return queued(s);
}

/* The buffer whose bytes go to the kernel next: the records for TLS, the frames for TCP. */
struct evbuffer *net_stream_wire_out(struct net_stream *s)
{
    return bufferevent_get_output(s->raw ? s->raw : s->bev);
}

static void stream_written(struct bufferevent *bev, void *arg)
{
    struct net_stream *s = arg;
    ML_UNUSED(bev);
    if (s->closing && queued(s) == 0)
        schedule_destroy(s);
}

/* TLS, closing: the filter's write callback fires when frames become records, not when the
 * records have left; this one watches the socket's side until the last record is sent. */
static void raw_drained(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct net_stream *s = arg;
    ML_UNUSED(buf);
    if (info->n_deleted && s->closing && queued(s) == 0)
        schedule_destroy(s);
}

/* TLS: a handshake OpenSSL refused (a protocol version older than turn.tls-min-version, no
 * shared cipher) leaves its alert in the socket's output. Send it before closing, so that the
 * client learns why: cut at once, it only saw "unexpected eof while reading", which coturn's
 * turnutils_uclient printed for each of the TLS 1.0 and 1.1 contexts it tries at random. */
static void tls_send_alert_then_close(struct net_stream *s)
{
    struct evbuffer *frames = bufferevent_get_output(s->bev);
    evbuffer_drain(frames, evbuffer_get_length(frames)); /* no session to encrypt them with */
    s->closing = true;
    struct timeval linger = {.tv_sec = NET_CLOSE_LINGER_S};
    bufferevent_set_timeouts(s->raw, NULL, &linger);
    evbuffer_add_cb(bufferevent_get_output(s->raw), raw_drained, s);
}

static void stream_event(struct bufferevent *bev, short what, void *arg)
{
    struct net_stream *s = arg;
    ML_UNUSED(bev);
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)))
        return;
    if ((what & BEV_EVENT_ERROR) && s->transport == NET_TLS) {
        unsigned long e;
        char a[ML_ADDR_STRLEN];
        while ((e = bufferevent_get_openssl_error(s->bev)) != 0) {
            char msg[160];
            if (ERR_GET_LIB(e) == 0)
                continue; /* libevent queues SSL_get_error()'s code too: no message of its own */
            ERR_error_string_n(e, msg, sizeof msg);
            ML_LOG_LIMITED(ML_LOG_INFO, "net", "tls client %s: %s",
                           ml_addr_str((struct sockaddr *)&s->peer, a, sizeof a), msg);
        }
        if (!s->closing && evbuffer_get_length(bufferevent_get_output(s->raw)) > 0) {
            tls_send_alert_then_close(s);
            return;
        }
    }
    schedule_destroy(s);
}

/* Wraps fd (and for TLS the session ssl, in state st) in bufferevents, sets the limits and
 * puts the stream on the worker's list. The stream owns fd and ssl from the start: on failure
 * they are freed with it (and -1 returned; s is freed too). */
static int stream_setup(struct net_worker *w, struct net_stream *s, int fd, SSL *ssl,
                        enum bufferevent_ssl_state st)
{
    struct net_engine *e = w->e;
    s->w = w;
    s->handover_to = -1;
    s->ssl = ssl;
    s->deadline = evtimer_new(w->base, deadline_fired, s);
    if (ssl) {
        /* OpenSSL as a filter over a socket bufferevent, not on the socket itself: records
         * are read in large chunks and decrypted from memory, and the records of a wakeup's
         * frames leave in one writev, where a socket BIO made a read for each record header
         * and body and a write for each record. Each frame is still a record of its own. */
        s->raw = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
        if (!s->raw)
            close(fd);
        else
            s->bev = bufferevent_openssl_filter_new(w->base, s->raw, ssl, st, 0);
        if (s->bev)
            bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
    } else {
        s->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
        if (!s->bev)
            close(fd);
    }
    if (!s->bev || !s->deadline) {
        if (s->addr_held)
            ml_addr_counts_put(e->addrs, (struct sockaddr *)&s->peer);
        stream_free_io(s);
        free(s);
        return -1;
    }
    bufferevent_set_max_single_read(s->raw ? s->raw : s->bev, NET_STREAM_READ_MAX);
    ML_DLIST_PUSH(w->streams, s);
    w->nstreams++;
    bufferevent_setcb(s->bev, stream_read, stream_written, stream_event, s);
    /* Stop reading while a frame-and-a-half is buffered: the input never grows without bound.
     * For TLS the records too, and at least one whole record (16 KiB and overhead) must fit. */
    size_t in_max = (size_t)e->set.stream_max_frame * 2;
    bufferevent_setwatermark(s->bev, EV_READ, 0, in_max);
    if (s->raw)
        bufferevent_setwatermark(s->raw, EV_READ, 0,
                                 in_max > NET_TLS_RAW_IN_MAX ? in_max : NET_TLS_RAW_IN_MAX);
    struct timeval idle = {.tv_sec = e->set.stream_idle_s};
    bufferevent_set_timeouts(s->bev, e->set.stream_idle_s > 0 ? &idle : NULL, NULL);
    deadline_arm(s); /* the setup deadline, when the caller set one */
    return 0;
}

static void on_accept(struct net_acceptor *acc, int fd, const struct sockaddr *sa, socklen_t salen)
{
    struct net_worker *w = acc->w;
    struct net_engine *e = w->e;
    size_t ep = (size_t)acc->endpoint;
    char a[ML_ADDR_STRLEN];
    if (w->nstreams >= e->set.max_streams) {
        NET_COUNT(w->ctr.stream_refused, 1);
        ML_LOG_LIMITED(ML_LOG_WARN, "net",
                       "refusing a stream connection from %s: net.max-streams=%u open on this "
                       "worker",
                       ml_addr_str(sa, a, sizeof a), e->set.max_streams);
        close(fd);
        return;
    }
    /* A trusted proxy's connections carry every client behind it: not capped per address. */
    bool proxied = net_proxy_trusted(e, sa);
    if (!proxied && !ml_addr_counts_take(e->addrs, sa)) {
        NET_COUNT(w->ctr.stream_refused, 1);
        NET_COUNT(w->ctr.stream_refused_addr, 1);
        ML_LOG_LIMITED(ML_LOG_WARN, "net",
                       "refusing a stream connection from %s: net.max-streams-per-address=%u "
                       "open from its address",
                       ml_ip_str(sa, a, sizeof a), ml_addr_counts_max(e->addrs));
        close(fd);
        return;
    }
    struct net_stream *s = calloc(1, sizeof *s);
    if (!s) {
        if (!proxied)
            ml_addr_counts_put(e->addrs, sa);
        close(fd);
        return;
    }
    s->addr_held = !proxied;
    s->endpoint = (int)ep;
    /* shared://: TCP until a ClientHello makes it TLS */
    s->transport = e->eps[ep].transport == NET_SHARED ? NET_TCP : e->eps[ep].transport;
    if (e->set.stream_setup_s > 0)
        s->setup_by_ms = ml_now_ms() + e->set.stream_setup_s * 1000;
    memcpy(&s->peer, sa, (size_t)salen < sizeof s->peer ? (size_t)salen : sizeof s->peer);
    socklen_t llen = sizeof s->local;
    if (getsockname(fd, (struct sockaddr *)&s->local, &llen) < 0)
        memset(&s->local, 0, sizeof s->local);
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (proxied) {
        net_proxy_wait(w, s, fd); /* a trusted proxy: its header first (stream-proxy.c) */
        return;
    }
    net_stream_begin(w, s, fd);
}

void net_stream_begin(struct net_worker *w, struct net_stream *s, int fd)
{
    struct net_engine *e = w->e;
    bool shared = e->eps[s->endpoint].transport == NET_SHARED; /* after a PROXY header too */
    SSL *ssl = NULL;
    if (s->transport == NET_TLS) {
        pthread_mutex_lock(&e->tls_lock);
        ssl = e->tls_ctx ? SSL_new(e->tls_ctx) : NULL;
        pthread_mutex_unlock(&e->tls_lock);
        if (!ssl) {
            if (s->addr_held)
                ml_addr_counts_put(e->addrs, (struct sockaddr *)&s->peer);
            free(s);
            close(fd);
            NET_COUNT(w->ctr.stream_refused, 1);
            return;
        }
    }
    if (stream_setup(w, s, fd, ssl, BUFFEREVENT_SSL_ACCEPTING) < 0) {
        NET_COUNT(w->ctr.stream_refused, 1);
        return;
    }
    NET_COUNT(w->ctr.stream_accepted, 1);
    if (shared) { /* the handler hears of it once its first bytes say it is TURN */
        if (!peek_start(s)) {
            NET_COUNT(w->ctr.stream_refused, 1);
            schedule_destroy(s);
        }
        return;
    }
    s->conn = e->h->stream_open(w->state, s);
    if (!s->conn) {
        NET_COUNT(w->ctr.stream_refused, 1);
        schedule_destroy(s);
        return;
    }
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* ---------------------------------------------------------------- handover between workers */

/* A connection on its way to another worker: everything that made it, owned by the task. */
struct handover {
    int fd;
    SSL *ssl;
    enum net_transport transport;
    int endpoint;
    struct sockaddr_storage peer, local;
    struct evbuffer *in, *out;         /* frames read and not processed, and queued */
    struct evbuffer *raw_in, *raw_out; /* TLS: records read and not decrypted, and queued */
    uint8_t *frame;
    size_t len;
    struct net_engine *e;
    bool addr_held;      /* the connection's place in the per-address count, moving with it */
    int64_t setup_by_ms; /* its setup deadline, which a move does not restart */
};

static void handover_free(struct handover *ho)
{
    if (ho->addr_held)
        ml_addr_counts_put(ho->e->addrs, (struct sockaddr *)&ho->peer);
    if (ho->fd >= 0)
        close(ho->fd);
    if (ho->ssl)
        SSL_free(ho->ssl);
    struct evbuffer *bufs[] = {ho->in, ho->out, ho->raw_in, ho->raw_out};
    for (size_t i = 0; i < ML_ARRAY_LEN(bufs); i++)
        if (bufs[i])
            evbuffer_free(bufs[i]);
    free(ho->frame);
    free(ho);
}

/* Moves the whole content of a bufferevent's buffer into a new evbuffer (no copy). The start
 * of an output buffer is frozen for users of the bufferevent, which is going away. */
static struct evbuffer *take_buffer(struct evbuffer *from, bool output)
{
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return NULL;
    if (output)
        evbuffer_unfreeze(from, 1);
    if (evbuffer_add_buffer(b, from) < 0) {
        evbuffer_free(b);
        return NULL;
    }
    return b;
}

/* On the new worker: the stream is rebuilt around the socket and session, its bytes put back
 * where they were, and the frame that asked for the move handled here. */
static void adopt_task(struct net_worker *w, void *arg)
{
    struct handover *ho = arg;
    struct net_engine *e = w->e;
    const struct net_handler *h = e->h;
    struct net_stream *s = NULL;
    if (!w->state || w->nstreams >= e->set.max_streams || !(s = calloc(1, sizeof *s))) {
        NET_COUNT(w->ctr.stream_refused, 1);
        handover_free(ho);
        return;
    }
    s->endpoint = ho->endpoint;
    s->transport = ho->transport;
    s->peer = ho->peer;
    s->local = ho->local;
    s->addr_held = ho->addr_held;
    ho->addr_held = false;
    s->setup_by_ms = ho->setup_by_ms;
    int fd = ho->fd;
    SSL *ssl = ho->ssl;
    ho->fd = -1;
    ho->ssl = NULL;
    if (stream_setup(w, s, fd, ssl, BUFFEREVENT_SSL_OPEN) < 0) {
        NET_COUNT(w->ctr.stream_refused, 1);
        handover_free(ho);
        return;
    }
    /* Older records first, then the frames that are not records yet; input to the front. */
    if (s->raw) {
        evbuffer_prepend_buffer(bufferevent_get_input(s->raw), ho->raw_in);
        evbuffer_add_buffer(bufferevent_get_output(s->raw), ho->raw_out);
    }
    evbuffer_prepend_buffer(bufferevent_get_input(s->bev), ho->in);
    evbuffer_add_buffer(bufferevent_get_output(s->bev), ho->out);
    NET_COUNT(w->ctr.stream_moved, 1);
    ML_DEBUG("net", "took over a %s stream: %zu bytes to read, %zu to write",
             net_transport_name(s->transport), evbuffer_get_length(bufferevent_get_input(s->bev)),
             queued(s));
    s->conn = h->stream_open(w->state, s);
    if (!s->conn) {
        schedule_destroy(s);
        handover_free(ho);
        return;
    }
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    w->in_batch = true;
    h->stream_frame(w->state, s, s->conn, ho->frame, ho->len);
    w->in_batch = false;
    net_worker_flush(w);
    handover_free(ho);
    if (s->closing)
        return;
    /* What followed the frame: records the session has not decrypted yet, and frames (or a
     * pipe's bytes) it has; neither would be noticed before the socket is readable again. */
    if (s->raw)
        bufferevent_trigger(s->raw, EV_READ, 0);
    if (evbuffer_get_length(bufferevent_get_input(s->bev)))
        bufferevent_trigger(s->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
}

/* On the old worker, from the reaper: takes the socket, the session and the buffers out of the
 * stream, which is then freed as an empty shell. NULL when that fails: the stream is simply
 * closed. */
static struct handover *stream_take(struct net_stream *s)
{
    s->handover_to = -1;
    struct handover *ho = calloc(1, sizeof *ho);
    if (!ho)
        return NULL;
    ho->fd = -1;
    ho->e = s->w->e;
    ho->transport = s->transport;
    ho->endpoint = s->endpoint;
    ho->peer = s->peer;
    ho->local = s->local;
    ho->frame = s->handover_frame;
    ho->len = s->handover_len;
    s->handover_frame = NULL;
    struct bufferevent *sock = s->raw ? s->raw : s->bev;
    ho->in = take_buffer(bufferevent_get_input(s->bev), false);
    ho->out = take_buffer(bufferevent_get_output(s->bev), true);
    ho->raw_in = s->raw ? take_buffer(bufferevent_get_input(s->raw), false) : evbuffer_new();
    ho->raw_out = s->raw ? take_buffer(bufferevent_get_output(s->raw), true) : evbuffer_new();
    if (!ho->in || !ho->out || !ho->raw_in || !ho->raw_out) {
        handover_free(ho);
        return NULL;
    }
    ho->fd = bufferevent_getfd(sock);
    bufferevent_setfd(sock, -1); /* freeing the bufferevent no longer closes it */
    ho->addr_held = s->addr_held;
    s->addr_held = false;
    ho->setup_by_ms = s->setup_by_ms;
    ho->ssl = s->ssl;
    s->ssl = NULL;
    return ho;
}

static void handover_post(struct net_worker *w, unsigned to, struct handover *ho)
{
    if (net_worker_post(w->e->workers[to], adopt_task, ho) < 0)
        handover_free(ho); /* that worker is stopping: the connection closes */
}

int net_stream_handover(struct net_stream *s, unsigned to, const uint8_t *frame, size_t len)
{
    struct net_worker *w = s->w;
    if (s->closing || s->pipe || s->handover_to >= 0 || to >= w->e->nworkers || to == w->id)
        return -1;
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return -1;
    memcpy(copy, frame, len);
    s->handover_frame = copy;
    s->handover_len = len;
    s->handover_to = (int)to;
    /* The move happens in the reaper, after the frame has been drained from the input. */
    schedule_destroy(s);
    return 0;
}

int net_stream_listen(struct net_worker *w, size_t endpoint, int fd, char *err, size_t errlen)
{
    w->tcp[endpoint] = net_acceptor_new(w, fd, (int)endpoint, on_accept, w, err, errlen);
    return w->tcp[endpoint] ? 0 : -1;
}

/* At stop: every stream, open or waiting for the reaper. */
void net_streams_close_all(struct net_worker *w)
{
    net_proxy_waits_close_all(w);
    while (w->streams)
        stream_destroy(w->streams);
    while (w->dying)
        stream_destroy(w->dying);
}

enum net_transport net_stream_transport(const struct net_stream *s)
{
    return s->transport;
}

const struct sockaddr *net_stream_peer(const struct net_stream *s)
{
    return (const struct sockaddr *)&s->peer;
}

const struct sockaddr *net_stream_local(const struct net_stream *s)
{
    return (const struct sockaddr *)&s->local;
}

int net_stream_endpoint(const struct net_stream *s)
{
    return s->endpoint;
}

/* Queues len bytes. Every frame goes to OpenSSL on its own, which makes a TLS record of it:
 * coalescing a batch into one record saved encryptions, but some clients (coturn 4.6's
 * turnutils_uclient among them) handle only one frame per record and lost the rest. */
static int queue_out(struct net_stream *s, const void *data, size_t len)
{
    return bufferevent_write(s->bev, data, len);
}

int net_stream_send(struct net_stream *s, const void *data, size_t len)
{
    struct net_worker *w = s->w;
    if (s->closing || s->pipe)
        return -1;
    if (queued(s) + len > (size_t)w->e->set.stream_out_max) {
        NET_COUNT(w->ctr.stream_tx_dropped, 1);
        return -1;
    }
    if (queue_out(s, data, len) < 0)
        return -1;
    NET_COUNT(w->ctr.stream_tx_bytes, len);
    return 0;
}

int net_stream_send_reply(struct net_stream *s, const void *data, size_t len)
{
    struct net_worker *w = s->w;
    if (s->closing || s->pipe)
        return -1;
    if (queued(s) + len > (size_t)w->e->set.stream_out_max + NET_STREAM_REPLY_SLACK) {
        char a[ML_ADDR_STRLEN];
        NET_COUNT(w->ctr.stream_tx_dropped, 1);
        ML_LOG_LIMITED(ML_LOG_NOTICE, "net",
                       "closing %s client %s: it reads nothing (while answering a request)",
                       net_transport_name(s->transport),
                       ml_addr_str((struct sockaddr *)&s->peer, a, sizeof a));
        net_stream_close(s);
        return -1;
    }
    if (queue_out(s, data, len) < 0)
        return -1;
    NET_COUNT(w->ctr.stream_tx_bytes, len);
    return 0;
}

size_t net_stream_pending(const struct net_stream *s)
{
    return queued(s);
}

void net_stream_set_idle(struct net_stream *s, long long seconds)
{
    struct timeval idle = {.tv_sec = seconds};
    bufferevent_set_timeouts(s->bev, seconds > 0 ? &idle : NULL, NULL);
}

void net_stream_reset_idle(struct net_stream *s)
{
    net_stream_set_idle(s, s->w->e->set.stream_idle_s);
}

void net_stream_close(struct net_stream *s)
{
    if (s->closing)
        return;
    s->closing = true;
    bufferevent_disable(s->bev, EV_READ);
    if (queued(s) == 0) {
        schedule_destroy(s);
        return;
    }
    /* Let queued output drain, but not forever. */
    struct timeval linger = {.tv_sec = NET_CLOSE_LINGER_S};
    bufferevent_set_timeouts(s->bev, NULL, &linger);
    if (s->raw) {
        /* the filter reports the socket side's timeout and errors as its own events */
        bufferevent_set_timeouts(s->raw, NULL, &linger);
        evbuffer_add_cb(bufferevent_get_output(s->raw), raw_drained, s);
    }
}
