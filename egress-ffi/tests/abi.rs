//! The C ABI called as C calls it (raw pointers, caller buffers): the conformance surface
//! against `egressctl list -o json` on every shared example, events through JSON and the
//! typed endpoint, plans, adoption, lookups from many threads, and the error objects.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::ptr;

use egress_core::engine::{Engine, EngineConfig};
use egress_core::entries;
use egress_core::gateway::Selection;
use egress_core::render;
use egress_core::snapshot::{self, Snapshot};
use egress_core::version::CiliumVersion;
use egress_ffi::*;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/snapshots")
}

/// The snapshot examples (not the dumps), by stem.
fn example_files() -> Vec<(String, PathBuf)> {
    let mut files: Vec<_> = std::fs::read_dir(examples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| (p.file_stem().unwrap().to_str().unwrap().to_owned(), p))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    files
}

/// An owned engine handle, freed on drop.
struct Handle(*mut egress_engine);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: made by this library, freed once.
        unsafe { egress_engine_free(self.0) };
    }
}

impl Handle {
    /// The pointer (a method, so that closures capture the whole `Sync` handle).
    fn get(&self) -> *mut egress_engine {
        self.0
    }
}

// SAFETY: the engine is Send + Sync (asserted in egress-core); const calls may run
// concurrently, as the header documents.
unsafe impl Send for Handle {}
// SAFETY: as above.
unsafe impl Sync for Handle {}

/// A failed call's code, message and field paths.
#[derive(Debug)]
struct Failed {
    code: egress_result,
    message: String,
    paths: Vec<String>,
    policy: Option<String>,
}

fn c_str(p: *const std::ffi::c_char) -> Option<String> {
    // SAFETY: NULL or a NUL-terminated string the error owns.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned())
}

/// Runs a call with an error slot: `Ok` or the error's contents (the error freed).
fn call(f: impl FnOnce(*mut *mut egress_error) -> egress_result) -> Result<(), Failed> {
    let mut error: *mut egress_error = ptr::dangling_mut(); // overwritten with NULL first
    let code = f(&mut error);
    if code == egress_result::Ok {
        assert!(error.is_null(), "success clears *error_out");
        return Ok(());
    }
    if code == egress_result::InsufficientSize {
        // A size query's answer: no error object (the size is in the count output).
        assert!(
            error.is_null(),
            "a buffer too small hands out no error object"
        );
        return Err(Failed {
            code,
            message: String::new(),
            paths: Vec::new(),
            policy: None,
        });
    }
    assert!(!error.is_null(), "{code:?} without an error object");
    // SAFETY: a live error from the call.
    let failed = unsafe {
        let count = egress_error_field_count(error);
        Failed {
            code: egress_error_code(error),
            message: c_str(egress_error_message(error)).unwrap(),
            paths: (0..count)
                .map(|i| c_str(egress_error_field_path(error, i)).unwrap())
                .collect(),
            policy: c_str(egress_error_policy(error)),
        }
    };
    assert_eq!(failed.code, code);
    // SAFETY: freed once.
    unsafe { egress_error_free(error) };
    Err(failed)
}

fn from_snapshot(text: &str, node: Option<&str>, selection: u32) -> Result<Handle, Failed> {
    let mut engine = ptr::null_mut();
    let node = node.unwrap_or("");
    call(|err| unsafe {
        egress_engine_from_snapshot(
            text.as_ptr(),
            text.len(),
            if node.is_empty() {
                ptr::null()
            } else {
                node.as_ptr()
            },
            node.len(),
            selection,
            &mut engine,
            err,
        )
    })?;
    Ok(Handle(engine))
}

/// The maps JSON, with the two-call size pattern.
fn maps_json(engine: &Handle) -> String {
    let mut needed = 0;
    let code = unsafe {
        egress_engine_maps_json(engine.0, ptr::null_mut(), 0, &mut needed, ptr::null_mut())
    };
    assert_eq!(code, egress_result::InsufficientSize);
    let mut buf = vec![0u8; needed];
    let mut written = 0;
    call(|err| unsafe {
        egress_engine_maps_json(engine.0, buf.as_mut_ptr(), buf.len(), &mut written, err)
    })
    .unwrap();
    assert_eq!(written, needed);
    String::from_utf8(buf).unwrap()
}

/// What `egressctl list -f FILE -o json --selection S` prints: the batch computation.
fn egressctl_list(snap: &Snapshot, selection: Selection) -> String {
    let node = snap.local_node.as_deref().unwrap();
    let computed = entries::compute(&snap.state(), node, snap.devices_for(node), selection);
    render::to_json(&computed.maps)
}

#[test]
fn every_example_through_from_snapshot_gives_the_maps_egressctl_lists() {
    let mut compared = 0;
    for (stem, path) in example_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let snap = snapshot::load(&text).unwrap().snapshot;
        for (selection, suffix) in [
            (Selection::Cilium, "expected.json"),
            (Selection::Consistent, "consistent.expected.json"),
        ] {
            let engine = from_snapshot(&text, None, selection as u32).unwrap();
            let json = maps_json(&engine);
            assert_eq!(json, egressctl_list(&snap, selection), "{stem} {selection}");
            let expected = examples().join(format!("{stem}.{suffix}"));
            if let Ok(want) = std::fs::read_to_string(&expected) {
                assert_eq!(json, want, "{}", expected.display());
                compared += 1;
            }
        }
    }
    assert!(compared >= 8, "only {compared} expected files compared");
}

/// The versioned form of the conformance call: `egress_engine_from_snapshot_config` with
/// `cilium_version` (and `EGRESS_LAYOUT_VERSION`) gives each version's expected maps, byte
/// for byte; an unknown version is refused naming the field.
#[test]
fn every_example_on_every_cilium_version_through_the_config() {
    let mut compared = 0;
    for (stem, path) in example_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        for (version, number, infix) in [
            (CiliumVersion::V1_18, EGRESS_CILIUM_1_18, ""),
            (CiliumVersion::V1_19, EGRESS_CILIUM_1_19, ".cilium-1.19"),
            (CiliumVersion::V1_20, EGRESS_CILIUM_1_20, ".cilium-1.20"),
        ] {
            for (selection, mode) in [
                (Selection::Cilium, ""),
                (Selection::Consistent, ".consistent"),
            ] {
                let config = egress_engine_config {
                    local_node: ptr::null(),
                    local_node_len: 0,
                    selection: selection as u32,
                    layout: egress_layout::Version as u32,
                    max_entries: 0,
                    cluster: ptr::null(),
                    cluster_len: 0,
                    cilium_version: number,
                };
                let mut engine = ptr::null_mut();
                call(|err| unsafe {
                    egress_engine_from_snapshot_config(
                        text.as_ptr(),
                        text.len(),
                        &config,
                        &mut engine,
                        err,
                    )
                })
                .unwrap();
                let engine = Handle(engine);
                let json = maps_json(&engine);
                let expected = examples().join(format!("{stem}{mode}{infix}.expected.json"));
                if let Ok(want) = std::fs::read_to_string(&expected) {
                    assert_eq!(json, want, "{} ({version})", expected.display());
                    compared += 1;
                }
            }
        }
        let bad = egress_engine_config {
            local_node: ptr::null(),
            local_node_len: 0,
            selection: 0,
            layout: 0,
            max_entries: 0,
            cluster: ptr::null(),
            cluster_len: 0,
            cilium_version: 3,
        };
        let mut engine = ptr::null_mut();
        let err = call(|err| unsafe {
            egress_engine_from_snapshot_config(text.as_ptr(), text.len(), &bad, &mut engine, err)
        })
        .err()
        .unwrap();
        assert_eq!(
            (err.code, err.paths),
            (
                egress_result::InvalidEnum,
                vec!["config.cilium_version".to_owned()]
            )
        );
    }
    assert!(compared >= 27, "only {compared} expected files compared");
}

