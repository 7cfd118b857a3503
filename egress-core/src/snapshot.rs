//! The snapshot format: a whole cluster in one YAML or JSON file (ARCHITECTURE.md).
//!
//! Input errors (unknown fields, duplicates, wrong types, addresses of the wrong family, ...)
//! are all collected, each naming its path. Policy problems are not input errors: an invalid
//! policy is kept with its [`PolicyErrors`] so callers can warn and compute the rest.

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
}

/// Reads a snapshot file or a Kubernetes dump (`kubectl get ciliumegressgatewaypolicies,
/// ciliumnodes,ciliumendpoints,namespaces -A -o yaml`: a `List`, or a `---` stream of objects
/// or Lists). A dump has no `localNode` and no devices: callers supply both.
pub fn load(text: &str) -> Result<Loaded, Error> {
    load_for(text, CiliumVersion::default())
}

/// [`load`] validating policies by `version`'s rules.
pub fn load_for(text: &str, version: CiliumVersion) -> Result<Loaded, Error> {
    load_unchecked(text, version).and_then(Loaded::within_limits)
}

/// The most policies one input (or the inputs read together) may hold, valid or not: ours,
/// not Kubernetes' — the batch path matches every policy against every endpoint, so this
/// bounds its work per endpoint.
pub const MAX_POLICIES: usize = 10_000;

/// `policies: Too many: COUNT: must have at most 10000 items`.
fn too_many_policies(count: usize) -> FieldError {
    FieldError::new(
        "policies",
        Reason::TooMany {
            count,
            max: MAX_POLICIES,
        },
    )
}

impl Loaded {
    /// Refuses a cluster past the numeric limits a single object cannot see (the policy
    /// count).
    fn within_limits(self) -> Result<Self, Error> {
        let count = self.snapshot.policies.len();
        if count > MAX_POLICIES {
            return Err(Error::Input(vec![too_many_policies(count)]));
        }
        Ok(self)
    }
}

fn load_unchecked(text: &str, version: CiliumVersion) -> Result<Loaded, Error> {
    let mut docs = document::parse_documents(text)?;
    if let [doc] = docs.as_slice()
        && Snapshot::is_snapshot_document(doc)
    {
        let doc = docs.pop().unwrap_or(Value::Null);
        return Snapshot::from_document_owned_for(doc, version).map(|snapshot| Loaded {
            snapshot,
            warnings: Vec::new(),
        });
    }
    if docs.is_empty() {
        return Err(Error::DocumentCount(0));
    }
    check_objects(&docs)?;
    let objects = document::flatten_lists(docs);
    kubernetes::from_objects(&objects, version)
        .map(|(snapshot, warnings)| Loaded { snapshot, warnings })
}

