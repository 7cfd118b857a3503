use std::path::Path;

use super::*;
use crate::entries::compute;
use crate::lookup::LookupTable;
use crate::maps::MapId;

fn examples() -> Vec<(String, Snapshot)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/snapshots");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) == Some("yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((path.display().to_string(), Snapshot::parse(&text).unwrap()));
        }
    }
    assert!(out.len() >= 7);
    out
}

/// The engine tests' configuration: Cilium 1.18's rules (the seed's) written to `_v4_v2`
/// alone, one operation per entry. The versions' own layouts are tested below and in tests/.
fn v2(node: impl Into<String>) -> EngineConfig {
    EngineConfig {
        layout: Layout::V4V2,
        ..EngineConfig::new(node)
    }
}

/// [`v2`] on Cilium 1.20's rules: the ifindex derived and stored for both families.
fn v2_on_1_20(node: impl Into<String>) -> EngineConfig {
    v2(node)
        .with_cilium_version(CiliumVersion::V1_20)
        .with_layout(Layout::V4V2)
}

#[test]
fn equals_the_batch_path_on_every_example_node_mode_and_version() {
    for (name, snap) in examples() {
        for node in snap.nodes.keys() {
            for version in CiliumVersion::ALL {
                for selection in [Selection::Cilium, Selection::Consistent] {
                    let config = EngineConfig {
                        selection,
                        ..EngineConfig::new(node.clone()).with_cilium_version(version)
                    };
                    let engine = Engine::from_snapshot(&snap, config).0;
                    let rules = Rules::new(selection, version);
                    let batch = compute(&snap.state(), node, snap.devices_for(node), rules);
                    let case = format!("{name} node {node} {selection:?} {version}");
                    assert_eq!(engine.entries(), batch.maps, "{case}");
                    assert_eq!(engine.conflicts(), batch.conflicts, "{case}");
                }
            }
        }
    }
}

fn seed() -> Snapshot {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/snapshots/seed-gateway-group.yaml"),
    )
    .unwrap();
    Snapshot::parse(&text).unwrap()
}

/// The seed's gateway node on Cilium 1.18 (the seed's), written to `_v4_v2` alone. (On 1.20
/// the seed's dual-stack destinations with an IPv4 egressIP lose their egress IP:
/// cilium#48660.)
fn engine() -> Engine {
    let config = EngineConfig {
        layout: Layout::V4V2,
        ..EngineConfig::new("172.22.49.119")
    };
    Engine::from_snapshot(&seed(), config).0
}

fn programmed_engine() -> Engine {
    let mut e = engine();
    let plan = e.take_plan().unwrap();
    e.ack(&plan, plan.len()).unwrap();
    assert!(e.take_plan().unwrap().is_empty());
    e
}

fn new_pod(uid: &str, ip: &str) -> Endpoint {
    Endpoint {
        uid: uid.into(),
        namespace: Some("default".into()),
        name: Some(format!("nginx-{uid}")),
        labels: [("app".to_owned(), "nginx".to_owned())].into(),
        namespace_labels: [(
            "kubernetes.io/metadata.name".to_owned(),
            "default".to_owned(),
        )]
        .into(),
        ips: vec![ip.parse().unwrap()],
        node: Some("172.22.48.125".into()),
        ..Endpoint::default()
    }
}

#[test]
fn the_first_plan_writes_everything_then_nothing() {
    let mut e = engine();
    let plan = e.take_plan().unwrap();
    assert_eq!(plan.upserts().len(), 10);
    assert!(plan.deletes().is_empty());
    assert_eq!(plan.peak(), [10, 0]);
    e.ack(&plan, plan.len()).unwrap();
    assert_eq!(e.programmed(), e.entries());
    assert!(e.take_plan().unwrap().is_empty());
    assert_eq!(e.stats().pending_sources, 0);
}

#[test]
fn one_endpoint_upsert_plans_exactly_its_entries() {
    let mut e = programmed_engine();
    e.upsert_endpoint(new_pod("new-1", "172.22.48.99")).unwrap();
    let plan = e.take_plan().unwrap();
    assert_eq!(plan.len(), 1);
    let op = &plan.ops()[0];
    assert_eq!(op.action(), Action::Upsert);
    assert_eq!(
        op.entry().unwrap().source,
        "172.22.48.99".parse::<IpAddr>().unwrap()
    );
    assert_eq!(op.map(), MapId::V4);
    let (k, v) = op.entry().unwrap().to_map_v4().unwrap();
    let mut kb = [0u8; 12];
    let mut vb = [0u8; 28];
    k.encode(&mut kb);
    v.encode(&mut vb);
    assert_eq!(op.key(), kb);
    assert_eq!(op.value(), vb);
    e.ack(&plan, 1).unwrap();
    assert!(e.delete_endpoint("new-1"));
    let plan = e.take_plan().unwrap();
    assert_eq!(plan.deletes().len(), 1);
    assert!(plan.deletes()[0].value().is_empty());
    e.ack(&plan, 1).unwrap();
    assert!(e.take_plan().unwrap().is_empty());
    assert!(!e.delete_endpoint("new-1"));
}

#[test]
fn a_partial_ack_re_emits_the_rest() {
    let mut e = engine();
    let plan = e.take_plan().unwrap();
    e.ack(&plan, 4).unwrap();
    let rest = e.take_plan().unwrap();
    assert_eq!(rest.len(), 6);
    assert_eq!(rest.ops(), plan.ops()[4..].to_vec());
    assert_eq!(e.stats().programmed_v4, 4);
    e.ack(&rest, rest.len()).unwrap();
    assert!(e.take_plan().unwrap().is_empty());
}

