//! `egressctl list`: the maps a node programs.

use egress_core::entries;
use egress_core::maps::Layout;
use egress_core::render;

use crate::cli::{ListArgs, Output};
use crate::diagnostics::{self, conflict_line};
use crate::input::load_for_node;
use crate::{Failure, emit};

pub(crate) fn run(args: &ListArgs) -> Result<(), Failure> {
    let (snapshot, node) = load_for_node(&args.files, &args.node, args.strict)?;
    let node = node.as_str();
    let mut warnings = diagnostics::print_policy_diagnostics(&snapshot);

    let computed = entries::compute(
        &snapshot.state(),
        node,
        snapshot.devices_for(node),
        args.node.selection.into(),
    );
    for conflict in &computed.conflicts {
        warnings += 1;
        eprintln!("{}", conflict_line(conflict));
    }
    if let Some(line) = diagnostics::unknown_devices_line(&snapshot, node, &computed.maps) {
        warnings += 1;
        eprintln!("{line}");
    }
    for line in diagnostics::policy_summary_lines(&snapshot, &computed.choices) {
        eprintln!("{line}");
    }
    let layout = Layout::from(args.layout);
    for (name, count) in [
        (layout.ipv4_map_name(), computed.maps.ipv4.len()),
        (egress_core::maps::MAP_V6, computed.maps.ipv6.len()),
    ] {
        if count > args.max_entries as usize {
            warnings += 1;
            eprintln!(
                "warning: {name} would hold {count} entries, more than its max_entries {}",
                args.max_entries
            );
        }
    }
    print_maps(&computed.maps, args.output);
    if args.strict && warnings > 0 {
        return Err(diagnostics::strict_failure(warnings));
    }
    Ok(())
}

/// Prints maps as a `cilium-dbg` table (`No entries found.` on stderr when empty) or JSON.
pub(crate) fn print_maps(maps: &egress_core::entries::MapEntries, output: Output) {
    match output {
        Output::Json => emit(&render::to_json(maps)),
        Output::CiliumJson => emit(&render::to_cilium_json(maps)),
        Output::Table => match render::to_table(maps) {
            Some(table) => emit(&table),
            None => eprintln!("No entries found."),
        },
    }
}
