/* meetlite-admin's HTTP(S) client: one request per libwebsockets client context (the project's
 * HTTP library on both ends), the bearer token in a header (never in the URL), bounded answers,
 * and a deadline. */
#include "config.h"

#include "cli/cli.h"

#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CLI_MAX_ANSWER (64 << 20) /* bytes: the largest listing is a few MiB */

struct call {
    const struct cli_conn *c;
    const char *method, *body;
    size_t body_len;
    bool sends_length; /* POST, PUT: Content-Length always */
    struct cli_resp *out;
    struct ml_buf answer; /* bounded by CLI_MAX_ANSWER */
    bool done;
};

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                      unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
}

static int cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct call *k = lws_get_opaque_user_data(wsi);
    ML_UNUSED(user);
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        unsigned char **p = in, *end = (*p) + len;
        char v[600];
        if (k->c->token) {
            ml_snprintf(v, sizeof v, "Bearer %s", k->c->token);
            int rc = add_header(wsi, "authorization:", v, p, end);
            ml_wipe(v, sizeof v);
            if (rc)
                return -1;
        }
        if (k->body || k->sends_length) {
            char n[24];
            ml_snprintf(n, sizeof n, "%zu", k->body_len);
            if (add_header(wsi, "content-length:", n, p, end))
                return -1;
        }
        if (k->body) {
            if (add_header(wsi, "content-type:", "application/json", p, end))
                return -1;
            lws_client_http_body_pending(wsi, 1);
            lws_callback_on_writable(wsi);
        }
        return 0;
    }
    case LWS_CALLBACK_CLIENT_HTTP_WRITEABLE: {
        unsigned char *buf = malloc(LWS_PRE + k->body_len);
        if (!buf)
            return -1;
        memcpy(buf + LWS_PRE, k->body, k->body_len);
        int w = lws_write(wsi, buf + LWS_PRE, k->body_len, LWS_WRITE_HTTP_FINAL);
        free(buf);
        lws_client_http_body_pending(wsi, 0);
        return w == (int)k->body_len ? 0 : -1;
    }
    case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
        k->out->status = (int)lws_http_client_http_response(wsi);
        return 0;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: {
        char buf[LWS_PRE + 8192];
        char *px = buf + LWS_PRE;
        int n = (int)sizeof buf - LWS_PRE;
        return lws_http_client_read(wsi, &px, &n) < 0 ? -1 : 0;
    }
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
        if (ml_buf_add(&k->answer, in, len) < 0) {
            ml_strlcpy(k->out->err, "the answer is too large", sizeof k->out->err);
            return -1;
        }
        return 0;
    case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
        k->done = true;
        lws_cancel_service(lws_get_context(wsi));
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        ml_snprintf(k->out->err, sizeof k->out->err, "%s",
                    in ? (const char *)in : "connection failed");
        k->out->status = 0;
        k->done = true;
        return 0;
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
        k->done = true;
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    {"meetlite-admin", cb, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void quiet(int level, const char *line)
{
    ML_UNUSED(level);
    ML_UNUSED(line);
}

int cli_http(const struct cli_conn *c, const char *method, const char *path, const char *body,
             struct cli_resp *out)
{
    struct lws_context_creation_info info;
    struct lws_client_connect_info ci;
    struct call k;
    memset(out, 0, sizeof *out);
    memset(&k, 0, sizeof k);
    k.c = c;
    k.method = method;
    k.body = body;
    k.body_len = body ? strlen(body) : 0;
    k.sends_length = !strcmp(method, "POST") || !strcmp(method, "PUT");
    k.out = out;
    k.answer.max = CLI_MAX_ANSWER - 1;

    lws_set_log_level(0, quiet);
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.timeout_secs = (unsigned)c->timeout_s;
    info.connect_timeout_secs = (unsigned)c->timeout_s;
    info.fd_limit_per_thread = 16;
    if (c->tls) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.client_ssl_ca_filepath = c->cacert;
    }
    struct lws_context *ctx = lws_create_context(&info);
    if (!ctx) {
        ml_strlcpy(out->err, "cannot create the HTTP client", sizeof out->err);
        return -1;
    }
    memset(&ci, 0, sizeof ci);
    ci.context = ctx;
    ci.address = c->host;
    ci.port = c->port;
    ci.path = path;
    ci.host = c->host;
    ci.origin = c->host;
    ci.method = method;
    ci.protocol = protocols[0].name;
    ci.alpn = "http/1.1";
    ci.opaque_user_data = &k;
    ci.ssl_connection = LCCSCF_HTTP_NO_FOLLOW_REDIRECT;
    if (c->tls) {
        ci.ssl_connection |= LCCSCF_USE_SSL;
        if (c->insecure)
            ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK |
                                 LCCSCF_ALLOW_EXPIRED;
    }
    int64_t deadline = ml_now_ms() + (int64_t)c->timeout_s * 1000 + 1000;
    if (!lws_client_connect_via_info(&ci)) {
        if (!out->err[0])
            ml_snprintf(out->err, sizeof out->err, "cannot connect to %s:%d", c->host, c->port);
        lws_context_destroy(ctx);
        ml_buf_free(&k.answer);
        return -1;
    }
    while (!k.done && ml_now_ms() < deadline)
        if (lws_service(ctx, 0) < 0)
            break;
    if (!k.done && !out->err[0])
        ml_snprintf(out->err, sizeof out->err, "no answer within %d s", c->timeout_s);
    lws_context_destroy(ctx);
    out->len = k.answer.len;
    out->body = ml_buf_take(&k.answer);
    if (!k.done || out->status == 0) {
        if (!out->err[0])
            ml_strlcpy(out->err, "the connection closed without an answer", sizeof out->err);
        return -1;
    }
    if (out->body)
        out->json = json_loadb(out->body, out->len, 0, NULL);
    return 0;
}

void cli_resp_free(struct cli_resp *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

int cli_url_parse(const char *url, struct cli_conn *c)
{
    const char *p = url;
    c->tls = false;
    if (!strncmp(p, "https://", 8)) {
        c->tls = true;
        p += 8;
    } else if (!strncmp(p, "http://", 7)) {
        p += 7;
    }
    const char *end;
    if (*p == '[') {
        end = strchr(p, ']');
        if (!end || (size_t)(end - p - 1) >= sizeof c->host)
            return -1;
        memcpy(c->host, p + 1, (size_t)(end - p - 1));
        c->host[end - p - 1] = 0;
        p = end + 1;
    } else {
        size_t n = strcspn(p, ":/");
        if (n == 0 || n >= sizeof c->host)
            return -1;
        memcpy(c->host, p, n);
        c->host[n] = 0;
        p += n;
    }
    c->port = c->tls ? 443 : 80;
    if (*p == ':') {
        long long port;
        char num[8];
        size_t n = strcspn(p + 1, "/");
        if (n == 0 || n >= sizeof num)
            return -1;
        memcpy(num, p + 1, n);
        num[n] = 0;
        if (ml_parse_ll(num, 1, 65535, &port) < 0)
            return -1;
        c->port = (int)port;
        p += 1 + n;
    }
    return *p == 0 || !strcmp(p, "/") ? 0 : -1;
}
