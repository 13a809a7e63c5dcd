/* A program whose main thread waits inside the allocator in a system call: malloc_stats holds
   the main arena's lock while it writes to stderr, here a pipe the program filled itself. A
   second thread makes glibc take its locks; it reads the pipe once the file "drain" appears,
   which ends the wait. An attach that called malloc during the wait would wait for that lock
   for good (the deepest return address into the allocator lies 8 KiB down the stack, under
   fprintf's buffer). Prints "ready" before the wait, then waits for "done"; prints "bye" last,
   exits 9. */
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int pipe_fds[2];

static void *drain(void *arg) {
    (void)arg;
    while (access("drain", F_OK) != 0) {
        usleep(10000);
    }
    char buf[65536];
    while (read(pipe_fds[0], buf, sizeof buf) > 0) {
    }
    return NULL;
}

int main(void) {
    if (pipe(pipe_fds) != 0) {
        return 2;
    }
    /* Full: the next write waits. */
    fcntl(pipe_fds[1], F_SETFL, O_NONBLOCK);
    static char fill[4096];
    while (write(pipe_fds[1], fill, sizeof fill) > 0) {
    }
    fcntl(pipe_fds[1], F_SETFL, 0);
    pthread_t t;
    pthread_create(&t, NULL, drain, NULL);
    int saved = dup(2);
    dup2(pipe_fds[1], 2);
    puts("ready");
    fflush(stdout);
    malloc_stats();
    dup2(saved, 2);
    close(pipe_fds[1]);
    pthread_join(t, NULL);
    while (access("done", F_OK) != 0) {
        usleep(10000);
    }
    free(malloc(100));
    puts("bye");
    return 9;
}
