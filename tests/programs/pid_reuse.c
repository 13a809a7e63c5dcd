/* memtrace's test of two processes of one run with one pid, run as the first processes of a pid
 * namespace (`unshare -pf --mount-proc memtrace run ...`): forks A (3 MiB), waits for it, sets
 * the namespace's last pid back (ns_last_pid) and forks B, which gets A's pid (2 MiB). No
 * stdio. Exit status 3 where the last pid cannot be set. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *keep[4];

/* Forks a child that allocates `mib` MiB and exits; its pid, once it is gone. */
static pid_t child(int mib) {
    pid_t p = fork();
    if (p == 0) {
        for (int i = 0; i < mib; i++) {
            keep[i] = malloc(1 << 20);
            memset(keep[i], 1, 1 << 20);
        }
        _exit(0);
    }
    int st;
    waitpid(p, &st, 0);
    return p;
}

/* Writes `v` in decimal to the file at `path`. */
static int write_number(const char *path, long v) {
    char b[24];
    int n = 0;
    do {
        b[sizeof b - 1 - n++] = '0' + v % 10;
        v /= 10;
    } while (v > 0);
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return -1;
    int ok = write(fd, b + sizeof b - n, n) == n;
    close(fd);
    return ok ? 0 : -1;
}

int main(void) {
    pid_t a = child(3);
    if (write_number("/proc/sys/kernel/ns_last_pid", a - 1) != 0)
        return 3;
    pid_t b = child(2);
    return b == a ? 0 : 3;
}
