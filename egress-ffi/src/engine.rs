//! The engine handle: creation, freeing, and the events that change it.

use std::collections::BTreeMap;

use egress_core::cluster::{Endpoint, NodeHealth};
use egress_core::engine::{Engine, EngineConfig};
use egress_core::field::FieldError;
use egress_core::maps::capacity;
use egress_core::snapshot;

use crate::boundary::{checked_out, exclusive, optional_text, run, slice, utf8};
use crate::error::{Failure, egress_error, egress_result};
use crate::types::{cilium_version, egress_ip_addr, egress_label, layout_or_version, selection};

/// An engine: one node's egress gateway state (policies, nodes, endpoints, devices), its
/// desired maps, and what it knows is programmed. Opaque; made by `egress_engine_new` or
/// `egress_engine_from_snapshot`, freed by `egress_engine_free`.
///
/// Thread safety: functions taking a `const egress_engine *` (lookups, queries) may run
/// concurrently with each other from any threads. Functions taking an `egress_engine *`
/// (events, `take_plan`, `ack`, `adopt`) need exclusive access: no other call on the same
/// engine may run at the same time. The engine may move between threads.
pub struct egress_engine {
    pub(crate) engine: Engine,
}

/// How to build an engine.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct egress_engine_config {
    /// The node whose maps are computed (UTF-8). Required by `egress_engine_new`; for
    /// `egress_engine_from_snapshot_config`, NULL (length 0) means the snapshot's `localNode`.
    pub local_node: *const u8,
    /// Length of `local_node` in bytes.
    pub local_node_len: usize,
    /// `egress_selection`.
    pub selection: u32,
    /// `egress_layout` of the IPv4 maps plans are made for; `EGRESS_LAYOUT_VERSION` (0): the
    /// Cilium version's own.
    pub layout: u32,
    /// Capacity of each map; plans that would exceed it are refused. 0 (unset): 16384,
    /// Cilium's default (a capacity of 0 does not exist).
    pub max_entries: u32,
    /// Cluster name for `io.cilium.k8s.policy.cluster` (UTF-8); NULL (length 0): the
    /// snapshot's `cluster`, else `default`.
    pub cluster: *const u8,
    /// Length of `cluster` in bytes.
    pub cluster_len: usize,
    /// The Cilium version reproduced: `EGRESS_CILIUM_1_18` (0, the default), `_1_19`,
    /// `_1_20`.
    pub cilium_version: u32,
}

/// A pod's endpoint as a CNI ADD knows it, for `egress_engine_upsert_endpoint`. Every text
/// is UTF-8 `(pointer, length)`; an optional one is NULL (length 0) when absent. Nothing is
/// kept after the call returns.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct egress_endpoint {
    /// Unique id (required): the pod's UID or the CiliumEndpoint's `metadata.uid`.
    pub uid: *const u8,
    /// Length of `uid`.
    pub uid_len: usize,
    /// Namespace (optional: no namespace labels are derived without one).
    pub namespace_name: *const u8,
    /// Length of `namespace_name`.
    pub namespace_name_len: usize,
    /// The pod's labels (`labels_len` items; NULL when 0).
    pub labels: *const egress_label,
    /// Number of `labels`.
    pub labels_len: usize,
    /// The namespace's labels, as this endpoint carries them.
    pub namespace_labels: *const egress_label,
    /// Number of `namespace_labels`.
    pub namespace_labels_len: usize,
    /// Service account (optional: `default`).
    pub service_account: *const u8,
    /// Length of `service_account`.
    pub service_account_len: usize,
    /// The endpoint's addresses.
    pub ips: *const egress_ip_addr,
    /// Number of `ips`.
    pub ips_len: usize,
    /// The hosting node's name (optional).
    pub node: *const u8,
    /// Length of `node`.
    pub node_len: usize,
}

// A `const egress_engine *` may be used from several threads at once, and an engine may move
// between threads (Go moves goroutines): the handle must stay `Send + Sync`.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<egress_engine>();
};

impl egress_engine {
    /// Hands an engine built in Rust to C code (a Rust agent loading C plugins, the
    /// benchmarks): the pointer owns it; free it with `egress_engine_free`.
    pub fn into_raw(engine: Engine) -> *mut egress_engine {
        Box::into_raw(Box::new(egress_engine { engine }))
    }
}

