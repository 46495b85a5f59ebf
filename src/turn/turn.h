/* The STUN/TURN server: message dispatch on the network workers, the Binding service, and (as
 * it grows) allocations, permissions, channels, credentials, quotas and the peer policy.
 * Prefix: turn_. A struct turn_server is shared by all workers and immutable while they run,
 * except through the functions documented as thread-safe. */
#ifndef ML_TURN_H
#define ML_TURN_H

#include "common/common.h"
#include "net/net.h"

/* The [turn] configuration section, as stored by the configuration engine. */
struct turn_config {
    char *listen; /* endpoint list: udp://, tcp://, tls:// */
    char *tls_cert, *tls_key, *tls_min_version, *tls_ciphers, *tls_ciphersuites;
    char *software; /* SOFTWARE attribute; NULL: not sent */
    bool fingerprint_always;
    /* credentials */
    char *realm;
    char *auth_secret;  /* comma list of TURN REST API shared secrets (all valid: rotation) */
    char *static_users; /* comma list of user:password or user:0x<32 hex digits of the key> */
    char *auth_secret_file, *static_users_file, *nonce_secret_file; /* the -file forms */
    bool strict_expiry; /* refuse Refresh/CreatePermission/ChannelBind after a REST expiry */
    long long nonce_lifetime_s;
    char *nonce_secret; /* shared by a fleet so any node accepts any node's nonce; NULL: random */
    long long unauth_answer_rate;  /* bytes/s of unauthenticated answers per address; 0: off */
    long long unauth_answer_burst; /* bytes saved up above that rate */
    /* peer policy */
    char *allow_peers; /* CIDR list allowed even when a default rule denies it */
    char *deny_peers;  /* CIDR list denied in addition to the defaults */
    /* relay addresses and quotas */
    char *relay_address;           /* IPs relay sockets bind to, one per family */
    char *external_address;        /* public IPs advertised for them (1:1 NAT), one per family */
    char *relay_ports;             /* "49152-65535" */
    long long relay_port_attempts; /* bind() calls one allocation may make to find a port */
    long long max_allocations;     /* in total */
    long long max_allocations_per_user; /* per credential id */
    long long max_permissions;          /* per allocation */
    long long max_channels;             /* per allocation */
    bool rfc5766_channels;              /* accept channel numbers up to 0x7FFF */
    /* TCP relay (RFC 6062) */
    bool tcp_relay;                /* accept REQUESTED-TRANSPORT TCP */
    long long tcp_relay_max_conns; /* peer connections per TCP allocation */
    long long tcp_relay_buffer;    /* bytes waiting toward each side of one connection */
    /* timers, seconds */
    long long default_lifetime_s, max_lifetime_s, permission_lifetime_s, channel_lifetime_s;
};
extern const struct ml_cfg_key turn_cfg_keys[];

/* Counters of one worker's STUN/TURN service; written by its thread only. Gauges (current
 * values) are marked; the rest only grow. */
struct turn_counters {
    uint64_t stun_requests;      /* requests received, any method */
    uint64_t binding_requests;   /* Binding requests answered with success */
    uint64_t binding_rfc3489;    /* of which from RFC 3489 clients */
    uint64_t error_responses[8]; /* by code: 400, 401, 403, 420, 437, 438, 486, other */
    uint64_t errors_441, errors_442, errors_443, errors_440, errors_508;
    uint64_t malformed; /* datagrams or frames that were neither STUN nor ChannelData */
    uint64_t indications;
    uint64_t unauth_dropped;         /* requests dropped by the per-source unauthenticated budget */
    uint64_t unauth_dropped_bytes;   /* ... the bytes their answers would have had */
    uint64_t unauth_charged_bytes;   /* bytes of unauthenticated answers charged to a budget */
    uint64_t unauth_proven;          /* unauthenticated answers to addresses their NONCE proves */
    uint64_t allocations;            /* gauge */
    uint64_t alloc_by_transport[3];  /* gauge: udp, tcp, tls */
    uint64_t alloc_ipv4, alloc_ipv6; /* gauge: relay sockets by family */
    uint64_t permissions, channels;  /* gauges */
    uint64_t allocations_total;      /* allocations ever made */
    uint64_t allocations_expired;
    uint64_t peer_denied;                      /* 403s from the peer policy */
    uint64_t relay_rx_packets, relay_rx_bytes; /* client to peer */
    uint64_t relay_tx_packets, relay_tx_bytes; /* peer to client */
    uint64_t relay_dropped_no_permission;      /* peer packets without a permission */
    uint64_t relay_dropped_no_channel;         /* ChannelData for an unbound channel */
    uint64_t relay_dropped_backpressure;       /* to stream clients that read too slowly */
    uint64_t tcp_relay_conns;       /* gauge: peer connections of TCP allocations (RFC 6062) */
    uint64_t tcp_relay_conns_total; /* peer connections made or accepted */
    uint64_t tcp_relay_failed;      /* Connects answered 447 */
    uint64_t tcp_relay_refused;     /* incoming peer connections closed: no permission, limit */
    uint64_t relay_port_busy;       /* relay bind() calls that found the (address, port) taken */
};

