// Calls libdeeploader.so, which calls libdeepcaller.so, which opens libdeepplugin.so by its
// bare name (found through libdeeploader.so's RPATH) with RTLD_DEEPBIND.
#include <stdio.h>

void *through_loader(void);

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("%s\n", through_loader() ? "loaded" : "not loaded");
    return 0;
}
