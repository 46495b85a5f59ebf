/* Webhooks: the delivery of the events that sql/008_webhooks.sql queues in PostgreSQL (meeting
 * started and ended, participant joined and left, usage recorded) to a school's HTTPS endpoint,
 * signed with HMAC-SHA256, retried with backoff. One thread with its own libpq connection and
 * HTTP client connection (src/http's http_fetch) per node; nodes share the queue. Prefix: wh_.
 * Nothing here logs but the worker thread, which is this subsystem's edge. */
#ifndef ML_WH_H
#define ML_WH_H

#include "common/common.h"
#include "db/db.h"
#include "http/http.h"

#define WH_SECRET_MIN 16  /* bytes: a shorter HMAC key is refused */
#define WH_SECRET_MAX 256 /* bytes */
#define WH_URL_MAX 2048

/* The [webhooks] configuration section (wh-config.c). */
struct wh_config {
    char *url;                  /* NULL: no delivery (events still queue, and are purged) */
    char *secret;               /* the HMAC key itself (a credential); or: */
    char *secret_file;          /* a file holding it (first line) */
    char *events;               /* comma list of event types to send; NULL: all */
    long long timeout_ms;       /* one POST, connection included */
    long long max_attempts;     /* then the event is failed */
    long long max_age_s;        /* an event older than this is failed, not tried again */
    char *ca_file;              /* PEM CAs to verify the receiver; NULL: the system's */
    long long retry_initial_ms; /* backoff after the first failure, doubling */
    long long retry_max_ms;     /* backoff ceiling */
    long long poll_ms;          /* the queue is looked at this often without a NOTIFY */
    long long batch;            /* events claimed at once */
    long long retention_s;      /* events are deleted this long after they were made */
};
extern const struct ml_cfg_key wh_cfg_keys[];

/* The event types, NULL-terminated (sql/008_webhooks.sql's CHECK lists the same). */
extern const char *const wh_event_types[];

/* Rules between keys: a url needs a secret, retention covers max-age. 0, or -1 with err. */
int wh_config_check(const struct wh_config *cfg, char *err, size_t errlen) ML_WUR;
/* The HMAC key of cfg (webhooks.secret, else the first line of webhooks.secret-file) into buf
 * (size WH_SECRET_MAX + 1). Returns its length, 0 when none is configured, or -1 with err
 * filled (unreadable file, too short or too long). The caller wipes buf. */
int wh_secret_load(const struct wh_config *cfg, char *buf, char *err, size_t errlen) ML_WUR;
/* The signature header's value of a body sent at time ts: "v1=" and the lowercase hex of
 * HMAC-SHA256(secret, "<ts>.<body>"). out holds at least WH_SIG_LEN bytes. */
#define WH_SIG_LEN (3 + 64 + 1)
void wh_sign(const char *secret, size_t secret_len, int64_t ts, const char *body, size_t body_len,
             char out[WH_SIG_LEN]);

struct wh_worker;

/* What the worker did since start; each read with a relaxed load. */
struct wh_counters {
    uint64_t delivered; /* events the receiver accepted (2xx) */
    uint64_t attempts_failed;
    uint64_t connects; /* database connections made */
};

/* Creates the worker of a node (node names its claims; db and cfg are copied). The thread
 * starts with wh_worker_start. NULL with err filled (a bad secret file). */
struct wh_worker *wh_worker_new(const struct wh_config *cfg, const struct db_config *db,
                                const char *node, char *err, size_t errlen) ML_WUR;
/* Starts the thread (after the migrations). 0, or -1 with err filled. */
int wh_worker_start(struct wh_worker *w, char *err, size_t errlen) ML_WUR;
/* Takes a reloaded configuration (SIGHUP): used from the next batch on. 0, or -1 with err
 * filled when the secret cannot be read (the old settings stay). Any thread. */
int wh_worker_reload(struct wh_worker *w, const struct wh_config *cfg, char *err,
                     size_t errlen) ML_WUR;
void wh_worker_counters(struct wh_worker *w, struct wh_counters *out);
/* Stops the thread (an attempt under way is cut short: its event is tried again later) and
 * frees the worker. NULL is fine. */
void wh_worker_free(struct wh_worker *w);

#endif
