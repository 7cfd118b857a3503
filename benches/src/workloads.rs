//! W-lookup, W-cluster, W-scale and W-churn, deterministic for a seed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use egress_core::cluster::{Endpoint, Node};
use egress_core::device::{Device, DeviceAddress, Families};
use egress_core::engine::{Engine, EngineConfig};
use egress_core::entries::MapEntries;
use egress_core::gateway::Selection;
use egress_core::labels::Labels;
use egress_core::netip::{Cidr, mask_v4, mask_v6};
use egress_core::policy::{GatewaySpec, LabelSelector, Policy, SelectorItem};

/// xorshift64*: small, fast, deterministic.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for a seed (any value; zero is remapped).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The map capacity of a W-lookup of `endpoints` sources: 65,536 (PERFORMANCE.md) or the
/// power of two that holds its 4 entries per source.
pub fn lookup_max_entries(endpoints: usize) -> u32 {
    (4 * endpoints as u32).next_power_of_two().max(65_536)
}

/// A W-lookup engine and its queries.
pub struct LookupWorkload {
    /// The engine: 4 entries per endpoint (the default route and 3 excluded prefixes).
    pub engine: Engine,
    /// Its entries.
    pub maps: MapEntries,
    /// (source, destination) queries: 90 % known sources, half of those inside an excluded prefix.
    pub queries: Vec<(IpAddr, IpAddr)>,
}

/// W-lookup: `endpoints` sources with distinct addresses (IPv4 in 10.0.0.0/8, or the IPv6
/// twin in fd00::/8), each with `0.0.0.0/0` (`::/0`) and 3 excluded prefixes drawn from a
/// pool of 64 (IPv4 lengths /8–/28; IPv6 lengths /32–/112). Built through the engine: one
/// policy gives every endpoint the default route through 8 gateways (one of them local),
/// and 64 policies with no destination give the excluded prefixes to the endpoints labelled
/// for them.
pub fn lookup(seed: u64, endpoints: usize, queries: usize, ipv6: bool) -> LookupWorkload {
    let mut rng = Rng::new(seed);
    let mut pool: Vec<Cidr> = Vec::with_capacity(64);
    while pool.len() < 64 {
        let c = if ipv6 {
            let len = 32 + rng.below(81) as u8;
            let addr =
                (u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64())) & mask_v6(len);
            Cidr {
                addr: IpAddr::V6(Ipv6Addr::from(addr)),
                len,
            }
        } else {
            let len = 8 + rng.below(21) as u8;
            let addr = (rng.next_u64() as u32) & mask_v4(len);
            Cidr {
                addr: IpAddr::V4(Ipv4Addr::from(addr)),
                len,
            }
        };
        if !pool.contains(&c) {
            pool.push(c);
        }
    }
    let source = |i: usize| -> IpAddr {
        if ipv6 {
            IpAddr::V6(Ipv6Addr::from((0xfd00u128 << 112) | (i as u128 + 1)))
        } else {
            IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32 + 1))
        }
    };
    let default = if ipv6 { "::/0" } else { "0.0.0.0/0" };
    let mut policies = vec![Policy {
        name: "default-route".into(),
        namespace: None,
        creation_timestamp: None,
        selectors: vec![SelectorItem {
            pod_selector: Some(LabelSelector::default()),
            ..SelectorItem::default()
        }],
        destination_cidrs: vec![cidr(default)],
        excluded_cidrs: vec![],
        egress_gateway: GatewaySpec {
            node_selector: label("egress", "true"),
            egress_ip: None,
            interface: None,
        },
        egress_gateways: listed_gateways(8, Some("eth1")),
    }];
    for (k, c) in pool.iter().enumerate() {
        policies.push(Policy {
            name: format!("exclude-{k:02}"),
            namespace: None,
            creation_timestamp: None,
            selectors: vec![SelectorItem {
                pod_selector: Some(label(&format!("x{k}"), "true")),
                ..SelectorItem::default()
            }],
            destination_cidrs: vec![],
            excluded_cidrs: vec![*c],
            egress_gateway: GatewaySpec {
                node_selector: label("egress", "true"),
                egress_ip: None,
                interface: None,
            },
            egress_gateways: vec![],
        });
    }
    let mut excluded_of = Vec::with_capacity(endpoints);
    let mut eps = Vec::with_capacity(endpoints);
    for i in 0..endpoints {
        let mut picks: Vec<usize> = Vec::with_capacity(3);
        while picks.len() < 3 {
            let k = rng.below(64) as usize;
            if !picks.contains(&k) {
                picks.push(k);
            }
        }
        let mut ep = endpoint(i, "all", 50);
        ep.ips = vec![source(i)];
        ep.identity_labels = Some(
            picks
                .iter()
                .map(|k| (format!("x{k}"), "true".to_owned()))
                .collect(),
        );
        eps.push(ep);
        excluded_of.push(picks.iter().map(|&k| pool[k]).collect::<Vec<_>>());
    }
    let mut devices = gateway_devices(0);
    devices[1].addresses.push(DeviceAddress {
        addr: "2402::1".parse().unwrap_or(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        prefix_len: 64,
    });
    let objects = Objects {
        nodes: nodes(50, 8),
        policies,
        endpoints: eps,
        devices,
        local_node: node_name(0),
    };
    let engine = objects.engine(Selection::Cilium, lookup_max_entries(endpoints));
    let mut qs = Vec::with_capacity(queries);
    for _ in 0..queries {
        let known = rng.below(10) < 9;
        let i = rng.below(endpoints as u64) as usize;
        let src = if known {
            source(i)
        } else {
            source(endpoints + 1 + rng.below(1_000_000) as usize)
        };
        let inside = known && rng.below(2) == 0;
        let dst = if inside {
            let c = excluded_of[i][rng.below(3) as usize];
            random_inside(&mut rng, c)
        } else if ipv6 {
            IpAddr::V6(Ipv6Addr::from(
                u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64()),
            ))
        } else {
            IpAddr::V4(Ipv4Addr::from(rng.next_u64() as u32))
        };
        qs.push((src, dst));
    }
    LookupWorkload {
        maps: engine.entries(),
        engine,
        queries: qs,
    }
}

