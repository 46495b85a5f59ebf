/* Unit tests of src/control: request validation by parameter tables, UTF-8 checks, the error
 * table, route matching, and the failed-login limiter. */
#include "config.h"

#include "control/cp-int.h"

#include <string.h>

#include "mlcheck.h"

struct in {
    char name[32];
    char mail[64];
    long long n;
    bool flag;
    int color;
    bool has_name, has_n;
};

static const char *const colors[] = {"red", "green", NULL};
static const struct http_param table[] = {
    {"name", HTTP_P_STRING, HTTP_P_NO_CTRL | HTTP_P_TRIM, 1, 5, offsetof(struct in, name), 32,
     offsetof(struct in, has_name), NULL},
    {"mail", HTTP_P_EMAIL, HTTP_P_REQUIRED, 3, 60, offsetof(struct in, mail), 64, HTTP_P_NOHAS,
     NULL},
    {"n", HTTP_P_INT, 0, -3, 10, offsetof(struct in, n), 0, offsetof(struct in, has_n), NULL},
    {"flag", HTTP_P_BOOL, 0, 0, 0, offsetof(struct in, flag), 0, HTTP_P_NOHAS, NULL},
    {"color", HTTP_P_ENUM, 0, 0, 0, offsetof(struct in, color), 0, HTTP_P_NOHAS, colors},
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

static enum http_err parse(const char *text, struct in *out, char *msg)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    ck_assert_msg(j != NULL, "bad test JSON %s", text);
    memset(out, 0, sizeof *out);
    enum http_err e = http_params_parse(table, j, out, msg, 200);
    json_decref(j);
    return e;
}

START_TEST(params_ok)
{
    struct in v;
    char msg[200];
    ck_assert_int_eq(parse("{\"name\":\"  \xc3\xa9t\xc3\xa9  \",\"mail\":\"a@b.c\",\"n\":-3,"
                           "\"flag\":true,\"color\":\"green\",\"extra\":[1]}",
                           &v, msg),
                     HTTP_OK);
    ck_assert_str_eq(v.name, "\xc3\xa9t\xc3\xa9");
    ck_assert_str_eq(v.mail, "a@b.c");
    ck_assert_int_eq(v.n, -3);
    ck_assert(v.flag);
    ck_assert_int_eq(v.color, 1);
    ck_assert(v.has_name && v.has_n);
    ck_assert_int_eq(parse("{\"mail\":\"x@y.org\",\"name\":null}", &v, msg), HTTP_OK);
    ck_assert(!v.has_name && !v.has_n);
}
END_TEST

START_TEST(params_errors)
{
    struct in v;
    char msg[200];
    ck_assert_int_eq(parse("[]", &v, msg), HTTP_E_INVALID_JSON);
    ck_assert_int_eq(parse("\"x\"", &v, msg), HTTP_E_INVALID_JSON);
    ck_assert_int_eq(parse("{}", &v, msg), HTTP_E_MISSING_FIELD);
    ck_assert_str_eq(msg, "mail is required");
    ck_assert_int_eq(parse("{\"mail\":null}", &v, msg), HTTP_E_MISSING_FIELD);
    ck_assert_int_eq(parse("{\"mail\":5}", &v, msg), HTTP_E_INVALID_FIELD);
    ck_assert_ptr_nonnull(strstr(msg, "mail"));
    ck_assert_int_eq(parse("{\"mail\":\"nope\"}", &v, msg), HTTP_E_INVALID_FIELD);
    ck_assert_int_eq(parse("{\"mail\":\"a@b\"}", &v, msg), HTTP_E_INVALID_FIELD);
    ck_assert_int_eq(parse("{\"mail\":\"a b@c.d\"}", &v, msg), HTTP_E_INVALID_FIELD);
    ck_assert_int_eq(parse("{\"mail\":\"a@b.c\",\"name\":\"toolong\"}", &v, msg),
                     HTTP_E_INVALID_FIELD);
    /* five two-byte characters are five characters */
    ck_assert_int_eq(
        parse("{\"mail\":\"a@b.c\",\"name\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}", &v,
              msg),
        HTTP_OK);
    ck_assert_int_eq(parse("{\"mail\":\"a@b.c\",\"name\":\"   \"}", &v, msg), HTTP_E_INVALID_FIELD);
    ck_assert_int_eq(parse("{\"mail\":\"a@b.c\",\"name\":\"a\\tb\"}", &v, msg),
                     HTTP_E_INVALID_FIELD);
    ck_assert_int_eq(parse("{\"mail\":\"a@b.c\",\"name\":\"a\xc2\x85\"}", &v, msg),
                     HTTP_E_INVALID_FIELD);
    ck_assert_int_eq(parse("{\"mail\":\"a@b.c\",\"n\":11}", &v, msg), HTTP_E_INVALID_FIELD);
    ck_assert_int_eq(parse("{\"mail\":\"a@b.c\",\"n\":-4}", &v, msg), HTTP_E_INVALID_FIELD);
    ck_assert_int_eq(parse("{\"mail\":\"a@b.c\",\"n\":1.5}", &v, msg), HTTP_E_INVALID_FIELD);
    ck_assert_int_eq(parse("{\"mail\":\"a@b.c\",\"n\":\"1\"}", &v, msg), HTTP_E_INVALID_FIELD);
    ck_assert_int_eq(parse("{\"mail\":\"a@b.c\",\"flag\":1}", &v, msg), HTTP_E_INVALID_FIELD);
    ck_assert_int_eq(parse("{\"mail\":\"a@b.c\",\"color\":\"blue\"}", &v, msg),
                     HTTP_E_INVALID_FIELD);
    ck_assert_ptr_nonnull(strstr(msg, "red, green"));
}
END_TEST

