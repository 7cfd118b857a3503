//! The `CiliumEgressGatewayPolicy` object: its model, parsing with full validation
//! (SEMANTICS A.1), and the warnings a valid policy can still deserve.

mod compiled;
mod parse;
mod warnings;

use std::net::IpAddr;

pub use compiled::PolicySelectors;
pub use parse::{
    MAX_CIDRS, MAX_GATEWAYS, PolicyErrors, object_name, parse_policy, parse_policy_for,
    parse_policy_text, parse_policy_text_for, version_errors,
};
pub use warnings::{Warning, family_warnings, policy_warnings, version_warnings};

// The Kubernetes selector types belong to `selector`; they are part of a policy's model, so
// they are re-exported here too.
pub use crate::selector::{LabelSelector, Operator, Requirement, SelectorItem};

use crate::netip::Cidr;
use crate::timestamp::Timestamp;

/// A valid egress gateway policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `metadata.name` (non-empty).
    pub name: String,
    /// `metadata.namespace` as written (non-empty), which means nothing: the kind is
    /// cluster-scoped (a lint says so).
    pub namespace: Option<String>,
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