fn random_inside(rng: &mut Rng, c: Cidr) -> IpAddr {
    match c.addr {
        IpAddr::V4(a) => {
            let host = (rng.next_u64() as u32) & !mask_v4(c.len);
            IpAddr::V4(Ipv4Addr::from((u32::from(a) & mask_v4(c.len)) | host))
        }
        IpAddr::V6(a) => {
            let r = u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64());
            IpAddr::V6(Ipv6Addr::from(
                (u128::from(a) & mask_v6(c.len)) | (r & !mask_v6(c.len)),
            ))
        }
    }
}

/// The objects of a cluster, in the order an agent would learn them.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    /// Nodes.
    pub nodes: Vec<Node>,
    /// Policies.
    pub policies: Vec<Policy>,
    /// Endpoints.
    pub endpoints: Vec<Endpoint>,
    /// The local node's devices.
    pub devices: Vec<Device>,
    /// The node whose maps are computed.
    pub local_node: String,
}

impl Objects {
    /// The configuration of [`Objects::engine`]: the default Cilium version's rules (1.18)
    /// written to `_v4_v2` alone, the map the kernel benchmarks' datapath program reads
    /// (28-byte values), as in every earlier report.
    pub fn config(&self, selection: Selection, max_entries: u32) -> EngineConfig {
        EngineConfig {
            selection,
            max_entries,
            layout: egress_core::maps::Layout::V4V2,
            ..EngineConfig::new(self.local_node.clone())
        }
    }

