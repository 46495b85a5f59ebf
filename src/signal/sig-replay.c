/* Frames and the replay buffer: a message for clients, made once and shared (refcounted) by a
 * meeting's replay ring and every client queue that holds it; the ring keeps a meeting's last
 * frames, within a count and a byte budget, for sessions that resume. */
#include "config.h"

#include "signal/sig-int.h"

#include <stdlib.h>
#include <string.h>

struct sig_frame *sig_frame_new(uint64_t seq, const char *body, size_t n)
{
    char head[40];
    size_t hn = 0, skip = 0;
    if (seq) {
        bool empty = n >= 2 && body[0] == '{' && body[1] == '}';
        hn = ml_snprintf(head, sizeof head, "{\"seq\":%llu%s", (unsigned long long)seq,
                         empty ? "" : ",");
        skip = 1; /* the body's own '{' */
    }
    size_t len = hn + n - skip;
    struct sig_frame *f = ml_xmalloc(sizeof *f + LWS_PRE + len + 1);
    memset(f, 0, sizeof *f);
    f->refs = 1;
    f->seq = seq;
    f->len = len;
    memcpy(f->data + LWS_PRE, head, hn);
    memcpy(f->data + LWS_PRE + hn, body + skip, n - skip);
    f->data[LWS_PRE + len] = 0;
    return f;
}

void sig_frame_unref(struct sig_frame *f)
{
    if (f && --f->refs == 0)
        free(f);
}

bool sig_frame_for(const struct sig_frame *f, const uint8_t pid[16])
{
    if (f->has_to)
        return !memcmp(f->to, pid, 16);
    if (f->has_except)
        return memcmp(f->except, pid, 16) != 0;
    return true;
}

struct sig_frame *sig_ring_at(const struct sig_ring *r, size_t i)
{
    return r->v[(r->head + i) % r->cap];
}

uint64_t sig_ring_first_seq(const struct sig_ring *r)
{
    return r->n ? sig_ring_at(r, 0)->seq : 0;
}

static void ring_pop(struct sig_ring *r)
{
    struct sig_frame *f = r->v[r->head];
    r->bytes -= f->len;
    sig_frame_unref(f);
    r->head = (r->head + 1) % r->cap;
    r->n--;
}

void sig_ring_push(struct sig_ring *r, struct sig_frame *f, size_t max_n, size_t max_bytes)
{
    if (max_n == 0)
        return;
    if (r->n == r->cap && r->cap < max_n) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        if (cap > max_n)
            cap = max_n;
        struct sig_frame **v = ml_xmalloc(cap * sizeof *v);
        for (size_t i = 0; i < r->n; i++)
            v[i] = sig_ring_at(r, i);
        free(r->v);
        r->v = v;
        r->cap = cap;
        r->head = 0;
    }
    while (r->n && (r->n == r->cap || r->bytes + f->len > max_bytes))
        ring_pop(r);
    f->refs++;
    r->v[(r->head + r->n) % r->cap] = f;
    r->n++;
    r->bytes += f->len;
}

void sig_ring_free(struct sig_ring *r)
{
    while (r->n)
        ring_pop(r);
    free(r->v);
    memset(r, 0, sizeof *r);
}
