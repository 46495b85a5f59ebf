/* The peer policy: which addresses an allocation may relay to. Default-deny classes, the
 * operator's turn.allow-peers and turn.deny-peers, and meetlited's own service ports, all
 * judged on the canonical (embedded IPv4) form of the peer. The rule order is in turn-int.h. */
#include "config.h"

#include "turn/turn-int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* A built-in rule; its label is a string literal, "<class> <cidr>", so that a denial returns a
 * static string and costs no formatting. */
struct fixed_rule {
    const char *label;
    const char *cidr;
};

#define RULE(cls, cidr)                                                                            \
    {                                                                                              \
        cls " " cidr, cidr                                                                         \
    }

/* Denied before turn.allow-peers is consulted, so no allow list re-enables them.
 * - 0.0.0.0/8 and ::: Linux delivers a datagram sent to 0.0.0.0 or :: to the host itself, which
 *   is how CVE-2020-26262 reached coturn's loopback services.
 * - Teredo and 6to4: RFC 6156 section 9.1 says a relay MUST NOT accept them as peers. They are
 *   tunnels whose far end is an IPv4 address we would hand packets to blindly (a 6to4 peer is
 *   reached through whatever relay router answers 192.88.99.1), and an allow entry such as ::/0
 *   must not open loopback or RFC 1918 through them. eturnal blocks the same four. */
static const struct fixed_rule always_rules[] = {
    RULE("unspecified", "0.0.0.0/8"),
    RULE("unspecified", "::/128"),
    RULE("Teredo", "2001::/32"),
    RULE("6to4", "2002::/16"),
};

/* Denied unless turn.allow-peers permits them: ranges that are not globally reachable (the IANA
 * special-purpose registries), the union of eturnal's "recommended" list and LiveKit's
 * restricted classes. First match wins, so a more specific entry comes before a broader one
 * (255.255.255.255 before 240.0.0.0/4). Beyond the list: 5f00::/16 (RFC 9602 SRv6
 * segment identifiers, not globally reachable). 192.0.0.0/24 includes the globally reachable
 * 192.0.0.9 (PCP anycast) and 192.0.0.10 (TURN anycast, RFC 8155); no relay needs them as peers.
 * The well-known NAT64 prefix 64:ff9b::/96 is not listed: it is canonicalised, so its embedded
 * IPv4 address is judged. The local-use 64:ff9b:1::/48 cannot be (RFC 8215 leaves the prefix
 * length, hence the position of the IPv4 address, to the operator), so it is denied whole. */
static const struct fixed_rule default_rules[] = {
    RULE("loopback", "127.0.0.0/8"),
    RULE("loopback", "::1/128"),
    RULE("link-local", "169.254.0.0/16"),
    RULE("link-local", "fe80::/10"),
    RULE("ULA", "fc00::/7"),
    RULE("site-local", "fec0::/10"),
    RULE("multicast", "224.0.0.0/4"),
    RULE("multicast", "ff00::/8"),
    RULE("broadcast", "255.255.255.255/32"),
    RULE("reserved", "240.0.0.0/4"),
    RULE("RFC 1918", "10.0.0.0/8"),
    RULE("RFC 1918", "172.16.0.0/12"),
    RULE("RFC 1918", "192.168.0.0/16"),
    RULE("CGNAT", "100.64.0.0/10"),
    RULE("IETF protocol assignments", "192.0.0.0/24"),
    RULE("documentation", "192.0.2.0/24"),
    RULE("documentation", "198.51.100.0/24"),
    RULE("documentation", "203.0.113.0/24"),
    RULE("documentation", "2001:db8::/32"),
    RULE("documentation", "3fff::/20"),
    RULE("benchmarking", "198.18.0.0/15"),
    RULE("benchmarking", "2001:2::/48"),
    RULE("6to4 relay anycast", "192.88.99.0/24"),
    RULE("discard-only", "100::/64"),
    RULE("ORCHID", "2001:10::/28"),
    RULE("ORCHIDv2", "2001:20::/28"),
    RULE("NAT64 local-use", "64:ff9b:1::/48"),
    RULE("SRv6 SIDs", "5f00::/16"),
};

