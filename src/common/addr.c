/* Socket addresses: parsing, formatting, comparison, hashing, embedded-IPv4 canonicalisation,
 * and CIDR sets (the peer policy and allow lists are built from them). */
#include "config.h"

#include "common/common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

int ml_addr_parse(const char *text, uint16_t default_port, struct sockaddr_storage *ss,
                  socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + 8];
    const char *port = NULL;
    memset(ss, 0, sizeof *ss);
    if (!text || !*text)
        return -1;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || (size_t)(close - text - 1) >= sizeof host)
            return -1;
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = 0;
        if (close[1] == ':')
            port = close + 2;
        else if (close[1])
            return -1;
    } else {
        const char *colon = strchr(text, ':');
        if (colon && strchr(colon + 1, ':'))
            colon = NULL; /* a bare IPv6 address */
        size_t hl = colon ? (size_t)(colon - text) : strlen(text);
        if (hl >= sizeof host)
            return -1;
        memcpy(host, text, hl);
        host[hl] = 0;
        if (colon)
            port = colon + 1;
    }
    long long p = default_port;
    if (port && ml_parse_ll(port, 0, 65535, &p) < 0)
        return -1;
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)p);
        *len = sizeof *s4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)p);
        *len = sizeof *s6;
        return 0;
    }
    return -1;
}

const char *ml_ip_str(const struct sockaddr *sa, char *buf, size_t len)
{
    if (sa->sa_family == AF_INET) {
        if (!inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)len))
            ml_strlcpy(buf, "?", len);
    } else if (sa->sa_family == AF_INET6) {
        if (!inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
                       (socklen_t)len))
            ml_strlcpy(buf, "?", len);
    } else {
        ml_strlcpy(buf, "?", len);
    }
    return buf;
}

const char *ml_addr_str(const struct sockaddr *sa, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    ml_ip_str(sa, ip, sizeof ip);
    if (sa->sa_family == AF_INET6)
        ml_snprintf(buf, len, "[%s]:%u", ip, ml_addr_port(sa));
    else
        ml_snprintf(buf, len, "%s:%u", ip, ml_addr_port(sa));
    return buf;
}

socklen_t ml_addr_len(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

uint16_t ml_addr_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

socklen_t ml_addr_set_v4(struct sockaddr_storage *ss, const uint8_t ip[4], uint16_t port)
{
    struct sockaddr_in s4;
    memset(&s4, 0, sizeof s4);
    s4.sin_family = AF_INET;
    s4.sin_port = htons(port);
    memcpy(&s4.sin_addr, ip, 4);
    memset(ss, 0, sizeof *ss);
    memcpy(ss, &s4, sizeof s4);
    return (socklen_t)sizeof s4;
}

void ml_addr_set_port(struct sockaddr *sa, uint16_t port)
{
    if (sa->sa_family == AF_INET)
        ((struct sockaddr_in *)sa)->sin_port = htons(port);
    else if (sa->sa_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
}

bool ml_addr_ip_equal(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->sa_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
    return false;
}

bool ml_addr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
    return ml_addr_ip_equal(a, b) && ml_addr_port(a) == ml_addr_port(b);
}

static uint64_t hash_key[2];

static uint64_t mix(uint64_t h)
{
    /* splitmix64 finaliser: cheap, and the random key keeps remote senders from choosing
     * colliding addresses. */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

uint64_t ml_addr_hash(const struct sockaddr *sa)
{
    if (!hash_key[0] && !hash_key[1]) {
        uint64_t k[2];
        ml_random(k, sizeof k);
        /* Racing threads may both store; any stored key is fine as long as it is stable, and
         * the daemon computes one hash before its threads start. */
        __atomic_store_n(&hash_key[1], k[1] | 1, __ATOMIC_RELAXED);
        __atomic_store_n(&hash_key[0], k[0] | 1, __ATOMIC_RELAXED);
    }
    uint64_t h = __atomic_load_n(&hash_key[0], __ATOMIC_RELAXED);
    uint64_t k1 = __atomic_load_n(&hash_key[1], __ATOMIC_RELAXED);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
        h = mix(h ^ ((uint64_t)s->sin_addr.s_addr << 16 | s->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
        uint64_t w[2];
        memcpy(w, &s->sin6_addr, 16);
        h = mix(h ^ w[0]);
        h = mix(h ^ w[1] ^ k1);
        h = mix(h ^ s->sin6_port);
    }
    return mix(h ^ k1);
}

bool ml_addr_embedded_v4(const struct sockaddr *in, struct sockaddr_storage *out, unsigned flags)
{
    if (in->sa_family != AF_INET6)
        return false;
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)in;
    const uint8_t *a = s6->sin6_addr.s6_addr;
    static const uint8_t zero[12];
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b};
    uint8_t v4[4];
    if ((flags & ML_CANON_MAPPED) && memcmp(a, mapped, 12) == 0) {
        memcpy(v4, a + 12, 4);
    } else if ((flags & ML_CANON_MAPPED) && memcmp(a, zero, 12) == 0 &&
               !(a[12] == 0 && a[13] == 0 && a[14] == 0 && a[15] <= 1)) {
        /* IPv4-compatible ::a.b.c.d; :: and ::1 are IPv6's own unspecified and loopback. */
        memcpy(v4, a + 12, 4);
    } else if ((flags & ML_CANON_NAT64) && memcmp(a, nat64, 12) == 0) {
        memcpy(v4, a + 12, 4);
    } else if ((flags & ML_CANON_6TO4) && a[0] == 0x20 && a[1] == 0x02) {
        memcpy(v4, a + 2, 4);
    } else if ((flags & ML_CANON_TEREDO) && a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 &&
               a[3] == 0) {
        for (int i = 0; i < 4; i++)
            v4[i] = (uint8_t)(a[12 + i] ^ 0xff);
    } else {
        return false;
    }
    ml_addr_set_v4(out, v4, ntohs(s6->sin6_port));
    return true;
}

/* ------------------------------------------------------------ CIDR */

int ml_cidr_parse(const char *text, struct ml_cidr *out, char *err, size_t errlen)
{
    char buf[INET6_ADDRSTRLEN + 8];
    memset(out, 0, sizeof *out);
    if (ml_strlcpy(buf, text, sizeof buf) >= sizeof buf)
        return ml_err(err, errlen, "\"%s\" is not a CIDR range", text);
    char *slash = strchr(buf, '/');
    long long prefix = -1;
    if (slash) {
        *slash = 0;
        if (ml_parse_ll(slash + 1, 0, 128, &prefix) < 0)
            return ml_err(err, errlen, "\"%s\": bad prefix length", text);
    }
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        if (prefix < 0)
            prefix = 32;
        if (prefix > 32)
            return ml_err(err, errlen, "\"%s\": IPv4 prefix longer than 32", text);
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        if (prefix < 0)
            prefix = 128;
    } else {
        return ml_err(err, errlen, "\"%s\" is not an IP address or CIDR range", text);
    }
    out->prefix = (unsigned)prefix;
    unsigned bytes = out->family == AF_INET ? 4 : 16;
    for (unsigned i = 0; i < bytes; i++) {
        unsigned bit = i * 8;
        if (bit >= out->prefix)
            out->addr[i] = 0;
        else if (out->prefix - bit < 8)
            out->addr[i] &= (uint8_t)(0xff << (8 - (out->prefix - bit)));
    }
    ml_strlcpy(out->label, text, sizeof out->label);
    return 0;
}

