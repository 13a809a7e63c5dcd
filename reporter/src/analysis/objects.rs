//! The types of the blocks live at exit: a Python run's capture lists the objects live when the
//! script finished, by type (object-types records, memtrace_format::objects); each object lies
//! inside the block it was allocated in, a few words in (the collector's links, and from
//! 3.11/3.12 the managed dict and weak-reference pointers, come before it). So a block live at
//! exit takes the type of the first object whose address falls in `[address, address + size)`.
//! Blocks with no object in them (a list's item array, a dict's keys, buffers) are counted
//! apart, as "no object", not guessed.
//!
//! The peak: a Python run with object types on records, with each free of an object's block,
//! the type of the object it held (typed frees, read from the block's header). A block live at
//! the peak was either freed later (its free names its type) or is still live at exit (the walk
//! names it), so the types live at the peak come from the two ([`peak_types`]). Blocks whose
//! free named no type are counted apart as "<no object>"; a class freed before the script's
//! end (the walk names the types then alive) is named from the line that made it
//! (super::class_deaths).

use super::replay::{Replay, Snapshot};
use super::tables::{Frame, Tables};
use super::totals::Sum;
use hashbrown::HashMap;

/// The name shown for blocks live at exit with no object in them.
pub const NO_OBJECT: &str = "<no object>";

/// One type's objects live at exit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeRow {
    pub name: String,
    /// Objects of the type found in blocks live at exit.
    pub objects: u64,
    /// The blocks holding them, and their bytes.
    pub blocks: Sum,
}

/// What was live at exit, by type.
#[derive(Clone, Debug, Default)]
pub struct ExitTypes {
    /// Types, most bytes first (then by name).
    pub rows: Vec<TypeRow>,
    /// Blocks live at exit with no object in them, and their bytes (mappings included).
    pub untyped: Sum,
    /// Per (row index, stack, thread): the blocks of that type allocated there. Untyped
    /// blocks are under row index `rows.len()`.
    pub by_site: HashMap<(usize, u64, u32), Sum>,
    /// The type (row) of each typed block live at exit and the block's event index (its
    /// allocation's position in the stream), by the block's address.
    pub block_types: HashMap<u64, (usize, u64)>,
}

impl ExitTypes {
    /// The row index of a type name (`NO_OBJECT` gives `rows.len()`).
    pub fn row_of(&self, name: &str) -> Option<usize> {
        if name == NO_OBJECT {
            return Some(self.rows.len());
        }
        self.rows.iter().position(|r| r.name == name)
    }
}

/// A block live at exit, as the types are matched to it.
struct ExitBlock {
    addr: u64,
    /// The bytes it asked for: its objects lie there.
    asked: u64,
    /// The bytes and allocations it stands for.
    sum: Sum,
    stack: u64,
    thread: u32,
}

