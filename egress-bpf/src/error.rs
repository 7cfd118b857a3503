//! Errors of the kernel adapter: every one names the map, path or operation it is about.

use std::fmt;
use std::path::PathBuf;

use egress_core::AllocError;
use egress_core::engine::{AckError, CapacityError, PlanError, PlanOp};
use egress_core::field::FieldError;
use egress_core::maps::Layout;

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
            libc::EROFS => "EROFS",
            libc::EISDIR => "EISDIR",
            libc::ENOTDIR => "ENOTDIR",
            libc::EBUSY => "EBUSY",
            libc::EAGAIN => "EAGAIN",
            libc::EFAULT => "EFAULT",
            libc::EMFILE => "EMFILE",
            libc::ENFILE => "ENFILE",
            libc::ELOOP => "ELOOP",
            libc::ENAMETOOLONG => "ENAMETOOLONG",
            libc::EIO => "EIO",
            libc::EINTR => "EINTR",
            524 => "ENOTSUPP",
            _ => "errno",
        };
        let text = std::io::Error::from_raw_os_error(self.0);
        write!(f, "{name} ({}): {text}", self.0)
    }
}

/// A map's shape value as a message shows it: a map type by its name and number
/// (`lpm_trie (11)`), other fields as numbers.
fn shape_value(field: &str, value: u64) -> String {
    if field != "type" {
        return value.to_string();
    }
    const TYPES: [&str; 34] = [
        "unspec",
        "hash",
        "array",
        "prog_array",
        "perf_event_array",
        "percpu_hash",
        "percpu_array",
        "stack_trace",
        "cgroup_array",
        "lru_hash",
        "lru_percpu_hash",
        "lpm_trie",
        "array_of_maps",
        "hash_of_maps",
        "devmap",
        "sockmap",
        "cpumap",
        "xskmap",
        "sockhash",
        "cgroup_storage",
        "reuseport_sockarray",
        "percpu_cgroup_storage",
        "queue",
        "stack",
        "sk_storage",
        "devmap_hash",
        "struct_ops",
        "ringbuf",
        "inode_storage",
        "task_storage",
        "bloom_filter",
        "user_ringbuf",
        "cgrp_storage",
        "arena",
    ];
    match usize::try_from(value).ok().and_then(|i| TYPES.get(i)) {
        Some(name) => format!("{name} ({value})"),
        None => format!("map type {value}"),
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
    /// Another writer (another process, or another handle of this one) holds the pin
    /// directory's writer lock: nothing was read or written.
    #[error(
        "another writer holds {} (waited {:.1} s): one writer per pin directory; nothing was written",
        dir.display(),
        waited.as_secs_f64()
    )]
    Busy {
        /// The pin directory.
        dir: PathBuf,
        /// How long this writer waited.
        waited: std::time::Duration,
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
    #[error("{}: existing pinned map has {field} {}, expected {}", path.display(),
        shape_value(field, *found), shape_value(field, *expected))]
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
    /// The map pinned at `path` is no longer the one this handle writes: the pin was deleted
    /// or replaced under a running program (writes would go to a map nobody reads).
    #[error("{}: the pinned map was {what} since it was opened: reopen the maps (nothing was written)", path.display())]
    Unpinned {
        /// The pin.
        path: PathBuf,
        /// `deleted` or `replaced`.
        what: &'static str,
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
    /// Memory the machine refused (a plan's operations): nothing was written.
    #[error(transparent)]
    OutOfMemory(#[from] AllocError),
    /// A plan stopped at one operation; those before it were written.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The engine refused the acknowledgement of what was written (B.8).
    #[error(transparent)]
    Ack(#[from] AckError),
    /// An argument the core's rules refuse (a capacity of 0), naming it.
    #[error(transparent)]
    Argument(#[from] FieldError),
    /// A plan operation is for a map that is not one of these maps (a plan made for the
    /// other IPv4 layout, or for other maps): the plan was refused before anything was
    /// written.
    #[error(
        "operation {index} of {total} is for map {found}, not one of these maps ({}, {layout:?} layout): plan refused, nothing was written",
        map_list(*.layout)
    )]
    PlanWrongMap {
        /// Index of the operation in the plan.
        index: usize,
        /// Operations in the plan.
        total: usize,
        /// The map the operation is for.
        found: &'static str,
        /// These maps' IPv4 map (the one read back: `_v4_v2` for the dual layout, which also
        /// writes the legacy map).
        ipv4: &'static str,
        /// These maps' IPv6 map.
        ipv6: &'static str,
        /// These maps' layout.
        layout: Layout,
    },
    /// A plan operation's key or value does not have the size of the map it is for: the
    /// plan was refused before anything was written.
    #[error(
        "operation {index} of {total} for {map}: {field} of {found} bytes, the map's {field} size is {expected}: plan refused, nothing was written"
    )]
    PlanWrongSize {
        /// Index of the operation in the plan.
        index: usize,
        /// Operations in the plan.
        total: usize,
        /// The map.
        map: &'static str,
        /// `key` or `value`.
        field: &'static str,
        /// The map's size.
        expected: usize,
        /// The operation's size.
        found: usize,
    },
    /// The engine makes plans for another IPv4 layout than these maps have: nothing was
    /// taken from it or written.
    #[error(
        "the engine plans for the {engine:?} layout ({}) but the maps have the {maps:?} layout ({}): nothing was written",
        .engine.ipv4_map_name(),
        .maps.ipv4_map_name()
    )]
    LayoutMismatch {
        /// The engine's configured layout.
        engine: Layout,
        /// The maps' layout.
        maps: Layout,
    },
    /// A buffer handed to a map syscall does not have the map's size: refused before the
    /// kernel was called.
    #[error(transparent)]
    BufferSize(#[from] BufferSizeError),
    /// Building, loading or running a BPF program failed.
    #[error("BPF program: {0}")]
    Program(String),
}

