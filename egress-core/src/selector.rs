//! Kubernetes label selectors as written ([`LabelSelector`], [`SelectorItem`]), compiled
//! once into [`Selector`]s and matched without allocation (SEMANTICS A.1, A.2).
//!
//! A selector Kubernetes would refuse to build (`In` without values, `Exists` with values,
//! an invalid key or value) matches nothing; [`Selector::problem`] says why, for the warning.

use std::fmt;

use crate::identity::{NAMESPACE_LABEL, NAMESPACE_LABELS_PREFIX};
use crate::labels::{self, Labels};

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

/// A compiled label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    terms: Box<[Term]>,
    /// Why Kubernetes could not build it (then it matches nothing).
    problem: Option<String>,
}

/// One compiled requirement: a key and the test its value must pass.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Term {
    key: Box<str>,
    test: Test,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Test {
    Equals(Box<str>),
    In(Box<[Box<str>]>),
    NotIn(Box<[Box<str>]>),
    Exists,
    DoesNotExist,
}

impl Term {
    fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match &self.test {
            Test::Equals(want) => value == Some(&**want),
            Test::In(values) => value.is_some_and(|v| contains(values, v)),
            Test::NotIn(values) => !value.is_some_and(|v| contains(values, v)),
            Test::Exists => value.is_some(),
            Test::DoesNotExist => value.is_none(),
        }
    }
}

/// Whether a sorted value list holds `v`: a binary search, so that a requirement with
/// 50,000 values costs ~16 comparisons per match, not 50,000.
fn contains(sorted: &[Box<str>], v: &str) -> bool {
    sorted.binary_search_by(|w| (**w).cmp(v)).is_ok()
}

/// Collects requirements and the first reason the selector cannot be built.
#[derive(Default)]
struct Builder {
    match_labels: Vec<(String, String)>,
    expressions: Vec<(String, Operator, Vec<String>)>,
}

impl Builder {
    fn add_match_labels(&mut self, prefix: &str, labels: &[(String, String)], replace: bool) {
        for (k, v) in labels {
            let key = format!("{prefix}{k}");
            match self
                .match_labels
                .iter_mut()
                .find(|(existing, _)| *existing == key)
            {
                Some(slot) if replace => slot.1 = v.clone(),
                Some(_) => {}
                None => self.match_labels.push((key, v.clone())),
            }
        }
    }

    fn add_expressions(&mut self, prefix: &str, selector: &LabelSelector) {
        for r in &selector.match_expressions {
            self.expressions
                .push((format!("{prefix}{}", r.key), r.operator, r.values.clone()));
        }
    }

    fn build(self) -> Selector {
        let mut problem = None;
        let mut note = |p: String| {
            if problem.is_none() {
                problem = Some(p);
            }
        };
        let mut terms = Vec::with_capacity(self.match_labels.len() + self.expressions.len());
        for (key, value) in self.match_labels {
            if !labels::is_label_key(&key) {
                note(format!(
                    "key {}: not a valid label key",
                    crate::field::quote(&key)
                ));
            }
            if !labels::is_label_value(&value) {
                note(format!(
                    "value {} of key {}: not a valid label value",
                    crate::field::quote(&value),
                    crate::field::quote(&key)
                ));
            }
            terms.push(Term {
                key: key.into(),
                test: Test::Equals(value.into()),
            });
        }
        for (key, op, values) in self.expressions {
            if !labels::is_label_key(&key) {
                note(format!(
                    "key {}: not a valid label key",
                    crate::field::quote(&key)
                ));
            }
            let quoted = crate::field::quote(&key);
            match op {
                Operator::In | Operator::NotIn if values.is_empty() => {
                    note(format!(
                        "key {quoted}: operator {op} needs at least one value"
                    ));
                }
                Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                    note(format!("key {quoted}: operator {op} takes no values"));
                }
                _ => {}
            }
            if let Some(bad) = values.iter().find(|v| !labels::is_label_value(v)) {
                note(format!(
                    "value {} of key {quoted}: not a valid label value",
                    crate::field::quote(bad)
                ));
            }
            // Sorted and deduplicated: looked up by binary search.
            let list = || {
                let mut sorted: Vec<Box<str>> = values.iter().map(|v| v.as_str().into()).collect();
                sorted.sort_unstable();
                sorted.dedup();
                sorted.into_boxed_slice()
            };
            let test = match op {
                Operator::In => Test::In(list()),
                Operator::NotIn => Test::NotIn(list()),
                Operator::Exists => Test::Exists,
                Operator::DoesNotExist => Test::DoesNotExist,
            };
            terms.push(Term {
                key: key.into(),
                test,
            });
        }
        Selector {
            terms: terms.into(),
            problem,
        }
    }
}

