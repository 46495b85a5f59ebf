/* Failed-login limits: counters per key (an account, an address) in a fixed-size table on the
 * control-plane thread. A collision evicts the older entry, so memory is bounded and a flood of
 * keys can only forget limits, never grow the table. Per node: a fleet multiplies them. */
#include "config.h"

#include "control/cp-int.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

struct cp_limit_slot {
    uint8_t key[16]; /* truncated SHA-256 of the key text */
    int64_t window_start_s;
    unsigned failures;
};

struct cp_limiter {
    struct cp_limit_slot *slots;
    size_t n;
    uint8_t salt[16];
};

struct cp_limiter *cp_limiter_new(size_t slots)
{
    struct cp_limiter *l = ml_xcalloc(1, sizeof *l);
    l->slots = ml_xcalloc(slots, sizeof *l->slots);
    l->n = slots;
    ml_random(l->salt, sizeof l->salt);
    return l;
}

void cp_limiter_free(struct cp_limiter *l)
{
    if (l) {
        free(l->slots);
        free(l);
    }
}

static struct cp_limit_slot *find(struct cp_limiter *l, const char *key, bool create)
{
    uint8_t h[32];
    unsigned hl = 0;
    EVP_MD_CTX *ctx = ml_nonnull(EVP_MD_CTX_new());
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, l->salt, sizeof l->salt);
    EVP_DigestUpdate(ctx, key, strlen(key));
    EVP_DigestFinal_ex(ctx, h, &hl);
    EVP_MD_CTX_free(ctx);
    uint64_t idx;
    memcpy(&idx, h + 16, sizeof idx);
    struct cp_limit_slot *s = &l->slots[idx % l->n];
    if (memcmp(s->key, h, 16) == 0)
        return s;
    if (!create)
        return NULL;
    memcpy(s->key, h, 16);
    s->window_start_s = 0;
    s->failures = 0;
    return s;
}

bool cp_limiter_blocked(struct cp_limiter *l, const char *key, long long max, long long window_s,
                        unsigned *retry_s)
{
    struct cp_limit_slot *s = find(l, key, false);
    int64_t now = ml_now_ms() / 1000;
    if (!s || now - s->window_start_s >= window_s || s->failures < (unsigned long long)max)
        return false;
    *retry_s = (unsigned)(s->window_start_s + window_s - now);
    if (*retry_s < 1)
        *retry_s = 1;
    return true;
}

void cp_limiter_fail(struct cp_limiter *l, const char *key, long long window_s)
{
    struct cp_limit_slot *s = find(l, key, true);
    int64_t now = ml_now_ms() / 1000;
    if (now - s->window_start_s >= window_s) {
        s->window_start_s = now;
        s->failures = 0;
    }
    s->failures++;
}

unsigned cp_limiter_failures(struct cp_limiter *l, const char *key, long long window_s)
{
    struct cp_limit_slot *s = find(l, key, false);
    int64_t now = ml_now_ms() / 1000;
    if (!s || now - s->window_start_s >= window_s)
        return 0;
    return s->failures;
}

void cp_limiter_reset(struct cp_limiter *l, const char *key)
{
    struct cp_limit_slot *s = find(l, key, false);
    if (s)
        memset(s, 0, sizeof *s);
}
