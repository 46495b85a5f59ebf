/* The checks every request passes before its route runs: headers within bounds, a body that
 * says its length, JSON where a body is taken. */
#include "config.h"

#include "http/http.h"

#include <string.h>

int http_header(struct lws *wsi, enum lws_token_indexes t, char *buf, size_t len)
{
    int n = lws_hdr_total_length(wsi, t);
    if (n <= 0 || (size_t)n >= len) {
        buf[0] = 0;
        return n <= 0 ? 0 : -1;
    }
    return lws_hdr_copy(wsi, buf, (int)len, t) < 0 ? -1 : n;
}

enum http_err http_length(struct lws *wsi, long long *content_length, const char **msg)
{
    char cl[32];
    *msg = NULL;
    *content_length = -1;
    if (http_header(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, cl, sizeof cl) > 0) {
        long long v;
        if (ml_parse_ll(ml_trim(cl), 0, 1LL << 40, &v) < 0) {
            *msg = "bad Content-Length";
            return HTTP_E_BAD_REQUEST;
        }
        *content_length = v;
    }
    /* chunked bodies are not supported: a body must say its length */
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0)
        return HTTP_E_LENGTH_REQUIRED;
    return HTTP_OK;
}

enum http_err http_body_check(struct lws *wsi, int method, long long content_length,
                              long long max_body, bool takes_body, const char **msg)
{
    *msg = NULL;
    if (content_length > max_body)
        return HTTP_E_TOO_LARGE;
    /* lws takes a POST without Content-Length as a body running to the end of the connection:
     * every request that may carry one must say its length, 0 included */
    if ((method == LWSHUMETH_POST || method == LWSHUMETH_PUT || method == LWSHUMETH_PATCH) &&
        content_length < 0)
        return HTTP_E_LENGTH_REQUIRED;
    if (content_length > 0) {
        char ct[128];
        if (http_header(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, ct, sizeof ct) <= 0 ||
            strncasecmp(ct, "application/json", 16) != 0 ||
            (ct[16] && ct[16] != ';' && ct[16] != ' '))
            return HTTP_E_MEDIA_TYPE;
        if (!takes_body) {
            *msg = "this request takes no body";
            return HTTP_E_BAD_REQUEST;
        }
    }
    return HTTP_OK;
}
