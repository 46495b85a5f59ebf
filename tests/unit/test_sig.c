/* Unit tests of signaling (src/signal): the message table's validation, UUIDs and node
 * ids, the rate limiter's bucket, frames with sequence numbers and who they are for, the replay
 * ring's bounds, the hash table, the close codes, and the routing of records from other nodes
 * to exactly the sessions they name. */
#include "config.h"

#include "signal/sig-int.h"

#include <string.h>

#include "mlcheck.h"

#define A_PID "0b2c1e9a-5d3f-4e1a-9c2b-7f6e5d4c3b2a"
#define B_PID "1c3d2f0b-6e4a-4f2b-8d3c-808f6e5d4c3b"
#define M_ID "2d4e3a1c-7f5b-4a3c-9e4d-919a7f6e5d4c"

static enum http_err parse(const char *text, struct sig_msg *m, json_t **root)
{
    char msg[200];
    return sig_msg_parse(text, strlen(text), root, m, msg, sizeof msg);
}

static void done(struct sig_msg *m, json_t *root)
{
    json_decref(m->payload);
    json_decref(root);
}

START_TEST(msg_offer)
{
    struct sig_msg m;
    json_t *root;
    ck_assert_int_eq(parse("{\"type\":\"offer\",\"id\":\"o1\",\"to\":\"" A_PID "\","
                           "\"payload\":{\"sdp\":\"v=0\\r\\n\",\"evil\":{\"x\":1}},\"more\":1}",
                           &m, &root),
                     HTTP_OK);
    ck_assert_str_eq(m.type->name, "offer");
    ck_assert_int_eq(m.type->kind, SIG_M_RELAY);
    ck_assert(m.has_to);
    ck_assert_str_eq(m.to_s, A_PID);
    ck_assert_str_eq(json_string_value(m.id), "o1");
    ck_assert_int_eq(json_object_size(m.payload), 1); /* only the table's members */
    ck_assert_str_eq(json_string_value(json_object_get(m.payload, "sdp")), "v=0\r\n");
    done(&m, root);
    /* upper-case UUIDs are the same participant */
    ck_assert_int_eq(parse("{\"type\":\"answer\",\"id\":7,\"to\":\"0B2C1E9A-5D3F-4E1A-9C2B-"
                           "7F6E5D4C3B2A\",\"payload\":{\"sdp\":\"x\"}}",
                           &m, &root),
                     HTTP_OK);
    ck_assert_str_eq(m.to_s, A_PID);
    ck_assert_int_eq(json_integer_value(m.id), 7);
    done(&m, root);
}
END_TEST

START_TEST(msg_errors)
{
    static const struct {
        const char *text;
        enum http_err e;
    } cases[] = {
        {"{not json", HTTP_E_INVALID_JSON},
        {"[1,2]", HTTP_E_INVALID_JSON},
        {"{\"type\":\"offer\",\"type\":\"answer\"}", HTTP_E_INVALID_JSON},
        {"{}", HTTP_E_MISSING_FIELD},
        {"{\"type\":42}", HTTP_E_INVALID_FIELD},
        {"{\"type\":\"teleport\"}", HTTP_E_INVALID_FIELD},
        {"{\"type\":\"offer\",\"payload\":{\"sdp\":\"x\"}}", HTTP_E_MISSING_FIELD},
        {"{\"type\":\"offer\",\"to\":\"nope\",\"payload\":{\"sdp\":\"x\"}}", HTTP_E_INVALID_FIELD},
        {"{\"type\":\"offer\",\"to\":\"" A_PID "\"}", HTTP_E_MISSING_FIELD},
        {"{\"type\":\"offer\",\"to\":\"" A_PID "\",\"payload\":[]}", HTTP_E_INVALID_FIELD},
        {"{\"type\":\"offer\",\"to\":\"" A_PID "\",\"payload\":{\"sdp\":1}}", HTTP_E_INVALID_FIELD},
        {"{\"type\":\"offer\",\"to\":\"" A_PID "\",\"payload\":{\"sdp\":\"\"}}",
         HTTP_E_INVALID_FIELD},
        {"{\"type\":\"offer\",\"to\":\"" A_PID "\",\"payload\":{\"sdp\":\"a\\u0001\"}}",
         HTTP_E_INVALID_FIELD},
        /* jansson refuses NUL in strings: never reaches the table */
        {"{\"type\":\"offer\",\"to\":\"" A_PID "\",\"payload\":{\"sdp\":\"a\\u0000b\"}}",
         HTTP_E_INVALID_JSON},
        {"{\"type\":\"candidate\",\"to\":\"" A_PID "\",\"payload\":{\"candidate\":\"c\","
         "\"sdpMLineIndex\":-1}}",
         HTTP_E_INVALID_FIELD},
        {"{\"type\":\"chat\",\"payload\":{\"text\":\"bell\\u0007\"}}", HTTP_E_INVALID_FIELD},
        {"{\"type\":\"chat\",\"payload\":{\"text\":\"c1 \\u0085\"}}", HTTP_E_INVALID_FIELD},
        {"{\"type\":\"media\",\"payload\":{\"audio\":\"yes\"}}", HTTP_E_INVALID_FIELD},
        {"{\"type\":\"mute-request\",\"to\":\"" A_PID "\",\"payload\":{\"kind\":\"smell\"}}",
         HTTP_E_INVALID_FIELD},
        {"{\"type\":\"ping\",\"id\":\"\"}", HTTP_E_INVALID_FIELD},
        {"{\"type\":\"ping\",\"id\":\"a\\nb\"}", HTTP_E_INVALID_FIELD},
        {"{\"type\":\"ping\",\"id\":[1]}", HTTP_E_INVALID_FIELD},
        {"{\"type\":\"ping\",\"id\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxx\"}",
         HTTP_E_INVALID_FIELD},
        {"{\"type\":\"remove\"}", HTTP_E_MISSING_FIELD},
    };
    for (size_t i = 0; i < ML_ARRAY_LEN(cases); i++) {
        struct sig_msg m;
        json_t *root = NULL;
        enum http_err e = parse(cases[i].text, &m, &root);
        ck_assert_msg(e == cases[i].e, "case %zu (%s): %d, want %d", i, cases[i].text, e,
                      cases[i].e);
        ck_assert(m.payload == NULL);
        json_decref(root);
    }
    /* the table passes an empty chat text: the handler refuses it with the configured limit
     * ("payload.text: 1 to N characters", tests/integration/signaling_chat.py) */
    struct sig_msg m;
    json_t *root = NULL;
    ck_assert_int_eq(parse("{\"type\":\"chat\",\"payload\":{\"text\":\"\"}}", &m, &root), HTTP_OK);
    done(&m, root);
}
END_TEST

