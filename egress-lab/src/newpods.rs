//! `egress-lab new-pods` (issue 24): the seed's known problem 1 — a new pod's first traffic
//! leaving without the egress policy — measured on packets, as Cilium measures it
//! (cilium/scaffolding `egw-scale-utils`): pods are created one after another on the workers,
//! each pod's client opens a new connection to the echo server every interval from the moment
//! CNI ADD returns; **leaked** requests are those the server saw with any address but the
//! pod's egress IP, the **masquerade delay** is the time until the first answer showing it.
//!
//! Every node runs `egress-agent`; the lab is the cluster ([`ClusterStream`], with a model of
//! the watch latency) and the runtime (libcni: ptp, the lab's datapath plugin, egress-cni).
//! Three ways of programming a new pod are compared:
//! - `watch`: only when the node's agent learns the pod's addresses from the cluster stream
//!   (Cilium's behaviour; egress-agent `--program-on watch`);
//! - `cni`: the pod's node programs it inside CNI ADD; its gateway learns it from the stream
//!   and drops what it has no entry for (never forwards it with another address);
//! - `sync`: as `cni`, and ADD returns only once the gateway's agent has acknowledged serving
//!   the pod through the stream (egress-agent `--gateway-ack-timeout`).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use egress_core::gateway::Selection;
use serde_json::{Value as Json, json};

use crate::agents::{self, Agents};
use crate::cluster::{Cluster, ECHO, RUN_DIR};
use crate::cmd::lab_in_netns;
use crate::stream::ClusterStream;
use crate::{experiment, topology};

/// How a new pod is programmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    Watch,
    Cni,
    Sync,
}

/// How long an ADD in `sync` waits for the gateways.
const ACK_TIMEOUT: &str = "10s";

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Watch => "watch",
            Mode::Cni => "cni",
            Mode::Sync => "sync",
        }
    }

    /// The agents' arguments in this mode.
    fn agent_args(self, cluster: &Path) -> Vec<String> {
        let mut args = vec!["--cluster-socket".to_owned(), cluster.display().to_string()];
        match self {
            Mode::Watch => args.extend(["--program-on".to_owned(), "watch".to_owned()]),
            Mode::Cni => {}
            Mode::Sync => args.extend(["--gateway-ack-timeout".to_owned(), ACK_TIMEOUT.to_owned()]),
        }
        args
    }
}

/// What to run.
pub(crate) struct Settings {
    /// Pods per scenario.
    pub(crate) pods: usize,
    /// The time over which they are created (evenly).
    pub(crate) over: Duration,
    /// How long each pod's client runs.
    pub(crate) run: Duration,
    /// How often it opens a connection.
    pub(crate) interval: Duration,
    /// Each request's bound.
    pub(crate) timeout: Duration,
    /// The modelled watch delays.
    pub(crate) delays: Vec<Duration>,
    pub(crate) modes: Vec<Mode>,
    pub(crate) selection: Selection,
}

/// One request of a pod's client.
struct Attempt {
    /// When it answered (µs from the client's start); `None`: it failed.
    done_us: Option<u64>,
    /// The address the server saw, or why it failed.
    answer: String,
}

/// One scenario's figures.
pub(crate) struct Scenario {
    pub(crate) mode: Mode,
    pub(crate) delay: Duration,
    pub(crate) pods: usize,
    pub(crate) requests: usize,
    pub(crate) unanswered: usize,
    pub(crate) leaked: usize,
    /// Each address a leaked request was seen with, and how often.
    pub(crate) leaked_addresses: BTreeMap<String, usize>,
    /// Per pod that was seen with its egress IP: ms from its start to that answer.
    pub(crate) masquerade_ms: Vec<f64>,
    /// Pods never seen with their egress IP.
    pub(crate) never_masqueraded: usize,
    /// Per pod whose ADD succeeded: ms the runtime's ADD took (every plugin of the list).
    pub(crate) add_ms: Vec<f64>,
    /// What failed: ADDs, clients, the cluster's deliveries.
    pub(crate) failures: Vec<String>,
}

/// Nearest-rank percentile of `values` (`None` when empty).
pub(crate) fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Every mode's scenarios, each mode on a lab of its own (its agents started in that mode).
pub(crate) fn run(settings: &Settings) -> Result<Vec<Scenario>, String> {
    let mut out = Vec::new();
    for &mode in &settings.modes {
        let result = run_mode(settings, mode);
        let problems = topology::down();
        out.extend(result?);
        if let Some(p) = problems.first() {
            return Err(format!("removing the {} lab: {p}", mode.name()));
        }
    }
    Ok(out)
}