/// B.8: a plan is acknowledged once, by the engine that took it, while it is the last one
/// taken and its baseline is the engine's, up to its length; a refusal records nothing.
#[test]
fn a_plan_is_acknowledged_once_by_its_engine() {
    let mut e = engine();
    let mut other = engine();
    let refused = |e: &mut Engine, plan: &Plan, applied: usize| {
        let before = e.stats();
        let err = e.ack(plan, applied).unwrap_err();
        assert_eq!(e.stats(), before, "{err}: nothing recorded");
        err.to_string()
    };
    assert_eq!(
        e.ack_last(0).unwrap_err().to_string(),
        "plan: Required value: no plan has been taken from this engine"
    );
    let older = e.take_plan().unwrap();
    let plan = e.take_plan().unwrap();
    assert_eq!(older, plan, "equal operations, different plans");
    assert_eq!(plan.id().sequence, older.id().sequence + 1);
    assert_eq!(
        refused(&mut other, &plan, 0),
        "plan: Forbidden: taken from another engine"
    );
    assert_eq!(
        refused(&mut e, &Plan::default(), 0),
        "plan: Forbidden: taken from another engine"
    );
    assert_eq!(
        refused(&mut e, &older, 0),
        "plan: Forbidden: plan 1 is older than the last plan taken (2); acknowledge that one, or take a new plan"
    );
    assert_eq!(
        refused(&mut e, &plan, 11),
        "applied: Invalid value: 11: more than the plan's 10 operations"
    );
    e.ack(&plan, 3).unwrap();
    assert_eq!(
        refused(&mut e, &plan, 0),
        "plan: Forbidden: plan 2 was acknowledged already; take a new plan"
    );
    assert_eq!(e.ack_last(0).unwrap_err(), AckError::AlreadyAcknowledged(2));
    // Adopting replaces the baseline a plan was netted against: that plan is void.
    let rest = e.take_plan().unwrap();
    assert_eq!(rest.len(), 7);
    e.adopt(Vec::new()).unwrap();
    assert_eq!(
        refused(&mut e, &rest, 0),
        "plan: Forbidden: the programmed baseline was adopted after plan 3 was taken; take a new plan"
    );
    // A take that does not fit the caller takes nothing: the last plan is still the one.
    let all = e.take_plan().unwrap();
    assert_eq!(e.take_plan_if(|len| len < all.len()).unwrap(), None);
    assert_eq!(e.last_plan_id(), all.id());
    // A take refused for capacity hands nothing out to acknowledge.
    let small_config = EngineConfig {
        max_entries: 2,
        ..v2("172.22.49.119")
    };
    let mut small = Engine::from_snapshot(&seed(), small_config).0;
    small.take_plan().unwrap_err();
    assert_eq!(small.ack_last(0).unwrap_err(), AckError::NotHandedOut(1));
    // The last plan, acknowledged by its id.
    let last = e.take_plan().unwrap();
    e.ack_id(last.id(), last.len()).unwrap();
    assert!(e.take_plan().unwrap().is_empty());
    assert_eq!(
        crate::Error::from(AckError::Stale { plan: 1, last: 2 }).path(),
        Some("plan")
    );
}

#[test]
fn adopting_an_identical_map_plans_nothing_and_a_stale_one_is_repaired() {
    let mut e = engine();
    e.adopt(e.entries().iter().copied()).unwrap();
    assert!(e.take_plan().unwrap().is_empty());
    // A stale entry and a wrong value in the live map.
    let mut live: Vec<Entry> = e.entries().iter().copied().collect();
    live[0].gateway_ip = "10.9.9.9".parse().unwrap();
    let mut stale = live[1];
    stale.source = "172.22.48.200".parse().unwrap();
    live.push(stale);
    e.adopt(live).unwrap();
    let plan = e.take_plan().unwrap();
    assert_eq!(plan.upserts().len(), 1);
    assert_eq!(plan.deletes().len(), 1);
    assert_eq!(plan.deletes()[0].entry().unwrap().source, stale.source);
}

#[test]
fn a_plan_that_would_overflow_is_refused_before_anything() {
    let e = Engine::from_snapshot(
        &seed(),
        EngineConfig {
            max_entries: 9,
            ..v2("172.22.49.119")
        },
    )
    .0;
    let err = e.take_plan().unwrap_err();
    assert_eq!(
        err,
        PlanError::Capacity(CapacityError {
            map: MapId::V4,
            peak: 10,
            max_entries: 9
        })
    );
    assert_eq!(e.stats().programmed_v4, 0);
    // Upserts come before deletes where a spare slot allows; at 10 of 10, replacing an
    // entry by a new key deletes the stale key first (issue 21: never refused forever).
    let mut e = Engine::from_snapshot(
        &seed(),
        EngineConfig {
            max_entries: 10,
            ..v2("172.22.49.119")
        },
    )
    .0;
    let plan = e.take_plan().unwrap();
    e.ack(&plan, plan.len()).unwrap();
    let mut moved = new_pod("5f48eab5-b251-555b-94c0-7481bd903033", "172.22.48.250");
    moved.name = Some("nginx-54c98b4f84-5wlpc".into());
    e.upsert_endpoint(moved).unwrap();
    let plan = e.take_plan().unwrap();
    assert!(plan.deletes_first());
    assert_eq!(plan.peak(), [10, 0]);
    let actions: Vec<_> = plan.ops().iter().map(|op| op.action()).collect();
    assert_eq!(actions, [Action::Delete, Action::Upsert]);
    assert_eq!((plan.upserts().len(), plan.deletes().len()), (1, 1));
    assert_eq!(
        plan.upserts()[0].entry().unwrap().source.to_string(),
        "172.22.48.250"
    );
    assert_eq!(
        plan.deletes()[0].entry().unwrap().source.to_string(),
        "172.22.48.4"
    );
    e.ack(&plan, plan.len()).unwrap();
    assert_eq!(e.stats().programmed_v4, 10);
    assert!(e.take_plan().unwrap().is_empty());
}

fn capacity(e: PlanError) -> CapacityError {
    match e {
        PlanError::Capacity(c) => c,
        other => panic!("not a capacity refusal: {other}"),
    }
}