/// Reads a config whose fields' paths start with `prefix` (`config.` for a config passed by
/// the caller, empty for the arguments `egress_engine_from_snapshot` packs into one).
///
/// # Safety
/// `config`'s pointers as `egress_engine_config` documents.
unsafe fn read_config(
    config: &egress_engine_config,
    prefix: &str,
) -> Result<(Option<String>, EngineConfig), Failure> {
    let at = |field: &str| format!("{prefix}{field}");
    // SAFETY: the caller's promise on the config's pointers.
    let local =
        unsafe { optional_text(config.local_node, config.local_node_len, &at("local_node")) }?;
    // SAFETY: as above.
    let cluster = unsafe { optional_text(config.cluster, config.cluster_len, &at("cluster")) }?;
    let version = cilium_version(config.cilium_version, &at("cilium_version"))?;
    let base = EngineConfig::new(local.unwrap_or_default()).with_cilium_version(version);
    let engine_config = EngineConfig {
        selection: selection(config.selection, &at("selection"))?,
        layout: layout_or_version(config.layout, &at("layout"))?.unwrap_or(base.layout),
        // A zeroed field is how C leaves it unset (the core's default).
        max_entries: capacity(
            &at("max_entries"),
            (config.max_entries != 0).then_some(config.max_entries),
        )?,
        cluster: cluster.map(str::to_owned),
        ..base
    };
    Ok((local.map(str::to_owned), engine_config))
}

/// Makes an empty engine.
///
/// Returns `EGRESS_RESULT_INVALID_ARGUMENT` when `config->local_node` is empty,
/// `EGRESS_RESULT_INVALID_ENUM` for an unknown selection or layout. On success
/// `*engine_out` owns the engine: free it with `egress_engine_free`.
///
/// # Safety
/// `config` is NULL or a valid config; `engine_out` is NULL or valid for a write;
/// `error_out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_new(
    config: *const egress_engine_config,
    engine_out: *mut *mut egress_engine,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: every pointer as the caller promises.
    unsafe {
        run(error_out, || {
            let engine_out = checked_out(engine_out, "engine_out")?;
            let (_, config) =
                read_config(crate::boundary::reference(config, "config")?, "config.")?;
            config.validate().map_err(|mut e| {
                e.path = format!("config.{}", e.path);
                egress_core::Error::from(e)
            })?;
            engine_out.write(egress_engine::into_raw(Engine::new(config)));
            Ok(())
        })
    }
}

/// Loads snapshot text as `egressctl list -f` does and computes `local_node`'s maps.
///
/// `text` is a snapshot (YAML or JSON) or a Kubernetes dump. `local_node` NULL (length 0):
/// the snapshot's `localNode`. `selection`: `EGRESS_SELECTION_CILIUM` or
/// `EGRESS_SELECTION_CONSISTENT`. Invalid policies are left out of the maps (as `list`
/// without `--strict`); loading fails only for unreadable input (`EGRESS_RESULT_PARSE`,
/// `EGRESS_RESULT_INPUT`) or a node that is not in it (`EGRESS_RESULT_INVALID_ARGUMENT`,
/// path `local_node`). On success `*engine_out` owns the engine.
///
/// # Safety
/// `text` points at `text_len` readable bytes (NULL only when 0); `local_node` likewise;
/// `engine_out` and `error_out` are NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_from_snapshot(
    text: *const u8,
    text_len: usize,
    local_node: *const u8,
    local_node_len: usize,
    selection: u32,
    engine_out: *mut *mut egress_engine,
    error_out: *mut *mut egress_error,
) -> egress_result {
    let config = egress_engine_config {
        local_node,
        local_node_len,
        selection,
        // Cilium 1.18, the conformance call's version, and its maps.
        layout: crate::types::egress_layout::Version as u32,
        max_entries: 0,
        cluster: std::ptr::null(),
        cluster_len: 0,
        cilium_version: crate::types::EGRESS_CILIUM_1_18,
    };
    // SAFETY: forwarded; `config` lives across the call.
    unsafe { run(error_out, || load(text, text_len, &config, "", engine_out)) }
}

