/* The signaling WebSocket connection, on the HTTP server's thread: its authentication (the
 * join's signaling token as ?token=, or a resume token), reading messages within the limits
 * (size, rate), writing one frame per WRITEABLE, pings and the idle timeout, and what its
 * closing means for its session. */
#include "config.h"

#include "signal/sig-int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SUBSYS "sig"

/* Per WebSocket: the session it carries (NULL once it let go). */

static struct sig *sig_of(struct lws *wsi)
{
    return http_ws_arg(wsi); /* NULL when signaling is off */
}

/* Refuses a connection before it has a session: the close frame says why. */
static int refuse(struct lws *wsi, struct sig_pss *pss, int code, const char *reason)
{
    pss->refused = code;
    lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)reason, strlen(reason));
    return -1;
}

/* A limit was breached: the log line, the counter, the close. */
static void limit_close(struct sig_sess *s, int code, const char *fmt, ...) ML_PRINTF(3, 4);
static void limit_close(struct sig_sess *s, int code, const char *fmt, ...)
{
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    ML_LOG_LIMITED(ML_LOG_NOTICE, SUBSYS,
                   "closing %d %s (meeting=%s participant=%s session=%s peer=%s): %s", code,
                   sig_close_reason(code), s->room ? s->room->id_s : "-", s->pid_s, s->sid_s,
                   s->peer, what);
    s->sig->ctr.limit_closes++;
    sig_sess_close(s, code, NULL, false);
}

/* ------------------------------------------------------------------ opening */

/* The value of ?name= (name includes the '=') copied into out, or NULL when absent or longer
 * than outlen. lws_get_urlarg_by_name stops at the first argument longer than its buffer, so
 * every lookup goes through one buffer that fits any argument we accept (a token). */
static const char *urlarg(struct lws *wsi, const char *name, char *out, size_t outlen)
{
    static char scratch[SIG_TOKEN_MAX + 64]; /* the lws thread only */
    const char *v = lws_get_urlarg_by_name(wsi, name, scratch, (int)sizeof scratch);
    if (!v || strlen(v) >= outlen)
        return NULL;
    memcpy(out, v, strlen(v) + 1);
    return out;
}

static int open_resume(struct sig *sig, struct lws *wsi, struct sig_pss *pss, const char *tok,
                       const char *peer)
{
    uint8_t key[16];
    enum sig_resume_err re = sig_resume_token_parse(tok, sig->node, key);
    if (re != SIG_RESUME_OK) {
        ML_LOG_LIMITED(ML_LOG_INFO, SUBSYS, "resume refused (peer=%s): %s", peer,
                       re == SIG_RESUME_OTHER_NODE ? "the token names another node"
                                                   : "malformed resume token");
        return refuse(wsi, pss, SIG_CLOSE_RESUME, sig_close_reason(SIG_CLOSE_RESUME));
    }
    struct sig_hnode *n = sig_htab_get(&sig->by_token, key);
    struct sig_sess *s = n ? (struct sig_sess *)n : NULL; /* tok is the first member */
    int64_t now = ml_now_ms();
    if (!s || s->state != SIG_S_DETACHED ||
        now - s->detached_ms > sig->cfg.resume_window_s * 1000) {
        ML_LOG_LIMITED(ML_LOG_INFO, SUBSYS, "resume refused (peer=%s): %s", peer,
                       s ? "the session is not waiting for a resume" : "unknown or expired");
        return refuse(wsi, pss, SIG_CLOSE_RESUME, sig_close_reason(SIG_CLOSE_RESUME));
    }
    char buf[32];
    const char *ls = urlarg(wsi, "last_seq=", buf, sizeof buf);
    long long last = (long long)s->join_seq;
    if (ls && (ml_parse_ll(ls, 0, 1LL << 62, &last) < 0 || (uint64_t)last > s->room->seq)) {
        ML_LOG_LIMITED(ML_LOG_INFO, SUBSYS, "resume refused (session=%s peer=%s): bad last_seq",
                       s->sid_s, peer);
        return refuse(wsi, pss, SIG_CLOSE_RESUME, sig_close_reason(SIG_CLOSE_RESUME));
    }
    if ((uint64_t)last < s->join_seq)
        last = (long long)s->join_seq;
    s->wsi = wsi;
    pss->s = s;
    s->state = SIG_S_RESUMING;
    s->hold = true;
    s->resume_from = (uint64_t)last;
    s->last_rx_ms = now;
    s->ping_due = false;
    s->clean_close = false;
    sig_bucket_init(&s->bucket, sig->cfg.burst, now);
    ml_strlcpy(s->peer, peer, sizeof s->peer);
    ML_COUNT(sig->ws_open, 1);
    sig->ctr.connections++;
    uint8_t mid[16];
    memcpy(mid, s->room->node.key, 16);
    sig_db_connect(s, mid, true);
    return 0;
}

