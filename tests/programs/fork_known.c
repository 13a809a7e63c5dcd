/* --follow-fork: the parent keeps 3 x 3001 bytes from parent_work before and after a fork; the
 * child keeps 4 x 1001 bytes from child_work and frees 2 x 2002 from child_temp, then _exits.
 * Sizes no one else allocates, so each capture's rows say whose they are. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

void *volatile keep[16];

__attribute__((noinline)) void parent_work(int at) {
    keep[at] = malloc(3001);
}

__attribute__((noinline)) void child_work(int at) {
    keep[at] = malloc(1001);
}

__attribute__((noinline)) void child_temp(void) {
    void *volatile p = malloc(2002);
    free(p);
}

int main(void) {
    parent_work(0);
    parent_work(1);
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 4; i++)
            child_work(4 + i);
        child_temp();
        child_temp();
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    parent_work(2);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
