//! Changes while traffic flows: every pod polls the echo server over one long-lived TCP
//! connection while gateways are added, drained, removed and the policy edited. Per event:
//! which pods the engines move, how long until each is seen with its new address, which
//! connections broke (only those of moved pods may), what the datapath dropped.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use egress_core::netip::Cidr;
use egress_core::policy::Policy;

use crate::cluster::{Cluster, ECHO};
use crate::cmd::lab_in_netns;
use crate::datapath;
use crate::experiment::{
    NodeEngine, Prediction, gateway_changes, predict, program_make_before_break,
};

/// What a poller printed.
#[derive(Clone, Debug)]
enum Sample {
    Answer(Ipv4Addr),
    Broken,
}

/// One long-lived poller per pod, each a process in the pod's namespace.
pub(crate) struct Pollers {
    children: Vec<Child>,
    rx: Receiver<(usize, Instant, Sample)>,
    log: Vec<Vec<(Instant, Sample)>>,
}

impl Pollers {
    /// Starts the pollers and waits until every pod has had an answer.
    pub(crate) fn start(cluster: &Cluster, dst: Ipv4Addr) -> Result<Self, String> {
        let (tx, rx) = channel();
        let mut children = Vec::new();
        for (i, pod) in cluster.pods.iter().enumerate() {
            let addr = SocketAddr::from((dst, 80)).to_string();
            let mut child = lab_in_netns(&pod.ns, &["poll", &addr])?
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("{}: poller: {e}", pod.display))?;
            let stdout = child.stdout.take().ok_or("a poller's output")?;
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let sample = match line.strip_prefix("ok ").map(str::parse) {
                        Some(Ok(ip)) => Sample::Answer(ip),
                        _ => Sample::Broken,
                    };
                    if tx.send((i, Instant::now(), sample)).is_err() {
                        return;
                    }
                }
            });
            children.push(child);
        }
        let mut pollers = Self {
            log: vec![Vec::new(); children.len()],
            children,
            rx,
        };
        let ready = pollers.wait(Instant::now() + Duration::from_secs(5), |log| {
            log.iter()
                .all(|samples| samples.iter().any(|(_, s)| matches!(s, Sample::Answer(_))))
        });
        if !ready {
            return Err("the pods' pollers got no first answer within 5 s".to_owned());
        }
        Ok(pollers)
    }

    /// Collects samples until `done` holds or `deadline` passes; whether `done` held.
    fn wait(
        &mut self,
        deadline: Instant,
        done: impl Fn(&[Vec<(Instant, Sample)>]) -> bool,
    ) -> bool {
        loop {
            if done(&self.log) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            if let Ok((i, at, sample)) = self.rx.recv_timeout(deadline - now) {
                self.log[i].push((at, sample));
            }
        }
    }

    /// Collects for `period`.
    fn settle(&mut self, period: Duration) {
        self.wait(Instant::now() + period, |_| false);
    }
}

impl Drop for Pollers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What one event did.
#[derive(Clone, Debug)]
pub(crate) struct EventResult {
    pub(crate) name: String,
    /// Pods whose predicted address changed (pod display names).
    pub(crate) moved: Vec<String>,
    /// For each moved pod, ms from the event to the first answer with its new address
    /// (`None`: not seen within the wait).
    pub(crate) new_address_ms: Vec<Option<u128>>,
    /// Pods whose connection broke, moved or not.
    pub(crate) broken_moved: Vec<String>,
    pub(crate) broken_unmoved: Vec<String>,
    /// Packets the datapath dropped during the event, all nodes.
    pub(crate) dropped: u64,
    /// Whether a node both gained and lost pods (no make-before-break order exists).
    pub(crate) cross_moves: bool,
}

/// The datapath's drop counters, summed over nodes.
fn drops(cluster: &Cluster) -> Result<u64, String> {
    let fs = datapath::bpffs();
    let mut total = 0;
    for node in &cluster.nodes {
        let counters = datapath::counters(&node.pin_dir(&fs))?;
        for (name, value) in datapath::COUNTERS.iter().zip(counters) {
            if name.contains("dropped") {
                total += value;
            }
        }
    }
    Ok(total)
}

fn predictions(cluster: &Cluster, engines: &[NodeEngine]) -> Vec<Prediction> {
    cluster
        .pods
        .iter()
        .map(|pod| predict(cluster, engines, pod, ECHO))
        .collect()
}

/// Applies `change` to every node's engine, programs every node, and watches the pollers
/// until every moved pod is seen with its new address (at most 5 s), then 300 ms more.
/// A policy edit delivered to one node's engine; a refusal is the lab's own error.
fn upsert(ne: &mut NodeEngine, policy: &Policy) -> Result<(), String> {
    ne.engine
        .upsert_policy(policy.clone())
        .map_err(|e| format!("the lab's policy edit was refused: {e}"))
}

