use super::*;
use crate::device::{DeviceAddress, Families};
use crate::labels::Labels;
use crate::policy::{GatewaySpec, LabelSelector, PolicySelectors};

fn node(name: &str, labels: &[(&str, &str)], ipv4: Option<&str>) -> Node {
    let labels: Labels = labels.iter().copied().collect();
    Node::new(name, labels, ipv4.map(|s| s.parse().unwrap()))
}

fn nodes(list: Vec<Node>) -> Nodes {
    list.into_iter().map(|n| (n.name.clone(), n)).collect()
}

fn by_label(key: &str, value: &str) -> LabelSelector {
    LabelSelector {
        match_labels: vec![(key.into(), value.into())],
        match_expressions: vec![],
    }
}

fn policy(entries: Vec<GatewaySpec>) -> Policy {
    Policy {
        name: "p".into(),
        namespace: None,
        creation_timestamp: None,
        selectors: vec![],
        destination_cidrs: vec![crate::netip::parse_prefix("0.0.0.0/0").unwrap()],
        excluded_cidrs: vec![],
        egress_gateway: GatewaySpec::default(),
        egress_gateways: entries,
    }
}

fn entry(key: &str, value: &str) -> GatewaySpec {
    GatewaySpec {
        node_selector: by_label(key, value),
        ..Default::default()
    }
}

/// Resolution by Cilium 1.20's rules (unmatched entries dropped, the ifindex derived).
fn resolve(p: &Policy, ns: &Nodes, local: Option<LocalNode<'_>>) -> Vec<ResolvedGateway> {
    resolve_on(p, ns, local, CiliumVersion::V1_20)
}

fn resolve_on(
    p: &Policy,
    ns: &Nodes,
    local: Option<LocalNode<'_>>,
    version: CiliumVersion,
) -> Vec<ResolvedGateway> {
    let selectors = PolicySelectors::compile(p).gateways;
    resolve_gateways(p, &selectors, ns, local, version)
}

#[test]
fn fnv_vectors() {
    assert_eq!(fnv1a32(b""), 0x811c_9dc5);
    assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
    assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    assert_eq!(choose("anything", 1), 0);
    assert_eq!(choose("a", 3), 0xe40c_292c_usize % 3);
    assert_eq!(choose("a", 7), 0xe40c_292c_usize % 7);
}

#[test]
fn nodes_are_walked_in_byte_wise_name_order() {
    let ns = nodes(vec![
        node("k8s9", &[("egress", "true")], Some("10.0.0.9")),
        node("k8s10", &[("egress", "true")], Some("10.0.0.10")),
    ]);
    let got = resolve(&policy(vec![entry("egress", "true")]), &ns, None);
    assert_eq!(
        got[0].node.as_deref(),
        Some("k8s10"),
        "k8s10 < k8s9 byte-wise"
    );
}

#[test]
fn ipv6_only_nodes_are_skipped() {
    let mut v6 = node("a", &[("egress", "true")], None);
    v6.ipv6 = Some("fd00::1".parse().unwrap());
    let ns = nodes(vec![v6, node("b", &[("egress", "true")], Some("10.0.0.2"))]);
    let got = resolve(&policy(vec![entry("egress", "true")]), &ns, None);
    assert_eq!(got[0].node.as_deref(), Some("b"));
    assert_eq!(got[0].gateway_ip, "10.0.0.2".parse::<Ipv4Addr>().unwrap());
}

