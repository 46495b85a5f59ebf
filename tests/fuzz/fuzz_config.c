/* libFuzzer target for the configuration reader: app_config_load as meetlited runs it at start
 * and on SIGHUP (the defaults, the INI file through inih with every subsystem's key table and
 * validators, then --set section.key=value overrides, then the derived quota), followed by what
 * a reload and a dump do with the result (ml_cfg_differs, ml_cfg_move, ml_cfg_format).
 * Input: the file's text, then optionally a NUL byte and --set arguments, one per line. The
 * file is handed to inih through a memfd, so the real path-based reader runs. */
#include "fuzz_common.h"

#include "app/app.h"

#include <sys/mman.h>
#include <unistd.h>

#define MAX_SETS 16

static int fd = -1;
static char path[64];
static struct app_config defaults;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[512];
    ml_log_set_level(ML_LOG_ERROR);
    fd = memfd_create("meetlite-fuzz.conf", MFD_CLOEXEC);
    FUZZ_ASSERT(fd >= 0);
    ml_snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    FUZZ_ASSERT(app_config_load(&defaults, NULL, NULL, 0, err, sizeof err) == 0);
    return 0;
}

/* Every key of cfg formats into a terminated string; the secret ones never show their value. */
static void dump(const struct app_config *cfg)
{
    char val[2048];
    for (size_t i = 0; app_cfg_sections[i]; i++) {
        const struct ml_cfg_section *sec = app_cfg_sections[i];
        for (const struct ml_cfg_key *k = sec->keys; k->name; k++) {
            ml_cfg_format(sec, k, cfg, val, sizeof val);
            FUZZ_ASSERT(memchr(val, 0, sizeof val) != NULL);
            if (k->flags & ML_CFG_SECRET)
                FUZZ_ASSERT(!strcmp(val, "") || !strcmp(val, "(set)"));
            if (k->type == ML_CFG_INT || k->type == ML_CFG_DURATION || k->type == ML_CFG_SIZE) {
                long long v = *(const long long *)((const char *)cfg + sec->offset + k->offset);
                FUZZ_ASSERT(v >= k->min && v <= k->max);
            }
        }
    }
}

/* The reload: every changed key moved from next into cur (restart-only ones too, here), after
 * which nothing differs any more. */
static void reload(struct app_config *cur, struct app_config *next)
{
    for (size_t i = 0; app_cfg_sections[i]; i++) {
        const struct ml_cfg_section *sec = app_cfg_sections[i];
        for (const struct ml_cfg_key *k = sec->keys; k->name; k++)
            if (ml_cfg_differs(sec, k, cur, next)) {
                ml_cfg_move(sec, k, cur, next);
                FUZZ_ASSERT(k->type == ML_CFG_STR || !ml_cfg_differs(sec, k, cur, next));
            }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    const uint8_t *nul = memchr(data, 0, size);
    size_t flen = nul ? (size_t)(nul - data) : size;
    FUZZ_ASSERT(ftruncate(fd, 0) == 0);
    FUZZ_ASSERT(pwrite(fd, data, flen, 0) == (ssize_t)flen);
    /* the --set arguments: argv strings, one per line */
    char *sets_text = nul ? fuzz_strndup(nul + 1, size - flen - 1) : NULL;
    char *sets[MAX_SETS];
    size_t nsets = 0;
    for (char *p = sets_text; p && *p && nsets < MAX_SETS;) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = 0;
        sets[nsets++] = p;
        p = nl ? nl + 1 : NULL;
    }
    struct app_config cfg, cur;
    char err[512] = "";
    if (app_config_load(&cfg, path, sets, nsets, err, sizeof err) == 0) {
        dump(&cfg);
        char e2[512];
        FUZZ_ASSERT(app_config_load(&cur, NULL, NULL, 0, e2, sizeof e2) == 0);
        reload(&cur, &cfg);
        dump(&cur);
        app_config_free(&cur);
    } else {
        FUZZ_ASSERT(err[0] && memchr(err, 0, sizeof err));
    }
    app_config_free(&cfg);
    free(sets_text);
    return 0;
}