fn run_mode(settings: &Settings, mode: Mode) -> Result<Vec<Scenario>, String> {
    let cluster = Cluster::with_new_pods(settings.pods * settings.delays.len())?;
    let socket = Path::new(RUN_DIR).join("cluster.sock");
    let (engines, agents) =
        crate::start_nodes(&cluster, settings.selection, &mode.agent_args(&socket))?;
    let stream = ClusterStream::start(&socket, agents.sockets())?;
    // The cluster as it is before the first new pod: the first full list, at once.
    agents.stream(&agents::list(agents::cluster_objects(&cluster)?), true)?;
    let _echo = experiment::EchoServer::start()?;
    let mut scenarios = Vec::new();
    for (s, &delay) in settings.delays.iter().enumerate() {
        stream.set_delay(delay);
        let pods: Vec<usize> = (s * settings.pods..(s + 1) * settings.pods).collect();
        let expected: Vec<Option<Ipv4Addr>> = pods
            .iter()
            .map(|&i| {
                let p = experiment::predict(&cluster, &engines, &cluster.pods[i], ECHO);
                p.gateway.and(p.seen)
            })
            .collect();
        let errors_before = stream.errors().len();
        let runs = run_pods(settings, &cluster, &agents, &stream, &pods);
        let mut scenario = summarize(mode, delay, &runs, &expected);
        scenario
            .failures
            .extend(stream.errors().into_iter().skip(errors_before));
        remove_pods(&cluster, &agents, &pods, &mut scenario.failures);
        // The next scenario's delay applies to what is published after everything of this
        // one (its gateways' last acknowledgements too) has been delivered.
        if let Err(e) = stream.drain() {
            scenario.failures.push(e);
        }
        scenarios.push(scenario);
    }
    drop(stream);
    drop(agents);
    Ok(scenarios)
}

/// What one pod did: its ADD's time (or failure), its client's requests (or failure).
type PodRun = (Result<Duration, String>, Result<Vec<Attempt>, String>);

/// Creates `pods` evenly over the settings' time, each as a cluster would: its object
/// published; once its node's agent has it, the runtime's ADD; once ADD returns, its client.
fn run_pods(
    settings: &Settings,
    cluster: &Cluster,
    agents: &Agents,
    stream: &ClusterStream,
    pods: &[usize],
) -> Vec<PodRun> {
    let addr = SocketAddr::from((ECHO, 80)).to_string();
    let ms = |d: Duration| d.as_millis().to_string();
    let (interval, run, timeout) = (
        ms(settings.interval),
        ms(settings.run),
        ms(settings.timeout),
    );
    // The pods' clients, started before their pods, waiting for the go (the container starts
    // once the runtime's ADD returned).
    let clients: Vec<_> = pods
        .iter()
        .map(|&i| {
            let args = [
                "burst",
                &addr,
                "--interval-ms",
                &interval,
                "--duration-ms",
                &run,
                "--timeout-ms",
                &timeout,
            ];
            lab_in_netns(&cluster.pods[i].ns, &args).and_then(|mut c| {
                c.stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("starting a client: {e}"))
            })
        })
        .collect();
    let start = Instant::now();
    let n = pods.len() as u32;
    std::thread::scope(|s| {
        let handles: Vec<_> = clients
            .into_iter()
            .zip(pods)
            .enumerate()
            .map(|(j, (client, &i))| {
                s.spawn(move || {
                    let mut client = client.map_err(|e| e.clone());
                    let due = start + settings.over * j as u32 / n.max(1);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let add = create_pod(cluster, agents, stream, i);
                    let attempts = match (&add, &mut client) {
                        (Ok(_), Ok(child)) => go(child),
                        (Err(e), Ok(child)) => {
                            let _ = child.kill();
                            Err(format!("no client: {e}"))
                        }
                        (_, Err(e)) => Err(e.clone()),
                    };
                    if let Ok(mut child) = client {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                    (add, attempts)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| (Err("panicked".to_owned()), Err("panicked".to_owned())))
            })
            .collect()
    })
}

/// The pod's object published (no address yet); once its node's agent has it — its kubelet
/// learns the pod through the same watch — the runtime's ADD, timed.
fn create_pod(
    cluster: &Cluster,
    agents: &Agents,
    stream: &ClusterStream,
    pod: usize,
) -> Result<Duration, String> {
    let lab = &cluster.pods[pod];
    let ep = cluster.endpoint_of(pod)?;
    let delivered = stream.publish(agents::list(vec![agents::pod_object(ep, false)]));
    delivered
        .get(lab.node)
        .ok_or("no such node")?
        .recv_timeout(Duration::from_secs(60))
        .map_err(|_| format!("pod {}: its node never got its object", lab.display))?;
    let start = Instant::now();
    agents.add_pod(cluster, pod)?;
    Ok(start.elapsed())
}

/// Starts a waiting client and reads its requests.
fn go(child: &mut std::process::Child) -> Result<Vec<Attempt>, String> {
    let mut stdin = child.stdin.take().ok_or("the client's stdin")?;
    stdin
        .write_all(b"go\n")
        .map_err(|e| format!("starting the client: {e}"))?;
    drop(stdin);
    let mut stdout = String::new();
    std::io::Read::read_to_string(
        child.stdout.as_mut().ok_or("the client's stdout")?,
        &mut stdout,
    )
    .map_err(|e| format!("the client's output: {e}"))?;
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        let mut stderr = String::new();
        if let Some(err) = child.stderr.as_mut() {
            let _ = std::io::Read::read_to_string(err, &mut stderr);
        }
        return Err(format!("the client failed: {}", stderr.trim()));
    }
    let rows: Vec<Json> =
        serde_json::from_str(stdout.trim()).map_err(|e| format!("the client's output: {e}"))?;
    rows.iter()
        .map(|row| {
            Ok(Attempt {
                done_us: row[1].as_u64(),
                answer: row[2]
                    .as_str()
                    .ok_or("the client's output: a row without answer")?
                    .to_owned(),
            })
        })
        .collect()
}

