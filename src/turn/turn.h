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
    char *listen;   /* endpoint list: udp://, tcp://, tls:// */
    char *software; /* SOFTWARE attribute; NULL: not sent */
    bool fingerprint_always;
    /* credentials */
    char *realm;
    char *auth_secret;  /* comma list of TURN REST API shared secrets (all valid: rotation) */
    char *static_users; /* comma list of user:password or user:0x<32 hex digits of the key> */
    bool strict_expiry; /* refuse Refresh/CreatePermission/ChannelBind after a REST expiry */
    long long nonce_lifetime_s;
    char *nonce_secret; /* shared by a fleet so any node accepts any node's nonce; NULL: random */
    long long unauth_rate;  /* unauthenticated requests per second per source IP */
    long long unauth_burst; /* ... and the burst above that rate */
    /* peer policy */
    char *allow_peers; /* CIDR list allowed even when a default rule denies it */
    char *deny_peers;  /* CIDR list denied in addition to the defaults */
    /* relay addresses and quotas */
    char *relay_address;    /* IPs relay sockets bind to, one per family */
    char *external_address; /* public IPs advertised for them (1:1 NAT), one per family */
    char *relay_ports;      /* "49152-65535" */
    long long max_allocations;          /* in total */
    long long max_allocations_per_user; /* per credential id */
    long long max_permissions;          /* per allocation */
    long long max_channels;             /* per allocation */
    /* timers, seconds */
    long long default_lifetime_s, max_lifetime_s, permission_lifetime_s, channel_lifetime_s;
};
extern const struct ml_cfg_key turn_cfg_keys[];

/* Counters of one worker's STUN/TURN service; written by its thread only. */
struct turn_counters {
    uint64_t stun_requests;      /* requests received, any method */
    uint64_t binding_requests;   /* Binding requests answered with success */
    uint64_t binding_rfc3489;    /* of which from RFC 3489 clients */
    uint64_t error_responses[8]; /* by class: 400, 401, 403, 420, 437, 438, 486, other */
    uint64_t malformed;          /* datagrams or frames that were neither STUN nor ChannelData */
    uint64_t indications;
};

struct turn_server;

/* Creates the server from its configuration (copied). Returns NULL with err filled. */
struct turn_server *turn_server_new(const struct turn_config *cfg, char *err, size_t errlen)
    ML_WUR;
void turn_server_free(struct turn_server *srv);
/* The handler that plugs the server into the network engine; its ctx is the turn_server. */
const struct net_handler *turn_net_handler(void);
/* Applies the reloadable keys of cfg (SOFTWARE, ...). Thread-safe. */
void turn_server_reload(struct turn_server *srv, const struct turn_config *cfg);
/* Makes a TURN REST API credential (draft-uberti-behave-turn-rest, as coturn's use-auth-secret
 * reads it): username "<expiry_s>:<id>", password base64(HMAC-SHA1(secret, username)). user and
 * pass are NUL-terminated; returns 0, or -1 when a buffer is too small or id has a ':'. */
int turn_rest_credential(const char *secret, const char *id, int64_t expiry_s, char *user,
                         size_t ulen, char *pass, size_t plen) ML_WUR;

/* Sums the STUN/TURN counters of every worker of engine e. */
void turn_counters_read(struct net_engine *e, struct turn_counters *out);

#endif
