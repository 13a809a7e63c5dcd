/* A forked child execs this program with arguments of a given total size, to find the
   argument limit (E2BIG) and to run just below it.
   Usage: exec_limits probe    prints the largest total N (bytes of argument text) for which
                               the child's exec succeeds
          exec_limits run N    the child execs with N bytes of arguments; prints "child exec
                               ok" or "child exec failed: E2BIG"
          exec_limits child    (the exec'd child) exits 42 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define PIECE 100000

/* 42: the exec worked; 90: E2BIG; 91: another error. */
static int child_exec(const char *self, long total) {
    pid_t pid = fork();
    if (pid == 0) {
        long pieces = total / PIECE + 1;
        char **args = calloc(pieces + 3, sizeof *args);
        char *text = malloc(total + pieces);
        args[0] = (char *)self;
        args[1] = "child";
        long at = 0;
        for (long i = 0; i < pieces; i++) {
            long n = total - i * PIECE < PIECE ? total - i * PIECE : PIECE;
            memset(text + at, 'x', n);
            text[at + n] = 0;
            args[2 + i] = text + at;
            at += n + 1;
        }
        execve(self, args, environ);
        _exit(errno == E2BIG ? 90 : 91);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "child") == 0) {
        return 42;
    }
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    if (argc > 1 && strcmp(argv[1], "probe") == 0) {
        long lo = 0, hi = 64L << 20;
        while (hi - lo > 1) {
            long mid = lo + (hi - lo) / 2;
            if (child_exec(self, mid) == 42) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        printf("%ld\n", lo);
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "run") == 0) {
        int r = child_exec(self, atol(argv[2]));
        printf(r == 42 ? "child exec ok\n" : r == 90 ? "child exec failed: E2BIG\n" : "child exec failed\n");
        return 0;
    }
    fprintf(stderr, "usage: exec_limits probe | run N\n");
    return 2;
}
