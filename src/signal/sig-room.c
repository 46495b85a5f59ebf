/* Meetings ("rooms") with sessions on this node, on the lws thread: who is in a meeting, the
 * meeting's sequence numbers and its fan-out to the sessions a message is for, and the meeting
 * events (a participant left, was removed, changed role, went offline; the meeting ended)
 * whichever way they arrive. */
#include "config.h"

#include "signal/sig-int.h"

#include <stdlib.h>
#include <string.h>

#define SUBSYS "sig"

/* ------------------------------------------------------------------ rooms */

struct sig_room *sig_room_get(struct sig *sig, const uint8_t mid[16], bool create)
{
    struct sig_hnode *n = sig_htab_get(&sig->rooms, mid);
    if (n)
        return (struct sig_room *)n; /* node is the first member */
    if (!create)
        return NULL;
    struct sig_room *r = ml_xcalloc(1, sizeof *r);
    memcpy(r->node.key, mid, 16);
    ml_uuid_format(mid, r->id_s);
    r->sig = sig;
    sig_htab_put(&sig->rooms, &r->node);
    sig->ctr.rooms++;
    return r;
}

void sig_room_ref(struct sig_room *r)
{
    r->refs++;
}

void sig_room_unref(struct sig_room *r)
{
    if (!r || --r->refs > 0)
        return;
    sig_htab_del(&r->sig->rooms, &r->node);
    r->sig->ctr.rooms--;
    for (size_t i = 0; i < r->nmembers; i++)
        free(r->members[i].name);
    free(r->members);
    sig_ring_free(&r->ring);
    free(r);
}

struct sig_member *sig_room_member(struct sig_room *r, const uint8_t pid[16])
{
    for (size_t i = 0; i < r->nmembers; i++)
        if (!memcmp(r->members[i].pid, pid, 16))
            return &r->members[i];
    return NULL;
}

struct sig_member *sig_room_member_set(struct sig_room *r, const json_t *e)
{
    uint8_t pid[16];
    if (!json_is_object(e) || !ml_uuid_parse(json_string_value(json_object_get(e, "id")), pid))
        return NULL;
    struct sig_member *m = sig_room_member(r, pid);
    if (!m) {
        if (r->nmembers == r->capmembers) {
            size_t cap = r->capmembers ? r->capmembers * 2 : 8;
            r->members = ml_xrealloc(r->members, cap * sizeof *r->members);
            r->capmembers = cap;
        }
        m = &r->members[r->nmembers++];
        memset(m, 0, sizeof *m);
        memcpy(m->pid, pid, 16);
        ml_uuid_format(pid, m->id_s);
    }
    const char *name = json_string_value(json_object_get(e, "name"));
    if (name && (!m->name || strcmp(m->name, name))) {
        free(m->name);
        m->name = ml_xstrdup(name);
    }
    const char *role = json_string_value(json_object_get(e, "role"));
    if (role)
        m->admin = !strcmp(role, "ADMIN");
    json_t *v;
    if ((v = json_object_get(e, "host")) && json_is_boolean(v))
        m->host = json_is_true(v);
    if ((v = json_object_get(e, "audio")) && json_is_boolean(v))
        m->audio = json_is_true(v);
    if ((v = json_object_get(e, "video")) && json_is_boolean(v))
        m->video = json_is_true(v);
    if ((v = json_object_get(e, "online")) && json_is_boolean(v))
        m->online = json_is_true(v);
    if ((v = json_object_get(e, "screen")))
        ml_strlcpy(m->screen, json_is_string(v) ? json_string_value(v) : "", sizeof m->screen);
    if ((v = json_object_get(e, "hand")))
        m->hand_ms = json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
    const char *state = json_string_value(json_object_get(e, "state"));
    if (state)
        m->waiting = !strcmp(state, "waiting");
    uint8_t k;
    if ((k = sig_name_index(sig_path_names, json_string_value(json_object_get(e, "path")))))
        m->path = k;
    if ((k = sig_name_index(sig_network_names, json_string_value(json_object_get(e, "network")))))
        m->network = k;
    return m;
}

void sig_room_member_del(struct sig_room *r, const uint8_t pid[16])
{
    struct sig_member *m = sig_room_member(r, pid);
    if (!m)
        return;
    free(m->name);
    *m = r->members[--r->nmembers];
}

