/* Renders a stats snapshot: the JSON of GET /stats and the Prometheus text of GET /metrics.
 *
 * Metric names. Where coturn exports a figure (src/apps/relay/prom_server.c), meetlite uses its
 * name, so that existing dashboards and alerts keep working: turn_total_allocations{type},
 * turn_total_traffic_{rcvp,rcvb,sentp,sentb}, turn_total_traffic_peer_{...},
 * stun_binding_request/response, turn_udp_recvmmsg_{calls,packets},
 * turn_unauthenticated_401_{responses,dropped_responses}. coturn's counters carry no _total
 * suffix, which promtool requires of a counter, so they are typed untyped (their values only
 * grow, and rate() works on them as on any counter). Everything else is meetlite_*, typed.
 * Unlike coturn's, every counter here is live (read from the workers at scrape time, never
 * updated only when a session ends), and no label takes a value from the network or from
 * users: labels name transports, families, error codes, HTTP statuses and pools, all from fixed
 * tables. Per-meeting figures appear only in the JSON, as a bounded top N. */
#include "config.h"

#include "stats/st.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *const st_transports[3] = {"udp", "tcp", "tls"};
const int st_error_codes[8] = {400, 401, 403, 420, 437, 438, 486, 0};

/* Sizes of the recvmmsg batches counted in net_counters.udp_rx_batch_hist. */
static const char *const batch_names[7] = {"1", "2-3", "4-7", "8-15", "16-31", "32-63", "64"};
static const char *const batch_le[7] = {"1", "3", "7", "15", "31", "63", "+Inf"};

/* The error codes counted apart from error_responses' "other" slot. */
static uint64_t errors_apart(const struct turn_counters *t)
{
    return t->errors_440 + t->errors_441 + t->errors_442 + t->errors_443 + t->errors_508;
}

/* ------------------------------------------------------------------ JSON */

static json_t *ju(uint64_t v)
{
    return json_integer((json_int_t)(v > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : v));
}

static void set(json_t *o, const char *k, json_t *v)
{
    json_object_set_new(o, k, v ? v : json_null());
}

static json_t *http_json(const uint64_t *by_status)
{
    json_t *o = json_object();
    for (int i = 0; i < ST_HTTP_CODES; i++) {
        if (!by_status[i])
            continue;
        char k[8];
        ml_snprintf(k, sizeof k, "%d", ST_HTTP_MIN + i);
        set(o, k, ju(by_status[i]));
    }
    return o;
}

static json_t *pool_json(const struct db_pool_stats *p)
{
    json_t *o = json_object();
    set(o, "size", ju(p->size));
    set(o, "up", ju(p->up));
    set(o, "queued", ju(p->queued));
    set(o, "jobs", ju(p->jobs));
    set(o, "failed", ju(p->failed));
    set(o, "unavailable", ju(p->unavailable));
    set(o, "refused", ju(p->refused));
    set(o, "mean_wait_ms", json_real(p->ran ? (double)p->wait_us / (double)p->ran / 1000.0 : 0));
    set(o, "mean_run_ms", json_real(p->ran ? (double)p->run_us / (double)p->ran / 1000.0 : 0));
    json_t *h = json_object();
    for (int i = 0; i <= DB_LATENCY_BUCKETS; i++) {
        char k[24];
        if (i < DB_LATENCY_BUCKETS)
            ml_snprintf(k, sizeof k, "le_%gs", db_latency_bounds_s[i]);
        else
            ml_strlcpy(k, "more", sizeof k);
        set(h, k, ju(p->run_hist[i]));
    }
    set(o, "latency_histogram", h);
    return o;
}

static json_t *process_json(const struct st_process *p)
{
    json_t *o = json_object();
    set(o, "version", json_string(p->version));
    set(o, "pid", json_integer(p->pid));
    set(o, "started_at", json_integer(p->start_s));
    set(o, "uptime_s", json_integer(p->uptime_s));
    set(o, "threads", ju(p->threads));
    set(o, "rss_bytes", ju(p->rss_bytes));
    set(o, "vm_bytes", ju(p->vm_bytes));
    set(o, "open_fds", ju(p->open_fds));
    set(o, "max_fds", ju(p->max_fds));
    set(o, "cpu_user_s", json_real(p->cpu_user_s));
    set(o, "cpu_system_s", json_real(p->cpu_system_s));
    return o;
}

