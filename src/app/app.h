/* The meetlited application: the whole configuration and the wiring of subsystems. Prefix:
 * app_. Only main.c and the app-*.c files include this. */
#ifndef ML_APP_H
#define ML_APP_H

#include "admin/adm.h"
#include "common/common.h"
#include "control/cp.h"
#include "db/db.h"
#include "hooks/wh.h"
#include "http/http.h"
#include "net/net.h"
#include "signal/sig.h"
#include "turn/turn.h"

/* [daemon] */
struct app_daemon_config {
    long long max_open_files;
    char *user;  /* started as root: the user to become once every listener is bound */
    char *group; /* its group; NULL: the user's primary group */
};

/* [log] */
struct app_log_config {
    int level;  /* enum ml_log_level */
    int target; /* 0: stderr, 1: syslog */
    int format; /* enum ml_log_format */
};

/* [usage]: the relay's usage records (app-relay-config.c). */
struct app_usage_config {
    bool record;
    long long batch_size;        /* records per INSERT */
    long long flush_interval_ms; /* the longest a record waits for its batch */
    long long queue_max;         /* records buffered; beyond it they are dropped and counted */
};
extern const struct ml_cfg_key app_usage_cfg_keys[];

/* [fleet]: this node in the relay registry, and how the control plane places participants on
 * the registered relays (app-fleet-config.c; docs/fleet.md). */
struct app_fleet_config {
    bool register_node;        /* fleet.register: beat this relay's row into relay_nodes */
    char *node_name;           /* NULL: signaling.node-id, else the host name */
    char *region;              /* NULL: "" (no region) */
    char *public_uris;         /* comma list; NULL: control.turn-uris, else from turn.listen */
    long long capacity;        /* allocations before meetings spill; 0: turn.max-allocations */
    long long heartbeat_ms;    /* the registry heartbeat, and the control plane's check */
    long long node_timeout_ms; /* a node silent this long is not placed on */
    int placement;             /* enum cp_placement */
    long long push_max;        /* participants moved per check */
};
extern const struct ml_cfg_key app_fleet_cfg_keys[];

/* The whole configuration: one struct per section. */
struct app_config {
    struct app_daemon_config daemon;
    struct app_log_config log;
    struct net_config net;
    struct turn_config turn;
    struct db_config database;
    struct cp_config control;
    struct cp_auth_config auth;
    struct sig_config signaling;
    struct app_usage_config usage;
    struct adm_config admin;
    struct wh_config webhooks;
    struct app_fleet_config fleet;
};

/* The rules between [fleet] and the other sections (app-fleet-config.c). 0 or -1 with err. */
int app_fleet_config_check(const struct app_config *cfg, char *err, size_t errlen) ML_WUR;

/* Every section, NULL-terminated, in the order --help and the sample file use. */
extern const struct ml_cfg_section *const app_cfg_sections[];

/* Loads defaults, then the file (when path is not NULL), then the --set overrides, then checks
 * what only the whole configuration can tell. 0, or -1 with err filled; cfg is always safe to
 * free with app_config_free. */
int app_config_load(struct app_config *cfg, const char *path, char *const *sets, size_t nsets,
                    char *err, size_t errlen) ML_WUR;
void app_config_free(struct app_config *cfg);
/* True when control.listen is the address of a shared:// listener of turn.listen: the control
 * plane is served there and binds no socket of its own. */
bool app_control_on_shared(const struct app_config *cfg);
/* Every rule between keys that start applies without touching a file or a socket: the
 * subsystems' checks (adm_config_check, cp_config_check, sig_config_check), the listen lists,
 * and two listeners on one TCP address. Used by start, --check-config and SIGHUP (a reload
 * that breaks one is refused). 0, or -1 with err filled. */
int app_config_check(const struct app_config *cfg, char *err, size_t errlen) ML_WUR;

/* ---------------------------------------------------------------- app-relay.c */

/* The relay's link to PostgreSQL: revocations in (from this process's control plane, and from
 * every node through LISTEN/NOTIFY with a catch-up after an outage), usage records out (a
 * bounded queue filled on the workers, written in batches by a thread of its own). */
struct app_relay;

