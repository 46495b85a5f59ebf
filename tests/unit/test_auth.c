/* Unit tests of src/turn/auth.c and src/turn/ratelimit.c: nonces and the proof of an address,
 * REST and static credentials, PASSWORD-ALGORITHMS, reload under load, asynchronous sources,
 * revocation, the budget of unauthenticated answers. */
#include "config.h"

#include "turn/turn-int.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mlcheck.h"

#define REALM "example.org"
#define NOW 1699999000LL /* before the REST expiry used below */
#define EXPIRY 1700000000LL

/* Computed once, independently, with
 *   printf %s "$user" | openssl dgst -sha1 -hmac "$secret" -binary | base64 */
#define SECRET1 "meetlite-secret-1"
#define SECRET2 "meetlite-secret-2"
#define SECRET3 "meetlite-secret-3"
#define USER_TS_ID "1700000000:alice"
#define PASS_TS_ID_1 "HqlCFadgIGPUhHcXzB/3yG2wNKw="
#define PASS_TS_ID_2 "52ia8JK5+AF3SWWx11diERoUFWY="
#define PASS_TS_ID_3 "1x8og8E6OS0UtaliOf2iGmovLig="
#define USER_ID_TS "bob:1700000000"
#define PASS_ID_TS_1 "fLstlic/9gb2Mua0K2hKLz4kq+Q="
/* printf %s "carol:example.org:carol-pass" | openssl dgst -md5 -hex */
#define CAROL_KEY "b3e8097adf7fa051a7a8d05bb0f15c99"

static const uint8_t tid[STUN_TID_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
static const uint8_t our_algs[8] = {0, 2, 0, 0, 0, 1, 0, 0};

static struct turn_config config(const char *secrets, const char *users)
{
    struct turn_config c;
    memset(&c, 0, sizeof c);
    c.realm = (char *)REALM;
    c.auth_secret = (char *)secrets;
    c.static_users = (char *)users;
    c.nonce_lifetime_s = 600;
    return c;
}

static struct turn_auth *auth_new(const char *secrets, const char *users)
{
    char err[256] = "";
    struct turn_config c = config(secrets, users);
    struct turn_auth *a = turn_auth_new(&c, err, sizeof err);
    ck_assert_msg(a != NULL, "turn_auth_new: %s", err);
    return a;
}

static struct sockaddr_storage addr(const char *text)
{
    struct sockaddr_storage ss;
    socklen_t len;
    ck_assert_int_eq(ml_addr_parse(text, 0, &ss, &len), 0);
    return ss;
}
#define SA(ss) ((const struct sockaddr *)&(ss))

/* A request as the test wants it; NULL fields are left out. */
struct req {
    const char *user, *realm, *nonce;
    const uint8_t *key; /* NULL: no integrity attribute */
    size_t keylen;
    bool sha256;             /* MESSAGE-INTEGRITY-SHA256 instead of MESSAGE-INTEGRITY */
    uint16_t alg;            /* PASSWORD-ALGORITHM; 0: none */
    bool algs;               /* PASSWORD-ALGORITHMS */
    const uint8_t *algs_val; /* its value; NULL: ours */
    size_t algs_len;
};

/* Builds q with the codec's builder into buf and parses it into m. */
static void build(const struct req *q, uint8_t *buf, size_t cap, struct stun_msg *m)
{
    struct stun_builder b;
    stun_build_init(&b, buf, cap, TURN_ALLOCATE, STUN_REQUEST, tid);
    stun_build_u32(&b, STUN_ATTR_REQUESTED_TRANSPORT, 17u << 24);
    if (q->user)
        stun_build_attr(&b, STUN_ATTR_USERNAME, q->user, strlen(q->user));
    if (q->realm)
        stun_build_attr(&b, STUN_ATTR_REALM, q->realm, strlen(q->realm));
    if (q->nonce)
        stun_build_attr(&b, STUN_ATTR_NONCE, q->nonce, strlen(q->nonce));
    if (q->algs)
        stun_build_attr(&b, STUN_ATTR_PASSWORD_ALGORITHMS, q->algs_val ? q->algs_val : our_algs,
                        q->algs_val ? q->algs_len : sizeof our_algs);
    if (q->alg) {
        uint8_t v[4] = {(uint8_t)(q->alg >> 8), (uint8_t)q->alg, 0, 0};
        stun_build_attr(&b, STUN_ATTR_PASSWORD_ALGORITHM, v, sizeof v);
    }
    if (q->key && q->sha256)
        stun_build_integrity_sha256(&b, q->key, q->keylen);
    else if (q->key)
        stun_build_integrity(&b, q->key, q->keylen);
    size_t n = stun_build_finish(&b);
    ck_assert_uint_gt(n, 0);
    ck_assert_int_eq(stun_msg_parse(m, buf, n, NULL), 0);
}

static enum turn_auth_result check(struct turn_auth *a, const struct req *q,
                                   const struct sockaddr *client, int64_t now, bool expiry,
                                   struct turn_cred *cred)
{
    uint8_t buf[1024];
    struct stun_msg m;
    build(q, buf, sizeof buf, &m);
    return turn_auth_check(a, &m, client, now, expiry, cred);
}

static size_t key_of(const char *user, const char *pass, bool sha256, uint8_t *key)
{
    if (sha256) {
        ck_assert_int_eq(
            stun_key_sha256(user, strlen(user), REALM, strlen(REALM), pass, strlen(pass), key), 0);
        return STUN_SHA256_LEN;
    }
    ck_assert_int_eq(
        stun_key_md5(user, strlen(user), REALM, strlen(REALM), pass, strlen(pass), key), 0);
    return STUN_MD5_LEN;
}

/* The usual client: a fresh nonce for client at now, MESSAGE-INTEGRITY with the MD5 key. */
static enum turn_auth_result login(struct turn_auth *a, const char *user, const char *pass,
                                   const struct sockaddr *client, int64_t now, bool expiry,
                                   struct turn_cred *cred)
{
    char nonce[TURN_NONCE_MAX];
    uint8_t key[STUN_MAX_KEY_LEN];
    ck_assert_uint_gt(turn_auth_nonce(a, client, now, nonce, sizeof nonce), 0);
    struct req q = {.user = user, .realm = REALM, .nonce = nonce};
    q.keylen = key_of(user, pass, false, key);
    q.key = key;
    return check(a, &q, client, now, expiry, cred);
}

/* ------------------------------------------------------------------ nonce and framing */

START_TEST(no_integrity_challenges)
{
    struct turn_auth *a = auth_new(NULL, "dave:dave-pass");
    struct sockaddr_storage c = addr("192.0.2.1:5000");
    struct turn_cred cred;
    struct req q = {.user = "dave", .realm = REALM, .nonce = "whatever"};
    ck_assert_int_eq(check(a, &q, SA(c), NOW, true, &cred), TURN_AUTH_CHALLENGE);
    struct req bare = {0};
    ck_assert_int_eq(check(a, &bare, SA(c), NOW, true, &cred), TURN_AUTH_CHALLENGE);
    turn_auth_free(a);
}
END_TEST

START_TEST(nonce_format_and_round_trip)
{
    struct turn_auth *a = auth_new(NULL, "dave:dave-pass");
    struct sockaddr_storage c = addr("192.0.2.1:5000");
    char nonce[TURN_NONCE_MAX];
    size_t n = turn_auth_nonce(a, SA(c), 0x12345678, nonce, sizeof nonce);
    ck_assert_uint_eq(n, 37);
    ck_assert_uint_eq(strlen(nonce), n);
    ck_assert_int_eq(strncmp(nonce, "obMatJos2AAAB12345678", 21), 0);
    for (size_t i = 21; i < n; i++)
        ck_assert(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                         nonce[i]) != NULL);
    ck_assert_uint_eq(turn_auth_nonce(a, SA(c), NOW, nonce, 37), 0); /* no room for the NUL */
    ck_assert_str_eq(turn_auth_realm(a), REALM);

    struct turn_cred cred;
    ck_assert_int_eq(login(a, "dave", "dave-pass", SA(c), NOW, true, &cred), TURN_AUTH_OK);
    ck_assert_str_eq(cred.id, "dave");
    ck_assert_str_eq(cred.username, "dave");
    ck_assert_int_eq(cred.expiry_s, 0);
    ck_assert(!cred.sha256);
    ck_assert_uint_eq(cred.keylen, STUN_MD5_LEN);

    struct sockaddr_storage c6 = addr("[2001:db8::1]:6000");
    ck_assert_int_eq(login(a, "dave", "dave-pass", SA(c6), NOW, true, &cred), TURN_AUTH_OK);
    turn_auth_free(a);
}
END_TEST