/* How a peer address carried the IPv4 address it is judged by. */
enum form {
    FORM_NATIVE = 0, /* not rewritten */
    FORM_MAPPED,     /* ::ffff:a.b.c.d */
    FORM_COMPAT,     /* ::a.b.c.d (deprecated, RFC 4291) */
    FORM_TRANSLATED, /* ::ffff:0:a.b.c.d (RFC 2765) */
    FORM_NAT64,      /* 64:ff9b::a.b.c.d (RFC 6052) */
    FORM_6TO4,       /* 2002:AABB:CCDD::/48 (RFC 3056) */
    FORM_TEREDO,     /* 2001:0::, client address inverted (RFC 4380) */
};

static const char *const form_names[] = {
    [FORM_NATIVE] = "native",
    [FORM_MAPPED] = "IPv4-mapped",
    [FORM_COMPAT] = "IPv4-compatible",
    [FORM_TRANSLATED] = "IPv4-translated",
    [FORM_NAT64] = "NAT64",
    [FORM_6TO4] = "6to4",
    [FORM_TEREDO] = "Teredo",
};

#define DENY_KEY "turn.deny-peers"
#define ALLOW_KEY "turn.allow-peers"
/* "turn.deny-peers " and an ml_cidr label (47 bytes at most) */
#define DENY_LABEL_MAX (sizeof DENY_KEY + sizeof(((struct ml_cidr *)0)->label))
#define SERVICE_PREFIX "own service "
#define SERVICE_LABEL_MAX (sizeof SERVICE_PREFIX + ML_ADDR_STRLEN)

/* One of meetlited's own listeners. */
struct service {
    struct sockaddr_storage ip; /* canonical; unused when wildcard */
    uint16_t port;
    bool wildcard;                 /* bound to 0.0.0.0 or ::: every local IP */
    char label[SERVICE_LABEL_MAX]; /* "own service 127.0.0.1:3478" */
};

struct turn_policy {
    struct ml_cidr_set always;   /* entry i is always_rules[i] */
    struct ml_cidr_set defaults; /* entry i is default_rules[i] */
    struct ml_cidr_set allow;
    struct ml_cidr_set deny;
    char (*deny_label)[DENY_LABEL_MAX]; /* one per deny entry: "turn.deny-peers 10.0.0.0/8" */
    struct service *svc;
    size_t nsvc, capsvc;
    /* Local IPs for wildcard services, read by getifaddrs() at the first one; the loopback
     * interface contributes its whole prefix (127.0.0.0/8), since all of it reaches a wildcard
     * socket on Linux. */
    struct ml_cidr_set local;
    bool local_loaded;
};

/* ------------------------------------------------------------ canonical form */

/* Writes into out the address every rule is applied to, and says which form carried it.
 * ml_addr_embedded_v4 knows every form but the IPv4-translated one, added here. */
static enum form canonicalise(const struct sockaddr *peer, struct sockaddr_storage *out)
{
    if (peer->sa_family != AF_INET6) {
        memset(out, 0, sizeof *out);
        memcpy(out, peer, sizeof(struct sockaddr_in));
        return FORM_NATIVE;
    }
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)peer;
    const uint8_t *a = s6->sin6_addr.s6_addr;
    static const uint8_t translated[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};
    if (ml_addr_embedded_v4(peer, out, ML_CANON_ALL)) {
        if (a[0] == 0x20 && a[1] == 0x02)
            return FORM_6TO4;
        if (a[0] == 0x20 && a[1] == 0x01)
            return FORM_TEREDO;
        if (a[1] == 0x64)
            return FORM_NAT64;
        return a[10] == 0xff ? FORM_MAPPED : FORM_COMPAT;
    }
    if (memcmp(a, translated, sizeof translated) == 0) {
        ml_addr_set_v4(out, a + 12, ntohs(s6->sin6_port));
        return FORM_TRANSLATED;
    }
    memset(out, 0, sizeof *out);
    memcpy(out, peer, sizeof *s6);
    return FORM_NATIVE;
}

/* ------------------------------------------------------------ judging */

/* The rule denying peer, or NULL; canon and form receive the canonical address and its form. */
static const char *judge(const struct turn_policy *p, const struct sockaddr *peer, bool with_port,
                         struct sockaddr_storage *canon, enum form *form)
{
    if (peer->sa_family != AF_INET && peer->sa_family != AF_INET6) {
        *form = FORM_NATIVE;
        memset(canon, 0, sizeof *canon);
        canon->ss_family = peer->sa_family;
        return "unsupported address family";
    }
    *form = canonicalise(peer, canon);
    const struct sockaddr *c = (const struct sockaddr *)canon;
    const struct ml_cidr *m;

