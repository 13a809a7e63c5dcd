/* A library the native_stacks program loads, calls and unloads (memtrace run --native). */
#include <stdlib.h>
#include <string.h>

__attribute__((noipa)) void *lib_inner(size_t n) {
    char *p = malloc(n); /* SITE lib_inner */
    memset(p, 2, n);
    return p;
}

__attribute__((noipa)) void *lib_alloc(size_t n) {
    void *p = lib_inner(n); /* SITE lib_alloc */
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}
