/* Unit tests of src/common: the configuration engine, addresses, CIDR sets and helpers. */
#include "config.h"

#include "common/common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include "mlcheck.h"

struct sec_a {
    bool flag;
    long long count;
    long long timeout_s;
    long long bufsize;
    char *name;
    int mode;
    char *cidrs;
};

struct whole {
    int pad;
    struct sec_a a;
};

static const char *const modes[] = {"fast", "slow", NULL};

#define F(m) ML_CFG_FIELD(struct sec_a, m)
static const struct ml_cfg_key a_keys[] = {
    {"flag", ML_CFG_BOOL, "no", 0, 0, ML_CFG_RELOAD, F(flag), NULL, NULL, "a flag"},
    {"count", ML_CFG_INT, "5", 1, 10, 0, F(count), NULL, NULL, "a count"},
    {"timeout", ML_CFG_DURATION, "2m", 0, 86400, 0, F(timeout_s), NULL, NULL, "a duration"},
    {"bufsize", ML_CFG_SIZE, "64k", 0, 1LL << 30, 0, F(bufsize), NULL, NULL, "a size"},
    {"name", ML_CFG_STR, "meet", 0, 16, ML_CFG_RELOAD, F(name), NULL, NULL, "a string"},
    {"mode", ML_CFG_ENUM, "slow", 0, 0, 0, F(mode), modes, NULL, "an enum"},
    {"cidrs", ML_CFG_STR, "", 0, 4096, ML_CFG_SECRET | ML_CFG_LIST, F(cidrs), NULL,
     ml_cidr_list_validate, "a list"},
    {NULL, 0, NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};
static const struct ml_cfg_section sec = {"a", a_keys, offsetof(struct whole, a)};
static const struct ml_cfg_section *const secs[] = {&sec, NULL};

/* The reload rules (issue #13): restart-only keys, credential sources and their -file forms. */
struct sec_r {
    char *listen, *secret, *secret_file, *users;
    long long level;
};
struct whole_r {
    struct sec_r r;
};
#define R(m) ML_CFG_FIELD(struct sec_r, m)
static const struct ml_cfg_key r_keys[] = {
    {"listen", ML_CFG_STR, "127.0.0.1:1", 0, 64, 0, R(listen), NULL, NULL, "restart-only"},
    {"secret", ML_CFG_STR, "", 0, 64, ML_CFG_RELOAD | ML_CFG_CREDENTIAL, R(secret), NULL, NULL,
     "a credential"},
    {"secret-file", ML_CFG_STR, "", 0, 64, ML_CFG_RELOAD | ML_CFG_CREDENTIAL, R(secret_file), NULL,
     NULL, "the same credential from a file"},
    {"users", ML_CFG_STR, "", 0, 64, ML_CFG_RELOAD | ML_CFG_CREDENTIAL, R(users), NULL, NULL,
     "another credential"},
    {"level", ML_CFG_INT, "1", 0, 9, ML_CFG_RELOAD, R(level), NULL, NULL, "reloadable"},
    {NULL, 0, NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};
static const struct ml_cfg_section sec_r = {"r", r_keys, 0};
static const struct ml_cfg_section *const secs_r[] = {&sec_r, NULL};

static void r_load(struct whole_r *w, const char *const *sets)
{
    char err[256];
    memset(w, 0, sizeof *w);
    ck_assert_int_eq(ml_cfg_defaults(secs_r, w, err, sizeof err), 0);
    for (; *sets; sets++)
        ck_assert_int_eq(ml_cfg_set_arg(secs_r, w, *sets, err, sizeof err), 0);
}

static int r_check(const char *const *cur_sets, const char *const *next_sets, char *err,
                   size_t errlen)
{
    struct whole_r cur, next;
    r_load(&cur, cur_sets);
    r_load(&next, next_sets);
    err[0] = 0;
    int rc = ml_cfg_reload_check(secs_r, &cur, &next, err, errlen);
    ml_cfg_free(secs_r, &cur);
    ml_cfg_free(secs_r, &next);
    return rc;
}

START_TEST(cfg_reload_rules)
{
    char err[512];
    const char *const live[] = {"r.secret=s1", "r.users=u:p", NULL};
    const char *const same[] = {"r.secret=s1", "r.users=u:p", NULL};
    ck_assert_int_eq(r_check(live, same, err, sizeof err), 0);
    const char *const level[] = {"r.secret=s2", "r.users=u:p, v:q", "r.level=5", NULL};
    ck_assert_int_eq(r_check(live, level, err, sizeof err), 0); /* changed, not emptied */
    const char *const moved[] = {"r.secret=s1", "r.users=u:p", "r.listen=127.0.0.1:2", NULL};
    ck_assert_int_eq(r_check(live, moved, err, sizeof err), -1);
    ck_assert_str_eq(err, "restart-only keys changed: r.listen");
    const char *const empty[] = {NULL}; /* an empty file */
    ck_assert_int_eq(r_check(live, empty, err, sizeof err), -1);
    ck_assert_str_eq(err, "credential sources would become empty: r.secret, r.users");
    const char *const to_file[] = {"r.secret-file=/etc/s", "r.users=u:p", NULL};
    ck_assert_int_eq(r_check(live, to_file, err, sizeof err), 0); /* one source, two forms */
    const char *const both[] = {"r.listen=127.0.0.1:3", "r.secret=s1", NULL};
    ck_assert_int_eq(r_check(live, both, err, sizeof err), -1);
    ck_assert_str_eq(err, "restart-only keys changed: r.listen; credential sources would become "
                          "empty: r.users");
    ck_assert_int_eq(r_check(empty, live, err, sizeof err), 0); /* setting one is fine */
}
END_TEST

START_TEST(cfg_defaults)
{
    struct whole w;
    char err[256];
    memset(&w, 0, sizeof w);
    ck_assert_int_eq(ml_cfg_defaults(secs, &w, err, sizeof err), 0);
    ck_assert(!w.a.flag);
    ck_assert_int_eq(w.a.count, 5);
    ck_assert_int_eq(w.a.timeout_s, 120);
    ck_assert_int_eq(w.a.bufsize, 65536);
    ck_assert_str_eq(w.a.name, "meet");
    ck_assert_int_eq(w.a.mode, 1);
    ck_assert_ptr_null(w.a.cidrs);
    ml_cfg_free(secs, &w);
}
END_TEST

START_TEST(cfg_set_and_bounds)
{
    struct whole w;
    char err[256];
    memset(&w, 0, sizeof w);
    ck_assert_int_eq(ml_cfg_defaults(secs, &w, err, sizeof err), 0);
    ck_assert_int_eq(ml_cfg_set(secs, &w, "a", "flag", "on", err, sizeof err), 0);
    ck_assert(w.a.flag);
    ck_assert_int_eq(ml_cfg_set(secs, &w, "a", "flag", "maybe", err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "a.flag"));
    ck_assert_int_eq(ml_cfg_set(secs, &w, "a", "count", "10", err, sizeof err), 0);
    ck_assert_int_eq(ml_cfg_set(secs, &w, "a", "count", "11", err, sizeof err), -1);
    ck_assert_int_eq(ml_cfg_set(secs, &w, "a", "count", "0", err, sizeof err), -1);
    ck_assert_int_eq(ml_cfg_set(secs, &w, "a", "count", "3x", err, sizeof err), -1);
    ck_assert_int_eq(ml_cfg_set(secs, &w, "a", "count", "", err, sizeof err), -1);
    ck_assert_int_eq(w.a.count, 10);
    ck_assert_int_eq(ml_cfg_set(secs, &w, "a", "timeout", "1h", err, sizeof err), 0);
    ck_assert_int_eq(w.a.timeout_s, 3600);
    ck_assert_int_eq(ml_cfg_set(secs, &w, "a", "timeout", "45", err, sizeof err), 0);
    ck_assert_int_eq(w.a.timeout_s, 45);
    ck_assert_int_eq(ml_cfg_set(secs, &w, "a", "timeout", "2d", err, sizeof err), -1);
    ck_assert_int_eq(ml_cfg_set(secs, &w, "a", "timeout", "5 parsecs", err, sizeof err), -1);
    ck_assert_int_eq(ml_cfg_set(secs, &w, "a", "bufsize", "4M", err, sizeof err), 0);
    ck_assert_int_eq(w.a.bufsize, 4 << 20);
    ck_assert_int_eq(ml_cfg_set(secs, &w, "a", "bufsize", "99999999999999999G", err, sizeof err),
                     -1);
    ck_assert_int_eq(ml_cfg_set(secs, &w, "a", "name", "0123456789abcdef", err, sizeof err), 0);
    ck_assert_int_eq(ml_cfg_set(secs, &w, "a", "name", "0123456789abcdefg", err, sizeof err), -1);
    ck_assert_str_eq(w.a.name, "0123456789abcdef");
    ck_assert_int_eq(ml_cfg_set(secs, &w, "a", "mode", "FAST", err, sizeof err), 0);
    ck_assert_int_eq(w.a.mode, 0);
    ck_assert_int_eq(ml_cfg_set(secs, &w, "a", "mode", "medium", err, sizeof err), -1);
    ck_assert_int_eq(ml_cfg_set(secs, &w, "a", "cidrs", "10.0.0.0/8, ::1", err, sizeof err), 0);
    ck_assert_int_eq(ml_cfg_set(secs, &w, "a", "cidrs", "10.0.0.0/33", err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "a.cidrs"));
    ck_assert_int_eq(ml_cfg_set(secs, &w, "a", "nokey", "1", err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "unknown key a.nokey"));
    ck_assert_int_eq(ml_cfg_set(secs, &w, "b", "flag", "1", err, sizeof err), -1);
    ck_assert_int_eq(ml_cfg_set_arg(secs, &w, "a.count=2", err, sizeof err), 0);
    ck_assert_int_eq(w.a.count, 2);
    ck_assert_int_eq(ml_cfg_set_arg(secs, &w, "a.name=x=y", err, sizeof err), 0);
    ck_assert_str_eq(w.a.name, "x=y");
    ck_assert_int_eq(ml_cfg_set_arg(secs, &w, "acount=2", err, sizeof err), -1);
    ck_assert_int_eq(ml_cfg_set_arg(secs, &w, ".count=2", err, sizeof err), -1);
    ck_assert_int_eq(ml_cfg_set_arg(secs, &w, "a.=2", err, sizeof err), -1);
    ml_cfg_free(secs, &w);
}
END_TEST

START_TEST(cfg_file)
{
    char path[] = "/tmp/mlcfgXXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char *text = "; comment\n# also a comment\n[a]\ncount = 7 ; inline comment\n"
                       "cidrs = 10.0.0.0/8,\n  192.168.0.0/16\nname=first\nname=\n";
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct whole w;
    char err[256];
    memset(&w, 0, sizeof w);
    ck_assert_int_eq(ml_cfg_defaults(secs, &w, err, sizeof err), 0);
    ck_assert_int_eq(ml_cfg_load_file(secs, &w, path, err, sizeof err), 0);
    ck_assert_int_eq(w.a.count, 7);
    ck_assert_str_eq(w.a.cidrs, "10.0.0.0/8, 192.168.0.0/16");
    ck_assert_ptr_null(w.a.name);
    char buf[64];
    ml_cfg_format(&sec, &a_keys[6], &w, buf, sizeof buf);
    ck_assert_str_eq(buf, "(set)"); /* secrets never printed */

    struct whole w2;
    memset(&w2, 0, sizeof w2);
    ck_assert_int_eq(ml_cfg_defaults(secs, &w2, err, sizeof err), 0);
    ck_assert(ml_cfg_differs(&sec, &a_keys[1], &w, &w2));
    ck_assert(!ml_cfg_differs(&sec, &a_keys[0], &w, &w2));
    ck_assert(ml_cfg_differs(&sec, &a_keys[4], &w, &w2));
    ml_cfg_move(&sec, &a_keys[4], &w, &w2);
    ck_assert_str_eq(w.a.name, "meet");
    ck_assert_ptr_null(w2.a.name);
    ml_cfg_free(secs, &w);
    ml_cfg_free(secs, &w2);

    text = "[a]\ncount = 99\n";
    fd = open(path, O_WRONLY | O_TRUNC);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    memset(&w, 0, sizeof w);
    ck_assert_int_eq(ml_cfg_defaults(secs, &w, err, sizeof err), 0);
    ck_assert_int_eq(ml_cfg_load_file(secs, &w, path, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, ":2:"));
    ml_cfg_free(secs, &w);
    unlink(path);
    ck_assert_int_eq(ml_cfg_load_file(secs, &w, path, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "cannot open"));
}
END_TEST

START_TEST(addr_parse_format)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char buf[ML_ADDR_STRLEN];
    ck_assert_int_eq(ml_addr_parse("192.0.2.1:3478", 1, &ss, &len), 0);
    ck_assert_str_eq(ml_addr_str((struct sockaddr *)&ss, buf, sizeof buf), "192.0.2.1:3478");
    ck_assert_int_eq(ml_addr_parse("[2001:db8::1]:5349", 1, &ss, &len), 0);
    ck_assert_str_eq(ml_addr_str((struct sockaddr *)&ss, buf, sizeof buf), "[2001:db8::1]:5349");
    ck_assert_int_eq(ml_addr_parse("::1", 77, &ss, &len), 0);
    ck_assert_int_eq(ml_addr_port((struct sockaddr *)&ss), 77);
    ck_assert_int_eq(ml_addr_parse("10.1.2.3", 80, &ss, &len), 0);
    ck_assert_int_eq(ml_addr_port((struct sockaddr *)&ss), 80);
    ck_assert_int_eq(ml_addr_parse("10.1.2.3:65536", 80, &ss, &len), -1);
    ck_assert_int_eq(ml_addr_parse("10.1.2:5", 80, &ss, &len), -1);
    ck_assert_int_eq(ml_addr_parse("[::1", 80, &ss, &len), -1);
    ck_assert_int_eq(ml_addr_parse("[::1]x", 80, &ss, &len), -1);
    ck_assert_int_eq(ml_addr_parse("", 80, &ss, &len), -1);
    ck_assert_int_eq(ml_addr_parse("host.example:80", 80, &ss, &len), -1);
}
END_TEST

static void v6(const char *text, struct sockaddr_storage *ss)
{
    socklen_t len;
    ck_assert_int_eq(ml_addr_parse(text, 9, ss, &len), 0);
}

START_TEST(addr_embedded_v4)
{
    struct sockaddr_storage in, out;
    char buf[ML_ADDR_STRLEN];
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"[::ffff:127.0.0.1]:9", "127.0.0.1:9"},
        {"[::127.0.0.1]:9", "127.0.0.1:9"},
        {"[64:ff9b::10.0.0.1]:9", "10.0.0.1:9"},
        {"[2002:c0a8:0101::1]:9", "192.168.1.1:9"},
        {"[2001:0:4136:e378:8000:63bf:3fff:fdd2]:9", "192.0.2.45:9"},
    };
    for (size_t i = 0; i < ML_ARRAY_LEN(cases); i++) {
        v6(cases[i].in, &in);
        ck_assert(ml_addr_embedded_v4((struct sockaddr *)&in, &out, ML_CANON_ALL));
        ck_assert_str_eq(ml_addr_str((struct sockaddr *)&out, buf, sizeof buf), cases[i].out);
    }
    v6("[::1]:9", &in);
    ck_assert(!ml_addr_embedded_v4((struct sockaddr *)&in, &out, ML_CANON_ALL));
    v6("[::]:9", &in);
    ck_assert(!ml_addr_embedded_v4((struct sockaddr *)&in, &out, ML_CANON_ALL));
    v6("[2001:db8::1]:9", &in);
    ck_assert(!ml_addr_embedded_v4((struct sockaddr *)&in, &out, ML_CANON_ALL));
    v6("[2002:c0a8:0101::1]:9", &in);
    ck_assert(!ml_addr_embedded_v4((struct sockaddr *)&in, &out, ML_CANON_MAPPED));
    /* in place */
    v6("[::ffff:10.9.8.7]:1", &in);
    ck_assert(ml_addr_embedded_v4((struct sockaddr *)&in, &in, ML_CANON_MAPPED));
    ck_assert_str_eq(ml_addr_str((struct sockaddr *)&in, buf, sizeof buf), "10.9.8.7:1");
}
END_TEST

