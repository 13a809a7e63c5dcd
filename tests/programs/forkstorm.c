/* Forks many times while other threads do every kind of tracker work at once: allocations of
   every function, mmap, threads born and ending (each ends with a flush, which reads the
   thread-name table), renamed threads, a library loaded and unloaded (the module table, the
   unwinder's snapshot, dl_iterate_phdr). Each child allocates, calls the library the parent
   keeps loaded (a child must not dlopen: glibc's loader, caught mid-dlopen by the fork, asserts
   or hangs there, tracked or not), runs a thread and exits with its own status; the parent
   checks every status. Usage: forkstorm FORKS KEPT-LIBRARY LOADED-LIBRARY (two copies of
   native_lib.c). Prints "children ok: N". */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int stop;
static const char *library;
static void *(*kept_alloc)(size_t);

__attribute__((noipa)) static void *leaf(size_t n) {
    char *p = malloc(n);
    if (p) p[0] = 1;
    return p;
}

__attribute__((noipa)) static void *middle(size_t n) { return leaf(n); }

/* Every allocation function, through a few frames (native unwinding). */
static void *allocator(void *arg) {
    unsigned n = (unsigned)(size_t)arg;
    while (!stop) {
        n = n * 1103515245u + 12345u;
        void *a = middle(16 + n % 4000);
        void *b = calloc(4, 8 + n % 64);
        b = realloc(b, 512 + n % 2048);
        void *c = NULL;
        if (posix_memalign(&c, 64, 200) != 0) c = NULL;
        void *d = aligned_alloc(32, 96);
        free(a);
        free(b);
        free(c);
        free(d);
    }
    return NULL;
}

/* mmap and munmap, and the thread's name changing. */
static void *mapper(void *arg) {
    (void)arg;
    char name[16];
    for (unsigned i = 0; !stop; i++) {
        void *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m != MAP_FAILED) {
            ((char *)m)[0] = 1;
            munmap(m, 1 << 16);
        }
        snprintf(name, sizeof name, "mapper-%u", i % 1000);
        pthread_setname_np(pthread_self(), name);
    }
    return NULL;
}

static void *short_lived(void *arg) {
    (void)arg;
    free(middle(300));
    return NULL;
}

/* Threads born and ending one after the other: each claims a state and flushes at its end. */
static void *spawner(void *arg) {
    (void)arg;
    while (!stop) {
        pthread_t t;
        if (pthread_create(&t, NULL, short_lived, NULL) == 0) pthread_join(t, NULL);
    }
    return NULL;
}

/* A library loaded, called and unloaded. */
static void *loader(void *arg) {
    (void)arg;
    while (!stop) {
        void *h = dlopen(library, RTLD_NOW | RTLD_LOCAL);
        if (!h) continue;
        void *(*f)(size_t) = (void *(*)(size_t))dlsym(h, "lib_alloc");
        if (f) free(f(128));
        dlclose(h);
    }
    return NULL;
}

static void *child_thread(void *arg) {
    free(middle((size_t)arg));
    return NULL;
}

/* What a child does: allocate, call the kept library, run a thread; its status says it got
   there. */
static void child(int status) {
    free(middle(1234));
    free(kept_alloc(4321));
    pthread_t t;
    if (pthread_create(&t, NULL, child_thread, (void *)(size_t)777) != 0) _exit(202);
    pthread_join(t, NULL);
    _exit(status);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 4) return 2;
    int forks = atoi(argv[1]);
    void *kept = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
    kept_alloc = kept ? (void *(*)(size_t))dlsym(kept, "lib_alloc") : NULL;
    if (!kept_alloc) return 3;
    library = argv[3];
    void *(*work[])(void *) = {allocator, allocator, mapper, spawner, loader};
    enum { WORKERS = sizeof work / sizeof work[0] };
    pthread_t t[WORKERS];
    for (int i = 0; i < WORKERS; i++) pthread_create(&t[i], NULL, work[i], (void *)(size_t)(i + 1));
    int ok = 0;
    for (int i = 0; i < forks; i++) {
        int status = 1 + i % 100;
        pid_t pid = fork();
        if (pid == 0) child(status);
        if (pid < 0) break;
        int st;
        if (waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == status) ok++;
        else fprintf(stderr, "child %d: wait status %#x, expected exit %d\n", (int)pid, st, status);
    }
    stop = 1;
    for (int i = 0; i < WORKERS; i++) pthread_join(t[i], NULL);
    printf("children ok: %d\n", ok);
    return 0;
}
