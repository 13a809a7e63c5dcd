/* memtrace attach's test program for waits the kernel ends with EINTR at a ptrace stop: one
 * wait of N seconds (the second argument; 2 by default), by the mode given (epoll, sigtimedwait, recv with SO_RCVTIMEO, semtimedop,
 * read and readv with SO_RCVTIMEO, write to a full socket with SO_SNDTIMEO, io_uring_enter
 * waiting for a completion),
 * that nothing ends but its timeout. Prints "ready", then the call's result, its errno and
 * how long it took in tenths of a second; then waits for a file `done` in the working directory
 * (at most 120 s: the test detaches first) and exits with status 4. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/io_uring.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sem.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    int seconds = argc > 2 ? atoi(argv[2]) : 2;
    int r = -2, err = 0;
    int fds[2];
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    struct timespec two = {seconds, 0};
    struct timeval two_tv = {seconds, 0};
    printf("ready\n");
    fflush(stdout);
    double start = now();
    if (strcmp(mode, "epoll") == 0) {
        pipe(fds);
        int ep = epoll_create1(0);
        struct epoll_event ev = {.events = EPOLLIN};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &ev);
        r = epoll_wait(ep, &ev, 1, seconds * 1000);
    } else if (strcmp(mode, "sigtimedwait") == 0) {
        r = sigtimedwait(&set, NULL, &two);
    } else if (strcmp(mode, "recv") == 0) {
        socketpair(AF_UNIX, SOCK_STREAM, 0, fds);
        setsockopt(fds[0], SOL_SOCKET, SO_RCVTIMEO, &two_tv, sizeof two_tv);
        char b[4];
        r = recv(fds[0], b, sizeof b, 0);
    } else if (strcmp(mode, "read") == 0 || strcmp(mode, "readv") == 0) {
        socketpair(AF_UNIX, SOCK_STREAM, 0, fds);
        setsockopt(fds[0], SOL_SOCKET, SO_RCVTIMEO, &two_tv, sizeof two_tv);
        char b[4];
        struct iovec v = {b, sizeof b};
        r = mode[4] == 'v' ? readv(fds[0], &v, 1) : read(fds[0], b, sizeof b);
    } else if (strcmp(mode, "write") == 0) {
        socketpair(AF_UNIX, SOCK_STREAM, 0, fds);
        static char block[4096];
        fcntl(fds[0], F_SETFL, O_NONBLOCK);
        while (write(fds[0], block, sizeof block) > 0) {
        }
        fcntl(fds[0], F_SETFL, 0);
        setsockopt(fds[0], SOL_SOCKET, SO_SNDTIMEO, &two_tv, sizeof two_tv);
        start = now();
        r = write(fds[0], block, sizeof block);
    } else if (strcmp(mode, "io_uring") == 0) {
        struct io_uring_params params;
        memset(&params, 0, sizeof params);
        int ring = syscall(SYS_io_uring_setup, 4, &params);
        if (ring < 0) {
            printf("io_uring unavailable\n");
            return 4;
        }
        struct __kernel_timespec ts = {seconds, 0};
        struct io_uring_getevents_arg arg;
        memset(&arg, 0, sizeof arg);
        arg.ts = (uint64_t)(uintptr_t)&ts;
        r = syscall(SYS_io_uring_enter, ring, 0, 1,
                    IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg, sizeof arg);
    } else if (strcmp(mode, "semtimedop") == 0) {
        int id = semget(IPC_PRIVATE, 1, 0600);
        struct sembuf op = {0, -1, 0};
        r = semtimedop(id, &op, 1, &two);
        err = errno;
        semctl(id, 0, IPC_RMID);
        errno = err;
    }
    err = r < 0 ? errno : 0;
    long tenths = (long)((now() - start) * 10);
    printf("%s %d errno %d tenths %ld\n", mode, r, err, tenths);
    fflush(stdout);
    for (int i = 0; i < 6000 && access("done", F_OK) != 0; i++)
        usleep(20000);
    return 4;
}
