/* STUN integrity (HMAC-SHA1, HMAC-SHA256 via OpenSSL 3 EVP_MAC), FINGERPRINT (zlib CRC-32) and
 * long-term credential keys, for both the parser and the builder. */
#include "config.h"

#include "stun/stun.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <string.h>
#include <zlib.h>

#define STUN_FINGERPRINT_XOR 0x5354554eu

/* Fetched once: a fetch per message would take OpenSSL's method-store lock every time. Never
 * freed; it lives as long as the process. */
static EVP_MAC *hmac_impl;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_fetch(void)
{
    hmac_impl = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

/* HMAC with digest ("SHA1", "SHA256") over a 20-byte header then body[0..blen), into out
 * (room for 32 bytes). Pieces, so that the caller never copies the message. Returns 0 or -1. */
static int stun_hmac(const char *digest, const uint8_t *key, size_t keylen, const uint8_t *hdr,
                     const uint8_t *body, size_t blen, uint8_t out[STUN_SHA256_LEN])
{
    static const uint8_t empty_key[1];
    pthread_once(&hmac_once, hmac_fetch);
    if (!hmac_impl)
        return -1;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac_impl);
    if (!ctx)
        return -1;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0),
        OSSL_PARAM_construct_end(),
    };
    size_t outlen = 0;
    /* A NULL key would mean "keep the previous key" to OpenSSL; an empty key is still a key. */
    int ok = EVP_MAC_init(ctx, key && keylen ? key : empty_key, key ? keylen : 0, params) == 1 &&
             EVP_MAC_update(ctx, hdr, STUN_HEADER_LEN) == 1 &&
             (blen == 0 || EVP_MAC_update(ctx, body, blen) == 1) &&
             EVP_MAC_final(ctx, out, &outlen, STUN_SHA256_LEN) == 1;
    EVP_MAC_CTX_free(ctx);
    return ok ? 0 : -1;
}

/* The MAC covers the message up to the attribute, with the header length pointing at the end
 * of the attribute (RFC 8489 14.5, 14.6): a copy of the header carries that length. */
static int check_mac(const struct stun_msg *m, int idx, const char *digest, size_t minlen,
                     size_t maxlen, const uint8_t *key, size_t keylen)
{
    if (idx < 0 || (unsigned)idx >= m->nattrs)
        return -1;
    const struct stun_attr *a = &m->attrs[idx];
    size_t maclen = a->len;
    if (maclen < minlen || maclen > maxlen || maclen % 4)
        return -1;
    size_t start = a->offset - 4;
    if (start < STUN_HEADER_LEN || a->offset + maclen > m->len)
        return -1;
    uint8_t hdr[STUN_HEADER_LEN], mac[STUN_SHA256_LEN];
    memcpy(hdr, m->buf, STUN_HEADER_LEN);
    stun_put16(hdr + 2, (uint16_t)(a->offset + maclen - STUN_HEADER_LEN));
    if (stun_hmac(digest, key, keylen, hdr, m->buf + STUN_HEADER_LEN, start - STUN_HEADER_LEN,
                  mac) < 0)
        return 0; /* cannot be proven valid */
    return CRYPTO_memcmp(mac, m->buf + a->offset, maclen) == 0 ? 1 : 0;
}

int stun_msg_check_integrity(const struct stun_msg *m, const uint8_t *key, size_t keylen)
{
    return check_mac(m, m->mi, "SHA1", STUN_SHA1_LEN, STUN_SHA1_LEN, key, keylen);
}

int stun_msg_check_integrity_sha256(const struct stun_msg *m, const uint8_t *key, size_t keylen)
{
    /* RFC 8489 14.6: truncated to no fewer than 16 bytes, in multiples of 4 */
    return check_mac(m, m->mi256, "SHA256", 16, STUN_SHA256_LEN, key, keylen);
}

static void build_mac(struct stun_builder *b, uint16_t type, const char *digest, size_t maclen,
                      const uint8_t *key, size_t keylen)
{
    if (b->overflow)
        return;
    if (b->cap - b->len < 4 + maclen || b->len - STUN_HEADER_LEN + 4 + maclen > 0xFFFF) {
        b->overflow = true;
        return;
    }
    uint8_t mac[STUN_SHA256_LEN];
    stun_put16(b->buf + 2, (uint16_t)(b->len - STUN_HEADER_LEN + 4 + maclen));
    if (stun_hmac(digest, key, keylen, b->buf, b->buf + STUN_HEADER_LEN, b->len - STUN_HEADER_LEN,
                  mac) < 0) {
        b->overflow = true; /* a message without its MAC must not go out */
        return;
    }
    stun_build_attr(b, type, mac, maclen);
}

void stun_build_integrity(struct stun_builder *b, const uint8_t *key, size_t keylen)
{
    build_mac(b, STUN_ATTR_MESSAGE_INTEGRITY, "SHA1", STUN_SHA1_LEN, key, keylen);
}

void stun_build_integrity_sha256(struct stun_builder *b, const uint8_t *key, size_t keylen)
{
    build_mac(b, STUN_ATTR_MESSAGE_INTEGRITY_SHA256, "SHA256", STUN_SHA256_LEN, key, keylen);
}

void stun_build_fingerprint(struct stun_builder *b)
{
    if (b->overflow)
        return;
    if (b->cap - b->len < 8 || b->len - STUN_HEADER_LEN + 8 > 0xFFFF) {
        b->overflow = true;
        return;
    }
    stun_put16(b->buf + 2, (uint16_t)(b->len - STUN_HEADER_LEN + 8));
    uint32_t crc = (uint32_t)crc32(0L, b->buf, (uInt)b->len) ^ STUN_FINGERPRINT_XOR;
    stun_build_u32(b, STUN_ATTR_FINGERPRINT, crc);
}

/* Digest of "user:realm:pass" fed in pieces; md is EVP_md5() or EVP_sha256(). */
static int cred_key(const EVP_MD *md, const char *user, size_t ulen, const char *realm, size_t rlen,
                    const char *pass, size_t plen, uint8_t *out, unsigned outlen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned n = 0;
    if (!ctx)
        return -1;
    int ok = EVP_DigestInit_ex(ctx, md, NULL) == 1 && EVP_DigestUpdate(ctx, user, ulen) == 1 &&
             EVP_DigestUpdate(ctx, ":", 1) == 1 && EVP_DigestUpdate(ctx, realm, rlen) == 1 &&
             EVP_DigestUpdate(ctx, ":", 1) == 1 && EVP_DigestUpdate(ctx, pass, plen) == 1 &&
             EVP_DigestFinal_ex(ctx, out, &n) == 1 && n == outlen;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

int stun_key_md5(const char *user, size_t ulen, const char *realm, size_t rlen, const char *pass,
                 size_t plen, uint8_t out[STUN_MD5_LEN])
{
    return cred_key(EVP_md5(), user, ulen, realm, rlen, pass, plen, out, STUN_MD5_LEN);
}

int stun_key_sha256(const char *user, size_t ulen, const char *realm, size_t rlen, const char *pass,
                    size_t plen, uint8_t out[STUN_SHA256_LEN])
{
    return cred_key(EVP_sha256(), user, ulen, realm, rlen, pass, plen, out, STUN_SHA256_LEN);
}

int stun_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}
