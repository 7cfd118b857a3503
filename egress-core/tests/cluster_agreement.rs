//! Cluster agreement: one engine per node, each fed the same history of events — upserts,
//! older versions replaced, deletes and re-adds of policies, nodes and endpoints, objects
//! that come and go, changes of its own devices — in its own shuffled order. At the end
//! every engine's maps equal the batch path on the final objects, entry for entry (every
//! kind: gateway, excluded, no gateway, masquerade with egress IP and ifindex, IPv6); every
//! node agrees on every endpoint's gateway; only the gateway holds an egress IP for an
//! endpoint, exactly for the families whose derivation succeeded there (SEMANTICS A.5, B.2).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_fixture;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use cluster_fixture::{
    ENDPOINTS, NODES, address, by_label, devices, endpoint, endpoints, is_egress, name, node,
    policies, policy, state, v4,
};
use egress_core::cluster::{Endpoint, Node};
use egress_core::device::{Device, Families};
use egress_core::egress_ip::{self, Needed};
use egress_core::engine::{Engine, EngineConfig};
use egress_core::entries::{EXCLUDED_GATEWAY, Entry, NO_GATEWAY, compute};
use egress_core::gateway::Selection;
use egress_core::policy::{GatewaySpec, Policy};
use egress_core::timestamp::Timestamp;
use egress_core::version::Rules;

#[derive(Clone, Debug)]
enum Event {
    UpsertNode(Node),
    DeleteNode(String),
    UpsertPolicy(Policy),
    DeletePolicy(String),
    UpsertEndpoint(Endpoint),
    DeleteEndpoint(String),
    SetDevices(Vec<Device>),
}

fn apply(engine: &mut Engine, event: Event) {
    match event {
        Event::UpsertNode(n) => engine.upsert_node(n),
        Event::DeleteNode(n) => assert!(engine.delete_node(&n), "{n} was there"),
        Event::UpsertPolicy(p) => engine.upsert_policy(p).unwrap(),
        Event::DeletePolicy(p) => assert!(engine.delete_policy(&p), "{p} was there"),
        Event::UpsertEndpoint(e) => engine.upsert_endpoint(e).unwrap(),
        Event::DeleteEndpoint(u) => assert!(engine.delete_endpoint(&u), "{u} was there"),
        Event::SetDevices(d) => engine.set_devices(d),
    }
}

/// Node `i`'s history: some are replaced from an older version (egress label flipped,
/// another IPv4, readiness and weight changed), some deleted and re-added, some updated
/// and then restored; two nodes come and go (`node-0` sorts before `node-00`, so while it
/// exists it is the first egress node).
fn node_histories() -> Vec<Vec<Event>> {
    let older = |i: usize| {
        let mut n = node(i);
        let flipped = if is_egress(i) { "false" } else { "true" };
        n.labels = [
            ("kubernetes.io/hostname", name(i).as_str()),
            ("egress", flipped),
        ]
        .into_iter()
        .collect();
        n.ipv4 = Some(Ipv4Addr::new(10, 0, 2, i as u8 + 1));
        n.ready = !n.ready;
        n.weight = 3;
        n
    };
    let mut out: Vec<Vec<Event>> = (0..NODES)
        .map(|i| {
            let (old, new) = (Event::UpsertNode(older(i)), Event::UpsertNode(node(i)));
            match i % 4 {
                0 => vec![new.clone(), Event::DeleteNode(name(i)), new],
                1 => vec![old, new],
                2 => vec![new.clone(), old, new],
                _ => vec![new],
            }
        })
        .collect();
    for (extra, ip) in [("node-0", 250), ("node-99", 99)] {
        let mut n = Node::new(
            extra,
            [("kubernetes.io/hostname", extra), ("egress", "true")]
                .into_iter()
                .collect(),
            Some(Ipv4Addr::new(10, 0, 1, ip)),
        );
        let first = Event::UpsertNode(n.clone());
        n.weight = 5;
        out.push(vec![
            first,
            Event::UpsertNode(n),
            Event::DeleteNode(extra.into()),
        ]);
    }
    out
}

