/* sigload: a load generator for meetlite's WebSocket signaling (tests/bench/bench-signaling.sh).
 *
 * One thread, epoll, non-blocking sockets and a minimal RFC 6455 client (masked text frames
 * out, unmasked frames in, pongs for the server's pings): cheap enough that the server, not the
 * generator, is what is measured; its own CPU is reported.
 *
 *   relay: every participant connects with its signaling token and waits for joined; then
 *          candidate messages go, open loop at --rate messages/s in total, each from a random
 *          participant to a random other participant of its meeting. The send time travels in
 *          the message's id, so the receiver's copy gives the latency (one process, one clock).
 *   idle:  every participant connects and stays, answering pings, until --duration passes or
 *          SIGTERM; --ready-file is created once all have joined.
 *
 * The tokens file has one participant a line: "meeting node participant-id token" (node: the
 * index of the --server it connects to). Output: a JSON object on stdout. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SL_MAX_SERVERS 8
#define SL_HIST 200000 /* latency histogram: 10 us buckets up to 2 s */
#define SL_BUCKET_US 10
#define SL_IN_MAX (1 << 20)

enum sl_state { SL_CONNECTING, SL_HANDSHAKE, SL_JOINING, SL_LIVE, SL_DEAD };

struct sl_conn {
    int fd;
    enum sl_state st;
    unsigned meeting, node;
    char pid[40];
    char *token;
    uint8_t mask[4];
    char *out;
    size_t outlen, outoff, outcap;
    char *in;
    size_t inlen, incap;
    int close_code;
};

struct sl_meeting {
    unsigned *members;
    unsigned n, cap;
};

static struct {
    struct sockaddr_in servers[SL_MAX_SERVERS];
    unsigned nservers;
    const char *tokens, *mode, *ready_file;
    double rate, duration_s, warmup_s;
    unsigned concurrency;
    double connect_timeout_s;
    unsigned sources; /* source addresses 127.0.0.1 .. 127.0.0.N, one after the other */
} opt = {.sources = 1,
         .mode = "relay",
         .rate = 1000,
         .duration_s = 10,
         .warmup_s = 2,
         .concurrency = 256,
         .connect_timeout_s = 120};

static struct sl_conn *conns;
static unsigned nconns;
static struct sl_meeting *meetings;
static unsigned nmeetings;
static int ep;
static volatile sig_atomic_t stop;
static uint64_t sent, received, recv_measured, send_blocked, closed_early, handshake_fail;
static uint32_t hist[SL_HIST + 1];
static uint64_t lat_max_us;
#define SL_SLOW_US 10000  /* a message slower than this is counted by when it was sent */
#define SL_SLOW_BINS 6000 /* of 100 ms */
static unsigned slow_bins[SL_SLOW_BINS];
static bool measuring, closing;
static uint64_t window_from, window_to = UINT64_MAX; /* send times that are measured */
static unsigned joined, dead, in_flight;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void die(const char *what)
{
    fprintf(stderr, "sigload: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p) {
        fprintf(stderr, "sigload: out of memory\n");
        exit(2);
    }
    return p;
}

/* ------------------------------------------------------------------ output */

static void want_write(struct sl_conn *c, bool on)
{
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0),
                             .data.u32 = (uint32_t)(c - conns)};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_dead(struct sl_conn *c)
{
    if (c->st == SL_DEAD)
        return;
    if (c->st != SL_LIVE)
        in_flight--;
    c->st = SL_DEAD;
    dead++;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

static void flush_out(struct sl_conn *c)
{
    while (c->outoff < c->outlen) {
        ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN) {
                want_write(c, true);
                return;
            }
            conn_dead(c);
            return;
        }
        c->outoff += (size_t)n;
    }
    c->outoff = c->outlen = 0;
}

static void queue_out(struct sl_conn *c, const void *p, size_t n)
{
    bool was_empty = c->outoff == c->outlen;
    if (c->outlen + n > c->outcap) {
        c->outcap = (c->outlen + n) * 2;
        c->out = xrealloc(c->out, c->outcap);
    }
    memcpy(c->out + c->outlen, p, n);
    c->outlen += n;
    if (was_empty)
        flush_out(c);
    else
        send_blocked++;
}

