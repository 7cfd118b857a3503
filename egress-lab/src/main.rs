//! `egress-lab`: the seed's experiment on real packets. The seed's cluster becomes network
//! namespaces on this machine, every node runs the lab's tc programs over its own pinned
//! Cilium maps, which the node's `egress-agent` (integrations/cni) programs, pods are made
//! through libcni as a runtime makes them, and every pod asks an echo server (the stand-in
//! for `ifconfig.me`) which address it came from.
//!
//! Exit codes: 0 every pod was seen as predicted (new-pods: the targets met), 1 the
//! experiment disagreed or failed, 2 usage, 3 this machine cannot run the lab (not root, a
//! tool or the CNI integration's commands missing).

mod agents;
mod bench;
mod changes;
mod cluster;
mod cmd;
mod datapath;
mod experiment;
mod failover;
mod http;
mod labcni;
mod newpods;
mod stream;
mod topology;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use egress_core::gateway::Selection;
use egress_core::maps::Layout;
use serde_json::json;

use crate::cluster::{Cluster, ECHO, ECHO_EXCLUDED};
use crate::experiment::Row;

#[derive(Parser)]
#[command(
    name = "egress-lab",
    version,
    about = "The seed's egress gateway experiment on real packets, in network namespaces (root)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the seed's cluster as a CNI deployment runs it (every node an `egress-agent`
    /// process programming its own maps, pods created through libcni: `ptp`, the lab's
    /// datapath plugin, `egress-cni`), have every pod fetch from the echo server, edit the
    /// policy, add, drain and remove gateways while every pod polls, and print what the
    /// internet saw beside the prediction; then remove everything. Needs integrations/cni's
    /// commands (scripts/test-cni.sh builds them in target/cni; EGRESS_CNI_BIN names another
    /// directory).
    Seed {
        /// Gateway selection of every node's engine.
        #[arg(long, value_enum, default_value_t = SelectionArg::Cilium)]
        selection: SelectionArg,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
        /// Leave the lab up afterwards (remove it with `egress-lab down`).
        #[arg(long)]
        keep: bool,
        /// The maps every agent writes and every node's datapath reads: Cilium's `_v4_v2`, or
        /// the compact layout (ours: endpoint blocks -> sets, (set, destination) rules).
        #[arg(long, value_enum, default_value_t = LayoutArg::V4v2)]
        layout: LayoutArg,
    },
    /// Measure the lab's datapath: each program's time per packet under real traffic, the
    /// egress decision alone (BPF_PROG_TEST_RUN), one download's throughput through a
    /// gateway and on the normal path; then remove everything.
    Bench {
        /// Bytes of each download.
        #[arg(long, default_value_t = 2_000_000_000)]
        bytes: u64,
    },
    /// Measure a new pod's first traffic (issue 24): pods are created one after another on
    /// the workers, each pod's client opens a new connection to the echo server every
    /// interval from the moment CNI ADD returns; per way of programming a new pod (watch:
    /// Cilium's, from the cluster stream; cni: inside CNI ADD; sync: ADD waits for the
    /// gateway's acknowledgement) and per modelled watch delay: the requests that leaked
    /// with another address, the masquerade delay, ADD's latency. Every node runs
    /// egress-agent (see `seed`). Exit 1 when a target is not met.
    NewPods {
        /// Pods per scenario.
        #[arg(long, default_value_t = 40)]
        pods: usize,
        /// Milliseconds over which each scenario's pods are created.
        #[arg(long, default_value_t = 4000)]
        over_ms: u64,
        /// Milliseconds each pod's client runs.
        #[arg(long, default_value_t = 2000)]
        run_ms: u64,
        /// Milliseconds between a client's connections.
        #[arg(long, default_value_t = 10)]
        interval_ms: u64,
        /// The modelled watch delays, in milliseconds.
        #[arg(long, value_delimiter = ',', default_values_t = [0, 100, 1000])]
        delays_ms: Vec<u64>,
        /// The ways of programming a new pod.
        #[arg(long, value_enum, value_delimiter = ',', default_values_t = [newpods::Mode::Watch, newpods::Mode::Cni, newpods::Mode::Sync])]
        modes: Vec<newpods::Mode>,
        /// Gateway selection of every node's agent.
        #[arg(long, value_enum, default_value_t = SelectionArg::Cilium)]
        selection: SelectionArg,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure gateway failover (issue 25): every agent probes the gateway nodes (ICMP every
    /// 100 ms); while every pod talks to the internet, gateway 172.22.49.119 loses its link,
    /// its agent, every link (frozen), or flaps; per fault and mode: the pods affected, the
    /// failover time, other pods' broken connections, leaked requests, moves. Exit 1 when a
    /// consistent-mode target is not met.
    Failover {
        /// The faults.
        #[arg(long, value_enum, value_delimiter = ',', default_values_t = [failover::Fault::Link, failover::Fault::Agent, failover::Fault::Freeze, failover::Fault::Flap])]
        faults: Vec<failover::Fault>,
        /// The gateway selections (compat mode is Cilium's: no health).
        #[arg(long, value_enum, value_delimiter = ',', default_values_t = [SelectionArg::Consistent, SelectionArg::Cilium])]
        selections: Vec<SelectionArg>,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove every namespace, pin and process a lab left (also after a failure).
    Down,
    /// (internal) The echo server, run in the internet namespace.
    #[command(hide = true)]
    EchoServer { addrs: Vec<SocketAddr> },
    /// (internal) Polls the echo server over one long-lived connection, run in a pod's
    /// namespace.
    #[command(hide = true)]
    Poll {
        addr: SocketAddr,
        #[arg(long, default_value_t = 20)]
        interval_ms: u64,
    },
    /// (internal) Downloads BYTES from the echo server, run in a pod's namespace; prints the
    /// seconds it took.
    #[command(hide = true)]
    Download { addr: SocketAddr, bytes: u64 },
    /// (internal) A new pod's client, run in its namespace: once a line arrives on stdin, a
    /// new connection every interval for the duration; prints every request's answer.
    #[command(hide = true)]
    Burst {
        addr: SocketAddr,
        #[arg(long, default_value_t = 10)]
        interval_ms: u64,
        #[arg(long, default_value_t = 2000)]
        duration_ms: u64,
        #[arg(long, default_value_t = 1500)]
        timeout_ms: u64,
    },
    /// (internal) One request to the echo server, run in a pod's namespace.
    #[command(hide = true)]
    Fetch {
        addr: SocketAddr,
        #[arg(long, default_value_t = 1500)]
        timeout_ms: u64,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum SelectionArg {
    Cilium,
    Consistent,
}

impl From<SelectionArg> for Selection {
    fn from(s: SelectionArg) -> Self {
        match s {
            SelectionArg::Cilium => Selection::Cilium,
            SelectionArg::Consistent => Selection::Consistent,
        }
    }
}

/// The maps of the lab's datapath.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LayoutArg {
    /// cilium_egress_gw_policy_v4_v2 (Cilium's, as 1.20 writes it).
    V4v2,
    /// The compact layout's endpoint-block hash and rule trie.
    Compact,
}

impl From<LayoutArg> for Layout {
    fn from(l: LayoutArg) -> Self {
        match l {
            LayoutArg::V4v2 => Layout::V4V2,
            LayoutArg::Compact => Layout::Compact,
        }
    }
}

fn main() -> ExitCode {
    if labcni::invoked() {
        return labcni::main();
    }
    match Cli::parse().command {
        Command::Seed {
            selection,
            json,
            keep,
            layout,
        } => seed(selection.into(), layout.into(), json, keep),
        Command::Bench { bytes } => bench(bytes),
        Command::NewPods {
            pods,
            over_ms,
            run_ms,
            interval_ms,
            delays_ms,
            modes,
            selection,
            json,
        } => new_pods(
            &newpods::Settings {
                pods,
                over: experiment::timeout(over_ms),
                run: experiment::timeout(run_ms),
                interval: experiment::timeout(interval_ms),
                timeout: experiment::timeout(1500),
                delays: delays_ms.into_iter().map(experiment::timeout).collect(),
                modes,
                selection: selection.into(),
            },
            json,
        ),
        Command::Failover {
            faults,
            selections,
            json,
        } => failover(
            &selections
                .into_iter()
                .map(Selection::from)
                .collect::<Vec<_>>(),
            &faults,
            json,
        ),
        Command::Burst {
            addr,
            interval_ms,
            duration_ms,
            timeout_ms,
        } => internal(
            "burst",
            http::burst(
                addr,
                experiment::timeout(interval_ms),
                experiment::timeout(duration_ms),
                experiment::timeout(timeout_ms),
            ),
        ),
        Command::Download { addr, bytes } => internal(
            "download",
            http::download(addr, bytes).map(|seconds| println!("{seconds}")),
        ),
        Command::Down => {
            if tear_down() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::EchoServer { addrs } => internal("echo-server", http::serve(&addrs)),
        Command::Poll { addr, interval_ms } => {
            internal("poll", http::poll(addr, experiment::timeout(interval_ms)))
        }
        Command::Fetch { addr, timeout_ms } => internal(
            "fetch",
            http::fetch(addr, experiment::timeout(timeout_ms)).map(|body| println!("{body}")),
        ),
    }
}

/// Removes everything a lab left, saying what could not be removed; whether all was.
fn tear_down() -> bool {
    let problems = topology::down();
    for p in &problems {
        eprintln!("egress-lab: {p}");
    }
    problems.is_empty()
}

/// The exit of an internal subcommand: its error on stderr.
fn internal(name: &str, result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("egress-lab {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why this machine cannot run the lab, if it cannot.
fn missing_requirements() -> Option<String> {
    if run_id() != Some(0) {
        return Some("egress-lab needs root (network namespaces, bpffs, tc programs)".to_owned());
    }
    let missing: Vec<&str> = ["ip", "tc", "nsenter", "kill", "bpftool", "clang", "gcc"]
        .into_iter()
        .filter(|tool| !cmd::available(tool))
        .collect();
    if !missing.is_empty() {
        return Some(format!(
            "missing {}: apt-get install -y iproute2 util-linux procps bpftool clang gcc libbpf-dev",
            missing.join(", ")
        ));
    }
    let header = std::path::Path::new("/usr/include/bpf/bpf_helpers.h");
    if !header.exists() {
        return Some(format!(
            "missing {}: apt-get install -y libbpf-dev",
            header.display()
        ));
    }
    None
}

/// The effective user id, from `/proc/self/status`.
fn run_id() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Checks the machine and arms Ctrl-C to remove everything; `Err` with the exit code when
/// the lab cannot run here.
fn start() -> Result<(), ExitCode> {
    if let Some(why) = missing_requirements() {
        eprintln!("egress-lab: {why}");
        return Err(ExitCode::from(3));
    }
    // Another run's lab: refused before anything is armed to remove it.
    match topology::lab_namespaces() {
        Ok(up) if !up.is_empty() => {
            eprintln!(
                "egress-lab: a lab is (partly) up already ({}): another run, or `egress-lab down` first",
                up.join(", ")
            );
            return Err(ExitCode::FAILURE);
        }
        Err(e) => {
            eprintln!("egress-lab: {e}");
            return Err(ExitCode::FAILURE);
        }
        Ok(_) => {}
    }
    let _ = ctrlc::set_handler(|| {
        tear_down();
        std::process::exit(130);
    });
    Ok(())
}

fn bench(bytes: u64) -> ExitCode {
    if let Err(code) = start() {
        return code;
    }
    if let Some(why) = agents::missing() {
        eprintln!("egress-lab: {why}");
        return ExitCode::from(3);
    }
    let result = (|| {
        let mut lab = setup(Selection::Cilium)?;
        lab.exclude_echo()?;
        let results = bench::measure(&lab.cluster, bytes);
        drop(lab);
        results
    })();
    tear_down();
    match result {
        Err(e) => {
            eprintln!("egress-lab: {e}");
            ExitCode::FAILURE
        }
        Ok(r) => {
            println!("throughput (one TCP download)");
            for (what, bytes, seconds) in &r.downloads {
                println!(
                    "  {what}: {bytes} bytes in {seconds:.3} s = {:.0} MB/s",
                    *bytes as f64 / seconds / 1e6
                );
            }
            println!("per packet, under that traffic (kernel BPF statistics)");
            for c in &r.costs {
                println!(
                    "  {:<15} {:<13} {:>8} packets {:>8.0} ns/packet",
                    c.node, c.program, c.packets, c.ns_per_packet
                );
            }
            println!("BPF_PROG_TEST_RUN, 200,000 runs each (one packet, run again and again)");
            for (what, ns) in &r.test_runs {
                println!("  {what}: {ns:.0} ns");
            }
            ExitCode::SUCCESS
        }
    }
}

/// The seed's lab, running: every node's agent, every pod made through libcni, the echo
/// server; the lab's prediction engines.
struct Lab {
    cluster: Cluster,
    engines: Vec<egress_core::engine::Engine>,
    agents: agents::Agents,
    _echo: experiment::EchoServer,
}

/// The lab's nodes up with their datapath and agents (`agent_args` added to each), the
/// prediction engines beside them; no pod made yet.
fn start_nodes(
    cluster: &Cluster,
    selection: Selection,
    agent_args: &[String],
) -> Result<(Vec<egress_core::engine::Engine>, agents::Agents), String> {
    topology::up(cluster)?;
    let object = datapath::prepare()?;
    // The predictions (and the maps, created empty, that the agents adopt).
    let engines = experiment::engines(cluster, selection)?;
    let devices = cluster
        .nodes
        .iter()
        .map(|n| experiment::devices(&n.ns))
        .collect::<Result<Vec<_>, _>>()?;
    let agents = agents::start(cluster, &devices, selection, agent_args)?;
    datapath::load_nodes(cluster, &object)?;
    Ok((engines, agents))
}

/// The seed's lab up: the agents get the cluster's first full list (the pods without
/// addresses), every pod is made through libcni (its node programs it in CNI ADD), then the
/// agents learn the pods' addresses (the gateways SNAT them).
fn setup(selection: Selection) -> Result<Lab, String> {
    setup_with(selection, &[])
}

/// [`setup`] on maps of `layout`.
fn setup_on(selection: Selection, layout: Layout) -> Result<Lab, String> {
    setup_lab(selection, &[], layout)
}

/// [`setup`] with `agent_args` added to every agent's.
fn setup_with(selection: Selection, agent_args: &[String]) -> Result<Lab, String> {
    setup_lab(selection, agent_args, Layout::V4V2)
}

/// The seed's lab with `agent_args` added to every agent's, every node on maps of `layout`.
fn setup_lab(selection: Selection, agent_args: &[String], layout: Layout) -> Result<Lab, String> {
    let mut cluster = Cluster::seed()?;
    cluster.layout = layout;
    let (engines, agents) = start_nodes(&cluster, selection, agent_args)?;
    agents.stream(&agents::objects(&cluster, false)?, true)?;
    for i in 0..cluster.pods.len() {
        agents.add_pod(&cluster, i)?;
    }
    agents.stream(&agents::objects(&cluster, true)?, false)?;
    let echo = experiment::EchoServer::start()?;
    Ok(Lab {
        cluster,
        engines,
        agents,
        _echo: echo,
    })
}

impl Lab {
    /// The policy edit of the experiment's second part: `egress-test` with `excludedCIDRs:
    /// [198.51.100.81/32]`, told to every agent and to the predictions; the policy now.
    fn exclude_echo(&mut self) -> Result<serde_json::Value, String> {
        let mut policy = agents::seed_policy()?;
        policy["spec"]["excludedCIDRs"] = json!([format!("{ECHO_EXCLUDED}/32")]);
        experiment::predict_policy(&mut self.engines, &policy.to_string())?;
        self.agents.stream(&policy.to_string(), false)?;
        Ok(policy)
    }
}

fn seed(selection: Selection, layout: Layout, as_json: bool, keep: bool) -> ExitCode {
    if let Err(code) = start() {
        return code;
    }
    if let Some(why) = agents::missing() {
        eprintln!("egress-lab: {why}");
        return ExitCode::from(3);
    }
    let result = run_seed(selection, layout);
    if !keep {
        tear_down();
    }
    match result {
        Err(e) => {
            eprintln!("egress-lab: {e}");
            ExitCode::FAILURE
        }
        Ok(results) => {
            if as_json {
                println!("{}", results.to_json(selection, layout));
            } else {
                results.print(selection, layout);
            }
            if results.agree() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn failover(selections: &[Selection], faults: &[failover::Fault], as_json: bool) -> ExitCode {
    if selections.is_empty() || faults.is_empty() {
        eprintln!("egress-lab: --selections and --faults: each needs a value");
        return ExitCode::from(2);
    }
    measure(
        || failover::run_all(selections, faults),
        |results| failover::unmet_targets(results),
        as_json,
        |results, unmet| failover::to_json(results, unmet),
        |results, unmet| failover::print(results, unmet),
    )
}

fn new_pods(settings: &newpods::Settings, as_json: bool) -> ExitCode {
    if settings.pods == 0
        || settings.interval.is_zero()
        || settings.delays.is_empty()
        || settings.modes.is_empty()
    {
        eprintln!(
            "egress-lab: --pods, --interval-ms, --delays-ms and --modes: each needs a positive value"
        );
        return ExitCode::from(2);
    }
    measure(
        || newpods::run(settings),
        |scenarios| newpods::unmet_targets(scenarios, settings.interval),
        as_json,
        |scenarios, unmet| newpods::to_json(settings, scenarios, unmet),
        |scenarios, unmet| newpods::print(settings, scenarios, unmet),
    )
}

/// A measurement on the agents: the machine and the CNI integration's commands checked, the
/// run, the lab removed, the figures as JSON or a table; exit 1 when a target is not met.
fn measure<T>(
    run: impl FnOnce() -> Result<T, String>,
    unmet: impl FnOnce(&T) -> Vec<String>,
    as_json: bool,
    json: impl FnOnce(&T, &[String]) -> serde_json::Value,
    print: impl FnOnce(&T, &[String]),
) -> ExitCode {
    if let Err(code) = start() {
        return code;
    }
    if let Some(why) = agents::missing() {
        eprintln!("egress-lab: {why}");
        return ExitCode::from(3);
    }
    let result = run();
    tear_down();
    match result {
        Err(e) => {
            eprintln!("egress-lab: {e}");
            ExitCode::FAILURE
        }
        Ok(figures) => {
            let unmet = unmet(&figures);
            if as_json {
                let doc = json(&figures, &unmet);
                println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
            } else {
                print(&figures, &unmet);
            }
            if unmet.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// What one run found.
struct Results {
    /// Each part: its title and its rows.
    parts: Vec<(String, Vec<Row>)>,
    /// Each node's datapath counters (non-zero only).
    counters: Vec<(String, Vec<(&'static str, u64)>)>,
    /// The changes made while traffic flowed.
    events: Vec<changes::EventResult>,
}

impl Results {
    /// Every pod seen as predicted, every moved pod seen with its new address after each
    /// change, and no connection of a pod that did not move broken.
    fn agree(&self) -> bool {
        self.parts
            .iter()
            .all(|(_, rows)| rows.iter().all(Row::agrees))
            && self.events.iter().all(|e| {
                e.broken_unmoved.is_empty() && e.new_address_ms.iter().all(Option::is_some)
            })
    }

    fn print(&self, selection: Selection, layout: Layout) {
        println!(
            "egress-lab seed ({selection:?} selection, {layout} maps): what the internet saw, and what the engines predict\n"
        );
        for (title, rows) in &self.parts {
            println!("{title}");
            let mut table = vec![[
                "Pod".to_owned(),
                "Pod IP".to_owned(),
                "Node".to_owned(),
                "Predicted (via)".to_owned(),
                "Seen by the internet".to_owned(),
                String::new(),
            ]];
            for r in rows {
                table.push([
                    r.pod.clone(),
                    r.ip.to_string(),
                    r.node.clone(),
                    match r.predicted.seen {
                        Some(ip) => format!("{ip} ({})", r.predicted.via),
                        None => r.predicted.via.clone(),
                    },
                    match &r.observed {
                        Ok(ip) => ip.to_string(),
                        Err(e) => format!("failed: {e}"),
                    },
                    if r.agrees() { "ok" } else { "DIFFERS" }.to_owned(),
                ]);
            }
            print!("{}", egress_core::render::tabulate(&table));
            println!();
        }
        println!("changes while every pod polls {ECHO} over one long-lived connection");
        let mut table = vec![[
            "Event".to_owned(),
            "Pods moved".to_owned(),
            "New address seen after".to_owned(),
            "Connections broken (moved / not moved)".to_owned(),
            "Packets dropped".to_owned(),
        ]];
        for e in &self.events {
            let times: Vec<u128> = e.new_address_ms.iter().flatten().copied().collect();
            let missing = e.new_address_ms.len() - times.len();
            table.push([
                e.name.clone(),
                e.moved.len().to_string(),
                match (times.iter().min(), times.iter().max()) {
                    (Some(lo), Some(hi)) if missing == 0 => format!("{lo}-{hi} ms"),
                    (_, _) if missing > 0 => format!("{missing} never"),
                    _ => "-".to_owned(),
                },
                format!("{} / {}", e.broken_moved.len(), e.broken_unmoved.len()),
                if e.cross_moves {
                    format!("{} (cross moves)", e.dropped)
                } else {
                    e.dropped.to_string()
                },
            ]);
        }
        print!("{}", egress_core::render::tabulate(&table));
        println!();
        println!("datapath counters");
        for (node, counters) in &self.counters {
            for (name, value) in counters {
                println!("  {node:<15} {value:>6}  {name}");
            }
        }
    }

    fn to_json(&self, selection: Selection, layout: Layout) -> String {
        let parts: Vec<_> = self
            .parts
            .iter()
            .map(|(title, rows)| {
                json!({
                    "title": title,
                    "rows": rows.iter().map(|r| json!({
                        "pod": r.pod,
                        "ip": r.ip.to_string(),
                        "node": r.node,
                        "destination": r.destination.to_string(),
                        "predicted": r.predicted.seen.map(|ip| ip.to_string()),
                        "via": r.predicted.via,
                        "observed": r.observed.as_ref().ok().map(ToString::to_string),
                        "error": r.observed.as_ref().err(),
                        "agrees": r.agrees(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let counters: serde_json::Map<String, serde_json::Value> = self
            .counters
            .iter()
            .map(|(node, c)| {
                (
                    node.clone(),
                    c.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect(),
                )
            })
            .collect();
        let selection = match selection {
            Selection::Cilium => "cilium",
            Selection::Consistent => "consistent",
        };
        let events: Vec<_> = self
            .events
            .iter()
            .map(|e| {
                json!({
                    "name": e.name,
                    "moved": e.moved,
                    "newAddressMs": e.new_address_ms,
                    "brokenMoved": e.broken_moved,
                    "brokenUnmoved": e.broken_unmoved,
                    "dropped": e.dropped,
                    "crossMoves": e.cross_moves,
                })
            })
            .collect();
        serde_json::to_string_pretty(&json!({
            "selection": selection,
            "layout": layout.name(),
            "parts": parts,
            "events": events,
            "counters": counters,
        }))
        .unwrap_or_default()
    }
}

/// Each node's datapath counters that are not zero, by name.
#[allow(clippy::type_complexity)]
fn node_counters(cluster: &Cluster) -> Result<Vec<(String, Vec<(&'static str, u64)>)>, String> {
    let fs = datapath::bpffs();
    let mut counters = Vec::new();
    for node in &cluster.nodes {
        let values = datapath::counters(&node.pin_dir(&fs))?;
        let named = datapath::COUNTERS
            .iter()
            .zip(values)
            .filter(|(_, v)| *v > 0)
            .map(|(k, v)| (*k, v))
            .collect();
        counters.push((node.name.clone(), named));
    }
    Ok(counters)
}

fn run_seed(selection: Selection, layout: Layout) -> Result<Results, String> {
    let mut lab = setup_on(selection, layout)?;
    let mut parts = Vec::new();
    parts.push((
        format!(
            "the seed's policy, every pod fetching from {ECHO} (every node an egress-agent process, pods made through libcni)"
        ),
        experiment::fetch_all(&lab.cluster, &lab.engines, ECHO),
    ));
    let policy = lab.exclude_echo()?;
    parts.push((
        format!(
            "the policy edited: excludedCIDRs [{ECHO_EXCLUDED}/32]; fetching from {ECHO_EXCLUDED}"
        ),
        experiment::fetch_all(&lab.cluster, &lab.engines, ECHO_EXCLUDED),
    ));
    parts.push((
        format!("the same policy, fetching from {ECHO}"),
        experiment::fetch_all(&lab.cluster, &lab.engines, ECHO),
    ));
    let events = changes::run(&lab.cluster, &mut lab.engines, &lab.agents, &policy)?;
    let counters = node_counters(&lab.cluster)?;
    Ok(Results {
        parts,
        counters,
        events,
    })
}