impl From<PlanError> for Error {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::Capacity(c) => Error::Capacity(c),
            PlanError::OutOfMemory(a) => Error::OutOfMemory(a),
        }
    }
}

/// What kind of failure an [`Error`] is, the one classification every binding maps to its
/// own (a C result code, a Python exception class).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A map's desired state exceeds its capacity; nothing was written.
    Capacity,
    /// Memory the machine refused; nothing was written.
    OutOfMemory,
    /// Map bytes that do not decode into an entry.
    Decode,
    /// The maps, the plan or the directory are not what the call needs: the caller's
    /// arguments (another layout, other sizes, not a bpffs, a buffer of the wrong size).
    InvalidArgument,
    /// The kernel refused or failed (a syscall's errno, a file that could not be read, a pin
    /// replaced under the maps, a plan stopped part way).
    Kernel,
}

impl Error {
    /// The error's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Capacity(_) => ErrorKind::Capacity,
            Error::OutOfMemory(_) => ErrorKind::OutOfMemory,
            Error::Decode { .. } => ErrorKind::Decode,
            Error::LayoutMismatch { .. }
            | Error::Mismatch { .. }
            | Error::NotBpffs { .. }
            | Error::PlanWrongMap { .. }
            | Error::PlanWrongSize { .. }
            | Error::Ack(_)
            | Error::Argument(_)
            | Error::BufferSize(_) => ErrorKind::InvalidArgument,
            _ => ErrorKind::Kernel,
        }
    }

    /// The errno behind the error, if a syscall failed.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Syscall { errno, .. } => Some(*errno),
            Error::Apply(a) => Some(a.errno),
            Error::Io { source, .. } => source.raw_os_error().map(Errno),
            Error::Busy { .. } => Some(Errno(libc::EWOULDBLOCK)),
            _ => None,
        }
    }
}

/// A plan stopped at `failed`; the `applied` operations before it are in the map.
#[derive(Debug, thiserror::Error)]
#[error(
    "operation {index} of {total} failed ({action:?} {subject} in {map}): {errno}; {applied} applied before it",
    action = failed.action(),
    subject = failed.subject(),
    map = failed.map()
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

/// A buffer for a map syscall whose length is not what the map's key or value size requires
/// (count × size for a batch): refused before the kernel was called, which would otherwise
/// have read or written past the buffer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{map}: {buffer} buffer of {found} bytes, the map needs {expected}; the kernel was not called"
)]
pub struct BufferSizeError {
    /// The map.
    pub map: &'static str,
    /// `key`, `value`, `next key`, `keys` or `values` (the last two: a batch).
    pub buffer: &'static str,
    /// Bytes the map needs.
    pub expected: usize,
    /// Bytes given.
    pub found: usize,
}

/// `Result` of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// The maps of a layout, as an error names them: `a, b and c`.
fn map_list(layout: Layout) -> String {
    let names: Vec<&str> = layout.maps().iter().map(|m| m.name()).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.join(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One classification for every binding: the caller's arguments, the kernel's failures,
    /// capacity and undecodable bytes apart.
    #[test]
    fn errors_are_classified_once() {
        let not_bpffs = Error::NotBpffs {
            path: PathBuf::from("/tmp"),
        };
        assert_eq!(not_bpffs.kind(), ErrorKind::InvalidArgument);
        let io = Error::Io {
            path: PathBuf::from("/sys/fs/bpf/x"),
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        };
        assert_eq!(
            (io.kind(), io.errno()),
            (ErrorKind::Kernel, Some(Errno(libc::EACCES)))
        );
        let decode = Error::Decode {
            map: "cilium_egress_gw_policy_v4".to_owned(),
            detail: "prefix length 16 out of range".to_owned(),
        };
        assert_eq!((decode.kind(), decode.errno()), (ErrorKind::Decode, None));
        let capacity = Error::Capacity(CapacityError {
            map: egress_core::maps::MapId::V4Legacy,
            peak: 10,
            max_entries: 9,
        });
        assert_eq!(capacity.kind(), ErrorKind::Capacity);
    }
}
