/* The tracker's per-thread block, in the initial-exec TLS model (read through %fs). */
#include <stdint.h>

struct memtrace_tls {
    uint32_t in_tracker;   /* non-zero while the tracker runs on this thread */
    uint32_t exited;       /* the thread's state was released at thread exit */
    void *state;           /* the thread's ThreadState, or NULL */
    uint32_t serial;       /* the thread's serial number in the capture, 0 if none yet */
    uint32_t next_seq;     /* the next chunk sequence number of the thread */
    uint64_t epoch;        /* capture epoch the serial belongs to (a followed fork starts anew) */
    void *py;              /* the thread's Python shadow stack, or NULL */
    void *native;          /* the thread's native unwinding state, or NULL */
    int64_t sample_left;   /* byte sampling: bytes until the next sample */
    uint64_t sample_rng;   /* byte sampling: the thread's random state, 0 until seeded */
    uint64_t call_site;    /* while a hook records: the words its trampoline pushed, or 0 */
    uint64_t tick_word;    /* the coarse clock's time (plus one) at the thread's last counter read */
    uint64_t tick_last;    /* that read's tick */
    uint32_t clock_id;     /* the thread's id for the clock's kernel-tick claims, 0 until needed */
    uint32_t unused;
    uint64_t entry_ret;    /* the return address the recording hook's trampoline pushed */
};

/* Not static: on x86-64 the Rust side reads it in place (tls.rs, `block`); hidden, so that it
   stays the tracker's own. */
__attribute__((visibility("hidden"))) __thread struct memtrace_tls memtrace_tls_block
    __attribute__((tls_model("initial-exec")));

struct memtrace_tls *memtrace_tls_get(void) { return &memtrace_tls_block; }
