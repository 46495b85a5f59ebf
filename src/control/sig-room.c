/* Meetings ("rooms") and signaling sessions on this node, on the lws thread: who is in a
 * meeting, the meeting's sequence numbers and replay buffer, each session's output queue,
 * and the meeting events (a participant left, was removed, changed role, went offline; the
 * meeting ended) whichever way they arrive. */
#include "config.h"

#include "control/sig-int.h"

#include <stdlib.h>
#include <string.h>

#define SUBSYS "sig"

/* ------------------------------------------------------------------ hash tables */

static size_t hslot(const struct sig_htab *h, const uint8_t key[16])
{
    uint64_t a, b;
    memcpy(&a, key, 8);
    memcpy(&b, key + 8, 8);
    uint64_t x = (a ^ h->seed) * 0x9e3779b97f4a7c15ULL;
    x ^= b + (x >> 29);
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 32;
    return (size_t)(x & (h->nb - 1));
}

void sig_htab_init(struct sig_htab *h)
{
    h->nb = 256;
    h->n = 0;
    h->b = ml_xcalloc(h->nb, sizeof *h->b);
    ml_random(&h->seed, sizeof h->seed);
}

struct sig_hnode *sig_htab_get(const struct sig_htab *h, const uint8_t key[16])
{
    for (struct sig_hnode *n = h->b[hslot(h, key)]; n; n = n->next)
        if (!memcmp(n->key, key, 16))
            return n;
    return NULL;
}

static void grow(struct sig_htab *h)
{
    struct sig_hnode **old = h->b;
    size_t oldn = h->nb;
    h->nb *= 2;
    h->b = ml_xcalloc(h->nb, sizeof *h->b);
    for (size_t i = 0; i < oldn; i++)
        for (struct sig_hnode *n = old[i], *next; n; n = next) {
            next = n->next;
            size_t s = hslot(h, n->key);
            n->next = h->b[s];
            h->b[s] = n;
        }
    free(old);
}

void sig_htab_put(struct sig_htab *h, struct sig_hnode *node)
{
    if (h->n + 1 > h->nb)
        grow(h);
    size_t s = hslot(h, node->key);
    node->next = h->b[s];
    h->b[s] = node;
    h->n++;
}

void sig_htab_del(struct sig_htab *h, struct sig_hnode *node)
{
    for (struct sig_hnode **p = &h->b[hslot(h, node->key)]; *p; p = &(*p)->next)
        if (*p == node) {
            *p = node->next;
            node->next = NULL;
            h->n--;
            return;
        }
}

void sig_htab_free(struct sig_htab *h)
{
    free(h->b);
    h->b = NULL;
    h->nb = h->n = 0;
}

/* ------------------------------------------------------------------ frames and the ring */

struct sig_frame *sig_frame_new(uint64_t seq, const char *body, size_t n)
{
    char head[40];
    size_t hn = 0, skip = 0;
    if (seq) {
        bool empty = n >= 2 && body[0] == '{' && body[1] == '}';
        hn = ml_snprintf(head, sizeof head, "{\"seq\":%llu%s", (unsigned long long)seq,
                         empty ? "" : ",");
        skip = 1; /* the body's own '{' */
    }
    size_t len = hn + n - skip;
    struct sig_frame *f = ml_xmalloc(sizeof *f + LWS_PRE + len + 1);
    memset(f, 0, sizeof *f);
    f->refs = 1;
    f->seq = seq;
    f->len = len;
    memcpy(f->data + LWS_PRE, head, hn);
    memcpy(f->data + LWS_PRE + hn, body + skip, n - skip);
    f->data[LWS_PRE + len] = 0;
    return f;
}

void sig_frame_unref(struct sig_frame *f)
{
    if (f && --f->refs == 0)
        free(f);
}

bool sig_frame_for(const struct sig_frame *f, const uint8_t pid[16])
{
    if (f->has_to)
        return !memcmp(f->to, pid, 16);
    if (f->has_except)
        return memcmp(f->except, pid, 16) != 0;
    return true;
}

struct sig_frame *sig_ring_at(const struct sig_ring *r, size_t i)
{
    return r->v[(r->head + i) % r->cap];
}

uint64_t sig_ring_first_seq(const struct sig_ring *r)
{
    return r->n ? sig_ring_at(r, 0)->seq : 0;
}

static void ring_pop(struct sig_ring *r)
{
    struct sig_frame *f = r->v[r->head];
    r->bytes -= f->len;
    sig_frame_unref(f);
    r->head = (r->head + 1) % r->cap;
    r->n--;
}

