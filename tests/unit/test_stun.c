/* Unit tests of the STUN codec (src/stun): RFC 5769 and RFC 8489 vectors, every malformed form
 * the parser must refuse, builder round trips, and stream framing. */
#include "config.h"

#include "stun/stun.h"

#include "mlcheck.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

/* ------------------------------------------------------------------ helpers */

/* Decodes hex, skipping whitespace; returns the byte count. */
static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (; *s; s++) {
        int v;
        if (*s >= '0' && *s <= '9')
            v = *s - '0';
        else if (*s >= 'a' && *s <= 'f')
            v = *s - 'a' + 10;
        else if (*s >= 'A' && *s <= 'F')
            v = *s - 'A' + 10;
        else
            continue;
        if (hi < 0) {
            hi = v;
            continue;
        }
        ck_assert_uint_lt(n, cap);
        out[n++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    ck_assert_int_eq(hi, -1);
    return n;
}

#define PARSE_OK(m, buf, len)                                                                      \
    do {                                                                                           \
        enum stun_parse_err e_ = STUN_PARSE_OK;                                                    \
        int r_ = stun_msg_parse((m), (buf), (len), &e_);                                           \
        ck_assert_msg(r_ == 0, "parse failed: %s", stun_parse_err_str(e_));                        \
    } while (0)

/* Parses a message that must be refused and returns why. */
static enum stun_parse_err parse_err(const uint8_t *buf, size_t len)
{
    struct stun_msg m;
    enum stun_parse_err e = STUN_PARSE_OK;
    int r = stun_msg_parse(&m, buf, len, &e);
    ck_assert_int_eq(r, -1);
    ck_assert_int_ne(e, STUN_PARSE_OK);
    ck_assert_uint_eq(m.nattrs, 0);
    return e;
}

static void ck_attr_str(const struct stun_msg *m, uint16_t type, const char *want)
{
    const struct stun_attr *a = stun_msg_find(m, type);
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(a->len, strlen(want));
    ck_assert_mem_eq(stun_attr_value(m, a), want, a->len);
}

static void make_sa(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
    } else {
        ck_assert_int_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
    }
}

static void ck_addr_is(const struct sockaddr_storage *ss, socklen_t salen, const char *ip,
                       uint16_t port)
{
    struct sockaddr_storage want;
    make_sa(&want, ip, port);
    ck_assert_int_eq(ss->ss_family, want.ss_family);
    if (want.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        const struct sockaddr_in *b = (const struct sockaddr_in *)&want;
        ck_assert_uint_eq(salen, sizeof *a);
        ck_assert_uint_eq(ntohs(a->sin_port), port);
        ck_assert_mem_eq(&a->sin_addr, &b->sin_addr, 4);
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)&want;
        ck_assert_uint_eq(salen, sizeof *a);
        ck_assert_uint_eq(ntohs(a->sin6_port), port);
        ck_assert_mem_eq(&a->sin6_addr, &b->sin6_addr, 16);
    }
}

/* A copy of msg without its trailing FINGERPRINT, header length fixed; returns the length. */
static size_t strip_fingerprint(const uint8_t *msg, size_t len, uint8_t *out)
{
    ck_assert_uint_ge(len, STUN_HEADER_LEN + 8);
    ck_assert_uint_eq(stun_get16(msg + len - 8), STUN_ATTR_FINGERPRINT);
    memcpy(out, msg, len - 8);
    stun_put16(out + 2, (uint16_t)(len - 8 - STUN_HEADER_LEN));
    return len - 8;
}

static const uint8_t tid_a[STUN_TID_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

/* ------------------------------------------------------------------ RFC 5769 vectors */

static const char rfc5769_request[] =
    "00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae"
    "80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74"
    "00 24 00 04 6e 00 01 ff 80 29 00 08 93 2f f9 b1 51 26 3b 36"
    "00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20"
    "00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2"
    "80 28 00 04 e5 7a 3b cf";

static const char rfc5769_ipv4[] =
    "01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae"
    "80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20"
    "00 20 00 08 00 01 a1 47 e1 12 a6 43"
    "00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7"
    "80 28 00 04 c0 7d 4c 96";

static const char rfc5769_ipv6[] =
    "01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae"
    "80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20"
    "00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9"
    "00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41"
    "80 28 00 04 c8 fb 0b 4c";

static const char rfc5769_long_term[] =
    "00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e"
    "00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00"
    "00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 "
    "41"
    "00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00"
    "00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66";

static const char short_term_pw[] = "VOkJxbRl1RmTxUk/WvJxBt";
static const uint8_t rfc5769_tid[STUN_TID_LEN] = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
                                                  0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};
static const uint8_t long_term_tid[STUN_TID_LEN] = {0x78, 0xad, 0x34, 0x33, 0xc6, 0xad,
                                                    0x72, 0xc0, 0x29, 0xda, 0x41, 0x2e};
/* "マトリックス" in UTF-8; the password after SASLprep/OpaqueString is "TheMatrIX". */
static const char lt_user[] = "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf\xe3"
                              "\x82\xb9";
static const char lt_realm[] = "example.org";
static const char lt_pass[] = "TheMatrIX";

static const uint8_t *pw_key(void)
{
    return (const uint8_t *)short_term_pw;
}

START_TEST(test_5769_request_parse)
{
    uint8_t buf[256];
    size_t n = unhex(rfc5769_request, buf, sizeof buf);
    struct stun_msg m;
    PARSE_OK(&m, buf, n);
    ck_assert_uint_eq(m.method, STUN_BINDING);
    ck_assert_uint_eq(m.cls, STUN_REQUEST);
    ck_assert(!m.rfc3489);
    ck_assert_mem_eq(m.tid, rfc5769_tid, STUN_TID_LEN);
    ck_assert_uint_eq(m.nattrs, 6);
    ck_assert_int_eq(m.mi, 4);
    ck_assert_int_eq(m.mi256, -1);
    ck_assert_int_eq(m.fp, 5);
    ck_attr_str(&m, STUN_ATTR_SOFTWARE, "STUN test client");
    ck_attr_str(&m, STUN_ATTR_USERNAME, "evtj:h6vY");
    uint32_t prio;
    uint64_t tie;
    ck_assert_int_eq(stun_attr_get_u32(&m, stun_msg_find(&m, STUN_ATTR_PRIORITY), &prio), 0);
    ck_assert_uint_eq(prio, 0x6e0001ff);
    ck_assert_int_eq(stun_attr_get_u64(&m, stun_msg_find(&m, STUN_ATTR_ICE_CONTROLLED), &tie), 0);
    ck_assert(tie == 0x932ff9b151263b36ull);
    ck_assert(stun_is_stun(buf, n));
    ck_assert_uint_eq(stun_msg_unknown_required(&m, NULL, 0), 0);
}
END_TEST

START_TEST(test_5769_request_integrity)
{
    uint8_t buf[256];
    size_t n = unhex(rfc5769_request, buf, sizeof buf);
    struct stun_msg m;
    PARSE_OK(&m, buf, n);
    ck_assert_int_eq(stun_msg_check_integrity(&m, pw_key(), strlen(short_term_pw)), 1);
    ck_assert_int_eq(stun_msg_check_integrity(&m, (const uint8_t *)"VOkJxbRl1RmTxUk/WvJxBT", 22),
                     0);
    ck_assert_int_eq(stun_msg_check_integrity_sha256(&m, pw_key(), strlen(short_term_pw)), -1);
}
END_TEST

START_TEST(test_5769_request_tampered)
{
    uint8_t buf[256], cut[256];
    size_t n = unhex(rfc5769_request, buf, sizeof buf);
    struct stun_msg m;
    size_t cn = strip_fingerprint(buf, n, cut);
    PARSE_OK(&m, cut, cn);
    ck_assert_int_eq(m.fp, -1);
    ck_assert_int_eq(stun_msg_check_integrity(&m, pw_key(), strlen(short_term_pw)), 1);

    buf[30] ^= 0x01; /* inside SOFTWARE: FINGERPRINT catches it first */
    ck_assert_int_eq(parse_err(buf, n), STUN_PARSE_BAD_FINGERPRINT);
    cn = strip_fingerprint(buf, n, cut);
    PARSE_OK(&m, cut, cn);
    ck_assert_int_eq(stun_msg_check_integrity(&m, pw_key(), strlen(short_term_pw)), 0);

    /* a flipped byte in the MAC itself */
    n = unhex(rfc5769_request, buf, sizeof buf);
    cn = strip_fingerprint(buf, n, cut);
    cut[cn - 1] ^= 0x80;
    PARSE_OK(&m, cut, cn);
    ck_assert_int_eq(stun_msg_check_integrity(&m, pw_key(), strlen(short_term_pw)), 0);
}
END_TEST

/* The RFC pads USERNAME and SOFTWARE with spaces (any value is allowed there); the builder pads
 * with zeros, so the tests overwrite the padding to compare byte for byte. */
START_TEST(test_5769_request_rebuild)
{
    uint8_t want[256], buf[256];
    size_t wn = unhex(rfc5769_request, want, sizeof want);
    struct stun_builder b;
    stun_build_init(&b, buf, sizeof buf, STUN_BINDING, STUN_REQUEST, rfc5769_tid);
    stun_build_attr(&b, STUN_ATTR_SOFTWARE, "STUN test client", 16);
    stun_build_u32(&b, STUN_ATTR_PRIORITY, 0x6e0001ff);
    stun_build_u64(&b, STUN_ATTR_ICE_CONTROLLED, 0x932ff9b151263b36ull);
    stun_build_attr(&b, STUN_ATTR_USERNAME, "evtj:h6vY", 9);
    ck_assert_mem_eq(buf + b.len - 3, "\0\0\0", 3);
    memset(buf + b.len - 3, ' ', 3);
    stun_build_integrity(&b, pw_key(), strlen(short_term_pw));
    stun_build_fingerprint(&b);
    size_t n = stun_build_finish(&b);
    ck_assert_uint_eq(n, wn);
    ck_assert_mem_eq(buf, want, n);
}
END_TEST

