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
use std::sync::{Arc, Mutex, MutexGuard};

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

/// A module's debug data, opened once and shared by the symbolizers of a [`LoaderCache`].
type Opened = Arc<Mutex<Result<Loader, elf::Unavailable>>>;

/// The modules' debug data opened so far, by file and build-id, for several symbolizers to
/// share: the captures of one family (a process's children load the same libraries; a page
/// of 1,000 processes opened libc's debug file 122 times), or one capture read again.
#[derive(Clone, Default)]
pub struct LoaderCache(Arc<Mutex<OpenedByFile>>);

/// Debug data by (file path, build-id).
type OpenedByFile = HashMap<(Vec<u8>, Vec<u8>), Opened>;

impl LoaderCache {
    fn map(&self) -> MutexGuard<'_, OpenedByFile> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Locks a module's debug data (a panic elsewhere leaves it as it was: read-only use).
fn locked(opened: &Opened) -> MutexGuard<'_, Result<Loader, elf::Unavailable>> {
    opened
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Resolves addresses, caching per address and loading each module's debug data once.
pub struct Symbolizer {
    map: ModuleMap,
    loaders: Vec<Option<Opened>>,
    /// Shared with other symbolizers, when given.
    shared: Option<LoaderCache>,
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
            shared: None,
            used: vec![false; n],
            cache: HashMap::new(),
            warnings: Vec::new(),
        }
    }

    /// A symbolizer whose modules' debug data come from `cache` and go into it.
    pub fn with_cache(map: ModuleMap, cache: LoaderCache) -> Symbolizer {
        Symbolizer {
            shared: Some(cache),
            ..Symbolizer::new(map)
        }
    }

    /// The key of module `m` in a [`LoaderCache`].
    fn key(&self, m: usize) -> (Vec<u8>, Vec<u8>) {
        let module = &self.map.modules[m];
        (module.path.clone(), module.build_id.clone())
    }

    /// Module `m`'s debug data, from the shared cache when there is one, else opened.
    fn opened(&self, m: usize) -> Opened {
        let Some(shared) = &self.shared else {
            return Arc::new(Mutex::new(open(&self.map, m)));
        };
        let key = self.key(m);
        if let Some(o) = shared.map().get(&key) {
            return o.clone();
        }
        // Opened outside the cache's lock: other threads' modules open meanwhile (one of two
        // threads opening the same module keeps its copy).
        let o = Arc::new(Mutex::new(open(&self.map, m)));
        shared.map().entry(key).or_insert(o).clone()
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
        // Those another symbolizer opened already.
        if let Some(shared) = self.shared.clone() {
            let cached = shared.map();
            let mut left = Vec::with_capacity(modules.len());
            for m in modules {
                match cached.get(&self.key(m)) {
                    Some(o) => self.loaders[m] = Some(o.clone()),
                    None => left.push(m),
                }
            }
            modules = left;
        }
        if modules.len() < 2 {
            return;
        }
        let this = &*self;
        let opened: Vec<(usize, Opened)> =
            modules.par_iter().map(|&m| (m, this.opened(m))).collect();
        for (m, loaded) in opened {
            self.loaders[m] = Some(loaded);
        }
    }

    fn loader(&mut self, module: usize) -> Option<Opened> {
        if self.loaders.get(module)?.is_none() {
            let opened = self.opened(module);
            self.loaders[module] = Some(opened);
        }
        let loaded = self.loaders[module].clone()?;
        if !std::mem::replace(&mut self.used[module], true) {
            let path = Path::new(OsStr::from_bytes(&self.map.modules[module].path));
            if let Some(why) = locked(&loaded)
                .as_ref()
                .err()
                .and_then(|e| unavailable(path, e))
            {
                self.warnings.push(format!(
                    "{} {why}: its addresses are shown as offsets",
                    path.display()
                ));
            }
        }
        Some(loaded)
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
        let Some(opened) = self.loader(module) else {
            return sym;
        };
        let guard = locked(&opened);
        let Ok(loader) = guard.as_ref() else {
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
    fn symbolizers_of_one_cache_open_a_module_once() {
        let exe = std::env::current_exe().expect("the test's executable");
        let map = || {
            ModuleMap::new(
                vec![module(0x10000, exe.as_os_str().as_bytes())],
                b"/nonexistent/prog",
            )
        };
        let cache = LoaderCache::default();
        let mut first = Symbolizer::with_cache(map(), cache.clone());
        let mut second = Symbolizer::with_cache(map(), cache.clone());
        let a = first.resolve(0x10010).clone();
        assert_eq!(second.resolve(0x10010), &a);
        let (one, two) = (first.loaders[0].clone(), second.loaders[0].clone());
        assert!(Arc::ptr_eq(&one.expect("opened"), &two.expect("opened")));
        assert_eq!(cache.map().len(), 1);
        // Without a cache each opens its own.
        let mut alone = Symbolizer::new(map());
        assert_eq!(alone.resolve(0x10010), &a);
        assert_eq!(cache.map().len(), 1);
        // The changed file is said by each symbolizer at its first use.
        assert_eq!(first.warnings.len(), 1, "{:?}", first.warnings);
        assert_eq!(second.warnings, first.warnings);
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
