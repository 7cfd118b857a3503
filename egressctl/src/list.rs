//! `egressctl list`: the maps a node programs.

use egress_core::entries;
use egress_core::maps::Layout;
use egress_core::render;

use crate::cli::{ListArgs, Output};
use crate::diagnostics::{self, conflict_line};
use crate::input::{load_snapshot, select_node};
use crate::{Failure, emit};

pub(crate) fn run(args: &ListArgs) -> Result<(), Failure> {
    let mut snapshot = load_snapshot(&args.file)?;
    let node = select_node(
        &mut snapshot,
        &args.file,
        args.node.as_deref(),
        args.interfaces.as_deref(),
    )?;
    let node = node.as_str();
    if args.strict {
        let invalid: Vec<String> = snapshot
            .invalid_policies()
            .flat_map(|(i, errs)| {
                let label = diagnostics::policy_label(errs.name.as_deref(), i);
                errs.errors
                    .iter()
                    .map(move |e| format!("{}: {label}: {e}", args.file.display()))
                    .collect::<Vec<_>>()
            })
            .collect();
        if !invalid.is_empty() {
            return Err(Failure::Input(invalid.join("\n")));
        }
    }
    diagnostics::print_policy_diagnostics(&snapshot);

    let computed = entries::compute(
        &snapshot.state(),
        node,
        snapshot.devices_for(node),
        args.selection.into(),
    );
    for conflict in &computed.conflicts {
        eprintln!("{}", conflict_line(conflict));
    }
    let layout = Layout::from(args.layout);
    for (name, count) in [
        (layout.ipv4_map_name(), computed.maps.ipv4.len()),
        (egress_core::maps::MAP_V6, computed.maps.ipv6.len()),
    ] {
        if count > args.max_entries as usize {
            eprintln!(
                "warning: {name} would hold {count} entries, more than its max_entries {}",
                args.max_entries
            );
        }
    }
    match args.output {
        Output::Json => emit(&render::to_json(&computed.maps)),
        Output::Table => match render::to_table(&computed.maps) {
            Some(table) => emit(&table),
            None => eprintln!("No entries found."),
        },
    }
    Ok(())
}