struct turn_server;

#define TURN_ID_MAX 128 /* bytes of a credential id, NUL included */

/* What one allocation relayed, both ways. */
struct turn_usage {
    uint64_t rx_packets, rx_bytes; /* from the client, relayed to peers */
    uint64_t tx_packets, tx_bytes; /* from peers, relayed to the client */
};

/* An allocation that ended, as told to the alloc_end hook. */
struct turn_alloc_info {
    const char *cred_id; /* the REST <id> (the participant) or static user */
    enum net_transport transport;
    bool ipv4, ipv6; /* relay families it had */
    const struct sockaddr *client;
    int64_t created_s, ended_s; /* wall clock */
    const char *reason;         /* "expired", "refreshed to 0", "revoked", "closed", ... */
    struct turn_usage usage;
};

/* Callbacks into the rest of the daemon. They run on a worker thread and must be quick
 * (queue the work elsewhere). */
struct turn_hooks {
    void (*alloc_end)(void *arg, const struct turn_alloc_info *info);
    void *arg;
};

/* Creates the server from its configuration (copied). Returns NULL with err filled. */
struct turn_server *turn_server_new(const struct turn_config *cfg, char *err, size_t errlen) ML_WUR;
void turn_server_free(struct turn_server *srv);
/* The handler that plugs the server into the network engine; its ctx is the turn_server. */
const struct net_handler *turn_net_handler(void);
/* Declares one of meetlited's own service addresses (a listener, with the port it is bound
 * to): the relay never sends to it. Call before the engine starts. 0 or -1. */
int turn_server_add_service(struct turn_server *srv, const struct sockaddr *sa) ML_WUR;
/* Sets the hooks; call before the engine starts. */
void turn_server_set_hooks(struct turn_server *srv, const struct turn_hooks *h);
/* Tells the server which engine serves it (for work that crosses workers); before start. */
void turn_server_set_engine(struct turn_server *srv, struct net_engine *e);
/* Closes every allocation made with credential id on every worker, soon (asynchronously);
 * reason goes to the log and the alloc_end hook. Thread-safe. 0, or -1 when the workers could
 * not be reached. */
int turn_server_close_cred(struct turn_server *srv, const char *id, const char *reason);
/* Revokes credential id until until_s (wall clock): it is refused from now on, and its live
 * allocations are closed. Thread-safe. */
int turn_server_revoke(struct turn_server *srv, const char *id, int64_t until_s);
/* ---------------------------------------------------------------- operations (admin API) */

/* A view of one live allocation. */
struct turn_alloc_view {
    uint64_t id;               /* unique in this process */
    char cred_id[TURN_ID_MAX]; /* "<meeting-tag>.<participant>" for meetings, or a user */
    enum net_transport transport;
    struct sockaddr_storage client;
    struct sockaddr_storage relay[2]; /* [0] IPv4, [1] IPv6 (advertised addresses) */
    bool has_relay[2];
    int64_t created_s, expires_s; /* wall clock */
    unsigned permissions, channels;
    unsigned worker;
    struct turn_usage usage;
};

/* Which allocations an operation applies to; empty fields match everything. */
struct turn_alloc_filter {
    uint64_t id;                   /* 0: any */
    char cred_id[TURN_ID_MAX];     /* exact credential id */
    char cred_prefix[TURN_ID_MAX]; /* e.g. "<meeting-tag>." for a whole meeting */
    bool has_client;
    struct sockaddr_storage client; /* its IP, and its port unless 0 */
};

