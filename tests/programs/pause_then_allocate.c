/* A quick burst of allocations, a pause, then one allocation that is not a new peak, a pause,
 * its free: an aggregated capture must chart that allocation after the pause, not at the
 * time of the burst (tests/tests/aggregate.rs). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void nap(long ms) {
    struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
}

static void *touched(size_t n) {
    char *p = malloc(n);
    memset(p, 1, n);
    return p;
}

int main(void) {
    /* The peak, 20 MiB in one block: no window before the pause can hold 5 to 20 MiB. */
    free(touched(20 << 20));
    void *keep = touched(1 << 20);
    for (int i = 0; i < 1000; i++) free(malloc(64)); /* allocations in quick succession */
    nap(500);
    void *later = touched(4 << 20); /* 5 MiB live: below the peak */
    nap(500);
    free(later);
    free(keep);
    return 0;
}
