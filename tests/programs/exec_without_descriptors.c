// Lowers its open-file limit to the three standard descriptors, then execs
// `sh -c 'echo from-sh'`: the shell's loader has no descriptor to open its libraries with and
// fails (exit 127), alone and under memtrace alike, with the same words on stderr.
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

int main(void) {
    struct rlimit r = {3, 3};
    if (setrlimit(RLIMIT_NOFILE, &r) != 0) {
        perror("setrlimit");
        return 2;
    }
    execlp("sh", "sh", "-c", "echo from-sh", (char *)0);
    perror("exec");
    return 126;
}
