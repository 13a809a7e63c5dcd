// A thread allocates with `new` inside its dl_iterate_phdr callback (the loader's lock held)
// while the main thread makes its first `new`: nothing may wait for the other, and both are
// counted at their lines. Prints "ok".
#include <atomic>
#include <cstdio>
#include <link.h>
#include <pthread.h>
#include <unistd.h>

static std::atomic<int> inside{0};
static void *volatile sink;

static int visit(struct dl_phdr_info *, size_t, void *) {
    if (inside.exchange(1) == 0)
        usleep(100000);
    sink = new int[2]; // line 16: once per loaded object
    return 0;
}

static void *list_objects(void *) {
    dl_iterate_phdr(visit, nullptr);
    return nullptr;
}

int main() {
    pthread_t t;
    pthread_create(&t, nullptr, list_objects, nullptr);
    while (!inside.load())
        ;
    usleep(20000);
    sink = new char[100]; // line 31
    pthread_join(t, nullptr);
    std::puts("ok");
    return 0;
}
