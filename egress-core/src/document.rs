//! Parsed YAML/JSON documents with their types preserved, and path-aware readers over them.
//!
//! Inputs are first parsed into [`Value`] trees (never into typed structs directly) so that
//! every later check can name the exact field it rejects, report *all* problems rather than
//! the first, and refuse a number where a string belongs instead of silently stringifying it.

use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;

use compact_str::CompactString;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::field::{self, FieldError, Reason};

mod yaml;

/// One value of a parsed document.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`, `~` or an empty value.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i128),
    /// A floating-point number.
    Float(f64),
    /// A string (up to 24 bytes without an allocation).
    Str(CompactString),
    /// A sequence.
    Seq(Vec<Value>),
    /// A mapping, in document order (keys may be of any type).
    Map(Vec<(Value, Value)>),
}

impl Value {
    /// The value as JSON, for a program that passes a document on as JSON: integers as JSON
    /// numbers (as a float beyond 64 bits), a non-finite float as `null`, mapping keys as
    /// strings (a scalar key as its text; another key as `""`).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as Json;
        match self {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Int(i) => match (i64::try_from(*i), u64::try_from(*i)) {
                (Ok(v), _) => Json::from(v),
                (_, Ok(v)) => Json::from(v),
                _ => serde_json::Number::from_f64(*i as f64).map_or(Json::Null, Json::Number),
            },
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
            Value::Str(s) => Json::String(s.to_string()),
            Value::Seq(items) => Json::Array(items.iter().map(Value::to_json).collect()),
            Value::Map(pairs) => Json::Object(
                pairs
                    .iter()
                    .map(|(k, v)| {
                        let key = match k {
                            Value::Str(s) => s.to_string(),
                            Value::Int(i) => i.to_string(),
                            Value::Bool(b) => b.to_string(),
                            Value::Float(f) => f.to_string(),
                            Value::Null => "null".to_owned(),
                            Value::Seq(_) | Value::Map(_) => String::new(),
                        };
                        (key, v.to_json())
                    })
                    .collect(),
            ),
        }
    }

    /// The type name Kubernetes uses in its messages (`string`, `integer`, `object`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "number",
            Value::Str(_) => "string",
            Value::Seq(_) => "array",
            Value::Map(_) => "object",
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value of a string key of a mapping (`None` when absent or not a mapping).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Takes the value of a string key of a mapping out, leaving `null` in its place (`None`
    /// when absent, `null` itself, or not a mapping).
    pub(crate) fn take(&mut self, key: &str) -> Option<Value> {
        match self {
            Value::Map(entries) => entries
                .iter_mut()
                .find(|(k, v)| k.as_str() == Some(key) && *v != Value::Null)
                .map(|(_, v)| std::mem::replace(v, Value::Null)),
            _ => None,
        }
    }

    /// Renders a scalar as Kubernetes prints an invalid value (strings quoted).
    pub fn render(&self) -> String {
        match self {
            Value::Null => "null".to_owned(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            // `100.0`, not `100`: the decimal point is why a number is not an integer.
            Value::Float(x) => format!("{x:?}"),
            Value::Str(s) => field::quote(s),
            other => field::quote(other.type_name()),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    /// Without a budget (see [`parse_documents`] for the bounded reader).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Bounded(&Budget::new(u64::MAX)).deserialize(deserializer)
    }
}

/// What a document may grow to while it is read: one unit per value plus the bytes of its
/// strings and keys. A YAML alias repeats what its anchor holds without costing text, so a
/// small file can expand to gigabytes; the budget refuses it before it is built.
pub(crate) struct Budget {
    limit: u64,
    left: Cell<u64>,
}

impl Budget {
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            limit,
            left: Cell::new(limit),
        }
    }

    /// The budget of a text of `len` bytes: 16 units per byte plus 1 Mi (a document without
    /// aliases needs at most about two per byte).
    pub(crate) fn for_text(len: usize) -> Self {
        Self::new((len as u64).saturating_mul(16).saturating_add(1 << 20))
    }

    fn spend<E: de::Error>(&self, units: usize) -> Result<(), E> {
        self.try_spend(units).map_err(E::custom)
    }

    /// Takes `units` from what is left, or says the document is too large.
    pub(crate) fn try_spend(&self, units: usize) -> Result<(), String> {
        let units = units as u64;
        match self.left.get().checked_sub(units) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => Err(format!(
                "the document expands to more than {} values and bytes, 16 per byte of its text \
                 (YAML aliases repeating a large value?): refused",
                self.limit
            )),
        }
    }
}

