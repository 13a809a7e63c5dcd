//! Sets of allocations grouped by (stack, thread): what was live at one moment (the peak, the
//! exit snapshot) or what the temporary allocations were. Memory is one entry per distinct
//! (stack, thread), whatever the number of allocations.

use super::heap::LiveHeap;
use super::mappings::Mappings;
use super::totals::Sum;
use hashbrown::HashMap;

/// A stack id and the index of the thread (in the capture's thread list) that allocated.
pub type Key = (u64, u32);

/// Allocations by (stack, thread), and their total.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllocSet {
    pub groups: HashMap<Key, Sum>,
}

impl AllocSet {
    #[inline]
    pub fn add(&mut self, key: Key, bytes: u64) {
        self.groups.entry(key).or_default().add(bytes);
    }

    /// Every allocation of the set.
    pub fn total(&self) -> Sum {
        let mut t = Sum::default();
        for s in self.groups.values() {
            t.merge(*s);
        }
        t
    }

    /// The allocations by stack, all threads together.
    pub fn by_stack(&self) -> HashMap<u64, Sum> {
        let mut out: HashMap<u64, Sum> = HashMap::new();
        for (&(stack, _), &s) in &self.groups {
            out.entry(stack).or_default().merge(s);
        }
        out
    }

    /// The set restricted to the threads `keep` accepts (by thread index).
    pub fn filter_threads(&self, keep: impl Fn(u32) -> bool) -> AllocSet {
        AllocSet {
            groups: self
                .groups
                .iter()
                .filter(|(&(_, t), _)| keep(t))
                .map(|(&k, &s)| (k, s))
                .collect(),
        }
    }
}

/// Part of an allocation that was live at a moment and has gone since: a freed block, an
/// unmapped range. `count` is how many allocations fewer there are (an munmap that splits a
/// mapping in two makes one more: -1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Departed {
    pub stack: u64,
    pub thread: u32,
    pub bytes: u64,
    pub count: i64,
}

/// Departures since a moment: the latest in a list (cheap to add and to empty at every new
/// peak), folded by (stack, thread) when the list grows, so that memory stays one entry per
/// stack rather than one per allocation. Frees come in runs of one site (a loop's objects
/// going): a run is summed as it comes, and takes one entry of the list.
#[derive(Clone, Debug, Default)]
pub struct Departures {
    run: Option<Departed>,
    recent: Vec<Departed>,
    folded: HashMap<Key, (i64, i64)>,
}

/// Departures kept in the list before folding.
const FOLD_AT: usize = 1 << 14;

impl Departures {
    #[inline]
    pub fn push(&mut self, d: Departed) {
        if let Some(r) = &mut self.run {
            if r.stack == d.stack && r.thread == d.thread {
                r.bytes = r.bytes.wrapping_add(d.bytes);
                r.count += d.count;
                return;
            }
        }
        if let Some(r) = self.run.replace(d) {
            if self.recent.len() >= FOLD_AT {
                self.fold();
            }
            self.recent.push(r);
        }
    }

    fn fold(&mut self) {
        for d in self.recent.drain(..) {
            let e = self.folded.entry((d.stack, d.thread)).or_default();
            e.0 += d.count;
            e.1 += d.bytes as i64;
        }
    }

    #[inline]
    pub fn clear(&mut self) {
        self.run = None;
        self.recent.clear();
        if !self.folded.is_empty() {
            self.folded.clear();
        }
    }

    /// Every departure, by (stack, thread): (allocations, bytes).
    fn each(&self) -> impl Iterator<Item = (Key, (i64, i64))> + '_ {
        self.recent
            .iter()
            .chain(&self.run)
            .map(|d| ((d.stack, d.thread), (d.count, d.bytes as i64)))
            .chain(self.folded.iter().map(|(&k, &v)| (k, v)))
    }
}

/// Blocks live at a moment and freed since whose free named the type of the object they
/// held: summed by (type address, stack, thread) in a small cache first (a loop frees objects of
/// a few types from a few sites, interleaved), then in a list, folded when it grows, as
/// [`Departures`].
#[derive(Clone, Debug, Default)]
pub struct TypedDepartures {
    /// A slot per hash of the key ([`typed_slot`]); those of `used` hold sums.
    cache: Vec<(TypedKey, Sum)>,
    used: u64,
    recent: Vec<(TypedKey, Sum)>,
    folded: HashMap<TypedKey, Sum>,
}

/// A type address, a stack id and a thread index.
type TypedKey = (u64, u64, u32);

/// Slots of [`TypedDepartures`]'s cache: one bit each in `used`.
const TYPED_SLOTS: usize = 64;

#[inline]
fn typed_slot(&(ty, stack, thread): &TypedKey) -> usize {
    let mixed = (ty ^ stack.rotate_left(29) ^ u64::from(thread).rotate_left(53))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> 58) as usize
}

