/* Allocates, then chroots into argv[1] and execs /bin/env there (a root of its own, holding
 * env and the libraries it needs, not memtrace's tracker): what a sandboxing launcher does. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: chroot_exec ROOT\n");
        return 2;
    }
    free(malloc(100));
    if (chroot(argv[1]) != 0 || chdir("/") != 0) {
        perror("chroot");
        return 1;
    }
    execl("/bin/env", "env", (char *)NULL);
    perror("exec");
    return 127;
}
