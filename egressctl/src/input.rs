//! Reading input files into snapshots, with errors that name the file.

use std::path::Path;

use egress_core::Error;
use egress_core::snapshot::{self, Snapshot};

use crate::Failure;
use crate::cli::NodeArgs;

/// Reads a whole input file, naming it in the error.
pub(crate) fn read_file(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure::Input(format!("{}: {e}", path.display())))
}

/// `<file>: <line>` for every line of a snapshot error.
pub(crate) fn snapshot_error(path: &Path, err: &Error) -> Failure {
    let lines: Vec<String> = err
        .to_string()
        .lines()
        .map(|l| format!("{}: {l}", path.display()))
        .collect();
    Failure::Input(lines.join("\n"))
}

/// Reads a snapshot file or a Kubernetes dump; the dump's conversion warnings go to stderr.
pub(crate) fn load_snapshot(path: &Path) -> Result<Snapshot, Failure> {
    let text = read_file(path)?;
    let loaded = snapshot::load(&text).map_err(|e| snapshot_error(path, &e))?;
    for w in &loaded.warnings {
        eprintln!("warning: {}: {w}", path.display());
    }
    Ok(loaded.snapshot)
}

/// The node to compute (`--node` or the snapshot's `localNode`), with `--interfaces` applied
/// to it: a device-list file, or `host` for this machine's devices.
pub(crate) fn select_node(
    snapshot: &mut Snapshot,
    path: &Path,
    args: &NodeArgs,
) -> Result<String, Failure> {
    let (node, interfaces) = (args.node.as_deref(), args.interfaces.as_deref());
    if node.is_none() && snapshot.local_node.is_none() {
        return Err(Failure::Input(format!(
            "{}: --node: Required value: the input names no localNode (a Kubernetes dump never does)",
            path.display()
        )));
    }
    let name = snapshot
        .local_node_name(node)
        .map_err(|e| Failure::Input(format!("{}: {e}", path.display())))?
        .to_owned();
    if let Some(spec) = interfaces {
        let devices = if spec == "host" {
            crate::host::devices()?
        } else {
            let file = Path::new(spec);
            snapshot::parse_interfaces(&read_file(file)?).map_err(|e| snapshot_error(file, &e))?
        };
        snapshot
            .set_devices(&name, devices)
            .map_err(|e| Failure::Input(e.to_string()))?;
    }
    Ok(name)
}

/// Loads a snapshot for one node: `--node`/`--interfaces` applied, and with `strict`,
/// invalid policies refused (one line per error) instead of warned about.
pub(crate) fn load_for_node(
    path: &Path,
    args: &NodeArgs,
    strict: bool,
) -> Result<(Snapshot, String), Failure> {
    let mut snapshot = load_snapshot(path)?;
    let node = select_node(&mut snapshot, path, args)?;
    if strict {
        let invalid: Vec<String> = snapshot
            .invalid_policies()
            .flat_map(|(i, errs)| {
                let label = crate::diagnostics::policy_label(errs.name.as_deref(), i);
                errs.errors
                    .iter()
                    .map(move |e| format!("{}: {label}: {e}", path.display()))
                    .collect::<Vec<_>>()
            })
            .collect();
        if !invalid.is_empty() {
            return Err(Failure::Input(invalid.join("\n")));
        }
    }
    Ok((snapshot, node))
}
