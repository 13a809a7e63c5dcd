// A program that replaces the global operator new: its body is the program's own code, and its
// malloc line is where every `new` of the program is allocated (with a 64-byte header).
#include <cstdio>
#include <cstdlib>
#include <new>

static unsigned long news;

void *operator new(std::size_t n) {
    news++;
    void *p = std::malloc(n + 64); // line 11
    if (!p)
        throw std::bad_alloc();
    return p;
}
void operator delete(void *p) noexcept { std::free(p); }
void operator delete(void *p, std::size_t) noexcept { std::free(p); }

static void *volatile sink;

int main() {
    for (int i = 0; i < 10; i++)
        sink = new long; // line 23
    for (int i = 0; i < 5; i++)
        sink = new char[100]; // line 25: libstdc++'s operator new[] calls this one
    std::printf("news %lu\n", news);
    return 0;
}
