/* Programs that exec themselves or others, fork, vfork and spawn, each allocating blocks of
   known sizes in functions of their own (found by name in the reports).
   Usage: exec MODE [ARGS]
     chain N          image_block(10000 + N); exec itself as `chain N-1` while N > 0
     via FUNCTION     image_block(3000); exec itself as `chain 0` through FUNCTION (execl,
                      execle, execlp, execv, execve, execvp, execvpe, fexecve)
     fail [PATH]      image_block(1111); exec PATH (default: a missing program), which fails;
                      then after_block(2222) x3, exit status 7
     failwait PATH    as fail, then prints its pid and waits to be killed
     threads          4 threads allocate without pause; exec itself as `chain 0`
     threadsfail PATH 4 threads allocate without pause; exec PATH fails; after_block(2222);
                      the threads stop and are joined
     signal           allocates and frees without pause until a timer's signal handler execs
                      itself as `chain 0` (the handler may interrupt the tracker)
     vfork            vfork + exec /bin/echo, vfork + exec of a missing program (_exit 127);
                      then after_block(4444)
     spawn            posix_spawn /bin/echo and a missing program; then after_block(5555)
     forks N          a chain of N forked children, each image_block(6000 + depth) and exit
                      status depth; the parent prints the statuses it collects
     forkexec         a forked child execs itself as `chain 0`; the parent waits */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

__attribute__((noinline)) void *image_block(size_t n) {
    char *p = malloc(n);
    memset(p, 1, n);
    return p;
}

__attribute__((noinline)) void *after_block(size_t n) {
    char *p = malloc(n);
    memset(p, 2, n);
    return p;
}

static char self[4096];

static void find_self(void) {
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
}

static volatile int stop;

static void *spin(void *arg) {
    (void)arg;
    while (!stop) {
        void *p = malloc(64);
        *(volatile char *)p = 1;
        free(p);
    }
    return NULL;
}

static int via(const char *f) {
    char *argv[] = {"exec", "chain", "0", NULL};
    if (!strcmp(f, "execl")) return execl(self, "exec", "chain", "0", (char *)NULL);
    if (!strcmp(f, "execle")) return execle(self, "exec", "chain", "0", (char *)NULL, environ);
    if (!strcmp(f, "execv")) return execv(self, argv);
    if (!strcmp(f, "execve")) return execve(self, argv, environ);
    if (!strcmp(f, "fexecve")) {
        int fd = open(self, O_RDONLY | O_CLOEXEC);
        return fexecve(fd, argv, environ);
    }
    /* The p variants find the program on PATH: put its directory first. */
    char path[8192];
    char *slash = strrchr(self, '/');
    *slash = 0;
    snprintf(path, sizeof path, "PATH=%s:%s", self, getenv("PATH") ? getenv("PATH") : "/bin");
    *slash = '/';
    putenv(path);
    const char *name = slash + 1;
    if (!strcmp(f, "execlp")) return execlp(name, "exec", "chain", "0", (char *)NULL);
    if (!strcmp(f, "execvp")) return execvp(name, argv);
    if (!strcmp(f, "execvpe")) return execvpe(name, argv, environ);
    fprintf(stderr, "unknown function %s\n", f);
    return -1;
}

static int wait_status(pid_t pid) {
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int forks(int depth, int n) {
    image_block(6000 + depth);
    if (depth == n) return depth;
    pid_t pid = fork();
    if (pid == 0) _exit(forks(depth + 1, n));
    int st = wait_status(pid);
    printf("depth %d: child exited %d\n", depth, st);
    return depth;
}

static void exec_from_handler(int sig) {
    (void)sig;
    char *args[] = {"exec", "chain", "0", NULL};
    execv(self, args);
    _exit(98);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    find_self();
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "chain")) {
        int n = argc > 2 ? atoi(argv[2]) : 0;
        image_block(10000 + n);
        printf("image %d\n", n);
        if (n > 0) {
            char next[16];
            snprintf(next, sizeof next, "%d", n - 1);
            char *args[] = {"exec", "chain", next, NULL};
            execv(self, args);
            perror("execv");
            return 99;
        }
        return 0;
    } else if (!strcmp(mode, "via")) {
        image_block(3000);
        via(argc > 2 ? argv[2] : "");
        perror("exec");
        return 99;
    } else if (!strcmp(mode, "fail") || !strcmp(mode, "failwait")) {
        image_block(1111);
        char *args[] = {"missing", NULL};
        int r = execv(argc > 2 ? argv[2] : "/nonexistent/program", args);
        printf("exec failed: %d %s\n", r, strerror(errno));
        for (int i = 0; i < 3; i++) after_block(2222);
        if (!strcmp(mode, "failwait")) {
            printf("%d\n", (int)getpid());
            for (;;) pause();
        }
        return 7;
    } else if (!strcmp(mode, "threads")) {
        pthread_t t[4];
        for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, spin, NULL);
        usleep(20000);
        char *args[] = {"exec", "chain", "0", NULL};
        execv(self, args);
        perror("execv");
        return 99;
    } else if (!strcmp(mode, "threadsfail")) {
        pthread_t t[4];
        for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, spin, NULL);
        usleep(20000);
        char *args[] = {"missing", NULL};
        int r = execv(argc > 2 ? argv[2] : "/nonexistent/program", args);
        printf("exec failed: %d %s\n", r, strerror(errno));
        after_block(2222);
        usleep(20000);
        stop = 1;
        for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
        return 0;
    } else if (!strcmp(mode, "signal")) {
        signal(SIGALRM, exec_from_handler);
        struct itimerval it = {{0, 0}, {0, 20000}};
        setitimer(ITIMER_REAL, &it, NULL);
        for (;;) {
            void *p = malloc(48);
            *(volatile char *)p = 1;
            free(p);
        }
    } else if (!strcmp(mode, "vfork")) {
        pid_t pid = vfork();
        if (pid == 0) {
            execl("/bin/echo", "echo", "from vfork", (char *)NULL);
            _exit(126);
        }
        printf("echo exited %d\n", wait_status(pid));
        pid = vfork();
        if (pid == 0) {
            execl("/nonexistent/program", "missing", (char *)NULL);
            _exit(127);
        }
        printf("missing exited %d\n", wait_status(pid));
        after_block(4444);
        return 0;
    } else if (!strcmp(mode, "spawn")) {
        pid_t pid;
        char *echo[] = {"echo", "spawned", NULL};
        int r = posix_spawn(&pid, "/bin/echo", NULL, NULL, echo, environ);
        printf("spawn: %d, echo exited %d\n", r, r == 0 ? wait_status(pid) : -1);
        char *missing[] = {"missing", NULL};
        r = posix_spawn(&pid, "/nonexistent/program", NULL, NULL, missing, environ);
        printf("spawn of a missing program: %s\n", strerror(r));
        after_block(5555);
        return 0;
    } else if (!strcmp(mode, "forks")) {
        forks(0, argc > 2 ? atoi(argv[2]) : 2);
        return 0;
    } else if (!strcmp(mode, "forkexec")) {
        pid_t pid = fork();
        if (pid == 0) {
            image_block(7777);
            char *args[] = {"exec", "chain", "0", NULL};
            execv(self, args);
            _exit(99);
        }
        printf("child exited %d\n", wait_status(pid));
        return 0;
    }
    return 0;
}
