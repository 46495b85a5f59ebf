/* The configuration engine: one declarative table of keys drives defaults, INI parsing (inih),
 * --set overrides, --help, dumps and reload comparisons. Subsystems own their tables. */
#include "config.h"

#include "common/common.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *type_name(enum ml_cfg_type t)
{
    switch (t) {
    case ML_CFG_BOOL:
        return "bool";
    case ML_CFG_INT:
        return "int";
    case ML_CFG_DURATION:
        return "duration";
    case ML_CFG_SIZE:
        return "size";
    case ML_CFG_STR:
        return "string";
    case ML_CFG_ENUM:
        return "enum";
    }
    return "?";
}

static void *field(const struct ml_cfg_section *sec, const struct ml_cfg_key *k, const void *cfg)
{
    return (char *)cfg + sec->offset + k->offset;
}

static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"1", "yes", "true", "on"};
    static const char *const no[] = {"0", "no", "false", "off"};
    for (size_t i = 0; i < ML_ARRAY_LEN(yes); i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* A number with an optional unit suffix; mult_for returns the multiplier of a suffix, 0 if
 * unknown. */
static int parse_scaled(const char *v, long long (*mult_for)(const char *), long long *out)
{
    errno = 0;
    char *end;
    long long n = strtoll(v, &end, 10);
    if (end == v || errno)
        return -1;
    while (*end == ' ')
        end++;
    long long mult = 1;
    if (*end) {
        mult = mult_for(end);
        if (!mult)
            return -1;
    }
    if (n != 0 && (n > LLONG_MAX / mult || n < LLONG_MIN / mult))
        return -1;
    *out = n * mult;
    return 0;
}

static long long duration_mult(const char *s)
{
    if (!strcmp(s, "s"))
        return 1;
    if (!strcmp(s, "m") || !strcmp(s, "min"))
        return 60;
    if (!strcmp(s, "h"))
        return 3600;
    if (!strcmp(s, "d"))
        return 86400;
    return 0;
}

static long long size_mult(const char *s)
{
    if (!strcasecmp(s, "b"))
        return 1;
    if (!strcasecmp(s, "k") || !strcasecmp(s, "kb") || !strcasecmp(s, "kib"))
        return 1024LL;
    if (!strcasecmp(s, "m") || !strcasecmp(s, "mb") || !strcasecmp(s, "mib"))
        return 1024LL * 1024;
    if (!strcasecmp(s, "g") || !strcasecmp(s, "gb") || !strcasecmp(s, "gib"))
        return 1024LL * 1024 * 1024;
    return 0;
}

static int set_value(const struct ml_cfg_section *sec, const struct ml_cfg_key *k, void *cfg,
                     const char *value, char *err, size_t errlen)
{
    void *f = field(sec, k, cfg);
    if (k->validate) {
        char why[256] = "";
        if (k->validate(value, why, sizeof why) < 0)
            return ml_err(err, errlen, "%s.%s: %s", sec->name, k->name,
                          why[0] ? why : "invalid value");
    }
    switch (k->type) {
    case ML_CFG_BOOL: {
        bool b;
        if (parse_bool(value, &b) < 0)
            return ml_err(err, errlen, "%s.%s: expected yes or no, got \"%s\"", sec->name, k->name,
                          value);
        *(bool *)f = b;
        return 0;
    }
    case ML_CFG_INT:
    case ML_CFG_DURATION:
    case ML_CFG_SIZE: {
        long long n;
        int rc = k->type == ML_CFG_INT        ? ml_parse_ll(value, LLONG_MIN, LLONG_MAX, &n)
                 : k->type == ML_CFG_DURATION ? parse_scaled(value, duration_mult, &n)
                                              : parse_scaled(value, size_mult, &n);
        if (rc < 0)
            return ml_err(err, errlen, "%s.%s: \"%s\" is not a valid %s", sec->name, k->name, value,
                          type_name(k->type));
        if (n < k->min || n > k->max)
            return ml_err(err, errlen, "%s.%s: %lld is outside %lld..%lld", sec->name, k->name, n,
                          k->min, k->max);
        *(long long *)f = n;
        return 0;
    }
    case ML_CFG_STR: {
        char **s = f;
        char *copy = NULL;
        if (*value) {
            copy = strdup(value);
            if (!copy)
                return ml_err(err, errlen, "out of memory");
        }
        if ((long long)strlen(value) > k->max && k->max > 0) {
            free(copy);
            return ml_err(err, errlen, "%s.%s: longer than %lld bytes", sec->name, k->name, k->max);
        }
        free(*s);
        *s = copy;
        return 0;
    }
    case ML_CFG_ENUM:
        for (int i = 0; k->enums && k->enums[i]; i++) {
            if (strcasecmp(value, k->enums[i]) == 0) {
                *(int *)f = i;
                return 0;
            }
        }
        return ml_err(err, errlen, "%s.%s: \"%s\" is not one of the allowed values", sec->name,
                      k->name, value);
    }
    return ml_err(err, errlen, "%s.%s: bad key type", sec->name, k->name);
}

const struct ml_cfg_key *ml_cfg_find(const struct ml_cfg_section *const *secs, const char *section,
                                     const char *key, const struct ml_cfg_section **sec_out)
{
    for (size_t i = 0; secs[i]; i++) {
        if (strcmp(secs[i]->name, section) != 0)
            continue;
        for (const struct ml_cfg_key *k = secs[i]->keys; k->name; k++) {
            if (strcmp(k->name, key) == 0) {
                if (sec_out)
                    *sec_out = secs[i];
                return k;
            }
        }
    }
    return NULL;
}

int ml_cfg_defaults(const struct ml_cfg_section *const *secs, void *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; secs[i]; i++)
        for (const struct ml_cfg_key *k = secs[i]->keys; k->name; k++)
            if (set_value(secs[i], k, cfg, k->def ? k->def : "", err, errlen) < 0)
                return -1;
    return 0;
}

