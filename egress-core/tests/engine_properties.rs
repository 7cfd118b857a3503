//! Property tests of the incremental engine: any event sequence ends equal to the batch path;
//! any order of the same objects gives byte-identical maps; a plan applied to the programmed
//! map gives the desired map, with partial acknowledgements re-emitting the rest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use egress_core::cluster::{Endpoint, Node};
use egress_core::device::{Device, DeviceAddress, Families};
use egress_core::engine::{Action, Engine, EngineConfig, PlanError};
use egress_core::entries::{ClusterState, Entry, KeyIdentity, compute, count};
use egress_core::gateway::Selection;
use egress_core::labels::Labels;
use egress_core::lookup::LookupTable;
use egress_core::maps::{Layout, MapId};
use egress_core::netip::parse_prefix;
use egress_core::policy::{
    GatewaySpec, LabelSelector, Operator, Policy, Requirement, SelectorItem,
};
use egress_core::timestamp::Timestamp;
use proptest::prelude::*;

const LOCAL: &str = "n0";
const NODES: [&str; 5] = ["n0", "n1", "n2", "n3", "n4"];
const UIDS: [&str; 8] = ["u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7"];
const POLICIES: [&str; 4] = ["pa", "pb", "pc", "pd"];
const NAMESPACES: [&str; 2] = ["ns1", "ns2"];
/// Host-bit twins, overlaps, both families.
const CIDRS: [&str; 8] = [
    "0.0.0.0/0",
    "1.2.3.4/24",
    "1.2.3.0/24",
    "10.0.0.0/8",
    "1.2.0.0/16",
    "::/0",
    "2001:db8::1/64",
    "2001:db8::/64",
];