#[test]
fn a_dump_loads_with_a_local_node_and_devices() {
    let dumps = examples().join("dumps");
    let text = std::fs::read_to_string(dumps.join("tke-dump.yaml")).unwrap();
    let devices =
        std::fs::read_to_string(dumps.join("tke-dump.172.22.49.119.devices.yaml")).unwrap();
    let want = std::fs::read_to_string(dumps.join("tke-dump.172.22.49.119.expected.json")).unwrap();
    // A dump names no localNode: the argument is required.
    let missing = from_snapshot(&text, None, 0).err().unwrap();
    assert_eq!(missing.code, egress_result::InvalidArgument);
    assert_eq!(missing.paths, ["local_node"]);
    let unknown = from_snapshot(&text, Some("no-such-node"), 0).err().unwrap();
    assert_eq!(
        (unknown.code, unknown.paths),
        (
            egress_result::InvalidArgument,
            vec!["local_node".to_owned()]
        )
    );
    assert!(
        unknown.message.contains("Not found: \"no-such-node\""),
        "{}",
        unknown.message
    );

    let engine = from_snapshot(&text, Some("172.22.49.119"), 0).unwrap();
    call(|err| unsafe {
        egress_engine_set_devices(engine.0, devices.as_ptr(), devices.len(), err)
    })
    .unwrap();
    assert_eq!(maps_json(&engine), want);
}

/// B.10 through the C ABI: the realistic dump, and the seed's gateway-group cluster as core
/// Pods/Nodes and as CiliumEndpointSlices with CiliumIdentities, give their expected maps both
/// loaded (`egress_engine_from_snapshot`) and applied as events to an empty engine
/// (`egress_engine_apply`), in both modes.
#[test]
fn every_dump_shape_gives_its_maps_loaded_and_applied() {
    let dumps = examples().join("dumps");
    let node = "172.22.49.119";
    let mut compared = 0;
    for stem in [
        "tke-dump",
        "seed-gateway-group.pods",
        "seed-gateway-group.slices",
    ] {
        let text = std::fs::read_to_string(dumps.join(format!("{stem}.yaml"))).unwrap();
        let devices =
            std::fs::read_to_string(dumps.join(format!("{stem}.{node}.devices.yaml"))).unwrap();
        for (selection, mode) in [
            (egress_selection::Cilium, ""),
            (egress_selection::Consistent, ".consistent"),
        ] {
            let Ok(want) =
                std::fs::read_to_string(dumps.join(format!("{stem}.{node}{mode}.expected.json")))
            else {
                continue;
            };
            let set_devices = |engine: &Handle| {
                call(|err| unsafe {
                    egress_engine_set_devices(engine.0, devices.as_ptr(), devices.len(), err)
                })
                .unwrap()
            };
            let loaded = from_snapshot(&text, Some(node), selection as u32).unwrap();
            set_devices(&loaded);
            assert_eq!(maps_json(&loaded), want, "{stem}{mode} loaded");
            let config = egress_engine_config {
                local_node: node.as_ptr(),
                local_node_len: node.len(),
                selection: selection as u32,
                layout: egress_layout::Version as u32,
                max_entries: 0,
                cluster: ptr::null(),
                cluster_len: 0,
                cilium_version: EGRESS_CILIUM_1_18,
            };
            let mut raw = ptr::null_mut();
            call(|e| unsafe { egress_engine_new(&config, &mut raw, e) }).unwrap();
            let applied_engine = Handle(raw);
            let mut applied = egress_applied::default();
            call(|e| unsafe {
                egress_engine_apply(applied_engine.0, text.as_ptr(), text.len(), &mut applied, e)
            })
            .unwrap();
            assert!(
                applied.endpoints >= 10 && applied.nodes == 5,
                "{stem}: {applied:?}"
            );
            set_devices(&applied_engine);
            assert_eq!(maps_json(&applied_engine), want, "{stem}{mode} applied");
            compared += 1;
        }
    }
    assert_eq!(compared, 5);
}

fn take_plan(engine: &Handle) -> Vec<egress_plan_op> {
    let mut count = 0;
    let code = unsafe {
        egress_engine_take_plan(engine.0, ptr::null_mut(), 0, &mut count, ptr::null_mut())
    };
    if count == 0 {
        assert_eq!(code, egress_result::Ok);
        return Vec::new();
    }
    assert_eq!(code, egress_result::InsufficientSize);
    let mut ops = vec![
        egress_plan_op {
            map: 99,
            action: 99,
            ..Default::default()
        };
        count
    ];
    let mut written = 0;
    call(|err| unsafe {
        egress_engine_take_plan(engine.0, ops.as_mut_ptr(), ops.len(), &mut written, err)
    })
    .unwrap();
    assert_eq!(written, count);
    ops
}

fn ack(engine: &Handle, applied: usize) -> Result<(), Failed> {
    call(|err| unsafe { egress_engine_ack(engine.0, applied, err) })
}

fn seed_text() -> String {
    std::fs::read_to_string(examples().join("seed-gateway-group.yaml")).unwrap()
}

