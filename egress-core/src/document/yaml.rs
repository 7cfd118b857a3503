//! YAML text into [`Node`] trees, one event at a time.
//!
//! serde's YAML deserializers load every event of a document before the first value is
//! built (a 25 MB snapshot held ~500 MB of events beside its tree); this reader builds the
//! tree while the parser streams, so a document costs its tree and one stack of open
//! collections. Scalars are resolved as the YAML 1.2 core schema, exactly as the
//! serde_yaml family resolves them for an untyped value: plain `~`/`null`/empty is null,
//! `true`/`false` (three spellings) booleans, decimal/`0x`/`0o`/`0b` integers (a leading
//! zero makes a string), floats with `.inf`/`.nan`; quoted and block scalars are strings.
//! Tags are refused (no input of ours has a use for them). Aliases repeat what their anchor
//! holds, paid for from the document's [`Budget`].

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle};

use super::{Budget, MapBuilder, Node, ParseError};

/// serde_json's and serde_norway's recursion limit: 128 nested collections are read.
const MAX_DEPTH: usize = 128;

/// An open collection, with what its finished children cost (for its anchor's aliases).
enum Open {
    Seq {
        items: Vec<Node>,
        anchor: usize,
        cost: u64,
    },
    Map {
        map: MapBuilder,
        key: Option<Node>,
        anchor: usize,
        cost: u64,
    },
}

/// The documents of a YAML stream; empty documents are skipped by the caller.
pub(super) fn parse(text: &str, budget: &Budget) -> Result<Vec<Node>, ParseError> {
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    // Anchored values and their cost, by the parser's anchor id.
    let mut anchors: HashMap<usize, (Node, u64)> = HashMap::new();
    let mut root: Option<Node> = None;
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| at(e.info(), e.marker()))?;
        let fail = |message: &str| at(message, &span.start);
        let is_seq = matches!(event, Event::SequenceStart(..));
        let finished: Option<(Node, u64, usize)> = match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing => None,
            Event::DocumentStart(_) => {
                anchors.clear();
                None
            }
            Event::DocumentEnd => {
                docs.push(root.take().unwrap_or(Node::Null));
                None
            }
            Event::Alias(id) => {
                let (node, cost) = anchors
                    .get(&id)
                    .ok_or_else(|| fail("an alias of an anchor still being read (recursive)"))?;
                // The copy costs what the anchored value cost.
                budget
                    .try_spend(usize::try_from(*cost).unwrap_or(usize::MAX))
                    .map_err(|e| fail(&e))?;
                Some((node.clone(), *cost, 0))
            }
            Event::Scalar(value, style, anchor, tag) => {
                if let Some(tag) = tag {
                    return Err(fail(&format!(
                        "invalid type: a value tagged {}, expected a YAML or JSON value",
                        tag_text(&tag)
                    )));
                }
                let node = resolve(&value, style);
                let cost = match &node {
                    Node::Str(s) => 1 + s.len(),
                    _ => 1,
                };
                budget.try_spend(cost).map_err(|e| fail(&e))?;
                Some((node, cost as u64, anchor))
            }
            Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag) => {
                if let Some(tag) = tag {
                    return Err(fail(&format!(
                        "invalid type: a collection tagged {}, expected a YAML or JSON value",
                        tag_text(&tag)
                    )));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(fail("recursion limit exceeded"));
                }
                budget.try_spend(1).map_err(|e| fail(&e))?;
                stack.push(if is_seq {
                    Open::Seq {
                        items: Vec::new(),
                        anchor,
                        cost: 1,
                    }
                } else {
                    Open::Map {
                        map: MapBuilder::default(),
                        key: None,
                        anchor,
                        cost: 1,
                    }
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Open::Seq {
                    mut items,
                    anchor,
                    cost,
                }) => {
                    items.shrink_to_fit();
                    Some((Node::Seq(items), cost, anchor))
                }
                Some(Open::Map {
                    map, anchor, cost, ..
                }) => Some((map.finish(), cost, anchor)),
                None => return Err(fail("a collection ends that was never opened")),
            },
        };
        let Some((node, cost, anchor)) = finished else {
            continue;
        };
        if anchor != 0 {
            anchors.insert(anchor, (node.clone(), cost));
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Open::Seq { items, cost: c, .. }) => {
                *c = c.saturating_add(cost);
                items.push(node);
            }
            Some(Open::Map {
                map, key, cost: c, ..
            }) => {
                *c = c.saturating_add(cost);
                match key.take() {
                    None => *key = Some(node),
                    Some(k) => map.insert(k, node).map_err(|e| fail(&e))?,
                }
            }
        }
    }
    if let Some(node) = root {
        docs.push(node);
    }
    Ok(docs)
}

/// A tag as written: `!!str` for the core schema's, else handle and suffix.
fn tag_text(tag: &saphyr_parser::Tag) -> String {
    match tag.handle.as_str() {
        "tag:yaml.org,2002:" => format!("!!{}", tag.suffix),
        handle => format!("{handle}{}", tag.suffix),
    }
}

/// `message at line L column C` (columns from 1, as serde_norway and serde_json print them).
fn at(message: &str, marker: &Marker) -> ParseError {
    ParseError(format!(
        "{message} at line {} column {}",
        marker.line(),
        marker.col() + 1
    ))
}

