/* mlload's shared declarations: options, per-thread state, statistics. Prefix: ld_. */
#ifndef ML_BENCH_MLLOAD_H
#define ML_BENCH_MLLOAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

enum ld_mode {
    LD_BINDING,
    LD_TURN_RELAY,
    LD_TURN_ALLOC,
    LD_TURN_IDLE,
    LD_REFLECT,    /* a trivial Binding responder, to calibrate the generator */
    LD_TURN_FLOOD, /* unauthenticated Allocates from one address, paced: what a victim gets */
};

/* Binding and turn-flood send paced requests on many sockets (mlload-binding.c). */
static inline bool ld_paced(enum ld_mode m)
{
    return m == LD_BINDING || m == LD_TURN_FLOOD;
}

/* The TURN client's transport to the server (RFC 8656 section 3.1); the relayed side is UDP. */
enum ld_transport {
    LD_UDP,
    LD_TCP,
    LD_TLS,
};

#define LD_BATCH 64      /* datagrams per sendmmsg/recvmmsg call */
#define LD_RX_ROUNDS 16  /* recvmmsg calls per readiness event: bounds one socket's turn */
#define LD_PKT_MAX 2048  /* bytes: receive buffer per datagram */
#define LD_SIZE_MAX 1400 /* bytes: largest --size payload */
#define LD_SIZE_MIN 16   /* bytes: sender id, sequence number and send time */
#define LD_MAX_THREADS 64
#define LD_TEARDOWN_S 10        /* seconds allowed for freeing allocations at the end */
#define LD_HIST_BUCKETS 2304    /* log-linear latency histogram, 1/64 relative precision */
#define LD_KEY_PEER 0x80000000u /* epoll key bit: a client's reflecting peer socket */

struct ld_opts {
    enum ld_mode mode;
    struct sockaddr_storage server;
    socklen_t server_len;
    struct sockaddr_storage server2; /* turn-relay pairs: the second client of every pair
                                        allocates here (a meeting spread over two nodes) */
    socklen_t server2_len;           /* 0: every client on --server */
    struct sockaddr_storage local;   /* source address of every socket (port 0): the first */
    socklen_t local_len;             /* 0: let the kernel choose */
    unsigned per_address;            /* IPv4: sockets per source address, then the next */
    unsigned threads;
    unsigned clients;     /* binding: sockets */
    double rate;          /* packets/s offered in total; 0 = closed loop (binding) */
    unsigned window;      /* binding closed loop: requests in flight per socket */
    double duration_s;    /* hard cap of the sending (or holding) phase */
    uint64_t count;       /* cap on requests, packets or allocations; 0 = none */
    unsigned drain_ms;    /* wait for late answers after sending stops */
    unsigned burst;       /* open loop: packets per pacing tick per thread */
    unsigned timeout_ms;  /* binding closed loop: a request unanswered this long is lost */
    bool fingerprint;     /* add FINGERPRINT to requests */
    unsigned pairs;       /* turn-relay */
    unsigned size;        /* turn-relay payload, bytes */
    bool send_ind;        /* turn-relay: Send/Data indications instead of ChannelData */
    const char *secret;   /* TURN REST shared secret (borrowed from argv) */
    unsigned lifetime_s;  /* LIFETIME asked for in Allocate and Refresh */
    unsigned concurrency; /* TURN: sequences in flight in total */
    unsigned sources;     /* turn-alloc: spread the sequences over this many loopback source
                             addresses from --local on (0: all from --local) */
    bool keep;            /* turn-alloc: leave the allocations on the server */
    unsigned setup_timeout_s;
    unsigned rto_ms;             /* first retransmission timeout of TURN requests */
    unsigned sockbuf;            /* bytes: SO_RCVBUF/SO_SNDBUF asked for; 0 = kernel default */
    const char *ready_file;      /* turn-idle: created once every allocation is up */
    bool spin;                   /* busy-poll instead of sleeping between bursts */
    enum ld_transport transport; /* TURN client side: UDP, TCP or TLS */
    bool peer_external;          /* turn-relay: each client relays to a UDP peer of its own */
    unsigned late_ms;            /* turn-relay: a packet later than this is lost (0: never) */
    unsigned tls_version;        /* 12 or 13: the only TLS version offered */
    const char *tls_cipher;      /* the cipher (1.2) or suite (1.3) offered (borrowed) */
    void *tls_ctx;               /* SSL_CTX of --transport tls, made once by main() */
    bool json;
    bool quiet;
};

/* Log-linear histogram of microsecond values. */
struct ld_hist {
    uint64_t n;
    uint64_t max;
    uint32_t b[LD_HIST_BUCKETS];
};

