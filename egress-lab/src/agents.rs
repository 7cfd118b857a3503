//! The lab's nodes as a CNI deployment runs them (issue 24): every node runs `egress-agent`
//! (integrations/cni) as its own process in its namespace, programming its own maps; pods are
//! created through libcni (`egress-cni-run`, the runtime's call) with the network list
//! `ptp (static IPAM: the seed's address) → egress-cni`, so the pod's node programs it inside
//! CNI ADD; the lab is the cluster: it streams the objects (the Pods with their addresses once
//! they have them) to every agent.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use egress_core::device::{Device, Families};
use egress_core::document::{self, Value};
use serde_json::{Value as Json, json};

use crate::cluster::{Cluster, POD_MTU, RUN_DIR, SEED, VPC};
use crate::cmd::run;

/// Where the CNI integration's commands are: `EGRESS_CNI_BIN`, else `target/cni` of this
/// checkout (scripts/test-cni.sh builds them there).
pub(crate) fn bin_dir() -> PathBuf {
    match std::env::var_os("EGRESS_CNI_BIN") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/cni"),
    }
}

/// Why the agents cannot run here, if they cannot.
pub(crate) fn missing() -> Option<String> {
    let dir = bin_dir();
    for name in ["egress-agent-bpf", "egress-cni", "egress-cni-run"] {
        if !dir.join(name).is_file() {
            return Some(format!(
                "{}: missing (build it with scripts/test-cni.sh, or name its directory in EGRESS_CNI_BIN)",
                dir.join(name).display()
            ));
        }
    }
    if !Path::new("/usr/lib/cni/ptp").is_file() {
        return Some(
            "the reference CNI plugins: apt-get install -y containernetworking-plugins".to_owned(),
        );
    }
    None
}

/// The pods' gateway on their node in this mode. ptp needs it inside the pod's subnet (it
/// routes the subnet and the default route through it), so not Cilium's local router
/// (169.254.32.16) but an unused address of the VPC: every pod's address is given with the
/// VPC's prefix, and everything it sends goes to its node's end of the veth pair.
const PTP_GATEWAY: std::net::Ipv4Addr = std::net::Ipv4Addr::new(172, 22, 63, 254);

/// Every node's agent process and socket, and where the plugins are.
pub(crate) struct Agents {
    children: Vec<Child>,
    sockets: Vec<PathBuf>,
    /// Each agent's `nsenter` arguments (its command line).
    commands: Vec<Vec<String>>,
    /// `egress-cni-run --plugin-path`: the CNI integration's commands, the lab's plugin, the
    /// reference plugins.
    plugin_path: String,
}

impl Drop for Agents {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn dir() -> PathBuf {
    Path::new(RUN_DIR).join("agents")
}

/// A node's devices in the snapshot's `interfaces` shape (what `--devices` reads).
fn devices_json(devices: &[Device]) -> Json {
    Json::Array(
        devices
            .iter()
            .map(|d| {
                let mut families = Vec::new();
                if d.default_route.contains(Families::IPV4) {
                    families.push("ipv4");
                }
                if d.default_route.contains(Families::IPV6) {
                    families.push("ipv6");
                }
                json!({
                    "name": d.name,
                    "index": d.index,
                    "altNames": d.alt_names,
                    "addresses": d.addresses.iter().map(|a| format!("{}/{}", a.addr, a.prefix_len)).collect::<Vec<_>>(),
                    "defaultRoute": families,
                })
            })
            .collect(),
    )
}

/// Starts every node's agent on its pin directory (the maps the datapath reads: `_v4_v2`),
/// with `extra` arguments.
pub(crate) fn start(
    cluster: &Cluster,
    devices: &[Vec<Device>],
    selection: egress_core::gateway::Selection,
    extra: &[String],
) -> Result<Agents, String> {
    let selection = match selection {
        egress_core::gateway::Selection::Cilium => "cilium",
        egress_core::gateway::Selection::Consistent => "consistent",
    };
    std::fs::create_dir_all(dir()).map_err(|e| format!("{}: {e}", dir().display()))?;
    let fs = crate::datapath::bpffs();
    let mut agents = Agents {
        children: Vec::new(),
        sockets: Vec::new(),
        commands: Vec::new(),
        plugin_path: format!(
            "{}:{}:/usr/lib/cni",
            bin_dir().display(),
            crate::labcni::install()?.display()
        ),
    };
    for (i, node) in cluster.nodes.iter().enumerate() {
        let base = dir().join(format!("node{i}"));
        let devices_file = base.with_extension("devices.json");
        std::fs::write(&devices_file, devices_json(&devices[i]).to_string())
            .map_err(|e| format!("{}: {e}", devices_file.display()))?;
        let socket = base.with_extension("sock");
        let mut args: Vec<String> = vec![
            format!("--net=/run/netns/{}", node.ns),
            bin_dir().join("egress-agent-bpf").display().to_string(),
        ];
        for (flag, value) in [
            ("--node", node.name.clone()),
            ("--layout", cluster.layout.name().to_owned()),
            ("--selection", selection.to_owned()),
            ("--pin-dir", node.pin_dir(&fs).display().to_string()),
            ("--socket", socket.display().to_string()),
            (
                "--state",
                base.with_extension("state.json").display().to_string(),
            ),
            (
                "--del-queue",
                base.with_extension("queue").display().to_string(),
            ),
            ("--devices", devices_file.display().to_string()),
        ] {
            args.extend([flag.to_owned(), value]);
        }
        args.extend(extra.iter().cloned());
        agents.commands.push(args);
        agents.sockets.push(socket);
        let child = agents.spawn(i)?;
        agents.children.push(child);
    }
    for i in 0..agents.sockets.len() {
        agents.wait_up(i, &cluster.nodes[i].name)?;
    }
    Ok(agents)
}

/// One request to an agent over its unix socket (HTTP/1.1, one connection per request): its
/// body, or the error it answered.
pub(crate) fn post(socket: &Path, method: &str, path: &str, body: &str) -> Result<String, String> {
    let mut stream =
        UnixStream::connect(socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| e.to_string())?;
    let (head, rest) = answer
        .split_once("\r\n\r\n")
        .ok_or("an answer without headers")?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!("{method} {path}: HTTP {status}: {}", rest.trim()));
    }
    // The agent's answers are small JSON; chunked encoding is not used for them.
    Ok(rest.to_owned())
}

