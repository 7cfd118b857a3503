//! Which policies an endpoint event must look at: each policy filed under a label its
//! endpoint selectors require (an `Equals` or `In` requirement's key and values: `Selector::anchor`), so that an
//! endpoint's event checks the policies filed under its own identity labels, and the few
//! that require none, instead of every policy (1,000 policies × 150,000 pods was 150 M
//! selector checks for one load).
//!
//! The rule it keeps: a policy selecting an endpoint is among the endpoint's candidates by
//! its identity labels — a selector matches only label sets carrying its anchor label.

use hashbrown::HashMap;

use super::PolicyId;
use crate::labels::Labels;
use crate::policy::PolicySelectors;

/// A label: key and value.
type Label = (Box<str>, Box<str>);

/// The policies by the labels their endpoint selectors require.
#[derive(Default)]
pub(crate) struct PolicyIndex {
    /// Label key → value → the policies filed there.
    by_label: HashMap<Box<str>, HashMap<Box<str>, Vec<PolicyId>>>,
    /// Policies with a selector that requires no label (candidates of every endpoint).
    unanchored: Vec<PolicyId>,
    /// Where each filed policy lies (to take it out again).
    filed: HashMap<PolicyId, Vec<Label>>,
}

impl PolicyIndex {
    /// Files a policy by its compiled selectors (a selector that matches nothing is not
    /// filed: it selects no endpoint).
    pub(crate) fn insert(&mut self, pid: PolicyId, selectors: &PolicySelectors) {
        let mut labels: Vec<Label> = Vec::new();
        for selector in &selectors.endpoints {
            if selector.problem().is_some() {
                continue;
            }
            let Some((key, values)) = selector.anchor() else {
                self.unanchored.push(pid);
                return;
            };
            labels.extend(values.into_iter().map(|v| (key.into(), v.into())));
        }
        labels.sort_unstable();
        labels.dedup();
        for (key, value) in &labels {
            self.by_label
                .entry(key.clone())
                .or_default()
                .entry(value.clone())
                .or_default()
                .push(pid);
        }
        self.filed.insert(pid, labels);
    }

    /// Takes a policy out.
    pub(crate) fn remove(&mut self, pid: PolicyId) {
        self.unanchored.retain(|&p| p != pid);
        for (key, value) in self.filed.remove(&pid).unwrap_or_default() {
            let Some(values) = self.by_label.get_mut(&*key) else {
                continue;
            };
            if let Some(pids) = values.get_mut(&*value) {
                pids.retain(|&p| p != pid);
                if pids.is_empty() {
                    values.remove(&*value);
                }
            }
            if values.is_empty() {
                self.by_label.remove(&*key);
            }
        }
    }

    /// Adds to `out` the policies that may select an endpoint with these identity labels:
    /// those filed under one of its labels, and the unanchored ones (duplicates possible).
    pub(crate) fn candidates(&self, identity: &Labels, out: &mut Vec<PolicyId>) {
        out.extend_from_slice(&self.unanchored);
        for (key, value) in identity.iter() {
            if let Some(pids) = self.by_label.get(key).and_then(|values| values.get(value)) {
                out.extend_from_slice(pids);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{LabelSelector, Operator, Requirement, SelectorItem};
    use crate::selector::Selector;

    fn selectors(items: &[SelectorItem]) -> PolicySelectors {
        PolicySelectors {
            endpoints: items.iter().map(Selector::for_endpoints).collect(),
            node_filters: vec![],
            gateways: vec![],
        }
    }

    fn pod(labels: &[(&str, &str)], expressions: Vec<Requirement>) -> SelectorItem {
        SelectorItem {
            pod_selector: Some(LabelSelector {
                match_labels: labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                match_expressions: expressions,
            }),
            ..SelectorItem::default()
        }
    }

    fn candidates(index: &PolicyIndex, labels: &[(&str, &str)]) -> Vec<PolicyId> {
        let labels: Labels = labels.iter().copied().collect();
        let mut out = Vec::new();
        index.candidates(&labels, &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    #[test]
    fn policies_are_found_by_the_labels_they_require() {
        let mut index = PolicyIndex::default();
        index.insert(
            1,
            &selectors(&[pod(&[("app", "web"), ("tier", "front")], vec![])]),
        );
        let in_list = Requirement {
            key: "app".into(),
            operator: Operator::In,
            values: vec!["db".into(), "cache".into()],
        };
        index.insert(2, &selectors(&[pod(&[], vec![in_list])]));
        // A selector requiring no label value: a candidate of every endpoint.
        let exists = Requirement {
            key: "app".into(),
            operator: Operator::Exists,
            values: vec![],
        };
        index.insert(
            3,
            &selectors(&[pod(&[("app", "web")], vec![]), pod(&[], vec![exists])]),
        );
        // A selector that cannot be built matches nothing: never a candidate.
        index.insert(4, &selectors(&[pod(&[("app", "bad value!")], vec![])]));
        assert_eq!(candidates(&index, &[("app", "web")]), vec![1, 3]);
        assert_eq!(candidates(&index, &[("app", "cache")]), vec![2, 3]);
        // Filed under one of the labels it requires (the first of the most selective): an
        // endpoint without it is not selected anyway.
        assert_eq!(candidates(&index, &[("tier", "front")]), vec![3]);
        assert_eq!(
            candidates(&index, &[("app", "web"), ("tier", "front")]),
            vec![1, 3]
        );
        assert_eq!(candidates(&index, &[("app", "bad value!")]), vec![3]);
        // A namespace selector and a pod selector: filed under the pod label.
        let mut both = pod(&[("app", "api")], vec![]);
        both.namespace_selector = Some(LabelSelector {
            match_labels: vec![("team".into(), "x".into())],
            match_expressions: vec![],
        });
        index.insert(5, &selectors(&[both]));
        let ns_team = format!("{}team", crate::identity::NAMESPACE_LABELS_PREFIX);
        assert_eq!(candidates(&index, &[("app", "api")]), vec![3, 5]);
        assert_eq!(candidates(&index, &[(ns_team.as_str(), "x")]), vec![3]);
        index.remove(5);
        index.remove(3);
        index.remove(1);
        assert_eq!(
            candidates(&index, &[("app", "web"), ("tier", "front")]),
            Vec::<PolicyId>::new()
        );
        index.remove(2);
        index.remove(4);
        assert!(index.by_label.is_empty() && index.unanchored.is_empty() && index.filed.is_empty());
    }
}
