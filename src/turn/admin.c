/* Operations across workers for the admin API: snapshots of allocations, closing them by id,
 * credential, meeting tag or client, counts per meeting tag, and drain mode. Each operation
 * posts a task to every worker; the last worker to finish calls the caller back. */
#include "config.h"

#include "turn/turn-alloc.h"

#include <stdlib.h>
#include <string.h>

/* One operation in flight across the workers. */
struct fanout {
    pthread_mutex_t lock;
    unsigned remaining;
    struct turn_alloc_filter filter;
    size_t limit;
    /* list */
    struct turn_alloc_view *views;
    size_t n, cap, total;
    turn_list_cb list_cb;
    /* close */
    char reason[32];
    size_t closed;
    turn_closed_cb closed_cb;
    /* count by tag: groups, with an open-addressing index of them */
    struct turn_group_count *groups;
    size_t ngroups, capgroups, top;
    uint32_t *index; /* group number + 1; 0: empty */
    size_t index_size;
    turn_groups_cb groups_cb;
    void *arg;
};

static bool matches(const struct turn_alloc *a, const struct turn_alloc_filter *f)
{
    if (f->id && a->id != f->id)
        return false;
    if (f->cred_id[0] && strcmp(a->cred_id, f->cred_id) != 0)
        return false;
    if (f->cred_prefix[0] && strncmp(a->cred_id, f->cred_prefix, strlen(f->cred_prefix)) != 0)
        return false;
    if (f->has_client) {
        const struct sockaddr *c = (const struct sockaddr *)&f->client;
        if (!ml_addr_ip_equal(&a->client.sa, c))
            return false;
        if (ml_addr_port(c) && ml_addr_port(c) != ml_addr_port(&a->client.sa))
            return false;
    }
    return true;
}

static void view_of(const struct turn_alloc *a, struct turn_alloc_view *v, int64_t now_ms,
                    int64_t now_s)
{
    memset(v, 0, sizeof *v);
    v->id = a->id;
    ml_strlcpy(v->cred_id, a->cred_id, sizeof v->cred_id);
    v->transport = a->transport;
    memcpy(&v->client, &a->client, ml_addr_len(&a->client.sa));
    for (int fam = 0; fam < 2; fam++) {
        if (!turn_alloc_has_family(a, fam))
            continue;
        v->has_relay[fam] = true;
        memcpy(&v->relay[fam], &a->relay_public[fam], ml_addr_len(&a->relay_public[fam].sa));
    }
    v->created_s = a->created_s;
    v->expires_s = now_s + (a->expires_ms - now_ms) / 1000;
    v->permissions = a->nperms;
    v->channels = a->nchans;
    v->worker = net_worker_id(a->tw->w);
    v->usage = a->usage;
}

static void fanout_free(struct fanout *fo)
{
    pthread_mutex_destroy(&fo->lock);
    free(fo->views);
    free(fo->groups);
    free(fo->index);
    free(fo);
}

/* Largest group first. */
static int by_size(const void *a, const void *b)
{
    const struct turn_group_count *x = a, *y = b;
    return (x->allocations < y->allocations) - (x->allocations > y->allocations);
}

/* Called by each worker when its part is done; the last one calls back and frees. */
static void fanout_done(struct fanout *fo)
{
    pthread_mutex_lock(&fo->lock);
    bool last = --fo->remaining == 0;
    pthread_mutex_unlock(&fo->lock);
    if (!last)
        return;
    if (fo->list_cb) {
        struct turn_alloc_view *v = fo->views;
        fo->views = NULL;
        fo->list_cb(fo->arg, v, fo->n, fo->total);
    } else if (fo->closed_cb) {
        fo->closed_cb(fo->arg, fo->closed);
    } else if (fo->groups_cb) {
        if (fo->ngroups)
            qsort(fo->groups, fo->ngroups, sizeof *fo->groups, by_size);
        size_t n = fo->ngroups < fo->top ? fo->ngroups : fo->top;
        struct turn_group_count *v = fo->groups;
        fo->groups = NULL;
        fo->groups_cb(fo->arg, v, n, fo->ngroups);
    }
    fanout_free(fo);
}

static void list_task(struct net_worker *w, void *arg)
{
    struct fanout *fo = arg;
    struct turn_worker *tw = net_worker_state(w);
    int64_t now_ms = ml_now_ms(), now_s = ml_wall_s();
    for (struct turn_alloc *a = tw ? tw->allocs : NULL; a; a = a->next) {
        if (!matches(a, &fo->filter))
            continue;
        pthread_mutex_lock(&fo->lock);
        fo->total++;
        if (fo->n < fo->limit) {
            if (fo->n == fo->cap) {
                size_t cap = fo->cap ? fo->cap * 2 : 64;
                if (cap > fo->limit)
                    cap = fo->limit;
                struct turn_alloc_view *v = realloc(fo->views, cap * sizeof *v);
                if (v) {
                    fo->views = v;
                    fo->cap = cap;
                }
            }
            if (fo->n < fo->cap)
                view_of(a, &fo->views[fo->n++], now_ms, now_s);
        }
        pthread_mutex_unlock(&fo->lock);
    }
    fanout_done(fo);
}

static void close_task(struct net_worker *w, void *arg)
{
    struct fanout *fo = arg;
    struct turn_worker *tw = net_worker_state(w);
    size_t closed = 0;
    for (struct turn_alloc *a = tw ? tw->allocs : NULL, *next; a; a = next) {
        next = a->next;
        if (matches(a, &fo->filter)) {
            turn_alloc_free(a, fo->reason);
            closed++;
        }
    }
    pthread_mutex_lock(&fo->lock);
    fo->closed += closed;
    pthread_mutex_unlock(&fo->lock);
    fanout_done(fo);
}

