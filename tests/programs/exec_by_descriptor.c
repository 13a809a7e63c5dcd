/* Runs PROG [ARGS] through a descriptor, with this process's environment.
   Usage: exec_by_descriptor MODE PROG [ARGS]
     fexecve      fexecve(open(PROG))
     execveat     execveat(open("."), PROG, 0)
     empty_path   execveat(open(PROG), "", AT_EMPTY_PATH) */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: exec_by_descriptor MODE PROG [ARGS]\n");
        return 2;
    }
    const char *mode = argv[1];
    const char *prog = argv[2];
    char **args = argv + 2;
    if (strcmp(mode, "fexecve") == 0) {
        fexecve(open(prog, O_RDONLY | O_CLOEXEC), args, environ);
    } else if (strcmp(mode, "execveat") == 0) {
        execveat(open(".", O_RDONLY | O_DIRECTORY), prog, args, environ, 0);
    } else if (strcmp(mode, "empty_path") == 0) {
        execveat(open(prog, O_RDONLY), "", args, environ, AT_EMPTY_PATH);
    }
    perror("exec");
    return 99;
}
