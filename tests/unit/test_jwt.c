/* Unit tests of the control plane's JWT layer (src/control/cp-jwt.c): the algorithm pinned to
 * the key, exp/nbf/iat/iss/aud with leeway, tampering, ES256 keys, JWKS (RSA and P-256) turned
 * into PEM and selected by kid. Keys are generated here. */
#include "config.h"

#include "control/cp-int.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mlcheck.h"

#define SECRET "unit-test-secret-0123456789abcdef0123"
#define NOW 1700000000LL

static const struct cp_jwt_expect EX = {"meetlite", "meetlite-api", 30, NOW};

static char *make(const struct cp_jwt_key *k, long long exp, const char *extra)
{
    char buf[512];
    ml_snprintf(buf, sizeof buf,
                "{\"iss\":\"meetlite\",\"aud\":\"meetlite-api\",\"sub\":\"u1\",\"iat\":%lld,"
                "\"exp\":%lld%s%s}",
                NOW - 10, exp, extra ? "," : "", extra ? extra : "");
    json_t *c = json_loads(buf, 0, NULL);
    ck_assert_ptr_nonnull(c);
    char *t = cp_jwt_sign(k, c);
    json_decref(c);
    ck_assert_ptr_nonnull(t);
    return t;
}

/* A token signed by libjwt with any algorithm and key (for attacks). */
static char *sign_raw(jwt_alg_t alg, const void *key, int klen, const char *claims)
{
    jwt_t *j = NULL;
    ck_assert_int_eq(jwt_new(&j), 0);
    ck_assert_int_eq(jwt_add_grants_json(j, claims), 0);
    ck_assert_int_eq(jwt_set_alg(j, alg, key, klen), 0);
    char *t = jwt_encode_str(j);
    jwt_free(j);
    return t;
}

static enum http_err verify(const struct cp_jwt_key *k, const char *tok,
                            const struct cp_jwt_expect *ex)
{
    jwt_t *j = NULL;
    enum http_err e = cp_jwt_verify(k, tok, ex, &j);
    if (e == HTTP_OK) {
        ck_assert_ptr_nonnull(j);
        ck_assert_str_eq(jwt_get_grant(j, "sub"), "u1");
        jwt_free(j);
    } else {
        ck_assert_ptr_null(j);
    }
    return e;
}

START_TEST(hs256_roundtrip_and_claims)
{
    struct cp_jwt_key k;
    char err[200];
    ck_assert_int_eq(cp_jwt_key_hs256(&k, "short", err, sizeof err), -1);
    ck_assert_int_eq(cp_jwt_key_hs256(&k, SECRET, err, sizeof err), 0);
    char *t = make(&k, NOW + 60, NULL);
    ck_assert_int_eq(verify(&k, t, &EX), HTTP_OK);
    free(t);
    /* exp: within the leeway passes, beyond it expires */
    t = make(&k, NOW - 20, NULL);
    ck_assert_int_eq(verify(&k, t, &EX), HTTP_OK);
    free(t);
    t = make(&k, NOW - 31, NULL);
    ck_assert_int_eq(verify(&k, t, &EX), HTTP_E_TOKEN_EXPIRED);
    free(t);
    /* nbf and iat in the future beyond the leeway */
    t = make(&k, NOW + 600, "\"nbf\":1700000100");
    ck_assert_int_eq(verify(&k, t, &EX), HTTP_E_INVALID_TOKEN);
    free(t);
    t = make(&k, NOW + 600, "\"nbf\":1700000020");
    ck_assert_int_eq(verify(&k, t, &EX), HTTP_OK);
    free(t);
    /* iss, aud */
    struct cp_jwt_expect other = EX;
    other.aud = "elsewhere";
    t = make(&k, NOW + 60, NULL);
    ck_assert_int_eq(verify(&k, t, &other), HTTP_E_INVALID_TOKEN);
    other = EX;
    other.iss = "someone";
    ck_assert_int_eq(verify(&k, t, &other), HTTP_E_INVALID_TOKEN);
    free(t);
    char *a = sign_raw(JWT_ALG_HS256, SECRET, (int)strlen(SECRET),
                       "{\"iss\":\"meetlite\",\"aud\":[\"x\",\"meetlite-api\"],\"sub\":\"u1\","
                       "\"exp\":1700000100}");
    ck_assert_int_eq(verify(&k, a, &EX), HTTP_OK);
    free(a);
    /* exp missing, or not a number */
    a = sign_raw(JWT_ALG_HS256, SECRET, (int)strlen(SECRET),
                 "{\"iss\":\"meetlite\",\"aud\":\"meetlite-api\",\"sub\":\"u1\"}");
    ck_assert_int_eq(verify(&k, a, &EX), HTTP_E_INVALID_TOKEN);
    free(a);
    a = sign_raw(
        JWT_ALG_HS256, SECRET, (int)strlen(SECRET),
        "{\"iss\":\"meetlite\",\"aud\":\"meetlite-api\",\"sub\":\"u1\",\"exp\":\"1800000000\"}");
    ck_assert_int_eq(verify(&k, a, &EX), HTTP_E_INVALID_TOKEN);
    free(a);
    cp_jwt_key_free(&k);
}
END_TEST