START_TEST(test_5769_ipv4_response)
{
    uint8_t buf[256];
    size_t n = unhex(rfc5769_ipv4, buf, sizeof buf);
    struct stun_msg m;
    PARSE_OK(&m, buf, n);
    ck_assert_uint_eq(m.method, STUN_BINDING);
    ck_assert_uint_eq(m.cls, STUN_SUCCESS);
    ck_assert_mem_eq(m.tid, rfc5769_tid, STUN_TID_LEN);
    ck_attr_str(&m, STUN_ATTR_SOFTWARE, "test vector");
    struct sockaddr_storage ss;
    socklen_t sl;
    const struct stun_attr *a = stun_msg_find(&m, STUN_ATTR_XOR_MAPPED_ADDRESS);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(stun_attr_get_xaddr(&m, a, &ss, &sl), 0);
    ck_addr_is(&ss, sl, "192.0.2.1", 32853);
    ck_assert_int_eq(stun_msg_check_integrity(&m, pw_key(), strlen(short_term_pw)), 1);
    ck_assert_int_eq(stun_msg_check_integrity(&m, pw_key(), strlen(short_term_pw) - 1), 0);
}
END_TEST

/* Rebuilds a 2.2/2.3 response: SOFTWARE "test vector" padded with a space, XOR-MAPPED-ADDRESS. */
static void rebuild_response(const char *hex, const char *ip)
{
    uint8_t want[256], buf[256];
    size_t wn = unhex(hex, want, sizeof want);
    struct sockaddr_storage ss;
    make_sa(&ss, ip, 32853);
    struct stun_builder b;
    stun_build_init(&b, buf, sizeof buf, STUN_BINDING, STUN_SUCCESS, rfc5769_tid);
    stun_build_attr(&b, STUN_ATTR_SOFTWARE, "test vector", 11);
    buf[b.len - 1] = ' ';
    stun_build_xaddr(&b, STUN_ATTR_XOR_MAPPED_ADDRESS, (const struct sockaddr *)&ss);
    stun_build_integrity(&b, pw_key(), strlen(short_term_pw));
    stun_build_fingerprint(&b);
    size_t n = stun_build_finish(&b);
    ck_assert_uint_eq(n, wn);
    ck_assert_mem_eq(buf, want, n);
}

START_TEST(test_5769_ipv4_rebuild)
{
    rebuild_response(rfc5769_ipv4, "192.0.2.1");
}
END_TEST

START_TEST(test_5769_ipv6_response)
{
    uint8_t buf[256];
    size_t n = unhex(rfc5769_ipv6, buf, sizeof buf);
    struct stun_msg m;
    PARSE_OK(&m, buf, n);
    ck_assert_uint_eq(m.cls, STUN_SUCCESS);
    struct sockaddr_storage ss;
    socklen_t sl;
    const struct stun_attr *a = stun_msg_find(&m, STUN_ATTR_XOR_MAPPED_ADDRESS);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(stun_attr_get_xaddr(&m, a, &ss, &sl), 0);
    ck_addr_is(&ss, sl, "2001:db8:1234:5678:11:2233:4455:6677", 32853);
    /* read plainly, the XORed value is a different address: the getters are not interchangeable */
    ck_assert_int_eq(stun_attr_get_addr(&m, a, &ss, &sl), 0);
    ck_assert_uint_eq(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 0xa147);
    ck_assert_int_eq(stun_msg_check_integrity(&m, pw_key(), strlen(short_term_pw)), 1);
}
END_TEST

START_TEST(test_5769_ipv6_rebuild)
{
    rebuild_response(rfc5769_ipv6, "2001:db8:1234:5678:11:2233:4455:6677");
}
END_TEST

START_TEST(test_5769_long_term)
{
    uint8_t buf[256], key[STUN_MD5_LEN], want_key[STUN_MD5_LEN];
    size_t n = unhex(rfc5769_long_term, buf, sizeof buf);
    struct stun_msg m;
    PARSE_OK(&m, buf, n);
    ck_assert_uint_eq(m.method, STUN_BINDING);
    ck_assert_int_eq(m.fp, -1);
    ck_assert_mem_eq(m.tid, long_term_tid, STUN_TID_LEN);
    ck_attr_str(&m, STUN_ATTR_USERNAME, lt_user);
    ck_attr_str(&m, STUN_ATTR_NONCE, "f//499k954d6OL34oL9FSTvy64sA");
    ck_attr_str(&m, STUN_ATTR_REALM, lt_realm);
    ck_assert_int_eq(stun_key_md5(lt_user, strlen(lt_user), lt_realm, strlen(lt_realm), lt_pass,
                                  strlen(lt_pass), key),
                     0);
    unhex("e8ca7ad59d5eb0518e312911d2dab2a9", want_key, sizeof want_key);
    ck_assert_mem_eq(key, want_key, sizeof key);
    ck_assert_int_eq(stun_msg_check_integrity(&m, key, sizeof key), 1);
    /* the key is the MD5, not the password */
    ck_assert_int_eq(stun_msg_check_integrity(&m, (const uint8_t *)lt_pass, strlen(lt_pass)), 0);
    buf[50] ^= 0x20; /* inside NONCE; no FINGERPRINT here, so only the MAC notices */
    PARSE_OK(&m, buf, n);
    ck_assert_int_eq(stun_msg_check_integrity(&m, key, sizeof key), 0);
}
END_TEST

START_TEST(test_5769_long_term_rebuild)
{
    uint8_t want[256], buf[256], key[STUN_MD5_LEN];
    size_t wn = unhex(rfc5769_long_term, want, sizeof want);
    ck_assert_int_eq(stun_key_md5(lt_user, strlen(lt_user), lt_realm, strlen(lt_realm), lt_pass,
                                  strlen(lt_pass), key),
                     0);
    struct stun_builder b;
    stun_build_init(&b, buf, sizeof buf, STUN_BINDING, STUN_REQUEST, long_term_tid);
    stun_build_attr(&b, STUN_ATTR_USERNAME, lt_user, strlen(lt_user));
    stun_build_attr(&b, STUN_ATTR_NONCE, "f//499k954d6OL34oL9FSTvy64sA", 28);
    stun_build_attr(&b, STUN_ATTR_REALM, lt_realm, strlen(lt_realm));
    stun_build_integrity(&b, key, sizeof key);
    size_t n = stun_build_finish(&b);
    ck_assert_uint_eq(n, wn);
    ck_assert_mem_eq(buf, want, n);
}
END_TEST

/* ------------------------------------------------------------------ RFC 8489 B.1 */

/* RFC 8489 Appendix B.1 as printed cannot be reproduced: its length field (0x9c) counts the
 * header, and its MAC was computed with that wrong length. The corrected vector (RFC errata)
 * adds PASSWORD-ALGORITHM (SHA-256), has length 0x90, and its MAC verifies with
 * key = SHA-256("マトリックス:example.org:TheMatrIX"). */
static const char rfc8489_b1[] = "00 01 00 90 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e"
                                 "00 1e 00 20 4a 3c f3 8f ef 69 92 bd a9 52 c6 78 04 17 da 0f"
                                 "24 81 94 15 56 9e 60 b2 05 c4 6e 41 40 7f 17 04"
                                 "00 15 00 29 6f 62 4d 61 74 4a 6f 73 32 41 41 41 43 66 2f 2f"
                                 "34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76"
                                 "79 36 34 73 41 00 00 00"
                                 "00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00"
                                 "00 1d 00 04 00 02 00 00"
                                 "00 1c 00 20 b5 c7 bf 00 5b 6c 52 a2 1c 51 c5 e8 92 f8 19 24"
                                 "13 62 96 cb 92 7c 43 14 93 09 27 8c c6 51 8e 65";

static const char rfc8489_b1_printed[] =
    "00 01 00 9c 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e"
    "00 1e 00 20 4a 3c f3 8f ef 69 92 bd a9 52 c6 78 04 17 da 0f"
    "24 81 94 15 56 9e 60 b2 05 c4 6e 41 40 7f 17 04"
    "00 15 00 29 6f 62 4d 61 74 4a 6f 73 32 41 41 41 43 66 2f 2f"
    "34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76"
    "79 36 34 73 41 00 00 00"
    "00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00"
    "00 1c 00 20 e4 68 6c 8f 0e de b5 90 13 e0 70 90 01 0a 93 ef"
    "cc bc cc 54 4c 0a 45 d9 f8 30 aa 6d 6f 73 5a 01";

static const char b1_nonce[] = "obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA";

static void b1_key(uint8_t key[STUN_SHA256_LEN])
{
    uint8_t want[STUN_SHA256_LEN];
    ck_assert_int_eq(stun_key_sha256(lt_user, strlen(lt_user), lt_realm, strlen(lt_realm), lt_pass,
                                     strlen(lt_pass), key),
                     0);
    unhex("dd295a613b9058c3c23d6dc7165bda072304d989c9d0af3a8c7e184b4f9bb4a1", want, sizeof want);
    ck_assert_mem_eq(key, want, sizeof want);
}