#[test]
fn plans_equal_the_engines_bytes_and_acks_move_the_baseline() {
    let text = seed_text();
    let snap = Snapshot::parse(&text).unwrap();
    let node = snap.local_node.clone().unwrap();
    let (rust, _) = Engine::from_snapshot(&snap, EngineConfig::new(node));
    let want = rust.take_plan().unwrap();

    let engine = from_snapshot(&text, None, 0).unwrap();
    let ops = take_plan(&engine);
    assert_eq!(ops.len(), want.len());
    for (c, r) in ops.iter().zip(want.ops()) {
        assert_eq!(c.map, r.map() as u32);
        assert_eq!(c.action, r.action() as u32);
        assert_eq!(&c.key[..c.key_len as usize], r.key());
        assert_eq!(&c.value[..c.value_len as usize], r.value());
    }
    // Partly written: the rest comes back; acknowledging past the plan is refused.
    ack(&engine, 3).unwrap();
    let rest = take_plan(&engine);
    assert_eq!(rest.len(), ops.len() - 3);
    assert_eq!(rest[..], ops[3..]);
    let past = ack(&engine, rest.len() + 1).err().unwrap();
    assert_eq!(
        (past.code, past.paths),
        (egress_result::InvalidArgument, vec!["applied".to_owned()])
    );
    ack(&engine, rest.len()).unwrap();
    // Acknowledged once: not again, not even 0 operations.
    for applied in [0, 1] {
        let again = ack(&engine, applied).err().unwrap();
        assert_eq!(
            (again.code, again.paths),
            (egress_result::InvalidArgument, vec!["plan".to_owned()])
        );
    }
    assert!(take_plan(&engine).is_empty());
    // A size query takes nothing: the plan to acknowledge is still the (empty) one before.
    let ep = "{uid: extra, namespace: default, labels: {app: nginx}, ips: [172.22.48.99], node: 172.22.48.125}";
    call(|e| unsafe { egress_engine_upsert_endpoint_json(engine.0, ep.as_ptr(), ep.len(), e) })
        .unwrap();
    let mut count = 99;
    let err =
        call(|e| unsafe { egress_engine_take_plan(engine.0, ptr::null_mut(), 0, &mut count, e) })
            .err()
            .unwrap();
    assert_eq!(
        (err.code, err.paths),
        (egress_result::InsufficientSize, Vec::<String>::new())
    );
    assert!(count > 0);
    let unseen = ack(&engine, 1).err().unwrap();
    assert_eq!(
        (unseen.code, unseen.paths),
        (egress_result::InvalidArgument, vec!["applied".to_owned()])
    );
    ack(&engine, 0).unwrap();
    assert_eq!(take_plan(&engine).len(), count);
}

/// Cilium 1.20's engine through the C config: each IPv4 entry goes to both IPv4 maps, and
/// adopting the elements of both makes an empty plan; adopting `_v4_v2`'s alone (the legacy
/// map empty) writes the legacy map's entries again — to both maps.
#[test]
fn a_1_20_engine_adopts_both_ipv4_maps() {
    let text = seed_text();
    let load = || {
        let config = egress_engine_config {
            local_node: ptr::null(),
            local_node_len: 0,
            selection: 0,
            layout: egress_layout::Version as u32,
            max_entries: 0,
            cluster: ptr::null(),
            cluster_len: 0,
            cilium_version: EGRESS_CILIUM_1_20,
        };
        let mut engine = ptr::null_mut();
        call(|err| unsafe {
            egress_engine_from_snapshot_config(text.as_ptr(), text.len(), &config, &mut engine, err)
        })
        .unwrap();
        Handle(engine)
    };
    let first = load();
    let ops = take_plan(&first);
    let on = |map: egress_map| ops.iter().filter(|op| op.map == map as u32).count();
    assert_eq!(on(egress_map::V4Legacy), on(egress_map::V4));
    assert!(on(egress_map::V4) > 0);
    let element = |op: &egress_plan_op| egress_map_element {
        map: op.map,
        key_len: op.key_len,
        value_len: op.value_len,
        key: op.key,
        value: op.value,
    };
    let all: Vec<egress_map_element> = ops.iter().map(element).collect();
    let restarted = load();
    call(|err| unsafe { egress_engine_adopt(restarted.0, all.as_ptr(), all.len(), err) }).unwrap();
    assert!(take_plan(&restarted).is_empty());
    let v2_only: Vec<egress_map_element> = ops
        .iter()
        .filter(|op| op.map != egress_map::V4Legacy as u32)
        .map(element)
        .collect();
    let half = load();
    call(|err| unsafe { egress_engine_adopt(half.0, v2_only.as_ptr(), v2_only.len(), err) })
        .unwrap();
    let again = take_plan(&half);
    assert_eq!(again.len(), 2 * on(egress_map::V4));
}

#[test]
fn a_restarted_engine_adopting_the_live_maps_writes_nothing() {
    let text = seed_text();
    let first = from_snapshot(&text, None, 0).unwrap();
    let ops = take_plan(&first);
    let elements: Vec<egress_map_element> = ops
        .iter()
        .map(|op| egress_map_element {
            map: op.map,
            key_len: op.key_len,
            value_len: op.value_len,
            key: op.key,
            value: op.value,
        })
        .collect();
    let restarted = from_snapshot(&text, None, 0).unwrap();
    call(|err| unsafe { egress_engine_adopt(restarted.0, elements.as_ptr(), elements.len(), err) })
        .unwrap();
    assert!(take_plan(&restarted).is_empty());

    // A wrong size or a map of the other layout: nothing adopted.
    let fresh = from_snapshot(&text, None, 0).unwrap();
    let mut bad = elements.clone();
    // The conformance call is Cilium 1.18: the legacy IPv4 map, whose value has 8 bytes.
    bad[1].value_len = 28;
    let err = call(|e| unsafe { egress_engine_adopt(fresh.0, bad.as_ptr(), bad.len(), e) })
        .err()
        .unwrap();
    assert_eq!(
        (err.code, err.paths),
        (
            egress_result::InvalidArgument,
            vec!["elements[1]".to_owned()]
        )
    );
    let mut legacy = elements.clone();
    legacy[0].map = egress_map::V4 as u32;
    legacy[0].value_len = 28;
    let err = call(|e| unsafe { egress_engine_adopt(fresh.0, legacy.as_ptr(), legacy.len(), e) })
        .err()
        .unwrap();
    assert_eq!(err.paths, ["elements[0].map"]);
    assert_eq!(take_plan(&fresh).len(), ops.len(), "nothing was adopted");
}

fn label(key: &'static str, value: &'static str) -> egress_label {
    egress_label {
        key: key.as_ptr(),
        key_len: key.len(),
        value: value.as_ptr(),
        value_len: value.len(),
    }
}

