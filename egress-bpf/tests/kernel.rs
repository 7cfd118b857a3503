//! Real kernel tests: maps created in a private bpffs, plans written, maps read back, and the
//! datapath program's verdicts compared with `Engine::lookup`. Without BPF they skip with
//! one line; `EGRESS_REQUIRE_BPF=1` (CI) turns a skip into a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use egress_bpf::bpffs::bpffs_or_skip;
#[cfg(feature = "testkit")]
use egress_bpf::datapath::Datapath;
use egress_bpf::{EgressMaps, Error};
use egress_core::cluster::{Endpoint, Node};
use egress_core::compact::CompactElement;
use egress_core::device::{Device, DeviceAddress, Families};
use egress_core::engine::{Action, Engine, EngineConfig, Plan, PlanOp};
use egress_core::entries::{Entry, MapEntries};
use egress_core::labels::Labels;
#[cfg(feature = "testkit")]
use egress_core::lookup::Verdict;
use egress_core::maps::{Layout, MAP_V6, MapId, MapKeyV4, MapKeyV6, MapValueV4, MapValueV6};
use egress_core::netip::parse_prefix;
use egress_core::policy::{GatewaySpec, LabelSelector, Policy, SelectorItem};
use egress_core::snapshot::Snapshot;
use egress_core::version::CiliumVersion;

