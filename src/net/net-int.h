/* Internals of the network engine shared by its modules; nothing outside src/net includes it. */
#ifndef ML_NET_INT_H
#define ML_NET_INT_H

#include "net/net.h"

#include <openssl/ssl.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#define NET_TXQ_LEN 256           /* datagrams queued per worker before a flush */
#define NET_TX_ARENA (256 * 1024) /* bytes for copied datagrams per worker */
#define NET_RX_SLOT (NET_HEADROOM + NET_MAX_DATAGRAM + NET_TAILROOM)
#define NET_DRAIN_ROUNDS 16 /* recvmmsg calls per wakeup before yielding to other fds */
#define NET_RX_MIN_FREE 8   /* fewer free receive slots than this: flush, start over */

struct net_task {
    net_task_fn fn;
    void *arg;
    struct net_task *next;
};

/* A local address of a UDP socket: IPv4 or IPv6 (not a whole sockaddr_storage: there is one
 * per allocation). */
union net_sockaddr {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

struct net_udp {
    struct net_worker *w;
    int fd;
    int endpoint;     /* listener endpoint index, or -1 */
    struct event *ev; /* epoll: readability; NULL with io_uring */
    net_udp_cb cb;
    void *arg;
    union net_sockaddr local;
    bool busy;  /* its callback is running */
    bool dead;  /* closed while busy (or, io_uring, while a receive is in flight): freed later */
    bool armed; /* io_uring: a multishot receive is in flight */
    bool rearm; /* io_uring: on the worker's list of receives to start again */
    struct net_udp *rearm_next;
};

struct net_stream {
    struct net_worker *w;
    struct bufferevent *bev; /* frames in and out (for TLS: OpenSSL's filter over raw) */
    struct bufferevent *raw; /* TLS: the socket's bufferevent (records); NULL for TCP */
    SSL *ssl;                /* TLS: the session, freed with the stream (it can move) */
    enum net_transport transport;
    int endpoint;
    struct sockaddr_storage peer, local;
    void *conn; /* the handler's state (NULL while a shared:// connection is being sniffed) */
    /* shared://: what the first bytes (for TLS, the first decrypted bytes or the ALPN)
     * decide; NET_SNIFF_NONE once decided and for every other listener */
    enum { NET_SNIFF_NONE, NET_SNIFF_PLAIN, NET_SNIFF_TLS } sniff;
    struct net_conn *proxy; /* an HTTP-over-TLS stream: the socketpair end toward lws */
    /* plain sniffing peeks (MSG_PEEK): nothing is read from the socket before it is decided,
     * so that HTTP goes to lws, and a ClientHello to OpenSSL, untouched */
    struct event *peek;       /* the socket readable, or the deadline */
    struct event *peek_again; /* too few bytes to tell: peek again after peek_delay_ms */
    int peek_delay_ms;
    int64_t peek_deadline_ms;
    bool closing;
    bool framed;        /* a whole frame came: a PROXY header is no longer looked for */
    bool freed_pending; /* on the worker's dying list: freed by its reaper, or at stop */
    /* a pipe to a raw connection (net_conn_pipe): bytes, not frames */
    struct net_conn *pipe;
    bool read_paused; /* the pipe's connection has max bytes waiting: not read meanwhile */
    /* net_stream_handover() asked from inside stream_frame: done once the frame is drained */
    int handover_to; /* worker index, or -1 */
    uint8_t *handover_frame;
    size_t handover_len;
    bool addr_held;         /* counted in the engine's per-address table */
    struct event *deadline; /* the earlier of frame_by_ms and setup_by_ms */
    int64_t frame_by_ms;    /* a begun frame must be whole by then (monotonic); 0: none */
    int64_t setup_by_ms;    /* net_stream_established must come by then; 0: set up */
    int64_t armed_ms;       /* when the deadline timer fires; 0: not set */
    struct net_stream *prev, *next;
};

/* A raw TCP connection to or from a peer (tcpconn.c). */
struct net_conn {
    struct net_worker *w;
    struct bufferevent *bev;
    struct sockaddr_storage peer;
    net_conn_cb cb; /* NULL once closing */
    void *arg;
    int error;
    bool connecting;
    bool closing;
    bool freed_pending;
    /* the pipe */
    struct net_stream *pipe;
    size_t max;         /* bytes allowed to wait toward each side */
    bool read_paused;   /* the stream has max bytes waiting: the peer is not read meanwhile */
    struct event *wake; /* resumes reading the peer, from the loop (see tcpconn.c) */
    struct evbuffer_cb_entry *wire_cb; /* on the stream's wire buffer while piped */
    uint64_t from_peer, to_peer;
    struct net_conn *prev, *next;
};

/* A listening socket whose accept pauses while descriptors run out (accept.c): accept() failing
 * with EMFILE leaves the socket readable, and libevent would call it again at once, forever. */
struct net_acceptor;
typedef void (*net_acceptor_cb)(struct net_acceptor *a, int fd, const struct sockaddr *peer,
                                socklen_t peerlen);
struct net_acceptor {
    struct net_worker *w;
    struct evconnlistener *l;
    struct event *retry; /* re-enables accepting when a pause ends */
    net_acceptor_cb cb;
    void *arg;
    int endpoint;         /* the stream listener's endpoint, -1 for a relay listener */
    unsigned pause_ms;    /* the current pause (doubling up to a second); 0: accepting */
    int64_t paused_at_ms; /* when the first pause of this episode began */
    unsigned pauses;      /* in this episode */
};
/* Serves the listening socket fd (takes ownership, closed on failure too). NULL with err. */
struct net_acceptor *net_acceptor_new(struct net_worker *w, int fd, int endpoint,
                                      net_acceptor_cb cb, void *arg, char *err, size_t errlen);
/* Stops listening and closes the socket. Safe inside its own callback. */
void net_acceptor_free(struct net_acceptor *a);

struct net_listener {
    struct net_worker *w;
    struct net_acceptor *acc;
    net_accept_cb cb;
    void *arg;
};

/* Datagrams waiting for sendmmsg. */
struct net_txq {
    unsigned n;
    struct mmsghdr msgs[NET_TXQ_LEN];
    struct iovec iov[NET_TXQ_LEN];
    struct sockaddr_storage to[NET_TXQ_LEN];
    int fd[NET_TXQ_LEN];
    size_t arena_used;
    uint8_t *arena; /* NET_TX_ARENA bytes */
};

struct net_uring;

struct net_worker {
    unsigned id;
    struct net_engine *e;
    struct net_uring *ur; /* io_uring data path, or NULL (epoll) */
    pthread_t thread;
    bool running;
    struct event_base *base;
    struct event *wake;
    pthread_mutex_t qlock;
    struct net_task *qhead, *qtail;
    bool stopping; /* set under qlock: no more posts accepted */
    void *state;
    struct net_counters ctr;
    bool in_batch;
    bool quit; /* atomic: set by net_engine_free, leave the loop */
    /* receive batch */
    uint8_t *rx;      /* NET_MAX_BATCH slots of NET_RX_SLOT bytes */
    unsigned rx_used; /* slots [0, rx_used) hold datagrams that queued sends still point into */
    struct mmsghdr rx_msgs[NET_MAX_BATCH];
    struct iovec rx_iov[NET_MAX_BATCH];
    struct net_pkt pkts[NET_MAX_BATCH];
    struct net_txq tx;
    /* listeners bound for this worker, indexed by endpoint */
    struct net_udp **udp;
    struct net_acceptor **tcp;
    int *tcp_fd;
    /* stream connections: open ones, and closed ones waiting for the reaper (a stream is
     * never freed inside a call that may still use it, so its end is deferred to the loop) */
    struct net_stream *streams;
    struct net_stream *dying;
    struct event *reap; /* activated when a dying list is not empty */
    unsigned nstreams;  /* both lists */
    /* raw connections (tcpconn.c): open ones, and closed ones waiting for the reaper */
    struct net_conn *conns;
    struct net_conn *conns_dying;
    /* accepted from a trusted proxy, its PROXY header not read yet (stream-proxy.c) */
    struct net_proxy_wait *proxy_waits;
};

struct net_engine {
    struct net_settings set;
    struct net_endpoint *eps;
    size_t neps;
    struct sockaddr_storage *bound; /* per endpoint, with the chosen port */
    const struct net_handler *h;
    void *ctx;
    unsigned nworkers;
    struct net_worker **workers;
    pthread_mutex_t tls_lock;
    SSL_CTX *tls_ctx;
    struct ml_cidr_set proxy_from; /* net.proxy-protocol-from */
    pthread_mutex_t http_lock;     /* held while http_fn is read or called */
    net_http_fn http_fn;           /* shared:// listeners' HTTP connections; NULL: closed */
    void *http_arg;
    bool http_tls; /* atomic: http_fn takes TLS before its handshake (ALPN http/1.1) */
    struct ml_addr_counts *addrs; /* streams per client address, all workers (a mutex) */
    bool uring;                   /* UDP sockets are served by io_uring */
    char io_note[256];            /* what serves them and why, for the log */
};

/* udp.c */
int net_udp_socket(const struct sockaddr *addr, const struct net_settings *set, bool reuseport,
                   bool *eaddrinuse, char *err, size_t errlen);
struct net_udp *net_udp_wrap(struct net_worker *w, int fd, int endpoint, net_udp_cb cb, void *arg);
/* Watches u: its worker's ring, or an event of its loop. -1 with err set when it cannot. */
int net_udp_arm(struct net_udp *u, char *err, size_t errlen);
void net_udp_free(struct net_udp *u);
/* What a run of sends did, added to by net_txq_sendmmsg. */
struct net_tx_count {
    uint64_t sent, bytes, dropped;
};
/* Sends the queued datagrams [i, j) of q, which all name one socket (q->fd[i]), in as few
 * sendmmsg calls as it takes, and counts them in *c: a full socket buffer drops the rest of the
 * run, an error about one destination drops that datagram. Used by both data paths. */
void net_txq_sendmmsg(struct net_txq *q, unsigned i, unsigned j, struct net_tx_count *c);
/* End of a loop iteration: sends what it queued (and, io_uring, handles completions). */
void net_worker_turn(struct net_worker *w);

/* uring.c: the io_uring data path. Everything but net_io_select and net_uring_free runs on the
 * worker's thread. */
/* Picks the data path for requested (enum net_io): *uring is set, note says what and why for
 * the log. -1 with err filled when io_uring was required and cannot serve. probe_err, when
 * not NULL, replaces the probe of the kernel (for tests). */
int net_io_select(enum net_io requested, const char *probe_err, bool *uring, char *note,
                  size_t notelen, char *err, size_t errlen) ML_WUR;
/* Whether this kernel and process can run the io_uring data path; why not in why. */
int net_uring_probe(char *why, size_t whylen) ML_WUR;
/* Picks where the io_uring path's workers sleep for requested: *chosen is RING or LOOP, and
 * note (a string of the log) says which. -1 with err filled (and why) when RING was asked for
 * and cannot be had. probe_err, when not NULL, replaces the probe (for tests). */
int net_uring_wait_select(enum net_uring_wait requested, const char *probe_err,
                          enum net_uring_wait *chosen, char *note, size_t notelen, char *err,
                          size_t errlen) ML_WUR;
/* Whether a worker can sleep in its ring here: the kernel takes IORING_SETUP_DEFER_TASKRUN,
 * and libevent's waits come through this program's epoll_wait; why not in why. */
int net_uring_wait_probe(char *why, size_t whylen) ML_WUR;
/* A worker's ring and buffers, made before its thread starts (the ring starts disabled). */
struct net_uring *net_uring_new(const struct net_settings *set, char *err, size_t errlen) ML_WUR;
/* On the worker's thread before any socket is armed: enables the ring, and either watches its
 * fd on the worker's loop (loop wait) or takes the loop's waits into it (ring wait). */
int net_uring_start(struct net_worker *w, char *err, size_t errlen) ML_WUR;
/* On the worker's thread after every socket is closed: waits (bounded) for the kernel to give
 * back every buffer and request, freeing the sockets whose receive was still in flight. */
void net_uring_stop(struct net_worker *w);
/* Frees the ring and buffers (any thread, after net_uring_stop or if never started). */
void net_uring_free(struct net_uring *r);
/* Starts u's multishot receive; 0 or -1. */
int net_uring_arm(struct net_udp *u, char *err, size_t errlen) ML_WUR;
/* Closes u: cancels its receive; u is freed once the kernel has let go of it. */
void net_uring_close(struct net_udp *u);
/* Queues a datagram as a send request. copy: data is copied (else it must be a received
 * datagram's buffer, or is copied anyway). 0, or -1 when it could not be queued (the caller
 * sends it at once). */
int net_uring_send(struct net_udp *u, const struct sockaddr *to, const void *data, size_t len,
                   bool copy);
/* Submits the queued sends. */
void net_uring_flush(struct net_worker *w);
/* The end of a loop iteration: submits, runs completions, delivers datagrams (bounded). */
void net_uring_turn(struct net_worker *w);

/* tls.c: the SSL ex_data slot that marks a shared:// session (ALPN http/1.1 too) */
int net_tls_shared_index(void);

/* stream.c */
int net_tcp_listen_socket(const struct sockaddr *addr, bool *eaddrinuse, char *err, size_t errlen);
int net_stream_listen(struct net_worker *w, size_t endpoint, int fd, char *err, size_t errlen);
void net_streams_close_all(struct net_worker *w);
void net_reap(evutil_socket_t fd, short what, void *arg);
size_t net_stream_queued(const struct net_stream *s);
/* The frame at the head of a stream's input by the handler's frame_len, at most max_frame
 * bytes: its length (> 0) with *frame pointing at it, made contiguous (valid until in changes);
 * 0 while it is incomplete (or under 4 bytes); or a NET_FRAME_* error, after which the stream
 * cannot go on. Nothing is drained. */
#define NET_FRAME_BAD (-1)       /* frame_len cannot frame it */
#define NET_FRAME_OVERSIZED (-2) /* longer than max_frame */
#define NET_FRAME_NOMEM (-3)     /* could not be made contiguous */
long net_frame_next(struct evbuffer *in, const struct net_handler *h, long long max_frame,
                    uint8_t **frame);
struct evbuffer *net_stream_wire_out(struct net_stream *s);
/* An accepted connection (s: transport, endpoint, peer and local set; on no list yet; fd
 * owned) becomes a stream: TLS session, bufferevents, the handler's stream_open. */
void net_stream_begin(struct net_worker *w, struct net_stream *s, int fd);

/* stream-proxy.c: a connection from a net.proxy-protocol-from peer reads its PROXY header
 * (if it starts with one) before net_stream_begin; the header's client becomes s->peer. */
bool net_proxy_trusted(const struct net_engine *e, const struct sockaddr *peer);
void net_proxy_wait(struct net_worker *w, struct net_stream *s, int fd);
void net_proxy_waits_close_all(struct net_worker *w);

/* tcpconn.c */
void net_conns_reap(struct net_worker *w);
void net_conns_close_all(struct net_worker *w);
/* The pipe seen from the stream: its bytes arrived; it is being freed. */
void net_pipe_from_stream(struct net_stream *s);
void net_pipe_stream_gone(struct net_stream *s);

#endif
