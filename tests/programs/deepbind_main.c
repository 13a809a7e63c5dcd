// Loads deepbind_lib.so (path in argv[1]) with RTLD_DEEPBIND (lazy binding when argv[2] is
// "lazy") and allocates through it: 3 blocks of 7,001 bytes (one freed by the library, one
// by the program, one left live), a calloc of 7,003 bytes reallocated to 7,005 (left live),
// and a mapping of 7 pages (left live).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// "threads": 8 threads open the library at once (each its own dlopen), and each keeps one
// block of 7,001 bytes from it.
static const char *library;
static pthread_barrier_t barrier;

static void *open_and_allocate(void *arg) {
    (void)arg;
    pthread_barrier_wait(&barrier);
    void *h = dlopen(library, RTLD_NOW | RTLD_DEEPBIND);
    void *(*deep_alloc)(void) = h ? (void *(*)(void))dlsym(h, "deep_alloc") : NULL;
    return deep_alloc ? deep_alloc() : NULL;
}

static int threads(void) {
    pthread_t t[8];
    pthread_barrier_init(&barrier, NULL, 8);
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, open_and_allocate, NULL);
    int kept = 0;
    for (int i = 0; i < 8; i++) {
        void *p = NULL;
        pthread_join(t[i], &p);
        kept += p != NULL;
    }
    printf("%d\n", kept == 8);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    library = argv[1];
    if (argc > 2 && strcmp(argv[2], "threads") == 0) return threads();
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