/* A request from client carrying nonce, checked at now. */
static enum turn_auth_result with_nonce(struct turn_auth *a, const char *nonce,
                                        const struct sockaddr *client, int64_t now)
{
    uint8_t key[STUN_MAX_KEY_LEN];
    struct turn_cred cred;
    struct req q = {.user = "dave", .realm = REALM, .nonce = nonce};
    q.keylen = key_of("dave", "dave-pass", false, key);
    q.key = key;
    return check(a, &q, client, now, true, &cred);
}

START_TEST(nonce_bound_to_client)
{
    struct turn_auth *a = auth_new(NULL, "dave:dave-pass");
    struct sockaddr_storage c = addr("192.0.2.1:5000"), other_ip = addr("192.0.2.2:5000"),
                            other_port = addr("192.0.2.1:5001"), v6 = addr("[2001:db8::1]:5000");
    char nonce[TURN_NONCE_MAX];
    ck_assert_uint_gt(turn_auth_nonce(a, SA(c), NOW, nonce, sizeof nonce), 0);
    ck_assert_int_eq(with_nonce(a, nonce, SA(c), NOW), TURN_AUTH_OK);
    ck_assert_int_eq(with_nonce(a, nonce, SA(other_ip), NOW), TURN_AUTH_STALE);
    ck_assert_int_eq(with_nonce(a, nonce, SA(other_port), NOW), TURN_AUTH_STALE);
    ck_assert_int_eq(with_nonce(a, nonce, SA(v6), NOW), TURN_AUTH_STALE);
    turn_auth_free(a);
}
END_TEST

START_TEST(nonce_lifetime)
{
    struct turn_auth *a = auth_new(NULL, "dave:dave-pass");
    struct sockaddr_storage c = addr("192.0.2.1:5000");
    char nonce[TURN_NONCE_MAX];
    ck_assert_uint_gt(turn_auth_nonce(a, SA(c), NOW, nonce, sizeof nonce), 0);
    ck_assert_int_eq(with_nonce(a, nonce, SA(c), NOW + 600), TURN_AUTH_OK);
    ck_assert_int_eq(with_nonce(a, nonce, SA(c), NOW + 601), TURN_AUTH_STALE);
    ck_assert_int_eq(with_nonce(a, nonce, SA(c), NOW - 60), TURN_AUTH_OK); /* clock skew */
    ck_assert_int_eq(with_nonce(a, nonce, SA(c), NOW - 61), TURN_AUTH_STALE);
    turn_auth_free(a);
}
END_TEST

START_TEST(nonce_tampered)
{
    struct turn_auth *a = auth_new(NULL, "dave:dave-pass");
    struct sockaddr_storage c = addr("192.0.2.1:5000");
    char nonce[TURN_NONCE_MAX], bad[TURN_NONCE_MAX];
    size_t n = turn_auth_nonce(a, SA(c), NOW, nonce, sizeof nonce);
    /* every single character changed, in turn */
    for (size_t i = 0; i < n; i++) {
        memcpy(bad, nonce, n + 1);
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        ck_assert_int_eq(with_nonce(a, bad, SA(c), NOW), TURN_AUTH_STALE);
    }
    memcpy(bad, nonce, n + 1);
    bad[n - 1] = 0; /* shorter */
    ck_assert_int_eq(with_nonce(a, bad, SA(c), NOW), TURN_AUTH_STALE);
    ck_assert_int_eq(with_nonce(a, "obMatJos2AAAB", SA(c), NOW), TURN_AUTH_STALE);
    /* another server's key */
    struct turn_auth *b = auth_new(NULL, "dave:dave-pass");
    ck_assert_uint_eq(turn_auth_nonce(b, SA(c), NOW, bad, sizeof bad), n);
    ck_assert_int_eq(with_nonce(a, bad, SA(c), NOW), TURN_AUTH_STALE);
    turn_auth_free(b);
    turn_auth_free(a);
}
END_TEST

START_TEST(nonce_shared_by_a_fleet)
{
    char err[256];
    struct turn_config cfg = config(NULL, "dave:dave-pass");
    cfg.nonce_secret = (char *)"fleet-nonce-secret";
    struct turn_auth *a = turn_auth_new(&cfg, err, sizeof err);
    struct turn_auth *b = turn_auth_new(&cfg, err, sizeof err);
    struct turn_auth *lone = auth_new(NULL, "dave:dave-pass");
    ck_assert(a && b);
    struct sockaddr_storage c = addr("192.0.2.1:5000");
    char nonce[TURN_NONCE_MAX];
    ck_assert_uint_gt(turn_auth_nonce(a, SA(c), NOW, nonce, sizeof nonce), 0);
    ck_assert_int_eq(with_nonce(b, nonce, SA(c), NOW), TURN_AUTH_OK);
    ck_assert_int_eq(with_nonce(lone, nonce, SA(c), NOW), TURN_AUTH_STALE);
    cfg.nonce_secret = (char *)"short";
    ck_assert_ptr_null(turn_auth_new(&cfg, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "nonce-secret"));
    ck_assert_ptr_null(strstr(err, "short"));
    turn_auth_free(lone);
    turn_auth_free(b);
    turn_auth_free(a);
}
END_TEST

START_TEST(wrong_realm_rejected)
{
    struct turn_auth *a = auth_new(NULL, "dave:dave-pass");
    struct sockaddr_storage c = addr("192.0.2.1:5000");
    char nonce[TURN_NONCE_MAX];
    uint8_t key[STUN_MAX_KEY_LEN];
    struct turn_cred cred;
    ck_assert_uint_gt(turn_auth_nonce(a, SA(c), NOW, nonce, sizeof nonce), 0);
    struct req q = {.user = "dave", .realm = "example.com", .nonce = nonce, .key = key};
    q.keylen = key_of("dave", "dave-pass", false, key);
    ck_assert_int_eq(check(a, &q, SA(c), NOW, true, &cred), TURN_AUTH_REJECT);
    q.realm = "example.org.";
    ck_assert_int_eq(check(a, &q, SA(c), NOW, true, &cred), TURN_AUTH_REJECT);
    turn_auth_free(a);
}
END_TEST