/// `egress_engine_from_snapshot` with every setting of a config: its `local_node` NULL
/// (length 0) means the snapshot's `localNode`; its `cluster` NULL means the snapshot's.
///
/// # Safety
/// As `egress_engine_from_snapshot`; `config` is NULL or a valid config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_from_snapshot_config(
    text: *const u8,
    text_len: usize,
    config: *const egress_engine_config,
    engine_out: *mut *mut egress_engine,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: every pointer as the caller promises.
    unsafe {
        run(error_out, || {
            let config = crate::boundary::reference(config, "config")?;
            load(text, text_len, config, "config.", engine_out)
        })
    }
}

/// Loads snapshot text as `egressctl list -f` does into a new engine at `*engine_out`;
/// `prefix` starts the paths of the config's fields in errors.
///
/// # Safety
/// `text` points at `text_len` bytes; `config`'s pointers are valid; `engine_out` is NULL or
/// valid for a write.
unsafe fn load(
    text: *const u8,
    text_len: usize,
    config: &egress_engine_config,
    prefix: &str,
    engine_out: *mut *mut egress_engine,
) -> Result<(), Failure> {
    let engine_out = checked_out(engine_out, "engine_out")?;
    // SAFETY: the caller's promises.
    let (text, (local, config)) =
        unsafe { (utf8(text, text_len, "text")?, read_config(config, prefix)?) };
    let argument = format!("{prefix}local_node");
    let loaded = Engine::load_snapshot(text, local.as_deref(), &argument, config)?;
    let engine = loaded.engine;
    // SAFETY: checked for NULL; the caller promises it is valid for a write.
    unsafe { engine_out.write(egress_engine::into_raw(engine)) };
    Ok(())
}

/// Frees an engine. NULL is a no-op.
///
/// # Safety
/// `engine` is NULL or an engine from this library, not yet freed, with no call on it
/// running; it is invalid afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_free(engine: *mut egress_engine) {
    if !engine.is_null() {
        // SAFETY: made by Box::into_raw in `into_raw`, freed once (the caller's promise).
        drop(unsafe { Box::from_raw(engine) });
    }
}

/// Runs an event on an engine with exclusive access.
///
/// # Safety
/// `engine` NULL or valid with exclusive access; `error_out` NULL or valid for a write.
unsafe fn event(
    engine: *mut egress_engine,
    error_out: *mut *mut egress_error,
    body: impl FnOnce(&mut Engine) -> Result<(), Failure>,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe { run(error_out, || body(&mut exclusive(engine, "engine")?.engine)) }
}

/// Upserts the policies of `text` (YAML or JSON: one `CiliumEgressGatewayPolicy`, a `List`
/// or a `---` stream; text holding no policy is `EGRESS_RESULT_PARSE`). All or nothing: when
/// any policy is invalid, none is applied and
/// `EGRESS_RESULT_POLICY` reports every field error of the first invalid one (the error's
/// policy name says which), the previous versions staying in force.
///
/// # Safety
/// `engine` is a valid engine with exclusive access; `text` points at `text_len` bytes;
/// `error_out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_upsert_policy(
    engine: *mut egress_engine,
    text: *const u8,
    text_len: usize,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        event(engine, error_out, |engine| {
            engine.upsert_policy_text(utf8(text, text_len, "text")?)?;
            Ok(())
        })
    }
}

/// What `egress_engine_apply` applied: counts of the objects taken, and of what was not.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct egress_applied {
    /// Valid policies upserted.
    pub policies: usize,
    /// Nodes upserted (`CiliumNode`s and core `Node`s).
    pub nodes: usize,
    /// Pods whose endpoint was upserted (from `CiliumEndpoint`s, slice entries and `Pod`s; a
    /// `CiliumIdentity` counts the slice endpoints naming it).
    pub endpoints: usize,
    /// Namespaces whose labels were set.
    pub namespaces: usize,
    /// Invalid policies, left out (each keeps its previous version): every field error of
    /// each is in `egress_engine_diagnostics_json`'s `invalidPolicies`.
    pub invalid_policies: usize,
    /// Objects skipped and conversion notes: in `egress_engine_diagnostics_json`'s `skipped`.
    pub skipped: usize,
}

