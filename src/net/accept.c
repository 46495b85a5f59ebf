/* Accepting connections at the descriptor limit. When accept() fails for want of descriptors
 * (EMFILE, ENFILE) or kernel memory, the listening socket stays readable: libevent would call
 * accept() again at once and log each failure, a busy loop that also floods the log. Instead
 * the listener stops accepting for a pause (50 ms, doubling to a second while the failures go
 * on) and then tries again. Clients that arrive meanwhile wait in the kernel's backlog and are
 * accepted as soon as descriptors are free again; what is already open keeps being served. A
 * reserved descriptor (closed to accept and drop one connection) was not chosen: it can only
 * turn a waiting client away, costs a descriptor per listener, and under a flood turns the
 * pause back into a loop of accept-and-close. One log line per pause (so at most a few a
 * second), with the number of pauses in the episode, and one when accepting works again. */
#include "config.h"

#include "net/net-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NET_ACCEPT_PAUSE_MIN_MS 50
#define NET_ACCEPT_PAUSE_MAX_MS 1000

static const char *what(const struct net_acceptor *a, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char addr[ML_ADDR_STRLEN];
    evutil_socket_t fd = evconnlistener_get_fd(a->l);
    if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        ml_strlcpy(addr, "?", sizeof addr);
    else
        ml_addr_str((struct sockaddr *)&ss, addr, sizeof addr);
    ml_snprintf(buf, len, "%s %s", a->endpoint < 0 ? "relay listener" : "listener", addr);
    return buf;
}

static void on_fd(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                  void *arg)
{
    struct net_acceptor *a = arg;
    ML_UNUSED(l);
    if (a->pause_ms) {
        char w[ML_ADDR_STRLEN + 32];
        ML_LOG_LIMITED(ML_LOG_NOTICE, "net",
                       "%s accepting again after %lld ms (%u pauses for want of descriptors)",
                       what(a, w, sizeof w), (long long)(ml_now_ms() - a->paused_at_ms), a->pauses);
        a->pause_ms = 0;
        a->pauses = 0;
    }
    a->cb(a, fd, sa, (socklen_t)salen); /* may free a */
}

static void on_retry(evutil_socket_t fd, short ev, void *arg)
{
    struct net_acceptor *a = arg;
    ML_UNUSED(fd);
    ML_UNUSED(ev);
    evconnlistener_enable(a->l); /* a failure again pauses longer (on_error) */
}

static void on_error(struct evconnlistener *l, void *arg)
{
    struct net_acceptor *a = arg;
    int e = EVUTIL_SOCKET_ERROR();
    char w[ML_ADDR_STRLEN + 32];
    /* Every error that reaches here would repeat at once (libevent retries EAGAIN, EINTR and
     * ECONNABORTED itself): pause on all of them, not only on EMFILE and ENFILE. */
    if (a->pause_ms == 0) {
        a->pause_ms = NET_ACCEPT_PAUSE_MIN_MS;
        a->paused_at_ms = ml_now_ms();
    } else if (a->pause_ms < NET_ACCEPT_PAUSE_MAX_MS) {
        a->pause_ms *= 2;
        if (a->pause_ms > NET_ACCEPT_PAUSE_MAX_MS)
            a->pause_ms = NET_ACCEPT_PAUSE_MAX_MS;
    }
    a->pauses++;
    NET_COUNT(a->w->ctr.accept_paused, 1);
    evconnlistener_disable(l);
    struct timeval tv = {.tv_sec = a->pause_ms / 1000, .tv_usec = (a->pause_ms % 1000) * 1000};
    evtimer_add(a->retry, &tv);
    ML_LOG_LIMITED(ML_LOG_WARN, "net",
                   "%s: accept: %s; not accepting for %u ms (pause %u since %lld ms ago; open "
                   "connections are still served)",
                   what(a, w, sizeof w), strerror(e), a->pause_ms, a->pauses,
                   (long long)(ml_now_ms() - a->paused_at_ms));
}

struct net_acceptor *net_acceptor_new(struct net_worker *w, int fd, int endpoint,
                                      net_acceptor_cb cb, void *arg, char *err, size_t errlen)
{
    struct net_acceptor *a = calloc(1, sizeof *a);
    if (!a) {
        close(fd);
        ml_err(err, errlen, "out of memory");
        return NULL;
    }
    a->w = w;
    a->cb = cb;
    a->arg = arg;
    a->endpoint = endpoint;
    a->retry = evtimer_new(w->base, on_retry, a);
    /* backlog 0: the socket is listening already (its backlog set by whoever made it) */
    a->l = a->retry ? evconnlistener_new(w->base, on_fd, a,
                                         LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd)
                    : NULL;
    if (!a->l) {
        int e = errno;
        close(fd);
        if (a->retry)
            event_free(a->retry);
        free(a);
        ml_err(err, errlen, "cannot watch a listening socket: %s", strerror(e));
        return NULL;
    }
    evconnlistener_set_error_cb(a->l, on_error);
    return a;
}

void net_acceptor_free(struct net_acceptor *a)
{
    if (!a)
        return;
    evconnlistener_free(a->l); /* libevent defers the rest when inside its callback */
    event_free(a->retry);
    free(a);
}
