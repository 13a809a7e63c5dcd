/* A parent and a child whose heaps peak at different times (tests/tests/aggregate.rs).
 * Mode "fork-after-free": the parent holds 100 blocks of 100,000 bytes, frees 50 and forks at
 * once; the child holds 60 more: the combined peak is 5,000,000 + 6,000,000 bytes.
 * Mode "fork-after-pause": the parent holds 100 blocks, frees them all, pauses 300 ms, keeps
 * one block of 10 bytes and forks; the child holds 80 blocks: the combined peak is the
 * parent's own 10,000,000 (8,000,010 with the child). */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define BLOCK 100000

static void *blocks[100];

static void hold(int n) {
    for (int i = 0; i < n; i++) {
        blocks[i] = malloc(BLOCK);
        memset(blocks[i], 1, 64);
    }
}

static void release(int from, int to) {
    for (int i = from; i < to; i++)
        free(blocks[i]);
}

int main(int argc, char **argv) {
    int pause = argc > 1 && strcmp(argv[1], "fork-after-pause") == 0;
    hold(100);
    if (pause) {
        release(0, 100);
        usleep(300000);
        blocks[0] = malloc(10);
    } else {
        release(0, 50);
    }
    pid_t pid = fork();
    if (pid == 0) {
        hold(pause ? 80 : 60);
        usleep(50000);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    return 0;
}
