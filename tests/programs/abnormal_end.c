/* Ends without exit handlers: abort(), a failed assert(), quick_exit(), _Exit(). Before that:
 * 1000 allocations freed and 100 of 1000 bytes left live.
 *   abnormal_end abort | assert | quick_exit | _Exit | none (nothing: start-up's own) */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    if (!strcmp(argv[1], "none"))
        return 0;
    for (int i = 0; i < 1000; i++)
        free(malloc(100 + i));
    static void *keep[100];
    for (int i = 0; i < 100; i++)
        keep[i] = malloc(1000);
    if (!strcmp(argv[1], "quick_exit"))
        quick_exit(3);
    if (!strcmp(argv[1], "_Exit"))
        _Exit(4);
    if (!strcmp(argv[1], "assert"))
        assert(argc == 0);
    abort();
}
