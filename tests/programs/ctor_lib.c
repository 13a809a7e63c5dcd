/* A shared library whose constructor allocates before the tracker starts (the loader runs a
 * linked library's constructors before a preloaded one's): it keeps `table` (100000 bytes,
 * line 7) and frees the 555 bytes of line 8. */
#include <stdlib.h>
void *table;
__attribute__((constructor)) static void init(void) {
    table = malloc(100000);
    void *gone = malloc(555);
    free(gone);
}
