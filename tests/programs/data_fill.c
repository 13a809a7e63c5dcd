/* Allocates N blocks of 1 KiB (argv[1]), touching each: "allocated N KiB" and status 0, or
 * "malloc failed at K KiB" and status 2 (under a data limit, `ulimit -d`). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000;
    for (long i = 0; i < n; i++) {
        char *p = malloc(1024);
        if (!p) {
            printf("malloc failed at %ld KiB\n", i);
            return 2;
        }
        memset(p, 1, 1024);
    }
    printf("allocated %ld KiB\n", n);
    return 0;
}