void sig_ring_push(struct sig_ring *r, struct sig_frame *f, size_t max_n, size_t max_bytes)
{
    if (max_n == 0)
        return;
    if (r->n == r->cap && r->cap < max_n) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        if (cap > max_n)
            cap = max_n;
        struct sig_frame **v = ml_xmalloc(cap * sizeof *v);
        for (size_t i = 0; i < r->n; i++)
            v[i] = sig_ring_at(r, i);
        free(r->v);
        r->v = v;
        r->cap = cap;
        r->head = 0;
    }
    while (r->n && (r->n == r->cap || r->bytes + f->len > max_bytes))
        ring_pop(r);
    f->refs++;
    r->v[(r->head + r->n) % r->cap] = f;
    r->n++;
    r->bytes += f->len;
}

void sig_ring_free(struct sig_ring *r)
{
    while (r->n)
        ring_pop(r);
    free(r->v);
    memset(r, 0, sizeof *r);
}

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

json_t *sig_member_json(const struct sig_member *m)
{
    return ml_nonnull(json_pack("{s:s,s:s,s:s,s:b,s:b,s:b,s:b}", "id", m->id_s, "name",
                                m->name ? m->name : "", "role", m->admin ? "ADMIN" : "PARTICIPANT",
                                "host", m->host, "audio", m->audio, "video", m->video, "online",
                                m->online));
}

uint64_t sig_room_send_text(struct sig_room *r, const char *body, size_t n, const uint8_t *to,
                            const uint8_t *except)
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
    sig_ring_push(&r->ring, f, (size_t)sig->cfg.replay_messages, (size_t)sig->cfg.replay_bytes);
    for (struct sig_sess *s = r->sessions; s; s = s->rnext)
        if ((s->state == SIG_S_LIVE || s->state == SIG_S_CONNECTING) && sig_frame_for(f, s->pid))
            sig_sess_queue(s, f);
    sig_frame_unref(f);
    return seq;
}

uint64_t sig_room_send(struct sig_room *r, const json_t *body, const uint8_t *to,
                       const uint8_t *except)
{
    char *s = ml_nonnull(json_dumps(body, JSON_COMPACT));
    uint64_t seq = sig_room_send_text(r, s, strlen(s), to, except);
    free(s);
    return seq;
}

/* ------------------------------------------------------------------ sessions */

struct sig_sess *sig_sess_new(struct sig *sig, struct sig_room *room)
{
    struct sig_sess *s = ml_xcalloc(1, sizeof *s);
    s->sig = sig;
    s->refs = 1;
    s->room = room;
    s->state = SIG_S_CONNECTING;
    s->hold = true;
    s->opened_ms = s->last_rx_ms = ml_now_ms();
    s->rx.max = (size_t)sig->cfg.max_message;
    sig_bucket_init(&s->bucket, sig->cfg.burst, s->opened_ms);
    sig_room_ref(room);
    s->rnext = room->sessions;
    if (room->sessions)
        room->sessions->rprev = s;
    room->sessions = s;
    room->nsess++;
    s->anext = sig->all;
    if (sig->all)
        sig->all->aprev = s;
    sig->all = s;
    sig->ctr.sessions++;
    return s;
}

void sig_sess_ref(struct sig_sess *s)
{
    s->refs++;
}

void sig_sess_clear_queue(struct sig_sess *s)
{
    for (struct sig_qent *e = s->qhead, *next; e; e = next) {
        next = e->next;
        sig_frame_unref(e->f);
        free(e);
    }
    s->qhead = s->qtail = NULL;
    s->qbytes = 0;
}

void sig_sess_leave_room(struct sig_sess *s)
{
    if (s->state == SIG_S_CLOSED)
        return;
    struct sig_room *r = s->room;
    if (s->tokened) {
        sig_htab_del(&s->sig->by_token, &s->tok);
        s->tokened = false;
    }
    if (s->rprev)
        s->rprev->rnext = s->rnext;
    else
        r->sessions = s->rnext;
    if (s->rnext)
        s->rnext->rprev = s->rprev;
    s->rnext = s->rprev = NULL;
    r->nsess--;
    s->state = SIG_S_CLOSED;
    s->room = NULL;
    sig_room_unref(r);
}

void sig_sess_end(struct sig_sess *s, bool delete_row)
{
    if (s->ended)
        return;
    s->ended = true;
    if (delete_row && s->in_db && s->room && !s->sig->stopping)
        sig_db_disconnect(s, s->room, false);
    s->in_db = false;
    sig_sess_leave_room(s);
    sig_sess_unref(s);
}

