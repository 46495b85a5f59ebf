/* meetlite-admin: the command line of meetlited's admin API (stats, metrics, health, TURN users
 * and secrets, credentials, allocations, drain mode, the log level, the TLS certificate, the
 * help assistant's knowledge base) and the schema migrations. Readable tables by default, the API's
 * JSON with --json. */
#include "config.h"

#include "cli/cli.h"
#include "db/db.h"

#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* A secret for a request or the connection, by meetlited's rules for a -file key
 * (ml_secret_read: the whole file, one line, one trailing newline stripped; for a list the first
 * item), or the first line of standard input for "-". from_conf: name is a configuration file's
 * value, where a relative one names a systemd credential (ml_secret_path); else a command-line
 * path. 0, or -1 with a message on stderr that never quotes the secret. */
static int read_secret_arg(const char *name, bool from_conf, bool list, char *buf, size_t len)
{
    buf[0] = 0;
    if (!strcmp(name, "-")) {
        if (!fgets(buf, (int)len, stdin))
            buf[0] = 0;
        buf[strcspn(buf, "\r\n")] = 0;
    } else {
        char path[4096], err[400];
        char *s = NULL;
        if (!from_conf || name[0] == '/')
            ml_strlcpy(path, name, sizeof path);
        else if (ml_secret_path(name, path, sizeof path, err, sizeof err) < 0) {
            fprintf(stderr, "meetlite-admin: %s\n", err);
            return -1;
        }
        /* a list (admin.token-file) may hold more than the first item needs */
        s = ml_secret_read(path, list ? 65536 : (long long)len - 1, list, NULL, err, sizeof err);
        if (!s) {
            fprintf(stderr, "meetlite-admin: %s\n", err);
            return -1;
        }
        if (list)
            s[strcspn(s, ",")] = 0;
        ml_strlcpy(buf, s, len);
        ml_wipe(s, strlen(s));
        free(s);
    }
    if (!buf[0]) {
        fprintf(stderr, "meetlite-admin: %s is empty\n", name);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ stats */

static void print_stats(json_t *j)
{
    char a[48], b[48], c[48];
    cli_duration(cli_jint(j, "process.uptime_s"), a, sizeof a);
    cli_bytes((uint64_t)cli_jint(j, "process.rss_bytes"), b, sizeof b);
    printf("meetlited %s, pid %lld, up %s, %lld threads, RSS %s, %lld/%lld fds\n",
           cli_jstr(j, "process.version") ? cli_jstr(j, "process.version") : "?",
           cli_jint(j, "process.pid"), a, cli_jint(j, "process.threads"), b,
           cli_jint(j, "process.open_fds"), cli_jint(j, "process.max_fds"));
    json_t *t = cli_jget(j, "turn");
    printf("relay      allocations %lld (udp %lld, tcp %lld, tls %lld; ipv4 %lld, ipv6 %lld), "
           "permissions %lld, channels %lld%s\n",
           cli_jint(t, "allocations.total"), cli_jint(t, "allocations.by_transport.udp"),
           cli_jint(t, "allocations.by_transport.tcp"), cli_jint(t, "allocations.by_transport.tls"),
           cli_jint(t, "allocations.by_family.ipv4"), cli_jint(t, "allocations.by_family.ipv6"),
           cli_jint(t, "permissions"), cli_jint(t, "channels"),
           json_is_true(cli_jget(t, "draining")) ? ", DRAINING" : "");
    cli_bytes((uint64_t)cli_jint(t, "relayed.to_peers.bytes"), a, sizeof a);
    cli_bytes((uint64_t)cli_jint(t, "relayed.to_clients.bytes"), b, sizeof b);
    printf("           relayed to peers %lld packets (%s), to clients %lld packets (%s); "
           "%lld allocations made\n",
           cli_jint(t, "relayed.to_peers.packets"), a, cli_jint(t, "relayed.to_clients.packets"), b,
           cli_jint(t, "allocations.created"));
    printf("           dropped: no permission %lld, no channel %lld, slow client %lld, "
           "over the 401 budget %lld, peer denied %lld\n",
           cli_jint(t, "dropped.no_permission"), cli_jint(t, "dropped.no_channel"),
           cli_jint(t, "dropped.backpressure"), cli_jint(t, "dropped.unauthenticated_over_budget"),
           cli_jint(t, "dropped.peer_denied"));
    printf("           errors:");
    const char *key;
    json_t *v;
    int any = 0;
    json_object_foreach(cli_jget(t, "error_responses"), key, v)
    {
        if (json_integer_value(v)) {
            printf(" %s %lld", key, (long long)json_integer_value(v));
            any = 1;
        }
    }
    printf("%s\n", any ? "" : " none");
    printf("           runtime credentials: %lld secrets, %lld users%s\n",
           cli_jint(t, "runtime_credentials.secrets"), cli_jint(t, "runtime_credentials.users"),
           cli_jget(t, "database_credentials")
               ? (json_is_true(cli_jget(t, "database_credentials.up"))
                      ? " (in sync with PostgreSQL)"
                      : " (PostgreSQL unreachable)")
               : "");
    json_t *u = cli_jget(j, "net.udp");
    printf("udp        rx %lld packets, tx %lld packets, recvmmsg %lld calls (batches:",
           cli_jint(u, "rx_packets"), cli_jint(u, "tx_packets"), cli_jint(u, "recvmmsg_calls"));
    json_object_foreach(cli_jget(u, "recvmmsg_batch_sizes"), key, v)
        printf(" %s:%lld", key, (long long)json_integer_value(v));
    printf(")\n");
    printf("streams    %lld open, %lld accepted, %lld refused\n", cli_jint(j, "net.streams.open"),
           cli_jint(j, "net.streams.accepted"), cli_jint(j, "net.streams.refused"));
    json_t *cp = cli_jget(j, "control");
    if (json_is_true(cli_jget(cp, "enabled"))) {
        json_t *m = cli_jget(cp, "meetings_active");
        if (json_is_integer(m))
            printf("control    %lld active meetings, %lld participants, %lld WebSockets\n",
                   cli_jint(cp, "meetings_active"), cli_jint(cp, "participants_present"),
                   cli_jint(cp, "websocket_connections"));
        else
            printf("control    meetings unknown (database unreachable), %lld WebSockets\n",
                   cli_jint(cp, "websocket_connections"));
        printf("           HTTP answers:");
        json_object_foreach(cli_jget(cp, "http_responses"), key, v)
            printf(" %s:%lld", key, (long long)json_integer_value(v));
        printf("\n");
    } else {
        printf("control    off (TURN-only node)\n");
    }
    for (int i = 0; i < 2; i++) {
        json_t *p = cli_jget(j, i ? "admin.database" : "control.database");
        if (!json_is_object(p))
            continue;
        json_t *mr = cli_jget(p, "mean_run_ms");
        ml_snprintf(c, sizeof c, "%.2f ms", json_is_number(mr) ? json_number_value(mr) : 0.0);
        printf("database   %s pool %lld/%lld up, %lld queued, %lld jobs (%lld failed, %lld "
               "unavailable), mean %s\n",
               i ? "admin" : "api", cli_jint(p, "up"), cli_jint(p, "size"), cli_jint(p, "queued"),
               cli_jint(p, "jobs"), cli_jint(p, "failed"), cli_jint(p, "unavailable"), c);
    }
    json_t *top = cli_jget(j, "allocations_per_meeting.top");
    if (json_array_size(top)) {
        printf("\nallocations per meeting (top %lld of %lld):\n",
               cli_jint(j, "allocations_per_meeting.limit"),
               cli_jint(j, "allocations_per_meeting.meetings_with_allocations"));
        static const char *const heads[] = {"TAG", "ALLOCATIONS", "MEETING", "CODE", "TITLE"};
        struct cli_table tb;
        cli_table_init(&tb, 5, heads);
        size_t i;
        json_array_foreach(top, i, v)
        {
            char n[24];
            ml_snprintf(n, sizeof n, "%lld", cli_jint(v, "allocations"));
            const char *row[] = {cli_jstr(v, "tag"), n, cli_jstr(v, "meeting_id"),
                                 cli_jstr(v, "code"), cli_jstr(v, "title")};
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
            return CLI_EXIT_USAGE;
        }
        ml_snprintf(path, sizeof path, "/stats?top=%lld", n);
    }
    json_t *j = cli_call("GET", path, NULL, &rc);
    if (j && !cli_json_out)
        print_stats(j);
    json_decref(j);
    return rc;
}

static int cmd_metrics(int argc, char **argv)
{
    struct cli_resp r;
    ML_UNUSED(argc);
    ML_UNUSED(argv);
    if (cli_http(&cli_server, "GET", "/metrics", NULL, &r) < 0) {
        fprintf(stderr, "meetlite-admin: %s:%d: %s\n", cli_server.host, cli_server.port, r.err);
        cli_resp_free(&r);
        return CLI_EXIT_CONN;
    }
    int rc = r.status == 200 ? 0 : CLI_EXIT_API;
    fwrite(r.body ? r.body : "", 1, r.len, rc ? stderr : stdout);
    cli_resp_free(&r);
    return rc;
}

/* /healthz and /readyz: the answer's status decides the exit code. */
static int probe(const char *path)
{
    struct cli_resp r;
    if (cli_http(&cli_server, "GET", path, NULL, &r) < 0) {
        fprintf(stderr, "meetlite-admin: %s:%d: %s\n", cli_server.host, cli_server.port, r.err);
        cli_resp_free(&r);
        return CLI_EXIT_CONN;
    }
    if (cli_json_out)
        printf("%s\n", r.body ? r.body : "");
    else
        printf("%s%s%s%s%s\n", cli_jstr(r.json, "status") ? cli_jstr(r.json, "status") : "?",
               cli_jstr(r.json, "database") ? ", database " : "",
               cli_jstr(r.json, "database") ? cli_jstr(r.json, "database") : "",
               json_is_boolean(cli_jget(r.json, "draining")) ? ", draining " : "",
               json_is_boolean(cli_jget(r.json, "draining"))
                   ? (json_is_true(cli_jget(r.json, "draining")) ? "yes" : "no")
                   : "");
    int rc = r.status == 200 ? 0 : CLI_EXIT_API;
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
        json_t *j = cli_call("GET", "/v1/turn/users", NULL, &rc);
        if (j && !cli_json_out) {
            static const char *const heads[] = {"NAME", "CREATED"};
            struct cli_table t;
            cli_table_init(&t, 2, heads);
            size_t i;
            json_t *u;
            json_array_foreach(cli_jget(j, "users"), i, u)
            {
                char when[40];
                cli_time(cli_jint(u, "created_at"), when, sizeof when);
                const char *row[] = {cli_jstr(u, "name"), when};
                cli_table_row(&t, row);
            }
            printf("realm %s: %lld user%s\n", cli_jstr(j, "realm") ? cli_jstr(j, "realm") : "?",
                   cli_jint(j, "count"), cli_jint(j, "count") == 1 ? "" : "s");
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
                return CLI_EXIT_USAGE;
            pwfile = optarg;
        }
        if (optind != argc - 1) {
            fprintf(stderr, "usage: meetlite-admin users add NAME [--password-file FILE|-]\n");
            return CLI_EXIT_USAGE;
        }
        char pw[260];
        bool generated = !pwfile;
        if (pwfile) {
            if (read_secret_arg(pwfile, false, false, pw, sizeof pw) < 0)
                return CLI_EXIT_USAGE;
        } else {
            random_password(pw, sizeof pw);
        }
        json_t *j = cli_call("POST", "/v1/turn/users",
                             json_pack("{s:s,s:s}", "name", argv[optind], "password", pw), &rc);
        if (j && !cli_json_out) {
            printf("user %s created in realm %s\n", cli_jstr(j, "name"), cli_jstr(j, "realm"));
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
            return CLI_EXIT_USAGE;
        }
        char name[400], path[480];
        cli_url_encode(argv[2], name, sizeof name);
        ml_snprintf(path, sizeof path, "/v1/turn/users/%s", name);
        json_t *j = cli_call("DELETE", path, NULL, &rc);
        if (j && !cli_json_out)
            printf("user %s deleted; %lld allocation%s closed\n", argv[2],
                   cli_jint(j, "allocations_closed"),
                   cli_jint(j, "allocations_closed") == 1 ? "" : "s");
        json_decref(j);
        return rc;
    }
    fprintf(stderr, "usage: meetlite-admin users [list | add NAME | delete NAME]\n");
    return CLI_EXIT_USAGE;
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
            return CLI_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "usage: meetlite-admin credential ID [--ttl SECONDS]\n");
        return CLI_EXIT_USAGE;
    }
    json_t *j = cli_call("POST", "/v1/turn/credentials",
                         json_pack("{s:s,s:I}", "id", argv[optind], "ttl", (json_int_t)ttl), &rc);
    if (j && !cli_json_out) {
        char when[40];
        cli_time(cli_jint(j, "expires_at"), when, sizeof when);
        printf("username: %s\npassword: %s\nrealm:    %s\nexpires:  %s (in %lld s)\n",
               cli_jstr(j, "username"), cli_jstr(j, "password"), cli_jstr(j, "realm"), when,
               cli_jint(j, "ttl"));
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
    json_array_foreach(cli_jget(j, "allocations"), i, a)
    {
        char rel[160] = "", exp[24], perm[12], chan[12], tp[48], tc[48], b[24];
        size_t k;
        json_t *r;
        json_array_foreach(cli_jget(a, "relayed"), k, r)
        {
            size_t n = strlen(rel);
            ml_snprintf(rel + n, sizeof rel - n, "%s%s", k ? " " : "", json_string_value(r));
        }
        cli_duration(cli_jint(a, "expires_at") - now, exp, sizeof exp);
        ml_snprintf(perm, sizeof perm, "%lld", cli_jint(a, "permissions"));
        ml_snprintf(chan, sizeof chan, "%lld", cli_jint(a, "channels"));
        cli_bytes((uint64_t)cli_jint(a, "usage.bytes_to_peers"), b, sizeof b);
        ml_snprintf(tp, sizeof tp, "%lld/%s", cli_jint(a, "usage.packets_to_peers"), b);
        cli_bytes((uint64_t)cli_jint(a, "usage.bytes_to_client"), b, sizeof b);
        ml_snprintf(tc, sizeof tc, "%lld/%s", cli_jint(a, "usage.packets_to_client"), b);
        const char *who =
            cli_jstr(a, "participant") ? cli_jstr(a, "participant") : cli_jstr(a, "credential_id");
        const char *row[] = {cli_jstr(a, "id"),
                             cli_jstr(a, "transport"),
                             cli_jstr(a, "client"),
                             rel,
                             cli_jstr(a, "meeting_tag"),
                             who,
                             exp,
                             perm,
                             chan,
                             tp,
                             tc};
        cli_table_row(&t, row);
    }
    printf("%lld allocation%s%s\n", cli_jint(j, "total"), cli_jint(j, "total") == 1 ? "" : "s",
           json_is_true(cli_jget(j, "truncated"))
               ? " (list truncated: --limit or a narrower filter)"
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
            return CLI_EXIT_USAGE;
        }
        if (c != 'l')
            nfilters++;
        cli_url_encode(optarg, v, sizeof v);
        off += ml_snprintf(path + off, sizeof path - off, "%c%s=%s", sep, filter_name(c), v);
        sep = '&';
        if (c == F_ID) {
            long long id;
            if (ml_parse_ll(optarg, 1, INT64_MAX, &id) < 0) {
                fprintf(stderr, "meetlite-admin: --id takes an allocation id\n");
                json_decref(body);
                return CLI_EXIT_USAGE;
            }
            json_object_set_new(body, "id", json_integer(id));
        } else {
            json_object_set_new(body, filter_name(c), json_string(optarg));
        }
    }
    if (optind < argc) {
        fprintf(stderr, "meetlite-admin: unexpected argument %s\n", argv[optind]);
        json_decref(body);
        return CLI_EXIT_USAGE;
    }
    if (!close) {
        json_decref(body);
        json_t *j = cli_call("GET", path, NULL, &rc);
        if (j && !cli_json_out)
            print_allocations(j);
        json_decref(j);
        return rc;
    }
    if (!nfilters) {
        fprintf(stderr, "usage: meetlite-admin close --id N | --meeting M | --participant P | "
                        "--user U | --client ADDR (one or more)\n");
        json_decref(body);
        return CLI_EXIT_USAGE;
    }
    json_t *j = cli_call("POST", "/v1/turn/allocations/close", body, &rc);
    if (j && !cli_json_out)
        printf("%lld allocation%s closed\n", cli_jint(j, "closed"),
               cli_jint(j, "closed") == 1 ? "" : "s");
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
        json_t *j = cli_call("GET", "/v1/turn/secrets", NULL, &rc);
        if (j && !cli_json_out) {
            static const char *const heads[] = {"ID", "CREATED", "FINGERPRINT", "SIGNING"};
            struct cli_table t;
            cli_table_init(&t, 4, heads);
            size_t i;
            json_t *s;
            json_array_foreach(cli_jget(j, "secrets"), i, s)
            {
                char id[24], when[40];
                ml_snprintf(id, sizeof id, "%lld", cli_jint(s, "id"));
                cli_time(cli_jint(s, "created_at"), when, sizeof when);
                const char *row[] = {id, when, cli_jstr(s, "fingerprint"),
                                     json_is_true(cli_jget(s, "signing")) ? "yes" : ""};
                cli_table_row(&t, row);
            }
            printf("new credentials are signed with %s%s%s\n",
                   cli_jstr(j, "signing.source") ? cli_jstr(j, "signing.source") : "?",
                   cli_jstr(j, "signing.fingerprint") ? " secret " : "",
                   cli_jstr(j, "signing.fingerprint") ? cli_jstr(j, "signing.fingerprint") : "");
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
                return CLI_EXIT_USAGE;
            file = optarg;
        }
        if (optind != argc) {
            fprintf(stderr, "usage: meetlite-admin secrets add [--secret-file FILE|-]\n");
            return CLI_EXIT_USAGE;
        }
        json_t *body = json_object();
        if (file) {
            char s[260];
            if (read_secret_arg(file, false, false, s, sizeof s) < 0) {
                json_decref(body);
                return CLI_EXIT_USAGE;
            }
            json_object_set_new(body, "secret", json_string(s));
            ml_wipe(s, sizeof s);
        }
        json_t *j = cli_call("POST", "/v1/turn/secrets", body, &rc);
        if (j && !cli_json_out) {
            printf("secret %lld added (fingerprint %s); it signs new credentials from now on\n",
                   cli_jint(j, "id"), cli_jstr(j, "fingerprint"));
            if (cli_jstr(j, "secret"))
                printf("secret: %s\n(shown once)\n", cli_jstr(j, "secret"));
        }
        json_decref(j);
        return rc;
    }
    if (!strcmp(sub, "retire") || !strcmp(sub, "delete")) {
        long long id;
        if (argc != 3 || ml_parse_ll(argv[2], 1, INT64_MAX, &id) < 0) {
            fprintf(stderr, "usage: meetlite-admin secrets retire ID\n");
            return CLI_EXIT_USAGE;
        }
        char path[64];
        ml_snprintf(path, sizeof path, "/v1/turn/secrets/%lld", id);
        json_t *j = cli_call("DELETE", path, NULL, &rc);
        if (j && !cli_json_out)
            printf("secret %lld retired: credentials signed with it are refused from now on "
                   "(allocations made with them run until they end)\n",
                   id);
        json_decref(j);
        return rc;
    }
    fprintf(stderr, "usage: meetlite-admin secrets [list | add | retire ID]\n");
    return CLI_EXIT_USAGE;
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
    json_array_foreach(cli_jget(j, "events"), i, e)
    {
        char seq[24], att[16];
        ml_snprintf(seq, sizeof seq, "%lld", cli_jint(e, "sequence"));
        ml_snprintf(att, sizeof att, "%lld", cli_jint(e, "attempts"));
        const char *err = cli_jstr(e, "last_error");
        const char *row[] = {
            cli_jstr(e, "id"),     seq, cli_jstr(e, "type"), cli_jstr(e, "created_at"),
            cli_jstr(e, "status"), att, err ? err : ""};
        cli_table_row(&t, row);
    }
    if (t.rows)
        cli_table_print(&t, stdout);
    else
        printf("no webhook events\n");
    cli_table_free(&t);
    if (json_is_integer(cli_jget(j, "next_before")))
        printf("more: --before %lld\n", cli_jint(j, "next_before"));
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
                return CLI_EXIT_USAGE;
            }
            vals[p - "stSbl"] = optarg;
        }
        if (optind != argc) {
            fputs(use, stderr);
            return CLI_EXIT_USAGE;
        }
        if (!list) {
            json_t *body = json_object();
            if (vals[2])
                json_object_set_new(body, "since", json_string(vals[2]));
            json_t *j = cli_call("POST", "/v1/webhooks/replay-failed", body, &rc);
            if (j && !cli_json_out)
                printf("%lld failed events queued again\n", cli_jint(j, "replayed"));
            json_decref(j);
            return rc;
        }
        char path[600], enc[200];
        size_t at = ml_strlcpy(path, "/v1/webhooks/events", sizeof path);
        for (size_t i = 0; i < ML_ARRAY_LEN(names); i++) {
            if (!vals[i] || at >= sizeof path)
                continue;
            cli_url_encode(vals[i], enc, sizeof enc);
            at += ml_snprintf(path + at, sizeof path - at, "%c%s=%s", strchr(path, '?') ? '&' : '?',
                              names[i], enc);
        }
        json_t *j = cli_call("GET", path, NULL, &rc);
        if (j && !cli_json_out)
            print_events(j);
        json_decref(j);
        return rc;
    }
    if (!strcmp(sub, "replay") || !strcmp(sub, "show")) {
        if (argc != 3) {
            fputs(use, stderr);
            return CLI_EXIT_USAGE;
        }
        bool replay = !strcmp(sub, "replay");
        char id[200], path[300];
        cli_url_encode(argv[2], id, sizeof id);
        ml_snprintf(path, sizeof path, "/v1/webhooks/events/%s%s", id, replay ? "/replay" : "");
        json_t *j = cli_call(replay ? "POST" : "GET", path, NULL, &rc);
        if (j && !cli_json_out) {
            if (replay) {
                printf("event %s (%s) queued again\n", cli_jstr(j, "id"), cli_jstr(j, "type"));
            } else {
                char *pl = json_dumps(cli_jget(j, "payload"), JSON_INDENT(2));
                printf("event %s #%lld %s, created %s: %s after %lld attempts%s%s\n%s\n",
                       cli_jstr(j, "id"), cli_jint(j, "sequence"), cli_jstr(j, "type"),
                       cli_jstr(j, "created_at"), cli_jstr(j, "status"), cli_jint(j, "attempts"),
                       cli_jstr(j, "last_error") ? "; last error: " : "",
                       cli_jstr(j, "last_error") ? cli_jstr(j, "last_error") : "", pl ? pl : "");
                free(pl);
            }
        }
        json_decref(j);
        return rc;
    }
    fputs(use, stderr);
    return CLI_EXIT_USAGE;
}