/// Applies Kubernetes objects as updates, as `egressctl` reads a dump and as Python's
/// `Engine.apply` does: `CiliumEgressGatewayPolicy`, `CiliumNode`, `CiliumEndpoint`,
/// `Namespace`, a cluster's core `Pod` and `Node`, and `CiliumEndpointSlice`s with their
/// `CiliumIdentity`s (SEMANTICS B.10: a CiliumEndpoint beats a slice entry of its pod, which
/// beats its Pod, across events whatever their order; an identity updates every slice
/// endpoint naming it) — one, a `List`, or a `---` stream. Nodes and namespaces first, then
/// policies, then endpoints (a `CiliumEndpoint` finds its node by address among the nodes
/// known then: apply `CiliumNode`s first or together). Invalid policies are not an error:
/// they keep their previous version and are counted in `*applied_out` (optional: NULL), their
/// errors kept in the engine's diagnostics (`egress_engine_diagnostics_json`), as are the
/// objects skipped. Any other input error (`EGRESS_RESULT_PARSE`, `EGRESS_RESULT_INPUT`,
/// paths `objects[i]...`) applies nothing.
///
/// # Safety
/// `engine` is a valid engine with exclusive access; `text` points at `text_len` bytes;
/// `applied_out` and `error_out` are NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_apply(
    engine: *mut egress_engine,
    text: *const u8,
    text_len: usize,
    applied_out: *mut egress_applied,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        event(engine, error_out, |engine| {
            let applied = engine.apply_text(utf8(text, text_len, "text")?)?;
            if !applied_out.is_null() {
                applied_out.write(egress_applied {
                    policies: applied.policies,
                    nodes: applied.nodes,
                    endpoints: applied.endpoints,
                    namespaces: applied.namespaces,
                    invalid_policies: applied.invalid_policies.len(),
                    skipped: applied.warnings.len(),
                });
            }
            Ok(())
        })
    }
}

/// Writes whether something was found, when asked.
///
/// # Safety
/// `found_out` is NULL or valid for a write.
unsafe fn report_found(found_out: *mut bool, found: bool) {
    if !found_out.is_null() {
        // SAFETY: not NULL; the caller's promise.
        unsafe { found_out.write(found) };
    }
}

/// The body of the three deletes: `delete` by the name (or uid) read from `name`/`name_len`
/// (called `arg` in errors), whether it existed written to `*found_out` when asked.
///
/// # Safety
/// As the delete exports.
unsafe fn delete_by_name(
    engine: *mut egress_engine,
    (name, name_len, arg): (*const u8, usize, &str),
    found_out: *mut bool,
    error_out: *mut *mut egress_error,
    delete: impl FnOnce(&mut Engine, &str) -> bool,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        event(engine, error_out, |engine| {
            let found = delete(engine, utf8(name, name_len, arg)?);
            report_found(found_out, found);
            Ok(())
        })
    }
}

/// Deletes the policy named `name`. `*found_out` (optional: NULL) says whether it existed.
///
/// # Safety
/// `engine` is a valid engine with exclusive access; `name` points at `name_len` bytes;
/// `found_out` and `error_out` are NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_delete_policy(
    engine: *mut egress_engine,
    name: *const u8,
    name_len: usize,
    found_out: *mut bool,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        delete_by_name(
            engine,
            (name, name_len, "name"),
            found_out,
            error_out,
            Engine::delete_policy,
        )
    }
}

/// Upserts a node: JSON or YAML in the snapshot's `nodes[]` shape, or a `CiliumNode` or core
/// `Node` object.
/// Input errors (`EGRESS_RESULT_INPUT`) name each field; nothing changes then.
///
/// # Safety
/// As `egress_engine_upsert_policy`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_upsert_node(
    engine: *mut egress_engine,
    text: *const u8,
    text_len: usize,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        event(engine, error_out, |engine| {
            engine.upsert_node(snapshot::parse_node(utf8(text, text_len, "text")?)?);
            Ok(())
        })
    }
}

/// Deletes the node named `name`. `*found_out` (optional) says whether it existed.
///
/// # Safety
/// As `egress_engine_delete_policy`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_delete_node(
    engine: *mut egress_engine,
    name: *const u8,
    name_len: usize,
    found_out: *mut bool,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        delete_by_name(
            engine,
            (name, name_len, "name"),
            found_out,
            error_out,
            Engine::delete_node,
        )
    }
}

