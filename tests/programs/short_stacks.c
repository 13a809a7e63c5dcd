/* Allocations on stacks the unwinder may not walk: a ucontext coroutine on a stack of its own
   (bounds the tracker cannot know) and a thread on a stack of PTHREAD_STACK_MIN (no room for
   the walk). Each keeps its call site under a `<stack stops short>` mark. */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <ucontext.h>

void *volatile kept[2];
static ucontext_t main_context, coroutine_context;

__attribute__((noinline)) static void coroutine_inner(void) {
    kept[0] = malloc(5555); /* SITE coroutine */
}

__attribute__((noinline)) static void coroutine(void) { coroutine_inner(); }

__attribute__((noinline)) static void small_thread_inner(void) {
    kept[1] = malloc(6666); /* SITE small_thread */
}

static void *small_thread(void *arg) {
    (void)arg;
    small_thread_inner();
    return 0;
}

int main(void) {
    static char coroutine_stack[1 << 16];
    getcontext(&coroutine_context);
    coroutine_context.uc_stack.ss_sp = coroutine_stack;
    coroutine_context.uc_stack.ss_size = sizeof coroutine_stack;
    coroutine_context.uc_link = &main_context;
    makecontext(&coroutine_context, coroutine, 0);
    swapcontext(&main_context, &coroutine_context);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, PTHREAD_STACK_MIN);
    pthread_t t;
    if (pthread_create(&t, &attr, small_thread, 0) != 0) return 1;
    pthread_join(t, 0);
    return 0;
}
