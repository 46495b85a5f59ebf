/* libFuzzer target for the STUN codec: parse, every getter, integrity, stream framing,
 * ChannelData, and a build/re-parse round trip that must reproduce what was parsed. */
#include "fuzz_common.h"

#include "stun/stun.h"

static const uint8_t fuzz_key[] = "meetlite fuzz key";
#define FUZZ_KEYLEN (sizeof fuzz_key - 1)

/* Room for the largest message, plus a full-length MESSAGE-INTEGRITY-SHA256 where a truncated
 * one was. */
static uint8_t rebuilt[STUN_HEADER_LEN + 0xFFFF + 64];

/* Reads every attribute through every getter; results only need to be consistent. */
static void exercise_getters(const struct stun_msg *m)
{
    for (unsigned i = 0; i < m->nattrs; i++) {
        const struct stun_attr *a = &m->attrs[i];
        FUZZ_ASSERT(a->offset >= STUN_HEADER_LEN + 4);
        FUZZ_ASSERT((size_t)a->offset + a->len <= m->len);
        FUZZ_ASSERT(stun_msg_find(m, a->type) != NULL);
        const uint8_t *v = stun_attr_value(m, a);
        volatile uint8_t sink = 0;
        for (size_t j = 0; j < a->len; j++)
            sink ^= v[j];
        uint32_t u32;
        uint64_t u64;
        struct sockaddr_storage ss;
        socklen_t sl;
        int code;
        const char *reason;
        size_t rlen;
        if (stun_attr_get_u32(m, a, &u32) == 0)
            FUZZ_ASSERT(a->len == 4);
        if (stun_attr_get_u64(m, a, &u64) == 0)
            FUZZ_ASSERT(a->len == 8);
        if (stun_attr_get_addr(m, a, &ss, &sl) == 0)
            FUZZ_ASSERT(sl <= sizeof ss);
        if (stun_attr_get_xaddr(m, a, &ss, &sl) == 0)
            FUZZ_ASSERT(sl <= sizeof ss);
        if (stun_attr_get_error(m, a, &code, &reason, &rlen) == 0) {
            FUZZ_ASSERT(code >= 300 && code <= 699);
            FUZZ_ASSERT(reason + rlen == (const char *)v + a->len);
            FUZZ_ASSERT(stun_reason(code) != NULL);
        }
        (void)stun_attr_is_unknown_required(a->type);
    }
    uint16_t unknown[STUN_MAX_ATTRS];
    size_t nu = stun_msg_unknown_required(m, unknown, STUN_MAX_ATTRS);
    FUZZ_ASSERT(nu <= m->nattrs);
    FUZZ_ASSERT(stun_method_name(m->method) != NULL);
    int r1 = stun_msg_check_integrity(m, fuzz_key, FUZZ_KEYLEN);
    int r2 = stun_msg_check_integrity_sha256(m, fuzz_key, FUZZ_KEYLEN);
    FUZZ_ASSERT(r1 >= -1 && r1 <= 1 && (r1 == -1) == (m->mi < 0));
    FUZZ_ASSERT(r2 >= -1 && r2 <= 1 && (r2 == -1) == (m->mi256 < 0));
}

/* Rebuilds the message from its parsed attributes (integrity recomputed with the fuzz key,
 * fingerprint recomputed) and checks that the copy parses to the same attributes. */
static void round_trip(const struct stun_msg *m)
{
    struct stun_builder b;
    stun_build_reply(&b, rebuilt, sizeof rebuilt, m, m->cls);
    for (unsigned i = 0; i < m->nattrs; i++) {
        const struct stun_attr *a = &m->attrs[i];
        if ((int)i == m->mi)
            stun_build_integrity(&b, fuzz_key, FUZZ_KEYLEN);
        else if ((int)i == m->mi256)
            stun_build_integrity_sha256(&b, fuzz_key, FUZZ_KEYLEN);
        else if ((int)i == m->fp)
            stun_build_fingerprint(&b);
        else
            stun_build_attr(&b, a->type, stun_attr_value(m, a), a->len);
    }
    size_t n = stun_build_finish(&b);
    if (n == 0) {
        /* only a truncated MESSAGE-INTEGRITY-SHA256 grown back to 32 bytes can overflow */
        FUZZ_ASSERT(m->mi256 >= 0 && m->len - STUN_HEADER_LEN + 16 > 0xFFFF);
        return;
    }
    struct stun_msg r;
    enum stun_parse_err err;
    if (stun_msg_parse(&r, rebuilt, n, &err) != 0) {
        fprintf(stderr, "rebuilt message refused: %s\n", stun_parse_err_str(err));
        abort();
    }
    FUZZ_ASSERT(r.method == m->method && r.cls == m->cls && r.rfc3489 == m->rfc3489);
    FUZZ_ASSERT(memcmp(r.tid16, m->tid16, sizeof r.tid16) == 0);
    FUZZ_ASSERT(r.nattrs == m->nattrs && r.mi == m->mi && r.mi256 == m->mi256 && r.fp == m->fp);
    for (unsigned i = 0; i < m->nattrs; i++) {
        const struct stun_attr *a = &m->attrs[i], *c = &r.attrs[i];
        FUZZ_ASSERT(a->type == c->type);
        if ((int)i == m->mi256)
            continue; /* a truncated MAC comes back full length */
        FUZZ_ASSERT(a->len == c->len);
        if ((int)i != m->mi && (int)i != m->fp)
            FUZZ_ASSERT(memcmp(stun_attr_value(m, a), stun_attr_value(&r, c), a->len) == 0);
    }
    if (m->mi >= 0)
        FUZZ_ASSERT(stun_msg_check_integrity(&r, fuzz_key, FUZZ_KEYLEN) == 1);
    if (m->mi256 >= 0)
        FUZZ_ASSERT(stun_msg_check_integrity_sha256(&r, fuzz_key, FUZZ_KEYLEN) == 1);
}

