/* One allocation at the bottom of a recursion deeper than memtrace run --native keeps (the
   innermost 128 frames): its stack stops short of _start, and the reports must say so.
   Built at -O0, so that the recursion is neither inlined nor turned into a loop. */
#include <stdlib.h>

static void *kept;

void *recurse(int n) {
    if (n == 0) {
        void *p = malloc(4242); /* SITE deep_alloc */
        return p;
    }
    void *p = recurse(n - 1); /* SITE deep_call */
    return p;
}

int main(void) {
    kept = recurse(300);
    return kept == NULL;
}
