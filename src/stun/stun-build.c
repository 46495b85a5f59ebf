/* STUN message building into a caller-owned buffer: header, attributes with zeroed padding,
 * addresses, ERROR-CODE and UNKNOWN-ATTRIBUTES. Integrity and FINGERPRINT are in stun-crypto.c. */
#include "config.h"

#include "stun/stun.h"

#include <netinet/in.h>
#include <string.h>

#define STUN_MAX_BODY 0xFFFFu /* the header's 16-bit length field */
#define STUN_MAX_REASON 763   /* bytes: RFC 8489 14.8 */

static uint16_t msg_type(uint16_t method, uint8_t cls)
{
    return (uint16_t)((method & 0x000F) | ((method & 0x0070) << 1) | ((method & 0x0F80) << 2) |
                      ((cls & 0x01) << 4) | ((cls & 0x02) << 7));
}

/* Writes the header; bytes 4..19 come from id (the cookie and tid, or an RFC 3489 tid). */
static void build_start(struct stun_builder *b, uint8_t *buf, size_t cap, uint16_t method,
                        uint8_t cls, const uint8_t id[16])
{
    b->buf = buf;
    b->cap = cap;
    b->len = 0;
    b->overflow = false;
    b->rfc3489 = false;
    memcpy(b->tid, id + 4, STUN_TID_LEN);
    if (!buf || cap < STUN_HEADER_LEN) {
        b->overflow = true;
        return;
    }
    stun_put16(buf, msg_type(method, cls));
    stun_put16(buf + 2, 0);
    memcpy(buf + 4, id, 16);
    b->len = STUN_HEADER_LEN;
}

void stun_build_init(struct stun_builder *b, uint8_t *buf, size_t cap, uint16_t method, uint8_t cls,
                     const uint8_t tid[STUN_TID_LEN])
{
    uint8_t id[16];
    stun_put32(id, STUN_MAGIC_COOKIE);
    memcpy(id + 4, tid, STUN_TID_LEN);
    build_start(b, buf, cap, method, cls, id);
}

void stun_build_reply(struct stun_builder *b, uint8_t *buf, size_t cap, const struct stun_msg *m,
                      uint8_t cls)
{
    if (m->rfc3489) {
        build_start(b, buf, cap, m->method, cls, m->tid16);
        b->rfc3489 = true;
    } else {
        stun_build_init(b, buf, cap, m->method, cls, m->tid);
    }
}

/* Reserves an attribute of len value bytes, writes its header and zeroes its padding (stale
 * bytes there leak memory: CVE-2020-4067). Returns where the value goes, or NULL on overflow. */
static uint8_t *attr_begin(struct stun_builder *b, uint16_t type, size_t len)
{
    if (b->overflow)
        return NULL;
    size_t padded = (len + 3) & ~(size_t)3;
    if (len > STUN_MAX_BODY || b->len - STUN_HEADER_LEN + 4 + padded > STUN_MAX_BODY ||
        b->cap - b->len < 4 + padded) {
        b->overflow = true;
        return NULL;
    }
    uint8_t *p = b->buf + b->len;
    stun_put16(p, type);
    stun_put16(p + 2, (uint16_t)len);
    memset(p + 4 + len, 0, padded - len);
    b->len += 4 + padded;
    stun_put16(b->buf + 2, (uint16_t)(b->len - STUN_HEADER_LEN));
    return p + 4;
}

void stun_build_attr(struct stun_builder *b, uint16_t type, const void *val, size_t len)
{
    uint8_t *p = attr_begin(b, type, len);
    if (p && len)
        memcpy(p, val, len);
}

void stun_build_u32(struct stun_builder *b, uint16_t type, uint32_t v)
{
    uint8_t *p = attr_begin(b, type, 4);
    if (p)
        stun_put32(p, v);
}

