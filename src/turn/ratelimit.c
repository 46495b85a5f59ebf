/* TURN: the budget of answers to unauthenticated requests, in bytes per destination address,
 * shared by every worker. One 64-bit cell per hash bucket holds a GCRA "theoretical arrival
 * time"; takes and gives are compare-and-swap loops on that word, so the budget takes no lock,
 * and a campus whose clients the kernel spreads over several workers has one budget, not one
 * per worker. Memory is fixed whatever the number of sources. docs/relay.md says why bytes,
 * why per destination and why proven addresses are not charged. */
#include "config.h"

#include "turn/turn-int.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define BUDGET_CELLS (1u << 16) /* 512 KiB; collisions share a budget (stricter, never looser) */
#define NS_PER_S 1000000000ull

struct turn_budget {
    int64_t *tat;     /* per cell, atomic: ns since epoch_us at which the budget is full again */
    int64_t epoch_us; /* monotonic time of creation: cells start at 0, i.e. full */
    uint64_t key[2];  /* of the bucket hash, random per process */
};

struct turn_budget *turn_budget_new(void)
{
    struct turn_budget *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->tat = calloc(BUDGET_CELLS, sizeof *b->tat);
    if (!b->tat) {
        free(b);
        return NULL;
    }
    b->epoch_us = ml_now_us();
    ml_random(b->key, sizeof b->key);
    return b;
}

void turn_budget_free(struct turn_budget *b)
{
    if (!b)
        return;
    free(b->tat);
    free(b);
}

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

/* The cell of an address: its IPv4 address (IPv4-mapped IPv6 counts as IPv4), or the /64 of an
 * IPv6 address, since one host commonly holds a whole /64. The port is ignored: every port of
 * an address is the same victim, and the same NAT. The hash is keyed, so nobody can aim at
 * another address's cell from outside. */
static int64_t *cell_of(struct turn_budget *b, const struct sockaddr *sa)
{
    struct sockaddr_storage canon;
    uint64_t h = b->key[0];
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
    return &b->tat[mix(h ^ b->key[1]) & (BUDGET_CELLS - 1)];
}

/* ns of budget that bytes cost at rate bytes/s (both within the configured bounds, so the
 * product fits: 64 KiB * 1e9). */
static int64_t cost_ns(uint64_t bytes, long long rate)
{
    return (int64_t)(bytes * NS_PER_S / (uint64_t)rate);
}

static int64_t now_ns(const struct turn_budget *b, int64_t now_us)
{
    return now_us > b->epoch_us ? (now_us - b->epoch_us) * 1000 : 0;
}

bool turn_budget_take(struct turn_budget *b, const struct sockaddr *ip, size_t bytes,
                      int64_t now_us, long long rate, long long burst)
{
    if (rate <= 0)
        return true;
    if ((long long)bytes > burst)
        return false; /* could never fit */
    int64_t *cell = cell_of(b, ip);
    int64_t now = now_ns(b, now_us);
    int64_t cost = cost_ns(bytes, rate);
    /* GCRA: the cell says when the budget is full again; a take moves that time forward by its
     * cost, and is refused when it would end up more than one burst ahead of now. An idle cell
     * lies in the past: full, never fuller. */
    int64_t tolerance = cost_ns((uint64_t)burst, rate);
    int64_t tat = __atomic_load_n(cell, __ATOMIC_RELAXED);
    for (;;) {
        int64_t next = (tat > now ? tat : now) + cost;
        if (next - now > tolerance)
            return false;
        if (__atomic_compare_exchange_n(cell, &tat, next, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return true;
    }
}

void turn_budget_give(struct turn_budget *b, const struct sockaddr *ip, size_t bytes,
                      int64_t now_us, long long rate)
{
    if (rate <= 0 || bytes == 0)
        return;
    if (bytes > TURN_REPLY_MAX * 4)
        bytes = TURN_REPLY_MAX * 4; /* a request is at most a datagram; keep the product small */
    int64_t *cell = cell_of(b, ip);
    int64_t now = now_ns(b, now_us);
    int64_t gift = cost_ns(bytes, rate);
    int64_t tat = __atomic_load_n(cell, __ATOMIC_RELAXED);
    for (;;) {
        if (tat <= now)
            return; /* full already: a gift never raises the budget past its burst */
        int64_t next = tat - gift > now ? tat - gift : now;
        if (__atomic_compare_exchange_n(cell, &tat, next, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return;
    }
}