/// The documents of an input that is not one snapshot must be Kubernetes objects: a
/// snapshot in a stream, or a scalar or list where an object belongs, is said so (instead
/// of "kind: Required value" for each).
fn check_objects(docs: &[Value]) -> Result<(), Error> {
    let mut errors = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let path = field::item("documents", i);
        if !matches!(doc, Value::Map(_)) {
            errors.push(FieldError::new(
                path,
                Reason::Invalid {
                    value: field::quote(doc.type_name()),
                    detail: "want a snapshot or Kubernetes objects (mappings)".to_owned(),
                },
            ));
        } else if Snapshot::is_snapshot_document(doc) {
            errors.push(FieldError::new(
                path,
                Reason::Invalid {
                    value: "a snapshot".to_owned(),
                    detail: format!(
                        "a snapshot must be the only document of its input, this one has {} \
                         (give several snapshots as several inputs)",
                        docs.len()
                    ),
                },
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Input(errors))
    }
}

/// Reads several inputs as one cluster ("my dump plus this new policy"): later objects
/// replace earlier ones of the same kind and name. Either every input holds Kubernetes
/// objects (merged, then converted as one dump), or the first is a snapshot and the later
/// ones are snapshots (their nodes, endpoints and policies replace the first's by name or
/// uid; their `localNode`, `cluster` and `interfaces` too when present) or Kubernetes objects
/// (policies and CiliumNodes replace by name, CiliumEndpoints by uid, matched to the merged
/// nodes). An error says which input it is about (its index).
pub fn load_all(texts: &[&str]) -> Result<Loaded, (Option<usize>, Error)> {
    load_all_unchecked(texts, CiliumVersion::default())
        .and_then(|loaded| loaded.within_limits().map_err(|e| (None, e)))
}

/// [`load_all`] taking the texts, each dropped once parsed: a large input's text is not
/// held beside the objects read from it.
pub fn load_all_owned(texts: Vec<String>) -> Result<Loaded, (Option<usize>, Error)> {
    load_all_owned_for(texts, CiliumVersion::default())
}

/// [`load_all_owned`] validating policies by `version`'s rules.
pub fn load_all_owned_for(
    texts: Vec<String>,
    version: CiliumVersion,
) -> Result<Loaded, (Option<usize>, Error)> {
    load_all_unchecked(texts, version)
        .and_then(|loaded| loaded.within_limits().map_err(|e| (None, e)))
}

fn load_all_unchecked<T: AsRef<str>>(
    texts: impl IntoIterator<Item = T>,
    version: CiliumVersion,
) -> Result<Loaded, (Option<usize>, Error)> {
    let mut parsed = Vec::new();
    for (i, text) in texts.into_iter().enumerate() {
        let docs = document::parse_documents(text.as_ref()).map_err(|e| (Some(i), e.into()))?;
        if docs.is_empty() {
            return Err((Some(i), Error::DocumentCount(0)));
        }
        parsed.push(docs);
    }
    let is_snapshot = |docs: &[Value]| matches!(docs, [doc] if Snapshot::is_snapshot_document(doc));
    if !parsed.first().is_some_and(|docs| is_snapshot(docs)) {
        if let Some(i) = parsed.iter().position(|docs| is_snapshot(docs)) {
            return Err((
                Some(i),
                Error::Input(vec![FieldError::new(
                    "",
                    Reason::Invalid {
                        value: "a snapshot".to_owned(),
                        detail: "a snapshot can only be the first input".to_owned(),
                    },
                )]),
            ));
        }
        for (i, docs) in parsed.iter().enumerate() {
            check_objects(docs).map_err(|e| (Some(i), e))?;
        }
        // Kubernetes objects only: the last object of each kind and name wins, in the place
        // of its first occurrence.
        let mut objects: Vec<Value> = Vec::new();
        let mut at: std::collections::HashMap<(String, String, String), usize> =
            std::collections::HashMap::new();
        for docs in parsed {
            for doc in document::flatten_lists(docs) {
                let key = object_key(&doc);
                match key.and_then(|k| at.get(&k).copied()) {
                    Some(i) => objects[i] = doc,
                    None => {
                        if let Some(k) = object_key(&doc) {
                            at.insert(k, objects.len());
                        }
                        objects.push(doc);
                    }
                }
            }
        }
        return kubernetes::from_objects(&objects, version)
            .map(|(snapshot, warnings)| Loaded { snapshot, warnings })
            .map_err(|e| (None, e));
    }
    let mut inputs = parsed.into_iter().enumerate();
    let Some((_, first)) = inputs.next() else {
        return Err((Some(0), Error::DocumentCount(0)));
    };
    let first = first.into_iter().next().unwrap_or(Value::Null);
    let mut snapshot =
        Snapshot::from_document_owned_for(first, version).map_err(|e| (Some(0), e))?;
    let mut warnings = Vec::new();
    // Endpoints by uid and nodes by address, so that merging a dump of many endpoints does
    // not scan them all per object; the address index is rebuilt when nodes changed.
    let mut at_uid = uid_index(&snapshot.endpoints);
    let mut addresses: Option<HashMap<IpAddr, String>> = None;
    for (i, docs) in inputs {
        if is_snapshot(&docs) {
            let doc = docs.into_iter().next().unwrap_or(Value::Null);
            let other =
                Snapshot::from_document_owned_for(doc, version).map_err(|e| (Some(i), e))?;
            snapshot.merge(other);
            at_uid = uid_index(&snapshot.endpoints);
            addresses = None;
            continue;
        }
        check_objects(&docs).map_err(|e| (Some(i), e))?;
        let docs = document::flatten_lists(docs);
        for j in kubernetes::reading_order(&docs) {
            let doc = &docs[j];
            let path = field::item("objects", j);
            let at_path = |e: Error| (Some(i), kubernetes::at_object(&path, e));
            match kubernetes::Kind::of(doc) {
                kubernetes::Kind::Policy => snapshot.replace_policy(parse_policy_for(doc, version)),
                kubernetes::Kind::CiliumNode => {
                    let node = kubernetes::node_from_cilium_node(doc).map_err(at_path)?;
                    snapshot.nodes.insert(node.name.clone(), node);
                    addresses = None;
                }
                kubernetes::Kind::CiliumEndpoint => {
                    let index =
                        addresses.get_or_insert_with(|| kubernetes::address_index(&snapshot.nodes));
                    let (endpoint, notes) =
                        kubernetes::endpoint_indexed(doc, index).map_err(at_path)?;
                    warnings.extend(notes);
                    if let Some(ep) = endpoint {
                        match at_uid.get(&ep.uid) {
                            Some(&k) => snapshot.endpoints[k] = ep,
                            None => {
                                at_uid.insert(ep.uid.clone(), snapshot.endpoints.len());
                                snapshot.endpoints.push(ep);
                            }
                        }
                    }
                }
                kubernetes::Kind::Namespace => {}
                kind @ kubernetes::Kind::Unused(_) => match crate::version::detect(doc) {
                    Some(found) => snapshot.detected_versions.push(found),
                    None => warnings.extend(kind.skipped(&path)),
                },
                kubernetes::Kind::Missing => {
                    return Err((
                        Some(i),
                        Error::Input(vec![kubernetes::Kind::missing(&path)]),
                    ));
                }
            }
        }
    }
    Ok(Loaded { snapshot, warnings })
}

/// Where each endpoint is in `endpoints`, by uid.
fn uid_index(endpoints: &[Endpoint]) -> HashMap<String, usize> {
    endpoints
        .iter()
        .enumerate()
        .map(|(k, e)| (e.uid.clone(), k))
        .collect()
}

/// (kind, namespace, name) of a Kubernetes object, for replacing by a later one.
fn object_key(doc: &Value) -> Option<(String, String, String)> {
    let kind = doc.get("kind").and_then(Value::as_str)?;
    let meta = doc.get("metadata")?;
    let name = meta.get("name").and_then(Value::as_str)?;
    let namespace = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
    Some((kind.to_owned(), namespace.to_owned(), name.to_owned()))
}

// ----- one object at a time ------------------------------------------------------------
//
// The readers the snapshot itself uses, at the document's root: an agent that watches
// objects one by one gets the same validation and the same field errors as a snapshot.

/// The one document of `text`.
fn one_document(text: &str) -> Result<Value, Error> {
    let mut docs = document::parse_documents(text)?;
    match docs.len() {
        1 => Ok(docs.swap_remove(0)),
        n => Err(Error::DocumentCount(n)),
    }
}

/// Runs a snapshot reader on a whole document: every input error it meets, or the object.
fn read_one<T>(
    doc: &Value,
    read: impl FnOnce(&Value, &str, &mut Vec<FieldError>) -> Option<T>,
) -> Result<T, Error> {
    let mut errors = Vec::new();
    match read(doc, "", &mut errors) {
        Some(object) if errors.is_empty() => Ok(object),
        _ => Err(Error::Input(errors)),
    }
}

/// Reads one node in the snapshot's `nodes[]` shape, or a Kubernetes `CiliumNode` object
/// (converted as a dump's are).
pub fn node_from_document(doc: &Value) -> Result<Node, Error> {
    if kubernetes::Kind::of(doc) == kubernetes::Kind::CiliumNode {
        return kubernetes::node_from_cilium_node(doc);
    }
    read_one(doc, read_node)
}

/// [`node_from_document`] on YAML or JSON text holding one document.
pub fn parse_node(text: &str) -> Result<Node, Error> {
    node_from_document(&one_document(text)?)
}

/// Reads one endpoint in the snapshot's `endpoints[]` shape. (A `CiliumEndpoint` names its
/// node by address: convert it with [`kubernetes::endpoint_from_cilium_endpoint`].)
pub fn endpoint_from_document(doc: &Value) -> Result<Endpoint, Error> {
    read_one(doc, read_endpoint)
}

/// [`endpoint_from_document`] on YAML or JSON text holding one document.
pub fn parse_endpoint(text: &str) -> Result<Endpoint, Error> {
    endpoint_from_document(&one_document(text)?)
}

/// Reads a device list (the `interfaces` shape).
pub fn devices_from_document(doc: &Value) -> Result<Vec<Device>, Error> {
    let mut errors = Vec::new();
    match read_devices(doc, "interfaces", &mut errors) {
        Some(devices) if errors.is_empty() => Ok(devices),
        _ => Err(Error::Input(errors)),
    }
}

/// Reads a device list (the `interfaces` shape) from YAML or JSON text.
pub fn parse_interfaces(text: &str) -> Result<Vec<Device>, Error> {
    devices_from_document(&one_document(text)?)
}

/// Reads a namespace: a Kubernetes `Namespace` object (`metadata.name`, `metadata.labels`)
/// or `{name, labels}`.
pub fn namespace_from_document(doc: &Value) -> Result<Namespace, Error> {
    if doc.get("metadata").is_some() || doc.get("kind").is_some() {
        return kubernetes::namespace_from_object(doc);
    }
    read_one(doc, |doc, path, errors| {
        let f = Fields::open(doc, path, errors)?;
        f.finish(NAMESPACE, errors);
        let name = read_name(&f, "name", errors);
        let labels = read_labels(&f, "labels", errors);
        Some(Namespace {
            name: name?,
            labels,
        })
    })
}

/// [`namespace_from_document`] on YAML or JSON text holding one document.
pub fn parse_namespace(text: &str) -> Result<Namespace, Error> {
    namespace_from_document(&one_document(text)?)
}

const TOP: &[&str] = &[
    "localNode",
    "cluster",
    "nodes",
    "endpoints",
    "policies",
    "interfaces",
];
const NODE: &[&str] = &[
    "name",
    "labels",
    "ipv4",
    "ipv6",
    "ready",
    "weight",
    "interfaces",
];
const ENDPOINT: &[&str] = &[
    "uid",
    "namespace",
    "name",
    "labels",
    "namespaceLabels",
    "serviceAccount",
    "identityLabels",
    "ips",
    "node",
];
const NAMESPACE: &[&str] = &["name", "labels"];
const DEVICE: &[&str] = &["name", "index", "altNames", "addresses", "defaultRoute"];

impl Snapshot {
    /// Parses snapshot text (YAML or JSON), policies validated as Cilium 1.18 does.
    pub fn parse(text: &str) -> Result<Self, Error> {
        Self::parse_for(text, CiliumVersion::default())
    }

    /// [`Snapshot::parse`] validating policies by `version`'s rules.
    pub fn parse_for(text: &str, version: CiliumVersion) -> Result<Self, Error> {
        let docs = document::parse_documents(text)?;
        match docs.as_slice() {
            [doc] => {
                let mut errors = Vec::new();
                match read_snapshot(doc, None, version, &mut errors) {
                    Some(s) if errors.is_empty() => Ok(s),
                    _ => Err(Error::Input(errors)),
                }
            }
            other => Err(Error::DocumentCount(other.len())),
        }
    }

    /// Whether a parsed document looks like a snapshot (rather than a Kubernetes object).
    pub fn is_snapshot_document(doc: &Value) -> bool {
        doc.get("kind").is_none() && TOP.iter().any(|k| doc.get(k).is_some())
    }

    /// Reads a snapshot from a parsed document.
    pub fn from_document(doc: &Value) -> Result<Self, Error> {
        let mut errors = Vec::new();
        let snapshot = read_snapshot(doc, None, CiliumVersion::default(), &mut errors);
        match snapshot {
            Some(s) if errors.is_empty() => Ok(s),
            _ => Err(Error::Input(errors)),
        }
    }

    /// [`Snapshot::from_document`] consuming the document: each endpoint's part of the tree
    /// is dropped as soon as it is read, so a large snapshot's tree and its endpoints are
    /// not held whole at once.
    pub fn from_document_owned(doc: Value) -> Result<Self, Error> {
        Self::from_document_owned_for(doc, CiliumVersion::default())
    }

    /// [`Snapshot::from_document_owned`] validating policies by `version`'s rules.
    pub fn from_document_owned_for(mut doc: Value, version: CiliumVersion) -> Result<Self, Error> {
        let endpoints = doc.take("endpoints");
        let mut errors = Vec::new();
        let snapshot = read_snapshot(&doc, endpoints, version, &mut errors);
        match snapshot {
            Some(s) if errors.is_empty() => Ok(s),
            _ => Err(Error::Input(errors)),
        }
    }

    /// The node to compute: `override_node` or `localNode`; it must be one of the nodes
    /// ([`Snapshot::node_to_compute`] with the argument named `node`).
    pub fn local_node_name<'a>(
        &'a self,
        override_node: Option<&'a str>,
    ) -> Result<&'a str, FieldError> {
        self.node_to_compute(override_node, "node")
    }

    /// The node to compute: `requested` (an argument named `argument`, e.g. a binding's
    /// `local_node`) when given, else `localNode`; it must be one of the nodes. An input
    /// without `localNode` (a Kubernetes dump never has one) needs `requested`.
    pub fn node_to_compute<'a>(
        &'a self,
        requested: Option<&'a str>,
        argument: &str,
    ) -> Result<&'a str, FieldError> {
        let (path, name) = match requested {
            Some(n) => (argument, n),
            None => match self.local_node.as_deref() {
                Some(n) => ("localNode", n),
                None => {
                    return Err(FieldError::new(
                        argument,
                        Reason::Required(Some(
                            "the input names no localNode (a Kubernetes dump never does)"
                                .to_owned(),
                        )),
                    ));
                }
            },
        };
        if self.nodes.contains_key(name) {
            Ok(name)
        } else {
            Err(FieldError::new(path, Reason::NotFound(field::quote(name))))
        }
    }

    /// The devices of `node`: its own `interfaces` when given, else the top-level list when
    /// `node` is `localNode` (whose list it is), else none.
    pub fn devices_for(&self, node: &str) -> &[Device] {
        if let Some(own) = self.nodes.get(node).and_then(|n| n.interfaces.as_deref()) {
            return own;
        }
        match (&self.interfaces, self.local_node.as_deref()) {
            (Some(list), Some(local)) if local == node => list,
            _ => &[],
        }
    }

    /// Merges a later snapshot into this one: its nodes, endpoints and policies replace
    /// these by name or uid (new ones are added after), and its `localNode`, `cluster` and
    /// `interfaces` replace these when it has them.
    pub fn merge(&mut self, other: Snapshot) {
        if other.local_node.is_some() {
            self.local_node = other.local_node;
        }
        if other.cluster.is_some() {
            self.cluster = other.cluster;
        }
        if other.interfaces.is_some() {
            self.interfaces = other.interfaces;
        }
        self.nodes.extend(other.nodes);
        let mut at_uid = uid_index(&self.endpoints);
        for ep in other.endpoints {
            match at_uid.get(&ep.uid) {
                Some(&k) => self.endpoints[k] = ep,
                None => {
                    at_uid.insert(ep.uid.clone(), self.endpoints.len());
                    self.endpoints.push(ep);
                }
            }
        }
        for policy in other.policies {
            self.replace_policy(policy);
        }
        self.detected_versions.extend(other.detected_versions);
    }

    /// Puts a policy (valid or not) in the place of the one with its name, or last.
    fn replace_policy(&mut self, policy: Result<Policy, PolicyErrors>) {
        let name_of = |p: &Result<Policy, PolicyErrors>| match p {
            Ok(p) => Some(p.name.clone()),
            Err(e) => e.name.clone(),
        };
        let name = name_of(&policy);
        match self
            .policies
            .iter()
            .position(|p| name.is_some() && name_of(p) == name)
        {
            Some(k) => self.policies[k] = policy,
            None => self.policies.push(policy),
        }
    }

    /// Whether the input says what `node`'s devices are: its own `interfaces` key (even an
    /// empty list), or the top-level list when `node` is `localNode`. A Kubernetes dump never
    /// does; then a gateway's egress IPs cannot be derived and its rows drop traffic.
    pub fn devices_known(&self, node: &str) -> bool {
        self.nodes.get(node).is_some_and(|n| n.interfaces.is_some())
            || (self.interfaces.is_some() && self.local_node.as_deref() == Some(node))
    }

    /// Gives `node` these devices (its own `interfaces`), replacing what the file said.
    pub fn set_devices(&mut self, node: &str, devices: Vec<Device>) -> Result<(), FieldError> {
        match self.nodes.get_mut(node) {
            Some(n) => {
                n.interfaces = Some(devices);
                Ok(())
            }
            None => Err(FieldError::new(
                "node",
                Reason::NotFound(field::quote(node)),
            )),
        }
    }

    /// Parses a policy object; a second policy of the same name is an input error.
    fn add_policy(
        &mut self,
        doc: &Value,
        path: &str,
        names: &mut HashSet<String>,
        errors: &mut Vec<FieldError>,
    ) {
        if let Some(name) = crate::policy::object_name(doc)
            && !names.insert(name.to_owned())
        {
            let at = format!("{path}.metadata.name");
            errors.push(FieldError::new(at, Reason::Duplicate(field::quote(name))));
        }
        self.policies
            .push(parse_policy_for(doc, self.cilium_version));
    }

    /// The valid policies with the cluster's nodes and endpoints, for the batch path.
    pub fn state(&self) -> ClusterState {
        ClusterState {
            nodes: self.nodes.clone(),
            endpoints: self.endpoints.clone(),
            ..self.state_of(Nodes::default(), Vec::new())
        }
    }

    /// Runs `f` on [`Snapshot::state`] without copying the endpoints and nodes: they are
    /// moved into the state for the call and back after it (a large cluster's endpoints are
    /// most of its memory).
    pub fn with_state<R>(&mut self, f: impl FnOnce(&ClusterState) -> R) -> R {
        let nodes = std::mem::take(&mut self.nodes);
        let endpoints = std::mem::take(&mut self.endpoints);
        let state = self.state_of(nodes, endpoints);
        let result = f(&state);
        self.nodes = state.nodes;
        self.endpoints = state.endpoints;
        result
    }

    /// The state with these nodes and endpoints, and this snapshot's valid policies.
    fn state_of(&self, nodes: Nodes, endpoints: Vec<Endpoint>) -> ClusterState {
        ClusterState {
            cluster: self.cluster.clone(),
            nodes,
            endpoints,
            policies: self
                .policies
                .iter()
                .filter_map(|p| p.as_ref().ok())
                .cloned()
                .collect(),
        }
    }

    /// The invalid policies, with their position in the file.
    pub fn invalid_policies(&self) -> impl Iterator<Item = (usize, &PolicyErrors)> {
        self.policies
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().err().map(|e| (i, e)))
    }

    /// The warnings of a valid policy in this cluster: `policy::policy_warnings` against its
    /// nodes, the known failures of the Cilium version it was read for
    /// (`policy::version_warnings`), and, when it has endpoints, destinations of a family none
    /// of them has.
    pub fn policy_warnings(&self, policy: &Policy) -> Vec<crate::policy::Warning> {
        let mut out = crate::policy::policy_warnings(policy, Some(&self.nodes));
        out.extend(crate::policy::version_warnings(
            policy,
            self.cilium_version,
            Some(&self.nodes),
            |node| self.devices_known(node).then(|| self.devices_for(node)),
        ));
        if !self.endpoints.is_empty() {
            let ips = || self.endpoints.iter().flat_map(|e| e.ips.iter());
            let (v4, v6) = (ips().any(IpAddr::is_ipv4), ips().any(IpAddr::is_ipv6));
            out.extend(crate::policy::family_warnings(policy, v4, v6));
        }
        out
    }
}

