//! Kubernetes objects as events: what a watch delivers, or a `kubectl get -o yaml` dump plus
//! a new policy, applied to a live engine as updates.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::Engine;
use crate::cluster::{Endpoint, Namespace, Node};
use crate::document::Value;
use crate::error::Error;
use crate::field::{self, FieldError, Reason};
use crate::labels::Labels;
use crate::policy::{Policy, PolicyErrors, parse_policy_for};
use crate::snapshot::kubernetes::{self, Kind, PodKey, SliceEntry, Source};

/// What [`Engine::apply_text`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Valid policies upserted.
    pub policies: usize,
    /// Nodes upserted (from `CiliumNode`s and `Node`s).
    pub nodes: usize,
    /// Pods whose endpoint was upserted (from `CiliumEndpoint`s, slice entries, `Pod`s; a
    /// `CiliumIdentity` counts the slice endpoints naming it).
    pub endpoints: usize,
    /// Namespaces whose labels were set.
    pub namespaces: usize,
    /// Invalid policies, each with all its errors: their previous versions stay in force.
    pub invalid_policies: Vec<PolicyErrors>,
    /// Objects skipped (other kinds, endpoints without identity or networking) and
    /// conversion notes.
    pub warnings: Vec<String>,
}

/// Objects converted and checked by [`Engine::prepare_objects`], waiting for
/// [`Engine::apply_prepared`]: preparing needs only a shared engine, so a binding can do it
/// without holding its write lock.
pub struct PreparedObjects {
    updates: Vec<Update>,
    claims: Vec<Claim>,
    warnings: Vec<String>,
}

/// One object, converted and checked, waiting to be applied.
enum Update {
    Policy(Result<Policy, PolicyErrors>),
    /// A node, and whether a `CiliumNode` gave it (one beats a `Node` of its name, B.10).
    Node(Node, bool),
    Namespace(Namespace),
    /// A `CiliumIdentity`: its id and labels.
    Identity(String, Labels),
    /// An object describing pods: converted once every node, namespace and identity of the
    /// text is known.
    Describes(usize),
}

/// What one object says about pods (B.10): applied to the engine's claims.
enum Claim {
    CiliumEndpoint(PodKey, String, Option<Endpoint>, Option<IpAddr>),
    Pod(PodKey, String, Option<Endpoint>),
    Slice(String, Vec<(PodKey, SliceEntry)>),
}

impl Engine {
    /// Applies Kubernetes objects as updates: `CiliumEgressGatewayPolicy`, `CiliumNode`,
    /// `CiliumEndpoint`, `Namespace` and `CiliumIdentity` objects, `CiliumEndpointSlice`s and
    /// core `Pod`s and `Node`s (B.10); one, a `List`, or a `---` stream, as `kubectl get -o
    /// yaml` prints them. The objects that describe a pod (its CiliumEndpoint, slice entry,
    /// Pod) are kept across events and resolve by B.10's precedence whatever their order: a
    /// Pod after its pod's CiliumEndpoint changes nothing; a `CiliumIdentity` updates every
    /// slice endpoint naming it; a slice without an entry it had drops that entry. A Pod's
    /// identity takes its namespace's labels from the text or an earlier namespace event.
    /// Nodes are applied first, so that endpoints find their node by address among the
    /// engine's nodes and the text's. An invalid policy is reported in
    /// [`Applied::invalid_policies`] and keeps its previous version; any other input error
    /// refuses the whole text (nothing is applied). A snapshot document is refused too: load
    /// it with [`Engine::from_snapshot`] or [`Engine::sync_snapshot`].
    pub fn apply_text(&mut self, text: &str) -> Result<Applied, Error> {
        let objects = kubernetes::read_objects(text)?;
        let prepared = self.prepare_objects(&objects)?;
        Ok(self.apply_prepared(prepared))
    }