/* ------------------------------------------------------------------ the rest */

static int cmd_drain(int argc, char **argv)
{
    int rc;
    json_t *j;
    if (argc == 1) {
        j = cli_call("GET", "/v1/drain", NULL, &rc);
    } else if (argc == 2 && (!strcmp(argv[1], "on") || !strcmp(argv[1], "off"))) {
        j = cli_call("PUT", "/v1/drain", json_pack("{s:b}", "draining", !strcmp(argv[1], "on")),
                     &rc);
    } else {
        fprintf(stderr, "usage: meetlite-admin drain [on|off]\n");
        return CLI_EXIT_USAGE;
    }
    if (j && !cli_json_out)
        printf("draining: %s\n", json_is_true(cli_jget(j, "draining")) ? "yes" : "no");
    json_decref(j);
    return rc;
}

static int cmd_log_level(int argc, char **argv)
{
    int rc;
    json_t *j;
    if (argc == 1)
        j = cli_call("GET", "/v1/log-level", NULL, &rc);
    else if (argc == 2)
        j = cli_call("PUT", "/v1/log-level", json_pack("{s:s}", "level", argv[1]), &rc);
    else {
        fprintf(stderr, "usage: meetlite-admin log-level [error|warn|notice|info|debug]\n");
        return CLI_EXIT_USAGE;
    }
    if (j && !cli_json_out)
        printf("log level: %s\n", cli_jstr(j, "level"));
    json_decref(j);
    return rc;
}

