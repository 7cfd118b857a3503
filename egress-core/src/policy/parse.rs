//! Reading a policy document with every API-server and agent check of SEMANTICS A.1,
//! reporting all errors of a policy, each with its field path.

use std::fmt;

use super::{GatewaySpec, LabelSelector, Operator, Policy, Requirement, SelectorItem};
use crate::document::{self, Fields, Value, read_seq, read_str, read_str_map, read_str_seq};
use crate::field::{self, FieldError, Reason};
use crate::labels;
use crate::netip::{self, Cidr};
use crate::timestamp::{Timestamp, TimestampError};
use crate::version::CiliumVersion;

pub use crate::version::MAX_GATEWAYS;

/// The most items of `destinationCIDRs`, and of `excludedCIDRs`: ours, not the CRD's (which
/// sets none) — the default map capacity, so one pod of a policy past it could never be
/// programmed; it bounds what one policy makes per endpoint.
pub const MAX_CIDRS: usize = 16384;

const API_VERSION: &str = "cilium.io/v2";
const KIND: &str = "CiliumEgressGatewayPolicy";

/// Why a policy is invalid: all its errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyErrors {
    /// `metadata.name`, when it could be read.
    pub name: Option<String>,
    /// Every error, in document order.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for PolicyErrors {
    /// One line per error: `<policy>: <path>: <reason>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name.as_deref().unwrap_or("<unnamed>");
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{name}: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

/// An object's non-empty `metadata.name`, read without validating anything else.
pub fn object_name(node: &Value) -> Option<&str> {
    node.get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
}

/// Parses and validates one policy object as Cilium 1.18's API server and agent do (the
/// default version; [`parse_policy_for`] takes another).
pub fn parse_policy(node: &Value) -> Result<Policy, PolicyErrors> {
    parse_policy_for(node, CiliumVersion::default())
}

/// Parses and validates one policy object as `version`'s CRD schema and agent do
/// (CILIUM-VERSIONS.md §1: `egressIP` is `format: ipv4` up to 1.19 and any IP from 1.20,
/// which also limits `egressGateways` to 64 items).
pub fn parse_policy_for(node: &Value, version: CiliumVersion) -> Result<Policy, PolicyErrors> {
    let mut errors = Vec::new();
    let name = object_name(node).map(str::to_owned);
    let policy = read_policy(node, version, &mut errors);
    match policy {
        Some(p) if errors.is_empty() => Ok(p),
        _ => Err(PolicyErrors { name, errors }),
    }
}

/// Parses policies from text: one object, a `---` stream, or `kind: List` (flattened).
/// A document that does not parse at all is one error for the whole text.
pub fn parse_policy_text(
    text: &str,
) -> Result<Vec<Result<Policy, PolicyErrors>>, document::ParseError> {
    parse_policy_text_for(text, CiliumVersion::default())
}

/// [`parse_policy_text`] by `version`'s rules.
pub fn parse_policy_text_for(
    text: &str,
    version: CiliumVersion,
) -> Result<Vec<Result<Policy, PolicyErrors>>, document::ParseError> {
    let docs = document::flatten_lists(document::parse_documents(text)?);
    Ok(docs.iter().map(|d| parse_policy_for(d, version)).collect())
}

/// The schema errors `version` finds in a policy built in code (not read from text): an
/// IPv6 `egressIP` up to 1.19, more than 64 `egressGateways` from 1.20. Text read by
/// [`parse_policy_for`] is checked there, with the same messages.
pub fn version_errors(policy: &Policy, version: CiliumVersion) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let gateways = std::iter::once(("spec.egressGateway".to_owned(), &policy.egress_gateway))
        .chain(
            policy
                .egress_gateways
                .iter()
                .enumerate()
                .map(|(i, g)| (field::item("spec.egressGateways", i), g)),
        );
    for (path, gw) in gateways {
        // An address's text (IPv6 in RFC 5952 form, IPv4-mapped as `::ffff:a.b.c.d`) as
        // the API server's `format: ipv4` would judge it.
        if let Some(ip) = gw.egress_ip
            && version.egress_ip_ipv4_only()
            && !netip::is_format_ipv4(&ip.to_string())
        {
            errors.push(not_ipv4(&format!("{path}.egressIP"), &ip.to_string()));
        }
    }
    if let Some(max) = version.max_gateways()
        && policy.egress_gateways.len() > max
    {
        errors.push(FieldError::new(
            "spec.egressGateways",
            Reason::TooMany {
                count: policy.egress_gateways.len(),
                max,
            },
        ));
    }
    errors
}

