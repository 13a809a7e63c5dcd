/* Allocates 20,000 blocks of 100 to 20,099 bytes through lib_allocator.c's own entry (as a C++
   program's operator new reaches jemalloc or tcmalloc without passing through malloc), each
   freed at once; then "done". Built with -DCXX it also calls operator new once, as a C++
   program's code does. */
#include <stdio.h>

#ifdef CXX
void *_Znwm(unsigned long n);
#endif

void *lock_alloc(unsigned long n);
void lock_free(void *p);

int main(void) {
    for (int i = 0; i < 20000; i++) {
        void *volatile p = lock_alloc(100 + i);
        lock_free(p);
    }
#ifdef CXX
    void *volatile object = _Znwm(16);
    (void)object;
#endif
    puts("done");
    return 0;
}
