/* libFuzzer target for the hand JSON string writer of the join's answer, ml_buf_json_str
 * (src/common/json.c), held to jansson: for the input as a string (up to its first NUL) either
 * both refuse it (not UTF-8: json_string gives NULL), or the writer's text is byte for byte
 * jansson's compact dump of it and json_loads reads it back to exactly the input. A buffer too
 * small for it (its ceiling drawn from the first byte) is refused and left as it was. */
#include "fuzz_common.h"

#include "common/common.h"

#include <jansson.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    char *s = fuzz_strndup(data, size);
    size_t n = strlen(s);
    struct ml_buf b = ML_BUF_INIT((size_t)1 << 20);
    FUZZ_ASSERT(ml_buf_add(&b, "[", 1) == 0); /* what was there before stays */
    int rc = ml_buf_json_str(&b, s);
    json_t *j = json_string(s);
    if (!j) {
        if (rc == 0) {
            fprintf(stderr, "jansson refused a string the writer took: %s\n", b.p);
            abort();
        }
        FUZZ_ASSERT(b.len == 1 && !strcmp(b.p, "["));
    } else {
        FUZZ_ASSERT(rc == 0 && b.len >= 3 && b.p[0] == '[' && strlen(b.p) == b.len);
        const char *text = b.p + 1;
        size_t tn = b.len - 1;
        /* what jansson writes of it */
        char *dump = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        FUZZ_ASSERT(dump);
        if (strlen(dump) != tn || memcmp(dump, text, tn)) {
            fprintf(stderr, "the writer: %s\njansson:    %s\n", text, dump);
            abort();
        }
        free(dump);
        /* and what jansson reads back */
        json_error_t err;
        json_t *back = json_loadb(text, tn, JSON_DECODE_ANY, &err);
        if (!back) {
            fprintf(stderr, "jansson cannot read the writer's %s: %s\n", text, err.text);
            abort();
        }
        FUZZ_ASSERT(json_is_string(back) && json_string_length(back) == n &&
                    !memcmp(json_string_value(back), s, n));
        json_decref(back);
        /* a ceiling below what it needs: refused, the buffer as it was */
        size_t max = size ? data[0] % (tn + 2) : 0;
        struct ml_buf small = ML_BUF_INIT(max);
        int src = ml_buf_json_str(&small, s);
        if (tn <= max) {
            FUZZ_ASSERT(src == 0 && small.len == tn && !memcmp(small.p, text, tn));
        } else {
            FUZZ_ASSERT(src == -1 && small.len == 0 && (!small.p || !small.p[0]));
        }
        ml_buf_free(&small);
    }
    json_decref(j);
    ml_buf_free(&b);
    free(s);
    return 0;
}
