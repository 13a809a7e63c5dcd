/* Starts PROG [ARGS] with an environment of its own ({"FOO=1"}), as subprocess.run(env=...)
   does, and prints how it ended.
   Usage: own_environment MODE PROG [ARGS]   MODE: fork (fork + execve), vfork (vfork +
   execve), spawn (posix_spawn) */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: own_environment MODE PROG [ARGS]\n");
        return 2;
    }
    const char *mode = argv[1];
    char **args = argv + 2;
    char *env[] = {"FOO=1", NULL};
    pid_t pid = -1;
    if (strcmp(mode, "fork") == 0) {
        pid = fork();
        if (pid == 0) {
            execve(args[0], args, env);
            _exit(127);
        }
    } else if (strcmp(mode, "vfork") == 0) {
        pid = vfork();
        if (pid == 0) {
            execve(args[0], args, env);
            _exit(127);
        }
    } else if (strcmp(mode, "spawn") == 0) {
        if (posix_spawn(&pid, args[0], NULL, NULL, args, env) != 0) {
            return 3;
        }
    } else {
        return 2;
    }
    int status = 0;
    waitpid(pid, &status, 0);
    printf("%s: child exited %d\n", mode, WEXITSTATUS(status));
    return 0;
}
