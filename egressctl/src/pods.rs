//! `egressctl pods`: per endpoint, where its traffic leaves — policy, gateway node, egress
//! IP, and the gateway's public (ExternalIP) address: the source a partner outside sees.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use egress_core::entries::{self, Computation, GatewayChoice};
use egress_core::render;
use egress_core::snapshot::Snapshot;
use egress_core::version::Rules;

use crate::cli::PodsArgs;
use crate::input::load_for_node;
use crate::{Failure, emit};

/// One endpoint under one policy.
pub(crate) struct PodRow {
    /// `namespace/name`, or the uid.
    pub(crate) pod: String,
    /// Its addresses, comma-separated.
    pub(crate) ips: String,
    /// The policy.
    pub(crate) policy: String,
    /// The gateway node, or why there is none.
    pub(crate) gateway: String,
    /// The egress IP the gateway SNATs to (`-` when unknown or none).
    pub(crate) egress_ip: String,
    /// The gateway's ExternalIPs (`-` when the input has none).
    pub(crate) public_ip: String,
}

fn compute_for(snapshot: &Snapshot, node: &str, rules: Rules) -> Computation {
    entries::compute(&snapshot.state(), node, snapshot.devices_for(node), rules)
}

/// The rows, sorted by pod then policy. Gateway choices are read from `node`'s view; each
/// egress IP from its gateway's own view (it is derived on the gateway).
pub(crate) fn pod_rows(snapshot: &Snapshot, node: &str, rules: Rules) -> Vec<PodRow> {
    let choices = compute_for(snapshot, node, rules).choices;
    let gateways: BTreeSet<&str> = choices
        .iter()
        .filter_map(|c| c.gateway.node.as_deref())
        .collect();
    let per_gateway: Vec<(&str, Computation)> = gateways
        .iter()
        .map(|g| (*g, compute_for(snapshot, g, rules)))
        .collect();
    // Indexes, not scans per choice: there are policies × endpoints choices.
    let endpoints: HashMap<&str, &egress_core::cluster::Endpoint> = snapshot
        .endpoints
        .iter()
        .map(|e| (e.uid.as_str(), e))
        .collect();
    let on_gateway: HashMap<(&str, &str, &str), &GatewayChoice> = per_gateway
        .iter()
        .flat_map(|(g, c)| {
            c.choices
                .iter()
                .map(move |x| ((*g, &*x.policy, &*x.endpoint), x))
        })
        .collect();
    let mut rows = Vec::new();
    for choice in &choices {
        let Some(ep) = endpoints.get(&*choice.endpoint) else {
            continue;
        };
        let ips: Vec<String> = ep.ips.iter().map(IpAddr::to_string).collect();
        let (gateway, egress_ip, public_ip) = match &choice.gateway.node {
            None => (
                "(none: traffic dropped)".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
            ),
            Some(gw) => {
                let egress = on_gateway
                    .get(&(gw.as_str(), &*choice.policy, &*choice.endpoint))
                    .and_then(|x| x.gateway.egress.as_ref())
                    .map_or_else(
                        || "-".to_owned(),
                        |e| {
                            if !e.ipv4.is_unspecified() {
                                e.ipv4.to_string()
                            } else if snapshot.devices_known(gw) {
                                "(none on its devices)".to_owned()
                            } else {
                                "(devices unknown)".to_owned()
                            }
                        },
                    );
                let public: Vec<String> = snapshot
                    .nodes
                    .get(gw)
                    .map(|n| n.external_ips.iter().map(IpAddr::to_string).collect())
                    .unwrap_or_default();
                let public = if public.is_empty() {
                    "-".to_owned()
                } else {
                    public.join(",")
                };
                (gw.clone(), egress, public)
            }
        };
        rows.push(PodRow {
            pod: ep.display_name(),
            ips: ips.join(","),
            policy: choice.policy.to_string(),
            gateway,
            egress_ip,
            public_ip,
        });
    }
    rows.sort_by(|a, b| (&a.pod, &a.policy).cmp(&(&b.pod, &b.policy)));
    rows
}

pub(crate) fn run(args: &PodsArgs) -> Result<(), Failure> {
    let (snapshot, node) = load_for_node(&args.files, &args.node, false)?;
    let rows = pod_rows(&snapshot, &node, args.node.rules());
    if rows.is_empty() {
        crate::note!("No selected endpoints.");
        return Ok(());
    }
    let mut table = vec![
        [
            "Pod",
            "Pod IP",
            "Policy",
            "Gateway node",
            "Egress IP",
            "Public IP",
        ]
        .map(str::to_owned),
    ];
    table.extend(
        rows.into_iter()
            .map(|r| [r.pod, r.ips, r.policy, r.gateway, r.egress_ip, r.public_ip]),
    );
    emit(&render::tabulate(&table));
    Ok(())
}
