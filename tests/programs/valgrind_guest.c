/* Run under valgrind by a tracked program: 7 blocks of 4321 bytes from guest_work, kept to the
 * end; prints one line and exits 3. valgrind's tool is statically linked and runs this program
 * in its own process, through this program's loader (which preloads the tracker). */
#include <stdio.h>
#include <stdlib.h>

void *volatile keep[7];

__attribute__((noinline)) void guest_work(int at) {
    keep[at] = malloc(4321);
}

int main(void) {
    for (int i = 0; i < 7; i++)
        guest_work(i);
    puts("guest done");
    return 3;
}
