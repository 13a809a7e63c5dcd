/* The variadic exec functions (Rust cannot define C variadic functions): they gather their
   arguments as glibc does (on the stack, no allocation) and call the tracker's execve or
   execvpe hook (tracker/src/session/exec/entry.rs). */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>

extern char **environ;
int memtrace_execve_hook(const char *path, char *const argv[], char *const envp[]);
int memtrace_execvpe_hook(const char *file, char *const argv[], char *const envp[]);

/* Counts the arguments after `arg` up to the terminating NULL (the NULL not counted). */
#define COUNT_ARGS(arg, argc)                                                                  \
    do {                                                                                       \
        va_list ap;                                                                            \
        va_start(ap, arg);                                                                     \
        for (argc = 1; va_arg(ap, const char *); argc++) {                                     \
            if (argc == INT_MAX) {                                                             \
                va_end(ap);                                                                    \
                errno = E2BIG;                                                                 \
                return -1;                                                                     \
            }                                                                                  \
        }                                                                                      \
        va_end(ap);                                                                            \
    } while (0)

/* The body of a list call: `argv` gathered on the stack (counted first, then filled), the
   environment `environ` unless `take_envp` reads it after the list (execle), then `call`. */
#define LIST_CALL(arg, take_envp, call)                                                        \
    do {                                                                                       \
        ptrdiff_t argc;                                                                        \
        COUNT_ARGS(arg, argc);                                                                 \
        char *argv[argc + 1];                                                                  \
        char **envp = environ;                                                                 \
        va_list ap;                                                                            \
        va_start(ap, arg);                                                                     \
        argv[0] = (char *)arg;                                                                 \
        for (ptrdiff_t i = 1; i <= argc; i++) argv[i] = va_arg(ap, char *);                    \
        take_envp;                                                                             \
        va_end(ap);                                                                            \
        return call;                                                                           \
    } while (0)

int memtrace_execl(const char *path, const char *arg, ...) {
    LIST_CALL(arg, (void)0, memtrace_execve_hook(path, argv, envp));
}

int memtrace_execle(const char *path, const char *arg, ...) {
    LIST_CALL(arg, envp = va_arg(ap, char **), memtrace_execve_hook(path, argv, envp));
}

int memtrace_execlp(const char *file, const char *arg, ...) {
    LIST_CALL(arg, (void)0, memtrace_execvpe_hook(file, argv, envp));
}
