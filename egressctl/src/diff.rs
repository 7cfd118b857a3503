//! `egressctl diff`: the plan that turns OLD's maps into NEW's, NEW applied to OLD as updates.

use std::collections::BTreeMap;

use egress_core::engine::{Action, Engine, EngineConfig};
use egress_core::entries::GatewayChoice;
use egress_core::render;

use crate::cli::DiffArgs;
use crate::diagnostics;
use crate::input::load_for_node;
use crate::{Failure, emit};

pub(crate) fn run(args: &DiffArgs) -> Result<(), Failure> {
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
    let baseline = engine
        .take_plan()
        .map_err(|e| Failure::Input(e.to_string()))?;
    engine.ack(&baseline, baseline.len());
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
    let plan = engine
        .take_plan()
        .map_err(|e| Failure::Input(e.to_string()))?;

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
            let e = &op.entry();
            let action = if op.action() == Action::Upsert {
                "upsert"
            } else {
                "delete"
            };
            rows.push([
                action.to_owned(),
                op.map().name().to_owned(),
                e.source.to_string(),
                e.destination.to_string(),
                e.egress_ip.to_string(),
                render::gateway_cell(e),
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
    if args.exit_code && !plan.is_empty() {
        // The plan is the answer, already printed: only the status says "changed".
        return Err(Failure::Reported);
    }
    Ok(())
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
