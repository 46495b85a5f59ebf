/* Internals of the TURN server shared by its modules; nothing outside src/turn includes it. */
#ifndef ML_TURN_INT_H
#define ML_TURN_INT_H

#include "stun/stun.h"
#include "turn/turn.h"

#include <netinet/in.h>
#include <pthread.h>
#include <string.h>

#define TURN_USERNAME_MAX 514 /* bytes of a USERNAME, NUL included */
#define TURN_NONCE_MAX 64     /* bytes of a NONCE we issue, NUL included */

/* Largest STUN message the server builds. */
#define TURN_REPLY_MAX 1280
/* Bytes of the last answer kept per allocation, for retransmitted requests. */
#define TURN_LAST_REPLY_MAX 224
#define TURN_MAX_RESERVATIONS 1024 /* EVEN-PORT R-bit reservations held at once */
#define TURN_RELAY_ADDRS 16        /* relay addresses per family (turn.relay-address) */
#define TURN_RESERVATION_S 30      /* seconds a reserved port is held (RFC 8656 7.2) */
#define TURN_QUOTA_STRIPES 64      /* locks over the quota table's buckets */
#define TURN_TOMBSTONES 64         /* per worker: answers to Refresh(0) kept for retransmits */
#define TURN_SWEEP_MS 250          /* how often a worker expires allocations */
#define TURN_CHANNEL_MIN 0x4000
#define TURN_CHANNEL_MAX 0x4FFF         /* RFC 8656 (turn.rfc5766-channel-numbers = no) */
#define TURN_CHANNEL_MAX_RFC5766 0x7FFF /* RFC 5766 and coturn: the default */
#define TURN_PROTO_UDP 17               /* REQUESTED-TRANSPORT value for UDP */
#define TURN_PROTO_TCP 6                /* REQUESTED-TRANSPORT value for TCP (RFC 6062) */

/* A socket address of either family, small enough to keep per channel. */
union turn_sa {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
};

/* Reads an XOR-*-ADDRESS attribute into a turn_sa (the codec fills a whole sockaddr_storage). */
static inline int turn_get_xaddr(const struct stun_msg *m, const struct stun_attr *a,
                                 union turn_sa *out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (stun_attr_get_xaddr(m, a, &ss, &len) < 0 || len > sizeof *out)
        return -1;
    memset(out, 0, sizeof *out);
    memcpy(out, &ss, len);
    return 0;
}

/* Index of a family in per-family arrays: 0 IPv4, 1 IPv6. */
static inline int turn_fam_index(int family)
{
    return family == AF_INET6 ? 1 : 0;
}

/* Values a reload may change; workers copy them when the generation changes. */
struct turn_settings {
    char software[128]; /* empty: no SOFTWARE attribute */
    bool fingerprint_always;
    long long max_allocations, max_per_user, max_permissions, max_channels;
    long long default_lifetime_s, max_lifetime_s, perm_lifetime_s, chan_lifetime_s;
    long long unauth_answer_rate;  /* bytes/s per destination address; 0: no budget */
    long long unauth_answer_burst; /* bytes */
    uint16_t channel_max;       /* highest channel number accepted: 0x7FFF (RFC 5766), or 0x4FFF */
    struct turn_policy *policy; /* owned by the server (retired ones live until it is freed) */
    /* TCP allocations (RFC 6062): offered or not, peer connections each, bytes buffered */
    bool tcp_relay;
    long long tcp_max_conns, tcp_buffer;
};

/* A relay port reserved by an EVEN-PORT R-bit Allocate, claimed by RESERVATION-TOKEN. */
struct turn_reservation {
    uint8_t token[8];
    int fd;  /* bound UDP socket; -1: slot free */
    int fam; /* its family index: 0 IPv4, 1 IPv6 */
    int64_t expires_ms;
};

struct turn_quota_entry;

