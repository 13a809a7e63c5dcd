/* Threads that load, call and unload libraries until a file `stop` appears in the working
 * directory, or for argv[1] seconds at most (tests/tests/attach.rs): each of 2 threads dlopens
 * the libraries named after it in turn (RTLD_NOW), calls their `lib_work` if they have one, and
 * closes them. Prints "ready" first and "bye" last (or what failed), exits 9. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int seconds;
static int nlibs;
static char **libs;

static void *loop(void *arg) {
    (void)arg;
    long failed = 0;
    time_t start = time(0);
    while (time(0) - start < seconds && access("stop", F_OK) != 0) {
        for (int i = 0; i < nlibs; i++) {
            void *h = dlopen(libs[i], RTLD_NOW);
            if (!h) {
                failed++;
                continue;
            }
            void *(*work)(void) = (void *(*)(void))dlsym(h, "lib_work");
            if (work)
                free(work());
            free(malloc(1000));
            dlclose(h);
        }
    }
    return (void *)failed;
}

int main(int argc, char **argv) {
    seconds = atoi(argv[1]);
    nlibs = argc - 2;
    libs = argv + 2;
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], 0, loop, 0);
    puts("ready");
    fflush(stdout);
    long failed = 0;
    for (int i = 0; i < 2; i++) {
        void *r;
        pthread_join(t[i], &r);
        failed += (long)r;
    }
    if (failed)
        printf("%ld loads failed\n", failed);
    else
        puts("bye");
    return 9;
}
