/* The process's own figures from /proc/self: start time, threads, memory, open descriptors and
 * CPU time. Read per request (a few small files): nothing is sampled in the background. */
#include "config.h"

#include "stats/st.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Reads a small file whole into buf (NUL-terminated). Its length, or -1. */
static ssize_t read_small(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = 0;
    return (ssize_t)n;
}

/* The boot time (btime of /proc/stat), seconds since the epoch; 0 when unknown. */
static int64_t boot_time(void)
{
    char buf[8192];
    if (read_small("/proc/stat", buf, sizeof buf) < 0)
        return 0;
    const char *p = strstr(buf, "\nbtime ");
    return p ? strtoll(p + 7, NULL, 10) : 0;
}

static unsigned count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    unsigned n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n ? n - 1 : 0; /* the directory's own descriptor */
}

int st_process_read(struct st_process *p)
{
    char buf[2048];
    int rc = 0;
    p->pid = (long)getpid();
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        p->max_fds = (uint64_t)rl.rlim_cur;
    p->open_fds = count_fds();
    if (read_small("/proc/self/stat", buf, sizeof buf) < 0)
        return -1;
    /* "pid (comm) state ppid ...": comm may hold spaces and parentheses, so fields are counted
     * from the last ')'. After it, field 3 (state) is the first. */
    char *q = strrchr(buf, ')');
    if (!q)
        return -1;
    q++;
    long ticks = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    unsigned long long v[24] = {0};
    unsigned field = 3;
    for (char *save = NULL, *tok = strtok_r(q, " ", &save); tok && field <= 24;
         tok = strtok_r(NULL, " ", &save), field++)
        v[field - 1] = strtoull(tok, NULL, 10);
    if (field <= 24)
        rc = -1;
    /* fields (1-based, proc(5)): 14 utime, 15 stime, 20 num_threads, 22 starttime, 23 vsize,
     * 24 rss */
    if (ticks > 0) {
        p->cpu_user_s = (double)v[13] / (double)ticks;
        p->cpu_system_s = (double)v[14] / (double)ticks;
        int64_t bt = boot_time();
        if (bt > 0)
            p->start_s = bt + (int64_t)(v[21] / (unsigned long long)ticks);
    }
    p->threads = (unsigned)v[19];
    p->vm_bytes = v[22];
    p->rss_bytes = v[23] * (uint64_t)(page > 0 ? page : 4096);
    if (p->start_s > 0) {
        p->uptime_s = ml_wall_s() - p->start_s;
        if (p->uptime_s < 0)
            p->uptime_s = 0;
    }
    return rc;
}
