//! The core API the bindings are built on: one error type with stable kinds and field paths,
//! map ids, entry decoding, one-object readers, names of the modes and layouts.

#![allow(clippy::unwrap_used)] // test helpers

use std::collections::BTreeMap;
use std::path::Path;

use egress_core::cluster::Namespace;
use egress_core::engine::{Action, Engine, EngineConfig};
use egress_core::entries::Entry;
use egress_core::gateway::Selection;
use egress_core::maps::{Layout, MapId};
use egress_core::snapshot::{self, Snapshot, kubernetes};
use egress_core::{Error, ErrorKind};

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/snapshots")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

fn paths(err: &Error) -> Vec<&str> {
    err.field_errors().iter().map(|e| e.path.as_str()).collect()
}

#[test]
fn every_error_has_a_stable_kind_and_its_field_path() {
    let parse = Snapshot::parse("nodes: [").unwrap_err();
    assert_eq!(parse.kind(), ErrorKind::Parse);
    assert_eq!(parse.path(), None);
    assert_eq!(
        Snapshot::parse("a: 1\n---\nb: 2\n").unwrap_err().kind(),
        ErrorKind::Parse
    );

    let input = Snapshot::parse("nodes: [{name: a, ipv4: fd00::1}]\nextra: 1\n").unwrap_err();
    assert_eq!(input.kind(), ErrorKind::Input);
    assert_eq!(paths(&input), ["extra", "nodes[0].ipv4"]);
    assert_eq!(input.path(), Some("extra"));

    let policy: Error = egress_core::policy::parse_policy_text(
        "apiVersion: cilium.io/v2\nkind: CiliumEgressGatewayPolicy\nmetadata: {name: p}\n\
         spec: {destinationCIDRs: [1.2.3/8], selectors: []}\n",
    )
    .unwrap()
    .remove(0)
    .unwrap_err()
    .into();
    assert_eq!(policy.kind(), ErrorKind::Policy);
    assert_eq!(policy.policy_name(), Some("p"));
    assert!(policy.field_errors().len() >= 2, "{policy}");
    assert_eq!(policy.path(), Some(policy.field_errors()[0].path.as_str()));

    // A named choice refuses with a field error naming it; as the crate's error, an argument.
    let arg: Error = "fastest".parse::<Selection>().unwrap_err().into();
    assert_eq!(arg.kind(), ErrorKind::InvalidArgument);
    assert_eq!(arg.path(), Some("selection"));
    assert_eq!(
        arg.to_string(),
        r#"selection: Unsupported value: "fastest": supported values: "cilium", "consistent""#
    );

    let decode: Error = Entry::decode(MapId::V4, &[0; 11], &[0; 28])
        .unwrap_err()
        .into();
    assert_eq!(decode.kind(), ErrorKind::Decode);
    assert_eq!(decode.path(), None);

    let snap = Snapshot::parse(&example("seed-all-pods.yaml")).unwrap();
    let node = snap.local_node.clone().unwrap();
    let config = EngineConfig {
        max_entries: 1,
        ..EngineConfig::new(node)
    };
    let capacity: Error = Engine::from_snapshot(&snap, config)
        .0
        .take_plan()
        .unwrap_err()
        .into();
    assert_eq!(capacity.kind(), ErrorKind::Capacity);
    assert_eq!(capacity.path(), None);
}

#[test]
fn error_kind_numbers_never_change() {
    let numbers = [
        (ErrorKind::Parse, 1),
        (ErrorKind::Input, 2),
        (ErrorKind::Policy, 3),
        (ErrorKind::Capacity, 4),
        (ErrorKind::Decode, 5),
        (ErrorKind::InvalidArgument, 6),
    ];
    for (kind, number) in numbers {
        assert_eq!(kind as u32, number, "{kind:?}");
    }
}

