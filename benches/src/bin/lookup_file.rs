//! `lookup_file SNAPSHOT QUERIES FAMILY MIN_MS`: the Rust side of the Python lookup
//! benchmark (`benches/python/lookup_many.py`). Loads the snapshot as every binding does
//! (`Engine::load_snapshot`), reads packed (source, destination) queries — 8 bytes each for
//! family 4, 32 for family 6 — and prints one JSON object: ns per query of
//! `Engine::lookup_many` (batches of 256) and `Engine::lookup`, and an FNV-1a-64 checksum of
//! every answer as the 28-byte records `lookup_many` of the Python module returns, so that the
//! caller can check both sides answered the same.

use std::net::IpAddr;
use std::time::Duration;

use egress_benches::measure;
use egress_core::engine::{Engine, EngineConfig};
use egress_core::lookup::VerdictRecord;

fn main() {
    if let Err(why) = run() {
        eprintln!("lookup_file: error: {why}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [snapshot, queries, family, min_ms] = args.as_slice() else {
        return Err("usage: lookup_file SNAPSHOT QUERIES FAMILY MIN_MS".to_owned());
    };
    let text = std::fs::read_to_string(snapshot).map_err(|e| format!("{snapshot}: {e}"))?;
    let config = EngineConfig {
        max_entries: 1 << 20,
        ..EngineConfig::new("")
    };
    let engine = Engine::load_snapshot(&text, None, "localNode", config)
        .map_err(|e| format!("{snapshot}: {e}"))?
        .engine;
    let bytes = std::fs::read(queries).map_err(|e| format!("{queries}: {e}"))?;
    let width = match family.as_str() {
        "4" => 4,
        "6" => 16,
        other => return Err(format!("family {other}: not 4 or 6")),
    };
    let ip = |b: &[u8]| -> IpAddr {
        match <[u8; 16]>::try_from(b) {
            Ok(v6) => IpAddr::from(v6),
            Err(_) => IpAddr::from([b[0], b[1], b[2], b[3]]),
        }
    };
    let pairs: Vec<(IpAddr, IpAddr)> = bytes
        .chunks_exact(2 * width)
        .map(|q| (ip(&q[..width]), ip(&q[width..])))
        .collect();
    let min_time = Duration::from_millis(min_ms.parse().map_err(|e| format!("MIN_MS: {e}"))?);

    let mut records = vec![VerdictRecord::NO_ENTRY; pairs.len()];
    engine.lookup_many_records(&pairs, &mut records);
    let mut checksum: u64 = 0xcbf2_9ce4_8422_2325;
    for r in &records {
        for b in r.encode() {
            checksum = (checksum ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    let many =
        measure::time_per_query_batched(&pairs, min_time, |qs, out| engine.lookup_many(qs, out));
    let single = measure::time_per_query(&pairs, min_time, |s, d| engine.lookup(s, d));
    let stats = engine.stats();
    println!(
        "{}",
        serde_json::json!({
            "queries": pairs.len(),
            "entries": stats.desired_v4 + stats.desired_v6,
            "lookup_many_ns": (many * 10.0).round() / 10.0,
            "lookup_ns": (single * 10.0).round() / 10.0,
            "checksum": format!("{checksum:016x}"),
        })
    );
    Ok(())
}
