//! The compact layout ([`crate::maps::Layout::Compact`], issue 27): the datapath's state as
//! endpoint sets, its kernel bytes ([`CompactElement`]) and its reference decision.
//!
//! Cilium's layout is one LPM-trie entry per (endpoint IP, destination CIDR): a policy of 20
//! CIDRs selecting 150,000 pods writes 3 M entries, and a new pod costs one write per CIDR.
//! Endpoints selected alike have identical lists, so the compact form stores each distinct
//! list once, as a *set*: each endpoint's set id, and one rule per (set id, destination)
//! with the entry's value. The datapath's decision becomes: the source's set, then the
//! longest destination prefix among that set's rules — the same verdict as Cilium's maps
//! for every flow (tested against [`crate::lookup::LookupTable`] here). A new endpoint
//! whose list already exists costs one write (its set id). On W-k8s-limits the 1,404,500
//! entries become 124,805 endpoints in 2,437 sets of 27,007 rules.
//!
//! Endpoints are held in *blocks* of [`BLOCK`] consecutive addresses (aligned: the low
//! three bits zero), one hash element per block holding its addresses' set ids (0: no
//! endpoint). Pod addresses come from per-node ranges, so a block holds several endpoints
//! and the hash's per-element overhead (about 56 bytes in the kernel) is paid once for
//! them.
//!
//! Sets are per address family (an IPv4 source's rules hold IPv4 destinations). Set ids
//! are numbered from 1 in the order of the sources (address order), so that the same
//! entries always give the same form.
//!
//! The kernel's maps, per family (`include/egress_gateway.h` and egress-bpf's
//! `bpf/cilium_egress_maps.h` declare them; all addresses in network order):
//! - `egress_gw_compact_endpoints_v4`/`_v6`: `BPF_MAP_TYPE_HASH`, key a block's first
//!   address (4 or 16 bytes), value its [`BLOCK`] addresses' set ids (`u32` each,
//!   native-endian; 0 for an address that is no endpoint);
//! - `egress_gw_compact_rules_v4`/`_v6`: `BPF_MAP_TYPE_LPM_TRIE`, key [`RuleKeyV4`]/
//!   [`RuleKeyV6`] (`u32 prefixlen = 32 + destination length; be32 set; destination`),
//!   value Cilium's `_v4_v2`/IPv6 value ([`MapValueV4`]/[`MapValueV6`], with the ifindex).
//!
//! The datapath looks up the source's block (its address with the low three bits cleared),
//! takes the set id at the source's index in it (the low three bits), then looks up
//! `{prefixlen: 32 + 32 (or 128), set, dst}` in the rule trie: the longest destination
//! prefix of that set only.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::entries::{Entry, MapEntries, Slot};
use crate::lookup::Verdict;
use crate::maps::{DecodeError, MapId, MapValueV4, MapValueV6, check_len, take};
pub use crate::maps::{RuleKey, RuleKeyV4, RuleKeyV6};
use crate::netip::Cidr;

/// Addresses per endpoint block.
pub const BLOCK: usize = 8;

/// The block holding `ip`: its first address, and `ip`'s index in it.
pub fn block_of(ip: IpAddr) -> (IpAddr, usize) {
    match ip {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            (
                IpAddr::V4(Ipv4Addr::from(bits & !(BLOCK as u32 - 1))),
                (bits as usize) & (BLOCK - 1),
            )
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            (
                IpAddr::V6(Ipv6Addr::from(bits & !(BLOCK as u128 - 1))),
                (bits as usize) & (BLOCK - 1),
            )
        }
    }
}

/// The address at `index` of the block starting at `base`.
pub fn block_address(base: IpAddr, index: usize) -> IpAddr {
    match base {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) | index as u32)),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) | index as u128)),
    }
}

