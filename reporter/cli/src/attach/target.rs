//! What `memtrace attach` learns about a process from /proc: its mapped objects and where the
//! functions it must call lie in it (the object's load address plus the symbol's value in the
//! object's dynamic symbol table), and whether it runs CPython, which version.

use object::{Object, ObjectKind, ObjectSymbol};
use std::path::{Path, PathBuf};

/// One object mapped in the process: its file and load address.
#[derive(Clone, Debug)]
pub struct Mapped {
    pub path: PathBuf,
    /// Where the file's offset 0 is mapped.
    pub start: u64,
    /// That mapping's range as /proc/PID/maps writes it (`start-end`, hex): its name under
    /// /proc/PID/map_files/.
    pub range: String,
    /// The file was removed or replaced since it was mapped (maps adds " (deleted)"): a
    /// tracker copied into an attach's directory that is gone, a C library upgraded under a
    /// running service. It is read through /proc/PID/map_files/ then.
    pub deleted: bool,
}

/// What /proc/PID/maps appends to the name of a file removed since it was mapped.
const DELETED: &str = " (deleted)";

/// The objects mapped in `pid`, in the order of /proc/PID/maps.
pub fn objects(pid: i32) -> Result<Vec<Mapped>, std::io::Error> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    Ok(parse_maps(&text))
}

/// The objects of a /proc/PID/maps text.
fn parse_maps(text: &str) -> Vec<Mapped> {
    let mut out: Vec<Mapped> = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(_perms), Some(offset), Some(_dev), Some(_inode)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let mut path: String = f.collect::<Vec<_>>().join(" ");
        if !path.starts_with('/') || !offset.trim_start_matches('0').is_empty() {
            continue;
        }
        let deleted = path.ends_with(DELETED);
        if deleted {
            path.truncate(path.len() - DELETED.len());
        }
        let Some(start) = range
            .split('-')
            .next()
            .and_then(|s| u64::from_str_radix(s, 16).ok())
        else {
            continue;
        };
        let path = PathBuf::from(path);
        if !out.iter().any(|m| m.path == path) {
            out.push(Mapped {
                path,
                start,
                range: range.to_string(),
                deleted,
            });
        }
    }
    out
}

/// The executable ranges `[start, end)` of the object `m` in `pid`'s address space.
pub fn code_ranges(pid: i32, m: &Mapped) -> Vec<(u64, u64)> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
        return Vec::new();
    };
    let path = m.path.to_string_lossy();
    let deleted = format!("{path}{DELETED}");
    text.lines()
        .filter(|l| l.ends_with(&*path) || l.ends_with(&deleted))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (range, perms) = (f.next()?, f.next()?);
            if !perms.contains('x') {
                return None;
            }
            maps_range(range)
        })
        .collect()
}

/// A /proc/PID/maps range (`start-end`, hex) as `[start, end)`.
pub fn maps_range(range: &str) -> Option<(u64, u64)> {
    let (s, e) = range.split_once('-')?;
    Some((
        u64::from_str_radix(s, 16).ok()?,
        u64::from_str_radix(e, 16).ok()?,
    ))
}

/// The functions of `m`'s dynamic symbol table that `wanted` keeps, as `[start, end)` in the
/// process (read through the process's root, so that a process in another mount namespace
/// reads its own files); an undefined size makes an empty range.
fn defined(pid: i32, m: &Mapped, wanted: impl Fn(&str) -> bool) -> Vec<(u64, u64)> {
    let Some(data) = file_data(pid, m) else {
        return Vec::new();
    };
    let Ok(obj) = object::File::parse(&*data) else {
        return Vec::new();
    };
    let base = match obj.kind() {
        ObjectKind::Executable => 0,
        _ => m.start,
    };
    obj.dynamic_symbols()
        .filter(|s| s.is_definition() && s.name().is_ok_and(&wanted))
        .map(|s| (base + s.address(), base + s.address() + s.size()))
        .collect()
}

