/* The HTTP layer every API of the daemon is served by: one libwebsockets server core (a
 * context, its service thread and loop, connection limits, the access log, answers by status),
 * on which a subsystem declares a service (its routes, its authentication, its tick); one
 * request object with body limits, validation by parameter tables, JSON answers and error
 * bodies, database jobs and work from other threads that complete on the server's thread, and
 * large answers written in pieces. Also the error vocabulary of every API (an HTTP status, a
 * JSON code and a WebSocket close code per error), and the daemon's one HTTP client for the
 * requests it makes to other servers (http_fetch). Prefix: http_.
 *
 *   control plane (src/control) --declares--> service "/" on server "http" (control.listen)
 *   signaling (src/signal) ------declares--> WebSocket protocol on the same server
 *   admin API (src/admin) -------declares--> service "/" on server "admin" (admin.listen)
 *
 * A request: the server accepts (http-accept.c: the connection limit and the per-address cap
 * admit it, lws adopts it; http_client_addr names the client), the server's HTTP callback builds a
 * struct http_req (the service's own request object, which embeds it), finds the service by path
 * prefix, then its route; authenticates through the service; checks the body; parses it by the
 * route's parameter table; calls the handler. The handler answers at once, or submits a database
 * job (http_submit) or work on another thread (http_hold, http_post) whose completion answers on
 * the server thread. The answer is written when the connection is writable, in 16 KiB pieces when
 * large, then logged and counted by status. */
#ifndef ML_HTTP_H
#define ML_HTTP_H

#include "common/common.h"
#include "db/db.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <openssl/ssl.h>

/* ---------------------------------------------------------------- errors (http-err.c) */

/* Every error an API answers; each maps 1:1 to an HTTP status, a JSON code and a WebSocket
 * close code (4000 + status). Add a row to the table in http-err.c, never a second mapping. */
enum http_err {
    HTTP_OK = 0,
    HTTP_E_BAD_REQUEST,       /* 400 bad_request */
    HTTP_E_INVALID_JSON,      /* 400 invalid_json */
    HTTP_E_UNAUTHENTICATED,   /* 401 unauthenticated: no token */
    HTTP_E_INVALID_TOKEN,     /* 401 invalid_token */
    HTTP_E_TOKEN_EXPIRED,     /* 401 token_expired */
    HTTP_E_BAD_CREDENTIALS,   /* 401 invalid_credentials */
    HTTP_E_FORBIDDEN,         /* 403 forbidden */
    HTTP_E_NOT_ADMIN,         /* 403 not_admin */
    HTTP_E_REMOVED,           /* 403 removed */
    HTTP_E_HOST_PROTECTED,    /* 403 host_protected */
    HTTP_E_EMAIL_UNVERIFIED,  /* 403 email_not_verified */
    HTTP_E_NOT_FOUND,         /* 404 not_found */
    HTTP_E_NO_MEETING,        /* 404 meeting_not_found */
    HTTP_E_NO_PARTICIPANT,    /* 404 participant_not_found */
    HTTP_E_OIDC_DISABLED,     /* 404 oidc_not_configured */
    HTTP_E_METHOD,            /* 405 method_not_allowed */
    HTTP_E_EMAIL_TAKEN,       /* 409 email_taken */
    HTTP_E_MEETING_FULL,      /* 409 meeting_full */
    HTTP_E_NOT_JOINED,        /* 409 not_joined */
    HTTP_E_ACCOUNT_CONFLICT,  /* 409 account_conflict */
    HTTP_E_MEETING_ENDED,     /* 410 meeting_ended */
    HTTP_E_MEETING_EXPIRED,   /* 410 meeting_expired */
    HTTP_E_LENGTH_REQUIRED,   /* 411 length_required */
    HTTP_E_TOO_LARGE,         /* 413 body_too_large */
    HTTP_E_MEDIA_TYPE,        /* 415 unsupported_media_type */
    HTTP_E_MISSING_FIELD,     /* 422 missing_field */
    HTTP_E_INVALID_FIELD,     /* 422 invalid_field */
    HTTP_E_SELF_REMOVE,       /* 422 self_removal: removing oneself (REST and signaling) */
    HTTP_E_RATE_LIMITED,      /* 429 rate_limited */
    HTTP_E_INTERNAL,          /* 500 internal */
    HTTP_E_UNAVAILABLE,       /* 503 unavailable */
    HTTP_E_DRAINING,          /* 503 draining: this node takes no new joins (admin drain mode) */
    HTTP_E_CONFLICT,          /* 409 conflict: the admin API's request clashes with the state */
    HTTP_E_PASSCODE_REQUIRED, /* 401 passcode_required: the meeting has a passcode */
    HTTP_E_BAD_PASSCODE,      /* 403 invalid_passcode */
    HTTP_E_DENIED,            /* 403 denied: an ADMIN did not admit the joiner */
    HTTP_E_WAITING,           /* 409 waiting: in the lobby, not admitted yet */
    HTTP_E_NOT_WAITING,       /* 409 not_waiting: admit/deny of one who is not in the lobby */
    HTTP_E__COUNT
};

