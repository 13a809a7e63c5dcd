//! Classes that die while the program runs. A typed free names the type of the object its block
//! held by the type's address, and the walk at the script's end names the types then alive.
//! A class freed before the end leaves its address to whatever class CPython makes next in
//! that memory: without this, its objects were named after the later class (or after nothing).
//!
//! A class is itself an object, freed through the object domain as a typed free: its block
//! starts with the collector's two links, and the type object follows (a class has no managed
//! dict or weak-reference pointers before it). So the typed free of a block at B ends the life
//! of a class at B + 16 when B + 16 was seen as a type. Each typed free's type then carries
//! the number of class deaths at that address before it, in its top bits ([`ClassDeaths::key`]):
//! types of one address and different lives stay apart, and a life that ended before the end
//! is named from the site that made its class ([`ClassDeaths::dead_class`]).

use hashbrown::{HashMap, HashSet};

/// Where the type object lies in a class's block: after the collector's two links.
const TYPE_OFFSET: u64 = 16;
/// The number of lives goes above the address bits (user addresses are below 2^47).
const LIFE_SHIFT: u32 = 48;
const ADDRESS_MASK: u64 = (1 << LIFE_SHIFT) - 1;
/// Bits of the filter in front of the set of seen types.
const FILTER_BITS: usize = 1 << 16;

/// Slots of the memo of types just seen.
const RECENT: usize = 256;

#[derive(Clone, Debug)]
pub struct ClassDeaths {
    /// The types last seen, one per slot of an address's hash: a loop frees objects of a few
    /// types, and each typed free of a block live at the peak asks ([`ClassDeaths::key`]).
    recent: Vec<u64>,
    /// Type addresses named by typed frees of blocks live at a peak.
    seen: HashSet<u64>,
    /// A bit per hash of each seen address: most frees are of blocks that held no class.
    seen_filter: Vec<u64>,
    /// Deaths so far per address.
    deaths: HashMap<u64, u32>,
    /// The stack that allocated the class of (address, life) that died (None: allocated
    /// before the capture knew of it), and the event index of its death.
    dead: HashMap<(u64, u32), (Option<u64>, u64)>,
}

impl Default for ClassDeaths {
    fn default() -> ClassDeaths {
        ClassDeaths {
            recent: vec![0; RECENT],
            seen: HashSet::new(),
            seen_filter: vec![0; FILTER_BITS / 64],
            deaths: HashMap::new(),
            dead: HashMap::new(),
        }
    }
}

#[inline]
fn filter_bit(address: u64) -> (usize, u64) {
    let h = (address.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as usize;
    (h / 64, 1u64 << (h % 64))
}

#[inline]
fn recent_slot(address: u64) -> usize {
    (address.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize % RECENT
}

impl ClassDeaths {
    /// The key a typed free's type (`ty`, an address) is summed under: the address, with the
    /// number of earlier deaths of a class there.
    #[inline]
    pub fn key(&mut self, ty: u64) -> u64 {
        if ty > ADDRESS_MASK {
            return ty;
        }
        let slot = recent_slot(ty);
        if self.recent[slot] != ty {
            self.recent[slot] = ty;
            self.seen.insert(ty);
            let (word, bit) = filter_bit(ty);
            self.seen_filter[word] |= bit;
        }
        if self.deaths.is_empty() {
            return ty;
        }
        match self.deaths.get(&ty) {
            Some(&lives) => ty | u64::from(lives) << LIFE_SHIFT,
            None => ty,
        }
    }

    /// A typed free named the type `ty`: a class that dies later is told apart from the one
    /// made at its address after it (as [`ClassDeaths::key`] does, for the frees whose key is
    /// not needed).
    #[inline]
    pub fn named(&mut self, ty: u64) {
        if ty <= ADDRESS_MASK && self.recent[recent_slot(ty)] != ty {
            self.key(ty);
        }
    }

    /// A typed free (event `index`) of the block at `block`, allocated at `stack`: when the
    /// block held a class seen as a type, that class's life ended.
    #[inline]
    pub fn freed(&mut self, block: u64, stack: Option<u64>, index: u64) {
        let class = block.wrapping_add(TYPE_OFFSET);
        let (word, bit) = filter_bit(class);
        if self.seen_filter[word] & bit == 0 || !self.seen.remove(&class) {
            return;
        }
        // A later class at this address must be seen again.
        let slot = recent_slot(class);
        if self.recent[slot] == class {
            self.recent[slot] = 0;
        }
        let lives = self.deaths.entry(class).or_insert(0);
        self.dead.insert((class, *lives), (stack, index));
        *lives += 1;
    }

    /// A key's type: its address, and Some(the stack that made its class) when that class
    /// died before the end (None inside: made before the capture knew), or None when the key
    /// names the class living at that address at the end.
    pub fn resolve(&self, key: u64) -> (u64, Option<Option<u64>>) {
        let address = key & ADDRESS_MASK;
        let life = (key >> LIFE_SHIFT) as u32;
        let last = self.deaths.get(&address).copied().unwrap_or(0);
        if life >= last {
            return (address, None);
        }
        (
            address,
            self.dead.get(&(address, life)).map(|&(stack, _)| stack),
        )
    }

    /// The classes that died, by address: each death's event index and the stack that made
    /// the class (None: made before the capture knew of it), in the order of their lives.
    pub fn lives(&self) -> HashMap<u64, Vec<(u64, Option<u64>)>> {
        let mut lives: HashMap<u64, Vec<(u64, Option<u64>)>> = HashMap::new();
        for (&address, &n) in &self.deaths {
            let deaths = (0..n)
                .filter_map(|life| self.dead.get(&(address, life)))
                .map(|&(stack, index)| (index, stack))
                .collect();
            lives.insert(address, deaths);
        }
        lives
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_class_freed_and_its_address_taken_again_are_two_lives() {
        let mut d = ClassDeaths::default();
        let a = 0x36b_93d0;
        let first = d.key(a);
        // A block that held no class seen as a type changes nothing.
        d.freed(0x1000, Some(7), 1);
        assert_eq!(d.key(a), first);
        // The class at `a` dies (its block starts 16 bytes before it), made at stack 9.
        d.freed(a - TYPE_OFFSET, Some(9), 2);
        let second = d.key(a);
        assert_ne!(first, second);
        assert_eq!(d.resolve(first), (a, Some(Some(9))));
        // The later class at `a` is the one living at the end.
        assert_eq!(d.resolve(second), (a, None));
        // It dies too: both earlier lives read as dead classes, each with its own site.
        d.freed(a - TYPE_OFFSET, Some(11), 3);
        assert_eq!(d.resolve(second), (a, Some(Some(11))));
        assert_eq!(d.resolve(first), (a, Some(Some(9))));
        assert_eq!(d.lives()[&a], vec![(2, Some(9)), (3, Some(11))]);
    }

    #[test]
    fn a_type_never_seen_has_one_life() {
        let mut d = ClassDeaths::default();
        d.freed(0x5000 - TYPE_OFFSET, None, 1);
        assert_eq!(d.key(0x5000), 0x5000);
        assert_eq!(d.resolve(0x5000), (0x5000, None));
    }
}
