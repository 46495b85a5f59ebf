/* meetlited: command line, configuration, start-up, signals (SIGTERM/SIGINT stop, SIGHUP
 * reloads the reloadable keys) and an orderly shutdown. Runs in the foreground. */
#include "config.h"

#include "app/app.h"

#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <grp.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define MAX_SETS 256

struct app {
    struct app_config cfg;
    const char *config_path;
    char *sets[MAX_SETS];
    size_t nsets;
    struct event_base *base;
    struct net_engine *engine;
    struct turn_server *turn;
    struct cp *cp;               /* the control plane; NULL on a TURN-only node */
    struct app_relay *relay;     /* revocations in, usage out; NULL without database.url */
    struct adm *adm;             /* the admin listener; NULL without admin.token */
    struct adm_sync *sync;       /* TURN users and secrets from PostgreSQL; NULL without */
    struct wh_worker *hooks;     /* webhook delivery; NULL without database.url */
    struct app_fleet *fleet;     /* this relay in the registry; NULL without fleet.register */
    pthread_mutex_t cfg_mu;      /* cfg against the admin thread's TLS reload */
    bool tls_enabled;            /* a tls:// listener exists */
    bool shared;                 /* a shared:// listener exists */
    bool control_tls, admin_tls; /* control.listen, admin.listen serve HTTPS (fixed at start) */
    struct event *sig_term, *sig_int, *sig_hup;
    struct app_notify *notify; /* the service manager's socket; NULL without one */
};

int app_reload_tls(struct app *app, char *err, size_t errlen);

static void usage(FILE *out)
{
    fprintf(out, "Usage: meetlited [OPTIONS]\n"
                 "meetlite's daemon: a STUN/TURN relay with a meeting control plane.\n\n"
                 "  -c, --config FILE     read the INI configuration file FILE\n"
                 "  -s, --set S.K=VALUE   set key K of section S, after the file (repeatable)\n"
                 "      --check-config    check the configuration and exit (0 when valid)\n"
                 "      --dump-config     print the effective configuration and exit\n"
                 "      --migrate         apply the pending database migrations (sql/) and exit\n"
                 "  -V, --version         print the version and exit\n"
                 "  -h, --help            print this help and every configuration key\n\n"
                 "Signals: SIGTERM and SIGINT stop; SIGHUP reloads the keys marked reloadable.\n"
                 "\nConfiguration keys (file sections [section], or --set section.key=value):\n");
    ml_cfg_print_help(app_cfg_sections, out);
}

static void dump_config(const struct app_config *cfg)
{
    char val[4096];
    for (size_t i = 0; app_cfg_sections[i]; i++) {
        const struct ml_cfg_section *sec = app_cfg_sections[i];
        printf("%s[%s]\n", i ? "\n" : "", sec->name);
        for (const struct ml_cfg_key *k = sec->keys; k->name; k++) {
            ml_cfg_format(sec, k, cfg, val, sizeof val);
            printf("%s = %s\n", k->name, val);
        }
    }
}

