/* Private to src/http: the server object and what its callback (http-server.c) asks of the
 * request code (http-req.c). */
#ifndef ML_HTTP_INT_H
#define ML_HTTP_INT_H

#include "http/http.h"

#include <pthread.h>

/* Per HTTP connection: the transaction in progress. */
struct http_conn {
    struct http_req *req;
};

/* A connection accepted elsewhere (a shared listener), waiting for the service thread. */
struct http_adopt {
    struct http_adopt *next;
    int fd;
    char peer[64]; /* the client, as http_client_addr tells it */
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
    uint64_t by_status[HTTP_STATUSES]; /* written by the service thread only (ML_COUNT) */
};

/* http-req.c: the HTTP protocol's events, on the service thread. */
int http_req_start(struct http_server *srv, struct lws *wsi, struct http_conn *conn);
void http_req_body(struct http_conn *conn, const void *in, size_t len);
void http_req_body_done(struct http_conn *conn);
int http_req_write(struct http_server *srv, struct lws *wsi, struct http_conn *conn);
void http_req_closed(struct http_conn *conn);
/* Runs what other threads posted (the service thread, or http_server_free). */
void http_posted_drain(struct http_server *srv);

#endif