/* One masked client frame (RFC 6455 5.2). */
static void send_frame(struct sl_conn *c, int opcode, const char *p, size_t n)
{
    char buf[16 + 4096];
    size_t h = 0;
    buf[h++] = (char)(0x80 | opcode);
    if (n < 126) {
        buf[h++] = (char)(0x80 | n);
    } else {
        buf[h++] = (char)(0x80 | 126);
        buf[h++] = (char)(n >> 8);
        buf[h++] = (char)n;
    }
    memcpy(buf + h, c->mask, 4);
    h += 4;
    if (n > sizeof buf - h)
        n = sizeof buf - h;
    for (size_t i = 0; i < n; i++)
        buf[h + i] = (char)(p[i] ^ c->mask[i & 3]);
    queue_out(c, buf, h + n);
}

/* ------------------------------------------------------------------ input */

static void on_text(struct sl_conn *c, const char *p, size_t n)
{
    if (c->st == SL_JOINING) {
        if (memmem(p, n, "\"type\":\"joined\"", 15)) {
            c->st = SL_LIVE;
            joined++;
            in_flight--;
        }
        return;
    }
    if (n > 40 && memmem(p, n < 64 ? n : 64, "\"type\":\"candidate\"", 18)) {
        received++;
        if (!measuring)
            return;
        const char *id = memmem(p, n, "\"id\":", 5);
        if (!id)
            return;
        uint64_t t = strtoull(id + 5, NULL, 10), now = now_us();
        if (t < window_from || t >= window_to || t > now)
            return; /* sent before or after the measured window */
        uint64_t us = now - t;
        recv_measured++;
        if (us > lat_max_us)
            lat_max_us = us;
        uint64_t b = us / SL_BUCKET_US;
        hist[b < SL_HIST ? b : SL_HIST]++;
        uint64_t sb = (t - window_from) / 100000;
        if (us > SL_SLOW_US && sb < SL_SLOW_BINS)
            slow_bins[sb]++;
    }
}

static void parse_frames(struct sl_conn *c)
{
    size_t off = 0;
    while (c->inlen - off >= 2) {
        const uint8_t *b = (const uint8_t *)c->in + off;
        int op = b[0] & 15;
        uint64_t len = b[1] & 127;
        size_t h = 2;
        if (len == 126) {
            if (c->inlen - off < 4)
                break;
            len = (uint64_t)b[2] << 8 | b[3];
            h = 4;
        } else if (len == 127) {
            if (c->inlen - off < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | b[2 + i];
            h = 10;
        }
        if (c->inlen - off < h + len)
            break;
        const char *p = (const char *)b + h;
        if (op == 1 || op == 0)
            on_text(c, p, (size_t)len);
        else if (op == 9)
            send_frame(c, 10, p, (size_t)len); /* pong */
        else if (op == 8) {
            c->close_code = len >= 2 ? ((uint8_t)p[0] << 8 | (uint8_t)p[1]) : 1005;
            if (closing) {
                conn_dead(c);
                return;
            }
            if (c->st == SL_LIVE)
                closed_early++;
            fprintf(stderr, "sigload: connection %u closed by the server: %d %.*s\n",
                    (unsigned)(c - conns), c->close_code, len > 2 ? (int)len - 2 : 0, p + 2);
            conn_dead(c);
            return;
        }
        off += h + (size_t)len;
        if (c->st == SL_DEAD)
            return;
    }
    memmove(c->in, c->in + off, c->inlen - off);
    c->inlen -= off;
}

static void on_readable(struct sl_conn *c)
{
    for (;;) {
        if (c->incap - c->inlen < 16384) {
            c->incap = c->incap ? c->incap * 2 : 65536;
            if (c->incap > SL_IN_MAX) {
                conn_dead(c);
                return;
            }
            c->in = xrealloc(c->in, c->incap);
        }
        ssize_t n = recv(c->fd, c->in + c->inlen, c->incap - c->inlen, 0);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            if (c->st == SL_LIVE)
                closed_early++;
            conn_dead(c);
            return;
        }
        c->inlen += (size_t)n;
        if (c->st == SL_HANDSHAKE) {
            char *e = memmem(c->in, c->inlen, "\r\n\r\n", 4);
            if (!e)
                continue;
            if (strncmp(c->in, "HTTP/1.1 101", 12) != 0) {
                handshake_fail++;
                conn_dead(c);
                return;
            }
            size_t hl = (size_t)(e + 4 - c->in);
            memmove(c->in, c->in + hl, c->inlen - hl);
            c->inlen -= hl;
            c->st = SL_JOINING;
        }
        parse_frames(c);
        if (c->st == SL_DEAD)
            return;
    }
}

