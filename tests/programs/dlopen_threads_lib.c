/* The libraries dlopen_threads.c loads (built three times, -z now -z relro): calls into the C
 * library through GOT slots the in-process tracker patches, and a table of 4,096 pointers the
 * loader relocates (a loading that takes a while, as a real library's does). */
#include <stdlib.h>
#include <string.h>

void *lib_work(void);
#define P (void *)lib_work
#define T4 P, P, P, P
#define T16 T4, T4, T4, T4
#define T256 T16, T16, T16, T16, T16, T16, T16, T16, T16, T16, T16, T16, T16, T16, T16, T16
#define T4096 T256, T256, T256, T256, T256, T256, T256, T256, T256, T256, T256, T256, T256, T256, T256, T256

void *const lib_table[] = {T4096};

void *lib_work(void) {
    char *p = malloc(100);
    void *q = calloc(4, 25);
    memset(p, 1, 100);
    free(q);
    return lib_table[7] == (void *)lib_work ? p : NULL;
}
