/* The PROXY protocol header a TCP proxy (nginx's stream module, HAProxy) sends before the
 * client's bytes (haproxy.org's proxy-protocol.txt): version 2 (binary) and version 1 (text,
 * what nginx sends). A pure parser: it never reads a socket, allocates or logs; the caller
 * (stream.c) decides whom it believes, and reads no further than the header. */
#include "config.h"

#include "net/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[6] = "PROXY ";

#define V1_MAX 107 /* the longest version 1 line, CRLF included (the specification's figure) */

/* buf (len bytes) starts like sig (siglen bytes) as far as it goes. */
static bool starts_like(const uint8_t *buf, size_t len, const void *sig, size_t siglen)
{
    return memcmp(buf, sig, len < siglen ? len : siglen) == 0;
}

bool net_proxy_signature(const uint8_t *buf, size_t len)
{
    if (len == 0)
        return false;
    return starts_like(buf, len, v2_sig, sizeof v2_sig) ||
           starts_like(buf, len, v1_sig, sizeof v1_sig);
}

static void set_v4(struct sockaddr_storage *ss, const uint8_t ip[4], uint16_t port_be)
{
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    memset(ss, 0, sizeof *ss);
    in->sin_family = AF_INET;
    memcpy(&in->sin_addr, ip, 4);
    in->sin_port = port_be;
}

static void set_v6(struct sockaddr_storage *ss, const uint8_t ip[16], uint16_t port_be)
{
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof *ss);
    in6->sin6_family = AF_INET6;
    memcpy(&in6->sin6_addr, ip, 16);
    in6->sin6_port = port_be;
}

static enum net_proxy_rc parse_v2(const uint8_t *buf, size_t len, struct net_proxy_hdr *out)
{
    if (len < 16)
        return NET_PROXY_MORE;
    unsigned version = buf[12] >> 4, command = buf[12] & 0x0f;
    unsigned family = buf[13] >> 4, transport = buf[13] & 0x0f;
    size_t body = (size_t)buf[14] << 8 | buf[15];
    if (version != 2 || command > 1 || family > 3 || transport > 2)
        return NET_PROXY_BAD;
    if (16 + body > NET_PROXY_MAX)
        return NET_PROXY_BAD;
    out->len = 16 + body;
    if (len < out->len)
        return NET_PROXY_MORE;
    const uint8_t *a = buf + 16;
    /* LOCAL (the proxy's own health check), UNSPEC and UNIX: the connection is the proxy's;
     * its own address stands. A datagram source on a stream listener makes no sense. */
    if (command == 0 || family == 0 || family == 3)
        return NET_PROXY_DONE;
    if (transport != 1)
        return NET_PROXY_BAD;
    if (family == 1) {
        if (body < 12)
            return NET_PROXY_BAD;
        uint16_t sport, dport;
        memcpy(&sport, a + 8, 2);
        memcpy(&dport, a + 10, 2);
        set_v4(&out->src, a, sport);
        set_v4(&out->dst, a + 4, dport);
    } else {
        if (body < 36)
            return NET_PROXY_BAD;
        uint16_t sport, dport;
        memcpy(&sport, a + 32, 2);
        memcpy(&dport, a + 34, 2);
        set_v6(&out->src, a, sport);
        set_v6(&out->dst, a + 16, dport);
    }
    out->has_addr = true;
    return NET_PROXY_DONE;
}

/* A decimal port of 1 to 5 digits, no sign, no leading zero (the specification's form). */
static bool v1_port(const char *s, size_t n, uint16_t *port_be)
{
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *port_be = htons((uint16_t)v);
    return true;
}

static bool v1_ip(int af, const char *s, size_t n, uint8_t *ip)
{
    char text[INET6_ADDRSTRLEN];
    if (n == 0 || n >= sizeof text)
        return false;
    memcpy(text, s, n);
    text[n] = 0;
    return inet_pton(af, text, ip) == 1;
}

static enum net_proxy_rc parse_v1(const uint8_t *buf, size_t len, struct net_proxy_hdr *out)
{
    size_t lim = len < V1_MAX ? len : V1_MAX, end = 0;
    bool found = false;
    for (; end + 1 < lim; end++)
        if (buf[end] == '\r' && buf[end + 1] == '\n') {
            found = true;
            break;
        }
    if (!found)
        return len >= V1_MAX ? NET_PROXY_BAD : NET_PROXY_MORE;
    out->len = end + 2;
    /* "PROXY" SP proto SP src SP dst SP sport SP dport, single spaces, nothing else */
    const char *f[6];
    size_t fl[6], nf = 0;
    const char *line = (const char *)buf;
    size_t start = 0;
    for (size_t i = 0; i <= end; i++) {
        if (i == end || line[i] == ' ') {
            if (nf == 6)
                return NET_PROXY_BAD;
            f[nf] = line + start;
            fl[nf++] = i - start;
            start = i + 1;
        } else if ((unsigned char)line[i] < 0x21 || (unsigned char)line[i] > 0x7e) {
            return NET_PROXY_BAD;
        }
    }
    if (nf >= 2 && fl[1] == 7 && memcmp(f[1], "UNKNOWN", 7) == 0)
        return NET_PROXY_DONE; /* the proxy does not know: its own address stands */
    if (nf != 6 || fl[1] != 4)
        return NET_PROXY_BAD;
    int af;
    if (memcmp(f[1], "TCP4", 4) == 0)
        af = AF_INET;
    else if (memcmp(f[1], "TCP6", 4) == 0)
        af = AF_INET6;
    else
        return NET_PROXY_BAD;
    uint8_t sip[16], dip[16];
    uint16_t sport, dport;
    if (!v1_ip(af, f[2], fl[2], sip) || !v1_ip(af, f[3], fl[3], dip) ||
        !v1_port(f[4], fl[4], &sport) || !v1_port(f[5], fl[5], &dport))
        return NET_PROXY_BAD;
    if (af == AF_INET) {
        set_v4(&out->src, sip, sport);
        set_v4(&out->dst, dip, dport);
    } else {
        set_v6(&out->src, sip, sport);
        set_v6(&out->dst, dip, dport);
    }
    out->has_addr = true;
    return NET_PROXY_DONE;
}

enum net_proxy_rc net_proxy_parse(const uint8_t *buf, size_t len, struct net_proxy_hdr *out)
{
    memset(out, 0, sizeof *out);
    if (len == 0)
        return NET_PROXY_MORE;
    if (starts_like(buf, len, v2_sig, sizeof v2_sig)) {
        if (len < sizeof v2_sig)
            return NET_PROXY_MORE;
        out->version = 2;
        return parse_v2(buf, len, out);
    }
    if (starts_like(buf, len, v1_sig, sizeof v1_sig)) {
        if (len < sizeof v1_sig)
            return NET_PROXY_MORE;
        out->version = 1;
        return parse_v1(buf, len, out);
    }
    return NET_PROXY_NONE;
}
