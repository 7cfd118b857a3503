//! Which Cilium version an input says the cluster runs: the agent DaemonSet's image tag,
//! the `cilium-config` ConfigMap's Helm chart label, or Helm values' `image.tag`.

use std::fmt;

use super::CiliumVersion;
use crate::document::Value;

/// A Cilium release an input names, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetectedVersion {
    /// The release as written (`v1.18.3`, `1.20.0-pre.4`).
    pub release: String,
    /// Its minor version, when it is one the engine reproduces.
    pub version: Option<CiliumVersion>,
    /// What names it: `DaemonSet kube-system/cilium (image quay.io/cilium/cilium:v1.18.3)`.
    pub source: String,
}

impl fmt::Display for DetectedVersion {
    /// `the <source> is Cilium <release>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the {} is Cilium {}", self.source, self.release)
    }
}

fn str_at<'a>(node: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(node, |n, key| n.get(key))
        .and_then(Value::as_str)
}

fn qualified(obj: &Value) -> String {
    let name = str_at(obj, &["metadata", "name"]).unwrap_or("");
    match str_at(obj, &["metadata", "namespace"]) {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_owned(),
    }
}

/// The tag of an image reference (`repo:tag[@digest]`), `None` without one.
fn image_tag(image: &str) -> Option<&str> {
    let without_digest = image.split('@').next()?;
    let (_, tag) = without_digest.rsplit_once(':')?;
    (!tag.contains('/')).then_some(tag)
}

/// The Cilium version one Kubernetes object names: the agent DaemonSet named `cilium` (its
/// `cilium-agent` container's image, else the first container whose image is a `cilium`
/// repository) or the ConfigMap named `cilium-config` (its `helm.sh/chart: cilium-X.Y.Z` or
/// `app.kubernetes.io/version` label). `None` for any other object or one naming no release.
pub fn detect(obj: &Value) -> Option<DetectedVersion> {
    let kind = str_at(obj, &["kind"])?;
    let name = str_at(obj, &["metadata", "name"])?;
    match (kind, name) {
        ("DaemonSet", "cilium") => {
            let containers = obj
                .get("spec")
                .and_then(|s| s.get("template"))
                .and_then(|t| t.get("spec"))
                .and_then(|s| s.get("containers"));
            let Some(Value::Seq(containers)) = containers else {
                return None;
            };
            let image_of = |c: &Value| str_at(c, &["image"]).map(str::to_owned);
            let agent = containers
                .iter()
                .find(|c| str_at(c, &["name"]) == Some("cilium-agent"))
                .and_then(image_of)
                .or_else(|| {
                    containers.iter().filter_map(image_of).find(|i| {
                        let repo = i.split(['@', ':']).next().unwrap_or("");
                        repo.rsplit('/').next() == Some("cilium")
                    })
                })?;
            let release = image_tag(&agent)?.to_owned();
            Some(DetectedVersion {
                version: CiliumVersion::from_release(&release),
                release,
                source: format!("DaemonSet {} (image {agent})", qualified(obj)),
            })
        }
        ("ConfigMap", "cilium-config") => {
            let labels = obj.get("metadata").and_then(|m| m.get("labels"))?;
            let (label, release) =
                match str_at(labels, &["helm.sh/chart"]).and_then(|c| c.strip_prefix("cilium-")) {
                    Some(release) => ("helm.sh/chart", release),
                    None => (
                        "app.kubernetes.io/version",
                        str_at(labels, &["app.kubernetes.io/version"])?,
                    ),
                };
            Some(DetectedVersion {
                version: CiliumVersion::from_release(release),
                release: release.to_owned(),
                source: format!("ConfigMap {} (label {label})", qualified(obj)),
            })
        }
        _ => None,
    }
}

