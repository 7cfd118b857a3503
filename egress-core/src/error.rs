//! The crate's one error type: every public fallible function returns [`Error`] or a type
//! that converts into it, so each binding maps errors to its own surface (C result codes,
//! Python exceptions, Go errors) in one place, from [`Error::kind`].

use crate::document::ParseError;
use crate::field::{FieldError, Reason};
use crate::maps::{CapacityError, DecodeError};
use crate::policy::PolicyErrors;

/// Why an operation of this crate failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text is not YAML/JSON.
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// The text holds no document, or several where one is expected.
    #[error("expected one document, found {0}")]
    DocumentCount(usize),
    /// Input errors of a snapshot or of one object (node, endpoint, devices, namespace),
    /// each naming its path; never empty.
    #[error("{}", join_lines(.0))]
    Input(Vec<FieldError>),
    /// A policy is invalid: all its errors, each with its field path.
    #[error("{0}")]
    Policy(#[from] PolicyErrors),
    /// A map's desired state exceeds its `max_entries`; nothing was written.
    #[error("{0}")]
    Capacity(#[from] CapacityError),
    /// Map bytes that do not decode into an entry.
    #[error("{0}")]
    Decode(#[from] DecodeError),
    /// An argument's value is not accepted (an unknown selection, layout or map name, a
    /// node that is not in the cluster, ...); the path names the argument.
    #[error("{0}")]
    InvalidArgument(FieldError),
    /// Memory the machine refused: nothing was changed or handed out.
    #[error("{0}")]
    OutOfMemory(#[from] AllocError),
}

/// An allocation the machine refused (counted first, then reserved at once, so that a
/// refusal is this error and never an abort of the host process).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("out of memory: {count} {what} could not be allocated; nothing was changed")]
pub struct AllocError {
    /// What was being allocated (`plan operations`, `entries`, `bytes`).
    pub what: &'static str,
    /// How many.
    pub count: usize,
}

/// The stable category of an [`Error`]: what bindings map their codes from. Values are
/// never renumbered or reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u32)]
pub enum ErrorKind {
    /// Text that is not YAML/JSON, or the wrong number of documents.
    Parse = 1,
    /// Input errors of a snapshot or object.
    Input = 2,
    /// An invalid policy.
    Policy = 3,
    /// A map's desired state exceeds its capacity.
    Capacity = 4,
    /// Map bytes that do not decode.
    Decode = 5,
    /// An argument's value.
    InvalidArgument = 6,
    /// Memory the machine refused.
    OutOfMemory = 7,
}

impl Error {
    /// The error's stable category.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Parse(_) | Error::DocumentCount(_) => ErrorKind::Parse,
            Error::Input(_) => ErrorKind::Input,
            Error::Policy(_) => ErrorKind::Policy,
            Error::Capacity(_) => ErrorKind::Capacity,
            Error::Decode(_) => ErrorKind::Decode,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::OutOfMemory(_) => ErrorKind::OutOfMemory,
        }
    }

    /// Every field error, in order (empty for errors not about a field).
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            Error::Input(errors) => errors,
            Error::Policy(p) => &p.errors,
            Error::InvalidArgument(e) => std::slice::from_ref(e),
            _ => &[],
        }
    }

    /// The same error about a value found at `prefix` (`endpoint`: `uid` becomes
    /// `endpoint.uid`), for a binding whose argument holds the value checked.
    pub fn under(self, prefix: &str) -> Self {
        let nest = |mut e: FieldError| {
            e.path = format!("{prefix}.{}", e.path);
            e
        };
        match self {
            Error::Input(errors) => Error::Input(errors.into_iter().map(nest).collect()),
            Error::InvalidArgument(e) => Error::InvalidArgument(nest(e)),
            other => other,
        }
    }

    /// The path of the first field error, where there is one.
    pub fn path(&self) -> Option<&str> {
        self.field_errors().first().map(|e| e.path.as_str())
    }

    /// The invalid policy's name, for [`Error::Policy`] when it could be read.
    pub fn policy_name(&self) -> Option<&str> {
        match self {
            Error::Policy(p) => p.name.as_deref(),
            _ => None,
        }
    }
}

impl From<crate::netip::AddrError> for Error {
    /// An address argument: [`Error::InvalidArgument`] at path `address`.
    fn from(e: crate::netip::AddrError) -> Self {
        Error::InvalidArgument(FieldError::invalid_str("address", &e.input, e.message))
    }
}

impl From<Vec<FieldError>> for Error {
    /// Input errors of one object: [`Error::Input`].
    fn from(errors: Vec<FieldError>) -> Self {
        Error::Input(errors)
    }
}

impl From<FieldError> for Error {
    /// A problem with one argument: [`Error::InvalidArgument`].
    fn from(e: FieldError) -> Self {
        Error::InvalidArgument(e)
    }
}

impl From<crate::timestamp::TimestampError> for Error {
    /// A timestamp argument: [`Error::InvalidArgument`] at path `timestamp`.
    fn from(e: crate::timestamp::TimestampError) -> Self {
        Error::InvalidArgument(FieldError::new(
            "timestamp",
            Reason::Forbidden(e.to_string()),
        ))
    }
}

fn join_lines(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
