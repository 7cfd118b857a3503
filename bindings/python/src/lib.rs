//! # egress_gateway — the Python module
//!
//! `import egress_gateway as egw`: the egress-core engine for operators' scripts and tooling.
//! Load a cluster (`Engine.from_snapshot`), read the node's maps (`maps_json`, `entries`,
//! `format_table`), ask what happens to a packet and why (`lookup`, `lookup_many`,
//! `explain`), feed it events (`apply`, `upsert_*`, `delete_*`, `set_devices`) and program
//! the kernel in two phases (`take_plan`, `ack`; `Maps` when built with feature `bpf`).
//! This crate converts and delegates; the behaviour is egress-core's.

mod engine;
mod errors;
#[cfg(feature = "bpf")]
mod kernel;
mod values;

use pyo3::prelude::*;

/// The module.
#[pymodule]
fn egress_gateway(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    let kinds = egress_core::lookup::VerdictKind::ALL.map(|k| k.name());
    m.add("VERDICT_KINDS", pyo3::types::PyTuple::new(m.py(), kinds)?)?;
    m.add("KERNEL", cfg!(feature = "bpf"))?;
    m.add_class::<engine::Engine>()?;
    m.add_function(pyo3::wrap_pyfunction!(engine::cilium_version_layout, m)?)?;
    m.add_class::<values::Verdict>()?;
    m.add_class::<values::Entry>()?;
    m.add_class::<values::Plan>()?;
    m.add_class::<values::PlanOp>()?;
    m.add_class::<values::Explanation>()?;
    #[cfg(feature = "bpf")]
    m.add_class::<kernel::Maps>()?;
    errors::register(m)?;
    // maturin's package re-exports `__all__` from the extension: the version must be in it.
    let mut public = vec![
        "__version__",
        "Engine",
        "Verdict",
        "Entry",
        "Plan",
        "PlanOp",
        "Explanation",
        "EgressError",
        "PolicyError",
        "SnapshotError",
        "CapacityError",
        "KernelError",
        "VERDICT_KINDS",
        "KERNEL",
        "cilium_version_layout",
    ];
    if cfg!(feature = "bpf") {
        public.push("Maps");
    }
    m.add("__all__", public)
}
