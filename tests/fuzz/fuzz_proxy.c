/* libFuzzer target for the PROXY protocol parser (src/net/proxy.c): any bytes at the start of a
 * connection from a trusted proxy. The parser must never read past what it is given, must agree
 * with itself on every prefix (a prefix of a whole header asks for more), and must never claim
 * more bytes than it saw. */
#include "fuzz_common.h"

#include "net/net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a copy of exactly size bytes: ASan catches any read beyond */
    uint8_t *buf = (uint8_t *)fuzz_memdup(data, size);
    struct net_proxy_hdr h;
    enum net_proxy_rc rc = net_proxy_parse(buf, size, &h);
    bool sig = size && net_proxy_signature(buf, size);
    if (rc == NET_PROXY_NONE)
        FUZZ_ASSERT(!sig);
    if (rc == NET_PROXY_DONE) {
        FUZZ_ASSERT(h.len > 0 && h.len <= size && h.len <= NET_PROXY_MAX);
        FUZZ_ASSERT(h.version == 1 || h.version == 2);
        if (h.has_addr)
            FUZZ_ASSERT(h.src.ss_family == AF_INET || h.src.ss_family == AF_INET6);
        /* the header alone parses the same; a byte less asks for more */
        struct net_proxy_hdr h2;
        FUZZ_ASSERT(net_proxy_parse(buf, h.len, &h2) == NET_PROXY_DONE && h2.len == h.len);
        FUZZ_ASSERT(net_proxy_parse(buf, h.len - 1, &h2) == NET_PROXY_MORE);
    }
    free(buf);
    return 0;
}
