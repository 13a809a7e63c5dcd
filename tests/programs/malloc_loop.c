/* A single-threaded program that does nothing but malloc and free (glibc takes no lock then),
   until the file "done" appears in its directory; prints "ready" first and "bye" last, exits 7.
   An attach that calls into it while it is inside malloc corrupts its heap. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void) {
    void *ring[64] = {0};
    unsigned long n = 0;
    puts("ready");
    fflush(stdout);
    for (;;) {
        for (int k = 0; k < 10000; k++, n++) {
            free(ring[n % 64]);
            ring[n % 64] = malloc(16 + (n * 7919) % 20000);
        }
        if (access("done", F_OK) == 0) {
            break;
        }
    }
    for (int i = 0; i < 64; i++) {
        free(ring[i]);
    }
    puts("bye");
    return 7;
}