    /* 1. Always denied. The original address first: a 6to4 or Teredo peer is refused as such,
     * whatever it embeds; then the embedded one (::ffff:0.0.0.0). */
    if ((*form != FORM_NATIVE && (m = ml_cidr_set_match(&p->always, peer))) ||
        (m = ml_cidr_set_match(&p->always, c)))
        return always_rules[m - p->always.v].label;
    if (with_port) {
        uint16_t port = ml_addr_port(c);
        for (size_t i = 0; i < p->nsvc; i++) {
            const struct service *s = &p->svc[i];
            if (s->port != port)
                continue;
            if (s->wildcard ? ml_cidr_set_match(&p->local, c) != NULL
                            : ml_addr_ip_equal(c, (const struct sockaddr *)&s->ip))
                return s->label;
        }
    }

    /* 2. turn.deny-peers, the operator's explicit wish, wins over turn.allow-peers. It is
     * matched against the original address too, so that "deny-peers 64:ff9b::/96" still denies
     * every NAT64 peer although those are judged by their IPv4 address. */
    if ((m = ml_cidr_set_match(&p->deny, c)) ||
        (*form != FORM_NATIVE && (m = ml_cidr_set_match(&p->deny, peer))))
        return p->deny_label[m - p->deny.v];

    /* 3. turn.allow-peers permits, on the canonical form only: "allow-peers ::/0" must not let
     * ::ffff:127.0.0.1 through (CVE-2026-27624). */
    if (ml_cidr_set_match(&p->allow, c))
        return NULL;

    /* 4. The default-deny classes. */
    if ((m = ml_cidr_set_match(&p->defaults, c)))
        return default_rules[m - p->defaults.v].label;
    return NULL;
}

const char *turn_policy_deny(const struct turn_policy *p, const struct sockaddr *peer,
                             bool with_port)
{
    struct sockaddr_storage canon;
    enum form form;
    return judge(p, peer, with_port, &canon, &form);
}

const char *turn_policy_explain(const struct turn_policy *p, const struct sockaddr *peer,
                                bool with_port, char *buf, size_t len)
{
    struct sockaddr_storage canon;
    enum form form;
    const char *rule = judge(p, peer, with_port, &canon, &form);
    if (!rule)
        return NULL;
    if (form == FORM_NATIVE) {
        ml_strlcpy(buf, rule, len);
    } else {
        char ip[INET6_ADDRSTRLEN];
        ml_snprintf(buf, len, "%s (%s %s)", rule, form_names[form],
                    ml_ip_str((const struct sockaddr *)&canon, ip, sizeof ip));
    }
    return buf;
}

/* ------------------------------------------------------------ building */

static int add_fixed(struct ml_cidr_set *set, const struct fixed_rule *rules, size_t n, char *err,
                     size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        struct ml_cidr c;
        if (ml_cidr_parse(rules[i].cidr, &c, err, errlen) < 0 || ml_cidr_set_add(set, &c) < 0)
            return ml_err(err, errlen, "built-in peer rule %s: cannot be added", rules[i].label);
    }
    return 0;
}

static int add_list(struct ml_cidr_set *set, const char *key, const char *list, char *err,
                    size_t errlen)
{
    char why[192] = "";
    if (ml_cidr_set_add_list(set, list, why, sizeof why) < 0)
        return ml_err(err, errlen, "%s: %s", key, why);
    return 0;
}