/* HTTP_P_EMPTY_OK: "" passes besides min..max (a PATCH's "remove it"); 1..3 stays refused. */
START_TEST(params_empty_ok)
{
    struct code_in {
        char code[16];
        bool has_code;
    } v;
    static const struct http_param t[] = {
        {"code", HTTP_P_STRING, HTTP_P_EMPTY_OK, 4, 8, offsetof(struct code_in, code), 16,
         offsetof(struct code_in, has_code), NULL},
        {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
    };
    const char *ok[] = {"{\"code\":\"\"}", "{\"code\":\"abcd\"}", "{\"code\":\"abcdefgh\"}"};
    const char *bad[] = {"{\"code\":\"a\"}", "{\"code\":\"abc\"}", "{\"code\":\"abcdefghi\"}"};
    char msg[200];
    for (size_t i = 0; i < 3; i++) {
        json_t *j = json_loads(ok[i], 0, NULL);
        memset(&v, 0, sizeof v);
        ck_assert_int_eq(http_params_parse(t, j, &v, msg, sizeof msg), HTTP_OK);
        ck_assert(v.has_code);
        json_decref(j);
        j = json_loads(bad[i], 0, NULL);
        ck_assert_int_eq(http_params_parse(t, j, &v, msg, sizeof msg), HTTP_E_INVALID_FIELD);
        ck_assert_ptr_nonnull(strstr(msg, "or \"\""));
        json_decref(j);
    }
}
END_TEST

START_TEST(utf8)
{
    size_t n;
    ck_assert(ml_utf8_valid("abc", 3, &n) && n == 3);
    ck_assert(ml_utf8_valid("\xf0\x9f\x98\x80", 4, &n) && n == 1);
    ck_assert(!ml_utf8_valid("\xff", 1, NULL));
    ck_assert(!ml_utf8_valid("\xc0\xaf", 2, NULL));         /* overlong '/' */
    ck_assert(!ml_utf8_valid("\xe0\x80\xaf", 3, NULL));     /* overlong */
    ck_assert(!ml_utf8_valid("\xed\xa0\x80", 3, NULL));     /* surrogate */
    ck_assert(!ml_utf8_valid("\xf4\x90\x80\x80", 4, NULL)); /* beyond U+10FFFF */
    ck_assert(!ml_utf8_valid("\xe2\x82", 2, NULL));         /* truncated */
    ck_assert(!ml_utf8_valid("a\0b", 3, NULL));             /* NUL */
}
END_TEST

START_TEST(errors_table)
{
    for (int e = 0; e < HTTP_E__COUNT; e++) {
        int st = http_err_status((enum http_err)e);
        ck_assert_msg(st >= 200 && st < 600, "status of %d", e);
        ck_assert_ptr_nonnull(http_err_code((enum http_err)e));
        ck_assert_int_eq(http_err_ws_code((enum http_err)e), 4000 + st);
        for (int f = 0; f < e; f++)
            ck_assert_str_ne(http_err_code((enum http_err)e), http_err_code((enum http_err)f));
    }
    ck_assert_int_eq(http_err_status(HTTP_E_MEETING_FULL), 409);
    ck_assert_int_eq(http_err_status(HTTP_E_MEETING_EXPIRED), 410);
    ck_assert_int_eq(http_err_status(HTTP_E_UNAVAILABLE), 503);
    size_t len;
    char *s = http_err_json(HTTP_E_NO_MEETING, NULL, &len);
    ck_assert_str_eq(
        s, "{\"error\":{\"code\":\"meeting_not_found\",\"message\":\"no such meeting\"}}");
    free(s);
    s = http_err_json(HTTP_E_INVALID_FIELD, "title: \"quoted\"", &len);
    ck_assert_ptr_nonnull(strstr(s, "title: \\\"quoted\\\""));
    free(s);
    /* the SQL functions' outcome words: one mapping; not_found means what the caller looked up */
    ck_assert_int_eq(http_err_outcome("not_found", HTTP_E_NO_MEETING), HTTP_E_NO_MEETING);
    ck_assert_int_eq(http_err_outcome("not_found", HTTP_E_NO_PARTICIPANT), HTTP_E_NO_PARTICIPANT);
    ck_assert_int_eq(http_err_outcome("participant_not_found", HTTP_E_NO_MEETING),
                     HTTP_E_NO_PARTICIPANT);
    ck_assert_int_eq(http_err_outcome("ended", HTTP_E_NO_MEETING), HTTP_E_MEETING_ENDED);
    ck_assert_int_eq(http_err_outcome("expired", HTTP_E_NO_MEETING), HTTP_E_MEETING_EXPIRED);
    ck_assert_int_eq(http_err_outcome("full", HTTP_E_NO_MEETING), HTTP_E_MEETING_FULL);
    ck_assert_int_eq(http_err_outcome("forbidden", HTTP_E_NO_MEETING), HTTP_E_NOT_ADMIN);
    ck_assert_int_eq(http_err_outcome("host", HTTP_E_NO_MEETING), HTTP_E_HOST_PROTECTED);
    ck_assert_int_eq(http_err_outcome("removed", HTTP_E_NO_MEETING), HTTP_E_REMOVED);
    ck_assert_int_eq(http_err_outcome("not_joined", HTTP_E_NO_MEETING), HTTP_E_NOT_JOINED);
    ck_assert_int_eq(http_err_outcome("node_unknown", HTTP_E_NO_MEETING), HTTP_E_UNAVAILABLE);
    ck_assert_int_eq(http_err_outcome("unavailable", HTTP_E_NO_MEETING), HTTP_E_UNAVAILABLE);
    ck_assert_int_eq(http_err_outcome("node", HTTP_E_NO_MEETING), HTTP_E_INTERNAL);
    ck_assert_int_eq(http_err_outcome("", HTTP_E_NO_MEETING), HTTP_E_INTERNAL);
}
END_TEST

static void h(struct http_req *req)
{
    (void)req;
}

static const struct http_route table_a[] = {
    {LWSHUMETH_GET, "/a/*", h, 0, NULL, 0},
    {LWSHUMETH_POST, "/a/*/join", h, 0, NULL, 0},
    {0, NULL, NULL, 0, NULL, 0},
};
static const struct http_route table_b[] = {
    {LWSHUMETH_DELETE, "/a/*/p/*", h, 0, NULL, 0},
    {LWSHUMETH_PATCH, "/a/*/p/*", h, 0, NULL, 0},
    {0, NULL, NULL, 0, NULL, 0},
};
/* a service's routes may come in several tables (one per file of handlers) */
static const struct http_route *const routes[] = {table_a, table_b, NULL};

START_TEST(routing)
{
    char caps[HTTP_MAX_CAPTURES][HTTP_SEGMENT_MAX];
    bool known;
    const struct http_route *r =
        http_route_match(routes, LWSHUMETH_GET, "/a/xyz", CP_SEGMENT_MAX, &known, caps);
    ck_assert_ptr_eq(r, &table_a[0]);
    ck_assert_str_eq(caps[0], "xyz");
    r = http_route_match(routes, LWSHUMETH_PATCH, "/a/m1/p/p2", CP_SEGMENT_MAX, &known, caps);
    ck_assert_ptr_eq(r, &table_b[1]);
    ck_assert_str_eq(caps[0], "m1");
    ck_assert_str_eq(caps[1], "p2");
    ck_assert_ptr_null(
        http_route_match(routes, LWSHUMETH_POST, "/a/x", CP_SEGMENT_MAX, &known, caps));
    ck_assert(known); /* 405 */
    ck_assert_ptr_null(
        http_route_match(routes, LWSHUMETH_GET, "/a/x/", CP_SEGMENT_MAX, &known, caps));
    ck_assert(!known); /* 404 */
    ck_assert_ptr_null(
        http_route_match(routes, LWSHUMETH_GET, "/a/", CP_SEGMENT_MAX, &known, caps));
    ck_assert_ptr_null(
        http_route_match(routes, LWSHUMETH_GET, "/b/x", CP_SEGMENT_MAX, &known, caps));
    char longseg[200];
    memset(longseg, 'x', sizeof longseg);
    memcpy(longseg, "/a/", 3);
    longseg[sizeof longseg - 1] = 0;
    ck_assert_ptr_null(
        http_route_match(routes, LWSHUMETH_GET, longseg, CP_SEGMENT_MAX, &known, caps));
    char allow[64];
    http_route_allow(routes, "/a/1/p/2", CP_SEGMENT_MAX, true, allow, sizeof allow);
    ck_assert_str_eq(allow, "DELETE, PATCH, OPTIONS");
    http_route_allow(routes, "/a/1/p/2", CP_SEGMENT_MAX, false, allow, sizeof allow);
    ck_assert_str_eq(allow, "DELETE, PATCH"); /* a server that answers no preflight */
    http_route_allow(routes, "/nothing", CP_SEGMENT_MAX, true, allow, sizeof allow);
    ck_assert_str_eq(allow, "OPTIONS");
}
END_TEST

/* A query argument as lws hands it over (URL-decoded): name=value, or a bare name. */
START_TEST(query_args)
{
    struct http_arg a;
    ck_assert(http_arg_parse("top=10", &a));
    ck_assert_str_eq(a.name, "top");
    ck_assert_str_eq(a.value, "10");
    ck_assert(http_arg_parse("flag", &a));
    ck_assert_str_eq(a.name, "flag");
    ck_assert_str_eq(a.value, "");
    ck_assert(http_arg_parse("a==b", &a));
    ck_assert_str_eq(a.value, "=b");
    ck_assert(!http_arg_parse("=x", &a));
    ck_assert(!http_arg_parse("", &a));
    ck_assert(http_arg_parse("abcdefghijklmnopqrstuvw=1", &a)); /* 23 bytes: the most */
    ck_assert(!http_arg_parse("abcdefghijklmnopqrstuvwx=1", &a));
    char big[HTTP_ARG_MAX + 40];
    memset(big, 'v', sizeof big);
    memcpy(big, "k=", 2);
    big[sizeof big - 1] = 0;
    ck_assert(http_arg_parse(big, &a));
    ck_assert_uint_eq(strlen(a.value), HTTP_ARG_MAX - 1); /* cut, terminated */
    struct http_req req;
    struct http_arg args[2];
    memset(&req, 0, sizeof req);
    req.args = args;
    ck_assert(http_arg_parse("limit=5", &args[req.nargs++]));
    ck_assert(http_arg_parse("id=7", &args[req.nargs++]));
    ck_assert_str_eq(http_req_arg(&req, "id"), "7");
    ck_assert_ptr_null(http_req_arg(&req, "top"));
}
END_TEST

START_TEST(limiter)
{
    struct cp_limiter *l = cp_limiter_new(64);
    unsigned retry = 0;
    ck_assert(!cp_limiter_blocked(l, "acct:a", 3, 60, &retry));
    for (int i = 0; i < 3; i++)
        cp_limiter_fail(l, "acct:a", 60);
    ck_assert(cp_limiter_blocked(l, "acct:a", 3, 60, &retry));
    ck_assert(retry >= 1 && retry <= 60);
    ck_assert(!cp_limiter_blocked(l, "acct:b", 3, 60, &retry));
    ck_assert(!cp_limiter_blocked(l, "acct:a", 4, 60, &retry));
    ck_assert_uint_eq(cp_limiter_failures(l, "acct:a", 60), 3); /* the slowdown's count */
    ck_assert_uint_eq(cp_limiter_failures(l, "acct:b", 60), 0);
    cp_limiter_reset(l, "acct:a");
    ck_assert(!cp_limiter_blocked(l, "acct:a", 3, 60, &retry));
    ck_assert_uint_eq(cp_limiter_failures(l, "acct:a", 60), 0);
    cp_limiter_free(l);
}
END_TEST

/* A relay's URIs from turn.listen (what a join derives, what a fleet's relay registers):
 * cheapest first, one stun: per address, a wildcard named by the host given. */
START_TEST(listen_uris)
{
    char err[256];
    char *u = cp_listen_uris_list("tls://192.0.2.1:443, udp://192.0.2.1:3478, tcp://192.0.2.1:3478",
                                  "unused", err, sizeof err);
    ck_assert_ptr_nonnull(u);
    ck_assert_str_eq(u, "stun:192.0.2.1:3478, turn:192.0.2.1:3478?transport=udp, "
                        "turn:192.0.2.1:3478?transport=tcp, turns:192.0.2.1:443?transport=tcp");
    free(u);
    u = cp_listen_uris_list("udp://0.0.0.0:3478, udp://[::]:3478", "203.0.113.7", err, sizeof err);
    ck_assert_ptr_nonnull(u);
    ck_assert_str_eq(u, "stun:203.0.113.7:3478, turn:203.0.113.7:3478?transport=udp");
    free(u);
    u = cp_listen_uris_list("udp://[2001:db8::1]:3478", "x", err, sizeof err);
    ck_assert_str_eq(u, "stun:[2001:db8::1]:3478, turn:[2001:db8::1]:3478?transport=udp");
    free(u);
    ck_assert_ptr_null(cp_listen_uris_list("bogus://1.2.3.4:1", "x", err, sizeof err));
    ck_assert(err[0]);
}
END_TEST

/* iceServers from a relay's URIs: the stun: ones without a credential, the turn(s): ones with. */
START_TEST(ice_from_uris)
{
    json_t *uris = json_pack("[s,s,s]", "stun:a:3478", "turn:a:3478?transport=udp",
                             "turns:a:443?transport=tcp");
    json_t *ice = cp_ice_from(uris, "1:u", "p");
    ck_assert_uint_eq(json_array_size(ice), 2);
    ck_assert_ptr_null(json_object_get(json_array_get(ice, 0), "username"));
    ck_assert_uint_eq(json_array_size(json_object_get(json_array_get(ice, 0), "urls")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(ice, 1), "username")), "1:u");
    ck_assert_uint_eq(json_array_size(json_object_get(json_array_get(ice, 1), "urls")), 2);
    json_decref(ice);
    json_t *only_stun = json_pack("[s]", "stun:a:3478");
    ice = cp_ice_from(only_stun, "1:u", "p");
    ck_assert_uint_eq(json_array_size(ice), 1);
    json_decref(ice);
    json_decref(only_stun);
    json_decref(uris);
}
END_TEST

