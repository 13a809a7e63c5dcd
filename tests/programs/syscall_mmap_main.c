// Maps 10 pages through syscall_mmap_lib.so's mmap and keeps them; maps 4 more and unmaps them.
#include <stdio.h>
#include <sys/mman.h>

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    void *kept = mmap(NULL, 10 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *gone = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (kept == MAP_FAILED || gone == MAP_FAILED || munmap(gone, 4 * 4096)) return 3;
    printf("mapped\n");
    return 0;
}