#[test]
fn the_typed_endpoint_equals_the_json_endpoint() {
    let text = seed_text();
    let by_struct = from_snapshot(&text, None, 0).unwrap();
    let by_json = from_snapshot(&text, None, 0).unwrap();
    for engine in [&by_struct, &by_json] {
        let ops = take_plan(engine);
        ack(engine, ops.len()).unwrap();
    }
    let labels = [label("app", "nginx"), label("team", "web")];
    let ns_labels = [label("kubernetes.io/metadata.name", "default")];
    let ips = [
        egress_ip_addr::from(IpAddr::V4(Ipv4Addr::new(172, 22, 48, 99))),
        egress_ip_addr::from(IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x99))),
    ];
    let (uid, ns, node) = ("new-pod-uid", "default", "172.22.48.125");
    let endpoint = egress_endpoint {
        uid: uid.as_ptr(),
        uid_len: uid.len(),
        namespace_name: ns.as_ptr(),
        namespace_name_len: ns.len(),
        labels: labels.as_ptr(),
        labels_len: labels.len(),
        namespace_labels: ns_labels.as_ptr(),
        namespace_labels_len: ns_labels.len(),
        service_account: ptr::null(),
        service_account_len: 0,
        ips: ips.as_ptr(),
        ips_len: ips.len(),
        node: node.as_ptr(),
        node_len: node.len(),
    };
    call(|err| unsafe { egress_engine_upsert_endpoint(by_struct.0, &endpoint, err) }).unwrap();
    let json = r#"{"uid": "new-pod-uid", "namespace": "default", "labels": {"app": "nginx", "team": "web"},
        "namespaceLabels": {"kubernetes.io/metadata.name": "default"}, "ips": ["172.22.48.99", "fd00::99"],
        "node": "172.22.48.125"}"#;
    call(|err| unsafe {
        egress_engine_upsert_endpoint_json(by_json.0, json.as_ptr(), json.len(), err)
    })
    .unwrap();
    let plan = take_plan(&by_struct);
    assert!(!plan.is_empty(), "the seed's policy selects app=nginx");
    assert_eq!(plan, take_plan(&by_json));
    assert_eq!(maps_json(&by_struct), maps_json(&by_json));

    // Field errors name the struct field; nothing changes.
    let mut bad_ips = ips;
    bad_ips[1].family = 5;
    let bad = egress_endpoint {
        ips: bad_ips.as_ptr(),
        ..endpoint
    };
    let err = call(|e| unsafe { egress_engine_upsert_endpoint(by_struct.0, &bad, e) })
        .err()
        .unwrap();
    assert_eq!(
        (err.code, err.paths),
        (
            egress_result::InvalidEnum,
            vec!["endpoint.ips[1].family".to_owned()]
        )
    );
    let invalid = [0xffu8, 0xfe];
    let bad_labels = [
        label("app", "nginx"),
        egress_label {
            key: invalid.as_ptr(),
            key_len: invalid.len(),
            value: ptr::null(),
            value_len: 0,
        },
    ];
    let bad = egress_endpoint {
        labels: bad_labels.as_ptr(),
        labels_len: bad_labels.len(),
        ..endpoint
    };
    let err = call(|e| unsafe { egress_engine_upsert_endpoint(by_struct.0, &bad, e) })
        .err()
        .unwrap();
    assert_eq!(
        (err.code, err.paths),
        (
            egress_result::InvalidUtf8,
            vec!["endpoint.labels[1].key".to_owned()]
        )
    );
    let dup = [label("app", "a"), label("app", "b")];
    let bad = egress_endpoint {
        labels: dup.as_ptr(),
        labels_len: dup.len(),
        ..endpoint
    };
    let err = call(|e| unsafe { egress_engine_upsert_endpoint(by_struct.0, &bad, e) })
        .err()
        .unwrap();
    assert_eq!(err.paths, ["endpoint.labels[1].key"]);
    let bad = egress_endpoint {
        labels: ptr::null(),
        labels_len: 1,
        ..endpoint
    };
    let err = call(|e| unsafe { egress_engine_upsert_endpoint(by_struct.0, &bad, e) })
        .err()
        .unwrap();
    assert_eq!(
        (err.code, err.paths),
        (
            egress_result::NullParameter,
            vec!["endpoint.labels".to_owned()]
        )
    );
    assert_eq!(
        maps_json(&by_struct),
        maps_json(&by_json),
        "refused events change nothing"
    );

    // Deleting it gives the deletes back.
    let mut found = false;
    call(|err| unsafe {
        egress_engine_delete_endpoint(by_struct.0, uid.as_ptr(), uid.len(), &mut found, err)
    })
    .unwrap();
    assert!(found);
    assert!(
        take_plan(&by_struct)
            .iter()
            .all(|op| op.action == egress_action::Delete as u32)
    );
}

