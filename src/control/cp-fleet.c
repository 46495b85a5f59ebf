/* A fleet of relay nodes seen from the control plane (issue #16, docs/fleet.md): which relay a
 * participant's iceServers name (placement, with one SQL function in the connection of the job
 * that needs it), and failover: every fleet.heartbeat-ms the node looks for the participants of
 * its own signaling sessions whose relay died or drains, places them again and pushes them the
 * new iceServers over signaling. The relays' heartbeats are the app's (src/app/app-fleet.c). */
#include "config.h"

#include "control/cp-int.h"

#include <stdlib.h>
#include <string.h>

#define SUBSYS "fleet"

static const char *const placement_names[] = {"static", "meeting", "least-loaded"};

/* ------------------------------------------------------------------ statements */

enum { PLACE_NODE, PLACE_URIS, PLACE_FALLBACK, PLACE_FALLBACK_URIS, PLACE__COLS };
static const struct db_stmt st_place = {
    "fleet_place",
    "SELECT primary_node, array_to_json(primary_uris)::text, fallback_node, "
    "array_to_json(fallback_uris)::text FROM ml_relay_place($1, $2, $3, $4, $5)",
    5, PLACE__COLS};

enum {
    STRAND_MEETING,
    STRAND_PARTICIPANT,
    STRAND_OLD,
    STRAND_REASON,
    STRAND_CRED_USER,
    STRAND_CRED_EXPIRES,
    STRAND__COLS
};
static const struct db_stmt st_stranded = {
    "fleet_stranded",
    "SELECT meeting_id, participant_id, old_node, reason, cred_username, cred_expires "
    "FROM ml_relay_stranded($1, $2, $3)",
    3, STRAND__COLS};

/* ------------------------------------------------------------------ placement */

void cp_set_fleet(struct cp *cp, const struct cp_fleet *f)
{
    free((char *)cp->fleet.region);
    cp->fleet = *f;
    cp->fleet.region = ml_xstrdup(f->region ? f->region : "");
    if (cp->fleet.placement < CP_PLACE_STATIC || cp->fleet.placement > CP_PLACE_LEAST_LOADED)
        cp->fleet.placement = CP_PLACE_STATIC;
}

/* A JSON array of URIs from the database's text (array_to_json), or NULL. Any relay that can
 * write the registry writes them: 1 to CP_ICE_URIS_MAX URIs that pass cp_ice_uri_ok, or the
 * node is passed over (NULL, logged) rather than handed to browsers. */
static json_t *uris_of(const PGresult *r, int col)
{
    if (PQgetisnull(r, 0, col))
        return NULL;
    json_t *a = json_loads(PQgetvalue(r, 0, col), 0, NULL);
    bool ok = json_is_array(a) && json_array_size(a) && json_array_size(a) <= CP_ICE_URIS_MAX;
    size_t i;
    json_t *u;
    json_array_foreach(a, i, u)
    {
        ok = ok && json_is_string(u) && cp_ice_uri_ok(json_string_value(u), json_string_length(u));
    }
    if (!ok) {
        ML_LOG_LIMITED(ML_LOG_WARN, SUBSYS,
                       "a relay node's registered URIs are not 1 to %d STUN/TURN URIs: passed "
                       "over",
                       CP_ICE_URIS_MAX);
        json_decref(a);
        return NULL;
    }
    return a;
}

json_t *cp_fleet_place(struct cp *cp, struct db_conn *c, const char *mid, const char *pid,
                       const char *user, const char *pass)
{
    if (cp->fleet.placement == CP_PLACE_STATIC || !c || !mid)
        return NULL;
    char timeout[24];
    ml_snprintf(timeout, sizeof timeout, "%lld", cp->fleet.node_timeout_ms);
    const char *p[] = {mid, pid, placement_names[cp->fleet.placement], cp->fleet.region, timeout};
    PGresult *r = db_exec(c, &st_place, p);
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
        ML_LOG_LIMITED(ML_LOG_WARN, SUBSYS,
                       "placement of participant %s (meeting %s) failed, static URIs given: %s",
                       pid ? pid : "-", mid, r ? PQresultErrorMessage(r) : "connection lost");
        PQclear(r);
        return NULL;
    }
    json_t *uris = PQntuples(r) == 1 ? uris_of(r, PLACE_URIS) : NULL;
    if (!uris) { /* no live relay node: control.turn-uris, as before the fleet */
        ML_LOG_LIMITED(ML_LOG_WARN, SUBSYS,
                       "no live relay node%s%s for meeting %s: static URIs given",
                       cp->fleet.region[0] ? " in region " : "", cp->fleet.region, mid);
        PQclear(r);
        return NULL;
    }
    json_t *fb_uris = uris_of(r, PLACE_FALLBACK_URIS);
    json_t *fallback = json_null();
    if (fb_uris && !PQgetisnull(r, 0, PLACE_FALLBACK)) {
        fallback = json_pack("{s:s,s:o}", "node", PQgetvalue(r, 0, PLACE_FALLBACK), "iceServers",
                             cp_ice_from(fb_uris, user, pass));
    }
    json_decref(fb_uris);
    json_t *relay =
        json_pack("{s:s,s:s,s:o,s:o}", "placement", placement_names[cp->fleet.placement], "node",
                  PQgetvalue(r, 0, PLACE_NODE), "uris", uris, "fallback", fallback);
    PQclear(r);
    return relay;
}

const json_t *cp_fleet_uris(const struct cp *cp, const json_t *relay)
{
    const json_t *u = relay ? json_object_get(relay, "uris") : NULL;
    return u ? u : cp->turn_uris;
}

/* ------------------------------------------------------------------ failover */

