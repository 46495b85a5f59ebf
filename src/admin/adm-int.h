/* Private to src/admin: the admin API's state, its request object (the HTTP layer's, with the
 * handlers' state) and the completions of work on the workers and the database. The API is a
 * service of the HTTP layer (src/http) on a server of its own: the same error table, parameter
 * tables and request checks as the control plane, so both APIs validate and fail alike. */
#ifndef ML_ADM_INT_H
#define ML_ADM_INT_H

#include "admin/adm.h"
#include "http/http.h"

#include <libwebsockets.h>
#include <pthread.h>

#define ADM_MAX_BODY (16 * 1024)     /* bytes of a request body */
#define ADM_MAX_KB_BODY (512 * 1024) /* of an article file's (POST /v1/kb/articles) */
#define ADM_SEGMENT_MAX 160          /* bytes of a '*' path segment, NUL included */
#define ADM_LIST_MAX 10000           /* allocations in one listing */
#define ADM_SCAN_MAX 20000           /* allocations looked at for a participant filter */
#define ADM_CLOSE_MAX 256            /* credential ids closed one by one (participant filter) */
#define ADM_MAX_SECRETS 16           /* runtime secrets: each is one more HMAC per REST check */

/* A route a scrape token (admin.metrics-token) opens besides the admin tokens. */
#define ADM_ROUTE_SCRAPE HTTP_ROUTE_SERVICE

struct adm;

/* The admin API's request: the HTTP layer's, then the handler's state for its continuations. */
struct adm_req {
    struct http_req http; /* first: the HTTP layer and the pool hand it back */
    void (*on_db)(struct adm *a, struct adm_req *r); /* after a job: see adm_submit */
    void *op;                                        /* handler state, freed with free() */
    json_t *out;                                     /* a job's JSON for its continuation */
    /* frees what op holds besides itself (NULL: nothing); a request may end between two of its
     * continuations, at shutdown */
    void (*op_free)(void *op);
};

static inline struct adm_req *adm_req_of(struct http_req *r)
{
    return (struct adm_req *)r; /* http is the first member */
}

static inline struct adm *adm_of(const struct adm_req *r)
{
    return r->http.arg;
}

extern const struct http_route adm_routes[];
extern const struct http_route adm_kb_routes[]; /* adm-kb.c: the knowledge base */

/* Something that finished on another thread (a worker) for a request. */
struct adm_done {
    struct http_done base;                                            /* first */
    void (*fn)(struct adm *a, struct adm_req *r, struct adm_done *d); /* on the admin thread */
    struct turn_alloc_view *views;                                    /* turn_server_list (owned) */
    size_t n, total;
    struct turn_group_count *groups; /* turn_server_count_by_tag (owned) */
    size_t ngroups;
    size_t closed; /* turn_server_close */
};

/* The admin subsystem. */
struct adm {
    struct adm_config cfg; /* strings owned */
    struct adm_deps deps;
    struct db_config db;      /* url owned */
    struct http_server *http; /* admin.listen */
    struct db_pool *pool;     /* NULL without database.url */
    pthread_mutex_t tok_mu;
    uint8_t (*tokens)[32]; /* SHA-256 of each token; under tok_mu */
    size_t ntokens;
    uint8_t (*scrape)[32]; /* SHA-256 of each admin.metrics-token; under tok_mu */
    size_t nscrape;
    long long top_meetings; /* atomic: reloadable */
};

/* ---------------------------------------------------------------- adm-webhooks.c */

/* GET /v1/webhooks/events, GET /v1/webhooks/events/{id} and POST .../{id}/replay, POST
 * /v1/webhooks/replay-failed (body: adm_wh_replay_params). */
struct adm_wh_replay_in {
    char since[40];
    bool has_since;
};
extern const struct http_param adm_wh_replay_params[];
void adm_h_webhooks_list(struct http_req *hr);
void adm_h_webhooks_event(struct http_req *hr);
void adm_h_webhooks_replay_failed(struct http_req *hr);

/* ---------------------------------------------------------------- adm.c */

/* Runs work on a database connection, then on_db on the admin thread (r->http.job.status and
 * r->http.err hold the outcome) while the client is there; without on_db the job's answer (or
 * 503, or 409 when the node has no database) is sent. */
void adm_submit(struct adm_req *r, db_work_fn work, void (*on_db)(struct adm *, struct adm_req *));
/* Hands a finished operation to the admin thread (any thread): d->fn runs there while the
 * client is there; d is freed with what it owns. The operation was counted with http_hold. */
void adm_post(struct adm_req *r, struct adm_done *d);

/* ---------------------------------------------------------------- adm-sync.c */

/* Reads both tables on a pool connection and applies them, serialised with the sync thread's
 * own loads so that the newest read always wins: used right after a change, so the node that
 * made it answers only once the relay has it. 0, or -1 with err filled. */
int adm_sync_load_pool(struct adm_sync *s, struct db_conn *c, char *err, size_t errlen) ML_WUR;
/* The realm users are stored under. */
const char *adm_sync_realm(const struct adm_sync *s);
long long adm_sync_max_users(const struct adm_sync *s);

#endif