/// Each map is held to its own capacity: a small IPv6 map does not limit the IPv4 one.
#[test]
fn each_map_has_its_own_capacity() {
    let config = |v4: u32, v6: Option<u32>| EngineConfig {
        max_entries: v4,
        max_entries_v6: v6,
        ..v2("172.22.49.119")
    };
    // The seed: 10 IPv4 entries, no IPv6 one.
    let engine = Engine::from_snapshot(&seed(), config(10, Some(1))).0;
    assert!(engine.take_plan().is_ok());
    let stats = engine.stats();
    assert_eq!((stats.max_entries, stats.max_entries_v6), (10, 1));
    let stats = Engine::from_snapshot(&seed(), config(10, None)).0.stats();
    assert_eq!((stats.max_entries, stats.max_entries_v6), (10, 10));
    let err = capacity(
        Engine::from_snapshot(&seed(), config(9, Some(100)))
            .0
            .take_plan()
            .unwrap_err(),
    );
    assert_eq!((err.map, err.max_entries), (MapId::V4, 9));
    let mut e = Engine::from_snapshot(&seed(), config(100, Some(0))).0;
    e.upsert_endpoint(Endpoint {
        ips: vec!["fd00::9".parse().unwrap()],
        ..new_pod("u-v6", "172.22.48.251")
    })
    .unwrap();
    let err = capacity(e.take_plan().unwrap_err());
    assert_eq!((err.map, err.peak, err.max_entries), (MapId::V6, 1, 0));
}

#[test]
fn a_rejected_policy_update_keeps_the_previous_version() {
    let mut e = programmed_engine();
    let before = e.entries();
    let bad = crate::document::parse_documents(
        "metadata: {name: egress-test}\nspec:\n  selectors: [{podSelector: {}}]\n  destinationCIDRs: [\"1.2.3.4\"]\n",
    )
    .unwrap()
    .remove(0);
    let err = e.upsert_policy_document(&bad).unwrap_err();
    assert_eq!(err.errors.len(), 2);
    assert_eq!(e.entries(), before);
    assert!(e.take_plan().unwrap().is_empty());
    assert!(e.policy("egress-test").is_some());
}

#[test]
fn policy_changes_and_deletion() {
    let mut e = programmed_engine();
    let mut p = e.policy("egress-test").unwrap().clone();
    p.excluded_cidrs = vec![crate::netip::parse_prefix("10.0.0.0/8").unwrap()];
    e.upsert_policy(p).unwrap();
    let plan = e.take_plan().unwrap();
    assert_eq!((plan.upserts().len(), plan.deletes().len()), (10, 0));
    e.ack(&plan, plan.len()).unwrap();
    assert!(e.delete_policy("egress-test"));
    let plan = e.take_plan().unwrap();
    assert_eq!((plan.upserts().len(), plan.deletes().len()), (0, 20));
    e.ack(&plan, plan.len()).unwrap();
    assert_eq!(e.stats().programmed_v4, 0);
    assert!(e.sources.is_empty(), "nothing left behind");
}

#[test]
fn a_node_ip_change_rewrites_the_entries_pointing_at_it() {
    let mut e = programmed_engine();
    let mut gw = seed().nodes["172.22.49.147"].clone();
    gw.ipv4 = Some("172.22.49.148".parse().unwrap());
    e.upsert_node(gw);
    let plan = e.take_plan().unwrap();
    assert_eq!(plan.len(), 5, "the five endpoints using .147");
    assert!(
        plan.ops().iter().all(
            |op| op.entry().unwrap().gateway_ip == "172.22.49.148".parse::<Ipv4Addr>().unwrap()
        )
    );
}

#[test]
fn node_labels_drive_node_filters_and_gateways() {
    let mut snap = seed();
    // Restrict the policy to endpoints on nodes labelled zone=a.
    let policy = snap.policies[0].as_mut().unwrap();
    policy.selectors[0].node_selector = Some(crate::policy::LabelSelector {
        match_labels: vec![("zone".into(), "a".into())],
        match_expressions: vec![],
    });
    let mut e = Engine::from_snapshot(&snap, v2("172.22.49.119")).0;
    assert!(e.entries().is_empty());
    let mut worker = snap.nodes["172.22.48.125"].clone();
    worker.labels = [("kubernetes.io/hostname", "172.22.48.125"), ("zone", "a")]
        .into_iter()
        .collect();
    e.upsert_node(worker.clone());
    assert_eq!(e.entries().ipv4.len(), 5, "the five pods on 172.22.48.125");
    snap.nodes.insert(worker.name.clone(), worker);
    assert_eq!(
        e.entries(),
        compute(
            &snap.state(),
            "172.22.49.119",
            snap.devices_for("172.22.49.119"),
            Selection::Cilium
        )
        .maps
    );
    assert!(e.delete_node("172.22.48.125"));
    assert!(e.entries().is_empty());
    // Deleting a gateway node: on 1.20 its endpoints move to the other gateway; on 1.18 its
    // entry stays as gateway 0.0.0.0, sorted first: the half that hashes to it loses its
    // gateway ("Not Found"), the other half moves to the remaining one.
    let mut e = Engine::from_snapshot(&seed(), v2_on_1_20("172.22.49.119")).0;
    e.delete_node("172.22.49.147");
    assert!(
        e.entries()
            .ipv4
            .iter()
            .all(|x| x.gateway_ip == "172.22.49.119".parse::<Ipv4Addr>().unwrap())
    );
    let mut e = engine();
    let before: BTreeMap<IpAddr, Ipv4Addr> = e
        .entries()
        .ipv4
        .iter()
        .map(|x| (x.source, x.gateway_ip))
        .collect();
    e.delete_node("172.22.49.147");
    for x in e.entries().ipv4 {
        let want = if before[&x.source] == "172.22.49.119".parse::<Ipv4Addr>().unwrap() {
            Ipv4Addr::UNSPECIFIED
        } else {
            "172.22.49.119".parse().unwrap()
        };
        assert_eq!(x.gateway_ip, want, "{}", x.source);
    }
}