fn examples() -> Vec<(String, Snapshot)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/snapshots");
    let mut out: Vec<(String, Snapshot)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("yaml"))
        .map(|p| {
            (
                p.display().to_string(),
                Snapshot::parse(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 7);
    out
}

/// Every entry's key identity and exact bytes, in a comparable form.
fn bytes(maps: &MapEntries) -> BTreeMap<Vec<u8>, Vec<u8>> {
    maps.iter()
        .map(|e| {
            let id = e.identity();
            let key = [
                vec![u8::from(id.ipv6), id.len],
                id.source.to_be_bytes().to_vec(),
                id.network.to_be_bytes().to_vec(),
            ]
            .concat();
            let mut raw = Vec::new();
            if let Some((k, v)) = e.to_map_v4() {
                let (mut kb, mut vb) = ([0u8; MapKeyV4::SIZE], [0u8; MapValueV4::SIZE]);
                k.encode(&mut kb);
                v.encode(&mut vb);
                raw.extend(kb);
                raw.extend(vb);
            } else if let Some((k, v)) = e.to_map_v6() {
                let (mut kb, mut vb) = ([0u8; MapKeyV6::SIZE], [0u8; MapValueV6::SIZE]);
                k.encode(&mut kb);
                v.encode(&mut vb);
                raw.extend(kb);
                raw.extend(vb);
            }
            (key, raw)
        })
        .collect()
}

#[test]
fn create_open_and_mismatch() {
    let Some(fs) = bpffs_or_skip("create_open_and_mismatch") else {
        return;
    };
    let dir = fs.path().join("tc/globals");
    let maps = EgressMaps::open_or_create(&dir, Layout::V4V2, Some(1024)).unwrap();
    assert_eq!(maps.max_entries(), 1024);
    assert_eq!(maps.ipv4().name(), "cilium_egress_gw_policy_v4_v2");
    assert!(
        dir.join("cilium_egress_gw_policy_v4_v2").exists()
            && dir.join("cilium_egress_gw_policy_v6").exists()
    );
    // Reopened: any max_entries accepted when not asked for, checked when asked for.
    assert_eq!(
        EgressMaps::open(&dir, Layout::V4V2, false)
            .unwrap()
            .max_entries(),
        1024
    );
    match EgressMaps::open_or_create(&dir, Layout::V4V2, Some(2048)) {
        Err(Error::Mismatch {
            field: "max_entries",
            expected: 2048,
            found: 1024,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // The legacy map does not exist yet: open() refuses, naming the path.
    let err = EgressMaps::open(&dir, Layout::V4Legacy, false).unwrap_err();
    assert!(
        err.to_string()
            .contains("cilium_egress_gw_policy_v4: ENOENT"),
        "{err}"
    );
    // A legacy-shaped map where the v4_v2 one should be: value size mismatch.
    let odd = fs.path().join("odd");
    EgressMaps::open_or_create(&odd, Layout::V4Legacy, None).unwrap();
    std::fs::rename(
        odd.join("cilium_egress_gw_policy_v4"),
        odd.join("cilium_egress_gw_policy_v4_v2"),
    )
    .unwrap();
    match EgressMaps::open(&odd, Layout::V4V2, false) {
        Err(Error::Mismatch {
            field: "value size",
            expected,
            found,
            ..
        }) if expected == Layout::V4V2.ipv4_value_size() as u64
            && found == Layout::V4Legacy.ipv4_value_size() as u64 => {}
        other => panic!("{other:?}"),
    }
    // Not a bpffs.
    let tmp = std::env::temp_dir().join(format!("egress-not-bpffs-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let err = EgressMaps::open_or_create(&tmp, Layout::V4V2, None).unwrap_err();
    assert!(matches!(err, Error::NotBpffs { .. }), "{err}");
    // A missing directory whose nearest existing ancestor is not a bpffs: refused, and no
    // directory made there.
    let missing = tmp.join("no/such/dir");
    let err = EgressMaps::open_or_create(&missing, Layout::V4V2, None).unwrap_err();
    assert!(matches!(err, Error::NotBpffs { .. }), "{err}");
    assert!(!tmp.join("no").exists());
    std::fs::remove_dir_all(&tmp).unwrap();
}

fn program(engine: &mut Engine, maps: &EgressMaps) {
    let plan = maps.program(engine).unwrap();
    assert!(
        engine.take_plan().unwrap().is_empty(),
        "{} ops left after programming",
        plan.len()
    );
}

/// Every example on every Cilium version, in that version's own maps (1.18 and 1.19: the
/// legacy IPv4 map and the IPv6 map; 1.20: the legacy map, `_v4_v2` and the IPv6 map), and
/// 1.20's rules written to the legacy map alone (whose value drops the ifindex), and both
/// versions' rules in the compact layout: apply creates exactly those pins, dump reads back
/// what the engine computed, and a restarted engine adopting the live maps writes nothing.
#[test]
fn apply_dump_round_trip_and_adopt_on_every_example() {
    let Some(fs) = bpffs_or_skip("apply_dump_round_trip_and_adopt_on_every_example") else {
        return;
    };
    let mut legacy_ifindexes_dropped = 0;
    let cases = CiliumVersion::ALL
        .map(|v| (v, v.layout()))
        .into_iter()
        .chain([
            (CiliumVersion::V1_20, Layout::V4Legacy),
            (CiliumVersion::V1_20, Layout::V4V2),
            (CiliumVersion::V1_18, Layout::Compact),
            (CiliumVersion::V1_20, Layout::Compact),
        ]);
    for (version, layout) in cases {
        for (i, (name, snap)) in examples().iter().enumerate() {
            let case = format!("{name} {version} {layout:?}");
            let dir = fs.path().join(format!("{i}-{version:?}-{layout:?}"));
            let maps = EgressMaps::open_or_create(&dir, layout, None).unwrap();
            let mut pins: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            pins.sort();
            let mut want_pins: Vec<&str> = layout.maps().iter().map(|m| m.name()).collect();
            want_pins.sort();
            assert_eq!(pins, want_pins, "{case}: the version's maps, no other");
            // Created with the version's flags: NO_PREALLOC, and RDONLY_PROG from 1.20.
            let want_flags = if layout == Layout::V4Legacy {
                libbpf_sys::BPF_F_NO_PREALLOC
            } else {
                libbpf_sys::BPF_F_NO_PREALLOC | libbpf_sys::BPF_F_RDONLY_PROG
            };
            for map in maps.ipv4_maps().iter().chain([maps.ipv6()]) {
                assert_eq!(map.flags(), want_flags, "{case}: {}", map.name());
            }
            let local = snap.local_node.clone().unwrap();
            let config = EngineConfig {
                max_entries: maps.max_entries(),
                ..EngineConfig::new(local.clone())
                    .with_cilium_version(version)
                    .with_layout(layout)
            };
            let mut engine = Engine::from_snapshot(snap, config.clone()).0;
            program(&mut engine, &maps);
            let dumped = maps.dump().unwrap();
            let mut want = engine.entries();
            if layout == Layout::V4Legacy {
                // The legacy value has no ifindex.
                want.ipv4.iter_mut().for_each(|e| e.egress_ifindex = 0);
            }
            assert_eq!(bytes(&dumped), bytes(&want), "{case}");
            assert_eq!(dumped, want, "{case}");
            if layout == Layout::V4Dual {
                // 1.20 writes the legacy map too, with the same keys.
                let legacy = EgressMaps::open(&dir, Layout::V4Legacy, true).unwrap();
                let mut no_ifindex = want.clone();
                no_ifindex
                    .ipv4
                    .iter_mut()
                    .for_each(|e| e.egress_ifindex = 0);
                assert_eq!(legacy.dump().unwrap(), no_ifindex, "{case}: legacy map");
            }
            // A restarted engine adopting the live maps writes nothing (the legacy dump's
            // IPv4 ifindexes read 0: that is what the value stores).
            // (The compact layout's elements are adopted with their set ids.)
            let mut restarted = Engine::from_snapshot(snap, config).0;
            let unreadable = maps.adopt_into(&mut restarted).unwrap();
            assert!(unreadable.is_empty());
            let plan = restarted.take_plan().unwrap();
            assert!(plan.is_empty(), "{case}: {:?}", plan.ops());
            assert_eq!(maps.program(&mut restarted).unwrap().len(), 0);
            assert_eq!(maps.dump().unwrap(), dumped, "{case}");
            if layout == Layout::V4Legacy {
                legacy_ifindexes_dropped += engine
                    .entries()
                    .ipv4
                    .iter()
                    .filter(|e| e.egress_ifindex != 0)
                    .count();
            }
        }
    }
    assert!(
        legacy_ifindexes_dropped > 0,
        "no example exercises the legacy value's missing ifindex"
    );
}

/// 1.20's two IPv4 maps are one baseline: a key the legacy map lacks, or holds with other
/// bytes, or holds alone, is written again (or deleted) in both; a plan cut between the
/// two maps' operations acknowledges nothing of the half-written entries.
#[test]
fn a_dual_layout_repairs_either_ipv4_map_and_acknowledges_whole_entries() {
    let Some(fs) = bpffs_or_skip("a_dual_layout_repairs_either_ipv4_map") else {
        return;
    };
    let (name, snap) = examples()
        .into_iter()
        .find(|(n, _)| n.ends_with("seed-gateway-group.yaml"))
        .unwrap();
    let dir = fs.path().join("dual");
    let maps = EgressMaps::open_or_create(&dir, Layout::V4Dual, None).unwrap();
    let local = snap.local_node.clone().unwrap();
    let config = EngineConfig::new(local).with_cilium_version(CiliumVersion::V1_20);
    let mut engine = Engine::from_snapshot(&snap, config.clone()).0;
    let plan = engine.take_plan().unwrap();
    let v4 = engine.entries().ipv4.len();
    assert!(v4 > 2, "{name}");
    // Each IPv4 entry goes to both maps, the legacy one first (Cilium's order).
    let maps_of: Vec<MapId> = plan.ops().iter().map(PlanOp::map).collect();
    assert_eq!(
        maps_of.iter().filter(|m| **m == MapId::V4Legacy).count(),
        maps_of.iter().filter(|m| **m == MapId::V4).count()
    );
    assert!(
        maps_of.iter().position(|m| *m == MapId::V4)
            > maps_of.iter().position(|m| *m == MapId::V4Legacy)
    );
    // Written up to the middle of the `_v4_v2` upserts: the entries whose v2 operation
    // was not written come back, for both maps.
    let cut = maps_of.iter().position(|m| *m == MapId::V4).unwrap() + 1;
    let written = maps.apply(&plan).unwrap();
    assert_eq!(written, plan.len());
    engine.ack(&plan, cut).unwrap();
    let again = engine.take_plan().unwrap();
    // Every entry but the first comes back in both maps (the IPv6 ones: their only op was
    // past the cut).
    let ipv6_ops = plan.len() - 2 * v4;
    assert_eq!(again.len(), 2 * (v4 - 1) + ipv6_ops, "{:?}", again.ops());
    engine.ack(&again, again.len()).unwrap();
    assert!(engine.take_plan().unwrap().is_empty());
    // A stale legacy key and one missing there: a restarted engine repairs both maps.
    let legacy_only = EgressMaps::open(&dir, Layout::V4Legacy, false).unwrap();
    let first = engine.entries().ipv4[0];
    let op = first_op(&plan, MapId::V4Legacy, first);
    legacy_only.ipv4().delete_raw(op.key()).unwrap();
    let mut restarted = Engine::from_snapshot(&snap, config).0;
    let (baseline, _) = maps.baseline().unwrap();
    restarted.adopt(baseline.iter().copied()).unwrap();
    let repair = maps.program(&mut restarted).unwrap();
    assert_eq!(
        repair.len(),
        2,
        "the missing legacy key written to both maps: {:?}",
        repair.ops()
    );
    assert_eq!(legacy_only.dump().unwrap().ipv4.len(), v4);
    let (baseline, _) = maps.baseline().unwrap();
    let mut settled = Engine::from_snapshot(
        &snap,
        EngineConfig::new(snap.local_node.clone().unwrap())
            .with_cilium_version(CiliumVersion::V1_20),
    )
    .0;
    settled.adopt(baseline.iter().copied()).unwrap();
    assert!(settled.take_plan().unwrap().is_empty());
}

fn first_op(plan: &Plan, map: MapId, entry: Entry) -> PlanOp {
    plan.ops()
        .iter()
        .find(|op| op.map() == map && *op.entry().unwrap() == entry)
        .cloned()
        .unwrap()
}

fn node(name: &str, labels: &[(&str, &str)], ipv4: &str) -> Node {
    let labels: Labels = labels.iter().copied().collect();
    let mut n = Node::new(name, labels, Some(ipv4.parse().unwrap()));
    n.ipv6 = Some(
        format!("fd00::{}", ipv4.rsplit('.').next().unwrap())
            .parse()
            .unwrap(),
    );
    n
}

fn selector(key: &str, value: &str) -> LabelSelector {
    LabelSelector {
        match_labels: vec![(key.into(), value.into())],
        match_expressions: vec![],
    }
}

fn policy(
    name: &str,
    app: &str,
    gateway: GatewaySpec,
    dests: &[&str],
    excluded: &[&str],
) -> Policy {
    Policy {
        name: name.into(),
        namespace: None,
        creation_timestamp: None,
        selectors: vec![SelectorItem {
            pod_selector: Some(selector("app", app)),
            ..SelectorItem::default()
        }],
        destination_cidrs: dests.iter().map(|c| parse_prefix(c).unwrap()).collect(),
        excluded_cidrs: excluded.iter().map(|c| parse_prefix(c).unwrap()).collect(),
        egress_gateway: gateway,
        egress_gateways: vec![],
    }
}

fn hostname(name: &str) -> GatewaySpec {
    GatewaySpec {
        node_selector: selector("kubernetes.io/hostname", name),
        ..GatewaySpec::default()
    }
}

/// A cluster with every kind of verdict: local gateways that SNAT (interface, egressIP),
/// one whose derivation fails (no egress IP), a remote gateway, a missing one, exclusions.
fn datapath_engine(endpoints: usize, max_entries: u32) -> Engine {
    datapath_engine_of(Layout::V4V2, endpoints, max_entries)
}

fn datapath_engine_of(layout: Layout, endpoints: usize, max_entries: u32) -> Engine {
    let mut e = Engine::new(EngineConfig {
        max_entries,
        ..EngineConfig::new("local").with_layout(layout)
    });
    e.set_devices(vec![
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
            alt_names: vec![],
            addresses: vec![
                DeviceAddress {
                    addr: "43.0.0.1".parse().unwrap(),
                    prefix_len: 24,
                },
                DeviceAddress {
                    addr: "2402::1".parse().unwrap(),
                    prefix_len: 64,
                },
            ],
            default_route: Families::empty(),
        },
        Device {
            name: "eth2".into(),
            index: 4,
            alt_names: vec![],
            addresses: vec![DeviceAddress {
                addr: "44.0.0.1".parse().unwrap(),
                prefix_len: 24,
            }],
            default_route: Families::empty(),
        },
    ]);
    e.upsert_node(node(
        "local",
        &[("kubernetes.io/hostname", "local")],
        "192.168.0.1",
    ));
    e.upsert_node(node(
        "remote",
        &[("kubernetes.io/hostname", "remote")],
        "192.168.0.2",
    ));
    let by_interface = GatewaySpec {
        interface: Some("eth1".into()),
        ..hostname("local")
    };
    let by_ip = GatewaySpec {
        egress_ip: Some("44.0.0.1".parse().unwrap()),
        ..hostname("local")
    };
    let failing = GatewaySpec {
        interface: Some("eth2".into()),
        ..hostname("local")
    };
    let all = ["0.0.0.0/0", "::/0"];
    e.upsert_policy(policy(
        "a-snat",
        "a",
        by_interface,
        &all,
        &["10.0.0.0/8", "2402::/16", "1.2.3.4/30"],
    ))
    .unwrap();
    e.upsert_policy(policy(
        "b-egress-ip",
        "b",
        by_ip,
        &["8.0.0.0/8", "64.0.0.0/2"],
        &["8.8.8.8/32"],
    ))
    .unwrap();
    e.upsert_policy(policy("c-no-egress-ip", "c", failing, &all, &[]))
        .unwrap();
    e.upsert_policy(policy(
        "d-remote",
        "d",
        hostname("remote"),
        &["0.0.0.0/1", "2000::/3"],
        &["100.0.0.0/8"],
    ))
    .unwrap();
    e.upsert_policy(policy(
        "e-missing",
        "e",
        hostname("nowhere"),
        &all,
        &["172.16.0.0/12"],
    ))
    .unwrap();
    for i in 0..endpoints {
        let app = ["a", "b", "c", "d", "e", "unselected"][i % 6];
        e.upsert_endpoint(Endpoint {
            uid: format!("ep-{i}"),
            labels: [("app".to_owned(), app.to_owned())].into(),
            ips: vec![
                IpAddr::V4(Ipv4Addr::new(10, 1, (i / 250) as u8, (i % 250) as u8 + 1)),
                IpAddr::V6(Ipv6Addr::new(0xfd01, 0, 0, 0, 0, 0, 0, i as u16 + 1)),
            ],
            ..Endpoint::default()
        })
        .unwrap();
    }
    e
}

#[cfg(feature = "testkit")]
struct Rng(u64);

#[cfg(feature = "testkit")]
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The kernel differential of issue 27 with the engine's: random flows (known and unknown
/// sources, destinations inside an entry's or anywhere), both families, through Cilium's
/// maps (one trie lookup) and through the compact layout's (the endpoint hash, then the rule
/// trie), each filled by its engine's plans from the same state: every verdict is the same
/// in both kernels' maps and in `Engine::lookup`.
#[cfg(feature = "testkit")] // the test datapath (clang at run time)
#[test]
fn kernel_verdicts_equal_engine_lookup_in_both_layouts() {
    let Some(fs) = bpffs_or_skip("kernel_verdicts_equal_engine_lookup_in_both_layouts") else {
        return;
    };
    let maps = EgressMaps::open_or_create(&fs.path().join("maps"), Layout::V4V2, None).unwrap();
    let mut engine = datapath_engine(300, maps.max_entries());
    program(&mut engine, &maps);
    let compact_maps =
        EgressMaps::open_or_create(&fs.path().join("compact"), Layout::Compact, None).unwrap();
    let mut compact = datapath_engine_of(Layout::Compact, 300, compact_maps.max_entries());
    program(&mut compact, &compact_maps);
    assert_eq!(compact.entries(), engine.entries());
    assert_eq!(compact_maps.dump().unwrap(), engine.entries());
    // Shared sets: fewer elements than entries (each endpoint here has few entries; the
    // report measures the layouts at Kubernetes' scale).
    let (elements, unreadable) = compact_maps.compact_elements().unwrap();
    assert!(unreadable.is_empty());
    assert!(
        elements.len() < engine.entries().len(),
        "{} compact elements for {} entries",
        elements.len(),
        engine.entries().len()
    );
    let build = std::env::temp_dir().join(format!("egress-datapath-{}", std::process::id()));
    std::fs::create_dir_all(&build).unwrap();
    let datapath = Datapath::load(&maps, engine.local_ipv4(), &build).unwrap();
    let compact_datapath = Datapath::load(&compact_maps, compact.local_ipv4(), &build).unwrap();
    let entries = engine.entries();
    let mut rng = Rng(0x5eed);
    let mut seen = BTreeMap::new();
    for v6 in [false, true] {
        let list = if v6 { &entries.ipv6 } else { &entries.ipv4 };
        for _ in 0..10_000 {
            let known = rng.next() % 10 < 9;
            let pick = &list[(rng.next() % list.len() as u64) as usize];
            let src = if known {
                pick.source
            } else if v6 {
                IpAddr::V6(Ipv6Addr::from(
                    0xfd01u128 << 112 | u128::from(rng.next() % 2000),
                ))
            } else {
                IpAddr::V4(Ipv4Addr::from(0x0a01_0000 + (rng.next() % 2000) as u32))
            };
            let dst = match rng.next() % 3 {
                // Inside the picked entry's destination.
                0 => {
                    let r = u128::from(rng.next()) << 64 | u128::from(rng.next());
                    match pick.destination.network() {
                        IpAddr::V4(n) => {
                            let m = egress_core::netip::mask_v4(pick.destination.len);
                            IpAddr::V4(Ipv4Addr::from((u32::from(n) & m) | (r as u32 & !m)))
                        }
                        IpAddr::V6(n) => {
                            let m = egress_core::netip::mask_v6(pick.destination.len);
                            IpAddr::V6(Ipv6Addr::from((u128::from(n) & m) | (r & !m)))
                        }
                    }
                }
                _ if v6 => IpAddr::V6(Ipv6Addr::from(
                    u128::from(rng.next()) << 64 | u128::from(rng.next()),
                )),
                _ => IpAddr::V4(Ipv4Addr::from(rng.next() as u32)),
            };
            let kernel = datapath.verdict(src, dst).unwrap();
            let user = engine.lookup(src, dst);
            assert_eq!(kernel, user, "{src} -> {dst}");
            let compact_kernel = compact_datapath.verdict(src, dst).unwrap();
            assert_eq!(compact_kernel, kernel, "compact maps: {src} -> {dst}");
            let kind = match kernel {
                Verdict::Drop(reason) => format!("{reason:?}"),
                other => format!("{other:?}")
                    .split([' ', '{'])
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            };
            *seen.entry(format!("{v6}:{kind}")).or_insert(0) += 1;
        }
    }
    // Every kind of verdict was met in both families: no entry, drop (both reasons),
    // excluded, forward, masquerade.
    let kinds = |v6: bool| {
        seen.keys()
            .filter(|k| k.starts_with(&format!("{v6}:")))
            .count()
    };
    assert!(kinds(false) == 6 && kinds(true) == 6, "{seen:?}");
    std::fs::remove_dir_all(&build).ok();
}

#[test]
fn a_full_map_stops_the_plan_and_nothing_is_lost() {
    let Some(fs) = bpffs_or_skip("a_full_map_stops_the_plan_and_nothing_is_lost") else {
        return;
    };
    let maps = EgressMaps::open_or_create(&fs.path().join("small"), Layout::V4V2, Some(8)).unwrap();
    // An engine believing the maps are larger: the kernel refuses the 9th new key.
    let mut engine = Engine::new(EngineConfig {
        max_entries: 16,
        ..EngineConfig::new("local").with_layout(Layout::V4V2)
    });
    engine.upsert_node(node(
        "local",
        &[("kubernetes.io/hostname", "local")],
        "192.168.0.1",
    ));
    engine
        .upsert_policy(policy("p", "a", hostname("local"), &["0.0.0.0/0"], &[]))
        .unwrap();
    for i in 0..10u8 {
        engine
            .upsert_endpoint(Endpoint {
                uid: format!("ep-{i}"),
                labels: [("app".to_owned(), "a".to_owned())].into(),
                ips: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, i + 1))],
                ..Endpoint::default()
            })
            .unwrap();
    }
    let err = maps.program(&mut engine).unwrap_err();
    let Error::Apply(apply) = &err else {
        panic!("{err}")
    };
    assert_eq!((apply.applied, apply.index, apply.total), (8, 8, 10));
    assert_eq!(apply.errno.0, libc::ENOSPC);
    assert_eq!(apply.failed.action(), Action::Upsert);
    assert!(
        err.to_string().contains("operation 8 of 10 failed"),
        "{err}"
    );
    // The engine acknowledged exactly what the kernel holds; the rest is still pending.
    assert_eq!(maps.dump().unwrap(), engine.programmed());
    assert_eq!(engine.take_plan().unwrap().len(), 2);
    // Retry after the cluster shrinks: two written endpoints and the two unwritten go away.
    for uid in ["ep-0", "ep-1", "ep-8", "ep-9"] {
        engine.delete_endpoint(uid);
    }
    let plan = maps.program(&mut engine).unwrap();
    assert_eq!((plan.upserts().len(), plan.deletes().len()), (0, 2));
    assert_eq!(maps.dump().unwrap(), engine.entries());
    // An engine that knows the real capacity refuses before writing anything.
    let mut careful = Engine::new(EngineConfig {
        max_entries: maps.max_entries(),
        ..EngineConfig::new("local").with_layout(Layout::V4V2)
    });
    careful.adopt(maps.dump().unwrap().iter().copied()).unwrap();
    careful.upsert_node(node(
        "local",
        &[("kubernetes.io/hostname", "local")],
        "192.168.0.1",
    ));
    careful
        .upsert_policy(policy(
            "p",
            "a",
            hostname("local"),
            &["0.0.0.0/0", "1.0.0.0/8"],
            &[],
        ))
        .unwrap();
    for i in 0..6u8 {
        careful
            .upsert_endpoint(Endpoint {
                uid: format!("ep-{i}"),
                labels: [("app".to_owned(), "a".to_owned())].into(),
                ips: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, i + 1))],
                ..Endpoint::default()
            })
            .unwrap();
    }
    let before = maps.dump().unwrap();
    let err = maps.program(&mut careful).unwrap_err();
    assert!(matches!(err, Error::Capacity(_)), "{err}");
    assert_eq!(maps.dump().unwrap(), before, "nothing written");
}

