/* Private to src/control: JWT, the control plane's state, its request object (the HTTP layer's
 * with what the REST handlers keep), the status cache, the failed-login limits. */
#ifndef ML_CP_INT_H
#define ML_CP_INT_H

#include "control/cp.h"
#include "http/http.h"
#include "signal/sig.h"

#include <jansson.h>
#include <jwt.h>
#include <libwebsockets.h>
#include <pthread.h>

/* ---------------------------------------------------------------- JWT (cp-jwt.c) */

/* A signing and verifying key: HS256 (one secret) or ES256 (private PEM to sign, public PEM
 * to verify). */
struct cp_jwt_key {
    jwt_alg_t alg;
    unsigned char *sign, *verify; /* owned; for HS256 both point to one copy */
    int sign_len, verify_len;
    struct ml_hmac *hs256; /* owned; HS256: the signing template (ml_hmac_new), else NULL */
    char kid[64];          /* OIDC keys: their key id ("" none) */
};

/* What a verified token must say. now is the wall clock in seconds. */
struct cp_jwt_expect {
    const char *iss;
    const char *aud;
    long long leeway_s;
    int64_t now;
};

#define CP_JWT_MAX 8192      /* bytes of a token we look at */
#define CP_JWT_SECRET_MIN 32 /* bytes of an HS256 secret (RFC 7518 3.2: at least the hash size) */

int cp_jwt_key_hs256(struct cp_jwt_key *k, const char *secret, char *err, size_t errlen) ML_WUR;
/* Loads an ES256 private key (PEM file) and derives its public key. */
int cp_jwt_key_es256_file(struct cp_jwt_key *k, const char *path, char *err, size_t errlen) ML_WUR;
void cp_jwt_key_free(struct cp_jwt_key *k);
/* Signs claims (a JSON object; borrowed) with k. Returns a malloc'd token or NULL. */
char *cp_jwt_sign(const struct cp_jwt_key *k, json_t *claims) ML_WUR;
/* The same with the claims already written as a JSON object (the join writes its own: packing
 * and dumping them through jansson cost it ~30k instructions). */
char *cp_jwt_sign_text(const struct cp_jwt_key *k, const char *claims) ML_WUR;
/* Verifies token with k: the algorithm pinned to k's, the signature, exp (required), nbf and
 * iat (when present), iss and aud (when expected; aud may be an array). On HTTP_OK *out holds
 * the token (caller jwt_free()s). Errors: HTTP_E_INVALID_TOKEN or HTTP_E_TOKEN_EXPIRED. */
enum http_err cp_jwt_verify(const struct cp_jwt_key *k, const char *token,
                            const struct cp_jwt_expect *ex, jwt_t **out) ML_WUR;
/* The "alg" and "kid" of a token's header, without verifying anything (to pick a key). */
int cp_jwt_peek(const char *token, char *alg, size_t alen, char *kid, size_t klen) ML_WUR;

/* A set of OIDC verification keys from a JWKS file (RSA and P-256 EC keys, as PEM). */
struct cp_jwks {
    struct cp_jwt_key *keys;
    size_t n;
};
int cp_jwks_load(struct cp_jwks *set, const char *path, char *err, size_t errlen) ML_WUR;
int cp_jwks_parse(struct cp_jwks *set, const char *json, char *err, size_t errlen) ML_WUR;
void cp_jwks_free(struct cp_jwks *set);
/* Verifies an ID token against the set: key by kid (or the only key of a matching type),
 * alg pinned to that key's type, then as cp_jwt_verify. */
enum http_err cp_jwks_verify(const struct cp_jwks *set, const char *token,
                             const struct cp_jwt_expect *ex, jwt_t **out) ML_WUR;

/* The issuer's keys kept current (cp-jwks.c): the file of auth.oidc-jwks-file, or fetched from
 * auth.oidc-jwks-uri or the discovery document's jwks_uri on a thread of its own. NULL with err
 * (a file that does not load, no thread). */
struct cp_jwks_src;
struct cp_jwks_src *cp_jwks_src_new(const struct cp_auth_config *auth, char *err,
                                    size_t errlen) ML_WUR;
