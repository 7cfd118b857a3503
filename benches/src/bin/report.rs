//! `report [--quick]`: runs the workloads of PERFORMANCE.md and prints one JSON object.
//!
//! Every figure is measured in this run against a baseline measured beside it; counts
//! (allocations, moved endpoints, bytes) do not depend on the machine's speed. A failed
//! check (an answer that differs from its reference, an allocating lookup, a refused plan)
//! is an error: a message on stderr and exit status 1, never a figure. Only the kernel rows
//! may be `null`, when BPF is unavailable here (stderr says why).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use egress_benches::c_abi::{self, CEngine};
use egress_benches::kernel::KernelError;
use egress_benches::{k8s, kernel, measure, workloads};
use egress_core::engine::Action;
use egress_core::gateway::Selection;
use egress_core::lookup::LookupTable;
use serde_json::{Value, json};

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

/// A failed check or measurement: the message printed before exiting with status 1.
type Result<T> = std::result::Result<T, String>;

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
    edit_seeds: u64,
    edit_positions: usize,
    trie_sizes: &'static [usize],
    k8s_scale: k8s::Scale,
    trie_size_time: Duration,
    /// New pods whose map writes the compact-layout row counts.
    new_pods: usize,
}

/// The report's keys, in its order (`--only` takes any of them; the first six come from
/// one measurement).
const KEYS: &[&str] = &[
    "lookup_v4_ns",
    "lookup_v6_ns",
    "lookup_allocations",
    "kernel_apply",
    "ratios",
    "dependent_load_working_set_bytes",
    "endpoint_event_us",
    "full_build",
    "churn",
    "c_abi",
    "kernel_trie_by_size",
    "k8s_limits",
    "compact_layout",
];

fn main() {
    if let Err(why) = run() {
        eprintln!("report: error: {why}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
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
            edit_seeds: 3,
            edit_positions: 4,
            trie_sizes: &[1_000, 16_384],
            trie_size_time: Duration::from_millis(300),
            k8s_scale: k8s::Scale::quick(),
            new_pods: 100,
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
            edit_seeds: 5,
            edit_positions: 32,
            trie_sizes: &[1_000, 16_384, 100_000, 1_000_000],
            trie_size_time: Duration::from_secs(1),
            k8s_scale: k8s::Scale::full(),
            new_pods: 1_000,
        }
    };

    // --only KEY[,KEY...]: just those blocks (the lookup keys come together).
    let args: Vec<String> = std::env::args().collect();
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .map(|i| {
            args.get(i + 1)
                .map(|list| list.split(',').map(str::to_owned).collect())
                .ok_or_else(|| "--only needs a comma-separated list of keys".to_owned())
        })
        .transpose()?;
    if let Some(keys) = &only
        && let Some(unknown) = keys.iter().find(|k| !KEYS.contains(&k.as_str()))
    {
        return Err(format!(
            "--only: unknown key {unknown:?} (keys: {})",
            KEYS.join(", ")
        ));
    }
    let want = |keys: &[&str]| {
        only.as_ref()
            .is_none_or(|o| o.iter().any(|k| keys.contains(&k.as_str())))
    };
    let mut report = serde_json::Map::new();
    if want(&KEYS[..6]) {
        let v4 = lookup_figures(&sizes, false)?;
        let v6 = lookup_figures(&sizes, true)?;
        let ratios = ratios(&v4, &v6);
        report.insert("lookup_v4_ns".into(), v4.json.clone());
        report.insert("lookup_v6_ns".into(), v6.json.clone());
        report.insert(
            "lookup_allocations".into(),
            json!(v4.allocations + v6.allocations),
        );
        report.insert("kernel_apply".into(), v4.kernel_apply.clone());
        report.insert("ratios".into(), ratios);
        report.insert(
            "dependent_load_working_set_bytes".into(),
            json!(v4.working_set),
        );
    }
    if want(&["endpoint_event_us"]) {
        report.insert("endpoint_event_us".into(), endpoint_event(&sizes)?);
    }
    if want(&["full_build"]) {
        report.insert("full_build".into(), full_build(&sizes)?);
    }
    if want(&["churn"]) {
        report.insert("churn".into(), churn(&sizes)?);
    }
    if want(&["c_abi"]) {
        report.insert("c_abi".into(), c_abi(&sizes)?);
    }
    if want(&["kernel_trie_by_size"]) {
        report.insert("kernel_trie_by_size".into(), kernel_trie_by_size(&sizes)?);
    }
    if want(&["k8s_limits", "compact_layout"]) {
        let workload = k8s::k8s_limits(k8s::SEED, sizes.k8s_scale);
        if want(&["k8s_limits"]) {
            report.insert("k8s_limits".into(), k8s_limits(&sizes, &workload)?);
        }
        if want(&["compact_layout"]) {
            report.insert("compact_layout".into(), compact_layout(&sizes, &workload)?);
        }
    }
    let report = Value::Object(report);
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}

