//! Reading input files into snapshots, with errors that name the file.

use std::path::Path;

use egress_core::snapshot::{Snapshot, SnapshotError};

use crate::Failure;

/// Reads a whole input file, naming it in the error.
pub(crate) fn read_file(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure::Input(format!("{}: {e}", path.display())))
}

/// `<file>: <line>` for every line of a snapshot error.
pub(crate) fn snapshot_error(path: &Path, err: &SnapshotError) -> Failure {
    let lines: Vec<String> = err
        .to_string()
        .lines()
        .map(|l| format!("{}: {l}", path.display()))
        .collect();
    Failure::Input(lines.join("\n"))
}

/// Reads and parses a snapshot file.
pub(crate) fn load_snapshot(path: &Path) -> Result<Snapshot, Failure> {
    let text = read_file(path)?;
    Snapshot::parse(&text).map_err(|e| snapshot_error(path, &e))
}