START_TEST(hs256_attacks)
{
    struct cp_jwt_key k;
    char err[200];
    ck_assert_int_eq(cp_jwt_key_hs256(&k, SECRET, err, sizeof err), 0);
    const char *claims = "{\"iss\":\"meetlite\",\"aud\":\"meetlite-api\",\"sub\":\"u1\","
                         "\"exp\":1700000100}";
    /* another HMAC algorithm with the right secret: the alg is pinned */
    char *t = sign_raw(JWT_ALG_HS512, SECRET, (int)strlen(SECRET), claims);
    ck_assert_int_eq(verify(&k, t, &EX), HTTP_E_INVALID_TOKEN);
    free(t);
    /* alg none */
    t = sign_raw(JWT_ALG_NONE, NULL, 0, claims);
    ck_assert_int_eq(verify(&k, t, &EX), HTTP_E_INVALID_TOKEN);
    free(t);
    /* tampered payload and signature */
    t = make(&k, NOW + 60, NULL);
    char *dot = strchr(t, '.');
    dot[2] = dot[2] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(verify(&k, t, &EX), HTTP_E_INVALID_TOKEN);
    free(t);
    t = make(&k, NOW + 60, NULL);
    size_t n = strlen(t);
    t[n - 2] = t[n - 2] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(verify(&k, t, &EX), HTTP_E_INVALID_TOKEN);
    t[n - 2] = 0;
    ck_assert_int_eq(verify(&k, t, &EX), HTTP_E_INVALID_TOKEN);
    free(t);
    ck_assert_int_eq(verify(&k, "", &EX), HTTP_E_INVALID_TOKEN);
    ck_assert_int_eq(verify(&k, "a.b.c", &EX), HTTP_E_INVALID_TOKEN);
    /* a key without bytes never reaches libjwt (which would check nothing) */
    struct cp_jwt_key empty;
    memset(&empty, 0, sizeof empty);
    empty.alg = JWT_ALG_HS256;
    t = make(&k, NOW + 60, NULL);
    ck_assert_int_eq(verify(&empty, t, &EX), HTTP_E_INVALID_TOKEN);
    free(t);
    cp_jwt_key_free(&k);
}
END_TEST

static char *pem_of(EVP_PKEY *p, bool priv, int *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (priv)
        PEM_write_bio_PrivateKey(b, p, NULL, NULL, 0, NULL, NULL);
    else
        PEM_write_bio_PUBKEY(b, p);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *out = calloc(1, (size_t)n + 1);
    memcpy(out, data, (size_t)n);
    *len = (int)n;
    BIO_free(b);
    return out;
}