/// A kernel row: the figure, `None` when BPF is unavailable here (said on stderr), or the
/// error that fails the report.
fn kernel_row<T>(row: &str, result: std::result::Result<T, KernelError>) -> Result<Option<T>> {
    match result {
        Ok(figure) => Ok(Some(figure)),
        Err(KernelError::Unavailable(why)) => {
            eprintln!("{row}: null: BPF unavailable here: {why}");
            Ok(None)
        }
        Err(KernelError::Failed(why)) => Err(format!("{row}: {why}")),
    }
}

/// The W-lookup figures of one family.
struct LookupFigures {
    json: Value,
    engine: f64,
    batched: f64,
    kernel_trie: Option<f64>,
    one_dependent_load: Option<f64>,
    working_set: Option<usize>,
    allocations: u64,
    kernel_apply: Value,
}

/// W-lookup: `Engine::lookup` vs a linear scan and the kernel's LPM trie, as throughput
/// (the standalone `LookupTable` beside them); for IPv4 also one dependent load over a
/// working set the size of what the engine's lookups read, and the kernel apply row.
fn lookup_figures(sizes: &Sizes, ipv6: bool) -> Result<LookupFigures> {
    let family = if ipv6 { "IPv6" } else { "IPv4" };
    let mut w = workloads::lookup(if ipv6 { 7 } else { 3 }, 10_000, sizes.queries, ipv6);
    let entries = w.maps.ipv4.len() + w.maps.ipv6.len();
    if entries != 40_000 {
        return Err(format!(
            "W-lookup ({family}) has {entries} entries, not 4 per endpoint (40,000)"
        ));
    }
    let local = w.engine.local_ipv4();
    let table = LookupTable::new(&w.maps, local);
    let sample = &w.queries[..sizes.scan_queries];
    if !measure::verify_lookup(&w.maps, &table, local, sample) {
        return Err(format!(
            "W-lookup ({family}): the lookup table disagrees with the linear scan"
        ));
    }
    if let Some(&(s, d)) = sample
        .iter()
        .find(|&&(s, d)| w.engine.lookup(s, d) != table.lookup(s, d))
    {
        return Err(format!(
            "W-lookup ({family}): Engine::lookup disagrees with the lookup table on {s} -> {d}"
        ));
    }
    let (engine, batched) =
        engine_lookup_ns(&w, sizes.lookup_time, &format!("W-lookup ({family})"))?;
    let before = thread_allocations();
    let standalone =
        measure::time_per_query(&w.queries, sizes.lookup_time, |s, d| table.lookup(s, d));
    let allocations = thread_allocations() - before;
    if allocations != 0 {
        return Err(format!(
            "W-lookup ({family}): the timed lookups allocated {allocations} times (must be 0)"
        ));
    }

    let (one_dependent_load, working_set) = if ipv6 {
        (None, None)
    } else {
        // The working set of lookups: the per-source record tables and the compact lists
        // (with their verdicts), not the tables only merges and plans read.
        let bytes = w.engine.memory().lookup;
        let ns = measure::dependent_load_ns(bytes, 5, sizes.lookup_time)?;
        (Some(ns), Some(bytes))
    };

    let scan = measure::time_per_query(
        &w.queries[..sizes.scan_queries],
        sizes.lookup_time / 4,
        |s, d| measure::linear_scan(&w.maps, local, s, d),
    );
    let kernel_trie = kernel_row(
        &format!("kernel_trie ({family})"),
        kernel::trie_lookup_ns(
            &mut w.engine,
            &w.queries[..sizes.kernel_queries],
            sizes.kernel_repeat,
        ),
    )?;
    let kernel_apply = if ipv6 {
        Value::Null
    } else {
        match kernel_row("kernel_apply", kernel::apply_ms(&mut w.engine))? {
            Some((ms, baseline)) => {
                json!({"entries": entries, "ms": round(ms, 1), "baseline_ms": round(baseline, 1)})
            }
            None => Value::Null,
        }
    };
    let mut row = json!({
        "engine": round(engine, 1),
        "engine_batched": round(batched, 1),
        "linear_scan": round(scan, 1),
        "kernel_trie": kernel_trie.map(|ns| round(ns, 1)),
    });
    if let Some(ns) = one_dependent_load {
        row["one_dependent_load"] = json!(round(ns, 1));
    }
    row["lookup_table"] = json!(round(standalone, 1));
    Ok(LookupFigures {
        json: row,
        engine,
        batched,
        kernel_trie,
        one_dependent_load,
        working_set,
        allocations,
        kernel_apply,
    })
}