#[test]
fn devices_are_derived_again_at_once() {
    let mut snap = seed();
    let p = snap.policies[0].as_mut().unwrap();
    p.egress_gateways[1].egress_ip = None;
    p.egress_gateways[1].interface = Some("eth1".into());
    // 1.20: the interface's ifindex is set before its addresses are looked up.
    let mut e = Engine::from_snapshot(&snap, v2_on_1_20("172.22.49.119")).0;
    let local = |e: &Engine| {
        e.entries()
            .ipv4
            .into_iter()
            .filter(|x| x.gateway_ip == "172.22.49.119".parse::<Ipv4Addr>().unwrap())
            .collect::<Vec<_>>()
    };
    assert!(
        local(&e).iter().all(|x| x.egress_ip.is_unspecified()),
        "no eth1 yet"
    );
    let eth1 = crate::snapshot::parse_interfaces("[{name: eth0, index: 2, addresses: [172.22.49.119/20], defaultRoute: true}, {name: eth1, index: 3, addresses: [43.0.0.7/24]}]").unwrap();
    e.set_devices(eth1.clone());
    // The policy also has ::/0, and eth1 has no IPv6 address: derivation fails, ifindex kept.
    assert!(
        local(&e)
            .iter()
            .all(|x| x.egress_ip.is_unspecified() && x.egress_ifindex == 3)
    );
    let mut dual = eth1;
    dual[1].addresses.push(crate::device::DeviceAddress {
        addr: "2402::7".parse().unwrap(),
        prefix_len: 64,
    });
    e.set_devices(dual);
    assert!(
        local(&e)
            .iter()
            .all(|x| x.egress_ip == "43.0.0.7".parse::<IpAddr>().unwrap() && x.egress_ifindex == 3)
    );
}

#[test]
fn namespace_relabels_reselect_their_endpoints() {
    let mut snap = seed();
    snap.policies[0].as_mut().unwrap().selectors[0] = crate::policy::SelectorItem {
        pod_selector: None,
        namespace_selector: Some(crate::policy::LabelSelector {
            match_labels: vec![("team".into(), "web".into())],
            match_expressions: vec![],
        }),
        node_selector: None,
    };
    let mut e = Engine::from_snapshot(&snap, v2("172.22.49.119")).0;
    assert!(e.entries().is_empty());
    e.upsert_namespace("default", [("team".to_owned(), "web".to_owned())].into())
        .unwrap();
    assert_eq!(e.entries().ipv4.len(), 10);
    // A later endpoint carries its own namespaceLabels.
    e.upsert_endpoint(new_pod("late", "172.22.48.77")).unwrap();
    assert_eq!(e.entries().ipv4.len(), 10);
    e.upsert_namespace("other", BTreeMap::new()).unwrap();
    assert_eq!(e.entries().ipv4.len(), 10);
}

#[test]
fn same_name_new_uid_and_ip_reuse() {
    let mut e = programmed_engine();
    // Replace a pod: the new one (new uid) is added before the old one is deleted, same IP.
    let old = seed().endpoints[0].clone();
    let mut replacement = old.clone();
    replacement.uid = "replacement-uid".into();
    e.upsert_endpoint(replacement.clone()).unwrap();
    e.delete_endpoint(&old.uid);
    let mut fresh = Snapshot {
        endpoints: seed().endpoints,
        ..seed()
    };
    fresh.endpoints[0] = replacement;
    assert_eq!(
        e.entries(),
        Engine::from_snapshot(&fresh, v2("172.22.49.119"))
            .0
            .entries()
    );
}

#[test]
fn engine_lookup_equals_the_lookup_table() {
    for (name, snap) in examples() {
        let local = snap.local_node.clone().unwrap();
        let e = Engine::from_snapshot(&snap, v2(local.clone())).0;
        let table = LookupTable::new(&e.entries(), e.local_ipv4());
        for entry in e.entries().iter() {
            for dst in [
                entry.destination.addr,
                "8.8.8.8".parse().unwrap(),
                "2001:db8::1".parse().unwrap(),
                "172.22.1.1".parse().unwrap(),
            ] {
                assert_eq!(
                    e.lookup(entry.source, dst),
                    table.lookup(entry.source, dst),
                    "{name} {} {dst}",
                    entry.source
                );
                // The IPv4 forms answer as the lookup table.
                if let (IpAddr::V4(s), IpAddr::V4(d)) = (entry.source, dst) {
                    let want = VerdictRecord::from(table.lookup(entry.source, dst));
                    assert_eq!(e.lookup_record_v4(s, d), want, "{name} {s} {d}");
                    let mut many = [VerdictRecord::NO_ENTRY; 2];
                    e.lookup_many_records_v4(&[(s, d), (d, s)], &mut many);
                    let back = VerdictRecord::from(table.lookup(dst, entry.source));
                    assert_eq!(many, [want, back]);
                }
            }
        }
    }
}

#[test]
fn legacy_layout_plans_carry_8_byte_values() {
    let e = Engine::from_snapshot(
        &seed(),
        EngineConfig {
            layout: Layout::V4Legacy,
            ..v2("172.22.49.119")
        },
    )
    .0;
    let plan = e.take_plan().unwrap();
    assert!(
        plan.ops()
            .iter()
            .all(|op| op.value().len() == 8 && op.key().len() == 12 && op.map() == MapId::V4Legacy)
    );
}

#[test]
fn stats_count_against_capacity() {
    let e = engine();
    let s = e.stats();
    assert_eq!(
        (s.desired_v4, s.desired_v6, s.programmed_v4, s.max_entries),
        (10, 0, 0, 16384)
    );
    assert_eq!(
        (s.policies, s.endpoints, s.nodes, s.pending_sources),
        (1, 10, 5, 10)
    );
    assert_eq!(s.stored_lists, 3, "empty, and one list per gateway");
}

