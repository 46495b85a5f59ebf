/* Unit tests of src/stats (the process figures, the JSON of /stats, the Prometheus text of
 * /metrics), of the runtime-managed credentials in src/turn/auth.c that the admin API feeds,
 * and of the admin configuration's validators. */
#include "config.h"

#include "admin/adm.h"
#include "stats/st.h"
#include "turn/turn-int.h"

#include <stdlib.h>
#include <string.h>

#include "mlcheck.h"

/* ------------------------------------------------------------------ the process */

START_TEST(process_figures)
{
    struct st_process p;
    memset(&p, 0, sizeof p);
    ck_assert_int_eq(st_process_read(&p), 0);
    ck_assert_uint_ge(p.threads, 1);
    ck_assert_uint_gt(p.rss_bytes, 0);
    ck_assert_uint_ge(p.vm_bytes, p.rss_bytes);
    ck_assert_uint_ge(p.open_fds, 3); /* stdin, stdout, stderr at least */
    ck_assert_uint_ge(p.max_fds, p.open_fds);
    int64_t now = ml_wall_s();
    ck_assert_int_le(p.start_s, now);
    ck_assert_int_gt(p.start_s, now - 3600); /* this test started a moment ago */
    ck_assert_int_ge(p.uptime_s, 0);
}
END_TEST

/* ------------------------------------------------------------------ rendering */

static struct st_meeting top[2];

static void sample(struct st_snapshot *s)
{
    memset(s, 0, sizeof *s);
    ml_strlcpy(s->proc.version, "1.2.3", sizeof s->proc.version);
    s->proc.start_s = 1700000000;
    s->proc.threads = 7;
    s->proc.rss_bytes = 1 << 20;
    s->turn.allocations = 5;
    s->turn.alloc_by_transport[0] = 3;
    s->turn.alloc_by_transport[1] = 1;
    s->turn.alloc_by_transport[2] = 1;
    s->turn.alloc_ipv4 = 5;
    s->turn.relay_rx_packets = 100;
    s->turn.relay_rx_bytes = 10000;
    s->turn.relay_tx_packets = 90;
    s->turn.relay_tx_bytes = 9000;
    s->turn.error_responses[1] = 12; /* 401 */
    s->turn.error_responses[7] = 4;  /* other: 441 x1, 508 x2, one more */
    s->turn.errors_441 = 1;
    s->turn.errors_508 = 2;
    s->turn.binding_requests = 42;
    s->turn.unauth_dropped = 6;
    s->turn.unauth_dropped_bytes = 576;
    s->turn.unauth_charged_bytes = 960;
    s->turn.unauth_proven = 3;
    s->net.udp_rx_batches = 10;
    s->net.udp_rx_batch_hist[0] = 6;
    s->net.udp_rx_batch_hist[2] = 4;
    s->net.udp_rx_packets = 26;
    s->have_cp = true;
    s->http_api[200 - ST_HTTP_MIN] = 8;
    s->http_api[404 - ST_HTTP_MIN] = 1;
    s->http_admin[401 - ST_HTTP_MIN] = 2;
    s->ws_connections = 3;
    s->have_db_counts = true;
    s->meetings_active = 2;
    s->participants_present = 9;
    s->pools[0].name = "api";
    s->pools[0].st.size = 4;
    s->pools[0].st.up = 4;
    s->pools[0].st.jobs = 10;
    s->pools[0].st.failed = 1;
    s->pools[0].st.ran = 10;
    s->pools[0].st.run_us = 25000;
    s->pools[0].st.run_hist[2] = 7;
    s->pools[0].st.run_hist[DB_LATENCY_BUCKETS] = 3;
    s->npools = 1;
    s->have_top = true;
    s->top_limit = 20;
    s->top_groups = 2;
    ml_strlcpy(top[0].tag, "0123456789abcdef", sizeof top[0].tag);
    top[0].allocations = 4;
    ml_strlcpy(top[0].title, "Standup", sizeof top[0].title);
    ml_strlcpy(top[1].tag, "fedcba9876543210", sizeof top[1].tag);
    top[1].allocations = 1;
    s->top = top;
    s->ntop = 2;
}

