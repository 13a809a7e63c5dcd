//! Allocations by module: the file of the innermost Python frame of each stack (named as a dotted
//! module), or for a stack without Python frames the native module (executable or shared library)
//! of its innermost frame.

use super::locations::UNKNOWN;
use super::module_name::module_name;
use crate::analysis::tables::{Frame, FrameView, Tables};
use crate::analysis::totals::Sum;
use crate::symbols::Symbolizer;
use hashbrown::HashMap;

/// A module: a Python source file or a native module.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Module {
    /// `json.decoder`, `libc.so.6`, or `<unknown>`.
    pub name: String,
    /// The full path of the file, when known.
    pub file: Option<String>,
}

impl Module {
    fn unknown() -> Module {
        Module {
            name: UNKNOWN.to_string(),
            file: None,
        }
    }

    fn python(file: String) -> Module {
        if file.is_empty() {
            return Module::unknown();
        }
        Module {
            name: module_name(&file),
            file: Some(file),
        }
    }
}

/// Allocations of one module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleTotals {
    pub module: Module,
    pub sum: Sum,
}

/// Adds up the allocations of each stack under its module.
pub fn by_module(
    by_stack: &HashMap<u64, Sum>,
    tables: &Tables,
    symbolizer: &mut Symbolizer,
) -> Vec<ModuleTotals> {
    let mut g = Grouping::default();
    // --native-only: the module of the innermost native frame, Python frames aside.
    let native_only = tables.frame_view == FrameView::NativeOnly;
    // A native program's stacks need no walk in search of a Python frame.
    let python_frames = !native_only
        && tables
            .frames
            .values()
            .any(|f| matches!(f, Frame::Python { .. }));
    for (&stack, &sum) in by_stack {
        let file = python_frames
            .then(|| innermost_python_file(stack, tables))
            .flatten();
        let slot = match file {
            Some(file) => g.python(file, tables),
            None if native_only => match innermost_native_of_any(stack, tables) {
                Some(addr) => g.native(Some(addr), symbolizer),
                None => match innermost_python_file(stack, tables) {
                    Some(file) => g.python(file, tables),
                    None => g.native(None, symbolizer),
                },
            },
            None => {
                let addr = innermost_native_address(stack, tables)
                    .map(|a| past_wrappers(a, stack, tables, symbolizer));
                g.native(addr, symbolizer)
            }
        };
        g.out[slot].sum.merge(sum);
    }
    g.out
}

/// Modules being added up, with each file string and address named once.
#[derive(Default)]
struct Grouping {
    out: Vec<ModuleTotals>,
    slot_of: HashMap<Module, usize>,
    file_slot: HashMap<u64, usize>,
    address_slot: HashMap<u64, usize>,
}

impl Grouping {
    /// The slot of a Python file (a string id).
    fn python(&mut self, file: u64, tables: &Tables) -> usize {
        if let Some(&s) = self.file_slot.get(&file) {
            return s;
        }
        let module = tables
            .string(file)
            .map_or_else(Module::unknown, Module::python);
        let s = self.slot(module);
        self.file_slot.insert(file, s);
        s
    }

    /// The slot of the native module holding an address (`<unknown>` without an address).
    fn native(&mut self, addr: Option<u64>, symbolizer: &Symbolizer) -> usize {
        let Some(addr) = addr else {
            return self.slot(Module::unknown());
        };
        if let Some(&s) = self.address_slot.get(&addr) {
            return s;
        }
        let module = match symbolizer.module_of(addr) {
            Some((name, path)) => Module {
                name,
                file: Some(path),
            },
            None => Module::unknown(),
        };
        let s = self.slot(module);
        self.address_slot.insert(addr, s);
        s
    }

    fn slot(&mut self, m: Module) -> usize {
        let out = &mut self.out;
        *self.slot_of.entry(m).or_insert_with_key(|m| {
            out.push(ModuleTotals {
                module: m.clone(),
                sum: Sum::default(),
            });
            out.len() - 1
        })
    }
}

/// The file string id of the stack's innermost Python frame.
fn innermost_python_file(stack: u64, tables: &Tables) -> Option<u64> {
    tables.walk(stack).find_map(|f| match f {
        Frame::Python { file, .. } => Some(file),
        Frame::Native(_) => None,
    })
}

/// The address of the stack's innermost native frame, wherever it is.
fn innermost_native_of_any(stack: u64, tables: &Tables) -> Option<u64> {
    tables.walk(stack).find_map(|f| match f {
        Frame::Native(addr) => Some(addr),
        Frame::Python { .. } => None,
    })
}

/// `addr`, the innermost native frame of `stack`, or when all of that frame's functions are
/// allocator wrappers (`operator new`: see locations::is_allocator_wrapper), the first native
/// frame further out that is not, so that C++ and Rust allocations count for the module that
/// asked for them, not for libstdc++.
fn past_wrappers(addr: u64, stack: u64, tables: &Tables, symbolizer: &mut Symbolizer) -> u64 {
    let mut wrapper = |a: u64| {
        super::locations::resolve_all(Frame::Native(a), tables, symbolizer)
            .iter()
            .all(super::locations::Location::is_allocator_wrapper)
    };
    if !wrapper(addr) {
        return addr;
    }
    tables
        .walk(stack)
        .filter_map(|f| match f {
            Frame::Native(a) => Some(a),
            Frame::Python { .. } => None,
        })
        .find(|&a| !wrapper(a))
        .unwrap_or(addr)
}

/// The address of the stack's innermost frame when it is a native frame.
fn innermost_native_address(stack: u64, tables: &Tables) -> Option<u64> {
    match tables.walk(stack).next()? {
        Frame::Native(addr) => Some(addr),
        Frame::Python { .. } => None,
    }
}

/// The `n` largest by bytes (ties: more allocations, then name, then file).
pub fn top_by_bytes(modules: &[ModuleTotals], n: usize) -> Vec<ModuleTotals> {
    let mut v: Vec<&ModuleTotals> = modules.iter().collect();
    v.sort_by(|a, b| {
        (b.sum.bytes, b.sum.count)
            .cmp(&(a.sum.bytes, a.sum.count))
            .then_with(|| a.module.name.cmp(&b.module.name))
            .then_with(|| a.module.file.cmp(&b.module.file))
    });
    v.into_iter().take(n).cloned().collect()
}
