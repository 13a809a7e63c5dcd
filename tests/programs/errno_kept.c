/* Checks that errno survives its own code: read() on an empty non-blocking pipe fails with
 * EAGAIN, then a spin in the program's own code, then errno is read. Says "ready", runs until
 * the file `done` exists, then prints how many checks found another errno; exit 1 if any. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
    int p[2];
    if (pipe(p) != 0 || fcntl(p[0], F_SETFL, O_NONBLOCK) != 0)
        return 2;
    printf("ready\n");
    fflush(stdout);
    long bad = 0, checks = 0;
    int seen = 0;
    char b;
    while (access("done", F_OK) != 0) {
        for (int round = 0; round < 100; round++) {
            errno = 0;
            if (read(p[0], &b, 1) < 0) {
                for (volatile int i = 0; i < 100000; i++)
                    ;
                if (errno != EAGAIN) {
                    bad++;
                    seen = errno;
                }
                checks++;
            }
        }
    }
    printf("checks %s bad %ld errno %d\n", checks > 0 ? "made" : "none", bad, seen);
    return bad ? 1 : 0;
}