START_TEST(msg_others)
{
    struct sig_msg m;
    json_t *root;
    ck_assert_int_eq(parse("{\"type\":\"candidate\",\"to\":\"" A_PID "\",\"payload\":{"
                           "\"candidate\":\"\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0,"
                           "\"usernameFragment\":\"u\"}}",
                           &m, &root),
                     HTTP_OK);
    ck_assert_int_eq(json_object_size(m.payload), 4);
    done(&m, root);
    ck_assert_int_eq(parse("{\"type\":\"ice-restart\",\"to\":\"" A_PID "\"}", &m, &root), HTTP_OK);
    ck_assert_int_eq(json_object_size(m.payload), 0);
    done(&m, root);
    ck_assert_int_eq(parse("{\"type\":\"chat\",\"payload\":{\"text\":\"line 1\\nline 2 "
                           "\xc3\xa9\"}}",
                           &m, &root),
                     HTTP_OK);
    ck_assert(!m.has_to);
    done(&m, root);
    ck_assert_int_eq(parse("{\"type\":\"media\",\"payload\":{\"video\":false}}", &m, &root),
                     HTTP_OK);
    ck_assert_int_eq(json_object_size(m.payload), 1);
    done(&m, root);
    ck_assert_int_eq(parse("{\"type\":\"end\"}", &m, &root), HTTP_OK);
    ck_assert(m.type->flags & SIG_MT_ADMIN);
    done(&m, root);
    ck_assert_int_eq(parse("{\"type\":\"ping\",\"payload\":\"ignored\"}", &m, &root), HTTP_OK);
    ck_assert(m.payload == NULL);
    done(&m, root);
}
END_TEST

/* issue #14: a client's media path, enum names only; the roster's small enums */
START_TEST(msg_path)
{
    struct sig_msg m;
    json_t *root;
    ck_assert_int_eq(
        parse("{\"type\":\"path\",\"payload\":{\"path\":\"relay-tls\",\"x\":1}}", &m, &root),
        HTTP_OK);
    ck_assert_int_eq(m.type->kind, SIG_M_PATH);
    ck_assert_int_eq(json_object_size(m.payload), 1); /* only the table's members relayed */
    done(&m, root);
    ck_assert_int_eq(parse("{\"type\":\"path\",\"payload\":{\"path\":\"\"}}", &m, &root),
                     HTTP_E_INVALID_FIELD); /* the "not known" slot is no name */
    done(&m, root);
    ck_assert_int_eq(parse("{\"type\":\"path\",\"payload\":{\"path\":7}}", &m, &root),
                     HTTP_E_INVALID_FIELD);
    done(&m, root);
    ck_assert_int_eq(parse("{\"type\":\"path\",\"payload\":{}}", &m, &root), HTTP_E_MISSING_FIELD);
    done(&m, root);
    ck_assert_int_eq(sig_name_index(sig_path_names, "direct"), 2);
    ck_assert_int_eq(sig_name_index(sig_path_names, ""), 0);
    ck_assert_int_eq(sig_name_index(sig_path_names, NULL), 0);
    ck_assert_int_eq(sig_name_index(sig_network_names, "none"), 4);
    ck_assert_int_eq(sig_name_index(sig_network_names, "relay-udp"), 0);
}
END_TEST

