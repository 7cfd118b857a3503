//! Warnings for valid policies (SEMANTICS A.1): selectors that match nothing, an
//! `egressGateway` ignored beside `egressGateways`, an `egressIP` entry matching several nodes;
//! and what Cilium accepts but users get wrong: CIDR lists (host bits set, duplicates, an
//! excluded CIDR equal to a destination or outside every destination), a `metadata.namespace`
//! on this cluster-scoped kind, gateways that all resolve to one node (no failover), an
//! `egressIP` that is a node's ExternalIP, destinations of a family no endpoint has.

use std::fmt;

use std::net::IpAddr;

use super::{GatewaySpec, Policy};
use crate::cluster::{Nodes, resolve_node};
use crate::device::Device;
use crate::selector::Selector;
use crate::version::CiliumVersion;

/// A warning about a valid policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// Field path the warning is about.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The warnings of a valid policy. With `nodes` (a snapshot), the checks that need the
/// cluster's nodes are made against them; without, the ignored-`egressGateway` check
/// compares the entries as written.
pub fn policy_warnings(policy: &Policy, nodes: Option<&Nodes>) -> Vec<Warning> {
    let mut out = Vec::new();
    let mut never = |path: String, selector: &Selector| {
        if let Some(problem) = selector.problem() {
            out.push(Warning {
                path,
                message: format!("selector matches nothing: {problem}"),
            });
        }
    };
    for (i, item) in policy.selectors.iter().enumerate() {
        never(
            format!("spec.selectors[{i}]"),
            &Selector::for_endpoints(item),
        );
        if let Some(ns) = &item.node_selector {
            never(
                format!("spec.selectors[{i}].nodeSelector"),
                &Selector::new(ns),
            );
        }
    }
    for (i, gw) in policy.gateways_in_use().iter().enumerate() {
        never(
            format!("{}.nodeSelector", policy.gateway_path(i)),
            &Selector::new(&gw.node_selector),
        );
    }
    if let Some(w) = ignored_egress_gateway(policy, nodes) {
        out.push(w);
    }
    if let Some(ns) = &policy.namespace {
        out.push(Warning {
            path: "metadata.namespace".to_owned(),
            message: format!(
                "ignored: CiliumEgressGatewayPolicy is cluster-scoped, so the policy selects pods \
                 of every namespace its selectors match, not only {ns:?}; to keep it to {ns:?}, \
                 add io.kubernetes.pod.namespace: {ns} to each podSelector"
            ),
        });
    }
    out.extend(cidr_lints(policy));
    if let Some(nodes) = nodes
        && let Some(w) = single_gateway_node(policy, nodes)
    {
        out.push(w);
    }
    if let Some(nodes) = nodes {
        out.extend(external_egress_ips(policy, nodes));
    }
    if let Some(nodes) = nodes {
        for (i, gw) in policy.gateways_in_use().iter().enumerate() {
            let Some(ip) = gw.egress_ip else { continue };
            let selector = Selector::new(&gw.node_selector);
            let matching: Vec<&str> = nodes
                .values()
                .filter(|n| n.ipv4.is_some() && selector.matches(&n.labels))
                .map(|n| n.name.as_str())
                .collect();
            if matching.len() > 1 {
                out.push(Warning {
                    path: format!("{}.nodeSelector", policy.gateway_path(i)),
                    message: format!(
                        "matches {} nodes ({}) but egressIP {ip} can be on one only: {} is used",
                        matching.len(),
                        matching.join(", "),
                        matching[0]
                    ),
                });
            }
        }
    }
    out
}

/// Every gateway entry in use matches the same single node (with an IPv4 address): when it
/// goes down there is no other node to take over, and the selected pods' traffic is dropped.
fn single_gateway_node(policy: &Policy, nodes: &Nodes) -> Option<Warning> {
    let mut matched: Option<&str> = None;
    for gw in policy.gateways_in_use() {
        let selector = Selector::new(&gw.node_selector);
        for n in nodes
            .values()
            .filter(|n| n.ipv4.is_some() && selector.matches(&n.labels))
        {
            match matched {
                Some(m) if m != n.name => return None,
                _ => matched = Some(&n.name),
            }
        }
    }
    let path = if policy.egress_gateways.is_empty() {
        "spec.egressGateway"
    } else {
        "spec.egressGateways"
    };
    Some(Warning {
        path: path.to_owned(),
        message: format!(
            "every gateway entry matches only node {}: if it goes down, no other node takes \
             over and the selected pods' traffic is dropped; select two or more nodes (a label \
             on a pool of egress nodes) for failover",
            matched?
        ),
    })
}

