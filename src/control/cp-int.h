/* Private to src/control: the error table, request validation by parameter tables, JWT, the
 * request object shared by the HTTP layer (cp-http.c) and the REST handlers (cp-api.c). */
#ifndef ML_CP_INT_H
#define ML_CP_INT_H

#include "control/cp.h"

#include <jansson.h>
#include <jwt.h>
#include <libwebsockets.h>
#include <pthread.h>

/* ---------------------------------------------------------------- errors (cp-err.c) */

/* Every error the control plane answers; each maps 1:1 to an HTTP status, a JSON code and a
 * WebSocket close code (4000 + status). */
enum cp_err {
    CP_OK = 0,
    CP_E_BAD_REQUEST,      /* 400 bad_request */
    CP_E_INVALID_JSON,     /* 400 invalid_json */
    CP_E_UNAUTHENTICATED,  /* 401 unauthenticated: no token */
    CP_E_INVALID_TOKEN,    /* 401 invalid_token */
    CP_E_TOKEN_EXPIRED,    /* 401 token_expired */
    CP_E_BAD_CREDENTIALS,  /* 401 invalid_credentials */
    CP_E_FORBIDDEN,        /* 403 forbidden */
    CP_E_NOT_ADMIN,        /* 403 not_admin */
    CP_E_REMOVED,          /* 403 removed */
    CP_E_HOST_PROTECTED,   /* 403 host_protected */
    CP_E_EMAIL_UNVERIFIED, /* 403 email_not_verified */
    CP_E_NOT_FOUND,        /* 404 not_found */
    CP_E_NO_MEETING,       /* 404 meeting_not_found */
    CP_E_NO_PARTICIPANT,   /* 404 participant_not_found */
    CP_E_OIDC_DISABLED,    /* 404 oidc_not_configured */
    CP_E_METHOD,           /* 405 method_not_allowed */
    CP_E_EMAIL_TAKEN,      /* 409 email_taken */
    CP_E_MEETING_FULL,     /* 409 meeting_full */
    CP_E_NOT_JOINED,       /* 409 not_joined */
    CP_E_ACCOUNT_CONFLICT, /* 409 account_conflict */
    CP_E_MEETING_ENDED,    /* 410 meeting_ended */
    CP_E_MEETING_EXPIRED,  /* 410 meeting_expired */
    CP_E_LENGTH_REQUIRED,  /* 411 length_required */
    CP_E_TOO_LARGE,        /* 413 body_too_large */
    CP_E_MEDIA_TYPE,       /* 415 unsupported_media_type */
    CP_E_MISSING_FIELD,    /* 422 missing_field */
    CP_E_INVALID_FIELD,    /* 422 invalid_field */
    CP_E_RATE_LIMITED,     /* 429 rate_limited */
    CP_E_INTERNAL,         /* 500 internal */
    CP_E_UNAVAILABLE,      /* 503 unavailable */
    CP_E_DRAINING,         /* 503 draining: this node takes no new joins (admin drain mode) */
    CP_E_CONFLICT,         /* 409 conflict: the admin API's request clashes with the state */
    CP_E__COUNT
};

int cp_err_status(enum cp_err e);
const char *cp_err_code(enum cp_err e);
const char *cp_err_message(enum cp_err e); /* the default message */
int cp_err_ws_code(enum cp_err e);
/* {"error":{"code":...,"message":...}} as a malloc'd string (msg NULL: the default). */
char *cp_err_json(enum cp_err e, const char *msg, size_t *len);

/* ---------------------------------------------------------------- parameters (cp-param.c) */

enum cp_ptype {
    CP_P_STRING, /* into char[size]; min/max: length in characters (code points) */
    CP_P_EMAIL,  /* a string that looks like an address; lowercased domain not assumed */
    CP_P_INT,    /* into long long; min/max: value */
    CP_P_BOOL,   /* into bool */
    CP_P_ENUM,   /* into int: index in enums[] */
};

#define CP_P_REQUIRED 0x1u
#define CP_P_NO_CTRL 0x2u /* refuse control characters (names, titles) */
#define CP_P_TRIM 0x4u    /* strip leading and trailing white space first */

