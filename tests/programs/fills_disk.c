/* Allocates (so that its capture grows) and appends 64 KiB to the file argv[1] after each
   round, until a write fails: says so on stderr and exits 1 (as a program whose disk filled
   up does). Usage: fills_disk FILE */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    FILE *f = fopen(argv[1], "w");
    if (!f) { perror("open"); return 2; }
    static char block[65536];
    memset(block, 'x', sizeof block);
    void *live[64] = {0};
    unsigned x = 12345;
    for (int round = 0; round < 100000; round++) {
        for (int i = 0; i < 4000; i++) {
            x = x * 1103515245u + 12345u;
            int slot = (x >> 8) % 64;
            free(live[slot]);
            live[slot] = malloc(16 + (x >> 16) % 2000);
        }
        if (fwrite(block, 1, sizeof block, f) != sizeof block || fflush(f) != 0) {
            fprintf(stderr, "write failed: %s\n", strerror(errno));
            return 1;
        }
    }
    return 0;
}
