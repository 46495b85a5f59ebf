/* Unit tests of src/turn/policy.c: default-deny classes, embedded-IPv4 canonicalisation,
 * allow and deny lists, service ports, and regressions for the coturn peer-ACL CVEs. */
#include "config.h"

#include "turn/turn-int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "mlcheck.h"

/* Port given to peers written without one: an ordinary relay port. */
#define PEER_PORT 50000

static struct sockaddr_storage addr(const char *text)
{
    struct sockaddr_storage ss;
    socklen_t len;
    ck_assert_msg(ml_addr_parse(text, PEER_PORT, &ss, &len) == 0, "bad test address %s", text);
    return ss;
}

static struct turn_policy *policy(const char *allow, const char *deny)
{
    char err[256] = "";
    struct turn_policy *p = turn_policy_new(allow, deny, err, sizeof err);
    ck_assert_msg(p != NULL, "turn_policy_new: %s", err);
    return p;
}

/* Checks the verdict on a peer: label NULL means allowed. */
static void expect_port(const struct turn_policy *p, const char *peer, bool with_port,
                        const char *label)
{
    struct sockaddr_storage ss = addr(peer);
    const char *got = turn_policy_deny(p, (const struct sockaddr *)&ss, with_port);
    if (label)
        ck_assert_msg(got && strcmp(got, label) == 0, "%s: expected \"%s\", got \"%s\"", peer,
                      label, got ? got : "(allowed)");
    else
        ck_assert_msg(got == NULL, "%s: expected allowed, got \"%s\"", peer, got);
}

static void expect(const struct turn_policy *p, const char *peer, const char *label)
{
    expect_port(p, peer, true, label);
    expect_port(p, peer, false, label);
}

static void expect_why(const struct turn_policy *p, const char *peer, const char *why)
{
    struct sockaddr_storage ss = addr(peer);
    char buf[TURN_POLICY_WHY_MAX];
    const char *got = turn_policy_explain(p, (const struct sockaddr *)&ss, true, buf, sizeof buf);
    ck_assert_msg(got == buf, "%s: expected a denial", peer);
    ck_assert_str_eq(buf, why);
}

/* ------------------------------------------------------------ default classes */

/* One address inside each default class, its label, and one just outside it (NULL when every
 * neighbour belongs to another class). */
