/* Several threads call exit() at once (glibc 2.36 lets them: each runs the exit handlers and
 * the first to reach _exit ends the process). Each thread first makes 1000 allocations of 100
 * bytes and frees them; all then exit with status 10. argv[1]: the number of threads (8). */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_barrier_t together;

static void *worker(void *arg) {
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        void *p = malloc(100);
        free(p);
    }
    pthread_barrier_wait(&together);
    exit(10);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 8;
    if (n < 1 || n > 64)
        n = 8;
    pthread_barrier_init(&together, NULL, (unsigned)n);
    pthread_t threads[64];
    for (int i = 0; i < n; i++)
        pthread_create(&threads[i], NULL, worker, NULL);
    pause();
    return 0;
}
