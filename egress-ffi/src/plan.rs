//! Two-phase programming through C: take a plan into the caller's array, write it to the
//! kernel, acknowledge what was written; adopt a live map's dump after a restart.

use egress_core::engine::PlanId;

use crate::boundary::{exclusive, fill, reference, run, slice};
use crate::engine::egress_engine;
use crate::error::{egress_error, egress_result};
use crate::types::{Decoded, egress_map_element, egress_plan_op};

/// The operations that make the maps equal the desired state: every upsert, then every
/// delete — or every delete first, when upserting first would take a map past its
/// `max_entries` and the desired state fits — no key twice; none when nothing changed. Write
/// them in order, then call `egress_engine_ack` with how many were written.
///
/// `*count_out` is the number of operations. `EGRESS_RESULT_INSUFFICIENT_SIZE` when
/// `ops_len` is smaller: `*count_out` is the count needed (counted, nothing built) and `ops`
/// is untouched (`ops` may be NULL when `ops_len` is 0). `EGRESS_RESULT_CAPACITY` when a
/// map's desired state exceeds its `max_entries` (counted before anything is built):
/// nothing is handed out (`*count_out` is 0). `EGRESS_RESULT_OUT_OF_MEMORY` when the
/// operations cannot be allocated: nothing is handed out, the host process goes on.
///
/// Only the plan the last take handed out can be acknowledged, once (SEMANTICS B.8): a size
/// query takes nothing (the plan to acknowledge is still the previous one); a take refused
/// for capacity leaves none.
///
/// # Safety
/// `engine` is a valid engine with exclusive access; `ops` points at `ops_len` writable ops
/// (NULL only when 0); `count_out` and `error_out` NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_take_plan(
    engine: *mut egress_engine,
    ops: *mut egress_plan_op,
    ops_len: usize,
    count_out: *mut usize,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        run(error_out, || {
            // Arguments first: a call refused for them changes nothing.
            let count_out = crate::boundary::checked_out(count_out, "count_out")?;
            count_out.write(0);
            if ops_len > 0 {
                crate::boundary::checked_out(ops, "ops")?;
            }
            let handle = exclusive(engine, "engine")?;
            let mut needed = 0;
            let taken = handle
                .engine
                .take_plan_if(|len| {
                    needed = len;
                    len <= ops_len
                })
                .map_err(egress_core::Error::from)?;
            // Too small: only the count is handed out, and nothing is taken.
            let ops_of = taken.as_ref().map_or(&[][..], |plan| plan.ops());
            fill(
                needed,
                ops_of.iter().map(egress_plan_op::from),
                (ops, "ops"),
                (ops_len, "ops_len"),
                count_out,
            )
        })
    }
}

/// Records that the first `applied` operations of the last plan taken were written (all of
/// them: its count; none: 0). The rest come back in the next plan. Refused with
/// `EGRESS_RESULT_INVALID_ARGUMENT`, recording nothing (SEMANTICS B.8): no plan taken, the
/// plan acknowledged already, adopted over (`egress_engine_adopt`/`_adopt_maps` after the
/// take), or `applied` past its end (path `applied`; the others path `plan`).
///
/// # Safety
/// `engine` is a valid engine with exclusive access; `error_out` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_ack(
    engine: *mut egress_engine,
    applied: usize,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        run(error_out, || {
            let handle = exclusive(engine, "engine")?;
            handle
                .engine
                .ack_last(applied)
                .map_err(egress_core::Error::from)?;
            Ok(())
        })
    }
}

/// Which plan of which engine: `egress_engine_plan_id` names the last plan taken, and
/// `egress_engine_ack_plan` acknowledges by it (a binding that keeps copies of plans, as Go
/// does, holds this with each).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct egress_plan_id {
    /// The engine that took the plan (never 0).
    pub engine: u64,
    /// The plan's number in that engine, from 1 in the order taken (0: none taken yet).
    pub sequence: u64,
}

impl From<egress_plan_id> for PlanId {
    fn from(id: egress_plan_id) -> Self {
        PlanId {
            engine: id.engine,
            sequence: id.sequence,
        }
    }
}

impl From<PlanId> for egress_plan_id {
    fn from(id: PlanId) -> Self {
        egress_plan_id {
            engine: id.engine,
            sequence: id.sequence,
        }
    }
}

/// Writes the id of the last plan taken from `engine` to `*id_out` (sequence 0 when none
/// was taken yet).
///
/// # Safety
/// `engine` is a valid engine; `id_out` and `error_out` NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_plan_id(
    engine: *const egress_engine,
    id_out: *mut egress_plan_id,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        run(error_out, || {
            let id_out = crate::boundary::checked_out(id_out, "id_out")?;
            let engine = &reference(engine, "engine")?.engine;
            id_out.write(engine.last_plan_id().into());
            Ok(())
        })
    }
}

/// `egress_engine_ack` of the plan `id` names: refused too (path `plan`) when it is another
/// engine's or older than the last plan taken.
///
/// # Safety
/// `engine` is a valid engine with exclusive access; `error_out` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_ack_plan(
    engine: *mut egress_engine,
    id: egress_plan_id,
    applied: usize,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        run(error_out, || {
            let handle = exclusive(engine, "engine")?;
            handle
                .engine
                .ack_id(id.into(), applied)
                .map_err(egress_core::Error::from)?;
            Ok(())
        })
    }
}

/// Makes `count` elements of live maps (as an agent that dumps the maps itself reads them)
/// the programmed baseline: the next plan writes only the difference, never a flush. Every
/// element must be of a map of the engine's layout with that map's key and value sizes;
/// otherwise nothing is adopted (`EGRESS_RESULT_INVALID_ARGUMENT` / `_INVALID_ENUM` /
/// `_DECODE`, path `elements[i]`).
///
/// # Safety
/// `engine` is a valid engine with exclusive access; `elements` points at `count` elements
/// (NULL only when 0); `error_out` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_adopt(
    engine: *mut egress_engine,
    elements: *const egress_map_element,
    count: usize,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        run(error_out, || {
            let handle = exclusive(engine, "engine")?;
            let layout = handle.engine.config().layout;
            let decoded = slice(elements, count, "elements")?
                .iter()
                .enumerate()
                .map(|(i, e)| e.decode(layout, &format!("elements[{i}]")))
                .collect::<Result<Vec<Decoded>, _>>()?;
            if layout.is_compact() {
                handle
                    .engine
                    .adopt_compact(decoded.into_iter().filter_map(|d| match d {
                        Decoded::Compact(c) => Some(c),
                        Decoded::Entry(..) => None,
                    }));
            } else {
                handle
                    .engine
                    .adopt_maps(decoded.into_iter().filter_map(|d| match d {
                        Decoded::Entry(map, entry) => Some((map, entry)),
                        Decoded::Compact(_) => None,
                    }))
                    .map_err(egress_core::Error::from)?;
            }
            Ok(())
        })
    }
}
