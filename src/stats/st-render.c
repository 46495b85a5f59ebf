/* Renders a stats snapshot: the JSON of GET /stats and the Prometheus text of GET /metrics, both
 * from one table of metrics (below), as the configuration tables drive the file, --help and the
 * sample. A row is one figure: where it sits in /stats, how it is read from the snapshot, and
 * under which name(s), type, labels and help it shows in /metrics. Adding a counter is adding a
 * row; neither rendering names it again.
 *
 * Metric names. Where coturn exports a figure (src/apps/relay/prom_server.c), meetlite uses its
 * name, so that existing dashboards and alerts keep working: turn_total_allocations{type},
 * turn_total_traffic_{rcvp,rcvb,sentp,sentb}, turn_total_traffic_peer_{...},
 * stun_binding_request/response, turn_udp_recvmmsg_{calls,packets},
 * turn_unauthenticated_401_{responses,dropped_responses}. coturn's counters carry no _total
 * suffix, which promtool requires of a counter, so they are typed untyped (their values only
 * grow, and rate() works on them as on any counter), and each has a typed meetlite_*_total
 * counter beside it (401 responses: meetlite_stun_error_responses_total{code="401"}) that new
 * dashboards and alerts should use. Everything else is meetlite_*, typed.
 * Unlike coturn's, every counter here is live (read from the workers at scrape time, never
 * updated only when a session ends), and no label takes a value from the network or from
 * users: labels name transports, families, error codes, HTTP statuses and pools, all from fixed
 * tables. Per-meeting figures appear only in the JSON, as a bounded top N (a list, not a
 * metric: written by hand after the table). */
#include "config.h"

#include "stats/st.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ the table's vocabulary */

/* A figure read from the snapshot. */
enum st_kind { ST_NULL, ST_U64, ST_I64, ST_DOUBLE, ST_BOOL, ST_STRING };
struct st_val {
    enum st_kind kind;
    union {
        uint64_t u;
        int64_t i;
        double d;
        bool b;
        const char *s;
    };
};

/* The C type of a snapshot field, found by _Generic so that a row cannot read a field as
 * something it is not. A char array decays to char *; arrays of counters to uint64_t *. */
enum st_ctype {
    ST_C_FN, /* computed by a function */
    ST_C_UINT,
    ST_C_ULONG,
    ST_C_ULLONG,
    ST_C_INT,
    ST_C_LONG,
    ST_C_LLONG,
    ST_C_BOOL,
    ST_C_DOUBLE,
    ST_C_CHARS,
    ST_C_COUNTS, /* uint64_t[]: a histogram's buckets, counts by HTTP status */
};
#define ST_CTYPE(x)                                                                                \
    _Generic((x), unsigned: ST_C_UINT, unsigned long: ST_C_ULONG,                               \
             unsigned long long: ST_C_ULLONG, int: ST_C_INT, long: ST_C_LONG,                      \
             long long: ST_C_LLONG, bool: ST_C_BOOL, double: ST_C_DOUBLE, char *: ST_C_CHARS,      \
             uint64_t *: ST_C_COUNTS)

/* Computes a figure; pool is the database pool of an ST_BY_POOL row, NULL otherwise. */
typedef struct st_val (*st_read_fn)(const struct st_snapshot *s, const struct db_pool_stats *pool);

/* How a figure is read: a field of the snapshot (or of a pool's stats), or a function. */
struct st_read {
    enum st_ctype ctype;
    size_t off;
    st_read_fn fn;
};

/* When a row is in force: its section of the snapshot is there. */
enum st_when {
    ST_ALWAYS,
    ST_CP,    /* a node with the control plane (have_cp) */
    ST_SYNC,  /* the runtime credentials are synchronised with PostgreSQL (sync.present) */
    ST_LINK,  /* the relay has its database link (link.present) */
    ST_HOOKS, /* the node runs a webhook worker (hooks.present) */
};

/* What a row breaks down by. */
enum st_dim {
    ST_ONE,       /* one figure */
    ST_BY_STATUS, /* counts by HTTP status: in /stats an object keyed by status, in /metrics a
                   * code label; statuses never answered are left out of both */
    ST_BY_CLOSE,  /* counts by WebSocket close code (sig_close_codes, then "other"): like
                   * ST_BY_STATUS */
    ST_BY_POOL,   /* one figure per database pool: its json path is inside the pool's object
                   * (pool_homes), in /metrics a pool label */
};

enum st_type { ST_GAUGE, ST_COUNTER, ST_UNTYPED, ST_HISTOGRAM };
static const char *const type_names[] = {"gauge", "counter", "untyped", "histogram"};

/* A name the figure has in /metrics. Rows of one family may be anywhere in the table: the
 * family is written where its first row is, with the samples of all its rows in table order
 * (for pools, pool by pool), and the first row's type and help; later rows leave help NULL. */
struct st_prom {
    const char *name;
    enum st_type type;
    const char *labels; /* this sample's labels ("reason=\"no_channel\""), or NULL; for a string
                         * figure the name of the label that carries it (an info metric: 1) */
    const char *help;
};

/* A histogram: per-bucket counts (the row's read, an array), the last bucket unbounded. In
 * /stats an object of the counts by bucket name; in /metrics cumulative _bucket{le} samples,
 * _sum and _count. */
struct st_hist {
    unsigned buckets;
    void (*key)(unsigned i, char *buf, size_t len); /* the bucket's member in /stats */
    void (*le)(unsigned i, char *buf, size_t len);  /* its upper bound in /metrics */
    struct st_read sum;
};

struct st_metric {
    const char *json; /* dotted path in /stats, or NULL: /metrics only */
    struct st_read read;
    enum st_when when;
    enum st_dim dim;
    const struct st_hist *hist;
    struct st_prom prom[2]; /* none (/stats only), one, or a coturn name beside it */
};

#define F(f) .read = {ST_CTYPE(((struct st_snapshot *)0)->f), offsetof(struct st_snapshot, f), NULL}
#define POOL(f)                                                                                    \
    .read = {ST_CTYPE(((struct db_pool_stats *)0)->f), offsetof(struct db_pool_stats, f), NULL},   \
    .dim = ST_BY_POOL
#define CALL(fn)                                                                                   \
    {                                                                                              \
        ST_C_FN, 0, fn                                                                             \
    }
#define FN(fn) .read = CALL(fn)
#define GAUGE(name, labels, help)                                                                  \
    {                                                                                              \
        name, ST_GAUGE, labels, help                                                               \
    }
#define COUNTER(name, labels, help)                                                                \
    {                                                                                              \
        name, ST_COUNTER, labels, help                                                             \
    }
#define UNTYPED(name, help)                                                                        \
    {                                                                                              \
        name, ST_UNTYPED, NULL, help                                                               \
    }
#define HISTOGRAM(name, help)                                                                      \
    {                                                                                              \
        name, ST_HISTOGRAM, NULL, help                                                             \
    }
/* A further sample of the family declared by an earlier row. */
#define MORE(name, labels)                                                                         \
    {                                                                                              \
        name, ST_GAUGE, labels, NULL                                                               \
    }

/* ------------------------------------------------------------------ computed figures */

static struct st_val val_u64(uint64_t v)
{
    return (struct st_val){.kind = ST_U64, .u = v};
}