    /// The entries the core's batch function computes from these objects under
    /// [`Objects::config`]'s rules: the equality reference of PERFORMANCE.md (the engine is
    /// never its own reference).
    pub fn batch_entries(&self, selection: Selection) -> MapEntries {
        let state = egress_core::entries::ClusterState {
            cluster: None,
            nodes: self
                .nodes
                .iter()
                .map(|n| (n.name.clone(), n.clone()))
                .collect(),
            endpoints: self.endpoints.clone(),
            policies: self.policies.clone(),
        };
        let rules = self.config(selection, 1).rules();
        egress_core::entries::compute_without_producers(
            &state,
            &self.local_node,
            &self.devices,
            rules,
        )
        .maps
    }

    /// A fresh engine fed every object through the public API (the full-recompute baseline).
    pub fn engine(&self, selection: Selection, max_entries: u32) -> Engine {
        self.engine_with(self.config(selection, max_entries))
    }

    /// An engine of `config` fed every object through the public API (as
    /// [`Objects::engine`]).
    pub fn engine_with(&self, config: EngineConfig) -> Engine {
        let mut engine = Engine::new(config);
        engine.set_devices(self.devices.clone());
        for n in &self.nodes {
            engine.upsert_node(n.clone());
        }
        for p in &self.policies {
            // The workloads' policies are generated valid for the default version (IPv4
            // egress IPs, at most 64 gateways): a refusal is a bug in the generator.
            if let Err(e) = engine.upsert_policy(p.clone()) {
                panic!("workload policy refused by the engine: {e}");
            }
        }
        for e in &self.endpoints {
            // Generated valid: a refusal is a bug in the generator.
            if let Err(err) = engine.upsert_endpoint(e.clone()) {
                panic!("workload endpoint refused by the engine: {err}");
            }
        }
        engine
    }
}

fn node_name(i: usize) -> String {
    format!("node-{i:03}")
}

fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(172, 20, (i / 250) as u8, (i % 250) as u8 + 1)
}

fn nodes(count: usize, gateways: usize) -> Vec<Node> {
    (0..count)
        .map(|i| {
            let egress = if i < gateways { "true" } else { "false" };
            let labels: Labels = [
                ("kubernetes.io/hostname", node_name(i).as_str()),
                ("egress", egress),
            ]
            .into_iter()
            .collect();
            Node::new(node_name(i), labels, Some(node_ip(i)))
        })
        .collect()
}

fn gateway_devices(i: usize) -> Vec<Device> {
    node_devices(node_ip(i), Ipv4Addr::new(43, 0, 0, i as u8 + 1))
}

/// A gateway node's devices: `eth0` with its node address (/16, the default route) and
/// `eth1` with its public egress address (/24).
pub fn node_devices(node: Ipv4Addr, egress: Ipv4Addr) -> Vec<Device> {
    let device = |name: &str, index, addr, prefix_len, default_route| Device {
        name: name.into(),
        index,
        alt_names: vec![],
        addresses: vec![DeviceAddress {
            addr: IpAddr::V4(addr),
            prefix_len,
        }],
        default_route,
    };
    vec![
        device("eth0", 2, node, 16, Families::all()),
        device("eth1", 3, egress, 24, Families::empty()),
    ]
}

/// Gateway entries for the first `n` nodes by hostname, each egressing through `interface`.
fn listed_gateways(n: usize, interface: Option<&str>) -> Vec<GatewaySpec> {
    (0..n)
        .map(|i| GatewaySpec {
            node_selector: label("kubernetes.io/hostname", &node_name(i)),
            egress_ip: None,
            interface: interface.map(str::to_owned),
        })
        .collect()
}

fn label(key: &str, value: &str) -> LabelSelector {
    LabelSelector {
        match_labels: vec![(key.into(), value.into())],
        match_expressions: vec![],
    }
}

fn cidr(s: &str) -> Cidr {
    egress_core::netip::parse_prefix(s).unwrap_or(Cidr {
        addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        len: 0,
    })
}