struct turn_server {
    pthread_mutex_t lock; /* guards set, generation and the retired policies */
    struct turn_settings set;
    unsigned generation; /* bumped on every reload */
    struct turn_policy **retired;
    size_t nretired;
    struct turn_auth *auth;     /* thread-safe on its own */
    struct turn_budget *budget; /* unauthenticated answers per address; lock-free, shared */
    /* relay addresses per family: [0] IPv4, [1] IPv6; each has the whole port range */
    bool have_relay[2];
    unsigned nrelay[2];
    union turn_sa relay_bind[2][TURN_RELAY_ADDRS];   /* local IPs relay sockets bind to (port 0) */
    union turn_sa relay_public[2][TURN_RELAY_ADDRS]; /* what XOR-RELAYED-ADDRESS says for each */
    unsigned port_lo, port_hi;
    unsigned port_attempts; /* turn.relay-port-attempts: bind() calls an Allocate may make */
    /* quotas, shared by workers, touched at Allocate and deletion only. The table's bucket b is
     * guarded by quota_locks[b % TURN_QUOTA_STRIPES], so that workers allocating for different
     * users do not queue on one lock; the total is an atomic counter. */
    pthread_mutex_t quota_locks[TURN_QUOTA_STRIPES];
    struct turn_quota_entry **quota; /* hash of credential id -> allocations */
    size_t quota_buckets;
    long long total_allocs; /* atomic */
    /* EVEN-PORT reservations, shared by workers (rare: Allocates with EVEN-PORT R only) */
    pthread_mutex_t res_lock;
    struct turn_reservation res[TURN_MAX_RESERVATIONS];
    /* meetlited's own service addresses, never relay targets (re-added on reload) */
    union turn_sa *services;
    size_t nservices;
    /* the engine serving this server, for work that crosses workers */
    struct net_engine *engine;
    bool draining; /* atomic */
    struct turn_hooks hooks;
};

struct turn_perm {
    union turn_sa ip; /* port ignored */
    int64_t expires_ms;
};

struct turn_chan {
    union turn_sa peer;
    uint16_t number;
    int64_t expires_ms;
};

struct turn_stream_conn;
struct turn_tcp_relay;
struct turn_tcp_conn;

/* One allocation, owned by the worker that owns its client's 5-tuple. */
struct turn_alloc {
    struct turn_alloc *hnext;       /* the worker's 5-tuple hash chain (UDP clients) */
    struct turn_alloc *rnext[2];    /* the worker's relay-address chains, per family */
    struct turn_alloc *prev, *next; /* the worker's list of allocations */
    struct turn_worker *tw;
    enum net_transport transport;
    struct net_udp *listener;      /* UDP: the socket the client talks to */
    struct turn_stream_conn *conn; /* TCP/TLS: the client's connection */
    union turn_sa client;
    struct net_udp *relay[2]; /* per family; NULL when that family was not allocated */
    union turn_sa relay_public[2];
    int64_t expires_ms;
    int64_t created_s; /* wall clock */
    int64_t cred_expiry_s;
    uint8_t user_hash[16]; /* of the USERNAME that allocated: later requests must match */
    char cred_id[TURN_ID_MAX];
    struct turn_perm *perms;
    struct turn_chan *chans;
    uint16_t nperms, capperms, nchans, capchans;
    bool dont_fragment;
    bool closing;
    uint8_t last_tid[STUN_TID_LEN];
    uint16_t last_len;
    uint8_t last_reply[TURN_LAST_REPLY_MAX];
    struct turn_usage usage;
    uint64_t id; /* worker << 48 | sequence: unique in the process */
    /* RFC 6062 (tcprelay.c): a TCP allocation's listening socket and peer connections; its
     * relayed address is relay_public[tcp_family]. NULL for a UDP allocation. */
    struct turn_tcp_relay *tcp;
    uint8_t tcp_family;
};

/* The answer to a Refresh with LIFETIME 0, kept briefly so a retransmission gets it again. */
struct turn_tombstone {
    union turn_sa client;
    struct net_udp *listener;
    uint8_t tid[STUN_TID_LEN];
    int64_t expires_ms;
    uint16_t len;
    uint8_t reply[96];
};

#define TURN_MAX_PENDING 1024 /* requests per worker waiting for a credential source */

/* A request kept until an asynchronous credential source answers. */
struct turn_pending {
    struct turn_pending *next;
    enum net_transport transport;
    struct net_udp *udp;           /* UDP: the listener */
    struct turn_stream_conn *conn; /* TCP/TLS: NULL once the connection has closed */
    union turn_sa addr;
    int64_t since_ms;
    size_t len;
    uint8_t msg[];
};

