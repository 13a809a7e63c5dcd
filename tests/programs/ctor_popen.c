/* A library whose constructor runs a command and reads its output (a probe of the system, as
   some libraries do when loaded): it runs before the tracker's own constructor, so the command
   inherits the environment memtrace gave the program. Built as libctor_popen.so. */
#include <stdio.h>
#include <string.h>

char probed[64];

__attribute__((constructor)) static void probe(void) {
    FILE *p = popen("echo probed-by-constructor", "r");
    if (!p || !fgets(probed, sizeof probed, p)) strcpy(probed, "(nothing)\n");
    if (p) pclose(p);
}
