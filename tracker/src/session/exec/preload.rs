//! Whether the tracker can be preloaded into the program an exec starts. The dynamic loader of
//! a program of another ELF class or machine (a 32-bit program) cannot load it, nor can one
//! that no longer sees the library's path (after a `chroot`): it prints an error of its own
//! about the preload on the program's stderr and the program sees the tracker's variables. A
//! statically linked program has no loader at all: it would see the tracker's variables, and
//! pass them to the programs it starts, which would then be tracked as if they were it. Such a
//! program gets the environment it was given instead, and runs untracked (`memtrace run` then
//! says that it wrote no capture). One statically linked program is a host instead: valgrind's
//! tool (exec'd by valgrind's launcher with `VALGRIND_LAUNCHER` set) runs its guest program in
//! the same process, through the guest's own loader, which preloads the tracker as any loader
//! does: it keeps the environment.

use super::accessible;
use crate::sys;
use memtrace_format::exec::fits_this_build;

/// Bytes read from the start of a program: an ELF header, or a `#!` line.
const HEAD: usize = 256;

/// False only when the tracker certainly cannot be preloaded into the program at `path`
/// (NUL-terminated): an ELF file of another class or machine or statically linked (unless it
/// `hosts_a_guest`: [`hosts_a_guest`]), a script
/// whose `#!` interpreter is one, or the tracker library (`tracker`, NUL-terminated) not
/// readable from here. True when
/// unsure (a file that cannot be read, an unknown format: the exec decides). Uses under 1 KiB
/// of stack: an exec may come from a signal handler on a small alternate stack.
pub fn preloadable(path: &[u8], tracker: &[u8], hosts_a_guest: bool) -> bool {
    let _errno = sys::ErrnoGuard::new();
    // Only an absolute path is checked: the loader searches for a bare name, and a relative
    // one depends on the directory the program is in.
    if tracker.first() == Some(&b'/')
        && tracker.last() == Some(&0)
        && !accessible(tracker.as_ptr().cast(), libc::R_OK)
    {
        return false;
    }
    // The loader of a secure exec ignores LD_PRELOAD: the program would only see the
    // tracker's variables.
    if secure_exec(path) {
        return false;
    }
    let mut head = [0u8; HEAD];
    let n = sys::read_file(path, &mut head);
    match fits_this_build(&head[..n]) {
        Some(fits) => {
            fits && (hosts_a_guest || !statically_linked(path, &head[..n]))
                && !needs_a_sanitizer_runtime(path, &head[..n])
        }
        None => interpreter_fits(&head[..n]),
    }
}

/// The start of the names of the sanitizer runtimes that must be the first object a program
/// loads: after a preloaded tracker, AddressSanitizer's refuses to start (the program exits 1)
/// and ThreadSanitizer's crashes. `memtrace run` refuses such a program by name; one that a
/// tracked program execs (a test suite's runner, `make check` under --follow-fork) runs
/// untracked, with the environment it was given.
const SANITIZER_RUNTIMES: [&[u8]; 4] =
    [b"libasan.so", b"libtsan.so", b"libmsan.so", b"libclang_rt."];

