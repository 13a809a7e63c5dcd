/* Allocation patterns with known counts and sizes, for the end-to-end tests.
   Usage: patterns MODE [ARGS]. Built with -O0 -fno-builtin so every call really happens.
   stdout is unbuffered so that stdio allocates no buffer; the tests still subtract the "none"
   mode for whatever libc allocates on its own. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile char sink;

static void touch(void *p) { sink = *(volatile char *)p; }

static void *churn(void *arg) {
    long n = (long)arg;
    for (long i = 0; i < n; i++) {
        void *p = malloc(64);
        touch(p);
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *mode = argc > 1 ? argv[1] : "none";
    long n = argc > 2 ? atol(argv[2]) : 0;
    long size = argc > 3 ? atol(argv[3]) : 0;

    if (!strcmp(mode, "none")) {
    } else if (!strcmp(mode, "malloc")) {          /* n blocks of size, all freed */
        void **v = mmap(NULL, n * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        for (long i = 0; i < n; i++) { v[i] = malloc(size); touch(v[i]); }
        for (long i = 0; i < n; i++) free(v[i]);
        munmap(v, n * sizeof(void *));
    } else if (!strcmp(mode, "leak")) {            /* n blocks of size, never freed */
        for (long i = 0; i < n; i++) touch(malloc(size));
    } else if (!strcmp(mode, "calloc")) {          /* n callocs of 4 x size */
        for (long i = 0; i < n; i++) { void *p = calloc(4, size); touch(p); free(p); }
    } else if (!strcmp(mode, "realloc")) {         /* malloc(16), then n reallocs doubling */
        char *p = malloc(16);
        long s = 16;
        for (long i = 0; i < n; i++) { s *= 2; p = realloc(p, s); touch(p); }
        free(p);
    } else if (!strcmp(mode, "aligned")) {         /* one of each aligned allocator */
        void *p = NULL;
        if (posix_memalign(&p, 64, 1000) == 0) { touch(p); free(p); }
        p = aligned_alloc(128, 2048); touch(p); free(p);
        p = memalign(256, 3000); touch(p); free(p);
        p = valloc(5000); touch(p); free(p);
        p = pvalloc(6000); touch(p); free(p);
    } else if (!strcmp(mode, "mmap")) {            /* 16 pages, unmapped in two halves; a file map */
        long page = sysconf(_SC_PAGESIZE);
        char *m = mmap(NULL, 16 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        m[0] = 1;
        munmap(m, 8 * page);
        munmap(m + 8 * page, 8 * page);
        FILE *f = fopen("/proc/self/exe", "r");
        void *file_map = mmap(NULL, page, PROT_READ, MAP_PRIVATE, fileno(f), 0);
        munmap(file_map, page);
        fclose(f);
    } else if (!strcmp(mode, "peak")) {            /* peak of 10 MB + 1 MB in the middle */
        char *a = malloc(10 << 20); touch(a);
        char *b = malloc(1 << 20); touch(b);
        free(a);
        char *c = malloc(5 << 20); touch(c);
        free(b); free(c);
    } else if (!strcmp(mode, "threads")) {         /* n threads x size malloc(64)/free pairs */
        pthread_t t[64];
        for (long i = 0; i < n && i < 64; i++) pthread_create(&t[i], NULL, churn, (void *)size);
        for (long i = 0; i < n && i < 64; i++) pthread_join(t[i], NULL);
    } else if (!strcmp(mode, "fork")) {            /* child leaks n x 1000, parent leaks 7 x 3000 */
        pid_t pid = fork();
        if (pid == 0) {
            for (long i = 0; i < n; i++) touch(malloc(1000));
            _exit(0);
        }
        for (int i = 0; i < 7; i++) touch(malloc(3000));
        int st;
        waitpid(pid, &st, 0);
    } else if (!strcmp(mode, "exit")) {            /* leaks one block and exits with status n */
        touch(malloc(4242));
        exit((int)n);
    } else if (!strcmp(mode, "kill")) {            /* leaks n x size, then is SIGKILLed */
        for (long i = 0; i < n; i++) touch(malloc(size));
        /* The system call, not libc's kill: as if killed from outside. */
        syscall(SYS_kill, getpid(), SIGKILL);
    } else if (!strcmp(mode, "raise")) {           /* leaks n x size, then raise(SIGTERM) */
        for (long i = 0; i < n; i++) touch(malloc(size));
        raise(SIGTERM);
    } else if (!strcmp(mode, "killgroup")) {       /* leaks n x size, then kill(0, SIGTERM) */
        for (long i = 0; i < n; i++) touch(malloc(size));
        kill(0, SIGTERM);
    } else if (!strcmp(mode, "killpg")) {          /* leaks n x size, then killpg(own, SIGTERM) */
        for (long i = 0; i < n; i++) touch(malloc(size));
        killpg(getpgrp(), SIGTERM);
    } else if (!strcmp(mode, "echo")) {            /* copies stdin to stdout through malloc'd lines */
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        while ((len = getline(&line, &cap, stdin)) > 0) fwrite(line, 1, len, stdout);
        free(line);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    printf("done %s\n", mode);
    return 0;
}
