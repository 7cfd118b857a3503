//! The per-source table: open addressing with linear probing and backward-shift deletion,
//! key and value side by side and no control bytes (a vacant bucket is marked in the value),
//! so that a lookup's probe usually touches one cache line.

use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address family's integer form.
pub(super) trait Key: Copy + Eq + Hash + Ord {
    /// A placeholder for vacant buckets.
    const ZERO: Self;
    fn ip(self) -> IpAddr;
    /// 64 bits to hash.
    fn fold(self) -> u64;
}

impl Key for u32 {
    const ZERO: Self = 0;
    fn ip(self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(self))
    }
    fn fold(self) -> u64 {
        u64::from(self)
    }
}

/// An IPv6 address as two 64-bit halves, high first (so that the derived order is the
/// address order): 8-byte aligned, where a `u128` would be 16 — an IPv6 bucket takes 40 bytes
/// instead of 48.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Wide(u64, u64);

impl From<Ipv6Addr> for Wide {
    #[inline]
    fn from(a: Ipv6Addr) -> Self {
        let bits = u128::from(a);
        Wide((bits >> 64) as u64, bits as u64)
    }
}

impl Key for Wide {
    const ZERO: Self = Wide(0, 0);
    fn ip(self) -> IpAddr {
        IpAddr::V6(Ipv6Addr::from(
            u128::from(self.0) << 64 | u128::from(self.1),
        ))
    }
    #[inline]
    fn fold(self) -> u64 {
        self.1 ^ self.0.rotate_left(29)
    }
}

/// A value that can mark its bucket vacant (no control bytes beside the buckets).
pub(super) trait Vacancy: Copy {
    /// The value of a vacant bucket; never stored by a caller.
    const VACANT: Self;
    /// Whether this is the vacant marker.
    fn is_vacant(&self) -> bool;
}

#[derive(Clone, Copy, Debug)]
struct Bucket<K, V> {
    key: K,
    record: V,
}

impl<K: Key, V: Vacancy> Bucket<K, V> {
    const EMPTY: Self = Bucket {
        key: K::ZERO,
        record: V::VACANT,
    };

    fn is_vacant(&self) -> bool {
        self.record.is_vacant()
    }
}

/// The per-source table: open addressing with linear probing and backward-shift deletion,
/// key and record side by side and no control bytes, so that a lookup's probe usually
/// touches one cache line (sources are endpoint IPs: multiplicative hashing spreads them).
pub(super) struct FlatTable<K, V> {
    buckets: Vec<Bucket<K, V>>,
    len: usize,
    /// 64 minus log2 of the bucket count.
    shift: u32,
}

impl<K: Key, V: Vacancy> FlatTable<K, V> {
    pub(super) fn new() -> Self {
        Self {
            buckets: Vec::new(),
            len: 0,
            shift: 64,
        }
    }

    fn home(&self, key: K) -> usize {
        (key.fold().wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    pub(super) fn find(&self, key: K) -> Option<usize> {
        if self.buckets.is_empty() {
            return None;
        }
        let mask = self.buckets.len() - 1;
        let mut i = self.home(key);
        loop {
            let b = &self.buckets[i];
            if b.is_vacant() {
                return None;
            }
            if b.key == key {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    #[inline]
    pub(super) fn get(&self, key: K) -> Option<&V> {
        self.find(key).map(|i| &self.buckets[i].record)
    }

    pub(super) fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        if (self.len + 1) * 4 > self.buckets.len() * 3 {
            self.grow();
        }
        // One probe: it ends on the key, or on the vacant bucket where the key belongs.
        let mask = self.buckets.len() - 1;
        let mut i = self.home(key);
        while !self.buckets[i].is_vacant() && self.buckets[i].key != key {
            i = (i + 1) & mask;
        }
        if self.buckets[i].is_vacant() {
            self.buckets[i] = Bucket {
                key,
                record: make(),
            };
            self.len += 1;
        }
        &mut self.buckets[i].record
    }

    fn grow(&mut self) {
        let count = (self.buckets.len() * 2).max(16);
        let old = std::mem::replace(&mut self.buckets, vec![Bucket::EMPTY; count]);
        self.shift = 64 - count.trailing_zeros();
        let mask = count - 1;
        for b in old.into_iter().filter(|b| !b.is_vacant()) {
            let mut i = self.home(b.key);
            while !self.buckets[i].is_vacant() {
                i = (i + 1) & mask;
            }
            self.buckets[i] = b;
        }
    }

    pub(super) fn remove(&mut self, key: K) -> Option<V> {
        let mut hole = self.find(key)?;
        let removed = self.buckets[hole].record;
        let mask = self.buckets.len() - 1;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            if self.buckets[j].is_vacant() {
                break;
            }
            // Move the bucket back into the hole unless its home lies cyclically in (hole, j].
            let home = self.home(self.buckets[j].key);
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.buckets[hole] = self.buckets[j];
                hole = j;
            }
        }
        self.buckets[hole] = Bucket::EMPTY;
        self.len -= 1;
        Some(removed)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (K, &V)> {
        self.buckets
            .iter()
            .filter(|b| !b.is_vacant())
            .map(|b| (b.key, &b.record))
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * size_of::<Bucket<K, V>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Vacancy for u32 {
        const VACANT: Self = u32::MAX;
        fn is_vacant(&self) -> bool {
            *self == u32::MAX
        }
    }

    #[test]
    fn the_flat_table_matches_a_map_under_random_operations() {
        let mut table: FlatTable<u32, u32> = FlatTable::new();
        let mut model = std::collections::BTreeMap::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for step in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Clustered keys (like pod IPs) to exercise probing and backward shifts.
            let key = (x % 4096) as u32 * if step % 3 == 0 { 1 } else { 1024 };
            if x.is_multiple_of(3) {
                assert_eq!(table.remove(key), model.remove(&key));
            } else {
                let got = *table.get_or_insert_with(key, || step);
                assert_eq!(got, *model.entry(key).or_insert(step));
            }
            assert_eq!(table.len(), model.len());
        }
        for (k, v) in &model {
            assert_eq!(table.get(*k), Some(v));
        }
        assert_eq!(table.iter().count(), model.len());
        assert!(table.get(u32::MAX - 1).is_none());
        // IPv6 keys fold both halves.
        let mut wide: FlatTable<Wide, u32> = FlatTable::new();
        for i in 0..1000u64 {
            *wide.get_or_insert_with(Wide(0xfd00 << 48 | i, 0), || 0) = i as u32;
        }
        assert_eq!(wide.len(), 1000);
        assert_eq!(wide.get(Wide(0xfd00 << 48 | 7, 0)), Some(&7));
        assert_eq!(
            Wide::from("fd00::7:0:0:1".parse::<Ipv6Addr>().unwrap()).ip(),
            "fd00::7:0:0:1".parse::<IpAddr>().unwrap()
        );
        assert!(Wide(1, 0) > Wide(0, u64::MAX));
    }
}
