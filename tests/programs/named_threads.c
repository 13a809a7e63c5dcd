/* Eight threads, one after another: thread tN names itself and leaks N * 1000 bytes in one
   allocation, and needs no table record (no Python, no native stack). Exits 0. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static void *volatile kept[9];

static void *worker(void *arg) {
    long id = (long)arg;
    char name[16];
    snprintf(name, sizeof name, "t%ld", id);
    pthread_setname_np(pthread_self(), name);
    kept[id] = malloc(1000 * id);
    return NULL;
}

int main(void) {
    for (long i = 1; i <= 8; i++) {
        pthread_t t;
        pthread_create(&t, NULL, worker, (void *)i);
        pthread_join(t, NULL);
    }
    return 0;
}
