/* memtrace attach's test program for a process whose main thread ended: main starts a worker
 * and calls pthread_exit; the worker waits for the file "go", allocates 1,234,567 bytes at
 * line 18 (kept), writes "allocated", waits for "done", prints "bye" and exits with status 6. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void wait_for(const char *path) {
    while (access(path, F_OK) != 0)
        usleep(20000);
}

static void *worker(void *arg) {
    (void)arg;
    wait_for("go");
    char *kept = malloc(1234567);
    memset(kept, 2, 1234567);
    fclose(fopen("allocated", "w"));
    wait_for("done");
    printf("bye\n");
    fflush(stdout);
    exit(6);
}

int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    printf("ready\n");
    fflush(stdout);
    pthread_exit(NULL);
}
