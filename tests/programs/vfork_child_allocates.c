/* A vfork child that allocates before its _exit (shells do so between vfork and exec): it
 * shares its parent's memory, the tracker's thread state included. Then the parent makes 100
 * malloc/free pairs of 300 bytes, which must be in its capture. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    int status;
    pid_t child = vfork();
    if (child == 0) {
        for (int i = 0; i < 1000; i++)
            free(malloc(200));
        _exit(3);
    }
    waitpid(child, &status, 0);
    for (int i = 0; i < 100; i++)
        free(malloc(300));
    printf("child exit %d\n", WEXITSTATUS(status));
    return 0;
}
