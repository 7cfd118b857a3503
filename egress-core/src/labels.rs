//! Kubernetes label syntax and the [`Labels`] set selectors match against.

use std::collections::BTreeMap;

use compact_str::CompactString;

/// A label set, sorted by key, looked up without allocation (changed only as a whole:
/// [`Labels::insert`] rebuilds it). Keys and values of
/// up to 24 bytes are held inline: a pod's usual labels cost one allocation in all (a
/// `BTreeMap` of one label costs a 544-byte node).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Labels {
    pairs: Box<[(CompactString, CompactString)]>,
}

impl Labels {
    /// The empty set.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.pairs[i].1)
    }

    /// Pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (&**k, &**v))
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Sets `key` to `value` (a relabel: the set is rebuilt, O(n)).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let mut map = self.to_map();
        map.insert(key.into(), value.into());
        *self = map.into();
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The set as an ordered map.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

impl<K: Into<String>, V: Into<String>, const N: usize> From<[(K, V); N]> for Labels {
    /// Later pairs replace earlier ones with the same key.
    fn from(pairs: [(K, V); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl serde::Serialize for Labels {
    /// As a mapping, in key order.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a str, &'a str);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (CompactString, CompactString)>,
        fn(&'a (CompactString, CompactString)) -> (&'a str, &'a str),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(map: BTreeMap<String, String>) -> Self {
        Self {
            pairs: map.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        }
    }
}

impl From<&BTreeMap<String, String>> for Labels {
    fn from(map: &BTreeMap<String, String>) -> Self {
        Self {
            pairs: map
                .iter()
                .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
                .collect(),
        }
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Labels {
    /// Later pairs replace earlier ones with the same key.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        iter.into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect::<BTreeMap<String, String>>()
            .into()
    }
}

const NAME_MAX: usize = 63;
const PREFIX_MAX: usize = 253;

/// The label-value rule's text, as Kubernetes words it.
pub const LABEL_VALUE_RULE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]` (non-empty).
fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// Why `name` is not a namespace name (a DNS-1123 label, as Kubernetes requires), in
/// Kubernetes' words; `None` when it is one.
pub fn namespace_name_problem(name: &str) -> Option<String> {
    let b = name.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    let ok = match (b.first(), b.last()) {
        (Some(f), Some(l)) => alnum(f) && alnum(l) && b.iter().all(|c| alnum(c) || *c == b'-'),
        _ => false,
    };
    (!ok).then(|| {
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character".into()
    })
}

/// A DNS-1123 subdomain: lowercase labels of `[a-z0-9]([-a-z0-9]*[a-z0-9])?` joined by dots.
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= PREFIX_MAX
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            match (b.first(), b.last()) {
                (Some(f), Some(l)) => {
                    (f.is_ascii_lowercase() || f.is_ascii_digit())
                        && (l.is_ascii_lowercase() || l.is_ascii_digit())
                        && b.iter()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                }
                _ => false,
            }
        })
}

/// Problems with a label value (empty when valid), in Kubernetes' words.
pub fn label_value_problems(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > NAME_MAX {
        problems.push(format!("must be no more than {NAME_MAX} characters"));
    }
    if !value.is_empty() && !is_name_part(value) {
        problems.push(LABEL_VALUE_RULE.to_owned());
    }
    problems
}

/// Whether `value` is a valid label value.
pub fn is_label_value(value: &str) -> bool {
    value.len() <= NAME_MAX && (value.is_empty() || is_name_part(value))
}

/// Whether `key` is a valid label key (a qualified name: `[prefix/]name`).
pub fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && !is_dns_subdomain(p)
    {
        return false;
    }
    name.len() <= NAME_MAX && is_name_part(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        for good in [
            "app",
            "app.kubernetes.io/name",
            "io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name",
            "a_b-c.d",
            "A1",
        ] {
            assert!(is_label_key(good), "{good}");
        }
        for bad in [
            "",
            "/app",
            "a/b/c",
            "-app",
            "app-",
            "Example.com/app",
            "x/",
            &"a".repeat(64),
            "app name",
        ] {
            assert!(!is_label_key(bad), "{bad}");
        }
        // A rewritten namespace key without a prefix is one long name and can exceed 63.
        assert!(!is_label_key(&format!(
            "io.cilium.k8s.namespace.labels.{}",
            "a".repeat(40)
        )));
    }

    #[test]
    fn values() {
        assert!(is_label_value(""));
        assert!(is_label_value("172.22.49.119"));
        assert!(is_label_value("true"));
        assert!(!is_label_value("-x"));
        assert!(!is_label_value("a b"));
        assert_eq!(
            label_value_problems(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
        assert_eq!(label_value_problems("a b"), vec![LABEL_VALUE_RULE]);
        assert!(label_value_problems("ok").is_empty());
    }

    #[test]
    fn label_sets() {
        let labels: Labels = [("b", "2"), ("a", "1"), ("b", "3")].into_iter().collect();
        assert_eq!(labels.get("a"), Some("1"));
        assert_eq!(labels.get("b"), Some("3"));
        assert_eq!(labels.get("c"), None);
        assert_eq!(
            labels.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(Labels::empty().is_empty());
    }
}
