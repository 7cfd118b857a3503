//! W-k8s-limits (PERFORMANCE.md): a cluster at Kubernetes' documented limits — 5,000 nodes,
//! 150,000 pods in 2,000 deployments over 200 namespaces — under 1,000 egress gateway
//! policies, deterministic for a seed; and its measurements: load time and memory per
//! entry, a 1,000-pod rollout storm with its plans checked exact, and lookups over the
//! result.
//!
//! The cluster, as an EKS-like one would look:
//! - **Nodes**: worker nodes named after their address (`ip-172-16-c-d.ec2.internal`) with
//!   `kubernetes.io/hostname`, `topology.kubernetes.io/zone` (3 zones),
//!   `node.kubernetes.io/instance-type` (5 types) and the usual os/arch/region labels; worker
//!   `k` hosts its pods in the /24 `10.(k / 256).(k % 256).0` (at most 110 pods, Kubernetes'
//!   default). Gateway nodes (20 at full scale) carry `egress-gateway: "true"`, a pool
//!   (`egress-pool: pool-a` … `pool-d`) and a zone, and host no pods. The local node (whose
//!   maps are computed) is the first gateway.
//! - **Namespaces**: one team per 5 namespaces (a product, each in 5 environments), labelled
//!   `kubernetes.io/metadata.name`, `team` and `env`.
//! - **Deployments**: spread over the namespaces, sizes skewed (log-uniform weights; the
//!   largest hold a few hundred pods, the smallest a few); each has its own label set
//!   (`app.kubernetes.io/{name,instance,component,part-of,managed-by,version}`, `team`,
//!   `tier`, `pod-template-hash`); its pods have UUIDv4 uids, `<deployment>-<hash>-<5>` names
//!   and random worker nodes.
//! - **Policies**, by namespace: a tenth of the namespaces are covered team by team
//!   (`namespaceSelector` on `team`, pods of tiers other than `data`); a tenth namespace by
//!   namespace and zone by zone (`namespaceSelector` on the name, `nodeSelector` on the zone,
//!   the zone's gateways); a fifth namespace by namespace (a quarter of those only on some
//!   instance types); a tenth have no policy; the rest deployment by deployment: one
//!   deployment's labels, or a `matchExpressions` `In` over 2–4 deployments of a namespace
//!   (sometimes one selector item per deployment), sometimes restricted to instance types;
//!   policies left over select a deployment a second time, on one instance type. Each has
//!   1–20 random public IPv4 destination prefixes (/8–/28, host bits clear), three in ten
//!   also 1–3 excluded prefixes inside them; gateways are a pool's first node
//!   (`egressGateway`), a pool's nodes listed by hostname, or two pools (`egressGateways`).
//!
//! At full scale and seed [`SEED`] this selects most pods about once and yields 1,404,500
//! IPv4 entries (9.4 per pod; one per selected (pod IP, CIDR): the Cilium layout); at
//! [`Scale::quick`], 149,252.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use egress_core::cluster::{Endpoint, Namespace, Node};
use egress_core::device::Device;
use egress_core::engine::{Action, Engine, MemoryUsage, Plan};
use egress_core::entries::{Entry, MapEntries};
use egress_core::gateway::Selection;
use egress_core::labels::Labels;
use egress_core::lookup::LookupTable;
use egress_core::netip::{Cidr, mask_v4};
use egress_core::policy::{
    GatewaySpec, LabelSelector, Operator, Policy, Requirement, SelectorItem,
};
use serde_json::{Value, json};

use crate::measure;
use crate::workloads::{self, Objects, Rng};

/// The seed of the report's W-k8s-limits.
pub const SEED: u64 = 26;

/// Up to this many entries, `measure` also checks the rollout's reference engine against the
/// core's batch function.
const BATCH_CHECK_ENTRIES: usize = 200_000;

/// Kubernetes' default `maxPods` per node.
const MAX_PODS_PER_NODE: u16 = 110;
/// The last host number of a node's /24.
const LAST_HOST: u16 = 254;
/// At most this many destination CIDRs per policy.
const MAX_DESTINATIONS: usize = 20;
/// At most this many excluded CIDRs per policy.
const MAX_EXCLUDED: usize = 3;
/// Deployments a `matchExpressions` `In` policy selects at most.
const MAX_GROUP: usize = 4;

const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
const POOLS: [&str; 4] = ["pool-a", "pool-b", "pool-c", "pool-d"];
/// Worker instance types with their weights (out of 16).
const INSTANCE_TYPES: [(&str, u64); 5] = [
    ("m5.xlarge", 5),
    ("m5.2xlarge", 5),
    ("c5.2xlarge", 3),
    ("r5.2xlarge", 2),
    ("m6i.4xlarge", 1),
];
const GATEWAY_INSTANCE_TYPE: &str = "c5n.2xlarge";
const ENVS: [&str; 5] = ["prod", "staging", "dev", "qa", "perf"];
const PRODUCTS: [&str; 40] = [
    "checkout",
    "payments",
    "catalog",
    "search",
    "inventory",
    "shipping",
    "billing",
    "identity",
    "orders",
    "cart",
    "reviews",
    "pricing",
    "ledger",
    "notify",
    "media",
    "analytics",
    "ads",
    "fraud",
    "loyalty",
    "support",
    "profile",
    "recommend",
    "warehouse",
    "tax",
    "invoice",
    "auth",
    "edge",
    "chat",
    "feeds",
    "reports",
    "booking",
    "maps",
    "telemetry",
    "ingest",
    "export",
    "jobs",
    "docs",
    "forms",
    "survey",
    "quota",
];
/// Deployment components and their tiers.
const COMPONENTS: [(&str, &str); 10] = [
    ("web", "frontend"),
    ("api", "backend"),
    ("worker", "backend"),
    ("consumer", "backend"),
    ("scheduler", "backend"),
    ("grpc", "backend"),
    ("exporter", "backend"),
    ("cache", "data"),
    ("db-proxy", "data"),
    ("indexer", "data"),
];
/// The alphabet of Kubernetes' generated name suffixes and template hashes
/// (`rand.SafeEncodeString`).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Prefixes no public destination overlaps: SEMANTICS A.3's private IPv4 ranges and 240/4.
const RESERVED_V4: [(u32, u8); 14] = [
    (0x0000_0000, 8),
    (0x0a00_0000, 8),
    (0x6440_0000, 10),
    (0x7f00_0000, 8),
    (0xa9fe_0000, 16),
    (0xac10_0000, 12),
    (0xc000_0000, 24),
    (0xc000_0200, 24),
    (0xc0a8_0000, 16),
    (0xc612_0000, 15),
    (0xc633_6400, 24),
    (0xcb00_7100, 24),
    (0xe000_0000, 4),
    (0xf000_0000, 4),
];

/// The counts of a W-k8s-limits cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scale {
    /// Nodes, gateways included.
    pub nodes: usize,
    /// Gateway nodes (in 4 pools over the 3 zones; at least 4).
    pub gateways: usize,
    /// Pods (endpoints).
    pub pods: usize,
    /// Deployments owning the pods.
    pub deployments: usize,
    /// Namespaces (at least 10).
    pub namespaces: usize,
    /// Egress gateway policies.
    pub policies: usize,
    /// Pods the rollout storm replaces.
    pub rollout_pods: usize,
    /// Lookup queries.
    pub queries: usize,
}

impl Scale {
    /// Kubernetes' documented limits: 5,000 nodes (20 gateways), 150,000 pods in 2,000
    /// deployments over 200 namespaces; 1,000 policies; a 1,000-pod rollout; 1,000,000
    /// lookup queries.
    pub fn full() -> Self {
        Self {
            nodes: 5_000,
            gateways: 20,
            pods: 150_000,
            deployments: 2_000,
            namespaces: 200,
            policies: 1_000,
            rollout_pods: 1_000,
            queries: 1_000_000,
        }
    }

    /// A tenth of [`Scale::full`] (the report's `--quick`): 500 nodes, 15,000 pods in 200
    /// deployments over 20 namespaces, 100 policies; the same 20 gateways and 1,000-pod
    /// rollout, 200,000 queries.
    pub fn quick() -> Self {
        Self {
            nodes: 500,
            gateways: 20,
            pods: 15_000,
            deployments: 200,
            namespaces: 20,
            policies: 100,
            rollout_pods: 1_000,
            queries: 200_000,
        }
    }
}

/// A Deployment: its pod template and its pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    /// Name (`app.kubernetes.io/name`).
    pub name: String,
    /// Its namespace (an index into [`K8sLimits::namespaces`]).
    pub namespace: usize,
    /// Its pods' labels but `pod-template-hash`.
    pub labels: Vec<(String, String)>,
    /// The current template's `pod-template-hash`.
    pub template_hash: String,
    /// Its pods' service account (`None`: `default`).
    pub service_account: Option<String>,
    /// Its pods (indices into the endpoints of [`K8sLimits::objects`]).
    pub pods: Vec<usize>,
}

