//! `egressctl explain`: the verdict for one packet, and why.

use std::net::IpAddr;

use egress_core::cluster::Endpoint;
use egress_core::engine::{Engine, EngineConfig};
use egress_core::labels::Labels;
use egress_core::lookup::Verdict;
use egress_core::policy::PolicySelectors;
use egress_core::render;
use egress_core::snapshot::Snapshot;

use crate::cli::{ExplainArgs, TextOrJson};
use crate::diagnostics;
use crate::input::load_for_node;
use crate::{Failure, emit, emit_data};

pub(crate) fn run(args: &ExplainArgs) -> Result<(), Failure> {
    let (snapshot, node) = load_for_node(&args.files, &args.node, args.strict)?;
    diagnostics::print_policy_diagnostics(&snapshot);
    let src = source_ip(&snapshot, &args.src, args.dst)?;
    if src.is_ipv4() != args.dst.is_ipv4() {
        return Err(Failure::Usage(format!(
            "--src {src} and --dst {}: addresses of different families (no packet has both)",
            args.dst
        )));
    }
    let config = EngineConfig {
        selection: args.node.selection.into(),
        ..EngineConfig::new(node).with_cilium_version(args.node.version.cilium_version)
    };
    let engine = Engine::from_snapshot(&snapshot, config).0;
    let explanation = engine.explain(src, args.dst);
    match args.output {
        TextOrJson::Text => {
            let names = |uid: &str| {
                snapshot
                    .endpoints
                    .iter()
                    .find(|e| e.uid == uid)
                    .map(|e| render::escape_cell(&e.display_name()).into_owned())
            };
            let mut text = explanation.render(&names);
            let known = snapshot.endpoints.iter().find(|e| e.ips.contains(&src));
            // No policy selects the pod at all (the engine says so when one selects it but
            // has no destination of its family): which selector term fails, per policy.
            if let (Verdict::NoEntry, 0, true, Some(ep)) = (
                explanation.verdict,
                explanation.source_entries,
                explanation.selected_without_entry.is_empty(),
                known,
            ) {
                text.push_str(&why_not_selected(ep, &selection(&snapshot, ep)));
            }
            emit(&text);
        }
        TextOrJson::Json => {
            emit_data(&render::json_text(&render::explanation_json(&explanation)));
        }
    }
    Ok(())
}

/// `--src`: an IP, or `NAMESPACE/POD` — that pod's address of the destination's family.
fn source_ip(snapshot: &Snapshot, src: &str, dst: IpAddr) -> Result<IpAddr, Failure> {
    if let Ok(ip) = src.parse() {
        return Ok(ip);
    }
    let Some((namespace, pod)) = src.split_once('/') else {
        return Err(Failure::Usage(format!(
            "--src {src:?}: not an IP address or NAMESPACE/POD"
        )));
    };
    let ep = snapshot
        .endpoints
        .iter()
        .find(|e| e.namespace.as_deref() == Some(namespace) && e.name.as_deref() == Some(pod))
        .ok_or_else(|| {
            Failure::Input(format!(
                "--src {src}: Not found: no pod {pod} in namespace {namespace} in the input"
            ))
        })?;
    ep.ips
        .iter()
        .copied()
        .find(|ip| ip.is_ipv4() == dst.is_ipv4())
        .ok_or_else(|| {
            let family = if dst.is_ipv4() { "IPv4" } else { "IPv6" };
            Failure::Input(format!(
                "--src {src}: the pod has no {family} address (it has {:?}) for --dst {dst}",
                ep.ips
            ))
        })
}

/// Every valid policy's name and, when it does not select a known endpoint, why
/// (`PolicySelectors::why_not`; `None`: it selects it).
fn selection(snapshot: &Snapshot, ep: &Endpoint) -> Vec<(String, Option<Vec<String>>)> {
    let identity = ep.identity(snapshot.cluster.as_deref());
    let no_labels = Labels::default();
    let node_labels = ep
        .node
        .as_deref()
        .and_then(|n| snapshot.nodes.get(n))
        .map_or(&no_labels, |n| &n.labels);
    snapshot
        .policies
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .map(|p| {
            let why = PolicySelectors::compile(p).why_not(&identity, node_labels);
            (p.name.clone(), why)
        })
        .collect()
}

/// For a known endpoint no policy selects: why each valid policy does not.
fn why_not_selected(ep: &Endpoint, selection: &[(String, Option<Vec<String>>)]) -> String {
    let mut out = String::new();
    for (policy, reasons) in selection {
        for reason in reasons.iter().flatten() {
            let line = format!("{policy}: {reason}");
            out.push_str(&format!("    {}\n", render::escape_cell(&line)));
        }
    }
    if out.is_empty() {
        return out;
    }
    format!(
        "  why no policy selects {}:\n{out}",
        render::escape_cell(&ep.display_name())
    )
}
