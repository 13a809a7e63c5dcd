/* Single-threaded: a 2 ms timer's signal handler forks (fork is async-signal-safe); the child
 * _exits at once and the handler reaps it; main allocates and frees all along. 300 forks (or
 * one more), then status 0, every time alone. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int forks;

static void on_timer(int sig) {
    (void)sig;
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid > 0) {
        waitpid(pid, NULL, 0);
        forks++;
    }
}

int main(void) {
    signal(SIGALRM, on_timer);
    struct itimerval every = {{0, 2000}, {0, 2000}};
    setitimer(ITIMER_REAL, &every, NULL);
    for (long i = 0; forks < 300; i++)
        free(malloc(i % 4000 + 1));
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    /* A last signal may come between the count's check and the timer's end: 300 or more. */
    printf("%s\n", forks >= 300 ? "forks: 300 or more" : "forks: too few");
    return 0;
}