/// A W-k8s-limits cluster: its objects, and what a rollout needs to replace pods.
#[derive(Clone, Debug)]
pub struct K8sLimits {
    /// The counts it was made for.
    pub scale: Scale,
    /// The seed it was made from (rollouts draw from it too).
    pub seed: u64,
    /// Nodes, policies, endpoints (one per pod), the local node and its devices.
    pub objects: Objects,
    /// The namespaces (every endpoint carries its namespace's labels).
    pub namespaces: Vec<Namespace>,
    /// The deployments.
    pub deployments: Vec<Deployment>,
    /// Each endpoint's node: an index into the nodes of [`K8sLimits::objects`] (workers
    /// first, their pods in the worker's /24).
    pub pod_nodes: Vec<usize>,
    /// Each worker's next free host number in its /24 (addresses are never reused).
    pub next_host: Vec<u16>,
    /// An upper bound of the entries: every policy's CIDRs for every pod it targets (before
    /// the tier and instance-type filters), plus a rollout's worth.
    pub entry_bound: usize,
    /// The maps' capacity: the power of two at or above [`K8sLimits::entry_bound`].
    pub max_entries: u32,
}

impl K8sLimits {
    /// Worker nodes (the first nodes of the objects).
    pub fn workers(&self) -> usize {
        self.scale.nodes - self.scale.gateways
    }

    /// A fresh engine fed every object through the public API (Cilium selection).
    pub fn engine(&self) -> Engine {
        self.objects.engine(Selection::Cilium, self.max_entries)
    }
}

/// The address of worker `k`'s pod number `host`.
fn pod_ip(k: usize, host: u16) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, (k >> 8) as u8, k as u8, host as u8))
}

fn worker_ip(k: usize) -> Ipv4Addr {
    let block = k / 250;
    Ipv4Addr::new(
        172,
        16 + (block / 256) as u8,
        block as u8,
        (k % 250) as u8 + 1,
    )
}

fn gateway_ip(g: usize) -> Ipv4Addr {
    Ipv4Addr::new(172, 31, (g / 250) as u8, (g % 250) as u8 + 1)
}

/// EKS's node name for an address.
fn node_name(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("ip-{a}-{b}-{c}-{d}.ec2.internal")
}

/// The public address gateway `g` masquerades to.
fn egress_ip(g: usize) -> Ipv4Addr {
    Ipv4Addr::new(44, 192, (g / 250) as u8, (g % 250) as u8 + 1)
}

/// A UUIDv4: 122 random bits, version nibble 4, variant bits `10`.
pub fn uuid_v4(rng: &mut Rng) -> String {
    let (hi, lo) = (rng.next_u64(), rng.next_u64());
    let hi = (hi & !0xf000) | 0x4000;
    let lo = (lo & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

/// Whether `uid` is shaped as [`uuid_v4`] makes it (lowercase 8-4-4-4-12 hex, version 4,
/// variant `10`).
pub fn is_uuid_v4(uid: &str) -> bool {
    let groups: Vec<&str> = uid.split('-').collect();
    let lengths_ok = groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| {
            g.len() == n && g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
    lengths_ok && groups[2].starts_with('4') && groups[3].starts_with(['8', '9', 'a', 'b'])
}

/// `n` characters of Kubernetes' generated-name alphabet.
fn safe_string(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(SAFE_ALPHABET[rng.below(SAFE_ALPHABET.len() as u64) as usize]))
        .collect()
}

/// A random element of `items` (non-empty).
fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> &'a T {
    &items[rng.below(items.len() as u64) as usize]
}

fn shuffle<T>(rng: &mut Rng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

fn labels_of<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<(String, String)> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn selector(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: labels_of(pairs.iter().copied()),
        match_expressions: vec![],
    }
}

fn requirement(key: &str, operator: Operator, values: &[&str]) -> Requirement {
    Requirement {
        key: key.to_owned(),
        operator,
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    }
}

fn expressions(requirements: Vec<Requirement>) -> LabelSelector {
    LabelSelector {
        match_labels: vec![],
        match_expressions: requirements,
    }
}

fn instance_type(rng: &mut Rng) -> &'static str {
    let total: u64 = INSTANCE_TYPES.iter().map(|(_, w)| w).sum();
    let mut at = rng.below(total);
    for (name, weight) in INSTANCE_TYPES {
        if at < weight {
            return name;
        }
        at -= weight;
    }
    INSTANCE_TYPES[0].0
}

/// Workers first (zone `k % 3`, a weighted instance type), then the gateways (pool
/// `g % 4`, zone `g % 3`). Returns the nodes and each worker's instance type.
fn make_nodes(rng: &mut Rng, scale: Scale) -> (Vec<Node>, Vec<&'static str>) {
    let workers = scale.nodes - scale.gateways;
    let mut nodes = Vec::with_capacity(scale.nodes);
    let mut types = Vec::with_capacity(workers);
    for k in 0..workers {
        let ip = worker_ip(k);
        let name = node_name(ip);
        let itype = instance_type(rng);
        types.push(itype);
        let nodegroup = format!("ng-{}", itype.replace('.', "-"));
        let labels: Labels = [
            ("kubernetes.io/hostname", name.as_str()),
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", "amd64"),
            ("topology.kubernetes.io/region", "us-east-1"),
            ("topology.kubernetes.io/zone", ZONES[k % ZONES.len()]),
            ("node.kubernetes.io/instance-type", itype),
            ("eks.amazonaws.com/nodegroup", nodegroup.as_str()),
            ("node-role.kubernetes.io/worker", ""),
        ]
        .into_iter()
        .collect();
        nodes.push(Node::new(name, labels, Some(ip)));
    }
    for g in 0..scale.gateways {
        let ip = gateway_ip(g);
        let name = node_name(ip);
        let labels: Labels = [
            ("kubernetes.io/hostname", name.as_str()),
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", "amd64"),
            ("topology.kubernetes.io/region", "us-east-1"),
            ("topology.kubernetes.io/zone", ZONES[g % ZONES.len()]),
            ("node.kubernetes.io/instance-type", GATEWAY_INSTANCE_TYPE),
            ("eks.amazonaws.com/nodegroup", "ng-egress"),
            ("egress-gateway", "true"),
            ("egress-pool", POOLS[g % POOLS.len()]),
        ]
        .into_iter()
        .collect();
        nodes.push(Node::new(name, labels, Some(ip)));
    }
    (nodes, types)
}

/// The local gateway's devices: `eth0` (its node address, the default route) and `eth1`
/// (its public egress address).
fn gateway_devices(g: usize) -> Vec<Device> {
    workloads::node_devices(gateway_ip(g), egress_ip(g))
}

/// Team `t`'s product name (unique per team).
fn product(t: usize) -> String {
    let base = PRODUCTS[t % PRODUCTS.len()];
    match t / PRODUCTS.len() {
        0 => base.to_owned(),
        round => format!("{base}{round}"),
    }
}

/// Namespace `i`: team `i / 5`'s product in environment `i % 5`.
fn make_namespaces(count: usize) -> Vec<Namespace> {
    (0..count)
        .map(|i| {
            let team = product(i / ENVS.len());
            let env = ENVS[i % ENVS.len()];
            let name = format!("{team}-{env}");
            let mut labels = std::collections::BTreeMap::new();
            labels.insert("kubernetes.io/metadata.name".to_owned(), name.clone());
            labels.insert("team".to_owned(), format!("team-{team}"));
            labels.insert("env".to_owned(), env.to_owned());
            if env == "prod" {
                labels.insert("istio-injection".to_owned(), "enabled".to_owned());
            }
            Namespace { name, labels }
        })
        .collect()
}

/// Deployment sizes summing to `pods`: at least 1 each, the rest split by log-uniform
/// weights (1–200), remainders handed out one by one.
fn deployment_sizes(rng: &mut Rng, deployments: usize, pods: usize) -> Vec<usize> {
    let weights: Vec<f64> = (0..deployments)
        .map(|_| (rng.below(1 << 20) as f64 / f64::from(1 << 20) * 200f64.ln()).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let rest = pods - deployments;
    let mut sizes: Vec<usize> = weights
        .iter()
        .map(|w| 1 + (rest as f64 * w / total) as usize)
        .collect();
    let mut left = pods - sizes.iter().sum::<usize>();
    let mut i = 0;
    while left > 0 {
        sizes[i % deployments] += 1;
        left -= 1;
        i += 7;
    }
    sizes
}

/// The policy-making state: the random source and the entry bound.
struct PolicyMaker<'a> {
    rng: &'a mut Rng,
    scale: Scale,
    /// Worker hostnames of each gateway pool.
    pool_hosts: Vec<Vec<String>>,
    bound: usize,
    policies: Vec<Policy>,
}

