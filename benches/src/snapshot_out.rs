//! Workload objects written in the public snapshot format, for the benchmarks of the
//! bindings: they load what a user loads (`FromSnapshot`, `Engine.from_snapshot`) and the
//! Rust side measures the same file. Only what the workloads use is written; anything else
//! (match expressions, timestamps, identity labels, ...) is refused rather than dropped, and
//! the caller checks that the file loads back into the same entries.

use std::collections::BTreeMap;

use egress_core::cluster::{Endpoint, Node};
use egress_core::device::{Device, Families};
use egress_core::policy::{GatewaySpec, Policy};
use egress_core::selector::LabelSelector;
use serde_json::{Map, Value, json};

use crate::workloads::Objects;

/// `objects` as a snapshot document.
pub fn snapshot_json(objects: &Objects) -> Result<Value, String> {
    Ok(json!({
        "localNode": objects.local_node,
        "nodes": objects.nodes.iter().map(node).collect::<Result<Vec<_>, _>>()?,
        "endpoints": objects.endpoints.iter().map(endpoint).collect::<Result<Vec<_>, _>>()?,
        "policies": objects.policies.iter().map(policy).collect::<Result<Vec<_>, _>>()?,
        "interfaces": objects.devices.iter().map(device).collect::<Vec<_>>(),
    }))
}

fn node(n: &Node) -> Result<Value, String> {
    if n.ipv6.is_some() || !n.external_ips.is_empty() || n.interfaces.is_some() {
        return Err(format!(
            "node {}: IPv6, external IPs or devices are not written",
            n.name
        ));
    }
    let mut out = json!({"name": n.name, "labels": labels(n.labels.iter())});
    if let Some(ip) = n.ipv4 {
        out["ipv4"] = json!(ip.to_string());
    }
    out["ready"] = json!(n.ready);
    out["weight"] = json!(n.weight);
    Ok(out)
}

fn endpoint(e: &Endpoint) -> Result<Value, String> {
    if e.identity_labels.is_some() {
        return Err(format!(
            "endpoint {}: identity labels are not written",
            e.uid
        ));
    }
    let mut out = Map::new();
    out.insert("uid".into(), json!(e.uid));
    let optional = [
        ("namespace", &e.namespace),
        ("name", &e.name),
        ("serviceAccount", &e.service_account),
        ("node", &e.node),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            out.insert(key.into(), json!(v));
        }
    }
    out.insert("labels".into(), labels(e.labels.iter()));
    out.insert("namespaceLabels".into(), labels(e.namespace_labels.iter()));
    out.insert(
        "ips".into(),
        json!(e.ips.iter().map(ToString::to_string).collect::<Vec<_>>()),
    );
    Ok(Value::Object(out))
}

fn policy(p: &Policy) -> Result<Value, String> {
    if p.creation_timestamp.is_some() {
        return Err(format!("policy {}: timestamps are not written", p.name));
    }
    let selectors = p
        .selectors
        .iter()
        .map(|item| {
            let mut out = Map::new();
            let parts = [
                ("podSelector", &item.pod_selector),
                ("namespaceSelector", &item.namespace_selector),
                ("nodeSelector", &item.node_selector),
            ];
            for (key, selector) in parts {
                if let Some(s) = selector {
                    out.insert(key.into(), label_selector(s, &p.name)?);
                }
            }
            Ok(Value::Object(out))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let cidrs = |list: &[egress_core::netip::Cidr]| -> Value {
        json!(list.iter().map(ToString::to_string).collect::<Vec<_>>())
    };
    let mut spec = json!({
        "selectors": selectors,
        "destinationCIDRs": cidrs(&p.destination_cidrs),
        "egressGateway": gateway(&p.egress_gateway, &p.name)?,
    });
    if !p.excluded_cidrs.is_empty() {
        spec["excludedCIDRs"] = cidrs(&p.excluded_cidrs);
    }
    if !p.egress_gateways.is_empty() {
        spec["egressGateways"] = p
            .egress_gateways
            .iter()
            .map(|g| gateway(g, &p.name))
            .collect::<Result<Vec<_>, _>>()?
            .into();
    }
    let mut metadata = json!({"name": p.name});
    if let Some(ns) = &p.namespace {
        metadata["namespace"] = json!(ns);
    }
    Ok(json!({
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumEgressGatewayPolicy",
        "metadata": metadata,
        "spec": spec,
    }))
}

fn gateway(g: &GatewaySpec, policy: &str) -> Result<Value, String> {
    let mut out = json!({"nodeSelector": label_selector(&g.node_selector, policy)?});
    if let Some(ip) = g.egress_ip {
        out["egressIP"] = json!(ip.to_string());
    }
    if let Some(interface) = &g.interface {
        out["interface"] = json!(interface);
    }
    Ok(out)
}

fn label_selector(s: &LabelSelector, policy: &str) -> Result<Value, String> {
    if !s.match_expressions.is_empty() {
        return Err(format!(
            "policy {policy}: match expressions are not written"
        ));
    }
    let pairs = s.match_labels.iter().map(|(k, v)| (k, v));
    Ok(json!({"matchLabels": labels(pairs)}))
}

fn labels<'a, K, V>(pairs: impl Iterator<Item = (&'a K, &'a V)>) -> Value
where
    K: AsRef<str> + ?Sized + 'a,
    V: AsRef<str> + ?Sized + 'a,
{
    let map: BTreeMap<&str, &str> = pairs.map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
    json!(map)
}

fn device(d: &Device) -> Value {
    let default_route = match (
        d.default_route.contains(Families::IPV4),
        d.default_route.contains(Families::IPV6),
    ) {
        (true, true) => json!(true),
        (false, false) => json!(false),
        (true, false) => json!(["ipv4"]),
        (false, true) => json!(["ipv6"]),
    };
    json!({
        "name": d.name,
        "index": d.index,
        "altNames": d.alt_names,
        "addresses": d.addresses.iter().map(|a| format!("{}/{}", a.addr, a.prefix_len)).collect::<Vec<_>>(),
        "defaultRoute": default_route,
    })
}

#[cfg(test)]
mod tests {
    use egress_core::engine::{Engine, EngineConfig};
    use egress_core::gateway::Selection;
    use egress_core::render::json_text;
    use egress_core::selector::{Operator, Requirement};

    use super::*;
    use crate::workloads;

    #[test]
    fn a_written_cluster_loads_into_the_same_entries() {
        let objects = workloads::cluster(5, 300, 12);
        let text = json_text(&snapshot_json(&objects).unwrap());
        let loaded =
            Engine::load_snapshot(&text, None, "localNode", EngineConfig::new("")).unwrap();
        assert!(loaded.invalid_policies.is_empty());
        let direct = objects.engine(Selection::Cilium, 16384);
        assert!(!direct.entries_v4().is_empty());
        assert_eq!(loaded.engine.entries_v4(), direct.entries_v4());
        assert_eq!(loaded.engine.entries_v6(), direct.entries_v6());
    }

    #[test]
    fn what_it_cannot_write_is_refused() {
        let mut objects = workloads::cluster(5, 10, 2);
        objects.policies[1]
            .egress_gateway
            .node_selector
            .match_expressions = vec![Requirement {
            key: "k".into(),
            operator: Operator::Exists,
            values: vec![],
        }];
        let err = snapshot_json(&objects).unwrap_err();
        assert!(err.contains(&objects.policies[1].name), "{err}");
    }
}