/// `endpoints`: the document's `endpoints` value, taken out of it to be read and dropped
/// item by item (see [`Snapshot::from_document_owned`]).
fn read_snapshot(
    doc: &Value,
    endpoints: Option<Value>,
    version: CiliumVersion,
    errors: &mut Vec<FieldError>,
) -> Option<Snapshot> {
    let top = Fields::open(doc, "", errors)?;
    top.finish(TOP, errors);
    let mut snap = Snapshot {
        local_node: top
            .get("localNode")
            .and_then(|n| read_str(n, "localNode", errors))
            .map(str::to_owned),
        cluster: top
            .get("cluster")
            .and_then(|n| read_str(n, "cluster", errors))
            .map(str::to_owned),
        cilium_version: version,
        ..Snapshot::default()
    };
    if let Some(nodes) = top.get("nodes").and_then(|n| read_seq(n, "nodes", errors)) {
        for (i, n) in nodes.iter().enumerate() {
            let path = field::item("nodes", i);
            if let Some(node) = read_node(n, &path, errors) {
                if snap.nodes.contains_key(&node.name) {
                    errors.push(FieldError::new(
                        field::child(&path, "name"),
                        Reason::Duplicate(field::quote(&node.name)),
                    ));
                } else {
                    snap.nodes.insert(node.name.clone(), node);
                }
            }
        }
    }
    if let Some(local) = &snap.local_node
        && !snap.nodes.contains_key(local)
    {
        errors.push(FieldError::new(
            "localNode",
            Reason::NotFound(field::quote(local)),
        ));
    }
    let mut uids = HashSet::new();
    let mut add_endpoint =
        |i: usize, e: &Value, snap: &mut Snapshot, errors: &mut Vec<FieldError>| {
            let path = field::item("endpoints", i);
            if let Some(ep) = read_endpoint(e, &path, errors) {
                if !uids.insert(ep.uid.clone()) {
                    errors.push(FieldError::new(
                        field::child(&path, "uid"),
                        Reason::Duplicate(field::quote(&ep.uid)),
                    ));
                }
                snap.endpoints.push(ep);
            }
        };
    match endpoints {
        // Each endpoint's document dropped once read: the tree and the endpoints are not
        // held whole at once.
        Some(Value::Seq(items)) => {
            snap.endpoints.reserve_exact(items.len());
            for (i, e) in items.into_iter().enumerate() {
                add_endpoint(i, &e, &mut snap, errors);
            }
        }
        Some(other) => {
            read_seq(&other, "endpoints", errors);
        }
        None => {
            if let Some(eps) = top
                .get("endpoints")
                .and_then(|n| read_seq(n, "endpoints", errors))
            {
                snap.endpoints.reserve_exact(eps.len());
                for (i, e) in eps.iter().enumerate() {
                    add_endpoint(i, e, &mut snap, errors);
                }
            }
        }
    }
    if let Some(policies) = top
        .get("policies")
        .and_then(|n| read_seq(n, "policies", errors))
    {
        // Counted before any is parsed: the items, then the policies of `List` items once
        // flattened (flattening copies no more than the list holds).
        if policies.len() > MAX_POLICIES {
            errors.push(too_many_policies(policies.len()));
        } else {
            let docs = document::flatten_lists(policies.to_vec());
            if docs.len() > MAX_POLICIES {
                errors.push(too_many_policies(docs.len()));
            } else {
                let mut names = HashSet::new();
                for (i, p) in docs.iter().enumerate() {
                    let path = field::item("policies", i);
                    if !matches!(p, Value::Map(_)) {
                        errors.push(type_error(&path, p, "object"));
                        continue;
                    }
                    snap.add_policy(p, &path, &mut names, errors);
                }
            }
        }
    }
    match top.get_raw("interfaces") {
        None => {}
        Some(node) => snap.interfaces = read_devices(node, "interfaces", errors),
    }
    Some(snap)
}