impl PolicyMaker<'_> {
    /// 1–20 distinct public destinations; three policies in ten also exclude 1–3 prefixes
    /// inside them.
    fn cidrs(&mut self) -> (Vec<Cidr>, Vec<Cidr>) {
        let count = 1 + self.rng.below(MAX_DESTINATIONS as u64) as usize;
        let mut destinations: Vec<Cidr> = Vec::with_capacity(count);
        while destinations.len() < count {
            let c = public_prefix(self.rng);
            if !destinations.contains(&c) {
                destinations.push(c);
            }
        }
        let mut excluded: Vec<Cidr> = Vec::new();
        if self.rng.below(10) < 3 {
            let want = 1 + self.rng.below(MAX_EXCLUDED as u64) as usize;
            let mut tries = 0;
            while excluded.len() < want && tries < 32 {
                tries += 1;
                let outer = *pick(self.rng, &destinations);
                if outer.len > 24 {
                    continue;
                }
                let len = outer.len + 1 + self.rng.below(8) as u8;
                let IpAddr::V4(base) = outer.addr else {
                    continue;
                };
                let bits = (u32::from(base) | (self.rng.next_u64() as u32 & !mask_v4(outer.len)))
                    & mask_v4(len);
                let c = Cidr {
                    addr: IpAddr::V4(Ipv4Addr::from(bits)),
                    len,
                };
                if !destinations.contains(&c) && !excluded.contains(&c) {
                    excluded.push(c);
                }
            }
        }
        (destinations, excluded)
    }

    /// Gateways over the pools: a pool's first node; a pool's nodes listed by hostname (all
    /// with `interface: eth1`, or none); or two pools.
    fn gateways(&mut self) -> (GatewaySpec, Vec<GatewaySpec>) {
        let p = self.rng.below(POOLS.len() as u64) as usize;
        let pool = |p: usize, interface: bool| GatewaySpec {
            node_selector: selector(&[("egress-gateway", "true"), ("egress-pool", POOLS[p])]),
            egress_ip: None,
            interface: interface.then(|| "eth1".to_owned()),
        };
        match self.rng.below(20) {
            0..7 => {
                let interface = self.rng.below(2) == 0;
                (pool(p, interface), vec![])
            }
            7..14 => {
                let interface = self.rng.below(2) == 0;
                let listed: Vec<GatewaySpec> = self.pool_hosts[p]
                    .iter()
                    .map(|host| GatewaySpec {
                        node_selector: selector(&[("kubernetes.io/hostname", host.as_str())]),
                        egress_ip: None,
                        interface: interface.then(|| "eth1".to_owned()),
                    })
                    .collect();
                match listed.first() {
                    Some(first) => (first.clone(), listed),
                    None => (pool(p, interface), vec![]),
                }
            }
            _ => {
                let q = (p + 1 + self.rng.below(POOLS.len() as u64 - 1) as usize) % POOLS.len();
                (pool(p, false), vec![pool(p, false), pool(q, false)])
            }
        }
    }

    /// Adds a policy of these selectors targeting `targeted` pods (for the bound).
    fn add(&mut self, kind: &str, selectors: Vec<SelectorItem>, targeted: usize) {
        self.add_with(kind, selectors, targeted, None);
    }

    fn add_with(
        &mut self,
        kind: &str,
        selectors: Vec<SelectorItem>,
        targeted: usize,
        gateway: Option<GatewaySpec>,
    ) {
        let (destination_cidrs, excluded_cidrs) = self.cidrs();
        let (egress_gateway, egress_gateways) = match gateway {
            Some(g) => (g, vec![]),
            None => self.gateways(),
        };
        self.bound += targeted * (destination_cidrs.len() + excluded_cidrs.len());
        let name = format!("egress-{kind}-{:04}", self.policies.len());
        self.policies.push(Policy {
            name,
            namespace: None,
            creation_timestamp: None,
            selectors,
            destination_cidrs,
            excluded_cidrs,
            egress_gateway,
            egress_gateways,
        });
    }

    fn full(&self) -> bool {
        self.policies.len() >= self.scale.policies
    }
}

/// A random public IPv4 prefix, /8–/28, host bits clear, overlapping no reserved range.
fn public_prefix(rng: &mut Rng) -> Cidr {
    loop {
        let len = 8 + rng.below(21) as u8;
        let addr = (rng.next_u64() as u32) & mask_v4(len);
        let overlaps = RESERVED_V4.iter().any(|&(net, net_len)| {
            let shorter = len.min(net_len);
            (addr ^ net) & mask_v4(shorter) == 0
        });
        if !overlaps {
            return Cidr {
                addr: IpAddr::V4(Ipv4Addr::from(addr)),
                len,
            };
        }
    }
}

fn pod_item(pod: LabelSelector) -> SelectorItem {
    SelectorItem {
        pod_selector: Some(pod),
        ..SelectorItem::default()
    }
}

/// A namespace's pods, the label `kubernetes.io/metadata.name` matched either way.
fn namespace_item(rng: &mut Rng, ns: &str) -> SelectorItem {
    let namespace = if rng.below(2) == 0 {
        selector(&[("kubernetes.io/metadata.name", ns)])
    } else {
        expressions(vec![requirement(
            "kubernetes.io/metadata.name",
            Operator::In,
            &[ns],
        )])
    };
    SelectorItem {
        namespace_selector: Some(namespace),
        ..SelectorItem::default()
    }
}

/// Two or three instance types (pods on those nodes only).
fn instance_types_filter(rng: &mut Rng) -> LabelSelector {
    let first = rng.below(INSTANCE_TYPES.len() as u64) as usize;
    let count = 2 + rng.below(2) as usize;
    let types: Vec<&str> = (0..count)
        .map(|i| INSTANCE_TYPES[(first + i) % INSTANCE_TYPES.len()].0)
        .collect();
    expressions(vec![requirement(
        "node.kubernetes.io/instance-type",
        Operator::In,
        &types,
    )])
}

/// W-k8s-limits for a seed at a scale (see the module documentation; at [`Scale::full`]
/// and [`SEED`]: 1,404,500 entries). Panics when the scale cannot hold its counts
/// (fewer than 10 namespaces or 4 gateways, more namespaces than deployments or deployments
/// than pods, more pods than the workers' `maxPods`, too few policies for the namespace
/// categories).
pub fn k8s_limits(seed: u64, scale: Scale) -> K8sLimits {
    let mut rng = Rng::new(seed);
    let workers = scale.nodes.saturating_sub(scale.gateways);
    assert!(
        scale.namespaces >= 10
            && scale.gateways >= POOLS.len()
            && scale.deployments >= scale.namespaces
            && scale.pods >= scale.deployments
            && (workers * usize::from(MAX_PODS_PER_NODE)) >= scale.pods + scale.rollout_pods,
        "W-k8s-limits: a scale that cannot hold its counts: {scale:?}"
    );
    let (nodes, worker_types) = make_nodes(&mut rng, scale);
    let namespaces = make_namespaces(scale.namespaces);

    // Deployments per namespace: one each, the rest at random; made namespace by namespace.
    let mut per_namespace = vec![1usize; scale.namespaces];
    for _ in scale.namespaces..scale.deployments {
        per_namespace[rng.below(scale.namespaces as u64) as usize] += 1;
    }
    let sizes = deployment_sizes(&mut rng, scale.deployments, scale.pods);
    let mut next_host = vec![1u16; workers];
    let mut node_pods = vec![0u16; workers];
    let mut deployments = Vec::with_capacity(scale.deployments);
    let mut endpoints = Vec::with_capacity(scale.pods);
    let mut pod_nodes = Vec::with_capacity(scale.pods);
    for (n, &count) in per_namespace.iter().enumerate() {
        let ns = &namespaces[n];
        let team = product(n / ENVS.len());
        let env = ENVS[n % ENVS.len()];
        for _ in 0..count {
            let d = deployments.len();
            let (component, tier) = *pick(&mut rng, &COMPONENTS);
            let name = format!("{team}-{component}-{d}");
            let instance = format!("{name}-{env}");
            let version = format!("1.{}.{}", rng.below(40), rng.below(20));
            let labels = labels_of([
                ("app.kubernetes.io/name", name.as_str()),
                ("app.kubernetes.io/instance", instance.as_str()),
                ("app.kubernetes.io/component", component),
                ("app.kubernetes.io/part-of", team.as_str()),
                ("app.kubernetes.io/managed-by", "Helm"),
                ("app.kubernetes.io/version", version.as_str()),
                ("team", format!("team-{team}").as_str()),
                ("tier", tier),
            ]);
            let mut deployment = Deployment {
                service_account: (rng.below(2) == 0).then(|| name.clone()),
                name,
                namespace: n,
                labels,
                template_hash: safe_string(&mut rng, 10),
                pods: Vec::with_capacity(sizes[d]),
            };
            for _ in 0..sizes[d] {
                let k = place(&mut rng, &mut node_pods, &next_host, None);
                let ip = pod_ip(k, next_host[k]);
                next_host[k] += 1;
                deployment.pods.push(endpoints.len());
                pod_nodes.push(k);
                endpoints.push(pod(&mut rng, &deployment, ns, &nodes[k].name, ip));
            }
            deployments.push(deployment);
        }
    }

    let policies = make_policies(
        &mut rng,
        scale,
        &nodes,
        &namespaces,
        &deployments,
        &pod_nodes,
        &worker_types,
    );
    let (policies, bound) = policies;
    // A rollout may move pods between zones or add one before deleting one: its worth of
    // entries (each pod under at most two policies) on top.
    let entry_bound = bound + (scale.rollout_pods + 1) * 2 * (MAX_DESTINATIONS + MAX_EXCLUDED);
    let local = workers;
    K8sLimits {
        scale,
        seed,
        objects: Objects {
            local_node: nodes[local].name.clone(),
            nodes,
            policies,
            endpoints,
            devices: gateway_devices(0),
        },
        namespaces,
        deployments,
        pod_nodes,
        next_host,
        max_entries: u32::try_from(entry_bound.next_power_of_two()).unwrap_or(1 << 31),
        entry_bound,
    }
}