/// The Cilium version Helm values name: `image.tag` (`helm get values cilium`).
pub fn detect_in_helm_values(values: &Value) -> Option<DetectedVersion> {
    let tag = str_at(values, &["image", "tag"])?;
    Some(DetectedVersion {
        version: CiliumVersion::from_release(tag),
        release: tag.to_owned(),
        source: "Helm values (image.tag)".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Value {
        crate::document::parse_documents(text)
            .unwrap()
            .pop()
            .unwrap()
    }

    #[test]
    fn the_agent_daemonset_names_its_release() {
        let ds = doc(
            "kind: DaemonSet\nmetadata: {name: cilium, namespace: kube-system}\nspec:\n  template:\n    spec:\n      initContainers: [{name: config, image: 'quay.io/cilium/cilium:v1.16.0'}]\n      containers:\n      - {name: cilium-agent, image: 'quay.io/cilium/cilium:v1.18.3@sha256:abc'}\n",
        );
        let d = detect(&ds).unwrap();
        assert_eq!(d.release, "v1.18.3");
        assert_eq!(d.version, Some(CiliumVersion::V1_18));
        assert_eq!(
            d.to_string(),
            "the DaemonSet kube-system/cilium (image quay.io/cilium/cilium:v1.18.3@sha256:abc) is Cilium v1.18.3"
        );
        // TKE's mirror, no container named cilium-agent: the cilium repository's image.
        let tke = doc(
            "kind: DaemonSet\nmetadata: {name: cilium}\nspec: {template: {spec: {containers: [{name: sidecar, image: 'busybox:1.36'}, {name: agent, image: 'ccr.ccs.tencentyun.com/tkeimages/cilium:v1.20.1'}]}}}\n",
        );
        assert_eq!(detect(&tke).unwrap().version, Some(CiliumVersion::V1_20));
        // A release the engine does not reproduce: named, no version.
        let old = doc(
            "kind: DaemonSet\nmetadata: {name: cilium}\nspec: {template: {spec: {containers: [{name: cilium-agent, image: 'quay.io/cilium/cilium:v1.16.5'}]}}}\n",
        );
        let d = detect(&old).unwrap();
        assert_eq!((d.release.as_str(), d.version), ("v1.16.5", None));
        // Other objects, and images without a tag, name nothing.
        for other in [
            "kind: DaemonSet\nmetadata: {name: kube-proxy}\nspec: {template: {spec: {containers: [{name: kube-proxy, image: 'k8s/kube-proxy:v1.30'}]}}}\n",
            "kind: DaemonSet\nmetadata: {name: cilium}\nspec: {template: {spec: {containers: [{name: cilium-agent, image: 'registry:5000/cilium/cilium'}]}}}\n",
            "kind: Deployment\nmetadata: {name: cilium}\n",
        ] {
            assert_eq!(detect(&doc(other)), None, "{other}");
        }
    }

    #[test]
    fn the_config_map_names_its_chart() {
        let cm = doc(
            "kind: ConfigMap\nmetadata: {name: cilium-config, namespace: kube-system, labels: {helm.sh/chart: cilium-1.19.2}}\ndata: {enable-egress-gateway: 'true'}\n",
        );
        let d = detect(&cm).unwrap();
        assert_eq!(
            (d.release.as_str(), d.version),
            ("1.19.2", Some(CiliumVersion::V1_19))
        );
        assert_eq!(
            d.source,
            "ConfigMap kube-system/cilium-config (label helm.sh/chart)"
        );
        let plain = doc(
            "kind: ConfigMap\nmetadata: {name: cilium-config, labels: {app.kubernetes.io/version: 1.20.0}}\n",
        );
        assert_eq!(detect(&plain).unwrap().version, Some(CiliumVersion::V1_20));
        assert_eq!(
            detect(&doc("kind: ConfigMap\nmetadata: {name: cilium-config}\n")),
            None
        );
        let values = doc(
            "image: {repository: quay.io/cilium/cilium, tag: v1.18.3}\negressGateway: {enabled: true}\n",
        );
        assert_eq!(
            detect_in_helm_values(&values).unwrap().version,
            Some(CiliumVersion::V1_18)
        );
    }
}
