/* Many short-lived threads, for the tracker's cost per thread. Usage:
 *   manythreads alive N       N threads alive at once, each mallocs 4242 bytes once
 *   manythreads sequential N  N threads one after another, each mallocs 4242 bytes once
 *   manythreads pool SECONDS THREADS [REPORT_AT]
 *                             rounds of THREADS threads started and joined for SECONDS seconds,
 *                             each thread mallocs and frees 100 bytes 20 times; prints the
 *                             resident peak and the capture's size ($MANYTHREADS_CAPTURE) at
 *                             REPORT_AT seconds (default: half way) and at the end
 *   manythreads busy N PAIRS  N threads alive at once, each mallocs and frees 64 bytes PAIRS
 *                             times; once all are joined, prints "rss_kb N", the resident size
 *                             (VmRSS) in KiB
 *   manythreads none          nothing (a baseline)
 * Every mode ends by printing "hwm_kb N", the peak resident size (VmHWM) in KiB. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define SIZE 4242

static void **blocks;
static pthread_barrier_t barrier;

static long status_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, field, strlen(field))) kb = atol(line + strlen(field));
    if (f) fclose(f);
    return kb;
}

static long hwm_kb(void) { return status_kb("VmHWM:"); }

static long pairs;

static void *busy_work(void *arg) {
    (void)arg;
    for (long i = 0; i < pairs; i++) {
        void *p = malloc(64); /* the busy threads' allocation */
        *(volatile char *)p = 1;
        free(p);
    }
    return NULL;
}

static void *one_malloc(void *arg) {
    long i = (long)arg;
    blocks[i] = malloc(SIZE); /* the one allocation of each thread: this line */
    memset(blocks[i], 1, SIZE);
    return NULL;
}

static void *one_malloc_then_wait(void *arg) {
    one_malloc(arg);
    pthread_barrier_wait(&barrier);
    return NULL;
}

static void *pool_work(void *arg) {
    (void)arg;
    for (int i = 0; i < 20; i++) {
        void *p = malloc(100); /* the pool's allocation */
        *(volatile char *)p = 1;
        free(p);
    }
    return NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long long capture_size(void) {
    const char *path = getenv("MANYTHREADS_CAPTURE");
    struct stat st;
    return path && stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static int start(pthread_t *t, void *(*f)(void *), long arg) {
    /* Small stacks: a thousand threads alive at once fit any machine. */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    int r = pthread_create(t, &attr, f, (void *)arg);
    pthread_attr_destroy(&attr);
    return r;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "none";
    long n = argc > 2 ? atol(argv[2]) : 1000;
    if (!strcmp(mode, "alive") || !strcmp(mode, "sequential")) {
        int alive = !strcmp(mode, "alive");
        blocks = calloc(n, sizeof *blocks);
        pthread_t *t = calloc(n, sizeof *t);
        if (alive) pthread_barrier_init(&barrier, NULL, n + 1);
        for (long i = 0; i < n; i++) {
            if (start(&t[i], alive ? one_malloc_then_wait : one_malloc, i) != 0) {
                printf("pthread_create failed at %ld\n", i);
                return 1;
            }
            if (!alive) pthread_join(t[i], NULL);
        }
        if (alive) {
            pthread_barrier_wait(&barrier);
            for (long i = 0; i < n; i++) pthread_join(t[i], NULL);
        }
        for (long i = 0; i < n; i++) free(blocks[i]);
        free(blocks);
        free(t);
        printf("%s %ld threads\n", mode, n);
    } else if (!strcmp(mode, "busy")) {
        pairs = argc > 3 ? atol(argv[3]) : 100000;
        pthread_t *t = calloc(n, sizeof *t);
        for (long i = 0; i < n; i++)
            if (start(&t[i], busy_work, 0) != 0) {
                printf("pthread_create failed at %ld\n", i);
                return 1;
            }
        for (long i = 0; i < n; i++) pthread_join(t[i], NULL);
        free(t);
        printf("rss_kb %ld\n", status_kb("VmRSS:"));
    } else if (!strcmp(mode, "pool")) {
        double seconds = atof(argv[2]);
        long threads = argc > 3 ? atol(argv[3]) : 200;
        double report_at = argc > 4 ? atof(argv[4]) : seconds / 2;
        pthread_t *t = calloc(threads, sizeof *t);
        double t0 = now();
        long rounds = 0;
        int reported = 0;
        while (now() - t0 < seconds) {
            for (long i = 0; i < threads; i++)
                if (start(&t[i], pool_work, 0) != 0) {
                    printf("pthread_create failed\n");
                    return 1;
                }
            for (long i = 0; i < threads; i++) pthread_join(t[i], NULL);
            rounds++;
            if (!reported && now() - t0 >= report_at) {
                printf("at %.1fs: rounds %ld hwm_kb %ld capture %lld\n", now() - t0, rounds,
                       hwm_kb(), capture_size());
                reported = 1;
            }
        }
        printf("at %.1fs: rounds %ld hwm_kb %ld capture %lld\n", now() - t0, rounds, hwm_kb(),
               capture_size());
        free(t);
    }
    printf("hwm_kb %ld\n", hwm_kb());
    return 0;
}
