//! Kubernetes dumps (`kubectl get ciliumegressgatewaypolicies,ciliumnodes,ciliumendpoints,
//! namespaces -A -o yaml`, or B.10's Pod/Node and CiliumEndpointSlice shapes) converted into
//! a [`Snapshot`], as ARCHITECTURE.md specifies.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use super::{Snapshot, read_one};
use crate::cluster::{Endpoint, Namespace, Node, Nodes};
use crate::document::{Fields, LabelLimits, Value, read_labels, read_seq, read_str};
use crate::error::Error;
use crate::field::{self, FieldError, Reason};
use crate::netip;
use crate::version::CiliumVersion;

mod claims;
pub use claims::{Context, EndpointClaims, PodKey, Resolved, Settled, SliceEntry, Source};

/// What a Kubernetes object is to this crate, by its `kind`: the one dispatch of every
/// reader of objects (dumps, inputs merged onto a snapshot, the engine's events).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind<'a> {
    /// `CiliumEgressGatewayPolicy`.
    Policy,
    /// `CiliumNode`.
    CiliumNode,
    /// `CiliumEndpoint`.
    CiliumEndpoint,
    /// `Namespace`: its labels (a dump's CiliumEndpoints carry them in their identity
    /// already; a `Pod`'s identity takes them from here).
    Namespace,
    /// A core `Pod` (B.10: a cluster without CiliumEndpoints).
    Pod,
    /// A core `Node` (B.10: a cluster without CiliumNodes).
    Node,
    /// A `CiliumEndpointSlice` (cilium.io/v2alpha1, B.10): endpoints of one namespace.
    EndpointSlice,
    /// A `CiliumIdentity` (cilium.io/v2): the identity labels a slice entry's id names.
    Identity,
    /// Any other kind: not read as an object (a Cilium agent DaemonSet or the
    /// `cilium-config` ConfigMap may name the Cilium version).
    Unused(&'a str),
    /// No `kind`.
    Missing,
}

impl<'a> Kind<'a> {
    /// The kind of an object.
    pub fn of(doc: &'a Value) -> Self {
        match doc.get("kind").and_then(Value::as_str) {
            None => Kind::Missing,
            Some("CiliumEgressGatewayPolicy") => Kind::Policy,
            Some("CiliumNode") => Kind::CiliumNode,
            Some("CiliumEndpoint") => Kind::CiliumEndpoint,
            Some("Namespace") => Kind::Namespace,
            Some("Pod") => Kind::Pod,
            Some("Node") => Kind::Node,
            Some("CiliumEndpointSlice") => Kind::EndpointSlice,
            Some("CiliumIdentity") => Kind::Identity,
            Some(other) => Kind::Unused(other),
        }
    }

    /// `PATH: kind KIND is not used: skipped` for an [`Kind::Unused`] object at `path`.
    pub fn skipped(self, path: &str) -> Option<String> {
        match self {
            Kind::Unused(kind) => Some(format!("{path}: kind {kind} is not used: skipped")),
            _ => None,
        }
    }

    /// `PATH.kind: Required value` for a [`Kind::Missing`] object at `path`.
    pub fn missing(path: &str) -> FieldError {
        FieldError::required(field::child(path, "kind"))
    }
}

/// The Kubernetes objects of `text` (YAML or JSON: one object, a `List`, or a `---` stream,
/// as `kubectl get -o yaml` prints them), Lists flattened. An empty `List` is no object; text
/// with no document at all is an error.
pub fn read_objects(text: &str) -> Result<Vec<Value>, Error> {
    let parsed = crate::document::parse_documents(text)?;
    if parsed.is_empty() {
        return Err(Error::DocumentCount(0));
    }
    Ok(crate::document::flatten_lists(parsed))
}

/// The order objects are read in: the nodes first — endpoints name their node, and a
/// CiliumNode beats a Node of its name (B.10) — then the namespaces and identities, whose
/// labels Pods and slice entries take, then the other objects, each in its place, then the
/// slices (a CiliumEndpoint beats a slice entry of its pod) and the Pods last (both beat
/// them).
pub fn reading_order(objects: &[Value]) -> Vec<usize> {
    let rank = |i: &usize| match Kind::of(&objects[*i]) {
        Kind::CiliumNode => 0,
        Kind::Node => 1,
        Kind::Namespace | Kind::Identity => 2,
        Kind::EndpointSlice => 4,
        Kind::Pod => 5,
        _ => 3,
    };
    let mut order: Vec<usize> = (0..objects.len()).collect();
    order.sort_by_key(rank); // stable: each rank in its place
    order
}

