//! `report [--quick]`: runs the workloads of PERFORMANCE.md and prints one JSON object.
//!
//! Every figure is measured in this run against a baseline measured beside it; counts
//! (allocations, moved endpoints, bytes) do not depend on the machine's speed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use egress_benches::measure::{self, Mode};
use egress_benches::{kernel, workloads};
use egress_core::engine::Action;
use egress_core::gateway::Selection;
use egress_core::lookup::LookupTable;
use serde_json::json;

/// Counts live heap bytes (all threads) and allocations made by the current thread.
struct CountingAllocator;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static THREAD_ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note(bytes: isize, allocation: bool) {
    LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed);
    if allocation {
        let _ = THREAD_ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
    }
}

// SAFETY: forwards every call unchanged to the system allocator; the bookkeeping uses an
// atomic and a const-initialised thread-local `Cell`, neither of which allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize, true);
        // SAFETY: the caller upholds `alloc`'s contract, forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize, true);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as isize - layout.size() as isize, true);
        // SAFETY: as above; `ptr` was allocated by `System` through this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize), false);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn thread_allocations() -> u64 {
    THREAD_ALLOCATIONS.with(Cell::get)
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

struct Sizes {
    queries: usize,
    kernel_queries: usize,
    kernel_repeat: u32,
    scan_queries: usize,
    lookup_time: Duration,
    recompute_runs: usize,
    events: usize,
    scale_endpoints: usize,
    churn_endpoints: usize,
    churn_seeds: u64,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes = if quick {
        Sizes {
            queries: 200_000,
            kernel_queries: 65_536,
            kernel_repeat: 1,
            scan_queries: 1_000,
            lookup_time: Duration::from_millis(400),
            recompute_runs: 2,
            events: 2_000,
            scale_endpoints: 150_000,
            churn_endpoints: 10_000,
            churn_seeds: 5,
        }
    } else {
        Sizes {
            queries: 1_000_000,
            kernel_queries: 524_288,
            kernel_repeat: 1,
            scan_queries: 5_000,
            lookup_time: Duration::from_secs(3),
            recompute_runs: 5,
            events: 20_000,
            scale_endpoints: 150_000,
            churn_endpoints: 10_000,
            churn_seeds: 20,
        }
    };

    let (lookup_v4, allocations_v4, kernel_apply) = lookup_figures(&sizes, false);
    let (lookup_v6, allocations_v6, _) = lookup_figures(&sizes, true);
    let event = endpoint_event(&sizes);
    let build = full_build(&sizes);
    let churn = churn(&sizes);