/// One element of the compact layout's maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompactElement {
    /// An endpoint hash element: a block of addresses and each one's set.
    Block {
        /// The block's first address (the low three bits zero).
        base: IpAddr,
        /// Each address's set (0: no endpoint).
        sets: [u32; BLOCK],
    },
    /// A rule trie element: the set, the destination and Cilium's value.
    Rule {
        /// The set (from 1).
        set: u32,
        /// The destination and value.
        slot: Slot,
    },
}

/// The value of an endpoint block: [`BLOCK`] set ids.
pub const BLOCK_VALUE_SIZE: usize = 4 * BLOCK;

/// The largest key of the compact maps (the IPv6 rule key).
pub const MAX_KEY_SIZE: usize = RuleKeyV6::SIZE;
/// The largest value of the compact maps (the IPv6 value).
pub const MAX_VALUE_SIZE: usize = MapValueV6::SIZE;

impl CompactElement {
    /// The map that holds it.
    pub fn map(&self) -> MapId {
        match self {
            CompactElement::Block { base, .. } if base.is_ipv4() => MapId::CompactEndpointsV4,
            CompactElement::Block { .. } => MapId::CompactEndpointsV6,
            CompactElement::Rule { slot, .. } if slot.destination.addr.is_ipv4() => {
                MapId::CompactRulesV4
            }
            CompactElement::Rule { .. } => MapId::CompactRulesV6,
        }
    }

