/* Allocates 20,000 blocks of 100 to 20,099 bytes through lib_allocator.c's own entry (as a C++
   program's operator new reaches jemalloc or tcmalloc without passing through malloc), each
   freed at once; then "done". */
#include <stdio.h>

void *lock_alloc(unsigned long n);
void lock_free(void *p);

int main(void) {
    for (int i = 0; i < 20000; i++) {
        void *volatile p = lock_alloc(100 + i);
        lock_free(p);
    }
    puts("done");
    return 0;
}
