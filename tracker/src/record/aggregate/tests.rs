//! The sums under threads that share the lock: blocks freed by another thread than the one that
//! allocated them, a peak reached by two threads, and racing threads whose peak still adds up.

use super::*;
use std::sync::mpsc;
use std::sync::Mutex;

/// The tests share the one global state.
static SERIAL: Mutex<()> = Mutex::new(());

const BASE: u64 = 0x7e00_0000_0000;

/// An entry's (stack, serial) and its (live, at the peak, in all), each (count, bytes).
type Sums = ((u64, u32), [(u64, u64); 3]);

/// A thread that runs the jobs it is sent.
type Worker = mpsc::Sender<Box<dyn FnOnce() + Send>>;

fn entries() -> Vec<Sums> {
    let mut s = STATE.lock(super::me());
    let peak_event = s.peak_event;
    let mut v: Vec<_> = (0..s.entries_len)
        .map(|i| {
            let e = *s.entry(i);
            let live = (e.live_count, e.live_bytes);
            let total = (e.total_count, e.total_bytes);
            ((e.stack, e.serial), [live, e.at_peak(peak_event), total])
        })
        .collect();
    v.sort();
    v
}

/// Runs `f` on the worker `w` and waits for it.
fn on(w: &Worker, f: impl FnOnce() + Send + 'static) {
    let (done, wait) = mpsc::channel();
    w.send(Box::new(move || {
        f();
        done.send(()).unwrap();
    }))
    .unwrap();
    wait.recv().unwrap();
}

fn worker() -> (Worker, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
    (
        tx,
        std::thread::spawn(move || rx.into_iter().for_each(|f| f())),
    )
}

#[test]
fn peak_of_two_threads_and_frees_of_each_others_blocks() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    configure(true, 0);
    let ((a, ja), (b, jb)) = (worker(), worker());
    on(&a, || {
        for k in 0..2000 {
            alloc(
                me(),
                1,
                4,
                Allocator::PymallocMalloc,
                BASE + 0x10_0000 + k * 16,
                16,
                1,
            );
            free(me(), true, BASE + 0x10_0000 + k * 16);
        }
        alloc(me(), 1, 5, Allocator::PymallocMalloc, BASE, 100, 1);
    });
    on(&b, || {
        alloc(me(), 2, 6, Allocator::Malloc, BASE + 4096, 200, 1)
    });
    on(&b, || free(me(), true, BASE));
    on(&a, || free(me(), false, BASE + 4096));
    on(&a, || {
        alloc(me(), 1, 5, Allocator::PymallocMalloc, BASE + 64, 50, 1)
    });
    drop((a, b));
    ja.join().unwrap();
    jb.join().unwrap();
    {
        let s = STATE.lock(super::me());
        assert_eq!((s.peak_count, s.peak_bytes), (2, 300));
        assert_eq!((s.live_count, s.live_bytes), (1, 50));
        assert_eq!(s.allocated(), (2003, 32350));
        assert_eq!(s.frees(), 2002);
    }
    assert_eq!(
        entries(),
        vec![
            ((4, 1), [(0, 0), (0, 0), (2000, 32000)]),
            ((5, 1), [(1, 50), (1, 100), (2, 150)]),
            ((6, 2), [(0, 0), (1, 200), (1, 200)]),
        ]
    );
}

