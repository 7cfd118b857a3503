//! The kernel calls (feature `bpf`, `EGRESS_FEATURE_BPF` in the header): open or create the
//! pinned maps, program an engine's plan into them, dump them, adopt them.

use std::path::Path;

use egress_bpf::EgressMaps;
use egress_core::engine::Engine;

use crate::boundary::{checked_out, exclusive, reference, run, utf8};
use crate::engine::egress_engine;
use crate::error::{Failure, egress_error, egress_result};
use crate::query::fill_entries;
use crate::types::{egress_entry, layout};

/// Cilium's pinned egress gateway maps in one bpffs directory: the layout's IPv4 map and the
/// IPv6 map. Opaque; made by `egress_maps_open`, freed by `egress_maps_free`. Calls taking a
/// `const egress_maps *` may run concurrently (the kernel serialises the writes; programming
/// one engine still needs exclusive access to that engine).
pub struct egress_maps {
    maps: EgressMaps,
}

// Shared between threads through `const egress_maps *`: must stay `Send + Sync`.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<egress_maps>();
};

/// Flags of `egress_maps_open` (`uint32_t`, or-ed).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum egress_maps_flag {
    /// Create the maps that do not exist (else: open existing maps only).
    Create = 1,
}

/// Opens the maps pinned in `dir` (e.g. `/sys/fs/bpf/tc/globals`), checking their type, key
/// and value sizes against `layout`; with `EGRESS_MAPS_FLAG_CREATE` in `flags`, creates the
/// missing ones with `max_entries` entries (0: 16384) — `max_entries` is used only to create,
/// an existing map keeps its own. Nothing is mounted: `dir` must be on a bpffs. Maps that are
/// not what `layout` needs, or a `dir` not on a bpffs, are `EGRESS_RESULT_INVALID_ARGUMENT`;
/// a refused syscall is `EGRESS_RESULT_KERNEL` with its errno; unknown flags are
/// `EGRESS_RESULT_INVALID_ENUM`.
///
/// # Safety
/// `dir` points at `dir_len` bytes; `maps_out` and `error_out` NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_maps_open(
    dir: *const u8,
    dir_len: usize,
    layout: u32,
    max_entries: u32,
    flags: u32,
    maps_out: *mut *mut egress_maps,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        run(error_out, || {
            let maps_out = checked_out(maps_out, "maps_out")?;
            let dir = Path::new(utf8(dir, dir_len, "dir")?);
            let layout = self::layout(layout, "layout")?;
            let known = egress_maps_flag::Create as u32;
            if flags & !known != 0 {
                return Err(Failure::invalid_enum(
                    "flags",
                    flags,
                    "an or of EGRESS_MAPS_FLAG_CREATE (1)",
                ));
            }
            let max = (max_entries != 0).then_some(max_entries);
            let maps = if flags & known != 0 {
                EgressMaps::open_or_create(dir, layout, max)?
            } else {
                EgressMaps::open(dir, layout, false)?
            };
            maps_out.write(Box::into_raw(Box::new(egress_maps { maps })));
            Ok(())
        })
    }
}

/// Closes the maps (they stay pinned). NULL is a no-op.
///
/// # Safety
/// `maps` is NULL or maps from this library, not yet freed; invalid afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_maps_free(maps: *mut egress_maps) {
    if !maps.is_null() {
        // SAFETY: made by Box::into_raw in `egress_maps_open`, freed once.
        drop(unsafe { Box::from_raw(maps) });
    }
}

/// Takes the engine's plan, writes it to the maps in order (batched) and acknowledges
/// what was written. `*applied_out` (optional) is the number of operations written — on a
/// kernel failure too, where the written prefix is acknowledged and the rest comes back in
/// the next plan (`EGRESS_RESULT_KERNEL`, with the errno). Refused before anything is
/// written: an engine of another layout (`EGRESS_RESULT_INVALID_ARGUMENT`), a desired state
/// that does not fit a map (`EGRESS_RESULT_CAPACITY`), operations the machine cannot allocate
/// (`EGRESS_RESULT_OUT_OF_MEMORY`), another writer holding the pin directory for longer than
/// 10 s (`EGRESS_RESULT_KERNEL`, errno `EWOULDBLOCK`: one writer per directory, an advisory
/// `flock` on it that every writer of this library takes, in any process).
///
/// # Safety
/// `maps` NULL or valid; `engine` NULL or valid with exclusive access; `applied_out` and
/// `error_out` NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_maps_program(
    maps: *const egress_maps,
    engine: *mut egress_engine,
    applied_out: *mut usize,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        write_maps(
            maps,
            engine,
            (applied_out, std::ptr::null_mut()),
            error_out,
            |maps, engine| maps.program(engine).map(|plan| (plan.len(), 0)),
        )
    }
}

