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

/// The dump's slice form: its CiliumEndpoints as one CiliumEndpointSlice per namespace, the
/// identities as CiliumIdentities, and each pod as a Pod of the CiliumEndpoint's uid (which a
/// slice entry takes, B.10; the Pods themselves are beaten by the entries).
fn slice_form() -> String {
    let text = std::fs::read_to_string(dumps().join("tke-dump.yaml")).unwrap();
    let objects: Vec<Json> = document::flatten_lists(document::parse_documents(&text).unwrap())
        .iter()
        .map(to_json)
        .collect();
    let mut out = Vec::new();
    let mut slices: std::collections::BTreeMap<String, Vec<Json>> = Default::default();
    let mut identities: std::collections::BTreeMap<String, Map<String, Json>> = Default::default();
    for o in &objects {
        if o["kind"] != "CiliumEndpoint" {
            out.push(o.clone());
            continue;
        }
        let status = &o["status"];
        let Some(labels) = status["identity"]["labels"]
            .as_array()
            .filter(|l| !l.is_empty())
        else {
            continue; // no identity yet: not in a slice either
        };
        let id = status["identity"]["id"].to_string();
        let security: Map<String, Json> = labels
            .iter()
            .filter_map(Json::as_str)
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap_or((l, ""));
                (k.to_owned(), json!(v))
            })
            .collect();
        identities.insert(id.clone(), security);
        let namespace = o["metadata"]["namespace"].as_str().unwrap().to_owned();
        slices.entry(namespace.clone()).or_default().push(json!({
            "name": o["metadata"]["name"],
            "id": status["identity"]["id"],
            "networking": status["networking"],
        }));
        out.push(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": o["metadata"]["name"], "namespace": namespace, "uid": o["metadata"]["uid"]},
            "spec": {},
            "status": {"phase": "Running"},
        }));
    }
    for (id, security) in identities {
        out.push(json!({
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumIdentity",
            "metadata": {"name": id},
            "security-labels": security,
        }));
    }
    for (i, (namespace, endpoints)) in slices.into_iter().enumerate() {
        out.push(json!({
            "apiVersion": "cilium.io/v2alpha1",
            "kind": "CiliumEndpointSlice",
            "metadata": {"name": format!("ces-{i}")},
            "namespace": namespace,
            "endpoints": endpoints,
        }));
    }
    json!({"apiVersion": "v1", "kind": "List", "items": out}).to_string()
}

#[test]
fn slices_and_identities_give_the_maps_of_their_cilium_endpoints() {
    let (cilium, _) = both_forms();
    let slices = slice_form();
    assert!(
        slices.contains("CiliumEndpointSlice") && !slices.contains("\"kind\":\"CiliumEndpoint\"")
    );
    let node = "172.22.49.119";
    let devices = parse_interfaces(
        &std::fs::read_to_string(dumps().join("tke-dump.172.22.49.119.devices.yaml")).unwrap(),
    )
    .unwrap();
    for version in CiliumVersion::ALL {
        for selection in [Selection::Cilium, Selection::Consistent] {
            let maps = |text: &str| {
                let loaded = snapshot::load_for(text, version).unwrap();
                let mut snapshot = loaded.snapshot;
                let computed = snapshot.with_state(|state| {
                    entries::compute(state, node, &devices, Rules::new(selection, version))
                });
                (computed.maps, loaded.warnings)
            };
            let (expected, _) = maps(&cilium);
            let (got, warnings) = maps(&slices);
            assert!(expected.len() >= 10);
            assert_eq!(got, expected, "{version} {selection}: {warnings:?}");
            assert!(
                warnings.iter().any(|w| w.contains("Pod object(s) ignored")),
                "{warnings:?}"
            );
        }
    }
    // Without the Pods, an entry's uid is `<namespace>/<name>`.
    let without_pods: Json = serde_json::from_str(&slices).unwrap();
    let items: Vec<&Json> = without_pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["kind"] != "Pod")
        .collect();
    let text = json!({"kind": "List", "apiVersion": "v1", "items": items}).to_string();
    let loaded = snapshot::load(&text).unwrap();
    assert!(
        loaded.snapshot.endpoints.iter().all(|e| e.uid
            == format!(
                "{}/{}",
                e.namespace.as_deref().unwrap(),
                e.name.as_deref().unwrap()
            )),
        "{:?}",
        loaded
            .snapshot
            .endpoints
            .iter()
            .map(|e| &e.uid)
            .collect::<Vec<_>>()
    );
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