/// A random worker with room for one more pod (under `maxPods`, with a free host number),
/// `prefer` when it has room and a coin says so; counts the pod.
fn place(rng: &mut Rng, node_pods: &mut [u16], next_host: &[u16], prefer: Option<usize>) -> usize {
    let has_room = |k: usize| node_pods[k] < MAX_PODS_PER_NODE && next_host[k] <= LAST_HOST;
    let chosen = match prefer {
        Some(k) if rng.below(2) == 0 && has_room(k) => Some(k),
        _ => (0..64)
            .map(|_| rng.below(node_pods.len() as u64) as usize)
            .find(|&k| has_room(k)),
    };
    // The scale check leaves room somewhere; a full sample falls back to a scan.
    let k = chosen
        .or_else(|| (0..node_pods.len()).find(|&k| has_room(k)))
        .unwrap_or_else(|| panic!("W-k8s-limits: no worker has room for a pod"));
    node_pods[k] += 1;
    k
}

/// A pod of `deployment` (its current template) on `node` at `ip`.
fn pod(rng: &mut Rng, deployment: &Deployment, ns: &Namespace, node: &str, ip: IpAddr) -> Endpoint {
    let mut labels: Labels = deployment
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    labels.insert("pod-template-hash", deployment.template_hash.as_str());
    Endpoint {
        uid: uuid_v4(rng),
        namespace: Some(ns.name.clone()),
        name: Some(format!(
            "{}-{}-{}",
            deployment.name,
            deployment.template_hash,
            safe_string(rng, 5)
        )),
        labels,
        namespace_labels: Labels::from(&ns.labels),
        service_account: deployment.service_account.clone(),
        identity_labels: None,
        ips: vec![ip],
        node: Some(node.to_owned()),
    }
}

/// The 1,000 policies (see the module documentation) and the entry bound.
fn make_policies(
    rng: &mut Rng,
    scale: Scale,
    nodes: &[Node],
    namespaces: &[Namespace],
    deployments: &[Deployment],
    pod_nodes: &[usize],
    worker_types: &[&str],
) -> (Vec<Policy>, usize) {
    let workers = scale.nodes - scale.gateways;
    let pool_hosts: Vec<Vec<String>> = (0..POOLS.len())
        .map(|p| {
            (p..scale.gateways)
                .step_by(POOLS.len())
                .map(|g| nodes[workers + g].name.clone())
                .collect()
        })
        .collect();
    let mut by_namespace: Vec<Vec<usize>> = vec![Vec::new(); namespaces.len()];
    for (d, dep) in deployments.iter().enumerate() {
        by_namespace[dep.namespace].push(d);
    }
    let namespace_pods = |n: usize| -> usize {
        by_namespace[n]
            .iter()
            .map(|&d| deployments[d].pods.len())
            .sum()
    };

    // Namespace categories: whole teams first, then namespaces drawn from the other teams.
    let teams = namespaces.len().div_ceil(ENVS.len());
    let mut team_order: Vec<usize> = (0..teams).collect();
    shuffle(rng, &mut team_order);
    let team_wide = (namespaces.len() / 50).max(1);
    let team_wide_teams = &team_order[..team_wide];
    let mut others: Vec<usize> = team_order[team_wide..]
        .iter()
        .flat_map(|&t| t * ENVS.len()..((t + 1) * ENVS.len()).min(namespaces.len()))
        .collect();
    shuffle(rng, &mut others);
    let n = namespaces.len();
    let (zoned, rest) = others.split_at((n / 10).min(others.len()));
    let (whole, rest) = rest.split_at((n / 5).min(rest.len()));
    let (_uncovered, by_deployment) = rest.split_at((n / 10).min(rest.len()));

    let mut maker = PolicyMaker {
        rng,
        scale,
        pool_hosts,
        bound: 0,
        policies: Vec::with_capacity(scale.policies),
    };

    for &t in team_wide_teams {
        let team = format!("team-{}", product(t));
        let targeted: usize = (t * ENVS.len()..((t + 1) * ENVS.len()).min(n))
            .map(namespace_pods)
            .sum();
        let item = SelectorItem {
            pod_selector: Some(expressions(vec![requirement(
                "tier",
                Operator::NotIn,
                &["data"],
            )])),
            namespace_selector: Some(selector(&[("team", team.as_str())])),
            node_selector: None,
        };
        maker.add("team", vec![item], targeted);
    }

    for &ns in zoned {
        for (z, zone) in ZONES.iter().enumerate() {
            let targeted = by_namespace[ns]
                .iter()
                .flat_map(|&d| &deployments[d].pods)
                .filter(|&&p| pod_nodes[p] % ZONES.len() == z)
                .count();
            let mut item = namespace_item(maker.rng, &namespaces[ns].name);
            item.node_selector = Some(selector(&[("topology.kubernetes.io/zone", zone)]));
            let gateway = GatewaySpec {
                node_selector: selector(&[
                    ("egress-gateway", "true"),
                    ("topology.kubernetes.io/zone", zone),
                ]),
                egress_ip: None,
                interface: None,
            };
            maker.add_with("zone", vec![item], targeted, Some(gateway));
        }
    }

    for &ns in whole {
        let mut item = namespace_item(maker.rng, &namespaces[ns].name);
        if maker.rng.below(4) == 0 {
            item.node_selector = Some(instance_types_filter(maker.rng));
        }
        maker.add("namespace", vec![item], namespace_pods(ns));
    }

    // Deployment by deployment: as many policies as remain, groups of 1–4 deployments of a
    // namespace merged at random so that the groups about match the policies left.
    let left = scale.policies.saturating_sub(maker.policies.len());
    let candidates: Vec<&Vec<usize>> = by_deployment.iter().map(|&ns| &by_namespace[ns]).collect();
    let total: usize = candidates.iter().map(|ds| ds.len()).sum();
    let mut merges = total.saturating_sub(left);
    let mut mergeable = total - candidates.len();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for ds in candidates {
        for (i, &d) in ds.iter().enumerate() {
            let merge = i > 0
                && groups.last().is_some_and(|g| g.len() < MAX_GROUP)
                && maker.rng.below(mergeable as u64) < merges as u64;
            if i > 0 {
                mergeable -= 1;
            }
            match groups.last_mut() {
                Some(group) if merge => {
                    group.push(d);
                    merges -= 1;
                }
                _ => groups.push(vec![d]),
            }
        }
    }
    for group in groups {
        if maker.full() {
            break;
        }
        let targeted: usize = group.iter().map(|&d| deployments[d].pods.len()).sum();
        let first = &deployments[group[0]];
        let ns = &namespaces[first.namespace].name;
        let label = |d: usize, key: &str| -> String {
            deployments[d]
                .labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let mut items = if group.len() == 1 {
            let name = label(group[0], "app.kubernetes.io/name");
            let instance = label(group[0], "app.kubernetes.io/instance");
            let mut pods = selector(&[
                ("app.kubernetes.io/name", name.as_str()),
                ("app.kubernetes.io/instance", instance.as_str()),
            ]);
            match maker.rng.below(3) {
                0 => vec![SelectorItem {
                    namespace_selector: Some(selector(&[("kubernetes.io/metadata.name", ns)])),
                    ..pod_item(pods)
                }],
                1 => {
                    pods.match_labels
                        .push(("io.kubernetes.pod.namespace".to_owned(), ns.clone()));
                    vec![pod_item(pods)]
                }
                _ => vec![pod_item(pods)],
            }
        } else if maker.rng.below(2) == 0 {
            let names: Vec<String> = group
                .iter()
                .map(|&d| label(d, "app.kubernetes.io/name"))
                .collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            vec![SelectorItem {
                pod_selector: Some(expressions(vec![requirement(
                    "app.kubernetes.io/name",
                    Operator::In,
                    &names,
                )])),
                namespace_selector: Some(selector(&[("kubernetes.io/metadata.name", ns)])),
                node_selector: None,
            }]
        } else {
            group
                .iter()
                .map(|&d| {
                    let name = label(d, "app.kubernetes.io/name");
                    pod_item(selector(&[("app.kubernetes.io/name", name.as_str())]))
                })
                .collect()
        };
        if maker.rng.below(8) == 0 {
            let filter = instance_types_filter(maker.rng);
            for item in &mut items {
                item.node_selector = Some(filter.clone());
            }
        }
        maker.add("deployment", items, targeted);
    }

    // Policies left over: a second one on a deployment already covered, on one instance type.
    let covered: Vec<usize> = by_deployment
        .iter()
        .chain(whole)
        .flat_map(|&ns| by_namespace[ns].iter().copied())
        .collect();
    while !maker.full() {
        let d = *pick(maker.rng, &covered);
        let itype = *pick(maker.rng, &INSTANCE_TYPES);
        let dep = &deployments[d];
        let targeted = dep
            .pods
            .iter()
            .filter(|&&p| worker_types[pod_nodes[p]] == itype.0)
            .count();
        let item = SelectorItem {
            pod_selector: Some(selector(&[("app.kubernetes.io/name", dep.name.as_str())])),
            namespace_selector: None,
            node_selector: Some(selector(&[("node.kubernetes.io/instance-type", itype.0)])),
        };
        maker.add("spot", vec![item], targeted);
    }
    (maker.policies, maker.bound)
}

/// One engine event of a rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutEvent {
    /// A new pod (upsert).
    Add(Endpoint),
    /// An old pod gone (delete by uid).
    Delete(String),
}

