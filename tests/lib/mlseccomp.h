/* A seccomp filter for tests: makes one system call fail with a chosen errno, as a kernel
 * without it (ENOSYS) or a sandbox that forbids it (EPERM) would. Used by the unit tests and by
 * tests/lib/deny-syscall, which runs a command under it. */
#ifndef ML_MLSECCOMP_H
#define ML_MLSECCOMP_H

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>

#if defined(__x86_64__)
#define ML_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ML_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "mlseccomp.h: add this architecture's AUDIT_ARCH"
#endif

/* Installs the filter on the calling thread and the processes it starts (no way back). Other
 * system calls, and calls of another ABI, are allowed. 0 or -1 (errno set). */
static inline int ml_test_deny_syscall(long nr, int err)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ML_AUDIT_ARCH, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = (unsigned short)(sizeof f / sizeof f[0]), .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

#endif
