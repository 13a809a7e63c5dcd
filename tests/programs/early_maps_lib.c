// Linked by early_maps.c: its constructor runs before the preloaded tracker starts. It maps 16
// anonymous pages (kept) and 2 (unmapped by the program later); maps 64 pages and trims 16 off
// each end (32 kept, as an allocator aligns an arena); maps 4 pages and grows them to 12 with
// mremap (kept); and allocates 1,111 bytes.
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/mman.h>

void *early_kept, *early_dropped, *early_block, *early_trimmed, *early_moved;

static void *pages(size_t n) {
    void *p = mmap(NULL, n * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

__attribute__((constructor)) static void early_maps(void) {
    early_kept = pages(16);
    early_dropped = pages(2);
    char *arena = pages(64);
    if (arena && munmap(arena, 16 * 4096) == 0 && munmap(arena + 48 * 4096, 16 * 4096) == 0)
        early_trimmed = arena + 16 * 4096;
    void *small = pages(4);
    void *grown = small ? mremap(small, 4 * 4096, 12 * 4096, MREMAP_MAYMOVE) : MAP_FAILED;
    early_moved = grown == MAP_FAILED ? NULL : grown;
    early_block = malloc(1111);
}
