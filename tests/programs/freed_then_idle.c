/* A worker for aggregated captures (tests/tests/aggregate.rs): 16 blocks of 1 MiB and 100,000
 * of 100 bytes live, then it frees every small block and 12 of the large ones, writes its pid
 * to argv[1] and waits, allocating nothing, to be killed (as a pool's idle worker is). The
 * line numbers are the test's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *big[16];
static void *small[100000];

int main(int argc, char **argv) {
    for (int i = 0; i < 16; i++) {
        big[i] = malloc(1 << 20); /* line 15: big */
        memset(big[i], 1, 4096);
    }
    for (int i = 0; i < 100000; i++)
        small[i] = malloc(100); /* line 19: small */
    for (int i = 0; i < 100000; i++)
        free(small[i]);
    for (int i = 4; i < 16; i++)
        free(big[i]);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
    FILE *t = fopen(tmp, "w");
    fprintf(t, "%d\n", (int)getpid());
    fclose(t);
    rename(tmp, argv[1]);
    for (;;)
        pause();
}