static const struct {
    const char *in, *label, *out;
} classes[] = {
    {"0.0.0.1", "unspecified 0.0.0.0/8", "1.0.0.0"},
    {"0.255.255.255", "unspecified 0.0.0.0/8", "1.0.0.1"},
    {"::", "unspecified ::/128", NULL},
    {"2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo 2001::/32", "2001:1::1"},
    {"2002:808:808::1", "6to4 2002::/16", "2003::1"},
    {"127.0.0.1", "loopback 127.0.0.0/8", "128.0.0.1"},
    {"127.255.255.255", "loopback 127.0.0.0/8", "126.255.255.255"},
    {"::1", "loopback ::1/128", NULL},
    {"169.254.169.254", "link-local 169.254.0.0/16", "169.255.0.1"},
    {"169.254.0.1", "link-local 169.254.0.0/16", "169.253.255.255"},
    {"fe80::1", "link-local fe80::/10", "fe7f:ffff::1"},
    {"febf:ffff::1", "link-local fe80::/10", NULL},
    {"fd12:3456::1", "ULA fc00::/7", "fe00::1"},
    {"fc00::1", "ULA fc00::/7", "fbff:ffff::1"},
    {"fec0::1", "site-local fec0::/10", "fe00::1"},
    {"feff:ffff::1", "site-local fec0::/10", NULL},
    {"224.0.0.1", "multicast 224.0.0.0/4", "223.255.255.255"},
    {"239.255.255.255", "multicast 224.0.0.0/4", NULL},
    {"ff02::1", "multicast ff00::/8", "2606:4700::1111"},
    {"255.255.255.255", "broadcast 255.255.255.255/32", NULL},
    {"255.255.255.254", "reserved 240.0.0.0/4", NULL},
    {"240.0.0.1", "reserved 240.0.0.0/4", NULL},
    {"10.0.0.1", "RFC 1918 10.0.0.0/8", "11.0.0.1"},
    {"10.255.255.255", "RFC 1918 10.0.0.0/8", "9.255.255.255"},
    {"172.16.0.1", "RFC 1918 172.16.0.0/12", "172.15.255.255"},
    {"172.31.255.255", "RFC 1918 172.16.0.0/12", "172.32.0.0"},
    {"192.168.1.1", "RFC 1918 192.168.0.0/16", "192.169.0.1"},
    {"192.168.255.255", "RFC 1918 192.168.0.0/16", "192.167.255.255"},
    {"100.64.0.1", "CGNAT 100.64.0.0/10", "100.63.255.255"},
    {"100.127.255.255", "CGNAT 100.64.0.0/10", "100.128.0.0"},
    {"192.0.0.170", "IETF protocol assignments 192.0.0.0/24", "192.0.1.1"},
    {"192.0.2.1", "documentation 192.0.2.0/24", "192.0.3.1"},
    {"198.51.100.1", "documentation 198.51.100.0/24", "198.51.101.1"},
    {"203.0.113.1", "documentation 203.0.113.0/24", "203.0.114.1"},
    {"2001:db8::1", "documentation 2001:db8::/32", "2001:db9::1"},
    {"3fff:fff:ffff::1", "documentation 3fff::/20", "3fff:1000::1"},
    {"198.18.0.1", "benchmarking 198.18.0.0/15", "198.17.255.255"},
    {"198.19.255.255", "benchmarking 198.18.0.0/15", "198.20.0.0"},
    {"2001:2::1", "benchmarking 2001:2::/48", "2001:2:1::1"},
    {"192.88.99.1", "6to4 relay anycast 192.88.99.0/24", "192.88.98.255"},
    {"100::1", "discard-only 100::/64", "100:0:0:1::1"},
    {"2001:10::1", "ORCHID 2001:10::/28", "2001:f::1"},
    {"2001:1f:ffff::1", "ORCHID 2001:10::/28", NULL},
    {"2001:2f::1", "ORCHIDv2 2001:20::/28", "2001:30::1"},
    {"64:ff9b:1::a00:1", "NAT64 local-use 64:ff9b:1::/48", "64:ff9b:2::1"},
    {"5f00::1", "SRv6 SIDs 5f00::/16", "5f01::1"},
};

START_TEST(default_class)
{
    struct turn_policy *p = policy(NULL, NULL);
    expect(p, classes[_i].in, classes[_i].label);
    if (classes[_i].out)
        expect(p, classes[_i].out, NULL);
    turn_policy_free(p);
}
END_TEST

START_TEST(public_allowed)
{
    struct turn_policy *p = policy(NULL, NULL);
    static const char *const pub[] = {
        "8.8.8.8",          "1.1.1.1",
        "93.184.216.34",    "2606:4700::1111",
        "2a00:1450::200e",  "::ffff:8.8.8.8",
        "::8.8.8.8",        "64:ff9b::808:808",
        "::ffff:0:8.8.8.8", "[2606:4700::1111]:3478",
        "1.1.1.1:3478",
    };
    for (size_t i = 0; i < ML_ARRAY_LEN(pub); i++)
        expect(p, pub[i], NULL);
    turn_policy_free(p);
}
END_TEST

/* Each embedded form is judged by its IPv4 address, and the description says so. */
START_TEST(canonical_forms)
{
    struct turn_policy *p = policy(NULL, NULL);
    expect(p, "::ffff:10.1.2.3", "RFC 1918 10.0.0.0/8");
    expect_why(p, "::ffff:10.1.2.3", "RFC 1918 10.0.0.0/8 (IPv4-mapped 10.1.2.3)");
    expect_why(p, "::10.1.2.3", "RFC 1918 10.0.0.0/8 (IPv4-compatible 10.1.2.3)");
    expect_why(p, "::ffff:0:10.1.2.3", "RFC 1918 10.0.0.0/8 (IPv4-translated 10.1.2.3)");
    expect_why(p, "64:ff9b::a01:203", "RFC 1918 10.0.0.0/8 (NAT64 10.1.2.3)");
    expect_why(p, "::ffff:169.254.169.254",
               "link-local 169.254.0.0/16 (IPv4-mapped 169.254.169.254)");
    expect_why(p, "::ffff:0.0.0.0", "unspecified 0.0.0.0/8 (IPv4-mapped 0.0.0.0)");
    /* ::2 is IPv4-compatible 0.0.0.2, not IPv6's own :: or ::1. */
    expect_why(p, "::2", "unspecified 0.0.0.0/8 (IPv4-compatible 0.0.0.2)");
    /* 6to4 and Teredo are refused as such, whatever they embed; the description shows it. */
    expect_why(p, "2002:7f00:1::1", "6to4 2002::/16 (6to4 127.0.0.1)");
    expect_why(p, "2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo 2001::/32 (Teredo 127.0.0.1)");
    /* Native addresses: the label alone. */
    expect_why(p, "127.0.0.1", "loopback 127.0.0.0/8");
    expect_why(p, "::1", "loopback ::1/128");
    turn_policy_free(p);
}
END_TEST

