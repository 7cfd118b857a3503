//! The floors of egress-core (issue 22): no import cycle between its top-level modules.
//! Reads the non-test source of each top-level module (its file, and its directory's files),
//! takes every `crate::name` it refers to in code (doc comments and `#[cfg(test)]` modules
//! left out; grouped `use crate::{a, b::c}` included; names the crate root re-exports
//! resolved to their module), and fails on any strongly connected set of two or more
//! modules, naming each and the edges that close it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level modules (`pub mod x;` / `mod x;` in lib.rs) and the root's re-exports
/// (`pub use module::{Name, ...}`: name -> module).
fn root() -> (Vec<String>, BTreeMap<String, String>) {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let code: String = code_lines(&lib)
        .into_iter()
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let mut modules = Vec::new();
    let mut reexports = BTreeMap::new();
    // Whole statements: a `pub use` may span lines.
    for statement in code
        .split(';')
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
    {
        let statement = statement.trim();
        let statement = statement
            .rsplit_once(']')
            .map_or(statement, |(_, rest)| rest.trim()); // after attributes
        if let Some(rest) = statement
            .strip_prefix("pub mod ")
            .or_else(|| statement.strip_prefix("mod "))
        {
            modules.push(rest.trim().to_owned());
        } else if let Some(rest) = statement
            .strip_prefix("pub use ")
            .or_else(|| statement.strip_prefix("pub(crate) use "))
        {
            let rest = rest
                .trim_start_matches("crate::")
                .trim_start_matches("self::");
            if let Some((module, names)) = rest.split_once("::") {
                for name in names.trim_matches(|c| c == '{' || c == '}').split(',') {
                    let name = name.trim();
                    let name = name.rsplit(" as ").next().unwrap_or(name);
                    if !name.is_empty() {
                        reexports.insert(name.to_owned(), module.to_owned());
                    }
                }
            }
        }
    }
    (modules, reexports)
}

/// The lines of code, numbered from 1: doc and line comments dropped, and every item under a
/// `#[cfg(test)]` (a test module, a test-only function) left out.
fn code_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    // Inside a test-only item: its brace depth once it opened (None: not yet opened).
    let mut skipping: Option<Option<i32>> = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            skipping = Some(None);
            continue;
        }
        if let Some(depth) = skipping {
            let opened = line.matches('{').count() as i32;
            let closed = line.matches('}').count() as i32;
            let now = depth.unwrap_or(0) + opened - closed;
            let ended = (depth.is_some() || opened > 0) && now <= 0;
            // A one-line item (`use ...;`, `mod x;`) ends where it is.
            let one_line = depth.is_none() && opened == 0 && trimmed.ends_with(';');
            skipping = if ended || one_line {
                None
            } else {
                Some(if depth.is_some() || opened > 0 {
                    Some(now)
                } else {
                    None
                })
            };
            continue;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        out.push((n + 1, line.split(" //").next().unwrap_or(line)));
    }
    out
}

/// The files of a top-level module: `src/m.rs` or `src/m/mod.rs`, and every `.rs` below
/// `src/m/` but test files (`tests.rs`, a `tests/` directory).
fn files_of(module: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let single = src().join(format!("{module}.rs"));
    if single.exists() {
        files.push(single);
    }
    let mut dirs = vec![src().join(module)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if path.is_dir() {
                if name != "tests" {
                    dirs.push(path);
                }
            } else if name.ends_with(".rs") && name != "tests.rs" {
                files.push(path);
            }
        }
    }
    files
}

