/* mlload: STUN/TURN load generator for benchmarks (options, threads, sockets, report). */
#include "config.h"

#include "tests/bench/mlload.h"

#include "common/common.h"

#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

volatile int ld_stop_flag;

/* ------------------------------------------------------------ histogram */

/* Values below 128 have their own bucket; above, 64 sub-buckets per power of two. */
static unsigned hist_index(uint64_t v)
{
    if (v < 128)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - 6;
    unsigned idx = 128 + (shift - 1) * 64 + (unsigned)((v >> shift) - 64);
    return idx < LD_HIST_BUCKETS ? idx : LD_HIST_BUCKETS - 1;
}

static uint64_t hist_value(unsigned idx)
{
    if (idx < 128)
        return idx;
    unsigned shift = (idx - 128) / 64 + 1;
    uint64_t m = (idx - 128) % 64 + 64;
    /* the middle of the bucket */
    return (m << shift) + ((1ull << shift) >> 1);
}

void ld_hist_add(struct ld_hist *h, uint64_t v)
{
    h->b[hist_index(v)]++;
    h->n++;
    if (v > h->max)
        h->max = v;
}

void ld_hist_merge(struct ld_hist *dst, const struct ld_hist *src)
{
    for (unsigned i = 0; i < LD_HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->n += src->n;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t ld_hist_pct(const struct ld_hist *h, double pct)
{
    if (!h->n)
        return 0;
    double exact = pct / 100.0 * (double)h->n;
    uint64_t rank = (uint64_t)exact;
    if ((double)rank < exact)
        rank++; /* nearest-rank percentile: the ceiling */
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < LD_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t v = hist_value(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

/* ------------------------------------------------------------ sockets and time */

int64_t ld_thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void set_buf(int fd, int opt_force, int opt, unsigned bytes)
{
    int v = (int)bytes;
    /* As root the FORCE variants pass net.core.rmem_max; otherwise the capped one applies. */
    if (setsockopt(fd, SOL_SOCKET, opt_force, &v, sizeof v) < 0)
        (void)setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v);
}

/* The source address of socket number idx: --local, and for IPv4 the next addresses after each
 * --per-address sockets (one address has only so many ephemeral ports). */
static void source_address(const struct ld_opts *o, uint32_t idx, struct sockaddr_storage *out)
{
    memcpy(out, &o->local, sizeof *out);
    if (o->local.ss_family == AF_INET && o->per_address) {
        struct sockaddr_in *in = (struct sockaddr_in *)out;
        in->sin_addr.s_addr = htonl(ntohl(in->sin_addr.s_addr) + idx / o->per_address);
    }
}

static int udp_socket(const struct ld_opts *o, const struct sockaddr_storage *from,
                      socklen_t from_len, const struct sockaddr_storage *to,
                      struct sockaddr_storage *local, bool conn)
{
    if (!to)
        to = &o->server;
    int fd = socket(to->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "mlload: socket: %s\n", strerror(errno));
        return -1;
    }
    if (o->sockbuf) {
        set_buf(fd, SO_RCVBUFFORCE, SO_RCVBUF, o->sockbuf);
        set_buf(fd, SO_SNDBUFFORCE, SO_SNDBUF, o->sockbuf);
    }
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
    if (from_len && bind(fd, (const struct sockaddr *)from, from_len) < 0) {
        char a[ML_ADDR_STRLEN];
        fprintf(stderr, "mlload: bind %s: %s\n",
                ml_addr_str((const struct sockaddr *)from, a, sizeof a), strerror(errno));
        close(fd);
        return -1;
    }
    /* Connected: the kernel filters other sources, sends need no address, and the local
     * address becomes known for the XOR-MAPPED-ADDRESS check. */
    if (conn &&
        connect(fd, (const struct sockaddr *)to, ml_addr_len((const struct sockaddr *)to)) < 0) {
        fprintf(stderr, "mlload: connect: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    socklen_t sl = sizeof *local;
    if (getsockname(fd, (struct sockaddr *)local, &sl) < 0) {
        fprintf(stderr, "mlload: getsockname: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int ld_udp_socket(const struct ld_opts *o, uint32_t idx, struct sockaddr_storage *local)
{
    struct sockaddr_storage src;
    source_address(o, idx, &src);
    return udp_socket(o, &src, o->local_len, NULL, local, true);
}

int ld_udp_bound_socket(const struct ld_opts *o, uint32_t idx, struct sockaddr_storage *local)
{
    struct sockaddr_storage src;
    source_address(o, idx, &src);
    return udp_socket(o, &src, o->local_len, NULL, local, false);
}

#define LD_LOOP_HOSTS (254u * 254u * 254u) /* 127.a.b.c with a, b, c in 1..254 */

/* The 24 bits of 127.a.b.c as an index in 0..LD_LOOP_HOSTS-1, and back. */
static uint32_t loop_index(uint32_t host)
{
    return (((host >> 16 & 0xff) - 1) * 254 + ((host >> 8 & 0xff) - 1)) * 254 + ((host & 0xff) - 1);
}

static uint32_t loop_host(uint32_t idx)
{
    return 0x7f000000u | (idx / (254 * 254) + 1) << 16 | (idx / 254 % 254 + 1) << 8 |
           (idx % 254 + 1);
}

int ld_udp_socket_from(const struct ld_opts *o, unsigned i, const struct sockaddr_storage *to,
                       struct sockaddr_storage *local)
{
    if (!o->sources) {
        struct sockaddr_storage src;
        source_address(o, i, &src);
        return udp_socket(o, &src, o->local_len, to, local, true);
    }
    /* --sources is checked to go with an IPv4 loopback --local (127.a.b.c, a, b, c in 1..254) */
    struct sockaddr_storage from = o->local;
    struct sockaddr_in *in = (struct sockaddr_in *)&from;
    uint32_t base = loop_index(ntohl(in->sin_addr.s_addr));
    in->sin_addr.s_addr = htonl(loop_host((base + i % o->sources) % LD_LOOP_HOSTS));
    in->sin_port = 0;
    return udp_socket(o, &from, sizeof *in, to, local, true);
}

int ld_epoll_add(int ep, int fd, uint32_t key)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = key};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        fprintf(stderr, "mlload: epoll_ctl: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

int ld_epoll_mod(int ep, int fd, uint32_t key, bool out)
{
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0u), .data.u32 = key};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0) {
        fprintf(stderr, "mlload: epoll_ctl: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

int ld_epoll_wait(int ep, struct epoll_event *ev, int max, int64_t now_us, int64_t deadline_us)
{
    static int no_pwait2;
    int64_t wait_us = deadline_us - now_us;
    if (wait_us < 0)
        wait_us = 0;
    if (wait_us > 100000)
        wait_us = 100000; /* wake at least every 100 ms to look at the stop flag */
    int n = -1;
    if (!__atomic_load_n(&no_pwait2, __ATOMIC_RELAXED)) {
        /* microsecond timeouts: pacing ticks are shorter than the 1 ms of epoll_wait */
        struct timespec ts = {.tv_sec = wait_us / 1000000, .tv_nsec = (wait_us % 1000000) * 1000};
        n = epoll_pwait2(ep, ev, max, &ts, NULL);
        if (n < 0 && errno == ENOSYS)
            __atomic_store_n(&no_pwait2, 1, __ATOMIC_RELAXED);
    }
    if (n < 0 && errno == ENOSYS)
        n = epoll_wait(ep, ev, max, (int)((wait_us + 999) / 1000));
    return n < 0 ? 0 : n;
}

int ld_recv_batch(struct ld_thread *t, int fd, uint32_t *drops)
{
    for (unsigned i = 0; i < LD_BATCH; i++) {
        t->rx_iov[i].iov_base = t->rx_buf[i];
        t->rx_iov[i].iov_len = LD_PKT_MAX;
        t->rx_msg[i].msg_hdr = (struct msghdr){
            .msg_iov = &t->rx_iov[i],
            .msg_iovlen = 1,
            .msg_control = t->rx_ctl[i],
            .msg_controllen = sizeof t->rx_ctl[i],
        };
        t->rx_msg[i].msg_len = 0;
    }
    int n = recvmmsg(fd, t->rx_msg, LD_BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0)
        return 0;
    /* SO_RXQ_OVFL: the socket's cumulative drop count as of each datagram; the last is the
     * largest. */
    struct msghdr *mh = &t->rx_msg[n - 1].msg_hdr;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
            uint32_t d;
            memcpy(&d, CMSG_DATA(c), sizeof d);
            if (d > *drops)
                *drops = d;
        }
    }
    return n;
}

uint64_t ld_share(uint64_t total, unsigned i, unsigned n)
{
    return total / n + (i < total % n ? 1 : 0);
}

int64_t ld_gate(struct ld_thread *t, void (*poll_cb)(struct ld_thread *, int64_t), int64_t now_us)
{
    struct ld_run *r = t->run;
    unsigned ready = __atomic_add_fetch(&r->threads_ready, 1, __ATOMIC_ACQ_REL);
    if (ready == t->o->threads) {
        __atomic_store_n(&r->go_us, now_us, __ATOMIC_RELEASE);
        return now_us;
    }
    for (;;) {
        int64_t go = __atomic_load_n(&r->go_us, __ATOMIC_ACQUIRE);
        if (go)
            return go;
        int64_t now = ml_now_us();
        if (now >= r->hard_end_us || ld_stopping())
            return now;
        if (poll_cb)
            poll_cb(t, now + 5000);
        else
            usleep(1000);
    }
}

/* ------------------------------------------------------------ options */

static void usage(FILE *f)
{
    fprintf(
        f, "usage: mlload MODE --server ADDR:PORT [options]\n"
           "modes:\n"
           "  binding      STUN Binding requests, open loop (--rate) or closed loop (--window)\n"
           "  turn-relay   --pairs of TURN clients relaying ChannelData (or indications) to each "
           "other\n"
           "  turn-alloc   full allocation sequences per second (--concurrency in flight)\n"
           "  turn-idle    --count allocations kept alive for --duration (server RSS)\n"
           "  turn-flood   unauthenticated Allocates from --clients sockets of one address at\n"
           "               --rate: the answers that address receives (a victim's view)\n"
           "  reflect      --listen ADDR:PORT: a minimal Binding responder, to measure the\n"
           "               generator's own ceiling (run the binding mode against it)\n"
           "common options:\n"
           "  --local IP           source address of the sockets (default for a 127.0.0.0/8 "
           "server:\n"
           "                       a random 127.x.y.z per run, so no 5-tuple repeats across "
           "runs)\n"
           "  --per-address N      IPv4: sockets per source address; the next N sockets use the\n"
           "                       next address (20000: one address has ~28,000 ephemeral "
           "ports)\n"
           "  --threads N          worker threads (1)\n"
           "  --duration S         hard cap of the sending or holding phase, seconds (10)\n"
           "  --count N            cap on requests / packets / allocations (0: none)\n"
           "  --rate PPS           offered packets per second in total (binding 10000, relay "
           "10000)\n"
           "  --burst N            open loop: packets per pacing tick per thread (16)\n"
           "  --drain MS           wait for late answers after sending stops (1000)\n"
           "  --sockbuf BYTES      SO_RCVBUF/SO_SNDBUF per socket (4194304; turn-alloc/idle: "
           "kernel default)\n"
           "  --spin               busy-poll the sockets instead of sleeping (pin the generator "
           "to its own core)\n"
           "  --json               one JSON object on stdout (the summary goes to stderr)\n"
           "  --quiet              no human summary\n"
           "binding:\n"
           "  --clients N          sockets (16)\n"
           "  --window N           closed loop: requests in flight per socket (with --rate 0; 8)\n"
           "  --timeout MS         closed loop: a request unanswered this long is lost (1000)\n"
           "  --fingerprint        add FINGERPRINT to requests\n"
           "TURN (REST credentials: username <expiry>:<id>, password base64(HMAC-SHA1)):\n"
           "  --secret S           shared secret (required)\n"
           "  --pairs N            turn-relay: client pairs (4)\n"
           "  --size BYTES         turn-relay: payload bytes, 16..1400 (100)\n"
           "  --send-indications   turn-relay: Send/Data indications instead of ChannelData\n"
           "  --transport T        udp, tcp or tls: the client's transport to the server (udp);\n"
           "                       relayed traffic leaves the server over UDP either way\n"
           "  --peer P             turn-relay: pairs (each client relays to its partner's relayed\n"
           "                       address) or external (to a UDP peer of its own that reflects\n"
           "                       every datagram back; pairs)\n"
           "  --late-ms MS         turn-relay: a packet received later than MS is lost (0: never)\n"
           "  --server2 ADDR:PORT  turn-relay pairs: the second client of every pair allocates on\n"
           "                       this server (a meeting spread over two nodes: each packet\n"
           "                       crosses both, and the kernel between them)\n"
           "  --tls-version V      TLS version offered, only that one: 1.2 or 1.3 (1.3)\n"
           "  --tls-cipher C       the one cipher offered (1.3: TLS_AES_128_GCM_SHA256, 1.2:\n"
           "                       ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256)\n"
           "  --concurrency N      sequences in flight in total (64)\n"
           "  --sources N          turn-alloc over UDP: spread the sequences over N loopback\n"
           "                       addresses from --local on (default: all from one address)\n"
           "  --lifetime S         LIFETIME asked for (600)\n"
           "  --keep               turn-alloc: do not free the allocations at the end\n"
           "  --setup-timeout S    TURN setup phase cap (30; turn-idle 120)\n"
           "  --rto MS             first retransmission timeout (500, doubling, 5 tries)\n"
           "  --ready-file PATH    turn-idle: created once all allocations are up\n");
}

enum {
    OPT_SERVER = 256,
    OPT_SERVER2,
    OPT_LOCAL,
    OPT_PER_ADDRESS,
    OPT_THREADS,
    OPT_CLIENTS,
    OPT_RATE,
    OPT_WINDOW,
    OPT_DURATION,
    OPT_COUNT,
    OPT_DRAIN,
    OPT_BURST,
    OPT_TIMEOUT,
    OPT_FINGERPRINT,
    OPT_PAIRS,
    OPT_SIZE,
    OPT_SEND_IND,
    OPT_SECRET,
    OPT_LIFETIME,
    OPT_CONCURRENCY,
    OPT_SOURCES,
    OPT_KEEP,
    OPT_SETUP_TIMEOUT,
    OPT_RTO,
    OPT_SOCKBUF,
    OPT_READY_FILE,
    OPT_SPIN,
    OPT_TRANSPORT,
    OPT_PEER,
    OPT_LATE,
    OPT_TLS_VERSION,
    OPT_TLS_CIPHER,
    OPT_JSON,
    OPT_QUIET,
    OPT_HELP,
};

static const struct option long_opts[] = {
    {"server", required_argument, NULL, OPT_SERVER},
    {"listen", required_argument, NULL, OPT_SERVER},
    {"server2", required_argument, NULL, OPT_SERVER2},
    {"local", required_argument, NULL, OPT_LOCAL},
    {"per-address", required_argument, NULL, OPT_PER_ADDRESS},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"clients", required_argument, NULL, OPT_CLIENTS},
    {"rate", required_argument, NULL, OPT_RATE},
    {"window", required_argument, NULL, OPT_WINDOW},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"count", required_argument, NULL, OPT_COUNT},
    {"drain", required_argument, NULL, OPT_DRAIN},
    {"burst", required_argument, NULL, OPT_BURST},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"fingerprint", no_argument, NULL, OPT_FINGERPRINT},
    {"pairs", required_argument, NULL, OPT_PAIRS},
    {"size", required_argument, NULL, OPT_SIZE},
    {"send-indications", no_argument, NULL, OPT_SEND_IND},
    {"secret", required_argument, NULL, OPT_SECRET},
    {"lifetime", required_argument, NULL, OPT_LIFETIME},
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
    {"sources", required_argument, NULL, OPT_SOURCES},
    {"keep", no_argument, NULL, OPT_KEEP},
    {"setup-timeout", required_argument, NULL, OPT_SETUP_TIMEOUT},
    {"rto", required_argument, NULL, OPT_RTO},
    {"sockbuf", required_argument, NULL, OPT_SOCKBUF},
    {"ready-file", required_argument, NULL, OPT_READY_FILE},
    {"spin", no_argument, NULL, OPT_SPIN},
    {"transport", required_argument, NULL, OPT_TRANSPORT},
    {"peer", required_argument, NULL, OPT_PEER},
    {"late-ms", required_argument, NULL, OPT_LATE},
    {"tls-version", required_argument, NULL, OPT_TLS_VERSION},
    {"tls-cipher", required_argument, NULL, OPT_TLS_CIPHER},
    {"json", no_argument, NULL, OPT_JSON},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static int parse_uint(const char *name, const char *s, long long min, long long max, unsigned *out)
{
    long long v;
    if (ml_parse_ll(s, min, max, &v) < 0) {
        fprintf(stderr, "mlload: --%s wants an integer in %lld..%lld\n", name, min, max);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

static int parse_double(const char *name, const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= min && v <= max)) {
        fprintf(stderr, "mlload: --%s wants a number in %g..%g\n", name, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_opts(int argc, char **argv, struct ld_opts *o)
{
    bool have_server = false, have_rate = false, have_sockbuf = false, have_setup = false;
    memset(o, 0, sizeof *o);
    o->threads = 1;
    o->per_address = 20000;
    o->clients = 16;
    o->rate = 10000;
    o->duration_s = 10;
    o->drain_ms = 1000;
    o->burst = 16;
    o->timeout_ms = 1000;
    o->pairs = 4;
    o->size = 100;
    o->lifetime_s = 600;
    o->concurrency = 64;
    o->setup_timeout_s = 30;
    o->tls_version = 13;
    o->rto_ms = 500;
    o->sockbuf = 4u << 20;

    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            usage(stdout);
            exit(0);
        }
        usage(stderr);
        return -1;
    }
    const char *mode = argv[1];
    if (!strcmp(mode, "binding"))
        o->mode = LD_BINDING;
    else if (!strcmp(mode, "turn-relay"))
        o->mode = LD_TURN_RELAY;
    else if (!strcmp(mode, "turn-alloc"))
        o->mode = LD_TURN_ALLOC;
    else if (!strcmp(mode, "turn-idle"))
        o->mode = LD_TURN_IDLE;
    else if (!strcmp(mode, "reflect"))
        o->mode = LD_REFLECT;
    else if (!strcmp(mode, "turn-flood"))
        o->mode = LD_TURN_FLOOD;
    else {
        fprintf(stderr, "mlload: unknown mode '%s'\n", mode);
        usage(stderr);
        return -1;
    }

    optind = 2;
    int c;
    long long ll;
    while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case OPT_SERVER:
            if (ml_addr_parse(optarg, 3478, &o->server, &o->server_len) < 0) {
                fprintf(stderr, "mlload: bad --server '%s'\n", optarg);
                return -1;
            }
            have_server = true;
            break;
        case OPT_SERVER2:
            if (ml_addr_parse(optarg, 3478, &o->server2, &o->server2_len) < 0) {
                fprintf(stderr, "mlload: bad --server2 '%s'\n", optarg);
                return -1;
            }
            break;
        case OPT_LOCAL:
            if (ml_addr_parse(optarg, 0, &o->local, &o->local_len) < 0) {
                fprintf(stderr, "mlload: bad --local '%s'\n", optarg);
                return -1;
            }
            break;
        case OPT_THREADS:
            rc = parse_uint("threads", optarg, 1, LD_MAX_THREADS, &o->threads);
            break;
        case OPT_CLIENTS:
            rc = parse_uint("clients", optarg, 1, 100000, &o->clients);
            break;
        case OPT_RATE:
            rc = parse_double("rate", optarg, 0, 1e8, &o->rate);
            have_rate = true;
            break;
        case OPT_WINDOW:
            rc = parse_uint("window", optarg, 1, 65536, &o->window);
            break;
        case OPT_DURATION:
            rc = parse_double("duration", optarg, 0.1, 86400, &o->duration_s);
            break;
        case OPT_COUNT:
            if (ml_parse_ll(optarg, 0, (long long)1 << 50, &ll) < 0) {
                fprintf(stderr, "mlload: bad --count\n");
                return -1;
            }
            o->count = (uint64_t)ll;
            break;
        case OPT_DRAIN:
            rc = parse_uint("drain", optarg, 0, 60000, &o->drain_ms);
            break;
        case OPT_BURST:
            rc = parse_uint("burst", optarg, 1, 4096, &o->burst);
            break;
        case OPT_TIMEOUT:
            rc = parse_uint("timeout", optarg, 1, 60000, &o->timeout_ms);
            break;
        case OPT_FINGERPRINT:
            o->fingerprint = true;
            break;
        case OPT_PAIRS:
            rc = parse_uint("pairs", optarg, 1, 30000, &o->pairs);
            break;
        case OPT_SIZE:
            rc = parse_uint("size", optarg, LD_SIZE_MIN, LD_SIZE_MAX, &o->size);
            break;
        case OPT_SEND_IND:
            o->send_ind = true;
            break;
        case OPT_SECRET:
            o->secret = optarg;
            break;
        case OPT_LIFETIME:
            rc = parse_uint("lifetime", optarg, 60, 86400, &o->lifetime_s);
            break;
        case OPT_CONCURRENCY:
            rc = parse_uint("concurrency", optarg, 1, 100000, &o->concurrency);
            break;
        case OPT_SOURCES:
            rc = parse_uint("sources", optarg, 0, 1000000, &o->sources);
            break;
        case OPT_KEEP:
            o->keep = true;
            break;
        case OPT_SETUP_TIMEOUT:
            rc = parse_uint("setup-timeout", optarg, 1, 3600, &o->setup_timeout_s);
            have_setup = true;
            break;
        case OPT_RTO:
            rc = parse_uint("rto", optarg, 10, 10000, &o->rto_ms);
            break;
        case OPT_SOCKBUF:
            rc = parse_uint("sockbuf", optarg, 0, 1 << 30, &o->sockbuf);
            have_sockbuf = true;
            break;
        case OPT_READY_FILE:
            o->ready_file = optarg;
            break;
        case OPT_PER_ADDRESS:
            rc = parse_uint("per-address", optarg, 1, 60000, &o->per_address);
            break;
        case OPT_SPIN:
            o->spin = true;
            break;
        case OPT_TRANSPORT:
            if (!strcmp(optarg, "udp")) {
                o->transport = LD_UDP;
            } else if (!strcmp(optarg, "tcp")) {
                o->transport = LD_TCP;
            } else if (!strcmp(optarg, "tls")) {
                o->transport = LD_TLS;
            } else {
                fprintf(stderr, "mlload: --transport wants udp, tcp or tls\n");
                return -1;
            }
            break;
        case OPT_PEER:
            if (!strcmp(optarg, "pairs")) {
                o->peer_external = false;
            } else if (!strcmp(optarg, "external")) {
                o->peer_external = true;
            } else {
                fprintf(stderr, "mlload: --peer wants pairs or external\n");
                return -1;
            }
            break;
        case OPT_LATE:
            rc = parse_uint("late-ms", optarg, 0, 60000, &o->late_ms);
            break;
        case OPT_TLS_VERSION:
            if (!strcmp(optarg, "1.2")) {
                o->tls_version = 12;
            } else if (!strcmp(optarg, "1.3")) {
                o->tls_version = 13;
            } else {
                fprintf(stderr, "mlload: --tls-version wants 1.2 or 1.3\n");
                return -1;
            }
            break;
        case OPT_TLS_CIPHER:
            o->tls_cipher = optarg;
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case OPT_QUIET:
            o->quiet = true;
            break;
        case OPT_HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
        if (rc < 0)
            return -1;
    }
    if (optind != argc) {
        fprintf(stderr, "mlload: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!have_server) {
        fprintf(stderr, "mlload: --server is required\n");
        return -1;
    }
    if (o->local_len && o->local.ss_family != o->server.ss_family) {
        fprintf(stderr, "mlload: --local and --server are of different families\n");
        return -1;
    }
    if (!o->local_len && o->mode != LD_REFLECT && o->server.ss_family == AF_INET &&
        (ntohl(((const struct sockaddr_in *)&o->server)->sin_addr.s_addr) >> 24) == 127) {
        /* A fresh loopback source address per run: servers keep state for a 5-tuple after
         * its allocation is freed (coturn answers 437 for a while), and a new socket may get
         * a port an earlier run used. */
        uint8_t r[3];
        ml_random(r, sizeof r);
        struct sockaddr_in *l = (struct sockaddr_in *)&o->local;
        l->sin_family = AF_INET;
        l->sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)(1 + r[0] % 254) << 16 |
                                   (uint32_t)(1 + r[1] % 254) << 8 | (uint32_t)(1 + r[2] % 254));
        o->local_len = sizeof *l;
    }
    if (!ld_paced(o->mode) && o->mode != LD_REFLECT && (!o->secret || !*o->secret)) {
        fprintf(stderr, "mlload: TURN modes need --secret\n");
        return -1;
    }
    if (o->mode == LD_TURN_FLOOD && (o->rate <= 0 || o->window)) {
        fprintf(stderr, "mlload: turn-flood is open loop: it needs --rate > 0, no --window\n");
        return -1;
    }
    if (o->sources) {
        const struct sockaddr_in *l = (const struct sockaddr_in *)&o->local;
        uint32_t h = o->local.ss_family == AF_INET ? ntohl(l->sin_addr.s_addr) : 0;
        if (o->mode != LD_TURN_ALLOC || o->transport != LD_UDP || h >> 24 != 127 ||
            !(h >> 16 & 0xff) || (h >> 16 & 0xff) == 255 || !(h >> 8 & 0xff) ||
            (h >> 8 & 0xff) == 255 || !(h & 0xff) || (h & 0xff) == 255) {
            fprintf(stderr, "mlload: --sources is for turn-alloc over UDP from a 127.a.b.c "
                            "--local (a, b, c in 1..254)\n");
            return -1;
        }
    }
    if (o->mode == LD_BINDING && o->rate == 0 && !o->window)
        o->window = 8;
    if (o->mode == LD_BINDING && o->window && !have_rate)
        o->rate = 0; /* --window alone means closed loop */
    if (o->mode == LD_BINDING && o->window && o->rate > 0) {
        fprintf(stderr, "mlload: --window (closed loop) and --rate (open loop) exclude each "
                        "other\n");
        return -1;
    }
    if (o->transport != LD_UDP && (ld_paced(o->mode) || o->mode == LD_REFLECT)) {
        fprintf(stderr, "mlload: --transport tcp/tls is for the TURN modes\n");
        return -1;
    }
    if (!o->tls_cipher)
        o->tls_cipher = o->tls_version == 13
                            ? "TLS_AES_128_GCM_SHA256"
                            : "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";
    if (o->peer_external && o->mode != LD_TURN_RELAY) {
        fprintf(stderr, "mlload: --peer external is for turn-relay\n");
        return -1;
    }
    if (o->server2_len && (o->mode != LD_TURN_RELAY || o->peer_external ||
                           o->server2.ss_family != o->server.ss_family)) {
        fprintf(stderr, "mlload: --server2 is for turn-relay with --peer pairs, of --server's "
                        "family\n");
        return -1;
    }
    if (o->peer_external && !o->local_len) {
        fprintf(stderr, "mlload: --peer external needs --local (the peers' address)\n");
        return -1;
    }
    if (o->mode == LD_TURN_RELAY && o->rate <= 0) {
        fprintf(stderr, "mlload: turn-relay needs --rate > 0\n");
        return -1;
    }
    if ((o->mode == LD_TURN_ALLOC || o->mode == LD_TURN_IDLE) && !have_sockbuf)
        o->sockbuf = 0; /* thousands of sockets: keep the kernel default */
    if (o->mode == LD_TURN_IDLE && !have_setup)
        o->setup_timeout_s = 120;
    if ((o->mode == LD_TURN_ALLOC || o->mode == LD_TURN_IDLE) && !o->count)
        o->count = o->mode == LD_TURN_IDLE ? 1000 : 2000;
    /* Threads beyond the work units would idle. */
    unsigned units = ld_paced(o->mode)          ? o->clients
                     : o->mode == LD_TURN_RELAY ? o->pairs
                     : o->mode == LD_REFLECT    ? o->threads
                                                : (unsigned)(o->count < 100000 ? o->count : 100000);
    if (o->threads > units)
        o->threads = units ? units : 1;
    if ((o->mode == LD_TURN_ALLOC || o->mode == LD_TURN_IDLE) && o->concurrency < o->threads)
        o->concurrency = o->threads;
    return 0;
}

/* ------------------------------------------------------------ signals and watchdog */

static void on_stop(int sig)
{
    if (ld_stop_flag) {
        /* second signal: the user means it */
        static const char msg[] = "mlload: interrupted twice, exiting now\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(128 + sig);
    }
    ld_stop_flag = 1;
}

static void on_alarm(int sig)
{
    static const char msg[] = "mlload: watchdog: the run overstayed its hard time limit\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    (void)sig;
    _exit(3);
}

/* ------------------------------------------------------------ threads and report */

static void *thread_main(void *arg)
{
    struct ld_thread *t = arg;
    char name[16];
    ml_snprintf(name, sizeof name, "mlload-%u", t->idx);
    pthread_setname_np(pthread_self(), name);
    int rc;
    switch (t->o->mode) {
    case LD_BINDING:
    case LD_TURN_FLOOD:
        rc = ld_binding_thread(t);
        break;
    case LD_REFLECT:
        rc = ld_reflect_thread(t);
        break;
    default:
        rc = ld_turn_thread(t);
        break;
    }
    return (void *)(intptr_t)rc;
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static const char *transport_name(enum ld_transport t)
{
    return t == LD_TCP ? "tcp" : t == LD_TLS ? "tls" : "udp";
}

static const char *mode_name(enum ld_mode m)
{
    switch (m) {
    case LD_BINDING:
        return "binding";
    case LD_TURN_RELAY:
        return "turn-relay";
    case LD_TURN_ALLOC:
        return "turn-alloc";
    case LD_TURN_IDLE:
        return "turn-idle";
    case LD_REFLECT:
        return "reflect";
    case LD_TURN_FLOOD:
        return "turn-flood";
    }
    return "?";
}

struct ld_report {
    struct ld_stats s;
    double elapsed_s; /* measured phase, first start to last end */
    double wall_s;    /* whole run */
    double cpu_user_s, cpu_sys_s;
    double run_cpu_s;    /* worker threads' CPU during the measured phase */
    double run_work_s;   /* worker threads' send and receive work during the measured phase */
    double busy_max_pct; /* busiest worker thread (CPU / wall) during the measured phase */
    double work_max_pct; /* busiest worker thread (send and receive work / wall) */
    uint64_t lost;
    double loss_pct;
    double send_rate, recv_rate, alloc_rate;
    double answer_bytes_per_s, answer_bytes_per_s_after_1s; /* turn-flood */
};

static void report_build(const struct ld_opts *o, struct ld_thread *th, struct ld_report *r)
{
    struct ld_stats *s = &r->s;
    int64_t start = INT64_MAX, end = 0, last_done = 0;
    for (unsigned i = 0; i < o->threads; i++) {
        const struct ld_stats *x = &th[i].st;
        s->sent += x->sent;
        s->received += x->received;
        s->errors += x->errors;
        s->stale += x->stale;
        s->dup += x->dup;
        s->invalid += x->invalid;
        s->timeouts += x->timeouts;
        s->skipped += x->skipped;
        s->send_eagain += x->send_eagain;
        s->send_err += x->send_err;
        s->rx_drops += x->rx_drops;
        s->setup_ok += x->setup_ok;
        s->setup_failed += x->setup_failed;
        s->retransmits += x->retransmits;
        s->stale_nonce += x->stale_nonce;
        s->freed += x->freed;
        s->free_failed += x->free_failed;
        s->refreshed += x->refreshed;
        s->refresh_failed += x->refresh_failed;
        s->misrouted += x->misrouted;
        s->blocked += x->blocked;
        s->late += x->late;
        s->peer_echoed += x->peer_echoed;
        s->sent_bytes += x->sent_bytes;
        s->recv_bytes += x->recv_bytes;
        s->recv_bytes_after_1s += x->recv_bytes_after_1s;
        s->conn_failed += x->conn_failed;
        s->pairs_run += x->pairs_run;
        s->rate += x->rate;
        if (x->pair_loss_max_pct > s->pair_loss_max_pct)
            s->pair_loss_max_pct = x->pair_loss_max_pct;
        for (unsigned k = 0; k < ML_ARRAY_LEN(s->err_codes); k++)
            s->err_codes[k] += x->err_codes[k];
        ld_hist_merge(&s->lat, &x->lat);
        if (x->run_start_us && x->run_start_us < start)
            start = x->run_start_us;
        if (x->run_end_us > end)
            end = x->run_end_us;
        if (x->last_done_us > last_done)
            last_done = x->last_done_us;
        r->run_cpu_s += (double)x->run_cpu_ns / 1e9;
        r->run_work_s += (double)x->run_work_us / 1e6;
        if (x->run_end_us > x->run_start_us && x->run_start_us) {
            double busy = (double)x->run_cpu_ns / 1e3 / (double)(x->run_end_us - x->run_start_us);
            if (busy * 100 > r->busy_max_pct)
                r->busy_max_pct = busy * 100;
            double work = (double)x->run_work_us / (double)(x->run_end_us - x->run_start_us);
            if (work * 100 > r->work_max_pct)
                r->work_max_pct = work * 100;
        }
    }
    r->elapsed_s = end > start && start != INT64_MAX ? (double)(end - start) / 1e6 : 0;
    uint64_t answered = s->received + s->errors;
    r->lost = s->sent > answered ? s->sent - answered : 0;
    r->loss_pct = s->sent ? 100.0 * (double)r->lost / (double)s->sent : 0;
    if (r->elapsed_s > 0) {
        r->send_rate = (double)s->sent / r->elapsed_s;
        r->recv_rate = (double)s->received / r->elapsed_s;
    }
    if (o->mode == LD_TURN_FLOOD && r->elapsed_s > 0) {
        /* over the sending phase and the drain that collects its last answers */
        double window = r->elapsed_s + o->drain_ms / 1000.0;
        r->answer_bytes_per_s = (double)s->recv_bytes / window;
        /* the sending phase after its first second: the burst is spent, the rate remains */
        if (r->elapsed_s > 1)
            r->answer_bytes_per_s_after_1s = (double)s->recv_bytes_after_1s / (r->elapsed_s - 1);
    }
    if (o->mode == LD_TURN_ALLOC && last_done > start && start != INT64_MAX)
        r->alloc_rate = (double)s->setup_ok / ((double)(last_done - start) / 1e6);
}

static void print_json(const struct ld_opts *o, const struct ld_report *r)
{
    const struct ld_stats *s = &r->s;
    char srv[ML_ADDR_STRLEN];
    ml_addr_str((const struct sockaddr *)&o->server, srv, sizeof srv);
    const char *lat = o->mode == LD_BINDING      ? "rtt"
                      : o->mode == LD_TURN_RELAY ? "one_way"
                                                 : "sequence";
    printf("{\"mode\":\"%s\",\"server\":\"%s\",\"threads\":%u", mode_name(o->mode), srv,
           o->threads);
    if (o->server2_len) {
        char srv2[ML_ADDR_STRLEN];
        ml_addr_str((const struct sockaddr *)&o->server2, srv2, sizeof srv2);
        printf(",\"server2\":\"%s\"", srv2);
    }
    if (ld_paced(o->mode))
        printf(",\"clients\":%u,\"window\":%u", o->clients, o->window);
    if (!ld_paced(o->mode) && o->mode != LD_REFLECT)
        printf(",\"client_transport\":\"%s\"", transport_name(o->transport));
    if (o->transport == LD_TLS)
        printf(",\"tls_version\":\"1.%u\",\"tls_cipher\":\"%s\"", o->tls_version % 10,
               o->tls_cipher);
    if (o->mode == LD_TURN_RELAY)
        printf(",\"pairs\":%u,\"pairs_run\":%llu,\"size\":%u,\"transport\":\"%s\","
               "\"peer\":\"%s\",\"late_ms\":%u",
               o->pairs, (unsigned long long)s->pairs_run, o->size,
               o->send_ind ? "indication" : "channeldata", o->peer_external ? "external" : "pairs",
               o->late_ms);
    if (o->mode == LD_TURN_ALLOC || o->mode == LD_TURN_IDLE)
        printf(",\"concurrency\":%u,\"count\":%llu", o->concurrency, (unsigned long long)o->count);
    if (ld_paced(o->mode) || o->mode == LD_TURN_RELAY)
        printf(",\"rate_offered\":%.0f,\"rate_effective\":%.0f", o->rate, s->rate);
    if (o->mode == LD_TURN_FLOOD)
        printf(",\"sent_bytes\":%llu,\"answer_bytes\":%llu,\"answer_bytes_per_s\":%.0f,"
               "\"answer_bytes_per_s_after_1s\":%.0f,\"amplification\":%.3f",
               (unsigned long long)s->sent_bytes, (unsigned long long)s->recv_bytes,
               r->answer_bytes_per_s, r->answer_bytes_per_s_after_1s,
               s->sent_bytes ? (double)s->recv_bytes / (double)s->sent_bytes : 0.0);
    printf(",\"elapsed_s\":%.3f", r->elapsed_s);
    printf(",\"sent\":%llu,\"received\":%llu,\"errors\":%llu,\"lost\":%llu,\"loss_pct\":%.4f",
           (unsigned long long)s->sent, (unsigned long long)s->received,
           (unsigned long long)s->errors, (unsigned long long)r->lost, r->loss_pct);
    printf(",\"send_rate\":%.1f,\"recv_rate\":%.1f", r->send_rate, r->recv_rate);
    printf(",\"latency\":\"%s\",\"lat_n\":%llu,\"lat_p50_us\":%llu,\"lat_p99_us\":%llu,"
           "\"lat_max_us\":%llu",
           lat, (unsigned long long)s->lat.n, (unsigned long long)ld_hist_pct(&s->lat, 50),
           (unsigned long long)ld_hist_pct(&s->lat, 99), (unsigned long long)s->lat.max);
    printf(",\"stale\":%llu,\"dup\":%llu,\"invalid\":%llu,\"timeouts\":%llu,\"skipped\":%llu,"
           "\"send_eagain\":%llu,\"send_err\":%llu,\"gen_rx_drops\":%llu",
           (unsigned long long)s->stale, (unsigned long long)s->dup, (unsigned long long)s->invalid,
           (unsigned long long)s->timeouts, (unsigned long long)s->skipped,
           (unsigned long long)s->send_eagain, (unsigned long long)s->send_err,
           (unsigned long long)s->rx_drops);
    if (!ld_paced(o->mode) && o->mode != LD_REFLECT) {
        printf(",\"setup_ok\":%llu,\"setup_failed\":%llu,\"retransmits\":%llu,"
               "\"stale_nonce\":%llu,\"freed\":%llu,\"free_failed\":%llu,\"refreshed\":%llu,"
               "\"refresh_failed\":%llu,\"misrouted\":%llu",
               (unsigned long long)s->setup_ok, (unsigned long long)s->setup_failed,
               (unsigned long long)s->retransmits, (unsigned long long)s->stale_nonce,
               (unsigned long long)s->freed, (unsigned long long)s->free_failed,
               (unsigned long long)s->refreshed, (unsigned long long)s->refresh_failed,
               (unsigned long long)s->misrouted);
        printf(",\"blocked\":%llu,\"conn_failed\":%llu", (unsigned long long)s->blocked,
               (unsigned long long)s->conn_failed);
        if (o->mode == LD_TURN_RELAY)
            printf(",\"pair_loss_max_pct\":%.4f,\"late\":%llu,\"peer_echoed\":%llu",
                   s->pair_loss_max_pct, (unsigned long long)s->late,
                   (unsigned long long)s->peer_echoed);
        if (o->mode == LD_TURN_ALLOC)
            printf(",\"alloc_rate\":%.1f", r->alloc_rate);
    }
    printf(",\"error_codes\":{");
    bool first = true;
    for (unsigned k = 0; k < ML_ARRAY_LEN(s->err_codes); k++) {
        if (s->err_codes[k]) {
            printf("%s\"%u\":%u", first ? "" : ",", k, s->err_codes[k]);
            first = false;
        }
    }
    printf("}");
    /* the whole latency histogram, its non-empty buckets as [value, count] (a bucket's middle,
     * 1/64 relative precision): percentiles of several runs pooled, as a run's own are computed */
    printf(",\"lat_hist\":[");
    first = true;
    for (unsigned i = 0; i < LD_HIST_BUCKETS; i++) {
        if (s->lat.b[i]) {
            printf("%s[%llu,%u]", first ? "" : ",", (unsigned long long)hist_value(i), s->lat.b[i]);
            first = false;
        }
    }
    printf("]");
    printf(",\"gen_cpu_s\":%.3f,\"gen_cpu_user_s\":%.3f,\"gen_cpu_sys_s\":%.3f,"
           "\"gen_wall_s\":%.3f,\"gen_run_cpu_s\":%.3f,\"gen_run_work_s\":%.3f,"
           "\"gen_busy_max_pct\":%.1f,"
           "\"gen_work_max_pct\":%.1f,\"gen_spin\":%s}\n",
           r->cpu_user_s + r->cpu_sys_s, r->cpu_user_s, r->cpu_sys_s, r->wall_s, r->run_cpu_s,
           r->run_work_s, r->busy_max_pct, r->work_max_pct, o->spin ? "true" : "false");
    fflush(stdout);
}

static void print_human(const struct ld_opts *o, const struct ld_report *r, FILE *f)
{
    const struct ld_stats *s = &r->s;
    fprintf(f, "mlload %s: %u thread(s), measured phase %.2f s", mode_name(o->mode), o->threads,
            r->elapsed_s);
    if (!ld_paced(o->mode) && o->mode != LD_REFLECT)
        fprintf(f, ", clients over %s", transport_name(o->transport));
    if (o->mode == LD_TURN_RELAY)
        fprintf(f, ", %s", o->peer_external ? "external peers" : "pairs");
    fprintf(f, "\n");
    if (o->mode == LD_REFLECT)
        fprintf(f, "  received %llu, answered %llu, invalid %llu, send errors %llu\n",
                (unsigned long long)s->received, (unsigned long long)s->sent,
                (unsigned long long)s->invalid, (unsigned long long)s->send_err);
    if (o->mode == LD_BINDING || o->mode == LD_TURN_RELAY) {
        fprintf(f,
                "  sent %llu (%.0f/s, offered %.0f/s), received %llu (%.0f/s), errors %llu, "
                "lost %llu (%.4f %%)\n",
                (unsigned long long)s->sent, r->send_rate, o->rate, (unsigned long long)s->received,
                r->recv_rate, (unsigned long long)s->errors, (unsigned long long)r->lost,
                r->loss_pct);
        fprintf(f, "  %s latency p50 %llu us, p99 %llu us, max %llu us\n",
                o->mode == LD_BINDING ? "round-trip" : "one-way",
                (unsigned long long)ld_hist_pct(&s->lat, 50),
                (unsigned long long)ld_hist_pct(&s->lat, 99), (unsigned long long)s->lat.max);
    }
    if (o->mode == LD_TURN_FLOOD)
        fprintf(f,
                "  sent %llu unauthenticated requests (%llu bytes, %.0f/s); answered %llu "
                "(%llu bytes: %.0f bytes/s, %.0f bytes/s after the first second; amplification "
                "%.2f)\n",
                (unsigned long long)s->sent, (unsigned long long)s->sent_bytes, r->send_rate,
                (unsigned long long)s->received, (unsigned long long)s->recv_bytes,
                r->answer_bytes_per_s, r->answer_bytes_per_s_after_1s,
                s->sent_bytes ? (double)s->recv_bytes / (double)s->sent_bytes : 0.0);
    if (!ld_paced(o->mode) && o->mode != LD_REFLECT) {
        fprintf(f,
                "  allocations: up %llu, failed %llu, freed %llu (failed %llu), retransmits "
                "%llu, stale nonces %llu\n",
                (unsigned long long)s->setup_ok, (unsigned long long)s->setup_failed,
                (unsigned long long)s->freed, (unsigned long long)s->free_failed,
                (unsigned long long)s->retransmits, (unsigned long long)s->stale_nonce);
    }
    if (o->mode == LD_TURN_ALLOC)
        fprintf(f, "  %.1f sequences/s; sequence time p50 %llu us, p99 %llu us\n", r->alloc_rate,
                (unsigned long long)ld_hist_pct(&s->lat, 50),
                (unsigned long long)ld_hist_pct(&s->lat, 99));
    if (o->mode == LD_TURN_IDLE)
        fprintf(f, "  keepalive refreshes %llu (failed %llu)\n", (unsigned long long)s->refreshed,
                (unsigned long long)s->refresh_failed);
    uint64_t odd = s->stale + s->dup + s->invalid + s->timeouts + s->skipped + s->send_eagain +
                   s->send_err + s->rx_drops + s->misrouted + s->blocked + s->late + s->conn_failed;
    if (odd)
        fprintf(f,
                "  stale %llu, dup %llu, invalid %llu, timeouts %llu, skipped %llu, eagain %llu, "
                "send errors %llu, generator rx drops %llu, misrouted %llu, blocked %llu, "
                "late %llu, connections failed %llu\n",
                (unsigned long long)s->stale, (unsigned long long)s->dup,
                (unsigned long long)s->invalid, (unsigned long long)s->timeouts,
                (unsigned long long)s->skipped, (unsigned long long)s->send_eagain,
                (unsigned long long)s->send_err, (unsigned long long)s->rx_drops,
                (unsigned long long)s->misrouted, (unsigned long long)s->blocked,
                (unsigned long long)s->late, (unsigned long long)s->conn_failed);
    for (unsigned k = 0; k < ML_ARRAY_LEN(s->err_codes); k++)
        if (s->err_codes[k])
            fprintf(f, "  error %u: %u response(s)\n", k, s->err_codes[k]);
    fprintf(f,
            "  generator CPU %.2f s (user %.2f, sys %.2f) over %.2f s wall; busiest thread: "
            "CPU %.0f %%, work %.0f %% of the measured phase%s\n",
            r->cpu_user_s + r->cpu_sys_s, r->cpu_user_s, r->cpu_sys_s, r->wall_s, r->busy_max_pct,
            r->work_max_pct, o->spin ? " (spinning)" : "");
    double load = o->spin ? r->work_max_pct : r->busy_max_pct;
    if (load > 85 || (r->s.skipped && r->s.skipped * 100 > r->s.sent))
        fprintf(f, "  WARNING: the generator may be the limit (a thread above 85 %% or over 1 %% "
                   "of the schedule skipped): add --threads or cores\n");
}

/* Every client is a socket (two with an external peer): raises the open-file limit to what the
 * run needs, up to the hard limit, and beyond it where allowed (root). */
static void raise_nofile(const struct ld_opts *o)
{
    rlim_t need = 256 + 2 * (rlim_t)(o->mode == LD_BINDING      ? o->clients
                                     : o->mode == LD_TURN_RELAY ? 2 * o->pairs
                                                                : o->count);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
        return;
    struct rlimit want = {need, rl.rlim_max > need ? rl.rlim_max : need};
    if (setrlimit(RLIMIT_NOFILE, &want) < 0) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    struct ld_opts o;
    if (parse_opts(argc, argv, &o) < 0)
        return 2;
    raise_nofile(&o);

    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (o.transport == LD_TLS && ld_tls_init(&o) < 0)
        return 1;

    struct ld_run run = {0};
    ml_random(&run.cookie, sizeof run.cookie);
    run.start_us = ml_now_us();
    double budget_s = o.duration_s + o.drain_ms / 1000.0;
    if (!ld_paced(o.mode) && o.mode != LD_REFLECT)
        budget_s += o.setup_timeout_s + LD_TEARDOWN_S;
    run.hard_end_us = run.start_us + (int64_t)(budget_s * 1e6);
    /* The watchdog fires only when something overstays the budget; every loop also checks
     * hard_end_us, so this is the last line of defence against a hang. */
    alarm((unsigned)budget_s + 30);

    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);

    struct ld_thread *th = calloc(o.threads, sizeof *th);
    if (!th) {
        fprintf(stderr, "mlload: out of memory\n");
        return 1;
    }
    unsigned units = ld_paced(o.mode)          ? o.clients
                     : o.mode == LD_TURN_RELAY ? o.pairs
                     : o.mode == LD_REFLECT    ? o.threads
                                               : 0;
    for (unsigned i = 0; i < o.threads; i++)
        th[i].ep = -1;
    unsigned first = 0;
    int rc = 0;
    unsigned started = 0;
    for (unsigned i = 0; i < o.threads; i++) {
        struct ld_thread *t = &th[i];
        t->idx = i;
        t->o = &o;
        t->run = &run;
        if (units) {
            t->n = (unsigned)ld_share(units, i, o.threads);
            t->first = first;
            first += t->n;
            t->rate = o.rate * t->n / units;
            t->count = o.count ? ld_share(o.count, i, o.threads) : 0;
        } else {
            t->n = (unsigned)ld_share(o.count, i, o.threads);
            t->first = first;
            first += t->n;
            t->count = t->n;
        }
        t->rx_buf = malloc(LD_BATCH * sizeof *t->rx_buf);
        t->ep = epoll_create1(EPOLL_CLOEXEC);
        if (!t->rx_buf || t->ep < 0) {
            fprintf(stderr, "mlload: out of memory or file descriptors\n");
            rc = 1;
            break;
        }
        if (pthread_create(&t->tid, NULL, thread_main, t) != 0) {
            fprintf(stderr, "mlload: pthread_create failed\n");
            rc = 1;
            break;
        }
        started++;
    }
    if (rc) {
        /* threads already started see the stop flag and the gate never opens */
        ld_stop_flag = 1;
        __atomic_store_n(&run.go_us, ml_now_us(), __ATOMIC_RELEASE);
    }
    for (unsigned i = 0; i < started; i++) {
        void *ret;
        pthread_join(th[i].tid, &ret);
        if ((intptr_t)ret != 0)
            rc = 1;
    }
    alarm(0);
    getrusage(RUSAGE_SELF, &ru1);

    struct ld_report *r = calloc(1, sizeof *r);
    if (!r) {
        fprintf(stderr, "mlload: out of memory\n");
        return 1;
    }
    report_build(&o, th, r);
    r->wall_s = (double)(ml_now_us() - run.start_us) / 1e6;
    r->cpu_user_s = tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime);
    r->cpu_sys_s = tv_s(ru1.ru_stime) - tv_s(ru0.ru_stime);
    if (o.json)
        print_json(&o, r);
    if (!o.quiet)
        print_human(&o, r, o.json ? stderr : stdout);
    if (!ld_paced(o.mode) && o.mode != LD_REFLECT && r->s.setup_ok == 0)
        rc = 1;
    for (unsigned i = 0; i < o.threads; i++) {
        if (th[i].ep >= 0)
            close(th[i].ep);
        free(th[i].rx_buf);
    }
    free(th);
    free(r);
    ld_tls_free(&o);
    return rc;
}
