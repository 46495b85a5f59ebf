/* The OpenID Connect issuer's signing keys, kept current: read once from auth.oidc-jwks-file
 * (offline), or fetched (http_fetch) on a thread of their own from auth.oidc-jwks-uri or the
 * jwks_uri of the issuer's discovery document. A fetch is redone when Cache-Control max-age runs
 * out (held within auth.oidc-jwks-refresh-min..max), and early, at most once per
 * auth.oidc-jwks-refetch-interval, when a token names a key the set lacks (the issuer rotated).
 * A failed fetch keeps the last good set. Readers (database threads) take a reference to the set
 * in force; nothing here runs on an event loop. */
#include "config.h"

#include "control/cp-int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define JWKS_BODY_MAX (256 * 1024) /* bytes of a discovery document or a JWKS */
#define JWKS_TIMEOUT_MS 15000      /* one GET, redirects included */
#define JWKS_CONNECT_MS 5000
#define JWKS_WAIT_MS 3000       /* how long a token with an unknown kid waits for a refetch */
#define JWKS_DEFAULT_AGE_S 3600 /* without Cache-Control max-age */

struct cp_jwks_ref {
    struct cp_jwks set;
    int refs; /* under src->mu */
};

struct cp_jwks_src {
    pthread_mutex_t mu;
    pthread_cond_t wake;    /* the fetcher: a refetch asked for, or stop */
    pthread_cond_t fetched; /* readers waiting for the fetch in progress */
    struct cp_jwks_ref *cur;
    uint64_t gen; /* fetches finished, good or not */
    bool want, fetching, started;
    bool stop;           /* under mu; also read (atomically) by a fetch in flight, which it ends */
    int64_t last_try_ms; /* 0: never */
    pthread_t thread;
    char *issuer, *uri, *ca_file, *discovered;
    long long min_s, max_s, refetch_s;
};

static void ref_put_locked(struct cp_jwks_ref *r)
{
    if (r && --r->refs == 0) {
        cp_jwks_free(&r->set);
        free(r);
    }
}

/* ---------------------------------------------------------------- HTTPS GET */

long long cp_jwks_max_age(const char *v, size_t n)
{
    long long age = -1;
    bool no_cache = false;
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < n && v[i] != ',')
            i++;
        size_t len = i - start;
        while (len && (v[start + len - 1] == ' ' || v[start + len - 1] == '\t' ||
                       v[start + len - 1] == '\r' || v[start + len - 1] == '\n'))
            len--;
        const char *d = v + start;
        if (len > 8 && !strncasecmp(d, "max-age=", 8)) {
            long long x = 0;
            size_t k = 8;
            for (; k < len && k < 8 + 10 && d[k] >= '0' && d[k] <= '9'; k++)
                x = x * 10 + (d[k] - '0');
            if (k == len) /* digits only, at most ten of them */
                age = x > CP_JWKS_AGE_MAX ? CP_JWKS_AGE_MAX : x;
        } else if (len == 8 && (!strncasecmp(d, "no-cache", 8) || !strncasecmp(d, "no-store", 8))) {
            no_cache = true;
        }
    }
    return no_cache ? 0 : age;
}

/* GETs url over HTTPS only (redirects too, at most 3) into *out (caller frees), with the
 * max-age of its Cache-Control (-1: none). 0 or -1 with err. */
static int https_get(struct cp_jwks_src *s, const char *url, char **out, long long *max_age_s,
                     char *err, size_t errlen)
{
    static const char *const keep[] = {"Cache-Control", NULL};
    const struct http_fetch_req req = {.url = url,
                                       .protocols = "https",
                                       .max_redirects = 3,
                                       .timeout_ms = JWKS_TIMEOUT_MS,
                                       .connect_timeout_ms = JWKS_CONNECT_MS,
                                       .ca_file = s->ca_file,
                                       .max_body = JWKS_BODY_MAX,
                                       .keep_headers = keep,
                                       .abort = &s->stop};
    struct http_fetch_resp resp;
    enum http_fetch_err e = http_fetch(NULL, &req, &resp);
    int rc = -1;
    if (e != HTTP_FETCH_OK) {
        ml_err(err, errlen, "%s: %s", url, resp.err);
    } else if (resp.status != 200) {
        ml_err(err, errlen, "%s: HTTP %ld", url, resp.status);
    } else if (!resp.body) {
        ml_err(err, errlen, "%s: empty answer", url);
    } else {
        const char *cc = resp.headers[0];
        *max_age_s = cc ? cp_jwks_max_age(cc, strlen(cc)) : -1;
        *out = resp.body;
        resp.body = NULL;
        rc = 0;
    }
    http_fetch_resp_free(&resp);
    return rc;
}

