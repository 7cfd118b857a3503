//! `egress-lab failover` (issue 25): a gateway fails while every pod talks to the internet,
//! and the lab measures what its pods see. Every node runs `egress-agent` with health probes
//! (`--probe-interval`: ICMP echo to every gateway node, answered by its kernel); each pod polls
//! over a kept-alive connection and opens a new connection every 20 ms. Faults, each on the
//! gateway 172.22.49.119, then healed:
//! - `link`: its link to the VPC down for 3 s;
//! - `agent`: its agent killed (its datapath keeps forwarding), restarted 3 s later;
//! - `freeze`: every link of its namespace down, back after 3 s;
//! - `flap`: its VPC link down and up every 300 ms for 5 s.
//!
//! Per fault and mode: the pods that used it, the **failover time** (fault → the moment the
//! echo server first sees each such pod's request with another egress IP), connections of
//! other pods broken, leaked requests (seen with an address that is no gateway's), and each
//! pod's moves (a change of the address the server sees, in the order it sees them) during the
//! fault and after it healed. Times are `CLOCK_MONOTONIC`, one clock for the lab, its server
//! and its clients.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use clap::ValueEnum;
use egress_core::gateway::Selection;
use serde_json::{Value as Json, json};

use crate::cluster::{Cluster, ECHO, ROUTER, VPC_NS};
use crate::cmd::{in_netns, lab_in_netns, run};
use crate::http::monotonic_ns;
use crate::newpods::{percentile, round};

/// A fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Fault {
    Link,
    Agent,
    Freeze,
    Flap,
}

impl Fault {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Fault::Link => "link",
            Fault::Agent => "agent",
            Fault::Freeze => "freeze",
            Fault::Flap => "flap",
        }
    }

    /// How long the fault lasts.
    fn duration(self) -> Duration {
        match self {
            Fault::Flap => Duration::from_secs(5),
            _ => Duration::from_secs(3),
        }
    }
}

/// The node every fault strikes.
const GATEWAY: &str = "172.22.49.119";
/// The probes the agents run: every 100 ms, 3 misses to fail, 10 answers to recover.
pub(crate) const PROBE_ARGS: [&str; 6] = [
    "--probe-interval",
    "100ms",
    "--probe-fall",
    "3",
    "--probe-rise",
    "10",
];
/// Before the fault, and after it healed (recovery takes 10 probes).
const BEFORE: Duration = Duration::from_secs(1);
const AFTER: Duration = Duration::from_millis(2500);
/// The pods' new connections.
const INTERVAL: Duration = Duration::from_millis(20);

/// One fault's figures in one mode.
pub(crate) struct FaultResult {
    pub(crate) fault: Fault,
    pub(crate) selection: Selection,
    /// The pods whose gateway the faulted node was.
    pub(crate) affected: Vec<String>,
    /// Per affected pod that moved: ms from the fault to its first answer with another egress
    /// IP.
    pub(crate) failover_ms: Vec<f64>,
    /// Affected pods never seen with another egress IP while the fault lasted.
    pub(crate) never: usize,
    pub(crate) unaffected_broken: Vec<String>,
    pub(crate) leaked: usize,
    /// Egress IP changes seen, all pods, while the fault lasted and after it healed.
    pub(crate) moves: usize,
    pub(crate) moves_on_recovery: usize,
    /// The most moves one pod made over the whole run.
    pub(crate) max_moves_per_pod: usize,
    pub(crate) requests: usize,
    /// Requests of the affected pods that got no answer (dropped while nobody served them).
    pub(crate) affected_unanswered: usize,
}

/// One answered request of a pod's client: when the server saw it (`CLOCK_MONOTONIC` ns) and
/// the address it saw — what the internet saw, in the order it saw it.
struct Answer {
    seen_at: u64,
    addr: Option<Ipv4Addr>,
}

