//! Gateway resolution and choice: Cilium-compatible mode (SEMANTICS A.3) and consistent
//! mode (weighted rendezvous hashing, SEMANTICS B.2/B.3).

use std::cmp::Reverse;
use std::fmt;
use std::net::Ipv4Addr;

use hashbrown::HashSet;

use crate::cluster::{Node, Nodes, resolve_node};
use crate::device::Device;
use crate::egress_ip::{self, EgressAddresses, Needed};
use crate::policy::{GatewaySpec, Policy};
use crate::selector::Selector;
use crate::version::{CiliumVersion, Rules};

pub use crate::version::Selection;

/// FNV-1a, 32 bits (offset basis 2166136261, prime 16777619).
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(2_166_136_261u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    })
}

/// FNV-1a, 64 bits, fed incrementally.
#[derive(Clone, Copy, Debug)]
pub struct Fnv64(u64);

impl Fnv64 {
    /// The offset basis.
    pub const fn new() -> Self {
        Self(14_695_981_039_346_656_037)
    }

    /// Feeds bytes.
    pub fn write(mut self, bytes: &[u8]) -> Self {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(1_099_511_628_211);
        }
        self
    }

    /// Feeds a number's decimal digits.
    pub fn write_decimal(self, mut n: u64) -> Self {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.write(&digits[at..])
    }

    /// The hash.
    pub fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fnv64 {
    fn default() -> Self {
        Self::new()
    }
}

/// The splitmix64 finalizer.
pub fn mix64(mut z: u64) -> u64 {
    z ^= z >> 30;
    z = z.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z ^= z >> 27;
    z = z.wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// How a gateway entry picks its egress address, independent of where it stands in the
/// list (SEMANTICS B.2): `if=<interface>`, `ip=<egressIP in canonical text>` or `route`.
/// Consistent mode keys its candidates by (node, entry key), so that deleting or
/// reordering entries moves only the endpoints that must move.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryKey(Box<str>);

impl EntryKey {
    /// The key of a gateway entry (`interface` and `egressIP` are mutually exclusive in a
    /// valid policy; `interface` is looked at first).
    pub fn of(spec: &GatewaySpec) -> Self {
        let text = match (&spec.interface, &spec.egress_ip) {
            (Some(interface), _) => format!("if={interface}"),
            // IpAddr's Display is dotted decimal for IPv4 and RFC 5952 for IPv6.
            (None, Some(ip)) => format!("ip={ip}"),
            (None, None) => "route".to_owned(),
        };
        Self(text.into_boxed_str())
    }

    /// The key's text, as hashed into the rendezvous score.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EntryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One resolved gateway entry of a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedGateway {
    /// Position of the entry in `egressGateways` (0 for `egressGateway`); `None` for the
    /// "not found" gateway that stands in when no entry resolves. In consistent mode, the
    /// first entry that produced this (node, entry key) pair.
    pub entry_index: Option<usize>,
    /// The entry's key (B.2); `None` for the "not found" gateway.
    pub entry_key: Option<EntryKey>,
    /// The gateway node's name (`None` when not found).
    pub node: Option<String>,
    /// The gateway node's IPv4 (`0.0.0.0` when not found).
    pub gateway_ip: Ipv4Addr,
    /// Egress addresses, derived only when the gateway is the local node.
    pub egress: Option<EgressAddresses>,
    /// The node's weight (consistent mode; 1 in compat mode).
    pub weight: u8,
}

impl ResolvedGateway {
    /// The stand-in used when no gateway is available.
    pub const NOT_FOUND: Self = Self {
        entry_index: None,
        entry_key: None,
        node: None,
        gateway_ip: Ipv4Addr::UNSPECIFIED,
        egress: None,
        weight: 0,
    };

    /// The stand-in used when no gateway entry resolves.
    pub fn not_found() -> Self {
        Self::NOT_FOUND
    }
}

/// The local node's view, for deriving egress addresses.
#[derive(Clone, Copy, Debug)]
pub struct LocalNode<'a> {
    /// The local node (must have been looked up in the same node set).
    pub node: &'a Node,
    /// Its devices.
    pub devices: &'a [Device],
}

/// Where a gateway entry sits: its index in the list and its key.
#[derive(Clone, Copy)]
struct EntryAt<'a> {
    index: usize,
    spec: &'a GatewaySpec,
    key: &'a EntryKey,
}