/* The jwks_uri of the issuer's discovery document (OpenID Connect Discovery 1.0, 4): its issuer
 * must be ours exactly. Caller frees; NULL with err. */
static char *discover(struct cp_jwks_src *s, char *err, size_t errlen)
{
    char url[1024];
    size_t n = strlen(s->issuer);
    ml_snprintf(url, sizeof url, "%.*s/.well-known/openid-configuration",
                (int)(n && s->issuer[n - 1] == '/' ? n - 1 : n), s->issuer);
    char *body;
    long long age;
    if (https_get(s, url, &body, &age, err, errlen) < 0)
        return NULL;
    json_t *doc = json_loads(body, 0, NULL);
    free(body);
    const char *iss = json_string_value(json_object_get(doc, "issuer"));
    const char *uri = json_string_value(json_object_get(doc, "jwks_uri"));
    char *out = NULL, why[128];
    if (!iss || strcmp(iss, s->issuer) != 0)
        ml_err(err, errlen, "%s: not the discovery document of %s", url, s->issuer);
    else if (!uri || strlen(uri) > 1024 ||
             http_fetch_url_check(uri, HTTP_FETCH_HTTPS, why, sizeof why) < 0)
        ml_err(err, errlen, "%s: no https jwks_uri", url);
    else if (!(out = strdup(uri)))
        ml_err(err, errlen, "out of memory");
    json_decref(doc);
    return out;
}

/* One fetch: the set, and how long it may be kept (s, within the bounds). 0 or -1 with err. */
static int fetch_once(struct cp_jwks_src *s, struct cp_jwks_ref **out, long long *keep_s, char *err,
                      size_t errlen)
{
    const char *uri = s->uri;
    if (!uri) {
        if (!s->discovered)
            s->discovered = discover(s, err, errlen);
        if (!s->discovered)
            return -1;
        uri = s->discovered;
    }
    char *body, why[300];
    long long age;
    if (https_get(s, uri, &body, &age, err, errlen) < 0) {
        free(s->discovered); /* the issuer may have moved its keys: discover again */
        s->discovered = NULL;
        return -1;
    }
    struct cp_jwks_ref *r = calloc(1, sizeof *r);
    int rc = r ? cp_jwks_parse(&r->set, body, why, sizeof why) : -1;
    free(body);
    if (rc < 0) {
        free(r);
        return ml_err(err, errlen, "%s: %s", uri, r ? why : "out of memory");
    }
    r->refs = 1;
    if (age < 0)
        age = JWKS_DEFAULT_AGE_S;
    *keep_s = age < s->min_s ? s->min_s : age > s->max_s ? s->max_s : age;
    *out = r;
    return 0;
}