#[test]
fn a_refused_write_is_retried_in_full() {
    let Some(fs) = bpffs_or_skip("a_refused_write_is_retried_in_full") else {
        return;
    };
    let dir = fs.path().join("ro");
    EgressMaps::open_or_create(&dir, Layout::V4V2, None).unwrap();
    let read_only = EgressMaps::open(&dir, Layout::V4V2, true).unwrap();
    let mut engine = datapath_engine(12, read_only.max_entries());
    let total = engine.take_plan().unwrap().len();
    let err = read_only.program(&mut engine).unwrap_err();
    assert!(err.errno().is_some_and(|e| e.is_permission()), "{err}");
    let Error::Apply(apply) = &err else {
        panic!("{err}")
    };
    assert_eq!(apply.applied, 0);
    // Nothing was acknowledged: the whole plan comes back, and goes through a writable handle.
    assert_eq!(engine.take_plan().unwrap().len(), total);
    let writable = EgressMaps::open(&dir, Layout::V4V2, false).unwrap();
    program(&mut engine, &writable);
    assert_eq!(writable.dump().unwrap(), engine.entries());
}

/// A pin deleted (or replaced) under a running program: program refuses before writing
/// anything (its writes would reach a map nobody reads), nothing is acknowledged, and after
/// reopening the whole plan goes to the new maps.
#[test]
fn a_pin_deleted_under_a_running_program_is_refused_and_retried() {
    let Some(fs) = bpffs_or_skip("a_pin_deleted_under_a_running_program_is_refused_and_retried")
    else {
        return;
    };
    let dir = fs.path().join("gone");
    let maps = EgressMaps::open_or_create(&dir, Layout::V4V2, None).unwrap();
    let mut engine = datapath_engine(12, maps.max_entries());
    let total = engine.take_plan().unwrap().len();
    std::fs::remove_file(dir.join("cilium_egress_gw_policy_v4_v2")).unwrap();
    let err = maps.program(&mut engine).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unpinned {
                what: "deleted",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("reopen the maps"), "{err}");
    assert_eq!(
        engine.take_plan().unwrap().len(),
        total,
        "nothing acknowledged"
    );
    // Replaced: another map pinned there now.
    let other = EgressMaps::open_or_create(&dir, Layout::V4V2, None).unwrap();
    let err = maps.program(&mut engine).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unpinned {
                what: "replaced",
                ..
            }
        ),
        "{err}"
    );
    drop(maps);
    program(&mut engine, &other);
    assert_eq!(other.dump().unwrap(), engine.entries());
}

