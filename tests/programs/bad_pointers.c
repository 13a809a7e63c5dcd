/* Calls the tracker interposes, given a bad pointer (8): each gets EFAULT from the kernel or the
 * C library alone, and must under memtrace too (setrlimit, prlimit and execve with a bad path
 * died of SIGSEGV: the hooks read the argument first). Each call in a child of its own. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define BAD ((void *)8)

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *names[] = {"setrlimit(AS)", "prlimit(AS)", "setrlimit64(AS)",
                           "execve(path)", "execveat(path)", "chroot"};
    for (int k = 0; k < 6; k++) {
        pid_t child = fork();
        if (child == 0) {
            errno = 0;
            long r = 0;
            switch (k) {
            case 0: r = setrlimit(RLIMIT_AS, BAD); break;
            case 1: r = prlimit(0, RLIMIT_AS, BAD, NULL); break;
            case 2: r = setrlimit64(RLIMIT_AS, BAD); break;
            case 3: r = execve(BAD, (char *[]){"true", NULL}, NULL); break;
            case 4: r = syscall(SYS_execveat, -100, BAD, (char *[]){"true", NULL}, NULL, 0); break;
            case 5: r = chroot(BAD); break;
            }
            printf("%s: %ld errno %d\n", names[k], r, errno);
            _exit(0);
        }
        int status;
        waitpid(child, &status, 0);
        if (!WIFEXITED(status))
            printf("%s: killed by signal %d\n", names[k], WTERMSIG(status));
    }
    return 0;
}
