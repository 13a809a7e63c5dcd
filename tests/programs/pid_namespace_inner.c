/* memtrace's --follow-fork test of a fork made inside a pid namespace: a child makes a pid
 * namespace of its own (unshare(CLONE_NEWPID)) and forks its first process (pid 1 there), which
 * forks a grandchild of its own (pid 2 there) that allocates 2000 blocks of 100 bytes and keeps
 * them. Exit status 3 where no namespace can be made (no CAP_SYS_ADMIN). */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static int wait_for(pid_t pid) {
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return 1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

int main(void) {
    pid_t child = fork();
    if (child == 0) {
        if (unshare(CLONE_NEWPID) != 0)
            _exit(3);
        pid_t first = fork();
        if (first == 0) {
            pid_t inner = fork();
            if (inner == 0) {
                for (int i = 0; i < 2000; i++) {
                    volatile char *p = malloc(100);
                    p[0] = 1;
                }
                printf("inner is pid %d in its namespace\n", getpid());
                fflush(stdout);
                exit(0);
            }
            _exit(wait_for(inner));
        }
        _exit(wait_for(first));
    }
    return wait_for(child);
}
