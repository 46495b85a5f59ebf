/* mlload reflect mode: a minimal Binding responder that measures the generator's ceiling. */
#include "config.h"

#include "tests/bench/mlload.h"

#include "common/common.h"
#include "stun/stun.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define RESP_MAX 64 /* bytes: header + XOR-MAPPED-ADDRESS (IPv6) */

struct reflector {
    struct sockaddr_storage from[LD_BATCH];
    struct mmsghdr tx_msg[LD_BATCH];
    struct iovec tx_iov[LD_BATCH];
    uint8_t tx_buf[LD_BATCH][RESP_MAX];
};

static int reflect_socket(const struct ld_opts *o)
{
    int fd = socket(o->server.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "mlload: socket: %s\n", strerror(errno));
        return -1;
    }
    int one = 1;
    /* one socket per thread on the same port: the kernel spreads the clients */
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    int buf = (int)(o->sockbuf ? o->sockbuf : 4u << 20);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    /* a blocking receive that still looks at the stop flag ten times a second */
    struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (bind(fd, (const struct sockaddr *)&o->server, o->server_len) < 0) {
        fprintf(stderr, "mlload: bind: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int ld_reflect_thread(struct ld_thread *t)
{
    const struct ld_opts *o = t->o;
    struct ld_stats *st = &t->st;
    struct reflector *r = calloc(1, sizeof *r);
    int fd = r ? reflect_socket(o) : -1;
    int64_t now = ml_now_us();
    int64_t t0 = ld_gate(t, NULL, now);
    if (fd < 0) {
        free(r);
        return -1;
    }
    int64_t end = t0 + (int64_t)(o->duration_s * 1e6);
    if (end > t->run->hard_end_us)
        end = t->run->hard_end_us;
    st->run_start_us = t0;
    int64_t cpu0 = ld_thread_cpu_ns();
    while (!ld_stopping() && ml_now_us() < end) {
        for (unsigned i = 0; i < LD_BATCH; i++) {
            t->rx_iov[i].iov_base = t->rx_buf[i];
            t->rx_iov[i].iov_len = LD_PKT_MAX;
            t->rx_msg[i].msg_hdr = (struct msghdr){
                .msg_name = &r->from[i],
                .msg_namelen = sizeof r->from[i],
                .msg_iov = &t->rx_iov[i],
                .msg_iovlen = 1,
            };
        }
        int n = recvmmsg(fd, t->rx_msg, LD_BATCH, MSG_WAITFORONE, NULL);
        if (n <= 0)
            continue; /* timeout or signal: look at the clock and the flag */
        st->received += (uint64_t)n;
        unsigned k = 0;
        for (int i = 0; i < n; i++) {
            struct stun_msg m;
            if (stun_msg_parse(&m, t->rx_buf[i], t->rx_msg[i].msg_len, NULL) < 0 ||
                m.cls != STUN_REQUEST || m.method != STUN_BINDING) {
                st->invalid++;
                continue;
            }
            struct stun_builder b;
            stun_build_reply(&b, r->tx_buf[k], RESP_MAX, &m, STUN_SUCCESS);
            stun_build_xaddr(&b, STUN_ATTR_XOR_MAPPED_ADDRESS,
                             (const struct sockaddr *)&r->from[i]);
            r->tx_iov[k].iov_base = r->tx_buf[k];
            r->tx_iov[k].iov_len = stun_build_finish(&b);
            r->tx_msg[k].msg_hdr = (struct msghdr){
                .msg_name = &r->from[i],
                .msg_namelen = t->rx_msg[i].msg_hdr.msg_namelen,
                .msg_iov = &r->tx_iov[k],
                .msg_iovlen = 1,
            };
            k++;
        }
        for (unsigned done = 0; done < k;) {
            int w = sendmmsg(fd, r->tx_msg + done, k - done, 0);
            if (w <= 0) {
                st->send_err += k - done;
                break;
            }
            done += (unsigned)w;
            st->sent += (uint64_t)w;
        }
    }
    st->run_end_us = ml_now_us();
    st->run_cpu_ns = ld_thread_cpu_ns() - cpu0;
    close(fd);
    free(r);
    return 0;
}