/// `Engine::lookup` and `Engine::lookup_many` over the workload's queries (ns per query),
/// after checking on a sample that the batch answers as the single lookups do and that
/// neither allocates.
fn engine_lookup_ns(
    w: &workloads::LookupWorkload,
    time: Duration,
    what: &str,
) -> Result<(f64, f64)> {
    let sample = &w.queries[..w.queries.len().min(4_096)];
    measure::lookup_many_agrees(&w.engine, sample).map_err(|e| format!("{what}: {e}"))?;
    measure::engine_lookup_ns(&w.engine, &w.queries, time, &thread_allocations)
        .map_err(|e| format!("{what}: {e}"))
}

/// The kernel's LPM trie and the engine on the same key sets at every size (W-lookup's shape:
/// 4 entries per source; flows drawn from the map's sources and misses as in W-lookup): a
/// block keyed by entry count, then family; the kernel row `null` when BPF is unavailable.
fn kernel_trie_by_size(sizes: &Sizes) -> Result<Value> {
    let mut block = serde_json::Map::new();
    let mut table = Vec::new();
    for &entries in sizes.trie_sizes {
        let mut row = serde_json::Map::new();
        for ipv6 in [false, true] {
            let (name, family) = if ipv6 { ("v6", "IPv6") } else { ("v4", "IPv4") };
            let what = format!("kernel_trie_by_size {entries} {family}");
            let mut w = workloads::lookup(
                if ipv6 { 7 } else { 3 },
                entries / 4,
                sizes.kernel_queries,
                ipv6,
            );
            let held = w.maps.ipv4.len() + w.maps.ipv6.len();
            if held != entries {
                return Err(format!("{what}: the workload holds {held} entries"));
            }
            let (engine, batched) = engine_lookup_ns(&w, sizes.trie_size_time, &what)?;
            let kernel = kernel_row(
                &what,
                kernel::trie_lookup_ns(&mut w.engine, &w.queries, sizes.kernel_repeat),
            )?;
            let ratio = |ns: f64| kernel.map(|k| round(k / ns, 1));
            table.push(format!(
                "{entries:>9} {name}  kernel {:>7} ns  engine {:>6.1} ns ({}x)  lookup_many {:>6.1} ns ({}x)",
                kernel.map_or_else(|| "null".to_owned(), |k| format!("{k:.1}")),
                engine,
                ratio(engine).map_or_else(|| "null".to_owned(), |r| r.to_string()),
                batched,
                ratio(batched).map_or_else(|| "null".to_owned(), |r| r.to_string()),
            ));
            row.insert(
                name.to_owned(),
                json!({
                    "kernel_ns": kernel.map(|k| round(k, 1)),
                    "engine_ns": round(engine, 1),
                    "engine_batched_ns": round(batched, 1),
                    "kernel_per_engine": ratio(engine),
                    "kernel_per_engine_batched": ratio(batched),
                }),
            );
        }
        block.insert(entries.to_string(), Value::Object(row));
    }
    eprintln!(
        "kernel trie by size (in-kernel BPF_PROG_TEST_RUN over random flows; kernel / engine in parentheses; target >= 10x):"
    );
    for line in table {
        eprintln!("  {line}");
    }
    Ok(Value::Object(block))
}

