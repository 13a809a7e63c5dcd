// Uses early_maps_lib.so's mappings, made before the tracker started: unmaps the 2 pages and
// keeps the rest live (16 + 32 + 12 pages and the block).
#include <stdio.h>
#include <sys/mman.h>

extern void *early_kept, *early_dropped, *early_block, *early_trimmed, *early_moved;

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0); // no buffer of its own live at exit
    if (!early_kept || !early_dropped || !early_block || !early_trimmed || !early_moved) return 3;
    if (munmap(early_dropped, 2 * 4096)) return 4;
    printf("ok\n");
    return 0;
}