int ml_cfg_set(const struct ml_cfg_section *const *secs, void *cfg, const char *section,
               const char *key, const char *value, char *err, size_t errlen)
{
    const struct ml_cfg_section *sec;
    const struct ml_cfg_key *k = ml_cfg_find(secs, section, key, &sec);
    if (!k)
        return ml_err(err, errlen, "unknown key %s.%s (meetlited --help lists them)", section, key);
    return set_value(sec, k, cfg, value, err, errlen);
}

int ml_cfg_set_arg(const struct ml_cfg_section *const *secs, void *cfg, const char *arg, char *err,
                   size_t errlen)
{
    const char *eq = strchr(arg, '=');
    const char *dot = strchr(arg, '.');
    if (!eq || !dot || dot > eq)
        return ml_err(err, errlen, "--set expects section.key=value, got \"%s\"", arg);
    char section[64], key[64];
    size_t slen = (size_t)(dot - arg), klen = (size_t)(eq - dot - 1);
    if (slen == 0 || slen >= sizeof section || klen == 0 || klen >= sizeof key)
        return ml_err(err, errlen, "--set expects section.key=value, got \"%s\"", arg);
    memcpy(section, arg, slen);
    section[slen] = 0;
    memcpy(key, dot + 1, klen);
    key[klen] = 0;
    return ml_cfg_set(secs, cfg, section, key, eq + 1, err, errlen);
}

struct load_ctx {
    const struct ml_cfg_section *const *secs;
    void *cfg;
    char *err;
    size_t errlen;
    bool failed;
    /* the previous key, so that an indented continuation line appends to a list */
    char last_section[64];
    char last_key[64];
};

