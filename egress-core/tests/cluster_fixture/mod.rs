//! A 24-node dual-stack cluster shared by integration tests: every kind of map entry occurs
//! on some node — masquerade entries on gateways (egress IP and ifindex set), forwarding
//! entries elsewhere, excluded CIDRs, a policy without gateway, failed derivations, IPv6.
//!
//! - nodes `node-00`…`node-23`, `10.0.0.<i+1>` and `fd00::<i+1>`; every third one is an
//!   egress node (`egress=true`); `node-09` is unready and `node-12` drained (consistent
//!   mode leaves them out);
//! - devices: `eth0` (index 2, the node's addresses, both default routes) everywhere; `eth1`
//!   (index 3, `43.0.0.<i+1>` and `2402::<i+1>`) on every sixth node, IPv4 only on `node-18`;
//! - policies: `web` (`interface: eth1` on the egress nodes), `db` (five `egressIP` entries,
//!   `node-03`'s on none of its devices), `batch` (default-route derivation, several
//!   destinations), `nogw` (a gateway selector matching no node, a `selectors[].nodeSelector`);
//! - 240 endpoints, `app` = web/db/batch in turn, spread over the nodes.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Each test binary including this module uses only part of it.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use egress_core::cluster::{Endpoint, Node, Nodes};
use egress_core::device::{Device, DeviceAddress, Families};
use egress_core::engine::{Engine, EngineConfig};
use egress_core::version::CiliumVersion;

/// The Cilium version the fixture's engines reproduce: 1.20, whose maps hold the ifindex of
/// both families (the lookups' masquerade-with-ifindex verdicts need it).
pub(crate) const VERSION: CiliumVersion = CiliumVersion::V1_20;
use egress_core::entries::ClusterState;
use egress_core::gateway::Selection;
use egress_core::labels::Labels;
use egress_core::netip::parse_prefix;
use egress_core::policy::{GatewaySpec, LabelSelector, Policy, SelectorItem};

/// Number of nodes.
pub(crate) const NODES: usize = 24;
/// Number of endpoints.
pub(crate) const ENDPOINTS: usize = 240;

/// Node `i`'s name.
pub(crate) fn name(i: usize) -> String {
    format!("node-{i:02}")
}

/// Node `i`'s IPv4 (its gateway IP).
pub(crate) fn v4(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, i as u8 + 1)
}

/// Node `i`'s IPv6.
pub(crate) fn v6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i as u16 + 1)
}

/// Whether node `i` is an egress node.
pub(crate) fn is_egress(i: usize) -> bool {
    i.is_multiple_of(3)
}

/// Node `i`.
pub(crate) fn node(i: usize) -> Node {
    let labels: Labels = [
        ("kubernetes.io/hostname", name(i).as_str()),
        ("egress", if is_egress(i) { "true" } else { "false" }),
    ]
    .into_iter()
    .collect();
    let mut n = Node::new(name(i), labels, Some(v4(i)));
    n.ipv6 = Some(v6(i));
    n.ready = i != 9;
    n.weight = if i == 12 { 0 } else { 1 + (i % 2) as u8 };
    n
}

/// Every node.
pub(crate) fn nodes() -> Vec<Node> {
    (0..NODES).map(node).collect()
}

/// An interface address.
pub(crate) fn address(addr: &str, prefix_len: u8) -> DeviceAddress {
    DeviceAddress {
        addr: addr.parse().unwrap(),
        prefix_len,
    }
}

/// Node `i`'s devices.
pub(crate) fn devices(i: usize) -> Vec<Device> {
    let mut list = vec![Device {
        name: "eth0".into(),
        index: 2,
        alt_names: vec![],
        addresses: vec![
            address(&v4(i).to_string(), 24),
            address(&v6(i).to_string(), 64),
        ],
        default_route: Families::all(),
    }];
    if i.is_multiple_of(6) {
        let mut eth1 = vec![address(&format!("43.0.0.{}", i + 1), 24)];
        if i != 18 {
            eth1.push(address(&format!("2402::{:x}", i + 1), 64));
        }
        list.push(Device {
            name: "eth1".into(),
            index: 3,
            alt_names: vec![],
            addresses: eth1,
            default_route: Families::empty(),
        });
    }
    list
}

/// A selector with one `matchLabels` pair.
pub(crate) fn by_label(key: &str, value: &str) -> LabelSelector {
    LabelSelector {
        match_labels: vec![(key.into(), value.into())],
        match_expressions: vec![],
    }
}

