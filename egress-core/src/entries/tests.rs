use super::*;
use crate::gateway;
use crate::gateway::Selection;
use crate::snapshot::Snapshot;

/// gw1 (local, 192.168.1.1, eth1 = 43.0.0.1 + 2402::1, index 3) and gw2 (192.168.1.2) are
/// egress nodes; worker hosts pods.
const NODES: &str = r#"
localNode: gw1
nodes:
- name: gw1
  labels: {egress: "true", kubernetes.io/hostname: gw1}
  ipv4: 192.168.1.1
  interfaces:
  - {name: eth0, index: 2, addresses: [192.168.1.1/24, "fd00::1/64"], defaultRoute: true}
  - {name: eth1, index: 3, addresses: [43.0.0.1/24, "2402::1/64"]}
- name: gw2
  labels: {egress: "true", kubernetes.io/hostname: gw2}
  ipv4: 192.168.1.2
- name: worker
  labels: {zone: a}
  ipv4: 192.168.1.3
"#;

/// gw1's maps by Cilium 1.20's rules (the families of the destinations only, the ifindex in
/// both maps); [`compute_yaml_on`] takes another version.
fn compute_yaml(rest: &str) -> Computation {
    compute_yaml_on(rest, CiliumVersion::V1_20)
}

fn compute_yaml_on(rest: &str, version: CiliumVersion) -> Computation {
    let snap = Snapshot::parse_for(&format!("{NODES}{rest}"), version).unwrap();
    for p in &snap.policies {
        assert!(p.is_ok(), "{p:?}");
    }
    compute(
        &snap.state(),
        "gw1",
        snap.devices_for("gw1"),
        Rules::new(Selection::Cilium, version),
    )
}

fn rows(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {} {}",
                e.source, e.destination, e.egress_ip, e.gateway_ip, e.egress_ifindex
            )
        })
        .collect()
}

fn policy(name: &str, extra_meta: &str, spec: &str) -> String {
    format!("- metadata: {{name: {name}{extra_meta}}}\n  spec:\n{spec}")
}

const EP_WEB: &str = "endpoints:\n- {uid: web-1, namespace: default, labels: {app: web}, ips: [10.0.0.1, \"fd00:a::1\"], node: worker}\n";

#[test]
fn local_remote_and_missing_gateways_with_excluded_cidrs() {
    let spec = |host: &str| {
        format!(
            "    selectors: [{{podSelector: {{matchLabels: {{app: web}}}}}}]\n    destinationCIDRs: [0.0.0.0/0]\n    excludedCIDRs: [10.0.0.0/8]\n    egressGateway: {{nodeSelector: {{matchLabels: {{kubernetes.io/hostname: {host}}}}}, interface: eth1}}\n"
        )
    };
    let local = compute_yaml(&format!(
        "{EP_WEB}policies:\n{}",
        policy("p", "", &spec("gw1"))
    ));
    assert_eq!(
        rows(&local.maps.ipv4),
        [
            "10.0.0.1 0.0.0.0/0 43.0.0.1 192.168.1.1 3",
            "10.0.0.1 10.0.0.0/8 43.0.0.1 0.0.0.1 3"
        ]
    );
    let remote = compute_yaml(&format!(
        "{EP_WEB}policies:\n{}",
        policy("p", "", &spec("gw2"))
    ));
    assert_eq!(
        rows(&remote.maps.ipv4),
        [
            "10.0.0.1 0.0.0.0/0 0.0.0.0 192.168.1.2 0",
            "10.0.0.1 10.0.0.0/8 0.0.0.0 0.0.0.1 0"
        ]
    );
    let missing = compute_yaml(&format!(
        "{EP_WEB}policies:\n{}",
        policy("p", "", &spec("gone"))
    ));
    assert_eq!(
        rows(&missing.maps.ipv4),
        [
            "10.0.0.1 0.0.0.0/0 0.0.0.0 0.0.0.0 0",
            "10.0.0.1 10.0.0.0/8 0.0.0.0 0.0.0.1 0"
        ]
    );
    assert!(local.maps.ipv6.is_empty(), "no IPv6 CIDRs: no IPv6 entries");
    // 1.18 derives no ifindex, and 1.19's only IPv4 map (the legacy one) stores none.
    for version in [CiliumVersion::V1_18, CiliumVersion::V1_19] {
        let local = compute_yaml_on(
            &format!("{EP_WEB}policies:\n{}", policy("p", "", &spec("gw1"))),
            version,
        );
        assert_eq!(
            rows(&local.maps.ipv4),
            [
                "10.0.0.1 0.0.0.0/0 43.0.0.1 192.168.1.1 0",
                "10.0.0.1 10.0.0.0/8 43.0.0.1 0.0.0.1 0"
            ],
            "{version}"
        );
    }
}

