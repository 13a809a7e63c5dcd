//! Runs a seccomp filter (classic BPF, as `prctl(PR_SET_SECCOMP)` and `seccomp(2)` take it)
//! on a system call, to learn what the kernel will do with that call once the filter is in
//! place. The kernel accepts only a subset of classic BPF for seccomp (loads from the call's
//! data, scratch memory, arithmetic, forward jumps, returns); anything else here, or a program
//! that runs off its end, answers `None`: the caller then treats the call as forbidden.

/// One instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// What a filter sees of a call (`struct seccomp_data`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Call {
    pub nr: i32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

impl Call {
    /// The 32-bit word at byte `offset`, as the kernel's loads read it (native byte order).
    fn word(&self, offset: u32) -> Option<u32> {
        let offset = offset as usize;
        if !offset.is_multiple_of(4) {
            return None;
        }
        let words: [u32; 2] = match offset / 8 {
            0 => [self.nr as u32, self.arch],
            1 => split(self.instruction_pointer),
            n @ 2..=7 => split(self.args[n - 2]),
            _ => return None,
        };
        Some(words[offset % 8 / 4])
    }
}

/// A 64-bit field as the two words of its place in memory.
fn split(v: u64) -> [u32; 2] {
    let b = v.to_ne_bytes();
    [
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
    ]
}

/// `sizeof(struct seccomp_data)`.
const DATA_LEN: u32 = 64;
/// The largest program the kernel takes (BPF_MAXINSNS).
pub const MAX_INSNS: usize = 4096;