/// W-k8s-limits: Kubernetes' documented limits (5,000 nodes, 150,000 pods in 2,000
/// deployments over 200 namespaces, 1,000 policies; --quick: a tenth). A fresh engine's load
/// time and live heap per entry (with `Engine::memory`'s breakdown); a 1,000-pod rollout
/// storm, with one plan and with a plan per event, each checked exact against a fresh engine
/// of the objects after it; lookups over the result, checked against each other and a lookup
/// table, with no allocations.
fn k8s_limits(sizes: &Sizes, workload: &k8s::K8sLimits) -> Result<Value> {
    let meters = k8s::Meters {
        live_bytes: &|| LIVE_BYTES.load(Ordering::Relaxed),
        thread_allocations: &thread_allocations,
        lookup_time: sizes.lookup_time,
    };
    let figures = k8s::measure(workload, &meters)?;
    for line in figures.summary() {
        eprintln!("{line}");
    }
    Ok(figures.json())
}

/// The compact layout against Cilium's, both filled in the kernel from the W-k8s-limits
/// objects (PERFORMANCE.md's `compact_layout`; `null` where BPF is unavailable): entries,
/// kernel memory, in-kernel decision time over the same random flows, map writes per new pod.
fn compact_layout(sizes: &Sizes, workload: &k8s::K8sLimits) -> Result<Value> {
    let figures = kernel_row(
        "compact_layout",
        egress_benches::compact_layout::measure(
            workload,
            sizes.kernel_queries,
            sizes.kernel_repeat,
            sizes.new_pods,
        ),
    )?;
    let Some(figures) = figures else {
        return Ok(Value::Null);
    };
    for line in figures.summary() {
        eprintln!("{line}");
    }
    Ok(figures.json())
}

/// `lookup / one dependent load` and `kernel / lookup`, in the JSON and as a human summary
/// on stderr.
fn ratios(v4: &LookupFigures, v6: &LookupFigures) -> Value {
    let ratio = |a: Option<f64>, b: f64| a.filter(|_| b > 0.0).map(|a| round(a / b, 2));
    let per_load = |ns: f64| v4.one_dependent_load.and_then(|load| ratio(Some(ns), load));
    let shown = |r: Option<f64>| r.map_or_else(|| "null".to_owned(), |r| format!("{r}"));
    eprintln!(
        "lookup v4: engine {:.1} ns, engine_batched {:.1} ns; one dependent load {} ns over {} KiB \
         (Engine::memory().lookup: the source records and compact lists lookups read)",
        v4.engine,
        v4.batched,
        shown(v4.one_dependent_load.map(|ns| round(ns, 1))),
        v4.working_set.unwrap_or(0) / 1024
    );
    eprintln!(
        "  lookup / one dependent load: {} (engine), {} (engine_batched)",
        shown(per_load(v4.engine)),
        shown(per_load(v4.batched))
    );
    for (name, f) in [("v4", v4), ("v6", v6)] {
        eprintln!(
            "lookup {name}: kernel / lookup: {} (engine), {} (engine_batched)",
            shown(ratio(f.kernel_trie, f.engine)),
            shown(ratio(f.kernel_trie, f.batched))
        );
    }
    json!({
        "v4_engine_per_one_dependent_load": per_load(v4.engine),
        "v4_engine_batched_per_one_dependent_load": per_load(v4.batched),
        "v4_kernel_trie_per_engine": ratio(v4.kernel_trie, v4.engine),
        "v4_kernel_trie_per_engine_batched": ratio(v4.kernel_trie, v4.batched),
        "v6_kernel_trie_per_engine": ratio(v6.kernel_trie, v6.engine),
        "v6_kernel_trie_per_engine_batched": ratio(v6.kernel_trie, v6.batched),
    })
}