/// Whether the ELF file at `path`, whose start is `head` (of this build's class), needs a
/// sanitizer's runtime library (a DT_NEEDED entry naming one, as gcc's default links it).
/// False when unsure. Reads a few hundred bytes with a small buffer: an exec may come from a
/// signal handler on a small alternate stack.
fn needs_a_sanitizer_runtime(path: &[u8], head: &[u8]) -> bool {
    const PT_LOAD: u32 = 1;
    const PT_DYNAMIC: u32 = 2;
    const DT_NEEDED: u64 = 1;
    const DT_STRTAB: u64 = 5;
    /// Dynamic entries read at most (a real program has a few dozen).
    const MAX_DYNAMIC: u64 = 512;
    let word = |b: &[u8], at: usize| {
        b.get(at..at + 8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default()))
    };
    let Some((phoff, entsize, count)) = program_headers(head).filter(|&(_, e, _)| e >= 56) else {
        return false;
    };
    let Ok(fd) = sys::open(path, libc::O_RDONLY | libc::O_CLOEXEC, 0) else {
        return false;
    };
    let needs = (|| -> Option<bool> {
        // The dynamic section (its file offset and size) and the loaded segments, which turn
        // the string table's address into a file offset.
        let mut dynamic = None;
        let mut loads = [(0u64, 0u64, 0u64); 8];
        let mut n_loads = 0;
        for i in 0..count {
            let mut ph = [0u8; 56];
            if sys::pread(fd, &mut ph, phoff + i * entsize) != Ok(56) {
                return Some(false);
            }
            let kind = u32::from_le_bytes(ph[..4].try_into().unwrap_or_default());
            let (offset, vaddr, filesz) = (word(&ph, 8)?, word(&ph, 16)?, word(&ph, 32)?);
            if kind == PT_DYNAMIC {
                dynamic = Some((offset, filesz));
            } else if kind == PT_LOAD && n_loads < loads.len() {
                loads[n_loads] = (vaddr, offset, filesz);
                n_loads += 1;
            }
        }
        let Some((dyn_offset, dyn_size)) = dynamic else {
            return Some(false);
        };
        let entries = (dyn_size / 16).min(MAX_DYNAMIC);
        let entry = |i: u64| {
            let mut e = [0u8; 16];
            (sys::pread(fd, &mut e, dyn_offset + i * 16) == Ok(16))
                .then(|| (word(&e, 0).unwrap_or(0), word(&e, 8).unwrap_or(0)))
        };
        let strtab = (0..entries)
            .map_while(entry)
            .take_while(|&(tag, _)| tag != 0)
            .find(|&(tag, _)| tag == DT_STRTAB)
            .and_then(|(_, addr)| {
                loads[..n_loads]
                    .iter()
                    .find(|&&(vaddr, _, filesz)| vaddr <= addr && addr < vaddr + filesz)
                    .map(|&(vaddr, offset, _)| addr - vaddr + offset)
            });
        let Some(strtab) = strtab else {
            return Some(false);
        };
        Some(
            (0..entries)
                .map_while(entry)
                .take_while(|&(tag, _)| tag != 0)
                .filter(|&(tag, _)| tag == DT_NEEDED)
                .any(|(_, name)| {
                    let mut b = [0u8; 16];
                    let n = sys::pread(fd, &mut b, strtab + name).unwrap_or(0);
                    SANITIZER_RUNTIMES.iter().any(|r| b[..n].starts_with(r))
                }),
        )
    })()
    .unwrap_or(false);
    sys::close(fd);
    needs
}

/// Whether exec'ing `path` (NUL-terminated) changes the process's privileges (set-user-ID or
/// set-group-ID to another user or group than the real one, or file capabilities): the
/// loader then runs in secure mode and preloads nothing from a path.
fn secure_exec(path: &[u8]) -> bool {
    let Some((mode, uid, gid)) = sys::mode_and_owner(path) else {
        return false;
    };
    if mode & libc::S_IFMT != libc::S_IFREG {
        return false;
    }
    let (ruid, rgid) = sys::real_ids();
    (mode & libc::S_ISUID != 0 && uid != ruid)
        || (mode & libc::S_ISGID != 0 && mode & libc::S_IXGRP != 0 && gid != rgid)
        || sys::has_file_capabilities(path)
}

/// Whether the environment `env` preloads a sanitizer's runtime itself (`LD_PRELOAD=libasan.so
/// prog`): it must come first, and after the tracker it refuses to start. The program then
/// runs untracked, with the environment it was given.
pub fn preloads_a_sanitizer<'a>(mut env: impl Iterator<Item = &'a [u8]>) -> bool {
    env.any(|entry| {
        entry.strip_prefix(b"LD_PRELOAD=").is_some_and(|list| {
            list.split(|&c| c == b':' || c == b' ').any(|path| {
                let name = path.rsplit(|&c| c == b'/').next().unwrap_or(path);
                SANITIZER_RUNTIMES.iter().any(|r| name.starts_with(r))
            })
        })
    })
}

/// Whether the program exec'd with the environment `env` is one that runs a guest program in
/// its own process through the guest's loader: valgrind's tool, which valgrind's launcher
/// starts with `VALGRIND_LAUNCHER` set (and takes out of the guest's environment).
pub fn hosts_a_guest<'a>(mut env: impl Iterator<Item = &'a [u8]>) -> bool {
    env.any(|entry| entry.starts_with(b"VALGRIND_LAUNCHER="))
}

