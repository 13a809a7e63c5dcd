/* A shared library that runs a callback on a thread it creates: for Python's ctypes, a thread
 * created from C that calls into Python. */
#include <pthread.h>

typedef void (*callback_t)(void);

static void *trampoline(void *cb) {
    ((callback_t)cb)();
    return 0;
}

int run_in_thread(callback_t cb) {
    pthread_t t;
    if (pthread_create(&t, 0, trampoline, (void *)cb) != 0)
        return -1;
    return pthread_join(t, 0);
}