int http_err_status(enum http_err e);
const char *http_err_code(enum http_err e);
const char *http_err_message(enum http_err e); /* the default message */
int http_err_ws_code(enum http_err e);
/* {"error":{"code":...,"message":...}} as a malloc'd string (msg NULL: the default). */
char *http_err_json(enum http_err e, const char *msg, size_t *len);
/* The error of an outcome word of the meeting SQL functions (in sql/: "ended", "full",
 * "removed", "participant_not_found"...). "not_found" names whatever the function looked up,
 * which only the caller knows: it passes the error that word means there (HTTP_E_NO_MEETING
 * for ml_join, HTTP_E_NO_PARTICIPANT for ml_sig_connect). An unknown word is HTTP_E_INTERNAL. */
enum http_err http_err_outcome(const char *word, enum http_err not_found);

/* ---------------------------------------------------------------- parameters (http-param.c) */

enum http_ptype {
    HTTP_P_STRING, /* into char[size]; min/max: length in characters (code points) */
    HTTP_P_EMAIL,  /* a string that looks like an address; lowercased domain not assumed */
    HTTP_P_INT,    /* into long long; min/max: value */
    HTTP_P_BOOL,   /* into bool */
    HTTP_P_ENUM,   /* into int: index in enums[] */
    HTTP_P_OBJECT, /* a JSON object, as compact JSON text into char[size]; max: its bytes
                      (the handler validates it with a table of its own) */
};

#define HTTP_P_REQUIRED 0x1u
#define HTTP_P_NO_CTRL 0x2u  /* refuse control characters (names, titles) */
#define HTTP_P_TRIM 0x4u     /* strip leading and trailing white space first */
#define HTTP_P_EMPTY_OK 0x8u /* STRING: "" too, besides min..max characters (PATCH: remove it) */

/* One body parameter of an endpoint. The parsed values land in the endpoint's struct at
 * offset; presence flags (for optional ones) in a bool at has_offset (or HTTP_P_NOHAS). */
struct http_param {
    const char *name;
    enum http_ptype type;
    unsigned flags;
    long long min, max;
    size_t offset;
    size_t size; /* HTTP_P_STRING / EMAIL: buffer bytes, including the NUL */
    size_t has_offset;
    const char *const *enums; /* HTTP_P_ENUM: NULL-terminated */
};
#define HTTP_P_NOHAS ((size_t)-1)

/* Validates body (a parsed JSON value) against the NULL-name-terminated table, filling out.
 * Unknown members are ignored. Returns HTTP_OK, or an error with msg naming the field. */
enum http_err http_params_parse(const struct http_param *table, const json_t *body, void *out,
                                char *msg, size_t msglen);
/* A JSON object body (body_len bytes; none: an empty object, unless required) into a route's
 * parameters (*out: size bytes, calloc'd, the caller's); the body is wiped once parsed. */
enum http_err http_params_json(const struct http_param *table, size_t size, bool required,
                               char *body, size_t body_len, void **out, char *msg, size_t msglen);

/* ---------------------------------------------------------------- request checks */

/* What every request passes before its route runs; every error they return closes the
 * connection after the answer. A header into buf: its length, 0 when absent, -1 when longer
 * than buf. */