/* One body parameter of an endpoint. The parsed values land in the endpoint's struct at
 * offset; presence flags (for optional ones) in a bool at has_offset (or CP_P_NOHAS). */
struct cp_param {
    const char *name;
    enum cp_ptype type;
    unsigned flags;
    long long min, max;
    size_t offset;
    size_t size; /* CP_P_STRING / EMAIL: buffer bytes, including the NUL */
    size_t has_offset;
    const char *const *enums; /* CP_P_ENUM: NULL-terminated */
};
#define CP_P_NOHAS ((size_t)-1)

/* Validates body (a parsed JSON value) against the NULL-name-terminated table, filling out.
 * Unknown members are ignored. Returns CP_OK, or an error with msg naming the field. */
/* HTTP request checks shared by the control plane and the admin listener (cp-http.c); every
 * error they return closes the connection after the answer. A header into buf: its length, 0
 * when absent, -1 when longer than buf. */
int cp_http_header(struct lws *wsi, enum lws_token_indexes t, char *buf, size_t len);
/* Content-Length into *content_length (-1 when absent); no Transfer-Encoding. */
enum cp_err cp_http_length(struct lws *wsi, long long *content_length, const char **msg);
/* A route's body: at most max_body bytes, a length for methods that may carry one, JSON, and
 * only where the route takes one. */
enum cp_err cp_http_body_check(struct lws *wsi, int method, long long content_length,
                               long long max_body, bool takes_body, const char **msg);
/* A JSON object body into a route's parameters (*out: calloc'd size bytes, the caller's);
 * the body is wiped once parsed. */
enum cp_err cp_http_params(const struct cp_param *table, size_t size, bool required, char *body,
                           size_t body_len, void **out, char *msg, size_t msglen);

enum cp_err cp_params_parse(const struct cp_param *table, const json_t *body, void *out, char *msg,
                            size_t msglen);

/* ---------------------------------------------------------------- JWT (cp-jwt.c) */

/* A signing and verifying key: HS256 (one secret) or ES256 (private PEM to sign, public PEM
 * to verify). */
struct cp_jwt_key {
    jwt_alg_t alg;
    unsigned char *sign, *verify; /* owned; for HS256 both point to one copy */
    int sign_len, verify_len;
    char kid[64]; /* OIDC keys: their key id ("" none) */
};

/* What a verified token must say. now is the wall clock in seconds. */
struct cp_jwt_expect {
    const char *iss;
    const char *aud;
    long long leeway_s;
    int64_t now;
};

#define CP_JWT_MAX 8192 /* bytes of a token we look at */

int cp_jwt_key_hs256(struct cp_jwt_key *k, const char *secret, char *err, size_t errlen) ML_WUR;
/* Loads an ES256 private key (PEM file) and derives its public key. */
int cp_jwt_key_es256_file(struct cp_jwt_key *k, const char *path, char *err, size_t errlen) ML_WUR;
void cp_jwt_key_free(struct cp_jwt_key *k);
/* Signs claims (a JSON object; borrowed) with k. Returns a malloc'd token or NULL. */
char *cp_jwt_sign(const struct cp_jwt_key *k, json_t *claims) ML_WUR;
/* Verifies token with k: the algorithm pinned to k's, the signature, exp (required), nbf and
 * iat (when present), iss and aud (when expected; aud may be an array). On CP_OK *out holds
 * the token (caller jwt_free()s). Errors: CP_E_INVALID_TOKEN or CP_E_TOKEN_EXPIRED. */
