/* WebSocket signaling: participants of a meeting exchange offers, answers, candidates, chat and
 * media states over /api/v1/signaling, a WebSocket protocol on the control plane's HTTP server
 * (src/http); sessions survive a dropped connection (resume with replay), limits close abusers,
 * ADMINs remove and end over it, and the nodes sharing a PostgreSQL relay to each other through
 * LISTEN/NOTIFY. It reaches the control plane only through struct sig_deps. Prefix: sig_. */
#ifndef ML_SIG_H
#define ML_SIG_H

#include "common/common.h"
#include "db/db.h"
#include "http/http.h"

/* The [signaling] configuration section (sig-config.c). */
struct sig_config {
    bool enabled;
    char *node_id;                       /* NULL: random per process */
    long long max_message;               /* bytes of one client message */
    long long rate, burst;               /* messages a second per connection, and the burst */
    long long max_conns_per_participant; /* over every node */
    long long max_queue;                 /* bytes waiting for one client */
    long long ping_interval_s, idle_timeout_s, resume_window_s;
    long long replay_messages, replay_bytes; /* per meeting */
    long long chat_history, chat_max_length;
    long long heartbeat_ms, node_timeout_ms;
    long long publish_queue;                 /* messages waiting to go to the other nodes */
    long long publish_delay_us;              /* how long the first of a batch may wait for others */
    long long reaction_rate, reaction_burst; /* reactions a second per participant, burst */
};
extern const struct ml_cfg_key sig_cfg_keys[];
/* The rules between keys that start applies (timeouts in order, a queue that holds a message).
 * No I/O. 0 or -1 with err filled. */
int sig_config_check(const struct sig_config *cfg, char *err, size_t errlen) ML_WUR;

/* What signaling needs of the control plane, and nothing more; borrowed until sig_free. Hooks
 * run on the HTTP server's thread unless said otherwise. */
struct sig_deps {
    struct db_pool *pool; /* the control plane's: session rows, ADMIN commands */
    /* Verifies a signaling token (a join's): on HTTP_OK the meeting, participant and user
     * ids are filled; else HTTP_E_INVALID_TOKEN or HTTP_E_TOKEN_EXPIRED. */
    enum http_err (*verify)(void *arg, const char *token, uint8_t mid[16], uint8_t pid[16],
                            uint8_t uid[16]);
    /* The iceServers, as a join answers them (JSON text, caller frees), for the TURN
     * credential username a session's join recorded, expiring at expires_s, participant pid
     * of meeting mid, placed on a relay node with the job's connection c; *relay: what the
     * client is told of its relay (JSON text, caller frees) or NULL. NULL when it cannot be
     * made. A database thread. */
    char *(*ice_servers)(void *arg, struct db_conn *c, const char *mid, const char *pid,
                         const char *cred_user, long long expires_s, char **relay);
    /* A TURN credential revoked by what signaling did (a removal, a meeting found lapsed). */
    void (*revoke)(void *arg, const char *username);
    /* A meeting changed (a command here, an event from another node): cached views go. */
    void (*changed)(void *arg, const char *meeting_id);
    long long credential_ttl_s; /* the lifetime of a session's fresh TURN credential */
    void *arg;
};

struct sig;

/* Creates signaling (cfg->enabled; database.url set): checks the configuration; cfg, db and
 * deps are copied. NULL with err filled. */
struct sig *sig_new(const struct sig_config *cfg, const struct db_config *db,
                    const struct sig_deps *deps, char *err, size_t errlen) ML_WUR;
/* The WebSocket protocol to declare on the HTTP server (before it is created). With sig NULL
 * (signaling off) a protocol that refuses every connection with 4503. */
void sig_ws_protocol(struct sig *sig, struct http_ws *out);
/* Starts the threads between the nodes, on srv (borrowed until sig_free), before its service
 * thread starts. 0, or -1 with err filled. */
int sig_start(struct sig *sig, struct http_server *srv, char *err, size_t errlen) ML_WUR;
/* Closes every signaling connection with 1001 from the service thread, waiting for them a
 * moment (before the service thread stops). */
void sig_quiesce(struct sig *sig);
/* After the service thread stopped, before the server closes: the node leaves signaling (its
 * sessions' rows go). */
void sig_stop(struct sig *sig);
/* After the pool's last drain (no job of signaling left). NULL is fine. */
void sig_free(struct sig *sig);
/* This node's id, as its sessions' rows name it (sig_connections.node_id). */
const char *sig_node_id(const struct sig *sig);
/* Tells participant pid of meeting mid (text UUIDs), on its sessions on this node, to use new
 * iceServers (ice: a JSON array as text; relay: the placement as text, or NULL) because its
 * relay went away (reason "down" or "draining"): an "ice-servers" message, numbered and
 * replayed like any other. True when the meeting has a session here. HTTP thread. */
bool sig_push_ice(struct sig *sig, const char *mid, const char *pid, const char *ice,
                  const char *relay, const char *reason);
/* Signaling WebSockets open now. Any thread. */
uint64_t sig_ws_open(const struct sig *sig);

/* The close codes signaling connections ended with are counted in these slots: the codes of
 * sig_close_codes (the server's close, the client's, 1006 when the connection was lost without
 * a close frame), then one slot for any other code. */
#define SIG_CLOSE_NCODES 23
extern const int sig_close_codes[SIG_CLOSE_NCODES];
/* The counts so far (slot SIG_CLOSE_NCODES: other codes). Any thread; NULL gives zeros. */
void sig_close_counts(const struct sig *sig, uint64_t out[SIG_CLOSE_NCODES + 1]);

#endif