/// The API server's refusal of a `format: ipv4` field (kube-openapi's `InvalidType`).
fn not_ipv4(path: &str, value: &str) -> FieldError {
    FieldError::invalid_str(
        path,
        value,
        format!(
            "{path} in body must be of type ipv4: {}",
            field::quote(value)
        ),
    )
}

fn read_policy(
    node: &Value,
    version: CiliumVersion,
    errors: &mut Vec<FieldError>,
) -> Option<Policy> {
    let top = Fields::open(node, "", errors)?;
    check_header(&top, errors);

    let (name, namespace, creation_timestamp) = match top.get("metadata") {
        None => {
            errors.push(FieldError::required("metadata.name"));
            (None, None, None)
        }
        Some(meta) => read_metadata(meta, errors),
    };

    let spec = match top.get("spec") {
        None => {
            errors.push(FieldError::required("spec"));
            None
        }
        Some(spec) => read_spec(spec, version, errors),
    };
    top.finish(
        &["apiVersion", "kind", "metadata", "spec", "status"],
        errors,
    );
    let (selectors, destination_cidrs, excluded_cidrs, egress_gateway, egress_gateways) = spec?;
    Some(Policy {
        name: name?,
        namespace,
        creation_timestamp,
        selectors,
        destination_cidrs,
        excluded_cidrs,
        egress_gateway,
        egress_gateways,
    })
}

/// `apiVersion` and `kind` may be omitted (a snapshot's policy list), but not be wrong.
fn check_header(top: &Fields<'_>, errors: &mut Vec<FieldError>) {
    const HEADER: [(&str, &[&str]); 2] = [("apiVersion", &[API_VERSION]), ("kind", &[KIND])];
    for (key, supported) in HEADER {
        let Some(value) = top.get(key) else { continue };
        if let Some(s) = read_str(value, key, errors)
            && !supported.contains(&s)
        {
            errors.push(FieldError::new(
                key,
                Reason::Unsupported {
                    value: field::quote(s),
                    supported,
                },
            ));
        }
    }
}

/// `metadata`: its name, namespace and creation timestamp.
type Metadata = (Option<String>, Option<String>, Option<Timestamp>);

fn read_metadata(meta: &Value, errors: &mut Vec<FieldError>) -> Metadata {
    let Some(fields) = Fields::open(meta, "metadata", errors) else {
        return (None, None, None);
    };
    // Every other metadata field (labels, uid, managedFields, ...) is accepted as is.
    let name = match fields.get("name") {
        None => {
            errors.push(FieldError::required("metadata.name"));
            None
        }
        Some(n) => match read_str(n, "metadata.name", errors) {
            Some("") => {
                errors.push(FieldError::required("metadata.name"));
                None
            }
            Some(s) => Some(s.to_owned()),
            None => None,
        },
    };
    let namespace = fields
        .get("namespace")
        .and_then(|n| read_str(n, "metadata.namespace", errors))
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let timestamp = fields.get("creationTimestamp").and_then(|t| {
        let path = "metadata.creationTimestamp";
        let s = read_str(t, path, errors)?;
        match Timestamp::parse(s) {
            Ok(ts) => Some(ts),
            Err(TimestampError) => {
                errors.push(FieldError::invalid_str(path, s, TimestampError.to_string()));
                None
            }
        }
    });
    (name, namespace, timestamp)
}

type Spec = (
    Vec<SelectorItem>,
    Vec<Cidr>,
    Vec<Cidr>,
    GatewaySpec,
    Vec<GatewaySpec>,
);

