/* Hard cases for the tracker: fork while other threads allocate, exec, a crash, failing
   allocations. Usage: stress MODE. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int stop;

static void *spin_alloc(void *arg) {
    (void)arg;
    while (!stop) {
        void *p = malloc(100);
        *(volatile char *)p = 1;
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "fork-threads")) {       /* 50 forks while 3 threads allocate */
        pthread_t t[3];
        for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, spin_alloc, NULL);
        int ok = 0;
        for (int i = 0; i < 50; i++) {
            pid_t pid = fork();
            if (pid == 0) {
                void *p = malloc(1234);
                *(volatile char *)p = 1;
                free(p);
                _exit(7);
            }
            int st;
            waitpid(pid, &st, 0);
            ok += WIFEXITED(st) && WEXITSTATUS(st) == 7;
        }
        stop = 1;
        for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
        printf("children ok: %d\n", ok);
    } else if (!strcmp(mode, "segv")) {        /* leaks 3 x 777, then crashes */
        for (int i = 0; i < 3; i++) *(volatile char *)malloc(777) = 1;
        *(volatile int *)0 = 1;
    } else if (!strcmp(mode, "huge")) {        /* a request that must fail */
        void *p = malloc((size_t)1 << 62);
        printf("huge: %s\n", p ? "allocated" : "failed");
    } else if (!strcmp(mode, "exec")) {        /* execs a shell that echoes */
        *(volatile char *)malloc(555) = 1;
        execl("/bin/sh", "sh", "-c", "echo from-exec", (char *)NULL);
        return 99;
    } else if (!strcmp(mode, "exit-threads")) { /* exit() while threads still allocate */
        pthread_t t[4];
        for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, spin_alloc, NULL);
        usleep(20000);
        printf("exiting\n");
        exit(0);
    }
    return 0;
}
