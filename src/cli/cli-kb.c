/* meetlite-admin kb: the help assistant's knowledge base through the admin API (list, show,
 * add and import article files, remove, the questions that found no answer). */
#include "config.h"

#include "cli/cli.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define KB_FILE_MAX_BYTES (300 * 1024) /* an article file: 69,632 characters (adm-kb.c) */
#define KB_DEPTH_MAX 3                 /* folders walked below an import's DIR */

/* An article file's text into a malloc'd, NUL-terminated buffer (caller frees), or NULL with a
 * message on stderr: unreadable, too large, not UTF-8. */
static char *kb_read_file(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        fprintf(stderr, "meetlite-admin: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *buf = ml_xmalloc(KB_FILE_MAX_BYTES + 2);
    size_t n = fread(buf, 1, KB_FILE_MAX_BYTES + 1, f);
    bool err = ferror(f) != 0;
    fclose(f);
    size_t chars;
    const char *why = err                              ? "cannot be read"
                      : n > KB_FILE_MAX_BYTES          ? "larger than 300 KiB"
                      : !ml_utf8_valid(buf, n, &chars) ? "not UTF-8 text"
                      : memchr(buf, 0, n) != NULL      ? "contains a NUL byte"
                                                       : NULL;
    if (why) {
        fprintf(stderr, "meetlite-admin: %s: %s\n", path, why);
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    return buf;
}

/* The slug a file's name gives ("kb/en/camera-black.md": camera-black), into out. */
static void kb_slug_of(const char *path, char *out, size_t len)
{
    const char *base = strrchr(path, '/');
    ml_strlcpy(out, base ? base + 1 : path, len);
    size_t n = strlen(out);
    if (n > 3 && !strcmp(out + n - 3, ".md"))
        out[n - 3] = 0;
}

/* Adds or replaces one article file; prints its outcome unless quiet. 0, or the exit status. */
static int kb_add_file(const char *path, bool starter, unsigned counts[4])
{
    char *text = kb_read_file(path);
    if (!text)
        return CLI_EXIT_USAGE;
    char slug[256];
    kb_slug_of(path, slug, sizeof slug);
    int rc;
    json_t *j = cli_call("POST", "/v1/kb/articles",
                         json_pack("{s:s,s:s,s:s}", "file", text, "slug", slug, "origin",
                                   starter ? "starter" : "operator"),
                         &rc);
    free(text);
    if (rc == CLI_EXIT_API)
        fprintf(stderr, "meetlite-admin: %s: refused\n", path);
    if (j) {
        const char *outcome = cli_jstr(j, "outcome") ? cli_jstr(j, "outcome") : "?";
        if (!cli_json_out)
            printf("%-8s %s (%lld passage%s)\n", outcome, cli_jstr(j, "slug"),
                   cli_jint(j, "passages"), cli_jint(j, "passages") == 1 ? "" : "s");
        static const char *const kinds[] = {"created", "updated", "unchanged", "kept"};
        for (int i = 0; i < 4; i++)
            if (!strcmp(outcome, kinds[i]))
                counts[i]++;
    }
    json_decref(j);
    return rc;
}

static int kb_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every article file under dir (*.md but README.md), in name order, depth first. *rc keeps the
 * first failure; a connection failure stops the walk. */
static void kb_import_dir(const char *dir, int depth, bool starter, unsigned counts[4], int *rc,
                          unsigned *files)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "meetlite-admin: %s: %s\n", dir, strerror(errno));
        *rc = *rc ? *rc : CLI_EXIT_USAGE;
        return;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        names = ml_xrealloc(names, (n + 1) * sizeof *names);
        names[n++] = ml_xstrdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, kb_name_cmp);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        ml_snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat st;
        size_t len = strlen(names[i]);
        if (*rc == CLI_EXIT_CONN || stat(path, &st) < 0) {
            /* stopped, or gone meanwhile */
        } else if (S_ISDIR(st.st_mode)) {
            if (depth < KB_DEPTH_MAX)
                kb_import_dir(path, depth + 1, starter, counts, rc, files);
        } else if (S_ISREG(st.st_mode) && len > 3 && !strcmp(names[i] + len - 3, ".md") &&
                   strcasecmp(names[i], "README.md") != 0) {
            (*files)++;
            int r = kb_add_file(path, starter, counts);
            if (r && (!*rc || r == CLI_EXIT_CONN))
                *rc = r;
        }
        free(names[i]);
    }
    free(names);
}

