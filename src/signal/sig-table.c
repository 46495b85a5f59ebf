/* The hash table of signaling: intrusive, keyed by 16 bytes (meeting ids, resume secrets), with
 * a per-table random seed so that keys chosen by clients cannot pile up in one bucket. */
#include "config.h"

#include "signal/sig-int.h"

#include <stdlib.h>
#include <string.h>

static size_t hslot(const struct sig_htab *h, const uint8_t key[16])
{
    uint64_t a, b;
    memcpy(&a, key, 8);
    memcpy(&b, key + 8, 8);
    uint64_t x = (a ^ h->seed) * 0x9e3779b97f4a7c15ULL;
    x ^= b + (x >> 29);
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 32;
    return (size_t)(x & (h->nb - 1));
}

void sig_htab_init(struct sig_htab *h)
{
    h->nb = 256;
    h->n = 0;
    h->b = ml_xcalloc(h->nb, sizeof *h->b);
    ml_random(&h->seed, sizeof h->seed);
}

struct sig_hnode *sig_htab_get(const struct sig_htab *h, const uint8_t key[16])
{
    for (struct sig_hnode *n = h->b[hslot(h, key)]; n; n = n->next)
        if (!memcmp(n->key, key, 16))
            return n;
    return NULL;
}

static void grow(struct sig_htab *h)
{
    struct sig_hnode **old = h->b;
    size_t oldn = h->nb;
    h->nb *= 2;
    h->b = ml_xcalloc(h->nb, sizeof *h->b);
    for (size_t i = 0; i < oldn; i++)
        for (struct sig_hnode *n = old[i], *next; n; n = next) {
            next = n->next;
            size_t s = hslot(h, n->key);
            n->next = h->b[s];
            h->b[s] = n;
        }
    free(old);
}

void sig_htab_put(struct sig_htab *h, struct sig_hnode *node)
{
    if (h->n + 1 > h->nb)
        grow(h);
    size_t s = hslot(h, node->key);
    node->next = h->b[s];
    h->b[s] = node;
    h->n++;
}

void sig_htab_del(struct sig_htab *h, struct sig_hnode *node)
{
    for (struct sig_hnode **p = &h->b[hslot(h, node->key)]; *p; p = &(*p)->next)
        if (*p == node) {
            *p = node->next;
            node->next = NULL;
            h->n--;
            return;
        }
}

void sig_htab_free(struct sig_htab *h)
{
    free(h->b);
    h->b = NULL;
    h->nb = h->n = 0;
}
