/* Programs that are hard on a tracker, for tests/tests/torture.rs.
   Usage: torture MODE [ARGS]
     closefrom|close_range|loop|dup2|none N
         Treats descriptors as its own: closes every one from 3 up (as daemons and closefrom or
         close_range users do), or dup2s a file over every number from 600 to 1099, then opens
         files out/fNNNN until one gets a number of 700 or more (the tracker's), writes 2 MiB
         into that one and a line into the others, with N malloc/free pairs of varied sizes in
         between. Its files must be byte-identical with and without memtrace.
         With $TORTURE_MOVE set, renames that file to $TORTURE_MOVE.moved right after the closing.
     pairs N
         N malloc/free pairs of varied sizes, nothing else.
     kill T COUNTERS TARGET
         T threads do malloc/free pairs without end, each counting its completed pairs in the
         shared file COUNTERS (T records of {tid, pairs}, 8-byte words); once they did TARGET
         pairs together, the process sends itself SIGKILL with the system call (as if killed from
         outside) while they are still writing.
   Built with -O0 -fno-builtin so every call really happens. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile char sink;

/* n malloc/free pairs of varied sizes through a ring of live blocks (so that the capture does
   not compress to nothing and must grow while the program writes its files). */
static void churn(long n) {
    static char *ring[64];
    static unsigned long k = 88172645463325252UL;
    for (long i = 0; i < n; i++) {
        k ^= k << 13, k ^= k >> 7, k ^= k << 17; /* xorshift: sizes and order that do not repeat */
        char **slot = &ring[k % 64];
        free(*slot); /* free(NULL) the first time round: counted as a free of nothing */
        *slot = malloc(16 + (k >> 8) % 2000);
        (*slot)[0] = (char)k;
        sink = (*slot)[0];
    }
}

static void die(const char *what) {
    /* stderr may be closed: the exit status tells. */
    (void)what;
    _exit(3);
}

/* Writes `len` bytes of a pattern that depends on `seed` to fd, churning between blocks. */
static void fill(int fd, long len, int seed, long churn_per_block) {
    char block[4096];
    for (long off = 0; off < len; off += sizeof block) {
        for (size_t i = 0; i < sizeof block; i++) block[i] = (char)((off + i) * 31 + seed);
        long n = len - off < (long)sizeof block ? len - off : (long)sizeof block;
        if (write(fd, block, n) != n) die("write");
        churn(churn_per_block);
    }
}

struct counter {
    volatile long tid;
    volatile long pairs;
};

static void *hammer(void *arg) {
    struct counter *c = arg;
    unsigned long k = 88172645463325252UL ^ (unsigned long)arg;
    c->tid = syscall(SYS_gettid);
    for (;;) {
        k ^= k << 13, k ^= k >> 7, k ^= k << 17;
        char *p = malloc(16 + (k >> 8) % 2000);
        p[0] = (char)k;
        sink = p[0];
        free(p);
        c->pairs++; /* after the pair: at the kill, the thread did `pairs` or one more */
    }
    return NULL;
}

static int kill_mid_write(int threads, const char *counters, long target) {
    int fd = open(counters, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ftruncate(fd, 4096) != 0) die("counters");
    struct counter *c = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (c == MAP_FAILED) die("mmap");
    close(fd);
    pthread_t t;
    for (int i = 0; i < threads && i < 64; i++)
        if (pthread_create(&t, NULL, hammer, &c[i]) != 0) die("pthread_create");
    for (;;) {
        long sum = 0;
        for (int i = 0; i < threads; i++) sum += c[i].pairs;
        if (sum >= target) break;
        usleep(1000);
    }
    syscall(SYS_kill, getpid(), SIGKILL);
    return 1;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "none";
    long n = argc > 2 ? atol(argv[2]) : 0;

    if (!strcmp(mode, "kill") && argc > 4) return kill_mid_write(atoi(argv[2]), argv[3], atol(argv[4]));
    if (!strcmp(mode, "pairs")) {
        unsigned long k = 88172645463325252UL;
        for (long i = 0; i < n; i++) {
            k ^= k << 13, k ^= k >> 7, k ^= k << 17;
            char *p = malloc(16 + (k >> 8) % 2000); /* varied: the capture must grow */
            p[0] = (char)i;
            sink = p[0];
            free(p);
        }
        return 0;
    }

    /* Keep stdout (1) for the final line; everything from 3 up goes. */
    if (!strcmp(mode, "closefrom")) {
        closefrom(3);
    } else if (!strcmp(mode, "close_range")) {
        if (syscall(SYS_close_range, 3, ~0U, 0) != 0) die("close_range");
    } else if (!strcmp(mode, "loop")) {
        for (int fd = 3; fd < 4096; fd++) close(fd);
    } else if (!strcmp(mode, "dup2")) {
        /* dup2 a file of our own over every high number, then close them again. */
        int fd = open("out/dup", O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) die("open dup");
        for (int k = 600; k < 1100; k++) dup2(fd, k);
        for (int k = 600; k < 1100; k++) close(k);
        close(fd);
    } else if (strcmp(mode, "none")) {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }

    const char *move = getenv("TORTURE_MOVE");
    if (move) {
        char moved[4096];
        snprintf(moved, sizeof moved, "%s.moved", move);
        if (rename(move, moved) != 0) die("rename");
    }

    /* Open files until one gets number 700 (or the first free number above it). */
    int fds[1200];
    int count = 0;
    int big = -1;
    char name[64];
    while (count < 1200) {
        snprintf(name, sizeof name, "out/f%04d", count);
        int fd = open(name, O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) die("open");
        fds[count++] = fd;
        if (fd >= 700) {
            big = fd;
            break;
        }
    }
    if (big < 0) die("no fd 700");
    /* 2 MiB into the high one, with allocations in between (the capture grows meanwhile);
       a few bytes into each of the others. */
    fill(big, 2 << 20, 7, n / 512);
    for (int i = 0; i + 1 < count; i++) {
        char line[32];
        int len = snprintf(line, sizeof line, "file %d\n", i);
        if (write(fds[i], line, len) != len) die("write small");
    }
    churn(n - (n / 512) * 512);
    for (int i = 0; i < count; i++) close(fds[i]);
    printf("done %s %d files\n", mode, count);
    return 0;
}
