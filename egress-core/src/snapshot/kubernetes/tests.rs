use super::super::{Loaded, load};
use super::*;
use crate::entries::compute;

const DUMP: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: cilium.io/v2
  kind: CiliumEgressGatewayPolicy
  metadata:
    name: egress-test
    annotations:
      kubectl.kubernetes.io/last-applied-configuration: '{"spec":{"destinationCIDRs":["1.1.1.1/32"]}}'
    creationTimestamp: "2026-11-20T08:00:00Z"
    generation: 1
    resourceVersion: "12345"
    uid: 7d0c0c36-0000-0000-0000-000000000001
  spec:
    destinationCIDRs: ["0.0.0.0/0"]
    egressGateway:
      nodeSelector: {matchLabels: {kubernetes.io/hostname: 172.22.49.119}}
      egressIP: 172.22.49.119
    egressGateways: []
    selectors:
    - podSelector: {matchLabels: {app: nginx, io.kubernetes.pod.namespace: default}}
- apiVersion: cilium.io/v2
  kind: CiliumNode
  metadata:
    name: 172.22.49.119
    labels: {kubernetes.io/hostname: 172.22.49.119, egress-node: "true"}
  spec:
    addresses:
    - {type: CiliumInternalIP, ip: 10.244.0.1}
    - {type: ExternalIP, ip: 43.134.181.245}
    - {type: InternalIP, ip: 172.22.49.119}
    - {type: InternalIP, ip: "fd00::119"}
- apiVersion: cilium.io/v2
  kind: CiliumNode
  metadata:
    name: 172.22.48.125
    labels: {kubernetes.io/hostname: 172.22.48.125}
  spec:
    addresses:
    - {type: CiliumInternalIP, ip: 10.244.1.1}
    - {type: ExternalIP, ip: 43.134.181.9}
- apiVersion: v1
  kind: Namespace
  metadata: {name: default, labels: {kubernetes.io/metadata.name: default}}
- apiVersion: cilium.io/v2
  kind: CiliumEndpoint
  metadata: {name: nginx-54c98b4f84-5wlpc, namespace: default, uid: 5f48eab5-b251-555b-94c0-7481bd903033}
  status:
    identity:
      id: 12345
      labels:
      - k8s:app=nginx
      - k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=default
      - k8s:io.cilium.k8s.policy.cluster=default
      - k8s:io.cilium.k8s.policy.serviceaccount=default
      - k8s:io.kubernetes.pod.namespace=default
    networking:
      addressing: [{ipv4: 172.22.48.4}, {ipv6: "not-an-ip"}]
      node: 43.134.181.9
- apiVersion: cilium.io/v2
  kind: CiliumEndpoint
  metadata: {name: pending, namespace: default, uid: u-pending}
  status: {networking: {addressing: [{ipv4: 172.22.48.9}], node: 172.22.49.119}}
- apiVersion: cilium.io/v2
  kind: CiliumEndpoint
  metadata: {name: lost, namespace: default, uid: u-lost}
  status:
    identity: {labels: ["k8s:app=nginx", "k8s:io.kubernetes.pod.namespace=default"]}
    networking: {addressing: [{ipv4: 172.22.48.10}], node: 192.0.2.99}
- apiVersion: cilium.io/v2
  kind: CiliumEndpoint
  metadata: {name: no-net, namespace: default, uid: u-nonet}
  status: {identity: {labels: ["k8s:app=nginx"]}}
- apiVersion: v1
  kind: Service
  metadata: {name: ignored}
"#;

fn loaded() -> Loaded {
    load(DUMP).unwrap()
}

#[test]
fn nodes_take_internal_then_external_addresses_never_cilium_internal() {
    let s = loaded().snapshot;
    let gw = &s.nodes["172.22.49.119"];
    assert_eq!(gw.ipv4, Some("172.22.49.119".parse().unwrap()));
    assert_eq!(gw.ipv6, Some("fd00::119".parse().unwrap()));
    assert_eq!(gw.labels.get("egress-node"), Some("true"));
    let worker = &s.nodes["172.22.48.125"];
    assert_eq!(
        worker.ipv4,
        Some("43.134.181.9".parse().unwrap()),
        "ExternalIP when no InternalIP"
    );
    assert_eq!(worker.ipv6, None);
    assert!(
        s.local_node.is_none() && s.interfaces.is_none(),
        "a dump names no local node and no devices"
    );
}

