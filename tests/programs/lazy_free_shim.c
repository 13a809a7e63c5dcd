/* A malloc shim, preloaded after the tracker, that finds the next malloc and free through
   dlsym at its first call of each. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

static void *(*next_malloc)(size_t);
static void (*next_free)(void *);

void *malloc(size_t n) {
    if (!next_malloc)
        next_malloc = dlsym(RTLD_NEXT, "malloc");
    return next_malloc(n);
}

void free(void *p) {
    if (!next_free)
        next_free = dlsym(RTLD_NEXT, "free");
    next_free(p);
}
