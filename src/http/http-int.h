/* Private to src/http: the server object and what its callback (http-server.c) asks of the
 * request code (http-req.c). */
#ifndef ML_HTTP_INT_H
#define ML_HTTP_INT_H

#include "http/http.h"
#include "net/net.h"

#include <pthread.h>

#define HTTP_VHOST_TLS "tls-adopted" /* the name of the vhost of cfg.adopt_tls */

/* Per HTTP connection: the transaction in progress. */
struct http_conn {
    struct http_req *req;
    int64_t file_start_us; /* a file being served by a mount: when its request came (0: none) */
};

/* A connection accepted elsewhere (a shared listener), waiting for the service thread. */
struct http_adopt {
    struct http_adopt *next;
    int fd;
    bool tls;                     /* its ClientHello unread: for the adopt_tls vhost */
    struct sockaddr_storage peer; /* the client (the socket may be a socketpair) */
};

/* What the server keeps of a connection it admitted (lws's opaque user data): its client, and
 * whether it holds a place in the per-address count. Freed by http_conn_gone. */
struct http_conn_info {
    struct sockaddr_storage peer;
    bool counted; /* a place in srv->addrs */
    bool adopted; /* from a shared listener: peer is the only record of the client */
};

/* A tick of a service or a WebSocket protocol, on the server's lws timer. */
struct http_timer {
    lws_sorted_usec_list_t sul;
    struct http_server *srv;
    void (*fn)(void *arg);
    void *arg;
    int64_t first_ms, every_ms;
};

struct http_server {
    struct http_server_config cfg; /* services and ws point into this struct */
    struct http_service svc[HTTP_MAX_SERVICES];
    struct http_ws ws[HTTP_MAX_WS];
    struct lws_protocols protocols[2 + HTTP_MAX_WS]; /* HTTP, the ws ones, the terminator */
    struct lws_protocol_vhost_options pvo, pvo_default;
    size_t req_size; /* the largest of the services' request objects */
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    struct lws_vhost *vhost_tls; /* cfg.adopt_tls's, for handovers before the handshake; or NULL */
    bool ipv4;                   /* the listen address is IPv4: lws's IPv6 off */
    struct net_tls_cert *tls;    /* the certificate new handshakes get (reloadable); NULL: plain */
    struct net_tls_cert *tls_adopt; /* the same for vhost_tls (cfg.adopt_tls); NULL: none */
    void *evloop; /* the service thread's libev loop (struct ev_loop *); NULL: lws's own */
    pthread_t thread;
    bool started, stopping;
    int port;
    long long conns; /* connections open, HTTP and WebSocket (the service thread) */
    uint64_t req_seq;
    char rid_prefix[12];
    struct http_timer timers[HTTP_MAX_SERVICES + HTTP_MAX_WS];
    size_t ntimers;
    pthread_mutex_t adopt_mu; /* connections handed over by other threads (http_server_adopt) */
    struct http_adopt *adopt_head, *adopt_tail;
    pthread_mutex_t done_mu; /* work posted by other threads (http_post) */
    struct http_done *done_head, *done_tail;
    uint64_t by_status[HTTP_STATUSES];         /* written by the service thread only (ML_COUNT) */
    struct http_latency latency[HTTP_CLASSES]; /* likewise */
    /* accepting (http-accept.c) */
    struct http_listener *listener;
    long long max_connections;    /* in force: cfg's, or derived from the open-file limit */
    struct ml_addr_counts *addrs; /* connections per client address; NULL: no cap */
    struct http_req *spare;       /* freed request objects kept for reuse (http-req.c) */
    unsigned nspare;
    struct {
        uint64_t accepted, refused_limit, refused_addr, accept_paused; /* ML_COUNT */
    } cstats;
};

/* Counts one latency (the service thread). */
void http_latency_add(struct http_server *srv, enum http_class cls, int64_t us);

/* http-req.c: the HTTP protocol's events, on the service thread. */
int http_req_start(struct http_server *srv, struct lws *wsi, struct http_conn *conn);
void http_req_body(struct http_conn *conn, const void *in, size_t len);
void http_req_body_done(struct http_conn *conn);
int http_req_write(struct http_server *srv, struct lws *wsi, struct http_conn *conn);
void http_req_closed(struct http_conn *conn);
/* Runs what other threads posted (the service thread, or http_server_free). */
void http_posted_drain(struct http_server *srv);

/* http-accept.c: the listening socket, bound before the lws context exists (0, or -1 with err
 * naming the section's listen key); watched from http_server_start; closed by
 * http_server_close. http_conn_gone gives a closing connection's place in the per-address count
 * back (LWS_CALLBACK_WSI_DESTROY). */
int http_listen_open(struct http_server *srv, const struct sockaddr *addr, char *err,
                     size_t errlen);
void http_listen_start(struct http_server *srv);
void http_listen_close(struct http_server *srv);
void http_conn_gone(struct http_server *srv, struct lws *wsi);
/* Frees the request objects kept for reuse (after the server thread stopped). */
void http_req_spares_free(struct http_server *srv);
/* Admits fd from peer under the connection limit and the per-address cap, and hands it to lws;
 * or closes it. adopted: it came from a shared listener, not this server's own accept; tls:
 * its TLS handshake has not begun, and the adopt_tls vhost does it. */
void http_admit(struct http_server *srv, int fd, const struct sockaddr *peer, bool adopted,
                bool tls);

#endif
