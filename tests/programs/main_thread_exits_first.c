/* main keeps a block of 5,000 bytes (freed by a destructor, at the very end), starts a thread
   that allocates 10 blocks of 1,000 bytes and keeps them, and ends with pthread_exit: the
   process ends with that thread, through the C library's own exit. Live at exit: all 11. */
#include <pthread.h>
#include <stdlib.h>

static void *kept;

__attribute__((destructor)) static void bye(void) { free(kept); }

static void *work(void *arg) {
    for (int i = 0; i < 10; i++) {
        void *volatile p = malloc(1000);
        (void)p;
    }
    return arg;
}

int main(void) {
    kept = malloc(5000);
    pthread_t t;
    pthread_create(&t, 0, work, 0);
    pthread_exit(0);
}