/// What a restarted agent sees changed: 1 % of [`datapath_engine`]'s 1000 endpoints (every
/// hundredth) moved to app "d"; their uids and addresses.
fn move_every_hundredth_to_d(engine: &mut Engine) -> (Vec<String>, Vec<IpAddr>) {
    let moved: Vec<String> = (0..1000).step_by(100).map(|i| format!("ep-{i}")).collect();
    for uid in &moved {
        let mut ep = engine.endpoint_by_uid(uid).unwrap();
        ep.labels.insert("app", "d");
        engine.upsert_endpoint(ep).unwrap();
    }
    let ips = moved
        .iter()
        .flat_map(|u| engine.endpoint_by_uid(u).unwrap().ips)
        .collect();
    (moved, ips)
}

#[test]
fn a_restart_with_a_changed_state_writes_only_the_difference() {
    let Some(fs) = bpffs_or_skip("a_restart_with_a_changed_state_writes_only_the_difference")
    else {
        return;
    };
    let maps =
        EgressMaps::open_or_create(&fs.path().join("maps"), Layout::V4V2, Some(65_536)).unwrap();
    let mut first = datapath_engine(1000, maps.max_entries());
    program(&mut first, &maps);
    let total = maps.dump().unwrap().len();
    // The restarted agent sees 1 % of the endpoints changed: 10 of 1000 moved to app "d".
    let mut second = datapath_engine(1000, maps.max_entries());
    let (_, ips) = move_every_hundredth_to_d(&mut second);
    // Exactly their keys change: new or changed entries written, vanished keys deleted.
    let old: BTreeMap<_, _> = bytes(&MapEntries::from_entries(
        first
            .entries()
            .iter()
            .copied()
            .filter(|e| ips.contains(&e.source)),
    ));
    let new: BTreeMap<_, _> = bytes(&MapEntries::from_entries(
        second
            .entries()
            .iter()
            .copied()
            .filter(|e| ips.contains(&e.source)),
    ));
    let want_upserts = new.iter().filter(|(k, v)| old.get(*k) != Some(v)).count();
    let want_deletes = old.keys().filter(|k| !new.contains_key(*k)).count();
    second.adopt(maps.dump().unwrap().iter().copied()).unwrap();
    let plan = second.take_plan().unwrap();
    assert_eq!(
        (plan.upserts().len(), plan.deletes().len()),
        (want_upserts, want_deletes)
    );
    assert!(
        plan.ops()
            .iter()
            .all(|op| ips.contains(&op.entry().unwrap().source))
    );
    // A 1 % change writes about 1 % of the entries.
    let share = plan.upserts().len() as f64 / total as f64;
    assert!(
        share > 0.0 && share < 0.02,
        "{} of {total} written",
        plan.upserts().len()
    );
    let plan = maps.program(&mut second).unwrap();
    assert!(!plan.is_empty());
    assert_eq!(bytes(&maps.dump().unwrap()), bytes(&second.entries()));
}