/// A policy selecting `app=<app>`, with the given CIDRs and an empty gateway entry.
pub(crate) fn policy(name: &str, app: &str, destinations: &[&str], excluded: &[&str]) -> Policy {
    let cidrs = |list: &[&str]| list.iter().map(|c| parse_prefix(c).unwrap()).collect();
    Policy {
        name: name.into(),
        namespace: None,
        creation_timestamp: None,
        selectors: vec![SelectorItem {
            pod_selector: Some(by_label("app", app)),
            ..SelectorItem::default()
        }],
        destination_cidrs: cidrs(destinations),
        excluded_cidrs: cidrs(excluded),
        egress_gateway: GatewaySpec::default(),
        egress_gateways: vec![],
    }
}

/// The policies.
pub(crate) fn policies() -> Vec<Policy> {
    let mut web = policy(
        "web",
        "web",
        &["0.0.0.0/0", "::/0"],
        &["10.0.0.0/8", "fd00::/8"],
    );
    web.egress_gateway = GatewaySpec {
        node_selector: by_label("egress", "true"),
        egress_ip: None,
        interface: Some("eth1".into()),
    };
    let mut db = policy("db", "db", &["0.0.0.0/0", "::/0"], &["10.0.0.0/8"]);
    db.egress_gateway.node_selector = by_label("egress", "true");
    db.egress_gateways = [0, 3, 6, 9, 12]
        .iter()
        .map(|&i| GatewaySpec {
            node_selector: by_label("kubernetes.io/hostname", &name(i)),
            // node-03's egressIP is on none of its devices: derivation fails there.
            egress_ip: Some(if i == 3 {
                "198.51.100.3".parse().unwrap()
            } else {
                IpAddr::V4(v4(i))
            }),
            interface: None,
        })
        .collect();
    let mut batch = policy(
        "batch",
        "batch",
        &["0.0.0.0/0", "192.0.2.0/24", "::/0", "2001:db8:1::/48"],
        &["10.0.0.0/8", "192.0.2.128/25", "fd00::/8"],
    );
    batch.egress_gateway.node_selector = by_label("egress", "true");
    // No node matches its gateway: drop entries (0.0.0.0), for batch pods on non-egress nodes.
    let mut nogw = policy(
        "nogw",
        "batch",
        &["198.51.100.0/24", "2001:db8:2::/48"],
        &["198.51.100.7/32", "2001:db8:2::7/128"],
    );
    nogw.selectors[0].node_selector = Some(by_label("egress", "false"));
    nogw.egress_gateway.node_selector = by_label("egress", "nowhere");
    vec![web, db, batch, nogw]
}

/// Endpoint `k`.
pub(crate) fn endpoint(k: usize) -> Endpoint {
    Endpoint {
        uid: format!("{:08x}-ep-{k}", (k as u32).wrapping_mul(2_654_435_761)),
        namespace: Some("default".into()),
        name: Some(format!("pod-{k}")),
        labels: [("app".to_owned(), ["web", "db", "batch"][k % 3].to_owned())].into(),
        ips: vec![
            IpAddr::V4(Ipv4Addr::new(10, 1, (k / 200) as u8, (k % 200) as u8 + 1)),
            IpAddr::V6(Ipv6Addr::new(0xfd01, 0, 0, 0, 0, 0, 0, k as u16 + 1)),
        ],
        // Every app on every node (so `nogw`'s node filter keeps some and drops others).
        node: Some(name((k / 3) % NODES)),
        ..Endpoint::default()
    }
}

/// Every endpoint.
pub(crate) fn endpoints() -> Vec<Endpoint> {
    (0..ENDPOINTS).map(endpoint).collect()
}

/// The objects, as the batch path reads them.
pub(crate) fn state() -> ClusterState {
    ClusterState {
        cluster: None,
        nodes: node_map(),
        endpoints: endpoints(),
        policies: policies(),
    }
}

/// The nodes by name.
pub(crate) fn node_map() -> Nodes {
    nodes().into_iter().map(|n| (n.name.clone(), n)).collect()
}

/// Node `i`'s engine holding every object, with node `i`'s devices.
/// Node `i`'s engine on [`VERSION`] (the ifindex derived for both families), writing
/// `_v4_v2` alone.
pub(crate) fn engine(i: usize, selection: Selection) -> Engine {
    let mut e = Engine::new(EngineConfig {
        selection,
        ..EngineConfig::new(name(i))
            .with_cilium_version(VERSION)
            .with_layout(egress_core::maps::Layout::V4V2)
    });
    e.set_devices(devices(i));
    for n in nodes() {
        e.upsert_node(n);
    }
    for p in policies() {
        e.upsert_policy(p).unwrap();
    }
    for ep in endpoints() {
        e.upsert_endpoint(ep).unwrap();
    }
    e
}
