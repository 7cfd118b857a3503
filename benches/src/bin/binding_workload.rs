//! `binding_workload OUT_DIR [--quick]`: the workload of the Go benchmarks
//! (`bindings/go/bench_test.go`, run by `scripts/bench-go.sh`), and the Rust and C ABI
//! figures on it, measured in the same run.
//!
//! W-cluster (10,000 endpoints, 100 policies, 50 nodes; the local node a gateway) written
//! through the public snapshot format, so that Go loads it with `FromSnapshot` as a user
//! would; the file is loaded back with `Engine::load_snapshot` and must give exactly the
//! entries of the engine fed the objects directly. Written to OUT_DIR:
//! - `cluster.json`: the snapshot;
//! - `queries.v4`: packed IPv4 (source, destination) queries, 8 bytes each: 90 % from known
//!   endpoints, destinations spread over the policies' destination and excluded CIDRs and
//!   the rest of the Internet;
//! - `pods.json`: the pods a CNI ADD brings (`workloads::new_pod`), each with the number of
//!   operations its plan holds;
//! - `expected.json`: `max_entries` of the engines and the FNV-1a-64 checksum (hex) of every
//!   query's answer as the 28-byte verdict records.
//!
//! Prints one JSON object: ns per IPv4 lookup through `Engine::lookup` and
//! `egress_engine_lookup_v4` (called through a function pointer, as from C), the same
//! batched (`lookup_many`, `egress_engine_lookup_batch_v4`, 256 per call), µs per CNI ADD
//! (typed endpoint upsert, take the plan, ack) through the Rust API and the C ABI.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use egress_benches::c_abi::{self, CEngine};
use egress_benches::snapshot_out::snapshot_json;
use egress_benches::workloads::{self, Rng};
use egress_core::engine::{Engine, EngineConfig};
use egress_core::gateway::Selection;
use egress_core::render::json_text;
use serde_json::json;