#[test]
fn the_local_ipv4_decides_masquerade_or_forward_in_engine_lookups() {
    let mut e = engine();
    let src: IpAddr = "172.22.48.4".parse().unwrap();
    let dst: IpAddr = "8.8.8.8".parse().unwrap();
    assert_eq!(
        e.lookup(src, dst),
        Verdict::Masquerade {
            egress_ip: "172.22.49.119".parse().unwrap(),
            ifindex: 0
        }
    );
    // The local node changes its IPv4: entries follow (and the IP sort order of the
    // gateway entries changes, as in Cilium), lookups judge by the new address.
    let mut local = seed().nodes["172.22.49.119"].clone();
    local.ipv4 = Some("172.22.49.200".parse().unwrap());
    e.upsert_node(local);
    assert_eq!(e.local_ipv4(), Some("172.22.49.200".parse().unwrap()));
    let new_local: Ipv4Addr = "172.22.49.200".parse().unwrap();
    let entries = e.entries().ipv4;
    assert!(entries.iter().any(|x| x.gateway_ip == new_local));
    for x in &entries {
        assert_eq!(
            e.lookup(x.source, dst),
            Verdict::of_entry(x, Some(new_local))
        );
        if x.gateway_ip == new_local {
            assert!(matches!(
                e.lookup(x.source, dst),
                Verdict::Masquerade { .. }
            ));
        }
    }
    // The local node disappears: its entries now point at nobody it can SNAT for (1.18
    // keeps its entry as gateway 0.0.0.0: the rest point at .147 or nowhere).
    e.delete_node("172.22.49.119");
    assert_eq!(e.local_ipv4(), None);
    assert!(e.entries().ipv4.iter().all(|x| {
        x.gateway_ip == "172.22.49.147".parse::<Ipv4Addr>().unwrap()
            || x.gateway_ip.is_unspecified()
    }));
    // 172.22.48.4 hashed to .119's entry, now gateway 0.0.0.0: dropped (1.18).
    assert_eq!(
        e.lookup(src, dst),
        Verdict::Drop(crate::lookup::DropReason::NoGateway)
    );
}

#[test]
fn a_restart_nets_on_the_bytes_the_layout_stores() {
    let snap = examples()
        .into_iter()
        .find(|(name, _)| name.ends_with("dual-stack-excluded.yaml"))
        .unwrap()
        .1;
    let node = "172.22.49.119";
    // What a dump of the live maps reads back: the legacy IPv4 value stores no ifindex.
    let dumped = |e: &Engine| -> Vec<Entry> {
        e.entries()
            .iter()
            .map(|x| Entry {
                egress_ifindex: if x.source.is_ipv4() {
                    0
                } else {
                    x.egress_ifindex
                },
                ..*x
            })
            .collect()
    };
    // 1.20's rules derive the ifindex; the legacy map cannot store it.
    let legacy = v2_on_1_20(node).with_layout(Layout::V4Legacy);
    let mut e = Engine::from_snapshot(&snap, legacy.clone()).0;
    let with_ifindex = e
        .entries()
        .iter()
        .filter(|x| x.source.is_ipv4() && x.egress_ifindex != 0)
        .count();
    assert!(with_ifindex > 0, "the example must exercise the ifindex");
    let live = dumped(&e);
    e.adopt(live.clone()).unwrap();
    assert!(e.take_plan().unwrap().is_empty());
    assert_eq!(e.stats().pending_sources, 0);
    // Acknowledged plans settle too, and the lookups keep the computed ifindex.
    let mut fresh = Engine::from_snapshot(&snap, legacy).0;
    let plan = fresh.take_plan().unwrap();
    fresh.ack(&plan, plan.len()).unwrap();
    fresh.adopt(live.clone()).unwrap();
    assert!(fresh.take_plan().unwrap().is_empty());
    assert_eq!(fresh.entries(), e.entries());
    // v4_v2 stores the ifindex: the same dump is stale there and gets exactly those rewrites.
    let mut v2 = Engine::from_snapshot(&snap, v2_on_1_20(node)).0;
    v2.adopt(live).unwrap();
    let plan = v2.take_plan().unwrap();
    assert_eq!(
        (plan.upserts().len(), plan.deletes().len()),
        (with_ifindex, 0)
    );
    assert!(
        plan.ops()
            .iter()
            .all(|op| op.entry().unwrap().source.is_ipv4()
                && op.entry().unwrap().egress_ifindex != 0)
    );
}

/// A dual plan written only in part (the legacy map's operations, not `_v4_v2`'s) leaves the
/// two maps disagreeing; whatever is desired next — even the state before the plan — the
/// next plans bring both maps to it. Checked against a model of the two kernel maps.
#[test]
fn a_half_written_dual_plan_is_repaired_in_both_maps() {
    type Model = BTreeMap<(IpAddr, (u8, u128)), Slot>;
    let write = |maps: &mut [Model; 2], plan: &Plan, upto: usize| {
        for op in &plan.ops()[..upto] {
            let i = match op.map() {
                MapId::V4Legacy => 0,
                MapId::V4 => 1,
                _ => continue,
            };
            let slot = Slot::from(op.entry().unwrap());
            let key = (op.entry().unwrap().source, slot.network());
            match op.action() {
                Action::Upsert => {
                    maps[i].insert(key, slot);
                }
                Action::Delete => {
                    maps[i].remove(&key);
                }
            }
        }
    };
    let want = |e: &Engine, legacy: bool| -> Model {
        e.entries()
            .ipv4
            .iter()
            .map(|x| {
                let mut slot = Slot::from(x);
                if legacy {
                    slot.egress_ifindex = 0;
                }
                ((x.source, slot.network()), slot)
            })
            .collect()
    };
    let config = EngineConfig::new("172.22.49.119").with_cilium_version(CiliumVersion::V1_20);
    let mut e = Engine::from_snapshot(&seed(), config).0;
    let mut maps: [Model; 2] = Default::default();
    let plan = e.take_plan().unwrap();
    write(&mut maps, &plan, plan.len());
    e.ack(&plan, plan.len()).unwrap();
    let before = e.entries();
    // A gateway goes: a plan that changes the keys of its endpoints, written up to the end of
    // the legacy map's operations only.
    let gone = e.nodes()["172.22.49.147"].clone();
    e.delete_node("172.22.49.147");
    let plan = e.take_plan().unwrap();
    let cut = plan
        .ops()
        .iter()
        .position(|op| op.map() != MapId::V4Legacy)
        .unwrap();
    assert!(cut > 0, "the plan changes the legacy map");
    write(&mut maps, &plan, cut);
    e.ack(&plan, cut).unwrap();
    // The gateway comes back: desired is what it was before the half-written plan.
    e.upsert_node(gone);
    assert_eq!(e.entries(), before);
    let repair = e.take_plan().unwrap();
    assert!(!repair.is_empty(), "the legacy map holds what nobody wants");
    write(&mut maps, &repair, repair.len());
    e.ack(&repair, repair.len()).unwrap();
    assert_eq!(maps[0], want(&e, true), "legacy map");
    assert_eq!(maps[1], want(&e, false), "_v4_v2 map");
    assert!(e.take_plan().unwrap().is_empty());
}

