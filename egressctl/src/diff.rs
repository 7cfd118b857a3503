//! `egressctl diff`: the plan that turns OLD's maps into NEW's, NEW applied to OLD as updates.

use std::collections::BTreeMap;

use egress_core::compact::CompactElement;
use egress_core::engine::{Action, Engine, EngineConfig, OpSubject};
use egress_core::entries::{EntryChange, GatewayChoice};
use egress_core::render;
use egress_core::version::CiliumVersion;

use crate::cli::DiffArgs;
use crate::diagnostics;
use crate::input::{load_for_node, load_for_node_as};
use crate::{Failure, emit};

pub(crate) fn run(args: &DiffArgs) -> Result<(), Failure> {
    if let Some(to) = args.to_cilium_version {
        return upgrade(args, to);
    }
    let what_if = args.drain.as_deref().or(args.without_node.as_deref());
    let (old, node, new, new_path) = match (args.files.as_slice(), what_if) {
        ([old_path, new_path], None) => {
            let (old, node) = load_for_node(std::slice::from_ref(old_path), &args.node, false)?;
            let (new, _) = load_for_node(std::slice::from_ref(new_path), &args.node, false)?;
            (old, node, new, new_path.clone())
        }
        ([path], Some(changed)) => {
            let (old, node) = load_for_node(std::slice::from_ref(path), &args.node, false)?;
            let mut new = old.clone();
            let flag = if args.drain.is_some() {
                "--drain"
            } else {
                "--without-node"
            };
            if !new.nodes.contains_key(changed) {
                return Err(Failure::Input(format!(
                    "{flag}: Not found: {changed:?} (not a node of {})",
                    path.display()
                )));
            }
            if args.drain.is_some() {
                if let Some(n) = new.nodes.get_mut(changed) {
                    n.weight = 0;
                }
            } else {
                new.nodes.remove(changed);
            }
            (old, node, new, path.clone())
        }
        (files, None) => {
            return Err(Failure::Usage(format!(
                "diff takes exactly two files (-f OLD -f NEW), got {}",
                files.len()
            )));
        }
        (files, Some(_)) => {
            return Err(Failure::Usage(format!(
                "diff --drain/--without-node takes exactly one file, got {}",
                files.len()
            )));
        }
    };
    if !new.nodes.contains_key(&node) {
        let gone = match what_if {
            Some(_) => "is the node --without-node removes".to_owned(),
            None => format!("is not in NEW ({}: deleted there)", new_path.display()),
        };
        return Err(Failure::Input(format!(
            "node {node}, whose maps are compared, {gone}: compare the maps of a node both \
             have (--node NODE)"
        )));
    }
    let config = EngineConfig {
        selection: args.node.selection.into(),
        layout: args.node.version.layout(args.layout),
        max_entries: u32::MAX,
        ..EngineConfig::new(node).with_cilium_version(args.node.version.cilium_version)
    };
    let mut engine = Engine::from_snapshot(&old, config).0;
    let baseline = engine.take_plan()?;
    engine.ack(&baseline, baseline.len())?;
    let before = engine.gateway_choices();

    let mut warnings = 0;
    for errors in engine.sync_snapshot(&new) {
        warnings += 1;
        let name = errors.name.as_deref().unwrap_or("<unnamed>");
        let kept = if engine.policy(name).is_some() {
            "OLD's version is kept"
        } else {
            "it is not programmed"
        };
        let reasons: Vec<String> = errors.errors.iter().map(ToString::to_string).collect();
        crate::note!(
            "warning: {}: policy {name} is invalid ({}): {kept}",
            new_path.display(),
            reasons.join("; ")
        );
    }
    for conflict in &engine.conflicts() {
        warnings += 1;
        crate::note!("{}", diagnostics::conflict_line(conflict));
    }
    let plan = engine.take_plan()?;

    let mut out = String::new();
    if plan.is_empty() {
        out.push_str("No changes.\n");
    } else {
        let mut rows = vec![
            [
                "Op",
                "Map",
                "Source IP",
                "Destination CIDR",
                "Egress IP",
                "Gateway IP",
            ]
            .map(str::to_owned),
        ];
        for op in plan.ops() {
            let action = if op.action() == Action::Upsert {
                "upsert"
            } else {
                "delete"
            };
            let [source, destination, egress_ip, gateway] = match op.subject() {
                OpSubject::Entry(e) => [
                    e.source.to_string(),
                    e.destination.to_string(),
                    e.egress_ip.to_string(),
                    render::gateway_cell(e),
                ],
                // The compact layout: an endpoint block names its endpoints' sets; a rule
                // is its set's.
                OpSubject::Compact(block @ CompactElement::Block { base, .. }) => {
                    let sets: Vec<String> = block
                        .endpoints()
                        .map(|(ip, set)| format!("{ip}: set {set}"))
                        .collect();
                    [
                        format!("block {base}"),
                        sets.join(", "),
                        String::new(),
                        String::new(),
                    ]
                }
                OpSubject::Compact(CompactElement::Rule { set, slot }) => {
                    let e = slot.entry(slot.destination.addr);
                    [
                        format!("set {set}"),
                        slot.destination.to_string(),
                        slot.egress_ip.to_string(),
                        render::gateway_cell(&e),
                    ]
                }
            };
            rows.push([
                action.to_owned(),
                op.map().name().to_owned(),
                source,
                destination,
                egress_ip,
                gateway,
            ]);
        }
        out.push_str(&render::tabulate(&rows));
        out.push_str(&format!(
            "{} upserts, {} deletes\n",
            plan.upserts().len(),
            plan.deletes().len()
        ));
    }
    let names: BTreeMap<&str, String> = old
        .endpoints
        .iter()
        .chain(&new.endpoints)
        .map(|e| (e.uid.as_str(), e.display_name()))
        .collect();
    let moves = gateway_moves(&before, &engine.gateway_choices(), &names);
    finish(args, out, moves, warnings, !plan.is_empty())
}

