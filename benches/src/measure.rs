//! Measurements shared by the criterion benches and the report binary.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use egress_core::entries::MapEntries;
use egress_core::gateway::{self, ResolvedGateway};
use egress_core::lookup::{LookupTable, Verdict};

use crate::workloads::Rng;

/// Mean time per query of `lookup` over `queries`, repeated until at least `min_time`.
pub fn time_per_query(
    queries: &[(IpAddr, IpAddr)],
    min_time: Duration,
    mut lookup: impl FnMut(IpAddr, IpAddr) -> Verdict,
) -> f64 {
    let mut rounds = 0u64;
    let start = Instant::now();
    loop {
        for &(s, d) in queries {
            black_box(lookup(black_box(s), black_box(d)));
        }
        rounds += 1;
        if start.elapsed() >= min_time {
            break;
        }
    }
    start.elapsed().as_nanos() as f64 / (rounds as f64 * queries.len().max(1) as f64)
}

/// Mean time per query of a batch lookup over `queries` (in batches of 256), repeated
/// until at least `min_time`.
pub fn time_per_query_batched(
    queries: &[(IpAddr, IpAddr)],
    min_time: Duration,
    mut lookup: impl FnMut(&[(IpAddr, IpAddr)], &mut [Verdict]),
) -> f64 {
    let mut out = [Verdict::NoEntry; 256];
    let mut rounds = 0u64;
    let start = Instant::now();
    loop {
        for chunk in queries.chunks(256) {
            lookup(black_box(chunk), &mut out);
            black_box(&out);
        }
        rounds += 1;
        if start.elapsed() >= min_time {
            break;
        }
    }
    start.elapsed().as_nanos() as f64 / (rounds as f64 * queries.len().max(1) as f64)
}

/// The baseline: scan every entry, keep the longest match for the exact source.
pub fn linear_scan(
    maps: &MapEntries,
    local: Option<Ipv4Addr>,
    src: IpAddr,
    dst: IpAddr,
) -> Verdict {
    let list = if src.is_ipv4() {
        &maps.ipv4
    } else {
        &maps.ipv6
    };
    let mut best: Option<&egress_core::entries::Entry> = None;
    for e in list {
        if e.source == src
            && e.destination.contains(dst)
            && best.is_none_or(|b| e.destination.len > b.destination.len)
        {
            best = Some(e);
        }
    }
    best.map_or(Verdict::NoEntry, |e| Verdict::of_entry(e, local))
}

/// Checks the lookup table against the linear scan on every query (a benchmark that measures
/// a wrong answer measures nothing).
pub fn verify_lookup(
    maps: &MapEntries,
    table: &LookupTable,
    local: Option<Ipv4Addr>,
    queries: &[(IpAddr, IpAddr)],
) -> bool {
    queries
        .iter()
        .all(|&(s, d)| table.lookup(s, d) == linear_scan(maps, local, s, d))
}

/// Random endpoint uids for a seed.
pub fn uids(seed: u64, count: usize) -> Vec<String> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|_| {
            let (a, b) = (rng.next_u64(), rng.next_u64());
            format!(
                "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xfff,
                (b >> 48) | 0x8000,
                b & 0xffff_ffff_ffff
            )
        })
        .collect()
}

/// `n` gateways with ascending IPs, weight 1, each a `route` entry on its own node.
pub fn gateways(n: usize) -> Vec<ResolvedGateway> {
    (0..n)
        .map(|i| ResolvedGateway {
            entry_index: Some(i),
            entry_key: Some(gateway::EntryKey::of(&Default::default())),
            node: Some(format!("gw-{i:03}")),
            gateway_ip: Ipv4Addr::new(192, 168, (i / 250) as u8, (i % 250) as u8 + 1),
            egress: None,
            weight: 1,
        })
        .collect()
}

/// Selection mode of the churn figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `FNV-1a-32(uid) mod n`.
    Cilium,
    /// Weighted rendezvous.
    Consistent,
}

