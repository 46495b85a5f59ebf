/* What the control-plane thread remembers between requests: access tokens it verified (until
 * they expire), and meetings' statuses (for control.status-cache-ms, dropped by every write
 * that touches the meeting, here or on another node). Both are direct-mapped tables of fixed
 * size, keyed by a string hash. */
#include "config.h"

#include "control/cp-int.h"

#include <stdlib.h>
#include <string.h>

/* A client sends the same access token with every request: what verifying it found (its
 * user and expiry) is kept, keyed by the whole token, so that the signature is checked and the
 * claims parsed once per token rather than once per request (a fifth of a cached status read).
 * The key never changes while the process runs (auth.jwt-* are not reloadable), a token is
 * matched byte for byte, and the expiry is checked on every use. */
struct cp_token_memo {
    long long exp;
    struct http_user user;
    char token[]; /* NUL-terminated */
};

/* FNV-1a: the slot of a string key in the direct-mapped tables of this file. */
static uint64_t key_hash(const char *key)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

/* ------------------------------------------------------------------ access tokens */

static size_t token_slot(const char *tok)
{
    return (size_t)(key_hash(tok) % CP_TOKEN_SLOTS);
}

bool cp_token_recall(struct cp *cp, const char *token, int64_t now_s, long long leeway_s,
                     struct http_user *user)
{
    struct cp_token_memo **slot = &cp->tokens[token_slot(token)];
    if (!*slot || strcmp((*slot)->token, token) != 0)
        return false;
    if (now_s <= (*slot)->exp + leeway_s) {
        *user = (*slot)->user;
        return true;
    }
    free(*slot); /* expired: the full check says so */
    *slot = NULL;
    return false;
}

void cp_token_remember(struct cp *cp, const char *token, long long exp_s,
                       const struct http_user *user)
{
    size_t n = strlen(token);
    struct cp_token_memo *m = malloc(sizeof *m + n + 1);
    if (!m)
        return; /* a memo is an optimisation */
    m->exp = exp_s;
    m->user = *user;
    memcpy(m->token, token, n + 1);
    struct cp_token_memo **slot = &cp->tokens[token_slot(token)];
    free(*slot);
    *slot = m;
}

void cp_tokens_free(struct cp *cp)
{
    if (!cp->tokens)
        return;
    for (size_t i = 0; i < CP_TOKEN_SLOTS; i++)
        free(cp->tokens[i]);
    free(cp->tokens);
    cp->tokens = NULL;
}

/* ------------------------------------------------------------------ meeting statuses */

static size_t slot_of(const char *key)
{
    return (size_t)(key_hash(key) % CP_CACHE_SLOTS);
}

struct cp_status *cp_status_dup(const struct cp_status *s, const char *key)
{
    size_t ml = strlen(s->members) + 1;
    struct cp_status *c = malloc(sizeof *c + ml + s->full_len + s->pub_len + 2);
    if (!c)
        return NULL;
    *c = *s;
    ml_strlcpy(c->key, key, sizeof c->key);
    char *p = (char *)(c + 1);
    memcpy(p, s->members, ml);
    c->members = p;
    p += ml;
    memcpy(p, s->full, s->full_len);
    p[s->full_len] = 0;
    c->full = p;
    p += s->full_len + 1;
    memcpy(p, s->pub, s->pub_len);
    p[s->pub_len] = 0;
    c->pub = p;
    return c;
}

static void cache_put(struct cp *cp, const struct cp_status *s, const char *key)
{
    struct cp_status **slot = &cp->cache[slot_of(key)];
    struct cp_status *c = cp_status_dup(s, key);
    if (!c)
        return;
    free(*slot);
    *slot = c;
}

const struct cp_status *cp_cache_get(struct cp *cp, const char *key)
{
    const struct cp_status *s = cp->cache[slot_of(key)];
    if (s && !strcmp(s->key, key) && ml_now_ms() - s->fetched_ms < cp->cfg.status_cache_ms &&
        ml_wall_s() < s->expires_s)
        return s;
    return NULL;
}

void cp_cache_put(struct cp *cp, const struct cp_status *s)
{
    cache_put(cp, s, s->id);
    cache_put(cp, s, s->code);
}

static void cache_drop(struct cp *cp, const char *key, const char *id)
{
    struct cp_status **slot = &cp->cache[slot_of(key)];
    if (*slot && !strcmp((*slot)->key, key) && (!id || !strcmp((*slot)->id, id))) {
        free(*slot);
        *slot = NULL;
    }
}

void cp_cache_invalidate(struct cp *cp, const char *meeting_id)
{
    cp->cache_gen++;
    struct cp_status *s = cp->cache[slot_of(meeting_id)];
    if (s && !strcmp(s->key, meeting_id))
        cache_drop(cp, s->code, meeting_id);
    cache_drop(cp, meeting_id, NULL);
}

void cp_cache_free(struct cp *cp)
{
    if (!cp->cache)
        return;
    for (size_t i = 0; i < CP_CACHE_SLOTS; i++)
        free(cp->cache[i]);
    free(cp->cache);
    cp->cache = NULL;
}
