/* Job control: `stop_self stop` and `stop_self tstp` stop themselves (raise SIGSTOP, SIGTSTP:
 * the "wait for a debugger" idiom, a shell's suspend) after allocating; `stop_self wait` waits
 * two seconds to be stopped from the terminal (Ctrl-Z). Each then says it went on and ends. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *how = argc > 1 ? argv[1] : "stop";
    char *block = malloc(1234);
    printf("ready\n");
    fflush(stdout);
    if (strcmp(how, "stop") == 0) {
        raise(SIGSTOP);
    } else if (strcmp(how, "tstp") == 0) {
        raise(SIGTSTP);
    } else {
        sleep(2);
    }
    printf("went on\n");
    fflush(stdout);
    free(block);
    return 0;
}
