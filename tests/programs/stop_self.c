/* Job control: `stop_self stop` and `stop_self tstp` stop themselves (raise SIGSTOP, SIGTSTP:
 * the "wait for a debugger" idiom, a shell's suspend) after allocating; `stop_self wait` waits
 * to be stopped from the terminal (Ctrl-Z) and continued (at most 120 s). Each then says it went
 * on and ends. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t continued;

static void on_cont(int sig) {
    (void)sig;
    continued = 1;
}

int main(int argc, char **argv) {
    const char *how = argc > 1 ? argv[1] : "stop";
    char *block = malloc(1234);
    if (strcmp(how, "wait") == 0)
        signal(SIGCONT, on_cont);
    printf("ready\n");
    fflush(stdout);
    if (strcmp(how, "stop") == 0) {
        raise(SIGSTOP);
    } else if (strcmp(how, "tstp") == 0) {
        raise(SIGTSTP);
    } else {
        for (int i = 0; i < 6000 && !continued; i++)
            usleep(20000);
    }
    printf("went on\n");
    fflush(stdout);
    free(block);
    return 0;
}