/* Per-worker state: everything a worker owns. */
struct turn_worker {
    struct turn_server *srv;
    struct net_worker *w;
    struct turn_counters ctr;
    struct turn_settings set; /* this worker's copy, refreshed when generation changes */
    unsigned generation;
    struct event *sweep;
    /* allocations: a list, and a hash of UDP 5-tuples */
    struct turn_alloc *allocs;
    struct turn_alloc **table;
    size_t table_size, nallocs; /* table_size is a power of two */
    /* this worker's relay addresses (advertised), per family: a peer that is one of them is
     * delivered to in process, without crossing the kernel twice */
    struct turn_alloc **rtable[2];
    size_t rtable_size[2], nrelays[2];
    uint8_t *scratch; /* NET_HEADROOM + NET_MAX_DATAGRAM + NET_TAILROOM bytes */
    struct turn_tombstone tomb[TURN_TOMBSTONES];
    unsigned tomb_next;
    uint32_t indication_salt; /* with indication_seq: transaction ids of Data indications */
    uint64_t indication_seq;
    uint64_t alloc_seq;
    struct turn_pending *pending; /* requests waiting for an asynchronous credential source */
    unsigned npending;
    /* RFC 6062 (tcprelay.c): this worker's peer connections by CONNECTION-ID */
    struct turn_tcp_conn **tcp_ids;
    size_t tcp_ids_size, tcp_ids_n; /* size: a power of two, or 0 before the first */
    uint32_t tcp_seq;
};

/* Per-connection state of a TCP/TLS client. */
struct turn_stream_conn {
    struct net_stream *s;
    struct turn_alloc *alloc;   /* at most one allocation per connection */
    struct turn_tcp_conn *data; /* RFC 6062: this is the client data connection of a peer's */
};

/* Where a message came from, and how to answer it. */
struct turn_client {
    enum net_transport transport;
    struct net_udp *udp;           /* UDP: the listener socket it arrived on */
    struct turn_stream_conn *conn; /* TCP/TLS: the connection */
    struct net_stream *stream;
    const struct sockaddr *addr;
    const struct sockaddr *local;
};

#define TURN_COUNT(c, n) NET_COUNT(c, n)

/* turn-config.c: "LOW-HIGH" into *lo and *hi; 0 or -1 with err filled. */
int turn_port_range_parse(const char *text, unsigned *lo, unsigned *hi, char *err,
                          size_t errlen) ML_WUR;

/* ---------------------------------------------------------------- policy.c: the peer policy */

/* Which peers may be relayed to. Built once (and again on reload), then read-only: workers
 * share it without locks, and judging a peer neither allocates nor formats.
 *
 * Every rule is applied to the canonical form of the peer: an IPv6 address that embeds an IPv4
 * one (IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64 64:ff9b::/96, 6to4, Teredo) is
 * judged by that IPv4 address. Order: (1) always denied, whatever allow-peers says: 0.0.0.0/8,
 * ::, Teredo 2001::/32, 6to4 2002::/16, and (with a port) meetlited's own services; (2)
 * turn.deny-peers; (3) turn.allow-peers, which permits; (4) the default-deny classes (loopback,
 * link-local, ULA, site-local, multicast, broadcast and reserved, RFC 1918, CGNAT, special
 * purpose, documentation, benchmarking, ...). So deny-peers wins over allow-peers. */
struct turn_policy;

/* Longest description turn_policy_explain writes, NUL included. */
#define TURN_POLICY_WHY_MAX 192

/* Builds the policy: the default deny rules, then allow (CIDR list, may be NULL) and deny (CIDR
 * list, may be NULL). NULL with err filled (naming the key and the bad item) on a bad list. */
struct turn_policy *turn_policy_new(const char *allow, const char *deny, char *err,
                                    size_t errlen) ML_WUR;
/* Denies relaying to one of meetlited's own services: ip:port, or that port on every local IP
 * (getifaddrs(), loopback ranges included) and on the unspecified address when ip is a wildcard
 * (0.0.0.0 or ::). Call before the workers start. 0, or -1 with errno set. */
int turn_policy_add_service(struct turn_policy *p, const struct sockaddr *sa) ML_WUR;
void turn_policy_free(struct turn_policy *p);
/* NULL when a peer may be relayed to, otherwise the rule that denies it ("loopback
 * 127.0.0.0/8", "turn.deny-peers 10.0.0.0/8", "own service 127.0.0.1:3478"): a static or
 * policy-owned string, valid as long as the policy. It names the rule, not the peer: when the
 * peer was canonicalised the rule matched its embedded IPv4 address, which the caller logs with
 * turn_policy_explain. with_port also applies the service-port rules (CreatePermission carries
 * no port; ChannelBind and Send do). */
