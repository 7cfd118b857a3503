//! What the local node writes (SEMANTICS A.5), with deterministic conflict resolution (B.1).
//!
//! [`compute`] is the batch path — all policies × all endpoints from scratch. It is kept
//! simple on purpose: it is the equality reference every faster path is tested against.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::cluster::{Endpoint, Nodes};
use crate::device::Device;
use crate::gateway::{LocalNode, PolicyGateways, ResolvedGateway};
use crate::labels::Labels;
use crate::maps::{
    DecodeError, MapId, MapKeyV4, MapKeyV6, MapValueV4, MapValueV4Legacy, MapValueV6,
};
use crate::netip::{Cidr, mask_v4, mask_v6};
use crate::policy::{Policy, PolicySelectors};
use crate::version::{CiliumVersion, Rules};

/// The most entries (both families) egressctl computes for one node unless asked for more
/// (`--max-output-entries`): 4,194,304, 256 times Cilium's default map capacity. Entries
/// are each selected pod address times its policies' CIDRs, so a valid input of 640 KB can
/// ask for tens of millions; [`count`] finds how many before any is built.
pub const OUTPUT_BUDGET: usize = 1 << 22;

/// Gateway IP meaning "excluded destination: skip the egress gateway".
pub const EXCLUDED_GATEWAY: Ipv4Addr = Ipv4Addr::new(0, 0, 0, 1);
/// Gateway IP meaning "no gateway: drop".
pub const NO_GATEWAY: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

/// One map entry: key (source, destination CIDR as stored) and value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// Endpoint IP (exact source).
    pub source: IpAddr,
    /// Destination prefix, address as stored (host bits kept).
    pub destination: Cidr,
    /// Egress IP of the source's family (unspecified = none).
    pub egress_ip: IpAddr,
    /// Gateway IPv4 (`0.0.0.0` no gateway, `0.0.0.1` excluded).
    pub gateway_ip: Ipv4Addr,
    /// Egress interface index (0 = route lookup).
    pub egress_ifindex: u32,
}

/// An entry without its source: what one (policy, gateway) writes for every source of a
/// family, and what the engine stores once per distinct list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Slot {
    /// Destination prefix as stored.
    pub destination: Cidr,
    /// Egress IP.
    pub egress_ip: IpAddr,
    /// Gateway IPv4.
    pub gateway_ip: Ipv4Addr,
    /// Egress interface index.
    pub egress_ifindex: u32,
}

impl Slot {
    /// The entry this slot makes for `source`.
    pub fn entry(&self, source: IpAddr) -> Entry {
        Entry {
            source,
            destination: self.destination,
            egress_ip: self.egress_ip,
            gateway_ip: self.gateway_ip,
            egress_ifindex: self.egress_ifindex,
        }
    }

    /// The destination's prefix length and network bits (the key identity for one source).
    pub fn network(&self) -> (u8, u128) {
        network_of(&self.destination)
    }
}

impl From<&Entry> for Slot {
    fn from(e: &Entry) -> Self {
        Self {
            destination: e.destination,
            egress_ip: e.egress_ip,
            gateway_ip: e.gateway_ip,
            egress_ifindex: e.egress_ifindex,
        }
    }
}

/// What `policy` writes for a source of the family (`v4`) whose endpoint uses `gateway`
/// (SEMANTICS A.5): each destination CIDR of the family, then each excluded one, with the
/// CIDR's kind and index in its list. The ifindex is what `version`'s map of the family
/// stores (CILIUM-VERSIONS.md §5: none in 1.18, IPv6 only in 1.19).
pub fn policy_slots<'a>(
    policy: &'a Policy,
    gateway: &'a ResolvedGateway,
    v4: bool,
    version: CiliumVersion,
) -> impl Iterator<Item = (CidrKind, usize, Slot)> + 'a {
    let stored = |ifindex: u32| {
        if version.stores_ifindex(v4) {
            ifindex
        } else {
            0
        }
    };
    let (egress_ip, gateway_ip, egress_ifindex) = match (&gateway.egress, &gateway.node) {
        (Some(egress), _) => (egress.ip(v4), gateway.gateway_ip, stored(egress.ifindex)),
        (None, Some(_)) => (unspecified(v4), gateway.gateway_ip, 0),
        (None, None) => (unspecified(v4), NO_GATEWAY, 0),
    };
    let lists = [
        (CidrKind::Destination, &policy.destination_cidrs, gateway_ip),
        // Excluded entries share the destination entries' egress IP and ifindex.
        (CidrKind::Excluded, &policy.excluded_cidrs, EXCLUDED_GATEWAY),
    ];
    lists
        .into_iter()
        .flat_map(move |(kind, cidrs, gateway_ip)| {
            cidrs
                .iter()
                .enumerate()
                .filter(move |(_, c)| c.is_ipv4() == v4)
                .map(move |(i, c)| {
                    (
                        kind,
                        i,
                        Slot {
                            destination: *c,
                            egress_ip,
                            gateway_ip,
                            egress_ifindex,
                        },
                    )
                })
        })
}