#[test]
fn selection_and_layout_names_round_trip() {
    for s in Selection::ALL {
        assert_eq!(s.name().parse::<Selection>().unwrap(), s);
        assert_eq!(s.to_string(), s.name());
    }
    for l in Layout::ALL {
        assert_eq!(l.name().parse::<Layout>().unwrap(), l);
    }
    assert_eq!(Selection::NAMES, ["cilium", "consistent"]);
    assert_eq!(Layout::NAMES, ["v4v2", "legacy", "dual", "compact"]);
    let err = "v4_v2".parse::<Layout>().unwrap_err();
    assert_eq!(err.path, "layout");
    assert!(
        err.to_string()
            .contains(r#""v4v2", "legacy", "dual", "compact""#),
        "{err}"
    );
    assert!("Cilium".parse::<Selection>().is_err(), "names are exact");
}

#[test]
fn map_ids_name_the_pinned_maps_and_their_sizes() {
    let expected = [
        (MapId::V4, "cilium_egress_gw_policy_v4_v2", 12, 28),
        (MapId::V4Legacy, "cilium_egress_gw_policy_v4", 12, 8),
        (MapId::V6, "cilium_egress_gw_policy_v6", 36, 40),
        (
            MapId::CompactEndpointsV4,
            "egress_gw_compact_endpoints_v4",
            4,
            32,
        ),
        (
            MapId::CompactEndpointsV6,
            "egress_gw_compact_endpoints_v6",
            16,
            32,
        ),
        (MapId::CompactRulesV4, "egress_gw_compact_rules_v4", 12, 28),
        (MapId::CompactRulesV6, "egress_gw_compact_rules_v6", 24, 40),
    ];
    for (id, name, key, value) in expected {
        assert_eq!(
            (id.name(), id.key_size(), id.value_size()),
            (name, key, value)
        );
        assert_eq!(MapId::from_name(name), Some(id));
    }
    assert_eq!(MapId::from_name("cilium_egress_gw_policy_v5"), None);
    assert_eq!(Layout::V4Legacy.maps(), [MapId::V4Legacy, MapId::V6]);
    assert_eq!(Layout::V4V2.ipv4_map(), MapId::V4);
    assert_eq!(
        Layout::Compact.maps(),
        [
            MapId::CompactRulesV4,
            MapId::CompactEndpointsV4,
            MapId::CompactRulesV6,
            MapId::CompactEndpointsV6
        ]
    );
    assert_eq!(MapId::ALL.len(), 7);
}

/// The compact layout's plan, decoded from its bytes and joined (each endpoint with its
/// set's rules), is the engine's entries; its keys are the documented bytes.
#[test]
fn compact_plan_bytes_decode_back_into_the_entries() {
    use egress_core::compact::{CompactElement, entries_of};
    let snap = Snapshot::parse(&example("dual-stack-excluded.yaml")).unwrap();
    let node = snap.local_node.clone().unwrap();
    let config = EngineConfig {
        layout: Layout::Compact,
        ..EngineConfig::new(node)
    };
    let (engine, errors) = Engine::from_snapshot(&snap, config);
    assert!(errors.is_empty());
    let plan = engine.take_plan().unwrap();
    let mut elements = Vec::new();
    for op in &plan {
        assert_eq!(op.action(), Action::Upsert);
        assert!(op.entry().is_none());
        assert_eq!(op.key().len(), op.map().key_size());
        assert_eq!(op.value().len(), op.map().value_size());
        let element = CompactElement::decode(op.map(), op.key(), op.value()).unwrap();
        assert_eq!(Some(&element), op.compact_element());
        if let CompactElement::Rule { set, slot } = element {
            // prefixlen = 32 + destination length (native), then the set id big-endian.
            let prefixlen = u32::from_ne_bytes(op.key()[..4].try_into().unwrap());
            assert_eq!(prefixlen, 32 + u32::from(slot.destination.len));
            assert_eq!(op.key()[4..8], set.to_be_bytes());
        }
        elements.push(element);
    }
    assert_eq!(entries_of(elements), engine.entries());
    assert!(
        Entry::decode(MapId::CompactRulesV4, &[0; 12], &[0; 28])
            .unwrap_err()
            .to_string()
            .contains("not entries")
    );
}

#[test]
fn plan_bytes_decode_back_into_their_entries_in_every_map() {
    let snap = Snapshot::parse(&example("dual-stack-excluded.yaml")).unwrap();
    let node = snap.local_node.clone().unwrap();
    for layout in Layout::CILIUM {
        let config = EngineConfig {
            layout,
            ..EngineConfig::new(node.clone())
        };
        let (engine, errors) = Engine::from_snapshot(&snap, config);
        assert!(errors.is_empty());
        let plan = engine.take_plan().unwrap();
        let mut seen = [false; 2];
        for op in &plan {
            assert_eq!(op.action(), Action::Upsert);
            assert_eq!(op.key().len(), op.map().key_size());
            assert_eq!(op.value().len(), op.map().value_size());
            let decoded = Entry::decode(op.map(), op.key(), op.value()).unwrap();
            let mut want = *op.entry().unwrap();
            if !layout.stores_ifindex(op.map().is_ipv4()) {
                want.egress_ifindex = 0;
            }
            assert_eq!(decoded, want, "{layout:?}");
            seen[usize::from(!op.map().is_ipv4())] = true;
        }
        assert_eq!(seen, [true, true], "the example has both families");
        // Wrong sizes are refused, naming the lengths.
        let op = &plan.ops()[0];
        let short = Entry::decode(op.map(), &op.key()[1..], op.value()).unwrap_err();
        assert!(
            short.to_string().contains("expected 12 bytes, got 11"),
            "{short}"
        );
    }
}

#[test]
fn from_snapshot_returns_the_policy_errors_it_left_out() {
    let snap = Snapshot::parse(&example("selectors-and-conflicts.yaml")).unwrap();
    let invalid: Vec<_> = snap.invalid_policies().map(|(_, e)| e.clone()).collect();
    let node = snap.local_node.clone().unwrap();
    let (_, errors) = Engine::from_snapshot(&snap, EngineConfig::new(node));
    assert_eq!(errors, invalid);

    let mut with_bad = snap.clone();
    with_bad.policies.push(
        egress_core::policy::parse_policy_text("metadata: {name: broken}\nspec: {}\n")
            .unwrap()
            .remove(0),
    );
    let (engine, errors) = Engine::from_snapshot(
        &with_bad,
        EngineConfig::new(with_bad.local_node.clone().unwrap()),
    );
    assert_eq!(errors.len(), invalid.len() + 1);
    assert_eq!(errors.last().unwrap().name.as_deref(), Some("broken"));
    assert!(engine.policy("broken").is_none());
}

#[test]
fn one_object_readers_report_what_the_snapshot_reports_at_the_root() {
    let node = snapshot::parse_node(
        "{name: gw, labels: {egress: \"true\"}, ipv4: 10.0.0.1, weight: 7, ready: false}",
    )
    .unwrap();
    assert_eq!(
        (node.name.as_str(), node.weight, node.ready),
        ("gw", 7, false)
    );
    // The same mistakes as inside a snapshot, with the paths relative to the object.
    let bad = "{name: gw, ipv4: fd00::1, weight: 101, colour: red}";
    let alone = snapshot::parse_node(bad).unwrap_err();
    let inside = Snapshot::parse(&format!("nodes: [{bad}]")).unwrap_err();
    let inside: Vec<String> = paths(&inside)
        .iter()
        .map(|p| p.trim_start_matches("nodes[0].").to_owned())
        .collect();
    assert_eq!(paths(&alone), inside);
    assert_eq!(alone.kind(), ErrorKind::Input);

    let ep = snapshot::parse_endpoint(
        r#"{"uid": "u1", "namespace": "default", "labels": {"app": "web"}, "ips": ["10.0.0.9", "fd00::9"], "node": "gw"}"#,
    )
    .unwrap();
    assert_eq!((ep.uid.as_str(), ep.ips.len()), ("u1", 2));
    let err = snapshot::parse_endpoint("{uid: u1, ips: [10.0.0.300], labels: {a: 1}}").unwrap_err();
    assert_eq!(paths(&err), ["labels.a", "ips[0]"]);
    assert_eq!(
        snapshot::parse_endpoint("{ips: []}").unwrap_err().path(),
        Some("uid")
    );

    let devices = snapshot::parse_interfaces(
        "- {name: eth0, index: 2, addresses: [10.0.0.1/24], defaultRoute: true}\n",
    )
    .unwrap();
    assert_eq!(devices[0].index, 2);
    assert_eq!(
        snapshot::parse_interfaces("- {name: eth0, index: 2, addresses: [10.0.0.1]}")
            .unwrap_err()
            .path(),
        Some("interfaces[0].addresses[0]")
    );

    let ns = snapshot::parse_namespace("{name: prod, labels: {team: a}}").unwrap();
    let k8s = snapshot::parse_namespace(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod, labels: {team: a}, uid: x}\nstatus: {phase: Active}\n",
    )
    .unwrap();
    let want = Namespace {
        name: "prod".into(),
        labels: BTreeMap::from([("team".to_owned(), "a".to_owned())]),
    };
    assert_eq!((ns, k8s), (want.clone(), want));
    assert_eq!(
        snapshot::parse_namespace("{labels: {}}")
            .unwrap_err()
            .path(),
        Some("name")
    );
    assert_eq!(
        snapshot::parse_node("{name: a}\n---\n{name: b}\n").unwrap_err(),
        Error::DocumentCount(2)
    );
}