static struct timespec deadline_in(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static void *fetch_main(void *arg)
{
    struct cp_jwks_src *s = arg;
    ml_log_set_thread("oidc-keys");
    pthread_mutex_lock(&s->mu);
    int64_t next_ms = 0; /* monotonic ms of the next scheduled fetch */
    while (!s->stop) {
        int64_t now = ml_now_ms();
        bool early_ok = !s->last_try_ms || now - s->last_try_ms >= s->refetch_s * 1000;
        if (now < next_ms && !(s->want && early_ok)) {
            int64_t until = next_ms;
            if (s->want) /* asked too soon after the last try: at the interval's end */
                until = s->last_try_ms + s->refetch_s * 1000 < until
                            ? s->last_try_ms + s->refetch_s * 1000
                            : until;
            struct timespec ts = deadline_in(until - now);
            pthread_cond_timedwait(&s->wake, &s->mu, &ts);
            continue;
        }
        s->want = false;
        s->fetching = true;
        s->last_try_ms = now;
        pthread_mutex_unlock(&s->mu);
        struct cp_jwks_ref *r = NULL;
        long long keep_s = 0;
        char err[400];
        int rc = fetch_once(s, &r, &keep_s, err, sizeof err);
        if (rc < 0)
            ML_WARN("control", "OIDC signing keys of %s not fetched (%s), %s; next try in %llds",
                    s->issuer, err, s->cur ? "the last good set stays" : "no set yet",
                    s->refetch_s);
        else
            ML_INFO("control", "OIDC signing keys of %s fetched: %zu keys, kept %llds", s->issuer,
                    r->set.n, keep_s);
        pthread_mutex_lock(&s->mu);
        if (r) {
            ref_put_locked(s->cur);
            s->cur = r;
        }
        next_ms = ml_now_ms() + (rc < 0 ? s->refetch_s : keep_s) * 1000;
        s->gen++;
        s->fetching = false;
        pthread_cond_broadcast(&s->fetched);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---------------------------------------------------------------- the source */

static char *dup_or_null(const char *s)
{
    return s && *s ? ml_xstrdup(s) : NULL;
}

struct cp_jwks_src *cp_jwks_src_new(const struct cp_auth_config *auth, char *err, size_t errlen)
{
    struct cp_jwks_src *s = calloc(1, sizeof *s);
    if (!s) {
        ml_err(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &ca);
    pthread_cond_init(&s->fetched, &ca);
    pthread_condattr_destroy(&ca);
    s->issuer = dup_or_null(auth->oidc_issuer);
    if (auth->oidc_jwks_file) { /* offline: the file, once */
        s->cur = calloc(1, sizeof *s->cur);
        if (!s->cur || cp_jwks_load(&s->cur->set, auth->oidc_jwks_file, err, errlen) < 0) {
            if (!s->cur)
                ml_err(err, errlen, "out of memory");
            cp_jwks_src_free(s);
            return NULL;
        }
        s->cur->refs = 1;
        return s;
    }
    s->uri = dup_or_null(auth->oidc_jwks_uri);
    s->ca_file = dup_or_null(auth->oidc_ca_file);
    s->min_s = auth->oidc_jwks_refresh_min_s;
    s->max_s = auth->oidc_jwks_refresh_max_s;
    s->refetch_s = auth->oidc_jwks_refetch_s;
    s->want = true; /* the first fetch at once; the first tokens wait for it */
    int rc = pthread_create(&s->thread, NULL, fetch_main, s);
    if (rc) {
        ml_err(err, errlen, "cannot start the OIDC key thread: %s", strerror(rc));
        cp_jwks_src_free(s);
        return NULL;
    }
    s->started = true;
    return s;
}

void cp_jwks_src_free(struct cp_jwks_src *s)
{
    if (!s)
        return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        __atomic_store_n(&s->stop, true, __ATOMIC_RELAXED); /* also ends a fetch in flight */
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    ref_put_locked(s->cur);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->fetched);
    pthread_mutex_destroy(&s->mu);
    free(s->issuer);
    free(s->uri);
    free(s->ca_file);
    free(s->discovered);
    free(s);
}

/* Whether the set holds the key the token's header names (its kid, or the only key of its
 * algorithm when it names none). */
static bool knows_key(const struct cp_jwks *set, const char *token)
{
    char alg[16], kid[128];
    if (cp_jwt_peek(token, alg, sizeof alg, kid, sizeof kid) < 0)
        return true; /* malformed: no fetch would help */
    jwt_alg_t a = jwt_str_alg(alg);
    for (size_t i = 0; i < set->n; i++)
        if (set->keys[i].alg == a && (!*kid || !strcmp(set->keys[i].kid, kid)))
            return true;
    return false;
}

enum http_err cp_jwks_src_verify(struct cp_jwks_src *s, const char *token,
                                 const struct cp_jwt_expect *ex, jwt_t **out)
{
    *out = NULL;
    if (!token || strnlen(token, CP_JWT_MAX + 1) > CP_JWT_MAX)
        return HTTP_E_INVALID_TOKEN;
    pthread_mutex_lock(&s->mu);
    struct cp_jwks_ref *r = s->cur;
    if (s->started && (!r || !knows_key(&r->set, token))) {
        /* a key we lack (the issuer rotated), or no set yet: ask for a fetch unless one was
         * tried within the refetch interval, and wait a little (JWKS_WAIT_MS) for its outcome */
        int64_t now = ml_now_ms();
        bool allowed = !s->last_try_ms || now - s->last_try_ms >= s->refetch_s * 1000;
        /* no waiting for a fetch the interval holds back: a stranger's made-up kids would hold
         * database threads; only for one in flight or one we may start now */
        if (s->fetching || allowed) {
            uint64_t g = s->gen;
            if (!s->fetching) { /* one in flight answers us too: asking again would be early */
                s->want = true;
                pthread_cond_signal(&s->wake);
            }
            struct timespec ts = deadline_in(JWKS_WAIT_MS);
            while (s->gen == g && !s->stop)
                if (pthread_cond_timedwait(&s->fetched, &s->mu, &ts) == ETIMEDOUT)
                    break;
        }
        r = s->cur;
    }
    if (r)
        r->refs++;
    pthread_mutex_unlock(&s->mu);
    if (!r)
        return HTTP_E_UNAVAILABLE; /* no key set has been fetched yet */
    enum http_err e = cp_jwks_verify(&r->set, token, ex, out);
    pthread_mutex_lock(&s->mu);
    ref_put_locked(r);
    pthread_mutex_unlock(&s->mu);
    return e;
}