static json_t *turn_json(const struct st_snapshot *s)
{
    const struct turn_counters *t = &s->turn;
    json_t *o = json_object();
    set(o, "draining", json_boolean(s->draining));

    json_t *a = json_object();
    set(a, "total", ju(t->allocations));
    json_t *bt = json_object();
    for (int i = 0; i < 3; i++)
        set(bt, st_transports[i], ju(t->alloc_by_transport[i]));
    set(a, "by_transport", bt);
    set(a, "by_family",
        json_pack("{s:o,s:o}", "ipv4", ju(t->alloc_ipv4), "ipv6", ju(t->alloc_ipv6)));
    set(a, "created", ju(t->allocations_total));
    set(a, "expired", ju(t->allocations_expired));
    set(o, "allocations", a);
    set(o, "permissions", ju(t->permissions));
    set(o, "channels", ju(t->channels));

    set(o, "relayed",
        json_pack("{s:{s:o,s:o},s:{s:o,s:o}}", "to_peers", "packets", ju(t->relay_rx_packets),
                  "bytes", ju(t->relay_rx_bytes), "to_clients", "packets", ju(t->relay_tx_packets),
                  "bytes", ju(t->relay_tx_bytes)));
    set(o, "dropped",
        json_pack("{s:o,s:o,s:o,s:o,s:o}", "no_permission", ju(t->relay_dropped_no_permission),
                  "no_channel", ju(t->relay_dropped_no_channel), "backpressure",
                  ju(t->relay_dropped_backpressure), "unauthenticated_over_budget",
                  ju(t->unauth_dropped), "peer_denied", ju(t->peer_denied)));
    set(o, "stun",
        json_pack("{s:o,s:o,s:o,s:o,s:o}", "requests", ju(t->stun_requests), "binding",
                  ju(t->binding_requests), "binding_rfc3489", ju(t->binding_rfc3489), "indications",
                  ju(t->indications), "malformed", ju(t->malformed)));
    json_t *e = json_object();
    for (int i = 0; i < 7; i++) {
        char k[8];
        ml_snprintf(k, sizeof k, "%d", st_error_codes[i]);
        set(e, k, ju(t->error_responses[i]));
    }
    set(e, "440", ju(t->errors_440));
    set(e, "441", ju(t->errors_441));
    set(e, "442", ju(t->errors_442));
    set(e, "443", ju(t->errors_443));
    set(e, "508", ju(t->errors_508));
    uint64_t apart = errors_apart(t);
    set(e, "other", ju(t->error_responses[7] > apart ? t->error_responses[7] - apart : 0));
    set(o, "error_responses", e);

    if (s->sync.present) {
        json_t *y = json_object();
        set(y, "up", json_boolean(s->sync.up));
        set(y, "last_load_at", s->sync.last_s ? json_integer(s->sync.last_s) : json_null());
        set(y, "loads", ju(s->sync.loads));
        set(y, "failures", ju(s->sync.failures));
        set(o, "database_credentials", y);
    }
    set(o, "runtime_credentials",
        json_pack("{s:o,s:o}", "secrets", ju(s->sync.secrets), "users", ju(s->sync.users)));
    if (s->link.present) {
        const struct st_relay_link *l = &s->link;
        set(o, "database_link",
            json_pack("{s:b,s:o,s:o,s:o,s:o,s:o,s:o}", "listen_up", l->listen_up, "revocations",
                      ju(l->revocations), "revocations_failed", ju(l->revocations_failed),
                      "listen_connects", ju(l->listen_connects), "usage_queued",
                      ju(l->usage_queued), "usage_written", ju(l->usage_written), "usage_dropped",
                      ju(l->usage_dropped)));
    }
    return o;
}

