/* memtrace's test of which captures beside a root belong to its run: forks N children that each
 * allocate BYTES and hold them until all of them do, while the parent holds 1000 bytes to its
 * end (the combined peak: N * BYTES + 1000). No stdio: every byte allocated is one of these.
 * Usage: family_runs N BYTES */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3)
        return 2;
    int n = atoi(argv[1]);
    size_t bytes = strtoul(argv[2], NULL, 10);
    int ready[2], go[2];
    if (pipe(ready) != 0 || pipe(go) != 0)
        return 2;
    char *mine = malloc(1000);
    memset(mine, 1, 1000);
    for (int i = 0; i < n; i++) {
        if (fork() == 0) {
            char *p = malloc(bytes);
            memset(p, 1, bytes);
            char c = 1;
            if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
                _exit(1);
            _exit(0);
        }
    }
    char c;
    for (int i = 0; i < n; i++)
        if (read(ready[0], &c, 1) != 1)
            return 1;
    for (int i = 0; i < n; i++)
        if (write(go[1], &c, 1) != 1)
            return 1;
    int failed = 0;
    for (int i = 0; i < n; i++) {
        int st;
        wait(&st);
        failed |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    return failed + (mine[999] != 1);
}
