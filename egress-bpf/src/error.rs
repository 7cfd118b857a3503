//! Errors of the kernel adapter: every one names the map, path or operation it is about.

use std::fmt;
use std::path::PathBuf;

use egress_core::engine::{CapacityError, PlanOp};

/// An `errno` value from a failed syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The calling thread's current `errno`.
    pub fn last() -> Self {
        Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    /// From a libbpf return value (negative error code) or, failing that, `errno`.
    pub(crate) fn from_ret(ret: i32) -> Self {
        if ret < 0 { Errno(-ret) } else { Self::last() }
    }

    /// Whether the kernel refused for lack of privilege.
    pub fn is_permission(self) -> bool {
        self.0 == libc::EPERM || self.0 == libc::EACCES
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            libc::EPERM => "EPERM",
            libc::ENOENT => "ENOENT",
            libc::EACCES => "EACCES",
            libc::EEXIST => "EEXIST",
            libc::EINVAL => "EINVAL",
            libc::ENOSPC => "ENOSPC",
            libc::E2BIG => "E2BIG",
            libc::ENOMEM => "ENOMEM",
            libc::EBADF => "EBADF",
            libc::EOPNOTSUPP => "EOPNOTSUPP",
            524 => "ENOTSUPP",
            _ => "errno",
        };
        let text = std::io::Error::from_raw_os_error(self.0);
        write!(f, "{name} ({}): {text}", self.0)
    }
}

/// What went wrong talking to the kernel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pin directory is not on a BPF filesystem.
    #[error("{}: not a BPF filesystem (mount one there: mount -t bpf bpf <dir>)", path.display())]
    NotBpffs {
        /// The directory.
        path: PathBuf,
    },
    /// A filesystem operation on the pin directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// A BPF syscall failed.
    #[error("{op} {target}: {errno}")]
    Syscall {
        /// What was attempted (`create map`, `pin`, `open pinned map`, ...).
        op: &'static str,
        /// The map name or path.
        target: String,
        /// The kernel's answer.
        errno: Errno,
    },
    /// An existing pinned map does not have the expected shape.
    #[error("{}: existing pinned map has {field} {found}, expected {expected}", path.display())]
    Mismatch {
        /// The pinned map.
        path: PathBuf,
        /// `type`, `key size`, `value size` or `max_entries`.
        field: &'static str,
        /// What the layout needs.
        expected: u64,
        /// What the map has.
        found: u64,
    },
    /// A map element could not be decoded into an entry.
    #[error("{map}: {detail}")]
    Decode {
        /// The map.
        map: String,
        /// Why.
        detail: String,
    },
    /// The plan would overflow a map: refused before anything was written.
    #[error(transparent)]
    Capacity(#[from] CapacityError),
    /// A plan stopped at one operation; those before it were written.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// Building, loading or running a BPF program failed.
    #[error("BPF program: {0}")]
    Program(String),
}

impl Error {
    /// The errno behind the error, if a syscall failed.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Syscall { errno, .. } => Some(*errno),
            Error::Apply(a) => Some(a.errno),
            Error::Io { source, .. } => source.raw_os_error().map(Errno),
            _ => None,
        }
    }
}

/// A plan stopped at `failed`; the `applied` operations before it are in the map.
#[derive(Debug, thiserror::Error)]
#[error(
    "operation {index} of {total} failed ({action:?} {source_ip} -> {destination} in {map}): {errno}; {applied} applied before it",
    action = failed.action,
    source_ip = failed.entry.source,
    destination = failed.entry.destination,
    map = failed.map
)]
pub struct ApplyError {
    /// Operations written (a prefix of the plan): acknowledge exactly these.
    pub applied: usize,
    /// Index of the failed operation in the plan.
    pub index: usize,
    /// Operations in the plan.
    pub total: usize,
    /// The operation that failed.
    pub failed: Box<PlanOp>,
    /// The kernel's answer.
    pub errno: Errno,
}

/// `Result` of this crate.
pub type Result<T> = std::result::Result<T, Error>;
