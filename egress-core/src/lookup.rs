//! The datapath decision for a (source, destination) pair (SEMANTICS A.6), answered without
//! allocation: a hash on the exact source, then a short longest-first prefix list.
//!
//! Endpoints selected by the same policy with the same gateway have identical prefix lists
//! (same CIDRs, same values); lists are stored once and shared, so memory grows with the
//! number of distinct (policy, gateway) lists rather than with endpoints × CIDRs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::HashMap;

use crate::entries::{EXCLUDED_GATEWAY, Entry, MapEntries, NO_GATEWAY};
use crate::netip::{mask_v4, mask_v6};

/// What the datapath does with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// No entry: the normal path.
    NoEntry,
    /// Dropped.
    Drop(DropReason),
    /// Excluded destination: the normal path, no SNAT.
    Excluded,
    /// Tunnelled to another node, the gateway.
    Forward {
        /// The gateway node's IPv4.
        gateway: Ipv4Addr,
    },
    /// SNATed on this node (the gateway).
    Masquerade {
        /// Source address after SNAT.
        egress_ip: IpAddr,
        /// Interface to redirect to (0: route lookup).
        ifindex: u32,
    },
}

/// Why a packet is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The policy has no gateway (gateway 0.0.0.0).
    NoGateway,
    /// This node is the gateway but has no egress IP of the family.
    NoEgressIp,
}

impl Verdict {
    /// The verdict an entry gives on the node whose IPv4 is `local_ipv4`.
    pub fn of_entry(entry: &Entry, local_ipv4: Option<Ipv4Addr>) -> Self {
        match entry.gateway_ip {
            NO_GATEWAY => Verdict::Drop(DropReason::NoGateway),
            EXCLUDED_GATEWAY => Verdict::Excluded,
            gw if Some(gw) == local_ipv4 => {
                if entry.egress_ip.is_unspecified() {
                    Verdict::Drop(DropReason::NoEgressIp)
                } else {
                    Verdict::Masquerade {
                        egress_ip: entry.egress_ip,
                        ifindex: entry.egress_ifindex,
                    }
                }
            }
            gateway => Verdict::Forward { gateway },
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Span {
    start: u32,
    len: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct PrefixV4 {
    mask: u32,
    net: u32,
    verdict: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct PrefixV6 {
    mask: u128,
    net: u128,
    verdict: u32,
}

/// Read-only lookup structure over a node's map entries.
#[derive(Clone, Debug, Default)]
pub struct LookupTable {
    v4_sources: HashMap<u32, Span>,
    v4_prefixes: Vec<PrefixV4>,
    v6_sources: HashMap<u128, Span>,
    v6_prefixes: Vec<PrefixV6>,
    verdicts: Vec<Verdict>,
}

/// Interns values and prefix lists while building.
struct Interner<P> {
    verdicts: HashMap<Verdict, u32>,
    lists: HashMap<Vec<P>, Span>,
}

impl<P: Eq + std::hash::Hash + Clone> Interner<P> {
    fn new() -> Self {
        Self {
            verdicts: HashMap::new(),
            lists: HashMap::new(),
        }
    }

    fn verdict(&mut self, v: Verdict, all: &mut Vec<Verdict>) -> u32 {
        *self.verdicts.entry(v).or_insert_with(|| {
            all.push(v);
            (all.len() - 1) as u32
        })
    }

    fn list(&mut self, list: Vec<P>, arena: &mut Vec<P>) -> Span {
        if let Some(span) = self.lists.get(&list) {
            return *span;
        }
        let span = Span {
            start: arena.len() as u32,
            len: list.len() as u32,
        };
        arena.extend_from_slice(&list);
        self.lists.insert(list, span);
        span
    }
}

impl LookupTable {
    /// Builds the table for the node whose IPv4 is `local_ipv4` (decides masquerade vs forward).
    pub fn new(maps: &MapEntries, local_ipv4: Option<Ipv4Addr>) -> Self {
        let mut table = Self::default();
        table.build_v4(&maps.ipv4, local_ipv4);
        table.build_v6(&maps.ipv6, local_ipv4);
        table
    }

    fn build_v4(&mut self, entries: &[Entry], local_ipv4: Option<Ipv4Addr>) {
        let mut interner = Interner::new();
        for (src, group) in group_by_source(entries) {
            let mut list: Vec<(u8, PrefixV4)> = Vec::with_capacity(group.len());
            for e in group {
                let IpAddr::V4(d) = e.destination.addr else {
                    continue;
                };
                let mask = mask_v4(e.destination.len);
                let verdict =
                    interner.verdict(Verdict::of_entry(e, local_ipv4), &mut self.verdicts);
                list.push((
                    e.destination.len,
                    PrefixV4 {
                        mask,
                        net: u32::from(d) & mask,
                        verdict,
                    },
                ));
            }
            list.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.net.cmp(&b.1.net)));
            let span = interner.list(
                list.into_iter().map(|(_, p)| p).collect(),
                &mut self.v4_prefixes,
            );
            if let IpAddr::V4(s) = src {
                self.v4_sources.insert(u32::from(s), span);
            }
        }
    }

    fn build_v6(&mut self, entries: &[Entry], local_ipv4: Option<Ipv4Addr>) {
        let mut interner = Interner::new();
        for (src, group) in group_by_source(entries) {
            let mut list: Vec<(u8, PrefixV6)> = Vec::with_capacity(group.len());
            for e in group {
                let IpAddr::V6(d) = e.destination.addr else {
                    continue;
                };
                let mask = mask_v6(e.destination.len);
                let verdict =
                    interner.verdict(Verdict::of_entry(e, local_ipv4), &mut self.verdicts);
                list.push((
                    e.destination.len,
                    PrefixV6 {
                        mask,
                        net: u128::from(d) & mask,
                        verdict,
                    },
                ));
            }
            list.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.net.cmp(&b.1.net)));
            let span = interner.list(
                list.into_iter().map(|(_, p)| p).collect(),
                &mut self.v6_prefixes,
            );
            if let IpAddr::V6(s) = src {
                self.v6_sources.insert(u128::from(s), span);
            }
        }
    }

    /// The verdict for a packet from `src` to `dst`; mixed families have no entry.
    #[inline]
    pub fn lookup(&self, src: IpAddr, dst: IpAddr) -> Verdict {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => self.lookup_v4(s, d),
            (IpAddr::V6(s), IpAddr::V6(d)) => self.lookup_v6(s, d),
            _ => Verdict::NoEntry,
        }
    }

