/* mlload over TCP and TLS: non-blocking connections with bounded buffers (RFC 8656 section 3.1).
 * Framing (RFC 8489 section 6.2.2, RFC 8656 section 12.5) is the TURN code's business. */
#include "config.h"

#include "tests/bench/mlload.h"

#include "common/common.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int ld_tls_init(struct ld_opts *o)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        fprintf(stderr, "mlload: SSL_CTX_new failed\n");
        return -1;
    }
    /* One version, one cipher: every server is measured with the same record protection. */
    int v = o->tls_version == 12 ? TLS1_2_VERSION : TLS1_3_VERSION;
    int ok = SSL_CTX_set_min_proto_version(ctx, v) && SSL_CTX_set_max_proto_version(ctx, v);
    if (ok && v == TLS1_3_VERSION)
        ok = SSL_CTX_set_ciphersuites(ctx, o->tls_cipher);
    else if (ok)
        ok = SSL_CTX_set_cipher_list(ctx, o->tls_cipher);
    if (!ok) {
        fprintf(stderr, "mlload: bad --tls-cipher '%s' for TLS 1.%u\n", o->tls_cipher,
                o->tls_version % 10);
        SSL_CTX_free(ctx);
        return -1;
    }
    /* A benchmark: the server's certificate is self-signed and not checked. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* Partial writes: SSL_write returns after each record, the rest stays in our buffer. The
     * buffer moves (it is compacted) between a retry and the call that wanted it. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    o->tls_ctx = ctx;
    return 0;
}

void ld_tls_free(struct ld_opts *o)
{
    if (o->tls_ctx) {
        SSL_CTX_free(o->tls_ctx);
        o->tls_ctx = NULL;
    }
}

static void set_buf(int fd, int opt_force, int opt, unsigned bytes)
{
    int v = (int)bytes;
    if (setsockopt(fd, SOL_SOCKET, opt_force, &v, sizeof v) < 0)
        (void)setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v);
}

void ld_stream_close(struct ld_stream *s)
{
    if (s->ssl) {
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    free(s->ibuf);
    free(s->obuf);
    s->ibuf = s->obuf = NULL;
    s->icap = s->ilen = s->ocap = s->ooff = s->olen = 0;
    s->want_out = s->ssl_wwrite = false;
}

int ld_stream_open(const struct ld_opts *o, const struct sockaddr_storage *to, struct ld_stream *s,
                   uint32_t icap, uint32_t ocap, struct sockaddr_storage *local)
{
    if (!to)
        to = &o->server;
    memset(s, 0, sizeof *s);
    s->fd = socket(to->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        fprintf(stderr, "mlload: socket: %s\n", strerror(errno));
        return -1;
    }
    s->ibuf = malloc(icap);
    s->obuf = malloc(ocap);
    if (!s->ibuf || !s->obuf) {
        fprintf(stderr, "mlload: out of memory for a connection\n");
        ld_stream_close(s);
        return -1;
    }
    s->icap = icap;
    s->ocap = ocap;
    int one = 1;
    /* frames leave as they are written: Nagle would hold the small ones back */
    (void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (o->sockbuf) {
        set_buf(s->fd, SO_RCVBUFFORCE, SO_RCVBUF, o->sockbuf);
        set_buf(s->fd, SO_SNDBUFFORCE, SO_SNDBUF, o->sockbuf);
    }
    if (o->local_len) {
        /* the port is chosen at connect(): thousands of connections from one address */
        (void)setsockopt(s->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(s->fd, (const struct sockaddr *)&o->local, o->local_len) < 0) {
            fprintf(stderr, "mlload: bind: %s\n", strerror(errno));
            ld_stream_close(s);
            return -1;
        }
    }
    if (connect(s->fd, (const struct sockaddr *)to, ml_addr_len((const struct sockaddr *)to)) < 0 &&
        errno != EINPROGRESS) {
        fprintf(stderr, "mlload: connect: %s\n", strerror(errno));
        ld_stream_close(s);
        return -1;
    }
    socklen_t sl = sizeof *local;
    if (getsockname(s->fd, (struct sockaddr *)local, &sl) < 0) {
        fprintf(stderr, "mlload: getsockname: %s\n", strerror(errno));
        ld_stream_close(s);
        return -1;
    }
    if (o->tls_ctx) {
        SSL *ssl = SSL_new(o->tls_ctx);
        if (!ssl || !SSL_set_fd(ssl, s->fd)) {
            fprintf(stderr, "mlload: SSL_new failed\n");
            SSL_free(ssl);
            ld_stream_close(s);
            return -1;
        }
        SSL_set_connect_state(ssl);
        s->ssl = ssl;
    }
    s->phase = LD_SP_CONNECTING;
    return 0;
}

