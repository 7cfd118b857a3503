//! Measurements shared by the criterion benches and the report binary.

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use egress_core::cluster::Node;
use egress_core::engine::{Action, Engine};
use egress_core::entries::{EXCLUDED_GATEWAY, MapEntries};
use egress_core::gateway::{self, ResolvedGateway, Selection};
use egress_core::lookup::{LookupTable, Verdict};
use egress_core::netip::Cidr;
use egress_core::policy::Policy;

use crate::workloads::{self, Rng};

/// Mean time per query of `lookup` over `queries`, repeated until at least `min_time`. The
/// queries are read from the slice, as a datapath reads packets from memory; each answer goes
/// through `black_box`, so none can be skipped. (The queries themselves are not passed
/// through `black_box`: that stores each 17-byte `IpAddr` to the stack and reloads it at
/// other widths, a store-forwarding stall of some 10 ns per IPv6 query that no caller reading
/// packets has; for the same reason the answer is given to `black_box` by reference, not
/// copied into it.)
pub fn time_per_query(
    queries: &[(IpAddr, IpAddr)],
    min_time: Duration,
    mut lookup: impl FnMut(IpAddr, IpAddr) -> Verdict,
) -> f64 {
    let mut rounds = 0u64;
    let start = Instant::now();
    loop {
        for &(s, d) in queries {
            black_box(&lookup(s, d));
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

/// Checks that `Engine::lookup_many` answers every query as `Engine::lookup` does; returns
/// how many queries hit an entry.
pub fn lookup_many_agrees(engine: &Engine, queries: &[(IpAddr, IpAddr)]) -> Result<usize, String> {
    let mut many = vec![Verdict::NoEntry; queries.len()];
    for (qs, out) in queries.chunks(256).zip(many.chunks_mut(256)) {
        engine.lookup_many(qs, out);
    }
    let mut hits = 0;
    for (&(s, d), v) in queries.iter().zip(&many) {
        let single = engine.lookup(s, d);
        if *v != single {
            return Err(format!(
                "Engine::lookup_many answers {v} and Engine::lookup {single} for {s} -> {d}"
            ));
        }
        hits += usize::from(single != Verdict::NoEntry);
    }
    Ok(hits)
}

/// `Engine::lookup` and `Engine::lookup_many` over `queries`, ns per query (single, batched),
/// each repeated for at least `min_time`; an error when the timed lookups allocated
/// (`thread_allocations`: the current thread's allocations so far).
pub fn engine_lookup_ns(
    engine: &Engine,
    queries: &[(IpAddr, IpAddr)],
    min_time: Duration,
    thread_allocations: &dyn Fn() -> u64,
) -> Result<(f64, f64), String> {
    let before = thread_allocations();
    let single = time_per_query(queries, min_time, |s, d| engine.lookup(s, d));
    let batched = time_per_query_batched(queries, min_time, |qs, out| engine.lookup_many(qs, out));
    let allocations = thread_allocations() - before;
    if allocations != 0 {
        return Err(format!(
            "the timed lookups allocated {allocations} times (must be 0)"
        ));
    }
    Ok((single, batched))
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

fn chosen_node(mode: Selection, uid: &str, set: &[ResolvedGateway]) -> Option<String> {
    let index = match mode {
        Selection::Cilium => Some(gateway::choose(uid, set.len())),
        Selection::Consistent => gateway::choose_consistent(uid, set),
    };
    index.and_then(|i| set.get(i)).and_then(|g| g.node.clone())
}

fn moved(
    mode: Selection,
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
pub fn churn_remove(mode: Selection, n: usize, endpoints: usize, seeds: u64) -> f64 {
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
pub fn churn_add(mode: Selection, n: usize, endpoints: usize, seeds: u64) -> f64 {
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
pub fn churn_add_endpoint(mode: Selection, n: usize, endpoints: usize, seeds: u64) -> f64 {
    median(
        (0..seeds)
            .map(|seed| {
                let ids = uids(seed, endpoints + 1);
                let objects = workloads::with_uids(workloads::churn(n, endpoints), &ids);
                let mut engine = objects.engine(mode, u32::MAX);
                let before = engine.gateway_choices();
                let newcomer = egress_core::cluster::Endpoint {
                    uid: ids[endpoints].clone(),
                    ..workloads::endpoint(endpoints, "all", 50)
                };
                if let Err(e) = engine.upsert_endpoint(newcomer) {
                    panic!("a generated endpoint refused by the engine: {e}");
                }
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
pub fn balance(mode: Selection, n: usize, endpoints: usize, seeds: u64) -> f64 {
    let set = gateways(n);
    median(
        (0..seeds)
            .map(|seed| {
                let mut load = vec![0usize; n];
                for u in uids(seed, endpoints) {
                    let index = match mode {
                        Selection::Cilium => Some(gateway::choose(&u, n)),
                        Selection::Consistent => gateway::choose_consistent(&u, &set),
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

/// An operator's edit of W-churn (PERFORMANCE.md, "operator edits"), delivered to the
/// engine as the event that carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperatorEdit {
    /// `upsert_policy` with one of the listed gateway entries removed.
    DeleteEntry,
    /// `upsert_policy` with the listed gateway entries in reverse order.
    Reorder,
    /// `upsert_node` of one gateway node with `weight: 0`.
    DrainNode,
    /// `upsert_node` of one gateway node with `ready: false`.
    UnreadyNode,
    /// `upsert_node` of a new node carrying the pool label of a one-entry pool policy.
    PoolNodeJoins,
}

impl OperatorEdit {
    /// Every edit, in report order.
    pub const ALL: [OperatorEdit; 5] = [
        OperatorEdit::DeleteEntry,
        OperatorEdit::Reorder,
        OperatorEdit::DrainNode,
        OperatorEdit::UnreadyNode,
        OperatorEdit::PoolNodeJoins,
    ];

    /// The edit's key in the report.
    pub fn name(self) -> &'static str {
        match self {
            OperatorEdit::DeleteEntry => "delete_entry",
            OperatorEdit::Reorder => "reorder",
            OperatorEdit::DrainNode => "drain_node",
            OperatorEdit::UnreadyNode => "unready_node",
            OperatorEdit::PoolNodeJoins => "pool_node_joins",
        }
    }

    /// The fraction of endpoints that must move with `n` gateways: only those of the
    /// gateway that leaves (1/n), those the joining gateway wins (1/(n+1)), or none.
    pub fn ideal(self, n: usize) -> f64 {
        match self {
            OperatorEdit::Reorder => 0.0,
            OperatorEdit::PoolNodeJoins => 1.0 / (n + 1) as f64,
            _ => 1.0 / n as f64,
        }
    }
}

/// An event delivered to the engine.
enum Event {
    Policy(Policy),
    Node(Node),
    DeleteNode(String),
}

impl Event {
    /// Delivers the event; a refused policy is an error (the edit was not measured).
    fn deliver(&self, engine: &mut Engine) -> Result<(), String> {
        match self {
            Event::Policy(p) => engine
                .upsert_policy(p.clone())
                .map_err(|e| format!("the edited policy was refused: {e}"))?,
            Event::Node(n) => engine.upsert_node(n.clone()),
            Event::DeleteNode(name) => {
                engine.delete_node(name);
            }
        }
        Ok(())
    }
}

/// The edits of one kind as (event, the event that undoes it), at `positions` of the `n`
/// gateway entries or nodes spread evenly (one edit for a reorder or a node joining).
fn edit_events(
    edit: OperatorEdit,
    objects: &workloads::Objects,
    n: usize,
    positions: usize,
) -> Result<Vec<(Event, Event)>, String> {
    let policy = objects
        .policies
        .first()
        .ok_or("the W-churn objects have no policy")?;
    let spread = positions.clamp(1, n.max(1));
    let at = (0..spread).map(|i| i * n / spread);
    let restore_policy = || Event::Policy(policy.clone());
    // The node that entry k picks by its `kubernetes.io/hostname` selector.
    let gateway_node = |k: usize| -> Result<Node, String> {
        let host = policy
            .egress_gateways
            .get(k)
            .and_then(|g| {
                g.node_selector
                    .match_labels
                    .iter()
                    .find(|(key, _)| key == "kubernetes.io/hostname")
            })
            .map(|(_, host)| host)
            .ok_or_else(|| format!("gateway entry {k} picks no node by hostname"))?;
        objects
            .nodes
            .iter()
            .find(|node| node.labels.get("kubernetes.io/hostname") == Some(host))
            .cloned()
            .ok_or_else(|| format!("no node {host}"))
    };
    Ok(match edit {
        OperatorEdit::DeleteEntry => at
            .map(|k| {
                if k >= policy.egress_gateways.len() {
                    return Err(format!("the policy has no gateway entry {k}"));
                }
                let mut p = policy.clone();
                p.egress_gateways.remove(k);
                Ok((Event::Policy(p), restore_policy()))
            })
            .collect::<Result<_, String>>()?,
        OperatorEdit::Reorder => {
            let mut p = policy.clone();
            p.egress_gateways.reverse();
            vec![(Event::Policy(p), restore_policy())]
        }
        OperatorEdit::DrainNode | OperatorEdit::UnreadyNode => at
            .map(|k| {
                let node = gateway_node(k)?;
                let mut edited = node.clone();
                if edit == OperatorEdit::DrainNode {
                    edited.weight = 0;
                } else {
                    edited.ready = false;
                }
                Ok((Event::Node(edited), Event::Node(node)))
            })
            .collect::<Result<_, String>>()?,
        OperatorEdit::PoolNodeJoins => {
            let joining = workloads::pool_node(objects);
            let name = joining.name.clone();
            vec![(Event::Node(joining), Event::DeleteNode(name))]
        }
    })
}

/// Fraction of endpoints whose gateway changes when each operator edit arrives, measured
/// through the engine on W-churn (`n` gateways, `endpoints` endpoints with random uids), in
/// the order of [`OperatorEdit::ALL`]: mean over the edited positions, median over `seeds`.
///
/// Per seed, one engine holds [`workloads::churn_listed`] (the pool join: one holds
/// [`workloads::churn_pool`]); its plan is taken and acknowledged, and each endpoint's
/// entries read from its desired state. Then each edit is delivered as its event, and an
/// endpoint has moved when the plan rewrites one of its entries with another gateway IP (or
/// deletes one). The undoing event must then leave an empty plan — the engine is back
/// where it was for the next edit — else this is an error, as is a refused plan.
pub fn operator_edits(
    mode: Selection,
    n: usize,
    endpoints: usize,
    seeds: u64,
    positions: usize,
) -> Result<Vec<(OperatorEdit, f64)>, String> {
    let mut per_seed: Vec<Vec<f64>> = vec![Vec::new(); OperatorEdit::ALL.len()];
    for seed in 0..seeds {
        let ids = uids(seed, endpoints);
        for pool in [false, true] {
            let objects = workloads::with_uids(
                if pool {
                    workloads::churn_pool(n, endpoints)
                } else {
                    workloads::churn_listed(n, endpoints)
                },
                &ids,
            );
            let mut engine = EditedEngine::new(&objects, mode)?;
            for (slot, &edit) in per_seed.iter_mut().zip(&OperatorEdit::ALL) {
                if pool != (edit == OperatorEdit::PoolNodeJoins) {
                    continue;
                }
                let mut fractions = Vec::new();
                for (event, undo) in edit_events(edit, &objects, n, positions)? {
                    let moved = engine
                        .moved_by(&event, &undo)
                        .map_err(|e| format!("{}: {e}", edit.name()))?;
                    fractions.push(moved);
                }
                slot.push(fractions.iter().sum::<f64>() / fractions.len().max(1) as f64);
            }
        }
    }
    Ok(OperatorEdit::ALL
        .into_iter()
        .zip(per_seed)
        .map(|(edit, xs)| (edit, median(xs)))
        .collect())
}

/// An engine with its plan acknowledged, and what its endpoints' entries were.
struct EditedEngine {
    engine: Engine,
    endpoints: usize,
    /// Endpoint index of each endpoint IP.
    endpoint_of: HashMap<IpAddr, usize>,
    /// Gateway IP of each (source, destination) entry.
    gateway_of: HashMap<(IpAddr, Cidr), Ipv4Addr>,
}

impl EditedEngine {
    fn new(objects: &workloads::Objects, mode: Selection) -> Result<Self, String> {
        let mut engine = objects.engine(mode, u32::MAX);
        let plan = engine.take_plan().map_err(|e| e.to_string())?;
        engine.ack(&plan, plan.len()).map_err(|e| e.to_string())?;
        let endpoint_of: HashMap<IpAddr, usize> = objects
            .endpoints
            .iter()
            .enumerate()
            .flat_map(|(i, ep)| ep.ips.iter().map(move |&ip| (ip, i)))
            .collect();
        let entries = engine.entries();
        let gateway_of: HashMap<(IpAddr, Cidr), Ipv4Addr> = entries
            .ipv4
            .iter()
            .chain(&entries.ipv6)
            .map(|e| ((e.source, e.destination), e.gateway_ip))
            .collect();
        let with_gateway: HashSet<IpAddr> = gateway_of
            .iter()
            .filter(|(_, gw)| !gw.is_unspecified() && **gw != EXCLUDED_GATEWAY)
            .map(|((source, _), _)| *source)
            .collect();
        if with_gateway.len() != endpoint_of.len() {
            return Err(format!(
                "{} of the {} endpoint IPs have a gateway before the edits",
                with_gateway.len(),
                endpoint_of.len()
            ));
        }
        Ok(Self {
            engine,
            endpoints: objects.endpoints.len(),
            endpoint_of,
            gateway_of,
        })
    }

    /// Delivers `event`, returns the fraction of endpoints its plan moves, then delivers
    /// `undo` and checks that nothing remains to be written.
    fn moved_by(&mut self, event: &Event, undo: &Event) -> Result<f64, String> {
        event.deliver(&mut self.engine)?;
        let plan = self.engine.take_plan().map_err(|e| e.to_string())?;
        let mut moved = vec![false; self.endpoints];
        for op in plan.ops() {
            let Some(e) = op.entry() else {
                return Err(format!("{op:?} is no Cilium entry"));
            };
            let changed = op.action() == Action::Delete
                || self.gateway_of.get(&(e.source, e.destination)) != Some(&e.gateway_ip);
            if changed && let Some(&i) = self.endpoint_of.get(&e.source) {
                moved[i] = true;
            }
        }
        undo.deliver(&mut self.engine)?;
        let rest = self.engine.take_plan().map_err(|e| e.to_string())?;
        if !rest.is_empty() {
            return Err(format!(
                "undoing the edit leaves a plan of {} operations",
                rest.len()
            ));
        }
        let count = moved.iter().filter(|&&m| m).count();
        Ok(count as f64 / self.endpoints.max(1) as f64)
    }
}

/// One cache line of the pointer chase: the index of the next line, padded to 64 bytes.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct ChaseLine {
    next: usize,
}

/// Mean latency (ns) of one load that depends on the previous one, over a working set of
/// `bytes`: cache-line-sized nodes linked in a random cyclic permutation (Sattolo's
/// algorithm), so every load waits for the one before and the prefetcher cannot guess the
/// next line. Timed after one full warm-up cycle, repeated until at least `min_time`. `Err`
/// when the permutation is not one cycle through every line.
pub fn dependent_load_ns(bytes: usize, seed: u64, min_time: Duration) -> Result<f64, String> {
    let count = (bytes / size_of::<ChaseLine>()).max(2);
    let mut order: Vec<usize> = (0..count).collect();
    let mut rng = Rng::new(seed);
    for i in (1..count).rev() {
        let j = rng.below(i as u64) as usize;
        order.swap(i, j);
    }
    let lines: Vec<ChaseLine> = order.into_iter().map(|next| ChaseLine { next }).collect();
    // Warm-up, and the check that the chase visits every line before coming back.
    let mut at = 0usize;
    for step in 1..=count {
        at = lines[at].next;
        if at == 0 && step != count {
            return Err(format!(
                "the pointer chase cycles after {step} of {count} lines"
            ));
        }
    }
    if at != 0 {
        return Err("the pointer chase is not a cycle".to_owned());
    }
    let steps = count.max(1 << 16);
    let mut rounds = 0u64;
    let start = Instant::now();
    loop {
        for _ in 0..steps {
            at = lines[at].next;
        }
        rounds += 1;
        if start.elapsed() >= min_time {
            break;
        }
    }
    let elapsed = start.elapsed();
    black_box(at);
    Ok(elapsed.as_nanos() as f64 / (rounds as f64 * steps as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The moved fraction read from the plan equals the one read from the engine's gateway
    /// choices before and after the same event.
    #[test]
    fn plan_based_moves_equal_gateway_choice_moves() {
        let (n, endpoints) = (8, 300);
        let objects =
            workloads::with_uids(workloads::churn_listed(n, endpoints), &uids(1, endpoints));
        for mode in [Selection::Cilium, Selection::Consistent] {
            let mut edited = EditedEngine::new(&objects, mode).unwrap();
            for edit in [
                OperatorEdit::DeleteEntry,
                OperatorEdit::Reorder,
                OperatorEdit::DrainNode,
                OperatorEdit::UnreadyNode,
            ] {
                for (event, undo) in edit_events(edit, &objects, n, 3).unwrap() {
                    let from_plan = edited.moved_by(&event, &undo).unwrap();
                    let mut engine = objects.engine(mode, u32::MAX);
                    let gateway = |e: &Engine| -> HashMap<String, Ipv4Addr> {
                        e.gateway_choices()
                            .into_iter()
                            .map(|c| (c.endpoint.to_string(), c.gateway.gateway_ip))
                            .collect()
                    };
                    let before = gateway(&engine);
                    event.deliver(&mut engine).unwrap();
                    let after = gateway(&engine);
                    let moved = before.iter().filter(|(u, g)| after.get(*u) != Some(g));
                    let from_choices = moved.count() as f64 / endpoints as f64;
                    assert_eq!(from_plan, from_choices, "{mode:?} {edit:?}");
                }
            }
        }
    }

    /// Cilium mode sorts entries by gateway IP and ignores weight and readiness.
    #[test]
    fn cilium_mode_ignores_order_drain_and_readiness() {
        let moved = operator_edits(Selection::Cilium, 8, 300, 1, 2).unwrap();
        for (edit, fraction) in moved {
            match edit {
                OperatorEdit::DeleteEntry => assert!(fraction > 0.5, "{fraction}"),
                _ => assert_eq!(fraction, 0.0, "{edit:?}"),
            }
        }
    }

    #[test]
    fn the_pointer_chase_is_one_cycle_through_every_line() {
        for bytes in [0, 64, 3 * 64, 64 * 1000 + 5] {
            let ns = dependent_load_ns(bytes, 9, Duration::from_millis(1)).unwrap();
            assert!(ns > 0.0 && ns.is_finite(), "{bytes}: {ns}");
        }
    }
}