bool ml_cidr_contains(const struct ml_cidr *c, const struct sockaddr *sa)
{
    const uint8_t *a;
    if (sa->sa_family != c->family)
        return false;
    if (sa->sa_family == AF_INET)
        a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    else
        a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    unsigned full = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(a, c->addr, full) != 0)
        return false;
    if (rest) {
        uint8_t mask = (uint8_t)(0xff << (8 - rest));
        if ((a[full] & mask) != c->addr[full])
            return false;
    }
    return true;
}

int ml_cidr_set_add(struct ml_cidr_set *set, const struct ml_cidr *c)
{
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 16;
        struct ml_cidr *v = realloc(set->v, cap * sizeof *v);
        if (!v)
            return -1;
        set->v = v;
        set->cap = cap;
    }
    set->v[set->n++] = *c;
    return 0;
}

struct add_ctx {
    struct ml_cidr_set *set;
    char *err;
    size_t errlen;
};

static int add_item(const char *item, void *arg)
{
    struct add_ctx *c = arg;
    struct ml_cidr cidr;
    if (ml_cidr_parse(item, &cidr, c->err, c->errlen) < 0)
        return -1;
    if (ml_cidr_set_add(c->set, &cidr) < 0)
        return ml_err(c->err, c->errlen, "out of memory");
    return 0;
}

int ml_cidr_set_add_list(struct ml_cidr_set *set, const char *list, char *err, size_t errlen)
{
    size_t before = set->n;
    struct add_ctx c = {set, err, errlen};
    if (!list)
        return 0;
    if (ml_list_foreach(list, add_item, &c) < 0) {
        set->n = before;
        if (err && !err[0])
            ml_err(err, errlen, "bad CIDR list");
        return -1;
    }
    return 0;
}

const struct ml_cidr *ml_cidr_set_match(const struct ml_cidr_set *set, const struct sockaddr *sa)
{
    for (size_t i = 0; i < set->n; i++)
        if (ml_cidr_contains(&set->v[i], sa))
            return &set->v[i];
    return NULL;
}

bool ml_cidr_set_has(const struct ml_cidr_set *set, const struct sockaddr *sa)
{
    if (!set || !set->n)
        return false;
    struct sockaddr_storage v4, v6;
    if (ml_addr_embedded_v4(sa, &v4, ML_CANON_MAPPED))
        sa = (const struct sockaddr *)&v4;
    if (ml_cidr_set_match(set, sa))
        return true;
    if (sa->sa_family != AF_INET)
        return false;
    struct sockaddr_in6 *m = (struct sockaddr_in6 *)&v6;
    memset(&v6, 0, sizeof v6);
    m->sin6_family = AF_INET6;
    m->sin6_addr.s6_addr[10] = m->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&m->sin6_addr.s6_addr[12], &((const struct sockaddr_in *)sa)->sin_addr, 4);
    return ml_cidr_set_match(set, (const struct sockaddr *)&v6) != NULL;
}

void ml_cidr_set_free(struct ml_cidr_set *set)
{
    free(set->v);
    memset(set, 0, sizeof *set);
}

int ml_cidr_list_validate(const char *value, char *err, size_t errlen)
{
    struct ml_cidr_set s = {0};
    int rc = ml_cidr_set_add_list(&s, value, err, errlen);
    ml_cidr_set_free(&s);
    return rc;
}
