/* The engine: endpoint parsing, worker threads with one event_base each, listeners bound on
 * every worker with SO_REUSEPORT, cross-thread task posting, and counters. */
#include "config.h"

#include "net/net-int.h"

#include <errno.h>
#include <event2/bufferevent_ssl.h>
#include <event2/thread.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static __thread struct net_worker *self_worker;

const char *net_transport_name(enum net_transport t)
{
    switch (t) {
    case NET_UDP:
        return "udp";
    case NET_TCP:
        return "tcp";
    case NET_TLS:
        return "tls";
    case NET_SHARED:
        return "shared";
    }
    return "?";
}

struct parse_ctx {
    struct net_endpoint *v;
    size_t n, cap;
    char *err;
    size_t errlen;
};

static int parse_one(const char *item, void *arg)
{
    struct parse_ctx *c = arg;
    static const struct {
        const char *prefix;
        enum net_transport t;
    } schemes[] = {
        {"udp://", NET_UDP}, {"tcp://", NET_TCP}, {"tls://", NET_TLS}, {"shared://", NET_SHARED}};
    struct net_endpoint ep;
    memset(&ep, 0, sizeof ep);
    const char *rest = NULL;
    for (size_t i = 0; i < ML_ARRAY_LEN(schemes); i++) {
        size_t pl = strlen(schemes[i].prefix);
        if (strncasecmp(item, schemes[i].prefix, pl) == 0) {
            ep.transport = schemes[i].t;
            rest = item + pl;
        }
    }
    if (!rest)
        return ml_err(c->err, c->errlen,
                      "listen address \"%s\" needs a scheme: udp://, tcp://, tls:// or shared://",
                      item);
    uint16_t defport = ep.transport == NET_TLS ? 5349 : ep.transport == NET_SHARED ? 443 : 3478;
    if (ml_addr_parse(rest, defport, &ep.addr, &ep.addrlen) < 0)
        return ml_err(c->err, c->errlen, "listen address \"%s\": expected IP:PORT or [IPv6]:PORT",
                      item);
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        struct net_endpoint *v = realloc(c->v, cap * sizeof *v);
        if (!v)
            return ml_err(c->err, c->errlen, "out of memory");
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n++] = ep;
    return 0;
}

