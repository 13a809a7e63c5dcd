/* The main thread exits, and its exit handler joins a worker that calls exit(3) itself: a
 * later caller of exit() that waited for good would never let the handler return. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_t worker;

static void *work(void *arg) {
    (void)arg;
    usleep(200 * 1000);
    exit(3);
}

static void join_worker(void) {
    pthread_join(worker, NULL);
}

int main(void) {
    atexit(join_worker);
    pthread_create(&worker, NULL, work, NULL);
    exit(0);
}