/* The max-age of a Cache-Control header value (n bytes, not NUL-terminated): seconds (capped at
 * CP_JWKS_AGE_MAX), 0 for no-cache or no-store, -1 when it gives none. */
#define CP_JWKS_AGE_MAX 31536000LL /* a year */
long long cp_jwks_max_age(const char *value, size_t n);
/* Stops the fetcher and frees everything (no verification may be running). */
void cp_jwks_src_free(struct cp_jwks_src *s);
/* cp_jwks_verify against the set in force. A token naming a key the set lacks asks for a fetch
 * (at most one per auth.oidc-jwks-refetch-interval) and waits up to 3 s for it: call it from a
 * database thread, never an event loop. HTTP_E_UNAVAILABLE while no set was ever fetched. */
enum http_err cp_jwks_src_verify(struct cp_jwks_src *s, const char *token,
                                 const struct cp_jwt_expect *ex, jwt_t **out) ML_WUR;

/* ---------------------------------------------------------------- requests */

struct cp;

/* The control plane's request: the HTTP layer's, then what the REST handlers keep for their
 * work functions (database threads read it while the job runs; see struct http_req). */
struct cp_req {
    struct http_req http;                      /* first: the HTTP layer and the pool hand it back */
    char ref_id[40], ref_code[16], target[40]; /* the meeting (by id or code), a participant */
    char **revoked;                            /* usernames to hand to the revoke hook */
    size_t nrevoked;
    bool login_failed;            /* set by the login work function for the failure limits */
    char touched[40];             /* the meeting a write changed: its cached status is dropped */
    uint64_t cache_gen;           /* cp->cache_gen when a status read was submitted */
    struct cp_status *status_out; /* a status read's result, for the cache */
    /* runs on the control-plane thread when the job ran, before the answer */
    void (*on_done)(struct cp *cp, struct cp_req *req);
};

static inline struct cp_req *cp_req_of(struct http_req *r)
{
    return (struct cp_req *)r; /* http is the first member */
}

static inline struct cp *cp_of(const struct cp_req *req)
{
    return req->http.arg;
}

/* The control plane, shared by its thread and the database threads (read-only for them). */
struct cp {
    struct cp_config cfg;
    struct cp_auth_config auth;
    struct db_pool *pool;
    struct http_server *http; /* control.listen: the REST API, signaling, the browser client */
    struct cp_jwt_key key;    /* access and signaling tokens */
    struct cp_jwks_src *jwks; /* OIDC: the issuer's keys; NULL without auth.oidc-issuer */
    bool oidc;
    char dummy_hash[128]; /* verified when an account does not exist (equal timing) */
    pthread_mutex_t turn_mu;
    char *turn_secret; /* the first of turn.auth-secret: what new credentials are signed with */
    json_t *turn_uris; /* array of strings */
    char **cors;       /* allowed origins; "*" allows any */
    size_t ncors;
    cp_revoke_fn revoke;
    void *revoke_arg;
    struct cp_limiter *limiter;
    struct ml_cidr_set trusted_proxies;  /* control.trusted-proxies */
    struct cp_login_delay *login_delays; /* logins waiting out an account's slowdown (http) */
    bool sweep_running;
    struct cp_status **cache; /* meeting status by id or code (CP_CACHE_SLOTS, direct-mapped) */
    uint64_t cache_gen;       /* bumped by every invalidation */
    struct cp_token_memo **tokens; /* verified access tokens (CP_TOKEN_SLOTS, direct-mapped) */
    /* operations (#8) */
    bool draining;              /* atomic: joins refused */
    bool shared_only;           /* control.listen is a shared:// listener's: no socket of its own */
    struct http_tls shared_tls; /* a shared:// listener's TLS (strings owned); cert NULL: none */
    char *turn_secret_override; /* under turn_mu: the admin API's signing secret, or NULL */
    struct sig *sig;            /* WebSocket signaling (src/signal); NULL when off */
    struct cp_web *web;         /* the browser client's files (cp-web.c); NULL: the API only */
    struct cp_llm *llm;         /* the assistant's generation (cp-llm.c); NULL: off */
    /* a fleet of relays (cp-fleet.c) */
    struct cp_fleet fleet; /* region owned */
    bool fleet_running;    /* HTTP thread: a check for stranded participants is in flight */
    int64_t sweep_last_ms; /* HTTP thread: monotonic, the last sweep and fleet check */
    int64_t prune_last_ms; /* HTTP thread: monotonic, the questions' log last pruned */
    int64_t fleet_last_ms;
};

