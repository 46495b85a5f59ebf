/* Logging: whole lines to stderr (text or JSON, with the journal's priority prefix when stderr
 * is the journal) or syslog, with time, level, thread and subsystem, and a per-site budget for
 * lines that a remote peer can trigger. */
#include "config.h"

#include "common/common.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

int ml_log_level_cur = ML_LOG_INFO;
static bool log_syslog;
static bool log_journal;             /* stderr is the journal: "<N>" prefixes */
static int log_format = ML_LOG_TEXT; /* atomic: set on SIGHUP while threads log */
static char log_ident[32] = "meetlited";
static __thread char log_thread[16];

static const char *const level_names[] = {"error", "warn", "notice", "info", "debug"};
static const int level_syslog[] = {LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG};

/* JOURNAL_STREAM is "<device>:<inode>" of the stream systemd connected stderr to; a child whose
 * stderr was redirected since inherits the variable, so the numbers must match stderr's. */
static bool stderr_is_journal(void)
{
    const char *v = getenv("JOURNAL_STREAM");
    struct stat st;
    unsigned long long dev, ino;
    char tail;
    if (!v || sscanf(v, "%llu:%llu%c", &dev, &ino, &tail) != 2 || fstat(STDERR_FILENO, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

bool ml_log_to_journal(void)
{
    return log_journal;
}

void ml_log_set_format(enum ml_log_format format)
{
    __atomic_store_n(&log_format, (int)format, __ATOMIC_RELAXED);
}

void ml_log_open(const char *ident, bool to_syslog)
{
    log_journal = stderr_is_journal();
    if (ident)
        ml_strlcpy(log_ident, ident, sizeof log_ident);
    if (log_syslog && !to_syslog)
        closelog();
    log_syslog = to_syslog;
    if (to_syslog)
        openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void ml_log_close(void)
{
    if (log_syslog)
        closelog();
    log_syslog = false;
}

void ml_log_set_level(enum ml_log_level level)
{
    __atomic_store_n(&ml_log_level_cur, (int)level, __ATOMIC_RELAXED);
}

enum ml_log_level ml_log_get_level(void)
{
    return (enum ml_log_level)__atomic_load_n(&ml_log_level_cur, __ATOMIC_RELAXED);
}

int ml_log_level_parse(const char *name)
{
    for (size_t i = 0; i < ML_ARRAY_LEN(level_names); i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return (int)i;
    if (strcasecmp(name, "warning") == 0)
        return ML_LOG_WARN;
    return -1;
}

const char *ml_log_level_name(enum ml_log_level level)
{
    if ((unsigned)level >= ML_ARRAY_LEN(level_names))
        return "?";
    return level_names[level];
}

void ml_log_set_thread(const char *name)
{
    ml_strlcpy(log_thread, name ? name : "", sizeof log_thread);
}

/* s into out as the inside of a JSON string (", \\ escaped; control characters were replaced
 * already); cut to fit. */
static void json_str(char *out, size_t len, const char *s)
{
    size_t o = 0;
    for (; *s && o + 3 < len; s++) {
        if (*s == '"' || *s == '\\')
            out[o++] = '\\';
        out[o++] = *s;
    }
    out[o] = 0;
}

static void emit(enum ml_log_level level, const char *subsys, const struct ml_log_field *fields,
                 size_t nfields, const char *fmt, va_list ap)
{
    int saved = errno;
    char msg[2048];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    if (n < 0)
        ml_strlcpy(msg, "(unformattable log message)", sizeof msg);
    /* Control characters from the network never reach the terminal or syslog raw. */
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    const char *th = log_thread[0] ? log_thread : "-";
    if (log_syslog) {
        syslog(level_syslog[level], "%s [%s] %s: %s", level_names[level], th, subsys, msg);
        errno = saved;
        return;
    }
    struct timespec ts;
    struct tm tm;
    char stamp[40], prio[8] = "";
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    if (log_journal)
        ml_snprintf(prio, sizeof prio, "<%d>", level_syslog[level]);
    if (__atomic_load_n(&log_format, __ATOMIC_RELAXED) == ML_LOG_JSON) {
        char esc[4200], extra[2048] = "", v[600];
        size_t used = 0;
        json_str(esc, sizeof esc, msg);
        for (size_t i = 0; i < nfields && used < sizeof extra; i++) {
            const struct ml_log_field *f = &fields[i];
            if (f->str && !*f->str)
                continue; /* absent */
            if (f->str) {
                char clean[300];
                ml_strlcpy(clean, f->str, sizeof clean);
                for (char *p = clean; *p; p++)
                    if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        *p = '?';
                json_str(v, sizeof v, clean);
                n = snprintf(extra + used, sizeof extra - used, ",\"%s\":\"%s\"", f->key, v);
            } else {
                n = snprintf(extra + used, sizeof extra - used, ",\"%s\":%lld", f->key, f->num);
            }
            if (n < 0 || (size_t)n >= sizeof extra - used) {
                extra[used] = 0; /* a field that does not fit is left out whole */
                break;
            }
            used += (size_t)n;
        }
        fprintf(stderr,
                "%s{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"pid\":%d,\"thread\":\"%s\","
                "\"subsystem\":\"%s\",\"msg\":\"%s\"%s}\n",
                prio, stamp, ts.tv_nsec / 1000000L, level_names[level], (int)getpid(), th, subsys,
                esc, extra);
    } else {
        /* One fprintf per line: stdio locks the stream, so lines from threads never interleave. */
        fprintf(stderr, "%s%s.%03ldZ %s[%d] %s [%s] %s: %s\n", prio, stamp, ts.tv_nsec / 1000000L,
                log_ident, (int)getpid(), level_names[level], th, subsys, msg);
    }
    errno = saved;
}

void ml_vlog(enum ml_log_level level, const char *subsys, const char *fmt, va_list ap)
{
    if (!ml_log_enabled(level))
        return;
    emit(level, subsys, NULL, 0, fmt, ap);
}

void ml_log_fields(enum ml_log_level level, const char *subsys, const struct ml_log_field *fields,
                   size_t nfields, const char *fmt, ...)
{
    if (!ml_log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(level, subsys, fields, nfields, fmt, ap);
    va_end(ap);
}

void ml_log(enum ml_log_level level, const char *subsys, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ml_vlog(level, subsys, fmt, ap);
    va_end(ap);
}

bool ml_log_limit_pass(struct ml_log_limit *lim, enum ml_log_level level, const char *subsys)
{
    int64_t now = ml_now_ms();
    if (now - lim->window_ms >= 1000) {
        if (lim->suppressed)
            ml_log(level, subsys, "%u similar messages suppressed in the last second",
                   lim->suppressed);
        lim->window_ms = now;
        lim->lines = 0;
        lim->suppressed = 0;
    }
    if (lim->lines < ML_LOG_BURST) {
        lim->lines++;
        return true;
    }
    lim->suppressed++;
    return false;
}
