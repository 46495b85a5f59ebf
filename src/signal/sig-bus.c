/* Signaling between the nodes that share one PostgreSQL. Two threads of their own, each with
 * its own connection, so that neither waits for the pool nor holds up the lws thread:
 *
 *   - the LISTEN thread (db_listener, channels meetlite_sig for the triggers' events and this
 *     node's own, ml_sig_<node>, for the other nodes' records) hands every notification to the
 *     lws thread through a queue and lws_cancel_service(); a payload too large for NOTIFY is
 *     read from sig_outbox here, in its place in the stream, so that order is kept;
 *   - the publisher thread ("sigpub") registers the node, beats its heart (sweeping the nodes
 *     that stopped beating, with their sessions), and sends what the lws thread queued: one
 *     transaction per batch, records packed into NOTIFY payloads to each other node's channel
 *     (a prepared pg_notify statement for a single payload; ml_sig_publish when the batch
 *     holds more, or stores chat or media states, or has a payload for sig_outbox), in queue
 *     order.
 *
 * What is sent to one participant whose sessions are all on this node is not published at all
 * (see "claims" below); a record for a participant with no session on the receiving node is
 * dropped there (nothing to send, nothing to keep for replay).
 *
 * Records are published only while another node is alive (the heartbeat counts them, and a
 * node-up notification says so at once): a node alone never pays for NOTIFY.
 *
 * Chat while the database is away: refused to its sender (sig_bus_can_store, checked before a
 * chat is relayed), so that nothing is shown that will not be in the history. A chat accepted
 * just before the loss was noticed is not dropped: chat items stay at the head of the queue
 * (bounded by signaling.publish-queue, in order) and are stored once the publisher is back;
 * their ids make a batch sent again after a lost COMMIT harmless (ON CONFLICT DO NOTHING).
 *
 * Record format, one per line of a payload "N<TAB>node<LF>record<LF>record...":
 *   kind<TAB>meeting<TAB>to or *<TAB>except or -<TAB>body
 * kind R is relayed as is; P changes the roster (participant-joined, -left, -updated); K claims
 * a participant and A acknowledges a claim (their bodies: a session id; "node session"). The
 * body is a JSON object's compact text (no raw new line or tab in it). */
#include "config.h"

#include "signal/sig-int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SUBSYS "sig"
#define SIG_KEEPALIVE_MS 5000
#define SIG_BATCH_MAX 1024        /* items a batch takes without waiting for more */
#define SIG_PUB_RETRY_MAX_MS 1000 /* the publisher's reconnect backoff stops here */

struct sig_item {
    struct sig_item *next;
    char kind;  /* R, P (records); C (chat), M (media state); X (control, inbound) */
    size_t len; /* excluding the NUL */
    char data[];
};

struct sig_bus {
    struct sig *sig;
    char chan[64]; /* this node's channel: ml_sig_channel() of sql/014_sig_routing.sql */
    struct db_listener *listener;
    /* inbound: LISTEN thread -> lws thread */
    pthread_mutex_t in_mu;
    struct sig_item *ihead, *itail;
    size_t in_n;
    PGconn *fetch; /* LISTEN thread only: reads sig_outbox */
    /* outbound: lws thread -> publisher */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct sig_item *ohead, *otail;
    size_t out_n;
    int64_t oldest_us; /* when the first item of the queue came */
    bool stop;         /* under mu */
    pthread_t thread;
    bool started;
    /* publisher thread only */
    PGconn *pg;
    bool prepared; /* SIG_NOTIFY_STMT is prepared on pg */
    int64_t backoff_ms, next_try_ms, next_hb_ms;
    bool was_registered;
    /* any thread: relaxed atomics */
    bool listen_up, registered;
    uint32_t listen_gen; /* LISTEN connections made so far */
    bool pub_up;         /* the publisher holds a connection */
    unsigned nodes;
    uint64_t dropped;
};

static struct sig_item *item_new(char kind, const char *data, size_t n)
{
    struct sig_item *it = malloc(sizeof *it + n + 1);
    if (!it)
        return NULL;
    it->next = NULL;
    it->kind = kind;
    it->len = n;
    memcpy(it->data, data, n);
    it->data[n] = 0;
    return it;
}

static void items_free(struct sig_item *it)
{
    while (it) {
        struct sig_item *next = it->next;
        free(it);
        it = next;
    }
}

static void count_drop(struct sig_bus *b, uint64_t n)
{
    __atomic_add_fetch(&b->dropped, n, __ATOMIC_RELAXED);
}

bool sig_bus_ready(const struct sig_bus *b)
{
    return b && __atomic_load_n(&b->listen_up, __ATOMIC_RELAXED) &&
           __atomic_load_n(&b->registered, __ATOMIC_RELAXED);
}

bool sig_bus_can_store(const struct sig_bus *b)
{
    return sig_bus_ready(b) && __atomic_load_n(&b->pub_up, __ATOMIC_RELAXED);
}

/* Puts the chat items of a batch that could not be sent back at the head of the queue (they are
 * older than anything queued since); every other item is dropped and counted. Takes items. */
