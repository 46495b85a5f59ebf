/* The admin API: an HTTP(S) listener of its own (admin.listen, loopback by default) with bearer
 * tokens, serving /healthz, /readyz, /stats (JSON), /metrics (Prometheus) and a JSON API to
 * manage the relay: TURN users and shared secrets kept in PostgreSQL, REST credentials,
 * allocations (list, close), drain mode, the log level and the TLS certificate. Also the
 * synchronisation of those users and secrets from PostgreSQL into the relay, on every node.
 * Prefix: adm_. */
#ifndef ML_ADM_H
#define ML_ADM_H

#include "common/common.h"
#include "control/cp.h"
#include "db/db.h"
#include "net/net.h"
#include "stats/st.h"
#include "turn/turn.h"

/* The [admin] configuration section. */
struct adm_config {
    char *listen;              /* "127.0.0.1:8081" */
    char *token;               /* comma list of bearer tokens; NULL: the listener is off */
    char *token_file;          /* the file token was read from (ml_cfg_resolve_files) */
    char *metrics_token;       /* comma list of scrape tokens: GET /metrics only; NULL: none */
    char *metrics_token_file;  /* the file metrics_token was read from */
    char *tls_cert;            /* PEM chain; with tls_key: HTTPS */
    char *tls_key;             /* PEM private key */
    bool allow_remote;         /* listen beyond loopback without TLS */
    long long top_meetings;    /* meetings listed in /stats */
    bool db_credentials;       /* TURN users and secrets from PostgreSQL */
    long long sync_interval_s; /* full re-read even without a notification */
    long long max_turn_users;  /* users the admin API creates and the relay loads */
    long long max_connections; /* admin HTTP connections at once */
};
extern const struct ml_cfg_key adm_cfg_keys[];
/* The rules between keys that start applies when the listener runs (admin.token set): an
 * address, TLS files in pairs, loopback unless TLS or admin.allow-remote. No I/O. 0 or -1. */
int adm_config_check(const struct adm_config *cfg, char *err, size_t errlen) ML_WUR;

/* ---------------------------------------------------------------- credential sync */

/* Keeps the relay's runtime credentials (turn_server_set_runtime_creds) equal to PostgreSQL's
 * turn_users (this realm) and turn_secrets: a thread of its own with one connection LISTENs on
 * ml_turn_creds and reads both tables whole when a change is notified, when it (re)connects,
 * and every sync_interval_s in any case. While PostgreSQL is away the last tables loaded stay
 * in force. */
struct adm_sync;

/* Called after every change applied (from the sync thread or a database thread): the signing
 * secret may have changed. */
typedef void (*adm_sync_changed_fn)(void *arg);

/* Starts the synchronisation (database.url must be set). srv is borrowed until
 * adm_sync_free(). NULL with err filled. */
struct adm_sync *adm_sync_new(const struct db_config *db, const struct adm_config *cfg,
                              struct turn_server *srv, adm_sync_changed_fn changed, void *arg,
                              char *err, size_t errlen) ML_WUR;
/* Its figures, for the stats. Any thread. */
void adm_sync_stats(struct adm_sync *s, struct st_sync *out);
/* Stops the thread and frees it. */
void adm_sync_free(struct adm_sync *s);

/* ---------------------------------------------------------------- the listener */

/* What the admin API works on; pointers borrowed until adm_free(). */
struct adm_deps {
    struct turn_server *turn;
    struct net_engine *engine;
    struct cp *cp;              /* NULL on a TURN-only node */
    struct adm_sync *sync;      /* NULL without database credentials */
    const struct db_config *db; /* copied; url NULL: no database */
    /* Hooks, called on the admin thread. */
    int (*reload_tls)(void *arg, char *err, size_t errlen);   /* 0, or -1 with err filled */
    void (*set_drain)(void *arg, bool on);                    /* the relay and the control plane */
    void (*relay_link)(void *arg, struct st_relay_link *out); /* may be NULL */
    void (*webhooks)(void *arg, struct st_webhooks *out);     /* may be NULL */
    void *arg;
};

struct adm;

/* Validates cfg (tokens, the address, TLS files, the loopback rule), binds admin.listen and
 * makes the admin's database pool. cfg and deps are copied. NULL with err filled. */
struct adm *adm_new(const struct adm_config *cfg, const struct adm_deps *deps, char *err,
                    size_t errlen) ML_WUR;
/* Starts the service thread. 0, or -1 with err filled. */
int adm_start(struct adm *a, char *err, size_t errlen) ML_WUR;
/* The port the listener is bound to. */
int adm_port(const struct adm *a);
/* Puts a new certificate (net_tls_cert_load) in use for new HTTPS connections of the admin
 * listener; false (nothing done) when it serves plain HTTP. Any thread. */
bool adm_tls_set(struct adm *a, SSL_CTX *loaded);
/* Takes new tokens (SIGHUP; admin.token is reloadable). 0, or -1 with err filled (the old
 * tokens stay). Any thread. */
int adm_reload(struct adm *a, const struct adm_config *cfg, char *err, size_t errlen) ML_WUR;
/* Stops the service thread and the admin's database threads: no request is served and no
 * database job runs after it returns (call it before adm_sync_free). Operations it started on
 * the workers may still call back; they are collected by adm_free(). */
void adm_stop(struct adm *a);
/* Frees everything; call after the network engine is freed. */
void adm_free(struct adm *a);

/* Validators of the configuration (also used by meetlite-admin). */
int adm_tokens_validate(const char *value, char *err, size_t errlen);
/* True when name is acceptable as a TURN user name: 1 to 127 of A-Z a-z 0-9 . _ @ + -. */
bool adm_user_name_ok(const char *name);

#endif
