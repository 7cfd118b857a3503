//! The compact layout against Cilium's at Kubernetes' scale (issue 27; PERFORMANCE.md's
//! `compact_layout` row): both layouts filled in the kernel by their engines' plans from the
//! W-k8s-limits objects; the maps' memory as the kernel accounts it; each layout's decision
//! timed in-kernel with `BPF_PROG_TEST_RUN` over the same random flows (after checking, on a
//! sample, that both kernels' verdicts equal `Engine::lookup`'s); and the map writes each
//! new pod of a rollout costs, delivered through the public path (an endpoint event, the
//! plan programmed into the maps).

use std::net::IpAddr;
use std::time::Instant;

use egress_bpf::EgressMaps;
use egress_bpf::datapath::Datapath;
use egress_core::compact::CompactMaps;
use egress_core::engine::{Engine, EngineConfig};
use egress_core::gateway::Selection;
use egress_core::maps::Layout;

use crate::k8s::{self, K8sLimits, RolloutEvent};
use crate::kernel::{self, CHECKED_QUERIES, KernelError, failed};

/// What [`measure`] found.
#[derive(Clone, Debug)]
pub struct CompactFigures {
    /// Entries of Cilium's layout (one per endpoint IP and CIDR).
    pub entries_cilium: usize,
    /// Elements of the compact layout: endpoints, and rules of the sets.
    pub elements_compact: usize,
    /// Sets.
    pub sets: usize,
    /// The maps' memory as the kernel accounts it (fdinfo `memlock`), both layouts.
    pub bytes_cilium: u64,
    /// The compact layout's, summed over its four maps.
    pub bytes_compact: u64,
    /// Each compact map's name, elements and bytes.
    pub compact_maps: Vec<(&'static str, usize, u64)>,
    /// The maps' capacity (`max_entries`) each layout was created with.
    pub capacity: (u32, u32),
    /// Mean in-kernel ns of one decision's lookups: one trie lookup (Cilium's), the hash
    /// and then the trie (compact), each the median of its rounds.
    pub decision_ns: (f64, f64),
    /// Every round's figures, interleaved Cilium, compact.
    pub decision_rounds: Vec<(f64, f64)>,
    /// Flows timed, and flows whose three verdicts were compared.
    pub flows: (usize, usize),
    /// Map writes of each new pod that policies select (one plan programmed per pod),
    /// both layouts; pods no policy selects write nothing in either.
    pub writes: (Vec<usize>, Vec<usize>),
    /// New pods no policy selects (no writes in either layout).
    pub unselected_pods: usize,
    /// Seconds each layout's first plan took to write into the kernel.
    pub fill_s: (f64, f64),
}

/// Rounds of the decision timing, alternating the layouts.
const ROUNDS: usize = 3;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Programs `engine` into `maps` (its first plan: everything), checks that the maps read
/// back are its entries, and returns the seconds the write took.
fn fill(maps: &EgressMaps, engine: &mut Engine) -> Result<f64, KernelError> {
    let start = Instant::now();
    maps.program(engine)
        .map_err(failed("program the engine's plan"))?;
    let seconds = start.elapsed().as_secs_f64();
    kernel::check_holds_desired(maps, engine)?;
    Ok(seconds)
}

/// Measures both layouts filled from `workload`: `flows` random flows timed `repeat` times
/// per batch, and the first `new_pods` new pods of a rollout.
pub fn measure(
    workload: &K8sLimits,
    flows: usize,
    repeat: u32,
    new_pods: usize,
) -> Result<CompactFigures, KernelError> {
    let fs = kernel::bpffs()?;
    kernel::clang_available()?;
    let mut cilium = workload.engine();
    let entries = cilium.entries();
    let form = CompactMaps::from_entries(&entries);
    // The compact maps sized as Cilium's are: the power of two that holds the largest map
    // (endpoint blocks or rules) with the rollout's new pods (at most one block each). A
    // hash's buckets follow its capacity; a trie's memory does not.
    let largest = form.blocks().len().max(form.rules.len()) + new_pods;
    let compact_capacity = u32::try_from(largest.next_power_of_two())
        .map_err(|_| KernelError::Failed(format!("{largest} elements")))?;
    let config = EngineConfig {
        layout: Layout::Compact,
        ..workload.objects.config(Selection::Cilium, compact_capacity)
    };
    let mut compact = workload.objects.engine_with(config);
    if compact.entries() != entries {
        return Err(KernelError::Failed(
            "the compact layout's engine computed other entries than Cilium's".into(),
        ));
    }
    let cilium_maps = kernel::create_maps(
        &fs.path().join("cilium"),
        Layout::V4V2,
        workload.max_entries,
    )?;
    let compact_maps = kernel::create_maps(
        &fs.path().join("compact"),
        Layout::Compact,
        compact_capacity,
    )?;
    let fill_cilium = fill(&cilium_maps, &mut cilium)?;
    let fill_compact = fill(&compact_maps, &mut compact)?;
    let (elements, unreadable) = compact_maps
        .compact_elements()
        .map_err(failed("read the compact maps"))?;
    if !unreadable.is_empty() || elements.len() != form.entry_count() {
        return Err(KernelError::Failed(format!(
            "the compact maps hold {} elements ({} unreadable), the compact form {}",
            elements.len(),
            unreadable.len(),
            form.entry_count()
        )));
    }
    let bytes_cilium = cilium_maps
        .memory_bytes()
        .map_err(failed("read the memory"))?;
    let bytes_compact = compact_maps
        .memory_bytes()
        .map_err(failed("read the memory"))?;
    let compact_per_map = Layout::Compact
        .maps()
        .iter()
        .map(|&id| {
            let held = elements.iter().filter(|e| e.map() == id).count();
            let bytes = compact_maps
                .map(id)
                .map_or(Ok(0), |m| m.memory_bytes())
                .map_err(failed("read the memory"))?;
            Ok((id.name(), held, bytes))
        })
        .collect::<Result<Vec<_>, KernelError>>()?;

    // The decision, both layouts, on the same flows.
    let queries = k8s::lookup_queries(workload.seed, &workload.objects, &entries, flows);
    let build = std::env::temp_dir().join(format!("egress-compact-{}", std::process::id()));
    std::fs::create_dir_all(&build)
        .map_err(|e| KernelError::Failed(format!("{}: {e}", build.display())))?;
    let loaded = Datapath::load(&cilium_maps, cilium.local_ipv4(), &build)
        .and_then(|c| Datapath::load(&compact_maps, compact.local_ipv4(), &build).map(|k| (c, k)));
    let _ = std::fs::remove_dir_all(&build);
    let (cilium_path, compact_path) = loaded.map_err(failed("load the datapath program"))?;
    let check = |flows: &[(IpAddr, IpAddr)], engine: &Engine| -> Result<(), KernelError> {
        for &(s, d) in flows {
            let want = engine.lookup(s, d);
            let run = |path: &Datapath| path.verdict(s, d).map_err(failed("run the program"));
            let (c, k) = (run(&cilium_path)?, run(&compact_path)?);
            if c != want || k != want {
                return Err(KernelError::Failed(format!(
                    "{s} -> {d}: Cilium's maps say {c:?}, the compact maps {k:?}, Engine::lookup {want:?}"
                )));
            }
        }
        Ok(())
    };
    let checked = queries.len().min(CHECKED_QUERIES);
    check(&queries[..checked], &cilium)?;
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let time = |path: &Datapath| {
            path.lookup_ns(&queries, repeat)
                .map_err(failed("time the decisions"))
        };
        let (c, k) = (time(&cilium_path)?, time(&compact_path)?);
        if c <= 0.0 || k <= 0.0 || !c.is_finite() || !k.is_finite() {
            return Err(KernelError::Failed(format!(
                "a decision time came out as {c} / {k} ns (no slower than the empty loop)"
            )));
        }
        rounds.push((c, k));
    }

