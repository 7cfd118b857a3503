//! `egressctl apply`, `dump` and `verify`: the pinned kernel maps (feature `bpf`).

use egress_bpf::{EgressMaps, Error};
use egress_core::engine::{Engine, EngineConfig};
use egress_core::entries::{Entry, EntryChange};
use egress_core::maps::MapId;
use egress_core::render;

use crate::cli::{ApplyArgs, DumpArgs, VerifyArgs};
use crate::diagnostics;
use crate::input::{label, load_for_node};
use crate::list::print_maps;
use crate::{Failure, emit};

/// `an entry of MAP the engine cannot read: key HEX value HEX: why`.
fn unreadable_text(u: &egress_bpf::Unreadable) -> String {
    format!(
        "an entry of {} the engine cannot read: key {} value {}: {}",
        u.map,
        egress_bpf::hex(&u.key),
        egress_bpf::hex(&u.value),
        u.detail
    )
}

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
    let version = args.node.version.cilium_version;
    let layout = args.node.version.layout(args.layout);
    let maps = EgressMaps::open_or_create(&args.bpffs, layout, args.max_entries).map_err(kernel)?;
    maps.set_writer_wait(args.wait);
    // Each map is held to its own capacity.
    let (max_entries, max_entries_v6) = maps.engine_capacity();
    let config = EngineConfig {
        selection: args.node.selection.into(),
        layout,
        max_entries,
        max_entries_v6,
        ..EngineConfig::new(node).with_cilium_version(version)
    };
    let mut engine = Engine::from_snapshot(&snapshot, config).0;
    // One writer at a time, from reading the maps to the last write (and the removal of
    // maps this run created, if it is refused): another writer's entries are neither read
    // half written nor mixed with this run's.
    let _writer = maps.lock_writer().map_err(kernel)?;
    // Start from what the kernel holds: only the difference is written, nothing is flushed.
    match maps.reconcile(&mut engine) {
        Ok(done) => {
            let plan = &done.plan;
            for u in &done.deleted_unreadable {
                crate::note!("{}: deleted {}", args.bpffs.display(), unreadable_text(u));
            }
            if done.unreadable_first {
                crate::note!(
                    "{}: the {} entries the engine cannot read were deleted before the plan: \
                     they took the room it needed",
                    args.bpffs.display(),
                    done.deleted_unreadable.len()
                );
            }
            if plan.deletes_first() {
                crate::note!(
                    "{}: wrote the {} deletes of stale entries before the {} upserts: upserts \
                     first would have taken a map past its max_entries ({} IPv4, {} IPv6)",
                    args.bpffs.display(),
                    plan.deletes().len(),
                    plan.upserts().len(),
                    max_entries,
                    max_entries_v6.unwrap_or(max_entries)
                );
            }
            emit(&format!(
                "{}: wrote {} upserts and {} deletes{} ({} entries in {}, {} in {})\n",
                args.bpffs.display(),
                plan.upserts().len(),
                plan.deletes().len(),
                if plan.deletes_first() {
                    ", the deletes first"
                } else {
                    ""
                },
                engine.stats().programmed_v4,
                maps.ipv4().name(),
                engine.stats().programmed_v6,
                maps.ipv6().name(),
            ));
            Ok(())
        }
        Err(e @ (Error::Capacity(_) | Error::OutOfMemory(_))) => {
            // Refused before anything was written: maps this run created would keep a size
            // no later run could use, so they go too (under this run's lock: no other writer
            // is between its checks and its writes meanwhile).
            let removed = if maps.created_any() {
                maps.remove_created().map_err(kernel)?;
                " (the maps this run created were removed)"
            } else {
                ""
            };
            Err(Failure::Kernel(format!("refused: {e}{removed}")))
        }
        Err(e) => Err(kernel(e)),
    }
}

pub(crate) fn dump(args: &DumpArgs) -> Result<(), Failure> {
    let layout = args.version.layout(args.layout);
    let maps = EgressMaps::open(&args.bpffs, layout, true).map_err(kernel)?;
    let (entries, unreadable) = maps.dump_lenient().map_err(kernel)?;
    print_maps(&entries, args.output, args.version.cilium_version);
    for u in &unreadable {
        crate::note!(
            "warning: {}: {} (egressctl apply deletes it)",
            args.bpffs.display(),
            unreadable_text(u)
        );
    }
    Ok(())
}

