/* libFuzzer target for the JWKS document of an OpenID Connect provider (fetched or a file), and
 * the Cache-Control value its answer carries (cp_jwks_max_age):
 * cp_jwks_parse turning RSA and P-256 keys into PEM, skipping what it does not take, then the
 * set used to pick a key for a token the way cp_jwks_verify does (by kid, or the only key of
 * the token's type). */
#include "fuzz_common.h"

#include "control/cp-int.h"

/* Tokens with a fake signature, for key selection by alg and kid. */
static const char *const tokens[] = {
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImZ1enotZWMiLCJ0eXAiOiJKV1QifQ.e30.AAAA",
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImZ1enotcnNhIiwidHlwIjoiSldUIn0.e30.AAAA",
    "eyJhbGciOiJSUzI1NiJ9.e30.AAAA",
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ml_log_set_level(ML_LOG_ERROR);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    char *text = fuzz_strndup(data, size);
    /* the same bytes as a Cache-Control value from the issuer (cp-jwks.c) */
    long long age = cp_jwks_max_age((const char *)data, size);
    FUZZ_ASSERT(age >= -1 && age <= CP_JWKS_AGE_MAX);
    struct cp_jwks set;
    char err[200] = "";
    if (cp_jwks_parse(&set, text, err, sizeof err) == 0) {
        FUZZ_ASSERT(set.n >= 1 && set.n <= 64);
        for (size_t i = 0; i < set.n; i++) {
            const struct cp_jwt_key *k = &set.keys[i];
            FUZZ_ASSERT(k->alg == JWT_ALG_RS256 || k->alg == JWT_ALG_ES256);
            FUZZ_ASSERT(k->verify && k->verify_len > 0 && !k->sign);
            FUZZ_ASSERT(strlen((const char *)k->verify) == (size_t)k->verify_len);
            FUZZ_ASSERT(!strncmp((const char *)k->verify, "-----BEGIN PUBLIC KEY-----", 26));
            FUZZ_ASSERT(memchr(k->kid, 0, sizeof k->kid) != NULL);
        }
        const struct cp_jwt_expect ex = {NULL, NULL, 0, 1765000000};
        for (size_t i = 0; i < ML_ARRAY_LEN(tokens); i++) {
            jwt_t *j = NULL;
            /* the signatures are fake: selection runs, verification refuses */
            FUZZ_ASSERT(cp_jwks_verify(&set, tokens[i], &ex, &j) == HTTP_E_INVALID_TOKEN);
            FUZZ_ASSERT(j == NULL);
        }
        cp_jwks_free(&set);
        FUZZ_ASSERT(set.keys == NULL && set.n == 0);
    } else {
        FUZZ_ASSERT(err[0] && memchr(err, 0, sizeof err));
        FUZZ_ASSERT(set.keys == NULL && set.n == 0);
    }
    free(text);
    return 0;
}