const POLICY: &str = "apiVersion: cilium.io/v2
kind: CiliumEgressGatewayPolicy
metadata: {name: web}
spec:
  selectors: [{podSelector: {matchLabels: {app: web}}}]
  destinationCIDRs: [0.0.0.0/0]
  egressGateway: {nodeSelector: {matchLabels: {egress: \"true\"}}}
";

const CLUSTER: &str = "localNode: gw
nodes:
- {name: gw, labels: {egress: \"true\"}, ipv4: 192.168.1.1,
   interfaces: [{name: eth0, index: 2, addresses: [192.168.1.1/24], defaultRoute: true}]}
- {name: worker, ipv4: 192.168.1.2}
endpoints:
- {uid: u1, namespace: default, labels: {app: web}, ips: [10.0.0.1], node: worker}
";

#[test]
fn events_through_json_and_every_policy_error_at_once() {
    let engine = from_snapshot(CLUSTER, None, 0).unwrap();
    assert_eq!(maps_json(&engine), "{\n \"ipv4\": [],\n \"ipv6\": []\n}\n");
    call(|err| unsafe {
        egress_engine_upsert_policy(engine.0, POLICY.as_ptr(), POLICY.len(), err)
    })
    .unwrap();
    let with_policy = maps_json(&engine);
    assert!(
        with_policy.contains("\"egressIP\": \"192.168.1.1\""),
        "{with_policy}"
    );

    // Several errors in one update: all reported, the valid version stays.
    let broken = POLICY.replace("0.0.0.0/0", "0.0.0.0/99").replace(
        "matchLabels: {app: web}",
        "matchLabels: {app: web}, matchExpressions: [{key: a, operator: Near}]",
    );
    let err = call(|e| unsafe {
        egress_engine_upsert_policy(engine.0, broken.as_ptr(), broken.len(), e)
    })
    .err()
    .unwrap();
    assert_eq!(err.code, egress_result::Policy);
    assert_eq!(err.policy.as_deref(), Some("web"));
    assert!(err.paths.len() >= 2, "{err:?}");
    assert!(
        err.paths
            .iter()
            .any(|p| p.starts_with("spec.destinationCIDRs[0]")),
        "{err:?}"
    );
    assert!(
        err.paths
            .iter()
            .any(|p| p.contains("matchExpressions[0].operator")),
        "{err:?}"
    );
    assert_eq!(maps_json(&engine), with_policy);

    // Nodes, namespaces, deletes.
    let node = "{name: gw2, labels: {egress: \"true\"}, ipv4: 192.168.1.3}";
    call(|e| unsafe { egress_engine_upsert_node(engine.0, node.as_ptr(), node.len(), e) }).unwrap();
    let bad_node = "{name: gw3, ipv4: fd00::1, weight: 300}";
    let err = call(|e| unsafe {
        egress_engine_upsert_node(engine.0, bad_node.as_ptr(), bad_node.len(), e)
    })
    .err()
    .unwrap();
    assert_eq!(
        (err.code, err.paths),
        (
            egress_result::Input,
            vec!["ipv4".to_owned(), "weight".to_owned()]
        )
    );
    let ns = "{kind: Namespace, metadata: {name: default, labels: {team: a}}}";
    call(|e| unsafe { egress_engine_upsert_namespace_json(engine.0, ns.as_ptr(), ns.len(), e) })
        .unwrap();
    let (name, mut found) = ("web", false);
    call(|e| unsafe {
        egress_engine_delete_policy(engine.0, name.as_ptr(), name.len(), &mut found, e)
    })
    .unwrap();
    assert!(found);
    call(|e| unsafe {
        egress_engine_delete_policy(engine.0, name.as_ptr(), name.len(), &mut found, e)
    })
    .unwrap();
    assert!(!found);
    assert_eq!(maps_json(&engine), "{\n \"ipv4\": [],\n \"ipv6\": []\n}\n");

    // Text holding no policy is not a silent no-op.
    let err = call(|e| unsafe { egress_engine_upsert_policy(engine.0, "".as_ptr(), 0, e) })
        .err()
        .unwrap();
    assert_eq!(err.code, egress_result::Parse);

    // Unparsable text, wrong enum values, bad UTF-8.
    let parse = from_snapshot("nodes: [", None, 0).err().unwrap();
    assert_eq!(parse.code, egress_result::Parse);
    let bad_enum = from_snapshot(CLUSTER, None, 7).err().unwrap();
    assert_eq!(
        (bad_enum.code, bad_enum.paths),
        (egress_result::InvalidEnum, vec!["selection".to_owned()])
    );
    let bytes = [b'a', 0xff];
    let mut out = ptr::null_mut();
    let err = call(|e| unsafe {
        egress_engine_from_snapshot(bytes.as_ptr(), 2, ptr::null(), 0, 0, &mut out, e)
    })
    .err()
    .unwrap();
    assert_eq!(
        (err.code, err.paths),
        (egress_result::InvalidUtf8, vec!["text".to_owned()])
    );
    assert!(out.is_null());
}

#[test]
fn lookups_from_many_threads_equal_the_engine() {
    let text = std::fs::read_to_string(examples().join("dual-stack-excluded.yaml")).unwrap();
    let snap = Snapshot::parse(&text).unwrap();
    let (rust, _) =
        Engine::from_snapshot(&snap, EngineConfig::new(snap.local_node.clone().unwrap()));
    let engine = from_snapshot(&text, None, 0).unwrap();
    let mut queries_v4 = Vec::new();
    let mut queries_v6 = Vec::new();
    for entry in rust.entries().iter() {
        let dst = entry.destination.addr;
        match (entry.source, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => queries_v4.push(egress_query_v4 {
                src: s.octets(),
                dst: d.octets(),
            }),
            (IpAddr::V6(s), IpAddr::V6(d)) => queries_v6.push(egress_query_v6 {
                src: s.octets(),
                dst: d.octets(),
            }),
            _ => unreachable!(),
        }
    }
    queries_v4.push(egress_query_v4 {
        src: [10, 9, 9, 9],
        dst: [8, 8, 8, 8],
    });
    assert!(queries_v4.len() > 2 && queries_v6.len() > 2);
    let want_v4: Vec<egress_verdict> = queries_v4
        .iter()
        .map(|q| {
            rust.lookup(Ipv4Addr::from(q.src).into(), Ipv4Addr::from(q.dst).into())
                .into()
        })
        .collect();
    let want_v6: Vec<egress_verdict> = queries_v6
        .iter()
        .map(|q| {
            rust.lookup(Ipv6Addr::from(q.src).into(), Ipv6Addr::from(q.dst).into())
                .into()
        })
        .collect();
    assert!(
        want_v4
            .iter()
            .any(|v| v.kind == egress_verdict_kind::Masquerade as u32)
    );
    assert!(
        want_v4
            .iter()
            .any(|v| v.kind == egress_verdict_kind::Excluded as u32)
    );
    let want_json = maps_json(&engine);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..200 {
                    for (q, want) in queries_v4.iter().zip(&want_v4) {
                        let mut v = egress_verdict::default();
                        let code = unsafe {
                            egress_engine_lookup_v4(
                                engine.get(),
                                q.src.as_ptr(),
                                q.dst.as_ptr(),
                                &mut v,
                            )
                        };
                        assert_eq!((code, v), (egress_result::Ok, *want));
                    }
                    for (q, want) in queries_v6.iter().zip(&want_v6) {
                        let mut v = egress_verdict::default();
                        let code = unsafe {
                            egress_engine_lookup_v6(
                                engine.get(),
                                q.src.as_ptr(),
                                q.dst.as_ptr(),
                                &mut v,
                            )
                        };
                        assert_eq!((code, v), (egress_result::Ok, *want));
                    }
                    // The other const calls run beside the lookups and agree too.
                    assert_eq!(maps_json(&engine), want_json);
                    let mut stats = egress_stats::default();
                    assert_eq!(
                        unsafe { egress_engine_stats(engine.get(), &mut stats) },
                        egress_result::Ok
                    );
                    assert_eq!(stats.desired_v4 + stats.desired_v6, rust.entries().len());
                    let mut got = vec![egress_verdict::default(); queries_v4.len()];
                    let code = unsafe {
                        egress_engine_lookup_batch_v4(
                            engine.get(),
                            queries_v4.as_ptr(),
                            queries_v4.len(),
                            got.as_mut_ptr(),
                        )
                    };
                    assert_eq!((code, &got), (egress_result::Ok, &want_v4));
                    let mut got = vec![egress_verdict::default(); queries_v6.len()];
                    let code = unsafe {
                        egress_engine_lookup_batch_v6(
                            engine.get(),
                            queries_v6.as_ptr(),
                            queries_v6.len(),
                            got.as_mut_ptr(),
                        )
                    };
                    assert_eq!((code, &got), (egress_result::Ok, &want_v6));
                }
            });
        }
    });
    // NULL pointers are refused, not dereferenced.
    let mut v = egress_verdict::default();
    let q = queries_v4[0];
    for code in unsafe {
        [
            egress_engine_lookup_v4(ptr::null(), q.src.as_ptr(), q.dst.as_ptr(), &mut v),
            egress_engine_lookup_v4(engine.0, ptr::null(), q.dst.as_ptr(), &mut v),
            egress_engine_lookup_v4(engine.0, q.src.as_ptr(), ptr::null(), &mut v),
            egress_engine_lookup_v4(engine.0, q.src.as_ptr(), q.dst.as_ptr(), ptr::null_mut()),
            egress_engine_lookup_batch_v4(engine.0, ptr::null(), 1, &mut v),
        ]
    } {
        assert_eq!(code, egress_result::NullParameter);
    }
    assert_eq!(
        unsafe { egress_engine_lookup_batch_v4(engine.0, ptr::null(), 0, ptr::null_mut()) },
        egress_result::Ok,
        "an empty batch needs no arrays"
    );
}

