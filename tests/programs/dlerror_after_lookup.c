/* A lookup that succeeds leaves no error: dlsym of plugin_fn in the library argv[1], opened
   RTLD_LOCAL (outside the global scope), then dlerror(), as GLib's module loader checks it;
   and a lookup that fails leaves the C library's own message. Prints both. */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        printf("cannot open: %s\n", dlerror());
        return 2;
    }
    dlerror();
    void *f = dlsym(h, "plugin_fn");
    const char *e = dlerror();
    printf("plugin_fn %s, dlerror %s\n", f ? "found" : "missing", e ? e : "(none)");
    f = dlsym(h, "no_such_function_here");
    e = dlerror();
    printf("no_such_function_here %s, dlerror %s\n", f ? "found" : "missing", e ? e : "(none)");
    return 0;
}
