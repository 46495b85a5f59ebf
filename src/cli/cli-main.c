/* meetlite-admin: the command line of meetlited's admin API (stats, metrics, health, TURN users
 * and secrets, credentials, allocations, drain mode, the log level, the TLS certificate, the
 * help assistant's knowledge base) and the schema migrations. Readable tables by default, the API's
 * JSON with --json. */
#include "config.h"

#include "cli/cli.h"
#include "db/db.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define EXIT_API 1   /* the API answered with an error */
#define EXIT_USAGE 2 /* bad command line */
#define EXIT_CONN 3  /* no answer */

/* What a meetlited configuration file tells us. */
struct conf {
    char listen[128];
    char token[300];       /* the first of admin.token */
    char token_file[4096]; /* admin.token-file: its first line is the token */
    bool tls;
    char db_url[4096];
    char db_password_file[4096]; /* database.password-file: its first line is the password */
    char migrations_dir[4096];
};

static struct cli_conn conn;
static bool json_out;
static char token_buf[300];

/* ------------------------------------------------------------------ configuration */

static int conf_line(void *user, const char *section, const char *name, const char *value)
{
    struct conf *c = user;
    if (!strcmp(section, "admin") && !strcmp(name, "listen"))
        ml_strlcpy(c->listen, value, sizeof c->listen);
    else if (!strcmp(section, "admin") && !strcmp(name, "token")) {
        ml_list_first(value, c->token, sizeof c->token); /* the first of admin.token */
    } else if (!strcmp(section, "admin") && !strcmp(name, "token-file")) {
        ml_strlcpy(c->token_file, value, sizeof c->token_file);
    } else if (!strcmp(section, "admin") && !strcmp(name, "tls-cert"))
        c->tls = *value != 0;
    else if (!strcmp(section, "database") && !strcmp(name, "url"))
        ml_strlcpy(c->db_url, value, sizeof c->db_url);
    else if (!strcmp(section, "database") && !strcmp(name, "password-file"))
        ml_strlcpy(c->db_password_file, value, sizeof c->db_password_file);
    else if (!strcmp(section, "database") && !strcmp(name, "migrations-dir"))
        ml_strlcpy(c->migrations_dir, value, sizeof c->migrations_dir);
    return 1;
}

/* A -file key's path as meetlited reads it: a relative one names a systemd credential. */
static void secret_path(const char *name, char *out, size_t len)
{
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    if (name[0] != '/' && dir && *dir)
        ml_snprintf(out, len, "%s/%s", dir, name);
    else
        ml_strlcpy(out, name, len);
}