static int on_open(struct sig *sig, struct lws *wsi, struct sig_pss *pss)
{
    char peer[64];
    http_client_addr(wsi, peer, sizeof peer);
    if (!sig || sig->stopping || !sig->cfg.enabled)
        return refuse(wsi, pss, http_err_ws_code(HTTP_E_UNAVAILABLE),
                      http_err_code(HTTP_E_UNAVAILABLE));
    if (__atomic_load_n(&sig->going_away, __ATOMIC_ACQUIRE))
        return refuse(wsi, pss, SIG_CLOSE_GOING_AWAY, "node_stopping");
    if (!sig_bus_ready(sig->bus)) {
        ML_LOG_LIMITED(ML_LOG_NOTICE, SUBSYS,
                       "signaling connection refused (peer=%s): not registered with the "
                       "database yet",
                       peer);
        return refuse(wsi, pss, http_err_ws_code(HTTP_E_UNAVAILABLE),
                      http_err_code(HTTP_E_UNAVAILABLE));
    }
    static char buf[SIG_TOKEN_MAX + 64]; /* the lws thread only */
    const char *rt = urlarg(wsi, "resume=", buf, sizeof buf);
    if (rt)
        return open_resume(sig, wsi, pss, rt, peer);
    const char *tok = urlarg(wsi, "token=", buf, sizeof buf);
    if (!tok) { /* clients that can set headers may use Authorization: Bearer */
        int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
        if (n > 7 && (size_t)n < sizeof buf &&
            lws_hdr_copy(wsi, buf, (int)sizeof buf, WSI_TOKEN_HTTP_AUTHORIZATION) > 0 &&
            !strncasecmp(buf, "Bearer ", 7))
            tok = buf + 7;
    }
    if (!tok || !*tok)
        return refuse(wsi, pss, http_err_ws_code(HTTP_E_UNAUTHENTICATED),
                      http_err_code(HTTP_E_UNAUTHENTICATED));
    uint8_t mid[16], pid[16], uid[16];
    enum http_err e = sig->deps.verify(sig->deps.arg, tok, mid, pid, uid);
    if (e != HTTP_OK) {
        ML_LOG_LIMITED(ML_LOG_INFO, SUBSYS, "signaling connection refused (peer=%s): %s", peer,
                       http_err_code(e));
        return refuse(wsi, pss, http_err_ws_code(e), http_err_code(e));
    }
    struct sig_room *room = sig_room_get(sig, mid, true);
    struct sig_sess *s = sig_sess_new(sig, room);
    s->wsi = wsi;
    pss->s = s;
    memcpy(s->pid, pid, 16);
    ml_uuid_format(pid, s->pid_s);
    ml_uuid_format(uid, s->uid_s);
    ml_uuid_random(s->sid);
    ml_uuid_format(s->sid, s->sid_s);
    ml_random(s->tok.key, sizeof s->tok.key);
    ml_strlcpy(s->peer, peer, sizeof s->peer);
    s->join_seq = room->seq;
    ML_COUNT(sig->ws_open, 1);
    sig->ctr.connections++;
    sig_db_connect(s, mid, false);
    return 0;
}

/* ------------------------------------------------------------------ messages */

static void on_message(struct sig_sess *s, const char *text, size_t n)
{
    struct sig *sig = s->sig;
    if (!sig_bucket_take(&s->bucket, sig->cfg.rate, sig->cfg.burst, ml_now_ms())) {
        limit_close(s, SIG_CLOSE_RATE, "more than signaling.rate=%lld messages a second",
                    sig->cfg.rate);
        return;
    }
    sig->ctr.messages_in++;
    json_t *root = NULL;
    struct sig_msg m;
    char msg[200] = "";
    enum http_err e = sig_msg_parse(text, n, &root, &m, msg, sizeof msg);
    if (e != HTTP_OK)
        sig_sess_error(s, m.id, e, msg);
    else if (s->state != SIG_S_LIVE)
        sig_sess_error(s, m.id, HTTP_E_BAD_REQUEST, "wait for joined (or resumed) first");
    else if (s->waiting && m.type->kind != SIG_M_PING)
        sig_sess_error(s, m.id, HTTP_E_WAITING, NULL);
    else
        sig_dispatch(s, &m);
    json_decref(m.payload);
    json_decref(root);
}

