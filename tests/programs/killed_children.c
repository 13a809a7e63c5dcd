/* memtrace's test of a family whose children are killed: forks 2 children that each allocate
 * 1 MiB and wait to be killed; once both hold it the parent allocates 5 MiB, then SIGKILLs them
 * (8 MiB were live at once; the children's captures end at their 1 MiB). No stdio. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    int ready[2];
    if (pipe(ready) != 0)
        return 2;
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            char *p = malloc(1 << 20);
            memset(p, 1, 1 << 20);
            char c = 1;
            if (write(ready[1], &c, 1) != 1)
                _exit(1);
            for (;;)
                pause();
        }
    }
    char c;
    for (int i = 0; i < 2; i++)
        if (read(ready[0], &c, 1) != 1)
            return 1;
    char *big = malloc(5 << 20);
    memset(big, 1, 5 << 20);
    int killed = 0;
    for (int i = 0; i < 2; i++) {
        int st;
        kill(kids[i], SIGKILL);
        waitpid(kids[i], &st, 0);
        killed += WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
    }
    free(big);
    return killed == 2 ? 0 : 1;
}
