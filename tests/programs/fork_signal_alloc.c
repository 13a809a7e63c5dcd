/* A single-threaded program whose SIGCHLD handler allocates while it forks: a child that exits
 * at once signals its parent while the parent's next fork() runs, often between the fork
 * handlers. glibc takes no malloc lock around a single-threaded process's fork, so the program
 * alone never waits; the tracker held its own locks there, and the handler's malloc waited for
 * them on the thread that held them, for ever. Prints how many children it reaped. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_child(int sig) {
    (void)sig;
    free(malloc(64));
}

int main(int argc, char **argv) {
    int children = argc > 1 ? atoi(argv[1]) : 200;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_child;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    for (int i = 0; i < children; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        if (pid < 0) {
            perror("fork");
            return 1;
        }
    }
    int reaped = 0;
    while (wait(NULL) > 0)
        reaped++;
    printf("reaped %d\n", reaped);
    return 0;
}