START_TEST(test_8489_b1_verify)
{
    uint8_t buf[256], key[STUN_SHA256_LEN], uh[32];
    size_t n = unhex(rfc8489_b1, buf, sizeof buf);
    struct stun_msg m;
    PARSE_OK(&m, buf, n);
    ck_assert_uint_eq(m.nattrs, 5);
    ck_assert_int_eq(m.mi, -1);
    ck_assert_int_eq(m.mi256, 4);
    ck_attr_str(&m, STUN_ATTR_NONCE, b1_nonce);
    ck_attr_str(&m, STUN_ATTR_REALM, lt_realm);
    /* USERHASH = SHA-256("user:realm") */
    unsigned uhl = 0;
    char ur[64];
    memcpy(ur, lt_user, strlen(lt_user));
    ur[strlen(lt_user)] = ':';
    memcpy(ur + strlen(lt_user) + 1, lt_realm, strlen(lt_realm));
    ck_assert_int_eq(
        EVP_Digest(ur, strlen(lt_user) + 1 + strlen(lt_realm), uh, &uhl, EVP_sha256(), NULL), 1);
    const struct stun_attr *a = stun_msg_find(&m, STUN_ATTR_USERHASH);
    ck_assert_ptr_nonnull(a);
    ck_assert_mem_eq(stun_attr_value(&m, a), uh, 32);
    a = stun_msg_find(&m, STUN_ATTR_PASSWORD_ALGORITHM);
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(stun_get16(stun_attr_value(&m, a)), STUN_PWALG_SHA256);
    b1_key(key);
    ck_assert_int_eq(stun_msg_check_integrity_sha256(&m, key, sizeof key), 1);
    ck_assert_int_eq(stun_msg_check_integrity(&m, key, sizeof key), -1);
    buf[100] ^= 1;
    PARSE_OK(&m, buf, n);
    ck_assert_int_eq(stun_msg_check_integrity_sha256(&m, key, sizeof key), 0);
}
END_TEST

START_TEST(test_8489_b1_rebuild)
{
    uint8_t want[256], buf[256], key[STUN_SHA256_LEN];
    size_t wn = unhex(rfc8489_b1, want, sizeof want);
    struct stun_msg m;
    PARSE_OK(&m, want, wn);
    const struct stun_attr *uh = stun_msg_find(&m, STUN_ATTR_USERHASH);
    ck_assert_ptr_nonnull(uh);
    b1_key(key);
    struct stun_builder b;
    stun_build_init(&b, buf, sizeof buf, STUN_BINDING, STUN_REQUEST, long_term_tid);
    stun_build_attr(&b, STUN_ATTR_USERHASH, stun_attr_value(&m, uh), uh->len);
    stun_build_attr(&b, STUN_ATTR_NONCE, b1_nonce, strlen(b1_nonce));
    stun_build_attr(&b, STUN_ATTR_REALM, lt_realm, strlen(lt_realm));
    stun_build_u32(&b, STUN_ATTR_PASSWORD_ALGORITHM, (uint32_t)STUN_PWALG_SHA256 << 16);
    stun_build_integrity_sha256(&b, key, sizeof key);
    size_t n = stun_build_finish(&b);
    ck_assert_uint_eq(n, wn);
    ck_assert_mem_eq(buf, want, n);
}
END_TEST

START_TEST(test_8489_b1_as_printed)
{
    uint8_t buf[256];
    size_t n = unhex(rfc8489_b1_printed, buf, sizeof buf);
    ck_assert_uint_eq(n, 156);
    ck_assert_int_eq(parse_err(buf, n), STUN_PARSE_TRUNCATED);
}
END_TEST

/* MESSAGE-INTEGRITY-SHA256 truncated to 16..28 bytes: the sender's MAC covers a header whose
 * length ends after the truncated attribute. */
START_TEST(test_mi256_truncated)
{
    static const uint8_t key[] = "truncation key";
    for (size_t maclen = 16; maclen <= 32; maclen += 4) {
        uint8_t buf[128], mac[EVP_MAX_MD_SIZE];
        unsigned ml = 0;
        struct stun_builder b;
        stun_build_init(&b, buf, sizeof buf, TURN_ALLOCATE, STUN_REQUEST, tid_a);
        stun_build_attr(&b, STUN_ATTR_USERNAME, "user", 4);
        stun_put16(buf + 2, (uint16_t)(b.len - STUN_HEADER_LEN + 4 + maclen));
        ck_assert_ptr_nonnull(HMAC(EVP_sha256(), key, sizeof key, buf, b.len, mac, &ml));
        stun_build_attr(&b, STUN_ATTR_MESSAGE_INTEGRITY_SHA256, mac, maclen);
        size_t n = stun_build_finish(&b);
        ck_assert_uint_ne(n, 0);
        struct stun_msg m;
        PARSE_OK(&m, buf, n);
        ck_assert_int_eq(stun_msg_check_integrity_sha256(&m, key, sizeof key), 1);
        buf[n - 1] ^= 1;
        PARSE_OK(&m, buf, n);
        ck_assert_int_eq(stun_msg_check_integrity_sha256(&m, key, sizeof key), 0);
    }
}
END_TEST

START_TEST(test_mi_then_mi256)
{
    static const uint8_t key[] = "k";
    uint8_t buf[256];
    struct stun_builder b;
    stun_build_init(&b, buf, sizeof buf, TURN_REFRESH, STUN_REQUEST, tid_a);
    stun_build_u32(&b, STUN_ATTR_LIFETIME, 600);
    stun_build_integrity(&b, key, 1);
    stun_build_integrity_sha256(&b, key, 1);
    stun_build_fingerprint(&b);
    size_t n = stun_build_finish(&b);
    ck_assert_uint_eq(n, 20 + 8 + 24 + 36 + 8);
    struct stun_msg m;
    PARSE_OK(&m, buf, n);
    ck_assert_int_eq(m.mi, 1);
    ck_assert_int_eq(m.mi256, 2);
    ck_assert_int_eq(m.fp, 3);
    ck_assert_int_eq(stun_msg_check_integrity(&m, key, 1), 1);
    ck_assert_int_eq(stun_msg_check_integrity_sha256(&m, key, 1), 1);

    /* MESSAGE-INTEGRITY after MESSAGE-INTEGRITY-SHA256 is ignored (RFC 8489 14.6) */
    stun_build_init(&b, buf, sizeof buf, TURN_REFRESH, STUN_REQUEST, tid_a);
    stun_build_integrity_sha256(&b, key, 1);
    stun_build_integrity(&b, key, 1);
    n = stun_build_finish(&b);
    PARSE_OK(&m, buf, n);
    ck_assert_uint_eq(m.nattrs, 1);
    ck_assert_int_eq(m.mi, -1);
    ck_assert_int_eq(stun_msg_check_integrity(&m, key, 1), -1);
    ck_assert_int_eq(stun_msg_check_integrity_sha256(&m, key, 1), 1);
}
END_TEST

START_TEST(test_attrs_after_mi_ignored)
{
    static const uint8_t key[] = "secret";
    uint8_t buf[256];
    struct stun_builder b;
    stun_build_init(&b, buf, sizeof buf, TURN_ALLOCATE, STUN_REQUEST, tid_a);
    stun_build_u32(&b, STUN_ATTR_REQUESTED_TRANSPORT, 17u << 24);
    stun_build_integrity(&b, key, 6);
    stun_build_attr(&b, STUN_ATTR_SOFTWARE, "evil", 4);
    stun_build_u32(&b, STUN_ATTR_LIFETIME, 1);
    stun_build_attr(&b, STUN_ATTR_LIFETIME, "x", 1); /* impossible, but ignored */
    stun_build_fingerprint(&b);
    size_t n = stun_build_finish(&b);
    struct stun_msg m;
    PARSE_OK(&m, buf, n);
    ck_assert_uint_eq(m.nattrs, 3);
    ck_assert_ptr_null(stun_msg_find(&m, STUN_ATTR_SOFTWARE));
    ck_assert_ptr_null(stun_msg_find(&m, STUN_ATTR_LIFETIME));
    ck_assert_int_eq(m.fp, 2);
    ck_assert_int_eq(stun_msg_check_integrity(&m, key, 6), 1);
}
END_TEST

/* ------------------------------------------------------------------ malformed messages */

/* A valid Binding request with SOFTWARE "abc" (padded) and PRIORITY; returns its length. */
static size_t small_request(uint8_t *buf, size_t cap)
{
    struct stun_builder b;
    stun_build_init(&b, buf, cap, STUN_BINDING, STUN_REQUEST, tid_a);
    stun_build_attr(&b, STUN_ATTR_SOFTWARE, "abc", 3);
    stun_build_u32(&b, STUN_ATTR_PRIORITY, 7);
    size_t n = stun_build_finish(&b);
    ck_assert_uint_eq(n, 36);
    return n;
}

START_TEST(test_bad_truncated_header)
{
    uint8_t buf[64];
    size_t n = small_request(buf, sizeof buf);
    for (size_t len = 0; len < STUN_HEADER_LEN; len++)
        ck_assert_int_eq(parse_err(buf, len), STUN_PARSE_TRUNCATED);
    ck_assert_int_eq(parse_err(NULL, 0), STUN_PARSE_TRUNCATED);
    struct stun_msg m;
    PARSE_OK(&m, buf, n);
}
END_TEST

START_TEST(test_bad_length_not_multiple_of_4)
{
    uint8_t buf[64];
    size_t n = small_request(buf, sizeof buf);
    for (uint16_t l = 13; l <= 15; l++) {
        stun_put16(buf + 2, l);
        ck_assert_int_eq(parse_err(buf, n), STUN_PARSE_BAD_LENGTH);
        ck_assert_int_eq(parse_err(buf, STUN_HEADER_LEN + l), STUN_PARSE_BAD_LENGTH);
    }
}
END_TEST

START_TEST(test_bad_length_vs_datagram)
{
    uint8_t buf[64];
    size_t n = small_request(buf, sizeof buf);
    memset(buf + n, 0, 8);
    ck_assert_int_eq(parse_err(buf, n + 4), STUN_PARSE_BAD_LENGTH); /* trailing bytes */
    ck_assert_int_eq(parse_err(buf, n - 4), STUN_PARSE_TRUNCATED);  /* cut datagram */
    stun_put16(buf + 2, 0xFFFC);
    ck_assert_int_eq(parse_err(buf, n), STUN_PARSE_TRUNCATED);
    stun_put16(buf + 2, 4);
    /* the length now ends inside an attribute: SOFTWARE's value runs past it */
    ck_assert_int_eq(parse_err(buf, 24), STUN_PARSE_ATTR_OVERRUN);
}
END_TEST

