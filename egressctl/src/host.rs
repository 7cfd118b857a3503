//! `--interfaces host`: the running host's devices, addresses and default routes, read with
//! iproute2's JSON output and converted by the core.

use std::process::Command;

use egress_core::device::{self, Device};

use crate::Failure;

fn run_ip(args: &[&str]) -> Result<String, Failure> {
    let shown = format!("ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Failure::Input(format!("--interfaces host: cannot run `{shown}`: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Failure::Input(format!(
            "--interfaces host: `{shown}` failed: {}",
            err.trim()
        )));
    }
    String::from_utf8(out.stdout)
        .map_err(|_| Failure::Input(format!("--interfaces host: `{shown}` printed non-UTF-8")))
}

/// The host's devices.
pub(crate) fn devices() -> Result<Vec<Device>, Failure> {
    let addrs = run_ip(&["-j", "addr", "show"])?;
    let v4 = run_ip(&["-4", "-j", "route", "show", "default"])?;
    let v6 = run_ip(&["-6", "-j", "route", "show", "default"])?;
    device::from_iproute2(&addrs, &v4, &v6)
        .map_err(|e| Failure::Input(format!("--interfaces host: {e}")))
}