/// Known version-specific failures (CILIUM-VERSIONS.md "Corrections"): on Cilium 1.20 an
/// `egressIP` of one family with destinations of both fails both families when the device
/// holding it has no address of the other family (cilium#48660) — every gateway entry of the
/// policy then carries egress IP `0.0.0.0`, and the gateway drops the traffic. With `nodes`,
/// each entry is judged on the node it resolves to: `devices(node)` when its devices are
/// known, else whether the node has an address of the other family; without, any such entry
/// is named as at risk.
pub fn version_warnings<'a>(
    policy: &Policy,
    version: CiliumVersion,
    nodes: Option<&'a Nodes>,
    devices: impl Fn(&str) -> Option<&'a [Device]>,
) -> Vec<Warning> {
    let mut out = Vec::new();
    let dual_stack = policy.needs_family(true) && policy.needs_family(false);
    if !(version.egress_ip_other_family_fails() && dual_stack) {
        return out;
    }
    for (i, gw) in policy.gateways_in_use().iter().enumerate() {
        let Some(ip) = gw.egress_ip else { continue };
        let other = if ip.is_ipv4() { "IPv6" } else { "IPv4" };
        let has_other = |addr: IpAddr| addr.is_ipv4() != ip.is_ipv4();
        let why = match nodes.map(|n| resolve_node(&Selector::new(&gw.node_selector), n)) {
            // No node: the entry writes no egress IP anyway.
            Some(None) => continue,
            Some(Some(node)) => match devices(&node.name) {
                Some(devs) => {
                    let holder = devs
                        .iter()
                        .filter(|d| d.has_address(ip))
                        .min_by_key(|d| d.index);
                    match holder {
                        Some(d) if d.addresses.iter().any(|a| has_other(a.addr)) => continue,
                        Some(d) => {
                            format!("{}'s device {} has no {other} address", node.name, d.name)
                        }
                        None => continue,
                    }
                }
                None if node.ip(!ip.is_ipv4()).is_some() => continue,
                None => format!("node {} has no {other} address", node.name),
            },
            None => format!("unless the device holding it also has an {other} address"),
        };
        out.push(Warning {
            path: format!("{}.egressIP", policy.gateway_path(i)),
            message: format!(
                "on Cilium {version}, egressIP {ip} with destinations of both families fails \
                 both ({why}): the entries' egress IP is 0.0.0.0 and the gateway drops the \
                 traffic (cilium#48660; 1.18 and 1.19 SNAT IPv4 there)"
            ),
        });
    }
    out
}

/// Destination CIDRs of a family no endpoint has an address of: they write no entry. Made
/// where the endpoints are known (`Snapshot::policy_warnings`); `ipv4`/`ipv6` say whether
/// any endpoint has an address of that family.
pub fn family_warnings(policy: &Policy, ipv4: bool, ipv6: bool) -> Vec<Warning> {
    policy
        .destination_cidrs
        .iter()
        .enumerate()
        .filter(|(_, c)| if c.addr.is_ipv4() { !ipv4 } else { !ipv6 })
        .map(|(i, c)| {
            let family = if c.addr.is_ipv4() { "IPv4" } else { "IPv6" };
            Warning {
                path: format!("spec.destinationCIDRs[{i}]"),
                message: format!(
                    "{c}: no endpoint in the input has an {family} address, so it writes no \
                     entry (harmless if the cluster has no {family} pods)"
                ),
            }
        })
        .collect()
}

/// An `egressIP` that is a node's `ExternalIP` (the seed's TKE trap): a cloud public address
/// is on no device, so Cilium finds no interface for it and the gateway drops the traffic.
fn external_egress_ips(policy: &Policy, nodes: &Nodes) -> Vec<Warning> {
    let mut out = Vec::new();
    for (i, gw) in policy.gateways_in_use().iter().enumerate() {
        let Some(ip) = gw.egress_ip else { continue };
        if let Some(node) = nodes.values().find(|n| n.external_ips.contains(&ip)) {
            out.push(Warning {
                path: format!("{}.egressIP", policy.gateway_path(i)),
                message: format!(
                    "{ip} is node {}'s ExternalIP, a public address on none of its devices: \
                     Cilium finds no interface for it and drops the traffic; use its InternalIP \
                     or a secondary private IP on the node",
                    node.name
                ),
            });
        }
    }
    out
}

