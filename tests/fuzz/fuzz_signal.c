/* libFuzzer target for what a signaling client sends: a WebSocket text message through
 * sig_msg_parse (JSON, the message table, the payload fields), and the input as the resume
 * token and last_seq of a reconnect URL. A message that passes must come out the same when the
 * relayed form (type, id, to, the kept payload) is parsed again. */
#include "fuzz_common.h"

#include "signal/sig-int.h"

#include <strings.h>

#define NODE "node-1.example"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ml_log_set_level(ML_LOG_ERROR);
    return 0;
}

/* Every kept payload member is one of the type's fields with a value of the field's type. */
static void check_payload(const struct sig_mtype *t, json_t *payload)
{
    if (!payload)
        return;
    FUZZ_ASSERT(t->fields && json_is_object(payload));
    const char *key;
    json_t *v;
    json_object_foreach(payload, key, v)
    {
        const struct sig_field *f = t->fields;
        while (f->name && strcmp(f->name, key))
            f++;
        FUZZ_ASSERT(f->name != NULL);
        switch (f->type) {
        case SIG_F_STRING:
        case SIG_F_ENUM:
            FUZZ_ASSERT(json_is_string(v));
            break;
        case SIG_F_INT:
            FUZZ_ASSERT(json_is_integer(v) && json_integer_value(v) >= f->min &&
                        json_integer_value(v) <= f->max);
            break;
        case SIG_F_BOOL:
            FUZZ_ASSERT(json_is_boolean(v));
            break;
        }
    }
}

/* The message as the server relays it, parsed again: the same type, recipient and payload. */
static void round_trip(const struct sig_msg *m)
{
    json_t *o = json_pack("{s:s}", "type", m->type->name);
    FUZZ_ASSERT(o);
    if (m->id)
        json_object_set(o, "id", m->id);
    if (m->has_to)
        json_object_set_new(o, "to", json_string(m->to_s));
    if (m->payload)
        json_object_set(o, "payload", m->payload);
    char *text = json_dumps(o, JSON_COMPACT);
    FUZZ_ASSERT(text);
    json_t *root2 = NULL;
    struct sig_msg m2;
    char msg[200];
    enum http_err e = sig_msg_parse(text, strlen(text), &root2, &m2, msg, sizeof msg);
    if (e != HTTP_OK) {
        fprintf(stderr, "relayed form refused: %s: %s\n", msg, text);
        abort();
    }
    FUZZ_ASSERT(m2.type == m->type && m2.has_to == m->has_to);
    FUZZ_ASSERT(!m->has_to || !memcmp(m2.to, m->to, 16));
    FUZZ_ASSERT(!m->id == !m2.id && (!m->id || json_equal(m->id, m2.id)));
    FUZZ_ASSERT(!m->payload == !m2.payload && (!m->payload || json_equal(m->payload, m2.payload)));
    json_decref(m2.payload);
    json_decref(root2);
    free(text);
    json_decref(o);
}

static void message(const uint8_t *data, size_t size)
{
    char *text = fuzz_memdup(data, size);
    json_t *root = NULL;
    struct sig_msg m;
    char msg[200] = "";
    enum http_err e = sig_msg_parse(text, size, &root, &m, msg, sizeof msg);
    fuzz_check_msg(msg, sizeof msg);
    if (e == HTTP_OK) {
        FUZZ_ASSERT(m.type != NULL && root != NULL);
        FUZZ_ASSERT(!(m.type->flags & SIG_MT_TO) || m.has_to);
        FUZZ_ASSERT(!m.has_to || ml_uuid_valid(m.to_s));
        FUZZ_ASSERT(!(m.type->flags & SIG_MT_PAYLOAD) || m.payload);
        check_payload(m.type, m.payload);
        round_trip(&m);
    } else {
        FUZZ_ASSERT(msg[0] != 0 && m.payload == NULL);
        FUZZ_ASSERT(http_err_status(e) >= 400 && http_err_code(e) != NULL);
        FUZZ_ASSERT(http_err_ws_code(e) >= 4000);
        /* the error answer echoes the id only when it was valid */
        FUZZ_ASSERT(!m.id || json_is_integer(m.id) || json_is_string(m.id));
    }
    json_decref(m.payload);
    json_decref(root);
    free(text);
}

static void url_args(const uint8_t *data, size_t size)
{
    char *s = fuzz_strndup(data, size);
    uint8_t key[16];
    enum sig_resume_err re = sig_resume_token_parse(s, NODE, key);
    if (re == SIG_RESUME_OK) {
        /* the key read back in hex is what followed the node */
        char hex[33];
        for (int i = 0; i < 16; i++)
            ml_snprintf(hex + 2 * i, 3, "%02x", key[i]);
        FUZZ_ASSERT(strlen(s) == strlen(NODE) + 33 && !strncmp(s, NODE ".", strlen(NODE) + 1));
        FUZZ_ASSERT(!strcasecmp(hex, s + strlen(NODE) + 1));
    } else {
        FUZZ_ASSERT(re == SIG_RESUME_MALFORMED || re == SIG_RESUME_OTHER_NODE);
    }
    long long last = -1;
    if (ml_parse_ll(s, 0, 1LL << 62, &last) == 0)
        FUZZ_ASSERT(last >= 0 && last <= 1LL << 62);
    if (sig_node_id_ok(s))
        FUZZ_ASSERT(strlen(s) > 0 && strlen(s) < SIG_NODE_MAX);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0; /* the server's limit (signaling.max-message) is far below */
    message(data, size);
    url_args(data, size);
    return 0;
}