/// Policy histories: `web` and `nogw` replace older versions (other CIDRs, another gateway),
/// `db` is deleted and re-added, and `temp` — earliest by timestamp, so it wins every key it
/// shares with another policy — comes and goes.
fn policy_histories() -> Vec<Vec<Event>> {
    let by_name: BTreeMap<String, Policy> = policies()
        .into_iter()
        .map(|p| (p.name.clone(), p))
        .collect();
    let mut old_web = by_name["web"].clone();
    old_web.destination_cidrs.truncate(1);
    old_web.egress_gateway.interface = None;
    let mut old_nogw = by_name["nogw"].clone();
    old_nogw.egress_gateway.node_selector = by_label("egress", "true");
    old_nogw.selectors[0].node_selector = None;
    let mut temp = policy(
        "temp",
        "web",
        &["0.0.0.0/0", "::/0", "198.51.100.0/24"],
        &["10.0.0.0/8"],
    );
    temp.selectors.push(egress_core::policy::SelectorItem {
        pod_selector: Some(by_label("app", "db")),
        ..Default::default()
    });
    temp.creation_timestamp = Some(Timestamp {
        seconds: 1,
        nanos: 0,
    });
    temp.egress_gateways = vec![
        GatewaySpec {
            node_selector: by_label("egress", "true"),
            egress_ip: None,
            interface: None,
        },
        GatewaySpec {
            node_selector: by_label("kubernetes.io/hostname", &name(6)),
            egress_ip: None,
            interface: Some("eth1".into()),
        },
    ];
    let up = |p: &Policy| Event::UpsertPolicy(p.clone());
    vec![
        vec![Event::UpsertPolicy(old_web), up(&by_name["web"])],
        vec![
            up(&by_name["db"]),
            Event::DeletePolicy("db".into()),
            up(&by_name["db"]),
        ],
        vec![up(&by_name["batch"])],
        vec![Event::UpsertPolicy(old_nogw), up(&by_name["nogw"])],
        vec![
            Event::UpsertPolicy(temp),
            Event::DeletePolicy("temp".into()),
        ],
    ]
}

/// Endpoint histories: IPs changed (some from another endpoint's), deleted and re-added,
/// relabelled, moved to another node; twenty short-lived endpoints share IPs with final
/// ones (conflicts that must be undone when they go).
fn endpoint_histories() -> Vec<Vec<Event>> {
    let mut out: Vec<Vec<Event>> = (0..ENDPOINTS)
        .map(|k| {
            let new = endpoint(k);
            let mut old = new.clone();
            let final_event = Event::UpsertEndpoint(new.clone());
            match k % 5 {
                0 => {
                    // Addresses that go away, or another endpoint's (held before or after).
                    old.ips = if k % 10 == 0 {
                        endpoint((k + 7) % ENDPOINTS).ips
                    } else {
                        vec![
                            IpAddr::V4(Ipv4Addr::new(10, 2, 0, k as u8)),
                            format!("fd02::{:x}", k + 1).parse().unwrap(),
                        ]
                    };
                    vec![Event::UpsertEndpoint(old), final_event]
                }
                1 => vec![
                    final_event.clone(),
                    Event::DeleteEndpoint(new.uid),
                    final_event,
                ],
                2 => {
                    old.labels.insert("app", "other");
                    vec![Event::UpsertEndpoint(old), final_event]
                }
                3 => {
                    old.node = Some(name((k / 3 + 1) % NODES));
                    vec![Event::UpsertEndpoint(old), final_event]
                }
                _ => vec![final_event],
            }
        })
        .collect();
    for g in 0..20 {
        let shared = endpoint(g * 11 + 1);
        let gone = Endpoint {
            uid: format!("gone-{g}"),
            name: Some(format!("gone-{g}")),
            labels: [("app".to_owned(), ["web", "db", "batch"][g % 3].to_owned())].into(),
            node: Some(name(g)),
            ..shared
        };
        out.push(vec![
            Event::UpsertEndpoint(gone),
            Event::DeleteEndpoint(format!("gone-{g}")),
        ]);
    }
    out
}

/// Node `i`'s device history, ending with its final devices: eth1 renumbered and
/// readdressed, the IPv6 default route moved to eth1 (default-route derivation then fails),
/// no devices at all, eth0 readdressed.
fn device_history(i: usize) -> Vec<Event> {
    let mut moved = devices(i);
    moved[0].default_route = Families::IPV4;
    moved[0].addresses.reverse();
    moved.push(Device {
        name: "eth1".into(),
        index: 7,
        alt_names: vec![],
        addresses: vec![address("43.0.9.9", 24), address("2402:9::9", 64)],
        default_route: Families::IPV6,
    });
    moved.retain(|d| d.index != 3);
    let mut readdressed = devices(i);
    readdressed[0]
        .addresses
        .insert(0, address("192.168.77.1", 24));
    readdressed[0].index = 12;
    let last = Event::SetDevices(devices(i));
    match i % 3 {
        0 => vec![Event::SetDevices(moved), last],
        1 => vec![last.clone(), Event::SetDevices(vec![]), last],
        _ => vec![
            Event::SetDevices(readdressed),
            Event::SetDevices(moved),
            last,
        ],
    }
}