const char *turn_policy_deny(const struct turn_policy *p, const struct sockaddr *peer,
                             bool with_port);
/* The same verdict; on a denial also writes into the caller's buf (TURN_POLICY_WHY_MAX bytes
 * suffice) the rule and, for a canonicalised peer, the form and the address the rule was
 * applied to: "loopback 127.0.0.0/8 (IPv4-mapped 127.0.0.1)". Returns buf, or NULL (buf
 * untouched) when the peer is allowed. Formats only on a denial. */
const char *turn_policy_explain(const struct turn_policy *p, const struct sockaddr *peer,
                                bool with_port, char *buf, size_t len);

/* ---------------------------------------------------------------- auth.c: credentials */

/* TURN_ID_MAX is in turn.h; TURN_USERNAME_MAX and TURN_NONCE_MAX at the top of this file. */

/* What authenticated a request. key is a secret: wipe it (ml_wipe) when the answer is sent. */
struct turn_cred {
    char id[TURN_ID_MAX]; /* the REST <id>, or the static user's name: quotas, revocation */
    char username[TURN_USERNAME_MAX];
    int64_t expiry_s;              /* REST expiry (wall clock); 0 for static users */
    bool sha256;                   /* the request used MESSAGE-INTEGRITY-SHA256: answer with it */
    uint8_t key[STUN_MAX_KEY_LEN]; /* the long-term key that verified the request */
    size_t keylen;
    /* Set whatever the verdict: the request's NONCE is one we gave this very address (IP and
     * port) at most two nonce lifetimes ago, so the address receives our answers and the
     * request is no spoofed reflection. */
    bool address_proven;
};

/* The verdict on a request, and the STUN error it maps to. */
enum turn_auth_result {
    TURN_AUTH_OK = 0,
    TURN_AUTH_CHALLENGE,   /* 401 with REALM and NONCE: no integrity attribute */
    TURN_AUTH_BAD_REQUEST, /* 400: integrity present but USERNAME, REALM or NONCE missing, or
                            * PASSWORD-ALGORITHM(S) inconsistent */
    TURN_AUTH_STALE,       /* 438 with a fresh NONCE */
    TURN_AUTH_REJECT,      /* 401: unknown user, wrong key, wrong realm, expired, revoked */
    TURN_AUTH_PENDING,     /* an asynchronous source will call back */
};

/* Credential sources and nonces: the realm, the REST shared secrets, static users, the nonce
 * key, and the revocation set. Shared by all workers; thread-safe. */
struct turn_auth;

/* Builds it from the configuration (realm, auth_secret, static_users, nonce_secret,
 * nonce_lifetime_s, strict_expiry). NULL with err filled. */
struct turn_auth *turn_auth_new(const struct turn_config *cfg, char *err, size_t errlen) ML_WUR;
void turn_auth_free(struct turn_auth *a);
/* Replaces the reloadable parts (secrets, static users, strict-expiry) from cfg. 0 or -1
 * (nothing changed). Thread-safe. */
int turn_auth_reload(struct turn_auth *a, const struct turn_config *cfg, char *err,
                     size_t errlen) ML_WUR;
const char *turn_auth_realm(const struct turn_auth *a);
/* Replaces the runtime-managed credentials (issue #8: kept in PostgreSQL by the admin API) with
 * the ones given, copied, in a table of their own beside the configured one, swapped in like
 * a reload. Checks try turn.auth-secret, then these secrets, then turn.static-users, then these
 * users. The last secret signs new credentials. 0, or -1 with err filled (nothing changed).
 * Thread-safe. */
int turn_auth_set_runtime(struct turn_auth *a, const char *const *secrets, size_t nsecrets,
                          const struct turn_runtime_user *users, size_t nusers, char *err,
                          size_t errlen) ML_WUR;
/* Copies the secret new REST credentials are signed with into buf: the newest runtime secret,
 * else the first of turn.auth-secret. Returns its length; 0 (buf "") when there is none or buf
 * is too small. */
size_t turn_auth_signing_secret(struct turn_auth *a, char *buf, size_t len);
/* How many runtime secrets and users are in force. */
void turn_auth_runtime_counts(struct turn_auth *a, size_t *secrets, size_t *users);
/* Writes a fresh NONCE for a client address into out (TURN_NONCE_MAX bytes); returns its
 * length. Stateless: "obMatJos2" with the password-algorithms feature bit, the time, and an
 * HMAC of both with the client's address. */
