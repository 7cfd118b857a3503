//! The seed's experiment: every node's agent programs its maps, every pod fetches from the
//! echo server, and what the "internet" saw is set beside what the lab's engines (one per
//! node, the same library, in process) predict.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Stdio};
use std::time::Duration;

use egress_bpf::EgressMaps;
use egress_core::device;
use egress_core::engine::{Engine, EngineConfig};
use egress_core::gateway::Selection;
use egress_core::lookup::Verdict;

use crate::cluster::{Cluster, ECHO, ECHO_EXCLUDED, INET_NS, LabPod};
use crate::cmd::{lab_in_netns, run};
use crate::datapath;

/// The devices of a node's namespace, as the engine derives egress IPs and ifindexes from
/// them (what `egressctl --interfaces host` reads on a real node).
pub(crate) fn devices(ns: &str) -> Result<Vec<device::Device>, String> {
    let addrs = run("ip", &["-n", ns, "-j", "addr", "show"])?;
    let v4 = run("ip", &["-n", ns, "-4", "-j", "route", "show", "default"])?;
    let v6 = run("ip", &["-n", ns, "-6", "-j", "route", "show", "default"])?;
    device::from_iproute2(&addrs, &v4, &v6).map_err(|e| format!("{ns}: devices: {e}"))
}

/// Creates every node's Cilium maps (empty) in its pin directory, where the datapath will
/// find them and the node's agent adopts them, and an engine per node holding the seed's
/// objects and its own devices: the lab's **prediction** of what each node's agent programs
/// (it programs nothing itself).
pub(crate) fn engines(cluster: &Cluster, selection: Selection) -> Result<Vec<Engine>, String> {
    let fs = datapath::bpffs();
    let mut out = Vec::new();
    for node in &cluster.nodes {
        // Cilium 1.18's rules (the seed's), written to the one IPv4 map the lab's datapath
        // reads, `_v4_v2` (1.18 stores no ifindex: its entries hold 0, a route lookup), or
        // to the compact layout's maps.
        let config = EngineConfig {
            selection,
            layout: cluster.layout,
            ..EngineConfig::new(&node.name)
        };
        let (mut engine, rejected) = Engine::from_snapshot(&cluster.snapshot, config);
        if let Some(errors) = rejected.first() {
            return Err(format!("the seed holds an invalid policy: {errors}"));
        }
        engine.set_devices(devices(&node.ns)?);
        EgressMaps::open_or_create(&node.pin_dir(&fs), cluster.layout, None)
            .map_err(|e| format!("{}: {e}", node.name))?;
        out.push(engine);
    }
    Ok(out)
}

/// The nodes that become a moved pod's gateway, and those that stop being one.
pub(crate) fn gateway_changes(
    before: &[Prediction],
    after: &[Prediction],
) -> (Vec<usize>, Vec<usize>) {
    let moved = || (0..before.len()).filter(|&i| before[i] != after[i]);
    let gaining = moved().filter_map(|i| after[i].gateway).collect();
    let losing = moved().filter_map(|i| before[i].gateway).collect();
    (gaining, losing)
}

/// What a pod's packet to `dst` should leave with, by the engines: the source address the
/// internet sees (`None`: dropped), the node that SNATs it as its gateway (an index into the
/// cluster's nodes; `None` on the normal path or a drop), and how, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Prediction {
    pub(crate) seen: Option<Ipv4Addr>,
    pub(crate) gateway: Option<usize>,
    pub(crate) via: String,
}

