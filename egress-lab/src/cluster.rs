//! The seed's cluster as the lab builds it: the nodes and pods of the snapshot, each given a
//! network namespace, interface names and a pin directory.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use egress_core::maps::Layout;
use egress_core::snapshot::Snapshot;

/// The seed's "group of egress nodes" cluster (`examples/snapshots/seed-gateway-group.yaml`):
/// 2 workers with 5 nginx pods each, 3 egress nodes, the policy `egress-test`.
pub(crate) const SEED: &str = include_str!("../../examples/snapshots/seed-gateway-group.yaml");

/// The VPC: every node's and pod's address is in 172.22.48.0/20 (the seed's TKE VPC).
pub(crate) const VPC: (Ipv4Addr, u8) = (Ipv4Addr::new(172, 22, 48, 0), 20);
/// The VPC router, every node's default gateway: the "internet" namespace.
pub(crate) const ROUTER: Ipv4Addr = Ipv4Addr::new(172, 22, 48, 1);
/// The stand-in for `ifconfig.me`: answers with the client's source address.
pub(crate) const ECHO: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 80);
/// The same server on a second address, for a destination a policy excludes.
pub(crate) const ECHO_EXCLUDED: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 81);
/// The first address of `egress-lab new-pods`'s pods (the VPC's 172.22.56.0/21 is free).
pub(crate) const NEW_PODS: Ipv4Addr = Ipv4Addr::new(172, 22, 56, 1);
/// Pod and tunnel MTU: the VPC's 1500 less VXLAN's 50 bytes, as Cilium sets it for the egress
/// gateway in native routing.
pub(crate) const POD_MTU: u32 = 1450;
/// Cilium's VXLAN port.
pub(crate) const VXLAN_PORT: u16 = 8472;
/// The VNI the datapath puts on tunnelled packets.
pub(crate) const VNI: u32 = 2;
/// The SNAT port range: outside the nodes' `ip_local_port_range` ([`LOCAL_PORTS`]), which the
/// node's own sockets use on the same address when `egressIP` is the node's. 24,536 ports per
/// egress address and destination: `egress-lab new-pods` opens some 12,000 connections
/// through each gateway to the one echo server, and the lab's NAT keeps a TCP mapping for the
/// 2 h of an established connection (it does not track FIN or RST).
pub(crate) const NAT_PORTS: (u16, u16) = (41000, 65535);
/// The nodes' `net.ipv4.ip_local_port_range`, below [`NAT_PORTS`].
pub(crate) const LOCAL_PORTS: &str = "32768 40999";
/// Every namespace of the lab begins with this.
pub(crate) const NS_PREFIX: &str = "egl-";
/// The namespace holding the VPC bridge.
pub(crate) const VPC_NS: &str = "egl-vpc";
/// The namespace of the VPC router and the echo server.
pub(crate) const INET_NS: &str = "egl-inet";
/// Where the lab keeps its state: the bpffs it mounts, the compiled object, the echo
/// server's pid.
pub(crate) const RUN_DIR: &str = "/run/egress-lab";

/// A node of the lab.
#[derive(Clone, Debug)]
pub(crate) struct LabNode {
    /// The node's name in the snapshot (the seed names nodes by their IP).
    pub(crate) name: String,
    /// Its VPC address.
    pub(crate) ipv4: Ipv4Addr,
    /// Its network namespace.
    pub(crate) ns: String,
    /// Its port on the VPC bridge (in the VPC namespace).
    pub(crate) port: String,
}

impl LabNode {
    /// The node's pin directory under `bpffs`: the name with its dots made dashes (bpffs
    /// refuses names with a dot).
    pub(crate) fn pin_dir(&self, bpffs: &Path) -> PathBuf {
        bpffs.join(self.name.replace('.', "-"))
    }
}

/// A pod of the lab.
#[derive(Clone, Debug)]
pub(crate) struct LabPod {
    /// `namespace/name`.
    pub(crate) display: String,
    /// Its IPv4.
    pub(crate) ip: Ipv4Addr,
    /// The node it runs on (an index into [`Cluster::nodes`]).
    pub(crate) node: usize,
    /// Its network namespace.
    pub(crate) ns: String,
}