/// Starts a `burst` client per pod (not yet going).
fn clients(cluster: &Cluster, duration: Duration) -> Result<Vec<Child>, String> {
    let addr = SocketAddr::from((ECHO, 80)).to_string();
    let (interval, run) = (
        INTERVAL.as_millis().to_string(),
        duration.as_millis().to_string(),
    );
    cluster
        .pods
        .iter()
        .map(|pod| {
            lab_in_netns(
                &pod.ns,
                &[
                    "burst",
                    &addr,
                    "--interval-ms",
                    &interval,
                    "--duration-ms",
                    &run,
                    "--timeout-ms",
                    "1000",
                ],
            )?
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: a client: {e}", pod.display))
        })
        .collect()
}

/// A started client's answered requests, and how many it made.
fn answers(child: Child) -> Result<(Vec<Answer>, usize), String> {
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "a client failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let rows: Vec<Json> =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("a client's output: {e}"))?;
    // [sent µs, answered µs or null, the address seen or why it failed, seen at ns or null]:
    // the answered ones.
    let answered = rows
        .iter()
        .filter_map(|r| {
            Some(Answer {
                seen_at: r[3].as_u64()?,
                addr: r[2].as_str().and_then(|a| a.parse().ok()),
            })
        })
        .collect();
    Ok((answered, rows.len()))
}

fn link(ns: Option<&str>, dev: &str, up: bool) -> Result<(), String> {
    let state = if up { "up" } else { "down" };
    match ns {
        Some(ns) => run("ip", &["-n", ns, "link", "set", "dev", dev, state]).map(drop),
        None => run("ip", &["link", "set", "dev", dev, state]).map(drop),
    }
}

/// Injects `fault` on node `g` and heals it when it has lasted its time.
fn inject(lab: &mut crate::Lab, g: usize, fault: Fault) -> Result<(), String> {
    let node = lab.cluster.nodes[g].clone();
    match fault {
        Fault::Link => {
            link(Some(VPC_NS), &node.port, false)?;
            std::thread::sleep(fault.duration());
            link(Some(VPC_NS), &node.port, true)
        }
        Fault::Agent => {
            lab.agents.kill(g)?;
            std::thread::sleep(fault.duration());
            lab.agents.restart(g, &node.name)?;
            // The cluster's first full list again: the restarted agent adopts its maps and
            // writes only what differs.
            let objects = crate::agents::objects(&lab.cluster, true)?;
            lab.agents.send(g, "/v1/objects?sync=1", &objects).map(drop)
        }
        Fault::Freeze => {
            for dev in ["eth0", "lab_vxlan"] {
                link(Some(&node.ns), dev, false)?;
            }
            std::thread::sleep(fault.duration());
            for dev in ["eth0", "lab_vxlan"] {
                link(Some(&node.ns), dev, true)?;
            }
            // A link down takes its routes with it.
            in_netns(
                &node.ns,
                "ip",
                &["route", "replace", "default", "via", &ROUTER.to_string()],
            )
            .map(drop)
        }
        Fault::Flap => {
            let end = Instant::now() + fault.duration();
            let mut up = false;
            while Instant::now() < end {
                link(Some(VPC_NS), &node.port, up)?;
                up = !up;
                std::thread::sleep(Duration::from_millis(300));
            }
            link(Some(VPC_NS), &node.port, true)
        }
    }
}

