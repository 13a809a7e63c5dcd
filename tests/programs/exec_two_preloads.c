/* Execs `sh -c CMD` with an environment that holds LD_PRELOAD twice, an empty one and then
   argv[1] (the loader takes the last, getenv the first). Usage: exec_two_preloads LIB CMD */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    static char preload[4096];
    snprintf(preload, sizeof preload, "LD_PRELOAD=%s", argv[1]);
    char *args[] = {"sh", "-c", argv[2], 0};
    char *env[] = {"LD_PRELOAD=", preload, "C=3", 0};
    execve("/bin/sh", args, env);
    perror("execve");
    return 1;
}
