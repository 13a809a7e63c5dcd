// Eight threads call quick_exit at once (each after 1,000 malloc/free pairs) while main keeps
// allocating; an at_quick_exit handler allocates and frees. The capture must be finished
// whichever thread ends the process.
#include <pthread.h>
#include <stdlib.h>

static pthread_barrier_t barrier;

static void handler(void) { free(malloc(100)); }

static void *run(void *arg) {
    for (int i = 0; i < 1000; i++) free(malloc(64));
    pthread_barrier_wait(&barrier);
    quick_exit((int)(long)arg + 10);
}

int main(void) {
    at_quick_exit(handler);
    pthread_barrier_init(&barrier, NULL, 8);
    pthread_t t[8];
    for (long i = 0; i < 8; i++) pthread_create(&t[i], NULL, run, (void *)i);
    for (;;) free(malloc(10));
}
