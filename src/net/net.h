/* Network engine: worker threads (one libevent event_base each), listeners shared between them
 * with SO_REUSEPORT, UDP sockets served with recvmmsg/sendmmsg batches, and framed TCP/TLS
 * streams. It knows nothing of TURN: a protocol plugs in through struct net_handler. Prefix:
 * net_. Threading: every object belongs to one worker and is touched only on that worker's
 * thread, except net_worker_post(), which any thread may call. */
#ifndef ML_NET_H
#define ML_NET_H

#include "common/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct net_engine;
struct net_worker;
struct net_udp;
struct net_stream;
typedef struct ssl_ctx_st SSL_CTX;

#define NET_HEADROOM 128       /* writable bytes before every received payload */
#define NET_TAILROOM 8         /* writable bytes after it (padding of a Data indication) */
#define NET_MAX_DATAGRAM 65536 /* largest datagram received whole */
#define NET_MAX_BATCH 64       /* recvmmsg/sendmmsg batch */

enum net_transport {
    NET_UDP = 0,
    NET_TCP = 1,
    NET_TLS = 2,
    /* A listener only (shared://): one TCP port whose connections are TLS or not, TURN or
     * HTTP, decided by their first bytes; its streams are NET_TCP or NET_TLS once decided. */
    NET_SHARED = 3,
};
const char *net_transport_name(enum net_transport t); /* "udp", "tcp", "tls", "shared" */