/// The compact layout across a restart: a restarted agent adopting the maps' elements (set
/// ids and all) writes for 10 of 1000 endpoints moved to another app one endpoint block per
/// address (their app's sets are there already; the moved endpoints are far apart) and
/// nothing else; the maps then decide as the engine does. A write refused midway is
/// acknowledged up to it and the rest written by the next program.
#[test]
fn a_compact_restart_writes_one_element_per_moved_endpoint() {
    let Some(fs) = bpffs_or_skip("a_compact_restart_writes_one_element_per_moved_endpoint") else {
        return;
    };
    let maps =
        EgressMaps::open_or_create(&fs.path().join("maps"), Layout::Compact, Some(65_536)).unwrap();
    let mut first = datapath_engine_of(Layout::Compact, 1000, maps.max_entries());
    program(&mut first, &maps);
    assert_eq!(maps.dump().unwrap(), first.entries());
    let sets = first.compact_set_count();
    let mut second = datapath_engine_of(Layout::Compact, 1000, maps.max_entries());
    let (moved, ips) = move_every_hundredth_to_d(&mut second);
    let unreadable = maps.adopt_into(&mut second).unwrap();
    assert!(unreadable.is_empty());
    assert_eq!(second.compact_set_count(), sets);
    let plan = second.take_plan().unwrap();
    // ep-0, ep-600 were "a" ... each moved endpoint not already "d": one write per address.
    let already_d = moved.iter().filter(|u| {
        let i: usize = u.trim_start_matches("ep-").parse().unwrap();
        i % 6 == 3
    });
    assert_eq!(
        plan.len(),
        2 * (moved.len() - already_d.count()),
        "{:?}",
        plan.ops()
    );
    assert!(plan.ops().iter().all(|op| {
        op.action() == Action::Upsert
            && op.compact_element().is_some_and(|block| {
                block.endpoints().any(|(ip, _)| ips.contains(&ip))
                    && matches!(block, CompactElement::Block { .. })
            })
    }));
    let written = maps.program(&mut second).unwrap();
    assert_eq!(written.len(), plan.len());
    assert_eq!(maps.dump().unwrap(), second.entries());
    assert!(second.take_plan().unwrap().is_empty());

    // A full endpoint hash (a foreign writer's elements) stops the plan; what was written
    // is acknowledged, the rest comes back and is written once there is room.
    let small =
        EgressMaps::open_or_create(&fs.path().join("small"), Layout::Compact, Some(64)).unwrap();
    let hash = small.map(MapId::CompactEndpointsV4).unwrap();
    // 63 foreign blocks (first addresses 192.0.2.0, .8, ...), each naming set 999: room
    // for one more.
    let foreign: Vec<[u8; 4]> = (0..63u8)
        .map(|i| [192, 0, 2 + i / 32, i % 32 * 8])
        .collect();
    let mut block = [0u8; 32];
    block[..4].copy_from_slice(&999u32.to_ne_bytes());
    for key in &foreign {
        hash.write_raw(key, &block).unwrap();
    }
    let mut engine = datapath_engine_of(Layout::Compact, 12, 64);
    let err = small.program(&mut engine).unwrap_err();
    let Error::Apply(apply) = &err else {
        panic!("{err}");
    };
    assert!(apply.applied > 0, "{err}");
    assert!(err.to_string().contains("the endpoint"), "{err}");
    let rest = engine.take_plan().unwrap();
    assert!(!rest.is_empty());
    for key in &foreign {
        hash.delete_raw(key).unwrap();
    }
    program(&mut engine, &small);
    assert_eq!(small.dump().unwrap(), engine.entries());

    // Elements no layout can hold (a key that is no block's first address) filling the
    // hash: a restarted agent's reconcile deletes them before its plan, which then fits.
    let tight =
        EgressMaps::open_or_create(&fs.path().join("tight"), Layout::Compact, Some(64)).unwrap();
    let hash = tight.map(MapId::CompactEndpointsV4).unwrap();
    for i in 0..63u8 {
        hash.write_raw(&[192, 0, 2 + i / 32, i % 32 * 8 + 1], &block)
            .unwrap();
    }
    let mut restarted = datapath_engine_of(Layout::Compact, 12, 64);
    let done = tight.reconcile(&mut restarted).unwrap();
    assert_eq!(done.deleted_unreadable.len(), 63);
    assert!(done.unreadable_first);
    assert_eq!(tight.dump().unwrap(), restarted.entries());
}