fn read_name(fields: &Fields<'_>, key: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    match fields.get(key) {
        None => {
            errors.push(FieldError::required(fields.path_of(key)));
            None
        }
        Some(n) => match read_str(n, &fields.path_of(key), errors) {
            Some("") => {
                errors.push(FieldError::required(fields.path_of(key)));
                None
            }
            other => other.map(str::to_owned),
        },
    }
}

fn read_labels(
    fields: &Fields<'_>,
    key: &str,
    errors: &mut Vec<FieldError>,
) -> BTreeMap<String, String> {
    let limits = if key == "identityLabels" {
        LabelLimits::Identity
    } else {
        LabelLimits::Kubernetes
    };
    fields
        .get(key)
        .map(|n| {
            document::read_labels(n, &fields.path_of(key), limits, errors)
                .into_iter()
                .collect()
        })
        .unwrap_or_default()
}

fn read_addr(
    node: &Value,
    path: &str,
    want_v4: Option<bool>,
    errors: &mut Vec<FieldError>,
) -> Option<IpAddr> {
    let s = read_str(node, path, errors)?;
    let parsed = netip::parse_addr(s)
        .ok()
        .filter(|a| a.zone.is_none())
        .map(|a| a.addr);
    let family_ok = |ip: &IpAddr| want_v4.is_none_or(|v4| ip.is_ipv4() == v4);
    match parsed {
        Some(ip) if family_ok(&ip) => Some(ip),
        _ => {
            let what = match want_v4 {
                Some(true) => "not an IPv4 address",
                Some(false) => "not an IPv6 address",
                None => "not an IP address",
            };
            errors.push(FieldError::invalid_str(path, s, what));
            None
        }
    }
}