static int read_token_file(const char *path, char *buf, size_t len)
{
    FILE *f = !strcmp(path, "-") ? stdin : fopen(path, "re");
    if (!f) {
        fprintf(stderr, "meetlite-admin: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!fgets(buf, (int)len, f))
        buf[0] = 0;
    if (f != stdin)
        fclose(f);
    ml_trim(buf);
    if (!buf[0]) {
        fprintf(stderr, "meetlite-admin: %s is empty\n", path);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ JSON helpers */

/* The member at a dotted path ("turn.allocations.total"), or NULL. */
static json_t *jget(json_t *j, const char *path)
{
    char key[64];
    while (j && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof key)
            return NULL;
        memcpy(key, path, n);
        key[n] = 0;
        j = json_object_get(j, key);
        path += n + (path[n] == '.');
    }
    return j;
}

static long long jint(json_t *j, const char *path)
{
    json_t *v = jget(j, path);
    return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

static const char *jstr(json_t *j, const char *path)
{
    json_t *v = jget(j, path);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void url_encode(const char *in, char *out, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *in && o + 4 < len; in++) {
        unsigned char c = (unsigned char)*in;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = 0;
}

/* ------------------------------------------------------------------ requests */

/* One request. In --json mode the answer is printed as it came. Returns the parsed answer of a
 * 2xx (caller json_decref()s), or NULL with *rc set and a message on stderr. */
static json_t *call(const char *method, const char *path, json_t *body, int *rc)
{
    struct cli_resp r;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    int ok = cli_http(&conn, method, path, text, &r);
    if (text) {
        ml_wipe(text, strlen(text)); /* may hold a password or a secret */
        free(text);
    }
    if (ok < 0) {
        fprintf(stderr, "meetlite-admin: %s:%d: %s\n", conn.host, conn.port, r.err);
        cli_resp_free(&r);
        *rc = EXIT_CONN;
        return NULL;
    }
    if (json_out && r.json) {
        char *pretty = json_dumps(r.json, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (pretty)
            printf("%s\n", pretty);
        free(pretty);
    }
    if (r.status >= 300) {
        const char *code = jstr(r.json, "error.code"), *msg = jstr(r.json, "error.message");
        if (!json_out || !r.json)
            fprintf(stderr, "meetlite-admin: %s %s: %d %s%s%s\n", method, path, r.status,
                    code ? code : "", msg ? ": " : "", msg ? msg : "");
        cli_resp_free(&r);
        *rc = EXIT_API;
        return NULL;
    }
    json_t *j = json_incref(r.json);
    cli_resp_free(&r);
    if (!j) {
        fprintf(stderr, "meetlite-admin: %s %s: the answer is not JSON\n", method, path);
        *rc = EXIT_API;
        return NULL;
    }
    *rc = 0;
    return j;
}

/* ------------------------------------------------------------------ stats */

static void print_stats(json_t *j)
{
    char a[48], b[48], c[48];
    cli_duration(jint(j, "process.uptime_s"), a, sizeof a);
    cli_bytes((uint64_t)jint(j, "process.rss_bytes"), b, sizeof b);
    printf("meetlited %s, pid %lld, up %s, %lld threads, RSS %s, %lld/%lld fds\n",
           jstr(j, "process.version") ? jstr(j, "process.version") : "?", jint(j, "process.pid"), a,
           jint(j, "process.threads"), b, jint(j, "process.open_fds"), jint(j, "process.max_fds"));
    json_t *t = jget(j, "turn");
    printf("relay      allocations %lld (udp %lld, tcp %lld, tls %lld; ipv4 %lld, ipv6 %lld), "
           "permissions %lld, channels %lld%s\n",
           jint(t, "allocations.total"), jint(t, "allocations.by_transport.udp"),
           jint(t, "allocations.by_transport.tcp"), jint(t, "allocations.by_transport.tls"),
           jint(t, "allocations.by_family.ipv4"), jint(t, "allocations.by_family.ipv6"),
           jint(t, "permissions"), jint(t, "channels"),
           json_is_true(jget(t, "draining")) ? ", DRAINING" : "");
    cli_bytes((uint64_t)jint(t, "relayed.to_peers.bytes"), a, sizeof a);
    cli_bytes((uint64_t)jint(t, "relayed.to_clients.bytes"), b, sizeof b);
    printf("           relayed to peers %lld packets (%s), to clients %lld packets (%s); "
           "%lld allocations made\n",
           jint(t, "relayed.to_peers.packets"), a, jint(t, "relayed.to_clients.packets"), b,
           jint(t, "allocations.created"));
    printf("           dropped: no permission %lld, no channel %lld, slow client %lld, "
           "over the 401 budget %lld, peer denied %lld\n",
           jint(t, "dropped.no_permission"), jint(t, "dropped.no_channel"),
           jint(t, "dropped.backpressure"), jint(t, "dropped.unauthenticated_over_budget"),
           jint(t, "dropped.peer_denied"));
    printf("           errors:");
    const char *key;
    json_t *v;
    int any = 0;
    json_object_foreach(jget(t, "error_responses"), key, v)
    {
        if (json_integer_value(v)) {
            printf(" %s %lld", key, (long long)json_integer_value(v));
            any = 1;
        }
    }
    printf("%s\n", any ? "" : " none");
    printf("           runtime credentials: %lld secrets, %lld users%s\n",
           jint(t, "runtime_credentials.secrets"), jint(t, "runtime_credentials.users"),
           jget(t, "database_credentials")
               ? (json_is_true(jget(t, "database_credentials.up")) ? " (in sync with PostgreSQL)"
                                                                   : " (PostgreSQL unreachable)")
               : "");
    json_t *u = jget(j, "net.udp");
    printf("udp        rx %lld packets, tx %lld packets, recvmmsg %lld calls (batches:",
           jint(u, "rx_packets"), jint(u, "tx_packets"), jint(u, "recvmmsg_calls"));
    json_object_foreach(jget(u, "recvmmsg_batch_sizes"), key, v)
        printf(" %s:%lld", key, (long long)json_integer_value(v));
    printf(")\n");
    printf("streams    %lld open, %lld accepted, %lld refused\n", jint(j, "net.streams.open"),
           jint(j, "net.streams.accepted"), jint(j, "net.streams.refused"));
    json_t *cp = jget(j, "control");
    if (json_is_true(jget(cp, "enabled"))) {
        json_t *m = jget(cp, "meetings_active");
        if (json_is_integer(m))
            printf("control    %lld active meetings, %lld participants, %lld WebSockets\n",
                   jint(cp, "meetings_active"), jint(cp, "participants_present"),
                   jint(cp, "websocket_connections"));
        else
            printf("control    meetings unknown (database unreachable), %lld WebSockets\n",
                   jint(cp, "websocket_connections"));
        printf("           HTTP answers:");
        json_object_foreach(jget(cp, "http_responses"), key, v)
            printf(" %s:%lld", key, (long long)json_integer_value(v));
        printf("\n");
    } else {
        printf("control    off (TURN-only node)\n");
    }
    for (int i = 0; i < 2; i++) {
        json_t *p = jget(j, i ? "admin.database" : "control.database");
        if (!json_is_object(p))
            continue;
        json_t *mr = jget(p, "mean_run_ms");
        ml_snprintf(c, sizeof c, "%.2f ms", json_is_number(mr) ? json_number_value(mr) : 0.0);
        printf("database   %s pool %lld/%lld up, %lld queued, %lld jobs (%lld failed, %lld "
               "unavailable), mean %s\n",
               i ? "admin" : "api", jint(p, "up"), jint(p, "size"), jint(p, "queued"),
               jint(p, "jobs"), jint(p, "failed"), jint(p, "unavailable"), c);
    }
    json_t *top = jget(j, "allocations_per_meeting.top");
    if (json_array_size(top)) {
        printf("\nallocations per meeting (top %lld of %lld):\n",
               jint(j, "allocations_per_meeting.limit"),
               jint(j, "allocations_per_meeting.meetings_with_allocations"));
        static const char *const heads[] = {"TAG", "ALLOCATIONS", "MEETING", "CODE", "TITLE"};
        struct cli_table tb;
        cli_table_init(&tb, 5, heads);
        size_t i;
        json_array_foreach(top, i, v)
        {
            char n[24];
            ml_snprintf(n, sizeof n, "%lld", jint(v, "allocations"));
            const char *row[] = {jstr(v, "tag"), n, jstr(v, "meeting_id"), jstr(v, "code"),
                                 jstr(v, "title")};
            cli_table_row(&tb, row);
        }
        cli_table_print(&tb, stdout);
        cli_table_free(&tb);
    }
}

static int cmd_stats(int argc, char **argv)
{
    static const struct option o[] = {{"top", required_argument, NULL, 't'}, {NULL, 0, NULL, 0}};
    char path[64] = "/stats";
    int c, rc;
    while ((c = getopt_long(argc, argv, "t:", o, NULL)) != -1) {
        long long n;
        if (c != 't' || ml_parse_ll(optarg, 0, 1000, &n) < 0) {
            fprintf(stderr, "meetlite-admin stats: --top takes 0 to 1000\n");
            return EXIT_USAGE;
        }
        ml_snprintf(path, sizeof path, "/stats?top=%lld", n);
    }
    json_t *j = call("GET", path, NULL, &rc);
    if (j && !json_out)
        print_stats(j);
    json_decref(j);
    return rc;
}

static int cmd_metrics(int argc, char **argv)
{
    struct cli_resp r;
    ML_UNUSED(argc);
    ML_UNUSED(argv);
    if (cli_http(&conn, "GET", "/metrics", NULL, &r) < 0) {
        fprintf(stderr, "meetlite-admin: %s:%d: %s\n", conn.host, conn.port, r.err);
        cli_resp_free(&r);
        return EXIT_CONN;
    }
    int rc = r.status == 200 ? 0 : EXIT_API;
    fwrite(r.body ? r.body : "", 1, r.len, rc ? stderr : stdout);
    cli_resp_free(&r);
    return rc;
}

/* /healthz and /readyz: the answer's status decides the exit code. */
static int probe(const char *path)
{
    struct cli_resp r;
    if (cli_http(&conn, "GET", path, NULL, &r) < 0) {
        fprintf(stderr, "meetlite-admin: %s:%d: %s\n", conn.host, conn.port, r.err);
        cli_resp_free(&r);
        return EXIT_CONN;
    }
    if (json_out)
        printf("%s\n", r.body ? r.body : "");
    else
        printf("%s%s%s%s%s\n", jstr(r.json, "status") ? jstr(r.json, "status") : "?",
               jstr(r.json, "database") ? ", database " : "",
               jstr(r.json, "database") ? jstr(r.json, "database") : "",
               json_is_boolean(jget(r.json, "draining")) ? ", draining " : "",
               json_is_boolean(jget(r.json, "draining"))
                   ? (json_is_true(jget(r.json, "draining")) ? "yes" : "no")
                   : "");
    int rc = r.status == 200 ? 0 : EXIT_API;
    cli_resp_free(&r);
    return rc;
}

static int cmd_health(int argc, char **argv)
{
    ML_UNUSED(argc);
    ML_UNUSED(argv);
    return probe("/healthz");
}

static int cmd_ready(int argc, char **argv)
{
    ML_UNUSED(argc);
    ML_UNUSED(argv);
    return probe("/readyz");
}

/* ------------------------------------------------------------------ users */

static void random_password(char *out, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"; /* no look-alikes */
    uint8_t r[24];
    ml_random(r, sizeof r);
    size_t n = len - 1 < sizeof r ? len - 1 : sizeof r;
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[r[i] % (sizeof alphabet - 1)];
    out[n] = 0;
    ml_wipe(r, sizeof r);
}

static int cmd_users(int argc, char **argv)
{
    int rc;
    const char *sub = argc > 1 ? argv[1] : "list";
    if (!strcmp(sub, "list")) {
        json_t *j = call("GET", "/v1/turn/users", NULL, &rc);
        if (j && !json_out) {
            static const char *const heads[] = {"NAME", "CREATED"};
            struct cli_table t;
            cli_table_init(&t, 2, heads);
            size_t i;
            json_t *u;
            json_array_foreach(jget(j, "users"), i, u)
            {
                char when[40];
                cli_time(jint(u, "created_at"), when, sizeof when);
                const char *row[] = {jstr(u, "name"), when};
                cli_table_row(&t, row);
            }
            printf("realm %s: %lld user%s\n", jstr(j, "realm") ? jstr(j, "realm") : "?",
                   jint(j, "count"), jint(j, "count") == 1 ? "" : "s");
            if (t.rows)
                cli_table_print(&t, stdout);
            cli_table_free(&t);
        }
        json_decref(j);
        return rc;
    }
    if (!strcmp(sub, "add")) {
        static const struct option o[] = {{"password-file", required_argument, NULL, 'p'},
                                          {NULL, 0, NULL, 0}};
        const char *pwfile = NULL;
        int c;
        argc--; /* "add" is argv[0] now */
        argv++;
        optind = 0;
        while ((c = getopt_long(argc, argv, "p:", o, NULL)) != -1) {
            if (c != 'p')
                return EXIT_USAGE;
            pwfile = optarg;
        }
        if (optind != argc - 1) {
            fprintf(stderr, "usage: meetlite-admin users add NAME [--password-file FILE|-]\n");
            return EXIT_USAGE;
        }
        char pw[260];
        bool generated = !pwfile;
        if (pwfile) {
            if (read_token_file(pwfile, pw, sizeof pw) < 0)
                return EXIT_USAGE;
        } else {
            random_password(pw, sizeof pw);
        }
        json_t *j = call("POST", "/v1/turn/users",
                         json_pack("{s:s,s:s}", "name", argv[optind], "password", pw), &rc);
        if (j && !json_out) {
            printf("user %s created in realm %s\n", jstr(j, "name"), jstr(j, "realm"));
            if (generated)
                printf("password: %s\n(shown once: only its keys are stored)\n", pw);
        } else if (j && generated) {
            fprintf(stderr, "password: %s\n", pw); /* --json: stdout holds the JSON */
        }
        ml_wipe(pw, sizeof pw);
        json_decref(j);
        return rc;
    }
    if (!strcmp(sub, "delete") || !strcmp(sub, "del") || !strcmp(sub, "rm")) {
        if (argc != 3) {
            fprintf(stderr, "usage: meetlite-admin users delete NAME\n");
            return EXIT_USAGE;
        }
        char name[400], path[480];
        url_encode(argv[2], name, sizeof name);
        ml_snprintf(path, sizeof path, "/v1/turn/users/%s", name);
        json_t *j = call("DELETE", path, NULL, &rc);
        if (j && !json_out)
            printf("user %s deleted; %lld allocation%s closed\n", argv[2],
                   jint(j, "allocations_closed"), jint(j, "allocations_closed") == 1 ? "" : "s");
        json_decref(j);
        return rc;
    }
    fprintf(stderr, "usage: meetlite-admin users [list | add NAME | delete NAME]\n");
    return EXIT_USAGE;
}

/* ------------------------------------------------------------------ credentials */

static int cmd_credential(int argc, char **argv)
{
    static const struct option o[] = {{"ttl", required_argument, NULL, 't'}, {NULL, 0, NULL, 0}};
    long long ttl = 3600;
    int c, rc;
    while ((c = getopt_long(argc, argv, "t:", o, NULL)) != -1) {
        if (c != 't' || ml_parse_ll(optarg, 1, 7 * 86400, &ttl) < 0) {
            fprintf(stderr, "meetlite-admin credential: --ttl takes 1 to 604800 seconds\n");
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "usage: meetlite-admin credential ID [--ttl SECONDS]\n");
        return EXIT_USAGE;
    }
    json_t *j = call("POST", "/v1/turn/credentials",
                     json_pack("{s:s,s:I}", "id", argv[optind], "ttl", (json_int_t)ttl), &rc);
    if (j && !json_out) {
        char when[40];
        cli_time(jint(j, "expires_at"), when, sizeof when);
        printf("username: %s\npassword: %s\nrealm:    %s\nexpires:  %s (in %lld s)\n",
               jstr(j, "username"), jstr(j, "password"), jstr(j, "realm"), when, jint(j, "ttl"));
    }
    json_decref(j);
    return rc;
}

/* ------------------------------------------------------------------ allocations */

enum { F_MEETING = 'm', F_PARTICIPANT = 'p', F_USER = 'u', F_CLIENT = 'c', F_ID = 'i' };
static const struct option filter_opts[] = {
    {"meeting", required_argument, NULL, F_MEETING},
    {"participant", required_argument, NULL, F_PARTICIPANT},
    {"user", required_argument, NULL, F_USER},
    {"client", required_argument, NULL, F_CLIENT},
    {"id", required_argument, NULL, F_ID},
    {"limit", required_argument, NULL, 'l'},
    {NULL, 0, NULL, 0},
};

static const char *filter_name(int c)
{
    switch (c) {
    case F_MEETING:
        return "meeting";
    case F_PARTICIPANT:
        return "participant";
    case F_USER:
        return "user";
    case F_CLIENT:
        return "client";
    case F_ID:
        return "id";
    default:
        return "limit";
    }
}

static void print_allocations(json_t *j)
{
    static const char *const heads[] = {"ID",      "TRANSPORT", "CLIENT",   "RELAYED",
                                        "MEETING", "WHO",       "EXPIRES",  "PERM",
                                        "CHAN",    "TO PEERS",  "TO CLIENT"};
    struct cli_table t;
    cli_table_init(&t, 11, heads);
    size_t i;
    json_t *a;
    int64_t now = ml_wall_s();
    json_array_foreach(jget(j, "allocations"), i, a)
    {
        char rel[160] = "", exp[24], perm[12], chan[12], tp[48], tc[48], b[24];
        size_t k;
        json_t *r;
        json_array_foreach(jget(a, "relayed"), k, r)
        {
            size_t n = strlen(rel);
            ml_snprintf(rel + n, sizeof rel - n, "%s%s", k ? " " : "", json_string_value(r));
        }
        cli_duration(jint(a, "expires_at") - now, exp, sizeof exp);
        ml_snprintf(perm, sizeof perm, "%lld", jint(a, "permissions"));
        ml_snprintf(chan, sizeof chan, "%lld", jint(a, "channels"));
        cli_bytes((uint64_t)jint(a, "usage.bytes_to_peers"), b, sizeof b);
        ml_snprintf(tp, sizeof tp, "%lld/%s", jint(a, "usage.packets_to_peers"), b);
        cli_bytes((uint64_t)jint(a, "usage.bytes_to_client"), b, sizeof b);
        ml_snprintf(tc, sizeof tc, "%lld/%s", jint(a, "usage.packets_to_client"), b);
        const char *who =
            jstr(a, "participant") ? jstr(a, "participant") : jstr(a, "credential_id");
        const char *row[] = {jstr(a, "id"),
                             jstr(a, "transport"),
                             jstr(a, "client"),
                             rel,
                             jstr(a, "meeting_tag"),
                             who,
                             exp,
                             perm,
                             chan,
                             tp,
                             tc};
        cli_table_row(&t, row);
    }
    printf("%lld allocation%s%s\n", jint(j, "total"), jint(j, "total") == 1 ? "" : "s",
           json_is_true(jget(j, "truncated")) ? " (list truncated: --limit or a narrower filter)"
                                              : "");
    if (t.rows)
        cli_table_print(&t, stdout);
    cli_table_free(&t);
}

static int cmd_allocations(int argc, char **argv, bool close)
{
    char path[1400], v[400];
    json_t *body = json_object();
    size_t off = ml_snprintf(path, sizeof path, "/v1/turn/allocations");
    int c, rc, nfilters = 0;
    char sep = '?';
    while ((c = getopt_long(argc, argv, "m:p:u:c:i:l:", filter_opts, NULL)) != -1) {
        if (c == '?' || (close && c == 'l')) {
            json_decref(body);
            return EXIT_USAGE;
        }
        if (c != 'l')
            nfilters++;
        url_encode(optarg, v, sizeof v);
        off += ml_snprintf(path + off, sizeof path - off, "%c%s=%s", sep, filter_name(c), v);
        sep = '&';
        if (c == F_ID) {
            long long id;
            if (ml_parse_ll(optarg, 1, INT64_MAX, &id) < 0) {
                fprintf(stderr, "meetlite-admin: --id takes an allocation id\n");
                json_decref(body);
                return EXIT_USAGE;
            }
            json_object_set_new(body, "id", json_integer(id));
        } else {
            json_object_set_new(body, filter_name(c), json_string(optarg));
        }
    }
    if (optind < argc) {
        fprintf(stderr, "meetlite-admin: unexpected argument %s\n", argv[optind]);
        json_decref(body);
        return EXIT_USAGE;
    }
    if (!close) {
        json_decref(body);
        json_t *j = call("GET", path, NULL, &rc);
        if (j && !json_out)
            print_allocations(j);
        json_decref(j);
        return rc;
    }
    if (!nfilters) {
        fprintf(stderr, "usage: meetlite-admin close --id N | --meeting M | --participant P | "
                        "--user U | --client ADDR (one or more)\n");
        json_decref(body);
        return EXIT_USAGE;
    }
    json_t *j = call("POST", "/v1/turn/allocations/close", body, &rc);
    if (j && !json_out)
        printf("%lld allocation%s closed\n", jint(j, "closed"), jint(j, "closed") == 1 ? "" : "s");
    json_decref(j);
    return rc;
}

static int cmd_list_allocations(int argc, char **argv)
{
    return cmd_allocations(argc, argv, false);
}

static int cmd_close(int argc, char **argv)
{
    return cmd_allocations(argc, argv, true);
}

/* ------------------------------------------------------------------ secrets */

static int cmd_secrets(int argc, char **argv)
{
    int rc;
    const char *sub = argc > 1 ? argv[1] : "list";
    if (!strcmp(sub, "list")) {
        json_t *j = call("GET", "/v1/turn/secrets", NULL, &rc);
        if (j && !json_out) {
            static const char *const heads[] = {"ID", "CREATED", "FINGERPRINT", "SIGNING"};
            struct cli_table t;
            cli_table_init(&t, 4, heads);
            size_t i;
            json_t *s;
            json_array_foreach(jget(j, "secrets"), i, s)
            {
                char id[24], when[40];
                ml_snprintf(id, sizeof id, "%lld", jint(s, "id"));
                cli_time(jint(s, "created_at"), when, sizeof when);
                const char *row[] = {id, when, jstr(s, "fingerprint"),
                                     json_is_true(jget(s, "signing")) ? "yes" : ""};
                cli_table_row(&t, row);
            }
            printf("new credentials are signed with %s%s%s\n",
                   jstr(j, "signing.source") ? jstr(j, "signing.source") : "?",
                   jstr(j, "signing.fingerprint") ? " secret " : "",
                   jstr(j, "signing.fingerprint") ? jstr(j, "signing.fingerprint") : "");
            if (t.rows)
                cli_table_print(&t, stdout);
            cli_table_free(&t);
        }
        json_decref(j);
        return rc;
    }
    if (!strcmp(sub, "add")) {
        static const struct option o[] = {{"secret-file", required_argument, NULL, 's'},
                                          {NULL, 0, NULL, 0}};
        const char *file = NULL;
        int c;
        argc--; /* "add" is argv[0] now */
        argv++;
        optind = 0;
        while ((c = getopt_long(argc, argv, "s:", o, NULL)) != -1) {
            if (c != 's')
                return EXIT_USAGE;
            file = optarg;
        }
        if (optind != argc) {
            fprintf(stderr, "usage: meetlite-admin secrets add [--secret-file FILE|-]\n");
            return EXIT_USAGE;
        }
        json_t *body = json_object();
        if (file) {
            char s[260];
            if (read_token_file(file, s, sizeof s) < 0) {
                json_decref(body);
                return EXIT_USAGE;
            }
            json_object_set_new(body, "secret", json_string(s));
            ml_wipe(s, sizeof s);
        }
        json_t *j = call("POST", "/v1/turn/secrets", body, &rc);
        if (j && !json_out) {
            printf("secret %lld added (fingerprint %s); it signs new credentials from now on\n",
                   jint(j, "id"), jstr(j, "fingerprint"));
            if (jstr(j, "secret"))
                printf("secret: %s\n(shown once)\n", jstr(j, "secret"));
        }
        json_decref(j);
        return rc;
    }
    if (!strcmp(sub, "retire") || !strcmp(sub, "delete")) {
        long long id;
        if (argc != 3 || ml_parse_ll(argv[2], 1, INT64_MAX, &id) < 0) {
            fprintf(stderr, "usage: meetlite-admin secrets retire ID\n");
            return EXIT_USAGE;
        }
        char path[64];
        ml_snprintf(path, sizeof path, "/v1/turn/secrets/%lld", id);
        json_t *j = call("DELETE", path, NULL, &rc);
        if (j && !json_out)
            printf("secret %lld retired: credentials signed with it are refused from now on "
                   "(allocations made with them run until they end)\n",
                   id);
        json_decref(j);
        return rc;
    }
    fprintf(stderr, "usage: meetlite-admin secrets [list | add | retire ID]\n");
    return EXIT_USAGE;
}

/* ------------------------------------------------------------------ webhooks */

static void print_events(json_t *j)
{
    static const char *const heads[] = {"ID",     "SEQ",      "TYPE",      "CREATED",
                                        "STATUS", "ATTEMPTS", "LAST ERROR"};
    struct cli_table t;
    cli_table_init(&t, 7, heads);
    size_t i;
    json_t *e;
    json_array_foreach(jget(j, "events"), i, e)
    {
        char seq[24], att[16];
        ml_snprintf(seq, sizeof seq, "%lld", jint(e, "sequence"));
        ml_snprintf(att, sizeof att, "%lld", jint(e, "attempts"));
        const char *err = jstr(e, "last_error");
        const char *row[] = {jstr(e, "id"),     seq, jstr(e, "type"), jstr(e, "created_at"),
                             jstr(e, "status"), att, err ? err : ""};
        cli_table_row(&t, row);
    }
    if (t.rows)
        cli_table_print(&t, stdout);
    else
        printf("no webhook events\n");
    cli_table_free(&t);
    if (json_is_integer(jget(j, "next_before")))
        printf("more: --before %lld\n", jint(j, "next_before"));
}

static int cmd_webhooks(int argc, char **argv)
{
    static const char use[] =
        "usage: meetlite-admin webhooks [list [--status S] [--type T] [--since TIME] "
        "[--before SEQ] [--limit N] | show ID | replay ID | replay-failed [--since TIME]]\n";
    int rc;
    const char *sub = argc > 1 ? argv[1] : "list";
    if (!strcmp(sub, "list") || !strcmp(sub, "replay-failed")) {
        static const struct option o[] = {
            {"status", required_argument, NULL, 's'}, {"type", required_argument, NULL, 't'},
            {"since", required_argument, NULL, 'S'},  {"before", required_argument, NULL, 'b'},
            {"limit", required_argument, NULL, 'l'},  {NULL, 0, NULL, 0}};
        static const char *const names[] = {"status", "type", "since", "before", "limit"};
        const char *vals[5] = {NULL};
        bool list = !strcmp(sub, "list");
        int c;
        if (argc > 1) {
            argc--; /* the subcommand is argv[0] now */
            argv++;
        }
        optind = 0;
        while ((c = getopt_long(argc, argv, "", o, NULL)) != -1) {
            const char *p = strchr("stSbl", c);
            if (!c || !p || (!list && c != 'S')) {
                fputs(use, stderr);
                return EXIT_USAGE;
            }
            vals[p - "stSbl"] = optarg;
        }
        if (optind != argc) {
            fputs(use, stderr);
            return EXIT_USAGE;
        }
        if (!list) {
            json_t *body = json_object();
            if (vals[2])
                json_object_set_new(body, "since", json_string(vals[2]));
            json_t *j = call("POST", "/v1/webhooks/replay-failed", body, &rc);
            if (j && !json_out)
                printf("%lld failed events queued again\n", jint(j, "replayed"));
            json_decref(j);
            return rc;
        }
        char path[600], enc[200];
        size_t at = ml_strlcpy(path, "/v1/webhooks/events", sizeof path);
        for (size_t i = 0; i < ML_ARRAY_LEN(names); i++) {
            if (!vals[i] || at >= sizeof path)
                continue;
            url_encode(vals[i], enc, sizeof enc);
            at += ml_snprintf(path + at, sizeof path - at, "%c%s=%s", strchr(path, '?') ? '&' : '?',
                              names[i], enc);
        }
        json_t *j = call("GET", path, NULL, &rc);
        if (j && !json_out)
            print_events(j);
        json_decref(j);
        return rc;
    }
    if (!strcmp(sub, "replay") || !strcmp(sub, "show")) {
        if (argc != 3) {
            fputs(use, stderr);
            return EXIT_USAGE;
        }
        bool replay = !strcmp(sub, "replay");
        char id[200], path[300];
        url_encode(argv[2], id, sizeof id);
        ml_snprintf(path, sizeof path, "/v1/webhooks/events/%s%s", id, replay ? "/replay" : "");
        json_t *j = call(replay ? "POST" : "GET", path, NULL, &rc);
        if (j && !json_out) {
            if (replay) {
                printf("event %s (%s) queued again\n", jstr(j, "id"), jstr(j, "type"));
            } else {
                char *pl = json_dumps(jget(j, "payload"), JSON_INDENT(2));
                printf("event %s #%lld %s, created %s: %s after %lld attempts%s%s\n%s\n",
                       jstr(j, "id"), jint(j, "sequence"), jstr(j, "type"), jstr(j, "created_at"),
                       jstr(j, "status"), jint(j, "attempts"),
                       jstr(j, "last_error") ? "; last error: " : "",
                       jstr(j, "last_error") ? jstr(j, "last_error") : "", pl ? pl : "");
                free(pl);
            }
        }
        json_decref(j);
        return rc;
    }
    fputs(use, stderr);
    return EXIT_USAGE;
}

/* ------------------------------------------------------------------ the rest */

static int cmd_drain(int argc, char **argv)
{
    int rc;
    json_t *j;
    if (argc == 1) {
        j = call("GET", "/v1/drain", NULL, &rc);
    } else if (argc == 2 && (!strcmp(argv[1], "on") || !strcmp(argv[1], "off"))) {
        j = call("PUT", "/v1/drain", json_pack("{s:b}", "draining", !strcmp(argv[1], "on")), &rc);
    } else {
        fprintf(stderr, "usage: meetlite-admin drain [on|off]\n");
        return EXIT_USAGE;
    }
    if (j && !json_out)
        printf("draining: %s\n", json_is_true(jget(j, "draining")) ? "yes" : "no");
    json_decref(j);
    return rc;
}

static int cmd_log_level(int argc, char **argv)
{
    int rc;
    json_t *j;
    if (argc == 1)
        j = call("GET", "/v1/log-level", NULL, &rc);
    else if (argc == 2)
        j = call("PUT", "/v1/log-level", json_pack("{s:s}", "level", argv[1]), &rc);
    else {
        fprintf(stderr, "usage: meetlite-admin log-level [error|warn|notice|info|debug]\n");
        return EXIT_USAGE;
    }
    if (j && !json_out)
        printf("log level: %s\n", jstr(j, "level"));
    json_decref(j);
    return rc;
}

static int cmd_tls_reload(int argc, char **argv)
{
    int rc;
    ML_UNUSED(argv);
    if (argc != 1) {
        fprintf(stderr, "usage: meetlite-admin tls-reload\n");
        return EXIT_USAGE;
    }
    json_t *j = call("POST", "/v1/tls/reload", NULL, &rc);
    if (j && !json_out)
        printf("TLS certificate reloaded: new connections get it\n");
    json_decref(j);
    return rc;
}

static int cmd_usage(int argc, char **argv)
{
    int rc;
    if (argc != 2) {
        fprintf(stderr, "usage: meetlite-admin usage MEETING (id or join code)\n");
        return EXIT_USAGE;
    }
    char ref[200], path[260];
    url_encode(argv[1], ref, sizeof ref);
    ml_snprintf(path, sizeof path, "/v1/meetings/%s/usage", ref);
    json_t *j = call("GET", path, NULL, &rc);
    if (j && !json_out) {
        char a[32], b[32];
        cli_bytes((uint64_t)jint(j, "totals.bytes_to_peer"), a, sizeof a);
        cli_bytes((uint64_t)jint(j, "totals.bytes_to_client"), b, sizeof b);
        printf("meeting %s: %lld allocations ended, %lld s, to peers %s, to clients %s\n",
               jstr(j, "meeting_id"), jint(j, "totals.allocations"),
               jint(j, "totals.allocation_seconds"), a, b);
        static const char *const heads[] = {"PARTICIPANT", "NAME",     "ALLOCATIONS",
                                            "SECONDS",     "TO PEERS", "TO CLIENT"};
        struct cli_table t;
        cli_table_init(&t, 6, heads);
        size_t i;
        json_t *p;
        json_array_foreach(jget(j, "participants"), i, p)
        {
            char n[24], s[24];
            ml_snprintf(n, sizeof n, "%lld", jint(p, "allocations"));
            ml_snprintf(s, sizeof s, "%lld", jint(p, "allocation_seconds"));
            cli_bytes((uint64_t)jint(p, "bytes_to_peer"), a, sizeof a);
            cli_bytes((uint64_t)jint(p, "bytes_to_client"), b, sizeof b);
            const char *row[] = {jstr(p, "participant_id"), jstr(p, "display_name"), n, s, a, b};
            cli_table_row(&t, row);
        }
        if (t.rows)
            cli_table_print(&t, stdout);
        cli_table_free(&t);
    }
    json_decref(j);
    return rc;
}

/* ------------------------------------------------------------------ the knowledge base */

#define KB_FILE_MAX_BYTES (300 * 1024) /* an article file: 69,632 characters (adm-kb.c) */
#define KB_DEPTH_MAX 3                 /* folders walked below an import's DIR */

/* An article file's text into a malloc'd, NUL-terminated buffer (caller frees), or NULL with a
 * message on stderr: unreadable, too large, not UTF-8. */
static char *kb_read_file(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        fprintf(stderr, "meetlite-admin: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *buf = ml_xmalloc(KB_FILE_MAX_BYTES + 2);
    size_t n = fread(buf, 1, KB_FILE_MAX_BYTES + 1, f);
    bool err = ferror(f) != 0;
    fclose(f);
    size_t chars;
    const char *why = err                              ? "cannot be read"
                      : n > KB_FILE_MAX_BYTES          ? "larger than 300 KiB"
                      : !ml_utf8_valid(buf, n, &chars) ? "not UTF-8 text"
                      : memchr(buf, 0, n) != NULL      ? "contains a NUL byte"
                                                       : NULL;
    if (why) {
        fprintf(stderr, "meetlite-admin: %s: %s\n", path, why);
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    return buf;
}

/* The slug a file's name gives ("kb/en/camera-black.md": camera-black), into out. */
static void kb_slug_of(const char *path, char *out, size_t len)
{
    const char *base = strrchr(path, '/');
    ml_strlcpy(out, base ? base + 1 : path, len);
    size_t n = strlen(out);
    if (n > 3 && !strcmp(out + n - 3, ".md"))
        out[n - 3] = 0;
}

/* Adds or replaces one article file; prints its outcome unless quiet. 0, or the exit status. */
static int kb_add_file(const char *path, bool starter, unsigned counts[4])
{
    char *text = kb_read_file(path);
    if (!text)
        return EXIT_USAGE;
    char slug[256];
    kb_slug_of(path, slug, sizeof slug);
    int rc;
    json_t *j = call("POST", "/v1/kb/articles",
                     json_pack("{s:s,s:s,s:s}", "file", text, "slug", slug, "origin",
                               starter ? "starter" : "operator"),
                     &rc);
    free(text);
    if (rc == EXIT_API)
        fprintf(stderr, "meetlite-admin: %s: refused\n", path);
    if (j) {
        const char *outcome = jstr(j, "outcome") ? jstr(j, "outcome") : "?";
        if (!json_out)
            printf("%-8s %s (%lld passage%s)\n", outcome, jstr(j, "slug"), jint(j, "passages"),
                   jint(j, "passages") == 1 ? "" : "s");
        static const char *const kinds[] = {"created", "updated", "unchanged", "kept"};
        for (int i = 0; i < 4; i++)
            if (!strcmp(outcome, kinds[i]))
                counts[i]++;
    }
    json_decref(j);
    return rc;
}

static int kb_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every article file under dir (*.md but README.md), in name order, depth first. *rc keeps the
 * first failure; a connection failure stops the walk. */
static void kb_import_dir(const char *dir, int depth, bool starter, unsigned counts[4], int *rc,
                          unsigned *files)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "meetlite-admin: %s: %s\n", dir, strerror(errno));
        *rc = *rc ? *rc : EXIT_USAGE;
        return;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        names = ml_xrealloc(names, (n + 1) * sizeof *names);
        names[n++] = ml_xstrdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, kb_name_cmp);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        ml_snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat st;
        size_t len = strlen(names[i]);
        if (*rc == EXIT_CONN || stat(path, &st) < 0) {
            /* stopped, or gone meanwhile */
        } else if (S_ISDIR(st.st_mode)) {
            if (depth < KB_DEPTH_MAX)
                kb_import_dir(path, depth + 1, starter, counts, rc, files);
        } else if (S_ISREG(st.st_mode) && len > 3 && !strcmp(names[i] + len - 3, ".md") &&
                   strcasecmp(names[i], "README.md") != 0) {
            (*files)++;
            int r = kb_add_file(path, starter, counts);
            if (r && (!*rc || r == EXIT_CONN))
                *rc = r;
        }
        free(names[i]);
    }
    free(names);
}

static int cmd_kb(int argc, char **argv)
{
    int rc = 0;
    const char *sub = argc > 1 ? argv[1] : "list";
    bool starter = false;
    if (argc > 2 && (!strcmp(sub, "add") || !strcmp(sub, "import")) &&
        !strcmp(argv[argc - 1], "--starter")) {
        starter = true;
        argc--;
    }
    if (!strcmp(sub, "list") && argc <= 2) {
        json_t *j = call("GET", "/v1/kb/articles", NULL, &rc);
        if (j && !json_out) {
            static const char *const heads[] = {"SLUG",     "LANG",    "AUDIENCE", "ORIGIN",
                                                "PASSAGES", "UPDATED", "TITLE"};
            struct cli_table t;
            cli_table_init(&t, 7, heads);
            size_t i;
            json_t *a;
            json_array_foreach(jget(j, "articles"), i, a)
            {
                char when[40], np[24];
                cli_time(jint(a, "updated_at"), when, sizeof when);
                ml_snprintf(np, sizeof np, "%lld", jint(a, "passages"));
                const char *row[] = {jstr(a, "slug"),
                                     jstr(a, "language"),
                                     jstr(a, "audience"),
                                     jstr(a, "origin"),
                                     np,
                                     when,
                                     jstr(a, "title")};
                cli_table_row(&t, row);
            }
            printf("%lld article%s\n", jint(j, "count"), jint(j, "count") == 1 ? "" : "s");
            if (t.rows)
                cli_table_print(&t, stdout);
            cli_table_free(&t);
        }
        json_decref(j);
        return rc;
    }
    if (!strcmp(sub, "show") && argc == 3) {
        char slug[400], path[480];
        url_encode(argv[2], slug, sizeof slug);
        ml_snprintf(path, sizeof path, "/v1/kb/articles/%s", slug);
        json_t *j = call("GET", path, NULL, &rc);
        if (j && !json_out)
            printf("# %s\n(%s, %s, %s)\n\n%s", jstr(j, "title"), jstr(j, "language"),
                   jstr(j, "audience"), jstr(j, "origin"),
                   jstr(j, "body_md") ? jstr(j, "body_md") : "");
        json_decref(j);
        return rc;
    }
    if (!strcmp(sub, "add") && argc == 3) {
        unsigned counts[4] = {0};
        return kb_add_file(argv[2], starter, counts);
    }
    if (!strcmp(sub, "import") && argc == 3) {
        unsigned counts[4] = {0}, files = 0;
        kb_import_dir(argv[2], 0, starter, counts, &rc, &files);
        if (!json_out)
            printf("%u file%s: %u created, %u updated, %u unchanged, %u kept (edited by an "
                   "operator)%s\n",
                   files, files == 1 ? "" : "s", counts[0], counts[1], counts[2], counts[3],
                   rc ? "; some failed" : "");
        return rc;
    }
    if ((!strcmp(sub, "rm") || !strcmp(sub, "delete")) && argc == 3) {
        char slug[400], path[480];
        url_encode(argv[2], slug, sizeof slug);
        ml_snprintf(path, sizeof path, "/v1/kb/articles/%s", slug);
        json_t *j = call("DELETE", path, NULL, &rc);
        if (j && !json_out)
            printf("article %s deleted\n", argv[2]);
        json_decref(j);
        return rc;
    }
    if (!strcmp(sub, "gaps")) {
        static const struct option o[] = {{"days", required_argument, NULL, 'd'},
                                          {"limit", required_argument, NULL, 'l'},
                                          {NULL, 0, NULL, 0}};
        long long days = 30, limit = 50;
        int c;
        argc--; /* "gaps" is argv[0] now */
        argv++;
        optind = 0;
        while ((c = getopt_long(argc, argv, "d:l:", o, NULL)) != -1) {
            long long *v = c == 'd' ? &days : c == 'l' ? &limit : NULL;
            if (!v || ml_parse_ll(optarg, 1, c == 'd' ? 3650 : 1000, v) < 0) {
                fprintf(stderr, "usage: meetlite-admin kb gaps [--days 1..3650] "
                                "[--limit 1..1000]\n");
                return EXIT_USAGE;
            }
        }
        if (optind != argc) {
            fprintf(stderr, "usage: meetlite-admin kb gaps [--days N] [--limit N]\n");
            return EXIT_USAGE;
        }
        char path[96];
        ml_snprintf(path, sizeof path, "/v1/kb/gaps?days=%lld&limit=%lld", days, limit);
        json_t *j = call("GET", path, NULL, &rc);
        if (j && !json_out) {
            static const char *const heads[] = {"ASKED",   "ACCOUNTS",   "BEST",
                                                "CLOSEST", "LAST ASKED", "QUESTION"};
            struct cli_table t;
            cli_table_init(&t, 6, heads);
            size_t i;
            json_t *g;
            json_array_foreach(jget(j, "gaps"), i, g)
            {
                char asked[24], acc[24], best[24], when[40];
                ml_snprintf(asked, sizeof asked, "%lld", jint(g, "asked"));
                ml_snprintf(acc, sizeof acc, "%lld", jint(g, "accounts"));
                json_t *b = jget(g, "best_score");
                ml_snprintf(best, sizeof best, "%.2f",
                            json_is_number(b) ? json_number_value(b) : 0);
                cli_time(jint(g, "last_asked"), when, sizeof when);
                const char *closest = jstr(g, "closest_article");
                const char *row[] = {
                    asked, acc, best, closest ? closest : "-", when, jstr(g, "question")};
                cli_table_row(&t, row);
            }
            printf("%zu unanswered question%s in the last %lld day%s\n",
                   json_array_size(jget(j, "gaps")),
                   json_array_size(jget(j, "gaps")) == 1 ? "" : "s", days, days == 1 ? "" : "s");
            if (t.rows)
                cli_table_print(&t, stdout);
            cli_table_free(&t);
        }
        json_decref(j);
        return rc;
    }
    fprintf(stderr, "usage: meetlite-admin kb [list | show SLUG | add FILE [--starter] | "
                    "import DIR [--starter] | rm SLUG | gaps [--days N] [--limit N]]\n");
    return EXIT_USAGE;
}

static struct conf file_conf;

static int cmd_migrate(int argc, char **argv)
{
    static const struct option o[] = {{"database-url", required_argument, NULL, 'd'},
                                      {"migrations-dir", required_argument, NULL, 'm'},
                                      {NULL, 0, NULL, 0}};
    const char *url = getenv("MEETLITE_DATABASE_URL");
    const char *dir = file_conf.migrations_dir[0] ? file_conf.migrations_dir : NULL;
    int c;
    if (file_conf.db_url[0])
        url = file_conf.db_url;
    while ((c = getopt_long(argc, argv, "d:m:", o, NULL)) != -1) {
        if (c == 'd')
            url = optarg;
        else if (c == 'm')
            dir = optarg;
        else
            return EXIT_USAGE;
    }
    if (!url || !*url) {
        fprintf(stderr, "meetlite-admin migrate: no database: give --database-url, -c with "
                        "database.url, or MEETLITE_DATABASE_URL\n");
        return EXIT_USAGE;
    }
    struct db_config dc;
    memset(&dc, 0, sizeof dc);
    dc.migrations_dir = (char *)dir;
    const char *d = db_migrations_dir(&dc);
    char err[512], pw[1024];
    unsigned applied = 0;
    if (url == file_conf.db_url && file_conf.db_password_file[0]) {
        /* the configuration's password file, merged as meetlited merges it */
        char path[4096];
        secret_path(file_conf.db_password_file, path, sizeof path);
        if (read_token_file(path, pw, sizeof pw) < 0)
            return EXIT_USAGE;
        dc.url = ml_xstrdup(url);
        dc.password = pw;
        if (db_conninfo_add_password(&dc, err, sizeof err) < 0) {
            ml_wipe(pw, sizeof pw);
            free(dc.url);
            fprintf(stderr, "meetlite-admin migrate: %s\n", err);
            return EXIT_USAGE;
        }
        ml_wipe(pw, sizeof pw);
        url = dc.url;
    }
    int rc = db_migrate(url, d, &applied, err, sizeof err);
    if (dc.url) {
        ml_wipe(dc.url, strlen(dc.url));
        free(dc.url);
    }
    if (rc < 0) {
        fprintf(stderr, "meetlite-admin migrate: %s\n", err);
        return EXIT_API;
    }
    if (json_out)
        printf("{\"applied\": %u, \"directory\": \"%s\"}\n", applied, d);
    else
        printf("database schema up to date (%u migration%s applied from %s)\n", applied,
               applied == 1 ? "" : "s", d);
    return 0;
}

/* ------------------------------------------------------------------ main */

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    bool api; /* talks to the admin API */
};

static const struct command commands[] = {
    {"stats", cmd_stats, true},
    {"metrics", cmd_metrics, true},
    {"health", cmd_health, true},
    {"ready", cmd_ready, true},
    {"users", cmd_users, true},
    {"credential", cmd_credential, true},
    {"allocations", cmd_list_allocations, true},
    {"close", cmd_close, true},
    {"secrets", cmd_secrets, true},
    {"drain", cmd_drain, true},
    {"log-level", cmd_log_level, true},
    {"tls-reload", cmd_tls_reload, true},
    {"usage", cmd_usage, true},
    {"webhooks", cmd_webhooks, true},
    {"kb", cmd_kb, true},
    {"migrate", cmd_migrate, false},
    {NULL, NULL, false},
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: meetlite-admin [OPTIONS] COMMAND [ARGS]\n"
            "The command line of meetlited's admin API (see meetlite-admin(1)).\n\n"
            "Options:\n"
            "  -c, --config FILE      meetlited's configuration: admin.listen, admin.token (or\n"
            "                         admin.token-file),\n"
            "                         admin.tls-cert, database.url are taken from it\n"
            "  -u, --url URL          the admin API (default: admin.listen of --config, or\n"
            "                         $MEETLITE_ADMIN_URL, or http://127.0.0.1:8081)\n"
            "  -T, --token-file FILE  read the bearer token from FILE ('-': standard input)\n"
            "      --token TOKEN      the token itself (visible to ps: prefer --token-file,\n"
            "                         $MEETLITE_ADMIN_TOKEN or --config)\n"
            "      --cacert FILE      CA certificate(s) to check an https admin API with\n"
            "  -k, --insecure         https without checking the certificate\n"
            "  -j, --json             print the API's JSON instead of tables\n"
            "      --timeout SECONDS  give up after this long (default 10)\n"
            "  -V, --version          print the version and exit\n"
            "  -h, --help             print this help and exit\n\n"
            "Commands:\n"
            "  stats [--top N]                 process, relay, control plane, top meetings\n"
            "  metrics                         the Prometheus text of /metrics\n"
            "  health | ready                  /healthz and /readyz (exit 0 when 200)\n"
            "  users [list]                    TURN users kept in PostgreSQL\n"
            "  users add NAME [--password-file FILE|-]   (no file: a password is made up)\n"
            "  users delete NAME               also closes the user's allocations\n"
            "  credential ID [--ttl SECONDS]   a TURN REST credential for any id\n"
            "  allocations [--meeting M] [--participant P] [--user U] [--client ADDR]\n"
            "              [--id N] [--limit N]   live allocations\n"
            "  close [--meeting M] [--participant P] [--user U] [--client ADDR] [--id N]\n"
            "  secrets [list]                  TURN REST shared secrets kept in PostgreSQL\n"
            "  secrets add [--secret-file FILE|-]   (no file: a secret is made up)\n"
            "  secrets retire ID\n"
            "  drain [on|off]                  refuse new allocations and joins, or stop\n"
            "  log-level [LEVEL]               error, warn, notice, info or debug\n"
            "  tls-reload                      read the TLS certificates and keys of every\n"
            "                                  listener again (turn, control, admin)\n"
            "  usage MEETING                   relay usage of a meeting (id or join code)\n"
            "  webhooks [list] [--status S] [--type T] [--since TIME] [--before SEQ]\n"
            "           [--limit N]            queued webhook events, newest first\n"
            "  webhooks show ID                one event with its payload\n"
            "  webhooks replay ID              send an event again (same id)\n"
            "  webhooks replay-failed [--since TIME]   send every failed event again\n"
            "  kb [list]                       the help assistant's articles\n"
            "  kb show SLUG                    one article's Markdown\n"
            "  kb add FILE [--starter]         add or replace an article file (kb/README.md)\n"
            "  kb import DIR [--starter]       every *.md below DIR; --starter: never replace\n"
            "                                  an article an operator wrote or edited\n"
            "  kb rm SLUG                      delete an article\n"
            "  kb gaps [--days N] [--limit N]  questions without a good answer, most asked first\n"
            "  migrate [--database-url URL] [--migrations-dir DIR]\n"
            "                                  apply the schema migrations (no daemon needed)\n\n"
            "Exit status: 0 success, 1 the API refused, 2 bad usage, 3 no answer.\n");
}

int main(int argc, char **argv)
{
    enum { OPT_TOKEN = 256, OPT_CACERT, OPT_TIMEOUT };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"url", required_argument, NULL, 'u'},
        {"token-file", required_argument, NULL, 'T'},
        {"token", required_argument, NULL, OPT_TOKEN},
        {"cacert", required_argument, NULL, OPT_CACERT},
        {"insecure", no_argument, NULL, 'k'},
        {"json", no_argument, NULL, 'j'},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *url = getenv("MEETLITE_ADMIN_URL"), *token_file = NULL;
    const char *token = getenv("MEETLITE_ADMIN_TOKEN");
    long long timeout = 10;
    int c;
    conn.timeout_s = 10;
    while ((c = getopt_long(argc, argv, "+c:u:T:kjVh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'u':
            url = optarg;
            break;
        case 'T':
            token_file = optarg;
            break;
        case OPT_TOKEN:
            token = optarg;
            break;
        case OPT_CACERT:
            conn.cacert = optarg;
            break;
        case 'k':
            conn.insecure = true;
            break;
        case 'j':
            json_out = true;
            break;
        case OPT_TIMEOUT:
            if (ml_parse_ll(optarg, 1, 3600, &timeout) < 0) {
                fprintf(stderr, "meetlite-admin: --timeout takes 1 to 3600 seconds\n");
                return EXIT_USAGE;
            }
            break;
        case 'V':
            printf("meetlite-admin %s\n", PACKAGE_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "Try 'meetlite-admin --help'.\n");
            return EXIT_USAGE;
        }
    }
    conn.timeout_s = (int)timeout;
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const struct command *cmd = commands;
    while (cmd->name && strcmp(cmd->name, argv[optind]))
        cmd++;
    if (!cmd->name) {
        fprintf(stderr, "meetlite-admin: unknown command \"%s\"; try 'meetlite-admin --help'\n",
                argv[optind]);
        return EXIT_USAGE;
    }
    if (config) {
        int rc = ini_parse(config, conf_line, &file_conf);
        if (rc != 0) {
            fprintf(stderr, "meetlite-admin: %s: %s\n", config,
                    rc < 0 ? "cannot be read" : "syntax error");
            return EXIT_USAGE;
        }
    }
    if (cmd->api) {
        char from_conf[200];
        if (!url && file_conf.listen[0]) {
            /* a wildcard listener is reached on loopback */
            const char *l = file_conf.listen;
            if (!strncmp(l, "0.0.0.0:", 8))
                ml_snprintf(from_conf, sizeof from_conf, "%s://127.0.0.1:%s",
                            file_conf.tls ? "https" : "http", l + 8);
            else if (!strncmp(l, "[::]:", 5))
                ml_snprintf(from_conf, sizeof from_conf, "%s://[::1]:%s",
                            file_conf.tls ? "https" : "http", l + 5);
            else
                ml_snprintf(from_conf, sizeof from_conf, "%s://%s",
                            file_conf.tls ? "https" : "http", l);
            url = from_conf;
        }
        if (cli_url_parse(url ? url : "http://127.0.0.1:8081", &conn) < 0) {
            fprintf(stderr, "meetlite-admin: bad URL %s\n", url);
            return EXIT_USAGE;
        }
        if (token_file) {
            if (read_token_file(token_file, token_buf, sizeof token_buf) < 0)
                return EXIT_USAGE;
            token = token_buf;
        } else if (!token && file_conf.token[0]) {
            token = file_conf.token;
        } else if (!token && file_conf.token_file[0]) {
            char path[4096];
            secret_path(file_conf.token_file, path, sizeof path);
            if (read_token_file(path, token_buf, sizeof token_buf) < 0)
                return EXIT_USAGE;
            token = token_buf;
        }
        conn.token = token;
    }
    /* each command parses its own options, its name as argv[0]; optind 0 makes GNU getopt
     * start afresh (the options above were parsed in order, "+") */
    int at = optind;
    optind = 0;
    int rc = cmd->fn(argc - at, argv + at);
    ml_wipe(token_buf, sizeof token_buf);
    ml_wipe(file_conf.token, sizeof file_conf.token);
    return rc;
}
