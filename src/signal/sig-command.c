/* What each client message does: relayed to one participant (offer, answer, candidate,
 * ice-restart, mute-request), to everyone (chat, stored; media states, stored), answered
 * (ping), or an ADMIN command (remove, end) run through the REST API's own SQL functions on a
 * database thread, answered when it completes. */
#include "config.h"

#include "signal/sig-int.h"

#include <stdlib.h>
#include <string.h>

#define SUBSYS "sig"

/* The REST API's own functions, with the same row: the outcome, the meeting, the revoked
 * usernames (db_stmt.ncols). */
enum { CMD_OUTCOME, CMD_MEETING, CMD_REVOKED, CMD__COLS };
static const struct db_stmt st_remove = {
    "sig_remove", "SELECT outcome, meeting_id, revoked FROM ml_remove($1, NULL, $2, $3)", 3,
    CMD__COLS};
static const struct db_stmt st_end = {
    "sig_end", "SELECT outcome, meeting_id, revoked FROM ml_end($1, NULL, $2)", 2, CMD__COLS};
/* A hand raised or lowered (sql/012_meeting_features.sql): the outcome word; the event comes
 * back by the trigger's NOTIFY to every node. */
static const struct db_stmt st_hand = {"sig_hand", "SELECT ml_sig_hand($1, $2, $3)", 3, 1};

/* Sends body to the meeting here and, when other nodes serve it too, to them. */
static void emit(struct sig_sess *s, char kind, json_t *body, const uint8_t *to,
                 const uint8_t *except)
{
    char *t = ml_nonnull(json_dumps(body, JSON_COMPACT));
    size_t n = strlen(t);
    sig_room_send_text(s->room, t, n, to, except);
    /* to one participant whose sessions are all here: nothing for the other nodes */
    if (sig_bus_nodes(s->sig->bus) > 1 && !(to && sig_room_exclusive(s->room, to)))
        sig_bus_record(s->sig->bus, kind, s->room, to, except, t, n);
    free(t);
}

/* A member's changed state (media, path) to everyone in the meeting, with the request's id. */
static void emit_member(struct sig_sess *s, struct sig_member *me, json_t *id)
{
    json_t *o = ml_nonnull(
        json_pack("{s:s,s:o}", "type", "participant-updated", "participant", sig_member_json(me)));
    if (id)
        json_object_set(o, "id", id);
    emit(s, 'P', o, NULL, NULL);
    json_decref(o);
}

/* {"type":..., "from":..., "to":..., "id":..., "payload":...} for a message to relay. */
static json_t *relay_body(struct sig_sess *s, struct sig_msg *m)
{
    json_t *o = ml_nonnull(json_pack("{s:s,s:s}", "type", m->type->name, "from", s->pid_s));
    if (m->has_to)
        json_object_set_new(o, "to", json_string(m->to_s));
    if (m->id)
        json_object_set(o, "id", m->id);
    if (m->payload)
        json_object_set(o, "payload", m->payload);
    return o;
}