/// One fault on a running lab: clients and pollers on, the fault, its healing, the figures.
fn one(lab: &mut crate::Lab, selection: Selection, fault: Fault) -> Result<FaultResult, String> {
    let g = lab
        .cluster
        .nodes
        .iter()
        .position(|n| n.name == GATEWAY)
        .ok_or("the seed has no node 172.22.49.119")?;
    let gateways: BTreeSet<Ipv4Addr> = lab
        .engines
        .first()
        .map(|e| e.gateway_nodes().iter().filter_map(|n| n.ipv4).collect())
        .unwrap_or_default();
    let predicted: Vec<_> = lab
        .cluster
        .pods
        .iter()
        .map(|p| crate::experiment::predict(&lab.cluster, &lab.engines, p, ECHO))
        .collect();
    let affected: Vec<usize> = (0..predicted.len())
        .filter(|&i| predicted[i].gateway == Some(g))
        .collect();
    let total = BEFORE + fault.duration() + AFTER;
    let mut children = clients(&lab.cluster, total)?;
    let mut pollers = crate::changes::Pollers::start(&lab.cluster, ECHO)?;
    for child in &mut children {
        let mut stdin = child.stdin.take().ok_or("a client's stdin")?;
        stdin.write_all(b"go\n").map_err(|e| e.to_string())?;
    }
    std::thread::sleep(BEFORE);
    let fault_at = monotonic_ns();
    let fault_instant = Instant::now();
    let injected = inject(lab, g, fault);
    let healed_at = monotonic_ns();
    pollers.settle(AFTER + Duration::from_millis(500));
    let broken = pollers.broken_since(fault_instant);
    injected?;
    let mut result = FaultResult {
        fault,
        selection,
        affected: affected
            .iter()
            .map(|&i| lab.cluster.pods[i].display.clone())
            .collect(),
        failover_ms: Vec::new(),
        never: 0,
        unaffected_broken: broken
            .into_iter()
            .filter(|i| !affected.contains(i))
            .map(|i| lab.cluster.pods[i].display.clone())
            .collect(),
        leaked: 0,
        moves: 0,
        moves_on_recovery: 0,
        max_moves_per_pod: 0,
        requests: 0,
        affected_unanswered: 0,
    };
    for (i, child) in children.into_iter().enumerate() {
        let (mut seen, made) = answers(child)?;
        result.requests += made;
        if affected.contains(&i) {
            result.affected_unanswered += made - seen.len();
        }
        seen.sort_by_key(|a| a.seen_at);
        let mut last = predicted[i].seen;
        let mut moved = None;
        let mut pod_moves = 0;
        for a in &seen {
            let Some(addr) = a.addr else { continue };
            if !gateways.contains(&addr) {
                result.leaked += 1;
                continue;
            }
            if Some(addr) != last && a.seen_at >= fault_at {
                pod_moves += 1;
                if a.seen_at <= healed_at {
                    result.moves += 1;
                } else {
                    result.moves_on_recovery += 1;
                }
                if moved.is_none() && affected.contains(&i) && a.seen_at <= healed_at {
                    moved = Some(Duration::from_nanos(a.seen_at - fault_at));
                }
            }
            last = Some(addr);
        }
        result.max_moves_per_pod = result.max_moves_per_pod.max(pod_moves);
        if affected.contains(&i) {
            match moved {
                Some(d) => result.failover_ms.push(d.as_secs_f64() * 1e3),
                None => result.never += 1,
            }
        }
    }
    Ok(result)
}

/// Every fault in every mode, each mode on a lab of its own.
pub(crate) fn run_all(
    selections: &[Selection],
    faults: &[Fault],
) -> Result<Vec<FaultResult>, String> {
    let args: Vec<String> = PROBE_ARGS.iter().map(|s| (*s).to_owned()).collect();
    let mut out = Vec::new();
    for &selection in selections {
        let result = (|| {
            let mut lab = crate::setup_with(selection, &args)?;
            let mut results = Vec::new();
            for &fault in faults {
                results.push(one(&mut lab, selection, fault)?);
                // Let the pods settle back (recovery, NAT state) before the next fault.
                std::thread::sleep(Duration::from_secs(1));
            }
            Ok::<_, String>(results)
        })();
        let problems = crate::topology::down();
        out.extend(result?);
        if let Some(p) = problems.first() {
            return Err(p.clone());
        }
    }
    Ok(out)
}

fn mode(s: Selection) -> &'static str {
    match s {
        Selection::Cilium => "cilium",
        Selection::Consistent => "consistent",
    }
}

