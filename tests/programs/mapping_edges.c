// Mapping calls whose effect on the address space the capture must follow exactly; argv[1]
// picks one, and the program prints the anonymous memory it leaves mapped (bytes, mappings).
// P is the page size.
//   short_unmap   3 pages; munmap(a, 3P - 100): the kernel unmaps whole pages, all gone.
//   head_unmap    3 pages; munmap(a, 100): the first page gone.
//   short_mremap  3 pages; mremap(a, 3P - 100, P): shrunk to one page in place.
//   raw           syscall(SYS_mmap) of 8 pages, syscall(SYS_mremap) of 4 pages to 16,
//                 syscall(SYS_munmap) of the 8: 16 pages left in one mapping.
//   fixed_file    10 anonymous pages; a file mapped with MAP_FIXED over 2 of them.
//   dontunmap     4 pages moved with MREMAP_DONTUNMAP: both ranges stay mapped.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

static char *anon(size_t len) {
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) exit(3);
    return p;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0); // no buffer of its own live at exit
    if (argc < 2) return 2;
    const char *mode = argv[1];
    size_t P = (size_t)sysconf(_SC_PAGESIZE);
    if (!strcmp(mode, "short_unmap")) {
        char *a = anon(3 * P);
        if (munmap(a, 3 * P - 100)) return 4;
        printf("0 0\n");
    } else if (!strcmp(mode, "head_unmap")) {
        char *a = anon(3 * P);
        if (munmap(a, 100)) return 4;
        printf("%zu 1\n", 2 * P);
    } else if (!strcmp(mode, "short_mremap")) {
        char *a = anon(3 * P);
        if (mremap(a, 3 * P - 100, P, 0) != a) return 4;
        printf("%zu 1\n", P);
    } else if (!strcmp(mode, "raw")) {
        long a = syscall(SYS_mmap, 0, 8 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        char *b = anon(4 * P);
        long c = syscall(SYS_mremap, b, 4 * P, 16 * P, MREMAP_MAYMOVE, 0);
        if (a == -1 || c == -1) return 4;
        if (syscall(SYS_munmap, a, 8 * P)) return 5;
        printf("%zu 1\n", 16 * P);
    } else if (!strcmp(mode, "fixed_file")) {
        char path[] = "/tmp/mapping_edges_XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0 || ftruncate(fd, 2 * P)) return 4;
        unlink(path);
        char *a = anon(10 * P);
        if (mmap(a + 3 * P, 2 * P, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0) == MAP_FAILED) return 5;
        printf("%zu 2\n", 8 * P);
    } else if (!strcmp(mode, "dontunmap")) {
        char *a = anon(4 * P);
        if (mremap(a, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0) == MAP_FAILED) {
            printf("unsupported\n");
            return 0;
        }
        printf("%zu 2\n", 8 * P);
    } else {
        return 2;
    }
    return 0;
}