#[test]
fn kubernetes_objects_convert_one_at_a_time_as_in_a_dump() {
    let text = example("dumps/tke-dump.yaml");
    let dump = snapshot::load(&text).unwrap().snapshot;
    let docs = egress_core::document::flatten_lists(
        egress_core::document::parse_documents(&text).unwrap(),
    );
    let kind = |d: &egress_core::document::Value| {
        d.get("kind").and_then(|k| k.as_str()).map(str::to_owned)
    };
    let mut nodes = egress_core::cluster::Nodes::new();
    for doc in docs
        .iter()
        .filter(|d| kind(d).as_deref() == Some("CiliumNode"))
    {
        let node = snapshot::node_from_document(doc).unwrap();
        assert_eq!(kubernetes::node_from_cilium_node(doc).unwrap(), node);
        nodes.insert(node.name.clone(), node);
    }
    assert_eq!(nodes, dump.nodes);
    // A core Node (B.10) through the one-object reader too.
    let pods_text = example("dumps/seed-gateway-group.pods.yaml");
    let pods_dump = snapshot::load(&pods_text).unwrap().snapshot;
    let core: Vec<_> = egress_core::document::flatten_lists(
        egress_core::document::parse_documents(&pods_text).unwrap(),
    )
    .into_iter()
    .filter(|d| kind(d).as_deref() == Some("Node"))
    .map(|d| snapshot::node_from_document(&d).unwrap())
    .collect();
    assert_eq!(core.len(), 5);
    for node in core {
        assert_eq!(Some(&node), pods_dump.nodes.get(&node.name));
    }
    let mut endpoints = Vec::new();
    for doc in docs
        .iter()
        .filter(|d| kind(d).as_deref() == Some("CiliumEndpoint"))
    {
        let (ep, _warnings) = kubernetes::endpoint_from_cilium_endpoint(doc, &nodes).unwrap();
        endpoints.extend(ep);
    }
    assert_eq!(endpoints, dump.endpoints);
    assert!(!endpoints.is_empty());
    let namespaces: Vec<Namespace> = docs
        .iter()
        .filter(|d| kind(d).as_deref() == Some("Namespace"))
        .map(|d| kubernetes::namespace_from_object(d).unwrap())
        .collect();
    assert!(!namespaces.is_empty() && namespaces.iter().all(|n| !n.name.is_empty()));
    let err = kubernetes::node_from_cilium_node(
        &egress_core::document::parse_documents(
            "{kind: CiliumNode, metadata: {name: a}, spec: {addresses: [{type: InternalIP, ip: 1.2.3}]}}",
        )
        .unwrap()[0],
    )
    .unwrap_err();
    assert_eq!(err.path(), Some("spec.addresses[0].ip"));
}