static void keep_chats(struct sig_bus *b, struct sig_item *items)
{
    struct sig_item *head = NULL, *last = NULL;
    size_t kept = 0, dropped = 0;
    while (items) {
        struct sig_item *next = items->next;
        if (items->kind == 'C') {
            items->next = NULL;
            if (last)
                last->next = items;
            else
                head = items;
            last = items;
            kept++;
        } else {
            free(items);
            dropped++;
        }
        items = next;
    }
    count_drop(b, dropped);
    if (!head)
        return;
    pthread_mutex_lock(&b->mu);
    last->next = b->ohead;
    if (!b->ohead)
        b->otail = last;
    b->ohead = head;
    b->out_n += kept;
    b->oldest_us = ml_now_us();
    pthread_mutex_unlock(&b->mu);
}

unsigned sig_bus_nodes(const struct sig_bus *b)
{
    return b ? __atomic_load_n(&b->nodes, __ATOMIC_RELAXED) : 1;
}

uint32_t sig_bus_gen(const struct sig_bus *b)
{
    if (!b || !__atomic_load_n(&b->listen_up, __ATOMIC_ACQUIRE))
        return 0;
    return __atomic_load_n(&b->listen_gen, __ATOMIC_ACQUIRE);
}

/* ------------------------------------------------------------------ inbound */

static void push_in(struct sig_bus *b, char kind, const char *data, size_t n)
{
    struct sig_item *it = item_new(kind, data, n);
    if (!it) {
        count_drop(b, 1);
        return;
    }
    pthread_mutex_lock(&b->in_mu);
    if (b->in_n >= (size_t)b->sig->cfg.publish_queue) {
        pthread_mutex_unlock(&b->in_mu);
        free(it);
        count_drop(b, 1);
        ML_LOG_LIMITED(ML_LOG_WARN, SUBSYS,
                       "a notification from another node dropped: %lld waiting already",
                       b->sig->cfg.publish_queue);
        return;
    }
    bool was_empty = !b->ihead;
    if (b->itail)
        b->itail->next = it;
    else
        b->ihead = it;
    b->itail = it;
    b->in_n++;
    pthread_mutex_unlock(&b->in_mu);
    if (was_empty)
        http_server_wake(b->sig->http);
}

/* Is payload from this node (it hears its own NOTIFYs: skipped)? */
static bool own(const struct sig_bus *b, const char *p, char lead, char end)
{
    size_t n = strlen(b->sig->node);
    const char *q = p + 1;
    if (p[0] != lead)
        return false;
    if (lead == 'N') {
        if (p[1] != '\t')
            return false;
        q = p + 2;
    }
    return !strncmp(q, b->sig->node, n) && q[n] == end;
}

/* A large payload: read from sig_outbox on this thread's own connection. */
static void fetch_outbox(struct sig_bus *b, const char *ref)
{
    const char *tab = strchr(ref, '\t');
    if (!tab)
        return;
    char err[256];
    if (!b->fetch) {
        b->fetch = db_connect(&b->sig->db, "meetlited-sigfetch", err, sizeof err);
        if (!b->fetch) {
            count_drop(b, 1);
            ML_LOG_LIMITED(ML_LOG_WARN, SUBSYS, "a large message from another node lost: %s", err);
            return;
        }
    }
    const char *p[] = {tab + 1};
    PGresult *r = PQexecParams(b->fetch, "SELECT payload FROM sig_outbox WHERE id = $1", 1, NULL, p,
                               NULL, NULL, 0);
    if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        push_in(b, 'N', PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
    } else {
        count_drop(b, 1);
        ML_LOG_LIMITED(ML_LOG_WARN, SUBSYS, "a large message from another node lost: %s",
                       r ? PQresultErrorMessage(r) : PQerrorMessage(b->fetch));
        if (PQstatus(b->fetch) != CONNECTION_OK) {
            PQfinish(b->fetch);
            b->fetch = NULL;
        }
    }
    PQclear(r);
}

static void l_notify(void *arg, const char *channel, const char *payload)
{
    struct sig_bus *b = arg;
    ML_UNUSED(channel);
    if (own(b, payload, 'N', '\n') || own(b, payload, '@', '\t'))
        return;
    if (payload[0] == '@') {
        fetch_outbox(b, payload + 1);
        return;
    }
    if (payload[0] == 'D' && strstr(payload, "\"node-up\"") &&
        !strstr(payload, b->sig->node)) /* another node: publish from now on */
        if (__atomic_load_n(&b->nodes, __ATOMIC_RELAXED) < 2)
            __atomic_store_n(&b->nodes, 2, __ATOMIC_RELAXED);
    push_in(b, payload[0], payload, strlen(payload));
}

static int l_connected(void *arg, PGconn *pg, bool first, char *err, size_t errlen)
{
    struct sig_bus *b = arg;
    ML_UNUSED(pg);
    ML_UNUSED(err);
    ML_UNUSED(errlen);
    /* a new generation first: what was known exclusive before may have been claimed meanwhile */
    uint32_t gen = __atomic_add_fetch(&b->listen_gen, 1, __ATOMIC_ACQ_REL);
    if (!gen)
        __atomic_store_n(&b->listen_gen, 1, __ATOMIC_RELEASE); /* 0 means down */
    __atomic_store_n(&b->listen_up, true, __ATOMIC_RELEASE);
    if (!first) /* notifications may have been missed meanwhile */
        push_in(b, 'X', "X\tresync", 8);
    pthread_mutex_lock(&b->mu);
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->mu);
    return 0;
}