/// The kernel's identity of a key: family, source, prefix length, masked destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyIdentity {
    /// Whether the key is IPv6.
    pub ipv6: bool,
    /// Source address bits.
    pub source: u128,
    /// Destination prefix length.
    pub len: u8,
    /// Destination with host bits cleared.
    pub network: u128,
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a).into(),
        IpAddr::V6(a) => a.into(),
    }
}

impl Entry {
    /// The key's identity under the kernel's rules (host bits ignored).
    pub fn identity(&self) -> KeyIdentity {
        let network = match self.destination.addr {
            IpAddr::V4(a) => u128::from(u32::from(a) & mask_v4(self.destination.len)),
            IpAddr::V6(a) => u128::from(a) & mask_v6(self.destination.len),
        };
        KeyIdentity {
            ipv6: self.source.is_ipv6(),
            source: bits(self.source),
            len: self.destination.len,
            network,
        }
    }

    /// Output order: source, then destination address, then prefix length, numerically.
    pub fn display_order(&self, other: &Self) -> Ordering {
        (
            bits(self.source),
            bits(self.destination.addr),
            self.destination.len,
        )
            .cmp(&(
                bits(other.source),
                bits(other.destination.addr),
                other.destination.len,
            ))
    }

    /// Encodes an IPv4 entry for the `v4_v2` map (`None` for an IPv6 entry).
    pub fn to_map_v4(&self) -> Option<(MapKeyV4, MapValueV4)> {
        let (IpAddr::V4(src), IpAddr::V4(dst), IpAddr::V4(egress)) =
            (self.source, self.destination.addr, self.egress_ip)
        else {
            return None;
        };
        Some((
            MapKeyV4::new(src, dst, self.destination.len),
            MapValueV4::new(egress, self.gateway_ip, self.egress_ifindex),
        ))
    }

    /// Encodes an IPv4 entry for the legacy map (the ifindex cannot be stored).
    pub fn to_map_v4_legacy(&self) -> Option<(MapKeyV4, MapValueV4Legacy)> {
        self.to_map_v4().map(|(k, v)| {
            (
                k,
                MapValueV4Legacy {
                    egress_ip: v.egress_ip,
                    gateway_ip: v.gateway_ip,
                },
            )
        })
    }

    /// Encodes an IPv6 entry (`None` for an IPv4 entry).
    pub fn to_map_v6(&self) -> Option<(MapKeyV6, MapValueV6)> {
        let (IpAddr::V6(src), IpAddr::V6(dst), IpAddr::V6(egress)) =
            (self.source, self.destination.addr, self.egress_ip)
        else {
            return None;
        };
        Some((
            MapKeyV6::new(src, dst, self.destination.len),
            MapValueV6::new(egress, self.gateway_ip, self.egress_ifindex),
        ))
    }

    /// Decodes one element of `map` (the key and value bytes exactly as the kernel holds
    /// them). A legacy IPv4 value stores no ifindex: the entry's is 0.
    pub fn decode(map: MapId, key: &[u8], value: &[u8]) -> Result<Self, DecodeError> {
        match map {
            MapId::V6 => Ok(Self::from_map_v6(
                &MapKeyV6::decode(key)?,
                &MapValueV6::decode(value)?,
            )),
            MapId::V4 => Ok(Self::from_map_v4(
                &MapKeyV4::decode(key)?,
                &MapValueV4::decode(value)?,
            )),
            MapId::V4Legacy => {
                let key = MapKeyV4::decode(key)?;
                let legacy = MapValueV4Legacy::decode(value)?;
                let value = MapValueV4 {
                    egress_ip: legacy.egress_ip,
                    gateway_ip: legacy.gateway_ip,
                    ..MapValueV4::default()
                };
                Ok(Self::from_map_v4(&key, &value))
            }
            compact => Err(DecodeError::NotEntries(compact)),
        }
    }