/// The seed's objects as a cluster of core Pods and Nodes would give them (B.10): the policy,
/// each node with its labels and address, each pod with its uid and labels — and its address
/// when `with_ips`.
pub(crate) fn objects(cluster: &Cluster, with_ips: bool) -> Result<String, String> {
    let mut items = cluster_objects(cluster)?;
    items.extend(
        cluster
            .snapshot
            .endpoints
            .iter()
            .map(|ep| pod_object(ep, with_ips)),
    );
    Ok(list(items))
}

/// Objects as a `List`.
pub(crate) fn list(items: Vec<Json>) -> String {
    json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
}

/// The seed's policies as Kubernetes objects (JSON).
fn seed_policies() -> Result<Vec<Json>, String> {
    let docs = document::parse_documents(SEED).map_err(|e| e.to_string())?;
    Ok(docs
        .first()
        .and_then(|d| d.get("policies"))
        .and_then(|p| match p {
            Value::Seq(items) => Some(items.iter().map(Value::to_json).collect()),
            _ => None,
        })
        .unwrap_or_default())
}

/// The seed's policy `egress-test` (JSON), which the lab edits.
pub(crate) fn seed_policy() -> Result<Json, String> {
    seed_policies()?
        .into_iter()
        .find(|p| p["metadata"]["name"] == "egress-test")
        .ok_or_else(|| "the seed has no policy egress-test".to_owned())
}

/// The seed's policy, the cluster's nodes and its pods' namespaces (no pod).
pub(crate) fn cluster_objects(cluster: &Cluster) -> Result<Vec<Json>, String> {
    let mut items = seed_policies()?;
    for node in cluster.snapshot.nodes.values() {
        items.push(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node.name, "labels": node.labels.iter().collect::<BTreeMap<_, _>>()},
            "status": {"addresses": node.ipv4.map(|ip| vec![json!({"type": "InternalIP", "address": ip.to_string()})]).unwrap_or_default()},
        }));
    }
    let namespaces: BTreeMap<_, _> = cluster
        .snapshot
        .endpoints
        .iter()
        .filter_map(|ep| {
            let labels: BTreeMap<_, _> = ep.namespace_labels.iter().collect();
            Some((ep.namespace.clone()?, labels))
        })
        .collect();
    for (name, labels) in namespaces {
        items.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}));
    }
    Ok(items)
}

/// A pod's object: with its uid, labels and node, Pending — Running with its address when
/// `with_ips`.
pub(crate) fn pod_object(ep: &egress_core::cluster::Endpoint, with_ips: bool) -> Json {
    let mut status = json!({"phase": "Pending"});
    if with_ips {
        status = json!({"phase": "Running", "podIPs": ep.ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect::<Vec<_>>()});
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": ep.name, "namespace": ep.namespace, "uid": ep.uid,
                     "labels": ep.labels.iter().collect::<BTreeMap<_, _>>()},
        "spec": {"nodeName": ep.node, "serviceAccountName": ep.service_account},
        "status": status,
    })
}

