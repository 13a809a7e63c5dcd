// A child made without fork()'s handlers: glibc's _Fork() (argv[1] "_Fork") or a raw clone
// system call (argv[1] "clone"). The child makes 50 allocations of 200 bytes, frees them and
// ends with exit(3), which runs the exit handlers and the libraries' destructors in the child.
// The parent keeps 10 blocks of 1,000 bytes made before the child, waits for it, then makes
// 1,000 allocations of 100 bytes (freed) and keeps 10 of 1,001 bytes.
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile kept[20];

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    for (int i = 0; i < 10; i++) kept[i] = malloc(1000);
    pid_t c = strcmp(argv[1], "_Fork") == 0 ? _Fork() : (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (c < 0) return 2;
    if (c == 0) {
        for (int i = 0; i < 50; i++) {
            void *volatile p = malloc(200);
            free(p);
        }
        exit(3);
    }
    int st = 0;
    waitpid(c, &st, 0);
    for (int i = 0; i < 1000; i++) {
        void *volatile p = malloc(100);
        free(p);
    }
    for (int i = 10; i < 20; i++) kept[i] = malloc(1001);
    printf("child exited %d\n", WEXITSTATUS(st));
    return 0;
}
