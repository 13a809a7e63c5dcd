/* A program whose executable exports the allocation functions as its own PLT stubs: built
   -no-pie -fno-pic, it takes their addresses (the pointers below), so the linker gives each a
   canonical PLT entry, as Debian's /usr/bin/python3 has for malloc and free. A tracker that
   took such a stub for the real function would call itself forever.
   Usage: nopie [none]. Each allocation has its own line; exits with status 3 through exit's
   pointer. Built with -O0 -fno-builtin so every call really happens. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static void *(*volatile use_malloc)(size_t);
static void *(*volatile use_calloc)(size_t, size_t);
static void *(*volatile use_realloc)(void *, size_t);
static void (*volatile use_free)(void *);
static int (*volatile use_posix_memalign)(void **, size_t, size_t);
static void *(*volatile use_aligned_alloc)(size_t, size_t);
static void *(*volatile use_mmap)(void *, size_t, int, int, int, off_t);
static int (*volatile use_munmap)(void *, size_t);
static void (*volatile use_exit)(int);

/* Taken in code (an absolute address in an instruction), not in initialized data (which the
   linker could leave to a dynamic relocation): each needs the canonical PLT entry. */
static void take_addresses(void) {
    use_malloc = malloc;
    use_calloc = calloc;
    use_realloc = realloc;
    use_free = free;
    use_posix_memalign = posix_memalign;
    use_aligned_alloc = aligned_alloc;
    use_mmap = mmap;
    use_munmap = munmap;
    use_exit = exit;
}

static volatile char sink;

static void touch(void *p) { sink = *(volatile char *)p; }

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    take_addresses();
    if (argc > 1 && !strcmp(argv[1], "none"))
        use_exit(0);
    char *a = use_malloc(1111);
    char *b = use_calloc(3, 700);
    b = use_realloc(b, 4444);
    void *c = NULL;
    if (use_posix_memalign(&c, 64, 3333) != 0)
        return 1;
    void *d = use_aligned_alloc(256, 5120);
    void *m = use_mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    touch(a), touch(b), touch(c), touch(d), touch(m);
    use_munmap(m, 65536);
    use_free(a);
    use_free(b);
    use_free(c);
    printf("done\n");
    use_exit(3);
}
