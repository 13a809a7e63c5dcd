/* A library that says so when it is loaded (built as libsays_preloaded.so). */
#include <unistd.h>

__attribute__((constructor)) static void said(void) {
    static const char line[] = "preloaded\n";
    if (write(1, line, sizeof line - 1) < 0) _exit(3);
}