#[test]
fn empty_destinations_still_write_excluded_entries() {
    let spec = "    selectors: [{podSelector: {}}]\n    destinationCIDRs: []\n    excludedCIDRs: [10.0.0.0/8, \"fd00::/8\"]\n    egressGateway: {nodeSelector: {matchLabels: {kubernetes.io/hostname: gw1}}, interface: eth1}\n";
    let c = compute_yaml(&format!("{EP_WEB}policies:\n{}", policy("p", "", spec)));
    // No family is needed: egress IPs not-found, the interface's ifindex still set.
    assert_eq!(
        rows(&c.maps.ipv4),
        ["10.0.0.1 10.0.0.0/8 0.0.0.0 0.0.0.1 3"]
    );
    assert_eq!(rows(&c.maps.ipv6), ["fd00:a::1 fd00::/8 :: 0.0.0.1 3"]);
    // Up to 1.19 the IPv4 egress IP is derived whatever the destinations (eth1's first
    // IPv4); 1.18 has no ifindex, 1.19 stores it in the IPv6 map only.
    let text = format!("{EP_WEB}policies:\n{}", policy("p", "", spec));
    for (version, v6_ifindex) in [(CiliumVersion::V1_18, 0), (CiliumVersion::V1_19, 3)] {
        let c = compute_yaml_on(&text, version);
        assert_eq!(
            rows(&c.maps.ipv4),
            ["10.0.0.1 10.0.0.0/8 43.0.0.1 0.0.0.1 0"]
        );
        assert_eq!(
            rows(&c.maps.ipv6),
            [format!("fd00:a::1 fd00::/8 :: 0.0.0.1 {v6_ifindex}")]
        );
    }
}

#[test]
fn ipv6_only_destinations_still_write_ipv4_excluded_entries() {
    let spec = "    selectors: [{podSelector: {}}]\n    destinationCIDRs: [\"::/0\"]\n    excludedCIDRs: [10.0.0.0/8]\n    egressGateway: {nodeSelector: {matchLabels: {kubernetes.io/hostname: gw1}}, interface: eth1}\n";
    let c = compute_yaml(&format!("{EP_WEB}policies:\n{}", policy("p", "", spec)));
    assert_eq!(
        rows(&c.maps.ipv4),
        ["10.0.0.1 10.0.0.0/8 0.0.0.0 0.0.0.1 3"]
    );
    assert_eq!(rows(&c.maps.ipv6), ["fd00:a::1 ::/0 2402::1 192.168.1.1 3"]);
    // CILIUM-VERSIONS.md §4: up to 1.19 the IPv4 excluded entries carry the derived IPv4
    // egress IP; in 1.20 `0.0.0.0`.
    let text = format!("{EP_WEB}policies:\n{}", policy("p", "", spec));
    for (version, v6_ifindex) in [(CiliumVersion::V1_18, 0), (CiliumVersion::V1_19, 3)] {
        let c = compute_yaml_on(&text, version);
        assert_eq!(
            rows(&c.maps.ipv4),
            ["10.0.0.1 10.0.0.0/8 43.0.0.1 0.0.0.1 0"]
        );
        assert_eq!(
            rows(&c.maps.ipv6),
            [format!("fd00:a::1 ::/0 2402::1 192.168.1.1 {v6_ifindex}")]
        );
    }
}

