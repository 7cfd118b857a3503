//! The C ABI measured beside the Rust API it wraps, on the same workloads in the same run:
//! W-lookup lookups (single and batched) and the CNI ADD path (typed endpoint upsert, take
//! the plan into a caller array, ack). The exports are called through function pointers
//! hidden from the optimiser, so nothing is inlined across the boundary — as from C.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::ptr;
use std::time::{Duration, Instant};

use egress_core::cluster::Endpoint;
use egress_core::engine::{Action, Engine, Plan};
use egress_ffi::{
    egress_endpoint, egress_engine, egress_ip_addr, egress_label, egress_plan_op, egress_query_v4,
    egress_result, egress_verdict,
};

use crate::measure;

/// An engine handed to the C ABI, freed on drop.
pub struct CEngine(*mut egress_engine);

impl CEngine {
    /// Hands `engine` to the C ABI.
    pub fn new(engine: Engine) -> Self {
        Self(egress_engine::into_raw(engine))
    }
}

impl Drop for CEngine {
    fn drop(&mut self) {
        // SAFETY: made by `into_raw`, freed once.
        unsafe { egress_ffi::egress_engine_free(self.0) };
    }
}

type LookupV4 = unsafe extern "C" fn(
    *const egress_engine,
    *const u8,
    *const u8,
    *mut egress_verdict,
) -> egress_result;
type BatchV4 = unsafe extern "C" fn(
    *const egress_engine,
    *const egress_query_v4,
    usize,
    *mut egress_verdict,
) -> egress_result;

fn octets(ip: IpAddr) -> [u8; 4] {
    match ip {
        IpAddr::V4(v4) => v4.octets(),
        IpAddr::V6(_) => [0; 4],
    }
}

/// Lookup figures in ns per query: `Engine::lookup` and `egress_engine_lookup_v4`, then
/// `lookup_many` and `egress_engine_lookup_batch_v4` (batches of 256), on the same IPv4
/// queries of `rust` and a twin engine `c`. Every C verdict of a sample is checked against
/// the engine's first.
pub fn lookup_v4_ns(
    rust: &Engine,
    c: &CEngine,
    queries: &[(IpAddr, IpAddr)],
    min_time: Duration,
) -> Result<[f64; 4], String> {
    let bytes: Vec<egress_query_v4> = queries
        .iter()
        .map(|&(s, d)| egress_query_v4 {
            src: octets(s),
            dst: octets(d),
        })
        .collect();
    let single: LookupV4 = black_box(egress_ffi::egress_engine_lookup_v4);
    let batch: BatchV4 = black_box(egress_ffi::egress_engine_lookup_batch_v4);
    for (q, &(s, d)) in bytes.iter().zip(queries).take(10_000) {
        let mut v = egress_verdict::default();
        // SAFETY: a live engine, 4 bytes at each address, a verdict to write.
        let code = unsafe { single(c.0, q.src.as_ptr(), q.dst.as_ptr(), &mut v) };
        let want = egress_verdict::from(rust.lookup(s, d));
        if code != egress_result::Ok || v != want {
            return Err(format!(
                "C ABI lookup of {s} -> {d}: {code:?} {v:?}, the engine says {want:?}"
            ));
        }
    }
    let rust_single = measure::time_per_query(queries, min_time, |s, d| rust.lookup(s, d));
    let c_single = time_c(&bytes, min_time, |q| {
        let mut v = egress_verdict::default();
        // SAFETY: as above.
        unsafe { single(c.0, q.src.as_ptr(), q.dst.as_ptr(), &mut v) };
        black_box(&v);
    });
    let rust_batched =
        measure::time_per_query_batched(queries, min_time, |qs, out| rust.lookup_many(qs, out));
    let mut out = [egress_verdict::default(); 256];
    let mut rounds = 0u64;
    let start = Instant::now();
    loop {
        for chunk in bytes.chunks(256) {
            // SAFETY: `chunk.len()` queries in, as many verdicts out (≤ 256).
            unsafe {
                batch(
                    c.0,
                    black_box(chunk.as_ptr()),
                    chunk.len(),
                    out.as_mut_ptr(),
                )
            };
            black_box(&out);
        }
        rounds += 1;
        if start.elapsed() >= min_time {
            break;
        }
    }
    let c_batched = start.elapsed().as_nanos() as f64 / (rounds as f64 * bytes.len() as f64);
    Ok([rust_single, c_single, rust_batched, c_batched])
}

fn time_c(
    queries: &[egress_query_v4],
    min_time: Duration,
    mut f: impl FnMut(&egress_query_v4),
) -> f64 {
    let mut rounds = 0u64;
    let start = Instant::now();
    loop {
        for q in queries {
            f(black_box(q));
        }
        rounds += 1;
        if start.elapsed() >= min_time {
            break;
        }
    }
    start.elapsed().as_nanos() as f64 / (rounds as f64 * queries.len().max(1) as f64)
}

/// A plan operation as (action: 0 upsert / 1 delete, key bytes, value bytes).
type OpBytes = (u32, Vec<u8>, Vec<u8>);

/// What a CNI ADD knows of a pod, borrowed: both paths start from it.
struct Pod<'a> {
    uid: &'a str,
    namespace: &'a str,
    labels: Vec<(&'a str, &'a str)>,
    namespace_labels: Vec<(&'a str, &'a str)>,
    ip: Ipv4Addr,
    node: &'a str,
}

