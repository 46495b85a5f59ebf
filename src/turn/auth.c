/* TURN long-term credentials (RFC 8489 9.2): the stateless nonce, REST shared secrets, static
 * users, asynchronous credential sources and the revocation set. A library: it never logs. */
#include "config.h"

#include "turn/turn-int.h"

#include <netinet/in.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ design
 *
 * Reload. Secrets and static users live in an immutable struct auth_table. A check reads the
 * tables under tables_lock's read side, which on each thread is a slot of its own (ml_brlock):
 * workers checking at once write no cache line in common, where one mutex and a reference
 * count per table were two shared lines written by every authenticated request of every
 * worker. turn_auth_reload() builds a whole new table off-lock, swaps the pointer under the
 * write side (every slot) and frees the old table at once: no check can still be reading it.
 * So a reader never sees a half-built table, a retired secret leaves memory as soon as the swap
 * returns, and memory stays bounded however often secrets rotate.
 *
 * Runtime credentials. Secrets and users managed through the admin API (kept in PostgreSQL,
 * issue #8) live in a second table of the same kind, swapped by turn_auth_set_runtime() exactly
 * as a reload swaps the configured one; a check takes both references under the one lock. Two
 * tables rather than one merged table: a SIGHUP and a database change each rebuild only what
 * they own, so neither can lose the other's entries.
 *
 * Revocation. A hash set of ids under an ml_brlock (read per check, written per revocation),
 * plus the latest until_s in it, read atomically: while nothing is revoked, or every
 * revocation has lapsed, readers return without the lock.
 *
 * Sources. A source that must wait (a database) answers PENDING, records its answer in a small
 * shared cache here (turn_auth_source_done) and then wakes the caller, whose retry finds the
 * answer in the cache whatever worker it runs on. Negative answers are cached too, so a retry
 * never loops.
 *
 * Crypto. The digests are fetched from the provider once, in turn_auth_new(), HMAC once per
 * process (src/common/hmac.c). Keyed HMAC contexts (the nonce key, each REST secret) are built
 * once as read-only templates (ml_hmac_new) and duplicated per use: a check fetches no
 * implementation and recomputes no key schedule. */

#define NONCE_COOKIE "obMatJos2"
/* The security feature set (RFC 8489 9.2, 18.1): 24 bits as 4 base64 characters. Bit 0,
 * "password algorithms", is the least significant one (erratum 6290; the RFC's example nonce
 * "obMatJos2AAAC" has bit 1, username anonymity), so 0x000001 is "AAAB". */
#define NONCE_FEATURES "AAAB"
#define NONCE_PREFIX_LEN 13 /* cookie and feature set */
#define NONCE_TIME_LEN 8    /* hex digits of the issue time, seconds */
#define NONCE_MAC_BYTES 12  /* of HMAC-SHA256 kept ... */
#define NONCE_MAC_LEN 16    /* ... as base64url characters */
#define NONCE_LEN (NONCE_PREFIX_LEN + NONCE_TIME_LEN + NONCE_MAC_LEN)
#define NONCE_SKEW_S 60 /* accepted age below zero: a fleet node whose clock is ahead */
#define NONCE_KEY_LABEL "meetlite-nonce-v1"

#define REALM_MAX 127 /* bytes */
#define USERNAME_LEN_MAX (TURN_USERNAME_MAX - 1)
#define ITEM_MAX 255       /* bytes of one secret or static-users entry */
#define SECRET_MIN 8       /* bytes */
#define REST_PASS_LEN 28   /* base64 of a 20-byte HMAC-SHA1 */
#define REST_DIGITS_MAX 18 /* an expiry that fits int64 */

#define CACHE_SETS 256 /* answer cache: sets of CACHE_WAYS entries */
#define CACHE_WAYS 4
#define CACHE_DEFAULT_S 10
#define CACHE_MAX_S 300
#define REV_MIN_CAP 64 /* slots; always at least twice the entries */

/* PASSWORD-ALGORITHMS as we send it: SHA-256 then MD5, no parameters (RFC 8489 14.11). */
static const uint8_t our_algorithms[8] = {0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00};

/* A static user: keys only; the password is never kept. */
struct auth_user {
    char *name;     /* NUL-terminated */
    size_t namelen; /* bytes */
    unsigned entry; /* position in turn.static-users, for error messages */
    bool has_sha256;
    uint8_t md5[STUN_MD5_LEN];
    uint8_t sha256[STUN_SHA256_LEN];
};

/* The reloadable credentials; immutable once built, freed when swapped out (under the write
 * side of tables_lock, so no check still reads it). */
struct auth_table {
    struct ml_hmac **secrets; /* HMAC-SHA1 templates keyed with each REST secret */
    size_t nsecrets;
    struct auth_user *users; /* sorted by name, bytewise */
    size_t nusers;
    char *sign; /* the secret new credentials are signed with (NUL-terminated), or NULL */
};

/* An answer of a source, kept for the retry of a pending check (and up to cache_s). */
struct cache_entry {
    bool used;
    bool found;
    unsigned source; /* index in turn_auth.sources */
    uint64_t hash;
    int64_t until_s;
    size_t ulen;
    char user[USERNAME_LEN_MAX];
    struct turn_source_answer ans;
};

struct rev_entry {
    int64_t until_s;
    uint64_t hash;
    char id[]; /* NUL-terminated */
};

struct rev_set {
    struct ml_brlock lock;
    struct rev_entry **slots; /* open addressing, linear probing; cap a power of two */
    size_t cap, n;
    int64_t max_until; /* atomic: the latest until_s held; INT64_MIN when empty */
};

struct turn_auth {
    char realm[REALM_MAX + 1];
    size_t realmlen;
    int64_t nonce_lifetime_s;
    EVP_MD *md5, *sha256;
    struct ml_hmac *nonce_mac; /* HMAC-SHA256 under the nonce key: a read-only template */
    uint64_t hash_key[2];
    struct ml_brlock tables_lock;
    struct auth_table *table;   /* guarded by tables_lock */
    struct auth_table *runtime; /* admin-managed secrets and users; guarded by tables_lock */
    bool strict_expiry;         /* atomic */
    struct turn_cred_source *sources[TURN_AUTH_MAX_SOURCES]; /* set before checks run */
    unsigned nsources;
    pthread_mutex_t cache_lock;
    struct cache_entry *cache; /* CACHE_SETS * CACHE_WAYS, with the first source */
    struct rev_set rev;
};

/* What a credential lookup concluded. */
enum match {
    MATCH_NONE,    /* not ours: ask the next kind of credential */
    MATCH_OK,      /* verified; cred filled */
    MATCH_FAIL,    /* known and wrong: 401 */
    MATCH_PENDING, /* a source will wake the caller */
};

/* A request under examination. */
struct auth_req {
    const struct stun_msg *m;
    const char *user; /* USERNAME, ulen bytes, borrowed from the message */
    size_t ulen;
    uint16_t alg; /* STUN_PWALG_MD5 or STUN_PWALG_SHA256 */
    bool mi256;   /* MESSAGE-INTEGRITY-SHA256 present: it is the one checked */
};

/* ------------------------------------------------------------------ helpers */

/* A keyed hash for the bounded tables (answer cache, revocations). They cannot be flooded into
 * long chains whatever the keys, so this only has to spread well. */
static uint64_t hash_bytes(const uint64_t key[2], const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = key[0] ^ ((uint64_t)n * 0x9e3779b97f4a7c15ull);
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    h ^= key[1];
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

static int name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

/* Calls fn for each item of a comma- or space-separated list (ml_list_next) without copying
 * the items, so no secret is left behind in a stack buffer. index counts from 1. Stops and
 * returns -1 when fn does. */
static int list_each(const char *list,
                     int (*fn)(const char *p, size_t n, unsigned index, void *arg), void *arg)
{
    const char *item;
    size_t n;
    unsigned index = 0;
    while ((item = ml_list_next(&list, &n)))
        if (fn(item, n, ++index, arg) < 0)
            return -1;
    return 0;
}

struct err_out {
    char *err;
    size_t errlen;
};

/* ------------------------------------------------------------------ validators */

static int secret_check(const char *p, size_t n, unsigned index, void *arg)
{
    struct err_out *e = arg;
    ML_UNUSED(p);
    if (n < SECRET_MIN)
        return ml_err(e->err, e->errlen, "every secret needs at least 8 characters (secret %u)",
                      index);
    if (n > ITEM_MAX)
        return ml_err(e->err, e->errlen, "a secret has at most 255 characters (secret %u)", index);
    return 0;
}

int turn_secrets_validate(const char *value, char *err, size_t errlen)
{
    struct err_out e = {err, errlen};
    return list_each(value, secret_check, &e);
}

/* One turn.static-users entry, pointing into the configuration string. */
struct user_spec {
    const char *name;
    size_t namelen;
    const char *pass; /* NULL for a key entry */
    size_t passlen;
    uint8_t key[STUN_MD5_LEN]; /* a key entry's MD5 key */
};

/* Splits "user:password" or "user:0x<32 hex>". NULL, or what is wrong: a text that never quotes
 * the entry, which may be a password typed in the wrong place. */
static const char *user_parse(const char *p, size_t n, struct user_spec *u)
{
    static const char *const form = "expected user:password or user:0x<32 hex digits>";
    const char *colon = memchr(p, ':', n);
    memset(u, 0, sizeof *u);
    if (n > ITEM_MAX)
        return "an entry has at most 255 characters";
    if (!colon || colon == p || colon + 1 == p + n)
        return form;
    u->name = p;
    u->namelen = (size_t)(colon - p);
    if (u->namelen >= TURN_ID_MAX)
        return "a user name has at most 127 bytes";
    const char *v = colon + 1;
    size_t vlen = (size_t)(p + n - v);
    if (vlen >= 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
        if (vlen != 2 + 2 * STUN_MD5_LEN)
            return "user:0x takes exactly 32 hex digits, the MD5 key";
        for (size_t i = 0; i < STUN_MD5_LEN; i++) {
            int hi = ml_hex_digit(v[2 + 2 * i]), lo = ml_hex_digit(v[3 + 2 * i]);
            if (hi < 0 || lo < 0) {
                ml_wipe(u->key, sizeof u->key);
                return "user:0x takes exactly 32 hex digits, the MD5 key";
            }
            u->key[i] = (uint8_t)(hi << 4 | lo);
        }
        return NULL;
    }
    u->pass = v;
    u->passlen = vlen;
    return NULL;
}

static int user_check(const char *p, size_t n, unsigned index, void *arg)
{
    struct err_out *e = arg;
    struct user_spec u;
    const char *why = user_parse(p, n, &u);
    ml_wipe(&u, sizeof u);
    if (why)
        return ml_err(e->err, e->errlen, "static-users entry %u: %s", index, why);
    return 0;
}

int turn_static_users_validate(const char *value, char *err, size_t errlen)
{
    struct err_out e = {err, errlen};
    return list_each(value, user_check, &e);
}

/* ------------------------------------------------------------------ credential tables */

static void table_free(struct auth_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nsecrets; i++)
        ml_hmac_free(t->secrets[i]); /* OpenSSL cleanses the key */
    free(t->secrets);
    for (size_t i = 0; i < t->nusers; i++) {
        free(t->users[i].name);
        ml_wipe(&t->users[i], sizeof t->users[i]);
    }
    free(t->users);
    if (t->sign) {
        ml_wipe(t->sign, strlen(t->sign));
        free(t->sign);
    }
    free(t);
}

/* Both tables (configured and runtime), read until tables_put. */
static void tables_get(struct turn_auth *a, struct auth_table **cfg, struct auth_table **rt)
{
    (void)ml_brlock_rdlock(&a->tables_lock);
    *cfg = a->table;
    *rt = a->runtime;
}

static void tables_put(struct turn_auth *a)
{
    ml_brlock_rdunlock(&a->tables_lock);
}

struct table_build {
    struct turn_auth *a;
    struct auth_table *t;
    size_t cap; /* of t->secrets or t->users, whichever is being filled */
    struct err_out e;
    bool sign_each; /* every secret added becomes the signing one (runtime: newest last) */
};

static int add_secret(const char *p, size_t n, unsigned index, void *arg)
{
    struct table_build *b = arg;
    struct auth_table *t = b->t;
    if (secret_check(p, n, index, &b->e) < 0)
        return -1;
    if (t->nsecrets == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 4;
        struct ml_hmac **v = realloc(t->secrets, cap * sizeof *v);
        if (!v)
            return ml_err(b->e.err, b->e.errlen, "out of memory");
        t->secrets = v;
        b->cap = cap;
    }
    struct ml_hmac *c = ml_hmac_new("SHA1", p, n);
    if (!c)
        return ml_err(b->e.err, b->e.errlen, "cannot prepare HMAC-SHA1 for secret %u", index);
    t->secrets[t->nsecrets++] = c;
    if (b->sign_each || !t->sign) { /* config: the first signs; runtime: the last (newest) */
        char *s = strndup(p, n);
        if (!s)
            return ml_err(b->e.err, b->e.errlen, "out of memory");
        if (t->sign) {
            ml_wipe(t->sign, strlen(t->sign));
            free(t->sign);
        }
        t->sign = s;
    }
    return 0;
}

static int add_user(const char *p, size_t n, unsigned index, void *arg)
{
    struct table_build *b = arg;
    struct auth_table *t = b->t;
    const struct turn_auth *a = b->a;
    struct user_spec s;
    const char *why = user_parse(p, n, &s);
    if (why)
        return ml_err(b->e.err, b->e.errlen, "static-users entry %u: %s", index, why);
    if (t->nusers == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 8;
        struct auth_user *v = realloc(t->users, cap * sizeof *v);
        if (!v) {
            ml_wipe(&s, sizeof s);
            return ml_err(b->e.err, b->e.errlen, "out of memory");
        }
        t->users = v;
        b->cap = cap;
    }
    struct auth_user *u = &t->users[t->nusers];
    memset(u, 0, sizeof *u);
    u->entry = index;
    u->name = malloc(s.namelen + 1);
    if (!u->name) {
        ml_wipe(&s, sizeof s);
        return ml_err(b->e.err, b->e.errlen, "out of memory");
    }
    memcpy(u->name, s.name, s.namelen);
    u->name[s.namelen] = 0;
    u->namelen = s.namelen;
    int rc = 0;
    if (!s.pass) {
        memcpy(u->md5, s.key, sizeof u->md5);
    } else {
        u->has_sha256 = true;
        rc = stun_key_md5(s.name, s.namelen, a->realm, a->realmlen, s.pass, s.passlen, u->md5);
        if (rc == 0)
            rc = stun_key_sha256(s.name, s.namelen, a->realm, a->realmlen, s.pass, s.passlen,
                                 u->sha256);
    }
    ml_wipe(&s, sizeof s);
    t->nusers++; /* even on failure: table_free releases the name */
    if (rc < 0)
        return ml_err(b->e.err, b->e.errlen, "static-users entry %u: digest failed", index);
    return 0;
}

static int user_sort(const void *x, const void *y)
{
    const struct auth_user *a = x, *b = y;
    return name_cmp(a->name, a->namelen, b->name, b->namelen);
}

/* Sorts t's users by name and refuses duplicates ("<what> 3 and 5 name the same user"). 0 or
 * -1. */
static int users_sort_unique(struct auth_table *t, const char *what, char *err, size_t errlen)
{
    if (t->nusers < 2)
        return 0;
    qsort(t->users, t->nusers, sizeof *t->users, user_sort);
    for (size_t i = 1; i < t->nusers; i++) {
        const struct auth_user *p = &t->users[i - 1], *q = &t->users[i];
        if (!name_cmp(p->name, p->namelen, q->name, q->namelen)) {
            unsigned lo = p->entry < q->entry ? p->entry : q->entry;
            unsigned hi = p->entry < q->entry ? q->entry : p->entry;
            ml_err(err, errlen, "%s %u and %u name the same user", what, lo, hi);
            return -1;
        }
    }
    return 0;
}

/* Builds the reloadable table from cfg, with one reference. NULL with err filled. */
static struct auth_table *table_build(struct turn_auth *a, const struct turn_config *cfg, char *err,
                                      size_t errlen)
{
    struct table_build b = {a, calloc(1, sizeof(struct auth_table)), 0, {err, errlen}, false};
    if (!b.t) {
        ml_err(err, errlen, "out of memory");
        return NULL;
    }
    if (list_each(cfg->auth_secret, add_secret, &b) < 0)
        goto fail;
    b.cap = 0;
    if (list_each(cfg->static_users, add_user, &b) < 0)
        goto fail;
    if (users_sort_unique(b.t, "static-users entries", err, errlen) < 0)
        goto fail;
    return b.t;
fail:
    table_free(b.t);
    return NULL;
}

/* Builds the runtime table (secrets and users managed through the admin API) from arrays,
 * with one reference. The last secret signs new credentials. NULL with err filled. */
static struct auth_table *runtime_build(struct turn_auth *a, const char *const *secrets,
                                        size_t nsecrets, const struct turn_runtime_user *users,
                                        size_t nusers, char *err, size_t errlen)
{
    struct table_build b = {a, calloc(1, sizeof(struct auth_table)), 0, {err, errlen}, true};
    if (!b.t) {
        ml_err(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < nsecrets; i++)
        if (add_secret(secrets[i], strlen(secrets[i]), (unsigned)i + 1, &b) < 0)
            goto fail;
    if (nusers) {
        b.t->users = calloc(nusers, sizeof *b.t->users);
        if (!b.t->users) {
            ml_err(err, errlen, "out of memory");
            goto fail;
        }
    }
    for (size_t i = 0; i < nusers; i++) {
        size_t n = strnlen(users[i].name, TURN_ID_MAX);
        if (n == 0 || n >= TURN_ID_MAX) {
            ml_err(err, errlen, "runtime user %zu: a name has 1 to 127 bytes", i + 1);
            goto fail;
        }
        struct auth_user *u = &b.t->users[b.t->nusers];
        u->name = strndup(users[i].name, n);
        if (!u->name) {
            ml_err(err, errlen, "out of memory");
            goto fail;
        }
        u->namelen = n;
        u->entry = (unsigned)i + 1;
        u->has_sha256 = true;
        memcpy(u->md5, users[i].md5, sizeof u->md5);
        memcpy(u->sha256, users[i].sha256, sizeof u->sha256);
        b.t->nusers++;
    }
    if (users_sort_unique(b.t, "runtime users", err, errlen) < 0)
        goto fail;
    return b.t;
fail:
    table_free(b.t);
    return NULL;
}

static const struct auth_user *user_find(const struct auth_table *t, const char *name, size_t len)
{
    size_t lo = 0, hi = t->nusers;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct auth_user *u = &t->users[mid];
        int c = name_cmp(name, len, u->name, u->namelen);
        if (!c)
            return u;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* ------------------------------------------------------------------ nonces */

/* The client's address as MAC input: IP then port, in network order. 0 for other families. */
static size_t addr_bytes(const struct sockaddr *sa, uint8_t out[18])
{
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
        memcpy(out, &s->sin_addr, 4);
        memcpy(out + 4, &s->sin_port, 2);
        return 6;
    }
    if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
        memcpy(out, &s->sin6_addr, 16);
        memcpy(out + 16, &s->sin6_port, 2);
        return 18;
    }
    return 0;
}

static void base64url(const uint8_t *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 0; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = tab[v >> 18];
        *out++ = tab[(v >> 12) & 63];
        *out++ = tab[(v >> 6) & 63];
        *out++ = tab[v & 63];
    }
}

