//! The hot path never allocates: a counting global allocator, counting only on the thread
//! that runs the measured code (the test harness's other threads do not disturb it).
//! Measured: `LookupTable` lookups and key/value encoding; `Engine::lookup` and
//! `Engine::lookup_many` on hits of every verdict kind in both families; one endpoint's
//! gateway choice (`PolicyGateways::choose`/`choose_index`) in both selection modes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cluster_fixture::{endpoint, name};
use egress_core::engine::Engine;
use egress_core::entries::{Entry, MapEntries};
use egress_core::gateway::{LocalNode, PolicyGateways, Selection};
use egress_core::lookup::{DropReason, LookupTable, Verdict, VerdictRecord};
use egress_core::maps::{MapKeyV4, MapKeyV6, MapValueV4, MapValueV6};
use egress_core::netip::Cidr;
use egress_core::selector::Selector;
use egress_core::version::Rules;

mod cluster_fixture;

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    // `try_with`: the slot may be gone while the thread is being torn down.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to the system allocator with the caller's arguments; the
// counting touches only a const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: as above; `ptr` came from this allocator, i.e. from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Allocations made by `f` on this thread.
fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

fn workload() -> MapEntries {
    let mut entries = Vec::new();
    for i in 0..2000u32 {
        let src4 = Ipv4Addr::from(0x0a00_0000 + i);
        let src6 = Ipv6Addr::from((0xfd00u128 << 112) + u128::from(i));
        let gw = Ipv4Addr::new(192, 168, 1, (i % 4) as u8);
        for (addr, len, gateway) in [
            (0u32, 0u8, gw),
            (0x0a00_0000, 8, Ipv4Addr::new(0, 0, 0, 1)),
            (0x0808_0800 + i % 7, 24 + (i % 8) as u8, gw),
        ] {
            entries.push(Entry {
                source: IpAddr::V4(src4),
                destination: Cidr {
                    addr: IpAddr::V4(Ipv4Addr::from(addr)),
                    len,
                },
                egress_ip: IpAddr::V4(Ipv4Addr::new(43, 0, 0, 1)),
                gateway_ip: gateway,
                egress_ifindex: 2,
            });
        }
        entries.push(Entry {
            source: IpAddr::V6(src6),
            destination: Cidr {
                addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                len: 0,
            },
            egress_ip: IpAddr::V6("2402::1".parse().unwrap()),
            gateway_ip: gw,
            egress_ifindex: 2,
        });
    }
    MapEntries::from_entries(entries)
}

#[test]
fn lookups_and_encoding_allocate_nothing() {
    let maps = workload();
    let table = LookupTable::new(&maps, Some(Ipv4Addr::new(192, 168, 1, 1)));
    let queries: Vec<(IpAddr, IpAddr)> = (0..20_000u32)
        .map(|i| {
            let src = if i % 10 == 0 {
                Ipv4Addr::new(11, 0, 0, 1)
            } else {
                Ipv4Addr::from(0x0a00_0000 + i % 2000)
            };
            let dst = if i % 2 == 0 {
                Ipv4Addr::from(0x0a00_0000 | i)
            } else {
                Ipv4Addr::from(i.wrapping_mul(2_654_435_761))
            };
            (IpAddr::V4(src), IpAddr::V4(dst))
        })
        .chain((0..5_000u128).map(|i| {
            (
                IpAddr::V6(Ipv6Addr::from((0xfd00u128 << 112) + i % 2100)),
                IpAddr::V6(Ipv6Addr::from(i << 64)),
            )
        }))
        .collect();
    let mut kinds = [0usize; 4];
    let allocations = allocations_during(|| {
        for &(src, dst) in &queries {
            let slot = match black_box(table.lookup(src, dst)) {
                Verdict::NoEntry => 0,
                Verdict::Excluded => 1,
                Verdict::Masquerade { .. } => 2,
                Verdict::Forward { .. } | Verdict::Drop(_) => 3,
            };
            kinds[slot] += 1;
        }
        let mut kb = [0u8; MapKeyV4::SIZE];
        let mut vb = [0u8; MapValueV4::SIZE];
        let mut k6 = [0u8; MapKeyV6::SIZE];
        let mut v6 = [0u8; MapValueV6::SIZE];
        for e in maps.ipv4.iter().take(1000) {
            let (k, v) = e.to_map_v4().unwrap();
            k.encode(&mut kb);
            v.encode(&mut vb);
            black_box((&kb, &vb));
        }
        for e in maps.ipv6.iter().take(1000) {
            let (k, v) = e.to_map_v6().unwrap();
            k.encode(&mut k6);
            v.encode(&mut v6);
            black_box((&k6, &v6));
        }
    });
    assert_eq!(allocations, 0, "the hot path allocated");
    assert!(
        kinds.iter().all(|&n| n > 0),
        "every kind of verdict was exercised: {kinds:?}"
    );
}