/* 0: retry later (s->ssl_wwrite says on what), -1: failed. */
static int ssl_again(struct ld_stream *s, int ret)
{
    int e = SSL_get_error(s->ssl, ret);
    s->ssl_wwrite = e == SSL_ERROR_WANT_WRITE;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    ERR_clear_error();
    return -1;
}

int ld_stream_progress(struct ld_stream *s)
{
    if (s->fd < 0)
        return -1;
    if (s->phase == LD_SP_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err)
            return -1;
        /* still connecting: no peer yet */
        struct sockaddr_storage peer;
        socklen_t pl = sizeof peer;
        if (getpeername(s->fd, (struct sockaddr *)&peer, &pl) < 0)
            return errno == ENOTCONN ? 0 : -1;
        s->phase = s->ssl ? LD_SP_HANDSHAKE : LD_SP_OPEN;
    }
    if (s->phase == LD_SP_HANDSHAKE) {
        int r = SSL_do_handshake(s->ssl);
        if (r != 1)
            return ssl_again(s, r) < 0 ? -1 : 0;
        s->ssl_wwrite = false;
        s->phase = LD_SP_OPEN;
    }
    return 1;
}

uint8_t *ld_stream_reserve(struct ld_stream *s, size_t n)
{
    if (n > s->ocap - s->olen) {
        if (n > s->ocap - (s->olen - s->ooff))
            return NULL;
        /* compact: OpenSSL accepts a moved buffer on a retry (SSL_MODE_ACCEPT_MOVING_...) */
        memmove(s->obuf, s->obuf + s->ooff, s->olen - s->ooff);
        s->olen -= s->ooff;
        s->ooff = 0;
    }
    return s->obuf + s->olen;
}

void ld_stream_commit(struct ld_stream *s, size_t n)
{
    s->olen += (uint32_t)n;
}

int ld_stream_flush(struct ld_stream *s)
{
    if (s->fd < 0)
        return -1;
    if (s->phase != LD_SP_OPEN)
        return 0; /* queued until the connection is up */
    /* Bounded: the buffer holds at most ocap bytes; a short write ends the loop. */
    while (s->ooff < s->olen) {
        size_t left = s->olen - s->ooff;
        if (s->ssl) {
            int w = SSL_write(s->ssl, s->obuf + s->ooff, left > INT32_MAX ? INT32_MAX : (int)left);
            if (w <= 0)
                return ssl_again(s, w);
            s->ssl_wwrite = false;
            s->ooff += (uint32_t)w;
        } else {
            ssize_t w = send(s->fd, s->obuf + s->ooff, left, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w < 0)
                return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
            s->ooff += (uint32_t)w;
            if ((size_t)w < left)
                return 0;
        }
    }
    s->ooff = s->olen = 0;
    return 0;
}

int ld_stream_read(struct ld_stream *s)
{
    if (s->fd < 0)
        return -1;
    if (s->phase != LD_SP_OPEN || s->ilen >= s->icap)
        return 0;
    size_t room = s->icap - s->ilen;
    if (s->ssl) {
        int r = SSL_read(s->ssl, s->ibuf + s->ilen, room > INT32_MAX ? INT32_MAX : (int)room);
        if (r <= 0)
            return ssl_again(s, r);
        s->ssl_wwrite = false;
        s->ilen += (uint32_t)r;
        return r;
    }
    ssize_t r = recv(s->fd, s->ibuf + s->ilen, room, MSG_DONTWAIT);
    if (r == 0)
        return -1; /* the server closed the connection */
    if (r < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    s->ilen += (uint32_t)r;
    return (int)r;
}

bool ld_stream_pending(const struct ld_stream *s)
{
    return s->ssl && s->phase == LD_SP_OPEN && SSL_pending(s->ssl) > 0;
}

bool ld_stream_wants_out(const struct ld_stream *s)
{
    if (s->fd < 0)
        return false;
    if (s->phase == LD_SP_CONNECTING)
        return true;
    return s->ssl_wwrite || (s->phase == LD_SP_OPEN && s->ooff < s->olen);
}
