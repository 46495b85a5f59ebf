/* Allocations (RFC 8656 section 7): the per-worker table keyed by the client's 5-tuple, relay
 * sockets from the port range (with EVEN-PORT reservations), permissions, channel bindings,
 * quotas shared by all workers, and the sweep that expires them. */
#include "config.h"

#include "turn/turn-alloc.h"

#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- quotas */

struct turn_quota_entry {
    struct turn_quota_entry *next;
    long long count;
    char id[TURN_ID_MAX];
};

static size_t quota_slot(const struct turn_server *srv, const char *id)
{
    /* FNV-1a: ids come from authenticated credentials, not from anonymous senders. */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char *p = id; *p; p++)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ULL;
    return (size_t)(h & (srv->quota_buckets - 1));
}

int turn_quota_acquire(struct turn_server *srv, const char *id, long long per_user, long long total)
{
    int rc = 0;
    size_t b = quota_slot(srv, id);
    pthread_mutex_t *lock = &srv->quota_locks[b % TURN_QUOTA_STRIPES];
    pthread_mutex_lock(lock);
    struct turn_quota_entry **slot = &srv->quota[b], *e = *slot;
    while (e && strcmp(e->id, id) != 0)
        e = e->next;
    long long n = __atomic_load_n(&srv->total_allocs, __ATOMIC_RELAXED);
    if (n >= total) {
        rc = 508;
    } else if (e && e->count >= per_user) {
        rc = 486;
    } else {
        /* the total is shared by every stripe: take one of it, or learn it ran out meanwhile */
        while (!__atomic_compare_exchange_n(&srv->total_allocs, &n, n + 1, true, __ATOMIC_RELAXED,
                                            __ATOMIC_RELAXED)) {
            if (n >= total) {
                rc = 508;
                goto out;
            }
        }
        if (!e) {
            e = calloc(1, sizeof *e);
            if (!e) {
                __atomic_sub_fetch(&srv->total_allocs, 1, __ATOMIC_RELAXED);
                rc = 508;
                goto out;
            }
            ml_strlcpy(e->id, id, sizeof e->id);
            e->next = *slot;
            *slot = e;
        }
        e->count++;
    }
out:
    pthread_mutex_unlock(lock);
    return rc;
}

void turn_quota_release(struct turn_server *srv, const char *id)
{
    size_t b = quota_slot(srv, id);
    pthread_mutex_t *lock = &srv->quota_locks[b % TURN_QUOTA_STRIPES];
    pthread_mutex_lock(lock);
    struct turn_quota_entry **pp = &srv->quota[b];
    while (*pp && strcmp((*pp)->id, id) != 0)
        pp = &(*pp)->next;
    if (*pp) {
        __atomic_sub_fetch(&srv->total_allocs, 1, __ATOMIC_RELAXED);
        if (--(*pp)->count == 0) {
            struct turn_quota_entry *dead = *pp;
            *pp = dead->next;
            free(dead);
        }
    }
    pthread_mutex_unlock(lock);
}

void turn_quota_free_all(struct turn_server *srv)
{
    for (size_t i = 0; i < srv->quota_buckets; i++) {
        while (srv->quota[i]) {
            struct turn_quota_entry *e = srv->quota[i];
            srv->quota[i] = e->next;
            free(e);
        }
    }
}

/* ---------------------------------------------------------------- relay ports */

static int bind_port(struct turn_worker *tw, int fam, unsigned addr, unsigned port, int *fd_out)
{
    union turn_sa sa = tw->srv->relay_bind[fam][addr];
    char err[160];
    bool inuse = false;
    ml_addr_set_port(&sa.sa, (uint16_t)port);
    int fd = net_udp_bind(tw->w, &sa.sa, &inuse, err, sizeof err);
    if (fd < 0)
        return inuse ? 1 : -1;
    *fd_out = fd;
    return 0;
}

static unsigned gcd(unsigned a, unsigned b)
{
    while (b) {
        unsigned t = a % b;
        a = b;
        b = t;
    }
    return a;
}

