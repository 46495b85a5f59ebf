/* libFuzzer target for what other nodes send over PostgreSQL NOTIFY (src/signal/sig-bus.c):
 * the input as one record line through sig_bus_rec_parse (what it accepts must read back the
 * same), then as the records of a payload "N<TAB>node<LF>...", and as a whole payload (database
 * events "D", "X", a sender of any name), through sig_bus_handle on a node with no lws and no
 * database: one meeting with two live sessions and one in the lobby. Every frame the meeting
 * keeps must be one the sessions can be sent ({"seq":N...}), and the node must come apart with
 * nothing left (LeakSanitizer). */
#include "fuzz_common.h"

#include "signal/sig-int.h"

#include <strings.h>

#define M_ID "2d4e3a1c-7f5b-4a3c-9e4d-919a7f6e5d4c"
static const char *const pids[] = {
    "0b2c1e9a-5d3f-4e1a-9c2b-7f6e5d4c3b2a", /* live */
    "1c3d2f0b-6e4a-4f2b-8d3c-808f6e5d4c3b", /* live */
    "5a6b7c8d-0c8e-4d6f-8b7a-c4cdacb9a8f7", /* in the lobby */
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ml_log_set_level(ML_LOG_ERROR);
    return 0;
}

static void no_change(void *arg, const char *meeting_id)
{
    (void)arg;
    FUZZ_ASSERT(ml_uuid_valid(meeting_id));
}

/* A node's state as tests/unit/test_sig.c makes it: enough for routing, no job may start. */
static struct sig *node_new(void)
{
    struct sig *sig = ml_xcalloc(1, sizeof *sig);
    sig->cfg.replay_messages = 16;
    sig->cfg.replay_bytes = 1 << 20;
    sig->cfg.max_queue = 1 << 20;
    sig->cfg.burst = 10;
    sig->stopping = true;
    sig->deps.changed = no_change;
    ml_strlcpy(sig->node, "here", sizeof sig->node);
    sig_htab_init(&sig->rooms);
    sig_htab_init(&sig->by_token);
    uint8_t mid[16];
    FUZZ_ASSERT(ml_uuid_parse(M_ID, mid));
    for (size_t i = 0; i < sizeof pids / sizeof *pids; i++) {
        struct sig_sess *s = sig_sess_new(sig, sig_room_get(sig, mid, true));
        FUZZ_ASSERT(ml_uuid_parse(pids[i], s->pid));
        ml_uuid_format(s->pid, s->pid_s);
        uint8_t sid[16];
        ml_uuid_random(sid);
        ml_uuid_format(sid, s->sid_s);
        s->state = SIG_S_LIVE;
        s->hold = false;
        s->waiting = i == 2;
    }
    return sig;
}

/* The meeting's replay ring holds frames made of record bodies: each one {"seq":N...}. */
static void check_frames(struct sig *sig)
{
    uint8_t mid[16];
    FUZZ_ASSERT(ml_uuid_parse(M_ID, mid));
    struct sig_room *r = sig_room_get(sig, mid, false);
    if (!r)
        return;
    for (size_t i = 0; i < r->ring.n; i++) {
        const struct sig_frame *f = sig_ring_at(&r->ring, i);
        const char *t = (const char *)f->data + LWS_PRE;
        FUZZ_ASSERT(f->len >= 9 && strlen(t) <= f->len);
        FUZZ_ASSERT(!strncmp(t, "{\"seq\":", 7) && t[f->len - 1] == '}');
        FUZZ_ASSERT(i == 0 || f->seq == sig_ring_at(&r->ring, i - 1)->seq + 1);
    }
}

static void node_free(struct sig *sig)
{
    while (sig->all)
        sig_sess_end(sig->all, false);
    FUZZ_ASSERT(sig->rooms.n == 0);
    sig_htab_free(&sig->rooms);
    sig_htab_free(&sig->by_token);
    free(sig);
}

/* What sig_bus_rec_parse accepts reads back as the same line: its fields in order, the body
 * the rest of it, of the shape its kind needs. */
static void record(const uint8_t *data, size_t size)
{
    char *line = fuzz_memdup(data, size);
    struct sig_bus_rec rec;
    if (sig_bus_rec_parse(line, size, &rec)) {
        char head[4 + 3 * ML_UUID_STR], m[ML_UUID_STR], to[ML_UUID_STR], ex[ML_UUID_STR];
        ml_uuid_format(rec.mid, m);
        ml_uuid_format(rec.to, to);
        ml_uuid_format(rec.except, ex);
        size_t hn = ml_snprintf(head, sizeof head, "%c\t%s\t%s\t%s\t", rec.kind, m,
                                rec.has_to ? to : "*", rec.has_except ? ex : "-");
        FUZZ_ASSERT(size >= hn && !strncasecmp(head, line, hn) && head[0] == line[0]);
        FUZZ_ASSERT(rec.body == line + hn && rec.body_len == size - hn);
        switch (rec.kind) {
        case 'R':
        case 'P':
            FUZZ_ASSERT(rec.body_len >= 2 && rec.body[0] == '{' &&
                        rec.body[rec.body_len - 1] == '}');
            break;
        case 'K':
            FUZZ_ASSERT(rec.has_to && rec.body_len == ML_UUID_STR - 1);
            break;
        case 'A':
            FUZZ_ASSERT(rec.has_to && rec.body_len > ML_UUID_STR &&
                        rec.body[rec.body_len - ML_UUID_STR] == ' ');
            break;
        default:
            FUZZ_ASSERT(!"a kind that is not R, P, K or A");
        }
    }
    free(line);
}

/* The payload (n bytes and a NUL, as the LISTEN thread queues it) on a fresh node. */
static void payload(const char *p, size_t n)
{
    struct sig *sig = node_new();
    sig_bus_handle(sig, p, n);
    check_frames(sig);
    node_free(sig);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0; /* NOTIFY payloads are below 8000 bytes; larger ones come from sig_outbox */
    record(data, size);
    static const char head[] = "N\tthere\n";
    char *p = malloc(sizeof head + size);
    FUZZ_ASSERT(p);
    memcpy(p, head, sizeof head - 1);
    if (size)
        memcpy(p + sizeof head - 1, data, size);
    p[sizeof head - 1 + size] = 0;
    payload(p, sizeof head - 1 + size);
    free(p);
    char *q = fuzz_strndup(data, size);
    payload(q, size);
    free(q);
    return 0;
}