fn read_node(doc: &Value, path: &str, errors: &mut Vec<FieldError>) -> Option<Node> {
    let f = Fields::open(doc, path, errors)?;
    f.finish(NODE, errors);
    let name = read_name(&f, "name", errors);
    let labels: Labels = read_labels(&f, "labels", errors).into();
    let ipv4 = f
        .get("ipv4")
        .and_then(|n| read_addr(n, &f.path_of("ipv4"), Some(true), errors));
    let ipv6 = f
        .get("ipv6")
        .and_then(|n| read_addr(n, &f.path_of("ipv6"), Some(false), errors));
    let ready = match f.get("ready") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            errors.push(type_error(&f.path_of("ready"), other, "boolean"));
            true
        }
    };
    let weight = match f.get("weight") {
        None => 1,
        Some(Value::Int(w)) if (0..=100).contains(w) => *w as u8,
        Some(other) => {
            let detail = match other {
                Value::Float(_) => {
                    "must be an integer from 0 to 100, written without a decimal point"
                }
                _ => "must be an integer from 0 to 100",
            };
            errors.push(FieldError::new(
                f.path_of("weight"),
                Reason::Invalid {
                    value: other.render(),
                    detail: detail.to_owned(),
                },
            ));
            1
        }
    };
    let interfaces = f
        .get_raw("interfaces")
        .and_then(|n| read_devices(n, &f.path_of("interfaces"), errors));
    Some(Node {
        name: name?,
        labels,
        ipv4: ipv4.and_then(netip::as_v4),
        ipv6: ipv6.and_then(netip::as_v6),
        ready,
        weight,
        interfaces,
        external_ips: Vec::new(),
    })
}

