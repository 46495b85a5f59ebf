/* The service manager's view of meetlited: systemd's notify protocol (sd_notify(3)), one
 * datagram of NAME=VALUE lines to the AF_UNIX socket named by $NOTIFY_SOCKET, written by hand
 * (systemd documents it as a stable interface; no libsystemd needed, so containers and other
 * managers get the same behaviour). READY=1 once every listener is up (and PostgreSQL answers,
 * or database.connect-timeout has passed without it), RELOADING=1 and READY=1
 * around a SIGHUP reload, STOPPING=1 at SIGTERM, and WATCHDOG=1 while the main loop and every
 * network worker answer: a worker that stops answering stops the pings, and the manager
 * restarts the daemon. Every call is made from the main thread; with no $NOTIFY_SOCKET the
 * calls do nothing. */
#include "config.h"

#include "app/app.h"

#include <errno.h>
#include <event2/event.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct app_notify {
    int fd; /* AF_UNIX datagram socket, CLOEXEC */
    struct sockaddr_un addr;
    socklen_t addrlen;
    /* watchdog: NULL timer when $WATCHDOG_USEC is unset or names another process */
    unsigned long long watchdog_us; /* the manager's timeout */
    struct event *timer;            /* every watchdog_us / 3 on the main loop */
    struct net_engine *engine;      /* borrowed; outlives the pings (freed after the engine) */
    unsigned nworkers;
    _Atomic uint64_t generation; /* the round the workers were last asked to answer */
    _Atomic uint64_t *answered;  /* per worker: the last round it answered */
    bool stalled;                /* the last round missed a worker (logged once per stall) */
    /* READY=1 held back until the database answers, or the wait runs out */
    struct event *ready_timer;
    app_notify_up_fn db_up;
    void *db_arg;
    int64_t ready_deadline_ms; /* CLOCK_MONOTONIC */
};

/* Sends one message; the manager is told, or the reason goes to the log. */
static void send_msg(struct app_notify *n, const char *msg)
{
    if (!n)
        return;
    ssize_t w =
        sendto(n->fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&n->addr, n->addrlen);
    if (w < 0)
        ML_WARN("app", "cannot notify the service manager (%.20s...): %s", msg, strerror(errno));
}

/* A positive integer from the environment, or 0. */
static unsigned long long env_ull(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    return errno || *end || v[0] == '-' ? 0 : x;
}

struct app_notify *app_notify_new(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return NULL;
    size_t len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        ML_WARN("app", "NOTIFY_SOCKET is neither a path nor an abstract name: ignored");
        return NULL;
    }
    struct app_notify *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (n->fd < 0) {
        ML_WARN("app", "cannot open the notify socket: %s", strerror(errno));
        free(n);
        return NULL;
    }
    n->addr.sun_family = AF_UNIX;
    memcpy(n->addr.sun_path, path, len);
    if (path[0] == '@')
        n->addr.sun_path[0] = '\0'; /* abstract: the name's length counts, no NUL */
    n->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));
    unsigned long long pid = env_ull("WATCHDOG_PID");
    if (!pid || pid == (unsigned long long)getpid())
        n->watchdog_us = env_ull("WATCHDOG_USEC");
    return n;
}

/* A worker's answer to the current round (runs on the worker's thread). */
static void worker_answer(struct net_worker *w, void *arg)
{
    struct app_notify *n = arg;
    unsigned id = net_worker_id(w);
    if (id < n->nworkers)
        atomic_store(&n->answered[id], atomic_load(&n->generation));
}

