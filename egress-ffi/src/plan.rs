//! Two-phase programming through C: take a plan into the caller's array, write it to the
//! kernel, acknowledge what was written; adopt a live map's dump after a restart.

use egress_core::entries::Entry;
use egress_core::maps::MapId;

use crate::boundary::{exclusive, fill, run, slice};
use crate::engine::egress_engine;
use crate::error::{Failure, egress_error, egress_result};
use crate::types::{egress_map_element, egress_plan_op};

/// The operations that make the maps equal the desired state: every upsert, then every
/// delete, no key twice; none when nothing changed. Write them in order, then call
/// `egress_engine_ack` with how many were written.
///
/// `*count_out` is the number of operations. `EGRESS_RESULT_INSUFFICIENT_SIZE` when
/// `ops_len` is smaller: `*count_out` is the count needed and `ops` is untouched (`ops` may be
/// NULL when `ops_len` is 0). `EGRESS_RESULT_CAPACITY` when a map would overflow its
/// `max_entries` at the plan's peak: nothing is handed out (`*count_out` is 0). The plan
/// handed out is the one the next `egress_engine_ack` acknowledges; a later take replaces
/// it, and a failed take leaves none (only 0 can be acknowledged then).
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
            let count_out = crate::boundary::out(count_out, "count_out")?;
            count_out.write(0);
            if ops_len > 0 {
                crate::boundary::out(ops, "ops")?;
            }
            let handle = exclusive(engine, "engine")?;
            // A failed take leaves no plan to acknowledge.
            handle.taken = None;
            let plan = handle
                .engine
                .take_plan()
                .map_err(egress_core::Error::from)?;
            fill(
                plan.len(),
                plan.ops().iter().map(egress_plan_op::from),
                (ops, "ops"),
                (ops_len, "ops_len"),
                count_out,
            )?;
            handle.taken = Some(plan);
            Ok(())
        })
    }
}

/// Records that the first `applied` operations of the last plan taken were written (all of
/// them: its count; none: 0). The rest come back in the next plan. `applied` past the plan's
/// end, or a non-zero `applied` with no plan taken, is `EGRESS_RESULT_INVALID_ARGUMENT`.
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
            let taken = handle.taken.as_ref().map_or(0, |p| p.len());
            if applied > taken {
                return Err(Failure::invalid_argument(
                    "applied",
                    format!("{applied} is more than the {taken} operations of the plan taken"),
                ));
            }
            if let Some(plan) = handle.taken.take() {
                handle.engine.ack(&plan, applied);
            }
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
            let entries = slice(elements, count, "elements")?
                .iter()
                .enumerate()
                .map(|(i, e)| e.decode(layout, &format!("elements[{i}]")))
                .collect::<Result<Vec<(MapId, Entry)>, _>>()?;
            handle.taken = None;
            handle.engine.adopt_maps(entries);
            Ok(())
        })
    }
}
