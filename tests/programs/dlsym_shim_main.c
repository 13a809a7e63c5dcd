// Looks up a name only a preloaded dlsym_shim.so answers.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>

int main(void) {
    int (*f)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "shim_answer");
    printf("%d\n", f ? f() : -1);
    return f ? 0 : 1;
}