    /// Decodes a `v4_v2` map element.
    pub fn from_map_v4(key: &MapKeyV4, value: &MapValueV4) -> Self {
        Self {
            source: IpAddr::V4(Ipv4Addr::from(key.saddr)),
            destination: Cidr {
                addr: IpAddr::V4(Ipv4Addr::from(key.daddr)),
                len: key.dest_len(),
            },
            egress_ip: IpAddr::V4(Ipv4Addr::from(value.egress_ip)),
            gateway_ip: Ipv4Addr::from(value.gateway_ip),
            egress_ifindex: value.egress_ifindex,
        }
    }

    /// Decodes a v6 map element.
    pub fn from_map_v6(key: &MapKeyV6, value: &MapValueV6) -> Self {
        Self {
            source: IpAddr::V6(Ipv6Addr::from(key.saddr)),
            destination: Cidr {
                addr: IpAddr::V6(Ipv6Addr::from(key.daddr)),
                len: key.dest_len(),
            },
            egress_ip: IpAddr::V6(Ipv6Addr::from(value.egress_ip)),
            gateway_ip: Ipv4Addr::from(value.gateway_ip),
            egress_ifindex: value.egress_ifindex,
        }
    }
}

/// One difference between two sets of maps ([`MapEntries::changes_to`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryChange {
    /// A key only the second maps hold.
    Added(Entry),
    /// A key only the first maps hold.
    Removed(Entry),
    /// A key both hold, with other bytes.
    Changed {
        /// As the first maps hold it.
        before: Entry,
        /// As the second maps hold it.
        after: Entry,
    },
}

impl EntryChange {
    /// The entry that says where the change is (the second maps' where they have it).
    pub fn entry(&self) -> &Entry {
        match self {
            EntryChange::Added(e) | EntryChange::Removed(e) => e,
            EntryChange::Changed { after, .. } => after,
        }
    }
}

/// The contents of the node's maps, each sorted in output order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapEntries {
    /// IPv4 map entries.
    pub ipv4: Vec<Entry>,
    /// IPv6 map entries.
    pub ipv6: Vec<Entry>,
}

impl MapEntries {
    /// Splits entries by family and sorts them in output order.
    pub fn from_entries(entries: impl IntoIterator<Item = Entry>) -> Self {
        // In place (a Vec passed in is reused): IPv4 first, then the IPv6 tail moved out.
        // Unstable, and total: entries of one key are ordered by their value.
        let mut ipv4: Vec<Entry> = entries.into_iter().collect();
        ipv4.sort_unstable_by(|a, b| {
            a.source
                .is_ipv6()
                .cmp(&b.source.is_ipv6())
                .then_with(|| a.display_order(b))
                .then_with(|| {
                    (a.egress_ip, a.gateway_ip, a.egress_ifindex).cmp(&(
                        b.egress_ip,
                        b.gateway_ip,
                        b.egress_ifindex,
                    ))
                })
        });
        let ipv6 = ipv4.split_off(ipv4.partition_point(|e| e.source.is_ipv4()));
        Self { ipv4, ipv6 }
    }

    /// What differs from these maps to `other`, by key (A.4 key identity), in output order:
    /// keys only `other` has, keys only these have, and keys both have with other bytes
    /// (value or destination). The comparison of two engines' maps — another Cilium version,
    /// another cluster state.
    pub fn changes_to(&self, other: &MapEntries) -> Vec<EntryChange> {
        let index = |m: &MapEntries| -> HashMap<KeyIdentity, Entry> {
            m.iter().map(|e| (e.identity(), *e)).collect()
        };
        let (before, after) = (index(self), index(other));
        let mut out: Vec<EntryChange> = Vec::new();
        for e in self.iter() {
            match after.get(&e.identity()) {
                None => out.push(EntryChange::Removed(*e)),
                Some(a) if a != e => out.push(EntryChange::Changed {
                    before: *e,
                    after: *a,
                }),
                Some(_) => {}
            }
        }
        out.extend(
            other
                .iter()
                .filter(|e| !before.contains_key(&e.identity()))
                .map(|e| EntryChange::Added(*e)),
        );
        out.sort_by(|a, b| {
            let (x, y) = (a.entry(), b.entry());
            x.source
                .is_ipv6()
                .cmp(&y.source.is_ipv6())
                .then_with(|| x.display_order(y))
        });
        out
    }

