/* meetlite-admin's readable output: aligned tables and human units. */
#include "config.h"

#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

void cli_table_init(struct cli_table *t, unsigned ncols, const char *const *heads)
{
    memset(t, 0, sizeof *t);
    t->ncols = ncols < 16 ? ncols : 16;
    for (unsigned i = 0; i < t->ncols; i++)
        t->heads[i] = heads[i];
}

void cli_table_row(struct cli_table *t, const char *const *cells)
{
    if (t->rows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cells = ml_xrealloc(t->cells, t->cap * t->ncols * sizeof *t->cells);
    }
    for (unsigned i = 0; i < t->ncols; i++)
        t->cells[t->rows * t->ncols + i] = ml_xstrdup(cells[i] ? cells[i] : "-");
    t->rows++;
}

void cli_table_print(struct cli_table *t, FILE *out)
{
    size_t w[16];
    for (unsigned i = 0; i < t->ncols; i++) {
        w[i] = strlen(t->heads[i]);
        for (size_t r = 0; r < t->rows; r++) {
            size_t n = strlen(t->cells[r * t->ncols + i]);
            if (n > w[i])
                w[i] = n;
        }
    }
    for (size_t r = 0; r <= t->rows; r++) {
        for (unsigned i = 0; i < t->ncols; i++) {
            const char *s = r ? t->cells[(r - 1) * t->ncols + i] : t->heads[i];
            bool last = i + 1 == t->ncols;
            fprintf(out, "%-*s%s", last ? 0 : (int)w[i], s, last ? "\n" : "  ");
        }
    }
}

void cli_table_free(struct cli_table *t)
{
    for (size_t i = 0; i < t->rows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

void cli_bytes(uint64_t n, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    unsigned u = 0;
    while (v >= 1024 && u + 1 < ML_ARRAY_LEN(units)) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        ml_snprintf(buf, len, "%llu B", (unsigned long long)n);
    else
        ml_snprintf(buf, len, "%.1f %s", v, units[u]);
}

void cli_duration(long long s, char *buf, size_t len)
{
    if (s < 0)
        s = 0;
    if (s < 60)
        ml_snprintf(buf, len, "%llds", s);
    else if (s < 3600)
        ml_snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        ml_snprintf(buf, len, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
    else
        ml_snprintf(buf, len, "%lldd%02lldh", s / 86400, (s % 86400) / 3600);
}

void cli_time(long long t, char *buf, size_t len)
{
    if (t <= 0) {
        ml_strlcpy(buf, "-", len);
        return;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm);
}