static uint64_t tag_hash(const char *tag, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)tag[i]) * 0x100000001b3ULL;
    return h;
}

/* Rebuilds the index at twice the size; -1 on exhaustion (counting goes on, slower). */
static int index_grow(struct fanout *fo)
{
    size_t size = fo->index_size ? fo->index_size * 2 : 256;
    uint32_t *idx = calloc(size, sizeof *idx);
    if (!idx)
        return -1;
    free(fo->index);
    fo->index = idx;
    fo->index_size = size;
    for (size_t g = 0; g < fo->ngroups; g++) {
        const char *t = fo->groups[g].tag;
        size_t i = tag_hash(t, strlen(t)) & (size - 1);
        while (idx[i])
            i = (i + 1) & (size - 1);
        idx[i] = (uint32_t)g + 1;
    }
    return 0;
}

/* Counts one allocation in the group of its tag (the credential id before '.'). Allocations
 * across workers are counted under fo->lock; an index keeps it linear in the allocations. */
static void add_group(struct fanout *fo, const char *id)
{
    const char *dot = strchr(id, '.');
    size_t len = dot ? (size_t)(dot - id) : strlen(id);
    if (len >= TURN_ID_MAX)
        len = TURN_ID_MAX - 1;
    if ((fo->ngroups + 1) * 2 > fo->index_size && index_grow(fo) < 0 && !fo->index)
        return;
    size_t mask = fo->index_size - 1, i = tag_hash(id, len) & mask;
    for (; fo->index[i]; i = (i + 1) & mask) {
        struct turn_group_count *g = &fo->groups[fo->index[i] - 1];
        if (strlen(g->tag) == len && !memcmp(g->tag, id, len)) {
            g->allocations++;
            return;
        }
    }
    if (fo->ngroups * 2 >= fo->index_size) /* the index could not grow: stay bounded */
        return;
    if (fo->ngroups == fo->capgroups) {
        size_t cap = fo->capgroups ? fo->capgroups * 2 : 64;
        struct turn_group_count *v = realloc(fo->groups, cap * sizeof *v);
        if (!v)
            return;
        fo->groups = v;
        fo->capgroups = cap;
    }
    struct turn_group_count *g = &fo->groups[fo->ngroups];
    memcpy(g->tag, id, len);
    g->tag[len] = 0;
    g->allocations = 1;
    fo->index[i] = (uint32_t)++fo->ngroups;
}

static void count_task(struct net_worker *w, void *arg)
{
    struct fanout *fo = arg;
    struct turn_worker *tw = net_worker_state(w);
    for (struct turn_alloc *a = tw ? tw->allocs : NULL; a; a = a->next) {
        pthread_mutex_lock(&fo->lock);
        add_group(fo, a->cred_id);
        pthread_mutex_unlock(&fo->lock);
    }
    fanout_done(fo);
}

/* Posts task to every worker. Workers that cannot take it count as done at once. */
static int fan_out(struct turn_server *srv, struct fanout *fo, net_task_fn task)
{
    if (!srv->engine) {
        fanout_free(fo);
        return -1;
    }
    unsigned n = net_engine_workers(srv->engine);
    fo->remaining = n + 1; /* +1: this thread's own reference, dropped below */
    for (unsigned i = 0; i < n; i++)
        if (net_worker_post(net_engine_worker(srv->engine, i), task, fo) < 0)
            fanout_done(fo);
    fanout_done(fo);
    return 0;
}

static struct fanout *fanout_new(const struct turn_alloc_filter *f, void *arg)
{
    struct fanout *fo = calloc(1, sizeof *fo);
    if (!fo)
        return NULL;
    pthread_mutex_init(&fo->lock, NULL);
    if (f)
        fo->filter = *f;
    fo->arg = arg;
    return fo;
}

int turn_server_list(struct turn_server *srv, const struct turn_alloc_filter *f, size_t limit,
                     turn_list_cb cb, void *arg)
{
    struct fanout *fo = fanout_new(f, arg);
    if (!fo)
        return -1;
    fo->limit = limit;
    fo->list_cb = cb;
    return fan_out(srv, fo, list_task);
}

int turn_server_close(struct turn_server *srv, const struct turn_alloc_filter *f,
                      const char *reason, turn_closed_cb cb, void *arg)
{
    static const struct turn_alloc_filter none;
    struct fanout *fo = fanout_new(f, arg);
    if (!fo)
        return -1;
    /* An empty filter would close everything: that is drain-and-kill, not an admin slip. */
    if (!f || !memcmp(f, &none, sizeof none)) {
        fanout_free(fo);
        return -1;
    }
    ml_strlcpy(fo->reason, reason ? reason : "closed", sizeof fo->reason);
    fo->closed_cb = cb;
    return fan_out(srv, fo, close_task);
}

int turn_server_count_by_tag(struct turn_server *srv, size_t top, turn_groups_cb cb, void *arg)
{
    struct fanout *fo = fanout_new(NULL, arg);
    if (!fo)
        return -1;
    fo->top = top;
    fo->groups_cb = cb;
    return fan_out(srv, fo, count_task);
}

void turn_server_set_drain(struct turn_server *srv, bool on)
{
    __atomic_store_n(&srv->draining, on, __ATOMIC_RELAXED);
}

bool turn_server_draining(const struct turn_server *srv)
{
    return __atomic_load_n(&srv->draining, __ATOMIC_RELAXED);
}