START_TEST(missing_attributes_bad_request)
{
    struct turn_auth *a = auth_new(NULL, "dave:dave-pass");
    struct sockaddr_storage c = addr("192.0.2.1:5000");
    char nonce[TURN_NONCE_MAX];
    uint8_t key[STUN_MAX_KEY_LEN];
    struct turn_cred cred;
    ck_assert_uint_gt(turn_auth_nonce(a, SA(c), NOW, nonce, sizeof nonce), 0);
    size_t keylen = key_of("dave", "dave-pass", false, key);
    struct req no_user = {.realm = REALM, .nonce = nonce, .key = key, .keylen = keylen};
    struct req no_realm = {.user = "dave", .nonce = nonce, .key = key, .keylen = keylen};
    struct req no_nonce = {.user = "dave", .realm = REALM, .key = key, .keylen = keylen};
    ck_assert_int_eq(check(a, &no_user, SA(c), NOW, true, &cred), TURN_AUTH_BAD_REQUEST);
    ck_assert_int_eq(check(a, &no_realm, SA(c), NOW, true, &cred), TURN_AUTH_BAD_REQUEST);
    ck_assert_int_eq(check(a, &no_nonce, SA(c), NOW, true, &cred), TURN_AUTH_BAD_REQUEST);
    no_nonce.sha256 = true;
    ck_assert_int_eq(check(a, &no_nonce, SA(c), NOW, true, &cred), TURN_AUTH_BAD_REQUEST);
    turn_auth_free(a);
}
END_TEST

/* ------------------------------------------------------------------ REST credentials */

START_TEST(rest_password_is_coturns)
{
    char user[TURN_USERNAME_MAX], pass[64];
    ck_assert_int_eq(
        turn_rest_credential(SECRET1, "alice", EXPIRY, user, sizeof user, pass, sizeof pass), 0);
    ck_assert_str_eq(user, USER_TS_ID);
    ck_assert_str_eq(pass, PASS_TS_ID_1);
    ck_assert_int_eq(
        turn_rest_credential(SECRET2, "alice", EXPIRY, user, sizeof user, pass, sizeof pass), 0);
    ck_assert_str_eq(pass, PASS_TS_ID_2);
}
END_TEST

START_TEST(rest_both_orders)
{
    struct turn_auth *a = auth_new(SECRET1, NULL);
    struct sockaddr_storage c = addr("192.0.2.1:5000");
    struct turn_cred cred;
    ck_assert_int_eq(login(a, USER_TS_ID, PASS_TS_ID_1, SA(c), NOW, true, &cred), TURN_AUTH_OK);
    ck_assert_str_eq(cred.id, "alice");
    ck_assert_str_eq(cred.username, USER_TS_ID);
    ck_assert_int_eq(cred.expiry_s, EXPIRY);
    ck_assert_int_eq(login(a, USER_ID_TS, PASS_ID_TS_1, SA(c), NOW, true, &cred), TURN_AUTH_OK);
    ck_assert_str_eq(cred.id, "bob");
    ck_assert_int_eq(cred.expiry_s, EXPIRY);
    /* the password of another username does not do */
    ck_assert_int_eq(login(a, USER_ID_TS, PASS_TS_ID_1, SA(c), NOW, true, &cred), TURN_AUTH_REJECT);
    turn_auth_free(a);
}
END_TEST

/* Logs in with a REST credential made for id by turn_rest_credential. */
static enum turn_auth_result rest_login(struct turn_auth *a, const char *secret, const char *id,
                                        int64_t expiry, int64_t now, bool check_expiry,
                                        struct turn_cred *cred)
{
    char user[TURN_USERNAME_MAX], pass[64];
    struct sockaddr_storage c = addr("192.0.2.1:5000");
    ck_assert_int_eq(turn_rest_credential(secret, id, expiry, user, sizeof user, pass, sizeof pass),
                     0);
    return login(a, user, pass, SA(c), now, check_expiry, cred);
}

START_TEST(rest_ids)
{
    struct turn_auth *a = auth_new(SECRET1, NULL);
    struct sockaddr_storage c = addr("192.0.2.1:5000");
    struct turn_cred cred;
    char id[TURN_ID_MAX + 1];
    /* <digits>:<id> keeps every later ':' in the id */
    char user[] = "1700000000:room:7";
    char pass[64];
    uint8_t mac[64];
    unsigned maclen = 0;
    ck_assert_ptr_nonnull(HMAC(EVP_sha1(), SECRET1, (int)strlen(SECRET1),
                               (const unsigned char *)user, strlen(user), mac, &maclen));
    ck_assert_uint_gt(ml_base64_encode(mac, maclen, pass, sizeof pass), 0);
    ck_assert_int_eq(login(a, user, pass, SA(c), NOW, true, &cred), TURN_AUTH_OK);
    ck_assert_str_eq(cred.id, "room:7");
    /* one byte too long for an id (then it is not REST, nor a static user), and the longest */
    memset(id, 'x', TURN_ID_MAX);
    id[TURN_ID_MAX] = 0;
    ck_assert_int_eq(rest_login(a, SECRET1, id, EXPIRY, NOW, true, &cred), TURN_AUTH_REJECT);
    id[TURN_ID_MAX - 1] = 0;
    ck_assert_int_eq(rest_login(a, SECRET1, id, EXPIRY, NOW, true, &cred), TURN_AUTH_OK);
    ck_assert_str_eq(cred.id, id);
    turn_auth_free(a);
}
END_TEST

START_TEST(rest_rotation)
{
    struct turn_auth *a = auth_new(SECRET1 "," SECRET2, NULL);
    struct sockaddr_storage c = addr("192.0.2.1:5000");
    struct turn_cred cred;
    ck_assert_int_eq(login(a, USER_TS_ID, PASS_TS_ID_1, SA(c), NOW, true, &cred), TURN_AUTH_OK);
    ck_assert_int_eq(login(a, USER_TS_ID, PASS_TS_ID_2, SA(c), NOW, true, &cred), TURN_AUTH_OK);
    ck_assert_int_eq(login(a, USER_TS_ID, PASS_TS_ID_3, SA(c), NOW, true, &cred), TURN_AUTH_REJECT);
    turn_auth_free(a);
}
END_TEST

START_TEST(rest_expiry)
{
    struct turn_auth *a = auth_new(SECRET1, NULL);
    struct turn_cred cred;
    ck_assert_int_eq(rest_login(a, SECRET1, "alice", EXPIRY, EXPIRY, true, &cred), TURN_AUTH_OK);
    ck_assert_int_eq(rest_login(a, SECRET1, "alice", EXPIRY, EXPIRY + 1, true, &cred),
                     TURN_AUTH_REJECT);
    ck_assert_int_eq(rest_login(a, SECRET1, "alice", EXPIRY, EXPIRY + 1, false, &cred),
                     TURN_AUTH_OK);
    ck_assert_int_eq(cred.expiry_s, EXPIRY);
    /* an expiry of 0 is long gone, not "never" */
    ck_assert_int_eq(rest_login(a, SECRET1, "alice", 0, NOW, true, &cred), TURN_AUTH_REJECT);
    turn_auth_free(a);
}
END_TEST

START_TEST(rest_revoked)
{
    struct turn_auth *a = auth_new(SECRET1, NULL);
    struct turn_cred cred;
    ck_assert(!turn_auth_is_revoked(a, "alice", NOW));
    ck_assert_int_eq(turn_auth_revoke(a, "alice", NOW + 100), 0);
    ck_assert(turn_auth_is_revoked(a, "alice", NOW));
    ck_assert(turn_auth_is_revoked(a, "alice", NOW + 100));
    ck_assert(!turn_auth_is_revoked(a, "alicia", NOW));
    ck_assert_int_eq(rest_login(a, SECRET1, "alice", EXPIRY, NOW, true, &cred), TURN_AUTH_REJECT);
    ck_assert_int_eq(rest_login(a, SECRET1, "alice", EXPIRY, NOW, false, &cred), TURN_AUTH_REJECT);
    ck_assert_int_eq(rest_login(a, SECRET1, "bob", EXPIRY, NOW, true, &cred), TURN_AUTH_OK);
    /* the revocation lapses after until_s */
    ck_assert(!turn_auth_is_revoked(a, "alice", NOW + 101));
    ck_assert_int_eq(rest_login(a, SECRET1, "alice", EXPIRY, NOW + 101, true, &cred), TURN_AUTH_OK);
    /* a second revocation never shortens the first */
    ck_assert_int_eq(turn_auth_revoke(a, "alice", NOW + 10), 0);
    ck_assert(turn_auth_is_revoked(a, "alice", NOW + 50));
    ck_assert_int_eq(turn_auth_revoke(a, "", NOW), -1);
    ck_assert_int_eq(turn_auth_revoke(a, NULL, NOW), -1);
    turn_auth_free(a);
}
END_TEST

