// Loads deepbind_lib.so (path in argv[1]) with RTLD_DEEPBIND (lazy binding when argv[2] is
// "lazy") and allocates through it: 3 blocks of 7,001 bytes (one freed by the library, one
// by the program, one left live), a calloc of 7,003 bytes reallocated to 7,005 (left live),
// and a mapping of 7 pages (left live).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    int lazy = argc > 2 && strcmp(argv[2], "lazy") == 0;
    void *h = dlopen(argv[1], (lazy ? RTLD_LAZY : RTLD_NOW) | RTLD_DEEPBIND);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 3;
    }
    void *(*deep_alloc)(void) = (void *(*)(void))dlsym(h, "deep_alloc");
    void *(*deep_calloc)(void) = (void *(*)(void))dlsym(h, "deep_calloc");
    void *(*deep_realloc)(void *) = (void *(*)(void *))dlsym(h, "deep_realloc");
    void (*deep_free)(void *) = (void (*)(void *))dlsym(h, "deep_free");
    void *(*deep_map)(void) = (void *(*)(void))dlsym(h, "deep_map");
    if (!deep_alloc || !deep_calloc || !deep_realloc || !deep_free || !deep_map) return 4;
    void *a = deep_alloc(), *b = deep_alloc(), *c = deep_alloc();
    deep_free(a);
    free(b);
    void *d = deep_realloc(deep_calloc());
    void *m = deep_map();
    printf("%d\n", c != NULL && d != NULL && m != NULL);
    return 0;
}