START_TEST(explain_allowed_leaves_buffer)
{
    struct turn_policy *p = policy(NULL, NULL);
    struct sockaddr_storage ss = addr("8.8.8.8");
    char buf[TURN_POLICY_WHY_MAX] = "untouched";
    ck_assert_ptr_null(turn_policy_explain(p, (const struct sockaddr *)&ss, true, buf, sizeof buf));
    ck_assert_str_eq(buf, "untouched");
    /* A short buffer is truncated, still terminated. */
    char small[9];
    ss = addr("::ffff:127.0.0.1");
    ck_assert_ptr_eq(
        turn_policy_explain(p, (const struct sockaddr *)&ss, true, small, sizeof small), small);
    ck_assert_str_eq(small, "loopback");
    turn_policy_free(p);
}
END_TEST

START_TEST(unsupported_family)
{
    struct turn_policy *p = policy("0.0.0.0/0, ::/0", NULL);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_family = AF_UNIX;
    ck_assert_ptr_nonnull(turn_policy_deny(p, (const struct sockaddr *)&ss, true));
    turn_policy_free(p);
}
END_TEST

/* ------------------------------------------------------------ allow and deny lists */

/* The integration tests allow 127.0.0.0/8 to relay between allocations on loopback. */
START_TEST(allow_loopback)
{
    struct turn_policy *p = policy("127.0.0.0/8", NULL);
    expect(p, "127.0.0.1", NULL);
    expect(p, "127.255.255.254", NULL);
    expect(p, "::ffff:127.0.0.1", NULL);
    expect(p, "64:ff9b::7f00:1", NULL);
    expect(p, "0.0.0.0", "unspecified 0.0.0.0/8");
    expect(p, "0.1.2.3", "unspecified 0.0.0.0/8");
    expect(p, "::", "unspecified ::/128");
    expect(p, "2002:7f00:1::1", "6to4 2002::/16");
    /* The IPv4 entry says nothing about IPv6's loopback, nor about other classes. */
    expect(p, "::1", "loopback ::1/128");
    expect(p, "10.0.0.1", "RFC 1918 10.0.0.0/8");
    /* Own service ports stay denied. */
    struct sockaddr_storage svc = addr("127.0.0.1:3478");
    ck_assert_int_eq(turn_policy_add_service(p, (const struct sockaddr *)&svc), 0);
    expect_port(p, "127.0.0.1:3478", true, "own service 127.0.0.1:3478");
    expect_port(p, "127.0.0.1:3479", true, NULL);
    turn_policy_free(p);
}
END_TEST

START_TEST(allow_lists_parse)
{
    struct turn_policy *p = policy(" 10.0.0.0/8 192.168.0.0/16,172.16.0.0/12 ,fd00::/8 ", "");
    expect(p, "10.1.2.3", NULL);
    expect(p, "192.168.1.1", NULL);
    expect(p, "172.20.0.1", NULL);
    expect(p, "fd00::1", NULL);
    expect(p, "fc00::1", "ULA fc00::/7");
    expect(p, "100.64.0.1", "CGNAT 100.64.0.0/10");
    turn_policy_free(p);
}
END_TEST

/* A deny-peers IPv4 range covers every IPv6 form that embeds it (CVE-2026-27624, the
 * range-matching half: coturn never matched an IPv4 denied-peer-ip against an IPv6 peer). */
