use super::*;

fn input_errors(text: &str) -> Vec<String> {
    match Snapshot::parse(text) {
        Err(crate::Error::Input(errors)) => errors.iter().map(ToString::to_string).collect(),
        other => panic!("expected input errors, got {other:?}"),
    }
}

fn assert_error(text: &str, want: &str) {
    let errors = input_errors(text);
    assert!(
        errors.iter().any(|e| e == want),
        "missing {want:?} in {errors:#?}"
    );
}

const OK: &str = r#"
localNode: a
cluster: c1
nodes:
- name: a
  labels: {egress: "true"}
  ipv4: 10.0.0.1
  ipv6: "fd00::1"
  ready: false
  weight: 0
  interfaces:
  - {name: eth0, index: 2, altNames: [enp0s1], addresses: [10.0.0.1/24], defaultRoute: [ipv4]}
  - {name: eth1, index: 3, addresses: ["fd00::1/64"], defaultRoute: [ipv6]}
- name: b
  ipv4: null
  ipv6: "fd00::2"
endpoints:
- uid: u1
  namespace: prod
  name: api-1
  labels: {app: api}
  namespaceLabels: {team: x}
  serviceAccount: api
  ips: [10.1.0.1, "fd00:1::1"]
  node: b
- uid: u2
  identityLabels: {app: raw}
policies:
- metadata: {name: p1}
  spec:
    selectors: [{podSelector: {}}]
    destinationCIDRs: [0.0.0.0/0]
    egressGateway: {nodeSelector: {}}
- metadata: {name: p2}
  spec: {}
interfaces:
- {name: top0, index: 7, addresses: [10.9.9.9/32]}
"#;

#[test]
fn a_full_snapshot() {
    let s = Snapshot::parse(OK).unwrap();
    assert_eq!(s.local_node.as_deref(), Some("a"));
    assert_eq!(s.cluster.as_deref(), Some("c1"));
    let a = &s.nodes["a"];
    assert_eq!((a.ready, a.weight), (false, 0));
    assert_eq!(
        a.interfaces.as_ref().unwrap()[0].default_route,
        Families::IPV4
    );
    assert_eq!(s.nodes["b"].ipv4, None, "ipv4: null = IPv6-only");
    let ids = s.endpoints[0].identity(s.cluster.as_deref());
    assert_eq!(ids.get("io.cilium.k8s.namespace.labels.team"), Some("x"));
    assert_eq!(ids.get("io.cilium.k8s.policy.serviceaccount"), Some("api"));
    assert_eq!(ids.get("io.cilium.k8s.policy.cluster"), Some("c1"));
    assert_eq!(
        s.endpoints[1].identity(None).iter().collect::<Vec<_>>(),
        [("app", "raw")]
    );
    assert!(s.policies[0].is_ok());
    assert!(s.policies[1].is_err(), "policy errors are not input errors");
    assert_eq!(
        s.invalid_policies().map(|(i, _)| i).collect::<Vec<_>>(),
        [1]
    );
    assert_eq!(s.state().policies.len(), 1);
    // Devices: a node's own list; the top-level list belongs to localNode only.
    assert_eq!(s.devices_for("a")[0].name, "eth0");
    assert!(s.devices_for("b").is_empty());
    let mut no_own = s.clone();
    no_own.nodes.get_mut("a").unwrap().interfaces = None;
    assert_eq!(no_own.devices_for("a")[0].name, "top0");
    assert_eq!(s.local_node_name(None).unwrap(), "a");
    assert_eq!(s.local_node_name(Some("b")).unwrap(), "b");
    assert_eq!(
        s.local_node_name(Some("zz")).unwrap_err().to_string(),
        "node: Not found: \"zz\""
    );
}

#[test]
fn json_snapshots_too() {
    let s = Snapshot::parse(
        r#"{"localNode": "a", "nodes": [{"name": "a", "ipv4": "10.0.0.1"}], "endpoints": []}"#,
    )
    .unwrap();
    assert_eq!(s.nodes.len(), 1);
}

#[test]
fn unknown_fields() {
    assert_error(
        "localNode: a\nnodes: [{name: a}]\nnode: x\n",
        "node: unknown field",
    );
    assert_error(
        "nodes: [{name: a, ip: 1.2.3.4}]\n",
        "nodes[0].ip: unknown field",
    );
    assert_error(
        "endpoints: [{uid: u, ip: 1.2.3.4}]\n",
        "endpoints[0].ip: unknown field",
    );
    assert_error(
        "interfaces: [{name: e, index: 1, mtu: 1500}]\n",
        "interfaces[0].mtu: unknown field",
    );
}

