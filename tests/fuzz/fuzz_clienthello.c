/* libFuzzer target for the TLS ClientHello parser (src/net/clienthello.c): the first bytes of a
 * connection to a shared:// listener, in any number of TLS records. The parser must never read
 * past what it is given, must agree with itself on every prefix (a prefix of a whole hello asks
 * for more; a prefix of anything it has not refused is never refused), must never claim more
 * bytes than it saw, and must report only what it found. */
#include "fuzz_common.h"

#include "net/net.h"

static void check_zero(const struct net_hello *h)
{
    FUZZ_ASSERT(h->len == 0 && !h->alpn && h->alpn_count == 0 && !h->alpn_http11 && !h->alpn_h2 &&
                !h->alpn_turn && h->sni[0] == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a copy of exactly size bytes: ASan catches any read beyond */
    uint8_t *buf = (uint8_t *)fuzz_memdup(data, size);
    struct net_hello h, h2;
    enum net_hello_rc rc = net_hello_parse(buf, size, &h);
    if (rc != NET_HELLO_DONE)
        check_zero(&h);
    if (rc == NET_HELLO_DONE) {
        FUZZ_ASSERT(h.len >= 5 + 4 && h.len <= size);
        fuzz_check_msg(h.sni, sizeof h.sni);
        FUZZ_ASSERT(h.alpn || (h.alpn_count == 0 && !h.alpn_http11 && !h.alpn_h2 && !h.alpn_turn));
        FUZZ_ASSERT(!h.alpn || h.alpn_count >= 1);
        FUZZ_ASSERT(h.alpn_count >= (unsigned)h.alpn_http11 + h.alpn_h2 + h.alpn_turn);
        /* the records of the hello alone parse the same; a byte less asks for more */
        FUZZ_ASSERT(net_hello_parse(buf, h.len, &h2) == NET_HELLO_DONE);
        FUZZ_ASSERT(!memcmp(&h, &h2, sizeof h));
        FUZZ_ASSERT(net_hello_parse(buf, h.len - 1, &h2) == NET_HELLO_MORE);
        check_zero(&h2);
        FUZZ_ASSERT(net_hello_parse(buf, h.len / 2, &h2) == NET_HELLO_MORE);
    } else if (rc == NET_HELLO_MORE && size) {
        /* what has arrived so far was not refused: none of its prefixes is */
        FUZZ_ASSERT(net_hello_parse(buf, size - 1, &h2) == NET_HELLO_MORE);
        FUZZ_ASSERT(net_hello_parse(buf, size / 2, &h2) == NET_HELLO_MORE);
    }
    free(buf);
    return 0;
}
