/* The configuration of meetlited: the [daemon] and [log] sections and the list of every
 * subsystem's section. Each subsystem's keys live beside that subsystem. */
#include "config.h"

#include "app/app.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define APP_PER_USER_MIN 20      /* the derived quota is never below the former fixed one */
#define APP_PER_USER_MAX 1000000 /* the key's own maximum */

static const char *const log_levels[] = {"error", "warn", "notice", "info", "debug", NULL};
static const char *const log_targets[] = {"stderr", "syslog", NULL};
static const char *const log_formats[] = {"text", "json", NULL};

static const struct ml_cfg_key daemon_keys[] = {
    {"max-open-files", ML_CFG_INT, "1048576", 0, 1LL << 30, 0,
     ML_CFG_FIELD(struct app_daemon_config, max_open_files), NULL, NULL,
     "Raise the open-file limit (RLIMIT_NOFILE) to this at start, up to the hard limit "
     "(or beyond it when running as root). Each allocation holds one socket; each TCP/TLS "
     "client one more. 0 leaves the limit alone."},
    {"user", ML_CFG_STR, "", 0, 64, 0, ML_CFG_FIELD(struct app_daemon_config, user), NULL, NULL,
     "Started as root: become this user once every listener is bound (port 443 needs root or "
     "CAP_NET_BIND_SERVICE only to bind). Its supplementary groups are taken too. Files read "
     "later (TLS certificates on SIGHUP, the JWKS) must be readable by it. Empty: stay as "
     "started (root is warned about)."},
    {"group", ML_CFG_STR, "", 0, 64, 0, ML_CFG_FIELD(struct app_daemon_config, group), NULL, NULL,
     "The group to become with daemon.user. Empty: the user's primary group."},
    {NULL, 0, NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};

static const struct ml_cfg_key log_keys[] = {
    {"level", ML_CFG_ENUM, "info", 0, 0, ML_CFG_RELOAD, ML_CFG_FIELD(struct app_log_config, level),
     log_levels, NULL,
     "Least severe level logged: error, warn, notice, info or debug. Changes on SIGHUP, and at "
     "run time through the admin API (meetlite-admin log-level debug) until the next reload."},
    {"target", ML_CFG_ENUM, "stderr", 0, 0, 0, ML_CFG_FIELD(struct app_log_config, target),
     log_targets, NULL,
     "stderr (for systemd and containers: the journal adds its own time stamps) or syslog "
     "(facility daemon)."},
    {"format", ML_CFG_ENUM, "text", 0, 0, ML_CFG_RELOAD,
     ML_CFG_FIELD(struct app_log_config, format), log_formats, NULL,
     "Lines on stderr: text, or json (one object a line: ts, level, pid, thread, subsystem, msg, "
     "and for the access log method, path, status, duration_us, peer, request_id, user). When "
     "stderr is the systemd journal (JOURNAL_STREAM), either starts with the journal's <N> "
     "priority prefix."},
    {NULL, 0, NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};

static const struct ml_cfg_section sec_daemon = {"daemon", daemon_keys,
                                                 offsetof(struct app_config, daemon)};
static const struct ml_cfg_section sec_log = {"log", log_keys, offsetof(struct app_config, log)};
static const struct ml_cfg_section sec_net = {"net", net_cfg_keys,
                                              offsetof(struct app_config, net)};
static const struct ml_cfg_section sec_turn = {"turn", turn_cfg_keys,
                                               offsetof(struct app_config, turn)};

static const struct ml_cfg_section sec_database = {"database", db_cfg_keys,
                                                   offsetof(struct app_config, database)};
static const struct ml_cfg_section sec_control = {"control", cp_cfg_keys,
                                                  offsetof(struct app_config, control)};
/* the help assistant's keys, kept in the control plane's configuration */
static const struct ml_cfg_section sec_assistant = {"assistant", cp_assistant_cfg_keys,
                                                    offsetof(struct app_config, control.assistant)};
static const struct ml_cfg_section sec_auth = {"auth", cp_auth_cfg_keys,
                                               offsetof(struct app_config, auth)};
static const struct ml_cfg_section sec_signaling = {"signaling", sig_cfg_keys,
                                                    offsetof(struct app_config, signaling)};
static const struct ml_cfg_section sec_usage = {"usage", app_usage_cfg_keys,
                                                offsetof(struct app_config, usage)};
static const struct ml_cfg_section sec_admin = {"admin", adm_cfg_keys,
                                                offsetof(struct app_config, admin)};
static const struct ml_cfg_section sec_webhooks = {"webhooks", wh_cfg_keys,
                                                   offsetof(struct app_config, webhooks)};
static const struct ml_cfg_section sec_fleet = {"fleet", app_fleet_cfg_keys,
                                                offsetof(struct app_config, fleet)};

const struct ml_cfg_section *const app_cfg_sections[] = {
    &sec_daemon, &sec_log,   &sec_net,       &sec_turn,     &sec_database,  &sec_control, &sec_auth,
    &sec_usage,  &sec_admin, &sec_signaling, &sec_webhooks, &sec_assistant, &sec_fleet,   NULL,
};

/* ---------------------------------------------------------------- listeners that collide */

/* One socket start would bind: what --check-config must see as start sees it. */
struct app_sock {
    const char *key; /* "turn.listen", "control.listen", "admin.listen" */
    char what[96];   /* as configured */
    bool udp;
    bool dual; /* an lws listener on [::]: IPv4 too (lws leaves IPV6_V6ONLY to the system) */
    struct sockaddr_storage addr;
};

struct sock_list {
    struct app_sock v[64];
    size_t n;
};

static bool is_wildcard(const struct sockaddr *sa)
{
    char ip[ML_ADDR_STRLEN];
    ml_ip_str(sa, ip, sizeof ip);
    return !strcmp(ip, "0.0.0.0") || !strcmp(ip, "::");
}

/* Two sockets of one protocol and family on one port collide when their addresses are equal or
 * one is a wildcard: bind() refuses the second (lws, the admin API), or, for the relay's
 * SO_REUSEPORT listeners, the kernel would split one port's clients between two of them. IPv6
 * sockets are IPV6_V6ONLY, so the families never collide. Port 0 (any free port) never does. */
static bool collide(const struct app_sock *a, const struct app_sock *b)
{
    const struct sockaddr *x = (const struct sockaddr *)&a->addr;
    const struct sockaddr *y = (const struct sockaddr *)&b->addr;
    if (a->udp != b->udp || ml_addr_port(x) == 0 || ml_addr_port(x) != ml_addr_port(y))
        return false;
    if (x->sa_family != y->sa_family) /* only a dual-stack [::] reaches the other family */
        return (a->dual && x->sa_family == AF_INET6) || (b->dual && y->sa_family == AF_INET6);
    return ml_addr_ip_equal(x, y) || is_wildcard(x) || is_wildcard(y);
}

static void add_sock(struct sock_list *l, const char *key, const char *what, bool udp,
                     const struct sockaddr_storage *addr)
{
    if (l->n == ML_ARRAY_LEN(l->v))
        return; /* more listeners than anyone configures: the rest is left to bind() */
    struct app_sock *s = &l->v[l->n++];
    s->key = key;
    ml_strlcpy(s->what, what, sizeof s->what);
    s->udp = udp;
    s->addr = *addr;
    s->dual = strcmp(key, "turn.listen") != 0 && addr->ss_family == AF_INET6 &&
              is_wildcard((const struct sockaddr *)addr);
}

bool app_control_on_shared(const struct app_config *cfg)
{
    struct net_endpoint *eps = NULL;
    size_t n = 0;
    char err[128];
    struct sockaddr_storage cl;
    socklen_t cll;
    bool found = false;
    if (!cfg->control.listen || ml_addr_parse(cfg->control.listen, 0, &cl, &cll) < 0 ||
        net_endpoints_parse(cfg->turn.listen, &eps, &n, err, sizeof err) < 0)
        return false;
    for (size_t i = 0; i < n && !found; i++)
        found = eps[i].transport == NET_SHARED &&
                ml_addr_equal((const struct sockaddr *)&eps[i].addr, (struct sockaddr *)&cl);
    free(eps);
    return found;
}

/* Every listener conflict that start would hit ("address in use"), or that it would not notice
 * (two SO_REUSEPORT listeners of the relay on one port). 0, or -1 with err filled. */
static int check_listeners(const struct app_config *cfg, char *err, size_t errlen)
{
    struct sock_list l = {.n = 0};
    struct net_endpoint *eps = NULL;
    size_t n = 0;
    char a[ML_ADDR_STRLEN];
    struct sockaddr_storage ss;
    socklen_t sl;
    bool shared = false;
    if (net_endpoints_parse(cfg->turn.listen, &eps, &n, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char what[96];
        ml_snprintf(what, sizeof what, "%s://%s", net_transport_name(eps[i].transport),
                    ml_addr_str((const struct sockaddr *)&eps[i].addr, a, sizeof a));
        add_sock(&l, "turn.listen", what, eps[i].transport == NET_UDP, &eps[i].addr);
        shared |= eps[i].transport == NET_SHARED;
    }
    free(eps);
    if (cfg->control.listen && !app_control_on_shared(cfg) &&
        ml_addr_parse(cfg->control.listen, 0, &ss, &sl) == 0)
        add_sock(&l, "control.listen", cfg->control.listen, false, &ss);
    if (cfg->admin.token && cfg->admin.listen && ml_addr_parse(cfg->admin.listen, 0, &ss, &sl) == 0)
        add_sock(&l, "admin.listen", cfg->admin.listen, false, &ss);
    for (size_t i = 0; i < l.n; i++)
        for (size_t j = i + 1; j < l.n; j++) {
            if (!collide(&l.v[i], &l.v[j]))
                continue;
            bool tcp_pair = !l.v[i].udp;
            return ml_err(err, errlen, "listeners collide: %s %s and %s %s use the same %s port%s",
                          l.v[i].key, l.v[i].what, l.v[j].key, l.v[j].what,
                          l.v[i].udp ? "UDP" : "TCP",
                          tcp_pair ? " (one shared:// listener in turn.listen carries TLS, TURN "
                                     "and HTTP on one port; set control.listen to its address)"
                                   : "");
        }
    if (shared && cfg->control.tls_cert)
        return ml_err(err, errlen,
                      "control.tls-cert cannot be combined with a shared:// listener: TLS on the "
                      "shared port is done once, with turn.tls-cert (leave control.tls-cert for a "
                      "control.listen port of its own, without shared://)");
    if (shared && (!cfg->turn.tls_cert || !cfg->turn.tls_key))
        return ml_err(err, errlen, "a shared:// listener needs turn.tls-cert and turn.tls-key");
    return 0;
}

/* ---------------------------------------------------------------- the per-participant quota */

/* Allocations one browser makes per peer connection through a TURN URI: one when its host is an
 * IP address, two when it is a name (the browser may allocate through its IPv4 and its IPv6
 * network). STUN URIs make none. */
static long long uri_allocations(const char *uri)
{
    const char *h;
    if (!strncmp(uri, "turn:", 5))
        h = uri + 5;
    else if (!strncmp(uri, "turns:", 6))
        h = uri + 6;
    else
        return 0;
    char host[ML_ADDR_STRLEN];
    size_t n = *h == '[' ? strcspn(++h, "]") : strcspn(h, ":?/");
    if (n == 0 || n >= sizeof host)
        return 2;
    memcpy(host, h, n);
    host[n] = 0;
    struct sockaddr_storage ss;
    socklen_t len;
    return ml_addr_parse(host, 0, &ss, &len) == 0 ? 1 : 2;
}

static int count_uri(const char *item, void *arg)
{
    *(long long *)arg += uri_allocations(item);
    return 0;
}

/* The same for the URIs derived from turn.listen (control.turn-uris empty): one per listener; a
 * wildcard one is handed out under control.public-url's host, which may be a name. */
static long long listen_allocations(const struct turn_config *turn)
{
    struct net_endpoint *eps = NULL;
    size_t n = 0;
    char err[128];
    long long total = 0;
    if (net_endpoints_parse(turn->listen, &eps, &n, err, sizeof err) < 0)
        return 0; /* the server reports the bad list */
    for (size_t i = 0; i < n; i++) {
        /* a shared:// listener is handed out twice: turn:?transport=tcp and turns: */
        long long uris = eps[i].transport == NET_SHARED ? 2 : 1;
        total += uris * (is_wildcard((const struct sockaddr *)&eps[i].addr) ? 2 : 1);
    }
    free(eps);
    return total;
}

/* turn.max-allocations-per-user = 0 (the default) becomes what a participant of the largest
 * meeting may need. A browser holds an allocation per TURN URI (two for a host name) per peer
 * connection, one connection per other participant, and an ICE restart allocates anew before it
 * lets the old allocations go:
 *     2 x (allocations per peer connection) x (control.max-participants - 1), at least 20.
 * With the defaults (udp and tcp on 127.0.0.1, 500 participants): 2 x 2 x 499 = 1996. */
static void derive_per_user_quota(struct app_config *cfg)
{
    if (cfg->turn.max_allocations_per_user > 0)
        return;
    long long per_pc = 0;
    if (cfg->control.turn_uris) {
        if (ml_list_foreach(cfg->control.turn_uris, count_uri, &per_pc) < 0)
            per_pc = 0;
    } else {
        per_pc = listen_allocations(&cfg->turn);
    }
    long long peers = cfg->control.max_participants > 1 ? cfg->control.max_participants - 1 : 1;
    long long q = 2 * per_pc * peers;
    cfg->turn.max_allocations_per_user = q < APP_PER_USER_MIN   ? APP_PER_USER_MIN
                                         : q > APP_PER_USER_MAX ? APP_PER_USER_MAX
                                                                : q;
}

int app_config_load(struct app_config *cfg, const char *path, char *const *sets, size_t nsets,
                    char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    if (ml_cfg_defaults(app_cfg_sections, cfg, err, errlen) < 0)
        return -1;
    if (path && ml_cfg_load_file(app_cfg_sections, cfg, path, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < nsets; i++)
        if (ml_cfg_set_arg(app_cfg_sections, cfg, sets[i], err, errlen) < 0)
            return -1;
    char warn[1024];
    if (ml_cfg_resolve_files(app_cfg_sections, cfg, warn, sizeof warn, err, errlen) < 0)
        return -1;
    if (warn[0])
        ML_WARN("app", "secret file: %s", warn);
    if (db_conninfo_add_password(&cfg->database, err, errlen) < 0)
        return -1;
    if (check_listeners(cfg, err, errlen) < 0)
        return -1;
    derive_per_user_quota(cfg);
    return 0;
}

void app_config_free(struct app_config *cfg)
{
    ml_cfg_free(app_cfg_sections, cfg);
}

/* ---------------------------------------------------------------- rules between keys */

int app_config_check(const struct app_config *cfg, char *err, size_t errlen)
{
    char why[400];
    struct net_endpoint *eps = NULL;
    size_t n = 0;
    if (net_endpoints_parse(cfg->turn.listen, &eps, &n, why, sizeof why) < 0)
        return ml_err(err, errlen, "turn.listen: %s", why);
    bool tls = false;
    for (size_t i = 0; i < n; i++)
        tls |= eps[i].transport == NET_TLS;
    int rc = -1;
    if (tls && (!cfg->turn.tls_cert || !cfg->turn.tls_key)) {
        ml_err(err, errlen, "a tls:// listener needs turn.tls-cert and turn.tls-key");
        goto out;
    }
    if (adm_config_check(&cfg->admin, err, errlen) < 0)
        goto out;
    if (wh_config_check(&cfg->webhooks, err, errlen) < 0)
        goto out;
    if (cfg->webhooks.url && !cfg->database.url) {
        ml_err(err, errlen, "webhooks.url needs database.url: the events queue in PostgreSQL");
        goto out;
    }
    if (cp_config_check(&cfg->control, &cfg->auth, &cfg->turn, &cfg->database, err, errlen) < 0)
        goto out;
    if (cfg->control.listen && cfg->signaling.enabled &&
        sig_config_check(&cfg->signaling, err, errlen) < 0)
        goto out;
    if (app_fleet_config_check(cfg, err, errlen) < 0)
        goto out;
    rc = check_listeners(cfg, err, errlen); /* as app_config_load did: a reload's file too */
out:
    free(eps);
    return rc;
}
