/* One thread allocates inside its own dl_iterate_phdr callbacks, where the loader's list lock
   is held (as libraries that list the loaded modules do), while two threads allocate enough to
   flush often and threads start and end (each ends with a flush). The tracker must not read
   the loader's list from inside such a callback: it waited for a thread that held the
   tracker's guard and waited for the loader's lock (a hang, every run). Usage: phdr_alloc
   ROUNDS. Prints "callback: N allocations, B bytes". */
#define _GNU_SOURCE
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static volatile int stop;
static size_t callback_allocations, callback_bytes;

static int callback(struct dl_phdr_info *info, size_t size, void *data) {
    (void)info;
    (void)size;
    (void)data;
    for (int i = 0; i < 64; i++) {
        size_t n = 32 + callback_allocations % 512;
        void *p = malloc(n);
        if (p) {
            callback_allocations++;
            callback_bytes += n;
        }
        free(p);
    }
    return 0;
}

static void *lister(void *arg) {
    long rounds = (long)arg;
    for (long r = 0; r < rounds; r++) dl_iterate_phdr(callback, NULL);
    stop = 1;
    return NULL;
}

static void *churn(void *arg) {
    (void)arg;
    unsigned n = 1;
    while (!stop) {
        n = n * 1103515245u + 12345u;
        free(malloc(16 + n % 4000));
    }
    return NULL;
}

static void *brief(void *arg) {
    free(malloc((size_t)arg));
    return NULL;
}

static void *spawner(void *arg) {
    (void)arg;
    while (!stop) {
        pthread_t t;
        if (pthread_create(&t, NULL, brief, (void *)100) == 0) pthread_join(t, NULL);
    }
    return NULL;
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 20000;
    pthread_t lister_thread, workers[3];
    void *(*work[])(void *) = {churn, churn, spawner};
    for (int i = 0; i < 3; i++) pthread_create(&workers[i], NULL, work[i], NULL);
    pthread_create(&lister_thread, NULL, lister, (void *)rounds);
    pthread_join(lister_thread, NULL);
    for (int i = 0; i < 3; i++) pthread_join(workers[i], NULL);
    printf("callback: %zu allocations, %zu bytes\n", callback_allocations, callback_bytes);
    return 0;
}