static int cmd_tls_reload(int argc, char **argv)
{
    int rc;
    ML_UNUSED(argv);
    if (argc != 1) {
        fprintf(stderr, "usage: meetlite-admin tls-reload\n");
        return CLI_EXIT_USAGE;
    }
    json_t *j = cli_call("POST", "/v1/tls/reload", NULL, &rc);
    if (j && !cli_json_out)
        printf("TLS certificate reloaded: new connections get it\n");
    json_decref(j);
    return rc;
}

static int cmd_usage(int argc, char **argv)
{
    int rc;
    if (argc != 2) {
        fprintf(stderr, "usage: meetlite-admin usage MEETING (id or join code)\n");
        return CLI_EXIT_USAGE;
    }
    char ref[200], path[260];
    cli_url_encode(argv[1], ref, sizeof ref);
    ml_snprintf(path, sizeof path, "/v1/meetings/%s/usage", ref);
    json_t *j = cli_call("GET", path, NULL, &rc);
    if (j && !cli_json_out) {
        char a[32], b[32];
        cli_bytes((uint64_t)cli_jint(j, "totals.bytes_to_peer"), a, sizeof a);
        cli_bytes((uint64_t)cli_jint(j, "totals.bytes_to_client"), b, sizeof b);
        printf("meeting %s: %lld allocations ended, %lld s, to peers %s, to clients %s\n",
               cli_jstr(j, "meeting_id"), cli_jint(j, "totals.allocations"),
               cli_jint(j, "totals.allocation_seconds"), a, b);
        static const char *const heads[] = {"PARTICIPANT", "NAME",     "ALLOCATIONS",
                                            "SECONDS",     "TO PEERS", "TO CLIENT"};
        struct cli_table t;
        cli_table_init(&t, 6, heads);
        size_t i;
        json_t *p;
        json_array_foreach(cli_jget(j, "participants"), i, p)
        {
            char n[24], s[24];
            ml_snprintf(n, sizeof n, "%lld", cli_jint(p, "allocations"));
            ml_snprintf(s, sizeof s, "%lld", cli_jint(p, "allocation_seconds"));
            cli_bytes((uint64_t)cli_jint(p, "bytes_to_peer"), a, sizeof a);
            cli_bytes((uint64_t)cli_jint(p, "bytes_to_client"), b, sizeof b);
            const char *row[] = {
                cli_jstr(p, "participant_id"), cli_jstr(p, "display_name"), n, s, a, b};
            cli_table_row(&t, row);
        }
        if (t.rows)
            cli_table_print(&t, stdout);
        cli_table_free(&t);
    }
    json_decref(j);
    return rc;
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
            return CLI_EXIT_USAGE;
    }
    if (!url || !*url) {
        fprintf(stderr, "meetlite-admin migrate: no database: give --database-url, -c with "
                        "database.url, or MEETLITE_DATABASE_URL\n");
        return CLI_EXIT_USAGE;
    }
    struct db_config dc;
    memset(&dc, 0, sizeof dc);
    dc.migrations_dir = (char *)dir;
    const char *d = db_migrations_dir(&dc);
    char err[512], pw[1024];
    unsigned applied = 0;
    if (url == file_conf.db_url && file_conf.db_password_file[0]) {
        /* the configuration's password file, merged as meetlited merges it */
        if (read_secret_arg(file_conf.db_password_file, true, false, pw, sizeof pw) < 0)
            return CLI_EXIT_USAGE;
        dc.url = ml_xstrdup(url);
        dc.password = pw;
        if (db_conninfo_add_password(&dc, err, sizeof err) < 0) {
            ml_wipe(pw, sizeof pw);
            free(dc.url);
            fprintf(stderr, "meetlite-admin migrate: %s\n", err);
            return CLI_EXIT_USAGE;
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
        return CLI_EXIT_API;
    }
    if (cli_json_out)
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
    {"kb", cli_cmd_kb, true},
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
    cli_server.timeout_s = 10;
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
            cli_server.cacert = optarg;
            break;
        case 'k':
            cli_server.insecure = true;
            break;
        case 'j':
            cli_json_out = true;
            break;
        case OPT_TIMEOUT:
            if (ml_parse_ll(optarg, 1, 3600, &timeout) < 0) {
                fprintf(stderr, "meetlite-admin: --timeout takes 1 to 3600 seconds\n");
                return CLI_EXIT_USAGE;
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
            return CLI_EXIT_USAGE;
        }
    }
    cli_server.timeout_s = (int)timeout;
    if (optind >= argc) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const struct command *cmd = commands;
    while (cmd->name && strcmp(cmd->name, argv[optind]))
        cmd++;
    if (!cmd->name) {
        fprintf(stderr, "meetlite-admin: unknown command \"%s\"; try 'meetlite-admin --help'\n",
                argv[optind]);
        return CLI_EXIT_USAGE;
    }
    if (config) {
        int rc = ini_parse(config, conf_line, &file_conf);
        if (rc != 0) {
            fprintf(stderr, "meetlite-admin: %s: %s\n", config,
                    rc < 0 ? "cannot be read" : "syntax error");
            return CLI_EXIT_USAGE;
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
        if (cli_url_parse(url ? url : "http://127.0.0.1:8081", &cli_server) < 0) {
            fprintf(stderr, "meetlite-admin: bad URL %s\n", url);
            return CLI_EXIT_USAGE;
        }
        if (token_file) {
            if (read_secret_arg(token_file, false, true, token_buf, sizeof token_buf) < 0)
                return CLI_EXIT_USAGE;
            token = token_buf;
        } else if (!token && file_conf.token[0]) {
            token = file_conf.token;
        } else if (!token && file_conf.token_file[0]) {
            if (read_secret_arg(file_conf.token_file, true, true, token_buf, sizeof token_buf) < 0)
                return CLI_EXIT_USAGE;
            token = token_buf;
        }
        cli_server.token = token;
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