/// An engine for `layout` whose `endpoints` (one IPv4 and one IPv6 address each) all go
/// through the local node.
fn layout_engine(layout: Layout, endpoints: u8) -> Engine {
    engine_for(layout, endpoints, &["0.0.0.0/0", "::/0"])
}

/// An engine of `layout` on node `local` with `endpoints` dual-stack endpoints, all selected
/// by one policy with these destinations.
fn engine_for(layout: Layout, endpoints: u8, destinations: &[&str]) -> Engine {
    let mut e = Engine::new(EngineConfig {
        layout,
        ..EngineConfig::new("local").with_layout(Layout::V4V2)
    });
    e.upsert_node(node(
        "local",
        &[("kubernetes.io/hostname", "local")],
        "192.168.0.1",
    ));
    e.upsert_policy(policy("p", "a", hostname("local"), destinations, &[]))
        .unwrap();
    for i in 0..endpoints {
        e.upsert_endpoint(Endpoint {
            uid: format!("ep-{i}"),
            labels: [("app".to_owned(), "a".to_owned())].into(),
            ips: vec![
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, i + 1)),
                IpAddr::V6(Ipv6Addr::new(0xfd01, 0, 0, 0, 0, 0, 0, u16::from(i) + 1)),
            ],
            ..Endpoint::default()
        })
        .unwrap();
    }
    e
}