    /// The sets it names: a block's endpoints' (0s left out), a rule's set.
    pub fn sets(&self) -> impl Iterator<Item = u32> + '_ {
        let (block, rule) = match self {
            CompactElement::Block { sets, .. } => (&sets[..], None),
            CompactElement::Rule { set, .. } => (&[][..], Some(*set)),
        };
        block.iter().copied().filter(|&s| s != 0).chain(rule)
    }

    /// A block's endpoints with their sets (none for a rule).
    pub fn endpoints(&self) -> impl Iterator<Item = (IpAddr, u32)> + '_ {
        let block = match self {
            CompactElement::Block { base, sets } => Some((*base, sets)),
            CompactElement::Rule { .. } => None,
        };
        block.into_iter().flat_map(|(base, sets)| {
            sets.iter()
                .enumerate()
                .filter(|(_, s)| **s != 0)
                .map(move |(i, &s)| (block_address(base, i), s))
        })
    }

    /// Writes its key into `out` ([`MapId::key_size`] of [`CompactElement::map`] bytes);
    /// returns the length.
    pub fn encode_key(&self, out: &mut [u8; MAX_KEY_SIZE]) -> usize {
        match *self {
            CompactElement::Block {
                base: IpAddr::V4(a),
                ..
            } => {
                out[..4].copy_from_slice(&a.octets());
                4
            }
            CompactElement::Block {
                base: IpAddr::V6(a),
                ..
            } => {
                out[..16].copy_from_slice(&a.octets());
                16
            }
            CompactElement::Rule { set, slot } => match slot.destination.addr {
                IpAddr::V4(d) => {
                    let key = RuleKeyV4::new(set, d, slot.destination.len);
                    key.encode(&mut out[..RuleKeyV4::SIZE]);
                    RuleKeyV4::SIZE
                }
                IpAddr::V6(d) => {
                    let key = RuleKeyV6::new(set, d, slot.destination.len);
                    key.encode(&mut out[..RuleKeyV6::SIZE]);
                    RuleKeyV6::SIZE
                }
            },
        }
    }

    /// Writes its value into `out`; returns the length. A rule's egress IP of the other
    /// family than its destination is written as unspecified (a slot never holds one).
    pub fn encode_value(&self, out: &mut [u8; MAX_VALUE_SIZE]) -> usize {
        match *self {
            CompactElement::Block { sets, .. } => {
                for (i, set) in sets.iter().enumerate() {
                    out[4 * i..4 * i + 4].copy_from_slice(&set.to_ne_bytes());
                }
                BLOCK_VALUE_SIZE
            }
            CompactElement::Rule { slot, .. } => match slot.destination.addr {
                IpAddr::V4(_) => {
                    let egress = match slot.egress_ip {
                        IpAddr::V4(a) => a,
                        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
                    };
                    MapValueV4::new(egress, slot.gateway_ip, slot.egress_ifindex)
                        .encode(out.first_chunk_mut().unwrap_or_else(|| unreachable!()));
                    MapValueV4::SIZE
                }
                IpAddr::V6(_) => {
                    let egress = match slot.egress_ip {
                        IpAddr::V6(a) => a,
                        IpAddr::V4(_) => Ipv6Addr::UNSPECIFIED,
                    };
                    MapValueV6::new(egress, slot.gateway_ip, slot.egress_ifindex).encode(out);
                    MapValueV6::SIZE
                }
            },
        }
    }

    /// Reads one element of a compact map from the kernel's bytes.
    pub fn decode(map: MapId, key: &[u8], value: &[u8]) -> Result<Self, DecodeError> {
        let block = |base: IpAddr, value: &[u8]| {
            check_len(value, BLOCK_VALUE_SIZE)?;
            if block_of(base).1 != 0 {
                return Err(DecodeError::BlockBase(base));
            }
            let sets: [u32; BLOCK] =
                std::array::from_fn(|i| u32::from_ne_bytes(take(value, 4 * i)));
            if sets.iter().all(|&s| s == 0) {
                return Err(DecodeError::SetZero);
            }
            Ok(CompactElement::Block { base, sets })
        };
        let rule = |set, prefixlen: u32, addr, egress_ip, gateway: [u8; 4], egress_ifindex| {
            CompactElement::Rule {
                set,
                slot: Slot {
                    // The key's decode checked prefixlen - 32 against the address's width.
                    destination: Cidr {
                        addr,
                        len: (prefixlen - 32) as u8,
                    },
                    egress_ip,
                    gateway_ip: Ipv4Addr::from(gateway),
                    egress_ifindex,
                },
            }
        };
        match map {
            MapId::CompactEndpointsV4 => {
                check_len(key, 4)?;
                block(IpAddr::V4(Ipv4Addr::from(take::<4>(key, 0))), value)
            }
            MapId::CompactEndpointsV6 => {
                check_len(key, 16)?;
                block(IpAddr::V6(Ipv6Addr::from(take::<16>(key, 0))), value)
            }
            MapId::CompactRulesV4 => {
                let (k, v) = (RuleKeyV4::decode(key)?, MapValueV4::decode(value)?);
                let (dst, egress) = (Ipv4Addr::from(k.daddr), Ipv4Addr::from(v.egress_ip));
                Ok(rule(
                    k.set,
                    k.prefixlen,
                    dst.into(),
                    egress.into(),
                    v.gateway_ip,
                    v.egress_ifindex,
                ))
            }
            MapId::CompactRulesV6 => {
                let (k, v) = (RuleKeyV6::decode(key)?, MapValueV6::decode(value)?);
                let (dst, egress) = (Ipv6Addr::from(k.daddr), Ipv6Addr::from(v.egress_ip));
                Ok(rule(
                    k.set,
                    k.prefixlen,
                    dst.into(),
                    egress.into(),
                    v.gateway_ip,
                    v.egress_ifindex,
                ))
            }
            cilium => Err(DecodeError::NotCompact(cilium)),
        }
    }
}

/// The entries compact elements give: each endpoint joined with its set's rules, what
/// Cilium's maps would hold for the same decisions (an endpoint whose set has no rule has
/// none: its traffic follows no policy, as a source without entries).
pub fn entries_of(elements: impl IntoIterator<Item = CompactElement>) -> MapEntries {
    let mut rules: HashMap<u32, Vec<Slot>> = HashMap::new();
    let mut endpoints = Vec::new();
    for e in elements {
        match e {
            CompactElement::Block { .. } => endpoints.extend(e.endpoints()),
            CompactElement::Rule { set, slot } => rules.entry(set).or_default().push(slot),
        }
    }
    let mut entries = Vec::new();
    for (ip, set) in endpoints {
        for slot in rules.get(&set).map_or(&[][..], Vec::as_slice) {
            // A rule of the other family than the endpoint is never looked up.
            if slot.destination.addr.is_ipv4() == ip.is_ipv4() {
                entries.push(slot.entry(ip));
            }
        }
    }
    MapEntries::from_entries(entries)
}