static struct st_val val_i64(int64_t v)
{
    return (struct st_val){.kind = ST_I64, .i = v};
}

static struct st_val val_double(double v)
{
    return (struct st_val){.kind = ST_DOUBLE, .d = v};
}

static const struct st_val val_null = {.kind = ST_NULL};

static struct st_val cpu_seconds(const struct st_snapshot *s, const struct db_pool_stats *pool)
{
    ML_UNUSED(pool);
    return val_double(s->proc.cpu_user_s + s->proc.cpu_system_s);
}

/* error_responses[7] counts every code outside the first seven; some of them are counted
 * apart too, and "other" is what is left. */
static struct st_val errors_other(const struct st_snapshot *s, const struct db_pool_stats *pool)
{
    const struct turn_counters *t = &s->turn;
    uint64_t apart = t->errors_440 + t->errors_441 + t->errors_442 + t->errors_443 + t->errors_508;
    ML_UNUSED(pool);
    return val_u64(t->error_responses[7] > apart ? t->error_responses[7] - apart : 0);
}

static struct st_val last_load(const struct st_snapshot *s, const struct db_pool_stats *pool)
{
    ML_UNUSED(pool);
    return s->sync.last_s ? val_i64(s->sync.last_s) : val_null; /* 0: never loaded */
}

/* Every datagram recvmmsg returned, kept or truncated. */
static struct st_val udp_received(const struct st_snapshot *s, const struct db_pool_stats *pool)
{
    ML_UNUSED(pool);
    return val_u64(s->net.udp_rx_packets + s->net.udp_rx_truncated);
}

static struct st_val streams_open(const struct st_snapshot *s, const struct db_pool_stats *pool)
{
    const struct net_counters *n = &s->net;
    ML_UNUSED(pool);
    return val_u64(n->stream_accepted > n->stream_closed ? n->stream_accepted - n->stream_closed
                                                         : 0);
}

/* Figures read from PostgreSQL: unknown (null; no sample) when it did not answer. */
static struct st_val meetings_active(const struct st_snapshot *s, const struct db_pool_stats *pool)
{
    ML_UNUSED(pool);
    return s->have_db_counts ? val_i64(s->meetings_active) : val_null;
}

static struct st_val participants_present(const struct st_snapshot *s,
                                          const struct db_pool_stats *pool)
{
    ML_UNUSED(pool);
    return s->have_db_counts ? val_i64(s->participants_present) : val_null;
}

static struct st_val pool_ok(const struct st_snapshot *s, const struct db_pool_stats *p)
{
    ML_UNUSED(s);
    return val_u64(p->jobs - p->failed - p->unavailable);
}

static struct st_val pool_mean_wait_ms(const struct st_snapshot *s, const struct db_pool_stats *p)
{
    ML_UNUSED(s);
    return val_double(p->ran ? (double)p->wait_us / (double)p->ran / 1000.0 : 0);
}

static struct st_val pool_mean_run_ms(const struct st_snapshot *s, const struct db_pool_stats *p)
{
    ML_UNUSED(s);
    return val_double(p->ran ? (double)p->run_us / (double)p->ran / 1000.0 : 0);
}

static struct st_val pool_wait_s(const struct st_snapshot *s, const struct db_pool_stats *p)
{
    ML_UNUSED(s);
    return val_double((double)p->wait_us / 1e6);
}

static struct st_val pool_run_s(const struct st_snapshot *s, const struct db_pool_stats *p)
{
    ML_UNUSED(s);
    return val_double((double)p->run_us / 1e6);
}

/* Sizes of the recvmmsg batches counted in net_counters.udp_rx_batch_hist. */
static void batch_key(unsigned i, char *buf, size_t len)
{
    static const char *const names[7] = {"1", "2-3", "4-7", "8-15", "16-31", "32-63", "64"};
    ml_strlcpy(buf, names[i], len);
}

static void batch_le(unsigned i, char *buf, size_t len)
{
    static const char *const le[7] = {"1", "3", "7", "15", "31", "63", "+Inf"};
    ml_strlcpy(buf, le[i], len);
}

static const struct st_hist batch_hist = {7, batch_key, batch_le, CALL(udp_received)};

static void latency_key(unsigned i, char *buf, size_t len)
{
    if (i < DB_LATENCY_BUCKETS)
        ml_snprintf(buf, len, "le_%gs", db_latency_bounds_s[i]);
    else
        ml_strlcpy(buf, "more", len);
}

static void latency_le(unsigned i, char *buf, size_t len)
{
    if (i < DB_LATENCY_BUCKETS)
        ml_snprintf(buf, len, "%g", db_latency_bounds_s[i]);
    else
        ml_strlcpy(buf, "+Inf", len);
}

static const struct st_hist latency_hist = {DB_LATENCY_BUCKETS + 1, latency_key, latency_le,
                                            CALL(pool_run_s)};

/* HTTP answers' latencies, one histogram row per class. */
static void http_key(unsigned i, char *buf, size_t len)
{
    if (i < HTTP_LATENCY_BUCKETS)
        ml_snprintf(buf, len, "le_%gs", http_latency_bounds_s[i]);
    else
        ml_strlcpy(buf, "more", len);
}

static void http_le(unsigned i, char *buf, size_t len)
{
    if (i < HTTP_LATENCY_BUCKETS)
        ml_snprintf(buf, len, "%g", http_latency_bounds_s[i]);
    else
        ml_strlcpy(buf, "+Inf", len);
}

