/* The browser client (src/web) on the control plane's port: an lws file mount for its static
 * files (MIME types, ETag and 304s by lws), /api kept out of the file system, the deep links
 * /m/<code> answered with the app's index.html, and GET /api/v1/config, which tells the client
 * what this deployment offers (OpenID Connect sign-in, meeting limits). */
#include "config.h"

#include "control/cp-int.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef ML_SRCDIR
#define ML_SRCDIR "."
#endif
#ifndef ML_BUILDDIR
#define ML_BUILDDIR ""
#endif

#define SUBSYS "web"
#define GOOGLE_ISSUER "https://accounts.google.com"
#define GOOGLE_AUTHORIZE "https://accounts.google.com/o/oauth2/v2/auth"

struct cp_web {
    char root[PATH_MAX];  /* the client's directory */
    char index[PATH_MAX]; /* root/index.html, for the deep links */
    struct lws_http_mount api, files;
};

/* lws knows few types by itself and answers 415 for the others; "*" is the fallback. Files
 * here are UTF-8. */
#define MIME(var, next, ext, type)                                                                 \
    static const struct lws_protocol_vhost_options var = {next, NULL, ext, type}
MIME(mime_any, NULL, "*", "application/octet-stream");
MIME(mime_txt, &mime_any, ".txt", "text/plain; charset=utf-8");
MIME(mime_woff2, &mime_txt, ".woff2", "font/woff2");
MIME(mime_png, &mime_woff2, ".png", "image/png");
MIME(mime_ico, &mime_png, ".ico", "image/x-icon");
MIME(mime_svg, &mime_ico, ".svg", "image/svg+xml");
MIME(mime_manifest, &mime_svg, ".webmanifest", "application/manifest+json");
MIME(mime_json, &mime_manifest, ".json", "application/json");
MIME(mime_mjs, &mime_json, ".mjs", "text/javascript; charset=utf-8");
MIME(mime_js, &mime_mjs, ".js", "text/javascript; charset=utf-8");
MIME(mime_css, &mime_js, ".css", "text/css; charset=utf-8");
MIME(mime_html, &mime_css, ".html", "text/html; charset=utf-8");
#undef MIME

/* Headers on every answer of the vhost (API included): no MIME sniffing, no referrer (a
 * meeting link is a way in), no framing (clickjacking of the meeting controls). */
static const struct lws_protocol_vhost_options hdr_frame = {NULL, NULL, "x-frame-options:", "DENY"};
static const struct lws_protocol_vhost_options hdr_referrer = {&hdr_frame, NULL,
                                                               "referrer-policy:", "no-referrer"};
static const struct lws_protocol_vhost_options hdr_nosniff = {&hdr_referrer, NULL,
                                                              "x-content-type-options:", "nosniff"};

