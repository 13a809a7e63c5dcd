/* A parent that holds 2 x 999 bytes while a posix_spawn'ed child holds 24,096 (its own run of
 * this program with "child"), then, after the child ended, allocates 4,096 bytes (as stdio's
 * buffer would be). The combined peak is the parent's 1,998 bytes with the child's 24,096:
 * 26,094. An aggregated parent's series had no point between its first allocations and the
 * 4,096 (the window's high moved there), so the combined peak left the parent out. */
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void *volatile keep[8];

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "child") == 0) {
        keep[0] = malloc(8000);
        keep[1] = malloc(8000);
        keep[2] = malloc(8096);
        struct timespec pause = {0, 50 * 1000 * 1000};
        nanosleep(&pause, NULL);
        return 0;
    }
    keep[0] = malloc(999);
    keep[1] = malloc(999);
    pid_t pid;
    char *child_argv[] = {argv[0], "child", NULL};
    if (posix_spawn(&pid, argv[0], NULL, NULL, child_argv, environ) != 0)
        return 1;
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return 2;
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
    keep[2] = malloc(4096);
    return 0;
}
