// Forks CHILDREN children (argv[1]); each makes 1,000 allocations of sizes 16, 32, ...,
// 16,000 bytes (all distinct: a capture's sampled sizes name the allocations sampled), frees
// them and exits. The parent makes them too before it forks (its sampler is under way then), and
// waits for the children.
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void allocate(void) {
    static void *blocks[1000];
    for (int i = 0; i < 1000; i++) {
        blocks[i] = malloc(16 * (size_t)(i + 1));
    }
    for (int i = 0; i < 1000; i++) {
        free(blocks[i]);
    }
}

int main(int argc, char **argv) {
    int children = argc > 1 ? atoi(argv[1]) : 4;
    allocate();
    for (int c = 0; c < children; c++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            allocate();
            _exit(0);
        }
    }
    int failed = 0;
    for (int c = 0; c < children; c++) {
        int status;
        if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            failed = 1;
        }
    }
    puts(failed ? "a child failed" : "children done");
    return failed;
}