int http_header(struct lws *wsi, enum lws_token_indexes t, char *buf, size_t len);
/* Content-Length into *content_length (-1 when absent); no Transfer-Encoding. */
enum http_err http_length(struct lws *wsi, long long *content_length, const char **msg);
/* A route's body: at most max_body bytes, a length for methods that may carry one, JSON, and
 * only where the route takes one. */
enum http_err http_body_check(struct lws *wsi, int method, long long content_length,
                              long long max_body, bool takes_body, const char **msg);
/* "GET", "POST"... of an LWSHUMETH_* method ("?" for others). */
const char *http_method_name(int method);

/* ---------------------------------------------------------------- routes (http-route.c) */

struct http_req;
struct http_server;

/* A route's handler, on the server thread: answers (http_reply_*) or starts work that will. */
typedef void (*http_handler_fn)(struct http_req *req);

#define HTTP_ROUTE_AUTH 0x1u      /* needs the service's authentication (a public service) */
#define HTTP_ROUTE_PUBLIC 0x2u    /* needs none (a service with token_first) */
#define HTTP_ROUTE_BODY 0x4u      /* needs a JSON object body */
#define HTTP_ROUTE_QUERY 0x8u     /* reads query arguments (http_req_arg) */
#define HTTP_ROUTE_LOGIN 0x10u    /* timed as HTTP_CLASS_AUTH (sign-up, log-in: password hashing) */
#define HTTP_ROUTE_SERVICE 0x100u /* this bit and the ones above: the service's own meaning */

/* What an answer's latency is counted under (http_server_latency): the browser client's files,
 * the REST API, its log-in routes, the signaling WebSocket (from the upgrade to the session's
 * first frame, database work included), the admin API. A fixed set: no label from a path. */
enum http_class {
    HTTP_CLASS_PAGE,
    HTTP_CLASS_API,
    HTTP_CLASS_AUTH,
    HTTP_CLASS_UPGRADE,
    HTTP_CLASS_ADMIN,
    HTTP_CLASSES
};
extern const char *const http_class_names[HTTP_CLASSES]; /* "page", "api", ... */
#define HTTP_LATENCY_BUCKETS 12
/* Upper bounds of the latency buckets, seconds (a last bucket beyond them is implied). */
extern const double http_latency_bounds_s[HTTP_LATENCY_BUCKETS];
/* Latencies of one class: per bucket (not cumulative; the last beyond every bound), and their
 * sum in microseconds. */
struct http_latency {
    uint64_t buckets[HTTP_LATENCY_BUCKETS + 1];
    uint64_t sum_us;
};

/* One endpoint: the method (LWSHUMETH_*), the path with '*' standing for one segment, the
 * handler, and the table its JSON body is validated against (into a struct of params_size
 * bytes; NULL: the route takes no body). */
struct http_route {
    int method;
    const char *pattern;
    http_handler_fn handler;
    unsigned flags;
    const struct http_param *params;
    size_t params_size;
    long long max_body; /* bytes of its body; 0: the server's max_body */
};

#define HTTP_MAX_CAPTURES 2
#define HTTP_SEGMENT_MAX                                                                           \
    160 /* bytes of a captured segment, NUL included (the most a service                           \
           may allow) */

/* Matches path against the tables (a NULL-terminated list of NULL-pattern-terminated tables:
 * a service may keep one per file). Returns the route for method, or NULL with *path_known
 * telling whether another method would have matched (405, not 404). Captures ('*' segments,
 * at most segment_max-1 bytes) are copied to caps. */
const struct http_route *http_route_match(const struct http_route *const *tables, int method,
                                          const char *path, size_t segment_max, bool *path_known,
                                          char caps[HTTP_MAX_CAPTURES][HTTP_SEGMENT_MAX]);
/* The Allow header value for a path ("GET, POST"), with ", OPTIONS" when options. */
void http_route_allow(const struct http_route *const *tables, const char *path, size_t segment_max,
                      bool options, char *buf, size_t len);

/* ---------------------------------------------------------------- services */

/* What a subsystem declares to be served on a server. Copied by http_server_new; arg and the
 * tables are borrowed until http_server_free. Hooks run on the server thread. */