impl Agents {
    /// Starts node `i`'s agent process (its log appended to `node{i}.log`).
    fn spawn(&self, i: usize) -> Result<Child, String> {
        let log_path = dir().join(format!("node{i}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        Command::new("nsenter")
            .args(&self.commands[i])
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting egress-agent {i}: {e}"))
    }

    /// Waits until node `i`'s agent answers (10 s at most).
    fn wait_up(&self, i: usize, name: &str) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while post(&self.sockets[i], "GET", "/v1/status", "").is_err() {
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(dir().join(format!("node{i}.log"))).unwrap_or_default();
                return Err(format!("egress-agent of {name} did not come up:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Kills node `i`'s agent (SIGKILL: a crash; its maps and datapath stay).
    pub(crate) fn kill(&mut self, i: usize) -> Result<(), String> {
        let child = &mut self.children[i];
        child
            .kill()
            .map_err(|e| format!("killing agent {i}: {e}"))?;
        child.wait().map(drop).map_err(|e| e.to_string())
    }

    /// Starts node `i`'s agent again (it adopts its maps) and waits until it answers.
    pub(crate) fn restart(&mut self, i: usize, name: &str) -> Result<(), String> {
        self.children[i] = self.spawn(i)?;
        self.wait_up(i, name)
    }

    /// Every agent's socket, in the nodes' order.
    pub(crate) fn sockets(&self) -> &[PathBuf] {
        &self.sockets
    }

    /// One request to node `i`'s agent: its answer's body.
    pub(crate) fn send(&self, i: usize, path: &str, body: &str) -> Result<String, String> {
        post(&self.sockets[i], "POST", path, body)
    }

    /// A deleted object (`/v1/delete`), told to every agent at once.
    pub(crate) fn delete(&self, request: &str) -> Result<(), String> {
        for socket in &self.sockets {
            post(socket, "POST", "/v1/delete", request)?;
        }
        Ok(())
    }

    /// Streams objects to every agent (`sync`: the end of the first full list).
    pub(crate) fn stream(&self, objects: &str, sync: bool) -> Result<(), String> {
        let path = if sync {
            "/v1/objects?sync=1"
        } else {
            "/v1/objects"
        };
        for socket in &self.sockets {
            post(socket, "POST", path, objects)?;
        }
        Ok(())
    }

    /// Creates a pod's network as a runtime does (libcni: ptp with the pod's address, the lab's
    /// datapath plugin, then egress-cni, which has the pod's node program it before ADD
    /// returns).
    pub(crate) fn add_pod(&self, cluster: &Cluster, pod: usize) -> Result<(), String> {
        self.cni("add", cluster, pod).map(drop)
    }

    /// Tears a pod's network down as a runtime does (libcni DEL, the plugins in reverse).
    pub(crate) fn del_pod(&self, cluster: &Cluster, pod: usize) -> Result<(), String> {
        self.cni("del", cluster, pod).map(drop)
    }

    /// `egress-cni-run COMMAND` for a pod, in its node's namespace: what it printed.
    fn cni(&self, command: &str, cluster: &Cluster, pod: usize) -> Result<String, String> {
        let lab = &cluster.pods[pod];
        let ep = cluster.endpoint_of(pod)?;
        let node = &cluster.nodes[lab.node];
        let conflist = json!({
            "cniVersion": "1.0.0", "name": "egress-lab",
            "plugins": [
                {"type": "ptp", "mtu": POD_MTU, "ipam": {"type": "static",
                    "addresses": [{"address": format!("{}/{}", lab.ip, VPC.1), "gateway": PTP_GATEWAY.to_string()}],
                    "routes": [{"dst": "0.0.0.0/0"}]}},
                {"type": crate::labcni::PLUGIN, "nodeNamespace": node.ns,
                 "pinDir": node.pin_dir(&crate::datapath::bpffs())},
                {"type": "egress-cni", "agentSocket": self.sockets[lab.node],
                 "delQueue": dir().join(format!("node{}.queue", lab.node)),
                 "timeoutSeconds": 30},
            ],
        });
        let file = dir().join(format!("pod{pod}.conflist"));
        std::fs::write(&file, conflist.to_string()).map_err(|e| e.to_string())?;
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_UID={}",
            ep.namespace.as_deref().unwrap_or(""),
            ep.name.as_deref().unwrap_or(""),
            ep.uid
        );
        let bin = bin_dir();
        run(
            "nsenter",
            &[
                &format!("--net=/run/netns/{}", node.ns),
                bin.join("egress-cni-run").to_str().unwrap_or_default(),
                command,
                "--conflist",
                file.to_str().unwrap_or_default(),
                "--netns",
                &format!("/run/netns/{}", lab.ns),
                "--container-id",
                &lab.ns,
                "--args",
                &args,
                "--plugin-path",
                &self.plugin_path,
            ],
        )
        .map_err(|e| format!("pod {}: CNI {command}: {e}", lab.display))
    }
}
