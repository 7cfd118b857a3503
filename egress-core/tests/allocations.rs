//! The hot path never allocates: a counting global allocator, counting only on the thread
//! that runs the measured code (the test harness's other threads do not disturb it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use egress_core::entries::{Entry, MapEntries};
use egress_core::lookup::{LookupTable, Verdict};
use egress_core::maps::{MapKeyV4, MapKeyV6, MapValueV4, MapValueV6};
use egress_core::netip::Cidr;

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
    let engine = engine_for_lookups();
    let sample: Vec<(IpAddr, IpAddr)> = queries.iter().copied().step_by(7).collect();
    let mut hits = 0usize;
    let allocations = allocations_during(|| {
        for &(src, dst) in &sample {
            if black_box(engine.lookup(src, dst)) != Verdict::NoEntry {
                hits += 1;
            }
        }
    });
    assert_eq!(allocations, 0, "Engine::lookup allocated");
    assert!(hits > 0);
    let mut out = vec![Verdict::NoEntry; sample.len()];
    let allocations = allocations_during(|| engine.lookup_many(&sample, &mut out));
    assert_eq!(allocations, 0, "Engine::lookup_many allocated");
    assert!(
        sample
            .iter()
            .zip(&out)
            .all(|(&(s, d), v)| engine.lookup(s, d) == *v)
    );
    assert!(
        kinds.iter().all(|&n| n > 0),
        "every kind of verdict was exercised: {kinds:?}"
    );
}

/// An engine whose policy selects the workload's IPv4 sources 10.0.0.0–10.0.7.207.
fn engine_for_lookups() -> egress_core::engine::Engine {
    use egress_core::cluster::{Endpoint, Node};
    use egress_core::engine::{Engine, EngineConfig};
    use egress_core::policy::{GatewaySpec, LabelSelector, Policy, SelectorItem};
    let mut engine = Engine::new(EngineConfig::new("gw"));
    let labels = [("egress", "true")].into_iter().collect();
    engine.upsert_node(Node::new("gw", labels, Some(Ipv4Addr::new(192, 168, 1, 1))));
    let mut policy = Policy {
        name: "p".into(),
        creation_timestamp: None,
        selectors: vec![SelectorItem {
            pod_selector: Some(LabelSelector::default()),
            ..SelectorItem::default()
        }],
        destination_cidrs: vec![egress_core::netip::parse_prefix("0.0.0.0/0").unwrap()],
        excluded_cidrs: vec![egress_core::netip::parse_prefix("10.0.0.0/8").unwrap()],
        egress_gateway: GatewaySpec::default(),
        egress_gateways: vec![],
    };
    policy
        .egress_gateway
        .node_selector
        .match_labels
        .push(("egress".into(), "true".into()));
    engine.upsert_policy(policy);
    for i in 0..2000u32 {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        engine.upsert_endpoint(Endpoint {
            uid: format!("ep-{i}"),
            ips: vec![ip],
            ..Endpoint::default()
        });
    }
    engine
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
