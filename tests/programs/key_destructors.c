/* A thread's key destructor that allocates in each of the rounds glibc runs (it sets its value
 * again, up to PTHREAD_DESTRUCTOR_ITERATIONS): the last round runs after the tracker gave the
 * thread's state back. 8 threads x 4 blocks of 333 bytes, left live. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static pthread_key_t key;
static void *kept[64];
static int n;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void destructor(void *v) {
    pthread_mutex_lock(&lock);
    kept[n++] = malloc(333);
    pthread_mutex_unlock(&lock);
    if ((long)v < 4)
        pthread_setspecific(key, (void *)((long)v + 1));
}

static void *worker(void *arg) {
    pthread_setspecific(key, (void *)1);
    return arg;
}

int main(void) {
    pthread_key_create(&key, destructor);
    for (int i = 0; i < 8; i++) {
        pthread_t t;
        pthread_create(&t, NULL, worker, NULL);
        pthread_join(t, NULL);
    }
    printf("%d\n", n);
    return 0;
}