/// Sets what the embedding agent's health probes or an operator say of node `name`
/// (SEMANTICS B.3), over what its objects say, kept across its object events until set again:
/// `ready` 1 or 0 (-1: the objects' readiness), `weight` 0–100 (-1: the objects' weight).
/// Consistent mode leaves an unready or zero-weight node out of the candidates; compat mode
/// ignores both, as Cilium does. A node not known yet takes it when it arrives.
/// `*found_out` (optional) says whether the node is known. Out of range:
/// `EGRESS_RESULT_INVALID_ARGUMENT` (`ready` other than -1, 0 or 1; `weight` below -1) or
/// `EGRESS_RESULT_INPUT` (`weight` above 100, an empty `name`), nothing changed.
///
/// # Safety
/// As `egress_engine_delete_policy`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_set_node_health(
    engine: *mut egress_engine,
    name: *const u8,
    name_len: usize,
    ready: i32,
    weight: i32,
    found_out: *mut bool,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        event(engine, error_out, |engine| {
            let name = utf8(name, name_len, "name")?;
            let ready = match ready {
                -1 => None,
                0 => Some(false),
                1 => Some(true),
                other => {
                    return Err(Failure::invalid_argument(
                        "ready",
                        format!(
                            "{other}: want 1 (ready), 0 (not ready) or -1 (the node's objects say)"
                        ),
                    ));
                }
            };
            let weight = match weight {
                -1 => None,
                w if w < -1 => {
                    return Err(Failure::invalid_argument(
                        "weight",
                        format!("{w}: want 0 to 100, or -1 (the node's objects say)"),
                    ));
                }
                w => Some(i64::from(w)),
            };
            let health = NodeHealth::checked(ready, weight).map_err(egress_core::Error::Input)?;
            let found = engine.set_node_health(name, health)?;
            report_found(found_out, found);
            Ok(())
        })
    }
}

/// Reads `len` labels; each key and value is checked for UTF-8 and a key may appear once.
///
/// # Safety
/// `labels` points at `len` valid labels whose pointers are valid (NULL only when 0).
unsafe fn read_labels(
    labels: *const egress_label,
    len: usize,
    name: &str,
) -> Result<BTreeMap<String, String>, Failure> {
    // SAFETY: the caller's promise.
    let labels = unsafe { slice(labels, len, name) }?;
    let mut map = BTreeMap::new();
    for (i, label) in labels.iter().enumerate() {
        let at = format!("{name}[{i}]");
        // SAFETY: the caller's promise on each label's pointers.
        let key = unsafe { utf8(label.key, label.key_len, &format!("{at}.key")) }?;
        // SAFETY: as above.
        let value = unsafe { utf8(label.value, label.value_len, &format!("{at}.value")) }?;
        if map.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(Failure::invalid_argument(
                &format!("{at}.key"),
                format!("Duplicate value: {key:?}"),
            ));
        }
    }
    Ok(map)
}