START_TEST(test_bad_attr_past_end)
{
    uint8_t buf[64];
    size_t n = small_request(buf, sizeof buf);
    stun_put16(buf + 22, 13); /* SOFTWARE claims 13 bytes (16 padded); 12 remain */
    ck_assert_int_eq(parse_err(buf, n), STUN_PARSE_ATTR_OVERRUN);
    stun_put16(buf + 22, 0xFFFF);
    ck_assert_int_eq(parse_err(buf, n), STUN_PARSE_ATTR_OVERRUN);
    /* the value fits but its padding would not */
    n = small_request(buf, sizeof buf);
    stun_put16(buf + 30, 5); /* PRIORITY: 4 value bytes remain, 8 with padding are needed */
    ck_assert_int_eq(parse_err(buf, n), STUN_PARSE_ATTR_OVERRUN);
}
END_TEST

/* With the length a multiple of 4 an attribute header can only be cut together with a bad
 * length, which is how it is reported; either way the message is refused. */
START_TEST(test_bad_attr_header_cut)
{
    uint8_t buf[64];
    size_t n = small_request(buf, sizeof buf);
    stun_put16(buf + 2, (uint16_t)(n - STUN_HEADER_LEN + 2));
    memset(buf + n, 0, 2);
    ck_assert_int_eq(parse_err(buf, n + 2), STUN_PARSE_BAD_LENGTH);
    stun_put16(buf + 2, (uint16_t)(n - STUN_HEADER_LEN + 4));
    ck_assert_int_eq(parse_err(buf, n + 2), STUN_PARSE_TRUNCATED);
}
END_TEST

START_TEST(test_bad_too_many_attrs)
{
    uint8_t buf[1024];
    struct stun_builder b;
    struct stun_msg m;
    stun_build_init(&b, buf, sizeof buf, STUN_BINDING, STUN_INDICATION, tid_a);
    for (int i = 0; i < STUN_MAX_ATTRS; i++)
        stun_build_attr(&b, 0x8050, NULL, 0);
    size_t n = stun_build_finish(&b);
    PARSE_OK(&m, buf, n);
    ck_assert_uint_eq(m.nattrs, STUN_MAX_ATTRS);
    stun_build_attr(&b, 0x8050, NULL, 0);
    n = stun_build_finish(&b);
    ck_assert_int_eq(parse_err(buf, n), STUN_PARSE_TOO_MANY_ATTRS);

    /* ignored attributes after MESSAGE-INTEGRITY do not count */
    stun_build_init(&b, buf, sizeof buf, STUN_BINDING, STUN_REQUEST, tid_a);
    for (int i = 0; i < STUN_MAX_ATTRS - 2; i++)
        stun_build_attr(&b, 0x8050, NULL, 0);
    stun_build_integrity(&b, (const uint8_t *)"k", 1);
    for (int i = 0; i < 10; i++)
        stun_build_attr(&b, 0x8050, NULL, 0);
    stun_build_fingerprint(&b);
    n = stun_build_finish(&b);
    PARSE_OK(&m, buf, n);
    ck_assert_uint_eq(m.nattrs, STUN_MAX_ATTRS);
}
END_TEST

START_TEST(test_bad_fingerprint)
{
    uint8_t buf[64];
    struct stun_builder b;
    stun_build_init(&b, buf, sizeof buf, STUN_BINDING, STUN_REQUEST, tid_a);
    stun_build_fingerprint(&b);
    size_t n = stun_build_finish(&b);
    struct stun_msg m;
    PARSE_OK(&m, buf, n);
    ck_assert_int_eq(m.fp, 0);
    buf[n - 1] ^= 1;
    ck_assert_int_eq(parse_err(buf, n), STUN_PARSE_BAD_FINGERPRINT);
    buf[n - 1] ^= 1;
    buf[10] ^= 1; /* the transaction id is covered too */
    ck_assert_int_eq(parse_err(buf, n), STUN_PARSE_BAD_FINGERPRINT);
}
END_TEST

START_TEST(test_bad_fingerprint_not_last)
{
    uint8_t buf[64];
    struct stun_builder b;
    stun_build_init(&b, buf, sizeof buf, STUN_BINDING, STUN_REQUEST, tid_a);
    stun_build_fingerprint(&b);
    stun_build_u32(&b, STUN_ATTR_PRIORITY, 1);
    size_t n = stun_build_finish(&b);
    ck_assert_int_eq(parse_err(buf, n), STUN_PARSE_BAD_FINGERPRINT);
    /* two fingerprints, the first one correct */
    stun_build_init(&b, buf, sizeof buf, STUN_BINDING, STUN_REQUEST, tid_a);
    stun_build_fingerprint(&b);
    stun_build_fingerprint(&b);
    n = stun_build_finish(&b);
    ck_assert_int_eq(parse_err(buf, n), STUN_PARSE_BAD_FINGERPRINT);
}
END_TEST

START_TEST(test_bad_top_bits)
{
    uint8_t buf[64];
    size_t n = small_request(buf, sizeof buf);
    static const uint8_t tops[] = {0x40, 0x80, 0xC0};
    for (size_t i = 0; i < sizeof tops; i++) {
        uint8_t c[64];
        memcpy(c, buf, n);
        c[0] |= tops[i];
        ck_assert_int_eq(parse_err(c, n), STUN_PARSE_NOT_STUN);
        ck_assert(!stun_is_stun(c, n));
    }
}
END_TEST

/* One message holding a single attribute of type with len zero bytes. */
static enum stun_parse_err parse_one_attr(uint16_t type, size_t len)
{
    static uint8_t zero[1024];
    uint8_t buf[1200];
    struct stun_builder b;
    stun_build_init(&b, buf, sizeof buf, STUN_BINDING, STUN_REQUEST, tid_a);
    stun_build_attr(&b, type, zero, len);
    size_t n = stun_build_finish(&b);
    ck_assert_uint_ne(n, 0);
    struct stun_msg m;
    enum stun_parse_err e;
    int r = stun_msg_parse(&m, buf, n, &e);
    ck_assert_int_eq(r, e == STUN_PARSE_OK ? 0 : -1);
    return e;
}

START_TEST(test_bad_known_attr_lengths)
{
    /* (type, length) pairs */
    /* clang-format off */
    static const uint16_t bad[] = {
        STUN_ATTR_XOR_MAPPED_ADDRESS, 4, STUN_ATTR_XOR_MAPPED_ADDRESS, 12,
        STUN_ATTR_XOR_MAPPED_ADDRESS, 16, STUN_ATTR_XOR_MAPPED_ADDRESS, 24,
        STUN_ATTR_MAPPED_ADDRESS, 9, STUN_ATTR_XOR_PEER_ADDRESS, 21,
        STUN_ATTR_XOR_RELAYED_ADDRESS, 0, STUN_ATTR_ALTERNATE_SERVER, 4, STUN_ATTR_LIFETIME, 0,
        STUN_ATTR_LIFETIME, 8, STUN_ATTR_MESSAGE_INTEGRITY, 16, STUN_ATTR_MESSAGE_INTEGRITY, 32,
        STUN_ATTR_MESSAGE_INTEGRITY_SHA256, 12, STUN_ATTR_MESSAGE_INTEGRITY_SHA256, 18,
        STUN_ATTR_MESSAGE_INTEGRITY_SHA256, 36, STUN_ATTR_CHANNEL_NUMBER, 2,
        STUN_ATTR_REQUESTED_TRANSPORT, 1, STUN_ATTR_REQUESTED_TRANSPORT, 8,
        STUN_ATTR_FINGERPRINT, 8, STUN_ATTR_FINGERPRINT, 0, STUN_ATTR_ERROR_CODE, 3,
        STUN_ATTR_ERROR_CODE, 768, STUN_ATTR_USERNAME, 514, STUN_ATTR_REALM, 764,
        STUN_ATTR_NONCE, 764, STUN_ATTR_SOFTWARE, 764, STUN_ATTR_USERHASH, 16,
        STUN_ATTR_PRIORITY, 8, STUN_ATTR_ICE_CONTROLLED, 4, STUN_ATTR_ICE_CONTROLLING, 16,
        STUN_ATTR_EVEN_PORT, 4, STUN_ATTR_DONT_FRAGMENT, 4, STUN_ATTR_USE_CANDIDATE, 1,
        STUN_ATTR_UNKNOWN_ATTRIBUTES, 3, STUN_ATTR_REQUESTED_ADDRESS_FAMILY, 1,
        STUN_ATTR_CONNECTION_ID, 8, STUN_ATTR_PASSWORD_ALGORITHM, 2,
        STUN_ATTR_RESERVATION_TOKEN, 4
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i += 2)
        ck_assert_msg(parse_one_attr(bad[i], bad[i + 1]) == STUN_PARSE_BAD_ATTR,
                      "type 0x%04x len %u accepted", bad[i], bad[i + 1]);
    /* clang-format off */
    static const uint16_t good[] = {
        STUN_ATTR_XOR_MAPPED_ADDRESS, 8, STUN_ATTR_XOR_MAPPED_ADDRESS, 20,
        STUN_ATTR_USERNAME, 513, STUN_ATTR_REALM, 763, STUN_ATTR_MESSAGE_INTEGRITY_SHA256, 16,
        STUN_ATTR_MESSAGE_INTEGRITY_SHA256, 28, STUN_ATTR_DATA, 0, STUN_ATTR_DATA, 1000,
        STUN_ATTR_ERROR_CODE, 4, STUN_ATTR_EVEN_PORT, 1, STUN_ATTR_UNKNOWN_ATTRIBUTES, 6,
        0x7FFF, 3, 0xC057, 4
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i += 2)
        ck_assert_msg(parse_one_attr(good[i], good[i + 1]) == STUN_PARSE_OK,
                      "type 0x%04x len %u refused", good[i], good[i + 1]);
}
END_TEST

