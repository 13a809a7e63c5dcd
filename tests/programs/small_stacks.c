/* Allocations on stacks the program made small, and in a thread whose first allocation is
 * made inside its own pthread_getattr_np (which holds the thread's lock): under --native the
 * walk must neither overflow a small stack nor wait for that lock. Each site leaves its blocks
 * live, with a size of its own. */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *keep[64];
static int kept;

__attribute__((noinline)) static void small_stack_site(void) {
    for (int i = 0; i < 10; i++)
        keep[kept++] = malloc(1111); /* SITE small_thread */
}

static void *small_thread(void *arg) {
    small_stack_site();
    return arg;
}

__attribute__((noinline)) static void handler_site(void) {
    for (int i = 0; i < 3; i++)
        keep[kept++] = malloc(2222); /* SITE signal_stack */
}

static void on_usr1(int sig) {
    (void)sig;
    handler_site();
}

__attribute__((noinline)) static void deep_site(void) {
    for (int i = 0; i < 2; i++)
        keep[kept++] = malloc(3333); /* SITE after_getattr */
}

static void *getattr_thread(void *arg) {
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return NULL;
    pthread_attr_destroy(&attr);
    deep_site();
    return arg;
}

int main(void) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, PTHREAD_STACK_MIN);
    pthread_t t;
    if (pthread_create(&t, &attr, small_thread, NULL) != 0)
        return 1;
    pthread_join(t, NULL);

    size_t size = sysconf(_SC_SIGSTKSZ);
    stack_t ss = {.ss_sp = malloc(size), .ss_size = size, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0)
        return 2;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);

    if (pthread_create(&t, NULL, getattr_thread, NULL) != 0)
        return 3;
    pthread_join(t, NULL);
    printf("ok %d\n", kept);
    return 0;
}