/// A scalar mapping key, hashable (a float by its bits: `1.0` and `1` stay distinct, as
/// `Value`'s equality has them).
#[derive(PartialEq, Eq, Hash)]
enum ScalarKey {
    Null,
    Bool(bool),
    Int(i128),
    Float(u64),
    Str(CompactString),
}

impl ScalarKey {
    fn of(node: &Value) -> Option<Self> {
        Some(match node {
            Value::Null => Self::Null,
            Value::Bool(b) => Self::Bool(*b),
            Value::Int(i) => Self::Int(*i),
            // -0.0 equals 0.0 and NaN equals nothing under Value's equality: normalise the
            // first, and let NaNs (never equal) hash apart.
            Value::Float(x) if *x == 0.0 => Self::Float(0),
            Value::Float(x) if x.is_nan() => return None,
            Value::Float(x) => Self::Float(x.to_bits()),
            Value::Str(s) => Self::Str(s.clone()),
            Value::Seq(_) | Value::Map(_) => return None,
        })
    }
}

/// Reads one value within a budget.
struct Bounded<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = crate::document::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(NodeVisitor(self.0))
    }
}

struct NodeVisitor<'b>(&'b Budget);

impl<'de> Visitor<'de> for NodeVisitor<'_> {
    type Value = crate::document::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML or JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.0.spend(1)?;
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.0.spend(1)?;
        Ok(Value::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.0.spend(1)?;
        Ok(Value::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        self.0.spend(1)?;
        Ok(Value::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        self.0.spend(1)?;
        i128::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.0.spend(1)?;
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.0.spend(1 + v.len())?;
        Ok(Value::Str(v.into()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.0.spend(1 + v.len())?;
        Ok(Value::Str(v.into()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.0.spend(1)?;
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.0.spend(1)?;
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Bounded(self.0).deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Bounded(self.0).deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.0.spend(1)?;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element_seed(Bounded(self.0))? {
            items.push(item);
        }
        items.shrink_to_fit();
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.0.spend(1)?;
        let mut builder = MapBuilder::default();
        while let Some((key, value)) = map.next_entry_seed(Bounded(self.0), Bounded(self.0))? {
            builder.insert(key, value).map_err(de::Error::custom)?;
        }
        Ok(builder.finish())
    }
}

/// A mapping being read: its entries in document order, and what finds a duplicate key in
/// constant time per key — scalar keys by hash, the rare sequence or mapping keys by
/// comparison among themselves.
#[derive(Default)]
pub(crate) struct MapBuilder {
    entries: Vec<(Value, Value)>,
    scalars: HashSet<ScalarKey>,
    others: Vec<usize>,
}

impl MapBuilder {
    /// Adds an entry, refusing a key already there.
    pub(crate) fn insert(&mut self, key: Value, value: Value) -> Result<(), String> {
        let duplicate = match ScalarKey::of(&key) {
            Some(k) => !self.scalars.insert(k),
            None => {
                let duplicate = self.others.iter().any(|&i| self.entries[i].0 == key);
                self.others.push(self.entries.len());
                duplicate
            }
        };
        if duplicate {
            return Err(format!("duplicate key {} in a mapping", key.render()));
        }
        self.entries.push((key, value));
        Ok(())
    }

    /// The mapping, holding no spare capacity.
    pub(crate) fn finish(mut self) -> Value {
        self.entries.shrink_to_fit();
        Value::Map(self.entries)
    }
}

/// A document that could not be parsed at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// Parses YAML (a single document or a `---` stream) or JSON text into its documents.
///
/// Empty documents of a stream are skipped. JSON is recognised by its first character so that
/// JSON-only syntax (tabs as whitespace) is accepted and errors carry JSON positions.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, ParseError> {
    // A UTF-8 byte order mark is not content, in JSON or YAML.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let budget = Budget::for_text(text.len());
    let trimmed = text.trim_start_matches([' ', '\t', '\r', '\n']);
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let mut json = serde_json::Deserializer::from_str(trimmed);
        if let Ok(node) = Bounded(&budget)
            .deserialize(&mut json)
            .and_then(|node| json.end().map(|()| node))
        {
            return Ok(vec![node]);
        }
    }
    let budget = Budget::for_text(text.len());
    let mut docs = yaml::parse(text, &budget)?;
    docs.retain(|node| *node != Value::Null);
    Ok(docs)
}

/// Flattens Kubernetes `List` objects (`kind: List` with `items`), recursively, keeping order.
pub fn flatten_lists(docs: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::with_capacity(docs.len());
    for doc in docs {
        flatten_into(doc, &mut out);
    }
    out
}

fn flatten_into(doc: Value, out: &mut Vec<Value>) {
    let is_list = doc.get("kind").and_then(Value::as_str) == Some("List");
    if is_list {
        if let Value::Map(entries) = doc {
            for (key, value) in entries {
                if key.as_str() == Some("items")
                    && let Value::Seq(items) = value
                {
                    for item in items {
                        flatten_into(item, out);
                    }
                }
            }
        }
    } else {
        out.push(doc);
    }
}

/// A mapping being read field by field; unknown keys are reported once, by [`Fields::finish`].
pub(crate) struct Fields<'a> {
    entries: &'a [(Value, Value)],
    path: &'a str,
}

impl<'a> Fields<'a> {
    /// Opens `node` as a mapping, or reports a type error and returns `None`.
    pub(crate) fn open(
        node: &'a Value,
        path: &'a str,
        errors: &mut Vec<FieldError>,
    ) -> Option<Self> {
        match node {
            Value::Map(entries) => Some(Self { entries, path }),
            other => {
                errors.push(type_error(path, other, "object"));
                None
            }
        }
    }

    /// The value of `key`, treating an explicit `null` as absent.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.get_raw(key).filter(|v| **v != Value::Null)
    }

    /// The value of `key`, `null` included.
    pub(crate) fn get_raw(&self, key: &str) -> Option<&'a Value> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// Reports every key not in `known` as an unknown field.
    pub(crate) fn finish(&self, known: &[&str], errors: &mut Vec<FieldError>) {
        for (key, _) in self.entries {
            match key.as_str() {
                Some(k) if known.contains(&k) => {}
                Some(k) => errors.push(FieldError::new(
                    field::child(self.path, k),
                    Reason::UnknownField,
                )),
                None => errors.push(FieldError::new(
                    field::child(self.path, &key.render()),
                    Reason::UnknownField,
                )),
            }
        }
    }

    /// `path.key`.
    pub(crate) fn path_of(&self, key: &str) -> String {
        field::child(self.path, key)
    }
}

/// `Invalid value: "<type>": must be of type <expected>`.
pub(crate) fn type_error(path: &str, node: &Value, expected: &str) -> FieldError {
    FieldError::new(
        if path.is_empty() { "<document>" } else { path },
        Reason::Invalid {
            value: field::quote(node.type_name()),
            detail: format!("must be of type {expected}"),
        },
    )
}

/// Reads a string, reporting any other type.
pub(crate) fn read_str<'a>(
    node: &'a Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    match node {
        Value::Str(s) => Some(s),
        other => {
            errors.push(type_error(path, other, "string"));
            None
        }
    }
}