START_TEST(uuids_and_ids)
{
    uint8_t u[16], v[16];
    char s[ML_UUID_STR];
    ck_assert(ml_uuid_parse(A_PID, u));
    ml_uuid_format(u, s);
    ck_assert_str_eq(s, A_PID);
    ck_assert(!ml_uuid_parse("0b2c1e9a5d3f4e1a9c2b7f6e5d4c3b2a", u));
    ck_assert(!ml_uuid_parse("0b2c1e9a-5d3f-4e1a-9c2b-7f6e5d4c3b2g", u));
    ck_assert(!ml_uuid_parse(NULL, u));
    ml_uuid_random(u);
    ml_uuid_random(v);
    ck_assert(memcmp(u, v, 16) != 0);
    ck_assert_int_eq(u[6] >> 4, 4);
    ck_assert(sig_node_id_ok("node-one"));
    ck_assert(sig_node_id_ok("n-0a.b_c"));
    ck_assert(!sig_node_id_ok(""));
    ck_assert(!sig_node_id_ok("has space"));
    ck_assert(!sig_node_id_ok("tab\there"));
    char long_id[80];
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = 0;
    ck_assert(!sig_node_id_ok(long_id));
}
END_TEST

START_TEST(bucket)
{
    struct sig_bucket b;
    sig_bucket_init(&b, 3, 1000);
    for (int i = 0; i < 3; i++)
        ck_assert(sig_bucket_take(&b, 10, 3, 1000));
    ck_assert(!sig_bucket_take(&b, 10, 3, 1000));
    ck_assert(!sig_bucket_take(&b, 10, 3, 1050)); /* half a token */
    ck_assert(sig_bucket_take(&b, 10, 3, 1100));  /* one back after 100 ms at 10/s */
    ck_assert(!sig_bucket_take(&b, 10, 3, 1100));
    /* never more than the burst, however long it waited */
    for (int i = 0; i < 3; i++)
        ck_assert(sig_bucket_take(&b, 10, 3, 100000));
    ck_assert(!sig_bucket_take(&b, 10, 3, 100000));
}
END_TEST

START_TEST(frames)
{
    struct sig_frame *f = sig_frame_new(42, "{\"type\":\"x\"}", 12);
    ck_assert_str_eq((char *)f->data + LWS_PRE, "{\"seq\":42,\"type\":\"x\"}");
    ck_assert_uint_eq(f->len, strlen("{\"seq\":42,\"type\":\"x\"}"));
    sig_frame_unref(f);
    f = sig_frame_new(7, "{}", 2);
    ck_assert_str_eq((char *)f->data + LWS_PRE, "{\"seq\":7}");
    sig_frame_unref(f);
    f = sig_frame_new(0, "{\"type\":\"pong\"}", 15);
    ck_assert_str_eq((char *)f->data + LWS_PRE, "{\"type\":\"pong\"}");
    uint8_t a[16], b[16];
    ck_assert(ml_uuid_parse(A_PID, a) && ml_uuid_parse(B_PID, b));
    ck_assert(sig_frame_for(f, a) && sig_frame_for(f, b));
    f->has_to = true;
    memcpy(f->to, a, 16);
    ck_assert(sig_frame_for(f, a) && !sig_frame_for(f, b));
    f->has_to = false;
    f->has_except = true;
    memcpy(f->except, a, 16);
    ck_assert(!sig_frame_for(f, a) && sig_frame_for(f, b));
    sig_frame_unref(f);
}
END_TEST

START_TEST(ring)
{
    struct sig_ring r;
    memset(&r, 0, sizeof r);
    for (uint64_t i = 1; i <= 20; i++) {
        struct sig_frame *f = sig_frame_new(i, "{\"type\":\"x\"}", 12);
        sig_ring_push(&r, f, 8, 1 << 20);
        ck_assert_uint_eq(f->refs, 2);
        sig_frame_unref(f);
    }
    ck_assert_uint_eq(r.n, 8);
    ck_assert_uint_eq(sig_ring_first_seq(&r), 13);
    for (size_t i = 0; i < r.n; i++)
        ck_assert_uint_eq(sig_ring_at(&r, i)->seq, 13 + i);
    /* a byte bound: the oldest go first */
    size_t one = sig_ring_at(&r, 0)->len;
    struct sig_frame *f = sig_frame_new(21, "{\"type\":\"x\"}", 12);
    sig_ring_push(&r, f, 8, 3 * one);
    sig_frame_unref(f);
    ck_assert_uint_eq(r.n, 3);
    ck_assert_uint_eq(sig_ring_first_seq(&r), 19);
    ck_assert_uint_eq(r.bytes, 3 * one);
    sig_ring_free(&r);
    ck_assert_uint_eq(sig_ring_first_seq(&r), 0);
    /* nothing kept when replay is off */
    f = sig_frame_new(1, "{}", 2);
    sig_ring_push(&r, f, 0, 100);
    ck_assert_uint_eq(r.n, 0);
    sig_frame_unref(f);
    sig_ring_free(&r);
}
END_TEST

struct hitem {
    struct sig_hnode node;
    int v;
};

