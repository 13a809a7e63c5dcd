// An executable that defines malloc, free, calloc and realloc itself (as a statically linked
// jemalloc, tcmalloc or mimalloc does) and holds its lock while it maps memory: 20,000 blocks
// of 100 to 20,099 bytes, each mapped and unmapped, then "done" (stdout's buffer is one more).
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
struct header {
    size_t size;
    size_t pad;
};

void *malloc(size_t n) {
    pthread_mutex_lock(&lock);
    struct header *h = mmap(0, n + sizeof *h, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    pthread_mutex_unlock(&lock);
    if (h == MAP_FAILED) return 0;
    h->size = n + sizeof *h;
    return h + 1;
}

void free(void *p) {
    if (!p) return;
    struct header *h = (struct header *)p - 1;
    pthread_mutex_lock(&lock);
    munmap(h, h->size);
    pthread_mutex_unlock(&lock);
}

void *calloc(size_t a, size_t b) { return malloc(a * b); }

void *realloc(void *p, size_t n) {
    void *q = malloc(n);
    if (p && q) {
        struct header *h = (struct header *)p - 1;
        size_t old = h->size - sizeof *h;
        memcpy(q, p, old < n ? old : n);
        free(p);
    }
    return q;
}

int main(void) {
    for (int i = 0; i < 20000; i++) {
        void *volatile p = malloc(100 + i);
        free(p);
    }
    puts("done");
    return 0;
}
