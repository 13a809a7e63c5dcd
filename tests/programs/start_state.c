/* Writes into the file named by argv[1] what a program finds when it starts: which standard
 * descriptors are open, the ignored and blocked signals, and the environment in its order.
 * memtrace run must hand the program the same as a plain run would. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    /* Looked at before the output file takes the lowest free descriptor. */
    int closed[3];
    for (int fd = 0; fd <= 2; fd++)
        closed[fd] = fcntl(fd, F_GETFD) == -1;
    FILE *out = fopen(argv[1], "w");
    if (!out)
        return 3;
    for (int fd = 0; fd <= 2; fd++)
        fprintf(out, "fd %d %s\n", fd, closed[fd] ? "closed" : "open");
    FILE *status = fopen("/proc/self/status", "r");
    char line[512];
    while (status && fgets(line, sizeof line, status))
        if (!strncmp(line, "SigIgn:", 7) || !strncmp(line, "SigBlk:", 7))
            fputs(line, out);
    for (char **e = environ; *e; e++)
        fprintf(out, "env %s\n", *e);
    return fclose(out) == 0 ? 0 : 4;
}
