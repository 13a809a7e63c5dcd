/* Per-event cost of tracking: waits for the file "go" (so that memtrace attach can attach
 * first), then makes N malloc(64)/free pairs and prints the nanoseconds per event (an event is
 * one malloc or one free). Usage: attach_cost N */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 5000000;
    printf("ready\n");
    fflush(stdout);
    while (access("go", F_OK) != 0)
        usleep(10000);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        void *volatile p = malloc(64);
        free(p);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
    printf("%.1f ns/event\n", ns / (2.0 * n));
    return 0;
}
