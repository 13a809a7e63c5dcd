/* An idle service whose malloc is a library's (lib_allocator.c): it waits in poll() with a
   buffer on its stack holding a word that points into that allocator's code, as a buffer
   holds stale return addresses from earlier calls. Prints "ready", then waits until the file
   "done" appears; prints "bye" and exits 5. An attach took every such word for a thread
   inside the allocator and gave up after 5 s, every time. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((noinline)) static int wait_a_little(int fd) {
    void *volatile buf[256];
    for (int i = 0; i < 256; i++) buf[i] = (char *)&malloc + 4;
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, 100);
    return r + (buf[7] != 0);
}

int main(void) {
    int fds[2];
    if (pipe(fds) != 0) return 1;
    for (int i = 0; i < 100; i++) free(malloc(100 + i));
    puts("ready");
    fflush(stdout);
    while (access("done", F_OK) != 0) wait_a_little(fds[0]);
    puts("bye");
    return 5;
}
