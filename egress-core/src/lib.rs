//! # egress-core
//!
//! The pure engine behind egress-gateway: it computes, byte for byte, the BPF LPM-trie map
//! entries Cilium's agent programs on a node for `CiliumEgressGatewayPolicy` objects, and
//! answers the datapath's question for any (source, destination) pair.
//!
//! Data flows one way. Input text is parsed into [`document::Node`] trees; policies are
//! validated into [`policy::Policy`] values (every error named by its field path), snapshots
//! into [`snapshot::Snapshot`]. Label [`selector`]s are compiled once; [`gateway`] resolution
//! and [`egress_ip`] derivation follow Cilium's rules; [`entries::compute`] produces the
//! entries with deterministic conflict resolution; [`maps`] encodes them in the kernel's
//! exact layouts; [`lookup::LookupTable`] answers lookups without allocating; [`render`]
//! prints them as `cilium-dbg` does or as JSON. No I/O, no clocks, no `unsafe`.
//!
//! ```
//! use egress_core::{entries, lookup::{LookupTable, Verdict}, snapshot::Snapshot};
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
//! let node = snapshot.local_node_name(None).unwrap();
//! let computed = entries::compute(&snapshot.state(), node, snapshot.devices_for(node), Default::default());
//! assert_eq!(computed.maps.ipv4.len(), 2);
//!
//! let table = LookupTable::new(&computed.maps, Some("192.168.1.1".parse().unwrap()));
//! let verdict = table.lookup("10.0.0.1".parse().unwrap(), "8.8.8.8".parse().unwrap());
//! assert_eq!(verdict, Verdict::Masquerade { egress_ip: "192.168.1.1".parse().unwrap(), ifindex: 2 });
//! assert_eq!(table.lookup("10.0.0.1".parse().unwrap(), "10.1.2.3".parse().unwrap()), Verdict::Excluded);
//! ```
#![forbid(unsafe_code)]

pub mod cluster;
pub mod device;
pub mod document;
pub mod egress_ip;
pub mod engine;
pub mod entries;
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