/* The nonce issued at time t to client, NONCE_LEN characters (no NUL). false when the address
 * family is unknown or the MAC fails. */
static bool nonce_make(const struct turn_auth *a, const struct sockaddr *client, uint32_t t,
                       char out[NONCE_LEN])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t in[4 + 18], mac[EVP_MAX_MD_SIZE];
    stun_put32(in, t);
    size_t n = addr_bytes(client, in + 4);
    if (!n || ml_hmac_run(a->nonce_mac, in, 4 + n, mac, sizeof mac) < NONCE_MAC_BYTES)
        return false;
    memcpy(out, NONCE_COOKIE NONCE_FEATURES, NONCE_PREFIX_LEN);
    for (int i = 0; i < NONCE_TIME_LEN; i++)
        out[NONCE_PREFIX_LEN + i] = hex[(t >> (28 - 4 * i)) & 0xf];
    base64url(mac, NONCE_MAC_BYTES, out + NONCE_PREFIX_LEN + NONCE_TIME_LEN);
    return true;
}

/* Whether v (len bytes from the wire) is a nonce we issued to client, with *age_s its age
 * (negative when issued "later" by a node whose clock is ahead). The comparison is over the
 * whole nonce, in constant time. */
static bool nonce_ours(const struct turn_auth *a, const uint8_t *v, size_t len,
                       const struct sockaddr *client, int64_t now_s, int64_t *age_s)
{
    char want[NONCE_LEN];
    uint32_t t = 0;
    if (len != NONCE_LEN)
        return false;
    for (int i = 0; i < NONCE_TIME_LEN; i++) {
        char c = (char)v[NONCE_PREFIX_LEN + i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        t = t << 4 | (uint32_t)ml_hex_digit(c);
    }
    if (!nonce_make(a, client, t, want))
        return false;
    *age_s = now_s - (int64_t)t;
    return stun_ct_equal(want, v, NONCE_LEN) == 1;
}

size_t turn_auth_nonce(struct turn_auth *a, const struct sockaddr *client, int64_t now_s, char *out,
                       size_t outlen)
{
    if (outlen < NONCE_LEN + 1 || !nonce_make(a, client, (uint32_t)now_s, out)) {
        if (outlen)
            out[0] = 0;
        return 0;
    }
    out[NONCE_LEN] = 0;
    return NONCE_LEN;
}

size_t turn_auth_nonce_len(void)
{
    return NONCE_LEN;
}

void turn_auth_build_algorithms(struct stun_builder *b)
{
    stun_build_attr(b, STUN_ATTR_PASSWORD_ALGORITHMS, our_algorithms, sizeof our_algorithms);
}

/* ------------------------------------------------------------------ verifying a request */

static bool req_verify(const struct auth_req *r, const uint8_t *key, size_t keylen)
{
    int rc = r->mi256 ? stun_msg_check_integrity_sha256(r->m, key, keylen)
                      : stun_msg_check_integrity(r->m, key, keylen);
    return rc == 1;
}

/* The long-term key of the request's user with password pass, by the request's algorithm:
 * MD5 or SHA-256 of "user:realm:pass" (RFC 8489 9.2.2), with the digests fetched once. */
static int derive_key(const struct turn_auth *a, const struct auth_req *r, const char *pass,
                      size_t plen, uint8_t key[STUN_MAX_KEY_LEN], size_t *keylen)
{
    char buf[USERNAME_LEN_MAX + REALM_MAX + REST_PASS_LEN + 2];
    size_t n = r->ulen + 1 + a->realmlen + 1 + plen;
    unsigned len = 0;
    if (n > sizeof buf)
        return -1;
    memcpy(buf, r->user, r->ulen);
    buf[r->ulen] = ':';
    memcpy(buf + r->ulen + 1, a->realm, a->realmlen);
    buf[r->ulen + 1 + a->realmlen] = ':';
    memcpy(buf + r->ulen + 2 + a->realmlen, pass, plen);
    const EVP_MD *md = r->alg == STUN_PWALG_SHA256 ? a->sha256 : a->md5;
    int ok = EVP_Digest(buf, n, key, &len, md, NULL);
    ml_wipe(buf, n);
    *keylen = len;
    return ok == 1 && len <= STUN_MAX_KEY_LEN ? 0 : -1;
}

static bool all_digits(const char *p, size_t n)
{
    if (n == 0 || n > REST_DIGITS_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return false;
    return true;
}

/* A TURN REST username: "<expiry>:<id>" when the text before the first ':' is all digits,
 * else "<id>:<expiry>" with the expiry after the last ':' (coturn's reading). */
static bool rest_parse(const char *u, size_t n, int64_t *expiry_s, const char **id, size_t *idlen)
{
    const char *first = memchr(u, ':', n), *digits;
    size_t ndigits;
    if (!first)
        return false;
    if (all_digits(u, (size_t)(first - u))) {
        digits = u;
        ndigits = (size_t)(first - u);
        *id = first + 1;
        *idlen = (size_t)(u + n - *id);
    } else {
        const char *last = u + n - 1;
        while (*last != ':')
            last--;
        digits = last + 1;
        ndigits = (size_t)(u + n - digits);
        if (!all_digits(digits, ndigits))
            return false;
        *id = u;
        *idlen = (size_t)(last - u);
    }
    if (*idlen == 0 || *idlen >= TURN_ID_MAX)
        return false;
    int64_t e = 0;
    for (size_t i = 0; i < ndigits; i++)
        e = e * 10 + (digits[i] - '0');
    *expiry_s = e;
    return true;
}

static void cred_set(struct turn_cred *cred, const char *id, size_t idlen, const uint8_t *key,
                     size_t keylen)
{
    memcpy(cred->id, id, idlen);
    cred->id[idlen] = 0;
    memcpy(cred->key, key, keylen);
    cred->keylen = keylen;
}

/* REST credentials: the password is base64(HMAC-SHA1(secret, username)) for some secret. No
 * secret verifying it is not a failure: a static user or a source may own the name. */
static enum match rest_try(const struct turn_auth *a, const struct auth_table *t,
                           const struct auth_req *r, struct turn_cred *cred, bool *expires)
{
    int64_t expiry_s;
    const char *id;
    size_t idlen;
    if (!t->nsecrets || !rest_parse(r->user, r->ulen, &expiry_s, &id, &idlen))
        return MATCH_NONE;
    for (size_t i = 0; i < t->nsecrets; i++) {
        uint8_t mac[EVP_MAX_MD_SIZE], key[STUN_MAX_KEY_LEN];
        char pass[REST_PASS_LEN + 1];
        size_t keylen = 0;
        size_t maclen = ml_hmac_run(t->secrets[i], r->user, r->ulen, mac, sizeof mac);
        bool ok = maclen == STUN_SHA1_LEN &&
                  ml_base64_encode(mac, maclen, pass, sizeof pass) == REST_PASS_LEN &&
                  derive_key(a, r, pass, REST_PASS_LEN, key, &keylen) == 0 &&
                  req_verify(r, key, keylen);
        if (ok) {
            cred_set(cred, id, idlen, key, keylen);
            cred->expiry_s = expiry_s;
            *expires = true;
        }
        ml_wipe(mac, sizeof mac);
        ml_wipe(pass, sizeof pass);
        ml_wipe(key, sizeof key);
        if (ok)
            return MATCH_OK;
    }
    return MATCH_NONE;
}

static enum match static_try(const struct auth_table *t, const struct auth_req *r,
                             struct turn_cred *cred)
{
    const struct auth_user *u = user_find(t, r->user, r->ulen);
    if (!u)
        return MATCH_NONE;
    bool sha = r->alg == STUN_PWALG_SHA256;
    if (sha && !u->has_sha256)
        return MATCH_FAIL; /* a user:0x entry has the MD5 key only */
    const uint8_t *key = sha ? u->sha256 : u->md5;
    size_t keylen = sha ? STUN_SHA256_LEN : STUN_MD5_LEN;
    if (!req_verify(r, key, keylen))
        return MATCH_FAIL;
    cred_set(cred, u->name, u->namelen, key, keylen);
    return MATCH_OK;
}

/* ------------------------------------------------------------------ asynchronous sources */

static struct cache_entry *cache_set(struct turn_auth *a, uint64_t h)
{
    return &a->cache[(h % CACHE_SETS) * CACHE_WAYS];
}

static uint64_t cache_hash(const struct turn_auth *a, unsigned source, const char *user,
                           size_t ulen)
{
    return hash_bytes(a->hash_key, user, ulen) ^ source;
}

/* The cached answer of source for user: 1 found (*ans filled), 0 known to be unknown, -1 none. */
static int cache_get(struct turn_auth *a, unsigned source, const char *user, size_t ulen,
                     int64_t now_s, struct turn_source_answer *ans)
{
    uint64_t h = cache_hash(a, source, user, ulen);
    int rc = -1;
    pthread_mutex_lock(&a->cache_lock);
    struct cache_entry *set = cache_set(a, h);
    for (unsigned i = 0; i < CACHE_WAYS; i++) {
        const struct cache_entry *e = &set[i];
        if (e->used && e->hash == h && e->source == source && e->ulen == ulen &&
            e->until_s >= now_s && !memcmp(e->user, user, ulen)) {
            rc = e->found ? 1 : 0;
            if (e->found)
                *ans = e->ans;
            break;
        }
    }
    pthread_mutex_unlock(&a->cache_lock);
    return rc;
}

int turn_auth_add_source(struct turn_auth *a, struct turn_cred_source *src)
{
    if (!src || !src->lookup || a->nsources >= TURN_AUTH_MAX_SOURCES)
        return -1;
    if (!a->cache) {
        a->cache = calloc(CACHE_SETS * CACHE_WAYS, sizeof *a->cache);
        if (!a->cache)
            return -1;
    }
    a->sources[a->nsources++] = src;
    return 0;
}

void turn_auth_source_done(struct turn_auth *a, const struct turn_cred_source *src,
                           const char *username, size_t ulen, const struct turn_source_answer *ans,
                           int64_t now_s)
{
    unsigned source = 0;
    while (source < a->nsources && a->sources[source] != src)
        source++;
    if (source == a->nsources || !a->cache || ulen == 0 || ulen > USERNAME_LEN_MAX)
        return;
    int64_t ttl = ans && ans->cache_s > 0 ? ans->cache_s : CACHE_DEFAULT_S;
    if (ttl > CACHE_MAX_S)
        ttl = CACHE_MAX_S;
    uint64_t h = cache_hash(a, source, username, ulen);
    pthread_mutex_lock(&a->cache_lock);
    struct cache_entry *set = cache_set(a, h), *e = NULL;
    for (unsigned i = 0; i < CACHE_WAYS && !e; i++)
        if (set[i].used && set[i].hash == h && set[i].source == source && set[i].ulen == ulen &&
            !memcmp(set[i].user, username, ulen))
            e = &set[i];
    for (unsigned i = 0; i < CACHE_WAYS && !e; i++)
        if (!set[i].used || set[i].until_s < now_s)
            e = &set[i];
    if (!e) { /* all live: evict the one closest to expiry */
        e = &set[0];
        for (unsigned i = 1; i < CACHE_WAYS; i++)
            if (set[i].until_s < e->until_s)
                e = &set[i];
    }
    ml_wipe(e, sizeof *e);
    e->used = true;
    e->found = ans != NULL;
    e->source = source;
    e->hash = h;
    e->until_s = now_s + ttl;
    e->ulen = ulen;
    memcpy(e->user, username, ulen);
    if (ans) {
        e->ans = *ans;
        e->ans.id[TURN_ID_MAX - 1] = 0;
    }
    pthread_mutex_unlock(&a->cache_lock);
}

/* A source's answer checked against the request. */
static enum match answer_verify(const struct auth_req *r, const struct turn_source_answer *ans,
                                struct turn_cred *cred, bool *expires)
{
    bool sha = r->alg == STUN_PWALG_SHA256;
    if (sha ? !ans->has_sha256 : !ans->has_md5)
        return MATCH_FAIL;
    const uint8_t *key = sha ? ans->sha256 : ans->md5;
    size_t keylen = sha ? STUN_SHA256_LEN : STUN_MD5_LEN;
    size_t idlen = strnlen(ans->id, TURN_ID_MAX);
    const char *id = ans->id;
    if (idlen == 0 || idlen >= TURN_ID_MAX) {
        id = r->user; /* the username is the id */
        idlen = r->ulen;
    }
    if (idlen >= TURN_ID_MAX || !req_verify(r, key, keylen))
        return MATCH_FAIL;
    cred_set(cred, id, idlen, key, keylen);
    cred->expiry_s = ans->expiry_s;
    *expires = ans->expiry_s != 0;
    return MATCH_OK;
}

static enum match source_try(struct turn_auth *a, const struct auth_req *r, int64_t now_s,
                             turn_auth_wake_fn wake, void *wake_arg, struct turn_cred *cred,
                             bool *expires)
{
    for (unsigned i = 0; i < a->nsources; i++) {
        struct turn_source_answer ans;
        enum turn_source_result res;
        memset(&ans, 0, sizeof ans);
        int cached = cache_get(a, i, r->user, r->ulen, now_s, &ans);
        if (cached >= 0)
            res = cached ? TURN_SOURCE_FOUND : TURN_SOURCE_NOT_FOUND;
        else
            res = a->sources[i]->lookup(a->sources[i], r->user, r->ulen, &ans, wake, wake_arg);
        if (res == TURN_SOURCE_PENDING && wake) {
            ml_wipe(&ans, sizeof ans);
            return MATCH_PENDING;
        }
        if (res == TURN_SOURCE_FOUND) {
            enum match m = answer_verify(r, &ans, cred, expires);
            ml_wipe(&ans, sizeof ans);
            return m;
        }
        ml_wipe(&ans, sizeof ans);
    }
    return MATCH_NONE;
}

/* ------------------------------------------------------------------ revocation */

static struct rev_entry **rev_slot(struct rev_entry **slots, size_t cap, uint64_t h, const char *id)
{
    size_t i = (size_t)h & (cap - 1);
    while (slots[i] && (slots[i]->hash != h || strcmp(slots[i]->id, id)))
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

/* Rehashes into cap slots, dropping entries lapsed before now_s. 0, or -1 (set unchanged). */
static int rev_rebuild(struct rev_set *s, size_t cap, int64_t now_s)
{
    struct rev_entry **slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    int64_t max_until = INT64_MIN;
    size_t n = 0;
    for (size_t i = 0; i < s->cap; i++) {
        struct rev_entry *e = s->slots[i];
        if (!e)
            continue;
        if (e->until_s < now_s) {
            free(e);
            continue;
        }
        *rev_slot(slots, cap, e->hash, e->id) = e;
        n++;
        if (e->until_s > max_until)
            max_until = e->until_s;
    }
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    s->n = n;
    __atomic_store_n(&s->max_until, max_until, __ATOMIC_RELEASE);
    return 0;
}

int turn_auth_revoke(struct turn_auth *a, const char *id, int64_t until_s)
{
    struct rev_set *s = &a->rev;
    size_t len = id ? strnlen(id, TURN_ID_MAX) : 0;
    if (len == 0 || len >= TURN_ID_MAX)
        return -1;
    uint64_t h = hash_bytes(a->hash_key, id, len);
    int rc = 0;
    ml_brlock_wrlock(&s->lock);
    if (!s->slots && rev_rebuild(s, REV_MIN_CAP, INT64_MIN) < 0) {
        rc = -1;
        goto out;
    }
    struct rev_entry **slot = rev_slot(s->slots, s->cap, h, id);
    if (*slot) {
        if (until_s > (*slot)->until_s)
            (*slot)->until_s = until_s;
    } else {
        if (2 * (s->n + 1) > s->cap) {
            /* Purge lapsed entries first; grow only when what is left needs it. */
            if (rev_rebuild(s, s->cap, ml_wall_s()) < 0) {
                rc = -1;
                goto out;
            }
            if (s->n >= TURN_AUTH_MAX_REVOKED ||
                (2 * (s->n + 1) > s->cap && rev_rebuild(s, 2 * s->cap, INT64_MIN) < 0)) {
                rc = -1;
                goto out;
            }
            slot = rev_slot(s->slots, s->cap, h, id);
        }
        struct rev_entry *e = malloc(sizeof *e + len + 1);
        if (!e) {
            rc = -1;
            goto out;
        }
        e->until_s = until_s;
        e->hash = h;
        memcpy(e->id, id, len + 1);
        *slot = e;
        s->n++;
    }
    if (until_s > __atomic_load_n(&s->max_until, __ATOMIC_RELAXED))
        __atomic_store_n(&s->max_until, until_s, __ATOMIC_RELEASE);
out:
    ml_brlock_wrunlock(&s->lock);
    return rc;
}

bool turn_auth_is_revoked(struct turn_auth *a, const char *id, int64_t now_s)
{
    struct rev_set *s = &a->rev;
    if (!id || now_s > __atomic_load_n(&s->max_until, __ATOMIC_ACQUIRE))
        return false; /* nothing in force: no lock */
    size_t len = strnlen(id, TURN_ID_MAX);
    if (len >= TURN_ID_MAX)
        return false;
    uint64_t h = hash_bytes(a->hash_key, id, len);
    bool revoked = false;
    (void)ml_brlock_rdlock(&s->lock);
    if (s->slots) {
        const struct rev_entry *e = *rev_slot(s->slots, s->cap, h, id);
        revoked = e && now_s <= e->until_s;
    }
    ml_brlock_rdunlock(&s->lock);
    return revoked;
}

/* ------------------------------------------------------------------ the object */

static int nonce_key(struct turn_auth *a, const char *secret, char *err, size_t errlen)
{
    uint8_t key[STUN_SHA256_LEN];
    if (secret && *secret) {
        if (strlen(secret) < SECRET_MIN)
            return ml_err(err, errlen, "turn.nonce-secret needs at least 8 characters");
        /* A fleet sharing the secret shares the key; the label keeps it apart from any other
         * use of the same secret. */
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        unsigned len = 0;
        int ok = c && EVP_DigestInit_ex(c, a->sha256, NULL) == 1 &&
                 EVP_DigestUpdate(c, NONCE_KEY_LABEL, strlen(NONCE_KEY_LABEL)) == 1 &&
                 EVP_DigestUpdate(c, secret, strlen(secret)) == 1 &&
                 EVP_DigestFinal_ex(c, key, &len) == 1 && len == sizeof key;
        EVP_MD_CTX_free(c);
        if (!ok)
            return ml_err(err, errlen, "cannot derive the nonce key");
    } else {
        ml_random(key, sizeof key);
    }
    a->nonce_mac = ml_hmac_new("SHA256", key, sizeof key);
    ml_wipe(key, sizeof key);
    return a->nonce_mac ? 0 : ml_err(err, errlen, "cannot prepare HMAC-SHA256 for nonces");
}

struct turn_auth *turn_auth_new(const struct turn_config *cfg, char *err, size_t errlen)
{
    const char *realm = cfg->realm ? cfg->realm : "";
    size_t rlen = strlen(realm);
    if (rlen == 0 || rlen > REALM_MAX) {
        ml_err(err, errlen, "turn.realm needs 1 to 127 characters");
        return NULL;
    }
    struct turn_auth *a = calloc(1, sizeof *a);
    if (!a) {
        ml_err(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(a->realm, realm, rlen + 1);
    a->realmlen = rlen;
    a->nonce_lifetime_s = cfg->nonce_lifetime_s > 0 ? cfg->nonce_lifetime_s : 600;
    a->strict_expiry = cfg->strict_expiry;
    ml_random(a->hash_key, sizeof a->hash_key);
    bool locks = ml_brlock_init(&a->tables_lock) == 0;
    if (locks && ml_brlock_init(&a->rev.lock) < 0) {
        ml_brlock_destroy(&a->tables_lock);
        locks = false;
    }
    if (!locks) { /* before anything turn_auth_free would release */
        free(a);
        ml_err(err, errlen, "cannot make a lock");
        return NULL;
    }
    pthread_mutex_init(&a->cache_lock, NULL);
    a->rev.max_until = INT64_MIN;
    a->md5 = EVP_MD_fetch(NULL, "MD5", NULL);
    a->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!a->md5 || !a->sha256) {
        ml_err(err, errlen, "OpenSSL offers no MD5 or SHA-256 (FIPS-only provider?)");
        goto fail;
    }
    if (nonce_key(a, cfg->nonce_secret, err, errlen) < 0)
        goto fail;
    a->table = table_build(a, cfg, err, errlen);
    if (!a->table)
        goto fail;
    a->runtime = runtime_build(a, NULL, 0, NULL, 0, err, errlen);
    if (!a->runtime)
        goto fail;
    return a;
fail:
    turn_auth_free(a);
    return NULL;
}

void turn_auth_free(struct turn_auth *a)
{
    if (!a)
        return;
    table_free(a->table);
    table_free(a->runtime);
    if (a->cache) {
        ml_wipe(a->cache, CACHE_SETS * CACHE_WAYS * sizeof *a->cache);
        free(a->cache);
    }
    for (size_t i = 0; i < a->rev.cap; i++)
        free(a->rev.slots[i]);
    free(a->rev.slots);
    ml_hmac_free(a->nonce_mac);
    EVP_MD_free(a->md5);
    EVP_MD_free(a->sha256);
    ml_brlock_destroy(&a->rev.lock);
    pthread_mutex_destroy(&a->cache_lock);
    ml_brlock_destroy(&a->tables_lock);
    ml_wipe(a, sizeof *a);
    free(a);
}

int turn_auth_reload(struct turn_auth *a, const struct turn_config *cfg, char *err, size_t errlen)
{
    struct auth_table *t = table_build(a, cfg, err, errlen);
    if (!t)
        return -1;
    ml_brlock_wrlock(&a->tables_lock);
    struct auth_table *old = a->table;
    a->table = t;
    ml_brlock_wrunlock(&a->tables_lock);
    __atomic_store_n(&a->strict_expiry, cfg->strict_expiry, __ATOMIC_RELAXED);
    table_free(old);
    return 0;
}

int turn_auth_set_runtime(struct turn_auth *a, const char *const *secrets, size_t nsecrets,
                          const struct turn_runtime_user *users, size_t nusers, char *err,
                          size_t errlen)
{
    struct auth_table *t = runtime_build(a, secrets, nsecrets, users, nusers, err, errlen);
    if (!t)
        return -1;
    ml_brlock_wrlock(&a->tables_lock);
    struct auth_table *old = a->runtime;
    a->runtime = t;
    ml_brlock_wrunlock(&a->tables_lock);
    table_free(old);
    return 0;
}

size_t turn_auth_signing_secret(struct turn_auth *a, char *buf, size_t len)
{
    struct auth_table *t, *rt;
    tables_get(a, &t, &rt);
    const char *s = rt->sign ? rt->sign : t->sign;
    size_t n = s ? strlen(s) : 0;
    if (n >= len)
        n = 0;
    if (len) {
        memcpy(buf, s ? s : "", n);
        buf[n] = 0;
    }
    tables_put(a);
    return n;
}

void turn_auth_runtime_counts(struct turn_auth *a, size_t *secrets, size_t *users)
{
    struct auth_table *t, *rt;
    tables_get(a, &t, &rt);
    *secrets = rt->nsecrets;
    *users = rt->nusers;
    tables_put(a);
}

/* ------------------------------------------------------------------ the server's door to it */

int turn_server_set_runtime_creds(struct turn_server *srv, const char *const *secrets,
                                  size_t nsecrets, const struct turn_runtime_user *users,
                                  size_t nusers, char *err, size_t errlen)
{
    return turn_auth_set_runtime(srv->auth, secrets, nsecrets, users, nusers, err, errlen);
}

size_t turn_server_signing_secret(struct turn_server *srv, char *buf, size_t len)
{
    return turn_auth_signing_secret(srv->auth, buf, len);
}

void turn_server_runtime_counts(struct turn_server *srv, size_t *secrets, size_t *users)
{
    turn_auth_runtime_counts(srv->auth, secrets, users);
}

const char *turn_server_realm(const struct turn_server *srv)
{
    return turn_auth_realm(srv->auth);
}

const char *turn_auth_realm(const struct turn_auth *a)
{
    return a->realm;
}

bool turn_auth_strict_expiry(const struct turn_auth *a)
{
    return __atomic_load_n(&a->strict_expiry, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------ the check */

static enum turn_auth_result check(struct turn_auth *a, const struct stun_msg *m,
                                   const struct sockaddr *client, int64_t now_s, bool check_expiry,
                                   turn_auth_wake_fn wake, void *wake_arg, struct turn_cred *cred,
                                   bool *proven)
{
    memset(cred, 0, sizeof *cred);
    if (m->mi < 0 && m->mi256 < 0)
        return TURN_AUTH_CHALLENGE;
    const struct stun_attr *user = stun_msg_find(m, STUN_ATTR_USERNAME);
    const struct stun_attr *realm = stun_msg_find(m, STUN_ATTR_REALM);
    const struct stun_attr *nonce = stun_msg_find(m, STUN_ATTR_NONCE);
    if (!user || !realm || !nonce)
        return TURN_AUTH_BAD_REQUEST;
    if (realm->len != a->realmlen || memcmp(stun_attr_value(m, realm), a->realm, a->realmlen))
        return TURN_AUTH_REJECT;
    /* A nonce of ours for this IP and port was received there: past its lifetime it is stale,
     * but for one more lifetime it still proves the address (a long-lived allocation's Refresh
     * meets 438 with a nonce that old). */
    int64_t age = 0;
    bool ours = nonce_ours(a, stun_attr_value(m, nonce), nonce->len, client, now_s, &age);
    *proven = ours && age >= -NONCE_SKEW_S && age <= 2 * a->nonce_lifetime_s;
    if (!ours || age < -NONCE_SKEW_S || age > a->nonce_lifetime_s)
        return TURN_AUTH_STALE;

    /* Our nonce carries the password-algorithms bit, so the client either echoes our list and
     * picks from it (RFC 8489 9.2.4), or sends neither and means MD5 (RFC 5389). */
    struct auth_req r = {.m = m, .alg = STUN_PWALG_MD5, .mi256 = m->mi256 >= 0};
    const struct stun_attr *algs = stun_msg_find(m, STUN_ATTR_PASSWORD_ALGORITHMS);
    const struct stun_attr *alg = stun_msg_find(m, STUN_ATTR_PASSWORD_ALGORITHM);
    if (!algs != !alg)
        return TURN_AUTH_BAD_REQUEST;
    if (alg) {
        const uint8_t *v = stun_attr_value(m, alg);
        if (algs->len != sizeof our_algorithms ||
            memcmp(stun_attr_value(m, algs), our_algorithms, sizeof our_algorithms) ||
            alg->len != 4 || stun_get16(v + 2) != 0)
            return TURN_AUTH_BAD_REQUEST;
        r.alg = stun_get16(v);
        if (r.alg != STUN_PWALG_MD5 && r.alg != STUN_PWALG_SHA256)
            return TURN_AUTH_BAD_REQUEST;
    }
    r.user = (const char *)stun_attr_value(m, user);
    r.ulen = user->len;
    if (r.ulen == 0 || r.ulen > USERNAME_LEN_MAX || memchr(r.user, 0, r.ulen))
        return TURN_AUTH_REJECT;

    bool expires = false;
    struct auth_table *t, *rt;
    tables_get(a, &t, &rt);
    /* turn.auth-secret, then the runtime secrets; turn.static-users win over runtime users */
    enum match res = rest_try(a, t, &r, cred, &expires);
    if (res == MATCH_NONE)
        res = rest_try(a, rt, &r, cred, &expires);
    if (res == MATCH_NONE)
        res = static_try(t, &r, cred);
    if (res == MATCH_NONE)
        res = static_try(rt, &r, cred);
    tables_put(a);
    if (res == MATCH_NONE)
        res = source_try(a, &r, now_s, wake, wake_arg, cred, &expires);
    if (res == MATCH_PENDING)
        return TURN_AUTH_PENDING;
    if (res != MATCH_OK || (check_expiry && expires && cred->expiry_s < now_s) ||
        turn_auth_is_revoked(a, cred->id, now_s)) {
        ml_wipe(cred, sizeof *cred);
        return TURN_AUTH_REJECT;
    }
    memcpy(cred->username, r.user, r.ulen);
    cred->username[r.ulen] = 0;
    cred->sha256 = r.mi256;
    return TURN_AUTH_OK;
}

enum turn_auth_result turn_auth_check_async(struct turn_auth *a, const struct stun_msg *m,
                                            const struct sockaddr *client, int64_t now_s,
                                            bool check_expiry, turn_auth_wake_fn wake,
                                            void *wake_arg, struct turn_cred *cred)
{
    bool proven = false;
    enum turn_auth_result r =
        check(a, m, client, now_s, check_expiry, wake, wake_arg, cred, &proven);
    cred->address_proven = proven; /* after check(), which wipes cred on a refusal */
    return r;
}

enum turn_auth_result turn_auth_check(struct turn_auth *a, const struct stun_msg *m,
                                      const struct sockaddr *client, int64_t now_s,
                                      bool check_expiry, struct turn_cred *cred)
{
    return turn_auth_check_async(a, m, client, now_s, check_expiry, NULL, NULL, cred);
}