#[test]
fn a_local_node_that_is_not_first_is_not_the_gateway() {
    let mut local = node("b", &[("egress", "true")], Some("10.0.0.2"));
    local.interfaces = Some(vec![]);
    let ns = nodes(vec![
        node("a", &[("egress", "true")], Some("10.0.0.1")),
        local,
    ]);
    let devices = [Device {
        name: "eth0".into(),
        index: 2,
        alt_names: vec![],
        addresses: vec![DeviceAddress {
            addr: "10.0.0.2".parse().unwrap(),
            prefix_len: 24,
        }],
        default_route: Families::all(),
    }];
    let l = LocalNode {
        node: &ns["b"],
        devices: &devices,
    };
    let got = resolve(&policy(vec![entry("egress", "true")]), &ns, Some(l));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].node.as_deref(), Some("a"));
    assert_eq!(
        got[0].egress, None,
        "only the local gateway derives egress addresses"
    );
    // When the local node is the gateway, it derives (default route here).
    let got = resolve(
        &policy(vec![entry("kubernetes.io/hostname", "b")]),
        &nodes(vec![node(
            "b",
            &[("kubernetes.io/hostname", "b")],
            Some("10.0.0.2"),
        )]),
        None,
    );
    assert_eq!(got[0].egress, None);
    let ns2 = nodes(vec![node(
        "b",
        &[("kubernetes.io/hostname", "b")],
        Some("10.0.0.2"),
    )]);
    let l = LocalNode {
        node: &ns2["b"],
        devices: &devices,
    };
    let got = resolve(
        &policy(vec![entry("kubernetes.io/hostname", "b")]),
        &ns2,
        Some(l),
    );
    let egress = got[0].egress.as_ref().unwrap();
    assert_eq!(
        (egress.ipv4.to_string(), egress.ifindex),
        ("10.0.0.2".to_owned(), 2)
    );
}

#[test]
fn sorted_by_gateway_ip_numerically_and_stable_on_equal_ips() {
    let ns = nodes(vec![
        node("n9", &[("h", "n9")], Some("10.0.0.9")),
        node("n10", &[("h", "n10")], Some("10.0.0.10")),
    ]);
    let mut second = entry("h", "n9");
    second.egress_ip = Some("192.0.2.9".parse().unwrap());
    let p = policy(vec![
        entry("h", "n10"),
        entry("h", "n9"),
        second,
        entry("h", "missing"),
    ]);
    let got = resolve(&p, &ns, None);
    let summary: Vec<(Option<usize>, String)> = got
        .iter()
        .map(|g| (g.entry_index, g.gateway_ip.to_string()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (Some(1), "10.0.0.9".to_owned()),
            (Some(2), "10.0.0.9".to_owned()),
            (Some(0), "10.0.0.10".to_owned()),
        ],
        ".9 before .10; equal IPs keep policy order; unresolved dropped (1.20)"
    );
    // v1.18.3 keeps the unmatched entry as gateway 0.0.0.0: it sorts first
    // (pkg/egressgateway/policy.go `regenerateGatewayConfig` lines 121-125 at c160168901,
    // before PR #44705 reached 1.18 in v1.18.10 and 1.19 in v1.19.4).
    {
        let version = CiliumVersion::V1_18;
        let got: Vec<(Option<usize>, String, Option<String>)> = resolve_on(&p, &ns, None, version)
            .iter()
            .map(|g| (g.entry_index, g.gateway_ip.to_string(), g.node.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some(3), "0.0.0.0".to_owned(), None),
                (Some(1), "10.0.0.9".to_owned(), Some("n9".to_owned())),
                (Some(2), "10.0.0.9".to_owned(), Some("n9".to_owned())),
                (Some(0), "10.0.0.10".to_owned(), Some("n10".to_owned())),
            ],
            "{version}"
        );
    }
}

/// CILIUM-VERSIONS.md §3's example: three entries, one matching no node. v1.18.3 keeps it
/// as `[0.0.0.0, A, B]` and every uid with `FNV-1a-32(uid) % 3 == 0` gets "Not Found"
/// (gateway 0.0.0.0: dropped); 1.19 (v1.19.4's backport) and 1.20 (PR #44705) choose `% 2`
/// among A and B.
#[test]
fn an_unmatched_entry_takes_its_share_of_endpoints_up_to_1_19() {
    let ns = nodes(vec![
        node("a", &[("h", "a")], Some("10.0.0.1")),
        node("b", &[("h", "b")], Some("10.0.0.2")),
    ]);
    let p = policy(vec![entry("h", "a"), entry("h", "gone"), entry("h", "b")]);
    let selectors = PolicySelectors::compile(&p).gateways;
    let uids = uids(24);
    let mut not_found = 0;
    for version in CiliumVersion::ALL {
        let set = PolicyGateways::resolve(&p, &selectors, &ns, None, version);
        for uid in &uids {
            let h = fnv1a32(uid.as_bytes()) as usize;
            let chosen = set.choose(uid);
            let want = if version != CiliumVersion::V1_18 {
                ["10.0.0.1", "10.0.0.2"][h % 2]
            } else {
                ["0.0.0.0", "10.0.0.1", "10.0.0.2"][h % 3]
            };
            assert_eq!(chosen.gateway_ip.to_string(), want, "{uid} on {version}");
            if version == CiliumVersion::V1_18 && want == "0.0.0.0" {
                not_found += 1;
                assert_eq!(chosen.node, None);
            }
        }
    }
    assert!(not_found > 0, "the sample exercises the Not Found share");
}