static void on_rx(struct sig_sess *s, struct lws *wsi, const char *in, size_t len)
{
    struct sig *sig = s->sig;
    if (s->close_code)
        return; /* closing: nothing more is read */
    s->last_rx_ms = ml_now_ms();
    if (lws_frame_is_binary(wsi)) {
        limit_close(s, SIG_CLOSE_BAD_FRAME, "a binary frame (%lld bytes)", (long long)len);
        return;
    }
    if (lws_is_first_fragment(wsi))
        ml_buf_reset(&s->rx);
    size_t remaining = lws_remaining_packet_payload(wsi);
    if (s->rx.len + len + remaining > (size_t)sig->cfg.max_message) {
        limit_close(s, SIG_CLOSE_TOO_BIG, "a message above signaling.max-message=%lld bytes",
                    sig->cfg.max_message);
        return;
    }
    bool done = lws_is_final_fragment(wsi) && remaining == 0;
    if (done && s->rx.len == 0) { /* the common case: one piece, no copy */
        on_message(s, in, len);
        return;
    }
    (void)ml_buf_add(&s->rx, in, len); /* within max-message: checked above */
    if (!done)
        return;
    on_message(s, s->rx.p, s->rx.len);
    ml_buf_free(&s->rx); /* an idle connection keeps no buffer: messages in pieces are rare */
}

/* ------------------------------------------------------------------ writing */

static int write_frame(struct lws *wsi, struct sig_frame *f)
{
    int n = lws_write(wsi, f->data + LWS_PRE, f->len, LWS_WRITE_TEXT);
    return n < (int)f->len ? -1 : 0;
}

static int on_writable(struct sig_sess *s, struct lws *wsi)
{
    if (s->first) {
        struct sig_frame *f = s->first;
        s->first = NULL;
        int rc = write_frame(wsi, f);
        sig_frame_unref(f);
        if (rc < 0)
            return -1;
    } else if (s->hold) {
        return 0;
    } else if (s->ping_due) {
        /* not empty (lws hands an empty pong to nobody), and text (the pong's payload is
         * checked as UTF-8 with LWS_SERVER_OPTION_VALIDATE_UTF8) */
        unsigned char buf[LWS_PRE + 16];
        int n = (int)ml_snprintf((char *)buf + LWS_PRE, 16, "%08llx",
                                 (unsigned long long)(ml_now_ms() & 0xffffffff));
        s->ping_due = false;
        if (lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_PING) < n)
            return -1;
    } else if (s->qhead) {
        struct sig_qent *e = s->qhead;
        s->qhead = e->next;
        if (!s->qhead)
            s->qtail = NULL;
        s->qbytes -= e->f->len;
        int rc = write_frame(wsi, e->f);
        sig_frame_unref(e->f);
        free(e);
        if (rc < 0)
            return -1;
    } else if (s->close_code && !(s->flushing && s->cmds)) {
        lws_close_reason(wsi, (enum lws_close_status)s->close_code,
                         (unsigned char *)s->close_reason, strlen(s->close_reason));
        return -1;
    }
    if (s->first ||
        (!s->hold && (s->qhead || s->ping_due || (s->close_code && !(s->flushing && s->cmds)))))
        lws_callback_on_writable(wsi);
    return 0;
}

/* ------------------------------------------------------------------ closing */

/* Counts the code the connection ended with: the refusal's, the server's close, the client's,
 * or 1006 (closed without a close frame). */
static void count_close(struct sig *sig, const struct sig_pss *pss)
{
    int code = pss->refused                   ? pss->refused
               : pss->s && pss->s->close_code ? pss->s->close_code
               : pss->peer_code               ? pss->peer_code
                                              : 1006;
    size_t slot = SIG_CLOSE_NCODES;
    for (size_t i = 0; i < SIG_CLOSE_NCODES; i++)
        if (sig_close_codes[i] == code)
            slot = i;
    ML_COUNT(sig->closes[slot], 1);
}

static void on_closed(struct sig *sig, struct sig_pss *pss)
{
    struct sig_sess *s = pss->s;
    if (!s)
        return;
    pss->s = NULL;
    s->wsi = NULL;
    ML_COUNT(sig->ws_open, -1);
    sig->ctr.connections--;
    int64_t now = ml_now_ms();
    if (sig->stopping || __atomic_load_n(&sig->going_away, __ATOMIC_ACQUIRE)) {
        /* the node's rows go with it (sig_bus_stop) */
        s->in_db = false;
        s->gone = true;
        if (s->state != SIG_S_CONNECTING && s->state != SIG_S_RESUMING)
            sig_sess_end(s, false);
        return;
    }
    switch (s->state) {
    case SIG_S_CONNECTING:
        s->gone = true; /* the connect job's completion ends it */
        return;
    case SIG_S_RESUMING:
        if (s->close_code)
            s->gone = true;
        return; /* the resume job's completion decides */
    case SIG_S_LIVE:
        if (s->close_code || s->clean_close) {
            if (s->opened)
                ML_INFO(SUBSYS,
                        "session closed (meeting=%s participant=%s session=%s peer=%s): %d %s "
                        "after %llds",
                        s->room->id_s, s->pid_s, s->sid_s, s->peer,
                        s->close_code ? s->close_code : SIG_CLOSE_NORMAL,
                        s->close_code ? s->close_reason : "by the client",
                        (long long)((now - s->opened_ms) / 1000));
            sig_sess_end(s, true);
            return;
        }
        ML_INFO(SUBSYS,
                "connection lost (meeting=%s participant=%s session=%s peer=%s): resumable for "
                "%llds",
                s->room->id_s, s->pid_s, s->sid_s, s->peer, sig->cfg.resume_window_s);
        s->state = SIG_S_DETACHED;
        s->detached_ms = now;
        s->ping_due = false;
        sig_sess_clear_queue(s);
        sig_frame_unref(s->first);
        s->first = NULL;
        if (s->in_db)
            sig_db_disconnect(s, s->room, true);
        return;
    default:
        return;
    }
}