void sig_sess_unref(struct sig_sess *s)
{
    if (--s->refs > 0)
        return;
    sig_sess_leave_room(s);
    struct sig *sig = s->sig;
    if (s->aprev)
        s->aprev->anext = s->anext;
    else
        sig->all = s->anext;
    if (s->anext)
        s->anext->aprev = s->aprev;
    sig->ctr.sessions--;
    sig_sess_clear_queue(s);
    sig_frame_unref(s->first);
    ml_buf_free(&s->rx);
    free(s);
}

void sig_sess_close(struct sig_sess *s, int code, const char *reason, bool flush)
{
    if (s->close_code)
        return;
    s->close_code = code;
    ml_strlcpy(s->close_reason, reason ? reason : sig_close_reason(code), sizeof s->close_reason);
    s->close_ms = ml_now_ms();
    s->flushing = flush;
    if (!flush) {
        sig_sess_clear_queue(s);
        sig_frame_unref(s->first);
        s->first = NULL;
    }
    s->hold = false;
    if (s->wsi)
        lws_callback_on_writable(s->wsi);
}

void sig_sess_queue(struct sig_sess *s, struct sig_frame *f)
{
    struct sig *sig = s->sig;
    if (s->close_code && !(s->flushing && f->seq == 0))
        return; /* closing: nothing more of the meeting's stream */
    if (s->qbytes + f->len > (size_t)sig->cfg.max_queue) {
        ML_LOG_LIMITED(ML_LOG_NOTICE, SUBSYS,
                       "closing %d %s (meeting=%s participant=%s session=%s peer=%s): %zu bytes "
                       "waiting for a client that does not read, signaling.max-queue=%lld",
                       SIG_CLOSE_SLOW, sig_close_reason(SIG_CLOSE_SLOW),
                       s->room ? s->room->id_s : "-", s->pid_s, s->sid_s, s->peer,
                       s->qbytes + f->len, sig->cfg.max_queue);
        sig->ctr.limit_closes++;
        sig_sess_close(s, SIG_CLOSE_SLOW, NULL, false);
        return;
    }
    struct sig_qent *e = ml_xmalloc(sizeof *e);
    e->next = NULL;
    e->f = f;
    f->refs++;
    if (s->qtail)
        s->qtail->next = e;
    else
        s->qhead = e;
    s->qtail = e;
    s->qbytes += f->len;
    sig->ctr.messages_out++;
    if (!s->hold && s->wsi)
        lws_callback_on_writable(s->wsi);
}

void sig_sess_reply(struct sig_sess *s, const json_t *body)
{
    char *t = ml_nonnull(json_dumps(body, JSON_COMPACT));
    struct sig_frame *f = sig_frame_new(0, t, strlen(t));
    free(t);
    sig_sess_queue(s, f);
    sig_frame_unref(f);
}

void sig_sess_error(struct sig_sess *s, json_t *id, enum http_err e, const char *msg)
{
    json_t *o = ml_nonnull(json_pack("{s:s,s:s,s:s}", "type", "error", "code", http_err_code(e),
                                     "message", msg && *msg ? msg : http_err_message(e)));
    if (id)
        json_object_set(o, "id", id);
    sig_sess_reply(s, o);
    json_decref(o);
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
    json_t *o = ml_nonnull(removed ? json_pack("{s:s,s:s}", "type", "removed", "participant_id", p)
                                   : json_pack("{s:s,s:s,s:s}", "type", "participant-left",
                                               "participant_id", p, "reason", why));
    sig_room_ref(r);
    /* the removed participant is told too: the close that follows says why */
    sig_room_send(r, o, NULL, removed ? NULL : pid);
    json_decref(o);
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
    json_t *o = ml_nonnull(
        json_pack("{s:s,s:s}", "type", "meeting-ended", "reason", expired ? "expired" : "ended"));
    sig_room_ref(r);
    r->ended = true;
    sig_room_send(r, o, NULL, NULL);
    json_decref(o);
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
    json_t *o = ml_nonnull(
        json_pack("{s:s,s:o}", "type", "participant-updated", "participant", sig_member_json(m)));
    sig_room_send(r, o, NULL, NULL);
    json_decref(o);
}

void sig_on_offline(struct sig *sig, const uint8_t mid[16], const uint8_t pid[16])
{
    struct sig_room *r = sig_room_get(sig, mid, false);
    struct sig_member *m = r ? sig_room_member(r, pid) : NULL;
    if (!m || !m->online)
        return;
    m->online = false;
    json_t *o = ml_nonnull(json_pack("{s:s,s:s,s:s}", "type", "participant-left", "participant_id",
                                     m->id_s, "reason", "disconnected"));
    sig_room_send(r, o, NULL, pid);
    json_decref(o);
}