START_TEST(test_rfc3489_request)
{
    /* an RFC 3489 Binding request: 16-byte transaction id, no cookie, CHANGE-REQUEST */
    uint8_t buf[64];
    size_t n =
        unhex("0001 0008 a1a2a3a4 b1b2b3b4 c1c2c3c4 d1d2d3d4 0003 0004 00000000", buf, sizeof buf);
    struct stun_msg m;
    PARSE_OK(&m, buf, n);
    ck_assert(m.rfc3489);
    ck_assert(!stun_is_stun(buf, n));
    ck_assert_mem_eq(m.tid16, buf + 4, 16);
    ck_assert_mem_eq(m.tid, buf + 8, STUN_TID_LEN);
    ck_assert_uint_eq(m.method, STUN_BINDING);
    ck_assert_uint_eq(stun_frame_len(buf, n, false), (long)n);

    /* the reply echoes the 16-byte id and uses MAPPED-ADDRESS */
    uint8_t out[128];
    struct sockaddr_storage ss;
    socklen_t sl;
    make_sa(&ss, "198.51.100.7", 4242);
    struct stun_builder b;
    stun_build_reply(&b, out, sizeof out, &m, STUN_SUCCESS);
    ck_assert(b.rfc3489);
    stun_build_addr(&b, STUN_ATTR_MAPPED_ADDRESS, (const struct sockaddr *)&ss);
    uint16_t unknown[] = {0x0002, 0x0004, 0x0005};
    stun_build_unknown(&b, unknown, 3);
    n = stun_build_finish(&b);
    ck_assert_uint_eq(n, 20 + 12 + 12);
    ck_assert_uint_eq(stun_get16(out), 0x0101);
    ck_assert_mem_eq(out + 4, m.tid16, 16);
    struct stun_msg r;
    PARSE_OK(&r, out, n);
    ck_assert(r.rfc3489);
    ck_assert_int_eq(stun_attr_get_addr(&r, stun_msg_find(&r, STUN_ATTR_MAPPED_ADDRESS), &ss, &sl),
                     0);
    ck_addr_is(&ss, sl, "198.51.100.7", 4242);
    const struct stun_attr *a = stun_msg_find(&r, STUN_ATTR_UNKNOWN_ATTRIBUTES);
    ck_assert_uint_eq(a->len, 8); /* odd list: the last type repeated, as RFC 3489 wants */
    ck_assert_uint_eq(stun_get16(stun_attr_value(&r, a) + 6), 0x0005);
}
END_TEST

START_TEST(test_parse_err_strings)
{
    for (int e = STUN_PARSE_OK; e <= STUN_PARSE_BAD_ATTR; e++) {
        const char *s = stun_parse_err_str((enum stun_parse_err)e);
        ck_assert_ptr_nonnull(s);
        for (int f = STUN_PARSE_OK; f < e; f++)
            ck_assert_str_ne(s, stun_parse_err_str((enum stun_parse_err)f));
    }
    ck_assert_ptr_nonnull(stun_parse_err_str((enum stun_parse_err)99));
    struct stun_msg m;
    ck_assert_int_eq(stun_msg_parse(&m, (const uint8_t *)"x", 1, NULL), -1);
}
END_TEST

/* ------------------------------------------------------------------ builder */

START_TEST(test_build_addresses)
{
    static const uint16_t types[] = {STUN_ATTR_MAPPED_ADDRESS,   STUN_ATTR_XOR_MAPPED_ADDRESS,
                                     STUN_ATTR_XOR_PEER_ADDRESS, STUN_ATTR_XOR_RELAYED_ADDRESS,
                                     STUN_ATTR_ALTERNATE_SERVER, STUN_ATTR_RESPONSE_ORIGIN,
                                     STUN_ATTR_OTHER_ADDRESS};
    static const struct {
        const char *ip;
        uint16_t port;
    } addrs[] = {{"192.0.2.1", 32853},  {"0.0.0.0", 0}, {"255.255.255.255", 65535},
                 {"2001:db8::1", 3478}, {"::", 1},      {"::ffff:10.0.0.1", 49152}};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        bool xor = types[t] != STUN_ATTR_MAPPED_ADDRESS && types[t] != STUN_ATTR_ALTERNATE_SERVER &&
                   types[t] != STUN_ATTR_RESPONSE_ORIGIN && types[t] != STUN_ATTR_OTHER_ADDRESS;
        for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
            uint8_t buf[64];
            struct sockaddr_storage ss, got;
            socklen_t sl;
            make_sa(&ss, addrs[i].ip, addrs[i].port);
            struct stun_builder b;
            stun_build_init(&b, buf, sizeof buf, TURN_ALLOCATE, STUN_SUCCESS, tid_a);
            if (xor)
                stun_build_xaddr(&b, types[t], (const struct sockaddr *)&ss);
            else
                stun_build_addr(&b, types[t], (const struct sockaddr *)&ss);
            size_t n = stun_build_finish(&b);
            ck_assert_uint_eq(n, 20 + 4 + (ss.ss_family == AF_INET ? 8 : 20));
            struct stun_msg m;
            PARSE_OK(&m, buf, n);
            const struct stun_attr *a = stun_msg_find(&m, types[t]);
            ck_assert_ptr_nonnull(a);
            int r =
                xor? stun_attr_get_xaddr(&m, a, &got, &sl) : stun_attr_get_addr(&m, a, &got, &sl);
            ck_assert_int_eq(r, 0);
            ck_addr_is(&got, sl, addrs[i].ip, addrs[i].port);
        }
    }
}
END_TEST

START_TEST(test_build_addr_bad_family)
{
    uint8_t buf[64];
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_family = AF_UNIX;
    struct stun_builder b;
    stun_build_init(&b, buf, sizeof buf, STUN_BINDING, STUN_SUCCESS, tid_a);
    stun_build_xaddr(&b, STUN_ATTR_XOR_MAPPED_ADDRESS, (const struct sockaddr *)&ss);
    ck_assert_uint_eq(stun_build_finish(&b), 0);

    /* family byte inconsistent with the length */
    size_t n = unhex("0101 000c 2112a442 000000000000000000000000 0020 0008 0002 0000 00000000",
                     buf, sizeof buf);
    struct stun_msg m;
    socklen_t sl;
    PARSE_OK(&m, buf, n);
    ck_assert_int_eq(stun_attr_get_xaddr(&m, &m.attrs[0], &ss, &sl), -1);
    ck_assert_int_eq(stun_attr_get_addr(&m, &m.attrs[0], &ss, &sl), -1);
    ck_assert_int_eq(stun_attr_get_error(&m, &m.attrs[0], &(int){0}, NULL, NULL), -1);
}
END_TEST

START_TEST(test_build_error_code)
{
    uint8_t buf[128];
    struct stun_builder b;
    struct stun_msg m;
    int code;
    const char *reason;
    size_t rlen;
    stun_build_init(&b, buf, sizeof buf, TURN_ALLOCATE, STUN_ERROR, tid_a);
    stun_build_error(&b, 438, NULL);
    size_t n = stun_build_finish(&b);
    PARSE_OK(&m, buf, n);
    ck_assert_uint_eq(stun_get16(buf), 0x0113);
    const struct stun_attr *a = stun_msg_find(&m, STUN_ATTR_ERROR_CODE);
    ck_assert_ptr_nonnull(a);
    const uint8_t *v = stun_attr_value(&m, a);
    ck_assert_uint_eq(v[2], 4);  /* class */
    ck_assert_uint_eq(v[3], 38); /* number */
    ck_assert_int_eq(stun_attr_get_error(&m, a, &code, &reason, &rlen), 0);
    ck_assert_int_eq(code, 438);
    ck_assert_uint_eq(rlen, strlen("Stale Nonce"));
    ck_assert_mem_eq(reason, "Stale Nonce", rlen);
    ck_assert_mem_eq(v + 4 + rlen, "\0", 1); /* 11 bytes: one padding byte, zero */

    static const int codes[] = {300, 401, 420, 486, 508, 699};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        stun_build_init(&b, buf, sizeof buf, STUN_BINDING, STUN_ERROR, tid_a);
        stun_build_error(&b, codes[i], "custom");
        n = stun_build_finish(&b);
        PARSE_OK(&m, buf, n);
        ck_assert_int_eq(stun_attr_get_error(&m, &m.attrs[0], &code, &reason, &rlen), 0);
        ck_assert_int_eq(code, codes[i]);
        ck_assert_mem_eq(reason, "custom", rlen);
    }
    static const int bad[] = {0, 200, 299, 700, -400};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        stun_build_init(&b, buf, sizeof buf, STUN_BINDING, STUN_ERROR, tid_a);
        stun_build_error(&b, bad[i], NULL);
        ck_assert_uint_eq(stun_build_finish(&b), 0);
    }
    /* a code whose class is out of range on the wire */
    n = unhex("0111 0008 2112a442 000000000000000000000000 0009 0004 0000 0299", buf, sizeof buf);
    PARSE_OK(&m, buf, n);
    ck_assert_int_eq(stun_attr_get_error(&m, &m.attrs[0], &code, NULL, NULL), -1);
    buf[26] = 6; /* class 6, number 100 */
    buf[27] = 100;
    PARSE_OK(&m, buf, n);
    ck_assert_int_eq(stun_attr_get_error(&m, &m.attrs[0], &code, NULL, NULL), -1);
}
END_TEST

START_TEST(test_build_unknown_attrs)
{
    uint8_t buf[128];
    memset(buf, 0xAA, sizeof buf);
    static const uint16_t types[] = {0x0002, 0x7F01, 0x0031};
    struct stun_builder b;
    stun_build_init(&b, buf, sizeof buf, STUN_BINDING, STUN_ERROR, tid_a);
    stun_build_error(&b, 420, NULL);
    stun_build_unknown(&b, types, 3);
    size_t n = stun_build_finish(&b);
    struct stun_msg m;
    PARSE_OK(&m, buf, n);
    const struct stun_attr *a = stun_msg_find(&m, STUN_ATTR_UNKNOWN_ATTRIBUTES);
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(a->len, 6);
    const uint8_t *v = stun_attr_value(&m, a);
    for (int i = 0; i < 3; i++)
        ck_assert_uint_eq(stun_get16(v + 2 * i), types[i]);
    ck_assert_mem_eq(v + 6, "\0\0", 2); /* padding zeroed */
    ck_assert_uint_eq(n, (size_t)(v + 8 - buf));

    stun_build_init(&b, buf, sizeof buf, STUN_BINDING, STUN_ERROR, tid_a);
    stun_build_unknown(&b, types, 2);
    n = stun_build_finish(&b);
    ck_assert_uint_eq(n, 20 + 4 + 4);
}
END_TEST