struct http_service {
    const char *prefix;  /* the paths it answers ("/", "/api/v1/assistant/") */
    enum http_class cls; /* its answers' latency class (HTTP_ROUTE_LOGIN routes: auth) */
    /* Its route tables: a NULL-terminated list (one table per file of handlers, say) of
     * NULL-pattern-terminated tables. */
    const struct http_route *const *routes;
    size_t segment_max; /* of a '*' segment, NUL included (0: HTTP_SEGMENT_MAX) */
    /* Every path needs authentication, known or not (HTTP_ROUTE_PUBLIC routes aside), checked
     * before the path is judged: without a token nobody learns which paths exist. Otherwise
     * only HTTP_ROUTE_AUTH routes need it. */
    bool token_first;
    /* Checks authz (the Authorization header, NULL when absent) and fills req->user. Returns
     * HTTP_OK, HTTP_E_UNAUTHENTICATED or HTTP_E_INVALID_TOKEN (...EXPIRED), or HTTP_E_FORBIDDEN
     * for a valid credential that does not open req->route (NULL: an unknown path). */
    enum http_err (*authenticate)(struct http_req *req, const char *authz);
    const char *realm; /* a 401 says WWW-Authenticate: Bearer realm="<realm>"; NULL: no header */
    /* The service's request object: struct http_req first, then its own fields (zeroed at
     * first). 0: sizeof(struct http_req). req_free frees what those fields own. */
    size_t req_size;
    void (*req_free)(struct http_req *req);
    /* Its database pool: http_submit's, and the Retry-After of its 503 answers. May be NULL. */
    struct db_pool *pool;
    /* Runs tick_first_ms after start, then every tick_ms (0: once). NULL: no tick. */
    void (*tick)(void *arg);
    int64_t tick_first_ms, tick_ms;
    /* After http_server_wake() (any number of wakes may become one call): collect what other
     * threads finished for the service (db_pool_drain of its pool). */
    void (*wake)(void *arg);
    void *arg; /* every hook's, and req->arg */
};

/* ---------------------------------------------------------------- behind proxies
 * (http-forwarded.c) */

/* The header a trusted proxy names the client in (one per server: the one its proxies set,
 * so that a header they pass through untouched cannot be forged by the client). */
enum http_fwd_header {
    HTTP_FWD_XFF,       /* X-Forwarded-For: 192.0.2.1, 198.51.100.7 */
    HTTP_FWD_FORWARDED, /* RFC 7239 Forwarded: for=192.0.2.1, for="[2001:db8::1]:4711" */
};

/* The client's address when peer is in trusted and value (the header's text, NUL-terminated)
 * names one: walking the hops from the right past trusted addresses, the first that is not
 * one (all trusted: the leftmost). Into out as IP text, true; false (out untouched) when the
 * peer is not trusted, the header is absent, or anything on the walk is malformed, "unknown"
 * or obfuscated: the peer's own address stands. IPv4-mapped IPv6 counts as IPv4. */
bool http_forwarded_client(const struct ml_cidr_set *trusted, const struct sockaddr *peer,
                           enum http_fwd_header kind, const char *value, char *out, size_t outlen);

/* ---------------------------------------------------------------- the server (http-server.c) */

#define HTTP_PROTOCOL "ml-http" /* the lws protocol of plain HTTP (file mounts name it) */
#define HTTP_STATUS_MIN 100
#define HTTP_STATUSES 500 /* answers counted by status 100..599 */
#define HTTP_MAX_SERVICES 4
#define HTTP_MAX_WS 2

/* A WebSocket protocol served beside the HTTP services, on the same port. Its callback is
 * lws's; it finds arg with http_ws_arg(wsi). */
struct http_ws {
    const char *name; /* the subprotocol */
    lws_callback_function *callback;
    size_t pss_size, rx_buffer_size;
    bool is_default; /* also the protocol of an upgrade that names none (browsers) */
    void *arg;
    void (*tick)(void *arg); /* every tick_ms (NULL: none) */
    int64_t tick_ms;
};

/* TLS of a vhost: certificate files and what the handshake may use (strings borrowed). */
struct http_tls {
    const char *cert, *key;   /* PEM files; cert NULL: no TLS */
    const char *ciphers;      /* TLS 1.2 cipher list; NULL or "": OpenSSL's */
    const char *ciphersuites; /* TLS 1.3 suites; NULL or "": OpenSSL's */
    bool tls13_only;          /* refuse TLS 1.2 */
};

