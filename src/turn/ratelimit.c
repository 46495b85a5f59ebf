/* TURN: the per-source budget of unauthenticated requests (those answered 401 or 438), token
 * buckets in a fixed table indexed by a keyed hash of the source IP. One table per worker, so
 * no locks; memory is fixed whatever the number of sources. */
#include "config.h"

#include "turn/turn-int.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define RL_DEFAULT_BUCKETS 4096
#define RL_MAX_BUCKETS (1u << 22)
#define RL_UNIT 1000           /* milli-tokens per token: rate/s is rate milli-tokens per ms */
#define RL_MAX_BURST 4000000LL /* so that burst * RL_UNIT fits a uint32_t */

struct rl_bucket {
    int64_t last_ms;  /* last refill; INT64_MIN: never used (full) */
    uint32_t mtokens; /* milli-tokens left */
};

struct turn_ratelimit {
    struct rl_bucket *b;
    size_t mask; /* buckets - 1, a power of two minus one */
    uint64_t key[2];
};

struct turn_ratelimit *turn_ratelimit_new(unsigned buckets)
{
    size_t n = 1;
    if (buckets == 0)
        buckets = RL_DEFAULT_BUCKETS;
    if (buckets > RL_MAX_BUCKETS)
        buckets = RL_MAX_BUCKETS;
    while (n < buckets)
        n <<= 1;
    struct turn_ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl)
        return NULL;
    rl->b = malloc(n * sizeof *rl->b);
    if (!rl->b) {
        free(rl);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        rl->b[i].last_ms = INT64_MIN;
        rl->b[i].mtokens = 0;
    }
    rl->mask = n - 1;
    ml_random(rl->key, sizeof rl->key);
    return rl;
}

void turn_ratelimit_free(struct turn_ratelimit *rl)
{
    if (!rl)
        return;
    free(rl->b);
    free(rl);
}

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

/* The bucket of a source: keyed by its IPv4 address (IPv4-mapped IPv6 counts as IPv4), or by
 * the /64 of an IPv6 address, since one host commonly holds a whole /64. The port is ignored:
 * a flood from many ports of one IP is one source. */
static struct rl_bucket *bucket_of(struct turn_ratelimit *rl, const struct sockaddr *sa)
{
    struct sockaddr_storage canon;
    uint64_t h = rl->key[0];
    if (ml_addr_embedded_v4(sa, &canon, ML_CANON_MAPPED))
        sa = (const struct sockaddr *)&canon;
    if (sa->sa_family == AF_INET) {
        uint32_t ip;
        memcpy(&ip, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        h = mix(h ^ ip ^ (4ull << 32));
    } else if (sa->sa_family == AF_INET6) {
        uint64_t prefix;
        memcpy(&prefix, &((const struct sockaddr_in6 *)sa)->sin6_addr, 8);
        h = mix(mix(h ^ 6) ^ prefix);
    }
    return &rl->b[mix(h ^ rl->key[1]) & rl->mask];
}

bool turn_ratelimit_allow(struct turn_ratelimit *rl, const struct sockaddr *ip, int64_t now_ms,
                          long long rate, long long burst)
{
    if (rate <= 0)
        return true;
    if (burst < 1)
        burst = 1;
    if (burst > RL_MAX_BURST)
        burst = RL_MAX_BURST;
    uint64_t cap = (uint64_t)burst * RL_UNIT;
    struct rl_bucket *b = bucket_of(rl, ip);
    uint64_t tokens;
    if (b->last_ms == INT64_MIN) {
        tokens = cap;
        b->last_ms = now_ms;
    } else if (now_ms > b->last_ms) {
        uint64_t elapsed = (uint64_t)(now_ms - b->last_ms);
        /* Past cap / rate ms the bucket is full: clamp before multiplying. */
        uint64_t full_ms = cap / (uint64_t)rate + 1;
        tokens = elapsed >= full_ms ? cap : b->mtokens + elapsed * (uint64_t)rate;
        if (tokens > cap)
            tokens = cap;
        b->last_ms = now_ms;
    } else {
        tokens = b->mtokens < cap ? b->mtokens : cap; /* the clock did not move */
    }
    bool allow = tokens >= RL_UNIT;
    b->mtokens = (uint32_t)(allow ? tokens - RL_UNIT : tokens);
    return allow;
}