/// The file of the object `m`, read through the process's root (a process in another mount
/// namespace reads its own files), or the mapped file itself when it is gone from its path (the
/// loader still knows it by that name: a dlopen of it returns the old one).
pub fn file_data(pid: i32, m: &Mapped) -> Option<Vec<u8>> {
    let rel = m.path.strip_prefix("/").ok()?;
    let file = Path::new(&format!("/proc/{pid}/root")).join(rel);
    let mapped = format!("/proc/{pid}/map_files/{}", m.range);
    match m.deleted {
        true => std::fs::read(&mapped),
        false => std::fs::read(&file).or_else(|_| std::fs::read(&m.path)),
    }
    .ok()
}

/// The address ranges `[start, end)` of the functions `names` defined in the object `m` (those
/// its dynamic symbol table lists with a size).
pub fn ranges(pid: i32, m: &Mapped, names: &[&str]) -> Vec<(u64, u64)> {
    let mut r = defined(pid, m, |n| names.contains(&n));
    r.retain(|&(start, end)| end > start);
    r
}

/// The address of `name` in the process, defined in the object `m`.
pub fn symbol(pid: i32, m: &Mapped, name: &str) -> Option<u64> {
    defined(pid, m, |n| n == name)
        .first()
        .map(|&(start, _)| start)
}

/// The first object of the process that defines `name`, and its address.
pub fn find(pid: i32, objects: &[Mapped], name: &str) -> Option<(Mapped, u64)> {
    objects
        .iter()
        .find_map(|m| symbol(pid, m, name).map(|a| (m.clone(), a)))
}

/// Whether the process maps a C library: no `libc.so` means a statically linked program.
pub fn libc(objects: &[Mapped]) -> Option<&Mapped> {
    objects.iter().find(|m| {
        m.path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("libc.so"))
    })
}

/// The CPython minor version (3.N) the process runs, if it runs CPython: from the name of its
/// `libpython3.N` or `python3.N` object.
pub fn python_minor(objects: &[Mapped], exe: &Path) -> Option<u32> {
    let names = objects
        .iter()
        .map(|m| m.path.as_path())
        .chain(std::iter::once(exe));
    for p in names {
        let name = p.file_name()?.to_string_lossy().into_owned();
        let rest = name
            .strip_prefix("libpython3.")
            .or_else(|| name.strip_prefix("python3."));
        if let Some(rest) = rest {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse() {
                return Some(n);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_libc_and_its_dlopen_are_found() {
        let pid = std::process::id() as i32;
        let objs = objects(pid).expect("our maps");
        let libc = libc(&objs).expect("a dynamically linked test");
        let found = symbol(pid, libc, "getpid").expect("getpid in libc");
        // SAFETY: dlsym with a NUL-terminated name.
        let want = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"getpid".as_ptr()) };
        assert_eq!(found, want as u64);
    }

    #[test]
    fn a_file_gone_since_it_was_mapped_keeps_its_name_and_range() {
        let text =
            "7f10-7f20 r--p 00000000 00:2a 17 /tmp/memtrace-attach.9/_memtrace_tracker.so (deleted)
7f20-7f40 r-xp 00001000 00:2a 17 /tmp/memtrace-attach.9/_memtrace_tracker.so (deleted)
7f50-7f60 r--p 00000000 08:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
";
        let objs = parse_maps(text);
        assert_eq!(objs.len(), 2);
        assert_eq!(
            objs[0].path,
            PathBuf::from("/tmp/memtrace-attach.9/_memtrace_tracker.so")
        );
        assert!(objs[0].deleted);
        assert_eq!(objs[0].range, "7f10-7f20");
        assert_eq!(objs[0].start, 0x7f10);
        assert!(!objs[1].deleted);
    }

    #[test]
    fn python_versions_from_object_names() {
        let objs = vec![Mapped {
            path: PathBuf::from("/usr/lib/libpython3.12.so.1.0"),
            start: 0,
            range: String::new(),
            deleted: false,
        }];
        assert_eq!(python_minor(&objs, Path::new("/usr/bin/python3")), Some(12));
        assert_eq!(python_minor(&[], Path::new("/x/bin/python3.11")), Some(11));
        assert_eq!(python_minor(&[], Path::new("/bin/sleep")), None);
    }
}

/// A process's seccomp state, from its /proc status: the mode (0 none, 1 strict, 2 filter)
/// and how many filters it runs under (None where the kernel does not say).
fn seccomp_of(status: &str) -> (u32, Option<u32>) {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u32>().ok())
    };
    (field("Seccomp:").unwrap_or(0), field("Seccomp_filters:"))
}

