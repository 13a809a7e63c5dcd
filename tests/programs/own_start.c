/* A program with an entry point of its own (built with -nostartfiles: no __libc_start_main,
 * so no one runs the libraries' destructors at exit): 10 allocations of 100-109 bytes, 5 of
 * them freed, "own start" on stdout, exit(7). x86-64 only. */
#include <stdlib.h>
#include <unistd.h>

__asm__(".globl _start\n"
        "_start:\n"
        "  xor %rbp, %rbp\n"
        "  and $-16, %rsp\n"
        "  call own_main\n"
        "  hlt\n");

void own_main(void) {
    void *blocks[10];
    for (int i = 0; i < 10; i++)
        blocks[i] = malloc(100 + i);
    for (int i = 0; i < 5; i++)
        free(blocks[i]);
    if (write(1, "own start\n", 10) != 10)
        _exit(9);
    exit(7);
}
