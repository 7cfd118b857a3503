//! SEMANTICS B.3 as the embedding agent sets it (issue 25): `Engine::set_node_health` puts its
//! probes' or an operator's readiness and weight over a node's objects, keeps it across the
//! node's later object events (a Kubernetes object carries neither), applies it to a node that
//! arrives later, and returns to the objects' values when cleared — moving, in consistent mode,
//! exactly the pods of the node it takes out; compat mode ignores it, as Cilium does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use egress_core::cluster::NodeHealth;
use egress_core::engine::{Engine, EngineConfig};
use egress_core::gateway::Selection;
use egress_core::lookup::Verdict;

fn node(name: &str, ip: &str) -> String {
    format!(
        "apiVersion: cilium.io/v2
kind: CiliumNode
metadata: {{name: {name}, labels: {{egress: \"true\"}}}}
spec: {{addresses: [{{type: InternalIP, ip: {ip}}}]}}
"
    )
}

const POLICY: &str = "apiVersion: cilium.io/v2
kind: CiliumEgressGatewayPolicy
metadata: {name: web}
spec:
  selectors: [{podSelector: {matchLabels: {app: web}}}]
  destinationCIDRs: [0.0.0.0/0]
  egressGateway: {nodeSelector: {matchLabels: {kubernetes.io/hostname: gw-a}}}
  egressGateways:
  - nodeSelector: {matchLabels: {kubernetes.io/hostname: gw-a}}
  - nodeSelector: {matchLabels: {kubernetes.io/hostname: gw-b}}
  - nodeSelector: {matchLabels: {kubernetes.io/hostname: gw-c}}
";

const GATEWAYS: [(&str, &str); 3] = [
    ("gw-a", "192.168.1.1"),
    ("gw-b", "192.168.1.2"),
    ("gw-c", "192.168.1.3"),
];

fn gateway_node(name: &str, ip: &str) -> String {
    node(name, ip).replace(
        "labels: {egress: \"true\"}",
        &format!("labels: {{kubernetes.io/hostname: {name}}}"),
    )
}

fn pod(i: usize) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: web-{i}, namespace: default, uid: uid-{i}, labels: {{app: web}}}}
spec: {{nodeName: worker}}
status: {{phase: Running, podIPs: [{{ip: 10.0.{}.{}}}]}}
",
        i / 200,
        i % 200 + 1
    )
}

fn engine(selection: Selection) -> Engine {
    let mut e = Engine::new(EngineConfig {
        selection,
        ..EngineConfig::new("worker")
    });
    let mut text = vec![POLICY.to_owned(), node("worker", "192.168.1.9")];
    for (name, ip) in GATEWAYS {
        text.push(gateway_node(name, ip));
    }
    for i in 0..60 {
        text.push(pod(i));
    }
    let applied = e.apply_text(&text.join("---\n")).unwrap();
    assert!(
        applied.invalid_policies.is_empty(),
        "{:?}",
        applied.invalid_policies
    );
    programmed(&mut e);
    e
}

/// Takes and acknowledges the plan: how many operations it had.
fn programmed(e: &mut Engine) -> usize {
    let plan = e.take_plan().unwrap();
    let n = plan.len();
    e.ack(&plan, n).unwrap();
    n
}

/// Each pod's gateway, by pod address.
fn gateways(e: &Engine) -> BTreeMap<IpAddr, IpAddr> {
    (0..60)
        .map(|i| {
            let src: IpAddr = format!("10.0.{}.{}", i / 200, i % 200 + 1).parse().unwrap();
            let gw = match e.lookup(src, "1.1.1.1".parse().unwrap()) {
                Verdict::Forward { gateway } => IpAddr::V4(gateway),
                other => panic!("{src}: {other:?}"),
            };
            (src, gw)
        })
        .collect()
}

fn unready() -> NodeHealth {
    NodeHealth {
        ready: Some(false),
        weight: None,
    }
}

#[test]
fn an_unready_gateway_gives_away_exactly_its_pods_and_stays_out_across_its_events() {
    let mut e = engine(Selection::Consistent);
    let before = gateways(&e);
    let b: IpAddr = "192.168.1.2".parse().unwrap();
    let on_b = before.values().filter(|g| **g == b).count();
    assert!(on_b > 0, "{before:?}");

    assert!(e.set_node_health("gw-b", unready()).unwrap());
    let after = gateways(&e);
    for (src, gw) in &before {
        if *gw == b {
            assert_ne!(after[src], b, "{src} stayed on the unready gateway");
        } else {
            assert_eq!(after[src], *gw, "{src} moved though its gateway is ready");
        }
    }
    // The plan rewrites exactly the moved pods' entries.
    assert_eq!(programmed(&mut e), on_b);

    // The node's object again (ready by default): the agent's word stands.
    e.apply_text(&gateway_node("gw-b", "192.168.1.2")).unwrap();
    assert_eq!(gateways(&e), after);
    assert_eq!(programmed(&mut e), 0);

    // Cleared: back to the object's readiness, every pod back where it was.
    assert!(e.set_node_health("gw-b", NodeHealth::default()).unwrap());
    assert_eq!(gateways(&e), before);
    assert_eq!(programmed(&mut e), on_b);
}

