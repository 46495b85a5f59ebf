/* Unit tests of the client's address behind trusted proxies (src/http/http-forwarded.c):
 * X-Forwarded-For and RFC 7239 Forwarded walked from the right past trusted hops, every
 * address form a hop may take, and everything uncertain (untrusted peer, malformed hop,
 * obfuscated or unknown node, open quote, too many hops) leaving the peer's address. */
#include "config.h"

#include "http/http.h"

#include <string.h>

#include "mlcheck.h"

static struct ml_cidr_set trusted;

static void setup(void)
{
    char err[128];
    memset(&trusted, 0, sizeof trusted);
    ck_assert_int_eq(
        ml_cidr_set_add_list(&trusted, "127.0.0.1/32, 10.0.0.0/8, ::1/128", err, sizeof err), 0);
}

static void teardown(void)
{
    ml_cidr_set_free(&trusted);
}

/* The client for a header from peer: its text, or "-" when the peer's address stands. */
static const char *client(const char *peer, enum http_fwd_header kind, const char *value)
{
    static char out[ML_ADDR_STRLEN];
    struct sockaddr_storage ss;
    socklen_t len;
    ck_assert_int_eq(ml_addr_parse(peer, 0, &ss, &len), 0);
    if (!http_forwarded_client(&trusted, (struct sockaddr *)&ss, kind, value, out, sizeof out))
        return "-";
    return out;
}

#define XFF(v) client("127.0.0.1", HTTP_FWD_XFF, v)
#define FWD(v) client("127.0.0.1", HTTP_FWD_FORWARDED, v)

START_TEST(xff_walk)
{
    ck_assert_str_eq(XFF("198.51.100.1"), "198.51.100.1");
    ck_assert_str_eq(XFF(" 198.51.100.1 "), "198.51.100.1");
    ck_assert_str_eq(XFF("203.0.113.66, 198.51.100.2"), "198.51.100.2"); /* forged left hop */
    ck_assert_str_eq(XFF("198.51.100.3,10.1.2.3"), "198.51.100.3");      /* a trusted hop */
    ck_assert_str_eq(XFF("10.9.9.9, 10.1.2.3"), "10.9.9.9"); /* all trusted: the farthest */
    ck_assert_str_eq(XFF("198.51.100.4:8080"), "198.51.100.4");
    ck_assert_str_eq(XFF("2001:db8::5"), "2001:db8::5");
    ck_assert_str_eq(XFF("[2001:db8::5]"), "2001:db8::5");
    ck_assert_str_eq(XFF("[2001:db8::5]:443"), "2001:db8::5");
    ck_assert_str_eq(XFF("::ffff:198.51.100.6"), "198.51.100.6");
    ck_assert_str_eq(XFF("198.51.100.7, ::ffff:10.0.0.1"), "198.51.100.7"); /* mapped, trusted */
    /* from an IPv4-mapped trusted peer, and from ::1 */
    ck_assert_str_eq(client("::ffff:127.0.0.1", HTTP_FWD_XFF, "198.51.100.8"), "198.51.100.8");
    ck_assert_str_eq(client("::1", HTTP_FWD_XFF, "198.51.100.9"), "198.51.100.9");
}
END_TEST

START_TEST(mapped_in_the_list)
{
    /* a list that writes an IPv4 proxy as IPv4-mapped IPv6 trusts it as IPv4 too */
    char err[128];
    struct ml_cidr_set set = {0};
    ck_assert_int_eq(ml_cidr_set_add_list(&set, "::ffff:192.0.2.9/128", err, sizeof err), 0);
    struct sockaddr_storage ss;
    socklen_t len;
    char out[ML_ADDR_STRLEN];
    ck_assert_int_eq(ml_addr_parse("192.0.2.9", 0, &ss, &len), 0);
    ck_assert(http_forwarded_client(&set, (struct sockaddr *)&ss, HTTP_FWD_XFF,
                                    "198.51.100.1, 192.0.2.9", out, sizeof out));
    ck_assert_str_eq(out, "198.51.100.1");
    ck_assert_int_eq(ml_addr_parse("::ffff:192.0.2.9", 0, &ss, &len), 0);
    ck_assert(http_forwarded_client(&set, (struct sockaddr *)&ss, HTTP_FWD_XFF, "198.51.100.2", out,
                                    sizeof out));
    ck_assert_str_eq(out, "198.51.100.2");
    ml_cidr_set_free(&set);
}
END_TEST