int net_endpoints_parse(const char *list, struct net_endpoint **out, size_t *n, char *err,
                        size_t errlen)
{
    struct parse_ctx c = {.err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = 0;
    if (ml_list_foreach(list ? list : "", parse_one, &c) < 0) {
        free(c.v);
        if (err && !err[0])
            ml_err(err, errlen, "listen list item too long");
        return -1;
    }
    *out = c.v;
    *n = c.n;
    return 0;
}

int net_endpoints_validate(const char *value, char *err, size_t errlen)
{
    struct net_endpoint *eps = NULL;
    size_t n = 0;
    if (net_endpoints_parse(value, &eps, &n, err, errlen) < 0)
        return -1;
    free(eps);
    return 0;
}

/* ---------------------------------------------------------------- workers */

static void run_tasks(evutil_socket_t fd, short what, void *arg)
{
    struct net_worker *w = arg;
    ML_UNUSED(fd);
    ML_UNUSED(what);
    pthread_mutex_lock(&w->qlock);
    struct net_task *t = w->qhead;
    w->qhead = w->qtail = NULL;
    pthread_mutex_unlock(&w->qlock);
    while (t) {
        struct net_task *next = t->next;
        t->fn(w, t->arg);
        free(t);
        t = next;
    }
    net_worker_flush(w);
}

int net_worker_post(struct net_worker *w, net_task_fn fn, void *arg)
{
    struct net_task *t = malloc(sizeof *t);
    if (!t)
        return -1;
    t->fn = fn;
    t->arg = arg;
    t->next = NULL;
    pthread_mutex_lock(&w->qlock);
    if (w->stopping) {
        pthread_mutex_unlock(&w->qlock);
        free(t);
        return -1;
    }
    if (w->qtail)
        w->qtail->next = t;
    else
        w->qhead = t;
    w->qtail = t;
    pthread_mutex_unlock(&w->qlock);
    event_active(w->wake, EV_READ, 0);
    return 0;
}

static void *worker_main(void *arg)
{
    struct net_worker *w = arg;
    struct net_engine *e = w->e;
    char name[16];
    char err[256] = "";
    ml_snprintf(name, sizeof name, "w%u", w->id);
    ml_log_set_thread(name);
    self_worker = w;
    __atomic_store_n(&w->state, e->h->worker_start(w, e->ctx), __ATOMIC_RELEASE);
    if (w->ur && net_uring_start(w, err, sizeof err) < 0) {
        /* not expected once the probe passed; this worker serves its sockets with epoll */
        ML_ERROR("net", "worker %u: %s; this worker uses epoll", w->id, err);
        net_uring_free(w->ur);
        w->ur = NULL;
        err[0] = 0;
    }
    for (size_t i = 0; i < e->neps; i++) {
        if (w->udp[i]) {
            w->udp[i]->arg = w->state;
            net_udp_arm(w->udp[i], err, sizeof err);
        }
        if (w->tcp_fd[i] >= 0) {
            int fd = w->tcp_fd[i];
            w->tcp_fd[i] = -1;
            if (net_stream_listen(w, i, fd, err, sizeof err) < 0)
                ML_ERROR("net", "%s", err);
        }
    }
    if (err[0])
        ML_ERROR("net", "%s", err);
    /* One iteration at a time, so that what the iteration's callbacks queued (datagrams from
     * every socket that was readable) leaves in as few sendmmsg calls as possible. The stop
     * request is a flag, not event_base_loopbreak(): a break asked for between two iterations
     * would be forgotten when the next one starts. */
    while (!__atomic_load_n(&w->quit, __ATOMIC_ACQUIRE)) {
        if (event_base_loop(w->base, EVLOOP_ONCE) != 0)
            break; /* an error, or nothing left to wait for */
        net_worker_turn(w);
    }
    /* Stopping: refuse new tasks, run those queued, then free everything this thread owns. */
    pthread_mutex_lock(&w->qlock);
    w->stopping = true;
    pthread_mutex_unlock(&w->qlock);
    run_tasks(-1, 0, w);
    for (size_t i = 0; i < e->neps; i++) {
        if (w->tcp[i]) {
            net_acceptor_free(w->tcp[i]);
            w->tcp[i] = NULL;
        }
        if (w->udp[i]) {
            net_udp_close(w->udp[i]);
            w->udp[i] = NULL;
        }
    }
    net_streams_close_all(w);
    void *state = w->state;
    __atomic_store_n(&w->state, NULL, __ATOMIC_RELEASE);
    e->h->worker_stop(w, state);
    net_conns_close_all(w); /* the handler closed its raw connections with its state */
    net_worker_flush(w);
    if (w->ur)
        net_uring_stop(w); /* frees the sockets closed above once the kernel lets go */
    /* Bufferevents freed above finish in deferred callbacks; run them. Nothing of ours is left
     * to call back: the reaper would find every list empty. */
    event_base_loop(w->base, EVLOOP_NONBLOCK);
    self_worker = NULL;
    return NULL;
}

static void worker_free(struct net_worker *w)
{
    if (!w)
        return;
    for (size_t i = 0; w->udp && i < w->e->neps; i++) {
        if (w->udp[i])
            net_udp_free(w->udp[i]);
        if (w->tcp_fd && w->tcp_fd[i] >= 0)
            close(w->tcp_fd[i]);
        if (w->tcp && w->tcp[i])
            net_acceptor_free(w->tcp[i]);
    }
    free(w->udp);
    free(w->tcp);
    free(w->tcp_fd);
    net_uring_free(w->ur); /* before the base: its event is on it */
    if (w->wake)
        event_free(w->wake);
    if (w->reap)
        event_free(w->reap);
    if (w->base)
        event_base_free(w->base);
    pthread_mutex_destroy(&w->qlock);
    free(w->rx);
    free(w->tx.arena);
    free(w);
}

static struct net_worker *worker_new(struct net_engine *e, unsigned id, char *err, size_t errlen)
{
    struct net_worker *w = calloc(1, sizeof *w);
    if (!w) {
        ml_err(err, errlen, "out of memory");
        return NULL;
    }
    w->id = id;
    w->e = e;
    pthread_mutex_init(&w->qlock, NULL);
    w->rx = malloc((size_t)NET_MAX_BATCH * NET_RX_SLOT);
    w->tx.arena = malloc(NET_TX_ARENA);
    w->udp = calloc(e->neps ? e->neps : 1, sizeof *w->udp);
    w->tcp = calloc(e->neps ? e->neps : 1, sizeof *w->tcp);
    w->tcp_fd = malloc((e->neps ? e->neps : 1) * sizeof *w->tcp_fd);
    /* A locked base: other threads wake it with event_active() (net_worker_post). */
    w->base = event_base_new();
    if (!w->rx || !w->tx.arena || !w->udp || !w->tcp || !w->tcp_fd || !w->base) {
        worker_free(w);
        ml_err(err, errlen, "out of memory");
        return NULL;
    }
    if (e->uring) {
        w->ur = net_uring_new(&e->set, err, errlen);
        if (!w->ur) {
            worker_free(w);
            return NULL;
        }
    }
    for (size_t i = 0; i < e->neps; i++)
        w->tcp_fd[i] = -1;
    w->wake = event_new(w->base, -1, 0, run_tasks, w);
    w->reap = event_new(w->base, -1, 0, net_reap, w);
    if (!w->wake || !w->reap) {
        worker_free(w);
        ml_err(err, errlen, "cannot create the wake-up event");
        return NULL;
    }
    return w;
}

/* Binds endpoint i on worker w; for port 0 the first worker's chosen port is reused. */
static int bind_endpoint(struct net_engine *e, struct net_worker *w, size_t i, char *err,
                         size_t errlen)
{
    struct sockaddr *addr = (struct sockaddr *)&e->bound[i];
    if (e->eps[i].transport == NET_UDP) {
        int fd = net_udp_socket(addr, &e->set, true, NULL, err, errlen);
        if (fd < 0)
            return -1;
        w->udp[i] = net_udp_wrap(w, fd, (int)i, e->h->udp_recv, NULL);
        if (!w->udp[i]) {
            close(fd);
            return ml_err(err, errlen, "out of memory");
        }
        memset(&e->bound[i], 0, sizeof e->bound[i]);
        memcpy(&e->bound[i], &w->udp[i]->local, sizeof w->udp[i]->local);
    } else {
        int fd = net_tcp_listen_socket(addr, NULL, err, errlen);
        if (fd < 0)
            return -1;
        w->tcp_fd[i] = fd;
        socklen_t len = sizeof e->bound[i];
        if (getsockname(fd, (struct sockaddr *)&e->bound[i], &len) < 0)
            return ml_err(err, errlen, "getsockname: %s", strerror(errno));
    }
    return 0;
}

/* libevent makes the BIO method of its OpenSSL filter on first use, without a lock: two workers
 * making their first TLS stream at once could each make one (one leaks) or use one whose
 * functions are not set yet. One filter made and freed here, before any worker runs, makes it. */
static void tls_filter_warm_up(struct event_base *base, SSL_CTX *ctx)
{
    struct bufferevent *raw = bufferevent_socket_new(base, -1, 0);
    SSL *ssl = raw ? SSL_new(ctx) : NULL;
    struct bufferevent *f =
        ssl ? bufferevent_openssl_filter_new(base, raw, ssl, BUFFEREVENT_SSL_ACCEPTING, 0) : NULL;
    if (f)
        bufferevent_free(f);
    if (raw)
        bufferevent_free(raw);
    if (ssl)
        SSL_free(ssl);
    event_base_loop(base, EVLOOP_NONBLOCK); /* their deferred finalizers */
}

/* net.max-streams 0: one share of the open-file limit (ml_fd_share: what is left after the
 * relay sockets, the HTTP connections and a reserve) for the workers together; one address then
 * gets at most half of one worker's part, so that a single address can fill no worker (the kernel
 * spreads an address's connections over the workers by a hash, not evenly) and cannot take the
 * whole of a small budget. */
static void derive_limits(struct net_settings *set)
{
    unsigned long long lim = ml_fd_limit();
    if (set->max_streams == 0) {
        long long total = ml_fd_share();
        long long per = total / set->workers;
        set->max_streams = per > 0 ? (unsigned)per : 1;
        unsigned half = set->max_streams / 2;
        if (half == 0)
            half = 1;
        if (set->max_streams_per_addr == 0 || set->max_streams_per_addr > half)
            set->max_streams_per_addr = half;
        ML_INFO("net",
                "net.max-streams derived from the open-file limit %llu: %u per worker, %u from one "
                "address",
                lim, set->max_streams, set->max_streams_per_addr);
    } else if (lim && (unsigned long long)set->max_streams * set->workers > lim) {
        ML_WARN("net",
                "net.max-streams=%u on %u workers exceeds the open-file limit %llu: at that limit "
                "new connections wait in the backlog (net.max-streams=0 derives a fitting limit)",
                set->max_streams, set->workers, lim);
    }
}

struct net_engine *net_engine_new(const struct net_settings *set, const struct net_endpoint *eps,
                                  size_t neps, const struct net_handler *h, void *ctx,
                                  SSL_CTX *tls_ctx, char *err, size_t errlen)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, (void (*)(void))evthread_use_pthreads);
    struct net_engine *e = calloc(1, sizeof *e);
    if (!e) {
        ml_err(err, errlen, "out of memory");
        return NULL;
    }
    e->set = *set;
    e->set.proxy_from = NULL; /* borrowed: parsed below */
    if (set->proxy_from && *set->proxy_from &&
        ml_cidr_set_add_list(&e->proxy_from, set->proxy_from, err, errlen) < 0) {
        ml_cidr_set_free(&e->proxy_from);
        free(e);
        return NULL;
    }
    if (e->set.workers == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        e->set.workers = cores > 0 ? (unsigned)cores : 1;
    }
    if (e->set.udp_batch == 0 || e->set.udp_batch > NET_MAX_BATCH)
        e->set.udp_batch = NET_MAX_BATCH;
    derive_limits(&e->set);
    e->addrs = ml_addr_counts_new(e->set.max_streams_per_addr);
    e->h = h;
    e->ctx = ctx;
    pthread_mutex_init(&e->tls_lock, NULL);
    pthread_mutex_init(&e->http_lock, NULL);
    if (net_io_select(e->set.io, NULL, &e->uring, e->io_note, sizeof e->io_note, err, errlen) < 0)
        goto fail;
    if (e->uring) {
        /* said after the data path: "io_uring (...); workers wait in ..." */
        size_t used = strlen(e->io_note);
        if (net_uring_wait_select(e->set.wait, NULL, &e->set.wait, e->io_note + used,
                                  sizeof e->io_note - used, err, errlen) < 0)
            goto fail;
    }
    e->neps = neps;
    e->eps = calloc(neps ? neps : 1, sizeof *e->eps);
    e->bound = calloc(neps ? neps : 1, sizeof *e->bound);
    e->workers = calloc(e->set.workers, sizeof *e->workers);
    if (!e->eps || !e->bound || !e->workers) {
        ml_err(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < neps; i++) {
        e->eps[i] = eps[i];
        memcpy(&e->bound[i], &eps[i].addr, sizeof e->bound[i]);
        if ((eps[i].transport == NET_TLS || eps[i].transport == NET_SHARED) && !tls_ctx) {
            ml_err(err, errlen, "a %s:// listener needs turn.tls-cert and turn.tls-key",
                   net_transport_name(eps[i].transport));
            goto fail;
        }
    }
    if (tls_ctx) {
        SSL_CTX_up_ref(tls_ctx);
        e->tls_ctx = tls_ctx;
    }
    for (unsigned i = 0; i < e->set.workers; i++) {
        e->workers[i] = worker_new(e, i, err, errlen);
        if (!e->workers[i])
            goto fail;
        e->nworkers = i + 1;
        for (size_t j = 0; j < neps; j++)
            if (bind_endpoint(e, e->workers[i], j, err, errlen) < 0)
                goto fail;
    }
    if (e->tls_ctx && e->nworkers)
        tls_filter_warm_up(e->workers[0]->base, e->tls_ctx);
    return e;
fail:
    net_engine_free(e);
    return NULL;
}

