/* HMAC through OpenSSL 3's EVP_MAC, with the algorithm fetched once per process. OpenSSL's
 * one-shot HMAC() fetches it (and the digest) by name on every call, which cost a join about
 * 20,000 instructions a MAC (callgrind, tests/bench/bench-control.sh INSTR=yes). A key used
 * many times is set once in a template that each MAC duplicates. src/stun keeps its own fetch
 * (stun-crypto.c): that codec is a library of OpenSSL and zlib only, without this one. */
#include "config.h"

#include "common/common.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>

/* The template: an EVP_MAC_CTX with its digest and key set, only ever duplicated. */
struct ml_hmac {
    EVP_MAC_CTX *ctx;
};

static EVP_MAC *hmac_impl; /* fetched once, never freed (process lifetime) */
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_fetch(void)
{
    hmac_impl = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

/* A NULL key would mean "keep the previous key" to OpenSSL; an empty key is still a key. */
static EVP_MAC_CTX *keyed(const char *digest, const void *key, size_t keylen)
{
    static const uint8_t empty = 0;
    pthread_once(&hmac_once, hmac_fetch);
    if (!hmac_impl)
        return NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0),
        OSSL_PARAM_construct_end(),
    };
    EVP_MAC_CTX *c = EVP_MAC_CTX_new(hmac_impl);
    if (c && EVP_MAC_init(c, key && keylen ? key : &empty, key ? keylen : 0, params) == 1)
        return c;
    EVP_MAC_CTX_free(c);
    return NULL;
}

static size_t finish(EVP_MAC_CTX *c, const void *a, size_t an, const void *b, size_t bn,
                     uint8_t *out, size_t cap)
{
    size_t len = 0;
    if (EVP_MAC_update(c, a, an) != 1 || (bn && EVP_MAC_update(c, b, bn) != 1) ||
        EVP_MAC_final(c, out, &len, cap) != 1)
        len = 0;
    EVP_MAC_CTX_free(c);
    return len;
}

struct ml_hmac *ml_hmac_new(const char *digest, const void *key, size_t keylen)
{
    struct ml_hmac *h = malloc(sizeof *h);
    if (!h)
        return NULL;
    h->ctx = keyed(digest, key, keylen);
    if (!h->ctx) {
        free(h);
        return NULL;
    }
    return h;
}

size_t ml_hmac_run(const struct ml_hmac *h, const void *data, size_t n, uint8_t *out, size_t cap)
{
    EVP_MAC_CTX *c = EVP_MAC_CTX_dup(h->ctx); /* reads the template only: threads share it */
    return c ? finish(c, data, n, NULL, 0, out, cap) : 0;
}

void ml_hmac_free(struct ml_hmac *h)
{
    if (!h)
        return;
    EVP_MAC_CTX_free(h->ctx); /* OpenSSL cleanses the key */
    free(h);
}

size_t ml_hmac_once(const char *digest, const void *key, size_t keylen, const void *a, size_t an,
                    const void *b, size_t bn, uint8_t *out, size_t cap)
{
    EVP_MAC_CTX *c = keyed(digest, key, keylen);
    return c ? finish(c, a, an, b, bn, out, cap) : 0;
}
