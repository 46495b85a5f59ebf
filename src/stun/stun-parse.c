/* STUN message parsing: header and attribute validation, typed attribute readers, stream framing
 * and ChannelData. Every read is bounds-checked and byte-wise (no casts of the buffer). */
#include "config.h"

#include "stun/stun.h"

#include <netinet/in.h>
#include <string.h>
#include <zlib.h>

#define STUN_FINGERPRINT_XOR 0x5354554eu
#define STUN_MAX_TEXT 763 /* REALM, NONCE, SOFTWARE, reason phrases: 127 characters, 763 bytes */

/* What a known attribute's value length may be: min..max in steps of step from min. */
struct stun_attr_rule {
    uint16_t type;
    uint16_t min, max;
    uint16_t step;
};

/* Sorted by type for the binary search in attr_rule(). Address attributes are 8 (IPv4) or 20
 * (IPv6) bytes: min 8, max 20, step 12. */
static const struct stun_attr_rule attr_rules[] = {
    {STUN_ATTR_MAPPED_ADDRESS, 8, 20, 12},
    {STUN_ATTR_CHANGE_REQUEST, 4, 4, 1},
    {STUN_ATTR_USERNAME, 0, 513, 1},
    {STUN_ATTR_MESSAGE_INTEGRITY, STUN_SHA1_LEN, STUN_SHA1_LEN, 1},
    {STUN_ATTR_ERROR_CODE, 4, 4 + STUN_MAX_TEXT, 1},
    {STUN_ATTR_UNKNOWN_ATTRIBUTES, 0, 0xFFFF, 2},
    {STUN_ATTR_CHANNEL_NUMBER, 4, 4, 1},
    {STUN_ATTR_LIFETIME, 4, 4, 1},
    {STUN_ATTR_XOR_PEER_ADDRESS, 8, 20, 12},
    {STUN_ATTR_DATA, 0, 0xFFFF, 1},
    {STUN_ATTR_REALM, 0, STUN_MAX_TEXT, 1},
    {STUN_ATTR_NONCE, 0, STUN_MAX_TEXT, 1},
    {STUN_ATTR_XOR_RELAYED_ADDRESS, 8, 20, 12},
    {STUN_ATTR_REQUESTED_ADDRESS_FAMILY, 4, 4, 1},
    {STUN_ATTR_EVEN_PORT, 1, 1, 1},
    {STUN_ATTR_REQUESTED_TRANSPORT, 4, 4, 1},
    {STUN_ATTR_DONT_FRAGMENT, 0, 0, 1},
    {STUN_ATTR_MESSAGE_INTEGRITY_SHA256, 16, STUN_SHA256_LEN, 4},
    {STUN_ATTR_PASSWORD_ALGORITHM, 4, 0xFFFF, 1},
    {STUN_ATTR_USERHASH, 32, 32, 1},
    {STUN_ATTR_XOR_MAPPED_ADDRESS, 8, 20, 12},
    {STUN_ATTR_RESERVATION_TOKEN, 8, 8, 1},
    {STUN_ATTR_PRIORITY, 4, 4, 1},
    {STUN_ATTR_USE_CANDIDATE, 0, 0, 1},
    {STUN_ATTR_CONNECTION_ID, 4, 4, 1},
    {STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY, 4, 4, 1},
    {STUN_ATTR_ADDRESS_ERROR_CODE, 4, 4 + STUN_MAX_TEXT, 1},
    {STUN_ATTR_PASSWORD_ALGORITHMS, 0, 0xFFFF, 4},
    {STUN_ATTR_ALTERNATE_DOMAIN, 0, 255, 1},
    {STUN_ATTR_ICMP, 8, 8, 1},
    {STUN_ATTR_SOFTWARE, 0, STUN_MAX_TEXT, 1},
    {STUN_ATTR_ALTERNATE_SERVER, 8, 20, 12},
    {STUN_ATTR_TRANSACTION_TRANSMIT_COUNTER, 4, 4, 1},
    {STUN_ATTR_CACHE_TIMEOUT, 4, 4, 1},
    {STUN_ATTR_FINGERPRINT, 4, 4, 1},
    {STUN_ATTR_ICE_CONTROLLED, 8, 8, 1},
    {STUN_ATTR_ICE_CONTROLLING, 8, 8, 1},
    {STUN_ATTR_RESPONSE_ORIGIN, 8, 20, 12},
    {STUN_ATTR_OTHER_ADDRESS, 8, 20, 12},
};