START_TEST(htab)
{
    struct sig_htab h;
    sig_htab_init(&h);
    static struct hitem items[1000];
    for (int i = 0; i < 1000; i++) {
        ml_uuid_random(items[i].node.key);
        items[i].v = i;
        sig_htab_put(&h, &items[i].node);
    }
    ck_assert_uint_eq(h.n, 1000);
    ck_assert(h.nb >= 1000);
    for (int i = 0; i < 1000; i++) {
        struct sig_hnode *n = sig_htab_get(&h, items[i].node.key);
        ck_assert(n == &items[i].node);
    }
    for (int i = 0; i < 1000; i += 2)
        sig_htab_del(&h, &items[i].node);
    ck_assert_uint_eq(h.n, 500);
    ck_assert(sig_htab_get(&h, items[0].node.key) == NULL);
    ck_assert(sig_htab_get(&h, items[1].node.key) == &items[1].node);
    sig_htab_free(&h);
}
END_TEST

/* The resume token of a reconnect URL, "<node>.<32 hex digits>" (sig-ws.c). The key's digits
 * are hex digits only: strtoul, which read them before, also took "-1", " f" and "+f". */
START_TEST(resume_token)
{
    uint8_t key[16], want[16];
    for (int i = 0; i < 16; i++)
        want[i] = (uint8_t)(i * 17);
    ck_assert_int_eq(sig_resume_token_parse("n-1.00112233445566778899AABBccddeeff", "n-1", key),
                     SIG_RESUME_OK);
    ck_assert_mem_eq(key, want, 16);
    ck_assert_int_eq(sig_resume_token_parse("n-2.00112233445566778899aabbccddeeff", "n-1", key),
                     SIG_RESUME_OTHER_NODE);
    ck_assert_int_eq(sig_resume_token_parse("n.n-1.00112233445566778899aabbccddeeff", "n-1", key),
                     SIG_RESUME_OTHER_NODE);
    static const char *const bad[] = {
        "",
        ".",
        "n-1",
        "n-1.",
        ".00112233445566778899aabbccddeeff",
        "n-1.00112233445566778899aabbccddeef",   /* 31 digits */
        "n-1.00112233445566778899aabbccddeeff0", /* 33 */
        "n-1.-1112233445566778899aabbccddeeff",  /* strtoul's sign */
        "n-1. f112233445566778899aabbccddeeff",  /* and its space */
        "n-1.+f112233445566778899aabbccddeeff",
        "n-1.0x112233445566778899aabbccddeeff",
        "n-1.00112233445566778899aabbccddeefg",
    };
    memset(key, 0x5a, sizeof key);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(sig_resume_token_parse(bad[i], "n-1", key) == SIG_RESUME_MALFORMED, "%s",
                      bad[i]);
    for (int i = 0; i < 16; i++)
        ck_assert_uint_eq(key[i], 0x5a); /* untouched when refused */
}
END_TEST

START_TEST(close_codes)
{
    ck_assert_str_eq(sig_close_reason(SIG_CLOSE_IDLE), "idle_timeout");
    ck_assert_str_eq(sig_close_reason(SIG_CLOSE_TOO_BIG), "message_too_large");
    ck_assert_str_eq(sig_close_reason(SIG_CLOSE_RATE), "rate_limited");
    ck_assert_str_eq(sig_close_reason(SIG_CLOSE_TOO_MANY), "too_many_connections");
    ck_assert_str_eq(sig_close_reason(SIG_CLOSE_SLOW), "slow_consumer");
    ck_assert_str_eq(sig_close_reason(SIG_CLOSE_RESUME), "resume_failed");
    /* the API's errors: 4000 + HTTP status, distinct from the limits */
    ck_assert_int_eq(http_err_ws_code(HTTP_E_REMOVED), 4403);
    ck_assert_int_eq(http_err_ws_code(HTTP_E_MEETING_ENDED), 4410);
    ck_assert_int_eq(http_err_ws_code(HTTP_E_INVALID_TOKEN), 4401);
    ck_assert_int_eq(http_err_ws_code(HTTP_E_NOT_JOINED), 4409);
}
END_TEST

/* A node's state without lws or a database: enough for routing. */
static struct sig *fake_sig(void)
{
    struct sig *sig = ml_xcalloc(1, sizeof *sig);
    sig->cfg.replay_messages = 16;
    sig->cfg.replay_bytes = 1 << 20;
    sig->cfg.max_queue = 1 << 20;
    sig->cfg.burst = 10;
    sig->stopping = true; /* no database job may start */
    ml_strlcpy(sig->node, "here", sizeof sig->node);
    sig_htab_init(&sig->rooms);
    sig_htab_init(&sig->by_token);
    return sig;
}

static struct sig_sess *fake_sess(struct sig *sig, const char *mid, const char *pid)
{
    uint8_t m[16];
    ck_assert(ml_uuid_parse(mid, m));
    struct sig_sess *s = sig_sess_new(sig, sig_room_get(sig, m, true));
    ck_assert(ml_uuid_parse(pid, s->pid));
    ml_uuid_format(s->pid, s->pid_s);
    s->state = SIG_S_LIVE;
    s->hold = false;
    return s;
}