fn summarize(
    mode: Mode,
    delay: Duration,
    runs: &[PodRun],
    expected: &[Option<Ipv4Addr>],
) -> Scenario {
    let mut s = Scenario {
        mode,
        delay,
        pods: runs.len(),
        requests: 0,
        unanswered: 0,
        leaked: 0,
        leaked_addresses: BTreeMap::new(),
        masquerade_ms: Vec::new(),
        never_masqueraded: 0,
        add_ms: Vec::new(),
        failures: Vec::new(),
    };
    for ((add, attempts), expected) in runs.iter().zip(expected) {
        match add {
            Ok(d) => s.add_ms.push(d.as_secs_f64() * 1e3),
            Err(e) => s.failures.push(format!("ADD: {e}")),
        }
        let Some(expected) = expected else {
            s.failures
                .push("a pod the engines predict no gateway for".to_owned());
            continue;
        };
        let attempts = match attempts {
            Ok(a) => a,
            Err(e) => {
                if add.is_ok() {
                    s.failures.push(e.clone());
                }
                s.never_masqueraded += 1;
                continue;
            }
        };
        s.requests += attempts.len();
        let mut first = None::<u64>;
        for a in attempts {
            match a.done_us {
                None => s.unanswered += 1,
                Some(done) if a.answer == expected.to_string() => {
                    first = Some(first.map_or(done, |f| f.min(done)));
                }
                Some(_) => {
                    s.leaked += 1;
                    *s.leaked_addresses.entry(a.answer.clone()).or_default() += 1;
                }
            }
        }
        match first {
            Some(us) => s.masquerade_ms.push(us as f64 / 1e3),
            None => s.never_masqueraded += 1,
        }
    }
    s
}

/// Removes the scenario's pods: the runtime's DEL, then their objects deleted on every agent.
fn remove_pods(cluster: &Cluster, agents: &Agents, pods: &[usize], failures: &mut Vec<String>) {
    for &i in pods {
        if let Err(e) = agents.del_pod(cluster, i) {
            failures.push(e);
        }
        let lab = &cluster.pods[i];
        if let Ok(ep) = cluster.endpoint_of(i) {
            let delete =
                json!({"kind": "Pod", "namespace": ep.namespace, "name": ep.name, "uid": ep.uid});
            if let Err(e) = agents.delete(&delete.to_string()) {
                failures.push(format!("deleting pod {}: {e}", lab.display));
            }
        }
    }
}

/// The targets, unmet ones described: `cni` and `sync` leak nothing, `sync`'s
/// masquerade delay p99 is at most two intervals, every pod of both is seen with its egress
/// IP, and `watch` at a delay of 1 s or more shows the leak (else the measurement is blind).
pub(crate) fn unmet_targets(scenarios: &[Scenario], interval: Duration) -> Vec<String> {
    let mut unmet = Vec::new();
    for s in scenarios {
        let name = format!("{} at {} ms", s.mode.name(), s.delay.as_millis());
        if !s.failures.is_empty() {
            unmet.push(format!(
                "{name}: {} failure(s), first: {}",
                s.failures.len(),
                s.failures[0]
            ));
        }
        match s.mode {
            Mode::Cni | Mode::Sync => {
                if s.leaked > 0 {
                    unmet.push(format!("{name}: {} leaked request(s)", s.leaked));
                }
                if s.never_masqueraded > 0 {
                    unmet.push(format!(
                        "{name}: {} pod(s) never seen with their egress IP",
                        s.never_masqueraded
                    ));
                }
            }
            Mode::Watch => {
                if s.delay >= Duration::from_secs(1) && s.leaked == 0 {
                    unmet.push(format!("{name}: no leak seen — the measurement is blind"));
                }
            }
        }
        if s.mode == Mode::Sync {
            let bound = interval.as_secs_f64() * 2e3;
            match percentile(&s.masquerade_ms, 99.0) {
                Some(p99) if p99 <= bound => {}
                Some(p99) => unmet.push(format!(
                    "{name}: masquerade delay p99 {p99:.1} ms > {bound:.0} ms"
                )),
                None => unmet.push(format!("{name}: no pod seen with its egress IP")),
            }
        }
    }
    unmet
}