static const struct stun_attr_rule *attr_rule(uint16_t type)
{
    size_t lo = 0, hi = sizeof attr_rules / sizeof attr_rules[0];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (attr_rules[mid].type == type)
            return &attr_rules[mid];
        if (attr_rules[mid].type < type)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Unknown types carry no rule and any length is acceptable for them. */
static bool attr_len_ok(uint16_t type, size_t len)
{
    const struct stun_attr_rule *r = attr_rule(type);
    if (!r)
        return true;
    return len >= r->min && len <= r->max && (len - r->min) % r->step == 0;
}

static size_t pad4(size_t n)
{
    return (n + 3) & ~(size_t)3;
}

/* Whether the attribute at this position goes into attrs[]: RFC 8489 14.5 and 14.6 say which
 * attributes after an integrity attribute count. */
static bool attr_indexed(const struct stun_msg *m, uint16_t type)
{
    if (type == STUN_ATTR_FINGERPRINT)
        return true;
    if (m->mi256 >= 0)
        return false;
    if (m->mi >= 0)
        return type == STUN_ATTR_MESSAGE_INTEGRITY_SHA256;
    return true;
}

static enum stun_parse_err parse_attrs(struct stun_msg *m)
{
    size_t off = STUN_HEADER_LEN;
    while (off < m->len) {
        size_t room = m->len - off;
        if (room < 4)
            return STUN_PARSE_ATTR_OVERRUN;
        uint16_t type = stun_get16(m->buf + off);
        uint16_t alen = stun_get16(m->buf + off + 2);
        if (pad4(alen) > room - 4)
            return STUN_PARSE_ATTR_OVERRUN;
        if (m->fp >= 0)
            return STUN_PARSE_BAD_FINGERPRINT; /* something after FINGERPRINT */
        if (attr_indexed(m, type)) {
            if (m->nattrs >= STUN_MAX_ATTRS)
                return STUN_PARSE_TOO_MANY_ATTRS;
            if (!attr_len_ok(type, alen))
                return STUN_PARSE_BAD_ATTR;
            int idx = (int)m->nattrs++;
            m->attrs[idx].type = type;
            m->attrs[idx].len = alen;
            m->attrs[idx].offset = (uint32_t)(off + 4);
            if (type == STUN_ATTR_MESSAGE_INTEGRITY)
                m->mi = idx;
            else if (type == STUN_ATTR_MESSAGE_INTEGRITY_SHA256)
                m->mi256 = idx;
            else if (type == STUN_ATTR_FINGERPRINT)
                m->fp = idx;
        }
        off += 4 + pad4(alen);
    }
    return STUN_PARSE_OK;
}

/* FINGERPRINT is last, so the header length already covers it as RFC 8489 14.7 requires. */
static bool fingerprint_ok(const struct stun_msg *m)
{
    const struct stun_attr *a = &m->attrs[m->fp];
    size_t covered = a->offset - 4;
    uint32_t crc = (uint32_t)crc32(0L, m->buf, (uInt)covered) ^ STUN_FINGERPRINT_XOR;
    return crc == stun_get32(m->buf + a->offset);
}

static enum stun_parse_err parse(struct stun_msg *m, const uint8_t *buf, size_t len)
{
    m->buf = buf;
    m->len = len;
    m->method = 0;
    m->cls = 0;
    m->rfc3489 = false;
    m->nattrs = 0;
    m->mi = m->mi256 = m->fp = -1;
    memset(m->tid, 0, sizeof m->tid);
    memset(m->tid16, 0, sizeof m->tid16);
    if (!buf || len < STUN_HEADER_LEN)
        return STUN_PARSE_TRUNCATED;
    if (buf[0] & 0xC0)
        return STUN_PARSE_NOT_STUN;
    size_t mlen = stun_get16(buf + 2);
    if (mlen % 4)
        return STUN_PARSE_BAD_LENGTH;
    if (len < STUN_HEADER_LEN + mlen)
        return STUN_PARSE_TRUNCATED;
    if (len > STUN_HEADER_LEN + mlen)
        return STUN_PARSE_BAD_LENGTH;
    uint16_t type = stun_get16(buf);
    m->method = (uint16_t)((type & 0x000F) | ((type & 0x00E0) >> 1) | ((type & 0x3E00) >> 2));
    m->cls = (uint8_t)(((type & 0x0010) >> 4) | ((type & 0x0100) >> 7));
    m->rfc3489 = stun_get32(buf + 4) != STUN_MAGIC_COOKIE;
    memcpy(m->tid, buf + 8, STUN_TID_LEN);
    memcpy(m->tid16, buf + 4, sizeof m->tid16);
    enum stun_parse_err err = parse_attrs(m);
    if (err != STUN_PARSE_OK)
        return err;
    if (m->fp >= 0 && !fingerprint_ok(m))
        return STUN_PARSE_BAD_FINGERPRINT;
    return STUN_PARSE_OK;
}

int stun_msg_parse(struct stun_msg *m, const uint8_t *buf, size_t len, enum stun_parse_err *err)
{
    enum stun_parse_err e = parse(m, buf, len);
    if (e != STUN_PARSE_OK) {
        /* A refused message keeps its header fields (a reply needs them), not its attributes. */
        m->nattrs = 0;
        m->mi = m->mi256 = m->fp = -1;
    }
    if (err)
        *err = e;
    return e == STUN_PARSE_OK ? 0 : -1;
}

bool stun_is_stun(const uint8_t *buf, size_t len)
{
    return buf && len >= STUN_HEADER_LEN && (buf[0] & 0xC0) == 0 && (buf[3] & 0x03) == 0 &&
           stun_get32(buf + 4) == STUN_MAGIC_COOKIE;
}

const struct stun_attr *stun_msg_find(const struct stun_msg *m, uint16_t t)
{
    for (unsigned i = 0; i < m->nattrs; i++)
        if (m->attrs[i].type == t)
            return &m->attrs[i];
    return NULL;
}

const uint8_t *stun_attr_value(const struct stun_msg *m, const struct stun_attr *a)
{
    return m->buf + a->offset;
}

bool stun_attr_is_unknown_required(uint16_t type)
{
    return type < 0x8000 && !attr_rule(type);
}

size_t stun_msg_unknown_required(const struct stun_msg *m, uint16_t *types, size_t max)
{
    size_t n = 0;
    for (unsigned i = 0; i < m->nattrs && n < max; i++) {
        uint16_t t = m->attrs[i].type;
        if (!stun_attr_is_unknown_required(t))
            continue;
        bool seen = false;
        for (size_t j = 0; j < n && !seen; j++)
            seen = types[j] == t;
        if (!seen)
            types[n++] = t;
    }
    return n;
}

int stun_attr_get_u32(const struct stun_msg *m, const struct stun_attr *a, uint32_t *out)
{
    if (a->len != 4)
        return -1;
    *out = stun_get32(stun_attr_value(m, a));
    return 0;
}

int stun_attr_get_u64(const struct stun_msg *m, const struct stun_attr *a, uint64_t *out)
{
    if (a->len != 8)
        return -1;
    const uint8_t *v = stun_attr_value(m, a);
    *out = ((uint64_t)stun_get32(v) << 32) | stun_get32(v + 4);
    return 0;
}

/* Decodes an address value; mask (NULL or 16 bytes) is XORed into the port and the address. */
static int get_addr(const uint8_t *v, size_t len, const uint8_t *mask, struct sockaddr_storage *ss,
                    socklen_t *salen)
{
    uint8_t addr[16];
    memset(ss, 0, sizeof *ss);
    if (len == 8 && v[1] == STUN_FAMILY_IPV4) {
        memcpy(addr, v + 4, 4);
    } else if (len == 20 && v[1] == STUN_FAMILY_IPV6) {
        memcpy(addr, v + 4, 16);
    } else {
        return -1;
    }
    uint16_t port = stun_get16(v + 2);
    if (mask) {
        port ^= stun_get16(mask);
        for (size_t i = 0; i < len - 4; i++)
            addr[i] ^= mask[i];
    }
    if (len == 8) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        memcpy(&s4->sin_addr, addr, 4);
        *salen = sizeof *s4;
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        memcpy(&s6->sin6_addr, addr, 16);
        *salen = sizeof *s6;
    }
    return 0;
}

