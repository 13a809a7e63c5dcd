/* Allocates, then chroots into argv[1] and execs /bin/env there (a root of its own, holding
 * env, sh and the libraries they need, not memtrace's tracker): what a sandboxing launcher
 * does. argv[2] "fork": from a fork child (the parent waits and exits with its status);
 * "system": through system("/bin/env") (libc execs /bin/sh inside itself). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: chroot_exec ROOT [fork|system]\n");
        return 2;
    }
    free(malloc(100));
    if (chroot(argv[1]) != 0 || chdir("/") != 0) {
        perror("chroot");
        return 1;
    }
    const char *how = argc > 2 ? argv[2] : "";
    if (strcmp(how, "system") == 0) {
        int st = system("/bin/env");
        return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
    }
    if (strcmp(how, "fork") == 0) {
        pid_t c = fork();
        if (c < 0) return 1;
        if (c > 0) {
            int st = 0;
            waitpid(c, &st, 0);
            return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
        }
    }
    execl("/bin/env", "env", (char *)NULL);
    perror("exec");
    return 127;
}
