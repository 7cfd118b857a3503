//! A policy's label selectors, compiled once and shared by the batch path, the engine and
//! explain (SEMANTICS A.2, A.3).

use super::Policy;
use crate::labels::Labels;
use crate::selector::Selector;

/// Every selector of one policy, compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySelectors {
    /// One endpoint selector per `spec.selectors[]` item (pod and namespace selectors merged).
    pub endpoints: Vec<Selector>,
    /// The `nodeSelector`s of the items that have one: an endpoint must be on a node one of
    /// them matches (none: any node).
    pub node_filters: Vec<Selector>,
    /// One per gateway entry of [`Policy::gateways_in_use`], its `nodeSelector`.
    pub gateways: Vec<Selector>,
}

impl PolicySelectors {
    /// Compiles the selectors of `policy`.
    pub fn compile(policy: &Policy) -> Self {
        Self {
            endpoints: policy
                .selectors
                .iter()
                .map(Selector::for_endpoints)
                .collect(),
            node_filters: policy
                .selectors
                .iter()
                .filter_map(|item| item.node_selector.as_ref())
                .map(Selector::new)
                .collect(),
            gateways: policy
                .gateways_in_use()
                .iter()
                .map(|g| Selector::new(&g.node_selector))
                .collect(),
        }
    }

    /// Whether the policy selects an endpoint with these identity labels on a node with
    /// these labels. Never allocates.
    pub fn selects(&self, identity: &Labels, node_labels: &Labels) -> bool {
        self.selecting_item(identity, node_labels).is_some()
    }

    /// The first `spec.selectors[]` item that selects the endpoint, `None` when the policy
    /// does not select it.
    pub fn selecting_item(&self, identity: &Labels, node_labels: &Labels) -> Option<usize> {
        if !self.on_selected_node(node_labels) {
            return None;
        }
        self.endpoints.iter().position(|s| s.matches(identity))
    }

    /// Whether a node passes the node filters (always, without any).
    pub fn on_selected_node(&self, node_labels: &Labels) -> bool {
        self.node_filters.is_empty() || self.node_filters.iter().any(|s| s.matches(node_labels))
    }

    /// Whether node labels can change which endpoints are selected.
    pub fn filters_by_node(&self) -> bool {
        !self.node_filters.is_empty()
    }
}
