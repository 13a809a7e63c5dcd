/* A thread forks while the main thread runs its exit handlers (one waits for that thread);
 * the child ends with exit(5), which must end it as it would without memtrace, and the thread
 * says how the child ended. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static pthread_t forker;

static void *fork_later(void *arg) {
    (void)arg;
    usleep(100 * 1000);
    pid_t child = fork();
    if (child == 0)
        exit(5);
    int status = 0;
    waitpid(child, &status, 0);
    char line[64];
    int n = snprintf(line, sizeof line, "child exited %d\n", WEXITSTATUS(status));
    write(1, line, (size_t)n);
    return NULL;
}

static void wait_for_the_forker(void) {
    pthread_join(forker, NULL);
}

int main(void) {
    atexit(wait_for_the_forker);
    pthread_create(&forker, NULL, fork_later, NULL);
    exit(0);
}
