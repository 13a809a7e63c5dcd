/* 300,000 calls through a recursion 18 deep on paths of their own (many distinct stacks, so
   that the tracker's tables grow), each allocating 64 bytes and a page mapping and freeing
   them, with brk_allocator.c's malloc; prints a checksum. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

__attribute__((noinline)) unsigned long rec(int d, unsigned x) {
    if (d == 0) {
        char *p = malloc(64);
        p[0] = x;
        unsigned long r = p[0];
        free(p);
        void *m = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        munmap(m, 4096);
        return r;
    }
    unsigned long r = (x & 1) ? rec(d - 1, x >> 1) : rec(d - 1, x >> 1) + 1;
    __asm__ volatile("" ::: "memory");
    return r;
}

int main(void) {
    unsigned long sum = 0;
    for (unsigned i = 0; i < 300000; i++) sum += rec(18, i * 2654435761u);
    printf("sum %lu\n", sum);
    return 0;
}