    /// The first half of [`Engine::apply_text`]: converts objects read by
    /// [`kubernetes::read_objects`] (endpoints are matched to the engine's nodes and the
    /// objects'), refusing them all on any input error. Changes nothing.
    pub fn prepare_objects(&self, docs: &[Value]) -> Result<PreparedObjects, Error> {
        let mut warnings: Vec<String> = Vec::new();
        let mut errors: Vec<FieldError> = Vec::new();
        let mut updates = Vec::with_capacity(docs.len());
        for (i, doc) in docs.iter().enumerate() {
            let path = field::item("objects", i);
            let prefixed = |e: Error| kubernetes::at_object(&path, e).field_errors().to_vec();
            match Kind::of(doc) {
                Kind::Policy => updates.push(Update::Policy(parse_policy_for(
                    doc,
                    self.config.cilium_version,
                ))),
                Kind::CiliumNode => match kubernetes::node_from_cilium_node(doc) {
                    Ok(node) => updates.push(Update::Node(node, true)),
                    Err(e) => errors.extend(prefixed(e)),
                },
                Kind::Node => match kubernetes::node_from_core_node(doc) {
                    Ok(node) => updates.push(Update::Node(node, false)),
                    Err(e) => errors.extend(prefixed(e)),
                },
                Kind::Namespace => match kubernetes::namespace_from_object(doc) {
                    Ok(ns) => updates.push(Update::Namespace(ns)),
                    Err(e) => errors.extend(prefixed(e)),
                },
                Kind::Identity => match kubernetes::identity_from_object(doc) {
                    Ok((id, labels)) => updates.push(Update::Identity(id, labels)),
                    Err(e) => errors.extend(prefixed(e)),
                },
                Kind::CiliumEndpoint | Kind::Pod | Kind::EndpointSlice => {
                    updates.push(Update::Describes(i))
                }
                kind @ Kind::Unused(_) => warnings.extend(kind.skipped(&path)),
                Kind::Missing if crate::snapshot::Snapshot::is_snapshot_document(doc) => {
                    errors.push(FieldError::new(
                        path,
                        Reason::Invalid {
                            value: "a snapshot".to_owned(),
                            detail:
                                "apply takes Kubernetes objects; load a snapshot with from_snapshot"
                                    .to_owned(),
                        },
                    ));
                }
                Kind::Missing => errors.push(Kind::missing(&path)),
            }
        }
        // A CiliumNode, of the text or an earlier event, beats a Node of its name (B.10).
        let cilium_nodes: HashSet<&str> = updates
            .iter()
            .filter_map(|u| match u {
                Update::Node(node, true) => Some(node.name.as_str()),
                _ => None,
            })
            .collect();
        let shadowed = |node: &Node| {
            cilium_nodes.contains(node.name.as_str()) || self.cilium_nodes.contains(&node.name)
        };
        let ignored: Vec<bool> = updates
            .iter()
            .map(|u| matches!(u, Update::Node(node, false) if shadowed(node)))
            .collect();
        let ignored_nodes = ignored.iter().filter(|i| **i).count();
        let mut ignored = ignored.into_iter();
        updates.retain(|_| !ignored.next().unwrap_or(false));
        // Endpoints name their node by address: the text's nodes, else the engine's (by its
        // own address index: no copy of the engine's nodes per event). Pods take their
        // namespace's labels, slice entries their identity, from the text or the engine.
        let mut text_nodes = crate::cluster::Nodes::new();
        let mut namespace_labels: HashMap<String, Labels> = HashMap::new();
        let mut identities: HashSet<&str> = HashSet::new();
        for update in &updates {
            match update {
                Update::Node(node, _) => {
                    text_nodes.insert(node.name.clone(), node.clone());
                }
                Update::Namespace(ns) => {
                    namespace_labels.insert(ns.name.clone(), ns.labels.clone().into());
                }
                Update::Identity(id, _) => {
                    identities.insert(id);
                }
                _ => {}
            }
        }
        if ignored_nodes > 0 {
            warnings.push(format!(
                "{ignored_nodes} Node object(s) ignored: a CiliumNode of the same name is read (a CiliumNode beats a Node, B.10)"
            ));
        }
        let text_index = kubernetes::address_index(&text_nodes);
        let node_at = |ip: IpAddr| -> Option<String> {
            let from_text = text_index.get(&ip);
            let from_engine = self
                .node_addresses
                .get(&ip)
                .and_then(|names| names.iter().find(|n| !text_nodes.contains_key(*n)));
            match (from_text, from_engine) {
                (Some(a), Some(b)) => Some(a.min(b).clone()),
                (a, b) => a.or(b).cloned(),
            }
        };
        // The engine's labels of the namespaces the text's Pods are in and it does not give.
        for update in &updates {
            if let Update::Describes(i) = update
                && Kind::of(&docs[*i]) == Kind::Pod
                && let Some(ns) = docs[*i]
                    .get("metadata")
                    .and_then(|m| m.get("namespace"))
                    .and_then(Value::as_str)
                && !namespace_labels.contains_key(ns)
                && let Some(labels) = self.namespace_labels.get(ns)
            {
                namespace_labels.insert(ns.to_owned(), labels.clone());
            }
        }
        let knows = |id: &str| identities.contains(id) || self.claims.knows_identity(id);
        let mut claims = Vec::new();
        for update in &updates {
            let Update::Describes(i) = update else {
                continue;
            };
            let (doc, path) = (&docs[*i], field::item("objects", *i));
            let notes_at = |notes: Vec<String>| notes.into_iter().map(|w| format!("{path}: {w}"));
            let at = |e: Error| kubernetes::at_object(&path, e).field_errors().to_vec();
            let (key, uid) = (
                kubernetes::pod_key(doc),
                kubernetes::pod_uid(doc).to_owned(),
            );
            match Kind::of(doc) {
                Kind::CiliumEndpoint => match kubernetes::endpoint_indexed(doc, &node_at) {
                    Ok((endpoint, notes)) => {
                        warnings.extend(notes_at(notes));
                        let node_ip = kubernetes::endpoint_node_ip(doc);
                        claims.push(Claim::CiliumEndpoint(key, uid, endpoint, node_ip));
                    }
                    Err(e) => errors.extend(at(e)),
                },
                Kind::Pod => match kubernetes::endpoint_from_pod(doc, &namespace_labels) {
                    Ok((endpoint, notes)) => {
                        warnings.extend(notes_at(notes));
                        claims.push(Claim::Pod(key, uid, endpoint));
                    }
                    Err(e) => errors.extend(at(e)),
                },
                _ => match kubernetes::slice_from_object(doc, &knows, &node_at) {
                    Ok(((name, entries), notes)) => {
                        warnings.extend(notes_at(notes));
                        claims.push(Claim::Slice(name, entries));
                    }
                    Err(e) => errors.extend(at(e)),
                },
            }
        }
        if !errors.is_empty() {
            return Err(Error::Input(errors));
        }
        Ok(PreparedObjects {
            updates,
            claims,
            warnings,
        })
    }

