//! The threads the reporter decodes with. Its parallel parts (rayon) use a global pool of
//! threads that, once made, stays for the life of the process: a Python program that read one
//! capture was multi-threaded from then on, and on Python 3.12 and later each of its later
//! `os.fork()` calls warned "This process is multi-threaded, use of fork() may lead to
//! deadlocks" (under `pytest --memtrace`, every test that forks after the first capture read).
//! So each read runs on a pool of its own, whose threads are gone when it returns.

use rayon::ThreadPoolBuilder;
use std::time::{Duration, Instant};

/// Runs `work` (which may use rayon) on a pool made for it, and waits until the pool's threads
/// have ended (at most a second: they end at once).
pub fn transient<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
    let before = tasks();
    let Ok(pool) = ThreadPoolBuilder::new().num_threads(threads).build() else {
        return work();
    };
    let result = pool.install(work);
    drop(pool);
    if let Some(before) = before {
        let start = Instant::now();
        while tasks().is_some_and(|n| n > before) && start.elapsed() < Duration::from_secs(1) {
            std::thread::sleep(Duration::from_millis(1));
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
