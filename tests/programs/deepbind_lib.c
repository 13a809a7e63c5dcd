// A library loaded with RTLD_DEEPBIND (deepbind_main.c): its calls to the allocation functions
// bind to the C library's ahead of a preloaded tracker.
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

// Blocks of sizes the test looks for: 7,001 bytes each.
void *deep_alloc(void) {
    void *p = malloc(7001);
    memset(p, 1, 7001);
    return p;
}

void *deep_calloc(void) { return calloc(1, 7003); }

void *deep_realloc(void *p) { return realloc(p, 7005); }

void deep_free(void *p) { free(p); }

void *deep_map(void) {
    void *p = mmap(NULL, 7 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}
