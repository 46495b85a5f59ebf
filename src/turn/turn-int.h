/* Internals of the TURN server shared by its modules; nothing outside src/turn includes it. */
#ifndef ML_TURN_INT_H
#define ML_TURN_INT_H

#include "stun/stun.h"
#include "turn/turn.h"

#include <pthread.h>

/* Largest STUN message the server builds. */
#define TURN_REPLY_MAX 1280

struct turn_server {
    pthread_mutex_t lock; /* guards the reloadable values below */
    char software[128];   /* empty: no SOFTWARE attribute */
    bool fingerprint_always;
    unsigned generation; /* bumped on every reload */
};

/* Per-worker state: everything a worker owns. */
struct turn_worker {
    struct turn_server *srv;
    struct net_worker *w;
    struct turn_counters ctr;
    char software[128]; /* this worker's copy, refreshed on reload */
    bool fingerprint_always;
    unsigned generation; /* of the server values copied above */
};

/* Where a message came from, and how to answer it. */
struct turn_client {
    enum net_transport transport;
    struct net_udp *udp;       /* UDP: the listener socket it arrived on */
    struct net_stream *stream; /* TCP/TLS: the connection */
    const struct sockaddr *addr;
    const struct sockaddr *local;
};

#define TURN_COUNT(c, n) NET_COUNT(c, n)

/* server.c */
void turn_send(struct turn_worker *tw, const struct turn_client *cl, const void *buf,
               size_t len);
void turn_reply_error(struct turn_worker *tw, const struct turn_client *cl,
                      const struct stun_msg *req, int code, const char *reason);

#endif