START_TEST(revocations_bounded)
{
    struct turn_auth *a = auth_new(SECRET1, NULL);
    int64_t now = ml_wall_s();
    char id[32];
    char longid[TURN_ID_MAX + 1];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    ck_assert_int_eq(turn_auth_revoke(a, longid, now + 100), -1);
    /* lapsed entries make room */
    for (int i = 0; i < 1000; i++) {
        ml_snprintf(id, sizeof id, "old-%d", i);
        ck_assert_int_eq(turn_auth_revoke(a, id, now - 10), 0);
    }
    for (int i = 0; i < TURN_AUTH_MAX_REVOKED; i++) {
        ml_snprintf(id, sizeof id, "p-%d", i);
        ck_assert_int_eq(turn_auth_revoke(a, id, now + 1000), 0);
    }
    ck_assert_int_eq(turn_auth_revoke(a, "one-too-many", now + 1000), -1);
    ck_assert_int_eq(turn_auth_revoke(a, "p-7", now + 2000), 0); /* an update still works */
    ck_assert(turn_auth_is_revoked(a, "p-7", now + 1500));
    ck_assert(turn_auth_is_revoked(a, "p-65535", now));
    ck_assert(!turn_auth_is_revoked(a, "old-3", now));
    turn_auth_free(a);
}
END_TEST

/* ------------------------------------------------------------------ static users */

START_TEST(static_users)
{
    struct turn_auth *a = auth_new(NULL, "dave:dave-pass, carol:0x" CAROL_KEY);
    struct sockaddr_storage c = addr("192.0.2.1:5000");
    struct turn_cred cred;
    ck_assert_int_eq(login(a, "dave", "dave-pass", SA(c), NOW, true, &cred), TURN_AUTH_OK);
    ck_assert_int_eq(login(a, "carol", "carol-pass", SA(c), NOW, true, &cred), TURN_AUTH_OK);
    ck_assert_str_eq(cred.id, "carol");
    ck_assert_int_eq(login(a, "dave", "dave-pas", SA(c), NOW, true, &cred), TURN_AUTH_REJECT);
    ck_assert_int_eq(login(a, "carol", "dave-pass", SA(c), NOW, true, &cred), TURN_AUTH_REJECT);
    ck_assert_int_eq(login(a, "erin", "dave-pass", SA(c), NOW, true, &cred), TURN_AUTH_REJECT);
    ck_assert_int_eq(login(a, "Dave", "dave-pass", SA(c), NOW, true, &cred), TURN_AUTH_REJECT);
    /* a static user can be revoked by name too */
    ck_assert_int_eq(turn_auth_revoke(a, "dave", NOW + 10), 0);
    ck_assert_int_eq(login(a, "dave", "dave-pass", SA(c), NOW, true, &cred), TURN_AUTH_REJECT);
    turn_auth_free(a);
}
END_TEST

START_TEST(static_and_rest_together)
{
    /* Both kinds at once (coturn cannot mix them); a password may hold ':' */
    struct turn_auth *a = auth_new(SECRET1, "dave:dave-pass, room:42:room-pass");
    struct sockaddr_storage c = addr("192.0.2.1:5000");
    struct turn_cred cred;
    ck_assert_int_eq(login(a, USER_TS_ID, PASS_TS_ID_1, SA(c), NOW, true, &cred), TURN_AUTH_OK);
    ck_assert_int_eq(login(a, "dave", "dave-pass", SA(c), NOW, true, &cred), TURN_AUTH_OK);
    ck_assert_int_eq(login(a, "room", "42:room-pass", SA(c), NOW, true, &cred), TURN_AUTH_OK);
    turn_auth_free(a);
    /* without any secret a REST credential is just an unknown user */
    a = auth_new(NULL, "dave:dave-pass");
    ck_assert_int_eq(login(a, USER_TS_ID, PASS_TS_ID_1, SA(c), NOW, true, &cred), TURN_AUTH_REJECT);
    turn_auth_free(a);
}
END_TEST

/* ------------------------------------------------------------------ SHA-256 and algorithms */

START_TEST(sha256_integrity)
{
    struct turn_auth *a = auth_new(SECRET1, "dave:dave-pass, carol:0x" CAROL_KEY);
    struct sockaddr_storage c = addr("192.0.2.1:5000");
    char nonce[TURN_NONCE_MAX];
    uint8_t key[STUN_MAX_KEY_LEN];
    struct turn_cred cred;
    ck_assert_uint_gt(turn_auth_nonce(a, SA(c), NOW, nonce, sizeof nonce), 0);
    /* PASSWORD-ALGORITHM SHA-256: key SHA-256(user:realm:pass), MESSAGE-INTEGRITY-SHA256 */
    struct req q = {.user = "dave",
                    .realm = REALM,
                    .nonce = nonce,
                    .key = key,
                    .sha256 = true,
                    .alg = STUN_PWALG_SHA256,
                    .algs = true};
    q.keylen = key_of("dave", "dave-pass", true, key);
    ck_assert_int_eq(check(a, &q, SA(c), NOW, true, &cred), TURN_AUTH_OK);
    ck_assert(cred.sha256);
    ck_assert_uint_eq(cred.keylen, STUN_SHA256_LEN);
    ck_assert_int_eq(memcmp(cred.key, key, STUN_SHA256_LEN), 0);
    /* the same SHA-256 key under MESSAGE-INTEGRITY (HMAC-SHA1) */
    q.sha256 = false;
    ck_assert_int_eq(check(a, &q, SA(c), NOW, true, &cred), TURN_AUTH_OK);
    ck_assert(!cred.sha256);
    /* MESSAGE-INTEGRITY-SHA256 with the MD5 key: an RFC 8489 client that did not negotiate */
    struct req md5 = {.user = "dave", .realm = REALM, .nonce = nonce, .key = key, .sha256 = true};
    md5.keylen = key_of("dave", "dave-pass", false, key);
    ck_assert_int_eq(check(a, &md5, SA(c), NOW, true, &cred), TURN_AUTH_OK);
    ck_assert(cred.sha256);
    /* the SHA-256 algorithm with an MD5 key does not verify */
    md5.alg = STUN_PWALG_SHA256;
    md5.algs = true;
    ck_assert_int_eq(check(a, &md5, SA(c), NOW, true, &cred), TURN_AUTH_REJECT);
    /* PASSWORD-ALGORITHM MD5 explicitly */
    md5.alg = STUN_PWALG_MD5;
    ck_assert_int_eq(check(a, &md5, SA(c), NOW, true, &cred), TURN_AUTH_OK);
    /* a user:0x user has no SHA-256 key */
    struct req carol = {.user = "carol",
                        .realm = REALM,
                        .nonce = nonce,
                        .key = key,
                        .sha256 = true,
                        .alg = STUN_PWALG_SHA256,
                        .algs = true};
    carol.keylen = key_of("carol", "carol-pass", true, key);
    ck_assert_int_eq(check(a, &carol, SA(c), NOW, true, &cred), TURN_AUTH_REJECT);
    /* REST with SHA-256 */
    struct req rest = {.user = USER_TS_ID,
                       .realm = REALM,
                       .nonce = nonce,
                       .key = key,
                       .sha256 = true,
                       .alg = STUN_PWALG_SHA256,
                       .algs = true};
    rest.keylen = key_of(USER_TS_ID, PASS_TS_ID_1, true, key);
    ck_assert_int_eq(check(a, &rest, SA(c), NOW, true, &cred), TURN_AUTH_OK);
    ck_assert_str_eq(cred.id, "alice");
    ck_assert(cred.sha256);
    turn_auth_free(a);
}
END_TEST