START_TEST(es256_key)
{
    EVP_PKEY *p = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ck_assert_ptr_nonnull(p);
    int plen, publen;
    char *priv = pem_of(p, true, &plen), *pub = pem_of(p, false, &publen);
    char path[] = "/tmp/mljwtXXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, priv, (size_t)plen), plen);
    close(fd);
    struct cp_jwt_key k;
    char err[200];
    ck_assert_int_eq(cp_jwt_key_es256_file(&k, path, err, sizeof err), 0);
    unlink(path);
    ck_assert_int_eq(k.alg, JWT_ALG_ES256);
    ck_assert_str_eq((char *)k.verify, pub);
    char *t = make(&k, NOW + 60, NULL);
    ck_assert_int_eq(verify(&k, t, &EX), HTTP_OK);
    free(t);
    /* alg confusion: HS256 with the public key's PEM as the HMAC secret */
    t = sign_raw(
        JWT_ALG_HS256, pub, publen,
        "{\"iss\":\"meetlite\",\"aud\":\"meetlite-api\",\"sub\":\"u1\",\"exp\":1700000100}");
    ck_assert_int_eq(verify(&k, t, &EX), HTTP_E_INVALID_TOKEN);
    free(t);
    cp_jwt_key_free(&k);
    ck_assert_int_eq(cp_jwt_key_es256_file(&k, "/nonexistent.pem", err, sizeof err), -1);
    free(priv);
    free(pub);
    EVP_PKEY_free(p);
}
END_TEST

static void b64url(const uint8_t *in, size_t n, char *out, size_t outlen)
{
    size_t m = ml_base64_encode(in, n, out, outlen);
    for (size_t i = 0; i < m; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    while (m && out[m - 1] == '=')
        out[--m] = 0;
}

static void bn_b64(EVP_PKEY *p, const char *name, char *out, size_t outlen, int pad_to)
{
    BIGNUM *bn = NULL;
    ck_assert(EVP_PKEY_get_bn_param(p, name, &bn));
    uint8_t buf[600];
    int n = pad_to ? BN_bn2binpad(bn, buf, pad_to) : BN_bn2bin(bn, buf);
    b64url(buf, (size_t)n, out, outlen);
    BN_free(bn);
}

START_TEST(jwks)
{
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ck_assert(rsa && ec);
    char n[400], e[16], x[64], y[64], doc[2048];
    bn_b64(rsa, OSSL_PKEY_PARAM_RSA_N, n, sizeof n, 0);
    bn_b64(rsa, OSSL_PKEY_PARAM_RSA_E, e, sizeof e, 0);
    bn_b64(ec, OSSL_PKEY_PARAM_EC_PUB_X, x, sizeof x, 32);
    bn_b64(ec, OSSL_PKEY_PARAM_EC_PUB_Y, y, sizeof y, 32);
    ml_snprintf(
        doc, sizeof doc,
        "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r1\",\"alg\":\"RS256\",\"n\":\"%s\",\"e\":\"%s\"},"
        "{\"kty\":\"EC\",\"kid\":\"e1\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"},"
        "{\"kty\":\"oct\",\"kid\":\"s\",\"k\":\"AAAA\"},"
        "{\"kty\":\"EC\",\"kid\":\"e2\",\"crv\":\"P-384\",\"x\":\"%s\",\"y\":\"%s\"}]}",
        n, e, x, y, x, y);
    struct cp_jwks set;
    char err[200];
    ck_assert_int_eq(cp_jwks_parse(&set, doc, err, sizeof err), 0);
    ck_assert_int_eq(set.n, 2); /* oct and P-384 skipped */
    int rl, el;
    char *rpriv = pem_of(rsa, true, &rl), *epriv = pem_of(ec, true, &el);
    struct cp_jwt_expect ex = {"https://iss", "client", 30, NOW};
    const char *claims =
        "{\"iss\":\"https://iss\",\"aud\":\"client\",\"sub\":\"u1\",\"exp\":1700000100}";
    jwt_t *j = NULL;
    /* RS256 and ES256, picked by kid */
    jwt_t *w;
    ck_assert_int_eq(jwt_new(&w), 0);
    jwt_add_grants_json(w, claims);
    jwt_add_header(w, "kid", "r1");
    jwt_set_alg(w, JWT_ALG_RS256, (unsigned char *)rpriv, rl);
    char *t = jwt_encode_str(w);
    jwt_free(w);
    ck_assert_int_eq(cp_jwks_verify(&set, t, &ex, &j), HTTP_OK);
    jwt_free(j);
    free(t);
    ck_assert_int_eq(jwt_new(&w), 0);
    jwt_add_grants_json(w, claims);
    jwt_add_header(w, "kid", "e1");
    jwt_set_alg(w, JWT_ALG_ES256, (unsigned char *)epriv, el);
    t = jwt_encode_str(w);
    jwt_free(w);
    ck_assert_int_eq(cp_jwks_verify(&set, t, &ex, &j), HTTP_OK);
    jwt_free(j);
    free(t);
    /* RS256 claiming the EC key's kid; unknown kid; HS256 with the RSA public PEM */
    ck_assert_int_eq(jwt_new(&w), 0);
    jwt_add_grants_json(w, claims);
    jwt_add_header(w, "kid", "e1");
    jwt_set_alg(w, JWT_ALG_RS256, (unsigned char *)rpriv, rl);
    t = jwt_encode_str(w);
    jwt_free(w);
    ck_assert_int_eq(cp_jwks_verify(&set, t, &ex, &j), HTTP_E_INVALID_TOKEN);
    free(t);
    ck_assert_int_eq(jwt_new(&w), 0);
    jwt_add_grants_json(w, claims);
    jwt_add_header(w, "kid", "zz");
    jwt_set_alg(w, JWT_ALG_RS256, (unsigned char *)rpriv, rl);
    t = jwt_encode_str(w);
    jwt_free(w);
    ck_assert_int_eq(cp_jwks_verify(&set, t, &ex, &j), HTTP_E_INVALID_TOKEN);
    free(t);
    ck_assert_int_eq(jwt_new(&w), 0);
    jwt_add_grants_json(w, claims);
    jwt_add_header(w, "kid", "r1");
    jwt_set_alg(w, JWT_ALG_HS256, set.keys[0].verify, set.keys[0].verify_len);
    t = jwt_encode_str(w);
    jwt_free(w);
    ck_assert_int_eq(cp_jwks_verify(&set, t, &ex, &j), HTTP_E_INVALID_TOKEN);
    free(t);
    cp_jwks_free(&set);
    ck_assert_int_eq(cp_jwks_parse(&set, "{\"keys\":[]}", err, sizeof err), -1);
    ck_assert_int_eq(cp_jwks_parse(&set, "not json", err, sizeof err), -1);
    free(rpriv);
    free(epriv);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}
