/* libFuzzer target for JSON Web Tokens: cp_jwt_peek (the header's alg and kid), cp_jwt_verify
 * with an HS256 key and with an ES256 key, cp_jwks_verify against a JWKS of an RS256 and an
 * ES256 key (kid selection), then the claims read the way the handlers read them. Two kinds of
 * input, by the first byte's low bit:
 *   0: the rest is a token as a client sends it (Authorization: Bearer, ?token=, id_token);
 *   1: the rest is a header and a claims document (JSON, split at the first newline) that this
 *      target signs with the HS256 key, so that what follows the signature check (libjwt's
 *      decoding, the alg pinning, exp/nbf/iat/iss/aud) sees arbitrary content too.
 * The keys are the fuzzer's own: the HS256 key is a constant below and the JWKS holds only
 * public keys (their private halves were thrown away after signing the seed tokens). */
#include "fuzz_common.h"

#include "control/cp-int.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define HS_KEY "meetlite fuzz HS256 key, not a secret anywhere"
#define NOW 1765000000LL /* the clock the seed tokens are valid at */

static const char jwks_text[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"sig\",\"alg\":\"RS256\",\"kid\":\"fuzz-rsa\",\"n\":"
    "\"t5NbSYQn14ufzLlahK"
    "EH-etWkCdQrS2ZUyVcWUOq3Uh7mChggFHjcqEtQwrIv8d53IrRFA7KslABKuAPv19XlB6lU3skup1JUwb5mkBNei"
    "E_iOBQhcJsnqegMy1J7Us7lRsIBVvGUdp1ytC8cnHT8LRGpIBE7AXuUx6-WtcWkQT91y3Is0Rlg8fN80toP0Fbc2"
    "7f3uTUAOMLnGNLqyc-wkUEGSiAm9wIql0rjjmaiwuTD4BOkZcsu2_jyPBo9fHFSOzPbCydH0Y2DTO3L9I672Yo4F"
    "qL6G6YBDsHuzLfGfev5VjPvzsT_Hj9jdg12B_cgR1utuYmKRAh3MwXQeJi0w\",\"e\":\"AQAB\"},{\"kty\":"
    "\"EC\",\"u"
    "se\":\"sig\",\"alg\":\"ES256\",\"kid\":\"fuzz-ec\",\"crv\":\"P-256\",\"x\":"
    "\"CY4BttUcTSPmS0YccxYJbuZDHygVW"
    "cC-kBng2HqUcEU\",\"y\":\"aTBJNWIkUt5r6G1wktKyjOC6UpYQuguREARyJxCHCUE\"}]}";

static struct cp_jwt_key hs;
static struct cp_jwks jwks;
static const struct cp_jwt_key *es; /* the JWKS's ES256 key, used alone as well */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[200];
    ml_log_set_level(ML_LOG_ERROR);
    FUZZ_ASSERT(cp_jwt_key_hs256(&hs, HS_KEY, err, sizeof err) == 0);
    FUZZ_ASSERT(cp_jwks_parse(&jwks, jwks_text, err, sizeof err) == 0 && jwks.n == 2);
    for (size_t i = 0; i < jwks.n; i++)
        if (jwks.keys[i].alg == JWT_ALG_ES256)
            es = &jwks.keys[i];
    FUZZ_ASSERT(es != NULL);
    return 0;
}

/* What the handlers read of a verified token (cp.c, cp-account.c). */
static void read_claims(jwt_t *j)
{
    uint8_t id[16];
    static const char *const names[] = {"sub", "mid", "pid", "name", "email", "iss"};
    for (size_t i = 0; i < ML_ARRAY_LEN(names); i++) {
        const char *v = jwt_get_grant(j, names[i]);
        if (v)
            (void)ml_uuid_parse(v, id);
    }
    (void)jwt_get_grant_bool(j, "email_verified");
    long exp = jwt_get_grant_int(j, "exp");
    FUZZ_ASSERT(exp > 0);
}

static void verify(const struct cp_jwt_key *k, const char *tok, const struct cp_jwt_expect *ex)
{
    jwt_t *j = NULL;
    enum http_err e = cp_jwt_verify(k, tok, ex, &j);
    if (e == HTTP_OK) {
        FUZZ_ASSERT(j && jwt_get_alg(j) == k->alg);
        char alg[16], kid[128];
        FUZZ_ASSERT(cp_jwt_peek(tok, alg, sizeof alg, kid, sizeof kid) == 0);
        FUZZ_ASSERT(jwt_str_alg(alg) == k->alg);
        read_claims(j);
    } else {
        FUZZ_ASSERT(!j && (e == HTTP_E_INVALID_TOKEN || e == HTTP_E_TOKEN_EXPIRED));
    }
    jwt_free(j);
}

static void verify_all(const char *tok)
{
    char alg[16], kid[128];
    if (cp_jwt_peek(tok, alg, sizeof alg, kid, sizeof kid) == 0)
        FUZZ_ASSERT(strlen(alg) < sizeof alg && strlen(kid) < sizeof kid);
    const struct cp_jwt_expect ours = {"meetlite-fuzz", "meetlite-fuzz", 60, NOW};
    const struct cp_jwt_expect any = {NULL, NULL, 0, NOW};
    const struct cp_jwt_expect idp = {"https://idp.example", "meetlite-fuzz", 60, NOW};
    verify(&hs, tok, &ours);
    verify(&hs, tok, &any);
    verify(es, tok, &any);
    jwt_t *j = NULL;
    enum http_err e = cp_jwks_verify(&jwks, tok, &idp, &j);
    if (e == HTTP_OK) {
        FUZZ_ASSERT(j && (jwt_get_alg(j) == JWT_ALG_RS256 || jwt_get_alg(j) == JWT_ALG_ES256));
        read_claims(j);
    } else {
        FUZZ_ASSERT(!j);
    }
    jwt_free(j);
}

/* base64url without padding of n bytes, appended at out (room for 4/3 n + 4). */
static size_t b64url(const uint8_t *in, size_t n, char *out, size_t room)
{
    size_t len = ml_base64_encode(in, n, out, room);
    while (len && out[len - 1] == '=')
        len--;
    for (size_t i = 0; i < len; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    out[len] = 0;
    return len;
}

static void signed_claims(const uint8_t *data, size_t size)
{
    static const char def_hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    const uint8_t *nl = memchr(data, '\n', size);
    const uint8_t *h = nl ? data : (const uint8_t *)def_hdr;
    size_t hl = nl ? (size_t)(nl - data) : strlen(def_hdr);
    const uint8_t *p = nl ? nl + 1 : data;
    size_t pl = nl ? size - hl - 1 : size;
    size_t room = (hl + pl) * 4 / 3 + 64 + 64;
    char *tok = malloc(room);
    FUZZ_ASSERT(tok);
    size_t n = b64url(h, hl, tok, room);
    tok[n++] = '.';
    n += b64url(p, pl, tok + n, room - n);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    FUZZ_ASSERT(HMAC(EVP_sha256(), HS_KEY, (int)strlen(HS_KEY), (const unsigned char *)tok, n, mac,
                     &maclen));
    tok[n++] = '.';
    n += b64url(mac, maclen, tok + n, room - n);
    FUZZ_ASSERT(n < room);
    verify_all(tok);
    free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > CP_JWT_MAX + 16)
        return 0; /* longer tokens are refused by length before any parsing */
    if (data[0] & 1) {
        signed_claims(data + 1, size - 1);
    } else {
        char *tok = fuzz_strndup(data + 1, size - 1);
        verify_all(tok);
        free(tok);
    }
    return 0;
}