void stun_build_u64(struct stun_builder *b, uint16_t type, uint64_t v)
{
    uint8_t *p = attr_begin(b, type, 8);
    if (p) {
        stun_put32(p, (uint32_t)(v >> 32));
        stun_put32(p + 4, (uint32_t)v);
    }
}

/* Encodes an address; mask (NULL or 16 bytes) is XORed into the port and the address. The
 * sockaddr is copied out first: the caller's pointer need not be aligned for its family. */
static void build_addr(struct stun_builder *b, uint16_t type, const struct sockaddr *sa,
                       const uint8_t *mask)
{
    uint8_t addr[16];
    size_t alen;
    uint16_t port;
    sa_family_t family;
    memcpy(&family, (const uint8_t *)sa + offsetof(struct sockaddr, sa_family), sizeof family);
    if (family == AF_INET) {
        struct sockaddr_in s4;
        memcpy(&s4, sa, sizeof s4);
        memcpy(addr, &s4.sin_addr, 4);
        alen = 4;
        port = ntohs(s4.sin_port);
    } else if (family == AF_INET6) {
        struct sockaddr_in6 s6;
        memcpy(&s6, sa, sizeof s6);
        memcpy(addr, &s6.sin6_addr, 16);
        alen = 16;
        port = ntohs(s6.sin6_port);
    } else {
        b->overflow = true; /* no such address attribute: fail the message */
        return;
    }
    if (mask) {
        port ^= stun_get16(mask);
        for (size_t i = 0; i < alen; i++)
            addr[i] ^= mask[i];
    }
    uint8_t *p = attr_begin(b, type, 4 + alen);
    if (!p)
        return;
    p[0] = 0;
    p[1] = alen == 4 ? STUN_FAMILY_IPV4 : STUN_FAMILY_IPV6;
    stun_put16(p + 2, port);
    memcpy(p + 4, addr, alen);
}

void stun_build_addr(struct stun_builder *b, uint16_t type, const struct sockaddr *sa)
{
    build_addr(b, type, sa, NULL);
}

/* The mask is header bytes 4..19, as stun_attr_get_xaddr() reads them. */
void stun_build_xaddr(struct stun_builder *b, uint16_t type, const struct sockaddr *sa)
{
    if (b->overflow)
        return;
    uint8_t mask[16];
    memcpy(mask, b->buf + 4, sizeof mask);
    build_addr(b, type, sa, mask);
}

void stun_build_error(struct stun_builder *b, int code, const char *reason)
{
    if (code < 300 || code > 699) {
        b->overflow = true;
        return;
    }
    if (!reason)
        reason = stun_reason(code);
    size_t rlen = strnlen(reason, STUN_MAX_REASON + 1);
    if (rlen > STUN_MAX_REASON) {
        b->overflow = true;
        return;
    }
    uint8_t *p = attr_begin(b, STUN_ATTR_ERROR_CODE, 4 + rlen);
    if (!p)
        return;
    p[0] = 0;
    p[1] = 0;
    p[2] = (uint8_t)(code / 100);
    p[3] = (uint8_t)(code % 100);
    memcpy(p + 4, reason, rlen);
}

/* RFC 3489 wanted an odd list made even by repeating a type; later RFCs just pad. */
void stun_build_unknown(struct stun_builder *b, const uint16_t *types, size_t n)
{
    bool repeat = b->rfc3489 && n % 2;
    if (n > STUN_MAX_BODY / 2) {
        b->overflow = true;
        return;
    }
    uint8_t *p = attr_begin(b, STUN_ATTR_UNKNOWN_ATTRIBUTES, 2 * (n + repeat));
    if (!p)
        return;
    for (size_t i = 0; i < n; i++)
        stun_put16(p + 2 * i, types[i]);
    if (repeat)
        stun_put16(p + 2 * n, types[n - 1]);
}

size_t stun_build_finish(struct stun_builder *b)
{
    if (b->overflow)
        return 0;
    stun_put16(b->buf + 2, (uint16_t)(b->len - STUN_HEADER_LEN));
    return b->len;
}