static size_t queued(const struct sig_sess *s)
{
    size_t n = 0;
    for (struct sig_qent *e = s->qhead; e; e = e->next)
        n++;
    return n;
}

START_TEST(routing)
{
    struct sig *sig = fake_sig();
    struct sig_sess *a = fake_sess(sig, M_ID, A_PID);
    struct sig_sess *b = fake_sess(sig, M_ID, B_PID);
    const char *other_meeting = "3e5f4b2d-8a6c-4b4d-8f5e-a2ab8a7f6e5d";
    struct sig_sess *x = fake_sess(sig, other_meeting, "4f6a5c3e-9b7d-4c5e-9a6f-b3bc9b8a7f6e");
    char p[512];
    /* to B only */
    ml_snprintf(p, sizeof p, "N\tthere\nR\t%s\t%s\t-\t{\"type\":\"offer\",\"from\":\"%s\"}\n", M_ID,
                B_PID, A_PID);
    sig_bus_handle(sig, p, strlen(p));
    ck_assert_uint_eq(queued(a), 0);
    ck_assert_uint_eq(queued(b), 1);
    ck_assert_uint_eq(queued(x), 0);
    ck_assert_str_eq((char *)b->qhead->f->data + LWS_PRE,
                     "{\"seq\":1,\"type\":\"offer\",\"from\":\"" A_PID "\"}");
    /* to all but A, then to all: two records in one payload */
    ml_snprintf(p, sizeof p,
                "N\tthere\nR\t%s\t*\t%s\t{\"type\":\"chat\"}\nR\t%s\t*\t-\t{\"type\":\"chat\"}\n",
                M_ID, A_PID, M_ID);
    sig_bus_handle(sig, p, strlen(p));
    ck_assert_uint_eq(queued(a), 1);
    ck_assert_uint_eq(queued(b), 3);
    ck_assert_uint_eq(queued(x), 0);
    /* a meeting with no session here, malformed records: nothing */
    ml_snprintf(
        p, sizeof p,
        "N\tthere\nR\t5a6b7c8d-0c8e-4d6f-8b7a-c4cdacb9a8f7\t*\t-\t{}\nR\tnot-a-uuid\t*\t-\t{}\n"
        "R\t%s\t*\n\nQ\t%s\t*\t-\t{}",
        M_ID, M_ID);
    sig_bus_handle(sig, p, strlen(p));
    ck_assert_uint_eq(queued(a) + queued(b) + queued(x), 4);
    ck_assert_uint_eq(sig_room_get(sig, a->room->node.key, false)->seq, 3);
    /* a roster change from another node: the member is known, then goes offline */
    ml_snprintf(p, sizeof p,
                "N\tthere\nP\t%s\t*\t-\t{\"type\":\"participant-joined\",\"participant\":{\"id\":"
                "\"%s\",\"name\":\"Bee\",\"role\":\"ADMIN\",\"online\":true}}\n",
                M_ID, B_PID);
    sig_bus_handle(sig, p, strlen(p));
    struct sig_member *mb = sig_room_member(a->room, b->pid);
    ck_assert(mb && mb->admin && mb->online && !strcmp(mb->name, "Bee"));
    ml_snprintf(
        p, sizeof p,
        "N\tthere\nP\t%s\t*\t-\t{\"type\":\"participant-left\",\"participant_id\":\"%s\"}\n", M_ID,
        B_PID);
    sig_bus_handle(sig, p, strlen(p));
    ck_assert(!sig_room_member(a->room, b->pid)->online);
    /* replay ring has every frame of the meeting, in order */
    struct sig_ring *r = &a->room->ring;
    for (size_t i = 1; i < r->n; i++)
        ck_assert_uint_eq(sig_ring_at(r, i)->seq, sig_ring_at(r, i - 1)->seq + 1);
    sig_sess_end(a, false);
    sig_sess_end(b, false);
    sig_sess_end(x, false);
    ck_assert_uint_eq(sig->rooms.n, 0);
    ck_assert(sig->all == NULL);
    sig_htab_free(&sig->rooms);
    sig_htab_free(&sig->by_token);
    free(sig);
}
END_TEST

/* Between nodes (issue #16): a record for a participant with no session here is neither sent
 * nor kept for replay; a claim from another node ends a member's exclusivity (and is counted
 * for a connect in flight); exclusivity holds only for the LISTEN generation it was learnt in. */
