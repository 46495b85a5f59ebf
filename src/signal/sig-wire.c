/* Signaling messages: the table of client message types and their payloads (validated in
 * place, only known members relayed), close codes, UUIDs, node ids, the rate limiter's token
 * bucket. Pure functions: no lws, no database. */
#include "config.h"

#include "signal/sig-int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

const char *sig_close_reason(int code)
{
    switch (code) {
    case SIG_CLOSE_NORMAL:
        return "normal";
    case SIG_CLOSE_GOING_AWAY:
        return "going_away";
    case SIG_CLOSE_IDLE:
        return "idle_timeout";
    case SIG_CLOSE_TOO_BIG:
        return "message_too_large";
    case SIG_CLOSE_RATE:
        return "rate_limited";
    case SIG_CLOSE_TOO_MANY:
        return "too_many_connections";
    case SIG_CLOSE_SLOW:
        return "slow_consumer";
    case SIG_CLOSE_BAD_FRAME:
        return "binary_frame";
    case SIG_CLOSE_RESUME:
        return "resume_failed";
    case SIG_CLOSE_ADMITTED:
        return "admitted";
    default:
        return "error";
    }
}

/* ------------------------------------------------------------------ the message table */

static const char *const mute_kinds[] = {"audio", "video", "all", NULL};

/* Index 0 is the "not known" slot: a name is never matched against it. The client's path
 * badge (src/web/js/peer.js) maps onto these: a relay candidate on either end is relay-<the
 * local candidate's relayProtocol, udp when the relay is the other side's>; none: no path
 * after the client's wait (its explanation is shown). */
const char *const sig_path_names[] = {"",          "connecting", "direct", "relay-udp",
                                      "relay-tcp", "relay-tls",  "none",   NULL};
const char *const sig_network_names[] = {"", "udp", "tcp", "tls", "none", "unchecked", NULL};
/* thumbs up, clapping hands, red heart, face with tears of joy, party popper, open mouth */
const char *const sig_reactions[] = {"\xf0\x9f\x91\x8d",
                                     "\xf0\x9f\x91\x8f",
                                     "\xe2\x9d\xa4\xef\xb8\x8f",
                                     "\xf0\x9f\x98\x82",
                                     "\xf0\x9f\x8e\x89",
                                     "\xf0\x9f\x98\xae",
                                     NULL};

uint8_t sig_name_index(const char *const *names, const char *s)
{
    for (uint8_t i = 1; s && names[i]; i++)
        if (!strcmp(names[i], s))
            return i;
    return 0;
}

