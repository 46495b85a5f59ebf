/* uring-send: what one UDP send costs the sending thread as an io_uring IORING_OP_SENDMSG and as
 * IORING_OP_SENDMSG_ZC (zero copy: the kernel pins the pages instead of copying them, and posts
 * a second completion when it lets go), over loopback, for several sizes. meetlited's io_uring
 * path sends with IORING_OP_SENDMSG; this is the measurement behind that choice
 * (docs/benchmarks.md). A receiver thread on another core drains the datagrams.
 *     uring-send [--count N] [--sizes "100 1000 ..."] [--cpu C] [--rx-cpu C] */
#include "config.h"

#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 32
#define MAX_SIZE 65000

static volatile bool rx_stop;
static int rx_fd = -1;
static uint64_t rx_count;

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void pin(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static int rx_cpu = -1;

static void *receiver(void *arg)
{
    (void)arg;
    pin(rx_cpu);
    static uint8_t buf[64][2048];
    struct mmsghdr m[64];
    struct iovec iov[64];
    while (!rx_stop) {
        for (int i = 0; i < 64; i++) {
            iov[i].iov_base = buf[i];
            iov[i].iov_len = sizeof buf[i];
            memset(&m[i], 0, sizeof m[i]);
            m[i].msg_hdr.msg_iov = &iov[i];
            m[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(rx_fd, m, 64, MSG_DONTWAIT, NULL);
        if (n > 0)
            __atomic_add_fetch(&rx_count, (uint64_t)n, __ATOMIC_RELAXED);
    }
    return NULL;
}

/* Sends count datagrams of size bytes in batches of BATCH; returns the sender's CPU per send in
 * ns, or -1. *failed counts sends that completed with an error (a full receive buffer). */
static double run(struct io_uring *ring, int fd, const struct sockaddr_in *to, size_t size,
                  unsigned count, bool zc, unsigned *failed)
{
    static uint8_t payload[BATCH][MAX_SIZE];
    struct iovec iov[BATCH];
    struct msghdr msg[BATCH];
    *failed = 0;
    int64_t c0 = thread_cpu_ns();
    for (unsigned done = 0; done < count;) {
        unsigned n = count - done < BATCH ? count - done : BATCH, pending = 0;
        for (unsigned i = 0; i < n; i++) {
            iov[i].iov_base = payload[i];
            iov[i].iov_len = size;
            memset(&msg[i], 0, sizeof msg[i]);
            msg[i].msg_name = (void *)to;
            msg[i].msg_namelen = sizeof *to;
            msg[i].msg_iov = &iov[i];
            msg[i].msg_iovlen = 1;
            struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
            if (zc)
                io_uring_prep_sendmsg_zc(sqe, fd, &msg[i], MSG_DONTWAIT);
            else
                io_uring_prep_sendmsg(sqe, fd, &msg[i], MSG_DONTWAIT);
            pending++;
        }
        if (io_uring_submit(ring) < 0)
            return -1;
        /* every send completes once, and a zero-copy send once more when its pages are free:
         * the payload buffers are reused only after that */
        while (pending) {
            struct io_uring_cqe *cqe;
            if (io_uring_wait_cqe(ring, &cqe) < 0)
                return -1;
            if (cqe->flags & IORING_CQE_F_NOTIF) {
                pending--;
            } else {
                if (cqe->res < 0)
                    (*failed)++;
                if (!(cqe->flags & IORING_CQE_F_MORE))
                    pending--;
            }
            io_uring_cqe_seen(ring, cqe);
        }
        done += n;
        /* the receiver must keep up: a full buffer is not what is measured */
        while (__atomic_load_n(&rx_count, __ATOMIC_RELAXED) + 4 * BATCH < done - *failed)
            sched_yield();
    }
    return (double)(thread_cpu_ns() - c0) / count;
}

int main(int argc, char **argv)
{
    unsigned count = 200000;
    const char *sizes = "100 500 1000 1400 4000 16000 60000";
    int cpu = -1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--count"))
            count = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--sizes"))
            sizes = argv[i + 1];
        else if (!strcmp(argv[i], "--cpu"))
            cpu = (int)strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--rx-cpu"))
            rx_cpu = (int)strtol(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [--count N] [--sizes LIST] [--cpu C] [--rx-cpu C]\n",
                    argv[0]);
            return 2;
        }
    }
    pin(cpu);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    rx_fd = socket(AF_INET, SOCK_DGRAM, 0);
    int tx = socket(AF_INET, SOCK_DGRAM, 0);
    int big = 16 << 20;
    socklen_t len = sizeof to;
    if (rx_fd < 0 || tx < 0 ||
        (setsockopt(rx_fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) < 0 &&
         setsockopt(rx_fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big) < 0) ||
        bind(rx_fd, (struct sockaddr *)&to, sizeof to) < 0 ||
        getsockname(rx_fd, (struct sockaddr *)&to, &len) < 0) {
        perror("socket");
        return 1;
    }
    struct io_uring ring;
    int rc = io_uring_queue_init(4 * BATCH, &ring, 0);
    if (rc < 0) {
        fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-rc));
        return 1;
    }
    pthread_t th;
    pthread_create(&th, NULL, receiver, NULL);
    printf("%8s %16s %16s %8s\n", "bytes", "sendmsg ns/send", "sendmsg_zc ns", "zc/copy");
    char *list = strdup(sizes);
    for (char *save = NULL, *tok = strtok_r(list, " ,", &save); tok;
         tok = strtok_r(NULL, " ,", &save)) {
        size_t size = strtoul(tok, NULL, 10);
        if (size < 1 || size > MAX_SIZE)
            continue;
        unsigned f1, f2;
        (void)run(&ring, tx, &to, size, count / 10, false, &f1); /* warm-up */
        double copy = run(&ring, tx, &to, size, count, false, &f1);
        double zc = run(&ring, tx, &to, size, count, true, &f2);
        printf("%8zu %16.0f %16.0f %8.2f%s\n", size, copy, zc, zc / copy,
               f1 || f2 ? " (some sends failed)" : "");
    }
    free(list);
    rx_stop = true;
    pthread_join(th, NULL);
    io_uring_queue_exit(&ring);
    return 0;
}