static void l_state(void *arg, bool up, bool was_up, const char *err, unsigned retry_ms)
{
    struct sig_bus *b = arg;
    if (up) {
        ML_NOTICE(SUBSYS, "signaling LISTEN connection up (node %s)", b->sig->node);
        return;
    }
    __atomic_store_n(&b->listen_up, false, __ATOMIC_RELEASE);
    if (was_up)
        ML_WARN(SUBSYS,
                "signaling LISTEN connection lost: %s; new sessions are refused until it is "
                "back (retry in %u ms)",
                err ? err : "?", retry_ms);
    else
        ML_LOG_LIMITED(ML_LOG_WARN, SUBSYS,
                       "signaling LISTEN connection failed: %s (retry in %u ms)", err ? err : "?",
                       retry_ms);
}

/* ------------------------------------------------------------------ inbound, lws thread */

static bool uuid_or(const char *s, size_t n, uint8_t out[16], bool *present, char none)
{
    if (n == 1 && s[0] == none) {
        *present = false;
        return true;
    }
    char tmp[ML_UUID_STR];
    if (n != 36)
        return false;
    memcpy(tmp, s, 36);
    tmp[36] = 0;
    *present = true;
    return ml_uuid_parse(tmp, out);
}

static void handle_claim(struct sig *sig, struct sig_room *r, const uint8_t mid[16],
                         const uint8_t pid[16], const char *from, size_t fromlen, const char *body,
                         size_t n);
static void handle_ack(struct sig *sig, struct sig_room *r, const uint8_t pid[16], const char *from,
                       size_t fromlen, const char *body, size_t n);

/* A session id as a claim carries it: the 36 characters of ml_uuid_format. */
static bool sid_ok(const char *s, size_t n)
{
    uint8_t u[16];
    bool present;
    return n == ML_UUID_STR - 1 && uuid_or(s, n, u, &present, 0) && present;
}

bool sig_bus_rec_parse(const char *line, size_t n, struct sig_bus_rec *out)
{
    const char *f[4];
    size_t fl[4];
    const char *p = line, *end = line + n;
    for (int i = 0; i < 4; i++) {
        const char *tab = memchr(p, '\t', (size_t)(end - p));
        if (!tab)
            return false;
        f[i] = p;
        fl[i] = (size_t)(tab - p);
        p = tab + 1;
    }
    bool has_mid;
    if (fl[0] != 1 || !uuid_or(f[1], fl[1], out->mid, &has_mid, 0) || !has_mid ||
        !uuid_or(f[2], fl[2], out->to, &out->has_to, '*') ||
        !uuid_or(f[3], fl[3], out->except, &out->has_except, '-'))
        return false;
    out->kind = f[0][0];
    out->body = p;
    out->body_len = (size_t)(end - p);
    const char *b = out->body;
    size_t bn = out->body_len;
    switch (out->kind) {
    case 'R':
    case 'P': /* a frame is made of it by putting "seq" after its '{' (sig_frame_new) */
        return bn >= 2 && b[0] == '{' && b[bn - 1] == '}';
    case 'K':
        return out->has_to && sid_ok(b, bn);
    case 'A': {
        if (!out->has_to || bn < ML_UUID_STR + 1)
            return false;
        const char *sid = b + bn - (ML_UUID_STR - 1);
        return sid[-1] == ' ' && sid - 1 > b && sid_ok(sid, ML_UUID_STR - 1);
    }
    default:
        return false;
    }
}

/* One record of node from (fromlen bytes, not NUL-terminated). */
static void handle_record(struct sig *sig, const char *from, size_t fromlen, const char *line,
                          size_t n)
{
    struct sig_bus_rec rec;
    if (!sig_bus_rec_parse(line, n, &rec))
        return;
    const uint8_t *to = rec.has_to ? rec.to : NULL, *except = rec.has_except ? rec.except : NULL;
    struct sig_room *r = sig_room_get(sig, rec.mid, false);
    if (rec.kind == 'K') { /* acknowledged whether or not the meeting is here */
        handle_claim(sig, r, rec.mid, rec.to, from, fromlen, rec.body, rec.body_len);
        return;
    }
    if (!r || r->ended)
        return; /* no session of that meeting here */
    sig->ctr.remote_in++;
    switch (rec.kind) {
    case 'R':
        /* for one participant with no session here: nothing to send, nothing to replay */
        if (to && !sig_room_has_session(r, to, NULL))
            return;
        sig_room_send_text(r, rec.body, rec.body_len, to, except);
        return;
    case 'A':
        handle_ack(sig, r, rec.to, from, fromlen, rec.body, rec.body_len);
        return;
    default:
        break;
    }
    json_t *o = json_loadb(rec.body, rec.body_len, 0, NULL);
    const char *type = json_string_value(json_object_get(o, "type"));
    if (type && !strcmp(type, "participant-left")) {
        uint8_t pid[16];
        if (ml_uuid_parse(json_string_value(json_object_get(o, "participant_id")), pid))
            sig_on_offline(sig, rec.mid, pid);
    } else if (type &&
               (!strcmp(type, "participant-joined") || !strcmp(type, "participant-updated"))) {
        if (sig_room_member_set(r, json_object_get(o, "participant")))
            sig_room_send_text(r, rec.body, rec.body_len, to, except);
    }
    json_decref(o);
}

