//! Allocation sites: stacks reduced to their innermost frame (past allocator wrappers such as
//! `operator new`) and grouped by source location (function, file, line), so that different
//! return addresses on one line count together.

use crate::analysis::tables::{Frame, Tables};
use crate::analysis::totals::Sum;
use crate::symbols::Symbolizer;
use hashbrown::HashMap;
use memtrace_format::StopsShort;
use std::cmp::Reverse;

/// A source location, or a label when it could not be resolved.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u64>,
    /// `function at file:line`, or `libfoo.so+0x1234` for an unresolved native address.
    pub label: String,
}

/// The label of an unknown stack.
pub const UNKNOWN: &str = "<unknown>";

/// What [`UNKNOWN`] groups and how to see more: the line every text report adds when it shows
/// one (the TUI's panel says it of a selected `<unknown>` node).
pub const UNKNOWN_NOTE: &str = "<unknown>: allocations recorded without a call site (in a Python run: made while their \
thread ran no Python code,\na thread starting or ending, the interpreter outside any frame); `memtrace run --native` records their stacks.";

impl Location {
    /// An unknown location.
    pub fn unknown() -> Location {
        Location {
            function: None,
            file: None,
            line: None,
            label: UNKNOWN.to_string(),
        }
    }

    /// Where a native stack stops short of the thread's first frame (named as a function, so
    /// that every output shows it).
    pub fn stops_short(mark: StopsShort) -> Location {
        Location {
            function: Some(mark.label().to_string()),
            file: None,
            line: None,
            label: mark.label().to_string(),
        }
    }

    fn new(
        function: Option<String>,
        file: Option<String>,
        line: Option<u64>,
        module: Option<&str>,
        fallback: String,
    ) -> Location {
        let label = match (&function, &file, line) {
            (Some(f), Some(file), Some(l)) => format!("{f} at {file}:{l}"),
            (Some(f), Some(file), None) => format!("{f} at {file}"),
            (Some(f), None, _) => match module {
                Some(m) => format!("{f} in {m}"),
                None => f.clone(),
            },
            (None, Some(file), Some(l)) => format!("{file}:{l}"),
            (None, Some(file), None) => file.clone(),
            (None, None, _) => fallback,
        };
        Location {
            function,
            file,
            line,
            label,
        }
    }
}

/// Whether a frame is an allocator wrapper's, so that the location of what it allocates is its
/// caller's: C++'s `operator new` family of the C++ library (libstdc++, libc++), the C
/// library's `strdup` family, Rust's allocator shims, and the code of Rust's standard library
/// (`Vec`, `Box`, `String`, `format!` and their growth: its sources are under `library/` of
/// the toolchain). A program's own `operator new`, `strdup` or trait implementation for a
/// standard type is its code, and is kept. Told from the frame's function, file and label
/// (`f in libstdc++.so.6` when the library has no line tables). Without `--native` the tracker
/// records the caller's call site itself (tracker/src/stacks/wrappers.rs); with it, the frames
/// are kept in the stack and the top lists, modules, CSV rows and diffs pass over them.
pub fn is_allocator_wrapper(function: &str, file: Option<&str>, label: &str) -> bool {
    let in_library = |names: &[&str]| {
        file.is_none()
            && label
                .rsplit_once(" in ")
                .is_some_and(|(_, module)| names.iter().any(|n| module.starts_with(n)))
    };
    const RUST_SHIMS: [&str; 4] = ["__rust_alloc", "__rust_realloc", "__rdl_", "__rg_"];
    const RUST_LIBRARY: [&str; 3] = [
        "/library/alloc/src/",
        "/library/core/src/",
        "/library/std/src/",
    ];
    const C: [&str; 8] = [
        "strdup",
        "__strdup",
        "__GI___strdup",
        "strndup",
        "__strndup",
        "__GI___strndup",
        "wcsdup",
        "__wcsdup",
    ];
    const C_SOURCES: [&str; 3] = ["/strdup.c", "/strndup.c", "/wcsdup.c"];
    if function.starts_with("operator new") {
        return in_library(&["libstdc++", "libc++"])
            || file.is_some_and(|f| f.contains("libsupc++") || f.contains("libcxx"));
    }
    if C.contains(&function) {
        return in_library(&["libc.so", "libc-", "libc.musl"])
            || file.is_some_and(|f| C_SOURCES.iter().any(|s| f.ends_with(s)));
    }
    RUST_SHIMS.iter().any(|p| function.starts_with(p))
        || file.is_some_and(|f| RUST_LIBRARY.iter().any(|p| f.contains(p)))
}

impl Location {
    /// Whether this is a location inside an allocator wrapper ([`is_allocator_wrapper`]).
    pub fn is_allocator_wrapper(&self) -> bool {
        self.function
            .as_deref()
            .is_some_and(|f| is_allocator_wrapper(f, self.file.as_deref(), &self.label))
    }
}

/// Where a stack's allocations are counted, in its locations `innermost_first`: the first one
/// past the allocator wrappers it starts with, or the innermost when nothing else is left.
pub fn past_wrappers<T>(innermost_first: &[T], wrapper: impl Fn(&T) -> bool) -> usize {
    innermost_first
        .iter()
        .position(|l| !wrapper(l))
        .unwrap_or(0)
}