#[test]
fn explain_conflicts_entries_and_stats_are_the_cores() {
    let text = std::fs::read_to_string(examples().join("selectors-and-conflicts.yaml")).unwrap();
    let snap = Snapshot::parse(&text).unwrap();
    let (rust, _) =
        Engine::from_snapshot(&snap, EngineConfig::new(snap.local_node.clone().unwrap()));
    let engine = from_snapshot(&text, None, 0).unwrap();
    let read = |f: &dyn Fn(*mut u8, usize, *mut usize) -> egress_result| {
        let mut needed = 0;
        assert_eq!(
            f(ptr::null_mut(), 0, &mut needed),
            egress_result::InsufficientSize
        );
        let mut buf = vec![0u8; needed];
        let mut written = 0;
        assert_eq!(
            f(buf.as_mut_ptr(), buf.len(), &mut written),
            egress_result::Ok
        );
        assert_eq!(written, needed);
        String::from_utf8(buf).unwrap()
    };
    let conflicts = read(&|b, l, w| unsafe {
        egress_engine_conflicts_json(engine.0, b, l, w, ptr::null_mut())
    });
    assert_eq!(
        conflicts,
        render::json_text(&render::conflicts_json(&rust.conflicts()))
    );
    assert!(!rust.conflicts().is_empty(), "the example has conflicts");
    let first = rust.entries().iter().next().copied().unwrap();
    let (src, dst) = (
        egress_ip_addr::from(first.source),
        egress_ip_addr::from(first.destination.addr),
    );
    let explained = read(&|b, l, w| unsafe {
        egress_engine_explain_json(engine.0, &src, &dst, b, l, w, ptr::null_mut())
    });
    assert_eq!(
        explained,
        render::json_text(&render::explanation_json(
            &rust.explain(first.source, first.destination.addr)
        ))
    );

    let mut count = 0;
    assert_eq!(
        unsafe { egress_engine_entries(engine.0, ptr::null_mut(), 0, &mut count, ptr::null_mut()) },
        egress_result::InsufficientSize
    );
    let mut entries = vec![egress_entry::default(); count];
    call(|e| unsafe {
        egress_engine_entries(engine.0, entries.as_mut_ptr(), count, &mut count, e)
    })
    .unwrap();
    let want: Vec<egress_entry> = rust.entries().iter().map(egress_entry::from).collect();
    assert_eq!(entries, want);

    let mut stats = egress_stats::default();
    assert_eq!(
        unsafe { egress_engine_stats(engine.0, &mut stats) },
        egress_result::Ok
    );
    let s = rust.stats();
    assert_eq!(
        (
            stats.desired_v4,
            stats.desired_v6,
            stats.policies,
            stats.endpoints,
            stats.nodes,
            stats.max_entries
        ),
        (
            s.desired_v4,
            s.desired_v6,
            s.policies,
            s.endpoints,
            s.nodes,
            s.max_entries as usize
        )
    );
    assert!(stats.memory_bytes > 0);
}

#[test]
fn a_new_engine_takes_events_from_nothing() {
    let (node, cluster) = ("gw", "prod");
    let config = egress_engine_config {
        local_node: node.as_ptr(),
        local_node_len: node.len(),
        selection: egress_selection::Consistent as u32,
        layout: egress_layout::Legacy as u32,
        max_entries: 1,
        cluster: cluster.as_ptr(),
        cluster_len: cluster.len(),
        cilium_version: EGRESS_CILIUM_1_18,
    };
    let mut raw = ptr::null_mut();
    call(|e| unsafe { egress_engine_new(&config, &mut raw, e) }).unwrap();
    let engine = Handle(raw);
    for node in [
        "{name: gw, labels: {egress: \"true\"}, ipv4: 192.168.1.1}",
        "{name: worker, ipv4: 192.168.1.2}",
    ] {
        call(|e| unsafe { egress_engine_upsert_node(engine.0, node.as_ptr(), node.len(), e) })
            .unwrap();
    }
    let devices = "[{name: eth0, index: 2, addresses: [192.168.1.1/24], defaultRoute: true}]";
    call(|e| unsafe { egress_engine_set_devices(engine.0, devices.as_ptr(), devices.len(), e) })
        .unwrap();
    call(|e| unsafe { egress_engine_upsert_policy(engine.0, POLICY.as_ptr(), POLICY.len(), e) })
        .unwrap();
    for ep in [
        "{uid: a, labels: {app: web}, ips: [10.0.0.1], node: worker}",
        "{uid: b, labels: {app: web}, ips: [10.0.0.2], node: worker}",
    ] {
        call(|e| unsafe { egress_engine_upsert_endpoint_json(engine.0, ep.as_ptr(), ep.len(), e) })
            .unwrap();
    }
    // Two entries, max_entries 1: the plan is refused whole.
    let mut count = 0;
    let err =
        call(|e| unsafe { egress_engine_take_plan(engine.0, ptr::null_mut(), 0, &mut count, e) })
            .err()
            .unwrap();
    assert_eq!(err.code, egress_result::Capacity);
    assert!(
        err.message.contains("cilium_egress_gw_policy_v4"),
        "{}",
        err.message
    );

    let empty = egress_engine_config {
        local_node: ptr::null(),
        local_node_len: 0,
        ..config
    };
    let err = call(|e| unsafe { egress_engine_new(&empty, &mut raw, e) })
        .err()
        .unwrap();
    assert_eq!(err.paths, ["config.local_node"]);
    let bad = egress_engine_config {
        layout: 5,
        ..config
    };
    let err = call(|e| unsafe { egress_engine_new(&bad, &mut raw, e) })
        .err()
        .unwrap();
    assert_eq!(
        (err.code, err.paths),
        (egress_result::InvalidEnum, vec!["config.layout".to_owned()])
    );
    let err = call(|e| unsafe { egress_engine_new(ptr::null(), &mut raw, e) })
        .err()
        .unwrap();
    assert_eq!(
        (err.code, err.paths),
        (egress_result::NullParameter, vec!["config".to_owned()])
    );
    // A misaligned output pointer is refused, not written through.
    let mut words = [0usize; 3];
    let misaligned = unsafe { words.as_mut_ptr().cast::<u8>().add(1) }.cast::<usize>();
    let err =
        call(|e| unsafe { egress_engine_take_plan(engine.0, ptr::null_mut(), 0, misaligned, e) })
            .err()
            .unwrap();
    assert_eq!(
        (err.code, err.paths),
        (egress_result::InvalidArgument, vec!["count_out".to_owned()])
    );
    assert_eq!(words, [0; 3]);
    let err = call(|e| unsafe { egress_engine_new(&config, ptr::null_mut(), e) })
        .err()
        .unwrap();
    assert_eq!(err.paths, ["engine_out"]);
}

