// A library that defines mmap and munmap itself and makes the system calls through syscall(),
// as gperftools' tcmalloc does: it comes after the preloaded tracker, so its mmap is "the next
// mmap" the tracker's hook passes calls on to.
#define _GNU_SOURCE
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

int munmap(void *addr, size_t len) { return (int)syscall(SYS_munmap, addr, len); }
