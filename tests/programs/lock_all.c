/* Locks its memory (mlockall(MCL_CURRENT), as gpg-agent or a real-time program does), says
   whether that worked, then allocates 1,000 blocks of 1,000 bytes and frees them. Run as a user
   without CAP_IPC_LOCK, under the default lock limit (8 MiB), it locks fine alone; under
   memtrace the capture's reservation counted against the limit and mlockall failed (ENOMEM). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int main(void) {
    int r = mlockall(MCL_CURRENT);
    printf("mlockall: %s\n", r == 0 ? "ok" : strerror(errno));
    for (int i = 0; i < 1000; i++) {
        void *volatile p = malloc(1000);
        free(p);
    }
    return 0;
}
