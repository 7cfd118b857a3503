//! YAML text into [`Value`] trees, one event at a time.
//!
//! serde's YAML deserializers load every event of a document before the first value is
//! built (a 25 MB snapshot held ~500 MB of events beside its tree); this reader builds the
//! tree while the parser streams, so a document costs its tree and one stack of open
//! collections. Scalars are resolved by YAML 1.2's core schema, as the serde_yaml family
//! resolves them for an untyped value (what the readers of Kubernetes objects expect): plain `~`/`null`/empty is null, `true`/`false` (three
//! spellings) booleans, decimal/`0x`/`0o`/`0b` integers (a leading zero makes a string; a
//! positive one past i128 is refused, "integer out of range"), floats with `.inf`/`.nan`;
//! quoted and block scalars are strings; core-schema tags (`!!str`, `!!int`, ...) force a
//! type, local tags (`!foo`) are refused. Aliases repeat what their anchor holds: each copy,
//! and the anchor's own, is paid for from the document's [`Budget`], and counts its depth
//! against the nesting limit.
//!
//! The parser is saphyr-parser's, not libyaml's: a few inputs libyaml refused are read (a
//! control character in a scalar, a document after `...`, an unknown `%` directive) and one
//! it read is refused (a tab right after `:` before a plain value); error texts differ.

use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Tag};

use super::{Budget, MapBuilder, ParseError, Value};

/// The nesting limit, serde_json's (and the serde_yaml family's) recursion limit: 128 nested
/// collections are read.
const MAX_DEPTH: usize = 128;

/// An open collection: what its finished children cost (for its anchor's aliases), how
/// deep they go, where it began.
enum Open {
    Seq {
        items: Vec<Value>,
        frame: Frame,
    },
    Map {
        map: MapBuilder,
        /// The key read, waiting for its value, and where it began.
        key: Option<(Value, Marker)>,
        frame: Frame,
    },
}

struct Frame {
    anchor: usize,
    cost: u64,
    /// Levels of collections below this one.
    depth: usize,
    start: Marker,
}

/// A value read whole.
struct Finished {
    node: Value,
    cost: u64,
    /// Levels of collections it holds (a scalar: 0, `[1]`: 1).
    depth: usize,
    anchor: usize,
    start: Marker,
}

