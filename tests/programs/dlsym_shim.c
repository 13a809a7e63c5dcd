// A preloaded library that interposes dlsym (as MangoHud's, VirtualGL's or apitrace's do): it
// answers "shim_answer" itself and passes other names on to the C library's dlsym.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>

static int shim_answer(void) { return 4242; }

void *dlsym(void *handle, const char *name) {
    static void *(*next)(void *, const char *);
    if (!next) next = (void *(*)(void *, const char *))dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
    if (!next) next = (void *(*)(void *, const char *))dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
    if (strcmp(name, "shim_answer") == 0) return (void *)shim_answer;
    return next ? next(handle, name) : NULL;
}
