//! The `CiliumEgressGatewayPolicy` object: its model, parsing with full validation
//! (SEMANTICS A.1), and the warnings a valid policy can still deserve.

mod parse;
mod warnings;

use std::fmt;
use std::net::IpAddr;

pub use parse::{MAX_GATEWAYS, PolicyErrors, object_name, parse_policy, parse_policy_text};
pub use warnings::{Warning, policy_warnings};

use crate::netip::Cidr;
use crate::timestamp::Timestamp;

/// A valid egress gateway policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `metadata.name` (non-empty).
    pub name: String,
    /// `metadata.creationTimestamp`, when present.
    pub creation_timestamp: Option<Timestamp>,
    /// `spec.selectors`, ORed.
    pub selectors: Vec<SelectorItem>,
    /// `spec.destinationCIDRs`, as written.
    pub destination_cidrs: Vec<Cidr>,
    /// `spec.excludedCIDRs`, as written.
    pub excluded_cidrs: Vec<Cidr>,
    /// `spec.egressGateway`.
    pub egress_gateway: GatewaySpec,
    /// `spec.egressGateways` (when non-empty it replaces `egressGateway`).
    pub egress_gateways: Vec<GatewaySpec>,
}

impl Policy {
    /// The gateway entries in use: `egressGateways` when non-empty, else `egressGateway`.
    pub fn gateways_in_use(&self) -> &[GatewaySpec] {
        if self.egress_gateways.is_empty() {
            std::slice::from_ref(&self.egress_gateway)
        } else {
            &self.egress_gateways
        }
    }

    /// The field path of gateway entry `index` of [`Policy::gateways_in_use`].
    pub fn gateway_path(&self, index: usize) -> String {
        if self.egress_gateways.is_empty() {
            "spec.egressGateway".to_owned()
        } else {
            format!("spec.egressGateways[{index}]")
        }
    }

    /// Whether the policy has destination CIDRs of the family (`v4Needed`/`v6Needed`).
    pub fn needs_family(&self, ipv4: bool) -> bool {
        self.destination_cidrs.iter().any(|c| c.is_ipv4() == ipv4)
    }
}

/// One `spec.selectors[]` item.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelectorItem {
    /// `podSelector`.
    pub pod_selector: Option<LabelSelector>,
    /// `namespaceSelector`.
    pub namespace_selector: Option<LabelSelector>,
    /// `nodeSelector`: restricts endpoints to those on matching nodes.
    pub node_selector: Option<LabelSelector>,
}

/// A Kubernetes `LabelSelector` as written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// `matchLabels`, in document order.
    pub match_labels: Vec<(String, String)>,
    /// `matchExpressions`.
    pub match_expressions: Vec<Requirement>,
}

/// One `matchExpressions` item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// `key`.
    pub key: String,
    /// `operator`.
    pub operator: Operator,
    /// `values`.
    pub values: Vec<String>,
}

/// A `matchExpressions` operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// `In`.
    In,
    /// `NotIn`.
    NotIn,
    /// `Exists`.
    Exists,
    /// `DoesNotExist`.
    DoesNotExist,
}

impl Operator {
    /// The operators' names, as the API server lists them.
    pub const NAMES: &'static [&'static str] = &["In", "NotIn", "Exists", "DoesNotExist"];

    /// Parses an operator name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "In" => Some(Self::In),
            "NotIn" => Some(Self::NotIn),
            "Exists" => Some(Self::Exists),
            "DoesNotExist" => Some(Self::DoesNotExist),
            _ => None,
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = *self as usize;
        f.write_str(Self::NAMES[i])
    }
}

/// One gateway entry (`egressGateway` or an `egressGateways` item).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GatewaySpec {
    /// `nodeSelector`: the gateway is the first matching node by name.
    pub node_selector: LabelSelector,
    /// `egressIP` (absent or empty: `None`).
    pub egress_ip: Option<IpAddr>,
    /// `interface` (absent or empty: `None`).
    pub interface: Option<String>,
}