/* The bound on a relay's registered URIs (fleet.public-uris, and what placement reads back). */
START_TEST(ice_uri_bound)
{
    const char *ok[] = {"stun:a:3478", "stuns:r1.example.org", "turn:[2001:db8::1]:3478",
                        "turns:r1.example.org:443?transport=tcp"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        ck_assert_msg(cp_ice_uri_ok(ok[i], strlen(ok[i])), "%s", ok[i]);
    const char *bad[] = {
        "",           "stun:",     "turn:?transport=udp", "http://a",   "javascript:x",
        "turn:a b",   "turn:a\"b", "turn:a\\b",           "turn:a\x7f", "turn:\xc3\xa9",
        "turn::3478", "stunx:a"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(!cp_ice_uri_ok(bad[i], strlen(bad[i])), "%s", bad[i]);
    char longest[CP_ICE_URI_MAX + 2];
    memset(longest, 'a', sizeof longest - 1);
    memcpy(longest, "turn:", 5);
    longest[CP_ICE_URI_MAX] = 0;
    ck_assert(cp_ice_uri_ok(longest, CP_ICE_URI_MAX));
    longest[CP_ICE_URI_MAX] = 'a';
    longest[CP_ICE_URI_MAX + 1] = 0;
    ck_assert(!cp_ice_uri_ok(longest, CP_ICE_URI_MAX + 1));
    ck_assert(!cp_ice_uri_ok("turn:a\0b", 8)); /* n bytes: a NUL inside is not printable */
}
END_TEST

static Suite *control_suite(void)
{
    Suite *s = suite_create("control");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, params_ok);
    tcase_add_test(tc, params_errors);
    tcase_add_test(tc, params_empty_ok);
    tcase_add_test(tc, ice_uri_bound);
    tcase_add_test(tc, utf8);
    tcase_add_test(tc, errors_table);
    tcase_add_test(tc, routing);
    tcase_add_test(tc, query_args);
    tcase_add_test(tc, limiter);
    tcase_add_test(tc, listen_uris);
    tcase_add_test(tc, ice_from_uris);
    suite_add_tcase(s, tc);
    return s;
}

ML_CHECK_MAIN(control_suite)