/// Gateway entry `at` on `node`, with egress addresses derived (by `version`'s rules) when
/// the node is the local one; `None` for a node without IPv4.
fn gateway_on(
    node: &Node,
    at: EntryAt<'_>,
    needed: Needed,
    local: Option<LocalNode<'_>>,
    weight: u8,
    version: CiliumVersion,
) -> Option<ResolvedGateway> {
    let egress = local
        .filter(|l| l.node.name == node.name)
        .map(|l| egress_ip::derive(at.spec, needed, l.devices, version));
    Some(ResolvedGateway {
        entry_index: Some(at.index),
        entry_key: Some(at.key.clone()),
        node: Some(node.name.clone()),
        gateway_ip: node.ipv4?,
        egress,
        weight,
    })
}

/// Resolves a policy's gateway entries (`selectors` = the compiled nodeSelectors of
/// [`Policy::gateways_in_use`]) by `version`'s rules, sorted by gateway IP, equal IPs
/// keeping policy order. An entry that matches no node is kept as gateway `0.0.0.0` (it
/// sorts first and counts in `hash mod n`) by 1.18 (v1.18.3), and dropped by 1.19 and 1.20
/// (PR #44705, backported in v1.19.4).
/// Never empty: with nothing resolved, the single "not found" gateway.
pub fn resolve_gateways(
    policy: &Policy,
    selectors: &[Selector],
    nodes: &Nodes,
    local: Option<LocalNode<'_>>,
    version: CiliumVersion,
) -> Vec<ResolvedGateway> {
    let needed = Needed::of(policy);
    let mut resolved: Vec<ResolvedGateway> = Vec::with_capacity(selectors.len());
    for (index, (spec, selector)) in policy.gateways_in_use().iter().zip(selectors).enumerate() {
        let key = EntryKey::of(spec);
        let at = EntryAt {
            index,
            spec,
            key: &key,
        };
        match resolve_node(selector, nodes) {
            Some(node) => resolved.extend(gateway_on(node, at, needed, local, 1, version)),
            None if version.keeps_unmatched_gateways() => resolved.push(ResolvedGateway {
                entry_index: Some(index),
                entry_key: Some(key.clone()),
                weight: 1,
                ..ResolvedGateway::NOT_FOUND
            }),
            None => {}
        }
    }
    if resolved.is_empty() {
        return vec![ResolvedGateway::not_found()];
    }
    resolved.sort_by_key(|g| u32::from(g.gateway_ip)); // stable: equal IPs keep policy order
    resolved
}

/// Consistent-mode candidates (B.2): the distinct (node, entry key) pairs the entries
/// produce in list order — every node with an IPv4 that an entry's nodeSelector matches,
/// except that an `egressIP` entry offers only the node compat mode resolves it to (no
/// other node could SNAT to that address) — then without unready or drained nodes (an
/// `egressIP` entry whose node is left out offers nothing). A pair produced again by a
/// later entry is not added twice: the first entry represents it (both derive the same
/// address). Ordered by (first entry index, node name); may be empty.
pub fn consistent_candidates(
    policy: &Policy,
    selectors: &[Selector],
    nodes: &Nodes,
    local: Option<LocalNode<'_>>,
    version: CiliumVersion,
) -> Vec<ResolvedGateway> {
    let needed = Needed::of(policy);
    let eligible = |n: &Node| n.ready && n.weight > 0;
    let specs = policy.gateways_in_use();
    let keys: Vec<EntryKey> = specs.iter().map(EntryKey::of).collect();
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    let mut out = Vec::new();
    for (index, ((spec, selector), key)) in specs.iter().zip(selectors).zip(&keys).enumerate() {
        let at = EntryAt { index, spec, key };
        for node in entry_offers(spec, selector, nodes) {
            if seen.insert((node.name.as_str(), key.as_str())) && eligible(node) {
                out.extend(gateway_on(node, at, needed, local, node.weight, version));
            }
        }
    }
    out
}

/// The nodes `policy`'s entries offer as gateways, whatever their health: consistent mode's
/// candidates before unready and drained nodes are left out (B.2), which include the node each
/// entry resolves to in compat mode. The nodes whose health matters to the policy (B.3), the
/// ones an embedding agent's probes watch.
pub fn offered_nodes<'a>(
    policy: &Policy,
    selectors: &[Selector],
    nodes: &'a Nodes,
) -> impl Iterator<Item = &'a Node> {
    let specs = policy.gateways_in_use();
    let mut out: Vec<&'a Node> = Vec::new();
    for (spec, selector) in specs.iter().zip(selectors) {
        out.extend(entry_offers(spec, selector, nodes));
    }
    out.into_iter()
}

