/* A signal handler jumps out of an allocation function: free of a bad pointer faults inside
   the C library's free, and the SIGSEGV handler siglongjmps back. Then 1,000 blocks of 1,000
   bytes are allocated and freed (with an argument, one call deeper, under a 4 KiB buffer: below
   the abandoned hook's frame, over its words), and one line is printed. Under memtrace the hook of that free
   never returned: the thread's later events cannot be recorded, and the capture must say so
   (they went missing silently). */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static sigjmp_buf back;

static void on_segv(int sig) {
    (void)sig;
    siglongjmp(back, 1);
}

static void allocate(void) {
    for (int i = 0; i < 1000; i++) {
        void *volatile p = malloc(1000);
        free(p);
    }
}

__attribute__((noinline)) static void deeper(void) {
    volatile char big[4096];
    for (unsigned i = 0; i < sizeof big; i++) big[i] = 1;
    allocate();
}

int main(int argc, char **argv) {
    (void)argv;
    struct sigaction sa = {0};
    sa.sa_handler = on_segv;
    sigaction(SIGSEGV, &sa, 0);
    int jumped = 0;
    if (sigsetjmp(back, 1) == 0) {
        free((void *)0x1000);
    } else {
        jumped = 1;
    }
    if (argc > 1) {
        deeper();
    } else {
        allocate();
    }
    printf("jumped back: %d\n", jumped);
    return 0;
}