/// The field errors of one object's conversion, each path under the object's (`objects[3]`
/// and `metadata.name` give `objects[3].metadata.name`); an error without field paths as
/// it is.
pub fn at_object(path: &str, e: Error) -> Error {
    let fields: Vec<FieldError> = e
        .field_errors()
        .iter()
        .map(|f| FieldError::new(field::under(path, &f.path), f.reason.clone()))
        .collect();
    if fields.is_empty() {
        e
    } else {
        Error::Input(fields)
    }
}

/// What a dump's objects said about each pod and node (B.10): kept for an engine that takes
/// later events of the same cluster, so that its precedence holds across them.
#[derive(Clone, Debug, Default)]
pub struct DumpObjects {
    pub(crate) claims: EndpointClaims,
    /// The nodes a CiliumNode gave.
    pub(crate) cilium_nodes: HashSet<String>,
    /// Each Namespace's labels (a later Pod's identity takes them).
    pub(crate) namespaces: HashMap<String, crate::labels::Labels>,
}

/// Converts a dump's objects (Lists already flattened). Returns the snapshot (no
/// `localNode`, no devices), the conversion's warnings and what the objects said.
pub(super) fn from_objects(
    objects: &[Value],
    version: CiliumVersion,
) -> Result<(Snapshot, Vec<String>, DumpObjects), Error> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut snap = Snapshot {
        cilium_version: version,
        ..Snapshot::default()
    };
    // Endpoints name their node by address: looked up in an index, not by a scan of the
    // nodes per endpoint (20,000 nodes × 100,000 endpoints), built once the nodes (read
    // first) are all in. The first node by name wins, as a scan would find it.
    let mut by_address: Option<HashMap<IpAddr, String>> = None;
    let mut policy_names = HashSet::new();
    // B.10's precedence: a CiliumNode beats a Node of its name; the objects describing a
    // pod are claims on it, resolved once all are read.
    let mut cilium_nodes: HashSet<String> = HashSet::new();
    let mut ignored_nodes = 0usize;
    let mut claims = EndpointClaims::default();
    let mut claimed: Vec<(PodKey, Source)> = Vec::new();
    let mut namespace_labels: HashMap<String, crate::labels::Labels> = HashMap::new();
    for i in reading_order(objects) {
        let obj = &objects[i];
        let path = field::item("objects", i);
        match Kind::of(obj) {
            Kind::Missing => errors.push(Kind::missing(&path)),
            Kind::CiliumNode => {
                if let Some(node) = cilium_node(obj, &path, &mut errors) {
                    cilium_nodes.insert(node.name.clone());
                    add_node(&mut snap, node, &path, &mut errors);
                }
            }
            Kind::Node => {
                if let Some(node) = core_node(obj, &path, &mut errors) {
                    if cilium_nodes.contains(&node.name) {
                        ignored_nodes += 1;
                    } else {
                        add_node(&mut snap, node, &path, &mut errors);
                    }
                }
            }
            // A CiliumEndpoint's identity holds its namespace's labels already; a Pod's
            // identity takes them from here.
            Kind::Namespace => {
                if let Ok(ns) = namespace_from_object(obj) {
                    namespace_labels.insert(ns.name, ns.labels.into());
                }
            }
            Kind::Identity => {
                if let Some((id, labels)) = identity(obj, &path, &mut errors) {
                    claims.set_identity(&id, labels);
                }
            }
            Kind::EndpointSlice => {
                let index = by_address.get_or_insert_with(|| address_index(&snap.nodes));
                let knows = |id: &str| claims.knows_identity(id);
                let node_at = |ip: IpAddr| index.get(&ip).cloned();
                if let Some((name, entries)) =
                    slice_entries(obj, &path, &knows, &node_at, &mut errors, &mut warnings)
                {
                    claimed.extend(entries.iter().map(|(k, _)| (k.clone(), Source::SliceEntry)));
                    claims.set_slice(&name, entries);
                }
            }
            Kind::Pod => {
                let (key, uid) = (pod_key(obj), pod_uid(obj));
                let ep = pod(obj, &path, &namespace_labels, &mut errors, &mut warnings);
                if claims.has(&key, uid, Source::Pod) {
                    errors.push(duplicate_pod(&path, obj));
                } else if ep.is_some() || !uid.is_empty() {
                    claimed.push((claims.set_pod(key, uid, ep), Source::Pod));
                }
            }
            Kind::Policy => snap.add_policy(obj, &path, &mut policy_names, &mut errors),
            Kind::CiliumEndpoint => {
                let index = by_address.get_or_insert_with(|| address_index(&snap.nodes));
                let node_at = |ip: IpAddr| index.get(&ip).cloned();
                let (key, uid) = (pod_key(obj), pod_uid(obj));
                // The pod a CiliumEndpoint describes is its, even when the CiliumEndpoint is
                // skipped (no identity yet): its Pod is not read instead.
                let ep = cilium_endpoint(obj, &path, &node_at, &mut errors, &mut warnings);
                if claims.has(&key, uid, Source::CiliumEndpoint) {
                    errors.push(duplicate_pod(&path, obj));
                } else {
                    claims.set_cilium_endpoint(key, uid, ep, endpoint_node_ip(obj));
                }
            }
            kind @ Kind::Unused(_) => match crate::version::detect(obj) {
                Some(found) => snap.detected_versions.push(found),
                None => warnings.extend(kind.skipped(&path)),
            },
        }
    }
    let index = address_index(&snap.nodes);
    let ctx = Context {
        node_at: &|ip| index.get(&ip).cloned(),
        namespace_labels: &|ns| namespace_labels.get(ns).cloned(),
    };
    snap.endpoints = claims.endpoints(&ctx);
    warnings.extend(claims.ignored_notes(&claimed, &ctx));
    // Read nodes first, said in document order: the first error is the first object's.
    errors.sort_by_key(|e| object_index(&e.path));
    if ignored_nodes > 0 {
        warnings.push(format!(
            "{ignored_nodes} Node object(s) ignored: a CiliumNode of the same name is read (a CiliumNode beats a Node, B.10)"
        ));
    }
    if errors.is_empty() {
        Ok((
            snap,
            warnings,
            DumpObjects {
                claims,
                cilium_nodes,
                namespaces: namespace_labels,
            },
        ))
    } else {
        Err(Error::Input(errors))
    }
}

