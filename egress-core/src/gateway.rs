//! Gateway resolution and choice, Cilium-compatible mode (SEMANTICS A.3).

use std::net::Ipv4Addr;

use crate::cluster::{Node, Nodes};
use crate::device::Device;
use crate::egress_ip::{self, EgressAddresses, Needed};
use crate::policy::Policy;
use crate::selector::Selector;

/// FNV-1a, 32 bits (offset basis 2166136261, prime 16777619).
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(2_166_136_261u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    })
}

/// The node a gateway entry resolves to: the first node by name whose labels match and
/// that has an IPv4 address.
pub fn resolve_node<'a>(selector: &Selector, nodes: &'a Nodes) -> Option<&'a Node> {
    nodes
        .values()
        .find(|n| n.ipv4.is_some() && selector.matches(&n.labels))
}

/// One resolved gateway entry of a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedGateway {
    /// Position of the entry in `egressGateways` (0 for `egressGateway`); `None` for the
    /// "not found" gateway that stands in when no entry resolves.
    pub entry_index: Option<usize>,
    /// The gateway node's name (`None` when not found).
    pub node: Option<String>,
    /// The gateway node's IPv4 (`0.0.0.0` when not found).
    pub gateway_ip: Ipv4Addr,
    /// Egress addresses, derived only when the gateway is the local node.
    pub egress: Option<EgressAddresses>,
}

impl ResolvedGateway {
    /// The stand-in used when no gateway entry resolves.
    pub fn not_found() -> Self {
        Self {
            entry_index: None,
            node: None,
            gateway_ip: Ipv4Addr::UNSPECIFIED,
            egress: None,
        }
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

/// Resolves a policy's gateway entries (`selectors` = the compiled nodeSelectors of
/// [`Policy::gateways_in_use`]), sorted by gateway IP, equal IPs keeping policy order.
/// Never empty: with nothing resolved, the single "not found" gateway.
pub fn resolve_gateways(
    policy: &Policy,
    selectors: &[Selector],
    nodes: &Nodes,
    local: Option<LocalNode<'_>>,
) -> Vec<ResolvedGateway> {
    let needed = Needed {
        v4: policy.needs_family(true),
        v6: policy.needs_family(false),
    };
    let mut resolved: Vec<ResolvedGateway> = Vec::with_capacity(selectors.len());
    for (i, (spec, selector)) in policy.gateways_in_use().iter().zip(selectors).enumerate() {
        let Some(node) = resolve_node(selector, nodes) else {
            continue;
        };
        let Some(gateway_ip) = node.ipv4 else {
            continue;
        };
        let egress = local
            .filter(|l| l.node.name == node.name)
            .map(|l| egress_ip::derive(spec, needed, l.devices, (l.node.ipv4, l.node.ipv6)));
        resolved.push(ResolvedGateway {
            entry_index: Some(i),
            node: Some(node.name.clone()),
            gateway_ip,
            egress,
        });
    }
    if resolved.is_empty() {
        return vec![ResolvedGateway::not_found()];
    }
    resolved.sort_by_key(|g| u32::from(g.gateway_ip)); // stable: equal IPs keep policy order
    resolved
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
