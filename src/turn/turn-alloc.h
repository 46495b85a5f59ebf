/* Allocations, relay sockets, the data path and the TURN methods: functions shared by
 * alloc.c, relay.c, methods.c and server.c. Private to src/turn. */
#ifndef ML_TURN_ALLOC_H
#define ML_TURN_ALLOC_H

#include "turn/turn-int.h"

/* alloc.c: quotas shared by all workers. 0, or 486 (per credential) / 508 (in total). */
int turn_quota_acquire(struct turn_server *srv, const char *id, long long per_user,
                       long long total) ML_WUR;
void turn_quota_release(struct turn_server *srv, const char *id);
void turn_quota_free_all(struct turn_server *srv);

/* The (relay address, port) pairs a bind of family index fam tries, at most
 * turn.relay-port-attempts of them (srv->port_attempts), all different: the pairs of the space
 * (addresses x ports; only even ports when even, and only those whose next port is in the range
 * too when pair) visited from a random start by a random stride prime to the space's size, so
 * that every pair is as likely to come first (RFC 8656 7.2 and RFC 6056: a port chosen at
 * random) and a space no larger than the cap is tried whole. A full server answers 508 after
 * that many bind() calls rather than one per pair of the space (262,000 with 16 addresses); a
 * nearly full one may answer it with a few ports left (at 97 % occupancy the default 128
 * attempts all fail for one Allocate in 50). No lock: workers share the ports through the
 * kernel's bind(), which refuses one taken. */
struct turn_port_walk {
    unsigned lo, step, span; /* ports lo, lo + step, ... span of them */
    unsigned space;          /* span x relay addresses */
    unsigned k, stride;      /* the pair tried next, and how far the one after is */
    unsigned left;           /* pairs still to try */
};
void turn_port_walk_init(const struct turn_server *srv, int fam, bool even, bool pair,
                         struct turn_port_walk *pw);
/* The next pair to try: an index into relay_bind[fam] and a port; false when the walk is over. */
bool turn_port_walk_next(struct turn_port_walk *pw, unsigned *addr, unsigned *port);
/* alloc.c: binds a relay socket of family index fam (0 IPv4, 1 IPv6) on one of the relay
 * addresses and a port of the range, even when asked, and the next port of the same address
 * too when reserve_next (into *next_fd). Returns the port, or -1 when none is free. */
int turn_relay_bind(struct turn_worker *tw, int fam, bool even, bool reserve_next, int *fd,
                    int *next_fd);
/* server.c: the address XOR-RELAYED-ADDRESS gives for a relay socket bound to local. */
void turn_relay_public_of(const struct turn_server *srv, const struct sockaddr *local,
                          union turn_sa *out);
/* EVEN-PORT reservations: hold fd (a relay socket of family index fam) under a new token (0,
 * or -1 when the table is full; the caller still owns fd then), take it back by token (the fd,
 * now the caller's, with its family in *fam; or -1), and close every held socket. A reserved
 * port keeps its family: the Allocate that claims it cannot ask for one (RFC 8656 7.2). */
int turn_reservation_add(struct turn_server *srv, int fd, int fam, uint8_t token[8],
                         int64_t now_ms) ML_WUR;
int turn_reservation_take(struct turn_server *srv, const uint8_t token[8], int64_t now_ms,
                          int *fam) ML_WUR;
void turn_reservations_free(struct turn_server *srv);

/* alloc.c: the allocation table. */
struct turn_alloc *turn_alloc_find_udp(struct turn_worker *tw, const struct net_udp *l,
                                       const struct sockaddr *client);
/* Makes an empty allocation for the client's 5-tuple (or connection). NULL on exhaustion. */
struct turn_alloc *turn_alloc_new(struct turn_worker *tw, const struct turn_client *cl);
/* Ends it: hook, quota, relay sockets, table. reason is for the log and the hook. */
void turn_alloc_free(struct turn_alloc *a, const char *reason);
void turn_alloc_close_relay(struct turn_alloc *a, int fam);
/* The worker's index of relay addresses: add a's family fam (after relay_public[fam] is set),
 * and find the allocation on this worker whose relay address is addr (NULL: none). */
int turn_relay_index_add(struct turn_alloc *a, int fam) ML_WUR;
struct turn_alloc *turn_relay_index_find(struct turn_worker *tw, const struct sockaddr *addr);
struct turn_perm *turn_perm_find(struct turn_alloc *a, const struct sockaddr *peer, int64_t now_ms);
/* Installs or refreshes a permission for peer's IP. 0, or -1 when max is reached. */
int turn_perm_install(struct turn_alloc *a, const struct sockaddr *peer, int64_t expires_ms,
                      long long max);
struct turn_chan *turn_chan_by_number(struct turn_alloc *a, uint16_t number);
struct turn_chan *turn_chan_by_peer(struct turn_alloc *a, const struct sockaddr *peer);
/* Binds or refreshes channel number to peer (the caller checked the rebind rules). 0 or -1. */
int turn_chan_bind(struct turn_alloc *a, uint16_t number, const struct sockaddr *peer,
                   int64_t expires_ms, long long max);
void turn_sweep(struct turn_worker *tw, int64_t now_ms);
/* The last answer of an allocation, for a retransmitted request. */
void turn_alloc_remember(struct turn_alloc *a, const uint8_t tid[STUN_TID_LEN],
                         const uint8_t *reply, size_t len);