void sig_dispatch(struct sig_sess *s, struct sig_msg *m)
{
    struct sig *sig = s->sig;
    struct sig_room *r = s->room;
    struct sig_member *me = sig_room_member(r, s->pid);
    if ((m->type->flags & SIG_MT_ADMIN) && !(me && me->admin)) {
        sig_sess_error(s, m->id, HTTP_E_NOT_ADMIN, NULL);
        return;
    }
    struct sig_member *target = NULL;
    if (m->has_to) {
        if (!memcmp(m->to, s->pid, 16)) {
            /* removing oneself answers as the REST removal does (ml_remove: the host's
             * 'host' first, then 'self') */
            if (m->type->kind == SIG_M_REMOVE)
                sig_sess_error(s, m->id,
                               me && me->host ? HTTP_E_HOST_PROTECTED : HTTP_E_SELF_REMOVE, NULL);
            else
                sig_sess_error(s, m->id, HTTP_E_INVALID_FIELD, "to: a participant other than you");
            return;
        }
        target = sig_room_member(r, m->to);
        if (!target) { /* never delivered: no such participant in this meeting */
            sig_sess_error(s, m->id, HTTP_E_NO_PARTICIPANT, NULL);
            return;
        }
        if (target->waiting && m->type->kind != SIG_M_REMOVE) { /* the lobby hears no call */
            sig_sess_error(s, m->id, HTTP_E_WAITING, "to: this participant is in the lobby");
            return;
        }
    }
    switch (m->type->kind) {
    case SIG_M_RELAY:
    case SIG_M_MUTE_REQUEST: {
        if (m->type->kind == SIG_M_MUTE_REQUEST && !json_object_get(m->payload, "kind"))
            json_object_set_new(m->payload, "kind", json_string("audio"));
        json_t *o = relay_body(s, m);
        emit(s, 'R', o, m->to, NULL);
        json_decref(o);
        return;
    }
    case SIG_M_CHAT: {
        const char *text = json_string_value(json_object_get(m->payload, "text"));
        size_t chars = 0;
        ml_utf8_valid(text, strlen(text), &chars);
        if (chars == 0 || (long long)chars > sig->cfg.chat_max_length) {
            char msg[96];
            ml_snprintf(msg, sizeof msg, "payload.text: 1 to %lld characters",
                        sig->cfg.chat_max_length);
            sig_sess_error(s, m->id, HTTP_E_INVALID_FIELD, msg);
            return;
        }
        if (!sig_bus_can_store(sig->bus)) {
            /* refused, not shown: the history and what everyone saw stay the same */
            sig_sess_error(s, m->id, HTTP_E_UNAVAILABLE,
                           "the chat cannot be stored while the database is away; "
                           "nothing was sent, try again shortly");
            return;
        }
        uint8_t cid[16];
        char cid_s[ML_UUID_STR];
        ml_uuid_random(cid);
        ml_uuid_format(cid, cid_s);
        json_int_t ts = (json_int_t)ml_wall_ms();
        json_t *o = relay_body(s, m);
        json_object_set_new(o, "name", json_string(me && me->name ? me->name : ""));
        json_object_set_new(o, "chat_id", json_string(cid_s));
        json_object_set_new(o, "ts", json_integer(ts));
        emit(s, 'R', o, NULL, NULL); /* the sender too: its copy carries the order */
        json_decref(o);
        json_t *row = ml_nonnull(json_pack("{s:s,s:s,s:s,s:I,s:s}", "id", cid_s, "m", r->id_s, "p",
                                           s->pid_s, "t", ts, "text", text));
        char *t = ml_nonnull(json_dumps(row, JSON_COMPACT));
        sig_bus_chat(sig->bus, t, strlen(t));
        free(t);
        json_decref(row);
        return;
    }
    case SIG_M_MEDIA: {
        if (!me)
            return;
        json_t *v;
        if ((v = json_object_get(m->payload, "audio")))
            me->audio = json_is_true(v);
        if ((v = json_object_get(m->payload, "video")))
            me->video = json_is_true(v);
        emit_member(s, me, m->id);
        json_t *row = ml_nonnull(
            json_pack("{s:s,s:b,s:b}", "p", s->pid_s, "audio", me->audio, "video", me->video));
        char *t = ml_nonnull(json_dumps(row, JSON_COMPACT));
        sig_bus_media(sig->bus, t, strlen(t));
        free(t);
        json_decref(row);
        return;
    }
    case SIG_M_PATH: {
        /* Not stored: it changes as the call runs. Every report goes out, a repeated one too:
         * clients repeat theirs when someone joins, whose roster (from the database) lacks it.
         * The rate limit bounds them as any message. */
        if (!me)
            return;
        me->path =
            sig_name_index(sig_path_names, json_string_value(json_object_get(m->payload, "path")));
        emit_member(s, me, m->id);
        return;
    }
    case SIG_M_REMOVE:
        if (target->host) {
            sig_sess_error(s, m->id, HTTP_E_HOST_PROTECTED, NULL);
            return;
        }
        sig_db_command(s, SIG_M_REMOVE, m->id, m->to_s);
        return;
    case SIG_M_END:
        sig_db_command(s, SIG_M_END, m->id, NULL);
        return;
    case SIG_M_HAND:
        sig_db_command(
            s, json_is_true(json_object_get(m->payload, "raised")) ? SIG_M_HAND : SIG_M_LOWER_HAND,
            m->id, s->pid_s);
        return;
    case SIG_M_LOWER_HAND:
        sig_db_command(s, SIG_M_LOWER_HAND, m->id, m->to_s);
        return;
    case SIG_M_REACTION: {
        if (!me)
            return;
        if (!sig_bucket_take(&me->react, sig->cfg.reaction_rate, sig->cfg.reaction_burst,
                             ml_now_ms())) {
            sig_sess_error(s, m->id, HTTP_E_RATE_LIMITED,
                           "too many reactions; signaling.reaction-rate");
            return;
        }
        json_t *o = relay_body(s, m);
        json_object_set_new(o, "ts", json_integer((json_int_t)ml_wall_ms()));
        emit(s, 'R', o, NULL, NULL); /* the sender too: it shows on its own tile */
        json_decref(o);
        return;
    }
    case SIG_M_SCREEN: {
        /* Not stored, as a path: the sharer's client repeats it when someone joins. */
        if (!me)
            return;
        bool on = json_is_true(json_object_get(m->payload, "sharing"));
        const char *stream = json_string_value(json_object_get(m->payload, "stream"));
        if (on && r->screen_admins && !me->admin) {
            sig_sess_error(s, m->id, HTTP_E_NOT_ADMIN,
                           "only an ADMIN may share a screen in this meeting");
            return;
        }
        if (on && !stream) {
            sig_sess_error(s, m->id, HTTP_E_MISSING_FIELD, "payload.stream: required to share");
            return;
        }
        ml_strlcpy(me->screen, on ? stream : "", sizeof me->screen);
        emit_member(s, me, m->id);
        return;
    }
    case SIG_M_PING: {
        json_t *o =
            ml_nonnull(json_pack("{s:s,s:I}", "type", "pong", "ts", (json_int_t)ml_wall_ms()));
        if (m->id)
            json_object_set(o, "id", m->id);
        sig_sess_reply(s, o);
        json_decref(o);
        return;
    }
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
    struct sig_revoked revoked;
};

static enum db_status w_command(struct db_conn *c, struct db_job *job)
{
    struct cmd_job *j = (struct cmd_job *)job;
    if (j->kind == SIG_M_HAND || j->kind == SIG_M_LOWER_HAND) {
        const char *hp[] = {j->mid, j->target, j->kind == SIG_M_HAND ? "true" : "false"};
        PGresult *r = db_exec(c, &st_hand, hp);
        if (!sig_tuples(r) || PQntuples(r) != 1)
            return sig_sql_failed(r, "raise or lower a hand");
        ml_strlcpy(j->outcome, PQgetvalue(r, 0, 0), sizeof j->outcome);
        PQclear(r);
        return DB_OK;
    }
    const char *p[] = {j->mid, j->actor, j->target};
    PGresult *r = db_exec(c, j->kind == SIG_M_REMOVE ? &st_remove : &st_end, p);
    if (!sig_tuples(r) || PQntuples(r) != 1)
        return sig_sql_failed(r, j->kind == SIG_M_REMOVE ? "remove participant" : "end meeting");
    ml_strlcpy(j->outcome, PQgetvalue(r, 0, CMD_OUTCOME), sizeof j->outcome);
    sig_revoked_take(&j->revoked, PQgetvalue(r, 0, CMD_REVOKED));
    PQclear(r);
    return DB_OK;
}

/* The command an ack names (a hand's own message says up or down in its payload). */
static const char *cmd_name(const struct cmd_job *j)
{
    switch (j->kind) {
    case SIG_M_REMOVE:
        return "remove";
    case SIG_M_END:
        return "end";
    case SIG_M_LOWER_HAND:
        return strcmp(j->target, j->s->pid_s) ? "lower-hand" : "hand";
    default:
        return "hand";
    }
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
    sig_revoked_apply(sig, &j->revoked);
    if (!sig->stopping)
        sig->deps.changed(sig->deps.arg, j->mid);
    if (!sig->stopping && s->state == SIG_S_LIVE && s->wsi && (!s->close_code || s->flushing)) {
        if (job->status == DB_UNAVAILABLE) {
            sig_sess_error(s, j->id, HTTP_E_UNAVAILABLE, NULL);
        } else if (job->status != DB_OK) {
            sig_sess_error(s, j->id, HTTP_E_INTERNAL, NULL);
        } else if (strcmp(j->outcome, "ok") != 0) {
            enum http_err e = http_err_outcome(j->outcome, HTTP_E_NO_MEETING);
            sig_sess_error(s, j->id, e, NULL);
        } else {
            json_t *o = ml_nonnull(json_pack("{s:s,s:s}", "type", "ack", "of", cmd_name(j)));
            if (j->id)
                json_object_set(o, "id", j->id);
            if (j->kind != SIG_M_END)
                json_object_set_new(o, "participant_id", json_string(j->target));
            sig_sess_reply(s, o);
            json_decref(o);
        }
    }
    if (job->status == DB_OK && !strcmp(j->outcome, "ok") &&
        (j->kind == SIG_M_REMOVE || j->kind == SIG_M_END))
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
    if (!sig->deps.pool || db_submit(sig->deps.pool, &j->job) < 0) {
        j->job.status = DB_UNAVAILABLE;
        command_done(&j->job);
    }
}
