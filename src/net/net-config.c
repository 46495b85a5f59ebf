/* The [net] configuration section: worker threads, UDP batching and socket buffers, stream
 * limits. Parsed by the common configuration engine; turned into struct net_settings. */
#include "config.h"

#include "net/net.h"

#include <stddef.h>
#include <stdlib.h>

#define K(f) ML_CFG_FIELD(struct net_config, f)

static const char *const io_names[] = {"auto", "uring", "epoll", NULL}; /* enum net_io order */
static const char *const wait_names[] = {"loop", "ring", NULL}; /* enum net_uring_wait order */

/* The buffer ring's size must be a power of 2. */
static int validate_pow2(const char *value, char *err, size_t errlen)
{
    char *end;
    long long v = strtoll(value, &end, 10);
    if (*end || v <= 0 || (v & (v - 1)) != 0)
        return ml_err(err, errlen, "\"%s\" is not a power of 2", value);
    return 0;
}

const struct ml_cfg_key net_cfg_keys[] = {
    {"workers", ML_CFG_INT, "0", 0, 256, 0, K(workers), NULL, NULL,
     "Network worker threads, each with its own event loop and its own share of the listeners "
     "(SO_REUSEPORT). 0: one per CPU core."},
    {"io", ML_CFG_ENUM, "auto", 0, 0, 0, K(io), io_names, NULL,
     "How UDP sockets (listeners and relays) are served. uring: io_uring, with multishot "
     "receives into a ring of provided buffers and one submission per loop turn for all the "
     "sends of a worker (Linux 6.0 or later); meetlited does not start if io_uring is missing, "
     "disabled (kernel.io_uring_disabled) or filtered (seccomp). epoll: readiness with "
     "recvmmsg/sendmmsg batches. auto: io_uring when available, else epoll; the log says which "
     "and why. TCP and TLS always use epoll."},
    {"uring-buffers", ML_CFG_INT, "512", 16, 32768, 0, K(uring_buffers), NULL, validate_pow2,
     "io_uring: receive buffers per worker at most, a power of 2. Each holds a whole datagram "
     "(64 KiB of address space; only the pages datagrams touch use memory). The kernel is "
     "offered 64 at first and twice as many each time it finds none free, the most recently "
     "used first; a buffer is free again once its datagram has been handled and sent on. When "
     "all are in use, datagrams wait in the socket's receive buffer (net.udp-rcvbuf)."},
    {"uring-wait", ML_CFG_ENUM, "loop", 0, 0, 0, K(uring_wait), wait_names, NULL,
     "io_uring: where a worker sleeps between bursts. loop: in libevent's epoll_wait, the "
     "ring's descriptor among its events; a receive wakes it through the signal path. ring: "
     "in io_uring_enter (the ring set up with IORING_SETUP_DEFER_TASKRUN), libevent's own wait "
     "taken into the ring: the receives run inside that call, libevent's descriptors and "
     "timers wake it through a poll of libevent's epoll descriptor. ring costs a few per cent "
     "less CPU per packet with one worker per core and has a longer p99 when workers share "
     "cores with other busy threads (docs/benchmarks.md); it needs Linux 6.1 or later and "
     "libevent's epoll backend, and meetlited does not start without them."},
    {"udp-batch", ML_CFG_INT, "64", 1, NET_MAX_BATCH, 0, K(udp_batch), NULL, NULL,
     "Datagrams read per recvmmsg call and sent per sendmmsg call (epoll); datagrams handed to "
     "the relay per batch (both)."},
    {"udp-rcvbuf", ML_CFG_SIZE, "4M", 0, 1LL << 30, 0, K(udp_rcvbuf), NULL, NULL,
     "Receive buffer of every UDP socket (listeners and relays); 0 keeps the system default. "
     "As root the size may exceed net.core.rmem_max."},
    {"udp-sndbuf", ML_CFG_SIZE, "1M", 0, 1LL << 30, 0, K(udp_sndbuf), NULL, NULL,
     "Send buffer of every UDP socket; 0 keeps the system default."},
    {"stream-max-frame", ML_CFG_SIZE, "65540", 24, 1LL << 20, 0, K(stream_max_frame), NULL, NULL,
     "Largest STUN or ChannelData frame accepted on a TCP or TLS connection; a larger one "
     "closes the connection."},
    {"stream-out-max", ML_CFG_SIZE, "256k", 4096, 1LL << 30, 0, K(stream_out_max), NULL, NULL,
     "Bytes queued to one TCP or TLS client before further relayed packets to it are dropped "
     "(and counted): a slow reader never makes the server buffer without bound."},
    {"stream-idle-timeout", ML_CFG_DURATION, "60s", 0, 86400, 0, K(stream_idle_s), NULL, NULL,
     "A TCP or TLS connection without an allocation is closed after this long without input; "
     "with an allocation, the allocation's lifetime governs."},
    {"stream-frame-timeout", ML_CFG_DURATION, "10s", 0, 3600, 0, K(stream_frame_s), NULL, NULL,
     "Once the first byte of a STUN or ChannelData frame has arrived on a TCP or TLS connection, "
     "the rest of the frame must arrive within this long, or the connection is closed (a client "
     "sending a byte now and then would otherwise hold it forever: every byte resets the idle "
     "timeout). 0: no deadline."},
    {"stream-setup-timeout", ML_CFG_DURATION, "30s", 0, 3600, 0, K(stream_setup_s), NULL, NULL,
     "A TCP or TLS connection must be set up within this long after it is accepted, TLS "
     "handshake included: for TURN, a successful Allocate, or a ConnectionBind that makes it an "
     "RFC 6062 data connection. Until then a client may send Binding requests; after it the "
     "connection is closed. 0: no deadline (the idle timeout alone)."},
    {"max-streams", ML_CFG_INT, "0", 0, 10000000, 0, K(max_streams), NULL, NULL,
     "TCP and TLS client connections per worker thread; more are refused. 0: derived from the "
     "open-file limit (RLIMIT_NOFILE, after daemon.max-open-files): a quarter of it, less 128 "
     "descriptors kept for the rest of the process, shared by the workers (docs/relay.md, "
     "Limits)."},
    {"max-streams-per-address", ML_CFG_INT, "2000", 0, 10000000, 0, K(max_streams_per_addr), NULL,
     NULL,
     "TCP and TLS client connections from one client address (an IPv4 address, or an IPv6 /64), "
     "all workers together; more are refused and counted. A whole class can sit behind one NAT "
     "address: 2000 leaves a 500-person class four connections each. When net.max-streams is "
     "derived, one address gets at most half of a worker's part of it. 0: no cap."},
    {"proxy-protocol-from", ML_CFG_STR, "", 0, 4096, ML_CFG_LIST, K(proxy_from), NULL,
     ml_cidr_list_validate,
     "Peers (comma list of CIDRs, IPv4 and IPv6) whose TCP and TLS connections to the TURN "
     "listeners may begin with a PROXY protocol header (version 1 or 2, before the TLS "
     "handshake), as nginx's stream module sends with proxy_protocol on: the client's address "
     "in it is the connection's (XOR-MAPPED-ADDRESS, limits, usage records, logs). A header "
     "from any other peer closes the connection. Empty: no header is accepted."},
    {"shared-first-bytes-timeout", ML_CFG_DURATION, "10s", 1, 600, 0, K(shared_first_s), NULL, NULL,
     "A connection to a shared:// listener that has not said what it carries within this long "
     "(its first bytes, and for TLS the handshake and the first request) is closed."},
    {NULL, 0, NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};

void net_config_settings(const struct net_config *c, struct net_settings *out)
{
    out->workers = (unsigned)c->workers;
    out->io = (enum net_io)c->io;
    out->uring_buffers = (unsigned)c->uring_buffers;
    out->wait = (enum net_uring_wait)c->uring_wait;
    out->udp_batch = (unsigned)c->udp_batch;
    out->udp_rcvbuf = c->udp_rcvbuf;
    out->udp_sndbuf = c->udp_sndbuf;
    out->stream_max_frame = c->stream_max_frame;
    out->stream_out_max = c->stream_out_max;
    out->stream_idle_s = c->stream_idle_s;
    out->max_streams = (unsigned)c->max_streams;
    out->proxy_from = c->proxy_from;
    out->shared_first_s = c->shared_first_s;
    out->max_streams_per_addr = (unsigned)c->max_streams_per_addr;
    out->stream_frame_s = c->stream_frame_s;
    out->stream_setup_s = c->stream_setup_s;
}