#[test]
fn endpoints_from_identity_and_networking() {
    let Loaded {
        snapshot, warnings, ..
    } = loaded();
    let uids: Vec<&str> = snapshot.endpoints.iter().map(|e| e.uid.as_str()).collect();
    assert_eq!(uids, ["5f48eab5-b251-555b-94c0-7481bd903033", "u-lost"]);
    let ep = &snapshot.endpoints[0];
    assert_eq!(
        ep.node.as_deref(),
        Some("172.22.48.125"),
        "matched by the node's address"
    );
    assert_eq!(ep.ips, vec!["172.22.48.4".parse::<IpAddr>().unwrap()]);
    let ids = ep.identity(None);
    assert_eq!(ids.get("app"), Some("nginx"));
    assert_eq!(ids.get("io.kubernetes.pod.namespace"), Some("default"));
    assert_eq!(ids.len(), 5);
    assert_eq!(snapshot.endpoints[1].node, None);
    let joined = warnings.join("\n");
    for want in [
        "objects[4] (default/nginx-54c98b4f84-5wlpc): address \"not-an-ip\" is not an IP address: skipped",
        "objects[5] (default/pending): no status.identity labels: endpoint skipped",
        "objects[6] (default/lost): status.networking.node \"192.0.2.99\" matches no CiliumNode: kept without a node",
        "objects[7] (default/no-net): no status.networking: endpoint skipped",
        "objects[8]: kind Service is not used: skipped",
    ] {
        assert!(joined.contains(want), "missing {want:?} in\n{joined}");
    }
}

#[test]
fn policies_are_read_from_spec_as_stored() {
    let mut s = loaded().snapshot;
    let p = s.policies[0].as_ref().unwrap();
    assert_eq!(
        p.destination_cidrs[0].to_string(),
        "0.0.0.0/0",
        "not the last-applied annotation"
    );
    assert!(p.egress_gateways.is_empty());
    let devices = crate::snapshot::parse_interfaces(
        "[{name: eth0, index: 2, addresses: [172.22.49.119/20], defaultRoute: true}]",
    )
    .unwrap();
    s.set_devices("172.22.49.119", devices).unwrap();
    let c = compute(
        &s.state(),
        "172.22.49.119",
        s.devices_for("172.22.49.119"),
        crate::gateway::Selection::Cilium,
    );
    let rows: Vec<String> = c
        .maps
        .ipv4
        .iter()
        .map(|e| format!("{} {} {}", e.source, e.egress_ip, e.gateway_ip))
        .collect();
    assert_eq!(
        rows,
        [
            "172.22.48.4 172.22.49.119 172.22.49.119",
            "172.22.48.10 172.22.49.119 172.22.49.119"
        ]
    );
    assert!(s.set_devices("nope", vec![]).is_err());
}

#[test]
fn identity_label_sources() {
    let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    assert_eq!(identity_label("k8s:app=web"), pair("app", "web"));
    assert_eq!(identity_label("any:app=web"), pair("app", "web"));
    assert_eq!(identity_label("unspec:app=web"), pair("app", "web"));
    assert_eq!(identity_label("app=web"), pair("app", "web"));
    assert_eq!(
        identity_label("container:team=a"),
        pair("container.team", "a")
    );
    assert_eq!(identity_label("k8s:url=a=b"), pair("url", "a=b"));
    assert_eq!(identity_label("reserved:host"), pair("reserved.host", ""));
}

#[test]
fn dump_input_errors() {
    let errs = |text: &str| match load(text) {
        Err(crate::Error::Input(e)) => e.iter().map(ToString::to_string).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        errs("{metadata: {name: x}}\n"),
        ["objects[0].kind: Required value"]
    );
    assert_eq!(
        errs(
            "{kind: CiliumNode, metadata: {name: a}}\n---\n{kind: CiliumNode, metadata: {name: a}}\n"
        ),
        ["objects[1].metadata.name: Duplicate value: \"a\""]
    );
    assert_eq!(
        errs("{kind: CiliumEndpoint, metadata: {name: a}}\n"),
        ["objects[0].metadata.uid: Required value"]
    );
    assert_eq!(
        errs(
            "{kind: CiliumNode, metadata: {name: a}, spec: {addresses: [{type: InternalIP, ip: 1.2.3}]}}\n"
        ),
        ["objects[0].spec.addresses[0].ip: Invalid value: \"1.2.3\": not an IP address"]
    );
    assert_eq!(load("").unwrap_err(), crate::Error::DocumentCount(0));
}

