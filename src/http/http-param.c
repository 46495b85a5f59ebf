/* Request validation by a parameter table per endpoint: each JSON member's type, presence,
 * range or length, and its place in the endpoint's struct. */
#include "config.h"

#include "http/http.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static bool has_ctrl(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return true;
        /* C1 controls U+0080..U+009F are encoded C2 80..C2 9F */
        if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
            return true;
    }
    return false;
}

static bool email_ok(const char *s)
{
    const char *at = strchr(s, '@');
    if (!at || at == s || strchr(at + 1, '@') || !at[1] || !strchr(at + 1, '.'))
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p == 0x7f || *p == '<' || *p == '>' || *p == ',' || *p == ';' ||
            *p == '"' || *p == '\\')
            return false;
    size_t n = strlen(at + 1);
    return at[1] != '.' && at[n] != '.';
}

static enum http_err parse_one(const struct http_param *pa, const json_t *v, void *out, char *msg,
                               size_t msglen)
{
    char *field = (char *)out + pa->offset;
    switch (pa->type) {
    case HTTP_P_STRING:
    case HTTP_P_EMAIL: {
        if (!json_is_string(v)) {
            ml_snprintf(msg, msglen, "%s: expected a string", pa->name);
            return HTTP_E_INVALID_FIELD;
        }
        const char *s = json_string_value(v);
        size_t n = json_string_length(v), chars = 0;
        if (!ml_utf8_valid(s, n, &chars) || strlen(s) != n) {
            ml_snprintf(msg, msglen, "%s: not valid UTF-8 text", pa->name);
            return HTTP_E_INVALID_FIELD;
        }
        if (pa->flags & HTTP_P_TRIM) {
            while (n && isspace((unsigned char)*s)) {
                s++;
                n--;
                chars--;
            }
            while (n && isspace((unsigned char)s[n - 1])) {
                n--;
                chars--;
            }
        }
        bool empty_ok = n == 0 && (pa->flags & HTTP_P_EMPTY_OK);
        if (!empty_ok &&
            ((long long)chars < pa->min || (long long)chars > pa->max || n + 1 > pa->size)) {
            ml_snprintf(msg, msglen, "%s: length must be %lld to %lld characters%s", pa->name,
                        pa->min, pa->max, (pa->flags & HTTP_P_EMPTY_OK) ? ", or \"\"" : "");
            return HTTP_E_INVALID_FIELD;
        }
        memcpy(field, s, n);
        field[n] = 0;
        if ((pa->flags & HTTP_P_NO_CTRL) && has_ctrl(field)) {
            ml_snprintf(msg, msglen, "%s: control characters are not allowed", pa->name);
            return HTTP_E_INVALID_FIELD;
        }
        if (pa->type == HTTP_P_EMAIL && !email_ok(field)) {
            ml_snprintf(msg, msglen, "%s: not an e-mail address", pa->name);
            return HTTP_E_INVALID_FIELD;
        }
        return HTTP_OK;
    }
    case HTTP_P_INT: {
        if (!json_is_integer(v)) {
            ml_snprintf(msg, msglen, "%s: expected an integer", pa->name);
            return HTTP_E_INVALID_FIELD;
        }
        long long x = (long long)json_integer_value(v);
        if (x < pa->min || x > pa->max) {
            ml_snprintf(msg, msglen, "%s: must be %lld to %lld", pa->name, pa->min, pa->max);
            return HTTP_E_INVALID_FIELD;
        }
        memcpy(field, &x, sizeof x);
        return HTTP_OK;
    }
    case HTTP_P_BOOL: {
        if (!json_is_boolean(v)) {
            ml_snprintf(msg, msglen, "%s: expected true or false", pa->name);
            return HTTP_E_INVALID_FIELD;
        }
        bool b = json_is_true(v);
        memcpy(field, &b, sizeof b);
        return HTTP_OK;
    }
    case HTTP_P_ENUM: {
        const char *s = json_is_string(v) ? json_string_value(v) : NULL;
        for (int i = 0; s && pa->enums[i]; i++)
            if (strcmp(s, pa->enums[i]) == 0) {
                memcpy(field, &i, sizeof i);
                return HTTP_OK;
            }
        size_t off = ml_snprintf(msg, msglen, "%s: expected one of", pa->name);
        for (int i = 0; pa->enums[i] && off < msglen; i++)
            off += ml_snprintf(msg + off, msglen - off, "%s %s", i ? "," : "", pa->enums[i]);
        return HTTP_E_INVALID_FIELD;
    }
    case HTTP_P_OBJECT: {
        if (!json_is_object(v)) {
            ml_snprintf(msg, msglen, "%s: expected an object", pa->name);
            return HTTP_E_INVALID_FIELD;
        }
        char *text = json_dumps(v, JSON_COMPACT);
        if (!text)
            return HTTP_E_INTERNAL;
        size_t n = strlen(text);
        enum http_err e = HTTP_OK;
        if ((long long)n > pa->max || n + 1 > pa->size) {
            ml_snprintf(msg, msglen, "%s: at most %lld bytes of JSON", pa->name, pa->max);
            e = HTTP_E_INVALID_FIELD;
        } else {
            memcpy(field, text, n + 1);
        }
        free(text);
        return e;
    }
    }
    return HTTP_E_INTERNAL;
}

enum http_err http_params_parse(const struct http_param *table, const json_t *body, void *out,
                                char *msg, size_t msglen)
{
    if (!json_is_object(body)) {
        ml_snprintf(msg, msglen, "the body must be a JSON object");
        return HTTP_E_INVALID_JSON;
    }
    for (const struct http_param *pa = table; pa && pa->name; pa++) {
        const json_t *v = json_object_get(body, pa->name);
        bool present = v && !json_is_null(v);
        if (pa->has_offset != HTTP_P_NOHAS)
            *(bool *)((char *)out + pa->has_offset) = present;
        if (!present) {
            if (pa->flags & HTTP_P_REQUIRED) {
                ml_snprintf(msg, msglen, "%s is required", pa->name);
                return HTTP_E_MISSING_FIELD;
            }
            continue;
        }
        enum http_err e = parse_one(pa, v, out, msg, msglen);
        if (e != HTTP_OK)
            return e;
    }
    return HTTP_OK;
}

enum http_err http_params_json(const struct http_param *table, size_t size, bool required,
                               char *body, size_t body_len, void **out, char *msg, size_t msglen)
{
    json_t *doc;
    json_error_t je;
    msg[0] = 0;
    if (body_len == 0) {
        if (required) {
            ml_strlcpy(msg, "a JSON object body is required", msglen);
            return HTTP_E_INVALID_JSON;
        }
        doc = json_object();
    } else {
        doc = json_loadb(body, body_len, JSON_REJECT_DUPLICATES, &je);
        ml_wipe(body, body_len); /* may hold a password or a secret */
        if (!doc) {
            ml_snprintf(msg, msglen, "malformed JSON at byte %d: %s", je.position, je.text);
            return HTTP_E_INVALID_JSON;
        }
    }
    *out = ml_xcalloc(1, size);
    enum http_err e = http_params_parse(table, doc, *out, msg, msglen);
    json_decref(doc);
    return e;
}