/// Verdict kinds, numbered as the C ABI's `egress_verdict.kind` (0–5), masquerade split by
/// whether it names an interface (5: route lookup, 6: redirect to an ifindex).
const KINDS: usize = 7;
const NO_ENTRY: usize = 0;
const DROP_NO_GATEWAY: usize = 1;
const DROP_NO_EGRESS_IP: usize = 2;
const EXCLUDED: usize = 3;
const FORWARD: usize = 4;
const MASQUERADE_WITH_IFINDEX: usize = 6;

fn kind(v: Verdict) -> usize {
    match v {
        Verdict::NoEntry => NO_ENTRY,
        Verdict::Drop(DropReason::NoGateway) => DROP_NO_GATEWAY,
        Verdict::Drop(DropReason::NoEgressIp) => DROP_NO_EGRESS_IP,
        Verdict::Excluded => EXCLUDED,
        Verdict::Forward { .. } => FORWARD,
        Verdict::Masquerade { ifindex: 0, .. } => 5,
        Verdict::Masquerade { .. } => MASQUERADE_WITH_IFINDEX,
    }
}

/// Queries hitting every entry of `engine` (its source, its destination address), plus
/// misses: unknown sources of both families and mixed families.
fn queries_of(engine: &Engine) -> Vec<(IpAddr, IpAddr)> {
    let mut queries: Vec<(IpAddr, IpAddr)> = engine
        .entries()
        .iter()
        .map(|e| (e.source, e.destination.addr))
        .collect();
    let miss4: IpAddr = "10.9.9.9".parse().unwrap();
    let miss6: IpAddr = "fd09::9".parse().unwrap();
    let (dst4, dst6): (IpAddr, IpAddr) =
        ("1.1.1.1".parse().unwrap(), "2001:db8::9".parse().unwrap());
    let known4 = endpoint(0).ips[0];
    let known6 = endpoint(0).ips[1];
    queries.extend([(miss4, dst4), (miss6, dst6), (known4, dst6), (known6, dst4)]);
    queries
}

/// `Engine::lookup` and `Engine::lookup_many` allocate nothing on hits of every verdict kind,
/// IPv4 and IPv6: a gateway node with devices (masquerade, with egress IP and ifindex),
/// endpoints whose gateway is another node (forward), excluded CIDRs, a policy without
/// gateway and failed egress-IP derivations (drops).
#[test]
fn engine_lookups_of_every_verdict_allocate_nothing() {
    // node-00 is, in Cilium mode, the gateway of `web` (eth1, ifindex 3) and `batch` (default
    // route, ifindex 2), and one of `db`'s; node-03 is, in consistent mode, a candidate of
    // `batch` (masquerade) and of `web` and `db`, whose derivations fail there (no eth1, an
    // egressIP on none of its devices).
    let cases = [
        (
            0,
            Selection::Cilium,
            &[
                NO_ENTRY,
                DROP_NO_GATEWAY,
                EXCLUDED,
                FORWARD,
                MASQUERADE_WITH_IFINDEX,
            ][..],
        ),
        (
            3,
            Selection::Consistent,
            &[
                NO_ENTRY,
                DROP_NO_GATEWAY,
                DROP_NO_EGRESS_IP,
                EXCLUDED,
                FORWARD,
                MASQUERADE_WITH_IFINDEX,
            ][..],
        ),
    ];
    for (node, selection, required) in cases {
        let engine = cluster_fixture::engine(node, selection);
        let queries = queries_of(&engine);
        let mut verdicts = vec![Verdict::NoEntry; queries.len()];
        let mut tally = [[0usize; KINDS]; 2];
        let allocations = allocations_during(|| {
            for (&(src, dst), out) in queries.iter().zip(verdicts.iter_mut()) {
                let v = black_box(engine.lookup(black_box(src), black_box(dst)));
                tally[usize::from(src.is_ipv6())][kind(v)] += 1;
                *out = v;
            }
        });
        assert_eq!(
            allocations,
            0,
            "{} {selection:?}: Engine::lookup allocated",
            name(node)
        );
        let mut many = vec![Verdict::NoEntry; queries.len()];
        let allocations = allocations_during(|| engine.lookup_many(black_box(&queries), &mut many));
        assert_eq!(
            allocations,
            0,
            "{} {selection:?}: Engine::lookup_many allocated",
            name(node)
        );
        // The record forms (for the bindings) allocate nothing either.
        let mut records = vec![VerdictRecord::NO_ENTRY; queries.len()];
        let allocations = allocations_during(|| {
            for (&(src, dst), out) in queries.iter().zip(records.iter_mut()) {
                *out = black_box(engine.lookup_record(black_box(src), black_box(dst)));
            }
        });
        assert_eq!(
            allocations,
            0,
            "{} {selection:?}: lookup_record allocated",
            name(node)
        );
        let mut many_records = vec![VerdictRecord::NO_ENTRY; queries.len()];
        let allocations = allocations_during(|| {
            engine.lookup_many_records(black_box(&queries), &mut many_records)
        });
        assert_eq!(
            allocations,
            0,
            "{} {selection:?}: lookup_many_records allocated",
            name(node)
        );
        // The verdicts are right (a lookup table built from the entries agrees) ...
        let table = LookupTable::new(&engine.entries(), engine.local_ipv4());
        for (i, &(src, dst)) in queries.iter().enumerate() {
            let want = table.lookup(src, dst);
            assert_eq!(verdicts[i], want, "lookup {src} -> {dst}");
            assert_eq!(many[i], want, "lookup_many {src} -> {dst}");
            assert_eq!(
                records[i],
                VerdictRecord::from(want),
                "lookup_record {src} -> {dst}"
            );
            assert_eq!(
                many_records[i], records[i],
                "lookup_many_records {src} -> {dst}"
            );
            assert_eq!(records[i].kind, want.kind());
        }
        // ... and each required kind was produced by the counted queries, in both families.
        for (family, counts) in ["IPv4", "IPv6"].iter().zip(&tally) {
            for &k in required {
                assert!(
                    counts[k] > 0,
                    "{} {selection:?}: no {family} verdict of kind {k}: {counts:?}",
                    name(node)
                );
            }
        }
    }
}

