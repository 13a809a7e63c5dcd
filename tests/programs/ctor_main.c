/* Links ctor_lib: grows the table its constructor allocated (realloc, line 8) and frees it. */
#include <stdio.h>
#include <stdlib.h>
extern void *table;

int main(void) {
    printf("table=%d\n", table != NULL);
    void *grown = realloc(table, 200000);
    free(grown);
    return 0;
}
