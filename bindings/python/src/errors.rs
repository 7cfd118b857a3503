//! The module's exceptions, and the one place where the core's errors become them.
//!
//! `EgressError` is the base; every instance carries `.path` (the first field path, or
//! `None`), `.errors` (every `(path, reason)` pair) and `.policy` (the invalid policy's name,
//! or `None`); `KernelError` adds `.errno`. An unaccepted argument value is a `ValueError`.

use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use egress_core::{Error, ErrorKind};

pyo3::create_exception!(
    egress_gateway,
    EgressError,
    PyException,
    "Base of the module's errors: `.path`, `.errors` ([(path, reason)]), `.policy`."
);
pyo3::create_exception!(
    egress_gateway,
    PolicyError,
    EgressError,
    "An invalid policy: every field error in `.errors`; its previous version stays in force."
);
pyo3::create_exception!(
    egress_gateway,
    SnapshotError,
    EgressError,
    "Input that cannot be read: not YAML/JSON, or input errors, each with its path."
);
pyo3::create_exception!(
    egress_gateway,
    CapacityError,
    EgressError,
    "A plan that would overflow a map's max_entries; nothing was handed out."
);
pyo3::create_exception!(
    egress_gateway,
    KernelError,
    EgressError,
    "A kernel call failed: `.errno` (0 when there is none)."
);

/// Builds an exception of type `T` with the module's attributes set.
fn with_attributes<T: pyo3::PyTypeInfo>(
    py: Python<'_>,
    message: String,
    fields: &[(String, String)],
    policy: Option<&str>,
    errno: Option<i32>,
) -> PyErr {
    let err = PyErr::new::<T, _>(message);
    let value = err.value(py);
    let set = || -> PyResult<()> {
        let pairs: Vec<Bound<'_, PyTuple>> = fields
            .iter()
            .map(|(p, r)| PyTuple::new(py, [p, r]))
            .collect::<PyResult<_>>()?;
        value.setattr("errors", PyList::new(py, pairs)?)?;
        value.setattr("path", fields.first().map(|(p, _)| p.as_str()))?;
        value.setattr("policy", policy)?;
        if let Some(errno) = errno {
            value.setattr("errno", errno)?;
        }
        Ok(())
    };
    match set() {
        Ok(()) => err,
        Err(failed) => failed,
    }
}

/// The core's error as the module's exception.
pub(crate) fn from_core(py: Python<'_>, error: &Error) -> PyErr {
    let fields: Vec<(String, String)> = error
        .field_errors()
        .iter()
        .map(|f| (f.path.clone(), f.reason.to_string()))
        .collect();
    let message = error.to_string();
    let policy = error.policy_name();
    match error.kind() {
        ErrorKind::Policy => with_attributes::<PolicyError>(py, message, &fields, policy, None),
        ErrorKind::Parse | ErrorKind::Input => {
            with_attributes::<SnapshotError>(py, message, &fields, policy, None)
        }
        ErrorKind::Capacity => with_attributes::<CapacityError>(py, message, &fields, None, None),
        ErrorKind::InvalidArgument => PyValueError::new_err(message),
        ErrorKind::OutOfMemory => pyo3::exceptions::PyMemoryError::new_err(message),
        // Decode, and kinds the core may add later: the base class.
        _ => with_attributes::<EgressError>(py, message, &fields, policy, None),
    }
}

/// A kernel adapter's error, by its kind (`egress_bpf::Error::kind`, the classification the
/// C ABI maps too): capacity a `CapacityError`, the caller's arguments a `ValueError`, the
/// rest (undecodable map bytes included) a `KernelError` with its errno.
#[cfg(feature = "bpf")]
pub(crate) fn from_kernel(py: Python<'_>, error: &egress_bpf::Error) -> PyErr {
    use egress_bpf::ErrorKind as Kind;
    match (error, error.kind()) {
        (egress_bpf::Error::Capacity(e), _) => from_core(py, &Error::Capacity(e.clone())),
        (egress_bpf::Error::OutOfMemory(e), _) => from_core(py, &Error::OutOfMemory(e.clone())),
        (_, Kind::InvalidArgument) => PyValueError::new_err(error.to_string()),
        _ => with_attributes::<KernelError>(
            py,
            error.to_string(),
            &[],
            None,
            Some(error.errno().map_or(0, |e| e.0)),
        ),
    }
}

/// The core's result as the module's.
pub(crate) trait IntoPy<T> {
    /// Converts the error, if any.
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T, E: Into<Error>> IntoPy<T> for Result<T, E> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| from_core(py, &e.into()))
    }
}

/// Adds the exception types to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("EgressError", py.get_type::<EgressError>())?;
    m.add("PolicyError", py.get_type::<PolicyError>())?;
    m.add("SnapshotError", py.get_type::<SnapshotError>())?;
    m.add("CapacityError", py.get_type::<CapacityError>())?;
    m.add("KernelError", py.get_type::<KernelError>())?;
    // Class-level defaults, for instances made by user code (`raise egw.PolicyError("x")`).
    let base = py.get_type::<EgressError>();
    base.setattr("path", py.None())?;
    base.setattr("errors", pyo3::types::PyList::empty(py))?;
    base.setattr("policy", py.None())?;
    py.get_type::<KernelError>().setattr("errno", 0)?;
    Ok(())
}
