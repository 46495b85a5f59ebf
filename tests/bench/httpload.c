/* httpload: a load generator for meetlite's REST API (tests/bench/bench-control.sh).
 *
 * --threads threads (2 by default, as wrk was run: with one client thread the same server
 * answered a third fewer joins), each with its own epoll and its share of the --conns
 * connections; non-blocking sockets and HTTP/1.1 keep-alive, closed loop: each connection sends
 * its next request when the answer to the last one is complete. Every request
 * is formatted before the load starts, so what a request costs the generator is a send() and
 * the parse of its answer's head: the server and PostgreSQL, not the generator, are what is
 * measured (wrk's Lua request() cost a join more CPU than meetlited spent on it). Its own CPU is
 * reported beside the figures.
 *
 * The requests file has one request a line: "METHOD PATH TOKEN" (TOKEN: a bearer token, "-" for
 * none). The requests are taken in order and the list starts again at its end. POST, PUT and
 * PATCH go with an empty body. An answer needs a Content-Length (meetlited always sends one);
 * a connection the server closes is opened again. After --warmup seconds the counting starts
 * and goes on for --duration seconds. Output: a JSON object on stdout. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HL_HIST 200000 /* latency histogram: 10 us buckets up to 2 s */
#define HL_BUCKET_US 10
#define HL_IN_MAX (256 * 1024) /* an answer's head and body */

struct hl_req {
    char *text;
    size_t len;
};

struct hl_conn {
    int fd;
    bool connecting;
    size_t req;     /* the request in flight (index into reqs) */
    size_t sent;    /* its bytes sent */
    uint64_t t0_us; /* when its first byte went */
    char *in;
    size_t in_len;
};

/* what one thread counted */
struct hl_stats {
    uint64_t hist[HL_HIST + 1], answered, errors, reconnects, status_count[6], lat_max_us;
};

/* one thread's connections */
struct hl_thread {
    pthread_t id;
    unsigned first, n;
    struct hl_stats st;
};

static struct hl_req *reqs;
static size_t nreqs, next_req; /* next_req: atomic */
static struct hl_conn *conns;
static unsigned nconns;
static struct sockaddr_in server;
static uint64_t count_from, end_at;
static __thread int ep;
static __thread bool counting, stop; /* stop: the time is up, no new request goes */
static __thread struct hl_stats *st;
static __thread struct hl_conn *tconns; /* the thread's first connection */

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void die(const char *what)
{
    fprintf(stderr, "httpload: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "httpload: out of memory\n");
        exit(2);
    }
    return p;
}

/* ------------------------------------------------------------------ requests */

static void load_requests(const char *path, const char *host)
{
    FILE *f = fopen(path, "r");
    if (!f)
        die(path);
    char line[8192];
    size_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        char method[16], target[2048], token[4096];
        if (sscanf(line, "%15s %2047s %4095s", method, target, token) != 3)
            continue;
        bool body = !strcmp(method, "POST") || !strcmp(method, "PATCH") || !strcmp(method, "PUT");
        /* an empty body, as wrk's scripts sent it */
        char auth[4200] = "";
        if (strcmp(token, "-") != 0)
            snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
        char buf[8192];
        int n = snprintf(buf, sizeof buf, "%s %s HTTP/1.1\r\nHost: %s\r\n%s%s\r\n", method, target,
                         host, auth, body ? "Content-Length: 0\r\n" : "");
        if (n <= 0 || (size_t)n >= sizeof buf)
            continue;
        if (nreqs == cap) {
            cap = cap ? cap * 2 : 1024;
            reqs = realloc(reqs, cap * sizeof *reqs);
            if (!reqs)
                die("realloc");
        }
        reqs[nreqs].text = xmalloc((size_t)n);
        memcpy(reqs[nreqs].text, buf, (size_t)n);
        reqs[nreqs].len = (size_t)n;
        nreqs++;
    }
    fclose(f);
    if (!nreqs) {
        fprintf(stderr, "httpload: no request in %s\n", path);
        exit(2);
    }
}

/* ------------------------------------------------------------------ connections */

static void conn_open(struct hl_conn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&server, sizeof server) < 0 && errno != EINPROGRESS)
        die("connect");
    c->connecting = true;
    c->sent = 0;
    c->in_len = 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)(c - tconns)};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        die("epoll_ctl");
}

static void conn_reopen(struct hl_conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    st->reconnects++;
    conn_open(c); /* the request in flight, if any, goes again */
}

static void want_write(struct hl_conn *c, bool on)
{
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0),
                             .data.u32 = (uint32_t)(c - tconns)};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Sends what is left of the connection's request; false when the connection broke. */
