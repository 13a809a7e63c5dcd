/* memtrace attach's test program for the registers an attach must give back: puts known values
 * in SSE registers (xmm0, xmm1, xmm8, xmm15) and, where the CPU has AVX, all 256 bits of ymm2,
 * spins with them there until SIGUSR1, then prints whether each still holds its value ("no
 * avx" for ymm2 on a CPU without it) and exits with status 3. An attach stops the main thread
 * inside the spin, where every register is live: the injected calls (dlopen and the tracker's
 * start, which use the vector registers freely) must leave them as they were. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

static volatile sig_atomic_t stop;

static void on_usr1(int sig) {
    (void)sig;
    stop = 1;
}

/* Loads the four SSE registers (and ymm2 from `wide` when `avx`), spins until `stop`, stores
 * them back. */
#define SPIN(WIDE_LOAD, WIDE_STORE)                                               \
    __asm__ volatile("movq %[a], %%xmm0\n\t"                                                   \
                     "movq %[b], %%xmm1\n\t"                                                   \
                     "movq %[c], %%xmm8\n\t"                                                   \
                     "movq %[d], %%xmm15\n\t" WIDE_LOAD "1: pause\n\t"                         \
                     "cmpl $0, %[stop]\n\t"                                                    \
                     "je 1b\n\t"                                                               \
                     "movq %%xmm0, %[oa]\n\t"                                                  \
                     "movq %%xmm1, %[ob]\n\t"                                                  \
                     "movq %%xmm8, %[oc]\n\t"                                                  \
                     "movq %%xmm15, %[od]\n\t" WIDE_STORE                                      \
                     : [oa] "=m"(out[0]), [ob] "=m"(out[1]), [oc] "=m"(out[2]),                \
                       [od] "=m"(out[3]), [wo] "=m"(wide_out)                                  \
                     : [a] "m"(in[0]), [b] "m"(in[1]), [c] "m"(in[2]), [d] "m"(in[3]),         \
                       [wi] "m"(wide), [stop] "m"(stop)                                        \
                     : "xmm0", "xmm1", "xmm8", "xmm15", "xmm2", "memory", "cc")

int main(void) {
    signal(SIGUSR1, on_usr1);
    unsigned long long in[4] = {0x0123456789abcdefULL, 0x1122334455667788ULL,
                                0xdeadbeefcafef00dULL, 0x0f1e2d3c4b5a6978ULL};
    unsigned long long out[4] = {0, 0, 0, 0};
    unsigned long long wide[4] = {0x1111111111111111ULL, 0x2222222222222222ULL,
                                  0x3333333333333333ULL, 0x4444444444444444ULL};
    unsigned long long wide_out[4] = {0, 0, 0, 0};
    int avx = __builtin_cpu_supports("avx");
    printf("ready\n");
    fflush(stdout);
    if (avx)
        SPIN("vmovdqu %[wi], %%ymm2\n\t", "vmovdqu %%ymm2, %[wo]\n\t");
    else
        SPIN("", "");
    const char *names[4] = {"xmm0", "xmm1", "xmm8", "xmm15"};
    for (int i = 0; i < 4; i++) {
        if (out[i] == in[i])
            printf("%s kept\n", names[i]);
        else
            printf("%s changed: %016llx\n", names[i], out[i]);
    }
    if (!avx)
        printf("no avx\n");
    else if (memcmp(wide, wide_out, sizeof wide) == 0)
        printf("ymm2 kept\n");
    else
        printf("ymm2 changed: %016llx %016llx %016llx %016llx\n", wide_out[0], wide_out[1],
               wide_out[2], wide_out[3]);
    return 3;
}
