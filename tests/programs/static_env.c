/* Built -static (no loader preloads into it): says whether memtrace's variables reached it,
 * then runs the dynamic program argv[1] (argv[1..] as its command) in a child and waits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    const char *preload = getenv("LD_PRELOAD");
    printf("LD_PRELOAD=%s\n", preload ? preload : "(none)");
    int ours = 0;
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "MEMTRACE_", 9) == 0) {
            ours++;
        }
    }
    printf("MEMTRACE variables: %d\n", ours);
    fflush(stdout);
    if (argc > 1) {
        pid_t child = fork();
        if (child == 0) {
            execv(argv[1], argv + 1);
            _exit(127);
        }
        int status = 0;
        waitpid(child, &status, 0);
        printf("child exited %d\n", WEXITSTATUS(status));
    }
    return 0;
}