/// The types of the blocks live at exit; None when the capture has no object-types records
/// (not a Python run, a tracker without them, or a run that did not reach the script's end).
/// `exit_bytes`/`exit_allocations`: the totals live at exit, of which what has no type is
/// the rest. Must run before the replay is frozen (it reads the live heap).
pub fn exit_types(
    replay: &Replay,
    tables: &Tables,
    exit_bytes: u64,
    exit_allocations: u64,
) -> Option<ExitTypes> {
    if tables.objects.is_empty() {
        return None;
    }
    let exit_index = replay.exit.map_or(u64::MAX, |e| e.event_index);
    // Blocks live at exit, by address (the capture ends with the script: what is live at its
    // end and was allocated before the exit marker is what was live at exit). An object is in
    // the bytes a block asked for; a sampled block's figures are the bytes and allocations it
    // stands for, and its objects stand for as many more.
    let mut blocks: Vec<ExitBlock> = Vec::new();
    let mut indices: HashMap<u64, u64> = HashMap::new();
    for (a, b) in replay.heap.iter().filter(|(_, b)| b.index() <= exit_index) {
        blocks.push(ExitBlock {
            addr: a,
            asked: b.asked(),
            sum: Sum {
                count: b.count(),
                bytes: b.size,
            },
            stack: b.stack(),
            thread: b.thread(),
        });
        indices.insert(a, b.index());
    }
    blocks.sort_unstable_by_key(|b| b.addr);
    let mut names: Vec<String> = Vec::new();
    let mut name_index: HashMap<&[u8], usize> = HashMap::new();
    // Per block (by position in `blocks`): its type and object count.
    let mut typed: HashMap<usize, (usize, u64)> = HashMap::new();
    for rec in &tables.objects {
        let t = *name_index.entry(&rec.name[..]).or_insert_with(|| {
            names.push(String::from_utf8_lossy(&rec.name).into_owned());
            names.len() - 1
        });
        for &addr in &rec.addrs {
            let Some(i) = blocks.partition_point(|b| b.addr <= addr).checked_sub(1) else {
                continue;
            };
            let b = &blocks[i];
            if addr >= b.addr.saturating_add(b.asked.max(1)) {
                continue;
            }
            let slot = typed.entry(i).or_insert((t, 0));
            // A block holds one object as a rule; another inside it counts with the first.
            slot.1 += 1;
        }
    }
    let mut objects = vec![0u64; names.len()];
    let mut sums = vec![Sum::default(); names.len()];
    for (&i, &(t, n)) in &typed {
        objects[t] += n * blocks[i].sum.count;
    }
    let mut by_site_raw: HashMap<(usize, u64, u32), Sum> = HashMap::new();
    let mut typed_bytes = Sum::default();
    for (&i, &(t, _)) in &typed {
        let b = &blocks[i];
        sums[t].merge(b.sum);
        typed_bytes.merge(b.sum);
        by_site_raw
            .entry((t, b.stack, b.thread))
            .or_default()
            .merge(b.sum);
    }
    let (rows, renumber) = ranked_rows(&names, &sums, |t| objects[t]);
    let mut by_site: HashMap<(usize, u64, u32), Sum> = by_site_raw
        .into_iter()
        .map(|((t, s, th), sum)| ((renumber[t], s, th), sum))
        .collect();
    let mut block_types = HashMap::with_capacity(typed.len());
    let mut is_typed = vec![false; blocks.len()];
    for (&i, &(t, _)) in &typed {
        let addr = blocks[i].addr;
        block_types.insert(
            addr,
            (renumber[t], indices.get(&addr).copied().unwrap_or(0)),
        );
        is_typed[i] = true;
    }
    let untyped_row = rows.len();
    for (i, b) in blocks.iter().enumerate() {
        if !is_typed[i] {
            by_site
                .entry((untyped_row, b.stack, b.thread))
                .or_default()
                .merge(b.sum);
        }
    }
    let untyped = Sum {
        count: exit_allocations.saturating_sub(typed_bytes.count),
        bytes: exit_bytes.saturating_sub(typed_bytes.bytes),
    };
    Some(ExitTypes {
        rows,
        untyped,
        by_site,
        block_types,
    })
}

/// The rows of the types with objects, most bytes first (then by name), and each type's row
/// by its index in `names` (usize::MAX for a type without a row).
fn ranked_rows(
    names: &[String],
    sums: &[Sum],
    objects: impl Fn(usize) -> u64,
) -> (Vec<TypeRow>, Vec<usize>) {
    let mut order: Vec<usize> = (0..names.len()).filter(|&t| objects(t) > 0).collect();
    order.sort_by(|&a, &b| {
        sums[b]
            .bytes
            .cmp(&sums[a].bytes)
            .then_with(|| names[a].cmp(&names[b]))
    });
    let mut renumber = vec![usize::MAX; names.len()];
    for (row, &t) in order.iter().enumerate() {
        renumber[t] = row;
    }
    let rows = order
        .iter()
        .map(|&t| TypeRow {
            name: names[t].clone(),
            objects: objects(t),
            blocks: sums[t],
        })
        .collect();
    (rows, renumber)
}

