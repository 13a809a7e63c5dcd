//! Native symbolization: return addresses to (function, file, line) through the module map
//! recorded in the capture and the modules' DWARF data (addr2line).

pub mod debugfile;
pub mod elf;
pub mod modules;

use addr2line::Loader;
use hashbrown::HashMap;
use modules::ModuleMap;
use rayon::prelude::*;
use std::borrow::Cow;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What an address resolved to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Symbol {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// File name of the module holding the address.
    pub module: Option<String>,
    /// The address relative to the module's base (the absolute address without a module).
    pub offset: u64,
    /// When the function is inlined: the functions it was inlined into, each with the line of
    /// the inlined call, innermost first (they share the address's frame).
    pub inlined_into: Vec<InlineCaller>,
}

/// A function that an inlined call was expanded into, at the call's line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InlineCaller {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
}

impl Symbol {
    /// `libfoo.so+0x1234`, or the bare address outside any module.
    pub fn address_label(&self) -> String {
        match &self.module {
            Some(m) => format!("{m}+{:#x}", self.offset),
            None => format!("{:#x}", self.offset),
        }
    }
}

/// Resolves addresses, caching per address and loading each module's debug data once.
pub struct Symbolizer {
    map: ModuleMap,
    loaders: Vec<Option<Result<Loader, elf::Unavailable>>>,
    /// Modules already used (a changed file is reported on its module's first use).
    used: Vec<bool>,
    cache: HashMap<u64, Symbol>,
    /// Modules whose file changed since the capture (one message each).
    pub warnings: Vec<String>,
}

impl Symbolizer {
    pub fn new(map: ModuleMap) -> Symbolizer {
        let n = map.modules.len();
        Symbolizer {
            map,
            loaders: (0..n).map(|_| None).collect(),
            used: vec![false; n],
            cache: HashMap::new(),
            warnings: Vec::new(),
        }
    }

    /// Loads the debug data of the modules holding `addrs` all at once, on the threads of the
    /// pool, for a report about to resolve them (one module's, libc's compressed DWARF, takes
    /// longer than the others together). What is reported stays as lazy loading would.
    pub fn preload(&mut self, addrs: impl Iterator<Item = u64>) {
        let mut modules: Vec<usize> = addrs
            .filter_map(|a| self.map.find(a).map(|(m, _)| m))
            .filter(|&m| self.loaders.get(m).is_some_and(Option::is_none))
            .collect();
        modules.sort_unstable();
        modules.dedup();
        if modules.len() < 2 {
            return;
        }
        let map = &self.map;
        let opened: Vec<(usize, Result<Loader, elf::Unavailable>)> =
            modules.par_iter().map(|&m| (m, open(map, m))).collect();
        for (m, loaded) in opened {
            self.loaders[m] = Some(loaded);
        }
    }

    fn loader(&mut self, module: usize) -> Option<&Loader> {
        let slot = self.loaders.get_mut(module)?;
        let loaded = slot.get_or_insert_with(|| open(&self.map, module));
        if !std::mem::replace(&mut self.used[module], true) {
            let path = Path::new(OsStr::from_bytes(&self.map.modules[module].path));
            if let Some(why) = loaded.as_ref().err().and_then(|e| unavailable(path, e)) {
                self.warnings.push(format!(
                    "{} {why}: its addresses are shown as offsets",
                    path.display()
                ));
            }
        }
        loaded.as_ref().ok()
    }

    /// The module holding an address: its file name and its full path.
    pub fn module_of(&self, addr: u64) -> Option<(String, String)> {
        let (module, _) = self.map.find(addr)?;
        let path = &self.map.modules.get(module)?.path;
        Some((
            self.map.name(module),
            String::from_utf8_lossy(path).into_owned(),
        ))
    }

    /// The symbol of a return address.
    pub fn resolve(&mut self, addr: u64) -> &Symbol {
        if !self.cache.contains_key(&addr) {
            let sym = self.lookup(addr);
            self.cache.insert(addr, sym);
        }
        &self.cache[&addr]
    }

