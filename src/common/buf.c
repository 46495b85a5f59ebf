/* Bounded growable buffers: text assembled piece by piece (SQL array literals, JSON spliced by
 * hand, HTTP answers, NOTIFY payloads) with a ceiling on what any one may become. */
#include "config.h"

#include "common/common.h"

#include <stdlib.h>
#include <string.h>

/* Room for n more bytes and the NUL: 0, or -1 when len would pass max. */
static int reserve(struct ml_buf *b, size_t n)
{
    if (n > b->max || b->len > b->max - n)
        return -1;
    size_t need = b->len + n + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    b->p = ml_xrealloc(b->p, cap);
    b->cap = cap;
    return 0;
}

int ml_buf_add(struct ml_buf *b, const void *s, size_t n)
{
    if (reserve(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

int ml_buf_str(struct ml_buf *b, const char *s)
{
    return ml_buf_add(b, s, strlen(s));
}

int ml_buf_printf(struct ml_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(b, (size_t)n) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void ml_buf_reset(struct ml_buf *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = 0;
}

char *ml_buf_take(struct ml_buf *b)
{
    char *p = b->p;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

void ml_buf_free(struct ml_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