size_t turn_auth_nonce(struct turn_auth *a, const struct sockaddr *client, int64_t now_s, char *out,
                       size_t outlen);
/* The length of every NONCE turn_auth_nonce() writes: an answer's size is known before the HMAC
 * is computed. */
size_t turn_auth_nonce_len(void);
/* Authenticates a request (RFC 8489 9.2): integrity present, USERNAME/REALM/NONCE present, the
 * realm ours, the nonce valid for this client and not stale, PASSWORD-ALGORITHM(S) consistent,
 * the credential known (REST: any secret; static users; then the sources), not revoked, not
 * expired when check_expiry, and the MESSAGE-INTEGRITY(-SHA256) right. Fills *cred on
 * TURN_AUTH_OK. Never returns TURN_AUTH_PENDING: a source that would have to wait counts as
 * not knowing the user (use turn_auth_check_async() to wait for it). */
enum turn_auth_result turn_auth_check(struct turn_auth *a, const struct stun_msg *m,
                                      const struct sockaddr *client, int64_t now_s,
                                      bool check_expiry, struct turn_cred *cred);
/* Whether expired REST credentials are refused after Allocate too (turn.strict-expiry). */
bool turn_auth_strict_expiry(const struct turn_auth *a);
/* Most revocations held at once; past it turn_auth_revoke() refuses. */
#define TURN_AUTH_MAX_REVOKED 65536
/* Revokes every credential with this id (REST, static or from a source) while now <= until_s
 * (wall clock; after that its REST credentials have expired anyway). Lapsed entries are purged
 * (by the wall clock) when the set fills. Returns 0, or -1 when id is empty or longer than
 * TURN_ID_MAX-1 bytes, or when TURN_AUTH_MAX_REVOKED revocations are still in force (or out of
 * memory). Thread-safe. */
int turn_auth_revoke(struct turn_auth *a, const char *id, int64_t until_s) ML_WUR;
/* Whether id is revoked now. Lock-free while no revocation is in force. */
bool turn_auth_is_revoked(struct turn_auth *a, const char *id, int64_t now_s);
/* Appends PASSWORD-ALGORITHMS (SHA-256 and MD5) to a 401/438 answer. */
void turn_auth_build_algorithms(struct stun_builder *b);
/* Validators for the configuration keys. */
int turn_secrets_validate(const char *value, char *err, size_t errlen);
int turn_static_users_validate(const char *value, char *err, size_t errlen);

/* Asynchronous credential sources (PostgreSQL users, later). A source may answer at once or
 * say PENDING; it then records its answer with turn_auth_source_done() and calls the wake
 * function, and the caller runs turn_auth_check_async() again with the same message, which
 * now finds the answer in turn_auth's small answer cache. */

/* What a source knows about a user: long-term keys, never a password. */
struct turn_source_answer {
    char id[TURN_ID_MAX];            /* quotas, revocation; empty: the username */
    uint8_t md5[STUN_MD5_LEN];       /* MD5(user:realm:password) */
    uint8_t sha256[STUN_SHA256_LEN]; /* SHA-256(user:realm:password) */
    bool has_md5, has_sha256;
    int64_t expiry_s; /* wall clock: refused after it like a REST expiry; 0: never */
    int64_t cache_s;  /* how long turn_auth may reuse an answer given to source_done; 0: 10 s */
};

enum turn_source_result {
    TURN_SOURCE_FOUND,     /* *ans filled */
    TURN_SOURCE_NOT_FOUND, /* unknown here: the next source is asked */
    TURN_SOURCE_PENDING,   /* being looked up: source_done, then wake, will follow */
};

/* Tells the owner of a pending check to call turn_auth_check_async() again. Called exactly
 * once per TURN_SOURCE_PENDING, from any thread, with no turn_auth lock held, possibly before
 * the check has even returned PENDING: it should only post a task to the caller's thread
 * (net_worker_post), which then retries. */
typedef void (*turn_auth_wake_fn)(void *wake_arg);

