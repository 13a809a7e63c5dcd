/* A native program that fills its open-file limit (64) but one descriptor, says "ready", waits
 * for the file "done" (checked by stat: no descriptor needed), then ends with status 0. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void) {
    struct rlimit lim = {64, 64};
    setrlimit(RLIMIT_NOFILE, &lim);
    int last = -1;
    for (;;) {
        int fd = open("/dev/null", O_RDONLY);
        if (fd < 0)
            break;
        last = fd;
    }
    close(last);
    printf("ready\n");
    fflush(stdout);
    struct stat st;
    while (stat("done", &st) != 0)
        usleep(50000);
    return 0;
}