START_TEST(json_document)
{
    struct st_snapshot s;
    sample(&s);
    json_t *j = st_json(&s);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "process"), "version")),
                     "1.2.3");
    json_t *t = json_object_get(j, "turn");
    json_t *a = json_object_get(t, "allocations");
    ck_assert_int_eq(json_integer_value(json_object_get(a, "total")), 5);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(a, "by_transport"), "udp")),
                     3);
    json_t *e = json_object_get(t, "error_responses");
    ck_assert_int_eq(json_integer_value(json_object_get(e, "401")), 12);
    ck_assert_int_eq(json_integer_value(json_object_get(e, "508")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(e, "other")), 1); /* 4 - 441 - 2x508 */
    json_t *rel = json_object_get(t, "relayed");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(rel, "to_peers"), "bytes")),
                     10000);
    json_t *c = json_object_get(j, "control");
    ck_assert(json_is_true(json_object_get(c, "enabled")));
    ck_assert_int_eq(json_integer_value(json_object_get(c, "participants_present")), 9);
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(c, "http_responses"), "404")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(c, "database"), "size")),
                     4);
    json_t *m = json_object_get(j, "allocations_per_meeting");
    json_t *first = json_array_get(json_object_get(m, "top"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(first, "tag")), "0123456789abcdef");
    ck_assert_str_eq(json_string_value(json_object_get(first, "title")), "Standup");
    ck_assert(json_is_null(json_object_get(first, "meeting_id")));
    json_decref(j);

    /* a TURN-only node: no control-plane figures */
    s.have_cp = false;
    s.have_top = false;
    j = st_json(&s);
    c = json_object_get(j, "control");
    ck_assert(json_is_false(json_object_get(c, "enabled")));
    ck_assert_ptr_null(json_object_get(c, "meetings_active"));
    ck_assert_ptr_null(json_object_get(j, "allocations_per_meeting"));
    json_decref(j);
}
END_TEST

/* The value of the sample line that starts with prefix ("name{labels} "), or -1. */
static long long value_of(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, prefix, n) && p[n] == ' ')
            return strtoll(p + n + 1, NULL, 10);
    return -1;
}

START_TEST(prometheus_text)
{
    struct st_snapshot s;
    size_t len;
    sample(&s);
    char *text = st_prometheus(&s, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(strlen(text), len);
    ck_assert_int_eq(value_of(text, "turn_total_allocations{type=\"udp\"}"), 3);
    ck_assert_int_eq(value_of(text, "turn_total_allocations{type=\"tls\"}"), 1);
    ck_assert_int_eq(value_of(text, "turn_total_traffic_rcvp"), 100);
    ck_assert_int_eq(value_of(text, "turn_total_traffic_sentb"), 9000);
    ck_assert_int_eq(value_of(text, "turn_total_traffic_peer_rcvp"), 90);
    ck_assert_int_eq(value_of(text, "turn_total_traffic_peer_sentb"), 10000);
    ck_assert_int_eq(value_of(text, "stun_binding_request"), 42);
    ck_assert_int_eq(value_of(text, "turn_udp_recvmmsg_calls"), 10);
    ck_assert_int_eq(value_of(text, "turn_unauthenticated_401_responses"), 12);
    ck_assert_int_eq(value_of(text, "turn_unauthenticated_401_dropped_responses"), 6);
    ck_assert_int_eq(
        value_of(text, "meetlite_turn_unauthenticated_answer_bytes_total{outcome=\"charged\"}"),
        960);
    ck_assert_int_eq(
        value_of(text, "meetlite_turn_unauthenticated_answer_bytes_total{outcome=\"dropped\"}"),
        576);
    ck_assert_int_eq(value_of(text, "meetlite_turn_unauthenticated_proven_total"), 3);
    ck_assert_int_eq(value_of(text, "meetlite_stun_error_responses_total{code=\"508\"}"), 2);
    ck_assert_int_eq(value_of(text, "meetlite_stun_error_responses_total{code=\"other\"}"), 1);
    /* histograms are cumulative and end with +Inf = count */
    ck_assert_int_eq(value_of(text, "meetlite_udp_recvmmsg_batch_size_bucket{le=\"1\"}"), 6);
    ck_assert_int_eq(value_of(text, "meetlite_udp_recvmmsg_batch_size_bucket{le=\"7\"}"), 10);
    ck_assert_int_eq(value_of(text, "meetlite_udp_recvmmsg_batch_size_bucket{le=\"+Inf\"}"), 10);
    ck_assert_int_eq(value_of(text, "meetlite_udp_recvmmsg_batch_size_count"), 10);
    ck_assert_int_eq(
        value_of(text, "meetlite_db_job_duration_seconds_bucket{pool=\"api\",le=\"+Inf\"}"), 10);
    ck_assert_int_eq(
        value_of(text, "meetlite_db_job_duration_seconds_bucket{pool=\"api\",le=\"0.005\"}"), 7);
    ck_assert_int_eq(value_of(text, "meetlite_http_responses_total{listener=\"api\",code=\"200\"}"),
                     8);
    ck_assert_int_eq(
        value_of(text, "meetlite_http_responses_total{listener=\"admin\",code=\"401\"}"), 2);
    ck_assert_int_eq(value_of(text, "meetlite_participants_present"), 9);
    ck_assert_int_eq(value_of(text, "meetlite_build_info{version=\"1.2.3\"}"), 1);
    /* per-meeting figures stay out of /metrics: no label set grows with use */
    ck_assert_ptr_null(strstr(text, "0123456789abcdef"));
    ck_assert_ptr_null(strstr(text, "Standup"));
    /* every sample's family was declared before it, once */
    char *copy = strdup(text);
    unsigned helps = 0;
    for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "# HELP ", 7)) {
            char name[128];
            ml_strlcpy(name, line + 7, sizeof name);
            *strchr(name, ' ') = 0;
            char needle[160];
            ml_snprintf(needle, sizeof needle, "# HELP %s ", name);
            ck_assert_ptr_nonnull(strstr(text, needle));
            ck_assert_ptr_null(strstr(strstr(text, needle) + 1, needle)); /* once */
            helps++;
        }
    }
    free(copy);
    ck_assert_uint_gt(helps, 40);
    free(text);

    /* a TURN-only node has neither the API's figures nor its meetings */
    s.have_cp = false;
    text = st_prometheus(&s, &len);
    ck_assert_ptr_null(strstr(text, "listener=\"api\""));
    ck_assert_ptr_null(strstr(text, "meetlite_meetings_active"));
    ck_assert_int_eq(value_of(text, "meetlite_control_plane_enabled"), 0);
    free(text);
}
END_TEST