static int on_ini_line(void *user, const char *section, const char *name, const char *value)
{
    struct load_ctx *c = user;
    char msg[256];
    const struct ml_cfg_section *sec;
    const struct ml_cfg_key *k = ml_cfg_find(c->secs, section, name, &sec);
    int rc;
    if (!k) {
        ml_snprintf(msg, sizeof msg, "unknown key %s.%s", section, name);
        rc = -1;
    } else if (k->type == ML_CFG_STR && (k->flags & ML_CFG_LIST) &&
               !strcmp(c->last_section, section) && !strcmp(c->last_key, name)) {
        /* inih calls us again with the same name for a continuation line (and for the same key
         * repeated on the next line: it cannot tell them apart), so only lists join them;
         * any other key takes the last value. */
        const char *prev = *(char **)field(sec, k, c->cfg);
        size_t need = (prev ? strlen(prev) : 0) + strlen(value) + 3;
        char *joined = malloc(need);
        if (!joined)
            return 0;
        size_t plen = prev ? strlen(prev) : 0;
        const char *sep = !prev ? "" : (plen && prev[plen - 1] == ',') ? " " : ", ";
        ml_snprintf(joined, need, "%s%s%s", prev ? prev : "", sep, value);
        rc = set_value(sec, k, c->cfg, joined, msg, sizeof msg);
        free(joined);
    } else {
        rc = set_value(sec, k, c->cfg, value, msg, sizeof msg);
    }
    ml_strlcpy(c->last_section, section, sizeof c->last_section);
    ml_strlcpy(c->last_key, name, sizeof c->last_key);
    if (rc < 0 && !c->failed) {
        c->failed = true;
        ml_strlcpy(c->err, msg, c->errlen);
    }
    return rc < 0 ? 0 : 1;
}

int ml_cfg_load_file(const struct ml_cfg_section *const *secs, void *cfg, const char *path,
                     char *err, size_t errlen)
{
    struct load_ctx c = {.secs = secs, .cfg = cfg, .err = err, .errlen = errlen};
    char msg[256] = "";
    c.err = msg;
    c.errlen = sizeof msg;
    int rc = ini_parse(path, on_ini_line, &c);
    if (rc == -1)
        return ml_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    if (rc == -2)
        return ml_err(err, errlen, "%s: out of memory", path);
    if (rc > 0)
        return ml_err(err, errlen, "%s:%d: %s", path, rc, msg[0] ? msg : "syntax error");
    return 0;
}

void ml_cfg_free(const struct ml_cfg_section *const *secs, void *cfg)
{
    for (size_t i = 0; secs[i]; i++)
        for (const struct ml_cfg_key *k = secs[i]->keys; k->name; k++)
            if (k->type == ML_CFG_STR) {
                char **s = field(secs[i], k, cfg);
                free(*s);
                *s = NULL;
            }
}

void ml_cfg_format(const struct ml_cfg_section *sec, const struct ml_cfg_key *k, const void *cfg,
                   char *buf, size_t len)
{
    const void *f = field(sec, k, cfg);
    switch (k->type) {
    case ML_CFG_BOOL:
        ml_strlcpy(buf, *(const bool *)f ? "yes" : "no", len);
        break;
    case ML_CFG_INT:
    case ML_CFG_DURATION:
    case ML_CFG_SIZE:
        ml_snprintf(buf, len, "%lld", *(const long long *)f);
        break;
    case ML_CFG_STR: {
        const char *s = *(char *const *)f;
        if (k->flags & ML_CFG_SECRET)
            ml_strlcpy(buf, s ? "(set)" : "", len);
        else
            ml_strlcpy(buf, s ? s : "", len);
        break;
    }
    case ML_CFG_ENUM:
        ml_strlcpy(buf, k->enums[*(const int *)f], len);
        break;
    }
}

