//! One chain of a Python run's native and Python frames: after each native frame of CPython's
//! evaluation loop (`_PyEval_EvalFrameDefault`), the Python frames that run of the loop was
//! executing (docs/FORMAT.md, "Native stacks"). The runs are told apart by the Python chain's
//! entry frames; the k-th loop frame from the innermost runs the k-th run from the innermost.
//! When the two counts differ (a walk cut short, a run starting), the stack stays native only.

use super::MAX_MERGED;
use crate::python::Step;
use libc::c_void;
use std::sync::atomic::{AtomicU64, Ordering};

/// Marks a Python frame id among the return addresses of a merged chain (user-space addresses
/// never have the top bit set).
pub const PYTHON: u64 = 1 << 63;

/// dladdr1's request for the symbol table entry (glibc's dlfcn.h).
const RTLD_DL_SYMENT: libc::c_int = 1;

/// The evaluation loop's code: [start, end).
static EVAL_START: AtomicU64 = AtomicU64::new(0);
static EVAL_END: AtomicU64 = AtomicU64::new(0);

/// Finds the evaluation loop's code (the interpreter has started: its symbols are loaded).
pub fn learn_eval_loop() {
    // SAFETY: dlsym with a NUL-terminated name; dladdr1 fills `info` and points `sym` at the
    // loader's symbol entry for an address inside a loaded module.
    unsafe {
        let p = libc::dlsym(libc::RTLD_DEFAULT, c"_PyEval_EvalFrameDefault".as_ptr());
        if p.is_null() {
            return;
        }
        let mut info: libc::Dl_info = core::mem::zeroed();
        let mut sym: *const libc::Elf64_Sym = core::ptr::null();
        let found = libc::dladdr1(
            p,
            &mut info,
            &mut sym as *mut *const libc::Elf64_Sym as *mut *mut c_void,
            RTLD_DL_SYMENT,
        );
        if found == 0 || sym.is_null() || (*sym).st_size == 0 {
            return;
        }
        let start = p as u64;
        EVAL_START.store(start, Ordering::Relaxed);
        EVAL_END.store(start + (*sym).st_size, Ordering::Relaxed);
    }
}

/// Whether the return address `pc` returns into the evaluation loop.
#[inline]
fn is_eval(pc: u64, (start, end): (u64, u64)) -> bool {
    start < pc && pc <= end
}

/// The merged chain of the native return addresses `pcs` (innermost first) and the Python
/// `chain` (outermost first), innermost first into `out`; None when the runs do not pair up.
pub fn merge(pcs: &[u64], chain: &[Step], out: &mut [u64; MAX_MERGED]) -> Option<usize> {
    let eval = (
        EVAL_START.load(Ordering::Relaxed),
        EVAL_END.load(Ordering::Relaxed),
    );
    if eval.0 == 0 {
        return None;
    }
    let loops = pcs.iter().filter(|&&pc| is_eval(pc, eval)).count();
    let runs = chain.iter().filter(|s| s.entry).count();
    if loops == 0 || loops != runs {
        return None;
    }
    let mut n = 0;
    let mut push = |key: u64| {
        if n < MAX_MERGED {
            out[n] = key;
            n += 1;
        }
    };
    // The Python frames not placed yet: chain[..end].
    let mut end = chain.len();
    for &pc in pcs {
        if is_eval(pc, eval) {
            let start = chain[..end].iter().rposition(|s| s.entry)?;
            for s in chain[start..end].iter().rev() {
                if s.frame != 0 {
                    push(PYTHON | s.frame);
                }
            }
            end = start;
        }
        push(pc);
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An evaluation loop at [0x1000, 0x2000); C frames elsewhere.
    fn with_loop<R>(f: impl FnOnce() -> R) -> R {
        EVAL_START.store(0x1000, Ordering::Relaxed);
        EVAL_END.store(0x2000, Ordering::Relaxed);
        f()
    }

    #[test]
    fn each_run_goes_below_its_loop_frame() {
        with_loop(|| {
            // Native, innermost first: malloc's caller, the inner loop, a C call, the outer
            // loop, main. Python, outermost first: run 1 = [1, 2], run 2 = [3 (hidden: 0), 4].
            let pcs = [0x9000, 0x1500, 0x9100, 0x1600, 0x9200];
            let chain = [
                Step::for_test(1, true),
                Step::for_test(2, false),
                Step::for_test(0, true),
                Step::for_test(4, false),
            ];
            let mut out = [0u64; MAX_MERGED];
            let n = merge(&pcs, &chain, &mut out).expect("runs pair up");
            assert_eq!(
                out[..n],
                [
                    0x9000,
                    PYTHON | 4,
                    0x1500,
                    0x9100,
                    PYTHON | 2,
                    PYTHON | 1,
                    0x1600,
                    0x9200
                ]
            );
        });
    }

    #[test]
    fn runs_that_do_not_pair_leave_the_stack_native() {
        with_loop(|| {
            let pcs = [0x9000, 0x1500, 0x9200];
            let chain = [Step::for_test(1, true), Step::for_test(2, true)];
            let mut out = [0u64; MAX_MERGED];
            assert_eq!(merge(&pcs, &chain, &mut out), None);
        });
    }
}
