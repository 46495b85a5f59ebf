/* Signaling's database jobs, through the control plane's pool: opening and resuming a session
 * (the participant's state checked, not only the token's signature; a fresh TURN credential
 * from the join code path), dropping or detaching it, the ADMIN commands that run the REST
 * API's own SQL functions, and the resync after the node lost its LISTEN connection. Work
 * functions run on a database thread and touch only their job; completions run on the lws
 * thread. */
#include "config.h"

#include "control/sig-int.h"

#include <stdlib.h>
#include <string.h>

#define SUBSYS "sig"

static const struct db_stmt st_connect = {
    "sig_connect",
    "SELECT outcome, role, display_name, is_host, conns, roster, chat, cred_username, "
    "cred_expires, revoked FROM ml_sig_connect($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    9};
static const struct db_stmt st_disconnect = {"sig_disconnect", "SELECT ml_sig_disconnect($1, $2)",
                                             2};
static const struct db_stmt st_remove = {
    "sig_remove", "SELECT outcome, meeting_id, revoked FROM ml_remove($1, NULL, $2, $3)", 3};
static const struct db_stmt st_end = {
    "sig_end", "SELECT outcome, meeting_id, revoked FROM ml_end($1, NULL, $2)", 2};
static const struct db_stmt st_resync = {
    "sig_resync", "SELECT session_id, outcome FROM ml_sig_resync($1, $2)", 2};

/* The revoked usernames of a PostgreSQL text[] ("{a,b}"), for the control plane's hook. */
struct revoked {
    char **v;
    size_t n;
};

static void revoked_take(struct revoked *rv, const char *arr)
{
    db_words(arr, &rv->v, &rv->n);
}

/* Hands the revoked credentials to the relay (lws thread), and frees them. */
static void revoked_apply(struct cp *cp, struct revoked *rv)
{
    for (size_t i = 0; i < rv->n; i++) {
        if (cp->revoke && rv->v[i])
            cp->revoke(cp->revoke_arg, rv->v[i]);
        free(rv->v[i]);
    }
    free(rv->v);
    rv->v = NULL;
    rv->n = 0;
}

static bool tuples(PGresult *r)
{
    return r && PQresultStatus(r) == PGRES_TUPLES_OK;
}

/* A statement failed: DB_UNAVAILABLE when the connection broke, else logged. */
static enum db_status failed(PGresult *r, const char *action)
{
    if (!r)
        return DB_UNAVAILABLE;
    const char *state = db_sqlstate(r);
    if (!strncmp(state, "08", 2) || !strcmp(state, "57P01") || !strcmp(state, "57014")) {
        PQclear(r);
        return DB_UNAVAILABLE;
    }
    ML_ERROR(SUBSYS, "%s failed: %s %s", action, state, PQresultErrorMessage(r));
    PQclear(r);
    return DB_FAILED;
}

/* ------------------------------------------------------------------ connect and resume */

struct connect_job {
    struct db_job job; /* first: the pool hands it back */
    struct sig *sig;
    struct sig_sess *s;
    struct sig_room *room;
    bool resume;
    char sid[ML_UUID_STR], mid[ML_UUID_STR], pid[ML_UUID_STR], uid[ML_UUID_STR];
    char node[SIG_NODE_MAX];
    long long max_conns, chat_n, ttl;
    /* output */
    char outcome[32];
    bool admin, host;
    int conns;
    char *name, *roster, *chat, *ice;
    struct revoked revoked;
};

static enum db_status w_connect(struct db_conn *c, struct db_job *job)
{
    struct connect_job *j = (struct connect_job *)job;
    struct cp *cp = j->sig->cp;
    char maxc[24], chatn[24], ttl[24];
    ml_snprintf(maxc, sizeof maxc, "%lld", j->max_conns);
    ml_snprintf(chatn, sizeof chatn, "%lld", j->chat_n);
    ml_snprintf(ttl, sizeof ttl, "%lld", j->ttl);
    const char *p[] = {
        j->sid, j->mid, j->pid, j->uid, j->node, maxc, chatn, ttl, j->resume ? "true" : "false"};
    PGresult *r = db_exec(c, &st_connect, p);
    if (!tuples(r) || PQntuples(r) != 1)
        return failed(r, "opening a signaling session");
    ml_strlcpy(j->outcome, PQgetvalue(r, 0, 0), sizeof j->outcome);
    revoked_take(&j->revoked, PQgetvalue(r, 0, 9));
    if (strcmp(j->outcome, "ok") != 0) {
        PQclear(r);
        return DB_OK;
    }
    j->admin = !strcmp(PQgetvalue(r, 0, 1), "ADMIN");
    j->name = ml_xstrdup(PQgetvalue(r, 0, 2));
    j->host = PQgetvalue(r, 0, 3)[0] == 't';
    j->conns = (int)strtol(PQgetvalue(r, 0, 4), NULL, 10);
    if (!j->resume) {
        j->roster = ml_xstrdup(PQgetvalue(r, 0, 5));
        j->chat = ml_xstrdup(PQgetvalue(r, 0, 6));
        /* the password of the credential the join recorded, as the join computes it */
        const char *cred_user = PQgetvalue(r, 0, 7), *cred_id = strchr(cred_user, ':');
        long long c_exp = strtoll(PQgetvalue(r, 0, 8), NULL, 10);
        char secret[512], user[128], pass[64];
        cp_turn_secret(cp, secret, sizeof secret);
        int rc = cred_id ? turn_rest_credential(secret, cred_id + 1, c_exp, user, sizeof user, pass,
                                                sizeof pass)
                         : -1;
        ml_wipe(secret, sizeof secret);
        if (rc < 0 || strcmp(user, cred_user) != 0) {
            ML_ERROR(SUBSYS, "cannot make the TURN credential of participant %s", j->pid);
            ml_strlcpy(j->outcome, "internal", sizeof j->outcome);
        } else {
            json_t *ice = cp_ice_servers(cp, user, pass);
            j->ice = json_dumps(ice, JSON_COMPACT);
            json_decref(ice);
        }
        ml_wipe(pass, sizeof pass);
    }
    PQclear(r);
    return DB_OK;
}

static void refuse_session(struct sig_sess *s, const char *outcome)
{
    int code;
    const char *reason;
    if (!strcmp(outcome, "too_many")) {
        code = SIG_CLOSE_TOO_MANY;
        reason = sig_close_reason(code);
        ML_LOG_LIMITED(ML_LOG_NOTICE, SUBSYS,
                       "closing %d %s (meeting=%s participant=%s peer=%s): "
                       "signaling.max-connections-per-participant=%lld open already",
                       code, reason, s->room ? s->room->id_s : "-", s->pid_s, s->peer,
                       s->sig->cfg.max_conns_per_participant);
        s->sig->ctr.limit_closes++;
    } else if (!strcmp(outcome, "resume_unknown")) {
        code = SIG_CLOSE_RESUME;
        reason = sig_close_reason(code);
    } else {
        /* ml_sig_connect's not_found: the token's participant is not in its meeting */
        enum http_err e = http_err_outcome(outcome, HTTP_E_NO_PARTICIPANT);
        code = http_err_ws_code(e);
        reason = http_err_code(e);
        ML_LOG_LIMITED(ML_LOG_INFO, SUBSYS,
                       "signaling connection refused (meeting=%s participant=%s peer=%s): %s",
                       s->room ? s->room->id_s : "-", s->pid_s, s->peer, reason);
    }
    sig_sess_close(s, code, reason, false);
    s->state = SIG_S_LIVE; /* no job in flight: its close ends it */
}

/* The joined message: who one is, the roster, the chat history and fresh iceServers, which the
 * database answered already as JSON text (spliced, not parsed again). */
static struct sig_frame *joined_frame(struct sig_sess *s, struct connect_job *j, uint64_t seq)
{
    struct ml_buf b = ML_BUF_INIT(SIZE_MAX); /* the database's answer bounds it */
    char rt[SIG_RESUME_TOKEN_MAX], hex[SIG_TOKEN_HEX + 1];
    ml_hex_encode(s->tok.key, 16, hex);
    ml_snprintf(rt, sizeof rt, "%s.%s", s->sig->node, hex);
    char *limits = json_dumps(s->sig->limits, JSON_COMPACT);
    (void)ml_buf_printf(
        &b,
        "{\"type\":\"joined\",\"seq\":%llu,\"meeting_id\":\"%s\",\"participant_id\":\"%s\","
        "\"session_id\":\"%s\",\"node\":\"%s\",\"role\":\"%s\",\"resume_token\":\"%s\","
        "\"roster\":%s,\"chat\":%s,\"iceServers\":%s,\"limits\":%s}",
        (unsigned long long)seq, j->mid, j->pid, j->sid, s->sig->node,
        j->admin ? "ADMIN" : "PARTICIPANT", rt, j->roster, j->chat, j->ice ? j->ice : "[]",
        limits ? limits : "{}");
    free(limits);
    struct sig_frame *f = sig_frame_new(0, b.p, b.len);
    ml_buf_free(&b);
    return f;
}

static void connect_opened(struct sig_sess *s, struct connect_job *j)
{
    struct sig *sig = s->sig;
    struct sig_room *r = s->room;
    json_t *roster = json_loads(j->roster, 0, NULL);
    size_t i;
    json_t *e;
    json_array_foreach(roster, i, e) sig_room_member_set(r, e);
    json_decref(roster);
    struct sig_member *me = sig_room_member(r, s->pid);
    if (me) {
        me->admin = j->admin;
        me->online = true;
    }
    /* joined answers for the meeting as it was at join_seq: what came after is queued */
    s->first = joined_frame(s, j, s->join_seq);
    s->state = SIG_S_LIVE;
    s->hold = false;
    s->opened = true;
    s->tokened = true;
    sig_htab_put(&sig->by_token, &s->tok);
    lws_callback_on_writable(s->wsi);
    ML_INFO(SUBSYS, "session opened (meeting=%s participant=%s session=%s peer=%s node=%s)",
            r->id_s, s->pid_s, s->sid_s, s->peer, sig->node);
    if (j->conns == 1 && me) { /* the participant's first session anywhere: it is online */
        json_t *o = ml_nonnull(json_pack("{s:s,s:o}", "type", "participant-joined", "participant",
                                         sig_member_json(me)));
        char *t = ml_nonnull(json_dumps(o, JSON_COMPACT));
        json_decref(o);
        sig_room_send_text(r, t, strlen(t), NULL, s->pid);
        if (sig_bus_nodes(sig->bus) > 1)
            sig_bus_record(sig->bus, 'P', r, NULL, s->pid, t, strlen(t));
        free(t);
    }
}

static void connect_resumed(struct sig_sess *s, struct connect_job *j)
{
    struct sig *sig = s->sig;
    struct sig_room *r = s->room;
    ML_UNUSED(j);
    /* everything since resume_from must still be in the replay buffer */
    uint64_t first = sig_ring_first_seq(&r->ring);
    if (s->resume_from < r->seq && (r->ring.n == 0 || first > s->resume_from + 1)) {
        ML_LOG_LIMITED(ML_LOG_NOTICE, SUBSYS,
                       "resume refused (meeting=%s participant=%s session=%s): messages %llu to "
                       "%llu missed, the replay buffer starts at %llu",
                       r->id_s, s->pid_s, s->sid_s, (unsigned long long)s->resume_from + 1,
                       (unsigned long long)r->seq, (unsigned long long)first);
        sig_sess_close(s, SIG_CLOSE_RESUME, NULL, false);
        s->state = SIG_S_LIVE; /* no job in flight: its close ends it */
        return;
    }
    unsigned replayed = 0;
    for (size_t i = 0; i < r->ring.n; i++) {
        struct sig_frame *f = sig_ring_at(&r->ring, i);
        if (f->seq > s->resume_from && sig_frame_for(f, s->pid)) {
            sig_sess_queue(s, f);
            replayed++;
        }
    }
    char head[160];
    size_t n =
        ml_snprintf(head, sizeof head,
                    "{\"type\":\"resumed\",\"seq\":%llu,\"session_id\":\"%s\",\"replayed\":%u}",
                    (unsigned long long)r->seq, s->sid_s, replayed);
    s->first = sig_frame_new(0, head, n);
    s->state = SIG_S_LIVE;
    s->hold = false;
    sig->ctr.resumes++;
    lws_callback_on_writable(s->wsi);
    ML_INFO(SUBSYS,
            "session resumed (meeting=%s participant=%s session=%s peer=%s): %u messages "
            "replayed from %llu",
            r->id_s, s->pid_s, s->sid_s, s->peer, replayed, (unsigned long long)s->resume_from + 1);
}

static void connect_done(struct db_job *job)
{
    struct connect_job *j = (struct connect_job *)job;
    struct sig *sig = j->sig;
    struct sig_sess *s = j->s;
    revoked_apply(sig->cp, &j->revoked); /* a meeting found lapsed was closed on the way */
    if (job->status == DB_UNAVAILABLE)
        ml_strlcpy(j->outcome, "unavailable", sizeof j->outcome);
    bool ok = !strcmp(j->outcome, "ok");
    if (ok && !j->resume)
        s->in_db = true;
    if (sig->stopping || s->ended) {
        if (s->gone || !s->wsi)
            sig_sess_end(s, false);
    } else if (!j->resume) {
        if (s->gone)
            sig_sess_end(s, true); /* the client left while we checked */
        else if (s->close_code)
            ; /* an event closed it meanwhile */
        else if (!ok)
            refuse_session(s, j->outcome);
        else
            connect_opened(s, j);
    } else if (!s->wsi) { /* the resuming connection dropped meanwhile */
        if (s->gone || !ok) {
            sig_sess_end(s, true);
        } else {
            s->state = SIG_S_DETACHED;
            sig_db_disconnect(s, s->room, true);
        }
    } else if (s->close_code) {
        ; /* an event closed it meanwhile */
    } else if (!ok) {
        refuse_session(s, j->outcome);
    } else {
        connect_resumed(s, j);
    }
    sig_room_unref(j->room);
    sig_sess_unref(s);
    free(j->name);
    free(j->roster);
    free(j->chat);
    free(j->ice);
    free(j);
}

void sig_db_connect(struct sig_sess *s, const uint8_t mid[16], bool resume)
{
    struct sig *sig = s->sig;
    struct connect_job *j = ml_xcalloc(1, sizeof *j);
    j->sig = sig;
    j->s = s;
    j->room = s->room;
    j->resume = resume;
    memcpy(j->sid, s->sid_s, sizeof j->sid);
    ml_uuid_format(mid, j->mid);
    memcpy(j->pid, s->pid_s, sizeof j->pid);
    memcpy(j->uid, s->uid_s, sizeof j->uid);
    ml_strlcpy(j->node, sig->node, sizeof j->node);
    j->max_conns = sig->cfg.max_conns_per_participant;
    j->chat_n = sig->cfg.chat_history;
    j->ttl = sig->cp->cfg.credential_ttl_s;
    j->job.work = w_connect;
    j->job.done = connect_done;
    sig_sess_ref(s);
    sig_room_ref(j->room);
    if (!sig->cp->pool || db_submit(sig->cp->pool, &j->job) < 0) {
        j->job.status = DB_UNAVAILABLE;
        connect_done(&j->job);
    }
}

/* ------------------------------------------------------------------ disconnect */

struct disc_job {
    struct db_job job;
    struct sig *sig;
    struct sig_sess *s;
    struct sig_room *room;
    bool detach;
    char sid[ML_UUID_STR];
    int conns;
};

static enum db_status w_disconnect(struct db_conn *c, struct db_job *job)
{
    struct disc_job *j = (struct disc_job *)job;
    const char *p[] = {j->sid, j->detach ? "true" : "false"};
    PGresult *r = db_exec(c, &st_disconnect, p);
    if (!tuples(r) || PQntuples(r) != 1)
        return failed(r, "closing a signaling session");
    j->conns = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return DB_OK;
}

static void disconnect_done(struct db_job *job)
{
    struct disc_job *j = (struct disc_job *)job;
    struct sig *sig = j->sig;
    if (job->status == DB_OK && !j->detach && j->conns == 0 && !sig->stopping) {
        /* the participant's last session anywhere: it is offline, here and on other nodes */
        uint8_t mid[16];
        memcpy(mid, j->room->node.key, 16);
        struct sig_member *m = sig_room_member(j->room, j->s->pid);
        if (m && m->online) {
            sig_on_offline(sig, mid, j->s->pid);
            if (sig_bus_nodes(sig->bus) > 1) {
                char body[200];
                size_t n = ml_snprintf(body, sizeof body,
                                       "{\"type\":\"participant-left\",\"participant_id\":\"%s\","
                                       "\"reason\":\"disconnected\"}",
                                       j->s->pid_s);
                sig_bus_record(sig->bus, 'P', j->room, NULL, j->s->pid, body, n);
            }
        }
    } else if (job->status != DB_OK && !sig->stopping) {
        /* the heartbeat sweep of this node's rows, or a resync, will set it right */
        ML_LOG_LIMITED(ML_LOG_WARN, SUBSYS, "session %s: its record was not updated (%s)", j->sid,
                       job->status == DB_UNAVAILABLE ? "database unavailable" : "failed");
    }
    sig_room_unref(j->room);
    sig_sess_unref(j->s);
    free(j);
}

void sig_db_disconnect(struct sig_sess *s, struct sig_room *r, bool detach)
{
    struct sig *sig = s->sig;
    struct disc_job *j = ml_xcalloc(1, sizeof *j);
    j->sig = sig;
    j->s = s;
    j->room = r;
    j->detach = detach;
    memcpy(j->sid, s->sid_s, sizeof j->sid);
    j->job.work = w_disconnect;
    j->job.done = disconnect_done;
    sig_sess_ref(s);
    sig_room_ref(r);
    if (!sig->cp->pool || db_submit(sig->cp->pool, &j->job) < 0) {
        j->job.status = DB_UNAVAILABLE;
        disconnect_done(&j->job);
    }
}

/* ------------------------------------------------------------------ ADMIN commands */

struct cmd_job {
    struct db_job job;
    struct sig *sig;
    struct sig_sess *s;
    enum sig_mkind kind;
    json_t *id;
    char mid[ML_UUID_STR], actor[ML_UUID_STR], target[ML_UUID_STR];
    char outcome[32];
    struct revoked revoked;
};

static enum db_status w_command(struct db_conn *c, struct db_job *job)
{
    struct cmd_job *j = (struct cmd_job *)job;
    const char *p[] = {j->mid, j->actor, j->target};
    PGresult *r = db_exec(c, j->kind == SIG_M_REMOVE ? &st_remove : &st_end, p);
    if (!tuples(r) || PQntuples(r) != 1)
        return failed(r, j->kind == SIG_M_REMOVE ? "remove participant" : "end meeting");
    ml_strlcpy(j->outcome, PQgetvalue(r, 0, 0), sizeof j->outcome);
    revoked_take(&j->revoked, PQgetvalue(r, 0, PQnfields(r) - 1));
    PQclear(r);
    return DB_OK;
}

static void command_done(struct db_job *job)
{
    struct cmd_job *j = (struct cmd_job *)job;
    struct sig *sig = j->sig;
    struct sig_sess *s = j->s;
    s->cmds--;
    if (s->wsi) /* a close that waited for this answer may go now */
        lws_callback_on_writable(s->wsi);
    /* the same revocation hook as the REST API's; the events reach every node, this one
     * included, by the triggers' NOTIFY */
    revoked_apply(sig->cp, &j->revoked);
    if (!sig->stopping)
        cp_cache_invalidate(sig->cp, j->mid);
    if (!sig->stopping && s->state == SIG_S_LIVE && s->wsi && (!s->close_code || s->flushing)) {
        if (job->status == DB_UNAVAILABLE) {
            sig_sess_error(s, j->id, HTTP_E_UNAVAILABLE, NULL);
        } else if (job->status != DB_OK) {
            sig_sess_error(s, j->id, HTTP_E_INTERNAL, NULL);
        } else if (strcmp(j->outcome, "ok") != 0) {
            enum http_err e = http_err_outcome(j->outcome, HTTP_E_NO_MEETING);
            sig_sess_error(s, j->id, e, NULL);
        } else {
            json_t *o = ml_nonnull(json_pack("{s:s,s:s}", "type", "ack", "of",
                                             j->kind == SIG_M_REMOVE ? "remove" : "end"));
            if (j->id)
                json_object_set(o, "id", j->id);
            if (j->kind == SIG_M_REMOVE)
                json_object_set_new(o, "participant_id", json_string(j->target));
            sig_sess_reply(s, o);
            json_decref(o);
        }
    }
    if (job->status == DB_OK && !strcmp(j->outcome, "ok"))
        ML_NOTICE(SUBSYS, "%s by participant %s over signaling (meeting=%s%s%s)",
                  j->kind == SIG_M_REMOVE ? "participant removed" : "meeting ended", s->pid_s,
                  j->mid, j->kind == SIG_M_REMOVE ? " participant=" : "", j->target);
    json_decref(j->id);
    sig_sess_unref(s);
    free(j);
}

void sig_db_command(struct sig_sess *s, enum sig_mkind kind, json_t *id, const char *target)
{
    struct sig *sig = s->sig;
    struct cmd_job *j = ml_xcalloc(1, sizeof *j);
    j->sig = sig;
    j->s = s;
    j->kind = kind;
    j->id = id ? json_deep_copy(id) : NULL;
    ml_strlcpy(j->mid, s->room->id_s, sizeof j->mid);
    ml_strlcpy(j->actor, s->uid_s, sizeof j->actor);
    if (target)
        ml_strlcpy(j->target, target, sizeof j->target);
    j->job.work = w_command;
    j->job.done = command_done;
    sig_sess_ref(s);
    s->cmds++;
    if (!sig->cp->pool || db_submit(sig->cp->pool, &j->job) < 0) {
        j->job.status = DB_UNAVAILABLE;
        command_done(&j->job);
    }
}

/* ------------------------------------------------------------------ resync */

struct resync_job {
    struct db_job job;
    struct sig *sig;
    char node[SIG_NODE_MAX];
    char *sessions; /* JSON */
    char **sid, **outcome;
    size_t n;
};

static enum db_status w_resync(struct db_conn *c, struct db_job *job)
{
    struct resync_job *j = (struct resync_job *)job;
    const char *p[] = {j->node, j->sessions};
    PGresult *r = db_exec(c, &st_resync, p);
    if (!tuples(r))
        return failed(r, "signaling resync");
    j->n = (size_t)PQntuples(r);
    j->sid = ml_xcalloc(j->n + 1, sizeof *j->sid);
    j->outcome = ml_xcalloc(j->n + 1, sizeof *j->outcome);
    for (size_t i = 0; i < j->n; i++) {
        j->sid[i] = ml_xstrdup(PQgetvalue(r, (int)i, 0));
        j->outcome[i] = ml_xstrdup(PQgetvalue(r, (int)i, 1));
    }
    PQclear(r);
    return DB_OK;
}

static void resync_done(struct db_job *job)
{
    struct resync_job *j = (struct resync_job *)job;
    struct sig *sig = j->sig;
    if (job->status != DB_OK && !sig->stopping)
        ML_WARN(SUBSYS, "signaling resync failed; the next reconnection tries again");
    for (size_t i = 0; i < j->n && !sig->stopping; i++) {
        uint8_t sid[16];
        if (!ml_uuid_parse(j->sid[i], sid))
            continue;
        struct sig_sess *s = sig->all;
        while (s && memcmp(s->sid, sid, 16))
            s = s->anext;
        if (!s || !s->room)
            continue;
        uint8_t mid[16], pid[16];
        memcpy(mid, s->room->node.key, 16);
        memcpy(pid, s->pid, 16);
        const char *o = j->outcome[i];
        ML_NOTICE(SUBSYS, "resync: session %s (meeting=%s participant=%s) ends: %s", j->sid[i],
                  s->room->id_s, s->pid_s, o);
        /* what this node missed while it could not listen, told as it would have been */
        if (!strcmp(o, "removed") || !strcmp(o, "not_joined"))
            sig_on_member_left(sig, mid, pid, !strcmp(o, "removed") ? "removed" : "left");
        else if (!strcmp(o, "ended") || !strcmp(o, "expired"))
            sig_on_meeting_ended(sig, mid, o);
        else if (s->wsi)
            sig_sess_close(s, http_err_ws_code(HTTP_E_NO_PARTICIPANT),
                           http_err_code(HTTP_E_NO_PARTICIPANT), false);
    }
    for (size_t i = 0; i < j->n; i++) {
        free(j->sid[i]);
        free(j->outcome[i]);
    }
    free(j->sid);
    free(j->outcome);
    free(j->sessions);
    free(j);
}

void sig_db_resync(struct sig *sig)
{
    json_t *arr = json_array();
    for (struct sig_sess *s = sig->all; s; s = s->anext) {
        if (!s->in_db || !s->room || s->state == SIG_S_CLOSED)
            continue;
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:b}", "s", s->sid_s, "m", s->room->id_s,
                                             "p", s->pid_s, "d", s->state == SIG_S_DETACHED));
    }
    struct resync_job *j = ml_xcalloc(1, sizeof *j);
    j->sig = sig;
    ml_strlcpy(j->node, sig->node, sizeof j->node);
    j->sessions = ml_nonnull(json_dumps(arr, JSON_COMPACT));
    json_decref(arr);
    j->job.work = w_resync;
    j->job.done = resync_done;
    if (!sig->cp->pool || db_submit(sig->cp->pool, &j->job) < 0) {
        j->job.status = DB_UNAVAILABLE;
        resync_done(&j->job);
    }
}
