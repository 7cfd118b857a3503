//! `egress_gateway.Engine`: one node's engine behind a read-write lock, so that lookups and
//! queries from many threads run together (without the GIL) and events take turns.

use std::net::IpAddr;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use egress_core::engine::{Engine as CoreEngine, EngineConfig};
use egress_core::gateway::Selection;
use egress_core::lookup::VerdictRecord;
use egress_core::maps::Layout;
use egress_core::{render, snapshot};

use crate::errors::{IntoPy, from_core};
use crate::values::{Entry, Explanation, Plan, Verdict, ip_arg, json_object};

/// Text from what callers hold: `str`, UTF-8 `bytes`, or a `dict`/`list` (what PyYAML or the
/// Kubernetes client give), turned into JSON (values JSON lacks, such as dates, as strings).
pub(crate) fn text_of(value: &Bound<'_, PyAny>, name: &str) -> PyResult<String> {
    if value.is_instance_of::<PyString>() {
        return value.extract();
    }
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return String::from_utf8(bytes.as_bytes().to_vec())
            .map_err(|e| PyValueError::new_err(format!("{name}: not UTF-8 ({e})")));
    }
    if value.is_instance_of::<PyDict>() || value.is_instance_of::<PyList>() {
        let py = value.py();
        let kwargs = PyDict::new(py);
        kwargs.set_item("default", py.get_type::<PyString>())?;
        return py
            .import("json")?
            .call_method("dumps", (value,), Some(&kwargs))?
            .extract();
    }
    Err(PyTypeError::new_err(format!(
        "{name}: expected str, bytes, dict or list, got {}",
        value.get_type().name()?
    )))
}

/// `from_snapshot`'s data: a path-like names a file; anything else as [`text_of`].
fn snapshot_text(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<String> {
    if data.hasattr("__fspath__")? {
        let path: std::path::PathBuf = data.call_method0("__fspath__")?.extract()?;
        return py
            .detach(|| std::fs::read_to_string(&path))
            .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("{}: {e}", path.display())));
    }
    text_of(data, "data")
}

fn selection(name: &str) -> PyResult<Selection> {
    name.parse()
        .map_err(|e: egress_core::Error| PyValueError::new_err(e.to_string()))
}

fn layout(name: &str) -> PyResult<Layout> {
    name.parse()
        .map_err(|e: egress_core::Error| PyValueError::new_err(e.to_string()))
}

/// One node's egress gateway engine: events in (policies, nodes, endpoints, namespaces,
/// devices), the node's maps, lookups, explanations and two-phase plans out.
///
/// Safe to share between threads: lookups and queries run concurrently (without the GIL);
/// events and plans take an exclusive lock.
#[pyclass(frozen, module = "egress_gateway")]
pub(crate) struct Engine {
    inner: RwLock<CoreEngine>,
}

impl Engine {
    fn read(&self) -> RwLockReadGuard<'_, CoreEngine> {
        // A panic while writing is a bug the caller already saw as an exception; the engine
        // is still whole (its events change nothing before they succeed).
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, CoreEngine> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn wrap(engine: CoreEngine) -> Self {
        Engine {
            inner: RwLock::new(engine),
        }
    }

    /// Parses text with `parse` (GIL released) and applies the result with `apply`.
    fn event<T: Send>(
        &self,
        py: Python<'_>,
        text: String,
        parse: impl FnOnce(&str) -> Result<T, egress_core::Error> + Send,
        apply: impl FnOnce(&mut CoreEngine, T) + Send,
    ) -> PyResult<()> {
        py.detach(|| {
            let value = parse(&text)?;
            apply(&mut self.write(), value);
            Ok::<(), egress_core::Error>(())
        })
        .py_err(py)
    }
}

#[pymethods]
impl Engine {
    /// An empty engine computing the maps of `local_node`.
    #[new]
    #[pyo3(signature = (local_node, selection="cilium", layout="v4v2", max_entries=16384, cluster=None))]
    fn new(
        local_node: &str,
        selection: &str,
        layout: &str,
        max_entries: u32,
        cluster: Option<String>,
    ) -> PyResult<Self> {
        if local_node.is_empty() {
            return Err(PyValueError::new_err("local_node: Required value"));
        }
        Ok(Engine::wrap(CoreEngine::new(EngineConfig {
            selection: self::selection(selection)?,
            layout: self::layout(layout)?,
            max_entries,
            cluster,
            ..EngineConfig::new(local_node)
        })))
    }

