//! Compact, contiguous copies of the desired entry lists, for `Engine::lookup`.
//!
//! The interned lists hold full `Slot`s behind one allocation each; a lookup wants the
//! shortest possible walk: one hash probe on the source, then a few adjacent
//! (mask, network, value) records. Lists are immutable once interned, so their compact copy
//! is made once when a list is created and its room reused, by a later list of the same
//! length, when it is freed — so a list never moves and each source can keep its desired
//! list's place beside it, saving the lookup one indirection. Values (egress IP, gateway IP,
//! ifindex) are few and stored once; that table only grows, bounded by the distinct gateway
//! settings.

use std::net::{IpAddr, Ipv4Addr};

use hashbrown::HashMap;

use super::arena::{Arena, ListId};
use crate::entries::Slot;
use crate::lookup::{Verdict, VerdictRecord};
use crate::netip::{mask_v4, mask_v6};

/// Where a list's compact copy lies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    len: u32,
}

impl Span {
    /// The empty list's place.
    pub(crate) const EMPTY: Span = Span { start: 0, len: 0 };

    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..(self.start + self.len) as usize
    }
}

#[derive(Clone, Copy, Debug)]
struct FastV4 {
    mask: u32,
    net: u32,
    value: u32,
}

#[derive(Clone, Copy, Debug)]
struct FastV6 {
    /// Mask and network as 64-bit halves, high first: 8-byte alignment, 40 bytes a record
    /// (`u128`s would align it to 16: 48 bytes).
    mask: [u64; 2],
    net: [u64; 2],
    value: u32,
}

/// An entry's value: egress IP, gateway IP, ifindex.
type Value = (IpAddr, Ipv4Addr, u32);

/// The compact lists, indexed like the slot arena.
pub(crate) struct FastLists {
    spans: Vec<Option<(Span, bool)>>,
    v4: Vec<FastV4>,
    v6: Vec<FastV6>,
    values: Vec<Value>,
    /// Value ids: `values`' index + 1 (0 is "no entry").
    value_index: HashMap<Value, u32>,
    /// The verdict of each value id on this node (recomputed when the local IPv4 changes);
    /// at 0, [`Verdict::NoEntry`], so that a lookup that found nothing reads a verdict too.
    verdicts: Vec<Verdict>,
    /// The same verdicts as records.
    records: Vec<VerdictRecord>,
    local_ipv4: Option<Ipv4Addr>,
    /// Freed places by family and length, for reuse.
    free: [HashMap<u32, Vec<u32>>; 2],
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

impl Default for FastLists {
    fn default() -> Self {
        Self {
            spans: Vec::new(),
            v4: Vec::new(),
            v6: Vec::new(),
            values: Vec::new(),
            value_index: HashMap::new(),
            verdicts: vec![Verdict::NoEntry],
            records: vec![VerdictRecord::NO_ENTRY],
            local_ipv4: None,
            free: Default::default(),
        }
    }
}

/// Lists up to this long are scanned whole without branching ([`longest_match`]); longer
/// ones stop at the first (longest) match, which costs less than reading them all.
const BRANCH_FREE_SCAN: usize = 32;

/// The value id of the longest prefix holding `dst` among `items` (sorted longest first),
/// 0 when none does. A short list is read whole, shortest first, keeping the last match: no
/// branch depends on where the match lies (a mispredicted branch would stall the lookups that
/// follow instead of letting them overlap).
#[inline]
fn longest_match<T: Copy>(items: &[T], matches: impl Fn(T) -> Option<u32>) -> u32 {
    if items.len() > BRANCH_FREE_SCAN {
        return items.iter().find_map(|&item| matches(item)).unwrap_or(0);
    }
    items.iter().rev().fold(0, |found, &item| {
        let value = matches(item);
        std::hint::select_unpredictable(value.is_some(), value.unwrap_or(0), found)
    })
}

impl FastLists {
    /// Records the compact copy of a newly interned list.
    pub(crate) fn created(&mut self, id: ListId, slots: &[Slot]) {
        let index = Arena::<Slot>::index_of(id);
        if self.spans.len() <= index {
            self.spans.resize(index + 1, None);
        }
        let v6 = slots.first().is_some_and(|s| s.destination.addr.is_ipv6());
        let len = slots.len() as u32;
        let reused = self.free[usize::from(v6)].get_mut(&len).and_then(Vec::pop);
        let start = reused.unwrap_or(if v6 { self.v6.len() } else { self.v4.len() } as u32);
        for (i, s) in slots.iter().enumerate() {
            let key = (s.egress_ip, s.gateway_ip, s.egress_ifindex);
            let (values, verdicts, records, local) = (
                &mut self.values,
                &mut self.verdicts,
                &mut self.records,
                self.local_ipv4,
            );
            let value = *self.value_index.entry(key).or_insert_with(|| {
                values.push(key);
                let verdict = Verdict::of_value(key.0, key.1, key.2, local);
                verdicts.push(verdict);
                records.push(verdict.into());
                values.len() as u32
            });
            let (plen, addr, at) = (
                s.destination.len,
                bits(s.destination.addr),
                start as usize + i,
            );
            if v6 {
                let mask = mask_v6(plen);
                let halves = |x: u128| [(x >> 64) as u64, x as u64];
                let item = FastV6 {
                    mask: halves(mask),
                    net: halves(addr & mask),
                    value,
                };
                if at < self.v6.len() {
                    self.v6[at] = item
                } else {
                    self.v6.push(item)
                }
            } else {
                let mask = mask_v4(plen);
                let item = FastV4 {
                    mask,
                    net: addr as u32 & mask,
                    value,
                };
                if at < self.v4.len() {
                    self.v4[at] = item
                } else {
                    self.v4.push(item)
                }
            }
        }
        self.spans[index] = Some((Span { start, len }, v6));
    }