/* ------------------------------------------------------------------ connecting */

static void start_connect(struct sl_conn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const struct sockaddr_in *sa = &opt.servers[c->node % opt.nservers];
    if (opt.sources > 1) {
        /* a loopback source address per connection in turn: one address has only the
         * ephemeral ports (about 28,000) toward one server port; the port is chosen at
         * connect time, by the whole 4-tuple (IP_BIND_ADDRESS_NO_PORT) */
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(c - conns) % opt.sources);
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(c->fd, (const struct sockaddr *)&src, sizeof src) < 0)
            die("bind");
    }
    if (connect(c->fd, (const struct sockaddr *)sa, sizeof *sa) < 0 && errno != EINPROGRESS)
        die("connect");
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)(c - conns)};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        die("epoll_ctl");
    c->st = SL_CONNECTING;
    in_flight++;
}

static void on_connected(struct sl_conn *c)
{
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
        handshake_fail++;
        conn_dead(c);
        return;
    }
    char req[9000];
    int n = snprintf(req, sizeof req,
                     "GET /api/v1/signaling?token=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     c->token);
    c->st = SL_HANDSHAKE;
    want_write(c, false);
    queue_out(c, req, (size_t)n);
}

static void on_event(uint32_t idx, uint32_t events)
{
    struct sl_conn *c = &conns[idx];
    if (c->st == SL_DEAD)
        return;
    if (c->st == SL_CONNECTING) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            on_connected(c);
        return;
    }
    if (events & EPOLLOUT) {
        flush_out(c);
        if (c->st != SL_DEAD && c->outoff == c->outlen)
            want_write(c, false);
    }
    if (c->st != SL_DEAD && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        on_readable(c);
}

static void poll_once(int timeout_ms)
{
    struct epoll_event evs[512];
    int n = epoll_wait(ep, evs, 512, timeout_ms);
    for (int i = 0; i < n; i++)
        on_event(evs[i].data.u32, evs[i].events);
}

/* ------------------------------------------------------------------ load */

static uint64_t rng = 88172645463325252ULL;

static uint64_t xrand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void send_one(void)
{
    for (int tries = 0; tries < 16; tries++) {
        struct sl_conn *c = &conns[xrand() % nconns];
        struct sl_meeting *m = &meetings[c->meeting];
        if (c->st != SL_LIVE || m->n < 2)
            continue;
        unsigned to = m->members[xrand() % m->n];
        if (&conns[to] == c || conns[to].st != SL_LIVE)
            continue;
        char msg[512];
        int n = snprintf(msg, sizeof msg,
                         "{\"type\":\"candidate\",\"id\":%llu,\"to\":\"%s\",\"payload\":{"
                         "\"candidate\":\"candidate:842163049 1 udp 1677729535 192.0.2.44 61665 "
                         "typ srflx raddr 10.0.0.1 rport 61665 generation 0 ufrag aBcD\","
                         "\"sdpMid\":\"0\",\"sdpMLineIndex\":0}}",
                         (unsigned long long)now_us(), conns[to].pid);
        send_frame(c, 1, msg, (size_t)n);
        sent++;
        return;
    }
}