struct turn_cred_source {
    /* Looks up username (ulen bytes, not NUL-terminated, borrowed for the call) on a worker
     * thread, concurrently with other workers; must not block. Answers at once with FOUND
     * (*ans filled) or NOT_FOUND, or, only when wake is not NULL, returns PENDING and later,
     * from any thread, calls turn_auth_source_done() (with NULL when the user is unknown or
     * the lookup failed) and then wake(wake_arg), exactly once. */
    enum turn_source_result (*lookup)(struct turn_cred_source *src, const char *username,
                                      size_t ulen, struct turn_source_answer *ans,
                                      turn_auth_wake_fn wake, void *wake_arg);
    void *ctx; /* the source's own state */
};

#define TURN_AUTH_MAX_SOURCES 4
/* Adds a source, asked after the REST secrets and static users, in the order added. src is
 * borrowed until turn_auth_free(). Call before any check runs. 0, or -1 when
 * TURN_AUTH_MAX_SOURCES are already there. */
int turn_auth_add_source(struct turn_auth *a, struct turn_cred_source *src) ML_WUR;
/* Records src's answer for username (ans NULL: unknown) in the answer cache, copied, for
 * ans->cache_s seconds from now_s. Call before waking. Thread-safe. */
void turn_auth_source_done(struct turn_auth *a, const struct turn_cred_source *src,
                           const char *username, size_t ulen, const struct turn_source_answer *ans,
                           int64_t now_s);
/* As turn_auth_check(), and when a source has to look the user up, returns TURN_AUTH_PENDING:
 * wake(wake_arg) will be called once from any thread, and the caller then calls this again
 * with the same message (keeping it and wake_arg alive until then). */
enum turn_auth_result turn_auth_check_async(struct turn_auth *a, const struct stun_msg *m,
                                            const struct sockaddr *client, int64_t now_s,
                                            bool check_expiry, turn_auth_wake_fn wake,
                                            void *wake_arg, struct turn_cred *cred);

/* ---------------------------------------------------------------- ratelimit.c */

/* The budget of answers to unauthenticated requests: bytes per second per destination address
 * (an IPv4 address, or an IPv6 /64), shared by every worker without a lock. A fixed table of
 * cells indexed by a keyed hash of the address: collisions share a budget, which only makes it
 * stricter; memory is fixed whatever the number of sources. */
struct turn_budget;
struct turn_budget *turn_budget_new(void) ML_WUR;
void turn_budget_free(struct turn_budget *b);
/* Takes bytes from ip's budget (rate bytes/s, at most burst bytes saved up) at now_us
 * (monotonic): true when they fit, false when not (nothing is taken). rate <= 0: no budget,
 * always true. Thread-safe. */
bool turn_budget_take(struct turn_budget *b, const struct sockaddr *ip, size_t bytes,
                      int64_t now_us, long long rate, long long burst);
/* Gives bytes back to ip's budget, never beyond its burst: what an address earns by sending
 * authenticated requests (it runs real TURN clients). Thread-safe. */
void turn_budget_give(struct turn_budget *b, const struct sockaddr *ip, size_t bytes,
                      int64_t now_us, long long rate);

/* server.c */
void turn_send(struct turn_worker *tw, const struct turn_client *cl, const void *buf, size_t len);
/* Answers a request that did not authenticate (r: CHALLENGE, REJECT, STALE or BAD_REQUEST) with
 * 401, 438 or 400, within the budget of its address: over UDP from an address its NONCE does not
 * prove (cred->address_proven), the whole answer is charged; when proven, only what the answer
 * has beyond the request's size. Beyond the budget nothing is sent, and the drop is counted. */
void turn_reply_unauthenticated(struct turn_worker *tw, const struct turn_client *cl,
                                const struct stun_msg *req, enum turn_auth_result r,
                                const struct turn_cred *cred);
/* An error answer to a request nothing authenticates yet (possibly from a forged source):
 * small, and paid for from the same budget as 401s, or dropped and counted. */
void turn_reply_unauthenticated_error(struct turn_worker *tw, const struct turn_client *cl,
                                      const struct stun_msg *req, int code, const char *reason,
                                      const uint16_t *unknown, size_t nunknown);
/* What a request that authenticated earns its address's budget: its own size. */
void turn_budget_earn(struct turn_worker *tw, const struct turn_client *cl,
                      const struct stun_msg *req);
void turn_reply_error(struct turn_worker *tw, const struct turn_client *cl,
                      const struct stun_msg *req, int code, const char *reason);

#endif