/// Prints the report `out` with the endpoints that change gateway, then the exit status:
/// `--strict` after warnings, `--exit-code` when something `changed` (the answer is already
/// printed: only the status says so).
fn finish(
    args: &DiffArgs,
    mut out: String,
    moves: Vec<String>,
    warnings: usize,
    changed: bool,
) -> Result<(), Failure> {
    if !moves.is_empty() {
        out.push_str("\nEndpoints that change gateway:\n");
        for line in moves {
            out.push_str(&line);
            out.push('\n');
        }
    }
    emit(&out);
    if args.strict && warnings > 0 {
        return Err(diagnostics::strict_failure(warnings));
    }
    if args.exit_code && changed {
        return Err(Failure::Reported);
    }
    Ok(())
}

/// `diff -f FILE --cilium-version A --to-cilium-version B`: what the node's maps become when
/// the cluster upgrades — the maps written, every row that appears, goes or changes, the
/// endpoints that change gateway, and the policies B refuses or warns about.
fn upgrade(args: &DiffArgs, to: CiliumVersion) -> Result<(), Failure> {
    let from = args.node.version.cilium_version;
    let [path] = args.files.as_slice() else {
        return Err(Failure::Usage(format!(
            "diff --to-cilium-version takes exactly one file, got {}",
            args.files.len()
        )));
    };
    let files = std::slice::from_ref(path);
    let (old, node) = load_for_node_as(files, &args.node, false, from)?;
    let (new, _) = load_for_node_as(files, &args.node, false, to)?;
    let engine = |snapshot: &egress_core::snapshot::Snapshot, version: CiliumVersion| {
        let config = EngineConfig {
            selection: args.node.selection.into(),
            max_entries: u32::MAX,
            ..EngineConfig::new(node.clone()).with_cilium_version(version)
        };
        Engine::from_snapshot(snapshot, config).0
    };
    let (before, after) = (engine(&old, from), engine(&new, to));

    let mut warnings = 0;
    let invalid = |s: &egress_core::snapshot::Snapshot| -> BTreeMap<String, String> {
        s.invalid_policies()
            .map(|(i, e)| {
                let name = e.name.clone().unwrap_or_else(|| format!("#{i}"));
                let reasons: Vec<String> = e.errors.iter().map(ToString::to_string).collect();
                (name, reasons.join("; "))
            })
            .collect()
    };
    let (was_invalid, is_invalid) = (invalid(&old), invalid(&new));
    for (name, why) in &is_invalid {
        if !was_invalid.contains_key(name) {
            warnings += 1;
            crate::note!(
                "warning: policy {name} is invalid on Cilium {to} ({why}): it is not programmed there"
            );
        }
    }
    for p in new.policies.iter().flatten() {
        let earlier: Vec<String> = old
            .policies
            .iter()
            .flatten()
            .find(|q| q.name == p.name)
            .map(|q| {
                old.policy_warnings(q)
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            })
            .unwrap_or_default();
        for w in new.policy_warnings(p) {
            if !earlier.contains(&w.to_string()) {
                warnings += 1;
                crate::note!("{}", diagnostics::policy_warning_line(&p.name, &w));
            }
        }
    }

    let map_names = |v: CiliumVersion| -> String {
        // --layout overrides both versions' maps, as it does a node's.
        let layout = args.layout.map_or_else(|| v.layout(), Into::into);
        layout
            .maps()
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = format!(
        "Cilium {from} -> {to}, node {node}'s maps:\n  {from}: {}\n  {to}: {}\n",
        map_names(from),
        map_names(to)
    );
    let changes = before.entries().changes_to(&after.entries());
    if changes.is_empty() {
        out.push_str("No row changes.\n");
    } else {
        let mut rows = vec![
            [
                "Change",
                "Source IP",
                "Destination CIDR",
                "Egress IP",
                "Gateway IP",
                "Ifindex",
            ]
            .map(str::to_owned),
        ];
        let row = |what: &str, e: &egress_core::entries::Entry| {
            [
                what.to_owned(),
                e.source.to_string(),
                e.destination.to_string(),
                e.egress_ip.to_string(),
                render::gateway_cell(e),
                e.egress_ifindex.to_string(),
            ]
        };
        let (mut added, mut removed, mut changed) = (0, 0, 0);
        for c in &changes {
            match c {
                EntryChange::Added(e) => {
                    added += 1;
                    rows.push(row("added", e));
                }
                EntryChange::Removed(e) => {
                    removed += 1;
                    rows.push(row("removed", e));
                }
                EntryChange::Changed { before, after } => {
                    changed += 1;
                    rows.push(row(&format!("was ({from})"), before));
                    rows.push(row(&format!("now ({to})"), after));
                }
            }
        }
        out.push_str(&render::tabulate(&rows));
        out.push_str(&format!(
            "{} rows change: {changed} changed, {added} added, {removed} removed\n",
            changes.len()
        ));
    }
    let names: BTreeMap<&str, String> = old
        .endpoints
        .iter()
        .map(|e| (e.uid.as_str(), e.display_name()))
        .collect();
    let moves = gateway_moves(&before.gateway_choices(), &after.gateway_choices(), &names);
    finish(args, out, moves, warnings, !changes.is_empty())
}

/// `policy endpoint: old gateway -> new gateway` for every (policy, endpoint) whose gateway
/// node changed, appeared or disappeared.
fn gateway_moves(
    before: &[GatewayChoice],
    after: &[GatewayChoice],
    names: &BTreeMap<&str, String>,
) -> Vec<String> {
    let describe = |c: Option<&GatewayChoice>| match c {
        None => "(not selected)".to_owned(),
        Some(c) => match &c.gateway.node {
            Some(node) => format!("{node} ({})", c.gateway.gateway_ip),
            None => "(no gateway)".to_owned(),
        },
    };
    let index = |list: &[GatewayChoice]| -> BTreeMap<(String, String), GatewayChoice> {
        list.iter()
            .map(|c| ((c.policy.to_string(), c.endpoint.to_string()), c.clone()))
            .collect()
    };
    let (old, new) = (index(before), index(after));
    let keys: std::collections::BTreeSet<&(String, String)> =
        old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let (a, b) = (old.get(key), new.get(key));
            let node = |c: Option<&GatewayChoice>| {
                c.map(|c| (c.gateway.node.clone(), c.gateway.gateway_ip))
            };
            let pod = names.get(key.1.as_str()).unwrap_or(&key.1);
            (node(a) != node(b)).then(|| {
                format!(
                    "  {pod} (policy {}): {} -> {}",
                    key.0,
                    describe(a),
                    describe(b)
                )
            })
        })
        .collect()
}