#[test]
fn the_helpers_errors_convert_into_the_one_error() {
    let addr: Error = egress_core::netip::parse_addr("10.0.0.300")
        .unwrap_err()
        .into();
    assert_eq!(
        (addr.kind(), addr.path()),
        (ErrorKind::InvalidArgument, Some("address"))
    );
    assert!(addr.to_string().contains("\"10.0.0.300\""), "{addr}");
    let prefix = egress_core::netip::parse_prefix("10.0.0.0/33").unwrap_err();
    assert_eq!(prefix.to_string(), "prefix length out of range");
    assert_eq!(Error::from(prefix).kind(), ErrorKind::InvalidArgument);
    let stamp: Error = egress_core::timestamp::Timestamp::parse("yesterday")
        .unwrap_err()
        .into();
    assert_eq!(stamp.path(), Some("timestamp"));
    let devices = egress_core::device::from_iproute2("not json", "[]", "[]").unwrap_err();
    assert_eq!(Error::from(devices).kind(), ErrorKind::Parse);
    let snap = Snapshot::parse("nodes: [{name: a}]").unwrap();
    let node: Error = snap
        .node_to_compute(Some("b"), "local_node")
        .unwrap_err()
        .into();
    assert_eq!(
        (node.kind(), node.path()),
        (ErrorKind::InvalidArgument, Some("local_node"))
    );
}