/// The nodes one gateway entry offers (B.2): an `egressIP` entry only the node compat mode
/// resolves it to (no other node could SNAT to that address), any other entry every node with
/// an IPv4 its nodeSelector matches.
fn entry_offers<'a>(
    spec: &crate::policy::GatewaySpec,
    selector: &Selector,
    nodes: &'a Nodes,
) -> Vec<&'a Node> {
    if spec.egress_ip.is_some() {
        resolve_node(selector, nodes).into_iter().collect()
    } else {
        nodes
            .values()
            .filter(|n| n.ipv4.is_some() && selector.matches(&n.labels))
            .collect()
    }
}

/// A candidate's rendezvous score for an endpoint: the best of its `weight` replicas of
/// `mix64(FNV-1a-64(uid ‖ 0 ‖ node ‖ 0 ‖ entry key ‖ 0 ‖ replica))`.
pub fn rendezvous_score(uid: &str, node: &str, entry_key: &str, weight: u8) -> u64 {
    let prefix = Fnv64::new()
        .write(uid.as_bytes())
        .write(&[0])
        .write(node.as_bytes())
        .write(&[0])
        .write(entry_key.as_bytes())
        .write(&[0]);
    (0..u64::from(weight))
        .map(|i| mix64(prefix.write_decimal(i).finish()))
        .max()
        .unwrap_or(0)
}

/// The consistent-mode choice among candidates: the highest score; ties to the byte-wise
/// smaller node name, then the byte-wise smaller entry key. `None` without candidates.
pub fn choose_consistent(uid: &str, candidates: &[ResolvedGateway]) -> Option<usize> {
    best_candidate(candidates.iter().map(|g| {
        let node = g.node.as_deref().unwrap_or("");
        let key = g.entry_key.as_ref().map_or("", EntryKey::as_str);
        (rendezvous_score(uid, node, key, g.weight), node, key)
    }))
}

/// The position of the best (score, node, entry key): highest score, then byte-wise
/// smaller node name, then byte-wise smaller entry key.
pub fn best_candidate<'a>(scored: impl Iterator<Item = (u64, &'a str, &'a str)>) -> Option<usize> {
    scored
        .enumerate()
        .max_by(|(_, a), (_, b)| {
            (a.0, Reverse(a.1.as_bytes()), Reverse(a.2.as_bytes())).cmp(&(
                b.0,
                Reverse(b.1.as_bytes()),
                Reverse(b.2.as_bytes()),
            ))
        })
        .map(|(i, _)| i)
}

/// A policy's gateways under one selection mode, and the choice among them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyGateways {
    /// How endpoints choose.
    pub selection: Selection,
    /// Compat mode: resolved entries sorted by gateway IP, or the single "not found";
    /// consistent mode: the candidates, possibly none.
    pub gateways: Vec<ResolvedGateway>,
}

impl PolicyGateways {
    /// Resolves the gateways of `policy` (`selectors` = compiled nodeSelectors of its
    /// gateway entries in use) by `rules` (a [`Selection`] alone: on Cilium 1.18).
    pub fn resolve(
        policy: &Policy,
        selectors: &[Selector],
        nodes: &Nodes,
        local: Option<LocalNode<'_>>,
        rules: impl Into<Rules>,
    ) -> Self {
        let Rules { selection, version } = rules.into();
        let gateways = match selection {
            Selection::Cilium => resolve_gateways(policy, selectors, nodes, local, version),
            Selection::Consistent => {
                consistent_candidates(policy, selectors, nodes, local, version)
            }
        };
        Self {
            selection,
            gateways,
        }
    }

    /// The index of the gateway `uid` uses, `None` for "not found" (no candidate).
    pub fn choose_index(&self, uid: &str) -> Option<usize> {
        match self.selection {
            Selection::Cilium => {
                Some(choose(uid, self.gateways.len())).filter(|&i| i < self.gateways.len())
            }
            Selection::Consistent => choose_consistent(uid, &self.gateways),
        }
    }

    /// The gateway `uid` uses.
    pub fn choose(&self, uid: &str) -> &ResolvedGateway {
        self.choose_index(uid)
            .and_then(|i| self.gateways.get(i))
            .unwrap_or(&ResolvedGateway::NOT_FOUND)
    }
}

/// The index of the gateway an endpoint uses among `n` resolved ones (`FNV-1a-32(uid) mod n`).
pub fn choose(uid: &str, n: usize) -> usize {
    if n <= 1 {
        0
    } else {
        fnv1a32(uid.as_bytes()) as usize % n
    }
}

#[cfg(test)]
mod tests;
