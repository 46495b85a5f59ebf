/* Small helpers: time, bounded strings, number and list parsing, UTF-8, UUIDs, base64, hex,
 * randomness, allocation that cannot fail. */
#include "config.h"

#include "common/common.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t ml_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ml_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t ml_wall_s(void)
{
    return (int64_t)time(NULL);
}

int64_t ml_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t ml_strlcpy(char *dst, const char *src, size_t size)
{
    size_t n = strlen(src);
    if (size) {
        size_t c = n < size - 1 ? n : size - 1;
        memcpy(dst, src, c);
        dst[c] = 0;
    }
    return n;
}

size_t ml_snprintf(char *dst, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, size, fmt, ap);
    va_end(ap);
    if (n < 0) {
        if (size)
            dst[0] = 0;
        return 0;
    }
    return (size_t)n < size ? (size_t)n : (size ? size - 1 : 0);
}

int ml_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

char *ml_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = 0;
    return s;
}

int ml_parse_ll(const char *s, long long min, long long max, long long *out)
{
    if (!s || !*s)
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

const char *ml_list_next(const char **cursor, size_t *len)
{
    const char *p = *cursor;
    if (!p)
        return NULL;
    while (*p == ',' || isspace((unsigned char)*p))
        p++;
    if (!*p) {
        *cursor = p;
        return NULL;
    }
    const char *start = p;
    while (*p && *p != ',' && !isspace((unsigned char)*p))
        p++;
    *len = (size_t)(p - start);
    *cursor = p;
    return start;
}

int ml_list_foreach(const char *list, int (*fn)(const char *item, void *arg), void *arg)
{
    const char *item;
    size_t n;
    while ((item = ml_list_next(&list, &n))) {
        char buf[256];
        if (n >= sizeof buf)
            return -1;
        memcpy(buf, item, n);
        buf[n] = 0;
        if (fn(buf, arg) < 0)
            return -1;
    }
    return 0;
}

size_t ml_list_first(const char *list, char *buf, size_t len)
{
    size_t n = 0;
    const char *item = ml_list_next(&list, &n);
    if (!item || n >= len) {
        if (len)
            buf[0] = 0;
        return 0;
    }
    memcpy(buf, item, n);
    buf[n] = 0;
    return n;
}

bool ml_name_valid(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
            return false;
    return true;
}

bool ml_slug_valid(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        bool alnum = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9');
        if (!alnum && (s[i] != '-' || s[i + 1] == '-'))
            return false;
    }
    return true;
}

bool ml_utf8_valid(const char *s, size_t n, size_t *chars)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    size_t count = 0;
    while (p < end) {
        unsigned c = *p;
        size_t len;
        unsigned cp;
        if (c == 0)
            return false;
        if (c < 0x80) {
            p++;
            count++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if ((size_t)(end - p) < len)
            return false;
        for (size_t i = 1; i < len; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        /* overlong forms, surrogates, beyond U+10FFFF */
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return false;
        p += len;
        count++;
    }
    if (chars)
        *chars = count;
    return true;
}

/* ------------------------------------------------------------ UUIDs */

int ml_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool ml_uuid_parse(const char *s, uint8_t out[16])
{
    if (!s || strlen(s) != 36)
        return false;
    int k = 0;
    for (int i = 0; i < 36;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
            i++;
            continue;
        }
        int hi = ml_hex_digit((unsigned char)s[i]), lo = ml_hex_digit((unsigned char)s[i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[k++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    return true;
}

void ml_uuid_format(const uint8_t in[16], char out[ML_UUID_STR])
{
    static const char hx[] = "0123456789abcdef";
    int k = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[k++] = '-';
        out[k++] = hx[in[i] >> 4];
        out[k++] = hx[in[i] & 15];
    }
    out[k] = 0;
}

void ml_uuid_random(uint8_t out[16])
{
    ml_random(out, 16);
    out[6] = (uint8_t)((out[6] & 0x0f) | 0x40);
    out[8] = (uint8_t)((out[8] & 0x3f) | 0x80);
}

bool ml_uuid_valid(const char *s)
{
    uint8_t b[16];
    return ml_uuid_parse(s, b);
}

bool ml_uuid_norm(const char *s, char out[ML_UUID_STR])
{
    uint8_t b[16];
    if (!ml_uuid_parse(s, b)) {
        out[0] = 0;
        return false;
    }
    ml_uuid_format(b, out);
    return true;
}

size_t ml_base64_encode(const uint8_t *in, size_t n, char *out, size_t outlen)
{
    size_t need = 4 * ((n + 2) / 3) + 1;
    if (outlen < need || n > INT32_MAX) {
        if (outlen)
            out[0] = 0;
        return 0;
    }
    return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

size_t ml_base64url_encode(const uint8_t *in, size_t n, char *out, size_t outlen)
{
    size_t len = ml_base64_encode(in, n, out, outlen);
    while (len && out[len - 1] == '=')
        len--;
    if (outlen)
        out[len] = 0;
    for (size_t i = 0; i < len; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    return len;
}

long ml_base64_decode(const char *in, size_t n, uint8_t *out, size_t outlen)
{
    /* EVP_DecodeBlock wants padded input and decodes padding to zero bytes: strip what padding
     * there is, pad again to a multiple of 4, decode, and drop the padding bytes. */
    char buf[1024];
    uint8_t tmp[768];
    size_t strip = 0;
    while (n > 0 && strip < 2 && in[n - 1] == '=') {
        n--;
        strip++;
    }
    if (n % 4 == 1 || n + 3 > sizeof buf)
        return -1;
    memcpy(buf, in, n);
    size_t pad = (4 - n % 4) % 4;
    for (size_t i = 0; i < pad; i++)
        buf[n + i] = '=';
    int len = EVP_DecodeBlock(tmp, (const unsigned char *)buf, (int)(n + pad));
    if (len < 0 || (size_t)len < pad)
        return -1;
    len -= (int)pad;
    if ((size_t)len > outlen)
        return -1;
    memcpy(out, tmp, (size_t)len);
    return len;
}

void ml_hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = 0;
}

/* Small draws (ports, tokens, salts) come from a per-thread pool of the same generator's
 * output: each RAND_bytes call costs a getpid() (OpenSSL's fork check) and a DRBG round,
 * which was a measurable part of an Allocate. Served bytes are wiped from the pool. */
#define ML_RANDOM_POOL 512
#define ML_RANDOM_POOLED_MAX 64

void ml_random(void *buf, size_t n)
{
    static __thread unsigned char pool[ML_RANDOM_POOL];
    static __thread size_t avail;
    if (n > ML_RANDOM_POOLED_MAX) {
        if (RAND_bytes(buf, (int)n) != 1)
            abort();
        return;
    }
    if (avail < n) {
        if (RAND_bytes(pool, (int)sizeof pool) != 1)
            abort();
        avail = sizeof pool;
    }
    unsigned char *from = pool + (sizeof pool - avail);
    memcpy(buf, from, n);
    OPENSSL_cleanse(from, n);
    avail -= n;
}

void ml_wipe(void *buf, size_t n)
{
    OPENSSL_cleanse(buf, n);
}

void *ml_xmalloc(size_t size)
{
    return ml_nonnull(malloc(size ? size : 1));
}

void *ml_xrealloc(void *p, size_t size)
{
    return ml_nonnull(realloc(p, size ? size : 1));
}

void *ml_nonnull(void *p)
{
    if (!p)
        abort();
    return p;
}

void *ml_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        abort();
    return p;
}

char *ml_xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        abort();
    return p;
}