static bool has_index(const char *dir)
{
    char p[PATH_MAX];
    struct stat st;
    if (ml_snprintf(p, sizeof p, "%s/index.html", dir) >= sizeof p)
        return false;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* True when this process runs from the build tree (tests, scripts/start.sh), not installed. */
static bool uninstalled(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    size_t blen = strlen(ML_BUILDDIR);
    if (n <= 0 || blen == 0)
        return false;
    exe[n] = 0;
    return !strncmp(exe, ML_BUILDDIR, blen) && exe[blen] == '/';
}

/* The client's directory: control.web-root, else the source tree's src/web for an uninstalled
 * meetlited, else the installed one. NULL when there is none (or "off"). */
static const char *web_root(const struct cp_config *cfg)
{
    if (cfg->web_root)
        return strcmp(cfg->web_root, "off") ? cfg->web_root : NULL;
    if (uninstalled() && has_index(ML_SRCDIR "/src/web"))
        return ML_SRCDIR "/src/web";
    if (has_index(ML_DATADIR "/web"))
        return ML_DATADIR "/web";
    return NULL;
}

int cp_web_init(struct cp *cp, struct http_server_config *hc, char *err, size_t errlen)
{
    hc->headers = &hdr_nosniff;
    const char *root = web_root(&cp->cfg);
    if (!root) {
        if (cp->cfg.web_root == NULL)
            ML_NOTICE(SUBSYS, "no browser client found (control.web-root): serving the API only");
        return 0;
    }
    char real[PATH_MAX];
    if (!realpath(root, real) || !has_index(real))
        return ml_err(err, errlen, "control.web-root: %s has no index.html", root);
    struct cp_web *w = ml_xcalloc(1, sizeof *w);
    ml_strlcpy(w->root, real, sizeof w->root);
    ml_snprintf(w->index, sizeof w->index, "%s/index.html", real);
    /* the API by the HTTP protocol's callback, never a file lookup */
    w->api.mountpoint = "/api";
    w->api.mountpoint_len = 4;
    w->api.origin = HTTP_PROTOCOL;
    w->api.protocol = HTTP_PROTOCOL;
    w->api.origin_protocol = LWSMPRO_CALLBACK;
    /* the files; a missing one reaches the HTTP callback (cp_web_fallback), named: lws would
     * otherwise hand it to the vhost's default protocol, signaling, and the request would hang */
    w->files.mount_next = &w->api;
    w->files.mountpoint = "/";
    w->files.mountpoint_len = 1;
    w->files.protocol = HTTP_PROTOCOL;
    w->files.origin = w->root;
    w->files.def = "index.html";
    w->files.extra_mimetypes = &mime_html;
    w->files.origin_protocol = LWSMPRO_FILE;
    /* The module file names carry no version, so a browser must revalidate them (ETag, 304)
     * or it could mix two releases' modules. lws cannot say no-cache: with max-age 1 and
     * must-revalidate, every load later than a second asks again. */
    w->files.cache_max_age = 1;
    w->files.cache_reusable = 1;
    w->files.cache_revalidate = 1;
    hc->mounts = &w->files;
    cp->web = w;
    ML_INFO(SUBSYS, "browser client from %s", w->root);
    return 0;
}

void cp_web_free(struct cp_web *w)
{
    free(w);
}

/* "/m/<code>" or "/m/<code>/": a meeting's link. */
static bool deep_link(const char *path)
{
    if (strncmp(path, "/m/", 3) != 0)
        return false;
    size_t n = 0;
    for (const char *p = path + 3; *p && *p != '/'; p++, n++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-'))
            return false;
    const char *end = path + 3 + n;
    return n > 0 && n <= 64 && (!*end || (end[0] == '/' && !end[1]));
}

int cp_web_fallback(void *arg, struct lws *wsi)
{
    struct cp *cp = arg;
    char *uri = NULL;
    int ulen = 0;
    if (!cp || !cp->web)
        return 1;
    int m = lws_http_get_uri_and_method(wsi, &uri, &ulen);
    if ((m != LWSHUMETH_GET && m != LWSHUMETH_HEAD) || !uri || ulen <= 0 || ulen >= 128)
        return 1;
    char path[128];
    memcpy(path, uri, (size_t)ulen);
    path[ulen] = 0;
    if (!deep_link(path))
        return 1;
    unsigned char hbuf[256], *p = hbuf, *end = hbuf + sizeof hbuf;
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-cache", 8, &p, end))
        return -1;
    int n = lws_serve_http_file(wsi, cp->web->index, "text/html; charset=utf-8", (char *)hbuf,
                                (int)(p - hbuf));
    if (n < 0)
        return -1;
    if (n > 0 && lws_http_transaction_completed(wsi))
        return -1;
    return 0;
}

/* ------------------------------------------------------------------ GET /api/v1/config */

/* The OpenID Connect provider the client may send people to, or NULL: an issuer, the client id
 * (the audience of its ID tokens) and where to send the browser. */
static json_t *oidc_json(const struct cp *cp)
{
    const struct cp_auth_config *a = &cp->auth;
    if (!cp->oidc || !a->oidc_issuer || !a->oidc_audience)
        return json_null();
    bool google = !strcmp(a->oidc_issuer, GOOGLE_ISSUER);
    const char *authz =
        a->oidc_authorize_url ? a->oidc_authorize_url : (google ? GOOGLE_AUTHORIZE : NULL);
    if (!authz)
        return json_null(); /* verified tokens are accepted, but the client cannot get one */
    const char *host = a->oidc_issuer;
    if (!strncmp(host, "https://", 8))
        host += 8;
    json_t *o = json_pack("{s:s,s:s,s:s,s:s%}", "issuer", a->oidc_issuer, "client_id",
                          a->oidc_audience, "authorization_endpoint", authz, "name",
                          google ? "Google" : host, google ? strlen("Google") : strcspn(host, "/"));
    return o ? o : json_null();
}

void cp_web_config(struct http_req *req)
{
    struct cp *cp = req->arg;
    const struct cp_config *c = &cp->cfg;
    json_t *o = json_pack(
        "{s:o,s:{s:I,s:I,s:I,s:I,s:I},s:I}", "oidc", oidc_json(cp), "meetings",
        "default_duration_s", (json_int_t)c->default_duration_s, "min_duration_s",
        (json_int_t)c->min_duration_s, "max_duration_s", (json_int_t)c->max_duration_s,
        "default_participants", (json_int_t)c->default_participants, "max_participants",
        (json_int_t)c->max_participants, "password_min", (json_int_t)cp->auth.password_min);
    if (!o) {
        http_reply_err(req, HTTP_E_INTERNAL, NULL);
        return;
    }
    http_reply_json(req, 200, o);
}
