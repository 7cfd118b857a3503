//! SEMANTICS B.10 (issue 23): a cluster without Cilium's objects — core `Pod`s and `Node`s —
//! gives the same maps as the same cluster as `CiliumEndpoint`s and `CiliumNode`s when the
//! uids are the same. The realistic dump (`examples/snapshots/dumps/tke-dump.yaml`) is turned
//! into its Pod/Node form here (each CiliumEndpoint a Pod of the same uid, namespace, name,
//! labels, service account, node and addresses; each CiliumNode a Node with the same
//! addresses in `status.addresses`), and both are computed for its gateway node in both
//! selection modes on every Cilium version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use egress_core::document::{self, Value};
use egress_core::entries;
use egress_core::gateway::Selection;
use egress_core::snapshot::{self, parse_interfaces};
use egress_core::version::{CiliumVersion, Rules};
use serde_json::{Map, Value as Json, json};

fn dumps() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/snapshots/dumps")
}

fn to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(*i as i64),
        Value::Float(f) => json!(f),
        Value::Str(s) => json!(s.as_str()),
        Value::Seq(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(pairs) => Json::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), to_json(v)))
                .collect(),
        ),
    }
}

/// The dump's objects as JSON, and their Pod/Node form.
fn both_forms() -> (String, String) {
    let text = std::fs::read_to_string(dumps().join("tke-dump.yaml")).unwrap();
    let objects: Vec<Json> = document::flatten_lists(document::parse_documents(&text).unwrap())
        .iter()
        .map(to_json)
        .collect();
    // The CiliumNodes' names by address, for the pods' spec.nodeName.
    let mut node_at = std::collections::HashMap::new();
    for o in &objects {
        if o["kind"] == "CiliumNode" {
            for a in o["spec"]["addresses"].as_array().into_iter().flatten() {
                node_at.insert(
                    a["ip"].as_str().unwrap().to_owned(),
                    o["metadata"]["name"].clone(),
                );
            }
        }
    }
    let mut converted = Vec::new();
    for o in &objects {
        match o["kind"].as_str() {
            Some("CiliumNode") => {
                let addresses: Vec<Json> = o["spec"]["addresses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| json!({"type": a["type"], "address": a["ip"]}))
                    .collect();
                converted.push(json!({
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": o["metadata"]["name"], "labels": o["metadata"]["labels"]},
                    "status": {"addresses": addresses},
                }));
            }
            Some("CiliumEndpoint") => {
                let status = &o["status"];
                // A CiliumEndpoint without an identity yet is skipped; its Pod would not be
                // (it has labels): left out of both forms' comparison.
                if status["identity"]["labels"]
                    .as_array()
                    .is_none_or(Vec::is_empty)
                {
                    continue;
                }
                let ips: Vec<Json> = status["networking"]["addressing"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|pair| {
                        ["ipv4", "ipv6"]
                            .into_iter()
                            .filter_map(|f| pair[f].as_str().map(|ip| json!({"ip": ip})))
                    })
                    .collect();
                let node = node_at
                    .get(status["networking"]["node"].as_str().unwrap_or(""))
                    .cloned()
                    .unwrap_or(Json::Null);
                let mut metadata = Map::new();
                for key in ["name", "namespace", "uid", "labels"] {
                    metadata.insert(key.to_owned(), o["metadata"][key].clone());
                }
                converted.push(json!({
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": metadata,
                    "spec": {"nodeName": node, "serviceAccountName": status["service-account"]},
                    "status": {"phase": "Running", "podIPs": ips},
                }));
            }
            _ => converted.push(o.clone()),
        }
    }
    let cilium: Vec<&Json> = objects
        .iter()
        .filter(|o| {
            o["kind"] != "CiliumEndpoint"
                || o["status"]["identity"]["labels"]
                    .as_array()
                    .is_some_and(|l| !l.is_empty())
        })
        .collect();
    (
        json!({"apiVersion": "v1", "kind": "List", "items": cilium}).to_string(),
        json!({"apiVersion": "v1", "kind": "List", "items": converted}).to_string(),
    )
}

#[test]
fn pods_and_nodes_give_the_maps_of_their_cilium_endpoints_and_nodes() {
    let (cilium, pods) = both_forms();
    assert!(pods.contains("\"kind\":\"Pod\"") && pods.contains("\"kind\":\"Node\""));
    assert!(!pods.contains("CiliumEndpoint\"") && !pods.contains("\"kind\":\"CiliumNode\""));
    let node = "172.22.49.119";
    let devices = parse_interfaces(
        &std::fs::read_to_string(dumps().join("tke-dump.172.22.49.119.devices.yaml")).unwrap(),
    )
    .unwrap();
    let mut compared = 0;
    for version in CiliumVersion::ALL {
        for selection in [Selection::Cilium, Selection::Consistent] {
            let maps = |text: &str| {
                let mut loaded = snapshot::load_for(text, version).unwrap();
                loaded.snapshot.set_devices(node, devices.clone()).unwrap();
                let computed = loaded.snapshot.with_state(|state| {
                    entries::compute(state, node, &devices, Rules::new(selection, version))
                });
                (computed.maps, loaded.warnings)
            };
            let (expected, _) = maps(&cilium);
            let (got, warnings) = maps(&pods);
            assert!(
                expected.len() >= 10,
                "{version} {selection}: {}",
                expected.len()
            );
            assert_eq!(got, expected, "{version} {selection}: {warnings:?}");
            compared += 1;
        }
    }
    assert_eq!(compared, 6);
}
