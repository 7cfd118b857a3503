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

    /// Why the policy does not select an endpoint with these identity labels on a node with
    /// these labels: one line per reason (`spec.selectors[0]: business=mall, but it has no
    /// label business`); `None` when it selects it.
    pub fn why_not(&self, identity: &Labels, node_labels: &Labels) -> Option<Vec<String>> {
        if !self.on_selected_node(node_labels) {
            let first = self.node_filters.first()?.mismatch(node_labels)?;
            return Some(vec![format!(
                "its node matches no selectors[].nodeSelector (the first asks {first})"
            )]);
        }
        if self.endpoints.iter().any(|s| s.matches(identity)) {
            return None;
        }
        Some(
            self.endpoints
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    Some(format!("spec.selectors[{i}]: {}", s.mismatch(identity)?))
                })
                .collect(),
        )
    }

    /// Whether node labels can change which endpoints are selected.
    pub fn filters_by_node(&self) -> bool {
        !self.node_filters.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::parse_documents;
    use crate::policy::parse_policy;

    fn selectors(spec_selectors: &str) -> PolicySelectors {
        let yaml = format!(
            "metadata: {{name: p}}\nspec:\n  selectors: {spec_selectors}\n  \
             destinationCIDRs: [0.0.0.0/0]\n  egressGateway: {{nodeSelector: {{}}}}\n"
        );
        PolicySelectors::compile(&parse_policy(&parse_documents(&yaml).unwrap()[0]).unwrap())
    }

    #[test]
    fn why_not_names_every_selector_item_or_the_node() {
        let pod: Labels = [("app", "web"), ("io.kubernetes.pod.namespace", "shop")]
            .into_iter()
            .collect();
        let node: Labels = [("zone", "a")].into_iter().collect();
        let two = selectors(
            "[{podSelector: {matchLabels: {app: api}}}, {namespaceSelector: {matchLabels: {team: x}}}]",
        );
        assert_eq!(
            two.why_not(&pod, &node).unwrap(),
            [
                "spec.selectors[0]: app=api, but it has app=web",
                "spec.selectors[1]: io.cilium.k8s.namespace.labels.team=x, but it has no label io.cilium.k8s.namespace.labels.team",
            ]
        );
        let selecting = selectors("[{podSelector: {matchLabels: {app: web}}}]");
        assert_eq!(selecting.why_not(&pod, &node), None);
        let elsewhere = selectors(
            "[{podSelector: {matchLabels: {app: web}}, nodeSelector: {matchLabels: {zone: b}}}]",
        );
        assert_eq!(
            elsewhere.why_not(&pod, &node).unwrap(),
            [
                "its node matches no selectors[].nodeSelector (the first asks zone=b, but it has zone=a)"
            ]
        );
    }
}
