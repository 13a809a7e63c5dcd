/* The main thread runs on a small stack taken from malloc (a coroutine's, by makecontext),
   inside the heap right above a block filled with a known byte. An attach that counted the
   heap below the stack pointer as free stack ran its calls there and wrote over that block.
   Prints "ready" on the coroutine's stack, waits for the file "go", then prints how many bytes
   of the block changed ("damaged N") and exits 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define STACK (12 * 1024)
#define BLOCK (120 * 1024)

static ucontext_t main_context, coroutine;

static void body(void) {
    puts("ready");
    fflush(stdout);
    while (access("go", F_OK) != 0) {
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
}

int main(void) {
    unsigned char *block = malloc(BLOCK);
    memset(block, 0xA5, BLOCK);
    unsigned char *stack = malloc(STACK);
    getcontext(&coroutine);
    coroutine.uc_stack.ss_sp = stack;
    coroutine.uc_stack.ss_size = STACK;
    coroutine.uc_link = &main_context;
    makecontext(&coroutine, body, 0);
    swapcontext(&main_context, &coroutine);
    size_t damaged = 0;
    for (size_t i = 0; i < BLOCK; i++) {
        damaged += block[i] != 0xA5;
    }
    printf("damaged %zu\n", damaged);
    return 0;
}
