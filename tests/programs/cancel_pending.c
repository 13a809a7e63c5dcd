/* Workers with a pthread_cancel pending (deferred, the default) allocate, each at a call site
   of its own, before they check for it with pthread_testcancel: malloc and free are no
   cancellation points, so each reaches its check. Under memtrace the tracker's first table of
   a site called getrandom (a cancellation point), the thread ended inside malloc with the
   table's lock held, and the process hung. Prints how many workers reached their check. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORKERS 8
static volatile int cancel_sent[WORKERS], checked[WORKERS];

#define SITE(k) \
    static void site##k(void) { char *volatile p = malloc(100 + k); strcpy(p, "x"); free(p); }
SITE(0) SITE(1) SITE(2) SITE(3) SITE(4) SITE(5) SITE(6) SITE(7)
static void (*const sites[WORKERS])(void) = {site0, site1, site2, site3, site4, site5, site6, site7};

static void *worker(void *arg) {
    long k = (long)arg;
    while (!cancel_sent[k]) {
    }
    sites[k]();
    checked[k] = 1;
    pthread_testcancel();
    return 0;
}

int main(void) {
    int reached = 0, cancelled = 0;
    for (long k = 0; k < WORKERS; k++) {
        pthread_t t;
        pthread_create(&t, 0, worker, (void *)k);
        pthread_cancel(t);
        cancel_sent[k] = 1;
        void *r;
        pthread_join(t, &r);
        cancelled += r == PTHREAD_CANCELED;
        reached += checked[k];
    }
    printf("cancelled %d, reached their check %d\n", cancelled, reached);
    return 0;
}