/// SEMANTICS B.7: a load keeps what it reported — a dump's skipped endpoint, a snapshot's
/// invalid policy with every error and its valid policies' warnings — and `apply_text` adds
/// its own; the document has exactly the conformance surface's keys.
#[test]
fn every_load_keeps_its_diagnostics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/snapshots");
    let dump = std::fs::read_to_string(dir.join("dumps/tke-dump.yaml")).unwrap();
    let loaded = Engine::load_snapshot(&dump, Some("172.22.49.119"), "node", v2("")).unwrap();
    let d = loaded.engine.diagnostics();
    assert_eq!(
        d.skipped,
        [
            "objects[16] (default/nginx-7f6d8b9c5d-q4zkm): no status.identity labels: endpoint skipped"
        ]
    );
    assert!(d.invalid_policies.is_empty());
    assert!(
        d.warnings[0].starts_with("egress-test: spec.egressGateway: ignored:"),
        "{:?}",
        d.warnings
    );

    let mut e = Engine::new(v2("n"));
    assert!(e.diagnostics().is_empty());
    let broken = "{apiVersion: cilium.io/v2, kind: CiliumEgressGatewayPolicy, metadata: {name: broken}, spec: {selectors: [], destinationCIDRs: []}}";
    e.apply_text(broken).unwrap();
    let d = e.diagnostics();
    assert_eq!(d.invalid_policies.len(), 1);
    assert_eq!(d.invalid_policies[0].policy, "broken");
    assert_eq!(
        d.invalid_policies[0].errors[0].to_string(),
        "spec.egressGateway: Required value"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&crate::render::engine_diagnostics_json(&e)).unwrap();
    let keys: Vec<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["invalidPolicies", "warnings", "skipped", "conflicts"]
    );
    assert_eq!(
        doc["invalidPolicies"][0]["errors"][0]["path"],
        "spec.egressGateway"
    );
    // What is wrong now, bounded by the policies: the same invalid policy applied again is
    // said once; fixed (or deleted), it is no longer said.
    e.apply_text(broken).unwrap();
    e.apply_text(broken).unwrap();
    assert_eq!(e.diagnostics().invalid_policies.len(), 1);
    let fixed = "{apiVersion: cilium.io/v2, kind: CiliumEgressGatewayPolicy, metadata: {name: broken}, spec: {selectors: [{podSelector: {}}], destinationCIDRs: [0.0.0.0/0], egressGateway: {nodeSelector: {}}}}";
    assert_eq!(e.apply_text(fixed).unwrap().policies, 1);
    assert!(e.diagnostics().invalid_policies.is_empty());
    e.apply_text(broken).unwrap();
    assert!(e.delete_policy("broken"));
    assert!(e.diagnostics().invalid_policies.is_empty());
}

/// A snapshot read by 1.18's rules loaded into a 1.20 engine: a policy with 65 gateways (no
/// limit before 1.20) is refused by the engine and reported among its invalid policies.
#[test]
fn a_policy_the_engines_version_refuses_is_in_its_diagnostics() {
    let items: String = (0..65)
        .map(|i| format!("    - nodeSelector: {{matchLabels: {{n: \"{i}\"}}}}\n"))
        .collect();
    let text = format!(
        "localNode: a\nnodes: [{{name: a, ipv4: 10.0.0.1}}]\npolicies:\n- metadata: {{name: many}}\n  spec:\n    selectors: [{{podSelector: {{}}}}]\n    destinationCIDRs: [0.0.0.0/0]\n    egressGateway: {{nodeSelector: {{}}}}\n    egressGateways:\n{items}"
    );
    let snap = Snapshot::parse(&text).unwrap();
    assert!(snap.policies[0].is_ok(), "1.18 sets no limit");
    let (e, rejected) =
        Engine::from_snapshot(&snap, v2("a").with_cilium_version(CiliumVersion::V1_20));
    assert_eq!(rejected.len(), 1);
    let d = e.diagnostics();
    assert_eq!(d.invalid_policies.len(), 1);
    assert_eq!(d.invalid_policies[0].policy, "many");
    assert_eq!(
        d.invalid_policies[0].errors[0].to_string(),
        "spec.egressGateways: Too many: 65: must have at most 64 items"
    );
}

/// One configuration rule for every binding: a local node, capacities of at least one entry
/// (unset: 16384), a cluster name that is not empty when given.
#[test]
fn a_configuration_is_validated_once_in_the_core() {
    let refused = |config: EngineConfig| Engine::try_new(config).err().unwrap().to_string();
    assert_eq!(
        refused(EngineConfig::new("")),
        "local_node: Required value: the node whose maps are computed"
    );
    assert_eq!(
        refused(EngineConfig {
            max_entries: 0,
            ..EngineConfig::new("n")
        }),
        "max_entries: Invalid value: 0: a map holds at least 1 entry (leave it unset for the default, 16384)"
    );
    assert!(
        refused(EngineConfig {
            max_entries_v6: Some(0),
            ..EngineConfig::new("n")
        })
        .starts_with("max_entries_v6: Invalid value: 0")
    );
    assert_eq!(
        refused(EngineConfig {
            cluster: Some(String::new()),
            ..EngineConfig::new("n")
        }),
        "cluster: Invalid value: \"\": must not be empty (leave it unset for \"default\")"
    );
    assert_eq!(crate::maps::capacity("m", None), Ok(16384));
    assert_eq!(crate::maps::capacity("m", Some(1)), Ok(1));
    let engine = Engine::try_new(EngineConfig::new("n")).unwrap();
    assert_eq!(engine.stats().max_entries, 16384);
    // A snapshot load holds the configuration to the same rule.
    let text = "localNode: a\nnodes: [{name: a}]\n";
    let zero = EngineConfig {
        max_entries: 0,
        ..EngineConfig::new("")
    };
    let err = Engine::load_snapshot(text, None, "local_node", zero)
        .err()
        .unwrap();
    assert_eq!(err.path(), Some("max_entries"));
}

