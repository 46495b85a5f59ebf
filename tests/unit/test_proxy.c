/* Unit tests of the PROXY protocol parser (src/net/proxy.c): version 2 over IPv4 and IPv6 with
 * and without TLVs, LOCAL and UNSPEC, version 1 TCP4, TCP6 and UNKNOWN, every prefix of a
 * header asking for more and never reading past it, and the malformed forms closed. */
#include "config.h"

#include "net/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "mlcheck.h"

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A v2 header into buf: version/command byte, family byte, addresses, then extra TLV bytes. */
static size_t v2(uint8_t *buf, uint8_t ver_cmd, uint8_t fam, const uint8_t *addr, size_t alen,
                 size_t tlv)
{
    memcpy(buf, sig, 12);
    buf[12] = ver_cmd;
    buf[13] = fam;
    size_t body = alen + tlv;
    buf[14] = (uint8_t)(body >> 8);
    buf[15] = (uint8_t)body;
    memcpy(buf + 16, addr, alen);
    memset(buf + 16 + alen, 0xAB, tlv);
    return 16 + body;
}

static void ip_is(const struct sockaddr_storage *ss, const char *ip, unsigned port)
{
    char a[ML_ADDR_STRLEN];
    ml_ip_str((const struct sockaddr *)ss, a, sizeof a);
    ck_assert_str_eq(a, ip);
    ck_assert_uint_eq(ml_addr_port((const struct sockaddr *)ss), port);
}

START_TEST(v2_inet)
{
    uint8_t buf[200], addr[12] = {203, 0, 113, 7, 192, 0, 2, 1, 0x10, 0x92, 0x0D, 0x96};
    struct net_proxy_hdr h;
    size_t n = v2(buf, 0x21, 0x11, addr, sizeof addr, 0);
    buf[n] = 0x00; /* the client's first byte follows: never read */
    ck_assert_int_eq(net_proxy_parse(buf, n + 1, &h), NET_PROXY_DONE);
    ck_assert_uint_eq(h.len, 28);
    ck_assert_uint_eq(h.version, 2);
    ck_assert(h.has_addr);
    ip_is(&h.src, "203.0.113.7", 4242);
    ip_is(&h.dst, "192.0.2.1", 3478);
    for (size_t i = 1; i < n; i++) /* every prefix asks for more */
        ck_assert_int_eq(net_proxy_parse(buf, i, &h), NET_PROXY_MORE);
    /* TLVs after the addresses: skipped, counted in the length */
    n = v2(buf, 0x21, 0x11, addr, sizeof addr, 40);
    ck_assert_int_eq(net_proxy_parse(buf, n, &h), NET_PROXY_DONE);
    ck_assert_uint_eq(h.len, n);
    ck_assert_int_eq(net_proxy_parse(buf, n - 1, &h), NET_PROXY_MORE);
}
END_TEST

START_TEST(v2_inet6_local_unspec)
{
    uint8_t buf[200], addr[36] = {0};
    struct net_proxy_hdr h;
    inet_pton(AF_INET6, "2001:db8::17", addr);
    inet_pton(AF_INET6, "2001:db8::1", addr + 16);
    addr[32] = 0x13;
    addr[33] = 0x88;
    addr[34] = 0x0D;
    addr[35] = 0x96;
    size_t n = v2(buf, 0x21, 0x21, addr, sizeof addr, 0);
    ck_assert_int_eq(net_proxy_parse(buf, n, &h), NET_PROXY_DONE);
    ip_is(&h.src, "2001:db8::17", 5000);
    /* LOCAL: the proxy's own connection; its address stands */
    n = v2(buf, 0x20, 0x00, addr, 0, 0);
    ck_assert_int_eq(net_proxy_parse(buf, n, &h), NET_PROXY_DONE);
    ck_assert(!h.has_addr);
    ck_assert_uint_eq(h.len, 16);
    /* PROXY over UNSPEC or UNIX: likewise */
    n = v2(buf, 0x21, 0x00, addr, 0, 0);
    ck_assert_int_eq(net_proxy_parse(buf, n, &h), NET_PROXY_DONE);
    ck_assert(!h.has_addr);
    n = v2(buf, 0x21, 0x31, addr, 36, 0);
    ck_assert_int_eq(net_proxy_parse(buf, n, &h), NET_PROXY_DONE);
    ck_assert(!h.has_addr);
}
END_TEST

