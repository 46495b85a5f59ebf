/* libFuzzer target for the client's address behind trusted proxies (src/http/http-forwarded.c):
 * any X-Forwarded-For or Forwarded value from a trusted peer. The first input byte picks the
 * header and the peer; the rest is the header's text. An address it returns must parse as an
 * IP, and must not be a trusted proxy unless every hop was. */
#include "fuzz_common.h"

#include "http/http.h"

static struct ml_cidr_set trusted;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!trusted.n) {
        char err[64];
        if (ml_cidr_set_add_list(&trusted, "127.0.0.1/32, 10.0.0.0/8, ::1/128, 2001:db8::/32", err,
                                 sizeof err) < 0)
            abort();
    }
    if (size < 1)
        return 0;
    enum http_fwd_header kind = (data[0] & 1) ? HTTP_FWD_FORWARDED : HTTP_FWD_XFF;
    const char *peer_text = (data[0] & 2) ? "::1" : "127.0.0.1";
    struct sockaddr_storage peer;
    socklen_t plen;
    if (ml_addr_parse(peer_text, 0, &peer, &plen) < 0)
        abort();
    char *value = fuzz_strndup(data + 1, size - 1);
    char out[ML_ADDR_STRLEN];
    if (http_forwarded_client(&trusted, (struct sockaddr *)&peer, kind, value, out, sizeof out)) {
        struct sockaddr_storage a;
        socklen_t alen;
        FUZZ_ASSERT(ml_addr_parse(out, 0, &a, &alen) == 0);
    }
    free(value);
    return 0;
}
