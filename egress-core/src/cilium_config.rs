//! Whether a cluster's Cilium configuration runs the egress gateway (`egressctl doctor`):
//! the seed's "enable" section as checks, read from the `cilium-config` ConfigMap or from
//! Helm values, each finding with the `helm --set` that fixes it.
//!
//! What is checked, after Cilium's egress gateway documentation and agent (1.18): the feature
//! is enabled; kube-proxy replacement; BPF masquerading and IPv4 masquerading (the agent
//! refuses to start the feature without both); a native-routing CIDR when routing is native;
//! CRD identity allocation; and the incompatible features, CiliumEndpointSlice and Cluster
//! Mesh. A key absent from the input takes the chart's default (Helm values hold only what
//! was set).

use std::fmt;

use crate::document::Value;
use crate::error::Error;
use crate::field::{FieldError, Reason};
use crate::version::{CiliumVersion, DetectedVersion};

/// Where the settings were read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The `cilium-config` ConfigMap's `data` (agent option names, string values).
    ConfigMap,
    /// Helm values (`helm get values cilium -n kube-system -o yaml`): nested, typed.
    HelmValues,
}

/// A configuration to check.
#[derive(Clone, Debug)]
pub struct CiliumConfig {
    source: Source,
    /// The ConfigMap's `data` map, or the values' root map.
    settings: Value,
    /// The Cilium release the input names (the ConfigMap's chart label, the values'
    /// `image.tag`).
    detected: Option<DetectedVersion>,
}

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// As the egress gateway needs it.
    Ok,
    /// Probably a problem; the input cannot say for sure.
    Warn,
    /// The egress gateway does not work (or does not start) this way.
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        })
    }
}

/// One check's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// What is checked ("BPF masquerade").
    pub check: &'static str,
    /// How it came out.
    pub status: Status,
    /// What the input says, and why it matters.
    pub detail: String,
    /// The `helm --set` arguments that fix it (`bpf.masquerade=true`); empty when fine.
    pub fix: Vec<String>,
}

/// One setting: its agent option name (ConfigMap keys, newest first) and Helm value path.
struct Key {
    config_map: &'static [&'static str],
    helm: &'static str,
}

const EGRESS_GATEWAY: Key = Key {
    config_map: &["enable-egress-gateway", "enable-ipv4-egress-gateway"],
    helm: "egressGateway.enabled",
};
/// From 1.19 the agent reads only `enable-egress-gateway` (`--enable-ipv4-egress-gateway`
/// was removed, #42238).
const EGRESS_GATEWAY_1_19: Key = Key {
    config_map: &["enable-egress-gateway"],
    helm: "egressGateway.enabled",
};
const KUBE_PROXY_REPLACEMENT: Key = Key {
    config_map: &["kube-proxy-replacement"],
    helm: "kubeProxyReplacement",
};
const BPF_MASQUERADE: Key = Key {
    config_map: &["enable-bpf-masquerade"],
    helm: "bpf.masquerade",
};
const IPV4_MASQUERADE: Key = Key {
    config_map: &["enable-ipv4-masquerade"],
    helm: "enableIPv4Masquerade",
};
const ROUTING_MODE: Key = Key {
    config_map: &["routing-mode"],
    helm: "routingMode",
};
const NATIVE_ROUTING_CIDR: Key = Key {
    config_map: &["ipv4-native-routing-cidr"],
    helm: "ipv4NativeRoutingCIDR",
};
const IDENTITY_ALLOCATION: Key = Key {
    config_map: &["identity-allocation-mode"],
    helm: "identityAllocationMode",
};
const ENDPOINT_SLICE: Key = Key {
    config_map: &["enable-cilium-endpoint-slice"],
    helm: "ciliumEndpointSlice.enabled",
};
const CLUSTER_ID: Key = Key {
    config_map: &["cluster-id"],
    helm: "cluster.id",
};
const MESH_API_SERVER: Key = Key {
    config_map: &[],
    helm: "clustermesh.useAPIServer",
};
const MESH_CONFIG: Key = Key {
    config_map: &[],
    helm: "clustermesh.config.enabled",
};