#[test]
fn result_codes_never_change() {
    let codes = [
        (egress_result::Ok, 0),
        (egress_result::Panic, 1),
        (egress_result::NullParameter, 2),
        (egress_result::InvalidUtf8, 3),
        (egress_result::InvalidEnum, 4),
        (egress_result::InsufficientSize, 5),
        (egress_result::Parse, 6),
        (egress_result::Input, 7),
        (egress_result::Policy, 8),
        (egress_result::Capacity, 9),
        (egress_result::Decode, 10),
        (egress_result::InvalidArgument, 11),
        (egress_result::Kernel, 12),
    ];
    for (code, value) in codes {
        assert_eq!(code as u32, value, "{code:?}");
    }
}

#[cfg(feature = "bpf")]
#[test]
fn kernel_maps_are_programmed_dumped_and_adopted() {
    let Some(fs) =
        egress_bpf::bpffs::bpffs_or_skip("kernel_maps_are_programmed_dumped_and_adopted")
    else {
        return;
    };
    let dir = fs.path().to_str().unwrap();
    const CREATE: u32 = egress_maps_flag::Create as u32;
    // The seed's engine is Cilium 1.18's: the legacy IPv4 map.
    const LEGACY: u32 = egress_layout::Legacy as u32;
    const V4V2: u32 = egress_layout::V4v2 as u32;
    // Unknown flag bits are refused before anything is touched.
    let mut maps = ptr::null_mut();
    let err =
        call(|e| unsafe { egress_maps_open(dir.as_ptr(), dir.len(), LEGACY, 0, 2, &mut maps, e) })
            .err()
            .unwrap();
    assert_eq!(
        (err.code, err.paths),
        (egress_result::InvalidEnum, vec!["flags".to_owned()])
    );
    // EGRESS_LAYOUT_VERSION names no maps.
    let err =
        call(|e| unsafe { egress_maps_open(dir.as_ptr(), dir.len(), 0, 0, CREATE, &mut maps, e) })
            .err()
            .unwrap();
    assert_eq!(
        (err.code, err.paths),
        (egress_result::InvalidEnum, vec!["layout".to_owned()])
    );
    call(|e| unsafe { egress_maps_open(dir.as_ptr(), dir.len(), LEGACY, 0, CREATE, &mut maps, e) })
        .unwrap();
    let text = seed_text();
    let engine = from_snapshot(&text, None, 0).unwrap();
    let mut applied = 0;
    call(|e| unsafe { egress_maps_program(maps, engine.0, &mut applied, e) }).unwrap();
    let mut count = 0;
    assert_eq!(
        unsafe { egress_maps_dump(maps, ptr::null_mut(), 0, &mut count, ptr::null_mut()) },
        egress_result::InsufficientSize
    );
    assert_eq!(applied, count);
    let mut dumped = vec![egress_entry::default(); count];
    call(|e| unsafe { egress_maps_dump(maps, dumped.as_mut_ptr(), count, &mut count, e) }).unwrap();
    let mut desired = vec![egress_entry::default(); count];
    call(|e| unsafe {
        egress_engine_entries(engine.0, desired.as_mut_ptr(), count, &mut count, e)
    })
    .unwrap();
    assert_eq!(dumped, desired);
    assert!(take_plan(&engine).is_empty(), "everything was acknowledged");

    let restarted = from_snapshot(&text, None, 0).unwrap();
    call(|e| unsafe { egress_engine_adopt_maps(restarted.0, maps, e) }).unwrap();
    assert!(take_plan(&restarted).is_empty(), "a restart writes nothing");

    // The other layout's maps refuse this engine, naming the problem.
    let mut legacy = ptr::null_mut();
    call(|e| unsafe { egress_maps_open(dir.as_ptr(), dir.len(), V4V2, 0, CREATE, &mut legacy, e) })
        .unwrap();
    let err = call(|e| unsafe { egress_maps_program(legacy, engine.0, &mut applied, e) })
        .err()
        .unwrap();
    assert_eq!(err.code, egress_result::InvalidArgument);
    assert_eq!(applied, 0);
    // Opening maps that do not exist without create: a kernel error with its errno.
    let missing = format!("{dir}/missing");
    let mut none = ptr::null_mut();
    let mut error = ptr::null_mut();
    let code = unsafe {
        egress_maps_open(
            missing.as_ptr(),
            missing.len(),
            LEGACY,
            0,
            0,
            &mut none,
            &mut error,
        )
    };
    assert_eq!(code, egress_result::Kernel);
    assert!(unsafe { egress_error_errno(error) } > 0);
    unsafe {
        egress_error_free(error);
        egress_maps_free(legacy);
        egress_maps_free(maps);
    }
}

