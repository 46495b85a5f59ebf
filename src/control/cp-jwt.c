/* JSON Web Tokens on libjwt 1.10, with what it leaves out: the algorithm pinned to the key
 * (libjwt trusts the header's alg), exp/nbf/iat/iss/aud checked here (libjwt checks none), and
 * JWKS keys (RSA, P-256) turned into PEM with OpenSSL 3 for OpenID Connect ID tokens. */
#include "config.h"

#include "control/cp-int.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

void cp_jwt_key_free(struct cp_jwt_key *k)
{
    if (k->verify && k->verify != k->sign) {
        ml_wipe(k->verify, (size_t)k->verify_len);
        free(k->verify);
    }
    if (k->sign) {
        ml_wipe(k->sign, (size_t)k->sign_len);
        free(k->sign);
    }
    ml_hmac_free(k->hs256);
    memset(k, 0, sizeof *k);
}

int cp_jwt_key_hs256(struct cp_jwt_key *k, const char *secret, char *err, size_t errlen)
{
    memset(k, 0, sizeof *k);
    size_t n = secret ? strlen(secret) : 0;
    if (n < CP_JWT_SECRET_MIN)
        return ml_err(err, errlen, "auth.jwt-secret must be at least %d bytes long",
                      CP_JWT_SECRET_MIN);
    k->sign = (unsigned char *)strdup(secret);
    if (!k->sign)
        return ml_err(err, errlen, "out of memory");
    k->verify = k->sign;
    k->sign_len = k->verify_len = (int)n;
    k->alg = JWT_ALG_HS256;
    k->hs256 = ml_hmac_new("SHA256", secret, n);
    if (!k->hs256) {
        cp_jwt_key_free(k);
        return ml_err(err, errlen, "cannot prepare HMAC-SHA256 for auth.jwt-secret");
    }
    return 0;
}

/* PEM of the public half of pkey, malloc'd and NUL-terminated. */
static unsigned char *pubkey_pem(EVP_PKEY *pkey, int *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    unsigned char *out = NULL;
    if (b && PEM_write_bio_PUBKEY(b, pkey)) {
        char *data;
        long n = BIO_get_mem_data(b, &data);
        out = malloc((size_t)n + 1);
        if (out) {
            memcpy(out, data, (size_t)n);
            out[n] = 0;
            *len = (int)n;
        }
    }
    BIO_free(b);
    return out;
}

int cp_jwt_key_es256_file(struct cp_jwt_key *k, const char *path, char *err, size_t errlen)
{
    memset(k, 0, sizeof *k);
    FILE *f = fopen(path, "rb");
    if (!f)
        return ml_err(err, errlen, "auth.jwt-key: cannot open %s: %s", path, strerror(errno));
    char *buf = calloc(1, 16385);
    size_t n = buf ? fread(buf, 1, 16384, f) : 0;
    fclose(f);
    if (!buf)
        return ml_err(err, errlen, "out of memory");
    BIO *b = BIO_new_mem_buf(buf, (int)n);
    EVP_PKEY *pkey = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    int rc = 0;
    if (!pkey) {
        rc = ml_err(err, errlen, "auth.jwt-key: %s holds no PEM private key", path);
    } else if (!EVP_PKEY_is_a(pkey, "EC") || EVP_PKEY_get_bits(pkey) != 256) {
        rc = ml_err(err, errlen, "auth.jwt-key: %s is not a P-256 (ES256) key", path);
    } else {
        k->alg = JWT_ALG_ES256;
        k->sign = (unsigned char *)buf;
        k->sign_len = (int)n;
        buf = NULL;
        k->verify = pubkey_pem(pkey, &k->verify_len);
        if (!k->verify)
            rc = ml_err(err, errlen, "auth.jwt-key: cannot derive the public key");
    }
    EVP_PKEY_free(pkey);
    if (buf) {
        ml_wipe(buf, 16385);
        free(buf);
    }
    if (rc < 0)
        cp_jwt_key_free(k);
    return rc;
}

/* HS256 without libjwt: its encoder parses the claims' JSON again and writes it again, which
 * cost a join three times the HMAC (callgrind, tests/bench/bench-control.sh INSTR=yes). The
 * header is the one libjwt writes. */