/// One rule: a set's destination and the value Cilium's entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactRule {
    /// The set (from 1).
    pub set: u32,
    /// The destination and value, as in the entries the set was made of.
    pub slot: Slot,
}

/// The compact form of a node's entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactMaps {
    /// Each source's set id, in address order (IPv4 first): the endpoint hash.
    pub endpoints: Vec<(IpAddr, u32)>,
    /// The sets' rules, by set id, each set's rules longest prefix first: the rule trie.
    pub rules: Vec<CompactRule>,
    /// Where each set's rules start in `rules` (index `set - 1`), and the end.
    starts: Vec<usize>,
}

impl CompactMaps {
    /// The compact form of `maps`: one set per distinct list of (destination, value) among
    /// the sources.
    pub fn from_entries(maps: &MapEntries) -> Self {
        let mut lists: BTreeMap<IpAddr, Vec<Slot>> = BTreeMap::new();
        for e in maps.iter() {
            lists.entry(e.source).or_default().push(slot(e));
        }
        let mut ids: HashMap<Vec<Slot>, u32> = HashMap::new();
        let mut form = CompactMaps::default();
        for (source, mut list) in lists {
            // Longest prefix first, then a fixed order, so that equal lists compare equal.
            list.sort_by_key(|s| {
                let d = s.destination;
                (
                    Reverse(d.len),
                    d.addr,
                    s.egress_ip,
                    s.gateway_ip,
                    s.egress_ifindex,
                )
            });
            let next = ids.len() as u32 + 1;
            let set = *ids.entry(list.clone()).or_insert_with(|| {
                form.starts.push(form.rules.len());
                form.rules
                    .extend(list.iter().map(|&slot| CompactRule { set: next, slot }));
                next
            });
            form.endpoints.push((source, set));
        }
        form.starts.push(form.rules.len());
        form
    }

    /// Number of sets.
    pub fn sets(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// Kernel elements the form takes: one per endpoint block, one per rule.
    pub fn entry_count(&self) -> usize {
        self.blocks().len() + self.rules.len()
    }

    /// The endpoint blocks, in address order.
    pub fn blocks(&self) -> Vec<CompactElement> {
        let mut blocks: Vec<CompactElement> = Vec::new();
        for &(ip, set) in &self.endpoints {
            let (base, index) = block_of(ip);
            match blocks.last_mut() {
                Some(CompactElement::Block { base: b, sets }) if *b == base => sets[index] = set,
                _ => {
                    let mut sets = [0; BLOCK];
                    sets[index] = set;
                    blocks.push(CompactElement::Block { base, sets });
                }
            }
        }
        blocks
    }

    /// Every element of the form: the endpoint blocks, then the rules.
    pub fn elements(&self) -> impl Iterator<Item = CompactElement> + '_ {
        let rules = self.rules.iter().map(|r| CompactElement::Rule {
            set: r.set,
            slot: r.slot,
        });
        self.blocks().into_iter().chain(rules)
    }

    /// The rules of `set`.
    pub fn set_rules(&self, set: u32) -> &[CompactRule] {
        let i = set as usize;
        match (self.starts.get(i.wrapping_sub(1)), self.starts.get(i)) {
            (Some(&start), Some(&end)) if i > 0 => &self.rules[start..end],
            _ => &[],
        }
    }

