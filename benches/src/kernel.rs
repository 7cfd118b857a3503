//! The kernel rows: the LPM trie itself, timed in-kernel with `BPF_PROG_TEST_RUN`, and
//! plans written into fresh pinned tries. Every function returns why it could not measure
//! (no BPF here, clang missing, ...) instead of a number; the report prints `null` then.

use std::net::IpAddr;
use std::time::Instant;

use egress_bpf::EgressMaps;
use egress_bpf::bpffs::PrivateBpffs;
use egress_bpf::datapath::Datapath;
use egress_core::engine::Engine;
use egress_core::maps::Layout;

/// Capacity of the W-lookup tries (PERFORMANCE.md).
pub const LOOKUP_MAX_ENTRIES: u32 = 65_536;

/// A private bpffs for one measurement.
pub fn bpffs() -> Result<PrivateBpffs, String> {
    PrivateBpffs::new()
}

/// Programs `engine` into fresh tries and returns the in-kernel time of one trie lookup
/// (ns) over `queries`, after checking the kernel's verdicts against `Engine::lookup` on a
/// sample.
pub fn trie_lookup_ns(
    engine: &mut Engine,
    queries: &[(IpAddr, IpAddr)],
    repeat: u32,
) -> Result<f64, String> {
    let fs = bpffs()?;
    let maps = EgressMaps::open_or_create(
        &fs.path().join("lookup"),
        Layout::V4V2,
        Some(LOOKUP_MAX_ENTRIES),
    )
    .map_err(|e| e.to_string())?;
    engine.adopt(std::iter::empty());
    maps.program(engine).map_err(|e| e.to_string())?;
    let work = fs.path().to_owned();
    let build = std::env::temp_dir().join(format!("egress-report-{}", std::process::id()));
    std::fs::create_dir_all(&build).map_err(|e| e.to_string())?;
    let datapath = Datapath::load(&maps, engine.local_ipv4(), &build).map_err(|e| e.to_string());
    let _ = std::fs::remove_dir_all(&build);
    let datapath = datapath?;
    for &(s, d) in queries.iter().take(2_000) {
        let kernel = datapath.verdict(s, d).map_err(|e| e.to_string())?;
        if kernel != engine.lookup(s, d) {
            return Err(format!(
                "the kernel's verdict for {s} -> {d} differs from Engine::lookup's"
            ));
        }
    }
    drop(work);
    datapath
        .lookup_ns(queries, repeat)
        .map_err(|e| e.to_string())
}

/// Writes all of `engine`'s entries into a fresh trie with batch syscalls, then into another
/// with one syscall per entry; returns both times in ms.
pub fn apply_ms(engine: &mut Engine) -> Result<(f64, f64), String> {
    let fs = bpffs()?;
    let mut times = [0f64; 2];
    for (i, batching) in [true, false].into_iter().enumerate() {
        let dir = fs.path().join(if batching { "batch" } else { "single" });
        let maps = EgressMaps::open_or_create(&dir, Layout::V4V2, Some(LOOKUP_MAX_ENTRIES))
            .map_err(|e| e.to_string())?;
        maps.set_batching(batching);
        engine.adopt(std::iter::empty());
        let plan = engine.take_plan().map_err(|e| e.to_string())?;
        let start = Instant::now();
        let written = maps.apply(&plan).map_err(|e| e.to_string())?;
        times[i] = start.elapsed().as_secs_f64() * 1e3;
        engine.ack(&plan, written);
        if maps.dump().map_err(|e| e.to_string())?.len() != plan.len() {
            return Err("the trie does not hold the plan's entries".to_owned());
        }
    }
    Ok((times[0], times[1]))
}