START_TEST(claims)
{
    struct sig *sig = fake_sig();
    struct sig_sess *a = fake_sess(sig, M_ID, A_PID);
    const char *c_pid = "6b7c8d9e-1d9f-4e7a-9c8b-d5debdcab9f8";
    char p[512];
    ml_snprintf(p, sizeof p, "N\tthere\nR\t%s\t%s\t-\t{\"type\":\"offer\"}\n", M_ID, c_pid);
    sig_bus_handle(sig, p, strlen(p));
    ck_assert_uint_eq(queued(a), 0);
    ck_assert_uint_eq(a->room->seq, 0);
    ck_assert_uint_eq(a->room->ring.n, 0);
    ml_snprintf(p, sizeof p, "N\tthere\nR\t%s\t%s\t-\t{\"type\":\"offer\"}\n", M_ID, A_PID);
    sig_bus_handle(sig, p, strlen(p));
    ck_assert_uint_eq(queued(a), 1);
    ck_assert_uint_eq(a->room->seq, 1);
    /* A exclusive here; without a LISTEN connection (no bus: generation 0) that is not trusted */
    json_t *e = json_pack("{s:s,s:s}", "id", A_PID, "name", "Ay");
    struct sig_member *ma = sig_room_member_set(a->room, e);
    json_decref(e);
    ck_assert_ptr_nonnull(ma);
    ma->exclusive = true;
    ma->excl_gen = 1;
    ck_assert(!sig_room_exclusive(a->room, a->pid));
    /* another node claims A: no longer exclusive, and counted */
    ml_snprintf(p, sizeof p, "N\tthere\nK\t%s\t%s\t-\t%s\n", M_ID, A_PID,
                "7c8d9e0f-2e0a-4f8b-8d9c-e6efcedbca09");
    sig_bus_handle(sig, p, strlen(p));
    ck_assert(!sig_room_member(a->room, a->pid)->exclusive);
    ck_assert_uint_eq(a->room->claims, 1);
    ck_assert_uint_eq(queued(a), 1); /* a claim is nothing for the clients */
    /* a claim of a meeting with no session here, a malformed one: nothing */
    ml_snprintf(p, sizeof p, "N\tthere\nK\t%s\t%s\t-\t%s\nK\t%s\t%s\t-\tshort\n",
                "5a6b7c8d-0c8e-4d6f-8b7a-c4cdacb9a8f7", A_PID,
                "7c8d9e0f-2e0a-4f8b-8d9c-e6efcedbca09", M_ID, A_PID);
    sig_bus_handle(sig, p, strlen(p));
    ck_assert_uint_eq(a->room->claims, 1);
    /* an acknowledgement for another node, or for no claim awaited here: nothing */
    ml_snprintf(p, sizeof p, "N\tthere\nA\t%s\t%s\t-\telsewhere %s\nA\t%s\t%s\t-\there %s\n", M_ID,
                A_PID, "7c8d9e0f-2e0a-4f8b-8d9c-e6efcedbca09", M_ID, A_PID,
                "7c8d9e0f-2e0a-4f8b-8d9c-e6efcedbca09");
    sig_bus_handle(sig, p, strlen(p));
    ck_assert_uint_eq(queued(a), 1);
    /* its last session goes: it is exclusive nowhere */
    ma = sig_room_member(a->room, a->pid);
    ma->exclusive = true;
    sig_room_ref(a->room);
    struct sig_room *room = a->room;
    sig_sess_end(a, false);
    ck_assert(!room->members[0].exclusive);
    sig_room_unref(room);
    ck_assert_uint_eq(sig->rooms.n, 0);
    sig_htab_free(&sig->rooms);
    sig_htab_free(&sig->by_token);
    free(sig);
}
END_TEST

/* The records of other nodes as sig_bus_rec_parse reads them (tests/fuzz/fuzz_sigbus.c), and
 * the ones it refuses: a body an R or P record cannot be a frame of (an empty one crashed the
 * node that made a frame of it: sig_frame_new copied n - 1 bytes), a claim or acknowledgement
 * without its recipient or session, an unknown kind. */