/// The location a stack's allocations are counted at: its innermost shown frame's, or where
/// that is an allocator wrapper's, the location [`past_wrappers`] picks, inlined functions
/// counted. None for an unknown stack.
pub fn location_of_stack(
    stack: u64,
    tables: &Tables,
    symbolizer: &mut Symbolizer,
) -> Option<Location> {
    let (_, frame) = tables.innermost_shown(stack)?;
    let first = resolve(frame, tables, symbolizer);
    if !matches!(frame, Frame::Native(_)) || !first.is_allocator_wrapper() {
        return Some(first);
    }
    let mut locs = super::view_tree::shown_locations(tables, stack, &mut |id| {
        super::view_tree::frame_locations(tables, id, symbolizer)
    });
    locs.reverse();
    let at = past_wrappers(&locs, Location::is_allocator_wrapper);
    Some(locs.into_iter().nth(at).unwrap_or(first))
}

/// The allocations of one stack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackSum {
    pub stack: u64,
    pub sum: Sum,
}

impl StackSum {
    /// Orders by bytes, then allocations, then the lower stack id (larger is better).
    fn by_bytes(&self) -> (u64, u64, Reverse<u64>) {
        (self.sum.bytes, self.sum.count, Reverse(self.stack))
    }

    /// Orders by allocations, then bytes, then the lower stack id (larger is better).
    fn by_count(&self) -> (u64, u64, Reverse<u64>) {
        (self.sum.count, self.sum.bytes, Reverse(self.stack))
    }
}

/// Allocations of one location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocationTotals {
    pub location: Location,
    pub sum: Sum,
    /// The location's stack with the most bytes (ties: more allocations, then the lower id).
    pub heaviest: StackSum,
    /// The location's stack with the most allocations (ties: more bytes, then the lower id).
    pub busiest: StackSum,
}

impl LocationTotals {
    fn new(location: Location) -> LocationTotals {
        LocationTotals {
            location,
            sum: Sum::default(),
            heaviest: StackSum::default(),
            busiest: StackSum::default(),
        }
    }

    /// Adds the allocations of one stack.
    fn add(&mut self, s: StackSum) {
        self.sum.merge(s.sum);
        if self.heaviest.sum.count == 0 || s.by_bytes() > self.heaviest.by_bytes() {
            self.heaviest = s;
        }
        if self.busiest.sum.count == 0 || s.by_count() > self.busiest.by_count() {
            self.busiest = s;
        }
    }
}

/// Resolves each stack's innermost frame and adds up the sums of stacks sharing a location.
pub fn by_location(
    by_stack: &HashMap<u64, Sum>,
    tables: &Tables,
    symbolizer: &mut Symbolizer,
) -> Vec<LocationTotals> {
    let mut out: Vec<LocationTotals> = Vec::new();
    let mut slot_of: HashMap<Location, usize> = HashMap::new();
    // Many stacks share an innermost frame: resolve each frame once.
    // None: the frame is an allocator wrapper's, each stack's location is found past it.
    let mut frame_slot: HashMap<u64, Option<usize>> = HashMap::new();
    let mut unknown_slot: Option<usize> = None;
    for (&stack, &sum) in by_stack {
        let slot = match tables.innermost_shown(stack) {
            Some((frame_id, frame)) => {
                let known = *frame_slot.entry(frame_id).or_insert_with(|| {
                    let loc = resolve(frame, tables, symbolizer);
                    let wrapper = matches!(frame, Frame::Native(_)) && loc.is_allocator_wrapper();
                    (!wrapper).then(|| slot(&mut out, &mut slot_of, loc))
                });
                match known {
                    Some(s) => s,
                    // An allocator wrapper's frame: each stack's location lies further out.
                    None => {
                        let loc = location_of_stack(stack, tables, symbolizer)
                            .unwrap_or_else(Location::unknown);
                        slot(&mut out, &mut slot_of, loc)
                    }
                }
            }
            None => *unknown_slot
                .get_or_insert_with(|| slot(&mut out, &mut slot_of, Location::unknown())),
        };
        out[slot].add(StackSum { stack, sum });
    }
    out
}

fn slot(
    out: &mut Vec<LocationTotals>,
    slot_of: &mut HashMap<Location, usize>,
    loc: Location,
) -> usize {
    *slot_of.entry(loc).or_insert_with_key(|loc| {
        out.push(LocationTotals::new(loc.clone()));
        out.len() - 1
    })
}

/// The location of one frame.
pub fn resolve(frame: Frame, tables: &Tables, symbolizer: &mut Symbolizer) -> Location {
    match frame {
        Frame::Python {
            function,
            file,
            line,
        } => {
            let function = tables.string(function);
            let file = tables.string(file);
            let line = (line != 0).then_some(line);
            Location::new(function, file, line, None, UNKNOWN.to_string())
        }
        Frame::Native(addr) => {
            if let Some(mark) = StopsShort::from_address(addr) {
                return Location::stops_short(mark);
            }
            let sym = symbolizer.resolve(addr).clone();
            let fallback = sym.address_label();
            Location::new(
                sym.function,
                sym.file,
                sym.line.map(u64::from),
                sym.module.as_deref(),
                fallback,
            )
        }
    }
}