/* The database's events (the triggers' NOTIFY "k"), one row each: whether it needs a
 * participant ("p"), and whether it changes what the control plane caches of the meeting
 * (deps.changed: another node's change shows here at once). */
enum db_ev {
    EV_LEFT,
    EV_ENDED,
    EV_ROLE,
    EV_OFFLINE,
    EV_SETTINGS,
    EV_HAND,
    EV_WAITING,
    EV_ADMITTED,
    EV_LOBBY_LEFT
};
static const struct {
    const char *k;
    enum db_ev ev;
    bool needs_p, changes;
} db_events[] = {
    {"left", EV_LEFT, true, true},
    {"removed", EV_LEFT, true, true},
    {"ended", EV_ENDED, false, true},
    {"role", EV_ROLE, true, true},
    {"offline", EV_OFFLINE, true, false},
    {"settings", EV_SETTINGS, false, true},
    {"hand", EV_HAND, true, false},
    {"waiting", EV_WAITING, true, true},
    {"admitted", EV_ADMITTED, true, true},
    {"denied", EV_LOBBY_LEFT, true, true},
    {"lobby-left", EV_LOBBY_LEFT, true, true},
};

static void handle_db_event(struct sig *sig, const char *text)
{
    json_t *o = json_loads(text, 0, NULL);
    const char *k = json_string_value(json_object_get(o, "k"));
    const char *m = json_string_value(json_object_get(o, "m"));
    uint8_t mid[16], pid[16];
    bool has_m = ml_uuid_parse(m, mid);
    bool has_p = ml_uuid_parse(json_string_value(json_object_get(o, "p")), pid);
    size_t i = 0, n = sizeof db_events / sizeof *db_events;
    while (k && i < n && strcmp(k, db_events[i].k))
        i++;
    if (!k || i == n || !has_m) {
        json_decref(o);
        return;
    }
    if (db_events[i].changes)
        sig->deps.changed(sig->deps.arg, m);
    if (db_events[i].needs_p && !has_p) {
        json_decref(o);
        return;
    }
    switch (db_events[i].ev) {
    case EV_LEFT:
        sig_on_member_left(sig, mid, pid, k);
        break;
    case EV_ENDED:
        sig_on_meeting_ended(sig, mid, json_string_value(json_object_get(o, "status")));
        break;
    case EV_ROLE: {
        const char *role = json_string_value(json_object_get(o, "role"));
        sig_on_role(sig, mid, pid, role && !strcmp(role, "ADMIN"));
        break;
    }
    case EV_OFFLINE:
        sig_on_offline(sig, mid, pid);
        break;
    case EV_SETTINGS:
        sig_on_settings(sig, mid, json_string_value(json_object_get(o, "screen_share")));
        break;
    case EV_HAND:
        sig_on_hand(sig, mid, pid, (int64_t)json_integer_value(json_object_get(o, "at")));
        break;
    case EV_WAITING:
        sig_on_lobby_arrived(sig, mid, pid, json_string_value(json_object_get(o, "name")));
        break;
    case EV_ADMITTED:
        sig_on_admitted(sig, mid, pid);
        break;
    case EV_LOBBY_LEFT:
        sig_on_lobby_left(sig, mid, pid, !strcmp(k, "denied") ? "denied" : "left");
        break;
    }
    json_decref(o);
}

void sig_bus_handle(struct sig *sig, const char *payload, size_t n)
{
    if (n < 2 || payload[1] != '\t')
        return;
    switch (payload[0]) {
    case 'D':
        handle_db_event(sig, payload + 2);
        return;
    case 'X':
        if (!strcmp(payload + 2, "resync"))
            sig_db_resync(sig);
        return;
    case 'N': {
        const char *p = memchr(payload, '\n', n), *end = payload + n;
        const char *from = payload + 2;
        size_t fromlen = p ? (size_t)(p - from) : 0;
        while (p && p + 1 < end) {
            p++;
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
            if (len)
                handle_record(sig, from, fromlen, p, len);
            p = nl;
        }
        return;
    }
    default:
        return;
    }
}

void sig_bus_drain(struct sig_bus *b)
{
    pthread_mutex_lock(&b->in_mu);
    struct sig_item *it = b->ihead;
    b->ihead = b->itail = NULL;
    b->in_n = 0;
    pthread_mutex_unlock(&b->in_mu);
    while (it) {
        struct sig_item *next = it->next;
        if (!b->sig->stopping)
            sig_bus_handle(b->sig, it->data, it->len);
        free(it);
        it = next;
    }
}

/* ------------------------------------------------------------------ outbound, lws thread */