    fn lookup(&mut self, addr: u64) -> Symbol {
        let Some((module, offset)) = self.map.find(addr) else {
            return Symbol {
                offset: addr,
                ..Symbol::default()
            };
        };
        let mut sym = Symbol {
            module: Some(self.map.name(module)),
            offset,
            ..Symbol::default()
        };
        let Some(loader) = self.loader(module) else {
            return sym;
        };
        // A return address points after the call: look up the call instruction.
        let probe = offset.saturating_sub(1);
        if let Ok(mut frames) = loader.find_frames(probe) {
            if let Ok(Some(frame)) = frames.next() {
                sym.function = frame
                    .function
                    .as_ref()
                    .and_then(|f| f.demangle().ok())
                    .map(Cow::into_owned);
                if let Some(loc) = frame.location {
                    sym.file = loc.file.map(str::to_string);
                    sym.line = loc.line;
                }
            }
            // The functions the first one was inlined into (a bounded chain).
            while let Ok(Some(frame)) = frames.next() {
                if sym.inlined_into.len() >= 64 {
                    break;
                }
                let loc = frame.location;
                sym.inlined_into.push(InlineCaller {
                    function: frame
                        .function
                        .as_ref()
                        .and_then(|f| f.demangle().ok())
                        .map(Cow::into_owned),
                    file: loc.as_ref().and_then(|l| l.file.map(str::to_string)),
                    line: loc.and_then(|l| l.line),
                });
            }
        }
        if sym.function.is_none() {
            sym.function = loader
                .find_symbol(probe)
                .map(|name| addr2line::demangle_auto(Cow::Borrowed(name), None).into_owned());
        }
        sym
    }
}

/// Opens the debug data of module `module` of `map`.
/// Why the file of a module the capture names has no symbols, in words for a warning; None
/// where that is as expected (no file path: the vDSO, an anonymous mapping; a file that is
/// there but no object file).
fn unavailable(path: &Path, e: &elf::Unavailable) -> Option<&'static str> {
    match e {
        elf::Unavailable::BuildIdMismatch => {
            Some("changed since the capture (its build-id differs)")
        }
        elf::Unavailable::Missing if path.is_absolute() => match std::fs::File::open(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Some("is gone (moved or deleted since the capture)")
            }
            Err(_) => Some("cannot be read"),
            Ok(_) => None,
        },
        elf::Unavailable::Missing => None,
    }
}

fn open(map: &ModuleMap, module: usize) -> Result<Loader, elf::Unavailable> {
    let m = &map.modules[module];
    elf::open(Path::new(OsStr::from_bytes(&m.path)), &m.build_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::decode::Module;
    use memtrace_format::record::Segment;

    fn module(base: u64, path: &[u8]) -> Module {
        Module {
            base,
            path: path.to_vec(),
            // Not the build-id of any file: an existing file reads as changed.
            build_id: vec![1, 2, 3],
            segments: vec![Segment {
                vaddr: 0,
                memsz: 0x1000,
                file_offset: 0,
            }],
        }
    }

    #[test]
    fn preloading_reports_a_changed_file_on_its_first_use_only() {
        let exe = std::env::current_exe().expect("the test's executable");
        let map = ModuleMap::new(
            vec![
                module(0x10000, exe.as_os_str().as_bytes()),
                module(0x20000, b"/nonexistent/libtwo.so"),
            ],
            b"/nonexistent/prog",
        );
        let mut s = Symbolizer::new(map);
        s.preload([0x10010, 0x20010, 0x99999].into_iter());
        assert!(s.loaders.iter().all(Option::is_some));
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        // A file gone is said at its first use too.
        assert_eq!(s.resolve(0x20010).module.as_deref(), Some("libtwo.so"));
        assert_eq!(s.resolve(0x20020).module.as_deref(), Some("libtwo.so"));
        assert_eq!(
            s.warnings,
            ["/nonexistent/libtwo.so is gone (moved or deleted since the capture): its addresses are shown as offsets"]
        );
        assert_eq!(s.resolve(0x10010).offset, 0x10);
        assert_eq!(s.resolve(0x10020).offset, 0x20);
        assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
        assert!(s.warnings[1].contains("changed since the capture"));
    }
}