int cli_cmd_kb(int argc, char **argv)
{
    int rc = 0;
    const char *sub = argc > 1 ? argv[1] : "list";
    bool starter = false;
    if (argc > 2 && (!strcmp(sub, "add") || !strcmp(sub, "import")) &&
        !strcmp(argv[argc - 1], "--starter")) {
        starter = true;
        argc--;
    }
    if (!strcmp(sub, "list") && argc <= 2) {
        json_t *j = cli_call("GET", "/v1/kb/articles", NULL, &rc);
        if (j && !cli_json_out) {
            static const char *const heads[] = {"SLUG",     "LANG",    "AUDIENCE", "ORIGIN",
                                                "PASSAGES", "UPDATED", "TITLE"};
            struct cli_table t;
            cli_table_init(&t, 7, heads);
            size_t i;
            json_t *a;
            json_array_foreach(cli_jget(j, "articles"), i, a)
            {
                char when[40], np[24];
                cli_time(cli_jint(a, "updated_at"), when, sizeof when);
                ml_snprintf(np, sizeof np, "%lld", cli_jint(a, "passages"));
                const char *row[] = {cli_jstr(a, "slug"),
                                     cli_jstr(a, "language"),
                                     cli_jstr(a, "audience"),
                                     cli_jstr(a, "origin"),
                                     np,
                                     when,
                                     cli_jstr(a, "title")};
                cli_table_row(&t, row);
            }
            printf("%lld article%s\n", cli_jint(j, "count"), cli_jint(j, "count") == 1 ? "" : "s");
            if (t.rows)
                cli_table_print(&t, stdout);
            cli_table_free(&t);
        }
        json_decref(j);
        return rc;
    }
    if (!strcmp(sub, "show") && argc == 3) {
        char slug[400], path[480];
        cli_url_encode(argv[2], slug, sizeof slug);
        ml_snprintf(path, sizeof path, "/v1/kb/articles/%s", slug);
        json_t *j = cli_call("GET", path, NULL, &rc);
        if (j && !cli_json_out)
            printf("# %s\n(%s, %s, %s)\n\n%s", cli_jstr(j, "title"), cli_jstr(j, "language"),
                   cli_jstr(j, "audience"), cli_jstr(j, "origin"),
                   cli_jstr(j, "body_md") ? cli_jstr(j, "body_md") : "");
        json_decref(j);
        return rc;
    }
    if (!strcmp(sub, "add") && argc == 3) {
        unsigned counts[4] = {0};
        return kb_add_file(argv[2], starter, counts);
    }
    if (!strcmp(sub, "import") && argc == 3) {
        unsigned counts[4] = {0}, files = 0;
        kb_import_dir(argv[2], 0, starter, counts, &rc, &files);
        if (!cli_json_out)
            printf("%u file%s: %u created, %u updated, %u unchanged, %u kept (edited by an "
                   "operator)%s\n",
                   files, files == 1 ? "" : "s", counts[0], counts[1], counts[2], counts[3],
                   rc ? "; some failed" : "");
        return rc;
    }
    if ((!strcmp(sub, "rm") || !strcmp(sub, "delete")) && argc == 3) {
        char slug[400], path[480];
        cli_url_encode(argv[2], slug, sizeof slug);
        ml_snprintf(path, sizeof path, "/v1/kb/articles/%s", slug);
        json_t *j = cli_call("DELETE", path, NULL, &rc);
        if (j && !cli_json_out)
            printf("article %s deleted\n", argv[2]);
        json_decref(j);
        return rc;
    }
    if (!strcmp(sub, "gaps")) {
        static const struct option o[] = {{"days", required_argument, NULL, 'd'},
                                          {"limit", required_argument, NULL, 'l'},
                                          {NULL, 0, NULL, 0}};
        long long days = 30, limit = 50;
        int c;
        argc--; /* "gaps" is argv[0] now */
        argv++;
        optind = 0;
        while ((c = getopt_long(argc, argv, "d:l:", o, NULL)) != -1) {
            long long *v = c == 'd' ? &days : c == 'l' ? &limit : NULL;
            if (!v || ml_parse_ll(optarg, 1, c == 'd' ? 3650 : 1000, v) < 0) {
                fprintf(stderr, "usage: meetlite-admin kb gaps [--days 1..3650] "
                                "[--limit 1..1000]\n");
                return CLI_EXIT_USAGE;
            }
        }
        if (optind != argc) {
            fprintf(stderr, "usage: meetlite-admin kb gaps [--days N] [--limit N]\n");
            return CLI_EXIT_USAGE;
        }
        char path[96];
        ml_snprintf(path, sizeof path, "/v1/kb/gaps?days=%lld&limit=%lld", days, limit);
        json_t *j = cli_call("GET", path, NULL, &rc);
        if (j && !cli_json_out) {
            static const char *const heads[] = {"ASKED",   "ACCOUNTS",   "BEST",
                                                "CLOSEST", "LAST ASKED", "QUESTION"};
            struct cli_table t;
            cli_table_init(&t, 6, heads);
            size_t i;
            json_t *g;
            json_array_foreach(cli_jget(j, "gaps"), i, g)
            {
                char asked[24], acc[24], best[24], when[40];
                ml_snprintf(asked, sizeof asked, "%lld", cli_jint(g, "asked"));
                ml_snprintf(acc, sizeof acc, "%lld", cli_jint(g, "accounts"));
                json_t *b = cli_jget(g, "best_score");
                ml_snprintf(best, sizeof best, "%.2f",
                            json_is_number(b) ? json_number_value(b) : 0);
                cli_time(cli_jint(g, "last_asked"), when, sizeof when);
                const char *closest = cli_jstr(g, "closest_article");
                const char *row[] = {
                    asked, acc, best, closest ? closest : "-", when, cli_jstr(g, "question")};
                cli_table_row(&t, row);
            }
            printf("%zu unanswered question%s in the last %lld day%s\n",
                   json_array_size(cli_jget(j, "gaps")),
                   json_array_size(cli_jget(j, "gaps")) == 1 ? "" : "s", days,
                   days == 1 ? "" : "s");
            if (t.rows)
                cli_table_print(&t, stdout);
            cli_table_free(&t);
        }
        json_decref(j);
        return rc;
    }
    fprintf(stderr, "usage: meetlite-admin kb [list | show SLUG | add FILE [--starter] | "
                    "import DIR [--starter] | rm SLUG | gaps [--days N] [--limit N]]\n");
    return CLI_EXIT_USAGE;
}
