/* errno as the program finds it: at main's start (C11 7.5: zero) and in a fork child right
 * after fork() (unchanged). Prints "start N" and then "child N". */
#include <errno.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    int e = errno;
    printf("start %d\n", e);
    fflush(stdout);
    errno = 0;
    pid_t pid = fork();
    if (pid == 0) {
        printf("child %d\n", errno);
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    return 0;
}