/// Per endpoint and policy, where traffic leaves from this node's view; the egress IP only
/// where this node is the gateway (it is derived on the gateway).
#[test]
fn pod_routes_name_each_endpoints_gateway() {
    let e = engine();
    let routes = e.pod_routes();
    assert_eq!(routes.len(), 10);
    for r in &routes {
        let gateway = r.gateway_node.as_deref().unwrap();
        assert!(
            ["172.22.49.119", "172.22.49.147"].contains(&gateway),
            "{r:?}"
        );
        assert_eq!(r.gateway_ip.unwrap().to_string(), gateway);
        let local = gateway == "172.22.49.119";
        assert_eq!(r.egress_ipv4.is_some(), local, "{r:?}");
        assert_eq!(r.namespace.as_deref(), Some("default"));
    }
    let by_gateway = |g: &str| {
        routes
            .iter()
            .filter(|r| r.gateway_node.as_deref() == Some(g))
            .count()
    };
    assert_eq!(
        (by_gateway("172.22.49.119"), by_gateway("172.22.49.147")),
        (5, 5)
    );
    let mut sorted = routes.clone();
    sorted.sort_by(|a, b| (&a.namespace, &a.uid).cmp(&(&b.namespace, &b.uid)));
    assert_eq!(sorted, routes);
}

/// The seed's gateway node in the compact layout.
fn compact_config() -> EngineConfig {
    EngineConfig::new("172.22.49.119").with_layout(Layout::Compact)
}

/// [`compact_config`]'s engine of the seed, nothing programmed.
fn compact_engine() -> Engine {
    Engine::from_snapshot(&seed(), compact_config()).0
}

/// The seed's gateway node in the compact layout, its first plan written.
fn programmed_compact_engine() -> Engine {
    let mut e = compact_engine();
    let plan = e.take_plan().unwrap();
    e.ack(&plan, plan.len()).unwrap();
    assert!(e.take_plan().unwrap().is_empty());
    e
}

/// Issue 27: a new endpoint selected as others are costs one write (its set id); deleting it
/// one delete; the last endpoint of a set takes the set's rules with it, after the endpoint.
#[test]
fn a_new_endpoint_of_an_existing_set_is_one_write() {
    let mut e = programmed_compact_engine();
    let sets = e.compact_set_count();
    assert!(sets >= 1);
    e.upsert_endpoint(new_pod("new-1", "172.22.48.99")).unwrap();
    let plan = e.take_plan().unwrap();
    assert_eq!(plan.len(), 1, "{:?}", plan.ops());
    let op = &plan.ops()[0];
    assert_eq!(op.map(), MapId::CompactEndpointsV4);
    // The block 172.22.48.96/29, its index 3 the new pod's set.
    assert_eq!(op.key(), [172, 22, 48, 96]);
    let Some(&crate::compact::CompactElement::Block { sets: block, .. }) = op.compact_element()
    else {
        panic!("{op:?}");
    };
    let set = block[3];
    assert!(set != 0);
    assert_eq!(op.value()[12..16], set.to_ne_bytes());
    assert_eq!(op.value().len(), 32);
    e.ack(&plan, 1).unwrap();
    assert_eq!(e.compact_set_count(), sets);
    assert!(e.delete_endpoint("new-1"));
    let plan = e.take_plan().unwrap();
    assert_eq!(plan.len(), 1);
    assert_eq!(plan.deletes()[0].map(), MapId::CompactEndpointsV4);
    e.ack(&plan, 1).unwrap();
    // Every policy gone: each endpoint's delete, then every set's rules.
    for policy in seed().policies.iter().flatten() {
        assert!(e.delete_policy(&policy.name));
    }
    let plan = e.take_plan().unwrap();
    let deletes = plan.deletes();
    let first_rule = deletes
        .iter()
        .position(|op| op.map() == MapId::CompactRulesV4)
        .unwrap();
    assert!(
        deletes[..first_rule]
            .iter()
            .all(|op| op.map() == MapId::CompactEndpointsV4)
    );
    assert!(
        deletes[first_rule..]
            .iter()
            .all(|op| op.map() == MapId::CompactRulesV4)
    );
    e.ack(&plan, plan.len()).unwrap();
    assert_eq!(e.compact_set_count(), 0);
    assert!(e.take_plan().unwrap().is_empty());
}

/// A compact plan whose peak does not fit a map is refused, naming the map; nothing is
/// taken, and a larger capacity takes it.
#[test]
fn a_compact_plan_past_a_map_is_refused_naming_it() {
    let config = EngineConfig {
        max_entries: 2,
        ..compact_config()
    };
    let e = Engine::from_snapshot(&seed(), config).0;
    let Err(PlanError::Capacity(err)) = e.take_plan() else {
        panic!("the seed's rules do not fit 2 entries");
    };
    assert!(err.map.is_compact() && err.peak > 2, "{err}");
    assert_eq!(err.max_entries, 2);
}

/// Explain names where the compact maps hold the source: its block, index and set (the
/// set the kernel holds, as acknowledged); Cilium's layouts say nothing of it.
#[test]
fn explain_names_the_compact_block_and_set() {
    let e = programmed_compact_engine();
    let src: IpAddr = "172.22.48.4".parse().unwrap();
    let dst: IpAddr = "198.51.100.80".parse().unwrap();
    let x = e.explain(src, dst);
    let place = x.compact.expect("the seed's pod is in the compact maps");
    assert_eq!(
        (place.block, place.index),
        ("172.22.48.0".parse::<IpAddr>().unwrap(), 4)
    );
    assert!(place.set >= 1 && place.set as usize <= e.compact_set_count());
    let text = x.to_string();
    assert!(
        text.contains(&format!(
            "compact maps: endpoint block 172.22.48.0 index 4 -> set {}",
            place.set
        )),
        "{text}"
    );
    let json = crate::render::explanation_json(&x);
    assert_eq!(json["compact"]["set"], place.set);
    // Cilium's layout: no such line, no such key.
    let cilium = engine().explain(src, dst);
    assert_eq!(cilium.compact, None);
    assert!(
        crate::render::explanation_json(&cilium)
            .get("compact")
            .is_none()
    );
    // Before the first plan is acknowledged the kernel holds nothing.
    assert_eq!(compact_engine().explain(src, dst).compact, None);
}