/// Reads a sequence, reporting any other type.
pub(crate) fn read_seq<'a>(
    node: &'a Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a [Value]> {
    match node {
        Value::Seq(items) => Some(items),
        other => {
            errors.push(type_error(path, other, "array"));
            None
        }
    }
}

/// Reads a sequence of strings; returns the strings that are strings, with their indexes.
pub(crate) fn read_str_seq<'a>(
    node: &'a Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Vec<(usize, &'a str)> {
    let Some(items) = read_seq(node, path, errors) else {
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| read_str(item, &field::item(path, i), errors).map(|s| (i, s)))
        .collect()
}

/// Reads a mapping of strings to strings (labels), in document order.
pub(crate) fn read_str_map(
    node: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Vec<(String, String)> {
    let Value::Map(entries) = node else {
        errors.push(type_error(path, node, "object"));
        return Vec::new();
    };
    let mut out = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let Some(k) = key.as_str() else {
            errors.push(FieldError::new(
                field::child(path, &key.render()),
                Reason::Invalid {
                    value: key.render(),
                    detail: format!("a key must be a string, not {}", key.type_name()),
                },
            ));
            continue;
        };
        let vpath = field::child(path, k);
        if let Some(v) = read_str(value, &vpath, errors) {
            out.push((k.to_owned(), v.to_owned()));
        }
    }
    out
}

