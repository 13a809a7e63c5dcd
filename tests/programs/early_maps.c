// Uses early_maps_lib.so's mappings, made before the tracker started: unmaps the 2 pages and
// keeps the 16 pages and the block live.
#include <stdio.h>
#include <sys/mman.h>

extern void *early_kept, *early_dropped, *early_block;

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0); // no buffer of its own live at exit
    if (!early_kept || !early_dropped || !early_block) return 3;
    if (munmap(early_dropped, 2 * 4096)) return 4;
    printf("ok\n");
    return 0;
}
