/* Forks a child that execs the program named in argv[1] (with the rest of the arguments);
 * waits for it and exits with its status. The child allocates 2,000 bytes before its exec;
 * the parent 1,000. No stdio. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    char *mine = malloc(1000);
    memset(mine, 1, 1000);
    pid_t c = fork();
    if (c == 0) {
        char *before = malloc(2000);
        memset(before, 1, 2000);
        execv(argv[1], argv + 1);
        _exit(127);
    }
    int st;
    if (waitpid(c, &st, 0) != c || !WIFEXITED(st))
        return 3;
    return WEXITSTATUS(st);
}
