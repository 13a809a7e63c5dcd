/* Mappings taken apart: unmaps of a mapping's head, tail and middle, an mmap with MAP_FIXED
   inside another, a mapping of 4097 bytes that loses its second page, and mremap with an old
   length of 0 (the old shared mapping stays). What stays mapped at exit, 23 pages in 8 pieces:
   3 + 3 pages of `a` (its head page, a middle page and its last 2 pages unmapped), 8 pages of
   `b` in 3 pieces (2 pages in its middle replaced with MAP_FIXED), 1 page of `c`, and 4 + 4
   pages of `d` and its duplicate. Exits 0 when the kernel did as asked; nothing else allocates. */
#define _GNU_SOURCE
#include <stddef.h>
#include <sys/mman.h>

#define PAGE 4096L

static char *map(long len, int flags) {
    return mmap(NULL, len, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS, -1, 0);
}

int main(void) {
    char *a = map(10 * PAGE, MAP_PRIVATE);
    munmap(a, PAGE);                 /* head: 9 pages */
    munmap(a + 4 * PAGE, PAGE);      /* a hole: 3 + 5 pages */
    munmap(a + 8 * PAGE, 2 * PAGE);  /* tail: 3 + 3 pages */
    char *b = map(8 * PAGE, MAP_PRIVATE);
    char *f = mmap(b + 2 * PAGE, 2 * PAGE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    char *c = map(PAGE + 1, MAP_PRIVATE);
    munmap(c + PAGE, 1);             /* its second page: 4096 bytes stay */
    char *d = map(4 * PAGE, MAP_SHARED);
    char *dup = mremap(d, 0, 4 * PAGE, MREMAP_MAYMOVE);
    return f == b + 2 * PAGE && dup != MAP_FAILED && dup != d ? 0 : 1;
}
