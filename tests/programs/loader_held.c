/* memtrace attach's test program for a call that has to wait: a thread holds the loader's lock
 * (inside a dl_iterate_phdr callback) until the file `release` exists (at most a minute) while the main thread spins in its own
 * code until SIGUSR1, so an injected dlopen waits for that lock. Writes "holding" once the lock
 * is held; at the end prints "done" and exits with status 8. */
#define _GNU_SOURCE
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_usr1(int sig) {
    (void)sig;
    stop = 1;
}

static int hold(struct dl_phdr_info *info, size_t size, void *data) {
    (void)info;
    (void)size;
    (void)data;
    fclose(fopen("holding", "w"));
    for (int i = 0; i < 3000 && access("release", F_OK) != 0; i++)
        usleep(20000);
    return 1;
}

static void *holder(void *arg) {
    (void)arg;
    dl_iterate_phdr(hold, NULL);
    return NULL;
}

int main(void) {
    signal(SIGUSR1, on_usr1);
    pthread_t t;
    printf("ready\n");
    fflush(stdout);
    pthread_create(&t, NULL, holder, NULL);
    while (!stop)
        ;
    pthread_join(t, NULL);
    printf("done\n");
    return 8;
}