START_TEST(bus_records)
{
    static const char *const ok[] = {
        "R\t" M_ID "\t*\t-\t{}",
        "R\t" M_ID "\t" A_PID "\t" B_PID "\t{\"type\":\"offer\"}",
        "P\t2D4E3A1C-7F5B-4A3C-9E4D-919A7F6E5D4C\t*\t-\t{\"type\":\"x\"}",
        "K\t" M_ID "\t" A_PID "\t-\t" B_PID,
        "A\t" M_ID "\t" A_PID "\t-\tnode-1 " B_PID,
    };
    static const char *const bad[] = {
        "R\t" M_ID "\t*\t-\t",
        "R\t" M_ID "\t*\t-\tx",
        "R\t" M_ID "\t*\t-\t{",
        "R\t" M_ID "\t*\t-\t}",
        "P\t" M_ID "\t*\t-\t[]",
        "R\t" M_ID "\t*\t-",
        "R\t" M_ID "\t*\t{}",
        "Q\t" M_ID "\t*\t-\t{}",
        "RR\t" M_ID "\t*\t-\t{}",
        "R\tnot-a-uuid\t*\t-\t{}",
        "R\t*\t*\t-\t{}",
        "R\t" M_ID "\t-\t-\t{}",
        "R\t" M_ID "\t*\t*\t{}",
        "K\t" M_ID "\t*\t-\t" B_PID,
        "K\t" M_ID "\t" A_PID "\t-\tshort",
        "K\t" M_ID "\t" A_PID "\t-\t" B_PID "x",
        "K\t" M_ID "\t" A_PID "\t-\txxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
        "A\t" M_ID "\t*\t-\tnode-1 " B_PID,
        "A\t" M_ID "\t" A_PID "\t-\t " B_PID,
        "A\t" M_ID "\t" A_PID "\t-\t" B_PID,
        "A\t" M_ID "\t" A_PID "\t-\tnode-1_" B_PID,
    };
    struct sig_bus_rec rec;
    for (size_t i = 0; i < ML_ARRAY_LEN(ok); i++)
        ck_assert_msg(sig_bus_rec_parse(ok[i], strlen(ok[i]), &rec), "refused: %s", ok[i]);
    ck_assert_int_eq(rec.kind, 'A');
    ck_assert(rec.has_to && !rec.has_except);
    ck_assert_int_eq(rec.body_len, strlen("node-1 " B_PID));
    ck_assert(!memcmp(rec.body, "node-1 ", 7));
    for (size_t i = 0; i < ML_ARRAY_LEN(bad); i++)
        ck_assert_msg(!sig_bus_rec_parse(bad[i], strlen(bad[i]), &rec), "taken: %s", bad[i]);

    /* on a node: the refused records are nothing, the meeting's sequence does not move */
    struct sig *sig = fake_sig();
    struct sig_sess *a = fake_sess(sig, M_ID, A_PID);
    char p[512];
    ml_snprintf(p, sizeof p, "N\tthere\nR\t%s\t*\t-\t\nR\t%s\t*\t-\tx\nP\t%s\t*\t-\t\n", M_ID, M_ID,
                M_ID);
    sig_bus_handle(sig, p, strlen(p));
    ck_assert_uint_eq(queued(a), 0);
    ck_assert_uint_eq(a->room->seq, 0);
    ml_snprintf(p, sizeof p, "N\tthere\nR\t%s\t*\t-\t{}\n", M_ID);
    sig_bus_handle(sig, p, strlen(p));
    ck_assert_uint_eq(queued(a), 1);
    ck_assert_str_eq((char *)a->qhead->f->data + LWS_PRE, "{\"seq\":1}");
    /* a claim from a sender that is no node's name: not taken (no acknowledgement could
     * reach it) */
    ml_snprintf(p, sizeof p, "N\tno such node\nK\t%s\t%s\t-\t%s\n", M_ID, A_PID, B_PID);
    sig_bus_handle(sig, p, strlen(p));
    ck_assert_uint_eq(a->room->claims, 0);
    ml_snprintf(p, sizeof p, "N\tnode-2\nK\t%s\t%s\t-\t%s\n", M_ID, A_PID, B_PID);
    sig_bus_handle(sig, p, strlen(p));
    ck_assert_uint_eq(a->room->claims, 1);
    sig_sess_end(a, false);
    ck_assert_uint_eq(sig->rooms.n, 0);
    sig_htab_free(&sig->rooms);
    sig_htab_free(&sig->by_token);
    free(sig);
}
END_TEST

static void no_change(void *arg, const char *meeting)
{
    (void)arg;
    (void)meeting;
}

/* The waiting room (issue #17): a lobby session hears only what is addressed to it, the lobby's
 * events reach ADMINs only, and admission ends the lobby session. */