impl TypedDepartures {
    #[inline]
    /// A block that held an object of `object_type` went: `sum`, the bytes and allocations it
    /// stands for.
    pub fn push(&mut self, object_type: u64, stack: u64, thread: u32, sum: Sum) {
        let key = (object_type, stack, thread);
        let i = typed_slot(&key);
        let bit = 1u64 << i;
        if self.cache.is_empty() {
            self.cache = vec![((0, 0, 0), Sum::default()); TYPED_SLOTS];
        }
        if self.used & bit == 0 {
            self.used |= bit;
            self.cache[i] = (key, sum);
            return;
        }
        let (k, s) = &mut self.cache[i];
        if *k == key {
            s.merge(sum);
            return;
        }
        let evicted = std::mem::replace(&mut self.cache[i], (key, sum));
        if self.recent.len() >= FOLD_AT {
            self.fold();
        }
        self.recent.push(evicted);
    }

    fn fold(&mut self) {
        for (key, sum) in self.recent.drain(..) {
            self.folded.entry(key).or_default().merge(sum);
        }
    }

    #[inline]
    pub fn clear(&mut self) {
        self.used = 0;
        self.recent.clear();
        if !self.folded.is_empty() {
            self.folded.clear();
        }
    }

    /// The sums the cache holds.
    fn cached(&self) -> impl Iterator<Item = &(TypedKey, Sum)> + '_ {
        self.cache
            .iter()
            .enumerate()
            .filter(|&(i, _)| self.used & (1 << i) != 0)
            .map(|(_, e)| e)
    }

    /// Every departure, by (type address, stack, thread).
    pub fn by_type_site(&self) -> HashMap<TypedKey, Sum> {
        let mut out = self.folded.clone();
        for &(key, sum) in self.recent.iter().chain(self.cached()) {
            out.entry(key).or_default().merge(sum);
        }
        out
    }
}

/// What was live at the moment after event `index`: the blocks and mappings still live that
/// are that old, plus what departed since.
pub fn live_at(index: u64, heap: &LiveHeap, maps: &Mappings, departed: &Departures) -> AllocSet {
    let mut signed: HashMap<Key, (i64, i64)> = HashMap::new();
    for (_, b) in heap.iter() {
        if b.index() <= index {
            let e = signed.entry((b.stack(), b.thread())).or_default();
            e.0 += b.count() as i64;
            e.1 += b.size as i64;
        }
    }
    for (_, m) in maps.iter() {
        if m.index <= index {
            let e = signed.entry((m.stack, m.thread)).or_default();
            e.0 += 1;
            e.1 += m.len as i64;
        }
    }
    for (k, (count, bytes)) in departed.each() {
        let e = signed.entry(k).or_default();
        e.0 += count;
        e.1 += bytes;
    }
    AllocSet {
        groups: signed
            .into_iter()
            .filter(|&(_, (c, b))| c > 0 || b > 0)
            .map(|(k, (c, b))| {
                (
                    k,
                    Sum {
                        count: c.max(0) as u64,
                        bytes: b.max(0) as u64,
                    },
                )
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn departures_fold_by_stack_and_clear() {
        let mut d = Departures::default();
        let n = 3 * FOLD_AT as u64 + 5;
        for i in 0..n {
            d.push(Departed {
                stack: i % 3,
                thread: 0,
                bytes: 10,
                count: 1,
            });
        }
        assert!(d.recent.len() <= FOLD_AT && d.folded.len() == 3);
        let set = live_at(0, &LiveHeap::default(), &Mappings::default(), &d);
        assert_eq!(
            set.total(),
            Sum {
                count: n,
                bytes: 10 * n
            }
        );
        assert_eq!(set.groups[&(1, 0)].count, n / 3 + u64::from(n % 3 > 1));
        d.clear();
        let set = live_at(0, &LiveHeap::default(), &Mappings::default(), &d);
        assert_eq!(set.total(), Sum::default());
    }

    #[test]
    fn typed_departures_sum_by_type_and_site_through_the_cache_and_the_folds() {
        let mut d = TypedDepartures::default();
        // More keys than the cache holds, interleaved, past several folds.
        let n = 3 * FOLD_AT as u64 + 5;
        for i in 0..n {
            d.push(
                i % 7,
                i % 300,
                (i % 2) as u32,
                Sum {
                    count: 1,
                    bytes: 10 + i % 3,
                },
            );
        }
        let mut want: HashMap<TypedKey, Sum> = HashMap::new();
        for i in 0..n {
            want.entry((i % 7, i % 300, (i % 2) as u32))
                .or_default()
                .add(10 + i % 3);
        }
        assert_eq!(want.len(), 2100);
        assert_eq!(d.by_type_site(), want);
        d.clear();
        assert!(d.by_type_site().is_empty());
        d.push(1, 2, 3, Sum { count: 1, bytes: 4 });
        // A sample standing for 7 allocations.
        d.push(1, 2, 3, Sum { count: 7, bytes: 5 });
        let one: HashMap<TypedKey, Sum> = [((1, 2, 3), Sum { count: 8, bytes: 9 })].into();
        assert_eq!(d.by_type_site(), one);
    }
}
