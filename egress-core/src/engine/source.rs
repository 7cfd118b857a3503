//! Per-source state: who contributes entries for one endpoint IP, and its two lists; kept
//! per address family with integer keys (an IPv4 source costs a 4-byte key, not 17).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::HashSet;

use super::arena::ListId;
use super::fastpath::Span;
use super::flat_table::{FlatTable, Key, Vacancy, Wide};
use super::slab::Slab;
use super::{EndpointId, PolicyId};
use crate::entries::{CidrKind, Slot};

/// A slot with what B.1 ranks it by inside its policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RankedSlot {
    pub(crate) slot: Slot,
    pub(crate) kind: CidrKind,
    pub(crate) cidr_index: u32,
}

/// One (policy, endpoint) selecting this source, with the policy's list for its gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Contribution {
    pub(crate) policy: PolicyId,
    pub(crate) endpoint: EndpointId,
    pub(crate) list: ListId,
}

/// The contributions of a source; almost always exactly one, kept inline.
#[derive(Clone, Debug, Default)]
pub(crate) enum Contributions {
    #[default]
    None,
    One(Contribution),
    Many(Vec<Contribution>),
}

impl Contributions {
    pub(crate) fn as_slice(&self) -> &[Contribution] {
        match self {
            Contributions::None => &[],
            Contributions::One(c) => std::slice::from_ref(c),
            Contributions::Many(v) => v,
        }
    }

    pub(crate) fn push(&mut self, c: Contribution) {
        *self = match std::mem::take(self) {
            Contributions::None => Contributions::One(c),
            Contributions::One(first) => Contributions::Many(vec![first, c]),
            Contributions::Many(mut v) => {
                v.push(c);
                Contributions::Many(v)
            }
        };
    }

    /// Removes one contribution matching `f`.
    pub(crate) fn remove_one(&mut self, f: impl Fn(&Contribution) -> bool) -> Option<Contribution> {
        let at = self.as_slice().iter().position(f)?;
        let (removed, rest) = match std::mem::take(self) {
            Contributions::None => return None,
            Contributions::One(c) => (c, Contributions::None),
            Contributions::Many(mut v) => {
                let c = v.swap_remove(at);
                let rest = match v.len() {
                    0 => Contributions::None,
                    1 => Contributions::One(v[0]),
                    _ => Contributions::Many(v),
                };
                (c, rest)
            }
        };
        *self = rest;
        Some(removed)
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Contributions::Many(v) => v.capacity() * size_of::<Contribution>(),
            _ => 0,
        }
    }
}

/// A read view of one endpoint IP: its contributions, the desired list (merged) and the
/// programmed list.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Source<'a> {
    pub(crate) contributions: &'a [Contribution],
    pub(crate) desired: ListId,
    pub(crate) programmed: ListId,
}

/// What the per-source table holds: 12 bytes beside a 4-byte IPv4 key, so that a lookup's
/// hash probe touches little memory; the contributions live in a side slab.
#[derive(Clone, Copy, Debug)]
struct Record {
    desired: ListId,
    programmed: ListId,
    contributions: u32,
    /// Where the desired list's compact copy lies (lookups read only this record).
    desired_span: Span,
}

/// `Record::contributions` of a vacant bucket (slab ids never reach it).
const VACANT: u32 = u32::MAX;

impl Vacancy for Record {
    const VACANT: Self = Record {
        desired: ListId::EMPTY,
        programmed: ListId::EMPTY,
        contributions: VACANT,
        desired_span: Span::EMPTY,
    };

    fn is_vacant(&self) -> bool {
        self.contributions == VACANT
    }
}

struct Family<K> {
    records: FlatTable<K, Record>,
    contributions: Slab<Contributions>,
    pending: HashSet<K>,
}

impl<K: Key> Family<K> {
    fn new() -> Self {
        Self {
            records: FlatTable::new(),
            contributions: Slab::default(),
            pending: HashSet::new(),
        }
    }