#[test]
fn a_drained_node_and_a_node_not_known_yet() {
    let mut e = engine(Selection::Consistent);
    let before = gateways(&e);
    let a: IpAddr = "192.168.1.1".parse().unwrap();
    let drained = NodeHealth {
        ready: None,
        weight: Some(0),
    };
    assert!(e.set_node_health("gw-a", drained).unwrap());
    assert!(gateways(&e).values().all(|g| *g != a));
    // A node the engine does not know yet takes the agent's word when it arrives.
    assert!(!e.set_node_health("gw-d", unready()).unwrap());
    let policy =
        POLICY.to_owned() + "  - nodeSelector: {matchLabels: {kubernetes.io/hostname: gw-d}}\n";
    e.apply_text(&policy).unwrap();
    e.apply_text(&gateway_node("gw-d", "192.168.1.4")).unwrap();
    let d: IpAddr = "192.168.1.4".parse().unwrap();
    assert!(gateways(&e).values().all(|g| *g != d && *g != a));
    // Deleted and back: still unready.
    assert!(e.delete_node("gw-d"));
    e.apply_text(&gateway_node("gw-d", "192.168.1.4")).unwrap();
    assert!(gateways(&e).values().all(|g| *g != d));
    assert!(e.set_node_health("gw-d", NodeHealth::default()).unwrap());
    assert!(gateways(&e).values().any(|g| *g == d));
    assert_ne!(gateways(&e), before);
}

#[test]
fn compat_mode_ignores_health_as_cilium_does() {
    let mut e = engine(Selection::Cilium);
    let before = gateways(&e);
    assert!(e.set_node_health("gw-b", unready()).unwrap());
    assert!(
        e.set_node_health(
            "gw-c",
            NodeHealth {
                ready: None,
                weight: Some(0)
            }
        )
        .unwrap()
    );
    assert_eq!(gateways(&e), before);
    assert_eq!(programmed(&mut e), 0);
}

#[test]
fn bad_health_is_refused_naming_the_field_and_changes_nothing() {
    let mut e = engine(Selection::Consistent);
    let before = gateways(&e);
    let err = e
        .set_node_health(
            "gw-b",
            NodeHealth {
                ready: Some(false),
                weight: Some(101),
            },
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "weight: Invalid value: 101: must be an integer from 0 to 100"
    );
    let err = e.set_node_health("", unready()).unwrap_err();
    assert_eq!(err.to_string(), "name: Required value");
    assert_eq!(gateways(&e), before);
    assert_eq!(programmed(&mut e), 0);
}

/// What the probes watch: every node an entry offers, whatever its health, each once, by name,
/// with the readiness the engine uses; not the workers, not a node no policy offers.
#[test]
fn the_gateway_nodes_are_what_the_probes_watch() {
    for selection in [Selection::Consistent, Selection::Cilium] {
        let mut e = engine(selection);
        let listed = |e: &Engine| -> Vec<(String, bool)> {
            e.gateway_nodes()
                .into_iter()
                .map(|n| (n.name.clone(), n.ready))
                .collect()
        };
        let all_ready: Vec<(String, bool)> = GATEWAYS
            .iter()
            .map(|(name, _)| ((*name).to_owned(), true))
            .collect();
        assert_eq!(listed(&e), all_ready);
        e.set_node_health("gw-b", unready()).unwrap();
        let mut said = all_ready.clone();
        said[1].1 = false;
        assert_eq!(listed(&e), said, "an unready gateway is still watched");
        assert!(e.delete_policy("web"));
        assert!(e.gateway_nodes().is_empty());
    }
}

fn seed_like(ready_b: bool) -> egress_core::snapshot::Snapshot {
    let text = format!(
        "localNode: w
nodes:
- {{name: w, ipv4: 192.168.1.9, labels: {{}}}}
- {{name: gw-a, ipv4: 192.168.1.1, labels: {{egress: \"true\"}}}}
- {{name: gw-b, ipv4: 192.168.1.2, labels: {{egress: \"true\"}}, ready: {ready_b}}}
policies: []
endpoints: []
"
    );
    egress_core::snapshot::load(&text).unwrap().snapshot
}

/// A snapshot synced over an engine with health said over a node is compared as the objects
/// gave it: when the objects change to what the health says, clearing the health returns to
/// the objects' new value (found by review: it returned to the stale one).
#[test]
fn clearing_returns_to_the_latest_objects_after_a_sync() {
    let mut e = Engine::new(EngineConfig {
        selection: Selection::Consistent,
        ..EngineConfig::new("w")
    });
    e.sync_snapshot(&seed_like(true));
    e.set_node_health("gw-b", unready()).unwrap();
    e.sync_snapshot(&seed_like(false));
    e.set_node_health("gw-b", NodeHealth::default()).unwrap();
    assert!(
        !e.nodes()["gw-b"].ready,
        "cleared back to a stale readiness"
    );
    e.sync_snapshot(&seed_like(true));
    assert!(e.nodes()["gw-b"].ready);
}