/// A setting that must hold one of `good` (`default` when absent), fixed by `fix`.
struct Rule {
    check: &'static str,
    key: &'static Key,
    default: &'static str,
    good: &'static [&'static str],
    fix: &'static str,
    why: &'static str,
}

/// A setting as read: how the input names it, and its value as text (`true`, `native`);
/// `None` when absent.
struct Read {
    name: String,
    value: Option<String>,
}

impl Read {
    /// `name: "value"`, or `name (not set: default)`.
    fn shown(&self, default: &str) -> String {
        match &self.value {
            Some(v) => format!("{}: {v:?}", self.name),
            None => format!("{} not set (default {default:?})", self.name),
        }
    }

    fn or<'a>(&'a self, default: &'a str) -> &'a str {
        self.value.as_deref().unwrap_or(default)
    }
}

impl CiliumConfig {
    /// Reads a `cilium-config` ConfigMap (`kind: ConfigMap`, settings in `data`) or Helm
    /// values (any other mapping). Errors name the field.
    pub fn from_document(doc: &Value) -> Result<Self, Error> {
        let invalid = |path: &str, detail: &str| {
            Error::Input(vec![FieldError::new(
                path,
                Reason::Invalid {
                    value: doc_kind(doc),
                    detail: detail.to_owned(),
                },
            )])
        };
        if !matches!(doc, Value::Map(_)) {
            return Err(invalid(
                "",
                "not a ConfigMap or Helm values: want a mapping",
            ));
        }
        if doc.get("kind").and_then(Value::as_str) == Some("ConfigMap") {
            return match doc.get("data") {
                Some(data @ Value::Map(_)) => Ok(Self {
                    source: Source::ConfigMap,
                    settings: data.clone(),
                    detected: crate::version::detect(doc),
                }),
                _ => Err(Error::Input(vec![FieldError::required("data")])),
            };
        }
        // A snapshot (Helm values have a `cluster` key too, not these).
        if ["localNode", "nodes", "endpoints", "policies"]
            .iter()
            .any(|k| doc.get(k).is_some())
        {
            return Err(invalid(
                "",
                "a snapshot, not Cilium's configuration: give `kubectl get configmap cilium-config -n kube-system -o yaml` or `helm get values cilium -n kube-system -o yaml`",
            ));
        }
        if doc.get("kind").is_some() {
            return Err(invalid(
                "kind",
                "not a ConfigMap: give `kubectl get configmap cilium-config -n kube-system -o yaml` or `helm get values cilium -n kube-system -o yaml`",
            ));
        }
        Ok(Self {
            source: Source::HelmValues,
            settings: doc.clone(),
            detected: crate::version::detect_in_helm_values(doc),
        })
    }

    /// The Cilium release the input names, if it does: the ConfigMap's `helm.sh/chart` or
    /// `app.kubernetes.io/version` label, Helm values' `image.tag`.
    pub fn detected_version(&self) -> Option<&DetectedVersion> {
        self.detected.as_ref()
    }

    /// Where the settings come from.
    pub fn source(&self) -> Source {
        self.source
    }

    fn read(&self, key: &Key) -> Read {
        match self.source {
            Source::ConfigMap => {
                for name in key.config_map {
                    if let Some(v) = self.settings.get(name) {
                        return Read {
                            name: (*name).to_owned(),
                            value: scalar(v),
                        };
                    }
                }
                Read {
                    name: key
                        .config_map
                        .first()
                        .copied()
                        .unwrap_or(key.helm)
                        .to_owned(),
                    value: None,
                }
            }
            Source::HelmValues => {
                let mut node = Some(&self.settings);
                for part in key.helm.split('.') {
                    node = node.and_then(|n| n.get(part));
                }
                Read {
                    name: key.helm.to_owned(),
                    value: node.and_then(scalar),
                }
            }
        }
    }

    /// Every check, in the seed's order, for Cilium 1.18 (the seed's).
    pub fn check(&self) -> Vec<Finding> {
        self.check_for(CiliumVersion::V1_18)
    }