/// `PATH.metadata.uid: Duplicate value: "UID"` (or at `metadata.name`, `"NS/NAME"`, without a
/// uid) for a second object of one kind describing one pod.
fn duplicate_pod(path: &str, obj: &Value) -> FieldError {
    let uid = pod_uid(obj);
    if uid.is_empty() {
        let (ns, name) = object_key(obj).unwrap_or_default();
        FieldError::new(
            format!("{path}.metadata.name"),
            Reason::Duplicate(field::quote(&format!("{ns}/{name}"))),
        )
    } else {
        FieldError::new(
            format!("{path}.metadata.uid"),
            Reason::Duplicate(field::quote(uid)),
        )
    }
}

/// The pod a `CiliumEndpoint` or `Pod` object describes.
pub(crate) fn pod_key(obj: &Value) -> PodKey {
    match object_key(obj) {
        Some((ns, name)) => PodKey::Name(ns, name),
        None => PodKey::Uid(pod_uid(obj).to_owned()),
    }
}

/// The index `i` of a path under `objects[i]` (errors of no object first).
pub(crate) fn object_index(path: &str) -> usize {
    path.strip_prefix("objects[")
        .and_then(|rest| rest.split(']').next())
        .and_then(|i| i.parse().ok())
        .unwrap_or(0)
}

/// (namespace, name) of an object's `metadata`, when it has both.
fn object_key(obj: &Value) -> Option<(String, String)> {
    let meta = obj.get("metadata")?;
    let namespace = meta.get("namespace").and_then(Value::as_str)?;
    let name = meta.get("name").and_then(Value::as_str)?;
    Some((namespace.to_owned(), name.to_owned()))
}

