/* memtrace attach's test program: allocates before the attach (block 1, freed after it), then
 * waits for the file "go", allocates 1,234,567 bytes at line 23 (block 2, kept), writes
 * "allocated", waits for "done", frees both and exits with status 7 after printing "bye". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void wait_for(const char *path) {
    while (access(path, F_OK) != 0)
        usleep(20000);
}

int main(void) {
    char *before = malloc(5000000);
    memset(before, 1, 5000000);
    printf("ready\n");
    fflush(stdout);
    wait_for("go");
    free(before);
    before = NULL;
    char *kept;
    kept = malloc(1234567);
    memset(kept, 2, 1234567);
    fclose(fopen("allocated", "w"));
    wait_for("done");
    free(kept);
    printf("bye\n");
    return 7;
}