bool ml_cfg_differs(const struct ml_cfg_section *sec, const struct ml_cfg_key *k, const void *a,
                    const void *b)
{
    const void *fa = field(sec, k, a), *fb = field(sec, k, b);
    switch (k->type) {
    case ML_CFG_BOOL:
        return *(const bool *)fa != *(const bool *)fb;
    case ML_CFG_INT:
    case ML_CFG_DURATION:
    case ML_CFG_SIZE:
        return *(const long long *)fa != *(const long long *)fb;
    case ML_CFG_STR: {
        const char *sa = *(char *const *)fa, *sb = *(char *const *)fb;
        return !sa != !sb || (sa && strcmp(sa, sb) != 0);
    }
    case ML_CFG_ENUM:
        return *(const int *)fa != *(const int *)fb;
    }
    return false;
}

void ml_cfg_move(const struct ml_cfg_section *sec, const struct ml_cfg_key *k, void *dst, void *src)
{
    void *fd = field(sec, k, dst), *fs = field(sec, k, src);
    switch (k->type) {
    case ML_CFG_BOOL:
        *(bool *)fd = *(bool *)fs;
        break;
    case ML_CFG_INT:
    case ML_CFG_DURATION:
    case ML_CFG_SIZE:
        *(long long *)fd = *(long long *)fs;
        break;
    case ML_CFG_STR:
        free(*(char **)fd);
        *(char **)fd = *(char **)fs;
        *(char **)fs = NULL;
        break;
    case ML_CFG_ENUM:
        *(int *)fd = *(int *)fs;
        break;
    }
}

/* Whether the credential source of key k (k and its "-file" form, in the same section) holds a
 * value in cfg. */
static bool source_set(const struct ml_cfg_section *sec, const struct ml_cfg_key *k,
                       const void *cfg)
{
    size_t base = strlen(k->name);
    if (base > 5 && !strcmp(k->name + base - 5, "-file"))
        base -= 5;
    for (const struct ml_cfg_key *o = sec->keys; o->name; o++) {
        if (!(o->flags & ML_CFG_CREDENTIAL) || o->type != ML_CFG_STR ||
            strncmp(o->name, k->name, base) != 0 ||
            (o->name[base] && strcmp(o->name + base, "-file") != 0))
            continue;
        if (*(char *const *)field(sec, o, cfg))
            return true;
    }
    return false;
}

/* Appends "sep name" to a list being built in buf. */
static void list_add(char *buf, size_t len, const char *sec, const char *key)
{
    size_t used = strlen(buf);
    if (used < len)
        ml_snprintf(buf + used, len - used, "%s%s.%s", used ? ", " : "", sec, key);
}

int ml_cfg_reload_check(const struct ml_cfg_section *const *secs, const void *cur, const void *next,
                        char *err, size_t errlen)
{
    char restart[512] = "", emptied[512] = "";
    for (size_t i = 0; secs[i]; i++) {
        const struct ml_cfg_section *sec = secs[i];
        for (const struct ml_cfg_key *k = sec->keys; k->name; k++) {
            if (!(k->flags & ML_CFG_RELOAD) && ml_cfg_differs(sec, k, cur, next))
                list_add(restart, sizeof restart, sec->name, k->name);
            if ((k->flags & ML_CFG_CREDENTIAL) && source_set(sec, k, cur) &&
                !source_set(sec, k, next) && ml_cfg_differs(sec, k, cur, next))
                list_add(emptied, sizeof emptied, sec->name, k->name);
        }
    }
    if (!restart[0] && !emptied[0])
        return 0;
    return ml_err(err, errlen, "%s%s%s%s%s", restart[0] ? "restart-only keys changed: " : "",
                  restart, restart[0] && emptied[0] ? "; " : "",
                  emptied[0] ? "credential sources would become empty: " : "", emptied);
}

/* ---------------------------------------------------------------- secrets read from files */

