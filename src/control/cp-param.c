/* Request validation by a parameter table per endpoint: each JSON member's type, presence,
 * range or length, and its place in the endpoint's struct. */
#include "config.h"

#include "control/cp-int.h"

#include <ctype.h>
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

static enum cp_err parse_one(const struct cp_param *pa, const json_t *v, void *out, char *msg,
                             size_t msglen)
{
    char *field = (char *)out + pa->offset;
    switch (pa->type) {
    case CP_P_STRING:
    case CP_P_EMAIL: {
        if (!json_is_string(v)) {
            ml_snprintf(msg, msglen, "%s: expected a string", pa->name);
            return CP_E_INVALID_FIELD;
        }
        const char *s = json_string_value(v);
        size_t n = json_string_length(v), chars = 0;
        if (!ml_utf8_valid(s, n, &chars) || strlen(s) != n) {
            ml_snprintf(msg, msglen, "%s: not valid UTF-8 text", pa->name);
            return CP_E_INVALID_FIELD;
        }
        if (pa->flags & CP_P_TRIM) {
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
        if ((long long)chars < pa->min || (long long)chars > pa->max || n + 1 > pa->size) {
            ml_snprintf(msg, msglen, "%s: length must be %lld to %lld characters", pa->name,
                        pa->min, pa->max);
            return CP_E_INVALID_FIELD;
        }
        memcpy(field, s, n);
        field[n] = 0;
        if ((pa->flags & CP_P_NO_CTRL) && has_ctrl(field)) {
            ml_snprintf(msg, msglen, "%s: control characters are not allowed", pa->name);
            return CP_E_INVALID_FIELD;
        }
        if (pa->type == CP_P_EMAIL && !email_ok(field)) {
            ml_snprintf(msg, msglen, "%s: not an e-mail address", pa->name);
            return CP_E_INVALID_FIELD;
        }
        return CP_OK;
    }
    case CP_P_INT: {
        if (!json_is_integer(v)) {
            ml_snprintf(msg, msglen, "%s: expected an integer", pa->name);
            return CP_E_INVALID_FIELD;
        }
        long long x = (long long)json_integer_value(v);
        if (x < pa->min || x > pa->max) {
            ml_snprintf(msg, msglen, "%s: must be %lld to %lld", pa->name, pa->min, pa->max);
            return CP_E_INVALID_FIELD;
        }
        memcpy(field, &x, sizeof x);
        return CP_OK;
    }
    case CP_P_BOOL: {
        if (!json_is_boolean(v)) {
            ml_snprintf(msg, msglen, "%s: expected true or false", pa->name);
            return CP_E_INVALID_FIELD;
        }
        bool b = json_is_true(v);
        memcpy(field, &b, sizeof b);
        return CP_OK;
    }
    case CP_P_ENUM: {
        const char *s = json_is_string(v) ? json_string_value(v) : NULL;
        for (int i = 0; s && pa->enums[i]; i++)
            if (strcmp(s, pa->enums[i]) == 0) {
                memcpy(field, &i, sizeof i);
                return CP_OK;
            }
        size_t off = ml_snprintf(msg, msglen, "%s: expected one of", pa->name);
        for (int i = 0; pa->enums[i] && off < msglen; i++)
            off += ml_snprintf(msg + off, msglen - off, "%s %s", i ? "," : "", pa->enums[i]);
        return CP_E_INVALID_FIELD;
    }
    }
    return CP_E_INTERNAL;
}

enum cp_err cp_params_parse(const struct cp_param *table, const json_t *body, void *out, char *msg,
                            size_t msglen)
{
    if (!json_is_object(body)) {
        ml_snprintf(msg, msglen, "the body must be a JSON object");
        return CP_E_INVALID_JSON;
    }
    for (const struct cp_param *pa = table; pa && pa->name; pa++) {
        const json_t *v = json_object_get(body, pa->name);
        bool present = v && !json_is_null(v);
        if (pa->has_offset != CP_P_NOHAS)
            *(bool *)((char *)out + pa->has_offset) = present;
        if (!present) {
            if (pa->flags & CP_P_REQUIRED) {
                ml_snprintf(msg, msglen, "%s is required", pa->name);
                return CP_E_MISSING_FIELD;
            }
            continue;
        }
        enum cp_err e = parse_one(pa, v, out, msg, msglen);
        if (e != CP_OK)
            return e;
    }
    return CP_OK;
}
