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
/* Sums the STUN/TURN counters of every worker of engine e. */
void turn_counters_read(struct net_engine *e, struct turn_counters *out);

#endif