bool sig_room_has_session(const struct sig_room *r, const uint8_t pid[16],
                          const struct sig_sess *except)
{
    for (const struct sig_sess *s = r->sessions; s; s = s->rnext)
        if (s != except && !memcmp(s->pid, pid, 16))
            return true;
    return false;
}

bool sig_room_exclusive(struct sig_room *r, const uint8_t pid[16])
{
    const struct sig_member *m = sig_room_member(r, pid);
    uint32_t gen = sig_bus_gen(r->sig->bus);
    return m && m->exclusive && gen && m->excl_gen == gen;
}

void sig_room_claimed(struct sig_room *r, const uint8_t pid[16])
{
    struct sig_member *m = sig_room_member(r, pid);
    if (m)
        m->exclusive = false;
    r->claims++; /* a connect job in flight learns of it too (connect_opened) */
}

json_t *sig_member_json(const struct sig_member *m)
{
    return ml_nonnull(
        json_pack("{s:s,s:s,s:s,s:b,s:b,s:b,s:b,s:o,s:o,s:s,s:o,s:o}", "id", m->id_s, "name",
                  m->name ? m->name : "", "role", m->admin ? "ADMIN" : "PARTICIPANT", "host",
                  m->host, "audio", m->audio, "video", m->video, "online", m->online, "path",
                  m->path ? json_string(sig_path_names[m->path]) : json_null(), "network",
                  m->network ? json_string(sig_network_names[m->network]) : json_null(), "state",
                  m->waiting ? "waiting" : "joined", "hand",
                  m->hand_ms ? json_integer((json_int_t)m->hand_ms) : json_null(), "screen",
                  m->screen[0] ? json_string(m->screen) : json_null()));
}

bool sig_room_frame_for(struct sig_room *r, const struct sig_sess *s, const struct sig_frame *f)
{
    if (!sig_frame_for(f, s->pid))
        return false;
    if (s->waiting && !(f->has_to && !memcmp(f->to, s->pid, 16)))
        return false; /* the lobby hears only what is meant for it */
    if (f->admins) {
        const struct sig_member *m = sig_room_member(r, s->pid);
        return m && m->admin && !s->waiting;
    }
    return true;
}

/* Sends a frame made of body to the sessions it is for, and keeps it for replay. */
static uint64_t room_send(struct sig_room *r, const char *body, size_t n, const uint8_t *to,
                          const uint8_t *except, bool admins)
{
    struct sig *sig = r->sig;
    uint64_t seq = ++r->seq;
    struct sig_frame *f = sig_frame_new(seq, body, n);
    if (to) {
        f->has_to = true;
        memcpy(f->to, to, 16);
    }
    if (except) {
        f->has_except = true;
        memcpy(f->except, except, 16);
    }
    f->admins = admins;
    sig_ring_push(&r->ring, f, (size_t)sig->cfg.replay_messages, (size_t)sig->cfg.replay_bytes);
    for (struct sig_sess *s = r->sessions; s; s = s->rnext)
        if ((s->state == SIG_S_LIVE || s->state == SIG_S_CONNECTING) && sig_room_frame_for(r, s, f))
            sig_sess_queue(s, f);
    sig_frame_unref(f);
    return seq;
}

uint64_t sig_room_send_text(struct sig_room *r, const char *body, size_t n, const uint8_t *to,
                            const uint8_t *except)
{
    return room_send(r, body, n, to, except, false);
}

/* Sends body (taken: freed here; the json_pack result of the caller, NULL aborts) to recipient
 * to, or to all but except, or (admins) to the meeting's ADMINs only. The one way this file's
 * events leave: pack, send, free. */
static void room_emit(struct sig_room *r, json_t *body, const uint8_t *to, const uint8_t *except,
                      bool admins)
{
    char *s = ml_nonnull(json_dumps(ml_nonnull(body), JSON_COMPACT));
    room_send(r, s, strlen(s), to, except, admins);
    free(s);
    json_decref(body);
}

/* participant-updated with m's state now, to everyone. */
static void emit_member(struct sig_room *r, const struct sig_member *m)
{
    room_emit(
        r, json_pack("{s:s,s:o}", "type", "participant-updated", "participant", sig_member_json(m)),
        NULL, NULL, false);
}