/// What the filter returns for `call`; None for a program this cannot run.
pub fn run(prog: &[Insn], call: &Call) -> Option<u32> {
    if prog.is_empty() || prog.len() > MAX_INSNS {
        return None;
    }
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    // Every jump is forward: each step moves on, so the loop ends.
    while let Some(i) = prog.get(pc) {
        pc += 1;
        let k = i.k;
        match i.code {
            // Loads: the call's data, its length, an immediate, scratch memory.
            0x20 => a = call.word(k)?,
            0x80 => a = DATA_LEN,
            0x81 => x = DATA_LEN,
            0x00 => a = k,
            0x01 => x = k,
            0x60 => a = *mem.get(k as usize)?,
            0x61 => x = *mem.get(k as usize)?,
            0x02 => *mem.get_mut(k as usize)? = a,
            0x03 => *mem.get_mut(k as usize)? = x,
            // Returns.
            0x06 => return Some(k),
            0x16 => return Some(a),
            // TAX, TXA.
            0x07 => x = a,
            0x87 => a = x,
            code if code & 0x07 == 0x04 => a = alu(code, a, if code & 0x08 != 0 { x } else { k })?,
            code if code & 0x07 == 0x05 => {
                let operand = if code & 0x08 != 0 { x } else { k };
                let taken = match code & 0xf0 {
                    0x00 if code == 0x05 => {
                        pc = pc.checked_add(k as usize)?;
                        continue;
                    }
                    0x10 => a == operand,
                    0x20 => a > operand,
                    0x30 => a >= operand,
                    0x40 => a & operand != 0,
                    _ => return None,
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            _ => return None,
        }
    }
    None
}

/// An arithmetic instruction's result; None for a division by zero (the kernel refuses a
/// constant one and ends the program on a variable one) or an unknown operation.
fn alu(code: u16, a: u32, operand: u32) -> Option<u32> {
    Some(match code & 0xf0 {
        0x00 => a.wrapping_add(operand),
        0x10 => a.wrapping_sub(operand),
        0x20 => a.wrapping_mul(operand),
        0x30 => a.checked_div(operand)?,
        0x40 => a | operand,
        0x50 => a & operand,
        0x60 => a.checked_shl(operand).unwrap_or(0),
        0x70 => a.checked_shr(operand).unwrap_or(0),
        0x80 => a.wrapping_neg(),
        0x90 => a.checked_rem(operand)?,
        0xa0 => a ^ operand,
        _ => return None,
    })
}

/// The action part of a filter's result (SECCOMP_RET_ACTION_FULL).
const ACTION: u32 = 0xffff_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_LOG: u32 = 0x7ffc_0000;

/// Whether the filter lets `call` run (allowed, or allowed and logged).
pub fn allows(prog: &[Insn], call: &Call) -> bool {
    matches!(
        run(prog, call).map(|r| r & ACTION),
        Some(RET_ALLOW | RET_LOG)
    )
}

/// Filters written out for tests (here and in the sandbox's own).
#[cfg(test)]
pub mod build {
    use super::{Insn, RET_ALLOW};

    pub const fn ins(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }
    pub const LD_NR: Insn = ins(0x20, 0, 0, 0);
    pub const LD_ARCH: Insn = ins(0x20, 0, 0, 4);
    pub const KILL: Insn = ins(0x06, 0, 0, 0x8000_0000);
    pub const ALLOW: Insn = ins(0x06, 0, 0, RET_ALLOW);
    /// Fails the call with EPERM.
    pub const ERRNO: Insn = ins(0x06, 0, 0, 0x0005_0000 | 1);

    /// An allow-list: the architecture `arch` checked, then each allowed number, else kill.
    pub fn allow_list(arch: u32, numbers: &[u32]) -> Vec<Insn> {
        let mut p = vec![LD_ARCH, ins(0x15, 1, 0, arch), KILL, LD_NR];
        for &n in numbers {
            p.push(ins(0x15, 0, 1, n));
            p.push(ALLOW);
        }
        p.push(KILL);
        p
    }

    /// A deny-list: `action` for each number, every other call allowed.
    pub fn deny_list(numbers: &[u32], action: Insn) -> Vec<Insn> {
        let mut p = vec![LD_NR];
        for &n in numbers {
            p.push(ins(0x15, 0, 1, n));
            p.push(action);
        }
        p.push(ALLOW);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    fn call(nr: i32, args: [u64; 6]) -> Call {
        Call {
            nr,
            arch: 0xc000_003e,
            instruction_pointer: 0x7f00_1234_5678,
            args,
        }
    }

    #[test]
    fn an_allow_list_allows_its_calls_only() {
        let p = allow_list(0xc000_003e, &[0, 1, 9, 60]);
        for nr in [0, 1, 9, 60] {
            assert!(allows(&p, &call(nr, [0; 6])), "{nr}");
        }
        for nr in [2, 3, 186, 77] {
            assert!(!allows(&p, &call(nr, [0; 6])), "{nr}");
            assert_eq!(run(&p, &call(nr, [0; 6])), Some(0x8000_0000));
        }
        let mut other_arch = call(0, [0; 6]);
        other_arch.arch = 0x4000_0003;
        assert!(!allows(&p, &other_arch));
    }

    #[test]
    fn a_deny_list_with_an_argument_check() {
        // mmap (9) with PROT_EXEC (4) in its third argument: EPERM; ptrace (101): kill; the
        // rest allowed, logged.
        let p = [
            LD_NR,
            ins(0x15, 0, 4, 9),
            ins(0x20, 0, 0, 16 + 2 * 8),
            ins(0x45, 0, 1, 4),
            ERRNO,
            ALLOW,
            ins(0x15, 0, 1, 101),
            KILL,
            ins(0x06, 0, 0, RET_LOG),
        ];
        assert!(allows(&p, &call(9, [0, 4096, 3, 0x22, u64::MAX, 0])));
        assert!(!allows(&p, &call(9, [0, 4096, 7, 0x22, u64::MAX, 0])));
        assert!(!allows(&p, &call(101, [0; 6])));
        assert!(allows(&p, &call(1, [0; 6])), "logged is allowed");
    }

    #[test]
    fn high_words_scratch_memory_and_arithmetic() {
        // Allowed when the first argument's high word, masked, stored and reloaded, plus one,
        // is 0x8000.
        let p = [
            ins(0x20, 0, 0, 16 + 4),
            ins(0x54, 0, 0, 0xffff),
            ins(0x02, 0, 0, 3),
            ins(0x00, 0, 0, 0),
            ins(0x61, 0, 0, 3),
            ins(0x87, 0, 0, 0),
            ins(0x04, 0, 0, 1),
            ins(0x15, 0, 1, 0x8000),
            ALLOW,
            KILL,
        ];
        assert!(allows(&p, &call(0, [0x7fff_0000_0000, 0, 0, 0, 0, 0])));
        assert!(!allows(&p, &call(0, [0x7ffe_0000_0000, 0, 0, 0, 0, 0])));
        // A jump over, and a return of A.
        let p = [
            ins(0x05, 0, 0, 1),
            KILL,
            ins(0x00, 0, 0, RET_ALLOW),
            ins(0x16, 0, 0, 0),
        ];
        assert!(allows(&p, &call(5, [0; 6])));
    }

    #[test]
    fn programs_it_cannot_run_answer_none() {
        let c = call(0, [0; 6]);
        assert_eq!(run(&[], &c), None, "empty");
        assert_eq!(run(&[LD_NR], &c), None, "runs off its end");
        assert_eq!(
            run(&[ins(0x20, 0, 0, 2), ALLOW], &c),
            None,
            "unaligned load"
        );
        assert_eq!(
            run(&[ins(0x20, 0, 0, 64), ALLOW], &c),
            None,
            "load past the data"
        );
        assert_eq!(
            run(&[ins(0x34, 0, 0, 0), ALLOW], &c),
            None,
            "division by zero"
        );
        assert_eq!(
            run(&[ins(0x05, 0, 0, 100), ALLOW], &c),
            None,
            "jump past the end"
        );
        assert_eq!(
            run(&[ins(0x28, 0, 0, 0), ALLOW], &c),
            None,
            "half-word load"
        );
        assert_eq!(
            run(&[ins(0x60, 0, 0, 16), ALLOW], &c),
            None,
            "scratch out of range"
        );
        assert!(!allows(&[ins(0x20, 0, 0, 2), ALLOW], &c));
    }
}