#[test]
fn duplicates() {
    assert_error(
        "nodes: [{name: a}, {name: a}]\n",
        "nodes[1].name: Duplicate value: \"a\"",
    );
    assert_error(
        "endpoints: [{uid: u}, {uid: u}]\n",
        "endpoints[1].uid: Duplicate value: \"u\"",
    );
    assert_error(
        "policies: [{metadata: {name: p}}, {metadata: {name: p}}]\n",
        "policies[1].metadata.name: Duplicate value: \"p\"",
    );
}

#[test]
fn local_node_must_exist() {
    assert_error(
        "localNode: x\nnodes: [{name: a}]\n",
        "localNode: Not found: \"x\"",
    );
    let s = Snapshot::parse("nodes: [{name: a}]\n").unwrap();
    assert_eq!(
        s.local_node_name(None).unwrap_err().to_string(),
        "node: Required value: the input names no localNode (a Kubernetes dump never does)"
    );
    assert_eq!(
        s.node_to_compute(Some("b"), "local_node")
            .unwrap_err()
            .to_string(),
        "local_node: Not found: \"b\""
    );
    assert_eq!(s.node_to_compute(Some("a"), "local_node"), Ok("a"));
}

#[test]
fn addresses_of_the_wrong_family() {
    assert_error(
        "nodes: [{name: a, ipv4: \"fd00::1\"}]\n",
        "nodes[0].ipv4: Invalid value: \"fd00::1\": not an IPv4 address",
    );
    assert_error(
        "nodes: [{name: a, ipv6: 10.0.0.1}]\n",
        "nodes[0].ipv6: Invalid value: \"10.0.0.1\": not an IPv6 address",
    );
    assert_error(
        "endpoints: [{uid: u, ips: [10.0.0.256]}]\n",
        "endpoints[0].ips[0]: Invalid value: \"10.0.0.256\": not an IP address",
    );
    assert_error(
        "endpoints: [{uid: u, ips: [\"fe80::1%eth0\"]}]\n",
        "endpoints[0].ips[0]: Invalid value: \"fe80::1%eth0\": not an IP address",
    );
}

#[test]
fn device_rules() {
    assert_error(
        "interfaces: [{name: e, index: 1, addresses: [10.0.0.1]}]\n",
        "interfaces[0].addresses[0]: Invalid value: \"10.0.0.1\": must be an address with its prefix length (addr/len)",
    );
    assert_error(
        "interfaces: [{name: e, index: 1}, {name: e, index: 2}]\n",
        "interfaces[1].name: Duplicate value: \"e\"",
    );
    assert_error(
        "interfaces: [{name: e, index: 1, altNames: [x]}, {name: f, index: 2, altNames: [x]}]\n",
        "interfaces[1].altNames: Duplicate value: \"x\"",
    );
    assert_error(
        "interfaces: [{name: e, index: 1}, {name: f, index: 1}]\n",
        "interfaces[1].index: Duplicate value: 1",
    );
    assert_error(
        "interfaces: [{name: e, index: 1, defaultRoute: true}, {name: f, index: 2, defaultRoute: [ipv6]}]\n",
        "interfaces[1].defaultRoute: Invalid value: \"ipv6\": another interface already carries this family's default route",
    );
    assert_error(
        "interfaces: [{name: e, index: 1, defaultRoute: [ipv5]}]\n",
        "interfaces[0].defaultRoute[0]: Unsupported value: \"ipv5\": supported values: \"ipv4\", \"ipv6\"",
    );
    assert_error(
        "interfaces: [{name: e, index: 0}]\n",
        "interfaces[0].index: Invalid value: 0: must be a positive 32-bit integer",
    );
    assert_error(
        "interfaces: [{index: 3}]\n",
        "interfaces[0].name: Required value",
    );
    assert_error(
        "interfaces: null\n",
        "interfaces: Invalid value: null: must be a list of interfaces",
    );
    assert_error(
        "nodes: [{name: a, interfaces: null}]\n",
        "nodes[0].interfaces: Invalid value: null: must be a list of interfaces",
    );
    // Per node: the same names on two nodes are fine.
    assert!(Snapshot::parse("nodes: [{name: a, interfaces: [{name: e, index: 1}]}, {name: b, interfaces: [{name: e, index: 1}]}]\n").is_ok());
}

