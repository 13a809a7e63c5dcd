/* A 0.1 ms timer's signal handler maps a page and keeps it (mmap is a system call, safe in a
 * handler), while main makes a million malloc/free pairs: the handler often interrupts an
 * allocation function. Nothing jumps out of anything. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>

static void *kept[100000];
static volatile int n;

static void on_timer(int sig) {
    (void)sig;
    if (n < 100000)
        kept[n++] = mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_timer;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval every = {{0, 100}, {0, 100}};
    setitimer(ITIMER_REAL, &every, NULL);
    for (int i = 0; i < 1000000; i++)
        free(malloc(i % 500 + 1));
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("kept %s\n", n > 0 ? "some" : "none");
    return 0;
}
