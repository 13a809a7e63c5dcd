/* Prints what libctor_popen.so's constructor read from its command; exits 0 when it read it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char probed[];

int main(void) {
    void *p = malloc(100);
    free(p);
    printf("main: %s", probed);
    return strcmp(probed, "probed-by-constructor\n") == 0 ? 0 : 1;
}