/* A server: one listening address, an lws context on a service thread of its own (named
 * name) running a libev loop, the services and WebSocket protocols it carries. Strings and
 * tables are borrowed until http_server_free. */
struct http_server_config {
    const char *name;    /* the thread's, and the access log's subsystem ("http", "admin") */
    const char *section; /* of the keys named in errors and logs ("control": control.listen) */
    const char *listen;  /* "127.0.0.1:8080", "[::]:443" */
    /* No socket of its own: listen is a shared listener's address, whose HTTP connections
     * arrive through http_server_adopt (which works on every server). */
    bool no_listen;
    uint16_t default_port;
    const char *tls_cert, *tls_key; /* PEM files: HTTPS (and wss://); NULL: plain */
    /* A second vhost for connections handed over before their TLS handshake (http_server_adopt
     * with tls: a shared listener's ClientHello offering http/1.1): its certificate and
     * settings, which are the shared listener's own. cert NULL: none (such handovers closed). */
    struct http_tls adopt_tls;
    size_t max_header;                  /* bytes of all request headers */
    unsigned header_pool;               /* header buffers: requests being read at once */
    long long max_body;                 /* bytes of a request body */
    long long max_connections;          /* HTTP and WebSocket connections at once; 0: derived */
    long long max_connections_per_addr; /* of them from one client address; 0: no cap */
    bool request_ids;  /* X-Request-Id: taken (when sane) or made, echoed, logged */
    bool preflight;    /* OPTIONS on any path is a CORS preflight (204), and Allow lists it */
    char *const *cors; /* browser origins given CORS headers ("*": any) */
    size_t ncors;
    bool access_log; /* every answer at info */
    bool audit;      /* changes (neither GET nor HEAD) at notice, always */
    const struct lws_protocol_vhost_options *headers; /* added to every answer */
    const struct lws_http_mount *mounts;              /* file mounts (the browser client) */
    /* Asked first for every request (before routing): 0 answered, 1 not its, -1 close. */
    int (*fallback)(void *arg, struct lws *wsi);
    void *fallback_arg;
    const struct http_service *services; /* matched by prefix, in order */
    size_t nservices;
    const struct http_ws *ws;
    size_t nws;
    /* Peers whose fwd_header names the client (http_client_addr); NULL or empty: nobody's.
     * Borrowed until http_server_free. */
    const struct ml_cidr_set *trusted_proxies;
    enum http_fwd_header fwd_header;
};

/* Creates the server and binds its address now, so that a bind error stops start-up. NULL with
 * err filled. */
struct http_server *http_server_new(const struct http_server_config *cfg, char *err,
                                    size_t errlen) ML_WUR;
/* Schedules the ticks and starts the service thread. 0, or -1 with err filled. */
int http_server_start(struct http_server *srv, char *err, size_t errlen) ML_WUR;
/* The port the server is bound to (for a no_listen server: its listen address's). */
int http_server_port(const struct http_server *srv);
/* Whether the server speaks TLS (http_server_config.tls_cert). */
bool http_server_tls(const struct http_server *srv);
/* Makes the pair in loaded (net_tls_cert_load; the server takes its own reference) the one new
 * TLS handshakes get; HTTP keep-alive connections and WebSockets keep theirs. Any thread. */
void http_server_tls_set(struct http_server *srv, SSL_CTX *loaded);
/* The same for the adopt_tls vhost (TLS handed over by a shared listener); false when there is
 * none. */
bool http_server_tls_adopt_set(struct http_server *srv, SSL_CTX *loaded);
/* Hands the server a connection accepted elsewhere (a shared listener of the relay), nothing
 * read from it yet: fd is the server's from the call on (closed on any failure); peer is the
 * client (copied: http_client_addr tells it, which matters when fd is a socketpair carrying
 * decrypted TLS). tls: fd is the client's socket, its ClientHello unread, and the server does
 * the handshake on its adopt_tls vhost. Any thread; the connection is adopted on the service
 * thread, counted against max_connections like an accepted one. 0, or -1 (fd closed) when the
 * server is stopping. (Not lws_adopt_socket_vhost_readbuf with bytes already read: lws 4.1 left
 * a POST body that came in those bytes unserved.) */