int stun_attr_get_addr(const struct stun_msg *m, const struct stun_attr *a,
                       struct sockaddr_storage *ss, socklen_t *salen)
{
    return get_addr(stun_attr_value(m, a), a->len, NULL, ss, salen);
}

/* The XOR mask is header bytes 4..19: the cookie and the transaction id, or for an RFC 3489
 * message its 16-byte transaction id, the same bytes the builder uses. */
int stun_attr_get_xaddr(const struct stun_msg *m, const struct stun_attr *a,
                        struct sockaddr_storage *ss, socklen_t *salen)
{
    return get_addr(stun_attr_value(m, a), a->len, m->buf + 4, ss, salen);
}

int stun_attr_get_error(const struct stun_msg *m, const struct stun_attr *a, int *code,
                        const char **reason, size_t *reason_len)
{
    if (a->len < 4)
        return -1;
    const uint8_t *v = stun_attr_value(m, a);
    int cls = v[2] & 0x07, number = v[3];
    if (cls < 3 || cls > 6 || number > 99)
        return -1;
    *code = cls * 100 + number;
    if (reason)
        *reason = (const char *)(v + 4);
    if (reason_len)
        *reason_len = a->len - 4u;
    return 0;
}

/* The cookie is not required: RFC 3489 clients over TCP have none. A length that is not a
 * multiple of 4 cannot be STUN, so the stream is refused. */