/// The first path segments after every `crate::` in the code: `crate::a::B` gives `a`,
/// `crate::{a::B, c}` gives `a` and `c`.
fn crate_refs(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue; // `egress_crate::` and `$crate::` are not this crate's paths
        }
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group, nested braces skipped.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            out.push(first_segment(&item));
        } else {
            out.push(first_segment(rest));
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

fn first_segment(path: &str) -> String {
    path.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Module -> the modules its code refers to (itself left out), with one place each edge
/// comes from.
fn graph() -> BTreeMap<String, BTreeMap<String, String>> {
    let (modules, reexports) = root();
    let known: BTreeSet<&str> = modules.iter().map(String::as_str).collect();
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut unresolved = Vec::new();
    for module in &modules {
        let out = edges.entry(module.clone()).or_default();
        for file in files_of(module) {
            let text = std::fs::read_to_string(&file).unwrap();
            let lines = code_lines(&text);
            // The file's code as one text (a grouped `use` spans lines), each line's start
            // offset kept to name where a reference is.
            let mut code = String::new();
            let mut starts = Vec::new();
            for (n, line) in &lines {
                starts.push((code.len(), *n));
                code.push_str(line);
                code.push('\n');
            }
            for (offset, name) in crate_refs_at(&code) {
                let target = if known.contains(name.as_str()) {
                    name.clone()
                } else if let Some(m) = reexports.get(&name) {
                    m.clone()
                } else {
                    unresolved.push(format!("{}: crate::{name}", file.display()));
                    continue;
                };
                if &target != module {
                    let line = starts
                        .iter()
                        .rev()
                        .find(|(start, _)| *start <= offset)
                        .map_or(0, |(_, n)| *n);
                    let at = format!("{}:{line}", file.strip_prefix(src()).unwrap().display());
                    out.entry(target).or_insert(at);
                }
            }
        }
    }
    assert!(
        unresolved.is_empty(),
        "references the test cannot resolve (a module or a root re-export): {unresolved:?}"
    );
    edges
}

/// [`crate_refs`] of a whole text, each with the offset of its `crate::`.
fn crate_refs_at(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::") {
        let start = from + at;
        // The statement or expression the reference is in, to its end (a `;`, `{` or line).
        let rest = &code[start..];
        let end = if rest["crate::".len()..].starts_with('{') {
            // The matching brace: groups nest (`crate::{a::{B, C}, d}`).
            let mut depth = 0;
            rest.char_indices()
                .find(|&(_, c)| {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => return false,
                    }
                    depth == 0
                })
                .map_or(rest.len(), |(i, _)| i + 1)
        } else {
            rest.find(['\n', ';']).unwrap_or(rest.len())
        };
        let piece = &code[start.saturating_sub(1)..start + end];
        let piece = if start == 0 { &code[..end] } else { piece };
        for name in crate_refs(piece) {
            out.push((start, name));
        }
        from = start + "crate::".len();
    }
    out
}

/// The strongly connected sets of two or more modules (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let targets: Vec<&'a str> = s.edges[v].keys().map(String::as_str).collect();
        for w in targets {
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut set = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                set.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if set.len() > 1 {
                set.sort();
                s.found.push(set);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn the_reference_reader_finds_paths_and_groups() {
    let grouped = "use crate::{\n    cluster::{Node, Nodes},\n    maps::MapId,\n};\nfn f() { crate::netip::x(); }\n";
    let names: Vec<String> = crate_refs_at(grouped).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["cluster", "maps", "netip"]);
    let text = "use crate::a::X;\n#[cfg(test)]\nfn helper() {\n    crate::b::y();\n}\n/// crate::c\nfn real() { crate::d::z(); }\n#[cfg(test)]\nuse crate::e;\n#[cfg(test)]\nmod tests {\n    use crate::f;\n}\n";
    let lines: Vec<(usize, &str)> = code_lines(text);
    let refs: Vec<String> = lines.iter().flat_map(|(_, l)| crate_refs(l)).collect();
    assert_eq!(refs, ["a", "d"]);
    assert_eq!(lines.last().unwrap().0, 7);
    assert_eq!(
        crate_refs("use crate::{cluster::{Node, Nodes}, Error, maps::MapId};"),
        ["cluster", "Error", "maps"]
    );
    assert_eq!(
        crate_refs("let x = crate::netip::parse(a) + $crate::no + egress_crate::no;"),
        ["netip"]
    );
    let found = cycles(&BTreeMap::from([
        ("a".into(), BTreeMap::from([("b".into(), String::new())])),
        ("b".into(), BTreeMap::from([("a".into(), String::new())])),
        ("c".into(), BTreeMap::from([("a".into(), String::new())])),
    ]));
    assert_eq!(found, [vec!["a".to_owned(), "b".to_owned()]]);
}

#[test]
fn no_module_of_egress_core_is_in_an_import_cycle() {
    let edges = graph();
    assert!(edges.len() >= 15, "{:?}", edges.keys());
    let found = cycles(&edges);
    let mut report = String::new();
    for set in &found {
        report.push_str(&format!(
            "cycle of {} modules: {}\n",
            set.len(),
            set.join(", ")
        ));
        for from in set {
            for (to, at) in &edges[from] {
                if set.contains(to) {
                    report.push_str(&format!("  {from} -> {to}  ({at})\n"));
                }
            }
        }
    }
    assert!(found.is_empty(), "{report}");
}
