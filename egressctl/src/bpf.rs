//! `egressctl apply` and `egressctl dump`: the pinned kernel maps (feature `bpf`).

use egress_bpf::{EgressMaps, Error};
use egress_core::engine::{Engine, EngineConfig};
use egress_core::maps::Layout;

use crate::Failure;
use crate::cli::{ApplyArgs, DumpArgs};
use crate::diagnostics;
use crate::input::load_for_node;
use crate::list::print_maps;

fn kernel(e: Error) -> Failure {
    Failure::Kernel(e.to_string())
}

pub(crate) fn apply(args: &ApplyArgs) -> Result<(), Failure> {
    let (snapshot, node) = load_for_node(
        std::slice::from_ref(&args.file),
        &args.node,
        !args.skip_invalid,
    )?;
    diagnostics::print_policy_diagnostics(&snapshot);
    let layout = Layout::from(args.layout);
    let maps = EgressMaps::open_or_create(&args.bpffs, layout, args.max_entries).map_err(kernel)?;
    let config = EngineConfig {
        selection: args.node.selection.into(),
        layout,
        max_entries: maps.max_entries(),
        ..EngineConfig::new(node)
    };
    let mut engine = Engine::from_snapshot(&snapshot, config).0;
    // Start from what the kernel holds: only the difference is written, nothing is flushed.
    engine.adopt(maps.dump().map_err(kernel)?.iter().copied());
    match maps.program(&mut engine) {
        Ok(plan) => {
            println!(
                "{}: wrote {} upserts and {} deletes ({} entries in {}, {} in {})",
                args.bpffs.display(),
                plan.upserts().len(),
                plan.deletes().len(),
                engine.stats().programmed_v4,
                maps.ipv4().name(),
                engine.stats().programmed_v6,
                maps.ipv6().name(),
            );
            Ok(())
        }
        Err(Error::Capacity(e)) => Err(Failure::Kernel(format!("refused: {e}"))),
        Err(e) => Err(kernel(e)),
    }
}

pub(crate) fn dump(args: &DumpArgs) -> Result<(), Failure> {
    let maps = EgressMaps::open(&args.bpffs, Layout::from(args.layout), true).map_err(kernel)?;
    print_maps(&maps.dump().map_err(kernel)?, args.output);
    Ok(())
}