const uint8_t *turn_alloc_recall(const struct turn_alloc *a, const uint8_t tid[STUN_TID_LEN],
                                 size_t *len);
void turn_tombstone_add(struct turn_worker *tw, const struct turn_client *cl,
                        const uint8_t tid[STUN_TID_LEN], const uint8_t *reply, size_t len,
                        int64_t now_ms);
const uint8_t *turn_tombstone_find(struct turn_worker *tw, const struct turn_client *cl,
                                   const uint8_t tid[STUN_TID_LEN], int64_t now_ms, size_t *len);
int turn_worker_tables_init(struct turn_worker *tw) ML_WUR;
void turn_worker_tables_free(struct turn_worker *tw);

/* relay.c: the data path. */
void turn_relay_channeldata(struct turn_worker *tw, const struct turn_client *cl, uint8_t *data,
                            size_t len, int64_t now_ms);
void turn_relay_send_indication(struct turn_worker *tw, const struct turn_client *cl,
                                const struct stun_msg *m, int64_t now_ms);
/* net_udp_cb of relay sockets: peers to the client. arg is the allocation. */
void turn_relay_recv(struct net_udp *u, void *arg, struct net_pkt *pkts, unsigned n);

/* methods.c: authenticated TURN requests. */
void turn_handle_allocate(struct turn_worker *tw, const struct turn_client *cl,
                          const struct stun_msg *req);
void turn_handle_refresh(struct turn_worker *tw, const struct turn_client *cl,
                         const struct stun_msg *req);
void turn_handle_create_permission(struct turn_worker *tw, const struct turn_client *cl,
                                   const struct stun_msg *req);
void turn_handle_channel_bind(struct turn_worker *tw, const struct turn_client *cl,
                              const struct stun_msg *req);
/* The allocation of a client, whichever its transport. */
struct turn_alloc *turn_client_alloc(struct turn_worker *tw, const struct turn_client *cl);

/* Whether the allocation relays family fam (0 IPv4, 1 IPv6): a UDP relay socket, or the
 * listening socket of a TCP allocation. */
static inline bool turn_alloc_has_family(const struct turn_alloc *a, int fam)
{
    return a->relay[fam] != NULL || (a->tcp != NULL && a->tcp_family == fam);
}

/* methods.c, for tcprelay.c: the authentication and answers of the other methods. */
bool turn_authenticate(struct turn_worker *tw, const struct turn_client *cl,
                       const struct stun_msg *req, bool check_expiry, struct turn_cred *cred);
void turn_reply_auth_error(struct turn_worker *tw, const struct turn_client *cl,
                           const struct stun_msg *req, const struct turn_cred *cred, int code,
                           const char *reason);
void turn_user_hash(const struct turn_cred *cred, uint8_t out[16]);
bool turn_same_user(const struct turn_alloc *a, const struct turn_cred *cred);
long long turn_desired_lifetime(const struct turn_worker *tw, const struct stun_msg *req);
void turn_send_success(struct turn_worker *tw, const struct turn_client *cl,
                       const struct stun_msg *req, struct stun_builder *b,
                       const struct turn_cred *cred, struct turn_alloc *a);
struct turn_alloc *turn_alloc_for_request(struct turn_worker *tw, const struct turn_client *cl,
                                          const struct stun_msg *req, struct turn_cred *cred);
bool turn_peer_allowed(struct turn_worker *tw, const struct turn_client *cl,
                       const struct stun_msg *req, const struct turn_cred *cred,
                       struct turn_alloc *a, const struct sockaddr *peer, bool with_port);

/* tcprelay.c: TCP allocations (RFC 6062). Allocate with REQUESTED-TRANSPORT TCP, after the
 * request authenticated as cred and found no allocation on the connection. */
void turn_tcp_allocate(struct turn_worker *tw, const struct turn_client *cl,
                       const struct stun_msg *req, const struct turn_cred *cred);
void turn_tcp_handle_connect(struct turn_worker *tw, const struct turn_client *cl,
                             const struct stun_msg *req);
void turn_tcp_handle_connection_bind(struct turn_worker *tw, const struct turn_client *cl,
                                     const struct stun_msg *req);
/* The client data connection c closed (the stream's close handler). */
void turn_tcp_data_closed(struct turn_worker *tw, struct turn_stream_conn *c);
/* Ends every peer connection of a TCP allocation, adds their bytes to its usage, and closes
 * its listening socket: the first step of turn_alloc_free. */
void turn_tcp_release(struct turn_alloc *a);
/* Closes the peer connections whose ConnectionBind did not come within 30 s. */
void turn_tcp_sweep(struct turn_alloc *a, int64_t now_ms);
/* Frees the worker's CONNECTION-ID table (its allocations are gone). */
void turn_tcp_worker_free(struct turn_worker *tw);

/* server.c: answers. */
void turn_finish_and_send(struct turn_worker *tw, const struct turn_client *cl,
                          const struct stun_msg *req, struct stun_builder *b,
                          const struct turn_cred *cred);
unsigned turn_error_slot(int code);
/* Keeps a request whose credentials an asynchronous source is still looking up; the worker
 * replays it when turn_wake(tw) is called (from any thread). */
void turn_defer(struct turn_worker *tw, const struct turn_client *cl, const struct stun_msg *req);
void turn_wake(void *tw);

#endif
