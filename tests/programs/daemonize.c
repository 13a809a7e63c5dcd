/* daemon(3): the parent allocates 4321 bytes and leaves through daemon(), whose parent side
 * ends inside libc; the daemon allocates 1234 bytes, writes "daemon done" to argv[1] and ends. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    void *before = malloc(4321);
    if (daemon(1, 0) != 0)
        return 1;
    void *in_daemon = malloc(1234);
    FILE *f = fopen(argv[1], "w");
    if (f == NULL)
        return 1;
    fprintf(f, "daemon done\n");
    fclose(f);
    free(in_daemon);
    free(before);
    return 0;
}
