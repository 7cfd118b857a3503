//! Kubernetes objects as events: what a watch delivers, or a `kubectl get -o yaml` dump plus
//! a new policy, applied to a live engine as updates.

use super::Engine;
use crate::cluster::{Endpoint, Namespace, Node};
use crate::document::Value;
use crate::error::Error;
use crate::field::{self, FieldError, Reason};
use crate::policy::{Policy, PolicyErrors, parse_policy_for};
use crate::snapshot::kubernetes::{self, Kind};

/// What [`Engine::apply_text`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Valid policies upserted.
    pub policies: usize,
    /// Nodes upserted (from `CiliumNode`s).
    pub nodes: usize,
    /// Endpoints upserted (from `CiliumEndpoint`s).
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
    endpoints: Vec<Endpoint>,
    warnings: Vec<String>,
}

/// One object, converted and checked, waiting to be applied.
enum Update {
    Policy(Result<Policy, PolicyErrors>),
    Node(Node),
    Namespace(Namespace),
    /// A `CiliumEndpoint`: converted once every node of the text is known.
    Endpoint(usize),
    /// A core `Pod`: converted once every namespace of the text is known.
    Pod(usize),
}

impl Engine {
    /// Applies Kubernetes objects as updates: `CiliumEgressGatewayPolicy`, `CiliumNode`,
    /// `CiliumEndpoint` and `Namespace` objects, and core `Pod`s and `Node`s (B.10: a
    /// CiliumEndpoint of the same text beats its Pod; a Pod's identity takes its namespace's
    /// labels from the text or an earlier namespace event); one, a `List`, or a `---` stream,
    /// as `kubectl get -o yaml` prints them. Nodes are applied first, so that endpoints find
    /// their node by address among the engine's nodes and the text's. An invalid policy is
    /// reported in [`Applied::invalid_policies`] and keeps its previous version; any other
    /// input error refuses the whole text (nothing is applied). A snapshot document is
    /// refused too: load it with [`Engine::from_snapshot`] or [`Engine::sync_snapshot`].
    pub fn apply_text(&mut self, text: &str) -> Result<Applied, Error> {
        let objects = kubernetes::read_objects(text)?;
        let prepared = self.prepare_objects(&objects)?;
        Ok(self.apply_prepared(prepared))
    }