/* Raises RLIMIT_NOFILE: every allocation holds a socket, every stream client one more. */
static void raise_nofile(long long want)
{
    struct rlimit rl;
    if (want <= 0 || getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t target = (rlim_t)want;
    if (rl.rlim_cur >= target)
        return;
    struct rlimit next = rl;
    next.rlim_cur = target;
    if (target > rl.rlim_max) {
        next.rlim_max = target; /* only root may raise the hard limit */
        if (setrlimit(RLIMIT_NOFILE, &next) == 0)
            goto done;
        next.rlim_max = rl.rlim_max;
        next.rlim_cur = rl.rlim_max;
    }
    if (setrlimit(RLIMIT_NOFILE, &next) < 0) {
        ML_WARN("app", "cannot raise the open-file limit to %llu: %s",
                (unsigned long long)next.rlim_cur, strerror(errno));
        return;
    }
done:
    getrlimit(RLIMIT_NOFILE, &rl);
    ML_INFO("app", "open-file limit %llu", (unsigned long long)rl.rlim_cur);
}

/* Started as root: becomes daemon.user (and its groups) for good, once every listener is bound.
 * glibc changes the credentials of every thread (the workers and the HTTP threads run already).
 * 0, or -1 with err filled: the daemon must not serve as root by mistake. */
static int drop_privileges(const struct app_daemon_config *d, char *err, size_t errlen)
{
    if (geteuid() != 0) {
        if (d->user)
            ML_NOTICE("app", "daemon.user=%s: not started as root, nothing to drop", d->user);
        return 0;
    }
    if (!d->user) {
        ML_WARN("app", "running as root: set daemon.user (and daemon.group) to drop to an "
                       "unprivileged user once the listeners are bound (docs/relay.md)");
        return 0;
    }
    char buf[4096];
    struct passwd pw, *pwp = NULL;
    if (getpwnam_r(d->user, &pw, buf, sizeof buf, &pwp) != 0 || !pwp)
        return ml_err(err, errlen, "daemon.user: no user \"%s\"", d->user);
    uid_t uid = pw.pw_uid;
    gid_t gid = pw.pw_gid;
    if (uid == 0)
        return ml_err(err, errlen, "daemon.user: \"%s\" is root", d->user);
    if (d->group) {
        char gbuf[4096];
        struct group gr, *grp = NULL;
        if (getgrnam_r(d->group, &gr, gbuf, sizeof gbuf, &grp) != 0 || !grp)
            return ml_err(err, errlen, "daemon.group: no group \"%s\"", d->group);
        gid = gr.gr_gid;
    }
    /* groups first (only root may change them), then the group, the user last */
    if (initgroups(d->user, gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
        return ml_err(err, errlen, "cannot become %s: %s", d->user, strerror(errno));
    if (setuid(0) == 0 || geteuid() != uid || getegid() != gid)
        return ml_err(err, errlen, "dropping root to %s did not hold", d->user);
#ifdef ML_DEVEL
    /* A credential change makes the process undumpable, and LeakSanitizer cannot then inspect
     * its threads at exit. Development builds only: elsewhere another process of the same user
     * could ptrace a dumpable daemon. */
    (void)prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
    ML_NOTICE("app", "now running as %s (uid %u, gid %u)", d->user, (unsigned)uid, (unsigned)gid);
    return 0;
}

static void apply_log(const struct app_config *cfg)
{
    ml_log_set_level((enum ml_log_level)cfg->log.level);
    ml_log_set_format((enum ml_log_format)cfg->log.format);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    struct app *app = arg;
    ML_UNUSED(what);
    ML_NOTICE("app", "received %s, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    app_notify_stopping(app->notify);
    event_base_loopbreak(app->base);
}

/* Builds the TLS context of tls:// listeners from turn.tls-*; NULL (and no error) when no
 * certificate is configured. */
static SSL_CTX *load_tls(const struct turn_config *t, bool *failed, char *err, size_t errlen)
{
    *failed = false;
    if (!t->tls_cert && !t->tls_key)
        return NULL;
    struct net_tls_settings ts = {.cert = t->tls_cert,
                                  .key = t->tls_key,
                                  .min_version = t->tls_min_version,
                                  .ciphers = t->tls_ciphers,
                                  .ciphersuites = t->tls_ciphersuites};
    SSL_CTX *ctx = net_tls_ctx_new(&ts, err, errlen);
    if (!ctx)
        *failed = true;
    return ctx;
}

/* The certificates of every TLS listener, read and checked, not in use yet: a reload loads them
 * all before it changes anything, so that one bad file changes none. */
struct app_tls_set {
    SSL_CTX *turn, *control, *admin; /* NULL: that listener has no TLS */
};

static void tls_set_free(struct app_tls_set *s)
{
    SSL_CTX_free(s->turn);
    SSL_CTX_free(s->control);
    SSL_CTX_free(s->admin);
    memset(s, 0, sizeof *s);
}

/* Loads every certificate and key the running listeners need from cfg's files (turn.tls-*,
 * control.tls-*, admin.tls-*). TLS cannot be switched on or off without a restart. 0, or -1 with
 * err naming the keys (nothing loaded). */
static int tls_prepare(struct app *app, const struct app_config *cfg, struct app_tls_set *s,
                       char *err, size_t errlen)
{
    bool failed;
    char why[400];
    memset(s, 0, sizeof *s);
    if (app->engine && app->tls_enabled) {
        s->turn = load_tls(&cfg->turn, &failed, why, sizeof why);
        if (!s->turn) {
            ml_err(err, errlen, "turn.tls-cert/tls-key: %s",
                   failed ? why : "not set, and a tls:// listener needs them");
            goto fail;
        }
    }
    const struct {
        const char *what;
        bool serving;
        const char *cert, *key;
        SSL_CTX **out;
    } https[] = {
        {"control", app->control_tls, cfg->control.tls_cert, cfg->control.tls_key, &s->control},
        {"admin", app->admin_tls, cfg->admin.tls_cert, cfg->admin.tls_key, &s->admin},
    };
    for (size_t i = 0; i < ML_ARRAY_LEN(https); i++) {
        if (!https[i].serving && !https[i].cert)
            continue;
        if (https[i].serving != !!https[i].cert) {
            ml_err(err, errlen, "%s.tls-cert: switching TLS %s needs a restart", https[i].what,
                   https[i].serving ? "off" : "on");
            goto fail;
        }
        *https[i].out = net_tls_cert_load(https[i].cert, https[i].key, why, sizeof why);
        if (!*https[i].out) {
            ml_err(err, errlen, "%s.tls-cert/tls-key: %s", https[i].what, why);
            goto fail;
        }
    }
    return 0;
fail:
    tls_set_free(s);
    return -1;
}

/* Puts the loaded certificates in use (new connections only) and frees s. */
static void tls_commit(struct app *app, struct app_tls_set *s)
{
    char what[320];
    if (s->turn) {
        net_engine_set_tls(app->engine, s->turn);
        cp_shared_tls_set(app->cp, s->turn); /* the browsers' HTTPS on the shared port */
        net_tls_describe(s->turn, what, sizeof what);
        ML_NOTICE("app", "TLS certificate loaded for turn.listen: %s", what);
    }
    if (s->control && app->cp && cp_tls_set(app->cp, s->control)) {
        net_tls_describe(s->control, what, sizeof what);
        ML_NOTICE("app", "TLS certificate loaded for control.listen: %s", what);
    }
    if (s->admin && app->adm && adm_tls_set(app->adm, s->admin)) {
        net_tls_describe(s->admin, what, sizeof what);
        ML_NOTICE("app", "TLS certificate loaded for admin.listen: %s", what);
    }
    tls_set_free(s);
}

/* Reads the certificate and key files of every TLS listener again (the admin API's
 * /v1/tls/reload, certbot's deploy hook): new TLS connections get them, established ones keep
 * theirs. A broken file keeps the old ones, all of them. 0 or -1. */
int app_reload_tls(struct app *app, char *err, size_t errlen)
{
    struct app_tls_set s;
    if (!(app->engine && app->tls_enabled) && !app->control_tls && !app->admin_tls)
        return ml_err(err, errlen, "no TLS listener");
    pthread_mutex_lock(&app->cfg_mu); /* the admin API calls this from its own thread */
    int rc = tls_prepare(app, &app->cfg, &s, err, errlen);
    pthread_mutex_unlock(&app->cfg_mu);
    if (rc < 0)
        return -1;
    tls_commit(app, &s);
    return 0;
}

/* SIGHUP: read the configuration into a new struct, check it as start would, then take the
 * reloadable keys that changed. All or nothing: a file that does not parse, breaks a rule,
 * changes a restart-only key or empties a credential source (a cut-off or empty file does)
 * changes nothing and says why in one line. */
static void on_reload(evutil_socket_t sig, short what, void *arg)
{
    struct app *app = arg;
    struct app_config next;
    struct app_tls_set tls;
    char err[512];
    ML_UNUSED(sig);
    ML_UNUSED(what);
    app_notify_reloading(app->notify);
    if (app_config_load(&next, app->config_path, app->sets, app->nsets, err, sizeof err) < 0 ||
        app_config_check(&next, err, sizeof err) < 0 ||
        ml_cfg_reload_check(app_cfg_sections, &app->cfg, &next, err, sizeof err) < 0 ||
        tls_prepare(app, &next, &tls, err, sizeof err) < 0) {
        ML_ERROR("app", "reload refused, configuration unchanged: %s", err);
        app_config_free(&next);
        app_notify_ready(app->notify, "Reload refused, configuration unchanged (see the log)");
        return;
    }
    unsigned changed = 0;
    pthread_mutex_lock(&app->cfg_mu);
    for (size_t i = 0; app_cfg_sections[i]; i++) {
        const struct ml_cfg_section *sec = app_cfg_sections[i];
        for (const struct ml_cfg_key *k = sec->keys; k->name; k++) {
            if (!ml_cfg_differs(sec, k, &app->cfg, &next))
                continue;
            ml_cfg_move(sec, k, &app->cfg, &next); /* reloadable: ml_cfg_reload_check said so */
            ML_NOTICE("app", "reloaded %s.%s", sec->name, k->name);
            changed++;
        }
    }
    pthread_mutex_unlock(&app->cfg_mu);
    app_config_free(&next);
    apply_log(&app->cfg);
    if (app->adm && adm_reload(app->adm, &app->cfg.admin, err, sizeof err) < 0)
        ML_ERROR("app", "admin tokens not reloaded, the old ones stay: %s", err);
    if (app->cp)
        cp_reload_turn(app->cp, &app->cfg.turn);
    if (turn_server_reload(app->turn, &app->cfg.turn, err, sizeof err) < 0)
        ML_ERROR("app", "reload of the TURN settings failed, old ones kept: %s", err);
    tls_commit(app, &tls); /* the files as checked above, even if they changed since */
    if (app->hooks && wh_worker_reload(app->hooks, &app->cfg.webhooks, err, sizeof err) < 0)
        ML_ERROR("app", "webhook settings not reloaded, the old ones stay: %s", err);
    ML_NOTICE("app", "configuration reloaded (%u keys changed)", changed);
    app_notify_ready(app->notify, "Running; configuration reloaded");
}

/* --check-config: every rule start applies before it binds a socket or reaches the database:
 * app_config_check, the relay's addresses (turn_server_new), the TLS files of the relay, the
 * control plane and the admin API, the JWT key and JWKS files. 0, or 1 with err. */
static int check_config(const struct app_config *cfg, char *err, size_t errlen)
{
    if (app_config_check(cfg, err, errlen) < 0)
        return 1;
    struct turn_server *turn = turn_server_new(&cfg->turn, err, errlen);
    if (!turn)
        return 1;
    turn_server_free(turn);
    bool failed;
    SSL_CTX *tls = load_tls(&cfg->turn, &failed, err, errlen);
    if (tls)
        SSL_CTX_free(tls);
    else if (failed)
        return 1;
    /* the HTTPS listeners' files, as libwebsockets will load them */
    const struct {
        const char *what, *cert, *key;
    } https[] = {
        {"control", cfg->control.listen ? cfg->control.tls_cert : NULL, cfg->control.tls_key},
        {"admin", cfg->admin.token ? cfg->admin.tls_cert : NULL, cfg->admin.tls_key},
    };
    for (size_t i = 0; i < ML_ARRAY_LEN(https); i++) {
        if (!https[i].cert)
            continue;
        char why[400];
        struct net_tls_settings ts = {
            .cert = https[i].cert, .key = https[i].key, .min_version = "1.2"};
        SSL_CTX *ctx = net_tls_ctx_new(&ts, why, sizeof why);
        if (!ctx) {
            ml_err(err, errlen, "%s.tls-cert/tls-key: %s", https[i].what, why);
            return 1;
        }
        SSL_CTX_free(ctx);
    }
    char secret[WH_SECRET_MAX + 1];
    int n = wh_secret_load(&cfg->webhooks, secret, err, errlen);
    ml_wipe(secret, sizeof secret);
    if (n < 0)
        return 1;
    return cp_config_check_files(&cfg->control, &cfg->auth, err, errlen) < 0 ? 1 : 0;
}

/* Applies the pending schema migrations (--migrate, database.migrate-on-start). */
static int migrate(const struct app_config *cfg)
{
    char err[512];
    unsigned applied = 0;
    const char *dir = db_migrations_dir(&cfg->database);
    if (db_migrate(cfg->database.url, dir, &applied, err, sizeof err) < 0) {
        ML_ERROR("app", "migration failed: %s", err);
        return -1;
    }
    ML_NOTICE("app", "database schema up to date (%u migration%s applied from %s)", applied,
              applied == 1 ? "" : "s", dir);
    return 0;
}

/* Starts the control plane when control.listen is set: HTTP on its own thread, the database
 * pool. Its failure to start stops the daemon; a database that is down does not. */
static int start_control(struct app *app)
{
    char err[512];
    if (!app->cfg.control.listen)
        return 0;
    if (app->cfg.database.migrate_on_start && migrate(&app->cfg) < 0)
        return -1;
    app->cp = cp_new(&app->cfg.control, &app->cfg.auth, &app->cfg.turn, &app->cfg.database, err,
                     sizeof err);
    if (!app->cp) {
        ML_ERROR("app", "control plane: %s", err);
        return -1;
    }
    /* revocations reach this process's relay at once; other nodes learn them by NOTIFY */
    if (app->relay)
        cp_set_revoke_hook(app->cp, app_relay_revoke, app->relay);
    const struct cp_fleet fleet = {.placement = app->cfg.fleet.placement,
                                   .region = app->cfg.fleet.region,
                                   .node_timeout_ms = app->cfg.fleet.node_timeout_ms,
                                   .check_ms = app->cfg.fleet.heartbeat_ms,
                                   .push_max = app->cfg.fleet.push_max};
    cp_set_fleet(app->cp, &fleet);
    bool shared_only = app_control_on_shared(&app->cfg);
    if (shared_only)
        cp_serve_shared_only(app->cp);
    /* browsers' HTTPS on a shared:// listener: its TLS done by the control plane's server, with
     * the listener's certificate, not relayed through the network workers */
    if (app->shared)
        cp_serve_shared_tls(app->cp, &app->cfg.turn);
    if (cp_set_signaling(app->cp, &app->cfg.signaling, &app->cfg.database, err, sizeof err) < 0) {
        ML_ERROR("app", "signaling: %s", err);
        return -1;
    }
    if (cp_start(app->cp, err, sizeof err) < 0) {
        ML_ERROR("app", "control plane: %s", err);
        return -1;
    }
    /* HTTP found on shared:// listeners goes to the control plane from now on */
    net_engine_set_http(app->engine, cp_adopt, app->cp, cp_adopts_tls(app->cp));
    app->control_tls = !shared_only && app->cfg.control.tls_cert != NULL;
    if (shared_only)
        ML_NOTICE("app", "control plane served on the shared listener %s (port %d)",
                  app->cfg.control.listen, cp_port(app->cp));
    else
        ML_NOTICE("app", "control plane listening on %s://%s (port %d)",
                  app->control_tls ? "https" : "http", app->cfg.control.listen, cp_port(app->cp));
    return 0;
}

/* ---------------------------------------------------------------- the admin API (#8) */

static int admin_reload_tls(void *arg, char *err, size_t errlen)
{
    return app_reload_tls(arg, err, errlen);
}

/* Drain mode: the relay answers new Allocates with 508, the control plane joins with 503. */
static void admin_set_drain(void *arg, bool on)
{
    struct app *app = arg;
    turn_server_set_drain(app->turn, on);
    if (app->cp)
        cp_set_drain(app->cp, on);
}

static void admin_relay_link(void *arg, struct st_relay_link *out)
{
    struct app *app = arg;
    struct app_relay_counters c;
    app_relay_counters(app->relay, &c);
    out->listen_up = c.listen_up;
    out->revocations = c.revocations;
    out->revocations_failed = c.revocations_fail;
    out->listen_connects = c.listen_connects;
    out->usage_queued = c.usage_queued;
    out->usage_written = c.usage_written;
    out->usage_dropped = c.usage_dropped;
}

/* The webhook worker's counters, for the admin API's stats. */
static void admin_webhooks(void *arg, struct st_webhooks *out)
{
    struct app *app = arg;
    struct wh_counters c;
    wh_worker_counters(app->hooks, &c);
    out->delivered = c.delivered;
    out->attempts_failed = c.attempts_failed;
    out->db_connects = c.connects;
}

/* The runtime secrets changed (sync thread): the control plane signs with the relay's choice. */
static void creds_changed(void *arg)
{
    struct app *app = arg;
    char secret[260];
    size_t secrets, users;
    if (!app->cp)
        return;
    turn_server_runtime_counts(app->turn, &secrets, &users);
    bool own = secrets && turn_server_signing_secret(app->turn, secret, sizeof secret);
    cp_set_turn_secret(app->cp, own ? secret : NULL);
    ml_wipe(secret, sizeof secret);
}

/* The TURN users and secrets of PostgreSQL (database.url and admin.db-credentials), and the
 * admin listener (admin.token). After the control plane: the sync tells it the secret. */
static int start_admin(struct app *app)
{
    char err[512];
    if (app->cfg.database.url && app->cfg.admin.db_credentials) {
        app->sync = adm_sync_new(&app->cfg.database, &app->cfg.admin, app->turn, creds_changed, app,
                                 err, sizeof err);
        if (!app->sync) {
            ML_ERROR("app", "TURN credential sync: %s", err);
            return -1;
        }
    }
    if (!app->cfg.admin.token)
        return 0;
    struct adm_deps d = {.turn = app->turn,
                         .engine = app->engine,
                         .cp = app->cp,
                         .sync = app->sync,
                         .db = &app->cfg.database,
                         .reload_tls = admin_reload_tls,
                         .set_drain = admin_set_drain,
                         .relay_link = app->relay ? admin_relay_link : NULL,
                         .webhooks = app->hooks ? admin_webhooks : NULL,
                         .arg = app};
    app->adm = adm_new(&app->cfg.admin, &d, err, sizeof err);
    if (!app->adm || adm_start(app->adm, err, sizeof err) < 0) {
        ML_ERROR("app", "admin API: %s", err);
        return -1;
    }
    app->admin_tls = app->cfg.admin.tls_cert && app->cfg.admin.tls_key;
    ML_NOTICE("app", "admin API listening on %s://%s (port %d)",
              app->cfg.admin.tls_cert ? "https" : "http", app->cfg.admin.listen,
              adm_port(app->adm));
    return 0;
}

/* The webhook worker of a node with a database: it delivers when webhooks.url is set, and
 * purges old events either way. After the migrations (start_control). */
static int start_webhooks(struct app *app)
{
    char err[512], node[128], host[64];
    if (!app->cfg.database.url)
        return 0;
    if (app->cfg.signaling.node_id)
        ml_strlcpy(node, app->cfg.signaling.node_id, sizeof node);
    else {
        if (gethostname(host, sizeof host) < 0)
            ml_strlcpy(host, "node", sizeof host);
        host[sizeof host - 1] = 0;
        ml_snprintf(node, sizeof node, "%s/%ld", host, (long)getpid());
    }
    app->hooks = wh_worker_new(&app->cfg.webhooks, &app->cfg.database, node, err, sizeof err);
    if (!app->hooks || wh_worker_start(app->hooks, err, sizeof err) < 0) {
        ML_ERROR("app", "webhooks: %s", err);
        return -1;
    }
    if (app->cfg.webhooks.url)
        ML_NOTICE("app", "webhooks: delivering events as node %s", node);
    return 0;
}

/* The relay's LISTEN connection is up and caught up: PostgreSQL answers (READY=1 waits). */
static bool database_up(void *arg)
{
    struct app *app = arg;
    struct app_relay_counters c;
    app_relay_counters(app->relay, &c);
    return c.listen_up;
}

static int run(struct app *app)
{
    char err[512];
    struct net_endpoint *eps = NULL;
    size_t neps = 0;
    struct net_settings ns;
    int rc = 1;

    ml_log_open("meetlited", app->cfg.log.target == 1);
    apply_log(&app->cfg);
    if (app_config_check(&app->cfg, err, sizeof err) < 0) {
        ML_ERROR("app", "%s", err);
        ml_log_close();
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_nofile(app->cfg.daemon.max_open_files);

    app->notify = app_notify_new();
    app->base = event_base_new();
    if (!app->base) {
        ML_ERROR("app", "cannot create the main event loop");
        return 1;
    }
    if (net_endpoints_parse(app->cfg.turn.listen, &eps, &neps, err, sizeof err) < 0) {
        ML_ERROR("app", "turn.listen: %s", err);
        goto out;
    }
    app->turn = turn_server_new(&app->cfg.turn, err, sizeof err);
    if (!app->turn) {
        ML_ERROR("app", "%s", err);
        goto out;
    }
    net_config_settings(&app->cfg.net, &ns);
    SSL_CTX *tls = NULL;
    for (size_t i = 0; i < neps; i++) {
        app->tls_enabled |= eps[i].transport == NET_TLS || eps[i].transport == NET_SHARED;
        app->shared |= eps[i].transport == NET_SHARED;
    }
    if (app->tls_enabled) {
        bool failed;
        tls = load_tls(&app->cfg.turn, &failed, err, sizeof err);
        if (!tls) {
            ML_ERROR("app", "tls:// listener: %s",
                     failed ? err : "set turn.tls-cert and turn.tls-key");
            goto out;
        }
        char what[320];
        net_tls_describe(tls, what, sizeof what);
        ML_NOTICE("app", "TLS certificate: %s", what);
    }
    app->engine =
        net_engine_new(&ns, eps, neps, turn_net_handler(), app->turn, tls, err, sizeof err);
    if (tls)
        SSL_CTX_free(tls); /* the engine holds its own reference */
    if (!app->engine) {
        ML_ERROR("app", "%s", err);
        goto out;
    }
    ML_NOTICE("app", "UDP data path: %s", net_engine_io(app->engine));
    turn_server_set_engine(app->turn, app->engine);
    if (app->cfg.database.url) {
        app->relay = app_relay_new(&app->cfg, app->turn, err, sizeof err);
        if (!app->relay) {
            ML_ERROR("app", "%s", err);
            goto out;
        }
    }
    for (size_t i = 0; i < neps; i++) {
        if (turn_server_add_service(app->turn, net_engine_bound(app->engine, i)) < 0) {
            ML_ERROR("app", "out of memory");
            goto out;
        }
    }
    if (net_engine_start(app->engine, err, sizeof err) < 0) {
        ML_ERROR("app", "%s", err);
        goto out;
    }
    app->sig_term = evsignal_new(app->base, SIGTERM, on_stop, app);
    app->sig_int = evsignal_new(app->base, SIGINT, on_stop, app);
    app->sig_hup = evsignal_new(app->base, SIGHUP, on_reload, app);
    if (!app->sig_term || !app->sig_int || !app->sig_hup || evsignal_add(app->sig_term, NULL) ||
        evsignal_add(app->sig_int, NULL) || evsignal_add(app->sig_hup, NULL)) {
        ML_ERROR("app", "cannot install signal handlers");
        goto out;
    }
    if (start_control(app) < 0)
        goto out;
    /* after the control plane's migrations, which the catch-up query needs */
    if (app->relay && app_relay_start(app->relay, err, sizeof err) < 0) {
        ML_ERROR("app", "%s", err);
        goto out;
    }
    if (start_webhooks(app) < 0) /* before the admin API, which reads its figures */
        goto out;
    if (app->cfg.fleet.register_node) {
        app->fleet = app_fleet_new(&app->cfg, app->base, app->turn, app->engine, err, sizeof err);
        if (!app->fleet) {
            ML_ERROR("app", "%s", err);
            goto out;
        }
    }
    if (start_admin(app) < 0)
        goto out;
    /* every listener is bound now (relay, control plane, admin API) */
    if (drop_privileges(&app->cfg.daemon, err, sizeof err) < 0) {
        ML_ERROR("app", "%s", err);
        goto out;
    }
    for (size_t i = 0; i < neps; i++) {
        char a[ML_ADDR_STRLEN];
        ML_NOTICE("app", "listening on %s://%s", net_transport_name(eps[i].transport),
                  ml_addr_str(net_engine_bound(app->engine, i), a, sizeof a));
    }
    ML_NOTICE("app", "meetlited %s ready (%u network workers)", PACKAGE_VERSION,
              net_engine_workers(app->engine));
    if (app_notify_watchdog_start(app->notify, app->base, app->engine) < 0) {
        ML_ERROR("app", "watchdog: out of memory");
        goto out;
    }
    if (app_notify_ready_when_up(app->notify, app->base, app->relay ? database_up : NULL, app,
                                 app->cfg.database.connect_timeout_s * 1000) < 0) {
        ML_ERROR("app", "notify: out of memory");
        goto out;
    }
    event_base_dispatch(app->base);
    rc = 0;
out:
    if (app->engine) {
        /* A last word on what the relay did, for operators and for tests. */
        struct turn_counters tc;
        struct net_counters nc;
        turn_counters_read(app->engine, &tc);
        net_engine_counters(app->engine, &nc);
        ML_NOTICE("app",
                  "totals: %llu allocations, relayed %llu packets to peers and %llu to clients; "
                  "dropped %llu without permission, %llu without channel, %llu to slow stream "
                  "clients, %llu unauthenticated over budget; %llu udp datagrams dropped by the "
                  "kernel",
                  (unsigned long long)tc.allocations_total, (unsigned long long)tc.relay_rx_packets,
                  (unsigned long long)tc.relay_tx_packets,
                  (unsigned long long)tc.relay_dropped_no_permission,
                  (unsigned long long)tc.relay_dropped_no_channel,
                  (unsigned long long)tc.relay_dropped_backpressure,
                  (unsigned long long)tc.unauth_dropped, (unsigned long long)nc.udp_tx_dropped);
    }
    if (app->sig_term)
        event_free(app->sig_term);
    if (app->sig_int)
        event_free(app->sig_int);
    if (app->sig_hup)
        event_free(app->sig_hup);
    /* Freeing the events gave the signals back their default action: a second SIGTERM or SIGINT
     * (an impatient operator, a script that signals twice) would kill the process in the middle
     * of writing the last usage records. The stop is under way; a service manager that finds it
     * too slow sends SIGKILL. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    app_fleet_free(app->fleet); /* the registry says draining: clients move off this node */
    adm_stop(app->adm);         /* no admin request after this */
    wh_worker_free(app->hooks); /* an attempt under way is cut short: retried later */
    adm_sync_free(app->sync);   /* it tells the control plane about secrets */
    if (app->engine)            /* no handover to the control plane is running or will run */
        net_engine_set_http(app->engine, NULL, NULL, false);
    cp_free(app->cp);
    app_relay_stop_revocations(app->relay); /* they post to the workers */
    net_engine_free(app->engine);
    adm_free(app->adm); /* after the engine: operations it started on the workers are done */
    app_relay_free(app->relay); /* after the engine: the allocations it closed are recorded */
    turn_server_free(app->turn);
    app_notify_free(app->notify); /* after the engine: no worker answers a ping any more */
    free(eps);
    if (app->base)
        event_base_free(app->base);
    if (rc == 0)
        ML_NOTICE("app", "stopped");
    ml_log_close();
    return rc;
}

int main(int argc, char **argv)
{
    enum { OPT_CHECK = 256, OPT_DUMP, OPT_MIGRATE };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"set", required_argument, NULL, 's'},
        {"check-config", no_argument, NULL, OPT_CHECK},
        {"dump-config", no_argument, NULL, OPT_DUMP},
        {"migrate", no_argument, NULL, OPT_MIGRATE},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static struct app app = {.cfg_mu = PTHREAD_MUTEX_INITIALIZER};
    bool check = false, dump = false, migrate_only = false;
    char err[512];
    int c;
    ml_log_set_thread("main");
    while ((c = getopt_long(argc, argv, "c:s:Vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            app.config_path = optarg;
            break;
        case 's':
            if (app.nsets == MAX_SETS) {
                fprintf(stderr, "meetlited: at most %d --set options\n", MAX_SETS);
                return 2;
            }
            app.sets[app.nsets++] = optarg;
            break;
        case OPT_CHECK:
            check = true;
            break;
        case OPT_DUMP:
            dump = true;
            break;
        case OPT_MIGRATE:
            migrate_only = true;
            break;
        case 'V':
            printf("meetlited %s\n", PACKAGE_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "Try 'meetlited --help'.\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "meetlited: unexpected argument \"%s\"; try 'meetlited --help'\n",
                argv[optind]);
        return 2;
    }
    if (app_config_load(&app.cfg, app.config_path, app.sets, app.nsets, err, sizeof err) < 0) {
        fprintf(stderr, "meetlited: %s\n", err);
        app_config_free(&app.cfg);
        return 1;
    }
    int rc;
    if (check) {
        rc = check_config(&app.cfg, err, sizeof err);
        if (rc == 0)
            printf("meetlited: configuration OK\n");
        else
            fprintf(stderr, "meetlited: %s\n", err);
    } else if (dump) {
        dump_config(&app.cfg);
        rc = 0;
    } else if (migrate_only) {
        ml_log_open("meetlited", false);
        apply_log(&app.cfg);
        rc = migrate(&app.cfg) < 0 ? 1 : 0;
        ml_log_close();
    } else if (http_fetch_global_init() < 0) { /* before any thread: the HTTP client's */
        fprintf(stderr, "meetlited: libcurl cannot start\n");
        rc = 1;
    } else {
        rc = run(&app);
        http_fetch_global_cleanup();
    }
    app_config_free(&app.cfg);
    return rc;
}
