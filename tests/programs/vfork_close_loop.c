/* 200 vfork children, each closing the number a capture named "*.bin" had at the start (700
 * when there is none: a descriptor the child would not pass on) before it execs /bin/true.
 * Then the parent asks about that number: it is not the parent's, so fcntl says EBADF, as
 * alone ("open" if the children's closes left the capture there). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int capture_number(void) {
    int n = 700;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return n;
    struct dirent *e;
    char path[64], target[4096];
    while ((e = readdir(d))) {
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len > 4 && memcmp(target + len - 4, ".bin", 4) == 0)
            n = atoi(e->d_name);
    }
    closedir(d);
    return n;
}

int main(void) {
    int n = capture_number();
    for (int i = 0; i < 200; i++) {
        free(malloc(100 + i));
        pid_t child = vfork();
        if (child == 0) {
            close(n);
            execl("/bin/true", "true", (char *)NULL);
            _exit(127);
        }
        waitpid(child, NULL, 0);
    }
    int r = fcntl(n, F_GETFD);
    printf("after: %s\n", r < 0 && errno == EBADF ? "EBADF" : "open");
    return 0;
}