int http_server_adopt(struct http_server *srv, int fd, const struct sockaddr *peer, bool tls);
/* True when the server has an adopt_tls vhost (http_server_adopt with tls works). */
bool http_server_adopts_tls(const struct http_server *srv);
/* Wakes the service thread (any thread; NULL is fine): services' wake hooks run, work posted
 * with http_post completes, every protocol gets LWS_CALLBACK_EVENT_WAIT_CANCELLED. */
void http_server_wake(struct http_server *srv);
/* True for the one wsi of a LWS_CALLBACK_EVENT_WAIT_CANCELLED that a protocol should act on:
 * lws delivers that callback to every protocol of every vhost (a server with an adopt_tls
 * vhost has two), so a wake hook that runs on each would run once per vhost. Service thread. */
bool http_wake_is_primary(struct lws *wsi);
/* True once http_server_stop began (any thread). */
bool http_server_stopping(const struct http_server *srv);
/* Stops the service thread (joined): no handler, hook or tick runs after it returns. Answers
 * not yet written are not; requests stay until http_server_close. */
void http_server_stop(struct http_server *srv);
/* Closes every connection and the lws context (on the calling thread: protocols get their
 * close callbacks). A request whose work is still in flight is left to its completion, which
 * frees it; so free the server only once those completions ran (the pools drained). */
void http_server_close(struct http_server *srv);
/* Closes (if not yet), runs what was posted and frees the server. */
void http_server_free(struct http_server *srv);
/* Answers so far by status (index status - HTTP_STATUS_MIN). Any thread. */
void http_server_counters(struct http_server *srv, uint64_t out[HTTP_STATUSES]);
/* Latencies so far by class (out[HTTP_CLASSES]), summed into out (the caller zeroes it: the
 * figures of several servers add up). Any thread. */
void http_server_latency(struct http_server *srv, struct http_latency *out);
/* Counts one latency of class cls on the server wsi belongs to (its service thread: a
 * WebSocket protocol's callback times its own opening with it). */
void http_observe(struct lws *wsi, enum http_class cls, int64_t us);
/* Connections: open now, accepted, refused by the limits, and pauses of accepting for want of
 * descriptors; the limits in force. Any thread. */
struct http_conn_stats {
    uint64_t open, accepted;
    uint64_t refused_limit; /* <section>.max-connections open already */
    uint64_t refused_addr;  /* <section>.max-connections-per-address from the client's address */
    uint64_t accept_paused; /* accept() failed (EMFILE, ENFILE...): accepting paused */
    long long max_connections, max_per_addr; /* in force (max_per_addr 0: none) */
};
void http_server_conn_stats(struct http_server *srv, struct http_conn_stats *out);

/* The arg of the WebSocket protocol a connection speaks (its callback's state). */
void *http_ws_arg(struct lws *wsi);
/* The client's address of a connection, as text ("192.0.2.1"): the one place that decides it,
 * for requests, WebSockets, logs and per-client limits. The peer's, unless the peer is one of
 * the server's trusted_proxies and its fwd_header names the client (http_forwarded_client).
 * Needs the request's headers: call it from LWS_CALLBACK_HTTP or a WebSocket's handshake. */
void http_client_addr(struct lws *wsi, char *buf, size_t len);

/* ---------------------------------------------------------------- requests (http-req.c) */

#define HTTP_MAX_ARGS 8  /* query arguments kept (HTTP_ROUTE_QUERY routes) */
#define HTTP_ARG_MAX 256 /* bytes of an argument's value, NUL included */

/* A query argument (URL-decoded). */
struct http_arg {
    char name[24];
    char value[HTTP_ARG_MAX];
};

/* The authenticated caller, as the service's authenticate found it. */
struct http_user {
    char id[40];
    char name[128];
};

/* A job's continuation (server thread): see http_submit. */
typedef void (*http_then_fn)(struct http_req *req);

/* One HTTP transaction, owned by the server thread. While a database job runs, its work
 * function reads the inputs (immutable meanwhile) and writes the outputs. Operations in flight
 * (database jobs, work posted back) count in pending; a request whose client left (wsi NULL)
 * is freed when the last of them completes. A service embeds it first in its own request
 * object (http_service.req_size). */