/// W-cluster: one endpoint added and its plan taken, vs building the engine from scratch.
fn endpoint_event(sizes: &Sizes) -> Result<Value> {
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
    let plan = engine.take_plan().map_err(|e| format!("W-cluster: {e}"))?;
    engine.ack(&plan, plan.len()).map_err(|e| e.to_string())?;
    let mut total = Duration::ZERO;
    for i in 0..sizes.events {
        let ep = workloads::new_pod(i);
        let source = ep.ips[0];
        let start = Instant::now();
        let upserted = engine.upsert_endpoint(ep);
        let plan = engine.take_plan();
        total += start.elapsed();
        upserted.map_err(|e| format!("W-cluster event {i}: {e}"))?;
        let plan = plan.map_err(|e| format!("W-cluster event {i}: {e}"))?;
        let exact = plan.len() == 4
            && plan.ops().iter().all(|op| {
                op.action() == Action::Upsert && op.entry().is_some_and(|e| e.source == source)
            });
        if !exact {
            return Err(format!(
                "W-cluster event {i}: the plan holds {} operations, not exactly the new endpoint's 4 upserts",
                plan.len()
            ));
        }
        engine.ack(&plan, plan.len()).map_err(|e| e.to_string())?;
    }
    let event_us = total.as_secs_f64() * 1e6 / sizes.events as f64;
    Ok(json!({"engine": round(event_us, 2), "full_recompute": round(full_us, 0)}))
}

/// W-scale: build time and everything the engine holds per entry.
fn full_build(sizes: &Sizes) -> Result<Value> {
    let objects = workloads::scale(sizes.scale_endpoints);
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let start = Instant::now();
    let engine = objects.engine(Selection::Cilium, 1_048_576);
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let live = (LIVE_BYTES.load(Ordering::Relaxed) - before).max(0) as f64;
    let stats = engine.stats();
    let entries = stats.desired_v4 + stats.desired_v6;
    if entries != 4 * sizes.scale_endpoints {
        return Err(format!(
            "W-scale: {entries} entries, not 4 per endpoint ({})",
            4 * sizes.scale_endpoints
        ));
    }
    let memory = engine.memory();
    Ok(json!({
        "entries": entries,
        "ms": round(ms, 1),
        "bytes_per_entry": round(live / entries as f64, 1),
        "desired_state_bytes_per_entry": round(memory.desired_state as f64 / entries as f64, 1),
    }))
}