static json_t *net_json(const struct net_counters *n)
{
    json_t *u = json_object();
    set(u, "rx_packets", ju(n->udp_rx_packets));
    set(u, "rx_bytes", ju(n->udp_rx_bytes));
    set(u, "tx_packets", ju(n->udp_tx_packets));
    set(u, "tx_bytes", ju(n->udp_tx_bytes));
    set(u, "rx_truncated", ju(n->udp_rx_truncated));
    set(u, "tx_dropped", ju(n->udp_tx_dropped));
    set(u, "recvmmsg_calls", ju(n->udp_rx_batches));
    json_t *h = json_object();
    for (int i = 0; i < 7; i++)
        set(h, batch_names[i], ju(n->udp_rx_batch_hist[i]));
    set(u, "recvmmsg_batch_sizes", h);
    json_t *st = json_object();
    set(st, "open",
        ju(n->stream_accepted > n->stream_closed ? n->stream_accepted - n->stream_closed : 0));
    set(st, "accepted", ju(n->stream_accepted));
    set(st, "refused", ju(n->stream_refused));
    set(st, "closed", ju(n->stream_closed));
    set(st, "rx_bytes", ju(n->stream_rx_bytes));
    set(st, "tx_bytes", ju(n->stream_tx_bytes));
    set(st, "tx_dropped", ju(n->stream_tx_dropped));
    set(st, "bad_frames", ju(n->stream_bad_frames));
    return json_pack("{s:o,s:o}", "udp", u, "streams", st);
}

static json_t *pool_named(const struct st_snapshot *s, const char *name)
{
    for (size_t i = 0; i < s->npools; i++)
        if (!strcmp(s->pools[i].name, name))
            return pool_json(&s->pools[i].st);
    return json_null();
}

