//! The threads the reporter decodes with. Its parallel parts (rayon) use a global pool of
//! threads that, once made, stays for the life of the process: a Python program that read one
//! capture was multi-threaded from then on, and on Python 3.12 and later each of its later
//! `os.fork()` calls warned "This process is multi-threaded, use of fork() may lead to
//! deadlocks" (under `pytest --memtrace`, every test that forks after the first capture read).
//! So each read runs on a pool of its own, whose threads are gone when it returns.

use rayon::ThreadPoolBuilder;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Runs `work` (which may use rayon) on a pool made for it, and waits until the pool's threads
/// have ended (at most a second: they end at once).
pub fn transient<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
    let before = tasks();
    // Threads whose exit handler ran: they end right after it.
    let exited = Arc::new((Mutex::new(0usize), Condvar::new()));
    let signal = Arc::clone(&exited);
    let built = ThreadPoolBuilder::new()
        .num_threads(threads)
        .exit_handler(move |_| {
            let (count, cv) = &*signal;
            *count.lock().unwrap_or_else(PoisonError::into_inner) += 1;
            cv.notify_all();
        })
        .build();
    let Ok(pool) = built else {
        return work();
    };
    let result = pool.install(work);
    drop(pool);
    let deadline = Instant::now() + Duration::from_secs(1);
    let (count, cv) = &*exited;
    let mut n = count.lock().unwrap_or_else(PoisonError::into_inner);
    while *n < threads && Instant::now() < deadline {
        n = cv
            .wait_timeout(n, Duration::from_millis(10))
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    drop(n);
    // Then until the system no longer counts them (a few microseconds).
    if let Some(before) = before {
        while tasks().is_some_and(|now| now > before) && Instant::now() < deadline {
            std::thread::yield_now();
        }
    }
    result
}

/// The threads of this process (None where /proc cannot tell).
fn tasks() -> Option<usize> {
    std::fs::read_dir("/proc/self/task")
        .ok()
        .map(Iterator::count)
}
