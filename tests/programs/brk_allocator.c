/* An allocator of its own in a shared library that manages the program break itself: it
   remembers where its heap ends and calls brk(end) to grow it (not sbrk increments), as simple
   allocators do. Another heap grown with sbrk in between (the C library's) is cut off by its
   next brk: the tracker's memory must not live there. */
#define _DEFAULT_SOURCE
#include <unistd.h>
#include <string.h>
#include <stdio.h>
#include <stdint.h>
#include <errno.h>
#include <sys/mman.h>
static char *base, *cur, *end;
static void *bump(size_t n, size_t align) {
    if (!base) { base = cur = end = sbrk(0); }
    uintptr_t p = ((uintptr_t)cur + align - 1) & ~(uintptr_t)(align - 1);
    char *q = (char *)p + n;
    if (q > end) {
        char *ne = (char *)(((uintptr_t)q + 65535) & ~(uintptr_t)65535);
        if (brk(ne) != 0) { errno = ENOMEM; return 0; }
        end = ne;
    }
    cur = q;
    return (void *)p;
}
void *malloc(size_t n) { size_t *p = bump(n + 16, 16); if (!p) return 0; p[0] = n; return p + 2; }
void free(void *p) { (void)p; }
void *calloc(size_t a, size_t b) { void *p = malloc(a * b); if (p) memset(p, 0, a * b); return p; }
void *realloc(void *o, size_t n) { void *p = malloc(n); if (p && o) { size_t m = ((size_t *)o)[-2]; memcpy(p, o, m < n ? m : n); } return p; }
int posix_memalign(void **r, size_t a, size_t n) { size_t *p = bump(n + a, a); if (!p) return ENOMEM; *r = (char *)p + a; ((size_t*)*r)[-2] = n; return 0; }
void *aligned_alloc(size_t a, size_t n) { void *r; return posix_memalign(&r, a, n) ? 0 : r; }
void *memalign(size_t a, size_t n) { return aligned_alloc(a, n); }
