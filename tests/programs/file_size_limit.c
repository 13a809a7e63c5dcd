// A program that lowers its own file size limit (RLIMIT_FSIZE) to LIMIT bytes, then:
//   exec   execs `sh -c 'echo exec-sh; exit 3'` (the new image's capture cannot be written);
//   fork   forks a child that makes 100,000 allocations, says so and exits 0; the parent says
//          how the child ended.
// A write past the limit raises SIGXFSZ, which kills: the tracker's own files must never.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fputs("usage: file_size_limit LIMIT exec|fork\n", stderr);
        return 2;
    }
    struct rlimit r = {(rlim_t)atol(argv[1]), (rlim_t)atol(argv[1])};
    if (setrlimit(RLIMIT_FSIZE, &r) != 0) {
        perror("setrlimit");
        return 2;
    }
    if (strcmp(argv[2], "exec") == 0) {
        execlp("sh", "sh", "-c", "echo exec-sh; exit 3", (char *)0);
        return 127;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 100000; i++) {
            free(malloc(i % 1000 + 1));
        }
        puts("child done");
        fflush(stdout);
        _exit(0);
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) < 0) {
        perror("fork");
        return 2;
    }
    if (WIFSIGNALED(status)) {
        printf("child killed by signal %d\n", WTERMSIG(status));
    } else {
        printf("child exit %d\n", WEXITSTATUS(status));
    }
    return 0;
}
