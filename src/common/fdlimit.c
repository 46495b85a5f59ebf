/* The descriptor budget: connection limits derived from RLIMIT_NOFILE, and connections counted
 * per client address for per-address caps (TURN's streams, the HTTP servers). */
#include "config.h"

#include "common/common.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

unsigned long long ml_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return 0;
    return (unsigned long long)rl.rlim_cur;
}

long long ml_fd_share(void)
{
    unsigned long long lim = ml_fd_limit();
    if (lim == 0)
        lim = 1ULL << 20; /* unlimited: as much as the usual hard limit */
    long long share = lim > ML_FD_RESERVE ? (long long)(lim - ML_FD_RESERVE) / ML_FD_SHARES : 0;
    return share < ML_FD_SHARE_MIN ? ML_FD_SHARE_MIN : share;
}

/* ---------------------------------------------------------------- counts per address */

#define ADDR_BUCKETS 4096 /* chains stay short up to a few hundred thousand addresses */

struct addr_slot {
    uint8_t key[9]; /* 4 or 6, then the IPv4 address or the IPv6 /64 */
    unsigned n;
    struct addr_slot *next;
};

struct ml_addr_counts {
    pthread_mutex_t mu;
    unsigned max;
    size_t used;
    uint64_t seed;
    struct addr_slot *b[ADDR_BUCKETS];
};

struct ml_addr_counts *ml_addr_counts_new(unsigned max)
{
    struct ml_addr_counts *t = ml_xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    t->max = max;
    ml_random(&t->seed, sizeof t->seed); /* chains an outsider cannot aim at */
    return t;
}

void ml_addr_counts_free(struct ml_addr_counts *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < ADDR_BUCKETS; i++) {
        struct addr_slot *s = t->b[i];
        while (s) {
            struct addr_slot *next = s->next;
            free(s);
            s = next;
        }
    }
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static void make_key(const struct sockaddr *sa, uint8_t key[9])
{
    struct sockaddr_storage v4;
    memset(key, 0, 9);
    if (sa->sa_family == AF_INET6 && ml_addr_embedded_v4(sa, &v4, ML_CANON_MAPPED))
        sa = (const struct sockaddr *)&v4;
    if (sa->sa_family == AF_INET) {
        key[0] = 4;
        memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        key[0] = 6;
        memcpy(key + 1, &((const struct sockaddr_in6 *)sa)->sin6_addr, 8);
    }
}

static size_t bucket(const struct ml_addr_counts *t, const uint8_t key[9])
{
    uint64_t h = t->seed ^ 0xcbf29ce484222325ULL; /* FNV-1a over a secret start */
    for (int i = 0; i < 9; i++) {
        h ^= key[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 29;
    return (size_t)(h % ADDR_BUCKETS);
}

bool ml_addr_counts_take(struct ml_addr_counts *t, const struct sockaddr *sa)
{
    uint8_t key[9];
    make_key(sa, key);
    size_t i = bucket(t, key);
    bool ok = false;
    pthread_mutex_lock(&t->mu);
    struct addr_slot *s = t->b[i];
    while (s && memcmp(s->key, key, sizeof key) != 0)
        s = s->next;
    if (!s) {
        s = calloc(1, sizeof *s);
        if (s) {
            memcpy(s->key, key, sizeof key);
            s->next = t->b[i];
            t->b[i] = s;
            t->used++;
        }
    }
    if (s && (t->max == 0 || s->n < t->max)) {
        s->n++;
        ok = true;
    }
    pthread_mutex_unlock(&t->mu);
    return ok;
}

void ml_addr_counts_put(struct ml_addr_counts *t, const struct sockaddr *sa)
{
    uint8_t key[9];
    make_key(sa, key);
    size_t i = bucket(t, key);
    pthread_mutex_lock(&t->mu);
    struct addr_slot **pp = &t->b[i];
    while (*pp && memcmp((*pp)->key, key, sizeof key) != 0)
        pp = &(*pp)->next;
    struct addr_slot *s = *pp;
    if (s && s->n > 0 && --s->n == 0) {
        *pp = s->next;
        free(s);
        t->used--;
    }
    pthread_mutex_unlock(&t->mu);
}

size_t ml_addr_counts_addresses(struct ml_addr_counts *t)
{
    pthread_mutex_lock(&t->mu);
    size_t n = t->used;
    pthread_mutex_unlock(&t->mu);
    return n;
}

unsigned ml_addr_counts_max(const struct ml_addr_counts *t)
{
    return t->max;
}
