/* memtrace's test of the family of an exec'd image: `family_exec root` execs itself as
 * `parent`, which forks a child that execs itself as `child`; that image allocates 1 MiB and
 * forks a grandchild that allocates 3000 bytes. The parent holds 1000 bytes. No stdio.
 * Captures: ROOT (root), ROOT.exec1 (parent), ROOT.C (the child before its exec),
 * ROOT.C.exec1 (child), ROOT.G (grandchild). */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int wait_ok(pid_t p) {
    int st;
    return waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    if (strcmp(argv[1], "root") == 0) {
        char *next[] = {argv[0], "parent", NULL};
        execv(argv[0], next);
        return 2;
    }
    if (strcmp(argv[1], "parent") == 0) {
        char *mine = malloc(1000);
        memset(mine, 1, 1000);
        pid_t c = fork();
        if (c == 0) {
            char *next[] = {argv[0], "child", NULL};
            execv(argv[0], next);
            _exit(2);
        }
        int ok = wait_ok(c);
        free(mine);
        return ok ? 0 : 1;
    }
    char *held = malloc(1 << 20);
    memset(held, 1, 1 << 20);
    pid_t g = fork();
    if (g == 0) {
        char *p = malloc(3000);
        memset(p, 1, 3000);
        _exit(0);
    }
    return wait_ok(g) ? 0 : 1;
}
