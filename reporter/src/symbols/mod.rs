//! Native symbolization: return addresses to (function, file, line) through the module map
//! recorded in the capture and the modules' DWARF data (addr2line).

pub mod debugfile;
pub mod elf;
pub mod modules;

use addr2line::Loader;
use hashbrown::HashMap;
use modules::ModuleMap;
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
            cache: HashMap::new(),
            warnings: Vec::new(),
        }
    }

    fn loader(&mut self, module: usize) -> Option<&Loader> {
        let slot = self.loaders.get_mut(module)?;
        if slot.is_none() {
            let m = &self.map.modules[module];
            let path = Path::new(OsStr::from_bytes(&m.path));
            let loaded = elf::open(path, &m.build_id);
            if loaded.as_ref().err() == Some(&elf::Unavailable::BuildIdMismatch) {
                self.warnings.push(format!(
                    "{} changed since the capture (its build-id differs): its addresses are shown as offsets",
                    path.display()
                ));
            }
            *slot = Some(loaded);
        }
        slot.as_ref()?.as_ref().ok()
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