/// The lab's cluster, read from the seed snapshot.
pub(crate) struct Cluster {
    /// The snapshot every node's engine starts from.
    pub(crate) snapshot: Snapshot,
    /// Nodes, in the snapshot's order.
    pub(crate) nodes: Vec<LabNode>,
    /// Pods (endpoints with an IPv4 on a known node), in the snapshot's order.
    pub(crate) pods: Vec<LabPod>,
    /// The maps every node's agent writes and its datapath reads: `_v4_v2` (Cilium's, the
    /// default) or the compact layout (`egress-lab seed --layout compact`).
    pub(crate) layout: Layout,
}

impl Cluster {
    /// The seed's cluster.
    pub(crate) fn seed() -> Result<Self, String> {
        let snapshot = Snapshot::parse(SEED).map_err(|e| format!("the seed snapshot: {e}"))?;
        Self::from_snapshot(snapshot)
    }

    /// The seed's nodes and policy with `count` new pods instead of its own (`egress-lab
    /// new-pods`): `default/client-K`, labelled as the seed's pods (its policy selects them),
    /// on the seed's pods' nodes (its workers) in turn, addressed from [`NEW_PODS`] up.
    pub(crate) fn with_new_pods(count: usize) -> Result<Self, String> {
        let mut snapshot = Snapshot::parse(SEED).map_err(|e| format!("the seed snapshot: {e}"))?;
        let template = snapshot
            .endpoints
            .first()
            .cloned()
            .ok_or("the seed has no pod")?;
        let mut workers: Vec<String> = Vec::new();
        for node in snapshot.endpoints.iter().filter_map(|e| e.node.clone()) {
            if !workers.contains(&node) {
                workers.push(node);
            }
        }
        let first = u32::from(NEW_PODS);
        snapshot.endpoints = (0..count)
            .map(|k| {
                let ip = Ipv4Addr::from(first + k as u32);
                egress_core::cluster::Endpoint {
                    uid: format!("00000000-0000-4000-8000-{k:012}"),
                    name: Some(format!("client-{k}")),
                    ips: vec![IpAddr::V4(ip)],
                    node: Some(workers[k % workers.len()].clone()),
                    ..template.clone()
                }
            })
            .collect();
        Self::from_snapshot(snapshot)
    }

    /// The snapshot's endpoint of pod `pod` (an index into [`Cluster::pods`]).
    pub(crate) fn endpoint_of(
        &self,
        pod: usize,
    ) -> Result<&egress_core::cluster::Endpoint, String> {
        let lab = self.pods.get(pod).ok_or("no such pod")?;
        self.snapshot
            .endpoints
            .iter()
            .find(|e| e.display_name() == lab.display)
            .ok_or_else(|| format!("pod {}: not in the snapshot", lab.display))
    }

    fn from_snapshot(snapshot: Snapshot) -> Result<Self, String> {
        let mut nodes = Vec::new();
        for (i, node) in snapshot.nodes.values().enumerate() {
            let ipv4 = node
                .ipv4
                .ok_or_else(|| format!("node {}: no IPv4 address", node.name))?;
            if !in_vpc(ipv4) {
                return Err(format!(
                    "node {}: {ipv4} is outside the lab's VPC",
                    node.name
                ));
            }
            nodes.push(LabNode {
                name: node.name.clone(),
                ipv4,
                ns: format!("{NS_PREFIX}node{i}"),
                port: format!("vn{i}"),
            });
        }
        let mut pods = Vec::new();
        for ep in &snapshot.endpoints {
            let ip = ep.ips.iter().find_map(|ip| match ip {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            });
            let node = ep
                .node
                .as_deref()
                .and_then(|n| nodes.iter().position(|l| l.name == n));
            let (Some(ip), Some(node)) = (ip, node) else {
                continue;
            };
            if !in_vpc(ip) {
                return Err(format!("pod {}: {ip} is outside the lab's VPC", ep.uid));
            }
            let i = pods.len();
            pods.push(LabPod {
                display: ep.display_name(),
                ip,
                node,
                ns: format!("{NS_PREFIX}pod{i}"),
            });
        }
        Ok(Self {
            snapshot,
            nodes,
            pods,
            layout: Layout::V4V2,
        })
    }
}

/// Whether `ip` is in the VPC.
pub(crate) fn in_vpc(ip: Ipv4Addr) -> bool {
    let mask = u32::MAX << (32 - u32::from(VPC.1));
    u32::from(ip) & mask == u32::from(VPC.0)
}

/// The VPC's netmask.
pub(crate) fn vpc_mask() -> Ipv4Addr {
    Ipv4Addr::from(u32::MAX << (32 - u32::from(VPC.1)))
}