/// One endpoint's gateway choice (ARCHITECTURE.md, hot path) allocates nothing in either
/// selection mode, over policies with several gateways or candidates.
#[test]
fn one_endpoints_gateway_choice_allocates_nothing() {
    let nodes = cluster_fixture::node_map();
    let local_devices = cluster_fixture::devices(0);
    let local = LocalNode {
        node: &nodes[&name(0)],
        devices: &local_devices,
    };
    let uids: Vec<String> = cluster_fixture::endpoints()
        .into_iter()
        .map(|e| e.uid)
        .chain((0..760).map(|k| format!("pod-uid-{k}")))
        .collect();
    // (mode, policy) -> how many gateways it resolves to; all of them are chosen by some uid.
    let spread = [
        (Selection::Cilium, "db", 5),
        (Selection::Consistent, "web", 6),
        (Selection::Consistent, "db", 3),
        (Selection::Consistent, "batch", 6),
    ];
    let rules = |selection| Rules::new(selection, cluster_fixture::VERSION);
    for selection in [Selection::Cilium, Selection::Consistent] {
        let engine = cluster_fixture::engine(0, selection);
        for policy in cluster_fixture::policies() {
            let selectors: Vec<Selector> = policy
                .gateways_in_use()
                .iter()
                .map(|g| Selector::new(&g.node_selector))
                .collect();
            let gateways =
                PolicyGateways::resolve(&policy, &selectors, &nodes, Some(local), rules(selection));
            let mut chosen = vec![(None, Ipv4Addr::UNSPECIFIED); uids.len()];
            let allocations = allocations_during(|| {
                for (uid, out) in uids.iter().zip(chosen.iter_mut()) {
                    let index = black_box(gateways.choose_index(black_box(uid)));
                    let gateway = black_box(gateways.choose(black_box(uid)));
                    *out = (index, gateway.gateway_ip);
                }
            });
            assert_eq!(
                allocations, 0,
                "{selection:?} {}: choosing a gateway allocated",
                policy.name
            );
            // `choose` is the gateway `choose_index` names, and the engine agrees.
            let mut used = vec![0usize; gateways.gateways.len()];
            for (uid, &(index, gateway_ip)) in uids.iter().zip(&chosen) {
                let want = index.map_or(Ipv4Addr::UNSPECIFIED, |i| gateways.gateways[i].gateway_ip);
                assert_eq!(gateway_ip, want, "{selection:?} {} {uid}", policy.name);
                if let Some(i) = index {
                    used[i] += 1;
                }
                if let Some(g) = engine.gateway_of(&policy.name, uid) {
                    assert_eq!(
                        g,
                        gateways.choose(uid),
                        "{selection:?} {} {uid}",
                        policy.name
                    );
                }
            }
            if let Some(&(_, _, n)) = spread
                .iter()
                .find(|(s, p, _)| *s == selection && *p == policy.name)
            {
                assert_eq!(gateways.gateways.len(), n, "{selection:?} {}", policy.name);
                assert!(
                    used.iter().all(|&u| u > 0),
                    "{selection:?} {}: every gateway is chosen by some uid: {used:?}",
                    policy.name
                );
            }
        }
    }
}

#[test]
fn the_counter_sees_allocations_on_this_thread_only() {
    let here = allocations_during(|| {
        black_box(Vec::<u8>::with_capacity(16));
    });
    assert_eq!(here, 1);
    let elsewhere = allocations_during(|| {
        std::thread::scope(|s| {
            s.spawn(|| black_box(vec![0u8; 64])).join().unwrap();
        });
    });
    // Spawning allocates on this thread; the spawned thread's own vec is not counted here.
    let spawn_only = allocations_during(|| {
        std::thread::scope(|s| {
            s.spawn(|| black_box(0u8)).join().unwrap();
        });
    });
    assert_eq!(elsewhere, spawn_only);
}
