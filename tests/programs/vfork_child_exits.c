/* A vfork child that ends with exit() instead of _exit (a common bug, harmless alone): it runs
 * the image's exit handlers and destructors in the memory it shares with its parent, which
 * then runs none at its own end. 100 blocks before, 100 after, stdout's buffer. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    for (int i = 0; i < 100; i++)
        free(malloc(100));
    int status;
    pid_t child = vfork();
    if (child == 0)
        exit(3);
    waitpid(child, &status, 0);
    for (int i = 0; i < 100; i++)
        free(malloc(300));
    printf("child exit %d\n", WEXITSTATUS(status));
    return 0;
}
