/* Known allocations for byte sampling (tests/tests/sampling.rs): 16 blocks of 1 MiB (above any
 * N the test uses: always recorded), a churn of 1,000,000 blocks of 64 bytes freed at once,
 * and 200,000 blocks of 100 bytes live together. The peak is 16 MiB + 20,000,000 bytes.
 * The line numbers are the test's. */
#include <stdlib.h>
#include <string.h>

#define LARGE 16
#define CHURN 1000000
#define LIVE 200000

static void *live[LIVE];

int main(void) {
    void *large[LARGE];
    for (int i = 0; i < LARGE; i++) {
        large[i] = malloc(1 << 20); /* line 17: large */
        memset(large[i], 1, 64);
    }
    for (int i = 0; i < CHURN; i++) {
        char *p = malloc(64); /* line 21: churn */
        *(volatile char *)p = 1;
        free(p);
    }
    for (int i = 0; i < LIVE; i++) {
        live[i] = malloc(100); /* line 26: live */
    }
    for (int i = 0; i < LIVE; i++) {
        free(live[i]);
    }
    for (int i = 0; i < LARGE; i++) {
        free(large[i]);
    }
    return 0;
}