/* Both renderings come from one table: every family of /metrics is declared once, with help
 * and a type, and its samples follow it without another family in between; a section the
 * snapshot lacks (database counts, the credential sync, the database link, pools) leaves its
 * families out, where /stats has null or nothing. */
START_TEST(families_whole)
{
    struct st_snapshot s;
    size_t len;
    sample(&s);
    s.sync.present = true;
    s.sync.loads = 3;
    s.link.present = true;
    s.link.usage_written = 11;
    s.pools[1].name = "admin";
    s.pools[1].st.size = 2;
    s.npools = 2;
    char *text = st_prometheus(&s, &len);
    ck_assert_ptr_nonnull(text);
    char family[128] = "", *copy = strdup(text);
    unsigned families = 0, samples = 0;
    for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "# HELP ", 7)) {
            ml_strlcpy(family, line + 7, sizeof family);
            *strchr(family, ' ') = 0;
            const char *help = line + 7 + strlen(family) + 1;
            ck_assert_msg(strlen(help) > 10 && !strstr(help, "(null)"), "help of %s", family);
            families++;
            continue;
        }
        if (!strncmp(line, "# TYPE ", 7)) {
            const char *type = line + 7 + strlen(family) + 1;
            ck_assert_msg(!strncmp(line + 7, family, strlen(family)), "TYPE after HELP: %s", line);
            ck_assert_msg(!strcmp(type, "gauge") || !strcmp(type, "counter") ||
                              !strcmp(type, "untyped") || !strcmp(type, "histogram"),
                          "type of %s: %s", family, type);
            continue;
        }
        /* a sample: its name is the family's, or a histogram's part of it */
        size_t n = strcspn(line, "{ ");
        char name[128];
        ml_strlcpy(name, line, n + 1 < sizeof name ? n + 1 : sizeof name);
        bool ok = !strcmp(name, family);
        static const char *const parts[] = {"_bucket", "_sum", "_count"};
        for (size_t i = 0; i < 3 && !ok; i++)
            ok = strlen(name) == strlen(family) + strlen(parts[i]) &&
                 !strncmp(name, family, strlen(family)) && !strcmp(name + strlen(family), parts[i]);
        ck_assert_msg(ok, "sample %s outside its family %s", line, family);
        samples++;
    }
    free(copy);
    ck_assert_uint_gt(families, 60);
    ck_assert_uint_gt(samples, 130);
    ck_assert_int_eq(value_of(text, "meetlite_turn_credentials_loads_total"), 3);
    ck_assert_int_eq(value_of(text, "meetlite_usage_records_total{outcome=\"written\"}"), 11);
    ck_assert_int_eq(value_of(text, "meetlite_db_pool_connections{pool=\"admin\"}"), 2);
    ck_assert_int_eq(value_of(text, "meetlite_db_jobs_total{pool=\"api\",outcome=\"ok\"}"), 9);
    free(text);

    /* counts the database did not give: null in /stats, no family in /metrics */
    s.have_db_counts = false;
    s.sync.present = false;
    s.link.present = false;
    s.npools = 0;
    text = st_prometheus(&s, &len);
    ck_assert_ptr_null(strstr(text, "meetlite_meetings_active"));
    ck_assert_ptr_null(strstr(text, "meetlite_turn_credentials_sync_up"));
    ck_assert_ptr_null(strstr(text, "meetlite_db_listen_up"));
    ck_assert_ptr_null(strstr(text, "meetlite_db_pool_connections"));
    ck_assert_int_eq(value_of(text, "meetlite_websocket_connections"), 3);
    free(text);
    json_t *j = st_json(&s);
    json_t *c = json_object_get(j, "control");
    ck_assert(json_is_null(json_object_get(c, "meetings_active")));
    ck_assert(json_is_null(json_object_get(c, "database")));
    ck_assert(json_is_null(json_object_get(json_object_get(j, "admin"), "database")));
    ck_assert_ptr_null(json_object_get(json_object_get(j, "turn"), "database_link"));
    json_decref(j);
}
END_TEST