START_TEST(cidr_sets)
{
    struct ml_cidr c;
    char err[128];
    struct sockaddr_storage ss;
    socklen_t len;
    ck_assert_int_eq(ml_cidr_parse("10.1.2.3/8", &c, err, sizeof err), 0);
    ck_assert_int_eq(c.prefix, 8);
    ck_assert_int_eq(c.addr[1], 0); /* host bits cleared */
    ck_assert_int_eq(ml_cidr_parse("10.0.0.0/33", &c, err, sizeof err), -1);
    ck_assert_int_eq(ml_cidr_parse("fe80::/129", &c, err, sizeof err), -1);
    ck_assert_int_eq(ml_cidr_parse("nonsense", &c, err, sizeof err), -1);
    ck_assert_int_eq(ml_cidr_parse("1.2.3.4/x", &c, err, sizeof err), -1);

    struct ml_cidr_set set = {0};
    ck_assert_int_eq(ml_cidr_set_add_list(&set, "10.0.0.0/8 172.16.0.0/12,fe80::/10, 192.0.2.7",
                                          err, sizeof err),
                     0);
    ck_assert_int_eq(set.n, 4);
    ck_assert_int_eq(ml_cidr_set_add_list(&set, "1.1.1.1/8, bad", err, sizeof err), -1);
    ck_assert_int_eq(set.n, 4); /* unchanged on error */
    static const struct {
        const char *addr;
        const char *match;
    } cases[] = {
        {"10.255.1.1", "10.0.0.0/8"},        {"11.0.0.1", NULL},
        {"172.31.255.255", "172.16.0.0/12"}, {"172.32.0.0", NULL},
        {"[fe80::1]:1", "fe80::/10"},        {"[fec0::1]:1", NULL},
        {"192.0.2.7", "192.0.2.7"},          {"192.0.2.8", NULL},
    };
    for (size_t i = 0; i < ML_ARRAY_LEN(cases); i++) {
        ck_assert_int_eq(ml_addr_parse(cases[i].addr, 1, &ss, &len), 0);
        const struct ml_cidr *m = ml_cidr_set_match(&set, (struct sockaddr *)&ss);
        if (cases[i].match) {
            ck_assert_ptr_nonnull(m);
            ck_assert_str_eq(m->label, cases[i].match);
        } else {
            ck_assert_ptr_null(m);
        }
    }
    ck_assert_int_eq(ml_cidr_parse("0.0.0.0/0", &c, err, sizeof err), 0);
    ck_assert_int_eq(ml_addr_parse("203.0.113.9", 1, &ss, &len), 0);
    ck_assert(ml_cidr_contains(&c, (struct sockaddr *)&ss));
    ml_cidr_set_free(&set);
}
END_TEST

