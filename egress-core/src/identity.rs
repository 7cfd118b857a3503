//! Cilium identity labels: what endpoint selectors see (SEMANTICS A.2).

use std::collections::BTreeMap;

use crate::labels::Labels;

/// The derived namespace label key.
pub const NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
/// Prefix of the derived namespace-label keys.
pub const NAMESPACE_LABELS_PREFIX: &str = "io.cilium.k8s.namespace.labels.";
/// The derived service-account label key.
pub const SERVICE_ACCOUNT_LABEL: &str = "io.cilium.k8s.policy.serviceaccount";
/// The derived cluster label key.
pub const CLUSTER_LABEL: &str = "io.cilium.k8s.policy.cluster";

/// Ignore prefixes whose match length is the prefix's own length.
const IGNORE_PREFIXES: &[&str] = &[
    "io.kubernetes",
    "kubernetes.io",
    "k8s.io",
    "pod-template-generation",
    "pod-template-hash",
    "controller-revision-hash",
    "etcd_node",
    "controller-uid",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "batch.kubernetes.io/job-completion-index",
    "batch.kubernetes.io/controller-uid",
];

/// Include prefixes: they win when longer than the shortest ignore match.
const INCLUDE_PREFIXES: &[&str] = &[
    "io.kubernetes.pod.namespace",
    "io.cilium.k8s.namespace.labels",
    "app.kubernetes.io",
];

const BETA: &str = "beta.kubernetes.io";

/// Whether Cilium's default identity-label filter keeps the label key `key`.
pub fn is_identity_label(key: &str) -> bool {
    let prefixed = IGNORE_PREFIXES
        .iter()
        .filter(|p| key.starts_with(**p))
        .map(|p| p.len());
    let annotation = key.starts_with("annotation").then_some(key.len());
    let beta = key.rfind(BETA).map(|at| at + BETA.len());
    let shortest_ignore = prefixed.chain(annotation).chain(beta).min();
    let Some(shortest_ignore) = shortest_ignore else {
        return true;
    };
    INCLUDE_PREFIXES
        .iter()
        .filter(|p| key.starts_with(**p))
        .map(|p| p.len())
        .max()
        .is_some_and(|longest_include| longest_include > shortest_ignore)
}

/// What an endpoint contributes to its identity.
#[derive(Clone, Copy, Debug)]
pub struct IdentitySource<'a> {
    /// The pod's labels.
    pub labels: &'a Labels,
    /// The pod's namespace (`None` or empty: nothing derived).
    pub namespace: Option<&'a str>,
    /// The endpoint's copy of its namespace's labels.
    pub namespace_labels: &'a Labels,
    /// The service account (absent or empty: `default`).
    pub service_account: Option<&'a str>,
    /// The cluster name (absent or empty: `default`).
    pub cluster: Option<&'a str>,
}

/// An endpoint's identity labels: `given` exactly as given when present (already filtered
/// and derived, e.g. a CiliumEndpoint's `status.identity.labels`), else derived from `src`.
pub fn given_or_derived(given: Option<&Labels>, src: IdentitySource<'_>) -> Labels {
    match given {
        Some(given) => given.clone(),
        None => identity_labels(src),
    }
}

/// The identity labels: pod labels, overridden by the derived labels, then filtered.
pub fn identity_labels(src: IdentitySource<'_>) -> Labels {
    fn non_empty(s: Option<&str>) -> Option<&str> {
        s.filter(|s| !s.is_empty())
    }
    let mut all: BTreeMap<String, String> = src.labels.to_map();
    if let Some(ns) = non_empty(src.namespace) {
        all.insert(NAMESPACE_LABEL.to_owned(), ns.to_owned());
        for (k, v) in src.namespace_labels {
            all.insert(format!("{NAMESPACE_LABELS_PREFIX}{k}"), v.to_owned());
        }
        let sa = non_empty(src.service_account).unwrap_or("default");
        all.insert(SERVICE_ACCOUNT_LABEL.to_owned(), sa.to_owned());
        let cluster = non_empty(src.cluster).unwrap_or("default");
        all.insert(CLUSTER_LABEL.to_owned(), cluster.to_owned());
    }
    all.retain(|k, _| is_identity_label(k));
    all.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter() {
        for dropped in [
            "pod-template-hash",
            "kubernetes.io/hostname",
            "statefulset.kubernetes.io/pod-name",
            "controller-revision-hash",
            "io.kubernetes.container.name",
            "k8s.io/x",
            "annotation.foo",
            "node.beta.kubernetes.io/arch",
            "io.cilium.k8s.namespace.labels.beta.kubernetes.io/arch",
            "batch.kubernetes.io/job-completion-index",
        ] {
            assert!(!is_identity_label(dropped), "{dropped} kept");
        }
        for kept in [
            "app",
            "app.kubernetes.io/name",
            "io.kubernetes.pod.namespace",
            "io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name",
            "io.cilium.k8s.policy.serviceaccount",
            "io.cilium.k8s.policy.cluster",
            "tier",
            "business",
        ] {
            assert!(is_identity_label(kept), "{kept} dropped");
        }
    }

    #[test]
    fn derived_labels() {
        let pod: Labels = [
            ("app", "nginx"),
            ("pod-template-hash", "54c98b4f84"),
            ("io.kubernetes.pod.namespace", "spoofed"),
        ]
        .into();
        let ns: Labels = [("kubernetes.io/metadata.name", "default")].into();
        let ids = identity_labels(IdentitySource {
            labels: &pod,
            namespace: Some("default"),
            namespace_labels: &ns,
            service_account: Some(""),
            cluster: None,
        });
        assert_eq!(
            ids.iter().collect::<Vec<_>>(),
            vec![
                ("app", "nginx"),
                (
                    "io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name",
                    "default"
                ),
                ("io.cilium.k8s.policy.cluster", "default"),
                ("io.cilium.k8s.policy.serviceaccount", "default"),
                ("io.kubernetes.pod.namespace", "default"),
            ]
        );
        let no_ns = identity_labels(IdentitySource {
            labels: &pod,
            namespace: None,
            namespace_labels: &ns,
            service_account: Some("sa"),
            cluster: Some("c1"),
        });
        assert_eq!(no_ns.get("io.kubernetes.pod.namespace"), Some("spoofed"));
        assert_eq!(no_ns.get(SERVICE_ACCOUNT_LABEL), None);
        assert_eq!(no_ns.len(), 2);
    }
}