START_TEST(label_escaping)
{
    struct st_snapshot s;
    size_t len;
    sample(&s);
    ml_strlcpy(s.proc.version, "1\"2\\3", sizeof s.proc.version);
    char *text = st_prometheus(&s, &len);
    ck_assert_ptr_nonnull(strstr(text, "meetlite_build_info{version=\"1\\\"2\\\\3\"} 1\n"));
    free(text);
}
END_TEST

/* ------------------------------------------------------------------ runtime credentials */

#define REALM "example.org"

static struct turn_auth *auth_new(const char *secrets, const char *users)
{
    char err[256] = "";
    struct turn_config c;
    memset(&c, 0, sizeof c);
    c.realm = (char *)REALM;
    c.auth_secret = (char *)secrets;
    c.static_users = (char *)users;
    c.nonce_lifetime_s = 600;
    struct turn_auth *a = turn_auth_new(&c, err, sizeof err);
    ck_assert_msg(a != NULL, "turn_auth_new: %s", err);
    return a;
}

static const uint8_t tid[STUN_TID_LEN] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2};

/* An Allocate by user with password (MD5 key), checked by a. */
static enum turn_auth_result login(struct turn_auth *a, const char *user, const char *pass,
                                   struct turn_cred *cred)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    char nonce[TURN_NONCE_MAX];
    uint8_t key[STUN_MD5_LEN], buf[1024];
    struct stun_builder b;
    struct stun_msg m;
    int64_t now = ml_wall_s();
    ck_assert_int_eq(ml_addr_parse("192.0.2.1:5000", 0, &ss, &sl), 0);
    ck_assert_uint_gt(turn_auth_nonce(a, (struct sockaddr *)&ss, now, nonce, sizeof nonce), 0);
    ck_assert_int_eq(
        stun_key_md5(user, strlen(user), REALM, strlen(REALM), pass, strlen(pass), key), 0);
    stun_build_init(&b, buf, sizeof buf, TURN_ALLOCATE, STUN_REQUEST, tid);
    stun_build_u32(&b, STUN_ATTR_REQUESTED_TRANSPORT, 17u << 24);
    stun_build_attr(&b, STUN_ATTR_USERNAME, user, strlen(user));
    stun_build_attr(&b, STUN_ATTR_REALM, REALM, strlen(REALM));
    stun_build_attr(&b, STUN_ATTR_NONCE, nonce, strlen(nonce));
    stun_build_integrity(&b, key, sizeof key);
    size_t n = stun_build_finish(&b);
    ck_assert_int_eq(stun_msg_parse(&m, buf, n, NULL), 0);
    return turn_auth_check(a, &m, (struct sockaddr *)&ss, now, true, cred);
}

