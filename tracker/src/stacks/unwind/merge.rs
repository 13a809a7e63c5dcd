//! One chain of a Python run's native and Python frames: after each native frame of CPython's
//! evaluation loop (`_PyEval_EvalFrameDefault`), the Python frames that run of the loop was
//! executing (docs/FORMAT.md, "Native stacks"). The runs are told apart by the Python chain's
//! entry frames; the k-th loop frame from the innermost runs the k-th run from the innermost, so
//! a walk that stops short (too deep, at JIT code, at a frame it cannot follow) still pairs the
//! loop frames it found, and the outer runs go outside the mark of where it stopped. A whole walk
//! with more loop frames than runs pairs the innermost loop frames (a greenlet's Python chain is
//! its own, while the native stack goes on into the loops of the code that switched to it); with
//! fewer, the stack stays native only.

use super::MAX_MERGED;
use crate::python::Step;
use memtrace_format::StopsShort;
use std::sync::atomic::{AtomicU64, Ordering};

/// Marks a Python frame id among the return addresses of a merged chain (user-space addresses
/// never have the top bit set).
pub const PYTHON: u64 = 1 << 63;

/// The evaluation loop's code: [start, end).
static EVAL_START: AtomicU64 = AtomicU64::new(0);
static EVAL_END: AtomicU64 = AtomicU64::new(0);

/// Finds the evaluation loop's code (the interpreter has started: its symbols are loaded).
pub fn learn_eval_loop() {
    // SAFETY: dlsym with a NUL-terminated name and a pseudo-handle.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"_PyEval_EvalFrameDefault".as_ptr()) };
    if p.is_null() {
        return;
    }
    let Some(sym) = crate::definition::symbol_entry(p as usize) else {
        return;
    };
    if sym.st_size == 0 {
        return;
    }
    let start = p as u64;
    EVAL_START.store(start, Ordering::Relaxed);
    EVAL_END.store(start + sym.st_size, Ordering::Relaxed);
}

/// Whether the return address `pc` returns into the evaluation loop.
#[inline]
fn is_eval(pc: u64, (start, end): (u64, u64)) -> bool {
    start < pc && pc <= end
}

/// The chain of the native return addresses `pcs` (innermost first) and the Python `chain`
/// (outermost first), innermost first into `out`; its length. `short` says why the walk stopped
/// before the thread's first frame: the chain then ends with that mark, and the Python frames of
/// the runs whose loop frames were not reached go outside it, so that each loop frame found still
/// has its own run (the runs pair from the innermost). Runs that do not pair up leave the native
/// frames alone. A chain longer than `out` keeps its innermost part, marked too deep.
///
/// A Python chain that is not `whole` lost its outermost frames: its outermost part belongs to
/// a run whose entry was left out. It pairs too (a 5,000-deep recursion, one run on 3.11+, lost
/// every Python frame: no entry, no run), and the chain ends there, marked too deep, since the
/// runs outside are gone.
pub fn merge(
    pcs: &[u64],
    short: Option<StopsShort>,
    chain: &[Step],
    whole: bool,
    out: &mut [u64; MAX_MERGED],
) -> usize {
    let eval = (
        EVAL_START.load(Ordering::Relaxed),
        EVAL_END.load(Ordering::Relaxed),
    );
    let loops = pcs.iter().filter(|&&pc| is_eval(pc, eval)).count();
    let cut_run = !whole && chain.first().is_some_and(|s| !s.entry);
    let runs = chain.iter().filter(|s| s.entry).count() + usize::from(cut_run);
    // A whole stack has a loop frame for each run (and more under a greenlet, whose Python
    // chain holds its own frames only); one that stops short, for the inner ones.
    let pairs = eval.0 != 0
        && match short {
            None => runs > 0 && loops >= runs,
            Some(_) => loops <= runs,
        };
    let mut chain_out = Chain { out, n: 0 };
    // The Python frames not placed yet: chain[..end].
    let mut end = chain.len();
    for &pc in pcs {
        if pairs && is_eval(pc, eval) {
            // Found: each loop frame before this one took one run, and there are more runs.
            let start = chain[..end].iter().rposition(|s| s.entry).unwrap_or(0);
            let run = &chain[start..end];
            chain_out.python(run);
            end = start;
            // A run whose frames all hide (one in its prologue, whose allocation is its
            // caller's: a class body's `__class__` cell) stands for nothing: its loop frame
            // goes too, as every loop frame does behind the Python frames it ran.
            if !run.is_empty() && run.iter().all(|s| s.frame == 0) {
                continue;
            }
            // A loop frame behind Python frames is one key, wherever in the loop it called
            // out (each opcode's own call site): the chain outside it then stays the same from
            // one allocation to the next, and a deep recursion's thousands of Python frames
            // are not interned again at each (6 times the time, 70 times the capture).
            let key = match run.is_empty() {
                true => pc,
                false => eval.0 + 1,
            };
            if !whole && start == 0 {
                // The outermost run kept: the runs outside it were left out.
                chain_out.push(key);
                chain_out.push(StopsShort::TooDeep.address());
                return chain_out.finish();
            }
            chain_out.push(key);
            continue;
        }
        chain_out.push(pc);
    }
    if let Some(s) = short {
        chain_out.push(s.address());
        if pairs {
            chain_out.python(&chain[..end]);
            // The Python frames outside them were left out too.
            if !whole && end > 0 {
                chain_out.push(StopsShort::TooDeep.address());
            }
        }
    }
    chain_out.finish()
}