/// Maps of `layout` in `dir` holding two endpoints' entries (so that "unchanged" means
/// something), and their dump.
fn programmed_maps(dir: &Path, layout: Layout) -> (EgressMaps, MapEntries) {
    let maps = EgressMaps::open_or_create(dir, layout, None).unwrap();
    program(&mut layout_engine(layout, 2), &maps);
    let before = maps.dump().unwrap();
    assert_eq!((before.ipv4.len(), before.ipv6.len()), (2, 2));
    (maps, before)
}

/// A plan of `layout` against maps holding `before` (two endpoints' entries) whose IPv6
/// operations come first: upserts of two new endpoints' IPv6 entries (valid for either
/// layout's maps), then deletes of the IPv4 entries. A refusal that came only at the first
/// IPv4 operation would have written the upserts. Returns the plan and its first IPv4 index.
fn ipv6_first(layout: Layout, before: &MapEntries) -> (Plan, usize) {
    let mut engine = engine_for(layout, 4, &["::/0"]);
    engine.adopt(before.iter().copied()).unwrap();
    let plan = engine.take_plan().unwrap();
    let v6 = plan
        .ops()
        .iter()
        .take_while(|op| op.map() == MapId::V6)
        .count();
    assert_eq!((v6, plan.len()), (2, 4));
    assert!(
        plan.ops()[v6..]
            .iter()
            .all(|op| op.map() == layout.ipv4_map())
    );
    (plan, v6)
}

#[test]
fn a_plan_for_the_other_layout_is_refused_and_nothing_is_written() {
    let Some(fs) = bpffs_or_skip("a_plan_for_the_other_layout_is_refused_and_nothing_is_written")
    else {
        return;
    };
    for (maps_layout, plan_layout) in [
        (Layout::V4V2, Layout::V4Legacy),
        (Layout::V4Legacy, Layout::V4V2),
    ] {
        let (maps, before) =
            programmed_maps(&fs.path().join(format!("{maps_layout:?}")), maps_layout);
        let (plan, first_v4) = ipv6_first(plan_layout, &before);
        let total = plan.len();
        for batching in [true, false] {
            maps.set_batching(batching);
            // Its IPv4 operations name the other IPv4 map.
            match maps.apply(&plan) {
                Err(Error::PlanWrongMap {
                    index,
                    total: t,
                    found,
                    ipv4,
                    ipv6,
                    layout,
                }) => {
                    assert_eq!((index, t), (first_v4, total));
                    assert_eq!(found, plan_layout.ipv4_map_name());
                    assert_eq!((ipv4, ipv6), (maps_layout.ipv4_map_name(), MAP_V6));
                    assert_eq!(layout, maps_layout);
                }
                other => panic!("{maps_layout:?} maps, {plan_layout:?} plan: {other:?}"),
            }
            assert_eq!(maps.dump().unwrap(), before, "nothing written");
            assert!(matches!(
                maps.check_plan(&plan),
                Err(Error::PlanWrongMap { .. })
            ));
        }
        // The same plan made for these maps' layout passes the check and applies.
        let (fitting, _) = ipv6_first(maps_layout, &before);
        maps.check_plan(&fitting).unwrap();
        // The other layout's engine, acknowledged on these maps, deletes with the same keys:
        // still refused for naming the other IPv4 map.
        let mut other = layout_engine(plan_layout, 0);
        other.adopt(before.iter().copied()).unwrap();
        let deletes = other.take_plan().unwrap();
        assert!(deletes.upserts().is_empty() && deletes.deletes().len() == 4);
        assert!(matches!(
            maps.apply(&deletes),
            Err(Error::PlanWrongMap { found, .. }) if found == plan_layout.ipv4_map_name()
        ));
        assert_eq!(maps.dump().unwrap(), before, "nothing deleted");
    }
}

