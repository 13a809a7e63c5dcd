/* Allocates 1,000 blocks of 1,000 bytes (freeing every other one), then ends itself with
   SIGTERM sent by sigqueue (argument 1), pthread_kill (2) or tgkill (3). Such an end runs no
   exit handler: memtrace must finish the capture before the signal goes, as it does for kill
   and raise (a capture without its end read as "the process was killed"). */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    for (int i = 0; i < 1000; i++) {
        void *volatile p = malloc(1000);
        if (i % 2) free(p);
    }
    int how = argc > 1 ? atoi(argv[1]) : 0;
    if (how == 1) {
        union sigval v = {0};
        sigqueue(getpid(), SIGTERM, v);
    } else if (how == 2) {
        pthread_kill(pthread_self(), SIGTERM);
    } else if (how == 3) {
        tgkill(getpid(), gettid(), SIGTERM);
    }
    sleep(5);
    return 0;
}