END_TEST

/* The Cache-Control of an issuer's JWKS answer: how long the fetcher keeps the set. */
static long long age(const char *v)
{
    return cp_jwks_max_age(v, strlen(v));
}

START_TEST(jwks_cache_control)
{
    ck_assert_int_eq(age(" public, max-age=21600, must-revalidate, no-transform\r\n"), 21600);
    ck_assert_int_eq(age("MAX-AGE=60"), 60);
    ck_assert_int_eq(age(" private"), -1);
    ck_assert_int_eq(age(""), -1);
    ck_assert_int_eq(age(" s-maxage=100"), -1);  /* another directive */
    ck_assert_int_eq(age(" x-max-age=100"), -1); /* not inside another name */
    ck_assert_int_eq(age(" max-age=12abc"), -1); /* digits only */
    ck_assert_int_eq(age(" max-age=-5"), -1);
    ck_assert_int_eq(age(" max-age=99999999999999"), -1); /* more than ten digits */
    ck_assert_int_eq(age(" max-age=9999999999"), CP_JWKS_AGE_MAX);
    ck_assert_int_eq(age(" no-cache, max-age=600"), 0);
    ck_assert_int_eq(age(" max-age=600, no-store"), 0);
}
END_TEST

static Suite *jwt_suite(void)
{
    Suite *s = suite_create("jwt");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, hs256_roundtrip_and_claims);
    tcase_add_test(tc, hs256_attacks);
    tcase_add_test(tc, es256_key);
    tcase_add_test(tc, jwks);
    tcase_add_test(tc, jwks_cache_control);
    suite_add_tcase(s, tc);
    return s;
}

ML_CHECK_MAIN(jwt_suite)