static bool send_more(struct hl_conn *c)
{
    const struct hl_req *r = &reqs[c->req];
    if (c->sent == 0)
        c->t0_us = now_us();
    while (c->sent < r->len) {
        ssize_t n = send(c->fd, r->text + c->sent, r->len - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            want_write(c, true);
            return true;
        }
        return false;
    }
    want_write(c, false);
    return true;
}

static size_t take_request(void)
{
    return __atomic_fetch_add(&next_req, 1, __ATOMIC_RELAXED) % nreqs;
}

static void next_request(struct hl_conn *c)
{
    c->req = take_request();
    c->sent = 0;
    if (!send_more(c))
        conn_reopen(c);
}

/* The length of a complete answer at the start of c->in (0: not complete yet, -1: no
 * Content-Length), its status in *status and whether the server closes in *closing. */
static long answer_len(struct hl_conn *c, int *status, bool *closing)
{
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end)
        return 0;
    size_t head = (size_t)(end - c->in) + 4;
    *status = 0;
    if (c->in_len >= 12 && !memcmp(c->in, "HTTP/1.", 7))
        *status = (int)strtol(c->in + 9, NULL, 10);
    long clen = -1;
    *closing = false;
    for (char *p = memchr(c->in, '\n', head); p && p < end; p = memchr(p + 1, '\n', head)) {
        char *l = p + 1, *eol = memchr(l, '\r', (size_t)(end + 2 - l));
        size_t ll = eol ? (size_t)(eol - l) : 0;
        if (ll > 15 && !strncasecmp(l, "Content-Length:", 15))
            clen = strtol(l + 15, NULL, 10);
        else if (ll > 11 && !strncasecmp(l, "Connection:", 11) &&
                 memmem(l + 11, ll - 11, "close", 5))
            *closing = true;
    }
    if (clen < 0)
        return -1;
    return c->in_len >= head + (size_t)clen ? (long)(head + (size_t)clen) : 0;
}

static void on_readable(struct hl_conn *c)
{
    for (;;) {
        if (c->in_len == HL_IN_MAX) {
            fprintf(stderr, "httpload: an answer over %d bytes\n", HL_IN_MAX);
            exit(2);
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, HL_IN_MAX - c->in_len, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            if (counting)
                st->errors++;
            conn_reopen(c);
            return;
        }
        c->in_len += (size_t)n;
        int status;
        bool closing;
        long len = answer_len(c, &status, &closing);
        if (len < 0) {
            fprintf(stderr, "httpload: an answer without Content-Length\n");
            exit(2);
        }
        if (len == 0)
            continue;
        uint64_t lat = now_us() - c->t0_us;
        if (counting) {
            st->answered++;
            uint64_t b = lat / HL_BUCKET_US;
            st->hist[b > HL_HIST ? HL_HIST : b]++;
            if (lat > st->lat_max_us)
                st->lat_max_us = lat;
            st->status_count[status >= 100 && status < 600 ? status / 100 : 0]++;
        }
        memmove(c->in, c->in + len, c->in_len - (size_t)len);
        c->in_len -= (size_t)len;
        if (closing) {
            c->req = take_request(); /* the next request goes on a new connection */
            conn_reopen(c);
            return;
        }
        if (stop)
            return;
        next_request(c);
        return;
    }
}