fn main() {
    if let Err(why) = run() {
        eprintln!("binding_workload: error: {why}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, quick) = match args.as_slice() {
        [dir] => (dir, false),
        [dir, flag] if flag == "--quick" => (dir, true),
        _ => return Err("usage: binding_workload OUT_DIR [--quick]".to_owned()),
    };
    let dir = Path::new(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))
    };
    let (queries, pods, min_time) = if quick {
        (20_000, 500, Duration::from_millis(200))
    } else {
        (200_000, 20_000, Duration::from_secs(2))
    };

    let objects = workloads::cluster(11, 10_000, 100);
    let max_entries = (40_000 + 4 * pods as u32).next_power_of_two();
    let text = json_text(&snapshot_json(&objects)?);
    write("cluster.json", text.as_bytes())?;
    let config = EngineConfig {
        max_entries,
        ..EngineConfig::new("")
    };
    let load = || -> Result<Engine, String> {
        let loaded = Engine::load_snapshot(&text, None, "localNode", config.clone())
            .map_err(|e| format!("cluster.json: {e}"))?;
        if !loaded.invalid_policies.is_empty() {
            return Err(format!(
                "cluster.json: {} invalid policies",
                loaded.invalid_policies.len()
            ));
        }
        Ok(loaded.engine)
    };
    let rust = load()?;
    let direct = objects.engine(Selection::Cilium, max_entries);
    if rust.entries_v4() != direct.entries_v4() || rust.entries_v6() != direct.entries_v6() {
        return Err("cluster.json loads into other entries than the objects give".to_owned());
    }
    drop(direct);
    let entries = rust.entries_v4().len();

    // Queries.
    let mut rng = Rng::new(29);
    let endpoint_ips: Vec<IpAddr> = objects
        .endpoints
        .iter()
        .flat_map(|e| e.ips.clone())
        .collect();
    let mut pairs = Vec::with_capacity(queries);
    let mut packed = Vec::with_capacity(queries * 8);
    for _ in 0..queries {
        let src = if rng.below(10) < 9 {
            endpoint_ips[rng.below(endpoint_ips.len() as u64) as usize]
        } else {
            IpAddr::V4(Ipv4Addr::from(rng.next_u64() as u32))
        };
        let host = rng.next_u64() as u32;
        let dst = Ipv4Addr::from(match rng.below(4) {
            0 => 0x6400_0000 | (rng.below(250) as u32) << 16 | (host & 0xffff), // 100.p.0.0/16
            1 => 0x0a00_0000 | (host & 0x00ff_ffff),                            // 10.0.0.0/8
            2 => 0xac10_0000 | (host & 0x000f_ffff),                            // 172.16.0.0/12
            _ => host,
        });
        let IpAddr::V4(s) = src else { unreachable!() };
        packed.extend_from_slice(&s.octets());
        packed.extend_from_slice(&dst.octets());
        pairs.push((src, IpAddr::V4(dst)));
    }
    write("queries.v4", &packed)?;
    let mut checksum: u64 = 0xcbf2_9ce4_8422_2325;
    for &(s, d) in &pairs {
        for b in rust.lookup_record(s, d).encode() {
            checksum = (checksum ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    let kinds = pairs
        .iter()
        .map(|&(s, d)| rust.lookup_record(s, d).kind as u32)
        .fold([0usize; 6], |mut n, k| {
            n[k as usize] += 1;
            n
        });

    // Pods, and the size of each one's plan on an engine that programmed the cluster first.
    let pods: Vec<_> = (0..pods).map(workloads::new_pod).collect();
    let acked = |mut engine: Engine| -> Result<Engine, String> {
        let plan = engine.take_plan().map_err(|e| e.to_string())?;
        engine.ack(&plan, plan.len()).map_err(|e| e.to_string())?;
        Ok(engine)
    };
    let mut counter = acked(load()?)?;
    let mut pod_docs = Vec::with_capacity(pods.len());
    for pod in &pods {
        counter
            .upsert_endpoint(pod.clone())
            .map_err(|e| e.to_string())?;
        let plan = counter.take_plan().map_err(|e| e.to_string())?;
        counter.ack(&plan, plan.len()).map_err(|e| e.to_string())?;
        if plan.is_empty() {
            return Err(format!("pod {}: an empty plan", pod.uid));
        }
        pod_docs.push(json!({
            "uid": pod.uid,
            "namespace": pod.namespace,
            "labels": pod.labels,
            "namespaceLabels": pod.namespace_labels,
            "ips": pod.ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "node": pod.node,
            "ops": plan.len(),
        }));
    }
    drop(counter);
    write("pods.json", json_text(&json!(pod_docs)).as_bytes())?;
    write(
        "expected.json",
        json_text(&json!({
            "max_entries": max_entries,
            "lookup_checksum": format!("{checksum:016x}"),
        }))
        .as_bytes(),
    )?;

    // The figures: Rust and C on twin engines loaded from the file.
    let twin = CEngine::new(load()?);
    let [rust_ns, c_ns, rust_batched, c_batched] =
        c_abi::lookup_v4_ns(&rust, &twin, &pairs, min_time)?;
    drop(twin);
    let (rust_add, c_add) = c_abi::cni_add_us(acked(rust)?, &CEngine::new(acked(load()?)?), &pods)?;
    let figures = json!({
        "workload": "W-cluster (10,000 endpoints, 100 policies) as a snapshot",
        "entries_v4": entries,
        "queries": queries,
        "query_kinds": {"no_entry": kinds[0], "drop_no_gateway": kinds[1], "drop_no_egress_ip": kinds[2],
                        "excluded": kinds[3], "forward": kinds[4], "masquerade": kinds[5]},
        "pods": pods.len(),
        "lookup_v4_ns": {"rust": round(rust_ns), "c_abi": round(c_ns)},
        "lookup_v4_batched_ns": {"rust": round(rust_batched), "c_abi": round(c_batched)},
        "cni_add_us": {"rust": round(rust_add), "c_abi": round(c_add)},
    });
    println!("{}", json_text(&figures));
    Ok(())
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
