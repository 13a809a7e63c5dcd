/* Killed while it holds memory (tests/tests/oom.rs): 16 blocks of 1 MiB and 100,000 blocks of
 * 100 bytes live, then it writes its pid to the file argv[1] and waits to be killed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    static void *big[16];
    static void *small[100000];
    for (int i = 0; i < 16; i++) {
        big[i] = malloc(1 << 20); /* line 12: big */
        memset(big[i], 1, 4096);
    }
    for (int i = 0; i < 100000; i++) {
        small[i] = malloc(100); /* line 16: small */
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
    FILE *t = fopen(tmp, "w");
    fprintf(t, "%d\n", (int)getpid());
    fclose(t);
    rename(tmp, argv[1]);
    for (;;) {
        pause();
    }
}
