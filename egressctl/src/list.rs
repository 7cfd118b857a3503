//! `egressctl list`: the maps a node programs.

use std::collections::HashMap;

use egress_core::entries;
use egress_core::render;
use egress_core::version::CiliumVersion;

use crate::cli::{ListArgs, Output};
use crate::diagnostics::{self, conflict_line};
use crate::input::load_for_node;
use crate::{Failure, emit};

pub(crate) fn run(args: &ListArgs) -> Result<(), Failure> {
    let (mut snapshot, node) = load_for_node(&args.files, &args.node, args.strict)?;
    let node = node.as_str();
    let mut warnings = diagnostics::print_policy_diagnostics(&snapshot);

    let devices = snapshot.devices_for(node).to_vec();
    let rules = args.node.rules();
    let version = rules.version;
    // Where each entry comes from is printed by `-o wide` only.
    let compute = if args.output == Output::Wide {
        entries::compute
    } else {
        entries::compute_without_producers
    };
    let computed = snapshot.with_state(|state| compute(state, node, &devices, rules));
    for conflict in &computed.conflicts {
        warnings += 1;
        crate::note!("{}", conflict_line(conflict));
    }
    if let Some(line) = diagnostics::unknown_devices_line(&snapshot, node, &computed.maps) {
        warnings += 1;
        crate::note!("{line}");
    }
    for line in diagnostics::policy_summary_lines(&snapshot, &computed.choices) {
        crate::note!("{line}");
    }
    let layout = args.node.version.layout(args.layout);
    let counts: Vec<(&str, usize)> = if layout.is_compact() {
        // Per map, the elements the compact form of these entries takes.
        let form = egress_core::compact::CompactMaps::from_entries(&computed.maps);
        let mut counts: Vec<(&str, usize)> = layout.maps().iter().map(|m| (m.name(), 0)).collect();
        for element in form.elements() {
            if let Some(c) = counts.iter_mut().find(|(n, _)| *n == element.map().name()) {
                c.1 += 1;
            }
        }
        counts
    } else {
        let ipv4_maps = layout
            .ipv4_maps()
            .iter()
            .map(|m| (m.name(), computed.maps.ipv4.len()));
        let ipv6_map = (egress_core::maps::MAP_V6, computed.maps.ipv6.len());
        ipv4_maps.chain([ipv6_map]).collect()
    };
    for (name, count) in counts {
        if count > args.max_entries as usize {
            warnings += 1;
            crate::note!(
                "warning: {name} would hold {count} entries, more than its max_entries {}",
                args.max_entries
            );
        }
    }
    if args.output == Output::Wide {
        print_wide(&snapshot, &computed);
    } else {
        print_maps(&computed.maps, args.output, version);
    }
    if args.strict && warnings > 0 {
        return Err(diagnostics::strict_failure(warnings));
    }
    Ok(())
}

/// The `cilium-dbg` table with where each entry comes from: its ifindex, the policy and pod
/// that wrote it (B.1's winner), and the gateway node chosen for them.
fn print_wide(snapshot: &egress_core::snapshot::Snapshot, computed: &entries::Computation) {
    if computed.maps.is_empty() {
        crate::note!("No entries found.");
        return;
    }
    let producer: HashMap<_, _> = computed
        .producers
        .iter()
        .map(|p| (p.entry.identity(), p))
        .collect();
    let pods: HashMap<&str, String> = snapshot
        .endpoints
        .iter()
        .map(|e| (e.uid.as_str(), e.display_name()))
        .collect();
    let gateway: HashMap<(&str, &str), Option<&str>> = computed
        .choices
        .iter()
        .map(|c| ((&*c.policy, &*c.endpoint), c.gateway.node.as_deref()))
        .collect();
    let header = [
        "Source IP",
        "Destination CIDR",
        "Egress IP",
        "Gateway IP",
        "Ifindex",
        "Policy",
        "Pod",
        "Gateway Node",
    ];
    let mut rows = vec![header.map(str::to_owned)];
    for e in computed.maps.iter() {
        let p = producer.get(&e.identity());
        let policy = p.map_or("-", |p| &*p.policy);
        let pod = p.map_or_else(
            || "-".to_owned(),
            |p| {
                pods.get(&*p.endpoint)
                    .cloned()
                    .unwrap_or_else(|| p.endpoint.to_string())
            },
        );
        let node = match p {
            Some(p) if e.gateway_ip != entries::EXCLUDED_GATEWAY => gateway
                .get(&(&*p.policy, &*p.endpoint))
                .copied()
                .flatten()
                .unwrap_or("(none)"),
            _ => "-",
        };
        rows.push([
            e.source.to_string(),
            e.destination.to_string(),
            e.egress_ip.to_string(),
            render::gateway_cell(e),
            e.egress_ifindex.to_string(),
            policy.to_owned(),
            pod,
            node.to_owned(),
        ]);
    }
    emit(&render::tabulate(&rows));
}

/// Prints maps as a `cilium-dbg` table (`No entries found.` on stderr when empty) or JSON.
/// `version` chooses the `cilium-dbg` columns (1.20 adds `Egress Ifindex`).
pub(crate) fn print_maps(
    maps: &egress_core::entries::MapEntries,
    output: Output,
    version: CiliumVersion,
) {
    match output {
        Output::Json => crate::emit_with(|out| render::write_json(maps, out)),
        Output::CiliumJson => {
            crate::emit_with(|out| render::write_cilium_json_for(maps, version, out))
        }
        // Only `list` knows where entries come from; others print the table.
        Output::Wide => print_maps(maps, Output::Table, version),
        Output::Table if maps.is_empty() => crate::note!("No entries found."),
        Output::Table => crate::emit_with(|out| render::write_table_for(maps, version, out)),
    }
}