long stun_frame_len(const uint8_t *buf, size_t avail, bool pad_channeldata)
{
    if (avail < 1)
        return 0;
    uint8_t top = buf[0] & 0xC0;
    if (top != 0x00 && top != 0x40)
        return -1;
    if (avail < 4)
        return 0;
    size_t len = stun_get16(buf + 2);
    if (top == 0x00)
        return len % 4 ? -1 : (long)(STUN_HEADER_LEN + len);
    len += STUN_CHANNELDATA_HEADER_LEN;
    return (long)(pad_channeldata ? pad4(len) : len);
}

int stun_channeldata_parse(const uint8_t *buf, size_t len, uint16_t *channel, const uint8_t **data,
                           size_t *dlen)
{
    if (!stun_is_channeldata(buf, len))
        return -1;
    size_t n = stun_get16(buf + 2);
    if (n > len - STUN_CHANNELDATA_HEADER_LEN)
        return -1;
    *channel = stun_get16(buf);
    *data = buf + STUN_CHANNELDATA_HEADER_LEN;
    *dlen = n;
    return 0;
}

void stun_channeldata_header(uint8_t hdr[STUN_CHANNELDATA_HEADER_LEN], uint16_t channel,
                             size_t dlen)
{
    stun_put16(hdr, channel);
    stun_put16(hdr + 2, (uint16_t)dlen);
}
