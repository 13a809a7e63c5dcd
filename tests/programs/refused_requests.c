/* Requests the allocator refuses, one of each kind, each on its own line: malloc (line 12),
 * posix_memalign (14), memalign (16), aligned_alloc (18), valloc (20), reallocarray whose
 * product overflows (22). Prints what each returned and its errno, as the program saw them. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    errno = 0; void *a = malloc(SIZE_MAX - 4096); int ea = errno;
    void *b = NULL;
    errno = 0; int rb = posix_memalign(&b, 64, SIZE_MAX - 4096); int eb = errno;
    void *c;
    errno = 0; c = memalign(64, SIZE_MAX - 4096); int ec = errno;
    void *d;
    errno = 0; d = aligned_alloc(64, SIZE_MAX - 4095 - 64); int ed = errno;
    void *e;
    errno = 0; e = valloc(SIZE_MAX - 4096); int ee = errno;
    void *f;
    errno = 0; f = reallocarray(NULL, SIZE_MAX / 2, 4); int ef = errno;
    printf("malloc %d %d\n", a == NULL, ea);
    printf("posix_memalign %d %d %d\n", rb, b == NULL, eb);
    printf("memalign %d %d\n", c == NULL, ec);
    printf("aligned_alloc %d %d\n", d == NULL, ed);
    printf("valloc %d %d\n", e == NULL, ee);
    printf("reallocarray %d %d\n", f == NULL, ef);
    return 0;
}