/// A CiliumEndpoint's `status.networking.node`, parsed: the address its node is found by.
pub(crate) fn endpoint_node_ip(obj: &Value) -> Option<IpAddr> {
    let text = obj
        .get("status")?
        .get("networking")?
        .get("node")?
        .as_str()?;
    netip::parse_addr(text).ok().map(|a| a.addr)
}

/// An object's `metadata.uid` ("" without one).
pub(crate) fn pod_uid(obj: &Value) -> &str {
    obj.get("metadata")
        .and_then(|m| m.get("uid"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// A dump's node, unless one of its name was read already (an input error at the object's
/// `metadata.name`).
fn add_node(snap: &mut Snapshot, node: Node, path: &str, errors: &mut Vec<FieldError>) {
    if snap.nodes.contains_key(&node.name) {
        errors.push(FieldError::new(
            format!("{path}.metadata.name"),
            Reason::Duplicate(field::quote(&node.name)),
        ));
    } else {
        snap.nodes.insert(node.name.clone(), node);
    }
}

fn metadata<'a>(obj: &'a Value, path: &'a str, errors: &mut Vec<FieldError>) -> Option<Fields<'a>> {
    match obj.get("metadata") {
        Some(m) => Fields::open(m, path, errors),
        None => {
            errors.push(FieldError::required(path));
            None
        }
    }
}

fn required_str(fields: &Fields<'_>, key: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    match fields.get(key) {
        None => {
            errors.push(FieldError::required(fields.path_of(key)));
            None
        }
        Some(n) => read_str(n, &fields.path_of(key), errors)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    }
}

/// Converts one `CiliumNode` object, as a dump's are.
pub fn node_from_cilium_node(obj: &Value) -> Result<Node, Error> {
    read_one(obj, cilium_node)
}

/// A node's name by address, the first node by name for an address several have: the index
/// endpoints find their node in.
pub(crate) fn address_index(nodes: &Nodes) -> HashMap<IpAddr, String> {
    let mut by_address: HashMap<IpAddr, String> = HashMap::new();
    for node in nodes.values() {
        for ip in [node.ip(true), node.ip(false)].into_iter().flatten() {
            by_address.entry(ip).or_insert_with(|| node.name.clone());
        }
    }
    by_address
}

/// [`endpoint_from_cilium_endpoint`] with the node of an address named by `node_at` (an
/// [`address_index`] lookup, or an engine's own index).
pub(crate) fn endpoint_indexed(
    obj: &Value,
    node_at: &dyn Fn(IpAddr) -> Option<String>,
) -> Result<(Option<Endpoint>, Vec<String>), Error> {
    one_endpoint(obj, node_at)
}

/// Converts one `CiliumEndpoint` object, as a dump's are: its node is the one of `nodes`
/// whose address is `status.networking.node`. `None` when the endpoint is skipped (no
/// identity labels, no networking status); the warnings say what was skipped or left out.
pub fn endpoint_from_cilium_endpoint(
    obj: &Value,
    nodes: &Nodes,
) -> Result<(Option<Endpoint>, Vec<String>), Error> {
    one_endpoint(obj, &|ip| {
        nodes
            .values()
            .find(|n| n.ip(ip.is_ipv4()) == Some(ip))
            .map(|n| n.name.clone())
    })
}

/// One `CiliumEndpoint` at the document's root, its node named by `node_at`.
fn one_endpoint(
    obj: &Value,
    node_at: &dyn Fn(IpAddr) -> Option<String>,
) -> Result<(Option<Endpoint>, Vec<String>), Error> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let endpoint = cilium_endpoint(obj, "", node_at, &mut errors, &mut warnings);
    if errors.is_empty() {
        Ok((endpoint, warnings))
    } else {
        Err(Error::Input(errors))
    }
}

/// Converts one Kubernetes `Namespace` object: `metadata.name` and `metadata.labels`.
pub fn namespace_from_object(obj: &Value) -> Result<Namespace, Error> {
    read_one(obj, |obj, path, errors| {
        let mpath = field::child(path, "metadata");
        let meta = metadata(obj, &mpath, errors)?;
        let name = required_str(&meta, "name", errors)?;
        let labels = meta
            .get("labels")
            .map(|l| {
                read_labels(l, &meta.path_of("labels"), LabelLimits::Kubernetes, errors)
                    .into_iter()
                    .collect()
            })
            .unwrap_or_default();
        Some(Namespace { name, labels })
    })
}

/// Converts one core `Node` object (B.10), as a dump's are.
pub fn node_from_core_node(obj: &Value) -> Result<Node, Error> {
    read_one(obj, core_node)
}

/// Converts one core `Pod` object (B.10), its namespace's labels from `namespace_labels`
/// (by name). `None` when the pod is skipped; the warnings say what was skipped or left out.
pub fn endpoint_from_pod(
    obj: &Value,
    namespace_labels: &HashMap<String, crate::labels::Labels>,
) -> Result<(Option<Endpoint>, Vec<String>), Error> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let endpoint = pod(obj, "", namespace_labels, &mut errors, &mut warnings);
    if errors.is_empty() {
        Ok((endpoint, warnings))
    } else {
        Err(Error::Input(errors))
    }
}

