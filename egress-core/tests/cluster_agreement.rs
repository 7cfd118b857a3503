//! Cluster agreement: one engine per node, each fed the same objects in its own order, must
//! agree on every endpoint's gateway; only the gateway holds an egress IP for an endpoint,
//! and exactly for the families whose derivation succeeded there (SEMANTICS A.5, B.2).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use egress_core::cluster::{Endpoint, Node};
use egress_core::device::{Device, DeviceAddress, Families};
use egress_core::egress_ip::{self, Needed};
use egress_core::engine::{Engine, EngineConfig};
use egress_core::entries::Entry;
use egress_core::gateway::Selection;
use egress_core::labels::Labels;
use egress_core::netip::parse_prefix;
use egress_core::policy::{GatewaySpec, LabelSelector, Policy, SelectorItem};

const NODES: usize = 24;

fn name(i: usize) -> String {
    format!("node-{i:02}")
}

fn v4(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, i as u8 + 1)
}

fn nodes() -> Vec<Node> {
    (0..NODES)
        .map(|i| {
            let egress = if i % 3 == 0 { "true" } else { "false" };
            let labels: Labels = [
                ("kubernetes.io/hostname", name(i).as_str()),
                ("egress", egress),
            ]
            .into_iter()
            .collect();
            let mut n = Node::new(name(i), labels, Some(v4(i)));
            n.ipv6 = Some(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i as u16 + 1));
            // Some gateways are drained or unready: consistent mode avoids them.
            n.ready = i != 9;
            n.weight = if i == 12 { 0 } else { 1 + (i % 2) as u8 };
            n
        })
        .collect()
}