START_TEST(deny_embedded_forms)
{
    struct turn_policy *p = policy(NULL, "8.8.8.0/24");
    static const char *const forms[] = {
        "8.8.8.8",          "::ffff:8.8.8.8",   "::8.8.8.8",
        "::ffff:0:8.8.8.8", "64:ff9b::808:808", "[::ffff:8.8.8.8]:3478",
    };
    for (size_t i = 0; i < ML_ARRAY_LEN(forms); i++)
        expect(p, forms[i], "turn.deny-peers 8.8.8.0/24");
    expect_why(p, "64:ff9b::808:808", "turn.deny-peers 8.8.8.0/24 (NAT64 8.8.8.8)");
    expect(p, "8.8.4.4", NULL);
    expect(p, "::ffff:8.8.4.4", NULL);
    turn_policy_free(p);
}
END_TEST

/* deny-peers wins over allow-peers: it is the operator's explicit wish, and allow-peers is
 * documented as lifting the default rules only. (coturn lets allowed-peer-ip win; LiveKit lets
 * deny_peer_cidrs win, as we do.) */
START_TEST(deny_wins_over_allow)
{
    struct turn_policy *p = policy("10.0.0.0/8", "10.1.0.0/16");
    expect(p, "10.1.2.3", "turn.deny-peers 10.1.0.0/16");
    expect(p, "::ffff:10.1.2.3", "turn.deny-peers 10.1.0.0/16");
    expect(p, "10.2.3.4", NULL);
    turn_policy_free(p);
    p = policy("10.1.2.3/32", "10.0.0.0/8");
    expect(p, "10.1.2.3", "turn.deny-peers 10.0.0.0/8");
    turn_policy_free(p);
    p = policy("8.8.8.8", "8.8.8.8");
    expect(p, "8.8.8.8", "turn.deny-peers 8.8.8.8");
    turn_policy_free(p);
}
END_TEST

/* An IPv6 deny entry over an embedding prefix still applies to the original address. */
START_TEST(deny_ipv6_prefix_of_embedded)
{
    struct turn_policy *p = policy(NULL, "64:ff9b::/96, ::ffff:0:0/96");
    expect(p, "64:ff9b::808:808", "turn.deny-peers 64:ff9b::/96");
    expect(p, "::ffff:1.1.1.1", "turn.deny-peers ::ffff:0:0/96");
    expect(p, "8.8.8.8", NULL);
    expect(p, "1.1.1.1", NULL);
    turn_policy_free(p);
}
END_TEST

/* Allowing everything lifts the default classes but not the hard rules. */
START_TEST(allow_everything_keeps_hard_rules)
{
    struct turn_policy *p = policy("0.0.0.0/0, ::/0", NULL);
    expect(p, "10.0.0.1", NULL);
    expect(p, "127.0.0.1", NULL);
    expect(p, "fe80::1", NULL);
    expect(p, "0.0.0.0", "unspecified 0.0.0.0/8");
    expect(p, "::", "unspecified ::/128");
    expect(p, "2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo 2001::/32");
    expect(p, "2002:808:808::1", "6to4 2002::/16");
    turn_policy_free(p);
}
END_TEST

/* allow-peers applies to the canonical form only: an IPv6 entry does not open the IPv4
 * addresses embedded in it. */
START_TEST(allow_ipv6_does_not_open_embedded)
{
    struct turn_policy *p = policy("::/0", NULL);
    expect(p, "fd00::1", NULL);
    expect(p, "::ffff:127.0.0.1", "loopback 127.0.0.0/8");
    expect(p, "::ffff:10.0.0.1", "RFC 1918 10.0.0.0/8");
    expect(p, "64:ff9b::a00:1", "RFC 1918 10.0.0.0/8");
    expect(p, "::ffff:0:a00:1", "RFC 1918 10.0.0.0/8");
    turn_policy_free(p);
}
END_TEST

static void expect_bad(const char *allow, const char *deny, const char *key, const char *item)
{
    char err[256] = "";
    struct turn_policy *p = turn_policy_new(allow, deny, err, sizeof err);
    ck_assert_ptr_null(p);
    ck_assert_msg(strstr(err, key) != NULL, "error \"%s\" does not name %s", err, key);
    ck_assert_msg(strstr(err, item) != NULL, "error \"%s\" does not name %s", err, item);
}