/// The length limits a label set is held to (SEMANTICS' label rules; a label past them
/// cannot exist in a cluster, and bounds what every later comparison reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LabelLimits {
    /// Kubernetes' own for object labels: a key's optional prefix at most 253 characters
    /// (a DNS subdomain), its name 1 to 63, a value at most 63.
    Kubernetes,
    /// Cilium identity labels, derived from Kubernetes ones: a key at most
    /// [`IDENTITY_KEY_LIMIT`] bytes (the namespace-label prefix and a source before a
    /// Kubernetes key), a value at most 253 (a service account name).
    Identity,
}

/// Longest identity label key: `io.cilium.k8s.namespace.labels.` (31) before a Kubernetes
/// key (253 + 1 + 63), and room for a source prefix.
pub(crate) const IDENTITY_KEY_LIMIT: usize = 384;

impl LabelLimits {
    /// Why `key`/`value` break these limits: `(true, reason)` for the key, `(false, reason)`
    /// for the value (Kubernetes' messages).
    pub(crate) fn check(self, key: &str, value: &str) -> Option<(bool, String)> {
        let most = |n: usize| format!("must be no more than {n} characters");
        match self {
            LabelLimits::Kubernetes => {
                let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
                if prefix.len() > 253 {
                    return Some((true, format!("prefix part {}", most(253))));
                }
                if name.is_empty() {
                    return Some((true, "name part must be non-empty".to_owned()));
                }
                if name.len() > 63 {
                    return Some((true, format!("name part {}", most(63))));
                }
                (value.len() > 63).then(|| (false, most(63)))
            }
            LabelLimits::Identity => {
                if key.len() > IDENTITY_KEY_LIMIT {
                    return Some((true, most(IDENTITY_KEY_LIMIT)));
                }
                (value.len() > 253).then(|| (false, most(253)))
            }
        }
    }
}