/// A random interleaving of the histories (each one's own order kept), by a seeded shuffle.
fn interleave(histories: Vec<Vec<Event>>, seed: u64) -> Vec<Event> {
    let mut tokens: Vec<usize> = histories
        .iter()
        .enumerate()
        .flat_map(|(h, events)| std::iter::repeat_n(h, events.len()))
        .collect();
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for i in (1..tokens.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        tokens.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let mut queues: Vec<std::vec::IntoIter<Event>> =
        histories.into_iter().map(Vec::into_iter).collect();
    tokens
        .into_iter()
        .map(|h| queues[h].next().unwrap())
        .collect()
}

/// Node `i`'s engine after its delivery of the whole history.
fn simulate(i: usize, selection: Selection) -> Engine {
    let mut histories = node_histories();
    histories.extend(policy_histories());
    histories.extend(endpoint_histories());
    // Every node event re-derives the local gateways too: on even nodes the last device
    // change comes after everything else, so that nothing later can mask a missed one.
    let mut devices = device_history(i);
    let last_devices = if i.is_multiple_of(2) {
        devices.pop()
    } else {
        None
    };
    histories.push(devices);
    let seed = i as u64 * 2 + u64::from(selection == Selection::Consistent);
    let mut engine = Engine::new(EngineConfig {
        selection,
        ..EngineConfig::new(name(i)).with_cilium_version(cluster_fixture::VERSION)
    });
    for event in interleave(histories, seed).into_iter().chain(last_devices) {
        apply(&mut engine, event);
    }
    engine
}

/// The first difference between two entry lists, for a readable failure.
fn first_difference(got: &[Entry], want: &[Entry]) -> String {
    match got.iter().zip(want).find(|(g, w)| g != w) {
        Some((g, w)) => format!("engine {g:?}\nbatch  {w:?}"),
        None => format!("{} entries vs {}", got.len(), want.len()),
    }
}

/// Entry kinds seen in the final maps, per family (0 IPv4, 1 IPv6).
#[derive(Debug, Default)]
struct Kinds {
    /// Destination entries with a gateway: default routes ...
    default_route: [usize; 2],
    /// ... and narrower destinations.
    narrower: [usize; 2],
    excluded: [usize; 2],
    no_gateway: [usize; 2],
    /// On the gateway itself: egress IP and ifindex set.
    masquerade_with_ifindex: [usize; 2],
    /// On the gateway itself, derivation failed: no egress IP.
    failed_on_gateway: [usize; 2],
}

impl Kinds {
    fn count(&mut self, e: &Entry, local: Ipv4Addr) {
        let f = usize::from(e.source.is_ipv6());
        match e.gateway_ip {
            EXCLUDED_GATEWAY => self.excluded[f] += 1,
            NO_GATEWAY => self.no_gateway[f] += 1,
            gw => {
                if e.destination.len == 0 {
                    self.default_route[f] += 1;
                } else {
                    self.narrower[f] += 1;
                }
                if gw == local && e.egress_ip.is_unspecified() {
                    self.failed_on_gateway[f] += 1;
                } else if gw == local && e.egress_ifindex != 0 {
                    self.masquerade_with_ifindex[f] += 1;
                }
            }
        }
    }

    fn assert_all_occur(&self, selection: Selection) {
        for (what, counts) in [
            ("default-route", self.default_route),
            ("narrower destination", self.narrower),
            ("excluded", self.excluded),
            ("no-gateway", self.no_gateway),
            ("masquerade with ifindex", self.masquerade_with_ifindex),
            ("failed-derivation", self.failed_on_gateway),
        ] {
            assert!(
                counts.iter().all(|&n| n > 0),
                "{selection:?}: {what} entries occur in both families: {counts:?} ({self:?})"
            );
        }
    }
}

fn check(selection: Selection) {
    let engines: Vec<Engine> = (0..NODES).map(|i| simulate(i, selection)).collect();
    let final_state = state();

    // 1. Every engine equals the batch path on the final objects, entry for entry.
    let mut kinds = Kinds::default();
    for (i, engine) in engines.iter().enumerate() {
        let batch = compute(
            &final_state,
            &name(i),
            &devices(i),
            Rules::new(selection, cluster_fixture::VERSION),
        );
        let got = engine.entries();
        assert!(
            got == batch.maps,
            "{selection:?} {}: the engine differs from the batch path:\nIPv4: {}\nIPv6: {}",
            name(i),
            first_difference(&got.ipv4, &batch.maps.ipv4),
            first_difference(&got.ipv6, &batch.maps.ipv6)
        );
        assert_eq!(
            engine.conflicts(),
            batch.conflicts,
            "{selection:?} {}",
            name(i)
        );
        for e in got.iter() {
            kinds.count(e, v4(i));
        }
    }
    kinds.assert_all_occur(selection);

    // 2. Every node writes the same keys with the same gateway IP; an egress IP or an
    // ifindex only on the gateway (for a destination entry, the node whose IPv4 it names),
    // never on two nodes, never for "no gateway".
    let maps: Vec<Vec<Entry>> = engines
        .iter()
        .map(|e| e.entries().iter().copied().collect())
        .collect();
    for (i, entries) in maps.iter().enumerate().skip(1) {
        assert_eq!(entries.len(), maps[0].len(), "{selection:?} {}", name(i));
    }
    for (k, first) in maps[0].iter().enumerate() {
        let row: Vec<&Entry> = maps.iter().map(|m| &m[k]).collect();
        let holders: Vec<usize> = (0..NODES)
            .filter(|&i| !row[i].egress_ip.is_unspecified() || row[i].egress_ifindex != 0)
            .collect();
        for (i, e) in row.iter().enumerate() {
            assert_eq!(
                (e.source, e.destination, e.gateway_ip),
                (first.source, first.destination, first.gateway_ip),
                "{selection:?}: {} disagrees with {}",
                name(i),
                name(0)
            );
        }
        assert!(holders.len() <= 1, "{selection:?} {first:?}: {holders:?}");
        match first.gateway_ip {
            NO_GATEWAY => assert!(holders.is_empty(), "{selection:?} {first:?}"),
            EXCLUDED_GATEWAY => {}
            gw => assert!(
                holders.iter().all(|&i| v4(i) == gw),
                "{selection:?} {first:?}: held by {holders:?}"
            ),
        }
    }

    // 3. Every node agrees on each endpoint's gateway, and on the gateway the egress IP of
    // each destination entry is exactly what derivation gives there.
    let by_ip: BTreeMap<Ipv4Addr, usize> = (0..NODES).map(|i| (v4(i), i)).collect();
    let keyed: Vec<BTreeMap<(IpAddr, IpAddr, u8), Entry>> = maps
        .iter()
        .map(|m| {
            m.iter()
                .map(|e| ((e.source, e.destination.addr, e.destination.len), *e))
                .collect()
        })
        .collect();
    let mut gateways_used = std::collections::BTreeSet::new();
    let (mut snat, mut failed) = (0, 0);
    for ep in endpoints() {
        for policy in policies() {
            let choices: Vec<Option<Ipv4Addr>> = engines
                .iter()
                .map(|e| e.gateway_of(&policy.name, &ep.uid).map(|g| g.gateway_ip))
                .collect();
            assert!(
                choices.iter().all(|c| *c == choices[0]),
                "{selection:?} {} {}: {choices:?}",
                policy.name,
                ep.uid
            );
            let Some(gateway_ip) = choices[0] else {
                continue;
            };
            let Some(&g) = by_ip.get(&gateway_ip) else {
                continue;
            };
            gateways_used.insert(g);
            let chosen = engines[g].gateway_of(&policy.name, &ep.uid).unwrap();
            let spec = &policy.gateways_in_use()[chosen.entry_index.unwrap()];

            let derived = egress_ip::derive(
                spec,
                Needed::of(&policy),
                &devices(g),
                cluster_fixture::VERSION,
            );
            for &src in &ep.ips {
                let want = if derived.failure.is_some() {
                    None
                } else {
                    Some(derived.ip(src.is_ipv4()))
                }
                .filter(|ip| !ip.is_unspecified());
                for cidr in policy
                    .destination_cidrs
                    .iter()
                    .filter(|c| c.is_ipv4() == src.is_ipv4())
                {
                    let entry = keyed[g][&(src, cidr.addr, cidr.len)];
                    assert_eq!(entry.gateway_ip, gateway_ip);
                    assert_eq!(
                        (!entry.egress_ip.is_unspecified()).then_some(entry.egress_ip),
                        want,
                        "{selection:?} {} gateway {} for {src} -> {cidr}",
                        policy.name,
                        name(g)
                    );
                    if want.is_some() {
                        snat += 1;
                    } else {
                        failed += 1;
                    }
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
