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
use egress_core::engine::{Engine, EngineConfig};
use egress_core::entries;
use egress_core::gateway::Selection;
use egress_core::snapshot::{self, parse_interfaces};
use egress_core::version::{CiliumVersion, Rules};
use serde_json::{Map, Value as Json, json};

fn dumps() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/snapshots/dumps")
}

/// The dump's objects as JSON, and their Pod/Node form.
fn both_forms() -> (String, String) {
    let text = std::fs::read_to_string(dumps().join("tke-dump.yaml")).unwrap();
    let objects: Vec<Json> = document::flatten_lists(document::parse_documents(&text).unwrap())
        .iter()
        .map(Value::to_json)
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
        .map(Value::to_json)
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

/// The objects of a `List` text, each as its own JSON text.
fn items(list: &str) -> Vec<String> {
    let list: Json = serde_json::from_str(list).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(Json::to_string)
        .collect()
}

/// `items` in an order drawn from `seed` (a small linear congruential generator: the test
/// needs several fixed orders, not randomness).
fn shuffled(mut items: Vec<String>, seed: u64) -> Vec<String> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    for i in (1..items.len()).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        items.swap(i, (state >> 33) as usize % (i + 1));
    }
    items
}

fn engine_config(version: CiliumVersion, selection: Selection) -> EngineConfig {
    EngineConfig {
        selection,
        ..EngineConfig::new("172.22.49.119").with_cilium_version(version)
    }
}

fn devices() -> Vec<egress_core::device::Device> {
    parse_interfaces(
        &std::fs::read_to_string(dumps().join("tke-dump.172.22.49.119.devices.yaml")).unwrap(),
    )
    .unwrap()
}

/// B.10's precedence holds across events whatever their order: every object of a form applied
/// as its own event, in several orders, ends with the whole dump's maps — the Pod form, the
/// slice form (slice entries beat their Pods, identities arriving before or after the
/// slices), and every form at once (the CiliumEndpoints beat both) — on every Cilium version
/// and in both modes.
#[test]
fn any_order_of_events_ends_with_the_whole_dumps_maps() {
    let (cilium, pods) = both_forms();
    let slices = slice_form();
    // Every form at once: the CiliumEndpoint form with the slice form's slices, identities
    // and Pods.
    let mut all = items(&cilium);
    all.extend(items(&slices).into_iter().filter(|o| {
        ["CiliumEndpointSlice", "CiliumIdentity", "Pod"]
            .iter()
            .any(|k| o.contains(&format!("\"kind\":\"{k}\"")))
    }));
    let all = json!({"apiVersion": "v1", "kind": "List",
        "items": all.iter().map(|t| serde_json::from_str::<Json>(t).unwrap()).collect::<Vec<_>>()})
    .to_string();
    let devices = devices();
    for version in CiliumVersion::ALL {
        for selection in [Selection::Cilium, Selection::Consistent] {
            let whole = |text: &str| {
                let loaded = snapshot::load_for(text, version).unwrap();
                let mut snap = loaded.snapshot;
                snap.set_devices("172.22.49.119", devices.clone()).unwrap();
                let (engine, _) = Engine::from_snapshot(&snap, engine_config(version, selection));
                engine.entries()
            };
            let expected = whole(&cilium);
            assert!(expected.len() >= 10);
            for (form, text) in [("pods", &pods), ("slices", &slices), ("all", &all)] {
                assert_eq!(whole(text), expected, "{form} as a whole dump");
                for seed in 0..4 {
                    let mut engine = Engine::new(engine_config(version, selection));
                    engine.set_devices(devices.clone());
                    for object in shuffled(items(text), seed) {
                        engine.apply_text(&object).unwrap();
                    }
                    assert_eq!(
                        engine.entries(),
                        expected,
                        "{version} {selection} {form}, order {seed}"
                    );
                }
            }
        }
    }
}