#[test]
fn policies_from_text_are_all_or_nothing_and_snapshots_load_as_list_reads_them() {
    let text = example("seed-gateway-group.yaml");
    let loaded =
        Engine::load_snapshot(&text, None, "local_node", EngineConfig::new("ignored")).unwrap();
    assert_eq!(loaded.engine.config().local_node, "172.22.49.119");
    assert!(loaded.invalid_policies.is_empty() && loaded.warnings.is_empty());
    let mut engine = loaded.engine;
    let before = engine.entries();
    let policy = |name: &str, cidr: &str| {
        format!(
            "apiVersion: cilium.io/v2\nkind: CiliumEgressGatewayPolicy\nmetadata: {{name: {name}}}\n\
             spec:\n  selectors: [{{podSelector: {{}}}}]\n  destinationCIDRs: [{cidr}]\n  \
             egressGateway: {{nodeSelector: {{matchLabels: {{egress: \"true\"}}}}}}\n"
        )
    };
    // One invalid policy in a stream: none of them is applied.
    let stream = format!(
        "{}---\n{}",
        policy("a", "10.9.0.0/16"),
        policy("b", "10.9.0.0/99")
    );
    let err = engine.upsert_policy_text(&stream).unwrap_err();
    assert_eq!(
        (err.kind(), err.policy_name()),
        (ErrorKind::Policy, Some("b"))
    );
    assert!(engine.policy("a").is_none());
    assert_eq!(engine.entries(), before);
    assert_eq!(
        engine.upsert_policy_text("").unwrap_err(),
        Error::DocumentCount(0)
    );
    assert_eq!(
        engine
            .upsert_policy_text(&policy("a", "10.9.0.0/16"))
            .unwrap(),
        1
    );
    assert!(engine.policy("a").is_some());
    assert!(engine.memory().total() >= engine.memory().lookup);

    // A dump names no localNode: the argument is required, then used.
    let dump = example("dumps/tke-dump.yaml");
    let err = Engine::load_snapshot(&dump, None, "--node", EngineConfig::new("x")).err();
    assert_eq!(
        err.and_then(|e| e.path().map(str::to_owned)).as_deref(),
        Some("--node")
    );
    let loaded = Engine::load_snapshot(
        &dump,
        Some("172.22.49.119"),
        "--node",
        EngineConfig::new("x"),
    )
    .unwrap();
    assert_eq!(loaded.engine.config().local_node, "172.22.49.119");
}