#[test]
fn program_refuses_an_engine_of_the_other_layout() {
    let Some(fs) = bpffs_or_skip("program_refuses_an_engine_of_the_other_layout") else {
        return;
    };
    for (maps_layout, engine_layout) in [
        (Layout::V4V2, Layout::V4Legacy),
        (Layout::V4Legacy, Layout::V4V2),
    ] {
        let (maps, before) =
            programmed_maps(&fs.path().join(format!("{maps_layout:?}")), maps_layout);
        let mut engine = layout_engine(engine_layout, 4);
        let pending = engine.take_plan().unwrap();
        let err = maps.program(&mut engine).unwrap_err();
        match &err {
            Error::LayoutMismatch { engine, maps } => {
                assert_eq!((*engine, *maps), (engine_layout, maps_layout));
            }
            other => panic!("{other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains(engine_layout.ipv4_map_name())
                && text.contains(maps_layout.ipv4_map_name()),
            "{text}"
        );
        assert_eq!(maps.dump().unwrap(), before, "nothing written");
        // Nothing acknowledged: the engine's plan is still the whole of it.
        assert_eq!(engine.take_plan().unwrap(), pending);
    }
}

/// Issue 21: one writer per pin directory, across handles and across the threads sharing one
/// handle — a hold belongs to its thread (nested holds of that thread pass at once); another
/// thread or handle waits for its release within the wait, then gets `Error::Busy`.
#[test]
fn the_writer_lock_is_one_threads_at_a_time() {
    let Some(fs) = bpffs_or_skip("the_writer_lock_is_one_threads_at_a_time") else {
        return;
    };
    let dir = fs.path().join("locked");
    let maps = EgressMaps::open_or_create(&dir, Layout::V4Legacy, None).unwrap();
    let other = EgressMaps::open(&dir, Layout::V4Legacy, false).unwrap();
    let held = maps.lock_writer().unwrap();
    // Nested on this thread: at once.
    drop(maps.lock_writer().unwrap());
    // Another handle (another open file description): busy after its wait.
    other.set_writer_wait(std::time::Duration::from_millis(100));
    match other.lock_writer() {
        Err(Error::Busy { dir: d, waited }) => {
            assert_eq!(d, dir);
            assert!(waited >= std::time::Duration::from_millis(100));
        }
        other => panic!("{other:?}"),
    }
    // Another thread of the same handle: waits for the release, then holds it.
    let released = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            let _guard = maps.lock_writer().unwrap();
            assert!(
                released.load(std::sync::atomic::Ordering::SeqCst),
                "held at once"
            );
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        released.store(true, std::sync::atomic::Ordering::SeqCst);
        drop(held);
        waiter.join().unwrap();
    });
    // ... and a thread that cannot wait long enough is refused.
    let held = maps.lock_writer().unwrap();
    maps.set_writer_wait(std::time::Duration::from_millis(50));
    std::thread::scope(|scope| {
        let refused = scope.spawn(|| matches!(maps.lock_writer(), Err(Error::Busy { .. })));
        assert!(refused.join().unwrap());
    });
    drop(held);
    // Free again: the other handle takes it.
    drop(other.lock_writer().unwrap());
}

/// Issue 22: the test datapath declares Cilium's maps as egress-core writes them (one C header,
/// `bpf/cilium_egress_maps.h`): key and value sizes, capacity, and the flags the v4v2 layout's
/// maps are created with. Compiled with the repository's one compile routine (`-Werror`).
#[cfg(feature = "testkit")]
#[test]
fn the_test_datapath_declares_ciliums_maps() {
    use egress_bpf::datapath::{compile, declared_maps};
    let dir = std::env::temp_dir().join(format!("egress-bpf-decl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let elf = compile(&dir).unwrap();
    let maps = declared_maps(&elf).unwrap();
    let find = |name: &str| maps.iter().find(|m| m.name == name).unwrap();
    let flags = egress_bpf::map_flags(Layout::V4V2);
    for (name, key, value) in [
        ("egress_v4", MapKeyV4::SIZE, MapValueV4::SIZE),
        ("egress_v6", MapKeyV6::SIZE, MapValueV6::SIZE),
    ] {
        let m = find(name);
        assert_eq!(
            (m.map_type, m.key_size as usize, m.value_size as usize),
            (11, key, value),
            "{name}"
        );
        assert_eq!((m.max_entries, m.flags), (16384, flags), "{name}");
    }
    // The compact layout's: two hashes (type 1), two tries, the core's sizes and flags.
    for (name, id) in [
        ("compact_endpoints_v4", MapId::CompactEndpointsV4),
        ("compact_endpoints_v6", MapId::CompactEndpointsV6),
        ("compact_rules_v4", MapId::CompactRulesV4),
        ("compact_rules_v6", MapId::CompactRulesV6),
    ] {
        let m = find(name);
        assert_eq!(
            (m.map_type, m.key_size as usize, m.value_size as usize),
            (egress_bpf::map_type(id), id.key_size(), id.value_size()),
            "{name}"
        );
        assert_eq!(
            (m.max_entries, m.flags),
            (16384, egress_bpf::map_flags(Layout::Compact)),
            "{name}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