static const struct sig_field sdp_fields[] = {
    {"sdp", SIG_F_STRING, SIG_F_REQUIRED | SIG_F_NO_CTRL, 1, 1 << 20, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};
static const struct sig_field candidate_fields[] = {
    /* "" is the end-of-candidates indication */
    {"candidate", SIG_F_STRING, SIG_F_REQUIRED | SIG_F_NO_CTRL, 0, 2048, NULL},
    {"sdpMid", SIG_F_STRING, SIG_F_NO_CTRL, 0, 64, NULL},
    {"sdpMLineIndex", SIG_F_INT, 0, 0, 65535, NULL},
    {"usernameFragment", SIG_F_STRING, SIG_F_NO_CTRL, 0, 256, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};
static const struct sig_field restart_fields[] = {
    {"reason", SIG_F_STRING, SIG_F_NO_CTRL, 0, 200, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};
static const struct sig_field chat_fields[] = {
    /* the length (1 to signaling.chat-max-length characters) is checked by the handler, so
     * that an empty text and a long one are refused with the same words and the real limit */
    {"text", SIG_F_STRING, SIG_F_REQUIRED | SIG_F_NO_CTRL, 0, 1 << 20, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};
static const struct sig_field media_fields[] = {
    {"audio", SIG_F_BOOL, 0, 0, 0, NULL},
    {"video", SIG_F_BOOL, 0, 0, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};
static const struct sig_field mute_fields[] = {
    {"kind", SIG_F_ENUM, 0, 0, 0, mute_kinds},
    {NULL, 0, 0, 0, 0, NULL},
};
static const struct sig_field path_fields[] = {
    {"path", SIG_F_ENUM, SIG_F_REQUIRED, 0, 0, sig_path_names + 1},
    {NULL, 0, 0, 0, 0, NULL},
};
static const struct sig_field hand_fields[] = {
    {"raised", SIG_F_BOOL, SIG_F_REQUIRED, 0, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};
static const struct sig_field reaction_fields[] = {
    {"emoji", SIG_F_ENUM, SIG_F_REQUIRED, 0, 0, sig_reactions},
    {NULL, 0, 0, 0, 0, NULL},
};
static const struct sig_field screen_fields[] = {
    {"sharing", SIG_F_BOOL, SIG_F_REQUIRED, 0, 0, NULL},
    /* the MediaStream id its track comes in (the SDP's msid): how the others tell it apart */
    {"stream", SIG_F_STRING, SIG_F_NO_CTRL, 1, SIG_ID_MAX, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};
static const struct sig_field no_fields[] = {
    {NULL, 0, 0, 0, 0, NULL},
};

const struct sig_mtype sig_mtypes[] = {
    {"offer", SIG_M_RELAY, SIG_MT_TO | SIG_MT_PAYLOAD, sdp_fields},
    {"answer", SIG_M_RELAY, SIG_MT_TO | SIG_MT_PAYLOAD, sdp_fields},
    {"candidate", SIG_M_RELAY, SIG_MT_TO | SIG_MT_PAYLOAD, candidate_fields},
    {"ice-restart", SIG_M_RELAY, SIG_MT_TO, restart_fields},
    {"chat", SIG_M_CHAT, SIG_MT_PAYLOAD, chat_fields},
    {"media", SIG_M_MEDIA, SIG_MT_PAYLOAD, media_fields},
    {"mute-request", SIG_M_MUTE_REQUEST, SIG_MT_TO | SIG_MT_ADMIN, mute_fields},
    {"remove", SIG_M_REMOVE, SIG_MT_TO | SIG_MT_ADMIN, no_fields},
    {"end", SIG_M_END, SIG_MT_ADMIN, no_fields},
    {"ping", SIG_M_PING, 0, NULL},
    {"path", SIG_M_PATH, SIG_MT_PAYLOAD, path_fields},
    {"hand", SIG_M_HAND, SIG_MT_PAYLOAD, hand_fields},
    {"lower-hand", SIG_M_LOWER_HAND, SIG_MT_TO | SIG_MT_ADMIN, no_fields},
    {"reaction", SIG_M_REACTION, SIG_MT_PAYLOAD, reaction_fields},
    {"screen", SIG_M_SCREEN, SIG_MT_PAYLOAD, screen_fields},
    {NULL, 0, 0, NULL},
};

/* ------------------------------------------------------------------ validation */

static bool has_ctrl(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n; i++) {
        if ((p[i] < 0x20 && p[i] != '\n' && p[i] != '\t' && p[i] != '\r') || p[i] == 0x7f)
            return true;
        if (p[i] == 0xc2 && i + 1 < n && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
            return true;
    }
    return false;
}

static enum http_err check_field(const struct sig_field *f, const json_t *v, char *msg,
                                 size_t msglen)
{
    switch (f->type) {
    case SIG_F_STRING: {
        if (!json_is_string(v)) {
            ml_snprintf(msg, msglen, "payload.%s: expected a string", f->name);
            return HTTP_E_INVALID_FIELD;
        }
        const char *s = json_string_value(v);
        size_t n = json_string_length(v), chars = 0;
        if (n > 0 && !ml_utf8_valid(s, n, &chars)) {
            ml_snprintf(msg, msglen, "payload.%s: not valid UTF-8 text", f->name);
            return HTTP_E_INVALID_FIELD;
        }
        if ((long long)chars < f->min || (long long)chars > f->max) {
            ml_snprintf(msg, msglen, "payload.%s: length must be %lld to %lld characters", f->name,
                        f->min, f->max);
            return HTTP_E_INVALID_FIELD;
        }
        if ((f->flags & SIG_F_NO_CTRL) && has_ctrl(s, n)) {
            ml_snprintf(msg, msglen, "payload.%s: control characters are not allowed", f->name);
            return HTTP_E_INVALID_FIELD;
        }
        return HTTP_OK;
    }
    case SIG_F_INT:
        if (!json_is_integer(v) || json_integer_value(v) < f->min ||
            json_integer_value(v) > f->max) {
            ml_snprintf(msg, msglen, "payload.%s: expected an integer from %lld to %lld", f->name,
                        f->min, f->max);
            return HTTP_E_INVALID_FIELD;
        }
        return HTTP_OK;
    case SIG_F_BOOL:
        if (!json_is_boolean(v)) {
            ml_snprintf(msg, msglen, "payload.%s: expected true or false", f->name);
            return HTTP_E_INVALID_FIELD;
        }
        return HTTP_OK;
    case SIG_F_ENUM: {
        const char *s = json_string_value(v);
        for (int i = 0; s && f->enums[i]; i++)
            if (!strcmp(s, f->enums[i]))
                return HTTP_OK;
        size_t off = ml_snprintf(msg, msglen, "payload.%s: expected one of", f->name);
        for (int i = 0; f->enums[i] && off < msglen; i++)
            off += ml_snprintf(msg + off, msglen - off, "%s %s", i ? "," : "", f->enums[i]);
        return HTTP_E_INVALID_FIELD;
    }
    }
    return HTTP_E_INTERNAL;
}

/* The id a client gives a message: a string of 1..SIG_ID_MAX printable characters, or an
 * integer. */
static bool id_ok(const json_t *v)
{
    if (json_is_integer(v))
        return true;
    if (!json_is_string(v))
        return false;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v), chars = 0;
    return n > 0 && ml_utf8_valid(s, n, &chars) && chars <= SIG_ID_MAX && !has_ctrl(s, n) &&
           !strpbrk(s, "\n\r\t");
}

enum http_err sig_msg_parse(const char *text, size_t n, json_t **root, struct sig_msg *out,
                            char *msg, size_t msglen)
{
    json_error_t je;
    memset(out, 0, sizeof *out);
    *root = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
    if (!*root) {
        ml_snprintf(msg, msglen, "malformed JSON at byte %d: %s", je.position, je.text);
        return HTTP_E_INVALID_JSON;
    }
    if (!json_is_object(*root)) {
        ml_snprintf(msg, msglen, "a message is a JSON object {type, id, to, payload}");
        return HTTP_E_INVALID_JSON;
    }
    json_t *id = json_object_get(*root, "id");
    if (id && !json_is_null(id)) {
        if (!id_ok(id)) {
            ml_snprintf(msg, msglen, "id: a string of 1 to %d characters, or an integer",
                        SIG_ID_MAX);
            return HTTP_E_INVALID_FIELD;
        }
        out->id = id;
    }
    json_t *type = json_object_get(*root, "type");
    if (!type) {
        ml_snprintf(msg, msglen, "type is required");
        return HTTP_E_MISSING_FIELD;
    }
    const char *tname = json_string_value(type);
    for (const struct sig_mtype *t = sig_mtypes; tname && t->name; t++)
        if (!strcmp(t->name, tname)) {
            out->type = t;
            break;
        }
    if (!out->type) {
        ml_snprintf(msg, msglen, "type: not a message type of this protocol");
        return HTTP_E_INVALID_FIELD;
    }
    const struct sig_mtype *t = out->type;
    json_t *to = json_object_get(*root, "to");
    if (t->flags & SIG_MT_TO) {
        if (!to || json_is_null(to)) {
            ml_snprintf(msg, msglen, "to is required for %s", t->name);
            return HTTP_E_MISSING_FIELD;
        }
        if (!json_is_string(to) || !ml_uuid_parse(json_string_value(to), out->to)) {
            ml_snprintf(msg, msglen, "to: expected a participant id");
            return HTTP_E_INVALID_FIELD;
        }
        out->has_to = true;
        ml_uuid_format(out->to, out->to_s);
    }
    json_t *payload = json_object_get(*root, "payload");
    if (payload && json_is_null(payload))
        payload = NULL;
    if (!t->fields)
        return HTTP_OK;
    if (!payload && (t->flags & SIG_MT_PAYLOAD)) {
        ml_snprintf(msg, msglen, "payload is required for %s", t->name);
        return HTTP_E_MISSING_FIELD;
    }
    if (payload && !json_is_object(payload)) {
        ml_snprintf(msg, msglen, "payload: expected an object");
        return HTTP_E_INVALID_FIELD;
    }
    out->payload = ml_nonnull(json_object());
    for (const struct sig_field *f = t->fields; f->name; f++) {
        json_t *v = payload ? json_object_get(payload, f->name) : NULL;
        if (!v || json_is_null(v)) {
            if (f->flags & SIG_F_REQUIRED) {
                ml_snprintf(msg, msglen, "payload.%s is required", f->name);
                json_decref(out->payload);
                out->payload = NULL;
                return HTTP_E_MISSING_FIELD;
            }
            continue;
        }
        enum http_err e = check_field(f, v, msg, msglen);
        if (e != HTTP_OK) {
            json_decref(out->payload);
            out->payload = NULL;
            return e;
        }
        json_object_set(out->payload, f->name, v);
    }
    return HTTP_OK;
}

/* ------------------------------------------------------------------ small helpers */

enum sig_resume_err sig_resume_token_parse(const char *tok, const char *node, uint8_t key[16])
{
    const char *dot = strrchr(tok, '.');
    size_t nlen = dot ? (size_t)(dot - tok) : 0;
    if (!dot || !nlen || strlen(dot + 1) != SIG_TOKEN_HEX)
        return SIG_RESUME_MALFORMED;
    if (nlen != strlen(node) || memcmp(tok, node, nlen))
        return SIG_RESUME_OTHER_NODE;
    uint8_t k[16];
    for (int i = 0; i < 16; i++) {
        /* digits only: strtoul would take " f", "+f" and "-1" as well */
        int hi = ml_hex_digit(dot[1 + 2 * i]), lo = ml_hex_digit(dot[2 + 2 * i]);
        if (hi < 0 || lo < 0)
            return SIG_RESUME_MALFORMED;
        k[i] = (uint8_t)(hi << 4 | lo);
    }
    memcpy(key, k, sizeof k);
    return SIG_RESUME_OK;
}

bool sig_node_id_ok(const char *s)
{
    return ml_name_valid(s) && strlen(s) < SIG_NODE_MAX;
}

void sig_bucket_init(struct sig_bucket *b, long long burst, int64_t now_ms)
{
    b->tokens = (double)burst;
    b->last_ms = now_ms;
}

bool sig_bucket_take(struct sig_bucket *b, long long rate, long long burst, int64_t now_ms)
{
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * (double)rate / 1000.0;
        if (b->tokens > (double)burst)
            b->tokens = (double)burst;
        b->last_ms = now_ms;
    }
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}
