/* An executable that defines malloc, free, calloc and realloc itself, under one mutex, and
   holds that lock while it maps memory (64 KiB at a time) and, on every 10th call, while it
   sleeps 2 ms: a thread stopped there holds the lock. Two threads allocate until the file
   "done" appears; prints "ready" first and "bye" last, exits 5. An attach whose injected
   dlopen allocated from here while the stopped thread held the lock, or whose hooks took the
   tracker's memory from here under the lock (the mmap), hung it for good: the alarm ends a
   hang with SIGALRM instead. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *cur, *end;
static unsigned long calls;
struct header {
    size_t size;
    size_t pad;
};

static void *take(size_t n) {
    n = (n + sizeof(struct header) + 15) & ~15UL;
    if (!cur || cur + n > end) {
        size_t chunk = n > 65536 ? n : 65536;
        char *p = mmap(0, chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return 0;
        cur = p;
        end = p + chunk;
    }
    struct header *h = (struct header *)cur;
    cur += n;
    h->size = n - sizeof *h;
    return h + 1;
}

void *malloc(size_t n) {
    pthread_mutex_lock(&lock);
    void *p = take(n);
    if (++calls % 10 == 0) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, 0);
    }
    pthread_mutex_unlock(&lock);
    return p;
}

void free(void *p) { (void)p; }

void *calloc(size_t a, size_t b) {
    void *p = malloc(a * b);
    if (p) memset(p, 0, a * b);
    return p;
}

void *realloc(void *p, size_t n) {
    void *q = malloc(n);
    if (p && q) {
        size_t old = ((struct header *)p - 1)->size;
        memcpy(q, p, old < n ? old : n);
    }
    return q;
}

static volatile int finished;

static void allocate(unsigned pause_us) {
    for (int i = 0; i < 100; i++) {
        volatile char *p = malloc(100 + i * 3);
        p[0] = 1;
        free((void *)p);
    }
    struct timespec ts = {0, pause_us * 1000L};
    nanosleep(&ts, 0);
}

static void *worker(void *arg) {
    (void)arg;
    while (!finished) allocate(300);
    return 0;
}

int main(void) {
    alarm(240);
    pthread_t t;
    pthread_create(&t, 0, worker, 0);
    puts("ready");
    fflush(stdout);
    while (access("done", F_OK) != 0) allocate(100);
    finished = 1;
    pthread_join(t, 0);
    puts("bye");
    return 5;
}