fn read_endpoint(doc: &Value, path: &str, errors: &mut Vec<FieldError>) -> Option<Endpoint> {
    let f = Fields::open(doc, path, errors)?;
    f.finish(ENDPOINT, errors);
    let uid = read_name(&f, "uid", errors);
    let opt_str = |key: &str, errors: &mut Vec<FieldError>| {
        f.get(key)
            .and_then(|n| read_str(n, &f.path_of(key), errors))
            .map(str::to_owned)
    };
    let namespace = opt_str("namespace", errors);
    if let Some(ns) = namespace.as_deref().filter(|ns| !ns.is_empty())
        && let Some(problem) = crate::labels::namespace_name_problem(ns)
    {
        errors.push(FieldError::invalid_str(f.path_of("namespace"), ns, problem));
    }
    let name = opt_str("name", errors);
    let service_account = opt_str("serviceAccount", errors);
    let node = opt_str("node", errors);
    let labels = read_labels(&f, "labels", errors);
    let namespace_labels = read_labels(&f, "namespaceLabels", errors);
    let identity_labels = f
        .get("identityLabels")
        .map(|_| read_labels(&f, "identityLabels", errors));
    let mut ips = Vec::new();
    if let Some(list) = f
        .get("ips")
        .and_then(|n| read_seq(n, &f.path_of("ips"), errors))
    {
        for (i, ip) in list.iter().enumerate() {
            if let Some(ip) = read_addr(ip, &field::item(&f.path_of("ips"), i), None, errors) {
                ips.push(ip);
            }
        }
    }
    Some(Endpoint {
        uid: uid?,
        namespace,
        name,
        labels: labels.into(),
        namespace_labels: namespace_labels.into(),
        service_account,
        identity_labels: identity_labels.map(Into::into),
        ips,
        node,
    })
}

