/* memtrace attach's test program for the registers an attach must give back: puts known values
 * in SSE registers (xmm0, xmm1, xmm8, xmm15) and spins with them there until SIGUSR1, then
 * prints whether each still holds its value and exits with status 3. An attach stops the main
 * thread inside the spin, where every register is live: the injected calls (dlopen and the
 * tracker's start, which use SSE registers freely) must leave them as they were. */
#include <signal.h>
#include <stdio.h>

static volatile sig_atomic_t stop;

static void on_usr1(int sig) {
    (void)sig;
    stop = 1;
}

int main(void) {
    signal(SIGUSR1, on_usr1);
    unsigned long long in[4] = {0x0123456789abcdefULL, 0x1122334455667788ULL,
                                0xdeadbeefcafef00dULL, 0x0f1e2d3c4b5a6978ULL};
    unsigned long long out[4] = {0, 0, 0, 0};
    printf("ready\n");
    fflush(stdout);
    __asm__ volatile("movq %[a], %%xmm0\n\t"
                     "movq %[b], %%xmm1\n\t"
                     "movq %[c], %%xmm8\n\t"
                     "movq %[d], %%xmm15\n\t"
                     "1: pause\n\t"
                     "cmpl $0, %[stop]\n\t"
                     "je 1b\n\t"
                     "movq %%xmm0, %[oa]\n\t"
                     "movq %%xmm1, %[ob]\n\t"
                     "movq %%xmm8, %[oc]\n\t"
                     "movq %%xmm15, %[od]\n\t"
                     : [oa] "=m"(out[0]), [ob] "=m"(out[1]), [oc] "=m"(out[2]), [od] "=m"(out[3])
                     : [a] "m"(in[0]), [b] "m"(in[1]), [c] "m"(in[2]), [d] "m"(in[3]),
                       [stop] "m"(stop)
                     : "xmm0", "xmm1", "xmm8", "xmm15", "memory", "cc");
    const char *names[4] = {"xmm0", "xmm1", "xmm8", "xmm15"};
    for (int i = 0; i < 4; i++) {
        if (out[i] == in[i])
            printf("%s kept\n", names[i]);
        else
            printf("%s changed: %016llx\n", names[i], out[i]);
    }
    return 3;
}
