/* deny-syscall: runs a command with one system call refused, to test what meetlited does on a
 * kernel without it or in a sandbox that forbids it:
 *     deny-syscall io_uring_setup ENOSYS|EPERM command [args...] */
#include "config.h"

#include "mlseccomp.h"

#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        long nr;
    } calls[] = {
        {"io_uring_setup", SYS_io_uring_setup},
        {"io_uring_enter", SYS_io_uring_enter},
        {"io_uring_register", SYS_io_uring_register},
    };
    if (argc < 4) {
        fprintf(stderr, "usage: %s SYSCALL ENOSYS|EPERM command [args...]\n", argv[0]);
        return 2;
    }
    long nr = -1;
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
        if (strcmp(argv[1], calls[i].name) == 0)
            nr = calls[i].nr;
    int err = strcmp(argv[2], "EPERM") == 0 ? EPERM : strcmp(argv[2], "ENOSYS") == 0 ? ENOSYS : 0;
    if (nr < 0 || !err) {
        fprintf(stderr, "%s: unknown system call or errno\n", argv[0]);
        return 2;
    }
    if (ml_test_deny_syscall(nr, err) < 0) {
        perror("seccomp");
        return 1;
    }
    execvp(argv[3], argv + 3);
    perror(argv[3]);
    return 127;
}