/// The name of a class freed before the script's end (the walk then named the types alive),
/// from the line that made it (`made_at`: its block's stack), as far as the capture tells.
pub fn freed_class(tables: &Tables, made_at: Option<u64>) -> String {
    let line = made_at.and_then(|stack| {
        tables.frames_of(stack).into_iter().find_map(|f| match f {
            Frame::Python { file, line, .. } => {
                let file = tables.string(file)?;
                let name = file.rsplit('/').next().unwrap_or(&file).to_string();
                Some(format!("{name}:{line}"))
            }
            Frame::Native(_) => None,
        })
    });
    match line {
        Some(line) => format!("<freed class of {line}>"),
        None => "<a class freed before the end>".to_string(),
    }
}

/// The types of the blocks live at the peak; None when the capture has no typed frees (a
/// tracker without them, `--no-types`, `--no-python-allocators`, the in-process Tracker). Must
/// run before the replay is frozen, after [`exit_types`] (whose block types name the blocks
/// still live at exit).
pub fn peak_types(
    replay: &Replay,
    tables: &Tables,
    exit: Option<&ExitTypes>,
    peak: Snapshot,
) -> Option<ExitTypes> {
    if tables.type_names.is_empty() {
        return None;
    }
    let mut names: Vec<String> = Vec::new();
    let mut name_index: HashMap<String, usize> = HashMap::new();
    let mut row_of = |name: &str| -> usize {
        if let Some(&t) = name_index.get(name) {
            return t;
        }
        names.push(name.to_string());
        name_index.insert(name.to_string(), names.len() - 1);
        names.len() - 1
    };
    let mut by_site_raw: HashMap<(usize, u64, u32), Sum> = HashMap::new();
    // Freed since the peak, by the type their free named.
    for ((key, stack, thread), sum) in replay.peak_typed.by_type_site() {
        let name = match replay.class_deaths.resolve(key) {
            (ty, None) => tables.type_names.get(&ty).map(|n| n.to_string()),
            (_, Some(made_at)) => Some(freed_class(tables, made_at)),
        };
        if let Some(name) = name {
            let t = row_of(&name);
            by_site_raw
                .entry((t, stack, thread))
                .or_default()
                .merge(sum);
        }
    }
    // Still live, by the walk at the script's end.
    if let Some(exit) = exit {
        for (a, b) in replay.heap.iter() {
            if b.index() > peak.event_index {
                continue;
            }
            let Some(&(row, index)) = exit.block_types.get(&a) else {
                continue;
            };
            if index != b.index() {
                continue;
            }
            let t = row_of(&exit.rows[row].name);
            by_site_raw
                .entry((t, b.stack(), b.thread()))
                .or_default()
                .add_n(b.count(), b.size);
        }
    }
    let mut sums = vec![Sum::default(); names.len()];
    for (&(t, _, _), s) in &by_site_raw {
        sums[t].merge(*s);
    }
    // One object per block: a block freed names one object's type.
    let (rows, renumber) = ranked_rows(&names, &sums, |t| sums[t].count);
    let untyped_row = rows.len();
    // What was live at the peak and has no type: the peak's set less the typed blocks.
    let mut untyped_sites: HashMap<(u64, u32), (i64, i64)> = HashMap::new();
    for (&key, s) in &replay.peak_set().groups {
        let e = untyped_sites.entry(key).or_default();
        e.0 += s.count as i64;
        e.1 += s.bytes as i64;
    }
    let mut typed = Sum::default();
    let mut by_site: HashMap<(usize, u64, u32), Sum> = HashMap::new();
    for ((t, stack, thread), s) in by_site_raw {
        typed.merge(s);
        let e = untyped_sites.entry((stack, thread)).or_default();
        e.0 -= s.count as i64;
        e.1 -= s.bytes as i64;
        by_site.insert((renumber[t], stack, thread), s);
    }
    for ((stack, thread), (count, bytes)) in untyped_sites {
        if count > 0 || bytes > 0 {
            by_site.insert(
                (untyped_row, stack, thread),
                Sum {
                    count: count.max(0) as u64,
                    bytes: bytes.max(0) as u64,
                },
            );
        }
    }
    Some(ExitTypes {
        rows,
        untyped: Sum {
            count: peak.allocations.saturating_sub(typed.count),
            bytes: peak.bytes.saturating_sub(typed.bytes),
        },
        by_site,
        block_types: HashMap::new(),
    })
}
