/* memtrace's --follow-fork test of a process family across pid namespaces: three children each
 * make a pid namespace of their own (unshare(CLONE_NEWPID)) and fork a grandchild there, the
 * first process of that namespace (pid 1 in it), which allocates (k + 1) * 1000 blocks of 100
 * bytes and keeps them. Exit status 3 where no namespace can be made (no CAP_SYS_ADMIN). */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    for (int k = 0; k < 3; k++) {
        pid_t child = fork();
        if (child == 0) {
            if (unshare(CLONE_NEWPID) != 0)
                _exit(3);
            pid_t grandchild = fork();
            if (grandchild == 0) {
                for (int i = 0; i < 1000 * (k + 1); i++) {
                    volatile char *p = malloc(100);
                    p[0] = 1;
                }
                printf("grandchild %d is pid %d in its namespace\n", k, getpid());
                fflush(stdout);
                exit(0);
            }
            int st;
            waitpid(grandchild, &st, 0);
            _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 1);
        }
        int st;
        waitpid(child, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
    }
    return 0;
}
