//! The cluster objects the engine computes from: nodes, endpoints and namespaces.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::device::Device;
use crate::identity::{self, IdentitySource};
use crate::labels::Labels;
use crate::selector::Selector;

/// A cluster node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Node name (unique).
    pub name: String,
    /// Node labels.
    pub labels: Labels,
    /// IPv4 address; `None` for an IPv6-only node, which is never a gateway.
    pub ipv4: Option<Ipv4Addr>,
    /// IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
    /// Readiness (consistent mode only).
    pub ready: bool,
    /// Weight 0–100, 0 = drained (consistent mode only).
    pub weight: u8,
    /// The node's own devices, when known.
    pub interfaces: Option<Vec<Device>>,
    /// Its `ExternalIP` addresses (from a `CiliumNode`; a snapshot's nodes have none): cloud
    /// public addresses that are usually on no device of the node.
    pub external_ips: Vec<IpAddr>,
}

impl Node {
    /// A ready node of weight 1 without devices.
    pub fn new(name: impl Into<String>, labels: Labels, ipv4: Option<Ipv4Addr>) -> Self {
        Self {
            name: name.into(),
            labels,
            ipv4,
            ipv6: None,
            ready: true,
            weight: 1,
            interfaces: None,
            external_ips: Vec::new(),
        }
    }

    /// The node's address of a family.
    pub fn ip(&self, ipv4: bool) -> Option<IpAddr> {
        if ipv4 {
            self.ipv4.map(IpAddr::V4)
        } else {
            self.ipv6.map(IpAddr::V6)
        }
    }
}

/// What the embedding agent's health probes or an operator say of a node (SEMANTICS B.3),
/// over what the node's objects say: a field left `None` keeps the objects' value. Kept by
/// the engine across the node's object events (a Kubernetes `Node` or `CiliumNode` carries
/// neither field), and for a node not known yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeHealth {
    /// Readiness; consistent mode leaves an unready node out of the candidates.
    pub ready: Option<bool>,
    /// Weight 0–100; 0 drains the node (consistent mode).
    pub weight: Option<u8>,
}

impl NodeHealth {
    /// A health of a weight given as any integer (what bindings read): refused, naming
    /// `weight`, outside 0–100 (the engine's [`Error::Input`](crate::Error::Input) holds it).
    pub fn checked(
        ready: Option<bool>,
        weight: Option<i64>,
    ) -> Result<Self, Vec<crate::field::FieldError>> {
        let weight = match weight {
            None => None,
            Some(w) => match u8::try_from(w) {
                Ok(w) if w <= 100 => Some(w),
                _ => return Err(vec![weight_error(w)]),
            },
        };
        Ok(Self { ready, weight })
    }

    /// Its problems, each naming its field (a weight above 100).
    pub(crate) fn problems(&self) -> Vec<crate::field::FieldError> {
        match self.weight {
            Some(w) if w > 100 => vec![weight_error(i64::from(w))],
            _ => Vec::new(),
        }
    }
}

/// As the snapshot's `weight` is refused (the number unquoted).
fn weight_error(w: i64) -> crate::field::FieldError {
    crate::field::FieldError::new(
        "weight",
        crate::field::Reason::Invalid {
            value: w.to_string(),
            detail: "must be an integer from 0 to 100".to_owned(),
        },
    )
}

/// Nodes by name; iteration is byte-wise name order, the order gateway resolution walks.
pub type Nodes = BTreeMap<String, Node>;

/// The node a gateway entry resolves to (SEMANTICS A.3): the first node by name whose
/// labels match and that has an IPv4 address.
pub fn resolve_node<'a>(selector: &Selector, nodes: &'a Nodes) -> Option<&'a Node> {
    nodes
        .values()
        .find(|n| n.ipv4.is_some() && selector.matches(&n.labels))
}

/// A namespace's labels: what an engine's `upsert_namespace` event carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Namespace {
    /// Namespace name.
    pub name: String,
    /// Its labels (copied into `namespaceLabels` of its endpoints).
    pub labels: BTreeMap<String, String>,
}