/* How many of m's attributes typed_round_trip() rewrites, keeping the copy within
 * STUN_MAX_ATTRS: each one may come back as an address, an XOR address and an error code. */
static unsigned typed_upto(const struct stun_msg *m, unsigned first)
{
    unsigned built = first, i;
    for (i = 0; i < m->nattrs; i++) {
        const struct stun_attr *a = &m->attrs[i];
        struct sockaddr_storage ss;
        socklen_t sl;
        int code;
        unsigned k = (stun_attr_get_addr(m, a, &ss, &sl) == 0) +
                     (stun_attr_get_xaddr(m, a, &ss, &sl) == 0) +
                     (stun_attr_get_error(m, a, &code, NULL, NULL) == 0);
        if (built + k > STUN_MAX_ATTRS)
            break;
        built += k;
    }
    return i;
}

/* The typed builders against the typed getters: what was read must write back the same way. */
static void typed_round_trip(const struct stun_msg *m)
{
    uint8_t buf[2048];
    struct stun_builder b;
    stun_build_reply(&b, buf, sizeof buf, m, STUN_ERROR);
    uint16_t unknown[8];
    size_t nu = stun_msg_unknown_required(m, unknown, 8);
    if (nu)
        stun_build_unknown(&b, unknown, nu);
    unsigned upto = typed_upto(m, nu ? 1 : 0);
    for (unsigned i = 0; i < upto; i++) {
        const struct stun_attr *a = &m->attrs[i];
        struct sockaddr_storage ss;
        socklen_t sl;
        int code;
        if (stun_attr_get_addr(m, a, &ss, &sl) == 0)
            stun_build_addr(&b, STUN_ATTR_MAPPED_ADDRESS, (const struct sockaddr *)&ss);
        if (stun_attr_get_xaddr(m, a, &ss, &sl) == 0)
            stun_build_xaddr(&b, STUN_ATTR_XOR_MAPPED_ADDRESS, (const struct sockaddr *)&ss);
        if (stun_attr_get_error(m, a, &code, NULL, NULL) == 0)
            stun_build_error(&b, code, NULL);
    }
    size_t n = stun_build_finish(&b);
    FUZZ_ASSERT(n != 0); /* 48 attributes of at most 24 bytes (or an error code) fit */
    struct stun_msg r;
    FUZZ_ASSERT(stun_msg_parse(&r, buf, n, NULL) == 0);
    unsigned k = nu ? 1 : 0;
    for (unsigned i = 0; i < upto; i++) {
        const struct stun_attr *a = &m->attrs[i];
        struct sockaddr_storage s1, s2;
        socklen_t l1, l2;
        int c1, c2;
        if (stun_attr_get_addr(m, a, &s1, &l1) == 0) {
            FUZZ_ASSERT(k < r.nattrs && stun_attr_get_addr(&r, &r.attrs[k++], &s2, &l2) == 0);
            FUZZ_ASSERT(l1 == l2 && memcmp(&s1, &s2, l1) == 0);
        }
        if (stun_attr_get_xaddr(m, a, &s1, &l1) == 0) {
            FUZZ_ASSERT(k < r.nattrs && stun_attr_get_xaddr(&r, &r.attrs[k++], &s2, &l2) == 0);
            FUZZ_ASSERT(l1 == l2 && memcmp(&s1, &s2, l1) == 0);
        }
        if (stun_attr_get_error(m, a, &c1, NULL, NULL) == 0) {
            FUZZ_ASSERT(k < r.nattrs &&
                        stun_attr_get_error(&r, &r.attrs[k++], &c2, NULL, NULL) == 0);
            FUZZ_ASSERT(c1 == c2);
        }
    }
    FUZZ_ASSERT(k == r.nattrs);
}

/* Walks the input as a TCP stream of frames, both with and without ChannelData padding. */
static void exercise_stream(const uint8_t *data, size_t size, bool pad)
{
    size_t off = 0;
    while (off < size) {
        long n = stun_frame_len(data + off, size - off, pad);
        if (n <= 0 || (size_t)n > size - off)
            break;
        FUZZ_ASSERT(n >= 4);
        struct stun_msg m;
        uint16_t ch;
        const uint8_t *d;
        size_t dl;
        if (stun_is_channeldata(data + off, (size_t)n)) {
            if (stun_channeldata_parse(data + off, (size_t)n, &ch, &d, &dl) == 0)
                FUZZ_ASSERT(d + dl <= data + off + (size_t)n);
        } else if (stun_msg_parse(&m, data + off, (size_t)n, NULL) == 0) {
            exercise_getters(&m);
        }
        off += (size_t)n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct stun_msg m;
    enum stun_parse_err err;
    (void)stun_is_stun(data, size);
    if (stun_msg_parse(&m, data, size, &err) == 0) {
        FUZZ_ASSERT(err == STUN_PARSE_OK && m.len == size);
        exercise_getters(&m);
        round_trip(&m);
        typed_round_trip(&m);
    } else {
        FUZZ_ASSERT(err != STUN_PARSE_OK && m.nattrs == 0);
        FUZZ_ASSERT(stun_parse_err_str(err) != NULL);
    }
    uint16_t ch;
    const uint8_t *d;
    size_t dl;
    if (stun_channeldata_parse(data, size, &ch, &d, &dl) == 0)
        FUZZ_ASSERT(dl + STUN_CHANNELDATA_HEADER_LEN <= size);
    exercise_stream(data, size, false);
    exercise_stream(data, size, true);
    return 0;
}