int net_engine_start(struct net_engine *e, char *err, size_t errlen)
{
    for (unsigned i = 0; i < e->nworkers; i++) {
        struct net_worker *w = e->workers[i];
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0)
            return ml_err(err, errlen, "cannot start worker thread: %s", strerror(rc));
        w->running = true;
    }
    return 0;
}

void net_engine_free(struct net_engine *e)
{
    if (!e)
        return;
    /* The flag, then a wake-up that needs no allocation: the iteration it causes ends the
     * worker's loop, wherever the worker was (waiting, or between two iterations). */
    for (unsigned i = 0; i < e->nworkers; i++) {
        struct net_worker *w = e->workers[i];
        if (w->running) {
            __atomic_store_n(&w->quit, true, __ATOMIC_RELEASE);
            event_active(w->wake, EV_READ, 0);
        }
    }
    /* Every thread joined before any worker is freed: whatever a worker does while it stops
     * (tasks, closing allocations) may post to another, which must still be there. */
    for (unsigned i = 0; i < e->nworkers; i++) {
        struct net_worker *w = e->workers[i];
        if (w->running)
            pthread_join(w->thread, NULL);
        w->running = false;
    }
    for (unsigned i = 0; i < e->nworkers; i++)
        worker_free(e->workers[i]);
    if (e->tls_ctx)
        SSL_CTX_free(e->tls_ctx);
    pthread_mutex_destroy(&e->tls_lock);
    ml_cidr_set_free(&e->proxy_from);
    pthread_mutex_destroy(&e->http_lock);
    ml_addr_counts_free(e->addrs);
    free(e->workers);
    free(e->eps);
    free(e->bound);
    free(e);
}