/// An endpoint (a pod's network identity).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// Unique id; FNV input as its UTF-8 bytes.
    pub uid: String,
    /// Namespace (empty or absent: no namespace labels derived).
    pub namespace: Option<String>,
    /// Pod name (informational).
    pub name: Option<String>,
    /// The pod's labels.
    pub labels: Labels,
    /// This endpoint's copy of its namespace's labels.
    pub namespace_labels: Labels,
    /// Service account (absent or empty: `default`).
    pub service_account: Option<String>,
    /// Identity labels used exactly as given, instead of deriving them.
    pub identity_labels: Option<Labels>,
    /// Endpoint addresses.
    pub ips: Vec<IpAddr>,
    /// Name of the node hosting the endpoint.
    pub node: Option<String>,
}

impl Endpoint {
    /// The labels endpoint selectors see (SEMANTICS A.2).
    pub fn identity(&self, cluster: Option<&str>) -> Labels {
        identity::given_or_derived(
            self.identity_labels.as_ref(),
            IdentitySource {
                labels: &self.labels,
                namespace: self.namespace.as_deref(),
                namespace_labels: &self.namespace_labels,
                service_account: self.service_account.as_deref(),
                cluster,
            },
        )
    }

    /// The one endpoint validation, for every path that makes an endpoint (typed values, and
    /// the readers, which apply the same rules as they read): a uid, a namespace that is a
    /// namespace name when given (empty: none), labels within Kubernetes' lengths (identity
    /// labels within Cilium's). Every problem, each naming its field (`uid`, `namespace`,
    /// `labels.<key>`, `namespaceLabels.<key>`, `identityLabels.<key>`) — an
    /// [`Error::Input`](crate::Error::Input) as the engine returns it.
    pub fn validate(&self) -> Result<(), Vec<crate::field::FieldError>> {
        use crate::document::LabelLimits;
        use crate::field::{FieldError, child};
        let mut errors = Vec::new();
        if self.uid.is_empty() {
            errors.push(FieldError::required("uid"));
        }
        if let Some(ns) = self.namespace.as_deref().filter(|ns| !ns.is_empty())
            && let Some(problem) = crate::labels::namespace_name_problem(ns)
        {
            errors.push(FieldError::invalid_str("namespace", ns, problem));
        }
        let mut check = |path: &str, labels: &Labels, limits: LabelLimits| {
            for (k, v) in labels.iter() {
                if let Some((is_key, detail)) = limits.check(k, v) {
                    let shown = if is_key { k } else { v };
                    errors.push(FieldError::invalid_str(child(path, k), shown, detail));
                }
            }
        };
        check("labels", &self.labels, LabelLimits::Kubernetes);
        check(
            "namespaceLabels",
            &self.namespace_labels,
            LabelLimits::Kubernetes,
        );
        if let Some(identity) = &self.identity_labels {
            check("identityLabels", identity, LabelLimits::Identity);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// `namespace/name` when known, else the uid.
    pub fn display_name(&self) -> String {
        match (&self.namespace, &self.name) {
            (Some(ns), Some(n)) if !ns.is_empty() => format!("{ns}/{n}"),
            (_, Some(n)) => n.clone(),
            _ => self.uid.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_identity_labels_are_used_exactly() {
        let mut ep = Endpoint {
            uid: "u".into(),
            namespace: Some("ns".into()),
            labels: [("pod-template-hash", "x")].into(),
            ..Default::default()
        };
        assert_eq!(
            ep.identity(None).get("io.kubernetes.pod.namespace"),
            Some("ns")
        );
        assert_eq!(ep.identity(None).get("pod-template-hash"), None);
        ep.identity_labels = Some([("pod-template-hash".to_owned(), "x".to_owned())].into());
        let ids = ep.identity(None);
        assert_eq!(ids.len(), 1);
        assert_eq!(ids.get("pod-template-hash"), Some("x"));
        assert_eq!(ep.display_name(), "u");
    }
}
