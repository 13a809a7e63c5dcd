/* An executable that wraps malloc and free itself and passes each call on with
 * dlsym(RTLD_NEXT): under the preloaded tracker the next definition is the tracker's, whose
 * own "real" function must not be this wrapper again (the call looped until the stack ran out).
 *   wrapped_allocator none          nothing beyond start-up
 *   wrapped_allocator wrap N        N x free(malloc(4321)), then malloc(777) left live */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *(*next_malloc)(size_t);
static void (*next_free)(void *);
/* dlsym may allocate: served from here while the wrapper looks its function up. */
static char boot[4096];
static size_t boot_used;
static int looking_up;

void *malloc(size_t n) {
    if (!next_malloc) {
        if (looking_up) {
            void *p = boot + boot_used;
            boot_used += (n + 15) & ~(size_t)15;
            return p;
        }
        looking_up = 1;
        next_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
        looking_up = 0;
    }
    return next_malloc(n);
}

void free(void *p) {
    if ((char *)p >= boot && (char *)p < boot + sizeof boot)
        return;
    if (!next_free)
        next_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    next_free(p);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "wrap")) {
        int n = atoi(argv[2]);
        for (int i = 0; i < n; i++)
            free(malloc(4321));
        if (!malloc(777))
            return 2;
    }
    puts("ok");
    return 0;
}