    /// The second half of [`Engine::apply_text`]: applies prepared objects as updates (nodes,
    /// namespaces, identities and policies, then what the objects say about pods).
    pub fn apply_prepared(&mut self, prepared: PreparedObjects) -> Applied {
        let PreparedObjects {
            updates,
            claims,
            warnings,
        } = prepared;
        let mut applied = Applied {
            warnings,
            ..Applied::default()
        };
        // The pods whose claims changed, each settled once, in the order they were touched.
        let mut touched: Vec<PodKey> = Vec::new();
        for update in updates {
            match update {
                Update::Node(node, cilium) => {
                    applied.nodes += 1;
                    if cilium {
                        self.cilium_nodes.insert(node.name.clone());
                    }
                    self.upsert_node(node);
                }
                Update::Namespace(ns) => {
                    applied.namespaces += 1;
                    self.put_namespace(&ns.name, ns.labels.into());
                }
                Update::Identity(id, labels) => {
                    // What was said while its entries waited for it is no longer so.
                    let waiting = format!("identity {} is not in the input", field::quote(&id));
                    self.diagnostics
                        .forget_skipped(|note| note.contains(&waiting));
                    applied.warnings.retain(|note| !note.contains(&waiting));
                    touched.extend(self.claims.set_identity(&id, labels));
                }
                Update::Policy(Ok(policy)) => match self.upsert_policy(policy) {
                    Ok(()) => applied.policies += 1,
                    Err(errors) => applied.invalid_policies.push(errors),
                },
                Update::Policy(Err(errors)) => applied.invalid_policies.push(errors),
                Update::Describes(_) => {}
            }
        }
        let mut claimed: Vec<(PodKey, Source)> = Vec::new();
        for claim in claims {
            match claim {
                Claim::CiliumEndpoint(key, uid, endpoint, node_ip) => {
                    touched.push(
                        self.claims
                            .set_cilium_endpoint(key, &uid, endpoint, node_ip),
                    );
                }
                Claim::Pod(key, uid, endpoint) => {
                    let key = self.claims.set_pod(key, &uid, endpoint);
                    claimed.push((key.clone(), Source::Pod));
                    touched.push(key);
                }
                Claim::Slice(name, entries) => {
                    claimed.extend(entries.iter().map(|(k, _)| (k.clone(), Source::SliceEntry)));
                    touched.extend(self.claims.set_slice(&name, entries));
                }
            }
        }
        let mut seen: HashSet<PodKey> = HashSet::with_capacity(touched.len());
        for key in touched {
            if seen.insert(key.clone()) && self.settle_pod(&key) {
                applied.endpoints += 1;
            }
        }
        let ignored = {
            let ctx = kubernetes::Context {
                node_at: &|ip| first_node_at(&self.node_addresses, ip),
                namespace_labels: &|ns| self.namespace_labels.get(ns).cloned(),
            };
            self.claims.ignored_notes(&claimed, &ctx)
        };
        applied.warnings.extend(ignored);
        for (i, errors) in applied.invalid_policies.iter().enumerate() {
            self.diagnostics
                .record_invalid(super::InvalidPolicy::new(i, errors));
        }
        for note in &applied.warnings {
            self.diagnostics.record_skipped(note);
        }
        applied
    }

