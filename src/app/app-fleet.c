/* This relay in the fleet's registry (issue #16, docs/fleet.md): a heartbeat every
 * fleet.heartbeat-ms with the URIs clients reach it by, its region and its load (allocations,
 * relayed packets and bytes a second, CPU), and whether it drains. The beat is a job on a pool
 * of one connection of its own, submitted from the main loop's timer without waiting: a busy
 * control-plane pool cannot make this node look dead, and a database that is away only makes
 * the beats fail (the node then drops out of placement, as it should: nobody can place on it
 * who cannot see it). An orderly stop writes a last beat that says draining. */
#include "config.h"

#include "app/app.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define SUBSYS "fleet"
#define LAST_BEAT_WAIT_MS 1000

static const struct db_stmt st_beat = {
    "fleet_beat",
    "SELECT ml_relay_beat($1, $2, ARRAY(SELECT json_array_elements_text($3::json)), "
    "$4::integer, $5::integer, $6::bigint, $7::bigint, $8::real, $9::boolean)",
    9, 1};

/* One heartbeat: its parameters are written by the main thread before it is submitted and
 * read by the database thread while it runs. */
struct beat_job {
    struct db_job job; /* first: the pool hands it back */
    struct app_fleet *f;
    char allocs[24], pps[24], bps[24], cpu[24], cap[24];
    bool draining;
    bool ok;
    char err[200];
};

struct app_fleet {
    const struct app_config *cfg; /* borrowed */
    struct turn_server *srv;      /* borrowed */
    struct net_engine *engine;    /* borrowed */
    struct db_pool *pool;         /* one connection */
    struct event *timer;
    char name[72], region[72];
    char *uris_json; /* ["stun:...", "turn:..."] */
    long long capacity;
    struct beat_job beat;
    bool inflight; /* main thread */
    bool registered, failing;
    /* the previous beat's figures, for rates */
    int64_t last_ms;
    uint64_t last_packets, last_bytes;
    int64_t last_cpu_us;
};

/* ------------------------------------------------------------------ the beat */

static enum db_status w_beat(struct db_conn *c, struct db_job *job)
{
    struct beat_job *b = (struct beat_job *)job;
    struct app_fleet *f = b->f;
    const char *p[] = {f->name, f->region, f->uris_json,
                       b->cap,  b->allocs, b->pps,
                       b->bps,  b->cpu,    b->draining ? "true" : "false"};
    PGresult *r = db_exec(c, &st_beat, p);
    if (!r)
        return DB_UNAVAILABLE;
    b->ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!b->ok)
        ml_strlcpy(b->err, PQresultErrorMessage(r), sizeof b->err);
    PQclear(r);
    return b->ok ? DB_OK : DB_FAILED;
}

static void beat_done(struct db_job *job)
{
    struct beat_job *b = (struct beat_job *)job;
    struct app_fleet *f = b->f;
    f->inflight = false;
    if (job->status == DB_OK) {
        if (!f->registered)
            ML_NOTICE(SUBSYS, "relay registered as %s%s%s (%s)", f->name,
                      f->region[0] ? " in region " : "", f->region, f->uris_json);
        else if (f->failing)
            ML_NOTICE(SUBSYS, "relay heartbeat written again");
        f->registered = true;
        f->failing = false;
        return;
    }
    if (!f->failing)
        ML_WARN(SUBSYS,
                "relay heartbeat failed (%s): control planes stop placing on this node until "
                "it is written again",
                job->status == DB_UNAVAILABLE ? "no database connection" : b->err);
    f->failing = true;
}