#[test]
fn external_ips_are_kept_for_the_trap_warning() {
    let node = crate::snapshot::kubernetes::node_from_cilium_node(
        &crate::document::parse_documents(
            "{kind: CiliumNode, metadata: {name: a}, spec: {addresses: [{type: InternalIP, ip: 10.0.0.1}, {type: ExternalIP, ip: 129.226.84.9}, {type: ExternalIP, ip: 129.226.84.9}, {type: CiliumInternalIP, ip: 10.244.0.1}]}}",
        )
        .unwrap()[0],
    )
    .unwrap();
    assert_eq!(node.ipv4, Some("10.0.0.1".parse().unwrap()));
    assert_eq!(
        node.external_ips,
        ["129.226.84.9".parse::<std::net::IpAddr>().unwrap()]
    );
}

/// Endpoints find their node through an address index: 20,000 nodes and 40,000 endpoints
/// (a scan per endpoint: 8 × 10^8 node comparisons). Two nodes with one address: the first
/// by name, as before.
#[test]
fn endpoints_find_their_node_by_an_index() {
    let mut items = Vec::new();
    for n in 0..20_000u32 {
        items.push(format!(
            r#"{{"kind": "CiliumNode", "metadata": {{"name": "n{n:05}"}}, "spec": {{"addresses": [{{"type": "InternalIP", "ip": "10.{}.{}.1"}}]}}}}"#,
            n / 256,
            n % 256
        ));
    }
    // A second node with the address of n00007: n00007 sorts first and wins.
    items.push(r#"{"kind": "CiliumNode", "metadata": {"name": "z-twin"}, "spec": {"addresses": [{"type": "InternalIP", "ip": "10.0.7.1"}]}}"#.to_owned());
    for e in 0..40_000u32 {
        let n = (e * 7) % 20_000;
        items.push(format!(
            r#"{{"kind": "CiliumEndpoint", "metadata": {{"name": "p{e}", "namespace": "x", "uid": "u{e}"}}, "status": {{"identity": {{"labels": ["k8s:app=a"]}}, "networking": {{"addressing": [{{"ipv4": "172.16.{}.{}"}}], "node": "10.{}.{}.1"}}}}}}"#,
            e / 256,
            e % 256,
            n / 256,
            n % 256
        ));
    }
    let text = format!(r#"{{"kind": "List", "items": [{}]}}"#, items.join(","));
    let Loaded {
        snapshot, warnings, ..
    } = load(&text).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(snapshot.endpoints.len(), 40_000);
    for ep in &snapshot.endpoints {
        let e: u32 = ep.uid[1..].parse().unwrap();
        assert_eq!(
            ep.node.as_deref(),
            Some(format!("n{:05}", (e * 7) % 20_000).as_str())
        );
    }
}

/// B.10: core Pods and Nodes — the field mapping, the skips and the precedence of Cilium's
/// objects (said once per kind).
const CORE: &str = r#"
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: web, labels: {team: blue, kubernetes.io/metadata.name: web}}}
- apiVersion: v1
  kind: Node
  metadata: {name: n1, labels: {egress: "true"}}
  status:
    addresses:
    - {type: Hostname, address: n1}
    - {type: ExternalIP, address: 203.0.113.1}
    - {type: InternalIP, address: 10.0.0.1}
    - {type: InternalIP, address: "fd00::1"}
- apiVersion: v1
  kind: Node
  metadata: {name: n2}
  status: {addresses: [{type: ExternalIP, address: 203.0.113.2}]}