    /// Makes the engine hold the endpoint a pod's objects resolve to now — its node found
    /// by address in the engine's index, a Pod's namespace labels the engine's — deleting the
    /// one of its old uid when the uid changed or no object gives one. Whether the pod has an
    /// endpoint.
    pub(super) fn settle_pod(&mut self, key: &PodKey) -> bool {
        let settled = {
            let ctx = kubernetes::Context {
                node_at: &|ip| first_node_at(&self.node_addresses, ip),
                namespace_labels: &|ns| self.namespace_labels.get(ns).cloned(),
            };
            self.claims.settle(key, &ctx)
        };
        if let Some(old) = &settled.removed {
            self.remove_endpoint(old);
        }
        let Some(endpoint) = settled.endpoint else {
            return false;
        };
        // The engine does not keep pod names: compare without them.
        let unnamed = Endpoint {
            name: None,
            ..endpoint.clone()
        };
        if self.endpoint_by_uid(&endpoint.uid).as_ref() != Some(&unnamed) {
            self.put_endpoint(endpoint);
        }
        true
    }
}

/// The first node by name at an address of an engine's index.
pub(super) fn first_node_at(
    index: &HashMap<IpAddr, std::collections::BTreeSet<String>>,
    ip: IpAddr,
) -> Option<String> {
    index
        .get(&ip)
        .and_then(|names| names.iter().next().cloned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;

    const DUMP_NODE: &str = "apiVersion: cilium.io/v2
kind: CiliumNode
metadata: {name: gw, labels: {egress: \"true\"}}
spec: {addresses: [{type: InternalIP, ip: 192.168.1.1}]}
";

    fn policy(name: &str, cidr: &str) -> String {
        format!(
            "apiVersion: cilium.io/v2\nkind: CiliumEgressGatewayPolicy\nmetadata: {{name: {name}}}\n\
             spec:\n  selectors: [{{podSelector: {{matchLabels: {{app: web}}}}}}]\n  \
             destinationCIDRs: [{cidr}]\n  egressGateway: {{nodeSelector: {{matchLabels: {{egress: \"true\"}}}}}}\n"
        )
    }

    const ENDPOINT: &str = "apiVersion: cilium.io/v2
kind: CiliumEndpoint
metadata: {name: web-1, namespace: default, uid: u1}
status:
  identity: {labels: [\"k8s:app=web\", \"k8s:io.kubernetes.pod.namespace=default\"]}
  networking: {addressing: [{ipv4: 10.0.0.1}], node: 192.168.1.1}
";

    #[test]
    fn a_dump_and_a_new_policy_apply_as_updates() {
        let mut engine = Engine::new(EngineConfig::new("gw"));
        let text = format!(
            "{ENDPOINT}---\n{}---\n{DUMP_NODE}---\n{}---\nkind: Service\nmetadata: {{name: p}}\n",
            policy("web", "0.0.0.0/0"),
            policy("bad", "0.0.0.0/99")
        );
        let applied = engine.apply_text(&text).unwrap();
        assert_eq!(
            (
                applied.policies,
                applied.nodes,
                applied.endpoints,
                applied.namespaces
            ),
            (1, 1, 1, 0)
        );
        assert_eq!(applied.invalid_policies.len(), 1);
        assert_eq!(applied.invalid_policies[0].name.as_deref(), Some("bad"));
        assert_eq!(
            applied.warnings,
            ["objects[4]: kind Service is not used: skipped"]
        );
        // The endpoint found its node, listed after it, and the policy selects it.
        assert_eq!(
            engine.endpoint_by_uid("u1").unwrap().node.as_deref(),
            Some("gw")
        );
        assert_eq!(engine.entries().len(), 1);
    }

    #[test]
    fn input_errors_refuse_the_whole_text() {
        let mut engine = Engine::new(EngineConfig::new("gw"));
        let broken = DUMP_NODE.replace("192.168.1.1", "192.168.1.300");
        let text = format!("{}---\n{broken}", policy("web", "0.0.0.0/0"));
        let err = engine.apply_text(&text).unwrap_err();
        assert_eq!(err.path(), Some("objects[1].spec.addresses[0].ip"));
        assert!(engine.policy("web").is_none(), "nothing applied");
        let err = engine
            .apply_text("localNode: a\nnodes: [{name: a}]\n")
            .unwrap_err();
        assert_eq!(err.path(), Some("objects[0]"));
        assert_eq!(engine.apply_text("").unwrap_err(), Error::DocumentCount(0));
        assert_eq!(
            engine.apply_text("{kind: List, items: []}").unwrap(),
            Applied::default(),
            "an empty relist is nothing to apply"
        );
        assert_eq!(
            engine
                .apply_text("{metadata: {name: x}}")
                .unwrap_err()
                .path(),
            Some("objects[0].kind")
        );
    }

    /// B.10 as events: a Node and a Namespace, then a Pod alone — its plan holds exactly its
    /// entries, its identity takes the namespace's labels from the earlier event; a
    /// CiliumEndpoint in the same text beats the Pod of the same pod.
    #[test]
    fn pods_and_nodes_apply_as_events() {
        let mut engine = Engine::new(EngineConfig::new("gw"));
        let node = "apiVersion: v1\nkind: Node\nmetadata: {name: gw, labels: {egress: \"true\"}}\n\
                    status: {addresses: [{type: InternalIP, address: 192.168.1.1}]}\n";
        let namespace =
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {tier: web}}\n";
        let selects_tier = "apiVersion: cilium.io/v2\nkind: CiliumEgressGatewayPolicy\nmetadata: {name: t}\n\
             spec:\n  selectors: [{podSelector: {matchLabels: {io.cilium.k8s.namespace.labels.tier: web}}}]\n  \
             destinationCIDRs: [0.0.0.0/0]\n  egressGateway: {nodeSelector: {matchLabels: {egress: \"true\"}}}\n";
        let applied = engine
            .apply_text(&format!("{node}---\n{namespace}---\n{selects_tier}"))
            .unwrap();
        assert_eq!(
            (applied.nodes, applied.namespaces, applied.policies),
            (1, 1, 1)
        );
        let plan = engine.take_plan().unwrap();
        engine.ack(&plan, plan.len()).unwrap();
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop, uid: u-p}\n\
                   spec: {nodeName: gw}\nstatus: {phase: Running, podIPs: [{ip: 10.2.0.1}]}\n";
        let applied = engine.apply_text(pod).unwrap();
        assert_eq!(applied.endpoints, 1, "{:?}", applied.warnings);
        let plan = engine.take_plan().unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!(
            plan.ops()[0].entry().unwrap().source.to_string(),
            "10.2.0.1"
        );
        engine.ack(&plan, plan.len()).unwrap();
        // The same pod as a CiliumEndpoint in the text: the CiliumEndpoint is read.
        let ce = "apiVersion: cilium.io/v2\nkind: CiliumEndpoint\nmetadata: {name: q, namespace: shop, uid: u-q}\n\
                  status:\n  identity: {labels: [\"k8s:io.cilium.k8s.namespace.labels.tier=web\"]}\n  \
                  networking: {addressing: [{ipv4: 10.2.0.2}], node: 192.168.1.1}\n";
        let pod_q = "apiVersion: v1\nkind: Pod\nmetadata: {name: q, namespace: shop, uid: u-other}\n\
                     spec: {nodeName: gw}\nstatus: {phase: Running, podIP: 10.2.0.9}\n";
        let applied = engine.apply_text(&format!("{pod_q}---\n{ce}")).unwrap();
        assert_eq!(applied.endpoints, 1);
        assert!(
            applied
                .warnings
                .iter()
                .any(|w| w.starts_with("1 Pod object(s) ignored")),
            "{:?}",
            applied.warnings
        );
        assert!(engine.endpoint_by_uid("u-q").is_some());
        assert!(engine.endpoint_by_uid("u-other").is_none());
    }

    /// Precedence across events (B.10): a Node event after a CiliumNode's is ignored; a slice
    /// entry beats the Pod of its pod and takes its uid; a later version of the slice without
    /// the entry gives the pod back to its Pod; a Pod after a CiliumEndpoint of its pod changes
    /// nothing; deleting the endpoint forgets every object of its pod.
    #[test]
    fn precedence_holds_across_events() {
        let mut engine = Engine::new(EngineConfig::new("gw"));
        engine.apply_text(DUMP_NODE).unwrap();
        let core = "apiVersion: v1\nkind: Node\nmetadata: {name: gw}\n\
                    status: {addresses: [{type: InternalIP, address: 192.168.9.9}]}\n";
        let applied = engine.apply_text(core).unwrap();
        assert_eq!(applied.nodes, 0);
        assert!(applied.warnings[0].starts_with("1 Node object(s) ignored"));
        assert_eq!(
            engine.nodes()["gw"]
                .ipv4
                .map(|ip| ip.to_string())
                .as_deref(),
            Some("192.168.1.1")
        );
        engine.apply_text(&policy("web", "0.0.0.0/0")).unwrap();
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: web-2, namespace: default, uid: u2}\n\
                   spec: {nodeName: gw}\nstatus: {phase: Running, podIP: 10.0.0.2}\n";
        let identity = |app: &str| {
            format!(
                "apiVersion: cilium.io/v2\nkind: CiliumIdentity\nmetadata: {{name: \"77\"}}\n\
                 security-labels: {{\"k8s:app\": {app}, \"k8s:io.kubernetes.pod.namespace\": default}}\n"
            )
        };
        let slice = |entries: &str| {
            format!(
                "apiVersion: cilium.io/v2alpha1\nkind: CiliumEndpointSlice\nmetadata: {{name: ces-a}}\n\
                 namespace: default\nendpoints: [{entries}]\n"
            )
        };
        let entry = "{name: web-2, id: 77, networking: {addressing: [{ipv4: 10.0.0.3}], node: 192.168.1.1}}";
        // The Pod has no `app` label: not selected. Its slice entry (identity app=web) is.
        engine.apply_text(pod).unwrap();
        assert!(engine.entries().is_empty());
        let applied = engine.apply_text(&slice(entry)).unwrap();
        assert!(
            applied
                .warnings
                .iter()
                .any(|w| w.contains("identity \"77\" is not in the input")),
            "{:?}",
            applied.warnings
        );
        assert!(
            engine.entries().is_empty(),
            "no identity yet: the Pod stays"
        );
        let applied = engine.apply_text(&identity("web")).unwrap();
        assert_eq!(applied.endpoints, 1);
        let ep = engine
            .endpoint_by_uid("u2")
            .expect("the slice entry takes the Pod's uid");
        assert_eq!(ep.ips, ["10.0.0.3".parse::<std::net::IpAddr>().unwrap()]);
        assert_eq!(engine.entries().len(), 1);
        let applied = engine.apply_text(pod).unwrap();
        assert!(
            applied
                .warnings
                .iter()
                .any(|w| w.starts_with("1 Pod object(s) ignored"))
        );
        assert_eq!(engine.endpoint_by_uid("u2").unwrap().ips, ep.ips);
        // The slice drops the entry: the Pod describes the pod again.
        engine.apply_text(&slice("")).unwrap();
        assert_eq!(
            engine.endpoint_by_uid("u2").unwrap().ips,
            ["10.0.0.2".parse::<std::net::IpAddr>().unwrap()]
        );
        assert!(engine.entries().is_empty());
        // A CiliumEndpoint beats both; deleting its endpoint forgets the pod's objects.
        engine.apply_text(&slice(entry)).unwrap();
        let ce = ENDPOINT
            .replace("web-1", "web-2")
            .replace("uid: u1", "uid: u2");
        engine.apply_text(&ce).unwrap();
        assert_eq!(
            engine.endpoint_by_uid("u2").unwrap().ips,
            ["10.0.0.1".parse::<std::net::IpAddr>().unwrap()]
        );
        engine.apply_text(pod).unwrap();
        assert_eq!(engine.endpoint_by_uid("u2").unwrap().ips.len(), 1);
        assert!(engine.delete_endpoint("u2"));
        assert!(engine.endpoint_by_uid("u2").is_none());
        engine.apply_text(&identity("other")).unwrap();
        assert!(
            engine.endpoint_by_uid("u2").is_none(),
            "the pod was forgotten"
        );
    }

    /// An endpoint object finds its node by address among the engine's nodes (its own index,
    /// kept by upserts and deletes) and the text's: the first by name when several share it.
    #[test]
    fn endpoint_objects_find_their_node_in_the_engines_address_index() {
        let mut engine = Engine::new(EngineConfig::new("gw"));
        let node = |name: &str, ip: &str| {
            format!(
                "{{apiVersion: cilium.io/v2, kind: CiliumNode, metadata: {{name: {name}}}, \
                 spec: {{addresses: [{{type: InternalIP, ip: {ip}}}]}}}}"
            )
        };
        let node_of = |engine: &mut Engine| {
            engine.apply_text(ENDPOINT).unwrap();
            engine.endpoint_by_uid("u1").unwrap().node
        };
        engine.apply_text(&node("b", "192.168.1.1")).unwrap();
        assert_eq!(node_of(&mut engine).as_deref(), Some("b"));
        engine.apply_text(&node("a", "192.168.1.1")).unwrap();
        assert_eq!(node_of(&mut engine).as_deref(), Some("a"), "first by name");
        engine.apply_text(&node("a", "192.168.1.2")).unwrap();
        assert_eq!(node_of(&mut engine).as_deref(), Some("b"), "a moved away");
        // The text's own node beats the engine's of a later name, and its new address counts.
        let text = format!("{}\n---\n{ENDPOINT}", node("a0", "192.168.1.1"));
        engine.apply_text(&text).unwrap();
        assert_eq!(
            engine.endpoint_by_uid("u1").unwrap().node.as_deref(),
            Some("a0")
        );
        let text = format!("{}\n---\n{ENDPOINT}", node("a0", "192.168.1.3"));
        engine.apply_text(&text).unwrap();
        assert_eq!(
            engine.endpoint_by_uid("u1").unwrap().node.as_deref(),
            Some("b")
        );
        assert!(engine.delete_node("b"));
        assert_eq!(node_of(&mut engine), None);
    }
}