/* ------------------------------------------------------------------ meeting events */

/* Ends every session of pid in r (or of everyone, pid NULL): a live one is closed with code
 * once what it was sent is written; a detached one is simply dropped. Their database rows are
 * gone already (the trigger of the change removed them). */
static void end_sessions(struct sig_room *r, const uint8_t *pid, int code, const char *reason)
{
    sig_room_ref(r);
    for (struct sig_sess *s = r->sessions, *next; s; s = next) {
        next = s->rnext;
        if (pid && memcmp(s->pid, pid, 16))
            continue;
        s->in_db = false;
        if (s->wsi)
            sig_sess_close(s, code, reason, true); /* sig_sess_end when it has closed */
        else if (s->state != SIG_S_CONNECTING)
            sig_sess_end(s, false);
    }
    sig_room_unref(r);
}

void sig_on_member_left(struct sig *sig, const uint8_t mid[16], const uint8_t pid[16],
                        const char *why)
{
    struct sig_room *r = sig_room_get(sig, mid, false);
    if (!r)
        return;
    char p[ML_UUID_STR];
    ml_uuid_format(pid, p);
    bool removed = !strcmp(why, "removed");
    sig_room_ref(r);
    /* the removed participant is told too: the close that follows says why */
    room_emit(r,
              removed ? json_pack("{s:s,s:s}", "type", "removed", "participant_id", p)
                      : json_pack("{s:s,s:s,s:s}", "type", "participant-left", "participant_id", p,
                                  "reason", why),
              NULL, removed ? NULL : pid, false);
    sig_room_member_del(r, pid);
    if (removed)
        end_sessions(r, pid, http_err_ws_code(HTTP_E_REMOVED), http_err_code(HTTP_E_REMOVED));
    else
        end_sessions(r, pid, http_err_ws_code(HTTP_E_NOT_JOINED), http_err_code(HTTP_E_NOT_JOINED));
    sig_room_unref(r);
}

void sig_on_meeting_ended(struct sig *sig, const uint8_t mid[16], const char *status)
{
    struct sig_room *r = sig_room_get(sig, mid, false);
    if (!r || r->ended)
        return;
    bool expired = status && !strcmp(status, "expired");
    sig_room_ref(r);
    r->ended = true;
    room_emit(
        r, json_pack("{s:s,s:s}", "type", "meeting-ended", "reason", expired ? "expired" : "ended"),
        NULL, NULL, false);
    enum http_err e = expired ? HTTP_E_MEETING_EXPIRED : HTTP_E_MEETING_ENDED;
    end_sessions(r, NULL, http_err_ws_code(e), http_err_code(e));
    sig_room_unref(r);
}

void sig_on_role(struct sig *sig, const uint8_t mid[16], const uint8_t pid[16], bool admin)
{
    struct sig_room *r = sig_room_get(sig, mid, false);
    struct sig_member *m = r ? sig_room_member(r, pid) : NULL;
    if (!m)
        return;
    m->admin = admin;
    emit_member(r, m);
}

void sig_on_offline(struct sig *sig, const uint8_t mid[16], const uint8_t pid[16])
{
    struct sig_room *r = sig_room_get(sig, mid, false);
    struct sig_member *m = r ? sig_room_member(r, pid) : NULL;
    if (!m || !m->online)
        return;
    m->online = false;
    if (m->waiting)
        return; /* the lobby's presence is no one's business but its own; it stays waiting */
    room_emit(r,
              json_pack("{s:s,s:s,s:s}", "type", "participant-left", "participant_id", m->id_s,
                        "reason", "disconnected"),
              NULL, pid, false);
}

void sig_on_hand(struct sig *sig, const uint8_t mid[16], const uint8_t pid[16], int64_t at_ms)
{
    struct sig_room *r = sig_room_get(sig, mid, false);
    struct sig_member *m = r ? sig_room_member(r, pid) : NULL;
    if (!m || m->waiting)
        return;
    m->hand_ms = at_ms;
    emit_member(r, m);
}