struct http_req {
    struct db_job job; /* first: the pool hands it back */
    struct http_server *srv;
    const struct http_service *svc; /* NULL until the path named one */
    void *arg;                      /* the service's */
    struct lws *wsi;                /* NULL once the client left */
    unsigned pending;
    int method; /* LWSHUMETH_* */
    const struct http_route *route;
    char path[256]; /* without the query */
    char caps[HTTP_MAX_CAPTURES][HTTP_SEGMENT_MAX];
    char request_id[68]; /* "" unless the server keeps request ids */
    char peer[64];       /* the client's address (http_client_addr) */
    int64_t start_us;
    struct http_user user;
    void *params; /* the route's parsed body (params_size bytes) */
    /* the answer, which work functions may fill on a database thread (http_job_*) */
    int status;
    const char *ctype; /* NULL: application/json */
    char *resp;        /* LWS_PRE bytes of headroom, then resp_len bytes */
    size_t resp_len;
    enum http_err err;
    char errmsg[200];
    char location[200];
    unsigned retry_after_s;
    char log_note[96]; /* context for the access log ("meeting=... participant=...") */
    /* the HTTP layer's own */
    char origin[256];
    long long content_length; /* -1: none */
    char *body;
    size_t body_len;
    bool body_overflow, dispatched, ready, headers_sent, close_after;
    size_t resp_off; /* bytes of resp written */
    http_then_fn then;
    struct http_arg *args; /* HTTP_MAX_ARGS of them, for HTTP_ROUTE_QUERY routes only */
    unsigned nargs;
};

/* True while the request's client is there and the server runs: answering makes sense. */
bool http_req_live(const struct http_req *req);
/* The value of query argument name (URL-decoded), or NULL (HTTP_ROUTE_QUERY routes). */
const char *http_req_arg(const struct http_req *req, const char *name);
/* One query argument "name=value" or "name" (as lws gives it, URL-decoded) into *out, the value
 * cut to HTTP_ARG_MAX - 1 bytes; false for one without a name or with a longer name than fits. */
bool http_arg_parse(const char *frag, struct http_arg *out);

/* Answers (server thread). An error with its JSON body (msg NULL: the default message); a JSON
 * document (takes ownership of body); text of ctype (takes ownership of the malloc'd text);
 * or what req->status and req->resp hold already. A request whose client left drops them. */
void http_reply_err(struct http_req *req, enum http_err e, const char *msg);
void http_reply_json(struct http_req *req, int status, json_t *body);
void http_reply_text(struct http_req *req, int status, const char *ctype, char *text, size_t len);
void http_reply_ready(struct http_req *req);

/* A work function's outcome (a database thread, or wherever the request is worked on): an
 * error, a JSON document (takes ownership; serialised here), or a body copied as is. */
void http_job_err(struct http_req *req, enum http_err e, const char *msg);
void http_job_json(struct http_req *req, int status, json_t *body);
void http_job_body(struct http_req *req, int status, const char *text, size_t len);

/* Runs work on a database thread of the service's pool, then then(req) on the server thread:
 * always once, also when the client left (answers are then dropped) and when the pool refused
 * the job at once (req->job.status DB_UNAVAILABLE; without a pool req->errmsg says so).
 * then NULL: http_answer_job. */
void http_submit(struct http_req *req, db_work_fn work, http_then_fn then);
/* Answers what a job recorded: 503 when it found no connection, its error, or its body. */
void http_answer_job(struct http_req *req);

/* Work another thread does for a request (a relay operation on the network workers): call
 * http_hold before starting it (http_unhold when it could not start), and have the other
 * thread hand its result over with http_post. Embed struct http_done first in the result. */
struct http_done {
    struct http_done *next;
    struct http_req *req;
    void (*fn)(struct http_done *d);   /* on the server thread, while the request is live */
    void (*free)(struct http_done *d); /* always, after fn (NULL: free(d)) */
};
void http_hold(struct http_req *req);
void http_unhold(struct http_req *req);
/* Any thread. */
void http_post(struct http_done *d);

