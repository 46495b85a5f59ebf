/* Signaling's life within a node (created by the control plane, started on its HTTP server,
 * quiesced, stopped and freed around that server's stop), the WebSocket protocol it declares,
 * and what its files share: revoked credentials handed to the control plane, failed
 * statements. */
#include "config.h"

#include "signal/sig-int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SUBSYS "sig"

/* ------------------------------------------------------------------ shared */

void sig_revoked_take(struct sig_revoked *rv, const char *arr)
{
    db_words(arr, &rv->v, &rv->n);
}

void sig_revoked_apply(struct sig *sig, struct sig_revoked *rv)
{
    for (size_t i = 0; i < rv->n; i++) {
        if (sig->deps.revoke && rv->v[i])
            sig->deps.revoke(sig->deps.arg, rv->v[i]);
        free(rv->v[i]);
    }
    free(rv->v);
    rv->v = NULL;
    rv->n = 0;
}

bool sig_tuples(const PGresult *r)
{
    return r && PQresultStatus(r) == PGRES_TUPLES_OK;
}

enum db_status sig_sql_failed(PGresult *r, const char *action)
{
    if (!r)
        return DB_UNAVAILABLE;
    if (db_lost(r)) {
        PQclear(r);
        return DB_UNAVAILABLE;
    }
    ML_ERROR(SUBSYS, "%s failed: %s %s", action, db_sqlstate(r), PQresultErrorMessage(r));
    PQclear(r);
    return DB_FAILED;
}

/* ------------------------------------------------------------------ life */

struct sig *sig_new(const struct sig_config *cfg, const struct db_config *db,
                    const struct sig_deps *deps, char *err, size_t errlen)
{
    if (sig_config_check(cfg, err, errlen) < 0)
        return NULL;
    struct sig *sig = ml_xcalloc(1, sizeof *sig);
    sig->deps = *deps;
    sig->cfg = *cfg;
    sig->cfg.node_id = NULL;
    sig->db = *db;
    sig->db.url = db->url ? ml_xstrdup(db->url) : NULL;
    sig->db.migrations_dir = NULL;
    if (cfg->node_id) {
        ml_strlcpy(sig->node, cfg->node_id, sizeof sig->node);
    } else {
        uint8_t r[6];
        char hex[13];
        ml_random(r, sizeof r);
        ml_hex_encode(r, sizeof r, hex);
        ml_snprintf(sig->node, sizeof sig->node, "n-%s", hex);
    }
    sig_htab_init(&sig->rooms);
    sig_htab_init(&sig->by_token);
    sig->limits =
        json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "max_message", cfg->max_message, "rate", cfg->rate,
                  "burst", cfg->burst, "ping_interval_s", cfg->ping_interval_s, "idle_timeout_s",
                  cfg->idle_timeout_s, "resume_window_s", cfg->resume_window_s);
    sig->bus = sig_bus_new(sig, err, errlen);
    if (!sig->bus) {
        sig_free(sig);
        return NULL;
    }
    return sig;
}

void sig_ws_protocol(struct sig *sig, struct http_ws *out)
{
    memset(out, 0, sizeof *out);
    out->name = SIG_PROTOCOL;
    out->callback = sig_ws_callback;
    out->pss_size = SIG_PSS_SIZE;
    out->rx_buffer_size = SIG_RX_BUFFER;
    out->is_default = true; /* browsers' new WebSocket(url) names no protocol */
    out->arg = sig;         /* NULL: every connection is refused (sig-ws.c) */
    out->tick = sig ? sig_tick : NULL;
    out->tick_ms = 1000;
}

int sig_start(struct sig *sig, struct http_server *srv, char *err, size_t errlen)
{
    if (!sig)
        return 0;
    sig->http = srv;
    if (sig_bus_start(sig->bus, err, errlen) < 0)
        return -1;
    ML_NOTICE(SUBSYS, "signaling on %s as node %s", SIG_PATH, sig->node);
    return 0;
}

const char *sig_node_id(const struct sig *sig)
{
    return sig ? sig->node : "";
}

uint64_t sig_ws_open(const struct sig *sig)
{
    return sig ? __atomic_load_n(&sig->ws_open, __ATOMIC_RELAXED) : 0;
}

/* Every code this server sends (sig-int.h's, and 4000 + the HTTP status of each error the
 * signaling answers with), the client's normal close and 1006 for a lost connection: a fixed
 * label set, whatever clients send. */
const int sig_close_codes[SIG_CLOSE_NCODES] = {
    1000, 1001, 1006, 1011, 4001, 4002, 4003, 4004, 4005, 4006, 4007, 4008,
    4400, 4401, 4403, 4404, 4409, 4410, 4413, 4422, 4429, 4500, 4503,
};

void sig_close_counts(const struct sig *sig, uint64_t out[SIG_CLOSE_NCODES + 1])
{
    for (size_t i = 0; i <= SIG_CLOSE_NCODES; i++)
        out[i] = sig ? __atomic_load_n(&sig->closes[i], __ATOMIC_RELAXED) : 0;
}

void sig_quiesce(struct sig *sig)
{
    if (!sig || !sig->http)
        return;
    __atomic_store_n(&sig->going_away, true, __ATOMIC_RELEASE);
    /* the service thread closes them; their close frames go out within a few loop rounds */
    for (int i = 0; i < 50 && sig_ws_open(sig) > 0; i++) {
        http_server_wake(sig->http);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

void sig_stop(struct sig *sig)
{
    if (!sig || sig->stopping)
        return;
    sig->stopping = true;
    sig_bus_stop(sig->bus);
}

void sig_free(struct sig *sig)
{
    if (!sig)
        return;
    sig->stopping = true;
    /* every session let go when the server closed its connections and the pool drained;
     * what is left is detached sessions and the rooms they hold, and claims awaited */
    for (struct sig_sess *s = sig->all, *next; s; s = next) {
        next = s->anext;
        if (s->claim)
            sig_sess_claim_done(s);
    }
    for (struct sig_sess *s = sig->all, *next; s; s = next) {
        next = s->anext;
        sig_sess_end(s, false);
    }
    sig_bus_free(sig->bus);
    sig_htab_free(&sig->rooms);
    sig_htab_free(&sig->by_token);
    json_decref(sig->limits);
    free(sig->db.url);
    free(sig);
}