#[test]
fn families_are_separate() {
    let spec = "    selectors: [{podSelector: {}}]\n    destinationCIDRs: [1.0.0.0/8, \"2000::/3\"]\n    egressGateway: {nodeSelector: {matchLabels: {kubernetes.io/hostname: gw1}}, egressIP: 43.0.0.1}\n";
    let c = compute_yaml(&format!("{EP_WEB}policies:\n{}", policy("p", "", spec)));
    // egressIP given for IPv4; IPv6 the first of the device carrying it (eth1), from 1.20
    // (1.18 and 1.19 never derive an IPv6 egress IP for an egressIP).
    let on_1_18 = compute_yaml_on(
        &format!("{EP_WEB}policies:\n{}", policy("p", "", spec)),
        CiliumVersion::V1_18,
    );
    assert_eq!(
        rows(&on_1_18.maps.ipv6),
        ["fd00:a::1 2000::/3 :: 192.168.1.1 0"]
    );
    assert_eq!(
        rows(&c.maps.ipv4),
        ["10.0.0.1 1.0.0.0/8 43.0.0.1 192.168.1.1 0"]
    );
    assert_eq!(
        rows(&c.maps.ipv6),
        ["fd00:a::1 2000::/3 2402::1 192.168.1.1 0"]
    );
    for e in c.maps.iter() {
        assert_eq!(e.source.is_ipv4(), e.destination.is_ipv4());
        assert_eq!(e.source.is_ipv4(), e.egress_ip.is_ipv4());
    }
}

#[test]
fn a_failed_derivation_keeps_the_local_gateway_ip() {
    let spec = "    selectors: [{podSelector: {}}]\n    destinationCIDRs: [0.0.0.0/0]\n    egressGateway: {nodeSelector: {matchLabels: {kubernetes.io/hostname: gw1}}, egressIP: 203.0.113.9}\n";
    let c = compute_yaml(&format!("{EP_WEB}policies:\n{}", policy("p", "", spec)));
    assert_eq!(
        rows(&c.maps.ipv4),
        ["10.0.0.1 0.0.0.0/0 0.0.0.0 192.168.1.1 0"]
    );
    let failure = c.choices[0]
        .gateway
        .egress
        .as_ref()
        .unwrap()
        .failure
        .clone();
    assert!(failure.is_some());
}

#[test]
fn node_filter_and_endpoints_without_ips() {
    let eps = "endpoints:\n- {uid: a, labels: {app: web}, ips: [10.0.0.1], node: worker}\n- {uid: b, labels: {app: web}, ips: [10.0.0.2], node: gw2}\n- {uid: c, labels: {app: web}, ips: [10.0.0.3]}\n- {uid: d, labels: {app: web}, ips: [], node: worker}\n";
    let spec = "    selectors: [{podSelector: {matchLabels: {app: web}}, nodeSelector: {matchLabels: {zone: a}}}]\n    destinationCIDRs: [0.0.0.0/0]\n    egressGateway: {nodeSelector: {matchLabels: {kubernetes.io/hostname: gw2}}}\n";
    let c = compute_yaml(&format!("{eps}policies:\n{}", policy("p", "", spec)));
    assert_eq!(
        rows(&c.maps.ipv4),
        ["10.0.0.1 0.0.0.0/0 0.0.0.0 192.168.1.2 0"]
    );
    let chosen: Vec<&str> = c.choices.iter().map(|x| &*x.endpoint).collect();
    assert_eq!(chosen, ["a", "d"], "d is selected but has no IPs");
    // DoesNotExist matches an endpoint without a node (empty label set).
    let spec = spec.replace(
        "nodeSelector: {matchLabels: {zone: a}}",
        "nodeSelector: {matchExpressions: [{key: zone, operator: DoesNotExist}]}",
    );
    let c = compute_yaml(&format!("{eps}policies:\n{}", policy("p", "", &spec)));
    assert_eq!(
        c.maps
            .ipv4
            .iter()
            .map(|e| e.source.to_string())
            .collect::<Vec<_>>(),
        ["10.0.0.2", "10.0.0.3"]
    );
}

