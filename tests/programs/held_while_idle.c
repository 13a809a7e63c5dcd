/* Blocks held while the program allocates nothing (tests/tests/aggregate.rs): frees carry no
 * time, and an aggregated capture dated the fall at the last allocation before it.
 * Mode "alone": 200 ms of 1,000-byte churn, 10,000,000 bytes held 800 ms without an
 *   allocation, freed, 200 ms of churn.
 * Mode "family": child A holds 10,000,000 bytes for 800 ms; 300 ms after A's start, child B
 *   holds 10,000,000 bytes for 100 ms: the combined peak is 20,000,000 bytes. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BIG 10000000

static void ms(int n) {
    struct timespec t = {n / 1000, (n % 1000) * 1000000L};
    nanosleep(&t, 0);
}

static void churn(int n) {
    for (int i = 0; i < n; i++) {
        void *volatile q = malloc(1000);
        memset(q, 1, 64);
        free(q);
        ms(10);
    }
}

static void hold(int for_ms) {
    void *volatile p = malloc(BIG);
    memset(p, 1, 4096);
    ms(for_ms);
    free(p);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "family") == 0) {
        pid_t a = fork();
        if (a == 0) {
            hold(800);
            churn(5);
            _exit(0);
        }
        ms(300);
        pid_t b = fork();
        if (b == 0) {
            hold(100);
            churn(5);
            _exit(0);
        }
        waitpid(a, 0, 0);
        waitpid(b, 0, 0);
        return 0;
    }
    churn(20);
    hold(800);
    churn(20);
    return 0;
}
