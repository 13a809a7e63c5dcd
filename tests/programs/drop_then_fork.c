/* Drops its privileges (to user and group 65534, as a daemon does), then forks a child that
   allocates 1,000 blocks and exits 4; prints the child's status and exits 3. Run as root. */
#define _GNU_SOURCE
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    if (setgroups(0, 0) || setgid(65534) || setuid(65534)) {
        perror("drop");
        return 1;
    }
    pid_t c = fork();
    if (c == 0) {
        for (int i = 0; i < 1000; i++) free(malloc(1000));
        _exit(4);
    }
    int st;
    waitpid(c, &st, 0);
    printf("child %d\n", WEXITSTATUS(st));
    return 3;
}
