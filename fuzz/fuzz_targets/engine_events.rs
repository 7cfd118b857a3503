//! Random event sequences against the engine, on a small cluster so that events collide:
//! nodes (the local one, n0, stays), endpoints, policies from templates, plans taken and
//! written in full or in part. After every step: no panic; the model of the kernel map —
//! every plan written so far, operation by operation, decoded — equals the programmed state,
//! and after a whole plan the desired entries; a lookup equals the standalone table's over
//! the desired entries; and the engine fed the same objects at once computes the same.
#![no_main]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use egress_core::cluster::{Endpoint, Node};
use egress_core::engine::{Action, Engine, EngineConfig};
use egress_core::entries::{Entry, MapEntries};
use egress_core::lookup::LookupTable;
use egress_core::policy::{Policy, parse_policy_text};
use libfuzzer_sys::fuzz_target;

const POLICIES: [&str; 4] = [
    "metadata: {name: a}\nspec: {selectors: [{podSelector: {matchLabels: {app: a}}}], destinationCIDRs: [0.0.0.0/0, '::/0'], excludedCIDRs: [10.9.0.0/16], egressGateway: {nodeSelector: {matchLabels: {egress: 'true'}}}}",
    "metadata: {name: b, creationTimestamp: '2020-01-01T00:00:00Z'}\nspec: {selectors: [{podSelector: {}}], destinationCIDRs: [10.9.0.0/16, 10.9.1.0/24], egressGateway: {nodeSelector: {matchLabels: {egress: 'true'}}}, egressGateways: [{nodeSelector: {matchLabels: {egress: 'true'}}, interface: eth1}, {nodeSelector: {matchLabels: {zone: b}}}]}",
    "metadata: {name: c}\nspec: {selectors: [{podSelector: {matchLabels: {app: b}}, nodeSelector: {matchLabels: {zone: b}}}], destinationCIDRs: [0.0.0.0/0], egressGateway: {nodeSelector: {matchLabels: {egress: 'true'}}, egressIP: 10.0.0.1}}",
    "metadata: {name: a}\nspec: {selectors: [{podSelector: {matchLabels: {app: b}}}], destinationCIDRs: [10.9.1.0/24], egressGateway: {nodeSelector: {matchLabels: {none: x}}}}",
];

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn next(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
}

fn node(i: u8, flags: u8) -> Node {
    let mut labels = vec![("kubernetes.io/hostname".to_owned(), format!("n{i}"))];
    if flags & 1 != 0 || i == 0 {
        labels.push(("egress".to_owned(), "true".to_owned()));
    }
    if flags & 2 != 0 {
        labels.push(("zone".to_owned(), "b".to_owned()));
    }
    let mut n = Node::new(
        format!("n{i}"),
        labels.into_iter().collect(),
        Some(Ipv4Addr::new(10, 0, 0, i + 1)),
    );
    n.ready = flags & 4 == 0;
    n.weight = (flags >> 3) % 3;
    n
}

fn endpoint(j: u8, flags: u8) -> Endpoint {
    let mut ips = vec![IpAddr::V4(Ipv4Addr::new(10, 1, 0, j + 1))];
    if flags & 1 != 0 {
        ips.push(format!("fd00::{}", j + 1).parse().unwrap());
    }
    Endpoint {
        uid: format!("u{j}"),
        namespace: Some("d".into()),
        labels: [(
            "app".to_owned(),
            if flags & 2 != 0 { "b" } else { "a" }.to_owned(),
        )]
        .into(),
        ips,
        node: Some(format!("n{}", (flags >> 2) % 4)),
        ..Endpoint::default()
    }
}

fn desired_oracle(objects: &Objects, selection_consistent: bool) -> MapEntries {
    let mut config = EngineConfig::new("n0");
    if selection_consistent {
        config.selection = egress_core::gateway::Selection::Consistent;
    }
    let mut e = Engine::new(config);
    for n in objects.nodes.values() {
        e.upsert_node(n.clone());
    }
    for p in objects.policies.values() {
        e.upsert_policy(p.clone()).unwrap();
    }
    for ep in objects.endpoints.values() {
        e.upsert_endpoint(ep.clone()).unwrap();
    }
    e.entries()
}