/* One participant to move: what its sessions are told. */
struct move {
    char mid[ML_UUID_STR], pid[ML_UUID_STR];
    char reason[16];
    char old_node[72], new_node[72];
    char *ice, *relay; /* JSON text */
    bool told;         /* a session of it on this node got the message */
};

struct strand_job {
    struct db_job job; /* first: the pool hands it back */
    struct cp *cp;
    char node[72]; /* this node's signaling id */
    struct move *v;
    size_t n;
};

static enum db_status w_stranded(struct db_conn *c, struct db_job *job)
{
    struct strand_job *j = (struct strand_job *)job;
    struct cp *cp = j->cp;
    char timeout[24], limit[24];
    ml_snprintf(timeout, sizeof timeout, "%lld", cp->fleet.node_timeout_ms);
    ml_snprintf(limit, sizeof limit, "%lld", cp->fleet.push_max);
    const char *p[] = {j->node, timeout, limit};
    PGresult *r = db_exec(c, &st_stranded, p);
    if (!cp_tuples(r))
        return cp_sql_error(r, "looking for participants of a lost relay", "fleet");
    int rows = PQntuples(r);
    j->v = ml_xcalloc((size_t)rows + 1, sizeof *j->v);
    for (int i = 0; i < rows; i++) {
        struct move *m = &j->v[j->n];
        ml_strlcpy(m->mid, PQgetvalue(r, i, STRAND_MEETING), sizeof m->mid);
        ml_strlcpy(m->pid, PQgetvalue(r, i, STRAND_PARTICIPANT), sizeof m->pid);
        ml_strlcpy(m->reason, PQgetvalue(r, i, STRAND_REASON), sizeof m->reason);
        ml_strlcpy(m->old_node, PQgetvalue(r, i, STRAND_OLD), sizeof m->old_node);
        /* placed again (the participant's row then names the new node) with its credential */
        m->ice = cp_ice_json(cp, c, m->mid, m->pid, PQgetvalue(r, i, STRAND_CRED_USER),
                             strtoll(PQgetvalue(r, i, STRAND_CRED_EXPIRES), NULL, 10), &m->relay);
        if (!m->ice || !m->relay) { /* no live node now: tried again at the next check */
            free(m->ice);
            free(m->relay);
            m->ice = m->relay = NULL;
            continue;
        }
        json_t *rel = json_loads(m->relay, 0, NULL);
        const char *node = json_string_value(json_object_get(rel, "node"));
        ml_strlcpy(m->new_node, node ? node : "", sizeof m->new_node);
        json_decref(rel);
        j->n++;
    }
    PQclear(r);
    return DB_OK;
}

static void stranded_done(struct db_job *job)
{
    struct strand_job *j = (struct strand_job *)job;
    struct cp *cp = j->cp;
    cp->fleet_running = false;
    /* one log line per relay that went away (the rows come ordered by meeting, not relay) */
    for (size_t i = 0; i < j->n; i++) {
        struct move *m = &j->v[i];
        m->told = cp->sig && sig_push_ice(cp->sig, m->mid, m->pid, m->ice, m->relay, m->reason);
        ML_DEBUG(SUBSYS, "participant %s (meeting %s) moves from relay %s to %s%s", m->pid, m->mid,
                 m->old_node, m->new_node, m->told ? "" : " (no session to tell)");
    }
    for (size_t i = 0; i < j->n; i++) {
        if (!j->v[i].ice)
            continue; /* counted with an earlier row of its relay */
        const char *old = j->v[i].old_node;
        size_t moved = 0, told = 0;
        for (size_t k = i; k < j->n; k++) {
            struct move *m = &j->v[k];
            if (!m->ice || strcmp(m->old_node, old) != 0)
                continue;
            moved++;
            told += m->told;
            if (k != i) {
                free(m->ice);
                free(m->relay);
                m->ice = m->relay = NULL;
            }
        }
        ML_NOTICE(SUBSYS,
                  "relay %s is %s: %zu participant%s of this node's sessions placed on other "
                  "relays, %zu told over signaling",
                  old, j->v[i].reason, moved, moved == 1 ? "" : "s", told);
        free(j->v[i].ice);
        free(j->v[i].relay);
        j->v[i].ice = j->v[i].relay = NULL;
    }
    free(j->v);
    free(j);
}

static void fleet_check(struct cp *cp)
{
    if (cp->fleet_running || !cp->sig || !cp->pool || !db_pool_up(cp->pool))
        return;
    struct strand_job *j = ml_xcalloc(1, sizeof *j);
    j->cp = cp;
    ml_strlcpy(j->node, sig_node_id(cp->sig), sizeof j->node);
    j->job.work = w_stranded;
    j->job.done = stranded_done;
    if (db_submit(cp->pool, &j->job) < 0) {
        free(j);
        return;
    }
    cp->fleet_running = true;
}

long long cp_tick_ms(const struct cp *cp)
{
    long long sweep = cp->cfg.sweep_interval_s * 1000;
    if (cp->fleet.placement != CP_PLACE_STATIC && cp->fleet.check_ms < sweep)
        return cp->fleet.check_ms;
    return sweep;
}

void cp_tick(void *arg)
{
    struct cp *cp = arg;
    int64_t now = ml_now_ms();
    /* the first tick sweeps at once, as before; later ones when the interval has passed (the
     * tick runs at the shorter of the two intervals) */
    if (!cp->sweep_last_ms || now - cp->sweep_last_ms >= cp->cfg.sweep_interval_s * 1000 - 50) {
        cp->sweep_last_ms = now;
        cp_sweep(cp);
    }
    if (cp->fleet.placement != CP_PLACE_STATIC &&
        (!cp->fleet_last_ms || now - cp->fleet_last_ms >= cp->fleet.check_ms - 50)) {
        cp->fleet_last_ms = now;
        fleet_check(cp);
    }
}