static struct turn_runtime_user ruser(const char *name, const char *pass)
{
    struct turn_runtime_user u;
    memset(&u, 0, sizeof u);
    ml_strlcpy(u.name, name, sizeof u.name);
    ck_assert_int_eq(
        stun_key_md5(name, strlen(name), REALM, strlen(REALM), pass, strlen(pass), u.md5), 0);
    ck_assert_int_eq(
        stun_key_sha256(name, strlen(name), REALM, strlen(REALM), pass, strlen(pass), u.sha256), 0);
    return u;
}

START_TEST(runtime_signing_secret)
{
    char buf[256], err[256];
    size_t ns, nu;
    struct turn_auth *a = auth_new("config-secret-1, config-secret-2", NULL);
    ck_assert_uint_eq(turn_auth_signing_secret(a, buf, sizeof buf), 15);
    ck_assert_str_eq(buf, "config-secret-1"); /* the first configured one */
    const char *rt[] = {"runtime-secret-old-0123", "runtime-secret-new-4567"};
    ck_assert_int_eq(turn_auth_set_runtime(a, rt, 2, NULL, 0, err, sizeof err), 0);
    turn_auth_signing_secret(a, buf, sizeof buf);
    ck_assert_str_eq(buf, "runtime-secret-new-4567"); /* the newest runtime one */
    turn_auth_runtime_counts(a, &ns, &nu);
    ck_assert_uint_eq(ns, 2);
    ck_assert_uint_eq(nu, 0);
    /* a reload of the configuration leaves the runtime table alone, and the other way round */
    struct turn_config c;
    memset(&c, 0, sizeof c);
    c.realm = (char *)REALM;
    c.auth_secret = (char *)"config-secret-3";
    ck_assert_int_eq(turn_auth_reload(a, &c, err, sizeof err), 0);
    turn_auth_signing_secret(a, buf, sizeof buf);
    ck_assert_str_eq(buf, "runtime-secret-new-4567");
    ck_assert_int_eq(turn_auth_set_runtime(a, NULL, 0, NULL, 0, err, sizeof err), 0);
    turn_auth_signing_secret(a, buf, sizeof buf);
    ck_assert_str_eq(buf, "config-secret-3");
    /* too small a buffer: nothing rather than a truncated secret */
    ck_assert_uint_eq(turn_auth_signing_secret(a, buf, 4), 0);
    ck_assert_str_eq(buf, "");
    turn_auth_free(a);

    a = auth_new(NULL, NULL);
    ck_assert_uint_eq(turn_auth_signing_secret(a, buf, sizeof buf), 0);
    turn_auth_free(a);
}
END_TEST

START_TEST(runtime_secrets_verify)
{
    char err[256], user[128], pass[64];
    struct turn_cred cred;
    struct turn_auth *a = auth_new("config-secret-1", NULL);
    int64_t exp = ml_wall_s() + 600;
    ck_assert_int_eq(turn_rest_credential("runtime-secret-0123", "m.p1", exp, user, sizeof user,
                                          pass, sizeof pass),
                     0);
    ck_assert_int_eq(login(a, user, pass, &cred), TURN_AUTH_REJECT);
    const char *rt[] = {"runtime-secret-0123"};
    ck_assert_int_eq(turn_auth_set_runtime(a, rt, 1, NULL, 0, err, sizeof err), 0);
    ck_assert_int_eq(login(a, user, pass, &cred), TURN_AUTH_OK);
    ck_assert_str_eq(cred.id, "m.p1");
    ck_assert_int_eq(cred.expiry_s, exp);
    /* retired: refused again; the configured secret still works */
    ck_assert_int_eq(turn_auth_set_runtime(a, NULL, 0, NULL, 0, err, sizeof err), 0);
    ck_assert_int_eq(login(a, user, pass, &cred), TURN_AUTH_REJECT);
    ck_assert_int_eq(
        turn_rest_credential("config-secret-1", "m.p1", exp, user, sizeof user, pass, sizeof pass),
        0);
    ck_assert_int_eq(login(a, user, pass, &cred), TURN_AUTH_OK);
    /* a runtime secret too short for turn_auth is refused whole */
    const char *bad[] = {"good-secret-0123", "short"};
    ck_assert_int_eq(turn_auth_set_runtime(a, bad, 2, NULL, 0, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "secret 2"));
    turn_auth_free(a);
}
END_TEST