#[derive(Default)]
struct Objects {
    nodes: BTreeMap<String, Node>,
    endpoints: BTreeMap<String, Endpoint>,
    policies: BTreeMap<String, Policy>,
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = Bytes(data);
    let consistent = bytes.next().is_some_and(|b| b & 1 == 1);
    let mut config = EngineConfig::new("n0");
    if consistent {
        config.selection = egress_core::gateway::Selection::Consistent;
    }
    let mut engine = Engine::new(config);
    let mut objects = Objects::default();
    let n0 = node(0, 1);
    objects.nodes.insert(n0.name.clone(), n0.clone());
    engine.upsert_node(n0);
    let templates: Vec<Policy> = POLICIES
        .iter()
        .map(|t| parse_policy_text(t).unwrap().remove(0).unwrap())
        .collect();
    // The kernel map as the plans written so far made it.
    let mut model: BTreeMap<(String, Vec<u8>), Vec<u8>> = BTreeMap::new();
    let mut steps = 0;
    while let (Some(op), Some(arg)) = (bytes.next(), bytes.next()) {
        steps += 1;
        if steps > 64 {
            break;
        }
        match op % 7 {
            0 => {
                let n = node(arg % 4, arg >> 2);
                objects.nodes.insert(n.name.clone(), n.clone());
                engine.upsert_node(n);
            }
            1 if arg % 4 != 0 => {
                let name = format!("n{}", arg % 4);
                assert_eq!(
                    engine.delete_node(&name),
                    objects.nodes.remove(&name).is_some()
                );
            }
            2 => {
                let ep = endpoint(arg % 8, arg >> 3);
                objects.endpoints.insert(ep.uid.clone(), ep.clone());
                engine.upsert_endpoint(ep).unwrap();
            }
            3 => {
                let uid = format!("u{}", arg % 8);
                assert_eq!(
                    engine.delete_endpoint(&uid),
                    objects.endpoints.remove(&uid).is_some()
                );
            }
            4 => {
                let p = templates[usize::from(arg) % templates.len()].clone();
                objects.policies.insert(p.name.clone(), p.clone());
                engine.upsert_policy(p).unwrap();
            }
            5 => {
                let name = ["a", "b", "c"][usize::from(arg) % 3];
                assert_eq!(
                    engine.delete_policy(name),
                    objects.policies.remove(name).is_some()
                );
            }
            _ => {
                let plan = engine
                    .take_plan()
                    .expect("16384 entries are never reached here");
                // Upserts before deletes (16384 is never reached: never deletes first).
                let first_delete = plan.ops().iter().position(|o| o.action() == Action::Delete);
                if let Some(d) = first_delete {
                    assert!(plan.ops()[d..].iter().all(|o| o.action() == Action::Delete));
                }
                let applied = if arg & 1 == 0 {
                    plan.len()
                } else {
                    usize::from(arg >> 1) % (plan.len() + 1)
                };
                for op in &plan.ops()[..applied] {
                    let key = (op.map().name().to_owned(), op.key().to_vec());
                    match op.action() {
                        Action::Upsert => {
                            model.insert(key, op.value().to_vec());
                        }
                        Action::Delete => {
                            assert!(
                                model.remove(&key).is_some(),
                                "a delete of a key not written"
                            );
                        }
                    }
                }
                engine.ack(&plan, applied).unwrap();
                if applied == plan.len() {
                    let written: Vec<Entry> = model
                        .iter()
                        .map(|((map, k), v)| {
                            let id = egress_core::maps::MapId::from_name(map).unwrap();
                            Entry::decode(id, k, v).unwrap()
                        })
                        .collect();
                    assert_eq!(MapEntries::from_entries(written), engine.entries());
                    assert!(engine.take_plan().unwrap().is_empty());
                }
            }
        }
        // Lookups against the standalone table over the desired entries.
        let entries = engine.entries();
        let table = LookupTable::new(&entries, Some(Ipv4Addr::new(10, 0, 0, 1)));
        for e in entries.iter().take(8) {
            for dst in [
                e.destination.addr,
                IpAddr::V4(Ipv4Addr::new(10, 9, 1, 7)),
                IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
            ] {
                assert_eq!(
                    engine.lookup(e.source, dst),
                    table.lookup(e.source, dst),
                    "{} -> {dst}",
                    e.source
                );
            }
        }
    }
    // Incremental = at once.
    assert_eq!(engine.entries(), desired_oracle(&objects, consistent));
});
