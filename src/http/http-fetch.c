/* The daemon's one HTTP client (libcurl, blocking): the requests its subsystems make to others
 * (an OIDC issuer's keys, the assistant's generation endpoint, webhook receivers), each with
 * its schemes, redirects, timeouts, CAs and a ceiling on what is read back, and one vocabulary
 * of failures. Only for threads that may block; never an event loop. Never logs. */
#include "config.h"

#include "http/http.h"

#include <curl/curl.h>
#include <string.h>
#include <strings.h>

struct http_fetch_conn {
    CURL *curl;
};

int http_fetch_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void http_fetch_global_cleanup(void)
{
    curl_global_cleanup();
}

struct http_fetch_conn *http_fetch_conn_new(void)
{
    return ml_xcalloc(1, sizeof(struct http_fetch_conn));
}

void http_fetch_conn_free(struct http_fetch_conn *conn)
{
    if (!conn)
        return;
    if (conn->curl)
        curl_easy_cleanup(conn->curl);
    free(conn);
}

void http_fetch_resp_free(struct http_fetch_resp *resp)
{
    free(resp->body);
    resp->body = NULL;
    for (size_t i = 0; i < HTTP_FETCH_HEADERS; i++) {
        free(resp->headers[i]);
        resp->headers[i] = NULL;
    }
}

/* ---------------------------------------------------------------- one transfer */

struct xfer {
    const struct http_fetch_req *req;
    struct ml_buf body;
    bool too_large;
    struct ml_buf hdr[HTTP_FETCH_HEADERS];
    bool hdr_seen[HTTP_FETCH_HEADERS], hdr_over[HTTP_FETCH_HEADERS];
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    size_t n = size * nmemb;
    if (ml_buf_add(&x->body, ptr, n) < 0) {
        x->too_large = true;
        return 0; /* ends the transfer */
    }
    return n;
}

/* The kept headers of the last answer (a redirect's or a 1xx's come first and are forgotten);
 * repeated lines joined by ", " (RFC 9110, 5.3), a value past HTTP_FETCH_HEADER_MAX dropped. */
static size_t on_header(char *buf, size_t size, size_t nitems, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * nitems;
    const char *const *names = x->req->keep_headers;
    if (len >= 5 && !strncmp(buf, "HTTP/", 5)) {
        for (size_t i = 0; i < HTTP_FETCH_HEADERS; i++) {
            ml_buf_reset(&x->hdr[i]);
            x->hdr_seen[i] = x->hdr_over[i] = false;
        }
        return len;
    }
    for (size_t i = 0; names && names[i] && i < HTTP_FETCH_HEADERS; i++) {
        size_t nl = strlen(names[i]);
        if (len <= nl || buf[nl] != ':' || strncasecmp(buf, names[i], nl) != 0)
            continue;
        const char *v = buf + nl + 1, *end = buf + len;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (x->hdr_seen[i] && ml_buf_add(&x->hdr[i], ", ", 2) < 0)
            x->hdr_over[i] = true;
        if (ml_buf_add(&x->hdr[i], v, (size_t)(end - v)) < 0)
            x->hdr_over[i] = true;
        x->hdr_seen[i] = true;
    }
    return len;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    ML_UNUSED(dt);
    ML_UNUSED(dn);
    ML_UNUSED(ut);
    ML_UNUSED(un);
    const struct http_fetch_req *req = arg;
    return __atomic_load_n(req->abort, __ATOMIC_RELAXED) ? 1 : 0; /* non-zero ends it */
}

