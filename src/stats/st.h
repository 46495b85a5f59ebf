/* Stats: a snapshot of what meetlited is doing (process, relay, network engine, control plane,
 * database pools, allocations per meeting) rendered as JSON for GET /stats and as Prometheus
 * text (format 0.0.4) for GET /metrics. Prefix: st_. Gathering is the caller's job (the admin
 * API): these functions only read /proc/self and format, and never log. Both renderings come
 * from one table of metrics in st-render.c: a figure is declared there once. */
#ifndef ML_ST_H
#define ML_ST_H

#include "common/common.h"
#include "db/db.h"
#include "http/http.h"
#include "net/net.h"
#include "signal/sig.h"
#include "turn/turn.h"

#include <jansson.h>

/* The process, from /proc/self. */
struct st_process {
    char version[32];
    long pid;
    int64_t start_s;    /* wall clock, seconds since the epoch */
    int64_t uptime_s;   /* seconds */
    unsigned threads;   /* all of them: workers, HTTP, database, ... */
    uint64_t rss_bytes; /* resident set */
    uint64_t vm_bytes;  /* virtual size */
    unsigned open_fds;  /* entries of /proc/self/fd */
    uint64_t max_fds;   /* RLIMIT_NOFILE soft limit */
    double cpu_user_s, cpu_system_s;
};

/* Fills p from /proc/self (version is the caller's). 0, or -1 when /proc is not readable
 * (the fields it could not read are 0). */
int st_process_read(struct st_process *p);

/* HTTP answers counted by status (100..599); index status - ST_HTTP_MIN. */
#define ST_HTTP_MIN 100
#define ST_HTTP_CODES 500

/* One database pool, named for the label ("api": the control plane's, "admin": ours). */
struct st_pool {
    const char *name; /* static */
    struct db_pool_stats st;
};

/* Allocations of one meeting (a credential id "<tag>.<participant>"), with what the database
 * says about the tag when it was asked. */
struct st_meeting {
    char tag[TURN_ID_MAX];
    size_t allocations;
    char meeting_id[40]; /* "" when unknown */
    char code[16];
    char title[204];
};

/* The relay's link to PostgreSQL (revocations in, usage records out; issue #5). */
struct st_relay_link {
    bool present;
    bool listen_up;
    uint64_t revocations, revocations_failed, listen_connects;
    uint64_t usage_queued, usage_written, usage_dropped;
};

/* The runtime credentials' synchronisation with PostgreSQL (the admin API's tables). */
struct st_sync {
    bool present;   /* database.url set and admin.db-credentials on */
    bool up;        /* connected and listening */
    int64_t last_s; /* wall clock of the last successful load; 0 never */
    uint64_t loads, failures;
    size_t secrets, users; /* in force on the relay */
};

/* The webhook worker's figures (issue #17), on a node with database.url. */
struct st_webhooks {
    bool present;
    uint64_t delivered, attempts_failed, db_connects;
};

#define ST_MAX_POOLS 2

/* Everything one rendering needs. Sections with have_* false are left out (a TURN-only node
 * has no control plane; figures from the database are absent when it could not be asked). */
struct st_snapshot {
    struct st_process proc;
    /* relay */
    struct turn_counters turn;
    struct net_counters net;
    unsigned net_max_streams;  /* all workers: net.max-streams, given or derived, times workers */
    unsigned net_max_per_addr; /* net.max-streams-per-address in force; 0: none */
    size_t net_addresses;      /* client addresses holding a stream now */
    bool draining;
    struct st_sync sync;
    struct st_relay_link link;
    struct st_webhooks hooks;
    /* control plane */
    bool have_cp;
    uint64_t http_api[ST_HTTP_CODES];
    struct http_conn_stats api_conns;
    uint64_t ws_connections;                  /* open signaling WebSockets */
    uint64_t ws_closes[SIG_CLOSE_NCODES + 1]; /* signaling connections ended, by close code */
    bool have_db_counts; /* meetings_active and participants_present were read */
    long long meetings_active, participants_present;
    /* answers' latencies by class, the control plane's and the admin listener's */
    struct http_latency http_latency[HTTP_CLASSES];
    /* the admin listener */
    uint64_t http_admin[ST_HTTP_CODES];
    struct http_conn_stats admin_conns;
    /* database pools */
    struct st_pool pools[ST_MAX_POOLS];
    size_t npools;
    /* allocations per meeting (JSON only: no per-meeting labels in /metrics) */
    bool have_top;
    size_t top_limit, top_groups; /* asked for, and how many meetings have allocations */
    struct st_meeting *top;       /* borrowed */
    size_t ntop;
};

/* The snapshot as the JSON object of GET /stats (caller json_decref()s), or NULL when out of
 * memory. */
json_t *st_json(const struct st_snapshot *s) ML_WUR;

/* The snapshot as Prometheus text exposition format 0.0.4: a malloc'd NUL-terminated string
 * (caller frees), its length in *len; NULL when out of memory. Names follow coturn's where
 * coturn has the figure; coturn's counters are exposed untyped because their names lack the
 * _total suffix that promtool requires of a counter. No label set grows with use. */
char *st_prometheus(const struct st_snapshot *s, size_t *len) ML_WUR;

#endif
