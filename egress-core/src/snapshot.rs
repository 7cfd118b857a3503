//! The snapshot format: a whole cluster in one YAML or JSON file (ARCHITECTURE.md).
//!
//! Input errors (unknown fields, duplicates, wrong types, addresses of the wrong family, ...)
//! are all collected, each naming its path. Policy problems are not input errors: an invalid
//! policy is kept with its [`PolicyErrors`] so callers can warn and compute the rest.
//!
//! The module by job: `format` reads the snapshot format, `load` loads and merges inputs
//! (snapshots and Kubernetes dumps), `objects` reads one object at a time for the bindings,
//! `queries` answers questions about a snapshot and projects it into the batch path's
//! [`ClusterState`]; `kubernetes` converts Kubernetes objects.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use crate::cluster::{Endpoint, Namespace, Node, Nodes};
use crate::device::{Device, DeviceAddress, Families};
use crate::document::{self, Fields, LabelLimits, Value, read_seq, read_str, type_error};
use crate::entries::ClusterState;
use crate::error::Error;
use crate::field::{self, FieldError, Reason};
use crate::labels::Labels;
use crate::netip;
use crate::policy::{Policy, PolicyErrors, parse_policy_for};
use crate::version::{CiliumVersion, DetectedVersion};

/// A parsed snapshot.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// `localNode`: whose maps to compute.
    pub local_node: Option<String>,
    /// `cluster`.
    pub cluster: Option<String>,
    /// Nodes by name.
    pub nodes: Nodes,
    /// Endpoints, in file order.
    pub endpoints: Vec<Endpoint>,
    /// Policies, in file order, each valid or with its errors.
    pub policies: Vec<Result<Policy, PolicyErrors>>,
    /// Top-level `interfaces`: `localNode`'s devices unless it has its own.
    pub interfaces: Option<Vec<Device>>,
    /// The Cilium version whose CRD schema the policies were validated by (an `egressIP` is
    /// IPv4 only up to 1.19; 1.20 limits `egressGateways` to 64): 1.18 unless read with a
    /// `*_for` function.
    pub cilium_version: CiliumVersion,
    /// The Cilium releases the input names (a Kubernetes dump's agent DaemonSet or
    /// `cilium-config` ConfigMap: [`crate::version::detect`]).
    pub detected_versions: Vec<DetectedVersion>,
}

pub mod kubernetes;

/// A snapshot read from either accepted input, with the conversion's warnings.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The snapshot.
    pub snapshot: Snapshot,
    /// Warnings of a Kubernetes dump's conversion (skipped objects and addresses).
    pub warnings: Vec<String>,
    /// For a Kubernetes dump, what its objects said about each pod and node (B.10): an engine
    /// loaded from it ([`crate::engine::Engine::load_snapshot`]) keeps it, so that later
    /// events of the same cluster keep B.10's precedence. `None` for a snapshot document.
    pub objects: Option<kubernetes::DumpObjects>,
}

mod format;
mod load;
mod objects;
mod queries;

use format::*;
use load::*;
pub use load::{MAX_POLICIES, load, load_all, load_all_owned, load_all_owned_for, load_for};
use objects::*;
pub use objects::{
    devices_from_document, endpoint_from_document, namespace_from_document, node_from_document,
    parse_endpoint, parse_interfaces, parse_namespace, parse_node,
};

#[cfg(test)]
mod tests;