#[test]
fn nothing_resolved_gives_one_not_found_gateway() {
    let ns = nodes(vec![node("a", &[], Some("10.0.0.1"))]);
    let two_unmatched = policy(vec![entry("h", "x"), entry("h", "y")]);
    let got = resolve(&two_unmatched, &ns, None);
    assert_eq!(got, vec![ResolvedGateway::not_found()]);
    assert_eq!(got[0].gateway_ip, Ipv4Addr::UNSPECIFIED);
    // 1.18 keeps both, both "not found": every endpoint still gets 0.0.0.0.
    let kept = resolve_on(&two_unmatched, &ns, None, CiliumVersion::V1_18);
    assert_eq!(kept.len(), 2);
    assert!(
        kept.iter()
            .all(|g| g.gateway_ip.is_unspecified() && g.node.is_none())
    );
    // An unbuildable nodeSelector resolves to no node.
    let bad = GatewaySpec {
        node_selector: by_label("bad key", "x"),
        ..Default::default()
    };
    assert_eq!(
        resolve(&policy(vec![bad]), &ns, None),
        vec![ResolvedGateway::not_found()]
    );
}

#[test]
fn fnv64_and_mix64_vectors() {
    assert_eq!(Fnv64::new().finish(), 0xcbf2_9ce4_8422_2325);
    assert_eq!(Fnv64::new().write(b"a").finish(), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(
        Fnv64::new().write_decimal(1907).finish(),
        Fnv64::new().write(b"1907").finish()
    );
    assert_eq!(
        Fnv64::new().write_decimal(0).finish(),
        Fnv64::new().write(b"0").finish()
    );
    assert_eq!(mix64(1), 0x5692_161d_100b_05e5);
    // Vectors computed independently (Python) from B.2's formula.
    assert_eq!(rendezvous_score("u", "n", "0", 1), 0xfc1e_a55e_ed21_8ae5);
    assert_eq!(
        rendezvous_score("u", "n", "route", 1),
        0x755e_7962_a8ad_5846
    );
    assert_eq!(
        rendezvous_score("u", "n", "if=eth0", 2),
        0xd018_4f46_4033_8732
    );
    assert_eq!(
        rendezvous_score("u", "n", "ip=fd00::1", 1),
        0x3e84_d4de_4b65_2020
    );
    assert_eq!(rendezvous_score("u", "n", "route", 0), 0);
}

fn pool(names: &[&str]) -> Nodes {
    nodes(
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                node(
                    n,
                    &[("egress", "true"), ("h", n)],
                    Some(&format!("10.0.0.{}", i + 1)),
                )
            })
            .collect(),
    )
}

fn candidates(p: &Policy, ns: &Nodes) -> Vec<(Option<usize>, String)> {
    keyed_candidates(p, ns)
        .into_iter()
        .map(|(i, node, _)| (i, node))
        .collect()
}