/// Reads a device list; `null` is refused (an empty list means "no devices").
fn read_devices(node: &Value, path: &str, errors: &mut Vec<FieldError>) -> Option<Vec<Device>> {
    if *node == Value::Null {
        errors.push(FieldError::new(
            path,
            Reason::Invalid {
                value: "null".to_owned(),
                detail: "must be a list of interfaces".to_owned(),
            },
        ));
        return None;
    }
    let items = read_seq(node, path, errors)?;
    let mut devices: Vec<Device> = Vec::with_capacity(items.len());
    let mut names: HashSet<String> = HashSet::new();
    let mut indexes: HashSet<u32> = HashSet::new();
    let mut routes = Families::empty();
    for (i, item) in items.iter().enumerate() {
        let dpath = field::item(path, i);
        let Some(dev) = read_device(item, &dpath, errors) else {
            continue;
        };
        // Names and altnames share one namespace on Linux.
        for (key, name) in std::iter::once(("name", &dev.name))
            .chain(dev.alt_names.iter().map(|a| ("altNames", a)))
        {
            if !names.insert(name.clone()) {
                errors.push(FieldError::new(
                    field::child(&dpath, key),
                    Reason::Duplicate(field::quote(name)),
                ));
            }
        }
        if !indexes.insert(dev.index) {
            errors.push(FieldError::new(
                field::child(&dpath, "index"),
                Reason::Duplicate(dev.index.to_string()),
            ));
        }
        let shared = routes & dev.default_route;
        if !shared.is_empty() {
            let fam = if shared.contains(Families::IPV4) {
                "ipv4"
            } else {
                "ipv6"
            };
            errors.push(FieldError::new(
                field::child(&dpath, "defaultRoute"),
                Reason::Invalid {
                    value: field::quote(fam),
                    detail: "another interface already carries this family's default route"
                        .to_owned(),
                },
            ));
        }
        routes |= dev.default_route;
        devices.push(dev);
    }
    Some(devices)
}