    fn view(&self, record: &Record) -> Source<'_> {
        let contributions = self
            .contributions
            .get(record.contributions)
            .map_or(&[][..], Contributions::as_slice);
        Source {
            contributions,
            desired: record.desired,
            programmed: record.programmed,
        }
    }

    fn record(&mut self, key: K) -> &mut Record {
        let contributions = &mut self.contributions;
        self.records.get_or_insert_with(key, || Record {
            desired: ListId::EMPTY,
            programmed: ListId::EMPTY,
            contributions: contributions.insert(Contributions::None),
            desired_span: Span::EMPTY,
        })
    }

    fn contributions_mut(&mut self, key: K) -> &mut Contributions {
        let id = self.record(key).contributions;
        self.contributions.slot_or_default(id)
    }

    fn remove(&mut self, key: K) {
        if let Some(record) = self.records.remove(key) {
            self.contributions.remove(record.contributions);
        }
        self.pending.remove(&key);
    }

    fn heap_bytes(&self) -> usize {
        let many: usize = self.contributions.iter().map(|(_, c)| c.heap_bytes()).sum();
        self.records.heap_bytes()
            + self.contributions.heap_bytes()
            + many
            + self.pending.capacity() * (size_of::<K>() + 1)
    }
}

/// Sources of both families, and which ones are pending (desired ≠ programmed).
pub(crate) struct SourceMap {
    v4: Family<u32>,
    v6: Family<Wide>,
}

macro_rules! by_family {
    ($self:expr, $ip:expr, |$fam:ident, $key:ident| $body:expr) => {
        match $ip {
            IpAddr::V4(a) => {
                let $fam = &$self.v4;
                let $key = u32::from(a);
                $body
            }
            IpAddr::V6(a) => {
                let $fam = &$self.v6;
                let $key = Wide::from(a);
                $body
            }
        }
    };
    (mut $self:expr, $ip:expr, |$fam:ident, $key:ident| $body:expr) => {
        match $ip {
            IpAddr::V4(a) => {
                let $fam = &mut $self.v4;
                let $key = u32::from(a);
                $body
            }
            IpAddr::V6(a) => {
                let $fam = &mut $self.v6;
                let $key = Wide::from(a);
                $body
            }
        }
    };
}

impl SourceMap {
    pub(crate) fn new() -> Self {
        Self {
            v4: Family::new(),
            v6: Family::new(),
        }
    }