    /// The entries `map` holds of these: those of its family, with the ifindex zeroed where
    /// its value has none (the legacy IPv4 map).
    pub fn as_stored_in(&self, map: MapId) -> MapEntries {
        let (ipv4, ipv6) = if map.is_ipv4() {
            (self.ipv4.clone(), Vec::new())
        } else {
            (Vec::new(), self.ipv6.clone())
        };
        let mut out = MapEntries { ipv4, ipv6 };
        if !map.stores_ifindex() {
            out.ipv4.iter_mut().for_each(|e| e.egress_ifindex = 0);
        }
        out
    }

    /// All entries, IPv4 first.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.ipv4.iter().chain(&self.ipv6)
    }

    /// Total number of entries.
    pub fn len(&self) -> usize {
        self.ipv4.len() + self.ipv6.len()
    }

    /// Whether both maps are empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether an entry comes from a destination or an excluded CIDR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CidrKind {
    /// `excludedCIDRs` (ranks first within a policy).
    Excluded,
    /// `destinationCIDRs`.
    Destination,
}

impl fmt::Display for CidrKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CidrKind::Excluded => "excludedCIDRs",
            CidrKind::Destination => "destinationCIDRs",
        })
    }
}

/// Who wants an entry written: one (policy, endpoint, CIDR) combination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Producer {
    /// Policy name (shared: one producer per entry, a million in a large output).
    pub policy: Arc<str>,
    /// Endpoint uid (shared).
    pub endpoint: Arc<str>,
    /// Destination or excluded.
    pub kind: CidrKind,
    /// Index of the CIDR in its policy list.
    pub cidr_index: usize,
    /// The entry this producer would write.
    pub entry: Entry,
}

impl fmt::Display for Producer {
    /// `policy P (destinationCIDRs[i] CIDR) for endpoint UID`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "policy {} ({}[{}] {}) for endpoint {}",
            self.policy, self.kind, self.cidr_index, self.entry.destination, self.endpoint
        )
    }
}

/// A key written by several producers with different bytes; the winner's are stored (B.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The producer whose entry is stored.
    pub winner: Producer,
    /// Producers whose value or destination bytes differ from the winner's.
    pub losers: Vec<Producer>,
}

/// Which gateway a selected endpoint uses under one policy. There is one per selected
/// (policy, endpoint) pair — millions in a large cluster — so the names and the gateway are
/// shared, not copied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayChoice {
    /// Policy name.
    pub policy: Arc<str>,
    /// Endpoint uid.
    pub endpoint: Arc<str>,
    /// The chosen resolved gateway.
    pub gateway: Arc<ResolvedGateway>,
}

/// Everything the batch path computes for one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Computation {
    /// The maps' contents.
    pub maps: MapEntries,
    /// Conflicts, in key order.
    pub conflicts: Vec<Conflict>,
    /// Gateway choices, by policy precedence then endpoint uid.
    pub choices: Vec<GatewayChoice>,
    /// The producer whose bytes each entry of `maps` holds (B.1's winner), in key order.
    pub producers: Vec<Producer>,
}

/// The objects of a cluster, as the batch path reads them.
#[derive(Clone, Debug, Default)]
pub struct ClusterState {
    /// Cluster name for `io.cilium.k8s.policy.cluster` (absent: `default`).
    pub cluster: Option<String>,
    /// Nodes by name.
    pub nodes: Nodes,
    /// Endpoints.
    pub endpoints: Vec<Endpoint>,
    /// Valid policies.
    pub policies: Vec<Policy>,
}