fn chosen_node(mode: Mode, uid: &str, set: &[ResolvedGateway]) -> Option<String> {
    let index = match mode {
        Mode::Cilium => Some(gateway::choose(uid, set.len())),
        Mode::Consistent => gateway::choose_consistent(uid, set),
    };
    index.and_then(|i| set.get(i)).and_then(|g| g.node.clone())
}

fn moved(
    mode: Mode,
    uids: &[String],
    before: &[ResolvedGateway],
    after: &[ResolvedGateway],
) -> f64 {
    let n = uids
        .iter()
        .filter(|u| chosen_node(mode, u, before) != chosen_node(mode, u, after))
        .count();
    n as f64 / uids.len().max(1) as f64
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => 0.0,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// Churn of removing one of `n` gateways: mean over the `n` removals, median over seeds.
pub fn churn_remove(mode: Mode, n: usize, endpoints: usize, seeds: u64) -> f64 {
    let all = gateways(n);
    median(
        (0..seeds)
            .map(|seed| {
                let ids = uids(seed, endpoints);
                let total: f64 = (0..n)
                    .map(|k| {
                        let without: Vec<ResolvedGateway> = all
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| *i != k)
                            .map(|(_, g)| g.clone())
                            .collect();
                        moved(mode, &ids, &all, &without)
                    })
                    .sum();
                total / n as f64
            })
            .collect(),
    )
}

/// Churn of adding a gateway to `n`: median over seeds.
pub fn churn_add(mode: Mode, n: usize, endpoints: usize, seeds: u64) -> f64 {
    let before = gateways(n);
    let after = gateways(n + 1);
    median(
        (0..seeds)
            .map(|seed| moved(mode, &uids(seed, endpoints), &before, &after))
            .collect(),
    )
}

/// Fraction of existing endpoints whose gateway changes when one endpoint is added, measured
/// through the engine (W-churn objects with `n` gateways): median over seeds.
pub fn churn_add_endpoint(mode: Mode, n: usize, endpoints: usize, seeds: u64) -> f64 {
    let selection = match mode {
        Mode::Cilium => egress_core::gateway::Selection::Cilium,
        Mode::Consistent => egress_core::gateway::Selection::Consistent,
    };
    median(
        (0..seeds)
            .map(|seed| {
                let mut objects = crate::workloads::churn(n, 0);
                let ids = uids(seed, endpoints + 1);
                objects.endpoints = ids[..endpoints]
                    .iter()
                    .enumerate()
                    .map(|(i, u)| egress_core::cluster::Endpoint {
                        uid: u.clone(),
                        ..crate::workloads::endpoint(i, "all", 50)
                    })
                    .collect();
                let mut engine = objects.engine(selection, u32::MAX);
                let before = engine.gateway_choices();
                let newcomer = egress_core::cluster::Endpoint {
                    uid: ids[endpoints].clone(),
                    ..crate::workloads::endpoint(endpoints, "all", 50)
                };
                engine.upsert_endpoint(newcomer);
                let after = engine.gateway_choices();
                let moved = before
                    .iter()
                    .filter(|b| {
                        after
                            .iter()
                            .find(|a| a.endpoint == b.endpoint)
                            .is_none_or(|a| a.gateway.node != b.gateway.node)
                    })
                    .count();
                moved as f64 / endpoints as f64
            })
            .collect(),
    )
}

/// Max/mean load over `n` gateways: median over seeds.
pub fn balance(mode: Mode, n: usize, endpoints: usize, seeds: u64) -> f64 {
    let set = gateways(n);
    median(
        (0..seeds)
            .map(|seed| {
                let mut load = vec![0usize; n];
                for u in uids(seed, endpoints) {
                    let index = match mode {
                        Mode::Cilium => Some(gateway::choose(&u, n)),
                        Mode::Consistent => gateway::choose_consistent(&u, &set),
                    };
                    if let Some(i) = index {
                        load[i] += 1;
                    }
                }
                let max = load.iter().copied().max().unwrap_or(0) as f64;
                max / (endpoints as f64 / n as f64)
            })
            .collect(),
    )
}