fn read_spec(spec: &Value, version: CiliumVersion, errors: &mut Vec<FieldError>) -> Option<Spec> {
    let fields = Fields::open(spec, "spec", errors)?;
    let selectors = match fields.get("selectors") {
        None => {
            errors.push(FieldError::required("spec.selectors"));
            Vec::new()
        }
        Some(node) => read_selector_items(node, errors),
    };
    let destination_cidrs = match fields.get("destinationCIDRs") {
        None => {
            errors.push(FieldError::required("spec.destinationCIDRs"));
            Vec::new()
        }
        Some(node) => read_cidrs(node, "spec.destinationCIDRs", errors),
    };
    let excluded_cidrs = fields
        .get("excludedCIDRs")
        .map(|node| read_cidrs(node, "spec.excludedCIDRs", errors))
        .unwrap_or_default();
    let egress_gateway = match fields.get("egressGateway") {
        None => {
            errors.push(FieldError::required("spec.egressGateway"));
            None
        }
        Some(node) => read_gateway(node, "spec.egressGateway", version, errors),
    };
    let mut egress_gateways = Vec::new();
    if let Some(node) = fields.get("egressGateways") {
        let path = "spec.egressGateways";
        if let Some(items) = read_seq(node, path, errors) {
            if let Some(max) = version.max_gateways()
                && items.len() > max
            {
                errors.push(FieldError::new(
                    path,
                    Reason::TooMany {
                        count: items.len(),
                        max,
                    },
                ));
            }
            for (i, item) in items.iter().enumerate() {
                if let Some(gw) = read_gateway(item, &field::item(path, i), version, errors) {
                    egress_gateways.push(gw);
                }
            }
        }
    }
    fields.finish(
        &[
            "selectors",
            "destinationCIDRs",
            "excludedCIDRs",
            "egressGateway",
            "egressGateways",
        ],
        errors,
    );
    // Agent check: no gateway entry in use carries both interface and egressIP.
    let in_use: Vec<(String, &GatewaySpec)> = if egress_gateways.is_empty() {
        egress_gateway
            .iter()
            .map(|g| ("spec.egressGateway".to_owned(), g))
            .collect()
    } else {
        egress_gateways
            .iter()
            .enumerate()
            .map(|(i, g)| (format!("spec.egressGateways[{i}]"), g))
            .collect()
    };
    for (path, gw) in in_use {
        if gw.interface.is_some() && gw.egress_ip.is_some() {
            errors.push(FieldError::new(
                path,
                Reason::Forbidden("interface and egressIP are mutually exclusive".to_owned()),
            ));
        }
    }
    Some((
        selectors,
        destination_cidrs,
        excluded_cidrs,
        egress_gateway?,
        egress_gateways,
    ))
}

fn read_selector_items(node: &Value, errors: &mut Vec<FieldError>) -> Vec<SelectorItem> {
    let path = "spec.selectors";
    let Some(items) = read_seq(node, path, errors) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let ipath = field::item(path, i);
        let Some(fields) = Fields::open(item, &ipath, errors) else {
            continue;
        };
        let mut sel = |key: &str| {
            fields
                .get(key)
                .map(|n| read_label_selector(n, &fields.path_of(key), errors))
        };
        let parsed = SelectorItem {
            pod_selector: sel("podSelector"),
            namespace_selector: sel("namespaceSelector"),
            node_selector: sel("nodeSelector"),
        };
        fields.finish(
            &["podSelector", "namespaceSelector", "nodeSelector"],
            errors,
        );
        if parsed.pod_selector.is_none() && parsed.namespace_selector.is_none() {
            errors.push(FieldError::new(
                ipath,
                Reason::Required(Some("podSelector or namespaceSelector".to_owned())),
            ));
        }
        out.push(parsed);
    }
    out
}

fn read_label_selector(node: &Value, path: &str, errors: &mut Vec<FieldError>) -> LabelSelector {
    let mut sel = LabelSelector::default();
    let Some(fields) = Fields::open(node, path, errors) else {
        return sel;
    };
    if let Some(labels_node) = fields.get("matchLabels") {
        let lpath = fields.path_of("matchLabels");
        for (k, v) in read_str_map(labels_node, &lpath, errors) {
            let problems = labels::label_value_problems(&v);
            if !problems.is_empty() {
                errors.push(FieldError::invalid_str(
                    field::child(&lpath, &k),
                    &v,
                    problems.join("; "),
                ));
            }
            sel.match_labels.push((k, v));
        }
    }
    if let Some(exprs) = fields.get("matchExpressions") {
        let epath = fields.path_of("matchExpressions");
        for (j, expr) in read_seq(exprs, &epath, errors)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            if let Some(r) = read_requirement(expr, &field::item(&epath, j), errors) {
                sel.match_expressions.push(r);
            }
        }
    }
    fields.finish(&["matchLabels", "matchExpressions"], errors);
    sel
}