/// The engines' answer for `pod` → `dst`: its own node's verdict, and where it forwards,
/// the gateway's (A.6: the gateway SNATs only with an entry naming itself and an egress IP).
pub(crate) fn predict(
    cluster: &Cluster,
    engines: &[Engine],
    pod: &LabPod,
    dst: Ipv4Addr,
) -> Prediction {
    let node = &cluster.nodes[pod.node];
    let (src, dst) = (IpAddr::V4(pod.ip), IpAddr::V4(dst));
    let dropped = |via: &str| Prediction {
        seen: None,
        gateway: None,
        via: via.to_owned(),
    };
    match engines[pod.node].lookup(src, dst) {
        Verdict::NoEntry | Verdict::Excluded => Prediction {
            seen: Some(node.ipv4),
            gateway: None,
            via: "normal path".to_owned(),
        },
        Verdict::Drop(_) => dropped("dropped (no gateway or egress IP)"),
        Verdict::Masquerade {
            egress_ip: IpAddr::V4(egress),
            ..
        } => Prediction {
            seen: Some(egress),
            gateway: Some(pod.node),
            via: format!("gateway {}", node.name),
        },
        Verdict::Masquerade { .. } => dropped("dropped (no IPv4 egress IP)"),
        Verdict::Forward { gateway } => {
            let Some(at) = cluster.nodes.iter().position(|n| n.ipv4 == gateway) else {
                return dropped("dropped (the gateway is no lab node)");
            };
            match engines[at].lookup(src, dst) {
                Verdict::Masquerade {
                    egress_ip: IpAddr::V4(egress),
                    ..
                } if !egress.is_unspecified() => Prediction {
                    seen: Some(egress),
                    gateway: Some(at),
                    via: format!("gateway {}", cluster.nodes[at].name),
                },
                _ => dropped("dropped at the gateway (its map names no egress IP)"),
            }
        }
    }
}

/// The echo server, running in the internet namespace until killed.
pub(crate) struct EchoServer(Child);

impl EchoServer {
    pub(crate) fn start() -> Result<Self, String> {
        let echo = format!("{ECHO}:80");
        let excluded = format!("{ECHO_EXCLUDED}:80");
        let mut child = lab_in_netns(INET_NS, &["echo-server", &echo, &excluded])?
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting the echo server: {e}"))?;
        let stdout = child.stdout.take().ok_or("the echo server's output")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("the echo server: {e}"))?;
        if line.trim() != "ready" {
            let _ = child.kill();
            return Err("the echo server did not start".to_owned());
        }
        Ok(Self(child))
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the echo server saw when `pod` fetched from `dst` (`Err`: the fetch failed).
pub(crate) fn fetch_from(pod: &LabPod, dst: Ipv4Addr) -> Result<Ipv4Addr, String> {
    let addr = SocketAddr::from((dst, 80)).to_string();
    let out = lab_in_netns(&pod.ns, &["fetch", &addr, "--timeout-ms", "1500"])?
        .output()
        .map_err(|e| format!("{}: {e}", pod.display))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    text.trim()
        .parse()
        .map_err(|_| format!("{}: the server answered {text:?}", pod.display))
}

/// One row of the result table.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) pod: String,
    pub(crate) ip: Ipv4Addr,
    pub(crate) node: String,
    pub(crate) destination: Ipv4Addr,
    pub(crate) predicted: Prediction,
    pub(crate) observed: Result<Ipv4Addr, String>,
}

impl Row {
    /// Whether the internet saw what the engines predicted (a predicted drop: nothing seen).
    pub(crate) fn agrees(&self) -> bool {
        match (&self.predicted.seen, &self.observed) {
            (Some(p), Ok(o)) => p == o,
            (None, Err(_)) => true,
            _ => false,
        }
    }
}

/// Every pod fetches from `dst`, in parallel.
pub(crate) fn fetch_all(cluster: &Cluster, engines: &[Engine], dst: Ipv4Addr) -> Vec<Row> {
    let observed: Vec<Result<Ipv4Addr, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = cluster
            .pods
            .iter()
            .map(|pod| s.spawn(move || fetch_from(pod, dst)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("the fetch panicked".to_owned()))
            })
            .collect()
    });
    cluster
        .pods
        .iter()
        .zip(observed)
        .map(|(pod, observed)| Row {
            pod: pod.display.clone(),
            ip: pod.ip,
            node: cluster.nodes[pod.node].name.clone(),
            destination: dst,
            predicted: predict(cluster, engines, pod, dst),
            observed,
        })
        .collect()
}

/// Applies a policy (a CiliumEgressGatewayPolicy as JSON) to the predictions' engines.
pub(crate) fn predict_policy(engines: &mut [Engine], policy: &str) -> Result<(), String> {
    for engine in engines {
        let applied = engine
            .apply_text(policy)
            .map_err(|e| format!("the lab's policy: {e}"))?;
        if let Some(refused) = applied.invalid_policies.first() {
            return Err(format!("the lab's policy was refused: {refused}"));
        }
    }
    Ok(())
}

/// Milliseconds as a duration (the internal subcommands' timeouts and intervals).
pub(crate) fn timeout(ms: u64) -> Duration {
    Duration::from_millis(ms)
}