/// An endpoint of W-cluster / W-scale.
pub fn endpoint(i: usize, group: &str, nodes: usize) -> Endpoint {
    Endpoint {
        uid: format!(
            "{:08x}-{:04x}-5{:03x}-8{:03x}-{:012x}",
            (i as u64).wrapping_mul(2_654_435_761) as u32,
            i % 0xffff,
            i % 0xfff,
            (i / 7) % 0xfff,
            i
        ),
        namespace: Some(format!("ns-{}", i % 20)),
        name: Some(format!("pod-{i}")),
        labels: [
            ("app".to_owned(), format!("app-{}", i % 50)),
            ("group".to_owned(), group.to_owned()),
        ]
        .into(),
        namespace_labels: [(
            "kubernetes.io/metadata.name".to_owned(),
            format!("ns-{}", i % 20),
        )]
        .into(),
        ips: vec![IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32 + 1))],
        node: Some(node_name(8 + i % (nodes - 8).max(1))),
        ..Endpoint::default()
    }
}

/// The `i`-th pod a W-cluster CNI ADD brings: a new uid, one of the 100 groups, an address
/// in 10.200.0.0/16 that no W-cluster endpoint has.
pub fn new_pod(i: usize) -> Endpoint {
    let mut ep = endpoint(20_000 + i, &format!("g{}", i % 100), 50);
    ep.ips = vec![IpAddr::V4(Ipv4Addr::new(
        10,
        200,
        (i / 250) as u8,
        (i % 250) as u8 + 1,
    ))];
    ep
}

/// `endpoint` as the core `Pod` object a watch delivers (B.10), in JSON: its uid, namespace,
/// name, labels, node and addresses.
pub fn pod_object(endpoint: &Endpoint) -> String {
    let labels: serde_json::Map<String, serde_json::Value> = endpoint
        .labels
        .iter()
        .map(|(k, v)| (k.to_owned(), serde_json::Value::from(v)))
        .collect();
    let ips: Vec<serde_json::Value> = endpoint
        .ips
        .iter()
        .map(|ip| serde_json::json!({"ip": ip.to_string()}))
        .collect();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": endpoint.name,
            "namespace": endpoint.namespace,
            "uid": endpoint.uid,
            "labels": labels,
        },
        "spec": {"nodeName": endpoint.node},
        "status": {"phase": "Running", "podIPs": ips},
    })
    .to_string()
}

/// W-cluster: 10,000 endpoints, 100 policies each selecting ~1 % of them by label (2
/// destination and 2 excluded CIDRs, two listed gateways), 50 nodes of which 8 are gateways;
/// the local node is a gateway. Sizes are parameters for the quick report.
pub fn cluster(seed: u64, endpoints: usize, policies: usize) -> Objects {
    let mut rng = Rng::new(seed);
    let node_count = 50;
    let objects_nodes = nodes(node_count, 8);
    let policies: Vec<Policy> = (0..policies)
        .map(|p| {
            let a = rng.below(8) as usize;
            let b = (a + 1 + rng.below(7) as usize) % 8;
            let entry = |i: usize, interface: bool| GatewaySpec {
                node_selector: label("kubernetes.io/hostname", &node_name(i)),
                egress_ip: (!interface).then_some(IpAddr::V4(node_ip(i))),
                interface: interface.then(|| "eth1".to_owned()),
            };
            Policy {
                name: format!("policy-{p:03}"),
                namespace: None,
                creation_timestamp: None,
                selectors: vec![SelectorItem {
                    pod_selector: Some(label("group", &format!("g{p}"))),
                    ..SelectorItem::default()
                }],
                destination_cidrs: vec![
                    cidr("0.0.0.0/0"),
                    cidr(&format!("100.{}.0.0/16", p % 250)),
                ],
                excluded_cidrs: vec![
                    cidr("10.0.0.0/8"),
                    cidr(&format!("172.{}.0.0/16", 16 + p % 16)),
                ],
                egress_gateway: entry(a, false),
                egress_gateways: vec![entry(a, false), entry(b, true)],
            }
        })
        .collect();
    let groups = policies.len().max(1);
    let endpoints = (0..endpoints)
        .map(|i| endpoint(i, &format!("g{}", i % groups), node_count))
        .collect();
    Objects {
        nodes: objects_nodes,
        policies,
        endpoints,
        devices: gateway_devices(0),
        local_node: node_name(0),
    }
}