/// The body of `egress_maps_program` and `egress_maps_reconcile`: `write` on the maps and the
/// engine, giving (operations written, unreadable elements deleted); on a kernel failure
/// part way, the operations written before it.
///
/// # Safety
/// As those exports.
unsafe fn write_maps(
    maps: *const egress_maps,
    engine: *mut egress_engine,
    (applied_out, deleted_out): (*mut usize, *mut usize),
    error_out: *mut *mut egress_error,
    write: impl FnOnce(&EgressMaps, &mut Engine) -> Result<(usize, usize), egress_bpf::Error>,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        run(error_out, || {
            let maps = &reference(maps, "maps")?.maps;
            let handle = exclusive(engine, "engine")?;
            // The arguments checked: the outputs are written whatever the call gives.
            let result = write(maps, &mut handle.engine);
            let (applied, deleted) = match &result {
                Ok(counts) => *counts,
                Err(egress_bpf::Error::Apply(e)) => (e.applied, 0),
                Err(_) => (0, 0),
            };
            if !applied_out.is_null() {
                applied_out.write(applied);
            }
            if !deleted_out.is_null() {
                deleted_out.write(deleted);
            }
            result.map(drop).map_err(Into::into)
        })
    }
}

/// The whole cycle of a writer, under the pin directory's writer lock (so that no other
/// writer, in any process, reads or writes between its steps): reads what the maps hold and
/// makes it the engine's programmed baseline (as `egress_maps_adopt`), then programs the
/// difference (as `egress_maps_program`). Elements the engine cannot read (another writer's)
/// are deleted — before the plan when they take the room it needs, else after it.
/// `*applied_out` (optional) is the number of plan operations written (on a kernel failure
/// too, as `egress_maps_program`); `*unreadable_deleted_out` (optional) the number of
/// elements deleted that the engine could not read. Failures as `egress_maps_program`.
///
/// # Safety
/// `maps` NULL or valid; `engine` NULL or valid with exclusive access; `applied_out`,
/// `unreadable_deleted_out` and `error_out` NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_maps_reconcile(
    maps: *const egress_maps,
    engine: *mut egress_engine,
    applied_out: *mut usize,
    unreadable_deleted_out: *mut usize,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        write_maps(
            maps,
            engine,
            (applied_out, unreadable_deleted_out),
            error_out,
            |maps, engine| {
                maps.reconcile(engine)
                    .map(|done| (done.plan.len(), done.deleted_unreadable.len()))
            },
        )
    }
}

/// Reads both maps' entries (IPv4 first, each in `list` order). Sizes as
/// `egress_engine_entries`. A legacy IPv4 map stores no ifindex: its entries have 0.
///
/// # Safety
/// `maps` NULL or valid; `buf` points at `buf_len` writable entries (NULL only when 0);
/// `count_out` and `error_out` NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_maps_dump(
    maps: *const egress_maps,
    buf: *mut egress_entry,
    buf_len: usize,
    count_out: *mut usize,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        run(error_out, || {
            let entries = reference(maps, "maps")?.maps.dump()?;
            fill_entries(&entries, buf, buf_len, count_out)
        })
    }
}

/// Makes what the maps hold the engine's programmed baseline (a restarted agent then writes
/// only the difference, never a flush).
///
/// # Safety
/// `engine` NULL or valid with exclusive access; `maps` NULL or valid; `error_out` NULL or
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_adopt_maps(
    engine: *mut egress_engine,
    maps: *const egress_maps,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        run(error_out, || {
            let handle = exclusive(engine, "engine")?;
            reference(maps, "maps")?
                .maps
                .adopt_into(&mut handle.engine)?;
            Ok(())
        })
    }
}