/// W-churn figures, both modes.
fn churn(sizes: &Sizes) -> Result<Value> {
    let (n, seeds) = (sizes.churn_endpoints, sizes.churn_seeds);
    let both = |f: &dyn Fn(Selection) -> f64| json!({"cilium": round(f(Selection::Cilium), 4), "consistent": round(f(Selection::Consistent), 4)});
    let mut remove = both(&|m| measure::churn_remove(m, 32, n, seeds));
    remove["ideal"] = json!(round(1.0 / 32.0, 5));
    let mut add = both(&|m| measure::churn_add(m, 8, n, seeds));
    add["ideal"] = json!(round(1.0 / 9.0, 4));
    let mut endpoint = both(&|m| measure::churn_add_endpoint(m, 8, n, seeds.min(3)));
    endpoint["ideal"] = json!(0);
    let balance = both(&|m| measure::balance(m, 32, n, seeds));
    let edits_in = |mode: Selection| {
        measure::operator_edits(mode, 32, n, sizes.edit_seeds, sizes.edit_positions)
            .map_err(|e| format!("operator edits ({mode:?} mode): {e}"))
    };
    let (cilium, consistent) = (
        edits_in(Selection::Cilium)?,
        edits_in(Selection::Consistent)?,
    );
    let mut edits = serde_json::Map::new();
    for ((edit, cilium), (_, consistent)) in cilium.into_iter().zip(consistent) {
        let (cilium, consistent) = (round(cilium, 4), round(consistent, 4));
        let ideal = round(edit.ideal(32), 5);
        eprintln!(
            "operator edit {} (N = 32): cilium {cilium}, consistent {consistent}, ideal {ideal}",
            edit.name()
        );
        edits.insert(
            edit.name().to_owned(),
            json!({"cilium": cilium, "consistent": consistent, "ideal": ideal}),
        );
    }
    Ok(json!({
        "remove_gateway_n32": remove,
        "add_gateway_n8": add,
        "add_endpoint": endpoint,
        "balance_n32": balance,
        "operator_edits_n32": edits,
    }))
}

/// The C ABI beside the Rust API: W-lookup IPv4 lookups (single and batched) on twin
/// engines, and the CNI ADD path (typed endpoint upsert + take_plan + ack) on twin W-cluster
/// engines, pod by pod alternately. Ratios are C ÷ Rust.
fn c_abi(sizes: &Sizes) -> Result<Value> {
    let w = workloads::lookup(3, 10_000, sizes.queries, false);
    let twin = CEngine::new(workloads::lookup(3, 10_000, 0, false).engine);
    let [rust, c, rust_batched, c_batched] =
        c_abi::lookup_v4_ns(&w.engine, &twin, &w.queries, sizes.lookup_time)?;
    drop((w, twin));

    let objects = workloads::cluster(11, 10_000, 100);
    let max_entries = (40_000 + 4 * sizes.events as u32).next_power_of_two();
    let acked = |mut engine: egress_core::engine::Engine| -> Result<_> {
        let plan = engine.take_plan().map_err(|e| format!("W-cluster: {e}"))?;
        engine.ack(&plan, plan.len()).map_err(|e| e.to_string())?;
        Ok(engine)
    };
    let rust_engine = acked(objects.engine(Selection::Cilium, max_entries))?;
    let c_engine = CEngine::new(acked(objects.engine(Selection::Cilium, max_entries))?);
    let pods: Vec<_> = (0..sizes.events).map(workloads::new_pod).collect();
    let (rust_add, c_add) = c_abi::cni_add_us(rust_engine, &c_engine, &pods)?;
    let ratio = |c: f64, rust: f64| round(c / rust, 2);
    eprintln!(
        "C ABI / Rust: lookup {:.2} (targets <= 1.3), batched {:.2}, CNI ADD {:.2} (target <= 1.5)",
        c / rust,
        c_batched / rust_batched,
        c_add / rust_add
    );
    Ok(json!({
        "lookup_v4_ns": {"engine": round(rust, 1), "c_abi": round(c, 1), "ratio": ratio(c, rust)},
        "lookup_v4_batched_ns": {"engine": round(rust_batched, 1), "c_abi": round(c_batched, 1), "ratio": ratio(c_batched, rust_batched)},
        "cni_add_us": {"rust": round(rust_add, 2), "c_abi": round(c_add, 2), "ratio": ratio(c_add, rust_add)},
    }))
}
