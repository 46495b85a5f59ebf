/* Unit tests of the daemon's HTTP client (src/http/http-fetch.c) against a one-connection
 * server on loopback: the body's ceiling, kept headers (repeats joined, the last answer's),
 * statuses, redirects neither followed unasked nor to another scheme, the timeout, the abort
 * flag, a POST sent whole; and the URL checks of the configuration keys. */
#include "config.h"

#include "http/http.h"

#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mlcheck.h"

/* The server: answers one connection with answer (NULL: never answers, holds it 3 s), after
 * reading the request into seen. */
static int lfd = -1, port;
static const char *answer;
static char seen[4096];
static pthread_t srv;

static void *serve(void *arg)
{
    ML_UNUSED(arg);
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, seen + n, sizeof seen - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        seen[n] = 0;
        char *end = strstr(seen, "\r\n\r\n");
        const char *cl = strstr(seen, "Content-Length: ");
        if (end && (!cl || strlen(end + 4) >= strtoul(cl + 16, NULL, 10)))
            break;
    }
    if (answer) {
        ssize_t w = write(fd, answer, strlen(answer));
        ML_UNUSED(w);
    } else {
        sleep(3);
    }
    close(fd);
    return NULL;
}

static void start(const char *a)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(lfd, 0);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    ck_assert_int_eq(listen(lfd, 4), 0);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
    port = ntohs(sin.sin_port);
    answer = a;
    seen[0] = 0;
    ck_assert_int_eq(pthread_create(&srv, NULL, serve, NULL), 0);
}

static void stop(void)
{
    shutdown(lfd, SHUT_RDWR); /* a server no request reached stops waiting in accept */
    pthread_join(srv, NULL);
    close(lfd);
}

/* A GET of the server's /x with a ceiling of max bytes. */
static enum http_fetch_err get(struct http_fetch_resp *resp, size_t max, const bool *abort,
                               long redirects)
{
    static const char *const keep[] = {"Cache-Control", "X-Other", NULL};
    char url[64];
    ml_snprintf(url, sizeof url, "http://127.0.0.1:%d/x", port);
    struct http_fetch_req req = {.url = url,
                                 .protocols = "http",
                                 .max_redirects = redirects,
                                 .timeout_ms = 1500,
                                 .max_body = max,
                                 .keep_headers = keep,
                                 .abort = abort};
    return http_fetch(NULL, &req, resp);
}

START_TEST(answer_and_headers)
{
    start("HTTP/1.1 200 OK\r\nCache-Control: max-age=5\r\nContent-Length: 5\r\n"
          "cache-control:  no-cache \r\nConnection: close\r\n\r\nhello");
    struct http_fetch_resp r;
    ck_assert_int_eq(get(&r, 5, NULL, 0), HTTP_FETCH_OK);
    stop();
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "hello");
    ck_assert_uint_eq(r.body_len, 5);
    ck_assert_str_eq(r.headers[0], "max-age=5, no-cache");
    ck_assert_ptr_null(r.headers[1]);
    ck_assert_ptr_nonnull(strstr(seen, "GET /x HTTP/1.1\r\n"));
    http_fetch_resp_free(&r);
}
END_TEST

START_TEST(too_large)
{
    start("HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello!");
    struct http_fetch_resp r;
    ck_assert_int_eq(get(&r, 5, NULL, 0), HTTP_FETCH_TOO_LARGE);
    stop();
    ck_assert_int_eq(r.status, 200); /* known: the caller may still judge it */
    ck_assert_ptr_nonnull(strstr(r.err, "larger than 5 bytes"));
    http_fetch_resp_free(&r);
}
END_TEST

START_TEST(header_too_long)
{
    static char a[4096];
    char v[HTTP_FETCH_HEADER_MAX + 2];
    memset(v, '9', sizeof v - 1);
    v[sizeof v - 1] = 0;
    ml_snprintf(a, sizeof a,
                "HTTP/1.1 200 OK\r\nCache-Control: max-age=%s\r\nContent-Length: 0\r\n"
                "Connection: close\r\n\r\n",
                v);
    start(a);
    struct http_fetch_resp r;
    ck_assert_int_eq(get(&r, 5, NULL, 0), HTTP_FETCH_OK);
    stop();
    ck_assert_ptr_null(r.headers[0]); /* dropped, not cut to a shorter number */
    ck_assert_ptr_null(r.body);
    http_fetch_resp_free(&r);
}
END_TEST

