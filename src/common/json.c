/* JSON text written by hand where jansson's pack and dump cost too much (the join's answer):
 * a string value with the escaping jansson's compact dump gives it, refusing what jansson
 * refuses (text that is not UTF-8). tests/fuzz/fuzz_jsonw.c holds it to jansson's output. */
#include "config.h"

#include "common/common.h"

#include <string.h>

int ml_buf_json_str(struct ml_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF"; /* upper case, as jansson writes them */
    size_t start = b->len;
    if (!ml_utf8_valid(s, strlen(s), NULL) || ml_buf_add(b, "\"", 1) < 0)
        return -1;
    /* runs of bytes that stay as they are, copied at once; UTF-8 is never escaped */
    const char *run = s;
    for (;; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        if (s > run && ml_buf_add(b, run, (size_t)(s - run)) < 0)
            goto fail;
        if (!ch)
            break;
        char esc[6] = {'\\', (char)ch, 0, 0, 0, 0};
        size_t n = 2;
        if (ch == '\n')
            esc[1] = 'n';
        else if (ch == '\t')
            esc[1] = 't';
        else if (ch == '\r')
            esc[1] = 'r';
        else if (ch == '\b')
            esc[1] = 'b';
        else if (ch == '\f')
            esc[1] = 'f';
        else if (ch < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            n = 6;
        }
        if (ml_buf_add(b, esc, n) < 0)
            goto fail;
        run = s + 1;
    }
    if (ml_buf_add(b, "\"", 1) == 0)
        return 0;
fail:
    b->len = start;
    b->p[start] = 0;
    return -1;
}