/// The documents of a YAML stream; empty documents are skipped by the caller.
pub(super) fn parse(text: &str, budget: &Budget) -> Result<Vec<Value>, ParseError> {
    // YAML text cannot hold a NUL (it is not printable); the parser would take one for the
    // end of the text and report an unfinished scalar: said as what it is, where it is.
    if let Some(at_byte) = text.find('\0') {
        let before = &text[..at_byte];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        return Err(ParseError(format!(
            "found a NUL byte (\\0), which YAML text cannot hold, at line {line} column {column}"
        )));
    }
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    // Anchored values, their cost and depth, by the parser's anchor id; and the anchors of
    // the collections still open (an alias of one would contain itself).
    let mut anchors: HashMap<usize, (Value, u64, usize)> = HashMap::new();
    let mut open_anchors: HashSet<usize> = HashSet::new();
    let mut root: Option<Value> = None;
    let spend = |units: u64, marker: &Marker| {
        budget
            .try_spend(usize::try_from(units).unwrap_or(usize::MAX))
            .map_err(|e| at(&e, marker))
    };
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| at(e.info(), e.marker()))?;
        let fail = |message: &str| at(message, &span.start);
        let is_seq = matches!(event, Event::SequenceStart(..));
        let finished: Option<Finished> = match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing => None,
            Event::DocumentStart(_) => {
                anchors.clear();
                None
            }
            Event::DocumentEnd => {
                docs.push(root.take().unwrap_or(Value::Null));
                None
            }
            Event::Alias(id) => {
                let Some((node, cost, depth)) = anchors.get(&id) else {
                    return Err(fail(if open_anchors.contains(&id) {
                        "an alias of an anchor still being read (recursive)"
                    } else {
                        "an alias of an anchor this document does not define"
                    }));
                };
                // The copy is as deep as the anchored value, and costs what it cost.
                if stack.len() + depth > MAX_DEPTH {
                    return Err(fail("recursion limit exceeded"));
                }
                spend(*cost, &span.start)?;
                Some(Finished {
                    node: node.clone(),
                    cost: *cost,
                    depth: *depth,
                    anchor: 0,
                    start: span.start,
                })
            }
            Event::Scalar(value, style, anchor, tag) => {
                let node = resolve(&value, style, tag.as_deref()).map_err(|e| fail(&e))?;
                let cost = match &node {
                    Value::Str(s) => 1 + s.len() as u64,
                    _ => 1,
                };
                spend(cost, &span.start)?;
                Some(Finished {
                    node,
                    cost,
                    depth: 0,
                    anchor,
                    start: span.start,
                })
            }
            Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag) => {
                // Core-schema tags (`!!seq`, `!!map`) change nothing; local ones are refused.
                if let Some(tag) = tag
                    && tag.handle != CORE_TAGS
                {
                    return Err(fail(&format!(
                        "invalid type: a collection tagged {}, expected a YAML or JSON value",
                        tag_text(&tag)
                    )));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(fail("recursion limit exceeded"));
                }
                spend(1, &span.start)?;
                if anchor != 0 {
                    open_anchors.insert(anchor);
                }
                let frame = Frame {
                    anchor,
                    cost: 1,
                    depth: 0,
                    start: span.start,
                };
                stack.push(if is_seq {
                    Open::Seq {
                        items: Vec::new(),
                        frame,
                    }
                } else {
                    Open::Map {
                        map: MapBuilder::default(),
                        key: None,
                        frame,
                    }
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, frame) = match stack.pop() {
                    Some(Open::Seq { mut items, frame }) => {
                        items.shrink_to_fit();
                        (Value::Seq(items), frame)
                    }
                    Some(Open::Map { map, frame, .. }) => (map.finish(), frame),
                    None => return Err(fail("a collection ends that was never opened")),
                };
                open_anchors.remove(&frame.anchor);
                Some(Finished {
                    node,
                    cost: frame.cost,
                    depth: frame.depth + 1,
                    anchor: frame.anchor,
                    start: frame.start,
                })
            }
        };
        let Some(done) = finished else {
            continue;
        };
        if done.anchor != 0 {
            // The anchor's own copy is paid for too.
            spend(done.cost, &done.start)?;
            anchors.insert(done.anchor, (done.node.clone(), done.cost, done.depth));
        }
        let parent = match stack.last_mut() {
            None => {
                root = Some(done.node);
                continue;
            }
            Some(Open::Seq { frame, .. } | Open::Map { frame, .. }) => frame,
        };
        parent.cost = parent.cost.saturating_add(done.cost);
        parent.depth = parent.depth.max(done.depth);
        match stack.last_mut() {
            Some(Open::Seq { items, .. }) => items.push(done.node),
            Some(Open::Map { map, key, .. }) => match key.take() {
                None => *key = Some((done.node, done.start)),
                // A duplicate is reported where its key begins.
                Some((k, key_at)) => map.insert(k, done.node).map_err(|e| at(&e, &key_at))?,
            },
            None => {}
        }
    }
    if let Some(node) = root {
        docs.push(node);
    }
    Ok(docs)
}

/// The handle of the YAML core schema's tags (`!!str` is this with `str`).
const CORE_TAGS: &str = "tag:yaml.org,2002:";

/// A tag as written: `!!str` for the core schema's, else handle and suffix.
fn tag_text(tag: &Tag) -> String {
    match tag.handle.as_str() {
        CORE_TAGS => format!("!!{}", tag.suffix),
        handle => format!("{handle}{}", tag.suffix),
    }
}

/// `message at line L column C` (columns from 1, as serde_json prints them: one position
/// format for both readers).
fn at(message: &str, marker: &Marker) -> ParseError {
    ParseError(format!(
        "{message} at line {} column {}",
        marker.line(),
        marker.col() + 1
    ))
}

/// The value of a scalar, as the serde_yaml family reads it into an untyped value: untagged
/// plain scalars by the core schema, quoted and block ones as strings; a core-schema tag
/// (`!!str`, `!!int`, `!!float`, `!!bool`, `!!null`) forces its type — other core tags
/// (`!!binary`, `!!timestamp`) leave the text —, a local tag (`!foo`) is refused.
fn resolve(value: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    let Some(tag) = tag else {
        return untagged(value, style);
    };
    if tag.handle != CORE_TAGS {
        return Err(format!(
            "invalid type: a value tagged {}, expected a YAML or JSON value",
            tag_text(tag)
        ));
    }
    let invalid = |what: &str| format!("invalid value: string {value:?}, expected {what}");
    match tag.suffix.as_str() {
        "int" => match integer(value) {
            Some(Integer::Value(i)) => Ok(Value::Int(i)),
            Some(Integer::OutOfRange) => Err("integer out of range".to_owned()),
            None => Err(invalid("an integer")),
        },
        "float" => float(value)
            .map(Value::Float)
            .ok_or_else(|| invalid("a float")),
        "bool" => boolean(value)
            .map(Value::Bool)
            .ok_or_else(|| invalid("a boolean")),
        "null" if is_null(value) => Ok(Value::Null),
        "null" => Err(invalid("null")),
        _ => Ok(Value::Str(value.into())),
    }
}