struct turn_policy *turn_policy_new(const char *allow, const char *deny, char *err, size_t errlen)
{
    struct turn_policy *p = calloc(1, sizeof *p);
    if (!p) {
        ml_err(err, errlen, "out of memory");
        return NULL;
    }
    if (add_fixed(&p->always, always_rules, ML_ARRAY_LEN(always_rules), err, errlen) < 0 ||
        add_fixed(&p->defaults, default_rules, ML_ARRAY_LEN(default_rules), err, errlen) < 0 ||
        add_list(&p->allow, ALLOW_KEY, allow, err, errlen) < 0 ||
        add_list(&p->deny, DENY_KEY, deny, err, errlen) < 0)
        goto fail;
    if (p->deny.n) {
        p->deny_label = calloc(p->deny.n, sizeof *p->deny_label);
        if (!p->deny_label) {
            ml_err(err, errlen, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < p->deny.n; i++)
            ml_snprintf(p->deny_label[i], sizeof p->deny_label[i], DENY_KEY " %s",
                        p->deny.v[i].label);
    }
    return p;
fail:
    turn_policy_free(p);
    return NULL;
}

/* Prefix length of a netmask: its leading one bits. */
static unsigned mask_bits(const struct sockaddr *mask)
{
    const uint8_t *b;
    size_t n;
    if (mask->sa_family == AF_INET6) {
        b = ((const struct sockaddr_in6 *)mask)->sin6_addr.s6_addr;
        n = 16;
    } else {
        b = (const uint8_t *)&((const struct sockaddr_in *)mask)->sin_addr;
        n = 4;
    }
    unsigned bits = 0;
    for (size_t i = 0; i < n && b[i] == 0xff; i++)
        bits += 8;
    if (bits < n * 8)
        for (uint8_t x = b[bits / 8]; x & 0x80; x = (uint8_t)(x << 1))
            bits++;
    return bits;
}

static int add_local(struct ml_cidr_set *set, const char *text)
{
    struct ml_cidr c;
    if (ml_cidr_parse(text, &c, NULL, 0) < 0)
        return 0; /* an address getifaddrs() gave but inet_ntop/pton disagree on: skip it */
    if (ml_cidr_set_add(set, &c) < 0) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

/* Reads the local IPs once, when the first wildcard service is added: judging a peer must not
 * make a system call. An address added to the host later is not seen until the policy is rebuilt
 * (reload); 0.0.0.0, ::, 127.0.0.0/8 and ::1 are always in the set. */
static int load_local(struct turn_policy *p)
{
    static const char *const fixed[] = {"0.0.0.0/32", "::/128", "127.0.0.0/8", "::1/128"};
    for (size_t i = 0; i < ML_ARRAY_LEN(fixed); i++)
        if (add_local(&p->local, fixed[i]) < 0)
            return -1;
    struct ifaddrs *all;
    if (getifaddrs(&all) < 0)
        return -1;
    int rc = 0;
    for (struct ifaddrs *ifa = all; ifa && rc == 0; ifa = ifa->ifa_next) {
        const struct sockaddr *sa = ifa->ifa_addr;
        if (!sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
            continue;
        unsigned bits = sa->sa_family == AF_INET ? 32 : 128;
        if ((ifa->ifa_flags & IFF_LOOPBACK) && ifa->ifa_netmask &&
            ifa->ifa_netmask->sa_family == sa->sa_family)
            bits = mask_bits(ifa->ifa_netmask);
        char ip[INET6_ADDRSTRLEN], text[INET6_ADDRSTRLEN + 8];
        ml_snprintf(text, sizeof text, "%s/%u", ml_ip_str(sa, ip, sizeof ip), bits);
        rc = add_local(&p->local, text);
    }
    freeifaddrs(all);
    if (rc == 0)
        p->local_loaded = true;
    return rc;
}

int turn_policy_add_service(struct turn_policy *p, const struct sockaddr *sa)
{
    if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    struct service s;
    memset(&s, 0, sizeof s);
    canonicalise(sa, &s.ip);
    s.port = ml_addr_port(sa);
    if (s.ip.ss_family == AF_INET)
        s.wildcard = ((const struct sockaddr_in *)&s.ip)->sin_addr.s_addr == htonl(INADDR_ANY);
    else
        s.wildcard = IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&s.ip)->sin6_addr);
    char text[ML_ADDR_STRLEN];
    ml_snprintf(s.label, sizeof s.label, SERVICE_PREFIX "%s", ml_addr_str(sa, text, sizeof text));
    if (s.wildcard && !p->local_loaded && load_local(p) < 0)
        return -1;
    if (p->nsvc == p->capsvc) {
        size_t cap = p->capsvc ? p->capsvc * 2 : 8;
        struct service *v = realloc(p->svc, cap * sizeof *v);
        if (!v) {
            errno = ENOMEM;
            return -1;
        }
        p->svc = v;
        p->capsvc = cap;
    }
    p->svc[p->nsvc++] = s;
    return 0;
}

void turn_policy_free(struct turn_policy *p)
{
    if (!p)
        return;
    ml_cidr_set_free(&p->always);
    ml_cidr_set_free(&p->defaults);
    ml_cidr_set_free(&p->allow);
    ml_cidr_set_free(&p->deny);
    ml_cidr_set_free(&p->local);
    free(p->deny_label);
    free(p->svc);
    free(p);
}