/// What the watch delay is, for every output.
pub(crate) const MODEL: &str = "the watch delay is a model of the API server's watch latency: every object (a pod created, its addresses after CNI ADD, a gateway's acknowledgement) reaches every node's agent that long after it was published";

/// A figure in ms to one decimal (null when there is none).
pub(crate) fn round(v: Option<f64>) -> Json {
    v.map_or(Json::Null, |v| json!((v * 10.0).round() / 10.0))
}

/// The `--json` document.
pub(crate) fn to_json(settings: &Settings, scenarios: &[Scenario], unmet: &[String]) -> Json {
    json!({
        "model": MODEL,
        "selection": match settings.selection { Selection::Cilium => "cilium", Selection::Consistent => "consistent" },
        "intervalMs": settings.interval.as_millis() as u64,
        "runMs": settings.run.as_millis() as u64,
        "scenarios": scenarios.iter().map(|s| json!({
            "mode": s.mode.name(),
            "watchDelayMs": s.delay.as_millis() as u64,
            "pods": s.pods,
            "requests": s.requests,
            "leaked": s.leaked,
            "leakedAddresses": s.leaked_addresses,
            "unanswered": s.unanswered,
            "masqueradeDelayMs": {
                "p50": round(percentile(&s.masquerade_ms, 50.0)),
                "p99": round(percentile(&s.masquerade_ms, 99.0)),
                "max": round(percentile(&s.masquerade_ms, 100.0)),
            },
            "neverMasqueraded": s.never_masqueraded,
            "addMs": {"p50": round(percentile(&s.add_ms, 50.0)), "p99": round(percentile(&s.add_ms, 99.0))},
            "failures": s.failures,
        })).collect::<Vec<_>>(),
        "targets": {"met": unmet.is_empty(), "unmet": unmet},
    })
}

/// The table.
pub(crate) fn print(settings: &Settings, scenarios: &[Scenario], unmet: &[String]) {
    println!(
        "egress-lab new-pods: {} pods per scenario created over {} ms on the workers; each pod's client opens a new connection to {ECHO} every {} ms for {} ms from the moment CNI ADD returns",
        settings.pods,
        settings.over.as_millis(),
        settings.interval.as_millis(),
        settings.run.as_millis()
    );
    println!("{MODEL}\n");
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
    let mut table = vec![[
        "Mode".to_owned(),
        "Watch delay (model)".to_owned(),
        "Pods".to_owned(),
        "Requests".to_owned(),
        "Leaked (seen as)".to_owned(),
        "Masquerade delay p50 / p99 / max ms".to_owned(),
        "ADD p50 / p99 ms".to_owned(),
    ]];
    for s in scenarios {
        let seen: Vec<String> = s
            .leaked_addresses
            .iter()
            .map(|(a, n)| format!("{a} ×{n}"))
            .collect();
        table.push([
            s.mode.name().to_owned(),
            format!("{} ms", s.delay.as_millis()),
            s.pods.to_string(),
            s.requests.to_string(),
            if seen.is_empty() {
                s.leaked.to_string()
            } else {
                format!("{} ({})", s.leaked, seen.join(", "))
            },
            format!(
                "{} / {} / {}{}",
                ms(percentile(&s.masquerade_ms, 50.0)),
                ms(percentile(&s.masquerade_ms, 99.0)),
                ms(percentile(&s.masquerade_ms, 100.0)),
                if s.never_masqueraded > 0 {
                    format!(" ({} never)", s.never_masqueraded)
                } else {
                    String::new()
                }
            ),
            format!(
                "{} / {}",
                ms(percentile(&s.add_ms, 50.0)),
                ms(percentile(&s.add_ms, 99.0))
            ),
        ]);
    }
    print!("{}", egress_core::render::tabulate(&table));
    if unmet.is_empty() {
        println!(
            "\ntargets met: cni and sync leak nothing, sync's masquerade delay p99 ≤ 2 intervals, watch at 1 s shows the leak"
        );
    } else {
        println!("\ntargets NOT met:");
        for u in unmet {
            println!("  {u}");
        }
    }
}
