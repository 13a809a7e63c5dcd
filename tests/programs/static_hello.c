/* Built with -static: `memtrace run` must refuse it (nothing can be preloaded into it) rather
 * than run it untracked. It prints a line, so a test sees whether it ran. */
#include <stdio.h>

int main(void) {
    puts("static program ran");
    return 0;
}
