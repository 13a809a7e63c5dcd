/* memtrace attach's test of the allocations the C library makes for the program: prints
 * "ready", waits for the file "go", then keeps 10 strdup copies of a 29-byte string (line 21,
 * 30 bytes each), 10 asprintf results (line 23), 10 FILEs (line 25) and 10 DIRs (line 27),
 * writes "allocated", waits for "done" and exits with status 3. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *volatile kept[40];

int main(void) {
    printf("ready\n");
    fflush(stdout);
    while (access("go", F_OK) != 0)
        usleep(20000);
    for (int i = 0; i < 10; i++) {
        /* strdup, asprintf, fopen and opendir call malloc through the C library's own slot */
        kept[i] = strdup("a string of twenty-nine bytes");
        char *s;
        kept[10 + i] = asprintf(&s, "%d: %s", 1000 + i, "abcdefghij") > 0 ? s : NULL;
        /* the FILE and its buffer stay open */
        kept[20 + i] = fopen("/dev/null", "r");
        /* the DIR and its buffer */
        kept[30 + i] = opendir("/");
    }
    fclose(fopen("allocated", "w"));
    while (access("done", F_OK) != 0)
        usleep(20000);
    return 3;
}