    let report = json!({
        "lookup_v4_ns": lookup_v4,
        "lookup_v6_ns": lookup_v6,
        "lookup_allocations": allocations_v4 + allocations_v6,
        "endpoint_event_us": event,
        "full_build": build,
        "churn": churn,
        "kernel_apply": kernel_apply,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
}

/// W-lookup: `Engine::lookup` vs a linear scan and the kernel's LPM trie, as throughput
/// (the standalone `LookupTable` beside them); for IPv4 also the kernel apply row.
fn lookup_figures(sizes: &Sizes, ipv6: bool) -> (serde_json::Value, u64, serde_json::Value) {
    let mut w = workloads::lookup(if ipv6 { 7 } else { 3 }, 10_000, sizes.queries, ipv6);
    assert_eq!(w.maps.len(), 40_000, "W-lookup has 4 entries per endpoint");
    let local = w.engine.local_ipv4();
    let table = LookupTable::new(&w.maps, local);
    let sample = &w.queries[..sizes.scan_queries];
    assert!(
        measure::verify_lookup(&w.maps, &table, local, sample),
        "the lookup table disagrees with the linear scan"
    );
    assert!(
        sample
            .iter()
            .all(|&(s, d)| w.engine.lookup(s, d) == table.lookup(s, d)),
        "the engine disagrees with the lookup table"
    );
    let before = thread_allocations();
    let engine =
        measure::time_per_query(&w.queries, sizes.lookup_time, |s, d| w.engine.lookup(s, d));
    let standalone =
        measure::time_per_query(&w.queries, sizes.lookup_time, |s, d| table.lookup(s, d));
    let batched = measure::time_per_query_batched(&w.queries, sizes.lookup_time, |qs, out| {
        w.engine.lookup_many(qs, out)
    });
    let allocations = thread_allocations() - before;
    let scan = measure::time_per_query(
        &w.queries[..sizes.scan_queries],
        sizes.lookup_time / 4,
        |s, d| measure::linear_scan(&w.maps, local, s, d),
    );
    let family = if ipv6 { "IPv6" } else { "IPv4" };
    let kernel_trie = match kernel::trie_lookup_ns(
        &mut w.engine,
        &w.queries[..sizes.kernel_queries],
        sizes.kernel_repeat,
    ) {
        Ok(ns) => json!(round(ns, 1)),
        Err(why) => {
            eprintln!("kernel_trie ({family}): null: {why}");
            json!(null)
        }
    };
    let apply = if ipv6 {
        json!(null)
    } else {
        match kernel::apply_ms(&mut w.engine) {
            Ok((ms, baseline)) => {
                json!({"entries": w.maps.len(), "ms": round(ms, 1), "baseline_ms": round(baseline, 1)})
            }
            Err(why) => {
                eprintln!("kernel_apply: null: {why}");
                json!(null)
            }
        }
    };
    (
        json!({
            "engine": round(engine, 1),
            "linear_scan": round(scan, 1),
            "kernel_trie": kernel_trie,
            "lookup_table": round(standalone, 1),
            "engine_batched": round(batched, 1),
        }),
        allocations,
        apply,
    )
}

/// W-cluster: one endpoint added and its plan taken, vs building the engine from scratch.
fn endpoint_event(sizes: &Sizes) -> serde_json::Value {
    let objects = workloads::cluster(11, 10_000, 100);
    // Sized to the workload: 40,000 entries, then 4 more per event.
    let max_entries = (40_000 + 4 * sizes.events as u32).next_power_of_two();
    let mut recompute = Vec::new();
    for _ in 0..sizes.recompute_runs {
        let start = Instant::now();
        let engine = objects.engine(Selection::Cilium, max_entries);
        recompute.push(start.elapsed());
        std::hint::black_box(engine.stats());
    }
    recompute.sort();
    let full_us = recompute[recompute.len() / 2].as_secs_f64() * 1e6;

    let mut engine = objects.engine(Selection::Cilium, max_entries);
    let plan = engine.take_plan().unwrap_or_else(|e| panic!("{e}"));
    engine.ack(&plan, plan.len());
    let mut total = Duration::ZERO;
    for i in 0..sizes.events {
        let mut ep = workloads::endpoint(20_000 + i, &format!("g{}", i % 100), 50);
        ep.ips = vec![std::net::IpAddr::V4(std::net::Ipv4Addr::new(
            10,
            200,
            (i / 250) as u8,
            (i % 250) as u8 + 1,
        ))];
        let source = ep.ips[0];
        let start = Instant::now();
        engine.upsert_endpoint(ep);
        let plan = engine.take_plan();
        total += start.elapsed();
        let plan = plan.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            plan.len() == 4
                && plan
                    .ops
                    .iter()
                    .all(|op| op.action == Action::Upsert && op.entry.source == source),
            "the plan holds exactly the new endpoint's 4 entries"
        );
        engine.ack(&plan, plan.len());
    }
    let event_us = total.as_secs_f64() * 1e6 / sizes.events as f64;
    json!({"engine": round(event_us, 2), "full_recompute": round(full_us, 0)})
}

/// W-scale: build time and everything the engine holds per entry.
fn full_build(sizes: &Sizes) -> serde_json::Value {
    let objects = workloads::scale(sizes.scale_endpoints);
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let start = Instant::now();
    let engine = objects.engine(Selection::Cilium, 1_048_576);
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let live = (LIVE_BYTES.load(Ordering::Relaxed) - before).max(0) as f64;
    let stats = engine.stats();
    let entries = stats.desired_v4 + stats.desired_v6;
    let memory = engine.memory();
    json!({
        "entries": entries,
        "ms": round(ms, 1),
        "bytes_per_entry": round(live / entries.max(1) as f64, 1),
        "desired_state_bytes_per_entry": round(memory.desired_state as f64 / entries.max(1) as f64, 1),
    })
}

/// W-churn figures, both modes.
fn churn(sizes: &Sizes) -> serde_json::Value {
    let (n, seeds) = (sizes.churn_endpoints, sizes.churn_seeds);
    let both = |f: &dyn Fn(Mode) -> f64| json!({"cilium": round(f(Mode::Cilium), 4), "consistent": round(f(Mode::Consistent), 4)});
    let mut remove = both(&|m| measure::churn_remove(m, 32, n, seeds));
    remove["ideal"] = json!(round(1.0 / 32.0, 5));
    let mut add = both(&|m| measure::churn_add(m, 8, n, seeds));
    add["ideal"] = json!(round(1.0 / 9.0, 4));
    let mut endpoint = both(&|m| measure::churn_add_endpoint(m, 8, n, seeds.min(3)));
    endpoint["ideal"] = json!(0);
    let balance = both(&|m| measure::balance(m, 32, n, seeds));
    json!({"remove_gateway_n32": remove, "add_gateway_n8": add, "add_endpoint": endpoint, "balance_n32": balance})
}