fn precedence_case(meta_a: &str, meta_b: &str) -> String {
    let spec = |host: &str| {
        format!(
            "    selectors: [{{podSelector: {{}}}}]\n    destinationCIDRs: [1.2.3.0/24]\n    egressGateway: {{nodeSelector: {{matchLabels: {{kubernetes.io/hostname: {host}}}}}}}\n"
        )
    };
    let eps = "endpoints:\n- {uid: e, ips: [10.0.0.1]}\n";
    let c = compute_yaml(&format!(
        "{eps}policies:\n{}{}",
        policy("a", meta_a, &spec("gw1")),
        policy("b", meta_b, &spec("gw2"))
    ));
    assert_eq!(c.conflicts.len(), 1);
    assert_eq!(c.conflicts[0].losers.len(), 1);
    c.conflicts[0].winner.policy.to_string()
}

#[test]
fn b1_policy_precedence() {
    // Earliest timestamp wins, offsets applied and nanoseconds compared.
    assert_eq!(
        precedence_case(
            ", creationTimestamp: '2026-01-02T00:00:00Z'",
            ", creationTimestamp: '2026-01-01T00:00:00Z'"
        ),
        "b"
    );
    assert_eq!(
        precedence_case(
            ", creationTimestamp: '2026-01-01T01:00:00+02:00'",
            ", creationTimestamp: '2026-01-01T00:00:00Z'"
        ),
        "a"
    );
    assert_eq!(
        precedence_case(
            ", creationTimestamp: '2026-01-01T00:00:00.000000002Z'",
            ", creationTimestamp: '2026-01-01T00:00:00.000000001Z'"
        ),
        "b"
    );
    // A timestamp beats none.
    assert_eq!(
        precedence_case("", ", creationTimestamp: '2030-01-01T00:00:00Z'"),
        "b"
    );
    // Equal or missing: name, byte-wise.
    assert_eq!(precedence_case("", ""), "a");
    assert_eq!(
        precedence_case(
            ", creationTimestamp: '2026-01-01T00:00:00Z'",
            ", creationTimestamp: '2026-01-01T00:00:00Z'"
        ),
        "a"
    );
}

#[test]
fn b1_excluded_beats_destination_within_a_policy() {
    let spec = "    selectors: [{podSelector: {}}]\n    destinationCIDRs: [1.2.3.0/24]\n    excludedCIDRs: [1.2.3.0/24]\n    egressGateway: {nodeSelector: {matchLabels: {kubernetes.io/hostname: gw2}}}\n";
    let c = compute_yaml(&format!(
        "endpoints:\n- {{uid: e, ips: [10.0.0.1]}}\npolicies:\n{}",
        policy("p", "", spec)
    ));
    assert_eq!(
        rows(&c.maps.ipv4),
        ["10.0.0.1 1.2.3.0/24 0.0.0.0 0.0.0.1 0"]
    );
    assert_eq!(c.conflicts[0].winner.kind, CidrKind::Excluded);
    assert_eq!(c.conflicts[0].losers[0].kind, CidrKind::Destination);
}