START_TEST(base64_hex)
{
    char enc[64];
    uint8_t dec[64];
    ck_assert_int_eq(ml_base64_encode((const uint8_t *)"hello", 5, enc, sizeof enc), 8);
    ck_assert_str_eq(enc, "aGVsbG8=");
    ck_assert_int_eq(ml_base64_decode("aGVsbG8=", 8, dec, sizeof dec), 5);
    ck_assert_int_eq(memcmp(dec, "hello", 5), 0);
    ck_assert_int_eq(ml_base64_decode("aGVsbG8", 7, dec, sizeof dec), 5);
    ck_assert_int_eq(ml_base64_decode("aGVsbA==", 8, dec, sizeof dec), 4);
    ck_assert_int_eq(ml_base64_decode("aGVsbA", 6, dec, sizeof dec), 4);
    ck_assert_int_eq(ml_base64_decode("a", 1, dec, sizeof dec), -1);
    ck_assert_int_eq(ml_base64_decode("!!!!", 4, dec, sizeof dec), -1);
    ck_assert_int_eq(ml_base64_decode("aGVsbG8=", 8, dec, 3), -1);
    ck_assert_int_eq(ml_base64_encode((const uint8_t *)"hello", 5, enc, 8), 0);
    /* base64url: no padding, '-' and '_' for '+' and '/' (0xfb 0xff: "+/8=" in base64) */
    ck_assert_int_eq(ml_base64url_encode((const uint8_t *)"\xfb\xff", 2, enc, sizeof enc), 3);
    ck_assert_str_eq(enc, "-_8");
    ck_assert_int_eq(ml_base64url_encode((const uint8_t *)"hello", 5, enc, sizeof enc), 7);
    ck_assert_str_eq(enc, "aGVsbG8");
    ck_assert_int_eq(ml_base64url_encode((const uint8_t *)"hello", 5, enc, 8), 0);
    char hex[9];
    ml_hex_encode((const uint8_t *)"\x01\xab\xff\x00", 4, hex);
    ck_assert_str_eq(hex, "01abff00");
}
END_TEST