impl<'a> Pod<'a> {
    fn of(ep: &'a Endpoint) -> Self {
        let pairs = |m: &'a egress_core::labels::Labels| m.iter().collect();
        Pod {
            uid: &ep.uid,
            namespace: ep.namespace.as_deref().unwrap_or(""),
            labels: pairs(&ep.labels),
            namespace_labels: pairs(&ep.namespace_labels),
            ip: match ep.ips[0] {
                IpAddr::V4(v4) => v4,
                IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
            },
            node: ep.node.as_deref().unwrap_or(""),
        }
    }

    /// The Rust path: build the endpoint, upsert it, take the plan, acknowledge it; returns
    /// the plan.
    fn add_rust(&self, engine: &mut Engine) -> Result<Plan, String> {
        let owned = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        engine
            .upsert_endpoint(Endpoint {
                uid: self.uid.to_owned(),
                namespace: Some(self.namespace.to_owned()),
                labels: owned(&self.labels),
                namespace_labels: owned(&self.namespace_labels),
                ips: vec![IpAddr::V4(self.ip)],
                node: Some(self.node.to_owned()),
                ..Endpoint::default()
            })
            .map_err(|e| e.to_string())?;
        let plan = engine.take_plan().map_err(|e| e.to_string())?;
        engine.ack(&plan, plan.len()).map_err(|e| e.to_string())?;
        Ok(plan)
    }

    /// The C path: the typed struct, `take_plan` into a caller array, `ack`.
    fn add_c(&self, engine: &CEngine, ops: &mut [egress_plan_op]) -> Result<usize, String> {
        let label = |&(k, v): &(&str, &str)| egress_label {
            key: k.as_ptr(),
            key_len: k.len(),
            value: v.as_ptr(),
            value_len: v.len(),
        };
        let labels: [egress_label; 4] =
            std::array::from_fn(|i| self.labels.get(i).map_or(label(&("", "")), label));
        let ns_labels: [egress_label; 2] =
            std::array::from_fn(|i| self.namespace_labels.get(i).map_or(label(&("", "")), label));
        let ip = egress_ip_addr::from(IpAddr::V4(self.ip));
        let endpoint = egress_endpoint {
            uid: self.uid.as_ptr(),
            uid_len: self.uid.len(),
            namespace_name: self.namespace.as_ptr(),
            namespace_name_len: self.namespace.len(),
            labels: labels.as_ptr(),
            labels_len: self.labels.len().min(4),
            namespace_labels: ns_labels.as_ptr(),
            namespace_labels_len: self.namespace_labels.len().min(2),
            service_account: ptr::null(),
            service_account_len: 0,
            ips: &ip,
            ips_len: 1,
            node: self.node.as_ptr(),
            node_len: self.node.len(),
        };
        let mut count = 0;
        // SAFETY: a live engine with exclusive access; the struct's pointers live across the
        // calls; `ops` is writable for its length.
        let codes = unsafe {
            let upsert = black_box(egress_ffi::egress_engine_upsert_endpoint);
            let take = black_box(egress_ffi::egress_engine_take_plan);
            let ack = black_box(egress_ffi::egress_engine_ack);
            let a = upsert(engine.0, &endpoint, ptr::null_mut());
            let b = take(
                engine.0,
                ops.as_mut_ptr(),
                ops.len(),
                &mut count,
                ptr::null_mut(),
            );
            let c = ack(engine.0, count, ptr::null_mut());
            [a, b, c]
        };
        if codes.iter().any(|&c| c != egress_result::Ok) {
            return Err(format!("C ABI CNI ADD of {}: {codes:?}", self.uid));
        }
        Ok(count)
    }
}

/// The CNI ADD path, µs per pod: the Rust API and the C ABI, on twin engines of one cluster,
/// pod by pod alternately; every C plan is checked byte for byte against the Rust plan.
pub fn cni_add_us(mut rust: Engine, c: &CEngine, pods: &[Endpoint]) -> Result<(f64, f64), String> {
    if pods
        .iter()
        .any(|p| p.labels.len() > 4 || p.namespace_labels.len() > 2)
    {
        return Err("CNI ADD pods must have at most 4 labels and 2 namespace labels".to_owned());
    }
    let mut ops = [egress_plan_op::default(); 16];
    let (mut rust_time, mut c_time) = (Duration::ZERO, Duration::ZERO);
    for ep in pods {
        let pod = Pod::of(ep);
        let start = Instant::now();
        let plan = pod.add_rust(&mut rust)?;
        rust_time += start.elapsed();
        // Outside the timing, as the C side's conversion below: both sides time the same
        // work (build the endpoint, upsert it, take the plan, acknowledge it; the Rust plan
        // is dropped after the check, the C ABI's inside `ack`: one deallocation apart).
        let want: Vec<OpBytes> = plan
            .ops()
            .iter()
            .map(|op| {
                (
                    u32::from(op.action() == Action::Delete),
                    op.key().to_vec(),
                    op.value().to_vec(),
                )
            })
            .collect();
        let start = Instant::now();
        let count = pod.add_c(c, &mut ops)?;
        c_time += start.elapsed();
        let got: Vec<OpBytes> = ops[..count]
            .iter()
            .map(|op| {
                (
                    op.action,
                    op.key[..op.key_len as usize].to_vec(),
                    op.value[..op.value_len as usize].to_vec(),
                )
            })
            .collect();
        if got != want || want.is_empty() {
            return Err(format!(
                "CNI ADD of {}: the C plan ({} ops) differs from the Rust plan ({} ops), or is empty",
                ep.uid,
                got.len(),
                want.len()
            ));
        }
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / pods.len().max(1) as f64;
    Ok((per(rust_time), per(c_time)))
}