enum http_fetch_err http_fetch(struct http_fetch_conn *conn, const struct http_fetch_req *req,
                               struct http_fetch_resp *resp)
{
    memset(resp, 0, sizeof *resp);
    CURL *c = conn ? conn->curl : NULL;
    if (!c) {
        c = curl_easy_init();
        if (!c) {
            ml_err(resp->err, sizeof resp->err, "libcurl: out of memory");
            return HTTP_FETCH_TRANSPORT;
        }
        if (conn)
            conn->curl = c;
    }
    struct xfer x = {.req = req, .body = ML_BUF_INIT(req->max_body)};
    for (size_t i = 0; i < HTTP_FETCH_HEADERS; i++)
        x.hdr[i] = (struct ml_buf)ML_BUF_INIT(HTTP_FETCH_HEADER_MAX);
    enum http_fetch_err e = HTTP_FETCH_TRANSPORT;
    /* a POST's body goes at once: no "Expect: 100-continue" and its wait (bodies are small) */
    struct curl_slist *h = req->body ? curl_slist_append(NULL, "Expect:") : NULL;
    if (req->body && !h) {
        ml_err(resp->err, sizeof resp->err, "libcurl: out of memory");
        goto out;
    }
    for (size_t i = 0; req->headers && req->headers[i]; i++) {
        struct curl_slist *n = curl_slist_append(h, req->headers[i]);
        if (!n) {
            ml_err(resp->err, sizeof resp->err, "libcurl: out of memory");
            goto out;
        }
        h = n;
    }
    long long connect_ms = req->connect_timeout_ms ? req->connect_timeout_ms : req->timeout_ms;
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, req->protocols);
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, req->protocols);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, req->max_redirects > 0 ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, req->max_redirects);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_ms);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "meetlited/" PACKAGE_VERSION);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
    if (req->body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    }
    if (req->abort) {
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, req);
    }
    if (req->ca_file && *req->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, req->ca_file);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    if (x.too_large) {
        ml_err(resp->err, sizeof resp->err, "larger than %zu bytes", req->max_body);
        e = HTTP_FETCH_TOO_LARGE;
    } else if (rc == CURLE_ABORTED_BY_CALLBACK) {
        ml_err(resp->err, sizeof resp->err, "stopped");
    } else if (rc != CURLE_OK) {
        ml_err(resp->err, sizeof resp->err, "%s", cerr[0] ? cerr : curl_easy_strerror(rc));
        e = rc == CURLE_OPERATION_TIMEDOUT ? HTTP_FETCH_TIMEOUT : HTTP_FETCH_TRANSPORT;
    } else if (resp->status < 200 || resp->status > 299) {
        ml_err(resp->err, sizeof resp->err, "HTTP %ld", resp->status);
        e = HTTP_FETCH_STATUS;
    } else {
        e = HTTP_FETCH_OK;
    }
    resp->body_len = x.body.len;
    resp->body = ml_buf_take(&x.body);
    for (size_t i = 0; i < HTTP_FETCH_HEADERS; i++)
        if (x.hdr_seen[i] && !x.hdr_over[i])
            resp->headers[i] = x.hdr[i].p ? ml_buf_take(&x.hdr[i]) : ml_xstrdup("");
out:
    curl_slist_free_all(h);
    ml_buf_free(&x.body);
    for (size_t i = 0; i < HTTP_FETCH_HEADERS; i++)
        ml_buf_free(&x.hdr[i]);
    if (conn)
        curl_easy_reset(c); /* no pointer into this call's memory stays; the connections do */
    else
        curl_easy_cleanup(c);
    return e;
}

/* ---------------------------------------------------------------- configured URLs */

int http_fetch_url_check(const char *url, enum http_fetch_schemes allowed, char *err, size_t errlen)
{
    static const char *const want[] = {
        [HTTP_FETCH_HTTPS] = "expected an https:// URL",
        [HTTP_FETCH_HTTP_LOOPBACK] = "an https:// URL (http:// only to 127.0.0.1, localhost or "
                                     "[::1])",
        [HTTP_FETCH_HTTP] = "expected an http:// or https:// URL",
    };
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    int rc = -1;
    if (!u) {
        ml_err(err, errlen, "out of memory");
        return -1;
    }
    /* libcurl's own reading of the URL: the host checked is the one it will connect to */
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host) {
        ml_err(err, errlen, "%s", want[allowed]);
        goto out;
    }
    bool https = !strcasecmp(scheme, "https"), http = !strcasecmp(scheme, "http");
    bool loopback = !strcasecmp(host, "127.0.0.1") || !strcasecmp(host, "localhost") ||
                    !strcasecmp(host, "[::1]");
    if (https ||
        (http && (allowed == HTTP_FETCH_HTTP || (allowed == HTTP_FETCH_HTTP_LOOPBACK && loopback))))
        rc = 0;
    else
        ml_err(err, errlen, "%s", want[allowed]);
out:
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}