/* The main loop runs (this timer fired); the workers prove they run by answering the previous
 * round. Only then the manager hears WATCHDOG=1; then the next round is asked. */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    struct app_notify *n = arg;
    ML_UNUSED(fd);
    ML_UNUSED(what);
    uint64_t gen = atomic_load(&n->generation);
    unsigned late = n->nworkers;
    for (unsigned i = 0; i < n->nworkers; i++) {
        if (atomic_load(&n->answered[i]) < gen) {
            late = i;
            break;
        }
    }
    if (late == n->nworkers) {
        send_msg(n, "WATCHDOG=1");
        if (n->stalled)
            ML_NOTICE("app", "every network worker answers again; watchdog pings resume");
        n->stalled = false;
    } else if (!n->stalled) {
        ML_ERROR("app", "network worker %u did not answer within %llu ms: no watchdog ping", late,
                 n->watchdog_us / 3000);
        n->stalled = true;
    }
    atomic_store(&n->generation, gen + 1);
    for (unsigned i = 0; i < n->nworkers; i++) {
        struct net_worker *w = net_engine_worker(n->engine, i);
        if (net_worker_post(w, worker_answer, n) < 0)
            ML_ERROR("app", "network worker %u has stopped", i);
    }
}

int app_notify_watchdog_start(struct app_notify *n, struct event_base *base,
                              struct net_engine *engine)
{
    if (!n || !n->watchdog_us)
        return 0;
    n->engine = engine;
    n->nworkers = net_engine_workers(engine);
    n->answered = calloc(n->nworkers ? n->nworkers : 1, sizeof *n->answered);
    n->timer = event_new(base, -1, EV_PERSIST, on_watchdog, n);
    if (!n->answered || !n->timer)
        return -1;
    unsigned long long period = n->watchdog_us / 3;
    struct timeval tv = {.tv_sec = (time_t)(period / 1000000),
                         .tv_usec = (suseconds_t)(period % 1000000)};
    if (event_add(n->timer, &tv) < 0)
        return -1;
    on_watchdog(-1, 0, n); /* round 0 needs no answer: the first ping, and the first round */
    ML_INFO("app", "watchdog: ping every %llu ms while every network worker answers",
            period / 1000);
    return 0;
}

void app_notify_ready(struct app_notify *n, const char *status)
{
    char msg[512];
    if (!n)
        return;
    snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s\nMAINPID=%ld", status, (long)getpid());
    send_msg(n, msg);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_ready_poll(evutil_socket_t fd, short what, void *arg)
{
    struct app_notify *n = arg;
    ML_UNUSED(fd);
    ML_UNUSED(what);
    if (n->db_up(n->db_arg)) {
        app_notify_ready(n, "Running");
    } else if (mono_ms() >= n->ready_deadline_ms) {
        ML_WARN("app", "the database does not answer yet: ready without it (relaying goes on; "
                       "/readyz says when the database is back)");
        app_notify_ready(n, "Running; the database does not answer yet");
    } else {
        return;
    }
    event_del(n->ready_timer);
}

int app_notify_ready_when_up(struct app_notify *n, struct event_base *base, app_notify_up_fn up,
                             void *arg, long long wait_ms)
{
    if (!n)
        return 0;
    if (!up || up(arg)) {
        app_notify_ready(n, "Running");
        return 0;
    }
    n->db_up = up;
    n->db_arg = arg;
    n->ready_deadline_ms = mono_ms() + wait_ms;
    n->ready_timer = event_new(base, -1, EV_PERSIST, on_ready_poll, n);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 50000};
    if (!n->ready_timer || event_add(n->ready_timer, &tv) < 0)
        return -1;
    return 0;
}

void app_notify_reloading(struct app_notify *n)
{
    char msg[128];
    struct timespec ts;
    if (!n)
        return;
    /* systemd >= 253 matches the reload by this time stamp; older ones ignore it */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof msg,
             "RELOADING=1\nSTATUS=Reloading the configuration\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
    send_msg(n, msg);
}

void app_notify_stopping(struct app_notify *n)
{
    send_msg(n, "STOPPING=1\nSTATUS=Stopping");
}

void app_notify_free(struct app_notify *n)
{
    if (!n)
        return;
    if (n->timer)
        event_free(n->timer);
    if (n->ready_timer)
        event_free(n->ready_timer);
    free(n->answered);
    close(n->fd);
    free(n);
}
