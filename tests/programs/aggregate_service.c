/* A service for aggregated captures (tests/tests/aggregate.rs): 16 blocks of 1 MiB and 100,000
 * blocks of 100 bytes live, then, when argv[1] is given, it writes its pid to that file and
 * goes on serving (a block of 16 bytes allocated and freed every millisecond) until it is
 * killed; without it, it frees the small blocks and returns, the large ones leaked. The line
 * numbers are the test's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *big[16];
static void *small[100000];

int main(int argc, char **argv) {
    for (int i = 0; i < 16; i++) {
        big[i] = malloc(1 << 20); /* line 16: big */
        memset(big[i], 1, 4096);
    }
    for (int i = 0; i < 100000; i++) {
        small[i] = malloc(100); /* line 20: small */
    }
    if (argc < 2) {
        for (int i = 0; i < 100000; i++) {
            free(small[i]);
        }
        for (int i = 0; i < 1000; i++) {
            free(malloc(24)); /* line 27: churn */
        }
        return 0;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
    FILE *t = fopen(tmp, "w");
    fprintf(t, "%d\n", (int)getpid());
    fclose(t);
    rename(tmp, argv[1]);
    for (;;) {
        char *p = malloc(16); /* line 38: serving */
        *(volatile char *)p = 1;
        free(p);
        usleep(1000);
    }
}
