/* A TLS ClientHello read from the bytes peeked on a shared:// connection, before OpenSSL or
 * libwebsockets sees them: the ALPN protocols it offers (RFC 7301) and its server name (RFC
 * 6066), so that a browser's HTTPS goes to the control plane's own TLS before its handshake
 * begins. The hello may come in several records (RFC 8446 5.1: a handshake message may be
 * fragmented across records) and several TCP segments; the parser is given what has arrived so
 * far and says whether it needs more. Every length is checked against what contains it, nothing
 * is allocated, and nothing is read past len. Anything it does not fully understand is "not a
 * hello" here: that connection takes the general path, where OpenSSL answers it. */
#include "config.h"

#include "net/net.h"

#include <string.h>

#define HELLO_RECORD_MAX 16384 /* bytes of a record's plaintext (RFC 8446 5.1) */
#define HELLO_EXT_SNI 0
#define HELLO_EXT_ALPN 16

/* A read cursor over a bounded byte range. */
struct rd {
    const uint8_t *p;
    size_t left;
};

static bool rd_u8(struct rd *r, unsigned *v)
{
    if (r->left < 1)
        return false;
    *v = r->p[0];
    r->p++;
    r->left--;
    return true;
}

static bool rd_u16(struct rd *r, unsigned *v)
{
    if (r->left < 2)
        return false;
    *v = (unsigned)r->p[0] << 8 | r->p[1];
    r->p += 2;
    r->left -= 2;
    return true;
}

/* A length-prefixed vector (prefix of 1 or 2 bytes) as a cursor of its own. */
static bool rd_vec(struct rd *r, int prefix, struct rd *sub)
{
    unsigned n;
    if (!(prefix == 1 ? rd_u8(r, &n) : rd_u16(r, &n)) || n > r->left)
        return false;
    sub->p = r->p;
    sub->left = n;
    r->p += n;
    r->left -= n;
    return true;
}

static bool rd_skip(struct rd *r, size_t n)
{
    if (n > r->left)
        return false;
    r->p += n;
    r->left -= n;
    return true;
}

static bool proto_is(const struct rd *name, const char *proto)
{
    size_t n = strlen(proto);
    return name->left == n && memcmp(name->p, proto, n) == 0;
}

/* RFC 7301 3.1: a non-empty list of non-empty names. */
static bool parse_alpn(struct rd ext, struct net_hello *out)
{
    struct rd list;
    if (!rd_vec(&ext, 2, &list) || ext.left != 0 || list.left == 0)
        return false;
    out->alpn = true;
    while (list.left) {
        struct rd name;
        if (!rd_vec(&list, 1, &name) || name.left == 0)
            return false;
        out->alpn_count++;
        if (proto_is(&name, "http/1.1"))
            out->alpn_http11 = true;
        else if (proto_is(&name, "h2"))
            out->alpn_h2 = true;
        else if (proto_is(&name, "stun.turn"))
            out->alpn_turn = true;
    }
    return true;
}

/* RFC 6066 3: the first host_name kept (when it fits and holds no NUL); other types skipped. */
static bool parse_sni(struct rd ext, struct net_hello *out)
{
    struct rd list;
    if (!rd_vec(&ext, 2, &list) || ext.left != 0 || list.left == 0)
        return false;
    while (list.left) {
        unsigned type;
        struct rd name;
        if (!rd_u8(&list, &type) || !rd_vec(&list, 2, &name) || name.left == 0)
            return false;
        if (type == 0 && !out->sni[0] && name.left < sizeof out->sni &&
            !memchr(name.p, 0, name.left)) {
            memcpy(out->sni, name.p, name.left);
            out->sni[name.left] = 0;
        }
    }
    return true;
}

/* The ClientHello's body (after its 4-byte handshake header), whole. */
static bool parse_body(struct rd b, struct net_hello *out)
{
    struct rd v;
    unsigned version;
    if (!rd_u16(&b, &version) || (version >> 8) != 3 || !rd_skip(&b, 32) /* random */)
        return false;
    if (!rd_vec(&b, 1, &v) || v.left > 32) /* legacy_session_id */
        return false;
    if (!rd_vec(&b, 2, &v) || v.left < 2 || v.left % 2) /* cipher_suites */
        return false;
    if (!rd_vec(&b, 1, &v) || v.left < 1) /* legacy_compression_methods */
        return false;
    if (b.left == 0)
        return true; /* no extensions (a TLS 1.2 client may send none) */
    struct rd exts;
    if (!rd_vec(&b, 2, &exts) || b.left != 0)
        return false;
    bool seen_alpn = false, seen_sni = false;
    while (exts.left) {
        unsigned type;
        struct rd ext;
        if (!rd_u16(&exts, &type) || !rd_vec(&exts, 2, &ext))
            return false;
        if (type == HELLO_EXT_ALPN) {
            if (seen_alpn || !parse_alpn(ext, out))
                return false;
            seen_alpn = true;
        } else if (type == HELLO_EXT_SNI) {
            if (seen_sni || !parse_sni(ext, out))
                return false;
            seen_sni = true;
        }
    }
    return true;
}

enum net_hello_rc net_hello_parse(const uint8_t *buf, size_t len, struct net_hello *out)
{
    /* The handshake message, gathered from the records' fragments; the hello is bounded, so
     * this is too (a longer one is NOT: OpenSSL's to handle). */
    uint8_t msg[NET_HELLO_MAX];
    size_t have = 0, need = 0; /* need: 4 + the message's length, once its header is in */
    size_t off = 0;
    memset(out, 0, sizeof *out);
    while (off < len) {
        if (len - off < 5) {
            /* a record header cut short: what there is of it must look right */
            if (buf[off] != 0x16 || (len - off >= 2 && buf[off + 1] != 0x03))
                return NET_HELLO_NOT;
            return NET_HELLO_MORE;
        }
        const uint8_t *h = buf + off;
        size_t rlen = (size_t)h[3] << 8 | h[4];
        if (h[0] != 0x16 || h[1] != 0x03 || rlen == 0 || rlen > HELLO_RECORD_MAX)
            return NET_HELLO_NOT; /* not handshake, not TLS, or an empty fragment (5.1) */
        off += 5;
        size_t frag = len - off < rlen ? len - off : rlen; /* what has arrived of it */
        for (size_t i = 0; i < frag; i++) {
            if (need && have == need)
                return NET_HELLO_NOT; /* more bytes after the hello in its record */
            if (have == sizeof msg)
                return NET_HELLO_NOT; /* larger than this parser looks at */
            msg[have++] = buf[off + i];
            /* judged as early as a byte tells: a ClientHello, and under 64 KiB */
            if ((have == 1 && msg[0] != 1) || (have == 2 && msg[1] != 0))
                return NET_HELLO_NOT;
            if (have == 4) {
                size_t body = (size_t)msg[1] << 16 | (size_t)msg[2] << 8 | msg[3];
                if (msg[0] != 1 || body > sizeof msg - 4)
                    return NET_HELLO_NOT; /* not a ClientHello, or too large to look at */
                need = 4 + body;
            }
        }
        off += frag;
        if (frag < rlen)
            return NET_HELLO_MORE; /* the record is still arriving */
        if (need && have == need) {
            struct rd body = {msg + 4, need - 4};
            if (!parse_body(body, out)) {
                memset(out, 0, sizeof *out);
                return NET_HELLO_NOT;
            }
            out->len = off;
            return NET_HELLO_DONE;
        }
    }
    return NET_HELLO_MORE;
}