/// One policy selecting every endpoint, 4 CIDRs (2 destination, 2 excluded), its gateways
/// the first `gateways` nodes listed by hostname, each egressing through `interface`; the
/// first `egress_nodes` nodes carry `egress=true`.
fn all_selected(
    name: &str,
    gateways: usize,
    egress_nodes: usize,
    interface: Option<&str>,
    endpoints: usize,
) -> Objects {
    let node_count = 50.max(egress_nodes + 8);
    let policy = Policy {
        name: name.into(),
        namespace: None,
        creation_timestamp: None,
        selectors: vec![SelectorItem {
            pod_selector: Some(LabelSelector::default()),
            ..SelectorItem::default()
        }],
        destination_cidrs: vec![cidr("0.0.0.0/0"), cidr("100.64.0.0/10")],
        excluded_cidrs: vec![cidr("10.0.0.0/8"), cidr("172.16.0.0/12")],
        egress_gateway: GatewaySpec {
            node_selector: label("egress", "true"),
            egress_ip: None,
            interface: interface.map(str::to_owned),
        },
        egress_gateways: listed_gateways(gateways, interface),
    };
    Objects {
        nodes: nodes(node_count, egress_nodes),
        policies: vec![policy],
        endpoints: (0..endpoints)
            .map(|i| endpoint(i, "all", node_count))
            .collect(),
        devices: gateway_devices(0),
        local_node: node_name(0),
    }
}

/// W-scale: `endpoints` endpoints (150,000: Kubernetes' documented pod limit), one policy
/// selecting all, 4 CIDRs (2 destination, 2 excluded) → 4 entries per endpoint.
pub fn scale(endpoints: usize) -> Objects {
    all_selected("everything", 4, 8, Some("eth1"), endpoints)
}

/// W-churn: `n` gateway nodes, listed one by one in the `egressGateways` of one policy that
/// selects all `endpoints` endpoints (both modes choose among the `n` entries).
pub fn churn(n: usize, endpoints: usize) -> Objects {
    all_selected("churn", n, n, None, endpoints)
}

/// W-churn as an operator edits it: `n` single-node `egressGateways` entries (each
/// nodeSelector picks one node by `kubernetes.io/hostname`; no `egressIP` or `interface`,
/// so every entry's key is `route`), one policy selecting all `endpoints` endpoints. The
/// local node is not a gateway, so every endpoint's entries carry its gateway's IP.
pub fn churn_listed(n: usize, endpoints: usize) -> Objects {
    away_from_gateways(all_selected("churn", n, n, None, endpoints))
}

/// W-churn with a gateway pool: one policy selecting all `endpoints` endpoints whose single
/// gateway entry's nodeSelector is the pool label `egress=true`, carried by `n` nodes. The
/// local node is not a gateway. [`pool_node`] is a node joining the pool.
pub fn churn_pool(n: usize, endpoints: usize) -> Objects {
    away_from_gateways(all_selected("churn-pool", 0, n, None, endpoints))
}

/// A new node carrying the pool label `egress=true`, named after every node of `objects`
/// (so it sorts last by name).
pub fn pool_node(objects: &Objects) -> Node {
    let i = objects.nodes.len();
    let labels: Labels = [
        ("kubernetes.io/hostname", node_name(i).as_str()),
        ("egress", "true"),
    ]
    .into_iter()
    .collect();
    Node::new(node_name(i), labels, Some(node_ip(i)))
}

/// The same objects computed on the last node, which no gateway entry selects.
fn away_from_gateways(mut objects: Objects) -> Objects {
    let last = objects.nodes.len().saturating_sub(1);
    objects.local_node = node_name(last);
    objects.devices = gateway_devices(last);
    objects
}

/// Gives the endpoints of `objects` the random uids of a seed (`uids[i]` to the i-th).
pub fn with_uids(mut objects: Objects, uids: &[String]) -> Objects {
    for (ep, uid) in objects.endpoints.iter_mut().zip(uids) {
        ep.uid.clone_from(uid);
    }
    objects
}