/// A chain being written, innermost first; what does not fit is left out.
struct Chain<'a> {
    out: &'a mut [u64; MAX_MERGED],
    /// Keys pushed, also those that did not fit.
    n: usize,
}

impl Chain<'_> {
    fn push(&mut self, key: u64) {
        if self.n < MAX_MERGED {
            self.out[self.n] = key;
        }
        self.n += 1;
    }

    /// The shown frames of `steps` (outermost first), innermost first.
    fn python(&mut self, steps: &[Step]) {
        for s in steps.iter().rev() {
            if s.frame != 0 {
                self.push(PYTHON | s.frame);
            }
        }
    }

    /// The chain's length; a chain cut at the end of `out` ends with the too-deep mark.
    fn finish(self) -> usize {
        if self.n > MAX_MERGED {
            self.out[MAX_MERGED - 1] = StopsShort::TooDeep.address();
            return MAX_MERGED;
        }
        self.n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key of a loop frame behind Python frames: the loop's start, plus one.
    const LOOP: u64 = 0x1001;

    /// An evaluation loop at [0x1000, 0x2000); C frames elsewhere.
    fn with_loop<R>(f: impl FnOnce() -> R) -> R {
        EVAL_START.store(0x1000, Ordering::Relaxed);
        EVAL_END.store(0x2000, Ordering::Relaxed);
        f()
    }

    fn merged(pcs: &[u64], short: Option<StopsShort>, chain: &[Step]) -> Vec<u64> {
        merged_whole(pcs, short, chain, true)
    }

    fn merged_whole(
        pcs: &[u64],
        short: Option<StopsShort>,
        chain: &[Step],
        whole: bool,
    ) -> Vec<u64> {
        let mut out = vec![0u64; MAX_MERGED];
        let out: &mut [u64; MAX_MERGED] = out.as_mut_slice().try_into().expect("sized");
        let n = merge(pcs, short, chain, whole, out);
        out[..n].to_vec()
    }

    #[test]
    fn a_python_chain_cut_short_keeps_its_frames_under_the_loop_that_ran_them() {
        with_loop(|| {
            // One run whose entry was left out (a recursion deeper than kept): frames 7, 8, 9,
            // outermost first, none an entry. Native: malloc's caller, the loop, main.
            let chain = [
                Step::for_test(7, false),
                Step::for_test(8, false),
                Step::for_test(9, false),
            ];
            let pcs = [0x9000, 0x1500, 0x9200];
            assert_eq!(
                merged_whole(&pcs, None, &chain, false),
                [
                    0x9000,
                    PYTHON | 9,
                    PYTHON | 8,
                    PYTHON | 7,
                    LOOP,
                    StopsShort::TooDeep.address()
                ]
            );
            // Whole, the same chain has no run to pair: native only, as before.
            assert_eq!(merged_whole(&pcs, None, &chain, true), pcs);
            // Two runs, the outer one cut: the inner run under the inner loop, the cut one
            // under the outer loop, then the mark.
            let chain = [
                Step::for_test(7, false),
                Step::for_test(8, true),
                Step::for_test(9, false),
            ];
            let pcs = [0x9000, 0x1500, 0x9100, 0x1600, 0x9200];
            assert_eq!(
                merged_whole(&pcs, None, &chain, false),
                [
                    0x9000,
                    PYTHON | 9,
                    PYTHON | 8,
                    LOOP,
                    0x9100,
                    PYTHON | 7,
                    LOOP,
                    StopsShort::TooDeep.address()
                ]
            );
        });
    }

    /// Python, outermost first: run 1 = [1, 2], run 2 = [3 (hidden: 0), 4], run 3 = [5].
    fn three_runs() -> [Step; 5] {
        [
            Step::for_test(1, true),
            Step::for_test(2, false),
            Step::for_test(0, true),
            Step::for_test(4, false),
            Step::for_test(5, true),
        ]
    }

    #[test]
    fn each_run_goes_below_its_loop_frame() {
        with_loop(|| {
            // Native, innermost first: malloc's caller, the inner loop, a C call, the outer
            // loop, main. Python, outermost first: run 1 = [1, 2], run 2 = [3 (hidden: 0), 4].
            let pcs = [0x9000, 0x1500, 0x9100, 0x1600, 0x9200];
            let chain = &three_runs()[..4];
            assert_eq!(
                merged(&pcs, None, chain),
                [
                    0x9000,
                    PYTHON | 4,
                    LOOP,
                    0x9100,
                    PYTHON | 2,
                    PYTHON | 1,
                    LOOP,
                    0x9200
                ]
            );
        });
    }

    #[test]
    fn a_loop_frame_behind_python_frames_is_one_key_wherever_it_called_out() {
        // The same Python chain, the loop calling out from two opcodes' sites: one chain, so
        // that the frames outside it are not interned again.
        with_loop(|| {
            let chain = [Step::for_test(1, true), Step::for_test(2, false)];
            let a = merged(&[0x9000, 0x1500, 0x9200], None, &chain);
            let b = merged(&[0x9000, 0x1777, 0x9200], None, &chain);
            assert_eq!(a, b);
            assert_eq!(a, [0x9000, PYTHON | 2, PYTHON | 1, LOOP, 0x9200]);
        });
    }

    #[test]
    fn runs_that_do_not_pair_leave_a_whole_stack_native() {
        with_loop(|| {
            let pcs = [0x9000, 0x1500, 0x9200];
            let chain = [Step::for_test(1, true), Step::for_test(2, true)];
            assert_eq!(merged(&pcs, None, &chain), pcs);
        });
    }

    #[test]
    fn more_loop_frames_than_runs_pair_the_innermost_ones() {
        // A greenlet: its run below the innermost loop frame; the loop frames of the code that
        // switched to it (outer) have no run in its chain.
        with_loop(|| {
            let pcs = [0x9000, 0x1500, 0x9100, 0x1600, 0x9200];
            let chain = [Step::for_test(1, true), Step::for_test(2, false)];
            assert_eq!(
                merged(&pcs, None, &chain),
                [0x9000, PYTHON | 2, PYTHON | 1, LOOP, 0x9100, 0x1600, 0x9200]
            );
        });
    }

    #[test]
    fn a_stack_that_stops_short_pairs_its_loop_frames_from_the_innermost() {
        with_loop(|| {
            // The walk found the loop frames of runs 3 and 2; run 1's is beyond where it ended.
            let pcs = [0x9000, 0x1500, 0x9100, 0x1600, 0x9200];
            let too_deep = StopsShort::TooDeep.address();
            assert_eq!(
                merged(&pcs, Some(StopsShort::TooDeep), &three_runs()),
                [
                    0x9000,
                    PYTHON | 5,
                    LOOP,
                    0x9100,
                    PYTHON | 4,
                    LOOP,
                    0x9200,
                    too_deep,
                    PYTHON | 2,
                    PYTHON | 1,
                ]
            );
            // No loop frame reached: every Python frame is outside the mark.
            let unwinding = StopsShort::Unwinding.address();
            assert_eq!(
                merged(
                    &[0x9000, 0x9100],
                    Some(StopsShort::Unwinding),
                    &three_runs()
                ),
                [
                    0x9000,
                    0x9100,
                    unwinding,
                    PYTHON | 5,
                    PYTHON | 4,
                    PYTHON | 2,
                    PYTHON | 1
                ]
            );
            // More loop frames than runs: native frames and the mark only.
            let chain = [Step::for_test(7, true)];
            assert_eq!(
                merged(&pcs, Some(StopsShort::UnknownCode), &chain),
                [
                    0x9000,
                    0x1500,
                    0x9100,
                    0x1600,
                    0x9200,
                    StopsShort::UnknownCode.address()
                ]
            );
            // Not a Python thread.
            assert_eq!(
                merged(&pcs[..2], Some(StopsShort::TooDeep), &[]),
                [0x9000, 0x1500, too_deep]
            );
        });
    }

    #[test]
    fn a_chain_longer_than_kept_keeps_its_innermost_part_marked_too_deep() {
        with_loop(|| {
            let pcs: Vec<u64> = (0..MAX_MERGED as u64 + 10).map(|i| 0x9000 + i).collect();
            let out = merged(&pcs, None, &[]);
            assert_eq!(out.len(), MAX_MERGED);
            assert_eq!(out[..MAX_MERGED - 1], pcs[..MAX_MERGED - 1]);
            assert_eq!(out[MAX_MERGED - 1], StopsShort::TooDeep.address());
        });
    }
}
