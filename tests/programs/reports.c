/* Allocation patterns for the report tests (tree, summary, stats views): each allocation site is
   its own function, so that the call tree names it. Usage: reports MODE. Built with -O0
   -fno-builtin so every call really happens. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile char sink;
static void touch(void *p) { sink = *(volatile char *)p; }

__attribute__((noinline)) static void *big_block(long n) { void *p = malloc(n); touch(p); return p; }
__attribute__((noinline)) static void *small_block(long n) { void *p = malloc(n); touch(p); return p; }
__attribute__((noinline)) static void *late_block(long n) { void *p = malloc(n); touch(p); return p; }
__attribute__((noinline)) static void *thread_block(long n) { void *p = malloc(n); touch(p); return p; }
__attribute__((noinline)) static void *keep_block(long n) { void *p = malloc(n); touch(p); return p; }
__attribute__((noinline)) static void *temp_block(long n) { void *p = malloc(n); touch(p); return p; }
__attribute__((noinline)) static void *pair_first(long n) { void *p = malloc(n); touch(p); return p; }
__attribute__((noinline)) static void *pair_second(long n) { void *p = malloc(n); touch(p); return p; }
__attribute__((noinline)) static char *shrink(char *p, long n) { p = realloc(p, n); touch(p); return p; }
__attribute__((noinline)) static char *grow(char *p, long n) { p = realloc(p, n); touch(p); return p; }
__attribute__((noinline)) static char *grow_far(char *p, long n) { p = realloc(p, n); touch(p); return p; }
__attribute__((noinline)) static char *map_pages(long pages) {
    char *m = mmap(NULL, pages * sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    touch(m);
    return m;
}
__attribute__((noinline)) static char *map_more(long pages) {
    char *m = mmap(NULL, pages * sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    touch(m);
    return m;
}

static void *worker(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "worker");
    void *p = thread_block(8000);
    free(p);
    return NULL;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *mode = argc > 1 ? argv[1] : "none";
    long page = sysconf(_SC_PAGESIZE);
    if (!strcmp(mode, "none")) {
    } else if (!strcmp(mode, "middle")) {       /* peak 4000 in the middle, then 500 */
        void *a = big_block(3000), *b = small_block(1000);
        free(a);
        free(b);
        free(late_block(500));
    } else if (!strcmp(mode, "end")) {          /* peak 3500 at the last event, live at exit */
        free(big_block(3000));
        small_block(1000);
        late_block(2500);
    } else if (!strcmp(mode, "thread")) {       /* peak inside the worker: 1000 + 8000 */
        void *a = small_block(1000);
        pthread_t t;
        pthread_create(&t, NULL, worker, NULL);
        pthread_join(t, NULL);
        free(a);
        free(big_block(3000));
    } else if (!strcmp(mode, "munmap")) {       /* 4 pages less the 2nd, then 2 pages: peak 5 pages */
        char *m = map_pages(4);
        munmap(m + page, page);
        char *n = map_more(2);
        munmap(m, 4 * page);
        munmap(n + page, page);
        munmap(n, page);
    } else if (!strcmp(mode, "realloc")) {      /* 6000 shrunk in place to 4000, grown to 12000, moved to 1 MiB */
        char *p = big_block(6000);
        char *q = small_block(2000);
        char *s = shrink(p, 4000);
        int in_place = s == p;
        char *g = grow(s, 12000);
        char *f = grow_far(g, 1 << 20);           /* past the mmap threshold: a new mapping */
        int moved = f != g;
        printf("%d %d\n", in_place, moved);
        free(f);
        free(q);
    } else if (!strcmp(mode, "views")) {        /* temporaries, pairs, and 3 blocks live at exit */
        for (int i = 0; i < 10; i++) free(temp_block(32));
        for (int i = 0; i < 5; i++) {
            void *a = pair_first(64), *b = pair_second(16);
            free(a);
            free(b);
        }
        for (int i = 0; i < 3; i++) keep_block(48);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    return 0;
}