    /// The first half of [`Engine::apply_text`]: converts objects read by
    /// [`kubernetes::read_objects`] (endpoints are matched to the engine's nodes and the
    /// objects'), refusing them all on any input error. Changes nothing.
    pub fn prepare_objects(&self, docs: &[Value]) -> Result<PreparedObjects, Error> {
        let mut applied = Applied::default();
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
                    Ok(node) => updates.push(Update::Node(node)),
                    Err(e) => errors.extend(prefixed(e)),
                },
                Kind::Namespace => match kubernetes::namespace_from_object(doc) {
                    Ok(ns) => updates.push(Update::Namespace(ns)),
                    Err(e) => errors.extend(prefixed(e)),
                },
                Kind::CiliumEndpoint => updates.push(Update::Endpoint(i)),
                Kind::Node => match kubernetes::node_from_core_node(doc) {
                    Ok(node) => updates.push(Update::Node(node)),
                    Err(e) => errors.extend(prefixed(e)),
                },
                Kind::Pod => updates.push(Update::Pod(i)),
                kind @ Kind::Unused(_) => applied.warnings.extend(kind.skipped(&path)),
                kind @ (Kind::EndpointSlice | Kind::Identity) => {
                    applied.warnings.extend(kind.dump_only(&path))
                }
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
        // Endpoints name their node by address: the engine's nodes with the text's on top.
        let mut nodes = self.nodes.clone();
        for update in &updates {
            if let Update::Node(node) = update {
                nodes.insert(node.name.clone(), node.clone());
            }
        }
        let mut endpoints: Vec<Endpoint> = Vec::new();
        for update in &updates {
            if let Update::Endpoint(i) = update {
                let path = field::item("objects", *i);
                match kubernetes::endpoint_from_cilium_endpoint(&docs[*i], &nodes) {
                    Ok((endpoint, warnings)) => {
                        endpoints.extend(endpoint);
                        applied
                            .warnings
                            .extend(warnings.into_iter().map(|w| format!("{path}: {w}")));
                    }
                    Err(e) => {
                        errors.extend(kubernetes::at_object(&path, e).field_errors().to_vec())
                    }
                }
            }
        }
        // Pods (B.10): their namespace's labels from the text's Namespaces, else the
        // engine's; a CiliumEndpoint of the text for the same pod beats its Pod.
        let mut namespace_labels = self.namespace_labels.clone();
        for update in &updates {
            if let Update::Namespace(ns) = update {
                namespace_labels.insert(ns.name.clone(), ns.labels.clone().into());
            }
        }
        let mut ignored_pods = 0;
        // The pods the text's CiliumEndpoints describe (skipped ones too).
        let described: std::collections::HashSet<String> = updates
            .iter()
            .filter_map(|u| match u {
                Update::Endpoint(i) => Some(kubernetes::pod_keys(&docs[*i])),
                _ => None,
            })
            .flatten()
            .collect();
        for update in &updates {
            if let Update::Pod(i) = update {
                let path = field::item("objects", *i);
                match kubernetes::endpoint_from_pod(&docs[*i], &namespace_labels) {
                    Ok((endpoint, warnings)) => {
                        applied
                            .warnings
                            .extend(warnings.into_iter().map(|w| format!("{path}: {w}")));
                        let Some(ep) = endpoint else { continue };
                        if kubernetes::pod_keys(&docs[*i])
                            .iter()
                            .any(|k| described.contains(k))
                        {
                            ignored_pods += 1;
                        } else {
                            endpoints.push(ep);
                        }
                    }
                    Err(e) => {
                        errors.extend(kubernetes::at_object(&path, e).field_errors().to_vec())
                    }
                }
            }
        }
        if ignored_pods > 0 {
            applied.warnings.push(format!(
                "{ignored_pods} Pod object(s) ignored: a CiliumEndpoint of the same pod is read (a CiliumEndpoint beats a Pod, B.10)"
            ));
        }
        if !errors.is_empty() {
            return Err(Error::Input(errors));
        }
        Ok(PreparedObjects {
            updates,
            endpoints,
            warnings: applied.warnings,
        })
    }

    /// The second half of [`Engine::apply_text`]: applies prepared objects as updates (nodes
    /// and namespaces, policies, then endpoints).
    pub fn apply_prepared(&mut self, prepared: PreparedObjects) -> Applied {
        let PreparedObjects {
            updates,
            endpoints,
            warnings,
        } = prepared;
        let mut applied = Applied {
            warnings,
            ..Applied::default()
        };
        for update in updates {
            match update {
                Update::Node(node) => {
                    applied.nodes += 1;
                    self.upsert_node(node);
                }
                Update::Namespace(ns) => {
                    applied.namespaces += 1;
                    self.put_namespace(&ns.name, ns.labels.into());
                }
                Update::Policy(Ok(policy)) => match self.upsert_policy(policy) {
                    Ok(()) => applied.policies += 1,
                    Err(errors) => applied.invalid_policies.push(errors),
                },
                Update::Policy(Err(errors)) => applied.invalid_policies.push(errors),
                Update::Endpoint(_) | Update::Pod(_) => {}
            }
        }
        for (i, errors) in applied.invalid_policies.iter().enumerate() {
            self.diagnostics
                .record_invalid(super::InvalidPolicy::new(i, errors));
        }
        for note in &applied.warnings {
            self.diagnostics.record_skipped(note);
        }
        applied.endpoints = endpoints.len();
        for endpoint in endpoints {
            self.put_endpoint(endpoint);
        }
        applied
    }
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
        assert_eq!(plan.ops()[0].entry().source.to_string(), "10.2.0.1");
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
}