/// `egress_engine_diagnostics_json` (SEMANTICS B.7): a dump's skipped endpoint and an invalid
/// policy with every error, as `egressctl list` reports them; a size query allocates no
/// error object.
#[test]
fn every_load_reports_its_diagnostics() {
    let diagnostics = |engine: &Handle| -> serde_json::Value {
        let mut needed = 0;
        let mut error = ptr::null_mut();
        let code = unsafe {
            egress_engine_diagnostics_json(engine.0, ptr::null_mut(), 0, &mut needed, &mut error)
        };
        assert_eq!(code, egress_result::InsufficientSize);
        assert!(error.is_null(), "a size query allocates no error object");
        let mut buf = vec![0u8; needed];
        let mut written = 0;
        call(|err| unsafe {
            egress_engine_diagnostics_json(engine.0, buf.as_mut_ptr(), buf.len(), &mut written, err)
        })
        .unwrap();
        assert_eq!(written, needed);
        serde_json::from_slice(&buf).unwrap()
    };
    let dump = std::fs::read_to_string(examples().join("dumps/tke-dump.yaml")).unwrap();
    let engine = from_snapshot(&dump, Some("172.22.49.119"), 0).unwrap();
    let d = diagnostics(&engine);
    assert_eq!(
        d["skipped"],
        serde_json::json!([
            "objects[16] (default/nginx-7f6d8b9c5d-q4zkm): no status.identity labels: endpoint skipped"
        ])
    );
    assert_eq!(d["invalidPolicies"], serde_json::json!([]));
    let text = std::fs::read_to_string(examples().join("selectors-and-conflicts.yaml")).unwrap()
        + "- metadata: {name: broken}\n  spec: {selectors: [{nodeSelector: {}}], destinationCIDRs: [\"10.0.0.0/99\"]}\n";
    let engine = from_snapshot(&text, None, 0).unwrap();
    let d = diagnostics(&engine);
    assert_eq!(
        d["invalidPolicies"],
        serde_json::json!([{"policy": "broken", "errors": [
            {"path": "spec.selectors[0]", "reason": "Required value: podSelector or namespaceSelector"},
            {"path": "spec.destinationCIDRs[0]", "reason": "Invalid value: \"10.0.0.0/99\": prefix length out of range"},
            {"path": "spec.egressGateway", "reason": "Required value"}
        ]}])
    );
    assert!(!d["conflicts"].as_array().unwrap().is_empty());
    assert!(d["warnings"].as_array().unwrap().iter().any(|w| {
        w.as_str()
            .unwrap()
            .starts_with("web-tier: spec.egressGateway: every gateway entry matches only node")
    }));
}

/// The layout each Cilium version writes, as the core says it (CILIUM-VERSIONS §5): what an
/// agent names to `egress_maps_open` for an engine of `EGRESS_LAYOUT_VERSION`.
#[test]
fn each_cilium_versions_layout() {
    for (version, want) in [
        (EGRESS_CILIUM_1_18, egress_layout::Legacy),
        (EGRESS_CILIUM_1_19, egress_layout::Legacy),
        (EGRESS_CILIUM_1_20, egress_layout::Dual),
    ] {
        let mut layout = 99;
        call(|e| unsafe { egress_cilium_version_layout(version, &mut layout, e) }).unwrap();
        assert_eq!(layout, want as u32, "version {version}");
    }
    let mut layout = 99;
    let err = call(|e| unsafe { egress_cilium_version_layout(7, &mut layout, e) })
        .err()
        .unwrap();
    assert_eq!(
        (err.code, err.paths),
        (egress_result::InvalidEnum, vec!["version".to_owned()])
    );
    assert_eq!(layout, 99, "nothing written on a refusal");
    let err = call(|e| unsafe { egress_cilium_version_layout(0, ptr::null_mut(), e) })
        .err()
        .unwrap();
    assert_eq!(err.code, egress_result::NullParameter);
}

/// Issue 25: `egress_engine_set_node_health` gives the maps of the same snapshot with the
/// node's `ready`/`weight` written in it (consistent mode), keeps compat mode's, and refuses
/// out-of-range values naming the argument, changing nothing.
#[test]
fn node_health_gives_the_maps_of_the_snapshot_saying_so() {
    let path = examples().join("egress-pool-consistent.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let snap = snapshot::load(&text).unwrap().snapshot;
    let set = |engine: &Handle, name: &str, ready: i32, weight: i32| {
        let mut found = false;
        call(|err| unsafe {
            egress_engine_set_node_health(
                engine.0,
                name.as_ptr(),
                name.len(),
                ready,
                weight,
                &mut found,
                err,
            )
        })
        .map(|()| found)
    };
    for selection in [Selection::Consistent, Selection::Cilium] {
        let engine = from_snapshot(&text, None, selection as u32).unwrap();
        let before = maps_json(&engine);
        assert!(set(&engine, "172.22.49.147", 0, -1).unwrap());
        assert!(set(&engine, "172.22.49.119", -1, 0).unwrap());
        let mut said = snap.clone();
        said.nodes.get_mut("172.22.49.147").unwrap().ready = false;
        said.nodes.get_mut("172.22.49.119").unwrap().weight = 0;
        let now = maps_json(&engine);
        assert_eq!(now, egressctl_list(&said, selection), "{selection}");
        if selection == Selection::Consistent {
            assert_ne!(
                now, before,
                "the unready and drained gateways moved nothing"
            );
        } else {
            assert_eq!(now, before, "compat mode ignores health");
        }
        assert!(!set(&engine, "no-such-node", 0, -1).unwrap());
        for (ready, weight, code, path) in [
            (2, -1, egress_result::InvalidArgument, "ready"),
            (-1, -2, egress_result::InvalidArgument, "weight"),
            (-1, 101, egress_result::Input, "weight"),
        ] {
            let failed = set(&engine, "172.22.49.147", ready, weight).unwrap_err();
            assert_eq!(failed.code, code, "{failed:?}");
            assert_eq!(failed.paths, [path], "{failed:?}");
        }
        assert_eq!(maps_json(&engine), now, "a refused call changed the maps");
        // Cleared: the snapshot's own maps again.
        set(&engine, "172.22.49.147", -1, -1).unwrap();
        set(&engine, "172.22.49.119", -1, -1).unwrap();
        assert_eq!(maps_json(&engine), before);
    }
}

/// `egress_engine_gateway_nodes_json`: the example's three gateway nodes, the unready one
/// still listed with `"ready": false`.
#[test]
fn the_gateway_nodes_json_lists_what_probes_watch() {
    let text = std::fs::read_to_string(examples().join("egress-pool-consistent.yaml")).unwrap();
    let engine = from_snapshot(&text, None, Selection::Consistent as u32).unwrap();
    let read = || {
        let mut needed = 0;
        let code = unsafe {
            egress_engine_gateway_nodes_json(
                engine.0,
                ptr::null_mut(),
                0,
                &mut needed,
                ptr::null_mut(),
            )
        };
        assert_eq!(code, egress_result::InsufficientSize);
        let mut buf = vec![0u8; needed];
        let mut written = 0;
        call(|err| unsafe {
            egress_engine_gateway_nodes_json(
                engine.0,
                buf.as_mut_ptr(),
                buf.len(),
                &mut written,
                err,
            )
        })
        .unwrap();
        serde_json::from_slice::<serde_json::Value>(&buf[..written]).unwrap()
    };
    let names = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let before = read();
    assert_eq!(
        names(&before),
        ["172.22.49.119", "172.22.49.147", "172.22.49.20"]
    );
    call(|err| unsafe {
        egress_engine_set_node_health(
            engine.0,
            "172.22.49.147".as_ptr(),
            13,
            0,
            -1,
            ptr::null_mut(),
            err,
        )
    })
    .unwrap();
    let after = read();
    assert_eq!(names(&after), names(&before));
    assert_eq!(after[1]["ready"], false);
    assert_eq!(after[1]["ipv4"], "172.22.49.147");
}
