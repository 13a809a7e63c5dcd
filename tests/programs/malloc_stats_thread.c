/* A thread waits inside the allocator in a system call while the main thread runs: it calls
   malloc_stats, which holds the main arena's lock while it writes to stderr, here a pipe the
   program filled itself and that only the main thread drains, once the file "drain" appears.
   An attach that called malloc in the main thread then waited for that lock, which the thread
   never let go (it waited for the main thread): the program hung for good. Prints "ready" once
   the thread starts, then waits for "done"; prints "bye" last, exits 9. */
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void *stats(void *arg) {
    (void)arg;
    malloc_stats();
    return NULL;
}

int main(void) {
    int fds[2];
    if (pipe(fds) != 0) {
        return 2;
    }
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    static char fill[4096];
    while (write(fds[1], fill, sizeof fill) > 0) {
    }
    fcntl(fds[1], F_SETFL, 0);
    void *warm = malloc(100);
    int saved = dup(2);
    dup2(fds[1], 2);
    /* Said before the thread starts: from then on the main thread allocates nothing until
       the pipe is drained (stdout's buffer too would wait for the arena's lock). */
    puts("ready");
    fflush(stdout);
    pthread_t t;
    pthread_create(&t, NULL, stats, NULL);
    while (access("drain", F_OK) != 0) {
        usleep(10000);
    }
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    char buf[65536];
    for (int round = 0; round < 100; round++) {
        while (read(fds[0], buf, sizeof buf) > 0) {
        }
        usleep(5000);
    }
    pthread_join(t, NULL);
    dup2(saved, 2);
    while (access("done", F_OK) != 0) {
        usleep(10000);
    }
    free(warm);
    free(malloc(12345));
    puts("bye");
    return 9;
}
