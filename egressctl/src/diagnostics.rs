//! Warning lines on stderr: invalid policies (as the Cilium agent logs them), policy
//! warnings and conflicts.

use egress_core::engine::{Diagnostics, InvalidPolicy};
use egress_core::entries::Conflict;
use egress_core::policy::{PolicyErrors, Warning};
use egress_core::snapshot::Snapshot;

/// `<name>` or `#<index>` for a policy without a readable name (the core's
/// [`InvalidPolicy`] naming).
pub(crate) fn policy_label(index: usize, errors: &PolicyErrors) -> String {
    InvalidPolicy::new(index, errors).policy
}

/// One line per warning of a valid policy, as the core's diagnostics say it.
pub(crate) fn policy_warning_line(policy: &str, warning: &Warning) -> String {
    format!("warning: {policy}: {warning}")
}

/// One line per conflict: the key, the winner and the losers, and that Cilium itself would
/// not choose deterministically there.
pub(crate) fn conflict_line(c: &Conflict) -> String {
    let e = &c.winner.entry;
    let losers: Vec<String> = c.losers.iter().map(ToString::to_string).collect();
    format!(
        "warning: conflict on {} -> {}: {} is stored (gateway {}, egress {}); overridden: {} \
         (Cilium's own choice between them is not deterministic; this one follows SEMANTICS B.1)",
        e.source,
        e.destination,
        c.winner,
        e.gateway_ip,
        e.egress_ip,
        losers.join(", ")
    )
}

/// The warning for a node that is a gateway of some entries while the input does not say
/// what its devices are: its egress IPs cannot be derived, so those rows drop traffic.
pub(crate) fn unknown_devices_line(
    snapshot: &Snapshot,
    node: &str,
    maps: &egress_core::entries::MapEntries,
) -> Option<String> {
    let ipv4 = snapshot.nodes.get(node)?.ipv4?;
    let gateway_rows = maps.iter().filter(|e| e.gateway_ip == ipv4).count();
    if gateway_rows == 0 || snapshot.devices_known(node) {
        return None;
    }
    let entries = if gateway_rows == 1 {
        "entry"
    } else {
        "entries"
    };
    Some(format!(
        "warning: node {node} is the gateway of {gateway_rows} {entries} but the input does not \
         say what its devices are, so their egress IP is 0.0.0.0 (traffic dropped): give them \
         with --interfaces FILE (or --interfaces host on that node)"
    ))
}

/// Prints the warnings `list`-like commands give for a snapshot's policies — the core's
/// diagnostics of them (SEMANTICS B.7: what every binding's load returns), each line after
/// `warning: ` — and the Cilium releases the input names; returns how many warnings it
/// printed.
pub(crate) fn print_policy_diagnostics(snapshot: &Snapshot) -> usize {
    let mut printed = print_version_lines(snapshot);
    let diagnostics = Diagnostics::of_policies(snapshot);
    for invalid in &diagnostics.invalid_policies {
        printed += 1;
        crate::note!("warning: {invalid}");
    }
    for warning in &diagnostics.warnings {
        printed += 1;
        crate::note!("warning: {warning}");
    }
    printed
}

/// What the input says of the cluster's Cilium release (its agent DaemonSet or
/// `cilium-config` ConfigMap), against the version the maps are computed for: a line saying
/// which release it is, and a warning when it is another version. Returns the warnings.
pub(crate) fn print_version_lines(snapshot: &Snapshot) -> usize {
    let computed = snapshot.cilium_version;
    let mut warnings = 0;
    for found in &snapshot.detected_versions {
        match found.version {
            Some(v) if v == computed => {
                crate::note!("cilium: {found}: computed as Cilium {v}");
            }
            Some(v) => {
                warnings += 1;
                crate::note!(
                    "warning: {found}, but the maps are computed as Cilium {computed}: pass \
                     --cilium-version {v} to reproduce that cluster"
                );
            }
            None => {
                warnings += 1;
                crate::note!(
                    "warning: {found}, a release egressctl does not reproduce (it knows {}): \
                     computed as Cilium {computed}",
                    egress_core::version::CiliumVersion::NAMES.join(", ")
                );
            }
        }
    }
    warnings
}

/// `--strict` after `warnings` warnings: exit 1, the output already printed.
pub(crate) fn strict_failure(warnings: usize) -> crate::Failure {
    let plural = if warnings == 1 { "" } else { "s" };
    crate::Failure::Input(format!(
        "--strict: {warnings} warning{plural} (above) make this an error"
    ))
}

/// One summary line per valid policy, in file order: `<policy>: N endpoints, gateways
/// [node, ...], M dropped` — what it selects, where their traffic leaves, and how many of
/// them have no gateway (their traffic is dropped). A policy that selects nothing, or whose
/// gateways match no node, shows it here instead of staying silent.
pub(crate) fn policy_summary_lines(
    snapshot: &Snapshot,
    choices: &[egress_core::entries::GatewayChoice],
) -> Vec<String> {
    // One pass over the choices (policies × endpoints can be millions), grouped by policy.
    #[derive(Default)]
    struct Summary<'a> {
        endpoints: usize,
        dropped: usize,
        gateways: std::collections::BTreeSet<&'a str>,
    }
    let mut by_policy: std::collections::HashMap<&str, Summary<'_>> =
        std::collections::HashMap::new();
    for c in choices {
        let s = by_policy.entry(&*c.policy).or_default();
        s.endpoints += 1;
        match c.gateway.node.as_deref() {
            Some(node) => {
                s.gateways.insert(node);
            }
            None => s.dropped += 1,
        }
    }
    let none = Summary::default();
    snapshot
        .policies
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .map(|p| {
            let s = by_policy.get(p.name.as_str()).unwrap_or(&none);
            let endpoints = if s.endpoints == 1 {
                "endpoint"
            } else {
                "endpoints"
            };
            let gateways: Vec<&str> = s.gateways.iter().copied().collect();
            format!(
                "{}: {} {endpoints}, gateways [{}], {} dropped",
                p.name,
                s.endpoints,
                gateways.join(", "),
                s.dropped
            )
        })
        .collect()
}
