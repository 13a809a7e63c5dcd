/* A small program for trying memtrace: a cache that leaks, a peak in the middle, a few threads.
   Build: gcc -O0 -g -pthread -o target/leaky examples/leaky.c */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *cache[100];

static char *remember(int i) {          /* leaks: 100 x 1000 bytes, never freed */
    cache[i] = malloc(1000);
    memset(cache[i], i, 1000);
    return cache[i];
}

static long big_temporary(void) {        /* the peak: 8 MB, freed at once */
    char *buf = malloc(8 << 20);
    memset(buf, 1, 8 << 20);
    long sum = buf[12345];
    free(buf);
    return sum;
}

static void *worker(void *arg) {         /* churn in threads: 10,000 x 256 bytes each */
    long n = 0;
    for (int i = 0; i < 10000; i++) {
        char *p = malloc(256);
        p[0] = (char)i;
        n += p[0];
        free(p);
    }
    return (void *)n;
}

int main(void) {
    for (int i = 0; i < 100; i++) remember(i);
    long s = big_temporary();
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    printf("done (%ld)\n", s);
    return 0;
}