START_TEST(test_build_overflow)
{
    uint8_t buf[64 + 16];
    struct stun_builder b;
    for (size_t cap = 0; cap < 64; cap++) {
        memset(buf, 0x5A, sizeof buf);
        stun_build_init(&b, buf, cap, STUN_BINDING, STUN_REQUEST, tid_a);
        stun_build_attr(&b, STUN_ATTR_SOFTWARE, "meetlite", 8); /* 32 */
        stun_build_u32(&b, STUN_ATTR_PRIORITY, 1);              /* 40 */
        stun_build_integrity(&b, (const uint8_t *)"k", 1);      /* 64 */
        size_t n = stun_build_finish(&b);
        if (cap < 64) {
            ck_assert_uint_eq(n, 0);
            ck_assert(b.overflow);
        }
        for (size_t i = cap; i < sizeof buf; i++)
            ck_assert_uint_eq(buf[i], 0x5A);
        /* once failed, it stays failed, even when a smaller attribute would fit */
        stun_build_attr(&b, STUN_ATTR_DONT_FRAGMENT, NULL, 0);
        ck_assert_uint_eq(stun_build_finish(&b), 0);
    }
    stun_build_init(&b, buf, 64, STUN_BINDING, STUN_REQUEST, tid_a);
    stun_build_attr(&b, STUN_ATTR_SOFTWARE, "meetlite", 8);
    stun_build_u32(&b, STUN_ATTR_PRIORITY, 1);
    stun_build_integrity(&b, (const uint8_t *)"k", 1);
    ck_assert_uint_eq(stun_build_finish(&b), 64);
    stun_build_fingerprint(&b);
    ck_assert_uint_eq(stun_build_finish(&b), 0);
}
END_TEST

START_TEST(test_build_too_long)
{
    static uint8_t big[70000], val[0x10000];
    struct stun_builder b;
    stun_build_init(&b, big, sizeof big, STUN_BINDING, STUN_INDICATION, tid_a);
    stun_build_attr(&b, STUN_ATTR_DATA, val, 0x10000); /* longer than a length field holds */
    ck_assert_uint_eq(stun_build_finish(&b), 0);
    stun_build_init(&b, big, sizeof big, STUN_BINDING, STUN_INDICATION, tid_a);
    stun_build_attr(&b, STUN_ATTR_DATA, val, 0xFFF8); /* body 0xFFFC */
    size_t n = stun_build_finish(&b);
    ck_assert_uint_eq(n, 20 + 0xFFFC);
    struct stun_msg m;
    PARSE_OK(&m, big, n);
    stun_build_attr(&b, STUN_ATTR_DONT_FRAGMENT, NULL, 0); /* body would be 0x10000 */
    ck_assert_uint_eq(stun_build_finish(&b), 0);
}
END_TEST

START_TEST(test_build_integrity_fingerprint)
{
    static const uint8_t key[] = {0x01, 0x02, 0x03, 0x00, 0xFF};
    uint8_t buf[256];
    struct stun_builder b;
    stun_build_init(&b, buf, sizeof buf, TURN_CREATE_PERMISSION, STUN_REQUEST, tid_a);
    struct sockaddr_storage ss;
    make_sa(&ss, "203.0.113.9", 0);
    stun_build_xaddr(&b, STUN_ATTR_XOR_PEER_ADDRESS, (const struct sockaddr *)&ss);
    stun_build_attr(&b, STUN_ATTR_USERNAME, "alice", 5);
    stun_build_attr(&b, STUN_ATTR_REALM, "meetlite", 8);
    stun_build_attr(&b, STUN_ATTR_NONCE, "0123456789abcdef", 16);
    stun_build_integrity(&b, key, sizeof key);
    stun_build_fingerprint(&b);
    size_t n = stun_build_finish(&b);
    ck_assert_uint_ne(n, 0);
    struct stun_msg m;
    PARSE_OK(&m, buf, n);
    ck_assert_uint_eq(m.method, TURN_CREATE_PERMISSION);
    ck_assert_uint_eq(m.cls, STUN_REQUEST);
    ck_assert_int_eq(stun_msg_check_integrity(&m, key, sizeof key), 1);
    ck_assert_int_eq(stun_msg_check_integrity(&m, key, sizeof key - 1), 0);
    ck_assert_int_eq(stun_msg_check_integrity_sha256(&m, key, sizeof key), -1);

    /* an empty key is a key */
    stun_build_init(&b, buf, sizeof buf, STUN_BINDING, STUN_REQUEST, tid_a);
    stun_build_integrity(&b, NULL, 0);
    n = stun_build_finish(&b);
    ck_assert_uint_eq(n, 44);
    PARSE_OK(&m, buf, n);
    ck_assert_int_eq(stun_msg_check_integrity(&m, (const uint8_t *)"", 0), 1);
    ck_assert_int_eq(stun_msg_check_integrity(&m, NULL, 0), 1);
    ck_assert_int_eq(stun_msg_check_integrity(&m, key, 1), 0);
}
END_TEST

START_TEST(test_build_integrity_sha256)
{
    uint8_t key[STUN_SHA256_LEN], buf[256];
    ck_assert_int_eq(stun_key_sha256("bob", 3, "meetlite", 8, "pw", 2, key), 0);
    struct stun_builder b;
    stun_build_init(&b, buf, sizeof buf, TURN_CHANNEL_BIND, STUN_REQUEST, tid_a);
    stun_build_u32(&b, STUN_ATTR_CHANNEL_NUMBER, 0x40000000);
    stun_build_u32(&b, STUN_ATTR_PASSWORD_ALGORITHM, (uint32_t)STUN_PWALG_SHA256 << 16);
    stun_build_integrity_sha256(&b, key, sizeof key);
    stun_build_fingerprint(&b);
    size_t n = stun_build_finish(&b);
    struct stun_msg m;
    PARSE_OK(&m, buf, n);
    ck_assert_int_eq(m.mi256, 2);
    ck_assert_uint_eq(m.attrs[2].len, 32);
    ck_assert_int_eq(stun_msg_check_integrity_sha256(&m, key, sizeof key), 1);
    key[31] ^= 1;
    ck_assert_int_eq(stun_msg_check_integrity_sha256(&m, key, sizeof key), 0);
}
END_TEST

START_TEST(test_build_padding_zeroed)
{
    uint8_t buf[256];
    memset(buf, 0xEE, sizeof buf);
    struct stun_builder b;
    stun_build_init(&b, buf, sizeof buf, TURN_SEND, STUN_INDICATION, tid_a);
    for (size_t len = 0; len < 8; len++)
        stun_build_attr(&b, STUN_ATTR_DATA, "\x01\x02\x03\x04\x05\x06\x07", len);
    stun_build_attr(&b, STUN_ATTR_EVEN_PORT, "\x80", 1);
    stun_build_error(&b, 400, "x");
    size_t n = stun_build_finish(&b);
    struct stun_msg m;
    PARSE_OK(&m, buf, n);
    for (unsigned i = 0; i < m.nattrs; i++) {
        const struct stun_attr *a = &m.attrs[i];
        size_t padded = (a->len + 3u) & ~3u;
        for (size_t j = a->len; j < padded; j++)
            ck_assert_uint_eq(buf[a->offset + j], 0);
    }
    ck_assert_uint_eq(buf[n], 0xEE);
}
END_TEST

START_TEST(test_build_reply)
{
    uint8_t req[64], out[64];
    struct stun_builder b;
    stun_build_init(&b, req, sizeof req, TURN_REFRESH, STUN_REQUEST, tid_a);
    stun_build_u32(&b, STUN_ATTR_LIFETIME, 0);
    size_t n = stun_build_finish(&b);
    struct stun_msg m, r;
    PARSE_OK(&m, req, n);
    stun_build_reply(&b, out, sizeof out, &m, STUN_SUCCESS);
    ck_assert(!b.rfc3489);
    stun_build_u32(&b, STUN_ATTR_LIFETIME, 0);
    n = stun_build_finish(&b);
    PARSE_OK(&r, out, n);
    ck_assert_uint_eq(r.method, TURN_REFRESH);
    ck_assert_uint_eq(r.cls, STUN_SUCCESS);
    ck_assert_mem_eq(r.tid, tid_a, STUN_TID_LEN);
    ck_assert(stun_is_stun(out, n));
}
END_TEST

START_TEST(test_build_method_class_bits)
{
    static const struct {
        uint16_t method;
        uint8_t cls;
        uint16_t type;
    } cases[] = {{STUN_BINDING, STUN_REQUEST, 0x0001},
                 {STUN_BINDING, STUN_SUCCESS, 0x0101},
                 {STUN_BINDING, STUN_ERROR, 0x0111},
                 {STUN_BINDING, STUN_INDICATION, 0x0011},
                 {TURN_ALLOCATE, STUN_ERROR, 0x0113},
                 {TURN_SEND, STUN_INDICATION, 0x0016},
                 {TURN_DATA, STUN_INDICATION, 0x0017},
                 {TURN_CHANNEL_BIND, STUN_SUCCESS, 0x0109},
                 {TURN_CONNECTION_ATTEMPT, STUN_INDICATION, 0x001c},
                 {0x0FFF, STUN_ERROR, 0x3FFF},
                 {0x0080, STUN_REQUEST, 0x0200}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t buf[32];
        struct stun_builder b;
        stun_build_init(&b, buf, sizeof buf, cases[i].method, cases[i].cls, tid_a);
        size_t n = stun_build_finish(&b);
        ck_assert_uint_eq(n, 20);
        ck_assert_uint_eq(stun_get16(buf), cases[i].type);
        struct stun_msg m;
        PARSE_OK(&m, buf, n);
        ck_assert_uint_eq(m.method, cases[i].method);
        ck_assert_uint_eq(m.cls, cases[i].cls);
    }
}
END_TEST