/* CPU time of the process (every thread), microseconds. */
static int64_t cpu_us(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return 0;
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

/* Fills the job with the load now and submits it; false when it could not be. */
static bool submit_beat(struct app_fleet *f, bool draining)
{
    if (f->inflight)
        return false;
    struct turn_counters tc;
    turn_counters_read(f->engine, &tc);
    int64_t now = ml_now_ms(), cpu = cpu_us();
    uint64_t packets = tc.relay_rx_packets + tc.relay_tx_packets;
    uint64_t bytes = tc.relay_rx_bytes + tc.relay_tx_bytes;
    double pps = 0, bps = 0, pct = 0;
    if (f->last_ms && now > f->last_ms) {
        double dt = (double)(now - f->last_ms) / 1000.0;
        pps = (double)(packets - f->last_packets) / dt;
        bps = (double)(bytes - f->last_bytes) / dt;
        pct = (double)(cpu - f->last_cpu_us) / 10000.0 / dt; /* percent of one core */
        if (pct < 0)
            pct = 0;
    }
    f->last_ms = now;
    f->last_packets = packets;
    f->last_bytes = bytes;
    f->last_cpu_us = cpu;
    struct beat_job *b = &f->beat;
    memset(b, 0, sizeof *b);
    b->f = f;
    b->job.work = w_beat;
    b->job.done = beat_done;
    uint64_t allocs = tc.allocations > INT32_MAX ? INT32_MAX : tc.allocations;
    ml_snprintf(b->allocs, sizeof b->allocs, "%llu", (unsigned long long)allocs);
    ml_snprintf(b->pps, sizeof b->pps, "%.0f", pps);
    ml_snprintf(b->bps, sizeof b->bps, "%.0f", bps);
    ml_snprintf(b->cpu, sizeof b->cpu, "%.1f", pct);
    ml_snprintf(b->cap, sizeof b->cap, "%lld", f->capacity);
    b->draining = draining;
    if (db_submit(f->pool, &b->job) < 0) {
        if (!f->failing)
            ML_WARN(SUBSYS, "relay heartbeat not sent: no database connection; control planes "
                            "stop placing on this node until it is");
        f->failing = true;
        return false;
    }
    f->inflight = true;
    return true;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct app_fleet *f = arg;
    ML_UNUSED(fd);
    ML_UNUSED(what);
    db_pool_drain(f->pool); /* the last beat's completion */
    submit_beat(f, turn_server_draining(f->srv));
}

/* The pool's wake-up: nothing to do, the timer collects completions. */
static void pool_wake(void *arg)
{
    ML_UNUSED(arg);
}

/* ------------------------------------------------------------------ the node's URIs */

/* The URIs this relay registers: fleet.public-uris, control.turn-uris, or turn.listen's with a
 * wildcard address named by turn.external-address. */
static char *node_uris(const struct app_config *cfg, char *err, size_t errlen)
{
    const char *list = cfg->fleet.public_uris ? cfg->fleet.public_uris : cfg->control.turn_uris;
    char *derived = NULL;
    if (!list) {
        char host[INET6_ADDRSTRLEN + 2] = "";
        size_t n = 0;
        const char *ext = cfg->turn.external_address;
        const char *first = ext ? ml_list_next(&ext, &n) : NULL;
        if (first && n < sizeof host - 2) {
            char ip[INET6_ADDRSTRLEN];
            memcpy(ip, first, n);
            ip[n] = 0;
            ml_snprintf(host, sizeof host, strchr(ip, ':') ? "[%s]" : "%s", ip);
        }
        derived = cp_listen_uris_list(cfg->turn.listen, host[0] ? host : "0.0.0.0", err, errlen);
        if (!derived)
            return NULL;
        if (!host[0] && (strstr(derived, "0.0.0.0") || strstr(derived, ":[::]"))) {
            free(derived);
            ml_err(err, errlen,
                   "fleet.register: turn.listen has a wildcard address; set fleet.public-uris "
                   "or turn.external-address so that clients can be told where this relay is");
            return NULL;
        }
        list = derived;
    }
    json_t *a = ml_nonnull(json_array());
    size_t n = 0;
    bool ok = true;
    for (const char *item; ok && (item = ml_list_next(&list, &n)) != NULL;)
        ok = cp_ice_uri_ok(item, n) && json_array_size(a) < CP_ICE_URIS_MAX &&
             json_array_append_new(a, ml_nonnull(json_stringn(item, n))) == 0;
    free(derived);
    char *out = ok && json_array_size(a) ? ml_nonnull(json_dumps(a, JSON_COMPACT)) : NULL;
    json_decref(a);
    if (!out)
        ml_err(err, errlen,
               "fleet.public-uris: 1 to %d stun:, stuns:, turn: or turns: URIs of at most %d "
               "bytes",
               CP_ICE_URIS_MAX, CP_ICE_URI_MAX);
    return out;
}

/* ------------------------------------------------------------------ the object */

struct app_fleet *app_fleet_new(const struct app_config *cfg, struct event_base *base,
                                struct turn_server *srv, struct net_engine *engine, char *err,
                                size_t errlen)
{
    struct app_fleet *f = ml_xcalloc(1, sizeof *f);
    f->cfg = cfg;
    f->srv = srv;
    f->engine = engine;
    const struct app_fleet_config *fc = &cfg->fleet;
    if (fc->node_name)
        ml_strlcpy(f->name, fc->node_name, sizeof f->name);
    else if (cfg->signaling.node_id)
        ml_strlcpy(f->name, cfg->signaling.node_id, sizeof f->name);
    else if (gethostname(f->name, sizeof f->name) < 0 || !f->name[0])
        ml_strlcpy(f->name, "unknown", sizeof f->name);
    f->name[64] = 0; /* the registry's limit */
    ml_strlcpy(f->region, fc->region ? fc->region : "", sizeof f->region);
    f->capacity = fc->capacity ? fc->capacity : cfg->turn.max_allocations;
    if (f->capacity > INT32_MAX)
        f->capacity = INT32_MAX;
    f->uris_json = node_uris(cfg, err, errlen);
    if (!f->uris_json)
        goto fail;
    struct db_config one = cfg->database;
    one.pool_size = 1;
    one.max_queue = 4;
    f->pool = db_pool_new(&one, pool_wake, f, err, errlen);
    if (!f->pool)
        goto fail;
    f->timer = event_new(base, -1, EV_PERSIST, on_timer, f);
    struct timeval tv = {(time_t)(fc->heartbeat_ms / 1000),
                         (suseconds_t)(fc->heartbeat_ms % 1000) * 1000};
    if (!f->timer || event_add(f->timer, &tv) < 0) {
        ml_err(err, errlen, "cannot start the fleet heartbeat timer");
        goto fail;
    }
    ML_NOTICE(SUBSYS, "relay %s registers every %lld ms (capacity %lld allocations)", f->name,
              fc->heartbeat_ms, f->capacity);
    return f;
fail:
    app_fleet_free(f);
    return NULL;
}

void app_fleet_free(struct app_fleet *f)
{
    if (!f)
        return;
    if (f->timer)
        event_free(f->timer);
    if (f->pool) {
        /* the last beat says draining: control planes move this node's participants now,
         * not when its heartbeat has aged */
        int64_t until = ml_now_ms() + LAST_BEAT_WAIT_MS;
        while (f->inflight && ml_now_ms() < until) {
            db_pool_drain(f->pool);
            if (f->inflight)
                usleep(10000);
        }
        if (f->registered && submit_beat(f, true)) {
            while (f->inflight && ml_now_ms() < until) {
                usleep(10000);
                db_pool_drain(f->pool);
            }
            if (!f->inflight && !f->failing)
                ML_NOTICE(SUBSYS, "relay %s marked draining in the registry", f->name);
        }
        db_pool_free(f->pool); /* completes what is left */
    }
    free(f->uris_json);
    free(f);
}
