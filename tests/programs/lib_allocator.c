// A shared library with an allocator of its own, as jemalloc's or tcmalloc's: malloc, free,
// calloc and realloc, and an entry of its own (lock_alloc, lock_free: as their operator new and
// delete) that the program calls directly, not through malloc, and operator new itself. It
// holds its lock while it maps and unmaps memory.
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
struct header {
    size_t size;
    size_t pad;
};

static void *take(size_t n) {
    pthread_mutex_lock(&lock);
    struct header *h = mmap(0, n + sizeof *h, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    pthread_mutex_unlock(&lock);
    if (h == MAP_FAILED) return 0;
    h->size = n + sizeof *h;
    return h + 1;
}

static void give(void *p) {
    if (!p) return;
    struct header *h = (struct header *)p - 1;
    pthread_mutex_lock(&lock);
    munmap(h, h->size);
    pthread_mutex_unlock(&lock);
}

void *lock_alloc(size_t n) { return take(n); }
/* C++'s operator new (size_t), as tcmalloc and jemalloc define it: memtrace says it cannot see
   what goes through it. */
void *_Znwm(size_t n) { return take(n); }
void lock_free(void *p) { give(p); }
void *malloc(size_t n) { return take(n); }
void free(void *p) { give(p); }
void *calloc(size_t a, size_t b) { return take(a * b); }
void *realloc(void *p, size_t n) {
    void *q = take(n);
    if (p && q) {
        struct header *h = (struct header *)p - 1;
        size_t old = h->size - sizeof *h;
        memcpy(q, p, old < n ? old : n);
        give(p);
    }
    return q;
}

/* An arena mapped when the library starts, before the preloaded tracker does (jemalloc maps
   its first arenas so): the allocator's own, never the program's. */
static void *arena;
__attribute__((constructor)) static void map_arena(void) {
    arena = mmap(0, 64 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}