/// The live maps against the snapshot's, map by map (each of a `dual` layout's two IPv4
/// maps on its own): a key a map holds with other bytes than the snapshot's is `stale` (the
/// live row) then `wanted` (the snapshot's, as that map stores it); a key it lacks is
/// `missing`; a key the snapshot does not have is `unexpected`.
pub(crate) fn verify(args: &VerifyArgs) -> Result<(), Failure> {
    let (snapshot, node) = load_for_node(&args.files, &args.node, args.strict)?;
    diagnostics::print_policy_diagnostics(&snapshot);
    let layout = args.node.version.layout(args.layout);
    let maps = EgressMaps::open(&args.bpffs, layout, true).map_err(kernel)?;
    let config = EngineConfig {
        selection: args.node.selection.into(),
        layout,
        max_entries: u32::MAX,
        ..EngineConfig::new(node.clone()).with_cilium_version(args.node.version.cilium_version)
    };
    let desired = Engine::from_snapshot(&snapshot, config).0.entries();
    let mut drift: Vec<(&'static str, EntryChange)> = Vec::new();
    let mut unreadable = Vec::new();
    let mut total = 0;
    if layout.is_compact() {
        // The compact maps are read whole and joined into the entries they decide; a
        // drifted entry is named by its family's rule trie.
        let (live, bad) = maps.dump_lenient().map_err(kernel)?;
        total += live.len() + bad.len();
        unreadable.extend(bad);
        for change in live.changes_to(&desired) {
            let ipv4 = match &change {
                EntryChange::Removed(e) | EntryChange::Added(e) => e.source.is_ipv4(),
                EntryChange::Changed { after, .. } => after.source.is_ipv4(),
            };
            let map = if ipv4 { maps.ipv4() } else { maps.ipv6() };
            drift.push((map.name(), change));
        }
    } else {
        for map in maps.ipv4_maps().iter().chain([maps.ipv6()]) {
            let (live, bad) = map.entries_lenient().map_err(kernel)?;
            total += live.len() + bad.len();
            unreadable.extend(bad);
            let Some(id) = MapId::from_name(map.name()) else {
                continue;
            };
            let changes = live.changes_to(&desired.as_stored_in(id));
            drift.extend(changes.into_iter().map(|c| (map.name(), c)));
        }
    }
    if drift.is_empty() && unreadable.is_empty() {
        emit(&format!(
            "In sync: the {total} entries in {} are node {node}'s maps of {}.\n",
            args.bpffs.display(),
            label(&args.files)
        ));
        return Ok(());
    }
    let header = [
        "Drift",
        "Map",
        "Source IP",
        "Destination CIDR",
        "Egress IP",
        "Gateway IP",
        "Ifindex",
    ];
    let mut rows = vec![header.map(str::to_owned)];
    let row = |state: &str, map: &str, e: &Entry| {
        [
            state.to_owned(),
            map.to_owned(),
            e.source.to_string(),
            e.destination.to_string(),
            e.egress_ip.to_string(),
            render::gateway_cell(e),
            e.egress_ifindex.to_string(),
        ]
    };
    let (mut missing, mut unexpected, mut stale) = (0, 0, 0);
    for (map, change) in &drift {
        match change {
            EntryChange::Removed(held) => {
                unexpected += 1;
                rows.push(row("unexpected", map, held));
            }
            EntryChange::Changed { before, after } => {
                stale += 1;
                rows.push(row("stale", map, before));
                rows.push(row("wanted", map, after));
            }
            EntryChange::Added(wanted) => {
                missing += 1;
                rows.push(row("missing", map, wanted));
            }
        }
    }
    if rows.len() > 1 {
        emit(&render::tabulate(&rows));
    }
    for u in &unreadable {
        emit(&format!(
            "unreadable   {}   key {} value {}: {}\n",
            u.map,
            egress_bpf::hex(&u.key),
            egress_bpf::hex(&u.value),
            u.detail
        ));
    }
    emit(&format!(
        "Drift in {dir}: {missing} missing, {unexpected} unexpected, {stale} stale, {unread} \
         unreadable of {total} live entries (egressctl apply makes them node {node}'s maps of \
         {inputs}).\n",
        dir = args.bpffs.display(),
        unread = unreadable.len(),
        inputs = label(&args.files)
    ));
    Err(Failure::Reported)
}