    /// Frees the place of a freed list for a later list of the same length.
    pub(crate) fn freed(&mut self, id: ListId) {
        let index = Arena::<Slot>::index_of(id);
        if let Some((span, v6)) = self.spans.get_mut(index).and_then(Option::take)
            && span.len > 0
        {
            self.free[usize::from(v6)]
                .entry(span.len)
                .or_default()
                .push(span.start);
        }
    }

    /// Sets the local node's IPv4, which decides masquerade vs forward.
    pub(crate) fn set_local_ipv4(&mut self, local: Option<Ipv4Addr>) {
        if self.local_ipv4 != local {
            self.local_ipv4 = local;
            self.verdicts = std::iter::once(Verdict::NoEntry)
                .chain(
                    self.values
                        .iter()
                        .map(|&(e, g, i)| Verdict::of_value(e, g, i, local)),
                )
                .collect();
            self.records = self.verdicts.iter().map(|&v| v.into()).collect();
        }
    }

    /// Where list `id`'s compact copy lies.
    pub(crate) fn span(&self, id: ListId) -> Span {
        self.spans
            .get(Arena::<Slot>::index_of(id))
            .copied()
            .flatten()
            .map_or(Span::EMPTY, |(s, _)| s)
    }

    /// The value id of the longest prefix holding `dst` in the IPv4 list at `span`, 0 when
    /// none does. Never allocates.
    #[inline]
    pub(crate) fn value_v4(&self, span: Span, dst: u32) -> u32 {
        let items = self.v4.get(span.range()).unwrap_or_default();
        longest_match(items, |p| (dst & p.mask == p.net).then_some(p.value))
    }

    /// [`FastLists::value_v4`] for IPv6.
    #[inline]
    pub(crate) fn value_v6(&self, span: Span, dst: u128) -> u32 {
        let items = self.v6.get(span.range()).unwrap_or_default();
        let (hi, lo) = ((dst >> 64) as u64, dst as u64);
        longest_match(items, |p| {
            let differ = (hi & p.mask[0] ^ p.net[0]) | (lo & p.mask[1] ^ p.net[1]);
            (differ == 0).then_some(p.value)
        })
    }

    /// The value id of the longest prefix holding `dst` in the list at `span` (of `dst`'s
    /// family), 0 when none does (the empty span: 0).
    #[inline]
    pub(crate) fn value(&self, span: Span, dst: IpAddr) -> u32 {
        match dst {
            IpAddr::V4(d) => self.value_v4(span, u32::from(d)),
            IpAddr::V6(d) => self.value_v6(span, u128::from(d)),
        }
    }

    /// The verdict of each value id (0: [`Verdict::NoEntry`]). A lookup copies its answer
    /// from here, never through a temporary: copying a just-built `Verdict` (a tag byte, then
    /// fields at odd offsets) reloads bytes at other widths than they were stored, a
    /// store-forwarding stall that cost more than the lookup itself.
    #[inline]
    pub(crate) fn verdicts(&self) -> &[Verdict] {
        &self.verdicts
    }

    /// [`FastLists::verdicts`] as records.
    #[inline]
    pub(crate) fn records(&self) -> &[VerdictRecord] {
        &self.records
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.spans.capacity() * size_of::<Option<(Span, bool)>>()
            + self.v4.capacity() * size_of::<FastV4>()
            + self.v6.capacity() * size_of::<FastV6>()
            + self.values.capacity() * size_of::<Value>()
            + self.verdicts.capacity() * size_of::<Verdict>()
            + self.records.capacity() * size_of::<VerdictRecord>()
            + self.value_index.capacity() * (size_of::<(Value, u32)>() + 1)
            + self
                .free
                .iter()
                .flat_map(|m| m.values())
                .map(|v| v.capacity() * 4)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both scans (whole and branch-free up to [`BRANCH_FREE_SCAN`], early exit beyond) give
    /// the first match of a longest-first list, 0 for none.
    #[test]
    fn short_and_long_lists_give_the_longest_match() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for len in [0, 1, 4, BRANCH_FREE_SCAN, BRANCH_FREE_SCAN + 1, 100] {
            // Prefix lengths from 32 down to 0 (repeating), networks of the low bits of `d`.
            let d = 0x0a0b_0c0du32;
            let items: Vec<FastV4> = (0..len)
                .map(|i| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let plen = 32 - (i * 32 / len.max(1)) as u8;
                    let mask = mask_v4(plen);
                    // Half the records hold `d`.
                    let net = if x.is_multiple_of(2) {
                        d & mask
                    } else {
                        !d & mask
                    };
                    FastV4 {
                        mask,
                        net,
                        value: i as u32 + 1,
                    }
                })
                .collect();
            let want = items
                .iter()
                .find(|p| d & p.mask == p.net)
                .map_or(0, |p| p.value);
            let got = longest_match(&items, |p| (d & p.mask == p.net).then_some(p.value));
            assert_eq!(got, want, "list of {len}");
        }
    }
}
