/* The client's address behind trusted proxies: X-Forwarded-For and RFC 7239 Forwarded, read
 * from the right (the hop the nearest proxy added) past every trusted proxy to the first
 * address that is not one. Anything the walk cannot read with certainty (a malformed hop, an
 * obfuscated or "unknown" node, a Forwarded element without for=) ends it at the peer itself:
 * a bad header never makes up an address, and never fails a request. Pure: no lws here. */
#include "config.h"

#include "http/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#define HOPS_MAX 32 /* hops walked; a longer chain of trusted proxies is not believed */

struct hop {
    const char *p;
    size_t n;
};

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

static void trim(struct hop *h)
{
    while (h->n && ows(h->p[0])) {
        h->p++;
        h->n--;
    }
    while (h->n && ows(h->p[h->n - 1]))
        h->n--;
}

/* A port: 1 to 5 digits, at most 65535. */
static bool port_ok(const char *s, size_t n)
{
    unsigned v = 0;
    if (n == 0 || n > 5)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    return v <= 65535;
}

/* An address as a hop may write it: 192.0.2.1, 192.0.2.1:80, 2001:db8::1, [2001:db8::1],
 * [2001:db8::1]:80. IPv4-mapped IPv6 becomes IPv4. */
static bool hop_addr(const char *p, size_t n, struct sockaddr_storage *ss)
{
    char text[INET6_ADDRSTRLEN];
    if (n == 0)
        return false;
    if (p[0] == '[') {
        const char *close = memchr(p, ']', n);
        if (!close)
            return false;
        size_t rest = n - (size_t)(close + 1 - p);
        if (rest && (close[1] != ':' || !port_ok(close + 2, rest - 1)))
            return false;
        p++;
        n = (size_t)(close - p);
    } else {
        const char *colon = memchr(p, ':', n);
        if (colon && !memchr(colon + 1, ':', n - (size_t)(colon + 1 - p))) {
            /* one colon: IPv4 with a port */
            if (!port_ok(colon + 1, (size_t)(p + n - colon - 1)))
                return false;
            n = (size_t)(colon - p);
        }
    }
    if (n == 0 || n >= sizeof text)
        return false;
    memcpy(text, p, n);
    text[n] = 0;
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        ml_addr_embedded_v4((struct sockaddr *)ss, ss, ML_CANON_MAPPED);
        return true;
    }
    return false;
}

/* Splits text at commas outside quoted strings (Forwarded's quoted values may hold none, but
 * a comma inside quotes must not cut an element). Returns the number of hops, -1 when there
 * are too many or a quote is left open. */
static int split(const char *text, struct hop *hops)
{
    int n = 0;
    const char *start = text;
    bool quoted = false;
    for (const char *c = text;; c++) {
        if (quoted && *c == '\\' && c[1]) {
            c++;
            continue;
        }
        if (*c == '"')
            quoted = !quoted;
        if (*c == 0 || (*c == ',' && !quoted)) {
            if (n == HOPS_MAX)
                return -1;
            hops[n].p = start;
            hops[n].n = (size_t)(c - start);
            trim(&hops[n]);
            n++;
            if (*c == 0)
                break;
            start = c + 1;
        }
    }
    return quoted ? -1 : n;
}

/* A token's character (RFC 9110 5.6.2). */
static bool tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The for= of one Forwarded element ("for=192.0.2.1;proto=https;by=..."), unquoted into buf.
 * False when it has none, or a pair is malformed. */
static bool forwarded_for(struct hop e, char *buf, size_t len, size_t *out_n)
{
    bool found = false;
    size_t i = 0;
    while (i < e.n) {
        while (i < e.n && ows(e.p[i]))
            i++;
        size_t name = i;
        while (i < e.n && e.p[i] != '=' && e.p[i] != ';')
            i++;
        if (i >= e.n || e.p[i] != '=')
            return false;
        size_t name_n = i - name;
        while (name_n && ows(e.p[name + name_n - 1]))
            name_n--;
        i++; /* '=' */
        size_t o = 0;
        bool is_for = name_n == 3 && strncasecmp(e.p + name, "for", 3) == 0;
        if (i < e.n && e.p[i] == '"') {
            i++;
            for (;;) {
                if (i >= e.n)
                    return false; /* open quote */
                char c = e.p[i++];
                if (c == '"')
                    break;
                if (c == '\\') {
                    if (i >= e.n)
                        return false;
                    c = e.p[i++];
                }
                if (is_for && o + 1 < len)
                    buf[o++] = c;
                else if (is_for)
                    return false;
            }
        } else {
            while (i < e.n && e.p[i] != ';' && !ows(e.p[i])) {
                if (!tchar(e.p[i]))
                    return false; /* "[v6]" and ":port" must be quoted (RFC 7239 6) */
                if (is_for && o + 1 < len)
                    buf[o++] = e.p[i];
                else if (is_for)
                    return false;
                i++;
            }
        }
        while (i < e.n && ows(e.p[i]))
            i++;
        if (i < e.n && e.p[i] != ';')
            return false;
        i++; /* ';' */
        if (is_for) {
            if (found)
                return false; /* two for= in one element: which one? */
            found = true;
            buf[o] = 0;
            *out_n = o;
        }
    }
    return found;
}

bool http_forwarded_client(const struct ml_cidr_set *trusted, const struct sockaddr *peer,
                           enum http_fwd_header kind, const char *value, char *out, size_t outlen)
{
    if (!trusted || !trusted->n || !value || !*value)
        return false;
    if (!ml_cidr_set_has(trusted, peer))
        return false; /* anyone may send the header: only a trusted proxy's counts */
    struct hop hops[HOPS_MAX];
    int n = split(value, hops);
    if (n <= 0)
        return false;
    struct sockaddr_storage a;
    for (int i = n - 1; i >= 0; i--) {
        bool ok;
        if (kind == HTTP_FWD_FORWARDED) {
            char node[128];
            size_t nn = 0;
            /* obfuscated ("_hidden") and "unknown" nodes do not parse as addresses */
            ok = forwarded_for(hops[i], node, sizeof node, &nn) && hop_addr(node, nn, &a);
        } else {
            ok = hop_addr(hops[i].p, hops[i].n, &a);
        }
        if (!ok)
            return false;
        if (!ml_cidr_set_has(trusted, (struct sockaddr *)&a) || i == 0) {
            /* the first hop that is not a proxy of ours; or, when all are, the farthest */
            ml_ip_str((struct sockaddr *)&a, out, outlen);
            return true;
        }
    }
    return false;
}