/// Where the program headers of the ELF file whose start is `head` (of this build's class) are:
/// (file offset, entry size, count). None for a header this build does not read (32-bit), an
/// entry too short to hold a type, or more than a real program has (a dozen; a damaged file is
/// left to the exec).
fn program_headers(head: &[u8]) -> Option<(u64, u64, u64)> {
    const MAX_HEADERS: u64 = 256;
    let half = |at: usize| {
        head.get(at..at + 2)
            .map(|b| u64::from(u16::from_le_bytes([b[0], b[1]])))
    };
    let phoff = head
        .get(0x20..0x28)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))?;
    let (entsize, count) = (half(0x36)?, half(0x38)?);
    (cfg!(target_pointer_width = "64") && entsize >= 4 && count <= MAX_HEADERS)
        .then_some((phoff, entsize, count))
}

/// Whether the ELF file at `path`, whose start is `head` (of this build's class), has no
/// program interpreter (PT_INTERP): a statically linked program, which no loader preloads
/// into. False when unsure.
fn statically_linked(path: &[u8], head: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let Some((phoff, entsize, count)) = program_headers(head).filter(|&(_, _, n)| n > 0) else {
        return false;
    };
    let Ok(fd) = sys::open(path, libc::O_RDONLY | libc::O_CLOEXEC, 0) else {
        return false;
    };
    let mut interpreter = false;
    let mut read_all = true;
    for i in 0..count {
        let mut kind = [0u8; 4];
        match sys::pread(fd, &mut kind, phoff + i * entsize) {
            Ok(4) => {}
            _ => {
                read_all = false;
                break;
            }
        }
        if u32::from_le_bytes(kind) == PT_INTERP {
            interpreter = true;
            break;
        }
    }
    sys::close(fd);
    read_all && !interpreter
}

