/* 1,000 blocks of 100,000 bytes, then half of them freed and the program ends at once: the
   frees fall in the last coarse tick of the capture. */
#include <stdlib.h>
#include <string.h>

int main(void) {
    static char *blocks[1000];
    for (int i = 0; i < 1000; i++) {
        blocks[i] = malloc(100000);
        memset(blocks[i], 1, 64);
    }
    for (int i = 0; i < 1000; i += 2)
        free(blocks[i]);
    return 0;
}
