//! The kernel rows: the LPM trie itself, timed in-kernel with `BPF_PROG_TEST_RUN`, and
//! plans written into fresh pinned tries. Every function tells apart "BPF is unavailable
//! here" (the report prints `null` and says why) from a failed measurement or check (the
//! report fails).

use std::fmt;
use std::net::IpAddr;
use std::process::Command;
use std::time::Instant;

use egress_bpf::EgressMaps;
use egress_bpf::bpffs::PrivateBpffs;
use egress_bpf::datapath::Datapath;
use egress_core::engine::Engine;
use egress_core::maps::Layout;

/// Queries whose kernel verdict is checked against `Engine::lookup` before timing.
pub const CHECKED_QUERIES: usize = 2_000;

/// Why a kernel row has no figure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelError {
    /// BPF is unavailable here: the kernel refuses it (not root, no bpffs) or the program
    /// cannot be built (no clang). The row is `null`; the reason goes to stderr.
    Unavailable(String),
    /// The measurement ran and failed, or a check of it failed (the kernel disagrees with
    /// the engine, a trie does not hold what was written): the report fails.
    Failed(String),
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::Unavailable(why) => write!(f, "BPF unavailable: {why}"),
            KernelError::Failed(why) => write!(f, "{why}"),
        }
    }
}

/// A failed kernel step, said with its context.
pub(crate) fn failed(context: &str) -> impl Fn(egress_bpf::Error) -> KernelError + '_ {
    move |e| KernelError::Failed(format!("{context}: {e}"))
}

/// A private bpffs for one measurement; a refused mount means BPF is unavailable.
pub fn bpffs() -> Result<PrivateBpffs, KernelError> {
    PrivateBpffs::new().map_err(KernelError::Unavailable)
}

/// Fresh `_v4_v2` maps in `dir` of the engine's capacity ([`create_maps`]).
fn fresh_maps(dir: &std::path::Path, engine: &Engine) -> Result<EgressMaps, KernelError> {
    create_maps(dir, Layout::V4V2, engine.config().max_entries)
}

/// Maps of `layout` with `capacity` in `dir`, created; the kernel refusing to create them
/// for lack of privilege means BPF is unavailable, any other failure is one.
pub fn create_maps(
    dir: &std::path::Path,
    layout: Layout,
    capacity: u32,
) -> Result<EgressMaps, KernelError> {
    EgressMaps::open_or_create(dir, layout, Some(capacity)).map_err(|e| {
        if e.errno().is_some_and(|errno| errno.is_permission()) {
            KernelError::Unavailable(format!("create {layout} maps: {e}"))
        } else {
            KernelError::Failed(format!("create {layout} maps: {e}"))
        }
    })
}

/// Whether the BPF program can be built here (clang runs at all).
pub fn clang_available() -> Result<(), KernelError> {
    match Command::new("clang").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(KernelError::Unavailable(format!(
            "clang --version exited with {}",
            out.status
        ))),
        Err(e) => Err(KernelError::Unavailable(format!("cannot run clang: {e}"))),
    }
}

/// Checks that the maps hold exactly the engine's desired entries.
pub(crate) fn check_holds_desired(maps: &EgressMaps, engine: &Engine) -> Result<(), KernelError> {
    let dumped = maps.dump().map_err(failed("dump the maps"))?;
    if dumped != engine.entries() {
        return Err(KernelError::Failed(format!(
            "the {} maps hold {} IPv4 + {} IPv6 entries that differ from the engine's {} + {}",
            maps.layout(),
            dumped.ipv4.len(),
            dumped.ipv6.len(),
            engine.stats().desired_v4,
            engine.stats().desired_v6
        )));
    }
    Ok(())
}

/// Programs `engine` into fresh tries and returns the in-kernel time of one trie lookup
/// (ns) over `queries`, after checking that the tries hold the engine's entries and that the
/// kernel's verdicts equal `Engine::lookup`'s on the first [`CHECKED_QUERIES`] queries.
pub fn trie_lookup_ns(
    engine: &mut Engine,
    queries: &[(IpAddr, IpAddr)],
    repeat: u32,
) -> Result<f64, KernelError> {
    let fs = bpffs()?;
    let maps = fresh_maps(&fs.path().join("lookup"), engine)?;
    clang_available()?;
    engine
        .adopt(std::iter::empty())
        .map_err(|e| KernelError::Failed(format!("adopt empty maps: {e}")))?;
    maps.program(engine)
        .map_err(failed("program the engine's plan"))?;
    check_holds_desired(&maps, engine)?;
    let build = std::env::temp_dir().join(format!("egress-report-{}", std::process::id()));
    std::fs::create_dir_all(&build)
        .map_err(|e| KernelError::Failed(format!("{}: {e}", build.display())))?;
    let datapath = Datapath::load(&maps, engine.local_ipv4(), &build);
    let _ = std::fs::remove_dir_all(&build);
    let datapath = datapath.map_err(failed("load the datapath program"))?;
    for &(s, d) in queries.iter().take(CHECKED_QUERIES) {
        let kernel = datapath
            .verdict(s, d)
            .map_err(failed("run the datapath program"))?;
        let engine_verdict = engine.lookup(s, d);
        if kernel != engine_verdict {
            return Err(KernelError::Failed(format!(
                "the kernel's verdict for {s} -> {d} is {kernel:?}, Engine::lookup's {engine_verdict:?}"
            )));
        }
    }
    let ns = datapath
        .lookup_ns(queries, repeat)
        .map_err(failed("time the trie lookups"))?;
    // `lookup_ns` clamps at zero: a lookup loop no slower than the empty loop measured noise.
    if ns <= 0.0 || !ns.is_finite() {
        return Err(KernelError::Failed(format!(
            "the in-kernel lookup time came out as {ns} ns (lookups no slower than the empty loop)"
        )));
    }
    Ok(ns)
}

/// Writes all of `engine`'s entries into a fresh trie with batch syscalls, then into another
/// with one syscall per entry; returns both times in ms. Each trie must then hold exactly
/// the engine's entries.
pub fn apply_ms(engine: &mut Engine) -> Result<(f64, f64), KernelError> {
    let fs = bpffs()?;
    let mut times = [0f64; 2];
    for (i, batching) in [true, false].into_iter().enumerate() {
        let dir = fs.path().join(if batching { "batch" } else { "single" });
        let maps = fresh_maps(&dir, engine)?;
        maps.set_batching(batching);
        engine
            .adopt(std::iter::empty())
            .map_err(|e| KernelError::Failed(format!("adopt empty maps: {e}")))?;
        let plan = engine
            .take_plan()
            .map_err(|e| KernelError::Failed(format!("take the plan: {e}")))?;
        let start = Instant::now();
        let written = maps
            .apply(&plan)
            .map_err(|e| KernelError::Failed(format!("apply the plan: {e}")))?;
        times[i] = start.elapsed().as_secs_f64() * 1e3;
        engine
            .ack(&plan, written)
            .map_err(|e| KernelError::Failed(format!("acknowledge the plan: {e}")))?;
        if written != plan.len() {
            return Err(KernelError::Failed(format!(
                "apply wrote {written} of the plan's {} operations",
                plan.len()
            )));
        }
        check_holds_desired(&maps, engine)?;
    }
    Ok((times[0], times[1]))
}