/// The CIDR lints: each names the field and says what the datapath will do instead.
fn cidr_lints(policy: &Policy) -> Vec<Warning> {
    let mut out = Vec::new();
    let lists = [
        ("spec.destinationCIDRs", &policy.destination_cidrs),
        ("spec.excludedCIDRs", &policy.excluded_cidrs),
    ];
    for (list, cidrs) in lists {
        for (i, c) in cidrs.iter().enumerate() {
            let path = format!("{list}[{i}]");
            if c.addr != c.network() {
                out.push(Warning {
                    path: path.clone(),
                    message: format!(
                        "{c} has host bits set: the map stores {} as written (as Cilium does) \
                         and matches {}/{}; write {}/{} to say so",
                        c.addr,
                        c.network(),
                        c.len,
                        c.network(),
                        c.len
                    ),
                });
            }
            if let Some(j) = cidrs[..i]
                .iter()
                .position(|d| d.network() == c.network() && d.len == c.len)
            {
                out.push(Warning {
                    path,
                    message: format!("{c} repeats {list}[{j}]: one entry is written"),
                });
            }
        }
    }
    let same = |a: &crate::netip::Cidr, b: &crate::netip::Cidr| {
        a.network() == b.network() && a.len == b.len
    };
    for (i, c) in policy.excluded_cidrs.iter().enumerate() {
        let path = format!("spec.excludedCIDRs[{i}]");
        if let Some(j) = policy.destination_cidrs.iter().position(|d| same(d, c)) {
            out.push(Warning {
                path,
                message: format!(
                    "{c} equals spec.destinationCIDRs[{j}]: that destination is excluded entirely \
                     (its traffic takes the normal path)"
                ),
            });
        } else if !policy
            .destination_cidrs
            .iter()
            .any(|d| d.is_ipv4() == c.is_ipv4() && d.len <= c.len && d.contains(c.network()))
        {
            out.push(Warning {
                path,
                message: format!(
                    "{c} lies outside every destinationCIDR: it excludes nothing (Cilium still \
                     writes its entry)"
                ),
            });
        }
    }
    out
}

