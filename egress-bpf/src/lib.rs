//! # egress-bpf
//!
//! The Linux adapter of egress-gateway: it creates or opens Cilium's pinned egress gateway
//! LPM-trie maps (`cilium_egress_gw_policy_v4[_v2]`, `cilium_egress_gw_policy_v6`) with
//! Cilium's type, flags and sizes, writes `egress-core` plans into them in order (upserts
//! before deletes, batched where the kernel allows, stopping at the first failure and
//! reporting exactly how far it got), and dumps them back into entries. With the `testkit`
//! feature, `datapath` loads a small BPF program that makes the datapath's decision on those
//! very maps, so that tests can compare the kernel's verdicts with `Engine::lookup` (it runs
//! clang: a test kit, not part of the product).
//!
//! All `unsafe` code (libbpf calls, `mount`, `flock`) lives in one module, `sys`, each block
//! with the reason it is sound; the rest of the crate may not use it (`deny(unsafe_code)`).
#![deny(unsafe_code)]

pub mod bpffs;
#[cfg(feature = "testkit")]
pub mod datapath;
mod error;
mod lock;
mod maps;
mod sys;

pub use error::{ApplyError, BufferSizeError, Errno, Error, ErrorKind, Result};
pub use lock::{DEFAULT_WRITER_WAIT, WriterGuard};
pub use maps::{
    DEFAULT_PIN_DIR, EgressMaps, PinnedMap, Reconciled, Unreadable, hex, map_flags, map_type,
};