/// A label set ([`read_str_map`]), each label held to `limits`: one field error per label
/// past them (named by its key, the value or key cut as every quoted value is), left out.
pub(crate) fn read_labels(
    node: &Value,
    path: &str,
    limits: LabelLimits,
    errors: &mut Vec<FieldError>,
) -> Vec<(String, String)> {
    let mut labels = read_str_map(node, path, errors);
    labels.retain(|(k, v)| match limits.check(k, v) {
        None => true,
        Some((is_key, detail)) => {
            let shown = if is_key { k } else { v };
            errors.push(FieldError::invalid_str(
                field::child(path, k),
                shown,
                detail,
            ));
            false
        }
    });
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_convert_to_json() {
        let docs = parse_documents(
            "a: 'true'\nb: true\nc: 3\nd: 1.5\ne: ~\nf: [x, -2]\n7: big\nh: 18446744073709551615\n",
        )
        .unwrap();
        assert_eq!(
            docs[0].to_json(),
            serde_json::json!({"a": "true", "b": true, "c": 3, "d": 1.5, "e": null,
                "f": ["x", -2], "7": "big", "h": 18446744073709551615u64})
        );
        assert_eq!(
            Value::Int(1 << 70).to_json(),
            serde_json::json!(1180591620717411303424.0)
        );
        assert_eq!(Value::Float(f64::NAN).to_json(), serde_json::Value::Null);
    }

    #[test]
    fn yaml_scalars_keep_their_types() {
        let docs = parse_documents("a: 'true'\nb: true\nc: 3\nd: 1.5\ne: ~\nf: [x]\n").unwrap();
        let doc = &docs[0];
        assert_eq!(doc.get("a"), Some(&Value::Str("true".into())));
        assert_eq!(doc.get("b"), Some(&Value::Bool(true)));
        assert_eq!(doc.get("c"), Some(&Value::Int(3)));
        assert_eq!(doc.get("d"), Some(&Value::Float(1.5)));
        assert_eq!(doc.get("e"), Some(&Value::Null));
        assert_eq!(
            doc.get("f"),
            Some(&Value::Seq(vec![Value::Str("x".into())]))
        );
    }

    #[test]
    fn streams_lists_and_json() {
        let docs = parse_documents("---\na: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        let json =
            parse_documents("{\"kind\": \"List\",\t\"items\": [{\"a\": 1}, {\"b\": 2}]}").unwrap();
        assert_eq!(flatten_lists(json).len(), 2);
    }

    #[test]
    fn duplicate_keys_and_syntax_errors_are_refused() {
        let err = parse_documents("a: 1\na: 2\n").unwrap_err();
        assert!(err.0.contains("duplicate"), "{err}");
        assert!(parse_documents("a: [1\n").is_err());
    }

    #[test]
    fn fields_report_unknown_and_type_errors() {
        let doc = parse_documents("x: 1\ny: 2\n").unwrap().remove(0);
        let mut errors = Vec::new();
        let fields = Fields::open(&doc, "spec", &mut errors).unwrap();
        assert_eq!(fields.get("x"), Some(&Value::Int(1)));
        fields.finish(&["x"], &mut errors);
        assert_eq!(errors[0].to_string(), "spec.y: unknown field");
        assert!(read_str(&Value::Int(1), "a.b", &mut errors).is_none());
        assert_eq!(
            errors[1].to_string(),
            "a.b: Invalid value: \"integer\": must be of type string"
        );
        let labels = parse_documents("{a: b, 1: c, d: 2}").unwrap().remove(0);
        let read = read_str_map(&labels, "labels", &mut errors);
        assert_eq!(read, vec![("a".to_owned(), "b".to_owned())]);
        assert_eq!(errors.len(), 4);
    }

    /// A YAML anchor of 2,000 labels referenced by 2,000 endpoints is a 122 KB file that
    /// expands to gigabytes: refused by the budget, quickly, whatever the alias count.
    #[test]
    fn an_alias_expanding_past_the_budget_is_refused() {
        let labels: String = (0..2000).map(|i| format!("  k{i}: v{i}\n")).collect();
        let refs: String = (0..2000)
            .map(|i| format!("- {{uid: u{i}, labels: *l}}\n"))
            .collect();
        let text = format!("labels: &l\n{labels}endpoints:\n{refs}");
        assert!(text.len() < 130_000);
        let err = parse_documents(&text).unwrap_err().to_string();
        assert!(err.contains("the document expands to more than"), "{err}");
        // The same anchor used a few times is fine.
        let few: String = (0..3)
            .map(|i| format!("- {{uid: u{i}, labels: *l}}\n"))
            .collect();
        let docs = parse_documents(&format!("labels: &l\n{labels}endpoints:\n{few}")).unwrap();
        assert_eq!(docs.len(), 1);
    }

    /// Duplicate keys are found by hash: 60,000 keys parse in linear time (the former check
    /// compared each key with every earlier one: 1.8 × 10^9 comparisons here).
    #[test]
    fn a_mapping_with_many_keys_parses_in_linear_time() {
        let text: String = (0..60_000).map(|i| format!("k{i}: {i}\n")).collect();
        let docs = parse_documents(&text).unwrap();
        let Value::Map(entries) = &docs[0] else {
            panic!("not a map")
        };
        assert_eq!(entries.len(), 60_000);
        let dup = format!("{text}k7: again\n");
        assert!(
            parse_documents(&dup)
                .unwrap_err()
                .to_string()
                .contains("duplicate key \"k7\"")
        );
        // Non-string keys too, also by hash: 60,000 integer keys.
        assert!(
            parse_documents("1: a\n2: b\n1: c\n")
                .unwrap_err()
                .to_string()
                .contains("duplicate key 1")
        );
        let ints: String = (0..60_000).map(|i| format!("{i}: x\n")).collect();
        assert!(matches!(&parse_documents(&ints).unwrap()[0], Value::Map(e) if e.len() == 60_000));
        let dup = parse_documents(&format!("{ints}59999: y\n")).unwrap_err();
        assert!(dup.to_string().contains("duplicate key 59999"), "{dup}");
        assert!(parse_documents("true: a\n~: b\nfalse: c\n1.5: d\n1: e\n").is_ok());
        assert!(parse_documents("1.5: a\n1.5: b\n").is_err());
    }

    /// The expansion budget at its edge: a document costing exactly the budget is read, one
    /// unit less refuses it (a value costs one unit, a string or key its bytes too).
    #[test]
    fn the_budget_holds_exactly_its_limit() {
        let text = "{\"ab\": [\"cde\", 1]}";
        // map 1 + key 1+2 + seq 1 + "cde" 1+3 + 1 = 10.
        let read = |limit| {
            let mut json = serde_json::Deserializer::from_str(text);
            Bounded(&Budget::new(limit)).deserialize(&mut json)
        };
        assert!(read(10).is_ok());
        let err = read(9).unwrap_err().to_string();
        assert!(
            err.contains("expands to more than 9 values and bytes"),
            "{err}"
        );
    }

    /// Nesting: 128 levels read (JSON and YAML), 129 refused with the line and column.
    #[test]
    fn nesting_is_limited_to_128_levels() {
        for (depth, ok) in [(128, true), (129, false)] {
            let json = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let yaml = format!("{}x", "- ".repeat(depth));
            for text in [&json, &yaml] {
                match parse_documents(text) {
                    Ok(_) => assert!(ok, "{depth} levels read"),
                    Err(e) => {
                        assert!(!ok, "{depth} levels refused: {e}");
                        assert!(e.0.contains("recursion limit exceeded at line 1"), "{e}");
                    }
                }
            }
        }
    }

    /// Label lengths at Kubernetes' limits: a 63-character name and value, a 253-character
    /// prefix are read; one character more is a field error naming the label, left out.
    #[test]
    fn labels_are_held_to_their_length_limits() {
        let k = |n: usize| "k".repeat(n);
        let cases = [
            (k(63), "v".repeat(63), None),
            (
                k(64),
                "v".to_owned(),
                Some("name part must be no more than 63 characters"),
            ),
            (format!("{}/n", k(253)), "v".to_owned(), None),
            (
                format!("{}/n", k(254)),
                "v".to_owned(),
                Some("prefix part must be no more than 253 characters"),
            ),
            (
                "x/".to_owned(),
                "v".to_owned(),
                Some("name part must be non-empty"),
            ),
            (
                k(1),
                "v".repeat(64),
                Some("must be no more than 63 characters"),
            ),
        ];
        for (key, value, error) in cases {
            let node = Value::Map(vec![(
                Value::Str(key.as_str().into()),
                Value::Str(value.as_str().into()),
            )]);
            let mut errors = Vec::new();
            let read = read_labels(&node, "labels", LabelLimits::Kubernetes, &mut errors);
            match error {
                None => {
                    assert_eq!(read, vec![(key, value)]);
                    assert!(errors.is_empty(), "{errors:?}");
                }
                Some(reason) => {
                    assert!(read.is_empty());
                    let text = errors[0].to_string();
                    assert!(
                        text.starts_with(&format!("labels.{key}: Invalid value: ")),
                        "{text}"
                    );
                    assert!(text.ends_with(reason), "{text}");
                }
            }
        }
        for (key, value, ok) in [
            (k(IDENTITY_KEY_LIMIT), "v".repeat(253), true),
            (k(IDENTITY_KEY_LIMIT + 1), "v".to_owned(), false),
            (k(3), "v".repeat(254), false),
        ] {
            assert_eq!(LabelLimits::Identity.check(&key, &value).is_none(), ok);
        }
    }

    #[test]
    fn a_byte_order_mark_is_not_content_in_yaml_or_json() {
        for text in ["\u{feff}a: 1\n", "\u{feff}{\"a\": 1}"] {
            let docs = parse_documents(text).unwrap();
            assert_eq!(docs[0].get("a"), Some(&Value::Int(1)), "{text:?}");
        }
    }
}
