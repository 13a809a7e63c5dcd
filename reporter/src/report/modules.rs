//! Allocations by module: the file of the innermost Python frame of each stack (named as a dotted
//! module), or for a stack without Python frames the native module (executable or shared library)
//! of its innermost frame.

use super::locations::UNKNOWN;
use super::module_name::module_name;
use crate::analysis::tables::{Frame, Tables};
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
    symbolizer: &Symbolizer,
) -> Vec<ModuleTotals> {
    let mut out: Vec<ModuleTotals> = Vec::new();
    let mut slot_of: HashMap<Module, usize> = HashMap::new();
    // Many stacks share a file: name each file string once.
    let mut file_slot: HashMap<u64, usize> = HashMap::new();
    let mut native_slot: HashMap<u64, usize> = HashMap::new();
    // A native program's stacks need no walk in search of a Python frame.
    let python_frames = tables
        .frames
        .values()
        .any(|f| matches!(f, Frame::Python { .. }));
    for (&stack, &sum) in by_stack {
        let file = python_frames
            .then(|| innermost_python_file(stack, tables))
            .flatten();
        let slot = match file {
            Some(file) => match file_slot.get(&file) {
                Some(&s) => s,
                None => {
                    let module = tables
                        .string(file)
                        .map_or_else(Module::unknown, Module::python);
                    let s = slot(&mut out, &mut slot_of, module);
                    file_slot.insert(file, s);
                    s
                }
            },
            None => {
                let addr = innermost_native_address(stack, tables);
                match addr.and_then(|a| native_slot.get(&a)) {
                    Some(&s) => s,
                    None => {
                        let module = addr.and_then(|a| symbolizer.module_of(a)).map_or_else(
                            Module::unknown,
                            |(name, path)| Module {
                                name,
                                file: Some(path),
                            },
                        );
                        let s = slot(&mut out, &mut slot_of, module);
                        if let Some(a) = addr {
                            native_slot.insert(a, s);
                        }
                        s
                    }
                }
            }
        };
        out[slot].sum.merge(sum);
    }
    out
}

fn slot(out: &mut Vec<ModuleTotals>, slot_of: &mut HashMap<Module, usize>, m: Module) -> usize {
    *slot_of.entry(m).or_insert_with_key(|m| {
        out.push(ModuleTotals {
            module: m.clone(),
            sum: Sum::default(),
        });
        out.len() - 1
    })
}

/// The file string id of the stack's innermost Python frame.
fn innermost_python_file(stack: u64, tables: &Tables) -> Option<u64> {
    tables.walk(stack).find_map(|f| match f {
        Frame::Python { file, .. } => Some(file),
        Frame::Native(_) => None,
    })
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