void sig_on_settings(struct sig *sig, const uint8_t mid[16], const char *screen_share)
{
    struct sig_room *r = sig_room_get(sig, mid, false);
    if (!r || !screen_share)
        return;
    r->screen_admins = !strcmp(screen_share, "admins");
    room_emit(r, json_pack("{s:s,s:s}", "type", "meeting-updated", "screen_share", screen_share),
              NULL, NULL, false);
}

/* ------------------------------------------------------------------ the lobby */

void sig_on_lobby_arrived(struct sig *sig, const uint8_t mid[16], const uint8_t pid[16],
                          const char *name)
{
    struct sig_room *r = sig_room_get(sig, mid, false);
    if (!r)
        return;
    char p[ML_UUID_STR];
    ml_uuid_format(pid, p);
    json_t *e = ml_nonnull(json_pack("{s:s,s:s,s:s,s:s}", "id", p, "name", name ? name : "", "role",
                                     "PARTICIPANT", "state", "waiting"));
    struct sig_member *m = sig_room_member_set(r, e);
    json_decref(e);
    if (!m)
        return;
    room_emit(r, json_pack("{s:s,s:o}", "type", "lobby-waiting", "participant", sig_member_json(m)),
              NULL, NULL, true);
}

void sig_on_admitted(struct sig *sig, const uint8_t mid[16], const uint8_t pid[16])
{
    struct sig_room *r = sig_room_get(sig, mid, false);
    if (!r)
        return;
    char p[ML_UUID_STR];
    ml_uuid_format(pid, p);
    sig_room_ref(r);
    room_emit(r, json_pack("{s:s,s:s}", "type", "admitted", "participant_id", p), pid, NULL, false);
    room_emit(
        r,
        json_pack("{s:s,s:s,s:s}", "type", "lobby-left", "participant_id", p, "reason", "admitted"),
        NULL, NULL, true);
    /* it comes back as a participant with its next session (participant-joined) */
    sig_room_member_del(r, pid);
    end_sessions(r, pid, SIG_CLOSE_ADMITTED, sig_close_reason(SIG_CLOSE_ADMITTED));
    sig_room_unref(r);
}

void sig_on_lobby_left(struct sig *sig, const uint8_t mid[16], const uint8_t pid[16],
                       const char *why)
{
    struct sig_room *r = sig_room_get(sig, mid, false);
    if (!r)
        return;
    char p[ML_UUID_STR];
    ml_uuid_format(pid, p);
    bool denied = !strcmp(why, "denied");
    sig_room_ref(r);
    if (denied)
        room_emit(r, json_pack("{s:s,s:s}", "type", "denied", "participant_id", p), pid, NULL,
                  false);
    room_emit(r,
              json_pack("{s:s,s:s,s:s}", "type", "lobby-left", "participant_id", p, "reason", why),
              NULL, NULL, true);
    sig_room_member_del(r, pid);
    enum http_err e = denied ? HTTP_E_DENIED : HTTP_E_NOT_JOINED;
    end_sessions(r, pid, http_err_ws_code(e), http_err_code(e));
    sig_room_unref(r);
}

/* ------------------------------------------------------------------ a relay that went away */

bool sig_push_ice(struct sig *sig, const char *mid, const char *pid, const char *ice,
                  const char *relay, const char *reason)
{
    uint8_t m[16], p[16];
    if (!sig || !ml_uuid_parse(mid, m) || !ml_uuid_parse(pid, p) || !ice)
        return false;
    struct sig_room *r = sig_room_get(sig, m, false);
    if (!r || r->ended)
        return false;
    bool here = false;
    for (struct sig_sess *s = r->sessions; s; s = s->rnext)
        here |= !memcmp(s->pid, p, 16);
    if (!here)
        return false;
    struct ml_buf b = ML_BUF_INIT(SIZE_MAX); /* the control plane's JSON bounds it */
    if (ml_buf_printf(
            &b, "{\"type\":\"ice-servers\",\"reason\":\"%s\",\"iceServers\":%s,\"relay\":%s}",
            !strcmp(reason, "draining") ? "draining" : "down", ice, relay ? relay : "null") < 0) {
        ml_buf_free(&b);
        return false;
    }
    /* the frame's "seq" is added by the room as for every frame it numbers */
    sig_room_send_text(r, b.p, b.len, p, NULL);
    ml_buf_free(&b);
    return true;
}