/* The path of a secret file: absolute as given, relative inside $CREDENTIALS_DIRECTORY. */
int ml_secret_path(const char *name, char *out, size_t len, char *err, size_t errlen)
{
    if (name[0] == '/') {
        if (strlen(name) >= len)
            return ml_err(err, errlen, "path too long");
        ml_strlcpy(out, name, len);
        return 0;
    }
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    if (!dir || !*dir)
        return ml_err(err, errlen,
                      "\"%s\" is a relative path, which names a systemd credential, and "
                      "$CREDENTIALS_DIRECTORY is not set (give an absolute path)",
                      name);
    if (strstr(name, "..") || (size_t)snprintf(out, len, "%s/%s", dir, name) >= len)
        return ml_err(err, errlen, "\"%s\" is not a credential name", name);
    return 0;
}

char *ml_secret_read(const char *path, long long max, bool list, bool *shared, char *err,
                     size_t errlen)
{
    /* O_NONBLOCK: a FIFO put there by mistake must not hang the reload */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        ml_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    char *buf = NULL;
    size_t cap = (size_t)(max > 0 ? max : 65536) + 2, n = 0;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        ml_err(err, errlen, "%s: not a regular file", path);
        goto fail;
    }
    if (shared)
        *shared = (st.st_mode & S_IROTH) != 0;
    buf = malloc(cap + 1);
    if (!buf) {
        ml_err(err, errlen, "out of memory");
        goto fail;
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            ml_err(err, errlen, "%s: cannot read: %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == cap) {
            ml_err(err, errlen, "%s: longer than %lld bytes", path, max);
            goto fail;
        }
    }
    buf[n] = 0;
    if (n && buf[n - 1] == '\n')
        buf[--n] = 0;
    if (n && buf[n - 1] == '\r')
        buf[--n] = 0;
    if (n == 0 || strlen(buf) != n) {
        ml_err(err, errlen, "%s: %s", path, n ? "holds a NUL byte" : "is empty");
        goto fail;
    }
    if (strchr(buf, '\n') && !list) {
        ml_err(err, errlen, "%s: holds more than one line", path);
        goto fail;
    }
    if (list) { /* one item a line: "a\nb" becomes "a, b" (validators trim the spaces) */
        size_t lines = 0;
        for (size_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
        char *joined = malloc(n + lines * 2 + 1);
        if (!joined) {
            ml_err(err, errlen, "out of memory");
            goto fail;
        }
        size_t j = 0;
        for (size_t i = 0; i < n; i++) {
            if (buf[i] == '\r' && buf[i + 1] == '\n')
                continue;
            if (buf[i] == '\n') {
                joined[j++] = ',';
                joined[j++] = ' ';
            } else {
                joined[j++] = buf[i];
            }
        }
        joined[j] = 0;
        ml_wipe(buf, n);
        free(buf);
        buf = joined;
    }
    close(fd);
    return buf;
fail:
    if (buf) {
        ml_wipe(buf, n);
        free(buf);
    }
    close(fd);
    return NULL;
}