START_TEST(password_algorithms_checked)
{
    struct turn_auth *a = auth_new(NULL, "dave:dave-pass");
    struct sockaddr_storage c = addr("192.0.2.1:5000");
    char nonce[TURN_NONCE_MAX];
    uint8_t key[STUN_MAX_KEY_LEN];
    struct turn_cred cred;
    ck_assert_uint_gt(turn_auth_nonce(a, SA(c), NOW, nonce, sizeof nonce), 0);
    struct req q = {.user = "dave",
                    .realm = REALM,
                    .nonce = nonce,
                    .key = key,
                    .sha256 = true,
                    .alg = STUN_PWALG_SHA256,
                    .algs = true};
    q.keylen = key_of("dave", "dave-pass", true, key);
    /* a list other than ours: reordered, shortened, extended */
    static const uint8_t swapped[8] = {0, 1, 0, 0, 0, 2, 0, 0};
    static const uint8_t only256[4] = {0, 2, 0, 0};
    static const uint8_t more[12] = {0, 2, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0};
    q.algs_val = swapped;
    q.algs_len = sizeof swapped;
    ck_assert_int_eq(check(a, &q, SA(c), NOW, true, &cred), TURN_AUTH_BAD_REQUEST);
    q.algs_val = only256;
    q.algs_len = sizeof only256;
    ck_assert_int_eq(check(a, &q, SA(c), NOW, true, &cred), TURN_AUTH_BAD_REQUEST);
    q.algs_val = more;
    q.algs_len = sizeof more;
    ck_assert_int_eq(check(a, &q, SA(c), NOW, true, &cred), TURN_AUTH_BAD_REQUEST);
    /* one without the other */
    q.algs_val = NULL;
    q.algs = false;
    ck_assert_int_eq(check(a, &q, SA(c), NOW, true, &cred), TURN_AUTH_BAD_REQUEST);
    q.algs = true;
    q.alg = 0;
    ck_assert_int_eq(check(a, &q, SA(c), NOW, true, &cred), TURN_AUTH_BAD_REQUEST);
    /* an algorithm that is not in the list */
    q.alg = 3;
    ck_assert_int_eq(check(a, &q, SA(c), NOW, true, &cred), TURN_AUTH_BAD_REQUEST);
    /* what we send in a 401 is what we expect back */
    uint8_t buf[128];
    struct stun_builder b;
    struct stun_msg m;
    stun_build_init(&b, buf, sizeof buf, TURN_ALLOCATE, STUN_ERROR, tid);
    turn_auth_build_algorithms(&b);
    size_t n = stun_build_finish(&b);
    ck_assert_int_eq(stun_msg_parse(&m, buf, n, NULL), 0);
    const struct stun_attr *at = stun_msg_find(&m, STUN_ATTR_PASSWORD_ALGORITHMS);
    ck_assert_ptr_nonnull(at);
    ck_assert_uint_eq(at->len, sizeof our_algs);
    ck_assert_int_eq(memcmp(stun_attr_value(&m, at), our_algs, sizeof our_algs), 0);
    turn_auth_free(a);
}
END_TEST

/* ------------------------------------------------------------------ reload */

START_TEST(reload_swaps_secrets)
{
    char err[256];
    struct turn_auth *a = auth_new(SECRET1, "dave:dave-pass");
    struct turn_cred cred;
    struct sockaddr_storage c = addr("192.0.2.1:5000");
    struct turn_config cfg = config(SECRET2, "erin:erin-pass");
    cfg.strict_expiry = true;
    ck_assert(!turn_auth_strict_expiry(a));
    ck_assert_int_eq(turn_auth_reload(a, &cfg, err, sizeof err), 0);
    ck_assert(turn_auth_strict_expiry(a));
    ck_assert_int_eq(rest_login(a, SECRET1, "alice", EXPIRY, NOW, true, &cred), TURN_AUTH_REJECT);
    ck_assert_int_eq(rest_login(a, SECRET2, "alice", EXPIRY, NOW, true, &cred), TURN_AUTH_OK);
    ck_assert_int_eq(login(a, "dave", "dave-pass", SA(c), NOW, true, &cred), TURN_AUTH_REJECT);
    ck_assert_int_eq(login(a, "erin", "erin-pass", SA(c), NOW, true, &cred), TURN_AUTH_OK);
    /* a bad configuration changes nothing */
    struct turn_config bad = config("short", NULL);
    ck_assert_int_eq(turn_auth_reload(a, &bad, err, sizeof err), -1);
    ck_assert_ptr_null(strstr(err, "short"));
    bad = config(SECRET1, "frank:frank-pass, frank:other-pass");
    ck_assert_int_eq(turn_auth_reload(a, &bad, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "entries 1 and 2"));
    ck_assert_int_eq(rest_login(a, SECRET2, "alice", EXPIRY, NOW, true, &cred), TURN_AUTH_OK);
    ck_assert(turn_auth_strict_expiry(a));
    turn_auth_free(a);
}
END_TEST

struct loop {
    struct turn_auth *a;
    const struct stun_msg *m;
    const struct sockaddr *client;
    int iterations;
    int failures;
};

static void *auth_loop(void *arg)
{
    struct loop *l = arg;
    for (int i = 0; i < l->iterations; i++) {
        struct turn_cred cred;
        if (turn_auth_check(l->a, l->m, l->client, NOW, true, &cred) != TURN_AUTH_OK ||
            strcmp(cred.id, "alice") != 0)
            l->failures++;
    }
    return NULL;
}

START_TEST(reload_while_authenticating)
{
    char err[256];
    struct turn_auth *a = auth_new(SECRET1 "," SECRET2, NULL);
    struct sockaddr_storage c = addr("192.0.2.1:5000");
    char nonce[TURN_NONCE_MAX];
    uint8_t key[STUN_MAX_KEY_LEN], buf[1024];
    struct stun_msg m;
    ck_assert_uint_gt(turn_auth_nonce(a, SA(c), NOW, nonce, sizeof nonce), 0);
    /* signed with SECRET2's password, which every configuration below keeps */
    struct req q = {.user = USER_TS_ID, .realm = REALM, .nonce = nonce, .key = key};
    q.keylen = key_of(USER_TS_ID, PASS_TS_ID_2, false, key);
    build(&q, buf, sizeof buf, &m);
    struct loop l[2] = {{a, &m, SA(c), 3000, 0}, {a, &m, SA(c), 3000, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, auth_loop, &l[i]), 0);
    struct turn_config one = config(SECRET1 "," SECRET2, "dave:dave-pass");
    struct turn_config two = config(SECRET3 " " SECRET2, NULL);
    for (int i = 0; i < 300; i++) {
        ck_assert_int_eq(turn_auth_reload(a, &one, err, sizeof err), 0);
        ck_assert_int_eq(turn_auth_reload(a, &two, err, sizeof err), 0);
    }
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_int_eq(l[i].failures, 0);
    }
    struct turn_cred cred;
    ck_assert_int_eq(rest_login(a, SECRET1, "alice", EXPIRY, NOW, true, &cred), TURN_AUTH_REJECT);
    ck_assert_int_eq(rest_login(a, SECRET3, "alice", EXPIRY, NOW, true, &cred), TURN_AUTH_OK);
    turn_auth_free(a);
}
END_TEST

