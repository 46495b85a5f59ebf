/* Unit tests of src/net without its threads: endpoint lists, binding (port 0 shared by the
 * workers, collisions told apart), and one worker driven on the test's own thread through the
 * engine's internals (net-int.h): recvmmsg batches and their headroom, the send queue flushed
 * with sendmmsg (copies, references into the receive buffers, runs per socket, a full queue, a
 * full arena, a bad destination), receive slots kept while queued sends point into them,
 * sockets closed inside their own callback, tasks, and framed TCP streams (frames split and
 * joined, bad and oversized frames, the connection limit, the output bound, a stream freed once
 * when the stop comes before its reaper, a stream handed over to the other worker); and the TCP
 * relay's pieces: exclusive listening sockets, connections from them, a pipe with a stream.
 * The worker driven here runs the epoll data path (net.io = epoll); which path the engine picks
 * is tested too, with the kernel's io_uring refused by a seccomp filter as a kernel without it
 * or a sandbox would refuse it (the io_uring path itself: tests/integration/net_io.py). */
#include "config.h"

#include "net/net-int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mlcheck.h"
#include "mlseccomp.h"

/* ------------------------------------------------------------------ endpoint lists */

START_TEST(endpoints_parse)
{
    struct net_endpoint *eps;
    size_t n;
    char err[256];
    ck_assert_int_eq(net_endpoints_parse("udp://127.0.0.1:3479, TCP://[::1]:443,tls://10.0.0.1",
                                         &eps, &n, err, sizeof err),
                     0);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(eps[0].transport, NET_UDP);
    ck_assert_uint_eq(ml_addr_port((struct sockaddr *)&eps[0].addr), 3479);
    ck_assert_int_eq(eps[1].transport, NET_TCP); /* the scheme's case does not matter */
    ck_assert_int_eq(eps[1].addr.ss_family, AF_INET6);
    ck_assert_uint_eq(ml_addr_port((struct sockaddr *)&eps[1].addr), 443);
    ck_assert_int_eq(eps[2].transport, NET_TLS);
    ck_assert_uint_eq(ml_addr_port((struct sockaddr *)&eps[2].addr), 5349); /* TURN over TLS */
    free(eps);
    ck_assert_int_eq(net_endpoints_parse("udp://0.0.0.0", &eps, &n, err, sizeof err), 0);
    ck_assert_uint_eq(ml_addr_port((struct sockaddr *)&eps[0].addr), 3478);
    free(eps);
    ck_assert_int_eq(net_endpoints_parse("", &eps, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 0);
    free(eps);

    ck_assert_int_eq(net_endpoints_parse("127.0.0.1:3478", &eps, &n, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "needs a scheme"));
    ck_assert_int_eq(
        net_endpoints_validate("udp://127.0.0.1:3478, sctp://127.0.0.1", err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "sctp://127.0.0.1"));
    ck_assert_int_eq(net_endpoints_validate("udp://not-an-address:1", err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "expected IP:PORT"));
    ck_assert_int_eq(net_endpoints_validate("udp://127.0.0.1:99999", err, sizeof err), -1);

    ck_assert_str_eq(net_transport_name(NET_UDP), "udp");
    ck_assert_str_eq(net_transport_name(NET_TLS), "tls");
    ck_assert_str_eq(net_transport_name(NET_SHARED), "shared");
    ck_assert_int_eq(net_endpoints_parse("shared://127.0.0.1", &eps, &n, err, sizeof err), 0);
    ck_assert_int_eq(eps[0].transport, NET_SHARED);
    ck_assert_uint_eq(ml_addr_port((struct sockaddr *)&eps[0].addr), 443); /* its default */
    free(eps);
}
END_TEST

/* What a shared:// listener makes of a connection's first bytes. */
START_TEST(first_bytes)
{
    static const struct {
        const char *b;
        size_t n;
        bool tls;
        enum net_first want;
    } cases[] = {
        {"", 0, true, NET_FIRST_MORE},
        {"\x16", 1, true, NET_FIRST_MORE},                /* a TLS record type, no version yet */
        {"\x16\x03\x01\x02\x00", 5, true, NET_FIRST_TLS}, /* a ClientHello's record */
        {"\x16\x03", 2, false, NET_FIRST_MORE},           /* inside TLS: a STUN-like first byte */
        {"\x16\x03\x01\x02\x00\x01\x00\x01", 8, true, NET_FIRST_TLS},
        {"\x00\x01\x00\x00\x21\x12\xA4\x42", 8, true, NET_FIRST_TURN},  /* Binding */
        {"\x00\x03\x00\x08\x21\x12\xA4\x42", 8, false, NET_FIRST_TURN}, /* Allocate, in TLS */
        {"\x00\x01\x00\x00\x21\x12\xA4", 7, true, NET_FIRST_MORE},      /* cookie cut short */
        {"\x00\x01\x00\x00\xde\xad\xbe\xef", 8, true, NET_FIRST_BAD},   /* no magic cookie */
        {"\x40\x00\x00\x04", 4, true, NET_FIRST_TURN},                  /* ChannelData */
        {"\x7F\xFF\x00\x04", 4, false, NET_FIRST_TURN},
        {"GET / HTTP/1.1\r\n", 16, true, NET_FIRST_HTTP},
        {"GET ", 4, false, NET_FIRST_HTTP},
        {"GE", 2, true, NET_FIRST_MORE},  /* could still be GET */
        {"GEX", 3, true, NET_FIRST_TURN}, /* no method: 'G' is a ChannelData number */
        {"POST /api", 9, true, NET_FIRST_HTTP},
        {"OPTIONS ", 8, true, NET_FIRST_HTTP},
        {"OPTION", 6, true, NET_FIRST_MORE},
        {"DELETE /x", 9, true, NET_FIRST_HTTP},
        {"PATCH /x", 8, true, NET_FIRST_HTTP},
        {"HEAD / ", 7, true, NET_FIRST_HTTP},
        {"PUT /", 5, true, NET_FIRST_HTTP},
        {"PRI * HTTP/2.0", 14, true, NET_FIRST_HTTP}, /* h2's preface: lws answers it */
        {"PRX", 3, true, NET_FIRST_TURN},
        {"\xff\xfe\x00\x01", 4, true, NET_FIRST_BAD},
        {"\x80\x00", 2, true, NET_FIRST_BAD},
        {"\x16\x02\x00\x00\x00\x00\x00\x00", 8, true, NET_FIRST_BAD}, /* SSL 2 era */
    };
    for (size_t i = 0; i < ML_ARRAY_LEN(cases); i++)
        ck_assert_msg(net_first_bytes((const uint8_t *)cases[i].b, cases[i].n, cases[i].tls) ==
                          cases[i].want,
                      "case %zu", i);
}
END_TEST

/* A ClientHello record around the extensions given (NULL: no extensions block at all): TLS 1.2
 * legacy version, a zero random, no session id, one cipher suite, null compression. Returns
 * the bytes written to out (room for 600). */
static size_t hello_build(uint8_t *out, const uint8_t *exts, size_t elen)
{
    uint8_t body[512];
    size_t n = 0;
    body[n++] = 3;
    body[n++] = 3;
    memset(body + n, 0, 32);
    n += 32;
    body[n++] = 0;                                   /* session id */
    memcpy(body + n, "\x00\x02\x13\x01\x01\x00", 6); /* one suite, null compression */
    n += 6;
    if (exts) {
        body[n++] = (uint8_t)(elen >> 8);
        body[n++] = (uint8_t)elen;
        memcpy(body + n, exts, elen);
        n += elen;
    }
    size_t m = 0;
    memcpy(out, "\x16\x03\x01", 3);
    out[3] = (uint8_t)((n + 4) >> 8);
    out[4] = (uint8_t)(n + 4);
    out[5] = 1;
    out[6] = 0;
    out[7] = (uint8_t)(n >> 8);
    out[8] = (uint8_t)n;
    m = 9;
    memcpy(out + m, body, n);
    return m + n;
}

/* The same handshake message in records of one byte each. */
static size_t hello_split(uint8_t *out, const uint8_t *rec, size_t len)
{
    size_t m = 0;
    for (size_t i = 5; i < len; i++) {
        memcpy(out + m, "\x16\x03\x01\x00\x01", 5);
        out[m + 5] = rec[i];
        m += 6;
    }
    return m;
}

/* What the shared listener reads of a ClientHello: ALPN and SNI; more, or not a hello. */
START_TEST(client_hello)
{
    /* SNI a.example; ALPN h2, http/1.1; an unknown extension */
    static const uint8_t exts[] = "\x00\x00\x00\x0e\x00\x0c\x00\x00\x09"
                                  "a.example"
                                  "\x00\x10\x00\x0e\x00\x0c\x02h2\x08http/1.1"
                                  "\xfa\xfa\x00\x00";
    uint8_t rec[600], split[4000], buf[4000];
    struct net_hello h;
    size_t n = hello_build(rec, exts, sizeof exts - 1);
    ck_assert_int_eq(net_hello_parse(rec, n, &h), NET_HELLO_DONE);
    ck_assert_uint_eq(h.len, n);
    ck_assert(h.alpn && h.alpn_h2 && h.alpn_http11 && !h.alpn_turn);
    ck_assert_uint_eq(h.alpn_count, 2);
    ck_assert_str_eq(h.sni, "a.example");
    for (size_t k = 0; k < n; k++) /* every prefix asks for more */
        ck_assert_msg(net_hello_parse(rec, k, &h) == NET_HELLO_MORE, "prefix %zu", k);
    /* what follows the hello's records is not its */
    memcpy(buf, rec, n);
    memcpy(buf + n, "\x17\x03\x03\x00\x01\x00", 6);
    ck_assert_int_eq(net_hello_parse(buf, n + 6, &h), NET_HELLO_DONE);
    ck_assert_uint_eq(h.len, n);
    /* in one-byte records */
    size_t sn = hello_split(split, rec, n);
    ck_assert_int_eq(net_hello_parse(split, sn, &h), NET_HELLO_DONE);
    ck_assert_uint_eq(h.len, sn);
    ck_assert(h.alpn_http11 && h.alpn_h2);
    ck_assert_int_eq(net_hello_parse(split, sn - 3, &h), NET_HELLO_MORE);
    ck_assert(!h.alpn_http11); /* nothing reported before DONE */
    /* more bytes after the hello in its own record */
    memcpy(buf, rec, n);
    buf[n] = 0;
    buf[4] = (uint8_t)(buf[4] + 1);
    ck_assert_int_eq(net_hello_parse(buf, n + 1, &h), NET_HELLO_NOT);

    /* no extensions; stun.turn; no ALPN */
    n = hello_build(rec, NULL, 0);
    ck_assert_int_eq(net_hello_parse(rec, n, &h), NET_HELLO_DONE);
    ck_assert(!h.alpn && !h.sni[0]);
    static const uint8_t turn[] = "\x00\x10\x00\x0c\x00\x0a\x09stun.turn";
    n = hello_build(rec, turn, sizeof turn - 1);
    ck_assert_int_eq(net_hello_parse(rec, n, &h), NET_HELLO_DONE);
    ck_assert(h.alpn_turn && !h.alpn_http11);

    /* malformed ALPN: an empty name, a list length that disagrees, twice */
    static const uint8_t *bad[] = {
        (const uint8_t *)"\x00\x10\x00\x04\x00\x02\x00\x00",
        (const uint8_t *)"\x00\x10\x00\x05\x00\x04\x02h2",
        (const uint8_t *)"\x00\x10\x00\x05\x00\x03\x02h2\x00\x10\x00\x05\x00\x03\x02h2",
        (const uint8_t *)"\x00\x10\x00\x02\x00\x00",       /* an empty list */
        (const uint8_t *)"\x00\x10\x00\x07\x00\x03\x02h2", /* longer than the extensions */
    };
    static const size_t badlen[] = {8, 9, 18, 6, 9};
    for (size_t i = 0; i < ML_ARRAY_LEN(bad); i++) {
        n = hello_build(rec, bad[i], badlen[i]);
        ck_assert_msg(net_hello_parse(rec, n, &h) == NET_HELLO_NOT, "bad ALPN %zu", i);
    }

    /* not a hello: another record type, another handshake type, an empty record, a length
     * past what is looked at, garbage after a record header */
    n = hello_build(rec, NULL, 0);
    memcpy(buf, rec, n);
    buf[0] = 0x17;
    ck_assert_int_eq(net_hello_parse(buf, n, &h), NET_HELLO_NOT);
    memcpy(buf, rec, n);
    buf[5] = 2; /* a ServerHello */
    ck_assert_int_eq(net_hello_parse(buf, n, &h), NET_HELLO_NOT);
    ck_assert_int_eq(net_hello_parse((const uint8_t *)"\x16\x03\x01\x00\x00", 5, &h),
                     NET_HELLO_NOT);
    ck_assert_int_eq(
        net_hello_parse((const uint8_t *)"\x16\x03\x01\x00\x04\x01\x01\x00\x00", 9, &h),
        NET_HELLO_NOT); /* 64 KiB: more than NET_HELLO_MAX */
    ck_assert_int_eq(net_hello_parse((const uint8_t *)"\x16\x03\x01\x00\x40\xee\xee", 7, &h),
                     NET_HELLO_NOT);
    ck_assert_int_eq(net_hello_parse((const uint8_t *)"\x16\x03\x01\x00\x40\x01\x01", 7, &h),
                     NET_HELLO_NOT); /* a hello of 64 KiB or more, told by its second byte */
    ck_assert_int_eq(net_hello_parse((const uint8_t *)"\x16\x03\x01\x00\x40\x01\x00", 7, &h),
                     NET_HELLO_MORE);
    ck_assert_int_eq(net_hello_parse((const uint8_t *)"\x16\x04", 2, &h), NET_HELLO_NOT);
    ck_assert_int_eq(net_hello_parse((const uint8_t *)"\x16\x03", 2, &h), NET_HELLO_MORE);
    ck_assert_int_eq(net_hello_parse(NULL, 0, &h), NET_HELLO_MORE);
}
END_TEST

START_TEST(tls_settings)
{
    int v;
    char err[256];
    ck_assert_int_eq(net_tls_version_parse("1.3", &v), 0);
    ck_assert_int_eq(v, TLS1_3_VERSION);
    ck_assert_int_eq(net_tls_version_parse("1.2", &v), 0);
    ck_assert_int_eq(v, TLS1_2_VERSION);
    ck_assert_int_eq(net_tls_version_parse("1.1", &v), -1);
    ck_assert_int_eq(net_tls_version_validate("1.0", err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "1.2 or 1.3"));
    /* a context is built whole or not at all: a missing file names itself */
    struct net_tls_settings t = {"/nonexistent/cert.pem", "/nonexistent/key.pem", "1.2", NULL,
                                 NULL};
    ck_assert_ptr_null(net_tls_ctx_new(&t, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/cert.pem"));
}
END_TEST

/* ------------------------------------------------------------------ a worker on this thread */

/* What the handler saw, and what it is asked to do. */
enum mode {
    KEEP,       /* record the datagrams */
    ECHO_REF,   /* send each datagram back from its own buffer (net_udp_send_ref) */
    ECHO_COPY,  /* send each back as a copy, then scribble over the original */
    CLOSE_SELF, /* close the socket from its own callback */
};

struct seen {
    enum mode mode;
    unsigned calls, max_batch, datagrams;
    uint8_t first[64][32]; /* the first bytes of the first 64 datagrams */
    int from_socket[64];   /* which listener they came to */
    /* streams */
    unsigned opens, closes, frames;
    size_t frame_len[16];
    uint8_t frame[16][64];
    struct net_stream *last;
    bool refuse_open;
    /* handover and pipes */
    struct net_worker *frame_worker; /* the worker of the last frame */
    struct net_worker *accepted_by;  /* the worker of the first open */
    struct net_conn *pipe_to;        /* a "PIPE" frame pipes its stream to this connection */
    size_t pipe_max;
    unsigned conn_events[3]; /* by enum net_conn_event */
};

static struct seen seen;
static struct net_engine *eng;
static struct net_worker *wk;

static void on_udp(struct net_udp *u, void *arg, struct net_pkt *pkts, unsigned n)
{
    struct seen *s = arg;
    s->calls++;
    if (n > s->max_batch)
        s->max_batch = n;
    for (unsigned i = 0; i < n; i++) {
        /* the headroom and the tailroom are the handler's to write */
        memset(pkts[i].data - NET_HEADROOM, 0xA5, NET_HEADROOM);
        memset(pkts[i].data + pkts[i].len, 0x5A, NET_TAILROOM);
        if (s->datagrams < 64) {
            memcpy(s->first[s->datagrams], pkts[i].data, pkts[i].len < 32 ? pkts[i].len : 32);
            s->from_socket[s->datagrams] = net_udp_endpoint(u);
        }
        s->datagrams++;
        const struct sockaddr *from = (const struct sockaddr *)&pkts[i].from;
        if (s->mode == ECHO_REF) {
            ck_assert_int_eq(net_udp_send_ref(u, from, pkts[i].data, pkts[i].len), 0);
        } else if (s->mode == ECHO_COPY) {
            ck_assert_int_eq(net_udp_send(u, from, pkts[i].data, pkts[i].len), 0);
            memset(pkts[i].data, 'X', pkts[i].len);
        } else if (s->mode == CLOSE_SELF) {
            net_udp_close(u);
            ck_assert_int_eq(net_udp_send(u, from, "late", 4), -1); /* closed: refused */
            return;
        }
    }
}

/* Frames: "ML", a 16-bit length of the payload, the payload. */
static long frame_len(const uint8_t *buf, size_t avail)
{
    ML_UNUSED(avail);
    if (buf[0] != 'M' || buf[1] != 'L')
        return -1;
    return 4 + ((long)buf[2] << 8 | buf[3]);
}

static void *on_open(void *state, struct net_stream *s)
{
    struct seen *st = state;
    if (!st->opens++)
        st->accepted_by = s->w;
    st->last = s;
    return st->refuse_open ? NULL : st;
}

static void on_frame(void *state, struct net_stream *s, void *conn, uint8_t *data, size_t len)
{
    struct seen *st = state;
    ck_assert_ptr_eq(conn, st);
    st->frame_worker = s->w;
    /* "MOVE" goes from the worker that accepted to the other one, where it is answered like
     * any frame */
    if (len >= 8 && !memcmp(data + 4, "MOVE", 4) && s->w == st->accepted_by) {
        ck_assert_int_eq(net_stream_handover(s, 1 - net_worker_id(s->w), data, len), 0);
        return;
    }
    if (st->frames < 16) {
        st->frame_len[st->frames] = len;
        memcpy(st->frame[st->frames], data, len < 64 ? len : 64);
    }
    st->frames++;
    /* an answer per frame: the payload back */
    ck_assert_int_eq(net_stream_send(s, data, len), 0);
    /* "PIPE": after the answer, the stream carries bytes to and from st->pipe_to */
    if (len >= 8 && !memcmp(data + 4, "PIPE", 4))
        ck_assert_int_eq(net_conn_pipe(st->pipe_to, s, st->pipe_max), 0);
}

static void on_close(void *state, struct net_stream *s, void *conn)
{
    struct seen *st = state;
    ML_UNUSED(s);
    ck_assert_ptr_eq(conn, st);
    st->closes++;
}

static const struct net_handler handler = {
    .udp_recv = on_udp,
    .stream_open = on_open,
    .stream_frame = on_frame,
    .stream_close = on_close,
    .frame_len = frame_len,
};

/* Settings a test wants beyond start()'s: those set here replace its own, once. */
static struct net_settings tweak;

/* An engine on loopback, port 0, whose first worker is served by this thread (its sockets are
 * armed here, as worker_main would on a thread of its own). */
static void start(const char *listen, unsigned workers, unsigned batch)
{
    struct net_endpoint *eps;
    size_t n;
    char err[256] = "";
    memset(&seen, 0, sizeof seen);
    ck_assert_int_eq(net_endpoints_parse(listen, &eps, &n, err, sizeof err), 0);
    struct net_settings set = {.workers = workers,
                               .io = NET_IO_EPOLL, /* this thread drives recvmmsg/sendmmsg */
                               .udp_batch = batch,
                               .stream_max_frame = 512,
                               .stream_out_max = 4096,
                               .stream_idle_s = 0,
                               .max_streams = 1};
    if (tweak.max_streams)
        set.max_streams = tweak.max_streams;
    set.max_streams_per_addr = tweak.max_streams_per_addr;
    set.stream_frame_s = tweak.stream_frame_s;
    set.stream_setup_s = tweak.stream_setup_s;
    memset(&tweak, 0, sizeof tweak);
    eng = net_engine_new(&set, eps, n, &handler, NULL, NULL, err, sizeof err);
    free(eps);
    ck_assert_msg(eng != NULL, "%s", err);
    wk = net_engine_worker(eng, 0);
    wk->state = &seen;
    for (size_t i = 0; i < n; i++) {
        if (wk->udp[i]) {
            wk->udp[i]->arg = &seen;
            net_udp_arm(wk->udp[i], err, sizeof err);
        }
        if (wk->tcp_fd[i] >= 0) {
            ck_assert_int_eq(net_stream_listen(wk, i, wk->tcp_fd[i], err, sizeof err), 0);
            wk->tcp_fd[i] = -1;
        }
    }
    ck_assert_str_eq(err, "");
}

static void stop(void)
{
    net_streams_close_all(wk);
    net_engine_free(eng);
    eng = NULL;
}

/* One iteration of the worker's loop as worker_main runs it: callbacks, then the flush. */
static void iterate(void)
{
    event_base_loop(wk->base, EVLOOP_NONBLOCK);
    net_worker_flush(wk);
}

/* Iterates until cond holds (checked after each iteration), for at most 3 s. */
#define ITERATE_UNTIL(cond)                                                                        \
    do {                                                                                           \
        for (int i_ = 0; i_ < 3000 && !(cond); i_++) {                                             \
            iterate();                                                                             \
            if (!(cond))                                                                           \
                usleep(1000);                                                                      \
        }                                                                                          \
        ck_assert_msg(cond, "timed out waiting for " #cond);                                       \
    } while (0)

static int client_udp(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    ck_assert_int_ge(fd, 0);
    int big = 8 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void send_to(int fd, size_t endpoint, const void *data, size_t len)
{
    const struct sockaddr *to = net_engine_bound(eng, endpoint);
    ck_assert_int_eq(sendto(fd, data, len, 0, to, ml_addr_len(to)), (ssize_t)len);
}

/* A datagram within timeout_ms, or -1. */
static ssize_t recv_within(int fd, void *buf, size_t len, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
        return -1;
    return recv(fd, buf, len, MSG_DONTWAIT);
}

/* Waits (briefly) until the kernel has queued n datagrams for the listener, so that one
 * wake-up sees them all. */
static void settle(void)
{
    usleep(20000);
}

START_TEST(bind_port_zero_shared)
{
    start("udp://127.0.0.1:0, tcp://127.0.0.1:0", 2, 64);
    const struct sockaddr *bound = net_engine_bound(eng, 0);
    uint16_t port = ml_addr_port(bound);
    ck_assert_uint_ne(port, 0);
    /* both workers serve the one port chosen (SO_REUSEPORT) */
    struct net_worker *w1 = net_engine_worker(eng, 1);
    ck_assert_uint_eq(ml_addr_port(net_udp_local(w1->udp[0])), port);
    ck_assert_uint_eq(ml_addr_port(net_udp_local(wk->udp[0])), port);
    ck_assert_int_eq(net_udp_endpoint(wk->udp[0]), 0);
    ck_assert_uint_ne(ml_addr_port(net_engine_bound(eng, 1)), 0);
    ck_assert_uint_eq(net_engine_workers(eng), 2);
    ck_assert_ptr_null(net_engine_worker(eng, 2));
    /* anyone else binding it without SO_REUSEPORT collides, and is told so */
    bool inuse = false;
    char err[256];
    ck_assert_int_eq(net_udp_socket(bound, NULL, false, &inuse, err, sizeof err), -1);
    ck_assert(inuse);
    ck_assert_ptr_nonnull(strstr(err, "bind udp"));
    stop();

    /* a tls:// listener without a certificate is refused before anything is bound */
    struct net_endpoint *eps;
    size_t n;
    ck_assert_int_eq(net_endpoints_parse("tls://127.0.0.1:0", &eps, &n, err, sizeof err), 0);
    struct net_settings set = {.workers = 1, .io = NET_IO_EPOLL, .udp_batch = 8};
    ck_assert_ptr_null(net_engine_new(&set, eps, n, &handler, NULL, NULL, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "turn.tls-cert"));
    free(eps);
}
END_TEST

START_TEST(udp_batches)
{
    start("udp://127.0.0.1:0", 1, 64);
    int c = client_udp();
    char msg[32];
    for (int i = 0; i < 5; i++) {
        ml_snprintf(msg, sizeof msg, "datagram %d", i);
        send_to(c, 0, msg, strlen(msg));
    }
    settle();
    ITERATE_UNTIL(seen.datagrams == 5);
    ck_assert_uint_eq(seen.max_batch, 5); /* one recvmmsg took them all */
    for (int i = 0; i < 5; i++) {
        ml_snprintf(msg, sizeof msg, "datagram %d", i);
        /* in order, and untouched by the headroom and tailroom written around the others */
        ck_assert_int_eq(memcmp(seen.first[i], msg, strlen(msg)), 0);
    }
    const struct net_counters *k = net_worker_counters(wk);
    ck_assert_uint_eq(k->udp_rx_packets, 5);
    ck_assert_uint_eq(k->udp_rx_bytes, 5 * strlen("datagram 0"));
    ck_assert_uint_eq(k->udp_rx_batches, 1);
    ck_assert_uint_eq(k->udp_rx_batch_hist[2], 1); /* a batch of 4-7 */
    close(c);
    stop();

    /* net.udp-batch bounds each recvmmsg */
    start("udp://127.0.0.1:0", 1, 2);
    c = client_udp();
    for (int i = 0; i < 5; i++)
        send_to(c, 0, "x", 1);
    settle();
    ITERATE_UNTIL(seen.datagrams == 5);
    ck_assert_uint_eq(seen.max_batch, 2);
    k = net_worker_counters(wk);
    ck_assert_uint_eq(k->udp_rx_batches, 3);
    ck_assert_uint_eq(k->udp_rx_batch_hist[1], 2); /* two of 2-3 */
    ck_assert_uint_eq(k->udp_rx_batch_hist[0], 1); /* and the last one alone */
    struct net_counters sum;
    net_engine_counters(eng, &sum);
    ck_assert_uint_eq(sum.udp_rx_packets, 5);
    close(c);
    stop();
}
END_TEST

/* What is queued during a batch leaves when the iteration ends, as a copy or from the receive
 * buffer itself, each to its sender. */
START_TEST(udp_send_queue)
{
    for (int mode = ECHO_REF; mode <= ECHO_COPY; mode++) {
        start("udp://127.0.0.1:0", 1, 64);
        seen.mode = (enum mode)mode;
        int c = client_udp();
        char msg[32], buf[64];
        for (int i = 0; i < 3; i++) {
            ml_snprintf(msg, sizeof msg, "echo %d", i);
            send_to(c, 0, msg, strlen(msg));
        }
        settle();
        event_base_loop(wk->base, EVLOOP_NONBLOCK);
        ck_assert_uint_eq(seen.datagrams, 3);
        /* nothing left before the flush */
        ck_assert_int_eq(recv_within(c, buf, sizeof buf, 50), -1);
        ck_assert_uint_eq(wk->tx.n, 3);
        net_worker_flush(wk);
        for (int i = 0; i < 3; i++) {
            ml_snprintf(msg, sizeof msg, "echo %d", i);
            ssize_t n = recv_within(c, buf, sizeof buf, 2000);
            ck_assert_int_eq(n, (ssize_t)strlen(msg));
            ck_assert_int_eq(memcmp(buf, msg, (size_t)n), 0); /* the copy was taken in time */
        }
        const struct net_counters *k = net_worker_counters(wk);
        ck_assert_uint_eq(k->udp_tx_packets, 3);
        ck_assert_uint_eq(k->udp_tx_bytes, 3 * strlen("echo 0"));
        ck_assert_uint_eq(k->udp_tx_dropped, 0);
        /* outside a batch a send leaves at once */
        ck_assert_int_eq(net_udp_send(wk->udp[0], net_udp_local(wk->udp[0]), "x", 1), 0);
        ck_assert_uint_eq(wk->tx.n, 0);
        close(c);
        stop();
    }
}
END_TEST

/* More than the queue holds, more bytes than the arena holds, and a destination the socket
 * cannot reach: everything else still arrives, in order. */
START_TEST(udp_queue_limits)
{
    start("udp://127.0.0.1:0", 1, 64);
    int c = client_udp();
    struct sockaddr_storage to;
    socklen_t tl = sizeof to;
    ck_assert_int_eq(getsockname(c, (struct sockaddr *)&to, &tl), 0);
    struct net_udp *u = wk->udp[0];
    static uint8_t big[8000];
    wk->in_batch = true; /* as inside a receive callback */
    unsigned count = NET_TXQ_LEN + 10;
    for (unsigned i = 0; i < count; i++) {
        uint32_t v = htonl(i);
        ck_assert_int_eq(net_udp_send(u, (struct sockaddr *)&to, &v, sizeof v), 0);
    }
    ck_assert_uint_eq(wk->tx.n, 10); /* a full queue was flushed on the way */
    /* an IPv6 destination on an IPv4 socket: that datagram alone is dropped */
    struct sockaddr_in6 v6 = {
        .sin6_family = AF_INET6, .sin6_port = htons(9), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    ck_assert_int_eq(net_udp_send(u, (struct sockaddr *)&v6, "lost", 4), 0);
    for (unsigned i = 0; i < 40; i++) { /* 320 KB: more than the 256 KB arena */
        memset(big, (int)(i & 0xFF), sizeof big);
        ck_assert_int_eq(net_udp_send(u, (struct sockaddr *)&to, big, sizeof big), 0);
    }
    wk->in_batch = false;
    net_worker_flush(wk);
    uint8_t buf[9000];
    for (unsigned i = 0; i < count; i++) {
        ck_assert_int_eq(recv_within(c, buf, sizeof buf, 2000), 4);
        uint32_t v;
        memcpy(&v, buf, 4);
        ck_assert_uint_eq(ntohl(v), i);
    }
    for (unsigned i = 0; i < 40; i++) {
        ck_assert_int_eq(recv_within(c, buf, sizeof buf, 2000), (ssize_t)sizeof big);
        ck_assert_uint_eq(buf[0], i & 0xFF);
        ck_assert_uint_eq(buf[sizeof big - 1], i & 0xFF);
    }
    const struct net_counters *k = net_worker_counters(wk);
    ck_assert_uint_eq(k->udp_tx_packets, count + 40);
    ck_assert_uint_eq(k->udp_tx_dropped, 1);
    close(c);
    stop();
}
END_TEST

/* Sends queued by one socket's callback may point into its receive slots; the next socket of
 * the same iteration receives behind them, and a socket that finds too few free slots flushes
 * first. Either way every echo carries its own datagram. */
START_TEST(udp_receive_slots_kept)
{
    start("udp://127.0.0.1:0, udp://127.0.0.1:0", 1, 64);
    seen.mode = ECHO_REF;
    int c = client_udp();
    char msg[32];
    unsigned per[2] = {3, 2};
    for (unsigned round = 0; round < 2; round++) {
        for (size_t ep = 0; ep < 2; ep++)
            for (unsigned i = 0; i < per[ep]; i++) {
                ml_snprintf(msg, sizeof msg, "%zu:%02u", ep, i);
                send_to(c, ep, msg, strlen(msg));
            }
        settle();
        unsigned before = seen.datagrams, want = per[0] + per[1];
        ITERATE_UNTIL(seen.datagrams == before + want);
        unsigned got[2] = {0, 0};
        for (unsigned i = 0; i < want; i++) {
            char buf[64];
            ssize_t n = recv_within(c, buf, sizeof buf - 1, 2000);
            ck_assert_int_eq(n, 4);
            buf[n] = 0;
            unsigned ep = (unsigned)(buf[0] - '0'), k = (unsigned)strtoul(buf + 2, NULL, 10);
            ck_assert_uint_lt(ep, 2);
            ck_assert_uint_eq(k, got[ep]); /* each socket's echoes in order, none overwritten */
            got[ep]++;
        }
        ck_assert_uint_eq(got[0], per[0]);
        ck_assert_uint_eq(got[1], per[1]);
        /* second round: the first socket fills 60 of the 64 slots */
        per[0] = 60;
        per[1] = 5;
    }
    close(c);
    stop();
}
END_TEST

static void bump(struct net_worker *w, void *arg)
{
    ck_assert_ptr_eq(w, wk);
    (*(int *)arg)++;
}

START_TEST(udp_close_in_callback_and_tasks)
{
    start("udp://127.0.0.1:0", 1, 64);
    char err[256];
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct net_udp *u =
        net_udp_open(wk, (struct sockaddr *)&any, on_udp, &seen, NULL, err, sizeof err);
    ck_assert_msg(u != NULL, "%s", err);
    ck_assert_int_eq(net_udp_endpoint(u), -1);
    ck_assert_int_ge(net_udp_fd(u), 0);
    seen.mode = CLOSE_SELF;
    int c = client_udp();
    const struct sockaddr *to = net_udp_local(u);
    ck_assert_int_eq(sendto(c, "a", 1, 0, to, ml_addr_len(to)), 1);
    ck_assert_int_eq(sendto(c, "b", 1, 0, to, ml_addr_len(to)), 1);
    settle();
    ITERATE_UNTIL(seen.calls == 1);
    for (int i = 0; i < 5; i++)
        iterate(); /* the socket is gone: no second call, nothing freed twice */
    ck_assert_uint_eq(seen.calls, 1);
    ck_assert_uint_eq(seen.datagrams, 1);

    /* a bound socket held in reserve, then served */
    int fd = net_udp_bind(wk, (struct sockaddr *)&any, NULL, err, sizeof err);
    ck_assert_int_ge(fd, 0);
    seen.mode = KEEP;
    u = net_udp_adopt(wk, fd, on_udp, &seen, err, sizeof err);
    ck_assert_ptr_nonnull(u);
    to = net_udp_local(u);
    ck_assert_int_eq(sendto(c, "c", 1, 0, to, ml_addr_len(to)), 1);
    ITERATE_UNTIL(seen.datagrams == 2);
    net_udp_close(u);

    /* tasks run on the worker's loop, in order */
    int ran = 0;
    ck_assert_int_eq(net_worker_post(wk, bump, &ran), 0);
    ck_assert_int_eq(net_worker_post(wk, bump, &ran), 0);
    ck_assert_int_eq(ran, 0);
    ITERATE_UNTIL(ran == 2);
    close(c);
    stop();
}
END_TEST

/* ------------------------------------------------------------------ streams */

static int client_tcp(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    const struct sockaddr *to = net_engine_bound(eng, 0);
    ck_assert_int_eq(connect(fd, to, ml_addr_len(to)), 0);
    return fd;
}

static size_t frame(uint8_t *out, const char *payload)
{
    size_t n = strlen(payload);
    out[0] = 'M';
    out[1] = 'L';
    out[2] = (uint8_t)(n >> 8);
    out[3] = (uint8_t)n;
    memcpy(out + 4, payload, n);
    return n + 4;
}

/* Reads exactly len bytes while the worker runs. */
static void read_all(int fd, uint8_t *buf, size_t len)
{
    size_t got = 0;
    for (int i = 0; i < 3000 && got < len; i++) {
        iterate();
        ssize_t n = recv(fd, buf + got, len - got, MSG_DONTWAIT);
        if (n > 0)
            got += (size_t)n;
        else
            usleep(1000);
    }
    ck_assert_uint_eq(got, len);
}

/* True when the server closed the connection (EOF) within 3 s of running the worker. */
static bool closed_by_server(int fd)
{
    char buf[256];
    for (int i = 0; i < 3000; i++) {
        iterate();
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
        usleep(1000);
    }
    return false;
}

START_TEST(stream_frames)
{
    start("tcp://127.0.0.1:0", 1, 64);
    int c = client_tcp();
    ITERATE_UNTIL(seen.opens == 1);
    ck_assert_int_eq(net_stream_transport(seen.last), NET_TCP);
    ck_assert_int_eq(net_stream_endpoint(seen.last), 0);
    ck_assert_uint_eq(ml_addr_port(net_stream_local(seen.last)),
                      ml_addr_port(net_engine_bound(eng, 0)));
    ck_assert_uint_ne(ml_addr_port(net_stream_peer(seen.last)), 0);
    /* two frames in one segment, then one frame in three pieces */
    uint8_t out[256];
    size_t n = frame(out, "one");
    n += frame(out + n, "two!");
    ck_assert_int_eq(send(c, out, n, 0), (ssize_t)n);
    ITERATE_UNTIL(seen.frames == 2);
    n = frame(out, "three, split");
    ck_assert_int_eq(send(c, out, 2, 0), 2);
    iterate();
    ck_assert_int_eq(send(c, out + 2, 5, 0), 5);
    iterate();
    ck_assert_uint_eq(seen.frames, 2); /* a partial frame waits */
    ck_assert_int_eq(send(c, out + 7, n - 7, 0), (ssize_t)(n - 7));
    ITERATE_UNTIL(seen.frames == 3);
    ck_assert_uint_eq(seen.frame_len[0], 7);
    ck_assert_int_eq(memcmp(seen.frame[1] + 4, "two!", 4), 0);
    ck_assert_uint_eq(seen.frame_len[2], n);
    ck_assert_int_eq(memcmp(seen.frame[2] + 4, "three, split", 12), 0);
    /* each frame was answered */
    uint8_t back[64];
    read_all(c, back, 7 + 8 + n);
    ck_assert_int_eq(memcmp(back + 7 + 8 + 4, "three, split", 12), 0);
    const struct net_counters *k = net_worker_counters(wk);
    ck_assert_uint_eq(k->stream_accepted, 1);
    ck_assert_uint_eq(k->stream_rx_bytes, 7 + 8 + n);
    ck_assert_uint_eq(k->stream_tx_bytes, 7 + 8 + n);

    /* one connection per worker here: the second is refused while the first is open */
    int c2 = client_tcp();
    ck_assert(closed_by_server(c2));
    ck_assert_uint_eq(k->stream_refused, 1);
    ck_assert_uint_eq(seen.opens, 1);
    close(c2);

    /* an unframeable frame closes the connection */
    ck_assert_int_eq(send(c, "XX\0\1z", 5, 0), 5);
    ck_assert(closed_by_server(c));
    ck_assert_uint_eq(seen.closes, 1);
    ck_assert_uint_eq(k->stream_bad_frames, 1);
    ck_assert_uint_eq(k->stream_closed, 1);
    close(c);

    /* so does a frame over net.stream-max-frame, before it is read */
    c = client_tcp();
    ITERATE_UNTIL(seen.opens == 2);
    out[0] = 'M';
    out[1] = 'L';
    out[2] = 0x02;
    out[3] = 0x00; /* 4 + 512 bytes: over 512 */
    ck_assert_int_eq(send(c, out, 4, 0), 4);
    ck_assert(closed_by_server(c));
    ck_assert_uint_eq(k->stream_bad_frames, 2);
    ck_assert_uint_eq(seen.frames, 3);
    close(c);

    /* a handler that refuses a connection closes it */
    seen.refuse_open = true;
    c = client_tcp();
    ck_assert(closed_by_server(c));
    ck_assert_uint_eq(seen.closes, 2); /* the refused one had no state to close */
    ck_assert_uint_eq(k->stream_refused, 2);
    close(c);
    stop();
}
END_TEST

/* A stream whose end was deferred to the reaper and that the stop frees first is freed once:
 * the reaper finds nothing left (before, a one-shot callback freed it a second time: the
 * shutdown crash and hang of issue #11). */
START_TEST(stream_freed_once_at_stop)
{
    start("tcp://127.0.0.1:0", 1, 64);
    int c = client_tcp();
    ITERATE_UNTIL(seen.opens == 1);
    net_stream_close(seen.last); /* nothing queued: to the dying list, the reaper woken */
    ck_assert_uint_eq(seen.closes, 0);
    net_streams_close_all(wk); /* the stop, before the reaper has run */
    ck_assert_uint_eq(seen.closes, 1);
    iterate(); /* the reaper runs and finds nothing */
    iterate();
    ck_assert_uint_eq(seen.closes, 1);
    ck_assert_uint_eq(net_worker_counters(wk)->stream_closed, 1);
    close(c);
    stop();
}
END_TEST

static struct net_worker *wk1;

/* Both workers' loops, on this thread. */
static void iterate_both(void)
{
    iterate();
    event_base_loop(wk1->base, EVLOOP_NONBLOCK);
    net_worker_flush(wk1);
}

/* A frame that belongs to another worker takes its connection there: the frame is handled
 * there, then what followed it in the same segment, and the answers come from there. */
START_TEST(stream_handover)
{
    char err[256];
    start("tcp://127.0.0.1:0", 2, 64);
    wk1 = net_engine_worker(eng, 1);
    wk1->state = &seen;
    ck_assert_int_eq(net_stream_listen(wk1, 0, wk1->tcp_fd[0], err, sizeof err), 0);
    wk1->tcp_fd[0] = -1;
    /* either worker accepts (SO_REUSEPORT); the frame moves it to the other */
    int c = client_tcp();
    for (int i = 0; i < 3000 && seen.opens < 1; i++) {
        iterate_both();
        usleep(1000);
    }
    ck_assert_uint_eq(seen.opens, 1);
    struct net_worker *other = seen.accepted_by == wk ? wk1 : wk;
    uint8_t out[64];
    size_t n = frame(out, "MOVE");
    n += frame(out + n, "after");
    ck_assert_int_eq(send(c, out, n, 0), (ssize_t)n);
    for (int i = 0; i < 3000 && seen.frames < 2; i++) {
        iterate_both();
        usleep(1000);
    }
    ck_assert_uint_eq(seen.frames, 2);
    ck_assert_ptr_eq(seen.frame_worker, other);
    ck_assert_int_eq(memcmp(seen.frame[0] + 4, "MOVE", 4), 0); /* handled once, there */
    ck_assert_int_eq(memcmp(seen.frame[1] + 4, "after", 5), 0);
    ck_assert_uint_eq(seen.opens, 2);  /* a new state there */
    ck_assert_uint_eq(seen.closes, 1); /* the old one, here */
    ck_assert_uint_eq(net_worker_counters(other)->stream_moved, 1);
    uint8_t back[64];
    size_t got = 0;
    for (int i = 0; i < 3000 && got < n; i++) {
        iterate_both();
        ssize_t r = recv(c, back + got, n - got, MSG_DONTWAIT);
        if (r > 0)
            got += (size_t)r;
        else
            usleep(1000);
    }
    ck_assert_uint_eq(got, n);
    ck_assert_int_eq(memcmp(back, out, n), 0);
    close(c);
    for (int i = 0; i < 3000 && seen.closes < 2; i++) {
        iterate_both();
        usleep(1000);
    }
    ck_assert_uint_eq(seen.closes, 2);
    wk1->state = NULL;
    stop();
}
END_TEST

static void on_accept_close(struct net_listener *l, void *arg, int fd, const struct sockaddr *peer)
{
    ML_UNUSED(l);
    ML_UNUSED(arg);
    ML_UNUSED(peer);
    close(fd);
}

static void on_conn(struct net_conn *c, void *arg, enum net_conn_event ev)
{
    struct seen *st = arg;
    ML_UNUSED(c);
    st->conn_events[ev]++;
}

/* Exclusive listening sockets, raw connections from them, and a pipe with a stream: bytes both
 * ways, a reader that stops (the other side is not read past max), the end of either side. */
START_TEST(conn_pipe)
{
    /* short deadlines: a pipe (an RFC 6062 data connection) is set up and carries bytes, not
     * frames, so neither may cut it */
    tweak.stream_frame_s = 1;
    tweak.stream_setup_s = 2;
    start("tcp://127.0.0.1:0", 1, 64);
    char err[256];
    bool inuse;
    struct sockaddr_in la = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int lfd = net_tcp_bind_exclusive((struct sockaddr *)&la, &inuse, err, sizeof err);
    ck_assert_msg(lfd >= 0, "%s", err);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&bound, &blen), 0);
    /* the port is this socket's alone */
    int again = net_tcp_bind_exclusive((struct sockaddr *)&bound, &inuse, err, sizeof err);
    ck_assert_int_eq(again, -1);
    ck_assert(inuse);
    struct net_listener *l = net_listener_new(wk, lfd, on_accept_close, NULL, err, sizeof err);
    ck_assert_ptr_nonnull(l);

    /* a connection nobody accepts: FAILED */
    int closed = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(closed, (struct sockaddr *)&la, sizeof la), 0);
    struct sockaddr_storage nowhere;
    socklen_t nlen = sizeof nowhere;
    ck_assert_int_eq(getsockname(closed, (struct sockaddr *)&nowhere, &nlen), 0);
    close(closed);
    struct net_conn *f =
        net_conn_connect(wk, (struct sockaddr *)&bound, (struct sockaddr *)&nowhere, 5, on_conn,
                         &seen, err, sizeof err);
    ck_assert_ptr_nonnull(f);
    ITERATE_UNTIL(seen.conn_events[NET_CONN_FAILED] == 1);
    ck_assert_int_eq(net_conn_error(f), ECONNREFUSED);
    net_conn_close(f);

    /* a peer: the connection comes from the listener's address */
    int pl = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(pl, (struct sockaddr *)&la, sizeof la), 0);
    ck_assert_int_eq(listen(pl, 1), 0);
    struct sockaddr_storage pa;
    socklen_t plen = sizeof pa;
    ck_assert_int_eq(getsockname(pl, (struct sockaddr *)&pa, &plen), 0);
    struct net_conn *pc = net_conn_connect(wk, (struct sockaddr *)&bound, (struct sockaddr *)&pa, 5,
                                           on_conn, &seen, err, sizeof err);
    ck_assert_msg(pc != NULL, "%s", err);
    ITERATE_UNTIL(seen.conn_events[NET_CONN_CONNECTED] == 1);
    struct sockaddr_storage from;
    socklen_t flen = sizeof from;
    int peer = accept(pl, (struct sockaddr *)&from, &flen);
    ck_assert_int_ge(peer, 0);
    ck_assert(ml_addr_equal((struct sockaddr *)&from, (struct sockaddr *)&bound));
    close(pl);
    /* the peer speaks first: nothing is read before the pipe */
    ck_assert_int_eq(send(peer, "early", 5, 0), 5);
    iterate();
    ck_assert_uint_eq(net_worker_counters(wk)->conn_bytes_in, 0);

    /* a client stream asks for the pipe, and sends bytes right behind its frame */
    seen.pipe_to = pc;
    seen.pipe_max = 4096;
    int c = client_tcp();
    ITERATE_UNTIL(seen.opens == 1);
    uint8_t out[64];
    size_t n = frame(out, "PIPE");
    memcpy(out + n, "behind", 6);
    ck_assert_int_eq(send(c, out, n + 6, 0), (ssize_t)(n + 6));
    uint8_t back[64];
    read_all(c, back, n + 5);
    ck_assert_int_eq(memcmp(back, out, n), 0);         /* the answer, then */
    ck_assert_int_eq(memcmp(back + n, "early", 5), 0); /* what the peer had sent */
    uint8_t got[16];
    size_t k = 0;
    for (int i = 0; i < 3000 && k < 6; i++) {
        iterate();
        ssize_t r = recv(peer, got + k, 6 - k, MSG_DONTWAIT);
        if (r > 0)
            k += (size_t)r;
        else
            usleep(1000);
    }
    ck_assert_uint_eq(k, 6);
    ck_assert_int_eq(memcmp(got, "behind", 6), 0); /* not the frame: only what followed */
    /* what would be the start of a frame, then nothing past both deadlines: still piped */
    ck_assert_int_eq(send(c, "ML\0\x50", 4, 0), 4);
    for (int64_t t1 = ml_now_ms(); ml_now_ms() - t1 < 2500;) {
        iterate();
        usleep(1000);
    }
    char probe;
    ck_assert_int_eq(recv(c, &probe, 1, MSG_DONTWAIT), -1);
    ck_assert_int_eq(errno, EAGAIN);
    k = 0;
    for (int i = 0; i < 3000 && k < 4; i++) {
        iterate();
        ssize_t r = recv(peer, got + k, 4 - k, MSG_DONTWAIT);
        if (r > 0)
            k += (size_t)r;
        else
            usleep(1000);
    }
    ck_assert_uint_eq(k, 4);
    ck_assert_uint_eq(net_worker_counters(wk)->stream_frame_timeouts, 0);
    ck_assert_uint_eq(net_worker_counters(wk)->stream_setup_timeouts, 0);

    /* the client stops reading: the peer is read until max waits for the client, then not */
    int small = 64 << 10; /* small enough to fill, large enough to stream */
    (void)setsockopt(c, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    (void)setsockopt(peer, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    (void)setsockopt(bufferevent_getfd(pc->bev), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    (void)setsockopt(bufferevent_getfd(seen.last->bev), SOL_SOCKET, SO_SNDBUF, &small,
                     sizeof small);
    static uint8_t blob[4 << 20]; /* more than the four sockets' buffers hold */
    for (size_t i = 0; i < sizeof blob; i++)
        blob[i] = (uint8_t)(i * 7);
    size_t sent = 0;
    for (int idle = 0; idle < 200 && sent < sizeof blob;) {
        iterate();
        ssize_t r = send(peer, blob + sent, sizeof blob - sent, MSG_DONTWAIT);
        if (r > 0) {
            sent += (size_t)r;
            idle = 0;
        } else {
            idle++;
            usleep(1000);
        }
    }
    ck_assert_uint_lt(sent, sizeof blob); /* held back */
    ck_assert(pc->read_paused);
    ck_assert_uint_le(net_stream_queued(seen.last), 4096 + 65536);
    /* it reads again: everything arrives, in order */
    static uint8_t rx[4 << 20];
    size_t rcvd = 0;
    for (int i = 0; i < 200000 && rcvd < sizeof blob; i++) {
        iterate();
        if (sent < sizeof blob) {
            ssize_t r = send(peer, blob + sent, sizeof blob - sent, MSG_DONTWAIT);
            if (r > 0)
                sent += (size_t)r;
        }
        ssize_t r = recv(c, rx + rcvd, sizeof rx - rcvd, MSG_DONTWAIT);
        if (r > 0)
            rcvd += (size_t)r;
        else
            usleep(100);
    }
    ck_assert_uint_eq(rcvd, sizeof blob);
    ck_assert_int_eq(memcmp(rx, blob, sizeof blob), 0);
    uint64_t from_peer, to_peer;
    net_conn_bytes(pc, &from_peer, &to_peer);
    ck_assert_uint_eq(from_peer, 5 + sizeof blob);
    ck_assert_uint_eq(to_peer, 6 + 4); /* "behind", and the 4 bytes past the deadlines */

    /* the peer ends: what it sent last reaches the client, then the owner is told */
    ck_assert_int_eq(send(peer, "bye", 3, 0), 3);
    close(peer);
    ITERATE_UNTIL(seen.conn_events[NET_CONN_CLOSED] == 1);
    read_all(c, back, 3);
    ck_assert_int_eq(memcmp(back, "bye", 3), 0);
    net_conn_close(pc);
    net_stream_close(seen.last);
    ck_assert(closed_by_server(c));
    close(c);
    net_listener_free(l);
    iterate();
    ck_assert_uint_eq(net_worker_counters(wk)->conn_open, 0);
    stop();
}
END_TEST

/* Output to a client is bounded: past net.stream-out-max relayed frames are dropped and
 * counted, answers get some slack, and a close waits for what is queued. */

START_TEST(stream_output_bounded)
{
    start("tcp://127.0.0.1:0", 1, 64);
    int c = client_tcp();
    ITERATE_UNTIL(seen.opens == 1);
    struct net_stream *s = seen.last;
    static uint8_t chunk[1000];
    memset(chunk, 'z', sizeof chunk);
    /* without the loop running nothing is written: the bound is reached at 4096 bytes */
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(net_stream_send(s, chunk, sizeof chunk), 0);
    ck_assert_uint_eq(net_stream_pending(s), 4000);
    ck_assert_int_eq(net_stream_send(s, chunk, sizeof chunk), -1);
    const struct net_counters *k = net_worker_counters(wk);
    ck_assert_uint_eq(k->stream_tx_dropped, 1);
    ck_assert_int_eq(net_stream_send_reply(s, chunk, sizeof chunk), 0); /* the slack */
    ck_assert_uint_eq(net_stream_pending(s), 5000);
    /* closing writes what is queued first, then tells the handler, never inside the call */
    net_stream_close(s);
    ck_assert_uint_eq(seen.closes, 0);
    ck_assert_int_eq(net_stream_send(s, chunk, 1), -1);
    static uint8_t back[5000];
    read_all(c, back, sizeof back);
    ck_assert(closed_by_server(c));
    ck_assert_uint_eq(seen.closes, 1);
    ck_assert_uint_eq(k->stream_tx_bytes, 5000);
    close(c);
    stop();
}
END_TEST

/* Connections per address: an IPv4 address alone, an IPv6 address by its /64, an IPv4-mapped
 * IPv6 address as its IPv4 address; a slot goes when its last connection does. */
START_TEST(addr_counts)
{
    struct sockaddr_storage a, b, c, m, x;
    socklen_t l;
    ck_assert_int_eq(ml_addr_parse("192.0.2.1:1000", 0, &a, &l), 0);
    ck_assert_int_eq(ml_addr_parse("192.0.2.1:2000", 0, &b, &l), 0); /* same address */
    ck_assert_int_eq(ml_addr_parse("192.0.2.2:1000", 0, &c, &l), 0);
    ck_assert_int_eq(ml_addr_parse("[::ffff:192.0.2.1]:3000", 0, &m, &l), 0);
    struct ml_addr_counts *t = ml_addr_counts_new(2);
    ck_assert(ml_addr_counts_take(t, (struct sockaddr *)&a));
    ck_assert(ml_addr_counts_take(t, (struct sockaddr *)&b));
    ck_assert(!ml_addr_counts_take(t, (struct sockaddr *)&m)); /* mapped: the same address */
    ck_assert(ml_addr_counts_take(t, (struct sockaddr *)&c));
    ck_assert_uint_eq(ml_addr_counts_addresses(t), 2);
    ml_addr_counts_put(t, (struct sockaddr *)&b);
    ck_assert(ml_addr_counts_take(t, (struct sockaddr *)&m));
    ck_assert_int_eq(ml_addr_parse("[2001:db8:1:2::1]:1", 0, &a, &l), 0);
    ck_assert_int_eq(ml_addr_parse("[2001:db8:1:2:ffff::9]:1", 0, &b, &l), 0); /* same /64 */
    ck_assert_int_eq(ml_addr_parse("[2001:db8:1:3::1]:1", 0, &x, &l), 0);      /* another */
    ck_assert(ml_addr_counts_take(t, (struct sockaddr *)&a));
    ck_assert(ml_addr_counts_take(t, (struct sockaddr *)&b));
    ck_assert(!ml_addr_counts_take(t, (struct sockaddr *)&a));
    ck_assert(ml_addr_counts_take(t, (struct sockaddr *)&x));
    ck_assert_uint_eq(ml_addr_counts_addresses(t), 4);
    ml_addr_counts_put(t, (struct sockaddr *)&x);
    ml_addr_counts_put(t, (struct sockaddr *)&x); /* one too many: ignored */
    ck_assert_uint_eq(ml_addr_counts_addresses(t), 3);
    ml_addr_counts_free(t);
    /* no cap: only counted */
    t = ml_addr_counts_new(0);
    for (int i = 0; i < 100; i++)
        ck_assert(ml_addr_counts_take(t, (struct sockaddr *)&c));
    ck_assert_uint_eq(ml_addr_counts_addresses(t), 1);
    ml_addr_counts_free(t);
    /* the budget: a quarter of the open-file limit less the reserve, never below the minimum */
    unsigned long long lim = ml_fd_limit();
    long long share = ml_fd_share();
    ck_assert_int_ge(share, ML_FD_SHARE_MIN);
    if (lim > ML_FD_RESERVE + 4 * ML_FD_SHARE_MIN)
        ck_assert_int_eq(share, (long long)(lim - ML_FD_RESERVE) / ML_FD_SHARES);
}
END_TEST

/* net.max-streams-per-address: the third connection from 127.0.0.1 is refused and counted; a
 * closed one gives its place back. */
START_TEST(stream_per_address_cap)
{
    tweak.max_streams = 10;
    tweak.max_streams_per_addr = 2;
    start("tcp://127.0.0.1:0", 1, 64);
    int c1 = client_tcp(), c2 = client_tcp();
    ITERATE_UNTIL(seen.opens == 2);
    int c3 = client_tcp();
    ck_assert(closed_by_server(c3));
    const struct net_counters *k = net_worker_counters(wk);
    ck_assert_uint_eq(k->stream_refused_addr, 1);
    ck_assert_uint_eq(seen.opens, 2);
    close(c3);
    close(c1);
    ITERATE_UNTIL(seen.closes == 1);
    c3 = client_tcp();
    ITERATE_UNTIL(seen.opens == 3);
    unsigned max, per;
    size_t addrs;
    net_engine_limits(eng, &max, &per, &addrs);
    ck_assert_uint_eq(max, 10);
    ck_assert_uint_eq(per, 2);
    ck_assert_uint_eq(addrs, 1);
    close(c2);
    close(c3);
    stop();
}
END_TEST

/* A frame begun and never finished is cut at net.stream-frame-timeout although bytes keep
 * arriving; a connection never set up is cut at net.stream-setup-timeout, one set up is not. */
START_TEST(stream_deadlines)
{
    tweak.max_streams = 10;
    tweak.stream_frame_s = 1;
    tweak.stream_setup_s = 30; /* a later deadline pending must not delay the frame's */
    start("tcp://127.0.0.1:0", 1, 64);
    int c = client_tcp();
    ITERATE_UNTIL(seen.opens == 1);
    uint8_t out[64];
    size_t n = frame(out, "slowly, slowly");
    int64_t t0 = ml_now_ms();
    bool gone = false;
    for (size_t i = 0; i < n && !gone; i++) { /* a byte each 300 ms: more than the deadline */
        ck_assert_int_eq(send(c, out + i, 1, MSG_NOSIGNAL), 1);
        for (int j = 0; j < 300 && !gone; j++) {
            iterate();
            char b;
            ssize_t r = recv(c, &b, 1, MSG_DONTWAIT);
            gone = r == 0 || (r < 0 && errno == ECONNRESET);
            usleep(1000);
        }
    }
    int64_t took = ml_now_ms() - t0;
    ck_assert(gone);
    ck_assert_int_ge(took, 900);
    ck_assert_int_le(took, 2500);
    const struct net_counters *k = net_worker_counters(wk);
    ck_assert_uint_eq(k->stream_frame_timeouts, 1);
    ck_assert_uint_eq(seen.frames, 0);
    close(c);
    /* whole frames keep the connection; the deadline restarts with each new frame */
    c = client_tcp();
    ITERATE_UNTIL(seen.opens == 2);
    for (int round = 0; round < 3; round++) {
        ck_assert_int_eq(send(c, out, 3, 0), 3);
        for (int64_t t1 = ml_now_ms(); ml_now_ms() - t1 < 500;) { /* half the deadline */
            iterate();
            usleep(1000);
        }
        ck_assert_int_eq(send(c, out + 3, n - 3, 0), (ssize_t)(n - 3));
        ITERATE_UNTIL(seen.frames == (unsigned)round + 1);
    }
    ck_assert_uint_eq(k->stream_frame_timeouts, 1);
    close(c);
    stop();

    tweak.max_streams = 10;
    tweak.stream_setup_s = 1;
    start("tcp://127.0.0.1:0", 1, 64);
    c = client_tcp();
    ITERATE_UNTIL(seen.opens == 1);
    ck_assert(closed_by_server(c));
    k = net_worker_counters(wk);
    ck_assert_uint_eq(k->stream_setup_timeouts, 1);
    close(c);
    c = client_tcp();
    ITERATE_UNTIL(seen.opens == 2);
    net_stream_established(seen.last);
    ck_assert(!closed_by_server(c)); /* 3 s: past the deadline */
    ck_assert_uint_eq(k->stream_setup_timeouts, 1);
    close(c);
    stop();
}
END_TEST

/* ------------------------------------------------------------------ the UDP data path (net.io) */

START_TEST(test_select_epoll)
{
    char note[256], err[256] = "";
    bool uring = true;
    ck_assert_int_eq(net_io_select(NET_IO_EPOLL, NULL, &uring, note, sizeof note, err, sizeof err),
                     0);
    ck_assert(!uring);
    ck_assert_str_eq(note, "epoll (net.io = epoll)");
}
END_TEST

START_TEST(test_select_auto_falls_back)
{
    char note[256], err[256] = "";
    bool uring = true;
    ck_assert_int_eq(
        net_io_select(NET_IO_AUTO, "no io_uring here", &uring, note, sizeof note, err, sizeof err),
        0);
    ck_assert(!uring);
    ck_assert_str_eq(note, "epoll (net.io = auto; io_uring unavailable: no io_uring here)");
    ck_assert_str_eq(err, "");
}
END_TEST

START_TEST(test_select_uring_required)
{
    char note[256] = "", err[256] = "";
    bool uring = true;
    ck_assert_int_eq(
        net_io_select(NET_IO_URING, "no io_uring here", &uring, note, sizeof note, err, sizeof err),
        -1);
    ck_assert(!uring);
    ck_assert_str_eq(err, "net.io = uring, but io_uring cannot serve UDP here: no io_uring here");
}
END_TEST

/* Where an io_uring worker sleeps (net.uring-wait): loop unless ring is asked for; ring that
 * the probe refuses is an error that says why. */
START_TEST(test_wait_select)
{
    char note[256] = "", err[256] = "";
    enum net_uring_wait w = NET_URING_WAIT_RING;
    ck_assert_int_eq(net_uring_wait_select(NET_URING_WAIT_LOOP, "unused", &w, note, sizeof note,
                                           err, sizeof err),
                     0);
    ck_assert_int_eq(w, NET_URING_WAIT_LOOP);
    ck_assert_str_eq(note, "; workers wait in epoll_wait (net.uring-wait = loop)");
    w = NET_URING_WAIT_RING;
    ck_assert_int_eq(net_uring_wait_select(NET_URING_WAIT_RING, "no ring wait here", &w, note,
                                           sizeof note, err, sizeof err),
                     -1);
    ck_assert_int_eq(w, NET_URING_WAIT_LOOP);
    ck_assert_str_eq(err, "net.uring-wait = ring, but a worker cannot wait in its ring: no ring "
                          "wait here");
    if (net_uring_wait_probe(err, sizeof err) == 0) {
        ck_assert_int_eq(net_uring_wait_select(NET_URING_WAIT_RING, NULL, &w, note, sizeof note,
                                               err, sizeof err),
                         0);
        ck_assert_int_eq(w, NET_URING_WAIT_RING);
        ck_assert_str_eq(note, "; workers wait in io_uring_enter (net.uring-wait = ring)");
    }
}
END_TEST

/* The probe's libevent half is this program's own: libevent's waits reach its epoll_wait, so
 * where io_uring serves and the kernel takes DEFER_TASKRUN (6.1 or later) the probe passes;
 * elsewhere it names the flag. */
START_TEST(test_wait_probe)
{
    char why[200] = "";
    struct utsname u;
    ck_assert_int_eq(uname(&u), 0);
    int major = 0, minor = 0;
    ck_assert_int_eq(sscanf(u.release, "%d.%d", &major, &minor), 2);
    char uring_why[200] = "";
    bool uring = net_uring_probe(uring_why, sizeof uring_why) == 0;
    int rc = net_uring_wait_probe(why, sizeof why);
    if (uring && (major > 6 || (major == 6 && minor >= 1))) {
        ck_assert_msg(rc == 0, "probe failed: %s", why);
    } else {
        ck_assert_int_eq(rc, -1);
        ck_assert_msg(strstr(why, "DEFER_TASKRUN") != NULL, "why: %s", why);
    }
}
END_TEST

/* Runs the real probe in a child under a filter refusing io_uring_setup with errno (0: no
 * filter); returns the probe's result and its message. */
static int probe_in_child(int errno_value, char *why, size_t whylen)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        if (errno_value && ml_test_deny_syscall(SYS_io_uring_setup, errno_value) < 0)
            _exit(3);
        char msg[256] = "";
        int rc = net_uring_probe(msg, sizeof msg);
        ssize_t n = write(fds[1], msg, strlen(msg));
        _exit(n < 0 ? 4 : rc == 0 ? 0 : 1);
    }
    close(fds[1]);
    ssize_t n = read(fds[0], why, whylen - 1);
    why[n > 0 ? n : 0] = 0;
    close(fds[0]);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_le(WEXITSTATUS(status), 1);
    return WEXITSTATUS(status) == 0 ? 0 : -1;
}

START_TEST(test_probe_enosys)
{
    char why[256];
    ck_assert_int_eq(probe_in_child(ENOSYS, why, sizeof why), -1);
    ck_assert_str_eq(why, "io_uring_setup: not implemented (a kernel without io_uring, or a "
                          "seccomp filter)");
}
END_TEST

START_TEST(test_probe_eperm)
{
    char why[256];
    ck_assert_int_eq(probe_in_child(EPERM, why, sizeof why), -1);
    ck_assert_str_eq(why, "io_uring_setup: not permitted (sysctl kernel.io_uring_disabled, or a "
                          "seccomp filter)");
}
END_TEST

/* Without a filter the probe agrees with the kernel: io_uring_setup with no flags works (the
 * kernel has io_uring and lets us use it) on Linux 6.0 or later, where every feature the data
 * path uses exists. */
START_TEST(test_probe_matches_kernel)
{
    char why[256];
    int rc = probe_in_child(0, why, sizeof why);
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    long fd = syscall(SYS_io_uring_setup, 2, &params);
    bool usable = fd >= 0;
    if (fd >= 0)
        close((int)fd);
    int major = 0, minor = 0;
    FILE *f = fopen("/proc/sys/kernel/osrelease", "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%d.%d", &major, &minor), 2);
    fclose(f);
    bool expect = usable && (major > 6 || (major == 6 && minor >= 0));
    ck_assert_msg((rc == 0) == expect, "probe %d (%s), io_uring_setup %s, Linux %d.%d", rc, why,
                  usable ? "works" : "refused", major, minor);
}
END_TEST

static Suite *net_suite(void)
{
    Suite *s = suite_create("net");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, endpoints_parse);
    tcase_add_test(tc, first_bytes);
    tcase_add_test(tc, client_hello);
    tcase_add_test(tc, tls_settings);
    tcase_add_test(tc, addr_counts);
    suite_add_tcase(s, tc);
    tc = tcase_create("udp");
    tcase_add_test(tc, bind_port_zero_shared);
    tcase_add_test(tc, udp_batches);
    tcase_add_test(tc, udp_send_queue);
    tcase_add_test(tc, udp_queue_limits);
    tcase_add_test(tc, udp_receive_slots_kept);
    tcase_add_test(tc, udp_close_in_callback_and_tasks);
    suite_add_tcase(s, tc);
    tc = tcase_create("streams");
    tcase_add_test(tc, stream_frames);
    tcase_add_test(tc, stream_output_bounded);
    tcase_add_test(tc, stream_freed_once_at_stop);
    tcase_add_test(tc, stream_handover);
    tcase_add_test(tc, conn_pipe);
    tcase_add_test(tc, stream_per_address_cap);
    tcase_add_test(tc, stream_deadlines);
    suite_add_tcase(s, tc);
    tc = tcase_create("io");
    tcase_add_test(tc, test_select_epoll);
    tcase_add_test(tc, test_select_auto_falls_back);
    tcase_add_test(tc, test_select_uring_required);
    tcase_add_test(tc, test_wait_select);
    tcase_add_test(tc, test_wait_probe);
    tcase_add_test(tc, test_probe_enosys);
    tcase_add_test(tc, test_probe_eperm);
    tcase_add_test(tc, test_probe_matches_kernel);
    suite_add_tcase(s, tc);
    return s;
}

ML_CHECK_MAIN(net_suite)
