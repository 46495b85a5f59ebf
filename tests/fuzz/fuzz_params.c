/* libFuzzer target for REST request bodies: http_params_json (JSON, then the route's parameter
 * table) with the real tables of every route that takes a body, of the control plane's API and
 * of the admin API. Input: one byte choosing the route, then the body. What passes must have
 * landed in the route's struct as the table says: terminated strings of valid UTF-8 within
 * their bounds, integers in range, enum indexes that exist, objects as JSON text that reads back
 * equal, presence flags that match. */
#include "fuzz_common.h"

#include "admin/adm-int.h"
#include "control/cp-int.h"

static const struct http_route *routes[64];
static size_t nroutes;

static void collect(const struct http_route *t)
{
    for (const struct http_route *r = t; r->pattern; r++)
        if (r->params && r->params->name && nroutes < ML_ARRAY_LEN(routes))
            routes[nroutes++] = r;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ml_log_set_level(ML_LOG_ERROR);
    for (const struct http_route *const *t = cp_api_routes; *t; t++)
        collect(*t);
    collect(adm_routes);
    collect(adm_kb_routes);
    FUZZ_ASSERT(nroutes > 0);
    return 0;
}

static void check_out(const struct http_param *table, const char *out, const json_t *doc)
{
    for (const struct http_param *pa = table; pa->name; pa++) {
        const json_t *v = json_object_get(doc, pa->name);
        bool present = v && !json_is_null(v);
        if (pa->has_offset != HTTP_P_NOHAS)
            FUZZ_ASSERT(*(const bool *)(out + pa->has_offset) == present);
        FUZZ_ASSERT(present || !(pa->flags & HTTP_P_REQUIRED));
        if (!present)
            continue;
        const char *f = out + pa->offset;
        switch (pa->type) {
        case HTTP_P_STRING:
        case HTTP_P_EMAIL: {
            const char *nul = memchr(f, 0, pa->size);
            FUZZ_ASSERT(nul != NULL);
            size_t chars = 0;
            FUZZ_ASSERT(ml_utf8_valid(f, (size_t)(nul - f), &chars));
            FUZZ_ASSERT((long long)chars >= pa->min && (long long)chars <= pa->max);
            if (pa->type == HTTP_P_EMAIL)
                FUZZ_ASSERT(strchr(f, '@') != NULL);
            break;
        }
        case HTTP_P_INT: {
            long long x;
            memcpy(&x, f, sizeof x);
            FUZZ_ASSERT(x >= pa->min && x <= pa->max && x == json_integer_value(v));
            break;
        }
        case HTTP_P_BOOL: {
            bool b;
            memcpy(&b, f, sizeof b);
            FUZZ_ASSERT(b == json_is_true(v));
            break;
        }
        case HTTP_P_ENUM: {
            int i;
            memcpy(&i, f, sizeof i);
            int n = 0;
            while (pa->enums[n])
                n++;
            FUZZ_ASSERT(i >= 0 && i < n && !strcmp(pa->enums[i], json_string_value(v)));
            break;
        }
        case HTTP_P_OBJECT: {
            const char *nul = memchr(f, 0, pa->size);
            FUZZ_ASSERT(nul != NULL && (long long)(nul - f) <= pa->max);
            json_t *o = json_loads(f, 0, NULL);
            FUZZ_ASSERT(json_is_object(o) && json_equal(o, v));
            json_decref(o);
            break;
        }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1 << 16) + 1)
        return 0; /* bodies are limited (control.max-body) far below */
    const struct http_route *r = routes[data[0] % nroutes];
    size_t n = size - 1;
    /* the body as the HTTP layer holds it: a buffer of its bytes, wiped after parsing */
    char *body = fuzz_memdup(data + 1, n);
    void *out = NULL;
    char msg[200];
    enum http_err e = http_params_json(r->params, r->params_size, r->flags & HTTP_ROUTE_BODY, body,
                                       n, &out, msg, sizeof msg);
    fuzz_check_msg(msg, sizeof msg);
    for (size_t i = 0; i < n; i++)
        FUZZ_ASSERT(body[i] == 0); /* a password must not stay in the request's buffer */
    if (e == HTTP_OK) {
        FUZZ_ASSERT(out != NULL);
        json_t *doc =
            n ? json_loadb((const char *)data + 1, n, JSON_REJECT_DUPLICATES, NULL) : json_object();
        FUZZ_ASSERT(json_is_object(doc));
        check_out(r->params, out, doc);
        json_decref(doc);
    } else {
        FUZZ_ASSERT(msg[0] && http_err_status(e) >= 400 && http_err_status(e) < 500);
    }
    free(out);
    free(body);
    return 0;
}
