//! Changes while traffic flows: every pod polls the echo server over one long-lived TCP
//! connection while gateways are added, drained, removed and the policy edited — each event
//! told to every node's agent, as the cluster would tell it. Per event: which pods the
//! predictions move, how long until each is seen with its new address, which connections
//! broke (only those of moved pods may), what the datapath dropped.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use egress_core::engine::Engine;
use serde_json::Value as Json;

use crate::agents::Agents;
use crate::cluster::{Cluster, ECHO};
use crate::cmd::lab_in_netns;
use crate::datapath;
use crate::experiment::{Prediction, gateway_changes, predict, predict_policy};

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
    pub(crate) fn settle(&mut self, period: Duration) {
        self.wait(Instant::now() + period, |_| false);
    }

    /// The pods (indexes) whose connection broke at or after `since`.
    pub(crate) fn broken_since(&self, since: Instant) -> Vec<usize> {
        (0..self.log.len())
            .filter(|&i| {
                self.log[i]
                    .iter()
                    .any(|(at, s)| *at >= since && matches!(s, Sample::Broken))
            })
            .collect()
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

fn predictions(cluster: &Cluster, engines: &[Engine]) -> Vec<Prediction> {
    cluster
        .pods
        .iter()
        .map(|pod| predict(cluster, engines, pod, ECHO))
        .collect()
}

/// One event, as the cluster tells it to the agents.
enum Change {
    /// A new version of a policy (a CiliumEgressGatewayPolicy, JSON): `POST /v1/objects`.
    Policy(Json),
    /// An operator's word on a node's health (a drain: weight 0): `POST /v1/node-health`.
    Health { node: String, weight: u8 },
}

impl Change {
    /// Applies the change to the predictions' engines.
    fn predict(&self, engines: &mut [Engine]) -> Result<(), String> {
        match self {
            Change::Policy(policy) => predict_policy(engines, &policy.to_string()),
            Change::Health { node, weight } => {
                let health = egress_core::cluster::NodeHealth {
                    ready: None,
                    weight: Some(*weight),
                };
                for engine in engines {
                    engine
                        .set_node_health(node, health)
                        .map_err(|e| format!("the lab's drain: {e}"))?;
                }
                Ok(())
            }
        }
    }

    /// Tells node `i`'s agent, which answers once it has programmed its maps.
    fn tell(&self, agents: &Agents, i: usize) -> Result<(), String> {
        let (path, body) = match self {
            Change::Policy(policy) => ("/v1/objects", policy.to_string()),
            Change::Health { node, weight } => (
                "/v1/node-health",
                serde_json::json!({"name": node, "weight": weight}).to_string(),
            ),
        };
        agents.send(i, path, &body).map(drop)
    }
}

/// Tells every agent of `change`, make before break: the nodes that become a moved pod's
/// gateway first (they SNAT it before anyone sends it to them), the nodes that stop being one
/// last (nobody sends it to them any more), every other node between. Told in the nodes'
/// order, a node tunnelling a pod to its new gateway before that gateway's map named itself
/// made the gateway drop it (packets dropped in about one run of six).
///
/// A node that gains some pods and loses others (compat mode's `hash mod n` moves pods
/// between the remaining gateways too) has no such place: whenever it is told, either its
/// new pods or its old ones may meet a map that does not name it yet or any more. Such an
/// event is reported as having cross moves.
fn tell_make_before_break(
    agents: &Agents,
    change: &Change,
    nodes: usize,
    gaining: &[usize],
    losing: &[usize],
) -> Result<(), String> {
    let rank = |n: &usize| {
        if gaining.contains(n) {
            0
        } else if losing.contains(n) {
            2
        } else {
            1
        }
    };
    let mut order: Vec<usize> = (0..nodes).collect();
    order.sort_by_key(rank);
    for i in order {
        change.tell(agents, i)?;
    }
    Ok(())
}

/// Applies `change` to the predictions, tells every agent (make before break), and watches
/// the pollers until every moved pod is seen with its new address (at most 5 s), then 300 ms
/// more.
fn event(
    cluster: &Cluster,
    engines: &mut [Engine],
    agents: &Agents,
    pollers: &mut Pollers,
    name: &str,
    change: &Change,
) -> Result<EventResult, String> {
    pollers.settle(Duration::from_millis(200));
    let before = predictions(cluster, engines);
    let dropped_before = drops(cluster)?;
    let start = Instant::now();
    change.predict(engines)?;
    let after = predictions(cluster, engines);
    let (gaining, losing) = gateway_changes(&before, &after);
    let cross_moves = gaining.iter().any(|n| losing.contains(n));
    tell_make_before_break(agents, change, cluster.nodes.len(), &gaining, &losing)?;
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
/// list, the destination excluded by a policy edit — each a new version of `policy` (the
/// policy `egress-test` as the agents hold it) or a node.
pub(crate) fn run(
    cluster: &Cluster,
    engines: &mut [Engine],
    agents: &Agents,
    policy: &Json,
) -> Result<Vec<EventResult>, String> {
    let mut pollers = Pollers::start(cluster, ECHO)?;
    let mut results = Vec::new();
    let spec = |p: &Json, field: &str| p["spec"][field].clone();

    // The seed's own fix for its pitfall: list egressGateway's node in egressGateways.
    let mut added = policy.clone();
    let extra = spec(policy, "egressGateway");
    if let Some(list) = added["spec"]["egressGateways"].as_array_mut() {
        list.push(extra.clone());
    }
    let added_name = format!(
        "add a gateway: egressGateways += {}",
        extra["egressIP"].as_str().unwrap_or_default()
    );
    results.push(event(
        cluster,
        engines,
        agents,
        &mut pollers,
        &added_name,
        &Change::Policy(added.clone()),
    )?);

    results.push(event(
        cluster,
        engines,
        agents,
        &mut pollers,
        "drain a gateway: 172.22.49.119 weight 0",
        &Change::Health {
            node: "172.22.49.119".to_owned(),
            weight: 0,
        },
    )?);

    let mut removed = added.clone();
    if let Some(list) = removed["spec"]["egressGateways"].as_array_mut() {
        list.retain(|g| g["egressIP"] != "172.22.49.147");
    }
    results.push(event(
        cluster,
        engines,
        agents,
        &mut pollers,
        "remove a gateway: egressGateways -= 172.22.49.147",
        &Change::Policy(removed.clone()),
    )?);

    let mut edited = removed;
    let excluded = Json::String(format!("{ECHO}/32"));
    match edited["spec"]["excludedCIDRs"].as_array_mut() {
        Some(list) => list.push(excluded),
        None => edited["spec"]["excludedCIDRs"] = Json::Array(vec![excluded]),
    }
    results.push(event(
        cluster,
        engines,
        agents,
        &mut pollers,
        &format!("edit the policy: excludedCIDRs += {ECHO}/32"),
        &Change::Policy(edited),
    )?);
    Ok(results)
}
