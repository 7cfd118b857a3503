//! Field errors in the style of Kubernetes' `field.Error`: `<path>: <reason>`.
//!
//! Policy validation and snapshot input checks both report through [`FieldError`], so every
//! message names the field it is about and reads like what `kubectl apply` prints.

use std::fmt;

/// One problem with one field of an input object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Field path, e.g. `spec.egressGateways[1].egressIP`.
    pub path: String,
    /// What is wrong with it.
    pub reason: Reason,
}

/// The reason part of a [`FieldError`]; `Display` gives Kubernetes' wording.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// `Required value` (with an optional detail after a colon).
    Required(Option<String>),
    /// `Too many: <n>: must have at most <max> items`.
    TooMany {
        /// Items given.
        count: usize,
        /// Items allowed.
        max: usize,
    },
    /// `Invalid value: <value>: <detail>`; `value` is already rendered (strings quoted).
    Invalid {
        /// The offending value as Kubernetes prints it.
        value: String,
        /// Why it is invalid.
        detail: String,
    },
    /// `Forbidden: <detail>`.
    Forbidden(String),
    /// `Unsupported value: <value>: supported values: "a", "b"`.
    Unsupported {
        /// The offending value, rendered.
        value: String,
        /// The accepted values.
        supported: &'static [&'static str],
    },
    /// `Duplicate value: <value>`.
    Duplicate(String),
    /// `Not found: <value>`.
    NotFound(String),
    /// `unknown field`.
    UnknownField,
}

impl FieldError {
    /// `path: Unsupported value: "value": supported values: ...` for a named choice.
    pub fn unsupported(path: &str, value: &str, supported: &'static [&'static str]) -> Self {
        FieldError::new(
            path,
            Reason::Unsupported {
                value: quote(value),
                supported,
            },
        )
    }

    /// Builds an error for `path`.
    pub fn new(path: impl Into<String>, reason: Reason) -> Self {
        Self {
            path: path.into(),
            reason,
        }
    }

    /// `Invalid value: "<value>": <detail>` for a string value.
    pub fn invalid_str(path: impl Into<String>, value: &str, detail: impl Into<String>) -> Self {
        Self::new(
            path,
            Reason::Invalid {
                value: quote(value),
                detail: detail.into(),
            },
        )
    }

    /// `Required value`.
    pub fn required(path: impl Into<String>) -> Self {
        Self::new(path, Reason::Required(None))
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Required(None) => f.write_str("Required value"),
            Reason::Required(Some(detail)) => write!(f, "Required value: {detail}"),
            Reason::TooMany { count, max } => {
                write!(f, "Too many: {count}: must have at most {max} items")
            }
            Reason::Invalid { value, detail } => write!(f, "Invalid value: {value}: {detail}"),
            Reason::Forbidden(detail) => write!(f, "Forbidden: {detail}"),
            Reason::Unsupported { value, supported } => {
                write!(f, "Unsupported value: {value}: supported values: ")?;
                for (i, s) in supported.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}", quote(s))?;
                }
                Ok(())
            }
            Reason::Duplicate(value) => write!(f, "Duplicate value: {value}"),
            Reason::NotFound(value) => write!(f, "Not found: {value}"),
            Reason::UnknownField => f.write_str("unknown field"),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

impl std::error::Error for FieldError {}

/// Strings longer than this many bytes are quoted by their beginning and their length, so
/// that an error about a 50 MB value is one readable line.
pub const QUOTE_LIMIT: usize = 1024;

/// Quotes a string as Go's `strconv.Quote` does for the characters that matter here; a
/// string longer than [`QUOTE_LIMIT`] bytes as its first 128 characters, then
/// `... (N bytes)`.
pub fn quote(s: &str) -> String {
    if s.len() > QUOTE_LIMIT {
        let head: String = s.chars().take(128).collect();
        return format!("{}... ({} bytes)", quote(&head), s.len());
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `parent.key`, or `key` at the top.
pub fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// `path` of a value found at `object` (`objects[3]` and `spec.x` give `objects[3].spec.x`;
/// `[0]` gives `objects[3][0]`; an empty path the object's own).
pub fn under(object: &str, path: &str) -> String {
    if path.is_empty() {
        object.to_owned()
    } else if path.starts_with('[') || object.is_empty() {
        format!("{object}{path}")
    } else {
        format!("{object}.{path}")
    }
}

/// `parent[index]`.
pub fn item(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_like_kubernetes() {
        assert_eq!(
            FieldError::required("spec.egressGateway").to_string(),
            "spec.egressGateway: Required value"
        );
        assert_eq!(
            FieldError::new(
                "spec.egressGateways",
                Reason::TooMany { count: 65, max: 64 }
            )
            .to_string(),
            "spec.egressGateways: Too many: 65: must have at most 64 items"
        );
        let unsupported = Reason::Unsupported {
            value: quote("Equals"),
            supported: &["In", "NotIn"],
        };
        assert_eq!(
            unsupported.to_string(),
            r#"Unsupported value: "Equals": supported values: "In", "NotIn""#
        );
        assert_eq!(quote("a\"b\\\u{1}"), r#""a\"b\\\x01""#);
        assert_eq!(child("", "spec"), "spec");
        assert_eq!(item(&child("spec", "selectors"), 2), "spec.selectors[2]");
    }

    #[test]
    fn a_long_value_is_quoted_by_its_beginning_and_length() {
        let long = "x".repeat(50_000_000);
        let q = quote(&long);
        assert_eq!(q, format!("\"{}\"... (50000000 bytes)", "x".repeat(128)));
        let edge = "y".repeat(QUOTE_LIMIT);
        assert_eq!(quote(&edge).len(), QUOTE_LIMIT + 2);
        // Multi-byte characters are cut at a character boundary.
        let wide = "é".repeat(QUOTE_LIMIT);
        assert!(quote(&wide).starts_with(&format!("\"{}\"...", "é".repeat(128))));
    }
}