/// A changed CiliumIdentity updates every slice endpoint naming it, and only those: the plan
/// holds exactly the entries of the endpoints of that identity that the change moves (here:
/// the nginx identity loses `app=nginx`, so the policy's entries for its pods go), equal to
/// the difference between the whole dumps before and after.
#[test]
fn a_changed_identity_plans_exactly_its_slice_endpoints() {
    let slices = slice_form();
    let objects = items(&slices);
    let identity = objects
        .iter()
        .find(|o| o.contains("\"kind\":\"CiliumIdentity\"") && o.contains("\"k8s:app\":\"nginx\""))
        .expect("the nginx identity")
        .clone();
    let changed = identity.replace("\"k8s:app\":\"nginx\"", "\"k8s:app\":\"moved\"");
    let id: Json = serde_json::from_str(&identity).unwrap();
    let id = id["metadata"]["name"].as_str().unwrap().to_owned();
    let devices = devices();
    for version in CiliumVersion::ALL {
        for selection in [Selection::Cilium, Selection::Consistent] {
            let mut engine = Engine::new(engine_config(version, selection));
            engine.set_devices(devices.clone());
            engine.apply_text(&slices).unwrap();
            let before = engine.entries();
            let plan = engine.take_plan().unwrap();
            engine.ack(&plan, plan.len()).unwrap();
            let applied = engine.apply_text(&changed).unwrap();
            let plan = engine.take_plan().unwrap();
            // The endpoints naming the identity, by the slice entries' id.
            let users: Vec<Json> = objects
                .iter()
                .map(|o| serde_json::from_str::<Json>(o).unwrap())
                .filter(|o| o["kind"] == "CiliumEndpointSlice")
                .flat_map(|o| o["endpoints"].as_array().unwrap().clone())
                .filter(|e| e["id"].to_string().trim_matches('"') == id)
                .collect();
            assert!(!users.is_empty());
            assert_eq!(applied.endpoints, users.len(), "{version} {selection}");
            let user_ips: Vec<std::net::IpAddr> = users
                .iter()
                .flat_map(|e| e["networking"]["addressing"].as_array().unwrap().clone())
                .flat_map(|pair| {
                    ["ipv4", "ipv6"]
                        .into_iter()
                        .filter_map(move |f| pair[f].as_str().map(|s| s.parse().unwrap()))
                })
                .collect();
            // The engine holds the whole dump's maps with the changed identity; the plan is
            // their difference, and touches only the identity's endpoints.
            let after = engine.entries();
            let changed_dump: Vec<Json> = objects
                .iter()
                .map(|o| if *o == identity { &changed } else { o })
                .map(|o| serde_json::from_str(o).unwrap())
                .collect();
            let changed_dump =
                json!({"apiVersion": "v1", "kind": "List", "items": changed_dump}).to_string();
            let mut whole = snapshot::load_for(&changed_dump, version).unwrap().snapshot;
            whole.set_devices("172.22.49.119", devices.clone()).unwrap();
            let (whole, _) = Engine::from_snapshot(&whole, engine_config(version, selection));
            assert_eq!(after, whole.entries(), "{version} {selection}");
            let removed: Vec<_> = before
                .iter()
                .filter(|e| !after.iter().any(|a| a == *e))
                .collect();
            assert!(
                !removed.is_empty(),
                "{version} {selection}: the change moves entries"
            );
            // Each entry is deleted from every map of the layout (1.20 writes two IPv4 maps).
            let deleted: std::collections::BTreeSet<_> = plan
                .deletes()
                .iter()
                .map(|op| (op.entry().unwrap().source, op.entry().unwrap().destination))
                .collect();
            let removed: std::collections::BTreeSet<_> =
                removed.iter().map(|e| (e.source, e.destination)).collect();
            assert_eq!(deleted, removed, "{version} {selection}");
            assert!(plan.upserts().is_empty(), "{version} {selection}");
            for op in plan.ops() {
                assert!(
                    user_ips.contains(&op.entry().unwrap().source),
                    "{version} {selection}: {:?} is not an endpoint of identity {id}",
                    op.entry().unwrap().source
                );
            }
        }
    }
}

/// Slices and identities merged onto a snapshot (`egressctl list -f snapshot -f dump ...`):
/// the slices in one input, their identities and Pods in a later one, give the maps of the
/// CiliumEndpoint form — the claims resolve once every input is read.
#[test]
fn slices_merged_onto_a_snapshot_give_the_cilium_endpoint_forms_maps() {
    let (cilium, _) = both_forms();
    let objects = items(&slice_form());
    let list = |keep: &dyn Fn(&str) -> bool| {
        let kept: Vec<Json> = objects
            .iter()
            .filter(|o| keep(o))
            .map(|o| serde_json::from_str(o).unwrap())
            .collect();
        json!({"apiVersion": "v1", "kind": "List", "items": kept}).to_string()
    };
    let is = |o: &str, kinds: &[&str]| {
        kinds
            .iter()
            .any(|k| o.contains(&format!("\"kind\":\"{k}\"")))
    };
    let later = ["CiliumIdentity", "Pod"];
    let first = list(&|o| !is(o, &later));
    let second = list(&|o| is(o, &later));
    // A snapshot of the local node alone: the dump's CiliumNode of its name replaces it.
    let snapshot = "localNode: 172.22.49.119\nnodes: [{name: 172.22.49.119}]\n";
    let devices = devices();
    for version in CiliumVersion::ALL {
        let maps = |loaded: snapshot::Loaded| {
            let mut snap = loaded.snapshot;
            snap.set_devices("172.22.49.119", devices.clone()).unwrap();
            let (engine, _) =
                Engine::from_snapshot(&snap, engine_config(version, Selection::Consistent));
            engine.entries()
        };
        let expected = maps(snapshot::load_for(&cilium, version).unwrap());
        let merged = snapshot::load_all_owned_for(
            vec![snapshot.to_owned(), first.clone(), second.clone()],
            version,
        )
        .unwrap();
        assert!(
            merged
                .warnings
                .iter()
                .any(|w| w.contains("Pod object(s) ignored")),
            "{:?}",
            merged.warnings
        );
        assert_eq!(maps(merged), expected, "{version}");
    }
}