START_TEST(bad_lists)
{
    expect_bad("10.0.0.0/33", NULL, "turn.allow-peers", "10.0.0.0/33");
    expect_bad("x", NULL, "turn.allow-peers", "\"x\"");
    expect_bad(NULL, "x", "turn.deny-peers", "\"x\"");
    expect_bad(NULL, "10.0.0.0/8, bogus", "turn.deny-peers", "bogus");
    expect_bad("::/129", NULL, "turn.allow-peers", "::/129");
    expect_bad("127.0.0.0/8", "10.0.0.0/8 1.2.3.4-1.2.3.9", "turn.deny-peers", "1.2.3.4-1.2.3.9");
}
END_TEST

START_TEST(empty_lists)
{
    struct turn_policy *p = policy("", " , ");
    expect(p, "8.8.8.8", NULL);
    expect(p, "127.0.0.1", "loopback 127.0.0.0/8");
    turn_policy_free(p);
    turn_policy_free(NULL);
}
END_TEST

/* ------------------------------------------------------------ service ports */

static void add_service(struct turn_policy *p, const char *text)
{
    struct sockaddr_storage ss = addr(text);
    ck_assert_msg(turn_policy_add_service(p, (const struct sockaddr *)&ss) == 0,
                  "add_service %s: %s", text, strerror(errno));
}

START_TEST(service_specific)
{
    struct turn_policy *p = policy("127.0.0.0/8", NULL);
    add_service(p, "127.0.0.1:3478");
    expect_port(p, "127.0.0.1:3478", true, "own service 127.0.0.1:3478");
    expect_port(p, "127.0.0.1:3478", false, NULL); /* CreatePermission: IP only */
    expect_port(p, "[::ffff:127.0.0.1]:3478", true, "own service 127.0.0.1:3478");
    expect_port(p, "[::127.0.0.1]:3478", true, "own service 127.0.0.1:3478");
    expect_port(p, "[64:ff9b::7f00:1]:3478", true, "own service 127.0.0.1:3478");
    expect_port(p, "127.0.0.1:3479", true, NULL);
    /* Relaying to another allocation's relay port on the same IP is legitimate. */
    expect_port(p, "127.0.0.1:50000", true, NULL);
    /* A listener bound to 127.0.0.1 is not reached through 127.0.0.2. */
    expect_port(p, "127.0.0.2:3478", true, NULL);
    turn_policy_free(p);
}
END_TEST