    /// IPv4 lookup: exact source, then the longest matching destination prefix.
    #[inline]
    pub fn lookup_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Verdict {
        let Some(span) = self.v4_sources.get(&u32::from(src)) else {
            return Verdict::NoEntry;
        };
        let d = u32::from(dst);
        let start = span.start as usize;
        let list = self
            .v4_prefixes
            .get(start..start + span.len as usize)
            .unwrap_or(&[]);
        for p in list {
            if d & p.mask == p.net {
                return self
                    .verdicts
                    .get(p.verdict as usize)
                    .copied()
                    .unwrap_or(Verdict::NoEntry);
            }
        }
        Verdict::NoEntry
    }

    /// IPv6 lookup: exact source, then the longest matching destination prefix.
    #[inline]
    pub fn lookup_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Verdict {
        let Some(span) = self.v6_sources.get(&u128::from(src)) else {
            return Verdict::NoEntry;
        };
        let d = u128::from(dst);
        let start = span.start as usize;
        let list = self
            .v6_prefixes
            .get(start..start + span.len as usize)
            .unwrap_or(&[]);
        for p in list {
            if d & p.mask == p.net {
                return self
                    .verdicts
                    .get(p.verdict as usize)
                    .copied()
                    .unwrap_or(Verdict::NoEntry);
            }
        }
        Verdict::NoEntry
    }

    /// Number of distinct prefix-list items stored (after sharing), IPv4 and IPv6.
    pub fn stored_prefixes(&self) -> (usize, usize) {
        (self.v4_prefixes.len(), self.v6_prefixes.len())
    }
}

/// Entries grouped by source, whatever their order.
fn group_by_source(entries: &[Entry]) -> Vec<(IpAddr, Vec<&Entry>)> {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by_key(|e| e.source);
    sorted
        .chunk_by(|a, b| a.source == b.source)
        .map(|g| (g[0].source, g.to_vec()))
        .collect()
}

#[cfg(test)]
mod tests;