fn event(
    cluster: &Cluster,
    engines: &mut [NodeEngine],
    pollers: &mut Pollers,
    name: &str,
    change: &dyn Fn(&mut NodeEngine) -> Result<(), String>,
) -> Result<EventResult, String> {
    pollers.settle(Duration::from_millis(200));
    let before = predictions(cluster, engines);
    let dropped_before = drops(cluster)?;
    let start = Instant::now();
    for ne in engines.iter_mut() {
        change(ne)?;
    }
    let after = predictions(cluster, engines);
    let (gaining, losing) = gateway_changes(&before, &after);
    let cross_moves = gaining.iter().any(|n| losing.contains(n));
    program_make_before_break(cluster, engines, &before, &after)?;
    let moved: Vec<usize> = (0..before.len())
        .filter(|&i| before[i].seen != after[i].seen)
        .collect();
    let seen_new = |log: &[Vec<(Instant, Sample)>], i: usize| {
        log[i].iter().find_map(|(at, s)| match s {
            Sample::Answer(ip) if *at >= start && Some(*ip) == after[i].seen => Some(*at),
            _ => None,
        })
    };
    pollers.wait(start + Duration::from_secs(5), |log| {
        moved
            .iter()
            .all(|&i| after[i].seen.is_none() || seen_new(log, i).is_some())
    });
    pollers.settle(Duration::from_millis(300));
    let broke = |i: usize| {
        pollers.log[i]
            .iter()
            .any(|(at, s)| *at >= start && matches!(s, Sample::Broken))
    };
    let display = |i: usize| cluster.pods[i].display.clone();
    Ok(EventResult {
        name: name.to_owned(),
        moved: moved.iter().map(|&i| display(i)).collect(),
        new_address_ms: moved
            .iter()
            .map(|&i| seen_new(&pollers.log, i).map(|at| (at - start).as_millis()))
            .collect(),
        broken_moved: moved
            .iter()
            .filter(|&&i| broke(i))
            .map(|&i| display(i))
            .collect(),
        broken_unmoved: (0..before.len())
            .filter(|i| !moved.contains(i) && broke(*i))
            .map(display)
            .collect(),
        dropped: drops(cluster)?.saturating_sub(dropped_before),
        cross_moves,
    })
}

/// The events, in order: a gateway added to the list, one drained, one removed from the
/// list, the destination excluded by a policy edit.
pub(crate) fn run(
    cluster: &Cluster,
    engines: &mut [NodeEngine],
) -> Result<Vec<EventResult>, String> {
    let mut pollers = Pollers::start(cluster, ECHO)?;
    let policy: Policy = engines
        .first()
        .and_then(|ne| ne.engine.policy("egress-test").cloned())
        .ok_or("the engines hold no policy egress-test")?;
    let mut results = Vec::new();

    // The seed's own fix for its pitfall: list egressGateway's node in egressGateways.
    let mut added = policy.clone();
    added.egress_gateways.push(policy.egress_gateway.clone());
    let added_name = format!(
        "add a gateway: egressGateways += {}",
        policy
            .egress_gateway
            .egress_ip
            .map(|ip| ip.to_string())
            .unwrap_or_default()
    );
    results.push(event(cluster, engines, &mut pollers, &added_name, &|ne| {
        upsert(ne, &added)
    })?);

    let drained = cluster.snapshot.nodes.get("172.22.49.119").cloned();
    if let Some(mut node) = drained {
        node.weight = 0;
        results.push(event(
            cluster,
            engines,
            &mut pollers,
            "drain a gateway: 172.22.49.119 weight 0",
            &|ne| {
                ne.engine.upsert_node(node.clone());
                Ok(())
            },
        )?);
    }

    let mut removed = added.clone();
    let leaving: std::net::IpAddr = Ipv4Addr::new(172, 22, 49, 147).into();
    removed
        .egress_gateways
        .retain(|g| g.egress_ip != Some(leaving));
    results.push(event(
        cluster,
        engines,
        &mut pollers,
        "remove a gateway: egressGateways -= 172.22.49.147",
        &|ne| upsert(ne, &removed),
    )?);

    let mut edited = removed.clone();
    edited.excluded_cidrs.push(Cidr {
        addr: ECHO.into(),
        len: 32,
    });
    results.push(event(
        cluster,
        engines,
        &mut pollers,
        &format!("edit the policy: excludedCIDRs += {ECHO}/32"),
        &|ne| upsert(ne, &edited),
    )?);
    Ok(results)
}