static double pct_ms(const struct hl_stats *t, double q)
{
    uint64_t want = (uint64_t)(q * (double)t->answered), seen = 0;
    for (unsigned i = 0; i <= HL_HIST; i++) {
        seen += t->hist[i];
        if (seen > want)
            return (double)(i * HL_BUCKET_US + HL_BUCKET_US / 2) / 1000.0;
    }
    return 0;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* One thread: its connections, its epoll, until the time is up. */
static void *run(void *arg)
{
    struct hl_thread *me = arg;
    st = &me->st;
    tconns = conns + me->first;
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    for (unsigned i = 0; i < me->n; i++) {
        tconns[i].in = xmalloc(HL_IN_MAX);
        tconns[i].req = take_request();
        conn_open(&tconns[i]);
    }
    struct epoll_event evs[256];
    while (!stop) {
        uint64_t t = now_us();
        if (!counting && t >= count_from)
            counting = true;
        if (t >= end_at)
            stop = true;
        int n = epoll_wait(ep, evs, 256, 100);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            struct hl_conn *c = &tconns[evs[i].data.u32];
            if (c->connecting && (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) {
                    errno = err;
                    die("connect");
                }
                c->connecting = false;
                if (!send_more(c))
                    conn_reopen(c);
                continue;
            }
            if (evs[i].events & EPOLLOUT && !send_more(c)) {
                conn_reopen(c);
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(c);
        }
    }
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: httpload --server HOST:PORT --file REQUESTS [--conns N] "
                    "[--threads N] [--duration S] [--warmup S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *srv = NULL, *file = NULL;
    double duration = 10, warmup = 2;
    unsigned nthreads = 2;
    nconns = 64;
    static const struct option opts[] = {{"server", required_argument, NULL, 's'},
                                         {"file", required_argument, NULL, 'f'},
                                         {"conns", required_argument, NULL, 'c'},
                                         {"duration", required_argument, NULL, 'd'},
                                         {"warmup", required_argument, NULL, 'w'},
                                         {"threads", required_argument, NULL, 't'},
                                         {NULL, 0, NULL, 0}};
    for (int o; (o = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        switch (o) {
        case 's':
            srv = optarg;
            break;
        case 'f':
            file = optarg;
            break;
        case 'c':
            nconns = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 't':
            nthreads = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'd':
            duration = strtod(optarg, NULL);
            break;
        case 'w':
            warmup = strtod(optarg, NULL);
            break;
        default:
            usage();
        }
    }
    if (!srv || !file || !nconns || !nthreads || nthreads > nconns || duration <= 0 || warmup < 0)
        usage();
    char host[256];
    snprintf(host, sizeof host, "%s", srv);
    char *colon = strrchr(host, ':');
    if (!colon)
        usage();
    *colon = 0;
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)strtoul(colon + 1, NULL, 10));
    if (inet_pton(AF_INET, host, &server.sin_addr) != 1)
        usage();
    *colon = ':';
    load_requests(file, host);

    conns = calloc(nconns, sizeof *conns);
    struct hl_thread *th = calloc(nthreads, sizeof *th);
    if (!conns || !th)
        die("calloc");
    uint64_t start = now_us();
    count_from = start + (uint64_t)(warmup * 1e6);
    end_at = count_from + (uint64_t)(duration * 1e6);
    for (unsigned i = 0, at = 0; i < nthreads; i++) {
        th[i].first = at;
        th[i].n = nconns / nthreads + (i < nconns % nthreads);
        at += th[i].n;
        if (pthread_create(&th[i].id, NULL, run, &th[i]) != 0)
            die("pthread_create");
    }
    /* the process's CPU over the counted time: every thread's */
    uint64_t t = now_us();
    if (t < count_from)
        usleep((useconds_t)(count_from - t));
    double cpu0 = cpu_s();
    uint64_t t0 = now_us();
    struct hl_stats *all = calloc(1, sizeof *all);
    if (!all)
        die("calloc");
    for (unsigned i = 0; i < nthreads; i++) {
        pthread_join(th[i].id, NULL);
        const struct hl_stats *x = &th[i].st;
        for (unsigned b = 0; b <= HL_HIST; b++)
            all->hist[b] += x->hist[b];
        all->answered += x->answered;
        all->errors += x->errors;
        all->reconnects += x->reconnects;
        for (unsigned k = 0; k < 6; k++)
            all->status_count[k] += x->status_count[k];
        if (x->lat_max_us > all->lat_max_us)
            all->lat_max_us = x->lat_max_us;
    }
    double secs = (double)(now_us() - t0) / 1e6, cpu = cpu_s() - cpu0;
    printf("{\"conns\":%u,\"threads\":%u,\"seconds\":%.3f,\"answered\":%llu,\"rate\":%.1f,"
           "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
           "\"status\":{\"2xx\":%llu,\"3xx\":%llu,\"4xx\":%llu,\"5xx\":%llu,\"other\":%llu},"
           "\"errors\":%llu,\"reconnects\":%llu,\"cpu_s\":%.3f,\"cpu_us_per_request\":%.1f}\n",
           nconns, nthreads, secs, (unsigned long long)all->answered, (double)all->answered / secs,
           pct_ms(all, 0.50), pct_ms(all, 0.99), (double)all->lat_max_us / 1000.0,
           (unsigned long long)all->status_count[2], (unsigned long long)all->status_count[3],
           (unsigned long long)all->status_count[4], (unsigned long long)all->status_count[5],
           (unsigned long long)(all->status_count[0] + all->status_count[1]),
           (unsigned long long)all->errors, (unsigned long long)all->reconnects, cpu,
           all->answered ? cpu * 1e6 / (double)all->answered : 0);
    return 0;
}