    /// An engine holding a snapshot's objects, as `egressctl list -f` reads them. `data` is
    /// snapshot text (`str`/`bytes`: a snapshot or a Kubernetes dump), a parsed snapshot
    /// (`dict`), or a path. `local_node` (default: the snapshot's `localNode`) is the node
    /// whose maps are computed. Invalid policies are left out (see `invalid_policies`).
    #[staticmethod]
    #[pyo3(signature = (data, *, local_node=None, selection="cilium", layout="v4v2", max_entries=16384))]
    fn from_snapshot(
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        local_node: Option<&str>,
        selection: &str,
        layout: &str,
        max_entries: u32,
    ) -> PyResult<Self> {
        let text = snapshot_text(py, data)?;
        let config = EngineConfig {
            selection: self::selection(selection)?,
            layout: self::layout(layout)?,
            max_entries,
            ..EngineConfig::new("")
        };
        let local_node = local_node.map(str::to_owned);
        let loaded = py
            .detach(|| {
                CoreEngine::load_snapshot(&text, local_node.as_deref(), "local_node", config)
            })
            .map_err(|e| from_core(py, &e))?;
        Ok(Engine::wrap(loaded.engine))
    }

    /// The node whose maps are computed.
    #[getter]
    fn local_node(&self) -> String {
        self.read().config().local_node.clone()
    }

