//! The standard workloads of `shared/design/PERFORMANCE.md`, generated from fixed seeds, and
//! the measurements the criterion benches and the `report` binary share.

pub mod c_abi;
pub mod compact_layout;
pub mod k8s;
pub mod kernel;
pub mod measure;
pub mod snapshot_out;
pub mod workloads;
