/* The first process of a pid namespace signals itself: its child (pid 1 in a namespace of its
 * own) allocates 1111 bytes, sends itself SIGTERM at the default action (which the kernel
 * drops for pid 1), then allocates 100 blocks of 2222 bytes, frees 50 and exits 7. Exit status
 * 3 where no namespace can be made (no CAP_SYS_ADMIN). */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    if (unshare(CLONE_NEWPID) != 0)
        return 3;
    pid_t child = fork();
    if (child == 0) {
        void *first = malloc(1111);
        kill(getpid(), SIGTERM);
        printf("pid %d survived SIGTERM\n", getpid());
        fflush(stdout);
        void *blocks[100];
        for (int i = 0; i < 100; i++)
            blocks[i] = malloc(2222);
        for (int i = 0; i < 50; i++)
            free(blocks[i]);
        (void)first;
        exit(7);
    }
    int status = 0;
    waitpid(child, &status, 0);
    printf("child exited %d\n", WEXITSTATUS(status));
    return 0;
}