/* ---------------------------------------------------------------- caches (cp-cache.c) */

/* A meeting's status as the status cache holds it: both JSON forms and who may see the
 * roster. The strings follow the struct in the same allocation. */
struct cp_status {
    char key[40]; /* the id or code it is filed under */
    char id[40], code[16], host[40];
    int64_t fetched_ms, expires_s; /* monotonic, when read; wall clock, the meeting's end */
    char *members;                 /* comma list of active participants' user ids */
    char *full, *pub;              /* with the roster, and without */
    size_t full_len, pub_len;
};
#define CP_STATUS_CACHE_MAX_BYTES 16384 /* bigger rosters are not cached */

/* The status cache, on the control-plane thread (CP_CACHE_SLOTS, direct-mapped). A fresh
 * entry for key (an id or a code) read within control.status-cache-ms, or NULL. */
#define CP_CACHE_SLOTS 4096
const struct cp_status *cp_cache_get(struct cp *cp, const char *key);
/* Files a copy of s under its id and its code (a copy of s made for key: malloc'd, NULL when
 * memory is short). */
struct cp_status *cp_status_dup(const struct cp_status *s, const char *key);
void cp_cache_put(struct cp *cp, const struct cp_status *s);
/* A write touched the meeting: its entries go, and reads in flight are not filed. */
void cp_cache_invalidate(struct cp *cp, const char *meeting_id);
void cp_cache_free(struct cp *cp);

/* Access tokens verified on this thread, remembered until they expire (CP_TOKEN_SLOTS,
 * direct-mapped): the user a remembered, unexpired token names (true), or false (an expired
 * one is forgotten). */
#define CP_TOKEN_SLOTS 4096
bool cp_token_recall(struct cp *cp, const char *token, int64_t now_s, long long leeway_s,
                     struct http_user *user);
/* Remembers a token verified just now. */
void cp_token_remember(struct cp *cp, const char *token, long long exp_s,
                       const struct http_user *user);
void cp_tokens_free(struct cp *cp);

/* ---------------------------------------------------------------- the REST API (cp-api.c) */

/* The route tables, gathered for the service, and each resource's. */
extern const struct http_route *const cp_api_routes[];
extern const struct http_route cp_account_routes[];     /* cp-account.c */
extern const struct http_route cp_meeting_routes[];     /* cp-meeting.c */
extern const struct http_route cp_participant_routes[]; /* cp-participant.c */
extern const struct http_route cp_assistant_routes[];   /* cp-assistant.c */
#define CP_SEGMENT_MAX 96 /* bytes of a path segment of the API, NUL included (a slug: 80) */

/* Submits the request's database job: work on a database thread, then (control-plane thread)
 * the status cache and the revocation hook are told, on_done runs, and the job's outcome is
 * answered. */
void cp_submit(struct cp_req *req, db_work_fn work);
/* Frees what a request's control-plane part owns (the service's req_free). */
void cp_req_free(struct http_req *r);
/* caps[0] names a meeting, by id or by join code: into ref_id or ref_code. false: it names
 * nothing (both left ""). */
bool cp_parse_ref(struct cp_req *req);
/* A handler of a meeting's path: the job runs when the path names a meeting, else 404. */
void cp_on_meeting(struct http_req *r, db_work_fn work);
/* The same, and caps[1] a participant's id: into target. */
bool cp_parse_target(struct cp_req *req);
/* A statement parameter: NULL (SQL NULL) for an empty string. */
static inline const char *cp_nz(const char *s)
{
    return s && *s ? s : NULL;
}
/* A query's rows arrived. */
bool cp_tuples(const PGresult *r);
/* A failed statement: DB_UNAVAILABLE when the connection broke or the statement was cut off
 * (the client gets 503), else the log line for operators (rid names the request) and
 * DB_FAILED. Clears r. */