    /// Every check, in the seed's order, for `version`'s agent: from 1.19 the feature is
    /// enabled by `enable-egress-gateway` only (the removed `enable-ipv4-egress-gateway` is
    /// named when it is all the ConfigMap has).
    pub fn check_for(&self, version: CiliumVersion) -> Vec<Finding> {
        let removed_alias = version >= CiliumVersion::V1_19;
        let mut enabled = self.must_be(&Rule {
            check: "egress gateway",
            key: if removed_alias {
                &EGRESS_GATEWAY_1_19
            } else {
                &EGRESS_GATEWAY
            },
            default: "false",
            good: &["true"],
            fix: "egressGateway.enabled=true",
            why: "the feature is off, so no policy is programmed",
        });
        if removed_alias
            && self.source == Source::ConfigMap
            && enabled.status != Status::Ok
            && let Some(old) = self
                .settings
                .get("enable-ipv4-egress-gateway")
                .and_then(scalar)
        {
            enabled.detail = format!(
                "{}; enable-ipv4-egress-gateway: {old:?} is ignored: Cilium {version} removed it \
                 (#42238), the option is enable-egress-gateway",
                enabled.detail
            );
        }
        vec![
            enabled,
            self.must_be(&Rule {
                check: "kube-proxy replacement",
                key: &KUBE_PROXY_REPLACEMENT,
                default: "false",
                good: &["true", "strict"],
                fix: "kubeProxyReplacement=true --set k8sServiceHost=API_SERVER_IP --set \
                      k8sServicePort=API_SERVER_PORT",
                why: "the egress gateway needs Cilium's kube-proxy replacement (in the fix, \
                      replace API_SERVER_IP and API_SERVER_PORT by the API server's address: \
                      without kube-proxy the agents reach it directly)",
            }),
            self.must_be(&Rule {
                check: "BPF masquerade",
                key: &BPF_MASQUERADE,
                default: "false",
                good: &["true"],
                fix: "bpf.masquerade=true",
                why: "the agent does not start the egress gateway without BPF masquerading \
                      (iptables masquerading is the default)",
            }),
            self.must_be(&Rule {
                check: "IPv4 masquerade",
                key: &IPV4_MASQUERADE,
                default: "true",
                good: &["true"],
                fix: "enableIPv4Masquerade=true",
                why: "the agent does not start the egress gateway without IPv4 masquerading",
            }),
            self.native_routing(),
            self.must_be(&Rule {
                check: "identity allocation",
                key: &IDENTITY_ALLOCATION,
                default: "crd",
                good: &["crd"],
                fix: "identityAllocationMode=crd",
                why: "the egress gateway needs identities in Kubernetes CRDs, not in a kvstore",
            }),
            self.must_be(&Rule {
                check: "CiliumEndpointSlice",
                key: &ENDPOINT_SLICE,
                default: "false",
                good: &["false"],
                fix: "ciliumEndpointSlice.enabled=false",
                why: "incompatible: the agent refuses to start the egress gateway with slices \
                      (Cilium issue 24833; NewEgressGatewayManager in \
                      pkg/egressgateway/manager.go), and the datapath reads the egress maps \
                      only when it runs. egressctl still reads slices to compute and explain \
                      the maps (B.10), their gateway hash key being the Pod's uid when the \
                      input holds the Pods, else \"<namespace>/<name>\"",
            }),
            self.cluster_mesh(),
        ]
    }

    /// A setting that must hold one of a few values.
    fn must_be(&self, rule: &Rule) -> Finding {
        let read = self.read(rule.key);
        let ok = rule.good.contains(&read.or(rule.default));
        Finding {
            check: rule.check,
            status: if ok { Status::Ok } else { Status::Fail },
            detail: if ok {
                read.shown(rule.default)
            } else {
                format!("{}: {}", read.shown(rule.default), rule.why)
            },
            fix: if ok {
                Vec::new()
            } else {
                vec![rule.fix.to_owned()]
            },
        }
    }