/// Each node's own devices; only some egress nodes have eth1 (so derivation fails elsewhere),
/// and one has eth1 without IPv6 (so only IPv4 succeeds... and then both fail, per A.3).
fn devices(i: usize) -> Vec<Device> {
    let addr = |s: String, prefix_len| DeviceAddress {
        addr: s.parse().unwrap(),
        prefix_len,
    };
    let mut list = vec![Device {
        name: "eth0".into(),
        index: 2,
        alt_names: vec![],
        addresses: vec![
            addr(v4(i).to_string(), 24),
            addr(format!("fd00::{:x}", i + 1), 64),
        ],
        default_route: Families::all(),
    }];
    if i.is_multiple_of(6) {
        let mut eth1 = vec![addr(format!("43.0.0.{}", i + 1), 24)];
        if i != 18 {
            eth1.push(addr(format!("2402::{:x}", i + 1), 64));
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

fn by_label(key: &str, value: &str) -> LabelSelector {
    LabelSelector {
        match_labels: vec![(key.into(), value.into())],
        match_expressions: vec![],
    }
}

fn policies() -> Vec<Policy> {
    let base = |name: &str, app: &str| Policy {
        name: name.into(),
        creation_timestamp: None,
        selectors: vec![SelectorItem {
            pod_selector: Some(by_label("app", app)),
            ..SelectorItem::default()
        }],
        destination_cidrs: vec![
            parse_prefix("0.0.0.0/0").unwrap(),
            parse_prefix("::/0").unwrap(),
        ],
        excluded_cidrs: vec![parse_prefix("10.0.0.0/8").unwrap()],
        egress_gateway: GatewaySpec::default(),
        egress_gateways: vec![],
    };
    let mut web = base("web", "web");
    web.egress_gateway = GatewaySpec {
        node_selector: by_label("egress", "true"),
        egress_ip: None,
        interface: Some("eth1".into()),
    };
    let mut db = base("db", "db");
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
    let mut batch = base("batch", "batch");
    batch.egress_gateway.node_selector = by_label("egress", "true");
    vec![web, db, batch]
}

fn endpoints() -> Vec<Endpoint> {
    (0..240)
        .map(|i| Endpoint {
            uid: format!("{:08x}-ep-{i}", (i as u32).wrapping_mul(2_654_435_761)),
            namespace: Some("default".into()),
            name: Some(format!("pod-{i}")),
            labels: [("app".to_owned(), ["web", "db", "batch"][i % 3].to_owned())].into(),
            ips: vec![
                IpAddr::V4(Ipv4Addr::new(10, 1, (i / 200) as u8, (i % 200) as u8 + 1)),
                IpAddr::V6(Ipv6Addr::new(0xfd01, 0, 0, 0, 0, 0, 0, i as u16 + 1)),
            ],
            node: Some(name(i % NODES)),
            ..Endpoint::default()
        })
        .collect()
}

enum Object {
    Node(Node),
    Policy(Policy),
    Endpoint(Endpoint),
}

/// The objects in a node-specific order (a deterministic shuffle seeded by the node).
fn delivery(seed: u64) -> Vec<Object> {
    let mut objects: Vec<Object> = nodes()
        .into_iter()
        .map(Object::Node)
        .chain(policies().into_iter().map(Object::Policy))
        .chain(endpoints().into_iter().map(Object::Endpoint))
        .collect();
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for i in (1..objects.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        objects.swap(i, (state % (i as u64 + 1)) as usize);
    }
    objects
}

fn check(selection: Selection) {
    let engines: Vec<Engine> = (0..NODES)
        .map(|i| {
            let mut e = Engine::new(EngineConfig {
                selection,
                ..EngineConfig::new(name(i))
            });
            e.set_devices(devices(i));
            for object in delivery(i as u64) {
                match object {
                    Object::Node(n) => e.upsert_node(n),
                    Object::Policy(p) => e.upsert_policy(p),
                    Object::Endpoint(ep) => e.upsert_endpoint(ep),
                }
            }
            e
        })
        .collect();
    // Each node's default-route entry per source.
    let defaults: Vec<BTreeMap<IpAddr, Entry>> = engines
        .iter()
        .map(|e| {
            e.entries()
                .iter()
                .filter(|x| x.destination.len == 0)
                .map(|x| (x.source, *x))
                .collect()
        })
        .collect();
    let by_ip: BTreeMap<Ipv4Addr, usize> = (0..NODES).map(|i| (v4(i), i)).collect();
    let policies: BTreeMap<String, Policy> = policies()
        .into_iter()
        .map(|p| (p.name.clone(), p))
        .collect();
    let mut gateways_used = std::collections::BTreeSet::new();
    let (mut snat, mut failed) = (0, 0);
    for ep in endpoints() {
        let policy = &policies[ep.labels["app"].as_str()];
        // Every node agrees on the gateway.
        let choices: Vec<_> = engines
            .iter()
            .map(|e| e.gateway_of(&policy.name, &ep.uid).unwrap().gateway_ip)
            .collect();
        assert!(
            choices.iter().all(|c| *c == choices[0]),
            "{selection:?} {}: {choices:?}",
            ep.uid
        );
        let gateway_ip = choices[0];
        let gateway = by_ip.get(&gateway_ip).copied();
        if let Some(g) = gateway {
            gateways_used.insert(g);
        }
        for &src in &ep.ips {
            for (i, e) in engines.iter().enumerate() {
                let entry = defaults[i][&src];
                assert_eq!(entry.gateway_ip, gateway_ip, "node {i} disagrees on {src}");
                if Some(i) != gateway {
                    assert!(
                        entry.egress_ip.is_unspecified(),
                        "{selection:?}: node {i} is not {src}'s gateway but holds {}",
                        entry.egress_ip
                    );
                    continue;
                }
                // On the gateway: an egress IP exactly when derivation succeeded for the family.
                let chosen = e.gateway_of(&policy.name, &ep.uid).unwrap();
                let spec = &policy.gateways_in_use()[chosen.entry_index.unwrap()];
                let n = &nodes()[i];
                let derived = egress_ip::derive(
                    spec,
                    Needed { v4: true, v6: true },
                    &devices(i),
                    (n.ipv4, n.ipv6),
                );
                let want = if derived.failure.is_some() {
                    None
                } else {
                    Some(derived.ip(src.is_ipv4()))
                }
                .filter(|ip| !ip.is_unspecified());
                assert_eq!(
                    (!entry.egress_ip.is_unspecified()).then_some(entry.egress_ip),
                    want,
                    "{selection:?} gateway {i} for {src}"
                );
                if want.is_some() {
                    snat += 1
                } else {
                    failed += 1
                }
            }
        }
    }
    assert!(
        snat > 0 && failed > 0,
        "both successful and failed derivations are exercised: {snat} / {failed}"
    );
    assert!(
        gateways_used.len() >= 4,
        "the endpoints spread over several gateways: {gateways_used:?}"
    );
    if selection == Selection::Consistent {
        assert!(
            !gateways_used.contains(&9) && !gateways_used.contains(&12),
            "unready and drained nodes are left out"
        );
    }
}

#[test]
fn every_node_agrees_in_cilium_mode() {
    check(Selection::Cilium);
}

#[test]
fn every_node_agrees_in_consistent_mode() {
    check(Selection::Consistent);
}
