/* peak_rss OUT PROGRAM ARGS...: runs PROGRAM as a child made by fork() of this small process
 * and writes the child's peak resident size in KiB (wait4's ru_maxrss) to the file OUT; exits
 * with the child's status, or dies of the signal that killed it.
 *
 * Why not measure a child of the test process directly: the test process starts its children
 * with posix_spawn (vfork: the child runs in the parent's memory until its exec), and the
 * kernel folds the peak of the memory a process leaves at exec into its own peak: every
 * child's peak read at least the test process's, which grows with the tests run beside it. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3)
        return 125;
    pid_t pid = fork();
    if (pid < 0)
        return 126;
    if (pid == 0) {
        execv(argv[2], argv + 2);
        _exit(127);
    }
    int status;
    struct rusage usage;
    while (wait4(pid, &status, 0, &usage) < 0)
        if (errno != EINTR)
            return 126;
    FILE *out = fopen(argv[1], "w");
    if (out) {
        fprintf(out, "%ld\n", usage.ru_maxrss);
        fclose(out);
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    signal(WTERMSIG(status), SIG_DFL);
    raise(WTERMSIG(status));
    return 128 + WTERMSIG(status);
}
