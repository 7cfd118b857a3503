//! Reading input files into snapshots, with errors that name the file.

use std::path::{Path, PathBuf};

use egress_core::Error;
use egress_core::snapshot::{self, Snapshot};

use crate::Failure;
use crate::cli::NodeArgs;

/// The largest input read (`--max-input`), set once at start.
static MAX_INPUT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// Sets the input size limit (`--max-input`).
pub(crate) fn set_max_input(bytes: u64) {
    let _ = MAX_INPUT.set(bytes);
}

/// Reads all of `reader` as UTF-8, at most `--max-input` bytes (64 MiB unless set):
/// `/dev/zero` or a runaway pipe is refused instead of filling the memory.
/// `size_hint`: the file's size when known, read into a buffer of exactly that size.
fn read_limited(
    reader: impl std::io::Read,
    name: &str,
    size_hint: Option<u64>,
) -> Result<String, Failure> {
    let limit = *MAX_INPUT.get().unwrap_or(&(64 << 20));
    let mut bytes = Vec::new();
    if let Some(size) = size_hint {
        // One byte more: the read that finds the end needs room to return 0.
        bytes.reserve_exact(usize::try_from(size.min(limit) + 1).unwrap_or(0));
    }
    std::io::Read::read_to_end(&mut reader.take(limit.saturating_add(1)), &mut bytes)
        .map_err(|e| Failure::Input(format!("{name}: {e}")))?;
    if bytes.len() as u64 > limit {
        return Err(Failure::Input(format!(
            "{name}: more than {limit} bytes: refused (raise --max-input to read it)"
        )));
    }
    String::from_utf8(bytes).map_err(|e| Failure::Input(format!("{name}: not UTF-8 text: {e}")))
}

/// Reads a whole input file, naming it in the error.
pub(crate) fn read_file(path: &Path) -> Result<String, Failure> {
    let file = std::fs::File::open(path)
        .map_err(|e| Failure::Input(format!("{}: {e}", path.display())))?;
    let size = file
        .metadata()
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    read_limited(file, &path.display().to_string(), size)
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

/// The text of an input: a file, or standard input for `-`.
pub(crate) fn read_input(path: &Path) -> Result<String, Failure> {
    if path == Path::new("-") {
        return read_limited(std::io::stdin().lock(), "-: standard input", None);
    }
    read_file(path)
}

/// How errors and warnings name a set of inputs: the file, or `a + b` for several.
pub(crate) fn label(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(" + ")
}

/// Reads one or more inputs as one cluster (later objects replace earlier ones of the same
/// kind and name); conversion warnings go to stderr.
pub(crate) fn load_snapshots(
    paths: &[PathBuf],
    version: egress_core::version::CiliumVersion,
) -> Result<Snapshot, Failure> {
    if paths
        .iter()
        .filter(|p| p.as_path() == Path::new("-"))
        .count()
        > 1
    {
        return Err(Failure::Usage(
            "-f -: standard input can be read once".to_owned(),
        ));
    }
    let texts = paths
        .iter()
        .map(|p| read_input(p))
        .collect::<Result<Vec<_>, _>>()?;
    let loaded = snapshot::load_all_owned_for(texts, version).map_err(|(at, e)| match at {
        Some(i) => snapshot_error(&paths[i], &e),
        None => snapshot_error(Path::new(&label(paths)), &e),
    })?;
    for w in &loaded.warnings {
        crate::note!("warning: {}: {w}", label(paths));
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
    // `path` names the inputs in messages.
    let (node, interfaces) = (args.node.as_deref(), args.interfaces.as_deref());
    if node.is_none() && snapshot.local_node.is_none() {
        return Err(Failure::Input(format!(
            "{}: --node: Required value: the input names no localNode (a Kubernetes dump never does)",
            path.display()
        )));
    }
    let name = snapshot
        .node_to_compute(node, "--node")
        .map_err(|e| Failure::Input(format!("{}: {e}", path.display())))?
        .to_owned();
    if let Some(spec) = interfaces {
        let devices = if spec == "host" {
            crate::host::devices()?
        } else {
            let file = Path::new(spec);
            snapshot::parse_interfaces(&read_file(file)?).map_err(|e| snapshot_error(file, &e))?
        };
        snapshot.set_devices(&name, devices)?;
    }
    Ok(name)
}

/// Loads the inputs for one node: `--node`/`--interfaces` applied, and with `strict`,
/// invalid policies refused (one line per error) instead of warned about.
pub(crate) fn load_for_node(
    paths: &[PathBuf],
    args: &NodeArgs,
    strict: bool,
) -> Result<(Snapshot, String), Failure> {
    load_for_node_as(paths, args, strict, args.version.cilium_version)
}

/// [`load_for_node`] with policies validated by `version`'s rules.
pub(crate) fn load_for_node_as(
    paths: &[PathBuf],
    args: &NodeArgs,
    strict: bool,
    version: egress_core::version::CiliumVersion,
) -> Result<(Snapshot, String), Failure> {
    let mut snapshot = load_snapshots(paths, version)?;
    let path = PathBuf::from(label(paths));
    let node = select_node(&mut snapshot, &path, args)?;
    // Counted before anything is built: an amplifying input is refused here, in milliseconds.
    let [v4, v6] = snapshot.with_state(egress_core::entries::count);
    if v4 + v6 > args.max_output_entries {
        return Err(Failure::Input(format!(
            "{}: the maps would hold {} entries (IPv4 {v4}, IPv6 {v6}: each selected pod \
             address times its policies' CIDRs), more than --max-output-entries {}; nothing \
             was computed (raise it to compute them: a few hundred bytes of memory each)",
            path.display(),
            v4 + v6,
            args.max_output_entries
        )));
    }
    if strict {
        let path = &path;
        let invalid: Vec<String> = snapshot
            .invalid_policies()
            .flat_map(|(i, errs)| {
                let label = crate::diagnostics::policy_label(i, errs);
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
