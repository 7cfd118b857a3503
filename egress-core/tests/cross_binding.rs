//! The cross-binding table (tests/cross-binding/table.txt) run through the Rust API: its
//! transcript must equal tests/cross-binding/expected.txt, as the C, Go and Python runs must.
//! With `EGRESS_UPDATE_CROSS_BINDING=1` it writes expected.txt instead (then read the diff:
//! the other three languages are held to it).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test runner

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use egress_core::cluster::Endpoint;
use egress_core::engine::{Engine, EngineConfig, Plan};
use egress_core::field::FieldError;
use egress_core::lookup::Verdict;
use egress_core::snapshot;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load() -> Engine {
    let text =
        std::fs::read_to_string(root().join("examples/snapshots/seed-gateway-group.yaml")).unwrap();
    Engine::load_snapshot(&text, None, "local_node", EngineConfig::new(""))
        .unwrap()
        .engine
}

/// `-` is an empty field.
fn field(s: &str) -> &str {
    if s == "-" { "" } else { s }
}

fn list(s: &str) -> Vec<&str> {
    field(s).split(',').filter(|x| !x.is_empty()).collect()
}

fn labels(s: &str) -> BTreeMap<String, String> {
    list(s)
        .into_iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn error_line(e: &FieldError) -> String {
    format!("error {} {}", e.path, e.reason)
}

fn core_error(e: &egress_core::Error) -> String {
    error_line(&e.field_errors()[0])
}

fn verdict_line(v: Verdict) -> String {
    let kind = v.kind().name();
    match v {
        Verdict::Forward { gateway } => format!("verdict {kind} {gateway} - -"),
        Verdict::Masquerade { egress_ip, ifindex } => {
            format!("verdict {kind} - {egress_ip} {ifindex}")
        }
        _ => format!("verdict {kind} - - -"),
    }
}

/// The document form of an endpoint step, as every runner writes it.
fn endpoint_json(args: &[&str]) -> String {
    let ips: Vec<String> = list(args[3]).iter().map(|ip| format!("\"{ip}\"")).collect();
    let labels: Vec<String> = labels(args[4])
        .iter()
        .map(|(k, v)| format!("\"{k}\": \"{v}\""))
        .collect();
    format!(
        "{{\"uid\": \"{}\", \"namespace\": \"{}\", \"node\": \"{}\", \"ips\": [{}], \"labels\": {{{}}}}}",
        field(args[0]),
        field(args[1]),
        field(args[2]),
        ips.join(", "),
        labels.join(", ")
    )
}

fn run(table: &str) -> String {
    let mut engine = load();
    let other = load();
    let mut plans: HashMap<String, Plan> = HashMap::new();
    let mut out = String::new();
    for (n, line) in table.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split(' ').collect();
        let (op, args) = (words[0], &words[1..]);
        let ip = |i: usize| args[i].parse::<IpAddr>().unwrap();
        let result = match op {
            "lookup" => match engine.query(ip(0), ip(1)) {
                Ok(v) => verdict_line(v),
                Err(e) => error_line(&e),
            },
            "explain" => match egress_core::lookup::query_addresses(ip(0), ip(1)) {
                Ok((src, dst)) => {
                    let x = engine.explain(src, dst);
                    format!(
                        "explain {} {} {}",
                        x.source,
                        x.verdict.kind().name(),
                        x.source_entries
                    )
                }
                Err(e) => error_line(&e),
            },
            "endpoint" => {
                let endpoint = Endpoint {
                    uid: field(args[0]).to_owned(),
                    namespace: Some(field(args[1]).to_owned()),
                    node: Some(field(args[2]).to_owned()),
                    ips: list(args[3]).iter().map(|s| s.parse().unwrap()).collect(),
                    labels: labels(args[4]).into(),
                    ..Endpoint::default()
                };
                match engine.upsert_endpoint(endpoint) {
                    Ok(()) => "ok".to_owned(),
                    Err(e) => core_error(&e),
                }
            }
            "endpoint-doc" => {
                let read = snapshot::parse_endpoint(&endpoint_json(args))
                    .and_then(|ep| engine.upsert_read_endpoint(ep));
                match read {
                    Ok(()) => "ok".to_owned(),
                    Err(e) => core_error(&e),
                }
            }
            "namespace" => match engine.upsert_namespace(args[0], labels(args[1])) {
                Ok(()) => "ok".to_owned(),
                Err(e) => core_error(&e),
            },
            "take" | "take-other" => {
                let from = if op == "take" { &engine } else { &other };
                let plan = from.take_plan().unwrap();
                let line = format!("plan {}", plan.len());
                plans.insert(args[0].to_owned(), plan);
                line
            }
            "ack" => {
                let plan = &plans[args[0]];
                let applied = match args[1] {
                    "all" => plan.len(),
                    n => n.parse().unwrap(),
                };
                match engine.ack(plan, applied) {
                    Ok(()) => "ok".to_owned(),
                    Err(e) => error_line(&e.to_field_error()),
                }
            }
            "adopt-empty" => {
                engine.adopt(Vec::new()).unwrap();
                "ok".to_owned()
            }
            "stats" => {
                let s = engine.stats();
                format!(
                    "stats {} {} {} {}",
                    s.desired_v4, s.desired_v6, s.programmed_v4, s.programmed_v6
                )
            }
            other => panic!("table line {}: unknown step {other:?}", n + 1),
        };
        out.push_str(&format!("{line}\n=> {result}\n"));
    }
    out
}

#[test]
fn the_cross_binding_table_gives_the_expected_transcript() {
    let dir = root().join("tests/cross-binding");
    let table = std::fs::read_to_string(dir.join("table.txt")).unwrap();
    let got = run(&table);
    let expected = dir.join("expected.txt");
    if std::env::var_os("EGRESS_UPDATE_CROSS_BINDING").is_some() {
        std::fs::write(&expected, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&expected).unwrap();
    assert!(
        got == want,
        "the Rust transcript differs from {}:\n{}",
        expected.display(),
        diff(&want, &got)
    );
}

fn diff(want: &str, got: &str) -> String {
    want.lines()
        .zip(got.lines())
        .filter(|(w, g)| w != g)
        .map(|(w, g)| format!("- {w}\n+ {g}\n"))
        .collect::<String>()
        + &format!(
            "({} lines expected, {} written)",
            want.lines().count(),
            got.lines().count()
        )
}
