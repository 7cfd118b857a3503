//! # egress-core
//!
//! The pure engine behind egress-gateway: it computes, byte for byte, the BPF LPM-trie map
//! entries Cilium's agent programs on a node for `CiliumEgressGatewayPolicy` objects, and
//! answers the datapath's question for any (source, destination) pair.
//!
//! Data flows one way. Input text is parsed into [`document::Value`] trees; policies are
//! validated into [`policy::Policy`] values (every error named by its field path), snapshots
//! into [`snapshot::Snapshot`]. Label [`selector`]s are compiled once; [`gateway`] resolution
//! and [`egress_ip`] derivation follow Cilium's rules; the [`engine::Engine`] — the main
//! product — keeps the node's desired maps up to date event by event, hands out two-phase
//! plans ([`engine::Plan`]: upserts then deletes — deletes first only where a map would
//! overflow otherwise — each with the kernel's exact bytes from
//! [`maps`]) that the caller acknowledges, and answers lookups without allocating.
//! [`entries::compute`] is the batch path (all policies × all endpoints), the equality
//! reference for the engine; [`render`] prints entries as `cilium-dbg` does or as JSON.
//! No I/O, no clocks, no `unsafe`.
//!
//! ## Floors
//!
//! Each module uses only modules of lower floors (no import cycle: `tests/module_layers.rs`
//! checks it):
//!
//! 0. [`field`] (a field path and why it is wrong), [`labels`], [`timestamp`];
//! 1. [`document`] (YAML/JSON into trees, within budgets), [`identity`] (Cilium's identity
//!    labels), [`netip`] (addresses and prefixes as Go's `net/netip` reads them);
//! 2. [`device`] (a node's interfaces), [`maps`] (the kernel's bytes, layouts, capacity),
//!    [`selector`] (label selectors);
//! 3. [`cluster`] (nodes and endpoints), [`version`] (what each Cilium version does, the
//!    selection mode);
//! 4. [`policy`] (reading and validating `CiliumEgressGatewayPolicy`);
//! 5. [`egress_ip`] (egress IP derivation), [`error`] (the crate's one error, wrapping each
//!    module's own);
//! 6. [`gateway`] (resolution and selection), [`cilium_config`] (the agent's settings);
//! 7. [`entries`] (the batch path: what a node writes, B.1 conflicts, counted or built);
//! 8. [`lookup`] (the datapath's question), [`snapshot`] (inputs read and merged);
//!    [`compact`] (a node's entries as endpoint sets and per-set rules: the compact layout's
//!    form and its reference decision);
//! 9. [`engine`] (incremental state, plans, explanations);
//! 10. [`render`] (tables, JSON documents, explanation text).
//!
//! ```
//! use egress_core::cluster::Endpoint;
//! use egress_core::engine::{Action, Engine, EngineConfig};
//! use egress_core::lookup::Verdict;
//! use egress_core::snapshot::Snapshot;
//!
//! let snapshot = Snapshot::parse(r#"
//! localNode: gw
//! nodes:
//! - {name: gw, labels: {egress: "true"}, ipv4: 192.168.1.1,
//!    interfaces: [{name: eth0, index: 2, addresses: [192.168.1.1/24], defaultRoute: true}]}
//! - {name: worker, ipv4: 192.168.1.2}
//! endpoints:
//! - {uid: u1, namespace: default, labels: {app: web}, ips: [10.0.0.1], node: worker}
//! policies:
//! - metadata: {name: web}
//!   spec:
//!     selectors: [{podSelector: {matchLabels: {app: web}}}]
//!     destinationCIDRs: [0.0.0.0/0]
//!     excludedCIDRs: [10.0.0.0/8]
//!     egressGateway: {nodeSelector: {matchLabels: {egress: "true"}}}
//! "#).unwrap();
//!
//! // The gateway node's engine: its first plan writes the endpoint's two entries.
//! let mut engine = Engine::from_snapshot(&snapshot, EngineConfig::new("gw")).0;
//! let plan = engine.take_plan().unwrap();
//! assert_eq!(plan.upserts().len(), 2);
//! for op in plan.ops() {
//!     // Write op.key() / op.value() to the map named op.map() (egress-bpf does this).
//!     // Cilium 1.18 (the default) writes the legacy IPv4 map.
//!     assert_eq!((op.map().name(), op.key().len()), ("cilium_egress_gw_policy_v4", 12));
//! }
//! engine.ack(&plan, plan.len()).unwrap(); // everything was written
//! assert!(engine.take_plan().unwrap().is_empty());
//!
//! // A CNI ADD: the new pod's entries, and only those, at once.
//! engine.upsert_endpoint(Endpoint {
//!     uid: "u2".into(),
//!     namespace: Some("default".into()),
//!     labels: [("app".to_owned(), "web".to_owned())].into(),
//!     ips: vec!["10.0.0.2".parse().unwrap()],
//!     node: Some("worker".into()),
//!     ..Endpoint::default()
//! });
//! let plan = engine.take_plan().unwrap();
//! assert!(plan.ops().iter().all(|op| op.action() == Action::Upsert
//!     && op.entry().unwrap().source == "10.0.0.2".parse::<std::net::IpAddr>().unwrap()));
//! assert_eq!(plan.len(), 2);
//! engine.ack(&plan, plan.len()).unwrap();
//!
//! // The datapath's question, answered without allocating.
//! let verdict = engine.lookup("10.0.0.2".parse().unwrap(), "8.8.8.8".parse().unwrap());
//! // 1.18 stores no egress ifindex (1.20 would: eth0's 2).
//! assert_eq!(verdict, Verdict::Masquerade { egress_ip: "192.168.1.1".parse().unwrap(), ifindex: 0 });
//! assert_eq!(engine.lookup("10.0.0.2".parse().unwrap(), "10.1.2.3".parse().unwrap()), Verdict::Excluded);
//! ```
#![forbid(unsafe_code)]

pub mod cilium_config;
pub mod cluster;
pub mod compact;
pub mod device;
pub mod document;
pub mod egress_ip;
pub mod engine;
pub mod entries;
pub mod error;
pub mod field;
pub mod gateway;
pub mod identity;
pub mod labels;
pub mod lookup;
pub mod maps;
pub mod netip;
pub mod policy;
pub mod render;
pub mod selector;
pub mod snapshot;
pub mod timestamp;
pub mod version;

pub use error::{AllocError, Error, ErrorKind, Result};

// The README's Rust examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
