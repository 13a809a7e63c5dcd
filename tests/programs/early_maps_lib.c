// Linked by early_maps.c: its constructor runs before the preloaded tracker starts, and maps
// 16 anonymous pages (kept) and 2 (unmapped by the program later), and allocates 1,111 bytes.
#include <stdlib.h>
#include <sys/mman.h>

void *early_kept, *early_dropped, *early_block;

__attribute__((constructor)) static void early_maps(void) {
    early_kept = mmap(NULL, 16 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    early_dropped = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    early_block = malloc(1111);
}