/// An untagged scalar.
fn untagged(value: &str, style: ScalarStyle) -> Result<Value, String> {
    if style != ScalarStyle::Plain {
        return Ok(Value::Str(value.into()));
    }
    if value.is_empty() || is_null(value) {
        return Ok(Value::Null);
    }
    if let Some(b) = boolean(value) {
        return Ok(Value::Bool(b));
    }
    match integer(value) {
        Some(Integer::Value(i)) => return Ok(Value::Int(i)),
        // Past what the tree's i128 holds: refused, not read as a float or a string.
        Some(Integer::OutOfRange) => return Err("integer out of range".to_owned()),
        None => {}
    }
    if !leading_zero_digits(value)
        && let Some(float) = float(value)
    {
        return Ok(Value::Float(float));
    }
    Ok(Value::Str(value.into()))
}

fn is_null(value: &str) -> bool {
    matches!(value, "~" | "null" | "Null" | "NULL")
}

fn boolean(value: &str) -> Option<bool> {
    match value {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// An integer scalar: its value, or a positive one above i128's range but within u128's.
enum Integer {
    Value(i128),
    OutOfRange,
}

/// Digits after a leading zero (`0123`, `-007`): a string in YAML 1.2, not a number.
fn leading_zero_digits(value: &str) -> bool {
    let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
    digits.len() > 1 && digits.starts_with('0') && digits[1..].bytes().all(|b| b.is_ascii_digit())
}

/// A YAML 1.2 integer: optional sign, then decimal, `0x` hex, `0o` octal or `0b` binary
/// digits (no sign after a prefix, no second sign). Negative ones down to i128's minimum;
/// positive ones above i128's maximum but within u128's are [`Integer::OutOfRange`].
fn integer(value: &str) -> Option<Integer> {
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
        0i128.checked_sub_unsigned(magnitude).map(Integer::Value)
    } else {
        Some(i128::try_from(magnitude).map_or(Integer::OutOfRange, Integer::Value))
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

    fn one(text: &str) -> Value {
        let budget = Budget::new(u64::MAX);
        parse(text, &budget).unwrap().remove(0)
    }

    fn err(text: &str) -> String {
        parse(text, &Budget::new(u64::MAX)).unwrap_err().0
    }

    /// Scalars resolve by the core schema, as an untyped value.
    #[test]
    fn scalars_resolve_as_the_core_schema() {
        let cases: [(&str, Value); 25] = [
            ("~", Value::Null),
            ("null", Value::Null),
            ("NULL", Value::Null),
            ("True", Value::Bool(true)),
            ("FALSE", Value::Bool(false)),
            ("yes", Value::Str("yes".into())),
            ("12", Value::Int(12)),
            ("+12", Value::Int(12)),
            ("-12", Value::Int(-12)),
            ("0x1f", Value::Int(31)),
            ("-0x10", Value::Int(-16)),
            ("0o17", Value::Int(15)),
            ("0b101", Value::Int(5)),
            ("0123", Value::Str("0123".into())),
            ("-007", Value::Str("-007".into())),
            ("0", Value::Int(0)),
            ("1.5", Value::Float(1.5)),
            ("1e3", Value::Float(1000.0)),
            ("-.inf", Value::Float(f64::NEG_INFINITY)),
            ("'12'", Value::Str("12".into())),
            ("\"true\"", Value::Str("true".into())),
            ("0x+1", Value::Str("0x+1".into())),
            (
                "-170141183460469231731687303715884105728",
                Value::Int(i128::MIN),
            ),
            // Past u128: not an integer at all.
            (
                "340282366920938463463374607431768211456",
                Value::Float(3.402823669209385e38),
            ),
            (
                "0x1ffffffffffffffffffffffffffffffff",
                Value::Str("0x1ffffffffffffffffffffffffffffffff".into()),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(one(&format!("a: {text}\n")).get("a"), Some(&want), "{text}");
        }
        assert!(matches!(one("a: .nan\n").get("a"), Some(Value::Float(x)) if x.is_nan()));
        assert_eq!(one("a:\n").get("a"), Some(&Value::Null));
        assert_eq!(one("a: |\n  x\n").get("a"), Some(&Value::Str("x\n".into())));
        // Past i128 but within u128, decimal or not: refused.
        for big in [
            "170141183460469231731687303715884105728",
            "0xffffffffffffffffffffffffffffffff",
        ] {
            assert!(err(&format!("a: {big}\n")).starts_with("integer out of range at line 1"));
        }
    }

    /// Core-schema tags force a type (or leave the text); local tags are refused.
    #[test]
    fn tags() {
        assert_eq!(one("a: !!str 1\n").get("a"), Some(&Value::Str("1".into())));
        assert_eq!(one("a: !!int '12'\n").get("a"), Some(&Value::Int(12)));
        assert_eq!(one("a: !!float 1\n").get("a"), Some(&Value::Float(1.0)));
        assert_eq!(one("a: !!bool 'true'\n").get("a"), Some(&Value::Bool(true)));
        assert_eq!(one("a: !!null ~\n").get("a"), Some(&Value::Null));
        assert_eq!(
            one("a: !!binary aGk=\n").get("a"),
            Some(&Value::Str("aGk=".into()))
        );
        assert_eq!(one("a: !!map {b: 1}\n").get("a"), Some(&one("b: 1\n")));
        assert!(
            err("a: !!int x\n").starts_with("invalid value: string \"x\", expected an integer")
        );
        assert!(err("a: !!bool yes\n").contains("expected a boolean"));
        assert!(err("a: !foo 1\n").starts_with("invalid type: a value tagged !foo,"));
        assert!(err("a: !foo [1]\n").starts_with("invalid type: a collection tagged !foo,"));
    }

    /// A NUL byte, quoted or not, is said as one where it is (the parser took it for the end
    /// of the text: "unexpected end of stream").
    #[test]
    fn a_nul_byte_is_named_where_it_is() {
        for (text, column) in [("a: \"x\0y\"\n", 6), ("a: 'x\0y'\n", 6), ("a: x\0y\n", 5)] {
            assert_eq!(
                err(text),
                format!(
                    "found a NUL byte (\\0), which YAML text cannot hold, at line 1 column {column}"
                ),
                "{text:?}"
            );
        }
        assert!(err("a: 1\nb: é\0\n").ends_with("at line 2 column 5"));
    }

    #[test]
    fn anchors_and_positions() {
        let doc = one("a: &x [1, {b: 2}]\nc: *x\n");
        assert_eq!(doc.get("a"), doc.get("c"));
        assert!(
            err("a: *nowhere\n").contains("line 1"),
            "{}",
            err("a: *nowhere\n")
        );
        // Anchors do not cross documents.
        assert!(
            err("a: &x 1\n---\nb: *x\n")
                .starts_with("an alias of an anchor this document does not define")
        );
        assert_eq!(
            err("a: 1\na: 2\n"),
            "duplicate key \"a\" in a mapping at line 2 column 1"
        );
        // Where the duplicate key is, not where its value ends.
        assert_eq!(
            err("a: 1\nb: 2\na:\n  b: 2\n  c: 3\n\nx: y\n"),
            "duplicate key \"a\" in a mapping at line 3 column 1"
        );
        assert!(err("a: [1\n").contains("at line"), "{}", err("a: [1\n"));
        // The anchor's own copy and each alias pay the anchored value's cost: map 1, keys
        // 2 + 2, the sequence 1 + 11, its anchored copy 12, the alias 12.
        let text = "a: &x [aaaaaaaaaa]\nb: *x\n";
        assert!(parse(text, &Budget::new(41)).is_ok());
        assert!(parse(text, &Budget::new(40)).is_err());
    }

    /// An alias counts the depth of what it repeats: 100 levels anchored, then repeated
    /// under 28 levels (128 in all) is read, under 29 refused — a chain of such aliases
    /// cannot build a tree deeper than the limit.
    #[test]
    fn aliases_count_their_depth() {
        let anchored = format!("x: &d {}{}\n", "[".repeat(100), "]".repeat(100));
        let under = |levels: usize| {
            format!(
                "{anchored}z: {}*d{}\n",
                "[".repeat(levels - 1),
                "]".repeat(levels - 1)
            )
        };
        assert!(parse(&under(28), &Budget::new(u64::MAX)).is_ok());
        assert!(
            err(&under(29)).starts_with("recursion limit exceeded"),
            "{}",
            err(&under(29))
        );
    }
}