#[test]
fn readiness_and_weight() {
    assert_error(
        "nodes: [{name: a, weight: 101}]\n",
        "nodes[0].weight: Invalid value: 101: must be an integer from 0 to 100",
    );
    assert_error(
        "nodes: [{name: a, weight: -1}]\n",
        "nodes[0].weight: Invalid value: -1: must be an integer from 0 to 100",
    );
    assert_error(
        "nodes: [{name: a, weight: 1.5}]\n",
        "nodes[0].weight: Invalid value: 1.5: must be an integer from 0 to 100, written without a decimal point",
    );
    // Not "100 must be an integer from 0 to 100".
    assert_error(
        "nodes: [{name: a, weight: 100.0}]\n",
        "nodes[0].weight: Invalid value: 100.0: must be an integer from 0 to 100, written without a decimal point",
    );
    assert_error(
        "nodes: [{name: a, weight: \"3\"}]\n",
        "nodes[0].weight: Invalid value: \"3\": must be an integer from 0 to 100",
    );
    assert_error(
        "nodes: [{name: a, ready: \"yes\"}]\n",
        "nodes[0].ready: Invalid value: \"string\": must be of type boolean",
    );
}

#[test]
fn strings_are_never_stringified() {
    assert_error(
        "nodes: [{name: a, labels: {egress: true}}]\n",
        "nodes[0].labels.egress: Invalid value: \"boolean\": must be of type string",
    );
    assert_error(
        "nodes: [{name: a, labels: {1: x}}]\n",
        "nodes[0].labels.1: Invalid value: 1: a key must be a string, not integer",
    );
    assert_error(
        "nodes: [{name: 7}]\n",
        "nodes[0].name: Invalid value: \"integer\": must be of type string",
    );
    assert_error(
        "endpoints: [{uid: 12}]\n",
        "endpoints[0].uid: Invalid value: \"integer\": must be of type string",
    );
    assert_error(
        "endpoints: [{uid: u, ips: [167772161]}]\n",
        "endpoints[0].ips[0]: Invalid value: \"integer\": must be of type string",
    );
    assert_error(
        "endpoints: [{uid: u, namespaceLabels: {team: 3}}]\n",
        "endpoints[0].namespaceLabels.team: Invalid value: \"integer\": must be of type string",
    );
    assert_error(
        "interfaces: [{name: 0, index: 1}]\n",
        "interfaces[0].name: Invalid value: \"integer\": must be of type string",
    );
    assert_error(
        "interfaces: [{name: e, index: 1, addresses: [5]}]\n",
        "interfaces[0].addresses[0]: Invalid value: \"integer\": must be of type string",
    );
}

#[test]
fn every_error_is_reported_and_documents_are_counted() {
    let errors = input_errors("localNode: x\nnodes: [{name: a, ipv4: bad}, {bogus: 1}]\n");
    assert_eq!(
        errors,
        [
            "nodes[0].ipv4: Invalid value: \"bad\": not an IPv4 address",
            "nodes[1].bogus: unknown field",
            "nodes[1].name: Required value",
            "localNode: Not found: \"x\"",
        ]
    );
    assert_eq!(
        Snapshot::parse("a: 1\n---\nb: 2\n").unwrap_err(),
        crate::Error::DocumentCount(2)
    );
    assert!(matches!(
        Snapshot::parse("nodes: [\n"),
        Err(crate::Error::Parse(_))
    ));
    assert!(matches!(
        Snapshot::parse("- 1\n"),
        Err(crate::Error::Input(_))
    ));
}

#[test]
fn devices_are_known_from_a_nodes_own_list_or_the_top_level_one() {
    let s = Snapshot::parse(
        "localNode: a\nnodes: [{name: a}, {name: b, interfaces: []}, {name: c}]\ninterfaces: []\n",
    )
    .unwrap();
    assert!(s.devices_known("a"), "the top-level list is localNode's");
    assert!(s.devices_known("b"), "an empty list of its own is known");
    assert!(!s.devices_known("c"));
    assert!(!s.devices_known("nope"));
    let dump = Snapshot::parse("nodes: [{name: a}]\n").unwrap();
    assert!(!dump.devices_known("a"));
}

/// Objects merged onto a snapshot are read nodes first, as a dump's are (issue 22's one
/// dispatch): an endpoint listed before the CiliumNode whose address it names finds it.
#[test]
fn objects_merged_onto_a_snapshot_are_read_nodes_first() {
    let base = "localNode: a\nnodes: [{name: a, ipv4: 10.0.0.1}]\n";
    let objects = concat!(
        "kind: CiliumEndpoint\n",
        "metadata: {name: web-1, namespace: default, uid: u1}\n",
        "status:\n",
        "  identity: {labels: [\"k8s:app=web\"]}\n",
        "  networking: {addressing: [{ipv4: 10.1.0.1}], node: 192.168.1.7}\n",
        "---\n",
        "kind: CiliumNode\n",
        "metadata: {name: b}\n",
        "spec: {addresses: [{type: InternalIP, ip: 192.168.1.7}]}\n",
    );
    let loaded = load_all(&[base, objects]).unwrap();
    assert_eq!(loaded.snapshot.endpoints.len(), 1, "{:?}", loaded.warnings);
    let ep = &loaded.snapshot.endpoints[0];
    assert_eq!(ep.node.as_deref(), Some("b"), "{:?}", loaded.warnings);
}