START_TEST(v2_bad)
{
    uint8_t buf[NET_PROXY_MAX + 64], addr[36] = {0};
    struct net_proxy_hdr h;
    size_t n = v2(buf, 0x11, 0x11, addr, 12, 0); /* version 1 in a v2 header */
    ck_assert_int_eq(net_proxy_parse(buf, n, &h), NET_PROXY_BAD);
    n = v2(buf, 0x22, 0x11, addr, 12, 0); /* command 2 */
    ck_assert_int_eq(net_proxy_parse(buf, n, &h), NET_PROXY_BAD);
    n = v2(buf, 0x21, 0x41, addr, 12, 0); /* family 4 */
    ck_assert_int_eq(net_proxy_parse(buf, n, &h), NET_PROXY_BAD);
    n = v2(buf, 0x21, 0x12, addr, 12, 0); /* a datagram source */
    ck_assert_int_eq(net_proxy_parse(buf, n, &h), NET_PROXY_BAD);
    n = v2(buf, 0x21, 0x11, addr, 8, 0); /* too short for IPv4 */
    ck_assert_int_eq(net_proxy_parse(buf, n, &h), NET_PROXY_BAD);
    n = v2(buf, 0x21, 0x21, addr, 12, 0); /* too short for IPv6 */
    ck_assert_int_eq(net_proxy_parse(buf, n, &h), NET_PROXY_BAD);
    n = v2(buf, 0x21, 0x11, addr, 12, NET_PROXY_MAX); /* longer than accepted: known at 16 bytes */
    ck_assert_int_eq(net_proxy_parse(buf, 16, &h), NET_PROXY_BAD);
    /* not a header at all: STUN, TLS, HTTP */
    const uint8_t stun[] = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42};
    ck_assert_int_eq(net_proxy_parse(stun, sizeof stun, &h), NET_PROXY_NONE);
    const uint8_t tls[] = {0x16, 0x03, 0x01};
    ck_assert_int_eq(net_proxy_parse(tls, sizeof tls, &h), NET_PROXY_NONE);
    ck_assert(!net_proxy_signature(tls, sizeof tls));
    ck_assert(net_proxy_signature(sig, 3));
    ck_assert_int_eq(net_proxy_parse((const uint8_t *)"PROXX", 5, &h), NET_PROXY_NONE);
    memcpy(buf, sig, 12);
    buf[11] = 'X'; /* the signature going wrong late */
    ck_assert_int_eq(net_proxy_parse(buf, 16, &h), NET_PROXY_NONE);
}
END_TEST

static enum net_proxy_rc v1(const char *s, struct net_proxy_hdr *h)
{
    return net_proxy_parse((const uint8_t *)s, strlen(s), h);
}

START_TEST(v1_forms)
{
    struct net_proxy_hdr h;
    ck_assert_int_eq(v1("PROXY TCP4 192.0.2.55 127.0.0.1 61000 3478\r\n\x16\x03", &h),
                     NET_PROXY_DONE);
    ck_assert_uint_eq(h.len, strlen("PROXY TCP4 192.0.2.55 127.0.0.1 61000 3478\r\n"));
    ck_assert_uint_eq(h.version, 1);
    ip_is(&h.src, "192.0.2.55", 61000);
    ip_is(&h.dst, "127.0.0.1", 3478);
    ck_assert_int_eq(v1("PROXY TCP6 2001:db8::5 ::1 1 65535\r\n", &h), NET_PROXY_DONE);
    ip_is(&h.src, "2001:db8::5", 1);
    ck_assert_int_eq(v1("PROXY UNKNOWN\r\n", &h), NET_PROXY_DONE);
    ck_assert(!h.has_addr);
    ck_assert_int_eq(v1("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", &h), NET_PROXY_DONE);
    ck_assert(!h.has_addr);
    const char *whole = "PROXY TCP4 192.0.2.55 127.0.0.1 61000 3478\r\n";
    for (size_t i = 1; i < strlen(whole); i++)
        ck_assert_int_eq(net_proxy_parse((const uint8_t *)whole, i, &h), NET_PROXY_MORE);
}
END_TEST

START_TEST(v1_bad)
{
    struct net_proxy_hdr h;
    const char *bad[] = {
        "PROXY TCP4 192.0.2.55 127.0.0.1 61000\r\n",        /* a field missing */
        "PROXY TCP4 192.0.2.55 127.0.0.1 61000 3478 9\r\n", /* one too many */
        "PROXY TCP4 192.0.2.55  127.0.0.1 61000 3478\r\n",  /* two spaces */
        "PROXY TCP4 2001:db8::5 127.0.0.1 1 2\r\n",         /* IPv6 under TCP4 */
        "PROXY TCP6 192.0.2.55 ::1 1 2\r\n",                /* IPv4 under TCP6 */
        "PROXY TCP4 192.0.2.55 127.0.0.1 65536 1\r\n",      /* port out of range */
        "PROXY TCP4 192.0.2.55 127.0.0.1 0123 1\r\n",       /* leading zero */
        "PROXY TCP4 192.0.2.55 127.0.0.1 +1 1\r\n",         /* sign */
        "PROXY UDP4 192.0.2.55 127.0.0.1 1 1\r\n",          /* not TCP */
        "PROXY TCP4 192.0.2.55\n127.0.0.1 1 1\r\n",         /* a bare LF */
        "PROXY TCP4 192.0.2.55 127.0.0.1 1 1\n",            /* LF without CR, and enough bytes */
    };
    for (size_t i = 0; i < ML_ARRAY_LEN(bad); i++) {
        enum net_proxy_rc rc = v1(bad[i], &h);
        ck_assert_msg(rc == NET_PROXY_BAD || (rc == NET_PROXY_MORE && strlen(bad[i]) < 107),
                      "case %zu: %d", i, rc);
    }
    char longline[200];
    memset(longline, '1', sizeof longline);
    memcpy(longline, "PROXY TCP4 ", 11);
    ck_assert_int_eq(net_proxy_parse((const uint8_t *)longline, sizeof longline, &h),
                     NET_PROXY_BAD);
    ck_assert_int_eq(net_proxy_parse((const uint8_t *)longline, 106, &h), NET_PROXY_MORE);
}
END_TEST

static Suite *proxy_suite(void)
{
    Suite *s = suite_create("proxy");
    TCase *tc = tcase_create("v2");
    tcase_add_test(tc, v2_inet);
    tcase_add_test(tc, v2_inet6_local_unspec);
    tcase_add_test(tc, v2_bad);
    suite_add_tcase(s, tc);
    tc = tcase_create("v1");
    tcase_add_test(tc, v1_forms);
    tcase_add_test(tc, v1_bad);
    suite_add_tcase(s, tc);
    return s;
}

ML_CHECK_MAIN(proxy_suite)