/* ------------------------------------------------------------------ timers */

void sig_tick(void *arg)
{
    struct sig *sig = arg;
    if (sig->stopping)
        return;
    int64_t now = ml_now_ms();
    int64_t idle = sig->cfg.idle_timeout_s * 1000, ping = sig->cfg.ping_interval_s * 1000;
    for (struct sig_sess *s = sig->all, *next; s; s = next) {
        next = s->anext;
        if (s->claim) {
            sig_sess_claim_expire(s, now);
            continue;
        }
        if (s->wsi && s->close_code) {
            if (now - s->close_ms > 3000) /* a client that reads nothing: cut */
                lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
            continue;
        }
        if (s->wsi && s->state == SIG_S_LIVE) {
            int64_t quiet = now - s->last_rx_ms;
            if (quiet > idle) {
                limit_close(s, SIG_CLOSE_IDLE, "nothing received for %llds",
                            (long long)(quiet / 1000));
            } else if (quiet > ping && !s->ping_due) {
                s->ping_due = true;
                lws_callback_on_writable(s->wsi);
            }
        } else if (s->wsi && s->state == SIG_S_CONNECTING && now - s->opened_ms > 30000) {
            /* the database has not answered: the client may try again */
            sig_sess_close(s, http_err_ws_code(HTTP_E_UNAVAILABLE),
                           http_err_code(HTTP_E_UNAVAILABLE), false);
        } else if (s->state == SIG_S_DETACHED &&
                   now - s->detached_ms > sig->cfg.resume_window_s * 1000) {
            ML_INFO(SUBSYS,
                    "session expired (meeting=%s participant=%s session=%s): not resumed "
                    "within %llds",
                    s->room ? s->room->id_s : "-", s->pid_s, s->sid_s, sig->cfg.resume_window_s);
            sig_sess_end(s, true);
        }
    }
}

/* ------------------------------------------------------------------ the callback */

int sig_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct sig_pss *pss = user;
    struct sig *sig = sig_of(wsi);
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (!http_wake_is_primary(wsi)) /* once per wake, not once per vhost */
            return 0;
        if (sig && __atomic_load_n(&sig->going_away, __ATOMIC_ACQUIRE) && !sig->stopping) {
            for (struct sig_sess *s = sig->all; s; s = s->anext)
                if (s->wsi)
                    sig_sess_close(s, SIG_CLOSE_GOING_AWAY, "node_stopping", false);
        } else if (sig && sig->bus && !sig->stopping) {
            sig_bus_drain(sig->bus);
        }
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        char uri[128];
        int n = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI);
        if (n <= 0 || (size_t)n >= sizeof uri ||
            lws_hdr_copy(wsi, uri, (int)sizeof uri, WSI_TOKEN_GET_URI) < 0 ||
            strcmp(uri, SIG_PATH) != 0)
            return 1; /* not our path: no WebSocket here */
        return 0;
    }
    case LWS_CALLBACK_ESTABLISHED:
        pss->s = NULL;
        pss->refused = pss->peer_code = 0;
        return on_open(sig, wsi, pss);
    case LWS_CALLBACK_RECEIVE:
        if (pss->s)
            on_rx(pss->s, wsi, in, len);
        return 0;
    case LWS_CALLBACK_RECEIVE_PONG:
        if (pss->s)
            pss->s->last_rx_ms = ml_now_ms();
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (len >= 2) {
            const unsigned char *p = in;
            pss->peer_code = p[0] << 8 | p[1];
            if (pss->s)
                pss->s->clean_close = pss->peer_code == SIG_CLOSE_NORMAL;
        }
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return pss->s ? on_writable(pss->s, wsi) : 0;
    case LWS_CALLBACK_CLOSED:
        if (sig) {
            count_close(sig, pss);
            on_closed(sig, pss);
        }
        return 0;
    default:
        return 0;
    }
}