#[derive(Clone, Debug)]
enum Event {
    UpsertNode(Node),
    DeleteNode(&'static str),
    UpsertPolicy(Policy),
    DeletePolicy(&'static str),
    UpsertEndpoint(Endpoint),
    DeleteEndpoint(&'static str),
    UpsertNamespace(&'static str, BTreeMap<String, String>),
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().copied().collect()
}

fn local_devices() -> Vec<Device> {
    vec![
        Device {
            name: "eth0".into(),
            index: 2,
            alt_names: vec![],
            addresses: vec![
                DeviceAddress {
                    addr: "192.168.0.1".parse().unwrap(),
                    prefix_len: 24,
                },
                DeviceAddress {
                    addr: "fd00::1".parse().unwrap(),
                    prefix_len: 64,
                },
            ],
            default_route: Families::all(),
        },
        Device {
            name: "eth1".into(),
            index: 3,
            alt_names: vec!["wan".into()],
            addresses: vec![DeviceAddress {
                addr: "43.0.0.1".parse().unwrap(),
                prefix_len: 24,
            }],
            default_route: Families::empty(),
        },
    ]
}

fn node() -> impl Strategy<Value = Node> {
    (
        0..NODES.len(),
        any::<bool>(),
        0u8..3,
        0u8..4,
        any::<bool>(),
        0u8..3,
    )
        .prop_map(|(i, egress, zone, ip, ready, weight)| {
            let name = NODES[i];
            let zone = ["a", "b", "c"][zone as usize];
            let mut n = Node::new(
                name,
                labels(&[
                    ("kubernetes.io/hostname", name),
                    ("egress", if egress { "true" } else { "false" }),
                    ("zone", zone),
                ]),
                // Node IPs come from a small pool: changes and (rare) equal IPs happen.
                (ip < 3).then(|| {
                    format!("192.168.0.{}", i * 2 + usize::from(ip == 2) + 1)
                        .parse()
                        .unwrap()
                }),
            );
            n.ready = ready;
            n.weight = weight;
            n
        })
}

fn selector(
    key: &'static str,
    values: &'static [&'static str],
) -> impl Strategy<Value = LabelSelector> {
    prop::sample::select(values).prop_map(move |v| LabelSelector {
        match_labels: vec![(key.into(), v.into())],
        match_expressions: vec![],
    })
}

/// A pod selector over `app` with one label or one expression of each operator: the engine
/// files policies by the labels their selectors require (`In`, an equal label), and checks
/// the others for every endpoint.
fn pod_selector() -> impl Strategy<Value = LabelSelector> {
    prop_oneof![
        selector("app", &["web", "db"]),
        (
            0usize..4,
            prop::sample::subsequence(vec!["web", "db", "api"], 1..3)
        )
            .prop_map(|(op, values)| {
                let operator = [
                    Operator::In,
                    Operator::NotIn,
                    Operator::Exists,
                    Operator::DoesNotExist,
                ][op];
                let values = match operator {
                    Operator::In | Operator::NotIn => {
                        values.iter().map(|v| (*v).to_owned()).collect()
                    }
                    _ => vec![],
                };
                LabelSelector {
                    match_labels: vec![],
                    match_expressions: vec![Requirement {
                        key: "app".into(),
                        operator,
                        values,
                    }],
                }
            }),
    ]
}

fn gateway() -> impl Strategy<Value = GatewaySpec> {
    (
        prop_oneof![
            selector("egress", &["true"]),
            selector("kubernetes.io/hostname", &["n0", "n1", "n2", "nX"])
        ],
        0u8..4,
    )
        .prop_map(|(node_selector, how)| GatewaySpec {
            node_selector,
            egress_ip: (how == 1).then(|| "43.0.0.1".parse().unwrap()),
            interface: match how {
                2 => Some("eth1".into()),
                3 => Some("wan".into()),
                _ => None,
            },
        })
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        0..POLICIES.len(),
        0u8..3,
        prop::collection::vec(
            (
                prop::option::of(pod_selector()),
                prop::option::of(selector("team", &["x", "y"])),
                prop::option::of(selector("zone", &["a", "b"])),
            ),
            1..3,
        ),
        prop::sample::subsequence(CIDRS.to_vec(), 0..4),
        prop::sample::subsequence(CIDRS.to_vec(), 0..3),
        gateway(),
        prop::collection::vec(gateway(), 0..3),
    )
        .prop_map(|(i, ts, items, dests, excluded, single, list)| Policy {
            name: POLICIES[i].into(),
            namespace: None,
            // Equal timestamps happen: names break the tie.
            creation_timestamp: (ts > 0).then(|| Timestamp {
                seconds: i64::from(ts),
                nanos: 0,
            }),
            selectors: items
                .into_iter()
                .map(|(pod, ns, node)| SelectorItem {
                    pod_selector: pod.or_else(|| ns.is_none().then(LabelSelector::default)),
                    namespace_selector: ns,
                    node_selector: node,
                })
                .collect(),
            destination_cidrs: dests.iter().map(|c| parse_prefix(c).unwrap()).collect(),
            excluded_cidrs: excluded.iter().map(|c| parse_prefix(c).unwrap()).collect(),
            egress_gateway: single,
            egress_gateways: list,
        })
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    (
        0..UIDS.len(),
        prop::sample::select(&["web", "db", "other"][..]),
        0..NAMESPACES.len(),
        prop::sample::subsequence(
            vec!["10.1.0.1", "10.1.0.2", "10.1.0.3", "fd01::1", "fd01::2"],
            0..3,
        ),
        prop::option::of(0..NODES.len()),
        prop::sample::select(&["x", "y"][..]),
    )
        .prop_map(|(u, app, ns, ips, node, team)| Endpoint {
            uid: UIDS[u].into(),
            namespace: Some(NAMESPACES[ns].into()),
            name: Some(format!("pod-{u}")),
            labels: [("app".to_owned(), app.to_owned())].into(),
            namespace_labels: [("team".to_owned(), team.to_owned())].into(),
            // IPs from a small pool: endpoints share and reuse IPs.
            ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
            node: node.map(|n| NODES[n].to_owned()),
            ..Endpoint::default()
        })
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => node().prop_map(Event::UpsertNode),
        1 => prop::sample::select(&NODES[..]).prop_map(Event::DeleteNode),
        3 => policy().prop_map(Event::UpsertPolicy),
        1 => prop::sample::select(&POLICIES[..]).prop_map(Event::DeletePolicy),
        5 => endpoint().prop_map(Event::UpsertEndpoint),
        2 => prop::sample::select(&UIDS[..]).prop_map(Event::DeleteEndpoint),
        1 => (prop::sample::select(&NAMESPACES[..]), prop::sample::select(&["x", "y"][..]))
            .prop_map(|(ns, team)| Event::UpsertNamespace(ns, [("team".to_owned(), team.to_owned())].into())),
    ]
}

/// The objects the events leave behind, maintained the simple way.
#[derive(Default)]
struct Model {
    nodes: BTreeMap<String, Node>,
    endpoints: BTreeMap<String, Endpoint>,
    policies: BTreeMap<String, Policy>,
}

impl Model {
    fn apply(&mut self, event: &Event) {
        match event {
            Event::UpsertNode(n) => {
                self.nodes.insert(n.name.clone(), n.clone());
            }
            Event::DeleteNode(n) => {
                self.nodes.remove(*n);
            }
            Event::UpsertPolicy(p) => {
                self.policies.insert(p.name.clone(), p.clone());
            }
            Event::DeletePolicy(p) => {
                self.policies.remove(*p);
            }
            Event::UpsertEndpoint(e) => {
                self.endpoints.insert(e.uid.clone(), e.clone());
            }
            Event::DeleteEndpoint(u) => {
                self.endpoints.remove(*u);
            }
            Event::UpsertNamespace(ns, labels) => {
                for e in self
                    .endpoints
                    .values_mut()
                    .filter(|e| e.namespace.as_deref() == Some(ns))
                {
                    e.namespace_labels = labels.into();
                }
            }
        }
    }

