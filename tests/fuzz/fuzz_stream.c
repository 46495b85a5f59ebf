/* libFuzzer target for the stream framer of TCP and TLS clients (TLS records decrypt into the
 * same input buffer): net_frame_next cutting the byte stream into STUN and ChannelData frames
 * by the TURN server's framing rule, fed in pieces of varying size the way reads arrive. The
 * frames cut must be the stream's bytes in order, never over the frame limit, and the same
 * whatever the pieces; each frame then goes through the codec as the server would read it.
 * Input: one byte choosing the frame limit, one seeding the piece sizes, then the stream. */
#include "fuzz_common.h"

#include "net/net-int.h"
#include "stun/stun.h"
#include "turn/turn.h"

#include <event2/buffer.h>

static const long long max_frames[] = {24, 100, 548, 1500, 65540, 1 << 20};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ml_log_set_level(ML_LOG_ERROR);
    return 0;
}

/* What the server does with a whole frame: parse it as ChannelData or as a STUN message. */
static void use_frame(const uint8_t *f, size_t n)
{
    if (stun_is_channeldata(f, n)) {
        uint16_t ch;
        const uint8_t *d;
        size_t dl;
        if (stun_channeldata_parse(f, n, &ch, &d, &dl) == 0)
            FUZZ_ASSERT(d + dl <= f + n && n - dl - STUN_CHANNELDATA_HEADER_LEN < 4);
        return;
    }
    struct stun_msg m;
    if (stun_msg_parse(&m, f, n, NULL) == 0) {
        FUZZ_ASSERT(m.len == n);
        for (unsigned i = 0; i < m.nattrs; i++)
            FUZZ_ASSERT((size_t)m.attrs[i].offset + m.attrs[i].len <= n);
    }
}

/* The reference: the whole stream at once. Returns the bytes of whole frames; *bad tells
 * whether an unframeable or oversized frame header stops the stream there. */
static size_t reference(const uint8_t *s, size_t n, long long max, bool *bad)
{
    size_t off = 0;
    *bad = false;
    while (n - off >= 4) {
        long flen = stun_frame_len(s + off, n - off, true);
        if (flen < 0 || flen > max) {
            *bad = true;
            break;
        }
        if (flen == 0 || (size_t)flen > n - off)
            break;
        off += (size_t)flen;
    }
    return off;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    long long max = max_frames[data[0] % ML_ARRAY_LEN(max_frames)];
    uint32_t seed = data[1] * 2654435761u + 1;
    const uint8_t *s = data + 2;
    size_t n = size - 2;
    const struct net_handler *h = turn_net_handler();
    struct evbuffer *in = evbuffer_new();
    FUZZ_ASSERT(in);
    size_t fed = 0, cut = 0;
    bool bad = false;
    while (fed < n && !bad) {
        /* a read of 1..64 bytes, or (one in eight) up to 4 KiB */
        seed = seed * 1103515245u + 12345u;
        size_t piece = (seed >> 16) % 8 ? 1 + (seed >> 8) % 64 : 1 + (seed >> 4) % 4096;
        if (piece > n - fed)
            piece = n - fed;
        FUZZ_ASSERT(evbuffer_add(in, s + fed, piece) == 0);
        fed += piece;
        for (;;) {
            uint8_t *frame;
            long flen = net_frame_next(in, h, max, &frame);
            if (flen == 0) {
                FUZZ_ASSERT(frame == NULL);
                break;
            }
            if (flen < 0) {
                FUZZ_ASSERT(flen == NET_FRAME_BAD || flen == NET_FRAME_OVERSIZED);
                bad = true;
                break;
            }
            FUZZ_ASSERT(flen >= 4 && flen <= max && (size_t)flen <= fed - cut);
            FUZZ_ASSERT(evbuffer_get_length(in) == fed - cut);
            FUZZ_ASSERT(memcmp(frame, s + cut, (size_t)flen) == 0);
            use_frame(frame, (size_t)flen);
            FUZZ_ASSERT(evbuffer_drain(in, (size_t)flen) == 0);
            cut += (size_t)flen;
        }
    }
    bool ref_bad;
    size_t ref_cut = reference(s, n, max, &ref_bad);
    FUZZ_ASSERT(cut == ref_cut && bad == ref_bad);
    if (!bad)
        FUZZ_ASSERT(evbuffer_get_length(in) == n - cut);
    evbuffer_free(in);
    return 0;
}