START_TEST(runtime_users)
{
    char err[256];
    struct turn_cred cred;
    struct turn_auth *a = auth_new(NULL, "carol:carol-config-pw");
    struct turn_runtime_user u[3] = {ruser("dave", "dave-pw-123"), ruser("carol", "carol-db-pw"),
                                     ruser("erin@x", "erin-pw-123")};
    ck_assert_int_eq(login(a, "dave", "dave-pw-123", &cred), TURN_AUTH_REJECT);
    ck_assert_int_eq(turn_auth_set_runtime(a, NULL, 0, u, 3, err, sizeof err), 0);
    ck_assert_int_eq(login(a, "dave", "dave-pw-123", &cred), TURN_AUTH_OK);
    ck_assert_str_eq(cred.id, "dave");
    ck_assert_int_eq(cred.expiry_s, 0);
    ck_assert_int_eq(login(a, "erin@x", "erin-pw-123", &cred), TURN_AUTH_OK);
    ck_assert_int_eq(login(a, "dave", "wrong-password", &cred), TURN_AUTH_REJECT);
    /* turn.static-users wins a clash: carol's configured password, not the database's */
    ck_assert_int_eq(login(a, "carol", "carol-config-pw", &cred), TURN_AUTH_OK);
    ck_assert_int_eq(login(a, "carol", "carol-db-pw", &cred), TURN_AUTH_REJECT);
    /* deleted: refused */
    ck_assert_int_eq(turn_auth_set_runtime(a, NULL, 0, u + 2, 1, err, sizeof err), 0);
    ck_assert_int_eq(login(a, "dave", "dave-pw-123", &cred), TURN_AUTH_REJECT);
    ck_assert_int_eq(login(a, "erin@x", "erin-pw-123", &cred), TURN_AUTH_OK);
    /* two users of one name, or an empty name, are refused and change nothing */
    struct turn_runtime_user dup[2] = {ruser("x", "pw-pw-pw-1"), ruser("x", "pw-pw-pw-2")};
    ck_assert_int_eq(turn_auth_set_runtime(a, NULL, 0, dup, 2, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "runtime users 1 and 2"));
    struct turn_runtime_user empty = ruser("y", "pw-pw-pw-3");
    empty.name[0] = 0;
    ck_assert_int_eq(turn_auth_set_runtime(a, NULL, 0, &empty, 1, err, sizeof err), -1);
    ck_assert_int_eq(login(a, "erin@x", "erin-pw-123", &cred), TURN_AUTH_OK);
    turn_auth_free(a);
}
END_TEST

/* ------------------------------------------------------------------ admin validators */

START_TEST(admin_validators)
{
    char err[256];
    ck_assert_int_eq(adm_tokens_validate("0123456789abcdef", err, sizeof err), 0);
    ck_assert_int_eq(adm_tokens_validate("0123456789abcdef, fedcba9876543210", err, sizeof err), 0);
    ck_assert_int_eq(adm_tokens_validate("short", err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "16 to 256"));
    ck_assert(adm_user_name_ok("alice"));
    ck_assert(adm_user_name_ok("bob.smith@example.org"));
    ck_assert(adm_user_name_ok("a+b-c_d"));
    ck_assert(!adm_user_name_ok(""));
    ck_assert(!adm_user_name_ok("a:b"));
    ck_assert(!adm_user_name_ok("a b"));
    ck_assert(!adm_user_name_ok("a/b"));
    char long_name[200];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    ck_assert(!adm_user_name_ok(long_name));
    long_name[127] = 0;
    ck_assert(adm_user_name_ok(long_name));
    long_name[127] = 'a';
    long_name[128] = 0;
    ck_assert(!adm_user_name_ok(long_name)); /* 128 bytes */
}
END_TEST

static Suite *stats_suite(void)
{
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("render");
    tcase_add_test(tc, process_figures);
    tcase_add_test(tc, json_document);
    tcase_add_test(tc, prometheus_text);
    tcase_add_test(tc, families_whole);
    tcase_add_test(tc, label_escaping);
    suite_add_tcase(s, tc);
    return s;
}

static Suite *runtime_suite(void)
{
    Suite *s = suite_create("runtime-credentials");
    TCase *tc = tcase_create("auth");
    tcase_add_test(tc, runtime_signing_secret);
    tcase_add_test(tc, runtime_secrets_verify);
    tcase_add_test(tc, runtime_users);
    tcase_add_test(tc, admin_validators);
    suite_add_tcase(s, tc);
    return s;
}

ML_CHECK_MAIN(stats_suite, runtime_suite)