/// The value of an untagged scalar.
fn resolve(value: &str, style: ScalarStyle) -> Node {
    if style != ScalarStyle::Plain {
        return Node::Str(value.into());
    }
    if value.is_empty() || matches!(value, "~" | "null" | "Null" | "NULL") {
        return Node::Null;
    }
    match value {
        "true" | "True" | "TRUE" => return Node::Bool(true),
        "false" | "False" | "FALSE" => return Node::Bool(false),
        _ => {}
    }
    if let Some(int) = integer(value) {
        return Node::Int(int);
    }
    if !leading_zero_digits(value)
        && let Some(float) = float(value)
    {
        return Node::Float(float);
    }
    Node::Str(value.into())
}

/// Digits after a leading zero (`0123`, `-007`): a string in YAML 1.2, not a number.
fn leading_zero_digits(value: &str) -> bool {
    let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
    digits.len() > 1 && digits.starts_with('0') && digits[1..].bytes().all(|b| b.is_ascii_digit())
}

/// A YAML 1.2 integer within i128: optional sign, then decimal, `0x` hex, `0o` octal or
/// `0b` binary digits (no sign after a prefix, no second sign).
fn integer(value: &str) -> Option<i128> {
    let (negative, unsigned) = match value.as_bytes().first() {
        Some(b'-') => (true, &value[1..]),
        Some(b'+') => (false, &value[1..]),
        _ => (false, value),
    };
    let (radix, digits) = if let Some(rest) = unsigned.strip_prefix("0x") {
        (16, rest)
    } else if let Some(rest) = unsigned.strip_prefix("0o") {
        (8, rest)
    } else if let Some(rest) = unsigned.strip_prefix("0b") {
        (2, rest)
    } else {
        if leading_zero_digits(value) {
            return None;
        }
        (10, unsigned)
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    // Negative through the magnitude, so that i128::MIN is read.
    let magnitude = u128::from_str_radix(digits, radix).ok()?;
    if negative {
        0i128.checked_sub_unsigned(magnitude)
    } else {
        i128::try_from(magnitude).ok()
    }
}

/// A YAML 1.2 float: `.inf`/`.nan` in three spellings, or a finite decimal Rust reads.
fn float(value: &str) -> Option<f64> {
    let unsigned = match value.strip_prefix('+') {
        Some(rest) if rest.starts_with(['+', '-']) => return None,
        Some(rest) => rest,
        None => value,
    };
    match unsigned {
        ".inf" | ".Inf" | ".INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" if unsigned.len() == value.len() => return Some(f64::NAN),
        _ => {}
    }
    unsigned.parse::<f64>().ok().filter(|f| f.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        let budget = Budget::new(u64::MAX);
        parse(text, &budget).unwrap().remove(0)
    }

    /// Scalars resolve as serde_norway resolves them for an untyped value.
    #[test]
    fn scalars_resolve_as_the_core_schema() {
        let cases: [(&str, Node); 24] = [
            ("~", Node::Null),
            ("null", Node::Null),
            ("NULL", Node::Null),
            ("True", Node::Bool(true)),
            ("FALSE", Node::Bool(false)),
            ("yes", Node::Str("yes".into())),
            ("12", Node::Int(12)),
            ("+12", Node::Int(12)),
            ("-12", Node::Int(-12)),
            ("0x1f", Node::Int(31)),
            ("-0x10", Node::Int(-16)),
            ("0o17", Node::Int(15)),
            ("0b101", Node::Int(5)),
            ("0123", Node::Str("0123".into())),
            ("-007", Node::Str("-007".into())),
            ("0", Node::Int(0)),
            ("1.5", Node::Float(1.5)),
            ("1e3", Node::Float(1000.0)),
            ("-.inf", Node::Float(f64::NEG_INFINITY)),
            ("'12'", Node::Str("12".into())),
            ("\"true\"", Node::Str("true".into())),
            ("0x+1", Node::Str("0x+1".into())),
            (
                "170141183460469231731687303715884105728",
                Node::Float(1.7014118346046923e38),
            ),
            (
                "-170141183460469231731687303715884105728",
                Node::Int(i128::MIN),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(one(&format!("a: {text}\n")).get("a"), Some(&want), "{text}");
        }
        assert!(matches!(one("a: .nan\n").get("a"), Some(Node::Float(x)) if x.is_nan()));
        assert_eq!(one("a:\n").get("a"), Some(&Node::Null));
        assert_eq!(one("a: |\n  x\n").get("a"), Some(&Node::Str("x\n".into())));
    }

    #[test]
    fn anchors_tags_and_positions() {
        let doc = one("a: &x [1, {b: 2}]\nc: *x\n");
        assert_eq!(doc.get("a"), doc.get("c"));
        let err = |text: &str| parse(text, &Budget::new(u64::MAX)).unwrap_err().0;
        assert!(err("a: !!str 1\n").starts_with("invalid type: a value tagged !!str,"));
        assert!(err("a: !foo [1]\n").starts_with("invalid type: a collection tagged !foo,"));
        assert!(
            err("a: *nowhere\n").contains("line 1"),
            "{}",
            err("a: *nowhere\n")
        );
        assert_eq!(
            err("a: 1\na: 2\n"),
            "duplicate key \"a\" in a mapping at line 2 column 4"
        );
        assert!(err("a: [1\n").contains("at line"), "{}", err("a: [1\n"));
        // An anchor's cost is paid again by each alias.
        let budget = Budget::new(30);
        assert!(parse("a: &x [aaaaaaaaaa]\nb: *x\n", &budget).is_ok());
        let budget = Budget::new(25);
        assert!(parse("a: &x [aaaaaaaaaa]\nb: *x\n", &budget).is_err());
    }
}