static void push_out(struct sig_bus *b, struct sig_item *it)
{
    if (!it) {
        count_drop(b, 1);
        return;
    }
    pthread_mutex_lock(&b->mu);
    if (b->out_n >= (size_t)b->sig->cfg.publish_queue || b->stop) {
        pthread_mutex_unlock(&b->mu);
        free(it);
        count_drop(b, 1);
        ML_LOG_LIMITED(ML_LOG_WARN, SUBSYS,
                       "a message for other nodes dropped: signaling.publish-queue=%lld full",
                       b->sig->cfg.publish_queue);
        return;
    }
    if (b->otail) {
        b->otail->next = it;
    } else {
        b->ohead = it;
        b->oldest_us = ml_now_us();
    }
    b->otail = it;
    b->out_n++;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->mu);
}

void sig_bus_record(struct sig_bus *b, char kind, const struct sig_room *r, const uint8_t *to,
                    const uint8_t *except, const char *body, size_t n)
{
    char head[2 + ML_UUID_STR * 3 + 8], ts[ML_UUID_STR], es[ML_UUID_STR];
    if (to)
        ml_uuid_format(to, ts);
    if (except)
        ml_uuid_format(except, es);
    size_t hn = ml_snprintf(head, sizeof head, "%c\t%s\t%s\t%s\t", kind, r->id_s, to ? ts : "*",
                            except ? es : "-");
    struct sig_item *it = malloc(sizeof *it + hn + n + 1);
    if (!it) {
        count_drop(b, 1);
        return;
    }
    it->next = NULL;
    it->kind = kind;
    it->len = hn + n;
    memcpy(it->data, head, hn);
    memcpy(it->data + hn, body, n);
    it->data[hn + n] = 0;
    b->sig->ctr.remote_out++;
    push_out(b, it);
}

void sig_bus_chat(struct sig_bus *b, const char *json, size_t n)
{
    push_out(b, item_new('C', json, n));
}

void sig_bus_media(struct sig_bus *b, const char *json, size_t n)
{
    push_out(b, item_new('M', json, n));
}

/* ------------------------------------------------------------------ claims
 *
 * What is sent to one participant stays on the node when all of the participant's sessions are
 * there (sig_room_exclusive): no NOTIFY for it. The risk is a session of that participant
 * opening on another node at that moment: the first node would keep to itself what the new
 * session should get. So a node that opens a session of a participant with sessions on other
 * nodes (the database says which, after the row of the new one is committed) claims it: a K
 * record "K meeting participant - session" to every node. Each node, on its lws thread, stops
 * keeping that participant's messages to itself and then acknowledges with an A record
 * "A meeting participant - claimer session", queued behind everything it published before.
 * The new session is told joined only once every node it awaited has acknowledged: from then on
 * each of them publishes what it sends to the participant, so nothing sent after joined is
 * missed. A node that acknowledges no more (it died: its rows are swept after
 * signaling.node-timeout-ms) is awaited SIG_CLAIM_WAIT_MS at most. A node whose LISTEN
 * connection drops forgets every exclusive participant (sig_bus_gen) as it may miss claims. */

void sig_bus_claim(struct sig_bus *b, const struct sig_room *r, const uint8_t pid[16],
                   const char *sid)
{
    sig_bus_record(b, 'K', r, pid, NULL, sid, strlen(sid));
}

static void handle_claim(struct sig *sig, struct sig_room *r, const uint8_t mid[16],
                         const uint8_t pid[16], const char *from, size_t fromlen, const char *body,
                         size_t n)
{
    char ack[SIG_NODE_MAX + ML_UUID_STR + 2], node[SIG_NODE_MAX];
    if (!fromlen || fromlen >= SIG_NODE_MAX || n != ML_UUID_STR - 1)
        return;
    memcpy(node, from, fromlen);
    node[fromlen] = 0;
    if (!sig_node_id_ok(node))
        return; /* not a node's name: no acknowledgement can reach it */
    if (r)
        sig_room_claimed(r, pid); /* before the acknowledgement goes out */
    if (!sig->bus)
        return; /* tests */
    size_t an = ml_snprintf(ack, sizeof ack, "%.*s %.*s", (int)fromlen, from, (int)n, body);
    struct sig_room tmp; /* sig_bus_record needs the meeting's id only */
    if (!r) {
        memset(&tmp, 0, sizeof tmp);
        ml_uuid_format(mid, tmp.id_s);
        r = &tmp;
    }
    sig_bus_record(sig->bus, 'A', r, pid, NULL, ack, an);
}

static void handle_ack(struct sig *sig, struct sig_room *r, const uint8_t pid[16], const char *from,
                       size_t fromlen, const char *body, size_t n)
{
    size_t nl = strlen(sig->node);
    if (n != nl + ML_UUID_STR || memcmp(body, sig->node, nl) || body[nl] != ' ')
        return; /* another node's claim */
    const char *sid = body + nl + 1;
    for (struct sig_sess *s = r->sessions; s; s = s->rnext)
        if (s->claim && !memcmp(s->pid, pid, 16) && !memcmp(s->sid_s, sid, ML_UUID_STR - 1)) {
            sig_sess_claim_acked(s, from, fromlen);
            return;
        }
}