enum db_status cp_sql_error(PGresult *r, const char *action, const char *rid);
/* A failed statement of a request: cp_sql_error, and the answer for the client (a foreign key
 * to a deleted account: its token is no longer valid). */
enum db_status cp_sql_failed(struct cp_req *req, PGresult *r, const char *action);
/* The revoked usernames of a PostgreSQL text[] ("{a,b}"), for the revocation hook. */
void cp_take_revoked(struct cp_req *req, const char *arr);
/* A statement whose one value is the answer's JSON text (200; no row: the error absent). */
enum db_status cp_json_row(struct cp_req *req, struct db_conn *c, const struct db_stmt *st,
                           const char *const *p, enum http_err absent, const char *action);
/* The meeting SQL functions that act on a meeting (ml_leave, ml_end, ml_remove, ml_set_role,
 * ml_meeting_usage) answer one row: the outcome, the meeting, the function's own columns,
 * the revoked usernames last. */
enum { CP_OUT_OUTCOME, CP_OUT_MEETING, CP_OUT_OWN };
/* Runs one; a row whose outcome is not ok is the request's error. On DB_OK *out holds the
 * row (caller PQclear()s); the meeting's cached status is dropped, the revocations kept. */
enum db_status cp_outcome_row(struct cp_req *req, struct db_conn *c, const struct db_stmt *st,
                              const char *const *p, const char *action, PGresult **out);
/* The table of a route that takes no body but may get an empty JSON object. */
extern const struct http_param cp_no_params[];
/* Copies the TURN secret (for a credential) under its lock; "" when none. */
void cp_turn_secret(struct cp *cp, char *buf, size_t len);

/* A meeting's passcode (cp-meeting.c): 4 to 64 characters, hashed as a password is. */
#define CP_PASSCODE_MIN 4
#define CP_PASSCODE_MAX 64
#define CP_PASSCODE_BYTES (CP_PASSCODE_MAX * 4 + 1)
/* argon2id of a password or a meeting's passcode with a fresh salt and auth.argon2-*
 * (cp-account.c): wipes secret and writes the encoded hash into hash (160 bytes are enough).
 * ARGON2_OK (0), or argon2's negative error code (argon2_error_message). A database thread
 * only: it takes tens of milliseconds, never the HTTP thread's. */
#define CP_HASH_BYTES 160
int cp_secret_hash(struct cp *cp, char *secret, char *hash, size_t len) ML_WUR;

/* The browser client (cp-web.c). Before the server exists: finds the client's directory and
 * sets the server's mounts (and the headers of every answer); 0, or -1 with err. */
int cp_web_init(struct cp *cp, struct http_server_config *hc, char *err, size_t errlen) ML_WUR;
void cp_web_free(struct cp_web *w);
/* The server's fallback (arg: the cp): a meeting link (/m/<code>) gets the app's index.html.
 * Returns 1 when it is not one (the API answers), 0 when answered, -1 to close. */
int cp_web_fallback(void *arg, struct lws *wsi);
/* GET /api/v1/config: what the browser client needs to know of this deployment. */
void cp_web_config(struct http_req *r);

/* The periodic sweep of expired meetings (cp-meeting.c): the service's tick (arg: the cp). */
void cp_sweep(void *arg);
/* The service's authentication (cp-account.c): the bearer token into req->user. */
enum http_err cp_authenticate(struct http_req *r, const char *authz);

/* A participant's TURN credential as a join makes it (cp-participant.c; any thread): the password
 * of cred_user, the username ml_join recorded ("<expiry>:<tag>.<participant>"), signed with the
 * current secret; user gets the username made, which must be cred_user. 0, or -1. */
int cp_credential(struct cp *cp, const char *cred_user, long long expires_s, char *user,
                  size_t ulen, char *pass, size_t plen);