impl Selector {
    /// Matches every label set (`{}`).
    pub fn everything() -> Self {
        Self {
            terms: Box::new([]),
            problem: None,
        }
    }

    /// Compiles a pod, node or gateway selector as written.
    pub fn new(selector: &LabelSelector) -> Self {
        let mut b = Builder::default();
        b.add_match_labels("", &selector.match_labels, true);
        b.add_expressions("", selector);
        b.build()
    }

    /// The endpoint selector of one `selectors[]` item: the pod selector, merged with the
    /// namespace selector rewritten to `io.cilium.k8s.namespace.labels.<key>` (an empty one
    /// becoming "`io.kubernetes.pod.namespace` Exists"); the pod selector wins on equal keys.
    pub fn for_endpoints(item: &SelectorItem) -> Self {
        let mut b = Builder::default();
        if let Some(ns) = &item.namespace_selector {
            if ns.match_labels.is_empty() && ns.match_expressions.is_empty() {
                b.expressions
                    .push((NAMESPACE_LABEL.to_owned(), Operator::Exists, Vec::new()));
            } else {
                b.add_match_labels(NAMESPACE_LABELS_PREFIX, &ns.match_labels, true);
                b.add_expressions(NAMESPACE_LABELS_PREFIX, ns);
            }
        }
        if let Some(pod) = &item.pod_selector {
            b.add_match_labels("", &pod.match_labels, true);
            b.add_expressions("", pod);
        }
        b.build()
    }

    /// Whether the labels satisfy every requirement. Never allocates.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.problem.is_none() && self.terms.iter().all(|r| r.matches(labels))
    }

    /// A label every matching label set carries with one of some values: the key and the
    /// values of an `Equals` or `In` requirement — the one with the fewest values, a pod
    /// label before a namespace label on a tie (a namespace holds many pods; a pod label
    /// usually fewer). `None` when it has none — it may match label sets without any given
    /// label — or cannot be built ([`Selector::problem`]: it matches nothing).
    pub(crate) fn anchor(&self) -> Option<(&str, Vec<&str>)> {
        if self.problem.is_some() {
            return None;
        }
        let of_namespace =
            |key: &str| key == NAMESPACE_LABEL || key.starts_with(NAMESPACE_LABELS_PREFIX);
        self.terms
            .iter()
            .filter_map(|t| match &t.test {
                Test::Equals(v) => Some((&*t.key, vec![&**v])),
                Test::In(values) => Some((&*t.key, values.iter().map(|v| &**v).collect())),
                Test::NotIn(_) | Test::Exists | Test::DoesNotExist => None,
            })
            .min_by_key(|(key, values)| (values.len(), of_namespace(key)))
    }

    /// Why this selector matches nothing, if Kubernetes could not build it.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }

    /// Why `labels` do not match, in words (`business=mall, but it has no label business`),
    /// naming the first requirement they fail; `None` when they match.
    pub fn mismatch(&self, labels: &Labels) -> Option<String> {
        if let Some(problem) = &self.problem {
            return Some(format!("the selector matches nothing: {problem}"));
        }
        let term = self.terms.iter().find(|t| !t.matches(labels))?;
        Some(term.mismatch(labels))
    }
}