/// B.1 precedence: earliest timestamp first, timestamped before not, then name.
pub fn policy_precedence(a: &Policy, b: &Policy) -> Ordering {
    let key = |p: &Policy| (p.creation_timestamp.is_none(), p.creation_timestamp);
    key(a)
        .cmp(&key(b))
        .then_with(|| a.name.as_bytes().cmp(b.name.as_bytes()))
}

/// A policy compiled for matching.
struct CompiledPolicy<'a> {
    policy: &'a Policy,
    selectors: PolicySelectors,
    gateways: PolicyGateways,
}

/// One producer of a key while the batch path runs: 76 bytes, names as indexes (a large
/// output holds one per (endpoint IP, CIDR) selected).
struct Candidate {
    entry: Entry,
    policy_rank: u32,
    /// Index into the endpoints sorted by uid bytes, so index order is uid order.
    endpoint: u32,
    cidr_index: u32,
    kind: CidrKind,
}

/// Sorts the candidates by rank and drops those that can be neither the winner nor a
/// reported loser, once every policy up to `done` has been offered: in a key whose best
/// candidate comes from one of those policies (policies are offered in precedence order, so
/// that candidate wins for good), a candidate of a later policy with the winner's very bytes
/// (B.1's identical duplicates).
fn compact(candidates: &mut Vec<Candidate>, done: u32) {
    // Unstable (no buffer of half the candidates): two candidates of equal rank are the same
    // CIDR of one policy for one endpoint IP, so they are equal.
    candidates.sort_unstable_by_key(Candidate::rank);
    let mut winner: Option<(KeyIdentity, u32, Entry)> = None;
    candidates.retain(|c| {
        let identity = c.entry.identity();
        match winner {
            Some((key, rank, entry)) if key == identity => {
                !(rank <= done && c.policy_rank > rank && c.entry == entry)
            }
            _ => {
                winner = Some((identity, c.policy_rank, c.entry));
                true
            }
        }
    });
}

impl Candidate {
    fn rank(&self) -> (KeyIdentity, u32, CidrKind, u32, u32) {
        (
            self.entry.identity(),
            self.policy_rank,
            self.kind,
            self.endpoint,
            self.cidr_index,
        )
    }
}

/// The batch path: the entries `local_node` writes for the whole cluster, with conflicts
/// resolved by B.1 and the gateway choice of every selected endpoint, in either selection mode.
pub fn compute(
    state: &ClusterState,
    local_node: &str,
    devices: &[Device],
    rules: impl Into<Rules>,
) -> Computation {
    compute_with(state, local_node, devices, rules.into(), true)
}

/// [`compute`] without [`Computation::producers`] (left empty): the maps, conflicts and
/// gateway choices only, for callers that do not say where each entry comes from — about
/// 100 bytes less per entry.
pub fn compute_without_producers(
    state: &ClusterState,
    local_node: &str,
    devices: &[Device],
    rules: impl Into<Rules>,
) -> Computation {
    compute_with(state, local_node, devices, rules.into(), false)
}