void turn_port_walk_init(const struct turn_server *srv, int fam, bool even, bool pair,
                         struct turn_port_walk *pw)
{
    unsigned lo = srv->port_lo, hi = pair ? srv->port_hi - 1 : srv->port_hi;
    pw->step = even ? 2 : 1;
    pw->lo = even ? (lo + 1) & ~1u : lo;
    pw->span = pw->lo <= hi ? (hi - pw->lo) / pw->step + 1 : 0;
    pw->space = pw->span * (srv->nrelay[fam] ? srv->nrelay[fam] : 1);
    pw->left = pw->space < srv->port_attempts ? pw->space : srv->port_attempts;
    pw->k = pw->stride = 0;
    if (!pw->space)
        return;
    unsigned r[2];
    ml_random(r, sizeof r);
    pw->k = r[0] % pw->space;
    /* a stride prime to the space visits every pair once in space steps */
    pw->stride = pw->space > 1 ? 1 + r[1] % (pw->space - 1) : 1;
    while (gcd(pw->stride, pw->space) != 1)
        pw->stride = pw->stride % (pw->space - 1) + 1;
}

bool turn_port_walk_next(struct turn_port_walk *pw, unsigned *addr, unsigned *port)
{
    if (!pw->left)
        return false;
    pw->left--;
    *addr = pw->k / pw->span;
    *port = pw->lo + pw->step * (pw->k % pw->span);
    pw->k = (unsigned)(((uint64_t)pw->k + pw->stride) % pw->space);
    return true;
}

int turn_relay_bind(struct turn_worker *tw, int fam, bool even, bool reserve_next, int *fd,
                    int *next_fd)
{
    struct turn_port_walk pw;
    unsigned addr, port;
    turn_port_walk_init(tw->srv, fam, even, reserve_next, &pw);
    *next_fd = -1;
    while (turn_port_walk_next(&pw, &addr, &port)) {
        int rc = bind_port(tw, fam, addr, port, fd);
        if (rc < 0)
            return -1;
        if (rc > 0) {
            TURN_COUNT(tw->ctr.relay_port_busy, 1);
            continue;
        }
        if (!reserve_next)
            return (int)port;
        if (bind_port(tw, fam, addr, port + 1, next_fd) == 0)
            return (int)port;
        close(*fd);
        *fd = -1;
    }
    return -1;
}

/* Keeps a bound socket of family index fam for RESERVATION_S seconds under a fresh token. 0 or
 * -1 (table full). */