/// A node's name and labels (`metadata`).
fn node_named(obj: &Value, path: &str, errors: &mut Vec<FieldError>) -> Option<Node> {
    let mpath = field::child(path, "metadata");
    let meta = metadata(obj, &mpath, errors)?;
    let name = required_str(&meta, "name", errors)?;
    let labels: BTreeMap<String, String> = meta
        .get("labels")
        .map(|l| {
            read_labels(l, &meta.path_of("labels"), LabelLimits::Kubernetes, errors)
                .into_iter()
                .collect()
        })
        .unwrap_or_default();
    Some(Node::new(name, labels.into(), None))
}

/// Gives `node` its addresses from a list of `{type, <key>}` items at `apath`: per family
/// the first InternalIP, else the first ExternalIP (every ExternalIP kept as such); other
/// types are not read.
fn node_addresses(
    node: &mut Node,
    addresses: Option<&Value>,
    apath: &str,
    key: &str,
    errors: &mut Vec<FieldError>,
) {
    let mut found: [[Option<IpAddr>; 2]; 2] = [[None; 2]; 2]; // [family][internal, external]
    for (j, a) in addresses
        .and_then(|a| read_seq(a, apath, errors))
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let slot = match a.get("type").and_then(Value::as_str) {
            Some("InternalIP") => 0,
            Some("ExternalIP") => 1,
            _ => continue,
        };
        let Some(ip) = a.get(key).and_then(Value::as_str) else {
            continue;
        };
        let Ok(parsed) = netip::parse_addr(ip) else {
            errors.push(FieldError::invalid_str(
                format!("{}.{key}", field::item(apath, j)),
                ip,
                "not an IP address",
            ));
            continue;
        };
        let family = usize::from(parsed.addr.is_ipv6());
        found[family][slot].get_or_insert(parsed.addr);
        if slot == 1 && !node.external_ips.contains(&parsed.addr) {
            node.external_ips.push(parsed.addr);
        }
    }
    node.ipv4 = found[0][0].or(found[0][1]).and_then(netip::as_v4);
    node.ipv6 = found[1][0].or(found[1][1]).and_then(netip::as_v6);
}

/// A core `Node` (B.10): name and labels, its addresses from `status.addresses[].address`.
fn core_node(obj: &Value, path: &str, errors: &mut Vec<FieldError>) -> Option<Node> {
    let mut node = node_named(obj, path, errors)?;
    let apath = field::child(&field::child(path, "status"), "addresses");
    let addresses = obj.get("status").and_then(|s| s.get("addresses"));
    node_addresses(&mut node, addresses, &apath, "address", errors);
    Some(node)
}

