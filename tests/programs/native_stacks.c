/* Allocations in known functions, for whole native stacks (memtrace run --native).
   Usage: native_stacks levels | signal | altsignal | threads N | dlopen LIB | callers | busy |
   rotate
   Each site allocates a size no other site uses; the markers in comments name the lines the
   test expects in the stacks. Functions are noipa so that -O2 neither inlines, clones nor
   tail-calls them; the empty asm after each call keeps the caller's frame on the stack. */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")
#define NOIPA __attribute__((noipa))

static void *sink[64];

static inline __attribute__((always_inline)) void *inlined_alloc(size_t n) {
    char *p = malloc(n); /* SITE inlined_alloc */
    memset(p, 1, n);
    return p;
}

NOIPA void *level3(size_t n) {
    void *p = malloc(n); /* SITE level3 */
    KEEP(p);
    void *q = inlined_alloc(n + 1111); /* SITE level3_inlined */
    KEEP(q);
    sink[1] = q;
    return p;
}

NOIPA void *level2(size_t n) {
    void *p = level3(n); /* SITE level2 */
    KEEP(p);
    return p;
}

NOIPA void *level1(size_t n) {
    void *p = level2(n); /* SITE level1 */
    KEEP(p);
    return p;
}

NOIPA void *map_pages(size_t pages) {
    void *m = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); /* SITE map_pages */
    KEEP(m);
    return m;
}

NOIPA void handler(int sig) {
    void *p = malloc(3333); /* SITE handler */
    KEEP(p);
    sink[2] = p;
    (void)sig;
}

NOIPA void trigger(int sig) {
    pthread_kill(pthread_self(), sig); /* SITE trigger */
    KEEP(sink);
}

NOIPA void *thread_alloc(size_t n) {
    void *p = malloc(n); /* SITE thread_alloc */
    KEEP(p);
    return p;
}

NOIPA void *thread_main(void *arg) {
    for (int i = 0; i < 1000; i++) {
        void *p = thread_alloc(4444); /* SITE thread_main */
        KEEP(p);
        free(p);
    }
    return arg;
}

/* One allocating function called by two callers of the same shape, in turn: the call site and
   the registers at it are the same each time, only the caller's return address differs. */
NOIPA void *shared_alloc(size_t n) {
    void *p = malloc(n); /* SITE shared_alloc */
    KEEP(p);
    return p;
}

NOIPA void *caller_a(size_t n) {
    void *p = shared_alloc(n); /* SITE caller_a */
    KEEP(p);
    return p;
}

NOIPA void *caller_b(size_t n) {
    void *p = shared_alloc(n); /* SITE caller_b */
    KEEP(p);
    return p;
}

static void *turns[1000];

/* A second call site, reached from one caller at two lines of main: in turn with the two callers
   of shared_alloc, each walk must have its own call path's frames (a thread keeps its last few
   walks, and the same registers at one call site do not make the same stack). */
NOIPA void *other_alloc(size_t n) {
    void *p = malloc(n); /* SITE other_alloc */
    KEEP(p);
    return p;
}

NOIPA void *other_via(size_t n) {
    void *p = other_alloc(n); /* SITE other_via */
    KEEP(p);
    return p;
}

static void *rotation[1600];

/* Six values live across its malloc: at -O2 one of them is kept in rbp, so the frame pointer at
   the call site is another at every call (the walk's trace must not compare it, and must still
   tell its two callers apart). */
static volatile unsigned long busy_sum;
NOIPA void *busy_alloc(size_t n, unsigned long s) {
    unsigned long a = s * 3, b = s ^ 0x55, c = s + 7, d = s * 11, e = s >> 3, f = s * 13;
    __asm__ volatile("" : "+r"(a), "+r"(b), "+r"(c), "+r"(d), "+r"(e), "+r"(f));
    void *p = malloc(n); /* SITE busy_alloc */
    KEEP(p);
    busy_sum += a + b * c + d * e + f;
    return p;
}

NOIPA void *busy_a(size_t n, unsigned long s) {
    void *p = busy_alloc(n, s); /* SITE busy_a */
    KEEP(p);
    return p;
}

NOIPA void *busy_b(size_t n, unsigned long s) {
    void *p = busy_alloc(n, s); /* SITE busy_b */
    KEEP(p);
    return p;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "levels";
    if (!strcmp(mode, "levels")) {
        sink[0] = level1(2222); /* SITE main_levels */
        sink[3] = map_pages(7); /* SITE main_map */
    } else if (!strcmp(mode, "signal") || !strcmp(mode, "altsignal")) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = handler;
        if (!strcmp(mode, "altsignal")) {
            stack_t ss = {.ss_sp = malloc(1 << 16), .ss_size = 1 << 16, .ss_flags = 0};
            sigaltstack(&ss, NULL);
            sa.sa_flags = SA_ONSTACK;
        }
        sigaction(SIGUSR1, &sa, NULL);
        trigger(SIGUSR1); /* SITE main_signal */
    } else if (!strcmp(mode, "threads")) {
        int n = argc > 2 ? atoi(argv[2]) : 16;
        pthread_t t[64];
        for (int i = 0; i < n && i < 64; i++) pthread_create(&t[i], NULL, thread_main, NULL);
        for (int i = 0; i < n && i < 64; i++) pthread_join(t[i], NULL);
    } else if (!strcmp(mode, "callers")) {
        for (int i = 0; i < 500; i++) {
            turns[2 * i] = caller_a(1201); /* SITE main_a */
            turns[2 * i + 1] = caller_b(1301); /* SITE main_b */
        }
    } else if (!strcmp(mode, "rotate")) {
        for (int i = 0; i < 400; i++) {
            rotation[4 * i] = caller_a(1601); /* SITE main_rot_a */
            rotation[4 * i + 1] = other_via(1701); /* SITE main_rot_other */
            rotation[4 * i + 2] = caller_b(1601); /* SITE main_rot_b */
            rotation[4 * i + 3] = other_via(1801); /* SITE main_rot_other2 */
        }
    } else if (!strcmp(mode, "busy")) {
        /* Runs from one caller, then the other, then in turn; all live at the end. */
        static void *kept[1000];
        int k = 0;
        for (unsigned long i = 0; i < 300; i++) kept[k++] = busy_a(1401, i); /* SITE main_busy_a */
        for (unsigned long i = 0; i < 300; i++) kept[k++] = busy_b(1501, i); /* SITE main_busy_b */
        for (unsigned long i = 0; i < 200; i++) {
            kept[k++] = busy_a(1401, i); /* SITE main_busy_a2 */
            kept[k++] = busy_b(1501, i); /* SITE main_busy_b2 */
        }
    } else if (!strcmp(mode, "dlopen")) {
        for (int round = 0; round < 3; round++) {
            void *h = dlopen(argv[2], RTLD_NOW);
            if (!h) { fprintf(stderr, "%s\n", dlerror()); return 2; }
            void *(*f)(size_t) = (void *(*)(size_t))dlsym(h, "lib_alloc");
            sink[10 + round] = f(5555); /* SITE main_dlopen */
            dlclose(h);
            sink[20 + round] = level1(6666 + round);
        }
    }
    return 0;
}