#[test]
fn b1_smaller_uid_wins_a_shared_ip() {
    // Two endpoints share 10.0.0.1 and FNV sends them to different gateways.
    assert_ne!(
        gateway::choose("aa", 2),
        gateway::choose("zy", 2),
        "uids must use different gateways"
    );
    let eps = "endpoints:\n- {uid: zy, ips: [10.0.0.1]}\n- {uid: aa, ips: [10.0.0.1]}\n";
    let spec = "    selectors: [{podSelector: {}}]\n    destinationCIDRs: [1.2.3.0/24]\n    egressGateway: {nodeSelector: {}}\n    egressGateways:\n    - {nodeSelector: {matchLabels: {kubernetes.io/hostname: gw1}}}\n    - {nodeSelector: {matchLabels: {kubernetes.io/hostname: gw2}}}\n";
    let c = compute_yaml(&format!("{eps}policies:\n{}", policy("p", "", spec)));
    assert_eq!(c.maps.ipv4.len(), 1);
    let gw_of = |uid: &str| {
        c.choices
            .iter()
            .find(|x| &*x.endpoint == uid)
            .unwrap()
            .gateway
            .gateway_ip
    };
    assert_eq!(c.maps.ipv4[0].gateway_ip, gw_of("aa"));
    assert_eq!(c.conflicts.len(), 1);
    assert_eq!(&*c.conflicts[0].winner.endpoint, "aa");
    assert_eq!(&*c.conflicts[0].losers[0].endpoint, "zy");
}

#[test]
fn b1_first_listed_host_bit_twin_wins() {
    let spec = "    selectors: [{podSelector: {}}]\n    destinationCIDRs: [1.2.3.4/24, 1.2.3.0/24, 1.2.3.4/24]\n    egressGateway: {nodeSelector: {matchLabels: {kubernetes.io/hostname: gw2}}}\n";
    let c = compute_yaml(&format!(
        "endpoints:\n- {{uid: e, ips: [10.0.0.1]}}\npolicies:\n{}",
        policy("p", "", spec)
    ));
    assert_eq!(
        rows(&c.maps.ipv4),
        ["10.0.0.1 1.2.3.4/24 0.0.0.0 192.168.1.2 0"],
        "host bits kept"
    );
    assert_eq!(c.conflicts.len(), 1);
    assert_eq!(c.conflicts[0].winner.cidr_index, 0);
    // The identical duplicate (index 2) is not a loser; the twin (index 1) is.
    assert_eq!(
        c.conflicts[0]
            .losers
            .iter()
            .map(|l| l.cidr_index)
            .collect::<Vec<_>>(),
        [1]
    );
}

#[test]
fn identical_duplicates_are_not_conflicts() {
    let spec = "    selectors: [{podSelector: {}}, {podSelector: {}}]\n    destinationCIDRs: [1.2.3.0/24, 1.2.3.0/24]\n    egressGateway: {nodeSelector: {matchLabels: {kubernetes.io/hostname: gw2}}}\n";
    let c = compute_yaml(&format!(
        "endpoints:\n- {{uid: e, ips: [10.0.0.1, 10.0.0.1]}}\npolicies:\n{}",
        policy("p", "", spec)
    ));
    assert_eq!(c.maps.ipv4.len(), 1);
    assert!(c.conflicts.is_empty());
}

#[test]
fn only_the_gateway_holds_egress_ips() {
    let snap = Snapshot::parse(&format!(
        "{NODES}{EP_WEB}policies:\n{}",
        policy("p", "", "    selectors: [{podSelector: {}}]\n    destinationCIDRs: [0.0.0.0/0, \"::/0\"]\n    egressGateway: {nodeSelector: {matchLabels: {kubernetes.io/hostname: gw1}}, interface: eth1}\n")
    ))
    .unwrap();
    let state = snap.state();
    for node in ["gw1", "gw2", "worker"] {
        let c = compute(&state, node, snap.devices_for(node), Selection::Cilium);
        for e in c.maps.iter() {
            assert_eq!(
                !e.egress_ip.is_unspecified(),
                node == "gw1",
                "{node}: {e:?}"
            );
            assert_eq!(e.gateway_ip, "192.168.1.1".parse::<Ipv4Addr>().unwrap());
        }
    }
}