START_TEST(status_and_redirects)
{
    start("HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno");
    struct http_fetch_resp r;
    ck_assert_int_eq(get(&r, 100, NULL, 0), HTTP_FETCH_STATUS);
    stop();
    ck_assert_int_eq(r.status, 404);
    ck_assert_str_eq(r.err, "HTTP 404");
    ck_assert_str_eq(r.body, "no");
    http_fetch_resp_free(&r);

    /* not followed unless asked */
    start("HTTP/1.1 302 Found\r\nLocation: /y\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    ck_assert_int_eq(get(&r, 100, NULL, 0), HTTP_FETCH_STATUS);
    stop();
    ck_assert_int_eq(r.status, 302);
    http_fetch_resp_free(&r);

    /* followed when asked, but never to a scheme the request does not allow */
    start("HTTP/1.1 302 Found\r\nLocation: ftp://127.0.0.1/y\r\nContent-Length: 0\r\n"
          "Connection: close\r\n\r\n");
    ck_assert_int_eq(get(&r, 100, NULL, 3), HTTP_FETCH_TRANSPORT);
    stop();
    http_fetch_resp_free(&r);
}
END_TEST

START_TEST(timeout_and_abort)
{
    start(NULL);
    struct http_fetch_resp r;
    int64_t t0 = ml_now_ms();
    ck_assert_int_eq(get(&r, 100, NULL, 0), HTTP_FETCH_TIMEOUT);
    ck_assert_int_lt(ml_now_ms() - t0, 2500);
    ck_assert_int_eq(r.status, 0);
    http_fetch_resp_free(&r);
    stop();

    start(NULL);
    bool stop_now = true;
    ck_assert_int_eq(get(&r, 100, &stop_now, 0), HTTP_FETCH_TRANSPORT);
    ck_assert_str_eq(r.err, "stopped");
    http_fetch_resp_free(&r);
    stop();
}
END_TEST

START_TEST(post_whole)
{
    start("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
    char url[64], body[3000];
    memset(body, 'b', sizeof body - 1);
    body[sizeof body - 1] = 0;
    ml_snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", port);
    const char *const hv[] = {"Content-Type: application/json", "X-Test: 1", NULL};
    struct http_fetch_req req = {.url = url,
                                 .body = body,
                                 .body_len = strlen(body),
                                 .headers = hv,
                                 .protocols = "http",
                                 .timeout_ms = 1500,
                                 .max_body = 100};
    struct http_fetch_conn *c = http_fetch_conn_new();
    struct http_fetch_resp r;
    ck_assert_int_eq(http_fetch(c, &req, &r), HTTP_FETCH_OK);
    stop();
    ck_assert_int_eq(r.status, 204);
    ck_assert_ptr_nonnull(strstr(seen, "POST /hook HTTP/1.1\r\n"));
    ck_assert_ptr_nonnull(strstr(seen, "X-Test: 1\r\n"));
    ck_assert_ptr_null(strstr(seen, "Expect:")); /* sent at once, no 100-continue wait */
    ck_assert_ptr_nonnull(strstr(seen, body));
    http_fetch_resp_free(&r);
    http_fetch_conn_free(c);
}
END_TEST

START_TEST(url_checks)
{
    char err[128];
    static const struct {
        const char *url;
        enum http_fetch_schemes s;
        int ok;
    } cases[] = {
        {"https://issuer.example/keys", HTTP_FETCH_HTTPS, 0},
        {"HTTPS://issuer.example", HTTP_FETCH_HTTPS, 0},
        {"http://issuer.example/keys", HTTP_FETCH_HTTPS, -1},
        {"http://127.0.0.1:8080/keys", HTTP_FETCH_HTTPS, -1},
        {"https://", HTTP_FETCH_HTTPS, -1},
        {"issuer.example/keys", HTTP_FETCH_HTTPS, -1},
        {"ftp://issuer.example/", HTTP_FETCH_HTTP, -1},
        {"http://10.1.2.3:8000/v1/chat/completions", HTTP_FETCH_HTTP, 0},
        {"https://hooks.example/x", HTTP_FETCH_HTTP_LOOPBACK, 0},
        {"http://127.0.0.1:9000/x", HTTP_FETCH_HTTP_LOOPBACK, 0},
        {"http://localhost/x", HTTP_FETCH_HTTP_LOOPBACK, 0},
        {"http://[::1]:9000", HTTP_FETCH_HTTP_LOOPBACK, 0},
        {"http://example.org/x", HTTP_FETCH_HTTP_LOOPBACK, -1},
        {"http://localhost.example.org/x", HTTP_FETCH_HTTP_LOOPBACK, -1},
        /* the host is the one after the user name: not loopback */
        {"http://localhost:80@example.org/x", HTTP_FETCH_HTTP_LOOPBACK, -1},
        {"http://127.0.0.1@example.org/x", HTTP_FETCH_HTTP_LOOPBACK, -1},
    };
    for (size_t i = 0; i < ML_ARRAY_LEN(cases); i++) {
        err[0] = 0;
        int rc = http_fetch_url_check(cases[i].url, cases[i].s, err, sizeof err);
        ck_assert_msg(rc == cases[i].ok, "%s: %d (%s)", cases[i].url, rc, err);
        if (rc < 0)
            ck_assert_ptr_nonnull(strstr(err, "https://"));
    }
}
END_TEST

static Suite *fetch_suite(void)
{
    Suite *s = suite_create("fetch");
    TCase *tc = tcase_create("loopback");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, answer_and_headers);
    tcase_add_test(tc, too_large);
    tcase_add_test(tc, header_too_long);
    tcase_add_test(tc, status_and_redirects);
    tcase_add_test(tc, timeout_and_abort);
    tcase_add_test(tc, post_whole);
    tcase_add_test(tc, url_checks);
    suite_add_tcase(s, tc);
    return s;
}

static Suite *suite(void)
{
    if (http_fetch_global_init() < 0)
        abort();
    return fetch_suite();
}

ML_CHECK_MAIN(suite)