/// For a `#!` script: whether its interpreter is an ELF file the tracker fits (one level: an
/// interpreter that is itself a script is left to the exec). True when unsure.
fn interpreter_fits(head: &[u8]) -> bool {
    let Some(line) = head.strip_prefix(b"#!") else {
        return true;
    };
    let line = line.split(|&c| c == b'\n').next().unwrap_or(line);
    let Some(start) = line.iter().position(|&c| c != b' ' && c != b'\t') else {
        return true;
    };
    let rest = &line[start..];
    let end = rest
        .iter()
        .position(|&c| c == b' ' || c == b'\t')
        .unwrap_or(rest.len());
    let mut interpreter = [0u8; HEAD + 1];
    interpreter[..end].copy_from_slice(&rest[..end]);
    let mut ihead = [0u8; HEAD];
    let path = &interpreter[..=end];
    let n = sys::read_file(path, &mut ihead);
    match fits_this_build(&ihead[..n]) {
        Some(fits) => fits && !statically_linked(path, &ihead[..n]),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str, bytes: &[u8]) -> Vec<u8> {
        let dir = std::env::temp_dir().join(format!("memtrace-preload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("written");
        let mut p = path.to_str().expect("utf-8").as_bytes().to_vec();
        p.push(0);
        p
    }

    /// This build's ELF class and machine (x86-64 or AArch64 here).
    const CLASS: u8 = 2;
    const MACHINE: u16 = if cfg!(target_arch = "aarch64") {
        183
    } else {
        62
    };

    /// An ELF header of `class` and `machine` (the rest zero).
    fn elf(class: u8, machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = class;
        h[5] = 1;
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h
    }

    #[test]
    fn a_sanitizer_runtime_in_ld_preload_is_seen_by_its_name() {
        let asan: [&[u8]; 2] = [b"A=1", b"LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libasan.so.8"];
        assert!(preloads_a_sanitizer(asan.iter().copied()));
        let tsan: [&[u8]; 1] = [b"LD_PRELOAD=/x/libm.so:libtsan.so.2"];
        assert!(preloads_a_sanitizer(tsan.iter().copied()));
        let tracker: [&[u8]; 1] = [b"LD_PRELOAD=/opt/memtrace/libmemtrace_tracker.so"];
        assert!(!preloads_a_sanitizer(tracker.iter().copied()));
        let elsewhere: [&[u8]; 2] = [b"X_LD_PRELOAD=libasan.so", b"PATH=/libasan.so"];
        assert!(!preloads_a_sanitizer(elsewhere.iter().copied()));
    }

    #[test]
    fn programs_of_another_class_or_machine_and_their_scripts_are_refused() {
        let me = std::env::current_exe().expect("this test's path");
        let tracker = &[me.to_str().expect("utf-8").as_bytes(), b"\0"].concat();
        let machine = MACHINE;
        let native = scratch("native", &elf(CLASS, machine));
        let other_class = scratch("class32", &elf(3 - CLASS, machine));
        assert!(preloadable(&native, tracker, false));
        assert!(!preloadable(&other_class, tracker, false));
        let other_machine = scratch("machine", &elf(CLASS, machine ^ 0x100));
        assert!(!preloadable(&other_machine, tracker, false));
        let interp = String::from_utf8_lossy(&other_class[..other_class.len() - 1]).into_owned();
        let script = scratch("script32", format!("#! {interp} -x\necho\n").as_bytes());
        assert!(!preloadable(&script, tracker, false));
        let interp = String::from_utf8_lossy(&native[..native.len() - 1]).into_owned();
        let script = scratch("script", format!("#!{interp}\necho\n").as_bytes());
        assert!(preloadable(&script, tracker, false));
        // Unsure: text, nothing there, an interpreter that is not there.
        assert!(preloadable(&scratch("text", b"hello"), tracker, false));
        assert!(preloadable(b"/no/such/program\0", tracker, false));
        assert!(preloadable(
            &scratch("gone", b"#!/no/such/shell\n"),
            tracker,
            false
        ));
    }

    /// An ELF file of this build with program headers of these types.
    fn elf_with_headers(types: &[u32]) -> Vec<u8> {
        let mut f = elf(CLASS, MACHINE);
        f[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        f[0x38..0x3a].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for &t in types {
            let mut header = vec![0u8; 56];
            header[..4].copy_from_slice(&t.to_le_bytes());
            f.extend_from_slice(&header);
        }
        f
    }

    #[test]
    fn a_statically_linked_program_and_its_scripts_are_refused() {
        let me = std::env::current_exe().expect("this test's path");
        let tracker = &[me.to_str().expect("utf-8").as_bytes(), b"\0"].concat();
        // PT_LOAD, PT_INTERP, PT_DYNAMIC: a dynamically linked program.
        let dynamic = scratch("dynamic", &elf_with_headers(&[1, 3, 2]));
        assert!(preloadable(&dynamic, tracker, false));
        // No PT_INTERP: static (a static-pie one has PT_DYNAMIC but no interpreter).
        let fixed = scratch("static", &elf_with_headers(&[1, 1, 7]));
        assert!(!preloadable(&fixed, tracker, false));
        let static_pie = scratch("static-pie", &elf_with_headers(&[6, 1, 2]));
        assert!(!preloadable(&static_pie, tracker, false));
        let interp = String::from_utf8_lossy(&fixed[..fixed.len() - 1]).into_owned();
        let script = scratch("script-static", format!("#!{interp} -c\necho\n").as_bytes());
        assert!(!preloadable(&script, tracker, false));
        // Headers cut short: unsure, so preloadable.
        let mut cut = elf_with_headers(&[1, 1]);
        cut.truncate(64 + 56 + 2);
        assert!(preloadable(&scratch("cut", &cut), tracker, false));
        // This test's own executable is dynamically linked.
        let mut own = me.to_str().expect("utf-8").as_bytes().to_vec();
        own.push(0);
        assert!(preloadable(&own, tracker, false));
        // valgrind's tool is static and runs its guest through the guest's loader.
        assert!(preloadable(&fixed, tracker, true));
    }

    #[test]
    fn valgrind_s_tool_is_known_by_its_launcher_s_variable() {
        let env: [&[u8]; 3] = [
            b"PATH=/bin",
            b"VALGRIND_LAUNCHER=/usr/bin/valgrind.bin",
            b"A=1",
        ];
        assert!(hosts_a_guest(env.iter().copied()));
        let env: [&[u8]; 2] = [b"PATH=/bin", b"X_VALGRIND_LAUNCHER=1"];
        assert!(!hosts_a_guest(env.iter().copied()));
    }

    #[test]
    fn a_tracker_library_out_of_reach_is_refused() {
        let native = scratch("native2", &elf(CLASS, MACHINE));
        assert!(!preloadable(
            &native,
            b"/no/such/dir/libmemtrace_tracker.so\0",
            false
        ));
    }
}