/* ------------------------------------------------------------------ asynchronous sources */

/* A database that answers on its own thread: lookup queues, the thread answers. */
struct fake_db {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct turn_auth *a;
    struct turn_cred_source src;
    int lookups;
    bool queued, stop;
    char user[64];
    size_t ulen;
    turn_auth_wake_fn wake;
    void *wake_arg;
};

static enum turn_source_result fake_lookup(struct turn_cred_source *src, const char *username,
                                           size_t ulen, struct turn_source_answer *ans,
                                           turn_auth_wake_fn wake, void *wake_arg)
{
    struct fake_db *db = src->ctx;
    ML_UNUSED(ans);
    pthread_mutex_lock(&db->lock);
    db->lookups++;
    if (!wake || db->queued || ulen >= sizeof db->user) {
        pthread_mutex_unlock(&db->lock);
        return TURN_SOURCE_NOT_FOUND;
    }
    memcpy(db->user, username, ulen);
    db->ulen = ulen;
    db->wake = wake;
    db->wake_arg = wake_arg;
    db->queued = true;
    pthread_cond_broadcast(&db->cond);
    pthread_mutex_unlock(&db->lock);
    return TURN_SOURCE_PENDING;
}

static void *fake_db_thread(void *arg)
{
    struct fake_db *db = arg;
    pthread_mutex_lock(&db->lock);
    for (;;) {
        while (!db->queued && !db->stop)
            pthread_cond_wait(&db->cond, &db->lock);
        if (db->stop)
            break;
        struct turn_source_answer ans;
        memset(&ans, 0, sizeof ans);
        bool known = db->ulen == 4 && !memcmp(db->user, "gwen", 4);
        if (known) {
            ml_strlcpy(ans.id, "participant-7", sizeof ans.id);
            ck_assert_int_eq(stun_key_md5("gwen", 4, REALM, strlen(REALM), "gwen-pass", 9, ans.md5),
                             0);
            ans.has_md5 = true;
        }
        turn_auth_source_done(db->a, &db->src, db->user, db->ulen, known ? &ans : NULL, NOW);
        turn_auth_wake_fn wake = db->wake;
        void *wake_arg = db->wake_arg;
        db->queued = false;
        pthread_mutex_unlock(&db->lock);
        wake(wake_arg); /* no lock held, as the interface promises */
        pthread_mutex_lock(&db->lock);
    }
    pthread_mutex_unlock(&db->lock);
    return NULL;
}

/* The worker side: the wake sets a flag the test waits for. */
struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int woken;
};

static void wake_up(void *arg)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->lock);
    w->woken++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void wait_woken(struct waiter *w, int n)
{
    pthread_mutex_lock(&w->lock);
    while (w->woken < n)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
}

START_TEST(async_source)
{
    struct turn_auth *a = auth_new(NULL, "dave:dave-pass");
    struct fake_db db = {
        .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .a = a};
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    db.src.lookup = fake_lookup;
    db.src.ctx = &db;
    ck_assert_int_eq(turn_auth_add_source(a, &db.src), 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, fake_db_thread, &db), 0);

    struct sockaddr_storage c = addr("192.0.2.1:5000");
    char nonce[TURN_NONCE_MAX];
    uint8_t key[STUN_MAX_KEY_LEN], buf[1024];
    struct stun_msg m;
    struct turn_cred cred;
    ck_assert_uint_gt(turn_auth_nonce(a, SA(c), NOW, nonce, sizeof nonce), 0);
    struct req q = {.user = "gwen", .realm = REALM, .nonce = nonce, .key = key};
    q.keylen = key_of("gwen", "gwen-pass", false, key);
    build(&q, buf, sizeof buf, &m);

    /* without a way to wake the caller, a source that has to wait does not know the user */
    ck_assert_int_eq(turn_auth_check(a, &m, SA(c), NOW, true, &cred), TURN_AUTH_REJECT);
    ck_assert_int_eq(db.lookups, 1);
    /* PENDING, the database answers and wakes us, the retry is served from the cache */
    ck_assert_int_eq(turn_auth_check_async(a, &m, SA(c), NOW, true, wake_up, &w, &cred),
                     TURN_AUTH_PENDING);
    wait_woken(&w, 1);
    ck_assert_int_eq(turn_auth_check_async(a, &m, SA(c), NOW, true, wake_up, &w, &cred),
                     TURN_AUTH_OK);
    ck_assert_str_eq(cred.id, "participant-7");
    ck_assert_str_eq(cred.username, "gwen");
    pthread_mutex_lock(&db.lock);
    ck_assert_int_eq(db.lookups, 2);
    pthread_mutex_unlock(&db.lock);
    /* the cached answer still checks the MAC */
    struct req wrong = q;
    uint8_t key2[STUN_MAX_KEY_LEN];
    wrong.keylen = key_of("gwen", "not-gwen-pass", false, key2);
    wrong.key = key2;
    ck_assert_int_eq(check(a, &wrong, SA(c), NOW, true, &cred), TURN_AUTH_REJECT);
    /* static users come first: no lookup for them */
    ck_assert_int_eq(login(a, "dave", "dave-pass", SA(c), NOW, true, &cred), TURN_AUTH_OK);
    /* an unknown user: PENDING, then a cached "unknown", so the retry does not loop */
    q.user = "hank";
    build(&q, buf, sizeof buf, &m);
    ck_assert_int_eq(turn_auth_check_async(a, &m, SA(c), NOW, true, wake_up, &w, &cred),
                     TURN_AUTH_PENDING);
    wait_woken(&w, 2);
    ck_assert_int_eq(turn_auth_check_async(a, &m, SA(c), NOW, true, wake_up, &w, &cred),
                     TURN_AUTH_REJECT);
    pthread_mutex_lock(&db.lock);
    ck_assert_int_eq(db.lookups, 3);
    db.stop = true;
    pthread_cond_broadcast(&db.cond);
    pthread_mutex_unlock(&db.lock);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    /* the cached answer lapses (10 s by default): the source is asked again */
    q.user = "gwen";
    build(&q, buf, sizeof buf, &m);
    ck_assert_int_eq(turn_auth_check(a, &m, SA(c), NOW + 10, true, &cred), TURN_AUTH_OK);
    ck_assert_int_eq(db.lookups, 3);
    ck_assert_int_eq(turn_auth_check(a, &m, SA(c), NOW + 11, true, &cred), TURN_AUTH_REJECT);
    ck_assert_int_eq(db.lookups, 4);
    turn_auth_free(a);
}
END_TEST

START_TEST(sources_bounded)
{
    struct turn_auth *a = auth_new(NULL, NULL);
    struct turn_cred_source s[TURN_AUTH_MAX_SOURCES + 1];
    memset(s, 0, sizeof s);
    ck_assert_int_eq(turn_auth_add_source(a, &s[0]), -1); /* no lookup function */
    for (int i = 0; i <= TURN_AUTH_MAX_SOURCES; i++)
        s[i].lookup = fake_lookup;
    for (int i = 0; i < TURN_AUTH_MAX_SOURCES; i++)
        ck_assert_int_eq(turn_auth_add_source(a, &s[i]), 0);
    ck_assert_int_eq(turn_auth_add_source(a, &s[TURN_AUTH_MAX_SOURCES]), -1);
    turn_auth_free(a);
}
END_TEST

/* ------------------------------------------------------------------ validators */

