/* meetlite-admin's requests to the admin API: where it is, one call with its error reporting,
 * and reading the answers' JSON. */
#include "config.h"

#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

struct cli_conn cli_server;
bool cli_json_out;

/* ------------------------------------------------------------------ JSON helpers */

/* The member at a dotted path ("turn.allocations.total"), or NULL. */
json_t *cli_jget(json_t *j, const char *path)
{
    char key[64];
    while (j && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof key)
            return NULL;
        memcpy(key, path, n);
        key[n] = 0;
        j = json_object_get(j, key);
        path += n + (path[n] == '.');
    }
    return j;
}

long long cli_jint(json_t *j, const char *path)
{
    json_t *v = cli_jget(j, path);
    return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

const char *cli_jstr(json_t *j, const char *path)
{
    json_t *v = cli_jget(j, path);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

void cli_url_encode(const char *in, char *out, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *in && o + 4 < len; in++) {
        unsigned char c = (unsigned char)*in;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = 0;
}

/* ------------------------------------------------------------------ requests */

/* One request. In --json mode the answer is printed as it came. Returns the parsed answer of a
 * 2xx (caller json_decref()s), or NULL with *rc set and a message on stderr. */
json_t *cli_call(const char *method, const char *path, json_t *body, int *rc)
{
    struct cli_resp r;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    int ok = cli_http(&cli_server, method, path, text, &r);
    if (text) {
        ml_wipe(text, strlen(text)); /* may hold a password or a secret */
        free(text);
    }
    if (ok < 0) {
        fprintf(stderr, "meetlite-admin: %s:%d: %s\n", cli_server.host, cli_server.port, r.err);
        cli_resp_free(&r);
        *rc = CLI_EXIT_CONN;
        return NULL;
    }
    if (cli_json_out && r.json) {
        char *pretty = json_dumps(r.json, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (pretty)
            printf("%s\n", pretty);
        free(pretty);
    }
    if (r.status >= 300) {
        const char *code = cli_jstr(r.json, "error.code"), *msg = cli_jstr(r.json, "error.message");
        if (!cli_json_out || !r.json)
            fprintf(stderr, "meetlite-admin: %s %s: %d %s%s%s\n", method, path, r.status,
                    code ? code : "", msg ? ": " : "", msg ? msg : "");
        cli_resp_free(&r);
        *rc = CLI_EXIT_API;
        return NULL;
    }
    json_t *j = json_incref(r.json);
    cli_resp_free(&r);
    if (!j) {
        fprintf(stderr, "meetlite-admin: %s %s: the answer is not JSON\n", method, path);
        *rc = CLI_EXIT_API;
        return NULL;
    }
    *rc = 0;
    return j;
}
