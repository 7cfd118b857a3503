//! # egress-ffi — the C ABI of egress-gateway
//!
//! C and Go CNI plugins link this library (`libegress_ffi.a` or `.so`) with
//! `include/egress_gateway.h`, generated from these sources by cbindgen and committed. It
//! converts and delegates to egress-core (and egress-bpf behind feature `bpf`); it has no
//! domain logic.
//!
//! Conventions, the same for every export:
//! - opaque handles (`egress_engine`, `egress_error`, `egress_maps`), made and freed here;
//! - every export is `egress_<type>_<verb>` and returns an `egress_result` (`EGRESS_RESULT_OK`
//!   is 0); inputs first, outputs last (`*_out`);
//! - text is `(const uint8_t *ptr, size_t len)`, checked for UTF-8; a pointer may be NULL
//!   only when its length is 0; every required pointer is NULL-checked;
//! - enum values arrive as `uint32_t` and are checked (`EGRESS_RESULT_INVALID_ENUM`);
//! - panics never cross the boundary (`EGRESS_RESULT_PANIC`);
//! - details come through an optional `egress_error **error_out` (NULL: not wanted; set to
//!   NULL on success), freed by the caller with `egress_error_free` — no thread-local last
//!   error, since Go moves goroutines between threads;
//! - outputs of unknown size go to caller buffers: on `EGRESS_RESULT_INSUFFICIENT_SIZE` the
//!   `*_out` size or count says what is needed and nothing was written.
//!
//! Thread safety: calls taking a `const egress_engine *` (lookups and queries) may run
//! concurrently on one engine; calls taking an `egress_engine *` (events, plans) need
//! exclusive access to it. Different engines are independent.
#![allow(non_camel_case_types)] // the C names are the API

mod boundary;
mod engine;
mod error;
#[cfg(feature = "bpf")]
mod kernel;
mod names;
mod plan;
mod query;
mod types;
mod version;

pub use engine::*;
pub use error::*;
#[cfg(feature = "bpf")]
pub use kernel::*;
pub use names::*;
pub use plan::*;
pub use query::*;
pub use types::*;
pub use version::*;