/* ------------------------------------------------------------------ the publisher */

/* Appends to one of a batch's buffers (ml_buf without a ceiling: the batch is bounded by
 * signaling.publish-queue messages of at most signaling.max-message bytes). */
static void buf_add(struct ml_buf *b, const char *s, size_t n)
{
    (void)ml_buf_add(b, s, n);
}

static void drop_pg(struct sig_bus *b, const char *why)
{
    __atomic_store_n(&b->pub_up, false, __ATOMIC_RELAXED);
    ML_LOG_LIMITED(ML_LOG_WARN, SUBSYS, "signaling publisher lost its database connection: %s",
                   why);
    if (b->pg)
        PQfinish(b->pg);
    b->pg = NULL;
    b->prepared = false;
}

static PGresult *exec(struct sig_bus *b, const char *sql, int n, const char *const *p)
{
    PGresult *r = PQexecParams(b->pg, sql, n, NULL, p, NULL, NULL, 0);
    if (!r || PQstatus(b->pg) != CONNECTION_OK) {
        PQclear(r);
        drop_pg(b, PQerrorMessage(b->pg));
        return NULL;
    }
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
        ML_LOG_LIMITED(ML_LOG_ERROR, SUBSYS, "signaling statement failed: %s",
                       PQresultErrorMessage(r));
        PQclear(r);
        return NULL;
    }
    return r;
}

/* Registers the node (its earlier process's sessions dropped); true when done. */
static bool node_up(struct sig_bus *b)
{
    char to[24];
    ml_snprintf(to, sizeof to, "%lld", b->sig->cfg.node_timeout_ms);
    const char *p[] = {b->sig->node, to};
    PGresult *r = exec(b, "SELECT ml_sig_node_up($1, $2)", 2, p);
    if (!r)
        return false;
    unsigned live = (unsigned)strtoul(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    __atomic_store_n(&b->nodes, live ? live : 1, __ATOMIC_RELAXED);
    __atomic_store_n(&b->registered, true, __ATOMIC_RELAXED);
    ML_NOTICE(SUBSYS, "node %s registered for signaling (%u node%s alive)", b->sig->node, live,
              live == 1 ? "" : "s");
    if (b->was_registered) /* it had been swept: its sessions are recorded again */
        push_in(b, 'X', "X\tresync", 8);
    b->was_registered = true;
    return true;
}

static void heartbeat(struct sig_bus *b)
{
    char to[24];
    ml_snprintf(to, sizeof to, "%lld", b->sig->cfg.node_timeout_ms);
    const char *p[] = {b->sig->node, to};
    enum { HB_REGISTERED, HB_LIVE, HB_SWEPT };
    PGresult *r = exec(b, "SELECT registered, live, swept FROM ml_sig_heartbeat($1, $2)", 2, p);
    if (!r)
        return;
    bool registered = PQgetvalue(r, 0, HB_REGISTERED)[0] == 't';
    unsigned live = (unsigned)strtoul(PQgetvalue(r, 0, HB_LIVE), NULL, 10);
    long swept = strtol(PQgetvalue(r, 0, HB_SWEPT), NULL, 10);
    PQclear(r);
    if (swept > 0)
        ML_NOTICE(SUBSYS, "%ld signaling node%s silent for %lld ms: swept with their sessions",
                  swept, swept == 1 ? "" : "s", b->sig->cfg.node_timeout_ms);
    if (!registered) {
        ML_WARN(SUBSYS, "node %s had been taken for dead by the others: registering again",
                b->sig->node);
        __atomic_store_n(&b->registered, false, __ATOMIC_RELAXED);
        node_up(b);
        return;
    }
    __atomic_store_n(&b->nodes, live ? live : 1, __ATOMIC_RELAXED);
}

/* A batch of records that fits one NOTIFY payload, with no chat or media state (most
 * batches): one prepared statement, about half the PostgreSQL time of ml_sig_publish's parse,
 * plan and PL/pgSQL call (docs/benchmarks.md). A statement that also split the payloads in SQL
 * cost more than the function: its plan was made again for each batch. */
#define SIG_NOTIFY_STMT "sig_notify"
static PGresult *notify_one(struct sig_bus *b, const char *payload)
{
    if (!b->prepared) {
        PGresult *r = PQprepare(b->pg, SIG_NOTIFY_STMT,
                                "SELECT pg_notify(ml_sig_channel(n.node_id), $1) "
                                "FROM sig_nodes n WHERE n.node_id <> $2",
                                2, NULL);
        bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok) {
            if (PQstatus(b->pg) != CONNECTION_OK)
                drop_pg(b, PQerrorMessage(b->pg));
            else
                ML_LOG_LIMITED(ML_LOG_ERROR, SUBSYS, "signaling statement failed: %s",
                               r ? PQresultErrorMessage(r) : PQerrorMessage(b->pg));
            PQclear(r);
            return NULL;
        }
        PQclear(r);
        b->prepared = true;
    }
    const char *p[] = {payload, b->sig->node};
    PGresult *r = PQexecPrepared(b->pg, SIG_NOTIFY_STMT, 2, p, NULL, NULL, 0);
    if (!r || PQstatus(b->pg) != CONNECTION_OK) {
        PQclear(r);
        drop_pg(b, PQerrorMessage(b->pg));
        return NULL;
    }
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        ML_LOG_LIMITED(ML_LOG_ERROR, SUBSYS, "signaling statement failed: %s",
                       PQresultErrorMessage(r));
        PQclear(r);
        return NULL;
    }
    return r;
}