fn keyed_candidates(p: &Policy, ns: &Nodes) -> Vec<(Option<usize>, String, String)> {
    let selectors = PolicySelectors::compile(p).gateways;
    consistent_candidates(p, &selectors, ns, None, CiliumVersion::default())
        .into_iter()
        .map(|g| {
            (
                g.entry_index,
                g.node.unwrap(),
                g.entry_key.unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn entry_keys_name_how_the_address_is_picked() {
    let mut e = entry("h", "a");
    assert_eq!(EntryKey::of(&e).to_string(), "route");
    e.interface = Some("eth1".into());
    assert_eq!(EntryKey::of(&e).as_str(), "if=eth1");
    e.interface = None;
    e.egress_ip = Some("10.0.0.9".parse().unwrap());
    assert_eq!(EntryKey::of(&e).as_str(), "ip=10.0.0.9");
    // IPv6 in RFC 5952 text: lower case, longest zero run compressed.
    e.egress_ip = Some("FD00:0:0:0:0:0:0:1".parse().unwrap());
    assert_eq!(EntryKey::of(&e).as_str(), "ip=fd00::1");
    e.egress_ip = Some("2001:db8:0:0:1:0:0:1".parse().unwrap());
    assert_eq!(EntryKey::of(&e).as_str(), "ip=2001:db8::1:0:0:1");
    // IPv4-compatible (not mapped): plain hex groups, as RFC 5952 and Go print it.
    e.egress_ip = Some("::1.2.3.4".parse().unwrap());
    assert_eq!(EntryKey::of(&e).as_str(), "ip=::102:304");
}

#[test]
fn consistent_candidates_are_distinct_node_key_pairs() {
    let ns = pool(&["a", "b", "c"]);
    let mut eth1 = entry("egress", "true");
    eth1.interface = Some("eth1".into());
    let mut eth1_on_b = entry("h", "b");
    eth1_on_b.interface = Some("eth1".into());
    let p = policy(vec![
        entry("h", "b"),
        eth1,
        entry("egress", "true"),
        eth1_on_b,
        entry("h", "c"),
    ]);
    assert_eq!(
        keyed_candidates(&p, &ns),
        [
            (Some(0), "b".to_owned(), "route".to_owned()),
            (Some(1), "a".to_owned(), "if=eth1".to_owned()),
            (Some(1), "b".to_owned(), "if=eth1".to_owned()),
            (Some(1), "c".to_owned(), "if=eth1".to_owned()),
            (Some(2), "a".to_owned(), "route".to_owned()),
            (Some(2), "c".to_owned(), "route".to_owned()),
        ],
        "(b, route), (b, if=eth1) and (c, route) come once, from their first entry"
    );
}

#[test]
fn consistent_choice_ignores_list_position() {
    let ns = pool(&["a", "b", "c", "d"]);
    let mut pinned = entry("h", "d");
    pinned.egress_ip = Some("10.0.0.4".parse().unwrap());
    let entries = vec![entry("h", "a"), entry("h", "b"), entry("h", "c"), pinned];
    let choices = |list: Vec<GatewaySpec>| -> Vec<(String, String)> {
        let p = policy(list);
        let selectors = PolicySelectors::compile(&p).gateways;
        let set = PolicyGateways::resolve(&p, &selectors, &ns, None, Selection::Consistent);
        uids(500)
            .iter()
            .map(|u| {
                let g = set.choose(u);
                (
                    g.node.clone().unwrap(),
                    g.entry_key.as_ref().unwrap().to_string(),
                )
            })
            .collect()
    };
    let before = choices(entries.clone());
    let mut reversed = entries.clone();
    reversed.reverse();
    assert_eq!(choices(reversed), before, "reordering moves nothing");
    // Deleting entry 1 (node b) moves exactly b's endpoints.
    let mut deleted = entries.clone();
    deleted.remove(1);
    let after = choices(deleted);
    for (b, a) in before.iter().zip(&after) {
        if b.0 != "b" {
            assert_eq!(a, b);
        } else {
            assert_ne!(a.0, "b");
        }
    }
    assert!(before.iter().any(|c| c.0 == "b"));
    assert!(before.iter().any(|c| c.1 == "ip=10.0.0.4"));
}

#[test]
fn consistent_candidates_follow_b2() {
    let mut ns = pool(&["a", "b", "c"]);
    ns.get_mut("b").unwrap().ready = false;
    ns.get_mut("c").unwrap().weight = 0;
    let mut v6only = node("d", &[("egress", "true")], None);
    v6only.ipv6 = Some("fd00::4".parse().unwrap());
    ns.insert("d".into(), v6only);
    // An interface/default entry offers every eligible matching node.
    let every = policy(vec![entry("egress", "true")]);
    assert_eq!(candidates(&every, &pool(&["a", "b", "c"])).len(), 3);
    assert_eq!(
        candidates(&every, &ns),
        [(Some(0), "a".to_owned())],
        "unready, drained, IPv6-only left out"
    );
    // An egressIP entry offers only the node compat mode resolves it to...
    let mut pinned = entry("egress", "true");
    pinned.egress_ip = Some("10.0.0.9".parse().unwrap());
    assert_eq!(
        candidates(&policy(vec![pinned.clone()]), &pool(&["a", "b"])),
        [(Some(0), "a".to_owned())]
    );
    // ...and nothing when that node is unready: it does not move on to "b".
    let mut ns2 = pool(&["a", "b"]);
    ns2.get_mut("a").unwrap().ready = false;
    assert!(candidates(&policy(vec![pinned]), &ns2).is_empty());
    // Entry indexes count unresolved entries.
    let p = policy(vec![entry("h", "zz"), entry("h", "b")]);
    assert_eq!(
        candidates(&p, &pool(&["a", "b"])),
        [(Some(1), "b".to_owned())]
    );
}

#[test]
fn consistent_ties_go_to_the_smaller_node_then_entry_key() {
    assert_eq!(
        best_candidate([(5, "b", "route"), (5, "a", "route"), (4, "a", "if=x")].into_iter()),
        Some(1)
    );
    assert_eq!(
        best_candidate([(5, "a", "route"), (5, "a", "if=eth0")].into_iter()),
        Some(1)
    );
    assert_eq!(
        best_candidate([(1, "a", "if=a"), (9, "z", "route")].into_iter()),
        Some(1)
    );
    assert_eq!(best_candidate(std::iter::empty()), None);
}

fn resolved(name: &str, weight: u8) -> ResolvedGateway {
    ResolvedGateway {
        entry_index: Some(0),
        entry_key: Some(EntryKey::of(&GatewaySpec::default())),
        node: Some(name.into()),
        gateway_ip: Ipv4Addr::UNSPECIFIED,
        egress: None,
        weight,
    }
}

fn uids(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{:08x}-{i}", i.wrapping_mul(2_654_435_761)))
        .collect()
}

#[test]
fn consistent_mode_moves_only_what_it_must() {
    let gws: Vec<ResolvedGateway> = (0..8).map(|i| resolved(&format!("gw{i}"), 1)).collect();
    let pick =
        |uid: &str, set: &[ResolvedGateway]| set[choose_consistent(uid, set).unwrap()].node.clone();
    for uid in uids(2000) {
        let before = pick(&uid, &gws);
        // Removing gw3 moves only gw3's endpoints.
        let without: Vec<ResolvedGateway> = gws
            .iter()
            .filter(|g| g.node.as_deref() != Some("gw3"))
            .cloned()
            .collect();
        if before.as_deref() != Some("gw3") {
            assert_eq!(pick(&uid, &without), before);
        }
        // Adding gw8 moves endpoints only onto gw8.
        let mut with = gws.clone();
        with.push(resolved("gw8", 1));
        let after = pick(&uid, &with);
        assert!(after == before || after.as_deref() == Some("gw8"));
    }
}

#[test]
fn consistent_mode_balances_and_honours_weight() {
    let gws = [resolved("a", 1), resolved("b", 1), resolved("c", 2)];
    let mut load = [0usize; 3];
    for uid in uids(12_000) {
        load[choose_consistent(&uid, &gws).unwrap()] += 1;
    }
    // Weight 2 draws about half: 2/(1+1+2).
    let share = |n: usize| n as f64 / 12_000.0;
    assert!((share(load[2]) - 0.5).abs() < 0.03, "{load:?}");
    assert!((share(load[0]) - 0.25).abs() < 0.03, "{load:?}");
    assert!(choose_consistent("x", &[]).is_none());
}

/// 64 identical entries over a pool of 5,000 nodes are 5,000 candidates, not 320,000 (each
/// endpoint's choice scores every candidate: the duplicates made consistent mode 64 times
/// slower).
#[test]
fn identical_entries_over_a_large_pool_are_one_candidate_per_node() {
    let pool = nodes(
        (0..5000)
            .map(|i| {
                node(
                    &format!("n{i:04}"),
                    &[("egress", "true")],
                    Some(&format!("10.0.{}.{}", i / 250, i % 250 + 1)),
                )
            })
            .collect(),
    );
    let p = policy(vec![entry("egress", "true"); 64]);
    let c = candidates(&p, &pool);
    assert_eq!(c.len(), 5000);
    assert!(c.iter().all(|(i, _)| *i == Some(0)));
}