fn read_device(doc: &Value, path: &str, errors: &mut Vec<FieldError>) -> Option<Device> {
    let f = Fields::open(doc, path, errors)?;
    f.finish(DEVICE, errors);
    let name = read_name(&f, "name", errors);
    let index = match f.get("index") {
        None => {
            errors.push(FieldError::required(f.path_of("index")));
            None
        }
        Some(Value::Int(i)) if (1..=i128::from(u32::MAX)).contains(i) => Some(*i as u32),
        Some(other) => {
            errors.push(FieldError::new(
                f.path_of("index"),
                Reason::Invalid {
                    value: other.render(),
                    detail: "must be a positive 32-bit integer".to_owned(),
                },
            ));
            None
        }
    };
    let mut alt_names = Vec::new();
    if let Some(list) = f
        .get("altNames")
        .and_then(|n| read_seq(n, &f.path_of("altNames"), errors))
    {
        for (i, a) in list.iter().enumerate() {
            if let Some(s) = read_str(a, &field::item(&f.path_of("altNames"), i), errors) {
                alt_names.push(s.to_owned());
            }
        }
    }
    let mut addresses = Vec::new();
    if let Some(list) = f
        .get("addresses")
        .and_then(|n| read_seq(n, &f.path_of("addresses"), errors))
    {
        for (i, a) in list.iter().enumerate() {
            let apath = field::item(&f.path_of("addresses"), i);
            let Some(s) = read_str(a, &apath, errors) else {
                continue;
            };
            match netip::parse_interface_address(s) {
                Some((addr, prefix_len)) => addresses.push(DeviceAddress { addr, prefix_len }),
                None => errors.push(FieldError::invalid_str(
                    apath,
                    s,
                    "must be an address with its prefix length (addr/len)",
                )),
            }
        }
    }
    let default_route = match f.get("defaultRoute") {
        None | Some(Value::Bool(false)) => Families::empty(),
        Some(Value::Bool(true)) => Families::all(),
        Some(Value::Seq(items)) => {
            let mut fams = Families::empty();
            for (i, item) in items.iter().enumerate() {
                let ipath = field::item(&f.path_of("defaultRoute"), i);
                match read_str(item, &ipath, errors) {
                    Some("ipv4") => fams |= Families::IPV4,
                    Some("ipv6") => fams |= Families::IPV6,
                    Some(other) => errors.push(FieldError::new(
                        ipath,
                        Reason::Unsupported {
                            value: field::quote(other),
                            supported: &["ipv4", "ipv6"],
                        },
                    )),
                    None => {}
                }
            }
            fams
        }
        Some(other) => {
            errors.push(type_error(
                &f.path_of("defaultRoute"),
                other,
                "boolean or array",
            ));
            Families::empty()
        }
    };
    Some(Device {
        name: name?,
        index: index?,
        alt_names,
        addresses,
        default_route,
    })
}

#[cfg(test)]
mod tests;
