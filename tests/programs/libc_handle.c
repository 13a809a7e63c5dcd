/* malloc, calloc, realloc and free looked up in the C library's own handle, as ctypes'
   CDLL("libc.so.6") does. Usage: libc_handle none|use [versioned]. With "versioned" they are
   looked up with dlvsym at their glibc version (free in RTLD_DEFAULT). Both modes look the
   functions up; "use" then
   keeps 5,000,000 bytes from the handle's malloc, frees a 7,000,000-byte malloc with the
   handle's free, frees the handle's calloc(1000, 3000) with free, and grows a block with the
   handle's realloc from nothing to 2,000,000 and 4,000,000 bytes before the handle's free. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    void *h = dlopen("libc.so.6", RTLD_NOW);
    if (!h) {
        fprintf(stderr, "%s\n", dlerror());
        return 2;
    }
#if defined(__aarch64__)
    const char *v = "GLIBC_2.17";
#else
    const char *v = "GLIBC_2.2.5";
#endif
    int versioned = argc > 2 && !strcmp(argv[2], "versioned");
    void *(*hm)(size_t) =
        (void *(*)(size_t))(versioned ? dlvsym(h, "malloc", v) : dlsym(h, "malloc"));
    void (*hf)(void *) =
        (void (*)(void *))(versioned ? dlvsym(RTLD_DEFAULT, "free", v) : dlsym(h, "free"));
    void *(*hc)(size_t, size_t) =
        (void *(*)(size_t, size_t))(versioned ? dlvsym(h, "calloc", v) : dlsym(h, "calloc"));
    void *(*hr)(void *, size_t) =
        (void *(*)(void *, size_t))(versioned ? dlvsym(h, "realloc", v) : dlsym(h, "realloc"));
    if (!hm || !hf || !hc || !hr)
        return 3;
    if (argc > 1 && !strcmp(argv[1], "use")) {
        char *kept = hm(5000000);
        kept[0] = 1;
        void *b = malloc(7000000);
        hf(b);
        void *c = hc(1000, 3000);
        free(c);
        void *d = hr(NULL, 2000000);
        d = hr(d, 4000000);
        hf(d);
        return kept[0] - 1;
    }
    return 0;
}
