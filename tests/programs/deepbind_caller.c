// libdeepcaller.so (no RPATH of its own), loaded by libdeeploader.so, whose RPATH holds the
// plugin's directory: the loader searches a bare name along the RPATH of the caller's loaders
// too. Opens the plugin deep-bound and allocates 7,001 bytes through it (kept).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

void *open_plugin_and_allocate(void) {
    void *h = dlopen("libdeepplugin.so", RTLD_NOW | RTLD_DEEPBIND);
    if (!h) return NULL;
    void *(*deep_alloc)(void) = (void *(*)(void))dlsym(h, "deep_alloc");
    return deep_alloc ? deep_alloc() : NULL;
}