#[test]
fn racing_threads_free_each_others_blocks() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Thread 1 starts the capture: the lock is biased to it until thread 2 records.
    let started = std::sync::Arc::new(std::sync::Barrier::new(2));
    const N: u64 = 100_000;
    // Each thread allocates blocks in a range of its own and frees the blocks the other
    // sends it.
    let (to_b, from_a) = mpsc::channel::<u64>();
    let (to_a, from_b) = mpsc::channel::<u64>();
    let run = |serial: u32, base: u64, to: mpsc::Sender<u64>, from: mpsc::Receiver<u64>| {
        let started = started.clone();
        move || {
            if serial == 1 {
                configure(true, 0);
            }
            started.wait();
            for k in 0..N {
                alloc(
                    me(),
                    serial,
                    u64::from(serial),
                    Allocator::Malloc,
                    base + k * 32,
                    24,
                    1,
                );
                to.send(base + k * 32).unwrap();
                if k % 4096 == 4095 {
                    while let Ok(addr) = from.try_recv() {
                        free(me(), false, addr);
                    }
                }
            }
            drop(to);
            for addr in from {
                free(me(), false, addr);
            }
        }
    };
    let ja = std::thread::spawn(run(1, BASE, to_b, from_b));
    let jb = std::thread::spawn(run(2, BASE + (1 << 30), to_a, from_a));
    ja.join().unwrap();
    jb.join().unwrap();
    let (peak_count, peak_bytes) = {
        let s = STATE.lock(super::me());
        assert_eq!((s.live_count, s.live_bytes), (0, 0));
        assert_eq!(s.allocated(), (2 * N, 2 * N * 24));
        assert_eq!(s.frees(), 2 * N);
        assert_eq!(s.peak_bytes, s.peak_count * 24);
        (s.peak_count, s.peak_bytes)
    };
    let e = entries();
    assert_eq!(e.len(), 2);
    for (i, (key, [live, _, total])) in e.iter().enumerate() {
        assert_eq!(*key, (i as u64 + 1, i as u32 + 1));
        assert_eq!(*live, (0, 0));
        assert_eq!(*total, (N, N * 24));
    }
    // Whatever the interleaving, the entries at the peak add up to the peak.
    let at_peak = e
        .iter()
        .map(|(_, v)| v[1])
        .fold((0, 0), |s, p| (s.0 + p.0, s.1 + p.1));
    assert_eq!(at_peak, (peak_count, peak_bytes));
    assert!(peak_count >= 1);
}

#[test]
fn a_new_capture_starts_from_nothing_on_the_kept_tables() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    configure(true, 0);
    // The first capture leaves small and large blocks live (freed after it ends, untracked).
    for k in 0..5000u64 {
        alloc(me(), 1, 3, Allocator::PymallocMalloc, BASE + k * 32, 24, 1);
    }
    alloc(me(), 1, 4, Allocator::Malloc, BASE + (1 << 32), 1 << 20, 1);
    configure(true, 0);
    // The second: a block at an address of the first's, and a free of one of the first's.
    alloc(me(), 1, 5, Allocator::PymallocMalloc, BASE + 64, 40, 1);
    free(me(), true, BASE + 96);
    free(me(), false, BASE + (1 << 32));
    {
        let s = STATE.lock(me());
        assert_eq!((s.live_count, s.live_bytes), (1, 40));
        assert_eq!((s.peak_count, s.peak_bytes), (1, 40));
        assert_eq!(s.allocated(), (1, 40));
        assert_eq!(s.frees(), 2, "counted, their blocks not found");
    }
    assert_eq!(entries(), vec![((5, 1), [(1, 40), (1, 40), (1, 40)])]);
    free(me(), true, BASE + 64);
    let s = STATE.lock(me());
    assert_eq!((s.live_count, s.live_bytes), (0, 0));
}

#[test]
fn a_fork_child_gives_the_parent_s_tables_back() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    configure(true, 0);
    alloc(me(), 1, 3, Allocator::PymallocMalloc, BASE, 24, 1);
    configure(true, 0);
    assert!(
        STATE.lock(me()).small.leaves() > 0,
        "kept from one capture to the next"
    );
    reset_in_child();
    configure(true, 0);
    assert_eq!(
        STATE.lock(me()).small.leaves(),
        0,
        "given back in a fork child"
    );
    alloc(me(), 1, 3, Allocator::PymallocMalloc, BASE, 24, 1);
    let s = STATE.lock(me());
    assert_eq!((s.live_count, s.live_bytes), (1, 24));
}