/// The targets (consistent mode): failover max ≤ 1 s for `link` and `freeze`, no
/// move when only the agent dies, no unaffected connection broken, nothing leaked, a flapping
/// link moves each pod at most out once and back once.
pub(crate) fn unmet_targets(results: &[FaultResult]) -> Vec<String> {
    let mut unmet = Vec::new();
    for r in results
        .iter()
        .filter(|r| r.selection == Selection::Consistent)
    {
        let name = format!("{} (consistent)", r.fault.name());
        if r.leaked > 0 {
            unmet.push(format!("{name}: {} leaked", r.leaked));
        }
        if !r.unaffected_broken.is_empty() {
            unmet.push(format!(
                "{name}: unaffected connections broken: {}",
                r.unaffected_broken.join(", ")
            ));
        }
        match r.fault {
            Fault::Link | Fault::Freeze => {
                if r.never > 0 {
                    unmet.push(format!("{name}: {} pod(s) never failed over", r.never));
                }
                if let Some(max) = percentile(&r.failover_ms, 100.0).filter(|m| *m > 1000.0) {
                    unmet.push(format!("{name}: failover max {max:.0} ms > 1000 ms"));
                }
            }
            Fault::Agent => {
                if r.moves + r.moves_on_recovery > 0 {
                    unmet.push(format!(
                        "{name}: {} move(s) though only the agent died",
                        r.moves + r.moves_on_recovery
                    ));
                }
            }
            Fault::Flap => {
                if r.max_moves_per_pod > 2 {
                    unmet.push(format!(
                        "{name}: a pod moved {} times (at most out once and back once)",
                        r.max_moves_per_pod
                    ));
                }
            }
        }
    }
    unmet
}

pub(crate) fn to_json(results: &[FaultResult], unmet: &[String]) -> Json {
    json!({
        "probes": "ICMP echo every 100 ms to every gateway node, answered by its kernel; unready after 3 misses, ready after 10 answers",
        "faults": results.iter().map(|r| json!({
            "fault": r.fault.name(),
            "mode": mode(r.selection),
            "affectedPods": r.affected.len(),
            "failoverMs": {"p50": round(percentile(&r.failover_ms, 50.0)), "max": round(percentile(&r.failover_ms, 100.0))},
            "neverFailedOver": r.never,
            "unaffectedBroken": r.unaffected_broken.len(),
            "leaked": r.leaked,
            "moves": r.moves,
            "movesOnRecovery": r.moves_on_recovery,
            "maxMovesPerPod": r.max_moves_per_pod,
            "requests": r.requests,
            "affectedUnanswered": r.affected_unanswered,
        })).collect::<Vec<_>>(),
        "targets": {"met": unmet.is_empty(), "unmet": unmet},
    })
}

pub(crate) fn print(results: &[FaultResult], unmet: &[String]) {
    println!(
        "egress-lab failover: every fault on gateway {GATEWAY}; every pod polls over a kept-alive connection and opens a new one every {} ms; the agents probe every gateway node every 100 ms (ICMP, answered by its kernel)\n",
        INTERVAL.as_millis()
    );
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
    let mut table = vec![[
        "Fault".to_owned(),
        "Mode".to_owned(),
        "Pods affected".to_owned(),
        "Failover p50 / max ms".to_owned(),
        "Other pods' connections broken".to_owned(),
        "Leaked".to_owned(),
        "Moves (fault / recovery)".to_owned(),
        "Affected pods' requests unanswered".to_owned(),
    ]];
    for r in results {
        table.push([
            r.fault.name().to_owned(),
            mode(r.selection).to_owned(),
            r.affected.len().to_string(),
            if r.fault == Fault::Agent && r.moves == 0 {
                "none needed (datapath alive)".to_owned()
            } else {
                format!(
                    "{} / {}{}",
                    ms(percentile(&r.failover_ms, 50.0)),
                    ms(percentile(&r.failover_ms, 100.0)),
                    if r.never > 0 {
                        format!(" ({} never)", r.never)
                    } else {
                        String::new()
                    }
                )
            },
            r.unaffected_broken.len().to_string(),
            r.leaked.to_string(),
            format!("{} / {}", r.moves, r.moves_on_recovery),
            r.affected_unanswered.to_string(),
        ]);
    }
    print!("{}", egress_core::render::tabulate(&table));
    if unmet.is_empty() {
        println!("\ntargets met (consistent mode)");
    } else {
        println!("\ntargets NOT met:");
        for u in unmet {
            println!("  {u}");
        }
    }
}