#[test]
fn several_inputs_load_as_one() {
    let base = "localNode: a\nnodes: [{name: a, ipv4: 10.0.0.1}]\nendpoints: [{uid: u1, ips: [10.1.0.1]}]\n";
    let more = "nodes: [{name: b, ipv4: 10.0.0.2}, {name: a, ipv4: 10.0.0.9}]\nendpoints: [{uid: u1, ips: [10.1.0.7]}, {uid: u2, ips: [10.1.0.2]}]\n";
    let merged = load_all(&[base, more]).unwrap().snapshot;
    assert_eq!(merged.local_node.as_deref(), Some("a"));
    assert_eq!(merged.nodes["a"].ipv4, Some("10.0.0.9".parse().unwrap()));
    assert_eq!(merged.nodes.len(), 2);
    let ips: Vec<String> = merged
        .endpoints
        .iter()
        .map(|e| e.ips[0].to_string())
        .collect();
    assert_eq!(
        ips,
        ["10.1.0.7", "10.1.0.2"],
        "u1 replaced in place, u2 added"
    );

    // Dumps: the last object of a kind and name wins.
    let node = |ip: &str| {
        format!(
            "kind: CiliumNode\nmetadata: {{name: n}}\nspec: {{addresses: [{{type: InternalIP, ip: {ip}}}]}}\n"
        )
    };
    let merged = load_all(&[&node("10.0.0.1"), &node("10.0.0.2")])
        .unwrap()
        .snapshot;
    assert_eq!(merged.nodes["n"].ipv4, Some("10.0.0.2".parse().unwrap()));

    // Errors name their input.
    assert_eq!(load_all(&[base, "nodes: ["]).unwrap_err().0, Some(1));
    assert_eq!(load_all(&[&node("10.0.0.1"), base]).unwrap_err().0, Some(1));
    let bad_node = node("10.0.0.300");
    let (at, err) = load_all(&[base, &bad_node]).unwrap_err();
    assert_eq!(
        (at, err.path()),
        (Some(1), Some("objects[0].spec.addresses[0].ip"))
    );
}

/// A snapshot inside a stream, or a scalar or list where objects belong: one error that
/// says so, not "kind: Required value" per document.
#[test]
fn misplaced_snapshots_and_scalars_are_named() {
    let errors = |text: &str| match load(text) {
        Err(crate::Error::Input(errors)) => {
            errors.iter().map(ToString::to_string).collect::<Vec<_>>()
        }
        other => panic!("expected input errors, got {other:?}"),
    };
    let two = "localNode: a\nnodes: [{name: a}]\n---\nlocalNode: b\nnodes: [{name: b}]\n";
    let e = errors(two);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with(
            "documents[0]: Invalid value: a snapshot: a snapshot must be the only document"
        ),
        "{e:?}"
    );
    assert_eq!(
        errors("42\n"),
        [
            "documents[0]: Invalid value: \"integer\": want a snapshot or Kubernetes objects (mappings)"
        ]
    );
    assert_eq!(
        errors("- a\n- b\n")[0],
        "documents[0]: Invalid value: \"array\": want a snapshot or Kubernetes objects (mappings)"
    );
    // The same from several inputs: which input, which document.
    match load_all(&["nodes: [{name: a}]\n", "hello\n"]) {
        Err((Some(1), crate::Error::Input(e))) => assert!(
            e[0].to_string().contains("\"string\": want a snapshot"),
            "{e:?}"
        ),
        other => panic!("{other:?}"),
    }
}

