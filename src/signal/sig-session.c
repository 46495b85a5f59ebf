/* The session state machine. A session is CONNECTING while the database checks the participant
 * (not only the token's signature) and makes it a fresh TURN credential from the join code
 * path, LIVE once told joined, DETACHED when its WebSocket dropped (resumable for
 * signaling.resume-window), RESUMING while a resume is checked, CLOSED once out of its room.
 * Here: the session objects (references, output queue, close), the database jobs that move
 * them (connect, resume, disconnect or detach) and their completions, and the resync after
 * the node lost its LISTEN connection. Work functions run on a database thread and touch only
 * their job; completions run on the lws thread. */
#include "config.h"

#include "signal/sig-int.h"

#include <stdlib.h>
#include <string.h>

#define SUBSYS "sig"

/* Each statement's result columns are named by an enum beside its text (db_stmt.ncols). */
enum {
    CONNECT_OUTCOME,
    CONNECT_ROLE,
    CONNECT_NAME,
    CONNECT_HOST,
    CONNECT_CONNS, /* the participant's sessions on every node, this one included */
    CONNECT_ROSTER,
    CONNECT_CHAT,
    CONNECT_CRED_USER, /* the fresh TURN credential the join made */
    CONNECT_CRED_EXPIRES,
    CONNECT_REVOKED,
    CONNECT_WAITING, /* in the lobby: no credential, no roster, no chat */
    CONNECT_SCREEN,  /* who may share a screen: "anyone" or "admins" */
    CONNECT__COLS
};
static const struct db_stmt st_connect = {
    "sig_connect",
    "SELECT outcome, role, display_name, is_host, conns, roster, chat, cred_username, "
    "cred_expires, revoked, waiting, screen_share FROM ml_sig_connect($1, $2, $3, $4, $5, $6, $7, "
    "$8, $9)",
    9, CONNECT__COLS};
static const struct db_stmt st_disconnect = {"sig_disconnect", "SELECT ml_sig_disconnect($1, $2)",
                                             2, 1};
/* The other nodes holding sessions of the participant (sql/014_sig_routing.sql), one a row. */
static const struct db_stmt st_others = {"sig_others", "SELECT ml_sig_other_nodes($1, $2)", 2, 1};
enum { RESYNC_SESSION, RESYNC_OUTCOME, RESYNC__COLS };
static const struct db_stmt st_resync = {
    "sig_resync", "SELECT session_id, outcome FROM ml_sig_resync($1, $2)", 2, RESYNC__COLS};

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
    s->open_us = ml_now_us();
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
    struct sig_member *m = sig_room_member(r, s->pid);
    if (m && m->exclusive && !sig_room_has_session(r, s->pid, NULL))
        m->exclusive = false; /* a session of it opening later decides again */
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
    bool admin, host, waiting, screen_admins;
    int conns;
    char *name, *roster, *chat, *ice, *relay;
    struct sig_revoked revoked;
    char **others; /* the other nodes holding sessions of the participant (a claim awaits them) */
    unsigned nothers;
    uint32_t gen0, claims0; /* sig_bus_gen and the room's claims when the job was submitted */
};