/* The iceServers handed out with a credential (user, pass): STUN URIs, TURN URIs with it. */
json_t *cp_ice_servers(struct cp *cp, const char *user, const char *pass);
/* The same from a list of URIs (borrowed). */
json_t *cp_ice_from(const json_t *uris, const char *user, const char *pass);
/* The STUN/TURN URIs of a turn.listen list (cp.c); NULL with err filled. */
json_t *cp_listen_uris(const char *listen, const char *wildcard_host, char *err, size_t errlen);

/* ---------------------------------------------------------------- a fleet (cp-fleet.c) */

/* A participant's placement under the configured rule, on a database thread with its
 * connection c: what the client is told of it (new reference), {"placement","node","uris",
 * "fallback":{"node","iceServers"}} with the fallback's iceServers for the credential (user,
 * pass); the participant's row records its node. NULL under static placement, with no live
 * node, or when placement fails: the static URIs then. */
json_t *cp_fleet_place(struct cp *cp, struct db_conn *c, const char *mid, const char *pid,
                       const char *user, const char *pass);
/* The URIs a participant is given: the placement's primary (relay), else control.turn-uris. */
const json_t *cp_fleet_uris(const struct cp *cp, const json_t *relay);
/* The service's tick (HTTP thread): the expiry sweep and the fleet's failover check, each when
 * due. */
void cp_tick(void *arg);
/* How often cp_tick must run. */
long long cp_tick_ms(const struct cp *cp);
/* The iceServers of a join for that credential, as JSON text (caller frees), or NULL; placed
 * as a join is (cp_fleet_place) when c is not NULL (*relay: JSON text or NULL, caller frees). */
char *cp_ice_json(struct cp *cp, struct db_conn *c, const char *mid, const char *pid,
                  const char *cred_user, long long expires_s, char **relay);

/* The help assistant's optional generation (cp-llm.c). Starts its threads and reads the key
 * file; NULL with err. */
struct cp_llm;
struct cp_llm *cp_llm_new(const struct cp_assistant_config *cfg, char *err, size_t errlen);
/* The endpoint's bearer key from assistant.llm-key-file, by the rules of every -file key
 * (ml_secret_read): a malloc'd string (wipe and free it), or NULL with err. */
char *cp_llm_read_key(const char *name, char *err, size_t errlen);
/* Stops the threads: a transfer in flight is aborted, queued questions are answered without
 * generation. Before http_server_free. */
void cp_llm_free(struct cp_llm *l);
/* Hands a question's retrieval answer (takes ownership) to generation, which answers req
 * later on the server thread (held meanwhile). The passages' "text" members go to the endpoint
 * and are dropped from the answer. false: not queued (too many waiting); answer is kept by the
 * caller, marked as a retrieval answer. */
bool cp_llm_ask(struct cp_llm *l, struct http_req *req, const char *question, json_t *answer);

/* Logins waiting out their account's slowdown are let go (after http_server_stop: no timer
 * runs any more); their requests complete unanswered when the server is freed. */
void cp_login_delays_release(struct cp *cp);

/* Failed-login limits (cp-limit.c): failures per key (an account, an address, an account from
 * an address) in a fixed-size table. */
struct cp_limiter;
struct cp_limiter *cp_limiter_new(size_t slots);
void cp_limiter_free(struct cp_limiter *l);
/* True when key has reached max failures within window_s; *retry_s gets the wait. */
bool cp_limiter_blocked(struct cp_limiter *l, const char *key, long long max, long long window_s,
                        unsigned *retry_s);
void cp_limiter_fail(struct cp_limiter *l, const char *key, long long window_s);
/* Failures of key within the current window (0 when none or the window is over). */
unsigned cp_limiter_failures(struct cp_limiter *l, const char *key, long long window_s);
void cp_limiter_reset(struct cp_limiter *l, const char *key);
/* The sign-in limits (control.login-*) that a password login and a meeting's passcode share
 * (cp-account.c): true when the pair (an account, or a meeting's joiner, from an address)
 * has reached login-max-failures or the address login-max-failures-addr; *retry_s gets the
 * wait. cp_signin_failed counts one failure on both. */
bool cp_signin_blocked(struct cp *cp, const char *pair, const char *addr, unsigned *retry_s);
void cp_signin_failed(struct cp *cp, const char *pair, const char *addr);

#endif
