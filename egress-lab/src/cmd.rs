//! Running the system's tools (`ip`, `tc`, `bpftool`, `clang`), with errors that say what
//! was run and what it printed.

use std::process::{Command, Output};

/// Runs `program args`, its standard output on success.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String, String> {
    output(Command::new(program).args(args), program, args)
}

/// Runs `program args` in the network namespace `ns` only (`nsenter --net`): the mount
/// namespace stays ours, so the lab's pinned programs remain visible (`ip netns exec` would
/// remount `/sys` and hide a bpffs mounted there).
pub(crate) fn in_netns(ns: &str, program: &str, args: &[&str]) -> Result<String, String> {
    let netns = format!("--net=/run/netns/{ns}");
    let mut all = vec![netns.as_str(), program];
    all.extend_from_slice(args);
    run("nsenter", &all)
}

fn output(command: &mut Command, program: &str, args: &[&str]) -> Result<String, String> {
    let shown = format!("{program} {}", args.join(" "));
    let out: Output = command
        .output()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!("`{shown}` failed: {}", stderr.trim()));
    }
    String::from_utf8(out.stdout).map_err(|_| format!("`{shown}` printed non-UTF-8 text"))
}

/// This program run as `egress-lab ARGS` inside the network namespace `ns` (`ip netns
/// exec`: the echo server, the pods' clients), not yet spawned.
pub(crate) fn lab_in_netns(ns: &str, args: &[&str]) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| format!("the lab's own path: {e}"))?;
    let mut command = Command::new("ip");
    command.args(["netns", "exec", ns]).arg(exe).args(args);
    Ok(command)
}

/// Whether `program` can be run (found on `PATH`).
pub(crate) fn available(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() || !o.stdout.is_empty() || !o.stderr.is_empty())
}