/* Sends a batch (queue order) in one transaction. True when sent; false when the connection
 * was lost (the caller keeps the chats), or the statement failed (counted as dropped). */
static bool publish(struct sig_bus *b, struct sig_item *items)
{
    struct ml_buf pay = ML_BUF_INIT(SIZE_MAX), cur = ML_BUF_INIT(SIZE_MAX),
                  chat = ML_BUF_INIT(SIZE_MAX), media = ML_BUF_INIT(SIZE_MAX);
    size_t nrec = 0, nitems = 0;
    bool big = false;
    size_t npay = 0; /* NOTIFY payloads */
    char head[SIG_NODE_MAX + 4];
    size_t hn = ml_snprintf(head, sizeof head, "N\t%s\n", b->sig->node);
    for (struct sig_item *it = items; it; it = it->next) {
        nitems++;
        if (it->kind == 'C' || it->kind == 'M') {
            struct ml_buf *a = it->kind == 'C' ? &chat : &media;
            buf_add(a, a->len ? "," : "[", 1);
            buf_add(a, it->data, it->len);
            continue;
        }
        if (it->len + hn + 1 > SIG_NOTIFY_MAX)
            big = true; /* a payload of its own, too large: through sig_outbox */
        if (cur.len && cur.len + it->len + 1 > SIG_NOTIFY_MAX) { /* this payload is full */
            npay++;
            if (pay.len)
                buf_add(&pay, "\x1e", 1);
            buf_add(&pay, cur.p, cur.len);
            ml_buf_reset(&cur);
        }
        if (!cur.len)
            buf_add(&cur, head, hn);
        buf_add(&cur, it->data, it->len);
        buf_add(&cur, "\n", 1);
        nrec++;
    }
    if (cur.len) {
        npay++;
        if (pay.len)
            buf_add(&pay, "\x1e", 1);
        buf_add(&pay, cur.p, cur.len);
    }
    if (chat.len)
        buf_add(&chat, "]", 1);
    if (media.len)
        buf_add(&media, "]", 1);
    const char *p[] = {b->sig->node, pay.len ? pay.p : NULL, chat.len ? chat.p : NULL,
                       media.len ? media.p : NULL};
    PGresult *r;
    if (!chat.len && !media.len && !big && npay == 1) /* records only, one payload */
        r = notify_one(b, pay.p);
    else
        r = exec(b, "SELECT ml_sig_publish($1, $2, $3::json, $4::json)", 4, p);
    bool lost = !r && !b->pg;
    if (r)
        PQclear(r);
    else if (!lost)
        count_drop(b, nitems);
    (void)nrec;
    ml_buf_free(&pay);
    ml_buf_free(&cur);
    ml_buf_free(&chat);
    ml_buf_free(&media);
    return !lost;
}

static void timed_wait_us(struct sig_bus *b, int64_t until_us)
{
    int64_t wait_us = until_us - ml_now_us();
    if (wait_us <= 0)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += wait_us / 1000000;
    ts.tv_nsec += (wait_us % 1000000) * 1000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&b->cond, &b->mu, &ts);
}

static void timed_wait(struct sig_bus *b, int64_t until_ms)
{
    timed_wait_us(b, until_ms * 1000);
}