fn ignored_egress_gateway(policy: &Policy, nodes: Option<&Nodes>) -> Option<Warning> {
    if policy.egress_gateways.is_empty() {
        return None;
    }
    let single = &policy.egress_gateway;
    let ignored_node = match nodes {
        Some(nodes) => {
            let node_of = |g: &GatewaySpec| resolve_node(&Selector::new(&g.node_selector), nodes);
            let node = node_of(single)?;
            if policy
                .egress_gateways
                .iter()
                .any(|g| node_of(g).is_some_and(|n| n.name == node.name))
            {
                return None;
            }
            format!("its node {}", node.name)
        }
        None => {
            if policy.egress_gateways.contains(single) {
                return None;
            }
            "it".to_owned()
        }
    };
    Some(Warning {
        path: "spec.egressGateway".to_owned(),
        message: format!(
            "ignored: egressGateways is non-empty and replaces egressGateway, so {ignored_node} is not a gateway of this policy (list it in egressGateways to use it)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Node;
    use crate::document::parse_documents;
    use crate::policy::parse_policy;

    fn policy(yaml: &str) -> Policy {
        parse_policy(&parse_documents(yaml).unwrap()[0]).unwrap()
    }

    fn seed_nodes() -> Nodes {
        ["172.22.49.20", "172.22.49.147", "172.22.49.119"]
            .iter()
            .map(|n| {
                let labels = [("kubernetes.io/hostname", *n), ("egress-node", "true")]
                    .into_iter()
                    .collect();
                (
                    n.to_string(),
                    Node::new(*n, labels, Some(n.parse().unwrap())),
                )
            })
            .collect()
    }

    const SEED: &str = r#"
metadata: {name: egress-test}
spec:
  selectors: [{podSelector: {matchLabels: {app: nginx}}}]
  destinationCIDRs: ["0.0.0.0/0"]
  egressGateway:
    nodeSelector: {matchLabels: {kubernetes.io/hostname: 172.22.49.20}}
    egressIP: 172.22.49.20
  egressGateways:
  - nodeSelector: {matchLabels: {kubernetes.io/hostname: 172.22.49.147}}
    egressIP: 172.22.49.147
  - nodeSelector: {matchLabels: {kubernetes.io/hostname: 172.22.49.119}}
    egressIP: 172.22.49.119
"#;

    #[test]
    fn the_seeds_ignored_egress_gateway() {
        let p = policy(SEED);
        let with_nodes = policy_warnings(&p, Some(&seed_nodes()));
        assert_eq!(with_nodes.len(), 1);
        assert_eq!(with_nodes[0].path, "spec.egressGateway");
        assert!(
            with_nodes[0].message.contains("its node 172.22.49.20"),
            "{}",
            with_nodes[0]
        );
        assert_eq!(policy_warnings(&p, None).len(), 1);
        // Listed among egressGateways (same node): nothing to warn about.
        let listed = SEED.replace(
            "kubernetes.io/hostname: 172.22.49.147}",
            "kubernetes.io/hostname: 172.22.49.20}",
        );
        assert!(policy_warnings(&policy(&listed), Some(&seed_nodes())).is_empty());
    }

    #[test]
    fn selectors_that_match_nothing() {
        let p = policy(
            r#"
metadata: {name: p}
spec:
  selectors:
  - podSelector: {matchExpressions: [{key: app, operator: In}]}
    nodeSelector: {matchExpressions: [{key: zone, operator: Exists, values: [a]}]}
  - namespaceSelector: {matchLabels: {"bad key": x}}
  destinationCIDRs: []
  egressGateway: {nodeSelector: {matchExpressions: [{key: "-x", operator: Exists}]}}
"#,
        );
        let paths: Vec<String> = policy_warnings(&p, None)
            .into_iter()
            .map(|w| w.path)
            .collect();
        assert_eq!(
            paths,
            [
                "spec.selectors[0]",
                "spec.selectors[0].nodeSelector",
                "spec.selectors[1]",
                "spec.egressGateway.nodeSelector"
            ]
        );
    }

    #[test]
    fn egress_ip_entry_matching_several_nodes() {
        let p = policy(
            r#"
metadata: {name: p}
spec:
  selectors: [{podSelector: {}}]
  destinationCIDRs: ["0.0.0.0/0"]
  egressGateway: {nodeSelector: {matchLabels: {egress-node: "true"}}, egressIP: 172.22.49.119}
"#,
        );
        let w = policy_warnings(&p, Some(&seed_nodes()));
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].path, "spec.egressGateway.nodeSelector");
        assert!(w[0].message.contains("matches 3 nodes"), "{}", w[0]);
        assert!(policy_warnings(&p, None).is_empty());
    }

    fn with_cidrs(destinations: &str, excluded: &str) -> Vec<Warning> {
        let yaml = format!(
            "metadata: {{name: p}}\nspec:\n  selectors: [{{podSelector: {{}}}}]\n  \
             destinationCIDRs: {destinations}\n  excludedCIDRs: {excluded}\n  \
             egressGateway: {{nodeSelector: {{matchLabels: {{a: b}}}}}}\n"
        );
        policy_warnings(&policy(&yaml), None)
    }

    #[test]
    fn cidr_lists_users_get_wrong() {
        let w = with_cidrs("[10.1.2.3/8]", "[]");
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].path, "spec.destinationCIDRs[0]");
        assert!(
            w[0].message.contains("has host bits set") && w[0].message.contains("10.0.0.0/8"),
            "{}",
            w[0]
        );

        let w = with_cidrs("[10.0.0.0/8, 10.0.0.0/8]", "[]");
        assert_eq!(
            (w.len(), w[0].path.as_str()),
            (1, "spec.destinationCIDRs[1]")
        );
        assert!(
            w[0].message.contains("repeats spec.destinationCIDRs[0]"),
            "{}",
            w[0]
        );

        let w = with_cidrs("[10.0.0.0/8]", "[10.0.0.0/8]");
        assert_eq!((w.len(), w[0].path.as_str()), (1, "spec.excludedCIDRs[0]"));
        assert!(
            w[0].message.contains("equals spec.destinationCIDRs[0]"),
            "{}",
            w[0]
        );

        let w = with_cidrs("[10.0.0.0/8]", "[192.168.0.0/16, \"fd00::/8\"]");
        let paths: Vec<&str> = w.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(paths, ["spec.excludedCIDRs[0]", "spec.excludedCIDRs[1]"]);
        assert!(
            w.iter()
                .all(|w| w.message.contains("outside every destinationCIDR"))
        );

        // Quiet: distinct destinations, exclusions inside them, no host bits.
        assert!(
            with_cidrs(
                "[0.0.0.0/0, \"::/0\"]",
                "[10.0.0.0/8, \"fd00::/8\", 10.1.2.0/24]"
            )
            .is_empty()
        );
    }

    #[test]
    fn a_namespace_and_a_single_gateway_node_are_lints() {
        let yaml = |gateway: &str| {
            format!(
                "metadata: {{name: p, namespace: team}}\nspec:\n  selectors: [{{podSelector: {{}}}}]\n  \
                 destinationCIDRs: [0.0.0.0/0]\n  egressGateway: {{nodeSelector: {{matchLabels: {gateway}}}}}\n"
            )
        };
        let lonely = policy(&yaml("{kubernetes.io/hostname: 172.22.49.20}"));
        assert_eq!(lonely.namespace.as_deref(), Some("team"));
        let paths = |w: Vec<Warning>| w.into_iter().map(|w| w.path).collect::<Vec<_>>();
        assert_eq!(
            paths(policy_warnings(&lonely, Some(&seed_nodes()))),
            ["metadata.namespace", "spec.egressGateway"]
        );
        // Without the nodes, only what the policy says by itself.
        assert_eq!(
            paths(policy_warnings(&lonely, None)),
            ["metadata.namespace"]
        );
        // A pool of three egress nodes: failover exists.
        let pool = policy(&yaml("{egress-node: 'true'}"));
        assert_eq!(
            paths(policy_warnings(&pool, Some(&seed_nodes()))),
            ["metadata.namespace"]
        );
    }

    #[test]
    fn destinations_of_a_family_no_endpoint_has() {
        let p = policy(
            "metadata: {name: p}\nspec:\n  selectors: [{podSelector: {}}]\n  \
             destinationCIDRs: [0.0.0.0/0, '::/0']\n  egressGateway: {nodeSelector: {}}\n",
        );
        let w = family_warnings(&p, true, false);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].path, "spec.destinationCIDRs[1]");
        assert!(
            w[0].message
                .contains("no endpoint in the input has an IPv6 address")
        );
        assert_eq!(
            family_warnings(&p, false, true)[0].path,
            "spec.destinationCIDRs[0]"
        );
        assert!(family_warnings(&p, true, true).is_empty());
    }

    /// cilium#48660 on 1.20 only: an IPv4 egressIP with dual-stack destinations fails when the
    /// device holding it (or, devices unknown, the node) has no IPv6 address.
    #[test]
    fn an_egress_ip_without_the_other_family_fails_on_1_20() {
        let dual = policy(&SEED.replace(r#"["0.0.0.0/0"]"#, r#"["0.0.0.0/0", "::/0"]"#));
        let nodes = seed_nodes();
        // Each node's eth0 holds its own IPv4 (its egressIP), with or without an IPv6.
        let devices = |v6: bool| -> std::collections::HashMap<String, Vec<Device>> {
            nodes
                .keys()
                .map(|name| {
                    let mut addresses = vec![crate::device::DeviceAddress {
                        addr: name.parse().unwrap(),
                        prefix_len: 20,
                    }];
                    if v6 {
                        addresses.push(crate::device::DeviceAddress {
                            addr: "2402::1".parse().unwrap(),
                            prefix_len: 64,
                        });
                    }
                    let dev = Device {
                        name: "eth0".into(),
                        index: 2,
                        alt_names: vec![],
                        addresses,
                        default_route: crate::device::Families::all(),
                    };
                    (name.clone(), vec![dev])
                })
                .collect()
        };
        let (v4_only, with_v6) = (devices(false), devices(true));
        let paths = |w: Vec<Warning>| w.into_iter().map(|w| w.path).collect::<Vec<_>>();
        let on = |version, devices: Option<&std::collections::HashMap<String, Vec<Device>>>| {
            version_warnings(&dual, version, Some(&nodes), |n| {
                devices.and_then(|d| d.get(n)).map(Vec::as_slice)
            })
        };
        let entries = dual.gateways_in_use().len();
        assert!(entries > 0);
        let all: Vec<String> = (0..entries)
            .filter(|i| dual.gateways_in_use()[*i].egress_ip.is_some())
            .map(|i| format!("{}.egressIP", dual.gateway_path(i)))
            .collect();
        assert!(!all.is_empty(), "the seed's entries name egress IPs");
        assert_eq!(paths(on(CiliumVersion::V1_20, Some(&v4_only))), all);
        let w = on(CiliumVersion::V1_20, Some(&v4_only));
        assert!(
            w[0].message.contains("device eth0 has no IPv6 address"),
            "{}",
            w[0]
        );
        assert!(on(CiliumVersion::V1_20, Some(&with_v6)).is_empty());
        // Devices unknown: the node's own addresses decide (the seed's have no IPv6).
        assert_eq!(paths(on(CiliumVersion::V1_20, None)), all);
        for version in [CiliumVersion::V1_18, CiliumVersion::V1_19] {
            assert!(on(version, Some(&v4_only)).is_empty(), "{version}");
        }
        // Without nodes (validate): named as at risk; IPv4 destinations alone: nothing.
        let unknown = version_warnings(&dual, CiliumVersion::V1_20, None, |_| None);
        assert!(
            unknown[0]
                .message
                .contains("unless the device holding it also has an IPv6 address")
        );
        let v4 = policy(SEED);
        assert!(version_warnings(&v4, CiliumVersion::V1_20, Some(&nodes), |_| None).is_empty());
    }
}