unsigned net_engine_workers(const struct net_engine *e)
{
    return e->nworkers;
}

struct net_worker *net_engine_worker(struct net_engine *e, unsigned i)
{
    return i < e->nworkers ? e->workers[i] : NULL;
}

const struct sockaddr *net_engine_bound(const struct net_engine *e, size_t endpoint)
{
    return (const struct sockaddr *)&e->bound[endpoint];
}

void net_engine_set_tls(struct net_engine *e, SSL_CTX *ctx)
{
    SSL_CTX_up_ref(ctx);
    pthread_mutex_lock(&e->tls_lock);
    SSL_CTX *old = e->tls_ctx;
    e->tls_ctx = ctx;
    pthread_mutex_unlock(&e->tls_lock);
    if (old)
        SSL_CTX_free(old); /* connections made with it hold their own reference */
}

void net_engine_set_http(struct net_engine *e, net_http_fn fn, void *arg, bool takes_tls)
{
    pthread_mutex_lock(&e->http_lock);
    e->http_fn = fn;
    e->http_arg = fn ? arg : NULL;
    __atomic_store_n(&e->http_tls, fn && takes_tls, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&e->http_lock);
}

void net_engine_counters(struct net_engine *e, struct net_counters *out)
{
    memset(out, 0, sizeof *out);
    uint64_t *dst = (uint64_t *)out;
    for (unsigned i = 0; i < e->nworkers; i++) {
        const uint64_t *src = (const uint64_t *)&e->workers[i]->ctr;
        for (size_t k = 0; k < sizeof *out / sizeof(uint64_t); k++)
            dst[k] += __atomic_load_n(&src[k], __ATOMIC_RELAXED);
    }
}

void net_engine_limits(struct net_engine *e, unsigned *max_streams, unsigned *per_addr,
                       size_t *addresses)
{
    *max_streams = e->set.max_streams;
    *per_addr = e->set.max_streams_per_addr;
    *addresses = ml_addr_counts_addresses(e->addrs);
}

const char *net_engine_io(const struct net_engine *e)
{
    return e->io_note;
}

bool net_engine_uses_uring(const struct net_engine *e)
{
    return e->uring;
}

unsigned net_worker_id(const struct net_worker *w)
{
    return w->id;
}

struct event_base *net_worker_base(struct net_worker *w)
{
    return w->base;
}

void *net_worker_state(struct net_worker *w)
{
    return __atomic_load_n(&w->state, __ATOMIC_ACQUIRE);
}

struct net_engine *net_worker_engine(struct net_worker *w)
{
    return w->e;
}

const struct net_counters *net_worker_counters(const struct net_worker *w)
{
    return &w->ctr;
}

struct net_worker *net_worker_self(void)
{
    return self_worker;
}

int64_t net_worker_now_ms(struct net_worker *w)
{
    ML_UNUSED(w);
    return ml_now_ms();
}
