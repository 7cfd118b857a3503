//! Compact, contiguous copies of the desired entry lists, for `Engine::lookup`.
//!
//! The interned lists hold full `Slot`s behind one allocation each; a lookup wants the
//! shortest possible walk: one hash probe on the source, then a few adjacent
//! (mask, network, value) records. Lists are immutable once interned, so their compact copy
//! is made once when a list is created and dropped when it is freed; the storage is
//! compacted when more than half of it is dead. Values (egress IP, gateway IP, ifindex) are
//! few and stored once; that table only grows, bounded by the distinct gateway settings.

use std::net::{IpAddr, Ipv4Addr};

use hashbrown::HashMap;

use super::arena::{Arena, ListId};
use crate::entries::Slot;
use crate::lookup::Verdict;
use crate::netip::{mask_v4, mask_v6};

#[derive(Clone, Copy, Debug)]
struct Span {
    start: u32,
    len: u32,
    v6: bool,
}

#[derive(Clone, Copy, Debug)]
struct FastV4 {
    mask: u32,
    net: u32,
    value: u32,
}

#[derive(Clone, Copy, Debug)]
struct FastV6 {
    mask: u128,
    net: u128,
    value: u32,
}

/// An entry's value: egress IP, gateway IP, ifindex.
type Value = (IpAddr, Ipv4Addr, u32);

/// The compact lists, indexed like the slot arena.
#[derive(Default)]
pub(crate) struct FastLists {
    spans: Vec<Option<Span>>,
    v4: Vec<FastV4>,
    v6: Vec<FastV6>,
    values: Vec<Value>,
    value_index: HashMap<Value, u32>,
    dead: [usize; 2],
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

impl FastLists {
    /// Records the compact copy of a newly interned list.
    pub(crate) fn created(&mut self, id: ListId, slots: &[Slot]) {
        let index = Arena::<Slot>::index_of(id);
        if self.spans.len() <= index {
            self.spans.resize(index + 1, None);
        }
        let v6 = slots.first().is_some_and(|s| s.destination.addr.is_ipv6());
        let start = if v6 { self.v6.len() } else { self.v4.len() };
        for s in slots {
            let key = (s.egress_ip, s.gateway_ip, s.egress_ifindex);
            let values = &mut self.values;
            let value = *self.value_index.entry(key).or_insert_with(|| {
                values.push(key);
                (values.len() - 1) as u32
            });
            let (len, addr) = (s.destination.len, bits(s.destination.addr));
            if v6 {
                let mask = mask_v6(len);
                self.v6.push(FastV6 {
                    mask,
                    net: addr & mask,
                    value,
                });
            } else {
                let mask = mask_v4(len);
                self.v4.push(FastV4 {
                    mask,
                    net: addr as u32 & mask,
                    value,
                });
            }
        }
        self.spans[index] = Some(Span {
            start: start as u32,
            len: slots.len() as u32,
            v6,
        });
    }

    /// Drops the compact copy of a freed list; compacts when half the storage is dead.
    pub(crate) fn freed(&mut self, id: ListId) {
        let index = Arena::<Slot>::index_of(id);
        if let Some(span) = self.spans.get_mut(index).and_then(Option::take) {
            self.dead[usize::from(span.v6)] += span.len as usize;
        }
        if self.dead[0] > 1024 + self.v4.len() / 2 || self.dead[1] > 1024 + self.v6.len() / 2 {
            self.compact();
        }
    }

    fn compact(&mut self) {
        let (old_v4, old_v6) = (std::mem::take(&mut self.v4), std::mem::take(&mut self.v6));
        for span in self.spans.iter_mut().flatten() {
            let (start, len) = (span.start as usize, span.len as usize);
            let new_start = if span.v6 {
                self.v6.extend_from_slice(&old_v6[start..start + len]);
                self.v6.len() - len
            } else {
                self.v4.extend_from_slice(&old_v4[start..start + len]);
                self.v4.len() - len
            };
            span.start = new_start as u32;
        }
        self.dead = [0, 0];
    }

    /// The verdict of the longest prefix of list `id` containing `dst`. Never allocates.
    #[inline]
    pub(crate) fn lookup(&self, id: ListId, dst: IpAddr, local_ipv4: Option<Ipv4Addr>) -> Verdict {
        let Some(Some(span)) = self.spans.get(Arena::<Slot>::index_of(id)) else {
            return Verdict::NoEntry;
        };
        let range = span.start as usize..(span.start + span.len) as usize;
        let value = match dst {
            IpAddr::V4(d) if !span.v6 => {
                let d = u32::from(d);
                self.v4
                    .get(range)
                    .and_then(|items| items.iter().find(|p| d & p.mask == p.net))
                    .map(|p| p.value)
            }
            IpAddr::V6(d) if span.v6 => {
                let d = u128::from(d);
                self.v6
                    .get(range)
                    .and_then(|items| items.iter().find(|p| d & p.mask == p.net))
                    .map(|p| p.value)
            }
            _ => None,
        };
        match value.and_then(|v| self.values.get(v as usize)) {
            Some(&(egress, gateway, ifindex)) => {
                Verdict::of_value(egress, gateway, ifindex, local_ipv4)
            }
            None => Verdict::NoEntry,
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.spans.capacity() * size_of::<Option<Span>>()
            + self.v4.capacity() * size_of::<FastV4>()
            + self.v6.capacity() * size_of::<FastV6>()
            + self.values.capacity() * size_of::<Value>()
            + self.value_index.capacity() * (size_of::<(Value, u32)>() + 1)
    }
}