/* ml_hmac against RFC 4231 test case 2 (HMAC-SHA256) and RFC 2202 test case 2 (HMAC-SHA1):
 * a template run twice gives the same MAC (it is duplicated, never consumed), ml_hmac_once the
 * same, and a buffer too small gives 0. */
START_TEST(hmac_vectors)
{
    static const char data[] = "what do ya want for nothing?";
    uint8_t mac[64];
    char hex[129];
    struct ml_hmac *h = ml_hmac_new("SHA256", "Jefe", 4);
    ck_assert_ptr_nonnull(h);
    for (int i = 0; i < 2; i++) {
        ck_assert_uint_eq(ml_hmac_run(h, data, sizeof data - 1, mac, sizeof mac), 32);
        ml_hex_encode(mac, 32, hex);
        ck_assert_str_eq(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
    ck_assert_uint_eq(ml_hmac_run(h, data, sizeof data - 1, mac, 16), 0);
    ml_hmac_free(h);
    ml_hmac_free(NULL);
    ck_assert_uint_eq(
        ml_hmac_once("SHA1", "Jefe", 4, data, sizeof data - 1, NULL, 0, mac, sizeof mac), 20);
    ml_hex_encode(mac, 20, hex);
    ck_assert_str_eq(hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    /* in two pieces, as STUN's header copy and body go */
    ck_assert_uint_eq(
        ml_hmac_once("SHA256", "Jefe", 4, data, 10, data + 10, sizeof data - 11, mac, sizeof mac),
        32);
    ml_hex_encode(mac, 32, hex);
    ck_assert_str_eq(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    ck_assert_ptr_null(ml_hmac_new("NO-SUCH-DIGEST", "k", 1));
}
END_TEST

/* ml_brlock: readers on four threads never see a pair the writer is changing (it moves both
 * halves under the write side), and each thread reads through one slot, its own. */
struct brlock_pair {
    struct ml_brlock l;
    long a, b;
    int stop;        /* atomic */
    long reads, bad; /* atomic */
};

static void *brlock_reader(void *arg)
{
    struct brlock_pair *p = arg;
    unsigned first = ML_BRLOCK_SLOTS;
    while (!__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
        unsigned slot = ml_brlock_rdlock(&p->l);
        if (first == ML_BRLOCK_SLOTS)
            first = slot;
        if (p->a != p->b || slot != first)
            __atomic_add_fetch(&p->bad, 1, __ATOMIC_RELAXED);
        ml_brlock_rdunlock(&p->l);
        __atomic_add_fetch(&p->reads, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

START_TEST(brlock_readers_writer)
{
    static struct brlock_pair p;
    memset(&p, 0, sizeof p);
    ck_assert_int_eq(ml_brlock_init(&p.l), 0);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, brlock_reader, &p), 0);
    for (int i = 0; i < 20000; i++) {
        ml_brlock_wrlock(&p.l);
        p.a++;
        if (i % 64 == 0)
            sched_yield(); /* readers wait on their slots meanwhile */
        p.b++;
        ml_brlock_wrunlock(&p.l);
    }
    __atomic_store_n(&p.stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_eq(p.a, 20000);
    ck_assert_int_eq(p.b, 20000);
    ck_assert_int_gt(p.reads, 0);
    ck_assert_int_eq(p.bad, 0);
    /* the writer's thread reads through a slot too; the lock is not recursive for writers */
    unsigned s = ml_brlock_rdlock(&p.l);
    ck_assert_uint_lt(s, ML_BRLOCK_SLOTS);
    ml_brlock_rdunlock(&p.l);
    ml_brlock_destroy(&p.l);
}
END_TEST

static int count_item(const char *item, void *arg)
{
    int *n = arg;
    if (!strcmp(item, "stop"))
        return -1;
    (*n)++;
    return 0;
}

START_TEST(lists_and_numbers)
{
    int n = 0;
    ck_assert_int_eq(ml_list_foreach(" a, b ,,c  d,", count_item, &n), 0);
    ck_assert_int_eq(n, 4);
    n = 0;
    ck_assert_int_eq(ml_list_foreach("a,stop,b", count_item, &n), -1);
    ck_assert_int_eq(n, 1);
    long long v;
    ck_assert_int_eq(ml_parse_ll("42", 0, 100, &v), 0);
    ck_assert_int_eq(v, 42);
    ck_assert_int_eq(ml_parse_ll("101", 0, 100, &v), -1);
    ck_assert_int_eq(ml_parse_ll("4 2", 0, 100, &v), -1);
    ck_assert_int_eq(ml_parse_ll("99999999999999999999999", 0, LLONG_MAX, &v), -1);
    char small[4];
    ck_assert_int_eq(ml_strlcpy(small, "abcdef", sizeof small), 6);
    ck_assert_str_eq(small, "abc");
    char t[] = "  x y \n";
    ck_assert_str_eq(ml_trim(t), "x y");
}
END_TEST

/* The small kit every subsystem shares: bounded buffers, UUIDs, UTF-8, lists without copies,
 * the wall clock in milliseconds, IPv4 addresses from bytes. */
START_TEST(kit_buffers)
{
    struct ml_buf b = ML_BUF_INIT(10);
    ck_assert_int_eq(ml_buf_str(&b, "hello"), 0);
    ck_assert_int_eq(ml_buf_printf(&b, "%d%s", 42, "!"), 0);
    ck_assert_str_eq(b.p, "hello42!");
    ck_assert_uint_eq(b.len, 8);
    ck_assert_int_eq(ml_buf_str(&b, "abc"), -1); /* past max: refused, unchanged */
    ck_assert_int_eq(ml_buf_printf(&b, "%s", "abc"), -1);
    ck_assert_str_eq(b.p, "hello42!");
    ck_assert_int_eq(ml_buf_add(&b, "ab", 2), 0); /* exactly max */
    ck_assert_uint_eq(b.len, 10);
    ml_buf_reset(&b);
    ck_assert_str_eq(b.p, "");
    ck_assert_int_eq(ml_buf_add(&b, "x\0y", 3), 0); /* bytes, NUL included */
    ck_assert_uint_eq(b.len, 3);
    char *p = ml_buf_take(&b);
    ck_assert_ptr_null(b.p);
    ck_assert_int_eq(memcmp(p, "x\0y", 4), 0);
    free(p);
    struct ml_buf big = ML_BUF_INIT(SIZE_MAX);
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(ml_buf_str(&big, "0123456789"), 0);
    ck_assert_uint_eq(big.len, 10000);
    ck_assert_uint_eq(strlen(big.p), 10000);
    ml_buf_free(&big);
    ml_buf_free(&big);
}
END_TEST

/* The join's JSON string writer (common/json.c; tests/fuzz/fuzz_jsonw.c compares it with
 * jansson): escapes as jansson's compact dump, UTF-8 as it is, refuses what is not UTF-8 and
 * what does not fit, leaving the buffer as it was. */
START_TEST(kit_json_str)
{
    static const struct {
        const char *in, *out;
    } c[] = {
        {"", "\"\""},
        {"plain", "\"plain\""},
        {"q\"b\\s/", "\"q\\\"b\\\\s/\""},
        {"\n\t\r\b\f\x01\x1f\x7f", "\"\\n\\t\\r\\b\\f\\u0001\\u001F\x7f\""},
        {"Zo\xc3\xab \xe5\xb1\xb1 \xf0\x9f\x8e\x89",
         "\"Zo\xc3\xab \xe5\xb1\xb1 \xf0\x9f\x8e\x89\""},
    };
    for (size_t i = 0; i < ML_ARRAY_LEN(c); i++) {
        struct ml_buf b = ML_BUF_INIT(1024);
        ck_assert_int_eq(ml_buf_str(&b, ":"), 0);
        ck_assert_int_eq(ml_buf_json_str(&b, c[i].in), 0);
        ck_assert_str_eq(b.p + 1, c[i].out);
        ml_buf_free(&b);
    }
    static const char *const bad[] = {"a\xc0\xaf",  "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                      "ab\xe2\x82", "\x80",         "\xff"};
    for (size_t i = 0; i < ML_ARRAY_LEN(bad); i++) {
        struct ml_buf b = ML_BUF_INIT(1024);
        ck_assert_int_eq(ml_buf_str(&b, "x"), 0);
        ck_assert_int_eq(ml_buf_json_str(&b, bad[i]), -1);
        ck_assert_str_eq(b.p, "x");
        ml_buf_free(&b);
    }
    struct ml_buf b = ML_BUF_INIT(7); /* "a\\nb" with its quotes is 6; "" makes 8 */
    ck_assert_int_eq(ml_buf_json_str(&b, "a\nb"), 0);
    ck_assert_str_eq(b.p, "\"a\\nb\"");
    ck_assert_int_eq(ml_buf_json_str(&b, ""), -1);
    ck_assert_str_eq(b.p, "\"a\\nb\"");
    ml_buf_free(&b);
}
END_TEST

START_TEST(kit_uuid_utf8_lists)
{
    uint8_t u[16];
    char s[ML_UUID_STR];
    ck_assert(ml_uuid_parse("0F6A5C3E-9B7D-4C5E-9A6F-B3BC9B8A7F6E", u));
    ml_uuid_format(u, s);
    ck_assert_str_eq(s, "0f6a5c3e-9b7d-4c5e-9a6f-b3bc9b8a7f6e");
    ck_assert(ml_uuid_norm("0F6A5C3E-9B7D-4C5E-9A6F-B3BC9B8A7F6E", s));
    ck_assert_str_eq(s, "0f6a5c3e-9b7d-4c5e-9a6f-b3bc9b8a7f6e");
    ck_assert(!ml_uuid_norm("0f6a5c3e-9b7d-4c5e-9a6f-b3bc9b8a7f6", s));
    ck_assert_str_eq(s, "");
    ck_assert(!ml_uuid_valid(NULL));
    ck_assert(!ml_uuid_valid("0f6a5c3e_9b7d-4c5e-9a6f-b3bc9b8a7f6e"));
    ck_assert(!ml_uuid_valid("0f6a5c3e-9b7d-4c5e-9a6f-b3bc9b8a7f6g"));
    ck_assert(!ml_uuid_valid("0f6a5c3e-9b7d-4c5e-9a6f-b3bc9b8a7f6e0"));
    ml_uuid_random(u);
    ck_assert_int_eq(u[6] >> 4, 4);
    ck_assert_int_eq(u[8] >> 6, 2);
    ml_uuid_format(u, s);
    ck_assert(ml_uuid_valid(s));

    size_t chars = 0;
    ck_assert(ml_utf8_valid("h\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10, &chars));
    ck_assert_uint_eq(chars, 4);
    ck_assert(!ml_utf8_valid("\xc0\xaf", 2, NULL));     /* overlong */
    ck_assert(!ml_utf8_valid("\xed\xa0\x80", 3, NULL)); /* a surrogate */
    ck_assert(!ml_utf8_valid("a\0b", 3, NULL));         /* NUL */
    ck_assert(!ml_utf8_valid("\xe2\x82", 2, NULL));     /* cut short */

    const char *list = " a, bb ,,ccc ", *cur = list, *item;
    size_t n;
    const char *want[] = {"a", "bb", "ccc"};
    int k = 0;
    while ((item = ml_list_next(&cur, &n))) {
        ck_assert_int_lt(k, 3);
        ck_assert_uint_eq(n, strlen(want[k]));
        ck_assert_int_eq(memcmp(item, want[k], n), 0);
        k++;
    }
    ck_assert_int_eq(k, 3);
    cur = NULL;
    ck_assert_ptr_null(ml_list_next(&cur, &n));
    char first[4];
    ck_assert_uint_eq(ml_list_first(" ,one,two", first, sizeof first), 3);
    ck_assert_str_eq(first, "one");
    ck_assert_uint_eq(ml_list_first("four,x", first, sizeof first), 0);
    ck_assert_str_eq(first, "");
    ck_assert_uint_eq(ml_list_first(" , ", first, sizeof first), 0);
}
END_TEST

START_TEST(kit_name)
{
    char err[128];
    ck_assert(ml_name_valid("node-1.eu_west"));
    ck_assert(!ml_name_valid(""));
    ck_assert(!ml_name_valid(NULL));
    ck_assert(!ml_name_valid("has space"));
    ck_assert(!ml_name_valid("a/b"));
    ck_assert(!ml_name_valid("\xc3\xa9"));
    ck_assert_int_eq(ml_cfg_validate_name("", err, sizeof err), 0); /* empty: the default */
    ck_assert_int_eq(ml_cfg_validate_name("r1", err, sizeof err), 0);
    ck_assert_int_eq(ml_cfg_validate_name("r 1", err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "letters, digits"));
}
END_TEST

START_TEST(kit_slug)
{
    ck_assert(ml_slug_valid("a", 80));
    ck_assert(ml_slug_valid("join-a-meeting-2", 80));
    ck_assert(ml_slug_valid("abc", 3));
    ck_assert(!ml_slug_valid("abcd", 3)); /* longer than max */
    ck_assert(!ml_slug_valid("", 80));
    ck_assert(!ml_slug_valid("-a", 80));
    ck_assert(!ml_slug_valid("a-", 80));
    ck_assert(!ml_slug_valid("a--b", 80));
    ck_assert(!ml_slug_valid("A", 80));
    ck_assert(!ml_slug_valid("a_b", 80));
    ck_assert(!ml_slug_valid("a/b", 80));
    ck_assert(!ml_slug_valid("\xc3\xa9", 80));
}
END_TEST

START_TEST(kit_clock_and_v4)
{
    int64_t ms = ml_wall_ms(), s = ml_wall_s();
    ck_assert(ms / 1000 >= s - 1 && ms / 1000 <= s + 1); /* the same clock, not the monotonic one */
    struct sockaddr_storage ss;
    memset(&ss, 0xaa, sizeof ss);
    static const uint8_t ip[4] = {192, 0, 2, 7};
    ck_assert_uint_eq(ml_addr_set_v4(&ss, ip, 3478), sizeof(struct sockaddr_in));
    char buf[ML_ADDR_STRLEN];
    ck_assert_str_eq(ml_addr_str((struct sockaddr *)&ss, buf, sizeof buf), "192.0.2.7:3478");
    const uint8_t *tail = (const uint8_t *)&ss + sizeof(struct sockaddr_in);
    for (size_t i = 0; i < sizeof ss - sizeof(struct sockaddr_in); i++)
        ck_assert_uint_eq(tail[i], 0);
    int x = 1;
    ck_assert_ptr_eq(ml_nonnull(&x), &x);
    uint64_t c = 5;
    ML_COUNT(c, 2);
    ck_assert_uint_eq(c, 7);
}
END_TEST

static Suite *common_suite(void)
{
    Suite *s = suite_create("common");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, cfg_defaults);
    tcase_add_test(tc, cfg_set_and_bounds);
    tcase_add_test(tc, cfg_file);
    tcase_add_test(tc, cfg_reload_rules);
    suite_add_tcase(s, tc);
    tc = tcase_create("addresses");
    tcase_add_test(tc, addr_parse_format);
    tcase_add_test(tc, addr_embedded_v4);
    tcase_add_test(tc, cidr_sets);
    suite_add_tcase(s, tc);
    tc = tcase_create("helpers");
    tcase_add_test(tc, base64_hex);
    tcase_add_test(tc, hmac_vectors);
    tcase_add_test(tc, brlock_readers_writer);
    tcase_add_test(tc, lists_and_numbers);
    tcase_add_test(tc, kit_buffers);
    tcase_add_test(tc, kit_json_str);
    tcase_add_test(tc, kit_uuid_utf8_lists);
    tcase_add_test(tc, kit_slug);
    tcase_add_test(tc, kit_name);
    tcase_add_test(tc, kit_clock_and_v4);
    suite_add_tcase(s, tc);
    return s;
}

ML_CHECK_MAIN(common_suite)
