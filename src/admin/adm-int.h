/* Private to src/admin: the listener's request object, routing, answers, completions from the
 * workers and the database, and the handlers. The admin API uses the HTTP layer's error table
 * (enum http_err: one HTTP status and JSON code per error) and parameter tables, so both APIs
 * validate and fail alike. */
#ifndef ML_ADM_INT_H
#define ML_ADM_INT_H

#include "admin/adm.h"
#include "http/http.h"

#include <libwebsockets.h>
#include <pthread.h>

#define ADM_MAX_BODY 16384  /* bytes of a request body: every admin body is small */
#define ADM_SEGMENT_MAX 160 /* bytes of a '*' path segment, NUL included */
#define ADM_MAX_ARGS 8      /* query arguments kept */
#define ADM_ARG_MAX 256     /* bytes of an argument's value, NUL included */
#define ADM_LIST_MAX 10000  /* allocations in one listing */
#define ADM_SCAN_MAX 20000  /* allocations looked at for a participant filter */
#define ADM_CLOSE_MAX 256   /* credential ids closed one by one (participant filter) */
#define ADM_MAX_SECRETS 16  /* runtime secrets: each is one more HMAC per REST check */

struct adm_req;
struct adm;
typedef void (*adm_handler_fn)(struct adm *a, struct adm_req *r);

#define ADM_NOAUTH 0x1u /* health probes: answered without a token */
#define ADM_BODY 0x2u   /* needs a JSON body */

/* One endpoint: method (LWSHUMETH_*), path with '*' for one segment, handler, body table. */
struct adm_route {
    int method;
    const char *pattern;
    adm_handler_fn handler;
    unsigned flags;
    const struct http_param *params;
    size_t params_size;
};
extern const struct adm_route adm_routes[];

struct adm_arg {
    char name[24];
    char value[ADM_ARG_MAX];
};

/* Something that finished on another thread (a worker, the database) for a request. */
struct adm_done {
    struct adm_done *next;
    struct adm_req *req;
    void (*fn)(struct adm *a, struct adm_req *r, struct adm_done *d); /* on the admin thread */
    struct turn_alloc_view *views;                                    /* turn_server_list (owned) */
    size_t n, total;
    struct turn_group_count *groups; /* turn_server_count_by_tag (owned) */
    size_t ngroups;
    size_t closed; /* turn_server_close */
};

/* One HTTP transaction, owned by the admin thread. Operations in flight on workers or the
 * database count in pending; a request whose client left (wsi NULL) is freed when the last one
 * completes. */
struct adm_req {
    struct db_job job; /* first: the pool hands it back */
    struct adm *adm;
    struct lws *wsi;
    unsigned pending;
    bool dispatched, ready, headers_sent, close_after, write_err;
    int method;
    const struct adm_route *route;
    char path[256];
    char caps[2][ADM_SEGMENT_MAX];
    struct adm_arg args[ADM_MAX_ARGS];
    unsigned nargs;
    char peer[64];
    int64_t start_us;
    long long content_length; /* -1: none */
    char *body;
    size_t body_len;
    bool body_overflow;
    void *params; /* the route's parsed body */
    /* the answer */
    int status;
    const char *ctype;
    char *resp; /* LWS_PRE bytes of headroom, then resp_len bytes */
    size_t resp_len, resp_off;
    enum http_err err;
    char errmsg[200];
    unsigned retry_after_s;
    /* a database job's inputs and outputs (see adm-api.c) */
    db_work_fn work;
    void (*on_db)(struct adm *a, struct adm_req *r); /* admin thread, after the job */
    void *op;                                        /* handler state, freed with free() */
    json_t *out;                                     /* a job's JSON result */
    /* frees what op holds besides itself (NULL: nothing); a request may end between two of its
     * continuations, at shutdown */
    void (*op_free)(void *op);
};

/* The admin subsystem. */
struct adm {
    struct adm_config cfg; /* strings owned */
    struct adm_deps deps;
    struct db_config db; /* url owned */
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    pthread_t thread;
    bool started, stopping;
    int port;
    struct db_pool *pool; /* NULL without database.url */
    pthread_mutex_t tok_mu;
    uint8_t (*tokens)[32]; /* SHA-256 of each token; under tok_mu */
    size_t ntokens;
    long long top_meetings; /* atomic: reloadable */
    pthread_mutex_t done_mu;
    struct adm_done *done_head, *done_tail;
    uint64_t http_by_status[ST_HTTP_CODES]; /* the admin thread writes, stats read */
};

/* ---------------------------------------------------------------- adm-http.c */

void adm_req_free(struct adm_req *r);
/* Answers (admin thread): an error; a JSON document (takes ownership); or text. */
void adm_reply_err(struct adm_req *r, enum http_err e, const char *msg);
void adm_reply_json(struct adm_req *r, int status, json_t *body);
void adm_reply_text(struct adm_req *r, int status, const char *ctype, char *text, size_t len);
/* The value of query argument name, or NULL. */
const char *adm_arg(const struct adm_req *r, const char *name);
/* Runs work on a database connection, then on_db on the admin thread (r->err/r->out hold the
 * outcome). Answers 503 itself when there is no database or no connection. */
void adm_submit(struct adm_req *r, db_work_fn work, void (*on_db)(struct adm *, struct adm_req *));
/* Hands a finished operation to the admin thread (any thread). */
void adm_post(struct adm *a, struct adm_done *d);

/* ---------------------------------------------------------------- adm-sync.c */

/* Reads both tables on a pool connection and applies them, serialised with the sync thread's
 * own loads so that the newest read always wins: used right after a change, so the node that
 * made it answers only once the relay has it. 0, or -1 with err filled. */
int adm_sync_load_pool(struct adm_sync *s, struct db_conn *c, char *err, size_t errlen) ML_WUR;
/* The realm users are stored under. */
const char *adm_sync_realm(const struct adm_sync *s);
long long adm_sync_max_users(const struct adm_sync *s);

#endif
