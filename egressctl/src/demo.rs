//! `egressctl demo`: the seed's "group of egress nodes" cluster, embedded in the binary.

use std::collections::BTreeSet;

use egress_core::entries::{self, Computation};
use egress_core::gateway::Selection;
use egress_core::render;
use egress_core::snapshot::Snapshot;

use crate::diagnostics;
use crate::{Failure, emit};

/// A copy of `examples/snapshots/seed-gateway-group.yaml` (a test keeps them equal).
pub(crate) const SEED_GATEWAY_GROUP: &str = include_str!("../data/seed-gateway-group.yaml");

pub(crate) fn run() -> Result<(), Failure> {
    let snapshot = Snapshot::parse(SEED_GATEWAY_GROUP)
        .map_err(|e| Failure::Input(format!("embedded demo snapshot: {e}")))?;
    emit(&render_demo(&snapshot)?);
    diagnostics::print_policy_diagnostics(&snapshot);
    Ok(())
}

fn compute_for(snapshot: &Snapshot, node: &str) -> Computation {
    entries::compute(
        &snapshot.state(),
        node,
        snapshot.devices_for(node),
        Selection::Cilium,
    )
}

/// The demo's text: which gateway each pod uses, then every gateway node's map.
pub(crate) fn render_demo(snapshot: &Snapshot) -> Result<String, Failure> {
    let local = snapshot.local_node_name(None)?;
    let gateways: BTreeSet<String> = compute_for(snapshot, local)
        .choices
        .into_iter()
        .filter_map(|c| c.gateway.node.clone())
        .collect();
    let per_gateway: Vec<(&str, Computation)> = gateways
        .iter()
        .map(|g| (g.as_str(), compute_for(snapshot, g)))
        .collect();

    let mut out = String::from(
        "Cilium egress gateway, the seed's \"group of egress nodes\" case: each pod leaves the\n\
         cluster through the gateway FNV-1a(uid) mod n picks, SNATed to that gateway's egress IP.\n\n",
    );
    let mut rows =
        vec![["Pod", "Pod IP", "Policy", "Gateway node", "Egress IP"].map(str::to_owned)];
    let pod_rows = crate::pods::pod_rows(snapshot, local, Selection::Cilium.into())
        .into_iter()
        .map(|r| [r.pod, r.ips, r.policy, r.gateway, r.egress_ip]);
    rows.extend(pod_rows);
    out.push_str(&render::tabulate(&rows));
    for (node, computation) in &per_gateway {
        out.push_str(&format!("\nMaps programmed on gateway node {node} (every node holds an entry for every selected pod):\n"));
        out.push_str(
            &render::to_table(&computation.maps)
                .unwrap_or_else(|| "No entries found.\n".to_owned()),
        );
    }
    Ok(out)
}