fn compute_with(
    state: &ClusterState,
    local_node: &str,
    devices: &[Device],
    rules: Rules,
    with_producers: bool,
) -> Computation {
    let local = state.nodes.get(local_node);
    let local_view = local.map(|node| LocalNode { node, devices });

    let mut policies: Vec<&Policy> = state.policies.iter().collect();
    policies.sort_by(|a, b| policy_precedence(a, b));
    let compiled: Vec<CompiledPolicy<'_>> = policies
        .iter()
        .map(|p| {
            let selectors = PolicySelectors::compile(p);
            let gateways =
                PolicyGateways::resolve(p, &selectors.gateways, &state.nodes, local_view, rules);
            CompiledPolicy {
                policy: p,
                selectors,
                gateways,
            }
        })
        .collect();

    let mut endpoints: Vec<&Endpoint> = state.endpoints.iter().collect();
    endpoints.sort_by(|a, b| a.uid.as_bytes().cmp(b.uid.as_bytes()));
    // Replicas share their identity (SEMANTICS A.2 filters out `pod-template-hash`): one
    // copy of each distinct label set.
    let mut distinct: HashMap<Labels, Arc<Labels>> = HashMap::new();
    let identities: Vec<Arc<Labels>> = endpoints
        .iter()
        .map(|e| {
            let labels = e.identity(state.cluster.as_deref());
            match distinct.get(&labels) {
                Some(shared) => Arc::clone(shared),
                None => {
                    let shared = Arc::new(labels.clone());
                    distinct.insert(labels, Arc::clone(&shared));
                    shared
                }
            }
        })
        .collect();
    drop(distinct);
    let empty = Labels::empty();

    // Every candidate, compacted whenever their number doubled (`compact`): 3,000 identical
    // policies keep about one candidate per key, not 3,000, and distinct keys cost one
    // sort more in all.
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut compact_at = 1 << 16;
    let mut choices = Vec::new();
    let uids: Vec<Arc<str>> = endpoints
        .iter()
        .map(|e| Arc::from(e.uid.as_str()))
        .collect();
    let not_found = Arc::new(ResolvedGateway::not_found());
    let policy_names: Vec<Arc<str>> = compiled
        .iter()
        .map(|cp| Arc::from(cp.policy.name.as_str()))
        .collect();
    for ((rank, cp), policy_name) in (0u32..).zip(&compiled).zip(&policy_names) {
        let shared: Vec<Arc<ResolvedGateway>> =
            cp.gateways.gateways.iter().cloned().map(Arc::new).collect();
        for (((ep_index, ep), identity), uid) in
            (0u32..).zip(&endpoints).zip(&identities).zip(&uids)
        {
            let node_labels = ep
                .node
                .as_ref()
                .and_then(|n| state.nodes.get(n))
                .map_or(&empty, |n| &n.labels);
            if !cp.selectors.selects(identity, node_labels) {
                continue;
            }
            // One choice (consistent mode scores every candidate): as `choose` does it.
            let index = cp.gateways.choose_index(&ep.uid);
            let gw = index
                .and_then(|i| cp.gateways.gateways.get(i))
                .unwrap_or(&ResolvedGateway::NOT_FOUND);
            let chosen = index.and_then(|i| shared.get(i)).unwrap_or(&not_found);
            choices.push(GatewayChoice {
                policy: Arc::clone(policy_name),
                endpoint: Arc::clone(uid),
                gateway: Arc::clone(chosen),
            });
            for &ip in &ep.ips {
                for (kind, cidr_index, slot) in
                    policy_slots(cp.policy, gw, ip.is_ipv4(), rules.version)
                {
                    candidates.push(Candidate {
                        entry: slot.entry(ip),
                        policy_rank: rank,
                        endpoint: ep_index,
                        cidr_index: u32::try_from(cidr_index).unwrap_or(u32::MAX),
                        kind,
                    });
                }
            }
        }
        if candidates.len() >= compact_at {
            compact(&mut candidates, rank);
            compact_at = (2 * candidates.len()).max(1 << 16);
        }
    }

    candidates.sort_unstable_by_key(Candidate::rank);
    let producer = |c: &Candidate| Producer {
        policy: Arc::clone(&policy_names[c.policy_rank as usize]),
        endpoint: Arc::clone(&uids[c.endpoint as usize]),
        kind: c.kind,
        cidr_index: c.cidr_index as usize,
        entry: c.entry,
    };
    // Conflicts first (rare), then the winners in place: each key's first candidate. Then
    // the producers, the candidates dropped, and the entries from the producers — so that
    // no more than two of the three lists are held at once.
    let mut conflicts = Vec::new();
    for group in candidates.chunk_by(|a, b| a.entry.identity() == b.entry.identity()) {
        let winner = &group[0];
        let losers: Vec<Producer> = group[1..]
            .iter()
            .filter(|c| c.entry != winner.entry)
            .map(producer)
            .collect();
        if !losers.is_empty() {
            conflicts.push(Conflict {
                winner: producer(winner),
                losers,
            });
        }
    }
    candidates.dedup_by(|later, first| later.entry.identity() == first.entry.identity());
    let (producers, winners): (Vec<Producer>, Vec<Entry>) = if with_producers {
        let producers: Vec<Producer> = candidates.iter().map(producer).collect();
        drop(candidates);
        let winners = producers.iter().map(|p| p.entry).collect();
        (producers, winners)
    } else {
        (
            Vec::new(),
            candidates.into_iter().map(|c| c.entry).collect(),
        )
    };
    Computation {
        maps: MapEntries::from_entries(winners),
        conflicts,
        choices,
        producers,
    }
}

