//! The index's byte encoding: varints, lengths checked against what is left (a damaged index
//! is refused, never trusted), and the [`Store`] trait the analysis types implement.

use hashbrown::HashMap;
use std::hash::Hash;

/// Bytes being written.
#[derive(Default)]
pub struct Writer {
    pub bytes: Vec<u8>,
}

impl Writer {
    pub fn u64(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.bytes.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.bytes.push(v as u8);
    }

    pub fn raw(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.bytes.extend_from_slice(b);
    }

    pub fn put<T: Store>(&mut self, v: &T) {
        v.put(self);
    }
}

/// Bytes being read; every read fails (None) past the end or on a malformed value.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    pub fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }

    fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub fn u64(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.pos)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }

    /// A length of things of at least one byte each: no more than the bytes left.
    pub fn count(&mut self) -> Option<usize> {
        let n = usize::try_from(self.u64()?).ok()?;
        (n <= self.left()).then_some(n)
    }

    pub fn raw(&mut self) -> Option<&'a [u8]> {
        let n = self.count()?;
        let b = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Some(b)
    }

    pub fn get<T: Store>(&mut self) -> Option<T> {
        T::get(self)
    }
}

/// A value the index holds.
pub trait Store: Sized {
    fn put(&self, w: &mut Writer);
    fn get(r: &mut Reader) -> Option<Self>;
}

impl Store for u64 {
    fn put(&self, w: &mut Writer) {
        w.u64(*self);
    }
    fn get(r: &mut Reader) -> Option<u64> {
        r.u64()
    }
}

macro_rules! narrow {
    ($($t:ty),*) => {$(
        impl Store for $t {
            fn put(&self, w: &mut Writer) {
                w.u64(*self as u64);
            }
            fn get(r: &mut Reader) -> Option<$t> {
                <$t>::try_from(r.u64()?).ok()
            }
        }
    )*};
}
narrow!(u32, u16, u8, usize);

impl Store for i64 {
    fn put(&self, w: &mut Writer) {
        w.u64(((*self << 1) ^ (*self >> 63)) as u64);
    }
    fn get(r: &mut Reader) -> Option<i64> {
        let v = r.u64()?;
        Some((v >> 1) as i64 ^ -((v & 1) as i64))
    }
}

impl Store for bool {
    fn put(&self, w: &mut Writer) {
        w.u64(u64::from(*self));
    }
    fn get(r: &mut Reader) -> Option<bool> {
        match r.u64()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
}

impl Store for String {
    fn put(&self, w: &mut Writer) {
        w.raw(self.as_bytes());
    }
    fn get(r: &mut Reader) -> Option<String> {
        String::from_utf8(r.raw()?.to_vec()).ok()
    }
}

impl Store for Box<str> {
    fn put(&self, w: &mut Writer) {
        w.raw(self.as_bytes());
    }
    fn get(r: &mut Reader) -> Option<Box<str>> {
        Some(std::str::from_utf8(r.raw()?).ok()?.into())
    }
}

impl Store for Box<[u8]> {
    fn put(&self, w: &mut Writer) {
        w.raw(self);
    }
    fn get(r: &mut Reader) -> Option<Box<[u8]>> {
        Some(r.raw()?.into())
    }
}

impl<T: Store> Store for Option<T> {
    fn put(&self, w: &mut Writer) {
        match self {
            None => w.u64(0),
            Some(v) => {
                w.u64(1);
                v.put(w);
            }
        }
    }
    fn get(r: &mut Reader) -> Option<Option<T>> {
        match r.u64()? {
            0 => Some(None),
            1 => Some(Some(T::get(r)?)),
            _ => None,
        }
    }
}

impl<T: Store> Store for Vec<T> {
    fn put(&self, w: &mut Writer) {
        w.u64(self.len() as u64);
        for v in self {
            v.put(w);
        }
    }
    fn get(r: &mut Reader) -> Option<Vec<T>> {
        let n = r.count()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(T::get(r)?);
        }
        Some(out)
    }
}

impl<T: Store + Copy + Default, const N: usize> Store for [T; N] {
    fn put(&self, w: &mut Writer) {
        for v in self {
            v.put(w);
        }
    }
    fn get(r: &mut Reader) -> Option<[T; N]> {
        let mut out = [T::default(); N];
        for v in &mut out {
            *v = T::get(r)?;
        }
        Some(out)
    }
}

impl<A: Store, B: Store> Store for (A, B) {
    fn put(&self, w: &mut Writer) {
        self.0.put(w);
        self.1.put(w);
    }
    fn get(r: &mut Reader) -> Option<(A, B)> {
        Some((A::get(r)?, B::get(r)?))
    }
}

impl<A: Store, B: Store, C: Store> Store for (A, B, C) {
    fn put(&self, w: &mut Writer) {
        self.0.put(w);
        self.1.put(w);
        self.2.put(w);
    }
    fn get(r: &mut Reader) -> Option<(A, B, C)> {
        Some((A::get(r)?, B::get(r)?, C::get(r)?))
    }
}

impl<K: Store + Eq + Hash, V: Store> Store for HashMap<K, V> {
    fn put(&self, w: &mut Writer) {
        w.u64(self.len() as u64);
        for (k, v) in self {
            k.put(w);
            v.put(w);
        }
    }
    fn get(r: &mut Reader) -> Option<HashMap<K, V>> {
        let n = r.count()?;
        let mut out = HashMap::with_capacity(n);
        for _ in 0..n {
            let k = K::get(r)?;
            out.insert(k, V::get(r)?);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_damage_is_refused() {
        let mut map: HashMap<(u64, u32), i64> = HashMap::new();
        map.insert((u64::MAX, 7), -5);
        map.insert((0, 0), i64::MIN);
        let value = (vec![Some("a".to_string()), None], map, [3u64, 0, u64::MAX]);
        let mut w = Writer::default();
        w.put(&value);
        let mut r = Reader::new(&w.bytes);
        assert_eq!(
            r.get::<(Vec<Option<String>>, HashMap<(u64, u32), i64>, [u64; 3])>(),
            Some(value)
        );
        assert!(r.at_end());
        for cut in 0..w.bytes.len() {
            let mut r = Reader::new(&w.bytes[..cut]);
            assert_eq!(
                r.get::<(Vec<Option<String>>, HashMap<(u64, u32), i64>, [u64; 3])>(),
                None
            );
        }
    }
}