static char *sign_hs256(const struct cp_jwt_key *k, const char *claims)
{
    static const char head[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    size_t n = strlen(claims);
    if (n > CP_JWT_MAX)
        return NULL;
    size_t cap = 4 * ((sizeof head + 2) / 3) + 1 + 4 * ((n + 2) / 3) + 1 + 44;
    char *tok = malloc(cap);
    if (!tok)
        return NULL;
    size_t at = ml_base64url_encode((const uint8_t *)head, sizeof head - 1, tok, cap);
    tok[at++] = '.';
    at += ml_base64url_encode((const uint8_t *)claims, n, tok + at, cap - at);
    uint8_t mac[EVP_MAX_MD_SIZE];
    /* every HS256 key has its template (cp_jwt_key_hs256) */
    if (!k->hs256 || ml_hmac_run(k->hs256, tok, at, mac, sizeof mac) != 32) {
        free(tok);
        return NULL;
    }
    tok[at++] = '.';
    ml_base64url_encode(mac, 32, tok + at, cap - at);
    return tok;
}

char *cp_jwt_sign_text(const struct cp_jwt_key *k, const char *claims)
{
    if (!claims)
        return NULL;
    if (k->alg == JWT_ALG_HS256)
        return sign_hs256(k, claims);
    jwt_t *j = NULL;
    char *tok = NULL;
    if (jwt_new(&j) == 0 && jwt_add_grants_json(j, claims) == 0 &&
        jwt_set_alg(j, k->alg, k->sign, k->sign_len) == 0)
        tok = jwt_encode_str(j);
    jwt_free(j);
    return tok;
}

char *cp_jwt_sign(const struct cp_jwt_key *k, json_t *claims)
{
    char *grants = json_dumps(claims, JSON_COMPACT);
    char *tok = cp_jwt_sign_text(k, grants);
    free(grants);
    return tok;
}

/* base64url (no padding) to bytes; -1 on bad input. */
static long b64url_decode(const char *in, size_t n, uint8_t *out, size_t outlen)
{
    char tmp[CP_JWT_MAX + 4];
    if (n > CP_JWT_MAX)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (c == '+' || c == '/' || c == '=')
            return -1;
        tmp[i] = c;
    }
    while (n % 4)
        tmp[n++] = '=';
    return ml_base64_decode(tmp, n, out, outlen);
}

int cp_jwt_peek(const char *token, char *alg, size_t alen, char *kid, size_t klen)
{
    const char *dot = token ? strchr(token, '.') : NULL;
    uint8_t hdr[1024];
    if (!dot || dot == token || (size_t)(dot - token) > 1300)
        return -1;
    long n = b64url_decode(token, (size_t)(dot - token), hdr, sizeof hdr - 1);
    if (n <= 0)
        return -1;
    json_t *h = json_loadb((const char *)hdr, (size_t)n, 0, NULL);
    int rc = -1;
    if (json_is_object(h)) {
        const char *a = json_string_value(json_object_get(h, "alg"));
        const char *id = json_string_value(json_object_get(h, "kid"));
        if (a) {
            ml_strlcpy(alg, a, alen);
            ml_strlcpy(kid, id ? id : "", klen);
            rc = 0;
        }
    }
    json_decref(h);
    return rc;
}

/* A numeric claim: 1 present and valid (*v), 0 absent, -1 present but not a positive integer.
 * libjwt answers 0 with errno 0 for a claim of another type (a string "17", a real 1.5). */
static int int_claim(jwt_t *j, const char *name, long long *v)
{
    errno = 0;
    long x = jwt_get_grant_int(j, name);
    if (errno == ENOENT)
        return 0;
    if (errno != 0 || x <= 0)
        return -1;
    *v = x;
    return 1;
}

static bool aud_matches(jwt_t *j, const char *want)
{
    const char *one = jwt_get_grant(j, "aud");
    if (one)
        return strcmp(one, want) == 0;
    char *s = jwt_get_grants_json(j, "aud");
    if (!s)
        return false;
    json_t *x = json_loads(s, JSON_DECODE_ANY, NULL);
    free(s);
    bool ok = false;
    if (json_is_string(x)) {
        ok = strcmp(json_string_value(x), want) == 0;
    } else if (json_is_array(x)) {
        size_t i;
        json_t *v;
        json_array_foreach(x, i, v) if (json_is_string(v) && !strcmp(json_string_value(v), want))
            ok = true;
    }
    json_decref(x);
    return ok;
}

