/* httpload: a load generator for meetlite's REST API (tests/bench/bench-control.sh).
 *
 * One thread, epoll, non-blocking sockets and HTTP/1.1 keep-alive, closed loop: each of --conns
 * connections sends its next request when the answer to the last one is complete. Every request
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

static struct hl_req *reqs;
static size_t nreqs, next_req;
static struct hl_conn *conns;
static unsigned nconns;
static int ep;
static struct sockaddr_in server;
static bool counting, stop; /* stop: the time is up, no new request goes */
static uint64_t hist[HL_HIST + 1], answered, errors, reconnects, status_count[6];
static uint64_t lat_max_us;

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
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)(c - conns)};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        die("epoll_ctl");
}

static void conn_reopen(struct hl_conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    reconnects++;
    conn_open(c); /* the request in flight, if any, goes again */
}

static void want_write(struct hl_conn *c, bool on)
{
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0),
                             .data.u32 = (uint32_t)(c - conns)};
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

static void next_request(struct hl_conn *c)
{
    c->req = next_req++;
    if (next_req == nreqs)
        next_req = 0;
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
                errors++;
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
            answered++;
            uint64_t b = lat / HL_BUCKET_US;
            hist[b > HL_HIST ? HL_HIST : b]++;
            if (lat > lat_max_us)
                lat_max_us = lat;
            status_count[status >= 100 && status < 600 ? status / 100 : 0]++;
        }
        memmove(c->in, c->in + len, c->in_len - (size_t)len);
        c->in_len -= (size_t)len;
        if (closing) {
            c->req = next_req++; /* the next request goes on a new connection */
            if (next_req == nreqs)
                next_req = 0;
            conn_reopen(c);
            return;
        }
        if (stop)
            return;
        next_request(c);
        return;
    }
}

static double pct_ms(double q)
{
    uint64_t want = (uint64_t)(q * (double)answered), seen = 0;
    for (unsigned i = 0; i <= HL_HIST; i++) {
        seen += hist[i];
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

static void usage(void)
{
    fprintf(stderr, "usage: httpload --server HOST:PORT --file REQUESTS [--conns N] "
                    "[--duration S] [--warmup S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *srv = NULL, *file = NULL;
    double duration = 10, warmup = 2;
    nconns = 64;
    static const struct option opts[] = {
        {"server", required_argument, NULL, 's'}, {"file", required_argument, NULL, 'f'},
        {"conns", required_argument, NULL, 'c'},  {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'}, {NULL, 0, NULL, 0}};
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
    if (!srv || !file || !nconns || duration <= 0 || warmup < 0)
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

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    conns = calloc(nconns, sizeof *conns);
    if (!conns)
        die("calloc");
    for (unsigned i = 0; i < nconns; i++) {
        conns[i].in = xmalloc(HL_IN_MAX);
        conns[i].req = next_req++;
        if (next_req == nreqs)
            next_req = 0;
        conn_open(&conns[i]);
    }
    uint64_t start = now_us(), count_from = start + (uint64_t)(warmup * 1e6),
             end = count_from + (uint64_t)(duration * 1e6);
    double cpu0 = 0;
    struct epoll_event evs[256];
    while (!stop) {
        uint64_t t = now_us();
        if (!counting && t >= count_from) {
            counting = true;
            cpu0 = cpu_s();
            count_from = t;
        }
        if (t >= end)
            stop = true;
        int n = epoll_wait(ep, evs, 256, 100);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            struct hl_conn *c = &conns[evs[i].data.u32];
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
    double secs = (double)(now_us() - count_from) / 1e6, cpu = cpu_s() - cpu0;
    printf("{\"conns\":%u,\"seconds\":%.3f,\"answered\":%llu,\"rate\":%.1f,"
           "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
           "\"status\":{\"2xx\":%llu,\"3xx\":%llu,\"4xx\":%llu,\"5xx\":%llu,\"other\":%llu},"
           "\"errors\":%llu,\"reconnects\":%llu,\"cpu_s\":%.3f,\"cpu_us_per_request\":%.1f}\n",
           nconns, secs, (unsigned long long)answered, (double)answered / secs, pct_ms(0.50),
           pct_ms(0.99), (double)lat_max_us / 1000.0, (unsigned long long)status_count[2],
           (unsigned long long)status_count[3], (unsigned long long)status_count[4],
           (unsigned long long)status_count[5],
           (unsigned long long)(status_count[0] + status_count[1]), (unsigned long long)errors,
           (unsigned long long)reconnects, cpu, answered ? cpu * 1e6 / (double)answered : 0);
    return 0;
}
