/* The meeting control plane: its REST API, a service of the HTTP layer (src/http) on a server
 * of its own (control.listen) beside WebSocket signaling (src/signal), accounts with JWT
 * (password and OpenID Connect), meetings and their records in PostgreSQL through the db_
 * pool, TURN REST credentials for participants. Prefix: cp_. */
#ifndef ML_CP_H
#define ML_CP_H

#include "common/common.h"
#include "db/db.h"
#include "http/http.h"
#include "signal/sig.h"
#include "turn/turn.h"

/* The [assistant] configuration section: the help assistant's answers (cp-assistant.c), read
 * with the control plane's (a member of struct cp_config). */
struct cp_assistant_config {
    long long rate_max;      /* questions per account within rate_window_s */
    long long rate_window_s; /* the window of rate_max */
    long long question_max;  /* characters of a question */
    long long passages;      /* passages an answer quotes */
    /* optional generation (cp-llm.c): an OpenAI-compatible chat completions endpoint */
    char *llm_url;      /* NULL: off */
    char *llm_key_file; /* its bearer key, first line; NULL: none sent */
    char *llm_model;    /* the "model" of the request; NULL: "default" */
    long long llm_timeout_ms;
    long long question_retention_s; /* kb_questions kept this long; 0: kept until deleted */
};
extern const struct ml_cfg_key cp_assistant_cfg_keys[];

/* The [control] configuration section. */
struct cp_config {
    char *listen;       /* "127.0.0.1:8080"; NULL: the control plane is off (TURN-only node) */
    char *public_url;   /* how clients reach us ("https://meet.example.org"); NULL: unknown */
    char *cors_origins; /* comma list of allowed browser origins, or "*" */
    char *turn_uris;    /* comma list handed out in iceServers; NULL: derived from turn.listen */
    long long max_body; /* bytes of a request body */
    long long max_connections;          /* HTTP connections at once; 0: derived (http_server_new) */
    long long max_connections_per_addr; /* of them from one client address; 0: no cap */
    bool access_log;
    long long default_duration_s, min_duration_s, max_duration_s;
    long long default_participants, max_participants;
    long long credential_ttl_s;  /* TURN credential lifetime (never beyond the meeting) */
    long long sweep_interval_s;  /* how often expired meetings are closed */
    long long meetings_list_max; /* meetings returned by GET /api/v1/meetings */
    long long status_cache_ms;   /* how long a meeting's status is served from memory */
    char *tls_cert, *tls_key;    /* PEM files: HTTPS and wss:// on control.listen; NULL: plain */
    char *web_root;        /* the browser client's directory; NULL: found (cp-web.c); "off": none */
    char *trusted_proxies; /* CIDR list: peers whose forwarding header names the client */
    int forwarded_header;  /* enum http_fwd_header */
    struct cp_assistant_config assistant; /* its own section, [assistant] */
};
extern const struct ml_cfg_key cp_cfg_keys[];

/* The [auth] configuration section. */
struct cp_auth_config {
    char *jwt_secret;      /* HS256 secret (>= 32 bytes) */
    char *jwt_secret_file; /* the file jwt_secret was read from (ml_cfg_resolve_files) */
    char *jwt_key;         /* path of an ES256 private key (PEM); wins over jwt_secret */
    char *jwt_issuer, *jwt_audience;
    long long token_lifetime_s, signaling_token_lifetime_s, leeway_s;
    char *oidc_issuer, *oidc_audience, *oidc_jwks_file;
    char *oidc_jwks_uri; /* NULL: the discovery document's jwks_uri (without oidc_jwks_file) */
    char *oidc_ca_file;  /* CA bundle for fetching them; NULL: the system's */
    long long oidc_jwks_refresh_min_s, oidc_jwks_refresh_max_s, oidc_jwks_refetch_s;
    char *oidc_authorize_url; /* where the browser client gets ID tokens; NULL: Google's, if so */
    long long argon2_memory_kib, argon2_iterations;
    long long password_min;
    long long login_max_failures;      /* per account and client address per window */
    long long login_max_failures_addr; /* per client address per window */
    long long login_slowdown_after;    /* account failures per window before attempts wait */
    long long login_slowdown_max_s;
    long long login_window_s;
};
extern const struct ml_cfg_key cp_auth_cfg_keys[];

struct turn_config;
struct db_config;
/* The rules between keys that start applies when control.listen is set: a database, a TURN
 * secret, a JWT key (an HS256 secret of 32 bytes or more), OIDC keys together, durations and
 * participants in order. No I/O. 0 or -1 with err filled. */
int cp_config_check(const struct cp_config *cfg, const struct cp_auth_config *auth,
                    const struct turn_config *turn, const struct db_config *db, char *err,
                    size_t errlen) ML_WUR;
/* The key files start loads when control.listen is set (auth.jwt-key, auth.oidc-jwks-file),
 * loaded and let go: --check-config. 0 or -1 with err filled. */
int cp_config_check_files(const struct cp_config *cfg, const struct cp_auth_config *auth, char *err,
                          size_t errlen) ML_WUR;

struct sig_config; /* signal/sig.h */

/* Called on the control-plane thread for each TURN credential username revoked (a leave, a
 * removal, a meeting's end or expiry). Issue #5 connects it to the relay. */
typedef void (*cp_revoke_fn)(void *arg, const char *username);

struct cp;

/* Creates the control plane: checks the configuration (a JWT key, a TURN secret, a database
 * URL), loads keys, makes the database pool and binds the HTTP listener. Configurations are
 * copied. Returns NULL with err filled. */
struct cp *cp_new(const struct cp_config *cfg, const struct cp_auth_config *auth,
                  const struct turn_config *turn, const struct db_config *db, char *err,
                  size_t errlen) ML_WUR;