/* What the link did; each value read with a relaxed load (for the stats of #8). */
struct app_relay_counters {
    uint64_t revocations;      /* credentials revoked on this relay (every source) */
    uint64_t revocations_fail; /* the relay could not hold them (the revocation set was full) */
    uint64_t listen_connects;  /* LISTEN connections made (1 + reconnections) */
    uint64_t usage_queued;     /* gauge: records waiting */
    uint64_t usage_written;    /* records in PostgreSQL */
    uint64_t usage_dropped;    /* records lost: queue full, or refused by the database */
    bool listen_up;            /* connected and caught up */
};

/* Creates the link for a node with database.url set, and sets srv's hooks: call before the
 * engine starts. cfg is borrowed until app_relay_free. NULL with err filled. */
struct app_relay *app_relay_new(const struct app_config *cfg, struct turn_server *srv, char *err,
                                size_t errlen) ML_WUR;
/* Starts the LISTEN and usage-writer threads; after the engine started. 0, or -1 with err. */
int app_relay_start(struct app_relay *r, char *err, size_t errlen) ML_WUR;
/* A cp_revoke_fn (arg: the struct app_relay): applies a revoked "<expiry>:<id>" at once. */
void app_relay_revoke(void *arg, const char *username);
void app_relay_counters(const struct app_relay *r, struct app_relay_counters *out);
/* Stops the LISTEN thread: no revocation reaches the relay after it returns. Call before the
 * engine is freed (revocations post to its workers). NULL is fine. */
void app_relay_stop_revocations(struct app_relay *r);
/* Stops both threads, writing what is queued first (for a few seconds at most: what cannot be
 * written is counted as dropped), and frees the link. Call after the engine is freed, so that
 * the allocations it closed are recorded. */
void app_relay_free(struct app_relay *r);

/* ---------------------------------------------------------------- app-fleet.c */

/* This node in the relay registry (fleet.register): every fleet.heartbeat-ms a job on a
 * database pool of its own (one connection; submitted from the main loop, never waiting)
 * writes its URIs, region and load (allocations, relayed packets and bytes a second, CPU) with
 * ml_relay_beat; drain mode is written as draining, and so is an orderly stop. */
struct app_fleet;
struct event_base;
/* Creates the registration and its timer on base (main thread). cfg, srv and engine are
 * borrowed until app_fleet_free. NULL with err filled. */
struct app_fleet *app_fleet_new(const struct app_config *cfg, struct event_base *base,
                                struct turn_server *srv, struct net_engine *engine, char *err,
                                size_t errlen) ML_WUR;
/* Marks the node draining in the registry (waiting a second at most) and frees it: before the
 * engine is freed. NULL is fine. */
void app_fleet_free(struct app_fleet *f);

/* ---------------------------------------------------------------- app-notify.c */

/* The service manager's notify socket ($NOTIFY_SOCKET: systemd's Type=notify). NULL when there
 * is none; every call below takes NULL and then does nothing. Main thread only. */
struct app_notify;
struct app_notify *app_notify_new(void);
/* READY=1 with a STATUS line: start-up finished, or a reload finished. */
void app_notify_ready(struct app_notify *n, const char *status);
/* READY=1 ("Running") once up(arg) is true, polled on base every 50 ms, or after wait_ms
 * without it (the relay runs without the database); at once when up is NULL. 0 or -1. */
typedef bool (*app_notify_up_fn)(void *arg);
int app_notify_ready_when_up(struct app_notify *n, struct event_base *base, app_notify_up_fn up,
                             void *arg, long long wait_ms) ML_WUR;
/* RELOADING=1 with MONOTONIC_USEC (SIGHUP received); follow it with app_notify_ready. */
void app_notify_reloading(struct app_notify *n);
void app_notify_stopping(struct app_notify *n);
/* With $WATCHDOG_USEC set (for this process): a timer on base that pings WATCHDOG=1 every third
 * of the timeout while every worker of engine answers a task posted the round before. engine
 * is borrowed: free n after the engine and before base. 0, or -1 (out of memory). */
int app_notify_watchdog_start(struct app_notify *n, struct event_base *base,
                              struct net_engine *engine) ML_WUR;
void app_notify_free(struct app_notify *n);

#endif