START_TEST(service_wildcard)
{
    struct turn_policy *p = policy("0.0.0.0/0, ::/0", NULL);
    add_service(p, "127.0.0.1:3478");
    add_service(p, "[::]:5349");
    const char *label = "own service [::]:5349";
    struct ifaddrs *all;
    ck_assert_int_eq(getifaddrs(&all), 0);
    unsigned n = 0;
    for (struct ifaddrs *ifa = all; ifa; ifa = ifa->ifa_next) {
        struct sockaddr_storage ss;
        const struct sockaddr *sa = ifa->ifa_addr;
        if (!sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
            continue;
        memset(&ss, 0, sizeof ss);
        memcpy(&ss, sa, ml_addr_len(sa));
        ml_addr_set_port((struct sockaddr *)&ss, 5349);
        char text[ML_ADDR_STRLEN];
        const char *got = turn_policy_deny(p, (const struct sockaddr *)&ss, true);
        ck_assert_msg(got && strcmp(got, label) == 0, "%s: got \"%s\"",
                      ml_addr_str((const struct sockaddr *)&ss, text, sizeof text),
                      got ? got : "(allowed)");
        ml_addr_set_port((struct sockaddr *)&ss, 5350);
        ck_assert_ptr_null(turn_policy_deny(p, (const struct sockaddr *)&ss, true));
        n++;
    }
    freeifaddrs(all);
    ck_assert_uint_gt(n, 0);
    /* Every loopback address reaches a wildcard socket, not only the interface's own. */
    expect_port(p, "127.0.0.1:5349", true, label);
    expect_port(p, "127.3.2.1:5349", true, label);
    expect_port(p, "[::1]:5349", true, label);
    expect_port(p, "[::ffff:127.0.0.1]:5349", true, label);
    expect_port(p, "0.0.0.0:5349", true, "unspecified 0.0.0.0/8");
    expect_port(p, "[::]:5349", true, "unspecified ::/128");
    expect_port(p, "127.3.2.1:5349", false, NULL);
    /* Not a local address: another host's 5349 is an ordinary peer. */
    expect_port(p, "8.8.8.8:5349", true, NULL);
    /* The specific service is still there. */
    expect_port(p, "[::ffff:127.0.0.1]:3478", true, "own service 127.0.0.1:3478");
    turn_policy_free(p);
}
END_TEST

START_TEST(service_wildcard_v4_and_mapped)
{
    struct turn_policy *p = policy("127.0.0.0/8, ::1", NULL);
    add_service(p, "0.0.0.0:8443");
    add_service(p, "[::ffff:127.0.0.1]:9000");
    expect_port(p, "127.0.0.1:8443", true, "own service 0.0.0.0:8443");
    expect_port(p, "[::1]:8443", true, "own service 0.0.0.0:8443");
    expect_port(p, "127.0.0.1:9000", true, "own service [::ffff:127.0.0.1]:9000");
    expect_port(p, "127.0.0.1:9001", true, NULL);
    turn_policy_free(p);
}
END_TEST

START_TEST(service_bad_family)
{
    struct turn_policy *p = policy(NULL, NULL);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_family = AF_UNIX;
    errno = 0;
    ck_assert_int_eq(turn_policy_add_service(p, (const struct sockaddr *)&ss), -1);
    ck_assert_int_eq(errno, EAFNOSUPPORT);
    turn_policy_free(p);
}
END_TEST

/* ------------------------------------------------------------ CVE regressions */

/* CVE-2018-4058: coturn relayed to its own loopback by default, reaching the telnet CLI. */
START_TEST(cve_2018_4058_loopback_denied_by_default)
{
    struct turn_policy *p = policy(NULL, NULL);
    expect(p, "127.0.0.1", "loopback 127.0.0.0/8");
    expect(p, "127.255.255.254", "loopback 127.0.0.0/8");
    expect(p, "[127.0.0.1]:5766", "loopback 127.0.0.0/8");
    expect(p, "::1", "loopback ::1/128");
    turn_policy_free(p);
    p = policy("", "");
    expect(p, "127.0.0.1", "loopback 127.0.0.0/8");
    turn_policy_free(p);
}
END_TEST

/* CVE-2020-26262: 0.0.0.0 and :: reach the host itself on Linux; no allow list opens them. */
START_TEST(cve_2020_26262_unspecified_always_denied)
{
    static const char *const allows[] = {NULL, "127.0.0.0/8", "0.0.0.0/0, ::/0",
                                         "0.0.0.0/8, ::/128"};
    for (size_t i = 0; i < ML_ARRAY_LEN(allows); i++) {
        struct turn_policy *p = policy(allows[i], NULL);
        expect(p, "0.0.0.0", "unspecified 0.0.0.0/8");
        expect(p, "0.1.2.3", "unspecified 0.0.0.0/8");
        expect(p, "::", "unspecified ::/128");
        expect(p, "[::]:5766", "unspecified ::/128");
        expect(p, "::ffff:0.0.0.0", "unspecified 0.0.0.0/8");
        expect(p, "::0.0.0.0", "unspecified ::/128");
        expect(p, "64:ff9b::", "unspecified 0.0.0.0/8");
        expect(p, "::ffff:0:0.0.0.0", "unspecified 0.0.0.0/8");
        turn_policy_free(p);
    }
    /* The [::1] half of the advisory: IPv6 loopback is loopback. */
    struct turn_policy *p = policy(NULL, NULL);
    expect(p, "::1", "loopback ::1/128");
    expect(p, "0:0:0:0:0:0:0:1", "loopback ::1/128");
    turn_policy_free(p);
}
END_TEST

/* CVE-2026-27624: IPv4 addresses embedded in IPv6 peers bypassed the loopback check and the
 * IPv4 denied-peer-ip ranges. */
START_TEST(cve_2026_27624_embedded_ipv4_denied)
{
    struct turn_policy *p = policy(NULL, "10.0.0.0/8");
    expect(p, "::ffff:127.0.0.1", "loopback 127.0.0.0/8");
    expect(p, "::127.0.0.1", "loopback 127.0.0.0/8");
    expect(p, "::ffff:0:127.0.0.1", "loopback 127.0.0.0/8");
    expect(p, "64:ff9b::7f00:1", "loopback 127.0.0.0/8");
    expect(p, "2002:7f00:1::1", "6to4 2002::/16");
    /* Teredo: server 65.54.227.120, client 127.0.0.1 (stored inverted) */
    expect(p, "2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo 2001::/32");
    expect(p, "::ffff:10.0.0.1", "turn.deny-peers 10.0.0.0/8");
    expect(p, "::10.0.0.1", "turn.deny-peers 10.0.0.0/8");
    expect(p, "64:ff9b::a00:1", "turn.deny-peers 10.0.0.0/8");
    expect(p, "::ffff:169.254.169.254", "link-local 169.254.0.0/16");
    expect(p, "64:ff9b::a9fe:a9fe", "link-local 169.254.0.0/16");
    expect(p, "[::ffff:127.0.0.1]:5766", "loopback 127.0.0.0/8");
    turn_policy_free(p);
    /* Even when the operator allowed every IPv6 address. */
    p = policy("::/0", NULL);
    expect(p, "::ffff:127.0.0.1", "loopback 127.0.0.0/8");
    expect(p, "::ffff:169.254.169.254", "link-local 169.254.0.0/16");
    turn_policy_free(p);
}
END_TEST

/* ------------------------------------------------------------ concurrency */

/* The policy is shared by workers without locks: judging from several threads at once must
 * give the same answers (run under TSan to check for races; here, under ASan, for damage). */
struct judge_arg {
    const struct turn_policy *p;
    int bad;
};

static void *judge_many(void *arg)
{
    struct judge_arg *a = arg;
    for (int i = 0; i < 2000; i++) {
        struct sockaddr_storage ss = addr(i % 2 ? "::ffff:127.0.0.1" : "8.8.8.8");
        char buf[TURN_POLICY_WHY_MAX];
        const char *why =
            turn_policy_explain(a->p, (const struct sockaddr *)&ss, true, buf, sizeof buf);
        if (i % 2 ? !why || strcmp(why, "loopback 127.0.0.0/8 (IPv4-mapped 127.0.0.1)") != 0
                  : why != NULL)
            a->bad++;
    }
    return NULL;
}

START_TEST(shared_by_threads)
{
    struct turn_policy *p = policy(NULL, "10.0.0.0/8");
    pthread_t t[4];
    struct judge_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct judge_arg){p, 0};
        ck_assert_int_eq(pthread_create(&t[i], NULL, judge_many, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
        ck_assert_int_eq(args[i].bad, 0);
    }
    turn_policy_free(p);
}
END_TEST

static Suite *policy_suite(void)
{
    Suite *s = suite_create("policy");
    TCase *tc = tcase_create("defaults");
    tcase_add_loop_test(tc, default_class, 0, (int)ML_ARRAY_LEN(classes));
    tcase_add_test(tc, public_allowed);
    tcase_add_test(tc, canonical_forms);
    tcase_add_test(tc, explain_allowed_leaves_buffer);
    tcase_add_test(tc, unsupported_family);
    suite_add_tcase(s, tc);
    tc = tcase_create("lists");
    tcase_add_test(tc, allow_loopback);
    tcase_add_test(tc, allow_lists_parse);
    tcase_add_test(tc, deny_embedded_forms);
    tcase_add_test(tc, deny_wins_over_allow);
    tcase_add_test(tc, deny_ipv6_prefix_of_embedded);
    tcase_add_test(tc, allow_everything_keeps_hard_rules);
    tcase_add_test(tc, allow_ipv6_does_not_open_embedded);
    tcase_add_test(tc, bad_lists);
    tcase_add_test(tc, empty_lists);
    suite_add_tcase(s, tc);
    tc = tcase_create("services");
    tcase_add_test(tc, service_specific);
    tcase_add_test(tc, service_wildcard);
    tcase_add_test(tc, service_wildcard_v4_and_mapped);
    tcase_add_test(tc, service_bad_family);
    suite_add_tcase(s, tc);
    tc = tcase_create("cve");
    tcase_add_test(tc, cve_2018_4058_loopback_denied_by_default);
    tcase_add_test(tc, cve_2020_26262_unspecified_always_denied);
    tcase_add_test(tc, cve_2026_27624_embedded_ipv4_denied);
    suite_add_tcase(s, tc);
    tc = tcase_create("threads");
    tcase_add_test(tc, shared_by_threads);
    suite_add_tcase(s, tc);
    return s;
}

ML_CHECK_MAIN(policy_suite)