static void *pub_main(void *arg)
{
    struct sig_bus *b = arg;
    char err[256];
    ml_log_set_thread("sigpub");
    pthread_mutex_lock(&b->mu);
    while (!b->stop) {
        int64_t now = ml_now_ms();
        if (!b->pg) {
            if (now < b->next_try_ms) {
                timed_wait(b, b->next_try_ms);
                continue;
            }
            pthread_mutex_unlock(&b->mu);
            b->pg = db_connect(&b->sig->db, "meetlited-sigpub", err, sizeof err);
            pthread_mutex_lock(&b->mu);
            if (!b->pg) {
                /* at most a second apart: chat is refused until the publisher is back */
                b->backoff_ms = b->backoff_ms ? b->backoff_ms * 2 : 100;
                if (b->backoff_ms > b->sig->db.reconnect_max_ms)
                    b->backoff_ms = b->sig->db.reconnect_max_ms;
                if (b->backoff_ms > SIG_PUB_RETRY_MAX_MS)
                    b->backoff_ms = SIG_PUB_RETRY_MAX_MS;
                b->next_try_ms = ml_now_ms() + b->backoff_ms;
                /* records for the other nodes cannot wait for a database that is away; chats
                 * accepted before the loss was noticed wait, in order, to be stored */
                struct sig_item *old = b->ohead;
                b->ohead = b->otail = NULL;
                b->out_n = 0;
                pthread_mutex_unlock(&b->mu);
                keep_chats(b, old);
                pthread_mutex_lock(&b->mu);
                ML_LOG_LIMITED(ML_LOG_WARN, SUBSYS, "signaling publisher cannot connect: %s", err);
                continue;
            }
            __atomic_store_n(&b->pub_up, true, __ATOMIC_RELAXED);
            b->backoff_ms = 0;
            b->next_hb_ms = 0;
            continue;
        }
        if (!__atomic_load_n(&b->registered, __ATOMIC_RELAXED)) {
            if (!__atomic_load_n(&b->listen_up, __ATOMIC_RELAXED)) {
                timed_wait(b, now + 100); /* LISTEN first: nothing of ours may be missed */
                continue;
            }
            pthread_mutex_unlock(&b->mu);
            node_up(b);
            pthread_mutex_lock(&b->mu);
            b->next_hb_ms = ml_now_ms() + b->sig->cfg.heartbeat_ms;
            if (!b->pg)
                b->next_try_ms = ml_now_ms() + 100;
            continue;
        }
        if (now >= b->next_hb_ms) {
            pthread_mutex_unlock(&b->mu);
            heartbeat(b);
            pthread_mutex_lock(&b->mu);
            b->next_hb_ms = ml_now_ms() + b->sig->cfg.heartbeat_ms;
            continue;
        }
        if (!b->ohead) {
            timed_wait(b, b->next_hb_ms);
            continue;
        }
        /* a batch waits publish-delay-us for company: one transaction for many messages */
        int64_t ready_us = b->oldest_us + b->sig->cfg.publish_delay_us;
        if (b->out_n < SIG_BATCH_MAX && ml_now_us() < ready_us) {
            timed_wait_us(b, ready_us);
            continue;
        }
        struct sig_item *items = b->ohead;
        b->ohead = b->otail = NULL;
        b->out_n = 0;
        pthread_mutex_unlock(&b->mu);
        if (publish(b, items))
            items_free(items);
        else
            keep_chats(b, items);
        pthread_mutex_lock(&b->mu);
    }
    /* stopping: what is queued goes out, then the node leaves (its sessions with it) */
    struct sig_item *items = b->ohead;
    b->ohead = b->otail = NULL;
    b->out_n = 0;
    pthread_mutex_unlock(&b->mu);
    uint64_t n = 0;
    for (struct sig_item *it = items; it; it = it->next)
        n++;
    if (n && !(b->pg && publish(b, items))) {
        count_drop(b, n);
        ML_WARN(SUBSYS, "stopping without a database: %llu queued messages not stored",
                (unsigned long long)n);
    }
    items_free(items);
    if (b->pg && __atomic_load_n(&b->registered, __ATOMIC_RELAXED)) {
        const char *p[] = {b->sig->node};
        PGresult *r = exec(b, "SELECT ml_sig_node_down($1)", 1, p);
        if (r) {
            PQclear(r);
            ML_NOTICE(SUBSYS, "node %s left signaling", b->sig->node);
        }
    }
    if (b->pg)
        PQfinish(b->pg);
    b->pg = NULL;
    return NULL;
}

/* ------------------------------------------------------------------ life */

struct sig_bus *sig_bus_new(struct sig *sig, char *err, size_t errlen)
{
    if (!sig->db.url) {
        ml_err(err, errlen, "signaling needs database.url");
        return NULL;
    }
    struct sig_bus *b = ml_xcalloc(1, sizeof *b);
    b->sig = sig;
    ml_snprintf(b->chan, sizeof b->chan, "ml_sig_%.56s", sig->node);
    b->nodes = 1;
    pthread_mutex_init(&b->in_mu, NULL);
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cond, NULL);
    return b;
}

int sig_bus_start(struct sig_bus *b, char *err, size_t errlen)
{
    static const struct db_listen_ops ops = {
        .connected = l_connected, .notify = l_notify, .alive = NULL, .state = l_state};
    const char *channels[] = {SIG_CHANNEL, b->chan, NULL};
    b->listener = db_listener_new(&b->sig->db, channels, SIG_KEEPALIVE_MS, &ops, b, err, errlen);
    if (!b->listener)
        return -1;
    int rc = pthread_create(&b->thread, NULL, pub_main, b);
    if (rc)
        return ml_err(err, errlen, "cannot start the signaling publisher: %s", strerror(rc));
    b->started = true;
    return 0;
}

void sig_bus_stop(struct sig_bus *b)
{
    if (!b)
        return;
    db_listener_free(b->listener); /* nothing more comes in */
    b->listener = NULL;
    __atomic_store_n(&b->listen_up, false, __ATOMIC_RELAXED);
    if (b->started) {
        pthread_mutex_lock(&b->mu);
        b->stop = true;
        pthread_cond_signal(&b->cond);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->thread, NULL);
        b->started = false;
    }
    if (b->fetch)
        PQfinish(b->fetch);
    b->fetch = NULL;
}

void sig_bus_free(struct sig_bus *b)
{
    if (!b)
        return;
    sig_bus_stop(b);
    items_free(b->ihead);
    items_free(b->ohead);
    pthread_mutex_destroy(&b->in_mu);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cond);
    free(b);
}
