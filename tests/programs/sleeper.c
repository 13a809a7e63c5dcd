/* memtrace attach's test program for a thread stopped inside a system call: sleeps N seconds
 * (argv[1]; 3 by default) in one nanosleep and prints what it returned (0 and errno 0 when the sleep ran to its end, not
 * cut short with EINTR) and how long it took in tenths of a second, then exits with status 4. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    struct timespec start, end, want = {argc > 1 ? atoi(argv[1]) : 3, 0}, left = {0, 0};
    printf("ready\n");
    fflush(stdout);
    clock_gettime(CLOCK_MONOTONIC, &start);
    int r = nanosleep(&want, &left);
    int err = r ? errno : 0;
    clock_gettime(CLOCK_MONOTONIC, &end);
    long tenths = (end.tv_sec - start.tv_sec) * 10 + (end.tv_nsec - start.tv_nsec) / 100000000;
    printf("nanosleep %d errno %d tenths %ld\n", r, err, tenths);
    return 4;
}