static enum db_status w_connect(struct db_conn *c, struct db_job *job)
{
    struct connect_job *j = (struct connect_job *)job;
    char maxc[24], chatn[24], ttl[24];
    ml_snprintf(maxc, sizeof maxc, "%lld", j->max_conns);
    ml_snprintf(chatn, sizeof chatn, "%lld", j->chat_n);
    ml_snprintf(ttl, sizeof ttl, "%lld", j->ttl);
    const char *p[] = {
        j->sid, j->mid, j->pid, j->uid, j->node, maxc, chatn, ttl, j->resume ? "true" : "false"};
    PGresult *r = db_exec(c, &st_connect, p);
    if (!sig_tuples(r) || PQntuples(r) != 1)
        return sig_sql_failed(r, "opening a signaling session");
    ml_strlcpy(j->outcome, PQgetvalue(r, 0, CONNECT_OUTCOME), sizeof j->outcome);
    sig_revoked_take(&j->revoked, PQgetvalue(r, 0, CONNECT_REVOKED));
    if (strcmp(j->outcome, "ok") != 0) {
        PQclear(r);
        return DB_OK;
    }
    j->admin = !strcmp(PQgetvalue(r, 0, CONNECT_ROLE), "ADMIN");
    j->name = ml_xstrdup(PQgetvalue(r, 0, CONNECT_NAME));
    j->host = PQgetvalue(r, 0, CONNECT_HOST)[0] == 't';
    j->conns = (int)strtol(PQgetvalue(r, 0, CONNECT_CONNS), NULL, 10);
    j->waiting = PQgetvalue(r, 0, CONNECT_WAITING)[0] == 't';
    j->screen_admins = !strcmp(PQgetvalue(r, 0, CONNECT_SCREEN), "admins");
    if (!j->resume && j->waiting) {
        j->roster = ml_xstrdup("[]"); /* the lobby sees nobody and gets no credential */
        j->chat = ml_xstrdup("[]");
    } else if (!j->resume) {
        j->roster = ml_xstrdup(PQgetvalue(r, 0, CONNECT_ROSTER));
        j->chat = ml_xstrdup(PQgetvalue(r, 0, CONNECT_CHAT));
        /* iceServers with the credential the join recorded, as the join answers them */
        const struct sig_deps *d = &j->sig->deps;
        j->ice =
            d->ice_servers(d->arg, c, j->mid, j->pid, PQgetvalue(r, 0, CONNECT_CRED_USER),
                           strtoll(PQgetvalue(r, 0, CONNECT_CRED_EXPIRES), NULL, 10), &j->relay);
        if (!j->ice) {
            ML_ERROR(SUBSYS, "cannot make the TURN credential of participant %s", j->pid);
            ml_strlcpy(j->outcome, "internal", sizeof j->outcome);
        }
    }
    PQclear(r);
    if (!j->resume && !j->waiting && j->conns > 1) {
        /* after the commit of this session's row: a node opening another session of the
         * participant from now on sees it, one that did before is named here */
        const char *q[] = {j->pid, j->node};
        r = db_exec(c, &st_others, q);
        if (!sig_tuples(r))
            return sig_sql_failed(r, "finding the other nodes of a participant's sessions");
        int n = PQntuples(r);
        j->others = ml_xcalloc((size_t)n + 1, sizeof *j->others);
        for (int i = 0; i < n; i++)
            j->others[j->nothers++] = ml_xstrdup(PQgetvalue(r, i, 0));
        PQclear(r);
    }
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

/* The session's resume token as a client sends it back: "<node>.<32 hex digits>". */
static void resume_token(const struct sig_sess *s, char rt[SIG_RESUME_TOKEN_MAX])
{
    char hex[SIG_TOKEN_HEX + 1];
    ml_hex_encode(s->tok.key, 16, hex);
    ml_snprintf(rt, SIG_RESUME_TOKEN_MAX, "%s.%s", s->sig->node, hex);
}

/* The joined message: who one is, the roster, the chat history and fresh iceServers, which the
 * database answered already as JSON text (spliced, not parsed again). */
static struct sig_frame *joined_frame(struct sig_sess *s, struct connect_job *j, uint64_t seq)
{
    struct ml_buf b = ML_BUF_INIT(SIZE_MAX); /* the database's answer bounds it */
    char rt[SIG_RESUME_TOKEN_MAX];
    resume_token(s, rt);
    char *limits = json_dumps(s->sig->limits, JSON_COMPACT);
    (void)ml_buf_printf(
        &b,
        "{\"type\":\"joined\",\"seq\":%llu,\"meeting_id\":\"%s\",\"participant_id\":\"%s\","
        "\"session_id\":\"%s\",\"node\":\"%s\",\"role\":\"%s\",\"resume_token\":\"%s\","
        "\"roster\":%s,\"chat\":%s,\"iceServers\":%s,%s%s%s\"limits\":%s,\"screen_share\":\"%s\"}",
        (unsigned long long)seq, j->mid, j->pid, j->sid, s->sig->node,
        j->admin ? "ADMIN" : "PARTICIPANT", rt, j->roster, j->chat, j->ice ? j->ice : "[]",
        j->relay ? "\"relay\":" : "", j->relay ? j->relay : "", j->relay ? "," : "",
        limits ? limits : "{}", j->screen_admins ? "admins" : "anyone");
    free(limits);
    struct sig_frame *f = sig_frame_new(0, b.p, b.len);
    ml_buf_free(&b);
    return f;
}

/* The waiting message: a lobby session's first, with no roster, chat or iceServers. */
static struct sig_frame *waiting_frame(struct sig_sess *s, struct connect_job *j, uint64_t seq)
{
    char rt[SIG_RESUME_TOKEN_MAX], head[512];
    resume_token(s, rt);
    size_t n = ml_snprintf(
        head, sizeof head,
        "{\"type\":\"waiting\",\"seq\":%llu,\"meeting_id\":\"%s\",\"participant_id\":\"%s\","
        "\"session_id\":\"%s\",\"node\":\"%s\",\"resume_token\":\"%s\"}",
        (unsigned long long)seq, j->mid, j->pid, j->sid, s->sig->node, rt);
    return sig_frame_new(0, head, n);
}

/* The session opens with first (joined or waiting) ahead of what was queued since join_seq:
 * live, findable by its resume token, and written to as soon as lws lets it. */
static void go_live(struct sig_sess *s, struct sig_frame *first)
{
    s->first = first;
    s->state = SIG_S_LIVE;
    s->hold = false;
    s->opened = true;
    s->tokened = true;
    sig_htab_put(&s->sig->by_token, &s->tok);
    lws_callback_on_writable(s->wsi);
}

/* A lobby session opens: it hears only what is sent to it (admitted, denied). */
static void connect_waiting(struct sig_sess *s, struct connect_job *j)
{
    struct sig_room *r = s->room;
    s->waiting = true;
    json_t *e =
        ml_nonnull(json_pack("{s:s,s:s,s:s,s:s,s:b}", "id", j->pid, "name", j->name ? j->name : "",
                             "role", "PARTICIPANT", "state", "waiting", "online", 1));
    sig_room_member_set(r, e);
    json_decref(e);
    go_live(s, waiting_frame(s, j, s->join_seq));
    ML_INFO(SUBSYS, "lobby session opened (meeting=%s participant=%s session=%s peer=%s)", r->id_s,
            s->pid_s, s->sid_s, s->peer);
}

static void connect_opened(struct sig_sess *s, struct connect_job *j)
{
    struct sig *sig = s->sig;
    struct sig_room *r = s->room;
    if (j->waiting) {
        connect_waiting(s, j);
        return;
    }
    r->screen_admins = j->screen_admins; /* the database's word now; events keep it since */
    json_t *roster = json_loads(j->roster, 0, NULL);
    size_t i;
    json_t *e;
    json_array_foreach(roster, i, e) sig_room_member_set(r, e);
    json_decref(roster);
    struct sig_member *me = sig_room_member(r, s->pid);
    if (me) {
        me->admin = j->admin;
        me->online = true;
        /* the participant's sessions are all here when the database named no other node, no
         * claim came since the job left and the LISTEN connection is the same (sig-bus.c) */
        uint32_t gen = sig_bus_gen(sig->bus);
        bool alone = j->conns == 1 || (j->others && !j->nothers);
        me->exclusive = alone && gen && gen == j->gen0 && r->claims == j->claims0;
        me->excl_gen = gen;
    }
    /* joined answers for the meeting as it was at join_seq: what came after is queued */
    go_live(s, joined_frame(s, j, s->join_seq));
    http_observe(s->wsi, HTTP_CLASS_UPGRADE, ml_now_us() - s->open_us);
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
    s->waiting = j->waiting;
    for (size_t i = 0; i < r->ring.n; i++) {
        struct sig_frame *f = sig_ring_at(&r->ring, i);
        if (f->seq > s->resume_from && sig_room_frame_for(r, s, f)) {
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

static void connect_job_free(struct connect_job *j)
{
    sig_room_unref(j->room);
    sig_sess_unref(j->s);
    for (unsigned i = 0; i < j->nothers; i++)
        free(j->others[i]);
    free(j->others);
    free(j->name);
    free(j->roster);
    free(j->chat);
    free(j->ice);
    free(j->relay);
    free(j);
}

/* A new session (not a resume) whose row is in the database: open it, unless it went away. */
static void connect_new(struct sig_sess *s, struct connect_job *j, bool ok)
{
    if (s->gone)
        sig_sess_end(s, true); /* the client left while we checked */
    else if (s->close_code)
        ; /* an event closed it meanwhile */
    else if (!ok)
        refuse_session(s, j->outcome);
    else
        connect_opened(s, j);
}

/* The claim of s is answered (or waited for long enough): joined goes out. */
void sig_sess_claim_done(struct sig_sess *s)
{
    struct connect_job *j = s->claim;
    bool waited = s->nclaim_wait > 0; /* some node never acknowledged */
    s->claim = NULL;
    for (unsigned i = 0; i < s->nclaim_wait; i++)
        free(s->claim_wait[i]);
    free(s->claim_wait);
    s->claim_wait = NULL;
    s->nclaim_wait = 0;
    if (s->sig->stopping || s->ended) {
        if (s->gone || !s->wsi)
            sig_sess_end(s, false);
    } else {
        /* a claim that may not have left (this node's publisher is down) may not have been
         * heard: the client tries again rather than miss messages */
        bool ok = !waited || sig_bus_can_store(s->sig->bus);
        if (!ok)
            ml_strlcpy(j->outcome, "unavailable", sizeof j->outcome);
        connect_new(s, j, ok);
    }
    connect_job_free(j);
}

void sig_sess_claim_acked(struct sig_sess *s, const char *node, size_t n)
{
    for (unsigned i = 0; i < s->nclaim_wait; i++)
        if (strlen(s->claim_wait[i]) == n && !memcmp(s->claim_wait[i], node, n)) {
            free(s->claim_wait[i]);
            s->claim_wait[i] = s->claim_wait[--s->nclaim_wait];
            break;
        }
    if (!s->nclaim_wait && s->claim)
        sig_sess_claim_done(s);
}

void sig_sess_claim_expire(struct sig_sess *s, int64_t now_ms)
{
    if (!s->claim || now_ms - s->claim_ms < SIG_CLAIM_WAIT_MS)
        return;
    ML_LOG_LIMITED(ML_LOG_NOTICE, SUBSYS,
                   "no acknowledgement of %u node%s within %d ms (meeting=%s participant=%s "
                   "session=%s): first awaited %s; the session opens unless this node's "
                   "publisher is down",
                   s->nclaim_wait, s->nclaim_wait == 1 ? "" : "s", SIG_CLAIM_WAIT_MS,
                   s->room ? s->room->id_s : "-", s->pid_s, s->sid_s,
                   s->nclaim_wait ? s->claim_wait[0] : "-");
    sig_sess_claim_done(s);
}

/* The participant has sessions on other nodes: claim it, and open once they acknowledge.
 * Takes j. */
static void claim_start(struct sig_sess *s, struct connect_job *j)
{
    s->claim = j;
    s->claim_wait = j->others;
    s->nclaim_wait = j->nothers;
    j->others = NULL;
    j->nothers = 0;
    s->claim_ms = ml_now_ms();
    sig_bus_claim(s->sig->bus, s->room, s->pid, s->sid_s);
}

static void connect_done(struct db_job *job)
{
    struct connect_job *j = (struct connect_job *)job;
    struct sig *sig = j->sig;
    struct sig_sess *s = j->s;
    sig_revoked_apply(sig, &j->revoked); /* a meeting found lapsed was closed on the way */
    if (job->status == DB_UNAVAILABLE)
        ml_strlcpy(j->outcome, "unavailable", sizeof j->outcome);
    bool ok = !strcmp(j->outcome, "ok");
    if (ok && !j->resume)
        s->in_db = true;
    if (ok && !j->resume && j->nothers && !sig->stopping && !s->ended && !s->gone &&
        !s->close_code && s->room) {
        claim_start(s, j);
        return;
    }
    if (sig->stopping || s->ended) {
        if (s->gone || !s->wsi)
            sig_sess_end(s, false);
    } else if (!j->resume) {
        connect_new(s, j, ok);
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
    connect_job_free(j);
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
    j->ttl = sig->deps.credential_ttl_s;
    j->gen0 = sig_bus_gen(sig->bus);
    j->claims0 = s->room->claims;
    j->job.work = w_connect;
    j->job.done = connect_done;
    sig_sess_ref(s);
    sig_room_ref(j->room);
    if (!sig->deps.pool || db_submit(sig->deps.pool, &j->job) < 0) {
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
    if (!sig_tuples(r) || PQntuples(r) != 1)
        return sig_sql_failed(r, "closing a signaling session");
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
    if (!sig->deps.pool || db_submit(sig->deps.pool, &j->job) < 0) {
        j->job.status = DB_UNAVAILABLE;
        disconnect_done(&j->job);
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
    if (!sig_tuples(r))
        return sig_sql_failed(r, "signaling resync");
    j->n = (size_t)PQntuples(r);
    j->sid = ml_xcalloc(j->n + 1, sizeof *j->sid);
    j->outcome = ml_xcalloc(j->n + 1, sizeof *j->outcome);
    for (size_t i = 0; i < j->n; i++) {
        j->sid[i] = ml_xstrdup(PQgetvalue(r, (int)i, RESYNC_SESSION));
        j->outcome[i] = ml_xstrdup(PQgetvalue(r, (int)i, RESYNC_OUTCOME));
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
    if (!sig->deps.pool || db_submit(sig->deps.pool, &j->job) < 0) {
        j->job.status = DB_UNAVAILABLE;
        resync_done(&j->job);
    }
}