/// The entries the maps of any node hold for the state, per family (IPv4, IPv6), counted
/// without building them: per source address, the distinct destination and excluded networks
/// of the family over every policy that selects an endpoint with that address — what
/// [`compute`] gives after B.1 merges the keys. Memory in proportion to the policies'
/// CIDRs and the endpoints, not to the entries: one policy with 16,384 CIDRs over 2,000
/// endpoints (32.8 M entries) is counted in milliseconds. The number is the same on every
/// node (a node's view changes values, never keys).
pub fn count(state: &ClusterState) -> [usize; 2] {
    let compiled: Vec<(&Policy, PolicySelectors)> = state
        .policies
        .iter()
        .map(|p| (p, PolicySelectors::compile(p)))
        .collect();
    let networks = |p: &Policy, v4: bool| -> std::collections::HashSet<(u8, u128)> {
        p.destination_cidrs
            .iter()
            .chain(&p.excluded_cidrs)
            .filter(|c| c.is_ipv4() == v4)
            .map(network_of)
            .collect()
    };
    // Per policy and family, its distinct networks: the count of a source only it selects.
    let alone: Vec<[usize; 2]> = compiled
        .iter()
        .map(|(p, _)| [networks(p, true).len(), networks(p, false).len()])
        .collect();
    // Per source address, the policies selecting an endpoint that has it. Endpoints of one
    // identity on nodes of one label set are selected alike: computed once.
    let empty = Labels::empty();
    let mut selections: HashMap<(Labels, Labels), Arc<[u32]>> = HashMap::new();
    // (An address two endpoints share, rare, gets the union of theirs.)
    let mut by_source: HashMap<IpAddr, Arc<[u32]>> = HashMap::new();
    for ep in &state.endpoints {
        if ep.ips.is_empty() {
            continue;
        }
        let identity = ep.identity(state.cluster.as_deref());
        let node_labels = ep
            .node
            .as_ref()
            .and_then(|n| state.nodes.get(n))
            .map_or(&empty, |n| &n.labels);
        let key = (identity, node_labels.clone());
        let selecting = match selections.get(&key) {
            Some(s) => Arc::clone(s),
            None => {
                let s: Arc<[u32]> = (0u32..)
                    .zip(&compiled)
                    .filter(|(_, (_, sel))| sel.selects(&key.0, &key.1))
                    .map(|(i, _)| i)
                    .collect();
                selections.insert(key, Arc::clone(&s));
                s
            }
        };
        if selecting.is_empty() {
            continue;
        }
        for &ip in &ep.ips {
            match by_source.get_mut(&ip) {
                None => {
                    by_source.insert(ip, Arc::clone(&selecting));
                }
                Some(held) => {
                    let mut union: Vec<u32> =
                        held.iter().chain(selecting.iter()).copied().collect();
                    union.sort_unstable();
                    union.dedup();
                    *held = union.into();
                }
            }
        }
    }
    // Sources selected by several policies: the union of their networks, once per distinct
    // set of policies and family.
    let mut unions: HashMap<(Vec<u32>, bool), usize> = HashMap::new();
    let mut total = [0usize; 2];
    for (ip, set) in by_source {
        let v4 = ip.is_ipv4();
        let fam = usize::from(!v4);
        let n = match *set {
            [only] => alone[only as usize][fam],
            _ => *unions
                .entry((set.to_vec(), v4))
                .or_insert_with_key(|(set, v4)| {
                    let mut all = std::collections::HashSet::new();
                    for &i in set {
                        all.extend(networks(compiled[i as usize].0, *v4));
                    }
                    all.len()
                }),
        };
        total[fam] += n;
    }
    total
}

/// A prefix's length and network bits (host bits cleared): its key identity for one source.
fn network_of(c: &Cidr) -> (u8, u128) {
    let network = match c.addr {
        IpAddr::V4(a) => u128::from(u32::from(a) & mask_v4(c.len)),
        IpAddr::V6(a) => u128::from(a) & mask_v6(c.len),
    };
    (c.len, network)
}

fn unspecified(v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    }
}

#[cfg(test)]
mod tests;