    /// `"cilium"` or `"consistent"`.
    #[getter]
    fn selection(&self) -> &'static str {
        self.read().config().selection.name()
    }

    /// `"v4v2"` or `"legacy"`.
    #[getter]
    fn layout(&self) -> &'static str {
        self.read().config().layout.name()
    }

    /// The maps as JSON: exactly what `egressctl list -o json` prints.
    fn maps_json(&self, py: Python<'_>) -> String {
        py.detach(|| render::to_json(&self.read().entries()))
    }

    /// The maps as `cilium-dbg bpf egress list` prints them (`""` when they are empty).
    fn format_table(&self, py: Python<'_>) -> String {
        py.detach(|| render::to_table(&self.read().entries()).unwrap_or_default())
    }

    /// The desired entries, IPv4 first, each map in `list` order.
    fn entries(&self, py: Python<'_>) -> Vec<Entry> {
        let maps = py.detach(|| self.read().entries());
        maps.iter().map(|&entry| Entry { entry }).collect()
    }

    /// The verdict for a packet from `src` to `dst` (`str` or `ipaddress` addresses).
    fn lookup(&self, src: &Bound<'_, PyAny>, dst: &Bound<'_, PyAny>) -> PyResult<Verdict> {
        let (src, dst) = (ip_arg(src, "src")?, ip_arg(dst, "dst")?);
        Ok(Verdict {
            record: self.read().lookup_record(src, dst),
            ipv4: src.is_ipv4(),
        })
    }

    /// Many lookups at once, without a Python object per query. `queries` holds packed
    /// (source, destination) pairs in network order — 8 bytes each for `family=4`, 32 for
    /// `family=6` — as `bytes`, `bytearray`, `array.array` or a NumPy array. Returns `bytes`:
    /// one 28-byte record per query, `struct` format `"<I4s16sI"` (kind number as in
    /// `VERDICT_KINDS`, gateway IPv4, egress IP, ifindex).
    #[pyo3(signature = (queries, *, family=4))]
    fn lookup_many<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        family: u8,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let width = match family {
            4 => 4,
            6 => 16,
            other => {
                return Err(PyValueError::new_err(format!(
                    "family: {other} is not 4 or 6"
                )));
            }
        };
        let owned;
        let bytes: &[u8] = if let Ok(b) = queries.cast::<PyBytes>() {
            b.as_bytes()
        } else {
            // Any buffer (bytearray, array, memoryview, NumPy): one copy, no object per query.
            owned = py
                .get_type::<PyBytes>()
                .call1((queries,))
                .map_err(|_| PyTypeError::new_err("queries: expected a bytes-like object"))?;
            owned.cast::<PyBytes>()?.as_bytes()
        };
        if !bytes.len().is_multiple_of(2 * width) {
            return Err(PyValueError::new_err(format!(
                "queries: {} bytes is not a whole number of {}-byte queries",
                bytes.len(),
                2 * width
            )));
        }
        let count = bytes.len() / (2 * width);
        let mut records = vec![VerdictRecord::NO_ENTRY; count];
        let ip = |b: &[u8]| -> IpAddr {
            match <[u8; 16]>::try_from(b) {
                Ok(v6) => IpAddr::from(v6),
                Err(_) => IpAddr::from([b[0], b[1], b[2], b[3]]),
            }
        };
        py.detach(|| {
            const CHUNK: usize = 256;
            let engine = self.read();
            let mut pairs = Vec::with_capacity(CHUNK);
            for (qs, out) in bytes
                .chunks(2 * width * CHUNK)
                .zip(records.chunks_mut(CHUNK))
            {
                pairs.clear();
                pairs.extend(
                    qs.chunks_exact(2 * width)
                        .map(|q| (ip(&q[..width]), ip(&q[width..]))),
                );
                engine.lookup_many_records(&pairs, out);
            }
        });
        PyBytes::new_with(py, count * 28, |buf| {
            for (chunk, r) in buf.chunks_exact_mut(28).zip(&records) {
                chunk[..4].copy_from_slice(&(r.kind as u32).to_le_bytes());
                chunk[4..8].copy_from_slice(&r.gateway_ip);
                chunk[8..24].copy_from_slice(&r.egress_ip);
                chunk[24..].copy_from_slice(&r.ifindex.to_le_bytes());
            }
            Ok(())
        })
    }

    /// Why a packet from `src` to `dst` gets its verdict.
    fn explain(
        &self,
        py: Python<'_>,
        src: &Bound<'_, PyAny>,
        dst: &Bound<'_, PyAny>,
    ) -> PyResult<Explanation> {
        let (src, dst) = (ip_arg(src, "src")?, ip_arg(dst, "dst")?);
        Ok(py.detach(|| Explanation::new(&self.read().explain(src, dst))))
    }

    /// The keys several producers want with different bytes, and who wins: a list of
    /// `{"winner": producer, "overridden": [producer, ...]}`.
    fn conflicts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let json = py.detach(|| render::conflicts_json(&self.read().conflicts()));
        json_object(py, &json)
    }

    /// Counts and sizes: desired and programmed entries per map, capacity, pending sources,
    /// policies, endpoints, nodes, memory.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (s, memory) = {
            let engine = self.read();
            (engine.stats(), engine.memory())
        };
        let dict = PyDict::new(py);
        dict.set_item("desired_v4", s.desired_v4)?;
        dict.set_item("desired_v6", s.desired_v6)?;
        dict.set_item("programmed_v4", s.programmed_v4)?;
        dict.set_item("programmed_v6", s.programmed_v6)?;
        dict.set_item("max_entries", s.max_entries)?;
        dict.set_item("pending_sources", s.pending_sources)?;
        dict.set_item("policies", s.policies)?;
        dict.set_item("endpoints", s.endpoints)?;
        dict.set_item("nodes", s.nodes)?;
        dict.set_item("memory_bytes", memory.total())?;
        Ok(dict)
    }

    /// Applies Kubernetes objects as updates (`CiliumEgressGatewayPolicy`, `CiliumNode`,
    /// `CiliumEndpoint`, `Namespace`: one, a `List` or a `---` stream). Invalid policies keep
    /// their previous version and are returned as `PolicyError`s (not raised); any other input
    /// error raises `SnapshotError` and applies nothing. Returns a dict of counts
    /// (`policies`, `nodes`, `endpoints`, `namespaces`), `invalid_policies` and `warnings`.
    fn apply<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let text = text_of(text, "text")?;
        let applied = py
            .detach(|| self.write().apply_text(&text))
            .map_err(|e| from_core(py, &e))?;
        let dict = PyDict::new(py);
        dict.set_item("policies", applied.policies)?;
        dict.set_item("nodes", applied.nodes)?;
        dict.set_item("endpoints", applied.endpoints)?;
        dict.set_item("namespaces", applied.namespaces)?;
        let invalid: Vec<Bound<'py, PyAny>> = applied
            .invalid_policies
            .into_iter()
            .map(|p| {
                from_core(py, &p.into())
                    .into_value(py)
                    .into_bound(py)
                    .into_any()
            })
            .collect();
        dict.set_item("invalid_policies", invalid)?;
        dict.set_item("warnings", applied.warnings)?;
        Ok(dict)
    }

    /// Upserts policies (a dict, or YAML/JSON text of one or more). All or none: an invalid
    /// policy raises `PolicyError` with every field error, and previous versions stay.
    fn upsert_policy(&self, py: Python<'_>, policy: &Bound<'_, PyAny>) -> PyResult<()> {
        let text = text_of(policy, "policy")?;
        py.detach(|| self.write().upsert_policy_text(&text).map(drop))
            .py_err(py)
    }

    /// Deletes a policy by name; whether it existed.
    fn delete_policy(&self, name: &str) -> bool {
        self.write().delete_policy(name)
    }

    /// Upserts a node: a dict (or text) in the snapshot's `nodes[]` shape, or a `CiliumNode`.
    fn upsert_node(&self, py: Python<'_>, node: &Bound<'_, PyAny>) -> PyResult<()> {
        let text = text_of(node, "node")?;
        self.event(py, text, snapshot::parse_node, CoreEngine::upsert_node)
    }

    /// Deletes a node by name; whether it existed.
    fn delete_node(&self, name: &str) -> bool {
        self.write().delete_node(name)
    }

    /// Upserts an endpoint: a dict (or text) in the snapshot's `endpoints[]` shape.
    fn upsert_endpoint(&self, py: Python<'_>, endpoint: &Bound<'_, PyAny>) -> PyResult<()> {
        let text = text_of(endpoint, "endpoint")?;
        self.event(
            py,
            text,
            snapshot::parse_endpoint,
            CoreEngine::upsert_endpoint,
        )
    }

    /// Deletes an endpoint by uid; whether it existed.
    fn delete_endpoint(&self, uid: &str) -> bool {
        self.write().delete_endpoint(uid)
    }

    /// Sets a namespace's labels on its endpoints: `{"name": ..., "labels": {...}}` or a
    /// Kubernetes `Namespace` object (dict or text).
    fn upsert_namespace(&self, py: Python<'_>, namespace: &Bound<'_, PyAny>) -> PyResult<()> {
        let text = text_of(namespace, "namespace")?;
        self.event(py, text, snapshot::parse_namespace, |engine, ns| {
            engine.upsert_namespace(&ns.name, ns.labels)
        })
    }

    /// Sets the local node's devices: a list (or text) in the snapshot's `interfaces` shape.
    fn set_devices(&self, py: Python<'_>, devices: &Bound<'_, PyAny>) -> PyResult<()> {
        let text = text_of(devices, "devices")?;
        self.event(
            py,
            text,
            snapshot::parse_interfaces,
            CoreEngine::set_devices,
        )
    }

    /// The operations that make the programmed maps equal the desired ones. Raises
    /// `CapacityError` when a map would overflow `max_entries`.
    fn take_plan(&self, py: Python<'_>) -> PyResult<Plan> {
        let plan = py.detach(|| self.read().take_plan()).py_err(py)?;
        Ok(Plan { plan })
    }

    /// Records that the first `applied` operations of `plan` were written (all by default);
    /// the rest come back in the next plan.
    #[pyo3(signature = (plan, applied=None))]
    fn ack(&self, plan: &Plan, applied: Option<usize>) -> PyResult<()> {
        let len = plan.plan.len();
        let applied = applied.unwrap_or(len);
        if applied > len {
            return Err(PyValueError::new_err(format!(
                "applied: {applied} is more than the plan's {len} operations"
            )));
        }
        self.write().ack(&plan.plan, applied);
        Ok(())
    }

    /// Makes these entries (a dump of the live maps) the programmed baseline.
    fn adopt(&self, entries: Vec<PyRef<'_, Entry>>) {
        let entries: Vec<_> = entries.iter().map(|e| e.entry).collect();
        self.write().adopt(entries);
    }

    fn __repr__(&self) -> String {
        let engine = self.read();
        let config = engine.config();
        format!(
            "Engine(local_node={:?}, selection={:?}, layout={:?})",
            config.local_node,
            config.selection.name(),
            config.layout.name()
        )
    }
}

#[cfg(feature = "bpf")]
impl Engine {
    pub(crate) fn with_write<T>(&self, f: impl FnOnce(&mut CoreEngine) -> T) -> T {
        f(&mut self.write())
    }
}