impl Term {
    /// What the term asks and what the labels have instead.
    fn mismatch(&self, labels: &Labels) -> String {
        let key = &self.key;
        let list = |values: &[Box<str>]| values.join(", ");
        let wanted = match &self.test {
            Test::Equals(v) => format!("{key}={v}"),
            Test::In(values) => format!("{key} in ({})", list(values)),
            Test::NotIn(values) => format!("{key} notin ({})", list(values)),
            Test::Exists => format!("{key} exists"),
            Test::DoesNotExist => format!("no label {key}"),
        };
        match labels.get(key) {
            Some(v) => format!("{wanted}, but it has {key}={v}"),
            None => format!("{wanted}, but it has no label {key}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Requirement as Expr;
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().copied().collect()
    }

    fn expr(key: &str, operator: Operator, values: &[&str]) -> Expr {
        Expr {
            key: key.into(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn sel(match_labels: &[(&str, &str)], exprs: Vec<Expr>) -> LabelSelector {
        LabelSelector {
            match_labels: match_labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            match_expressions: exprs,
        }
    }

    #[test]
    fn each_operator() {
        let web = labels(&[("app", "nginx"), ("tier", "web")]);
        let bare = labels(&[("app", "nginx")]);
        let check = |s: LabelSelector, a: bool, b: bool| {
            let s = Selector::new(&s);
            assert_eq!((s.matches(&web), s.matches(&bare)), (a, b), "{s:?}");
        };
        check(sel(&[("app", "nginx")], vec![]), true, true);
        check(sel(&[("tier", "web")], vec![]), true, false);
        check(
            sel(&[], vec![expr("tier", Operator::In, &["web", "db"])]),
            true,
            false,
        );
        check(
            sel(&[], vec![expr("tier", Operator::NotIn, &["db"])]),
            true,
            true,
        );
        check(
            sel(&[], vec![expr("tier", Operator::NotIn, &["web"])]),
            false,
            true,
        );
        check(
            sel(&[], vec![expr("tier", Operator::Exists, &[])]),
            true,
            false,
        );
        check(
            sel(&[], vec![expr("tier", Operator::DoesNotExist, &[])]),
            false,
            true,
        );
        check(sel(&[], vec![]), true, true);
        // Requirements are ANDed.
        check(
            sel(
                &[("app", "nginx")],
                vec![expr("tier", Operator::Exists, &[])],
            ),
            true,
            false,
        );
        assert!(Selector::everything().matches(&Labels::empty()));
    }

    #[test]
    fn unbuildable_selectors_match_nothing() {
        let any = labels(&[("app", "nginx"), ("tier", "web")]);
        for (s, why) in [
            (
                sel(&[], vec![expr("tier", Operator::In, &[])]),
                "needs at least one value",
            ),
            (
                sel(&[], vec![expr("tier", Operator::NotIn, &[])]),
                "needs at least one value",
            ),
            (
                sel(&[], vec![expr("tier", Operator::Exists, &["web"])]),
                "takes no values",
            ),
            (
                sel(&[], vec![expr("tier", Operator::DoesNotExist, &["x"])]),
                "takes no values",
            ),
            (
                sel(&[], vec![expr("tier", Operator::In, &["bad value"])]),
                "not a valid label value",
            ),
            (
                sel(&[], vec![expr("bad key", Operator::Exists, &[])]),
                "not a valid label key",
            ),
            (sel(&[("bad key", "x")], vec![]), "not a valid label key"),
            (sel(&[("app", "-bad")], vec![]), "not a valid label value"),
        ] {
            let s = Selector::new(&s);
            assert!(!s.matches(&any));
            assert!(s.problem().unwrap().contains(why), "{:?}", s.problem());
        }
    }

    #[test]
    fn namespace_selectors_are_rewritten_and_merged() {
        let pod = labels(&[
            ("tier", "web"),
            ("io.kubernetes.pod.namespace", "prod"),
            ("io.cilium.k8s.namespace.labels.team", "a"),
        ]);
        let item = |ns: Option<LabelSelector>, pod: Option<LabelSelector>| SelectorItem {
            pod_selector: pod,
            namespace_selector: ns,
            node_selector: None,
        };
        // Empty namespace selector: any pod that has a namespace.
        let s = Selector::for_endpoints(&item(Some(sel(&[], vec![])), None));
        assert!(s.matches(&pod));
        assert!(!s.matches(&labels(&[("tier", "web")])));
        // Keys rewritten.
        let s = Selector::for_endpoints(&item(Some(sel(&[("team", "a")], vec![])), None));
        assert!(s.matches(&pod));
        let s = Selector::for_endpoints(&item(
            Some(sel(&[], vec![expr("team", Operator::In, &["b"])])),
            Some(sel(&[("tier", "web")], vec![])),
        ));
        assert!(!s.matches(&pod));
        // Merge: pod's value wins on an identical key.
        let s = Selector::for_endpoints(&item(
            Some(sel(&[("team", "b")], vec![])),
            Some(sel(&[("io.cilium.k8s.namespace.labels.team", "a")], vec![])),
        ));
        assert!(s.matches(&pod));
        // Validity is judged on the rewritten key: 40 chars is fine alone, not once prefixed.
        let long = "a".repeat(40);
        assert!(
            Selector::new(&sel(&[(&long, "x")], vec![]))
                .problem()
                .is_none()
        );
        let s = Selector::for_endpoints(&item(Some(sel(&[(&long, "x")], vec![])), None));
        assert!(s.problem().is_some());
    }

    #[test]
    fn a_mismatch_names_the_first_failing_requirement() {
        let l = labels(&[("app", "web"), ("tier", "db")]);
        let s = Selector::new(&sel(&[("app", "web"), ("team", "a")], vec![]));
        assert_eq!(s.mismatch(&l).unwrap(), "team=a, but it has no label team");
        let s = Selector::new(&sel(&[("app", "api")], vec![]));
        assert_eq!(s.mismatch(&l).unwrap(), "app=api, but it has app=web");
        let s = Selector::new(&sel(&[], vec![expr("tier", Operator::In, &["web", "api"])]));
        assert_eq!(
            s.mismatch(&l).unwrap(),
            "tier in (api, web), but it has tier=db"
        );
        let s = Selector::new(&sel(&[], vec![expr("tier", Operator::NotIn, &["db"])]));
        assert_eq!(
            s.mismatch(&l).unwrap(),
            "tier notin (db), but it has tier=db"
        );
        let s = Selector::new(&sel(&[], vec![expr("x", Operator::Exists, &[])]));
        assert_eq!(s.mismatch(&l).unwrap(), "x exists, but it has no label x");
        let s = Selector::new(&sel(&[], vec![expr("app", Operator::DoesNotExist, &[])]));
        assert_eq!(s.mismatch(&l).unwrap(), "no label app, but it has app=web");
        let s = Selector::new(&sel(&[("app", "web")], vec![]));
        assert_eq!(s.mismatch(&l), None);
        let broken = Selector::new(&sel(&[("bad key!", "v")], vec![]));
        assert!(
            broken
                .mismatch(&l)
                .unwrap()
                .starts_with("the selector matches nothing: ")
        );
    }

    /// `In`/`NotIn` look values up by binary search: 100,000 values matched against 20,000
    /// label sets (2 × 10^9 string comparisons by a scan).
    #[test]
    fn large_value_lists_are_searched_not_scanned() {
        let values: Vec<String> = (0..100_000).map(|i| format!("v{i:06}")).collect();
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let inside = Selector::new(&sel(&[], vec![expr("k", Operator::In, &refs)]));
        let outside = Selector::new(&sel(&[], vec![expr("k", Operator::NotIn, &refs)]));
        let mut matched = 0;
        for i in 0..20_000 {
            let l = labels(&[("k", &format!("v{:06}", i * 7))]);
            assert_eq!(inside.matches(&l), i * 7 < 100_000);
            assert_eq!(outside.matches(&l), i * 7 >= 100_000);
            matched += usize::from(inside.matches(&l));
        }
        assert_eq!(matched, 14_286);
        // Duplicates in the list change nothing.
        let dup = Selector::new(&sel(&[], vec![expr("k", Operator::In, &["a", "a", "b"])]));
        assert!(dup.matches(&labels(&[("k", "a")])) && !dup.matches(&labels(&[("k", "c")])));
    }
}