START_TEST(test_getters_wrong_size)
{
    uint8_t buf[64];
    struct stun_builder b;
    stun_build_init(&b, buf, sizeof buf, STUN_BINDING, STUN_REQUEST, tid_a);
    stun_build_attr(&b, 0x8077, "abcdef", 6);
    stun_build_u64(&b, STUN_ATTR_ICE_CONTROLLING, 0x0102030405060708ull);
    size_t n = stun_build_finish(&b);
    struct stun_msg m;
    PARSE_OK(&m, buf, n);
    uint32_t u32;
    uint64_t u64;
    ck_assert_int_eq(stun_attr_get_u32(&m, &m.attrs[0], &u32), -1);
    ck_assert_int_eq(stun_attr_get_u64(&m, &m.attrs[0], &u64), -1);
    ck_assert_int_eq(stun_attr_get_u32(&m, &m.attrs[1], &u32), -1);
    ck_assert_int_eq(stun_attr_get_u64(&m, &m.attrs[1], &u64), 0);
    ck_assert(u64 == 0x0102030405060708ull);
    ck_assert_ptr_null(stun_msg_find(&m, STUN_ATTR_USERNAME));
}
END_TEST

/* ------------------------------------------------------------------ framing */

START_TEST(test_frame_stream)
{
    uint8_t stream[256];
    size_t off = 0;
    struct stun_builder b;
    stun_build_init(&b, stream, sizeof stream, TURN_ALLOCATE, STUN_REQUEST, tid_a);
    stun_build_u32(&b, STUN_ATTR_REQUESTED_TRANSPORT, 6u << 24);
    size_t n1 = stun_build_finish(&b);
    off += n1;
    stun_channeldata_header(stream + off, 0x4001, 5);
    memcpy(stream + off + 4, "hello\0\0\0", 8);
    off += 12;
    size_t n3 = unhex("0001 0000 a1a2a3a4 b1b2b3b4 c1c2c3c4 d1d2d3d4", stream + off, 64);
    off += n3;
    stun_channeldata_header(stream + off, 0x4FFF, 0);
    off += 4;
    const size_t want[] = {n1, 12, n3, 4};
    size_t pos = 0;
    for (size_t i = 0; i < 4; i++) {
        long fl = stun_frame_len(stream + pos, off - pos, true);
        ck_assert_int_eq(fl, (long)want[i]);
        if (i % 2 == 0) {
            struct stun_msg m;
            PARSE_OK(&m, stream + pos, (size_t)fl);
        } else {
            uint16_t ch;
            const uint8_t *d;
            size_t dl;
            ck_assert_int_eq(stun_channeldata_parse(stream + pos, (size_t)fl, &ch, &d, &dl), 0);
        }
        pos += (size_t)fl;
    }
    ck_assert_uint_eq(pos, off);
    ck_assert_int_eq(stun_frame_len(stream + pos, 0, true), 0);
}
END_TEST

START_TEST(test_frame_partial)
{
    uint8_t buf[64];
    size_t n = small_request(buf, sizeof buf);
    for (size_t avail = 0; avail < 4; avail++)
        ck_assert_int_eq(stun_frame_len(buf, avail, false), 0);
    for (size_t avail = 4; avail <= n; avail++)
        ck_assert_int_eq(stun_frame_len(buf, avail, false), (long)n);
    static const uint8_t cd[] = {0x40, 0x00, 0x00};
    for (size_t avail = 0; avail < 4; avail++)
        ck_assert_int_eq(stun_frame_len(cd, avail, true), 0);
}
END_TEST

START_TEST(test_frame_channeldata)
{
    uint8_t hdr[4];
    for (size_t dlen = 0; dlen < 9; dlen++) {
        stun_channeldata_header(hdr, 0x4abc, dlen);
        ck_assert_uint_eq(stun_get16(hdr), 0x4abc);
        ck_assert_uint_eq(stun_get16(hdr + 2), dlen);
        ck_assert(stun_is_channeldata(hdr, 4));
        ck_assert_int_eq(stun_frame_len(hdr, 4, false), (long)(4 + dlen));
        ck_assert_int_eq(stun_frame_len(hdr, 4, true), (long)(4 + ((dlen + 3) & ~3u)));
    }
    stun_channeldata_header(hdr, 0x7FFF, 0xFFFF);
    ck_assert_int_eq(stun_frame_len(hdr, 4, true), 4 + 0x10000);
}
END_TEST

START_TEST(test_frame_bad_top_bits)
{
    static const uint8_t tops[] = {0x80, 0xC0, 0xFF, 0xBF};
    for (size_t i = 0; i < sizeof tops; i++) {
        uint8_t buf[4] = {tops[i], 0, 0, 4};
        for (size_t avail = 1; avail <= 4; avail++) {
            ck_assert_int_eq(stun_frame_len(buf, avail, false), -1);
            ck_assert_int_eq(stun_frame_len(buf, avail, true), -1);
        }
    }
    uint8_t odd[4] = {0x00, 0x01, 0x00, 0x06}; /* STUN with a length not a multiple of 4 */
    ck_assert_int_eq(stun_frame_len(odd, 4, false), -1);
}
END_TEST

