// Allocations at known lines through the C++ and C libraries' wrappers of malloc (operator new
// and its variants, strdup, strndup), on the main thread and another one, and one request the
// allocator refuses. Nothing is freed: every block is live at exit. Built with -O0 (no new/delete
// pair is elided). `cxx_sites N`: the first block has 1000 * N bytes.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

static void *keep[64];
static int kept;

static void in_thread(int n) {
    for (int i = 0; i < n; i++)
        keep[kept++] = new char[3000]; // line 16
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1;
    keep[kept++] = new char[1000 * n];                   // line 21
    keep[kept++] = new long[50];                         // line 22
    keep[kept++] = new (std::nothrow) char[700];         // line 23
    keep[kept++] = new (std::nothrow) double(2.5);       // line 24
    keep[kept++] = new (std::align_val_t(64)) char[640]; // line 25
    keep[kept++] = strdup("seventeen bytes!");           // line 26
    keep[kept++] = strndup("abcdefghij", 5);             // line 27
    std::thread t(in_thread, 4);
    t.join();
    try {
        keep[kept++] = new char[(size_t)1 << 62]; // line 31
    } catch (const std::bad_alloc &) {
        puts("refused");
    }
    printf("%d blocks\n", kept);
    return 0;
}
