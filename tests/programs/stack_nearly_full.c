/* Lowers its stack limit to 256 KiB, recurses until about argv[1] KiB of it are left, says
 * "ready" and waits there until the file `shallow` exists; back at main it makes the file `back`,
 * waits for `done`,
 * mallocs, prints "ok 1" and exits 0. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

static char *top;
static long limit, left;

static int rec(int d) {
    volatile char buf[1024];
    buf[0] = (char)d;
    char here;
    if (top - &here > limit - left) {
        printf("ready\n");
        fflush(stdout);
        while (access("shallow", F_OK) != 0)
            usleep(20000);
        return buf[0];
    }
    return rec(d + 1) + buf[0];
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    struct rlimit r;
    getrlimit(RLIMIT_STACK, &r);
    r.rlim_cur = 256 * 1024;
    if (setrlimit(RLIMIT_STACK, &r) != 0)
        return 2;
    char t;
    top = &t;
    limit = 256 * 1024;
    left = atol(argv[1]) * 1024;
    rec(0);
    fclose(fopen("back", "w"));
    while (access("done", F_OK) != 0)
        usleep(20000);
    void *volatile m = malloc(100000);
    printf("ok %d\n", m != NULL);
    return 0;
}