    pub(crate) fn get(&self, ip: IpAddr) -> Option<Source<'_>> {
        by_family!(self, ip, |f, k| f.records.get(k).map(|r| f.view(r)))
    }

    /// Where the desired list of a source lies (the lookup's only need); the empty span for
    /// an unknown source.
    #[inline]
    pub(crate) fn desired_span(&self, ip: IpAddr) -> Span {
        match ip {
            IpAddr::V4(a) => self.desired_span_v4(a),
            IpAddr::V6(a) => self.desired_span_v6(a),
        }
    }

    /// [`SourceMap::desired_span`] of an IPv4 source.
    #[inline]
    pub(crate) fn desired_span_v4(&self, ip: Ipv4Addr) -> Span {
        let record = self.v4.records.get(u32::from(ip));
        record.map_or(Span::EMPTY, |r| r.desired_span)
    }

    /// [`SourceMap::desired_span`] of an IPv6 source.
    #[inline]
    pub(crate) fn desired_span_v6(&self, ip: Ipv6Addr) -> Span {
        let record = self.v6.records.get(Wide::from(ip));
        record.map_or(Span::EMPTY, |r| r.desired_span)
    }

    /// The contributions of a source, creating it.
    pub(crate) fn contributions_mut(&mut self, ip: IpAddr) -> &mut Contributions {
        by_family!(mut self, ip, |f, k| f.contributions_mut(k))
    }

    /// The contributions of an existing source.
    pub(crate) fn existing_contributions_mut(&mut self, ip: IpAddr) -> Option<&mut Contributions> {
        by_family!(mut self, ip, |f, k| {
            let id = f.records.get(k)?.contributions;
            f.contributions.get_mut(id)
        })
    }

    /// Sets the desired list and its place (creating the source); returns the previous list.
    pub(crate) fn set_desired(&mut self, ip: IpAddr, id: ListId, span: Span) -> ListId {
        by_family!(mut self, ip, |f, k| {
            let record = f.record(k);
            record.desired_span = span;
            std::mem::replace(&mut record.desired, id)
        })
    }

    /// Sets the programmed list (creating the source); returns the previous one.
    pub(crate) fn set_programmed(&mut self, ip: IpAddr, id: ListId) -> ListId {
        by_family!(mut self, ip, |f, k| std::mem::replace(&mut f.record(k).programmed, id))
    }

    pub(crate) fn remove(&mut self, ip: IpAddr) {
        by_family!(mut self, ip, |f, k| f.remove(k))
    }

    pub(crate) fn set_pending(&mut self, ip: IpAddr, pending: bool) {
        by_family!(mut self, ip, |f, k| {
            if pending {
                f.pending.insert(k);
            } else {
                f.pending.remove(&k);
            }
        })
    }

    /// Pending sources, IPv4 first, each family in address order.
    pub(crate) fn pending(&self) -> Vec<IpAddr> {
        fn sorted<K: Key>(f: &Family<K>) -> Vec<K> {
            let mut keys: Vec<K> = f.pending.iter().copied().collect();
            keys.sort_unstable();
            keys
        }
        let v4 = sorted(&self.v4).into_iter().map(Key::ip);
        v4.chain(sorted(&self.v6).into_iter().map(Key::ip))
            .collect()
    }

    pub(crate) fn pending_len(&self) -> usize {
        self.v4.pending.len() + self.v6.pending.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (IpAddr, Source<'_>)> {
        let v4 = self
            .v4
            .records
            .iter()
            .map(|(k, r)| (k.ip(), self.v4.view(r)));
        v4.chain(
            self.v6
                .records
                .iter()
                .map(|(k, r)| (k.ip(), self.v6.view(r))),
        )
    }

    pub(crate) fn keys(&self) -> Vec<IpAddr> {
        self.iter().map(|(ip, _)| ip).collect()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.v4.records.len() == 0 && self.v6.records.len() == 0
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.v4.heap_bytes() + self.v6.heap_bytes()
    }

    /// The record tables alone (what a lookup probes).
    pub(crate) fn record_bytes(&self) -> usize {
        self.v4.records.heap_bytes() + self.v6.records.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(policy: u32) -> Contribution {
        Contribution {
            policy,
            endpoint: 0,
            list: ListId::EMPTY,
        }
    }

    #[test]
    fn contributions_stay_inline_for_one() {
        let mut cs = Contributions::default();
        assert!(cs.as_slice().is_empty());
        cs.push(c(1));
        assert!(matches!(cs, Contributions::One(_)));
        cs.push(c(2));
        cs.push(c(3));
        assert_eq!(cs.remove_one(|x| x.policy == 2), Some(c(2)));
        assert_eq!(cs.as_slice().len(), 2);
        assert_eq!(cs.remove_one(|x| x.policy == 9), None);
        cs.remove_one(|x| x.policy == 1);
        assert!(matches!(cs, Contributions::One(_)));
        cs.remove_one(|x| x.policy == 3);
        assert!(cs.as_slice().is_empty());
    }

    #[test]
    fn families_and_pending() {
        let mut m = SourceMap::new();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.2".parse().unwrap(), "fd00::1".parse().unwrap());
        m.contributions_mut(b).push(c(1));
        assert_eq!(m.set_desired(a, ListId::EMPTY, Span::EMPTY), ListId::EMPTY);
        assert_eq!(m.get(b).unwrap().contributions.len(), 1);
        m.set_pending(b, true);
        m.set_pending(a, true);
        assert_eq!(m.pending(), vec![a, b]);
        m.set_pending(a, false);
        assert_eq!(m.pending_len(), 1);
        m.remove(b);
        assert_eq!(m.pending_len(), 0);
        assert_eq!(m.keys(), vec![a]);
        assert!(m.get(b).is_none() && m.get(a).is_some());
    }
}