/* Sets the revocation hook (before cp_start, or NULL). */
void cp_set_revoke_hook(struct cp *cp, cp_revoke_fn fn, void *arg);
/* Sets up WebSocket signaling (src/signal) on the control plane's server (before cp_start):
 * cfg and db are copied. 0, or -1 with err. */
int cp_set_signaling(struct cp *cp, const struct sig_config *cfg, const struct db_config *db,
                     char *err, size_t errlen) ML_WUR;
/* The control plane's address is a shared:// listener's (before cp_start): it binds no socket of
 * its own and is served only on the connections that listener hands over (cp_adopt). */
void cp_serve_shared_only(struct cp *cp);
/* A shared:// listener exists (before cp_start): HTTPS it finds by a ClientHello offering
 * http/1.1 comes here before its handshake, which the control plane's server does with
 * turn.tls-cert, turn.tls-key and the rest of turn.tls-* (copied), the listener's own. */
void cp_serve_shared_tls(struct cp *cp, const struct turn_config *turn);
/* True when HTTPS can be handed over before its handshake (cp_adopt with tls). */
bool cp_adopts_tls(const struct cp *cp);
/* A net_http_fn: takes an HTTP connection found on a shared:// listener (arg: the struct cp;
 * any thread). fd is ours from the call on; tls: its ClientHello is unread. */
void cp_adopt(void *arg, int fd, const struct sockaddr *peer, bool tls);
/* Starts the service thread. 0 or -1 with err filled. */
int cp_start(struct cp *cp, char *err, size_t errlen) ML_WUR;
/* The port the HTTP listener is bound to. */
int cp_port(const struct cp *cp);
/* Puts a new certificate (net_tls_cert_load) in use for new HTTPS and wss:// connections of
 * control.listen; false (nothing done) when it serves plain HTTP. Any thread. */
bool cp_tls_set(struct cp *cp, SSL_CTX *loaded);
/* The same for the HTTPS that a shared:// listener hands over before the handshake (the pair of
 * turn.tls-cert); false when there is none. Any thread. */
bool cp_shared_tls_set(struct cp *cp, SSL_CTX *loaded);
/* Takes the new TURN shared secrets (SIGHUP). Thread-safe. */
void cp_reload_turn(struct cp *cp, const struct turn_config *turn);
/* ---------------------------------------------------------------- a fleet of relays (#16) */

/* How a join's iceServers name a relay (docs/fleet.md): control.turn-uris (static), the
 * meeting's node of the relay registry (meeting), or the least loaded node (least-loaded). */
enum cp_placement { CP_PLACE_STATIC, CP_PLACE_MEETING, CP_PLACE_LEAST_LOADED };
struct cp_fleet {
    int placement;             /* enum cp_placement */
    const char *region;        /* the nodes placed on; NULL or "": every region (copied) */
    long long node_timeout_ms; /* a node whose heartbeat is older is not placed on */
    long long check_ms;        /* how often stranded participants are looked for */
    long long push_max;        /* participants moved per check */
};
/* Sets placement (before cp_start; without it, static). */
void cp_set_fleet(struct cp *cp, const struct cp_fleet *f);
/* The STUN/TURN URIs of a turn.listen list, cheapest first (as a join derives them when
 * control.turn-uris is empty), a wildcard address named wildcard_host: a comma list (caller
 * frees), or NULL with err filled. */
char *cp_listen_uris_list(const char *listen, const char *wildcard_host, char *err,
                          size_t errlen) ML_WUR;

/* A STUN/TURN URI as iceServers may carry it (RFC 7064, 7065): stun:, stuns:, turn: or turns:
 * and a host, at most CP_ICE_URI_MAX bytes of printable ASCII without space, quote or
 * backslash. n bytes of s. What a relay registers and what placement reads back both pass it. */
#define CP_ICE_URI_MAX 255
#define CP_ICE_URIS_MAX 16 /* URIs a relay registers (relay_nodes.uris' CHECK) */
bool cp_ice_uri_ok(const char *s, size_t n);

/* Stops the thread, closes connections, drains the database pool and frees everything. */
void cp_free(struct cp *cp);

/* ---------------------------------------------------------------- operations (issue #8) */

#define CP_HTTP_STATUS_MIN 100
#define CP_HTTP_STATUSES 500 /* 100..599 */

/* What the control plane did, for the stats endpoint; counters only grow. */
struct cp_counters {
    uint64_t http_by_status[CP_HTTP_STATUSES]; /* answers, index status - CP_HTTP_STATUS_MIN */
    struct http_conn_stats http_conns;         /* connections, limits and refusals */
    uint64_t ws_connections;                   /* gauge: open signaling WebSockets */
    uint64_t ws_closes[SIG_CLOSE_NCODES + 1];  /* signaling connections ended, by close code */
    struct http_latency latency[HTTP_CLASSES]; /* answers' latencies, by class */
    struct db_pool_stats pool;
};
/* Reads the counters without stopping the HTTP thread. Any thread. */
void cp_counters_read(struct cp *cp, struct cp_counters *out);
/* Drain mode: joins are refused with 503 "draining" (clients join through another node);
 * meetings, participants already in them and everything else carry on. Any thread. */
void cp_set_drain(struct cp *cp, bool on);
/* A meeting's join code ("abc-defg-hij", any case) lowercased into out; false (out untouched)
 * when s is not one. */
#define CP_CODE_STR 13
bool cp_meeting_code_norm(const char *s, char out[CP_CODE_STR]);
/* Overrides the secret new TURN credentials are signed with (the newest secret managed through
 * the admin API; copied); NULL or "" returns to the first of turn.auth-secret. Any thread. */
void cp_set_turn_secret(struct cp *cp, const char *secret);

#endif