/// The policy count at its limit: 10,000 policies read (as a snapshot and as objects), one
/// more refused — by a snapshot before any is parsed, by objects or merged inputs once read.
#[test]
fn the_policy_count_is_limited() {
    let policy = |i: usize| {
        format!(
            "- {{metadata: {{name: p{i}}}, spec: {{selectors: [{{podSelector: {{}}}}], \
             destinationCIDRs: [1.0.0.0/8], egressGateway: {{nodeSelector: {{}}}}}}}}\n"
        )
    };
    let snapshot = |n: usize| {
        let policies: String = (0..n).map(policy).collect();
        format!("nodes: [{{name: a}}]\npolicies:\n{policies}")
    };
    let too_many = format!(
        "policies: Too many: {}: must have at most {MAX_POLICIES} items",
        MAX_POLICIES + 1
    );
    let at = snapshot(MAX_POLICIES);
    assert_eq!(Snapshot::parse(&at).unwrap().policies.len(), MAX_POLICIES);
    assert_eq!(
        input_errors(&snapshot(MAX_POLICIES + 1)),
        [too_many.as_str()]
    );
    // `List` items are counted once flattened.
    let listed: String = (0..=MAX_POLICIES)
        .map(|i| policy(i).replacen("- ", "  - ", 1))
        .collect();
    let wrapped = format!("nodes: [{{name: a}}]\npolicies:\n- kind: List\n  items:\n{listed}");
    assert_eq!(input_errors(&wrapped), [too_many.as_str()]);
    // Two inputs under the limit that make one over it.
    let one = "apiVersion: cilium.io/v2\nkind: CiliumEgressGatewayPolicy\nmetadata: {name: extra}\nspec: {selectors: [{podSelector: {}}], destinationCIDRs: [1.0.0.0/8], egressGateway: {nodeSelector: {}}}\n";
    match load_all(&[&at, one]) {
        Err((None, crate::Error::Input(e))) => assert_eq!(e[0].to_string(), too_many),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        load_all(&[&snapshot(MAX_POLICIES - 1), one])
            .unwrap()
            .snapshot
            .policies
            .len(),
        MAX_POLICIES
    );
}

/// Labels past Kubernetes' lengths are input errors naming the label, in a snapshot's nodes,
/// endpoints and namespaces and in a dump's CiliumNode and CiliumEndpoint identity labels.
#[test]
fn labels_past_their_lengths_are_input_errors() {
    let long = "v".repeat(64);
    assert_error(
        &format!("nodes: [{{name: a, labels: {{k: {long}}}}}]\n"),
        &format!(
            "nodes[0].labels.k: Invalid value: \"{long}\": must be no more than 63 characters"
        ),
    );
    assert_error(
        &format!("nodes: [{{name: a}}]\nendpoints: [{{uid: u, namespaceLabels: {{{long}: x}}}}]\n"),
        &format!(
            "endpoints[0].namespaceLabels.{long}: Invalid value: \"{long}\": name part must be no more than 63 characters"
        ),
    );
    let ok = "v".repeat(63);
    assert!(Snapshot::parse(&format!("nodes: [{{name: a, labels: {{k: {ok}}}}}]\n")).is_ok());
    let long_key = "k".repeat(crate::document::IDENTITY_KEY_LIMIT + 1);
    let dump = format!(
        "apiVersion: cilium.io/v2\nkind: CiliumEndpoint\nmetadata: {{name: e, namespace: n, uid: u1}}\n\
         status:\n  identity: {{labels: [\"k8s:app=a\", \"k8s:{long_key}=x\"]}}\n  networking: {{addressing: [{{ipv4: 10.0.0.1}}], node: 10.0.0.9}}\n"
    );
    match load(&dump) {
        Err(crate::Error::Input(e)) => {
            let text = e[0].to_string();
            assert!(
                text.starts_with("objects[0].status.identity.labels[1]: Invalid value: \"k8s:"),
                "{text}"
            );
            assert!(
                text.ends_with("must be no more than 384 characters"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    let node = format!(
        "apiVersion: cilium.io/v2\nkind: CiliumNode\nmetadata: {{name: n1, labels: {{a: {long}}}}}\n"
    );
    match load(&node) {
        Err(crate::Error::Input(e)) => {
            assert!(
                e[0].to_string()
                    .ends_with("must be no more than 63 characters"),
                "{e:?}"
            )
        }
        other => panic!("{other:?}"),
    }
}

/// Read nodes first, said in document order (issue 22's review): the first error named is
/// the first failing object's, in a dump and in objects merged onto a snapshot.
#[test]
fn the_first_error_is_the_first_objects() {
    let objects = concat!(
        "metadata: {name: no-kind}\n",
        "---\n",
        "kind: CiliumNode\n",
        "metadata: {name: bad}\n",
        "spec: {addresses: [{type: InternalIP, ip: nope}]}\n",
    );
    let err = load(objects).unwrap_err();
    assert_eq!(err.path(), Some("objects[0].kind"), "{err}");
    let base = "localNode: a\nnodes: [{name: a, ipv4: 10.0.0.1}]\n";
    let (at, err) = load_all(&[base, objects]).unwrap_err();
    assert_eq!(
        (at, err.path()),
        (Some(1), Some("objects[0].kind")),
        "{err}"
    );
}