/// A rollout storm: new templates for some deployments, their pods replaced one by one.
#[derive(Clone, Debug)]
pub struct Rollout {
    /// The deployments rolled out (indices), the last one possibly in part.
    pub deployments: Vec<usize>,
    /// Pods replaced.
    pub pods: usize,
    /// The events, in the order a surge rollout makes them: per pod, the new pod added,
    /// then the old one deleted.
    pub events: Vec<RolloutEvent>,
    /// The objects after the rollout (each replaced pod's endpoint swapped for its
    /// replacement).
    pub after: Objects,
}

impl K8sLimits {
    /// A rollout of `pods` pods (all of them, when there are fewer): deployments taken in a
    /// random order, whole while they fit in what is left, then one in part; each rolled
    /// deployment gets a new `pod-template-hash`, and each of its pods a replacement — a
    /// new uid and name, the new hash, a new address on the same worker (half the time,
    /// when it has room) or another one.
    pub fn rollout(&self, pods: usize) -> Rollout {
        let mut rng = Rng::new(self.seed ^ 0x726f_6c6c_6f75_7473);
        let pods = pods.min(self.objects.endpoints.len());
        let mut order: Vec<usize> = (0..self.deployments.len()).collect();
        shuffle(&mut rng, &mut order);
        let mut chosen: Vec<(usize, usize)> = Vec::new();
        let mut left = pods;
        for &d in &order {
            let size = self.deployments[d].pods.len();
            if size <= left {
                chosen.push((d, size));
                left -= size;
            }
            if left == 0 {
                break;
            }
        }
        if left > 0
            && let Some(&d) = order.iter().find(|d| chosen.iter().all(|(c, _)| c != *d))
        {
            chosen.push((d, left));
        }

        let mut node_pods = vec![0u16; self.workers()];
        for &k in &self.pod_nodes {
            node_pods[k] += 1;
        }
        let mut next_host = self.next_host.clone();
        let mut after = self.objects.clone();
        let mut events = Vec::with_capacity(2 * pods);
        for &(d, count) in &chosen {
            let mut template = self.deployments[d].clone();
            template.template_hash = safe_string(&mut rng, 10);
            let ns = &self.namespaces[template.namespace];
            for &p in &template.pods[..count] {
                let old = self.pod_nodes[p];
                let k = place(&mut rng, &mut node_pods, &next_host, Some(old));
                let ip = pod_ip(k, next_host[k]);
                next_host[k] += 1;
                let new = pod(&mut rng, &template, ns, &self.objects.nodes[k].name, ip);
                events.push(RolloutEvent::Add(new.clone()));
                events.push(RolloutEvent::Delete(self.objects.endpoints[p].uid.clone()));
                node_pods[old] -= 1;
                after.endpoints[p] = new;
            }
        }
        Rollout {
            deployments: chosen.iter().map(|&(d, _)| d).collect(),
            pods,
            events,
            after,
        }
    }
}

/// A plan's operations as (action, entry) pairs.
pub fn plan_ops(plan: &Plan) -> Vec<(Action, Entry)> {
    plan.ops()
        .iter()
        .filter_map(|op| op.entry().map(|e| (op.action(), *e)))
        .collect()
}

fn show(e: &Entry) -> String {
    format!(
        "{} -> {} (egress IP {}, gateway {}, ifindex {})",
        e.source, e.destination, e.egress_ip, e.gateway_ip, e.egress_ifindex
    )
}

/// The maps as a datapath holds them: one element per (source, destination), for a layout
/// that writes an entry to one map of its family (`Objects::engine`'s `_v4_v2`).
#[derive(Clone, Debug, Default)]
pub struct MapState(HashMap<(IpAddr, Cidr), Entry>);

impl MapState {
    /// The maps holding `entries`.
    pub fn new(entries: &MapEntries) -> Self {
        Self(
            entries
                .ipv4
                .iter()
                .chain(&entries.ipv6)
                .map(|e| ((e.source, e.destination), *e))
                .collect(),
        )
    }