/// A core `Pod` (B.10) as an endpoint: uid, namespace, name, labels (its identity derived as
/// A.2 says, with its namespace's labels from `namespace_labels` and its service account),
/// IPs from `status.podIPs` (else `status.podIP`), node `spec.nodeName`. Skipped, with a
/// warning naming the pod: `spec.hostNetwork: true` (Cilium manages no endpoint for it), a
/// finished pod (phase `Succeeded` or `Failed`). A pod with no IP yet is kept (selected, no
/// entries), with a warning.
fn pod(
    obj: &Value,
    path: &str,
    namespace_labels: &HashMap<String, crate::labels::Labels>,
    errors: &mut Vec<FieldError>,
    warnings: &mut Vec<String>,
) -> Option<Endpoint> {
    let mpath = field::child(path, "metadata");
    let meta = metadata(obj, &mpath, errors)?;
    let (uid, namespace, name, who) = described_pod(&meta, path, "pod", errors)?;
    let labels: BTreeMap<String, String> = meta
        .get("labels")
        .map(|l| {
            read_labels(l, &meta.path_of("labels"), LabelLimits::Kubernetes, errors)
                .into_iter()
                .collect()
        })
        .unwrap_or_default();
    let spec = obj.get("spec");
    if matches!(
        spec.and_then(|s| s.get("hostNetwork")),
        Some(Value::Bool(true))
    ) {
        warnings.push(format!(
            "{who}: spec.hostNetwork: true: Cilium manages no endpoint for it: skipped"
        ));
        return None;
    }
    let status = obj.get("status");
    if let Some(phase @ ("Succeeded" | "Failed")) =
        status.and_then(|s| s.get("phase")).and_then(Value::as_str)
    {
        warnings.push(format!("{who}: phase {phase}: finished, skipped"));
        return None;
    }
    let mut ips = Vec::new();
    let mut read_ip = |text: &str| {
        if let Some(ip) = endpoint_ip(text, &who, warnings)
            && !ips.contains(&ip)
        {
            ips.push(ip);
        }
    };
    match status.and_then(|s| s.get("podIPs")) {
        Some(Value::Seq(items)) if !items.is_empty() => {
            for text in items
                .iter()
                .filter_map(|i| i.get("ip"))
                .filter_map(Value::as_str)
            {
                read_ip(text);
            }
        }
        _ => {
            if let Some(text) = status.and_then(|s| s.get("podIP")).and_then(Value::as_str) {
                read_ip(text);
            }
        }
    }
    if ips.is_empty() {
        warnings.push(format!(
            "{who}: no IP yet (status.podIPs): selected, no entries until it has one"
        ));
    }
    let node = spec
        .and_then(|s| s.get("nodeName"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let service_account = spec
        .and_then(|s| s.get("serviceAccountName"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let namespace_labels = namespace
        .as_deref()
        .and_then(|ns| namespace_labels.get(ns))
        .cloned()
        .unwrap_or_default();
    Some(Endpoint {
        uid,
        namespace,
        name,
        labels: labels.into(),
        namespace_labels,
        service_account,
        identity_labels: None,
        ips,
        node,
    })
}

/// A `CiliumIdentity`: its id (`metadata.name`) and identity labels (`security-labels`,
/// `source:key` to value, sources read as a CiliumEndpoint's are).
fn identity(
    obj: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Option<(String, crate::labels::Labels)> {
    let mpath = field::child(path, "metadata");
    let meta = metadata(obj, &mpath, errors)?;
    let id = required_str(&meta, "name", errors)?;
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    if let Some(Value::Map(pairs)) = obj.get("security-labels") {
        for (k, v) in pairs {
            let (Some(k), Some(v)) = (k.as_str(), v.as_str()) else {
                continue;
            };
            let (key, value) = identity_label(&format!("{k}={v}"));
            match LabelLimits::Identity.check(&key, &value) {
                None => {
                    labels.insert(key, value);
                }
                Some((_, detail)) => errors.push(FieldError::invalid_str(
                    field::child(&field::child(path, "security-labels"), k),
                    v,
                    detail,
                )),
            }
        }
    }
    Some((id, labels.into()))
}

/// The name and entries of a `CiliumEndpointSlice` (B.10), each entry with the pod it
/// describes (the slice's `namespace` and the entry's `name`): its identity id, IPs from
/// `networking.addressing`, the node whose address is `networking.node`. An id `knows` does
/// not know is said (the entry waits for its identity, and is skipped until it arrives).
fn slice_entries(
    obj: &Value,
    path: &str,
    knows: &dyn Fn(&str) -> bool,
    node_at: &dyn Fn(IpAddr) -> Option<String>,
    errors: &mut Vec<FieldError>,
    warnings: &mut Vec<String>,
) -> Option<(String, Vec<(PodKey, SliceEntry)>)> {
    let mpath = field::child(path, "metadata");
    let meta = metadata(obj, &mpath, errors)?;
    let slice = required_str(&meta, "name", errors)?;
    let Some(namespace) = obj.get("namespace").and_then(Value::as_str) else {
        errors.push(FieldError::required(field::child(path, "namespace")));
        return None;
    };
    let epath = field::child(path, "endpoints");
    let mut out = Vec::new();
    let items = obj
        .get("endpoints")
        .and_then(|e| read_seq(e, &epath, errors))
        .unwrap_or_default();
    for (j, entry) in items.iter().enumerate() {
        let at = field::item(&epath, j);
        let Some(name) = entry.get("name").and_then(Value::as_str) else {
            errors.push(FieldError::required(field::child(&at, "name")));
            continue;
        };
        let who = if path.is_empty() {
            format!("{namespace}/{name}")
        } else {
            format!("{at} ({namespace}/{name})")
        };
        let id = match entry.get("id") {
            Some(Value::Int(i)) => i.to_string(),
            Some(Value::Str(s)) => s.to_string(),
            _ => String::new(),
        };
        if !knows(&id) {
            warnings.push(format!(
                "{who}: identity {} is not in the input (no CiliumIdentity of that name): entry skipped",
                field::quote(&id)
            ));
        }
        let networking = entry.get("networking");
        let ips = addressing(networking, &who, warnings);
        let node_text = networking
            .and_then(|n| n.get("node"))
            .and_then(Value::as_str);
        let node_ip = node_text
            .and_then(|s| netip::parse_addr(s).ok())
            .map(|a| a.addr);
        if node_ip.and_then(node_at).is_none() {
            let shown = node_text.map_or_else(|| "none".to_owned(), field::quote);
            warnings.push(format!(
                "{who}: networking.node {shown} matches no node: kept without a node"
            ));
        }
        out.push((
            PodKey::Name(namespace.to_owned(), name.to_owned()),
            SliceEntry {
                slice: slice.clone(),
                id,
                ips,
                node_ip,
            },
        ));
    }
    Some((slice, out))
}

/// Converts one `CiliumEndpointSlice` object (B.10): its name and entries, the node of an
/// address named by `node_at`; `knows` says which identity ids are known (an unknown one is
/// warned about). Returns the warnings too.
#[allow(clippy::type_complexity)]
pub fn slice_from_object(
    obj: &Value,
    knows: &dyn Fn(&str) -> bool,
    node_at: &dyn Fn(IpAddr) -> Option<String>,
) -> Result<((String, Vec<(PodKey, SliceEntry)>), Vec<String>), Error> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let slice = slice_entries(obj, "", knows, node_at, &mut errors, &mut warnings);
    match slice {
        Some(slice) if errors.is_empty() => Ok((slice, warnings)),
        _ => Err(Error::Input(errors)),
    }
}

/// Converts one `CiliumIdentity` object: its id (`metadata.name`) and identity labels
/// (`security-labels`).
pub fn identity_from_object(obj: &Value) -> Result<(String, crate::labels::Labels), Error> {
    read_one(obj, identity)
}

/// CiliumNode: the name is never parsed as an address; addresses are the first InternalIP
/// of each family, else the first ExternalIP, never CiliumInternalIP.
fn cilium_node(obj: &Value, path: &str, errors: &mut Vec<FieldError>) -> Option<Node> {
    let mut node = node_named(obj, path, errors)?;
    let apath = field::child(&field::child(path, "spec"), "addresses");
    let addresses = obj.get("spec").and_then(|s| s.get("addresses"));
    node_addresses(&mut node, addresses, &apath, "ip", errors);
    Some(node)
}

/// `source:key=value`, split at the first `:` and the first `=`; `k8s`, `any` and `unspec`
/// give the bare key, another source `s` gives `s.key`; no `:` means `unspec`.
pub(crate) fn identity_label(label: &str) -> (String, String) {
    let (source, rest) = label.split_once(':').unwrap_or(("unspec", label));
    let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
    let key = match source {
        "k8s" | "any" | "unspec" => key.to_owned(),
        other => format!("{other}.{key}"),
    };
    (key, value.to_owned())
}

/// The pod a `Pod` or `CiliumEndpoint` object at `path` describes: its `metadata.uid`
/// (required), namespace and name, and how its warnings name it (`NS/NAME`, after the path
/// when there is one; else the path, or `unnamed` without one).
fn described_pod(
    meta: &Fields<'_>,
    path: &str,
    unnamed: &str,
    errors: &mut Vec<FieldError>,
) -> Option<(String, Option<String>, Option<String>, String)> {
    let uid = required_str(meta, "uid", errors)?;
    let name = meta.get("name").and_then(Value::as_str).map(str::to_owned);
    let namespace = meta
        .get("namespace")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let who = match (&namespace, &name) {
        (Some(ns), Some(n)) if path.is_empty() => format!("{ns}/{n}"),
        (Some(ns), Some(n)) => format!("{path} ({ns}/{n})"),
        _ if path.is_empty() => unnamed.to_owned(),
        _ => path.to_owned(),
    };
    Some((uid, namespace, name, who))
}

/// An endpoint's address given as text, or none with a warning naming `who`.
fn endpoint_ip(text: &str, who: &str, warnings: &mut Vec<String>) -> Option<IpAddr> {
    match netip::parse_addr(text) {
        Ok(a) if a.zone.is_none() => Some(a.addr),
        _ => {
            warnings.push(format!(
                "{who}: address {} is not an IP address: skipped",
                field::quote(text)
            ));
            None
        }
    }
}

/// The addresses of a `networking.addressing` list (each pair's `ipv4`, then `ipv6`), as a
/// CiliumEndpoint's status and a slice entry hold them.
fn addressing(networking: Option<&Value>, who: &str, warnings: &mut Vec<String>) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    if let Some(Value::Seq(pairs)) = networking.and_then(|n| n.get("addressing")) {
        for pair in pairs {
            for family in ["ipv4", "ipv6"] {
                if let Some(text) = pair.get(family).and_then(Value::as_str) {
                    ips.extend(endpoint_ip(text, who, warnings));
                }
            }
        }
    }
    ips
}

/// `node_at` names the node that has an address.
fn cilium_endpoint(
    obj: &Value,
    path: &str,
    node_at: &dyn Fn(IpAddr) -> Option<String>,
    errors: &mut Vec<FieldError>,
    warnings: &mut Vec<String>,
) -> Option<Endpoint> {
    let mpath = field::child(path, "metadata");
    let meta = metadata(obj, &mpath, errors)?;
    let (uid, namespace, name, who) = described_pod(&meta, path, "endpoint", errors)?;
    let status = obj.get("status");
    let labels = status
        .and_then(|s| s.get("identity"))
        .and_then(|i| i.get("labels"));
    let labels: Vec<&str> = match labels {
        Some(Value::Seq(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let identity_labels: BTreeMap<String, String> = labels
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let (key, value) = identity_label(l);
            match LabelLimits::Identity.check(&key, &value) {
                None => Some((key, value)),
                Some((_, detail)) => {
                    let lpath = field::item(&field::child(path, "status.identity.labels"), i);
                    errors.push(FieldError::invalid_str(lpath, l, detail));
                    None
                }
            }
        })
        .collect();
    if labels.is_empty() {
        warnings.push(format!(
            "{who}: no status.identity labels: endpoint skipped"
        ));
        return None;
    }
    let Some(networking) = status.and_then(|s| s.get("networking")) else {
        warnings.push(format!("{who}: no status.networking: endpoint skipped"));
        return None;
    };
    let ips = addressing(Some(networking), &who, warnings);
    let node_ip = networking.get("node").and_then(Value::as_str);
    let parsed = node_ip
        .and_then(|s| netip::parse_addr(s).ok())
        .map(|a| a.addr);
    let node = parsed.and_then(node_at);
    if node.is_none() {
        let shown = node_ip.map_or_else(|| "none".to_owned(), field::quote);
        warnings.push(format!(
            "{who}: status.networking.node {shown} matches no CiliumNode: kept without a node"
        ));
    }
    Some(Endpoint {
        uid,
        namespace,
        name,
        identity_labels: Some(identity_labels.into()),
        ips,
        node,
        ..Endpoint::default()
    })
}

#[cfg(test)]
mod tests;