#[test]
fn map_encoding_round_trips_entries() {
    let c = compute_yaml(&format!(
        "{EP_WEB}policies:\n{}",
        policy(
            "p",
            "",
            "    selectors: [{podSelector: {}}]\n    destinationCIDRs: [1.1.1.1/24, \"2000::5/3\"]\n    egressGateway: {nodeSelector: {matchLabels: {kubernetes.io/hostname: gw1}}, interface: eth1}\n"
        )
    ));
    let v4 = c.maps.ipv4[0];
    let (k, v) = v4.to_map_v4().unwrap();
    assert_eq!(Entry::from_map_v4(&k, &v), v4);
    assert_eq!(k.daddr, [1, 1, 1, 1], "host bits stored");
    let (_, legacy) = v4.to_map_v4_legacy().unwrap();
    assert_eq!(legacy.egress_ip, [43, 0, 0, 1]);
    let v6 = c.maps.ipv6[0];
    let (k, v) = v6.to_map_v6().unwrap();
    assert_eq!(Entry::from_map_v6(&k, &v), v6);
    assert!(v4.to_map_v6().is_none() && v6.to_map_v4().is_none());
}

/// `changes_to` compares two maps by key: added, removed, and changed keys (a value or the
/// destination's host bits), in output order; identical maps have none.
#[test]
fn changes_between_two_maps_are_by_key() {
    let e = |src: &str, dst: &str, egress: &str, gw: &str, ifindex: u32| Entry {
        source: src.parse().unwrap(),
        destination: crate::netip::parse_prefix(dst).unwrap(),
        egress_ip: egress.parse().unwrap(),
        gateway_ip: gw.parse().unwrap(),
        egress_ifindex: ifindex,
    };
    let a = MapEntries::from_entries([
        e("10.0.0.1", "0.0.0.0/0", "1.1.1.1", "192.168.1.1", 0),
        e("10.0.0.2", "0.0.0.0/0", "0.0.0.0", "192.168.1.2", 0),
        e("10.0.0.3", "10.0.0.0/8", "0.0.0.0", "0.0.0.1", 0),
    ]);
    let b = MapEntries::from_entries([
        e("10.0.0.1", "0.0.0.0/0", "1.1.1.1", "192.168.1.1", 2),
        e("10.0.0.3", "10.1.0.0/8", "0.0.0.0", "0.0.0.1", 0),
        e("fd00::1", "::/0", "::", "192.168.1.1", 0),
    ]);
    assert!(a.changes_to(&a).is_empty());
    let got = a.changes_to(&b);
    assert_eq!(
        got,
        [
            EntryChange::Changed {
                before: a.ipv4[0],
                after: b.ipv4[0]
            },
            EntryChange::Removed(a.ipv4[1]),
            EntryChange::Changed {
                before: a.ipv4[2],
                after: b.ipv4[1]
            },
            EntryChange::Added(b.ipv6[0]),
        ]
    );
    assert_eq!(b.changes_to(&a).len(), 4);
}

/// CILIUM-VERSIONS.md §2, UNCONFIRMED for 1.19 (its selectors moved to
/// `policyTypes.LabelSelector` with the `k8s:` source prefix): a key that already carries a
/// source is, as chosen, what it is in 1.18 under SEMANTICS A.1 — not a valid label key, so
/// the selector matches nothing — on every version (docs/cilium-versions.md).
#[test]
fn a_source_prefixed_selector_key_selects_nothing_on_every_version() {
    let spec = "    selectors: [{podSelector: {matchLabels: {\"k8s:app\": web}}}]\n    destinationCIDRs: [0.0.0.0/0]\n    egressGateway: {nodeSelector: {matchLabels: {kubernetes.io/hostname: gw1}}}\n";
    let plain = spec.replace("\"k8s:app\"", "app");
    for version in CiliumVersion::ALL {
        let prefixed = compute_yaml_on(
            &format!("{EP_WEB}policies:\n{}", policy("p", "", spec)),
            version,
        );
        assert!(prefixed.maps.is_empty(), "{version}");
        let bare = compute_yaml_on(
            &format!("{EP_WEB}policies:\n{}", policy("p", "", &plain)),
            version,
        );
        assert_eq!(bare.maps.ipv4.len(), 1, "{version}");
    }
}