START_TEST(lobby)
{
    struct sig *sig = fake_sig();
    sig->deps.changed = no_change;
    struct sig_sess *a = fake_sess(sig, M_ID, A_PID);
    struct sig_sess *b = fake_sess(sig, M_ID, B_PID);
    const char *w_pid = "5a6b7c8d-0c8e-4d6f-8b7a-c4cdacb9a8f7";
    struct sig_sess *w = fake_sess(sig, M_ID, w_pid);
    w->waiting = true;
    sig_sess_ref(w); /* kept to look at after admission ends it */
    char p[512];
    ml_snprintf(p, sizeof p,
                "N\tthere\nP\t%s\t*\t-\t{\"type\":\"participant-joined\",\"participant\":{\"id\":"
                "\"%s\",\"name\":\"Ann\",\"role\":\"ADMIN\",\"online\":true}}\n",
                M_ID, A_PID);
    sig_bus_handle(sig, p, strlen(p));
    ck_assert_uint_eq(queued(a) + queued(b), 2);
    ck_assert_uint_eq(queued(w), 0); /* the lobby hears nothing of the meeting */
    /* someone arrives in the lobby (the trigger's event): the ADMIN only hears of it */
    ml_snprintf(p, sizeof p, "D\t{\"k\":\"waiting\",\"m\":\"%s\",\"p\":\"%s\",\"name\":\"Wen\"}",
                M_ID, w_pid);
    sig_bus_handle(sig, p, strlen(p));
    ck_assert_uint_eq(queued(a), 2);
    ck_assert_uint_eq(queued(b), 1);
    ck_assert_uint_eq(queued(w), 0);
    ck_assert(strstr((char *)a->qtail->f->data + LWS_PRE, "\"lobby-waiting\"") &&
              strstr((char *)a->qtail->f->data + LWS_PRE, "\"state\":\"waiting\""));
    ck_assert(sig_room_member(a->room, w->pid)->waiting);
    /* a frame addressed to it reaches it */
    ml_snprintf(p, sizeof p, "N\tthere\nR\t%s\t%s\t-\t{\"type\":\"x\"}\n", M_ID, w_pid);
    sig_bus_handle(sig, p, strlen(p));
    ck_assert_uint_eq(queued(w), 1);
    /* admitted: told, its lobby session ended; the ADMIN hears lobby-left */
    ml_snprintf(p, sizeof p, "D\t{\"k\":\"admitted\",\"m\":\"%s\",\"p\":\"%s\"}", M_ID, w_pid);
    sig_bus_handle(sig, p, strlen(p));
    ck_assert_uint_eq(queued(w), 2);
    ck_assert(strstr((char *)w->qtail->f->data + LWS_PRE, "\"admitted\""));
    ck_assert_int_eq(w->state, SIG_S_CLOSED);
    ck_assert_uint_eq(queued(a), 3);
    ck_assert(strstr((char *)a->qtail->f->data + LWS_PRE, "\"lobby-left\""));
    ck_assert_uint_eq(queued(b), 1);
    ck_assert(sig_room_member(a->room, w->pid) == NULL);
    ck_assert_str_eq(sig_close_reason(SIG_CLOSE_ADMITTED), "admitted");
    ck_assert_int_eq(http_err_ws_code(HTTP_E_DENIED), 4403);
    sig_sess_unref(w);
    sig_sess_end(a, false);
    sig_sess_end(b, false);
    ck_assert_uint_eq(sig->rooms.n, 0);
    sig_htab_free(&sig->rooms);
    sig_htab_free(&sig->by_token);
    free(sig);
}
END_TEST

static unsigned changes_seen;
static void count_change(void *arg, const char *meeting)
{
    (void)arg;
    ck_assert_str_eq(meeting, M_ID);
    changes_seen++;
}

/* The database's events: which ones tell the control plane its cached view of the meeting is
 * stale (a settings change made on another node included), and that one without its
 * participant is ignored. */
START_TEST(db_events)
{
    struct sig *sig = fake_sig();
    sig->deps.changed = count_change;
    struct sig_sess *a = fake_sess(sig, M_ID, A_PID);
    static const struct {
        const char *k;
        bool with_p;
        unsigned changes;
    } ev[] = {
        {"settings", false, 1}, {"role", true, 1},    {"hand", true, 0},
        {"offline", true, 0},   {"unknown", true, 0}, {"role", false, 1}, /* changed, not handled */
    };
    char p[512];
    for (size_t i = 0; i < sizeof ev / sizeof *ev; i++) {
        changes_seen = 0;
        ml_snprintf(p, sizeof p,
                    "D\t{\"k\":\"%s\",\"m\":\"%s\"%s%s%s,\"screen_share\":\"admins\","
                    "\"role\":\"ADMIN\",\"at\":1}",
                    ev[i].k, M_ID, ev[i].with_p ? ",\"p\":\"" : "", ev[i].with_p ? B_PID : "",
                    ev[i].with_p ? "\"" : "");
        sig_bus_handle(sig, p, strlen(p));
        ck_assert_msg(changes_seen == ev[i].changes, "%s: %u changes", ev[i].k, changes_seen);
    }
    /* the settings event reached the session and the room */
    ck_assert(a->room->screen_admins);
    ck_assert(a->qhead && strstr((char *)a->qhead->f->data + LWS_PRE, "\"meeting-updated\""));
    /* no meeting id: nothing at all */
    changes_seen = 0;
    ml_snprintf(p, sizeof p, "D\t{\"k\":\"settings\",\"screen_share\":\"anyone\"}");
    sig_bus_handle(sig, p, strlen(p));
    ck_assert_uint_eq(changes_seen, 0);
    ck_assert(a->room->screen_admins);
    sig_sess_end(a, false);
    ck_assert_uint_eq(sig->rooms.n, 0);
    sig_htab_free(&sig->rooms);
    sig_htab_free(&sig->by_token);
    free(sig);
}
END_TEST

static Suite *sig_suite(void)
{
    Suite *s = suite_create("signaling");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, msg_offer);
    tcase_add_test(tc, msg_errors);
    tcase_add_test(tc, msg_others);
    tcase_add_test(tc, msg_path);
    tcase_add_test(tc, uuids_and_ids);
    tcase_add_test(tc, bucket);
    tcase_add_test(tc, frames);
    tcase_add_test(tc, bus_records);
    tcase_add_test(tc, ring);
    tcase_add_test(tc, htab);
    tcase_add_test(tc, resume_token);
    tcase_add_test(tc, close_codes);
    tcase_add_test(tc, routing);
    tcase_add_test(tc, claims);
    tcase_add_test(tc, lobby);
    tcase_add_test(tc, db_events);
    suite_add_tcase(s, tc);
    return s;
}

ML_CHECK_MAIN(sig_suite)
