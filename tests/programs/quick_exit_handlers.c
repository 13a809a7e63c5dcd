// quick_exit(3) with an at_quick_exit handler that frees the program's block (2,000 bytes)
// and allocates 777 bytes: what the handler does is recorded, and "live at exit" is taken at
// the quick_exit call (the 2,000 bytes).
#include <stdio.h>
#include <stdlib.h>

static void *block;

static void handler(void) {
    free(block);
    void *more = malloc(777);
    printf("handler ran %d\n", more != NULL);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0); // no buffer of its own in the figures
    if (at_quick_exit(handler)) return 2;
    block = malloc(2000);
    quick_exit(3);
}