enum cp_err cp_jwt_verify(const struct cp_jwt_key *k, const char *token,
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
enum cp_err cp_jwks_verify(const struct cp_jwks *set, const char *token,
                           const struct cp_jwt_expect *ex, jwt_t **out) ML_WUR;

/* ---------------------------------------------------------------- routing and requests */

struct cp_req;
struct cp;
typedef void (*cp_handler_fn)(struct cp *cp, struct cp_req *req);

#define CP_ROUTE_AUTH 0x1u /* needs a valid access token */
#define CP_ROUTE_BODY 0x2u /* needs a JSON body (Content-Length required) */

/* One endpoint: the method (LWSHUMETH_*), the path with '*' standing for one segment, the
 * handler, and the table its JSON body is validated against (into a struct of params_size
 * bytes). */
struct cp_route {
    int method;
    const char *pattern;
    cp_handler_fn handler;
    unsigned flags;
    const struct cp_param *params;
    size_t params_size;
};

#define CP_MAX_CAPTURES 2
#define CP_SEGMENT_MAX 64

/* Matches path against the NULL-pattern-terminated table. Returns the route for method, or
 * NULL with *path_known telling whether another method would have matched (405, not 404).
 * Captures ('*' segments, at most CP_SEGMENT_MAX-1 bytes) are copied to caps. */
const struct cp_route *cp_route_match(const struct cp_route *table, int method, const char *path,
                                      bool *path_known, char caps[CP_MAX_CAPTURES][CP_SEGMENT_MAX]);
/* The Allow header value for a path ("GET, POST, OPTIONS"). */
void cp_route_allow(const struct cp_route *table, const char *path, char *buf, size_t len);
const char *cp_method_name(int method);

/* The authenticated caller of a request. */
struct cp_user {
    char id[40];
    char name[128];
};

/* One HTTP transaction. Owned by the control-plane thread; while a database job runs, the
 * job's work function reads the inputs (immutable meanwhile) and writes the outputs; if the
 * client goes away, the request is orphaned (wsi NULL) and freed when the job completes. */
struct cp_req {
    struct db_job job; /* first: the pool hands it back */
    struct cp *cp;
    struct lws *wsi; /* NULL once the connection closed */
    bool pending;    /* a database job is in flight */
    bool dispatched, ready, headers_sent, close_after;
    int method;
    const struct cp_route *route;
    char path[256];
    char caps[CP_MAX_CAPTURES][CP_SEGMENT_MAX];
    char request_id[68];
    char peer[64];
    char origin[256];
    int64_t start_us;
    long long content_length; /* -1: none */
    char *body;
    size_t body_len;
    bool body_overflow;
    struct cp_user user;
    void *params; /* the route's parsed body (params_size bytes) */
    /* handler scratch, for the work function */
    char ref_id[40], ref_code[16], target[40];
    /* output */
    int status;
    char *resp; /* LWS_PRE bytes of headroom, then resp_len bytes */
    size_t resp_len;
    enum cp_err err;
    char errmsg[200];
    char location[200];
    unsigned retry_after_s;
    char **revoked; /* usernames to hand to the revoke hook */
    size_t nrevoked;
    char log_note[96];            /* extra context for the access log (meeting, participant) */
    bool internal;                /* a job of the control plane itself (the sweep), no client */
    bool login_failed;            /* set by the login work function for the failure limits */
    char touched[40];             /* the meeting a write changed: its cached status is dropped */
    uint64_t cache_gen;           /* cp->cache_gen when a status read was submitted */
    struct cp_status *status_out; /* a status read's result, for the cache */
    /* runs on the control-plane thread when the job completes, before the answer */
    void (*on_done)(struct cp *cp, struct cp_req *req);
};

/* Frees a request and everything it owns (control-plane thread). */
void cp_req_free(struct cp_req *req);

/* The control plane, shared by its thread and the database threads (read-only for them). */
struct cp {
    struct cp_config cfg;
    struct cp_auth_config auth;
    struct db_pool *pool;
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    pthread_t thread;
    bool started, stopping;
    int port;
    struct cp_jwt_key key; /* access and signaling tokens */
    struct cp_jwks jwks;   /* OIDC */
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
    uint64_t req_seq;
    char rid_prefix[12];
    lws_sorted_usec_list_t sweep_sul;
    bool sweep_running;
    struct cp_status **cache; /* meeting status by id or code (CP_CACHE_SLOTS, direct-mapped) */
    uint64_t cache_gen;       /* bumped by every invalidation */
    struct cp_token_memo **tokens; /* verified access tokens (CP_TOKEN_SLOTS, direct-mapped) */
    /* operations (#8) */
    uint64_t http_by_status[CP_HTTP_STATUSES]; /* written by the HTTP thread only (NET_COUNT) */
    uint64_t ws_open;                          /* open signaling WebSockets (the HTTP thread) */
    bool draining;                             /* atomic: joins refused */
    char *turn_secret_override; /* under turn_mu: the admin API's signing secret, or NULL */
    struct sig *sig;            /* WebSocket signaling (sig-*.c); NULL when off */
    struct cp_web *web;         /* the browser client's files (cp-web.c); NULL: the API only */
    void *evloop;               /* the service thread's libev loop (struct ev_loop *) */
    long long conns;            /* connections open (HTTP and WebSocket; the HTTP thread) */
};

/* The status cache (cp-api.c), on the control-plane thread. */
#define CP_CACHE_SLOTS 4096
void cp_cache_invalidate(struct cp *cp, const char *meeting_id);
void cp_cache_free(struct cp *cp);

/* Access tokens verified on this thread, remembered until they expire (cp-api.c). */
#define CP_TOKEN_SLOTS 4096
void cp_tokens_free(struct cp *cp);

/* Answers (control-plane thread): an error, or a JSON body (takes ownership of body). */
void cp_reply_err(struct cp_req *req, enum cp_err e, const char *msg);
void cp_reply_json(struct cp_req *req, int status, json_t *body);
/* Answers with what req->resp and req->status already hold. */
void cp_reply_ready(struct cp_req *req);
/* Submits the request's job (req->job.work set); on a full or dead pool answers 503. */
void cp_submit(struct cp_req *req, db_work_fn work);
/* Work-function helpers (database thread): record the outcome in req. */
void cp_job_err(struct cp_req *req, enum cp_err e, const char *msg);
void cp_job_json(struct cp_req *req, int status, json_t *body);
/* Copies the TURN secret (for a credential) under its lock; "" when none. */
void cp_turn_secret(struct cp *cp, char *buf, size_t len);

/* Creates the lws context and binds control.listen (cp-http.c). */
int cp_http_init(struct cp *cp, char *err, size_t errlen) ML_WUR;

/* The browser client (cp-web.c). Before the context exists: finds the client's directory and
 * sets info's mounts (and the headers of every answer); 0, or -1 with err. */
int cp_web_init(struct cp *cp, struct lws_context_creation_info *info, char *err,
                size_t errlen) ML_WUR;
void cp_web_free(struct cp_web *w);
/* A request no file matched: a meeting link (/m/<code>) gets the app's index.html. Returns 1
 * when it is not one (the caller answers), 0 when answered, -1 to close the connection. */
int cp_web_fallback(struct cp *cp, struct lws *wsi);
/* GET /api/v1/config: what the browser client needs to know of this deployment. */
void cp_web_config(struct cp *cp, struct cp_req *req);

/* The REST API (cp-api.c). */
extern const struct cp_route cp_api_routes[];
/* The periodic sweep of expired meetings (cp-api.c), started from the control-plane thread. */
void cp_sweep(struct cp *cp);
/* Authenticates the request's bearer token into req->user. */
enum cp_err cp_authenticate(struct cp *cp, struct cp_req *req, const char *authz);

/* WebSocket signaling (sig-*.c): the protocol's callback, and its life within the control
 * plane's (started before the service thread; stopped after it, before the lws context goes;
 * freed after the pool's last drain). */
struct sig;
int sig_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len);
#define SIG_PSS_SIZE (sizeof(void *))
int sig_start(struct cp *cp, char *err, size_t errlen) ML_WUR;
/* Closes every signaling connection with 1001 from the service thread, waiting for them a
 * moment (before the service thread stops). */
void sig_quiesce(struct cp *cp);
void sig_stop(struct cp *cp);
void sig_free(struct cp *cp);
/* The iceServers of a join for a TURN credential (cp-api.c). New reference. */
json_t *cp_ice_servers(struct cp *cp, const char *user, const char *pass);

/* Failed-login limits (cp-limit.c): per account and per address, in a fixed-size table. */
struct cp_limiter;
struct cp_limiter *cp_limiter_new(size_t slots);
void cp_limiter_free(struct cp_limiter *l);
/* True when key has reached max failures within window_s; *retry_s gets the wait. */
bool cp_limiter_blocked(struct cp_limiter *l, const char *key, long long max, long long window_s,
                        unsigned *retry_s);
void cp_limiter_fail(struct cp_limiter *l, const char *key, long long window_s);
void cp_limiter_reset(struct cp_limiter *l, const char *key);

#endif