fn read_requirement(node: &Value, path: &str, errors: &mut Vec<FieldError>) -> Option<Requirement> {
    let fields = Fields::open(node, path, errors)?;
    let key = match fields.get("key") {
        None => {
            errors.push(FieldError::required(fields.path_of("key")));
            None
        }
        Some(k) => read_str(k, &fields.path_of("key"), errors),
    };
    let operator = match fields.get("operator") {
        None => {
            errors.push(FieldError::required(fields.path_of("operator")));
            None
        }
        Some(op) => read_str(op, &fields.path_of("operator"), errors).and_then(|s| {
            let parsed = Operator::parse(s);
            if parsed.is_none() {
                errors.push(FieldError::new(
                    fields.path_of("operator"),
                    Reason::Unsupported {
                        value: field::quote(s),
                        supported: Operator::NAMES,
                    },
                ));
            }
            parsed
        }),
    };
    let values = fields
        .get("values")
        .map(|v| read_str_seq(v, &fields.path_of("values"), errors))
        .unwrap_or_default()
        .into_iter()
        .map(|(_, s)| s.to_owned())
        .collect();
    fields.finish(&["key", "operator", "values"], errors);
    Some(Requirement {
        key: key?.to_owned(),
        operator: operator?,
        values,
    })
}

fn read_gateway(
    node: &Value,
    path: &str,
    version: CiliumVersion,
    errors: &mut Vec<FieldError>,
) -> Option<GatewaySpec> {
    let fields = Fields::open(node, path, errors)?;
    let node_selector = match fields.get("nodeSelector") {
        None => {
            errors.push(FieldError::required(fields.path_of("nodeSelector")));
            None
        }
        Some(n) => Some(read_label_selector(
            n,
            &fields.path_of("nodeSelector"),
            errors,
        )),
    };
    let egress_ip = fields.get("egressIP").and_then(|n| {
        let ipath = fields.path_of("egressIP");
        let s = read_str(n, &ipath, errors)?;
        if version.egress_ip_ipv4_only() {
            // The API server's `format: ipv4` (kube-openapi's strfmt checks every string, ""
            // included: only an absent field escapes it, `omitempty`), then the agent's
            // `netip.ParseAddr` (ParseCEGP: "failed to parse egress IP"). What passes both
            // but is IPv6 text (`::ffff:a.b.c.d`) stays IPv6: the agent keeps it, and its
            // derivation finds no device with that IPv4 address.
            if !netip::is_format_ipv4(s) {
                errors.push(not_ipv4(&ipath, s));
                return None;
            }
            return match netip::parse_addr(s) {
                Ok(addr) => Some(addr.addr),
                Err(e) => {
                    errors.push(FieldError::invalid_str(
                        ipath,
                        s,
                        format!("failed to parse egress IP {s}: {}", e.message),
                    ));
                    None
                }
            };
        }
        // 1.20's CEL rule: `self == '' || isIP(self)`.
        if s.is_empty() {
            return None;
        }
        let ip = netip::parse_is_ip(s);
        if ip.is_none() {
            errors.push(FieldError::invalid_str(
                ipath,
                s,
                "egressIP must be a valid IP address",
            ));
        }
        ip
    });
    let interface = fields
        .get("interface")
        .and_then(|n| read_str(n, &fields.path_of("interface"), errors))
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    fields.finish(&["nodeSelector", "egressIP", "interface"], errors);
    Some(GatewaySpec {
        node_selector: node_selector?,
        egress_ip,
        interface,
    })
}

fn read_cidrs(node: &Value, path: &str, errors: &mut Vec<FieldError>) -> Vec<Cidr> {
    if let Value::Seq(items) = node
        && items.len() > MAX_CIDRS
    {
        // Counted before anything is parsed; the items are not read.
        errors.push(FieldError::new(
            path,
            Reason::TooMany {
                count: items.len(),
                max: MAX_CIDRS,
            },
        ));
        return Vec::new();
    }
    read_str_seq(node, path, errors)
        .into_iter()
        .filter_map(|(i, s)| match netip::parse_prefix(s) {
            Ok(c) => Some(c),
            Err(msg) => {
                errors.push(FieldError::invalid_str(field::item(path, i), s, msg));
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
