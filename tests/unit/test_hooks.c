/* Unit tests of src/hooks without a server: the signature (a vector computed independently with
 * Python's hmac module), the secret's loading (file, key, bounds) and the key rules. */
#include "config.h"

#include "hooks/wh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mlcheck.h"

#define KEY "webhook-secret-0123456789abcdef"

START_TEST(signature_vector)
{
    /* python3 -c 'import hmac,hashlib; print(hmac.new(b"webhook-secret-0123456789abcdef",
     *             b"1700000000.{\"id\":\"x\"}", hashlib.sha256).hexdigest())' */
    char sig[WH_SIG_LEN];
    const char body[] = "{\"id\":\"x\"}";
    wh_sign(KEY, strlen(KEY), 1700000000, body, strlen(body), sig);
    ck_assert_str_eq(sig, "v1=1f885c53de99f54d59e03f28e594522a97db1876f4d6f73a183fbbba3c77bed5");
    /* another time, another signature: the timestamp is signed */
    char other[WH_SIG_LEN];
    wh_sign(KEY, strlen(KEY), 1700000001, body, strlen(body), other);
    ck_assert_str_ne(sig, other);
}
END_TEST

static char *write_tmp(const char *text)
{
    char *path = strdup("/tmp/test_hooks-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

START_TEST(secret_sources)
{
    struct wh_config c;
    char buf[WH_SECRET_MAX + 1], err[256];
    memset(&c, 0, sizeof c);
    ck_assert_int_eq(wh_secret_load(&c, buf, err, sizeof err), 0); /* none configured */
    c.secret = KEY;
    ck_assert_int_eq(wh_secret_load(&c, buf, err, sizeof err), (int)strlen(KEY));
    ck_assert_str_eq(buf, KEY);
    c.secret = "short";
    ck_assert_int_eq(wh_secret_load(&c, buf, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "shorter than 16"));
    c.secret = NULL;
    char *p = write_tmp(KEY "\r\n");
    c.secret_file = p;
    ck_assert_int_eq(wh_secret_load(&c, buf, err, sizeof err), (int)strlen(KEY));
    ck_assert_str_eq(buf, KEY);
    unlink(p);
    free(p);
    /* the rules of every -file key: one line, never a first line of several */
    p = write_tmp(KEY "\nsecond line\n");
    c.secret_file = p;
    ck_assert_int_eq(wh_secret_load(&c, buf, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "more than one line"));
    ck_assert_ptr_null(strstr(err, KEY));
    unlink(p);
    free(p);
    p = write_tmp("\n");
    c.secret_file = p;
    ck_assert_int_eq(wh_secret_load(&c, buf, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "empty"));
    unlink(p);
    free(p);
    char longer[WH_SECRET_MAX + 10];
    memset(longer, 'k', sizeof longer - 1);
    longer[sizeof longer - 1] = 0;
    p = write_tmp(longer);
    c.secret_file = p;
    ck_assert_int_eq(wh_secret_load(&c, buf, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "longer than"));
    unlink(p);
    free(p);
    c.secret_file = "/nonexistent/webhook.secret";
    ck_assert_int_eq(wh_secret_load(&c, buf, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/webhook.secret"));
}
END_TEST

START_TEST(key_rules)
{
    struct wh_config c;
    char err[256];
    memset(&c, 0, sizeof c);
    c.max_age_s = 86400;
    c.retention_s = 86400;
    c.retry_initial_ms = 100;
    c.retry_max_ms = 100;
    ck_assert_int_eq(wh_config_check(&c, err, sizeof err), 0);
    c.url = "https://example.org/hook";
    ck_assert_int_eq(wh_config_check(&c, err, sizeof err), -1); /* no secret */
    c.secret_file = "/etc/meetlite/webhook.secret";
    ck_assert_int_eq(wh_config_check(&c, err, sizeof err), 0);
    c.secret = KEY;
    ck_assert_int_eq(wh_config_check(&c, err, sizeof err), -1); /* both */
    c.secret = NULL;
    c.retention_s = 3600;
    ck_assert_int_eq(wh_config_check(&c, err, sizeof err), -1); /* retention < max-age */
    c.retention_s = 86400;
    c.retry_max_ms = 50;
    ck_assert_int_eq(wh_config_check(&c, err, sizeof err), -1); /* ceiling below the start */
}
END_TEST

static Suite *hooks_suite(void)
{
    Suite *s = suite_create("hooks");
    TCase *tc = tcase_create("pure");
    tcase_add_test(tc, signature_vector);
    tcase_add_test(tc, secret_sources);
    tcase_add_test(tc, key_rules);
    suite_add_tcase(s, tc);
    return s;
}

ML_CHECK_MAIN(hooks_suite)