    /// Writes one plan's operations, in order. `Err` when the plan is not a set of
    /// operations a datapath can apply: a key written twice in one plan, a delete of a
    /// key the maps do not hold.
    pub fn apply(&mut self, ops: &[(Action, Entry)]) -> Result<(), String> {
        let mut seen = HashSet::with_capacity(ops.len());
        for (action, e) in ops {
            let key = (e.source, e.destination);
            if !seen.insert(key) {
                return Err(format!(
                    "the plan writes {} -> {} twice",
                    e.source, e.destination
                ));
            }
            match action {
                Action::Upsert => {
                    self.0.insert(key, *e);
                }
                Action::Delete => {
                    if self.0.remove(&key).is_none() {
                        return Err(format!(
                            "the plan deletes {}, which the maps do not hold",
                            show(e)
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// `Ok` when the maps hold exactly `expected`; else `Err` naming the counts and the
    /// first entries that differ.
    pub fn matches(&self, expected: &MapEntries) -> Result<(), String> {
        let held = MapEntries::from_entries(self.0.values().copied());
        same_entries("the maps the plans wrote", &held, expected)
    }
}

/// `Ok` when `got` and `want` are equal; else `Err` saying how `what` differs from a fresh
/// engine's entries: the counts and the first entry only one side holds (or holds
/// otherwise).
pub fn same_entries(what: &str, got: &MapEntries, want: &MapEntries) -> Result<(), String> {
    if got == want {
        return Ok(());
    }
    let count = |m: &MapEntries| m.ipv4.len() + m.ipv6.len();
    let mut message = format!(
        "{what} hold {} entries, a fresh engine built from the objects after the rollout {}",
        count(got),
        count(want)
    );
    for (family, g, w) in [
        ("IPv4", &got.ipv4, &want.ipv4),
        ("IPv6", &got.ipv6, &want.ipv6),
    ] {
        let want_set: HashSet<&Entry> = w.iter().collect();
        let got_set: HashSet<&Entry> = g.iter().collect();
        if let Some(e) = g.iter().find(|e| !want_set.contains(e)) {
            message += &format!("; {family} entry only in {what}: {}", show(e));
        }
        if let Some(e) = w.iter().find(|e| !got_set.contains(e)) {
            message += &format!("; {family} entry only in the fresh engine: {}", show(e));
        }
    }
    Err(message)
}

/// What a storm cost and wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StormFigures {
    /// Engine time: the events' calls and the plans taken and acknowledged (ms).
    pub engine_ms: f64,
    /// Plans taken.
    pub plans: usize,
    /// Upsert operations over all plans.
    pub upserts: usize,
    /// Delete operations over all plans.
    pub deletes: usize,
}

/// Runs a rollout's events on `engine` (its plans acknowledged), one plan taken and
/// acknowledged at the end (`per_event` false) or after every event; times the engine calls
/// and writes every plan into `maps` (the maps as they were before). `Err` when the engine
/// refuses an event or a plan, or a plan cannot be applied.
pub fn storm(
    engine: &mut Engine,
    rollout: &Rollout,
    per_event: bool,
    maps: &mut MapState,
) -> Result<StormFigures, String> {
    let mut figures = StormFigures::default();
    let mut elapsed = Duration::ZERO;
    let mut plan_step = |engine: &mut Engine, elapsed: &mut Duration| -> Result<(), String> {
        let start = Instant::now();
        let plan = engine.take_plan().map_err(|e| format!("take_plan: {e}"))?;
        engine
            .ack(&plan, plan.len())
            .map_err(|e| format!("ack: {e}"))?;
        *elapsed += start.elapsed();
        figures.plans += 1;
        figures.upserts += plan.upserts().len();
        figures.deletes += plan.deletes().len();
        maps.apply(&plan_ops(&plan))
    };
    for (i, event) in rollout.events.iter().enumerate() {
        let start;
        let result = match event {
            RolloutEvent::Add(ep) => {
                // The caller's copy of the object is made before the timing.
                let ep = ep.clone();
                start = Instant::now();
                engine.upsert_endpoint(ep).map_err(|e| e.to_string())
            }
            RolloutEvent::Delete(uid) => {
                start = Instant::now();
                if engine.delete_endpoint(uid) {
                    Ok(())
                } else {
                    Err(format!("no endpoint {uid} to delete"))
                }
            }
        };
        elapsed += start.elapsed();
        result.map_err(|e| format!("rollout event {i}: {e}"))?;
        if per_event {
            plan_step(engine, &mut elapsed).map_err(|e| format!("rollout event {i}: {e}"))?;
        }
    }
    if !per_event {
        plan_step(engine, &mut elapsed)?;
    }
    figures.engine_ms = elapsed.as_secs_f64() * 1e3;
    Ok(figures)
}

/// Runs a storm on `engine` and checks it exact: the engine's desired and programmed
/// entries, and the maps its plans wrote over `before` (the entries before the storm),
/// all equal `expected` (a fresh engine's entries for the objects after it).
pub fn checked_storm(
    engine: &mut Engine,
    rollout: &Rollout,
    per_event: bool,
    before: &MapEntries,
    expected: &MapEntries,
) -> Result<StormFigures, String> {
    let what = if per_event {
        "the rollout (a plan per event)"
    } else {
        "the rollout (one plan)"
    };
    let mut maps = MapState::new(before);
    let figures =
        storm(engine, rollout, per_event, &mut maps).map_err(|e| format!("{what}: {e}"))?;
    let named = |e: String| format!("{what}: {e}");
    same_entries("the engine's desired entries", &engine.entries(), expected).map_err(named)?;
    same_entries(
        "the engine's programmed entries",
        &engine.programmed(),
        expected,
    )
    .map_err(named)?;
    maps.matches(expected).map_err(named)?;
    Ok(figures)
}

/// The counters a measurement reads from the binary's counting allocator.
pub struct Meters<'a> {
    /// Live heap bytes, all threads.
    pub live_bytes: &'a dyn Fn() -> isize,
    /// Allocations made by the current thread so far.
    pub thread_allocations: &'a dyn Fn() -> u64,
    /// How long each lookup timing runs at least.
    pub lookup_time: Duration,
}

/// The W-k8s-limits figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    /// The scale measured.
    pub scale: Scale,
    /// Desired entries (IPv4 and IPv6) after the load.
    pub entries: usize,
    /// The maps' capacity the engines were given.
    pub max_entries: u32,
    /// Entries per pod (every pod counted, selected or not).
    pub entries_per_pod: f64,
    /// Building a fresh engine from every object through the public API (ms).
    pub load_ms: f64,
    /// Live heap the build added (bytes).
    pub live_bytes: usize,
    /// The engine's own estimate of its heap.
    pub memory: MemoryUsage,
    /// Taking and acknowledging the first plan, of every entry (ms).
    pub first_plan_ms: f64,
    /// Pods the rollout replaced.
    pub rollout_pods: usize,
    /// Deployments rolled out.
    pub rollout_deployments: usize,
    /// Engine events of the rollout.
    pub rollout_events: usize,
    /// The rollout with one plan at the end.
    pub rollout: StormFigures,
    /// The rollout with a plan taken and acknowledged after every event.
    pub rollout_per_event: StormFigures,
    /// `Engine::lookup` after the rollout (ns per query).
    pub lookup_ns: f64,
    /// `Engine::lookup_many` (ns per query).
    pub lookup_many_ns: f64,
    /// Queries timed.
    pub queries: usize,
    /// The share of queries that found an entry.
    pub hit_share: f64,
}

/// Rounds to `digits` decimals.
fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

impl Figures {
    /// Live heap added by the build per entry.
    pub fn bytes_per_entry(&self) -> f64 {
        self.live_bytes as f64 / self.entries.max(1) as f64
    }

    /// The report's `k8s_limits` block.
    pub fn json(&self) -> Value {
        let per_entry = |bytes: usize| round(bytes as f64 / self.entries.max(1) as f64, 1);
        let storm = |s: &StormFigures| {
            json!({
                "engine_ms": round(s.engine_ms, 2),
                "plans": s.plans,
                "plan_upserts": s.upserts,
                "plan_deletes": s.deletes,
            })
        };
        json!({
            "nodes": self.scale.nodes,
            "pods": self.scale.pods,
            "policies": self.scale.policies,
            "entries": self.entries,
            "bytes_per_entry": round(self.bytes_per_entry(), 1),
            "load_ms": round(self.load_ms, 1),
            "rollout_1000_ms": round(self.rollout.engine_ms, 2),
            "deployments": self.scale.deployments,
            "namespaces": self.scale.namespaces,
            "gateways": self.scale.gateways,
            "max_entries": self.max_entries,
            "entries_per_pod": round(self.entries_per_pod, 2),
            "desired_state_bytes_per_entry": per_entry(self.memory.desired_state),
            "lookup_state_bytes_per_entry": per_entry(self.memory.lookup),
            "endpoint_table_bytes_per_entry": per_entry(self.memory.endpoints),
            "first_plan_ms": round(self.first_plan_ms, 1),
            "rollout": {
                "pods": self.rollout_pods,
                "deployments": self.rollout_deployments,
                "events": self.rollout_events,
                "one_plan": storm(&self.rollout),
                "plan_per_event": storm(&self.rollout_per_event),
            },
            "rollout_per_event_ms": round(self.rollout_per_event.engine_ms, 2),
            "lookup_ns": {
                "engine": round(self.lookup_ns, 1),
                "engine_batched": round(self.lookup_many_ns, 1),
                "queries": self.queries,
                "hit_share": round(self.hit_share, 3),
            },
        })
    }

    /// A human summary, with the targets of PERFORMANCE.md.
    pub fn summary(&self) -> Vec<String> {
        let per_entry = |bytes: usize| bytes as f64 / self.entries.max(1) as f64;
        vec![
            format!(
                "W-k8s-limits: {} nodes, {} pods in {} deployments over {} namespaces, {} policies -> {} entries ({:.2} per pod; target >= 1,000,000 at full scale)",
                self.scale.nodes,
                self.scale.pods,
                self.scale.deployments,
                self.scale.namespaces,
                self.scale.policies,
                self.entries,
                self.entries_per_pod
            ),
            format!(
                "  load {:.0} ms (target <= 3000); {:.1} B/entry live heap (target <= 64), desired state {:.1}, lookup state {:.1}, endpoint table {:.1}; first plan {:.0} ms",
                self.load_ms,
                self.bytes_per_entry(),
                per_entry(self.memory.desired_state),
                per_entry(self.memory.lookup),
                per_entry(self.memory.endpoints),
                self.first_plan_ms
            ),
            format!(
                "  rollout of {} pods ({} deployments, {} events): {:.2} ms engine time with one plan (target <= 50), {} upserts + {} deletes; a plan per event {:.2} ms, {} upserts + {} deletes; plans exact",
                self.rollout_pods,
                self.rollout_deployments,
                self.rollout_events,
                self.rollout.engine_ms,
                self.rollout.upserts,
                self.rollout.deletes,
                self.rollout_per_event.engine_ms,
                self.rollout_per_event.upserts,
                self.rollout_per_event.deletes
            ),
            format!(
                "  lookups after the rollout: engine {:.1} ns, lookup_many {:.1} ns ({} queries, {:.0} % hit an entry; 0 allocations)",
                self.lookup_ns,
                self.lookup_many_ns,
                self.queries,
                self.hit_share * 100.0
            ),
        ]
    }
}

/// Measures W-k8s-limits: (a) a fresh engine built from the objects (ms) and (b) the live
/// heap it added per entry, beside `Engine::memory`'s breakdown; (c) the rollout storm of
/// `scale.rollout_pods` pods on that engine with one plan, and on another with a plan per
/// event, each checked exact against a fresh engine of the objects after the rollout;
/// (d) lookups over the result — random known and unknown sources, destinations random or
/// inside one of the source's CIDRs — `lookup_many` checked against `lookup`, both against
/// a [`LookupTable`] on a sample, and neither allocating while timed. A failed check is an
/// `Err` naming what differs.
pub fn measure(w: &K8sLimits, meters: &Meters<'_>) -> Result<Figures, String> {
    let fail = |e: String| format!("W-k8s-limits: {e}");
    let live_before = (meters.live_bytes)();
    let start = Instant::now();
    let mut engine = w.engine();
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    let live_bytes = ((meters.live_bytes)() - live_before).max(0) as usize;
    let stats = engine.stats();
    let entries = stats.desired_v4 + stats.desired_v6;
    // The JSON reports the scale's counts: the workload and the engine must hold them.
    if stats.endpoints != w.objects.endpoints.len()
        || stats.nodes != w.objects.nodes.len()
        || stats.policies != w.objects.policies.len()
        || (w.scale.pods, w.scale.nodes, w.scale.policies)
            != (
                w.objects.endpoints.len(),
                w.objects.nodes.len(),
                w.objects.policies.len(),
            )
    {
        return Err(fail(format!(
            "the engine holds {} endpoints, {} nodes, {} policies; the workload has {}, {}, {}",
            stats.endpoints,
            stats.nodes,
            stats.policies,
            w.objects.endpoints.len(),
            w.objects.nodes.len(),
            w.objects.policies.len()
        )));
    }
    if entries > w.entry_bound {
        return Err(fail(format!(
            "{entries} entries, more than the policies' CIDRs for every pod they target ({})",
            w.entry_bound
        )));
    }
    let memory = engine.memory();

    let start = Instant::now();
    let plan = engine
        .take_plan()
        .map_err(|e| fail(format!("first plan: {e}")))?;
    engine
        .ack(&plan, plan.len())
        .map_err(|e| fail(format!("first plan: {e}")))?;
    let first_plan_ms = start.elapsed().as_secs_f64() * 1e3;
    if plan.upserts().len() != entries || !plan.deletes().is_empty() {
        return Err(fail(format!(
            "the first plan upserts {} and deletes {}, not the {entries} entries",
            plan.upserts().len(),
            plan.deletes().len()
        )));
    }
    drop(plan);

    let rollout = w.rollout(w.scale.rollout_pods);
    let before = engine.entries();
    let expected = rollout
        .after
        .engine(Selection::Cilium, w.max_entries)
        .entries();
    // The reference engine against the core's batch function, where that is affordable (it
    // takes ~1 s at the quick scale, ~2 min at the full one).
    if entries <= BATCH_CHECK_ENTRIES && expected != rollout.after.batch_entries(Selection::Cilium)
    {
        return Err(fail(
            "a fresh engine's entries differ from the batch function's after the rollout".into(),
        ));
    }
    let one_plan = checked_storm(&mut engine, &rollout, false, &before, &expected).map_err(fail)?;
    let per_event = {
        let mut other = w.engine();
        let plan = other
            .take_plan()
            .map_err(|e| fail(format!("first plan: {e}")))?;
        other
            .ack(&plan, plan.len())
            .map_err(|e| fail(format!("first plan: {e}")))?;
        drop(plan);
        checked_storm(&mut other, &rollout, true, &before, &expected).map_err(fail)?
    };
    drop(before);

    let queries = lookup_queries(w.seed, &rollout.after, &expected, w.scale.queries);
    let (lookup_ns, lookup_many_ns, hit_share) =
        lookups(&engine, &expected, &queries, meters).map_err(fail)?;

    Ok(Figures {
        scale: w.scale,
        entries,
        max_entries: w.max_entries,
        entries_per_pod: entries as f64 / w.objects.endpoints.len().max(1) as f64,
        load_ms,
        live_bytes,
        memory,
        first_plan_ms,
        rollout_pods: rollout.pods,
        rollout_deployments: rollout.deployments.len(),
        rollout_events: rollout.events.len(),
        rollout: one_plan,
        rollout_per_event: per_event,
        lookup_ns,
        lookup_many_ns,
        queries: queries.len(),
        hit_share,
    })
}

/// Lookup queries over a state: 45 % an entry's source with a destination inside its
/// CIDR, 45 % a pod's address with a random destination, 10 % an unknown source (outside
/// every worker's /24) with a random destination.
pub fn lookup_queries(
    seed: u64,
    objects: &Objects,
    entries: &MapEntries,
    count: usize,
) -> Vec<(IpAddr, IpAddr)> {
    let mut rng = Rng::new(seed ^ 0x6c6f_6f6b_7570);
    let random_v4 = |rng: &mut Rng| IpAddr::V4(Ipv4Addr::from(rng.next_u64() as u32));
    (0..count)
        .map(|_| match rng.below(20) {
            0..9 if !entries.ipv4.is_empty() => {
                let e = *pick(&mut rng, &entries.ipv4);
                let IpAddr::V4(base) = e.destination.addr else {
                    return (e.source, random_v4(&mut rng));
                };
                let host = rng.next_u64() as u32 & !mask_v4(e.destination.len);
                let dst = (u32::from(base) & mask_v4(e.destination.len)) | host;
                (e.source, IpAddr::V4(Ipv4Addr::from(dst)))
            }
            0..18 if !objects.endpoints.is_empty() => {
                let ep = pick(&mut rng, &objects.endpoints);
                let src = ep
                    .ips
                    .first()
                    .copied()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                (src, random_v4(&mut rng))
            }
            _ => {
                let src = Ipv4Addr::new(
                    10,
                    200 + rng.below(50) as u8,
                    rng.next_u64() as u8,
                    rng.next_u64() as u8,
                );
                (IpAddr::V4(src), random_v4(&mut rng))
            }
        })
        .collect()
}

/// `Engine::lookup` and `lookup_many` over `queries` (ns per query) and the share that hit
/// an entry, after checking that they agree on every query and with a [`LookupTable`] of
/// `entries` on a sample; `Err` when they disagree or the timed lookups allocate.
pub fn lookups(
    engine: &Engine,
    entries: &MapEntries,
    queries: &[(IpAddr, IpAddr)],
    meters: &Meters<'_>,
) -> Result<(f64, f64, f64), String> {
    let hits = measure::lookup_many_agrees(engine, queries)?;
    let table = LookupTable::new(entries, engine.local_ipv4());
    for &(s, d) in queries.iter().take(20_000) {
        let (got, want) = (engine.lookup(s, d), table.lookup(s, d));
        if got != want {
            return Err(format!(
                "Engine::lookup answers {got} and the lookup table {want} for {s} -> {d}"
            ));
        }
    }
    drop(table);
    let (single, batched) = measure::engine_lookup_ns(
        engine,
        queries,
        meters.lookup_time,
        meters.thread_allocations,
    )?;
    Ok((single, batched, hits as f64 / queries.len().max(1) as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small enough for debug tests: 120 nodes (8 gateways), 3,000 pods in 80 deployments
    /// over 20 namespaces, 40 policies, a 200-pod rollout.
    fn tiny() -> Scale {
        Scale {
            nodes: 120,
            gateways: 8,
            pods: 3_000,
            deployments: 80,
            namespaces: 20,
            policies: 40,
            rollout_pods: 200,
            queries: 5_000,
        }
    }

    fn counts_are_exact(w: &K8sLimits) {
        let s = w.scale;
        let o = &w.objects;
        assert_eq!(o.nodes.len(), s.nodes);
        assert_eq!(o.endpoints.len(), s.pods);
        assert_eq!(w.deployments.len(), s.deployments);
        assert_eq!(w.namespaces.len(), s.namespaces);
        assert_eq!(o.policies.len(), s.policies);
        let gateways = o
            .nodes
            .iter()
            .filter(|n| n.labels.get("egress-gateway") == Some("true"))
            .count();
        assert_eq!(gateways, s.gateways);
        assert_eq!(
            w.deployments.iter().map(|d| d.pods.len()).sum::<usize>(),
            s.pods
        );
        let used: HashSet<usize> = w.deployments.iter().map(|d| d.namespace).collect();
        assert_eq!(used.len(), s.namespaces, "every namespace has a deployment");
        let zones: HashSet<&str> = o
            .nodes
            .iter()
            .filter_map(|n| n.labels.get("topology.kubernetes.io/zone"))
            .collect();
        assert_eq!(zones.len(), 3);
    }

    fn uids_and_ips_are_unique(objects: &Objects) {
        let uids: HashSet<&str> = objects.endpoints.iter().map(|e| e.uid.as_str()).collect();
        assert_eq!(uids.len(), objects.endpoints.len());
        for e in &objects.endpoints {
            assert!(is_uuid_v4(&e.uid), "{} is not a UUIDv4", e.uid);
        }
        let ips: HashSet<IpAddr> = objects
            .endpoints
            .iter()
            .flat_map(|e| e.ips.clone())
            .collect();
        assert_eq!(ips.len(), objects.endpoints.len());
    }

    #[test]
    fn quick_scale_counts_and_shapes() {
        let w = k8s_limits(SEED, Scale::quick());
        counts_are_exact(&w);
        uids_and_ips_are_unique(&w.objects);
        for p in &w.objects.policies {
            assert!(
                (1..=MAX_DESTINATIONS).contains(&p.destination_cidrs.len()),
                "{} has {} destinations",
                p.name,
                p.destination_cidrs.len()
            );
            for c in p.destination_cidrs.iter().chain(&p.excluded_cidrs) {
                assert!((8..=32).contains(&c.len) && c.addr == c.network(), "{c}");
            }
            for c in &p.destination_cidrs {
                assert!((8..=28).contains(&c.len), "{c}");
                assert!(!egress_core::device::is_private(c.addr), "{c} is private");
            }
        }
        // Every worker's pods are in its own /24, under maxPods.
        let mut per_node = vec![0usize; w.workers()];
        for (ep, &k) in w.objects.endpoints.iter().zip(&w.pod_nodes) {
            let subnet = Cidr {
                addr: pod_ip(k, 0),
                len: 24,
            };
            assert!(
                ep.ips.len() == 1 && subnet.contains(ep.ips[0]),
                "{:?}",
                ep.ips
            );
            assert_eq!(ep.node.as_deref(), Some(w.objects.nodes[k].name.as_str()));
            per_node[k] += 1;
        }
        assert!(
            per_node
                .iter()
                .all(|&n| n <= usize::from(MAX_PODS_PER_NODE))
        );
    }

    #[test]
    fn every_kind_of_policy() {
        // Fewer policies than deployments left for them: some select a few deployments;
        // more (the quick scale): some select a deployment a second time.
        for policies in [60, 100] {
            let w = k8s_limits(
                SEED,
                Scale {
                    policies,
                    ..Scale::quick()
                },
            );
            let prefixes = |kind: &str| {
                let prefix = format!("egress-{kind}-");
                w.objects
                    .policies
                    .iter()
                    .filter(|p| p.name.starts_with(&prefix))
                    .count()
            };
            assert_eq!(w.objects.policies.len(), policies);
            for kind in ["team", "zone", "namespace", "deployment"] {
                assert!(prefixes(kind) > 0, "no {kind} policy");
            }
            let items = || w.objects.policies.iter().flat_map(|p| &p.selectors);
            assert!(items().any(|i| i.node_selector.is_some()));
            assert!(items().any(|i| i.namespace_selector.is_some() && i.pod_selector.is_some()));
            let groups = items().any(|i| {
                i.pod_selector.as_ref().is_some_and(|s| {
                    s.match_expressions
                        .iter()
                        .any(|r| r.operator == Operator::In && r.values.len() > 1)
                })
            });
            let several_items = w.objects.policies.iter().any(|p| p.selectors.len() > 1);
            if policies == 60 {
                assert!(
                    groups && several_items,
                    "no policy selects a few deployments"
                );
                assert_eq!(prefixes("spot"), 0);
            } else {
                assert!(prefixes("spot") > 0, "no second policy on a deployment");
            }
            assert!(
                w.objects
                    .policies
                    .iter()
                    .any(|p| p.egress_gateways.len() > 1)
            );
            assert!(
                w.objects
                    .policies
                    .iter()
                    .any(|p| !p.excluded_cidrs.is_empty())
            );
        }
    }

    #[test]
    fn deterministic_for_a_seed() {
        let (a, b) = (k8s_limits(3, tiny()), k8s_limits(3, tiny()));
        assert_eq!(a.objects.endpoints, b.objects.endpoints);
        assert_eq!(a.objects.policies, b.objects.policies);
        assert_eq!(a.objects.nodes, b.objects.nodes);
        assert_eq!(a.deployments, b.deployments);
        assert_eq!(a.rollout(50).events, b.rollout(50).events);
        let c = k8s_limits(4, tiny());
        assert_ne!(a.objects.endpoints, c.objects.endpoints);
    }

    #[test]
    fn uuid_shape() {
        let mut rng = Rng::new(1);
        for _ in 0..1_000 {
            let u = uuid_v4(&mut rng);
            assert!(is_uuid_v4(&u), "{u}");
        }
        assert!(!is_uuid_v4("00000000-0000-5000-8000-000000000000"));
        assert!(!is_uuid_v4("00000000-0000-4000-c000-000000000000"));
        assert!(!is_uuid_v4("00000000-0000-4000-8000-00000000000"));
    }

    #[test]
    fn the_engine_accepts_everything_and_the_rollout_is_exact() {
        let w = k8s_limits(SEED, tiny());
        counts_are_exact(&w);
        let mut engine = w.engine();
        let stats = engine.stats();
        let entries = stats.desired_v4 + stats.desired_v6;
        assert!(entries > w.scale.pods, "{entries} entries");
        assert!(entries <= w.entry_bound);
        let plan = engine.take_plan().unwrap();
        engine.ack(&plan, plan.len()).unwrap();

        let rollout = w.rollout(w.scale.rollout_pods);
        assert_eq!(rollout.pods, w.scale.rollout_pods);
        assert_eq!(rollout.events.len(), 2 * rollout.pods);
        uids_and_ips_are_unique(&rollout.after);
        let after_uids: HashSet<&str> = rollout
            .after
            .endpoints
            .iter()
            .map(|e| e.uid.as_str())
            .collect();
        assert!(
            w.objects
                .endpoints
                .iter()
                .filter(|e| !after_uids.contains(e.uid.as_str()))
                .count()
                == rollout.pods
        );

        let before = engine.entries();
        let expected = rollout
            .after
            .engine(Selection::Cilium, w.max_entries)
            .entries();
        assert_ne!(before, expected, "the rollout changes entries");
        // The reference engine is itself checked against the core's batch function (it
        // shares the engine's policy index with the engine under test).
        assert_eq!(expected, rollout.after.batch_entries(Selection::Cilium));
        assert_eq!(before, w.objects.batch_entries(Selection::Cilium));
        let one = checked_storm(&mut engine, &rollout, false, &before, &expected).unwrap();
        assert_eq!(one.plans, 1);
        assert!(one.upserts > 0 && one.deletes > 0);
        let mut other = w.engine();
        let plan = other.take_plan().unwrap();
        other.ack(&plan, plan.len()).unwrap();
        let each = checked_storm(&mut other, &rollout, true, &before, &expected).unwrap();
        assert_eq!(each.plans, rollout.events.len());
        // Every new pod's entries come in once, every old pod's go once, either way.
        assert_eq!((each.upserts, each.deletes), (one.upserts, one.deletes));

        let queries = lookup_queries(1, &rollout.after, &expected, 2_000);
        let meters = Meters {
            live_bytes: &|| 0,
            thread_allocations: &|| 0,
            lookup_time: Duration::from_millis(1),
        };
        let (_, _, hits) = lookups(&engine, &expected, &queries, &meters).unwrap();
        assert!(hits > 0.3, "{hits}");
    }

    #[test]
    fn a_wrong_plan_or_a_missed_event_is_caught() {
        let w = k8s_limits(SEED, tiny());
        let acked = || {
            let mut engine = w.engine();
            let plan = engine.take_plan().unwrap();
            engine.ack(&plan, plan.len()).unwrap();
            engine
        };
        let mut engine = acked();
        let before = engine.entries();
        let rollout = w.rollout(w.scale.rollout_pods);
        let expected = rollout
            .after
            .engine(Selection::Cilium, w.max_entries)
            .entries();

        // The storm's plan, as taken, makes the maps exact.
        let mut replay = acked();
        for event in &rollout.events {
            match event {
                RolloutEvent::Add(ep) => replay.upsert_endpoint(ep.clone()).unwrap(),
                RolloutEvent::Delete(uid) => assert!(replay.delete_endpoint(uid)),
            }
        }
        let plan = replay.take_plan().unwrap();
        let mut maps = MapState::new(&before);
        maps.apply(&plan_ops(&plan)).unwrap();
        maps.matches(&expected).unwrap();
        // With one delete skipped, a stale entry stays in the maps.
        let mut ops = plan_ops(&plan);
        let skipped = ops.iter().position(|(a, _)| *a == Action::Delete).unwrap();
        ops.remove(skipped);
        let mut maps = MapState::new(&before);
        maps.apply(&ops).unwrap();
        let err = maps.matches(&expected).unwrap_err();
        assert!(err.contains("only in the maps the plans wrote"), "{err}");
        // A delete of a key the maps do not hold, or a key written twice, is refused.
        let err = MapState::new(&expected)
            .apply(&plan_ops(&plan))
            .unwrap_err();
        assert!(err.contains("do not hold"), "{err}");
        let twice = [ops[0], ops[0]];
        let err = MapState::new(&before).apply(&twice).unwrap_err();
        assert!(err.contains("twice"), "{err}");

        // An engine that missed the delete of a pod with entries fails the check.
        let sources: HashSet<IpAddr> = before.ipv4.iter().map(|e| e.source).collect();
        let ip_of: HashMap<&str, IpAddr> = w
            .objects
            .endpoints
            .iter()
            .map(|e| (e.uid.as_str(), e.ips[0]))
            .collect();
        let mut missed = rollout.clone();
        let skipped = missed
            .events
            .iter()
            .position(|e| matches!(e, RolloutEvent::Delete(uid) if sources.contains(&ip_of[uid.as_str()])))
            .unwrap();
        missed.events.remove(skipped);
        let err = checked_storm(&mut engine, &missed, false, &before, &expected).unwrap_err();
        assert!(
            err.contains("only in the engine's desired entries"),
            "{err}"
        );
    }
}