/// Why the tracker must not be loaded into process `pid` because of its seccomp filters, if
/// it must not: strict mode, or filters beyond those memtrace itself runs under (a container's
/// own, which allow what memtrace does). A filter of the program's own may forbid the calls of
/// the loader and of the tracker, and a forbidden call can kill the process; its filter cannot
/// be read from here to tell.
/// The process tracing `pid` (its status's TracerPid), if any.
pub fn tracer_of(pid: i32) -> Option<i32> {
    tracer_in(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

fn tracer_in(status: &str) -> Option<i32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .and_then(|v| v.trim().parse::<i32>().ok())
        .filter(|&t| t > 0)
}

pub fn sandbox_refusal(pid: i32) -> Option<String> {
    let theirs = seccomp_of(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?);
    let ours = seccomp_of(&std::fs::read_to_string("/proc/self/status").unwrap_or_default());
    refusal(pid, theirs, ours)
}

fn refusal(pid: i32, theirs: (u32, Option<u32>), ours: (u32, Option<u32>)) -> Option<String> {
    let own_filter = match (theirs, ours) {
        ((0, _), _) => false,
        ((1, _), _) => true,
        ((_, Some(t)), (_, Some(o))) => t > o,
        // Filters without a count (an old kernel): only those memtrace runs under too.
        (_, (m, None)) => m == 0,
        ((_, None), _) => true,
    };
    own_filter.then(|| {
        format!(
            "process {pid} runs under a seccomp filter of its own: it may forbid the system calls \
             of loading the tracker, and a forbidden call can kill the process (start it with \
             memtrace run instead: recording then stops where it sandboxes itself)"
        )
    })
}

#[cfg(test)]
mod seccomp_tests {
    use super::*;

    #[test]
    fn seccomp_state_from_a_status_file() {
        let status =
            "Name:\tsshd\nSeccomp:\t2\nSeccomp_filters:\t1\nSpeculation_Store_Bypass:\tx\n";
        assert_eq!(seccomp_of(status), (2, Some(1)));
        assert_eq!(seccomp_of("Name:\tx\nSeccomp:\t0\n"), (0, None));
        assert_eq!(seccomp_of(""), (0, None));
    }

    #[test]
    fn a_filter_of_the_process_s_own_is_refused() {
        let none = (0, Some(0));
        assert!(refusal(1, none, none).is_none());
        assert!(refusal(1, (1, Some(0)), none).is_some(), "strict mode");
        assert!(refusal(1, (2, Some(1)), none).is_some(), "its own filter");
        // A container's filter, which memtrace runs under too.
        assert!(refusal(1, (2, Some(1)), (2, Some(1))).is_none());
        assert!(
            refusal(1, (2, Some(2)), (2, Some(1))).is_some(),
            "one more of its own"
        );
        assert!(
            refusal(1, (2, None), (2, None)).is_none(),
            "no counts: both filtered"
        );
        assert!(refusal(1, (2, None), (0, None)).is_some());
    }
}

#[cfg(test)]
mod tracer_tests {
    use super::tracer_in;

    #[test]
    fn the_tracer_comes_from_the_status_line() {
        assert_eq!(
            tracer_in("Name:\tt\nTracerPid:\t4242\nUid:\t0\n"),
            Some(4242)
        );
        assert_eq!(tracer_in("Name:\tt\nTracerPid:\t0\n"), None);
        assert_eq!(tracer_in("Name:\tt\n"), None);
    }
}

/// The C library's signal return code in the process: `mov $15, %rax; syscall` (glibc's
/// `__restore_rt`; musl's is the same, or with `%eax`), searched in the executable mappings of
/// `libcs`. An injected call returns through it (see frame.rs).
pub fn sigreturn_code(pid: i32, libcs: &[&Mapped]) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    const PATTERNS: [&[u8]; 2] = [
        &[0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05],
        &[0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05],
    ];
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    for m in libcs {
        for (start, end) in code_ranges(pid, m) {
            let mut code = vec![0u8; (end - start) as usize];
            if mem.read_exact_at(&mut code, start).is_err() {
                continue;
            }
            for p in PATTERNS {
                if let Some(i) = code.windows(p.len()).position(|w| w == p) {
                    return Some(start + i as u64);
                }
            }
        }
    }
    None
}