- apiVersion: cilium.io/v2
  kind: CiliumNode
  metadata: {name: n2}
  spec: {addresses: [{type: InternalIP, ip: 10.0.0.2}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: a, namespace: web, uid: u-a, labels: {app: a}}
  spec: {nodeName: n1, serviceAccountName: sa}
  status: {phase: Running, podIP: 10.1.0.1, podIPs: [{ip: 10.1.0.1}, {ip: "fd01::1"}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: b, namespace: web, uid: u-b, labels: {app: b}}
  spec: {nodeName: n1}
  status: {phase: Pending, podIP: 10.1.0.2}
- apiVersion: v1
  kind: Pod
  metadata: {name: host, namespace: web, uid: u-host}
  spec: {nodeName: n1, hostNetwork: true}
  status: {phase: Running, podIP: 10.0.0.1}
- apiVersion: v1
  kind: Pod
  metadata: {name: done, namespace: web, uid: u-done}
  spec: {nodeName: n1}
  status: {phase: Succeeded, podIP: 10.1.0.9}
- apiVersion: v1
  kind: Pod
  metadata: {name: new, namespace: web, uid: u-new}
  spec: {nodeName: n1}
  status: {phase: Pending}
- apiVersion: v1
  kind: Pod
  metadata: {name: shadowed, namespace: web, uid: u-pod}
  spec: {nodeName: n1}
  status: {phase: Running, podIP: 10.1.0.7}
- apiVersion: cilium.io/v2
  kind: CiliumEndpoint
  metadata: {name: shadowed, namespace: web, uid: u-ce}
  status: {identity: {labels: []}}
"#;

#[test]
fn pods_and_nodes_are_read_as_b10_says() {
    let loaded = load(CORE).unwrap();
    let s = &loaded.snapshot;
    // Node: InternalIP first (per family), ExternalIP kept as such; a CiliumNode beats the
    // Node of its name.
    let n1 = &s.nodes["n1"];
    assert_eq!(n1.ipv4, Some("10.0.0.1".parse().unwrap()));
    assert_eq!(n1.ipv6, Some("fd00::1".parse().unwrap()));
    assert_eq!(n1.external_ips, ["203.0.113.1".parse::<IpAddr>().unwrap()]);
    assert_eq!(s.nodes["n2"].ipv4, Some("10.0.0.2".parse().unwrap()));
    // Pods: a, b (podIP), new (no IP yet); host network, finished and shadowed pods are not.
    let uids: Vec<&str> = s.endpoints.iter().map(|e| e.uid.as_str()).collect();
    assert_eq!(uids, ["u-a", "u-b", "u-new"]);
    let a = &s.endpoints[0];
    assert_eq!(
        a.ips,
        [
            "10.1.0.1".parse::<IpAddr>().unwrap(),
            "fd01::1".parse().unwrap()
        ]
    );
    assert_eq!(a.node.as_deref(), Some("n1"));
    // Its identity: labels, namespace, the namespace's labels, the service account (A.2).
    let identity = a.identity(None);
    for (k, v) in [
        ("app", "a"),
        ("io.kubernetes.pod.namespace", "web"),
        ("io.cilium.k8s.namespace.labels.team", "blue"),
        ("io.cilium.k8s.policy.serviceaccount", "sa"),
    ] {
        assert_eq!(identity.get(k), Some(v), "{k}: {identity:?}");
    }
    assert_eq!(s.endpoints[1].ips, ["10.1.0.2".parse::<IpAddr>().unwrap()]);
    assert!(s.endpoints[2].ips.is_empty());
    let w = loaded.warnings.join("\n");
    for want in [
        "objects[6] (web/host): spec.hostNetwork: true: Cilium manages no endpoint for it: skipped",
        "objects[7] (web/done): phase Succeeded: finished, skipped",
        "objects[8] (web/new): no IP yet (status.podIPs): selected, no entries until it has one",
        "1 Node object(s) ignored: a CiliumNode of the same name is read",
        "1 Pod object(s) ignored: a CiliumEndpoint (even one skipped) or slice entry of the same pod is read",
    ] {
        assert!(w.contains(want), "missing {want:?} in\n{w}");
    }
}

/// B.10's slices: an entry with an unknown identity is skipped with a warning; a
/// CiliumEndpoint beats the slice entry of its pod, said once.
#[test]
fn slice_entries_need_their_identity_and_yield_to_cilium_endpoints() {
    let dump = r#"
apiVersion: v1
kind: List
items:
- {apiVersion: cilium.io/v2, kind: CiliumIdentity, metadata: {name: "7"}, security-labels: {"k8s:app": web, "k8s:io.kubernetes.pod.namespace": shop}}
- apiVersion: cilium.io/v2alpha1
  kind: CiliumEndpointSlice
  metadata: {name: ces-1}
  namespace: shop
  endpoints:
  - {name: a, id: 7, networking: {addressing: [{ipv4: 10.3.0.1}], node: 10.0.0.1}}
  - {name: b, id: 8, networking: {addressing: [{ipv4: 10.3.0.2}], node: 10.0.0.1}}
  - {name: c, id: 7, networking: {addressing: [{ipv4: 10.3.0.3}], node: 10.0.0.1}}
- apiVersion: cilium.io/v2
  kind: CiliumEndpoint
  metadata: {name: c, namespace: shop, uid: u-c}
  status:
    identity: {labels: ["k8s:app=web"]}
    networking: {addressing: [{ipv4: 10.3.0.3}], node: 10.0.0.1}
"#;
    let loaded = load(dump).unwrap();
    let uids: Vec<&str> = loaded
        .snapshot
        .endpoints
        .iter()
        .map(|e| e.uid.as_str())
        .collect();
    assert_eq!(uids, ["u-c", "shop/a"]);
    let a = &loaded.snapshot.endpoints[1];
    assert_eq!(a.identity(None).get("app"), Some("web"));
    let w = loaded.warnings.join("\n");
    assert!(
        w.contains("(shop/b): identity \"8\" is not in the input"),
        "{w}"
    );
    assert!(w.contains("1 CiliumEndpointSlice entr(ies) ignored"), "{w}");
}