START_TEST(validators)
{
    char err[256];
    ck_assert_int_eq(turn_secrets_validate("", err, sizeof err), 0);
    ck_assert_int_eq(turn_secrets_validate(SECRET1 ", " SECRET2, err, sizeof err), 0);
    ck_assert_int_eq(turn_secrets_validate("12345678", err, sizeof err), 0);
    ck_assert_int_eq(turn_secrets_validate("1234567", err, sizeof err), -1);
    ck_assert_int_eq(turn_secrets_validate(SECRET1 ",tiny", err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "secret 2"));
    ck_assert_ptr_null(strstr(err, "tiny"));

    ck_assert_int_eq(turn_static_users_validate("", err, sizeof err), 0);
    ck_assert_int_eq(turn_static_users_validate("a:b, c:0x" CAROL_KEY, err, sizeof err), 0);
    ck_assert_int_eq(turn_static_users_validate("u:p:with:colons", err, sizeof err), 0);
    ck_assert_int_eq(turn_static_users_validate("nocolonsecret", err, sizeof err), -1);
    ck_assert_ptr_null(strstr(err, "nocolonsecret"));
    ck_assert_int_eq(turn_static_users_validate(":password", err, sizeof err), -1);
    ck_assert_int_eq(turn_static_users_validate("user:", err, sizeof err), -1);
    ck_assert_int_eq(turn_static_users_validate("ok:pw user:0x1234", err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "entry 2"));
    ck_assert_int_eq(turn_static_users_validate("u:0x" CAROL_KEY "00", err, sizeof err), -1);
    ck_assert_int_eq(
        turn_static_users_validate("u:0xg3e8097adf7fa051a7a8d05bb0f15c99", err, sizeof err), -1);
    ck_assert_int_eq(turn_static_users_validate("u:0X" CAROL_KEY, err, sizeof err), 0);
    char name[200];
    memset(name, 'n', 128);
    memcpy(name + 128, ":pw", 4);
    ck_assert_int_eq(turn_static_users_validate(name, err, sizeof err), -1);
    memcpy(name + 127, ":pw", 4);
    ck_assert_int_eq(turn_static_users_validate(name, err, sizeof err), 0);

    struct turn_config cfg = config(NULL, NULL);
    cfg.realm = (char *)"";
    ck_assert_ptr_null(turn_auth_new(&cfg, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "realm"));
}
END_TEST

/* ------------------------------------------------------------------ the unauthenticated budget */

#define BRATE 1000 /* bytes/s */
#define BBURST 500 /* bytes */

/* A moment well after the budget's creation (its clock starts then), in microseconds. */
static int64_t later(int64_t s)
{
    return ml_now_us() + s * 1000000;
}

START_TEST(budget_burst_and_refill)
{
    struct turn_budget *b = turn_budget_new();
    struct sockaddr_storage ip = addr("192.0.2.1:5000"), other_port = addr("192.0.2.1:6000");
    ck_assert_ptr_nonnull(b);
    int64_t t0 = later(10);
    for (int i = 0; i < 5; i++)
        ck_assert(turn_budget_take(b, SA(ip), 100, t0, BRATE, BBURST));
    ck_assert(!turn_budget_take(b, SA(ip), 100, t0, BRATE, BBURST));
    ck_assert(!turn_budget_take(b, SA(other_port), 1, t0, BRATE, BBURST)); /* the port is ignored */
    ck_assert(!turn_budget_take(b, SA(ip), 100, t0 + 99000, BRATE, BBURST)); /* 99 bytes back */
    ck_assert(turn_budget_take(b, SA(ip), 100, t0 + 100000, BRATE, BBURST)); /* 1 byte per ms */
    ck_assert(!turn_budget_take(b, SA(ip), 1, t0 + 100000, BRATE, BBURST));
    ck_assert(!turn_budget_take(b, SA(ip), 1, t0 - 1000000, BRATE, BBURST)); /* clock going back */
    /* a take that does not fit takes nothing: 300 bytes back, a 400-byte answer is refused and
     * the 300 are still there */
    int64_t t1 = t0 + 400000;
    ck_assert(!turn_budget_take(b, SA(ip), 400, t1, BRATE, BBURST));
    ck_assert(turn_budget_take(b, SA(ip), 300, t1, BRATE, BBURST));
    ck_assert(!turn_budget_take(b, SA(ip), 1, t1, BRATE, BBURST));
    /* a long pause fills the budget to the burst, no further */
    int64_t t2 = t1 + 3600 * 1000000LL;
    size_t taken = 0;
    for (int i = 0; i < 20; i++)
        taken += turn_budget_take(b, SA(ip), 96, t2, BRATE, BBURST) ? 96 : 0;
    ck_assert_uint_eq(taken, 480);
    /* more than the burst never fits; rate 0: no budget */
    ck_assert(!turn_budget_take(b, SA(ip), BBURST + 1, t2 + 3600 * 1000000LL, BRATE, BBURST));
    for (int i = 0; i < 1000; i++)
        ck_assert(turn_budget_take(b, SA(ip), 1000, t2, 0, 1));
    turn_budget_free(b);
}
END_TEST

START_TEST(budget_earned_back)
{
    struct turn_budget *b = turn_budget_new();
    struct sockaddr_storage ip = addr("192.0.2.7:5000"), other = addr("192.0.2.8:5000");
    int64_t t0 = later(10);
    ck_assert(turn_budget_take(b, SA(ip), 500, t0, BRATE, BBURST));
    ck_assert(!turn_budget_take(b, SA(ip), 100, t0, BRATE, BBURST));
    /* an authenticated request of 300 bytes from any port of the address gives 300 back */
    turn_budget_give(b, SA(ip), 300, t0, BRATE);
    for (int i = 0; i < 3; i++)
        ck_assert(turn_budget_take(b, SA(ip), 100, t0, BRATE, BBURST));
    ck_assert(!turn_budget_take(b, SA(ip), 100, t0, BRATE, BBURST));
    /* gifts never raise a budget past its burst, nor help another address */
    turn_budget_give(b, SA(ip), 5000, t0, BRATE);
    turn_budget_give(b, SA(ip), 5000, t0, BRATE);
    size_t taken = 0;
    for (int i = 0; i < 20; i++)
        taken += turn_budget_take(b, SA(ip), 100, t0, BRATE, BBURST) ? 100 : 0;
    ck_assert_uint_eq(taken, BBURST);
    ck_assert(turn_budget_take(b, SA(other), 500, t0, BRATE, BBURST));
    turn_budget_give(b, SA(ip), 5000, t0, BRATE);
    ck_assert(!turn_budget_take(b, SA(other), 100, t0, BRATE, BBURST));
    /* a full budget gains nothing from a gift */
    struct sockaddr_storage fresh = addr("198.51.100.77:1");
    turn_budget_give(b, SA(fresh), 400, t0, BRATE);
    ck_assert(turn_budget_take(b, SA(fresh), 500, t0, BRATE, BBURST));
    ck_assert(!turn_budget_take(b, SA(fresh), 1, t0, BRATE, BBURST));
    turn_budget_free(b);
}
END_TEST

/* Of the 16 sources prefix N suffix (N from first), how many take a whole burst of their own. */
static int budgets_free(struct turn_budget *b, const char *prefix, const char *suffix, int first,
                        int64_t t0)
{
    int n = 0;
    for (int i = 0; i < 16; i++) {
        char text[64];
        ml_snprintf(text, sizeof text, "%s%d%s", prefix, first + i, suffix);
        struct sockaddr_storage o = addr(text);
        n += turn_budget_take(b, SA(o), 300, t0, 1, 300);
    }
    return n;
}