START_TEST(test_channeldata_parse)
{
    uint8_t buf[16] = {0x40, 0x02, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o', 0, 0, 0};
    uint16_t ch = 0;
    const uint8_t *d = NULL;
    size_t dl = 0;
    ck_assert_int_eq(stun_channeldata_parse(buf, 9, &ch, &d, &dl), 0);
    ck_assert_uint_eq(ch, 0x4002);
    ck_assert_uint_eq(dl, 5);
    ck_assert_ptr_eq(d, buf + 4);
    ck_assert_int_eq(stun_channeldata_parse(buf, 12, &ch, &d, &dl), 0); /* padded */
    ck_assert_uint_eq(dl, 5);
    ck_assert_int_eq(stun_channeldata_parse(buf, 8, &ch, &d, &dl), -1); /* length past end */
    ck_assert_int_eq(stun_channeldata_parse(buf, 3, &ch, &d, &dl), -1);
    ck_assert_int_eq(stun_channeldata_parse(NULL, 0, &ch, &d, &dl), -1);
    buf[3] = 0xFF;
    ck_assert_int_eq(stun_channeldata_parse(buf, 16, &ch, &d, &dl), -1);
    buf[0] = 0x00; /* STUN, not ChannelData */
    buf[3] = 0;
    ck_assert_int_eq(stun_channeldata_parse(buf, 16, &ch, &d, &dl), -1);
    ck_assert(!stun_is_channeldata(buf, 16));
}
END_TEST

/* ------------------------------------------------------------------ names, keys, misc */

START_TEST(test_reason_phrases)
{
    static const struct {
        int code;
        const char *phrase;
    } cases[] = {{300, "Try Alternate"},
                 {400, "Bad Request"},
                 {401, "Unauthorized"},
                 {403, "Forbidden"},
                 {420, "Unknown Attribute"},
                 {437, "Allocation Mismatch"},
                 {438, "Stale Nonce"},
                 {440, "Address Family not Supported"},
                 {441, "Wrong Credentials"},
                 {442, "Unsupported Transport Protocol"},
                 {443, "Peer Address Family Mismatch"},
                 {446, "Connection Already Exists"},
                 {447, "Connection Timeout or Failure"},
                 {486, "Allocation Quota Reached"},
                 {487, "Role Conflict"},
                 {500, "Server Error"},
                 {508, "Insufficient Capacity"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_str_eq(stun_reason(cases[i].code), cases[i].phrase);
    ck_assert_ptr_nonnull(stun_reason(0));
    ck_assert_ptr_nonnull(stun_reason(499));
}
END_TEST

START_TEST(test_method_names)
{
    ck_assert_str_eq(stun_method_name(STUN_BINDING), "Binding");
    ck_assert_str_eq(stun_method_name(TURN_ALLOCATE), "Allocate");
    ck_assert_str_eq(stun_method_name(TURN_REFRESH), "Refresh");
    ck_assert_str_eq(stun_method_name(TURN_SEND), "Send");
    ck_assert_str_eq(stun_method_name(TURN_DATA), "Data");
    ck_assert_str_eq(stun_method_name(TURN_CREATE_PERMISSION), "CreatePermission");
    ck_assert_str_eq(stun_method_name(TURN_CHANNEL_BIND), "ChannelBind");
    ck_assert_str_eq(stun_method_name(TURN_CONNECT), "Connect");
    ck_assert_str_eq(stun_method_name(TURN_CONNECTION_BIND), "ConnectionBind");
    ck_assert_str_eq(stun_method_name(TURN_CONNECTION_ATTEMPT), "ConnectionAttempt");
    ck_assert_str_eq(stun_method_name(0x0FFF), "unknown");
}
END_TEST

START_TEST(test_unknown_required)
{
    static const uint16_t known[] = {STUN_ATTR_MAPPED_ADDRESS,
                                     STUN_ATTR_USERNAME,
                                     STUN_ATTR_MESSAGE_INTEGRITY,
                                     STUN_ATTR_LIFETIME,
                                     STUN_ATTR_DATA,
                                     STUN_ATTR_EVEN_PORT,
                                     STUN_ATTR_DONT_FRAGMENT,
                                     STUN_ATTR_USERHASH,
                                     STUN_ATTR_XOR_MAPPED_ADDRESS,
                                     STUN_ATTR_RESERVATION_TOKEN,
                                     STUN_ATTR_PRIORITY,
                                     STUN_ATTR_USE_CANDIDATE,
                                     STUN_ATTR_CONNECTION_ID,
                                     STUN_ATTR_CHANGE_REQUEST,
                                     STUN_ATTR_SOFTWARE,
                                     STUN_ATTR_FINGERPRINT,
                                     0xC057,
                                     0x8000};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        ck_assert(!stun_attr_is_unknown_required(known[i]));
    ck_assert(stun_attr_is_unknown_required(0x0002));
    ck_assert(stun_attr_is_unknown_required(0x0000));
    ck_assert(stun_attr_is_unknown_required(0x7FFF));

    uint8_t buf[128];
    struct stun_builder b;
    stun_build_init(&b, buf, sizeof buf, TURN_ALLOCATE, STUN_REQUEST, tid_a);
    stun_build_attr(&b, 0x0002, "abcd", 4);
    stun_build_u32(&b, STUN_ATTR_REQUESTED_TRANSPORT, 17u << 24);
    stun_build_attr(&b, 0xC057, "\0\0\0\0", 4);
    stun_build_attr(&b, 0x0031, NULL, 0);
    stun_build_attr(&b, 0x0002, "dup", 3);
    stun_build_attr(&b, 0x0077, NULL, 0);
    size_t n = stun_build_finish(&b);
    struct stun_msg m;
    PARSE_OK(&m, buf, n);
    uint16_t got[8];
    ck_assert_uint_eq(stun_msg_unknown_required(&m, got, 8), 3);
    ck_assert_uint_eq(got[0], 0x0002);
    ck_assert_uint_eq(got[1], 0x0031);
    ck_assert_uint_eq(got[2], 0x0077);
    ck_assert_uint_eq(stun_msg_unknown_required(&m, got, 2), 2);
}
END_TEST

START_TEST(test_keys_and_ct_equal)
{
    uint8_t k1[STUN_MD5_LEN], k2[STUN_MD5_LEN], want[STUN_MD5_LEN];
    ck_assert_int_eq(stun_key_md5("user", 4, "realm", 5, "pass", 4, k1), 0);
    /* MD5("user:realm:pass") */
    unhex("8493fbc53ba582fb4c044c456bdc40eb", want, sizeof want);
    ck_assert_mem_eq(k1, want, sizeof want);
    ck_assert_int_eq(stun_key_md5("user", 4, "realm", 5, "pasS", 4, k2), 0);
    ck_assert(!stun_ct_equal(k1, k2, sizeof k1));
    ck_assert(stun_ct_equal(k1, k1, sizeof k1));
    ck_assert(stun_ct_equal(k1, k2, 0));
    uint8_t s[STUN_SHA256_LEN];
    uint8_t want_s[STUN_SHA256_LEN];
    ck_assert_int_eq(stun_key_sha256(NULL, 0, NULL, 0, NULL, 0, s), 0);
    /* SHA-256("::") */
    unhex("71546855d6279ef70d20909b292c42c2dcb02cd06bde01485da52d13e304ebf4", want_s,
          sizeof want_s);
    ck_assert_mem_eq(s, want_s, sizeof s);
}
END_TEST

/* What Chrome (libwebrtc) sends: an ICE connectivity check with GOOG-NETWORK-INFO (0xC057,
 * comprehension-optional), short-term MESSAGE-INTEGRITY and FINGERPRINT; and a TURN Allocate. */
START_TEST(test_chrome_like)
{
    static const char pw[] = "6Xt1VjS6F9dLxq0IK0GmM2G5";
    uint8_t buf[256];
    struct stun_builder b;
    stun_build_init(&b, buf, sizeof buf, STUN_BINDING, STUN_REQUEST, tid_a);
    stun_build_attr(&b, STUN_ATTR_USERNAME, "nE9a:kq3b", 9);
    stun_build_attr(&b, 0xC057, "\x00\x01\x00\x0a", 4);
    stun_build_u64(&b, STUN_ATTR_ICE_CONTROLLING, 0x1122334455667788ull);
    stun_build_attr(&b, STUN_ATTR_USE_CANDIDATE, NULL, 0);
    stun_build_u32(&b, STUN_ATTR_PRIORITY, 0x6e7f1eff);
    stun_build_integrity(&b, (const uint8_t *)pw, strlen(pw));
    stun_build_fingerprint(&b);
    size_t n = stun_build_finish(&b);
    struct stun_msg m;
    PARSE_OK(&m, buf, n);
    ck_assert(stun_is_stun(buf, n));
    ck_assert_uint_eq(stun_msg_unknown_required(&m, NULL, 0), 0);
    ck_assert_ptr_nonnull(stun_msg_find(&m, 0xC057));
    ck_assert_int_eq(stun_msg_check_integrity(&m, (const uint8_t *)pw, strlen(pw)), 1);

    uint8_t key[STUN_MD5_LEN];
    ck_assert_int_eq(stun_key_md5("1700000000:alice", 16, "meetlite", 8, "c2VjcmV0", 8, key), 0);
    stun_build_init(&b, buf, sizeof buf, TURN_ALLOCATE, STUN_REQUEST, tid_a);
    stun_build_u32(&b, STUN_ATTR_REQUESTED_TRANSPORT, 17u << 24);
    stun_build_attr(&b, STUN_ATTR_USERNAME, "1700000000:alice", 16);
    stun_build_attr(&b, STUN_ATTR_REALM, "meetlite", 8);
    stun_build_attr(&b, STUN_ATTR_NONCE, "a1b2c3d4e5f60718", 16);
    stun_build_integrity(&b, key, sizeof key);
    n = stun_build_finish(&b);
    PARSE_OK(&m, buf, n);
    uint32_t rt;
    ck_assert_int_eq(stun_attr_get_u32(&m, stun_msg_find(&m, STUN_ATTR_REQUESTED_TRANSPORT), &rt),
                     0);
    ck_assert_uint_eq(rt >> 24, 17);
    ck_assert_int_eq(stun_msg_check_integrity(&m, key, sizeof key), 1);
}
END_TEST

/* ------------------------------------------------------------------ suites */

static Suite *vectors_suite(void)
{
    Suite *s = suite_create("stun-vectors");
    TCase *tc = tcase_create("rfc5769");
    tcase_add_test(tc, test_5769_request_parse);
    tcase_add_test(tc, test_5769_request_integrity);
    tcase_add_test(tc, test_5769_request_tampered);
    tcase_add_test(tc, test_5769_request_rebuild);
    tcase_add_test(tc, test_5769_ipv4_response);
    tcase_add_test(tc, test_5769_ipv4_rebuild);
    tcase_add_test(tc, test_5769_ipv6_response);
    tcase_add_test(tc, test_5769_ipv6_rebuild);
    tcase_add_test(tc, test_5769_long_term);
    tcase_add_test(tc, test_5769_long_term_rebuild);
    suite_add_tcase(s, tc);
    tc = tcase_create("rfc8489");
    tcase_add_test(tc, test_8489_b1_verify);
    tcase_add_test(tc, test_8489_b1_rebuild);
    tcase_add_test(tc, test_8489_b1_as_printed);
    tcase_add_test(tc, test_mi256_truncated);
    tcase_add_test(tc, test_mi_then_mi256);
    tcase_add_test(tc, test_attrs_after_mi_ignored);
    suite_add_tcase(s, tc);
    return s;
}

static Suite *malformed_suite(void)
{
    Suite *s = suite_create("stun-malformed");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_bad_truncated_header);
    tcase_add_test(tc, test_bad_length_not_multiple_of_4);
    tcase_add_test(tc, test_bad_length_vs_datagram);
    tcase_add_test(tc, test_bad_attr_past_end);
    tcase_add_test(tc, test_bad_attr_header_cut);
    tcase_add_test(tc, test_bad_too_many_attrs);
    tcase_add_test(tc, test_bad_fingerprint);
    tcase_add_test(tc, test_bad_fingerprint_not_last);
    tcase_add_test(tc, test_bad_top_bits);
    tcase_add_test(tc, test_bad_known_attr_lengths);
    tcase_add_test(tc, test_rfc3489_request);
    tcase_add_test(tc, test_parse_err_strings);
    suite_add_tcase(s, tc);
    return s;
}

static Suite *builder_suite(void)
{
    Suite *s = suite_create("stun-builder");
    TCase *tc = tcase_create("build");
    tcase_add_test(tc, test_build_addresses);
    tcase_add_test(tc, test_build_addr_bad_family);
    tcase_add_test(tc, test_build_error_code);
    tcase_add_test(tc, test_build_unknown_attrs);
    tcase_add_test(tc, test_build_overflow);
    tcase_add_test(tc, test_build_too_long);
    tcase_add_test(tc, test_build_integrity_fingerprint);
    tcase_add_test(tc, test_build_integrity_sha256);
    tcase_add_test(tc, test_build_padding_zeroed);
    tcase_add_test(tc, test_build_reply);
    tcase_add_test(tc, test_build_method_class_bits);
    tcase_add_test(tc, test_getters_wrong_size);
    suite_add_tcase(s, tc);
    return s;
}

static Suite *framing_suite(void)
{
    Suite *s = suite_create("stun-framing");
    TCase *tc = tcase_create("frame");
    tcase_add_test(tc, test_frame_stream);
    tcase_add_test(tc, test_frame_partial);
    tcase_add_test(tc, test_frame_channeldata);
    tcase_add_test(tc, test_frame_bad_top_bits);
    tcase_add_test(tc, test_channeldata_parse);
    suite_add_tcase(s, tc);
    return s;
}

static Suite *misc_suite(void)
{
    Suite *s = suite_create("stun-misc");
    TCase *tc = tcase_create("misc");
    tcase_add_test(tc, test_reason_phrases);
    tcase_add_test(tc, test_method_names);
    tcase_add_test(tc, test_unknown_required);
    tcase_add_test(tc, test_keys_and_ct_equal);
    tcase_add_test(tc, test_chrome_like);
    suite_add_tcase(s, tc);
    return s;
}

ML_CHECK_MAIN(vectors_suite, malformed_suite, builder_suite, framing_suite, misc_suite)