    // New pods through the public path: each one an endpoint event, its plan programmed.
    let rollout = workload.rollout(new_pods);
    let mut writes = (Vec::new(), Vec::new());
    let mut unselected_pods = 0;
    for event in &rollout.events {
        let RolloutEvent::Add(pod) = event else {
            continue;
        };
        let mut written = [0; 2];
        for (i, (engine, maps)) in [(&mut cilium, &cilium_maps), (&mut compact, &compact_maps)]
            .into_iter()
            .enumerate()
        {
            engine
                .upsert_endpoint(pod.clone())
                .map_err(|e| KernelError::Failed(format!("a new pod refused: {e}")))?;
            let plan = maps.program(engine).map_err(failed("program a new pod"))?;
            written[i] = plan.len();
        }
        match written {
            [0, 0] => unselected_pods += 1,
            [0, _] | [_, 0] => {
                return Err(KernelError::Failed(format!(
                    "a new pod wrote {} operations in Cilium's layout and {} in the compact one",
                    written[0], written[1]
                )));
            }
            [c, k] => {
                writes.0.push(c);
                writes.1.push(k);
            }
        }
        // The new pod decides alike in both kernels: towards destinations of random
        // entries (some of them its own CIDRs) and anywhere.
        if let Some(&ip) = pod.ips.first() {
            let mut rng = crate::workloads::Rng::new(writes.0.len() as u64);
            let flows: Vec<(IpAddr, IpAddr)> = (0..4)
                .map(|i| {
                    let e = &entries.ipv4[rng.below(entries.ipv4.len() as u64) as usize];
                    let dst = if i < 3 {
                        e.destination.addr
                    } else {
                        IpAddr::V4(std::net::Ipv4Addr::from(rng.next_u64() as u32))
                    };
                    (ip, dst)
                })
                .collect();
            check(&flows, &cilium)?;
        }
    }
    // The compact maps, written pod by pod, hold what the engine wants.
    kernel::check_holds_desired(&compact_maps, &compact)?;
    Ok(CompactFigures {
        entries_cilium: entries.len(),
        elements_compact: elements.len(),
        sets: form.sets(),
        bytes_cilium,
        bytes_compact,
        compact_maps: compact_per_map,
        capacity: (workload.max_entries, compact_capacity),
        decision_ns: (
            median(rounds.iter().map(|r| r.0).collect()),
            median(rounds.iter().map(|r| r.1).collect()),
        ),
        decision_rounds: rounds,
        flows: (queries.len(), checked),
        writes,
        unselected_pods,
        fill_s: (fill_cilium, fill_compact),
    })
}