static uint64_t percentile(double q)
{
    uint64_t total = 0, seen = 0;
    for (size_t i = 0; i <= SL_HIST; i++)
        total += hist[i];
    if (!total)
        return 0;
    uint64_t want = (uint64_t)ceil(q * (double)total);
    for (size_t i = 0; i <= SL_HIST; i++) {
        seen += hist[i];
        if (seen >= want)
            return (uint64_t)(i + 1) * SL_BUCKET_US;
    }
    return lat_max_us;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* Ends every session cleanly (close 1000): the server forgets them at once instead of keeping
 * them for a resume. */
static void close_all(void)
{
    unsigned left = 0;
    closing = true;
    for (unsigned i = 0; i < nconns; i++)
        if (conns[i].st == SL_LIVE) {
            send_frame(&conns[i], 8, "\x03\xe8", 2);
            left++;
        }
    uint64_t t = now_us();
    while (left && dead < nconns && now_us() - t < 2000000)
        poll_once(20);
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* ------------------------------------------------------------------ setup */

static void read_tokens(void)
{
    FILE *f = fopen(opt.tokens, "r");
    if (!f)
        die(opt.tokens);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        unsigned m, node;
        char pid[40];
        char tok[8300];
        if (sscanf(line, "%u %u %39s %8299s", &m, &node, pid, tok) != 4)
            continue;
        conns = xrealloc(conns, (nconns + 1) * sizeof *conns);
        struct sl_conn *c = &conns[nconns];
        memset(c, 0, sizeof *c);
        c->fd = -1;
        c->meeting = m;
        c->node = node;
        snprintf(c->pid, sizeof c->pid, "%s", pid);
        c->token = strdup(tok);
        for (int i = 0; i < 4; i++)
            c->mask[i] = (uint8_t)(xrand() | 1);
        if (m >= nmeetings) {
            meetings = xrealloc(meetings, (m + 1) * sizeof *meetings);
            memset(meetings + nmeetings, 0, (m + 1 - nmeetings) * sizeof *meetings);
            nmeetings = m + 1;
        }
        struct sl_meeting *mt = &meetings[m];
        if (mt->n == mt->cap) {
            mt->cap = mt->cap ? mt->cap * 2 : 4;
            mt->members = xrealloc(mt->members, mt->cap * sizeof *mt->members);
        }
        mt->members[mt->n++] = nconns;
        nconns++;
    }
    free(line);
    fclose(f);
    if (!nconns) {
        fprintf(stderr, "sigload: no participant in %s\n", opt.tokens);
        exit(2);
    }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: sigload --tokens FILE --server IP:PORT[,IP:PORT...] [--mode relay|idle]\n"
            "               [--rate MSGS/S] [--duration S] [--warmup S] [--concurrency N]\n"
            "               [--ready-file FILE] [--sources N] [--connect-timeout S]\n");
    exit(2);
}