    fn native_routing(&self) -> Finding {
        const CHECK: &str = "native-routing CIDR";
        let mode = self.read(&ROUTING_MODE);
        let masquerade = self.read(&IPV4_MASQUERADE);
        let cidr = self.read(&NATIVE_ROUTING_CIDR);
        if mode.or("tunnel") != "native" || masquerade.or("true") != "true" {
            return Finding {
                check: CHECK,
                status: Status::Ok,
                detail: format!("not needed: {}", mode.shown("tunnel")),
                fix: Vec::new(),
            };
        }
        match cidr.value.as_deref().filter(|v| !v.is_empty()) {
            Some(_) => Finding {
                check: CHECK,
                status: Status::Ok,
                detail: format!("{}, {}", mode.shown("tunnel"), cidr.shown("")),
                fix: Vec::new(),
            },
            None => Finding {
                check: CHECK,
                status: Status::Fail,
                detail: format!(
                    "{}, {}: with native routing, traffic to this CIDR (the VPC's) is not \
                     masqueraded; without it Cilium refuses to start (in the fix, replace \
                     VPC_CIDR by the VPC's IPv4 CIDR)",
                    mode.shown("tunnel"),
                    cidr.shown("")
                ),
                fix: vec!["ipv4NativeRoutingCIDR=VPC_CIDR".to_owned()],
            },
        }
    }

    fn cluster_mesh(&self) -> Finding {
        const CHECK: &str = "Cluster Mesh";
        const WHY: &str = "the egress gateway is not compatible with Cluster Mesh";
        let id = self.read(&CLUSTER_ID);
        let in_mesh_by_id = id
            .value
            .as_deref()
            .is_some_and(|v| v != "0" && !v.is_empty());
        // Only Helm values say so (the ConfigMap has no such key).
        let meshed: Vec<Read> = [&MESH_API_SERVER, &MESH_CONFIG]
            .into_iter()
            .map(|k| self.read(k))
            .filter(|r| r.value.as_deref() == Some("true"))
            .collect();
        if !meshed.is_empty() {
            let shown: Vec<String> = meshed.iter().map(|r| r.shown("false")).collect();
            return Finding {
                check: CHECK,
                status: Status::Fail,
                detail: format!("{}: {WHY}", shown.join(", ")),
                fix: meshed.iter().map(|r| format!("{}=false", r.name)).collect(),
            };
        }
        if in_mesh_by_id {
            return Finding {
                check: CHECK,
                status: Status::Warn,
                detail: format!(
                    "{}: a non-zero cluster id is what Cluster Mesh members have; if this \
                     cluster is in a mesh, {WHY}",
                    id.shown("0")
                ),
                fix: Vec::new(),
            };
        }
        Finding {
            check: CHECK,
            status: Status::Ok,
            detail: format!("not in use: {}", id.shown("0")),
            fix: Vec::new(),
        }
    }
}

/// The `helm upgrade` that applies every fix, and the restarts after it (as the seed says);
/// `None` when nothing needs fixing. CHART_VERSION is the chart version installed (`helm list
/// -n kube-system`): without `--version`, `helm upgrade` would move to the newest chart.
pub fn fix_command(findings: &[Finding]) -> Option<String> {
    let sets: Vec<String> = findings
        .iter()
        .flat_map(|f| f.fix.iter())
        .map(|s| format!(" \\\n  --set {s}"))
        .collect();
    if sets.is_empty() {
        return None;
    }
    Some(format!(
        "helm upgrade cilium cilium/cilium --version CHART_VERSION --namespace kube-system \
         --reuse-values{}\n\
         kubectl rollout restart ds cilium -n kube-system\n\
         kubectl rollout restart deploy cilium-operator -n kube-system\n",
        sets.concat()
    ))
}

/// A scalar as text: strings as written, booleans and numbers as YAML prints them.
fn scalar(node: &Value) -> Option<String> {
    match node {
        Value::Str(s) => Some(s.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(x) => Some(x.to_string()),
        Value::Null | Value::Seq(_) | Value::Map(_) => None,
    }
}

fn doc_kind(doc: &Value) -> String {
    doc.get("kind")
        .and_then(Value::as_str)
        .map_or_else(|| doc.type_name().to_owned(), str::to_owned)
}

#[cfg(test)]
mod tests;