    fn state(&self) -> ClusterState {
        ClusterState {
            cluster: None,
            nodes: self.nodes.clone(),
            endpoints: self.endpoints.values().cloned().collect(),
            policies: self.policies.values().cloned().collect(),
        }
    }

    /// The objects as upsert events, in the given order.
    fn upserts(&self) -> Vec<Event> {
        let nodes = self.nodes.values().cloned().map(Event::UpsertNode);
        let policies = self.policies.values().cloned().map(Event::UpsertPolicy);
        let endpoints = self.endpoints.values().cloned().map(Event::UpsertEndpoint);
        nodes.chain(policies).chain(endpoints).collect()
    }
}

fn new_engine(selection: Selection) -> Engine {
    let mut e = Engine::new(EngineConfig {
        selection,
        ..EngineConfig::new(LOCAL)
    });
    e.set_devices(local_devices());
    e
}

fn apply(engine: &mut Engine, event: &Event) {
    match event.clone() {
        Event::UpsertNode(n) => engine.upsert_node(n),
        Event::DeleteNode(n) => {
            engine.delete_node(n);
        }
        // The generated policies have IPv4 egress IPs and few gateways: valid everywhere.
        Event::UpsertPolicy(p) => engine.upsert_policy(p).unwrap(),
        Event::DeletePolicy(p) => {
            engine.delete_policy(p);
        }
        Event::UpsertEndpoint(e) => engine.upsert_endpoint(e).unwrap(),
        Event::DeleteEndpoint(u) => {
            engine.delete_endpoint(u);
        }
        Event::UpsertNamespace(ns, labels) => engine.upsert_namespace(ns, labels).unwrap(),
    }
}

fn selection() -> impl Strategy<Value = Selection> {
    prop_oneof![Just(Selection::Cilium), Just(Selection::Consistent)]
}

/// Encoded bytes of every entry, for byte-identity.
fn bytes(entries: &[Entry]) -> Vec<Vec<u8>> {
    entries
        .iter()
        .map(|e| {
            let mut out = Vec::new();
            if let Some((k, v)) = e.to_map_v4() {
                let (mut kb, mut vb) = ([0u8; 12], [0u8; 28]);
                k.encode(&mut kb);
                v.encode(&mut vb);
                out.extend(kb);
                out.extend(vb);
            } else if let Some((k, v)) = e.to_map_v6() {
                let (mut kb, mut vb) = ([0u8; 36], [0u8; 40]);
                k.encode(&mut kb);
                v.encode(&mut vb);
                out.extend(kb);
                out.extend(vb);
            }
            out
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    #[test]
    fn any_event_sequence_ends_equal_to_the_batch_path(
        events in prop::collection::vec(event(), 1..40),
        selection in selection(),
    ) {
        let mut engine = new_engine(selection);
        let mut model = Model::default();
        for event in &events {
            apply(&mut engine, event);
            model.apply(event);
        }
        let batch = compute(&model.state(), LOCAL, &local_devices(), selection);
        prop_assert_eq!(engine.entries(), batch.maps.clone());
        // Counted without building (issue 21): the batch path's and the engine's numbers.
        prop_assert_eq!(count(&model.state()), [batch.maps.ipv4.len(), batch.maps.ipv6.len()]);
        prop_assert_eq!(engine.entry_counts(), [batch.maps.ipv4.len(), batch.maps.ipv6.len()]);
        // Streamed one source at a time: the same entries in the same order.
        prop_assert_eq!(&engine.entries_streamed(false).collect::<Vec<_>>(), &batch.maps.ipv4);
        prop_assert_eq!(&engine.entries_streamed(true).collect::<Vec<_>>(), &batch.maps.ipv6);
        // The streamed documents (the C ABI's) are the rendered ones byte for byte.
        let mut streamed = Vec::new();
        egress_core::render::write_json_rows(engine.entries_streamed(false), engine.entries_streamed(true), &mut streamed).unwrap();
        prop_assert_eq!(String::from_utf8(streamed).unwrap(), egress_core::render::to_json(&batch.maps));
        let mut streamed = Vec::new();
        egress_core::render::write_conflicts_json(engine.conflicts_streamed(), &mut streamed).unwrap();
        prop_assert_eq!(
            String::from_utf8(streamed).unwrap(),
            egress_core::render::json_text(&egress_core::render::conflicts_json(&batch.conflicts))
        );
        prop_assert_eq!(engine.conflicts(), batch.conflicts);
        // The engine's lookup (its compact lists, reused as lists come and go) agrees with
        // a lookup table built from the batch entries.
        let local = model.nodes.get(LOCAL).and_then(|n| n.ipv4);
        let table = LookupTable::new(&batch.maps, local);
        let mut queries = Vec::new();
        for e in batch.maps.iter() {
            for dst in [e.destination.addr, "1.2.3.9".parse().unwrap(), "10.9.9.9".parse().unwrap(), "2001:db8::9".parse().unwrap(), "fe80::1".parse().unwrap()] {
                prop_assert_eq!(engine.lookup(e.source, dst), table.lookup(e.source, dst), "{} -> {}", e.source, dst);
                queries.push((e.source, dst));
            }
        }
        let mut out = vec![egress_core::lookup::Verdict::NoEntry; queries.len()];
        engine.lookup_many(&queries, &mut out);
        prop_assert!(queries.iter().zip(&out).all(|(&(s, d), v)| table.lookup(s, d) == *v));
    }

    #[test]
    fn any_order_of_the_same_objects_gives_byte_identical_maps(
        events in prop::collection::vec(event(), 1..40),
        selection in selection(),
        seed in any::<u64>(),
    ) {
        let mut model = Model::default();
        for event in &events {
            model.apply(event);
        }
        let mut in_order = new_engine(selection);
        for event in &events {
            apply(&mut in_order, event);
        }
        // The final objects, upserted in a shuffled order.
        let mut upserts = model.upserts();
        let mut state = seed | 1;
        for i in (1..upserts.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            upserts.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut shuffled = new_engine(selection);
        for event in &upserts {
            apply(&mut shuffled, event);
        }
        let (a, b) = (in_order.entries(), shuffled.entries());
        prop_assert_eq!(bytes(&a.ipv4), bytes(&b.ipv4));
        prop_assert_eq!(bytes(&a.ipv6), bytes(&b.ipv6));
    }

    #[test]
    fn a_plan_applied_to_the_programmed_map_gives_the_desired_map(
        before in prop::collection::vec(event(), 0..25),
        after in prop::collection::vec(event(), 1..15),
        applied_share in 0.0f64..1.0,
        selection in selection(),
    ) {
        let mut engine = new_engine(selection);
        for event in &before {
            apply(&mut engine, event);
        }
        let first = engine.take_plan().unwrap();
        engine.ack(&first, first.len()).unwrap();
        let mut map: HashMap<KeyIdentity, Entry> = engine.programmed().iter().map(|e| (e.identity(), *e)).collect();
        for event in &after {
            apply(&mut engine, event);
        }
        let plan = engine.take_plan().unwrap();
        // Ordered: upserts, then deletes; no key twice; no delete of an upserted key.
        let upserts = plan.upserts().len();
        prop_assert!(plan.ops()[..upserts].iter().all(|op| op.action() == Action::Upsert));
        prop_assert!(plan.ops()[upserts..].iter().all(|op| op.action() == Action::Delete));
        let mut seen = std::collections::HashSet::new();
        prop_assert!(plan.ops().iter().all(|op| seen.insert(op.entry().unwrap().identity())));
        // Apply part of it, acknowledge that part; the next plan holds exactly the rest.
        let applied = ((plan.len() as f64) * applied_share) as usize;
        let apply_op = |map: &mut HashMap<KeyIdentity, Entry>, op: &egress_core::engine::PlanOp| match op.action() {
            Action::Upsert => { map.insert(op.entry().unwrap().identity(), *op.entry().unwrap()); }
            Action::Delete => { map.remove(&op.entry().unwrap().identity()); }
        };
        for op in &plan.ops()[..applied] {
            apply_op(&mut map, op);
        }
        engine.ack(&plan, applied).unwrap();
        let rest = engine.take_plan().unwrap();
        prop_assert_eq!(rest.ops(), &plan.ops()[applied..]);
        for op in rest.ops() {
            apply_op(&mut map, op);
        }
        let mut result: Vec<Entry> = map.into_values().collect();
        let key = |e: &Entry| (e.source.is_ipv6(), e.source, e.destination.addr, e.destination.len);
        result.sort_by_key(key);
        let mut desired: Vec<Entry> = engine.entries().iter().copied().collect();
        desired.sort_by_key(key);
        prop_assert_eq!(result, desired);
        engine.ack(&rest, rest.len()).unwrap();
        prop_assert!(engine.take_plan().unwrap().is_empty());
        // A restarted engine adopting the live map writes nothing.
        let mut restarted = new_engine(selection);
        let mut model = Model::default();
        for event in before.iter().chain(&after) {
            model.apply(event);
        }
        for event in model.upserts() {
            apply(&mut restarted, &event);
        }
        restarted.adopt(engine.programmed().iter().copied()).unwrap();
        prop_assert!(restarted.take_plan().unwrap().is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    /// Issue 21: a plan never takes a map past its capacity while it is written (counted op
    /// by op, map by map, from what each map holds), is refused exactly when the desired
    /// state itself does not fit, and deletes first exactly when upserting first would
    /// overflow. Foreign entries (a source that is no endpoint) count as stale. On every
    /// layout (the dual one writes each IPv4 entry to two maps: CILIUM-VERSIONS.md §5, row
    /// 5a, Cilium 1.20's legacy map and `_v4_v2`), with a partial
    /// acknowledgement: the rest comes back as a plan that fits too.
    #[test]
    fn a_tight_map_never_overflows_and_is_refused_only_when_the_end_does_not_fit(
        before in prop::collection::vec(event(), 0..25),
        after in prop::collection::vec(event(), 1..15),
        foreign in 0usize..4,
        max in 1u32..24,
        layout in prop::sample::select(Layout::CILIUM.to_vec()),
        applied_share in 0.0f64..1.0,
    ) {
        let config = |max: u32| EngineConfig {
            max_entries: max,
            ..EngineConfig::new(LOCAL).with_layout(layout)
        };
        type Live = HashMap<(MapId, KeyIdentity), Entry>;
        let write = |live: &mut Live, op: &egress_core::engine::PlanOp| -> Result<(), TestCaseError> {
            let key = (op.map(), op.entry().unwrap().identity());
            match op.action() {
                Action::Upsert => {
                    live.insert(key, *op.entry().unwrap());
                }
                // A key already gone stays gone (egress-bpf takes the kernel's ENOENT so): after
                // a partial acknowledgement of a dual plan, a key deleted from one IPv4 map is
                // deleted from both again.
                Action::Delete => {
                    live.remove(&key);
                }
            }
            Ok(())
        };
        let counts = |live: &Live| -> HashMap<MapId, usize> {
            let mut out = HashMap::new();
            for (map, _) in live.keys() {
                *out.entry(*map).or_insert(0) += 1;
            }
            out
        };
        let mut live_engine = Engine::new(config(u32::MAX));
        live_engine.set_devices(local_devices());
        for event in &before {
            apply(&mut live_engine, event);
        }
        let first = live_engine.take_plan().unwrap();
        let mut live: Live = HashMap::new();
        for op in first.ops() {
            write(&mut live, op)?;
        }
        let foreigner = |i: usize| Entry {
            source: IpAddr::from([192, 0, 2, 1 + i as u8]),
            destination: parse_prefix("0.0.0.0/0").unwrap(),
            egress_ip: "0.0.0.0".parse().unwrap(),
            gateway_ip: "10.9.9.9".parse().unwrap(),
            egress_ifindex: 0,
        };
        for i in 0..foreign {
            for &map in layout.ipv4_maps() {
                live.insert((map, foreigner(i).identity()), foreigner(i));
            }
        }
        let mut engine = Engine::new(config(max));
        engine.set_devices(local_devices());
        for event in before.iter().chain(&after) {
            apply(&mut engine, event);
        }
        engine.adopt_maps(live.iter().map(|(&(map, _), &e)| (map, e))).unwrap();
        let desired = engine.entry_counts();
        // Writes a plan's first `n` operations, each map held to its capacity (or to what it
        // held before, if that was more).
        let run = |live: &mut Live, ops: &[egress_core::engine::PlanOp]| -> Result<(), TestCaseError> {
            let start = counts(live);
            for op in ops {
                write(live, op)?;
                let now = counts(live).get(&op.map()).copied().unwrap_or(0);
                let before = start.get(&op.map()).copied().unwrap_or(0);
                prop_assert!(now <= (max as usize).max(before), "{}: {now} > {max}", op.map().name());
            }
            Ok(())
        };
        match engine.take_plan() {
            Err(PlanError::Capacity(e)) => {
                let fam = usize::from(!e.map.is_ipv4());
                prop_assert!(desired[fam] > max as usize, "refused: {e}");
                prop_assert_eq!(e.peak, desired[fam]);
            }
            Err(other) => prop_assert!(false, "{other}"),
            Ok(plan) => {
                prop_assert!(desired.iter().all(|&d| d <= max as usize));
                // Deletes first exactly when some map would overflow upserts first.
                let start = counts(&live);
                let mut new_keys: HashMap<MapId, usize> = HashMap::new();
                for op in plan.upserts() {
                    if !live.contains_key(&(op.map(), op.entry().unwrap().identity())) {
                        *new_keys.entry(op.map()).or_insert(0) += 1;
                    }
                }
                let overflow_first = layout.maps().iter().any(|map| {
                    let held = start.get(map).copied().unwrap_or(0);
                    held + new_keys.get(map).copied().unwrap_or(0) > max as usize
                });
                prop_assert_eq!(plan.deletes_first(), overflow_first);
                let first_action = if plan.deletes_first() { Action::Delete } else { Action::Upsert };
                let split = plan.ops().iter().take_while(|op| op.action() == first_action).count();
                prop_assert!(plan.ops()[split..].iter().all(|op| op.action() != first_action));
                // Part of it written and acknowledged; the rest comes back and fits too.
                let applied = ((plan.len() as f64) * applied_share) as usize;
                run(&mut live, &plan.ops()[..applied])?;
                engine.ack(&plan, applied).unwrap();
                let rest = engine.take_plan().unwrap();
                run(&mut live, rest.ops())?;
                engine.ack(&rest, rest.len()).unwrap();
                prop_assert!(engine.take_plan().unwrap().is_empty());
                // Each map holds the desired entries as it stores them.
                let wanted = engine.entries();
                for &map in layout.maps() {
                    let mut held: Vec<Entry> = live
                        .iter()
                        .filter(|((m, _), _)| *m == map)
                        .map(|(_, e)| *e)
                        .collect();
                    let mut want: Vec<Entry> = wanted.as_stored_in(map).iter().copied().collect();
                    if !map.stores_ifindex() {
                        held.iter_mut().for_each(|e| e.egress_ifindex = 0);
                    }
                    let key = |e: &Entry| (e.source, e.destination.addr, e.destination.len);
                    held.sort_by_key(key);
                    want.sort_by_key(key);
                    prop_assert_eq!(held, want, "{}", map.name());
                }
            }
        }
    }
}

/// The compact layout's kernel maps, as a model: every element by (map, key bytes).
type CompactModel = HashMap<(MapId, Vec<u8>), egress_core::compact::CompactElement>;

fn write_compact(model: &mut CompactModel, op: &egress_core::engine::PlanOp) {
    let key = (op.map(), op.key().to_vec());
    match op.action() {
        Action::Upsert => {
            let element = *op.compact_element().expect("a compact plan's operation");
            model.insert(key, element);
        }
        Action::Delete => {
            model.remove(&key);
        }
    }
}

/// What each endpoint's traffic follows in the model: its set's rules as entries.
fn compact_lists(model: &CompactModel) -> BTreeMap<IpAddr, Vec<Entry>> {
    let entries = egress_core::compact::entries_of(model.values().copied());
    let mut out: BTreeMap<IpAddr, Vec<Entry>> = BTreeMap::new();
    for e in entries.iter() {
        out.entry(e.source).or_default().push(*e);
    }
    out
}

fn lists_of(entries: &egress_core::entries::MapEntries) -> BTreeMap<IpAddr, Vec<Entry>> {
    let mut out: BTreeMap<IpAddr, Vec<Entry>> = BTreeMap::new();
    for e in entries.iter() {
        out.entry(e.source).or_default().push(*e);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    /// Issue 27: compact plans written op by op, part of one acknowledged, bring the model
    /// of the kernel's maps to the engine's desired entries (each endpoint joined with its
    /// set's rules); at every step every endpoint follows either its whole list before the
    /// plan or its whole list after it (an endpoint never points at a set whose rules are not
    /// all written); each set's rules are written once however many endpoints share it; a
    /// restarted engine adopting the maps' elements writes nothing.
    #[test]
    fn compact_plans_bring_the_maps_to_the_desired_entries_one_whole_list_at_a_time(
        before in prop::collection::vec(event(), 0..25),
        after in prop::collection::vec(event(), 1..15),
        applied_share in 0.0f64..1.0,
        selection in selection(),
    ) {
        let config = EngineConfig {
            selection,
            ..EngineConfig::new(LOCAL).with_layout(Layout::Compact)
        };
        let mut engine = Engine::new(config.clone());
        engine.set_devices(local_devices());
        let mut model = CompactModel::new();
        for event in &before {
            apply(&mut engine, event);
        }
        let first = engine.take_plan().unwrap();
        first.ops().iter().for_each(|op| write_compact(&mut model, op));
        engine.ack(&first, first.len()).unwrap();
        prop_assert_eq!(lists_of(&egress_core::compact::entries_of(model.values().copied())), lists_of(&engine.entries()));
        // No rule twice: a set's rules are written once.
        let mut keys = std::collections::HashSet::new();
        prop_assert!(first.ops().iter().all(|op| keys.insert((op.map(), op.key().to_vec()))));
        for event in &after {
            apply(&mut engine, event);
        }
        let old = compact_lists(&model);
        let new = lists_of(&engine.entries());
        let plan = engine.take_plan().unwrap();
        let upserts = plan.upserts().len();
        prop_assert!(plan.ops()[..upserts].iter().all(|op| op.action() == Action::Upsert));
        prop_assert!(plan.ops()[upserts..].iter().all(|op| op.action() == Action::Delete));
        let whole = |model: &CompactModel| -> Result<(), TestCaseError> {
            for (ip, list) in compact_lists(model) {
                let was = old.get(&ip);
                let will = new.get(&ip);
                prop_assert!(
                    Some(&list) == was || Some(&list) == will,
                    "{ip} follows {list:?}: neither {was:?} nor {will:?}"
                );
            }
            Ok(())
        };
        let applied = ((plan.len() as f64) * applied_share) as usize;
        for op in &plan.ops()[..applied] {
            write_compact(&mut model, op);
            whole(&model)?;
        }
        engine.ack(&plan, applied).unwrap();
        let rest = engine.take_plan().unwrap();
        for op in rest.ops() {
            write_compact(&mut model, op);
        }
        engine.ack(&rest, rest.len()).unwrap();
        prop_assert_eq!(compact_lists(&model), new);
        prop_assert!(engine.take_plan().unwrap().is_empty());
        // No set the kernel holds is left without an endpoint.
        let named: std::collections::HashSet<u32> = model
            .values()
            .flat_map(|e| e.endpoints().map(|(_, set)| set).collect::<Vec<_>>())
            .collect();
        prop_assert!(model.values().all(|e| e.sets().all(|s| named.contains(&s))), "a dead set's rules remain");
        // A restarted engine adopting the maps' elements writes nothing.
        let mut restarted = Engine::new(config);
        restarted.set_devices(local_devices());
        let mut objects = Model::default();
        for event in before.iter().chain(&after) {
            objects.apply(event);
        }
        for event in objects.upserts() {
            apply(&mut restarted, &event);
        }
        restarted.adopt_compact(model.values().copied());
        prop_assert!(restarted.take_plan().unwrap().is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    /// Issue 27 with tight maps: compact plans written op by op never take a map past its
    /// capacity (or past what it held before the plan), are refused only when the desired
    /// state's compact form itself does not fit, and, taken one after another (a plan may
    /// cover part of the changes), end with the maps deciding as the engine's entries.
    #[test]
    fn compact_plans_fit_tight_maps_and_are_refused_only_when_the_end_does_not(
        before in prop::collection::vec(event(), 0..25),
        after in prop::collection::vec(event(), 1..15),
        max in 2u32..30,
        selection in selection(),
    ) {
        let config = EngineConfig {
            selection,
            max_entries: max,
            ..EngineConfig::new(LOCAL).with_layout(Layout::Compact)
        };
        let mut engine = Engine::new(config);
        engine.set_devices(local_devices());
        let mut model = CompactModel::new();
        let counts = |model: &CompactModel| {
            let mut n: HashMap<MapId, usize> = HashMap::new();
            for (map, _) in model.keys() {
                *n.entry(*map).or_default() += 1;
            }
            n
        };
        for events in [&before, &after] {
            for event in events.iter() {
                apply(&mut engine, event);
            }
            let mut settled = false;
            for _ in 0..200 {
                match engine.take_plan() {
                    Ok(plan) if plan.is_empty() => {
                        settled = true;
                        break;
                    }
                    Ok(plan) => {
                        let start = counts(&model);
                        for op in plan.ops() {
                            write_compact(&mut model, op);
                            let now = counts(&model).get(&op.map()).copied().unwrap_or(0);
                            let held = start.get(&op.map()).copied().unwrap_or(0);
                            prop_assert!(now <= (max as usize).max(held), "{}: {now} > {max}", op.map());
                        }
                        engine.ack(&plan, plan.len()).unwrap();
                    }
                    Err(PlanError::Capacity(e)) => {
                        let form = egress_core::compact::CompactMaps::from_entries(&engine.entries());
                        let mut end: HashMap<MapId, usize> = HashMap::new();
                        for element in form.elements() {
                            *end.entry(element.map()).or_default() += 1;
                        }
                        prop_assert!(
                            end.values().any(|&n| n > max as usize),
                            "refused ({e}) though the end fits: {end:?}"
                        );
                        settled = true;
                        break;
                    }
                    Err(other) => prop_assert!(false, "{other}"),
                }
            }
            prop_assert!(settled, "200 plans and still changes pending");
            if engine.take_plan().is_ok_and(|p| p.is_empty()) {
                prop_assert_eq!(compact_lists(&model), lists_of(&engine.entries()));
            }
        }
    }
}

#[test]
fn ip_family_of_sources_is_kept() {
    // Sanity for the strategies above: both families are generated and programmed.
    let mut e = new_engine(Selection::Cilium);
    for n in NODES {
        e.upsert_node(Node::new(
            n,
            labels(&[("egress", "true"), ("kubernetes.io/hostname", n)]),
            Some("192.168.0.9".parse().unwrap()),
        ));
    }
    let mut p = Policy {
        name: "p".into(),
        namespace: None,
        creation_timestamp: None,
        selectors: vec![SelectorItem {
            pod_selector: Some(LabelSelector::default()),
            ..SelectorItem::default()
        }],
        destination_cidrs: vec![
            parse_prefix("0.0.0.0/0").unwrap(),
            parse_prefix("::/0").unwrap(),
        ],
        excluded_cidrs: vec![],
        egress_gateway: GatewaySpec::default(),
        egress_gateways: vec![],
    };
    p.egress_gateway
        .node_selector
        .match_labels
        .push(("egress".into(), "true".into()));
    e.upsert_policy(p).unwrap();
    let mut ep = Endpoint {
        uid: "u".into(),
        ..Endpoint::default()
    };
    ep.ips = vec![
        "10.0.0.1".parse::<IpAddr>().unwrap(),
        "fd01::1".parse().unwrap(),
    ];
    e.upsert_endpoint(ep).unwrap();
    let entries = e.entries();
    assert_eq!((entries.ipv4.len(), entries.ipv6.len()), (1, 1));
}
