/* fork_churn N: forks, then parent and child each make N allocations of varied sizes (16 to
 * 4 KiB), each freeing a block picked at random among the last 4096 made: captures of some
 * tens of MB for a family. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000;
    static void *live[4096];
    pid_t pid = fork();
    unsigned long x = pid == 0 ? 88172645463325252ul : 2463534242ul;
    for (long i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        unsigned slot = x % 4096;
        free(live[slot]);
        live[slot] = malloc(16 + (x >> 20) % 4080);
    }
    if (pid == 0)
        _exit(0);
    waitpid(pid, NULL, 0);
    return 0;
}