START_TEST(xff_ignored)
{
    /* an untrusted peer's header counts for nothing */
    ck_assert_str_eq(client("127.0.0.2", HTTP_FWD_XFF, "198.51.100.1"), "-");
    ck_assert_str_eq(client("192.0.2.1", HTTP_FWD_XFF, "10.0.0.1"), "-");
    const char *bad[] = {"",
                         ",",
                         "198.51.100.1,",
                         "not-an-address",
                         "999.1.1.1",
                         "198.51.100.1:99999",
                         "198.51.100.1:",
                         "198.51.100.1:80:80x",
                         "[2001:db8::5",
                         "[2001:db8::5]x",
                         "[2001:db8::5]:",
                         "\"198.51.100.1\"",
                         "unknown",
                         "198.51.100.1 198.51.100.2"};
    for (size_t i = 0; i < ML_ARRAY_LEN(bad); i++)
        ck_assert_msg(strcmp(XFF(bad[i]), "-") == 0, "%s -> %s", bad[i], XFF(bad[i]));
    /* a malformed hop beyond the first untrusted one is never reached */
    ck_assert_str_eq(XFF("garbage, 198.51.100.1"), "198.51.100.1");
    ck_assert_str_eq(XFF("198.51.100.1, , 198.51.100.2"), "198.51.100.2");
    /* but one between trusted hops ends the walk at the peer */
    ck_assert_str_eq(XFF("198.51.100.1, garbage, 10.0.0.2"), "-");
    /* more hops than are walked */
    char many[2048] = "";
    for (int i = 0; i < 40; i++)
        ml_snprintf(many + strlen(many), sizeof many - strlen(many), "%s10.0.0.%d", i ? "," : "",
                    i + 1);
    ck_assert_str_eq(XFF(many), "-");
}
END_TEST

START_TEST(forwarded)
{
    ck_assert_str_eq(FWD("for=192.0.2.60;proto=http;by=203.0.113.43"), "192.0.2.60");
    ck_assert_str_eq(FWD("For=\"[2001:db8:cafe::17]:4711\""), "2001:db8:cafe::17");
    ck_assert_str_eq(FWD("for=\"192.0.2.43:47011\""), "192.0.2.43");
    ck_assert_str_eq(FWD("for=192.0.2.43, for=198.51.100.17"), "198.51.100.17");
    ck_assert_str_eq(FWD("for=192.0.2.43, for=10.0.0.1;by=10.0.0.2"), "192.0.2.43");
    ck_assert_str_eq(FWD("proto=https; for=192.0.2.44 ;host=x"), "192.0.2.44");
    ck_assert_str_eq(FWD("for=\"[2001:db8::1],x\", for=192.0.2.45"), "192.0.2.45");
    ck_assert_str_eq(FWD("for=\"\\192.0.2.46\""), "192.0.2.46"); /* a quoted-pair */
    const char *bad[] = {"for=_hidden",
                         "for=\"_hidden:1\"",
                         "for=unknown",
                         "proto=https",
                         "for=",
                         "for=\"[2001:db8::1",
                         "for=192.0.2.1;for=192.0.2.2",
                         "for=192.0.2.1 x",
                         "for=192.0.2.1;;",
                         "for",
                         "for=[2001:db8::1]",
                         "for=192.0.2.1:80",
                         "for=192.0.2.1, for=_obf",
                         "for=192.0.2.1, "};
    for (size_t i = 0; i < ML_ARRAY_LEN(bad); i++)
        ck_assert_msg(strcmp(FWD(bad[i]), "-") == 0, "%s -> %s", bad[i], FWD(bad[i]));
}
END_TEST

static Suite *forwarded_suite(void)
{
    Suite *s = suite_create("forwarded");
    TCase *tc = tcase_create("walk");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, xff_walk);
    tcase_add_test(tc, xff_ignored);
    tcase_add_test(tc, forwarded);
    tcase_add_test(tc, mapped_in_the_list);
    suite_add_tcase(s, tc);
    return s;
}

ML_CHECK_MAIN(forwarded_suite)
