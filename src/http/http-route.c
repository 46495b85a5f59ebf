/* Routing: a path against a service's table of patterns ('*' for one segment), the Allow
 * header of a path, method names. */
#include "config.h"

#include "http/http.h"

#include <string.h>

const char *http_method_name(int method)
{
    switch (method) {
    case LWSHUMETH_GET:
        return "GET";
    case LWSHUMETH_POST:
        return "POST";
    case LWSHUMETH_OPTIONS:
        return "OPTIONS";
    case LWSHUMETH_PUT:
        return "PUT";
    case LWSHUMETH_PATCH:
        return "PATCH";
    case LWSHUMETH_DELETE:
        return "DELETE";
    case LWSHUMETH_HEAD:
        return "HEAD";
    default:
        return "?";
    }
}

/* Matches one pattern; captures '*' segments (each under segment_max bytes). */
static bool match(const char *pattern, const char *path, size_t segment_max,
                  char caps[HTTP_MAX_CAPTURES][HTTP_SEGMENT_MAX])
{
    unsigned ncap = 0;
    while (*pattern && *path) {
        if (*pattern == '*') {
            const char *end = strchr(path, '/');
            size_t n = end ? (size_t)(end - path) : strlen(path);
            if (n == 0 || n >= segment_max || ncap == HTTP_MAX_CAPTURES)
                return false;
            memcpy(caps[ncap], path, n);
            caps[ncap][n] = 0;
            ncap++;
            path += n;
            pattern++;
            continue;
        }
        if (*pattern != *path)
            return false;
        pattern++;
        path++;
    }
    return !*pattern && !*path;
}

const struct http_route *http_route_match(const struct http_route *const *tables, int method,
                                          const char *path, size_t segment_max, bool *path_known,
                                          char caps[HTTP_MAX_CAPTURES][HTTP_SEGMENT_MAX])
{
    if (segment_max > HTTP_SEGMENT_MAX)
        segment_max = HTTP_SEGMENT_MAX;
    *path_known = false;
    for (const struct http_route *const *t = tables; *t; t++)
        for (const struct http_route *r = *t; r->pattern; r++) {
            if (!match(r->pattern, path, segment_max, caps))
                continue;
            *path_known = true;
            if (r->method == method)
                return r;
        }
    return NULL;
}

void http_route_allow(const struct http_route *const *tables, const char *path, size_t segment_max,
                      bool options, char *buf, size_t len)
{
    char caps[HTTP_MAX_CAPTURES][HTTP_SEGMENT_MAX];
    size_t off = 0;
    if (segment_max > HTTP_SEGMENT_MAX)
        segment_max = HTTP_SEGMENT_MAX;
    buf[0] = 0;
    for (const struct http_route *const *t = tables; *t; t++)
        for (const struct http_route *r = *t; r->pattern && off < len; r++)
            if (match(r->pattern, path, segment_max, caps))
                off += ml_snprintf(buf + off, len - off, "%s%s", off ? ", " : "",
                                   http_method_name(r->method));
    if (options && off < len)
        ml_snprintf(buf + off, len - off, "%sOPTIONS", off ? ", " : "");
}
