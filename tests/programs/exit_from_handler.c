/* A signal handler ends the process (_exit) while the signal interrupted the C library's
 * realloc of a large block, which copies it holding the arena's lock (the process has a second
 * thread, so the C library locks its arenas). Alone: status 7, every time. */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static void end(int sig) {
    (void)sig;
    _exit(7);
}

static void *idle(void *arg) {
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, idle, NULL);
    /* Large blocks from the heap (not mapped apart): realloc copies them under the lock. */
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    signal(SIGALRM, end);
    struct itimerval at = {{0, 0}, {0, 50000}};
    setitimer(ITIMER_REAL, &at, NULL);
    /* Events enough for the capture's last chunk to be compressed at the end. */
    static void *kept[20000];
    for (int i = 0; i < 20000; i++)
        kept[i] = malloc(16 + i % 200);
    size_t size = 64 << 20;
    char *p = malloc(size);
    memset(p, 1, size);
    for (;;) {
        /* A block after it keeps realloc from growing in place: it moves (copies) the block. */
        void *fence = malloc(64);
        size = size == (64 << 20) ? (96 << 20) : (64 << 20);
        p = realloc(p, size);
        p[size - 1] = 2;
        free(fence);
    }
}
