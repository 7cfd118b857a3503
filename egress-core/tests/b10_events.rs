//! SEMANTICS B.10 across events, merges and loads (issue 23): whatever the order in which
//! objects arrive — one event at a time, several `-f` inputs, a dump loaded then watched —
//! the engine ends as the whole dump of the objects that remain gives it. (Found by a review
//! of the first version, which fixed an endpoint's node, a Pod's namespace labels and a slice
//! entry's uid at the moment its object arrived.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use egress_core::engine::{Engine, EngineConfig};
use egress_core::snapshot;

const NODE_GW: &str = "apiVersion: cilium.io/v2
kind: CiliumNode
metadata: {name: gw, labels: {egress: \"true\"}}
spec: {addresses: [{type: InternalIP, ip: 192.168.1.1}]}
";
const NODE_N2: &str = "apiVersion: cilium.io/v2
kind: CiliumNode
metadata: {name: n2, labels: {zone: a}}
spec: {addresses: [{type: InternalIP, ip: 192.168.1.2}]}
";
const POLICY: &str = "apiVersion: cilium.io/v2
kind: CiliumEgressGatewayPolicy
metadata: {name: web}
spec:
  selectors: [{podSelector: {matchLabels: {app: web}}}]
  destinationCIDRs: [0.0.0.0/0]
  egressGateway: {nodeSelector: {matchLabels: {egress: \"true\"}}}
";
/// Selects app=web only on nodes of zone a.
const POLICY_ZONE: &str = "apiVersion: cilium.io/v2
kind: CiliumEgressGatewayPolicy
metadata: {name: web}
spec:
  selectors: [{podSelector: {matchLabels: {app: web}}, nodeSelector: {matchLabels: {zone: a}}}]
  destinationCIDRs: [0.0.0.0/0]
  egressGateway: {nodeSelector: {matchLabels: {egress: \"true\"}}}
";
const IDENTITY: &str = "apiVersion: cilium.io/v2
kind: CiliumIdentity
metadata: {name: \"77\"}
security-labels: {\"k8s:app\": web, \"k8s:io.kubernetes.pod.namespace\": default}
";

fn cep(name: &str, uid: &str, ip: &str) -> String {
    format!(
        "apiVersion: cilium.io/v2
kind: CiliumEndpoint
metadata: {{name: {name}, namespace: default, uid: {uid}}}
status:
  identity: {{labels: [\"k8s:app=web\", \"k8s:io.kubernetes.pod.namespace=default\"]}}
  networking: {{addressing: [{{ipv4: {ip}}}], node: 192.168.1.2}}
"
    )
}

fn pod(ns: &str, name: &str, uid: &str, ip: &str, phase: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {ns}, uid: {uid}, labels: {{app: web}}}}
spec: {{nodeName: n2}}
status: {{phase: {phase}, podIP: {ip}}}
"
    )
}

fn slice(slice: &str, names: &[&str]) -> String {
    let entries: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!(
                "{{name: {n}, id: 77, networking: {{addressing: [{{ipv4: 10.9.0.{}}}], node: 192.168.1.2}}}}",
                i + 1
            )
        })
        .collect();
    format!(
        "apiVersion: cilium.io/v2alpha1\nkind: CiliumEndpointSlice\nmetadata: {{name: {slice}}}\nnamespace: default\nendpoints: [{}]\n",
        entries.join(", ")
    )
}

fn dump(objects: &[&str]) -> String {
    objects
        .iter()
        .map(|o| o.to_string())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The engine's endpoints: (uid, ips, node), sorted.
fn state(engine: &Engine) -> Vec<(String, Vec<String>, Option<String>)> {
    let mut out: Vec<_> = engine
        .endpoint_uids()
        .into_iter()
        .map(|u| {
            let ep = engine.endpoint_by_uid(&u).unwrap();
            (
                u,
                ep.ips.iter().map(|i| i.to_string()).collect(),
                ep.node.clone(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The objects loaded as one dump, as every binding's load does.
fn whole(objects: &[&str]) -> Engine {
    Engine::load_snapshot(
        &dump(objects),
        Some("gw"),
        "local_node",
        EngineConfig::new("gw"),
    )
    .unwrap()
    .engine
}

/// The objects applied one event at a time, in this order, to an empty engine.
fn events(objects: &[&str]) -> Engine {
    let mut engine = Engine::new(EngineConfig::new("gw"));
    for o in objects {
        engine.apply_text(o).unwrap();
    }
    engine
}

/// A CiliumEndpoint or slice entry applied before the node it names by address finds that
/// node when the node arrives (a node-selecting policy then selects it), as the dump does.
#[test]
fn an_endpoint_finds_its_node_when_the_node_arrives_later() {
    let c = cep("web-1", "c1", "10.0.0.1");
    let dumped = whole(&[NODE_GW, NODE_N2, POLICY_ZONE, c.as_str()]);
    let no_node = |e: &Engine| {
        e.diagnostics()
            .skipped
            .iter()
            .filter(|w| w.contains("node \"192.168.1.2\" matches no"))
            .count()
    };
    assert_eq!(no_node(&events(&[c.as_str()])), 1);
    let applied = events(&[c.as_str(), POLICY_ZONE, NODE_GW, NODE_N2]);
    assert_eq!(no_node(&applied), 0, "the node arrived: the note goes");
    assert_eq!(state(&applied), state(&dumped));
    assert_eq!(applied.entries(), dumped.entries());
    assert_eq!(dumped.entries().len(), 1);
    let s = slice("ces-a", &["web-1"]);
    let dumped = whole(&[NODE_GW, NODE_N2, POLICY_ZONE, IDENTITY, s.as_str()]);
    let mut applied = events(&[IDENTITY, s.as_str(), POLICY_ZONE, NODE_GW, NODE_N2]);
    assert_eq!(state(&applied), state(&dumped));
    assert_eq!(applied.entries(), dumped.entries());
    // The node goes: its endpoints keep no node, and the zone policy no longer selects them.
    assert!(applied.delete_node("n2"));
    assert_eq!(state(&applied)[0].2, None);
    assert!(applied.entries().is_empty());
}

/// Deleting by the uid of a Pod whose CiliumEndpoint is in force deletes the Pod only (the
/// CiliumEndpoint's endpoint stays); the pod recreated under a new uid, and a late delete of
/// an old uid, end as the dump of the objects that remain.
#[test]
fn a_delete_removes_the_object_of_that_uid_only() {
    let c = cep("web-2", "c2", "10.0.0.2");
    let p = pod("default", "web-2", "u2", "10.0.0.2", "Running");
    let p3 = pod("default", "web-2", "u3", "10.0.0.3", "Running");
    let mut applied = events(&[NODE_GW, NODE_N2, POLICY, p.as_str(), c.as_str()]);
    assert_eq!(applied.endpoint_uids(), ["c2"]);
    assert!(
        applied.delete_endpoint("u2"),
        "the Pod of that uid was known"
    );
    assert_eq!(applied.endpoint_uids(), ["c2"]);
    applied.apply_text(&p3).unwrap();
    let dumped = whole(&[NODE_GW, NODE_N2, POLICY, c.as_str(), p3.as_str()]);
    assert_eq!(state(&applied), state(&dumped));
    assert_eq!(applied.entries(), dumped.entries());
    let mut late = events(&[
        NODE_GW,
        NODE_N2,
        POLICY,
        c.as_str(),
        p.as_str(),
        p3.as_str(),
    ]);
    assert!(!late.delete_endpoint("u2"), "u2 was replaced by u3");
    late.apply_text(&p3).unwrap();
    assert_eq!(state(&late), state(&dumped));
    // Deleting the CiliumEndpoint gives the pod back to its Pod.
    assert!(applied.delete_endpoint("c2"));
    assert_eq!(applied.endpoint_uids(), ["u3"]);
    let pods_only = whole(&[NODE_GW, NODE_N2, POLICY, p3.as_str()]);
    assert_eq!(state(&applied), state(&pods_only));
}

/// A pod listed by two slices (a move whose removal from the old slice is not seen yet)
/// keeps an entry while either slice lists it.
#[test]
fn an_entry_stays_while_a_slice_lists_it() {
    let old = slice("old", &["q"]);
    let new_q = slice("new", &["q"]);
    let new_empty = slice("new", &[]);
    let applied = events(&[
        NODE_GW,
        NODE_N2,
        POLICY,
        IDENTITY,
        old.as_str(),
        new_q.as_str(),
        new_empty.as_str(),
    ]);
    let dumped = whole(&[
        NODE_GW,
        NODE_N2,
        POLICY,
        IDENTITY,
        old.as_str(),
        new_empty.as_str(),
    ]);
    assert_eq!(state(&applied), state(&dumped));
    assert_eq!(state(&applied).len(), 1);
}

/// Merged onto a snapshot as in a whole dump and as events: a finished Pod still gives its
/// slice entry its uid; a Namespace in a later input reaches an earlier input's Pods.
#[test]
fn merged_inputs_resolve_like_a_dump() {
    let s = slice("ces-a", &["web-2"]);
    let p = pod("default", "web-2", "u2", "10.0.0.2", "Succeeded");
    let objs = [NODE_GW, NODE_N2, POLICY, IDENTITY, s.as_str(), p.as_str()];
    let snap = "localNode: gw\nnodes: [{name: gw}]\n".to_owned();
    let merged = snapshot::load_all_owned(vec![snap, dump(&objs)]).unwrap();
    let merged: Vec<String> = merged
        .snapshot
        .endpoints
        .iter()
        .map(|e| e.uid.clone())
        .collect();
    assert_eq!(merged, ["u2"]);
    assert_eq!(whole(&objs).endpoint_uids(), merged);
    assert_eq!(events(&objs).endpoint_uids(), merged);
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {tier: web}}\n";
    let pol = "apiVersion: cilium.io/v2\nkind: CiliumEgressGatewayPolicy\nmetadata: {name: t}\n\
         spec:\n  selectors: [{podSelector: {matchLabels: {io.cilium.k8s.namespace.labels.tier: web}}}]\n  \
         destinationCIDRs: [0.0.0.0/0]\n  egressGateway: {nodeSelector: {matchLabels: {egress: \"true\"}}}\n";
    let p = pod("shop", "p", "u-p", "10.2.0.1", "Running");
    let snap =
        "localNode: gw\nnodes: [{name: gw, ipv4: 192.168.1.1, labels: {egress: \"true\"}}]\n";
    let later =
        snapshot::load_all_owned(vec![snap.into(), dump(&[pol, p.as_str()]), ns.into()]).unwrap();
    let same = snapshot::load_all_owned(vec![snap.into(), dump(&[pol, p.as_str(), ns])]).unwrap();
    let later = Engine::from_snapshot(&later.snapshot, EngineConfig::new("gw")).0;
    let same = Engine::from_snapshot(&same.snapshot, EngineConfig::new("gw")).0;
    assert_eq!(later.entries(), same.entries());
    assert_eq!(same.entries().len(), 1);
}

/// A slice entry waiting for its identity is said to be skipped until the identity arrives;
/// then the note goes (events), or is never said (identities in a later merged input).
#[test]
fn an_identity_arriving_later_takes_back_the_waiting_note() {
    let s = slice("ces-a", &["web-1"]);
    let mut applied = events(&[NODE_GW, NODE_N2, POLICY, s.as_str()]);
    let waiting = |e: &Engine| {
        e.diagnostics()
            .skipped
            .iter()
            .filter(|w| w.contains("identity \"77\" is not in the input"))
            .count()
    };
    assert_eq!(waiting(&applied), 1);
    applied.apply_text(IDENTITY).unwrap();
    assert_eq!(applied.endpoint_uids(), ["default/web-1"]);
    assert_eq!(waiting(&applied), 0);
    let snap = "localNode: gw\nnodes: [{name: gw}]\n".to_owned();
    let merged = snapshot::load_all_owned(vec![
        snap.clone(),
        dump(&[NODE_N2, s.as_str()]),
        IDENTITY.into(),
    ])
    .unwrap();
    assert!(!merged.warnings.iter().any(|w| w.contains("entry skipped")));
    let merged = snapshot::load_all_owned(vec![snap, dump(&[NODE_N2, s.as_str()])]).unwrap();
    assert_eq!(
        merged
            .warnings
            .iter()
            .filter(|w| w.starts_with("default/web-1: identity \"77\" is not in the input"))
            .count(),
        1,
        "{:?}",
        merged.warnings
    );
}

/// An engine loaded from a dump (every binding's load) keeps what the dump's objects said:
/// the same Pod as a later event (a watch's status update) changes nothing beside its
/// CiliumEndpoint, and a Node event does not replace the dump's CiliumNode of its name.
#[test]
fn a_loaded_dump_keeps_its_precedence_for_later_events() {
    let c = cep("web-2", "c2", "10.0.0.2");
    let p = pod("default", "web-2", "u2", "10.0.0.2", "Running");
    let mut engine = whole(&[NODE_GW, NODE_N2, POLICY, c.as_str(), p.as_str()]);
    let applied = engine.apply_text(&p).unwrap();
    assert_eq!(engine.endpoint_uids(), ["c2"]);
    assert!(
        applied
            .warnings
            .iter()
            .any(|w| w.starts_with("1 Pod object(s) ignored"))
    );
    let core = "apiVersion: v1\nkind: Node\nmetadata: {name: gw, labels: {egress: \"true\"}}\n\
                status: {addresses: [{type: InternalIP, address: 192.168.9.9}]}\n";
    let mut engine = whole(&[NODE_GW, core]);
    engine.apply_text(core).unwrap();
    assert_eq!(
        engine.nodes()["gw"].ipv4.unwrap().to_string(),
        "192.168.1.1"
    );
}