    /// The datapath's decision for a packet from `src` to `dst` on the node whose IPv4 is
    /// `local_ipv4`: the source's set, then its longest prefix holding `dst`.
    pub fn lookup(&self, src: IpAddr, dst: IpAddr, local_ipv4: Option<Ipv4Addr>) -> Verdict {
        if src.is_ipv4() != dst.is_ipv4() {
            return Verdict::NoEntry;
        }
        let Ok(at) = self.endpoints.binary_search_by(|(ip, _)| ip.cmp(&src)) else {
            return Verdict::NoEntry;
        };
        let set = self.endpoints[at].1;
        self.set_rules(set)
            .iter()
            .find(|r| r.slot.destination.contains(dst))
            .map_or(Verdict::NoEntry, |r| {
                Verdict::of_value(
                    r.slot.egress_ip,
                    r.slot.gateway_ip,
                    r.slot.egress_ifindex,
                    local_ipv4,
                )
            })
    }
}

fn slot(e: &Entry) -> Slot {
    Slot {
        destination: e.destination,
        egress_ip: e.egress_ip,
        gateway_ip: e.gateway_ip,
        egress_ifindex: e.egress_ifindex,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lookup::LookupTable;
    use crate::netip::{Cidr, mask_v4, mask_v6};
    use std::net::Ipv6Addr;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn cidr(rng: &mut Rng, v6: bool) -> Cidr {
        if v6 {
            let len = rng.below(129) as u8;
            let bits = (u128::from(rng.next()) << 64 | u128::from(rng.next())) & mask_v6(len);
            Cidr {
                addr: IpAddr::V6(Ipv6Addr::from(bits)),
                len,
            }
        } else {
            let len = rng.below(33) as u8;
            Cidr {
                addr: IpAddr::V4(Ipv4Addr::from(rng.next() as u32 & mask_v4(len))),
                len,
            }
        }
    }

    /// Random entries where sources share a few lists (as endpoints selected alike do) or
    /// have their own, and random flows (known and unknown sources, destinations inside the
    /// rules or anywhere): the compact form answers as Cilium's entries do.
    #[test]
    fn the_compact_form_answers_as_cilium_entries_for_random_flows() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let local = Ipv4Addr::new(172, 22, 0, 1);
        for round in 0..20 {
            let v6 = round % 2 == 1;
            let values = [
                (IpAddr::V4(Ipv4Addr::new(43, 0, 0, 1)), local, 3),
                (
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    Ipv4Addr::new(172, 22, 0, 2),
                    0,
                ),
                (
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    Ipv4Addr::new(0, 0, 0, 1),
                    0,
                ),
                (IpAddr::V4(Ipv4Addr::UNSPECIFIED), Ipv4Addr::UNSPECIFIED, 0),
            ];
            let list = |rng: &mut Rng| -> Vec<Slot> {
                let mut slots: Vec<Slot> = Vec::new();
                for _ in 0..1 + rng.below(12) {
                    let destination = cidr(rng, v6);
                    // One value per prefix in a list, as the maps hold one entry per key.
                    if slots.iter().all(|s| s.destination != destination) {
                        let (egress_ip, gateway_ip, egress_ifindex) = values[rng.below(4) as usize];
                        slots.push(Slot {
                            destination,
                            egress_ip,
                            gateway_ip,
                            egress_ifindex,
                        });
                    }
                }
                slots
            };
            let shared: Vec<Vec<Slot>> = (0..3).map(|_| list(&mut rng)).collect();
            let source = |i: u64| -> IpAddr {
                if v6 {
                    IpAddr::V6(Ipv6Addr::from(0xfd00u128 << 112 | u128::from(i)))
                } else {
                    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32))
                }
            };
            let mut entries = Vec::new();
            for i in 0..60 {
                let slots = if i % 4 == 3 {
                    list(&mut rng)
                } else {
                    shared[rng.below(3) as usize].clone()
                };
                entries.extend(slots.iter().map(|s| s.entry(source(i))));
            }
            let maps = MapEntries::from_entries(entries);
            let form = CompactMaps::from_entries(&maps);
            assert!(form.sets() <= 3 + 15, "{} sets", form.sets());
            assert_eq!(form.endpoints.len(), 60);
            let table = LookupTable::new(&maps, Some(local));
            let destinations: Vec<Cidr> = form.rules.iter().map(|r| r.slot.destination).collect();
            for _ in 0..4_000 {
                let src = source(rng.below(70));
                let dst = if rng.below(2) == 0 {
                    let c = destinations[rng.below(destinations.len() as u64) as usize];
                    let inside = cidr(&mut rng, v6);
                    match (c.addr, inside.addr) {
                        (IpAddr::V4(a), IpAddr::V4(r)) => IpAddr::V4(Ipv4Addr::from(
                            u32::from(a) & mask_v4(c.len) | u32::from(r) & !mask_v4(c.len),
                        )),
                        (IpAddr::V6(a), IpAddr::V6(r)) => IpAddr::V6(Ipv6Addr::from(
                            u128::from(a) & mask_v6(c.len) | u128::from(r) & !mask_v6(c.len),
                        )),
                        _ => unreachable!("one family per round"),
                    }
                } else {
                    cidr(&mut rng, v6).addr
                };
                assert_eq!(
                    form.lookup(src, dst, Some(local)),
                    table.lookup(src, dst),
                    "round {round}: {src} -> {dst}"
                );
            }
        }
    }

    #[test]
    fn endpoints_selected_alike_share_one_set() {
        let slot = |c: &str| Slot {
            destination: crate::netip::parse_prefix(c).unwrap(),
            egress_ip: IpAddr::V4(Ipv4Addr::new(43, 0, 0, 1)),
            gateway_ip: Ipv4Addr::new(172, 22, 0, 2),
            egress_ifindex: 0,
        };
        let list = [slot("1.0.0.0/8"), slot("2.0.0.0/16"), slot("3.3.0.0/24")];
        let mut entries = Vec::new();
        for i in 1..=100u8 {
            // Listed in another order per endpoint: still one set.
            let mut mine = list.to_vec();
            mine.rotate_left(usize::from(i) % 3);
            entries.extend(
                mine.iter()
                    .map(|s| s.entry(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)))),
            );
        }
        let form = CompactMaps::from_entries(&MapEntries::from_entries(entries));
        assert_eq!(form.sets(), 1);
        // 10.0.0.1-100: 13 blocks of 8 addresses (the first from .0), and the set's 3 rules.
        assert_eq!(form.entry_count(), 13 + 3, "was 300 entries");
        assert_eq!(form.set_rules(1).len(), 3);
        assert!(form.set_rules(0).is_empty() && form.set_rules(2).is_empty());
        // Longest first.
        assert_eq!(form.set_rules(1)[0].slot.destination.len, 24);
    }

    /// Blocks: an address's block and index, back; the kernel bytes round trip; a key that is
    /// not a block's first address, or a block with no endpoint, is refused.
    #[test]
    fn endpoint_blocks_round_trip_and_refuse_what_no_block_is() {
        for ip in ["10.1.2.13", "fd00::2a"] {
            let ip: IpAddr = ip.parse().unwrap();
            let (base, index) = block_of(ip);
            assert_eq!(block_address(base, index), ip);
            assert_eq!(block_of(base), (base, 0));
            let mut sets = [0; BLOCK];
            sets[index] = 7;
            let element = CompactElement::Block { base, sets };
            assert_eq!(element.endpoints().collect::<Vec<_>>(), [(ip, 7)]);
            let (mut key, mut value) = ([0; MAX_KEY_SIZE], [0; MAX_VALUE_SIZE]);
            let (k, v) = (
                element.encode_key(&mut key),
                element.encode_value(&mut value),
            );
            assert_eq!((k, v), (element.map().key_size(), BLOCK_VALUE_SIZE));
            assert_eq!(
                CompactElement::decode(element.map(), &key[..k], &value[..v]),
                Ok(element)
            );
            let mut unaligned = key;
            unaligned[k - 1] |= 1;
            assert!(matches!(
                CompactElement::decode(element.map(), &unaligned[..k], &value[..v]),
                Err(DecodeError::BlockBase(_))
            ));
            assert_eq!(
                CompactElement::decode(element.map(), &key[..k], &[0; BLOCK_VALUE_SIZE]),
                Err(DecodeError::SetZero)
            );
        }
    }
}
