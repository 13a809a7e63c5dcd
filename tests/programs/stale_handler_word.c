/* An event loop whose stack holds a stale word that looks like a running signal handler
 * (tests/tests/attach.rs): a handler ran once at start-up, then the main thread waits in
 * epoll_wait (1 s at a time, for argv[1] seconds) with an uninitialized array over the memory
 * the handler's frame used. Prints "ready", then how many waits ended with EINTR; exits 6. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got;

static void on_usr1(int s) {
    (void)s;
    got = 1;
}

static __attribute__((noinline)) void shallow(void) {
    raise(SIGUSR1);
}

static __attribute__((noinline)) int loop(int ep, int seconds) {
    struct epoll_event events[1024]; /* uninitialized: the old frame's words stay */
    int eintr = 0;
    time_t start = time(0);
    while (time(0) - start < seconds) {
        int n = epoll_wait(ep, events, 1024, 1000);
        if (n < 0 && errno == EINTR)
            eintr++;
    }
    return eintr;
}

int main(int argc, char **argv) {
    signal(SIGUSR1, on_usr1);
    shallow();
    int ep = epoll_create1(0);
    puts("ready");
    fflush(stdout);
    printf("EINTR %d\n", loop(ep, atoi(argv[1])));
    return 6;
}