enum http_err cp_jwt_verify(const struct cp_jwt_key *k, const char *token,
                            const struct cp_jwt_expect *ex, jwt_t **out)
{
    char alg[16], kid[128];
    jwt_t *j = NULL;
    *out = NULL;
    if (!k->verify || k->verify_len <= 0 || !token)
        return HTTP_E_INVALID_TOKEN; /* never let libjwt run without a key: it checks nothing */
    size_t n = strnlen(token, CP_JWT_MAX + 1);
    if (n == 0 || n > CP_JWT_MAX)
        return HTTP_E_INVALID_TOKEN;
    /* the header's alg must be the key's before libjwt sees the token ... */
    if (cp_jwt_peek(token, alg, sizeof alg, kid, sizeof kid) < 0 || jwt_str_alg(alg) != k->alg)
        return HTTP_E_INVALID_TOKEN;
    if (jwt_decode(&j, token, k->verify, k->verify_len) != 0 || !j)
        return HTTP_E_INVALID_TOKEN;
    /* ... and after (what libjwt verified with) */
    if (jwt_get_alg(j) != k->alg)
        goto invalid;
    long long exp = 0, nbf = 0, iat = 0;
    if (int_claim(j, "exp", &exp) != 1)
        goto invalid;
    int has_nbf = int_claim(j, "nbf", &nbf), has_iat = int_claim(j, "iat", &iat);
    if (has_nbf < 0 || has_iat < 0)
        goto invalid;
    if (has_nbf && ex->now + ex->leeway_s < nbf)
        goto invalid;
    if (has_iat && ex->now + ex->leeway_s < iat)
        goto invalid;
    if (ex->iss) {
        const char *iss = jwt_get_grant(j, "iss");
        if (!iss || strcmp(iss, ex->iss) != 0)
            goto invalid;
    }
    if (ex->aud && !aud_matches(j, ex->aud))
        goto invalid;
    if (ex->now > exp + ex->leeway_s) {
        jwt_free(j);
        return HTTP_E_TOKEN_EXPIRED;
    }
    *out = j;
    return HTTP_OK;
invalid:
    jwt_free(j);
    return HTTP_E_INVALID_TOKEN;
}

/* ---------------------------------------------------------------- JWKS */

static BIGNUM *b64url_bn(const char *s)
{
    uint8_t buf[1024];
    long n = s ? b64url_decode(s, strlen(s), buf, sizeof buf) : -1;
    return n > 0 ? BN_bin2bn(buf, (int)n, NULL) : NULL;
}

static EVP_PKEY *jwk_rsa(json_t *jwk)
{
    BIGNUM *n = b64url_bn(json_string_value(json_object_get(jwk, "n")));
    BIGNUM *e = b64url_bn(json_string_value(json_object_get(jwk, "e")));
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    if (n && e && bld && BN_num_bits(n) >= 2048 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) &&
        (params = OSSL_PARAM_BLD_to_param(bld)) &&
        (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) && EVP_PKEY_fromdata_init(ctx) > 0)
        if (EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
            pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pkey;
}

static EVP_PKEY *jwk_ec(json_t *jwk)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    const char *xs = json_string_value(json_object_get(jwk, "x"));
    const char *ys = json_string_value(json_object_get(jwk, "y"));
    uint8_t pt[65], x[64], y[64];
    if (!crv || strcmp(crv, "P-256") != 0 || !xs || !ys)
        return NULL;
    if (b64url_decode(xs, strlen(xs), x, sizeof x) != 32 ||
        b64url_decode(ys, strlen(ys), y, sizeof y) != 32)
        return NULL;
    pt[0] = 4;
    memcpy(pt + 1, x, 32);
    memcpy(pt + 33, y, 32);
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

