/* memtrace attach's test program for signal handlers. Prints "ready" first, ends with status 9.
 * - "altstack": a SIGUSR1 handler runs 2 seconds on an 8 KiB alternate stack, with 4 KiB of
 *   0x5a bytes below it; then, once the file "go" exists, prints "guard kept" or how many of
 *   those bytes changed. An attach meanwhile must wait for the handler to return: its calls
 *   would overflow that stack.
 * - "pause": a SIGALRM handler that allocates runs every 0.5 ms while the main thread only
 *   waits in pause() (so the handler never interrupts the allocator: a safe program) until it
 *   ran 4,000 times and the file "done" exists; then prints "done". An attach must hold the signals during its calls,
 *   which run the allocator. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile long count;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void spin_2s(int sig) {
    (void)sig;
    double start = now();
    while (now() - start < 2.0)
        ;
    count++;
}

static void allocate(int sig) {
    (void)sig;
    void *p[8];
    for (int i = 0; i < 8; i++) {
        p[i] = malloc(16 + i * 100);
        memset(p[i], i, 16);
    }
    for (int i = 0; i < 8; i++)
        free(p[i]);
    count++;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    printf("ready\n");
    fflush(stdout);
    if (strcmp(mode, "altstack") == 0) {
        size_t size = 8192;
        char *mem = malloc(size + 8192);
        memset(mem, 0x5a, size + 8192);
        stack_t ss = {.ss_sp = mem + 4096, .ss_size = size};
        sigaltstack(&ss, NULL);
        struct sigaction sa = {0};
        sa.sa_handler = spin_2s;
        sa.sa_flags = SA_ONSTACK;
        sigaction(SIGUSR1, &sa, NULL);
        raise(SIGUSR1);
        while (access("go", F_OK) != 0)
            usleep(20000);
        int changed = 0;
        for (int i = 0; i < 4096; i++)
            changed += mem[i] != 0x5a;
        if (changed)
            printf("guard changed: %d bytes\n", changed);
        else
            printf("guard kept\n");
    } else if (strcmp(mode, "pause") == 0) {
        struct sigaction sa = {0};
        sa.sa_handler = allocate;
        sa.sa_flags = SA_RESTART;
        sigaction(SIGALRM, &sa, NULL);
        struct itimerval it = {{0, 500}, {0, 500}};
        setitimer(ITIMER_REAL, &it, NULL);
        while (count < 4000 || access("done", F_OK) != 0)
            pause();
        struct itimerval off = {{0, 0}, {0, 0}};
        setitimer(ITIMER_REAL, &off, NULL);
        printf("done\n");
    }
    return 9;
}