struct ld_stats {
    uint64_t sent, received;
    uint64_t errors;      /* answered, ours, but wrong (error class, wrong address, bad MAC) */
    uint64_t stale;       /* answers to requests too old to be matched any more */
    uint64_t dup;         /* a second answer to the same request or packet */
    uint64_t invalid;     /* datagrams that are not ours or do not parse */
    uint64_t timeouts;    /* closed loop: requests given up on */
    uint64_t skipped;     /* open loop: packets dropped from the schedule (generator fell behind) */
    uint64_t send_eagain; /* sendmmsg found the socket buffer full */
    uint64_t send_err;    /* other send errors (ECONNREFUSED after an ICMP error, ...) */
    uint64_t rx_drops;    /* datagrams dropped at the generator's own sockets (SO_RXQ_OVFL) */
    /* TURN */
    uint64_t setup_ok, setup_failed;
    uint64_t retransmits, stale_nonce;
    uint64_t freed, free_failed;
    uint64_t refreshed, refresh_failed;
    uint64_t misrouted;   /* relayed payload from someone other than the partner */
    uint64_t blocked;     /* stream: packets not queued, the connection's output was full (also
                             counted in skipped): the server did not read fast enough */
    uint64_t late;        /* relayed packets received later than --late-ms (not in received) */
    uint64_t peer_echoed; /* external peers: datagrams reflected back to the relay address */
    uint64_t sent_bytes, recv_bytes; /* turn-flood: requests sent, answers received */
    uint64_t recv_bytes_after_1s;    /* turn-flood: answers received after the first second */
    uint64_t conn_failed; /* stream: connections refused, reset or closed by the server */
    uint64_t pairs_run;
    double pair_loss_max_pct;
    uint32_t err_codes[700]; /* STUN error responses by code */
    double rate;             /* packets/s this thread offered (its share, less pairs that failed) */
    /* time */
    int64_t run_start_us, run_end_us; /* the measured phase */
    int64_t run_cpu_ns;               /* this thread's CPU time during the measured phase */
    int64_t last_done_us;             /* turn-alloc: when the last sequence completed */
    int64_t work_us;                  /* time spent sending and handling datagrams */
    int64_t run_work_us;              /* work_us at the end of the measured phase */
    struct ld_hist lat;               /* RTT (binding), one-way latency (relay), sequence time */
};

/* Shared across threads: the phase gate and the stop flag. */
struct ld_run {
    uint32_t cookie; /* random, first 4 bytes of every transaction id of this run */
    int64_t start_us;
    int64_t hard_end_us;    /* nothing runs past this */
    unsigned threads_ready; /* atomic: threads whose setup phase is over */
    int64_t go_us;          /* atomic: start of the measured phase once every thread is ready */
    uint64_t allocs_ready;  /* atomic: allocations up (turn-idle progress) */
};

struct ld_thread {
    unsigned idx;
    pthread_t tid;
    const struct ld_opts *o;
    struct ld_run *run;
    int ep;         /* epoll instance */
    double rate;    /* this thread's share of --rate */
    uint64_t count; /* this thread's share of --count */
    unsigned first; /* first global index of this thread's clients, pairs or sequences */
    unsigned n;     /* how many */
    struct ld_stats st;
    /* receive batch, reused by every mode */
    struct mmsghdr rx_msg[LD_BATCH];
    struct iovec rx_iov[LD_BATCH];
    uint8_t (*rx_buf)[LD_PKT_MAX];
    uint8_t rx_ctl[LD_BATCH][64];
};

/* Set from the signal handler; every loop polls it. */
extern volatile int ld_stop_flag;

static inline bool ld_stopping(void)
{
    return __atomic_load_n(&ld_stop_flag, __ATOMIC_RELAXED) != 0;
}

/* Mode entry points: run in each worker thread, fill t->st, return 0 or -1 on a setup error
 * (message already printed). */
int ld_binding_thread(struct ld_thread *t);
int ld_turn_thread(struct ld_thread *t);
int ld_reflect_thread(struct ld_thread *t);

/* Helpers of the driver. */
void ld_hist_add(struct ld_hist *h, uint64_t v);
void ld_hist_merge(struct ld_hist *dst, const struct ld_hist *src);
uint64_t ld_hist_pct(const struct ld_hist *h, double pct);
/* A non-blocking UDP socket connected to the server, buffers sized as the options say, with
 * SO_RXQ_OVFL on, bound to the source address of socket number idx (--local, --per-address);
 * the local address goes to *local. Returns the fd, or -1 with a message. */
