/* bench/livecost.sh's workload: malloc/free pairs for SECONDS seconds, as fast as one thread
 * makes them or paced at RATE events a second (`livecost SECONDS [RATE [KEEP]]`, RATE 0: flat
 * out), with a slowly growing live set (one block in KEEP kept, 64 by default; 0 keeps none: a
 * flat heap), from 16 call sites, so that the live view has a heap that changes and a tree with
 * several branches. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define SITE(n) static void *site##n(size_t s) { return malloc(s); }
SITE(0) SITE(1) SITE(2) SITE(3) SITE(4) SITE(5) SITE(6) SITE(7)
SITE(8) SITE(9) SITE(10) SITE(11) SITE(12) SITE(13) SITE(14) SITE(15)
static void *(*const sites[16])(size_t) = {site0, site1, site2, site3, site4, site5, site6,
    site7, site8, site9, site10, site11, site12, site13, site14, site15};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 5.0;
    double rate = argc > 2 ? atof(argv[2]) : 0.0;
    unsigned long long keep = argc > 3 ? strtoull(argv[3], NULL, 10) : 64;
    size_t kept_cap = 1 << 20, kept_n = 0;
    void **kept = malloc(kept_cap * sizeof *kept);
    unsigned long long events = 2, i = 0;
    double start = now(), end = start + seconds;
    for (double t = start; t < end; t = now()) {
        /* Paced: ahead of RATE, wait (the view's share is measured at that rate). */
        if (rate > 0 && start + events / rate > t) {
            double ahead = start + events / rate - t;
            struct timespec d = {0, (long)(ahead * 1e9)};
            nanosleep(&d, NULL);
            continue;
        }
        for (int k = 0; k < 4096; k++, i++) {
            void *p = sites[i & 15](16 + (i * 7919) % 512);
            if (keep && i % keep == 0 && kept_n < kept_cap) {
                kept[kept_n++] = p;
                events += 1;
            } else {
                free(p);
                events += 2;
            }
        }
    }
    double took = now() - start;
    printf("%llu events in %.2f s: %.1f M events/s\n", events, took, events / took / 1e6);
    for (size_t k = 0; k < kept_n; k++) free(kept[k]);
    free(kept);
    return 0;
}
