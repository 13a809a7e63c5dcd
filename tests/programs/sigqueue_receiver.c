/* Prints "ready", waits for one SIGUSR1 and prints what its siginfo says: the code, the value
   sigqueue(3) sent with it and the sender's pid. Exits 0. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t got;
static int code, value, sender;

static void on_usr1(int sig, siginfo_t *info, void *ctx) {
    (void)sig;
    (void)ctx;
    code = info->si_code;
    value = info->si_value.sival_int;
    sender = info->si_pid;
    got = 1;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &old);
    puts("ready");
    fflush(stdout);
    while (!got) {
        sigsuspend(&old);
    }
    printf("code %d value %d sender %d\n", code, value, sender);
    return 0;
}