int ld_udp_socket(const struct ld_opts *o, uint32_t idx, struct sockaddr_storage *local);
/* Registers fd for EPOLLIN with data.u32 = key. Returns 0 or -1. */
int ld_epoll_add(int ep, int fd, uint32_t key);
/* Waits for readiness until deadline_us (monotonic), at most max events. Returns the count. */
int ld_epoll_wait(int ep, struct epoll_event *ev, int max, int64_t now_us, int64_t deadline_us);
/* Receives up to LD_BATCH datagrams from fd into t->rx_buf; updates the socket's drop counter
 * *drops from SO_RXQ_OVFL. Returns the count (0 when none, never negative). */
int ld_recv_batch(struct ld_thread *t, int fd, uint32_t *drops);
/* A non-blocking UDP socket bound to socket number idx's source address (port 0), not
 * connected, buffers and SO_RXQ_OVFL as ld_udp_socket; its address goes to *local. Returns the
 * fd, or -1. */
int ld_udp_bound_socket(const struct ld_opts *o, uint32_t idx, struct sockaddr_storage *local);
/* As ld_udp_socket, from source address number i of --sources (see ld_opts.sources; without
 * it, socket number i's source address), connected to to (borrowed; NULL: o->server). */
int ld_udp_socket_from(const struct ld_opts *o, unsigned i, const struct sockaddr_storage *to,
                       struct sockaddr_storage *local);
/* Changes the events of a registered fd: EPOLLIN, plus EPOLLOUT when out. Returns 0 or -1. */
int ld_epoll_mod(int ep, int fd, uint32_t key, bool out);
/* This thread's CPU time, nanoseconds. */
int64_t ld_thread_cpu_ns(void);
/* Publishes readiness of this thread and returns once every thread is ready (or at
 * hard_end_us / on stop), keeping the thread's sockets served through poll_cb (NULL: none).
 * Returns the common start time of the measured phase. */
int64_t ld_gate(struct ld_thread *t, void (*poll_cb)(struct ld_thread *, int64_t), int64_t now_us);
/* The share of total for thread i of n. */
uint64_t ld_share(uint64_t total, unsigned i, unsigned n);

/* ------------------------------------------------------------ TCP and TLS (mlload-stream.c) */

enum ld_stream_phase {
    LD_SP_CONNECTING, /* connect() in progress */
    LD_SP_HANDSHAKE,  /* TLS handshake in progress */
    LD_SP_OPEN,
};

/* A non-blocking TCP or TLS connection to the server with bounded input and output buffers:
 * nothing here ever blocks or grows. */
struct ld_stream {
    int fd;    /* -1: closed */
    void *ssl; /* SSL *, NULL over TCP */
    uint8_t phase;
    bool want_out;   /* EPOLLOUT is registered */
    bool ssl_wwrite; /* OpenSSL waits for the socket to be writable (handshake or read) */
    uint32_t icap, ilen;
    uint32_t ocap, ooff, olen; /* output: bytes [ooff, olen) are still to be written */
    uint8_t *ibuf, *obuf;
};

/* Makes o->tls_ctx: one TLS version and the cipher of o->tls_cipher, so that every server is
 * measured with the same; no certificate verification (a benchmark). Returns 0, or -1. */
int ld_tls_init(struct ld_opts *o);
void ld_tls_free(struct ld_opts *o);
/* Opens a non-blocking connection to to (borrowed; NULL: o->server) from o->local with
 * icap/ocap bytes of buffers; the local address goes to *local. Returns 0, or -1 with a message
 * (s is then closed). */
int ld_stream_open(const struct ld_opts *o, const struct sockaddr_storage *to, struct ld_stream *s,
                   uint32_t icap, uint32_t ocap, struct sockaddr_storage *local);
/* Drives the connect and the TLS handshake: 1 once open, 0 in progress, -1 failed. */
int ld_stream_progress(struct ld_stream *s);
/* Room for n more bytes of output, or NULL when they do not fit (the caller drops the frame);
 * ld_stream_commit(s, n) then queues them. */
uint8_t *ld_stream_reserve(struct ld_stream *s, size_t n);
void ld_stream_commit(struct ld_stream *s, size_t n);
/* Writes what it can of the queued output. Returns 0 (even when some is left: see
 * ld_stream_wants_out), or -1 when the connection failed. */
int ld_stream_flush(struct ld_stream *s);
/* Reads into the free part of the input buffer. Returns the bytes read, 0 when nothing more
 * can be read now, -1 when the connection is closed or failed. */
int ld_stream_read(struct ld_stream *s);
/* Decrypted bytes waiting inside OpenSSL (epoll does not see them). */
bool ld_stream_pending(const struct ld_stream *s);
/* Whether the connection needs EPOLLOUT: connecting, queued output, or OpenSSL waiting. */
bool ld_stream_wants_out(const struct ld_stream *s);
void ld_stream_close(struct ld_stream *s);

#endif