fn mean(xs: &[usize]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.iter().sum::<usize>() as f64 / xs.len() as f64
}

impl CompactFigures {
    /// The report's `compact_layout` block (PERFORMANCE.md), with the ratios.
    pub fn json(&self) -> serde_json::Value {
        let round = |x: f64, d: i32| (x * 10f64.powi(d)).round() / 10f64.powi(d);
        serde_json::json!({
            "entries_cilium": self.entries_cilium,
            "bytes_cilium": self.bytes_cilium,
            "bytes_compact": self.bytes_compact,
            "decision_ns_cilium": round(self.decision_ns.0, 1),
            "decision_ns_compact": round(self.decision_ns.1, 1),
            "writes_per_endpoint_cilium": round(mean(&self.writes.0), 2),
            "writes_per_endpoint_compact": round(mean(&self.writes.1), 2),
            "elements_compact": self.elements_compact,
            "sets": self.sets,
            "bytes_compact_per_cilium": round(self.bytes_compact as f64 / self.bytes_cilium as f64, 4),
            "decision_compact_per_cilium": round(self.decision_ns.1 / self.decision_ns.0, 3),
            "new_endpoints": self.writes.1.len(),
            "new_endpoints_unselected": self.unselected_pods,
        })
    }

    /// The human summary for stderr: every figure with its target, the per-map memory, the
    /// rounds and the write counts' spread.
    pub fn summary(&self) -> Vec<String> {
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let one = self.writes.1.iter().filter(|&&w| w == 1).count();
        let mut lines = vec![
            format!(
                "compact layout (W-k8s-limits selections; kernel memory = fdinfo memlock, the kernel's own map accounting; decisions in-kernel via BPF_PROG_TEST_RUN over {} random flows, {} checked against Engine::lookup in both kernels):",
                self.flows.0, self.flows.1
            ),
            format!(
                "  entries: Cilium {} ; compact {} elements in {} sets (capacity {} / {})",
                self.entries_cilium,
                self.elements_compact,
                self.sets,
                self.capacity.0,
                self.capacity.1
            ),
            format!(
                "  kernel memory: Cilium {:.1} MiB, compact {:.1} MiB = {:.3} of Cilium's (target <= 0.1)",
                mib(self.bytes_cilium),
                mib(self.bytes_compact),
                self.bytes_compact as f64 / self.bytes_cilium as f64
            ),
        ];
        for (name, held, bytes) in &self.compact_maps {
            lines.push(format!(
                "    {name}: {held} elements, {:.2} MiB",
                mib(*bytes)
            ));
        }
        lines.push(format!(
            "  decision: Cilium {:.1} ns (one trie lookup), compact {:.1} ns (hash + trie) = {:.2} of Cilium's (target <= 0.5); rounds {}",
            self.decision_ns.0,
            self.decision_ns.1,
            self.decision_ns.1 / self.decision_ns.0,
            self.decision_rounds
                .iter()
                .map(|(c, k)| format!("{c:.0}/{k:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        lines.push(format!(
            "  map writes per new pod ({} new pods of a rollout that policies select, each an endpoint event programmed; {} others selected by none wrote nothing in either): Cilium mean {:.2} (max {}), compact mean {:.2} (max {}; {} of {} took one write; target 1)",
            self.writes.0.len(),
            self.unselected_pods,
            mean(&self.writes.0),
            self.writes.0.iter().max().unwrap_or(&0),
            mean(&self.writes.1),
            self.writes.1.iter().max().unwrap_or(&0),
            one,
            self.writes.1.len()
        ));
        lines.push(format!(
            "  first fill: Cilium {:.2} s, compact {:.2} s",
            self.fill_s.0, self.fill_s.1
        ));
        lines
    }
}