/* One configured listen address ("udp://127.0.0.1:3478"). */
struct net_endpoint {
    enum net_transport transport;
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

/* Parses a turn.listen style list into a malloc'd array (caller frees). 0 or -1. */
int net_endpoints_parse(const char *list, struct net_endpoint **out, size_t *n, char *err,
                        size_t errlen) ML_WUR;
/* Validator for configuration keys holding endpoint lists. */
int net_endpoints_validate(const char *value, char *err, size_t errlen);

/* A received datagram. data points into a worker-owned buffer that stays valid until the
 * callback that received it returns; NET_HEADROOM bytes before data and NET_TAILROOM bytes
 * after it may be written, so that a header (and padding) can be added without a copy. */
struct net_pkt {
    uint8_t *data;
    size_t len;
    struct sockaddr_storage from;
    socklen_t fromlen;
};

/* A batch of datagrams arrived on u. */
typedef void (*net_udp_cb)(struct net_udp *u, void *arg, struct net_pkt *pkts, unsigned n);
/* A task run on a worker's thread. */
typedef void (*net_task_fn)(struct net_worker *w, void *arg);

/* The protocol served on the listeners (TURN). All calls run on the worker's thread. */
struct net_handler {
    /* Per-worker protocol state, made when the worker starts and freed when it stops. */
    void *(*worker_start)(struct net_worker *w, void *ctx);
    void (*worker_stop)(struct net_worker *w, void *state);
    /* Datagrams on a UDP listener. */
    net_udp_cb udp_recv;
    /* A stream client connected; returns its per-connection state, or NULL to refuse. */
    void *(*stream_open)(void *state, struct net_stream *s);
    /* One whole frame (as framed by frame_len) arrived; data is valid during the call. */
    void (*stream_frame)(void *state, struct net_stream *s, void *conn, uint8_t *data, size_t len);
    /* The stream closed (by the peer, an error, or net_stream_close); conn must be freed. */
    void (*stream_close)(void *state, struct net_stream *s, void *conn);
    /* Length of the next frame in a stream: > 0, 0 when more bytes are needed, -1 to close. */
    long (*frame_len)(const uint8_t *buf, size_t avail);
};

/* What serves UDP sockets (net.io): io_uring when the kernel allows it, else epoll. */
enum net_io {
    NET_IO_AUTO = 0,  /* io_uring if available, else epoll (the choice is logged) */
    NET_IO_URING = 1, /* io_uring or a start error */
    NET_IO_EPOLL = 2, /* epoll with recvmmsg/sendmmsg */
};

/* Where a worker of the io_uring path sleeps (net.uring-wait). */
enum net_uring_wait {
    NET_URING_WAIT_LOOP = 0, /* in libevent's epoll_wait, the ring's fd among its events */
    NET_URING_WAIT_RING = 1, /* in io_uring_enter (DEFER_TASKRUN), or a start error */
};

/* Engine settings (from the [net] and [turn] configuration sections). */
struct net_settings {
    unsigned workers;              /* threads; 0: one per core */
    enum net_io io;                /* UDP data path */
    unsigned uring_buffers;        /* io_uring: receive buffers per worker (a power of 2) */
    enum net_uring_wait wait;      /* io_uring: where a worker sleeps */
    unsigned udp_batch;            /* recvmmsg batch, 1..NET_MAX_BATCH */
    long long udp_rcvbuf;          /* bytes; 0 keeps the system default */
    long long udp_sndbuf;          /* bytes; 0 keeps the system default */
    long long stream_max_frame;    /* bytes; a larger frame closes the stream */
    long long stream_out_max;      /* bytes queued to one stream client before drops */
    long long stream_idle_s;       /* seconds without a frame before a stream is closed */
    unsigned max_streams;          /* stream connections per worker; 0: derived (ml_fd_share) */
    unsigned max_streams_per_addr; /* stream connections per client address; 0: no cap */
    long long stream_frame_s;      /* seconds for a begun frame to complete; 0: no deadline */
    long long stream_setup_s;      /* seconds from accept to net_stream_established; 0: none */
    /* CIDR list of peers whose TCP/TLS connections may start with a PROXY protocol header
     * (borrowed until net_engine_new returns; NULL or "": none) */
    const char *proxy_from;
    long long shared_first_s; /* shared://: seconds for the first bytes (and TLS handshake) */
};

/* The [net] configuration section, as stored by the configuration engine. */
struct net_config {
    long long workers, udp_batch, udp_rcvbuf, udp_sndbuf;
    int io;
    long long uring_buffers;
    int uring_wait;
    long long stream_max_frame, stream_out_max, stream_idle_s, max_streams;
    char *proxy_from;
    long long shared_first_s;
    long long max_streams_per_addr, stream_frame_s, stream_setup_s;
};
extern const struct ml_cfg_key net_cfg_keys[];
/* Converts the configuration into engine settings. */
void net_config_settings(const struct net_config *c, struct net_settings *out);

/* Counters kept by each worker; written only by its thread, readable from any thread with
 * net_counters_read() without stopping it. */
struct net_counters {
    uint64_t udp_rx_packets, udp_rx_bytes;
    uint64_t udp_tx_packets, udp_tx_bytes;
    uint64_t udp_rx_batches;       /* batches handed to the handler: recvmmsg calls that returned
                                      data (epoll), runs of one socket's completions (io_uring) */
    uint64_t udp_rx_batch_hist[7]; /* batches of 1, 2-3, 4-7, 8-15, 16-31, 32-63, 64 */
    uint64_t udp_rx_truncated;     /* datagrams larger than NET_MAX_DATAGRAM, dropped */
    uint64_t udp_tx_dropped;       /* datagrams the kernel would not take */
    uint64_t udp_ring_wakeups;     /* io_uring, loop wait: a sleeping worker woken by its ring's
                                      receives, reported to libevent without a second wait */
    uint64_t stream_accepted, stream_refused, stream_closed;
    uint64_t stream_rx_bytes, stream_tx_bytes;
    uint64_t stream_tx_dropped; /* frames dropped because a client read too slowly */
    uint64_t stream_bad_frames; /* streams closed for an unframeable or oversized frame */
    uint64_t stream_moved;      /* streams handed over to another worker (net_stream_handover) */
    uint64_t conn_open;         /* gauge: raw TCP connections (net_conn) */
    uint64_t conn_bytes_in;     /* bytes piped from raw connections to streams */
    uint64_t conn_bytes_out;    /* bytes piped from streams to raw connections */
    /* shared:// listeners: what each connection turned out to carry */
    uint64_t shared_turn_tcp, shared_turn_tls; /* TURN over TCP, over TLS */
    uint64_t shared_http, shared_https;        /* HTTP handed to the control plane, plain, TLS */
    /* HTTPS whose ClientHello offered http/1.1: handed over before the handshake (its TLS is
     * the control plane's), not counted in shared_https */
    uint64_t shared_https_direct;
    uint64_t shared_refused;        /* neither (garbage, nothing in time, no control plane) */
    uint64_t stream_refused_addr;   /* refused: net.max-streams-per-address reached */
    uint64_t stream_frame_timeouts; /* closed: a frame unfinished after net.stream-frame-timeout */
    uint64_t stream_setup_timeouts; /* closed: not set up within net.stream-setup-timeout */
    uint64_t accept_paused;         /* accepting paused: descriptors ran out (EMFILE, ENFILE) */
};

/* Adds n to a counter owned by the calling thread, readable by others without tearing. */
#define NET_COUNT(c, n) ML_COUNT(c, n)

/* ---------------------------------------------------------------- engine */

/* Creates the engine: binds every endpoint on every worker (SO_REUSEPORT), so that a failure
 * to bind is reported before anything runs. A port 0 endpoint is bound once and the chosen port
 * is shared by all workers. tls_ctx is needed when an endpoint is tls:// (borrowed; see
 * net_engine_set_tls). Returns NULL with err filled. */
struct net_engine *net_engine_new(const struct net_settings *set, const struct net_endpoint *eps,
                                  size_t neps, const struct net_handler *h, void *ctx,
                                  SSL_CTX *tls_ctx, char *err, size_t errlen) ML_WUR;
/* Starts the worker threads. 0 or -1. */
int net_engine_start(struct net_engine *e, char *err, size_t errlen) ML_WUR;
/* Stops and joins the workers (each frees its protocol state), then frees the engine. */
void net_engine_free(struct net_engine *e);
unsigned net_engine_workers(const struct net_engine *e);
struct net_worker *net_engine_worker(struct net_engine *e, unsigned i);
/* The address an endpoint is bound to (with the port chosen for port 0). */
const struct sockaddr *net_engine_bound(const struct net_engine *e, size_t endpoint);
/* Replaces the TLS context used for new connections (existing ones keep theirs). Takes a
 * reference on ctx; callable from any thread. */
void net_engine_set_tls(struct net_engine *e, SSL_CTX *ctx);
/* Sums every worker's counters into out. */
void net_engine_counters(struct net_engine *e, struct net_counters *out);
/* The limits in force: stream connections per worker (derived when net.max-streams is 0) and
 * per client address (0: none); client addresses holding a stream now. */
void net_engine_limits(struct net_engine *e, unsigned *max_streams, unsigned *per_addr,
                       size_t *addresses);

/* Where shared:// listeners send the HTTP connections they find. fn runs on a worker's thread
 * and owns fd from the call on, whatever it does with it; nothing has been read from fd (the
 * first bytes were only peeked); peer is the client. With tls false, fd carries plain HTTP:
 * the client's socket, or for a TLS connection one end of a socketpair that carries the
 * decrypted bytes (the worker keeps the session and pipes), so peer is the only place the
 * client's address is. With tls true (only when the receiver was set with takes_tls), fd is
 * the client's socket with its ClientHello, which offers ALPN http/1.1, still unread: the
 * receiver does the TLS handshake itself, with the shared listener's certificate. */
typedef void (*net_http_fn)(void *arg, int fd, const struct sockaddr *peer, bool tls);
/* Sets (or, fn NULL, clears: such connections are closed) the receiver; any thread. arg is
 * borrowed until it is cleared: no call of fn is running or will run once this returns.
 * takes_tls: fn accepts TLS connections before their handshake (see net_http_fn). */
void net_engine_set_http(struct net_engine *e, net_http_fn fn, void *arg, bool takes_tls);
/* The UDP data path chosen at start ("io_uring", or "epoll" with the reason), for the log; a
 * string owned by the engine. */
const char *net_engine_io(const struct net_engine *e);
/* Whether the engine serves UDP with io_uring. */
bool net_engine_uses_uring(const struct net_engine *e);

/* ---------------------------------------------------------------- TLS */

/* What a TLS server context is made of (strings borrowed for the call). */
struct net_tls_settings {
    const char *cert;         /* PEM certificate chain file, leaf first */
    const char *key;          /* PEM private key file */
    const char *min_version;  /* "1.2" or "1.3" */
    const char *ciphers;      /* OpenSSL cipher list for TLS 1.2; NULL: OpenSSL's default */
    const char *ciphersuites; /* TLS 1.3 suites; NULL: OpenSSL's default */
};

/* Builds a server context from files; NULL with err filled (nothing half-built is returned).
 * The caller owns the reference. */
SSL_CTX *net_tls_ctx_new(const struct net_tls_settings *t, char *err, size_t errlen) ML_WUR;
/* "1.2" or "1.3" into a TLS1_x_VERSION; 0 or -1. */
int net_tls_version_parse(const char *text, int *version) ML_WUR;
int net_tls_version_validate(const char *value, char *err, size_t errlen);
/* Describes the context's certificate for the log: subject and expiry date. */
int net_tls_describe(SSL_CTX *ctx, char *buf, size_t len);

/* A certificate and key that can be replaced under a TLS context someone else built and owns
 * (a libwebsockets vhost's): attached to it, every new handshake takes the pair current at that
 * moment; established connections keep theirs. Thread-safe: set from any thread. */
struct net_tls_cert;
/* A holder with no pair yet (NULL on OOM). */
struct net_tls_cert *net_tls_cert_new(void) ML_WUR;
/* Frees the holder; every context it is attached to must be gone. NULL is fine. */
void net_tls_cert_free(struct net_tls_cert *c);
/* Loads and checks a pair (chain file, key file, key matching the certificate) without putting
 * it in use: a context that holds it (caller owns; NULL with err filled). */
SSL_CTX *net_tls_cert_load(const char *cert, const char *key, char *err, size_t errlen) ML_WUR;
/* Makes the pair of loaded (from net_tls_cert_load; the holder takes its own reference) the one
 * new handshakes get. */
void net_tls_cert_set(struct net_tls_cert *c, SSL_CTX *loaded);
/* Attaches the holder to ctx (SSL_CTX_set_cert_cb): the holder must outlive ctx. */
void net_tls_cert_attach(struct net_tls_cert *c, SSL_CTX *ctx);

/* ---------------------------------------------------------------- workers */

unsigned net_worker_id(const struct net_worker *w);
struct event_base *net_worker_base(struct net_worker *w);
void *net_worker_state(struct net_worker *w); /* the handler's per-worker state */
struct net_engine *net_worker_engine(struct net_worker *w);
const struct net_counters *net_worker_counters(const struct net_worker *w);
/* Runs fn(w, arg) on w's thread soon. Callable from any thread; 0, or -1 when the worker has
 * stopped (fn will not run: the caller still owns arg). */
int net_worker_post(struct net_worker *w, net_task_fn fn, void *arg) ML_WUR;
/* The worker whose thread is calling, or NULL. */
struct net_worker *net_worker_self(void);
/* Cached wall and monotonic time for the current loop iteration. */
int64_t net_worker_now_ms(struct net_worker *w);

/* ---------------------------------------------------------------- UDP */

/* Opens a UDP socket on w bound to addr (port 0: any port), served by cb. Returns NULL with
 * err filled; *eaddrinuse tells a port collision apart (may be NULL). */
struct net_udp *net_udp_open(struct net_worker *w, const struct sockaddr *addr, net_udp_cb cb,
                             void *arg, bool *eaddrinuse, char *err, size_t errlen) ML_WUR;
/* A bound, non-blocking UDP socket (with the engine's buffer sizes) not yet served: for ports
 * held in reserve. Returns the fd (the caller owns it), or -1 with err filled. */
int net_udp_bind(struct net_worker *w, const struct sockaddr *addr, bool *eaddrinuse, char *err,
                 size_t errlen) ML_WUR;
/* Serves a bound UDP socket on w with cb; takes ownership of fd (closed on failure too). */
struct net_udp *net_udp_adopt(struct net_worker *w, int fd, net_udp_cb cb, void *arg, char *err,
                              size_t errlen) ML_WUR;
/* Closes it; queued sends are flushed first. Safe inside its own callback. */
void net_udp_close(struct net_udp *u);
const struct sockaddr *net_udp_local(const struct net_udp *u);
int net_udp_fd(const struct net_udp *u);
/* The listener endpoint index of a listener socket, or -1 for sockets from net_udp_open. */
int net_udp_endpoint(const struct net_udp *u);
/* Queues a datagram; batches go out with sendmmsg when the current receive batch ends (or at
 * once outside a batch). data is copied. Returns 0, or -1 when it was dropped. */
int net_udp_send(struct net_udp *u, const struct sockaddr *to, const void *data, size_t len);
/* Like net_udp_send but without a copy: data must stay valid until the current receive
 * callback returns (a received packet's own buffer qualifies). */
int net_udp_send_ref(struct net_udp *u, const struct sockaddr *to, const void *data, size_t len);
/* Sends everything queued on w now. */
void net_worker_flush(struct net_worker *w);

/* ---------------------------------------------------------------- streams */

enum net_transport net_stream_transport(const struct net_stream *s);
const struct sockaddr *net_stream_peer(const struct net_stream *s);
const struct sockaddr *net_stream_local(const struct net_stream *s);
int net_stream_endpoint(const struct net_stream *s);
/* Queues bytes to the client. Returns 0, or -1 when the client's output queue is over its
 * limit (the frame is dropped and counted: backpressure never buffers without bound). */
int net_stream_send(struct net_stream *s, const void *data, size_t len);
/* Queues an answer to the client's own request: it may go NET_STREAM_REPLY_SLACK bytes past
 * the output limit (relayed data is dropped first), and a client that lets even that fill up
 * reads nothing, so its connection is closed. Returns 0 or -1. */
#define NET_STREAM_REPLY_SLACK (64 * 1024)
int net_stream_send_reply(struct net_stream *s, const void *data, size_t len);
/* Bytes queued to the client and not yet written. */
size_t net_stream_pending(const struct net_stream *s);
/* Sets the idle timeout: the stream closes after that many seconds without input (0: never). */
void net_stream_set_idle(struct net_stream *s, long long seconds);
/* Restores the engine's idle timeout (net.stream-idle-timeout). */
void net_stream_reset_idle(struct net_stream *s);
/* The protocol says the connection is set up (TURN: it holds an allocation): the setup
 * deadline (net.stream-setup-timeout) no longer applies. A piped stream is set up too. */
void net_stream_established(struct net_stream *s);
/* Closes after the queued output is written (bounded by a short timeout); the handler's
 * stream_close runs later, never inside this call. */
void net_stream_close(struct net_stream *s);
/* Hands the connection over to worker index `to`, for a frame that belongs there: its socket,
 * its TLS session and every byte read or queued but not processed or written move to that
 * worker. Call only from the handler's stream_frame for this stream; frame (len bytes) is
 * copied. Here the stream ends as a closed one does (the handler's stream_close frees conn);
 * there the handler's stream_open makes its new state, then stream_frame gets frame, then the
 * bytes that followed it. Returns 0, or -1 (nothing changed: handle the frame here). */
int net_stream_handover(struct net_stream *s, unsigned to, const uint8_t *frame, size_t len) ML_WUR;

/* ---------------------------------------------------------------- PROXY protocol (proxy.c) */

#define NET_PROXY_MAX 1040 /* bytes of a header accepted (v2: 16 + addresses + TLVs) */

enum net_proxy_rc {
    NET_PROXY_NONE, /* the bytes are not a PROXY header */
    NET_PROXY_MORE, /* a header's beginning: more bytes are needed */
    NET_PROXY_DONE, /* a whole header of out->len bytes */
    NET_PROXY_BAD,  /* a header, malformed or longer than NET_PROXY_MAX */
};

struct net_proxy_hdr {
    unsigned version; /* 1 or 2 */
    size_t len;       /* bytes of the header (DONE; for v2 also once its length is known) */
    bool has_addr;    /* false: LOCAL, UNKNOWN, UNSPEC or UNIX: the peer's own address stands */
    struct sockaddr_storage src, dst; /* the client, and the address it connected to */
};

/* Parses a PROXY protocol header (version 1 or 2) at the start of buf (len bytes). Reads only
 * buf; never past out->len on DONE, so what follows is the client's. */
enum net_proxy_rc net_proxy_parse(const uint8_t *buf, size_t len, struct net_proxy_hdr *out);
/* True when buf (len > 0 bytes) begins like a PROXY header of either version. */
bool net_proxy_signature(const uint8_t *buf, size_t len);

/* What the first bytes of a connection to a shared:// listener are. */
enum net_first {
    NET_FIRST_MORE, /* too few bytes to tell yet */
    NET_FIRST_TLS,  /* a TLS handshake record (16 03): a ClientHello */
    NET_FIRST_TURN, /* a STUN message (00 bits, magic cookie at offset 4) or ChannelData */
    NET_FIRST_HTTP, /* an HTTP/1.x request line's method and its space */
    NET_FIRST_BAD,  /* none of them */
};
/* Classifies the first n bytes of a connection (tls: a TLS record may come; false inside
 * TLS). Looks at no more than 8 bytes. */
enum net_first net_first_bytes(const uint8_t *b, size_t n, bool tls);

/* ---------------------------------------------------------------- TLS ClientHello (clienthello.c)
 */

#define NET_HELLO_MAX 16384      /* bytes of a ClientHello message looked at; a longer one is NOT */
#define NET_HELLO_PEEK_MAX 20480 /* bytes of a connection peeked for its hello (with records) */

enum net_hello_rc {
    NET_HELLO_MORE, /* the beginning of a ClientHello (or nothing yet): more bytes are needed */
    NET_HELLO_NOT,  /* not a ClientHello this parser reads whole (malformed, other, too long) */
    NET_HELLO_DONE, /* a whole ClientHello, in out->len bytes of records */
};

/* What a ClientHello offers. */
struct net_hello {
    size_t len;                           /* bytes of the records that carried it (DONE only) */
    bool alpn;                            /* it has an ALPN extension */
    unsigned alpn_count;                  /* protocols in it */
    bool alpn_http11, alpn_h2, alpn_turn; /* "http/1.1", "h2", "stun.turn" among them */
    char sni[256];                        /* its first host_name, NUL-terminated; "" when none */
};

/* Reads the TLS records at the start of buf (len bytes: what has arrived of a connection) as a
 * ClientHello, in any number of records. Reads nothing past len; out is zeroed unless DONE. */
enum net_hello_rc net_hello_parse(const uint8_t *buf, size_t len, struct net_hello *out);

/* ---------------------------------------------------------------- raw TCP (relayed TCP) */

/* What TURN's TCP relay (RFC 6062) needs from the network layer: listening sockets on relayed
 * addresses, connections to and from peers that carry bytes as they are (no framing), and a
 * pipe between such a connection and a client's stream. Every object belongs to one worker. */
struct net_listener;
struct net_conn;

/* A listening TCP socket on addr that no other socket of this process shares: bound and
 * listening without SO_REUSEPORT (so it collides with every socket on that port), then given
 * SO_REUSEPORT so that net_conn_connect() may bind outgoing connections to the same address.
 * Returns the fd (caller owns it), or -1 with err filled; *eaddrinuse (may be NULL) tells a
 * taken port. */
int net_tcp_bind_exclusive(const struct sockaddr *addr, bool *eaddrinuse, char *err,
                           size_t errlen) ML_WUR;

/* A connection arrived on a listener: fd is the caller's (net_conn_adopt() it or close it). */
typedef void (*net_accept_cb)(struct net_listener *l, void *arg, int fd,
                              const struct sockaddr *peer);
/* Serves the listening socket fd (from net_tcp_bind_exclusive; takes ownership, closed on
 * failure too) on w's loop. Returns NULL with err filled. */
struct net_listener *net_listener_new(struct net_worker *w, int fd, net_accept_cb cb, void *arg,
                                      char *err, size_t errlen) ML_WUR;
/* Stops listening and closes the socket. Safe inside its own callback. */
void net_listener_free(struct net_listener *l);

enum net_conn_event {
    NET_CONN_CONNECTED, /* net_conn_connect() succeeded */
    NET_CONN_FAILED,    /* it failed or timed out (errno-style code in net_conn_error()) */
    NET_CONN_CLOSED,    /* the peer closed, or the connection failed, after it was up */
};
/* What happened to c; the callee may call net_conn_close(c) inside. */
typedef void (*net_conn_cb)(struct net_conn *c, void *arg, enum net_conn_event ev);

/* Connects from local (bound with SO_REUSEADDR and SO_REUSEPORT, beside a listener made by
 * net_tcp_bind_exclusive) to peer; cb gets CONNECTED or FAILED within timeout_s seconds. The
 * connection reads nothing until it is piped: what the peer sends waits in the kernel, whose
 * receive window closes. Returns NULL with err filled (cb is not called then). */
struct net_conn *net_conn_connect(struct net_worker *w, const struct sockaddr *local,
                                  const struct sockaddr *peer, int timeout_s, net_conn_cb cb,
                                  void *arg, char *err, size_t errlen) ML_WUR;
/* Wraps an accepted connection's fd (takes ownership; closed on failure). Reads nothing until
 * it is piped. NULL when out of memory. */
struct net_conn *net_conn_adopt(struct net_worker *w, int fd, net_conn_cb cb, void *arg) ML_WUR;
/* Pipes bytes both ways between c and stream s, which from now on is read as bytes, not
 * frames (what s has buffered after the frame being handled goes to c first). At most max bytes
 * wait toward each side: a side whose reader is slower stops being read until half of that has
 * drained (its TCP window closes), so memory stays bounded whatever the two ends do. When s
 * ends, what it had sent is still delivered to c, and the handler's stream_close runs as for
 * any stream; when c's peer ends, what it had sent is queued to s, then cb gets CLOSED. 0, or
 * -1 when either is already piped or closing. */
int net_conn_pipe(struct net_conn *c, struct net_stream *s, size_t max) ML_WUR;
/* Bytes piped so far: from c's peer to the stream, and from the stream to c's peer. */
void net_conn_bytes(const struct net_conn *c, uint64_t *from_peer, uint64_t *to_peer);
const struct sockaddr *net_conn_peer(const struct net_conn *c);
/* The error of a FAILED connection (an errno value; ETIMEDOUT for the timeout), else 0. */
int net_conn_error(const struct net_conn *c);
/* Closes c after what is queued to its peer is written (bounded by a short timeout); its
 * callback is not called again, and it is freed from the loop. Safe inside its callback. */
void net_conn_close(struct net_conn *c);

#endif