/* ---------------------------------------------------------------- outgoing requests
 * (http-fetch.c)
 *
 * The daemon's requests to other servers (the OIDC issuer's keys, the assistant's generation
 * endpoint, webhook receivers) go through http_fetch: libcurl, blocking, so only on a thread of
 * the caller's own, never an event loop or a server thread. Each request names the schemes it
 * may use (redirects too), how many redirects it follows (none unless it says), its timeouts
 * and CAs (always verified), and the most it reads back. libcurl's usual proxy variables
 * (https_proxy, no_proxy) are honoured. */

/* libcurl's global set-up: once, in main, before any thread starts. 0, or -1. */
int http_fetch_global_init(void) ML_WUR;
void http_fetch_global_cleanup(void);

/* How a request ended: one vocabulary for every caller (which maps it to its own words). */
enum http_fetch_err {
    HTTP_FETCH_OK = 0,    /* a 2xx answer, its body whole */
    HTTP_FETCH_TIMEOUT,   /* no whole answer within timeout_ms (or no connection in time) */
    HTTP_FETCH_TOO_LARGE, /* the body passed max_body: cut short (status and headers known) */
    HTTP_FETCH_TRANSPORT, /* DNS, connection, TLS, protocol, a refused redirect, no memory,
                             the abort flag */
    HTTP_FETCH_STATUS,    /* an answer with a status other than 2xx (a 3xx not followed too) */
};

#define HTTP_FETCH_HEADERS 2       /* answer headers a request may keep */
#define HTTP_FETCH_HEADER_MAX 1024 /* bytes of a kept value (repeats joined); longer: dropped */

/* A request; every pointer borrowed for the call. POST when body is set, GET otherwise. */
struct http_fetch_req {
    const char *url;
    const char *body; /* body_len bytes */
    size_t body_len;
    /* "Name: value" lines to send, NULL-terminated; NULL: none */
    const char *const *headers;
    /* the schemes it and its redirects may use: "https", "http,https" */
    const char *protocols;
    long max_redirects;           /* followed; 0: a 3xx is the answer (HTTP_FETCH_STATUS) */
    long long timeout_ms;         /* the whole request */
    long long connect_timeout_ms; /* of its connection; 0: timeout_ms */
    /* PEM CAs the server's certificate must chain to; NULL or "": the system's */
    const char *ca_file;
    size_t max_body; /* bytes of the answer's body read (required) */
    /* names of answer headers kept (at most HTTP_FETCH_HEADERS), NULL-terminated; NULL: none */
    const char *const *keep_headers;
    const bool *abort; /* read (atomically) while it runs: true ends it; NULL: none */
};

/* What came back. body and headers are the caller's: http_fetch_resp_free. */
struct http_fetch_resp {
    long status; /* of the last answer; 0: none */
    char *body;  /* body_len bytes and a NUL; NULL when empty */
    size_t body_len;
    char *headers[HTTP_FETCH_HEADERS]; /* keep_headers' values in the last answer; NULL: absent */
    char err[256];                     /* what went wrong (for a log), "" on HTTP_FETCH_OK */
};

/* Keeps one libcurl handle, and with it its connections, from one request to the next (one
 * thread at a time). */
struct http_fetch_conn;
struct http_fetch_conn *http_fetch_conn_new(void);
void http_fetch_conn_free(struct http_fetch_conn *conn);

/* Makes the request on conn (NULL: a handle for this request only) and fills resp (always:
 * free it whatever the outcome). Blocks up to req->timeout_ms. */
enum http_fetch_err http_fetch(struct http_fetch_conn *conn, const struct http_fetch_req *req,
                               struct http_fetch_resp *resp) ML_WUR;
void http_fetch_resp_free(struct http_fetch_resp *resp);

/* Which URLs a configuration key accepts (http_fetch_url_check). */
enum http_fetch_schemes {
    HTTP_FETCH_HTTPS,         /* https:// only */
    HTTP_FETCH_HTTP_LOOPBACK, /* https://, or http:// to 127.0.0.1, localhost or [::1] only */
    HTTP_FETCH_HTTP,          /* https:// or http:// */
};
/* Whether url is one libcurl reads as an allowed scheme and a host (the host as libcurl will
 * connect to it: "http://localhost:1@example.org/" is example.org's). 0, or -1 with err. */
int http_fetch_url_check(const char *url, enum http_fetch_schemes allowed, char *err,
                         size_t errlen) ML_WUR;

#endif