#define HTTP_CLASS_SUM(c)                                                                          \
    static struct st_val http_sum_##c(const struct st_snapshot *s,                                 \
                                      const struct db_pool_stats *pool)                            \
    {                                                                                              \
        ML_UNUSED(pool);                                                                           \
        return val_double((double)s->http_latency[HTTP_CLASS_##c].sum_us / 1e6);                   \
    }                                                                                              \
    static const struct st_hist http_hist_##c = {HTTP_LATENCY_BUCKETS + 1, http_key, http_le,      \
                                                 CALL(http_sum_##c)};
HTTP_CLASS_SUM(PAGE)
HTTP_CLASS_SUM(API)
HTTP_CLASS_SUM(AUTH)
HTTP_CLASS_SUM(UPGRADE)
HTTP_CLASS_SUM(ADMIN)
#define HTTP_HIST(c) F(http_latency[HTTP_CLASS_##c].buckets), .hist = &http_hist_##c

/* The label of slot i of a count by close code. */
static void close_label(unsigned i, char *buf, size_t len)
{
    if (i < SIG_CLOSE_NCODES)
        ml_snprintf(buf, len, "%d", sig_close_codes[i]);
    else
        ml_strlcpy(buf, "other", len);
}

/* Where each database pool's figures sit in /stats; a pool the node lacks is null there. */
static const struct {
    const char *pool, *json;
    enum st_when when;
} pool_homes[] = {
    {"api", "control.database", ST_CP},
    {"admin", "admin.database", ST_ALWAYS},
};

/* ------------------------------------------------------------------ the table */

/* In the order of the /stats document. */
static const struct st_metric metrics[] = {
    /* the process, from /proc/self */
    {"process.version", F(proc.version),
     .prom = {GAUGE("meetlite_build_info", "version", "Always 1; the version is in the label.")}},
    {"process.pid", F(proc.pid)},
    {"process.started_at", F(proc.start_s),
     .prom = {GAUGE("process_start_time_seconds", NULL,
                    "Start time of the process since the epoch.")}},
    {"process.uptime_s", F(proc.uptime_s),
     .prom = {GAUGE("meetlite_uptime_seconds", NULL, "Seconds since the process started.")}},
    {"process.threads", F(proc.threads),
     .prom = {GAUGE("meetlite_threads", NULL,
                    "Threads of the process (network workers, HTTP, database, LISTEN).")}},
    {"process.rss_bytes", F(proc.rss_bytes),
     .prom = {GAUGE("process_resident_memory_bytes", NULL, "Resident memory size.")}},
    {"process.vm_bytes", F(proc.vm_bytes),
     .prom = {GAUGE("process_virtual_memory_bytes", NULL, "Virtual memory size.")}},
    {"process.open_fds", F(proc.open_fds),
     .prom = {GAUGE("process_open_fds", NULL, "Open file descriptors.")}},
    {"process.max_fds", F(proc.max_fds),
     .prom = {GAUGE("process_max_fds", NULL, "The open file descriptor limit.")}},
    {"process.cpu_user_s", F(proc.cpu_user_s)},
    {"process.cpu_system_s", F(proc.cpu_system_s)},
    {NULL, FN(cpu_seconds),
     .prom = {COUNTER("process_cpu_seconds_total", NULL, "User and system CPU time spent.")}},

    /* the relay: allocations */
    {"turn.draining", F(draining),
     .prom = {GAUGE("meetlite_turn_draining", NULL,
                    "1 while drain mode refuses new allocations.")}},
    {"turn.allocations.total", F(turn.allocations)},
    {"turn.allocations.by_transport.udp", F(turn.alloc_by_transport[NET_UDP]),
     .prom = {GAUGE("turn_total_allocations", "type=\"udp\"",
                    "Live allocations by client transport (coturn).")}},
    {"turn.allocations.by_transport.tcp", F(turn.alloc_by_transport[NET_TCP]),
     .prom = {MORE("turn_total_allocations", "type=\"tcp\"")}},
    {"turn.allocations.by_transport.tls", F(turn.alloc_by_transport[NET_TLS]),
     .prom = {MORE("turn_total_allocations", "type=\"tls\"")}},
    {"turn.allocations.by_family.ipv4", F(turn.alloc_ipv4),
     .prom = {GAUGE("meetlite_turn_relay_sockets", "family=\"ipv4\"",
                    "Live relay sockets by address family.")}},
    {"turn.allocations.by_family.ipv6", F(turn.alloc_ipv6),
     .prom = {MORE("meetlite_turn_relay_sockets", "family=\"ipv6\"")}},
    {"turn.allocations.created", F(turn.allocations_total),
     .prom = {COUNTER("meetlite_turn_allocations_created_total", NULL, "Allocations made.")}},
    {"turn.allocations.expired", F(turn.allocations_expired),
     .prom = {COUNTER("meetlite_turn_allocations_expired_total", NULL,
                      "Allocations that ended because their lifetime ran out.")}},
    {"turn.allocations.ports_busy", F(turn.relay_port_busy),
     .prom = {COUNTER("meetlite_turn_relay_ports_busy_total", NULL,
                      "Relay ports an Allocate tried that were taken (turn.relay-port-attempts "
                      "bounds them per Allocate).")}},
    {"turn.permissions", F(turn.permissions),
     .prom = {GAUGE("meetlite_turn_permissions", NULL, "Live permissions.")}},
    {"turn.channels", F(turn.channels),
     .prom = {GAUGE("meetlite_turn_channels", NULL, "Live channel bindings.")}},

    /* the relay: traffic, seen from the client (coturn's names for both sides) */
    {"turn.relayed.to_peers.packets", F(turn.relay_rx_packets),
     .prom = {UNTYPED("turn_total_traffic_rcvp",
                      "Packets received from clients and relayed to peers (coturn; a counter)."),
              UNTYPED("turn_total_traffic_peer_sentp",
                      "Packets sent to peers (coturn; a counter).")}},
    {"turn.relayed.to_peers.bytes", F(turn.relay_rx_bytes),
     .prom = {UNTYPED("turn_total_traffic_rcvb",
                      "Payload bytes received from clients and relayed to peers (coturn; a "
                      "counter)."),
              UNTYPED("turn_total_traffic_peer_sentb",
                      "Payload bytes sent to peers (coturn; a counter).")}},
    {"turn.relayed.to_clients.packets", F(turn.relay_tx_packets),
     .prom = {UNTYPED("turn_total_traffic_sentp",
                      "Packets relayed to clients (coturn; a counter)."),
              UNTYPED("turn_total_traffic_peer_rcvp",
                      "Packets received from peers and relayed to clients (coturn; a counter).")}},
    {"turn.relayed.to_clients.bytes", F(turn.relay_tx_bytes),
     .prom = {UNTYPED("turn_total_traffic_sentb",
                      "Payload bytes relayed to clients (coturn; a counter)."),
              UNTYPED("turn_total_traffic_peer_rcvb",
                      "Payload bytes received from peers and relayed to clients (coturn; a "
                      "counter).")}},
    /* the same figures as typed counters (coturn's names above stay as they are) */
    {NULL, F(turn.relay_rx_packets),
     .prom = {COUNTER("meetlite_turn_relayed_packets_total", "direction=\"to_peers\"",
                      "Packets relayed, by direction (from clients to peers, or back).")}},
    {NULL, F(turn.relay_tx_packets),
     .prom = {MORE("meetlite_turn_relayed_packets_total", "direction=\"to_clients\"")}},
    {NULL, F(turn.relay_rx_bytes),
     .prom = {COUNTER("meetlite_turn_relayed_bytes_total", "direction=\"to_peers\"",
                      "Payload bytes relayed, by direction (from clients to peers, or back).")}},
    {NULL, F(turn.relay_tx_bytes),
     .prom = {MORE("meetlite_turn_relayed_bytes_total", "direction=\"to_clients\"")}},
    {"turn.dropped.no_permission", F(turn.relay_dropped_no_permission),
     .prom = {COUNTER("meetlite_turn_relay_dropped_total", "reason=\"no_permission\"",
                      "Relayed packets dropped, by reason.")}},
    {"turn.dropped.no_channel", F(turn.relay_dropped_no_channel),
     .prom = {MORE("meetlite_turn_relay_dropped_total", "reason=\"no_channel\"")}},
    {"turn.dropped.backpressure", F(turn.relay_dropped_backpressure),
     .prom = {MORE("meetlite_turn_relay_dropped_total", "reason=\"backpressure\"")}},
    {"turn.dropped.unauthenticated_over_budget", F(turn.unauth_dropped),
     .prom = {UNTYPED("turn_unauthenticated_401_dropped_responses",
                      "Unauthenticated requests dropped, unanswered, over the per-address budget "
                      "(coturn; a counter).")}},
    {NULL, F(turn.unauth_dropped),
     .prom = {COUNTER("meetlite_turn_unauthenticated_dropped_total", NULL,
                      "Unauthenticated requests dropped, unanswered, over the per-address "
                      "budget.")}},
    {"turn.dropped.peer_denied", F(turn.peer_denied),
     .prom = {COUNTER("meetlite_turn_peer_denied_total", NULL,
                      "Requests and packets refused by the peer policy (403).")}},
    {"turn.unauthenticated.dropped", F(turn.unauth_dropped)},
    {"turn.unauthenticated.charged_bytes", F(turn.unauth_charged_bytes),
     .prom = {COUNTER("meetlite_turn_unauthenticated_answer_bytes_total", "outcome=\"charged\"",
                      "Bytes of answers to unauthenticated UDP requests: charged to the budget of "
                      "the address they went to, or dropped over it.")}},
    {"turn.unauthenticated.dropped_bytes", F(turn.unauth_dropped_bytes),
     .prom = {MORE("meetlite_turn_unauthenticated_answer_bytes_total", "outcome=\"dropped\"")}},
    {"turn.unauthenticated.proven", F(turn.unauth_proven),
     .prom = {COUNTER("meetlite_turn_unauthenticated_proven_total", NULL,
                      "Answers to UDP requests that failed authentication but whose NONCE proves "
                      "the address (not charged to its budget).")}},

    /* the relay: STUN messages and answers */
    {"turn.stun.requests", F(turn.stun_requests),
     .prom = {COUNTER("meetlite_stun_requests_total", NULL,
                      "STUN requests received, any method.")}},
    {"turn.stun.binding", F(turn.binding_requests),
     .prom = {UNTYPED("stun_binding_request", "Binding requests answered (coturn; a counter)."),
              UNTYPED("stun_binding_response",
                      "Binding success responses sent (coturn; a counter).")}},
    {NULL, F(turn.binding_requests),
     .prom = {COUNTER("meetlite_stun_binding_requests_total", NULL,
                      "Binding requests answered (each with a success response).")}},
    {"turn.stun.binding_rfc3489", F(turn.binding_rfc3489)},
    {"turn.stun.indications", F(turn.indications),
     .prom = {COUNTER("meetlite_stun_indications_total", NULL, "STUN indications received.")}},
    {"turn.stun.malformed", F(turn.malformed),
     .prom = {COUNTER("meetlite_stun_malformed_total", NULL,
                      "Datagrams and frames that were neither STUN nor ChannelData.")}},
    {"turn.error_responses.400", F(turn.error_responses[0]),
     .prom = {COUNTER("meetlite_stun_error_responses_total", "code=\"400\"",
                      "Error responses sent, by code.")}},
    {"turn.error_responses.401", F(turn.error_responses[1]),
     .prom = {MORE("meetlite_stun_error_responses_total", "code=\"401\""),
              UNTYPED("turn_unauthenticated_401_responses",
                      "401 responses sent (challenges and refused credentials; coturn; a "
                      "counter).")}},
    {"turn.error_responses.403", F(turn.error_responses[2]),
     .prom = {MORE("meetlite_stun_error_responses_total", "code=\"403\"")}},
    {"turn.error_responses.420", F(turn.error_responses[3]),
     .prom = {MORE("meetlite_stun_error_responses_total", "code=\"420\"")}},
    {"turn.error_responses.437", F(turn.error_responses[4]),
     .prom = {MORE("meetlite_stun_error_responses_total", "code=\"437\"")}},
    {"turn.error_responses.438", F(turn.error_responses[5]),
     .prom = {MORE("meetlite_stun_error_responses_total", "code=\"438\"")}},
    {"turn.error_responses.486", F(turn.error_responses[6]),
     .prom = {MORE("meetlite_stun_error_responses_total", "code=\"486\"")}},
    {"turn.error_responses.440", F(turn.errors_440),
     .prom = {MORE("meetlite_stun_error_responses_total", "code=\"440\"")}},
    {"turn.error_responses.441", F(turn.errors_441),
     .prom = {MORE("meetlite_stun_error_responses_total", "code=\"441\"")}},
    {"turn.error_responses.442", F(turn.errors_442),
     .prom = {MORE("meetlite_stun_error_responses_total", "code=\"442\"")}},
    {"turn.error_responses.443", F(turn.errors_443),
     .prom = {MORE("meetlite_stun_error_responses_total", "code=\"443\"")}},
    {"turn.error_responses.508", F(turn.errors_508),
     .prom = {MORE("meetlite_stun_error_responses_total", "code=\"508\"")}},
    {"turn.error_responses.other", FN(errors_other),
     .prom = {MORE("meetlite_stun_error_responses_total", "code=\"other\"")}},

    /* the relay: credentials managed through the admin API, and the database link */
    {"turn.database_credentials.up", F(sync.up), .when = ST_SYNC,
     .prom = {GAUGE("meetlite_turn_credentials_sync_up", NULL,
                    "1 while the runtime credentials are kept in sync with PostgreSQL.")}},
    {"turn.database_credentials.last_load_at", FN(last_load), .when = ST_SYNC},
    {"turn.database_credentials.loads", F(sync.loads), .when = ST_SYNC,
     .prom = {COUNTER("meetlite_turn_credentials_loads_total", NULL,
                      "Loads of the runtime credentials from PostgreSQL.")}},
    {"turn.database_credentials.failures", F(sync.failures), .when = ST_SYNC,
     .prom = {COUNTER("meetlite_turn_credentials_load_failures_total", NULL,
                      "Failed loads of the runtime credentials.")}},
    {"turn.runtime_credentials.secrets", F(sync.secrets),
     .prom = {GAUGE("meetlite_turn_runtime_secrets", NULL,
                    "TURN REST secrets managed through the admin API, in force.")}},
    {"turn.runtime_credentials.users", F(sync.users),
     .prom = {GAUGE("meetlite_turn_runtime_users", NULL,
                    "TURN users managed through the admin API, in force.")}},
    {"turn.database_link.listen_up", F(link.listen_up), .when = ST_LINK,
     .prom = {GAUGE("meetlite_db_listen_up", NULL,
                    "1 while the revocation LISTEN connection is up and caught up.")}},
    {"turn.database_link.revocations", F(link.revocations), .when = ST_LINK,
     .prom = {COUNTER("meetlite_turn_revocations_total", NULL,
                      "Credentials revoked on this relay (any source).")}},
    {"turn.database_link.revocations_failed", F(link.revocations_failed), .when = ST_LINK,
     .prom = {COUNTER("meetlite_turn_revocations_failed_total", NULL,
                      "Revocations the relay could not hold (set full).")}},
    {"turn.database_link.listen_connects", F(link.listen_connects), .when = ST_LINK,
     .prom = {COUNTER("meetlite_db_listen_connects_total", NULL, "LISTEN connections made.")}},
    {"turn.database_link.usage_queued", F(link.usage_queued), .when = ST_LINK,
     .prom = {GAUGE("meetlite_usage_records_queued", NULL,
                    "Usage records waiting to be written.")}},
    {"turn.database_link.usage_written", F(link.usage_written), .when = ST_LINK,
     .prom = {COUNTER("meetlite_usage_records_total", "outcome=\"written\"",
                      "Usage records, by outcome.")}},
    {"turn.database_link.usage_dropped", F(link.usage_dropped), .when = ST_LINK,
     .prom = {MORE("meetlite_usage_records_total", "outcome=\"dropped\"")}},
    {"webhooks.delivered", F(hooks.delivered), .when = ST_HOOKS,
     .prom = {COUNTER("meetlite_webhook_deliveries_total", NULL,
                      "Webhook events this node delivered (the receiver answered 2xx).")}},
    {"webhooks.attempts_failed", F(hooks.attempts_failed), .when = ST_HOOKS,
     .prom = {COUNTER("meetlite_webhook_attempts_failed_total", NULL,
                      "Webhook attempts that failed (non-2xx, timeout, TLS or connection).")}},
    {"webhooks.db_connects", F(hooks.db_connects), .when = ST_HOOKS,
     .prom = {COUNTER("meetlite_webhook_db_connects_total", NULL,
                      "Database connections made by the webhook worker.")}},

    /* the network engine: UDP */
    {"net.udp.rx_packets", F(net.udp_rx_packets),
     .prom = {COUNTER("meetlite_udp_packets_total", "direction=\"rx\"",
                      "UDP datagrams, by direction.")}},
    {"net.udp.rx_bytes", F(net.udp_rx_bytes),
     .prom = {COUNTER("meetlite_udp_bytes_total", "direction=\"rx\"", "UDP bytes, by direction.")}},
    {"net.udp.tx_packets", F(net.udp_tx_packets),
     .prom = {MORE("meetlite_udp_packets_total", "direction=\"tx\"")}},
    {"net.udp.tx_bytes", F(net.udp_tx_bytes),
     .prom = {MORE("meetlite_udp_bytes_total", "direction=\"tx\"")}},
    {"net.udp.rx_truncated", F(net.udp_rx_truncated),
     .prom = {COUNTER("meetlite_udp_dropped_total", "reason=\"truncated\"",
                      "UDP datagrams dropped, by reason.")}},
    {"net.udp.tx_dropped", F(net.udp_tx_dropped),
     .prom = {MORE("meetlite_udp_dropped_total", "reason=\"send_failed\"")}},
    {"net.udp.ring_wakeups", F(net.udp_ring_wakeups),
     .prom = {COUNTER(
         "meetlite_udp_ring_wakeups_total", NULL,
         "Wake-ups of an io_uring worker sleeping in epoll_wait by its ring's receives "
         "(net.uring-wait = loop).")}},
    {"net.udp.recvmmsg_calls", F(net.udp_rx_batches),
     .prom = {UNTYPED("turn_udp_recvmmsg_calls",
                      "recvmmsg calls that returned datagrams (coturn; a counter).")}},
    {NULL, F(net.udp_rx_batches),
     .prom = {COUNTER("meetlite_udp_recvmmsg_calls_total", NULL,
                      "recvmmsg calls that returned datagrams.")}},
    {NULL, FN(udp_received),
     .prom = {COUNTER("meetlite_udp_recvmmsg_packets_total", NULL,
                      "Datagrams received by recvmmsg, kept or truncated.")}},
    {NULL, FN(udp_received),
     .prom = {UNTYPED("turn_udp_recvmmsg_packets",
                      "Datagrams received by recvmmsg (coturn; a counter).")}},
    {"net.udp.recvmmsg_batch_sizes", F(net.udp_rx_batch_hist), .hist = &batch_hist,
     .prom = {HISTOGRAM("meetlite_udp_recvmmsg_batch_size",
                        "Datagrams returned per recvmmsg call.")}},

    /* the network engine: TCP and TLS streams */
    {"net.streams.open", FN(streams_open),
     .prom = {GAUGE("meetlite_stream_connections", NULL, "Open TCP and TLS client connections.")}},
    {"net.streams.accepted", F(net.stream_accepted),
     .prom = {COUNTER("meetlite_stream_connections_total", "event=\"accepted\"",
                      "TCP and TLS client connections, by event.")}},
    {"net.streams.refused", F(net.stream_refused),
     .prom = {MORE("meetlite_stream_connections_total", "event=\"refused\"")}},
    {"net.streams.closed", F(net.stream_closed),
     .prom = {MORE("meetlite_stream_connections_total", "event=\"closed\"")}},
    {"net.streams.rx_bytes", F(net.stream_rx_bytes),
     .prom = {COUNTER("meetlite_stream_bytes_total", "direction=\"rx\"",
                      "TCP and TLS bytes, by direction.")}},
    {"net.streams.tx_bytes", F(net.stream_tx_bytes),
     .prom = {MORE("meetlite_stream_bytes_total", "direction=\"tx\"")}},
    {"net.streams.tx_dropped", F(net.stream_tx_dropped),
     .prom = {COUNTER("meetlite_stream_dropped_total", "reason=\"slow_reader\"",
                      "Stream frames dropped and streams closed, by reason.")}},
    {"net.streams.bad_frames", F(net.stream_bad_frames),
     .prom = {MORE("meetlite_stream_dropped_total", "reason=\"bad_frame\"")}},
    {"net.streams.frame_timeouts", F(net.stream_frame_timeouts),
     .prom = {MORE("meetlite_stream_dropped_total", "reason=\"frame_timeout\"")}},
    {"net.streams.setup_timeouts", F(net.stream_setup_timeouts),
     .prom = {MORE("meetlite_stream_dropped_total", "reason=\"setup_timeout\"")}},
    /* shared:// listeners: what each connection turned out to be, and where it went */
    {"net.shared.turn_tcp", F(net.shared_turn_tcp),
     .prom = {COUNTER("meetlite_shared_connections_total", "kind=\"turn_tcp\"",
                      "Connections to shared:// listeners, by what they carried (https_direct: "
                      "TLS done by the control plane, its ClientHello offering http/1.1; "
                      "https_relayed: TLS done by the relay, the plaintext relayed).")}},
    {"net.shared.turn_tls", F(net.shared_turn_tls),
     .prom = {MORE("meetlite_shared_connections_total", "kind=\"turn_tls\"")}},
    {"net.shared.http", F(net.shared_http),
     .prom = {MORE("meetlite_shared_connections_total", "kind=\"http\"")}},
    {"net.shared.https_relayed", F(net.shared_https),
     .prom = {MORE("meetlite_shared_connections_total", "kind=\"https_relayed\"")}},
    {"net.shared.https_direct", F(net.shared_https_direct),
     .prom = {MORE("meetlite_shared_connections_total", "kind=\"https_direct\"")}},
    {"net.shared.refused", F(net.shared_refused),
     .prom = {MORE("meetlite_shared_connections_total", "kind=\"refused\"")}},

    /* connection limits and the descriptor limit, by listener ("turn": TCP and TLS streams,
     * "api": the control plane's HTTP and WebSocket, "admin") */
    {"net.streams.max", F(net_max_streams),
     .prom = {GAUGE("meetlite_connection_limit", "listener=\"turn\",scope=\"total\"",
                    "Connections allowed, by listener and scope (per_address 0: no cap).")}},
    {"net.streams.max_per_address", F(net_max_per_addr),
     .prom = {MORE("meetlite_connection_limit", "listener=\"turn\",scope=\"per_address\"")}},
    {"control.connections.max", F(api_conns.max_connections), .when = ST_CP,
     .prom = {MORE("meetlite_connection_limit", "listener=\"api\",scope=\"total\"")}},
    {"control.connections.max_per_address", F(api_conns.max_per_addr), .when = ST_CP,
     .prom = {MORE("meetlite_connection_limit", "listener=\"api\",scope=\"per_address\"")}},
    {"admin.connections.max", F(admin_conns.max_connections),
     .prom = {MORE("meetlite_connection_limit", "listener=\"admin\",scope=\"total\"")}},
    {"net.streams.client_addresses", F(net_addresses),
     .prom = {GAUGE("meetlite_stream_client_addresses", NULL,
                    "Client addresses (IPv4, IPv6 /64) holding a TCP or TLS connection.")}},
    {"net.streams.refused_per_address", F(net.stream_refused_addr),
     .prom = {COUNTER("meetlite_connections_refused_total",
                      "listener=\"turn\",reason=\"per_address\"",
                      "Connections closed at accept by a limit, by listener and reason.")}},
    {"control.connections.refused_limit", F(api_conns.refused_limit), .when = ST_CP,
     .prom = {MORE("meetlite_connections_refused_total", "listener=\"api\",reason=\"limit\"")}},
    {"control.connections.refused_per_address", F(api_conns.refused_addr), .when = ST_CP,
     .prom = {MORE("meetlite_connections_refused_total",
                   "listener=\"api\",reason=\"per_address\"")}},
    {"admin.connections.refused_limit", F(admin_conns.refused_limit),
     .prom = {MORE("meetlite_connections_refused_total", "listener=\"admin\",reason=\"limit\"")}},
    {"net.streams.accept_pauses", F(net.accept_paused),
     .prom = {COUNTER("meetlite_accept_pauses_total", "listener=\"turn\"",
                      "Pauses of accepting because accept() failed (descriptors ran out: "
                      "EMFILE, ENFILE), by listener.")}},
    {"control.connections.accept_pauses", F(api_conns.accept_paused), .when = ST_CP,
     .prom = {MORE("meetlite_accept_pauses_total", "listener=\"api\"")}},
    {"admin.connections.accept_pauses", F(admin_conns.accept_paused),
     .prom = {MORE("meetlite_accept_pauses_total", "listener=\"admin\"")}},
    {"control.connections.open", F(api_conns.open), .when = ST_CP,
     .prom = {GAUGE("meetlite_http_connections", "listener=\"api\"",
                    "Open HTTP and WebSocket connections, by listener.")}},
    {"admin.connections.open", F(admin_conns.open),
     .prom = {MORE("meetlite_http_connections", "listener=\"admin\"")}},

    /* the control plane and the admin listener */
    {"control.enabled", F(have_cp),
     .prom = {GAUGE("meetlite_control_plane_enabled", NULL,
                    "1 when this node runs the control plane.")}},
    {"control.meetings_active", FN(meetings_active), .when = ST_CP,
     .prom = {GAUGE("meetlite_meetings_active", NULL,
                    "Active meetings (all nodes: read from PostgreSQL).")}},
    {"control.participants_present", FN(participants_present), .when = ST_CP,
     .prom = {GAUGE("meetlite_participants_present", NULL,
                    "Participants present in active meetings (all nodes: read from "
                    "PostgreSQL).")}},
    {"control.websocket_connections", F(ws_connections), .when = ST_CP,
     .prom = {GAUGE("meetlite_websocket_connections", NULL, "Open signaling WebSockets.")}},
    {"control.http_responses", F(http_api), .when = ST_CP, .dim = ST_BY_STATUS,
     .prom = {COUNTER("meetlite_http_responses_total", "listener=\"api\"",
                      "HTTP answers, by listener and status.")}},
    {"admin.http_responses", F(http_admin), .dim = ST_BY_STATUS,
     .prom = {MORE("meetlite_http_responses_total", "listener=\"admin\"")}},
    {"control.websocket_closes", F(ws_closes), .when = ST_CP, .dim = ST_BY_CLOSE,
     .prom = {COUNTER("meetlite_signaling_closes_total", NULL,
                      "Signaling WebSockets ended, by close code (the server's, the client's, or "
                      "1006: lost without a close frame; \"other\": any code not listed).")}},

    /* answers' latencies by route class, from the request to the last byte written (signaling:
     * from the upgrade to the joined frame) */
    {"http.latency.page", HTTP_HIST(PAGE),
     .prom = {{"meetlite_http_request_duration_seconds", ST_HISTOGRAM, "class=\"page\"",
               "Time to answer, by route class: page (the browser client), api, auth (sign-up, "
               "log-in), signaling_upgrade (upgrade to joined), admin."}}},
    {"http.latency.api", HTTP_HIST(API),
     .prom = {MORE("meetlite_http_request_duration_seconds", "class=\"api\"")}},
    {"http.latency.auth", HTTP_HIST(AUTH),
     .prom = {MORE("meetlite_http_request_duration_seconds", "class=\"auth\"")}},
    {"http.latency.signaling_upgrade", HTTP_HIST(UPGRADE),
     .prom = {MORE("meetlite_http_request_duration_seconds", "class=\"signaling_upgrade\"")}},
    {"http.latency.admin", HTTP_HIST(ADMIN),
     .prom = {MORE("meetlite_http_request_duration_seconds", "class=\"admin\"")}},

    /* the database pools ("api": the control plane's, "admin": the admin listener's) */
    {"size", POOL(size),
     .prom = {GAUGE("meetlite_db_pool_connections", NULL, "Database connections configured.")}},
    {"up", POOL(up), .prom = {GAUGE("meetlite_db_pool_up", NULL, "Database connections up.")}},
    {"queued", POOL(queued),
     .prom = {GAUGE("meetlite_db_pool_queued", NULL, "Database jobs waiting for a connection.")}},
    {"jobs", POOL(jobs)},
    {NULL, FN(pool_ok), .dim = ST_BY_POOL,
     .prom = {COUNTER("meetlite_db_jobs_total", "outcome=\"ok\"",
                      "Database jobs completed, by outcome.")}},
    {"failed", POOL(failed), .prom = {MORE("meetlite_db_jobs_total", "outcome=\"failed\"")}},
    {"unavailable", POOL(unavailable),
     .prom = {MORE("meetlite_db_jobs_total", "outcome=\"unavailable\"")}},
    {"refused", POOL(refused),
     .prom = {COUNTER("meetlite_db_refused_total", NULL,
                      "Database jobs refused at once (no connection, or queue full).")}},
    {"mean_wait_ms", FN(pool_mean_wait_ms), .dim = ST_BY_POOL},
    {"mean_run_ms", FN(pool_mean_run_ms), .dim = ST_BY_POOL},
    {NULL, FN(pool_wait_s), .dim = ST_BY_POOL,
     .prom = {COUNTER("meetlite_db_queue_wait_seconds_total", NULL,
                      "Time jobs spent waiting for a database connection.")}},
    {"latency_histogram", POOL(run_hist), .hist = &latency_hist,
     .prom = {HISTOGRAM("meetlite_db_job_duration_seconds",
                        "Time a database job ran on its connection (its queries).")}},
};

/* ------------------------------------------------------------------ reading */

static bool in_force(const struct st_snapshot *s, enum st_when when)
{
    switch (when) {
    case ST_ALWAYS:
        return true;
    case ST_CP:
        return s->have_cp;
    case ST_SYNC:
        return s->sync.present;
    case ST_LINK:
        return s->link.present;
    case ST_HOOKS:
        return s->hooks.present;
    }
    return false;
}

/* The struct a row's offset is into: the pool's stats for ST_BY_POOL rows, else the snapshot. */
static const char *base_of(const struct st_snapshot *s, const struct db_pool_stats *pool)
{
    return pool ? (const char *)pool : (const char *)s;
}

static struct st_val read_val(const struct st_read *r, const struct st_snapshot *s,
                              const struct db_pool_stats *pool)
{
    const char *p = base_of(s, pool) + r->off;
    switch (r->ctype) {
    case ST_C_FN:
        return r->fn(s, pool);
    case ST_C_UINT:
        return val_u64(*(const unsigned *)p);
    case ST_C_ULONG:
        return val_u64(*(const unsigned long *)p);
    case ST_C_ULLONG:
        return val_u64(*(const unsigned long long *)p);
    case ST_C_INT:
        return val_i64(*(const int *)p);
    case ST_C_LONG:
        return val_i64(*(const long *)p);
    case ST_C_LLONG:
        return val_i64(*(const long long *)p);
    case ST_C_BOOL:
        return (struct st_val){.kind = ST_BOOL, .b = *(const bool *)p};
    case ST_C_DOUBLE:
        return val_double(*(const double *)p);
    case ST_C_CHARS:
        return (struct st_val){.kind = ST_STRING, .s = p};
    case ST_C_COUNTS:
        break; /* read by count_at */
    }
    return val_null;
}

/* Element i of a row whose field is an array of counters. */
static uint64_t count_at(const struct st_metric *m, const struct st_snapshot *s,
                         const struct db_pool_stats *pool, unsigned i)
{
    return ((const uint64_t *)(base_of(s, pool) + m->read.off))[i];
}

static const struct db_pool_stats *pool_named(const struct st_snapshot *s, const char *name)
{
    for (size_t i = 0; i < s->npools; i++)
        if (!strcmp(s->pools[i].name, name))
            return &s->pools[i].st;
    return NULL;
}

/* ------------------------------------------------------------------ JSON */

static json_t *ju(uint64_t v)
{
    return json_integer((json_int_t)(v > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : v));
}

static json_t *json_of(struct st_val v)
{
    switch (v.kind) {
    case ST_NULL:
        break;
    case ST_U64:
        return ju(v.u);
    case ST_I64:
        return json_integer((json_int_t)v.i);
    case ST_DOUBLE:
        return json_real(v.d);
    case ST_BOOL:
        return json_boolean(v.b);
    case ST_STRING:
        return json_string(v.s);
    }
    return json_null();
}

/* Sets the member at a dotted path of o (new objects on the way); takes the reference to v. */
static void set_path(json_t *o, const char *path, json_t *v)
{
    const char *p = path;
    for (const char *dot; (dot = strchr(p, '.')) != NULL; p = dot + 1) {
        char key[64];
        ml_strlcpy(key, p, (size_t)(dot - p) + 1 < sizeof key ? (size_t)(dot - p) + 1 : sizeof key);
        json_t *c = json_object_get(o, key);
        if (!json_is_object(c)) {
            c = json_object();
            json_object_set_new(o, key, c);
        }
        o = c;
    }
    json_object_set_new(o, p, v ? v : json_null());
}

static json_t *row_json(const struct st_metric *m, const struct st_snapshot *s,
                        const struct db_pool_stats *pool)
{
    char k[24];
    if (m->hist) {
        json_t *o = json_object();
        for (unsigned i = 0; i < m->hist->buckets; i++) {
            m->hist->key(i, k, sizeof k);
            json_object_set_new(o, k, ju(count_at(m, s, pool, i)));
        }
        return o;
    }
    if (m->dim == ST_BY_CLOSE) {
        json_t *o = json_object();
        for (unsigned i = 0; i <= SIG_CLOSE_NCODES; i++) {
            uint64_t v = count_at(m, s, pool, i);
            if (!v)
                continue;
            close_label(i, k, sizeof k);
            json_object_set_new(o, k, ju(v));
        }
        return o;
    }
    if (m->dim == ST_BY_STATUS) {
        json_t *o = json_object();
        for (unsigned i = 0; i < ST_HTTP_CODES; i++) {
            uint64_t v = count_at(m, s, pool, i);
            if (!v)
                continue;
            ml_snprintf(k, sizeof k, "%u", ST_HTTP_MIN + i);
            json_object_set_new(o, k, ju(v));
        }
        return o;
    }
    return json_of(read_val(&m->read, s, pool));
}

static void pool_row_json(json_t *o, const struct st_metric *m, const struct st_snapshot *s)
{
    for (size_t h = 0; h < ML_ARRAY_LEN(pool_homes); h++) {
        if (!in_force(s, pool_homes[h].when))
            continue;
        const struct db_pool_stats *pool = pool_named(s, pool_homes[h].pool);
        if (!pool) {
            set_path(o, pool_homes[h].json, json_null());
            continue;
        }
        char path[96];
        ml_snprintf(path, sizeof path, "%s.%s", pool_homes[h].json, m->json);
        set_path(o, path, row_json(m, s, pool));
    }
}

json_t *st_json(const struct st_snapshot *s)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    for (size_t i = 0; i < ML_ARRAY_LEN(metrics); i++) {
        const struct st_metric *m = &metrics[i];
        if (!m->json || !in_force(s, m->when))
            continue;
        if (m->dim == ST_BY_POOL)
            pool_row_json(o, m, s);
        else
            set_path(o, m->json, row_json(m, s, NULL));
    }

    if (s->have_top) {
        json_t *m = json_object(), *arr = json_array();
        json_object_set_new(m, "limit", ju(s->top_limit));
        json_object_set_new(m, "meetings_with_allocations", ju(s->top_groups));
        for (size_t i = 0; i < s->ntop; i++) {
            const struct st_meeting *x = &s->top[i];
            json_t *e = json_object();
            json_object_set_new(e, "tag", json_string(x->tag));
            json_object_set_new(e, "allocations", ju(x->allocations));
            json_object_set_new(e, "meeting_id",
                                x->meeting_id[0] ? json_string(x->meeting_id) : json_null());
            json_object_set_new(e, "code", x->code[0] ? json_string(x->code) : json_null());
            json_object_set_new(e, "title", x->title[0] ? json_string(x->title) : json_null());
            json_array_append_new(arr, e);
        }
        json_object_set_new(m, "top", arr);
        json_object_set_new(o, "allocations_per_meeting", m);
    }
    return o;
}

/* ------------------------------------------------------------------ Prometheus text */

struct pbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void put(struct pbuf *b, const char *fmt, ...) ML_PRINTF(2, 3);
static void put(struct pbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* A label value escaped as the text format wants (\\, \", \n). */
static void escape(const char *in, char *out, size_t len)
{
    size_t o = 0;
    for (; *in && o + 3 < len; in++) {
        if (*in == '\\' || *in == '"') {
            out[o++] = '\\';
            out[o++] = *in;
        } else if (*in == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *in;
        }
    }
    out[o] = 0;
}

/* One sample: name, suffix ("_bucket", or ""), labels (a list without braces, or "") and
 * one or two label lists joined with a comma. */
static void sample(struct pbuf *b, const char *name, const char *suffix, const char *labels,
                   const char *more, struct st_val v)
{
    bool any = *labels || *more;
    const char *open = any ? "{" : "", *comma = *labels && *more ? "," : "",
               *close = any ? "}" : "";
    /* one write a line: a scrape writes a few hundred */
    switch (v.kind) {
    case ST_U64:
        put(b, "%s%s%s%s%s%s%s %" PRIu64 "\n", name, suffix, open, labels, comma, more, close, v.u);
        break;
    case ST_I64: /* counts and times: never negative */
        put(b, "%s%s%s%s%s%s%s %" PRId64 "\n", name, suffix, open, labels, comma, more, close,
            v.i > 0 ? v.i : 0);
        break;
    case ST_DOUBLE:
        put(b, "%s%s%s%s%s%s%s %.6f\n", name, suffix, open, labels, comma, more, close, v.d);
        break;
    case ST_BOOL:
    case ST_NULL:
    case ST_STRING:
        put(b, "%s%s%s%s%s%s%s %d\n", name, suffix, open, labels, comma, more, close,
            v.kind != ST_BOOL || v.b ? 1 : 0);
        break;
    }
}

/* Writes the samples of row m under its name p for one pool (NULL: not a pool row). Returns
 * whether the figures were known (a null figure writes nothing). */
static bool row_samples(struct pbuf *b, const struct st_metric *m, const struct st_prom *p,
                        const struct st_snapshot *s, const struct db_pool_stats *pool,
                        const char *pool_name)
{
    char buf[160], more[48];
    const char *labels = p->labels && m->read.ctype != ST_C_CHARS ? p->labels : "";
    if (pool_name) {
        ml_snprintf(buf, sizeof buf, "pool=\"%s\"%s%s", pool_name, *labels ? "," : "", labels);
        labels = buf;
    }
    if (m->hist) {
        uint64_t cum = 0;
        for (unsigned i = 0; i < m->hist->buckets; i++) {
            char le[24];
            cum += count_at(m, s, pool, i);
            m->hist->le(i, le, sizeof le);
            ml_snprintf(more, sizeof more, "le=\"%s\"", le);
            sample(b, p->name, "_bucket", labels, more, val_u64(cum));
        }
        sample(b, p->name, "_sum", labels, "", read_val(&m->hist->sum, s, pool));
        sample(b, p->name, "_count", labels, "", val_u64(cum));
        return true;
    }
    if (m->dim == ST_BY_CLOSE) {
        for (unsigned i = 0; i <= SIG_CLOSE_NCODES; i++) {
            uint64_t v = count_at(m, s, pool, i);
            char code[16];
            if (!v)
                continue;
            close_label(i, code, sizeof code);
            ml_snprintf(more, sizeof more, "code=\"%s\"", code);
            sample(b, p->name, "", labels, more, val_u64(v));
        }
        return true;
    }
    if (m->dim == ST_BY_STATUS) {
        for (unsigned i = 0; i < ST_HTTP_CODES; i++) {
            uint64_t v = count_at(m, s, pool, i);
            if (!v)
                continue;
            ml_snprintf(more, sizeof more, "code=\"%u\"", ST_HTTP_MIN + i);
            sample(b, p->name, "", labels, more, val_u64(v));
        }
        return true;
    }
    struct st_val v = read_val(&m->read, s, pool);
    if (v.kind == ST_NULL)
        return false;
    if (v.kind == ST_STRING) {
        char esc[96];
        escape(v.s, esc, sizeof esc);
        ml_snprintf(more, sizeof more, "%s=\"", p->labels);
        put(b, "%s{%s%s\"} 1\n", p->name, more, esc);
        return true;
    }
    sample(b, p->name, "", labels, "", v);
    return true;
}

/* The families of the table, found once (names are compared then, never per scrape): each
 * family's name slots in table order, members[start[f]] to members[start[f + 1]], families in
 * the order of their first row. */
#define ST_NMETRICS ML_ARRAY_LEN(metrics)
static struct {
    unsigned short row, slot;
} members[ST_NMETRICS * 2];
static unsigned start[ST_NMETRICS * 2 + 1], nfamilies;
static pthread_once_t families_once = PTHREAD_ONCE_INIT;

static void index_families(void)
{
    int family[ST_NMETRICS][2];
    unsigned count[ST_NMETRICS * 2] = {0};
    for (size_t i = 0; i < ST_NMETRICS; i++)
        for (int k = 0; k < 2; k++) {
            const char *name = metrics[i].prom[k].name;
            family[i][k] = -1;
            if (!name)
                continue;
            for (size_t j = 0; j <= i && family[i][k] < 0; j++)
                for (int l = 0; l < (j < i ? 2 : k); l++)
                    if (metrics[j].prom[l].name && !strcmp(metrics[j].prom[l].name, name)) {
                        family[i][k] = family[j][l];
                        break;
                    }
            if (family[i][k] < 0)
                family[i][k] = (int)nfamilies++;
            count[family[i][k]]++;
        }
    for (unsigned f = 0; f < nfamilies; f++)
        start[f + 1] = start[f] + count[f];
    unsigned fill[ST_NMETRICS * 2];
    memcpy(fill, start, sizeof fill);
    for (size_t i = 0; i < ST_NMETRICS; i++)
        for (int k = 0; k < 2; k++)
            if (family[i][k] >= 0) {
                unsigned at = fill[family[i][k]]++;
                members[at].row = (unsigned short)i;
                members[at].slot = (unsigned short)k;
            }
}

/* Family f: HELP, TYPE and the samples of its rows (from its first), pool by pool. A family
 * whose figures are all unknown or absent (a section the node lacks, no database pool, counts
 * the database did not give) is left out; a breakdown by status with nothing counted yet is
 * declared without samples. */
static void family(struct pbuf *b, const struct st_snapshot *s, unsigned f)
{
    const struct st_metric *first = &metrics[members[start[f]].row];
    const struct st_prom *head = &first->prom[members[start[f]].slot];
    size_t mark = b->len;
    bool by_pool = first->dim == ST_BY_POOL, known = false;
    put(b, "# HELP %s %s\n# TYPE %s %s\n", head->name, head->help, head->name,
        type_names[head->type]);
    for (size_t n = 0; n < (by_pool ? s->npools : 1); n++) {
        const struct db_pool_stats *pool = by_pool ? &s->pools[n].st : NULL;
        for (unsigned k = start[f]; k < start[f + 1]; k++) {
            const struct st_metric *m = &metrics[members[k].row];
            if (in_force(s, m->when) && row_samples(b, m, &m->prom[members[k].slot], s, pool,
                                                    by_pool ? s->pools[n].name : NULL))
                known = true;
        }
    }
    if (!known && !b->oom) {
        b->len = mark;
        b->p[mark] = 0;
    }
}

char *st_prometheus(const struct st_snapshot *s, size_t *len)
{
    struct pbuf b = {malloc(16384), 0, 16384, false};
    if (!b.p)
        return NULL;
    b.p[0] = 0;
    pthread_once(&families_once, index_families);
    for (unsigned f = 0; f < nfamilies; f++)
        family(&b, s, f);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
