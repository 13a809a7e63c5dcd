/* A program that sandboxes itself with seccomp, for the tracker's sandbox handling
 * (tracker/src/session/sandbox). `sandboxed MODE`:
 *   none        no filter (the baseline);
 *   allow-list  prctl(PR_SET_SECCOMP) with a filter that allows what this program needs and
 *               kills the process on any other call (as OpenSSH's privilege-separated child);
 *   deny-list   syscall(SYS_seccomp) with a filter that allows everything but ptrace;
 *   strict      prctl strict mode: read, write and exit only (it ends with a raw exit);
 *   exec        the allow-list and what an exec and a dynamic loader need, then it execs itself
 *               as `sandboxed execd`, which says so and exits;
 *   wait        the allow-list and what waiting for a file needs, says "ready", waits for the
 *               file "go" in its directory, allocates, says "bye" and exits with status 7 (the
 *               target of `memtrace attach`, which must leave it alone).
 * Before the filter: 100 blocks of 1,000 bytes, kept. After it: 200 of 3,000 kept, 50 of 5,000
 * freed, and a child (fork) that exits with status 3. Output goes through write(2) only (no
 * stdio buffer is allocated). */
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define ALLOW(n) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (n), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)

static void say(const char *s) {
    if (write(1, s, strlen(s)) < 0) _exit(9);
}

static void keep(int n, size_t size) {
    for (int i = 0; i < n; i++) {
        char *p = malloc(size);
        if (!p) _exit(8);
        memset(p, 1, size);
    }
}

static void churn(int n, size_t size) {
    for (int i = 0; i < n; i++) {
        char *p = malloc(size);
        if (!p) _exit(8);
        p[0] = 1;
        free(p);
    }
}

/* An allow-list's start (x86-64 only, the call's number loaded) and end (kill on any other
 * call), and the calls every list allows: what this program needs to allocate and write. */
#define LIST_START                                                              \
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),   \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),              \
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),                       \
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),     \
    ALLOW(SYS_read), ALLOW(SYS_write), ALLOW(SYS_exit), ALLOW(SYS_exit_group), \
    ALLOW(SYS_brk), ALLOW(SYS_mmap), ALLOW(SYS_munmap), ALLOW(SYS_mprotect),   \
    ALLOW(SYS_getrandom), ALLOW(SYS_futex), ALLOW(SYS_rt_sigreturn)
#define LIST_END BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS)

/* ... and a fork. */
static struct sock_filter allow_list[] = {
    LIST_START, ALLOW(SYS_clone), ALLOW(SYS_clone3), ALLOW(SYS_wait4),
    ALLOW(SYS_set_robust_list), ALLOW(SYS_rt_sigprocmask), LIST_END,
};

/* ... and the exec and what the loader of a dynamically linked program calls (no prctl,
 * readlink, gettid, ftruncate: what a tracker starting in the new image would call). */
static struct sock_filter exec_list[] = {
    LIST_START, ALLOW(SYS_execve), ALLOW(SYS_openat), ALLOW(SYS_close), ALLOW(SYS_fstat),
    ALLOW(SYS_newfstatat), ALLOW(SYS_pread64), ALLOW(SYS_arch_prctl),
    ALLOW(SYS_set_tid_address), ALLOW(SYS_set_robust_list), ALLOW(SYS_rseq),
    ALLOW(SYS_prlimit64), ALLOW(SYS_access), ALLOW(SYS_faccessat), ALLOW(SYS_faccessat2),
    ALLOW(SYS_rt_sigprocmask), LIST_END,
};

/* ... and what waiting for a file takes (access, sleeping). */
static struct sock_filter wait_list[] = {
    LIST_START, ALLOW(SYS_access), ALLOW(SYS_faccessat), ALLOW(SYS_faccessat2),
    ALLOW(SYS_nanosleep), ALLOW(SYS_clock_nanosleep), ALLOW(SYS_restart_syscall), LIST_END,
};

static struct sock_filter deny_list[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ptrace, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
};

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "none";
    if (strcmp(mode, "execd") == 0) {
        say("exec'd\n");
        return 0;
    }
    keep(100, 1000);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return 2;
    if (strcmp(mode, "allow-list") == 0) {
        struct sock_fprog prog = {sizeof allow_list / sizeof allow_list[0], allow_list};
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) return 2;
    } else if (strcmp(mode, "deny-list") == 0) {
        struct sock_fprog prog = {sizeof deny_list / sizeof deny_list[0], deny_list};
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) return 2;
    } else if (strcmp(mode, "exec") == 0) {
        struct sock_fprog prog = {sizeof exec_list / sizeof exec_list[0], exec_list};
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) return 2;
        char *args[] = {argv[0], "execd", NULL};
        execv("/proc/self/exe", args);
        return 5;
    } else if (strcmp(mode, "wait") == 0) {
        struct sock_fprog prog = {sizeof wait_list / sizeof wait_list[0], wait_list};
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) return 2;
        say("ready\n");
        while (access("go", F_OK) != 0) usleep(20000);
        keep(10, 2000);
        say("bye\n");
        return 7;
    } else if (strcmp(mode, "strict") == 0) {
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0) != 0) return 2;
        say("strict mode\n");
        syscall(SYS_exit, 0);
    }
    say("sandboxed\n");
    keep(200, 3000);
    churn(50, 5000);
    pid_t pid = fork();
    if (pid == 0) {
        keep(1, 7000);
        _exit(3);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) return 4;
    say(WIFEXITED(status) && WEXITSTATUS(status) == 3 ? "child exited 3\n" : "child failed\n");
    return 0;
}
