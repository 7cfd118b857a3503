//! `egress_gateway.Maps` (feature `bpf`): Cilium's pinned maps, programmed from an engine.

use std::path::PathBuf;

use pyo3::prelude::*;

use egress_bpf::EgressMaps;

use crate::engine::Engine;
use crate::errors::from_kernel;
use crate::values::Entry;

/// The pinned egress gateway maps in one bpffs directory (e.g. `/sys/fs/bpf/tc/globals`).
#[pyclass(frozen, module = "egress_gateway")]
pub(crate) struct Maps {
    maps: EgressMaps,
}

#[pymethods]
impl Maps {
    /// Opens the maps of `layout` in `dir`, checking their sizes; with `create`, creates the
    /// missing ones with `max_entries` entries (default 16384).
    #[new]
    #[pyo3(signature = (dir, layout="legacy", *, create=false, max_entries=None))]
    fn new(
        py: Python<'_>,
        dir: PathBuf,
        layout: &str,
        create: bool,
        max_entries: Option<u32>,
    ) -> PyResult<Self> {
        let layout = layout
            .parse()
            .map_err(|e: egress_core::field::FieldError| {
                pyo3::exceptions::PyValueError::new_err(e.to_string())
            })?;
        let maps = py
            .detach(|| {
                if create {
                    EgressMaps::open_or_create(&dir, layout, max_entries)
                } else {
                    EgressMaps::open(&dir, layout, false)
                }
            })
            .map_err(|e| from_kernel(py, &e))?;
        Ok(Maps { maps })
    }

    /// Takes the engine's plan, writes it and acknowledges what was written; returns how many
    /// operations were written. On a kernel failure the written prefix is acknowledged and
    /// `KernelError` raised. One writer per pin directory: another writer holding it for
    /// longer than 10 s is a `KernelError` with errno `EWOULDBLOCK`.
    fn program(&self, py: Python<'_>, engine: &Engine) -> PyResult<usize> {
        engine
            .writing_detached(py, |e| self.maps.program(e))
            .map(|plan| plan.len())
            .map_err(|e| from_kernel(py, &e))
    }

    /// A writer's whole cycle under the pin directory's writer lock (no other writer, in any
    /// process, reads or writes between its steps): reads what the maps hold, makes it
    /// `engine`'s programmed baseline (as `adopt`), then programs the difference (as
    /// `program`). Elements the engine cannot read (another writer's) are deleted, before the
    /// plan when they take the room it needs, else after it. Returns `(written, deleted)`:
    /// the plan operations written and the unreadable elements deleted.
    fn reconcile(&self, py: Python<'_>, engine: &Engine) -> PyResult<(usize, usize)> {
        engine
            .writing_detached(py, |e| self.maps.reconcile(e))
            .map(|done| (done.plan.len(), done.deleted_unreadable.len()))
            .map_err(|e| from_kernel(py, &e))
    }

    /// Makes what the maps hold `engine`'s programmed baseline (a restarted agent then writes
    /// only the difference): with the `dual` layout both IPv4 maps, a key they disagree on
    /// written again to both; with the `compact` layout its elements, set ids and all.
    fn adopt(&self, py: Python<'_>, engine: &Engine) -> PyResult<()> {
        let maps = &self.maps;
        engine
            .writing_detached(py, |e| maps.adopt_into(e))
            .map_err(|e| from_kernel(py, &e))?;
        Ok(())
    }

    /// What the maps hold, as `cilium-dbg bpf egress list` reads them (the `dual` layout's
    /// IPv4 rows from `_v4_v2`; a legacy IPv4 map stores no ifindex: 0).
    fn dump(&self, py: Python<'_>) -> PyResult<Vec<Entry>> {
        let entries = py
            .detach(|| self.maps.dump())
            .map_err(|e| from_kernel(py, &e))?;
        Ok(entries.iter().map(|&entry| Entry { entry }).collect())
    }
}