/// The compact layout refuses entries as a baseline (its maps' set ids are not in them),
/// adopting nothing; empty maps are taken.
#[test]
fn the_compact_layout_refuses_entries_as_a_baseline() {
    let mut e = programmed_compact_engine();
    let held = e.entries();
    e.upsert_endpoint(new_pod("new-1", "172.22.48.99")).unwrap();
    let err = e.adopt(held.iter().copied()).unwrap_err();
    assert_eq!(err.entries, held.len());
    let field = err.to_field_error();
    assert_eq!(field.path, "entries");
    assert!(field.to_string().contains("adopt_compact"), "{field}");
    // Nothing adopted: the plan is still the new pod's one block.
    assert_eq!(e.take_plan().unwrap().len(), 1);
    // Empty maps: everything is written again.
    e.adopt(std::iter::empty()).unwrap();
    assert!(e.take_plan().unwrap().len() > 1);
}

/// A plan taken, maybe written, never acknowledged: the next plan names none of its set
/// ids, so that rules it left in the kernel under an id cannot decide another set.
#[test]
fn compact_set_ids_are_not_reused_after_an_unacknowledged_plan() {
    use crate::compact::CompactElement;
    let mut e = compact_engine();
    let ids = |plan: &Plan| -> std::collections::BTreeSet<u32> {
        plan.ops()
            .iter()
            .filter_map(|op| match op.compact_element() {
                Some(CompactElement::Rule { set, .. }) => Some(*set),
                _ => None,
            })
            .collect()
    };
    let first = ids(&e.take_plan().unwrap());
    assert!(!first.is_empty());
    // Not acknowledged (the kernel may hold its rules, the book does not); a new pod, and
    // the next plan writes every set again — under ids the first plan did not name.
    e.upsert_endpoint(new_pod("new-1", "172.22.48.99")).unwrap();
    let second = ids(&e.take_plan().unwrap());
    let last = *first.iter().max().unwrap();
    assert!(
        second.iter().all(|&id| id > last),
        "{first:?} then {second:?}"
    );
    // This one acknowledged: nothing left.
    let plan = e.take_plan().unwrap();
    e.ack(&plan, plan.len()).unwrap();
    assert!(e.take_plan().unwrap().is_empty());
}

/// An adopted endpoint whose set has no rule is removed by the next plan (no source stays
/// pending for it), and its set's id is freed.
#[test]
fn an_adopted_endpoint_of_a_set_without_rules_is_removed() {
    use crate::compact::{BLOCK, CompactElement};
    let mut e = programmed_compact_engine();
    let sets = e.compact_set_count();
    let mut block = [0; BLOCK];
    block[1] = 999;
    let orphan = CompactElement::Block {
        base: "10.99.0.0".parse().unwrap(),
        sets: block,
    };
    // The maps as programmed, plus the orphan block.
    let plan = compact_engine().take_plan().unwrap();
    let mut elements: Vec<CompactElement> = plan
        .ops()
        .iter()
        .filter_map(|op| op.compact_element().copied())
        .collect();
    elements.push(orphan);
    e.adopt_compact(elements);
    assert_eq!(e.compact_set_count(), sets + 1);
    let plan = e.take_plan().unwrap();
    assert_eq!(plan.len(), 1, "{:?}", plan.ops());
    assert_eq!(plan.ops()[0].action(), Action::Delete);
    assert_eq!(plan.ops()[0].compact_element(), Some(&orphan));
    e.ack(&plan, 1).unwrap();
    assert_eq!(e.compact_set_count(), sets);
    assert!(e.take_plan().unwrap().is_empty());
}

/// A policy edit that gives every set new rules, on maps too tight to hold the old and the
/// new sets at once though the end fits: the plans cover a set's endpoints at a time (each
/// fitting, the old set's rules deleted at its end) until the maps hold the new state.
#[test]
fn a_compact_change_too_big_for_the_maps_at_once_is_written_in_steps() {
    use crate::compact::CompactMaps;
    let edit = |e: &mut Engine| {
        let mut policy = seed().policies[0].clone().unwrap();
        policy
            .destination_cidrs
            .push(crate::netip::parse_prefix("203.0.113.0/24").unwrap());
        e.upsert_policy(policy).unwrap();
    };
    // The sizes, from an engine without limits.
    let mut dry = compact_engine();
    let old = CompactMaps::from_entries(&dry.entries());
    edit(&mut dry);
    let new = CompactMaps::from_entries(&dry.entries());
    let largest = (1..=new.sets() as u32)
        .map(|s| new.set_rules(s).len())
        .max()
        .unwrap();
    assert!(new.sets() >= 2);
    let max = old.rules.len() + largest;
    assert!(
        max < old.rules.len() + new.rules.len(),
        "one plan would fit"
    );
    assert!(new.rules.len() <= max && new.blocks().len() <= max);

    let mut e = Engine::from_snapshot(
        &seed(),
        EngineConfig {
            max_entries: max as u32,
            ..compact_config()
        },
    )
    .0;
    let mut held: std::collections::HashMap<(MapId, Vec<u8>), crate::compact::CompactElement> =
        Default::default();
    let mut write = |plan: &Plan| {
        for op in plan.ops() {
            let key = (op.map(), op.key().to_vec());
            match op.action() {
                Action::Upsert => {
                    held.insert(key, *op.compact_element().unwrap());
                }
                Action::Delete => {
                    held.remove(&key);
                }
            }
            let rules = held
                .keys()
                .filter(|(m, _)| *m == MapId::CompactRulesV4)
                .count();
            assert!(rules <= max, "{rules} rules > {max}");
        }
        held.values().copied().collect::<Vec<_>>()
    };
    let plan = e.take_plan().unwrap();
    write(&plan);
    e.ack(&plan, plan.len()).unwrap();
    edit(&mut e);
    let mut plans = 0;
    loop {
        let plan = e.take_plan().unwrap();
        if plan.is_empty() {
            break;
        }
        plans += 1;
        assert!(plans < 20);
        write(&plan);
        e.ack(&plan, plan.len()).unwrap();
    }
    assert!(plans >= 2, "{plans} plan(s)");
    assert_eq!(
        crate::compact::entries_of(write(&Plan::default())),
        e.entries()
    );
}