/// The locations of one frame, innermost first: a native frame whose function was inlined
/// stands for the inlined function and then each function it was inlined into, at the line of
/// the inlined call.
pub fn resolve_all(frame: Frame, tables: &Tables, symbolizer: &mut Symbolizer) -> Vec<Location> {
    let first = resolve(frame, tables, symbolizer);
    let Frame::Native(addr) = frame else {
        return vec![first];
    };
    if StopsShort::from_address(addr).is_some() {
        return vec![first];
    }
    let sym = symbolizer.resolve(addr);
    let module = sym.module.clone();
    let fallback = sym.address_label();
    let callers: Vec<Location> = sym
        .inlined_into
        .iter()
        .map(|c| {
            Location::new(
                c.function.clone(),
                c.file.clone(),
                c.line.map(u64::from),
                module.as_deref(),
                fallback.clone(),
            )
        })
        .collect();
    let mut out = Vec::with_capacity(1 + callers.len());
    out.push(first);
    out.extend(callers);
    out
}

/// The `n` largest by bytes (ties: more allocations, then label).
pub fn top_by_bytes(locs: &[LocationTotals], n: usize) -> Vec<LocationTotals> {
    let mut v: Vec<&LocationTotals> = locs.iter().collect();
    v.sort_by(|a, b| {
        (b.sum.bytes, b.sum.count)
            .cmp(&(a.sum.bytes, a.sum.count))
            .then_with(|| a.location.label.cmp(&b.location.label))
    });
    v.into_iter().take(n).cloned().collect()
}

/// The `n` largest by number of allocations (ties: more bytes, then label).
pub fn top_by_count(locs: &[LocationTotals], n: usize) -> Vec<LocationTotals> {
    let mut v: Vec<&LocationTotals> = locs.iter().collect();
    v.sort_by(|a, b| {
        (b.sum.count, b.sum.bytes)
            .cmp(&(a.sum.count, a.sum.bytes))
            .then_with(|| a.location.label.cmp(&b.location.label))
    });
    v.into_iter().take(n).cloned().collect()
}

/// A Python location `f at a.py:line`, for tests.
#[cfg(test)]
pub fn test_location(f: &str, line: u64) -> Location {
    Location {
        function: Some(f.to_string()),
        file: Some("a.py".to_string()),
        line: Some(line),
        label: format!("{f} at a.py:{line}"),
    }
}

#[cfg(test)]
mod tests {
    use super::is_allocator_wrapper;

    #[test]
    fn allocator_wrappers_are_known_by_name_and_place() {
        let wrapper =
            |f: &str, file: Option<&str>, label: &str| is_allocator_wrapper(f, file, label);
        // The libraries' own, with line tables or without.
        let n = "operator new(unsigned long)";
        assert!(wrapper(n, None, &format!("{n} in libstdc++.so.6")));
        assert!(wrapper(
            n,
            Some("../../../../libstdc++-v3/libsupc++/new_op.cc"),
            ""
        ));
        let aligned = "operator new[](unsigned long, std::align_val_t)";
        assert!(wrapper(
            aligned,
            None,
            &format!("{aligned} in libstdc++.so.6")
        ));
        assert!(wrapper("__GI___strdup", Some("./string/strdup.c"), ""));
        assert!(wrapper("strndup", None, "strndup in libc.so.6"));
        assert!(wrapper("__rust_alloc", None, "__rust_alloc in prog"));
        assert!(wrapper(
            "__rdl_alloc",
            Some("/rustc/abc/library/std/src/alloc.rs"),
            ""
        ));
        let grow = "<alloc::raw_vec::RawVecInner>::try_allocate_in";
        assert!(wrapper(
            grow,
            Some("/rustc/abc/library/alloc/src/raw_vec.rs"),
            ""
        ));
        let padding = "<core::fmt::Formatter>::padding";
        assert!(wrapper(
            padding,
            Some("/rustc/abc/library/core/src/fmt/mod.rs"),
            ""
        ));
        // The program's own.
        assert!(!wrapper(n, Some("own.cpp"), &format!("{n} at own.cpp:9")));
        assert!(!wrapper(n, None, &format!("{n} in myprog")));
        assert!(!wrapper("strdup", Some("os.c"), "strdup at os.c:6"));
        assert!(!wrapper(
            "strdup",
            Some("/app/util.py"),
            "strdup at /app/util.py:3"
        ));
        let fill = "<alloc::vec::Vec<u8> as fp::Fill>::fill";
        assert!(!wrapper(fill, Some("fp.rs"), ""));
        assert!(!wrapper("alloc::make", Some("src/alloc.rs"), ""));
        for f in [
            "main",
            "operator delete(void*)",
            "PyObject_Malloc",
            "strdupv",
        ] {
            assert!(!wrapper(f, None, &format!("{f} in libc.so.6")), "{f}");
        }
    }
}