int turn_reservation_add(struct turn_server *srv, int fd, int fam, uint8_t token[8], int64_t now_ms)
{
    int rc = -1;
    ml_random(token, 8);
    pthread_mutex_lock(&srv->res_lock);
    for (size_t i = 0; i < TURN_MAX_RESERVATIONS; i++) {
        struct turn_reservation *r = &srv->res[i];
        if (r->fd >= 0 && r->expires_ms <= now_ms) {
            close(r->fd);
            r->fd = -1;
        }
        if (r->fd < 0 && rc < 0) {
            memcpy(r->token, token, 8);
            r->fd = fd;
            r->fam = fam;
            r->expires_ms = now_ms + TURN_RESERVATION_S * 1000;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&srv->res_lock);
    return rc;
}

/* Takes the socket reserved under token and tells its family; -1 when there is none (or it
 * lapsed). */
int turn_reservation_take(struct turn_server *srv, const uint8_t token[8], int64_t now_ms, int *fam)
{
    int fd = -1;
    pthread_mutex_lock(&srv->res_lock);
    for (size_t i = 0; i < TURN_MAX_RESERVATIONS; i++) {
        struct turn_reservation *r = &srv->res[i];
        if (r->fd >= 0 && stun_ct_equal(r->token, token, 8)) {
            if (r->expires_ms > now_ms) {
                fd = r->fd;
                *fam = r->fam;
            } else {
                close(r->fd);
            }
            r->fd = -1;
            break;
        }
    }
    pthread_mutex_unlock(&srv->res_lock);
    return fd;
}

void turn_reservations_free(struct turn_server *srv)
{
    for (size_t i = 0; i < TURN_MAX_RESERVATIONS; i++)
        if (srv->res[i].fd >= 0) {
            close(srv->res[i].fd);
            srv->res[i].fd = -1;
        }
}

/* ---------------------------------------------------------------- the 5-tuple table */

static size_t alloc_slot(const struct turn_worker *tw, const struct net_udp *l,
                         const struct sockaddr *client)
{
    uint64_t h = ml_addr_hash(client) ^ ((uint64_t)(uintptr_t)l * 0x9E3779B97F4A7C15ULL);
    return (size_t)(h & (tw->table_size - 1));
}

struct turn_alloc *turn_alloc_find_udp(struct turn_worker *tw, const struct net_udp *l,
                                       const struct sockaddr *client)
{
    for (struct turn_alloc *a = tw->table[alloc_slot(tw, l, client)]; a; a = a->hnext)
        if (a->listener == l && ml_addr_equal(&a->client.sa, client))
            return a;
    return NULL;
}

static int table_grow(struct turn_worker *tw)
{
    size_t size = tw->table_size * 2;
    struct turn_alloc **t = calloc(size, sizeof *t);
    if (!t)
        return -1;
    struct turn_alloc **old = tw->table;
    size_t oldsize = tw->table_size;
    tw->table = t;
    tw->table_size = size;
    for (size_t i = 0; i < oldsize; i++) {
        while (old[i]) {
            struct turn_alloc *a = old[i];
            old[i] = a->hnext;
            size_t s = alloc_slot(tw, a->listener, &a->client.sa);
            a->hnext = t[s];
            t[s] = a;
        }
    }
    free(old);
    return 0;
}

static void table_remove(struct turn_worker *tw, struct turn_alloc *a)
{
    struct turn_alloc **pp = &tw->table[alloc_slot(tw, a->listener, &a->client.sa)];
    while (*pp && *pp != a)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = a->hnext;
}

struct turn_alloc *turn_alloc_new(struct turn_worker *tw, const struct turn_client *cl)
{
    if (cl->transport == NET_UDP && tw->nallocs + 1 > tw->table_size && table_grow(tw) < 0)
        return NULL;
    struct turn_alloc *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->tw = tw;
    a->id = ((uint64_t)net_worker_id(tw->w) << 48) | (++tw->alloc_seq & 0xFFFFFFFFFFFFULL);
    a->transport = cl->transport;
    memcpy(&a->client, cl->addr, ml_addr_len(cl->addr));
    a->created_s = ml_wall_s();
    if (cl->transport == NET_UDP) {
        a->listener = cl->udp;
        size_t s = alloc_slot(tw, a->listener, &a->client.sa);
        a->hnext = tw->table[s];
        tw->table[s] = a;
    } else {
        a->conn = cl->conn;
        cl->conn->alloc = a;
    }
    ML_DLIST_PUSH(tw->allocs, a);
    tw->nallocs++;
    TURN_COUNT(tw->ctr.allocations, 1);
    TURN_COUNT(tw->ctr.allocations_total, 1);
    TURN_COUNT(tw->ctr.alloc_by_transport[a->transport], 1);
    return a;
}

/* ---------------------------------------------------------------- the relay-address index */

static size_t relay_slot(const struct turn_worker *tw, int fam, const struct sockaddr *sa)
{
    return (size_t)(ml_addr_hash(sa) & (tw->rtable_size[fam] - 1));
}

static int relay_index_grow(struct turn_worker *tw, int fam)
{
    size_t size = tw->rtable_size[fam] * 2;
    struct turn_alloc **t = calloc(size, sizeof *t);
    if (!t)
        return -1;
    struct turn_alloc **old = tw->rtable[fam];
    size_t oldsize = tw->rtable_size[fam];
    tw->rtable[fam] = t;
    tw->rtable_size[fam] = size;
    for (size_t i = 0; i < oldsize; i++) {
        while (old[i]) {
            struct turn_alloc *a = old[i];
            old[i] = a->rnext[fam];
            size_t s = relay_slot(tw, fam, &a->relay_public[fam].sa);
            a->rnext[fam] = t[s];
            t[s] = a;
        }
    }
    free(old);
    return 0;
}

int turn_relay_index_add(struct turn_alloc *a, int fam)
{
    struct turn_worker *tw = a->tw;
    if (tw->nrelays[fam] + 1 > tw->rtable_size[fam] && relay_index_grow(tw, fam) < 0)
        return -1;
    size_t s = relay_slot(tw, fam, &a->relay_public[fam].sa);
    a->rnext[fam] = tw->rtable[fam][s];
    tw->rtable[fam][s] = a;
    tw->nrelays[fam]++;
    return 0;
}

static void relay_index_remove(struct turn_alloc *a, int fam)
{
    struct turn_worker *tw = a->tw;
    struct turn_alloc **pp = &tw->rtable[fam][relay_slot(tw, fam, &a->relay_public[fam].sa)];
    while (*pp && *pp != a)
        pp = &(*pp)->rnext[fam];
    if (*pp) {
        *pp = a->rnext[fam];
        tw->nrelays[fam]--;
    }
}

struct turn_alloc *turn_relay_index_find(struct turn_worker *tw, const struct sockaddr *addr)
{
    int fam = turn_fam_index(addr->sa_family);
    if (!tw->nrelays[fam])
        return NULL;
    for (struct turn_alloc *a = tw->rtable[fam][relay_slot(tw, fam, addr)]; a; a = a->rnext[fam])
        if (a->relay[fam] && ml_addr_equal(&a->relay_public[fam].sa, addr))
            return a;
    return NULL;
}

void turn_alloc_close_relay(struct turn_alloc *a, int fam)
{
    if (!a->relay[fam])
        return;
    relay_index_remove(a, fam);
    net_udp_close(a->relay[fam]);
    a->relay[fam] = NULL;
    if (fam == 0)
        TURN_COUNT(a->tw->ctr.alloc_ipv4, (uint64_t)-1);
    else
        TURN_COUNT(a->tw->ctr.alloc_ipv6, (uint64_t)-1);
}

void turn_alloc_free(struct turn_alloc *a, const char *reason)
{
    struct turn_worker *tw = a->tw;
    struct turn_server *srv = tw->srv;
    char addr[ML_ADDR_STRLEN];
    if (a->tcp)
        turn_tcp_release(a); /* first: its connections' bytes belong in the usage below */
    ML_INFO("turn", "allocation of %s for %s ended (%s): %llu/%llu packets relayed",
            ml_addr_str(&a->client.sa, addr, sizeof addr), a->cred_id, reason,
            (unsigned long long)a->usage.rx_packets, (unsigned long long)a->usage.tx_packets);
    if (srv->hooks.alloc_end && a->cred_id[0]) {
        struct turn_alloc_info info = {
            .cred_id = a->cred_id,
            .transport = a->transport,
            .ipv4 = turn_alloc_has_family(a, 0),
            .ipv6 = turn_alloc_has_family(a, 1),
            .client = &a->client.sa,
            .created_s = a->created_s,
            .ended_s = ml_wall_s(),
            .reason = reason,
            .usage = a->usage,
        };
        srv->hooks.alloc_end(srv->hooks.arg, &info);
    }
    turn_alloc_close_relay(a, 0);
    turn_alloc_close_relay(a, 1);
    if (a->cred_id[0])
        turn_quota_release(srv, a->cred_id);
    if (a->transport == NET_UDP)
        table_remove(tw, a);
    else if (a->conn)
        a->conn->alloc = NULL;
    ML_DLIST_UNLINK(tw->allocs, a);
    tw->nallocs--;
    TURN_COUNT(tw->ctr.allocations, (uint64_t)-1);
    TURN_COUNT(tw->ctr.alloc_by_transport[a->transport], (uint64_t)-1);
    TURN_COUNT(tw->ctr.permissions, (uint64_t)-a->nperms);
    TURN_COUNT(tw->ctr.channels, (uint64_t)-a->nchans);
    free(a->perms);
    free(a->chans);
    free(a);
}

/* ---------------------------------------------------------------- permissions, channels */

static bool same_ip(const struct sockaddr *a, const struct sockaddr *b)
{
    return ml_addr_ip_equal(a, b);
}

struct turn_perm *turn_perm_find(struct turn_alloc *a, const struct sockaddr *peer, int64_t now_ms)
{
    for (uint16_t i = 0; i < a->nperms; i++)
        if (a->perms[i].expires_ms > now_ms && same_ip(&a->perms[i].ip.sa, peer))
            return &a->perms[i];
    return NULL;
}

int turn_perm_install(struct turn_alloc *a, const struct sockaddr *peer, int64_t expires_ms,
                      long long max)
{
    for (uint16_t i = 0; i < a->nperms; i++) {
        if (same_ip(&a->perms[i].ip.sa, peer)) {
            a->perms[i].expires_ms = expires_ms;
            return 0;
        }
    }
    if (a->nperms >= max)
        return -1;
    if (a->nperms == a->capperms) {
        uint16_t cap = a->capperms ? (uint16_t)(a->capperms * 2) : 4;
        struct turn_perm *p = realloc(a->perms, cap * sizeof *p);
        if (!p)
            return -1;
        a->perms = p;
        a->capperms = cap;
    }
    struct turn_perm *p = &a->perms[a->nperms++];
    memset(p, 0, sizeof *p);
    memcpy(&p->ip, peer, ml_addr_len(peer));
    ml_addr_set_port(&p->ip.sa, 0);
    p->expires_ms = expires_ms;
    TURN_COUNT(a->tw->ctr.permissions, 1);
    return 0;
}

struct turn_chan *turn_chan_by_number(struct turn_alloc *a, uint16_t number)
{
    for (uint16_t i = 0; i < a->nchans; i++)
        if (a->chans[i].number == number)
            return &a->chans[i];
    return NULL;
}

struct turn_chan *turn_chan_by_peer(struct turn_alloc *a, const struct sockaddr *peer)
{
    for (uint16_t i = 0; i < a->nchans; i++)
        if (ml_addr_equal(&a->chans[i].peer.sa, peer))
            return &a->chans[i];
    return NULL;
}

int turn_chan_bind(struct turn_alloc *a, uint16_t number, const struct sockaddr *peer,
                   int64_t expires_ms, long long max)
{
    struct turn_chan *c = turn_chan_by_number(a, number);
    if (c) {
        c->expires_ms = expires_ms;
        return 0;
    }
    if (a->nchans >= max)
        return -1;
    if (a->nchans == a->capchans) {
        uint16_t cap = a->capchans ? (uint16_t)(a->capchans * 2) : 2;
        struct turn_chan *v = realloc(a->chans, cap * sizeof *v);
        if (!v)
            return -1;
        a->chans = v;
        a->capchans = cap;
    }
    c = &a->chans[a->nchans++];
    memset(c, 0, sizeof *c);
    memcpy(&c->peer, peer, ml_addr_len(peer));
    c->number = number;
    c->expires_ms = expires_ms;
    TURN_COUNT(a->tw->ctr.channels, 1);
    return 0;
}

/* Drops expired permissions and channels of one allocation. */
static void expire_entries(struct turn_alloc *a, int64_t now_ms)
{
    uint16_t n = 0;
    for (uint16_t i = 0; i < a->nperms; i++)
        if (a->perms[i].expires_ms > now_ms)
            a->perms[n++] = a->perms[i];
    TURN_COUNT(a->tw->ctr.permissions, (uint64_t) - (a->nperms - n));
    a->nperms = n;
    n = 0;
    for (uint16_t i = 0; i < a->nchans; i++)
        if (a->chans[i].expires_ms > now_ms)
            a->chans[n++] = a->chans[i];
    TURN_COUNT(a->tw->ctr.channels, (uint64_t) - (a->nchans - n));
    a->nchans = n;
}

void turn_sweep(struct turn_worker *tw, int64_t now_ms)
{
    struct turn_alloc *a = tw->allocs;
    while (a) {
        struct turn_alloc *next = a->next;
        if (a->tcp)
            turn_tcp_sweep(a, now_ms); /* RFC 6062: ConnectionBinds that did not come */
        if (a->expires_ms <= now_ms) {
            TURN_COUNT(tw->ctr.allocations_expired, 1);
            turn_alloc_free(a, "expired");
        } else if (a->nperms || a->nchans) {
            expire_entries(a, now_ms);
        }
        a = next;
    }
}

/* ---------------------------------------------------------------- retransmissions */

void turn_alloc_remember(struct turn_alloc *a, const uint8_t tid[STUN_TID_LEN],
                         const uint8_t *reply, size_t len)
{
    if (len > sizeof a->last_reply) {
        a->last_len = 0;
        return;
    }
    memcpy(a->last_tid, tid, STUN_TID_LEN);
    memcpy(a->last_reply, reply, len);
    a->last_len = (uint16_t)len;
}

const uint8_t *turn_alloc_recall(const struct turn_alloc *a, const uint8_t tid[STUN_TID_LEN],
                                 size_t *len)
{
    if (!a->last_len || memcmp(a->last_tid, tid, STUN_TID_LEN) != 0)
        return NULL;
    *len = a->last_len;
    return a->last_reply;
}

void turn_tombstone_add(struct turn_worker *tw, const struct turn_client *cl,
                        const uint8_t tid[STUN_TID_LEN], const uint8_t *reply, size_t len,
                        int64_t now_ms)
{
    if (cl->transport != NET_UDP || len > sizeof tw->tomb[0].reply)
        return;
    struct turn_tombstone *t = &tw->tomb[tw->tomb_next++ % TURN_TOMBSTONES];
    memset(t, 0, sizeof *t);
    memcpy(&t->client, cl->addr, ml_addr_len(cl->addr));
    t->listener = cl->udp;
    memcpy(t->tid, tid, STUN_TID_LEN);
    memcpy(t->reply, reply, len);
    t->len = (uint16_t)len;
    t->expires_ms = now_ms + 10000; /* a client stops retransmitting after 39.5 s at worst, but
                                     * the answer only matters for the first few seconds */
}

const uint8_t *turn_tombstone_find(struct turn_worker *tw, const struct turn_client *cl,
                                   const uint8_t tid[STUN_TID_LEN], int64_t now_ms, size_t *len)
{
    if (cl->transport != NET_UDP)
        return NULL;
    for (unsigned i = 0; i < TURN_TOMBSTONES; i++) {
        struct turn_tombstone *t = &tw->tomb[i];
        if (t->len && t->expires_ms > now_ms && t->listener == cl->udp &&
            memcmp(t->tid, tid, STUN_TID_LEN) == 0 && ml_addr_equal(&t->client.sa, cl->addr)) {
            *len = t->len;
            return t->reply;
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------- sweep timer */

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    struct turn_worker *tw = arg;
    ML_UNUSED(fd);
    ML_UNUSED(what);
    turn_sweep(tw, ml_now_ms());
    net_worker_flush(tw->w);
}

int turn_worker_tables_init(struct turn_worker *tw)
{
    tw->table_size = 256;
    tw->table = calloc(tw->table_size, sizeof *tw->table);
    if (!tw->table)
        return -1;
    for (int fam = 0; fam < 2; fam++) {
        tw->rtable_size[fam] = 256;
        tw->rtable[fam] = calloc(tw->rtable_size[fam], sizeof *tw->rtable[fam]);
        if (!tw->rtable[fam])
            return -1;
    }
    tw->scratch = malloc(NET_HEADROOM + NET_MAX_DATAGRAM + NET_TAILROOM);
    if (!tw->scratch)
        return -1;
    tw->sweep = event_new(net_worker_base(tw->w), -1, EV_PERSIST, sweep_cb, tw);
    struct timeval tv = {0, TURN_SWEEP_MS * 1000};
    if (!tw->sweep || event_add(tw->sweep, &tv) < 0)
        return -1;
    return 0;
}

void turn_worker_tables_free(struct turn_worker *tw)
{
    while (tw->allocs)
        turn_alloc_free(tw->allocs, "shutdown");
    if (tw->sweep)
        event_free(tw->sweep);
    free(tw->table);
    free(tw->rtable[0]);
    free(tw->rtable[1]);
    free(tw->scratch);
}
