/* What every libFuzzer target of tests/fuzz shares: the entry points, an assertion that aborts
 * (so that libFuzzer keeps the input), and exact-size copies of the input, so that AddressSanitizer
 * sees a read one byte past what the parser was given. */
#ifndef ML_FUZZ_COMMON_H
#define ML_FUZZ_COMMON_H

#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The input as a NUL-terminated string of exactly size + 1 bytes (caller frees). An embedded
 * NUL simply ends the string early, as it would for the parser's real caller. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    if (size)
        memcpy(s, data, size);
    s[size] = 0;
    return s;
}

/* The input as exactly size bytes, not terminated (caller frees; NULL for size 0 is avoided). */
static inline char *fuzz_memdup(const uint8_t *data, size_t size)
{
    char *s = malloc(size ? size : 1);
    if (!s)
        abort();
    if (size)
        memcpy(s, data, size);
    return s;
}

/* A message buffer filled by a parser must be a terminated string that fits. */
static inline void fuzz_check_msg(const char *msg, size_t len)
{
    FUZZ_ASSERT(memchr(msg, 0, len) != NULL);
}

#endif