json_t *st_json(const struct st_snapshot *s)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    set(o, "process", process_json(&s->proc));
    set(o, "turn", turn_json(s));
    set(o, "net", net_json(&s->net));

    json_t *c = json_object();
    set(c, "enabled", json_boolean(s->have_cp));
    if (s->have_cp) {
        set(c, "meetings_active",
            s->have_db_counts ? json_integer(s->meetings_active) : json_null());
        set(c, "participants_present",
            s->have_db_counts ? json_integer(s->participants_present) : json_null());
        set(c, "websocket_connections", ju(s->ws_connections));
        set(c, "http_responses", http_json(s->http_api));
        set(c, "database", pool_named(s, "api"));
    }
    set(o, "control", c);

    json_t *ad = json_object();
    set(ad, "http_responses", http_json(s->http_admin));
    set(ad, "database", pool_named(s, "admin"));
    set(o, "admin", ad);

    if (s->have_top) {
        json_t *m = json_object(), *arr = json_array();
        set(m, "limit", ju(s->top_limit));
        set(m, "meetings_with_allocations", ju(s->top_groups));
        for (size_t i = 0; i < s->ntop; i++) {
            const struct st_meeting *x = &s->top[i];
            json_t *e = json_object();
            set(e, "tag", json_string(x->tag));
            set(e, "allocations", ju(x->allocations));
            set(e, "meeting_id", x->meeting_id[0] ? json_string(x->meeting_id) : json_null());
            set(e, "code", x->code[0] ? json_string(x->code) : json_null());
            set(e, "title", x->title[0] ? json_string(x->title) : json_null());
            json_array_append_new(arr, e);
        }
        set(m, "top", arr);
        set(o, "allocations_per_meeting", m);
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

/* The HELP and TYPE lines of a metric family. */
static void family(struct pbuf *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample; labels is "" or a rendered label list without braces. */
static void sample(struct pbuf *b, const char *name, const char *labels, uint64_t v)
{
    put(b, "%s%s%s%s %" PRIu64 "\n", name, *labels ? "{" : "", labels, *labels ? "}" : "", v);
}

static void sample_f(struct pbuf *b, const char *name, const char *labels, double v)
{
    put(b, "%s%s%s%s %.6f\n", name, *labels ? "{" : "", labels, *labels ? "}" : "", v);
}

/* A family with one unlabelled sample. */
static void one(struct pbuf *b, const char *name, const char *type, const char *help, uint64_t v)
{
    family(b, name, type, help);
    sample(b, name, "", v);
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

static void process_prom(struct pbuf *b, const struct st_process *p)
{
    char v[80], l[100];
    escape(p->version, v, sizeof v);
    ml_snprintf(l, sizeof l, "version=\"%s\"", v);
    family(b, "meetlite_build_info", "gauge", "Always 1; the version is in the label.");
    sample(b, "meetlite_build_info", l, 1);
    one(b, "process_start_time_seconds", "gauge", "Start time of the process since the epoch.",
        (uint64_t)p->start_s);
    one(b, "meetlite_uptime_seconds", "gauge", "Seconds since the process started.",
        (uint64_t)p->uptime_s);
    family(b, "process_cpu_seconds_total", "counter", "User and system CPU time spent.");
    sample_f(b, "process_cpu_seconds_total", "", p->cpu_user_s + p->cpu_system_s);
    one(b, "process_resident_memory_bytes", "gauge", "Resident memory size.", p->rss_bytes);
    one(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size.", p->vm_bytes);
    one(b, "process_open_fds", "gauge", "Open file descriptors.", p->open_fds);
    one(b, "process_max_fds", "gauge", "The open file descriptor limit.", p->max_fds);
    one(b, "meetlite_threads", "gauge",
        "Threads of the process (network workers, HTTP, database, LISTEN).", p->threads);
}

static void turn_prom(struct pbuf *b, const struct st_snapshot *s)
{
    const struct turn_counters *t = &s->turn;
    char l[64];

    family(b, "turn_total_allocations", "gauge", "Live allocations by client transport (coturn).");
    for (int i = 0; i < 3; i++) {
        ml_snprintf(l, sizeof l, "type=\"%s\"", st_transports[i]);
        sample(b, "turn_total_allocations", l, t->alloc_by_transport[i]);
    }
    family(b, "meetlite_turn_relay_sockets", "gauge", "Live relay sockets by address family.");
    sample(b, "meetlite_turn_relay_sockets", "family=\"ipv4\"", t->alloc_ipv4);
    sample(b, "meetlite_turn_relay_sockets", "family=\"ipv6\"", t->alloc_ipv6);
    one(b, "meetlite_turn_permissions", "gauge", "Live permissions.", t->permissions);
    one(b, "meetlite_turn_channels", "gauge", "Live channel bindings.", t->channels);
    one(b, "meetlite_turn_allocations_created_total", "counter", "Allocations made.",
        t->allocations_total);
    one(b, "meetlite_turn_allocations_expired_total", "counter",
        "Allocations that ended because their lifetime ran out.", t->allocations_expired);
    one(b, "meetlite_turn_draining", "gauge", "1 while drain mode refuses new allocations.",
        s->draining);

    /* coturn's traffic figures, live: client side, then peer side */
    one(b, "turn_total_traffic_rcvp", "untyped",
        "Packets received from clients and relayed to peers (coturn; a counter).",
        t->relay_rx_packets);
    one(b, "turn_total_traffic_rcvb", "untyped",
        "Payload bytes received from clients and relayed to peers (coturn; a counter).",
        t->relay_rx_bytes);
    one(b, "turn_total_traffic_sentp", "untyped", "Packets relayed to clients (coturn; a counter).",
        t->relay_tx_packets);
    one(b, "turn_total_traffic_sentb", "untyped",
        "Payload bytes relayed to clients (coturn; a counter).", t->relay_tx_bytes);
    one(b, "turn_total_traffic_peer_rcvp", "untyped",
        "Packets received from peers and relayed to clients (coturn; a counter).",
        t->relay_tx_packets);
    one(b, "turn_total_traffic_peer_rcvb", "untyped",
        "Payload bytes received from peers and relayed to clients (coturn; a counter).",
        t->relay_tx_bytes);
    one(b, "turn_total_traffic_peer_sentp", "untyped", "Packets sent to peers (coturn; a counter).",
        t->relay_rx_packets);
    one(b, "turn_total_traffic_peer_sentb", "untyped",
        "Payload bytes sent to peers (coturn; a counter).", t->relay_rx_bytes);
    family(b, "meetlite_turn_relay_dropped_total", "counter",
           "Relayed packets dropped, by reason.");
    sample(b, "meetlite_turn_relay_dropped_total", "reason=\"no_permission\"",
           t->relay_dropped_no_permission);
    sample(b, "meetlite_turn_relay_dropped_total", "reason=\"no_channel\"",
           t->relay_dropped_no_channel);
    sample(b, "meetlite_turn_relay_dropped_total", "reason=\"backpressure\"",
           t->relay_dropped_backpressure);
    one(b, "meetlite_turn_peer_denied_total", "counter",
        "Requests and packets refused by the peer policy (403).", t->peer_denied);

    one(b, "stun_binding_request", "untyped", "Binding requests answered (coturn; a counter).",
        t->binding_requests);
    one(b, "stun_binding_response", "untyped",
        "Binding success responses sent (coturn; a counter).", t->binding_requests);
    one(b, "meetlite_stun_requests_total", "counter", "STUN requests received, any method.",
        t->stun_requests);
    one(b, "meetlite_stun_indications_total", "counter", "STUN indications received.",
        t->indications);
    one(b, "meetlite_stun_malformed_total", "counter",
        "Datagrams and frames that were neither STUN nor ChannelData.", t->malformed);
    family(b, "meetlite_stun_error_responses_total", "counter", "Error responses sent, by code.");
    for (int i = 0; i < 7; i++) {
        ml_snprintf(l, sizeof l, "code=\"%d\"", st_error_codes[i]);
        sample(b, "meetlite_stun_error_responses_total", l, t->error_responses[i]);
    }
    sample(b, "meetlite_stun_error_responses_total", "code=\"440\"", t->errors_440);
    sample(b, "meetlite_stun_error_responses_total", "code=\"441\"", t->errors_441);
    sample(b, "meetlite_stun_error_responses_total", "code=\"442\"", t->errors_442);
    sample(b, "meetlite_stun_error_responses_total", "code=\"443\"", t->errors_443);
    sample(b, "meetlite_stun_error_responses_total", "code=\"508\"", t->errors_508);
    uint64_t apart = errors_apart(t);
    sample(b, "meetlite_stun_error_responses_total", "code=\"other\"",
           t->error_responses[7] > apart ? t->error_responses[7] - apart : 0);
    one(b, "turn_unauthenticated_401_responses", "untyped",
        "401 responses sent (challenges and refused credentials; coturn; a counter).",
        t->error_responses[1]);
    one(b, "turn_unauthenticated_401_dropped_responses", "untyped",
        "Unauthenticated requests dropped, unanswered, over the per-address budget (coturn; a "
        "counter).",
        t->unauth_dropped);

    one(b, "meetlite_turn_runtime_secrets", "gauge",
        "TURN REST secrets managed through the admin API, in force.", s->sync.secrets);
    one(b, "meetlite_turn_runtime_users", "gauge",
        "TURN users managed through the admin API, in force.", s->sync.users);
    if (s->sync.present) {
        one(b, "meetlite_turn_credentials_sync_up", "gauge",
            "1 while the runtime credentials are kept in sync with PostgreSQL.", s->sync.up);
        one(b, "meetlite_turn_credentials_loads_total", "counter",
            "Loads of the runtime credentials from PostgreSQL.", s->sync.loads);
        one(b, "meetlite_turn_credentials_load_failures_total", "counter",
            "Failed loads of the runtime credentials.", s->sync.failures);
    }
    if (s->link.present) {
        const struct st_relay_link *k = &s->link;
        one(b, "meetlite_turn_revocations_total", "counter",
            "Credentials revoked on this relay (any source).", k->revocations);
        one(b, "meetlite_turn_revocations_failed_total", "counter",
            "Revocations the relay could not hold (set full).", k->revocations_failed);
        one(b, "meetlite_db_listen_up", "gauge",
            "1 while the revocation LISTEN connection is up and caught up.", k->listen_up);
        one(b, "meetlite_db_listen_connects_total", "counter", "LISTEN connections made.",
            k->listen_connects);
        one(b, "meetlite_usage_records_queued", "gauge", "Usage records waiting to be written.",
            k->usage_queued);
        family(b, "meetlite_usage_records_total", "counter", "Usage records, by outcome.");
        sample(b, "meetlite_usage_records_total", "outcome=\"written\"", k->usage_written);
        sample(b, "meetlite_usage_records_total", "outcome=\"dropped\"", k->usage_dropped);
    }
}

static void net_prom(struct pbuf *b, const struct net_counters *n)
{
    one(b, "turn_udp_recvmmsg_calls", "untyped",
        "recvmmsg calls that returned datagrams (coturn; a counter).", n->udp_rx_batches);
    one(b, "turn_udp_recvmmsg_packets", "untyped",
        "Datagrams received by recvmmsg (coturn; a counter).",
        n->udp_rx_packets + n->udp_rx_truncated);
    family(b, "meetlite_udp_recvmmsg_batch_size", "histogram",
           "Datagrams returned per recvmmsg call.");
    uint64_t cum = 0;
    for (int i = 0; i < 7; i++) {
        char l[32];
        cum += n->udp_rx_batch_hist[i];
        ml_snprintf(l, sizeof l, "le=\"%s\"", batch_le[i]);
        sample(b, "meetlite_udp_recvmmsg_batch_size_bucket", l, cum);
    }
    sample(b, "meetlite_udp_recvmmsg_batch_size_sum", "", n->udp_rx_packets + n->udp_rx_truncated);
    sample(b, "meetlite_udp_recvmmsg_batch_size_count", "", cum);
    family(b, "meetlite_udp_packets_total", "counter", "UDP datagrams, by direction.");
    sample(b, "meetlite_udp_packets_total", "direction=\"rx\"", n->udp_rx_packets);
    sample(b, "meetlite_udp_packets_total", "direction=\"tx\"", n->udp_tx_packets);
    family(b, "meetlite_udp_bytes_total", "counter", "UDP bytes, by direction.");
    sample(b, "meetlite_udp_bytes_total", "direction=\"rx\"", n->udp_rx_bytes);
    sample(b, "meetlite_udp_bytes_total", "direction=\"tx\"", n->udp_tx_bytes);
    family(b, "meetlite_udp_dropped_total", "counter", "UDP datagrams dropped, by reason.");
    sample(b, "meetlite_udp_dropped_total", "reason=\"truncated\"", n->udp_rx_truncated);
    sample(b, "meetlite_udp_dropped_total", "reason=\"send_failed\"", n->udp_tx_dropped);
    one(b, "meetlite_stream_connections", "gauge", "Open TCP and TLS client connections.",
        n->stream_accepted > n->stream_closed ? n->stream_accepted - n->stream_closed : 0);
    family(b, "meetlite_stream_connections_total", "counter",
           "TCP and TLS client connections, by event.");
    sample(b, "meetlite_stream_connections_total", "event=\"accepted\"", n->stream_accepted);
    sample(b, "meetlite_stream_connections_total", "event=\"refused\"", n->stream_refused);
    sample(b, "meetlite_stream_connections_total", "event=\"closed\"", n->stream_closed);
    family(b, "meetlite_stream_bytes_total", "counter", "TCP and TLS bytes, by direction.");
    sample(b, "meetlite_stream_bytes_total", "direction=\"rx\"", n->stream_rx_bytes);
    sample(b, "meetlite_stream_bytes_total", "direction=\"tx\"", n->stream_tx_bytes);
    family(b, "meetlite_stream_dropped_total", "counter",
           "Stream frames dropped and streams closed, by reason.");
    sample(b, "meetlite_stream_dropped_total", "reason=\"slow_reader\"", n->stream_tx_dropped);
    sample(b, "meetlite_stream_dropped_total", "reason=\"bad_frame\"", n->stream_bad_frames);
}

static void http_prom(struct pbuf *b, const struct st_snapshot *s)
{
    family(b, "meetlite_http_responses_total", "counter", "HTTP answers, by listener and status.");
    for (int which = 0; which < 2; which++) {
        const uint64_t *v = which ? s->http_admin : s->http_api;
        if (!which && !s->have_cp)
            continue;
        for (int i = 0; i < ST_HTTP_CODES; i++) {
            if (!v[i])
                continue;
            char l[48];
            ml_snprintf(l, sizeof l, "listener=\"%s\",code=\"%d\"", which ? "admin" : "api",
                        ST_HTTP_MIN + i);
            sample(b, "meetlite_http_responses_total", l, v[i]);
        }
    }
}

static void pools_prom(struct pbuf *b, const struct st_snapshot *s)
{
    char l[96];
    if (!s->npools)
        return;
#define EACH_POOL for (size_t i_ = 0; i_ < s->npools; i_++)
#define POOL_L (ml_snprintf(l, sizeof l, "pool=\"%s\"", s->pools[i_].name), l)
#define P (&s->pools[i_].st)
    family(b, "meetlite_db_pool_connections", "gauge", "Database connections configured.");
    EACH_POOL sample(b, "meetlite_db_pool_connections", POOL_L, P->size);
    family(b, "meetlite_db_pool_up", "gauge", "Database connections up.");
    EACH_POOL sample(b, "meetlite_db_pool_up", POOL_L, P->up);
    family(b, "meetlite_db_pool_queued", "gauge", "Database jobs waiting for a connection.");
    EACH_POOL sample(b, "meetlite_db_pool_queued", POOL_L, P->queued);
    family(b, "meetlite_db_jobs_total", "counter", "Database jobs completed, by outcome.");
    EACH_POOL
    {
        uint64_t ok = P->jobs - P->failed - P->unavailable;
        ml_snprintf(l, sizeof l, "pool=\"%s\",outcome=\"ok\"", s->pools[i_].name);
        sample(b, "meetlite_db_jobs_total", l, ok);
        ml_snprintf(l, sizeof l, "pool=\"%s\",outcome=\"failed\"", s->pools[i_].name);
        sample(b, "meetlite_db_jobs_total", l, P->failed);
        ml_snprintf(l, sizeof l, "pool=\"%s\",outcome=\"unavailable\"", s->pools[i_].name);
        sample(b, "meetlite_db_jobs_total", l, P->unavailable);
    }
    family(b, "meetlite_db_refused_total", "counter",
           "Database jobs refused at once (no connection, or queue full).");
    EACH_POOL sample(b, "meetlite_db_refused_total", POOL_L, P->refused);
    family(b, "meetlite_db_queue_wait_seconds_total", "counter",
           "Time jobs spent waiting for a database connection.");
    EACH_POOL sample_f(b, "meetlite_db_queue_wait_seconds_total", POOL_L, (double)P->wait_us / 1e6);
    family(b, "meetlite_db_job_duration_seconds", "histogram",
           "Time a database job ran on its connection (its queries).");
    EACH_POOL
    {
        uint64_t cum = 0;
        for (int k = 0; k <= DB_LATENCY_BUCKETS; k++) {
            cum += P->run_hist[k];
            if (k < DB_LATENCY_BUCKETS)
                ml_snprintf(l, sizeof l, "pool=\"%s\",le=\"%g\"", s->pools[i_].name,
                            db_latency_bounds_s[k]);
            else
                ml_snprintf(l, sizeof l, "pool=\"%s\",le=\"+Inf\"", s->pools[i_].name);
            sample(b, "meetlite_db_job_duration_seconds_bucket", l, cum);
        }
        sample_f(b, "meetlite_db_job_duration_seconds_sum", POOL_L, (double)P->run_us / 1e6);
        sample(b, "meetlite_db_job_duration_seconds_count", POOL_L, cum);
    }
#undef EACH_POOL
#undef POOL_L
#undef P
}

char *st_prometheus(const struct st_snapshot *s, size_t *len)
{
    struct pbuf b = {malloc(16384), 0, 16384, false};
    if (!b.p)
        return NULL;
    b.p[0] = 0;
    process_prom(&b, &s->proc);
    turn_prom(&b, s);
    net_prom(&b, &s->net);
    one(&b, "meetlite_control_plane_enabled", "gauge", "1 when this node runs the control plane.",
        s->have_cp);
    if (s->have_cp) {
        one(&b, "meetlite_websocket_connections", "gauge", "Open signaling WebSockets.",
            s->ws_connections);
        if (s->have_db_counts) {
            one(&b, "meetlite_meetings_active", "gauge",
                "Active meetings (all nodes: read from PostgreSQL).",
                (uint64_t)(s->meetings_active > 0 ? s->meetings_active : 0));
            one(&b, "meetlite_participants_present", "gauge",
                "Participants present in active meetings (all nodes: read from PostgreSQL).",
                (uint64_t)(s->participants_present > 0 ? s->participants_present : 0));
        }
    }
    http_prom(&b, s);
    pools_prom(&b, s);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