START_TEST(budget_sources_independent)
{
    struct turn_budget *b = turn_budget_new();
    struct sockaddr_storage ip = addr("192.0.2.1:5000");
    int64_t t0 = later(10);
    ck_assert(turn_budget_take(b, SA(ip), 300, t0, 1, 300));
    ck_assert(!turn_budget_take(b, SA(ip), 1, t0, 1, 300));
    /* other sources share a budget with it only by a 1-in-65536 chance each */
    ck_assert_int_ge(budgets_free(b, "198.51.100.", "", 1, t0), 15);
    /* one IPv6 /64 is one source; other /64s are others (by the same chance); IPv4-mapped IPv6
     * is its IPv4 address */
    struct sockaddr_storage v6a = addr("[2001:db8:1:2::1]:1"), v6b = addr("[2001:db8:1:2::ff]:2"),
                            mapped = addr("[::ffff:192.0.2.1]:9");
    ck_assert(turn_budget_take(b, SA(v6a), 300, t0, 1, 300));
    ck_assert(!turn_budget_take(b, SA(v6b), 1, t0, 1, 300));
    ck_assert_int_ge(budgets_free(b, "[2001:db8:1:", "::1]:1", 3, t0), 15);
    ck_assert(!turn_budget_take(b, SA(mapped), 1, t0, 1, 300));
    turn_budget_free(b);
}
END_TEST

/* Workers share one budget without a lock: however many take at once, the bytes taken at one
 * moment never pass the burst, and a gift is never lost. */
struct budget_race {
    struct turn_budget *b;
    int64_t now;
    size_t taken; /* atomic */
};

static void *budget_racer(void *arg)
{
    struct budget_race *r = arg;
    struct sockaddr_storage ip = addr("203.0.113.5:7000");
    for (int i = 0; i < 20000; i++) {
        if (turn_budget_take(r->b, SA(ip), 10, r->now, 1000, 100000))
            __atomic_add_fetch(&r->taken, 10, __ATOMIC_RELAXED);
        if (i % 100 == 0)
            turn_budget_give(r->b, SA(ip), 10, r->now, 1000);
    }
    return NULL;
}

START_TEST(budget_shared_without_lock)
{
    struct budget_race r = {.b = turn_budget_new(), .now = later(10)};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, budget_racer, &r), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    /* 100,000 bytes of burst, plus 4 x 200 gifts of 10 bytes (each made after a take, so none
     * finds the budget full) */
    ck_assert_uint_eq(r.taken, 100000 + 4 * 200 * 10);
    turn_budget_free(r.b);
}
END_TEST

/* ------------------------------------------------------------------ proof of the address */

static bool proven(struct turn_auth *a, const struct req *q, const struct sockaddr *client,
                   int64_t now, enum turn_auth_result want)
{
    struct turn_cred cred;
    memset(&cred, 0xff, sizeof cred); /* whatever the caller had there */
    ck_assert_int_eq(check(a, q, client, now, true, &cred), want);
    return cred.address_proven;
}

START_TEST(nonce_proves_address)
{
    struct turn_auth *a = auth_new(NULL, "dave:dave-pass");
    struct sockaddr_storage c = addr("192.0.2.1:5000"), other_port = addr("192.0.2.1:5001");
    char nonce[TURN_NONCE_MAX], bad[TURN_NONCE_MAX];
    uint8_t key[STUN_MAX_KEY_LEN], wrong[STUN_MAX_KEY_LEN];
    size_t n = turn_auth_nonce(a, SA(c), NOW, nonce, sizeof nonce);
    ck_assert_uint_eq(n, turn_auth_nonce_len());
    struct req q = {.user = "dave", .realm = REALM, .nonce = nonce, .key = key};
    q.keylen = key_of("dave", "dave-pass", false, key);
    struct req w = q;
    w.key = wrong;
    w.keylen = key_of("dave", "not-the-pass", false, wrong);
    ck_assert(proven(a, &q, SA(c), NOW, TURN_AUTH_OK));
    ck_assert(proven(a, &w, SA(c), NOW, TURN_AUTH_REJECT)); /* refused, but not spoofed */
    /* stale past one lifetime; still a proof for one more */
    ck_assert(proven(a, &q, SA(c), NOW + 601, TURN_AUTH_STALE));
    ck_assert(proven(a, &q, SA(c), NOW + 1200, TURN_AUTH_STALE));
    ck_assert(!proven(a, &q, SA(c), NOW + 1201, TURN_AUTH_STALE));
    ck_assert(!proven(a, &q, SA(c), NOW - 61, TURN_AUTH_STALE));
    /* another port, a forged nonce, no nonce, no integrity: no proof */
    ck_assert(!proven(a, &q, SA(other_port), NOW, TURN_AUTH_STALE));
    memcpy(bad, nonce, n + 1);
    bad[n - 1] = bad[n - 1] == 'A' ? 'B' : 'A';
    struct req f = q;
    f.nonce = bad;
    ck_assert(!proven(a, &f, SA(c), NOW, TURN_AUTH_STALE));
    struct req none = q;
    none.nonce = NULL;
    ck_assert(!proven(a, &none, SA(c), NOW, TURN_AUTH_BAD_REQUEST));
    struct req bare = {0};
    ck_assert(!proven(a, &bare, SA(c), NOW, TURN_AUTH_CHALLENGE));
    turn_auth_free(a);
}
END_TEST

static Suite *auth_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("nonce");
    tcase_add_test(tc, no_integrity_challenges);
    tcase_add_test(tc, nonce_format_and_round_trip);
    tcase_add_test(tc, nonce_bound_to_client);
    tcase_add_test(tc, nonce_lifetime);
    tcase_add_test(tc, nonce_tampered);
    tcase_add_test(tc, nonce_proves_address);
    tcase_add_test(tc, nonce_shared_by_a_fleet);
    tcase_add_test(tc, wrong_realm_rejected);
    tcase_add_test(tc, missing_attributes_bad_request);
    suite_add_tcase(s, tc);
    tc = tcase_create("rest");
    tcase_add_test(tc, rest_password_is_coturns);
    tcase_add_test(tc, rest_both_orders);
    tcase_add_test(tc, rest_ids);
    tcase_add_test(tc, rest_rotation);
    tcase_add_test(tc, rest_expiry);
    tcase_add_test(tc, rest_revoked);
    tcase_add_test(tc, revocations_bounded);
    suite_add_tcase(s, tc);
    tc = tcase_create("static");
    tcase_add_test(tc, static_users);
    tcase_add_test(tc, static_and_rest_together);
    suite_add_tcase(s, tc);
    tc = tcase_create("algorithms");
    tcase_add_test(tc, sha256_integrity);
    tcase_add_test(tc, password_algorithms_checked);
    suite_add_tcase(s, tc);
    tc = tcase_create("reload");
    tcase_add_test(tc, reload_swaps_secrets);
    tcase_add_test(tc, reload_while_authenticating);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    tc = tcase_create("sources");
    tcase_add_test(tc, async_source);
    tcase_add_test(tc, sources_bounded);
    suite_add_tcase(s, tc);
    tc = tcase_create("validators");
    tcase_add_test(tc, validators);
    suite_add_tcase(s, tc);
    return s;
}

static Suite *budget_suite(void)
{
    Suite *s = suite_create("budget");
    TCase *tc = tcase_create("cells");
    tcase_add_test(tc, budget_burst_and_refill);
    tcase_add_test(tc, budget_earned_back);
    tcase_add_test(tc, budget_sources_independent);
    tcase_add_test(tc, budget_shared_without_lock);
    suite_add_tcase(s, tc);
    return s;
}

ML_CHECK_MAIN(auth_suite, budget_suite)