/* Fills base (the secret) from the file key fk of section sec. 0 or -1. */
static int resolve_one(const struct ml_cfg_section *sec, const struct ml_cfg_key *fk,
                       const struct ml_cfg_key *base, void *cfg, char *warn, size_t warnlen,
                       char *err, size_t errlen)
{
    char **pathp = field(sec, fk, cfg);
    char **valp = field(sec, base, cfg);
    char path[4096], why[400];
    bool implicit = false;
    if (*pathp && *valp)
        return ml_err(err, errlen,
                      "%s.%s and %s.%s are both set: give the secret one way (the file is "
                      "recommended)",
                      sec->name, base->name, sec->name, fk->name);
    if (*valp)
        return 0;
    if (!*pathp) { /* a systemd credential of the documented name, when there is one */
        const char *dir = getenv("CREDENTIALS_DIRECTORY");
        if (!dir || !*dir ||
            (size_t)snprintf(path, sizeof path, "%s/%s.%s", dir, sec->name, base->name) >=
                sizeof path ||
            access(path, F_OK) < 0)
            return 0;
        implicit = true;
    } else if (ml_secret_path(*pathp, path, sizeof path, why, sizeof why) < 0) {
        return ml_err(err, errlen, "%s.%s: %s", sec->name, fk->name, why);
    }
    bool shared = false;
    char *secret =
        ml_secret_read(path, base->max, (base->flags & ML_CFG_LIST) != 0, &shared, why, sizeof why);
    if (!secret)
        return ml_err(err, errlen, "%s.%s: %s", sec->name, implicit ? base->name : fk->name, why);
    if (shared) {
        size_t used = strlen(warn);
        if (used < warnlen)
            ml_snprintf(warn + used, warnlen - used,
                        "%s%s.%s: %s is readable by every user of this machine (chmod o-r it)",
                        used ? "; " : "", sec->name, fk->name, path);
    }
    /* the validators and the length check never quote a secret's text back */
    int rc = set_value(sec, base, cfg, secret, why, sizeof why);
    ml_wipe(secret, strlen(secret));
    free(secret);
    if (rc < 0)
        return ml_err(err, errlen, "%s (read from %s)", why, path);
    if (implicit) { /* the dump shows where the secret came from */
        free(*pathp);
        *pathp = strdup(path);
        if (!*pathp)
            return ml_err(err, errlen, "out of memory");
    }
    return 0;
}

int ml_cfg_resolve_files(const struct ml_cfg_section *const *secs, void *cfg, char *warn,
                         size_t warnlen, char *err, size_t errlen)
{
    if (warnlen)
        warn[0] = 0;
    for (size_t i = 0; secs[i]; i++) {
        const struct ml_cfg_section *sec = secs[i];
        for (const struct ml_cfg_key *fk = sec->keys; fk->name; fk++) {
            if (!(fk->flags & ML_CFG_FILE))
                continue;
            char base_name[64];
            size_t blen = strlen(fk->name);
            if (blen <= 5 || blen - 5 >= sizeof base_name)
                return ml_err(err, errlen, "%s.%s: bad file key", sec->name, fk->name);
            memcpy(base_name, fk->name, blen - 5);
            base_name[blen - 5] = 0;
            const struct ml_cfg_key *base = ml_cfg_find(secs, sec->name, base_name, NULL);
            if (!base || base->type != ML_CFG_STR)
                return ml_err(err, errlen, "%s.%s: no key %s", sec->name, fk->name, base_name);
            if (resolve_one(sec, fk, base, cfg, warn, warnlen, err, errlen) < 0)
                return -1;
        }
    }
    return 0;
}

void ml_cfg_print_help(const struct ml_cfg_section *const *secs, FILE *out)
{
    for (size_t i = 0; secs[i]; i++) {
        fprintf(out, "\n[%s]\n", secs[i]->name);
        for (const struct ml_cfg_key *k = secs[i]->keys; k->name; k++) {
            fprintf(out, "  %s.%s (%s", secs[i]->name, k->name, type_name(k->type));
            if (k->type == ML_CFG_INT || k->type == ML_CFG_DURATION || k->type == ML_CFG_SIZE)
                fprintf(out, ", %lld..%lld", k->min, k->max);
            if (k->type == ML_CFG_ENUM) {
                fputs(": ", out);
                for (int e = 0; k->enums[e]; e++)
                    fprintf(out, "%s%s", e ? "|" : "", k->enums[e]);
            }
            fprintf(out, "%s)\n      default: %s\n      %s\n",
                    (k->flags & ML_CFG_RELOAD) ? ", reloadable" : "",
                    (k->def && *k->def) ? k->def : "(empty)", k->help);
        }
    }
}

int ml_cfg_validate_name(const char *value, char *err, size_t errlen)
{
    if (*value && !ml_name_valid(value))
        return ml_err(err, errlen, "only letters, digits, '.', '_' and '-' are allowed");
    return 0;
}