/// # Safety
/// `ep`'s pointers as `egress_endpoint` documents.
unsafe fn read_endpoint(ep: &egress_endpoint) -> Result<Endpoint, Failure> {
    // SAFETY (every block below): the caller's promise on the endpoint's pointers.
    let uid = unsafe { utf8(ep.uid, ep.uid_len, "endpoint.uid") }?;
    let owned = |s: Option<&str>| s.map(str::to_owned);
    let ips = unsafe { slice(ep.ips, ep.ips_len, "endpoint.ips") }?
        .iter()
        .enumerate()
        .map(|(i, ip)| ip.to_ip(&format!("endpoint.ips[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Endpoint {
        uid: uid.to_owned(),
        namespace: owned(unsafe {
            optional_text(
                ep.namespace_name,
                ep.namespace_name_len,
                "endpoint.namespace_name",
            )
        }?),
        name: None,
        labels: unsafe { read_labels(ep.labels, ep.labels_len, "endpoint.labels") }?.into(),
        namespace_labels: unsafe {
            read_labels(
                ep.namespace_labels,
                ep.namespace_labels_len,
                "endpoint.namespace_labels",
            )
        }?
        .into(),
        service_account: owned(unsafe {
            optional_text(
                ep.service_account,
                ep.service_account_len,
                "endpoint.service_account",
            )
        }?),
        identity_labels: None,
        ips,
        node: owned(unsafe { optional_text(ep.node, ep.node_len, "endpoint.node") }?),
    })
}

/// Upserts an endpoint from the typed struct: the CNI ADD hot path (no JSON). Errors name
/// the field (`endpoint.labels[2].key`, `endpoint.ips[0].family`, ...); nothing changes then.
///
/// # Safety
/// `engine` is a valid engine with exclusive access; `endpoint` is NULL or valid with its
/// pointers as `egress_endpoint` documents; `error_out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_upsert_endpoint(
    engine: *mut egress_engine,
    endpoint: *const egress_endpoint,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        event(engine, error_out, |engine| {
            let endpoint = read_endpoint(crate::boundary::reference(endpoint, "endpoint")?)?;
            engine
                .upsert_endpoint(endpoint)
                .map_err(|e| e.under("endpoint"))?;
            Ok(())
        })
    }
}

/// Upserts an endpoint from JSON or YAML in the snapshot's `endpoints[]` shape (`uid`,
/// `namespace`, `labels`, `namespaceLabels`, `serviceAccount`, `identityLabels`, `ips`,
/// `node`). Input errors name each field; nothing changes then.
///
/// # Safety
/// As `egress_engine_upsert_policy`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_upsert_endpoint_json(
    engine: *mut egress_engine,
    text: *const u8,
    text_len: usize,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        event(engine, error_out, |engine| {
            engine
                .upsert_read_endpoint(snapshot::parse_endpoint(utf8(text, text_len, "text")?)?)?;
            Ok(())
        })
    }
}

/// Deletes the endpoint with `uid`. `*found_out` (optional) says whether it existed.
///
/// # Safety
/// As `egress_engine_delete_policy`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_delete_endpoint(
    engine: *mut egress_engine,
    uid: *const u8,
    uid_len: usize,
    found_out: *mut bool,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        delete_by_name(
            engine,
            (uid, uid_len, "uid"),
            found_out,
            error_out,
            Engine::delete_endpoint,
        )
    }
}

/// Sets the labels of namespace `name` on every endpoint currently in it (as re-upserting
/// each would).
///
/// # Safety
/// `engine` is a valid engine with exclusive access; `name` points at `name_len` bytes;
/// `labels` at `labels_len` valid labels (NULL only when 0); `error_out` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_upsert_namespace(
    engine: *mut egress_engine,
    name: *const u8,
    name_len: usize,
    labels: *const egress_label,
    labels_len: usize,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        event(engine, error_out, |engine| {
            let name = utf8(name, name_len, "name")?;
            // As the JSON form's reader: a namespace has a name.
            if name.is_empty() {
                return Err(FieldError::required("name").into());
            }
            let labels = read_labels(labels, labels_len, "labels")?;
            engine.upsert_namespace(name, labels)?;
            Ok(())
        })
    }
}

/// `egress_engine_upsert_namespace` from JSON or YAML: a Kubernetes `Namespace` object or
/// `{"name": ..., "labels": {...}}`.
///
/// # Safety
/// As `egress_engine_upsert_policy`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_upsert_namespace_json(
    engine: *mut egress_engine,
    text: *const u8,
    text_len: usize,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        event(engine, error_out, |engine| {
            let ns = snapshot::parse_namespace(utf8(text, text_len, "text")?)?;
            engine.upsert_namespace(&ns.name, ns.labels)?;
            Ok(())
        })
    }
}

/// Sets the local node's devices: JSON or YAML in the snapshot's `interfaces` shape (a list
/// of `{name, index, altNames, addresses, defaultRoute}`).
///
/// # Safety
/// As `egress_engine_upsert_policy`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_set_devices(
    engine: *mut egress_engine,
    text: *const u8,
    text_len: usize,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        event(engine, error_out, |engine| {
            engine.set_devices(snapshot::parse_interfaces(utf8(text, text_len, "text")?)?);
            Ok(())
        })
    }
}