void cp_jwks_free(struct cp_jwks *set)
{
    for (size_t i = 0; i < set->n; i++)
        cp_jwt_key_free(&set->keys[i]);
    free(set->keys);
    set->keys = NULL;
    set->n = 0;
}

int cp_jwks_parse(struct cp_jwks *set, const char *text, char *err, size_t errlen)
{
    json_error_t je;
    memset(set, 0, sizeof *set);
    json_t *root = json_loads(text, 0, &je);
    json_t *keys = json_object_get(root, "keys");
    if (!json_is_array(keys) || json_array_size(keys) == 0 || json_array_size(keys) > 64) {
        json_decref(root);
        return ml_err(err, errlen, "not a JWKS document with 1 to 64 keys");
    }
    set->keys = calloc(json_array_size(keys), sizeof *set->keys);
    if (!set->keys) {
        json_decref(root);
        return ml_err(err, errlen, "out of memory");
    }
    size_t i;
    json_t *jwk;
    json_array_foreach(keys, i, jwk)
    {
        const char *kty = json_string_value(json_object_get(jwk, "kty"));
        const char *use = json_string_value(json_object_get(jwk, "use"));
        const char *alg = json_string_value(json_object_get(jwk, "alg"));
        const char *kid = json_string_value(json_object_get(jwk, "kid"));
        if (use && strcmp(use, "sig") != 0)
            continue;
        EVP_PKEY *pkey = NULL;
        jwt_alg_t a = JWT_ALG_INVAL;
        if (kty && !strcmp(kty, "RSA") && (!alg || !strcmp(alg, "RS256"))) {
            pkey = jwk_rsa(jwk);
            a = JWT_ALG_RS256;
        } else if (kty && !strcmp(kty, "EC") && (!alg || !strcmp(alg, "ES256"))) {
            pkey = jwk_ec(jwk);
            a = JWT_ALG_ES256;
        }
        if (!pkey)
            continue; /* a key type or algorithm we do not take: skipped, not fatal */
        struct cp_jwt_key *k = &set->keys[set->n];
        k->alg = a;
        k->verify = pubkey_pem(pkey, &k->verify_len);
        EVP_PKEY_free(pkey);
        if (!k->verify)
            continue;
        ml_strlcpy(k->kid, kid ? kid : "", sizeof k->kid);
        set->n++;
    }
    json_decref(root);
    if (!set->n) {
        cp_jwks_free(set);
        return ml_err(err, errlen, "no usable RS256 or ES256 (P-256) key in the JWKS");
    }
    return 0;
}

int cp_jwks_load(struct cp_jwks *set, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ml_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
    char *buf = calloc(1, 262145);
    if (buf && fread(buf, 1, 262144, f) == 0 && ferror(f)) {
        free(buf);
        fclose(f);
        return ml_err(err, errlen, "cannot read %s", path);
    }
    fclose(f);
    if (!buf)
        return ml_err(err, errlen, "out of memory");
    char e2[200];
    int rc = cp_jwks_parse(set, buf, e2, sizeof e2);
    free(buf);
    if (rc < 0)
        return ml_err(err, errlen, "%s: %s", path, e2);
    return 0;
}

enum http_err cp_jwks_verify(const struct cp_jwks *set, const char *token,
                             const struct cp_jwt_expect *ex, jwt_t **out)
{
    char alg[16], kid[128];
    *out = NULL;
    if (!token || strnlen(token, CP_JWT_MAX + 1) > CP_JWT_MAX ||
        cp_jwt_peek(token, alg, sizeof alg, kid, sizeof kid) < 0)
        return HTTP_E_INVALID_TOKEN;
    jwt_alg_t a = jwt_str_alg(alg);
    const struct cp_jwt_key *k = NULL;
    size_t same_type = 0;
    for (size_t i = 0; i < set->n; i++) {
        if (set->keys[i].alg != a)
            continue;
        same_type++;
        if (*kid && !strcmp(set->keys[i].kid, kid))
            k = &set->keys[i];
        else if (!*kid && same_type == 1)
            k = &set->keys[i];
    }
    if (!k || (!*kid && same_type != 1))
        return HTTP_E_INVALID_TOKEN;
    return cp_jwt_verify(k, token, ex, out);
}