/* Called once with the matching allocations (at most limit of them, in v, which the callee
 * frees with free()) and how many matched in all. Runs on a worker thread: hand the result to
 * your own thread. */
typedef void (*turn_list_cb)(void *arg, struct turn_alloc_view *v, size_t n, size_t total);
/* Snapshots matching allocations on every worker. 0, or -1 (cb will not be called). */
int turn_server_list(struct turn_server *srv, const struct turn_alloc_filter *f, size_t limit,
                     turn_list_cb cb, void *arg) ML_WUR;
/* Called once with how many allocations were closed. Runs on a worker thread. */
typedef void (*turn_closed_cb)(void *arg, size_t closed);
/* Closes matching allocations on every worker; cb may be NULL. 0, or -1 (cb not called). */
int turn_server_close(struct turn_server *srv, const struct turn_alloc_filter *f,
                      const char *reason, turn_closed_cb cb, void *arg) ML_WUR;
/* Drain mode: new Allocates get 508 (clients move to another server of their list) while
 * existing allocations live on. Thread-safe. */
void turn_server_set_drain(struct turn_server *srv, bool on);
bool turn_server_draining(const struct turn_server *srv);
/* Live allocations per credential id prefix (the meeting tag before '.'), the n largest. Runs
 * like turn_server_list. */
struct turn_group_count {
    char tag[TURN_ID_MAX];
    size_t allocations;
};
typedef void (*turn_groups_cb)(void *arg, struct turn_group_count *v, size_t n, size_t groups);
int turn_server_count_by_tag(struct turn_server *srv, size_t top, turn_groups_cb cb,
                             void *arg) ML_WUR;

/* Applies the reloadable keys of cfg (SOFTWARE, secrets, static users, peer lists, quotas,
 * timers). Thread-safe. 0, or -1 with err filled (nothing changed). */
int turn_server_reload(struct turn_server *srv, const struct turn_config *cfg, char *err,
                       size_t errlen) ML_WUR;
/* Makes a TURN REST API credential (draft-uberti-behave-turn-rest, as coturn's use-auth-secret
 * reads it): username "<expiry_s>:<id>", password base64(HMAC-SHA1(secret, username)). user and
 * pass are NUL-terminated; returns 0, or -1 when a buffer is too small or id has a ':'. */
int turn_rest_credential(const char *secret, const char *id, int64_t expiry_s, char *user,
                         size_t ulen, char *pass, size_t plen) ML_WUR;

/* ---------------------------------------------------------------- runtime credentials (#8) */

/* A TURN user managed at run time (kept in PostgreSQL by the admin API): its long-term keys,
 * never its password. */
struct turn_runtime_user {
    char name[TURN_ID_MAX];
    uint8_t md5[16];    /* MD5(name:realm:password) */
    uint8_t sha256[32]; /* SHA-256(name:realm:password) */
};

/* Replaces the runtime-managed REST secrets (oldest first: the last one signs new credentials)
 * and users, kept beside turn.auth-secret and turn.static-users (which win on a clash), copied,
 * swapped in as a reload is. 0, or -1 with err filled (nothing changed). Thread-safe. */
int turn_server_set_runtime_creds(struct turn_server *srv, const char *const *secrets,
                                  size_t nsecrets, const struct turn_runtime_user *users,
                                  size_t nusers, char *err, size_t errlen) ML_WUR;
/* Copies the secret new TURN REST credentials are signed with into buf: the newest runtime
 * secret, else the first of turn.auth-secret. Returns its length; 0 (buf "") when there is
 * none or buf is too small. Thread-safe. */
size_t turn_server_signing_secret(struct turn_server *srv, char *buf, size_t len);
/* How many runtime secrets and users are in force. Thread-safe. */
void turn_server_runtime_counts(struct turn_server *srv, size_t *secrets, size_t *users);
/* The realm (turn.realm; not reloadable). */
const char *turn_server_realm(const struct turn_server *srv);

/* Sums the STUN/TURN counters of every worker of engine e. */
void turn_counters_read(struct net_engine *e, struct turn_counters *out);

#endif
