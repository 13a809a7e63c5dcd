/* memtrace detach's test program: prints "ready", waits for the file "go", allocates, then
 * becomes `sleep 30` (exec), which has no tracker. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void) {
    static void *volatile keep;
    puts("ready");
    fflush(stdout);
    while (access("go", F_OK) != 0)
        usleep(20000);
    keep = malloc(5000);
    execl("/bin/sleep", "sleep", "30", (char *)0);
    return 1;
}