static void parse_servers(const char *list)
{
    char *s = strdup(list), *save = NULL;
    for (char *t = strtok_r(s, ",", &save); t && opt.nservers < SL_MAX_SERVERS;
         t = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(t, ':');
        if (!colon)
            usage();
        *colon = 0;
        struct sockaddr_in *sa = &opt.servers[opt.nservers++];
        sa->sin_family = AF_INET;
        sa->sin_port = htons((uint16_t)strtoul(colon + 1, NULL, 10));
        if (inet_pton(AF_INET, t, &sa->sin_addr) != 1)
            usage();
    }
    free(s);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"tokens", required_argument, NULL, 't'},
        {"server", required_argument, NULL, 's'},
        {"mode", required_argument, NULL, 'm'},
        {"rate", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'},
        {"concurrency", required_argument, NULL, 'c'},
        {"ready-file", required_argument, NULL, 'f'},
        {"sources", required_argument, NULL, 'S'},
        {"connect-timeout", required_argument, NULL, 'T'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 't':
            opt.tokens = optarg;
            break;
        case 's':
            parse_servers(optarg);
            break;
        case 'm':
            opt.mode = optarg;
            break;
        case 'r':
            opt.rate = strtod(optarg, NULL);
            break;
        case 'd':
            opt.duration_s = strtod(optarg, NULL);
            break;
        case 'w':
            opt.warmup_s = strtod(optarg, NULL);
            break;
        case 'c':
            opt.concurrency = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'f':
            opt.ready_file = optarg;
            break;
        case 'S':
            opt.sources = (unsigned)strtoul(optarg, NULL, 10);
            if (opt.sources < 1 || opt.sources > 250)
                usage();
            break;
        case 'T':
            opt.connect_timeout_s = strtod(optarg, NULL);
            break;
        default:
            usage();
        }
    }
    if (!opt.tokens || !opt.nservers)
        usage();
    bool idle = !strcmp(opt.mode, "idle");
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    /* as many descriptors as allowed: raising the hard limit needs CAP_SYS_RESOURCE */
    struct rlimit rl = {1 << 20, 1 << 20};
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    read_tokens();
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");

    /* connect everyone, opt.concurrency at a time */
    uint64_t t0 = now_us();
    double cpu0 = cpu_s();
    unsigned next = 0;
    while (!stop && joined + dead < nconns &&
           now_us() - t0 < (uint64_t)(opt.connect_timeout_s * 1e6)) {
        while (next < nconns && in_flight < opt.concurrency)
            start_connect(&conns[next++]);
        poll_once(10);
    }
    double connect_s = (double)(now_us() - t0) / 1e6, connect_cpu = cpu_s() - cpu0;
    fprintf(stderr, "sigload: %u of %u joined in %.2f s (%u failed)\n", joined, nconns, connect_s,
            dead);

    double cpu1 = cpu_s();
    uint64_t t1 = now_us(), measure_from = 0, measure_to = 0;
    uint64_t sent_at_start = 0, recv_at_start = 0, sent_at_end = 0;
    if (idle) {
        if (opt.ready_file) {
            FILE *f = fopen(opt.ready_file, "w");
            if (f)
                fclose(f);
        }
        while (!stop && now_us() - t1 < (uint64_t)(opt.duration_s * 1e6))
            poll_once(100);
    } else {
        double credit = 0;
        uint64_t last = now_us();
        uint64_t warm_end = t1 + (uint64_t)(opt.warmup_s * 1e6);
        uint64_t end = warm_end + (uint64_t)(opt.duration_s * 1e6);
        while (!stop) {
            uint64_t now = now_us();
            if (!measuring && now >= warm_end && now < end) {
                measuring = true;
                measure_from = window_from = now;
                sent_at_start = sent;
                recv_at_start = received;
            }
            if (now >= end) {
                if (!measure_to) {
                    measure_to = window_to = now;
                    sent_at_end = sent;
                }
                if (now >= end + 1000000) /* a second for late answers */
                    break;
            } else {
                credit += (double)(now - last) * opt.rate / 1e6;
                if (credit > opt.rate) /* never a burst of more than a second's worth */
                    credit = opt.rate;
                while (credit >= 1) {
                    send_one();
                    credit -= 1;
                }
            }
            last = now;
            poll_once(1);
        }
        measuring = false;
    }
    double wall = (double)(now_us() - t1) / 1e6, run_cpu = cpu_s() - cpu1;
    if (!idle) { /* when the slow ones were sent: a pause shows as a run of bins */
        fprintf(stderr, "sigload: messages over %d ms by 100 ms of sending (bin:count):",
                SL_SLOW_US / 1000);
        for (unsigned i = 0; i < SL_SLOW_BINS; i++)
            if (slow_bins[i])
                fprintf(stderr, " %u:%u", i, slow_bins[i]);
        fprintf(stderr, "\n");
    }
    close_all();
    double mwall = measure_to > measure_from ? (double)(measure_to - measure_from) / 1e6 : 0;
    uint64_t msent = sent_at_end - sent_at_start;
    printf("{\"mode\":\"%s\",\"participants\":%u,\"meetings\":%u,\"servers\":%u,"
           "\"joined\":%u,\"failed\":%u,\"connect_s\":%.3f,\"connect_cpu_s\":%.3f,"
           "\"rate\":%.0f,\"measure_s\":%.3f,\"sent\":%llu,\"received\":%llu,"
           "\"measured\":%llu,\"sent_per_s\":%.1f,\"received_per_s\":%.1f,"
           "\"lost\":%lld,\"closed_early\":%llu,\"blocked_sends\":%llu,"
           "\"p50_us\":%llu,\"p90_us\":%llu,\"p99_us\":%llu,\"p999_us\":%llu,\"max_us\":%llu,"
           "\"gen_cpu_s\":%.3f,\"gen_wall_s\":%.3f,\"gen_cpu_pct\":%.1f}\n",
           opt.mode, nconns, nmeetings, opt.nservers, joined, dead, connect_s, connect_cpu,
           opt.rate, mwall, (unsigned long long)msent,
           (unsigned long long)(received - recv_at_start), (unsigned long long)recv_measured,
           mwall ? (double)msent / mwall : 0, mwall ? (double)recv_measured / mwall : 0,
           (long long)msent - (long long)recv_measured, (unsigned long long)closed_early,
           (unsigned long long)send_blocked, (unsigned long long)percentile(0.50),
           (unsigned long long)percentile(0.90), (unsigned long long)percentile(0.99),
           (unsigned long long)percentile(0.999), (unsigned long long)lat_max_us, run_cpu, wall,
           wall > 0 ? 100.0 * run_cpu / wall : 0);
    return joined == nconns ? 0 : 1;
}
